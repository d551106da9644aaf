//! The edge router's limits and timeouts, as `mesh up`, `mesh agent` and `mesh router` take
//! them (the router's own defaults, which mainstream proxies also ship, unless told otherwise).

use std::time::Duration;

use clap::Args;
use mesh_router::{AccessLog, RouterError, RouterOptions};
use mesh_types::Cidr;

#[derive(Debug, Clone, Args)]
pub struct RouterLimits {
    /// Largest request body the edge router passes to an instance, in MiB (larger: 413)
    #[arg(long, value_name = "MIB", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub router_max_body_size: u64,
    /// Seconds a client gets to send a request head (idle keep-alive connections close after
    /// as long)
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub router_header_timeout: u64,
    /// Seconds an instance gets to start answering a request (after that: 504)
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub router_response_timeout: u64,
    /// Seconds a client may stall mid-body or stop reading an answer before it is cut off
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub router_client_timeout: u64,
    /// Proxies in front of the router (CIDR ranges or addresses, e.g. 10.0.0.0/8 2001:db8::/32)
    /// whose X-Forwarded-For the router appends to and whose X-Forwarded-Proto/-Host/-Port,
    /// X-Real-IP and Forwarded it keeps; from anyone else they are replaced by what the router
    /// saw [default: none]
    #[arg(long, value_name = "CIDR", num_args = 1.., value_delimiter = ',')]
    pub router_trusted_proxies: Vec<Cidr>,
    /// Where the edge router writes one line per request: `off`, `stderr`, or a file appended
    /// to (created with mode 0640). On stderr the lines are INFO lines of target
    /// mesh_router::access, so a MESH_LOG that hides those (such as `warn`) turns them off
    #[arg(long, value_name = "off|stderr|FILE", default_value = "stderr")]
    pub access_log: AccessLog,
    /// Edge router worker threads, each with its own connections and instance pool [default:
    /// 0, half the cores and at least one: the router shares the server with the instances]
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub router_workers: usize,
}

/// The router's worker threads for `--router-workers` on a server with `cores` cores: as asked,
/// or half the cores and at least one. Measured through `mesh up` to a deployed app on 2 cores
/// (`benches/platform-proxy`, docs/benchmarks.md): one worker gives the router a p99 below
/// haproxy's and nginx's (3.3-3.8 ms against 4.1-9.4), two workers 5.1-5.7 ms, at about the
/// same req/s, because the instances and the router compete for the same cores.
pub fn router_workers(flag: usize, cores: usize) -> usize {
    if flag > 0 { flag } else { (cores / 2).max(1) }
}

impl RouterLimits {
    pub fn options(&self) -> RouterOptions {
        RouterOptions {
            max_request_body_bytes: self.router_max_body_size.saturating_mul(1024 * 1024),
            header_read_timeout: Duration::from_secs(self.router_header_timeout),
            response_head_timeout: Duration::from_secs(self.router_response_timeout),
            client_timeout: Duration::from_secs(self.router_client_timeout),
            trusted_proxies: self.router_trusted_proxies.clone(),
            workers: router_workers(
                self.router_workers,
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            ),
            access_log: access_log(
                &self.access_log,
                tracing::enabled!(target: "mesh_router::access", tracing::Level::INFO),
            ),
            ..RouterOptions::default()
        }
    }
}

/// The access log the router gets for `--access-log`: stderr lines were `tracing` INFO events of
/// target `mesh_router::access` before they had a writer of their own, and a `MESH_LOG` that
/// hides those (`shown` false) still turns them off. A file is written whatever `MESH_LOG` says.
pub fn access_log(flag: &AccessLog, shown: bool) -> AccessLog {
    match flag {
        AccessLog::Stderr if !shown => AccessLog::Off,
        other => other.clone(),
    }
}

/// What to do about a router that did not start because of its settings rather than its
/// addresses (`None`: an address problem, the caller's hint applies). Such a router is not
/// skipped with a warning even when its addresses were defaults: the setting was asked for.
pub fn settings_hint(e: &RouterError) -> Option<&'static str> {
    match e {
        RouterError::AccessLog { .. } => {
            Some("pass --access-log a file in an existing, writable directory, or stderr, or off")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn mesh_log_hides_stderr_lines_only() {
        let file = AccessLog::File(PathBuf::from("/var/log/access.log"));
        assert_eq!(access_log(&AccessLog::Stderr, true), AccessLog::Stderr);
        assert_eq!(access_log(&AccessLog::Stderr, false), AccessLog::Off);
        assert_eq!(access_log(&file, false), file);
        assert_eq!(access_log(&file, true), file);
        assert_eq!(access_log(&AccessLog::Off, true), AccessLog::Off);
    }

    #[test]
    fn an_access_log_that_cannot_be_opened_has_its_own_hint() {
        let e = RouterError::AccessLog {
            path: PathBuf::from("/nope/access.log"),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(settings_hint(&e).is_some_and(|h| h.contains("--access-log")));
        let e = RouterError::Bind {
            addr: ([127, 0, 0, 1], 80).into(),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        assert_eq!(settings_hint(&e), None);
    }

    #[test]
    fn the_router_takes_half_the_cores_unless_told() {
        assert_eq!(router_workers(0, 1), 1, "at least one");
        assert_eq!(
            router_workers(0, 2),
            1,
            "half the cores: instances share them"
        );
        assert_eq!(router_workers(0, 8), 4);
        assert_eq!(router_workers(3, 8), 3, "as asked");
    }
}
