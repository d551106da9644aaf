//! API tokens: random secrets shown once, stored only as SHA-256 hashes.

use sha2::{Digest, Sha256};

/// Every token starts with this, so leaked tokens are easy to find by scanners.
pub const PREFIX: &str = "mesh_";

/// A new random token: `mesh_` and 32 random bytes in hex.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    // The OS random source failing is unrecoverable and must not yield a weak token.
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    format!("{PREFIX}{}", hex::encode(bytes))
}

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (super::generate(), super::generate());
        assert_ne!(a, b);
        assert!(a.starts_with("mesh_") && a.len() == 5 + 64);
        assert_eq!(super::hash(&a).len(), 64);
        assert_ne!(super::hash(&a), a);
    }
}
