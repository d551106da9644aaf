//! The request path: route, pick an instance, forward, stream the answer back.
//!
//! Every request reads the table once (arc-swap), so a concurrent update never splits a
//! request across two table versions. Bodies stream both ways without buffering.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;

use crate::balance::InFlightRegistry;
use crate::metrics::Metrics;
use crate::options::RouterOptions;
use crate::table::{self, RouteTable};
use crate::tracker::Tracker;

mod access;
mod body;
pub(crate) mod headers;
mod idle;
pub(crate) mod pages;
mod pool;
mod tunnel;

#[cfg(test)]
mod tests;

pub(crate) use access::Access;
use body::BodySlot;
pub(crate) use body::ResponseBody;
pub(crate) use idle::IdleList;
pub(crate) use pages::Failure;
use pool::Pool;
pub(crate) use pool::{SendError, connect_tcp};

const ACME_PREFIX: &str = "/.well-known/acme-challenge/";

/// Logged and counted for requests whose client left before the answer (nginx's 499).
const CLIENT_CLOSED: u16 = 499;

/// What every worker shares: the table, counters, metrics and settings.
pub(crate) struct Shared {
    pub table: ArcSwap<RouteTable>,
    pub registry: InFlightRegistry,
    pub metrics: Metrics,
    pub options: RouterOptions,
    /// Port for HTTP->HTTPS redirects (`None`: 443, left out of the URL).
    pub https_port: Option<u16>,
    pub tracker: Tracker,
}

impl Shared {
    pub(crate) fn new(options: RouterOptions, https_port: Option<u16>, tracker: Tracker) -> Self {
        let https_port = options
            .https_redirect_port
            .or(https_port)
            .filter(|p| *p != 443);
        Self {
            table: ArcSwap::from_pointee(RouteTable::default()),
            registry: InFlightRegistry::default(),
            metrics: Metrics::with_shards(options.worker_count()),
            options,
            https_port,
            tracker,
        }
    }
}

/// What every request handler of one worker thread uses: the shared state and the worker's
/// own pool of instance connections (never touched by another thread).
pub(crate) struct ProxyState {
    pub shared: Arc<Shared>,
    /// Instance connections of HTTP/2 clients' requests (hyper).
    pub pool: Arc<Pool>,
    /// Instance connections of the HTTP/1 engine.
    pub h1_pool: Arc<crate::h1::Pool>,
}

impl std::ops::Deref for ProxyState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl ProxyState {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let options = &shared.options;
        let pool = Arc::new(Pool::new(
            options.connect_timeout,
            options.pool_idle_timeout,
            options.pool_max_idle_per_instance,
        ));
        let h1_pool = Arc::new(crate::h1::Pool::new(
            options.connect_timeout,
            options.pool_idle_timeout,
            options.pool_max_idle_per_instance,
        ));
        Self {
            shared,
            pool,
            h1_pool,
        }
    }

    /// Closes idle instance connections past their idle timeout, forever (run it in a task of
    /// the worker's runtime).
    pub(crate) async fn sweep_pool(self: Arc<Self>) {
        let period = (self.shared.options.pool_idle_timeout / 2).max(Duration::from_secs(1));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.pool.sweep();
            self.h1_pool.sweep();
        }
    }
}

/// The client side of one connection.
#[derive(Clone, Debug)]
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub https: bool,
    /// The peer is one of the trusted proxies (its forwarding headers count).
    pub trusted: bool,
    /// The name the TLS connection was made for (`forwarding::sni_name`), if the client sent one.
    pub sni: Option<Arc<str>>,
}

/// Where a request goes, by the table in force.
pub(crate) enum Decision {
    /// The router answers itself: an ACME challenge or an HTTPS redirect.
    Answer(Response<ResponseBody>),
    NoRoute,
    Route(Arc<table::Route>),
}

/// Routes a request for a normalized `host`: plain-HTTP ACME challenges and HTTPS redirects
/// first, then the longest matching prefix.
pub(crate) fn decide(
    state: &Shared,
    https: bool,
    host: &str,
    pq: &PathAndQuery,
    request_id: &HeaderValue,
) -> Decision {
    let table = state.table.load();
    if !https {
        if let Some(token) = pq.path().strip_prefix(ACME_PREFIX)
            && let Some(answer) = table.acme_answer(token)
        {
            return Decision::Answer(pages::acme_answer(answer));
        }
        if table.redirects_to_https(host) {
            let location = match state.https_port {
                Some(port) => format!("https://{host}:{port}{pq}"),
                None => format!("https://{host}{pq}"),
            };
            return Decision::Answer(pages::redirect(&location, request_id));
        }
    }
    match table.route(host, pq.path()) {
        Some(route) => Decision::Route(route.clone()),
        None => Decision::NoRoute,
    }
}

