//! A built image as the OCI distribution API serves it: an OCI image manifest and image config
//! generated from a [`BuiltImage`], deterministically (the same image gives the same bytes, so
//! the same digests, on every control plane and after every restart).
//!
//! - The config (`application/vnd.oci.image.config.v1+json`) carries the image's entrypoint,
//!   cmd, env and working directory, the control plane's OS and architecture, and `rootfs.diff_ids`:
//!   the digests of the layers' *uncompressed* tars, found by reading each layer once.
//! - The manifest (`application/vnd.oci.image.manifest.v1+json`) names the config and the layers
//!   as the blob store holds them: gzip'd tars (`...tar+gzip`), or plain tars (`...tar`), told
//!   apart by their first bytes; a layer's digest and size are its blob's.
//! - An image on a built-in base (`debian`, `busybox`) lists that base's layer first, as
//!   [`crate::base_layer`] packs it from the control plane's own copy of the base (native agents
//!   make theirs, and never fetch it), then the image's layers; its diff id comes first in
//!   `rootfs.diff_ids` too. Such a manifest is as deterministic as the base: control planes
//!   with the same base (the same Debian debootstrap, the same busybox) give the same bytes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};

use mesh_types::desired::{BUILTIN_IMAGES, BuiltImage};
use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::blobs::{BlobDir, digest_of};

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_GZIP_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const LAYER_TAR_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
/// Label carrying [`ImageConfig::profile_dir`](mesh_types::desired::ImageConfig::profile_dir).
pub const PROFILE_DIR_LABEL: &str = "dev.widemesh.profile-dir";

#[derive(Debug, Error)]
pub enum DistributionError {
    #[error(
        "image {image} is built on {base:?}, which is not a built-in base (they are busybox \
         and debian), so it cannot be served; deploy it again"
    )]
    UnknownBase { image: String, base: String },
    #[error(
        "image {image} is built on the built-in base {base:?}, whose layer was not made (a bug: \
         the registry makes it before the manifest)"
    )]
    BaseLayerMissing { image: String, base: String },
    #[error("layer {digest} of image {image} is not in the blob store")]
    MissingLayer { image: String, digest: String },
    #[error("layer {digest}: {source}")]
    Io { digest: String, source: io::Error },
}

/// A layer as a manifest names it and a config counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    pub digest: String,
    pub size: u64,
    pub media_type: &'static str,
    /// `sha256:<hex>` of the uncompressed tar.
    pub diff_id: String,
}

/// An image's manifest and config, with their digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distributed {
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub layers: Vec<LayerInfo>,
}

impl Distributed {
    /// Whether `digest` names a blob of this image (a layer or the config).
    pub fn has_blob(&self, digest: &str) -> bool {
        self.config_digest == digest || self.layers.iter().any(|l| l.digest == digest)
    }
}

/// The OCI architecture name of the machine this runs on.
pub fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Reads layer `digest` from `blobs` once: size, media type and diff id.
pub fn layer_info(
    blobs: &BlobDir,
    image: &str,
    digest: &str,
) -> Result<LayerInfo, DistributionError> {
    let io_err = |source| DistributionError::Io {
        digest: digest.to_string(),
        source,
    };
    let path = blobs.path(digest).filter(|p| p.is_file()).ok_or_else(|| {
        DistributionError::MissingLayer {
            image: image.to_string(),
            digest: digest.to_string(),
        }
    })?;
    let mut file = File::open(&path).map_err(io_err)?;
    let size = file.metadata().map_err(io_err)?.len();
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic).map_err(io_err)?;
    let gzip = n == 2 && magic == [0x1f, 0x8b];
    let file = File::open(&path).map_err(io_err)?;
    let mut hasher = Sha256::new();
    let mut reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(LayerInfo {
        digest: digest.to_string(),
        size,
        media_type: if gzip {
            LAYER_GZIP_MEDIA_TYPE
        } else {
            LAYER_TAR_MEDIA_TYPE
        },
        diff_id: format!("sha256:{}", hex::encode(hasher.finalize())),
    })
}

#[derive(Serialize)]
struct ConfigDoc<'a> {
    architecture: &'a str,
    os: &'a str,
    config: RunConfig<'a>,
    rootfs: RootFs<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    entrypoint: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cmd: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    env: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    working_dir: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
struct RootFs<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    diff_ids: Vec<&'a str>,
}

