//! Lexical path checks shared by pack and unpack: both must agree on what "inside the tree" means.

use std::path::{Component, Path};

/// Where a relative symlink at `link` (relative to the tree root) lands, resolved lexically, or
/// `None` if it is absolute or climbs above the root.
///
/// Lexical resolution is only sound when no parent of `link` is itself a symlink; unpack refuses
/// entries below symlinks for that reason, and pack never produces them.
pub(crate) fn resolve_link(link: &Path, target: &Path) -> Option<Vec<String>> {
    let mut parts: Vec<String> = Vec::new();
    for c in link.parent().unwrap_or(Path::new("")).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    for c in target.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts)
}
