//! A builder without containers: the image is the built-in busybox image plus one layer holding
//! the source at `/app` (owned by the instances' user), and the processes are the Procfile's. It fails, as a real build would,
//! when the source has a file named `FAIL_BUILD`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use mesh_types::desired::ImageConfig;
use tokio::sync::mpsc::UnboundedSender;

use super::{BuildFailure, BuildJob, BuildOutput, Builder};
use crate::blobs::BlobDir;
use crate::procfile::Procfile;

#[derive(Debug, Clone)]
pub struct FakeBuilder {
    blobs: BlobDir,
}

impl FakeBuilder {
    pub fn new(blobs: BlobDir) -> Self {
        Self { blobs }
    }
}

#[async_trait]
impl Builder for FakeBuilder {
    async fn build(
        &self,
        job: &BuildJob,
        lines: UnboundedSender<String>,
    ) -> Result<BuildOutput, BuildFailure> {
        let _ = lines.send(format!(
            "-----> fake build of {} {}",
            job.stack, job.version
        ));
        if job.source.join("FAIL_BUILD").exists() {
            let _ = lines.send("error: FAIL_BUILD is present".into());
            return Err(BuildFailure(
                "the build failed: FAIL_BUILD is present".into(),
            ));
        }
        let procfile =
            Procfile::read(&job.source).map_err(|e| BuildFailure(format!("Procfile: {e}")))?;
        let processes: BTreeMap<String, String> = procfile
            .map(|p| {
                p.entries
                    .iter()
                    .map(|e| (e.name.to_string(), e.command.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let opts = crate::layer::PackOptions {
            prefix: Some("app".into()),
            owner: Some((65534, 65534)),
            ..Default::default()
        };
        let layer = crate::layer::pack_layer(&job.source, &opts, &self.blobs)
            .map_err(|e| BuildFailure(format!("packing the source: {e}")))?;
        let _ = lines.send(format!("-----> layer {layer}"));
        let config = ImageConfig {
            workdir: Some("/app".into()),
            ..ImageConfig::default()
        };
        Ok(BuildOutput {
            image: crate::image::seal(Some("busybox".into()), vec![layer], config),
            processes,
        })
    }
}
