//! The `hetzner` driver: servers made with Hetzner Cloud's HTTP API
//! (`https://api.hetzner.cloud/v1`), booted from a Debian image with the user data of
//! [`crate::cloudinit`]. The servers it made are found again by their labels
//! (`widemesh-rack`, `widemesh-server`), so the driver keeps no state of its own.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::bootstrap::agent_dir;
use crate::{CreateServer, Driver, MadeServer, ProviderError, Result, cloudinit};

/// Hetzner Cloud's API.
pub const DEFAULT_ENDPOINT: &str = "https://api.hetzner.cloud/v1";
/// The image servers boot from unless the provider says otherwise.
pub const DEFAULT_IMAGE: &str = "debian-12";
/// The label naming a made server's rack.
pub const RACK_LABEL: &str = "widemesh-rack";
/// The label naming a made server.
pub const SERVER_LABEL: &str = "widemesh-server";

/// What a hetzner provider is made with (its secrets).
#[derive(Clone)]
pub struct HetznerSettings {
    /// A project's API token, read and write.
    pub token: String,
    /// The API's base URL (tests point it at a fake).
    pub endpoint: String,
    /// The image's name or id.
    pub image: String,
}

impl std::fmt::Debug for HetznerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HetznerSettings")
            .field("endpoint", &self.endpoint)
            .field("image", &self.image)
            .finish_non_exhaustive()
    }
}

pub struct HetznerDriver {
    s: HetznerSettings,
    http: reqwest::Client,
}

/// An error answer of the API: `{"error": {"code", "message", "details"}}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ApiError,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    code: String,
    message: String,
    #[serde(default)]
    details: Value,
}

