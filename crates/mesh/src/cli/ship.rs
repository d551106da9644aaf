//! `mesh deploy` and `mesh rollback`: send a directory (or a prebuilt image) to the platform,
//! follow the deployment as it builds, releases and rolls out, and end with where it answers.
//!
//! The first deploy in a directory creates what is missing — the environment (on the default
//! rack) and the stack, named after the directory unless `--env`/`--stack` say otherwise — and
//! links the directory, so later deploys from it go to the same place.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use mesh_client::Client;
use mesh_types::api::{
    CreateDeployment, CreateEnvironment, CreateStack, Deployment, DeploymentStatus,
};
use mesh_types::{ErrorCode, Name, Version};

use super::Ctx;
use super::stack::FormulaArgs;
use crate::output::{print, print_json};
use crate::sanitize::Mode;
use crate::target;

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    formula: FormulaArgs,
    /// Deploy a prebuilt image: an OCI image archive (`buildah push IMG oci-archive:FILE`,
    /// `skopeo copy ... oci-archive:FILE`) or `docker save` output
    #[arg(long, value_name = "ARCHIVE", conflicts_with_all = ["buildpack", "dockerfile"])]
    image: Option<PathBuf>,
    /// The directory to deploy [default: the current directory]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Start the deployment and return without following it
    #[arg(long)]
    detach: bool,
    /// Print the build's and release's control characters (escape sequences) as sent, not
    /// escaped
    #[arg(long)]
    raw: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The version to return to, such as v3 [default: the one before the current]
    #[arg(value_name = "VERSION")]
    to: Option<String>,
    /// Start the rollback and return without following it
    #[arg(long)]
    detach: bool,
    /// Print the release's control characters (escape sequences) as sent, not escaped
    #[arg(long)]
    raw: bool,
}

fn not_found(e: &mesh_client::Error) -> bool {
    e.code() == Some(ErrorCode::NotFound)
}

/// A name from a directory's: lowercase letters, digits and dashes.
fn name_from_dir(dir: &Path) -> Option<String> {
    let base = dir.file_name()?.to_string_lossy().to_lowercase();
    let mut out = String::new();
    for c in base.chars() {
        match c {
            'a'..='z' | '0'..='9' => out.push(c),
            _ if !out.is_empty() && !out.ends_with('-') => out.push('-'),
            _ => {}
        }
    }
    let out: String = out.trim_matches('-').chars().take(30).collect();
    let out = out.trim_end_matches('-').to_string();
    Name::parse(&out).ok().map(|_| out)
}

/// The environment and stack to deploy to, creating them on a first deploy.
async fn resolve_target(ctx: &Ctx, client: &Client, dir: &Path) -> Result<(String, String, bool)> {
    let target = ctx.target()?;
    let from_dir = || {
        name_from_dir(dir).ok_or_else(|| {
            anyhow!(
                "cannot name an environment or stack after the directory {}: pass --env and --stack",
                dir.display()
            )
        })
    };
    let env = match target.env_opt() {
        Some(e) => e.to_string(),
        None => from_dir()?,
    };
    let stack = match target.stack_opt() {
        Some(s) => s.to_string(),
        None => from_dir()?,
    };
    let linked = target.link.is_some();
    let human = !ctx.json();
    match client.environment(&env).await {
        Ok(_) => {}
        Err(e) if not_found(&e) => {
            let req = CreateEnvironment {
                name: Name::parse_as("environment name", &env)?,
                racks: Vec::new(),
            };
            let created = client.create_environment(&req).await?;
            if human {
                let racks: Vec<String> = created.racks.iter().map(|r| r.to_string()).collect();
                eprintln!("created environment {env} on rack {}", racks.join(", "));
            }
        }
        Err(e) => return Err(e.into()),
    }
    match client.stack(&env, &stack).await {
        Ok(_) => {}
        Err(e) if not_found(&e) => {
            let req = CreateStack {
                name: Name::parse_as("stack name", &stack)?,
                formula: None,
            };
            client.create_stack(&env, &req).await?;
            if human {
                eprintln!("created stack {stack} in environment {env}");
            }
        }
        Err(e) => return Err(e.into()),
    }
    Ok((env, stack, linked))
}

/// Tries an upload this many times while the control plane is busy with others (429).
const BUSY_TRIES: u32 = 6;

