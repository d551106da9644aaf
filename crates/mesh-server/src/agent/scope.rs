//! What a rack's join token may do at the agent gateway, decided without I/O: given what the
//! store says about the rack ([`RackScope`]), a status report, a log batch or a blob request is
//! allowed or refused with a message naming what was out of scope.
//!
//! - Status: every reported instance belongs to an environment placed on the rack.
//! - Logs: every line's environment is placed on the rack, its instance is not one the store
//!   knows on a server of another rack, and its offset is within [`MAX_LOG_OFFSET`] (a huge
//!   offset would make the control plane drop that instance's later lines as duplicates).
//! - Blobs (and images, for the registry API, `registry.rs`): only layers of images the rack's environments run or may run (the current and the
//!   recorded deployments of their stacks); source archives are never layers, so never served.

use std::collections::{BTreeSet, HashMap};

use mesh_types::agent::LogLine;
use mesh_types::api::Instance;
use mesh_types::desired::{BuiltImage, DesiredState, ImageRef};

/// The largest log offset an agent may send: 2^50 bytes (a petabyte of one instance's output).
pub const MAX_LOG_OFFSET: u64 = 1 << 50;

/// What the store says about one rack, gathered before a decision.
#[derive(Debug, Clone, Default)]
pub struct RackScope {
    pub rack: String,
    /// Environments placed on the rack.
    pub environments: BTreeSet<String>,
    /// Servers of the rack.
    pub servers: BTreeSet<String>,
    /// Instances the store knows in the rack's environments, with the server each is placed on.
    pub instances: HashMap<String, Option<String>>,
    /// Blob digests the rack's agents may fetch.
    pub blobs: BTreeSet<String>,
    /// Digests of the images whose layers those are (what the registry API may serve).
    pub images: BTreeSet<String>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Malformed: answered 400.
    Invalid(String),
    /// Out of the rack's scope: answered 403.
    Forbidden(String),
}

impl RackScope {
    /// Adds the layers of `image` to the blobs the rack may fetch.
    pub fn allow_image(&mut self, image: &BuiltImage) {
        self.blobs.extend(image.layers.iter().cloned());
        self.images.insert(image.digest.clone());
    }

    /// Adds every layer the rack's desired state names.
    pub fn allow_desired(&mut self, desired: &DesiredState) {
        for env in &desired.environments {
            self.environments.insert(env.environment.to_string());
            for stack in &env.stacks {
                if let Some(ImageRef::Built(image)) = &stack.image {
                    self.allow_image(image);
                }
            }
        }
    }

