//! Pods' output to the control plane, resumable and never twice. Every second the shipper reads
//! each pod's log from the second of the last line it shipped (`sinceTime`, with timestamps),
//! gives every line a position derived from its timestamp, sends the lines past the position
//! the control plane last acknowledged for the pod, and keeps the acknowledged positions in
//! its data directory. A restarted agent reads the same lines again and computes the same
//! positions, so the control plane drops what it already has.
//!
//! A line's position is the milliseconds from its pod's creation to its timestamp (plus one)
//! times 1000, plus its index among the lines of that same millisecond: the kubelet stamps every
//! line of one read with one time, and positions must stay below 2^50 (the control plane's
//! bound), which this does for 35 years of a pod's life.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use mesh_types::agent::{LogBatch, LogLine, LogStream};
use mesh_types::{Name, UnixMs};
use tokio::sync::watch;

use super::agent::KubeAgent;
use mesh_kube::names;

/// Lines per batch sent to the control plane.
const BATCH_LINES: usize = 500;
const EVERY: Duration = Duration::from_secs(1);

/// One line of a pod's log as the API gives it with `timestamps=true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    pub position: u64,
    pub at: UnixMs,
    pub text: String,
}

/// The lines of a log read with timestamps, each with its position (see the module's docs).
/// A last line without its newline is left for the next read.
pub fn parse(body: &str, created_ms: UnixMs) -> Vec<Stamped> {
    let mut out: Vec<Stamped> = Vec::new();
    let complete = match body.rfind('\n') {
        Some(i) => &body[..=i],
        None => return out,
    };
    for line in complete.lines() {
        let Some((ts, text)) = line.split_once(' ') else {
            continue;
        };
        let Ok(t) = ts.parse::<k8s_openapi::jiff::Timestamp>() else {
            continue;
        };
        let ms = u64::try_from(t.as_millisecond().saturating_sub(created_ms)).unwrap_or(0) + 1;
        let seq = out
            .iter()
            .rev()
            .take_while(|s| s.position / 1000 == ms)
            .count() as u64;
        out.push(Stamped {
            position: ms * 1000 + seq.min(999),
            at: t.as_millisecond(),
            text: text.to_string(),
        });
    }
    out
}

/// The acknowledged positions, by pod, kept in `<data-dir>/kube-log-positions.json`.
struct Positions {
    path: PathBuf,
    by_pod: BTreeMap<String, u64>,
}

impl Positions {
    fn open(dir: &std::path::Path) -> Self {
        let path = dir.join("kube-log-positions.json");
        let by_pod = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Positions { path, by_pod }
    }

    fn save(&self) {
        let tmp = self.path.with_extension("tmp");
        let body = serde_json::to_vec(&self.by_pod).unwrap_or_default();
        if let Err(e) = std::fs::write(&tmp, body).and_then(|()| std::fs::rename(&tmp, &self.path))
        {
            tracing::warn!(error = %e, path = %self.path.display(), "cannot keep log positions");
        }
    }
}

/// Ships every pod's new lines each second until `shutdown`.
pub async fn run(agent: Arc<KubeAgent>, mut shutdown: watch::Receiver<bool>) {
    let mut positions = Positions::open(&agent.opts.data_dir);
    loop {
        if let Ok(pods) = agent.pods().await {
            for pod in &pods {
                if let Err(e) = ship(&agent, pod, &mut positions).await {
                    tracing::debug!(error = %e, "log lines not shipped yet; trying again");
                }
            }
            // Positions of pods that are gone are of no more use.
            let live: std::collections::BTreeSet<String> = pods
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            let before = positions.by_pod.len();
            positions.by_pod.retain(|k, _| live.contains(k));
            if positions.by_pod.len() != before {
                positions.save();
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

async fn ship(agent: &KubeAgent, pod: &Pod, positions: &mut Positions) -> Result<(), String> {
    let (Some(name), Some(ns)) = (pod.metadata.name.as_ref(), pod.metadata.namespace.as_ref())
    else {
        return Ok(());
    };
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let label = |k: &str| labels.get(k).and_then(|v| Name::parse(v).ok());
    let (Some(environment), Some(stack)) = (label(names::ENVIRONMENT), label(names::STACK)) else {
        return Ok(());
    };
    let service =
        label(names::SERVICE).unwrap_or_else(|| Name::parse("run").unwrap_or(stack.clone()));
    // Nothing to read before the container started.
    let started = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|c| {
            c.iter().any(|c| {
                c.state.as_ref().is_some_and(|s| s.waiting.is_none()) || c.restart_count > 0
            })
        });
    if !started {
        return Ok(());
    }
    let after = positions.by_pod.get(name).copied().unwrap_or(0);
    let Some(created_ms) = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_millisecond())
    else {
        return Ok(());
    };
    let since = (after > 0).then(|| {
        let ms = created_ms + (after / 1000) as i64 - 1;
        k8s_openapi::jiff::Timestamp::from_second(ms.div_euclid(1000))
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
    });
    let params = LogParams {
        container: Some(names::CONTAINER.into()),
        timestamps: true,
        since_time: since,
        ..Default::default()
    };
    let body = Api::<Pod>::namespaced(agent.client.clone(), ns)
        .logs(name, &params)
        .await
        .map_err(|e| e.to_string())?;
    let fresh: Vec<Stamped> = parse(&body, created_ms)
        .into_iter()
        .filter(|s| s.position > after)
        .collect();
    for chunk in fresh.chunks(BATCH_LINES) {
        let lines = chunk
            .iter()
            .map(|s| LogLine {
                at: s.at,
                environment: environment.clone(),
                stack: stack.clone(),
                service: service.clone(),
                instance: name.clone(),
                stream: LogStream::Stdout,
                text: s.text.clone(),
                offset: s.position,
                rack: None,
            })
            .collect();
        agent
            .gateway
            .logs(&LogBatch { lines })
            .await
            .map_err(|e| e.to_string())?;
        if let Some(last) = chunk.last() {
            positions.by_pod.insert(name.clone(), last.position);
            positions.save();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_one_read_share_a_time_and_still_get_distinct_rising_positions() {
        let body = "2026-12-07T06:00:00.000001000Z one\n\
                    2026-12-07T06:00:00.000001000Z two\n\
                    2026-12-07T06:00:00.500000000Z three has spaces\n\
                    2026-12-07T06:00:01.000000000Z partial";
        let created = 1_796_623_199_000;
        let lines = parse(body, created);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0].text, "one");
        assert_eq!(lines[1].position, lines[0].position + 1);
        assert!(lines[2].position > lines[1].position);
        assert_eq!(lines[2].text, "three has spaces");
        // Read again from the same second: the same positions, so nothing doubles.
        assert_eq!(parse(body, created), lines);
        assert_eq!(lines[0].at, 1_796_623_200_000);
        assert_eq!(lines[0].position, 1_001_000);
        // Far below the control plane's bound of 2^50 for decades of a pod's life.
        let late = "2061-12-07T06:00:00Z x\n";
        assert!(parse(late, created)[0].position < 1 << 50);
    }
}
