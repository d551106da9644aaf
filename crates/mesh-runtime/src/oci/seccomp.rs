//! The instances' seccomp filter: Docker's default profile, kept verbatim as data
//! (`seccomp/default.json`, from github.com/moby/profiles, Apache-2.0; see `seccomp/README.md`),
//! turned into the OCI runtime spec's `linux.seccomp` for one instance the way Docker does it
//! ([`resolve`]): a rule with `includes`/`excludes` is kept or dropped by the machine's
//! architecture, the process's bounding capabilities and the kernel version.
//!
//! Without `CAP_SYS_ADMIN` (no instance has it) that denies `unshare`, `setns`, `mount`, and
//! `clone` with any namespace flag (so no user namespaces); `keyctl`, `add_key`,
//! `request_key`, the module and `kexec` calls are not on any list; `bpf`, `perf_event_open`
//! and the time-setting calls need capabilities no instance has. On top of Docker's profile,
//! [`ALWAYS_DENIED`] is taken out of every allow rule whatever the capabilities (Docker allows
//! `adjtimex` and `clock_adjtime`, which only read the clock without `CAP_SYS_TIME`), and
//! listed in an explicit deny rule so the filter says so.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Docker's default profile (moby/profiles `seccomp/default.json`, commit cd3bed8).
pub const DEFAULT_PROFILE: &str = include_str!("seccomp/default.json");

/// Denied in every instance, whatever Docker's profile and the capabilities say: the clock,
/// the kernel keyring, eBPF, kernel modules and kexec.
pub const ALWAYS_DENIED: [&str; 17] = [
    "adjtimex",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_settime",
    "clock_settime64",
    "settimeofday",
    "stime",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "kexec_load",
    "kexec_file_load",
];

/// `EPERM`, what a denied call returns (the profile's default too).
const EPERM: u32 = 1;

/// A profile in Docker's format: the OCI fields plus `archMap` and per-rule
/// `includes`/`excludes`. Unknown fields are refused, so a profile that says more than this
/// understands is an error rather than a weaker filter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    pub default_action: String,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    #[serde(default)]
    pub arch_map: Vec<ArchMap>,
    pub syscalls: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default)]
    pub sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub names: Vec<String>,
    pub action: String,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Vec<Arg>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub includes: Option<Condition>,
    #[serde(default)]
    pub excludes: Option<Condition>,
}

/// `includes`: the rule applies only if all of these hold; `excludes`: not if any holds.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// Architectures by libseccomp's native names (`amd64`, `arm64`, `x86`, ...).
    #[serde(default)]
    pub arches: Vec<String>,
    #[serde(default)]
    pub caps: Vec<String>,
    /// `"4.8"`.
    #[serde(default)]
    pub min_kernel: Option<String>,
}

/// The OCI runtime spec's `linux.seccomp`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Seccomp {
    pub default_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    pub syscalls: Vec<Syscall>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Syscall {
    pub names: Vec<String>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value_two: u64,
    pub op: String,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A kernel's `major.minor`, compared as Docker does (the patch level is ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
}

impl KernelVersion {
    /// From a release string such as `6.1.0-18-amd64` or a `minKernel` such as `4.8`.
    pub fn parse(release: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "kernel version",
                format!("{release:?} does not start with MAJOR.MINOR"),
            )
        };
        let mut parts = release.splitn(3, '.');
        let number = |p: Option<&str>| -> Result<u32> {
            let digits: String = p
                .unwrap_or("")
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().map_err(|_| bad())
        };
        Ok(KernelVersion {
            major: number(parts.next())?,
            minor: number(parts.next())?,
        })
    }

    /// The running kernel's (`uname -r`).
    pub fn running() -> Result<Self> {
        let uts = nix::sys::utsname::uname()
            .map_err(|e| Error::invalid("kernel version", format!("uname failed: {e}")))?;
        Self::parse(&uts.release().to_string_lossy())
    }
}

/// What a profile is resolved for.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// libseccomp's native name of the machine's architecture ([`native_arch`]).
    pub arch: &'a str,
    /// The process's bounding set, `CAP_...` names.
    pub capabilities: &'a [String],
    pub kernel: KernelVersion,
}

/// libseccomp's native name for the architecture this binary was built for (what Docker
/// derives from `GOARCH`), `None` for one Docker's profile does not know.
pub fn native_arch() -> Option<&'static str> {
    Some(match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "x86",
        "aarch64" => "arm64",
        "arm" => "arm",
        "s390x" => "s390x",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "riscv64" => "riscv64",
        "loongarch64" => "loong64",
        "mips64" if cfg!(target_endian = "little") => "mipsel64",
        "mips64" => "mips64",
        _ => return None,
    })
}

