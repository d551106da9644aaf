//! Racks, providers, deployments, and logs and instances before anything runs.

use crate::harness::{Home, Platform, run_in};

#[test]
fn racks_and_providers() {
    let p = Platform::start();
    // `mesh up` made the local provider and rack.
    let out = p.mesh(&["rack", "list"]).ok();
    let local = out
        .stdout
        .lines()
        .find(|l| l.starts_with("local "))
        .unwrap();
    assert!(
        local.contains("localhost") && local.contains("ready"),
        "{out:#?}"
    );
    let out = p.mesh(&["provider", "list"]).ok();
    assert!(
        out.stdout.lines().any(|l| l.starts_with("local ")),
        "{out:#?}"
    );

    let key = p.home.work().join("id_test");
    std::fs::write(
        &key,
        "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n",
    )
    .unwrap();
    let out = p
        .mesh(&[
            "provider",
            "add",
            "hetzner",
            "--kind",
            "ssh",
            "--secret",
            "user=deploy",
            "--secret-file",
            "private_key=id_test",
        ])
        .ok();
    assert_eq!(
        out.stdout.trim(),
        "added provider hetzner (ssh) with secrets private_key, user"
    );
    let out = p
        .mesh(&["provider", "add", "other", "--kind", "ssh"])
        .fails();
    assert!(out.error().contains("private_key"), "{out:#?}");
    let out = p
        .mesh(&["provider", "add", "other", "--kind", "gcp"])
        .fails();
    assert!(
        out.error()
            .contains("not supported; use local, ssh, aws or hetzner"),
        "{out:#?}"
    );
    let out = p
        .mesh(&["provider", "add", "other", "--kind", "aws"])
        .fails();
    assert!(
        out.error().contains("needs the secret access_key_id"),
        "{out:#?}"
    );
    let out = p
        .mesh(&["provider", "add", "local", "--kind", "local"])
        .fails();
    assert!(out.error().contains("already exists"), "{out:#?}");
    let json = p.mesh(&["provider", "list", "--json"]).ok().json();
    let h = json
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "hetzner")
        .unwrap();
    assert_eq!(h["secret_keys"], serde_json::json!(["private_key", "user"]));
    assert!(
        !json.to_string().contains("deploy"),
        "secret values never come back"
    );

    let out = p
        .mesh(&[
            "rack",
            "create",
            "fsn1",
            "--provider",
            "hetzner",
            "--region",
            "eu-central",
            "--size",
            "cx22",
            "--domain",
            "fsn1.example.com",
            "--address",
            "203.0.113.7",
        ])
        .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("created rack fsn1 (provider hetzner, region eu-central, size cx22"),
        "{out:#?}"
    );
    assert!(lines[1].starts_with("join token: mesh_"), "{out:#?}");
    assert!(lines[2].contains("shown only once"), "{out:#?}");
    let out = p
        .mesh(&[
            "rack",
            "create",
            "fsn2",
            "--provider",
            "hetzner",
            "--region",
            "eu-central",
        ])
        .fails();
    assert!(out.error().contains("--size is required"), "{out:#?}");
    let out = p
        .mesh(&["rack", "create", "x", "--provider", "nope", "--region", "r"])
        .fails();
    assert_eq!(out.hint(), Some("list them with `mesh provider list`"));

    let out = p.mesh(&["rack", "list"]).ok();
    let row = out.stdout.lines().find(|l| l.starts_with("fsn1 ")).unwrap();
    assert!(
        row.contains("hetzner") && row.contains("eu-central") && row.contains("cx22"),
        "{row}"
    );
    let json = p.mesh(&["rack", "show", "fsn1", "--json"]).ok().json();
    assert_eq!(json["address"], "203.0.113.7");
    let out = p.mesh(&["rack", "servers", "fsn1"]).ok();
    assert_eq!(out.stdout.trim(), "rack fsn1 has no servers yet");
    assert_eq!(
        p.mesh(&["rack", "servers", "fsn1", "--json"]).ok().json(),
        serde_json::json!([])
    );

    // A rack whose server the platform did not make cannot have it replaced by the platform.
    let out = p.mesh(&["rack", "upgrade", "fsn1"]).fails();
    assert!(
        out.error()
            .contains("the servers of rack fsn1 are not made by the platform"),
        "{out:#?}"
    );
    let out = p
        .mesh(&["rack", "resize", "fsn1", "--size", "cx32"])
        .fails();
    assert!(
        out.error()
            .contains("the servers of rack fsn1 are not made by the platform"),
        "{out:#?}"
    );
    // Nor another mesh than the control plane's, nor the size it has, nor a bad option.
    let out = p
        .mesh(&["rack", "upgrade", "fsn1", "--version", "9.9.9"])
        .fails();
    assert!(out.error().contains("installs mesh"), "{out:#?}");
    let out = p
        .mesh(&["rack", "resize", "fsn1", "--size", "cx22"])
        .fails();
    assert!(out.error().contains("is of size cx22 already"), "{out:#?}");
    // Refused by the argument parser (exit code 2), before any request.
    let out = p.mesh(&["rack", "upgrade", "fsn1", "--timeout", "3h"]);
    assert_eq!(out.code, 2, "{out:#?}");
    assert!(out.stderr.contains("from 1s to 2h"), "{out:#?}");
    let out = p.mesh(&["rack", "upgrade", "nowhere"]).fails();
    assert!(out.error().contains("nowhere"), "{out:#?}");

    // A provider in use cannot go; a rack in use cannot either.
    let out = p.mesh(&["provider", "remove", "hetzner"]).fails();
    assert!(out.error().contains("fsn1"), "{out:#?}");
    p.mesh(&["env", "create", "shop", "--rack", "fsn1"]).ok();
    let out = p.mesh(&["rack", "delete", "fsn1", "--yes"]).fails();
    assert!(out.error().contains("shop"), "{out:#?}");
    p.mesh(&["env", "delete", "shop", "--yes"]).ok();

    let out = p.mesh(&["rack", "delete", "fsn1"]).fails();
    assert!(
        out.error().starts_with("refusing to delete rack fsn1"),
        "{out:#?}"
    );
    p.mesh(&["rack", "delete", "fsn1", "--yes"]).ok();
    let out = p.mesh(&["provider", "remove", "hetzner"]).ok();
    assert_eq!(out.stdout.trim(), "removed provider hetzner");
    let out = p.mesh(&["rack", "show", "fsn1"]).fails();
    assert_eq!(out.hint(), Some("list them with `mesh rack list`"));
}

