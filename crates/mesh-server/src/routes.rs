//! Every route of the API, in one table. The OpenAPI document is checked against [`ROUTES`].

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, Request};
use axum::middleware;
use axum::routing::{MethodFilter, on};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};

use crate::agent::{binary, cluster, gateway, registry};
use crate::api::{
    access, certificates, config, deployments, endpoints, environments, platform, replacement,
    runs, services, sources, stacks, system,
};
use crate::app::AppState;
use crate::{auth, metrics};

/// Largest request body the API reads.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest batch of log lines an agent may ship at once.
pub const MAX_LOG_BATCH_BYTES: usize = 16 * 1024 * 1024;

const ENV: &str = "/v1/environments/{env}";
const STACK: &str = "/v1/environments/{env}/stacks/{stack}";
const REPO_MANIFEST: &str = "/v2/{env}/{stack}/manifests/{reference}";
const REPO_BLOB: &str = "/v2/{env}/{stack}/blobs/{digest}";
const SERVICE: &str = "/v1/environments/{env}/stacks/{stack}/services/{service}";

/// (method, path) of every route, `/healthz` included.
pub static ROUTES: std::sync::LazyLock<Vec<(Method, String)>> =
    std::sync::LazyLock::new(|| build(None).1);

struct Table {
    router: Router<AppState>,
    seen: Vec<(Method, String)>,
}

impl Table {
    fn add<H, T>(mut self, method: Method, path: impl Into<String>, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let path = path.into();
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        self.router = self.router.route(&path, on(filter, handler));
        self.seen.push((method, path));
        self
    }

    /// A route that reads bodies larger than [`MAX_BODY_BYTES`], up to `limit`.
    fn add_sized<H, T>(mut self, method: Method, path: &str, handler: H, limit: usize) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        let route = on(filter, handler).layer(DefaultBodyLimit::max(limit));
        self.router = self.router.route(path, route);
        self.seen.push((method, path.to_string()));
        self
    }
}

fn v1(table: Table) -> Table {
    use Method as M;
    table
        .add(M::GET, "/metrics", system::metrics)
        .add(M::GET, "/v1/openapi.json", system::openapi)
        .add(M::GET, "/v1/whoami", access::whoami)
        .add(M::GET, "/v1/tokens", access::list_tokens)
        .add(M::POST, "/v1/tokens", access::create_token)
        .add(M::DELETE, "/v1/tokens/{token}", access::delete_token)
        .add(M::GET, "/v1/events", access::list_events)
        .add(M::GET, "/v1/providers", platform::list_providers)
        .add(M::POST, "/v1/providers", platform::create_provider)
        .add(M::GET, "/v1/providers/{provider}", platform::get_provider)
        .add(
            M::DELETE,
            "/v1/providers/{provider}",
            platform::delete_provider,
        )
        .add(M::GET, "/v1/racks", platform::list_racks)
        .add(M::POST, "/v1/racks", platform::create_rack)
        .add(M::GET, "/v1/racks/{rack}", platform::get_rack)
        .add(M::DELETE, "/v1/racks/{rack}", platform::delete_rack)
        .add(
            M::POST,
            "/v1/racks/{rack}/upgrade",
            replacement::upgrade_rack,
        )
        .add(M::POST, "/v1/racks/{rack}/resize", replacement::resize_rack)
        .add(
            M::GET,
            "/v1/racks/{rack}/replacement",
            replacement::get_replacement,
        )
        .add(M::GET, "/v1/racks/{rack}/servers", platform::list_servers)
        .add(
            M::GET,
            "/v1/racks/{rack}/made-servers",
            platform::list_made_servers,
        )
        .add(M::GET, "/v1/environments", environments::list)
        .add(M::POST, "/v1/environments", environments::create)
        .add(M::GET, ENV, environments::get)
        .add(M::PATCH, ENV, environments::update)
        .add(M::DELETE, ENV, environments::delete)
        .add(M::GET, format!("{ENV}/logs"), environments::logs)
        .add(M::GET, format!("{ENV}/instances"), environments::instances)
        .add(M::GET, format!("{ENV}/stacks"), stacks::list)
        .add(M::POST, format!("{ENV}/stacks"), stacks::create)
        .add(M::GET, STACK, stacks::get)
        .add(M::PATCH, STACK, stacks::update)
        .add(M::DELETE, STACK, stacks::delete)
        .add(M::GET, format!("{STACK}/config"), config::list_stack)
        .add(M::PATCH, format!("{STACK}/config"), config::change_stack)
        .add(M::GET, format!("{STACK}/deployments"), deployments::list)
        .add(M::POST, format!("{STACK}/deployments"), deployments::create)
        .add(
            M::GET,
            format!("{STACK}/deployments/{{version}}"),
            deployments::get,
        )
        .add(
            M::GET,
            format!("{STACK}/deployments/{{version}}/log"),
            deployments::log,
        )
        .add(M::POST, format!("{STACK}/rollback"), deployments::rollback)
        .add(M::PUT, "/v1/sources/{digest}", sources::put)
        .add(M::GET, format!("{STACK}/services"), services::list)
        .add(M::POST, format!("{STACK}/services"), services::create)
        .add(M::GET, SERVICE, services::get)
        .add(M::PATCH, SERVICE, services::update)
        .add(M::DELETE, SERVICE, services::delete)
        .add(M::POST, format!("{SERVICE}/scale"), services::scale)
        .add(M::GET, format!("{SERVICE}/config"), config::list_service)
        .add(
            M::PATCH,
            format!("{SERVICE}/config"),
            config::change_service,
        )
        .add(
            M::GET,
            format!("{SERVICE}/config/resolved"),
            config::resolved,
        )
        .add(M::GET, format!("{ENV}/services"), services::list_env)
        .add(M::GET, format!("{ENV}/endpoints"), endpoints::list)
        .add(M::POST, format!("{ENV}/endpoints"), endpoints::create)
        .add(
            M::GET,
            format!("{ENV}/endpoints/{{domain}}"),
            endpoints::get,
        )
        .add(
            M::DELETE,
            format!("{ENV}/endpoints/{{domain}}"),
            endpoints::delete,
        )
        .add(
            M::PATCH,
            format!("{ENV}/endpoints/{{domain}}"),
            endpoints::update,
        )
        .add(
            M::POST,
            format!("{ENV}/endpoints/{{domain}}/publish"),
            endpoints::publish,
        )
        .add(
            M::POST,
            format!("{ENV}/endpoints/{{domain}}/unpublish"),
            endpoints::unpublish,
        )
        .add(M::GET, format!("{ENV}/certificates"), certificates::list)
        .add(M::POST, format!("{ENV}/certificates"), certificates::upload)
        .add(
            M::DELETE,
            format!("{ENV}/certificates/{{fingerprint}}"),
            certificates::delete,
        )
        .add(M::GET, "/v1/agent/rack", gateway::rack)
        .add(M::POST, "/v1/agent/register", gateway::register)
        .add(M::GET, "/v1/agent/watch", gateway::watch)
        .add(M::GET, "/v1/agent/blobs/{digest}", gateway::blob)
        .add(M::GET, "/v1/agent/mesh", binary::mesh)
        .add(M::PUT, "/v1/agent/kubeconfig", cluster::kubeconfig)
        .add(M::POST, "/v1/agent/status", gateway::status)
        .add_sized(
            M::POST,
            "/v1/agent/logs",
            gateway::logs,
            MAX_LOG_BATCH_BYTES,
        )
        .add(
            M::POST,
            "/v1/agent/tasks/{task}/result",
            gateway::task_result,
        )
        // The registry API, pull side (see `agent/registry.rs`).
        .add(M::GET, "/v2/", registry::base)
        .add(M::GET, REPO_MANIFEST, registry::manifest)
        .add(M::HEAD, REPO_MANIFEST, registry::manifest)
        .add(M::GET, REPO_BLOB, registry::blob)
        .add(M::HEAD, REPO_BLOB, registry::blob)
        .add(M::POST, format!("{STACK}/runs"), runs::run)
        .add(
            M::POST,
            format!("{ENV}/instances/{{instance}}/exec"),
            runs::exec,
        )
}

