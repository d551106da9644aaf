//! Services: web services, workers and cron jobs.

use crate::harness::Platform;

const S: [&str; 4] = ["--env", "shop", "--stack", "app"];

fn with<'a>(args: &[&'a str]) -> Vec<&'a str> {
    S.iter().copied().chain(args.iter().copied()).collect()
}

fn setup() -> Platform {
    let p = Platform::start();
    p.mesh(&["env", "create", "shop"]).ok();
    p.mesh(&with(&["create", "stack", "app"])).ok();
    p
}

#[test]
fn services_from_create_to_delete() {
    let p = setup();
    let out = p.mesh(&with(&["svc", "list"])).ok();
    assert!(out.stdout.contains("no services in stack app"), "{out:#?}");

    let out = p
        .mesh(&with(&[
            "svc",
            "create",
            "-n",
            "web",
            "--port",
            "8080",
            "--health-path",
            "/healthz",
            "--",
            "gunicorn",
            "app:wsgi",
        ]))
        .ok();
    assert_eq!(
        out.stdout.trim(),
        "created service web in stack app (worker, 1 × small, port 8080, hostname app-web)"
    );
    let out = p
        .mesh(&with(&[
            "svc",
            "create",
            "-n",
            "emailsender",
            "--schedule",
            "@every 2m",
            "--",
            "node",
            "send-emails.js",
        ]))
        .ok();
    assert!(out.stdout.contains("cron @every 2m"), "{out:#?}");
    let json = p
        .mesh(&with(&[
            "service",
            "create",
            "-n",
            "hourly",
            "--schedule",
            "5 4 * * *",
            "--size",
            "nano",
            "--json",
        ]))
        .ok()
        .json();
    assert_eq!(json["kind"], "cron");
    assert_eq!(json["schedule"], "5 4 * * *");
    assert_eq!(json["size"], "nano");
    assert_eq!(json["command"], serde_json::Value::Null);

    let out = p.mesh(&with(&["svc", "list"])).ok();
    let header = out.stdout.lines().next().unwrap();
    for col in [
        "NAME",
        "KIND",
        "COMMAND",
        "SCHEDULE",
        "SIZE",
        "DESIRED/RUNNING/HEALTHY",
        "HOSTNAME",
    ] {
        assert!(header.contains(col), "{col} missing: {out:#?}");
    }
    let web = out.stdout.lines().find(|l| l.starts_with("web ")).unwrap();
    assert!(
        web.contains("gunicorn app:wsgi") && web.contains("1/0/0") && web.contains("app-web"),
        "{web}"
    );
    let cron = out
        .stdout
        .lines()
        .find(|l| l.starts_with("emailsender "))
        .unwrap();
    assert!(
        cron.contains("cron") && cron.contains("@every 2m"),
        "{cron}"
    );

    let out = p
        .mesh(&with(&[
            "svc",
            "update",
            "web",
            "--command",
            "app server",
            "--port",
            "9090",
        ]))
        .ok();
    assert!(out.stdout.contains("command: app server"), "{out:#?}");
    let json = p.mesh(&with(&["svc", "show", "web", "--json"])).ok().json();
    assert_eq!(json["command"], "app server");
    assert_eq!(json["port"], 9090);
    assert_eq!(json["health"]["http_path"], "/healthz");

    // Clearing the schedule makes a cron job an always-on worker again.
    let json = p
        .mesh(&with(&[
            "svc",
            "update",
            "hourly",
            "--schedule",
            "",
            "--json",
        ]))
        .ok()
        .json();
    assert_eq!(json["kind"], "worker");

    let out = p
        .mesh(&with(&[
            "svc",
            "scale",
            "web",
            "--instances",
            "3",
            "--size",
            "medium",
        ]))
        .ok();
    assert_eq!(out.stdout.trim(), "service web: 3 × medium");
    let out = p.mesh(&with(&["svc", "show", "web"])).ok();
    assert!(out.stdout.contains("3 desired"), "{out:#?}");

    let out = p.mesh(&with(&["svc", "delete", "web"])).fails();
    assert!(
        out.error().starts_with("refusing to delete service web"),
        "{out:#?}"
    );
    let out = p.mesh(&with(&["svc", "delete", "web", "--yes"])).ok();
    assert_eq!(out.stdout.trim(), "deleted service web from stack app");
    let json = p.mesh(&with(&["svc", "list", "--json"])).ok().json();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(!names.contains(&"web"), "{names:?}");
}

