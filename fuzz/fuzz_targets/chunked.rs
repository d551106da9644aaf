//! The chunked scanner: however the body arrives split, the same data, the same end and the
//! same verdict. The first byte picks the piece size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_router::fuzzing::dechunk;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, body)) = data.split_first() else {
        return;
    };
    let whole = dechunk(body, body.len().max(1));
    let split = dechunk(body, usize::from(piece % 16) + 1);
    assert_eq!(whole, split, "verdict depends on how the body is split");
    if let Ok(d) = whole {
        assert!(d.used <= body.len());
        assert!(
            d.data.len() < d.used.max(1),
            "data is only part of what was used"
        );
        if !d.done {
            assert_eq!(
                d.used,
                body.len(),
                "stopped before the end without finishing"
            );
        }
    }
});
