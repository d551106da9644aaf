//! The `ssh` provider against real SSH servers: each "server" is a network namespace of this
//! machine on a test bridge of its own (10.198.6x.0/24), running Debian's sshd. The driver
//! installs `mesh` and starts the agent under its supervisor; the agent joins a control plane
//! listening on the bridge, serves an app through its router, and goes away when the server is
//! deleted. Bad input: a wrong key, an unreachable server, an exhausted pool, a changed host
//! key. Privileged: CI runs it as root.

use std::path::Path;
use std::time::{Duration, Instant};

use mesh_provider::pool::{PoolState, StateFile, parse_server};
use mesh_provider::ssh::{SshDriver, SshSettings};
use mesh_provider::{Bootstrap, Driver, MadeServer, ProviderError};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::*;
use crate::provider_lab::*;
use crate::web::assert_root;

#[test]
fn the_ssh_provider_makes_a_server_whose_agent_joins_and_serves_then_deletes_it() {
    assert_root();
    let lab = Lab::new(61, 2);
    let mut lab = lab;
    let cp = ControlPlane::start("10.198.61.1");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = lab.dir.path().join("cp/providers/pool/state.json");
    let specs: Vec<String> = lab
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| spec(s, i))
        .collect();
    let driver = lab.driver(&specs, &lab.key, &state).unwrap();

    // Racks for the driver to make servers for, by hand: on the `local` provider, whose racks
    // get no server made by the control plane.
    let east = cp.rack("east", "local", &lab.servers[0].ip);
    let west = cp.rack("west", "local", &lab.servers[1].ip);

    // Make a server: the first free one of the pool.
    rt.block_on(driver.wait_reachable(&lab.servers[0].address(), Duration::from_secs(5)))
        .unwrap();
    let t = Instant::now();
    let made = rt
        .block_on(driver.create(&create("east-1", bootstrap(&cp, &lab, "east", &east))))
        .unwrap();
    let created_in = t.elapsed();
    let dir = lab.root.join("east/east-1");
    assert_eq!(
        made,
        MadeServer {
            name: "east-1".into(),
            rack: "east".into(),
            address: lab.servers[0].address(),
            host: lab.servers[0].ip.clone(),
            dir: dir.display().to_string(),
            net: Some(net_plan(0)),
        }
    );
    let server = cp.wait_ready("east", "east-1", &dir.join("agent.log"));
    let joined_in = t.elapsed();
    assert_eq!(server["address"], lab.servers[0].ip.as_str(), "{server}");
    // The join token is in a file only root reads, never on a command line.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join("join-token"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "join-token mode {mode:o}");
    let agent = read_pid(&dir.join("agent.pid")).unwrap();
    let cmdline = std::fs::read_to_string(format!("/proc/{agent}/cmdline")).unwrap();
    assert!(!cmdline.contains(&east), "the token is on the command line");
    assert!(
        cmdline.contains("pw") && cmdline.contains("10.237.0.0/16"),
        "{cmdline}"
    );

    // An app on that rack answers through the agent's router.
    let at = ["--env", "shop", "--stack", "app"];
    cp.mesh(&["env", "create", "shop", "--rack", "east"]).ok();
    cp.mesh(&["create", "stack", "app", "--env", "shop"]).ok();
    cp.mesh(&[&["stack", "set-image", "busybox"][..], &at[..]].concat())
        .ok();
    let web = "mkdir -p /tmp/www && echo hello > /tmp/www/index.html && exec httpd -f -p $PORT -h /tmp/www";
    cp.mesh(
        &[
            &["svc", "create", "-n", "web", "--size", "nano"][..],
            &at[..],
            &["--", web][..],
        ]
        .concat(),
    )
    .ok();
    cp.mesh(
        &[
            &["endpoint", "publish", "shop.east.test", "--service", "web"][..],
            &at[..],
        ]
        .concat(),
    )
    .ok();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = get(&lab.servers[0].ip, "shop.east.test");
        if matches!(&got, Ok((200, body)) if body.trim() == "hello") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the app did not answer through east-1's router: {got:?}\nagent:\n{}\nmesh up:\n{}",
            std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default(),
            cp.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let serving_in = t.elapsed();

    // The supervisor starts the agent again when it dies.
    kill(Pid::from_raw(agent), Signal::SIGKILL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(pid) = read_pid(&dir.join("agent.pid"))
            && pid != agent
            && pid_alive(pid)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the supervisor did not restart the agent"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A second server for another rack takes the other pool server, with its own networking;
    // a third finds the pool exhausted.
    let west_made = rt
        .block_on(driver.create(&create("west-1", bootstrap(&cp, &lab, "west", &west))))
        .unwrap();
    assert_eq!(west_made.address, lab.servers[1].address());
    cp.wait_ready("west", "west-1", &lab.root.join("west/west-1/agent.log"));
    let e = rt
        .block_on(driver.create(&create("west-2", bootstrap(&cp, &lab, "west", &west))))
        .unwrap_err();
    assert!(matches!(e, ProviderError::Exhausted(_)), "{e}");
    assert!(e.to_string().contains("all 2 are in use"), "{e}");
    assert!(!lab.root.join("west/west-2").exists());

    // The pool's state survives a restart of the control plane: a new driver knows both.
    let again = lab.driver(&specs, &lab.key, &state).unwrap();
    let mut names: Vec<String> = rt
        .block_on(again.list())
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    names.sort();
    assert_eq!(names, ["east-1", "west-1"]);

    // Deleting a server stops its agent and supervisor, removes its directory and frees it.
    let supervisor = read_pid(&dir.join("supervisor.pid")).unwrap();
    let current = read_pid(&dir.join("agent.pid")).unwrap();
    let t = Instant::now();
    rt.block_on(again.delete("east-1")).unwrap();
    let deleted_in = t.elapsed();
    wait_gone(supervisor, "the supervisor");
    wait_gone(current, "the agent");
    assert!(!dir.exists(), "{} is still there", dir.display());
    assert!(get(&lab.servers[0].ip, "shop.east.test").is_err());
    let left: PoolState = StateFile::new(&state).load().unwrap();
    assert_eq!(
        left.made.keys().collect::<Vec<_>>(),
        [&lab.servers[1].address()]
    );
    rt.block_on(again.delete("west-1")).unwrap();
    assert!(rt.block_on(again.list()).unwrap().is_empty());
    let e = rt.block_on(again.delete("west-1")).unwrap_err();
    assert!(matches!(e, ProviderError::NotFound(_)), "{e}");
    // The freed server can be made again.
    assert_eq!(
        rt.block_on(again.create(&create("east-2", bootstrap(&cp, &lab, "east", &east))))
            .unwrap()
            .address,
        lab.servers[0].address()
    );
    rt.block_on(again.delete("east-2")).unwrap();

    // The same through the CLI: the provider holds the pool, creating a rack makes its server
    // and follows its agent until it is healthy, deleting the rack deletes the server.
    let rack = format!("pv{}", std::process::id());
    lab.racks.push(Path::new("/var/lib/widemesh").join(&rack));
    cp.mesh(&[
        "provider",
        "add",
        "cli",
        "--kind",
        "ssh",
        "--server",
        &specs[0],
        "--server",
        &specs[1],
        "--secret",
        "user=root",
        "--secret-file",
        &format!("private_key={}", lab.key.display()),
    ])
    .ok();
    let listed = cp.mesh(&["provider", "list", "--json"]).ok().json();
    assert!(listed.to_string().contains("\"servers\""), "{listed}");
    let t = Instant::now();
    let out = cp
        .mesh(&[
            "rack",
            "create",
            &rack,
            "--provider",
            "cli",
            "--region",
            "lab",
            "--size",
            "pool",
            "--domain",
            "cli.test",
            "--address",
            &lab.servers[0].ip,
        ])
        .ok();
    let rack_in = t.elapsed();
    for want in [
        "making the rack's server with provider cli",
        "server made, mesh installed and the agent started",
        &format!(
            "agent {rack}-1 joined rack {rack} from {}",
            lab.servers[0].ip
        ),
        &format!("server {rack}-1 is healthy"),
        "join token: ",
    ] {
        assert!(
            out.stdout.contains(want),
            "{want:?} not in:\n{}",
            out.stdout
        );
    }
    let cli_dir = Path::new("/var/lib/widemesh")
        .join(&rack)
        .join(format!("{rack}-1"));
    assert!(cli_dir.join("supervisor.pid").exists());
    let cp_state = cp.home.data_dir().join("providers/cli/state.json");
    assert_eq!(StateFile::new(&cp_state).load().unwrap().made.len(), 1);
    // `mesh rack show` lists the made server and its agent's state.
    let shown = cp.mesh(&["rack", "show", &rack]).ok().stdout;
    assert!(
        shown.contains("servers made by the provider:")
            && shown.contains(&format!("{rack}-1"))
            && shown.contains("ready (agent ready)"),
        "{shown}"
    );
    // A second rack gets the pool's other server; a third, none, and nothing is left of it.
    let second = format!("{rack}b");
    lab.racks.push(Path::new("/var/lib/widemesh").join(&second));
    cp.mesh(&[
        "rack",
        "create",
        &second,
        "--provider",
        "cli",
        "--region",
        "lab",
        "--size",
        "pool",
        "--domain",
        "cli2.test",
        "--address",
        &lab.servers[1].ip,
    ])
    .ok();
    let third = format!("{rack}c");
    let e = cp
        .mesh(&[
            "rack",
            "create",
            &third,
            "--provider",
            "cli",
            "--region",
            "lab",
            "--size",
            "pool",
            "--domain",
            "cli3.test",
            "--address",
            "10.198.61.9",
        ])
        .fails();
    assert!(e.error().contains("the pool has no free server"), "{e:#?}");
    cp.mesh(&["rack", "show", &third]).fails();
    for r in [&second, &rack] {
        cp.mesh(&["rack", "delete", r, "-y"]).ok();
    }
    assert!(!cli_dir.exists(), "{} is still there", cli_dir.display());
    assert!(
        !cli_dir.parent().unwrap().exists(),
        "the rack's directory is still there"
    );
    assert!(StateFile::new(&cp_state).load().unwrap().made.is_empty());
    // Removing the provider forgets the host keys it trusted.
    assert!(
        !StateFile::new(&cp_state)
            .load()
            .unwrap()
            .host_keys
            .is_empty()
    );
    cp.mesh(&["provider", "remove", "cli"]).ok();
    assert!(!cp_state.exists());
    eprintln!(
        "ssh provider through the CLI: `mesh rack create` returned with a healthy server in {rack_in:?}"
    );
    eprintln!(
        "ssh provider: server made (binary uploaded, supervisor running) in {created_in:?}, agent joined after {joined_in:?}, app served after {serving_in:?}; deleted in {deleted_in:?}"
    );
}

