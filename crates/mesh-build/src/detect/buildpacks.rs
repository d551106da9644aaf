//! One function per built-in buildpack: each looks for its marker files and guesses a web
//! command. The order of [`ALL`] is the priority order.

use std::fs;
use std::io;
use std::path::Path;

use super::{Buildpack, DetectError, STATIC_SERVER};

type Detect = fn(&Path) -> Result<Option<Buildpack>, DetectError>;

pub(super) const ALL: [Detect; 8] = [node, python, ruby, go, php, java, rust, static_site];

/// For the error when nothing matched; keep in step with [`ALL`].
pub(super) const LOOKED_FOR: &str = "package.json (nodejs), requirements.txt, pyproject.toml or \
     Pipfile (python), Gemfile (ruby), go.mod (go), composer.json or index.php (php), pom.xml, \
     mvnw, build.gradle, build.gradle.kts, gradlew, a single .jar or .java sources (java), \
     Cargo.toml (rust), index.html, public/ or static.json (static)";

fn found(name: &str, detected_by: &str, cmd: Option<String>) -> Option<Buildpack> {
    Some(Buildpack {
        name: name.to_string(),
        default_web_command: cmd,
        detected_by: detected_by.to_string(),
    })
}

fn first_file<'a>(dir: &Path, names: &[&'a str]) -> Option<&'a str> {
    names.iter().copied().find(|n| dir.join(n).is_file())
}

/// Reads a marker file; a missing one, or a directory of that name, is `None`.
fn read(dir: &Path, name: &str) -> Result<Option<String>, DetectError> {
    let path = dir.join(name);
    if path.is_dir() {
        return Ok(None);
    }
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DetectError::Io { path, source }),
    }
}

fn invalid(file: &str, reason: impl ToString) -> DetectError {
    DetectError::Invalid {
        file: file.to_string(),
        reason: reason.to_string(),
    }
}

fn node(dir: &Path) -> Result<Option<Buildpack>, DetectError> {
    let Some(text) = read(dir, "package.json")? else {
        return Ok(None);
    };
    let pkg: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| invalid("package.json", e))?;
    let cmd = if pkg.pointer("/scripts/start").is_some_and(|v| v.is_string()) {
        Some("npm start".to_string())
    } else {
        let main = pkg.get("main").and_then(|v| v.as_str());
        [main, Some("server.js"), Some("index.js")]
            .into_iter()
            .flatten()
            .find(|f| dir.join(f).is_file())
            .map(|f| format!("node {f}"))
    };
    Ok(found("nodejs", "package.json", cmd))
}

fn python(dir: &Path) -> Result<Option<Buildpack>, DetectError> {
    let Some(marker) = first_file(dir, &["requirements.txt", "pyproject.toml", "Pipfile"]) else {
        return Ok(None);
    };
    let gunicorn = python_lists_gunicorn(dir)?;
    let first = |modules: &[&'static str]| {
        modules
            .iter()
            .copied()
            .find(|m| dir.join(format!("{m}.py")).is_file())
    };
    let cmd = match gunicorn.then(|| first(&["wsgi", "app", "main"])).flatten() {
        Some(m) => Some(format!("gunicorn --bind 0.0.0.0:$PORT {m}:app")),
        None => first(&["app", "main"]).map(|m| format!("python3 {m}.py")),
    };
    Ok(found("python", marker, cmd))
}

/// Whether any of the Python dependency files names gunicorn.
fn python_lists_gunicorn(dir: &Path) -> Result<bool, DetectError> {
    let is_gunicorn = |spec: &str| {
        let name_end = spec
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
            .unwrap_or(spec.len());
        spec[..name_end].eq_ignore_ascii_case("gunicorn")
    };
    if let Some(text) = read(dir, "requirements.txt")?
        && text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .any(is_gunicorn)
    {
        return Ok(true);
    }
    if let Some(text) = read(dir, "pyproject.toml")? {
        let doc: toml::Table = text.parse().map_err(|e| invalid("pyproject.toml", e))?;
        let deps = doc
            .get("project")
            .and_then(|p| p.get("dependencies"))
            .and_then(|d| d.as_array());
        if deps.is_some_and(|d| d.iter().filter_map(|v| v.as_str()).any(is_gunicorn)) {
            return Ok(true);
        }
        let poetry = doc
            .get("tool")
            .and_then(|t| t.get("poetry"))
            .and_then(|p| p.get("dependencies"))
            .and_then(|d| d.as_table());
        if poetry.is_some_and(|d| d.keys().any(|k| is_gunicorn(k))) {
            return Ok(true);
        }
    }
    if let Some(text) = read(dir, "Pipfile")? {
        let doc: toml::Table = text.parse().map_err(|e| invalid("Pipfile", e))?;
        let packages = doc.get("packages").and_then(|p| p.as_table());
        if packages.is_some_and(|d| d.keys().any(|k| is_gunicorn(k))) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn ruby(dir: &Path) -> Result<Option<Buildpack>, DetectError> {
    let Some(gemfile) = read(dir, "Gemfile")? else {
        return Ok(None);
    };
    let rails = gemfile.lines().any(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        matches!(words.as_slice(), ["gem", name, ..]
            if name.trim_end_matches(',').trim_matches(['\'', '"']) == "rails")
    });
    // Through bundler, so the gems in vendor/bundle are found.
    let cmd = if rails {
        Some("bundle exec rails server -b 0.0.0.0 -p $PORT".to_string())
    } else if dir.join("config.ru").is_file() {
        Some("bundle exec rackup -p $PORT -o 0.0.0.0".to_string())
    } else if dir.join("app.rb").is_file() {
        Some("bundle exec ruby app.rb".to_string())
    } else {
        None
    };
    Ok(found("ruby", "Gemfile", cmd))
}

fn go(dir: &Path) -> Result<Option<Buildpack>, DetectError> {
    let Some(gomod) = read(dir, "go.mod")? else {
        return Ok(None);
    };
    // bin/compile builds the root package as bin/<module name> and cmd/<name> as bin/<name>.
    let cmd = if go_root_is_main(dir)? {
        go_module_name(&gomod).map(|n| format!("/app/bin/{n}"))
    } else {
        match file_names(&dir.join("cmd"), |t| t.is_dir())?.as_slice() {
            [only] => Some(format!("/app/bin/{only}")),
            _ => None,
        }
    };
    Ok(found("go", "go.mod", cmd))
}

/// The last element of the module path without a major version suffix.
fn go_module_name(gomod: &str) -> Option<String> {
    let path = gomod.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("module")?;
        rest.starts_with(char::is_whitespace)
            .then(|| rest.trim().trim_matches('"').to_string())
    })?;
    let mut elems = path.rsplit('/');
    let last = elems.next()?;
    let is_major =
        last.len() > 1 && last.starts_with('v') && last[1..].bytes().all(|b| b.is_ascii_digit());
    let name = if is_major { elems.next()? } else { last };
    (!name.is_empty()).then(|| name.to_string())
}

