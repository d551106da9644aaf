# The Rust buildpack's naming, shared by its scripts.

# The package name from Cargo.toml's [package] table; empty for a virtual workspace.
rust_package_name() {
  sed -n '/^\[package\]/,/^\[/s/^[[:space:]]*name[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' Cargo.toml | head -n1
}

# The binary the web process runs: the package's own (src/main.rs, or already built), else the
# only binary bin/compile built.
rust_web_binary() {
  name=$(rust_package_name)
  if [ -n "$name" ] && { [ -f src/main.rs ] || [ -f "bin/$name" ]; }; then
    echo "$name"
  elif [ -d bin ] && [ "$(find bin -mindepth 1 -maxdepth 1 -type f | wc -l)" -eq 1 ]; then
    basename "$(find bin -mindepth 1 -maxdepth 1 -type f)"
  fi
}
