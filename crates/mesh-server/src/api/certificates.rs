//! Certificates of an environment's endpoints.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use mesh_store::CertificateRecord;
use mesh_types::Name;
use mesh_types::api::{Certificate, CertificateSource, CertificateState, UploadCertificate};

use super::{Created, JsonBody, audit, created};
use crate::app::AppState;
use crate::auth::Caller;
use crate::certs::parse_upload;
use crate::error::{ApiError, ApiResult};

pub async fn list(
    State(state): State<AppState>,
    Path(env): Path<String>,
) -> ApiResult<Json<Vec<Certificate>>> {
    state.store().get_environment(&env).await?;
    let now = state.now();
    let mut certs = state.store().list_certificates(&env).await?;
    for c in &mut certs {
        if c.state == CertificateState::Issued && c.not_after < now {
            c.state = CertificateState::Expired;
        }
    }
    Ok(Json(certs))
}

pub async fn upload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(env): Path<String>,
    JsonBody(req): JsonBody<UploadCertificate>,
) -> ApiResult<Created<Certificate>> {
    let environment = state.store().get_environment(&env).await?;
    let now = state.now();
    let parsed = parse_upload(&req.files, now)
        .map_err(|e| ApiError::invalid(format!("certificate upload: {e}")))?;
    let record = CertificateRecord {
        certificate: Certificate {
            environment: environment.name.clone(),
            fingerprint: parsed.fingerprint,
            domains: parsed.domains,
            source: CertificateSource::Uploaded,
            state: CertificateState::Issued,
            issuer: parsed.issuer,
            not_before: parsed.not_before,
            not_after: parsed.not_after,
            created_at: now,
        },
        chain_pem: parsed.chain_pem,
        key_pem: parsed.key_pem,
    };
    let cert = state.store().add_certificate(&record).await?;
    audit(
        &state,
        &caller,
        "certificate.upload",
        &format!("{env}/{}", short(&cert.fingerprint)),
        &cert.domains.join(","),
    )
    .await;
    Ok(created(cert))
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((env, fingerprint)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let env_name: Name = state.store().get_environment(&env).await?.name;
    // Accept a unique prefix, as the CLI shows short fingerprints.
    let matches: Vec<Certificate> = state
        .store()
        .list_certificates(env_name.as_str())
        .await?
        .into_iter()
        .filter(|c| c.fingerprint.starts_with(&fingerprint.to_ascii_lowercase()))
        .collect();
    let cert = match matches.as_slice() {
        [one] => one,
        [] => {
            return Err(ApiError::not_found(format!(
                "certificate {fingerprint:?} in environment {env:?}"
            )));
        }
        _ => {
            return Err(ApiError::invalid(format!(
                "fingerprint prefix {fingerprint:?} matches several certificates; give more of it"
            )));
        }
    };
    state
        .store()
        .delete_certificate(&env, &cert.fingerprint)
        .await?;
    audit(
        &state,
        &caller,
        "certificate.delete",
        &format!("{env}/{}", short(&cert.fingerprint)),
        "",
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

fn short(fingerprint: &str) -> &str {
    &fingerprint[..fingerprint.len().min(16)]
}
