//! The `ssh` driver: a pool of servers the user already has. Making a server takes a free one,
//! connects over SSH (host key trusted on first use, a changed key refused), installs the
//! control plane's own `mesh` binary in the agent's directory, writes the join token and the
//! supervisor, and starts it. Deleting a server stops the supervisor and the agent (SIGTERM,
//! waited for), removes the directory and gives the server back to the pool.
//!
//! The pool's state (which server is made, host keys seen) is a JSON file of the driver's own
//! next to the control plane's data, so it survives a restart. It is one control plane's: two
//! control planes sharing a database would each keep their own (noted in docs/providers.md).

use std::time::{Duration, Instant};

use russh::keys::PrivateKey;

use crate::bootstrap::{self, agent_dir, quote};
use crate::pool::{self, HostKeyCheck, PoolServer, PoolState, StateFile};
use crate::{CreateServer, Driver, MadeServer, ProviderError, Result};

mod session;
pub use session::{Output, Session};

/// How long one SSH step may take (connect, handshake, authenticate, a short command).
const STEP: Duration = Duration::from_secs(15);
/// How long uploading the `mesh` binary may take.
const UPLOAD: Duration = Duration::from_secs(300);
/// How long an agent gets to stop after SIGTERM before it is killed.
const STOP_WAIT_SECS: u32 = 30;

/// An ssh provider's settings: its pool and credentials.
#[derive(Debug, Clone)]
pub struct SshSettings {
    pub servers: Vec<PoolServer>,
    pub user: String,
    /// The private key in OpenSSH or PEM form (ed25519 or ECDSA).
    pub private_key: String,
    /// The driver's state file (made servers, host keys).
    pub state: std::path::PathBuf,
}

pub struct SshDriver {
    servers: Vec<PoolServer>,
    user: String,
    key: PrivateKey,
    state: StateFile,
    /// One change of the pool at a time in this process, shared by every driver on the same
    /// state file (a control plane makes one driver per request).
    lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for SshDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshDriver")
            .field("servers", &self.servers)
            .field("user", &self.user)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl SshDriver {
    pub fn new(settings: SshSettings) -> Result<Self> {
        if settings.servers.is_empty() {
            return Err(ProviderError::Invalid(
                "an ssh provider needs at least one server (--server HOST[:PORT])".into(),
            ));
        }
        let user = settings.user.trim().to_string();
        if user.is_empty()
            || !user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(ProviderError::Invalid(format!(
                "ssh user {user:?} is not a user name (the secret user, such as user=root)"
            )));
        }
        let key = russh::keys::decode_secret_key(&settings.private_key, None).map_err(|e| {
            ProviderError::BadCredentials(format!(
                "the secret private_key is not an unencrypted OpenSSH private key ({e}): give the file ssh-keygen wrote, such as ~/.ssh/id_ed25519"
            ))
        })?;
        Ok(Self {
            servers: settings.servers,
            user,
            key,
            lock: pool::lock_for(&settings.state),
            state: StateFile::new(settings.state),
        })
    }

    /// Connects to a pool server, checking its host key against the one remembered; remembers
    /// it on first contact.
    async fn connect(&self, address: &str) -> Result<Session> {
        let state = self.state.load()?;
        let expected = state.host_keys.get(address).cloned();
        let s = Session::connect(address, &self.user, &self.key, expected, STEP).await?;
        match pool::check_host_key(&state, address, &s.host_key) {
            HostKeyCheck::Known => {}
            HostKeyCheck::New => {
                tracing::info!(address, key = %s.host_key, "trusting the host key seen on first contact");
                let mut state = self.state.load()?;
                state
                    .host_keys
                    .insert(address.to_string(), s.host_key.clone());
                self.state.save(&state)?;
            }
            HostKeyCheck::Changed { expected } => {
                let got = s.host_key.clone();
                s.close().await;
                return Err(ProviderError::HostKeyChanged {
                    address: address.to_string(),
                    expected,
                    got,
                });
            }
        }
        Ok(s)
    }

    /// The pool's servers.
    pub fn servers(&self) -> &[PoolServer] {
        &self.servers
    }

    /// Connects to a pool server and logs in: its host key is remembered on first contact and
    /// must match afterwards, and the credentials must work. Returns the host key.
    pub async fn verify(&self, address: &str) -> Result<String> {
        let s = self.connect(address).await?;
        s.check("running a command", "true", STEP).await?;
        let key = s.host_key.clone();
        s.close().await;
        Ok(key)
    }

