//! Which build arguments a Dockerfile declares.

use std::collections::BTreeSet;

/// The names of every `ARG` of the Dockerfile, in any stage (`ARG NAME`, `ARG NAME=default`,
/// several per line), after joining continuation lines and dropping comments; honours the
/// `# escape=` parser directive.
pub fn declared_args(dockerfile: &str) -> BTreeSet<String> {
    let escape = escape_char(dockerfile);
    let mut names = BTreeSet::new();
    for line in logical_lines(dockerfile, escape) {
        let words = words(&line);
        if !words.first().is_some_and(|w| w.eq_ignore_ascii_case("ARG")) {
            continue;
        }
        for w in &words[1..] {
            let name = w.split('=').next().unwrap_or("");
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                names.insert(name.to_string());
            }
        }
    }
    names
}

/// Whitespace-separated words, whitespace inside quotes kept.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            (_, c) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The `# escape=` directive: only in the leading comment lines, before anything else.
fn escape_char(dockerfile: &str) -> char {
    for line in dockerfile.lines() {
        let t = line.trim();
        let Some(comment) = t.strip_prefix('#') else {
            break;
        };
        if let Some((k, v)) = comment.split_once('=')
            && k.trim().eq_ignore_ascii_case("escape")
            && let Some(c) = v.trim().chars().next()
        {
            return c;
        }
    }
    '\\'
}

/// Instructions as single lines: continuations joined, comment and blank lines dropped (also
/// inside a continuation, as Docker does).
fn logical_lines(dockerfile: &str, escape: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in dockerfile.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_some()) {
            continue;
        }
        let (body, continues) = match t.strip_suffix(escape) {
            Some(b) => (b, true),
            None => (t, false),
        };
        let acc = current.get_or_insert_with(String::new);
        acc.push_str(body);
        acc.push(' ');
        if !continues {
            out.extend(current.take());
        }
    }
    out.extend(current);
    out
}

/// `RUN` options a build may not use: `--mount` (buildah 1.28's bind and cache mounts reach
/// the host's filesystem: CVE-2024-1753, a `bind` `from=` through a symlink, and
/// CVE-2024-9675, a cache `id` with `..`), `--network` and `--security` (a build does not pick
/// its own network or privileges).
const REFUSED_RUN_OPTIONS: [&str; 3] = ["--mount", "--network", "--security"];

/// Checks the Dockerfile before buildah sees it: `Err` names the line and the refused `RUN`
/// option.
pub fn check_dockerfile(dockerfile: &str) -> Result<(), String> {
    let escape = escape_char(dockerfile);
    for line in logical_lines(dockerfile, escape) {
        let words = words(&line);
        if !words.first().is_some_and(|w| w.eq_ignore_ascii_case("RUN")) {
            continue;
        }
        for w in words[1..].iter().take_while(|w| w.starts_with("--")) {
            let name = w.split('=').next().unwrap_or("").to_ascii_lowercase();
            if REFUSED_RUN_OPTIONS.contains(&name.as_str()) {
                return Err(format!(
                    "`RUN {name}` is not supported in Widemesh builds (it can reach the build host's \
                     files or network); in `{}`: copy what the step needs with COPY instead",
                    line.trim()
                ));
            }
        }
    }
    Ok(())
}

/// Config names that never become build arguments: the values of build arguments go to
/// buildah through its environment (never its command line), where these would change how
/// buildah, the dynamic linker or the build's proxy behave.
pub fn reserved_arg(name: &str) -> bool {
    const EXACT: [&str; 24] = [
        "PATH",
        "HOME",
        "TMPDIR",
        "SHELL",
        "IFS",
        "ENV",
        "BASH_ENV",
        "CDPATH",
        "PS4",
        "GODEBUG",
        "GOGC",
        "GOMAXPROCS",
        "GOMEMLIMIT",
        "GOTRACEBACK",
        "REGISTRY_AUTH_FILE",
        "TZ",
        "LANG",
        "NOTIFY_SOCKET",
        "DBUS_SESSION_BUS_ADDRESS",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "NO_PROXY",
        "ALL_PROXY",
        "FTP_PROXY",
    ];
    const PREFIXES: [&str; 10] = [
        "LD_",
        "BUILDAH",
        "_BUILDAH",
        "CONTAINERS_",
        "_CONTAINERS",
        "STORAGE_",
        "XDG_",
        "LC_",
        "GOCOVER",
        "MALLOC_",
    ];
    let upper = name.to_ascii_uppercase();
    EXACT.contains(&upper.as_str())
        || PREFIXES.iter().any(|p| upper.starts_with(p))
        || upper.ends_with("_PROXY")
        || mesh_runtime::build::egress::is_proxy_var(name)
}