/// Answers one request; never fails (errors become pages).
pub(crate) async fn handle(
    state: Arc<ProxyState>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let request_id = headers::request_id(req.headers());
    let mut access = Access::new(
        request_id.clone(),
        Some(req.method().clone()),
        req.uri().path_and_query().cloned(),
    );
    let html = pages::wants_html(req.headers());
    let unmatched = |mut access: Access| {
        if access.route.is_none() {
            access.unmatched = Some(state.metrics.unmatched());
        }
        access
    };
    let fail = |failure: Failure, access: Access| {
        let mut access = unmatched(access);
        access.status = failure.status().as_u16();
        Ok(pages::error_page(failure, &request_id, html).map(|b| b.with_access(access)))
    };

    // HTTP/2 carries the host in `:authority`; HTTP/1 in `Host` (absolute-form URIs win).
    let raw_host = match req.uri().authority() {
        Some(a) => a.as_str().to_owned(),
        None => match req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
        {
            Some(h) => h.to_owned(),
            None => return fail(Failure::BadRequest, access),
        },
    };
    let Some(host) = table::normalize_host(&raw_host) else {
        return fail(Failure::BadRequest, access);
    };
    access.host.clone_from(&host);
    if crate::forwarding::misdirected(conn.https, conn.sni.as_deref(), &host) {
        return fail(Failure::Misdirected, access);
    }

    let pq = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    // A configured proxy, or a router of the platform forwarding here now (per request: that
    // changes while a connection stays open).
    let trusted = conn.trusted || state.table.load().trusts_peer(conn.peer.ip(), &host);
    // Over HTTPS to this router, or to a trusted peer that says so.
    let https = conn.https
        || (trusted
            && req
                .headers()
                .get(&headers::X_FORWARDED_PROTO)
                .is_some_and(|v| crate::forwarding::forwarded_https(v.as_bytes())));
    let route = match decide(&state, https, &host, &pq, &request_id) {
        Decision::Route(route) => route,
        Decision::NoRoute => return fail(Failure::NoRoute, access),
        Decision::Answer(resp) => {
            let mut access = unmatched(access);
            access.status = resp.status().as_u16();
            return Ok(resp.map(|b| b.with_access(access)));
        }
    };
    access.route = Some(route.clone());
    let upstream = &route.upstream;

    let limit = state.options.max_request_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return fail(Failure::BodyTooLarge, access);
    }

    let mut req = req;
    let version = req.version();
    let upgrade = version == Version::HTTP_11 && headers::is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let method = parts.method;
    let mut out_headers = parts.headers;
    headers::strip_hop_by_hop(&mut out_headers, upgrade);
    headers::set_forwarding(
        &mut out_headers,
        &headers::Forwarded {
            client_ip: conn.peer.ip(),
            https: conn.https,
            port: conn.local.port(),
            host: &raw_host,
            trusted,
        },
        &request_id,
    );
    if let Ok(v) = HeaderValue::try_from(raw_host.as_str()) {
        out_headers.insert(header::HOST, v);
    }

    let slot = BodySlot::new(body, limit);
    let mut tried: Vec<usize> = Vec::new();
    let mut out_headers = Some(out_headers);
    loop {
        let Some(idx) = upstream.pick(&tried) else {
            let failure = if tried.is_empty() {
                Failure::NoHealthyInstance
            } else {
                Failure::BadGateway
            };
            return fail(failure, access);
        };
        tried.push(idx);
        access.attempts += 1;
        let instance = &upstream.instances[idx];
        access.instance = Some(idx);
        let guard = instance.in_flight.start();

        let last_chance = access.attempts >= state.options.max_attempts
            || tried.len() >= upstream.instances.len();
        let hdrs = if last_chance {
            out_headers.take().unwrap_or_default()
        } else {
            out_headers.clone().unwrap_or_default()
        };
        let mut out = Request::new(slot.attempt());
        *out.method_mut() = method.clone();
        // Origin form: the instance gets the path and query; `Host` names the endpoint.
        *out.uri_mut() = Uri::from(pq.clone());
        *out.version_mut() = Version::HTTP_11;
        *out.headers_mut() = hdrs;

        let sent = tokio::time::timeout(
            state.options.response_head_timeout,
            state.pool.send(instance.addr, out),
        )
        .await;
        let resp = match sent {
            Err(_elapsed) => {
                access.error = Some("no response head before the timeout".to_owned());
                access.in_flight = Some(guard);
                return fail(Failure::Timeout, access);
            }
            Ok(Err(e)) => {
                if slot.exceeded() {
                    return fail(Failure::BodyTooLarge, access);
                }
                let retry = e.is_connect() && !last_chance && slot.untouched();
                access.error = Some(format!("instance {}: {}", instance.id, error_chain(&e)));
                if retry {
                    tracing::debug!(instance = %instance.id, error = %error_chain(&e), "connect failed, retrying");
                    continue;
                }
                return fail(Failure::BadGateway, access);
            }
            Ok(Ok(sent)) => sent,
        };
        let (mut resp, conn) = resp;
        access.error = None;
        access.status = resp.status().as_u16();
        access.in_flight = Some(guard);

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(client_upgrade) = client_upgrade
        {
            let instance_upgrade = hyper::upgrade::on(&mut resp);
            let (mut head, _empty) = resp.into_parts();
            headers::strip_hop_by_hop(&mut head.headers, true);
            tunnel::spawn(client_upgrade, instance_upgrade, access, &state.tracker);
            return Ok(Response::from_parts(head, ResponseBody::empty(None)));
        }

        let (mut head, body) = resp.into_parts();
        headers::strip_hop_by_hop(&mut head.headers, false);
        head.version = version;
        head.extensions = http::Extensions::new();
        if !head.headers.contains_key(&headers::X_REQUEST_ID) {
            head.headers
                .insert(headers::X_REQUEST_ID.clone(), request_id.clone());
        }
        return Ok(Response::from_parts(
            head,
            ResponseBody::stream(body, access, conn),
        ));
    }
}

/// `e: cause: cause` for logs.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
