//! Naming a built image: its digest covers the base, the layers in order and the config, so two
//! builds that produce the same bytes name the same image and agents reuse what they fetched.

use mesh_types::desired::{BuiltImage, ImageConfig};

use crate::blobs::digest_of;

/// The image made of `base`, `layers` (blob digests, base first) and `config`, with its digest.
pub fn seal(base: Option<String>, layers: Vec<String>, config: ImageConfig) -> BuiltImage {
    let canonical = serde_json::json!({ "base": base, "layers": layers, "config": config });
    BuiltImage {
        digest: digest_of(canonical.to_string().as_bytes()),
        base,
        layers,
        config,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_follows_the_content() {
        let a = seal(
            Some("debian".into()),
            vec!["sha256:aa".into()],
            ImageConfig::default(),
        );
        let b = seal(
            Some("debian".into()),
            vec!["sha256:aa".into()],
            ImageConfig::default(),
        );
        let c = seal(None, vec!["sha256:aa".into()], ImageConfig::default());
        assert_eq!(a.digest, b.digest);
        assert_ne!(a.digest, c.digest);
        assert!(a.digest.starts_with("sha256:"));
    }
}
