//! Stack and service config: literal values, files, stdin, overrides and their resolution.

use crate::harness::Platform;

fn setup() -> Platform {
    let p = Platform::start();
    p.mesh(&["env", "create", "shop"]).ok();
    p.mesh(&["create", "stack", "app", "--env", "shop"]).ok();
    p
}

#[test]
fn stack_config_set_list_unset() {
    let p = setup();
    let s = ["--env", "shop", "--stack", "app"];
    let with = |args: &[&'static str]| -> Vec<&str> {
        s.iter().copied().chain(args.iter().copied()).collect()
    };

    let out = p.mesh(&with(&["stack", "config", "list"])).ok();
    assert!(
        out.stdout.contains("no config variables in stack app"),
        "{out:#?}"
    );

    let out = p
        .mesh(&with(&[
            "stack",
            "config",
            "set",
            "MESSAGE=Hello World",
            "URL=a=b",
        ]))
        .ok();
    assert_eq!(out.stdout.trim(), "set MESSAGE, URL on stack app");
    assert!(
        !out.stdout.contains("Hello"),
        "values are not echoed: {out:#?}"
    );

    std::fs::write(p.home.work().join("message.txt"), "from a file\n").unwrap();
    p.mesh(&with(&[
        "stack",
        "config",
        "set",
        "--file",
        "FILED=./message.txt",
    ]))
    .ok();
    p.mesh_stdin(
        &with(&["stack", "config", "set", "--stdin", "PIPED=-"]),
        "Hello World\n",
    )
    .ok();

    let out = p.mesh(&with(&["stack", "config", "list"])).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("KEY") && lines[0].contains("VALUE") && lines[0].contains("SCOPE")
    );
    let row = |key: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} in {out:#?}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(row("MESSAGE"), "MESSAGE Hello World stack");
    assert_eq!(row("URL"), "URL a=b stack");
    assert_eq!(row("FILED"), "FILED from a file stack");
    assert_eq!(row("PIPED"), "PIPED Hello World stack");

    let json = p
        .mesh(&with(&["stack", "config", "list", "--json"]))
        .ok()
        .json();
    let vars = json.as_array().unwrap();
    assert_eq!(vars.len(), 4);
    let piped = vars.iter().find(|v| v["key"] == "PIPED").unwrap();
    assert_eq!(piped["value"], "Hello World");

    let out = p
        .mesh(&with(&["stack", "config", "unset", "URL", "FILED"]))
        .ok();
    assert_eq!(out.stdout.trim(), "unset URL, FILED on stack app");
    let json = p
        .mesh(&with(&["stack", "config", "list", "--json"]))
        .ok()
        .json();
    assert_eq!(json.as_array().unwrap().len(), 2);

    // `mesh config` is the same, on the chosen stack.
    p.mesh(&with(&["config", "set", "RAILS_ENV=production"]))
        .ok();
    let out = p.mesh(&with(&["config", "list"])).ok();
    assert!(out.stdout.contains("RAILS_ENV"), "{out:#?}");
    p.mesh(&with(&["config", "unset", "RAILS_ENV"])).ok();
    let out = p.mesh(&with(&["config", "list"])).ok();
    assert!(!out.stdout.contains("RAILS_ENV"), "{out:#?}");
}

#[test]
fn config_mistakes_are_refused_before_anything_changes() {
    let p = setup();
    let s = ["--env", "shop", "--stack", "app"];
    let with = |args: &[&'static str]| -> Vec<&str> {
        s.iter().copied().chain(args.iter().copied()).collect()
    };

    let out = p.mesh(&with(&["config", "set", "MESSAGE"])).fails();
    assert_eq!(
        out.error(),
        "\"MESSAGE\" has no value: write MESSAGE=VALUE (to remove a variable use `config unset MESSAGE`)"
    );
    let out = p.mesh(&with(&["config", "set", "bad-key=1"])).fails();
    assert!(
        out.error().starts_with("config key \"bad-key\" is invalid"),
        "{out:#?}"
    );
    let out = p
        .mesh(&with(&["config", "set", "--file", "X=./missing.txt"]))
        .fails();
    assert!(
        out.error()
            .starts_with("cannot read the value of X from ./missing.txt"),
        "{out:#?}"
    );
    let out = p
        .mesh(&with(&["config", "set", "--stdin", "X=value"]))
        .fails();
    assert!(out.error().starts_with("--stdin takes KEY=-"), "{out:#?}");
    // PORT belongs to the platform: the server refuses it.
    let out = p.mesh(&with(&["config", "set", "PORT=1"])).fails();
    assert!(out.error().contains("PORT"), "{out:#?}");
    let out = p
        .mesh(&with(&["config", "set", "A=1", "--region", "mars"]))
        .fails();
    assert!(out.error().contains("mars"), "{out:#?}");
    let json = p.mesh(&with(&["config", "list", "--json"])).ok().json();
    assert_eq!(json, serde_json::json!([]));
    // Unknown stack.
    let out = p
        .mesh(&["config", "list", "--env", "shop", "--stack", "nope"])
        .fails();
    assert!(out.error().contains("not found"), "{out:#?}");
    assert_eq!(out.hint(), Some("list them with `mesh stack ls`"));
}

