use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use mesh_runtime::HostEntry;
use mesh_types::Schedule;

use super::fixtures::{listed, listed_as, seen, service, state};
use super::*;
use crate::supervise::Record;

#[test]
fn ids_are_readable_labels_with_a_generation() {
    let (w, _) = wanted(&state(vec![service("web", 2, "httpd")], Some("busybox")));
    assert_eq!(w.len(), 2);
    assert!(
        w[0].id.starts_with("app-web-") && w[0].id.ends_with("-0"),
        "{}",
        w[0].id
    );
    assert_eq!(generation_of(&w[0].id), Some(w[0].generation.as_str()));
    assert_eq!(w[0].generation, w[1].generation);
    let long = instance_id(&"a".repeat(63), "0123abcd", "7");
    assert!(long.len() <= 63);
    assert!(is_run("app-job-0123abcd-r1795564800"));
    assert!(!is_run("app-job-0123abcd-3"));
}

#[test]
fn the_new_server_of_a_replacement_has_ids_of_its_own() {
    let with = |salt: Option<&str>| {
        let mut st = state(vec![service("web", 1, "httpd")], Some("busybox"));
        st.server_salt = salt.map(String::from);
        wanted(&st).0[0].id.clone()
    };
    // Without a salt the ids are what they always were; each salt gives others.
    assert_ne!(with(None), with(Some("east-2")));
    assert_ne!(with(Some("east-2")), with(Some("east-3")));
    assert_eq!(with(Some("east-2")), with(Some("east-2")));
}

#[test]
fn ids_name_the_rack_only_when_the_environment_is_on_several() {
    let on = |rack: &str, several: bool| {
        let mut st = state(vec![service("web", 1, "httpd")], Some("busybox"));
        st.rack = super::fixtures::n(rack);
        st.environments[0].several_racks = several;
        wanted(&st).0[0].id.clone()
    };
    // One rack: the id does not depend on the rack's name (ids of existing instances stay).
    assert_eq!(on("local", false), on("east", false));
    // Several: each rack's instances have their own ids, unique across the environment.
    assert_ne!(on("local", true), on("east", true));
    assert_ne!(on("local", true), on("local", false));
}

#[test]
fn a_stack_without_an_image_runs_nothing_and_cron_is_not_kept_running() {
    assert!(
        wanted(&state(vec![service("web", 2, "httpd")], None))
            .0
            .is_empty()
    );
    let mut job = service("job", 1, "date");
    job.schedule = Some(Schedule::parse("@every 2m").unwrap());
    let (w, cron) = wanted(&state(vec![job], Some("busybox")));
    assert!(w.is_empty());
    assert_eq!(cron.len(), 1);
}

#[test]
fn missing_instances_are_created_and_extra_ones_deleted() {
    let (w, _) = wanted(&state(vec![service("web", 2, "httpd")], Some("busybox")));
    let actions = plan(&w, &[], 0);
    assert_eq!(
        actions,
        vec![Action::Create(w[0].clone()), Action::Create(w[1].clone())]
    );
    // Scaled down to one: index 1 of the same generation goes at once.
    let (one, _) = wanted(&state(vec![service("web", 1, "httpd")], Some("busybox")));
    let observed = vec![seen(&w[0], true, true), seen(&w[1], true, true)];
    assert_eq!(
        plan(&one, &observed, 0),
        vec![Action::Delete {
            id: w[1].id.clone()
        }]
    );
    // Nothing to do when everything is in place: plan is idempotent.
    assert!(plan(&w, &observed, 0).is_empty());
}

#[test]
fn ended_instances_restart_only_after_their_backoff() {
    let (w, _) = wanted(&state(vec![service("web", 1, "httpd")], Some("busybox")));
    let mut o = seen(&w[0], false, false);
    o.restart_at = Some(1_000);
    assert!(plan(&w, std::slice::from_ref(&o), 999).is_empty());
    assert_eq!(plan(&w, &[o], 1_000), vec![Action::Restart(w[0].clone())]);
}

