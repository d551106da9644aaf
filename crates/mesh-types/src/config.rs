//! Config variables and how they resolve: stack, then service, then region, then rack overrides
//! (later layers win).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ConfigKey, Name, UnixMs};

/// Longest config value.
pub const MAX_VALUE_LEN: usize = 32 * 1024;
/// Most variables one scope may hold.
pub const MAX_VARS_PER_SCOPE: usize = 500;

/// Where a variable applies. `service: None` means every service of the stack; `region` or
/// `rack` (at most one) make it an override that applies only there.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConfigScope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<Name>,
}

impl ConfigScope {
    pub fn check(&self) -> Result<(), String> {
        if self.region.is_some() && self.rack.is_some() {
            return Err("an override applies to a region or to a rack, not both".into());
        }
        Ok(())
    }

    /// The resolution layer: higher wins.
    fn layer(&self) -> u8 {
        let place = if self.rack.is_some() {
            2
        } else if self.region.is_some() {
            1
        } else {
            0
        };
        place * 2 + u8::from(self.service.is_some())
    }

    pub fn describe(&self) -> String {
        let mut s = match &self.service {
            Some(svc) => format!("service {svc}"),
            None => "stack".to_string(),
        };
        if let Some(r) = &self.region {
            s.push_str(&format!(" @region {r}"));
        }
        if let Some(r) = &self.rack {
            s.push_str(&format!(" @rack {r}"));
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigVar {
    pub key: ConfigKey,
    pub value: String,
    #[serde(flatten)]
    pub scope: ConfigScope,
    pub updated_at: UnixMs,
}

/// Sets and unsets variables of one scope in one step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigChange {
    #[serde(default)]
    pub set: BTreeMap<ConfigKey, String>,
    #[serde(default)]
    pub unset: Vec<ConfigKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<Name>,
}

/// Checks one value: not empty, not oversized, no NUL byte (it becomes an environment variable).
pub fn check_value(key: &ConfigKey, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!(
            "config value of {key} is empty; to remove the variable use `config unset {key}`"
        ));
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(format!(
            "config value of {key} is {} bytes, at most {MAX_VALUE_LEN} are allowed",
            value.len()
        ));
    }
    if value.contains('\0') {
        return Err(format!("config value of {key} contains a NUL byte"));
    }
    Ok(())
}

/// A resolved variable and the scope it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedVar {
    pub value: String,
    pub from: String,
}

/// The environment variables a service gets on one rack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedConfig {
    pub service: Name,
    pub rack: Name,
    pub region: Name,
    pub vars: BTreeMap<String, ResolvedVar>,
}

/// Resolves the variables of `service` running on `rack` in `region`, from all the variables of
/// its stack (every scope). Variables of other services, regions and racks are ignored.
pub fn resolve(
    vars: &[ConfigVar],
    service: &str,
    rack: &str,
    region: &str,
) -> BTreeMap<String, ResolvedVar> {
    let mut applicable: Vec<&ConfigVar> = vars
        .iter()
        .filter(|v| {
            v.scope
                .service
                .as_ref()
                .is_none_or(|s| s.as_str() == service)
        })
        .filter(|v| v.scope.region.as_ref().is_none_or(|r| r.as_str() == region))
        .filter(|v| v.scope.rack.as_ref().is_none_or(|r| r.as_str() == rack))
        .collect();
    applicable.sort_by_key(|v| v.scope.layer());
    let mut out = BTreeMap::new();
    for v in applicable {
        out.insert(
            v.key.to_string(),
            ResolvedVar {
                value: v.value.clone(),
                from: v.scope.describe(),
            },
        );
    }
    out
}

#[cfg(test)]
#[path = "config/tests.rs"]
mod tests;
