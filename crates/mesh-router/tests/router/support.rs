//! Backends, clients and config builders shared by the router tests.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_router::{
    InstanceConfig, RouteConfig, Router, RouterConfig, RouterOptions, ServiceKey, UpstreamConfig,
};
use tokio::net::TcpListener;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = BoxBody<Bytes, BoxError>;

/// Every test waits at most this long for anything.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // What a binary does at the start of main.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Awaits `fut`, failing the test after `PATIENCE`.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

pub fn empty() -> Body {
    Empty::new().map_err(|e| match e {}).boxed()
}

/// A request or response body fed chunk by chunk through a channel.
pub struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// A streaming body and the sender that feeds it; dropping the sender ends the body.
pub fn channel_body() -> (tokio::sync::mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    (tx, ChannelBody(rx).boxed())
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that counts its requests.
pub struct Backend {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

impl Backend {
    pub async fn start<F, Fut>(handler: F) -> Backend
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let handler = Arc::new(handler);
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let handler = handler.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let fut = handler(req);
                        async move { Ok::<_, std::convert::Infallible>(fut.await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Backend { addr, hits }
    }

    /// Answers 200 with `x-backend: name` and a dump of what it received (see `Echo`).
    pub async fn echo(name: &'static str) -> Backend {
        Backend::start(move |req| echo_response(name, req)).await
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn echo_response(name: &str, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut out = format!(
        "backend={name}\nmethod={}\npath={}\nversion={:?}\n",
        parts.method,
        parts.uri.path_and_query().map_or("/", |pq| pq.as_str()),
        parts.version
    );
    for (k, v) in &parts.headers {
        out.push_str(&format!("h:{}={}\n", k, v.to_str().unwrap_or("?")));
    }
    out.push_str(&format!("body={}\n", body.len()));
    Response::builder()
        .header("x-backend", name)
        .body(full(out))
        .expect("response")
}

/// What an echo backend saw.
#[derive(Debug)]
pub struct Echo {
    pub backend: String,
    pub path: String,
    pub version: String,
    pub headers: HashMap<String, Vec<String>>,
    pub body_len: usize,
}

impl Echo {
    pub fn parse(text: &str) -> Echo {
        let mut e = Echo {
            backend: String::new(),
            path: String::new(),
            version: String::new(),
            headers: HashMap::new(),
            body_len: 0,
        };
        for line in text.lines() {
            if let Some(h) = line.strip_prefix("h:") {
                let (k, v) = h.split_once('=').expect("header line");
                e.headers
                    .entry(k.to_owned())
                    .or_default()
                    .push(v.to_owned());
            } else if let Some((k, v)) = line.split_once('=') {
                match k {
                    "backend" => e.backend = v.to_owned(),
                    "path" => e.path = v.to_owned(),
                    "version" => e.version = v.to_owned(),
                    "body" => e.body_len = v.parse().expect("length"),
                    _ => {}
                }
            }
        }
        e
    }

    /// The single value of a header (panics if absent or repeated).
    pub fn header(&self, name: &str) -> &str {
        match self.headers.get(name).map(Vec::as_slice) {
            Some([one]) => one,
            other => panic!("header {name}: {other:?} in {self:?}"),
        }
    }
}

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn echo(&self) -> Echo {
        assert_eq!(self.status, StatusCode::OK, "{self:?}");
        Echo::parse(&self.body)
    }

    pub fn backend(&self) -> &str {
        self.headers
            .get("x-backend")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

pub fn client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a request to the router with the given `Host`.
pub async fn send(
    client: &Client<HttpConnector, Body>,
    router: SocketAddr,
    host: &str,
    req: Request<Body>,
) -> Result<Reply, BoxError> {
    let (mut parts, body) = req.into_parts();
    let pq = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    parts.uri = format!("http://{router}{pq}").parse()?;
    parts
        .headers
        .insert(http::header::HOST, host.parse().expect("host value"));
    let resp = client.request(Request::from_parts(parts, body)).await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

pub async fn get(router: SocketAddr, host: &str, path: &str) -> Reply {
    let req = Request::get(path).body(empty()).expect("request");
    within("a response", send(&client(), router, host, req))
        .await
        .expect("request through the router")
}

pub fn svc(name: &str) -> ServiceKey {
    ServiceKey::new("shop", "app", name)
}

pub fn inst(id: &str, addr: SocketAddr) -> InstanceConfig {
    InstanceConfig {
        id: id.to_owned(),
        addr,
        healthy: true,
        draining: false,
    }
}

/// Builds a `RouterConfig` route by route.
#[derive(Default)]
pub struct Cfg(pub RouterConfig);

impl Cfg {
    pub fn route(mut self, host: &str, path: &str, service: &str) -> Self {
        self.0.routes.push(RouteConfig {
            host: host.to_owned(),
            path: path.to_owned(),
            service: svc(service),
        });
        self
    }

    pub fn upstream(mut self, service: &str, instances: Vec<InstanceConfig>) -> Self {
        self.0.upstreams.push(UpstreamConfig {
            service: svc(service),
            instances,
        });
        self
    }

    pub fn build(self) -> RouterConfig {
        self.0
    }
}

/// A router on 127.0.0.1 (HTTP only) serving `config`.
pub async fn router_with(options: RouterOptions, config: RouterConfig) -> Router {
    init();
    let router = Router::bind_with("127.0.0.1:0".parse().expect("addr"), None, options)
        .await
        .expect("bind router");
    let report = router.update(config).expect("valid config");
    assert!(report.certificate_errors.is_empty());
    router
}

pub async fn router(config: RouterConfig) -> Router {
    router_with(RouterOptions::default(), config).await
}

/// A loopback address where nothing listens (bound, then released).
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    addr
}

/// Polls `cond` every 10 ms until it holds (bounded by `PATIENCE`).
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// A router sending host `shop.test` to one instance (`web-1`) at `addr`.
pub async fn shop_router(addr: SocketAddr, options: RouterOptions) -> Router {
    router_with(
        options,
        Cfg::default()
            .route("shop.test", "/", "web")
            .upstream("web", vec![inst("web-1", addr)])
            .build(),
    )
    .await
}

/// A router in front of one echo backend (`web-1`), for host `shop.test`.
pub async fn echo_router() -> (Backend, Router) {
    let web = Backend::echo("web").await;
    let r = shop_router(web.addr, RouterOptions::default()).await;
    (web, r)
}

/// A listener on 127.0.0.1 that hands every connection to `serve`, each in its own task: for
/// instances that misbehave below HTTP.
pub async fn raw_backend<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            tokio::spawn(serve(tcp));
        }
    });
    addr
}
