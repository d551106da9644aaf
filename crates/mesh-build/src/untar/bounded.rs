//! A reader that stops a decompression bomb: it fails once more than its cap was read and
//! remembers that it did, so the failure is reported as a size limit rather than as damage.
//!
//! It also holds a second, short-lived bound, the header window: opened around the tar parser's
//! step to the next entry, it limits what the parser may read into memory (long names, pax
//! records) before handing the entry over.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

/// Which bound a failed read hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trip {
    None,
    /// The cap on the whole stream.
    Cap,
    /// The header window.
    Window,
}

/// The state shared between the reader (inside the tar parser) and the code driving it.
#[derive(Debug)]
pub(crate) struct Guard {
    trip: Cell<Trip>,
    window: Cell<Option<u64>>,
}

impl Guard {
    pub(crate) fn trip(&self) -> Trip {
        self.trip.get()
    }

    /// From now on at most `bytes` may be read, until [`Guard::close_window`].
    pub(crate) fn open_window(&self, bytes: u64) {
        self.window.set(Some(bytes));
    }

    pub(crate) fn close_window(&self) {
        self.window.set(None);
    }
}

pub(crate) struct Bounded<R> {
    inner: R,
    left: u64,
    guard: Rc<Guard>,
}

impl<R> Bounded<R> {
    /// `inner` capped at `cap` bytes, and the guard that tells which bound was hit.
    pub(crate) fn new(inner: R, cap: u64) -> (Self, Rc<Guard>) {
        let guard = Rc::new(Guard {
            trip: Cell::new(Trip::None),
            window: Cell::new(None),
        });
        let reader = Bounded {
            inner,
            left: cap,
            guard: guard.clone(),
        };
        (reader, guard)
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let window = self.guard.window.get();
        if window == Some(0) {
            self.guard.trip.set(Trip::Window);
            return Err(io::Error::other(
                "the headers of one entry exceed their limit",
            ));
        }
        if self.left == 0 {
            // One probe byte tells a stream that ends exactly at the cap from one that goes on.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.guard.trip.set(Trip::Cap);
            return Err(io::Error::other(
                "the decompressed stream exceeds its limit",
            ));
        }
        let allowed = window.map_or(self.left, |w| w.min(self.left));
        let max = buf
            .len()
            .min(usize::try_from(allowed).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        if let Some(w) = window {
            self.guard.window.set(Some(w - n as u64));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_ending_at_the_cap_is_fine_and_one_beyond_trips_it() {
        let (mut r, guard) = Bounded::new(&[1u8; 10][..], 10);
        let mut out = Vec::new();
        assert_eq!(r.read_to_end(&mut out).unwrap(), 10);
        assert_eq!(guard.trip(), Trip::None);

        let (mut r, guard) = Bounded::new(&[1u8; 11][..], 10);
        assert!(r.read_to_end(&mut Vec::new()).is_err());
        assert_eq!(guard.trip(), Trip::Cap);
    }

    #[test]
    fn the_window_bounds_reads_only_while_open() {
        let (mut r, guard) = Bounded::new(&[1u8; 100][..], 1000);
        guard.open_window(4);
        let mut buf = [0u8; 16];
        assert_eq!(r.read(&mut buf).unwrap(), 4);
        assert!(r.read(&mut buf).is_err());
        assert_eq!(guard.trip(), Trip::Window);
        guard.close_window();
        assert_eq!(r.read(&mut buf).unwrap(), 16);
    }
}
