use super::*;

fn var(
    key: &str,
    value: &str,
    service: Option<&str>,
    region: Option<&str>,
    rack: Option<&str>,
) -> ConfigVar {
    let n = |s: Option<&str>| s.map(|s| Name::parse(s).unwrap());
    ConfigVar {
        key: ConfigKey::parse(key).unwrap(),
        value: value.into(),
        scope: ConfigScope {
            service: n(service),
            region: n(region),
            rack: n(rack),
        },
        updated_at: 0,
    }
}

#[test]
fn later_layers_win() {
    let vars = vec![
        var("A", "stack", None, None, None),
        var("A", "svc", Some("web"), None, None),
        var("B", "stack", None, None, None),
        var("B", "region", None, Some("eu"), None),
        var("C", "stack", None, None, None),
        var("C", "rack", None, None, Some("eu-1")),
        var("C", "svc-region", Some("web"), Some("eu"), None),
        var("D", "other-svc", Some("worker"), None, None),
        var("E", "other-region", None, Some("us"), None),
    ];
    let r = resolve(&vars, "web", "eu-1", "eu");
    assert_eq!(r["A"].value, "svc");
    assert_eq!(r["A"].from, "service web");
    assert_eq!(r["B"].value, "region");
    assert_eq!(r["C"].value, "rack");
    assert_eq!(r["C"].from, "stack @rack eu-1");
    assert!(!r.contains_key("D"));
    assert!(!r.contains_key("E"));

    let us = resolve(&vars, "worker", "us-1", "us");
    assert_eq!(us["A"].value, "stack");
    assert_eq!(us["D"].value, "other-svc");
    assert_eq!(us["E"].value, "other-region");
    assert_eq!(us["C"].value, "stack");
}

#[test]
fn values_are_checked() {
    let k = ConfigKey::parse("K").unwrap();
    assert!(check_value(&k, "v").is_ok());
    assert!(check_value(&k, "").unwrap_err().contains("config unset K"));
    assert!(
        check_value(&k, &"x".repeat(MAX_VALUE_LEN + 1))
            .unwrap_err()
            .contains("at most")
    );
    assert!(
        ConfigScope {
            region: Some(Name::parse("a").unwrap()),
            rack: Some(Name::parse("b").unwrap()),
            service: None
        }
        .check()
        .is_err()
    );
}
