//! Recording fakes of [`CommandRunner`] and [`Sys`]: they do nothing but remember, in one
//! shared [`Recorder`], what was asked and in which order, and answer from scripted rules.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::{Cmd, CmdOutput, CommandRunner, Sys};
use crate::shim::{ShimArgs, ShimCommand, ShimReport};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The ordered log of what the fakes were asked to do, one line per call:
/// `run: <command line>`, `shim: <id>`, `mount overlay <target>`, `mount tmpfs <target>`,
/// `umount <target>`, `rmdir <path>`.
#[derive(Debug, Default, Clone)]
pub struct Recorder(Arc<Mutex<Vec<String>>>);

impl Recorder {
    pub fn push(&self, event: impl Into<String>) {
        lock(&self.0).push(event.into());
    }

    pub fn events(&self) -> Vec<String> {
        lock(&self.0).clone()
    }

    pub fn clear(&self) {
        lock(&self.0).clear();
    }

    /// The index of the first event starting with `prefix`; panics with the whole log if none
    /// does, so a failing ordering assertion shows what happened instead.
    pub fn position(&self, prefix: &str) -> usize {
        let events = self.events();
        events
            .iter()
            .position(|e| e.starts_with(prefix))
            .unwrap_or_else(|| panic!("no event starts with {prefix:?}; events:\n{events:#?}"))
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| e.starts_with(prefix))
            .count()
    }
}

#[derive(Debug, Default)]
struct RunnerState {
    /// Checked newest first: the first rule whose prefix starts the command line answers.
    rules: Vec<(String, CmdOutput)>,
    stdins: Vec<(String, String)>,
    shim: Option<ShimReport>,
    shims: Vec<ShimArgs>,
}

/// Answers every command with success and empty output unless a rule says otherwise.
#[derive(Debug, Clone)]
pub struct FakeRunner {
    recorder: Recorder,
    state: Arc<Mutex<RunnerState>>,
}

impl FakeRunner {
    pub fn new(recorder: Recorder) -> Self {
        FakeRunner {
            recorder,
            state: Arc::default(),
        }
    }

    /// Commands whose line starts with `prefix` get `output` (the newest matching rule wins).
    pub fn on(&self, prefix: impl Into<String>, output: CmdOutput) {
        lock(&self.state).rules.insert(0, (prefix.into(), output));
    }

    /// What the shim reports; `Started { pid: 4242 }` unless set.
    pub fn shim_reports(&self, report: ShimReport) {
        lock(&self.state).shim = Some(report);
    }

    /// The stdin given to the last command whose line starts with `prefix`.
    pub fn last_stdin(&self, prefix: &str) -> Option<String> {
        lock(&self.state)
            .stdins
            .iter()
            .rev()
            .find(|(line, _)| line.starts_with(prefix))
            .map(|(_, s)| s.clone())
    }

    pub fn shims(&self) -> Vec<ShimArgs> {
        lock(&self.state).shims.clone()
    }
}

#[async_trait]
impl CommandRunner for FakeRunner {
    async fn run(&self, cmd: &Cmd) -> io::Result<CmdOutput> {
        let line = cmd.line();
        self.recorder.push(format!("run: {line}"));
        let mut st = lock(&self.state);
        if let Some(input) = &cmd.stdin {
            st.stdins
                .push((line.clone(), String::from_utf8_lossy(input).into_owned()));
        }
        Ok(st
            .rules
            .iter()
            .find(|(prefix, _)| line.starts_with(prefix.as_str()))
            .map(|(_, out)| out.clone())
            .unwrap_or_else(|| CmdOutput::ok("")))
    }

    async fn start_shim(
        &self,
        _shim: &ShimCommand,
        args: &ShimArgs,
        _shim_log: &Path,
    ) -> io::Result<ShimReport> {
        self.recorder.push(format!("shim: {}", args.id));
        let mut st = lock(&self.state);
        st.shims.push(args.clone());
        Ok(st.shim.clone().unwrap_or(ShimReport::Started { pid: 4242 }))
    }
}

