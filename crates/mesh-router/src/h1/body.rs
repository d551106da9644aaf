//! A client's request body as it streams to an instance: where it ends and whether it stays
//! within the size limit. The bytes go through as they came (chunked framing included).

use super::chunked::{ChunkError, Chunked, Step};
use super::head::Framing;

#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("request body too large")]
    TooLarge,
    #[error(transparent)]
    Framing(#[from] ChunkError),
}

/// Progress through one request body.
pub(crate) struct RequestBody {
    framing: Framing,
    /// Bytes still to come of a `Content-Length` body.
    left: u64,
    chunked: Chunked,
    data: u64,
    limit: u64,
}

impl RequestBody {
    pub(crate) fn new(framing: Framing, limit: u64) -> Self {
        Self {
            framing,
            left: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            chunked: Chunked::default(),
            data: 0,
            limit,
        }
    }

    /// Whether the whole body has been taken.
    pub(crate) fn done(&self) -> bool {
        match self.framing {
            Framing::Empty | Framing::UntilClose => true,
            Framing::Length(_) => self.left == 0,
            Framing::Chunked => self.chunked.is_done(),
        }
    }

    /// How many bytes at the start of `input` belong to the body.
    pub(crate) fn take(&mut self, input: &[u8]) -> Result<usize, BodyError> {
        let n = match self.framing {
            Framing::Empty | Framing::UntilClose => 0,
            Framing::Length(_) => {
                let n = usize::try_from(self.left)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                self.left -= n as u64;
                self.data += n as u64;
                n
            }
            Framing::Chunked => {
                let mut at = 0;
                while at < input.len() && !self.chunked.is_done() {
                    match self.chunked.step(&input[at..])? {
                        Step::Data(k) => {
                            self.data += k as u64;
                            at += k;
                        }
                        Step::Framing(k) | Step::Done(k) => at += k,
                    }
                }
                at
            }
        };
        if self.data > self.limit {
            return Err(BodyError::TooLarge);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_bodies_end_at_their_length() {
        let mut b = RequestBody::new(Framing::Length(5), 100);
        assert_eq!(b.take(b"abc").expect("ok"), 3);
        assert!(!b.done());
        assert_eq!(b.take(b"deGET /").expect("ok"), 2);
        assert!(b.done());
        assert_eq!(b.take(b"GET /").expect("ok"), 0);
    }

    #[test]
    fn chunked_bodies_count_data_against_the_limit() {
        let mut b = RequestBody::new(Framing::Chunked, 8);
        assert_eq!(b.take(b"4\r\nabcd\r\n").expect("ok"), 9);
        assert!(matches!(
            b.take(b"5\r\nefghi\r\n"),
            Err(BodyError::TooLarge)
        ));
        let mut b = RequestBody::new(Framing::Chunked, 8);
        assert_eq!(b.take(b"4\r\nabcd\r\n0\r\n\r\nNEXT").expect("ok"), 14);
        assert!(b.done());
        assert!(matches!(
            RequestBody::new(Framing::Chunked, 8).take(b"zz\r\n"),
            Err(BodyError::Framing(_))
        ));
    }
}
