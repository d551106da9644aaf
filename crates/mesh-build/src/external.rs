//! External buildpacks: a directory on the build host, a `.tgz` URL or a git URL with an
//! optional `#ref`, fetched into a directory the build runs like a built-in one.
//!
//! Downloads go through `curl` and `git` subprocesses (both installed on build hosts), so no
//! HTTP or git library is needed for what happens once per build. The builder sends them
//! through an egress proxy with the builds' deny rules (`proxy`): a buildpack URL cannot make
//! the host fetch from its own loopback, its addresses or private ranges, and only http(s)
//! reaches out (git's other transports and `file://` are refused then).

mod spec;

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use thiserror::Error;

pub use spec::{BuildpackSpec, validate_buildpack_spec};

use crate::untar::{self, Input, Limits, Rules, UntarError};

/// How long one download or clone may take.
const FETCH_TIMEOUT_SECS: u32 = 300;

/// Largest buildpack tarball downloaded: the compressed size a source archive may have by
/// default; buildpacks are scripts and fetch their tools when they run.
const MAX_TARBALL_BYTES: u64 = 256 * 1024 * 1024;

/// Bounds on what a buildpack tarball unpacks to: those of an app's source archive by default.
const TARBALL_LIMITS: Limits = Limits {
    max_bytes: 1024 * 1024 * 1024,
    max_entries: 100_000,
};

#[derive(Debug, Error)]
pub enum ExternalError {
    #[error("buildpack {spec:?}: {reason}")]
    Spec { spec: String, reason: String },
    #[error("buildpack {spec}: {what} failed: {detail}")]
    Fetch {
        spec: String,
        what: &'static str,
        detail: String,
    },
    #[error("buildpack {spec}: {reason}")]
    Invalid { spec: String, reason: String },
    #[error("buildpack {spec}: {}: {source}", path.display())]
    Io {
        spec: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("buildpack {spec}: unpacking the tarball: {source}")]
    Unpack { spec: String, source: UntarError },
}

/// Fetches the buildpack `spec` into `dest`, which must not exist or be empty, and checks it has
/// `bin/detect` and `bin/compile`; those and `bin/release` are made executable (tarballs made
/// on other systems often lose the mode). A git checkout loses its `.git`.
///
/// A tarball is downloaded up to [`MAX_TARBALL_BYTES`] and unpacked by [`crate::untar`] under
/// [`Rules::BUILDPACK`] and [`TARBALL_LIMITS`]: paths stay inside `dest`, symlinks point inside
/// it, setuid bits are dropped.
///
/// With `proxy` (`http://127.0.0.1:PORT`), URLs are fetched through it, over http(s) only.
pub fn fetch_external(spec: &str, dest: &Path, proxy: Option<&str>) -> Result<(), ExternalError> {
    let parsed = BuildpackSpec::parse(spec).map_err(|reason| ExternalError::Spec {
        spec: spec.to_string(),
        reason,
    })?;
    let io_err = |path: &Path| {
        let spec = spec.to_string();
        let path = path.to_path_buf();
        move |source| ExternalError::Io { spec, path, source }
    };
    if fs::read_dir(dest).is_ok_and(|mut d| d.next().is_some()) {
        return Err(ExternalError::Invalid {
            spec: spec.to_string(),
            reason: format!("destination {} is not empty", dest.display()),
        });
    }
    fs::create_dir_all(dest).map_err(io_err(dest))?;
    match &parsed {
        BuildpackSpec::Dir(dir) => copy_dir(spec, dir, dest)?,
        BuildpackSpec::Tarball(url) => fetch_tarball(spec, url, dest, proxy)?,
        BuildpackSpec::Git { url, reference } => {
            clone(spec, url, reference.as_deref(), dest, proxy)?
        }
    }
    check_layout(spec, dest)
}

fn fetch_error(spec: &str, what: &'static str, detail: impl ToString) -> ExternalError {
    ExternalError::Fetch {
        spec: spec.to_string(),
        what,
        detail: detail.to_string(),
    }
}

/// Runs a command, its stdin closed, and returns its stderr's last lines as the error.
fn run(spec: &str, what: &'static str, cmd: &mut Command) -> Result<(), ExternalError> {
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| fetch_error(spec, what, format!("starting it: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(fetch_error(
        spec,
        what,
        format!("{}: {}", out.status, tail.join("; ")),
    ))
}

fn copy_dir(spec: &str, dir: &Path, dest: &Path) -> Result<(), ExternalError> {
    if !dir.is_dir() {
        return Err(ExternalError::Invalid {
            spec: spec.to_string(),
            reason: "no such directory".to_string(),
        });
    }
    // `cp -a dir/. dest` copies the contents with modes, links and all.
    let mut src = dir.as_os_str().to_owned();
    src.push("/.");
    run(
        spec,
        "copying",
        Command::new("cp").arg("-a").arg(src).arg(dest),
    )
}

