//! The buildpack formula on a [`LocalBuilder`]: see the module docs of [`super`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mesh_runtime::build::{BindMount, BuildSpec, run_build};
use mesh_types::desired::ImageConfig;
use tokio::sync::mpsc::UnboundedSender;

use super::{LocalBuilder, procfile_processes, runtime};
use crate::builder::{BuildFailure, BuildJob, BuildOutput};
use crate::layer::{PackOptions, pack_layer};

/// The search path of build containers and of instances.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The user instances run as owns `/app`, so an app may write beside its code.
const APP_OWNER: (u32, u32) = (65534, 65534);

/// A buildpack ready to run: where its directory is and what it is called.
struct Pack {
    name: String,
    dir: PathBuf,
}

pub async fn build(
    b: &LocalBuilder,
    job: &BuildJob,
    lines: UnboundedSender<String>,
) -> Result<BuildOutput, BuildFailure> {
    let say = |s: String| {
        let _ = lines.send(s);
    };
    let base = b.base().await?;
    let work = tempfile::Builder::new()
        .prefix(".build-")
        .tempdir_in({
            std::fs::create_dir_all(&b.root).map_err(|e| BuildFailure(e.to_string()))?;
            &b.root
        })
        .map_err(|e| BuildFailure(format!("{}: {e}", b.root.display())))?;
    // The buildpacks, and the runtime layer of a built-in one.
    let mut packs = Vec::new();
    let mut defaults = BTreeMap::new();
    let mut runtime_layer = None;
    if job.buildpacks.is_empty() {
        let found =
            crate::detect_buildpack(&job.source).map_err(|e| BuildFailure(e.to_string()))?;
        say(format!(
            "-----> {} app detected (by {})",
            found.name, found.detected_by
        ));
        let dir = work.path().join("buildpack-0");
        crate::buildpacks::write_builtin(&found.name, &dir)
            .map_err(|e| BuildFailure(format!("writing the {} buildpack: {e}", found.name)))?;
        let packages = crate::buildpacks::runtime_packages(&found.name);
        if !packages.is_empty() {
            runtime_layer = Some(runtime::layer(b, job, &base, packages, &lines).await?);
        }
        if let Some(web) = found.default_web_command {
            defaults.insert("web".to_string(), web);
        }
        packs.push(Pack {
            name: found.name,
            dir,
        });
    } else {
        // URLs are fetched through a proxy with the builds' deny rules, on the host's
        // loopback for as long as the fetches take.
        let proxy = FetchProxy::start(b).await?;
        for (i, spec) in job.buildpacks.iter().enumerate() {
            say(format!("-----> Fetching buildpack {spec}"));
            let dir = work.path().join(format!("buildpack-{i}"));
            let (spec2, dir2, url) = (spec.clone(), dir.clone(), proxy.url.clone());
            tokio::task::spawn_blocking(move || {
                crate::external::fetch_external(&spec2, &dir2, Some(&url))
            })
            .await
            .map_err(|e| BuildFailure(e.to_string()))?
            .map_err(|e| BuildFailure(e.to_string()))?;
            packs.push(Pack {
                name: spec.clone(),
                dir,
            });
        }
    }
    let mut layers = vec![base.clone()];
    if let Some(rt) = &runtime_layer {
        layers.push(rt.dir.clone());
    }
    // The stack's config, one file per variable, as the interface's ENV_DIR.
    let env_dir = work.path().join("env");
    std::fs::create_dir_all(&env_dir).map_err(|e| BuildFailure(e.to_string()))?;
    for (k, v) in &job.config {
        std::fs::write(env_dir.join(k), v).map_err(|e| BuildFailure(e.to_string()))?;
    }
    let cache = b.cache_dir(job);
    std::fs::create_dir_all(&cache).map_err(|e| BuildFailure(e.to_string()))?;
    for (i, pack) in packs.iter().enumerate() {
        let step = format!("cp{i}");
        if !job.buildpacks.is_empty() {
            let detect = run_step(
                b,
                job,
                &step,
                &layers,
                work.path(),
                pack,
                &env_dir,
                &cache,
                &["/buildpack/bin/detect", "/app"],
                &lines,
            )
            .await?;
            if !detect.success() {
                return Err(BuildFailure(format!(
                    "buildpack {} does not apply to this source (bin/detect {detect})",
                    pack.name
                )));
            }
        }
        say(format!("-----> Compiling with the {} buildpack", pack.name));
        let started = std::time::Instant::now();
        let outcome = run_step(
            b,
            job,
            &step,
            &layers,
            work.path(),
            pack,
            &env_dir,
            &cache,
            &["/buildpack/bin/compile", "/app", "/cache", "/env"],
            &lines,
        )
        .await?;
        if !outcome.success() {
            return Err(BuildFailure(format!(
                "the {} buildpack's compile {outcome}",
                pack.name
            )));
        }
        say(format!(
            "-----> Compiled in {:.1}s",
            started.elapsed().as_secs_f64()
        ));
        if !job.buildpacks.is_empty() {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let release = run_step(
                b,
                job,
                &step,
                &layers,
                work.path(),
                pack,
                &env_dir,
                &cache,
                &["/buildpack/bin/release", "/app"],
                &tx,
            )
            .await?;
            drop(tx);
            let mut text = String::new();
            while let Ok(l) = rx.try_recv() {
                text.push_str(&l);
                text.push('\n');
            }
            if release.success() {
                let types = crate::buildpacks::parse_release(&text).map_err(|e| {
                    BuildFailure(format!("buildpack {} bin/release: {e}", pack.name))
                })?;
                defaults.extend(types);
            }
        }
    }
    let processes = procfile_processes(&job.source, defaults)?;
    if processes.keys().all(|k| k == "release") {
        return Err(BuildFailure(
            "nothing to run: the buildpack names no web process; add a Procfile such as `web: ./server --port $PORT`".into(),
        ));
    }
    say("-----> Packing the app".into());
    let (src, blobs) = (job.source.clone(), b.blobs.clone());
    let app = tokio::task::spawn_blocking(move || {
        let opts = PackOptions {
            prefix: Some("app".into()),
            owner: Some(APP_OWNER),
            exclude: vec![".git".into(), ".mesh".into()],
            ..PackOptions::default()
        };
        pack_layer(&src, &opts, &blobs)
    })
    .await
    .map_err(|e| BuildFailure(e.to_string()))?
    .map_err(|e| BuildFailure(format!("packing the app: {e}")))?;
    let mut image_layers = Vec::new();
    if let Some(rt) = runtime_layer {
        image_layers.push(rt.digest);
    }
    image_layers.push(app);
    let config = ImageConfig {
        env: BTreeMap::from([("PATH".to_string(), format!("/app/bin:{PATH}"))]),
        workdir: Some("/app".into()),
        profile_dir: Some("/app/.profile.d".into()),
        ..ImageConfig::default()
    };
    Ok(BuildOutput {
        image: crate::image::seal(Some("debian".into()), image_layers, config),
        processes,
    })
}

