//! Listener and proxy settings fixed when the router starts.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use mesh_types::Cidr;

/// Where the router writes its access log, one line per request (format: `crate::access_log`).
/// Lines are written by a thread of their own, never by the threads serving requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AccessLog {
    /// Nothing written and nothing formatted. The library's default: an embedder asks for a
    /// log (`mesh` asks for `Stderr` unless told otherwise).
    #[default]
    Off,
    /// The process's standard error.
    Stderr,
    /// Appended to this file, created with mode 0640 if missing.
    File(PathBuf),
}

/// An `--access-log` value that names nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("empty access log setting: give `off`, `stderr` or a file path")]
pub struct AccessLogParseError;

impl FromStr for AccessLog {
    type Err = AccessLogParseError;

    /// `off`, `stderr`, or anything else as a file path.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" => Err(AccessLogParseError),
            "off" => Ok(AccessLog::Off),
            "stderr" => Ok(AccessLog::Stderr),
            path => Ok(AccessLog::File(PathBuf::from(path))),
        }
    }
}

/// Timeouts and limits, with defaults close to what mainstream proxies ship.
#[derive(Clone, Debug)]
pub struct RouterOptions {
    /// TCP connect to an instance; a failure is retried on another instance.
    pub connect_timeout: Duration,
    /// From sending the request to the instance's response head; past it: 504.
    pub response_head_timeout: Duration,
    /// A client must send a complete request head within this (HTTP/1; also closes idle
    /// keep-alive connections after this long).
    pub header_read_timeout: Duration,
    /// An HTTP/1 client that sends no byte of a request body, or takes no byte of a response,
    /// for this long is disconnected (its instance connection closed too). Tunnels (WebSocket)
    /// are exempt: they may idle.
    pub client_timeout: Duration,
    /// A TLS client must finish its handshake within this.
    pub tls_handshake_timeout: Duration,
    /// Request bodies larger than this get 413.
    pub max_request_body_bytes: u64,
    /// Request head size limit (HTTP/1 buffer, HTTP/2 header list); past it: 431.
    pub max_header_bytes: usize,
    /// Idle keep-alive connections to instances are closed after this.
    pub pool_idle_timeout: Duration,
    /// Idle keep-alive connections kept per instance.
    pub pool_max_idle_per_instance: usize,
    /// Instances tried for one request when connecting fails (nothing sent yet).
    pub max_attempts: u32,
    /// Port put in HTTP->HTTPS redirects; `None`: the HTTPS listener's port (omitted if 443).
    pub https_redirect_port: Option<u16>,
    /// Worker threads, each running its own single-threaded runtime, accept loop and pool of
    /// instance connections; 0: one per core.
    pub workers: usize,
    /// Peers (load balancers in front of the router) whose forwarding headers are kept:
    /// `X-Forwarded-For` is appended to, `X-Forwarded-Proto`/`-Host`/`-Port`, `X-Real-Ip`
    /// and `Forwarded` pass. Anyone else's are replaced by what the router saw. Empty: no one.
    pub trusted_proxies: Vec<Cidr>,
    /// Where one line per request goes; `Off` by default.
    pub access_log: AccessLog,
}

impl RouterOptions {
    /// The number of worker threads to start: `workers`, or one per core.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            return self.workers;
        }
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    }
}

impl Default for RouterOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            response_head_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(30),
            client_timeout: Duration::from_secs(60),
            tls_handshake_timeout: Duration::from_secs(10),
            max_request_body_bytes: 100 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_instance: 128,
            max_attempts: 3,
            https_redirect_port: None,
            workers: 0,
            trusted_proxies: Vec::new(),
            access_log: AccessLog::Off,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_log_settings_parse() {
        assert_eq!("off".parse(), Ok(AccessLog::Off));
        assert_eq!("stderr".parse(), Ok(AccessLog::Stderr));
        assert_eq!(
            "/var/log/mesh/access.log".parse(),
            Ok(AccessLog::File(PathBuf::from("/var/log/mesh/access.log")))
        );
        assert_eq!(
            "access.log".parse(),
            Ok(AccessLog::File(PathBuf::from("access.log")))
        );
        assert_eq!("".parse::<AccessLog>(), Err(AccessLogParseError));
        assert_eq!(RouterOptions::default().access_log, AccessLog::Off);
    }
}
