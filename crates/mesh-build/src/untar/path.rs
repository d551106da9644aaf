//! Path rules, as pure functions: what an entry's name may be, and where a symlink may point.
//! The symlink rule is shared by the source packer and the unpacker, which must agree on what
//! "inside the tree" means.

use std::path::{Component, Path, PathBuf};

use super::{MAX_PATH_BYTES, MAX_PATH_DEPTH};

/// The entry path `raw` as a clean relative path (`./` components dropped), `None` for the root
/// itself (`./`), or why it is refused.
pub(crate) fn entry_path(raw: &Path) -> Result<Option<PathBuf>, String> {
    let len = raw.as_os_str().len();
    if len > MAX_PATH_BYTES {
        return Err(format!(
            "path is {len} bytes long, at most {MAX_PATH_BYTES} are accepted"
        ));
    }
    let mut rel = PathBuf::new();
    let mut depth = 0usize;
    for c in raw.components() {
        match c {
            Component::Normal(s) => {
                depth += 1;
                if depth > MAX_PATH_DEPTH {
                    return Err(format!(
                        "path is more than {MAX_PATH_DEPTH} directories deep"
                    ));
                }
                rel.push(s);
            }
            Component::CurDir => {}
            Component::ParentDir => return Err("path contains \"..\"".to_string()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("path is absolute".to_string());
            }
        }
    }
    Ok((!rel.as_os_str().is_empty()).then_some(rel))
}

/// The first of `rel`'s parent directories that `is_link` says is a symlink.
pub(crate) fn link_above(rel: &Path, is_link: impl Fn(&Path) -> bool) -> Option<&Path> {
    rel.ancestors().skip(1).find(|a| is_link(a))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_are_cleaned_or_refused() {
        let ok = |p: &str| entry_path(Path::new(p)).unwrap();
        assert_eq!(ok("./a/./b/"), Some(PathBuf::from("a/b")));
        assert_eq!(ok("./"), None);
        assert_eq!(ok("."), None);
        let no = |p: &str| entry_path(Path::new(p)).unwrap_err();
        assert_eq!(no("/etc/passwd"), "path is absolute");
        assert_eq!(no("a/../../x"), "path contains \"..\"");
        assert_eq!(no(".."), "path contains \"..\"");
        assert!(no(&"a".repeat(MAX_PATH_BYTES + 1)).contains("4097 bytes long"));
        assert!(no(&"d/".repeat(MAX_PATH_DEPTH + 1)).contains("256 directories deep"));
        assert_eq!(
            ok(&"d/".repeat(MAX_PATH_DEPTH)).map(|p| p.components().count()),
            Some(256)
        );
    }

    #[test]
    fn the_first_link_above_a_path_is_found() {
        let links = [Path::new("a/l")];
        let is_link = |p: &Path| links.contains(&p);
        assert_eq!(
            link_above(Path::new("a/l/x/y"), is_link),
            Some(Path::new("a/l"))
        );
        assert_eq!(link_above(Path::new("a/l"), is_link), None);
        assert_eq!(link_above(Path::new("a/m/x"), is_link), None);
    }

    #[test]
    fn links_must_stay_in_the_tree() {
        let check = |l: &str, t: &str| check_link(Path::new(l), Path::new(t));
        assert_eq!(check("bin/l", "../lib/x"), Ok(()));
        assert_eq!(check("l", "./x"), Ok(()));
        assert!(check("l", "/etc/passwd").unwrap_err().contains("absolute"));
        assert!(check("d/l", "../../x").unwrap_err().contains("outside"));
        assert!(check("l", "up/..").unwrap_err().contains("after a name"));
        assert!(check("l", "").unwrap_err().contains("empty"));
    }
}
