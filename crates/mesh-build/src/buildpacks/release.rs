//! Reading `bin/release`'s answer: YAML in the Heroku shape, of which only the
//! `default_process_types` mapping matters. A full YAML parser is not needed for it: buildpacks
//! print one `name: command` line per process type, the command plain or quoted.

use std::collections::BTreeMap;

use thiserror::Error;

const KEY: &str = "default_process_types";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReleaseError {
    #[error("bin/release line {line}: {reason}")]
    Line { line: usize, reason: String },
}

/// The `default_process_types` of a `bin/release` answer, process type to command; empty when
/// the answer has none (`{}`, no key, or no output at all).
pub fn parse_release(yaml: &str) -> Result<BTreeMap<String, String>, ReleaseError> {
    let mut types = BTreeMap::new();
    let mut inside = false;
    for (i, raw) in yaml.lines().enumerate() {
        let line = i + 1;
        let err = |reason: &str| ReleaseError::Line {
            line,
            reason: reason.to_string(),
        };
        let text = raw.trim_end();
        if text.trim().is_empty() || text.trim_start().starts_with('#') || text.starts_with("---") {
            continue;
        }
        let indented = text.starts_with([' ', '\t']);
        if !indented {
            inside = false;
            let Some((key, rest)) = text.split_once(':') else {
                return Err(err("expected `key:`"));
            };
            if key.trim() == KEY {
                match rest.trim() {
                    "" => inside = true,
                    "{}" | "~" | "null" => {}
                    _ => return Err(err("default_process_types must be a mapping")),
                }
            }
            continue;
        }
        if !inside {
            continue;
        }
        let Some((name, command)) = text.trim().split_once(':') else {
            return Err(err("expected `process_type: command`"));
        };
        let name = unquote(name.trim()).map_err(|r| err(&r))?;
        let command = unquote(command.trim()).map_err(|r| err(&r))?;
        if name.is_empty() {
            return Err(err("empty process type"));
        }
        if command.is_empty() {
            return Err(err(&format!("process type {name} has no command")));
        }
        types.insert(name, command);
    }
    Ok(types)
}

/// A YAML scalar: plain, 'single-quoted' ('' is a quote) or "double-quoted" (backslash escapes).
fn unquote(s: &str) -> Result<String, String> {
    let unterminated = || format!("unterminated quote in {s}");
    if let Some(inner) = s.strip_prefix('\'') {
        let inner = inner.strip_suffix('\'').ok_or_else(unterminated)?;
        return Ok(inner.replace("''", "'"));
    }
    if let Some(inner) = s.strip_prefix('"') {
        let inner = inner.strip_suffix('"').ok_or_else(unterminated)?;
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(c @ ('"' | '\\' | '/')) => out.push(c),
                Some(c) => return Err(format!("unsupported escape \\{c}")),
                None => return Err(unterminated()),
            }
        }
        return Ok(out);
    }
    Ok(s.to_string())
}
