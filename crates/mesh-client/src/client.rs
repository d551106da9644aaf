//! The HTTP plumbing under every route method: URLs, auth, and turning answers into results.

use std::fmt;
use std::time::Duration;

use mesh_types::{ErrorBody, ErrorCode};
use reqwest::header::ACCEPT;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// How long to wait for a TCP (and TLS) connection before saying the API is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of one control plane, authenticated with one bearer token. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    /// The base URL as users wrote it, without a trailing slash, for messages.
    shown: String,
    token: String,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token: a Debug print may end up in a log.
        f.debug_struct("Client")
            .field("base", &self.shown)
            .finish_non_exhaustive()
    }
}

/// reqwest is built without a default rustls provider; a caller that forgot to install one
/// gets ring rather than a panic when the first client is built.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl Client {
    /// A client of the API at `base_url` (such as `http://127.0.0.1:7440`).
    pub fn new(base_url: &str, token: impl Into<String>) -> Result<Self> {
        ensure_crypto_provider();
        let trimmed = base_url.trim();
        let invalid = |why: String| {
            Error::Other(format!(
                "API URL {trimmed:?} is invalid: {why}; write it like http://127.0.0.1:7440"
            ))
        };
        let base = Url::parse(trimmed).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "the scheme {:?} is not http or https",
                base.scheme()
            )));
        }
        if base.cannot_be_a_base() || base.host_str().is_none_or(str::is_empty) {
            return Err(invalid("it has no host".into()));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("it has a query or fragment".into()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("mesh/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Other(format!("cannot build the HTTP client: {}", chain(&e))))?;
        let shown = base.as_str().trim_end_matches('/').to_string();
        Ok(Self {
            http,
            base,
            shown,
            token: token.into(),
        })
    }

    /// The API's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.shown
    }

    /// The URL of a route: the base URL followed by `segments`, each percent-encoded.
    pub(crate) fn url(&self, segments: &[&str]) -> Result<Url> {
        // URL parsers resolve `.` and `..` (even percent-encoded) instead of sending them, and
        // an empty segment changes the route: none of them can name a resource.
        if let Some(bad) = segments.iter().find(|s| matches!(**s, "" | "." | "..")) {
            return Err(Error::Other(format!(
                "{bad:?} is not a valid name: a name cannot be empty, \".\" or \"..\""
            )));
        }
        let mut url = self.base.clone();
        // `new` refused URLs that cannot be a base, so this always succeeds.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        Ok(url)
    }

    pub(crate) fn request(&self, method: Method, segments: &[&str]) -> Result<RequestBuilder> {
        Ok(self
            .http
            .request(method, self.url(segments)?)
            .bearer_auth(&self.token)
            .header(ACCEPT, "application/json"))
    }

    /// Sends a request and keeps only successful answers.
    pub(crate) async fn send(&self, rb: Result<RequestBuilder>) -> Result<Response> {
        let resp = rb?.send().await.map_err(|e| self.transport(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(self.api_error(resp).await)
    }

    pub(crate) async fn decode<T: DeserializeOwned>(&self, resp: Response) -> Result<T> {
        let bytes = resp.bytes().await.map_err(|e| self.transport(e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::Other(format!(
                "the API at {} answered with a body this CLI does not understand ({e}); are the CLI and the server of the same version?",
                self.shown
            ))
        })
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T> {
        let resp = self.send(self.request(Method::GET, segments)).await?;
        self.decode(resp).await
    }

    pub(crate) async fn get_query<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        segments: &[&str],
        query: &Q,
    ) -> Result<T> {
        let resp = self
            .send(self.request(Method::GET, segments).map(|r| r.query(query)))
            .await?;
        self.decode(resp).await
    }

    pub(crate) async fn get_text(&self, segments: &[&str]) -> Result<String> {
        let resp = self.send(self.request(Method::GET, segments)).await?;
        resp.text().await.map_err(|e| self.transport(e))
    }

    pub(crate) async fn get_response<Q: Serialize + ?Sized>(
        &self,
        segments: &[&str],
        query: &Q,
    ) -> Result<Response> {
        self.send(self.request(Method::GET, segments).map(|r| r.query(query)))
            .await
    }

    pub(crate) async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> Result<T> {
        let resp = self
            .send(self.request(Method::POST, segments).map(|r| r.json(body)))
            .await?;
        self.decode(resp).await
    }

    pub(crate) async fn post_response<B: Serialize + ?Sized>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> Result<Response> {
        self.send(self.request(Method::POST, segments).map(|r| r.json(body)))
            .await
    }

    pub(crate) async fn patch<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> Result<T> {
        let resp = self
            .send(self.request(Method::PATCH, segments).map(|r| r.json(body)))
            .await?;
        self.decode(resp).await
    }

    pub(crate) async fn delete(&self, segments: &[&str]) -> Result<()> {
        self.send(self.request(Method::DELETE, segments)).await?;
        Ok(())
    }

    /// A failure to exchange a request at all.
    fn transport(&self, e: reqwest::Error) -> Error {
        if e.is_connect() {
            Error::Connect {
                url: self.shown.clone(),
            }
        } else if e.is_timeout() {
            Error::Other(format!(
                "the Widemesh API at {} did not answer in time",
                self.shown
            ))
        } else {
            Error::Other(format!(
                "request to the Widemesh API at {} failed: {}",
                self.shown,
                chain(&e)
            ))
        }
    }

    /// The error an unsuccessful answer carries: the API's own body when there is one.
    async fn api_error(&self, resp: Response) -> Error {
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap_or_default();
        match parse_error_body(status, &bytes) {
            Some(e) => e,
            None => {
                let text = String::from_utf8_lossy(&bytes);
                let first = text.lines().next().unwrap_or("").trim();
                let snippet: String = first.chars().take(200).collect();
                let tail = if snippet.is_empty() {
                    String::new()
                } else {
                    format!(": {snippet}")
                };
                Error::Other(format!(
                    "{} answered {status} without the API's error body (is it a Widemesh API?){tail}",
                    self.shown
                ))
            }
        }
    }
}

/// Parses `{"error": {"code", "message"}}`. A code this client does not know (from a newer
/// server) still yields the message, with the code the status implies.
pub(crate) fn parse_error_body(status: StatusCode, bytes: &[u8]) -> Option<Error> {
    if let Ok(body) = serde_json::from_slice::<ErrorBody>(bytes) {
        return Some(Error::Api {
            status: status.as_u16(),
            code: body.error.code,
            message: body.error.message,
        });
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let message = value.get("error")?.get("message")?.as_str()?.to_string();
    Some(Error::Api {
        status: status.as_u16(),
        code: code_for_status(status),
        message,
    })
}

fn code_for_status(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        400 | 405 | 422 => ErrorCode::InvalidArgument,
        401 => ErrorCode::Unauthenticated,
        403 => ErrorCode::PermissionDenied,
        404 => ErrorCode::NotFound,
        409 => ErrorCode::FailedPrecondition,
        413 => ErrorCode::PayloadTooLarge,
        429 => ErrorCode::ResourceExhausted,
        501 => ErrorCode::NotImplemented,
        502..=504 => ErrorCode::Unavailable,
        _ => ErrorCode::Internal,
    }
}

/// An error and its causes on one line: reqwest's own message alone rarely says what failed.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(next) = cur {
        let s = next.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = next.source();
    }
    out
}

