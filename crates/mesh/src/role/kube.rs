//! `mesh agent` of a Kubernetes rack: the same command as on a native server, which finds out
//! from the control plane (or `--kubeconfig`, or what it ran as before) that its rack runs on a
//! cluster, and then reconciles into it instead of running instances itself.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mesh_types::api::RackRuntime;

use super::{JoinArgs, RouterListen, host_name, start_edge, wait_for_signal_or_handover};
use crate::output::print;

/// Written in the agent's data directory once it ran as a Kubernetes rack's agent: a restart
/// while the control plane is down still knows what it is.
const MARK: &str = "runtime-kubernetes";

/// Whether this agent's rack runs on Kubernetes: `--kubeconfig` says so, else the control
/// plane, else (unreachable) what this data directory ran as.
pub(super) async fn is_kubernetes(
    args: &JoinArgs,
    data_dir: &Path,
    kubeconfig: Option<&Path>,
) -> bool {
    if kubeconfig.is_some() {
        return true;
    }
    let asked = async {
        let client =
            mesh_client::Client::new(&args.api_url, &args.token).map_err(|e| e.to_string())?;
        let rack = tokio::time::timeout(std::time::Duration::from_secs(10), client.agent_rack())
            .await
            .map_err(|_| "no answer within 10 s".to_string())?
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(rack.runtime == RackRuntime::Kubernetes)
    };
    match asked.await {
        Ok(k) => k,
        Err(e) => {
            let marked = data_dir.join(MARK).exists();
            tracing::warn!(
                error = %e,
                "cannot ask the control plane what the rack runs; going by this data directory ({})",
                if marked { "a Kubernetes rack's" } else { "a native rack's" }
            );
            marked
        }
    }
}

/// What a process of a Kubernetes rack does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    /// The rack's agent: reconciles, reports, ships logs, runs one-off work (and may route).
    Agent,
    /// Only a router following the rack's routes and pods (`mesh router --routes-only`).
    Router,
}

pub(super) async fn run(
    args: JoinArgs,
    data_dir: PathBuf,
    router: Option<RouterListen>,
    kubeconfig: Option<PathBuf>,
    part: Part,
) -> Result<()> {
    let name = args.name.unwrap_or_else(host_name);
    let server_name = mesh_types::Name::parse(&name).context("the server name")?;
    let mut opts = mesh_agent::kube::KubeAgentOptions::new(
        &args.api_url,
        &args.token,
        data_dir.clone(),
        server_name,
    );
    opts.address = args.address;
    opts.kubeconfig = kubeconfig
        .map(|f| {
            std::fs::read_to_string(&f)
                .with_context(|| format!("cannot read the kubeconfig {}", f.display()))
        })
        .transpose()?;
    std::fs::create_dir_all(&data_dir).with_context(|| {
        format!(
            "cannot make the agent's data directory {}",
            data_dir.display()
        )
    })?;
    let agent = mesh_agent::kube::KubeAgent::connect(opts)
        .await
        .context("cannot start the Kubernetes rack's agent")?;
    std::fs::write(data_dir.join(MARK), b"")
        .with_context(|| format!("cannot write in {}", data_dir.display()))?;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let edge = match router {
        Some(r) => {
            let initial = agent.initial_routing().await;
            let e = start_edge(r, &data_dir, agent.routing(), initial).await?;
            agent.set_router(e.http_addr());
            Some(e)
        }
        None => None,
    };
    let (task, what) = match part {
        Part::Agent => (tokio::spawn(agent.clone().run(rx)), "agent"),
        Part::Router => (tokio::spawn(agent.clone().route(rx)), "router"),
    };
    print(format!(
        "widemesh {what} is up (Kubernetes rack): control plane {}, data {}",
        args.api_url,
        data_dir.display()
    ));
    wait_for_signal_or_handover(edge.as_ref()).await?;
    if let Some(e) = edge {
        e.stop().await;
    }
    // The cluster keeps everything running: a restarted agent carries on from it.
    tracing::info!("stopping the {what}");
    let _ = stop.send(true);
    let _ = task.await;
    tracing::info!("{what} stopped");
    Ok(())
}

/// `mesh agent-purge --kubeconfig FILE --rack NAME`: everything the rack made in the cluster
/// goes (its namespaces, so their pods, and anything else with its labels).
pub(super) async fn purge(kubeconfig: &Path, rack: &str) -> Result<()> {
    let rack = mesh_types::Name::parse(rack).context("the rack's name")?;
    let config = std::fs::read_to_string(kubeconfig)
        .with_context(|| format!("cannot read the kubeconfig {}", kubeconfig.display()))?;
    let client = mesh_kube::client::connect(&config)
        .await
        .context("cannot reach the cluster")?;
    let removed = mesh_agent::kube::apply::purge(&client, rack.as_str())
        .await
        .context("cannot remove what the rack made")?;
    print(format!(
        "removed {removed} object(s) rack {rack} made in the cluster (namespaces finish deleting in the background)"
    ));
    Ok(())
}
