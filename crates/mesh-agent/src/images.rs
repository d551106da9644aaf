//! Images as instances need them: the built-in ones, made once per server, and built or imported
//! ones, whose layers are fetched from the control plane by digest, checked, unpacked once and
//! shared by every instance (and every image) that uses them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use mesh_runtime::{BaseImageOptions, ImageRef as RootFs};
use mesh_types::desired::{BuiltImage, ImageRef};
use tokio::sync::{Mutex, OnceCell};

/// Where layers come from: the control plane's blob route.
#[async_trait]
pub trait BlobSource: Send + Sync {
    /// Writes the blob named `digest` to `dest`; the caller checks the digest.
    async fn fetch(&self, digest: &str, dest: &Path) -> Result<(), String>;
}

#[derive(Default)]
pub struct Images {
    dir: PathBuf,
    ready: Mutex<HashMap<String, Arc<OnceCell<RootFs>>>>,
    layers: Mutex<HashMap<String, Arc<OnceCell<PathBuf>>>>,
    blobs: Option<Arc<dyn BlobSource>>,
}

impl Images {
    pub fn new(dir: PathBuf, blobs: Option<Arc<dyn BlobSource>>) -> Self {
        Self {
            dir,
            ready: Mutex::new(HashMap::new()),
            layers: Mutex::new(HashMap::new()),
            blobs,
        }
    }

    /// The layers of an image, making or fetching them first if needed.
    pub async fn get(&self, image: &ImageRef) -> Result<RootFs, String> {
        match image {
            ImageRef::Builtin { name } => self.builtin(name).await,
            ImageRef::Built(built) => self.built(built).await,
        }
    }

    async fn builtin(&self, name: &str) -> Result<RootFs, String> {
        let cell = self
            .ready
            .lock()
            .await
            .entry(name.to_string())
            .or_default()
            .clone();
        let dest = self.dir.join(name);
        cell.get_or_try_init(|| async {
            let made = match name {
                "busybox" => mesh_runtime::busybox_image(&dest).await,
                "debian" => mesh_runtime::base_image(&dest, &BaseImageOptions::default()).await,
                other => return Err(format!("image {other:?} is unknown to this agent")),
            };
            made.map_err(|e| format!("image {name}: {e}"))
        })
        .await
        .cloned()
    }

    async fn built(&self, image: &BuiltImage) -> Result<RootFs, String> {
        let mut layers = Vec::new();
        if let Some(base) = &image.base {
            layers.extend(self.builtin(base).await?.layers);
        }
        for digest in &image.layers {
            layers.push(self.layer(digest).await?);
        }
        if layers.is_empty() {
            return Err(format!("image {} has no layers", image.digest));
        }
        let c = &image.config;
        let default: Vec<String> = c.entrypoint.iter().chain(&c.cmd).cloned().collect();
        Ok(RootFs {
            layers,
            default_command: (!default.is_empty()).then_some(default),
            workdir: c.workdir.clone(),
        })
    }

    /// The unpacked layer named `digest`, fetched and unpacked on first use.
    async fn layer(&self, digest: &str) -> Result<PathBuf, String> {
        let hex = mesh_build::blobs::digest_hex(digest)
            .ok_or_else(|| format!("layer {digest:?} is not a sha256 digest"))?
            .to_string();
        let cell = self
            .layers
            .lock()
            .await
            .entry(hex.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            let dest = self.dir.join("layers").join(&hex);
            if dest.is_dir() {
                return Ok(dest);
            }
            let blobs = self.blobs.as_ref().ok_or_else(|| {
                format!("layer {digest}: this agent has nowhere to fetch layers from")
            })?;
            let dir = self.dir.join("downloads");
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let blob = dir.join(format!("{hex}.{}", std::process::id()));
            let fetched = blobs.fetch(digest, &blob).await;
            let result = match fetched {
                Ok(()) => check_and_unpack(&blob, digest, &dest).await,
                Err(e) => Err(format!("fetching layer {digest}: {e}")),
            };
            let _ = std::fs::remove_file(&blob);
            result.map(|()| dest)
        })
        .await
        .cloned()
    }
}

