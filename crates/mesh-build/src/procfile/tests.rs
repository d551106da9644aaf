use super::*;

#[test]
fn parses_types_comments_and_blank_lines() {
    let p = Procfile::parse(
        "# the app\n\nweb: bundle exec puma -p $PORT\r\nrelease: rake db:migrate\n  mail_worker :  ./bin/mail  \n",
    )
    .unwrap();
    let got: Vec<_> = p
        .entries
        .iter()
        .map(|e| (e.name.as_str(), e.command.as_str(), e.kind))
        .collect();
    assert_eq!(
        got,
        [
            ("web", "bundle exec puma -p $PORT", ProcessKind::Web),
            ("release", "rake db:migrate", ProcessKind::Release),
            ("mail-worker", "./bin/mail", ProcessKind::Worker),
        ]
    );
    assert_eq!(p.release(), Some("rake db:migrate"));
    assert_eq!(p.web().unwrap().command, "bundle exec puma -p $PORT");
    let services: Vec<_> = p.services().map(|e| e.name.as_str()).collect();
    assert_eq!(services, ["web", "mail-worker"]);
}

#[test]
fn commands_keep_their_own_colons() {
    let p = Procfile::parse("web: node -e 'console.log(1)' --x=a:b\n").unwrap();
    assert_eq!(p.entries[0].command, "node -e 'console.log(1)' --x=a:b");
}

fn line_error(text: &str) -> (usize, String) {
    match Procfile::parse(text).unwrap_err() {
        ProcfileError::Line { line, reason } => (line, reason),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn malformed_lines_name_their_line() {
    let (line, reason) = line_error("web: ok\n\njust a command\n");
    assert_eq!(line, 3);
    assert!(reason.contains("name: command"), "{reason}");
}

#[test]
fn empty_commands_are_refused() {
    let (line, reason) = line_error("web:   \n");
    assert_eq!(line, 1);
    assert!(reason.contains("empty"), "{reason}");
}

#[test]
fn bad_process_types_are_refused() {
    let (line, reason) = line_error("# c\nWeb: x\n");
    assert_eq!(line, 2);
    assert!(reason.contains("use lowercase"), "{reason}");
    let (_, reason) = line_error(": x\n");
    assert!(reason.contains("empty"), "{reason}");
    // Valid Procfile alphabet but not a valid service name.
    let (_, reason) = line_error("1st: x\n");
    assert!(reason.contains("start with a lowercase letter"), "{reason}");
}

#[test]
fn duplicates_are_refused_after_mapping() {
    let (line, reason) = line_error("web: a\nmail_worker: b\nmail-worker: c\n");
    assert_eq!(line, 3);
    assert!(reason.contains("line 2"), "{reason}");
}

#[test]
fn a_missing_procfile_is_none() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(Procfile::read(dir.path()).unwrap(), None);
    std::fs::write(dir.path().join(PROCFILE), "web: ./serve\n").unwrap();
    assert_eq!(
        Procfile::read(dir.path()).unwrap().unwrap().entries.len(),
        1
    );
}
