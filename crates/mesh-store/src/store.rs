//! The `Store` trait: every read and write of control-plane state.

use std::collections::BTreeMap;

use async_trait::async_trait;
use mesh_types::agent::{LogAck, LogLine};
use mesh_types::api::{
    Certificate, CreateProvider, CreateStack, Deployment, DeploymentBuild, DeploymentStatus,
    DeploymentStep, Endpoint, EndpointKind, Environment, Event, Instance, LeavingRack,
    NewDeployment, Provider, Rack, RackState, Replacement, ReplacementPhase, Route, Server,
    ServerState, Service, Stack, Token, UpdateStack,
};
use mesh_types::api::{HealthCheck, Role};
use mesh_types::config::{ConfigScope, ConfigVar};
use mesh_types::{ConfigKey, Domain, InstanceSize, Name, Schedule, UnixMs, Version};

use crate::StoreResult;

/// The stored definition of a service; kind, hostname and status are derived when read.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    pub name: Name,
    pub command: Option<String>,
    pub schedule: Option<Schedule>,
    pub port: u16,
    pub instances: u32,
    pub size: InstanceSize,
    pub health: HealthCheck,
}

/// An alias endpoint the store keeps in step with the racks of an environment.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasSpec {
    pub domain: Domain,
    pub rack: Name,
}

/// A certificate with its chain and (sealed at rest) private key.
#[derive(Debug, Clone, PartialEq)]
pub struct CertificateRecord {
    pub certificate: Certificate,
    pub chain_pem: String,
    pub key_pem: String,
}

/// A token as found by its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub token: Token,
    pub hash: String,
}

/// A stored line of instance output and its id. Ids grow in the order lines were stored within
/// an environment (each environment's writes are serialized), so a reader that saw id N
/// resumes with [`LogRead::after`] = N and misses nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLogLine {
    pub id: i64,
    pub line: LogLine,
}

/// Which stored lines of one environment to read, oldest (lowest id) first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogRead {
    pub stack: Option<String>,
    pub service: Option<String>,
    pub instance: Option<String>,
    /// Lines printed at or after this time; lines are taken in stored order from the first one
    /// printed at `since`, so a line stored late with an earlier time may be left out.
    pub since: UnixMs,
    /// Only lines with a greater id (0: from the start).
    pub after: i64,
    /// At most this many lines; read again after the last id for more.
    pub limit: u32,
}

/// How much instance output an environment keeps: lines older than `max_age_ms` and, oldest
/// first, lines beyond `max_bytes` are dropped as new lines arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    pub max_age_ms: UnixMs,
    pub max_bytes: u64,
}

/// What storing a batch of log lines did: the answer for the agent, and the lines kept (with
/// their ids) for readers in this process.
#[derive(Debug, Clone, PartialEq)]
pub struct LogAppend {
    pub ack: LogAck,
    pub kept: Vec<StoredLogLine>,
}

