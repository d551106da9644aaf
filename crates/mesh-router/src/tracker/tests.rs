use std::time::Duration;

use super::*;

#[tokio::test]
async fn idle_waits_for_every_token() {
    let t = Tracker::new();
    t.idle().await;
    let a = t.token();
    let b = t.token();
    assert_eq!(t.live(), 2);
    let waiter = tokio::spawn({
        let t = t.clone();
        async move { t.idle().await }
    });
    drop(a);
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    drop(b);
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("idle after the last token")
        .expect("join");
}

#[tokio::test]
async fn phases_are_observed_in_order() {
    let t = Tracker::new();
    let mut rx = t.phase();
    t.set_phase(Phase::Closing);
    // Reaching Closing also satisfies a wait for Draining.
    tokio::time::timeout(Duration::from_secs(10), reached(&mut rx, Phase::Draining))
        .await
        .expect("draining reached");
}
