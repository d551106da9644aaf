use mesh_types::api::{HealthCheck, ServiceKind, ServiceStatus};
use mesh_types::{InstanceSize, Schedule};

use super::*;

const T: UnixMs = 1_700_000_000_000;

fn n(s: &str) -> Name {
    s.parse().unwrap()
}

fn env(racks: &[&str], leaving: Vec<LeavingRack>) -> Environment {
    Environment {
        name: n("shop"),
        racks: racks.iter().map(|r| n(r)).collect(),
        leaving,
        created_at: T,
        updated_at: T,
    }
}

fn gone(rack: &str, since: UnixMs, forwarding_since: Option<UnixMs>) -> LeavingRack {
    LeavingRack {
        rack: n(rack),
        since,
        drain_grace_ms: 60_000,
        forwarding_since,
    }
}

fn svc(name: &str, count: u32, schedule: Option<&str>) -> Service {
    Service {
        environment: n("shop"),
        stack: n("app"),
        name: n(name),
        kind: ServiceKind::Web,
        command: None,
        schedule: schedule.map(|s| s.parse::<Schedule>().unwrap()),
        port: 5000,
        instances: count,
        size: InstanceSize::Small,
        health: HealthCheck::default(),
        hostname: format!("app-{name}"),
        status: ServiceStatus {
            desired: count,
            running: 0,
            healthy: 0,
        },
        created_at: T,
        updated_at: T,
    }
}

fn inst(service: &str, rack: &str, state: InstanceState) -> Instance {
    Instance {
        id: format!("{service}-{rack}"),
        environment: n("shop"),
        stack: n("app"),
        service: n(service),
        deployment: None,
        server: Some(n(&format!("box-{rack}"))),
        rack: Some(n(rack)),
        state,
        address: None,
        restarts: 0,
        exit_code: None,
        message: None,
        started_at: Some(T),
        updated_at: T,
    }
}

#[test]
fn racks_taken_out_start_leaving_and_racks_put_back_stop() {
    let e = env(&["local", "east"], vec![]);
    let l = leaving_after(&e, &[n("east")], 5_000, T, |_| true);
    let mut want = gone("local", T, None);
    want.drain_grace_ms = 5_000;
    assert_eq!(l, vec![want]);

    // Leaving local, then west too: local keeps its start; west starts now.
    let e = env(&["east", "west"], vec![gone("local", T, Some(T + 1))]);
    let l = leaving_after(&e, &[n("east")], 60_000, T + 9, |_| true);
    assert_eq!(
        l,
        vec![gone("local", T, Some(T + 1)), gone("west", T + 9, None)]
    );

    // Putting local back ends its leaving.
    let l = leaving_after(
        &e,
        &[n("east"), n("west"), n("local")],
        60_000,
        T + 9,
        |_| true,
    );
    assert!(l.is_empty(), "{l:?}");

    // A rack with no live server has nothing to drain: the environment leaves it at once.
    let e = env(&["local", "east"], vec![]);
    let l = leaving_after(&e, &[n("east")], 5_000, T, |r| r.as_str() != "local");
    assert!(l.is_empty(), "{l:?}");
}

#[test]
fn a_list_must_keep_a_live_rack_when_it_takes_one_away() {
    let e = env(&["local"], vec![]);
    let any = |_: &Name| true;
    let none = |_: &Name| false;
    assert_eq!(check_racks(&e, &[], any, any), Err(MigrationError::NoRack));
    let only_local = |r: &Name| r.as_str() == "local";
    let err = check_racks(&e, &[n("east")], only_local, none).unwrap_err();
    assert_eq!(
        err,
        MigrationError::NoLiveRack {
            racks: "east".into(),
            leaving: "local".into()
        }
    );
    assert!(err.to_string().contains("nowhere to run"), "{err}");
    assert_eq!(check_racks(&e, &[n("east")], any, none), Ok(()));
    // With no live server anywhere, moving loses nothing.
    assert_eq!(check_racks(&e, &[n("east")], none, none), Ok(()));
    // Adding a rack with no server yet is fine: nothing leaves.
    assert_eq!(
        check_racks(&e, &[n("local"), n("east")], only_local, only_local),
        Ok(())
    );
}

