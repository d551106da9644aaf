//! Upload checks are bounded: a few at once (429 past that), no more written than declared
//! (413), and a stalled upload gives its slot back. The uploads held open here are fed by the
//! test through channels, so which ones hold slots is never a matter of timing.

use std::path::Path;
use std::time::Duration;

use mesh_server::UploadLimits;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::mpsc;

use super::{TestServer, err};

/// A packed source tree: one file of `size` bytes.
fn archive(size: usize) -> (Vec<u8>, String) {
    let dir = tempfile::TempDir::new().unwrap();
    // Not all one byte: the archive stays about as large as the file.
    let body: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.path().join("app.txt"), body).unwrap();
    let packed = mesh_build::pack(dir.path()).unwrap();
    (packed.bytes, format!("sha256:{}", packed.digest))
}

type Feed = mpsc::Sender<Result<Vec<u8>, std::io::Error>>;

/// Starts an upload whose body the test feeds through the returned sender, declaring
/// `declared` bytes; the answer arrives through the handle.
fn held_upload(
    s: &TestServer,
    digest: &str,
    declared: usize,
) -> (Feed, tokio::task::JoinHandle<reqwest::Response>) {
    let (tx, rx) = mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let req = s
        .req(
            reqwest::Method::PUT,
            &format!("/v1/sources/{digest}?size={declared}"),
        )
        .body(reqwest::Body::wrap_stream(body));
    (tx, tokio::spawn(async move { req.send().await.unwrap() }))
}

/// A whole upload in one request, with its Content-Length.
async fn upload(s: &TestServer, bytes: &[u8], digest: &str) -> reqwest::Response {
    s.req(reqwest::Method::PUT, &format!("/v1/sources/{digest}"))
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap()
}

