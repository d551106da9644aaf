//! How a failed command is told to the user: one `error:` line and, where it helps, one
//! `hint:` line saying what to do next.

use std::fmt;

use mesh_client::Error as ApiError;
use mesh_types::ErrorCode;

/// An error that carries its own hint.
#[derive(Debug)]
pub struct Hinted {
    pub message: String,
    pub hint: String,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

pub fn hinted(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        message: message.into(),
        hint: hint.into(),
    })
}

/// The error's message on one line and the hint to print under it, if any.
pub fn describe(err: &anyhow::Error) -> (String, Option<String>) {
    // `{:#}` puts the context chain on one line: "doing x: because y".
    let message = one_line(&format!("{err:#}"));
    let hint = err.chain().find_map(|e| {
        if let Some(h) = e.downcast_ref::<Hinted>() {
            return Some(h.hint.clone());
        }
        e.downcast_ref::<ApiError>().and_then(api_hint)
    });
    (message, hint)
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What to do after an API error, guessed from its code and what it is about.
pub fn api_hint(err: &ApiError) -> Option<String> {
    let ApiError::Api { code, message, .. } = err else {
        return None;
    };
    match code {
        ErrorCode::NotFound => not_found_hint(message),
        ErrorCode::Unauthenticated => Some(
            "log in again with `mesh login URL --token TOKEN` (or set MESH_TOKEN); on the machine running `mesh up`, restarting it rewrites the CLI config".into(),
        ),
        ErrorCode::PermissionDenied => {
            Some("use a token that may do this: an admin makes one with `mesh token create NAME --role admin` (or `--role developer --env ENV`)".into())
        }
        _ => None,
    }
}

fn not_found_hint(message: &str) -> Option<String> {
    if message.starts_with("no such API route") {
        return Some(
            "the server may be of another version than this CLI (`mesh whoami` shows it)".into(),
        );
    }
    let first = message.split_whitespace().next().unwrap_or("");
    let list = match first {
        "environment" => "mesh env ls",
        "stack" => "mesh stack ls",
        "service" => "mesh svc list",
        "rack" => "mesh rack list",
        "provider" => "mesh provider list",
        "endpoint" => "mesh endpoint ls",
        "deployment" => "mesh deployments list",
        "token" => "mesh token list",
        "certificate" => "mesh certificate list",
        _ => return None,
    };
    Some(format!("list them with `{list}`"))
}

#[cfg(test)]
#[path = "failure/tests.rs"]
mod tests;
