//! Moving an environment from one rack to another under steady load, as a user would: `mesh up`
//! (rack `local`, router on a loopback port) and a `mesh agent` for rack `east` with its own
//! router port. `mesh env update shop --rack local,east` brings it up on east and waits until
//! it is healthy there; `--rack east` retires local: local keeps serving until east is healthy,
//! then its router forwards the environment's hosts to east's for the drain grace, then its
//! instances stop. Clients on both routers (the old one standing for cached DNS) see no failed
//! request at any point. Each rack serves its own resolved config (`WHERE`), which shows who
//! answered. Privileged: CI runs it as root.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::edge::{curl, pki};
use crate::harness::*;
use crate::load::Load;
use crate::web::{Purge, assert_root, free_port, get, wait_for_body};

const PREFIX: &str = "mt";
const POOL: &str = "10.218.0.0/16";
const EAST_PREFIX: &str = "mu";
const EAST_POOL: &str = "10.219.0.0/16";
const HOST: &str = "shop.test";
/// Served over HTTPS only (plain HTTP is redirected), from a certificate uploaded once.
const SECURE: &str = "secure.test";
/// Short, so the test sees forwarding end; the default is five minutes.
const GRACE_S: u64 = 20;
/// A client sending `GET /` as `HOST` to the router on `port`; answered when it answers 200.
fn load_on(port: u16) -> Load {
    Load::start(move || {
        Some(match get(port, HOST) {
            Ok((200, body)) => Ok(body),
            other => Err(format!("{other:?}")),
        })
    })
}

fn rack_lines(p: &Platform) -> Vec<Value> {
    p.mesh(&["env", "show", "shop", "--json"]).ok().json()["placement"]
        .as_array()
        .unwrap()
        .clone()
}

