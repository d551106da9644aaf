//! The instances one request has been sent to, so a retry goes to another one.

use crate::table::Upstream;

#[cfg(test)]
mod tests;

/// Instances kept without touching the heap: a request nearly always needs one or two, and
/// `max_attempts` defaults to 3. A request that tries more (a larger `max_attempts` over a
/// large upstream whose instances keep refusing) moves them all to a `Vec` once, so none is
/// ever forgotten and tried again.
const INLINE: usize = 8;

/// Indexes into the route's `Upstream::instances`, in the order they were tried.
pub(super) struct Tried {
    inline: [usize; INLINE],
    len: usize,
    /// Every index once more than `INLINE` were tried (empty, unallocated, before).
    spilled: Vec<usize>,
}

impl Tried {
    pub(super) fn new() -> Self {
        Self {
            inline: [0; INLINE],
            len: 0,
            spilled: Vec::new(),
        }
    }

    pub(super) fn as_slice(&self) -> &[usize] {
        if self.spilled.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spilled
        }
    }

    pub(super) fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&mut self, index: usize) {
        if self.spilled.is_empty() && self.len < INLINE {
            self.inline[self.len] = index;
            self.len += 1;
            return;
        }
        if self.spilled.is_empty() {
            self.spilled.reserve(INLINE * 2);
            self.spilled.extend_from_slice(&self.inline);
        }
        self.spilled.push(index);
    }

    /// Picks an eligible instance of `upstream` not tried yet, and counts it as tried.
    pub(super) fn pick(&mut self, upstream: &Upstream) -> Option<usize> {
        let index = upstream.pick(self.as_slice())?;
        self.push(index);
        Some(index)
    }

    /// Whether a connect failure on the instance just picked ends the request (502) instead
    /// of going to another instance: `attempts` (this one included) reached `max_attempts`,
    /// or every instance of the upstream (`instances`) has been tried.
    pub(super) fn last_chance(&self, attempts: u32, max_attempts: u32, instances: usize) -> bool {
        attempts >= max_attempts || self.len() >= instances
    }
}