#[test]
fn a_changed_service_keeps_its_old_instances_until_the_new_ones_are_healthy() {
    let (old, _) = wanted(&state(
        vec![service("web", 2, "httpd -p 1")],
        Some("busybox"),
    ));
    let (new, _) = wanted(&state(
        vec![service("web", 2, "httpd -p 2")],
        Some("busybox"),
    ));
    assert_ne!(
        old[0].generation, new[0].generation,
        "a new command is a new generation"
    );
    let running_old = vec![seen(&old[0], true, true), seen(&old[1], true, true)];
    let actions = plan(&new, &running_old, 0);
    assert_eq!(
        actions,
        vec![
            Action::Create(new[0].clone()),
            Action::Create(new[1].clone())
        ]
    );
    let mut both = running_old.clone();
    both.push(seen(&new[0], true, true));
    both.push(seen(&new[1], true, false));
    assert!(
        plan(&new, &both, 0).is_empty(),
        "one new instance is not healthy yet: the old ones stay"
    );
    both[3].healthy = true;
    assert_eq!(
        plan(&new, &both, 0),
        vec![
            Action::Delete {
                id: old[0].id.clone()
            },
            Action::Delete {
                id: old[1].id.clone()
            }
        ]
    );
}

#[test]
fn instances_of_deleted_services_go_and_finished_runs_are_left_to_the_scheduler() {
    let (w, _) = wanted(&state(vec![service("web", 1, "httpd")], Some("busybox")));
    let gone = Observed {
        id: "app-old-0123abcd-0".into(),
        environment: "shop".into(),
        hostname: "app-old".into(),
        running: true,
        healthy: true,
        restart_at: None,
    };
    let run = Observed {
        id: "app-job-0123abcd-r5".into(),
        environment: "shop".into(),
        hostname: "app-job".into(),
        running: false,
        healthy: false,
        restart_at: None,
    };
    let oneoff = Observed {
        id: "app-run-x0a1b2c3d".into(),
        environment: "shop".into(),
        hostname: "app-run".into(),
        running: true,
        healthy: false,
        restart_at: None,
    };
    assert!(is_oneoff(&oneoff.id) && !is_oneoff(&run.id));
    let actions = plan(&w, &[seen(&w[0], true, true), gone, run, oneoff], 0);
    assert_eq!(
        actions,
        vec![Action::Delete {
            id: "app-old-0123abcd-0".into()
        }]
    );
}

#[test]
fn peers_are_named_once_in_hosts_and_dns_answers_only_healthy_ones() {
    let (w, _) = wanted(&state(vec![service("web", 2, "httpd")], Some("busybox")));
    let mut healthy = Record::new(&w[1], false);
    healthy.healthy = true;
    let records = HashMap::from([
        (w[0].id.clone(), Record::new(&w[0], false)),
        (w[1].id.clone(), healthy),
    ]);
    let list = vec![
        listed_as(&w[0], true),
        listed(&w[1].id, &w[1].hostname, true, 3),
        listed("app-run-x0a1b2c3d", "app-run", true, 8),
        listed("app-job-0123abcd-r5", "app-job", true, 9),
        listed("app-old-0123abcd-0", "app-old", false, 7),
    ];
    let got = names(&list, &records);
    assert_eq!(
        got.hosts["shop"],
        vec![HostEntry::new(
            w[0].hostname.clone(),
            Ipv4Addr::new(10, 0, 0, 2)
        )],
        "one line per name; runs, one-offs and ended instances have none"
    );
    assert_eq!(
        got.dns["shop"],
        std::collections::BTreeMap::from([(
            w[0].hostname.clone(),
            vec![Ipv4Addr::new(10, 0, 0, 3)]
        )])
    );
}

#[test]
fn a_network_goes_once_nothing_places_uses_or_pins_it() {
    let assigned = vec![
        "shop".to_string(),
        "gone".to_string(),
        "busy".to_string(),
        "run".to_string(),
    ];
    let envs = BTreeSet::from(["shop".to_string()]);
    let mut stopping = listed("app-web-0123abcd-0", "app-web", false, 2);
    stopping.environment = "busy".into();
    let pinned = HashMap::from([("run".to_string(), 1)]);
    assert_eq!(
        unused_networks(&assigned, &envs, &[stopping], &pinned),
        vec!["gone".to_string()]
    );
}
