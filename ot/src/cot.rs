//! Correlated OTs (COTs) with a global `Δ`, as OT extension
//! ([`crate::softspoken`]) produces them and every derived protocol
//! ([`crate::ot`], [`crate::one_of_n`], [`crate::arith`], [`crate::boolean`])
//! consumes them: the sender holds `Δ` and `q_j`, the receiver its choice
//! bit `r_j` and `t_j = q_j ⊕ r_j·Δ` (the C-OT form of Asharov, Lindell,
//! Schneider and Zohner, CCS 2013, §5.3). Both sides zeroize on drop and
//! print only sizes and indices.

use zeroize::Zeroize;

use crate::block::Block;
use crate::error::{Error, Result};

/// Computational security parameter: the bits of `Δ`, the base OTs an
/// extension starts from, and the columns it transposes.
pub const KAPPA: usize = 128;

/// Empties a buffer of secrets for reuse with room for `capacity` items.
/// Old values are overwritten by the new batch or, past its length, stay in
/// the spare capacity until `Drop` zeroizes the whole allocation; a buffer
/// too small is zeroized and replaced rather than grown, so a reallocation
/// never leaves secrets in freed memory.
pub(crate) fn reset_secret_buffer<T: Zeroize>(v: &mut Vec<T>, capacity: usize) {
    if v.capacity() < capacity {
        v.zeroize();
        *v = Vec::with_capacity(capacity);
    } else {
        v.clear();
    }
}

/// Sets a buffer of secrets to `len` items for a batch that overwrites
/// them all: a buffer with the capacity keeps its old values (overwritten
/// next) and zero-fills only what it grows by; a buffer too small is
/// zeroized and replaced, as in [`reset_secret_buffer`].
pub(crate) fn resize_secret_buffer<T: Zeroize + Clone + Default>(v: &mut Vec<T>, len: usize) {
    if v.capacity() < len {
        v.zeroize();
        *v = Vec::with_capacity(len);
    }
    v.resize(len, T::default());
}

/// Correlated OTs as the sender holds them: `q_j` for OTs
/// `first .. first + len`, and `Δ`. For each `j`, the receiver holds
/// `t_j = q_j ⊕ r_j·Δ`.
///
/// The buffer is reused from batch to batch
/// ([`crate::softspoken::Sender::extend_into`]); the protocols read runs of
/// it through [`SenderCotsRef`] ([`SenderCots::part`]), without copying.
/// [`SenderCots::take`] splits off a head by advancing past it (`at`), so
/// many small takes cost their own length, not the rest's.
#[derive(Clone)]
pub struct SenderCots {
    /// Global index of OT `q[at]`.
    pub(crate) first: u64,
    pub(crate) delta: Block,
    pub(crate) q: Vec<Block>,
    /// OTs `q[..at]` were taken.
    pub(crate) at: usize,
}

/// Correlated OTs as the receiver holds them: choice bits `r_j` and
/// `t_j = q_j ⊕ r_j·Δ` (reused and read as [`SenderCots`] is).
#[derive(Clone)]
pub struct ReceiverCots {
    /// Global index of OT `t[at]`.
    pub(crate) first: u64,
    pub(crate) choices: Vec<bool>,
    pub(crate) t: Vec<Block>,
    /// OTs `..at` were taken.
    pub(crate) at: usize,
}

/// A run of a sender's COTs, borrowed: what the protocols built on COTs
/// read (every one of them takes `impl Into<SenderCotsRef>`, so a
/// `&SenderCots` works as well as a [`SenderCots::part`]).
#[derive(Clone, Copy)]
pub struct SenderCotsRef<'a> {
    pub(crate) first: u64,
    pub(crate) delta: &'a Block,
    pub(crate) q: &'a [Block],
}

/// A run of a receiver's COTs, borrowed (as [`SenderCotsRef`]).
#[derive(Clone, Copy)]
pub struct ReceiverCotsRef<'a> {
    pub(crate) first: u64,
    pub(crate) choices: &'a [bool],
    pub(crate) t: &'a [Block],
}

impl<'a> From<&'a SenderCots> for SenderCotsRef<'a> {
    fn from(c: &'a SenderCots) -> SenderCotsRef<'a> {
        SenderCotsRef {
            first: c.first,
            delta: &c.delta,
            q: &c.q[c.at..],
        }
    }
}

impl<'a> From<&'a ReceiverCots> for ReceiverCotsRef<'a> {
    fn from(c: &'a ReceiverCots) -> ReceiverCotsRef<'a> {
        ReceiverCotsRef {
            first: c.first,
            choices: &c.choices[c.at..],
            t: &c.t[c.at..],
        }
    }
}

impl std::fmt::Debug for SenderCotsRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderCotsRef")
            .field("first", &self.first)
            .field("len", &self.q.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ReceiverCotsRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverCotsRef")
            .field("first", &self.first)
            .field("len", &self.t.len())
            .finish_non_exhaustive()
    }
}

/// The error of a run past the end.
fn out_of_range(what: &'static str, start: usize, n: usize, len: usize) -> Error {
    Error::Input {
        what,
        detail: format!("OTs {start}..+{n} asked for, {len} left"),
    }
}

