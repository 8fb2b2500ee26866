//! Boolean AND triples from random OTs, with no message beyond the OT
//! extension itself.
//!
//! One random OT is a shared product of two random bits: the sender has pads
//! `x^0, x^1` and the receiver has `r, x^r`, and `x^r ⊕ x^0 = r·(x^0 ⊕ x^1)`.
//! So the sender's bit `x^0 ⊕ x^1` times the receiver's bit `r` is shared as
//! `(x^0, x^r)`. Two ROTs in the same direction give both cross terms of
//! `(a_0 ⊕ a_1)(b_0 ⊕ b_1)`: the first pairs party 1's `a_1 = r` with party
//! 0's `b_0`, the second party 1's `b_1 = r'` with party 0's `a_0`. (This is
//! the random-OT AND triple of Asharov et al., CCS 2013 §6, written for
//! one-directional OT.) The pads are the lowest bit of the tccr hash of the
//! COTs ([`crate::ot`]).
//!
//! Layout: for `n` triples, COTs `0 .. n` give `(b_0, a_1)` and COTs
//! `n .. 2n` give `(a_0, b_1)`.

use zeroize::Zeroize;

use crate::cot::{ReceiverCotsRef, SenderCotsRef};
use crate::error::{Error, Result};
use crate::ot::{for_each_receiver_pad, for_each_sender_pad};

/// One party's shares of `len` AND triples, bit-packed: bit `k % 64` of word
/// `k / 64` is triple `k`. Reconstruct with XOR: `c = a·b` (AND).
#[derive(Clone, PartialEq, Eq)]
pub struct AndTriples {
    /// Number of triples.
    pub len: usize,
    /// Shares of `a`.
    pub a: Vec<u64>,
    /// Shares of `b`.
    pub b: Vec<u64>,
    /// Shares of `c`.
    pub c: Vec<u64>,
}

impl std::fmt::Debug for AndTriples {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AndTriples")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Drop for AndTriples {
    fn drop(&mut self) {
        self.a.zeroize();
        self.b.zeroize();
        self.c.zeroize();
    }
}

impl AndTriples {
    /// Triple `k`'s shares `(a, b, c)`.
    pub fn get(&self, k: usize) -> (bool, bool, bool) {
        let bit = |v: &[u64]| (v[k / 64] >> (k % 64)) & 1 == 1;
        (bit(&self.a), bit(&self.b), bit(&self.c))
    }
}

fn pack(bits: impl Iterator<Item = bool>, n: usize) -> Vec<u64> {
    let mut out = vec![0u64; n.div_ceil(64)];
    for (k, b) in bits.enumerate() {
        out[k / 64] |= (b as u64) << (k % 64);
    }
    out
}

fn check_even(what: &'static str, len: usize) -> Result<usize> {
    if !len.is_multiple_of(2) {
        return Err(Error::Input {
            what,
            detail: format!("{len} COTs is odd (two per AND triple)"),
        });
    }
    Ok(len / 2)
}

/// Party 0 (the extension sender): its shares of `len/2` AND triples.
pub fn and_triples_sender<'a>(cots: impl Into<SenderCotsRef<'a>>) -> Result<AndTriples> {
    let cots: SenderCotsRef<'a> = cots.into();
    let n = check_even("and_triples_sender", cots.len())?;
    // From the pads' lowest bits x^0, x^1: b_0 = x^0 ⊕ x^1 of OT k < n,
    // a_0 that of OT n + k, c_0 = a_0·b_0 ⊕ x^0_k ⊕ x^0_{n+k}, packed as
    // they stream out of the hash.
    let words = n.div_ceil(64);
    let (mut a, mut b, mut c) = (vec![0u64; words], vec![0u64; words], vec![0u64; words]);
    for_each_sender_pad(cots, |j, [p0, p1]| {
        let (k, cross) = if j < n { (j, &mut b) } else { (j - n, &mut a) };
        cross[k / 64] ^= ((p0.lsb() ^ p1.lsb()) as u64) << (k % 64);
        c[k / 64] ^= (p0.lsb() as u64) << (k % 64);
    });
    for ((c, a), b) in c.iter_mut().zip(&a).zip(&b) {
        *c ^= a & b;
    }
    Ok(AndTriples { len: n, a, b, c })
}

/// Party 1 (the extension receiver): its shares, with `a_1` and `b_1` its
/// random choice bits.
pub fn and_triples_receiver<'a>(cots: impl Into<ReceiverCotsRef<'a>>) -> Result<AndTriples> {
    let cots: ReceiverCotsRef<'a> = cots.into();
    let n = check_even("and_triples_receiver", cots.len())?;
    let r = cots.choices;
    let a = pack(r[..n].iter().copied(), n);
    let b = pack(r[n..].iter().copied(), n);
    // c_1 = a_1·b_1 ⊕ v_k ⊕ v_{n+k}, v the lowest bits of the pads.
    let mut c = vec![0u64; n.div_ceil(64)];
    for_each_receiver_pad(cots, |j, p| {
        let k = if j < n { j } else { j - n };
        c[k / 64] ^= (p.lsb() as u64) << (k % 64);
    });
    for ((c, a), b) in c.iter_mut().zip(&a).zip(&b) {
        *c ^= a & b;
    }
    Ok(AndTriples { len: n, a, b, c })
}