/// Uploads `bytes` as `kind`, showing progress on a terminal; while the control plane is busy
/// receiving other uploads, tries again a few times, 5 s apart.
async fn upload(
    client: &Client,
    bytes: Vec<u8>,
    digest: &str,
    kind: &str,
    human: bool,
) -> Result<()> {
    let total = bytes.len();
    let tty = human && std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut attempt = 1;
    let up = loop {
        let chunks: Vec<Vec<u8>> = bytes.chunks(256 * 1024).map(|c| c.to_vec()).collect();
        let mut sent = 0usize;
        let stream = futures_util::stream::iter(chunks.into_iter().map(move |c| {
            sent += c.len();
            if tty {
                eprint!(
                    "\ruploading {} of {}",
                    size(sent as u64),
                    size(total as u64)
                );
            }
            Ok::<_, std::io::Error>(c)
        }));
        let body = reqwest::Body::wrap_stream(stream);
        match client.upload(digest, kind, total as u64, body).await {
            Err(e) if e.code() == Some(ErrorCode::ResourceExhausted) && attempt < BUSY_TRIES => {
                if human {
                    eprintln!("{e}; trying again in 5s");
                }
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
            r => break r?,
        }
    };
    if human {
        if tty {
            eprint!("\r");
        }
        eprintln!(
            "uploaded {} ({}{}) in {:.1}s",
            short(&up.digest),
            size(up.size),
            if up.files > 0 {
                format!(", {} files", up.files)
            } else {
                String::new()
            },
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn size(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(19)]
}

pub async fn deploy(ctx: &Ctx, args: DeployArgs) -> Result<()> {
    let dir = match &args.dir {
        Some(d) => ctx.cwd.join(d),
        None => ctx.cwd.clone(),
    };
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot use {} as the directory to deploy", dir.display()))?;
    let client = ctx.client()?;
    let human = !ctx.json();
    let (env, stack, linked) = resolve_target(ctx, &client, &dir).await?;
    let req = match &args.image {
        Some(path) => {
            let path = ctx.cwd.join(path);
            let bytes = std::fs::read(&path)
                .with_context(|| format!("cannot read the image archive {}", path.display()))?;
            let digest = mesh_build::digest_of(&bytes);
            upload(&client, bytes, &digest, "image", human).await?;
            CreateDeployment {
                image_archive: Some(digest),
                ..CreateDeployment::default()
            }
        }
        None => {
            let current = client.stack(&env, &stack).await?;
            let first = current.current_deployment.is_none()
                && client.list_deployments(&env, &stack).await?.is_empty();
            let formula = mesh_build::choose_formula(
                &dir,
                first,
                Some(current.formula),
                args.formula.formula(),
            );
            let packed = {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || mesh_build::pack(&dir))
                    .await
                    .context("packing the source")??
            };
            if human {
                eprintln!(
                    "packed {} ({} files, {} unpacked) with the {formula} formula",
                    dir.display(),
                    packed.files,
                    size(packed.size)
                );
            }
            let digest = format!("sha256:{}", packed.digest);
            upload(&client, packed.bytes, &digest, "source", human).await?;
            CreateDeployment {
                source: Some(digest),
                formula: Some(formula),
                ..CreateDeployment::default()
            }
        }
    };
    let d = client.create_deployment(&env, &stack, &req).await?;
    if !linked && target::find_link(&dir)?.is_none() {
        let link = target::Link {
            environment: Some(env.clone()),
            stack: Some(stack.clone()),
        };
        let path = target::write_link(&dir, &link)?;
        if human {
            eprintln!(
                "linked {} to {env}/{stack} ({})",
                dir.display(),
                path.display()
            );
        }
    }
    follow(
        ctx,
        &client,
        &env,
        &stack,
        d,
        args.detach,
        Mode::from_raw_flag(args.raw),
    )
    .await
}

pub async fn rollback(ctx: &Ctx, args: RollbackArgs) -> Result<()> {
    let target = ctx.target()?;
    let (env, stack) = target.env_stack()?;
    let version = args.to.as_deref().map(Version::parse).transpose()?;
    let client = ctx.client()?;
    let d = client.rollback(env, stack, version).await?;
    follow(
        ctx,
        &client,
        env,
        stack,
        d,
        args.detach,
        Mode::from_raw_flag(args.raw),
    )
    .await
}

/// Prints the deployment's log as it is written (its control characters escaped unless `mode`
/// is raw), then how it ended; an error if it failed.
pub async fn follow(
    ctx: &Ctx,
    client: &Client,
    env: &str,
    stack: &str,
    d: Deployment,
    detach: bool,
    mode: Mode,
) -> Result<()> {
    let started = Instant::now();
    if detach {
        if ctx.json() {
            print_json(&d);
        } else {
            print(format!(
                "deployment {} of {env}/{stack} started: follow it with `mesh deployments show {}`",
                d.version, d.version
            ));
        }
        return Ok(());
    }
    if !ctx.json() {
        eprintln!(
            "deployment {} of {env}/{stack}: {}",
            d.version,
            mode.apply(&d.description)
        );
    }
    let mut log = client.follow_deployment_log(env, stack, d.version).await?;
    let mut tail: Vec<String> = Vec::new();
    while let Some(line) = log.next_line().await? {
        let line = mode.apply(&line);
        if !ctx.json() {
            print(&line);
        }
        tail.push(line);
        if tail.len() > 20 {
            tail.remove(0);
        }
    }
    let end = client.deployment(env, stack, d.version).await?;
    if ctx.json() {
        print_json(&end);
    }
    match end.status {
        DeploymentStatus::Succeeded => {
            if !ctx.json() {
                eprintln!(
                    "deployed {} in {:.1}s",
                    end.version,
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }
        status if status.is_finished() => {
            let step = end
                .steps
                .iter()
                .rev()
                .find(|s| s.status == "failed")
                .map(|s| s.name.as_str())
                .unwrap_or("deployment");
            let why = mode.apply(&end.message.unwrap_or_default());
            if ctx.json() {
                bail!("deployment {} {}: {why}", end.version, status.as_str());
            }
            bail!(
                "deployment {} {} in its {step} step: {why}\nlast lines:\n{}",
                end.version,
                status.as_str(),
                tail.join("\n")
            )
        }
        _ => bail!(
            "lost the deployment's log before it ended; follow it with `mesh deployments show {}`",
            end.version
        ),
    }
}