impl<'a> SenderCotsRef<'a> {
    /// Number of OTs.
    pub fn len(&self) -> usize {
        self.q.len()
    }
    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
    /// Global index of the first OT.
    pub fn first(&self) -> u64 {
        self.first
    }
    /// The global correlation `Δ`.
    pub fn delta(&self) -> Block {
        *self.delta
    }
    /// The `q_j`.
    pub fn q(&self) -> &'a [Block] {
        self.q
    }
    /// OTs `start .. start + n` of this run (global indices kept).
    pub fn part(&self, start: usize, n: usize) -> Result<SenderCotsRef<'a>> {
        let end = start
            .checked_add(n)
            .filter(|&e| e <= self.q.len())
            .ok_or_else(|| out_of_range("SenderCotsRef::part", start, n, self.q.len()))?;
        Ok(SenderCotsRef {
            first: self.first + start as u64,
            delta: self.delta,
            q: &self.q[start..end],
        })
    }
}

impl<'a> ReceiverCotsRef<'a> {
    /// Number of OTs.
    pub fn len(&self) -> usize {
        self.t.len()
    }
    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }
    /// Global index of the first OT.
    pub fn first(&self) -> u64 {
        self.first
    }
    /// The choice bits `r_j`.
    pub fn choices(&self) -> &'a [bool] {
        self.choices
    }
    /// The `t_j`.
    pub fn t(&self) -> &'a [Block] {
        self.t
    }
    /// OTs `start .. start + n` of this run (global indices kept).
    pub fn part(&self, start: usize, n: usize) -> Result<ReceiverCotsRef<'a>> {
        let end = start
            .checked_add(n)
            .filter(|&e| e <= self.t.len())
            .ok_or_else(|| out_of_range("ReceiverCotsRef::part", start, n, self.t.len()))?;
        Ok(ReceiverCotsRef {
            first: self.first + start as u64,
            choices: &self.choices[start..end],
            t: &self.t[start..end],
        })
    }
}

impl Drop for SenderCots {
    fn drop(&mut self) {
        self.delta.zeroize();
        self.q.zeroize();
    }
}

impl Drop for ReceiverCots {
    fn drop(&mut self) {
        self.choices.zeroize();
        self.t.zeroize();
    }
}

impl std::fmt::Debug for SenderCots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderCots")
            .field("first", &self.first)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ReceiverCots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverCots")
            .field("first", &self.first)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl SenderCots {
    /// No OTs: a buffer for [`crate::softspoken::Sender::extend_into`].
    pub fn empty() -> SenderCots {
        SenderCots {
            first: 0,
            delta: Block::ZERO,
            q: Vec::new(),
            at: 0,
        }
    }

    /// Number of OTs (not yet taken).
    pub fn len(&self) -> usize {
        self.q.len() - self.at
    }
    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Global index of the first OT (the tweak of its hash).
    pub fn first(&self) -> u64 {
        self.first
    }
    /// The global correlation `Δ`.
    pub fn delta(&self) -> Block {
        self.delta
    }
    /// The `q_j`: the message for choice 0 (`q_j ⊕ Δ` is the one for 1).
    pub fn q(&self) -> &[Block] {
        &self.q[self.at..]
    }

    /// All of them, borrowed.
    pub fn view(&self) -> SenderCotsRef<'_> {
        self.into()
    }

    /// OTs `start .. start + n`, borrowed (global indices kept): how a
    /// batch is handed out to several protocols without copying.
    pub fn part(&self, start: usize, n: usize) -> Result<SenderCotsRef<'_>> {
        self.view().part(start, n)
    }

    /// Splits off the first `n` OTs (their indices keep their global
    /// values, so hashes stay tweaked uniquely). Copies those `n` only.
    pub fn take(&mut self, n: usize) -> Result<SenderCots> {
        if n > self.len() {
            return Err(Error::Input {
                what: "SenderCots::take",
                detail: format!("{n} OTs asked for, {} left", self.len()),
            });
        }
        let head = self.q[self.at..self.at + n].to_vec();
        let first = self.first;
        self.at += n;
        self.first += n as u64;
        Ok(SenderCots {
            first,
            delta: self.delta,
            q: head,
            at: 0,
        })
    }
}

impl ReceiverCots {
    /// No OTs: a buffer for [`crate::softspoken::Receiver::extend_into`].
    pub fn empty() -> ReceiverCots {
        ReceiverCots {
            first: 0,
            choices: Vec::new(),
            t: Vec::new(),
            at: 0,
        }
    }

    /// Number of OTs (not yet taken).
    pub fn len(&self) -> usize {
        self.t.len() - self.at
    }
    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Global index of the first OT.
    pub fn first(&self) -> u64 {
        self.first
    }
    /// The choice bits `r_j`.
    pub fn choices(&self) -> &[bool] {
        &self.choices[self.at..]
    }
    /// The `t_j = q_j ⊕ r_j·Δ`.
    pub fn t(&self) -> &[Block] {
        &self.t[self.at..]
    }

    /// All of them, borrowed.
    pub fn view(&self) -> ReceiverCotsRef<'_> {
        self.into()
    }

    /// OTs `start .. start + n`, borrowed (global indices kept).
    pub fn part(&self, start: usize, n: usize) -> Result<ReceiverCotsRef<'_>> {
        self.view().part(start, n)
    }

    /// Splits off the first `n` OTs. Copies those `n` only.
    pub fn take(&mut self, n: usize) -> Result<ReceiverCots> {
        if n > self.len() {
            return Err(Error::Input {
                what: "ReceiverCots::take",
                detail: format!("{n} OTs asked for, {} left", self.len()),
            });
        }
        let range = self.at..self.at + n;
        let head_t = self.t[range.clone()].to_vec();
        let head_c = self.choices[range].to_vec();
        let first = self.first;
        self.at += n;
        self.first += n as u64;
        Ok(ReceiverCots {
            first,
            choices: head_c,
            t: head_t,
            at: 0,
        })
    }
}
