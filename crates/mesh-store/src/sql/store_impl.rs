//! The [`Store`] trait, method by method, on the modules that implement it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use mesh_types::agent::LogLine;
use mesh_types::api::{
    Certificate, CreateProvider, CreateStack, Deployment, DeploymentBuild, DeploymentStatus,
    DeploymentStep, Endpoint, EndpointKind, Environment, Event, Instance, LeavingRack,
    NewDeployment, Provider, Rack, RackState, Replacement, ReplacementPhase, Role, Route, Server,
    ServerState, Service, Stack, Token, UpdateStack,
};
use mesh_types::config::{ConfigScope, ConfigVar};
use mesh_types::{ConfigKey, Domain, Name, UnixMs, Version};

use super::{
    SqlStore, certificates, config, deployments, endpoints, environments, events, instances, logs,
    platform, replacements, servers, services, stacks, tokens,
};
use crate::{
    AliasSpec, CertificateRecord, LogAppend, LogLimits, LogRead, ServiceSpec, Store, StoreResult,
    StoredLogLine, TokenRecord,
};

#[async_trait]
impl Store for SqlStore {
    async fn create_token(
        &self,
        name: &str,
        role: Role,
        rack: Option<&Name>,
        hash: &str,
    ) -> StoreResult<Token> {
        tokens::create(self, name, role, rack, hash).await
    }

    async fn create_scoped_token(
        &self,
        name: &str,
        role: Role,
        environments: &[Name],
        expires_at: Option<UnixMs>,
        hash: &str,
    ) -> StoreResult<Token> {
        tokens::create_scoped(self, name, role, None, environments, expires_at, hash).await
    }

    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRecord>> {
        tokens::by_hash(self, hash).await
    }

    async fn list_tokens(&self) -> StoreResult<Vec<Token>> {
        tokens::list(self).await
    }

    async fn delete_token(&self, name: &str) -> StoreResult<()> {
        tokens::delete(self, name).await
    }

    async fn touch_token(&self, name: &str, at: UnixMs) -> StoreResult<()> {
        tokens::touch(self, name, at).await
    }

    async fn create_provider(
        &self,
        provider: &CreateProvider,
        at: UnixMs,
    ) -> StoreResult<Provider> {
        platform::create_provider(self, provider, at).await
    }

    async fn list_providers(&self) -> StoreResult<Vec<Provider>> {
        platform::list_providers(self).await
    }

    async fn get_provider(&self, name: &str) -> StoreResult<Provider> {
        platform::get_provider(self, name).await
    }

    async fn provider_secrets(&self, name: &str) -> StoreResult<BTreeMap<String, String>> {
        platform::provider_secrets(self, name).await
    }

    async fn delete_provider(&self, name: &str) -> StoreResult<()> {
        platform::delete_provider(self, name).await
    }

    async fn create_rack(&self, rack: &Rack) -> StoreResult<Rack> {
        platform::create_rack(self, rack, None).await
    }

    async fn create_kube_rack(&self, rack: &Rack, kubeconfig: &str) -> StoreResult<Rack> {
        platform::create_rack(self, rack, Some(kubeconfig)).await
    }

    async fn rack_kubeconfig(&self, rack: &str) -> StoreResult<Option<String>> {
        platform::rack_kubeconfig(self, rack).await
    }

    async fn set_rack_kubeconfig(&self, rack: &str, kubeconfig: &str) -> StoreResult<bool> {
        platform::set_rack_kubeconfig(self, rack, kubeconfig).await
    }

    async fn list_racks(&self) -> StoreResult<Vec<Rack>> {
        platform::list_racks(self).await
    }

    async fn get_rack(&self, name: &str) -> StoreResult<Rack> {
        platform::get_rack(self, name).await
    }

    async fn update_rack(&self, rack: &Rack) -> StoreResult<Rack> {
        platform::update_rack(self, rack).await
    }

    async fn delete_rack(&self, name: &str) -> StoreResult<()> {
        platform::delete_rack(self, name).await
    }

    async fn upsert_server(&self, server: &Server) -> StoreResult<Server> {
        servers::upsert_server(self, server).await
    }

    async fn claim_server(&self, server: &Server, replacing: &[Name]) -> StoreResult<Server> {
        servers::claim_server(self, server, replacing, &[]).await
    }

    async fn join_server_beside(&self, server: &Server, keeping: &[Name]) -> StoreResult<Server> {
        servers::claim_server(self, server, &[], keeping).await
    }

    async fn heartbeat_server(
        &self,
        rack: &str,
        server: &str,
        at: UnixMs,
        state: ServerState,
    ) -> StoreResult<()> {
        servers::heartbeat_server(self, rack, server, at, state).await
    }

    async fn mark_server_lost(&self, rack: &str, server: &str, seen: UnixMs) -> StoreResult<bool> {
        servers::mark_server_lost(self, rack, server, seen).await
    }

