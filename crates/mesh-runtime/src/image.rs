//! The two images the runtime can make by itself, each a directory `<dest>/rootfs` with a
//! record `<dest>/image.json` (kind, version, source, builder version) beside it, not inside,
//! so instances never see it:
//!
//! - a tiny image: the static busybox (Debian `busybox-static`) with its applet links, 2 MB,
//!   made in milliseconds: what tests run;
//! - a base OS image: Debian `--variant=minbase` made once with debootstrap from the mirror the
//!   host's apt uses (~45 s, ~200 MB), then reused from its cache directory.
//!
//! Both are built in a temporary directory beside `dest` and renamed into place, so a crash or
//! a concurrent build never leaves a half image that looks whole.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::host::{Cmd, CommandRunner, RealRunner, run};
use crate::spec::ImageRef;
use crate::state::{read_json, write_json};

/// Bumped when what the builders produce changes, so old caches are not mistaken for new.
pub const BUILDER_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// `busybox` or `debian`.
    pub kind: String,
    /// busybox's version line, or Debian's `/etc/debian_version`.
    pub version: String,
    /// Where it came from: the busybox binary, or `<mirror> <suite> <variant>`.
    pub source: String,
    pub builder: u32,
    pub created_at_ms: i64,
}

pub fn record_path(dest: &Path) -> PathBuf {
    dest.join("image.json")
}

pub fn rootfs_path(dest: &Path) -> PathBuf {
    dest.join("rootfs")
}

fn image_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Image {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The cached image at `dest` if it is of `kind` and current; an error if `dest` holds
/// something else (it is never overwritten: it may not be ours).
fn cached(
    dest: &Path,
    kind: &str,
    matches: impl Fn(&ImageRecord) -> bool,
) -> Result<Option<ImageRef>> {
    match read_json::<ImageRecord>(&record_path(dest))? {
        Some(r) if r.kind == kind && r.builder == BUILDER_VERSION && matches(&r) => {
            Ok(Some(ImageRef::single(rootfs_path(dest))))
        }
        Some(r) => Err(image_err(
            dest,
            format!(
                "it holds a {} image ({}, builder {}), not the one asked for; remove it to rebuild",
                r.kind, r.source, r.builder
            ),
        )),
        None if dest.exists()
            && std::fs::read_dir(dest)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true) =>
        {
            Err(image_err(
                dest,
                "it exists but is not an image made by widemesh; remove it",
            ))
        }
        None => Ok(None),
    }
}

/// A fresh temporary directory beside `dest`.
fn temp_beside(dest: &Path) -> Result<PathBuf> {
    let parent = dest
        .parent()
        .ok_or_else(|| image_err(dest, "it has no parent directory"))?;
    std::fs::create_dir_all(parent).context(|| format!("creating {}", parent.display()))?;
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    let tmp = parent.join(format!(".{name}.tmp-{}-{}", std::process::id(), now_ms()));
    std::fs::create_dir(&tmp).context(|| format!("creating {}", tmp.display()))?;
    Ok(tmp)
}

/// Renames the finished `tmp` to `dest`; if another build got there first, keeps theirs.
fn publish(tmp: &Path, dest: &Path) -> Result<ImageRef> {
    let _ = std::fs::remove_dir(dest); // an empty placeholder may be replaced
    if let Err(e) = std::fs::rename(tmp, dest) {
        let _ = std::fs::remove_dir_all(tmp);
        if !record_path(dest).exists() {
            return Err(e).context(|| format!("moving the image into {}", dest.display()));
        }
    }
    Ok(ImageRef::single(rootfs_path(dest)))
}

/// The tiny image from the busybox found in `PATH` (it must be the static build).
pub async fn busybox_image(dest: &Path) -> Result<ImageRef> {
    let busybox = std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("busybox"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| Error::MissingTool {
            program: "busybox (Debian package busybox-static)".into(),
        })?;
    busybox_image_from(&RealRunner, &busybox, dest).await
}

pub async fn busybox_image_from(
    runner: &dyn CommandRunner,
    busybox: &Path,
    dest: &Path,
) -> Result<ImageRef> {
    let bb = busybox.to_string_lossy().into_owned();
    let version = run(runner, &Cmd::new(&bb).arg("--help"))
        .await?
        .stdout_str();
    let version = version
        .lines()
        .next()
        .unwrap_or("busybox")
        .trim()
        .to_string();
    let source = format!("{}", busybox.display());
    if let Some(image) = cached(dest, "busybox", |r| {
        r.version == version && r.source == source
    })? {
        return Ok(image);
    }
    let bytes = std::fs::read(busybox).context(|| format!("reading {bb}"))?;
    match elf_interpreter(&bytes) {
        None => return Err(image_err(busybox, "it is not a 64-bit ELF executable")),
        Some(true) => {
            return Err(image_err(
                busybox,
                "it is dynamically linked; install busybox-static (scripts/install-runtime-deps)",
            ));
        }
        Some(false) => {}
    }
    let list = run(runner, &Cmd::new(&bb).arg("--list"))
        .await?
        .stdout_str();
    let applets: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    let tmp = temp_beside(dest)?;
    let result = build_busybox_rootfs(busybox, &applets, &rootfs_path(&tmp)).and_then(|()| {
        write_json(
            &record_path(&tmp),
            &ImageRecord {
                kind: "busybox".into(),
                version: version.clone(),
                source: source.clone(),
                builder: BUILDER_VERSION,
                created_at_ms: now_ms(),
            },
        )
    });
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    publish(&tmp, dest)
}

