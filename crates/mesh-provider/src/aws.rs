//! The `aws` driver: EC2 instances made with the official AWS SDK for Rust, booted from a
//! Debian 12 image with the user data of [`crate::cloudinit`]. The instances it made are
//! found again by their tags (`widemesh:rack`, `widemesh:server`), in every region the
//! account has, so the driver keeps no state of its own.

use std::time::{Duration, Instant};

use aws_sdk_ec2 as ec2;
use base64::Engine as _;
use ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use ec2::types::{
    Filter, HttpTokensState, InstanceMetadataOptionsRequest, InstanceType, ResourceType, Tag,
    TagSpecification,
};

use crate::bootstrap::{DEFAULT_ROOT, agent_dir};
use crate::{CreateServer, Driver, MadeServer, ProviderError, Result, cloudinit};

/// The tag naming a made instance's rack.
pub const RACK_TAG: &str = "widemesh:rack";
/// The tag naming a made instance's server.
pub const SERVER_TAG: &str = "widemesh:server";
/// The account Debian publishes its official AMIs from.
pub const DEBIAN_OWNER: &str = "136693071363";
/// The region asked which regions exist.
const HOME_REGION: &str = "us-east-1";
/// States of an instance that is made and not gone.
const LIVE_STATES: &[&str] = &["pending", "running", "stopping", "stopped", "shutting-down"];

/// What an aws provider is made with (its secrets).
#[derive(Clone, Default)]
pub struct AwsSettings {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Another EC2 endpoint than AWS's (tests point it at moto).
    pub endpoint: Option<String>,
    /// The AMI to boot; by default the newest official Debian 12 image of the region.
    pub image: Option<String>,
    /// The subnet to make instances in; by default the region's default VPC's.
    pub subnet: Option<String>,
    /// A security group for the instances; by default the VPC's default group.
    pub security_group: Option<String>,
}

impl std::fmt::Debug for AwsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSettings")
            .field("access_key_id", &self.access_key_id)
            .field("endpoint", &self.endpoint)
            .field("image", &self.image)
            .field("subnet", &self.subnet)
            .field("security_group", &self.security_group)
            .finish_non_exhaustive()
    }
}

pub struct AwsDriver {
    s: AwsSettings,
    http: ec2::config::SharedHttpClient,
}

/// A made instance, where it is.
#[derive(Debug, Clone)]
struct Found {
    region: String,
    id: String,
    state: String,
    made: MadeServer,
}

/// The Debian image name pattern for this machine's architecture (the agents run the control
/// plane's own binary, so the servers must be of its architecture).
pub fn debian_image_pattern() -> String {
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    format!("debian-12-{arch}-*")
}

/// An EC2 error code as a [`ProviderError`]: `what` says what was being done.
pub fn classify(code: &str, message: &str, what: &str, endpoint: &str) -> ProviderError {
    match code {
        "AuthFailure"
        | "UnauthorizedOperation"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "OptInRequired" => ProviderError::BadCredentials(format!(
            "EC2 answered {code} ({message}): give the provider an access key (access_key_id, secret_access_key) of a user allowed to run, describe and terminate instances"
        )),
        c if c == "InstanceLimitExceeded"
            || c.ends_with("LimitExceeded")
            || c == "InsufficientInstanceCapacity" =>
        {
            ProviderError::Exhausted(format!(
                "EC2 refused to {what}: {code}: {message}; delete instances, pick another size or region, or ask AWS to raise the quota"
            ))
        }
        "RequestLimitExceeded" | "Throttling" => ProviderError::Exhausted(format!(
            "EC2 is throttling this account's requests ({message}): wait a minute and try again"
        )),
        _ => ProviderError::Remote {
            address: endpoint.to_string(),
            what: what.to_string(),
            detail: format!("{code}: {message}"),
        },
    }
}