/// The image config's bytes: compact JSON, fields in a fixed order, env sorted by name.
pub fn config_bytes(image: &BuiltImage, layers: &[LayerInfo], arch: &str) -> Vec<u8> {
    let c = &image.config;
    let mut labels = BTreeMap::new();
    if let Some(dir) = &c.profile_dir {
        labels.insert(PROFILE_DIR_LABEL, dir.as_str());
    }
    let doc = ConfigDoc {
        architecture: arch,
        os: "linux",
        config: RunConfig {
            entrypoint: (!c.entrypoint.is_empty()).then_some(c.entrypoint.as_slice()),
            cmd: (!c.cmd.is_empty()).then_some(c.cmd.as_slice()),
            env: c.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            working_dir: c.workdir.as_deref(),
            labels,
        },
        rootfs: RootFs {
            kind: "layers",
            diff_ids: layers.iter().map(|l| l.diff_id.as_str()).collect(),
        },
    };
    serde_json::to_vec(&doc).expect("a config serializes")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestDoc<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: Descriptor<'a>,
    layers: Vec<Descriptor<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor<'a> {
    media_type: &'a str,
    digest: &'a str,
    size: u64,
}

/// The image manifest's bytes for a config and layers.
pub fn manifest_bytes(config: &[u8], config_digest: &str, layers: &[LayerInfo]) -> Vec<u8> {
    let doc = ManifestDoc {
        schema_version: 2,
        media_type: MANIFEST_MEDIA_TYPE,
        config: Descriptor {
            media_type: CONFIG_MEDIA_TYPE,
            digest: config_digest,
            size: config.len() as u64,
        },
        layers: layers
            .iter()
            .map(|l| Descriptor {
                media_type: l.media_type,
                digest: &l.digest,
                size: l.size,
            })
            .collect(),
    };
    serde_json::to_vec(&doc).expect("a manifest serializes")
}

/// The built-in base `image` is on, if any, checked to be one the control plane can make.
pub fn builtin_base(image: &BuiltImage) -> Result<Option<&str>, DistributionError> {
    match image.base.as_deref() {
        Some(base) if !BUILTIN_IMAGES.contains(&base) => Err(DistributionError::UnknownBase {
            image: image.digest.clone(),
            base: base.to_string(),
        }),
        base => Ok(base),
    }
}