fn build(state: Option<AppState>) -> (Router<AppState>, Vec<(Method, String)>) {
    let api = v1(Table {
        router: Router::new(),
        seen: Vec::new(),
    });
    let mut seen = vec![(Method::GET, "/healthz".to_string())];
    seen.extend(api.seen);
    let mut router = api
        .router
        .fallback(system::no_route)
        .method_not_allowed_fallback(system::no_method);
    if let Some(state) = state {
        router = router
            .layer(middleware::from_fn_with_state(
                state.clone(),
                notify_changes,
            ))
            .layer(middleware::from_fn_with_state(
                state.clone(),
                auth::authenticate,
            ))
            .layer(middleware::from_fn(registry::oci_errors))
            .route_layer(middleware::from_fn_with_state(state, metrics::record));
    }
    let router = Router::new()
        .route("/healthz", axum::routing::get(system::healthz))
        .merge(router);
    (router, seen)
}

/// After a successful change made through the API, agents' watch streams recompute.
async fn notify_changes(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let mutating = req.method() != Method::GET && !req.uri().path().starts_with("/v1/agent/");
    let resp = next.run(req).await;
    if mutating && resp.status().is_success() {
        state.notify_change();
    }
    resp
}

/// The whole API, ready to serve.
pub fn app_router(state: AppState) -> Router {
    let (router, _) = build(Some(state.clone()));
    router
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(RequestIds::default()))
        .with_state(state)
}

/// Request ids: a random per-process prefix and a counter, cheap and unique enough to grep for.
#[derive(Clone)]
struct RequestIds {
    prefix: u32,
    next: std::sync::Arc<AtomicU64>,
}

impl Default for RequestIds {
    fn default() -> Self {
        let mut b = [0u8; 4];
        let _ = getrandom::fill(&mut b);
        Self {
            prefix: u32::from_le_bytes(b),
            next: Default::default(),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{:08x}{:012x}", self.prefix, n))
            .ok()
            .map(RequestId::new)
    }
}
