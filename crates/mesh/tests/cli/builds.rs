//! Builds tried as a hostile tenant would, on `mesh up` as root with the real builder: a
//! buildpack's `bin/compile` and a Dockerfile's `RUN` step list `/proc` and try to reach the
//! control plane's API on the host's loopback and another environment's instance, directly and
//! through the build proxy. Each sees only its own few processes and reaches neither. (That
//! builds of common apps still fetch their dependencies through the proxy, npm and pip among
//! them, is the examples test.)

use std::path::Path;
use std::time::Duration;

use crate::harness::*;
use crate::web::{Purge, assert_root, free_port};

const PREFIX: &str = "e5b";
const POOL: &str = "10.238.0.0/16";
/// The port the platform gives a web service by default (`PORT`).
const VICTIM_PORT: u16 = 5000;
const BUILD: Duration = Duration::from_secs(600);

fn write_exec(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The probe both builds run, with busybox at `$BB`: one line per finding.
fn probe(api_port: u16, victim: &str) -> String {
    format!(
        "echo \"probe procs $($BB ls /proc | $BB grep -c '^[0-9]')\"\n\
         for t in 127.0.0.1:{api_port} {victim}:{VICTIM_PORT}; do\n\
           if echo x | $BB nc -w 3 ${{t%:*}} ${{t#*:}} >/dev/null 2>&1; then echo \"probe reached $t\"; else echo \"probe refused $t\"; fi\n\
         done\n\
         gw=${{HTTP_PROXY#http://}}; gw=${{gw%:*}}\n\
         for t in 127.0.0.1:{api_port} {victim}:{VICTIM_PORT}; do\n\
           echo \"probe via-proxy $t $(printf \"GET http://$t/ HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n\" | $BB nc -w 5 $gw 3128 | $BB head -1)\"\n\
         done\n\
         echo probe done\n"
    )
}

fn check(output: &str, api_port: u16, victim: &str) {
    let procs: usize = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("probe procs "))
        .unwrap_or_else(|| panic!("no probe output:\n{output}"))
        .trim()
        .parse()
        .unwrap();
    assert!(procs <= 10, "the build sees {procs} processes:\n{output}");
    assert!(output.contains("probe done"), "{output}");
    for t in [
        format!("127.0.0.1:{api_port}"),
        format!("{victim}:{VICTIM_PORT}"),
    ] {
        assert!(
            output.contains(&format!("probe refused {t}")),
            "{t}:\n{output}"
        );
        assert!(
            output.contains(&format!("probe via-proxy {t} HTTP/1.1 403")),
            "{t} through the proxy:\n{output}"
        );
    }
    assert!(!output.contains("probe reached"), "{output}");
}

