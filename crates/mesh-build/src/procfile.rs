//! Procfile parsing: the `name: command` lines that declare an app's process types.
//!
//! Each process type becomes a Widemesh service except `release`, which is the stack's release
//! command. `web` is the one published on the platform alias.

use std::fs;
use std::io;
use std::path::Path;

use mesh_types::Name;
use mesh_types::api::check_command;
use thiserror::Error;

/// The file name looked for at the root of the source.
pub const PROCFILE: &str = "Procfile";

/// What a process type is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessKind {
    /// `web`: a service published on the platform alias.
    Web,
    /// `release`: run once per deployment before the rollout, not a service.
    Release,
    /// Any other process type: a service that is not published.
    Worker,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcfileEntry {
    /// The service name: the process type with `_` mapped to `-`.
    pub name: Name,
    pub command: String,
    pub kind: ProcessKind,
}

/// A parsed Procfile, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Procfile {
    pub entries: Vec<ProcfileEntry>,
}

#[derive(Debug, Error)]
pub enum ProcfileError {
    #[error("Procfile line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("reading {}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: io::Error,
    },
}

impl Procfile {
    /// Reads `Procfile` at the root of `dir`; `None` if there is none.
    pub fn read(dir: &Path) -> Result<Option<Self>, ProcfileError> {
        let path = dir.join(PROCFILE);
        match fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ProcfileError::Io { path, source }),
        }
    }

    pub fn parse(text: &str) -> Result<Self, ProcfileError> {
        let mut entries: Vec<(usize, ProcfileEntry)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let fail = |reason: String| ProcfileError::Line { line, reason };
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let Some((process_type, command)) = trimmed.split_once(':') else {
                return Err(fail(format!(
                    "{trimmed:?} is not of the form \"name: command\""
                )));
            };
            let process_type = process_type.trim();
            let command = command.trim();
            check_process_type(process_type).map_err(&fail)?;
            let name = Name::parse_as("process type", &process_type.replace('_', "-"))
                .map_err(|e| fail(e.to_string()))?;
            check_command(&format!("the command of {process_type:?}"), command).map_err(&fail)?;
            if let Some((first, _)) = entries.iter().find(|(_, e)| e.name == name) {
                return Err(fail(format!(
                    "process type {process_type:?} is declared again (service {name:?} is already on line {first})",
                    name = name.as_str()
                )));
            }
            let kind = match name.as_str() {
                "web" => ProcessKind::Web,
                "release" => ProcessKind::Release,
                _ => ProcessKind::Worker,
            };
            entries.push((
                line,
                ProcfileEntry {
                    name,
                    command: command.to_string(),
                    kind,
                },
            ));
        }
        Ok(Self {
            entries: entries.into_iter().map(|(_, e)| e).collect(),
        })
    }

    /// The release command, if declared.
    pub fn release(&self) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.kind == ProcessKind::Release)
            .map(|e| e.command.as_str())
    }

    pub fn web(&self) -> Option<&ProcfileEntry> {
        self.entries.iter().find(|e| e.kind == ProcessKind::Web)
    }

    /// The entries that become services: all but `release`.
    pub fn services(&self) -> impl Iterator<Item = &ProcfileEntry> {
        self.entries
            .iter()
            .filter(|e| e.kind != ProcessKind::Release)
    }
}

/// Heroku's process type alphabet narrowed to what maps onto a service name, checked before the
/// mapping so the message speaks of what the user wrote.
fn check_process_type(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("the process type before \":\" is empty".to_string());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        let hint = if c.is_ascii_uppercase() {
            " (use lowercase)"
        } else {
            ""
        };
        return Err(format!(
            "process type {s:?} contains {c:?}{hint}; use lowercase letters, digits, dashes and underscores"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