/// A streamed body of newline-delimited JSON (logs, the agents' watch), read as it arrives.
#[derive(Debug)]
pub struct JsonLines {
    resp: Response,
    shown: String,
    buf: Vec<u8>,
    done: bool,
}

impl JsonLines {
    pub(crate) fn new(resp: Response, client: &Client) -> Self {
        Self {
            resp,
            shown: client.shown.clone(),
            buf: Vec::new(),
            done: false,
        }
    }

    /// The next non-empty line, without its line break, or `None` at the end of the stream.
    pub async fn next_line(&mut self) -> Result<Option<String>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let rest = self.buf.split_off(pos + 1);
                let mut line = std::mem::replace(&mut self.buf, rest);
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            if self.done {
                if self.buf.iter().all(u8::is_ascii_whitespace) {
                    return Ok(None);
                }
                let line = std::mem::take(&mut self.buf);
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            match self.resp.chunk().await {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
                Ok(None) => self.done = true,
                Err(e) => {
                    return Err(Error::Other(format!(
                        "the stream from {} broke: {}",
                        self.shown,
                        chain(&e)
                    )));
                }
            }
        }
    }

    /// The next line, decoded.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>> {
        match self.next_line().await? {
            None => Ok(None),
            Some(line) => serde_json::from_str(&line).map(Some).map_err(|e| {
                Error::Other(format!(
                    "the stream from {} sent a line this client does not understand ({e})",
                    self.shown
                ))
            }),
        }
    }
}
