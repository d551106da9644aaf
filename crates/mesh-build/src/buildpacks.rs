//! The built-in buildpacks: shell scripts that follow the Heroku buildpack interface
//! (`bin/detect BUILD_DIR`, `bin/compile BUILD_DIR CACHE_DIR ENV_DIR`, `bin/release BUILD_DIR`),
//! embedded in the binary, and the Debian bookworm packages each needs as its runtime.
//!
//! The build pipeline installs [`runtime_packages`] into a cached layer over the base image,
//! writes the buildpack with [`write_builtin`], runs `bin/compile /app /cache /env` in a
//! container and reads `bin/release`'s answer with [`parse_release`]. Only `/app` is kept, so
//! every script installs dependencies under `/app` and writes what processes need at run time
//! (PATH and such) to `/app/.profile.d/*.sh`. [`crate::detect_buildpack`] picks the same
//! buildpack and the same default web command without starting anything.

mod release;

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub use release::{ReleaseError, parse_release};

/// One built-in buildpack: its name, runtime packages and scripts.
struct Builtin {
    name: &'static str,
    packages: &'static [&'static str],
    detect: &'static str,
    compile: &'static str,
    release: &'static str,
}

macro_rules! builtin {
    ($name:literal, $packages:expr) => {
        Builtin {
            name: $name,
            packages: $packages,
            detect: include_str!(concat!("buildpacks/", $name, "/bin/detect")),
            compile: include_str!(concat!("buildpacks/", $name, "/bin/compile")),
            release: include_str!(concat!("buildpacks/", $name, "/bin/release")),
        }
    };
}

/// In detection priority order; [`crate::detect`] keeps the same order.
const BUILTINS: [Builtin; 8] = [
    builtin!("nodejs", &["nodejs", "npm", "ca-certificates"]),
    // The venv module brings pip into the virtualenv, so python3-pip is not needed.
    builtin!("python", &["python3", "python3-venv"]),
    builtin!("ruby", &["ruby", "ruby-bundler", "ca-certificates"]),
    builtin!("go", &["golang-go", "ca-certificates"]),
    // Composer fetches dist archives with unzip when PHP's zip extension is missing.
    builtin!("php", &["php-cli", "composer", "unzip", "ca-certificates"]),
    // The JDK, not only the JRE: the wrappers and plain .java sources compile at build time.
    builtin!("java", &["default-jdk-headless"]),
    builtin!("rust", &["cargo", "rustc", "ca-certificates"]),
    builtin!("static", &["busybox"]),
];

/// Helpers every buildpack carries in its `lib/`, sourced by its scripts.
const LIB: [(&str, &str); 6] = [
    ("common.sh", include_str!("buildpacks/lib/common.sh")),
    ("go.sh", include_str!("buildpacks/lib/go.sh")),
    ("java.sh", include_str!("buildpacks/lib/java.sh")),
    ("php.sh", include_str!("buildpacks/lib/php.sh")),
    ("rust.sh", include_str!("buildpacks/lib/rust.sh")),
    ("static.sh", include_str!("buildpacks/lib/static.sh")),
];

const NAMES: [&str; 8] = {
    let mut names = [""; 8];
    let mut i = 0;
    while i < BUILTINS.len() {
        names[i] = BUILTINS[i].name;
        i += 1;
    }
    names
};

fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// The built-in buildpacks' names, in detection priority order.
pub fn builtin_names() -> &'static [&'static str] {
    &NAMES
}

/// Whether `name` is a built-in buildpack.
pub fn is_builtin(name: &str) -> bool {
    builtin(name).is_some()
}

/// The Debian bookworm packages the buildpack's build and its app's processes need, to install
/// with `apt-get install --no-install-recommends`. Empty for an unknown name.
pub fn runtime_packages(name: &str) -> &'static [&'static str] {
    builtin(name).map_or(&[], |b| b.packages)
}

/// Writes the built-in buildpack `name` into `dest` (created if missing): `bin/detect`,
/// `bin/compile` and `bin/release` with mode 0755, and the shared helpers in `lib/`.
pub fn write_builtin(name: &str, dest: &Path) -> io::Result<()> {
    let b = builtin(name).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no built-in buildpack named {name:?}"),
        )
    })?;
    let bin = dest.join("bin");
    let lib = dest.join("lib");
    fs::create_dir_all(&bin)?;
    fs::create_dir_all(&lib)?;
    for (script, text) in [
        ("detect", b.detect),
        ("compile", b.compile),
        ("release", b.release),
    ] {
        let path = bin.join(script);
        fs::write(&path, text)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
    }
    for (file, text) in LIB {
        let path = lib.join(file);
        fs::write(&path, text)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