fn go_root_is_main(dir: &Path) -> Result<bool, DetectError> {
    for name in file_names(dir, |t| t.is_file())? {
        if !name.ends_with(".go") || name.ends_with("_test.go") {
            continue;
        }
        let text = read(dir, &name)?.unwrap_or_default();
        let main = text.lines().any(|l| {
            l.strip_prefix("package")
                .is_some_and(|r| r.starts_with(char::is_whitespace) && r.trim() == "main")
        });
        if main {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The names of the entries of `dir` whose type passes `keep`, sorted; none if `dir` is missing.
fn file_names(dir: &Path, keep: fn(&fs::FileType) -> bool) -> Result<Vec<String>, DetectError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(DetectError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| keep(&t)))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

fn php(dir: &Path) -> Result<Option<Buildpack>, DetectError> {
    let Some(marker) = first_file(dir, &["composer.json", "index.php"]) else {
        return Ok(None);
    };
    let root = if dir.join("public/index.php").is_file() {
        "public"
    } else {
        "."
    };
    let cmd = format!("php -S 0.0.0.0:$PORT -t {root}");
    Ok(found("php", marker, Some(cmd)))
}

fn java(dir: &Path) -> Result<Option<Buildpack>, DetectError> {
    // bin/compile puts what it builds at app.jar; a single committed jar runs as it is.
    let java = |marker: &str, jar: &str| {
        found(
            "java",
            marker,
            Some(format!("java -Dserver.port=$PORT -jar {jar}")),
        )
    };
    let build_files = [
        "pom.xml",
        "mvnw",
        "build.gradle",
        "build.gradle.kts",
        "gradlew",
    ];
    if let Some(marker) = first_file(dir, &build_files) {
        return Ok(java(marker, "app.jar"));
    }
    let files = file_names(dir, |t| t.is_file())?;
    let jars: Vec<&String> = files.iter().filter(|n| n.ends_with(".jar")).collect();
    if let [jar] = jars.as_slice() {
        return Ok(java(jar, jar));
    }
    Ok(match files.iter().find(|n| n.ends_with(".java")) {
        Some(source) if jars.is_empty() => java(source, "app.jar"),
        _ => None,
    })
}

fn rust(dir: &Path) -> Result<Option<Buildpack>, DetectError> {
    let Some(text) = read(dir, "Cargo.toml")? else {
        return Ok(None);
    };
    let doc: toml::Table = text.parse().map_err(|e| invalid("Cargo.toml", e))?;
    let package = doc
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str());
    let bins: Vec<&str> = doc
        .get("bin")
        .and_then(|b| b.as_array())
        .into_iter()
        .flatten()
        .filter_map(|b| b.get("name").and_then(|n| n.as_str()))
        .collect();
    // bin/compile copies the binaries to bin/. A virtual workspace or several binaries need a
    // Procfile to say which one serves.
    let web = match package {
        Some(p) if dir.join("src/main.rs").is_file() || bins.contains(&p) => Some(p),
        _ => match bins.as_slice() {
            [only] => Some(*only),
            _ => None,
        },
    };
    Ok(found(
        "rust",
        "Cargo.toml",
        web.map(|b| format!("/app/bin/{b}")),
    ))
}

fn static_site(dir: &Path) -> Result<Option<Buildpack>, DetectError> {
    let config = read(dir, "static.json")?;
    let index = dir.join("index.html").is_file();
    let public = dir.join("public").is_dir();
    let marker = match (&config, index, public) {
        (Some(_), _, _) => "static.json",
        (None, true, _) => "index.html",
        (None, false, true) => "public",
        (None, false, false) => return Ok(None),
    };
    let configured = match config {
        Some(text) => {
            let doc: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| invalid("static.json", e))?;
            doc.get("root").and_then(|r| r.as_str()).map(|r| {
                let r = r.strip_prefix("./").unwrap_or(r).trim_end_matches('/');
                r.to_string()
            })
        }
        None => None,
    };
    let root = match configured {
        Some(r) if !r.is_empty() && r != "." => format!("/app/{r}"),
        Some(_) => "/app".to_string(),
        None if !index && public => "/app/public".to_string(),
        None => "/app".to_string(),
    };
    Ok(found(
        "static",
        marker,
        Some(format!("{STATIC_SERVER} -h {root}")),
    ))
}