/// libseccomp's native name -> the `SCMP_ARCH_` name `archMap` uses.
fn scmp_arch(native: &str) -> Option<&'static str> {
    Some(match native {
        "x86" => "SCMP_ARCH_X86",
        "amd64" => "SCMP_ARCH_X86_64",
        "arm" => "SCMP_ARCH_ARM",
        "arm64" => "SCMP_ARCH_AARCH64",
        "loong64" => "SCMP_ARCH_LOONGARCH64",
        "mips64" => "SCMP_ARCH_MIPS64",
        "mips64n32" => "SCMP_ARCH_MIPS64N32",
        "mipsel64" => "SCMP_ARCH_MIPSEL64",
        "mipsel64n32" => "SCMP_ARCH_MIPSEL64N32",
        "ppc64" => "SCMP_ARCH_PPC64",
        "ppc64le" => "SCMP_ARCH_PPC64LE",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "s390" => "SCMP_ARCH_S390",
        "s390x" => "SCMP_ARCH_S390X",
        _ => return None,
    })
}

impl Profile {
    pub fn parse(json: &str) -> Result<Self> {
        serde_json::from_str(json)
            .map_err(|e| Error::invalid("seccomp profile", format!("not a profile: {e}")))
    }

    /// Docker's default profile, parsed once.
    pub fn docker_default() -> &'static Profile {
        static PROFILE: OnceLock<Profile> = OnceLock::new();
        PROFILE.get_or_init(|| {
            // The file is part of the source; a unit test parses it.
            Profile::parse(DEFAULT_PROFILE).expect("the embedded seccomp profile parses")
        })
    }
}

fn kernel_at_least(kernel: KernelVersion, min: &str) -> Result<bool> {
    Ok(kernel >= KernelVersion::parse(min)?)
}

/// Whether `rule` applies to `target`, by Docker's rules: any matching `excludes` entry drops
/// it; every `includes` entry must match.
fn applies(rule: &Rule, target: &Target) -> Result<bool> {
    let has_cap = |c: &String| target.capabilities.contains(c);
    if let Some(ex) = &rule.excludes {
        if ex.arches.iter().any(|a| a == target.arch) || ex.caps.iter().any(has_cap) {
            return Ok(false);
        }
        if let Some(min) = &ex.min_kernel
            && kernel_at_least(target.kernel, min)?
        {
            return Ok(false);
        }
    }
    if let Some(inc) = &rule.includes {
        if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == target.arch) {
            return Ok(false);
        }
        if !inc.caps.iter().all(has_cap) {
            return Ok(false);
        }
        if let Some(min) = &inc.min_kernel
            && !kernel_at_least(target.kernel, min)?
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `profile` as the OCI `linux.seccomp` for `target`, with [`ALWAYS_DENIED`] denied.
pub fn resolve(profile: &Profile, target: &Target) -> Result<Seccomp> {
    let architectures = scmp_arch(target.arch)
        .and_then(|scmp| profile.arch_map.iter().find(|m| m.architecture == scmp))
        .map(|m| {
            let mut v = vec![m.architecture.clone()];
            v.extend(m.sub_architectures.iter().flatten().cloned());
            v
        })
        .unwrap_or_default();
    let mut syscalls = Vec::new();
    for rule in &profile.syscalls {
        if rule.names.is_empty() {
            return Err(Error::invalid(
                "seccomp profile",
                format!("a {} rule names no syscall", rule.action),
            ));
        }
        if !applies(rule, target)? {
            continue;
        }
        // The explicit rule below is the only one for these (libseccomp takes one action
        // per syscall).
        let mut names = rule.names.clone();
        names.retain(|n| !ALWAYS_DENIED.contains(&n.as_str()));
        if names.is_empty() {
            continue;
        }
        syscalls.push(Syscall {
            names,
            action: rule.action.clone(),
            errno_ret: rule.errno_ret,
            args: rule.args.clone(),
        });
    }
    syscalls.push(Syscall {
        names: ALWAYS_DENIED.map(String::from).to_vec(),
        action: "SCMP_ACT_ERRNO".into(),
        errno_ret: Some(EPERM),
        args: Vec::new(),
    });
    Ok(Seccomp {
        default_action: profile.default_action.clone(),
        default_errno_ret: profile.default_errno_ret,
        architectures,
        syscalls,
    })
}

/// Docker's default profile for an instance with `capabilities` on this machine.
pub fn for_instance(capabilities: &[String], kernel: KernelVersion) -> Result<Seccomp> {
    let arch = native_arch().ok_or_else(|| {
        Error::invalid(
            "seccomp profile",
            format!(
                "architecture {} is not one Docker's profile knows",
                std::env::consts::ARCH
            ),
        )
    })?;
    resolve(
        Profile::docker_default(),
        &Target {
            arch,
            capabilities,
            kernel,
        },
    )
}

#[cfg(test)]
mod tests;
