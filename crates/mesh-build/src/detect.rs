//! Formula choice and built-in buildpack detection.

mod buildpacks;

use std::io;
use std::path::{Path, PathBuf};

use mesh_types::api::Formula;
use thiserror::Error;

/// The file whose presence on a first deploy selects the dockerfile formula.
pub const DOCKERFILE: &str = "Dockerfile";

/// The static buildpack's web server, from the `busybox` package of its runtime layer, in the
/// foreground on `$PORT`; the default web command adds `-h <document root>`.
pub const STATIC_SERVER: &str = "busybox httpd -f -p $PORT";

/// Picks the formula of a deployment.
///
/// An explicit flag wins. Otherwise the first deploy of a stack picks dockerfile when the source
/// has a `Dockerfile` at its root and buildpack when not, and later deploys keep the stack's
/// formula, so adding a Dockerfile later never silently changes how an app is built. A formula
/// chosen when the stack was created explicitly should be passed as `flag`.
pub fn choose_formula(
    dir: &Path,
    first_deploy: bool,
    current: Option<Formula>,
    flag: Option<Formula>,
) -> Formula {
    if let Some(flag) = flag {
        return flag;
    }
    if !first_deploy && let Some(current) = current {
        return current;
    }
    if first_deploy && dir.join(DOCKERFILE).is_file() {
        Formula::Dockerfile
    } else {
        current.unwrap_or_default()
    }
}

/// A built-in buildpack that matched the source. Its `bin/release` prints the same web command
/// after the build; detection here needs no container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buildpack {
    /// `nodejs`, `python`, `ruby`, `go`, `php`, `java`, `rust` or `static`.
    pub name: String,
    /// What the `web` process runs when the Procfile does not say; it listens on `$PORT`. `None`
    /// when no sensible guess exists and the app needs a Procfile.
    pub default_web_command: Option<String>,
    /// The file that matched, relative to the source root.
    pub detected_by: String,
}

#[derive(Debug, Error)]
pub enum DetectError {
    #[error(
        "no built-in buildpack matches the source: looked for {}",
        buildpacks::LOOKED_FOR
    )]
    NoneMatched,
    #[error("{file}: {reason}")]
    Invalid { file: String, reason: String },
    #[error("reading {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Finds the first built-in buildpack, in priority order, whose marker files are in `dir`.
pub fn detect_buildpack(dir: &Path) -> Result<Buildpack, DetectError> {
    for detect in buildpacks::ALL {
        if let Some(found) = detect(dir)? {
            return Ok(found);
        }
    }
    Err(DetectError::NoneMatched)
}

#[cfg(test)]
mod tests;