#[test]
fn hostile_builds_see_only_themselves_and_reach_nothing_of_the_platform() {
    assert_root();
    let home = Home::new();
    let data = home.data_dir();
    let _purge = Purge::with_home(home.path().to_path_buf(), data.clone(), PREFIX);
    let http = free_port();
    let (http_s, https_s) = (
        format!("127.0.0.1:{http}"),
        format!("127.0.0.1:{}", free_port()),
    );
    let p = Platform::start_with(
        home,
        &[
            "--net-prefix",
            PREFIX,
            "--subnet-pool",
            POOL,
            "--build-subnet",
            "10.226.0.0/16",
            "--http-listen",
            &http_s,
            "--https-listen",
            &https_s,
        ],
    );
    let api_port: u16 = p.url.rsplit(':').next().unwrap().parse().unwrap();
    let work = tempfile::tempdir().unwrap();

    // The victim: an environment serving on its instance's address.
    let bp = work.path().join("buildpack");
    std::fs::create_dir_all(bp.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", bp.join("busybox")).unwrap();
    write_exec(&bp.join("bin/detect"), "#!/bin/sh\necho site\n");
    write_exec(
        &bp.join("bin/compile"),
        "#!/bin/sh\nset -e\nBB=\"$(dirname \"$0\")/../busybox\"\n\
         if [ -f \"$1/probe.sh\" ]; then . \"$1/probe.sh\"; exit 1; fi\n\
         mkdir -p \"$1/bin\" \"$1/www\"\ncp \"$BB\" \"$1/bin/busybox\"\n\
         echo victim > \"$1/www/index.html\"\n",
    );
    write_exec(
        &bp.join("bin/release"),
        "#!/bin/sh\nprintf 'default_process_types:\\n  web: /app/bin/busybox httpd -f -p $PORT -h /app/www\\n'\n",
    );
    let victim_dir = work.path().join("victim");
    std::fs::create_dir_all(&victim_dir).unwrap();
    std::fs::write(victim_dir.join("site.txt"), "x\n").unwrap();
    for env in ["victim", "hostile", "hostiledocker"] {
        p.mesh(&["env", "create", env]).ok();
        p.mesh(&["create", "stack", "app", "--env", env]).ok();
    }
    for env in ["victim", "hostile"] {
        p.mesh(&[
            "stack",
            "buildpacks",
            "add",
            bp.to_str().unwrap(),
            "--env",
            env,
            "--stack",
            "app",
        ])
        .ok();
    }
    let out = p.mesh_for(
        &[
            "deploy",
            "--dir",
            victim_dir.to_str().unwrap(),
            "--env",
            "victim",
            "--stack",
            "app",
        ],
        BUILD,
    );
    assert_eq!(out.code, 0, "{}\n{}\n{}", out.stdout, out.stderr, p.log());
    let instances = p
        .mesh(&["instances", "--env", "victim", "--json"])
        .ok()
        .json();
    let victim = instances.as_array().unwrap()[0]["address"]
        .as_str()
        .unwrap()
        .to_string();
    // The victim serves on that address and port (seen from inside its own environment), so
    // a refusal below is the build's sandbox.
    let id = instances.as_array().unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("http://{victim}:{VICTIM_PORT}/");
    let mut answer = String::new();
    for _ in 0..30 {
        let out = p.mesh(&[
            "exec",
            "--env",
            "victim",
            &id,
            "--",
            "/app/bin/busybox",
            "wget",
            "-q",
            "-O-",
            &url,
        ]);
        answer = out.stdout.clone();
        if answer.trim() == "victim" {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(answer.trim(), "victim", "{instances}");

    // A buildpack build whose bin/compile probes.
    let hostile_dir = work.path().join("hostile");
    std::fs::create_dir_all(&hostile_dir).unwrap();
    std::fs::write(hostile_dir.join("site.txt"), "x\n").unwrap();
    std::fs::write(hostile_dir.join("probe.sh"), probe(api_port, &victim)).unwrap();
    let out = p.mesh_for(
        &[
            "deploy",
            "--dir",
            hostile_dir.to_str().unwrap(),
            "--env",
            "hostile",
            "--stack",
            "app",
        ],
        BUILD,
    );
    assert_ne!(out.code, 0, "the probe fails its build on purpose");
    check(
        &format!("{}\n{}", out.stdout, out.stderr),
        api_port,
        &victim,
    );

    // A Dockerfile build whose RUN step probes.
    let docker_dir = work.path().join("docker");
    std::fs::create_dir_all(&docker_dir).unwrap();
    std::fs::copy("/bin/busybox", docker_dir.join("busybox")).unwrap();
    std::fs::write(
        docker_dir.join("probe.sh"),
        format!("BB=/busybox\n{}exit 1\n", probe(api_port, &victim)),
    )
    .unwrap();
    std::fs::write(
        docker_dir.join("Dockerfile"),
        "FROM scratch\nCOPY busybox probe.sh /\nRUN [\"/busybox\", \"sh\", \"/probe.sh\"]\n",
    )
    .unwrap();
    let out = p.mesh_for(
        &[
            "deploy",
            "--dir",
            docker_dir.to_str().unwrap(),
            "--env",
            "hostiledocker",
            "--stack",
            "app",
        ],
        BUILD,
    );
    assert_ne!(out.code, 0, "the probe fails its build on purpose");
    check(
        &format!("{}\n{}", out.stdout, out.stderr),
        api_port,
        &victim,
    );

    // And RUN --mount never reaches buildah.
    std::fs::write(
        docker_dir.join("Dockerfile"),
        "FROM scratch\nRUN --mount=type=bind,from=x,source=/,target=/h true\n",
    )
    .unwrap();
    let out = p.mesh_for(
        &[
            "deploy",
            "--dir",
            docker_dir.to_str().unwrap(),
            "--env",
            "hostiledocker",
            "--stack",
            "app",
        ],
        BUILD,
    );
    assert_ne!(out.code, 0);
    let all = format!("{}\n{}", out.stdout, out.stderr);
    assert!(all.contains("`RUN --mount` is not supported"), "{all}");

    for env in ["victim", "hostile", "hostiledocker"] {
        p.mesh(&["env", "delete", env, "--yes"]).ok();
    }
    let storage = data.join("builds/buildah/hostiledocker");
    let _ = std::process::Command::new("buildah")
        .arg("--root")
        .arg(storage.join("root"))
        .arg("--runroot")
        .arg(storage.join("runroot"))
        .args(["--storage-driver", "overlay", "rmi", "--all", "--force"])
        .output();
}
