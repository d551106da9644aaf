//! `mesh certificate` (alias `cert`): TLS certificates of the environment's endpoints.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use mesh_types::api::{Certificate, CertificateSource, CertificateState, UploadCertificate};

use super::Ctx;
use crate::output::{date, print, print_json, table};

#[derive(Debug, Subcommand)]
pub enum CertCmd {
    /// List the environment's certificates and their state
    #[command(visible_alias = "ls")]
    List,
    /// Upload PEM files: certificate (or full chain), intermediates, then the private key last
    Upload {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<std::path::PathBuf>,
    },
    /// Delete an uploaded certificate by (a unique prefix of) its fingerprint
    Delete { fingerprint: String },
}

/// How many hex digits of a fingerprint tables show.
const SHORT: usize = 16;

fn short(fp: &str) -> &str {
    &fp[..fp.len().min(SHORT)]
}

fn source(s: CertificateSource) -> &'static str {
    match s {
        CertificateSource::Acme => "acme",
        CertificateSource::Uploaded => "uploaded",
    }
}

fn state(s: CertificateState) -> &'static str {
    match s {
        CertificateState::Pending => "pending",
        CertificateState::Issued => "issued",
        CertificateState::Failed => "failed",
        CertificateState::Expired => "expired",
    }
}

fn cert_table(certs: &[Certificate]) -> String {
    let rows = certs
        .iter()
        .map(|c| {
            vec![
                short(&c.fingerprint).to_string(),
                c.domains.join(","),
                source(c.source).into(),
                state(c.state).into(),
                date(c.not_after),
            ]
        })
        .collect();
    table(
        &["FINGERPRINT", "DOMAINS", "SOURCE", "STATE", "EXPIRES"],
        rows,
    )
}

pub async fn run(ctx: &Ctx, cmd: CertCmd) -> Result<()> {
    let target = ctx.target()?;
    let env = target.env()?;
    match cmd {
        CertCmd::List => {
            let certs = ctx.client()?.list_certificates(env).await?;
            if ctx.json() {
                print_json(&certs);
            } else if certs.is_empty() {
                print(format!("no certificates in environment {env}"));
            } else {
                print(cert_table(&certs));
            }
        }
        CertCmd::Upload { files } => {
            if files.len() > 8 {
                bail!(
                    "{} files given: a certificate upload takes the certificate or chain, intermediates and the key, key last",
                    files.len()
                );
            }
            let mut texts = Vec::with_capacity(files.len());
            for f in &files {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read {}", f.display()))?;
                texts.push(text);
            }
            let req = UploadCertificate { files: texts };
            let c = ctx.client()?.upload_certificate(env, &req).await?;
            if ctx.json() {
                print_json(&c);
            } else {
                print(format!(
                    "uploaded certificate {} for {} (expires {})",
                    short(&c.fingerprint),
                    c.domains.join(", "),
                    date(c.not_after)
                ));
            }
        }
        CertCmd::Delete { fingerprint } => {
            ctx.client()?.delete_certificate(env, &fingerprint).await?;
            if !ctx.json() {
                print(format!(
                    "deleted certificate {fingerprint} from environment {env}"
                ));
            }
        }
    }
    Ok(())
}