    /// Notes the instances the store knows, to tell which are placed elsewhere.
    pub fn know_instances<'a>(&mut self, instances: impl IntoIterator<Item = &'a Instance>) {
        for i in instances {
            self.instances
                .insert(i.id.clone(), i.server.as_ref().map(|s| s.to_string()));
        }
    }

    pub fn check_status(&self, instances: &[Instance]) -> Result<(), Refused> {
        for i in instances {
            if !self.environments.contains(i.environment.as_str()) {
                return Err(Refused::Forbidden(format!(
                    "instance {:?} is of environment {:?}, which is not placed on rack {:?}; \
                     a join token reports only its own rack's instances",
                    i.id,
                    i.environment.as_str(),
                    self.rack
                )));
            }
        }
        Ok(())
    }

    pub fn check_logs(&self, lines: &[LogLine]) -> Result<(), Refused> {
        for l in lines {
            if l.offset == 0 || l.offset > MAX_LOG_OFFSET {
                return Err(Refused::Invalid(format!(
                    "log line of instance {:?} has offset {}; offsets are 1 to {MAX_LOG_OFFSET}",
                    l.instance, l.offset
                )));
            }
            if !self.environments.contains(l.environment.as_str()) {
                return Err(Refused::Forbidden(format!(
                    "log line of environment {:?}, which is not placed on rack {:?}; a join \
                     token ships only its own rack's instances' output",
                    l.environment.as_str(),
                    self.rack
                )));
            }
            // An instance not yet reported (its first lines race its status) is taken as the
            // rack's own; one known on another rack's server is not.
            if let Some(Some(server)) = self.instances.get(&l.instance)
                && !self.servers.contains(server)
            {
                return Err(Refused::Forbidden(format!(
                    "instance {:?} runs on server {server:?}, not on rack {:?}; a join token \
                     ships only its own servers' output",
                    l.instance, self.rack
                )));
            }
        }
        Ok(())
    }

    /// An image the registry API may serve: one the rack runs or may run.
    pub fn check_image(&self, image: &BuiltImage) -> Result<(), Refused> {
        if self.images.contains(&image.digest) {
            Ok(())
        } else {
            Err(Refused::Forbidden(format!(
                "image {} is not one rack {:?} runs; a join token pulls only its own rack's \
                 images",
                image.digest, self.rack
            )))
        }
    }

    pub fn check_blob(&self, digest: &str) -> Result<(), Refused> {
        if self.blobs.contains(digest) {
            Ok(())
        } else {
            Err(Refused::Forbidden(format!(
                "blob {digest} is not a layer of any image rack {:?} runs; a join token fetches \
                 only its own rack's image layers",
                self.rack
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use mesh_types::agent::LogStream;
    use mesh_types::api::InstanceState;

    use super::*;

    fn n(s: &str) -> mesh_types::Name {
        s.parse().unwrap()
    }

    fn scope() -> RackScope {
        let mut s = RackScope {
            rack: "east".into(),
            ..Default::default()
        };
        s.environments.insert("shop".into());
        s.servers.insert("east-1".into());
        s.allow_image(&BuiltImage {
            digest: "sha256:img".into(),
            base: None,
            layers: vec!["sha256:aa".into(), "sha256:bb".into()],
            config: Default::default(),
        });
        s.know_instances(&[
            instance("web-1", "shop", Some("east-1")),
            instance("web-2", "shop", Some("west-1")),
        ]);
        s
    }

    fn instance(id: &str, env: &str, server: Option<&str>) -> Instance {
        Instance {
            id: id.into(),
            environment: n(env),
            stack: n("app"),
            service: n("web"),
            deployment: None,
            server: server.map(n),
            rack: None,
            state: InstanceState::Running,
            address: None,
            restarts: 0,
            exit_code: None,
            message: None,
            started_at: None,
            updated_at: 0,
        }
    }

    fn line(env: &str, instance: &str, offset: u64) -> LogLine {
        LogLine {
            at: 1,
            environment: n(env),
            stack: n("app"),
            service: n("web"),
            instance: instance.into(),
            stream: LogStream::Stdout,
            text: "hi".into(),
            offset,
            rack: None,
        }
    }

    #[test]
    fn status_only_for_the_racks_environments() {
        let s = scope();
        assert_eq!(s.check_status(&[instance("web-1", "shop", None)]), Ok(()));
        let Err(Refused::Forbidden(m)) =
            s.check_status(&[instance("web-1", "shop", None), instance("x", "bank", None)])
        else {
            panic!("another environment's instance was accepted")
        };
        assert!(m.contains("\"bank\"") && m.contains("rack \"east\""), "{m}");
    }

    #[test]
    fn logs_only_for_own_instances_with_bounded_offsets() {
        let s = scope();
        assert_eq!(s.check_logs(&[line("shop", "web-1", 1)]), Ok(()));
        assert_eq!(
            s.check_logs(&[line("shop", "new-1", MAX_LOG_OFFSET)]),
            Ok(()),
            "an instance not reported yet is the rack's own"
        );
        for bad in [0, MAX_LOG_OFFSET + 1, u64::MAX] {
            assert!(
                matches!(s.check_logs(&[line("shop", "web-1", bad)]), Err(Refused::Invalid(m)) if m.contains("offsets are 1 to")),
                "offset {bad}"
            );
        }
        assert!(matches!(
            s.check_logs(&[line("bank", "web-1", 5)]),
            Err(Refused::Forbidden(m)) if m.contains("not placed on rack")
        ));
        assert!(matches!(
            s.check_logs(&[line("shop", "web-2", 5)]),
            Err(Refused::Forbidden(m)) if m.contains("server \"west-1\"")
        ));
    }

    #[test]
    fn blobs_only_the_racks_image_layers() {
        let s = scope();
        assert_eq!(s.check_blob("sha256:aa"), Ok(()));
        assert_eq!(s.check_blob("sha256:bb"), Ok(()));
        assert!(
            matches!(s.check_blob("sha256:cc"), Err(Refused::Forbidden(m)) if m.contains("rack \"east\""))
        );
        // The image's own digest names no blob.
        assert!(s.check_blob("sha256:img").is_err());
        let mut other = BuiltImage {
            digest: "sha256:img".into(),
            base: None,
            layers: vec![],
            config: Default::default(),
        };
        assert_eq!(s.check_image(&other), Ok(()));
        other.digest = "sha256:other".into();
        assert!(
            matches!(s.check_image(&other), Err(Refused::Forbidden(m)) if m.contains("rack \"east\""))
        );
    }
}