impl AwsDriver {
    pub fn new(s: AwsSettings) -> Result<Self> {
        if s.access_key_id.trim().is_empty() || s.secret_access_key.trim().is_empty() {
            return Err(ProviderError::Invalid(
                "an aws provider needs the secrets access_key_id and secret_access_key".into(),
            ));
        }
        if let Some(e) = &s.endpoint
            && !(e.starts_with("https://") || e.starts_with("http://"))
        {
            return Err(ProviderError::Invalid(format!(
                "the endpoint {e:?} must be an http:// or https:// URL"
            )));
        }
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        Ok(Self { s, http })
    }

    fn endpoint(&self, region: &str) -> String {
        self.s
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://ec2.{region}.amazonaws.com"))
    }

    /// An EC2 client of `region` with the provider's credentials and endpoint.
    pub fn client(&self, region: &str) -> ec2::Client {
        let creds = ec2::config::Credentials::new(
            self.s.access_key_id.trim(),
            self.s.secret_access_key.trim(),
            None,
            None,
            "widemesh-provider",
        );
        let mut conf = ec2::Config::builder()
            .behavior_version(ec2::config::BehaviorVersion::latest())
            .region(ec2::config::Region::new(region.to_string()))
            .credentials_provider(creds)
            .http_client(self.http.clone());
        if let Some(e) = &self.s.endpoint {
            conf = conf.endpoint_url(e.trim_end_matches('/'));
        }
        ec2::Client::from_conf(conf.build())
    }