#[test]
fn overrides_win_in_the_resolved_config() {
    let p = setup();
    p.mesh(&[
        "rack",
        "create",
        "eu1",
        "--provider",
        "local",
        "--region",
        "eu",
    ])
    .ok();
    p.mesh(&["env", "update", "shop", "--rack", "local,eu1"])
        .ok();
    let s = ["--env", "shop", "--stack", "app"];
    let with = |args: &[&'static str]| -> Vec<&str> {
        s.iter().copied().chain(args.iter().copied()).collect()
    };
    p.mesh(&with(&[
        "svc", "create", "-n", "web", "--port", "8080", "--", "app", "server",
    ]))
    .ok();

    p.mesh(&with(&["config", "set", "DB=stack-db", "GREETING=hi"]))
        .ok();
    let out = p
        .mesh(&with(&["config", "set", "--region", "eu", "DB=eu-db"]))
        .ok();
    assert_eq!(
        out.stdout.trim(),
        "set DB on stack app (override for region eu)"
    );
    p.mesh(&with(&["config", "set", "--rack", "eu1", "GREETING=hallo"]))
        .ok();
    let out = p
        .mesh(&with(&["svc", "config", "set", "web", "ONLY_WEB=1"]))
        .ok();
    assert_eq!(
        out.stdout.trim(),
        "set ONLY_WEB on service web of stack app"
    );

    let out = p.mesh(&with(&["config", "list"])).ok();
    assert!(out.stdout.contains("@region eu"), "{out:#?}");
    assert!(out.stdout.contains("@rack eu1"), "{out:#?}");

    // On the first rack (local): the stack's values and the service's own.
    let json = p
        .mesh(&with(&["svc", "config", "resolved", "web", "--json"]))
        .ok()
        .json();
    assert_eq!(json["rack"], "local");
    assert_eq!(json["vars"]["DB"]["value"], "stack-db");
    assert_eq!(json["vars"]["ONLY_WEB"]["value"], "1");
    assert_eq!(json["vars"]["PORT"]["value"], "8080");

    // On eu1: the region and rack overrides win.
    let json = p
        .mesh(&with(&[
            "svc", "config", "resolved", "web", "--rack", "eu1", "--json",
        ]))
        .ok()
        .json();
    assert_eq!(json["region"], "eu");
    assert_eq!(json["vars"]["DB"]["value"], "eu-db");
    assert_eq!(json["vars"]["GREETING"]["value"], "hallo");
    let out = p
        .mesh(&with(&[
            "svc", "config", "resolved", "web", "--rack", "eu1",
        ]))
        .ok();
    assert!(
        out.stdout
            .starts_with("environment of service web on rack eu1 (region eu):"),
        "{out:#?}"
    );
    let db = out.stdout.lines().find(|l| l.starts_with("DB ")).unwrap();
    assert!(db.contains("eu-db") && db.contains("@region eu"), "{db}");

    // A service override beats the stack's region override.
    p.mesh(&with(&[
        "svc",
        "config",
        "set",
        "web",
        "DB=web-db",
        "--region",
        "eu",
    ]))
    .ok();
    let json = p
        .mesh(&with(&[
            "svc", "config", "resolved", "web", "--rack", "eu1", "--json",
        ]))
        .ok()
        .json();
    assert_eq!(json["vars"]["DB"]["value"], "web-db");

    let out = p.mesh(&with(&["svc", "config", "list", "web"])).ok();
    assert!(
        out.stdout.contains("ONLY_WEB") && out.stdout.contains("web-db"),
        "{out:#?}"
    );
    assert!(!out.stdout.contains("stack-db"), "{out:#?}");
    p.mesh(&with(&[
        "svc", "config", "unset", "web", "DB", "--region", "eu",
    ]))
    .ok();
    let json = p
        .mesh(&with(&[
            "svc", "config", "resolved", "web", "--rack", "eu1", "--json",
        ]))
        .ok()
        .json();
    assert_eq!(json["vars"]["DB"]["value"], "eu-db");

    let out = p
        .mesh(&with(&[
            "svc", "config", "resolved", "web", "--rack", "nope",
        ]))
        .fails();
    assert!(out.error().contains("nope"), "{out:#?}");
}
