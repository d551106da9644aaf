//! Endpoints, routes and certificates.

use crate::harness::Platform;

const S: [&str; 4] = ["--env", "shop", "--stack", "app"];

fn with<'a>(args: &[&'a str]) -> Vec<&'a str> {
    S.iter().copied().chain(args.iter().copied()).collect()
}

#[test]
fn endpoints_from_create_to_delete() {
    let p = Platform::start();
    p.mesh(&["env", "create", "shop"]).ok();
    p.mesh(&with(&["create", "stack", "app"])).ok();
    p.mesh(&with(&[
        "svc", "create", "-n", "web", "--", "app", "server",
    ]))
    .ok();
    p.mesh(&with(&["svc", "create", "-n", "api", "--", "app", "api"]))
        .ok();

    let out = p
        .mesh(&with(&["endpoint", "create", "App.Example.com"]))
        .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "created endpoint app.example.com in environment shop"
    );
    assert_eq!(lines[1], "create this DNS record at your DNS provider:");
    assert!(
        lines[2].starts_with("TYPE") && lines[2].contains("NAME") && lines[2].contains("VALUE")
    );
    // The local rack's router answers on 127.0.0.1.
    let record: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(record, ["A", "app.example.com", "127.0.0.1"], "{out:#?}");

    let out = p
        .mesh(&with(&["endpoint", "create", "app.localhost"]))
        .fails();
    assert!(out.error().contains("platform alias domain"), "{out:#?}");
    let out = p
        .mesh(&with(&["endpoint", "create", "app.example.com"]))
        .fails();
    assert!(out.error().contains("already exists"), "{out:#?}");
    let out = p
        .mesh(&with(&["endpoint", "create", "bad..domain"]))
        .fails();
    assert!(
        out.error().starts_with("domain \"bad..domain\" is invalid"),
        "{out:#?}"
    );

    let out = p
        .mesh(&with(&[
            "endpoint",
            "publish",
            "app.example.com",
            "--service",
            "web",
        ]))
        .ok();
    assert!(
        out.stdout
            .starts_with("published app-web on app.example.com/"),
        "{out:#?}"
    );
    p.mesh(&with(&[
        "endpoint",
        "publish",
        "app.example.com",
        "--service",
        "api",
        "--path",
        "/api",
    ]))
    .ok();
    let out = p.mesh(&with(&["endpoint", "ls"])).ok();
    let custom = out
        .stdout
        .lines()
        .find(|l| l.starts_with("app.example.com"))
        .unwrap();
    assert!(custom.contains("custom"), "{custom}");
    assert!(
        custom.contains("/ -> app-web") && custom.contains("/api -> app-api"),
        "{custom}"
    );
    let alias = out
        .stdout
        .lines()
        .find(|l| l.starts_with("shop.localhost"))
        .unwrap();
    assert!(alias.contains("alias"), "{alias}");

    // Publishing made web a web service.
    let json = p.mesh(&with(&["svc", "show", "web", "--json"])).ok().json();
    assert_eq!(json["kind"], "web");

    let out = p
        .mesh(&with(&[
            "endpoint",
            "publish",
            "app.example.com",
            "--service",
            "nope",
        ]))
        .fails();
    assert!(out.error().contains("not found"), "{out:#?}");
    let out = p
        .mesh(&with(&[
            "endpoint",
            "publish",
            "app.example.com",
            "--service",
            "api",
            "--path",
            "api",
        ]))
        .fails();
    assert!(out.error().contains("must start with '/'"), "{out:#?}");

    let json = p
        .mesh(&with(&[
            "endpoint",
            "unpublish",
            "app.example.com",
            "--service",
            "api",
            "--json",
        ]))
        .ok()
        .json();
    assert_eq!(json["routes"].as_array().unwrap().len(), 1);
    let out = p
        .mesh(&with(&[
            "endpoint",
            "unpublish",
            "app.example.com",
            "--service",
            "api",
        ]))
        .fails();
    assert!(out.error().contains("not found"), "{out:#?}");

    let out = p
        .mesh(&with(&["endpoint", "delete", "shop.localhost"]))
        .fails();
    assert!(out.error().contains("platform alias"), "{out:#?}");
    let out = p
        .mesh(&with(&["endpoint", "delete", "app.example.com"]))
        .ok();
    assert_eq!(
        out.stdout.trim(),
        "deleted endpoint app.example.com from environment shop"
    );
    let json = p.mesh(&with(&["endpoint", "ls", "--json"])).ok().json();
    assert_eq!(json.as_array().unwrap().len(), 1);
    let out = p
        .mesh(&with(&["endpoint", "delete", "app.example.com"]))
        .fails();
    assert_eq!(out.hint(), Some("list them with `mesh endpoint ls`"));
}

#[test]
fn certificates_upload_and_list() {
    let p = Platform::start();
    p.mesh(&["env", "create", "shop"]).ok();
    let out = p.mesh(&["certificate", "list", "--env", "shop"]).ok();
    assert!(out.stdout.contains("no certificates"), "{out:#?}");

    let ck = rcgen::generate_simple_self_signed(vec![
        "shop.example.com".to_string(),
        "www.shop.example.com".to_string(),
    ])
    .unwrap();
    let dir = p.home.work();
    std::fs::write(dir.join("ssl.cert"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("ssl.key"), ck.signing_key.serialize_pem()).unwrap();
    // The key must come last: the other order is refused by the server.
    let out = p
        .mesh(&[
            "certificate",
            "upload",
            "ssl.key",
            "ssl.cert",
            "--env",
            "shop",
        ])
        .fails();
    assert!(out.error().starts_with("certificate upload:"), "{out:#?}");

    let out = p
        .mesh(&["cert", "upload", "ssl.cert", "ssl.key", "--env", "shop"])
        .ok();
    assert!(out.stdout.starts_with("uploaded certificate "), "{out:#?}");
    assert!(out.stdout.contains("shop.example.com"), "{out:#?}");

    let out = p.mesh(&["certificate", "list", "--env", "shop"]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("FINGERPRINT"), "{out:#?}");
    for col in ["DOMAINS", "SOURCE", "STATE", "EXPIRES"] {
        assert!(lines[0].contains(col), "{out:#?}");
    }
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0].len(), 16, "a short fingerprint: {row:?}");
    assert_eq!(row[1], "shop.example.com,www.shop.example.com");
    assert_eq!(row[2], "uploaded");
    assert_eq!(row[3], "issued");
    // A date, YYYY-MM-DD.
    assert_eq!(row[4].len(), 10, "{row:?}");
    assert_eq!(&row[4][4..5], "-");

    let json = p
        .mesh(&["cert", "list", "--env", "shop", "--json"])
        .ok()
        .json();
    let fp = json[0]["fingerprint"].as_str().unwrap().to_string();
    assert_eq!(fp.len(), 64);
    assert!(fp.starts_with(row[0]));
    assert!(json[0].get("key_pem").is_none(), "the key never comes back");

    let out = p
        .mesh(&["cert", "upload", "nope.pem", "--env", "shop"])
        .fails();
    assert!(out.error().starts_with("cannot read nope.pem"), "{out:#?}");

    p.mesh(&["cert", "delete", row[0], "--env", "shop"]).ok();
    let json = p
        .mesh(&["cert", "list", "--env", "shop", "--json"])
        .ok()
        .json();
    assert_eq!(json, serde_json::json!([]));
}
