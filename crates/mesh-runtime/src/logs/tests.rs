use std::io::Write;

use super::*;

#[test]
fn follows_complete_lines_across_calls() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("stdout.log");
    assert_eq!(read_lines(&p, 0, 1024).unwrap(), (vec![], 0));
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(b"one\ntwo\nthr").unwrap();
    let (lines, off) = read_lines(&p, 0, 1024).unwrap();
    assert_eq!(lines, ["one", "two"]);
    assert_eq!(off, 8);
    assert_eq!(read_lines(&p, off, 1024).unwrap(), (vec![], 8));
    f.write_all(b"ee\n\xffx\n").unwrap();
    let (lines, off) = read_lines(&p, off, 1024).unwrap();
    assert_eq!(lines, ["three", "\u{fffd}x"]);
    assert_eq!(off, 17);
}

#[test]
fn a_truncated_file_is_read_from_the_start_and_reads_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l");
    std::fs::write(&p, "a\nb\n").unwrap();
    assert_eq!(
        read_lines(&p, 100, 1024).unwrap(),
        (vec!["a".into(), "b".into()], 4)
    );
    std::fs::write(&p, "aaaa\nbbbb\ncccc\n").unwrap();
    assert_eq!(
        read_lines(&p, 0, 11).unwrap(),
        (vec!["aaaa".into(), "bbbb".into()], 10)
    );
}
