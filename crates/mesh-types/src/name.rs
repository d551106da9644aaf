//! Validated names: every resource is addressed by a DNS-label name, so they can appear in
//! hostnames (`<stack>-<service>`, `<env>.<rack domain>`) without escaping.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest DNS label.
pub const MAX_NAME_LEN: usize = 63;
/// Longest fully qualified domain name.
pub const MAX_DOMAIN_LEN: usize = 253;
/// Longest config variable name.
pub const MAX_KEY_LEN: usize = 255;

/// Why a name was refused; its message names the kind of name, the value and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    pub what: &'static str,
    pub value: String,
    pub reason: String,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?} is invalid: {}",
            self.what, self.value, self.reason
        )
    }
}

impl std::error::Error for NameError {}

fn err(what: &'static str, value: &str, reason: impl Into<String>) -> NameError {
    NameError {
        what,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Checks one DNS label: lowercase letters, digits and dashes, starting with a letter and not
/// ending with a dash, at most 63 characters.
fn check_label(what: &'static str, value: &str, full: &str) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(err(what, full, "it is empty"));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(err(
            what,
            full,
            format!(
                "it has {} characters, at most {MAX_NAME_LEN} are allowed",
                value.len()
            ),
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        let hint = if c.is_ascii_uppercase() {
            " (use lowercase)"
        } else {
            ""
        };
        return Err(err(
            what,
            full,
            format!("it contains {c:?}{hint}; use lowercase letters, digits and dashes"),
        ));
    }
    if !value.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(err(what, full, "it must start with a lowercase letter"));
    }
    if value.ends_with('-') {
        return Err(err(what, full, "it must not end with a dash"));
    }
    Ok(())
}

/// A resource name: a DNS label.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    pub fn parse(value: &str) -> Result<Self, NameError> {
        Self::parse_as("name", value)
    }

    /// Parses with a label for error messages, such as "environment name".
    pub fn parse_as(what: &'static str, value: &str) -> Result<Self, NameError> {
        check_label(what, value, value)?;
        Ok(Self(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Name {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Name::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The hostname of a service inside its environment: `<stack>-<service>`.
pub fn service_hostname(stack: &str, service: &str) -> String {
    format!("{stack}-{service}")
}

/// A fully qualified domain name, lowercase, without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Domain(String);

impl Domain {
    pub fn parse(value: &str) -> Result<Self, NameError> {
        const WHAT: &str = "domain";
        let trimmed = value.strip_suffix('.').unwrap_or(value);
        if trimmed.is_empty() {
            return Err(err(WHAT, value, "it is empty"));
        }
        if trimmed.len() > MAX_DOMAIN_LEN {
            return Err(err(
                WHAT,
                value,
                format!("it is longer than {MAX_DOMAIN_LEN} characters"),
            ));
        }
        let lower = trimmed.to_ascii_lowercase();
        for label in lower.split('.') {
            if label.is_empty() {
                return Err(err(
                    WHAT,
                    value,
                    "it has an empty label (two dots in a row?)",
                ));
            }
            if label.len() > MAX_NAME_LEN {
                return Err(err(
                    WHAT,
                    value,
                    format!("the label {label:?} is longer than {MAX_NAME_LEN} characters"),
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(err(
                    WHAT,
                    value,
                    format!("the label {label:?} starts or ends with a dash"),
                ));
            }
            if let Some(c) = label
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
            {
                return Err(err(
                    WHAT,
                    value,
                    format!("it contains {c:?}; use letters, digits, dashes and dots"),
                ));
            }
        }
        Ok(Self(lower))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this domain is `parent` or lies under it.
    pub fn is_within(&self, parent: &str) -> bool {
        self.0 == parent || self.0.ends_with(&format!(".{parent}"))
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Domain {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for Domain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Domain::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The name of a config variable: a portable environment variable name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ConfigKey(String);

impl ConfigKey {
    pub fn parse(value: &str) -> Result<Self, NameError> {
        const WHAT: &str = "config key";
        if value.is_empty() {
            return Err(err(WHAT, value, "it is empty"));
        }
        if value.len() > MAX_KEY_LEN {
            return Err(err(
                WHAT,
                value,
                format!("it is longer than {MAX_KEY_LEN} characters"),
            ));
        }
        if value.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(err(WHAT, value, "it must not start with a digit"));
        }
        if let Some(c) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
        {
            return Err(err(
                WHAT,
                value,
                format!("it contains {c:?}; use letters, digits and underscores"),
            ));
        }
        Ok(Self(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ConfigKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ConfigKey::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A deployment version, written `v0`, `v1`, ... (the `v` is optional on input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u32);

impl Version {
    pub fn parse(value: &str) -> Result<Self, NameError> {
        let digits = value.strip_prefix('v').unwrap_or(value);
        digits
            .parse::<u32>()
            .map(Version)
            .map_err(|_| err("deployment version", value, "write it as v0, v1, v2, ..."))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

impl FromStr for Version {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Version::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[path = "name/tests.rs"]
mod tests;
