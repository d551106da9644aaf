//! `KEY=VALUE` arguments, and values read from files (`--file KEY=PATH`) or standard input
//! (`--stdin KEY=-`), as `config set` and `provider add` take them.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use mesh_types::ConfigKey;
use mesh_types::config::check_value;

/// Splits `KEY=VALUE` at the first `=`; `what` names the option in messages.
pub fn split_pair<'a>(arg: &'a str, form: &str) -> Result<(&'a str, &'a str)> {
    match arg.split_once('=') {
        Some((k, v)) => Ok((k, v)),
        None if form == "KEY=VALUE" => Err(anyhow!(
            "{arg:?} has no value: write {arg}=VALUE (to remove a variable use `config unset {arg}`)"
        )),
        None => Err(anyhow!("expected {form}, got {arg:?}")),
    }
}

/// A value read from a file or stdin loses one final line break: `echo hi |` means `hi`.
pub fn strip_final_newline(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

/// Where the values of `config set` come from.
#[derive(Debug, Default)]
pub struct ValueArgs<'a> {
    pub pairs: &'a [String],
    pub files: &'a [String],
    pub stdin: Option<&'a str>,
}

/// Collects every variable to set, reading files and stdin through the given functions.
pub fn collect_config(
    args: &ValueArgs<'_>,
    read_file: &dyn Fn(&Path) -> std::io::Result<String>,
    read_stdin: &mut dyn FnMut() -> std::io::Result<String>,
) -> Result<BTreeMap<ConfigKey, String>> {
    let mut out = BTreeMap::new();
    let mut add = |key: &str, value: String| -> Result<()> {
        let key = ConfigKey::parse(key)?;
        check_value(&key, &value).map_err(|e| anyhow!(e))?;
        if out.insert(key.clone(), value).is_some() {
            bail!("{key} is given twice");
        }
        Ok(())
    };
    for arg in args.pairs {
        let (k, v) = split_pair(arg, "KEY=VALUE")?;
        add(k, v.to_string())?;
    }
    for arg in args.files {
        let (k, path) = split_pair(arg, "KEY=PATH after --file")?;
        if path.is_empty() {
            bail!("--file {arg}: give the path of the file holding the value of {k}");
        }
        let value = read_file(Path::new(path))
            .map_err(|e| anyhow!("cannot read the value of {k} from {path}: {e}"))?;
        add(k, strip_final_newline(value))?;
    }
    if let Some(arg) = args.stdin {
        let (k, dash) = split_pair(arg, "KEY=- after --stdin")?;
        if dash != "-" {
            bail!("--stdin takes KEY=- (the value is read from standard input), got {arg:?}");
        }
        // Validate the key before waiting on stdin.
        ConfigKey::parse(k)?;
        let value = read_stdin()
            .map_err(|e| anyhow!("cannot read the value of {k} from standard input: {e}"))?;
        add(k, strip_final_newline(value))?;
    }
    if out.is_empty() {
        bail!("nothing to set: give KEY=VALUE, --file KEY=PATH or --stdin KEY=-");
    }
    Ok(out)
}

/// Parses the keys of `config unset`.
pub fn parse_keys(keys: &[String]) -> Result<Vec<ConfigKey>> {
    if keys.is_empty() {
        bail!("nothing to unset: name the variables, such as `config unset KEY`");
    }
    let mut out: Vec<ConfigKey> = Vec::new();
    for k in keys {
        if k.contains('=') {
            bail!("{k:?} is not a variable name: `config unset` takes names only, such as KEY");
        }
        let key = ConfigKey::parse(k)?;
        if !out.contains(&key) {
            out.push(key);
        }
    }
    Ok(out)
}

/// Provider secrets: `--secret KEY=VALUE` and `--secret-file KEY=PATH` (read verbatim: an SSH
/// key keeps its final line break).
pub fn collect_secrets(
    pairs: &[String],
    files: &[String],
    read_file: &dyn Fn(&Path) -> std::io::Result<String>,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut add = |k: &str, v: String| -> Result<()> {
        if k.is_empty() {
            bail!("a secret needs a name: write NAME=VALUE");
        }
        if out.insert(k.to_string(), v).is_some() {
            bail!("secret {k} is given twice");
        }
        Ok(())
    };
    for arg in pairs {
        let (k, v) = split_pair(arg, "KEY=VALUE after --secret")?;
        add(k, v.to_string())?;
    }
    for arg in files {
        let (k, path) = split_pair(arg, "KEY=PATH after --secret-file")?;
        let path = expand_home(path);
        let v = read_file(&path)
            .map_err(|e| anyhow!("cannot read secret {k} from {}: {e}", path.display()))?;
        add(k, v)?;
    }
    Ok(out)
}

/// `~/x` as the shell would have expanded it, for paths written after `=` where shells don't.
pub fn expand_home(path: &str) -> std::path::PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => Path::new(path).to_path_buf(),
    }
}

#[cfg(test)]
#[path = "kv/tests.rs"]
mod tests;
