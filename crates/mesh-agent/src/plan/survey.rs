//! What the runtime lists, held against what this agent knows of each instance (its records):
//! which instances it adopts (after a restart it knows none), which one-offs an earlier agent left
//! behind, which ends it has not noted yet, and whose health to check.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use mesh_runtime::{InstanceState, Status};
use mesh_types::UnixMs;
use mesh_types::api::ServiceKind;

use super::{Action, CronJob, Observed, Wanted, generation_of, is_oneoff, is_run, plan};
use crate::supervise::{Record, WORKER_SETTLE_MS};

/// A health check to run: its answer is the instance's `healthy`.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub id: String,
    pub address: Ipv4Addr,
    pub port: u16,
    /// `None` checks that the port accepts a connection.
    pub http_path: Option<String>,
}

/// The outcome of [`survey`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Survey {
    /// Records to store, by instance id: ones adopted now and known ones brought up to date.
    pub records: Vec<(String, Record)>,
    /// Lines for instances' system logs, by instance id (an end noted).
    pub lines: Vec<(String, String)>,
    /// Health checks to run before planning; see [`Survey::probed`].
    pub probes: Vec<Probe>,
    /// Ended one-offs whose task went with an earlier agent: their output was shipped and
    /// nothing else will remove them.
    pub orphans: Vec<String>,
    /// Every listed instance but the orphans, as [`plan`] sees it.
    pub observed: Vec<Observed>,
}

impl Survey {
    /// A probe's answer, for planning.
    pub fn probed(&mut self, id: &str, healthy: bool) {
        if let Some(o) = self.observed.iter_mut().find(|o| o.id == id) {
            o.healthy = healthy;
        }
    }

    /// What to do once the probes have answered: remove the orphans, then what [`plan`] says.
    pub fn actions(&self, wanted: &[Wanted], now: UnixMs) -> Vec<Action> {
        self.orphans
            .iter()
            .map(|id| Action::Delete { id: id.clone() })
            .chain(plan(wanted, &self.observed, now))
            .collect()
    }
}

/// Holds `listed` against `records` (what this agent started or adopted) and `creating` (what it
/// is creating right now, which the runtime may list before its record exists).
///
/// - A listed instance without a record that is wanted, or is a run of a cron job here, is
///   adopted: it runs on after an agent restart, counted as started `now`.
/// - One without a record that nothing wants gets none: [`plan`] deletes it (unless it is a cron
///   run, left to [`cron`](super::cron()), or a one-off).
/// - An ended one-off without a record is an orphan, unless it is being created: a one-off the
///   runtime lists mid-create (not running yet) is not one an earlier agent left behind.
/// - A running web instance (or one with an HTTP check) gets a probe; a running worker is
///   healthy once it has run [`WORKER_SETTLE_MS`]; an end is noted once, with a system line.
pub fn survey(
    listed: &[InstanceState],
    records: &HashMap<String, Record>,
    creating: &HashSet<String>,
    wanted: &[Wanted],
    cron: &[CronJob],
    now: UnixMs,
) -> Survey {
    let mut out = Survey::default();
    let wanted_by_id: HashMap<&str, &Wanted> = wanted.iter().map(|w| (w.id.as_str(), w)).collect();
    for inst in listed {
        let running = inst.status.is_running();
        let mut rec = match records.get(&inst.id) {
            Some(r) => r.clone(),
            None => {
                if is_oneoff(&inst.id) && !running && !creating.contains(&inst.id) {
                    out.orphans.push(inst.id.clone());
                    continue;
                }
                let Some(template) = template_of(&inst.id, &wanted_by_id, cron) else {
                    out.observed.push(Observed {
                        id: inst.id.clone(),
                        environment: inst.environment.clone(),
                        hostname: inst.hostname.clone(),
                        running,
                        healthy: false,
                        restart_at: None,
                    });
                    continue;
                };
                let mut r = Record::new(template, is_run(&inst.id));
                r.started(inst.address, now);
                r
            }
        };
        rec.address = Some(inst.address);
        match &inst.status {
            Status::Running { .. } => {
                if rec.kind == ServiceKind::Web || rec.health.http_path.is_some() {
                    out.probes.push(Probe {
                        id: inst.id.clone(),
                        address: inst.address,
                        port: rec.port,
                        http_path: rec.health.http_path.clone(),
                    });
                } else {
                    rec.healthy = rec.started_at.is_some_and(|s| now - s >= WORKER_SETTLE_MS);
                }
            }
            Status::Exited(exit) if !rec.end_seen => {
                rec.ended(*exit, now);
                let why = rec.state(false, now).1.unwrap_or_default();
                out.lines
                    .push((inst.id.clone(), format!("instance {} {why}", inst.id)));
            }
            Status::Exited(_) => {}
        }
        out.observed.push(Observed {
            id: inst.id.clone(),
            environment: inst.environment.clone(),
            hostname: inst.hostname.clone(),
            running,
            healthy: rec.healthy,
            restart_at: rec.restart_at,
        });
        out.records.push((inst.id.clone(), rec));
    }
    out
}

/// What an unknown instance would be adopted as: the wanted instance of its id, or the cron job
/// whose run it is.
fn template_of<'a>(
    id: &str,
    wanted: &HashMap<&str, &'a Wanted>,
    cron: &'a [CronJob],
) -> Option<&'a Wanted> {
    wanted.get(id).copied().or_else(|| {
        cron.iter()
            .find(|c| is_run(id) && generation_of(id) == Some(c.template.generation.as_str()))
            .map(|c| &c.template)
    })
}

#[cfg(test)]
mod tests;