    async fn list_servers(&self, rack: &str) -> StoreResult<Vec<Server>> {
        servers::list_servers(self, rack).await
    }

    async fn create_environment(
        &self,
        name: &Name,
        racks: &[Name],
        aliases: &[AliasSpec],
        at: UnixMs,
    ) -> StoreResult<Environment> {
        environments::create(self, name, racks, aliases, at).await
    }

    async fn list_environments(&self) -> StoreResult<Vec<Environment>> {
        environments::list(self).await
    }

    async fn get_environment(&self, name: &str) -> StoreResult<Environment> {
        environments::get(self, name).await
    }

    async fn update_environment_racks(
        &self,
        name: &str,
        racks: &[Name],
        leaving: &[LeavingRack],
        aliases: &[AliasSpec],
        at: UnixMs,
    ) -> StoreResult<Environment> {
        environments::update_racks(self, name, racks, leaving, aliases, at).await
    }

    async fn start_replacement(&self, r: &Replacement, state: RackState) -> StoreResult<()> {
        replacements::start(self, r, state).await
    }

    async fn get_replacement(&self, rack: &str) -> StoreResult<Option<Replacement>> {
        replacements::get(self, rack).await
    }

    async fn list_replacements(&self) -> StoreResult<Vec<Replacement>> {
        replacements::list(self).await
    }

    async fn advance_replacement(
        &self,
        rack: &str,
        since: UnixMs,
        from: ReplacementPhase,
        to: ReplacementPhase,
        at: UnixMs,
        message: Option<&str>,
        address: Option<&str>,
    ) -> StoreResult<bool> {
        replacements::advance(self, rack, since, from, to, at, message, address).await
    }

    async fn end_replacement(
        &self,
        rack: &str,
        since: UnixMs,
        from: ReplacementPhase,
    ) -> StoreResult<bool> {
        replacements::end(self, rack, since, from).await
    }

    async fn instance_salt(&self, rack: &str) -> StoreResult<Option<String>> {
        replacements::instance_salt(self, rack).await
    }

    async fn start_forwarding(
        &self,
        env: &str,
        rack: &str,
        since: UnixMs,
        at: UnixMs,
    ) -> StoreResult<bool> {
        environments::start_forwarding(self, env, rack, since, at).await
    }

    async fn finish_leaving(&self, env: &str, rack: &str, since: UnixMs) -> StoreResult<bool> {
        environments::finish_leaving(self, env, rack, since).await
    }

    async fn delete_environment(&self, name: &str) -> StoreResult<()> {
        environments::delete(self, name).await
    }

    async fn create_stack(&self, env: &str, stack: &CreateStack, at: UnixMs) -> StoreResult<Stack> {
        stacks::create(self, env, stack, at).await
    }

    async fn list_stacks(&self, env: &str) -> StoreResult<Vec<Stack>> {
        stacks::list(self, env).await
    }

    async fn get_stack(&self, env: &str, stack: &str) -> StoreResult<Stack> {
        stacks::get(self, env, stack).await
    }

    async fn update_stack(
        &self,
        env: &str,
        stack: &str,
        update: &UpdateStack,
        at: UnixMs,
    ) -> StoreResult<Stack> {
        stacks::update(self, env, stack, update, at).await
    }

    async fn delete_stack(&self, env: &str, stack: &str) -> StoreResult<()> {
        stacks::delete(self, env, stack).await
    }

    async fn create_service(
        &self,
        env: &str,
        stack: &str,
        spec: &ServiceSpec,
        at: UnixMs,
    ) -> StoreResult<Service> {
        services::create(self, env, stack, spec, at).await
    }

    async fn list_services(&self, env: &str, stack: Option<&str>) -> StoreResult<Vec<Service>> {
        services::list(self, env, stack).await
    }

    async fn get_service(&self, env: &str, stack: &str, service: &str) -> StoreResult<Service> {
        services::get(self, env, stack, service).await
    }

    async fn update_service(
        &self,
        env: &str,
        stack: &str,
        spec: &ServiceSpec,
        at: UnixMs,
    ) -> StoreResult<Service> {
        services::update(self, env, stack, spec, at).await
    }

    async fn delete_service(&self, env: &str, stack: &str, service: &str) -> StoreResult<()> {
        services::delete(self, env, stack, service).await
    }

    async fn list_config(&self, env: &str, stack: &str) -> StoreResult<Vec<ConfigVar>> {
        config::list(self, env, stack).await
    }

    async fn change_config(
        &self,
        env: &str,
        stack: &str,
        scope: &ConfigScope,
        set: &BTreeMap<ConfigKey, String>,
        unset: &[ConfigKey],
        at: UnixMs,
    ) -> StoreResult<Vec<ConfigVar>> {
        config::change(self, env, stack, scope, set, unset, at).await
    }

