//! The OpenAPI document (`openapi.json`, served at `/v1/openapi.json`) against the code:
//!
//! - its operations are exactly the route table, [`mesh_server::ROUTES`];
//! - its schemas describe what the `mesh-types` structs serialize to, field by field, so a
//!   renamed, added or removed field fails here until the document follows;
//! - it is OpenAPI 3.1, every `$ref` resolves and every operation is documented alike;
//! - a real control plane answers every operation as documented: status, content type and body.

use std::collections::{BTreeMap, BTreeSet};

use mesh_types::agent::{
    LogAck, LogBatch, LogLine, LogStream, RegisterServer, StatusReport, TaskResult,
};
use mesh_types::api::{
    Certificate, CertificateSource, CertificateState, CreateDeployment, CreateEndpoint,
    CreateEnvironment, CreateProvider, CreateRack, CreateService, CreateStack, CreateToken,
    CreatedRack, CreatedToken, Deployment, DeploymentStatus, DeploymentStep, DnsRecord, Endpoint,
    EndpointKind, Environment, EnvironmentDetails, Event, Formula, HealthCheck, Instance,
    InstanceState, LeavingRack, MadeServerState, PlacementState, Provider, ProviderKind,
    PublishService, Rack, RackPlacement, RackRuntime, RackState, ReplaceOptions, Replacement,
    ReplacementPhase, ResizeRack, Role, RollbackRequest, Route, ScaleService, Server, ServerState,
    Service, ServiceKind, ServiceStatus, SourceUploaded, Stack, Token, UnpublishService,
    UpdateEnvironment, UpdateService, UpdateStack, UpgradeRack, UploadCertificate, WhoAmI,
};
use mesh_types::config::{ConfigChange, ConfigScope, ConfigVar, ResolvedConfig, ResolvedVar};
use mesh_types::desired::{BuiltImage, ImageConfig};
use mesh_types::{
    ConfigKey, Domain, ErrorBody, ErrorCode, ErrorDetail, InstanceSize, Name, Schedule, Version,
};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};

use super::*;

/// The document exactly as the server embeds and serves it.
const DOC: &str = include_str!("../../openapi.json");

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn doc() -> Value {
    serde_json::from_str(DOC).unwrap_or_else(|e| panic!("openapi.json is not valid JSON: {e}"))
}

/// Every operation of the document: (METHOD, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for (key, op) in item.as_object().expect("a path item is an object") {
            if HTTP_METHODS.contains(&key.as_str()) {
                out.push((key.to_uppercase(), path.clone(), op));
            }
        }
    }
    out
}

/// A local `$ref` (`#/components/...`) of the document.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    reference
        .strip_prefix('#')
        .and_then(|pointer| doc.pointer(pointer))
}

/// `value`, or what it refers to when it is a `$ref`.
fn deref<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(doc, r).unwrap_or_else(|| panic!("$ref {r} does not resolve")),
        None => value,
    }
}

fn list(failures: &[String]) -> String {
    failures.iter().map(|f| format!("\n  - {f}")).collect()
}

// ---------------------------------------------------------------------------------------------
// (a) The routes

#[test]
fn every_operation_documents_the_policy_the_server_applies() {
    let doc = doc();
    let mut failures = Vec::new();
    for (method, path, op) in operations(&doc) {
        let m: Method = method.parse().unwrap();
        let served = mesh_server::policy::of(&m, &path).map(|p| p.as_str());
        let documented = op.get("x-policy").and_then(Value::as_str);
        if served != documented {
            failures.push(format!(
                "{method} {path}: x-policy {documented:?}, the server applies {served:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", list(&failures));
}

#[test]
fn the_document_has_exactly_the_routes_of_the_route_table() {
    let doc = doc();
    let mut documented: Vec<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    documented.sort();
    let mut served: Vec<(String, String)> = mesh_server::ROUTES
        .iter()
        .map(|(m, p)| (m.as_str().to_string(), p.clone()))
        .collect();
    served.sort();

    let show = |v: Vec<&(String, String)>| -> String {
        v.iter().map(|(m, p)| format!("\n  {m} {p}")).collect()
    };
    let undocumented: Vec<_> = served.iter().filter(|r| !documented.contains(r)).collect();
    let not_served: Vec<_> = documented.iter().filter(|r| !served.contains(r)).collect();
    assert!(
        undocumented.is_empty() && not_served.is_empty(),
        "openapi.json and the route table (crates/mesh-server/src/routes.rs) differ.\n\
         Served but missing from openapi.json:{}\n\
         In openapi.json but not served:{}",
        show(undocumented),
        show(not_served),
    );
    assert_eq!(documented, served, "the route table lists a route twice");
}

// ---------------------------------------------------------------------------------------------
// A checker for the part of JSON Schema 2020-12 the document uses. Unlike plain JSON Schema it
// is strict about fields: an object may only hold fields its schema lists under `properties`,
// request bodies included, so a field added to a type must be documented.

/// Keywords the checker enforces.
const ENFORCED: &[&str] = &[
    "$ref",
    "type",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "properties",
    "required",
    "additionalProperties",
    "propertyNames",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
];
/// Keywords the checker accepts without enforcing them. `pattern` needs a regex engine, which
/// the tests do not depend on; the typed samples are valid by construction (`Name::parse`, ...).
const ANNOTATIONS: &[&str] = &[
    "description",
    "examples",
    "default",
    "format",
    "title",
    "pattern",
];

struct Checker<'a> {
    doc: &'a Value,
    /// The field names of every object checked against a component schema, by schema name.
    seen: BTreeMap<String, Vec<BTreeSet<String>>>,
}

impl<'a> Checker<'a> {
    fn new(doc: &'a Value) -> Self {
        Self {
            doc,
            seen: BTreeMap::new(),
        }
    }

    /// Checks `value` against `schema`; every mismatch comes back as `where: what`.
    fn check(&mut self, schema: &Value, value: &Value, at: &str) -> Vec<String> {
        let Some(s) = schema.as_object() else {
            return vec![format!("{at}: the schema is not an object: {schema}")];
        };
        let mut errs = Vec::new();
        for key in s.keys() {
            if !ENFORCED.contains(&key.as_str()) && !ANNOTATIONS.contains(&key.as_str()) {
                errs.push(format!(
                    "{at}: schema keyword {key:?} is not understood by this test"
                ));
            }
        }
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            match resolve(self.doc, r) {
                None => errs.push(format!("{at}: $ref {r} does not resolve")),
                Some(target) => {
                    if let (Some(name), Some(fields)) =
                        (r.strip_prefix("#/components/schemas/"), value.as_object())
                    {
                        let keys = fields.keys().cloned().collect();
                        self.seen.entry(name.to_string()).or_default().push(keys);
                    }
                    errs.extend(self.check(target, value, at));
                }
            }
        }
        if let Some(t) = s.get("type") {
            let types: Vec<&str> = match t {
                Value::String(one) => vec![one.as_str()],
                Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            if !types.iter().any(|t| type_matches(t, value)) {
                errs.push(format!("{at}: {value} is not of type {t}"));
                return errs;
            }
        }
        if let Some(allowed) = s.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            errs.push(format!(
                "{at}: {value} is not one of {}",
                Value::Array(allowed.clone())
            ));
        }
        if let Some(c) = s.get("const")
            && c != value
        {
            errs.push(format!("{at}: {value} is not {c}"));
        }
        for (key, exactly_one) in [("anyOf", false), ("oneOf", true)] {
            let Some(branches) = s.get(key).and_then(Value::as_array) else {
                continue;
            };
            let before = self.seen.clone();
            let mut matched = Vec::new();
            let mut why = Vec::new();
            for (i, branch) in branches.iter().enumerate() {
                let saved = std::mem::replace(&mut self.seen, before.clone());
                let e = self.check(branch, value, &format!("{at}<{key}[{i}]>"));
                if e.is_empty() {
                    matched.push(std::mem::replace(&mut self.seen, saved));
                } else {
                    self.seen = saved;
                    why.extend(e);
                }
            }
            match matched.len() {
                0 => errs.push(format!(
                    "{at}: {value} matches none of {key}:{}",
                    list(&why)
                )),
                n if exactly_one && n > 1 => {
                    errs.push(format!("{at}: {value} matches {n} branches of oneOf"))
                }
                _ => self.seen = matched.swap_remove(0),
            }
        }
        if let Some(n) = value.as_f64() {
            if let Some(min) = s.get("minimum").and_then(Value::as_f64)
                && n < min
            {
                errs.push(format!("{at}: {n} is below the minimum {min}"));
            }
            if let Some(max) = s.get("maximum").and_then(Value::as_f64)
                && n > max
            {
                errs.push(format!("{at}: {n} is above the maximum {max}"));
            }
        }
        if let Some(text) = value.as_str() {
            let len = text.chars().count() as u64;
            if let Some(min) = s.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                errs.push(format!("{at}: {text:?} is shorter than {min}"));
            }
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                errs.push(format!("{at}: {text:?} is longer than {max}"));
            }
        }
        if let Some(items) = value.as_array() {
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    errs.extend(self.check(item_schema, item, &format!("{at}[{i}]")));
                }
            }
            let len = items.len() as u64;
            if s.get("minItems")
                .and_then(Value::as_u64)
                .is_some_and(|min| len < min)
            {
                errs.push(format!("{at}: {len} items are too few"));
            }
            if s.get("maxItems")
                .and_then(Value::as_u64)
                .is_some_and(|max| len > max)
            {
                errs.push(format!("{at}: {len} items are too many"));
            }
            if s.get("uniqueItems") == Some(&Value::Bool(true))
                && items
                    .iter()
                    .enumerate()
                    .any(|(i, x)| items[..i].contains(x))
            {
                errs.push(format!("{at}: items repeat"));
            }
        }
        if let Some(fields) = value.as_object() {
            errs.extend(self.check_object(s, fields, at));
        }
        errs
    }

    fn check_object(
        &mut self,
        s: &serde_json::Map<String, Value>,
        fields: &serde_json::Map<String, Value>,
        at: &str,
    ) -> Vec<String> {
        let mut errs = Vec::new();
        let props = s.get("properties").and_then(Value::as_object);
        let extra = s.get("additionalProperties");
        for (key, v) in fields {
            let here = format!("{at}.{key}");
            match (props.and_then(|p| p.get(key)), extra) {
                (Some(prop), _) => errs.extend(self.check(prop, v, &here)),
                (None, Some(more @ Value::Object(_))) if props.is_none() => {
                    errs.extend(self.check(more, v, &here))
                }
                (None, _) if props.is_some() => errs.push(format!(
                    "{at}: field {key:?} is not in the schema's properties"
                )),
                (None, Some(Value::Bool(false))) => {
                    errs.push(format!("{at}: field {key:?} is not allowed"))
                }
                (None, _) => {}
            }
            if let Some(names) = s.get("propertyNames") {
                errs.extend(self.check(
                    names,
                    &Value::String(key.clone()),
                    &format!("{here}<key>"),
                ));
            }
        }
        for name in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = name.as_str().unwrap_or_default();
            if !fields.contains_key(name) {
                errs.push(format!("{at}: required field {name:?} is missing"));
            }
        }
        errs
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// (b) The schemas against the types

