//! The client against a tiny local HTTP server: URLs, auth, and how answers map to errors.

use axum::Router;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use mesh_types::api::{CreateEnvironment, Environment};
use mesh_types::{ErrorCode, Name};
use serde_json::json;

use crate::{Client, Error};

/// Serves `router` on a free loopback port until the test ends.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// Answers every request with a `not_found` error whose message is the path and query it got.
async fn echo(uri: Uri) -> impl IntoResponse {
    let message = uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": {"code": "not_found", "message": message}})),
    )
}

fn echoed(r: crate::Result<impl std::fmt::Debug>) -> String {
    match r {
        Err(Error::Api { message, .. }) => message,
        other => panic!("expected the echo error, got {other:?}"),
    }
}

fn env_json(name: &str) -> serde_json::Value {
    json!({"name": name, "racks": ["local"], "created_at": 1, "updated_at": 2})
}

#[tokio::test]
async fn api_error_bodies_become_api_errors() {
    let router = Router::new().route(
        "/v1/environments/{env}",
        get(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"error": {"code": "not_found", "message": "environment \"shop\" not found", "request_id": "x1"}})),
            )
        }),
    );
    let client = Client::new(&serve(router).await, "t").unwrap();
    match client.environment("shop").await {
        Err(Error::Api {
            status,
            code,
            message,
        }) => {
            assert_eq!(status, 404);
            assert_eq!(code, ErrorCode::NotFound);
            assert_eq!(message, "environment \"shop\" not found");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_code_keeps_the_message_and_takes_the_status_code() {
    let router = Router::new().route(
        "/v1/environments",
        get(|| async {
            (
                StatusCode::CONFLICT,
                axum::Json(json!({"error": {"code": "brand_new_code", "message": "busy"}})),
            )
        }),
    );
    let client = Client::new(&serve(router).await, "t").unwrap();
    let e = client.list_environments().await.unwrap_err();
    assert!(
        matches!(&e, Error::Api { status: 409, code: ErrorCode::FailedPrecondition, message } if message == "busy"),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_foreign_error_page_is_reported_with_its_status() {
    let router = Router::new().route(
        "/v1/whoami",
        get(|| async { (StatusCode::BAD_GATEWAY, "<html>bad gateway</html>\n<body/>") }),
    );
    let base = serve(router).await;
    let client = Client::new(&base, "t").unwrap();
    let e = client.whoami().await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Other(_)), "{e:?}");
    assert!(text.contains("502"), "{text}");
    assert!(text.contains(&base), "{text}");
    assert!(text.contains("<html>bad gateway</html>"), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
}

#[tokio::test]
async fn a_refused_connection_says_what_to_do() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let base = format!("http://{addr}");
    let client = Client::new(&base, "t").unwrap();
    let e = client.list_environments().await.unwrap_err();
    assert!(
        matches!(&e, Error::Connect { url } if *url == base),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot reach the Widemesh API at {base}: is `mesh up` running?"
        )),
        "{text}"
    );
    assert!(text.contains("mesh login URL --token TOKEN"), "{text}");
}

#[tokio::test]
async fn path_segments_are_percent_encoded() {
    let client = Client::new(&serve(Router::new().fallback(echo)).await, "t").unwrap();
    assert_eq!(
        echoed(client.environment("a/b?c#d").await),
        "/v1/environments/a%2Fb%3Fc%23d"
    );
    assert_eq!(
        echoed(client.stack("shop", "x y").await),
        "/v1/environments/shop/stacks/x%20y"
    );
    for bad in ["", ".", ".."] {
        let e = client.delete_stack("shop", bad).await.unwrap_err();
        assert!(matches!(e, Error::Other(_)), "{bad:?}: {e:?}");
        assert!(e.to_string().contains("is not a valid name"), "{e}");
    }
    assert_eq!(
        echoed(client.endpoint("shop", "app.example.com").await),
        "/v1/environments/shop/endpoints/app.example.com"
    );
}

#[tokio::test]
async fn query_arguments_are_sent() {
    let client = Client::new(&serve(Router::new().fallback(echo)).await, "t").unwrap();
    assert_eq!(
        echoed(client.list_events(Some(5)).await),
        "/v1/events?limit=5"
    );
    assert_eq!(echoed(client.list_events(None).await), "/v1/events");
    assert_eq!(
        echoed(client.resolved_config("e", "s", "w", Some("r1")).await),
        "/v1/environments/e/stacks/s/services/w/config/resolved?rack=r1"
    );
    let q = crate::LogQuery {
        since: Some("1m".into()),
        service: Some("web".into()),
        follow: true,
        ..Default::default()
    };
    assert_eq!(
        echoed(client.logs("e", &q).await),
        "/v1/environments/e/logs?since=1m&service=web&follow=true"
    );
    assert_eq!(
        echoed(client.logs("e", &crate::LogQuery::default()).await),
        "/v1/environments/e/logs"
    );
    let resume = crate::LogQuery {
        after: Some(42),
        follow: true,
        ..Default::default()
    };
    assert_eq!(
        echoed(client.logs("e", &resume).await),
        "/v1/environments/e/logs?after=42&follow=true"
    );
    let v = mesh_types::Version(3);
    assert_eq!(
        echoed(client.deployment_log("e", "s", v).await),
        "/v1/environments/e/stacks/s/deployments/v3/log"
    );
}

