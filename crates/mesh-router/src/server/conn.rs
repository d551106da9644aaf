//! Accept loops and per-connection serving (HTTP/1.1 and HTTP/2 on one port, TLS or not).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_rustls::TlsAcceptor;

use crate::options::RouterOptions;
use crate::proxy::{self, ConnInfo, ProxyState};
use crate::tracker::{self, Phase, Token};

/// How long a connection accepted just before shutdown may take to send its first request
/// before it is closed without one.
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

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

/// Accepts until the router starts draining, then drops the listener.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    state: Arc<ProxyState>,
    builder: Arc<Builder>,
    tls: Option<TlsAcceptor>,
    _accepting: mpsc::Sender<()>,
) {
    let mut phase = state.tracker.phase();
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
        let token = state.tracker.token();
        let conn = ConnInfo {
            peer,
            local,
            https: tls.is_some(),
        };
        let state = state.clone();
        let builder = builder.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve(tcp, conn, state, &builder, token).await,
                Some(acceptor) => {
                    let timeout = state.options.tls_handshake_timeout;
                    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => serve(stream, conn, state, &builder, token).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "tls handshake failed"),
                        Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Set once the connection has passed one request to the proxy.
#[derive(Default)]
struct FirstRequest {
    seen: AtomicBool,
    notify: Notify,
}

/// Serves one connection until it closes, draining it gracefully when the router shuts down.
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
            proxy::handle(state.clone(), conn, req)
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
