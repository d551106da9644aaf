//! `mesh rack upgrade` / `mesh rack resize`: starting a server replacement and following it
//! until the new server serves the rack alone (or the replacement is undone).

use std::time::{Duration, Instant};

use anyhow::Result;
use mesh_types::api::{Replacement, ReplacementPhase};

use super::Ctx;
use crate::failure::hinted;
use crate::output::{fields, print, print_json};

/// How long `mesh rack upgrade` follows a replacement before it leaves it to go on.
const FOLLOW_LIMIT: Duration = Duration::from_secs(3 * 3600);

/// `--timeout`: how long the new server may take to become healthy (1s to 2h).
pub(super) fn timeout_arg(s: &str) -> Result<u64, String> {
    let secs = mesh_types::schedule::parse_duration(s)?;
    if secs == 0 || secs > 2 * 3600 {
        return Err("from 1s to 2h".into());
    }
    Ok(secs)
}

/// What a phase means, for the progress lines.
fn phase_line(r: &Replacement) -> String {
    let what = match r.phase {
        ReplacementPhase::Making => format!("making server {}", r.new_server),
        ReplacementPhase::Starting => format!("{} starts the rack's instances", r.new_server),
        ReplacementPhase::Forwarding => format!("traffic moved to {}", r.new_server),
        ReplacementPhase::Removing => format!("deleting {}", r.old_server),
        ReplacementPhase::Undoing => format!("undoing: deleting {}", r.new_server),
    };
    match &r.message {
        Some(m) => format!("{what}: {m}"),
        None => what,
    }
}

/// The replacement's fields for `mesh rack show`.
pub(super) fn replacement_fields(r: &Replacement, now: mesh_types::UnixMs) -> String {
    fields(&[
        (
            "replacing",
            format!(
                "{} with {} (size {}, mesh {})",
                r.old_server, r.new_server, r.size, r.version
            ),
        ),
        ("phase", r.phase.as_str().into()),
        ("for", crate::output::age(now - r.phase_since)),
        ("status", r.message.clone().unwrap_or_default()),
    ])
}

/// Follows the replacement of `rack` started as `started`, printing each change, until it is
/// done (Ok) or undone (an error saying why).
pub(super) async fn follow(ctx: &Ctx, rack: &str, started: Replacement) -> Result<()> {
    let client = ctx.client()?;
    let t = Instant::now();
    let say = |line: String| {
        if !ctx.json() {
            print(format!("{line} ({:.1}s)", t.elapsed().as_secs_f64()));
        }
    };
    let mut last = started.clone();
    say(phase_line(&last));
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        match client.replacement(rack).await? {
            Some(r) if r.since == started.since => {
                if (r.phase, &r.message) != (last.phase, &last.message) {
                    say(phase_line(&r));
                }
                last = r;
            }
            // Gone (or a later one started): done, or undone.
            _ => break,
        }
        if t.elapsed() > FOLLOW_LIMIT {
            return Err(hinted(
                format!("the replacement of rack {rack}'s server goes on"),
                format!("follow it with `mesh rack show {rack}`"),
            ));
        }
    }
    let servers = client.list_servers(rack).await?;
    if servers.iter().any(|s| s.name == started.new_server)
        && !servers.iter().any(|s| s.name == started.old_server)
    {
        say(format!(
            "done: {} replaced {} in rack {rack}",
            started.new_server, started.old_server
        ));
        if ctx.json() {
            print_json(&client.rack(rack).await?);
        }
        return Ok(());
    }
    // Why, from this replacement's `undone` event (written just after it ended: wait a little).
    let mut why = None;
    for _ in 0..20 {
        why = client
            .list_events(Some(50))
            .await?
            .into_iter()
            .find(|e| {
                e.target == rack && e.action == "rack.replace.undone" && e.at >= started.since
            })
            .map(|e| e.detail);
        if why.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let why = why.or(last.message).unwrap_or_else(|| "undone".into());
    Err(hinted(
        format!("the replacement of rack {rack}'s server was undone: {why}"),
        format!(
            "{} serves the rack as before; fix the cause, then run the command again",
            started.old_server
        ),
    ))
}
