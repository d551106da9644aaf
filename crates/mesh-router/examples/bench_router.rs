//! A standalone router for benchmarks (scripts/bench-router): serves a JSON `RouterConfig`.
//!
//! ```text
//! bench_router --http 127.0.0.1:8080 [--https 127.0.0.1:8443] --config routes.json \
//!     [--cert-domain localhost --cert chain.pem --key key.pem]
//! ```
//! The optional certificate is added to the config and made the default (for clients without
//! SNI). Stops gracefully on SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use mesh_router::{CertificateConfig, Router, RouterConfig, RouterOptions};

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    http: SocketAddr,
    https: Option<SocketAddr>,
    config: String,
    cert: Option<(String, String, String)>,
}

fn parse_args() -> Result<Args, Error> {
    let mut http = None;
    let mut https = None;
    let mut config = None;
    let (mut domain, mut cert, mut key) = (None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--http" => http = Some(value()?.parse()?),
            "--https" => https = Some(value()?.parse()?),
            "--config" => config = Some(value()?),
            "--cert-domain" => domain = Some(value()?),
            "--cert" => cert = Some(value()?),
            "--key" => key = Some(value()?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(Args {
        http: http.ok_or("--http is required")?,
        https,
        config: config.ok_or("--config is required")?,
        cert: match (domain, cert, key) {
            (Some(d), Some(c), Some(k)) => Some((d, c, k)),
            (None, None, None) => None,
            _ => return Err("--cert-domain, --cert and --key go together".into()),
        },
    })
}

fn main() -> Result<(), Error> {
    // Every binary using rustls installs its provider first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = parse_args()?;
    let mut config: RouterConfig = serde_json::from_str(&std::fs::read_to_string(&args.config)?)?;
    if let Some((domain, cert, key)) = &args.cert {
        config.certificates.push(CertificateConfig {
            domains: vec![domain.clone()],
            chain_pem: std::fs::read_to_string(cert)?,
            key_pem: std::fs::read_to_string(key)?,
        });
        config.default_certificate = Some(domain.clone());
    }
    // The router serves on its own worker threads (BENCH_WORKERS, default one per core); this
    // runtime only waits for a signal.
    let options = RouterOptions {
        workers: std::env::var("BENCH_WORKERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        ..RouterOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let router = Router::bind_with(args.http, args.https, options).await?;
        let report = router.update(config)?;
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
        for e in &report.certificate_errors {
            eprintln!("certificate: {e}");
        }
        eprintln!(
            "bench_router listening on {} {:?}",
            router.http_addr(),
            router.https_addr()
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        let report = router.shutdown(Duration::from_secs(5)).await;
        eprintln!("bench_router stopped: {report:?}");
        Ok(())
    })
}
