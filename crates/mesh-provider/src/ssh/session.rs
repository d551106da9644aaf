//! One SSH connection to a pool server (russh): the host key checked against the one seen
//! before, public key authentication, commands with their output and exit code, and files
//! written through a command's standard input.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect};

use crate::{ProviderError, Result};

/// Most output kept from one command.
const MAX_OUTPUT: usize = 64 * 1024;

/// A server's key in OpenSSH form, without a comment.
fn openssh(key: &PublicKeyOrCertificate) -> Option<String> {
    match key {
        PublicKeyOrCertificate::PublicKey { key, .. } => {
            let mut k = key.clone();
            k.set_comment("");
            k.to_openssh().ok().map(|s| s.trim().to_string())
        }
        PublicKeyOrCertificate::Certificate(_) => None,
    }
}

struct Checker {
    expected: Option<String>,
    seen: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Checker {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> std::result::Result<bool, Self::Error> {
        let Some(presented) = openssh(key) else {
            return Ok(false);
        };
        let ok = self.expected.as_ref().is_none_or(|e| *e == presented);
        *self.seen.lock().expect("host key slot") = Some(presented);
        Ok(ok)
    }
}

/// What a command printed and how it ended.
#[derive(Debug, Default)]
pub struct Output {
    pub code: Option<u32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The last lines of stderr (else stdout), for an error message.
    pub fn detail(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let lines: Vec<&str> = text.trim().lines().collect();
        let tail = lines[lines.len().saturating_sub(5)..].join(" / ");
        match self.code {
            Some(c) => format!("exit code {c}: {tail}"),
            None => format!("no exit code: {tail}"),
        }
    }
}

pub struct Session {
    handle: client::Handle<Checker>,
    pub address: String,
    /// The host key the server presented, in OpenSSH form.
    pub host_key: String,
}

impl Session {
    /// Connects to `address` (`host:port`) as `user` with `key`. With `expected`, a server
    /// presenting another host key is refused; without, its key is returned to be remembered.
    pub async fn connect(
        address: &str,
        user: &str,
        key: &PrivateKey,
        expected: Option<String>,
        limit: Duration,
    ) -> Result<Session> {
        let unreachable = |why: String| ProviderError::Unreachable {
            address: address.to_string(),
            why,
        };
        let stream = match tokio::time::timeout(limit, tokio::net::TcpStream::connect(address))
            .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(unreachable(format!("cannot connect: {e}"))),
            Err(_) => {
                return Err(unreachable(format!(
                    "no answer within {}s: check the address and that sshd runs and is not firewalled",
                    limit.as_secs()
                )));
            }
        };
        let _ = stream.set_nodelay(true);
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(Duration::from_secs(60)),
            ..Default::default()
        });
        let seen = Arc::new(Mutex::new(None));
        let checker = Checker {
            expected: expected.clone(),
            seen: seen.clone(),
        };
        let connected =
            tokio::time::timeout(limit, client::connect_stream(config, stream, checker)).await;
        let presented = seen.lock().expect("host key slot").clone();
        let mut handle = match connected {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                if let (Some(expected), Some(got)) = (expected, presented)
                    && expected != got
                {
                    return Err(ProviderError::HostKeyChanged {
                        address: address.to_string(),
                        expected,
                        got,
                    });
                }
                return Err(unreachable(format!("the SSH handshake failed: {e}")));
            }
            Err(_) => {
                return Err(unreachable(format!(
                    "the SSH handshake took over {}s",
                    limit.as_secs()
                )));
            }
        };
        let host_key = presented.unwrap_or_default();
        let auth = tokio::time::timeout(
            limit,
            handle.authenticate_publickey(
                user,
                PrivateKeyWithHashAlg::new(Arc::new(key.clone()), None),
            ),
        )
        .await
        .map_err(|_| unreachable("authentication took too long".into()))?
        .map_err(|e| unreachable(format!("authentication failed: {e}")))?;
        if !auth.success() {
            return Err(ProviderError::BadCredentials(format!(
                "server {address} refused the private key for user {user:?}: add the key's public half to ~{user}/.ssh/authorized_keys on the server, or give the provider the right user and key"
            )));
        }
        Ok(Session {
            handle,
            address: address.to_string(),
            host_key,
        })
    }

    /// Runs `command` with `input` on its standard input (closed after), within `limit`.
    pub async fn run(
        &self,
        command: &str,
        input: Option<tokio::fs::File>,
        limit: Duration,
    ) -> Result<Output> {
        let remote = |detail: String| ProviderError::Remote {
            address: self.address.clone(),
            what: first_line(command),
            detail,
        };
        let work = async {
            let mut ch = self
                .handle
                .channel_open_session()
                .await
                .map_err(|e| remote(format!("cannot open a channel: {e}")))?;
            ch.exec(true, command)
                .await
                .map_err(|e| remote(format!("cannot run: {e}")))?;
            if let Some(f) = input {
                ch.data(f)
                    .await
                    .map_err(|e| remote(format!("cannot send the input: {e}")))?;
            }
            ch.eof()
                .await
                .map_err(|e| remote(format!("cannot close the input: {e}")))?;
            let mut out = Output::default();
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            while let Some(msg) = ch.wait().await {
                match msg {
                    ChannelMsg::Data { data } if stdout.len() < MAX_OUTPUT => {
                        stdout.extend_from_slice(&data)
                    }
                    ChannelMsg::ExtendedData { data, .. } if stderr.len() < MAX_OUTPUT => {
                        stderr.extend_from_slice(&data)
                    }
                    ChannelMsg::ExitStatus { exit_status } => out.code = Some(exit_status),
                    _ => {}
                }
            }
            out.stdout = String::from_utf8_lossy(&stdout).into_owned();
            out.stderr = String::from_utf8_lossy(&stderr).into_owned();
            Ok(out)
        };
        tokio::time::timeout(limit, work)
            .await
            .map_err(|_| remote(format!("no result within {}s", limit.as_secs())))?
    }

    /// Runs `command` and fails unless it exits 0; `what` names it in the error.
    pub async fn check(&self, what: &str, command: &str, limit: Duration) -> Result<Output> {
        let out = self.run(command, None, limit).await?;
        if out.success() {
            Ok(out)
        } else {
            Err(ProviderError::Remote {
                address: self.address.clone(),
                what: what.to_string(),
                detail: out.detail(),
            })
        }
    }

    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }
}

fn first_line(command: &str) -> String {
    let line = command.lines().next().unwrap_or("");
    line.chars().take(80).collect()
}
