//! Instance output in the store: batches, reads, duplicates, pruning, and what survives reopening.

use std::sync::Arc;

use mesh_store::{LogLimits, LogRead, Store};
use mesh_types::UnixMs;
use mesh_types::agent::{LogAck, LogLine, LogStream};

use crate::support::{Fixture, T, environment, key, name, not_found, world};

both!(
    batches_are_read_back_in_order_and_filtered,
    resent_lines_are_dropped_per_instance_and_stream,
    old_lines_and_excess_bytes_are_pruned_oldest_first,
    lines_of_a_deleted_environment_go_with_it,
);
both_fixture!(offsets_and_lines_survive_reopening);

const HOUR: UnixMs = 60 * 60 * 1000;
const ROOMY: LogLimits = LogLimits {
    max_age_ms: HOUR,
    max_bytes: 500 * 1024 * 1024,
};

fn line(env: &str, service: &str, instance: &str, offset: u64, at: UnixMs, text: &str) -> LogLine {
    LogLine {
        at,
        environment: name(env),
        stack: name("app"),
        service: name(service),
        instance: instance.into(),
        stream: LogStream::Stdout,
        text: text.into(),
        offset,
        rack: None,
    }
}

fn ack(accepted: u64, duplicates: u64) -> LogAck {
    LogAck {
        accepted,
        duplicates,
    }
}

