//! An environment on two racks, as a new user would run it on one machine: `mesh up` (rack
//! `local`) plus a second `mesh agent` for rack `east` with its own data directory, network
//! prefix, subnet pool and router port. Its web service runs on both racks and `mesh instances`
//! says where; its cron job runs once per tick for the whole environment, on the first rack of
//! its list, and moves to the next when that rack's agent stops (its server lost), as does
//! `mesh run`. Privileged: CI runs it as root.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;
use crate::web::{Purge, assert_root, free_port};

const PREFIX: &str = "mr";
const POOL: &str = "10.216.0.0/16";
const EAST_PREFIX: &str = "ms";
const EAST_POOL: &str = "10.217.0.0/16";
/// `--server-lost-after`: above the agents' 10 s heartbeat, short enough for a test.
const LOST_AFTER: &str = "20";

fn instances(p: &Platform) -> Vec<Value> {
    p.mesh(&["instances", "--env", "shop", "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .clone()
}

/// The racks on which `service` has a healthy instance.
fn healthy_on(list: &[Value], service: &str) -> BTreeSet<String> {
    list.iter()
        .filter(|i| i["service"] == service && i["state"] == "healthy")
        .filter_map(|i| i["rack"].as_str().map(String::from))
        .collect()
}

/// The instance ids of the cron job's runs that printed to the log, one per line printed.
fn tick_runs(p: &Platform) -> Vec<String> {
    let out = p
        .mesh(&[
            "logs",
            "--env",
            "shop",
            "--since",
            "10m",
            "--service",
            "tick",
        ])
        .ok();
    out.stdout
        .lines()
        .filter(|l| l.contains("tick-ran"))
        .map(|l| {
            let open = l
                .find('[')
                .unwrap_or_else(|| panic!("no instance in {l:?}"));
            let close = l[open..].find(']').unwrap() + open;
            // `[id@rack]`: the environment is on two racks.
            let (id, rack) = l[open + 1..close]
                .split_once('@')
                .unwrap_or_else(|| panic!("no rack in {l:?}"));
            assert!(["local", "east"].contains(&rack), "{l:?}");
            id.to_string()
        })
        .collect()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Waits (bounded) for a cron run whose (generation, tick in unix seconds) satisfies `check`;
/// returns its generation.
fn wait_for_run(p: &Platform, what: &str, check: impl Fn(&str, u64) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        for id in tick_runs(p) {
            let mut parts = id.rsplit('-');
            let tick = parts.next().unwrap_or_default();
            let generation = parts.next().unwrap_or_default();
            let at = tick.trim_start_matches('r').parse().unwrap_or(0);
            if check(generation, at) {
                return generation.to_string();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within 90s; runs: {:?}\n{}",
            tick_runs(p),
            p.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn an_environment_on_two_racks_runs_on_both_and_cron_once_on_a_live_rack() {
    assert_root();
    let home = Home::new();
    let east_dir = home.path().join("east-agent");
    let _purge = Purge::with_home(home.path().to_path_buf(), home.data_dir(), PREFIX);
    let _purge_east = Purge::new(east_dir.clone(), EAST_PREFIX);
    let p = Platform::start_with(
        home,
        &[
            "--net-prefix",
            PREFIX,
            "--subnet-pool",
            POOL,
            "--server-lost-after",
            LOST_AFTER,
        ],
    );

    let mut east = Some(RackAgent::start(
        &p,
        "east",
        "127.0.0.1",
        (EAST_PREFIX, EAST_POOL),
        (free_port(), None),
    ));
    let east_log = || east.as_ref().map(RackAgent::log).unwrap_or_default();

    let at = ["--env", "shop", "--stack", "app"];
    p.mesh(&["env", "create", "shop", "--rack", "local,east"])
        .ok();
    busybox_web(&p);

    // The web service runs on both racks, and the listing says which instance is where.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let list = instances(&p);
        if healthy_on(&list, "web") == BTreeSet::from(["east".to_string(), "local".to_string()]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "web not healthy on both racks: {list:#?}\neast agent:\n{}\nmesh up:\n{}",
            east_log(),
            p.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let table = p.mesh(&["instances", "--env", "shop"]).ok().stdout;
    for rack in ["local", "east"] {
        assert!(
            table
                .lines()
                .any(|l| l.contains("app-web") && l.split_whitespace().any(|c| c == rack)),
            "no web instance on {rack} in:\n{table}"
        );
    }

    // A cron job every 5 s: it runs once per tick for the environment, not once per rack.
    p.mesh(
        &[
            &[
                "svc",
                "create",
                "-n",
                "tick",
                "--size",
                "nano",
                "--schedule",
                "@every 5s",
            ][..],
            &at[..],
            &["--", "echo tick-ran"][..],
        ]
        .concat(),
    )
    .ok();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    while tick_runs(&p).is_empty() {
        assert!(Instant::now() < deadline, "the cron job never ran");
        std::thread::sleep(Duration::from_millis(250));
    }
    let first = Instant::now();
    std::thread::sleep(Duration::from_secs(12));
    let runs = tick_runs(&p);
    let window = first.elapsed().as_secs() + 1;
    // Each run prints once, and a tick is one run: one rack's generation, distinct ticks.
    let distinct: BTreeSet<&String> = runs.iter().collect();
    assert_eq!(distinct.len(), runs.len(), "a run printed twice: {runs:?}");
    let most = window / 5 + 1;
    assert!(
        runs.len() as u64 <= most && runs.len() >= 2,
        "{} runs in {window}s of a 5 s schedule (at most {most} once per tick): {runs:?}",
        runs.len()
    );
    let generations: BTreeSet<&str> = runs
        .iter()
        .map(|id| id.rsplit('-').nth(1).unwrap_or_default())
        .collect();
    assert_eq!(
        generations.len(),
        1,
        "the runs came from more than one rack: {runs:?}"
    );
    // The runs that are still listed ran on the first rack.
    for run in instances(&p).iter().filter(|i| i["service"] == "tick") {
        assert_eq!(run["rack"], "local", "{run}");
    }
    let on_local = generations.into_iter().next().unwrap().to_string();

    // With east first in the list, cron runs there.
    p.mesh(&["env", "update", "shop", "--rack", "east,local"])
        .ok();
    let on_east = wait_for_run(&p, "cron moved to east", |generation, _| {
        generation != on_local
    });
    // east's agent stops: once its server is lost, cron comes back to local, and so does
    // `mesh run`, while `mesh run --rack east` says why not.
    drop(east.take());
    let stopped = unix_now();
    wait_for_run(
        &p,
        "cron moved back to local once east was lost",
        |generation, at| generation == on_local && at > stopped,
    );
    assert_ne!(on_east, on_local);
    let servers = p.mesh(&["rack", "servers", "east", "--json"]).ok().json();
    assert_eq!(servers[0]["state"], "lost", "{servers}");
    let ran = p
        .mesh_for(
            &[&["run"][..], &at[..], &["--", "echo ran-$((40 + 2))"][..]].concat(),
            Duration::from_secs(60),
        )
        .ok();
    assert!(ran.stdout.contains("ran-42"), "{ran:#?}");
    let refused = p
        .mesh(&[&["run", "--rack", "east"][..], &at[..], &["--", "true"][..]].concat())
        .fails();
    assert!(
        refused.stderr.contains("of rack east is lost"),
        "{refused:#?}"
    );

    p.mesh(&["env", "delete", "shop", "--yes"]).ok();
}
