//! End-to-end tests of the `mesh` binary: each test starts a real `mesh up` with its own HOME
//! and XDG directories on a free loopback port, then runs `mesh` commands as a new user would.

#[path = "cli/harness.rs"]
mod harness;

#[path = "cli/access.rs"]
mod access;
#[path = "cli/agent.rs"]
mod agent;
#[path = "cli/builds.rs"]
mod builds;
#[path = "cli/cloud_lab.rs"]
mod cloud_lab;
#[path = "cli/cloud_providers.rs"]
mod cloud_providers;
#[path = "cli/config.rs"]
mod config;
#[path = "cli/deploys.rs"]
mod deploys;
#[path = "cli/edge.rs"]
mod edge;
#[path = "cli/endpoints.rs"]
mod endpoints;
#[path = "cli/environments.rs"]
mod environments;
#[path = "cli/examples.rs"]
mod examples;
#[path = "cli/instances.rs"]
mod instances;
#[path = "cli/kube.rs"]
mod kube;
#[path = "cli/lifecycle.rs"]
mod lifecycle;
#[path = "cli/load.rs"]
mod load;
#[path = "cli/migration.rs"]
mod migration;
#[path = "cli/multirack.rs"]
mod multirack;
#[path = "cli/platform.rs"]
mod platform;
#[path = "cli/provider_lab.rs"]
mod provider_lab;
#[path = "cli/providers.rs"]
mod providers;
#[path = "cli/replacement.rs"]
mod replacement;
#[path = "cli/restart.rs"]
mod restart;
#[path = "cli/routes.rs"]
mod routes;
#[path = "cli/server.rs"]
mod server;
#[path = "cli/servers.rs"]
mod servers;
#[path = "cli/services.rs"]
mod services;
#[path = "cli/web.rs"]
mod web;
