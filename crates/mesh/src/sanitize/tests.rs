use super::*;

#[test]
fn newline_and_tab_stay_and_other_controls_are_escaped() {
    assert_eq!(clean("plain text, ünïcode ✓"), "plain text, ünïcode ✓");
    assert_eq!(clean("a\tb\nc"), "a\tb\nc");
    assert_eq!(clean("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
    assert_eq!(clean("over\rwrite"), "over\\x0dwrite");
    assert_eq!(
        clean("bell\x07 nul\0 del\x7f"),
        "bell\\x07 nul\\x00 del\\x7f"
    );
    // The one-character CSI and the other C1 controls.
    assert_eq!(clean("\u{9b}2J \u{80} \u{9f}"), "\\u{9b}2J \\u{80} \\u{9f}");
    // Just past C1: a printable character.
    assert_eq!(clean("\u{a0}é"), "\u{a0}é");
    // A window-title sequence (OSC ... BEL) loses both its ESC and its BEL.
    assert_eq!(clean("\x1b]0;pwned\x07"), "\\x1b]0;pwned\\x07");
}

#[test]
fn raw_mode_keeps_everything() {
    assert_eq!(Mode::Raw.apply("\x1b[2J\r"), "\x1b[2J\r");
    assert_eq!(Mode::Escaped.apply("\x1b[2J\r"), "\\x1b[2J\\x0d");
    assert_eq!(Mode::from_raw_flag(true), Mode::Raw);
    assert_eq!(Mode::from_raw_flag(false), Mode::Escaped);
}

#[test]
fn a_stream_cut_anywhere_reads_as_the_whole() {
    let text = "é\x1b[1mß✓😀\u{9b}H\tend\n";
    let bytes = text.as_bytes();
    let whole = clean(text);
    // Every cut into two, and every byte on its own.
    for cut in 0..=bytes.len() {
        let mut s = Sanitizer::new();
        let mut got = s.push(&bytes[..cut]);
        got += &s.push(&bytes[cut..]);
        got += &s.finish();
        assert_eq!(got, whole, "cut at {cut}");
    }
    let mut s = Sanitizer::new();
    let mut got = String::new();
    for b in bytes {
        got += &s.push(std::slice::from_ref(b));
    }
    got += &s.finish();
    assert_eq!(got, whole);
    // The C1 CSI split between its two bytes is still escaped, not printed.
    let mut s = Sanitizer::new();
    assert_eq!(s.push(b"a\xc2"), "a");
    assert_eq!(s.push(b"\x9b"), "\\u{9b}");
}

#[test]
fn bytes_that_are_not_utf8_print_as_replacement_characters() {
    let mut s = Sanitizer::new();
    assert_eq!(s.push(b"a\xffb\xc0\x80c"), "a\u{fffd}b\u{fffd}\u{fffd}c");
    // A lone 0x9b byte (CSI in 8-bit terminals) is not UTF-8.
    assert_eq!(s.push(b"\x9b2J"), "\u{fffd}2J");
    // A character cut at the stream's end.
    assert_eq!(s.push(b"x\xe2\x9c"), "x");
    assert_eq!(s.finish(), "\u{fffd}");
    assert_eq!(s.finish(), "");
    // Invalid bytes split across chunks.
    let mut s = Sanitizer::new();
    assert_eq!(s.push(b"\xe2"), "");
    assert_eq!(s.push(b"z"), "\u{fffd}z");
}

#[test]
fn json_lines_keep_their_value_without_raw_controls() {
    let line = "{\"text\":\"a\u{9b}2J\u{7f}\"}";
    let safe = json_line(line);
    assert_eq!(safe, "{\"text\":\"a\\u009b2J\\u007f\"}");
    let a: serde_json::Value = serde_json::from_str(line).unwrap();
    let b: serde_json::Value = serde_json::from_str(&safe).unwrap();
    assert_eq!(a, b);
    assert_eq!(json_line("{\"a\":1}"), "{\"a\":1}");
}
