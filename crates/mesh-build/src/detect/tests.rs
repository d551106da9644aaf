use std::fs;
use std::path::Path;

use super::*;

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    dir
}

fn detect(files: &[(&str, &str)]) -> Buildpack {
    detect_buildpack(tree(files).path()).unwrap()
}

fn summary(b: &Buildpack) -> (&str, &str, Option<&str>) {
    (
        b.name.as_str(),
        b.detected_by.as_str(),
        b.default_web_command.as_deref(),
    )
}

#[test]
fn formula_follows_dockerfile_only_on_first_deploy() {
    let with = tree(&[("Dockerfile", "FROM scratch\n")]);
    let without = tree(&[]);
    let (d, b) = (Formula::Dockerfile, Formula::Buildpack);
    assert_eq!(choose_formula(with.path(), true, None, None), d);
    assert_eq!(choose_formula(without.path(), true, None, None), b);
    // Later deploys keep the stack's formula whatever the source holds.
    assert_eq!(choose_formula(with.path(), false, Some(b), None), b);
    assert_eq!(choose_formula(without.path(), false, Some(d), None), d);
    assert_eq!(choose_formula(with.path(), false, None, None), b);
    // A flag overrides everything.
    assert_eq!(choose_formula(with.path(), true, None, Some(b)), b);
    assert_eq!(choose_formula(without.path(), false, Some(b), Some(d)), d);
}

#[test]
fn a_dockerfile_directory_does_not_count() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join(DOCKERFILE)).unwrap();
    assert_eq!(
        choose_formula(dir.path(), true, None, None),
        Formula::Buildpack
    );
}

