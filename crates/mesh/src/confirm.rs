//! Confirmation of destructive commands: `--yes`, or the name typed back on a terminal.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Result, bail};

use crate::failure::hinted;

/// Returns when deleting `what name` is confirmed; refuses without a terminal to ask on.
pub fn deletion(what: &str, name: &str, consequence: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(hinted(
            format!(
                "refusing to delete {what} {name} without confirmation: standard input is not a terminal"
            ),
            "pass --yes to delete it",
        ));
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "this deletes {what} {name}{consequence}.\ntype {name} to confirm: "
    );
    let _ = err.flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != name {
        bail!("confirmation did not match: {what} {name} was not deleted");
    }
    Ok(())
}
