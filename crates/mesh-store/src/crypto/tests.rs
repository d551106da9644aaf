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

fn owner(env: &str, stack: &str, service: Option<&str>, key: &str) -> Owner {
    Owner::config(env, stack, service, None, None, key)
}

#[test]
fn owner_encoding_is_length_prefixed_and_marks_absent_parts() {
    let o = Owner::config("shop", "app", None, Some("eu"), None, "K");
    let mut want = b"widemesh sealed value v2".to_vec();
    want.extend_from_slice(b"\x01\x00\x00\x00\x15widemesh config value");
    want.extend_from_slice(b"\x01\x00\x00\x00\x04shop");
    want.extend_from_slice(b"\x01\x00\x00\x00\x03app");
    want.push(0); // no service
    want.extend_from_slice(b"\x01\x00\x00\x00\x02eu");
    want.push(0); // no rack
    want.extend_from_slice(b"\x01\x00\x00\x00\x01K");
    assert_eq!(o.bytes(), want.as_slice());
}

#[test]
fn different_owners_never_encode_alike() {
    // Moving bytes between neighbouring parts, between scope parts, or from absent to empty
    // changes the encoding.
    let owners = [
        owner("ab", "c", None, "K"),
        owner("a", "bc", None, "K"),
        owner("shop", "app", Some("web"), "K"),
        owner("shop", "app", None, "K"),
        owner("shop", "app", Some(""), "K"),
        Owner::config("shop", "app", None, Some("web"), None, "K"),
        Owner::config("shop", "app", None, None, Some("web"), "K"),
        owner("shop", "app", None, "K2"),
        owner("shop", "app2", None, "K"),
        owner("shop2", "app", None, "K"),
        Owner::new(Purpose::ProviderSecret)
            .part(Some("shop"))
            .part(Some("app")),
    ];
    for (i, a) in owners.iter().enumerate() {
        for b in &owners[i + 1..] {
            assert_ne!(a.bytes(), b.bytes(), "{a:?} encodes like {b:?}");
        }
    }
}

#[test]
fn bound_values_open_only_for_their_owner() {
    let k = key(3);
    let mine = owner("shop", "app", None, "SECRET");
    let sealed = k.seal_str_for(&mine, "s3cret").unwrap();
    assert_eq!(sealed[0], FORMAT_V2);
    assert_eq!(
        sealed.len(),
        1 + KEY_ID_LEN + NONCE_LEN + "s3cret".len() + 16
    );
    assert_eq!(k.open_str_for(&mine, &sealed).unwrap(), "s3cret");
    assert_ne!(sealed, k.seal_str_for(&mine, "s3cret").unwrap());
    // Any other owner: another environment, stack, scope or key.
    for other in [
        owner("bank", "app", None, "SECRET"),
        owner("shop", "api", None, "SECRET"),
        owner("shop", "app", Some("web"), "SECRET"),
        Owner::config("shop", "app", None, Some("eu"), None, "SECRET"),
        Owner::config("shop", "app", None, None, Some("local"), "SECRET"),
        owner("shop", "app", None, "OTHER"),
    ] {
        assert_eq!(
            k.open_str_for(&other, &sealed),
            Err(OpenError::OtherOwner),
            "{other:?}"
        );
    }
    // A damaged tag reads like another owner's value: the key is right, the tag is not.
    let mut damaged = sealed.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    assert_eq!(k.open_str_for(&mine, &damaged), Err(OpenError::OtherOwner));
}

#[test]
fn bound_values_tell_a_wrong_key_and_the_old_format_apart() {
    let mine = owner("shop", "app", None, "SECRET");
    let sealed = key(3).seal_str_for(&mine, "v").unwrap();
    assert_eq!(
        key(4).open_str_for(&mine, &sealed),
        Err(OpenError::WrongKey)
    );
    assert_eq!(
        key(3).open_str_for(&mine, &sealed[..20]),
        Err(OpenError::WrongKey)
    );
    assert_eq!(key(3).open_str_for(&mine, &[]), Err(OpenError::WrongKey));
    let v1 = key(3).seal_str(Purpose::Config, "v").unwrap();
    assert!(MasterKey::is_format_v1(&v1));
    assert!(!MasterKey::is_format_v1(&sealed));
    assert_eq!(key(3).open_str_for(&mine, &v1), Err(OpenError::Unbound));
    // A format-2 value is not a format-1 value either.
    assert!(matches!(
        key(3).open_str(Purpose::Config, &sealed),
        Err(StoreError::Crypto)
    ));
    // The key id names the key and nothing else.
    assert_ne!(key(3).id(), key(4).id());
    assert_eq!(key(3).id(), key(3).id());
}
