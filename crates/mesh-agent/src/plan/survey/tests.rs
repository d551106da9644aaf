use std::collections::{HashMap, HashSet};

use mesh_types::Schedule;

use super::super::fixtures::{listed, listed_as, service, state, worker};
use super::super::{CronJob, Wanted, instance_id, wanted};
use super::*;

/// A one-off run's id, as `mesh run` makes them.
const ONEOFF: &str = "app-run-x0a1b2c3d";
/// Well past any backoff or settle time, so timing never decides these tests by accident.
const NOW: UnixMs = 1_000_000;

fn no_records() -> HashMap<String, Record> {
    HashMap::new()
}

fn web(instances: u32) -> Vec<Wanted> {
    wanted(&state(
        vec![service("web", instances, "httpd")],
        Some("busybox"),
    ))
    .0
}

/// Survey, store its records, let every probe answer `healthy`, and plan: one reconcile pass.
fn pass(
    listed: &[InstanceState],
    records: &mut HashMap<String, Record>,
    creating: &HashSet<String>,
    wanted: &[Wanted],
    healthy: bool,
) -> Vec<Action> {
    let mut s = survey(listed, records, creating, wanted, &[], NOW);
    records.extend(std::mem::take(&mut s.records));
    for p in std::mem::take(&mut s.probes) {
        if let Some(r) = records.get_mut(&p.id) {
            r.healthy = healthy;
        }
        s.probed(&p.id, healthy);
    }
    s.actions(wanted, NOW)
}

#[test]
fn a_oneoff_listed_while_it_is_still_being_created_is_not_an_orphan() {
    // The runtime lists a one-off before its create returns, not running yet, and before the
    // agent has a record of it. Removing it then broke its create ('invalid netns path').
    let mid_create = listed(ONEOFF, "app-run", false, 9);
    let creating = HashSet::from([ONEOFF.to_string()]);
    let s = survey(
        std::slice::from_ref(&mid_create),
        &no_records(),
        &creating,
        &[],
        &[],
        NOW,
    );
    assert!(s.orphans.is_empty(), "{s:?}");
    assert!(s.records.is_empty(), "no record before its create returns");
    assert!(
        s.actions(&[], NOW).is_empty(),
        "nothing stops or deletes it"
    );
    // Not being created, the same instance is one an earlier agent left behind.
    let s = survey(&[mid_create], &no_records(), &HashSet::new(), &[], &[], NOW);
    assert_eq!(s.orphans, vec![ONEOFF.to_string()]);
}

#[test]
fn ended_oneoffs_an_earlier_agent_left_are_removed_and_running_ones_left_alone() {
    let (w, _) = wanted(&state(vec![service("web", 1, "httpd")], Some("busybox")));
    let ended = listed(ONEOFF, "app-run", false, 9);
    let running = listed("app-run-x0a1b2c3e", "app-run", true, 8);
    let mut records = no_records();
    let actions = pass(
        &[listed_as(&w[0], true), ended, running],
        &mut records,
        &HashSet::new(),
        &w,
        true,
    );
    assert_eq!(
        actions,
        vec![Action::Delete {
            id: ONEOFF.to_string()
        }]
    );
    assert!(
        !records.contains_key(ONEOFF) && !records.contains_key("app-run-x0a1b2c3e"),
        "one-offs without a task here are not adopted"
    );
}

#[test]
fn a_oneoff_this_agent_started_is_left_to_its_task_when_it_ends() {
    let template = Wanted {
        id: ONEOFF.into(),
        hostname: "app-run".into(),
        ..web(1)[0].clone()
    };
    let mut records = HashMap::from([(ONEOFF.to_string(), Record::new(&template, true))]);
    let actions = pass(
        &[listed(ONEOFF, "app-run", false, 9)],
        &mut records,
        &HashSet::new(),
        &[],
        true,
    );
    assert!(actions.is_empty(), "{actions:?}");
    assert!(
        records[ONEOFF].end_seen,
        "its end is noted like any instance's"
    );
}

#[test]
fn after_an_agent_restart_running_instances_are_adopted_not_created_again() {
    let w = web(2);
    let list = vec![
        listed(&w[0].id, &w[0].hostname, true, 2),
        listed(&w[1].id, &w[1].hostname, true, 3),
    ];
    let s = survey(&list, &no_records(), &HashSet::new(), &w, &[], NOW);
    assert!(s.orphans.is_empty());
    assert_eq!(s.records.len(), 2);
    let (id, rec) = &s.records[0];
    assert_eq!(id, &w[0].id);
    assert_eq!(rec.started_at, Some(NOW), "counted as started when adopted");
    assert_eq!(rec.address, Some(list[0].address));
    assert_eq!((rec.stack.as_str(), rec.service.as_str()), ("app", "web"));
    assert!(!rec.run && !rec.healthy);
    assert_eq!(
        s.probes.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        vec![w[0].id.as_str(), w[1].id.as_str()],
        "web instances are probed before planning"
    );
    assert!(
        s.actions(&w, NOW).is_empty(),
        "adopted instances are not created again, healthy or not"
    );
    let mut records = no_records();
    assert!(pass(&list, &mut records, &HashSet::new(), &w, true).is_empty());
    assert!(records.values().all(|r| r.healthy));
}

