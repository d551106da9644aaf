use super::*;

fn key(byte: u8) -> MasterKey {
    MasterKey::from_bytes([byte; KEY_LEN])
}

#[test]
fn sealed_values_open_with_the_same_key_and_purpose() {
    let k = key(7);
    let sealed = k.seal_str(Purpose::Config, "s3cret").unwrap();
    assert_eq!(sealed[0], FORMAT_V1);
    assert_eq!(sealed.len(), 1 + NONCE_LEN + "s3cret".len() + 16);
    assert_eq!(k.open_str(Purpose::Config, &sealed).unwrap(), "s3cret");
    // Random nonces: the same value never seals to the same bytes.
    assert_ne!(sealed, k.seal_str(Purpose::Config, "s3cret").unwrap());
}

#[test]
fn wrong_key_purpose_or_damage_is_a_crypto_error() {
    let sealed = key(1).seal_str(Purpose::Config, "value").unwrap();
    let fails = |r: StoreResult<String>| matches!(r, Err(StoreError::Crypto));
    assert!(fails(key(2).open_str(Purpose::Config, &sealed)));
    assert!(fails(key(1).open_str(Purpose::CertificateKey, &sealed)));
    let mut damaged = sealed.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    assert!(fails(key(1).open_str(Purpose::Config, &damaged)));
    assert!(fails(key(1).open_str(Purpose::Config, &sealed[..10])));
    let mut other_version = sealed;
    other_version[0] = 2;
    assert!(fails(key(1).open_str(Purpose::Config, &other_version)));
}

#[test]
fn key_file_is_created_private_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let a = MasterKey::load_or_create(&path).unwrap();
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), KEY_LEN as u64);
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let b = MasterKey::load_or_create(&path).unwrap();
    assert_eq!(a.0, b.0);
    // Only the key file is left behind, no temporary file.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn key_file_of_the_wrong_length_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    fs::write(&path, b"too short").unwrap();
    let e = MasterKey::load_or_create(&path).unwrap_err().to_string();
    assert!(e.contains("holds 9 bytes"), "{e}");
    assert!(e.contains("exactly 32"), "{e}");
    assert_eq!(fs::read(&path).unwrap(), b"too short");
}

#[test]
fn debug_does_not_show_the_key() {
    assert_eq!(format!("{:?}", key(9)), "MasterKey(..)");
}
