//! Bridges, veths and network namespaces, through `ip` (iproute2), and the nft table through
//! `nft`: the commands, built here so their exact form is unit-tested.
//!
//! An instance's wiring (measured at 13-19 ms as single commands) is two `ip -batch` runs: one
//! in the host namespace (create the netns, the veth pair with the peer named `eth0` directly
//! inside it, attach the host end to the bridge) and one inside the netns (addresses, routes).
//! The peer's MAC comes from its address (see [`mac_for`]); the bridge's from its gateway
//! address, so it does not change as ports come and go.

use std::net::Ipv4Addr;

use crate::error::Result;
use crate::host::{Cmd, CommandRunner, command_error, run, run_ok};
use crate::names::mac_for;
use crate::subnet::Ipv4Net;

/// One instance's place on its environment's bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wiring {
    pub netns: String,
    pub host_veth: String,
    pub bridge: String,
    pub address: Ipv4Addr,
    pub subnet: Ipv4Net,
}

pub fn netns_path(netns: &str) -> String {
    format!("/run/netns/{netns}")
}

pub fn host_batch(w: &Wiring) -> String {
    format!(
        "netns add {ns}\n\
         link add {hv} type veth peer name eth0 address {mac} netns {ns}\n\
         link set {hv} master {br}\n\
         link set {hv} up\n",
        ns = w.netns,
        hv = w.host_veth,
        br = w.bridge,
        mac = mac_for(w.address),
    )
}

pub fn netns_batch(w: &Wiring) -> String {
    format!(
        "link set lo up\n\
         addr add {ip}/{prefix} dev eth0\n\
         link set eth0 up\n\
         route add default via {gw}\n",
        ip = w.address,
        prefix = w.subnet.prefix(),
        gw = w.subnet.gateway(),
    )
}

pub async fn wire(runner: &dyn CommandRunner, w: &Wiring) -> Result<()> {
    run_ok(
        runner,
        &Cmd::new("ip").args(["-batch", "-"]).stdin(host_batch(w)),
    )
    .await?;
    run_ok(
        runner,
        &Cmd::new("ip")
            .args(["-n", &w.netns, "-batch", "-"])
            .stdin(netns_batch(w)),
    )
    .await?;
    Ok(())
}

/// Removes the host-side veth first: that is synchronous, while a namespace's interfaces go
/// away some 20-30 ms after `ip netns del`, so a quick re-create with the same name would
/// fail with "File exists". Missing pieces are fine (teardown is retried after failures).
pub async fn unwire(runner: &dyn CommandRunner, netns: &str, host_veth: &str) -> Result<()> {
    delete_link(runner, host_veth).await?;
    let cmd = Cmd::new("ip").args(["netns", "del", netns]);
    let out = run(runner, &cmd).await?;
    if !out.success() && !out.stderr_str().contains("No such file") {
        return Err(command_error(&cmd, &out));
    }
    Ok(())
}

pub async fn delete_link(runner: &dyn CommandRunner, name: &str) -> Result<()> {
    let cmd = Cmd::new("ip").args(["link", "del", name]);
    let out = run(runner, &cmd).await?;
    let err = out.stderr_str();
    if !out.success() && !err.contains("Cannot find device") && !err.contains("does not exist") {
        return Err(command_error(&cmd, &out));
    }
    Ok(())
}

pub async fn link_exists(runner: &dyn CommandRunner, name: &str) -> Result<bool> {
    Ok(
        run(runner, &Cmd::new("ip").args(["link", "show", "dev", name]))
            .await?
            .success(),
    )
}

/// Creates the bridge if missing and (re)asserts its address and state: idempotent.
pub async fn ensure_bridge(
    runner: &dyn CommandRunner,
    bridge: &str,
    subnet: Ipv4Net,
) -> Result<()> {
    let gw = subnet.gateway();
    if !link_exists(runner, bridge).await? {
        run_ok(
            runner,
            &Cmd::new("ip").args([
                "link",
                "add",
                bridge,
                "address",
                &mac_for(gw),
                "type",
                "bridge",
            ]),
        )
        .await?;
    }
    let cidr = format!("{gw}/{}", subnet.prefix());
    run_ok(
        runner,
        &Cmd::new("ip").args(["addr", "replace", &cidr, "dev", bridge]),
    )
    .await?;
    run_ok(runner, &Cmd::new("ip").args(["link", "set", bridge, "up"])).await?;
    Ok(())
}

pub async fn apply_nft(runner: &dyn CommandRunner, ruleset: &str) -> Result<()> {
    run_ok(runner, &Cmd::new("nft").args(["-f", "-"]).stdin(ruleset)).await?;
    Ok(())
}

/// Interface names in the runtime's (host) namespace.
pub async fn list_links(runner: &dyn CommandRunner) -> Result<Vec<String>> {
    let out = run_ok(runner, &Cmd::new("ip").args(["-j", "link", "show"])).await?;
    Ok(json_names(&out.stdout_str(), "ifname"))
}

/// Interface names in the runtime's namespace with their kind (`bridge`, `veth`, ...; empty
/// for a plain device such as `eth0`), from `ip -d`.
pub async fn list_links_with_kind(runner: &dyn CommandRunner) -> Result<Vec<(String, String)>> {
    let out = run_ok(runner, &Cmd::new("ip").args(["-j", "-d", "link", "show"])).await?;
    Ok(links_with_kind(&out.stdout_str()))
}

/// `ip -j -d link show` output as (name, kind) pairs.
pub fn links_with_kind(text: &str) -> Vec<(String, String)> {
    serde_json::from_str::<Vec<serde_json::Value>>(text)
        .unwrap_or_default()
        .iter()
        .filter_map(|v| {
            let name = v["ifname"].as_str()?;
            let kind = v["linkinfo"]["info_kind"].as_str().unwrap_or_default();
            Some((name.to_string(), kind.to_string()))
        })
        .collect()
}

pub async fn list_netns(runner: &dyn CommandRunner) -> Result<Vec<String>> {
    let out = run_ok(runner, &Cmd::new("ip").args(["-j", "netns", "list"])).await?;
    Ok(json_names(&out.stdout_str(), "name"))
}

/// `[{"<key>": "..."}, ...]` (iproute2's `-j`), or nothing for empty output.
pub fn json_names(text: &str, key: &str) -> Vec<String> {
    serde_json::from_str::<Vec<serde_json::Value>>(text)
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v[key].as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests;
