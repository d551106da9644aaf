//! The symlink rule shared by pack and unpack: both must agree on what "inside the tree" means.

use std::path::{Component, Path};

/// Checks that a symlink at `link` (relative to the tree root) to `target` stays in the tree, or
/// says why not.
///
/// The target must be relative and of the form `../../a/b`: its `..` components, all leading,
/// climb through the link's own parent directories, which are real directories because neither
/// pack nor unpack produces entries below a symlink, so a lexical count is exact. A `..` after a
/// name is refused because that name could itself be a symlink (`l -> up/..` with `up -> .`
/// leaves the tree), and the remaining names only descend, through real directories or through
/// symlinks that obey this same rule.
pub(crate) fn check_link(link: &Path, target: &Path) -> Result<(), &'static str> {
    let mut depth = 0usize;
    for c in link.parent().unwrap_or(Path::new("")).components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return Err("its own path is not a clean relative path"),
        }
    }
    let mut after_name = false;
    for c in target.components() {
        match c {
            Component::Normal(_) => after_name = true,
            Component::CurDir => {}
            Component::ParentDir if after_name => {
                return Err("\"..\" after a name could leave the tree through another symlink");
            }
            Component::ParentDir => {
                depth = depth.checked_sub(1).ok_or("it climbs outside the tree")?;
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err("an absolute target points outside the tree");
            }
        }
    }
    if target.as_os_str().is_empty() {
        return Err("the target is empty");
    }
    Ok(())
}
