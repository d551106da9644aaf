//! The `aws` and `hetzner` providers. No cloud is reachable from here: the AWS driver talks to
//! moto's EC2 server (PyPI), the Hetzner driver to a fake that checks every request against
//! the published API description vendored in `fixtures/` (see `cloud_lab.rs`). What they send
//! is read back and checked; the user data is run in a namespace server, where the agent it
//! starts downloads mesh from the control plane and joins its rack. Privileged: CI runs it as
//! root.

use std::time::Instant;

use base64::Engine as _;
use mesh_provider::aws::{AwsDriver, AwsSettings};
use mesh_provider::hetzner::{HetznerDriver, HetznerSettings};
use mesh_provider::{Bootstrap, CreateServer, Driver, ProviderError, cloudinit};

use crate::cloud_lab::*;
use crate::harness::*;
use crate::provider_lab::ControlPlane;
use crate::web::assert_root;

fn aws(moto: &Moto, key: &str, image: Option<String>) -> AwsDriver {
    AwsDriver::new(AwsSettings {
        access_key_id: key.into(),
        secret_access_key: "moto-secret".into(),
        endpoint: Some(moto.url.clone()),
        image,
        ..Default::default()
    })
    .unwrap()
}

fn boot(api_url: &str, rack: &str, token: &str, root: &std::path::Path) -> Bootstrap {
    Bootstrap {
        binary: mesh_bin(),
        api_url: api_url.into(),
        join_token: token.into(),
        rack: rack.into(),
        root: root.display().to_string(),
        http_listen: "0.0.0.0:80".into(),
        net: Some(cloud_net()),
        kube: None,
    }
}

fn req(name: &str, size: &str, region: &str, b: Bootstrap) -> CreateServer {
    CreateServer {
        name: name.into(),
        size: size.into(),
        region: region.into(),
        bootstrap: b,
    }
}