    /// Installs and starts the agent in `dir` over `s`.
    async fn install(
        &self,
        s: &Session,
        req: &CreateServer,
        server: &PoolServer,
        dir: &str,
    ) -> Result<()> {
        let b = &req.bootstrap;
        let d = quote(dir);
        s.check(
            "making the agent's directory",
            &format!(
                "if [ -e {d} ]; then echo \"{dir} already exists: a server of that name was made here before; remove it or choose another name\" >&2; exit 1; fi; umask 077 && mkdir -p {d}"
            ),
            STEP,
        )
        .await?;
        let binary = tokio::fs::File::open(&b.binary).await.map_err(|e| {
            ProviderError::Invalid(format!(
                "cannot read the mesh binary {} to install: {e}",
                b.binary.display()
            ))
        })?;
        let out = s
            .run(
                &format!("cat > {d}/mesh.part && chmod 0755 {d}/mesh.part && mv {d}/mesh.part {d}/mesh && {d}/mesh --version"),
                Some(binary),
                UPLOAD,
            )
            .await?;
        if !out.success() {
            return Err(ProviderError::Remote {
                address: s.address.clone(),
                what: "installing the mesh binary".into(),
                detail: format!(
                    "{} (the server must run Linux on the control plane's architecture)",
                    out.detail()
                ),
            });
        }
        let mut b = b.clone();
        if b.net.is_none() {
            b.net = server.net.clone();
        }
        let script = bootstrap::supervisor_script(&b, &req.name, server.host(), dir)?;
        self.write(s, &format!("{dir}/supervise.sh"), &script)
            .await?;
        self.write(s, &format!("{dir}/join-token"), &b.join_token)
            .await?;
        s.check(
            "starting the agent's supervisor",
            &bootstrap::start_command(dir),
            STEP,
        )
        .await?;
        // The supervisor writes its pid file first thing: wait (bounded) to see it running.
        let alive = format!(
            "i=0; while [ $i -lt 50 ]; do if [ -f {d}/supervisor.pid ] && kill -0 \"$(cat {d}/supervisor.pid)\" 2>/dev/null; then exit 0; fi; sleep 0.1; i=$((i+1)); done; exit 1"
        );
        s.check("checking that the supervisor runs", &alive, STEP)
            .await?;
        Ok(())
    }

    /// Writes a small file (mode 0600) through `sh -c` with the content quoted.
    async fn write(&self, s: &Session, path: &str, content: &str) -> Result<()> {
        s.check(
            &format!("writing {path}"),
            &format!(
                "umask 077 && printf '%s' {} > {}",
                quote(content),
                quote(path)
            ),
            STEP,
        )
        .await
        .map(|_| ())
    }

    async fn remove(&self, s: &Session, made: &MadeServer) -> Result<()> {
        let dir = made.dir.as_str();
        let out = s
            .run(
                &bootstrap::stop_command(dir, made.net.as_ref(), STOP_WAIT_SECS),
                None,
                Duration::from_secs(u64::from(STOP_WAIT_SECS) + 15),
            )
            .await?;
        if !out.success() {
            return Err(ProviderError::Remote {
                address: s.address.clone(),
                what: "stopping the agent".into(),
                detail: out.detail(),
            });
        }
        if !out.stderr.trim().is_empty() {
            tracing::warn!(address = %s.address, dir, "{}", out.stderr.trim());
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Driver for SshDriver {
    async fn create(&self, req: &CreateServer) -> Result<MadeServer> {
        if req.bootstrap.kube.is_some() {
            return Err(ProviderError::Invalid(
                "the servers of a Kubernetes rack are made by cloud providers (aws, hetzner) only: an ssh pool runs native racks".into(),
            ));
        }
        let _one = self.lock.lock().await;
        let state = self.state.load()?;
        let server =
            pool::pick_free(&self.servers, &state, &req.bootstrap.rack, &req.name)?.clone();
        let dir = agent_dir(&req.bootstrap.root, &req.bootstrap.rack, &req.name)?;
        let made = MadeServer {
            name: req.name.clone(),
            rack: req.bootstrap.rack.clone(),
            address: server.address.clone(),
            host: server.host().to_string(),
            dir: dir.clone(),
            net: req.bootstrap.net.clone().or(server.net.clone()),
        };
        let s = self.connect(&server.address).await?;
        // Claimed before anything is made, so a crash half way leaves a server that `delete`
        // cleans, never one handed out twice.
        let mut state = self.state.load()?;
        state.made.insert(server.address.clone(), made.clone());
        self.state.save(&state)?;
        if let Err(e) = self.install(&s, req, &server, &dir).await {
            // Only a directory this attempt made is removed: an existing one is reported.
            if !matches!(&e, ProviderError::Remote { what, .. } if what == "making the agent's directory")
                && let Err(clean) = self.remove(&s, &made).await
            {
                tracing::warn!(address = %server.address, "cleaning up after a failed install: {clean}");
            }
            let mut state = self.state.load()?;
            state.made.remove(&server.address);
            self.state.save(&state)?;
            s.close().await;
            return Err(e);
        }
        s.close().await;
        Ok(made)
    }

    async fn list(&self) -> Result<Vec<MadeServer>> {
        Ok(self.state.load()?.made.into_values().collect())
    }

    async fn delete(&self, name: &str) -> Result<()> {
        let _one = self.lock.lock().await;
        let state = self.state.load()?;
        let made = pool::find_made(&state, name)?.clone();
        let s = self.connect(&made.address).await?;
        let removed = self.remove(&s, &made).await;
        s.close().await;
        removed?;
        let mut state: PoolState = self.state.load()?;
        state.made.remove(&made.address);
        self.state.save(&state)
    }

    async fn wait_reachable(&self, address: &str, limit: Duration) -> Result<()> {
        use tokio::io::AsyncReadExt;
        let deadline = Instant::now() + limit;
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = async {
                let mut s = tokio::net::TcpStream::connect(address).await?;
                let mut banner = [0u8; 4];
                s.read_exact(&mut banner).await?;
                Ok::<_, std::io::Error>(banner)
            };
            match tokio::time::timeout(left.min(STEP), attempt).await {
                Ok(Ok(b)) if &b == b"SSH-" => return Ok(()),
                Ok(Ok(_)) => last = "it answers, but not as an SSH server".into(),
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = "no answer".into(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(ProviderError::Unreachable {
            address: address.to_string(),
            why: format!("not within {}s ({last})", limit.as_secs()),
        })
    }
}
