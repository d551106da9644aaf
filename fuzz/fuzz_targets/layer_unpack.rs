//! The image layer unpacker on untrusted tar bytes (gzipped here unless they already are):
//! never a panic, within its limits, and nothing left beside the destination.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_build::layer::{UnpackLimits, unpack_layer_with};
use mesh_fuzz::{check_leftovers, gzipped};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::Builder::new()
        .prefix("mesh-fuzz-layer-")
        .tempdir()
        .expect("scratch dir");
    let blob = dir.path().join("blob");
    std::fs::write(&blob, gzipped(data)).expect("write the blob");
    let limits = UnpackLimits {
        max_bytes: 4 << 20,
        max_entries: 256,
    };
    let result = unpack_layer_with(&blob, &dir.path().join("dest"), &limits);
    if let Ok(stats) = &result {
        assert!(stats.bytes <= limits.max_bytes);
    }
    check_leftovers(dir.path(), result.is_ok(), &["blob"]);
});
