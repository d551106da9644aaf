use mesh_types::Name;
use mesh_types::agent::LogStream;

use super::*;

fn line(env: &str, instance: &str, offset: u64, at: UnixMs, text: &str) -> LogLine {
    LogLine {
        at,
        environment: Name::parse(env).unwrap(),
        stack: Name::parse("app").unwrap(),
        service: Name::parse(if instance.starts_with('w') {
            "web"
        } else {
            "worker"
        })
        .unwrap(),
        instance: instance.into(),
        stream: LogStream::Stdout,
        text: text.into(),
        offset,
    }
}

#[test]
fn resent_lines_are_dropped_once_kept() {
    let logs = LogStore::default();
    let batch = vec![
        line("shop", "w1", 2, 10, "a"),
        line("shop", "w1", 4, 11, "b"),
        line("shop", "w1", 6, 12, "c"),
    ];
    assert_eq!(
        logs.ingest(batch.clone(), 20),
        LogAck {
            accepted: 3,
            duplicates: 0
        }
    );
    // An agent restarted and resent from before its last acknowledged line.
    let mut again = batch;
    again.push(line("shop", "w1", 8, 13, "d"));
    assert_eq!(
        logs.ingest(again, 20),
        LogAck {
            accepted: 1,
            duplicates: 3
        }
    );
    let texts: Vec<_> = logs
        .query("shop", 0, &LogFilter::default())
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert_eq!(texts, ["a", "b", "c", "d"]);
}

#[test]
fn each_stream_of_an_instance_counts_its_own_offsets() {
    // stdout and stderr are separate files: stderr's first line has a smaller offset than
    // stdout's last, and must not be taken for a resend.
    let logs = LogStore::default();
    let mut err = line("shop", "w1", 4, 12, "oops");
    err.stream = LogStream::Stderr;
    let mut sys = line("shop", "w1", 3, 13, "started");
    sys.stream = LogStream::System;
    let batch = vec![
        line("shop", "w1", 10, 10, "out one"),
        line("shop", "w1", 20, 11, "out two"),
        err.clone(),
        sys.clone(),
    ];
    assert_eq!(
        logs.ingest(batch, 20),
        LogAck {
            accepted: 4,
            duplicates: 0
        }
    );
    // A resend of stderr is still a duplicate, and a later stderr line is kept.
    let mut err2 = line("shop", "w1", 9, 14, "oops again");
    err2.stream = LogStream::Stderr;
    assert_eq!(
        logs.ingest(vec![err, err2], 20),
        LogAck {
            accepted: 1,
            duplicates: 1
        }
    );
    let texts: Vec<_> = logs
        .query("shop", 0, &LogFilter::default())
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert_eq!(
        texts,
        ["out one", "out two", "oops", "started", "oops again"]
    );
}

#[test]
fn since_and_filters_select_lines() {
    let logs = LogStore::default();
    logs.ingest(
        vec![
            line("shop", "w1", 1, 100, "old"),
            line("shop", "k1", 1, 200, "worker"),
            line("shop", "w1", 2, 300, "new"),
        ],
        300,
    );
    let since = |t| logs.query("shop", t, &LogFilter::default()).len();
    assert_eq!((since(0), since(200), since(301)), (3, 2, 0));
    let web = LogFilter {
        service: Some("web".into()),
        ..LogFilter::default()
    };
    assert_eq!(logs.query("shop", 0, &web).len(), 2);
    let one = LogFilter {
        instance: Some("k1".into()),
        ..LogFilter::default()
    };
    assert_eq!(logs.query("shop", 0, &one)[0].text, "worker");
    assert!(logs.query("other", 0, &LogFilter::default()).is_empty());
}

#[test]
fn old_lines_and_excess_bytes_are_dropped_oldest_first() {
    let logs = LogStore::with_limit(3 * (LINE_OVERHEAD + 2 + 10));
    let t0 = 1_000_000_000;
    logs.ingest(vec![line("shop", "w1", 1, t0, "0123456789")], t0);
    logs.ingest(
        vec![line("shop", "w1", 2, t0 + MAX_AGE_MS, "0123456789")],
        t0 + MAX_AGE_MS + 1,
    );
    assert_eq!(
        logs.query("shop", 0, &LogFilter::default()).len(),
        1,
        "the hour-old line went"
    );
    for i in 3..8 {
        logs.ingest(
            vec![line(
                "shop",
                "w1",
                i,
                t0 + MAX_AGE_MS + i as i64,
                "0123456789",
            )],
            t0 + MAX_AGE_MS + 10,
        );
    }
    let kept = logs.query("shop", 0, &LogFilter::default());
    assert_eq!(kept.len(), 3, "the byte budget holds three lines");
    assert_eq!(kept[0].offset, 5);
}

#[tokio::test]
async fn followers_see_new_lines() {
    let logs = LogStore::default();
    let mut rx = logs.follow("shop");
    logs.ingest(vec![line("shop", "w1", 1, 1, "hello")], 1);
    assert_eq!(rx.recv().await.unwrap().text, "hello");
}
