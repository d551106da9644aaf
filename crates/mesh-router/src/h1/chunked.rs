//! The chunked transfer coding (RFC 9112 7.1), scanned as it streams by: where the body ends,
//! which bytes are data, without copying. Strict CRLF framing, so a message's end is never in
//! doubt between the router and an instance (request smuggling).

/// What the next `n` input bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Chunk sizes, extensions, line ends: framing only.
    Framing(usize),
    /// Chunk data.
    Data(usize),
    /// Framing that ends the body (the last chunk and its trailers).
    Done(usize),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ChunkError {
    #[error("invalid chunk size")]
    Size,
    #[error("invalid chunked framing")]
    Framing,
    #[error("chunked trailers too large")]
    TrailersTooLarge,
}

const MAX_TRAILER_BYTES: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size; `digits` seen so far.
    Size {
        value: u64,
        digits: u8,
    },
    /// After the size: optional whitespace, then `;` and extensions, or CR.
    SizeWs {
        value: u64,
    },
    /// Extensions until CR (no control characters).
    Ext {
        value: u64,
    },
    SizeLf {
        value: u64,
    },
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// A trailer field's name, until `:`.
    TrailerName,
    /// A trailer field's value, until CR.
    TrailerValue,
    TrailerLf {
        empty: bool,
    },
    Done,
}

/// Scans one chunked body.
#[derive(Debug)]
pub(crate) struct Chunked {
    state: State,
    trailer_bytes: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Self {
            state: State::Size {
                value: 0,
                digits: 0,
            },
            trailer_bytes: 0,
        }
    }
}

impl Chunked {
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Classifies the start of `input` (not empty, body not done).
    pub(crate) fn step(&mut self, input: &[u8]) -> Result<Step, ChunkError> {
        if let State::Data { left } = self.state {
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
            let left = left - n as u64;
            self.state = if left == 0 {
                State::DataCr
            } else {
                State::Data { left }
            };
            return Ok(Step::Data(n));
        }
        for (i, &b) in input.iter().enumerate() {
            self.state = self.next(b)?;
            match self.state {
                State::Data { .. } => return Ok(Step::Framing(i + 1)),
                State::Done => return Ok(Step::Done(i + 1)),
                _ => {}
            }
        }
        Ok(Step::Framing(input.len()))
    }

    fn next(&mut self, b: u8) -> Result<State, ChunkError> {
        Ok(match self.state {
            State::Size { value, digits } => match hex(b) {
                Some(d) => {
                    if digits >= 15 {
                        return Err(ChunkError::Size);
                    }
                    State::Size {
                        value: value << 4 | u64::from(d),
                        digits: digits + 1,
                    }
                }
                None if digits == 0 => return Err(ChunkError::Size),
                None => match b {
                    b'\r' => State::SizeLf { value },
                    b';' => State::Ext { value },
                    b' ' | b'\t' => State::SizeWs { value },
                    _ => return Err(ChunkError::Size),
                },
            },
            State::SizeWs { value } => match b {
                b' ' | b'\t' => State::SizeWs { value },
                b';' => State::Ext { value },
                b'\r' => State::SizeLf { value },
                _ => return Err(ChunkError::Size),
            },
            State::Ext { value } => match b {
                b'\r' => State::SizeLf { value },
                b if is_ctl(b) => return Err(ChunkError::Framing),
                _ => State::Ext { value },
            },
            State::SizeLf { value } => match (b, value) {
                (b'\n', 0) => State::TrailerStart,
                (b'\n', left) => State::Data { left },
                _ => return Err(ChunkError::Framing),
            },
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return Err(ChunkError::Framing),
            },
            State::DataLf => match b {
                b'\n' => State::Size {
                    value: 0,
                    digits: 0,
                },
                _ => return Err(ChunkError::Framing),
            },
            State::TrailerStart | State::TrailerName | State::TrailerValue => {
                self.trailer_bytes += 1;
                if self.trailer_bytes > MAX_TRAILER_BYTES {
                    return Err(ChunkError::TrailersTooLarge);
                }
                // Field lines only (`name: value`), so nothing that is not one (a request
                // line, a folded line) can hide in the trailers.
                match (self.state, b) {
                    (State::TrailerStart, b'\r') => State::TrailerLf { empty: true },
                    (State::TrailerStart | State::TrailerName, b) if is_tchar(b) => {
                        State::TrailerName
                    }
                    (State::TrailerName, b':') => State::TrailerValue,
                    (State::TrailerValue, b'\r') => State::TrailerLf { empty: false },
                    (State::TrailerValue, b) if !is_ctl(b) => State::TrailerValue,
                    _ => return Err(ChunkError::Framing),
                }
            }
            State::TrailerLf { empty } => match b {
                b'\n' if empty => State::Done,
                b'\n' => State::TrailerStart,
                _ => return Err(ChunkError::Framing),
            },
            State::Data { .. } | State::Done => return Err(ChunkError::Framing),
        })
    }
}

/// Control characters other than horizontal tab.
fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// A token character (RFC 9110 5.6.2), as in header names.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `piece` bytes; returns (data, total consumed, done).
    fn scan(input: &[u8], piece: usize) -> Result<(Vec<u8>, usize, bool), ChunkError> {
        let mut c = Chunked::default();
        let mut data = Vec::new();
        let mut at = 0;
        while at < input.len() && !c.is_done() {
            let end = (at + piece).min(input.len());
            let mut slice = &input[at..end];
            while !slice.is_empty() && !c.is_done() {
                let n = match c.step(slice)? {
                    Step::Data(n) => {
                        data.extend_from_slice(&slice[..n]);
                        n
                    }
                    Step::Framing(n) | Step::Done(n) => n,
                };
                slice = &slice[n..];
                at += n;
            }
        }
        Ok((data, at, c.is_done()))
    }

    #[test]
    fn finds_data_and_the_end_in_any_split() {
        let body =
            b"5\r\nhello\r\n1a ;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for piece in [1, 2, 3, 7, 100] {
            let (data, used, done) = scan(body, piece).expect("valid");
            assert!(done);
            assert_eq!(data, b"helloabcdefghijklmnopqrstuvwxyz");
            assert_eq!(&body[used..], b"NEXT", "piece {piece}");
        }
    }

    #[test]
    fn an_unfinished_body_is_not_done() {
        let (data, used, done) = scan(b"5\r\nhel", 2).expect("valid so far");
        assert!(!done);
        assert_eq!(data, b"hel");
        assert_eq!(used, 6);
    }

    #[test]
    fn refuses_bad_framing() {
        for bad in [
            &b"x\r\n"[..],
            b"5\nhello\r\n",
            b"5\r\nhelloXX",
            b"ffffffffffffffffff\r\n",
            b"0\r\nX: 1\n\n",
            b"\r\n",
            b"5 5\r\nhello\r\n",
            b"5;a\0b\r\nhello\r\n",
            b"0\r\nGET /x HTTP/1.1\r\n\r\n",
            b"0\r\n folded: 1\r\n\r\n",
            b"0\r\n: empty\r\n\r\n",
        ] {
            assert!(
                scan(bad, 100).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..2000 {
            trailers.extend_from_slice(b"X-Long: 0123456789\r\n");
        }
        assert_eq!(
            scan(&trailers, 100).err(),
            Some(ChunkError::TrailersTooLarge)
        );
    }
}
