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
    let b = detect(&[
        ("package.json", r#"{"main":"lib/server.js"}"#),
        ("lib/server.js", ""),
        ("server.js", ""),
    ]);
    assert_eq!(b.default_web_command.as_deref(), Some("node lib/server.js"));
    // A main that is not there falls through to server.js, then index.js.
    let b = detect(&[
        ("package.json", r#"{"main":"gone.js"}"#),
        ("server.js", ""),
        ("index.js", ""),
    ]);
    assert_eq!(b.default_web_command.as_deref(), Some("node server.js"));
    let b = detect(&[("package.json", "{}"), ("index.js", "")]);
    assert_eq!(b.default_web_command.as_deref(), Some("node index.js"));
    let b = detect(&[("package.json", "{}")]);
    assert_eq!(b.default_web_command, None);
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
    assert_eq!(b.default_web_command.as_deref(), Some("python3 main.py"));
    // Without gunicorn a wsgi.py is no script to run.
    let b = detect(&[("requirements.txt", ""), ("wsgi.py", ""), ("app.py", "")]);
    assert_eq!(b.default_web_command.as_deref(), Some("python3 app.py"));
    let b = detect(&[("requirements.txt", "flask\n")]);
    assert_eq!(b.default_web_command, None);
}

#[test]
fn other_languages_are_detected_with_their_commands() {
    type Files = &'static [(&'static str, &'static str)];
    type Want = (&'static str, &'static str, Option<&'static str>);
    let java = Some("java -Dserver.port=$PORT -jar app.jar");
    let cases: [(Files, Want); 17] = [
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
                Some("bundle exec rackup -p $PORT -o 0.0.0.0"),
            ),
        ),
        (
            &[("Gemfile", ""), ("app.rb", "")],
            ("ruby", "Gemfile", Some("bundle exec ruby app.rb")),
        ),
        (
            &[
                ("go.mod", "// x\nmodule \"example.com/shop/v2\"\n"),
                ("main.go", "package main\n"),
            ],
            ("go", "go.mod", Some("/app/bin/shop")),
        ),
        (
            &[
                ("go.mod", "module x\n"),
                ("cmd/api/main.go", "package main\n"),
            ],
            ("go", "go.mod", Some("/app/bin/api")),
        ),
        (&[("go.mod", "module x\n")], ("go", "go.mod", None)),
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
        (&[("pom.xml", "<project/>")], ("java", "pom.xml", java)),
        (
            &[("gradlew", ""), ("app.jar", "")],
            ("java", "gradlew", java),
        ),
        (
            &[("build.gradle.kts", "")],
            ("java", "build.gradle.kts", java),
        ),
        (
            &[("shop.jar", ""), ("Tool.java", "")],
            (
                "java",
                "shop.jar",
                Some("java -Dserver.port=$PORT -jar shop.jar"),
            ),
        ),
        (&[("App.java", "")], ("java", "App.java", java)),
        (
            &[
                (
                    "Cargo.toml",
                    "[package]\nname = \"shop\"\nversion = \"0.1.0\"\n",
                ),
                ("src/main.rs", ""),
            ],
            ("rust", "Cargo.toml", Some("/app/bin/shop")),
        ),
        (
            &[(
                "Cargo.toml",
                "[package]\nname = \"shop\"\n[[bin]]\nname = \"serve\"\npath = \"s.rs\"\n",
            )],
            ("rust", "Cargo.toml", Some("/app/bin/serve")),
        ),
        (
            &[("public/index.html", "<p>")],
            (
                "static",
                "public",
                Some("busybox httpd -f -p $PORT -h /app/public"),
            ),
        ),
        (
            &[
                ("static.json", r#"{"root": "./dist/"}"#),
                ("index.html", ""),
            ],
            (
                "static",
                "static.json",
                Some("busybox httpd -f -p $PORT -h /app/dist"),
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

/// Every example app is detected as its own language, with a web command unless its Procfile
/// says what runs.
#[test]
fn the_examples_are_detected() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let want = [
        ("nodejs", "nodejs", Some("node server.js")),
        ("node-deps", "nodejs", Some("npm start")),
        ("procfile", "nodejs", None),
        ("cron", "nodejs", None),
        ("python", "python", Some("python3 app.py")),
        ("ruby", "ruby", Some("bundle exec ruby app.rb")),
        ("go", "go", Some("/app/bin/hello-go")),
        ("php", "php", Some("php -S 0.0.0.0:$PORT -t .")),
        (
            "java",
            "java",
            Some("java -Dserver.port=$PORT -jar app.jar"),
        ),
        ("rust", "rust", Some("/app/bin/hello-rust")),
        (
            "static",
            "static",
            Some("busybox httpd -f -p $PORT -h /app"),
        ),
    ];
    for (dir, name, web) in want {
        let b = detect_buildpack(&examples.join(dir)).unwrap();
        assert_eq!(
            (b.name.as_str(), b.default_web_command.as_deref()),
            (name, web),
            "{dir}"
        );
    }
    let dockerfile = examples.join("dockerfile");
    assert_eq!(
        choose_formula(&dockerfile, true, None, None),
        Formula::Dockerfile
    );
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
