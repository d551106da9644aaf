//! The source archive unpacker on untrusted tar bytes (gzipped here unless they already are):
//! never a panic, and nothing left beside the destination whatever the verdict.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_build::archive::{Limits, unpack};
use mesh_fuzz::{check_leftovers, gzipped};

fuzz_target!(|data: &[u8]| {
    let bytes = gzipped(data);
    let dir = tempfile::Builder::new()
        .prefix("mesh-fuzz-archive-")
        .tempdir()
        .expect("scratch dir");
    let limits = Limits {
        max_archive_bytes: 1 << 20,
        max_unpacked_bytes: 4 << 20,
        max_files: 256,
    };
    let result = unpack(&bytes, &dir.path().join("dest"), &limits);
    if let Ok(stats) = &result {
        assert!(stats.bytes <= limits.max_unpacked_bytes);
        assert!(stats.files + stats.dirs + stats.symlinks <= limits.max_files);
    }
    check_leftovers(dir.path(), result.is_ok(), &[]);
});
