//! The CLI's config file (`api_url`, `token`) and the default places of the CLI's and the
//! platform's files.
//!
//! Lookups take the environment as a function, so they are tested without touching the
//! process environment.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};

use crate::failure::hinted;

/// What the config file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// The API to talk to and the token to present, after environment overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub api_url: String,
    pub token: Option<String>,
    pub path: PathBuf,
}

fn non_empty(var: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    var(name).filter(|v| !v.trim().is_empty())
}

/// `$MESH_CONFIG`, else `$XDG_CONFIG_HOME/mesh/config.toml`, else
/// `$HOME/.config/mesh/config.toml`.
pub fn config_path(var: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf> {
    if let Some(p) = non_empty(var, "MESH_CONFIG") {
        return Ok(PathBuf::from(p));
    }
    if let Some(x) = non_empty(var, "XDG_CONFIG_HOME").filter(|x| Path::new(x).is_absolute()) {
        return Ok(Path::new(&x).join("mesh").join("config.toml"));
    }
    match non_empty(var, "HOME") {
        Some(home) => Ok(Path::new(&home)
            .join(".config")
            .join("mesh")
            .join("config.toml")),
        None => Err(anyhow!(
            "cannot tell where the CLI config file is: set HOME or MESH_CONFIG"
        )),
    }
}

/// `$XDG_DATA_HOME/widemesh`, else `$HOME/.local/share/widemesh`.
pub fn default_data_dir(var: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf> {
    if let Some(x) = non_empty(var, "XDG_DATA_HOME").filter(|x| Path::new(x).is_absolute()) {
        return Ok(Path::new(&x).join("widemesh"));
    }
    match non_empty(var, "HOME") {
        Some(home) => Ok(Path::new(&home)
            .join(".local")
            .join("share")
            .join("widemesh")),
        None => Err(anyhow!(
            "cannot tell where to keep the platform's data: set HOME or pass --data-dir"
        )),
    }
}

/// Reads the config file; a missing file is an empty config.
pub fn load(path: &Path) -> Result<Settings> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    toml::from_str(&text).map_err(|e| {
        let why = e.message().to_string();
        anyhow!("the CLI config file {} is not valid: {why}", path.display())
    })
}

/// Writes the config file readable by its owner only (it holds a token), atomically so that a
/// crash never leaves half a file.
pub fn save(path: &Path, settings: &Settings) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let text = toml::to_string(settings).context("cannot encode the CLI config")?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.toml".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow!("cannot write {}: {e}", path.display())
    })
}

/// The file's settings with `MESH_API_URL` / `MESH_TOKEN` on top; the API defaults to the
/// local one.
pub fn resolve(var: &dyn Fn(&str) -> Option<String>) -> Result<Resolved> {
    let path = config_path(var)?;
    let file = load(&path)?;
    let api_url = non_empty(var, "MESH_API_URL")
        .or(file.api_url)
        .map(|u| normalize_url(&u))
        .unwrap_or_else(|| format!("http://{}", mesh_types::DEFAULT_API_ADDR));
    let token = non_empty(var, "MESH_TOKEN")
        .or(file.token)
        .map(|t| t.trim().to_string());
    Ok(Resolved {
        api_url,
        token,
        path,
    })
}

impl Resolved {
    /// The client of the configured API; an error that says how to log in if there is no token.
    pub fn client(&self) -> Result<mesh_client::Client> {
        let Some(token) = &self.token else {
            return Err(hinted(
                format!(
                    "not logged in: no API token in {} nor in MESH_TOKEN",
                    self.path.display()
                ),
                "run `mesh up` to start the platform on this machine, or `mesh login URL --token TOKEN`",
            ));
        };
        Ok(mesh_client::Client::new(&self.api_url, token.clone())?)
    }
}

/// `127.0.0.1:7440` or `http://127.0.0.1:7440/` become `http://127.0.0.1:7440`.
pub fn normalize_url(url: &str) -> String {
    let url = url.trim();
    let url = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    url.trim_end_matches('/').to_string()
}

#[cfg(test)]
#[path = "settings/tests.rs"]
mod tests;