async fn check_and_unpack(blob: &Path, digest: &str, dest: &Path) -> Result<(), String> {
    let (blob, digest, dest) = (blob.to_path_buf(), digest.to_string(), dest.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::open(&blob).map_err(|e| e.to_string())?;
        let actual = {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            std::io::copy(&mut f, &mut h).map_err(|e| e.to_string())?;
            format!("sha256:{}", hex::encode(h.finalize()))
        };
        if actual != digest {
            return Err(format!("layer {digest} arrived as {actual}: refused"));
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        mesh_build::layer::unpack_layer(&blob, &dest)
            .map(|_| ())
            .map_err(|e| format!("unpacking layer {digest}: {e}"))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// The command and variables an instance of `image` runs with: the image's variables under the
/// service's, and the command started in the image's working directory after sourcing its
/// profile scripts (as the Heroku buildpack interface's `.profile.d`).
pub fn shape(
    image: &ImageRef,
    command: Option<String>,
    env: &BTreeMap<String, String>,
) -> (Option<String>, BTreeMap<String, String>) {
    let ImageRef::Built(built) = image else {
        return (command.map(|c| exec_form(&c)), env.clone());
    };
    let c = &built.config;
    let mut vars = c.env.clone();
    vars.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(dir) = &c.workdir {
        vars.entry("HOME".into()).or_insert_with(|| dir.clone());
    }
    let command = command.map(|cmd| match &c.profile_dir {
        Some(dir) => format!(
            "for f in {}/*.sh; do [ -r \"$f\" ] && . \"$f\"; done; {}",
            quote(dir),
            exec_form(&cmd)
        ),
        None => exec_form(&cmd),
    });
    (command, vars)
}

/// The command so that its process replaces the shell: a simple command gets `exec` (dash does
/// not do it by itself), so SIGTERM reaches the app and it can finish its requests; anything
/// with shell operators runs under a shell as written.
fn exec_form(cmd: &str) -> String {
    let t = cmd.trim();
    let first = t.split_whitespace().next().unwrap_or("");
    let compound = t.contains(['&', '|', ';', '\n', '(', '`'])
        || first.contains('=')
        || SHELL_WORDS.contains(&first);
    if compound {
        t.to_string()
    } else {
        format!("exec {t}")
    }
}

/// Shell keywords and builtins that are no program to `exec`.
const SHELL_WORDS: [&str; 30] = [
    "exec", "exit", "cd", "export", "set", "unset", "eval", ".", "source", "trap", "ulimit",
    "umask", "wait", "read", "shift", "return", "break", "continue", "readonly", "alias", "if",
    "for", "while", "until", "case", "{", "!", "[", "[[", "test",
];

/// `s` as one single-quoted shell word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_types::desired::ImageConfig;

    #[test]
    fn built_images_source_their_profile_and_lend_their_variables() {
        let image = ImageRef::Built(BuiltImage {
            digest: "sha256:00".into(),
            base: Some("debian".into()),
            layers: vec![],
            config: ImageConfig {
                env: BTreeMap::from([
                    ("PATH".into(), "/app/bin:/bin".into()),
                    ("A".into(), "image".into()),
                ]),
                workdir: Some("/app".into()),
                profile_dir: Some("/app/.profile.d".into()),
                ..ImageConfig::default()
            },
        });
        let env = BTreeMap::from([("A".into(), "service".into())]);
        let (cmd, vars) = shape(&image, Some("echo 'hi' && run".into()), &env);
        assert_eq!(vars["A"], "service");
        assert_eq!(vars["PATH"], "/app/bin:/bin");
        assert_eq!(vars["HOME"], "/app");
        assert_eq!(
            cmd.unwrap(),
            "for f in '/app/.profile.d'/*.sh; do [ -r \"$f\" ] && . \"$f\"; done; echo 'hi' && run"
        );
        let (cmd, _) = shape(&image, Some("node server.js".into()), &env);
        assert!(cmd.unwrap().ends_with("; exec node server.js"));
        let builtin = ImageRef::Builtin {
            name: "busybox".into(),
        };
        assert_eq!(shape(&builtin, None, &env), (None, env.clone()));
        assert_eq!(
            shape(&builtin, Some("httpd -f -p $PORT".into()), &env)
                .0
                .unwrap(),
            "exec httpd -f -p $PORT"
        );
        assert_eq!(exec_form("A=1 run"), "A=1 run");
        assert_eq!(exec_form("a | b"), "a | b");
        assert_eq!(exec_form("exit 3"), "exit 3");
    }
}
