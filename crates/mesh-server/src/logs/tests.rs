use mesh_store::{MasterKey, SqlStore};
use mesh_types::Name;
use mesh_types::agent::LogStream;
use mesh_types::api::{CreateProvider, ProviderKind, Rack, RackState};

use super::*;

/// A store on a new SQLite file with environments `shop` and `other` on rack `local`.
async fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    let store = SqlStore::open_sqlite_path(&dir.path().join("db"), MasterKey::from_bytes([3; 32]))
        .await
        .unwrap();
    store
        .create_provider(
            &CreateProvider {
                name: Name::parse("local").unwrap(),
                kind: ProviderKind::Local,
                secrets: Default::default(),
            },
            1,
        )
        .await
        .unwrap();
    store
        .create_rack(&Rack {
            name: Name::parse("local").unwrap(),
            provider: Name::parse("local").unwrap(),
            region: Name::parse("local").unwrap(),
            size: "local".into(),
            domain: mesh_types::Domain::parse("local.test").unwrap(),
            address: "203.0.113.10".into(),
            state: RackState::Ready,
            created_at: 1,
            runtime: Default::default(),
        })
        .await
        .unwrap();
    for env in ["shop", "other"] {
        store
            .create_environment(
                &Name::parse(env).unwrap(),
                &[Name::parse("local").unwrap()],
                &[],
                1,
            )
            .await
            .unwrap();
    }
    Arc::new(store)
}

async fn logs() -> (tempfile::TempDir, LogStore) {
    let dir = tempfile::tempdir().unwrap();
    let logs = LogStore::new(store(&dir).await);
    (dir, logs)
}

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
        rack: None,
    }
}

async fn texts(logs: &LogStore, since: UnixMs, filter: &LogFilter) -> Vec<String> {
    logs.query("shop", since, filter)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.text)
        .collect()
}

#[tokio::test]
async fn resent_lines_are_dropped_once_kept_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let logs = LogStore::new(store.clone());
    let batch = vec![
        line("shop", "w1", 2, 10, "a"),
        line("shop", "w1", 4, 11, "b"),
        line("shop", "w1", 6, 12, "c"),
    ];
    assert_eq!(
        logs.ingest(batch.clone(), 20).await.unwrap(),
        LogAck {
            accepted: 3,
            duplicates: 0
        }
    );
    // The control plane restarted (a new log store on the same database); an agent resent
    // from before its last acknowledged line.
    drop(logs);
    let logs = LogStore::new(store);
    let mut again = batch;
    again.push(line("shop", "w1", 8, 13, "d"));
    assert_eq!(
        logs.ingest(again, 20).await.unwrap(),
        LogAck {
            accepted: 1,
            duplicates: 3
        }
    );
    assert_eq!(
        texts(&logs, 0, &LogFilter::default()).await,
        ["a", "b", "c", "d"]
    );
}

#[tokio::test]
async fn each_stream_of_an_instance_counts_its_own_offsets() {
    // stdout and stderr are separate files: stderr's first line has a smaller offset than
    // stdout's last, and must not be taken for a resend.
    let (_dir, logs) = logs().await;
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
        logs.ingest(batch, 20).await.unwrap(),
        LogAck {
            accepted: 4,
            duplicates: 0
        }
    );
    // A resend of stderr is still a duplicate, and a later stderr line is kept.
    let mut err2 = line("shop", "w1", 9, 14, "oops again");
    err2.stream = LogStream::Stderr;
    assert_eq!(
        logs.ingest(vec![err, err2], 20).await.unwrap(),
        LogAck {
            accepted: 1,
            duplicates: 1
        }
    );
    assert_eq!(
        texts(&logs, 0, &LogFilter::default()).await,
        ["out one", "out two", "oops", "started", "oops again"]
    );
}

#[tokio::test]
async fn since_and_filters_select_lines() {
    let (_dir, logs) = logs().await;
    logs.ingest(
        vec![
            line("shop", "w1", 1, 100, "old"),
            line("shop", "k1", 1, 200, "worker"),
            line("shop", "w1", 2, 300, "new"),
        ],
        300,
    )
    .await
    .unwrap();
    let all = LogFilter::default();
    assert_eq!(texts(&logs, 0, &all).await.len(), 3);
    assert_eq!(texts(&logs, 200, &all).await.len(), 2);
    assert!(texts(&logs, 301, &all).await.is_empty());
    let web = LogFilter {
        service: Some("web".into()),
        ..LogFilter::default()
    };
    assert_eq!(texts(&logs, 0, &web).await, ["old", "new"]);
    let one = LogFilter {
        instance: Some("k1".into()),
        ..LogFilter::default()
    };
    assert_eq!(texts(&logs, 0, &one).await, ["worker"]);
    assert!(logs.query("other", 0, &all).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_long_history_is_read_page_by_page() {
    let (_dir, logs) = logs().await;
    let n = PAGE as u64 * 2 + 7;
    let batch = (1..=n).map(|i| line("shop", "w1", i, 5, "x")).collect();
    logs.ingest(batch, 5).await.unwrap();
    let all = logs.query("shop", 0, &LogFilter::default()).await.unwrap();
    assert_eq!(all.len() as u64, n);
    assert_eq!(all.last().map(|l| l.offset), Some(n));
}

#[tokio::test]
async fn old_lines_and_excess_bytes_are_dropped_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let logs = LogStore::with_limit(store(&dir).await, 3 * (96 + 2 + 10));
    let t0 = 1_000_000_000;
    logs.ingest(vec![line("shop", "w1", 1, t0, "0123456789")], t0)
        .await
        .unwrap();
    logs.ingest(
        vec![line("shop", "w1", 2, t0 + MAX_AGE_MS, "0123456789")],
        t0 + MAX_AGE_MS + 1,
    )
    .await
    .unwrap();
    assert_eq!(
        texts(&logs, 0, &LogFilter::default()).await.len(),
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
        )
        .await
        .unwrap();
    }
    let kept = logs.query("shop", 0, &LogFilter::default()).await.unwrap();
    assert_eq!(kept.len(), 3, "the byte budget holds three lines");
    assert_eq!(kept[0].offset, 5);
}

#[tokio::test]
async fn followers_see_new_lines_of_their_environment() {
    let (_dir, logs) = logs().await;
    let mut rx = logs.follow("shop");
    logs.ingest(
        vec![
            line("other", "w1", 1, 1, "elsewhere"),
            line("shop", "w1", 1, 1, "hello"),
        ],
        1,
    )
    .await
    .unwrap();
    assert_eq!(rx.recv().await.unwrap().text, "hello");
    assert!(rx.try_recv().is_err());
}

#[test]
fn an_entry_is_the_line_with_its_id() {
    let l = line("shop", "w1", 3, 7, "hi");
    let v = serde_json::to_value(Entry { id: 42, line: &l }).unwrap();
    assert_eq!(v["id"], 42);
    assert_eq!(v["text"], "hi");
    assert_eq!(v["offset"], 3);
    // Clients that read a plain LogLine still can.
    let back: LogLine = serde_json::from_value(v).unwrap();
    assert_eq!(back, l);
}
