//! What an app wrote, made safe to print on the operator's terminal.
//!
//! App output (logs, `mesh run` output, build and release output, deployment messages) is
//! untrusted: an escape sequence in it could move the cursor, rewrite what is on the screen,
//! set the window title or, on some terminals, answer back as if typed. Every control
//! character except newline and tab is printed as a visible escape instead:
//!
//! - C0 controls (U+0000–U+001F) and DEL (U+007F) as `\xNN`, such as `\x1b` for ESC and `\x0d`
//!   for a carriage return; an escape sequence's ESC is replaced, so the rest of it (`[31m`)
//!   shows as plain text;
//! - C1 controls (U+0080–U+009F, such as U+009B, a one-character CSI) as `\u{NN}`;
//! - bytes that are not UTF-8 as U+FFFD (`�`).
//!
//! [`Sanitizer`] works on a stream of bytes cut anywhere (a UTF-8 character split across two
//! chunks comes out whole); [`clean`] on one string, as one chunk.

/// How control characters print: escaped (the default) or as sent (`--raw`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Escaped,
    Raw,
}

impl Mode {
    pub fn from_raw_flag(raw: bool) -> Mode {
        if raw { Mode::Raw } else { Mode::Escaped }
    }

    /// `text` as this mode prints it.
    pub fn apply(self, text: &str) -> String {
        match self {
            Mode::Raw => text.to_string(),
            Mode::Escaped => clean(text),
        }
    }
}

/// Appends `c` to `out`, escaped when it is a control character other than newline and tab.
fn push_char(c: char, out: &mut String) {
    use std::fmt::Write;
    match c {
        '\n' | '\t' => out.push(c),
        '\0'..='\x1f' | '\x7f' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        '\u{80}'..='\u{9f}' => {
            let _ = write!(out, "\\u{{{:02x}}}", c as u32);
        }
        _ => out.push(c),
    }
}

/// `text` with every control character but newline and tab escaped.
pub fn clean(text: &str) -> String {
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return text.to_string();
    }
    let mut s = Sanitizer::new();
    let mut out = s.push(text.as_bytes());
    out.push_str(&s.finish());
    out
}

/// A streaming sanitizer: feed it chunks of bytes as they arrive, cut anywhere; it keeps the
/// start of a UTF-8 character cut at a chunk's end until the rest arrives.
#[derive(Debug, Default)]
pub struct Sanitizer {
    /// The first bytes (at most 3) of a character the last chunk ended in.
    pending: Vec<u8>,
}

impl Sanitizer {
    pub fn new() -> Sanitizer {
        Sanitizer::default()
    }

    /// The printable text of `chunk` (and of what was pending before it).
    pub fn push(&mut self, chunk: &[u8]) -> String {
        let joined;
        let mut bytes: &[u8] = if self.pending.is_empty() {
            chunk
        } else {
            let mut v = std::mem::take(&mut self.pending);
            v.extend_from_slice(chunk);
            joined = v;
            &joined
        };
        let mut out = String::with_capacity(bytes.len());
        loop {
            match std::str::from_utf8(bytes) {
                Ok(s) => {
                    s.chars().for_each(|c| push_char(c, &mut out));
                    return out;
                }
                Err(e) => {
                    let (good, rest) = bytes.split_at(e.valid_up_to());
                    // Valid by the error's own account.
                    if let Ok(s) = std::str::from_utf8(good) {
                        s.chars().for_each(|c| push_char(c, &mut out));
                    }
                    match e.error_len() {
                        // The chunk ends inside a character: keep its start for the next.
                        None => {
                            self.pending = rest.to_vec();
                            return out;
                        }
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            bytes = &rest[n..];
                        }
                    }
                }
            }
        }
    }

    /// The end of the stream: a character left incomplete prints as U+FFFD.
    pub fn finish(&mut self) -> String {
        if self.pending.is_empty() {
            String::new()
        } else {
            self.pending.clear();
            char::REPLACEMENT_CHARACTER.to_string()
        }
    }
}

/// A JSON line as sent, with DEL and C1 controls (which JSON allows unescaped inside strings)
/// and any raw C0 control written as `\u00NN` escapes: the same JSON value, nothing a terminal
/// acts on.
pub fn json_line(line: &str) -> String {
    use std::fmt::Write;
    if !line.chars().any(char::is_control) {
        return line.to_string();
    }
    let mut out = String::with_capacity(line.len() + 16);
    for c in line.chars() {
        if c.is_control() {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
#[path = "sanitize/tests.rs"]
mod tests;
