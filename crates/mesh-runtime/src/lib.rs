//! The instance runtime of a Widemesh server: what the agent drives to run instances.
//!
//! [`Runtime`] is the contract; [`NativeRuntime`] implements it with `runc`, overlayfs, network
//! namespaces, Linux bridges and one nftables table; [`FakeRuntime`] is an in-memory stand-in
//! for the agent's unit tests.
//!
//! How an instance comes to life ([`NativeRuntime::create`]):
//! 1. an address from the environment's [`ipam`] (or the one the spec asks for);
//! 2. a state directory `<root>/instances/<id>/` ([`state`]) holding the spec, the generated
//!    `hosts`, `resolv.conf` and `hostname` files ([`hosts_file`]), the writable layer
//!    (`upper`, `work`) and the bundle, whose `rootfs` is an overlay of the image layers;
//! 3. a network namespace with a veth on the environment's bridge, its MAC derived from the
//!    address ([`network`], [`names`]);
//! 4. the bundle's `config.json` ([`oci`]): the command under `/bin/sh -c`, the size's limits as
//!    cgroupfs resources, a non-root user without capabilities, masked paths;
//! 5. a small detached monitor, the shim ([`shim`]), which runs `runc run --detach`, becomes the
//!    container's reaper and records its exit status and whether the kernel OOM-killed it.
//!
//! Every OS edge goes through [`host::CommandRunner`] (the `ip`, `nft` and `runc` programs, the
//! shim) and [`host::Sys`] (mounts, cgroup directories), each with a recording fake, so the
//! logic above is unit-tested without root; `tests/privileged.rs` runs it for real.

pub mod build;
pub mod cgroup;
pub mod error;
pub mod fake;
pub mod host;
pub mod hostnet;
pub mod hosts_file;
pub mod image;
pub mod ipam;
pub mod logs;
pub mod names;
pub mod native;
pub mod network;
pub mod nft;
pub mod oci;
pub mod pool;
pub mod runc;
pub mod runtime;
pub mod shim;
pub mod spec;
pub mod state;
pub mod subnet;
pub mod sweep;

pub use error::{Error, Result};
pub use fake::FakeRuntime;
pub use image::{BaseImageOptions, base_image, busybox_image};
pub use native::{NativeRuntime, RuntimeOptions, WritableLayer};
pub use nix::sys::signal::Signal;
pub use runtime::Runtime;
pub use spec::{
    ExecOutput, ExitStatus, HostEntry, ImageRef, InstanceHandle, InstanceSpec, InstanceState,
    LogPaths, NetworkInfo, NetworkSpec, Status, User,
};
pub use subnet::Ipv4Net;
