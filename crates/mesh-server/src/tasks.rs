//! One-off work for agents (`mesh run`, `mesh exec`): handed to the rack's connected agents on
//! their watch streams (each acts only on tasks for its own server), answered through the
//! gateway, and awaited here by the request that asked.
//!
//! Tasks live in this control plane's memory: the CLI's request and the agent's watch stream
//! must reach the same control plane (true of `mesh up`; several control planes behind a load
//! balancer would need a shared queue).

use std::collections::HashMap;
use std::sync::Mutex;

use mesh_types::agent::{Task, TaskResult};
use tokio::sync::{broadcast, oneshot};

/// Why a task could not be handed to an agent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TaskError {
    #[error("no agent of rack {rack} is connected to this control plane")]
    NoAgent { rack: String },
}

#[derive(Default)]
pub struct TaskHub {
    racks: Mutex<HashMap<String, broadcast::Sender<Task>>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<TaskResult>>>,
}

impl TaskHub {
    fn sender(&self, rack: &str) -> broadcast::Sender<Task> {
        let mut racks = self.racks.lock().unwrap_or_else(|e| e.into_inner());
        racks
            .entry(rack.to_string())
            .or_insert_with(|| broadcast::channel(64).0)
            .clone()
    }

    /// Tasks for `rack`, for one agent's watch stream.
    pub fn subscribe(&self, rack: &str) -> broadcast::Receiver<Task> {
        self.sender(rack).subscribe()
    }

    /// Hands a task to the rack's agents; the receiver gets its result.
    pub fn send(&self, rack: &str, task: Task) -> Result<oneshot::Receiver<TaskResult>, TaskError> {
        let (tx, rx) = oneshot::channel();
        let id = task.id().to_string();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), tx);
        if self.sender(rack).send(task).is_err() {
            self.waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            return Err(TaskError::NoAgent {
                rack: rack.to_string(),
            });
        }
        Ok(rx)
    }

    /// An agent's answer; false if nobody waits for that task (any more).
    pub fn complete(&self, id: &str, result: TaskResult) -> bool {
        match self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
        {
            Some(tx) => tx.send(result).is_ok(),
            None => false,
        }
    }

    /// The asker went away.
    pub fn forget(&self, id: &str) {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

/// A random task id.
pub fn new_id() -> String {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(id: &str) -> Task {
        Task::Exec {
            id: id.into(),
            server: "s1".parse().unwrap(),
            environment: "shop".parse().unwrap(),
            instance: "app-web-1".into(),
            command: vec!["ls".into()],
        }
    }

    #[test]
    fn a_task_for_a_rack_without_agents_is_refused_and_forgotten() {
        let hub = TaskHub::default();
        let e = hub.send("local", exec("t1")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no agent of rack local is connected to this control plane"
        );
        assert!(!hub.complete("t1", TaskResult::default()));
    }

    #[test]
    fn a_connected_agent_gets_the_task_and_the_asker_its_result() {
        let hub = TaskHub::default();
        let mut agent = hub.subscribe("local");
        let done = hub.send("local", exec("t1")).unwrap();
        assert_eq!(agent.try_recv().unwrap().id(), "t1");
        assert!(hub.complete("t1", TaskResult::default()));
        assert!(done.blocking_recv().is_ok());
    }
}