#[test]
fn the_aws_driver_makes_lists_and_deletes_instances_in_moto_and_its_user_data_joins_an_agent() {
    assert_root();
    let moto = Moto::start(&[]);
    let server = NsServer::new();
    let cp = ControlPlane::start(&server.gateway);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let probe = aws(&moto, "AKIDWIDEMESH", None);
    let ec2 = probe.client("eu-central-1");
    // An image moto has (moto has no Debian account: the default lookup is not exercised).
    let images = rt.block_on(ec2.describe_images().send()).unwrap();
    let ami = images.images()[0].image_id().unwrap().to_string();
    let driver = aws(&moto, "AKIDWIDEMESH", Some(ami.clone()));

    // A rack on the `local` provider for the agent to join (the control plane makes no server
    // for it); the driver makes the server by hand.
    let token = cp.rack("east", "local", &server.ip);
    let b = boot(&cp.url, "east", &token, &server.root);
    let t = Instant::now();
    let made = rt
        .block_on(driver.create(&req("east-1", "t3.small", "eu-central-1", b.clone())))
        .unwrap_or_else(|e| panic!("{e}\nmoto:\n{}", moto.log()));
    let created_in = t.elapsed();
    assert_eq!((made.name.as_str(), made.rack.as_str()), ("east-1", "east"));
    assert!(!made.host.is_empty(), "{made:?}");
    assert_eq!(
        made.dir,
        server.root.join("east/east-1").display().to_string()
    );

    // What EC2 was asked: the instance type, the tags, the image, the user data, IMDSv2 only.
    let out = rt
        .block_on(
            ec2.describe_instances()
                .filters(
                    aws_sdk_ec2::types::Filter::builder()
                        .name("tag:widemesh:server")
                        .values("east-1")
                        .build(),
                )
                .send(),
        )
        .unwrap();
    let inst = &out.reservations()[0].instances()[0];
    let id = inst.instance_id().unwrap().to_string();
    assert_eq!(inst.instance_type().unwrap().as_str(), "t3.small");
    assert_eq!(inst.image_id(), Some(ami.as_str()));
    let tags: Vec<(String, String)> = inst
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().into(), t.value().unwrap().into()))
        .collect();
    for want in [
        ("widemesh:rack", "east"),
        ("widemesh:server", "east-1"),
        ("Name", "east-1"),
    ] {
        assert!(
            tags.contains(&(want.0.into(), want.1.into())),
            "{want:?} not in {tags:?}"
        );
    }
    let md = inst.metadata_options().unwrap();
    assert_eq!(md.http_tokens().unwrap().as_str(), "required");
    assert_eq!(md.http_put_response_hop_limit(), Some(1));
    let attr = rt
        .block_on(
            ec2.describe_instance_attribute()
                .instance_id(&id)
                .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
                .send(),
        )
        .unwrap();
    let user_data = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(attr.user_data().unwrap().value().unwrap())
            .unwrap(),
    )
    .unwrap();
    let sum = cloudinit::sha256_file(&mesh_bin()).unwrap();
    assert_eq!(
        user_data,
        cloudinit::user_data(&b, "east-1", &sum).unwrap(),
        "the user data is the cloud-init of the bootstrap"
    );

    // Listed, by its tags, with its address.
    let listed = rt.block_on(driver.list()).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].name, "east-1");
    assert_eq!(listed[0].host, made.host);

    // The user data, run in a namespace server: the agent downloads mesh from the control
    // plane, checks it, joins the rack and is ready.
    let t = Instant::now();
    let ran = run_cloud_config(&user_data, &server, &server.root);
    let dir = server.root.join("east/east-1");
    assert_eq!(
        ran.skipped,
        ["/etc/systemd/system/widemesh-east-east-1.service"]
    );
    assert_eq!(ran.written.len(), 3, "{ran:?}");
    let ready = cp.wait_ready("east", "east-1", &dir.join("agent.log"));
    let joined_in = t.elapsed();
    assert_eq!(ready["address"], server.ip.as_str(), "{ready}");
    assert_eq!(cloudinit::sha256_file(&dir.join("mesh")).unwrap(), sum);
    assert_eq!(
        std::fs::read_to_string(dir.join("address")).unwrap().trim(),
        server.ip
    );
    let install_log = std::fs::read_to_string(dir.join("install.log")).unwrap();
    assert!(
        install_log.contains("agent east-1 started"),
        "{install_log}"
    );
    let servers = cp.mesh(&["rack", "servers", "east"]).ok().stdout;
    assert!(
        servers.contains("east-1") && servers.contains("ready"),
        "{servers}"
    );
    // The token is only in its file, mode 0600; never on the agent's command line.
    let agent = crate::provider_lab::read_pid(&dir.join("agent.pid")).unwrap();
    let cmdline = std::fs::read_to_string(format!("/proc/{agent}/cmdline")).unwrap();
    assert!(!cmdline.contains(&token));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join("join-token"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    crate::provider_lab::Lab::stop_agent(&server.ns, &dir, Some(&cloud_net()));

    // Deleting terminates it; it is no longer listed; deleting again finds nothing.
    let t = Instant::now();
    rt.block_on(driver.delete("east-1")).unwrap();
    let deleted_in = t.elapsed();
    assert!(rt.block_on(driver.list()).unwrap().is_empty());
    let state = rt
        .block_on(ec2.describe_instances().instance_ids(&id).send())
        .unwrap();
    let gone = state.reservations()[0].instances()[0]
        .state()
        .unwrap()
        .name()
        .unwrap()
        .as_str()
        .to_string();
    assert!(gone == "terminated" || gone == "shutting-down", "{gone}");
    assert!(matches!(
        rt.block_on(driver.delete("east-1")),
        Err(ProviderError::NotFound(_))
    ));

    // An unknown region, an unknown size: nothing made.
    let e = rt
        .block_on(driver.create(&req("east-2", "t3.small", "mars-north-1", b.clone())))
        .unwrap_err();
    assert!(
        matches!(&e, ProviderError::UnknownRegion { .. }) && e.to_string().contains("eu-central-1"),
        "{e}"
    );
    let e = rt
        .block_on(driver.create(&req("east-2", "m9.huge", "eu-central-1", b.clone())))
        .unwrap_err();
    assert!(matches!(&e, ProviderError::UnknownSize { .. }), "{e}");
    assert!(e.to_string().contains("m9.huge"), "{e}");
    assert!(rt.block_on(driver.list()).unwrap().is_empty());

    // moto checks credentials when told to: an unknown access key is refused.
    let strict = Moto::start(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let e = rt
        .block_on(aws(&strict, "AKIDUNKNOWN", Some(ami)).create(&req(
            "east-2",
            "t3.small",
            "eu-central-1",
            b,
        )))
        .unwrap_err();
    assert!(matches!(&e, ProviderError::BadCredentials(_)), "{e}");
    assert!(e.to_string().contains("AuthFailure"), "{e}");

    eprintln!(
        "aws against moto: create {:.2}s, user data run to agent ready {:.2}s, delete {:.2}s",
        created_in.as_secs_f64(),
        joined_in.as_secs_f64(),
        deleted_in.as_secs_f64()
    );
}

#[test]
fn the_hetzner_driver_sends_only_described_requests_and_says_what_is_wrong() {
    let fake = HetznerFake::start("good-token", 1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let driver = |token: &str| {
        HetznerDriver::new(HetznerSettings {
            token: token.into(),
            endpoint: fake.url.clone(),
            image: "debian-12".into(),
        })
        .unwrap()
    };
    let d = driver("good-token");
    let root = tempfile::tempdir().unwrap();
    let b = boot(
        "http://198.51.100.7:7440",
        "west",
        "join-secret",
        root.path(),
    );

    let made = rt
        .block_on(d.create(&req("west-1", "cx22", "fsn1", b.clone())))
        .unwrap();
    assert_eq!((made.name.as_str(), made.rack.as_str()), ("west-1", "west"));
    assert!(made.host.starts_with("203.0.113."), "{made:?}");
    {
        let s = fake.state.lock().unwrap();
        let (_, _, _, body) = s.requests.iter().find(|r| r.0 == "POST").cloned().unwrap();
        assert_eq!(body["name"], "west-1");
        assert_eq!(body["server_type"], "cx22");
        assert_eq!(body["location"], "fsn1");
        assert_eq!(body["image"], "debian-12");
        assert_eq!(body["labels"]["widemesh-rack"], "west");
        assert_eq!(body["labels"]["widemesh-server"], "west-1");
        let sum = cloudinit::sha256_file(&mesh_bin()).unwrap();
        assert_eq!(
            body["user_data"].as_str().unwrap(),
            cloudinit::user_data(&b, "west-1", &sum).unwrap()
        );
        assert!(body["user_data"].as_str().unwrap().len() <= 32 * 1024);
    }
    let listed = rt.block_on(d.list()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "west-1");
    assert_eq!(listed[0].host, made.host);

    // The project's limit (one server here) is reached: the API's words are passed on.
    let e = rt
        .block_on(d.create(&req("west-2", "cx22", "fsn1", b.clone())))
        .unwrap_err();
    assert!(matches!(&e, ProviderError::Exhausted(_)), "{e}");
    assert!(e.to_string().contains("server limit of 1 reached"), "{e}");

    rt.block_on(d.delete("west-1")).unwrap();
    assert!(rt.block_on(d.list()).unwrap().is_empty());
    assert!(matches!(
        rt.block_on(d.delete("west-1")),
        Err(ProviderError::NotFound(_))
    ));

    // An unknown location, an unknown server type: the answers list what exists.
    let e = rt
        .block_on(d.create(&req("west-2", "cx22", "mars1", b.clone())))
        .unwrap_err();
    assert!(matches!(&e, ProviderError::UnknownRegion { .. }), "{e}");
    assert!(e.to_string().contains("fsn1, nbg1"), "{e}");
    let e = rt
        .block_on(d.create(&req("west-2", "cx9000", "fsn1", b.clone())))
        .unwrap_err();
    assert!(matches!(&e, ProviderError::UnknownSize { .. }), "{e}");
    assert!(e.to_string().contains("cx22, cx32"), "{e}");

    // A bad token.
    let e = rt
        .block_on(driver("wrong").create(&req("west-2", "cx22", "fsn1", b)))
        .unwrap_err();
    assert!(matches!(&e, ProviderError::BadCredentials(_)), "{e}");
    assert!(e.to_string().contains("unauthorized"), "{e}");
    let e = rt.block_on(driver("wrong").list()).unwrap_err();
    assert!(matches!(&e, ProviderError::BadCredentials(_)), "{e}");

    // Every request was one the description has, with a body it allows.
    let failures = fake.failures();
    assert!(failures.is_empty(), "{failures:#?}");
    let n = fake.state.lock().unwrap().requests.len();
    assert!(n >= 10, "{n} requests");
}

#[test]
fn the_hetzner_fake_refuses_what_the_description_does_not_allow() {
    // The fake's own check, so that a passing test above means something.
    let desc = hcloud_description();
    let schema = &desc["schemas"]["create_server_request"];
    let check = |v: serde_json::Value| {
        let mut errs = Vec::new();
        check_schema(&desc, schema, &v, "body", &mut errs);
        errs
    };
    assert!(
        check(serde_json::json!({"name": "a", "server_type": "cx22", "image": "debian-12"}))
            .is_empty()
    );
    assert!(!check(serde_json::json!({"name": "a", "server_type": "cx22"})).is_empty());
    assert!(
        !check(serde_json::json!({"name": "a", "server_type": "cx22", "image": "d", "size": "x"}))
            .is_empty()
    );
    assert!(!check(serde_json::json!({"name": "a", "server_type": "cx22", "image": "d", "labels": {"k": "bad value!"}})).is_empty());
    assert!(!check(serde_json::json!({"name": 1, "server_type": "cx22", "image": "d"})).is_empty());
}

#[test]
fn mesh_rack_create_makes_a_cloud_server_and_rack_delete_removes_it() {
    let moto = Moto::start(&[]);
    let fake = HetznerFake::start("hz-token", 5);
    let cp = ControlPlane::start("127.0.0.1");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ec2 = aws(&moto, "AKIDWIDEMESH", None).client("eu-west-1");
    let images = rt.block_on(ec2.describe_images().send()).unwrap();
    let ami = images.images()[0].image_id().unwrap().to_string();

    // What a provider needs is checked when it is added.
    let e = cp
        .mesh(&[
            "provider",
            "add",
            "ec2",
            "--kind",
            "aws",
            "--secret",
            "access_key_id=AKID",
        ])
        .fails();
    assert!(e.error().contains("secret_access_key"), "{}", e.error());
    let added = cp
        .mesh(&[
            "provider",
            "add",
            "ec2",
            "--kind",
            "aws",
            "--secret",
            "access_key_id=AKIDWIDEMESH",
            "--secret",
            "secret_access_key=moto-secret",
            "--secret",
            &format!("endpoint={}", moto.url),
            "--secret",
            &format!("image={ami}"),
        ])
        .ok()
        .stdout;
    assert!(added.contains("added provider ec2 (aws)"), "{added}");

    // rack create: the server is made; with --no-wait, it returns without waiting for an
    // agent (moto boots no machine).
    let out = cp
        .mesh(&[
            "rack",
            "create",
            "shop",
            "--provider",
            "ec2",
            "--region",
            "eu-west-1",
            "--size",
            "t3.micro",
            "--domain",
            "shop.test",
            "--address",
            "203.0.113.50",
            "--no-wait",
        ])
        .ok()
        .stdout;
    for want in [
        "making the rack's server with provider ec2 (aws): a t3.micro server in eu-west-1",
        "created rack shop (provider ec2, region eu-west-1, size t3.micro",
        "server shop-1 made",
        "follow with `mesh rack servers shop`",
        "join token: ",
    ] {
        assert!(out.contains(want), "{want} not in:\n{out}");
    }
    let live = |name: &str| {
        let out = rt
            .block_on(
                ec2.describe_instances()
                    .filters(
                        aws_sdk_ec2::types::Filter::builder()
                            .name("tag:widemesh:server")
                            .values(name)
                            .build(),
                    )
                    .filters(
                        aws_sdk_ec2::types::Filter::builder()
                            .name("instance-state-name")
                            .values("pending")
                            .values("running")
                            .build(),
                    )
                    .send(),
            )
            .unwrap();
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .count()
    };
    assert_eq!(live("shop-1"), 1);
    let servers = cp.mesh(&["rack", "servers", "shop"]).ok().stdout;
    assert!(servers.contains("no servers yet"), "{servers}");

    // An unknown size: refused, and no rack left behind.
    let e = cp
        .mesh(&[
            "rack",
            "create",
            "big",
            "--provider",
            "ec2",
            "--region",
            "eu-west-1",
            "--size",
            "m9.huge",
            "--domain",
            "big.test",
            "--address",
            "203.0.113.51",
            "--no-wait",
        ])
        .fails();
    assert!(
        e.error().contains("unknown server size \"m9.huge\""),
        "{}",
        e.error()
    );
    let racks = cp.mesh(&["rack", "list"]).ok().stdout;
    assert!(!racks.contains("big"), "{racks}");

    // Waiting for an agent that never comes (moto boots nothing) ends with what to check.
    let e = cp
        .mesh(&[
            "rack",
            "create",
            "slow",
            "--provider",
            "ec2",
            "--region",
            "eu-west-1",
            "--size",
            "t3.micro",
            "--domain",
            "slow.test",
            "--address",
            "203.0.113.54",
            "--wait",
            "2",
        ])
        .fails();
    assert!(
        e.stdout
            .contains("waiting up to 2s for it to boot, download mesh and join"),
        "{}",
        e.stdout
    );
    assert!(
        e.error()
            .contains("the agent of rack slow did not join within 2s")
            && e.error().contains("`mesh rack delete slow`"),
        "{}",
        e.error()
    );
    assert!(
        e.hint().unwrap().contains("/var/log/cloud-init-output.log"),
        "{:?}",
        e.hint()
    );
    assert_eq!(live("slow-1"), 1);
    cp.mesh(&["rack", "delete", "slow", "-y"]).ok();
    assert_eq!(live("slow-1"), 0);

    // Deleting the rack terminates its instance.
    cp.mesh(&["rack", "delete", "shop", "-y"]).ok();
    assert_eq!(live("shop-1"), 0);

    // The same with Hetzner Cloud's fake.
    cp.mesh(&[
        "provider",
        "add",
        "hz",
        "--kind",
        "hetzner",
        "--secret",
        "token=hz-token",
        "--secret",
        &format!("endpoint={}", fake.url),
    ])
    .ok();
    let out = cp
        .mesh(&[
            "rack",
            "create",
            "north",
            "--provider",
            "hz",
            "--region",
            "hel1",
            "--size",
            "cx22",
            "--domain",
            "north.test",
            "--address",
            "203.0.113.52",
            "--no-wait",
        ])
        .ok()
        .stdout;
    assert!(out.contains("server north-1 made"), "{out}");
    assert_eq!(fake.state.lock().unwrap().servers.len(), 1);
    let e = cp
        .mesh(&[
            "rack",
            "create",
            "south",
            "--provider",
            "hz",
            "--region",
            "mars1",
            "--size",
            "cx22",
            "--domain",
            "south.test",
            "--address",
            "203.0.113.53",
            "--no-wait",
        ])
        .fails();
    assert!(
        e.error().contains("unknown region \"mars1\""),
        "{}",
        e.error()
    );
    cp.mesh(&["rack", "delete", "north", "-y"]).ok();
    assert!(fake.state.lock().unwrap().servers.is_empty());
    assert!(fake.failures().is_empty(), "{:#?}", fake.failures());
    // Providers whose racks are gone can be removed.
    cp.mesh(&["provider", "remove", "hz"]).ok();
    cp.mesh(&["provider", "remove", "ec2"]).ok();
}

/// The files of a `#cloud-config` document as this project writes them: (path, content).
pub fn cloud_files(doc: &str) -> Vec<(String, String)> {
    cloudinit::read_files(doc)
        .into_iter()
        .map(|(p, _, c)| (p, c))
        .collect()
}

/// `mesh provider add hz --kind hetzner` (run by `mesh`) on `fake`, its servers downloading
/// k3s from `k3s_release`.
pub fn add_hetzner(mesh: impl Fn(&[&str]) -> Out, fake: &HetznerFake, k3s_release: &str) {
    mesh(&[
        "provider",
        "add",
        "hz",
        "--kind",
        "hetzner",
        "--secret",
        "token=hz-token",
        "--secret",
        &format!("endpoint={}", fake.url),
        "--secret",
        &format!("k3s_release={k3s_release}"),
    ])
    .ok();
}

/// The public address the Hetzner fake gave server `name`.
pub fn server_ip(fake: &HetznerFake, name: &str) -> String {
    let s = fake.state.lock().unwrap();
    s.servers
        .iter()
        .find(|v| v["name"] == name)
        .map(|v| v["public_net"]["ipv4"]["ip"].as_str().unwrap().to_string())
        .unwrap()
}

/// The user data the Hetzner fake was sent for server `name`.
pub fn sent_user_data(fake: &HetznerFake, name: &str) -> Option<String> {
    let s = fake.state.lock().unwrap();
    s.requests
        .iter()
        .filter(|r| r.0 == "POST" && r.3["name"] == name)
        .map(|r| r.3["user_data"].as_str().unwrap().to_string())
        .next_back()
}

/// The content of the file of `files` whose path ends with `suffix`.
pub fn file_ending<'a>(files: &'a [(String, String)], suffix: &str) -> Option<&'a str> {
    files
        .iter()
        .find(|(p, _)| p.ends_with(suffix))
        .map(|(_, c)| c.as_str())
}

