//! Docker archives (`docker save`): `manifest.json` naming a config file and layer tars.

use serde::Deserialize;

use super::source::Source;
use super::store::{Expect, store_layer, verify};
use super::{ConfigFile, OciError};
use crate::blobs::BlobDir;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    layers: Vec<String>,
}

pub(super) fn import(
    source: &Source,
    blobs: &BlobDir,
) -> Result<(Vec<String>, ConfigFile), OciError> {
    let entries: Vec<Entry> = serde_json::from_slice(&source.read_small("manifest.json")?)
        .map_err(|e| OciError::malformed("manifest.json", e))?;
    // Several images: the first is imported (see the module docs).
    let entry = entries
        .into_iter()
        .next()
        .ok_or_else(|| OciError::malformed("manifest.json", "it lists no image"))?;
    let bytes = source.read_small(&entry.config)?;
    // `docker save` names the config by its digest: check it when it does.
    if let Some(hex) = entry.config.strip_suffix(".json")
        && hex.len() == 64
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        verify(&entry.config, &format!("sha256:{hex}"), &bytes)?;
    }
    let config = ConfigFile::parse(&bytes)?;
    let diff_ids = config.diff_ids();
    if !diff_ids.is_empty() && diff_ids.len() != entry.layers.len() {
        return Err(OciError::malformed(
            "the image",
            format!(
                "its config lists {} layers, its manifest {}",
                diff_ids.len(),
                entry.layers.len()
            ),
        ));
    }
    let mut layers = Vec::new();
    for (i, name) in entry.layers.iter().enumerate() {
        let (reader, _) = source.open_file(name)?;
        let expect = Expect {
            stored: None,
            uncompressed: diff_ids.get(i).cloned(),
        };
        layers.push(store_layer(reader, name, &expect, blobs)?);
    }
    Ok((layers, config))
}