#[derive(Debug, Default)]
struct SysState {
    mounted: Vec<PathBuf>,
    /// mountinfo lines that are always there (e.g. the cgroup hierarchies).
    base_mountinfo: String,
    existing: BTreeSet<PathBuf>,
    files: Vec<(PathBuf, String)>,
}

/// Keeps a list of what is mounted, and serves `/proc/self/mountinfo` from it.
#[derive(Debug, Clone)]
pub struct FakeSys {
    recorder: Recorder,
    state: Arc<Mutex<SysState>>,
}

impl FakeSys {
    pub fn new(recorder: Recorder) -> Self {
        FakeSys {
            recorder,
            state: Arc::default(),
        }
    }

    /// Lines of `/proc/self/mountinfo` present besides the fake's own mounts.
    pub fn set_base_mountinfo(&self, text: impl Into<String>) {
        lock(&self.state).base_mountinfo = text.into();
    }

    /// Makes `exists` true for `path` (until `remove_dir` removes it).
    pub fn add_existing(&self, path: impl Into<PathBuf>) {
        lock(&self.state).existing.insert(path.into());
    }

    pub fn set_file(&self, path: impl Into<PathBuf>, content: impl Into<String>) {
        let path = path.into();
        let mut st = lock(&self.state);
        st.files.retain(|(p, _)| *p != path);
        st.files.push((path, content.into()));
    }

    pub fn mounted(&self) -> Vec<PathBuf> {
        lock(&self.state).mounted.clone()
    }

    fn mountinfo(st: &SysState) -> String {
        let mut text = st.base_mountinfo.clone();
        for (i, m) in st.mounted.iter().enumerate() {
            text.push_str(&format!(
                "{} 1 0:99 / {} rw - fake fake rw\n",
                900 + i,
                m.display()
            ));
        }
        text
    }
}

impl Sys for FakeSys {
    fn mount_overlay(
        &self,
        lowers: &[PathBuf],
        _upper: &Path,
        _work: &Path,
        target: &Path,
    ) -> io::Result<()> {
        let lowers: Vec<_> = lowers.iter().map(|p| p.display().to_string()).collect();
        self.recorder.push(format!(
            "mount overlay {} lower={}",
            target.display(),
            lowers.join(":")
        ));
        lock(&self.state).mounted.push(target.to_path_buf());
        Ok(())
    }

    fn mount_tmpfs(&self, target: &Path, size_mb: u32) -> io::Result<()> {
        self.recorder
            .push(format!("mount tmpfs {} size={size_mb}m", target.display()));
        lock(&self.state).mounted.push(target.to_path_buf());
        Ok(())
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        self.recorder.push(format!("umount {}", target.display()));
        lock(&self.state).mounted.retain(|m| m != target);
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.recorder.push(format!("rmdir {}", path.display()));
        let mut st = lock(&self.state);
        // Like a cgroup with children (or any directory with entries): refused.
        if st.existing.iter().any(|p| p.parent() == Some(path)) {
            return Err(io::Error::from(io::ErrorKind::DirectoryNotEmpty));
        }
        if st.existing.remove(path) {
            Ok(())
        } else {
            Err(io::Error::from(io::ErrorKind::NotFound))
        }
    }

    fn read_file(&self, path: &Path) -> io::Result<String> {
        let st = lock(&self.state);
        if path == Path::new("/proc/self/mountinfo") {
            return Ok(Self::mountinfo(&st));
        }
        st.files
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, c)| c.clone())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn exists(&self, path: &Path) -> bool {
        let st = lock(&self.state);
        st.existing.contains(path) || st.files.iter().any(|(p, _)| p == path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let st = lock(&self.state);
        Ok(st
            .existing
            .iter()
            .filter(|p| p.parent() == Some(path))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }
}