const T0: i64 = 1_732_521_600_000;

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn domain(s: &str) -> Domain {
    Domain::parse(s).unwrap()
}

fn key(s: &str) -> ConfigKey {
    ConfigKey::parse(s).unwrap()
}

fn sample<T: Serialize>(schema: &'static str, value: T) -> (&'static str, Value) {
    (
        schema,
        serde_json::to_value(value).expect("samples serialize"),
    )
}

fn environment() -> Environment {
    Environment {
        name: name("shop"),
        racks: vec![name("fra1")],
        leaving: vec![LeavingRack {
            rack: name("local"),
            since: T0,
            drain_grace_ms: 300_000,
            forwarding_since: Some(T0 + 1),
        }],
        created_at: T0,
        updated_at: T0 + 1,
    }
}

fn stack(full: bool) -> Stack {
    Stack {
        environment: name("shop"),
        name: name("web"),
        formula: if full {
            Formula::Dockerfile
        } else {
            Formula::Buildpack
        },
        release_command: full.then(|| "./bin/migrate".to_string()),
        builder: full.then(|| "heroku/builder:24".to_string()),
        image: full.then(|| "busybox".to_string()),
        current_deployment: full.then_some(Version(3)),
        buildpacks: if full {
            vec![
                "https://github.com/heroku/heroku-buildpack-ruby.git#v300".into(),
                "/opt/buildpacks/extra".into(),
            ]
        } else {
            vec![]
        },
        created_at: T0,
        updated_at: T0 + 2,
    }
}

fn service(cron: bool) -> Service {
    Service {
        environment: name("shop"),
        stack: name("web"),
        name: name(if cron { "tick" } else { "app" }),
        kind: if cron {
            ServiceKind::Cron
        } else {
            ServiceKind::Web
        },
        command: cron.then(|| "./bin/tick".to_string()),
        schedule: cron.then(|| Schedule::parse("*/5 * * * *").unwrap()),
        port: 5000,
        instances: if cron { 0 } else { 2 },
        size: InstanceSize::Medium,
        health: HealthCheck {
            http_path: (!cron).then(|| "/up".to_string()),
            grace_s: 30,
        },
        hostname: if cron { "web-tick" } else { "web-app" }.to_string(),
        status: ServiceStatus {
            desired: 2,
            running: 2,
            healthy: 1,
        },
        created_at: T0,
        updated_at: T0,
    }
}

fn endpoint(custom: bool) -> Endpoint {
    Endpoint {
        environment: name("shop"),
        domain: domain(if custom {
            "shop.example.com"
        } else {
            "shop.localhost"
        }),
        kind: if custom {
            EndpointKind::Custom
        } else {
            EndpointKind::Alias
        },
        rack: (!custom).then(|| name("local")),
        routes: vec![Route {
            path: "/".into(),
            stack: name("web"),
            service: name("app"),
        }],
        dns: if custom {
            vec![DnsRecord {
                record_type: "A".into(),
                name: "shop.example.com".into(),
                value: "203.0.113.10".into(),
            }]
        } else {
            vec![]
        },
        https_redirect: custom,
        created_at: T0,
    }
}

fn rack() -> Rack {
    Rack {
        name: name("fra1"),
        provider: name("own"),
        region: name("eu"),
        size: "s-2vcpu-4gb".into(),
        domain: domain("fra1.example.net"),
        address: "203.0.113.10".into(),
        state: RackState::Ready,
        created_at: T0,
        runtime: Default::default(),
    }
}

fn token(agent: bool) -> Token {
    Token {
        name: if agent { "rack-fra1-join" } else { "ci" }.to_string(),
        role: if agent { Role::Agent } else { Role::Developer },
        rack: agent.then(|| name("fra1")),
        environments: if agent { vec![] } else { vec![name("shop")] },
        expires_at: (!agent).then_some(T0 + 86_400_000),
        created_at: T0,
        last_used_at: agent.then_some(T0 + 60_000),
    }
}

fn config_var(scope: ConfigScope) -> ConfigVar {
    ConfigVar {
        key: key("DATABASE_URL"),
        value: "postgres://db/shop".into(),
        scope,
        updated_at: T0,
    }
}

/// `sha256:` and 64 hex digits.
fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn image_config() -> ImageConfig {
    ImageConfig {
        entrypoint: vec!["/cnb/lifecycle/launcher".into()],
        cmd: vec!["bundle".into(), "exec".into(), "puma".into()],
        env: [("RACK_ENV".to_string(), "production".to_string())].into(),
        workdir: Some("/app".into()),
        profile_dir: Some("/app/.profile.d".into()),
    }
}

fn built_image(full: bool) -> BuiltImage {
    BuiltImage {
        digest: digest('e'),
        base: full.then(|| "debian".to_string()),
        layers: if full {
            vec![digest('1'), digest('2')]
        } else {
            vec![digest('3')]
        },
        config: if full {
            image_config()
        } else {
            ImageConfig::default()
        },
    }
}

fn deployment(full: bool) -> Deployment {
    Deployment {
        environment: name("shop"),
        stack: name("web"),
        version: Version(if full { 3 } else { 1 }),
        status: if full {
            DeploymentStatus::RolledBack
        } else {
            DeploymentStatus::Pending
        },
        formula: if full {
            Formula::Buildpack
        } else {
            Formula::Dockerfile
        },
        source_digest: full.then(|| digest('a')),
        message: full.then(|| "health check failed".to_string()),
        created_by: if full { "admin" } else { "ci" }.to_string(),
        created_at: T0,
        finished_at: full.then_some(T0 + 90_000),
        description: if full { "build" } else { "image import" }.to_string(),
        image: full.then(|| built_image(true)),
        processes: if full {
            [
                ("web".to_string(), "bundle exec puma".to_string()),
                ("worker".to_string(), "bundle exec sidekiq".to_string()),
            ]
            .into()
        } else {
            BTreeMap::new()
        },
        release_command: full.then(|| "rails db:migrate".to_string()),
        steps: if full {
            vec![
                DeploymentStep {
                    name: "build".into(),
                    started_at: T0,
                    finished_at: Some(T0 + 60_000),
                    status: "succeeded".into(),
                },
                DeploymentStep {
                    name: "release".into(),
                    started_at: T0 + 60_000,
                    finished_at: Some(T0 + 65_000),
                    status: "succeeded".into(),
                },
                DeploymentStep {
                    name: "rollout".into(),
                    started_at: T0 + 65_000,
                    finished_at: Some(T0 + 90_000),
                    status: "failed".into(),
                },
            ]
        } else {
            vec![]
        },
    }
}

