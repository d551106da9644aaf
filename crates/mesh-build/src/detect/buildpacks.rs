//! One function per built-in buildpack: each looks for its marker files and guesses a web
//! command. The order of [`ALL`] is the priority order.

use std::fs;
use std::io;
use std::path::Path;

use super::{Buildpack, DetectError, STATIC_SERVER_COMMAND};

type Detect = fn(&Path) -> Result<Option<Buildpack>, DetectError>;

pub(super) const ALL: [Detect; 8] = [node, python, ruby, go, php, java, rust, static_site];

/// For the error when nothing matched; keep in step with [`ALL`].
pub(super) const LOOKED_FOR: &str = "package.json (nodejs), requirements.txt, pyproject.toml or \
     Pipfile (python), Gemfile (ruby), go.mod (go), composer.json or index.php (php), pom.xml, \
     build.gradle, build.gradle.kts or a single .jar (java), Cargo.toml (rust), index.html or \
     public/index.html (static)";

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
    let cmd = if pkg
        .pointer("/scripts/start")
        .and_then(|v| v.as_str())
        .is_some()
    {
        "npm start".to_string()
    } else {
        let main = pkg
            .get("main")
            .and_then(|v| v.as_str())
            .unwrap_or("index.js");
        format!("node {main}")
    };
    Ok(found("nodejs", "package.json", Some(cmd)))
}

fn python(dir: &Path) -> Result<Option<Buildpack>, DetectError> {
    let Some(marker) = first_file(dir, &["requirements.txt", "pyproject.toml", "Pipfile"]) else {
        return Ok(None);
    };
    let gunicorn = python_lists_gunicorn(dir)?;
    let module = ["wsgi", "app", "main"]
        .into_iter()
        .find(|m| dir.join(format!("{m}.py")).is_file());
    let cmd = match (gunicorn, module) {
        (true, Some(m)) => Some(format!("gunicorn --bind 0.0.0.0:$PORT {m}:app")),
        (false, Some(m)) if m != "wsgi" => Some(format!("python {m}.py")),
        _ => None,
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
        let l = l.trim();
        l.starts_with("gem 'rails'") || l.starts_with("gem \"rails\"")
    });
    let cmd = if rails {
        Some("bundle exec rails server -b 0.0.0.0 -p $PORT".to_string())
    } else if dir.join("config.ru").is_file() {
        Some("bundle exec rackup --host 0.0.0.0 --port $PORT".to_string())
    } else {
        None
    };
    Ok(found("ruby", "Gemfile", cmd))
}

fn go(dir: &Path) -> Result<Option<Buildpack>, DetectError> {
    // The go buildpack builds the main package to bin/app.
    Ok(first_file(dir, &["go.mod"]).and_then(|m| found("go", m, Some("./bin/app".into()))))
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
    let java = |marker: &str, jar: &str| {
        found(
            "java",
            marker,
            Some(format!("java -Dserver.port=$PORT -jar {jar}")),
        )
    };
    if let Some(marker) = first_file(dir, &["pom.xml"]) {
        return Ok(java(marker, "target/*.jar"));
    }
    if let Some(marker) = first_file(dir, &["build.gradle", "build.gradle.kts"]) {
        return Ok(java(marker, "build/libs/*.jar"));
    }
    let entries = fs::read_dir(dir).map_err(|source| DetectError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let jars: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jar"))
        .collect();
    Ok(match jars.as_slice() {
        [jar] => java(jar, jar),
        _ => None,
    })
}

fn rust(dir: &Path) -> Result<Option<Buildpack>, DetectError> {
    let Some(text) = read(dir, "Cargo.toml")? else {
        return Ok(None);
    };
    let doc: toml::Table = text.parse().map_err(|e| invalid("Cargo.toml", e))?;
    // A virtual workspace manifest names no binary, so the app must say so in a Procfile.
    let cmd = doc
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(|n| format!("./target/release/{n}"));
    Ok(found("rust", "Cargo.toml", cmd))
}

fn static_site(dir: &Path) -> Result<Option<Buildpack>, DetectError> {
    Ok(
        match first_file(dir, &["index.html", "public/index.html"]) {
            Some("index.html") => found(
                "static",
                "index.html",
                Some(format!("{STATIC_SERVER_COMMAND} .")),
            ),
            Some(marker) => found(
                "static",
                marker,
                Some(format!("{STATIC_SERVER_COMMAND} public")),
            ),
            None => None,
        },
    )
}
