//! One reconcile pass: gather what is observed, let the planner ([`crate::plan`]) decide, carry
//! its actions out. Every decision is in the planner; this file only observes and acts.

use std::collections::{BTreeSet, HashSet};

use futures_util::StreamExt;
use mesh_types::desired::DesiredState;

use super::{Agent, now_ms};
use crate::health;
use crate::plan::{self, Action, CronAction, Wanted};

/// Instances started at once: creating one is mostly waiting on runc and the kernel.
const STARTS_AT_ONCE: usize = 4;
/// Instances stopped at once; each may take its whole grace period.
const REMOVALS_AT_ONCE: usize = 16;

/// Why a reconcile pass stopped early. The pass is level-triggered: the next one tries again.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("cannot list instances (is the runtime's state directory readable?): {0}")]
    List(String),
}

impl Agent {
    /// One level-triggered pass: observe, probe, plan, act.
    pub async fn reconcile(&self, desired: &DesiredState) -> Result<(), ReconcileError> {
        let now = now_ms();
        let (wanted, cron) = plan::wanted(desired);
        let envs: BTreeSet<String> = wanted
            .iter()
            .chain(cron.iter().map(|c| &c.template))
            .map(|w| w.environment.to_string())
            .collect();
        for env in &envs {
            if let Err(e) = self.ensure_network(env).await {
                tracing::warn!(environment = %env, error = %e, "cannot set up the environment's network");
            }
        }
        let listed = self
            .runtime
            .list()
            .await
            .map_err(|e| ReconcileError::List(e.to_string()))?;

        // Adopt what runs but is unknown (an agent restart), and note what ended.
        let mut survey = {
            let mut state = self.state();
            let mut survey = plan::survey(
                &listed,
                &state.records,
                &state.creating,
                &wanted,
                &cron,
                now,
            );
            state.records.extend(std::mem::take(&mut survey.records));
            survey
        };
        for (id, line) in std::mem::take(&mut survey.lines) {
            self.system_line(&id, &line);
        }
        let probes = std::mem::take(&mut survey.probes);
        let results = futures_util::future::join_all(probes.into_iter().map(|p| async move {
            let ok = health::probe(p.address, p.port, p.http_path.as_deref()).await;
            (p.id, ok)
        }))
        .await;
        {
            let mut state = self.state();
            for (id, ok) in &results {
                if let Some(r) = state.records.get_mut(id) {
                    r.healthy = *ok;
                }
            }
        }
        for (id, ok) in results {
            survey.probed(&id, ok);
        }

        let mut removals = Vec::new();
        let mut starts = Vec::new();
        for action in survey.actions(&wanted, now) {
            match action {
                Action::Create(w) => starts.push((w, false)),
                Action::Restart(w) => starts.push((w, true)),
                Action::Delete { id } => removals.push(id),
            }
        }
        futures_util::stream::iter(starts)
            .for_each_concurrent(STARTS_AT_ONCE, |(w, again)| async move {
                if again {
                    let _ = self.runtime.delete(&w.id).await;
                }
                self.start(&w, false).await;
            })
            .await;
        // Replaced instances first leave the router (new healthy ones join it), finish what
        // they have in flight, then stop.
        if !removals.is_empty() {
            let draining: HashSet<&str> = removals.iter().map(String::as_str).collect();
            if self.publish_routing(desired, &listed, &draining) {
                self.drain(&removals).await;
            }
        }
        // Stops wait out each instance's grace period: overlap them, within reason.
        futures_util::stream::iter(removals)
            .for_each_concurrent(REMOVALS_AT_ONCE, |id| async move { self.remove(&id).await })
            .await;

        let cron_actions = plan::cron(&cron, &listed, &mut self.state().next_runs, now);
        for action in cron_actions {
            match action {
                CronAction::Start(w) => self.start(&w, true).await,
                CronAction::SkipBusy { job } => {
                    tracing::info!(job = %job, "skipping a cron run: the last one still runs")
                }
                CronAction::Remove { id } => self.remove(&id).await,
            }
        }

        self.refresh_names(&envs, &listed).await;
        self.forget_networks(&envs, &listed).await;
        self.refresh_log_sources(&listed);
        self.publish_routing(desired, &listed, &HashSet::new());
        Ok(())
    }

    /// Starts one instance; the error says why it could not start.
    pub(crate) async fn start_instance(&self, w: &Wanted, run: bool) -> Result<(), String> {
        self.start(w, run).await;
        match self
            .state()
            .records
            .get(&w.id)
            .and_then(|r| r.error.clone())
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