#[test]
fn node_prefers_the_start_script_then_main() {
    let b = detect(&[("package.json", r#"{"scripts":{"start":"node srv.js"}}"#)]);
    assert_eq!(summary(&b), ("nodejs", "package.json", Some("npm start")));
    let b = detect(&[("package.json", r#"{"main":"lib/server.js"}"#)]);
    assert_eq!(b.default_web_command.as_deref(), Some("node lib/server.js"));
    let b = detect(&[("package.json", "{}")]);
    assert_eq!(b.default_web_command.as_deref(), Some("node index.js"));
}

#[test]
fn invalid_package_json_names_the_file() {
    let err = detect_buildpack(tree(&[("package.json", "{nope")]).path()).unwrap_err();
    assert!(err.to_string().starts_with("package.json: "), "{err}");
}

#[test]
fn python_uses_gunicorn_when_listed() {
    let b = detect(&[
        ("requirements.txt", "flask==3.0\nGunicorn>=21 # server\n"),
        ("app.py", ""),
    ]);
    assert_eq!(
        summary(&b),
        (
            "python",
            "requirements.txt",
            Some("gunicorn --bind 0.0.0.0:$PORT app:app")
        )
    );
    let b = detect(&[
        (
            "pyproject.toml",
            "[project]\nname = \"x\"\ndependencies = [\"gunicorn~=22\"]\n",
        ),
        ("main.py", ""),
    ]);
    assert_eq!(
        summary(&b),
        (
            "python",
            "pyproject.toml",
            Some("gunicorn --bind 0.0.0.0:$PORT main:app")
        )
    );
    let b = detect(&[
        ("Pipfile", "[packages]\ngunicorn = \"*\"\n"),
        ("wsgi.py", ""),
    ]);
    assert_eq!(
        b.default_web_command.as_deref(),
        Some("gunicorn --bind 0.0.0.0:$PORT wsgi:app")
    );
}

#[test]
fn python_falls_back_to_the_script() {
    let b = detect(&[("requirements.txt", "gunicorn-extras\n"), ("main.py", "")]);
    assert_eq!(b.default_web_command.as_deref(), Some("python main.py"));
    let b = detect(&[("requirements.txt", "flask\n")]);
    assert_eq!(b.default_web_command, None);
}

#[test]
fn other_languages_are_detected_with_their_commands() {
    type Files = &'static [(&'static str, &'static str)];
    type Want = (&'static str, &'static str, Option<&'static str>);
    let cases: [(Files, Want); 10] = [
        (
            &[("Gemfile", "source 'x'\ngem 'rails', '~> 7'\n")],
            (
                "ruby",
                "Gemfile",
                Some("bundle exec rails server -b 0.0.0.0 -p $PORT"),
            ),
        ),
        (
            &[("Gemfile", "gem 'sinatra'\n"), ("config.ru", "")],
            (
                "ruby",
                "Gemfile",
                Some("bundle exec rackup --host 0.0.0.0 --port $PORT"),
            ),
        ),
        (
            &[("go.mod", "module x\n")],
            ("go", "go.mod", Some("./bin/app")),
        ),
        (
            &[("index.php", "<?php")],
            ("php", "index.php", Some("php -S 0.0.0.0:$PORT -t .")),
        ),
        (
            &[("composer.json", "{}"), ("public/index.php", "")],
            (
                "php",
                "composer.json",
                Some("php -S 0.0.0.0:$PORT -t public"),
            ),
        ),
        (
            &[("pom.xml", "<project/>")],
            (
                "java",
                "pom.xml",
                Some("java -Dserver.port=$PORT -jar target/*.jar"),
            ),
        ),
        (
            &[("build.gradle.kts", "")],
            (
                "java",
                "build.gradle.kts",
                Some("java -Dserver.port=$PORT -jar build/libs/*.jar"),
            ),
        ),
        (
            &[("app.jar", "")],
            (
                "java",
                "app.jar",
                Some("java -Dserver.port=$PORT -jar app.jar"),
            ),
        ),
        (
            &[(
                "Cargo.toml",
                "[package]\nname = \"shop\"\nversion = \"0.1.0\"\n",
            )],
            ("rust", "Cargo.toml", Some("./target/release/shop")),
        ),
        (
            &[("public/index.html", "<p>")],
            (
                "static",
                "public/index.html",
                Some("mesh-static-server --listen 0.0.0.0:$PORT public"),
            ),
        ),
    ];
    for (files, want) in cases {
        assert_eq!(summary(&detect(files)), want, "{files:?}");
    }
}

#[test]
fn ambiguous_or_missing_markers_give_no_command_or_no_match() {
    // Two jars: no guess which one runs.
    let dir = tree(&[("a.jar", ""), ("b.jar", "")]);
    assert!(matches!(
        detect_buildpack(dir.path()),
        Err(DetectError::NoneMatched)
    ));
    let b = detect(&[("Cargo.toml", "[workspace]\nmembers = []\n")]);
    assert_eq!(b.default_web_command, None);
}

#[test]
fn priority_order_prefers_earlier_buildpacks() {
    // A Node app with a static landing page and a Python helper is still a Node app.
    let b = detect(&[
        ("index.html", ""),
        ("requirements.txt", ""),
        ("package.json", "{}"),
    ]);
    assert_eq!(b.name, "nodejs");
    let b = detect(&[("index.html", ""), ("go.mod", "")]);
    assert_eq!(b.name, "go");
}

#[test]
fn no_match_lists_what_was_looked_for() {
    let err = detect_buildpack(tree(&[("README.md", "")]).path())
        .unwrap_err()
        .to_string();
    for marker in [
        "package.json",
        "Pipfile",
        "go.mod",
        "Cargo.toml",
        "index.html",
    ] {
        assert!(err.contains(marker), "{err}");
    }
}

#[test]
fn markers_must_be_files() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("go.mod")).unwrap();
    fs::create_dir(dir.path().join("package.json")).unwrap();
    fs::write(Path::new(dir.path()).join("index.html"), "").unwrap();
    assert_eq!(detect_buildpack(dir.path()).unwrap().name, "static");
}
