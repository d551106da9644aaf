//! Reconcile, as pure functions: from the desired state and what is observed on this server to
//! the actions that close the gap. Level-triggered: running them twice on the same input gives
//! the same actions, and an action that failed is simply planned again next time. The agent
//! gathers the observations, calls these, and carries the actions out.
//!
//! - [`wanted`](wanted()): what the desired state asks of this server;
//! - [`survey`](survey()): what the runtime lists, against what this agent knows: adoption after
//!   a restart, one-offs an earlier agent left behind, health to check, ends to note;
//! - [`plan`](plan()): long-running instances to create, restart and delete;
//! - [`cron`](cron()): cron runs to start and finished ones to clear;
//! - [`names`](names()) and [`unused_networks`]: peers by name, networks no longer needed.

mod cron;
mod instances;
mod names;
mod networks;
mod survey;
mod wanted;

pub use cron::{CronAction, KEEP_RUNS, cron};
pub use instances::{Action, Observed, plan};
pub use names::{Names, names};
pub use networks::unused_networks;
pub use survey::{Probe, Survey, survey};
pub use wanted::{CronJob, Wanted, generation_of, instance_id, is_oneoff, is_run, wanted};

#[cfg(test)]
#[path = "plan/fixtures.rs"]
pub(crate) mod fixtures;
#[cfg(test)]
#[path = "plan/tests.rs"]
mod tests;
