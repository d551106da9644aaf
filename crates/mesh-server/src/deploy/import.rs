//! `mesh deploy --image`: an uploaded OCI or docker image archive becomes the deployment's
//! image, its layers stored as blobs agents fetch.

use std::path::Path;

use mesh_build::BlobDir;
use mesh_build::oci::OciError;
use mesh_types::desired::BuiltImage;

pub fn archive(path: &Path, blobs: &BlobDir) -> Result<BuiltImage, OciError> {
    mesh_build::oci::import_archive(path, blobs)
}