async fn texts(store: &dyn Store, env: &str, read: LogRead) -> Vec<String> {
    store
        .read_logs(
            env,
            &LogRead {
                limit: 1000,
                ..read
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.line.text)
        .collect()
}

async fn batches_are_read_back_in_order_and_filtered(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    environment(store.as_ref(), "bank").await;
    let batch = vec![
        line("shop", "web", "w1", 1, T, "one"),
        line("shop", "worker", "k1", 1, T + 10, "two"),
        line("bank", "web", "b1", 1, T + 10, "elsewhere"),
        line("shop", "web", "w1", 2, T + 20, "three"),
    ];
    let done = store.append_logs(batch, T + 20, ROOMY).await.unwrap();
    assert_eq!(done.ack, ack(4, 0));
    // The kept lines come back with ids in the order they were stored.
    let ids: Vec<i64> = done.kept.iter().map(|l| l.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(done.kept[3].line.text, "three");

    let all = store
        .read_logs(
            "shop",
            &LogRead {
                limit: 10,
                ..LogRead::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].line, line("shop", "web", "w1", 1, T, "one"));
    assert_eq!(all[2].id, done.kept[3].id);
    let read = |r: LogRead| texts(store.as_ref(), "shop", r);
    assert_eq!(read(LogRead::default()).await, ["one", "two", "three"]);
    let web = LogRead {
        service: Some("web".into()),
        ..LogRead::default()
    };
    assert_eq!(read(web).await, ["one", "three"]);
    let one = LogRead {
        instance: Some("k1".into()),
        stack: Some("app".into()),
        ..LogRead::default()
    };
    assert_eq!(read(one).await, ["two"]);
    let other_stack = LogRead {
        stack: Some("api".into()),
        ..LogRead::default()
    };
    assert!(read(other_stack).await.is_empty());
    let since = |t| LogRead {
        since: t,
        ..LogRead::default()
    };
    assert_eq!(read(since(T + 10)).await, ["two", "three"]);
    assert!(read(since(T + 21)).await.is_empty());
    // A cursor: lines after the id last seen, a page at a time.
    let after = LogRead {
        after: all[0].id,
        ..LogRead::default()
    };
    assert_eq!(read(after).await, ["two", "three"]);
    let page = store
        .read_logs(
            "shop",
            &LogRead {
                limit: 1,
                after: all[0].id,
                ..LogRead::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].line.text, "two");
    assert_eq!(
        texts(store.as_ref(), "bank", LogRead::default()).await,
        ["elsewhere"]
    );
    not_found(
        store.read_logs("nowhere", &LogRead::default()).await,
        "environment \"nowhere\"",
    );
}

async fn resent_lines_are_dropped_per_instance_and_stream(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    let mut err = line("shop", "web", "w1", 4, T + 2, "oops");
    err.stream = LogStream::Stderr;
    let batch = vec![
        line("shop", "web", "w1", 10, T, "out one"),
        line("shop", "web", "w1", 20, T + 1, "out two"),
        // stderr counts its own offsets: 4 is not a resend of stdout's.
        err.clone(),
        // A repeat inside one batch is a duplicate too.
        line("shop", "web", "w1", 20, T + 1, "out two"),
    ];
    assert_eq!(
        store.append_logs(batch, T, ROOMY).await.unwrap().ack,
        ack(3, 1)
    );
    let mut err2 = line("shop", "web", "w1", 9, T + 4, "oops again");
    err2.stream = LogStream::Stderr;
    let again = vec![
        line("shop", "web", "w1", 10, T, "out one"),
        line("shop", "web", "w1", 20, T + 1, "out two"),
        line("shop", "web", "w1", 30, T + 3, "out three"),
        err,
        err2,
    ];
    let done = store.append_logs(again, T, ROOMY).await.unwrap();
    assert_eq!(done.ack, ack(2, 3));
    assert_eq!(done.kept.len(), 2);
    assert_eq!(
        texts(store.as_ref(), "shop", LogRead::default()).await,
        ["out one", "out two", "oops", "out three", "oops again"]
    );
}

async fn old_lines_and_excess_bytes_are_pruned_oldest_first(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    // Each line counts 10 (text) + 2 (instance) + the overhead; the budget holds three.
    let one = 10 + 2 + 96;
    let limits = LogLimits {
        max_age_ms: HOUR,
        max_bytes: 3 * one,
    };
    let l = |offset: u64, at| {
        line(
            "shop",
            "web",
            "w1",
            offset,
            at,
            &format!("line-{offset:05}"),
        )
    };
    store.append_logs(vec![l(1, T)], T, limits).await.unwrap();
    store
        .append_logs(vec![l(2, T + HOUR)], T + HOUR + 1, limits)
        .await
        .unwrap();
    assert_eq!(
        texts(store.as_ref(), "shop", LogRead::default()).await,
        ["line-00002"],
        "the hour-old line went"
    );
    for i in 3..8 {
        store
            .append_logs(vec![l(i, T + HOUR + i as i64)], T + HOUR + 10, limits)
            .await
            .unwrap();
    }
    assert_eq!(
        texts(store.as_ref(), "shop", LogRead::default()).await,
        ["line-00005", "line-00006", "line-00007"],
        "the byte budget holds three lines"
    );
    // One big batch: the budget holds after it too, the oldest lines going first.
    let batch: Vec<_> = (8..40).map(|i| l(i, T + HOUR + 20)).collect();
    store
        .append_logs(batch, T + HOUR + 20, limits)
        .await
        .unwrap();
    assert_eq!(
        texts(store.as_ref(), "shop", LogRead::default()).await,
        ["line-00037", "line-00038", "line-00039"]
    );
    // Pruned lines stay duplicates: their offsets are remembered.
    let resent = store
        .append_logs(vec![l(8, T + HOUR + 20)], T + HOUR + 20, limits)
        .await
        .unwrap();
    assert_eq!(resent.ack, ack(0, 1));
}

async fn lines_of_a_deleted_environment_go_with_it(store: Arc<dyn Store>) {
    world(store.as_ref()).await;
    store
        .append_logs(vec![line("shop", "web", "w1", 1, T, "a")], T, ROOMY)
        .await
        .unwrap();
    store.delete_environment("shop").await.unwrap();
    // Lines still in flight for it are taken and dropped, so the agent moves on.
    let late = store
        .append_logs(vec![line("shop", "web", "w1", 2, T, "b")], T, ROOMY)
        .await
        .unwrap();
    assert_eq!(late.ack, ack(0, 1));
    // An environment of the same name starts empty, its offsets too.
    environment(store.as_ref(), "shop").await;
    assert!(
        texts(store.as_ref(), "shop", LogRead::default())
            .await
            .is_empty()
    );
    let fresh = store
        .append_logs(vec![line("shop", "web", "w1", 1, T, "new")], T, ROOMY)
        .await
        .unwrap();
    assert_eq!(fresh.ack, ack(1, 0));
}

async fn offsets_and_lines_survive_reopening(fixture: Arc<Fixture>) {
    let store = fixture.open(key()).await.unwrap();
    world(&store).await;
    let batch = vec![
        line("shop", "web", "w1", 5, T, "before"),
        line("shop", "web", "w1", 9, T + 1, "restart"),
    ];
    store.append_logs(batch.clone(), T, ROOMY).await.unwrap();
    store.close().await;

    // Another control plane (or this one restarted) on the same database.
    let again = fixture.open(key()).await.unwrap();
    let mut resend = batch;
    resend.push(line("shop", "web", "w1", 12, T + 2, "after"));
    let done = again.append_logs(resend, T + 2, ROOMY).await.unwrap();
    assert_eq!(done.ack, ack(1, 2), "the agent's resend doubles nothing");
    assert_eq!(
        texts(&again, "shop", LogRead::default()).await,
        ["before", "restart", "after"]
    );
    again.close().await;
}