/// Every read and write of control-plane state.
///
/// Rules every implementation keeps:
/// - names are unique where the vocabulary says: environments platform-wide, stacks per
///   environment, services per stack, endpoint domains platform-wide; a duplicate is
///   `AlreadyExists` with a message naming the thing and where;
/// - a missing parent or target is `NotFound("environment \"shop\"")`-style;
/// - deleting an environment, stack or service removes everything under it;
/// - every method is atomic: it either happens whole or not at all;
/// - acknowledged writes are durable across a crash of the process.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // Tokens: only SHA-256 hashes are stored.
    async fn create_token(
        &self,
        name: &str,
        role: Role,
        rack: Option<&Name>,
        hash: &str,
    ) -> StoreResult<Token>;
    /// A developer or viewer token reaching `environments` (each must exist), or an admin token
    /// (no environments); `expires_at`: when it stops working.
    async fn create_scoped_token(
        &self,
        name: &str,
        role: Role,
        environments: &[Name],
        expires_at: Option<UnixMs>,
        hash: &str,
    ) -> StoreResult<Token>;
    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRecord>>;
    async fn list_tokens(&self) -> StoreResult<Vec<Token>>;
    async fn delete_token(&self, name: &str) -> StoreResult<()>;
    /// Records use; implementations may coalesce these writes.
    async fn touch_token(&self, name: &str, at: UnixMs) -> StoreResult<()>;

    // Providers: secret values are sealed.
    async fn create_provider(&self, provider: &CreateProvider, at: UnixMs)
    -> StoreResult<Provider>;
    async fn list_providers(&self) -> StoreResult<Vec<Provider>>;
    async fn get_provider(&self, name: &str) -> StoreResult<Provider>;
    async fn provider_secrets(&self, name: &str) -> StoreResult<BTreeMap<String, String>>;
    /// `FailedPrecondition` while racks use it.
    async fn delete_provider(&self, name: &str) -> StoreResult<()>;

    // Racks and their servers.
    /// `NotFound` if its provider does not exist.
    async fn create_rack(&self, rack: &Rack) -> StoreResult<Rack>;
    /// A rack with the kubeconfig of its cluster (a Kubernetes rack), sealed, in one write.
    async fn create_kube_rack(&self, rack: &Rack, kubeconfig: &str) -> StoreResult<Rack>;
    /// A Kubernetes rack's kubeconfig; None for a native rack.
    async fn rack_kubeconfig(&self, rack: &str) -> StoreResult<Option<String>>;
    /// Gives a Kubernetes rack whose cluster a provider made the kubeconfig its first server
    /// sent, sealed, when it has none yet (in one write, so two offers cannot both be taken):
    /// whether it was set. `FailedPrecondition` for a native rack.
    async fn set_rack_kubeconfig(&self, rack: &str, kubeconfig: &str) -> StoreResult<bool>;
    async fn list_racks(&self) -> StoreResult<Vec<Rack>>;
    async fn get_rack(&self, name: &str) -> StoreResult<Rack>;
    async fn update_rack(&self, rack: &Rack) -> StoreResult<Rack>;
    /// `FailedPrecondition` while environments are placed on it.
    async fn delete_rack(&self, name: &str) -> StoreResult<()>;
    async fn upsert_server(&self, server: &Server) -> StoreResult<Server>;
    /// Upserts `server` as its rack's server after removing the servers named in `replacing`
    /// and their instances, in one transaction; `FailedPrecondition` (nothing changed) unless
    /// the rack's other servers are exactly `replacing`, i.e. they changed since the caller
    /// read them. Claims of one rack are serialized, also across control planes.
    async fn claim_server(&self, server: &Server, replacing: &[Name]) -> StoreResult<Server>;
    /// Registers `server` as a second server of its rack, beside `keeping` (the new server of
    /// a server replacement); `FailedPrecondition` if the rack's other servers are not exactly
    /// `keeping`.
    async fn join_server_beside(&self, server: &Server, keeping: &[Name]) -> StoreResult<Server>;
    /// Records a heartbeat of a server at `at`, leaving it in `state`; `NotFound` if the rack
    /// has no such server.
    async fn heartbeat_server(
        &self,
        rack: &str,
        server: &str,
        at: UnixMs,
        state: ServerState,
    ) -> StoreResult<()>;
    /// Marks a server lost and its instances `unknown`, unless it is lost already or its last
    /// heartbeat (its creation, without one) is no longer `seen`: true if this call marked it.
    async fn mark_server_lost(&self, rack: &str, server: &str, seen: UnixMs) -> StoreResult<bool>;
    /// With each server's instance count, in the order they joined.
    async fn list_servers(&self, rack: &str) -> StoreResult<Vec<Server>>;

    // Server replacements (`mesh rack upgrade` / `resize`): at most one per rack.
    /// Starts `r`, putting the rack in `state`; `AlreadyExists` if the rack replaces a server
    /// already.
    async fn start_replacement(&self, r: &Replacement, state: RackState) -> StoreResult<()>;
    async fn get_replacement(&self, rack: &str) -> StoreResult<Option<Replacement>>;
    async fn list_replacements(&self) -> StoreResult<Vec<Replacement>>;
    /// Moves the replacement of `rack` started at `since` from phase `from` to `to` at `at`,
    /// saying `message`; into `Forwarding`, the rack's address becomes `address` (if given) and
    /// the old server is marked draining, in the same write; from `Forwarding` into `Undoing`,
    /// the address becomes `address` (the old server's) and the old server is ready again. False if it is not in `from`
    /// (another control plane moved it first).
    #[allow(clippy::too_many_arguments)]
    async fn advance_replacement(
        &self,
        rack: &str,
        since: UnixMs,
        from: ReplacementPhase,
        to: ReplacementPhase,
        at: UnixMs,
        message: Option<&str>,
        address: Option<&str>,
    ) -> StoreResult<bool>;
    /// Ends the replacement of `rack` in phase `from`: from `Removing` it is done (the old
    /// server and its instances go, the rack takes the new server's size and instance salt),
    /// from `Undoing` it is undone (the new server and its instances go); the rack is ready.
    /// False if it is not in `from`.
    async fn end_replacement(
        &self,
        rack: &str,
        since: UnixMs,
        from: ReplacementPhase,
    ) -> StoreResult<bool>;
    /// The instance salt of the rack's server, if it replaced another.
    async fn instance_salt(&self, rack: &str) -> StoreResult<Option<String>>;

    // Environments. `aliases` are the alias endpoints it must have afterwards: the store adds
    // the missing ones and removes alias endpoints no longer listed.
    async fn create_environment(
        &self,
        name: &Name,
        racks: &[Name],
        aliases: &[AliasSpec],
        at: UnixMs,
    ) -> StoreResult<Environment>;
    async fn list_environments(&self) -> StoreResult<Vec<Environment>>;
    async fn get_environment(&self, name: &str) -> StoreResult<Environment>;
    /// Places the environment on `racks` and merges the racks it is leaving (a rack may not
    /// be in both): a rack put back stops leaving; a rack of `leaving` that is placed now
    /// starts leaving unless it already is; existing leaving entries are never rewritten.
    /// Aliases of racks it is neither on nor leaving afterwards are left out.
    async fn update_environment_racks(
        &self,
        name: &str,
        racks: &[Name],
        leaving: &[LeavingRack],
        aliases: &[AliasSpec],
        at: UnixMs,
    ) -> StoreResult<Environment>;
    /// The remaining racks are healthy: the leaving `rack` (taken out at `since`) forwards
    /// from `at`. False if that entry is gone or forwards already (another control plane was
    /// first, or the rack was put back and taken out again).
    async fn start_forwarding(
        &self,
        env: &str,
        rack: &str,
        since: UnixMs,
        at: UnixMs,
    ) -> StoreResult<bool>;
    /// The environment has left `rack` (the entry taken out at `since`, forwarding): the entry
    /// and that rack's alias endpoints go. False if that entry is not there.
    async fn finish_leaving(&self, env: &str, rack: &str, since: UnixMs) -> StoreResult<bool>;
    async fn delete_environment(&self, name: &str) -> StoreResult<()>;

    // Stacks.
    async fn create_stack(&self, env: &str, stack: &CreateStack, at: UnixMs) -> StoreResult<Stack>;
    async fn list_stacks(&self, env: &str) -> StoreResult<Vec<Stack>>;
    async fn get_stack(&self, env: &str, stack: &str) -> StoreResult<Stack>;
    /// Empty `release_command` / `builder` clear them.
    async fn update_stack(
        &self,
        env: &str,
        stack: &str,
        update: &UpdateStack,
        at: UnixMs,
    ) -> StoreResult<Stack>;
    async fn delete_stack(&self, env: &str, stack: &str) -> StoreResult<()>;

    // Services. `stack: None` lists every stack's services.
    async fn create_service(
        &self,
        env: &str,
        stack: &str,
        spec: &ServiceSpec,
        at: UnixMs,
    ) -> StoreResult<Service>;
    async fn list_services(&self, env: &str, stack: Option<&str>) -> StoreResult<Vec<Service>>;
    async fn get_service(&self, env: &str, stack: &str, service: &str) -> StoreResult<Service>;
    /// Replaces the definition (the name stays).
    async fn update_service(
        &self,
        env: &str,
        stack: &str,
        spec: &ServiceSpec,
        at: UnixMs,
    ) -> StoreResult<Service>;
    async fn delete_service(&self, env: &str, stack: &str, service: &str) -> StoreResult<()>;

    // Config: every scope of one stack. Values are sealed at rest.
    async fn list_config(&self, env: &str, stack: &str) -> StoreResult<Vec<ConfigVar>>;
    /// Sets and unsets variables of one scope atomically; `NotFound` for a scope service that
    /// does not exist or an unset key that is not set. Returns the stack's variables afterwards.
    async fn change_config(
        &self,
        env: &str,
        stack: &str,
        scope: &ConfigScope,
        set: &BTreeMap<ConfigKey, String>,
        unset: &[ConfigKey],
        at: UnixMs,
    ) -> StoreResult<Vec<ConfigVar>>;

    // Endpoints and routes. Domains are unique platform-wide.
    async fn create_endpoint(
        &self,
        env: &str,
        domain: &Domain,
        kind: EndpointKind,
        rack: Option<&Name>,
        at: UnixMs,
    ) -> StoreResult<Endpoint>;
    async fn list_endpoints(&self, env: &str) -> StoreResult<Vec<Endpoint>>;
    async fn get_endpoint(&self, env: &str, domain: &str) -> StoreResult<Endpoint>;
    async fn delete_endpoint(&self, env: &str, domain: &str) -> StoreResult<()>;
    /// Turns the redirect of plain HTTP to HTTPS on or off.
    async fn set_https_redirect(&self, env: &str, domain: &str, on: bool) -> StoreResult<Endpoint>;
    /// Replaces the routes; every route's stack and service must exist in the environment.
    async fn set_routes(&self, env: &str, domain: &str, routes: &[Route]) -> StoreResult<Endpoint>;

    // Certificates: the key is sealed at rest.
    async fn add_certificate(&self, record: &CertificateRecord) -> StoreResult<Certificate>;
    async fn list_certificates(&self, env: &str) -> StoreResult<Vec<Certificate>>;
    async fn get_certificate(&self, env: &str, fingerprint: &str)
    -> StoreResult<CertificateRecord>;
    async fn delete_certificate(&self, env: &str, fingerprint: &str) -> StoreResult<()>;

    // Deployments, numbered v0, v1, ... per stack.
    async fn create_deployment(
        &self,
        env: &str,
        stack: &str,
        new: &NewDeployment,
        at: UnixMs,
    ) -> StoreResult<Deployment>;
    async fn list_deployments(&self, env: &str, stack: &str) -> StoreResult<Vec<Deployment>>;
    async fn get_deployment(
        &self,
        env: &str,
        stack: &str,
        version: Version,
    ) -> StoreResult<Deployment>;
    /// A finished status sets `finished_at`; `Succeeded` makes it the stack's current deployment.
    async fn set_deployment_status(
        &self,
        env: &str,
        stack: &str,
        version: Version,
        status: DeploymentStatus,
        message: Option<&str>,
        at: UnixMs,
    ) -> StoreResult<Deployment>;
    /// Records the image, processes and release command a build or import produced.
    async fn set_deployment_build(
        &self,
        env: &str,
        stack: &str,
        version: Version,
        build: &DeploymentBuild,
    ) -> StoreResult<Deployment>;
    async fn set_deployment_steps(
        &self,
        env: &str,
        stack: &str,
        version: Version,
        steps: &[DeploymentStep],
    ) -> StoreResult<()>;
    /// Points the stack at a deployment (or none): what its services run from now on.
    async fn set_current_deployment(
        &self,
        env: &str,
        stack: &str,
        version: Option<Version>,
        at: UnixMs,
    ) -> StoreResult<Stack>;
    async fn append_deployment_log(
        &self,
        env: &str,
        stack: &str,
        version: Version,
        text: &str,
    ) -> StoreResult<()>;
    async fn deployment_log(&self, env: &str, stack: &str, version: Version)
    -> StoreResult<String>;

    // Instances, as agents report them.
    async fn upsert_instance(&self, instance: &Instance) -> StoreResult<()>;
    async fn list_instances(&self, env: &str) -> StoreResult<Vec<Instance>>;
    /// Replaces every instance one server reported before with `instances`, atomically;
    /// instances of services deleted meanwhile are dropped.
    async fn replace_server_instances(
        &self,
        server: &str,
        instances: &[Instance],
    ) -> StoreResult<()>;
    async fn delete_instance(&self, env: &str, id: &str) -> StoreResult<()>;

    // The audit log.
    async fn record_event(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: &str,
        at: UnixMs,
    ) -> StoreResult<()>;
    /// Newest first.
    async fn list_events(&self, limit: u32) -> StoreResult<Vec<Event>>;

    // Instance output, as agents ship it.
    /// Stores the lines that are new, in one transaction: a line at or below the highest
    /// offset already kept for its instance and stream (kept in the store, so it holds across
    /// restarts) is a duplicate. Lines of environments that no longer exist are dropped as
    /// duplicates. Then drops, oldest first, lines beyond `limits` in the environments written
    /// to, a bounded number per call.
    async fn append_logs(
        &self,
        lines: Vec<LogLine>,
        now: UnixMs,
        limits: LogLimits,
    ) -> StoreResult<LogAppend>;
    /// An environment's stored lines, oldest first; `NotFound` if it does not exist.
    async fn read_logs(&self, env: &str, read: &LogRead) -> StoreResult<Vec<StoredLogLine>>;
}
