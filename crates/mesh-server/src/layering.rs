//! The crate's layers, pinned: HTTP (`api/`, wired up in `routes.rs` and `app.rs`) calls the
//! layers below it and never the other way round, so the domain rules, deployments and the
//! first start can change or be reused without the HTTP layer in tow.

use std::path::{Path, PathBuf};

/// Files that may name the HTTP handlers: the handlers themselves and their wiring.
const HTTP: [&str; 4] = ["api/", "api.rs", "routes.rs", "app.rs"];
/// Layers that know nothing of HTTP: neither axum nor the HTTP error.
const NO_HTTP: [&str; 4] = ["domain/", "domain.rs", "deploy/", "deploy.rs"];

/// Every `.rs` file under `dir`, by its path relative to `root`, with its text.
fn sources(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(root, &path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push((rel, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

fn crate_sources() -> Vec<(String, String)> {
    let root: PathBuf = [env!("CARGO_MANIFEST_DIR"), "src"].iter().collect();
    let mut out = Vec::new();
    sources(&root, &root, &mut out);
    // Not vacuous: the walk found the crate (and these files are where the rules apply).
    for known in [
        "lib.rs",
        "api.rs",
        "deploy/rollout.rs",
        "domain/placement.rs",
    ] {
        assert!(out.iter().any(|(p, _)| p == known), "{known} not found");
    }
    out
}

fn offenders(files: &[(String, String)], exempt: &[&str], needles: &[&str]) -> Vec<String> {
    files
        .iter()
        .filter(|(path, _)| !exempt.iter().any(|e| path.starts_with(e)))
        .filter(|(_, text)| needles.iter().any(|n| text.contains(n)))
        .map(|(path, _)| path.clone())
        .collect()
}

#[test]
fn nothing_below_the_http_layer_imports_it() {
    // Built with concat! so this file does not match itself.
    let needles = [concat!("crate::", "api"), concat!("super::", "api")];
    let found = offenders(&crate_sources(), &HTTP, &needles);
    assert!(
        found.is_empty(),
        "these files import from api/: move what they use below it (domain/, deploy/): {found:?}"
    );
}

#[test]
fn domain_and_deployments_know_no_http() {
    let files: Vec<_> = crate_sources()
        .into_iter()
        .filter(|(path, _)| NO_HTTP.iter().any(|l| path.starts_with(l)))
        .collect();
    let needles = [
        concat!("axum", "::"),
        concat!("Api", "Error"),
        concat!("crate::", "error"),
    ];
    let found = offenders(&files, &[], &needles);
    assert!(
        found.is_empty(),
        "these files use HTTP types: give them their own error and convert it in api/answer.rs: {found:?}"
    );
}

#[test]
fn the_check_sees_an_import() {
    let import = concat!("use crate::", "api::runs;").to_string();
    let files = vec![
        ("deploy/x.rs".to_string(), import.clone()),
        ("api/x.rs".to_string(), import),
    ];
    let needles = [concat!("crate::", "api")];
    assert_eq!(offenders(&files, &HTTP, &needles), vec!["deploy/x.rs"]);
}
