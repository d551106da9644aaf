//! Accept loops and per-connection serving (HTTP/1.1 and HTTP/2 on one port, TLS or not).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio_rustls::TlsAcceptor;

use super::spread::{Handoff, Load, Spread};
use crate::forwarding;
use crate::h1::{self, FIRST_REQUEST_GRACE, Served};
use crate::options::RouterOptions;
use crate::proxy::{self, ConnInfo, ProxyState};
use crate::tracker::{self, Phase, Token};

pub(crate) type Builder = auto::Builder<TokioExecutor>;

/// The HTTP server settings shared by every connection.
pub(crate) fn builder(options: &RouterOptions) -> Builder {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_buf_size(options.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    b
}

/// What one worker's connections share.
pub(crate) struct Ctx {
    pub state: Arc<ProxyState>,
    pub builder: Arc<Builder>,
    pub tls: Option<TlsAcceptor>,
    /// This worker's index.
    pub index: usize,
    pub spread: Arc<Spread>,
}

/// Accepts until the router starts draining, then drops the listener. Each connection goes to
/// the least busy worker (see `spread`).
pub(crate) async fn accept_loop(
    listener: TcpListener,
    ctx: Arc<Ctx>,
    https: bool,
    _accepting: mpsc::Sender<()>,
) {
    let mut phase = ctx.state.tracker.phase();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = tracker::reached(&mut phase, Phase::Draining) => return,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let Ok(local) = tcp.local_addr() else {
            continue;
        };
        let token = ctx.state.tracker.token();
        let load = ctx.spread.pick(ctx.index);
        if load.worker() == ctx.index {
            spawn_conn(&ctx, tcp, peer, local, https, token, load);
            continue;
        }
        let Ok(tcp) = tcp.into_std() else {
            continue;
        };
        let handoff = Handoff {
            tcp,
            peer,
            local,
            https,
            token,
            load,
        };
        // The other worker is gone (it could not start): serve here.
        if let Err(h) = ctx.spread.send(handoff) {
            serve_handoff(&ctx, h);
        }
    }
}

/// Serves the connections other workers hand to this one, until the router closes.
pub(crate) async fn inbox_loop(ctx: Arc<Ctx>, mut inbox: mpsc::UnboundedReceiver<Handoff>) {
    let mut phase = ctx.state.tracker.phase();
    loop {
        tokio::select! {
            h = inbox.recv() => match h {
                Some(h) => serve_handoff(&ctx, h),
                None => return,
            },
            () = tracker::reached(&mut phase, Phase::Closing) => return,
        }
    }
}

fn serve_handoff(ctx: &Arc<Ctx>, h: Handoff) {
    match TcpStream::from_std(h.tcp) {
        Ok(tcp) => spawn_conn(ctx, tcp, h.peer, h.local, h.https, h.token, h.load),
        Err(e) => tracing::warn!(error = %e, "handed-off connection unusable"),
    }
}

/// Serves one accepted connection in a task of this worker.
fn spawn_conn(
    ctx: &Arc<Ctx>,
    tcp: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    https: bool,
    token: Token,
    load: Load,
) {
    // The configured proxies; the platform's routers that forward here now (the table's
    // trusted peers) are checked per request, since they change while connections stay open.
    let trusted = forwarding::is_trusted(&ctx.state.options.trusted_proxies, peer.ip());
    let mut conn = ConnInfo {
        peer,
        local,
        https,
        trusted,
        sni: None,
    };
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let _load = load;
        let state = ctx.state.clone();
        match (https, &ctx.tls) {
            (false, _) => {
                // HTTP/1 unless the client opens with the HTTP/2 preface (prior knowledge).
                if let Some(Served::Http2(io)) = serve_h1(tcp, conn.clone(), &state, true).await {
                    serve(io, conn, state, &ctx.builder, token).await;
                }
            }
            (true, Some(acceptor)) => {
                let timeout = state.options.tls_handshake_timeout;
                match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let tls = stream.get_ref().1;
                        conn.sni = tls
                            .server_name()
                            .and_then(forwarding::sni_name)
                            .map(Arc::from);
                        if tls.alpn_protocol() == Some(b"h2") {
                            serve(stream, conn, state, &ctx.builder, token).await;
                            return;
                        }
                        if let Some(Served::Http2(io)) =
                            serve_h1(stream, conn.clone(), &state, true).await
                        {
                            serve(io, conn, state, &ctx.builder, token).await;
                        }
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "tls handshake failed"),
                    Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
                }
            }
            (true, None) => tracing::warn!(%peer, "https connection without a tls acceptor"),
        }
    });
}

/// Serves a connection with the HTTP/1 engine until it ends, or the shutdown deadline passes
/// (`None`).
async fn serve_h1<IO>(
    io: IO,
    conn: ConnInfo,
    state: &Arc<ProxyState>,
    sniff_h2: bool,
) -> Option<Served<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut phase = state.tracker.phase();
    tokio::select! {
        served = h1::serve(io, conn, state.clone(), sniff_h2) => Some(served),
        () = tracker::reached(&mut phase, Phase::Closing) => None,
    }
}

/// Set once the connection has passed one request to the proxy.
#[derive(Default)]
struct FirstRequest {
    seen: AtomicBool,
    notify: Notify,
}

/// Serves one connection with hyper (HTTP/2 clients) until it closes, draining it gracefully
/// when the router shuts down.
async fn serve<IO>(io: IO, conn: ConnInfo, state: Arc<ProxyState>, builder: &Builder, _token: Token)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut phase = state.tracker.phase();
    let first = Arc::new(FirstRequest::default());
    let svc = {
        let first = first.clone();
        service_fn(move |req| {
            if !first.seen.load(Ordering::Relaxed) {
                first.seen.store(true, Ordering::Relaxed);
                first.notify.notify_one();
            }
            proxy::handle(state.clone(), conn.clone(), req)
        })
    };
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        () = tracker::reached(&mut phase, Phase::Draining) => {}
    }
    // A connection accepted just before draining gets to send its request: shutting down
    // while hyper still sniffs the protocol would drop it unanswered.
    if !first.seen.load(Ordering::Relaxed) {
        tokio::select! {
            _ = connection.as_mut() => return,
            () = first.notify.notified() => {}
            () = tokio::time::sleep(FIRST_REQUEST_GRACE) => {}
            () = tracker::reached(&mut phase, Phase::Closing) => return,
        }
    }
    connection.as_mut().graceful_shutdown();
    tokio::select! {
        _ = connection.as_mut() => {}
        () = tracker::reached(&mut phase, Phase::Closing) => {}
    }
}
