//! `mesh-runtime-shim`: the per-instance monitor the native runtime starts; see
//! `mesh_runtime::shim` for what it does and why.

fn main() -> std::process::ExitCode {
    mesh_runtime::shim::main(std::env::args().skip(1))
}