fn instance_racks(p: &Platform, service: &str) -> Vec<String> {
    p.mesh(&["instances", "--env", "shop", "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["service"] == service)
        .filter_map(|i| i["rack"].as_str().map(String::from))
        .collect()
}

#[test]
fn moving_an_environment_to_another_rack_fails_no_request() {
    assert_root();
    let home = Home::new();
    let east_dir = home.path().join("east-agent");
    let _purge = Purge::with_home(home.path().to_path_buf(), home.data_dir(), PREFIX);
    let _purge_east = Purge::new(east_dir, EAST_PREFIX);
    let (local_http, east_http) = (free_port(), free_port());
    let (local_https, east_https) = (free_port(), free_port());
    let (h, hs) = (
        format!("127.0.0.1:{local_http}"),
        format!("127.0.0.1:{local_https}"),
    );
    let p = Platform::start_with(
        home,
        &[
            "--http-listen",
            &h,
            "--https-listen",
            &hs,
            "--net-prefix",
            PREFIX,
            "--subnet-pool",
            POOL,
        ],
    );
    let east = RackAgent::start(
        &p,
        "east",
        "127.0.0.2",
        (EAST_PREFIX, EAST_POOL),
        (east_http, Some(east_https)),
    );

    // shop on local: a web service answering with its rack's value of WHERE.
    let at = ["--env", "shop", "--stack", "app"];
    fn with<'a>(args: &[&'a str], at: &[&'a str]) -> Vec<&'a str> {
        [args, at].concat()
    }
    p.mesh(&["env", "create", "shop", "--rack", "local"]).ok();
    p.mesh(&["create", "stack", "app", "--env", "shop"]).ok();
    p.mesh(&with(&["stack", "set-image", "busybox"], &at)).ok();
    p.mesh(&with(&["config", "set", "WHERE=local"], &at)).ok();
    p.mesh(&with(
        &["config", "set", "--rack", "east", "WHERE=east"],
        &at,
    ))
    .ok();
    let web = "mkdir -p /tmp/www && echo \"rack=$WHERE\" > /tmp/www/index.html && exec httpd -f -p $PORT -h /tmp/www";
    p.mesh(
        &[
            &with(&["svc", "create", "-n", "web", "--size", "small"], &at)[..],
            &["--", web],
        ]
        .concat(),
    )
    .ok();
    p.mesh(&["endpoint", "create", HOST, "--env", "shop"]).ok();
    p.mesh(&with(
        &["endpoint", "publish", HOST, "--service", "web"],
        &at,
    ))
    .ok();
    wait_for_body(local_http, HOST, "rack=local", Duration::from_secs(90));
    // SECURE: HTTPS only, with a certificate uploaded once.
    p.mesh(&["endpoint", "create", SECURE, "--env", "shop"])
        .ok();
    p.mesh(&with(
        &["endpoint", "publish", SECURE, "--service", "web"],
        &at,
    ))
    .ok();
    p.mesh(&[
        "endpoint",
        "update",
        SECURE,
        "--env",
        "shop",
        "--https-redirect",
        "on",
    ])
    .ok();
    let (ca, leaf, key) = pki(&[SECURE]);
    let dir = p.home.work();
    std::fs::write(dir.join("ca.pem"), ca).unwrap();
    std::fs::write(dir.join("secure.pem"), leaf).unwrap();
    std::fs::write(dir.join("secure.key"), key).unwrap();
    p.mesh(&[
        "cert",
        "upload",
        "secure.pem",
        "secure.key",
        "--env",
        "shop",
    ])
    .ok();
    let ca = dir.join("ca.pem");
    let secure = |port: u16, want: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = curl("https", SECURE, port, "/", Some(&ca));
            if got.status == 200 && got.body.trim() == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "https://{SECURE}:{port} did not answer {want:?}: {got:#?}\ncertificates: {}\n{}",
                p.mesh(&["cert", "list", "--env", "shop"]).stdout,
                p.log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    secure(local_https, "rack=local");
    assert_eq!(curl("http", SECURE, local_http, "/", None).status, 308);

    // Bad input changes nothing.
    let out = p.mesh(&["env", "update", "shop", "--rack", "nope"]).fails();
    assert!(out.error().contains("rack \"nope\""), "{out:#?}");
    let out = p.mesh(&[
        "env",
        "update",
        "shop",
        "--rack",
        "east",
        "--drain-grace",
        "2d",
    ]);
    assert!(
        out.code == 2 && out.stderr.contains("at most a day"),
        "{out:#?}"
    );
    let out = p.mesh(&["env", "update", "shop", "--rack", ","]);
    assert!(
        out.code != 0 && out.stderr.contains("rack name"),
        "{out:#?}"
    );
    // Taking local away before shop runs on east would leave it nowhere healthy.
    let out = p.mesh(&["env", "update", "shop", "--rack", "east"]).fails();
    assert!(
        out.error().contains("not healthy yet")
            && out
                .error()
                .contains("mesh env update shop --rack local,east"),
        "{out:#?}"
    );
    let env = p.mesh(&["env", "show", "shop", "--json"]).ok().json();
    assert_eq!(env["racks"], serde_json::json!(["local"]), "{env}");
    assert!(env.get("leaving").is_none(), "{env}");

    let old = load_on(local_http);
    let started = Instant::now();

    // Up on east too: the command returns once east is healthy.
    let out = p
        .mesh_for(
            &["env", "update", "shop", "--rack", "local,east"],
            Duration::from_secs(180),
        )
        .ok();
    assert!(
        out.stderr.contains("east: healthy"),
        "{out:#?}\n{}",
        east.log()
    );
    let up_on_east = started.elapsed();
    wait_for_body(east_http, HOST, "rack=east", Duration::from_secs(30));
    // The custom domain's DNS records point at both racks.
    let ep = p
        .mesh(&["endpoint", "show", HOST, "--env", "shop", "--json"])
        .ok()
        .json();
    let records: Vec<&str> = ep["dns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["value"].as_str())
        .collect();
    assert_eq!(records, ["127.0.0.1", "127.0.0.2"], "{ep}");
    // The certificate uploaded once is served by east's router too.
    secure(east_https, "rack=east");
    let new = load_on(east_http);
    // A config change on two racks rolls out on both, still failing nothing.
    p.mesh(&with(
        &["config", "set", "--rack", "east", "WHERE=east2"],
        &at,
    ))
    .ok();
    wait_for_body(east_http, HOST, "rack=east2", Duration::from_secs(90));
    wait_for_body(local_http, HOST, "rack=local", Duration::from_secs(5));

    // Retire local: it forwards to east once east is healthy (it is), for the grace.
    let grace = format!("{GRACE_S}s");
    let out = p
        .mesh_for(
            &[
                "env",
                "update",
                "shop",
                "--rack",
                "east",
                "--drain-grace",
                &grace,
            ],
            Duration::from_secs(180),
        )
        .ok();
    let forwarding_at = Instant::now();
    assert!(out.stdout.contains("leaving local"), "{out:#?}");
    assert!(out.stderr.contains("local: forwarding"), "{out:#?}");
    let forwarding_after = started.elapsed();
    // local's router now answers with east's instances, and local's still run.
    wait_for_body(local_http, HOST, "rack=east2", Duration::from_secs(10));
    // Over HTTPS too, and east's router does not redirect what came to local over HTTPS.
    secure(local_https, "rack=east2");
    assert_eq!(curl("http", SECURE, local_http, "/", None).status, 308);
    assert!(
        instance_racks(&p, "web").contains(&"local".to_string()),
        "local's instances stop only after the grace"
    );
    let placement = rack_lines(&p);
    assert_eq!(placement[0]["rack"], "east", "{placement:?}");
    assert_eq!(placement[0]["state"], "healthy", "{placement:?}");
    assert_eq!(placement[1]["rack"], "local", "{placement:?}");
    assert_eq!(placement[1]["state"], "forwarding", "{placement:?}");
    let shown = p.mesh(&["env", "show", "shop"]).ok().stdout;
    assert!(
        shown.contains("local: forwarding (forwarding to east) until"),
        "{shown}"
    );

    // Clients whose DNS still says local stop before the grace ends, as their caches expire.
    let stop_old = Duration::from_secs(GRACE_S - 4);
    std::thread::sleep(stop_old.saturating_sub(forwarding_at.elapsed()));
    let old = old.finish();

    // After the grace: the environment has left local; east goes on serving.
    let deadline = Instant::now() + Duration::from_secs(60);
    while instance_racks(&p, "web").contains(&"local".to_string()) || rack_lines(&p).len() != 1 {
        assert!(
            Instant::now() < deadline,
            "local's instances still run a minute after the grace: {:?}",
            rack_lines(&p)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let left_after = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(get(local_http, HOST), Ok((404, _))) {
        assert!(
            Instant::now() < deadline,
            "local's router still serves {HOST}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Once on one rack again, east's instances get their one-rack ids: still nothing fails.
    std::thread::sleep(Duration::from_secs(10));
    let new = new.finish();
    let env = p.mesh(&["env", "show", "shop", "--json"]).ok().json();
    assert_eq!(env["racks"], serde_json::json!(["east"]), "{env}");
    assert!(env.get("leaving").is_none(), "{env}");
    let aliases: Vec<String> = p
        .mesh(&["endpoint", "list", "--env", "shop", "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["domain"].as_str().map(String::from))
        .collect();
    assert!(
        !aliases.contains(&"shop.localhost".to_string())
            && aliases.contains(&"shop.east.localhost".to_string()),
        "{aliases:?}"
    );

    eprintln!(
        "migration local -> east: healthy on east after {:.1}s, local forwarding after {:.1}s, \
         left local after {:.1}s ({GRACE_S}s grace); old router: {} ok {:?}, {} failed; \
         new router: {} ok {:?}, {} failed",
        up_on_east.as_secs_f64(),
        forwarding_after.as_secs_f64(),
        left_after.as_secs_f64(),
        old.ok,
        old.from,
        old.failures.len(),
        new.ok,
        new.from,
        new.failures.len()
    );
    assert!(
        old.failures.is_empty() && new.failures.is_empty(),
        "failed requests: old router {:?}, new router {:?}\n{}\neast agent:\n{}",
        old.failures,
        new.failures,
        p.log(),
        east.log()
    );
    assert!(
        old.from.contains_key("rack=local") && old.from.contains_key("rack=east2"),
        "{:?}",
        old.from
    );
    assert!(
        old.ok > 100 && new.ok > 100,
        "too little load: {} and {}",
        old.ok,
        new.ok
    );

    p.mesh(&["env", "delete", "shop", "--yes"]).ok();
}
