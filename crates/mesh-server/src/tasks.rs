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
    pub fn send(&self, rack: &str, task: Task) -> Result<oneshot::Receiver<TaskResult>, String> {
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
            return Err(format!(
                "no agent of rack {rack} is connected to this control plane"
            ));
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
