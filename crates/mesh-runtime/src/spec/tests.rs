use super::*;
use mesh_types::InstanceSize;

pub(crate) fn sample() -> InstanceSpec {
    InstanceSpec {
        id: "app-web-1".into(),
        environment: "shop".into(),
        hostname: "app-web".into(),
        image: ImageRef::single("/images/busybox/rootfs"),
        command: Some("echo $GREETING".into()),
        env: BTreeMap::from([("GREETING".into(), "hi".into())]),
        limits: InstanceSize::Nano.limits(),
        user: User::default(),
        address: None,
        hosts: vec![HostEntry::new("app-worker", Ipv4Addr::new(10, 0, 0, 3))],
    }
}

#[test]
fn a_good_spec_validates_and_runs_under_sh() {
    let s = sample();
    s.validate().unwrap();
    assert_eq!(s.args(), ["/bin/sh", "-c", "echo $GREETING"]);
    assert_eq!(s.user, User::NOBODY);
}

#[test]
fn the_image_default_is_used_without_a_command() {
    let mut s = sample();
    s.command = None;
    assert!(s.validate().is_err());
    s.image.default_command = Some(vec!["/bin/httpd".into(), "-f".into()]);
    s.validate().unwrap();
    assert_eq!(s.args(), ["/bin/httpd", "-f"]);
}

#[test]
fn refuses_what_would_break_names_or_mount_options() {
    type Mutation = Box<dyn Fn(&mut InstanceSpec)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("instance id", Box::new(|s| s.id = "App".into())),
        ("instance id", Box::new(|s| s.id = "a/b".into())),
        ("instance id", Box::new(|s| s.id = "x".repeat(64))),
        ("environment", Box::new(|s| s.environment = "-x".into())),
        ("hostname", Box::new(|s| s.hostname = "a b".into())),
        ("hosts entry", Box::new(|s| s.hosts[0].hostname = "".into())),
        ("image", Box::new(|s| s.image.layers.clear())),
        ("image", Box::new(|s| s.image.layers = vec!["/a:b".into()])),
        ("image", Box::new(|s| s.image.layers = vec!["rel".into()])),
        (
            "environment variable",
            Box::new(|s| {
                s.env.insert("A=B".into(), "x".into());
            }),
        ),
        ("limits", Box::new(|s| s.limits.memory_mb = 4)),
        ("limits", Box::new(|s| s.limits.cpu = 0.0)),
        ("limits", Box::new(|s| s.limits.pids = 1)),
        ("command", Box::new(|s| s.command = Some("a\0b".into()))),
    ];
    for (want, mutate) in cases {
        let mut s = sample();
        mutate(&mut s);
        match s.validate() {
            Err(Error::Invalid { what, .. }) => assert_eq!(what, want),
            other => panic!("expected an invalid {want}, got {other:?}"),
        }
    }
}

#[test]
fn specs_round_trip_through_json() {
    let s = sample();
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<InstanceSpec>(&json).unwrap(), s);
    let st = Status::Exited(ExitStatus {
        code: Some(137),
        signal: Some(9),
        oom_killed: true,
    });
    let json = serde_json::to_string(&st).unwrap();
    assert!(json.contains("\"state\":\"exited\""), "{json}");
    assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), st);
}
