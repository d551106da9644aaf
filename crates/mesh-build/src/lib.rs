//! Formulas: how a deployment's source becomes something the platform can run.
//!
//! This crate is pure: it reads and writes local files but starts no containers and opens no
//! sockets, so the CLI (packing), the server (unpacking, formula choice) and the builder can all
//! share it and it can be tested without privileges.
//!
//! - [`archive`]: the source archive the CLI uploads and the builder unpacks.
//! - [`procfile`]: process types declared by the app.
//! - [`detect`]: which formula a deployment uses and which built-in buildpack fits the source.
//! - [`distribution`] and [`base_layer`]: built images as the OCI distribution API serves them,
//!   the built-in bases packed as layers.
//! - [`untar`]: the one hardened tar reader behind source archives, layers, buildpack tarballs
//!   and image archives.

pub mod agent_image;
pub mod archive;
pub mod base_layer;
pub mod blobs;
pub mod builder;
pub mod buildpacks;
pub mod detect;
pub mod distribution;
pub mod dockerfile;
pub mod external;
pub mod image;
pub mod layer;
pub mod local;
pub mod oci;
pub mod procfile;
pub mod untar;

pub use archive::{ArchiveError, Limits, PackedSource, UnpackStats, pack, unpack};
pub use blobs::{BlobDir, digest_of};
pub use buildpacks::{builtin_names, parse_release, runtime_packages, write_builtin};
pub use detect::{Buildpack, DetectError, choose_formula, detect_buildpack};
pub use dockerfile::{DockerfileBuild, DockerfileError, build_dockerfile, declared_args};
pub use external::{ExternalError, fetch_external, validate_buildpack_spec};
pub use layer::{LayerError, LayerStats, PackOptions, UnpackLimits, pack_layer, unpack_layer};
pub use oci::{OciError, import_archive};
pub use procfile::{ProcessKind, Procfile, ProcfileEntry, ProcfileError};