/// `/bin/busybox` plus a link per applet, the directories a container needs, and a passwd and
/// group file so `id` and `ls -l` can name root and nobody.
pub fn build_busybox_rootfs(busybox: &Path, applets: &[&str], rootfs: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mk = |p: &Path, mode: u32| -> Result<()> {
        std::fs::create_dir_all(p).context(|| format!("creating {}", p.display()))?;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
            .context(|| format!("setting the mode of {}", p.display()))
    };
    mk(rootfs, 0o755)?;
    for d in [
        "bin", "etc", "proc", "sys", "dev", "root", "var", "usr", "sbin",
    ] {
        mk(&rootfs.join(d), 0o755)?;
    }
    mk(&rootfs.join("tmp"), 0o1777)?;
    let target = rootfs.join("bin/busybox");
    std::fs::copy(busybox, &target).context(|| format!("copying {}", busybox.display()))?;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
        .context(|| format!("setting the mode of {}", target.display()))?;
    for applet in applets {
        let name = applet.rsplit('/').next().unwrap_or(applet);
        if name == "busybox" || name.is_empty() || name.contains("..") {
            continue;
        }
        let link = rootfs.join("bin").join(name);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", &link)
                .context(|| format!("linking {}", link.display()))?;
        }
    }
    let files = [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
    ];
    for (path, content) in files {
        let p = rootfs.join(path);
        std::fs::write(&p, content).context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// `Some(true)` for a dynamically linked ELF64 (it has a `PT_INTERP` program header),
/// `Some(false)` for a static one, `None` if it is not little-endian ELF64.
pub fn elf_interpreter(bytes: &[u8]) -> Option<bool> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return None;
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().ok()?) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let kind = bytes.get(at..at + 4)?;
        if u32::from_le_bytes(kind.try_into().ok()?) == 3 {
            return Some(true);
        }
    }
    Some(false)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImageOptions {
    pub suite: String,
    /// `None`: the first mirror in the host's apt sources that carries `suite`.
    pub mirror: Option<String>,
    /// Extra packages (`debootstrap --include`).
    pub include: Vec<String>,
}

impl Default for BaseImageOptions {
    fn default() -> Self {
        BaseImageOptions {
            suite: "bookworm".into(),
            mirror: None,
            include: Vec::new(),
        }
    }
}

/// Where a machine keeps one base image per suite, so every data directory on it (the builder's,
/// each agent's, each test's) links to one debootstrap instead of running its own.
pub const MACHINE_CACHE: &str = "/var/cache/widemesh";

/// The Debian base image at `dest`, made with debootstrap if it is not there yet. Fails loudly
/// when the mirror cannot be reached: there is no fallback.
///
/// Made once per machine when it can be: in [`MACHINE_CACHE`]`/base-<suite>` (root only), then
/// hard-linked into `dest` (instances and builds only ever read it, through overlayfs).
pub async fn base_image(dest: &Path, opts: &BaseImageOptions) -> Result<ImageRef> {
    let machine = Path::new(MACHINE_CACHE).join(format!("base-{}", opts.suite));
    let can_share = opts.include.is_empty()
        && machine != dest
        && std::fs::create_dir_all(MACHINE_CACHE).is_ok()
        && nix::unistd::geteuid().is_root();
    if can_share && !record_path(dest).exists() {
        base_image_with(&RealRunner, &machine, opts, &host_apt_sources()).await?;
        if let Some(image) = link_copy(&machine, dest).await? {
            return Ok(image);
        }
    }
    base_image_with(&RealRunner, dest, opts, &host_apt_sources()).await
}

/// Hard-links the image at `from` into `dest` (same filesystem), or says it could not.
async fn link_copy(from: &Path, dest: &Path) -> Result<Option<ImageRef>> {
    let tmp = temp_beside(dest)?;
    let out = run(
        &RealRunner,
        &Cmd::new("cp")
            .arg("-al")
            .arg(rootfs_path(from).to_string_lossy())
            .arg(rootfs_path(&tmp).to_string_lossy()),
    )
    .await;
    let copied = matches!(&out, Ok(o) if o.success())
        && std::fs::copy(record_path(from), record_path(&tmp)).is_ok();
    if !copied {
        // Another filesystem, most likely: make it in place instead.
        let _ = std::fs::remove_dir_all(&tmp);
        return Ok(None);
    }
    publish(&tmp, dest).map(Some)
}

