//! Where an instance's cgroups are, read from `/proc/self/mountinfo`.
//!
//! runc creates and configures them (cgroupfs driver, `cgroupsPath = /<parent>/<id>`; this kind
//! of host has no systemd) and removes the instance's own directory on `runc delete`, but not
//! the parent it created under every hierarchy: the runtime removes that once empty. On a
//! hybrid host (v1 controllers plus a cgroup2 mount that only tracks processes) the memory
//! controller is v1, so OOM kills are counted in `memory.oom_control`; on a pure v2 host in
//! `memory.events`.

use std::path::{Path, PathBuf};

use crate::host::unescape_mount_path;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CgroupMounts {
    /// v1 hierarchies: controllers (or `name=systemd`) and mount point.
    pub v1: Vec<(Vec<String>, PathBuf)>,
    pub v2: Option<PathBuf>,
}

impl CgroupMounts {
    pub fn parse(mountinfo: &str) -> Self {
        let mut m = CgroupMounts::default();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let Some(point) = left.split(' ').nth(4) else {
                continue;
            };
            let point = PathBuf::from(unescape_mount_path(point));
            let mut r = right.split(' ');
            match (r.next(), r.nth(1)) {
                (Some("cgroup"), Some(opts)) => {
                    let controllers = opts
                        .split(',')
                        .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("release_agent"))
                        .filter(|o| !["noprefix", "clone_children", "xattr"].contains(o))
                        .map(str::to_string)
                        .collect();
                    m.v1.push((controllers, point));
                }
                (Some("cgroup2"), _) if m.v2.is_none() => m.v2 = Some(point),
                _ => {}
            }
        }
        m
    }

    fn v1_mount(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(c, _)| c.iter().any(|x| x == controller))
            .map(|(_, p)| p.as_path())
    }

    /// The directory of `cgroups_path` (`/<parent>/<id>`) for a controller: its v1 hierarchy
    /// if it has one, else the unified one.
    pub fn dir(&self, controller: &str, cgroups_path: &str) -> Option<PathBuf> {
        let rel = cgroups_path.trim_start_matches('/');
        match self.v1_mount(controller) {
            Some(p) => Some(p.join(rel)),
            None => self.v2.as_ref().map(|p| p.join(rel)),
        }
    }

    /// The file whose `oom_kill` counter says whether the OOM killer struck.
    pub fn oom_file(&self, cgroups_path: &str) -> Option<PathBuf> {
        let rel = cgroups_path.trim_start_matches('/');
        match self.v1_mount("memory") {
            Some(p) => Some(p.join(rel).join("memory.oom_control")),
            None => self.v2.as_ref().map(|p| p.join(rel).join("memory.events")),
        }
    }

    /// `<mount>/<dir>` under every hierarchy, v1 and v2: where a parent cgroup may exist.
    pub fn all_dirs(&self, dir: &str) -> Vec<PathBuf> {
        let rel = dir.trim_start_matches('/');
        let mut out: Vec<PathBuf> = self.v1.iter().map(|(_, p)| p.join(rel)).collect();
        out.extend(self.v2.iter().map(|p| p.join(rel)));
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests;
