//! Privileged tests of the native runtime: real runc, namespaces, cgroups (v1 here), overlayfs,
//! bridges and nftables. They need root and the programs of `scripts/install-runtime-deps`.
//!
//! Every test owns a [`support::Fixture`] with names nobody else uses (interface prefix, nft
//! table, cgroup parent, subnets: from a per-test slot and the process id, so parallel tests
//! and parallel runs do not clash); dropping it removes everything the runtime made, even
//! after a panic. Tests end by asserting that nothing is left.

mod privileged {
    pub mod support;

    mod base_image;
    mod forward;
    mod fs;
    mod host_overlap;
    mod lifecycle;
    mod limits;
    mod net;
    mod run;
    mod security;
    mod teardown;
}
