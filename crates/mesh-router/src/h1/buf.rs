//! A read buffer that grows up to a limit and reuses its space once read.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes read from a socket and not yet used: `data[start..end]`.
pub(crate) struct ReadBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

/// The buffer holds `limit` unread bytes and the caller still has no complete message.
#[derive(Debug, thiserror::Error)]
#[error("buffer full")]
pub(crate) struct Full;

impl ReadBuf {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            data: vec![0; capacity],
            start: 0,
            end: 0,
        }
    }

    /// The unread bytes.
    pub(crate) fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Marks `n` unread bytes as used.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Makes room for more bytes (moving unread ones to the front, or growing up to `limit`).
    fn make_room(&mut self, limit: usize) -> Result<(), Full> {
        if self.end < self.data.len() {
            return Ok(());
        }
        if self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            return Ok(());
        }
        if self.data.len() >= limit {
            return Err(Full);
        }
        let grown = (self.data.len() * 2).max(1024).min(limit);
        self.data.resize(grown, 0);
        Ok(())
    }

    /// Whether another read could add bytes without passing `limit`.
    pub(crate) fn has_room(&self, limit: usize) -> bool {
        self.end < self.data.len() || self.start > 0 || self.data.len() < limit
    }

    /// Reads once from `io`; `Ok(0)` is the end of the stream. Fails with `Full` (as
    /// `InvalidData`) when `limit` unread bytes are already held.
    pub(crate) async fn read_from<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        limit: usize,
    ) -> io::Result<usize> {
        self.make_room(limit)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let n = io.read(&mut self.data[self.end..]).await?;
        self.end += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn grows_to_the_limit_then_compacts() {
        let mut b = ReadBuf::new(4);
        let mut src: &[u8] = b"abcdefghij";
        assert_eq!(b.read_from(&mut src, 8).await.expect("read"), 4);
        assert_eq!(b.read_from(&mut src, 8).await.expect("read"), 4);
        assert_eq!(b.filled(), b"abcdefgh");
        assert!(b.read_from(&mut src, 8).await.is_err(), "full at the limit");
        b.consume(3);
        assert_eq!(b.read_from(&mut src, 8).await.expect("read"), 2);
        assert_eq!(b.filled(), b"defghij");
        b.consume(100);
        assert!(b.is_empty());
        assert_eq!(b.len(), 0);
    }
}
