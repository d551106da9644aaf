//! `mesh env`: environments.

use anyhow::Result;
use clap::Subcommand;
use mesh_types::Name;
use mesh_types::api::{
    CreateEnvironment, Environment, PlacementState, RackPlacement, UpdateEnvironment,
};

use super::Ctx;
use super::endpoint::routes_cell;
use super::svc::service_rows;
use crate::confirm;
use crate::output::{datetime, fields, or_dash, print, print_json, table};

#[derive(Debug, Subcommand)]
pub enum EnvCmd {
    /// Create an empty environment
    Create {
        /// Unique on the whole platform: lowercase letters, digits and dashes
        name: String,
        /// Racks to place it on, in order [default: the platform's default rack]
        #[arg(long, value_delimiter = ',', value_name = "RACK,...")]
        rack: Vec<String>,
    },
    /// List environments
    #[command(visible_alias = "list")]
    Ls,
    /// Show an environment with its stacks, services and endpoints
    Show {
        /// [default: the chosen environment]
        name: Option<String>,
        #[command(flatten)]
        target: super::EnvTarget,
    },
    /// Delete an environment and everything in it
    Delete {
        name: String,
        /// Do not ask for confirmation
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Place an environment on racks. To move it: `--rack old,new` brings it up on `new` too;
    /// then `--rack new` retires `old` once `new` is healthy, its router forwarding the
    /// environment's hosts to `new` for the drain grace before its instances stop
    Update {
        name: String,
        /// The racks, in order, the newest last
        #[arg(long, value_delimiter = ',', value_name = "RACK,...", required = true)]
        rack: Vec<String>,
        /// How long a rack taken out keeps forwarding to the remaining racks once they are
        /// healthy, for DNS caches that still point at it (`30s`, `5m`, `1h`; at most a day)
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = grace_arg)]
        drain_grace: u64,
        /// Return at once instead of waiting until every rack is healthy (and racks taken out
        /// forward); `mesh env show` tells where it stands
        #[arg(long)]
        no_wait: bool,
    },
}

pub(super) fn grace_arg(s: &str) -> Result<u64, String> {
    let secs = mesh_types::schedule::parse_duration(s)?;
    if secs > mesh_types::api::MAX_DRAIN_GRACE_S {
        return Err("at most a day (24h): DNS caches rarely keep a record longer".into());
    }
    Ok(secs)
}

/// How long `mesh env update` waits for the racks before it gives up (the move goes on).
const WAIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Whether a rack move has got where `mesh env update` waits for: every rack the environment
/// is on healthy, and every rack it leaves forwarding (or gone). A rack without a live server
/// cannot get anywhere until its agent runs: it is shown, not waited for, and neither is a
/// rack being left that waits for it.
fn settled(placement: &[RackPlacement]) -> bool {
    let lost = placement.iter().any(|p| p.state == PlacementState::Lost);
    placement.iter().all(|p| match p.state {
        PlacementState::Healthy | PlacementState::Forwarding | PlacementState::Lost => true,
        PlacementState::Leaving => lost,
        PlacementState::Starting => false,
    })
}

/// One line per rack: `east: healthy`, `local: forwarding (forwarding to east) until 12:05:00`.
fn placement_line(p: &RackPlacement) -> String {
    let mut line = format!("{}: {}", p.rack, p.state.as_str());
    if !p.detail.is_empty() {
        line.push_str(&format!(" ({})", p.detail));
    }
    if let Some(until) = p.until {
        line.push_str(&format!(" until {}", datetime(until)));
    }
    line
}

