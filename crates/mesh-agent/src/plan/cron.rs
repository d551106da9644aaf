//! Cron jobs: which runs are due (never two of one job at once) and which finished runs go.

use std::collections::{BTreeSet, HashMap};

use mesh_runtime::InstanceState;
use mesh_types::UnixMs;

use super::{CronJob, Wanted, instance_id, is_run};

/// Finished runs kept (with their output) per job.
pub const KEEP_RUNS: usize = 5;

#[derive(Debug, Clone, PartialEq)]
pub enum CronAction {
    /// A run is due: start it (a run is not restarted when it ends).
    Start(Wanted),
    /// A run is due but the job's last one still runs: this one is skipped.
    SkipBusy { job: String },
    /// A finished run past the [`KEEP_RUNS`] newest of its job, or a run of a job that is gone.
    Remove { id: String },
}

/// The cron actions at time `now`, in the order to carry them out. `next_runs` holds when each
/// job (by `<environment>/<hostname>`) is next due: a job seen for the first time is due at its
/// next time after `now`, and a due job's next time moves on whether its run starts or is
/// skipped.
pub fn cron(
    jobs: &[CronJob],
    listed: &[InstanceState],
    next_runs: &mut HashMap<String, UnixMs>,
    now: UnixMs,
) -> Vec<CronAction> {
    let mut actions = Vec::new();
    for job in jobs {
        let key = format!("{}/{}", job.template.environment, job.template.hostname);
        let runs: Vec<&InstanceState> = listed
            .iter()
            .filter(|i| {
                i.environment == job.template.environment.as_str()
                    && i.hostname == job.template.hostname
                    && is_run(&i.id)
            })
            .collect();
        let at = *next_runs
            .entry(key.clone())
            .or_insert_with(|| job.schedule.next_after(now).unwrap_or(i64::MAX));
        if at <= now {
            next_runs.insert(key, job.schedule.next_after(now).unwrap_or(i64::MAX));
            if runs.iter().any(|r| r.status.is_running()) {
                actions.push(CronAction::SkipBusy {
                    job: job.template.hostname.clone(),
                });
            } else {
                let id = instance_id(
                    &job.template.hostname,
                    &job.template.generation,
                    &format!("r{}", now / 1000),
                );
                actions.push(CronAction::Start(Wanted {
                    id,
                    ..job.template.clone()
                }));
            }
        }
        let mut finished: Vec<&&InstanceState> =
            runs.iter().filter(|r| !r.status.is_running()).collect();
        finished.sort_by(|a, b| b.id.cmp(&a.id));
        for old in finished.into_iter().skip(KEEP_RUNS) {
            actions.push(CronAction::Remove { id: old.id.clone() });
        }
    }
    // Runs of jobs that are gone.
    let wanted_hosts: BTreeSet<(String, String)> = jobs
        .iter()
        .map(|j| {
            (
                j.template.environment.to_string(),
                j.template.hostname.clone(),
            )
        })
        .collect();
    for i in listed.iter().filter(|i| is_run(&i.id)) {
        if !wanted_hosts.contains(&(i.environment.clone(), i.hostname.clone())) {
            actions.push(CronAction::Remove { id: i.id.clone() });
        }
    }
    actions
}

#[cfg(test)]
mod tests;