/// The manifest and config of `image`, reading its layers from `blobs` (blocking I/O). `base`
/// is the layer of the built-in base the image is on ([`crate::base_layer::base_layer`]);
/// it is needed when the image has one and ignored when it has none.
pub fn distribute(
    blobs: &BlobDir,
    image: &BuiltImage,
    base: Option<&LayerInfo>,
) -> Result<Distributed, DistributionError> {
    let mut layers = Vec::with_capacity(image.layers.len() + 1);
    if let Some(name) = builtin_base(image)? {
        let base = base.ok_or_else(|| DistributionError::BaseLayerMissing {
            image: image.digest.clone(),
            base: name.to_string(),
        })?;
        layers.push(base.clone());
    }
    for d in &image.layers {
        layers.push(layer_info(blobs, &image.digest, d)?);
    }
    let config = config_bytes(image, &layers, oci_arch());
    let config_digest = digest_of(&config);
    let manifest = manifest_bytes(&config, &config_digest, &layers);
    Ok(Distributed {
        manifest_digest: digest_of(&manifest),
        manifest,
        config,
        config_digest,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use mesh_types::desired::ImageConfig;

    use super::*;
    use crate::image::seal;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn image(blobs: &BlobDir) -> (BuiltImage, Vec<u8>, Vec<u8>) {
        let tar_a = b"pretend tar a".repeat(100);
        let tar_b = b"pretend tar b".to_vec();
        let a = blobs.put_bytes(&gzip(&tar_a)).unwrap();
        let b = blobs.put_bytes(&tar_b).unwrap();
        let config = ImageConfig {
            entrypoint: vec!["/bin/sh".into(), "-c".into()],
            cmd: vec!["exec web".into()],
            env: [("PATH".into(), "/bin".into()), ("A".into(), "1=2".into())].into(),
            workdir: Some("/app".into()),
            profile_dir: Some("/app/.profile.d".into()),
        };
        (seal(None, vec![a, b], config), tar_a, tar_b)
    }

    #[test]
    fn manifest_and_config_follow_the_image_and_never_change() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::new(dir.path());
        let (img, tar_a, tar_b) = image(&blobs);
        let d = distribute(&blobs, &img, None).unwrap();
        assert_eq!(
            d,
            distribute(&blobs, &img, None).unwrap(),
            "not deterministic"
        );
        assert_eq!(d.manifest_digest, digest_of(&d.manifest));
        assert_eq!(d.config_digest, digest_of(&d.config));

        let m: serde_json::Value = serde_json::from_slice(&d.manifest).unwrap();
        assert_eq!(m["schemaVersion"], 2);
        assert_eq!(m["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(m["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        assert_eq!(m["config"]["digest"], d.config_digest.as_str());
        assert_eq!(m["config"]["size"], d.config.len());
        let layers = m["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0]["mediaType"], LAYER_GZIP_MEDIA_TYPE);
        assert_eq!(layers[0]["digest"], img.layers[0].as_str());
        assert_eq!(layers[0]["size"], blobs.read(&img.layers[0]).unwrap().len());
        assert_eq!(layers[1]["mediaType"], LAYER_TAR_MEDIA_TYPE);
        assert_eq!(layers[1]["digest"], img.layers[1].as_str());

        let c: serde_json::Value = serde_json::from_slice(&d.config).unwrap();
        assert_eq!(c["os"], "linux");
        assert_eq!(c["architecture"], oci_arch());
        assert_eq!(
            c["config"]["Entrypoint"],
            serde_json::json!(["/bin/sh", "-c"])
        );
        assert_eq!(c["config"]["Cmd"], serde_json::json!(["exec web"]));
        assert_eq!(
            c["config"]["Env"],
            serde_json::json!(["A=1=2", "PATH=/bin"])
        );
        assert_eq!(c["config"]["WorkingDir"], "/app");
        assert_eq!(c["config"]["Labels"][PROFILE_DIR_LABEL], "/app/.profile.d");
        assert_eq!(c["rootfs"]["type"], "layers");
        // diff_ids are the uncompressed tars' digests.
        assert_eq!(
            c["rootfs"]["diff_ids"],
            serde_json::json!([digest_of(&tar_a), digest_of(&tar_b)])
        );
        assert!(d.has_blob(&d.config_digest) && d.has_blob(&img.layers[1]));
        assert!(!d.has_blob(&d.manifest_digest) && !d.has_blob(&img.digest));
    }

    #[test]
    fn an_empty_config_leaves_its_fields_out() {
        let img = seal(None, vec![], ImageConfig::default());
        let bytes = config_bytes(&img, &[], "amd64");
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#
        );
    }

    #[test]
    fn an_image_on_a_builtin_base_lists_the_base_layer_first() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::new(dir.path());
        let base_tar = b"pretend base tar".repeat(50);
        let base_digest = blobs.put_bytes(&gzip(&base_tar)).unwrap();
        let base = layer_info(&blobs, "base busybox", &base_digest).unwrap();
        assert_eq!(base.diff_id, digest_of(&base_tar));
        let (plain, tar_a, tar_b) = image(&blobs);
        let img = seal(
            Some("busybox".into()),
            plain.layers.clone(),
            plain.config.clone(),
        );
        let d = distribute(&blobs, &img, Some(&base)).unwrap();
        assert_eq!(d, distribute(&blobs, &img, Some(&base)).unwrap());
        let m: serde_json::Value = serde_json::from_slice(&d.manifest).unwrap();
        let layers = m["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 3);
        assert_eq!(layers[0]["digest"], base_digest.as_str());
        assert_eq!(layers[0]["mediaType"], LAYER_GZIP_MEDIA_TYPE);
        assert_eq!(layers[0]["size"], base.size);
        assert_eq!(layers[1]["digest"], img.layers[0].as_str());
        let c: serde_json::Value = serde_json::from_slice(&d.config).unwrap();
        assert_eq!(
            c["rootfs"]["diff_ids"],
            serde_json::json!([digest_of(&base_tar), digest_of(&tar_a), digest_of(&tar_b)])
        );
        assert!(d.has_blob(&base_digest));
        // The same layers without the base are another manifest.
        let without = distribute(&blobs, &plain, Some(&base)).unwrap();
        assert_eq!(
            without.layers.len(),
            2,
            "a base given to an image without one is ignored"
        );
        assert_ne!(without.manifest_digest, d.manifest_digest);
    }

    #[test]
    fn unknown_bases_missing_base_layers_and_missing_layers_are_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::new(dir.path());
        let img = seal(Some("alpine".into()), vec![], ImageConfig::default());
        let e = distribute(&blobs, &img, None).unwrap_err().to_string();
        assert!(
            e.contains("\"alpine\", which is not a built-in base") && e.contains("busybox"),
            "{e}"
        );
        let img = seal(Some("debian".into()), vec![], ImageConfig::default());
        assert_eq!(builtin_base(&img).unwrap(), Some("debian"));
        let e = distribute(&blobs, &img, None).unwrap_err().to_string();
        assert!(
            e.contains("built-in base \"debian\", whose layer was not made"),
            "{e}"
        );
        let gone = format!("sha256:{}", "0".repeat(64));
        let img = seal(None, vec![gone.clone()], ImageConfig::default());
        let e = distribute(&blobs, &img, None).unwrap_err().to_string();
        assert!(
            e.contains(&gone) && e.contains("not in the blob store"),
            "{e}"
        );
    }
}