    async fn create_endpoint(
        &self,
        env: &str,
        domain: &Domain,
        kind: EndpointKind,
        rack: Option<&Name>,
        at: UnixMs,
    ) -> StoreResult<Endpoint> {
        endpoints::create(self, env, domain, kind, rack, at).await
    }

    async fn list_endpoints(&self, env: &str) -> StoreResult<Vec<Endpoint>> {
        endpoints::list(self, env).await
    }

    async fn get_endpoint(&self, env: &str, domain: &str) -> StoreResult<Endpoint> {
        endpoints::get(self, env, domain).await
    }

    async fn set_https_redirect(&self, env: &str, domain: &str, on: bool) -> StoreResult<Endpoint> {
        endpoints::set_https_redirect(self, env, domain, on).await
    }

    async fn delete_endpoint(&self, env: &str, domain: &str) -> StoreResult<()> {
        endpoints::delete(self, env, domain).await
    }

    async fn set_routes(&self, env: &str, domain: &str, routes: &[Route]) -> StoreResult<Endpoint> {
        endpoints::set_routes(self, env, domain, routes).await
    }

    async fn add_certificate(&self, record: &CertificateRecord) -> StoreResult<Certificate> {
        certificates::add(self, record).await
    }

    async fn list_certificates(&self, env: &str) -> StoreResult<Vec<Certificate>> {
        certificates::list(self, env).await
    }

    async fn get_certificate(
        &self,
        env: &str,
        fingerprint: &str,
    ) -> StoreResult<CertificateRecord> {
        certificates::get(self, env, fingerprint).await
    }

    async fn delete_certificate(&self, env: &str, fingerprint: &str) -> StoreResult<()> {
        certificates::delete(self, env, fingerprint).await
    }

    async fn create_deployment(
        &self,
        env: &str,
        stack: &str,
        new: &NewDeployment,
        at: UnixMs,
    ) -> StoreResult<Deployment> {
        deployments::create(self, env, stack, new, at).await
    }

    async fn list_deployments(&self, env: &str, stack: &str) -> StoreResult<Vec<Deployment>> {
        deployments::list(self, env, stack).await
    }

    async fn get_deployment(
        &self,
        env: &str,
        stack: &str,
        version: Version,
    ) -> StoreResult<Deployment> {
        deployments::get(self, env, stack, version).await
    }

    async fn set_deployment_status(
        &self,
        env: &str,
        stack: &str,
        version: Version,
        status: DeploymentStatus,
        message: Option<&str>,
        at: UnixMs,
    ) -> StoreResult<Deployment> {
        deployments::set_status(self, env, stack, version, status, message, at).await
    }

    async fn set_deployment_build(
        &self,
        env: &str,
        stack: &str,
        version: Version,
        build: &DeploymentBuild,
    ) -> StoreResult<Deployment> {
        deployments::set_build(self, env, stack, version, build).await
    }

    async fn set_deployment_steps(
        &self,
        env: &str,
        stack: &str,
        version: Version,
        steps: &[DeploymentStep],
    ) -> StoreResult<()> {
        deployments::set_steps(self, env, stack, version, steps).await
    }

    async fn set_current_deployment(
        &self,
        env: &str,
        stack: &str,
        version: Option<Version>,
        at: UnixMs,
    ) -> StoreResult<Stack> {
        stacks::set_current(self, env, stack, version, at).await
    }

    async fn append_deployment_log(
        &self,
        env: &str,
        stack: &str,
        version: Version,
        text: &str,
    ) -> StoreResult<()> {
        deployments::append_log(self, env, stack, version, text).await
    }

    async fn deployment_log(
        &self,
        env: &str,
        stack: &str,
        version: Version,
    ) -> StoreResult<String> {
        deployments::log(self, env, stack, version).await
    }

    async fn upsert_instance(&self, instance: &Instance) -> StoreResult<()> {
        instances::upsert(self, instance).await
    }

    async fn replace_server_instances(
        &self,
        server: &str,
        instances: &[Instance],
    ) -> StoreResult<()> {
        instances::replace_for_server(self, server, instances).await
    }

    async fn list_instances(&self, env: &str) -> StoreResult<Vec<Instance>> {
        instances::list(self, env).await
    }

    async fn delete_instance(&self, env: &str, id: &str) -> StoreResult<()> {
        instances::delete(self, env, id).await
    }

    async fn record_event(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: &str,
        at: UnixMs,
    ) -> StoreResult<()> {
        events::record(self, actor, action, target, detail, at).await
    }

    async fn list_events(&self, limit: u32) -> StoreResult<Vec<Event>> {
        events::list(self, limit).await
    }

    async fn append_logs(
        &self,
        lines: Vec<LogLine>,
        now: UnixMs,
        limits: LogLimits,
    ) -> StoreResult<LogAppend> {
        logs::append(self, lines, now, limits).await
    }

    async fn read_logs(&self, env: &str, read: &LogRead) -> StoreResult<Vec<StoredLogLine>> {
        logs::read(self, env, read).await
    }
}