#[test]
fn an_adopted_worker_is_healthy_only_once_it_has_run_a_while() {
    let (w, _) = wanted(&state(vec![worker("jobs", 1)], Some("busybox")));
    let list = vec![listed_as(&w[0], true)];
    let s = survey(&list, &no_records(), &HashSet::new(), &w, &[], NOW);
    assert!(s.probes.is_empty(), "a worker has no port to probe");
    assert!(!s.records[0].1.healthy);
    let records: HashMap<String, Record> = s.records.into_iter().collect();
    let later = survey(
        &list,
        &records,
        &HashSet::new(),
        &w,
        &[],
        NOW + crate::supervise::WORKER_SETTLE_MS,
    );
    assert!(later.records[0].1.healthy);
    assert!(later.observed[0].healthy);
}

#[test]
fn a_run_of_a_cron_job_here_is_adopted_as_a_run_and_a_stray_one_left_to_the_scheduler() {
    let mut job = service("job", 1, "date");
    job.schedule = Some(Schedule::parse("@every 2m").unwrap());
    let (_, cron): (Vec<Wanted>, Vec<CronJob>) = wanted(&state(vec![job], Some("busybox")));
    let t = &cron[0].template;
    let run_id = instance_id(&t.hostname, &t.generation, "r1000");
    let stray = "app-old-0123abcd-r1000";
    let list = vec![
        listed(&run_id, &t.hostname, false, 4),
        listed(stray, "app-old", false, 5),
    ];
    let s = survey(&list, &no_records(), &HashSet::new(), &[], &cron, NOW);
    assert_eq!(s.records.len(), 1);
    let (id, rec) = &s.records[0];
    assert_eq!(id, &run_id);
    assert!(
        rec.run && rec.end_seen && rec.restart_at.is_none(),
        "{rec:?}"
    );
    assert!(s.orphans.is_empty());
    assert!(s.actions(&[], NOW).is_empty(), "runs are the scheduler's");
}

#[test]
fn an_end_is_noted_once_with_a_line_and_backs_off() {
    let w = web(1);
    let mut rec = Record::new(&w[0], false);
    rec.started(std::net::Ipv4Addr::new(10, 0, 0, 2), NOW - 5_000);
    let mut records = HashMap::from([(w[0].id.clone(), rec)]);
    let list = vec![listed_as(&w[0], false)];
    let s = survey(&list, &records, &HashSet::new(), &w, &[], NOW);
    assert_eq!(
        s.lines,
        vec![(
            w[0].id.clone(),
            format!("instance {} exited with code 1; restart 1 in 1s", w[0].id)
        )]
    );
    assert_eq!(s.observed[0].restart_at, Some(NOW + 1_000));
    assert!(s.actions(&w, NOW).is_empty(), "not before its backoff");
    assert_eq!(
        s.actions(&w, NOW + 1_000),
        vec![Action::Restart(w[0].clone())]
    );
    records.extend(s.records);
    let again = survey(&list, &records, &HashSet::new(), &w, &[], NOW + 500);
    assert!(again.lines.is_empty(), "the same end is not noted twice");
    assert_eq!(again.records[0].1.restarts, 1);
}

#[test]
fn missing_instances_start_and_healthy_ones_are_left_alone() {
    let w = web(2);
    let mut records = no_records();
    let only_first = vec![listed_as(&w[0], true)];
    assert_eq!(
        pass(&only_first, &mut records, &HashSet::new(), &w, true),
        vec![Action::Create(w[1].clone())]
    );
    let both = vec![
        listed_as(&w[0], true),
        listed(&w[1].id, &w[1].hostname, true, 3),
    ];
    assert!(pass(&both, &mut records, &HashSet::new(), &w, true).is_empty());
    assert!(
        pass(&both, &mut records, &HashSet::new(), &w, false).is_empty(),
        "an unhealthy instance is not replaced: its supervisor restarts it if it ends"
    );
}

#[test]
fn surplus_instances_stop_without_being_adopted() {
    let w = web(1);
    let two = web(2);
    let mut records = no_records();
    let list = vec![
        listed_as(&two[0], true),
        listed(&two[1].id, &two[1].hostname, true, 3),
    ];
    assert_eq!(
        pass(&list, &mut records, &HashSet::new(), &w, true),
        vec![Action::Delete {
            id: two[1].id.clone()
        }]
    );
    assert!(!records.contains_key(&two[1].id));
}

#[test]
fn a_changed_spec_is_replaced_once_the_new_instance_is_healthy() {
    let old = web(1);
    let new = wanted(&state(vec![service("web", 1, "httpd -v")], Some("busybox"))).0;
    let mut records = no_records();
    let mut list = vec![listed_as(&old[0], true)];
    assert_eq!(
        pass(&list, &mut records, &HashSet::new(), &new, true),
        vec![Action::Create(new[0].clone())]
    );
    list.push(listed(&new[0].id, &new[0].hostname, true, 3));
    assert!(
        pass(&list, &mut records, &HashSet::new(), &new, false).is_empty(),
        "the old one serves until the new one is healthy"
    );
    assert_eq!(
        pass(&list, &mut records, &HashSet::new(), &new, true),
        vec![Action::Delete {
            id: old[0].id.clone()
        }]
    );
}