/// The fields an `invalid_input` error names (`details.fields[].name`).
fn invalid_fields(details: &Value) -> Vec<String> {
    details["fields"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|x| x["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

impl HetznerDriver {
    pub fn new(s: HetznerSettings) -> Result<Self> {
        if s.token.trim().is_empty() {
            return Err(ProviderError::Invalid(
                "a hetzner provider needs the secret token (an API token of the project, read and write)".into(),
            ));
        }
        if !(s.endpoint.starts_with("https://") || s.endpoint.starts_with("http://")) {
            return Err(ProviderError::Invalid(format!(
                "the endpoint {:?} must be an http:// or https:// URL",
                s.endpoint
            )));
        }
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ProviderError::Invalid(format!("cannot make an HTTP client: {e}")))?;
        Ok(Self { s, http })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.s.endpoint.trim_end_matches('/'))
    }

    fn remote(&self, what: &str, detail: String) -> ProviderError {
        ProviderError::Remote {
            address: self.s.endpoint.clone(),
            what: what.to_string(),
            detail,
        }
    }

    /// One call; an error answer is turned into what it means for `what`.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        what: &str,
    ) -> Result<Value, (Option<ApiError>, ProviderError)> {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(self.s.token.trim())
            .query(query);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            (
                None,
                ProviderError::Unreachable {
                    address: self.s.endpoint.clone(),
                    why: e.to_string(),
                },
            )
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() {
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text).map_err(|e| {
                (
                    None,
                    self.remote(what, format!("the answer is not JSON ({e}): {text:.200}")),
                )
            });
        }
        let Ok(ErrorBody { error }) = serde_json::from_str::<ErrorBody>(&text) else {
            return Err((
                None,
                self.remote(what, format!("HTTP {status}: {text:.300}")),
            ));
        };
        let e = match error.code.as_str() {
            "unauthorized" | "forbidden" | "token_readonly" => {
                ProviderError::BadCredentials(format!(
                    "Hetzner Cloud answered {} ({}): give the provider an API token of the project with read and write access",
                    error.code, error.message
                ))
            }
            "resource_limit_exceeded" => ProviderError::Exhausted(format!(
                "Hetzner Cloud refused to {what}: the project's limit is reached ({}); delete servers or ask Hetzner to raise the limit",
                error.message
            )),
            "rate_limit_exceeded" => ProviderError::Exhausted(format!(
                "Hetzner Cloud's API rate limit is exceeded ({}): wait a few minutes and try again",
                error.message
            )),
            _ => self.remote(
                what,
                format!("{} ({}): {}", error.code, status, error.message),
            ),
        };
        Err((Some(error), e))
    }

    /// The names of what GET `path` lists (`locations`, `server_types`).
    async fn names(&self, path: &str, key: &str) -> Result<Vec<String>> {
        let v = self
            .call(
                reqwest::Method::GET,
                path,
                &[("per_page", "50".into())],
                None,
                "list",
            )
            .await
            .map_err(|(_, e)| e)?;
        Ok(v[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// After an `invalid_input`: is it the location or the server type, per the API's lists?
    async fn explain_invalid(&self, req: &CreateServer, fallback: ProviderError) -> ProviderError {
        match self.names("/locations", "locations").await {
            Ok(locs) if !locs.iter().any(|l| l == &req.region) => {
                return ProviderError::UnknownRegion {
                    region: req.region.clone(),
                    hint: format!("Hetzner Cloud's locations are {}", locs.join(", ")),
                };
            }
            Err(e) => return e,
            Ok(_) => {}
        }
        match self.names("/server_types", "server_types").await {
            Ok(types) if !types.iter().any(|t| t == &req.size) => ProviderError::UnknownSize {
                size: req.size.clone(),
                hint: format!("Hetzner Cloud's server types are {}", types.join(", ")),
            },
            Err(e) => e,
            Ok(_) => fallback,
        }
    }

    /// The servers with these labels, every page (at most 100 pages of 50).
    async fn servers(&self, selector: &str) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut page = 1u32;
        for _ in 0..100 {
            let v = self
                .call(
                    reqwest::Method::GET,
                    "/servers",
                    &[
                        ("label_selector", selector.to_string()),
                        ("page", page.to_string()),
                        ("per_page", "50".into()),
                    ],
                    None,
                    "list servers",
                )
                .await
                .map_err(|(_, e)| e)?;
            out.extend(v["servers"].as_array().cloned().unwrap_or_default());
            match v["meta"]["pagination"]["next_page"].as_u64() {
                Some(n) if n > page as u64 => page = n as u32,
                _ => break,
            }
        }
        Ok(out)
    }

    fn made(&self, v: &Value) -> Option<MadeServer> {
        let rack = v["labels"][RACK_LABEL].as_str()?.to_string();
        let name = v["labels"][SERVER_LABEL].as_str()?.to_string();
        let host = v["public_net"]["ipv4"]["ip"]
            .as_str()
            .or_else(|| v["private_net"][0]["ip"].as_str())
            .unwrap_or("")
            .to_string();
        let dir = agent_dir(crate::bootstrap::DEFAULT_ROOT, &rack, &name)
            .unwrap_or_else(|_| String::new());
        Some(MadeServer {
            name,
            rack,
            address: host.clone(),
            host,
            dir,
            net: None,
        })
    }
}

#[async_trait::async_trait]
impl Driver for HetznerDriver {
    async fn create(&self, req: &CreateServer) -> Result<MadeServer> {
        let b = &req.bootstrap;
        let dir = agent_dir(&b.root, &b.rack, &req.name)?;
        let user_data = cloudinit::for_server(b, &req.name)?;
        let body = json!({
            "name": req.name,
            "server_type": req.size,
            "location": req.region,
            "image": self.s.image,
            "user_data": user_data,
            "start_after_create": true,
            "labels": {RACK_LABEL: b.rack, SERVER_LABEL: req.name},
        });
        let what = format!("create server {}", req.name);
        let v = match self
            .call(reqwest::Method::POST, "/servers", &[], Some(&body), &what)
            .await
        {
            Ok(v) => v,
            Err((Some(api), e)) if api.code == "invalid_input" => {
                let fields = invalid_fields(&api.details);
                return Err(if fields.iter().any(|f| f == "location") {
                    ProviderError::UnknownRegion {
                        region: req.region.clone(),
                        hint: self
                            .names("/locations", "locations")
                            .await
                            .map(|l| format!("Hetzner Cloud's locations are {}", l.join(", ")))
                            .unwrap_or_else(|e| e.to_string()),
                    }
                } else if fields.iter().any(|f| f == "server_type") {
                    ProviderError::UnknownSize {
                        size: req.size.clone(),
                        hint: self
                            .names("/server_types", "server_types")
                            .await
                            .map(|t| format!("Hetzner Cloud's server types are {}", t.join(", ")))
                            .unwrap_or_else(|e| e.to_string()),
                    }
                } else {
                    self.explain_invalid(req, e).await
                });
            }
            Err((Some(api), e)) if api.code == "not_found" => {
                return Err(self.explain_invalid(req, e).await);
            }
            Err((_, e)) => return Err(e),
        };
        let mut made = self.made(&v["server"]).ok_or_else(|| {
            self.remote(
                &what,
                format!("the answer has no server with our labels: {v:.300}"),
            )
        })?;
        made.dir = dir;
        Ok(made)
    }

    async fn list(&self) -> Result<Vec<MadeServer>> {
        Ok(self
            .servers(RACK_LABEL)
            .await?
            .iter()
            .filter_map(|v| self.made(v))
            .collect())
    }

    async fn delete(&self, name: &str) -> Result<()> {
        let found = self.servers(&format!("{SERVER_LABEL}=={name}")).await?;
        if found.is_empty() {
            return Err(ProviderError::NotFound(name.to_string()));
        }
        for v in found {
            let id = v["id"]
                .as_u64()
                .ok_or_else(|| self.remote("delete a server", format!("no id in {v:.200}")))?;
            match self
                .call(
                    reqwest::Method::DELETE,
                    &format!("/servers/{id}"),
                    &[],
                    None,
                    &format!("delete server {name}"),
                )
                .await
            {
                Ok(_) => {}
                Err((Some(api), _)) if api.code == "not_found" => {}
                Err((_, e)) => return Err(e),
            }
        }
        Ok(())
    }

    async fn wait_reachable(&self, address: &str, limit: Duration) -> Result<()> {
        crate::tcp_wait(address, 22, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_input_names_its_fields() {
        let d = json!({"fields": [{"name": "server_type", "messages": ["unknown"]}]});
        assert_eq!(invalid_fields(&d), ["server_type"]);
        assert!(invalid_fields(&Value::Null).is_empty());
    }

    #[test]
    fn settings_are_checked_and_the_token_is_not_shown() {
        let s = HetznerSettings {
            token: " ".into(),
            endpoint: DEFAULT_ENDPOINT.into(),
            image: DEFAULT_IMAGE.into(),
        };
        assert!(HetznerDriver::new(s.clone()).is_err());
        let s = HetznerSettings {
            token: "secret".into(),
            ..s
        };
        assert!(!format!("{s:?}").contains("secret"));
        let bad = HetznerSettings {
            endpoint: "api.hetzner.cloud".into(),
            ..s
        };
        assert!(HetznerDriver::new(bad).is_err());
    }
}