#[test]
fn the_ssh_provider_says_what_is_wrong_with_keys_addresses_and_the_pool() {
    assert_root();
    let mut lab = Lab::new(62, 1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = lab.dir.path().join("state.json");
    let address = lab.servers[0].address();
    let specs = vec![address.clone()];

    // A key the server does not know.
    let stranger = lab.dir.path().join("stranger");
    keygen(&stranger);
    let wrong = lab.driver(&specs, &stranger, &state).unwrap();
    let e = rt.block_on(wrong.verify(&address)).unwrap_err();
    assert!(matches!(e, ProviderError::BadCredentials(_)), "{e}");
    assert!(
        e.to_string()
            .contains("refused the private key for user \"root\"")
            && e.to_string().contains("authorized_keys"),
        "{e}"
    );
    // Not a key at all.
    let e = SshDriver::new(SshSettings {
        servers: vec![parse_server(&address).unwrap()],
        user: "root".into(),
        private_key: "not a key".into(),
        state: state.clone(),
    })
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("not an unencrypted OpenSSH private key"),
        "{e}"
    );

    // Nothing listens there.
    let driver = lab.driver(&specs, &lab.key, &state).unwrap();
    let nowhere = format!("{}:2222", lab.servers[0].ip);
    let e = rt.block_on(driver.verify(&nowhere)).unwrap_err();
    assert!(matches!(e, ProviderError::Unreachable { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("server {nowhere} is unreachable")),
        "{e}"
    );
    let e = rt
        .block_on(driver.wait_reachable(&nowhere, Duration::from_secs(1)))
        .unwrap_err();
    assert!(e.to_string().contains("not within 1s"), "{e}");

    // First contact trusts the host key; a changed one is refused, by this driver and after a
    // restart, and nothing is made.
    let first = rt.block_on(driver.verify(&address)).unwrap();
    assert!(first.starts_with("ssh-ed25519 "), "{first}");
    assert_eq!(rt.block_on(driver.verify(&address)).unwrap(), first);
    std::fs::remove_file(lab.servers[0].dir.join("host_ed25519")).unwrap();
    let auth = lab.authorized.clone();
    lab.servers[0].start_sshd(&auth);
    let e = rt.block_on(driver.verify(&address)).unwrap_err();
    assert!(matches!(e, ProviderError::HostKeyChanged { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("the host key of server {address} changed")),
        "{e}"
    );
    let restarted = lab.driver(&specs, &lab.key, &state).unwrap();
    let b = Bootstrap {
        binary: mesh_bin(),
        api_url: "http://10.198.62.1:9".into(),
        join_token: "t".into(),
        rack: "east".into(),
        root: lab.root.display().to_string(),
        http_listen: "0.0.0.0:80".into(),
        net: None,
        kube: None,
    };
    let e = rt
        .block_on(restarted.create(&create("east-1", b.clone())))
        .unwrap_err();
    assert!(matches!(e, ProviderError::HostKeyChanged { .. }), "{e}");
    assert!(rt.block_on(restarted.list()).unwrap().is_empty());
    assert!(!lab.root.join("east").exists());

    // An exhausted pool says which servers hold it.
    let mut taken = PoolState::default();
    taken.made.insert(
        address.clone(),
        MadeServer {
            name: "other-1".into(),
            rack: "other".into(),
            address: address.clone(),
            host: lab.servers[0].ip.clone(),
            dir: "/x".into(),
            net: None,
        },
    );
    let full = lab.dir.path().join("full.json");
    StateFile::new(&full).save(&taken).unwrap();
    let e = rt
        .block_on(
            lab.driver(&specs, &lab.key, &full)
                .unwrap()
                .create(&create("east-1", b)),
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "the pool has no free server for east/east-1: all 1 are in use: {address} (other/other-1); add a server to the provider or delete a server"
        )
    );
}