pub async fn base_image_with(
    runner: &dyn CommandRunner,
    dest: &Path,
    opts: &BaseImageOptions,
    apt_sources: &[(String, String)],
) -> Result<ImageRef> {
    // The source reads `<mirror> <suite> minbase [+<include,...>]`; any mirror will do.
    let includes = opts.include.join(",");
    let wanted_source = |r: &ImageRecord| {
        let words: Vec<&str> = r.source.split(' ').collect();
        words.get(1) == Some(&opts.suite.as_str())
            && words
                .get(3)
                .map(|w| w.trim_start_matches('+'))
                .unwrap_or("")
                == includes
    };
    if let Some(image) = cached(dest, "debian", wanted_source)? {
        return Ok(image);
    }
    let mirror = match &opts.mirror {
        Some(m) => m.clone(),
        None => apt_mirror(&opts.suite, apt_sources).ok_or_else(|| {
            image_err(
                dest,
                format!(
                    "no apt source for suite {:?} in /etc/apt/sources.list*; pass a mirror",
                    opts.suite
                ),
            )
        })?,
    };
    let tmp = temp_beside(dest)?;
    let rootfs = rootfs_path(&tmp);
    let mut cmd = Cmd::new("debootstrap").arg("--variant=minbase");
    if !opts.include.is_empty() {
        cmd = cmd.arg(format!("--include={}", opts.include.join(",")));
    }
    let cmd = cmd
        .arg(&opts.suite)
        .arg(rootfs.to_string_lossy())
        .arg(&mirror);
    tracing::info!(command = %cmd.line(), "building the base image (about 45 s)");
    let out = match run(runner, &cmd).await {
        Ok(o) => o,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if !out.success() {
        let text = format!("{}\n{}", out.stdout_str(), out.stderr_str());
        let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = tail[tail.len().saturating_sub(5)..].join(" | ");
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(image_err(
            dest,
            format!("`{}` failed (is {mirror} reachable?): {tail}", cmd.line()),
        ));
    }
    // Package caches are dead weight in every instance's lower layer.
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        for e in std::fs::read_dir(rootfs.join(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let version = std::fs::read_to_string(rootfs.join("etc/debian_version"))
        .unwrap_or_default()
        .trim()
        .to_string();
    let mut source = format!("{mirror} {} minbase", opts.suite);
    if !opts.include.is_empty() {
        source.push_str(&format!(" +{}", opts.include.join(",")));
    }
    let record = ImageRecord {
        kind: "debian".into(),
        version,
        source,
        builder: BUILDER_VERSION,
        created_at_ms: now_ms(),
    };
    if let Err(e) = write_json(&record_path(&tmp), &record) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    publish(&tmp, dest)
}

/// The host's apt source files: `sources.list`, then `sources.list.d/*` by name.
pub fn host_apt_sources() -> Vec<(String, String)> {
    let mut files = Vec::new();
    let main = Path::new("/etc/apt/sources.list");
    if let Ok(text) = std::fs::read_to_string(main) {
        files.push((main.display().to_string(), text));
    }
    let mut extra: Vec<PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    extra.sort();
    for p in extra {
        if let Ok(text) = std::fs::read_to_string(&p) {
            files.push((p.display().to_string(), text));
        }
    }
    files
}

/// The first http(s) `deb` URI serving exactly `suite`, from one-line (`.list`) or deb822
/// (`.sources`) files.
pub fn apt_mirror(suite: &str, files: &[(String, String)]) -> Option<String> {
    let web = |u: &str| u.starts_with("http://") || u.starts_with("https://");
    for (name, text) in files {
        if name.ends_with(".sources") {
            for stanza in text.split("\n\n") {
                let field = |key: &str| -> Vec<&str> {
                    stanza
                        .lines()
                        .filter(|l| !l.trim_start().starts_with('#'))
                        .filter_map(|l| l.split_once(':'))
                        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(key))
                        .flat_map(|(_, v)| v.split_whitespace())
                        .collect()
                };
                if field("Enabled")
                    .first()
                    .is_some_and(|v| v.eq_ignore_ascii_case("no"))
                {
                    continue;
                }
                if field("Types").contains(&"deb")
                    && field("Suites").contains(&suite)
                    && let Some(uri) = field("URIs").into_iter().find(|u| web(u))
                {
                    return Some(uri.to_string());
                }
            }
        } else {
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("");
                let mut words = line.split_whitespace();
                if words.next() != Some("deb") {
                    continue;
                }
                let mut rest: Vec<&str> = words.collect();
                if rest.first().is_some_and(|w| w.starts_with('[')) {
                    let close = rest.iter().position(|w| w.ends_with(']')).unwrap_or(0);
                    rest.drain(..=close);
                }
                if let [uri, s, ..] = rest[..]
                    && s == suite
                    && web(uri)
                {
                    return Some(uri.to_string());
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
