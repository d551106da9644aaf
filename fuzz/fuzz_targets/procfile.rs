//! The Procfile parser: never a panic; what it accepts has sane names and commands.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_build::Procfile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(procfile) = Procfile::parse(text) else {
        return;
    };
    for e in &procfile.entries {
        assert!(!e.command.trim().is_empty(), "empty command for {}", e.name);
        assert!(!e.command.contains('\n'), "multi-line command");
    }
    let _ = (
        procfile.web(),
        procfile.release(),
        procfile.services().count(),
    );
});
