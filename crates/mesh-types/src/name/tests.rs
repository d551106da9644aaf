use super::*;

#[test]
fn accepts_dns_labels() {
    for ok in ["a", "shop", "app-web", "a1", &"a".repeat(63)] {
        assert_eq!(Name::parse(ok).unwrap().as_str(), ok);
    }
}

#[test]
fn refuses_bad_names_with_a_reason() {
    let cases = [
        ("", "empty"),
        ("Shop", "use lowercase"),
        ("1app", "start with a lowercase letter"),
        ("-app", "start with a lowercase letter"),
        ("app-", "end with a dash"),
        ("app_web", "'_'"),
        ("app.web", "'.'"),
        (&"a".repeat(64), "64 characters"),
    ];
    for (bad, why) in cases {
        let e = Name::parse_as("stack name", bad).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("stack name"), "{msg}");
        assert!(msg.contains(why), "{bad:?}: {msg}");
    }
}

#[test]
fn names_deserialize_with_validation() {
    assert!(serde_json::from_str::<Name>("\"ok\"").is_ok());
    let e = serde_json::from_str::<Name>("\"Not Ok\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid"), "{e}");
}

#[test]
fn domains_are_lowercased_and_checked() {
    assert_eq!(
        Domain::parse("App.Example.COM.").unwrap().as_str(),
        "app.example.com"
    );
    assert!(Domain::parse("a..b").is_err());
    assert!(Domain::parse("-a.b").is_err());
    assert!(Domain::parse("a_b.c").is_err());
    assert!(Domain::parse("").is_err());
    let d = Domain::parse("shop.localhost").unwrap();
    assert!(d.is_within("localhost"));
    assert!(!d.is_within("host"));
    assert!(Domain::parse("localhost").unwrap().is_within("localhost"));
}

#[test]
fn config_keys_are_env_var_names() {
    assert!(ConfigKey::parse("DATABASE_URL").is_ok());
    assert!(ConfigKey::parse("_x1").is_ok());
    assert!(ConfigKey::parse("1X").is_err());
    assert!(ConfigKey::parse("A-B").is_err());
    assert!(ConfigKey::parse("").is_err());
}

#[test]
fn versions_print_with_a_v() {
    assert_eq!(Version::parse("v3").unwrap(), Version(3));
    assert_eq!(Version::parse("12").unwrap().to_string(), "v12");
    assert!(Version::parse("vx").is_err());
    assert_eq!(serde_json::to_string(&Version(2)).unwrap(), "\"v2\"");
}