    fn error<E, R>(&self, e: SdkError<E, R>, what: &str, region: &str) -> ProviderError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        let endpoint = self.endpoint(region);
        match &e {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                ProviderError::Unreachable {
                    address: endpoint,
                    why: DisplayErrorContext(&e).to_string(),
                }
            }
            _ => match e.code() {
                Some(code) => classify(code, e.message().unwrap_or(""), what, &endpoint),
                None => ProviderError::Remote {
                    address: endpoint,
                    what: what.to_string(),
                    detail: DisplayErrorContext(&e).to_string(),
                },
            },
        }
    }

    /// The account's regions.
    async fn regions(&self) -> Result<Vec<String>> {
        let out = self
            .client(HOME_REGION)
            .describe_regions()
            .send()
            .await
            .map_err(|e| self.error(e, "list regions", HOME_REGION))?;
        let mut names: Vec<String> = out
            .regions()
            .iter()
            .filter_map(|r| r.region_name().map(String::from))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Refuses a size EC2 does not have in `region`.
    async fn check_size(&self, c: &ec2::Client, region: &str, size: &str) -> Result<()> {
        let unknown = || ProviderError::UnknownSize {
            size: size.to_string(),
            hint: format!(
                "give an EC2 instance type offered in {region}, such as t3.small or m7i.large"
            ),
        };
        match c
            .describe_instance_types()
            .instance_types(InstanceType::from(size))
            .send()
            .await
        {
            Ok(out) if out.instance_types().is_empty() => Err(unknown()),
            Ok(_) => Ok(()),
            Err(e) => match e.code() {
                Some("InvalidInstanceType" | "InvalidParameterValue") => Err(unknown()),
                _ => Err(self.error(e, "check the instance type", region)),
            },
        }
    }

    /// The AMI to boot in `region`: the provider's, or the newest Debian 12 of Debian's account.
    async fn image(&self, c: &ec2::Client, region: &str) -> Result<String> {
        if let Some(i) = &self.s.image {
            return Ok(i.clone());
        }
        let out = c
            .describe_images()
            .owners(DEBIAN_OWNER)
            .filters(
                Filter::builder()
                    .name("name")
                    .values(debian_image_pattern())
                    .build(),
            )
            .filters(Filter::builder().name("state").values("available").build())
            .send()
            .await
            .map_err(|e| self.error(e, "find a Debian 12 image", region))?;
        out.images()
            .iter()
            .filter(|i| i.image_id().is_some())
            .max_by(|a, b| a.creation_date().cmp(&b.creation_date()))
            .and_then(|i| i.image_id().map(String::from))
            .ok_or_else(|| {
                ProviderError::Invalid(format!(
                    "no Debian 12 image ({}) of Debian's account {DEBIAN_OWNER} in region {region}: give one with --secret image=ami-...",
                    debian_image_pattern()
                ))
            })
    }

    /// The made instances in `region`.
    async fn found_in(&self, region: &str, server: Option<&str>) -> Result<Vec<Found>> {
        let c = self.client(region);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..100 {
            let mut req = c
                .describe_instances()
                .filters(
                    Filter::builder()
                        .name("instance-state-name")
                        .set_values(Some(LIVE_STATES.iter().map(|s| s.to_string()).collect()))
                        .build(),
                )
                .filters(Filter::builder().name("tag-key").values(RACK_TAG).build())
                .set_next_token(token.clone());
            if let Some(s) = server {
                req = req.filters(
                    Filter::builder()
                        .name(format!("tag:{SERVER_TAG}"))
                        .values(s)
                        .build(),
                );
            }
            let page = req
                .send()
                .await
                .map_err(|e| self.error(e, "list instances", region))?;
            for r in page.reservations() {
                for i in r.instances() {
                    let tag = |k: &str| {
                        i.tags()
                            .iter()
                            .find(|t| t.key() == Some(k))
                            .and_then(|t| t.value())
                            .map(String::from)
                    };
                    let (Some(rack), Some(name), Some(id)) =
                        (tag(RACK_TAG), tag(SERVER_TAG), i.instance_id())
                    else {
                        continue;
                    };
                    let host = i
                        .public_ip_address()
                        .or(i.private_ip_address())
                        .unwrap_or("")
                        .to_string();
                    out.push(Found {
                        region: region.to_string(),
                        id: id.to_string(),
                        state: i
                            .state()
                            .and_then(|s| s.name())
                            .map(|n| n.as_str().to_string())
                            .unwrap_or_default(),
                        made: MadeServer {
                            dir: agent_dir(DEFAULT_ROOT, &rack, &name).unwrap_or_default(),
                            name,
                            rack,
                            address: host.clone(),
                            host,
                            net: None,
                        },
                    });
                }
            }
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(String::from);
            if token.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// The made instances in every region, asked at once.
    async fn found(&self, server: Option<&str>) -> Result<Vec<Found>> {
        let mut set = tokio::task::JoinSet::new();
        for region in self.regions().await? {
            let me = AwsDriver {
                s: self.s.clone(),
                http: self.http.clone(),
            };
            let server = server.map(String::from);
            set.spawn(async move { me.found_in(&region, server.as_deref()).await });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            let found = r.map_err(|e| ProviderError::Invalid(format!("listing failed: {e}")))??;
            out.extend(found);
        }
        out.sort_by(|a, b| a.made.name.cmp(&b.made.name));
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Driver for AwsDriver {
    async fn create(&self, req: &CreateServer) -> Result<MadeServer> {
        let b = &req.bootstrap;
        let region = req.region.as_str();
        let dir = agent_dir(&b.root, &b.rack, &req.name)?;
        let user_data = cloudinit::for_server(b, &req.name)?;
        let regions = self.regions().await?;
        if !regions.iter().any(|r| r == region) {
            return Err(ProviderError::UnknownRegion {
                region: region.to_string(),
                hint: format!("EC2's regions for this account are {}", regions.join(", ")),
            });
        }
        let c = self.client(region);
        self.check_size(&c, region, &req.size).await?;
        let image = self.image(&c, region).await?;
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        let what = format!("run instance {}", req.name);
        let out = c
            .run_instances()
            .image_id(&image)
            .instance_type(InstanceType::from(req.size.as_str()))
            .min_count(1)
            .max_count(1)
            .user_data(base64::engine::general_purpose::STANDARD.encode(&user_data))
            // The user data holds the rack's join token: the metadata service answers only
            // with a session token (IMDSv2), whose answer goes one hop, so instances behind
            // the agent's NAT cannot read it.
            .metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_tokens(HttpTokensState::Required)
                    .http_put_response_hop_limit(1)
                    .build(),
            )
            .set_subnet_id(self.s.subnet.clone())
            .set_security_group_ids(self.s.security_group.clone().map(|g| vec![g]))
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .tags(tag(RACK_TAG, &b.rack))
                    .tags(tag(SERVER_TAG, &req.name))
                    .tags(tag("Name", &req.name))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| match e.code() {
                Some("InvalidParameterValue")
                    if e.message().unwrap_or("").contains("instance type") =>
                {
                    ProviderError::UnknownSize {
                        size: req.size.clone(),
                        hint: e.message().unwrap_or("").to_string(),
                    }
                }
                _ => self.error(e, &what, region),
            })?;
        let i = out
            .instances()
            .first()
            .ok_or_else(|| ProviderError::Remote {
                address: self.endpoint(region),
                what: what.clone(),
                detail: "EC2 answered with no instance".into(),
            })?;
        let host = i
            .public_ip_address()
            .or(i.private_ip_address())
            .unwrap_or("")
            .to_string();
        tracing::info!(server = %req.name, region, instance = ?i.instance_id(), %image, "made an EC2 instance");
        Ok(MadeServer {
            name: req.name.clone(),
            rack: b.rack.clone(),
            address: host.clone(),
            host,
            dir,
            net: None,
        })
    }

    async fn list(&self) -> Result<Vec<MadeServer>> {
        Ok(self
            .found(None)
            .await?
            .into_iter()
            .map(|f| f.made)
            .collect())
    }

    async fn delete(&self, name: &str) -> Result<()> {
        let found = self.found(Some(name)).await?;
        if found.is_empty() {
            return Err(ProviderError::NotFound(name.to_string()));
        }
        for f in found {
            self.client(&f.region)
                .terminate_instances()
                .instance_ids(&f.id)
                .send()
                .await
                .map_err(|e| self.error(e, &format!("terminate instance {}", f.id), &f.region))?;
        }
        Ok(())
    }

    async fn wait_reachable(&self, address: &str, limit: Duration) -> Result<()> {
        let start = Instant::now();
        let host = address.split(':').next().unwrap_or(address);
        // First the instance runs, then its address answers.
        loop {
            let found = self.found(None).await?;
            match found.iter().find(|f| f.made.host == host) {
                Some(f) if f.state == "running" => break,
                Some(_) => {}
                None => {
                    return Err(ProviderError::Unreachable {
                        address: address.to_string(),
                        why: "no instance made by this provider has this address".into(),
                    });
                }
            }
            if start.elapsed() >= limit {
                return Err(ProviderError::Unreachable {
                    address: address.to_string(),
                    why: format!("the instance is not running after {}s", limit.as_secs()),
                });
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        crate::tcp_wait(address, 22, limit.saturating_sub(start.elapsed())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec2_error_codes_say_what_to_fix() {
        let e = classify("AuthFailure", "bad key", "run", "e");
        assert!(matches!(e, ProviderError::BadCredentials(_)), "{e}");
        let e = classify("UnauthorizedOperation", "no", "run", "e");
        assert!(matches!(e, ProviderError::BadCredentials(_)), "{e}");
        let e = classify("InstanceLimitExceeded", "max 20", "run instance a-1", "e");
        let text = e.to_string();
        assert!(matches!(e, ProviderError::Exhausted(_)));
        assert!(text.contains("max 20") && text.contains("quota"), "{text}");
        let e = classify("VcpuLimitExceeded", "vcpus", "run", "e");
        assert!(matches!(e, ProviderError::Exhausted(_)));
        let e = classify("Whatever", "m", "run", "http://x");
        assert!(matches!(e, ProviderError::Remote { .. }));
    }

    #[test]
    fn secrets_are_needed_and_not_shown() {
        assert!(AwsDriver::new(AwsSettings::default()).is_err());
        let s = AwsSettings {
            access_key_id: "AKIA".into(),
            secret_access_key: "hidden".into(),
            ..Default::default()
        };
        assert!(!format!("{s:?}").contains("hidden"));
        let bad = AwsSettings {
            endpoint: Some("localhost:5000".into()),
            ..s
        };
        assert!(AwsDriver::new(bad).is_err());
        assert!(debian_image_pattern().starts_with("debian-12-"));
    }
}
