use mesh_types::Schedule;

use super::super::fixtures::{listed, service, state};
use super::super::wanted;
use super::*;

/// Two minutes, in ms: the schedule of the test job.
const EVERY_MS: UnixMs = 120_000;

fn job() -> Vec<CronJob> {
    let mut svc = service("job", 1, "date");
    svc.schedule = Some(Schedule::parse("@every 2m").unwrap());
    wanted(&state(vec![svc], Some("busybox"))).1
}

fn run_id(job: &CronJob, at_ms: UnixMs) -> String {
    instance_id(
        &job.template.hostname,
        &job.template.generation,
        &format!("r{}", at_ms / 1000),
    )
}

#[test]
fn a_job_first_runs_at_its_next_time_then_again_at_each_one() {
    let jobs = job();
    let mut next = HashMap::new();
    assert!(
        cron(&jobs, &[], &mut next, 10).is_empty(),
        "not due when first seen"
    );
    let key = format!("shop/{}", jobs[0].template.hostname);
    assert_eq!(next[&key], EVERY_MS);
    assert!(cron(&jobs, &[], &mut next, EVERY_MS - 1).is_empty());
    let actions = cron(&jobs, &[], &mut next, EVERY_MS);
    let want = Wanted {
        id: run_id(&jobs[0], EVERY_MS),
        ..jobs[0].template.clone()
    };
    assert_eq!(actions, vec![CronAction::Start(want)]);
    assert_eq!(next[&key], 2 * EVERY_MS, "the next time moves on");
    assert!(cron(&jobs, &[], &mut next, EVERY_MS + 1).is_empty());
}

#[test]
fn a_due_run_is_skipped_while_the_last_one_still_runs() {
    let jobs = job();
    let host = jobs[0].template.hostname.clone();
    let mut next = HashMap::from([(format!("shop/{host}"), EVERY_MS)]);
    let still = listed(&run_id(&jobs[0], 0), &host, true, 4);
    assert_eq!(
        cron(&jobs, &[still], &mut next, EVERY_MS),
        vec![CronAction::SkipBusy { job: host.clone() }]
    );
    assert_eq!(
        next[&format!("shop/{host}")],
        2 * EVERY_MS,
        "a skipped run is not tried again before the next time"
    );
}

#[test]
fn only_the_newest_finished_runs_are_kept_and_runs_of_gone_jobs_go() {
    let jobs = job();
    let host = jobs[0].template.hostname.clone();
    let mut list: Vec<InstanceState> = (1..=KEEP_RUNS as i64 + 2)
        .map(|i| listed(&run_id(&jobs[0], i * EVERY_MS), &host, false, 4))
        .collect();
    list.push(listed("app-gone-0123abcd-r120", "app-gone", false, 5));
    list.push(listed("app-web-0123abcd-0", "app-web", true, 6));
    let mut next = HashMap::from([(format!("shop/{host}"), UnixMs::MAX)]);
    assert_eq!(
        cron(&jobs, &list, &mut next, 0),
        vec![
            CronAction::Remove {
                id: run_id(&jobs[0], 2 * EVERY_MS)
            },
            CronAction::Remove {
                id: run_id(&jobs[0], EVERY_MS)
            },
            CronAction::Remove {
                id: "app-gone-0123abcd-r120".into()
            },
        ]
    );
}