/// Follows the environment's placement, printing each rack's line when it changes, until it
/// settles or [`WAIT_LIMIT`] passes.
async fn wait_settled(ctx: &Ctx, name: &str) -> Result<()> {
    let client = ctx.client()?;
    let started = std::time::Instant::now();
    let mut shown: Vec<String> = Vec::new();
    loop {
        let d = client.environment(name).await?;
        for p in &d.placement {
            let line = placement_line(p);
            if !shown.contains(&line) {
                eprintln!("{line}");
                shown.push(line);
            }
        }
        if settled(&d.placement) {
            return Ok(());
        }
        if started.elapsed() > WAIT_LIMIT {
            anyhow::bail!(
                "not every rack is healthy after {} minutes; the move goes on: `mesh env show {name}` tells where it stands",
                WAIT_LIMIT.as_secs() / 60
            );
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

fn rack_names(racks: &[String]) -> Result<Vec<Name>> {
    Ok(racks
        .iter()
        .map(|r| Name::parse_as("rack name", r.trim()))
        .collect::<Result<_, _>>()?)
}

fn join(names: &[Name]) -> String {
    names
        .iter()
        .map(Name::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn run(ctx: &Ctx, cmd: EnvCmd) -> Result<()> {
    match cmd {
        EnvCmd::Create { name, rack } => {
            let req = CreateEnvironment {
                name: Name::parse_as("environment name", &name)?,
                racks: rack_names(&rack)?,
            };
            let env = ctx.client()?.create_environment(&req).await?;
            if ctx.json() {
                print_json(&env);
            } else {
                print(format!(
                    "created environment {} on {} {}",
                    env.name,
                    if env.racks.len() == 1 {
                        "rack"
                    } else {
                        "racks"
                    },
                    join(&env.racks)
                ));
            }
        }
        EnvCmd::Ls => {
            let envs = ctx.client()?.list_environments().await?;
            if ctx.json() {
                print_json(&envs);
            } else if envs.is_empty() {
                print("no environments yet: create one with `mesh env create NAME`");
            } else {
                print(env_table(&envs));
            }
        }
        EnvCmd::Show { name, .. } => {
            let name = match name {
                Some(n) => n,
                None => ctx.target()?.env()?.to_string(),
            };
            let d = ctx.client()?.environment(&name).await?;
            if ctx.json() {
                print_json(&d);
                return Ok(());
            }
            let e = &d.environment;
            let mut out = fields(&[
                ("environment", e.name.to_string()),
                ("racks", join(&e.racks)),
                ("created", datetime(e.created_at)),
                ("updated", datetime(e.updated_at)),
            ]);
            out.push_str("\n\nplacement:\n");
            let lines: Vec<String> = d.placement.iter().map(placement_line).collect();
            out.push_str(&indent(&lines.join("\n")));
            out.push_str("\n\nstacks:\n");
            if d.stacks.is_empty() {
                out.push_str("  none: create one with `mesh create stack NAME`");
            } else {
                let rows = d
                    .stacks
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.to_string(),
                            s.formula.to_string(),
                            or_dash(s.current_deployment),
                        ]
                    })
                    .collect();
                out.push_str(&indent(&table(&["NAME", "FORMULA", "DEPLOYMENT"], rows)));
            }
            out.push_str("\n\nservices:\n");
            if d.services.is_empty() {
                out.push_str("  none");
            } else {
                let (headers, rows) = service_rows(&d.services, true);
                out.push_str(&indent(&table(&headers, rows)));
            }
            out.push_str("\n\nendpoints:\n");
            if d.endpoints.is_empty() {
                out.push_str("  none");
            } else {
                let rows = d
                    .endpoints
                    .iter()
                    .map(|ep| {
                        vec![
                            ep.domain.to_string(),
                            kind(ep.kind).into(),
                            routes_cell(&ep.routes),
                        ]
                    })
                    .collect();
                out.push_str(&indent(&table(&["DOMAIN", "KIND", "ROUTES"], rows)));
            }
            print(out);
        }
        EnvCmd::Delete { name, yes } => {
            confirm::deletion(
                "environment",
                &name,
                " and everything in it (stacks, services, config, endpoints, certificates)",
                yes,
            )?;
            ctx.client()?.delete_environment(&name).await?;
            if !ctx.json() {
                print(format!("deleted environment {name}"));
            }
        }
        EnvCmd::Update {
            name,
            rack,
            drain_grace,
            no_wait,
        } => {
            let req = UpdateEnvironment {
                racks: rack_names(&rack)?,
                drain_grace_s: Some(drain_grace),
            };
            let env = ctx.client()?.update_environment(&name, &req).await?;
            if !ctx.json() {
                let leaving: Vec<Name> = env.leaving.iter().map(|l| l.rack.clone()).collect();
                let mut line = format!(
                    "environment {} is now on {} {}",
                    env.name,
                    if env.racks.len() == 1 {
                        "rack"
                    } else {
                        "racks"
                    },
                    join(&env.racks)
                );
                if !leaving.is_empty() {
                    line.push_str(&format!(
                        "; leaving {} once {} is healthy",
                        join(&leaving),
                        join(&env.racks)
                    ));
                }
                print(line);
            }
            if !no_wait {
                wait_settled(ctx, &name).await?;
            }
            if ctx.json() {
                print_json(&ctx.client()?.environment(&name).await?.environment);
            }
        }
    }
    Ok(())
}

fn env_table(envs: &[Environment]) -> String {
    let rows = envs
        .iter()
        .map(|e| {
            vec![
                e.name.to_string(),
                e.racks
                    .iter()
                    .map(Name::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                datetime(e.created_at),
            ]
        })
        .collect();
    table(&["NAME", "RACKS", "CREATED"], rows)
}

pub fn kind(k: mesh_types::api::EndpointKind) -> &'static str {
    match k {
        mesh_types::api::EndpointKind::Alias => "alias",
        mesh_types::api::EndpointKind::Custom => "custom",
    }
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rack: &str, state: PlacementState) -> RackPlacement {
        RackPlacement {
            rack: rack.parse().unwrap(),
            state,
            detail: String::new(),
            until: Some(1_700_000_000_000).filter(|_| state == PlacementState::Forwarding),
        }
    }

    #[test]
    fn update_waits_for_racks_that_can_get_healthy() {
        use PlacementState::*;
        assert!(settled(&[at("local", Healthy), at("east", Healthy)]));
        assert!(!settled(&[at("local", Healthy), at("east", Starting)]));
        // A rack without a live server is reported, not waited for.
        assert!(settled(&[at("local", Healthy), at("east", Lost)]));
        // A rack being left waits for the remaining ones, unless one of them cannot come up.
        assert!(!settled(&[at("east", Healthy), at("local", Leaving)]));
        assert!(settled(&[at("east", Lost), at("local", Leaving)]));
        assert!(settled(&[at("east", Healthy), at("local", Forwarding)]));
    }

    #[test]
    fn a_rack_line_says_its_state_why_and_until_when() {
        let mut p = at("local", PlacementState::Forwarding);
        p.detail = "forwarding to east".into();
        let line = placement_line(&p);
        assert!(
            line.starts_with("local: forwarding (forwarding to east) until 20"),
            "{line}"
        );
        assert_eq!(
            placement_line(&at("east", PlacementState::Healthy)),
            "east: healthy"
        );
    }
}