/// `mesh_api_upload_checks` from /metrics.
async fn checks_in_progress(s: &TestServer) -> u64 {
    let text = s.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("mesh_api_upload_checks "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no upload gauge in:\n{text}"))
}

/// Waits (bounded) until exactly `n` uploads hold slots.
async fn until_in_progress(s: &TestServer, n: u64) {
    for _ in 0..600 {
        if checks_in_progress(s).await == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{n} uploads never held slots (now {})",
        checks_in_progress(s).await
    );
}

/// The answer of a held upload, waited for at most a minute.
async fn answer(h: tokio::task::JoinHandle<reqwest::Response>) -> reqwest::Response {
    tokio::time::timeout(Duration::from_secs(60), h)
        .await
        .expect("the upload was answered")
        .unwrap()
}

/// Files left in the blob store and check directories left in the scratch space.
fn left_on_disk(data: &Path) -> Vec<String> {
    let mut left = Vec::new();
    for sub in ["blobs/sha256", "deploys"] {
        if let Ok(rd) = std::fs::read_dir(data.join(sub)) {
            for e in rd {
                left.push(format!(
                    "{sub}/{}",
                    e.unwrap().file_name().to_string_lossy()
                ));
            }
        }
    }
    left
}

#[tokio::test]
async fn uploads_past_the_bound_get_429_while_the_others_finish() {
    let s = TestServer::start_with_uploads(UploadLimits {
        slots: 2,
        idle_timeout: Duration::from_secs(300),
        max_duration: Duration::from_secs(600),
        retry_after: Duration::from_secs(7),
        ..UploadLimits::default()
    })
    .await;
    let (bytes, digest) = archive(4096);
    let (half, rest) = bytes.split_at(bytes.len() / 2);

    // Two uploads take both slots and hold them: half sent, the rest when the test says.
    let (feed1, up1) = held_upload(&s, &digest, bytes.len());
    let (feed2, up2) = held_upload(&s, &digest, bytes.len());
    feed1.send(Ok(half.to_vec())).await.unwrap();
    feed2.send(Ok(half.to_vec())).await.unwrap();
    until_in_progress(&s, 2).await;

    // A third is turned away, with when to try again.
    let busy = upload(&s, &bytes, &digest).await;
    assert_eq!(
        busy.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("7")
    );
    let msg = err(
        busy,
        StatusCode::TOO_MANY_REQUESTS,
        "resource_exhausted",
        "already receiving 2 uploads",
    )
    .await;
    assert!(msg.contains("try again in 7s"), "{msg}");

    // The first finishes; its slot is free again for the next.
    feed1.send(Ok(rest.to_vec())).await.unwrap();
    drop(feed1);
    let done: Value = answer(up1).await.json().await.unwrap();
    assert_eq!(done["digest"], digest.as_str(), "{done}");
    assert_eq!(done["files"], 1);
    let next = upload(&s, &bytes, &digest).await;
    assert_eq!(
        next.status(),
        StatusCode::OK,
        "{}",
        next.text().await.unwrap()
    );

    // The second still held its slot all along; it finishes too, and none is held after.
    feed2.send(Ok(rest.to_vec())).await.unwrap();
    drop(feed2);
    assert_eq!(answer(up2).await.status(), StatusCode::OK);
    assert_eq!(checks_in_progress(&s).await, 0);
}

#[tokio::test]
async fn a_stalled_upload_gives_its_slot_back() {
    let s = TestServer::start_with_uploads(UploadLimits {
        slots: 1,
        idle_timeout: Duration::from_secs(1),
        max_duration: Duration::from_secs(600),
        ..UploadLimits::default()
    })
    .await;
    let (bytes, digest) = archive(4096);
    let (feed, up) = held_upload(&s, &digest, bytes.len());
    feed.send(Ok(bytes[..100].to_vec())).await.unwrap();
    // Nothing more is sent (the sender stays open): the server gives up on it.
    let msg = err(
        answer(up).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "the upload stalled",
    )
    .await;
    assert!(
        msg.contains(&format!("after 100 of its {} bytes", bytes.len())),
        "{msg}"
    );
    drop(feed);
    // Its one slot is free: the next upload goes through.
    let next = upload(&s, &bytes, &digest).await;
    assert_eq!(
        next.status(),
        StatusCode::OK,
        "{}",
        next.text().await.unwrap()
    );
    assert_eq!(checks_in_progress(&s).await, 0);
    // Nothing of the stalled upload stayed; the stored archive is the next one's.
    let left = left_on_disk(&s.dir);
    assert_eq!(
        left,
        vec![format!("blobs/sha256/{}", &digest[7..])],
        "{left:?}"
    );
}

#[tokio::test]
async fn uploads_over_their_declared_size_get_413_and_leave_nothing_on_disk() {
    let s = TestServer::start_with_uploads(UploadLimits {
        max_unpacked_bytes: 64 * 1024,
        ..UploadLimits::default()
    })
    .await;
    let (bytes, digest) = archive(16 * 1024);

    // Declared 100 bytes, sent more: refused before more than 100 are written.
    let (feed, up) = held_upload(&s, &digest, 100);
    feed.send(Ok(bytes.clone())).await.unwrap();
    err(
        answer(up).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "longer than the 100 bytes it declared",
    )
    .await;
    drop(feed);

    // Declared more than the control plane takes (64 MiB here): refused before any is read.
    let (feed, up) = held_upload(&s, &digest, 65 * 1024 * 1024);
    err(
        answer(up).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "larger than this control plane's limit of 64 MiB",
    )
    .await;
    drop(feed);

    // Declared nothing at all.
    let (feed, up) = held_upload(&s, &digest, 0);
    drop(feed);
    let missing = s
        .req(reqwest::Method::PUT, &format!("/v1/sources/{digest}"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter([
            Ok::<_, std::io::Error>(bytes.clone()),
        ])))
        .send()
        .await
        .unwrap();
    err(
        missing,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "declare the archive's size",
    )
    .await;
    // (An empty body declared as 0 bytes does not hash to the digest.)
    err(
        answer(up).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "hashes to",
    )
    .await;

    // Sent fewer bytes than declared.
    let (feed, up) = held_upload(&s, &digest, bytes.len() + 1);
    feed.send(Ok(bytes.clone())).await.unwrap();
    drop(feed);
    err(
        answer(up).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        "cut on the way",
    )
    .await;

    // A source that unpacks to more than the unpacked limit (64 KiB here).
    let (big, big_digest) = archive(128 * 1024);
    assert!(big.len() < 64 * 1024 * 1024);
    err(
        upload(&s, &big, &big_digest).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "unpacks to more than",
    )
    .await;

    let left = left_on_disk(&s.dir);
    assert!(
        left.is_empty(),
        "refused uploads left files behind: {left:?}"
    );
    assert_eq!(checks_in_progress(&s).await, 0);
    // The same archive, declared right, is taken.
    let ok = upload(&s, &bytes, &digest).await;
    assert_eq!(ok.status(), StatusCode::OK, "{}", ok.text().await.unwrap());
}
