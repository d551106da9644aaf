//! One access line as text: the line the `tracing` fmt subscriber of `mesh` printed for the
//! access event before the log had a writer of its own, so what reads the log needs no change.
//!
//! ```text
//! 2025-06-01T12:34:56.123456Z  INFO mesh_router::access: request request_id="…" method="GET" host=shop.test path=/cart endpoint="shop.test" service="shop/app/web" instance="web-1" status=200 bytes=612 attempts=1 duration_ms=0.84 error="…"
//! ```
//!
//! Fields in that order; strings quoted and escaped as Rust's `Debug` does (as `tracing`
//! records `&str`), `host` and `path` bare; `error` only when there was one. The timestamp is
//! UTC with microseconds; there are no colours, whatever stderr is.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// What one line says about one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub host: &'a str,
    /// Without the query.
    pub path: &'a str,
    pub endpoint: &'a str,
    pub service: &'a str,
    pub instance: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub attempts: u32,
    pub duration_ms: f64,
    pub error: Option<&'a str>,
}

/// Appends the line for `record`, written at `at`, newline included.
pub(crate) fn write_line(out: &mut String, at: SystemTime, record: &Record<'_>) {
    write_timestamp(out, at);
    let r = record;
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "  INFO mesh_router::access: request request_id={:?} method={:?} host={} path={} \
         endpoint={:?} service={:?} instance={:?} status={} bytes={} attempts={} duration_ms={:?}",
        r.request_id,
        r.method,
        r.host,
        r.path,
        r.endpoint,
        r.service,
        r.instance,
        r.status,
        r.bytes,
        r.attempts,
        r.duration_ms,
    );
    if let Some(error) = r.error {
        let _ = write!(out, " error={error:?}");
    }
    out.push('\n');
}

/// RFC 3339 in UTC with microseconds (`2025-06-01T12:34:56.123456Z`), as `tracing-subscriber`
/// prints its timestamps; a clock before 1970 prints the epoch.
fn write_timestamp(out: &mut String, at: SystemTime) {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        since.subsec_micros(),
    );
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01, so leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    fn timestamp(t: SystemTime) -> String {
        let mut s = String::new();
        write_timestamp(&mut s, t);
        s
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        assert_eq!(timestamp(at(0, 0)), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            timestamp(at(1_700_000_000, 123_456_789)),
            "2023-11-14T22:13:20.123456Z"
        );
        // A leap day and the last second of a leap year.
        assert_eq!(timestamp(at(951_782_400, 0)), "2000-02-29T00:00:00.000000Z");
        assert_eq!(
            timestamp(at(1_735_689_599, 999_999_999)),
            "2024-12-31T23:59:59.999999Z"
        );
        assert_eq!(
            timestamp(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000000Z"
        );
    }

    const RECORD: Record<'static> = Record {
        request_id: "req-1",
        method: "GET",
        host: "shop.test",
        path: "/cart",
        endpoint: "shop.test",
        service: "shop/app/web",
        instance: "web-1",
        status: 502,
        bytes: 612,
        attempts: 2,
        duration_ms: 0.84,
        error: Some("instance web-1: said \"no\"\n"),
    };

    #[test]
    fn a_line_names_every_field_in_order() {
        let mut line = String::new();
        write_line(&mut line, at(1_700_000_000, 0), &RECORD);
        assert_eq!(
            line,
            "2023-11-14T22:13:20.000000Z  INFO mesh_router::access: request request_id=\"req-1\" \
             method=\"GET\" host=shop.test path=/cart endpoint=\"shop.test\" \
             service=\"shop/app/web\" instance=\"web-1\" status=502 bytes=612 attempts=2 \
             duration_ms=0.84 error=\"instance web-1: said \\\"no\\\"\\n\"\n"
        );
        let mut line = String::new();
        write_line(
            &mut line,
            at(0, 0),
            &Record {
                error: None,
                duration_ms: 3.0,
                ..RECORD
            },
        );
        assert!(
            line.ends_with("attempts=2 duration_ms=3.0\n"),
            "no error field without an error: {line}"
        );
    }

    /// Collects what the fmt subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The line is the one `mesh`'s subscriber printed for the event the router used to emit
    /// (same macro call, same field types), timestamp aside.
    #[test]
    fn the_line_is_what_the_tracing_subscriber_printed() {
        for record in [
            RECORD,
            Record {
                error: None,
                ..RECORD
            },
        ] {
            let captured = Captured::default();
            let sink = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || sink.clone())
                .with_ansi(false)
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                let r = &record;
                tracing::info!(
                    target: "mesh_router::access",
                    request_id = r.request_id,
                    method = r.method,
                    host = %r.host,
                    path = %r.path,
                    endpoint = r.endpoint,
                    service = r.service,
                    instance = r.instance,
                    status = r.status,
                    bytes = r.bytes,
                    attempts = r.attempts,
                    duration_ms = r.duration_ms,
                    error = r.error,
                    "request"
                );
            });
            let printed = String::from_utf8_lossy(&captured.0.lock().expect("lock")).into_owned();
            let mut ours = String::new();
            write_line(&mut ours, SystemTime::now(), &record);
            let after_timestamp = |s: &str| s.split_once('Z').map(|(_, rest)| rest.to_owned());
            assert_eq!(
                after_timestamp(&ours),
                after_timestamp(&printed),
                "{printed}"
            );
            assert!(after_timestamp(&ours).is_some());
        }
    }
}