#[test]
fn deployments_logs_and_instances() {
    let p = Platform::start_with(
        crate::harness::Home::new(),
        &["--no-agent", "--builder", "none"],
    );
    p.mesh(&["env", "create", "shop"]).ok();
    p.mesh(&["link", "--env", "shop", "--stack", "app"]).ok();
    p.mesh(&["create", "stack"]).ok();

    let out = p.mesh(&["deployments", "list"]).ok();
    assert_eq!(
        out.stdout.trim(),
        "no deployments of stack app yet: deploy with `mesh deploy`"
    );
    assert_eq!(
        p.mesh(&["deployments", "list", "--json"]).ok().json(),
        serde_json::json!([])
    );
    let out = p.mesh(&["deployments", "show", "v0"]).fails();
    assert!(out.error().contains("not found"), "{out:#?}");
    let out = p.mesh(&["deployments", "show", "latest"]).fails();
    assert!(out.error().contains("write it as v0, v1"), "{out:#?}");

    // This platform cannot build (`--builder none`): deploying a source says so and why;
    // a prebuilt image is the way.
    // (Progress lines come first: what was packed and uploaded.)
    let out = p.mesh(&["deploy"]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.error().contains("cannot build sources"), "{out:#?}");
    assert!(out.error().contains("mesh deploy --image"), "{out:#?}");
    assert!(out.stdout.is_empty(), "{out:#?}");
    assert_eq!(p.mesh(&["deploy", "--dockerfile", "--buildpack"]).code, 2);
    let out = p.mesh(&["deploy", "--image", "missing.tar"]).fails();
    assert!(
        out.error().contains("cannot read the image archive"),
        "{out:#?}"
    );
    // A stack that does not exist yet is made by its first deploy.
    assert_eq!(p.mesh(&["deploy", "--stack", "fresh"]).code, 1);
    p.mesh(&["stack", "show", "fresh"]).ok();
    let out = p.mesh(&["rollback"]).fails();
    assert!(out.error().contains("runs no deployment"), "{out:#?}");

    // Nothing has run yet: no output, and that is not an error.
    let out = p.mesh(&["logs"]).ok();
    assert_eq!(out.stdout, "", "{out:#?}");
    let out = p.mesh(&["logs", "--since", "2h"]).fails();
    assert!(out.error().contains("kept for one hour"), "{out:#?}");
    let out = p.mesh(&["logs", "--since", "soon"]).fails();
    assert!(
        out.error().starts_with("--since: duration \"soon\""),
        "{out:#?}"
    );
    let out = p.mesh(&["logs", "--env", "nope"]).fails();
    assert_eq!(out.hint(), Some("list them with `mesh env ls`"));

    let out = p.mesh(&["instances"]).ok();
    assert_eq!(
        out.stdout.trim(),
        "no instances running in environment shop"
    );
    assert_eq!(
        p.mesh(&["instances", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

/// The build network's flags are checked before anything starts: a subnet overlapping the
/// instances' pool and a deny rule that is no CIDR are refused with what is wrong.
#[test]
fn build_network_flags_are_checked() {
    let home = Home::new();
    let out = run_in(
        &home,
        &[
            "up",
            "--listen",
            "127.0.0.1:0",
            "--build-subnet",
            "10.231.0.0/16",
        ],
        None,
    );
    assert_ne!(out.code, 0);
    assert!(
        out.stderr
            .contains("--build-subnet 10.231.0.0/16 overlaps --subnet-pool"),
        "{}",
        out.stderr
    );
    let out = run_in(&home, &["up", "--build-deny", "10.0.0.0/33"], None);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("prefix length '33' is not a number from 0 to 32"),
        "{}",
        out.stderr
    );
    let out = run_in(&home, &["up", "--build-deny", "10.1.2.3/8"], None);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("did you mean 10.0.0.0/8?"),
        "{}",
        out.stderr
    );
    let out = run_in(&home, &["up", "--build-allow", "registry.local"], None);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("'registry.local' is not an IPv4 or IPv6 address"),
        "{}",
        out.stderr
    );
}