/// Realistic values of every type with a schema, with and without their optional fields.
fn samples() -> Vec<(&'static str, Value)> {
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_string();
    let key_pem = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n".to_string();
    let log_line = |stream, offset| LogLine {
        at: T0,
        environment: name("shop"),
        stack: name("app"),
        service: name("web"),
        instance: "app-web-1a2b3c4d-0".into(),
        stream,
        text: "GET / 200".into(),
        offset,
        rack: None,
    };
    let running = Instance {
        id: "app-web-1a2b3c4d-0".into(),
        environment: name("shop"),
        stack: name("app"),
        service: name("web"),
        deployment: Some(Version(3)),
        server: Some(name("fra1-1")),
        rack: None,
        state: InstanceState::Healthy,
        address: Some("10.231.0.2".into()),
        restarts: 1,
        exit_code: None,
        message: None,
        started_at: Some(T0),
        updated_at: T0,
    };
    vec![
        // The agent gateway
        sample(
            "RegisterServer",
            RegisterServer {
                name: name("fra1-1"),
                address: "10.0.0.2".into(),
                cpus: 2.0,
                memory_mb: 4096,
                version: Some("0.1.0".into()),
                router: Some("10.0.0.2:80".into()),
            },
        ),
        sample(
            "StatusReport",
            StatusReport {
                server: name("fra1-1"),
                instances: vec![running],
            },
        ),
        sample("LogLine", log_line(LogStream::Stdout, 10)),
        sample("LogLine", log_line(LogStream::System, 42)),
        sample(
            "LogLine",
            LogLine {
                rack: Some(name("fra1")),
                ..log_line(LogStream::Stdout, 11)
            },
        ),
        sample(
            "LogBatch",
            LogBatch {
                lines: vec![log_line(LogStream::Stderr, 7)],
            },
        ),
        sample(
            "LogAck",
            LogAck {
                accepted: 3,
                duplicates: 1,
            },
        ),
        sample(
            "TaskResult",
            TaskResult {
                exit_code: Some(0),
                stdout: "ok\n".into(),
                stderr: String::new(),
                error: None,
            },
        ),
        sample(
            "RunRequest",
            mesh_types::api::RunRequest {
                command: "rails db:migrate".into(),
                service: Some(name("web")),
                size: Some(InstanceSize::Small),
                rack: Some(name("east")),
            },
        ),
        sample(
            "ExecRequest",
            mesh_types::api::ExecRequest {
                command: vec!["ls".into(), "-l".into()],
            },
        ),
        // Access
        sample("Token", token(false)),
        sample("Token", token(true)),
        sample(
            "CreateToken",
            CreateToken {
                name: name("ci"),
                role: Some(Role::Developer),
                environments: vec![name("shop")],
                expires_in_secs: Some(86_400),
            },
        ),
        sample(
            "CreatedToken",
            CreatedToken {
                token: token(false),
                secret: "mesh_0123".into(),
            },
        ),
        sample(
            "WhoAmI",
            WhoAmI {
                token: "admin".into(),
                role: Role::Admin,
                environments: vec![],
                expires_at: None,
                server_version: "0.1.0".into(),
            },
        ),
        sample(
            "Event",
            Event {
                id: 7,
                at: T0,
                actor: "admin".into(),
                action: "environment.create".into(),
                target: "shop".into(),
                detail: "racks local".into(),
            },
        ),
        sample(
            "ErrorBody",
            ErrorBody::new(ErrorCode::NotFound, "environment \"shop\" not found"),
        ),
        sample(
            "ErrorBody",
            ErrorBody {
                error: ErrorDetail {
                    code: ErrorCode::InvalidArgument,
                    message: "name \"Shop\" is invalid".into(),
                    request_id: Some("0badc0de000000000001".into()),
                },
            },
        ),
        // Platform
        sample(
            "Provider",
            Provider {
                name: name("own"),
                kind: ProviderKind::Ssh,
                secret_keys: vec!["private_key".into()],
                created_at: T0,
            },
        ),
        sample(
            "CreateProvider",
            CreateProvider {
                name: name("own"),
                kind: ProviderKind::Ssh,
                secrets: [("private_key".to_string(), key_pem.clone())].into(),
            },
        ),
        sample(
            "CreateProvider",
            CreateProvider {
                name: name("here"),
                kind: ProviderKind::Local,
                secrets: BTreeMap::new(),
            },
        ),
        sample("Rack", rack()),
        sample(
            "CreateRack",
            CreateRack {
                name: name("fra1"),
                provider: name("own"),
                region: name("eu"),
                size: Some("s-2vcpu-4gb".into()),
                domain: Some(domain("fra1.example.net")),
                address: Some("203.0.113.10".into()),
                runtime: None,
                kubeconfig: None,
                servers: None,
            },
        ),
        sample(
            "CreateRack",
            CreateRack {
                name: name("k8s"),
                provider: name("local"),
                region: name("eu"),
                size: None,
                domain: Some(domain("k8s.example.net")),
                address: Some("203.0.113.20".into()),
                runtime: Some(RackRuntime::Kubernetes),
                kubeconfig: Some("apiVersion: v1\nkind: Config\n".into()),
                servers: None,
            },
        ),
        sample(
            "CreateRack",
            CreateRack {
                name: name("k3s"),
                provider: name("hz"),
                region: name("fsn1"),
                size: Some("cx22".into()),
                domain: Some(domain("k3s.example.net")),
                address: Some("203.0.113.21".into()),
                runtime: Some(RackRuntime::Kubernetes),
                kubeconfig: None,
                servers: Some(3),
            },
        ),
        sample(
            "AgentRack",
            mesh_types::agent::AgentRack {
                name: name("local"),
                runtime: RackRuntime::Native,
                kubeconfig: None,
            },
        ),
        sample(
            "AgentRack",
            mesh_types::agent::AgentRack {
                name: name("k8s"),
                runtime: RackRuntime::Kubernetes,
                kubeconfig: Some("apiVersion: v1\nkind: Config\n".into()),
            },
        ),
        sample(
            "CreateRack",
            CreateRack {
                name: name("home"),
                provider: name("local"),
                region: name("home"),
                size: None,
                domain: None,
                address: None,
                runtime: None,
                kubeconfig: None,
                servers: None,
            },
        ),
        sample(
            "CreatedRack",
            CreatedRack {
                rack: rack(),
                join_token: "mesh_join".into(),
                servers: vec![mesh_types::api::CreatedServer {
                    name: "fra1-1".into(),
                    address: "203.0.113.10".into(),
                }],
            },
        ),
        sample(
            "ClusterTaken",
            mesh_types::agent::ClusterTaken {
                rack: name("k3s"),
                version: "v1.34.4+k3s1".into(),
            },
        ),
        sample(
            "ResizeRack",
            ResizeRack {
                size: "s-4vcpu-8gb".into(),
                replace: ReplaceOptions::default(),
            },
        ),
        sample(
            "ResizeRack",
            ResizeRack {
                size: "s-4vcpu-8gb".into(),
                replace: ReplaceOptions {
                    drain_grace_s: Some(60),
                    timeout_s: Some(600),
                },
            },
        ),
        sample("UpgradeRack", UpgradeRack::default()),
        sample(
            "UpgradeRack",
            UpgradeRack {
                version: Some("0.1.0".into()),
                replace: ReplaceOptions {
                    drain_grace_s: Some(0),
                    timeout_s: Some(1),
                },
            },
        ),
        sample(
            "Replacement",
            Replacement {
                rack: name("fra1"),
                old_server: name("fra1-1"),
                new_server: name("fra1-2"),
                size: "s-4vcpu-8gb".into(),
                version: "0.1.0".into(),
                phase: ReplacementPhase::Starting,
                since: T0,
                phase_since: T0 + 2000,
                drain_grace_ms: 300_000,
                timeout_ms: 900_000,
                message: Some(
                    "fra1-2 runs shop/web-web 0/2 healthy of the rack's instances".into(),
                ),
            },
        ),
        sample(
            "Replacement",
            Replacement {
                rack: name("fra1"),
                old_server: name("fra1-1"),
                new_server: name("fra1-2"),
                size: "s-4vcpu-8gb".into(),
                version: "0.1.0".into(),
                phase: ReplacementPhase::Making,
                since: T0,
                phase_since: T0,
                drain_grace_ms: 0,
                timeout_ms: 1000,
                message: None,
            },
        ),
        sample(
            "Server",
            Server {
                name: name("fra1-1"),
                rack: name("fra1"),
                address: "10.0.0.2".into(),
                cpus: 4.0,
                memory_mb: 8192,
                state: ServerState::Ready,
                last_heartbeat: Some(T0),
                created_at: T0,
                version: Some("0.1.0".into()),
                instances: 3,
                router: Some("10.0.0.2:80".into()),
            },
        ),
        sample(
            "Server",
            Server {
                name: name("fra1-2"),
                rack: name("fra1"),
                address: "10.0.0.3".into(),
                cpus: 1.5,
                memory_mb: 2048,
                state: ServerState::Lost,
                last_heartbeat: None,
                created_at: T0,
                version: None,
                instances: 0,
                router: None,
            },
        ),
        sample(
            "MadeServer",
            mesh_types::api::MadeServer {
                name: "k3s-2".into(),
                address: "203.0.113.22".into(),
                state: MadeServerState::NotReady,
            },
        ),
        // Environments and stacks
        sample("Environment", environment()),
        sample(
            "Environment",
            Environment {
                leaving: Vec::new(),
                ..environment()
            },
        ),
        sample(
            "EnvironmentDetails",
            EnvironmentDetails {
                environment: Environment {
                    leaving: Vec::new(),
                    ..environment()
                },
                stacks: vec![],
                services: vec![],
                endpoints: vec![],
                placement: vec![],
            },
        ),
        sample(
            "EnvironmentDetails",
            EnvironmentDetails {
                environment: environment(),
                stacks: vec![stack(true), stack(false)],
                services: vec![service(false), service(true)],
                endpoints: vec![endpoint(false), endpoint(true)],
                placement: vec![
                    RackPlacement {
                        rack: name("fra1"),
                        state: PlacementState::Healthy,
                        detail: String::new(),
                        until: None,
                    },
                    RackPlacement {
                        rack: name("local"),
                        state: PlacementState::Forwarding,
                        detail: "forwarding to fra1".into(),
                        until: Some(T0 + 300_001),
                    },
                ],
            },
        ),
        sample(
            "CreateEnvironment",
            CreateEnvironment {
                name: name("shop"),
                racks: vec![name("local")],
            },
        ),
        sample(
            "CreateEnvironment",
            CreateEnvironment {
                name: name("shop"),
                racks: vec![],
            },
        ),
        sample(
            "UpdateEnvironment",
            UpdateEnvironment {
                racks: vec![name("local"), name("fra1")],
                drain_grace_s: Some(60),
            },
        ),
        sample("Stack", stack(true)),
        sample("Stack", stack(false)),
        sample(
            "CreateStack",
            CreateStack {
                name: name("web"),
                formula: Some(Formula::Dockerfile),
            },
        ),
        sample(
            "CreateStack",
            CreateStack {
                name: name("web"),
                formula: None,
            },
        ),
        sample(
            "UpdateStack",
            UpdateStack {
                formula: Some(Formula::Buildpack),
                release_command: Some("./bin/migrate".into()),
                builder: Some(String::new()),
                image: Some("debian".into()),
                buildpacks: Some(vec!["https://example.com/buildpacks/node.tgz".into()]),
            },
        ),
        sample(
            "UpdateStack",
            UpdateStack {
                buildpacks: Some(vec![]),
                ..UpdateStack::default()
            },
        ),
        sample("UpdateStack", UpdateStack::default()),
        sample(
            "UpdateEndpoint",
            mesh_types::api::UpdateEndpoint {
                https_redirect: Some(true),
            },
        ),
        sample("UpdateEndpoint", mesh_types::api::UpdateEndpoint::default()),
        // Services
        sample("Service", service(false)),
        sample("Service", service(true)),
        sample(
            "CreateService",
            CreateService {
                name: name("app"),
                command: Some("./bin/web".into()),
                schedule: Some(Schedule::parse("@every 2m").unwrap()),
                port: Some(8080),
                instances: Some(3),
                size: Some(InstanceSize::Large),
                health_path: Some("/up".into()),
            },
        ),
        sample(
            "CreateService",
            CreateService {
                name: name("app"),
                command: None,
                schedule: None,
                port: None,
                instances: None,
                size: None,
                health_path: None,
            },
        ),
        sample(
            "UpdateService",
            UpdateService {
                command: Some(String::new()),
                schedule: Some("@hourly".into()),
                port: Some(8080),
                health_path: Some("/healthz".into()),
            },
        ),
        sample("UpdateService", UpdateService::default()),
        sample(
            "ScaleService",
            ScaleService {
                instances: Some(0),
                size: Some(InstanceSize::Nano),
            },
        ),
        sample("ScaleService", ScaleService::default()),
        sample("ServiceStatus", ServiceStatus::default()),
        sample("HealthCheck", HealthCheck::default()),
        sample(
            "Instance",
            Instance {
                id: "i-0123".into(),
                environment: name("shop"),
                stack: name("web"),
                service: name("app"),
                deployment: Some(Version(3)),
                server: Some(name("fra1-1")),
                rack: None,
                state: InstanceState::Crashed,
                address: Some("10.1.0.7:5000".into()),
                restarts: 2,
                exit_code: Some(-9),
                message: Some("killed".into()),
                started_at: Some(T0),
                updated_at: T0,
            },
        ),
        sample(
            "Instance",
            Instance {
                id: "i-0124".into(),
                environment: name("shop"),
                stack: name("web"),
                service: name("app"),
                deployment: None,
                server: None,
                rack: None,
                state: InstanceState::Starting,
                address: None,
                restarts: 0,
                exit_code: None,
                message: None,
                started_at: None,
                updated_at: T0,
            },
        ),
        // Config
        sample("ConfigVar", config_var(ConfigScope::default())),
        sample(
            "ConfigVar",
            config_var(ConfigScope {
                service: Some(name("app")),
                region: None,
                rack: Some(name("fra1")),
            }),
        ),
        sample(
            "ConfigVar",
            config_var(ConfigScope {
                service: None,
                region: Some(name("eu")),
                rack: None,
            }),
        ),
        sample(
            "ConfigChange",
            ConfigChange {
                set: [(key("DATABASE_URL"), "postgres://db/shop".to_string())].into(),
                unset: vec![key("OLD_KEY")],
                region: Some(name("eu")),
                rack: None,
            },
        ),
        sample(
            "ConfigChange",
            ConfigChange {
                rack: Some(name("fra1")),
                ..ConfigChange::default()
            },
        ),
        sample("ConfigChange", ConfigChange::default()),
        sample(
            "ResolvedConfig",
            ResolvedConfig {
                service: name("app"),
                rack: name("local"),
                region: name("home"),
                vars: [
                    (
                        "DATABASE_URL".to_string(),
                        ResolvedVar {
                            value: "postgres://db/shop".into(),
                            from: "stack".into(),
                        },
                    ),
                    (
                        "PORT".to_string(),
                        ResolvedVar {
                            value: "5000".into(),
                            from: "platform".into(),
                        },
                    ),
                ]
                .into(),
            },
        ),
        sample(
            "ResolvedVar",
            ResolvedVar {
                value: "4".into(),
                from: "service app @rack fra1".into(),
            },
        ),
        // Endpoints and certificates
        sample("Endpoint", endpoint(false)),
        sample("Endpoint", endpoint(true)),
        sample(
            "CreateEndpoint",
            CreateEndpoint {
                domain: domain("shop.example.com"),
            },
        ),
        sample(
            "Route",
            Route {
                path: "/api".into(),
                stack: name("web"),
                service: name("api"),
            },
        ),
        sample(
            "DnsRecord",
            DnsRecord {
                record_type: "CNAME".into(),
                name: "www.example.com".into(),
                value: "fra1.example.net".into(),
            },
        ),
        sample(
            "PublishService",
            PublishService {
                stack: name("web"),
                service: name("app"),
                path: Some("/api".into()),
            },
        ),
        sample(
            "PublishService",
            PublishService {
                stack: name("web"),
                service: name("app"),
                path: None,
            },
        ),
        sample(
            "UnpublishService",
            UnpublishService {
                stack: name("web"),
                service: name("app"),
                path: Some("/".into()),
            },
        ),
        sample(
            "UnpublishService",
            UnpublishService {
                stack: name("web"),
                service: name("app"),
                path: None,
            },
        ),
        sample(
            "Certificate",
            Certificate {
                environment: name("shop"),
                fingerprint: "3f".repeat(32),
                domains: vec!["shop.example.com".into(), "www.example.com".into()],
                source: CertificateSource::Uploaded,
                state: CertificateState::Issued,
                issuer: "CN=Example CA".into(),
                not_before: T0,
                not_after: T0 + 90 * 86_400_000,
                created_at: T0,
            },
        ),
        sample(
            "UploadCertificate",
            UploadCertificate {
                files: vec![pem, key_pem],
            },
        ),
        // Deployments
        sample("Deployment", deployment(true)),
        sample("Deployment", deployment(false)),
        sample(
            "Deployment",
            Deployment {
                description: "rollback to v2".into(),
                image: Some(built_image(false)),
                status: DeploymentStatus::Building,
                steps: vec![DeploymentStep {
                    name: "build".into(),
                    started_at: T0,
                    finished_at: None,
                    status: "running".into(),
                }],
                ..deployment(false)
            },
        ),
        sample("BuiltImage", built_image(true)),
        sample("BuiltImage", built_image(false)),
        sample("ImageConfig", image_config()),
        sample("ImageConfig", ImageConfig::default()),
        sample(
            "DeploymentStep",
            DeploymentStep {
                name: "rollout".into(),
                started_at: T0,
                finished_at: None,
                status: "running".into(),
            },
        ),
        sample(
            "DeploymentStep",
            DeploymentStep {
                name: "release".into(),
                started_at: T0,
                finished_at: Some(T0),
                status: "skipped".into(),
            },
        ),
        sample(
            "CreateDeployment",
            CreateDeployment {
                source: Some(digest('a')),
                image_archive: None,
                formula: Some(Formula::Dockerfile),
            },
        ),
        sample(
            "CreateDeployment",
            CreateDeployment {
                image_archive: Some(digest('b')),
                ..CreateDeployment::default()
            },
        ),
        sample("CreateDeployment", CreateDeployment::default()),
        sample(
            "RollbackRequest",
            RollbackRequest {
                version: Some(Version(2)),
            },
        ),
        sample("RollbackRequest", RollbackRequest::default()),
        sample(
            "SourceUploaded",
            SourceUploaded {
                digest: digest('c'),
                size: 18_734,
                files: 42,
            },
        ),
        sample(
            "SourceUploaded",
            SourceUploaded {
                digest: digest('d'),
                size: 73_400_320,
                files: 0,
            },
        ),
        // What `agent/registry.rs` answers under `/v2/`.
        sample(
            "RegistryErrors",
            json!({"errors": [{"code": "DENIED", "message": "not this rack's", "detail": null}]}),
        ),
    ]
}