#[test]
fn service_mistakes_are_refused() {
    let p = setup();
    let out = p
        .mesh(&with(&[
            "svc",
            "create",
            "-n",
            "bad",
            "--schedule",
            "61 * * * *",
            "--",
            "x",
        ]))
        .fails();
    assert_eq!(
        out.error(),
        "schedule \"61 * * * *\" is invalid: minute 61 is out of range 0-59"
    );
    let out = p
        .mesh(&with(&[
            "svc",
            "create",
            "-n",
            "bad",
            "--schedule",
            "@sometimes",
        ]))
        .fails();
    assert!(out.error().contains("unknown nickname"), "{out:#?}");
    p.mesh(&with(&[
        "svc",
        "create",
        "-n",
        "job",
        "--schedule",
        "@hourly",
    ]))
    .ok();
    // The server validates updates.
    let out = p
        .mesh(&with(&[
            "svc",
            "update",
            "job",
            "--schedule",
            "every now and then",
        ]))
        .fails();
    assert!(
        out.error()
            .starts_with("schedule \"every now and then\" is invalid"),
        "{out:#?}"
    );

    let out = p.mesh(&with(&["svc", "create", "-n", "Web"])).fails();
    assert!(
        out.error().starts_with("service name \"Web\" is invalid"),
        "{out:#?}"
    );
    let out = p
        .mesh(&with(&["svc", "create", "-n", "web", "--size", "huge"]))
        .fails();
    assert!(
        out.error().contains("choose one of nano, micro"),
        "{out:#?}"
    );
    let out = p
        .mesh(&with(&[
            "svc",
            "create",
            "-n",
            "web",
            "--instances",
            "1000",
        ]))
        .fails();
    assert!(out.error().contains("at most 100"), "{out:#?}");
    let out = p
        .mesh(&with(&[
            "svc",
            "create",
            "-n",
            "web",
            "--health-path",
            "healthz",
        ]))
        .fails();
    assert!(out.error().contains("health check path"), "{out:#?}");

    p.mesh(&with(&["svc", "create", "-n", "web"])).ok();
    let out = p.mesh(&with(&["svc", "create", "-n", "web"])).fails();
    assert!(out.error().contains("already exists"), "{out:#?}");
    let out = p.mesh(&with(&["svc", "show", "nope"])).fails();
    assert!(out.error().contains("not found"), "{out:#?}");
    assert_eq!(out.hint(), Some("list them with `mesh svc list`"));
    let out = p
        .mesh(&with(&["svc", "scale", "nope", "--instances", "2"]))
        .fails();
    assert!(out.error().contains("not found"), "{out:#?}");
    // Nothing to change is a usage error.
    assert_eq!(p.mesh(&with(&["svc", "scale", "web"])).code, 2);
    assert_eq!(p.mesh(&with(&["svc", "update", "web"])).code, 2);
    // A service needs a stack.
    let out = p.mesh(&["svc", "list", "--env", "shop"]).fails();
    assert!(out.error().starts_with("no stack chosen"), "{out:#?}");
}

#[test]
fn services_list_covers_every_stack_of_the_environment() {
    let p = setup();
    p.mesh(&["create", "stack", "api", "--env", "shop", "--dockerfile"])
        .ok();
    p.mesh(&with(&[
        "svc", "create", "-n", "web", "--", "app", "server",
    ]))
    .ok();
    p.mesh(&[
        "svc", "create", "-n", "worker", "--env", "shop", "--stack", "api", "--", "work",
    ])
    .ok();

    let out = p.mesh(&["services", "list", "--env", "shop"]).ok();
    let header = out.stdout.lines().next().unwrap();
    assert!(header.starts_with("STACK"), "{out:#?}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("app ") && l.contains("app-web")),
        "{out:#?}"
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("api ") && l.contains("api-worker")),
        "{out:#?}"
    );
    let json = p
        .mesh(&["services", "list", "--env", "shop", "--json"])
        .ok()
        .json();
    assert_eq!(json.as_array().unwrap().len(), 2);

    let json = p
        .mesh(&[
            "services", "list", "--env", "shop", "--stack", "api", "--json",
        ])
        .ok()
        .json();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["hostname"], "api-worker");

    let out = p.mesh(&["services", "list", "--env", "nope"]).fails();
    assert_eq!(out.hint(), Some("list them with `mesh env ls`"));

    // Stacks: list, show, release command, builder, delete.
    let out = p.mesh(&["stack", "ls", "--env", "shop"]).ok();
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("api ") && l.contains("dockerfile")),
        "{out:#?}"
    );
    let out = p
        .mesh(&with(&[
            "stack",
            "set-release-command",
            "--",
            "rails",
            "db:migrate",
        ]))
        .ok();
    assert_eq!(
        out.stdout.trim(),
        "release command of stack app: rails db:migrate"
    );
    let out = p
        .mesh(&with(&[
            "stack",
            "buildpacks",
            "set-builder",
            "heroku/buildpacks:20",
        ]))
        .ok();
    assert_eq!(
        out.stdout.trim(),
        "builder of stack app: heroku/buildpacks:20"
    );
    let json = p.mesh(&with(&["stack", "show", "--json"])).ok().json();
    assert_eq!(json["release_command"], "rails db:migrate");
    assert_eq!(json["builder"], "heroku/buildpacks:20");
    let out = p
        .mesh(&with(&["stack", "set-release-command", "--clear"]))
        .ok();
    assert_eq!(out.stdout.trim(), "stack app has no release command now");
    assert_eq!(p.mesh(&with(&["stack", "set-release-command"])).code, 2);

    let out = p
        .mesh(&["stack", "delete", "api", "--env", "shop", "--yes"])
        .ok();
    assert_eq!(out.stdout.trim(), "deleted stack api from environment shop");
    let json = p
        .mesh(&["services", "list", "--env", "shop", "--json"])
        .ok()
        .json();
    assert_eq!(json.as_array().unwrap().len(), 1);
    let out = p.mesh(&["create", "stack", "app", "--env", "shop"]).fails();
    assert!(out.error().contains("already exists"), "{out:#?}");
}
