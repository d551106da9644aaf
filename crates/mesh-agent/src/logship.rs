//! Ships instances' output to the control plane. Output files are the buffer: the agent reads
//! from the last position the control plane acknowledged, so nothing is lost while it is down
//! and, since every line carries its position, nothing is duplicated when it is resent.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use mesh_types::agent::{LogLine, LogStream};
use mesh_types::{Name, UnixMs};

/// The most read from one file per pass, so one noisy instance cannot starve the others.
const MAX_READ: u64 = 1024 * 1024;
/// Longest line kept whole; longer ones are cut (and the rest goes on the next line).
const MAX_LINE: usize = 16 * 1024;

/// Which instance and stream a file belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub environment: Name,
    pub stack: Name,
    pub service: Name,
    pub instance: String,
    pub stream: LogStream,
    pub path: PathBuf,
}

impl Source {
    fn key(&self) -> String {
        format!("{}/{:?}", self.instance, self.stream)
    }
}

/// Acknowledged positions, persisted.
pub struct Offsets {
    path: PathBuf,
    acked: BTreeMap<String, u64>,
}

impl Offsets {
    pub fn open(dir: &Path) -> Self {
        let path = dir.join("log-offsets.json");
        let acked = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self { path, acked }
    }

    pub fn get(&self, s: &Source) -> u64 {
        self.acked.get(&s.key()).copied().unwrap_or(0)
    }

    pub fn set(&mut self, s: &Source, offset: u64) {
        self.acked.insert(s.key(), offset);
    }

    /// Forgets instances that are gone.
    pub fn retain(&mut self, live: &[Source]) {
        let keys: std::collections::HashSet<String> = live.iter().map(Source::key).collect();
        self.acked.retain(|k, _| keys.contains(k));
    }

    pub fn save(&self) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec(&self.acked).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, &self.path)
    }
}

/// Complete lines of `source` after `from`, each with the position just past it.
pub fn read_lines(source: &Source, from: u64, now: UnixMs) -> std::io::Result<Vec<LogLine>> {
    let mut f = match std::fs::File::open(&source.path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    // A file shorter than what was acknowledged was replaced (the instance was recreated).
    let from = if len < from { 0 } else { from };
    f.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::new();
    f.take(MAX_READ).read_to_end(&mut buf)?;
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut pos = from;
    while start < buf.len() {
        let rest = &buf[start..];
        let end = match rest.iter().position(|b| *b == b'\n') {
            Some(i) if i <= MAX_LINE => i + 1,
            // No newline within a long stretch: cut it so one line cannot block the file.
            _ if rest.len() > MAX_LINE => MAX_LINE,
            _ => break,
        };
        let text = String::from_utf8_lossy(&rest[..end])
            .trim_end_matches(['\n', '\r'])
            .to_string();
        pos += end as u64;
        start += end;
        out.push(LogLine {
            at: now,
            environment: source.environment.clone(),
            stack: source.stack.clone(),
            service: source.service.clone(),
            instance: source.instance.clone(),
            stream: source.stream,
            text,
            offset: pos,
            rack: None,
        });
    }
    Ok(out)
}

/// Lines per batch sent to the control plane.
const BATCH: usize = 20_000;
/// Bytes per batch, as JSON, roughly: the control plane reads at most 16 MiB at once.
const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// JSON around one line's text and instance id, roughly.
const LINE_JSON: usize = 160;
const EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Ships new output of every instance every half second until `shutdown`.
pub async fn run(
    agent: std::sync::Arc<crate::agent::Agent>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut offsets = Offsets::open(agent.data_dir());
    let mut behind = false;
    loop {
        // While output is waiting, send the next batch at once; otherwise look twice a second.
        if !behind {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
        } else if *shutdown.borrow() {
            return;
        }
        behind = false;
        let sources = agent.state().log_sources.clone();
        let now = crate::agent::now_ms();
        let mut batch = Vec::new();
        let mut upto: Vec<(usize, u64)> = Vec::new();
        // A file read up to the per-pass cap may hold more.
        let mut lines_pending = false;
        let mut bytes = 0usize;
        for (i, s) in sources.iter().enumerate() {
            if batch.len() >= BATCH || bytes >= BATCH_BYTES {
                break;
            }
            match read_lines(s, offsets.get(s), now) {
                Ok(lines) if !lines.is_empty() => {
                    // Take what fits the batch; the rest waits for the next one.
                    let available = lines.len();
                    let room_lines = BATCH.saturating_sub(batch.len());
                    let mut take = 0;
                    for l in lines.iter().take(room_lines) {
                        if bytes >= BATCH_BYTES {
                            break;
                        }
                        bytes += l.text.len() + l.instance.len() + LINE_JSON;
                        take += 1;
                    }
                    let lines: Vec<LogLine> = lines.into_iter().take(take.max(1)).collect();
                    let last = lines.last().map(|l| l.offset).unwrap_or(0);
                    lines_pending |= last - offsets.get(s) + MAX_LINE as u64 >= MAX_READ
                        || take.max(1) < available;
                    upto.push((i, last));
                    batch.extend(lines);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(path = %s.path.display(), error = %e, "cannot read instance output")
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        let full = batch.len() >= BATCH || upto.len() < sources.len() && batch.len() >= BATCH / 2;
        match agent
            .gateway()
            .logs(&mesh_types::agent::LogBatch { lines: batch })
            .await
        {
            Ok(_) => {
                for (i, offset) in upto {
                    offsets.set(&sources[i], offset);
                }
                offsets.retain(&sources);
                if let Err(e) = offsets.save() {
                    tracing::warn!(error = %e, "cannot save log positions");
                }
                behind = full || lines_pending;
            }
            // Not acknowledged: the same lines go again next time; the control plane drops repeats.
            Err(e) => {
                tracing::warn!(error = %e, "instance output not delivered; it will be sent again")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn source(path: PathBuf) -> Source {
        let n = |s: &str| Name::parse(s).unwrap();
        Source {
            environment: n("shop"),
            stack: n("app"),
            service: n("web"),
            instance: "app-web-0".into(),
            stream: LogStream::Stdout,
            path,
        }
    }

    #[test]
    fn only_complete_lines_are_read_and_positions_resume() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdout");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(b"one\ntwo\nthr").unwrap();
        let s = source(path.clone());
        let lines = read_lines(&s, 0, 5).unwrap();
        assert_eq!(
            lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            ["one", "two"]
        );
        assert_eq!(lines[1].offset, 8);
        f.write_all(b"ee\n").unwrap();
        let more = read_lines(&s, 8, 6).unwrap();
        assert_eq!(more.len(), 1);
        assert_eq!((more[0].text.as_str(), more[0].offset), ("three", 14));

        let mut offsets = Offsets::open(dir.path());
        offsets.set(&s, 14);
        offsets.save().unwrap();
        assert_eq!(
            Offsets::open(dir.path()).get(&s),
            14,
            "positions survive a restart"
        );
        // The instance was recreated: its file starts over.
        std::fs::write(&path, b"new\n").unwrap();
        assert_eq!(read_lines(&s, 14, 7).unwrap()[0].text, "new");
    }
}
