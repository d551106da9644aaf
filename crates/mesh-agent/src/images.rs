//! The built-in images, made once per server and kept under the agent's data directory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use mesh_runtime::{BaseImageOptions, ImageRef as RootFs};
use mesh_types::desired::ImageRef;
use tokio::sync::{Mutex, OnceCell};

#[derive(Default)]
pub struct Images {
    dir: PathBuf,
    ready: Mutex<HashMap<String, Arc<OnceCell<RootFs>>>>,
}

impl Images {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            ready: Mutex::new(HashMap::new()),
        }
    }

    /// The layers of an image, making it first if needed (the Debian image takes a while).
    pub async fn get(&self, image: &ImageRef) -> Result<RootFs, String> {
        let name = match image {
            ImageRef::Builtin { name } => name,
            ImageRef::Built(built) => {
                return Err(format!("image {}: built images are not fetched yet", built.digest));
            }
        };
        let cell = self
            .ready
            .lock()
            .await
            .entry(name.clone())
            .or_default()
            .clone();
        let dest = self.dir.join(name);
        cell.get_or_try_init(|| async {
            let made = match name.as_str() {
                "busybox" => mesh_runtime::busybox_image(&dest).await,
                "debian" => mesh_runtime::base_image(&dest, &BaseImageOptions::default()).await,
                other => return Err(format!("image {other:?} is unknown to this agent")),
            };
            made.map_err(|e| format!("image {name}: {e}"))
        })
        .await
        .cloned()
    }
}
