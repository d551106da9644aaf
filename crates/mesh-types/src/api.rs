//! Request and response bodies of the HTTP API under `/v1`. Lists are plain JSON arrays.

mod deployment;
mod endpoint;
mod environment;
mod platform;
mod service;

pub use deployment::*;
pub use endpoint::*;
pub use environment::*;
pub use platform::*;
pub use service::*;

/// Longest command line a service or release command may have.
pub const MAX_COMMAND_LEN: usize = 16 * 1024;
/// Most instances one service may ask for.
pub const MAX_INSTANCES: u32 = 100;

/// Checks a command line: not empty, not oversized, no NUL byte.
pub fn check_command(what: &str, cmd: &str) -> Result<(), String> {
    if cmd.trim().is_empty() {
        return Err(format!("{what} is empty"));
    }
    if cmd.len() > MAX_COMMAND_LEN {
        return Err(format!(
            "{what} is {} bytes long, at most {MAX_COMMAND_LEN} are allowed",
            cmd.len()
        ));
    }
    if cmd.contains('\0') {
        return Err(format!("{what} contains a NUL byte"));
    }
    Ok(())
}