/// Runs one buildpack script in a build container over `layers`.
#[allow(clippy::too_many_arguments)]
async fn run_step(
    b: &LocalBuilder,
    job: &BuildJob,
    step: &str,
    layers: &[PathBuf],
    work: &Path,
    pack: &Pack,
    env_dir: &Path,
    cache: &Path,
    args: &[&str],
    lines: &UnboundedSender<String>,
) -> Result<mesh_runtime::build::BuildOutcome, BuildFailure> {
    let scratch = tempfile::Builder::new()
        .prefix(".step-")
        .tempdir_in(work)
        .map_err(|e| BuildFailure(e.to_string()))?;
    let mount = |source: &Path, target: &str, read_only| BindMount {
        source: source.to_path_buf(),
        target: target.into(),
        read_only,
    };
    let mut mounts = vec![
        mount(&job.source, "/app", false),
        mount(cache, "/cache", false),
        mount(env_dir, "/env", true),
        mount(&pack.dir, "/buildpack", true),
    ];
    let mut env = vec![
        ("PATH".to_string(), PATH.to_string()),
        ("HOME".into(), "/root".into()),
        ("STACK".into(), "widemesh-bookworm".into()),
        ("LANG".into(), "C.UTF-8".into()),
    ];
    mounts.extend(host_ca(&mut env));
    let spec = BuildSpec {
        id: LocalBuilder::build_id(job, step),
        layers: layers.to_vec(),
        scratch: scratch.path().to_path_buf(),
        mounts,
        args: args.iter().map(|s| s.to_string()).collect(),
        env,
        cwd: "/app".into(),
        limits: b.limits,
        network: b.network(),
    };
    run_build(&spec, lines.clone())
        .await
        .map_err(|e| BuildFailure(format!("the build container could not start: {e}")))
}

/// The host's CA bundle, so package managers in a build trust what the host trusts (a network
/// that re-signs TLS with its own CA, a private registry's CA); and the variables that point
/// pip, npm and the like at it.
pub fn host_ca(env: &mut Vec<(String, String)>) -> Option<BindMount> {
    let host = Path::new(HOST_CA);
    if !host.is_file() {
        return None;
    }
    const AT: &str = "/etc/ssl/widemesh/host-ca.crt";
    for var in [
        "SSL_CERT_FILE",
        "PIP_CERT",
        "NODE_EXTRA_CA_CERTS",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "GIT_SSL_CAINFO",
    ] {
        env.push((var.into(), AT.into()));
    }
    Some(BindMount {
        source: host.to_path_buf(),
        target: AT.into(),
        read_only: true,
    })
}

const HOST_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The egress proxy on the host's loopback, for fetching external buildpacks; stopped on drop.
struct FetchProxy {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl FetchProxy {
    async fn start(b: &LocalBuilder) -> Result<FetchProxy, BuildFailure> {
        use mesh_runtime::build::egress::{EgressPolicy, serve};
        let cfg = &b.network;
        let policy = EgressPolicy::with_host_addresses(cfg.deny.clone(), cfg.allow.clone())
            .await
            .map_err(|e| {
                BuildFailure(format!(
                    "reading the host's addresses for the build proxy: {e}"
                ))
            })?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| BuildFailure(format!("starting the buildpack fetch proxy: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| BuildFailure(format!("starting the buildpack fetch proxy: {e}")))?;
        let task = tokio::spawn(serve(
            listener,
            addr.ip(),
            std::sync::Arc::new(policy),
            cfg.limits,
            None,
        ));
        Ok(FetchProxy {
            url: format!("http://{addr}"),
            task,
        })
    }
}

impl Drop for FetchProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
