//! A reader that stops a decompression bomb: it fails once more than its cap was read and
//! remembers that it did, so the failure is reported as a size limit rather than as damage.
//! Source archives and image layers are both read through it.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

pub(crate) struct Bounded<R> {
    inner: R,
    left: u64,
    tripped: Rc<Cell<bool>>,
}

impl<R> Bounded<R> {
    /// `inner` capped at `cap` bytes, and the flag that turns true when the cap was hit.
    pub(crate) fn new(inner: R, cap: u64) -> (Self, Rc<Cell<bool>>) {
        let tripped = Rc::new(Cell::new(false));
        let reader = Bounded {
            inner,
            left: cap,
            tripped: tripped.clone(),
        };
        (reader, tripped)
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // One probe byte tells a stream that ends exactly at the cap from one that goes on.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.tripped.set(true);
            return Err(io::Error::other(
                "the decompressed stream exceeds its limit",
            ));
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}