#[tokio::test]
async fn a_base_url_with_a_path_prefix_keeps_it() {
    let base = serve(Router::new().fallback(echo)).await;
    for prefix in ["/mesh", "/mesh/"] {
        let client = Client::new(&format!("{base}{prefix}"), "t").unwrap();
        assert_eq!(client.base_url(), format!("{base}/mesh"));
        assert_eq!(echoed(client.list_racks().await), "/mesh/v1/racks");
    }
    let client = Client::new(&format!("{base}/"), "t").unwrap();
    assert_eq!(client.base_url(), base);
    assert_eq!(echoed(client.list_racks().await), "/v1/racks");
}

#[tokio::test]
async fn the_token_is_sent_as_a_bearer_token() {
    let router = Router::new().route(
        "/v1/whoami",
        get(|headers: HeaderMap| async move {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
            if auth == "Bearer s3cret" {
                (
                    StatusCode::OK,
                    axum::Json(json!({"token": "admin", "role": "admin", "server_version": "0.1.0"})),
                )
            } else {
                (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"error": {"code": "unauthenticated", "message": "the bearer token is not valid"}})),
                )
            }
        }),
    );
    let base = serve(router).await;
    let me = Client::new(&base, "s3cret")
        .unwrap()
        .whoami()
        .await
        .unwrap();
    assert_eq!(me.token, "admin");
    let e = Client::new(&base, "wrong")
        .unwrap()
        .whoami()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Unauthenticated));
    assert_eq!(e.to_string(), "the bearer token is not valid");
}

#[tokio::test]
async fn bodies_go_out_and_created_resources_come_back() {
    let router = Router::new()
        .route(
            "/v1/environments",
            post(
                |axum::Json(req): axum::Json<CreateEnvironment>| async move {
                    (StatusCode::CREATED, axum::Json(env_json(req.name.as_str())))
                },
            ),
        )
        .route(
            "/v1/environments/{env}",
            delete(|| async { StatusCode::NO_CONTENT }),
        );
    let client = Client::new(&serve(router).await, "t").unwrap();
    let req = CreateEnvironment {
        name: Name::parse("shop").unwrap(),
        racks: vec![],
    };
    let env: Environment = client.create_environment(&req).await.unwrap();
    assert_eq!(env.name.as_str(), "shop");
    assert_eq!(env.racks.len(), 1);
    client.delete_environment("shop").await.unwrap();
}

#[tokio::test]
async fn an_answer_of_the_wrong_shape_is_an_error_not_a_panic() {
    let router = Router::new().route(
        "/v1/racks",
        get(|| async { axum::Json(json!({"racks": 1})) }),
    );
    let client = Client::new(&serve(router).await, "t").unwrap();
    let e = client.list_racks().await.unwrap_err();
    assert!(matches!(e, Error::Other(_)), "{e:?}");
    assert!(e.to_string().contains("does not understand"), "{e}");
}

#[test]
fn invalid_base_urls_are_refused() {
    for bad in ["", "127.0.0.1:7440", "ftp://x", "http://", "http://h/?q=1"] {
        let e = Client::new(bad, "t").unwrap_err();
        assert!(matches!(e, Error::Other(_)), "{bad}: {e:?}");
        assert!(e.to_string().contains("http://127.0.0.1:7440"), "{e}");
    }
}

#[test]
fn debug_output_hides_the_token() {
    let c = Client::new("http://127.0.0.1:1", "very-secret").unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("very-secret"), "{shown}");
}

#[tokio::test]
async fn json_lines_are_split_however_the_chunks_fall() {
    use axum::body::{Body, Bytes};
    let router = Router::new().route(
        "/v1/environments/{env}/logs",
        get(|| async {
            let parts: Vec<Result<Bytes, std::convert::Infallible>> = vec![
                Ok(Bytes::from_static(b"{\"n\":1}\n{\"n\"")),
                Ok(Bytes::from_static(b":2}\r\n\n")),
                Ok(Bytes::from_static(b"{\"n\":3}")),
            ];
            Body::from_stream(futures_util::stream::iter(parts))
        }),
    );
    let client = Client::new(&serve(router).await, "t").unwrap();
    let mut lines = client.logs("e", &crate::LogQuery::default()).await.unwrap();
    let mut got = Vec::new();
    while let Some(v) = lines.next::<serde_json::Value>().await.unwrap() {
        got.push(v["n"].as_i64().unwrap());
    }
    assert_eq!(got, [1, 2, 3]);
}
