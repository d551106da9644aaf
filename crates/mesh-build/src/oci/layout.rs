//! OCI image layouts: `oci-layout`, `index.json`, `blobs/<alg>/<hex>`.

use std::io::Read;

use serde::Deserialize;

use super::source::Source;
use super::store::{Expect, store_layer, verify};
use super::{ConfigFile, OciError};
use crate::blobs::BlobDir;

/// Nested indexes followed at most.
const MAX_DEPTH: usize = 4;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
}

#[derive(Debug, Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

fn blob_name(digest: &str) -> Result<String, OciError> {
    match digest.split_once(':') {
        Some(("sha256", hex)) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(format!("blobs/sha256/{hex}"))
        }
        _ => Err(OciError::Unsupported(format!(
            "digest {digest:?}: only sha256 digests are supported"
        ))),
    }
}

fn read_blob(source: &Source, digest: &str) -> Result<Vec<u8>, OciError> {
    let name = blob_name(digest)?;
    let bytes = source.read_small(&name).map_err(|e| match e {
        OciError::Missing(_) => OciError::Missing(format!("blob {digest}")),
        e => e,
    })?;
    verify(&name, digest, &bytes)?;
    Ok(bytes)
}

fn is_index(media_type: &str) -> bool {
    media_type.contains("image.index") || media_type.contains("manifest.list")
}

pub(super) fn import(
    source: &Source,
    blobs: &BlobDir,
) -> Result<(Vec<String>, ConfigFile), OciError> {
    let mut index: Index = serde_json::from_slice(&source.read_small("index.json")?)
        .map_err(|e| OciError::malformed("index.json", e))?;
    let mut depth = 0;
    let manifest = loop {
        // Several images: the first is imported (see the module docs).
        let first = index
            .manifests
            .into_iter()
            .next()
            .ok_or_else(|| OciError::malformed("index.json", "it lists no image"))?;
        let bytes = read_blob(source, &first.digest)?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| OciError::malformed("the image manifest", e))?;
        let nested = is_index(&first.media_type)
            || v.get("manifests").is_some()
            || v["mediaType"].as_str().is_some_and(is_index);
        if !nested {
            break serde_json::from_value::<Manifest>(v)
                .map_err(|e| OciError::malformed("the image manifest", e))?;
        }
        depth += 1;
        if depth > MAX_DEPTH {
            return Err(OciError::malformed(
                "index.json",
                "image indexes nest too deep",
            ));
        }
        index = serde_json::from_value(v).map_err(|e| OciError::malformed("an image index", e))?;
    };
    let config = ConfigFile::parse(&read_blob(source, &manifest.config.digest)?)?;
    let mut layers = Vec::new();
    for l in &manifest.layers {
        let name = blob_name(&l.digest)?;
        let (reader, _): (Box<dyn Read>, u64) = source.open_file(&name).map_err(|e| match e {
            OciError::Missing(_) => OciError::Missing(format!("layer blob {}", l.digest)),
            e => e,
        })?;
        let expect = Expect {
            stored: Some(l.digest.clone()),
            uncompressed: None,
        };
        layers.push(store_layer(reader, &name, &expect, blobs)?);
    }
    Ok((layers, config))
}