#[test]
fn a_list_must_keep_a_healthy_rack_until_another_is() {
    let e = env(&["local"], vec![]);
    let any = |_: &Name| true;
    let only_local = |r: &Name| r.as_str() == "local";
    // east is live but shop is not healthy there yet: local must stay.
    let err = check_racks(&e, &[n("east")], any, only_local).unwrap_err();
    assert_eq!(
        err,
        MigrationError::NotHealthyYet {
            env: "shop".into(),
            racks: "east".into(),
            leaving: "local".into(),
            both: "local,east".into(),
        }
    );
    assert!(
        err.to_string()
            .contains("`mesh env update shop --rack local,east`"),
        "{err}"
    );
    // Once east is healthy, local may go.
    assert_eq!(check_racks(&e, &[n("east")], any, any), Ok(()));
    // Taking away a rack that is not healthy is always fine.
    let e = env(&["local", "east"], vec![]);
    assert_eq!(check_racks(&e, &[n("local")], any, only_local), Ok(()));
    // With no rack healthy (nothing deployed yet), nothing healthy is lost.
    assert_eq!(check_racks(&e, &[n("east")], any, |_| false), Ok(()));
}

#[test]
fn drain_grace_defaults_to_five_minutes_and_stops_at_a_day() {
    assert_eq!(grace_ms(None), Ok(300_000));
    assert_eq!(grace_ms(Some(0)), Ok(0));
    assert_eq!(grace_ms(Some(86_400)), Ok(86_400_000));
    assert_eq!(
        grace_ms(Some(86_401)),
        Err(MigrationError::GraceTooLong { max: 86_400 })
    );
}

#[test]
fn a_leaving_rack_waits_then_forwards_for_its_grace_then_finishes() {
    let waiting = gone("local", T, None);
    assert_eq!(step(&waiting, false, T + 100_000), Step::Wait);
    assert_eq!(step(&waiting, true, T + 100_000), Step::StartForwarding);
    let forwarding = gone("local", T, Some(T + 10));
    assert_eq!(step(&forwarding, true, T + 10), Step::Forward);
    // A remaining rack faltering does not stop forwarding once it started.
    assert_eq!(step(&forwarding, false, T + 60_009), Step::Forward);
    assert_eq!(step(&forwarding, false, T + 60_010), Step::Finish);
    assert_eq!(forwarding.until(), Some(T + 60_010));
}

#[test]
fn a_rack_is_healthy_when_each_service_has_its_count_there() {
    let services = [svc("web", 2, None), svc("tick", 1, Some("@every 5s"))];
    let mut list = vec![
        inst("web", "east", InstanceState::Healthy),
        inst("web", "local", InstanceState::Healthy),
        inst("web", "local", InstanceState::Healthy),
    ];
    let (state, detail) = rack_state(&n("east"), false, &services, &list);
    assert_eq!(state, PlacementState::Starting);
    assert_eq!(detail, "app-web 1/2 healthy");
    // Cron jobs do not count: they run on one rack.
    assert_eq!(
        rack_state(&n("local"), false, &services, &list).0,
        PlacementState::Healthy
    );
    list.push(inst("web", "east", InstanceState::Starting));
    assert_eq!(
        rack_state(&n("east"), false, &services, &list).0,
        PlacementState::Starting
    );
    list.push(inst("web", "east", InstanceState::Healthy));
    assert_eq!(
        rack_state(&n("east"), false, &services, &list).0,
        PlacementState::Healthy
    );
    assert_eq!(
        rack_state(&n("east"), true, &services, &list).0,
        PlacementState::Lost
    );
}

#[test]
fn placement_lists_racks_then_leaving_ones() {
    let services = [svc("web", 1, None)];
    let list = [inst("web", "local", InstanceState::Healthy)];
    let e = env(
        &["east"],
        vec![gone("local", T, None), gone("west", T, Some(T + 5))],
    );
    let p = placement(&e, &services, &list, |_| false);
    let states: Vec<(&str, PlacementState)> =
        p.iter().map(|p| (p.rack.as_str(), p.state)).collect();
    assert_eq!(
        states,
        [
            ("east", PlacementState::Starting),
            ("local", PlacementState::Leaving),
            ("west", PlacementState::Forwarding),
        ]
    );
    assert!(!remaining_healthy(&p));
    assert_eq!(p[1].detail, "serving until east is healthy");
    assert_eq!(p[2].until, Some(T + 60_005));

    let list = [inst("web", "east", InstanceState::Healthy)];
    let p = placement(&e, &services, &list, |_| false);
    assert!(remaining_healthy(&p));
    assert!(p[1].detail.contains("forwarding starts"), "{p:?}");
}

#[test]
fn a_rack_being_left_counts_as_healthy_when_it_is() {
    let services = [svc("web", 1, None)];
    let list = [
        inst("web", "local", InstanceState::Healthy),
        inst("web", "east", InstanceState::Starting),
    ];
    let e = env(&["east"], vec![gone("local", T, None)]);
    assert_eq!(healthy_racks(&e, &services, &list, |_| false), [n("local")]);
    assert!(healthy_racks(&e, &services, &list, |r| r.as_str() == "local").is_empty());
}
