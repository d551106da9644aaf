//! Logging in, tokens, the audit log, and what the CLI says when it cannot talk to the API.

use crate::harness::{Home, Platform, run_in};

#[test]
fn whoami_tokens_and_events() {
    let p = Platform::start();
    let out = p.mesh(&["whoami"]).ok();
    assert_eq!(
        out.stdout.trim(),
        format!(
            "admin (role admin) at {}, server {}",
            p.url,
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(p.mesh(&["whoami", "--json"]).ok().json()["role"], "admin");

    let out = p.mesh(&["token", "create", "ci"]).fails();
    assert!(out.error().contains("say which role"), "{out:#?}");
    let out = p
        .mesh(&["token", "create", "ci", "--role", "viewer"])
        .fails();
    assert!(out.error().contains("at least one environment"), "{out:#?}");
    let out = p.mesh(&["token", "create", "ci", "--role", "admin"]).ok();
    let secret = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .to_string();
    assert!(out.stdout.contains("shown only once"), "{out:#?}");
    let out = p.mesh(&["token", "list"]).ok();
    assert!(out.stdout.lines().any(|l| l.starts_with("ci ")), "{out:#?}");
    assert!(
        out.stdout.contains("SCOPE") && out.stdout.contains("EXPIRES"),
        "{out:#?}"
    );
    assert!(!out.stdout.contains(&secret), "{out:#?}");
    let out = p
        .mesh(&["token", "create", "ci", "--role", "admin"])
        .fails();
    assert!(out.error().contains("already exists"), "{out:#?}");

    // Another user logs in with the new token.
    let other = Home::new();
    let out = run_in(&other, &["login", &p.url, "--token", &secret], None).ok();
    assert!(
        out.stdout
            .starts_with(&format!("logged in to {} as ci (role admin", p.url)),
        "{out:#?}"
    );
    let config = std::fs::read_to_string(other.config_file()).unwrap();
    assert!(config.contains(&secret), "{config}");
    let out = run_in(&other, &["whoami"], None).ok();
    assert!(out.stdout.starts_with("ci (role admin)"), "{out:#?}");

    // A deleted token stops working at once, with a clear message.
    p.mesh(&["token", "delete", "ci"]).ok();
    let out = run_in(&other, &["env", "ls"], None).fails();
    assert!(
        out.error().starts_with("the bearer token is not valid"),
        "{out:#?}"
    );
    assert!(out.hint().unwrap().contains("mesh login"), "{out:#?}");
    let out = p.mesh(&["token", "delete", "admin"]).fails();
    assert!(out.error().contains("last admin token"), "{out:#?}");

    let out = p.mesh(&["events", "--limit", "3"]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("TIME") && lines[0].contains("ACTION"),
        "{out:#?}"
    );
    assert_eq!(lines.len(), 4, "{out:#?}");
    assert!(
        lines[1].contains("token.delete") && lines[1].contains("ci"),
        "{out:#?}"
    );
    let json = p.mesh(&["events", "--json"]).ok().json();
    assert!(
        json.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "token.create")
    );
}

#[test]
fn a_developer_token_reaches_only_its_environments() {
    let p = Platform::start();
    p.mesh(&["env", "create", "shop"]).ok();
    p.mesh(&["env", "create", "bank"]).ok();
    let out = p
        .mesh(&[
            "token",
            "create",
            "alice",
            "--role",
            "developer",
            "--env",
            "shop",
            "--expires",
            "30d",
        ])
        .ok();
    assert!(
        out.stdout
            .starts_with("created developer token alice of shop, expires "),
        "{out:#?}"
    );
    let secret = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .to_string();
    let out = p.mesh(&["token", "list"]).ok();
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("alice "))
        .unwrap();
    assert!(row.contains("developer") && row.contains("shop"), "{row}");

    let alice = Home::new();
    run_in(&alice, &["login", &p.url, "--token", &secret], None).ok();
    let out = run_in(&alice, &["whoami"], None).ok();
    assert!(
        out.stdout
            .starts_with("alice (role developer of shop, expires "),
        "{out:#?}"
    );
    let out = run_in(&alice, &["env", "ls"], None).ok();
    assert!(
        out.stdout.contains("shop") && !out.stdout.contains("bank"),
        "{out:#?}"
    );
    let out = run_in(
        &alice,
        &["--env", "bank", "--stack", "app", "stack", "config", "list"],
        None,
    )
    .fails();
    assert!(
        out.error().contains("does not reach environment \"bank\""),
        "{out:#?}"
    );
    let out = run_in(
        &alice,
        &["token", "create", "mine", "--role", "admin"],
        None,
    )
    .fails();
    assert!(out.error().contains("needs an admin token"), "{out:#?}");
    assert!(out.hint().unwrap().contains("--role"), "{out:#?}");
}

#[test]
fn wrong_tokens_and_unreachable_apis_are_explained() {
    let p = Platform::start();
    let other = Home::new();

    // Nobody logged in yet.
    let out = run_in(&other, &["env", "ls"], None).fails();
    assert!(out.error().starts_with("not logged in"), "{out:#?}");
    assert!(out.hint().unwrap().contains("mesh up"), "{out:#?}");

    // A wrong token is refused and nothing is saved.
    let out = run_in(&other, &["login", &p.url, "--token", "mesh_wrong"], None).fails();
    assert!(
        out.error()
            .starts_with(&format!("{} refused the token", p.url)),
        "{out:#?}"
    );
    assert!(!other.config_file().exists());

    // MESH_API_URL / MESH_TOKEN override the file.
    let mut cmd = assert_cmd::Command::from_std(other.command(&crate::harness::mesh_bin()));
    let output = cmd
        .env("MESH_API_URL", &p.url)
        .env("MESH_TOKEN", "mesh_wrong")
        .args(["env", "ls"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: the bearer token is not valid"),
        "{stderr}"
    );

    // Nothing listening: say what to do.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let out = run_in(&other, &["login", &dead, "--token", "x"], None).fails();
    assert_eq!(
        out.error(),
        format!(
            "cannot reach the Widemesh API at {dead}: is `mesh up` running? (or point the CLI elsewhere with `mesh login URL --token TOKEN`)"
        )
    );
    let mut cmd = assert_cmd::Command::from_std(other.command(&crate::harness::mesh_bin()));
    let output = cmd
        .env("MESH_API_URL", &dead)
        .env("MESH_TOKEN", "x")
        .args(["env", "ls"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is `mesh up` running?"));

    let out = run_in(&other, &["login", "not a url", "--token", "x"], None).fails();
    assert!(out.error().contains("is invalid"), "{out:#?}");
}

#[test]
fn completions_are_generated() {
    let home = Home::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = run_in(&home, &["completions", shell], None).ok();
        assert!(out.stdout.contains("mesh"), "{shell}: {out:#?}");
        assert!(out.stdout.contains("endpoint"), "{shell}: {out:#?}");
    }
    assert_eq!(run_in(&home, &["completions", "tcsh"], None).code, 2);
    assert_eq!(
        run_in(&home, &["--version"], None).ok().stdout.trim(),
        format!("mesh {}", env!("CARGO_PKG_VERSION"))
    );
}