#[test]
fn a_cloud_provider_makes_a_kubernetes_racks_servers_running_k3s() {
    let fake = HetznerFake::start("hz-token", 4);
    let cp = ControlPlane::start("127.0.0.1");
    add_hetzner(|a| cp.mesh(a), &fake, "http://mirror.test/k3s/v1.34.4");
    let create = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "rack",
            "create",
            name,
            "--provider",
            "hz",
            "--region",
            "fsn1",
            "--size",
            "cx22",
            "--domain",
            "k.test",
            "--address",
            "203.0.113.70",
            "--no-wait",
        ];
        args.extend_from_slice(extra);
        cp.mesh(&args)
    };

    // A native rack has one server.
    let e = create("one", &["--servers", "2"]).fails();
    assert!(
        e.error().contains("a native rack has one server"),
        "{}",
        e.error()
    );
    assert!(fake.state.lock().unwrap().servers.is_empty());

    // A Kubernetes rack of three: the first runs the cluster's server, the others join it.
    let out = create("kc", &["--runtime", "kubernetes", "--servers", "3"])
        .ok()
        .stdout;
    for want in [
        "making the rack's cluster with provider hz (hetzner): 3 cx22 servers in fsn1, running k3s",
        "created rack kc (provider hz, region fsn1, size cx22, domain k.test, address 203.0.113.70, runtime kubernetes)",
        "server kc-1 made at 203.0.113.",
        "server kc-2 made at ",
        "server kc-3 made at ",
        "follow with `mesh rack servers kc`",
    ] {
        assert!(out.contains(want), "{want} not in:\n{out}");
    }
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("join token: "))
        .unwrap()
        .to_string();
    let first_ip = server_ip(&fake, "kc-1");
    let files: Vec<Vec<(String, String)>> = ["kc-1", "kc-2", "kc-3"]
        .iter()
        .map(|n| cloud_files(&sent_user_data(&fake, n).unwrap()))
        .collect();
    let agent_token = file_ending(&files[0], "/agent-token").unwrap();
    let server_token = file_ending(&files[0], "/server-token").unwrap();
    assert!(agent_token.len() >= 16 && server_token.len() >= 16);
    assert_ne!(agent_token, server_token);
    assert_eq!(file_ending(&files[0], "/join-token"), Some(token.as_str()));
    let first = file_ending(&files[0], "/supervise.sh").unwrap();
    assert!(first.contains("\"$dir/k3s\" 'server'"), "{first}");
    assert!(
        file_ending(&files[0], "/install.sh")
            .unwrap()
            .contains("release='http://mirror.test/k3s/v1.34.4'")
    );
    for (n, f) in files.iter().enumerate().skip(1) {
        // The same cluster, joined at the first server's address with its agent token; the
        // rack's join token and the cluster's server token only on the first server.
        assert_eq!(file_ending(f, "/agent-token"), Some(agent_token));
        assert_eq!(file_ending(f, "/join-token"), None, "kc-{}", n + 1);
        assert_eq!(file_ending(f, "/server-token"), None, "kc-{}", n + 1);
        assert!(
            !f.iter().any(|(_, c)| c.contains(server_token)),
            "kc-{}",
            n + 1
        );
        let sup = file_ending(f, "/supervise.sh").unwrap();
        assert!(
            sup.contains(&format!(
                "\"$dir/k3s\" 'agent' '--server' 'https://{first_ip}:6443'"
            )),
            "{sup}"
        );
        assert!(
            sup.contains(&format!("'--node-name' 'kc-{}'", n + 1)),
            "{sup}"
        );
    }

    // `mesh rack show` lists them, joining until the cluster is handed over.
    let shown = cp.mesh(&["rack", "show", "kc", "--json"]).ok().json();
    let made: Vec<(String, String)> = shown["made_servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        made,
        ["kc-1", "kc-2", "kc-3"].map(|n| (n.to_string(), "joining".to_string())),
        "{shown}"
    );
    let shown = cp.mesh(&["rack", "show", "kc"]).ok().stdout;
    assert!(shown.contains("joining (not a node yet)"), "{shown}");

    // Whoever holds the join token offers a kubeconfig as the first server would: one that
    // would make the control plane run a program or read its own files, or reach anything but
    // a server holding the CA it names over https, is refused before anything connects, and
    // nothing is kept.
    let marker = tempfile::tempdir().unwrap().path().join("ran");
    let offer = |kubeconfig: &str| -> (String, String) {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-w", "\n%{http_code}", "-X", "PUT"])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["--data-binary", kubeconfig])
            .arg(format!("{}/v1/agent/kubeconfig", cp.url))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.to_string(), body.to_string())
    };
    let kubeconfig = |server: &str, user: &str| {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: '{server}', certificate-authority-data: LS0t}}\nusers:\n- name: u\n  user: {user}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
        )
    };
    let elsewhere = "https://198.51.100.9:6443";
    for (offered, why) in [
        (
            kubeconfig(
                elsewhere,
                &format!(
                    "{{exec: {{apiVersion: client.authentication.k8s.io/v1, command: /usr/bin/touch, args: ['{}']}}}}",
                    marker.display()
                ),
            ),
            "self-contained",
        ),
        (
            kubeconfig(elsewhere, "{tokenFile: /etc/shadow}"),
            "self-contained",
        ),
        (
            kubeconfig("http://198.51.100.9:6443", "{token: abc}"),
            "https://",
        ),
        (
            kubeconfig("https://169.254.169.254:80", "{token: abc}"),
            "link-local",
        ),
        (
            kubeconfig(elsewhere, "{token: abc}").replace(
                "certificate-authority-data: LS0t",
                "insecure-skip-tls-verify: true",
            ),
            "skips checking",
        ),
    ] {
        // Refused before anything connects (198.51.100.9 is never dialled).
        let (code, body) = offer(&offered);
        assert_eq!(code, "400", "{body}");
        assert!(body.contains(why), "{why}: {body}");
    }
    assert!(
        !marker.exists(),
        "the control plane ran the kubeconfig's exec plugin"
    );

    // Until its first server hands the cluster over, no environment can go on the rack.
    let e = cp.mesh(&["env", "create", "early", "--rack", "kc"]).fails();
    assert!(
        e.error().contains("still making") && e.error().contains("mesh rack servers kc"),
        "{}",
        e.error()
    );

    // The project's limit (4) is reached at the second of three more: the first goes again,
    // and so does the rack.
    let e = create("kd", &["--runtime", "kubernetes", "--servers", "3"]).fails();
    assert!(
        e.error().contains("server kd-2") && e.error().contains("limit"),
        "{}",
        e.error()
    );
    {
        let s = fake.state.lock().unwrap();
        let names: Vec<&str> = s
            .servers
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["kc-1", "kc-2", "kc-3"]);
    }
    let racks = cp.mesh(&["rack", "list"]).ok().stdout;
    assert!(!racks.contains("kd"), "{racks}");

    // A cluster given by a kubeconfig is not made by this provider.
    let kc = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(kc.path(), "apiVersion: v1\nkind: Config\n").unwrap();
    let e = create(
        "given",
        &[
            "--runtime",
            "kubernetes",
            "--kubeconfig",
            kc.path().to_str().unwrap(),
        ],
    )
    .fails();
    assert!(
        e.error().contains("leave --kubeconfig out"),
        "{}",
        e.error()
    );

    cp.mesh(&["rack", "delete", "kc", "-y"]).ok();
    assert!(fake.state.lock().unwrap().servers.is_empty());
    assert!(fake.failures().is_empty(), "{:#?}", fake.failures());
    cp.mesh(&["provider", "remove", "hz"]).ok();
}
