//! What an external buildpack spec names, checked before anything is fetched so the API can
//! refuse nonsense when the buildpack is added rather than at the next build.

use std::path::PathBuf;

const MAX_LEN: usize = 2048;

/// Where an external buildpack comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildpackSpec {
    /// An absolute directory on the build host.
    Dir(PathBuf),
    /// An `http(s)://` or `file://` URL of a gzipped tarball (`.tgz`, `.tar.gz`).
    Tarball(String),
    /// A git URL (`https://`, `http://`, `ssh://`, `git://`, `file://` or `user@host:path`) and
    /// the branch or tag after `#`.
    Git {
        url: String,
        reference: Option<String>,
    },
}

const EXPECTED: &str = "expected an absolute directory, an http(s) URL of a .tgz, or a git URL \
    (https://, ssh://, git://, file:// or user@host:path) with an optional #branch or #tag";

impl BuildpackSpec {
    pub fn parse(spec: &str) -> Result<Self, String> {
        if spec.is_empty() {
            return Err("empty buildpack".to_string());
        }
        if spec.len() > MAX_LEN {
            return Err(format!("longer than {MAX_LEN} bytes"));
        }
        if spec.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("contains whitespace or control characters".to_string());
        }
        if spec.starts_with('-') {
            return Err("starts with '-'".to_string());
        }
        if spec.starts_with('/') {
            return Ok(Self::Dir(PathBuf::from(spec)));
        }
        let (url, reference) = match spec.split_once('#') {
            Some((url, reference)) => (url, Some(reference)),
            None => (spec, None),
        };
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        let scp_like = scheme.is_none() && is_scp_like(url);
        match scheme.as_deref() {
            Some("http" | "https" | "file") if is_tarball(url) => {
                if reference.is_some() {
                    return Err("a tarball URL takes no #ref".to_string());
                }
                check_host(url, scheme.as_deref())?;
                return Ok(Self::Tarball(url.to_string()));
            }
            Some("http" | "https" | "file" | "ssh" | "git") => check_host(url, scheme.as_deref())?,
            Some(other) => return Err(format!("unsupported URL scheme {other}: {EXPECTED}")),
            None if scp_like => {}
            None => return Err(EXPECTED.to_string()),
        }
        if let Some(reference) = reference {
            check_reference(reference)?;
        }
        Ok(Self::Git {
            url: url.to_string(),
            reference: reference.map(str::to_string),
        })
    }
}

/// Checks an external buildpack spec without fetching it; the reason when it is refused.
pub fn validate_buildpack_spec(spec: &str) -> Result<(), String> {
    BuildpackSpec::parse(spec).map(|_| ())
}

fn is_tarball(url: &str) -> bool {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.ends_with(".tgz") || path.ends_with(".tar.gz")
}

/// `git@github.com:owner/repo.git`: a user, a host and a path after a colon.
fn is_scp_like(url: &str) -> bool {
    let Some((user_host, path)) = url.split_once(':') else {
        return false;
    };
    let Some((user, host)) = user_host.split_once('@') else {
        return false;
    };
    !user.is_empty() && !host.is_empty() && !path.is_empty() && !host.contains('/')
}

fn check_host(url: &str, scheme: Option<&str>) -> Result<(), String> {
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    let host = rest.split('/').next().unwrap_or("");
    if scheme == Some("file") {
        return if host.is_empty() && rest.len() > 1 {
            Ok(())
        } else {
            Err("a file:// URL takes an absolute path (file:///path)".to_string())
        };
    }
    if host.is_empty() || rest.len() <= host.len() + 1 {
        return Err(format!("{url} names no host and path"));
    }
    Ok(())
}

/// A branch or tag for `git clone --branch`.
fn check_reference(reference: &str) -> Result<(), String> {
    let ok = !reference.is_empty()
        && !reference.starts_with(['-', '/', '.'])
        && !reference.ends_with(['/', '.'])
        && !reference.contains("..")
        && !reference.ends_with(".lock")
        && reference
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '+'));
    if ok {
        Ok(())
    } else {
        Err(format!("#{reference} is not a branch or tag name"))
    }
}