fn fetch_tarball(
    spec: &str,
    url: &str,
    dest: &Path,
    proxy: Option<&str>,
) -> Result<(), ExternalError> {
    let download = tempfile::NamedTempFile::new().map_err(|source| ExternalError::Io {
        spec: spec.to_string(),
        path: std::env::temp_dir(),
        source,
    })?;
    let mut curl = Command::new("curl");
    curl.args(["-fsSL", "--max-time"])
        .arg(FETCH_TIMEOUT_SECS.to_string())
        .arg("--max-filesize")
        .arg(MAX_TARBALL_BYTES.to_string());
    match proxy {
        Some(p) => {
            curl.args(["--proto", "=https,http", "--proto-redir", "=https,http"])
                .args(["--noproxy", "", "--proxy", p]);
        }
        None => {
            curl.args(["--proto", "=https,http,file"]);
        }
    }
    curl.arg("-o").arg(download.path()).arg("--").arg(url);
    run(spec, "download", &mut curl)?;
    // `dest` is empty; the reader makes it anew, all or nothing.
    fs::remove_dir(dest).map_err(|source| ExternalError::Io {
        spec: spec.to_string(),
        path: dest.to_path_buf(),
        source,
    })?;
    untar::unpack(
        &Input::File(download.path()),
        dest,
        &Rules::BUILDPACK,
        &TARBALL_LIMITS,
    )
    .map_err(|source| ExternalError::Unpack {
        spec: spec.to_string(),
        source,
    })?;
    hoist_single_dir(spec, dest)
}

/// Tarballs of a repository (GitHub's among them) hold one top directory; the buildpack is in it.
fn hoist_single_dir(spec: &str, dest: &Path) -> Result<(), ExternalError> {
    if dest.join("bin").is_dir() {
        return Ok(());
    }
    let io_err = |path: &Path, source| ExternalError::Io {
        spec: spec.to_string(),
        path: path.to_path_buf(),
        source,
    };
    let entries: Vec<fs::DirEntry> = fs::read_dir(dest)
        .map_err(|e| io_err(dest, e))?
        .filter_map(Result::ok)
        .collect();
    let [only] = entries.as_slice() else {
        return Ok(());
    };
    if !only.file_type().is_ok_and(|t| t.is_dir()) {
        return Ok(());
    }
    let top = only.path();
    for entry in fs::read_dir(&top).map_err(|e| io_err(&top, e))? {
        let entry = entry.map_err(|e| io_err(&top, e))?;
        let to = dest.join(entry.file_name());
        if to == top {
            continue;
        }
        fs::rename(entry.path(), &to).map_err(|e| io_err(&to, e))?;
    }
    fs::remove_dir(&top).map_err(|e| io_err(&top, e))
}

fn clone(
    spec: &str,
    url: &str,
    reference: Option<&str>,
    dest: &Path,
    proxy: Option<&str>,
) -> Result<(), ExternalError> {
    let mut git = Command::new("git");
    if let Some(p) = proxy {
        git.env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .args(["-c", &format!("http.proxy={p}")])
            .args(["-c", "protocol.allow=never"])
            .args(["-c", "protocol.https.allow=always"])
            .args(["-c", "protocol.http.allow=always"]);
    }
    git.env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_HTTP_LOW_SPEED_LIMIT", "1000")
        .env("GIT_HTTP_LOW_SPEED_TIME", "60")
        .args([
            "-c",
            "advice.detachedHead=false",
            "clone",
            "--quiet",
            "--depth",
            "1",
        ]);
    if let Some(reference) = reference {
        git.args(["--branch", reference]);
    }
    git.arg("--").arg(url).arg(dest);
    run(spec, "git clone", &mut git)?;
    let dot_git = dest.join(".git");
    fs::remove_dir_all(&dot_git).map_err(|source| ExternalError::Io {
        spec: spec.to_string(),
        path: dot_git,
        source,
    })
}

fn check_layout(spec: &str, dest: &Path) -> Result<(), ExternalError> {
    for script in ["detect", "compile", "release"] {
        let path = dest.join("bin").join(script);
        if !path.is_file() {
            if script == "release" {
                continue;
            }
            return Err(ExternalError::Invalid {
                spec: spec.to_string(),
                reason: format!("no bin/{script}: not a Heroku-style buildpack"),
            });
        }
        let meta = fs::metadata(&path).map_err(|source| ExternalError::Io {
            spec: spec.to_string(),
            path: path.clone(),
            source,
        })?;
        let mut perms = meta.permissions();
        perms.set_mode(perms.mode() | 0o755);
        fs::set_permissions(&path, perms).map_err(|source| ExternalError::Io {
            spec: spec.to_string(),
            path,
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
