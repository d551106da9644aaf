use anyhow::Context;

use super::*;

fn api(code: ErrorCode, message: &str) -> anyhow::Error {
    anyhow::Error::new(ApiError::Api {
        status: code.http_status(),
        code,
        message: message.into(),
    })
}

#[test]
fn not_found_errors_point_at_the_list_command() {
    let (m, h) = describe(&api(ErrorCode::NotFound, "environment \"shop\" not found"));
    assert_eq!(m, "environment \"shop\" not found");
    assert_eq!(h.as_deref(), Some("list them with `mesh env ls`"));
    let (_, h) = describe(&api(ErrorCode::NotFound, "service \"web\" not found"));
    assert_eq!(h.as_deref(), Some("list them with `mesh svc list`"));
    let (_, h) = describe(&api(ErrorCode::NotFound, "something else not found"));
    assert_eq!(h, None);
}

#[test]
fn a_refused_token_suggests_logging_in() {
    let (m, h) = describe(&api(
        ErrorCode::Unauthenticated,
        "the bearer token is not valid",
    ));
    assert_eq!(m, "the bearer token is not valid");
    assert!(h.unwrap().contains("mesh login"));
}

#[test]
fn other_errors_have_no_hint_and_stay_on_one_line() {
    let (m, h) = describe(&api(
        ErrorCode::NotImplemented,
        "deployments are not available yet",
    ));
    assert_eq!(m, "deployments are not available yet");
    assert_eq!(h, None);
    let e = anyhow::anyhow!("first\nsecond").context("while testing");
    let (m, _) = describe(&e);
    assert_eq!(m, "while testing: first second");
}

#[test]
fn hints_survive_context() {
    let e = Err::<(), _>(hinted("no environment chosen", "pass --env"))
        .context("cannot list")
        .unwrap_err();
    let (m, h) = describe(&e);
    assert_eq!(m, "cannot list: no environment chosen");
    assert_eq!(h.as_deref(), Some("pass --env"));
}
