//! How the control plane builds: `--builder local` (isolated build containers on this machine,
//! the default when it can run them), `none`, or `fake` (tests: the source on a busybox base,
//! no containers), and the largest upload it accepts.

use std::path::Path;
use std::sync::Arc;

use clap::Args;
use mesh_build::BlobDir;
use mesh_server::Builder;

#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// How sources are built: `local` (in isolated build containers on this machine; needs root
    /// and runc) or `none` (only `mesh deploy --image` works) [default: local when possible]
    #[arg(long, value_name = "KIND", value_parser = ["local", "none", "fake"], hide_possible_values = true)]
    pub builder: Option<String>,
    /// Largest source or image archive accepted, in MiB
    #[arg(long, value_name = "MIB", default_value_t = 512)]
    pub max_upload_size: u64,
    /// Addresses of build networks: each build step gets a /30 of it (its own network
    /// namespace and veth), whose only way out is the build egress proxy
    #[arg(long, value_name = "CIDR", default_value = mesh_runtime::build::netns::DEFAULT_SUBNET)]
    pub build_subnet: mesh_runtime::Ipv4Net,
    /// Destinations builds may not reach through the egress proxy, beyond the built-in ones
    /// (loopback, this host's addresses, private, link-local, shared and multicast ranges)
    #[arg(long, value_name = "CIDR", num_args = 1.., value_parser = parse_cidr)]
    pub build_deny: Vec<mesh_runtime::build::Cidr>,
    /// Exceptions to the built-in denials, e.g. a package registry on a private address
    /// (never loopback or this host's own addresses; --build-deny wins)
    #[arg(long, value_name = "CIDR", num_args = 1.., value_parser = parse_cidr)]
    pub build_allow: Vec<mesh_runtime::build::Cidr>,
}

fn parse_cidr(s: &str) -> Result<mesh_runtime::build::Cidr, String> {
    s.parse().map_err(|e: mesh_types::CidrError| e.to_string())
}

impl BuildArgs {
    /// The build network these flags describe.
    pub fn egress(&self) -> mesh_runtime::build::EgressConfig {
        mesh_runtime::build::EgressConfig {
            subnet: self.build_subnet,
            deny: self.build_deny.clone(),
            allow: self.build_allow.clone(),
            ..Default::default()
        }
    }

    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_size.saturating_mul(1024 * 1024)
    }

    /// The builder these flags ask for, made for a control plane keeping its data in `data_dir`.
    pub fn builder(&self, data_dir: &Path) -> anyhow::Result<Option<Arc<dyn Builder>>> {
        let blobs = BlobDir::new(data_dir.join("blobs"));
        match self.builder.as_deref() {
            Some("none") => Ok(None),
            Some("fake") => Ok(Some(Arc::new(mesh_build::builder::fake::FakeBuilder::new(
                blobs,
            )))),
            explicit => match super::cannot_run_instances() {
                None => Ok(local(data_dir, blobs, self.egress())),
                Some(why) if explicit.is_some() => anyhow::bail!("--builder local: {why}"),
                Some(why) => {
                    tracing::info!("builds are off: {why}; `mesh deploy --image` still works");
                    Ok(None)
                }
            },
        }
    }
}

fn local(
    data_dir: &Path,
    blobs: BlobDir,
    network: mesh_runtime::build::EgressConfig,
) -> Option<Arc<dyn Builder>> {
    let limits = mesh_runtime::build::BuildLimits::default();
    Some(Arc::new(mesh_build::local::LocalBuilder::new(
        data_dir.join("builds"),
        blobs,
        limits,
        network,
    )))
}
