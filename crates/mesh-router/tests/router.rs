//! Router integration tests: real sockets on 127.0.0.1 (port 0), tiny hyper backends.

#[path = "router/support.rs"]
mod support;

#[path = "router/access_log.rs"]
mod access_log;
#[path = "router/balance.rs"]
mod balance;
#[path = "router/drain.rs"]
mod drain;
#[path = "router/edge.rs"]
mod edge;
#[path = "router/failures.rs"]
mod failures;
#[path = "router/handover.rs"]
mod handover;
#[path = "router/headers.rs"]
mod headers;
#[path = "router/metrics.rs"]
mod metrics;
#[path = "router/routing.rs"]
mod routing;
#[path = "router/streaming.rs"]
mod streaming;
#[path = "router/tls.rs"]
mod tls;
#[path = "router/websocket.rs"]
mod websocket;
#[path = "router/wire.rs"]
mod wire;
