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

/// Correlated OTs as the sender holds them: `q_j` for OTs
/// `first .. first + len`, and `Δ`. For each `j`, the receiver holds
/// `t_j = q_j ⊕ r_j·Δ`.
#[derive(Clone)]
pub struct SenderCots {
    pub(crate) first: u64,
    pub(crate) delta: Block,
    pub(crate) q: Vec<Block>,
}

/// Correlated OTs as the receiver holds them: choice bits `r_j` and
/// `t_j = q_j ⊕ r_j·Δ`.
#[derive(Clone)]
pub struct ReceiverCots {
    pub(crate) first: u64,
    pub(crate) choices: Vec<bool>,
    pub(crate) t: Vec<Block>,
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
            .field("len", &self.q.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ReceiverCots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverCots")
            .field("first", &self.first)
            .field("len", &self.t.len())
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
        }
    }

    /// Number of OTs.
    pub fn len(&self) -> usize {
        self.q.len()
    }
    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
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
        &self.q
    }

    /// Splits off the first `n` OTs (their indices keep their global
    /// values, so hashes stay tweaked uniquely).
    pub fn take(&mut self, n: usize) -> Result<SenderCots> {
        if n > self.q.len() {
            return Err(Error::Input {
                what: "SenderCots::take",
                detail: format!("{n} OTs asked for, {} left", self.q.len()),
            });
        }
        let rest = self.q.split_off(n);
        let head = std::mem::replace(&mut self.q, rest);
        let first = self.first;
        self.first += n as u64;
        Ok(SenderCots {
            first,
            delta: self.delta,
            q: head,
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
        }
    }

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
    pub fn choices(&self) -> &[bool] {
        &self.choices
    }
    /// The `t_j = q_j ⊕ r_j·Δ`.
    pub fn t(&self) -> &[Block] {
        &self.t
    }

    /// Splits off the first `n` OTs.
    pub fn take(&mut self, n: usize) -> Result<ReceiverCots> {
        if n > self.t.len() {
            return Err(Error::Input {
                what: "ReceiverCots::take",
                detail: format!("{n} OTs asked for, {} left", self.t.len()),
            });
        }
        let rest_t = self.t.split_off(n);
        let rest_c = self.choices.split_off(n);
        let head_t = std::mem::replace(&mut self.t, rest_t);
        let head_c = std::mem::replace(&mut self.choices, rest_c);
        let first = self.first;
        self.first += n as u64;
        Ok(ReceiverCots {
            first,
            choices: head_c,
            t: head_t,
        })
    }
}
