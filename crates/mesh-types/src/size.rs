//! Instance sizes: the compute, memory and process limits an instance runs with.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceSize {
    Nano,
    Micro,
    #[default]
    Small,
    Medium,
    Large,
    Xlarge,
}

/// The resource limits of one size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SizeLimits {
    /// CPUs, as a fraction of one core's time.
    pub cpu: f64,
    pub memory_mb: u32,
    pub pids: u32,
}

impl InstanceSize {
    pub const ALL: [InstanceSize; 6] = [
        InstanceSize::Nano,
        InstanceSize::Micro,
        InstanceSize::Small,
        InstanceSize::Medium,
        InstanceSize::Large,
        InstanceSize::Xlarge,
    ];

    pub fn limits(self) -> SizeLimits {
        let (cpu, memory_mb, pids) = match self {
            InstanceSize::Nano => (0.25, 256, 256),
            InstanceSize::Micro => (0.5, 512, 512),
            InstanceSize::Small => (1.0, 1024, 1024),
            InstanceSize::Medium => (2.0, 2048, 2048),
            InstanceSize::Large => (4.0, 4096, 4096),
            InstanceSize::Xlarge => (8.0, 8192, 8192),
        };
        SizeLimits {
            cpu,
            memory_mb,
            pids,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InstanceSize::Nano => "nano",
            InstanceSize::Micro => "micro",
            InstanceSize::Small => "small",
            InstanceSize::Medium => "medium",
            InstanceSize::Large => "large",
            InstanceSize::Xlarge => "xlarge",
        }
    }
}

impl fmt::Display for InstanceSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InstanceSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        InstanceSize::ALL
            .into_iter()
            .find(|z| z.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = InstanceSize::ALL.iter().map(|z| z.as_str()).collect();
                format!(
                    "instance size {s:?} is unknown; choose one of {}",
                    names.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_trip_and_grow() {
        let mut last = 0;
        for z in InstanceSize::ALL {
            assert_eq!(z.as_str().parse::<InstanceSize>().unwrap(), z);
            assert!(z.limits().memory_mb > last);
            last = z.limits().memory_mb;
        }
        assert_eq!(InstanceSize::Nano.limits().cpu, 0.25);
        let e = "huge".parse::<InstanceSize>().unwrap_err();
        assert!(e.contains("nano, micro"), "{e}");
    }
}
