//! Environments: create, list, show, update, delete, and the mistakes users make with them.

use crate::harness::Platform;

#[test]
fn environments_from_create_to_delete() {
    let p = Platform::start();
    let out = p.mesh(&["env", "ls"]).ok();
    assert!(out.stdout.contains("no environments yet"), "{out:#?}");

    let out = p.mesh(&["env", "create", "shop"]).ok();
    assert_eq!(out.stdout.trim(), "created environment shop on rack local");

    let out = p.mesh(&["env", "ls"]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("RACKS"),
        "{out:#?}"
    );
    assert!(
        lines[1].starts_with("shop") && lines[1].contains("local"),
        "{out:#?}"
    );

    let json = p.mesh(&["env", "ls", "--json"]).ok().json();
    assert_eq!(json[0]["name"], "shop");
    assert_eq!(json[0]["racks"][0], "local");

    let out = p.mesh(&["env", "show", "shop"]).ok();
    assert!(out.stdout.contains("environment  shop"), "{out:#?}");
    // Every environment gets its platform alias.
    assert!(out.stdout.contains("shop.localhost"), "{out:#?}");
    let json = p.mesh(&["--json", "env", "show", "shop"]).ok().json();
    assert_eq!(json["name"], "shop");
    assert!(json["stacks"].as_array().unwrap().is_empty());

    // `show` without a name uses --env.
    let out = p.mesh(&["env", "show", "--env", "shop"]).ok();
    assert!(out.stdout.contains("environment  shop"), "{out:#?}");

    // Placement on several racks, the new one last.
    p.mesh(&[
        "rack",
        "create",
        "r2",
        "--provider",
        "local",
        "--region",
        "eu",
    ])
    .ok();
    let out = p
        .mesh(&["env", "update", "shop", "--rack", "local,r2"])
        .ok();
    assert_eq!(
        out.stdout.trim(),
        "environment shop is now on racks local, r2"
    );
    let json = p.mesh(&["env", "show", "shop", "--json"]).ok().json();
    assert_eq!(json["racks"], serde_json::json!(["local", "r2"]));
    let out = p.mesh(&["env", "update", "shop", "--rack", "nope"]).fails();
    assert!(out.error().contains("rack \"nope\" not found"), "{out:#?}");
    assert_eq!(out.hint(), Some("list them with `mesh rack list`"));

    // Without a terminal, deleting needs --yes.
    let out = p.mesh(&["env", "delete", "shop"]).fails();
    assert!(
        out.error()
            .starts_with("refusing to delete environment shop"),
        "{out:#?}"
    );
    assert_eq!(out.hint(), Some("pass --yes to delete it"));
    p.mesh(&["env", "show", "shop"]).ok();

    let out = p.mesh(&["env", "delete", "shop", "--yes"]).ok();
    assert_eq!(out.stdout.trim(), "deleted environment shop");
    let json = p.mesh(&["env", "ls", "--json"]).ok().json();
    assert_eq!(json, serde_json::json!([]));
}

#[test]
fn environment_mistakes_give_one_readable_line() {
    let p = Platform::start();
    let out = p.mesh(&["env", "create", "Shop"]).fails();
    assert!(
        out.error()
            .starts_with("environment name \"Shop\" is invalid"),
        "{out:#?}"
    );
    let out = p.mesh(&["env", "create", "-bad"]).code;
    // A leading dash is an unknown flag to clap: a usage error.
    assert_eq!(out, 2);
    let out = p.mesh(&["env", "create", "bad_name"]).fails();
    assert!(out.error().contains("is invalid"), "{out:#?}");

    p.mesh(&["env", "create", "shop"]).ok();
    let out = p.mesh(&["env", "create", "shop"]).fails();
    assert_eq!(out.error(), "environment \"shop\" already exists");

    let out = p.mesh(&["env", "show", "nope"]).fails();
    assert_eq!(out.error(), "environment \"nope\" not found");
    assert_eq!(out.hint(), Some("list them with `mesh env ls`"));
    let out = p.mesh(&["env", "delete", "nope", "--yes"]).fails();
    assert_eq!(out.hint(), Some("list them with `mesh env ls`"));

    let out = p
        .mesh(&["env", "create", "shop2", "--rack", "nope"])
        .fails();
    assert!(out.error().contains("rack \"nope\" not found"), "{out:#?}");

    // A name that would escape its path segment is still just a name.
    let out = p.mesh(&["env", "show", "../racks"]).fails();
    assert!(out.error().contains("not found"), "{out:#?}");

    // Commands that need an environment say how to choose one.
    let out = p.mesh(&["stack", "ls"]).fails();
    assert_eq!(
        out.error(),
        "no environment chosen: pass --env, or run this inside a directory linked with `mesh link`"
    );
    // Usage errors are clap's: exit 2.
    assert_eq!(p.mesh(&["env", "frobnicate"]).code, 2);
    assert_eq!(p.mesh(&["env", "update", "shop"]).code, 2);
}

#[test]
fn a_linked_directory_chooses_the_environment_and_stack() {
    let p = Platform::start();
    p.mesh(&["env", "create", "shop"]).ok();
    let out = p.mesh(&["link", "--env", "shop", "--stack", "app"]).ok();
    assert!(out.stdout.contains("linked"), "{out:#?}");
    assert!(
        out.stdout.contains("stack app does not exist yet"),
        "{out:#?}"
    );
    let link = std::fs::read_to_string(p.home.work().join(".mesh/link.toml")).unwrap();
    assert!(link.contains("environment = \"shop\""), "{link}");
    assert!(link.contains("stack = \"app\""), "{link}");

    // NAME defaults to the linked stack.
    let out = p.mesh(&["create", "stack"]).ok();
    assert_eq!(
        out.stdout.trim(),
        "created stack app in environment shop (formula buildpack)"
    );
    let out = p.mesh(&["env", "show"]).ok();
    assert!(out.stdout.contains("environment  shop"), "{out:#?}");

    // A subdirectory finds the link of its parent.
    let sub = p.home.work().join("src").join("deep");
    std::fs::create_dir_all(&sub).unwrap();
    let mut cmd = assert_cmd::Command::from_std(p.home.command(&crate::harness::mesh_bin()));
    let output = cmd
        .current_dir(&sub)
        .args(["stack", "show", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["name"], "app");
    assert_eq!(json["environment"], "shop");

    // Linking to an environment that does not exist is refused.
    let out = p.mesh(&["link", "--env", "nope"]).fails();
    assert_eq!(out.error(), "environment \"nope\" not found");
}