#[test]
fn the_schemas_describe_what_the_types_serialize() {
    let doc = doc();
    let mut checker = Checker::new(&doc);
    let mut failures = Vec::new();
    for (schema, value) in samples() {
        let reference = json!({ "$ref": format!("#/components/schemas/{schema}") });
        failures.extend(checker.check(&reference, &value, schema));
    }
    // Every object schema is backed by samples, each of its properties is serialized by some
    // sample, and a response object requires exactly the fields the type always serializes.
    for (schema, def) in doc["components"]["schemas"].as_object().unwrap() {
        let Some(props) = def.get("properties").and_then(Value::as_object) else {
            continue;
        };
        let Some(seen) = checker.seen.get(schema) else {
            failures.push(format!(
                "{schema}: no sample of this schema; add one to samples()"
            ));
            continue;
        };
        let required: BTreeSet<&str> = def["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for prop in props.keys() {
            if !seen.iter().any(|fields| fields.contains(prop)) {
                failures.push(format!(
                    "{schema}.{prop}: documented, but no sample serializes it (renamed or removed?)"
                ));
            }
            let response = def.get("additionalProperties") == Some(&Value::Bool(false));
            if response
                && seen.iter().all(|fields| fields.contains(prop))
                && !required.contains(prop.as_str())
            {
                failures.push(format!(
                    "{schema}.{prop}: always serialized, so it belongs in `required`"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "openapi.json does not describe what the mesh-types structs serialize to:{}",
        list(&failures)
    );
}

/// Every variant of a fieldless enum; a variant added to the type stops this from compiling
/// until it is listed here (and in openapi.json).
macro_rules! variants {
    ($ty:ident { $($variant:ident),+ $(,)? }) => {{
        fn _exhaustive(x: $ty) {
            match x {
                $($ty::$variant => {})+
            }
        }
        (stringify!($ty), vec![$(serde_json::to_value($ty::$variant).unwrap()),+])
    }};
}

#[test]
fn the_enum_schemas_list_every_variant() {
    let doc = doc();
    let enums = [
        variants!(Formula {
            Buildpack,
            Dockerfile
        }),
        variants!(ServiceKind { Web, Worker, Cron }),
        variants!(InstanceSize {
            Nano,
            Micro,
            Small,
            Medium,
            Large,
            Xlarge
        }),
        variants!(InstanceState {
            Starting,
            Running,
            Healthy,
            Crashed,
            BackingOff,
            Stopped,
            OomKilled,
            Unknown
        }),
        variants!(DeploymentStatus {
            Pending,
            Building,
            Releasing,
            RollingOut,
            Succeeded,
            Failed,
            RolledBack
        }),
        variants!(EndpointKind { Alias, Custom }),
        variants!(CertificateSource { Acme, Uploaded }),
        variants!(CertificateState {
            Pending,
            Issued,
            Failed,
            Expired
        }),
        variants!(ProviderKind {
            Local,
            Ssh,
            Aws,
            Hetzner
        }),
        variants!(RackState {
            Ready,
            Upgrading,
            Resizing
        }),
        variants!(ServerState {
            Ready,
            Draining,
            Lost
        }),
        variants!(MadeServerState {
            Joining,
            Ready,
            NotReady,
            Lost,
            Unknown
        }),
        variants!(ReplacementPhase {
            Making,
            Starting,
            Forwarding,
            Removing,
            Undoing
        }),
        variants!(PlacementState {
            Healthy,
            Starting,
            Lost,
            Leaving,
            Forwarding
        }),
        variants!(Role {
            Admin,
            Developer,
            Viewer,
            Agent
        }),
        variants!(RackRuntime { Native, Kubernetes }),
        variants!(LogStream {
            Stdout,
            Stderr,
            System
        }),
        variants!(ErrorCode {
            InvalidArgument,
            Unauthenticated,
            PermissionDenied,
            NotFound,
            AlreadyExists,
            FailedPrecondition,
            PayloadTooLarge,
            ResourceExhausted,
            NotImplemented,
            Unavailable,
            Internal,
        }),
    ];
    let mut failures = Vec::new();
    for (ty, values) in &enums {
        let documented = &doc["components"]["schemas"][ty]["enum"];
        if documented != &Value::Array(values.clone()) {
            failures.push(format!(
                "{ty}: the type serializes {values:?}, the document lists {documented}"
            ));
        }
    }
    for (schema, def) in doc["components"]["schemas"].as_object().unwrap() {
        if def.get("enum").is_some() && !enums.iter().any(|(ty, _)| ty == schema) {
            failures.push(format!(
                "{schema}: an enum schema this test does not compare to a type"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "enum schemas differ from the types:{}",
        list(&failures)
    );
}

// ---------------------------------------------------------------------------------------------
// (c) The document itself

#[test]
fn the_document_is_openapi_3_1_and_every_ref_resolves() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert_eq!(
        doc["security"],
        json!([{ "bearer": [] }]),
        "bearer auth applies to every route"
    );
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"]),
        (&json!("http"), &json!("bearer"))
    );

    fn refs<'v>(v: &'v Value, at: String, out: &mut Vec<(String, &'v str)>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("$ref", Value::String(r)) => out.push((at.clone(), r.as_str())),
                        _ => refs(x, format!("{at}/{k}"), out),
                    }
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    refs(x, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, String::new(), &mut all);
    assert!(!all.is_empty());
    let mut failures: Vec<String> = all
        .iter()
        .filter(|(_, r)| !r.starts_with("#/components/") || resolve(&doc, r).is_none())
        .map(|(at, r)| format!("{at}: $ref {r} does not resolve to a component"))
        .collect();
    let used: BTreeSet<&str> = all.iter().map(|(_, r)| *r).collect();
    for kind in ["schemas", "responses", "parameters"] {
        for name in doc["components"][kind].as_object().unwrap().keys() {
            let r = format!("#/components/{kind}/{name}");
            if !used.contains(r.as_str()) {
                failures.push(format!("{r} is never used"));
            }
        }
    }
    assert!(failures.is_empty(), "broken references:{}", list(&failures));
}

/// Routes whose only path parameter names what the request stores, so it never answers 404.
const NAMES_WHAT_IT_CREATES: &[&str] = &["/v1/sources/{digest}"];

#[test]
fn every_operation_is_documented_alike() {
    let doc = doc();
    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    let error_body = json!({ "$ref": "#/components/schemas/ErrorBody" });
    let mut ids = BTreeSet::new();
    let mut failures = Vec::new();
    for (method, path, op) in operations(&doc) {
        let at = format!("{method} {path}");
        let mut fail = |what: String| failures.push(format!("{at}: {what}"));
        match op["operationId"].as_str() {
            Some(id) if !id.is_empty() => {
                if !ids.insert(id.to_string()) {
                    fail(format!("operationId {id} is used twice"));
                }
            }
            _ => fail("no operationId".into()),
        }
        if op["summary"].as_str().is_none_or(str::is_empty) {
            fail("no summary".into());
        }
        match op["tags"].as_array() {
            Some(t) if !t.is_empty() => {
                for tag in t
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|t| !tags.contains(t))
                {
                    fail(format!("tag {tag} is not declared under tags"));
                }
            }
            _ => fail("no tags".into()),
        }

        // Path parameters: exactly the `{names}` of the path, all required.
        let params: Vec<&Value> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| deref(&doc, p))
            .collect();
        let in_path: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        let declared: BTreeSet<&str> = params
            .iter()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        if in_path != declared {
            fail(format!(
                "path parameters {declared:?} differ from the path's {in_path:?}"
            ));
        }
        for p in &params {
            let required = p["required"] == true;
            if p["in"] == "path" && !required || p["in"] == "query" && required {
                fail(format!("parameter {} has the wrong `required`", p["name"]));
            }
            if !p["schema"].is_object() {
                fail(format!("parameter {} has no schema", p["name"]));
            }
        }

        let responses = op["responses"].as_object().cloned().unwrap_or_default();
        let has = |code: &str| responses.contains_key(code);
        let successes: Vec<&String> = responses.keys().filter(|c| c.starts_with('2')).collect();
        if successes.len() != 1 {
            fail(format!(
                "{} success responses, expected one",
                successes.len()
            ));
        }
        if method == "DELETE" && (!has("204") || responses["204"].get("content").is_some()) {
            fail("DELETE answers 204 without a body".into());
        }
        // The registry API (`/v2/`) takes Basic credentials too and answers the OCI
        // distribution spec's errors.
        let registry = path.starts_with("/v2/");
        if path == "/healthz" {
            if op["security"] != json!([]) {
                fail("/healthz needs no token: `security: []`".into());
            }
        } else {
            if registry {
                if op["security"] != json!([{"registryBasic": []}, {"bearer": []}]) {
                    fail("a registry route takes Basic or Bearer credentials".into());
                }
            } else if op.get("security").is_some() {
                fail("only /healthz overrides the global bearer security".into());
            }
            for code in ["401", "403"] {
                if !has(code) {
                    fail(format!("every authenticated route may answer {code}"));
                }
            }
        }
        if !in_path.is_empty() && !NAMES_WHAT_IT_CREATES.contains(&path.as_str()) && !has("404") {
            fail("a route with path parameters may answer 404".into());
        }
        if op["requestBody"]["required"] == true {
            let content = op["requestBody"]["content"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            if content.is_empty() || content.values().any(|c| !c["schema"].is_object()) {
                fail("the request body has no schema".into());
            }
            let json = content.contains_key("application/json");
            if !json && content.len() != 1 {
                fail("a raw request body has one media type".into());
            }
            for code in ["400", "413"] {
                if !has(code) {
                    fail(format!("a route reading a body may answer {code}"));
                }
            }
        }
        if !has("default") {
            fail("no default (500/503) response".into());
        }
        for (code, response) in &responses {
            let response = deref(&doc, response);
            if response["description"].as_str().is_none_or(str::is_empty) {
                fail(format!("response {code} has no description"));
            }
            let error = code == "default" || code.starts_with('4') || code.starts_with('5');
            let expected_error = if registry {
                json!({ "$ref": "#/components/schemas/RegistryErrors" })
            } else {
                error_body.clone()
            };
            if error
                && response["content"]
                    != json!({ "application/json": { "schema": expected_error } })
            {
                fail(format!("response {code} is not the JSON ErrorBody"));
            }
            if code.starts_with('2') && code != "204" {
                let content = response["content"].as_object().cloned().unwrap_or_default();
                if content.is_empty() || content.values().any(|c| !c["schema"].is_object()) {
                    fail(format!("response {code} has no content schema"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "operations documented unevenly:{}",
        list(&failures)
    );
}

// ---------------------------------------------------------------------------------------------
// A real control plane against the document

/// What a request to the live control plane carries.
enum Payload {
    None,
    Json(Value),
    /// Bytes as they are (an archive upload).
    Raw(Vec<u8>),
}

/// Calls a running control plane and checks every answer against the document.
struct Live<'a> {
    s: &'a TestServer,
    doc: &'a Value,
    called: BTreeSet<(String, String)>,
}

impl<'a> Live<'a> {
    fn new(s: &'a TestServer, doc: &'a Value) -> Self {
        Self {
            s,
            doc,
            called: BTreeSet::new(),
        }
    }

    async fn call(
        &mut self,
        method: Method,
        route: &str,
        path: &str,
        body: Option<Value>,
        expect: StatusCode,
    ) -> Value {
        let token = self.s.token.clone();
        self.call_as(Some(&token), method, route, path, body, expect)
            .await
    }

    /// A stream that never ends on its own: checks the status and media type, reads one line.
    async fn first_line_of_stream(&mut self, token: &str, route: &str) -> Value {
        use futures_util::StreamExt;
        let resp = self
            .s
            .http
            .get(format!("{}{route}", self.s.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "GET {route}");
        let media = resp.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        let op = &self.doc["paths"][route]["get"];
        assert!(
            op["responses"]["200"]["content"][&media].is_object(),
            "GET {route} answered {media}, not documented"
        );
        let mut body = resp.bytes_stream();
        let mut buf = Vec::new();
        while !buf.contains(&b'\n') {
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(20), body.next()).await;
            buf.extend_from_slice(
                &chunk
                    .expect("a line within 20 s")
                    .expect("stream open")
                    .unwrap(),
            );
        }
        self.called.insert(("GET".to_string(), route.to_string()));
        let line = &buf[..buf.iter().position(|b| *b == b'\n').unwrap()];
        serde_json::from_slice(line).unwrap()
    }

    /// Follows a deployment's log until it ends, checks it and the deployment succeeded, and
    /// returns the deployment.
    async fn follow_to_the_end(&mut self, log: &str, stack_path: &str, version: &str) -> Value {
        let path = format!("{stack_path}/deployments/{version}/log?follow=true");
        let follow = self.call(Method::GET, log, &path, None, StatusCode::OK);
        let text = tokio::time::timeout(std::time::Duration::from_secs(60), follow)
            .await
            .unwrap_or_else(|_| panic!("deployment {version} did not end within 60 s"));
        let text = text.as_str().unwrap_or_default().to_string();
        let route = log.trim_end_matches("/log");
        let path = format!("{stack_path}/deployments/{version}");
        let d = self
            .call(Method::GET, route, &path, None, StatusCode::OK)
            .await;
        assert_eq!(d["status"], "succeeded", "{d}\nlog:\n{text}");
        assert!(text.contains("-----> Deployed"), "log:\n{text}");
        let plain = format!("{stack_path}/deployments/{version}/log");
        let stored = self
            .call(Method::GET, log, &plain, None, StatusCode::OK)
            .await;
        assert_eq!(
            stored,
            Value::String(text),
            "the followed log is the stored one"
        );
        d
    }

    /// `route` is the path as the document spells it, `path` the concrete one (with a query).
    async fn call_as(
        &mut self,
        token: Option<&str>,
        method: Method,
        route: &str,
        path: &str,
        body: Option<Value>,
        expect: StatusCode,
    ) -> Value {
        let body = body.map_or(Payload::None, Payload::Json);
        self.exchange(token, method, route, path, body, expect)
            .await
    }

    /// PUTs raw bytes, as the one media type the document gives the route's request body.
    async fn put_raw(
        &mut self,
        route: &str,
        path: &str,
        bytes: Vec<u8>,
        expect: StatusCode,
    ) -> Value {
        let token = self.s.token.clone();
        let body = Payload::Raw(bytes);
        self.exchange(Some(&token), Method::PUT, route, path, body, expect)
            .await
    }

    async fn exchange(
        &mut self,
        token: Option<&str>,
        method: Method,
        route: &str,
        path: &str,
        body: Payload,
        expect: StatusCode,
    ) -> Value {
        let at = format!("{method} {path}");
        let concrete = path.split('?').next().unwrap_or_default();
        let matches = route.split('/').count() == concrete.split('/').count()
            && route
                .split('/')
                .zip(concrete.split('/'))
                .all(|(r, c)| r == c || (r.starts_with('{') && r.ends_with('}') && !c.is_empty()));
        assert!(matches, "{at} is not an instance of {route}");
        let op = self.doc["paths"][route][method.as_str().to_ascii_lowercase()].clone();
        assert!(op.is_object(), "{method} {route} is not in openapi.json");

        let mut checker = Checker::new(self.doc);
        let mut failures = Vec::new();
        // A request meant to succeed must be one the document allows.
        let meant_to_work = expect.is_success() || expect == StatusCode::NOT_IMPLEMENTED;
        if let Payload::Json(b) = &body
            && meant_to_work
        {
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            if schema.is_null() {
                failures.push("a body was sent, but the document defines none".to_string());
            } else {
                failures.extend(checker.check(schema, b, "request"));
            }
        }
        // Raw bytes go as the body's one documented media type, which is not JSON.
        let raw_media = match &body {
            Payload::Raw(_) => {
                let content = op["requestBody"]["content"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                let media: Vec<&String> = content.keys().collect();
                match media.as_slice() {
                    [one] if *one != "application/json" => Some(one.to_string()),
                    _ => panic!("{at}: raw bytes sent, but the document's body is {media:?}"),
                }
            }
            _ => None,
        };

        let mut req = self
            .s
            .http
            .request(method.clone(), format!("{}{path}", self.s.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        match body {
            Payload::None => {}
            Payload::Json(b) => req = req.json(&b),
            Payload::Raw(bytes) => {
                let media = raw_media.unwrap_or_default();
                req = req.header(reqwest::header::CONTENT_TYPE, media).body(bytes);
            }
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let media = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_string());
        let text = resp.text().await.unwrap();
        assert_eq!(status, expect, "{at}: body {text}");
        self.called
            .insert((method.as_str().to_string(), route.to_string()));

        let code = status.as_u16().to_string();
        let documented = match op["responses"].get(&code) {
            Some(r) => r,
            None if status.is_server_error() && op["responses"].get("default").is_some() => {
                &op["responses"]["default"]
            }
            None => panic!("{at}: status {code} is not documented for {method} {route}"),
        };
        let documented = deref(self.doc, documented);
        let mut value = Value::Null;
        if status == StatusCode::NO_CONTENT {
            assert!(text.is_empty(), "{at}: 204 with a body: {text}");
        } else {
            let media = media.unwrap_or_else(|| panic!("{at}: no Content-Type"));
            let content = documented["content"]
                .as_object()
                .and_then(|c| {
                    c.iter()
                        .find(|(k, _)| k.split(';').next().unwrap().trim() == media)
                })
                .map(|(_, c)| c)
                .unwrap_or_else(|| {
                    panic!(
                        "{at}: {code} answered {media}, the document says {}",
                        documented["content"]
                    )
                });
            value = if method == Method::HEAD {
                // A HEAD answer has the GET's headers and no body.
                assert!(text.is_empty(), "{at}: HEAD with a body: {text}");
                Value::Null
            } else if media == "application/json" {
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{at}: {e}: {text}"))
            } else {
                Value::String(text)
            };
            if method != Method::HEAD {
                failures.extend(checker.check(&content["schema"], &value, "response"));
            }
        }
        assert!(
            failures.is_empty(),
            "{at} ({code}) does not match openapi.json:{}\nbody: {value}",
            list(&failures)
        );
        value
    }
}

#[tokio::test]
async fn a_live_control_plane_answers_every_operation_as_documented() {
    use Method as M;
    use StatusCode as S;
    let s = TestServer::start().await;
    let doc = doc();
    let mut api = Live::new(&s, &doc);

    // System, and the document is served verbatim.
    let ok_text = api
        .call_as(None, M::GET, "/healthz", "/healthz", None, S::OK)
        .await;
    assert_eq!(ok_text, "ok\n");
    api.call(M::GET, "/metrics", "/metrics", None, S::OK).await;
    api.call(M::GET, "/v1/openapi.json", "/v1/openapi.json", None, S::OK)
        .await;
    let served = s.get("/v1/openapi.json").await.text().await.unwrap();
    assert!(
        served == DOC,
        "GET /v1/openapi.json is not openapi.json verbatim"
    );

    // Access.
    api.call(M::GET, "/v1/whoami", "/v1/whoami", None, S::OK)
        .await;
    api.call_as(
        None,
        M::GET,
        "/v1/whoami",
        "/v1/whoami",
        None,
        S::UNAUTHORIZED,
    )
    .await;
    let join = std::fs::read_to_string(s.dir.join("local-join-token")).unwrap();
    let envs = "/v1/environments";
    api.call_as(Some(join.trim()), M::GET, envs, envs, None, S::FORBIDDEN)
        .await;
    let tokens = "/v1/tokens";
    api.call(
        M::POST,
        tokens,
        tokens,
        Some(json!({"name": "ci", "role": "admin"})),
        S::CREATED,
    )
    .await;
    api.call(
        M::POST,
        tokens,
        tokens,
        Some(json!({"name": "ci", "role": "admin"})),
        S::CONFLICT,
    )
    .await;
    api.call(
        M::POST,
        tokens,
        tokens,
        Some(json!({"name": "Not Valid"})),
        S::BAD_REQUEST,
    )
    .await;
    api.call(M::GET, tokens, tokens, None, S::OK).await;
    api.call(M::GET, "/v1/events", "/v1/events?limit=5", None, S::OK)
        .await;
    api.call(
        M::GET,
        "/v1/events",
        "/v1/events?limit=many",
        None,
        S::BAD_REQUEST,
    )
    .await;
    let token = "/v1/tokens/{token}";
    api.call(M::DELETE, token, "/v1/tokens/ci", None, S::NO_CONTENT)
        .await;
    api.call(M::DELETE, token, "/v1/tokens/ci", None, S::NOT_FOUND)
        .await;
    api.call(M::DELETE, token, "/v1/tokens/admin", None, S::CONFLICT)
        .await;

    // Platform.
    let providers = "/v1/providers";
    let provider = "/v1/providers/{provider}";
    api.call(M::GET, providers, providers, None, S::OK).await;
    api.call(M::GET, provider, "/v1/providers/local", None, S::OK)
        .await;
    api.call(
        M::GET,
        provider,
        "/v1/providers/nowhere",
        None,
        S::NOT_FOUND,
    )
    .await;
    let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----\n";
    let own = json!({"name": "own", "kind": "ssh", "secrets": {"private_key": key}});
    api.call(M::POST, providers, providers, Some(own), S::CREATED)
        .await;
    let racks = "/v1/racks";
    let fra1 = json!({
        "name": "fra1", "provider": "own", "region": "eu", "size": "s-2vcpu-4gb",
        "domain": "fra1.example.net", "address": "203.0.113.10",
    });
    api.call(M::POST, racks, racks, Some(fra1), S::CREATED)
        .await;
    api.call(M::GET, racks, racks, None, S::OK).await;
    api.call(M::GET, "/v1/racks/{rack}", "/v1/racks/fra1", None, S::OK)
        .await;
    api.call(
        M::GET,
        "/v1/racks/{rack}/servers",
        "/v1/racks/fra1/servers",
        None,
        S::OK,
    )
    .await;
    // Its provider makes no servers: none listed.
    let made = api
        .call(
            M::GET,
            "/v1/racks/{rack}/made-servers",
            "/v1/racks/fra1/made-servers",
            None,
            S::OK,
        )
        .await;
    assert_eq!(made, json!([]));
    // The servers of fra1 are not made by the platform: none to replace.
    let upgrade = "/v1/racks/{rack}/upgrade";
    api.call(
        M::POST,
        upgrade,
        "/v1/racks/fra1/upgrade",
        Some(json!({})),
        S::CONFLICT,
    )
    .await;
    api.call(
        M::POST,
        upgrade,
        "/v1/racks/fra1/upgrade",
        Some(json!({"version": "99.0.0"})),
        S::BAD_REQUEST,
    )
    .await;
    let resize = "/v1/racks/{rack}/resize";
    let size = json!({"size": "s-4vcpu-8gb", "drain_grace_s": 10});
    api.call(
        M::POST,
        resize,
        "/v1/racks/fra1/resize",
        Some(size),
        S::CONFLICT,
    )
    .await;
    api.call(
        M::POST,
        resize,
        "/v1/racks/nowhere/resize",
        Some(json!({"size": "s-4vcpu-8gb"})),
        S::NOT_FOUND,
    )
    .await;
    let replacement = "/v1/racks/{rack}/replacement";
    api.call(
        M::GET,
        replacement,
        "/v1/racks/fra1/replacement",
        None,
        S::NOT_FOUND,
    )
    .await;
    api.call(M::DELETE, provider, "/v1/providers/own", None, S::CONFLICT)
        .await;
    api.call(
        M::DELETE,
        "/v1/racks/{rack}",
        "/v1/racks/fra1",
        None,
        S::NO_CONTENT,
    )
    .await;
    api.call(
        M::DELETE,
        provider,
        "/v1/providers/own",
        None,
        S::NO_CONTENT,
    )
    .await;

    // Environments.
    api.call(
        M::POST,
        envs,
        envs,
        Some(json!({"name": "shop"})),
        S::CREATED,
    )
    .await;
    api.call(
        M::POST,
        envs,
        envs,
        Some(json!({"name": "shop"})),
        S::CONFLICT,
    )
    .await;
    let huge = json!({"name": "x".repeat(2 << 20)});
    api.call(M::POST, envs, envs, Some(huge), S::PAYLOAD_TOO_LARGE)
        .await;
    api.call(M::GET, envs, envs, None, S::OK).await;
    let env = "/v1/environments/{env}";
    let racks_body = json!({"racks": ["local"]});
    api.call(
        M::PATCH,
        env,
        "/v1/environments/shop",
        Some(racks_body),
        S::OK,
    )
    .await;
    let instances = "/v1/environments/{env}/instances";
    api.call(
        M::GET,
        instances,
        "/v1/environments/shop/instances",
        None,
        S::OK,
    )
    .await;
    let logs = "/v1/environments/{env}/logs";
    let logs_path = "/v1/environments/shop/logs?since=10m&stack=web&service=app&instance=x";
    api.call(M::GET, logs, logs_path, None, S::OK).await;
    let too_far = "/v1/environments/shop/logs?since=2h";
    api.call(M::GET, logs, too_far, None, S::BAD_REQUEST).await;

    // The agent gateway, with the local rack's join token.
    let register = json!({"name": "box-1", "address": "127.0.0.1", "cpus": 2.0, "memory_mb": 2048});
    let agent = Some(join.trim());
    let reg = "/v1/agent/register";
    api.call_as(agent, M::POST, reg, reg, Some(register.clone()), S::OK)
        .await;
    let rack = "/v1/agent/rack";
    api.call_as(agent, M::GET, rack, rack, None, S::OK).await;
    api.call(M::GET, rack, rack, None, S::FORBIDDEN).await;
    api.call(M::POST, reg, reg, Some(register), S::FORBIDDEN)
        .await;
    let status = "/v1/agent/status";
    let report = json!({"server": "box-1", "instances": []});
    api.call_as(agent, M::POST, status, status, Some(report), S::OK)
        .await;
    let stranger = json!({"server": "box-9", "instances": []});
    api.call_as(agent, M::POST, status, status, Some(stranger), S::CONFLICT)
        .await;
    let ship = "/v1/agent/logs";
    api.call_as(
        agent,
        M::POST,
        ship,
        ship,
        Some(json!({"lines": []})),
        S::OK,
    )
    .await;
    api.first_line_of_stream(join.trim(), "/v1/agent/watch")
        .await;

    // Stacks.
    let stacks = "/v1/environments/{env}/stacks";
    let stack = "/v1/environments/{env}/stacks/{stack}";
    let web = "/v1/environments/shop/stacks/web";
    let body = json!({"name": "web", "formula": "dockerfile"});
    api.call(
        M::POST,
        stacks,
        "/v1/environments/shop/stacks",
        Some(body),
        S::CREATED,
    )
    .await;
    api.call(M::GET, stacks, "/v1/environments/shop/stacks", None, S::OK)
        .await;
    api.call(M::GET, stack, web, None, S::OK).await;
    api.call(
        M::PATCH,
        stack,
        web,
        Some(json!({"release_command": "./bin/migrate", "image": "busybox"})),
        S::OK,
    )
    .await;

    // Services.
    let services = format!("{stack}/services");
    let service = format!("{stack}/services/{{service}}");
    let app = format!("{web}/services/app");
    let body = json!({"name": "app", "health_path": "/up"});
    api.call(
        M::POST,
        &services,
        &format!("{web}/services"),
        Some(body),
        S::CREATED,
    )
    .await;
    let body = json!({"name": "tick", "command": "./bin/tick", "schedule": "@every 2m"});
    api.call(
        M::POST,
        &services,
        &format!("{web}/services"),
        Some(body),
        S::CREATED,
    )
    .await;
    api.call(M::GET, &services, &format!("{web}/services"), None, S::OK)
        .await;
    let env_services = "/v1/environments/{env}/services";
    api.call(
        M::GET,
        env_services,
        "/v1/environments/shop/services",
        None,
        S::OK,
    )
    .await;
    api.call(M::GET, &service, &app, None, S::OK).await;
    api.call(M::PATCH, &service, &app, Some(json!({"port": 8080})), S::OK)
        .await;
    let scale = json!({"instances": 2, "size": "medium"});
    api.call(
        M::POST,
        &format!("{service}/scale"),
        &format!("{app}/scale"),
        Some(scale),
        S::OK,
    )
    .await;

    // Config.
    let set = json!({"set": {"DATABASE_URL": "postgres://db/shop"}, "unset": []});
    api.call(
        M::PATCH,
        &format!("{stack}/config"),
        &format!("{web}/config"),
        Some(set),
        S::OK,
    )
    .await;
    api.call(
        M::GET,
        &format!("{stack}/config"),
        &format!("{web}/config"),
        None,
        S::OK,
    )
    .await;
    let set = json!({"set": {"WORKERS": "4"}, "rack": "local"});
    api.call(
        M::PATCH,
        &format!("{service}/config"),
        &format!("{app}/config"),
        Some(set),
        S::OK,
    )
    .await;
    api.call(
        M::GET,
        &format!("{service}/config"),
        &format!("{app}/config"),
        None,
        S::OK,
    )
    .await;
    let resolved = format!("{service}/config/resolved");
    api.call(
        M::GET,
        &resolved,
        &format!("{app}/config/resolved?rack=local"),
        None,
        S::OK,
    )
    .await;
    api.call(
        M::GET,
        &resolved,
        &format!("{app}/config/resolved?rack=nope"),
        None,
        S::BAD_REQUEST,
    )
    .await;

    // Deployments, on a stack of its own whose one service runs no instance, so a rollout has
    // nothing to wait for: upload a source, deploy it, follow its log to the end, roll back.
    let deployments = format!("{stack}/deployments");
    let deployment = format!("{stack}/deployments/{{version}}");
    let log = format!("{deployment}/log");
    let rollback = format!("{stack}/rollback");
    api.call(
        M::GET,
        &deployments,
        &format!("{web}/deployments"),
        None,
        S::OK,
    )
    .await;
    api.call(
        M::GET,
        &deployment,
        &format!("{web}/deployments/v1"),
        None,
        S::NOT_FOUND,
    )
    .await;
    api.call(
        M::GET,
        &deployment,
        &format!("{web}/deployments/latest"),
        None,
        S::BAD_REQUEST,
    )
    .await;
    api.call(
        M::GET,
        &log,
        &format!("{web}/deployments/v1/log"),
        None,
        S::NOT_FOUND,
    )
    .await;
    let shop_stacks = "/v1/environments/shop/stacks";
    let site = "/v1/environments/shop/stacks/site";
    api.call(
        M::POST,
        stacks,
        shop_stacks,
        Some(json!({"name": "site"})),
        S::CREATED,
    )
    .await;
    let buildpacks =
        json!({"buildpacks": ["https://github.com/heroku/heroku-buildpack-nginx.git#v27"]});
    api.call(M::PATCH, stack, site, Some(buildpacks), S::OK)
        .await;
    let relative = json!({"buildpacks": ["buildpacks/nginx"]});
    api.call(M::PATCH, stack, site, Some(relative), S::BAD_REQUEST)
        .await;
    let idle = json!({"name": "jobs", "instances": 0});
    api.call(
        M::POST,
        &services,
        &format!("{site}/services"),
        Some(idle),
        S::CREATED,
    )
    .await;

    let sources = "/v1/sources/{digest}";
    let tree = TempDir::new().unwrap();
    std::fs::write(tree.path().join("index.html"), "<h1>shop</h1>\n").unwrap();
    let packed = mesh_build::pack(tree.path()).unwrap();
    let source = format!("sha256:{}", packed.digest);
    let upload = format!("/v1/sources/{source}");
    let stored = api
        .put_raw(sources, &upload, packed.bytes.clone(), S::OK)
        .await;
    assert_eq!(
        (&stored["digest"], &stored["files"]),
        (&json!(source), &json!(1))
    );
    let again = format!("{upload}?kind=source");
    api.put_raw(sources, &again, packed.bytes.clone(), S::OK)
        .await;
    let zeros = format!("sha256:{}", "0".repeat(64));
    let wrong = format!("/v1/sources/{zeros}");
    api.put_raw(sources, &wrong, packed.bytes.clone(), S::BAD_REQUEST)
        .await;
    let unnamed = "/v1/sources/latest";
    api.put_raw(sources, unnamed, packed.bytes, S::BAD_REQUEST)
        .await;
    // Not a tar.gz: refused as a source, kept as an image archive (checked when deployed).
    let junk = b"not an archive".to_vec();
    let junk_path = format!("/v1/sources/{}", mesh_build::digest_of(&junk));
    api.put_raw(sources, &junk_path, junk.clone(), S::BAD_REQUEST)
        .await;
    let as_zip = format!("{junk_path}?kind=zip");
    api.put_raw(sources, &as_zip, junk.clone(), S::BAD_REQUEST)
        .await;
    let as_image = format!("{junk_path}?kind=image");
    let stored = api.put_raw(sources, &as_image, junk, S::OK).await;
    assert_eq!(stored["files"], 0);

    let site_deployments = format!("{site}/deployments");
    let neither = json!({});
    api.call(
        M::POST,
        &deployments,
        &site_deployments,
        Some(neither),
        S::BAD_REQUEST,
    )
    .await;
    let not_uploaded = json!({"source": zeros});
    api.call(
        M::POST,
        &deployments,
        &site_deployments,
        Some(not_uploaded),
        S::CONFLICT,
    )
    .await;
    let build = json!({"source": source, "formula": "buildpack"});
    let v0 = api
        .call(
            M::POST,
            &deployments,
            &site_deployments,
            Some(build),
            S::CREATED,
        )
        .await;
    assert_eq!(
        (&v0["version"], &v0["status"]),
        (&json!("v0"), &json!("pending"))
    );
    let v0 = api.follow_to_the_end(&log, site, "v0").await;
    assert!(v0["image"]["layers"].is_array(), "{v0}");
    api.call(M::GET, &deployments, &site_deployments, None, S::OK)
        .await;

    // Agents fetch the layers of what was built.
    let blob = "/v1/agent/blobs/{digest}";
    let layer = format!(
        "/v1/agent/blobs/{}",
        v0["image"]["layers"][0].as_str().unwrap()
    );
    let bytes = api.call_as(agent, M::GET, blob, &layer, None, S::OK).await;
    assert!(!bytes.as_str().unwrap().is_empty());
    api.call(M::GET, blob, &layer, None, S::FORBIDDEN).await;
    // A source archive is never served to agents, nor a blob no image of the rack names.
    let archive = format!("/v1/agent/blobs/{source}");
    api.call_as(agent, M::GET, blob, &archive, None, S::FORBIDDEN)
        .await;
    let missing = format!("/v1/agent/blobs/{zeros}");
    api.call_as(agent, M::GET, blob, &missing, None, S::FORBIDDEN)
        .await;
    let malformed = "/v1/agent/blobs/latest";
    api.call_as(agent, M::GET, blob, malformed, None, S::BAD_REQUEST)
        .await;
    // Servers made from a cloud image download the control plane's mesh with their token.
    let mesh = "/v1/agent/mesh";
    let exe = api.call_as(agent, M::GET, mesh, mesh, None, S::OK).await;
    assert!(!exe.as_str().unwrap().is_empty());
    api.call(M::GET, mesh, mesh, None, S::FORBIDDEN).await;
    // Only the first server of a cluster a provider made hands its kubeconfig over: a native
    // rack's agent is refused, anyone else forbidden.
    let kc = "/v1/agent/kubeconfig";
    let offered = json!("apiVersion: v1\nkind: Config\n");
    api.call_as(agent, M::PUT, kc, kc, Some(offered.clone()), S::CONFLICT)
        .await;
    api.call(M::PUT, kc, kc, Some(offered), S::FORBIDDEN).await;

    // Rollbacks: none before v0 succeeded; to v0 by name, then to the one before the current.
    let site_rollback = format!("{site}/rollback");
    let previous = json!({});
    api.call(
        M::POST,
        &rollback,
        &site_rollback,
        Some(previous.clone()),
        S::CONFLICT,
    )
    .await;
    let nowhere = json!({"version": "v9"});
    api.call(
        M::POST,
        &rollback,
        &site_rollback,
        Some(nowhere),
        S::NOT_FOUND,
    )
    .await;
    let to_v0 = json!({"version": "v0"});
    let v1 = api
        .call(M::POST, &rollback, &site_rollback, Some(to_v0), S::CREATED)
        .await;
    assert_eq!(
        (&v1["version"], &v1["description"], &v1["image"]),
        (&json!("v1"), &json!("rollback to v0"), &v0["image"])
    );
    api.follow_to_the_end(&log, site, "v1").await;
    let v2 = api
        .call(
            M::POST,
            &rollback,
            &site_rollback,
            Some(previous),
            S::CREATED,
        )
        .await;
    assert_eq!(v2["description"], "rollback to v0");
    api.follow_to_the_end(&log, site, "v2").await;

    // Endpoints.
    let endpoints = "/v1/environments/{env}/endpoints";
    let endpoint = "/v1/environments/{env}/endpoints/{domain}";
    let shop_endpoints = "/v1/environments/shop/endpoints";
    let alias = "/v1/environments/shop/endpoints/shop.localhost";
    let custom = "/v1/environments/shop/endpoints/shop.example.com";
    api.call(M::GET, endpoints, shop_endpoints, None, S::OK)
        .await;
    api.call(M::GET, endpoint, alias, None, S::OK).await;
    let body = json!({"domain": "shop.example.com"});
    api.call(M::POST, endpoints, shop_endpoints, Some(body), S::CREATED)
        .await;
    let route = json!({"stack": "web", "service": "app", "path": "/"});
    let publish = format!("{endpoint}/publish");
    api.call(
        M::POST,
        &publish,
        &format!("{custom}/publish"),
        Some(route.clone()),
        S::OK,
    )
    .await;
    api.call(M::GET, env, "/v1/environments/shop", None, S::OK)
        .await;
    let unpublish = format!("{endpoint}/unpublish");
    api.call(
        M::POST,
        &unpublish,
        &format!("{custom}/unpublish"),
        Some(route),
        S::OK,
    )
    .await;
    let redirect = json!({"https_redirect": true});
    let changed = api
        .call(M::PATCH, endpoint, custom, Some(redirect), S::OK)
        .await;
    assert_eq!(changed["https_redirect"], true);
    api.call(M::PATCH, endpoint, custom, Some(json!({})), S::BAD_REQUEST)
        .await;
    api.call(M::DELETE, endpoint, alias, None, S::CONFLICT)
        .await;
    api.call(M::DELETE, endpoint, custom, None, S::NO_CONTENT)
        .await;

    // Certificates.
    let certificates = "/v1/environments/{env}/certificates";
    let shop_certificates = "/v1/environments/shop/certificates";
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["shop.example.com".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let upload = json!({"files": [cert.pem(), key.serialize_pem()]});
    let created = api
        .call(
            M::POST,
            certificates,
            shop_certificates,
            Some(upload),
            S::CREATED,
        )
        .await;
    api.call(M::GET, certificates, shop_certificates, None, S::OK)
        .await;
    let prefix = &created["fingerprint"].as_str().unwrap()[..12];
    let one = "/v1/environments/{env}/certificates/{fingerprint}";
    let path = format!("{shop_certificates}/{prefix}");
    api.call(M::DELETE, one, &path, None, S::NO_CONTENT).await;

    // One-off work: refused here for want of a connected agent, an instance or a waiting task.
    let runs = "/v1/environments/{env}/stacks/{stack}/runs";
    let run = json!({"command": "echo hi"});
    let web_runs = format!("{web}/runs");
    api.call(M::POST, runs, &web_runs, Some(run), S::SERVICE_UNAVAILABLE)
        .await;
    let exec = "/v1/environments/{env}/instances/{instance}/exec";
    let body = json!({"command": ["ls"]});
    let path = "/v1/environments/shop/instances/nope/exec";
    api.call(M::POST, exec, path, Some(body), S::NOT_FOUND)
        .await;
    let result = "/v1/agent/tasks/{task}/result";
    let done = json!({"exit_code": 0, "stdout": "", "stderr": "", "error": null});
    let path = "/v1/agent/tasks/nope/result";
    api.call_as(
        Some(join.trim()),
        M::POST,
        result,
        path,
        Some(done),
        S::NOT_FOUND,
    )
    .await;

    // The registry API: an imported image (no built-in base) pulled with the join token.
    let image_stack = "/v1/environments/shop/stacks/image";
    api.call(
        M::POST,
        stacks,
        shop_stacks,
        Some(json!({"name": "image"})),
        S::CREATED,
    )
    .await;
    let idle = json!({"name": "jobs", "instances": 0});
    let image_services = format!("{image_stack}/services");
    api.call(M::POST, &services, &image_services, Some(idle), S::CREATED)
        .await;
    let archive = super::registry::image_archive(tree.path(), &[("a.txt", "a\n")], &["/a"]);
    let archive_path = format!("/v1/sources/{}?kind=image", mesh_build::digest_of(&archive));
    api.put_raw(sources, &archive_path, archive.clone(), S::OK)
        .await;
    let import = json!({"image_archive": mesh_build::digest_of(&archive)});
    let image_deployments = format!("{image_stack}/deployments");
    api.call(
        M::POST,
        &deployments,
        &image_deployments,
        Some(import),
        S::CREATED,
    )
    .await;
    let imported = api.follow_to_the_end(&log, image_stack, "v0").await;
    let agent_token = Some(join.trim());
    let version_check = "/v2/";
    api.call_as(agent_token, M::GET, version_check, "/v2/", None, S::OK)
        .await;
    api.call_as(None, M::GET, version_check, "/v2/", None, S::UNAUTHORIZED)
        .await;
    api.call(M::GET, version_check, "/v2/", None, S::FORBIDDEN)
        .await;
    let manifest = "/v2/{env}/{stack}/manifests/{reference}";
    for m in [M::GET, M::HEAD] {
        let ok = "/v2/shop/image/manifests/v0";
        api.call_as(agent_token, m.clone(), manifest, ok, None, S::OK)
            .await;
        let latest = "/v2/shop/image/manifests/latest";
        api.call_as(agent_token, m.clone(), manifest, latest, None, S::NOT_FOUND)
            .await;
        // A buildpack build: on the built-in busybox base, served with it as a layer.
        let on_a_base = "/v2/shop/site/manifests/v0";
        api.call_as(agent_token, m.clone(), manifest, on_a_base, None, S::OK)
            .await;
        api.call_as(None, m.clone(), manifest, ok, None, S::UNAUTHORIZED)
            .await;
        api.call(m.clone(), manifest, ok, None, S::FORBIDDEN).await;
    }
    let registry_blob = "/v2/{env}/{stack}/blobs/{digest}";
    let image_layer = format!(
        "/v2/shop/image/blobs/{}",
        imported["image"]["layers"][0].as_str().unwrap()
    );
    for m in [M::GET, M::HEAD] {
        api.call_as(
            agent_token,
            m.clone(),
            registry_blob,
            &image_layer,
            None,
            S::OK,
        )
        .await;
        let source_blob = format!("/v2/shop/image/blobs/{source}");
        api.call_as(
            agent_token,
            m.clone(),
            registry_blob,
            &source_blob,
            None,
            S::NOT_FOUND,
        )
        .await;
        let bad = "/v2/shop/image/blobs/latest";
        api.call_as(
            agent_token,
            m.clone(),
            registry_blob,
            bad,
            None,
            S::BAD_REQUEST,
        )
        .await;
        api.call_as(
            None,
            m.clone(),
            registry_blob,
            &image_layer,
            None,
            S::UNAUTHORIZED,
        )
        .await;
        api.call(m.clone(), registry_blob, &image_layer, None, S::FORBIDDEN)
            .await;
    }
    api.call(M::DELETE, stack, image_stack, None, S::NO_CONTENT)
        .await;

    // Deletes, deepest first.
    api.call(
        M::DELETE,
        &service,
        &format!("{web}/services/tick"),
        None,
        S::NO_CONTENT,
    )
    .await;
    api.call(M::DELETE, stack, web, None, S::NO_CONTENT).await;
    api.call(M::DELETE, stack, site, None, S::NO_CONTENT).await;
    api.call(M::DELETE, env, "/v1/environments/shop", None, S::NO_CONTENT)
        .await;
    api.call(M::GET, env, "/v1/environments/shop", None, S::NOT_FOUND)
        .await;

    let missed: Vec<String> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .filter(|op| !api.called.contains(op))
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    assert!(
        missed.is_empty(),
        "operations this test does not call yet:{}",
        list(&missed)
    );
}
