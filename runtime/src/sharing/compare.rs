//! Secure comparison on additive shares over Z_2^64.
//!
//! ## MSB (sign) of a shared value — 8 rounds
//!
//! Correlations (all through [`Correlations::fetch_compare`], so a
//! two-party source can plug in later; the dealer source is implemented):
//! a uniform mask `r` shared additively *and* bitwise
//! ([`CompareRequest::MaskedBits`]), boolean Beaver triples bit-packed in
//! `u64` words ([`CompareRequest::AndTriples`], 125 AND gates per element,
//! rounded up to whole words per level), and a random bit shared both ways
//! ([`CompareRequest::DaBits`]).
//!
//! 1. **Open** `c = x + r mod 2^64` (uniform whatever `x` is: perfect
//!    masking). Then `x = c - r`, so
//!    `msb(x) = c_63 ⊕ r_63 ⊕ borrow`, where `borrow = [c' < r']` for the
//!    low 63 bits `c' = c mod 2^63`, `r' = r mod 2^63`, and
//!    `borrow = 1 ⊕ carry_out(c' + ¬r' + 1)`.
//! 2. **Carry tree, 6 rounds.** 64 leaves: leaf 0 is the carry-in
//!    (`G = 1, P = 0`), leaf `i + 1` is bit `i < 63` with
//!    `G = c_i ∧ ¬r_i`, `P = c_i ⊕ ¬r_i` — linear in the XOR shares of `r`
//!    because `c` is public. Adjacent groups are combined
//!    `(G, P) = (G_hi ⊕ P_hi ∧ G_lo, P_hi ∧ P_lo)` (the two terms of the
//!    XOR are never both 1), halving the number of groups per round:
//!    64 → 32 → … → 1, i.e. `log2 64 = 6` rounds of boolean Beaver ANDs
//!    (2·(64 >> l) ANDs per element at level `l < 6`, 1 at level 6). Groups
//!    live in the low bits of one word per element and are split into
//!    high/low halves with bit compression, so every level is a handful of
//!    word operations per element; the AND operands are bit-packed across
//!    elements for the messages.
//! 3. **B2A, 1 round.** With a daBit `s` (XOR shares `s_i`, additive
//!    `[s]`), open `d = msb ⊕ s`; then `msb = d + (1 - 2d)·s` is linear in
//!    `[s]`.
//!
//! Messages are [`OpenMsg`]s (plain `u64` words, so any [`Exchange`] or
//! executor transport carries them): round 1 sends `8n` bytes, the AND
//! rounds send `e ‖ f` (2·(64, 32, 16, 8, 4, 1) bits per element, packed),
//! the B2A round `n` bits. Per comparison and party that is 8 + 31.25 +
//! 0.125 ≈ 39.4 bytes (plus word rounding). The dealer sends party 1
//! 8 + 15.6 + 8 ≈ 31.6 bytes per comparison (party 0 only its seed).
//!
//! Driving it message by message: [`Engine::msb_round1`] returns the
//! state and the first message; then call [`Engine::msb_step`] with each
//! peer message until it returns [`MsbStep::Done`] ([`MSB_ROUNDS`] = 8
//! messages each way in total).
//!
//! ## Built on it (rounds = messages each way)
//!
//! | function | rounds | notes |
//! |---|---|---|
//! | [`Engine::msb`] | 8 | 0/1 ring element (integer, not fixed point) |
//! | [`Engine::less_than`] | 8 | `msb(x − y)`, needs `|x − y| < 2^63` |
//! | [`Engine::select`] | 1 | `b + c·(a − b)`, one Beaver product ([`Engine::select_round1`]/[`Engine::select_round2`]) |
//! | [`Engine::relu`] | 9 | `x − msb(x)·x` |
//! | [`Engine::max_elem`], [`Engine::min_elem`] | 9 | |
//! | [`Engine::max_last_axis`], [`Engine::argmax_last_axis`], [`Engine::argmax_onehot_last_axis`] | 9·⌈log2 n⌉ | tree reduction, ties → lowest index |
//! | [`Engine::clamp`] | 9 | both comparisons batched, then one batched product |
//! | [`Engine::poly_clamped`], [`Engine::sigmoid_clamped`], [`Engine::tanh_clamped`] | 9 + rounds of [`Engine::poly`] | |
//!
//! The composites are written against [`Exchange`] (one `Message::Open`
//! per MSB round, one `Message::Beaver` per product round), so an executor
//! that implements [`Exchange`] over its transport runs them unchanged; the
//! counts above are exactly the number of `exchange` calls.
//!
//! Ranges: a comparison of `x` with `y` is correct when `|x − y| < 2^63`
//! as signed ring elements; `clamp` needs `|x − lo|, |hi − x| < 2^63`.
//! Fixed-point values are far inside that.

use super::correlations::{
    AndTripleShare, CompareRequest, CompareShare, CorrelationRequest, Correlations, DaBitShare,
    MaskedBitsShare,
};
use super::error::{Result, SharingError};
use super::protocol::{BeaverMsg, Engine, Exchange, Message, MulState};
use super::ring::{numel, RingTensor};
use super::share::{OpenMsg, Party, Share};

/// Messages each way of one MSB (1 open + 6 AND levels + 1 B2A).
pub const MSB_ROUNDS: usize = 8;

/// AND gates per element of the carry tree (64 + 32 + 16 + 8 + 4 + 1).
pub const AND_GATES_PER_MSB: usize = 125;

const LEVELS: u32 = 6;

/// Bits per element ANDed at carry-tree level `level` (1-based).
fn level_width(level: u32) -> u32 {
    let m = 64 >> level;
    if level < LEVELS {
        2 * m
    } else {
        m
    }
}

fn level_words(n: usize, level: u32) -> usize {
    (n * level_width(level) as usize).div_ceil(64)
}

/// AND triples (in bits, whole words per level) one MSB of `n` elements
/// consumes.
pub fn and_triple_bits(n: usize) -> usize {
    64 * (1..=LEVELS).map(|l| level_words(n, l)).sum::<usize>()
}

/// Moves the even-position bits of `x` to the low 32 bits (in order).
#[inline]
fn even_bits(x: u64) -> u64 {
    let mut x = x & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0f0f_0f0f_0f0f_0f0f;
    x = (x | (x >> 4)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x >> 8)) & 0x0000_ffff_0000_ffff;
    (x | (x >> 16)) & 0x0000_0000_ffff_ffff
}

#[inline]
fn odd_bits(x: u64) -> u64 {
    even_bits(x >> 1)
}

fn low_mask(w: u32) -> u64 {
    if w >= 64 {
        u64::MAX
    } else {
        (1u64 << w) - 1
    }
}

/// Packs `vals` (each `w` bits, `w` dividing 64) into words.
fn pack(vals: &[u64], w: u32) -> Vec<u64> {
    if w == 64 {
        return vals.to_vec();
    }
    let per = (64 / w) as usize;
    let mask = low_mask(w);
    vals.chunks(per)
        .map(|ch| {
            ch.iter()
                .enumerate()
                .fold(0u64, |acc, (t, &v)| acc | ((v & mask) << (t as u32 * w)))
        })
        .collect()
}

/// Inverse of [`pack`] for `n` values.
fn unpack(words: &[u64], w: u32, n: usize) -> Vec<u64> {
    if w == 64 {
        return words[..n].to_vec();
    }
    let per = (64 / w) as usize;
    let mask = low_mask(w);
    (0..n)
        .map(|i| (words[i / per] >> ((i % per) as u32 * w)) & mask)
        .collect()
}

fn bit_at(words: &[u64], i: usize) -> u64 {
    (words[i / 64] >> (i % 64)) & 1
}

fn check_party(x: &Share, p: Party) -> Result<()> {
    if x.party() != p {
        return Err(SharingError::PartyMismatch(
            "share does not belong to this engine's party",
        ));
    }
    Ok(())
}

fn into_open(m: Message) -> Result<OpenMsg> {
    match m {
        Message::Open(o) => Ok(o),
        other => Err(SharingError::UnexpectedMessage {
            expected: "open",
            got: other.kind(),
        }),
    }
}

fn into_beaver(m: Message) -> Result<BeaverMsg> {
    match m {
        Message::Beaver(b) => Ok(b),
        other => Err(SharingError::UnexpectedMessage {
            expected: "beaver",
            got: other.kind(),
        }),
    }
}

fn words_msg(data: Vec<u64>) -> OpenMsg {
    let len = data.len();
    OpenMsg {
        data,
        shape: vec![len],
    }
}

fn peer_words(peer: OpenMsg, expected: usize) -> Result<Vec<u64>> {
    if peer.shape != [expected] || peer.data.len() != expected {
        return Err(SharingError::BadLength {
            len: peer.data.len(),
            shape: peer.shape,
            expected,
        });
    }
    Ok(peer.data)
}

fn wrong_compare_kind() -> SharingError {
    SharingError::Correlations("source returned the wrong kind of comparison correlation".into())
}

fn bad_corr(what: &str) -> SharingError {
    SharingError::Correlations(format!("comparison correlation has the wrong size: {what}"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    And(u32),
    B2a,
}

/// One party's state between the rounds of an MSB. `Debug` shows party,
/// shape and round only.
pub struct MsbState {
    party: Party,
    shape: Vec<usize>,
    n: usize,
    phase: Phase,
    /// My share of what is being opened this round (packed for the boolean
    /// rounds; `e ‖ f` for AND rounds).
    mine: Vec<u64>,
    r_bits: Vec<u64>,
    c_pub: Vec<u64>,
    /// High halves of the G groups at the pending level.
    g_hi: Vec<u64>,
    triples: AndTripleShare,
    t_off: usize,
    dabit: DaBitShare,
}

impl std::fmt::Debug for MsbState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let round = match self.phase {
            Phase::Open => 1,
            Phase::And(l) => 1 + l as usize,
            Phase::B2a => MSB_ROUNDS,
        };
        f.debug_struct("MsbState")
            .field("party", &self.party)
            .field("shape", &self.shape)
            .field("round", &round)
            .finish_non_exhaustive()
    }
}

/// Result of feeding one peer message to an MSB.
#[derive(Debug)]
pub enum MsbStep {
    /// Send this message, then call [`Engine::msb_step`] with the peer's.
    Send(Box<MsbState>, OpenMsg),
    /// My arithmetic share of the MSB (0/1 ring element).
    Done(Share),
}

impl MsbState {
    /// Starts carry-tree level `level` from per-element groups `(g, p)`.
    fn start_level(mut self, level: u32, g: &[u64], p: &[u64]) -> Result<MsbStep> {
        let m = 64 >> level;
        let w = level_width(level);
        let n = self.n;
        let mut xs = Vec::with_capacity(n);
        let mut ys = Vec::with_capacity(n);
        let mut g_hi = Vec::with_capacity(n);
        for (&gi, &pi) in g.iter().zip(p) {
            let (gh, gl, ph) = (odd_bits(gi), even_bits(gi), odd_bits(pi));
            g_hi.push(gh);
            if level < LEVELS {
                let pl = even_bits(pi);
                xs.push(ph | (ph << m));
                ys.push(gl | (pl << m));
            } else {
                xs.push(ph);
                ys.push(gl);
            }
        }
        let words = level_words(n, level);
        let (x, y) = (pack(&xs, w), pack(&ys, w));
        let t = &self.triples;
        let off = self.t_off;
        let mut mine = Vec::with_capacity(2 * words);
        mine.extend(x.iter().zip(&t.a[off..off + words]).map(|(x, a)| x ^ a));
        mine.extend(y.iter().zip(&t.b[off..off + words]).map(|(y, b)| y ^ b));
        self.mine = mine.clone();
        self.g_hi = g_hi;
        self.phase = Phase::And(level);
        Ok(MsbStep::Send(Box::new(self), words_msg(mine)))
    }

    /// Feeds the peer's message of the current round (same as
    /// [`Engine::msb_step`], without naming the engine type).
    pub fn step(mut self, peer: OpenMsg) -> Result<MsbStep> {
        let p0 = self.party == Party::P0;
        match self.phase {
            Phase::Open => {
                let peer = peer.into_tensor()?;
                if peer.shape() != self.shape.as_slice() {
                    return Err(SharingError::ShapeMismatch {
                        op: "msb open",
                        left: peer.shape().to_vec(),
                        right: self.shape.clone(),
                    });
                }
                let c: Vec<u64> = self
                    .mine
                    .iter()
                    .zip(peer.data())
                    .map(|(a, b)| a.wrapping_add(*b))
                    .collect();
                let mut g = Vec::with_capacity(self.n);
                let mut p = Vec::with_capacity(self.n);
                for (&ci, &ri) in c.iter().zip(&self.r_bits) {
                    // Share of ¬r: party 0 flips its share.
                    let nr = if p0 { !ri } else { ri };
                    let cg = if p0 { ci & nr } else { ci & ri };
                    let cp = if p0 { ci ^ nr } else { ri };
                    g.push((cg << 1) | u64::from(p0));
                    p.push(cp << 1);
                }
                self.c_pub = c;
                self.t_off = 0;
                self.start_level(1, &g, &p)
            }
            Phase::And(level) => {
                let words = level_words(self.n, level);
                let peer = peer_words(peer, 2 * words)?;
                let off = self.t_off;
                let t = &self.triples;
                let (a, b, c) = (
                    &t.a[off..off + words],
                    &t.b[off..off + words],
                    &t.c[off..off + words],
                );
                let z: Vec<u64> = (0..words)
                    .map(|i| {
                        let e = self.mine[i] ^ peer[i];
                        let f = self.mine[words + i] ^ peer[words + i];
                        let mut z = c[i] ^ (e & b[i]) ^ (a[i] & f);
                        if p0 {
                            z ^= e & f;
                        }
                        z
                    })
                    .collect();
                self.t_off += words;
                let w = level_width(level);
                let z = unpack(&z, w, self.n);
                let m = 64 >> level;
                if level < LEVELS {
                    let mask = low_mask(m);
                    let g: Vec<u64> = self
                        .g_hi
                        .iter()
                        .zip(&z)
                        .map(|(gh, z)| gh ^ (z & mask))
                        .collect();
                    let p: Vec<u64> = z.iter().map(|z| z >> m).collect();
                    self.start_level(level + 1, &g, &p)
                } else {
                    // carry = G of the whole tree; msb = c63 ⊕ r63 ⊕ 1 ⊕ carry.
                    let bits: Vec<u64> = (0..self.n)
                        .map(|i| {
                            let carry = (self.g_hi[i] ^ z[i]) & 1;
                            let r63 = self.r_bits[i] >> 63;
                            if p0 {
                                (self.c_pub[i] >> 63) ^ 1 ^ r63 ^ carry
                            } else {
                                r63 ^ carry
                            }
                        })
                        .collect();
                    let packed = pack(&bits, 1);
                    let d: Vec<u64> = packed
                        .iter()
                        .zip(&self.dabit.bits)
                        .map(|(b, s)| b ^ s)
                        .collect();
                    self.mine = d.clone();
                    self.phase = Phase::B2a;
                    Ok(MsbStep::Send(Box::new(self), words_msg(d)))
                }
            }
            Phase::B2a => {
                let words = self.n.div_ceil(64);
                let peer = peer_words(peer, words)?;
                let d: Vec<u64> = self.mine.iter().zip(&peer).map(|(a, b)| a ^ b).collect();
                let s = self.dabit.arith.value().data();
                let out: Vec<u64> = (0..self.n)
                    .map(|i| {
                        let di = bit_at(&d, i);
                        let v = (1u64.wrapping_sub(2 * di)).wrapping_mul(s[i]);
                        if p0 {
                            v.wrapping_add(di)
                        } else {
                            v
                        }
                    })
                    .collect();
                Ok(MsbStep::Done(Share::new(
                    self.party,
                    RingTensor::new(out, self.shape)?,
                )))
            }
        }
    }
}

/// State between the two rounds of [`Engine::select`].
#[derive(Debug)]
pub struct SelectState {
    mul: MulState,
    b: Share,
}

/// What to output outside the polynomial's domain `[-L, L]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClampMode {
    /// `p(clamp(x, -L, L))`: the polynomial's boundary values.
    Saturate,
    /// `below` for `x < -L`, `above` for `x > L`, `p(x)` inside.
    Piecewise { below: f64, above: f64 },
}

fn concat_shares(p: Party, xs: &[&Share]) -> Share {
    let ts: Vec<&RingTensor> = xs.iter().map(|s| s.value()).collect();
    Share::new(p, RingTensor::concat_flat(&ts))
}

fn split_share(x: &Share, shapes: &[Vec<usize>]) -> Result<Vec<Share>> {
    Ok(x.value()
        .split_flat(shapes)?
        .into_iter()
        .map(|t| Share::new(x.party(), t))
        .collect())
}

impl<C: Correlations> Engine<C> {
    /// Round 1 of an MSB: fetches the correlations (mask, AND triples,
    /// daBits — in that order) and returns my share of `c = x + r`.
    pub fn msb_round1(&mut self, x: &Share) -> Result<(MsbState, OpenMsg)> {
        let p = self.party();
        check_party(x, p)?;
        let shape = x.shape().to_vec();
        let n = numel(&shape)?;
        let corr = self.correlations_mut();
        let mb: MaskedBitsShare = match corr.fetch_compare(&CompareRequest::MaskedBits {
            shape: shape.clone(),
        })? {
            CompareShare::MaskedBits(m) => m,
            _ => return Err(wrong_compare_kind()),
        };
        let bits = and_triple_bits(n);
        let triples = match corr.fetch_compare(&CompareRequest::AndTriples { bits })? {
            CompareShare::AndTriples(t) => t,
            _ => return Err(wrong_compare_kind()),
        };
        let dabit = match corr.fetch_compare(&CompareRequest::DaBits {
            shape: shape.clone(),
        })? {
            CompareShare::DaBits(d) => d,
            _ => return Err(wrong_compare_kind()),
        };
        check_party(&mb.r, p)?;
        check_party(&dabit.arith, p)?;
        if triples.party != p {
            return Err(SharingError::PartyMismatch(
                "AND triples belong to the other party",
            ));
        }
        let tw = CompareRequest::words_for_bits(bits);
        if mb.r.shape() != shape.as_slice() || mb.r_bits.shape() != shape.as_slice() {
            return Err(bad_corr("mask"));
        }
        if triples.a.len() < tw || triples.b.len() < tw || triples.c.len() < tw {
            return Err(bad_corr("AND triples"));
        }
        if dabit.arith.shape() != shape.as_slice() || dabit.bits.len() < n.div_ceil(64) {
            return Err(bad_corr("daBits"));
        }
        let masked = x.value().add(mb.r.value())?;
        let msg = OpenMsg::from_tensor(masked.clone());
        Ok((
            MsbState {
                party: p,
                shape,
                n,
                phase: Phase::Open,
                mine: masked.into_parts().0,
                r_bits: mb.r_bits.into_parts().0,
                c_pub: Vec::new(),
                g_hi: Vec::new(),
                triples,
                t_off: 0,
                dabit,
            },
            msg,
        ))
    }

    /// Feeds the peer's message of the current MSB round (rounds 1..=8).
    /// Malformed messages are errors.
    pub fn msb_step(state: MsbState, peer: OpenMsg) -> Result<MsbStep> {
        state.step(peer)
    }

    /// Round 1 of `select(c, a, b) = b + c·(a − b)` for a shared 0/1 ring
    /// element `c` (no truncation needed).
    pub fn select_round1(
        &mut self,
        c: &Share,
        a: &Share,
        b: &Share,
    ) -> Result<(SelectState, BeaverMsg)> {
        let d = a.sub(b)?;
        let (mul, msg) = self.mul_round1(c, &d)?;
        Ok((SelectState { mul, b: b.clone() }, msg))
    }

    /// Round 2 of [`Engine::select_round1`].
    pub fn select_round2(state: SelectState, peer: BeaverMsg) -> Result<Share> {
        Self::mul_round2(state.mul, peer)?.add(&state.b)
    }

    // ------------------------------------------------------------ composites

    /// `msb(x)` as a shared 0/1 ring element (1 iff `x` is negative as a
    /// signed 64-bit value). [`MSB_ROUNDS`] rounds.
    pub fn msb<E: Exchange>(&mut self, ex: &mut E, x: &Share) -> Result<Share> {
        let (mut st, mut msg) = self.msb_round1(x)?;
        loop {
            let peer = into_open(ex.exchange(Message::Open(msg))?)?;
            match Self::msb_step(st, peer)? {
                MsbStep::Send(s, m) => {
                    st = *s;
                    msg = m;
                }
                MsbStep::Done(r) => return Ok(r),
            }
        }
    }

    /// Several MSBs batched into one run (8 rounds in total).
    pub fn msb_many<E: Exchange>(&mut self, ex: &mut E, xs: &[&Share]) -> Result<Vec<Share>> {
        let p = self.party();
        for x in xs {
            check_party(x, p)?;
        }
        let shapes: Vec<Vec<usize>> = xs.iter().map(|x| x.shape().to_vec()).collect();
        let all = concat_shares(p, xs);
        let b = self.msb(ex, &all)?;
        split_share(&b, &shapes)
    }

    /// `[x < y]` as a shared 0/1 ring element; needs `|x − y| < 2^63`.
    /// 8 rounds.
    pub fn less_than<E: Exchange>(&mut self, ex: &mut E, x: &Share, y: &Share) -> Result<Share> {
        self.msb(ex, &x.sub(y)?)
    }

    /// `b + c·(a − b)`: `a` where `c = 1`, `b` where `c = 0`. One round.
    pub fn select<E: Exchange>(
        &mut self,
        ex: &mut E,
        c: &Share,
        a: &Share,
        b: &Share,
    ) -> Result<Share> {
        let (st, msg) = self.select_round1(c, a, b)?;
        let peer = into_beaver(ex.exchange(Message::Beaver(msg))?)?;
        Self::select_round2(st, peer)
    }

    /// `max(x, 0)`. 9 rounds.
    pub fn relu<E: Exchange>(&mut self, ex: &mut E, x: &Share) -> Result<Share> {
        let b = self.msb(ex, x)?;
        let bx = self.mul_ring(ex, &b, x)?;
        x.sub(&bx)
    }

    /// Elementwise `max(a, b)`. 9 rounds.
    pub fn max_elem<E: Exchange>(&mut self, ex: &mut E, a: &Share, b: &Share) -> Result<Share> {
        let lt = self.less_than(ex, a, b)?;
        self.select(ex, &lt, b, a)
    }

    /// Elementwise `min(a, b)`. 9 rounds.
    pub fn min_elem<E: Exchange>(&mut self, ex: &mut E, a: &Share, b: &Share) -> Result<Share> {
        let lt = self.less_than(ex, a, b)?;
        self.select(ex, &lt, a, b)
    }

    /// `clamp(x, lo, hi)` for public reals `lo ≤ hi` (fixed-point encoded
    /// with the engine's format). Both comparisons run in one batched MSB,
    /// then `x + [x<lo]·(lo − x) + [x>hi]·(hi − x)` in one batched product:
    /// 9 rounds.
    pub fn clamp<E: Exchange>(&mut self, ex: &mut E, x: &Share, lo: f64, hi: f64) -> Result<Share> {
        Ok(self.clamp_with_bits(ex, x, lo, hi)?.0)
    }

    /// Clamp plus the shared bits `[x < lo]`, `[x > hi]`.
    fn clamp_with_bits<E: Exchange>(
        &mut self,
        ex: &mut E,
        x: &Share,
        lo: f64,
        hi: f64,
    ) -> Result<(Share, Share, Share)> {
        if lo.is_nan() || hi.is_nan() || lo > hi {
            return Err(SharingError::BadParameter("clamp needs lo <= hi"));
        }
        let fp = self.fixed_point();
        let (lo_r, hi_r) = (fp.encode(lo)?, fp.encode(hi)?);
        let p = self.party();
        check_party(x, p)?;
        let below = x.add_public_scalar(lo_r.wrapping_neg()); // x - lo
        let above = x.neg().add_public_scalar(hi_r); // hi - x
        let bits = self.msb_many(ex, &[&below, &above])?;
        let (b_lo, b_hi) = (&bits[0], &bits[1]);
        let d = concat_shares(p, &[&below.neg(), &above]);
        let bb = concat_shares(p, &[b_lo, b_hi]);
        let prod = self.mul_ring(ex, &bb, &d)?;
        let parts = split_share(&prod, &[x.shape().to_vec(), x.shape().to_vec()])?;
        let y = x.add(&parts[0])?.add(&parts[1])?;
        Ok((y, bits[0].clone(), bits[1].clone()))
    }

    /// `p(clamp(x, -bound, bound))` for `p(x) = Σ coeffs[k] (x/scale)^k`
    /// (see [`Engine::poly`]); with [`ClampMode::Piecewise`] the constants
    /// replace it outside `[-bound, bound]` (added through the comparison
    /// bits, no extra round). Rounds: 9 + those of [`Engine::poly`].
    ///
    /// If `|p − f| ≤ ε` on `[-L, L]` then the result is within
    /// `ε + sup_{|x|>L} |f(x) − f(±L)|` of `f` on the whole real line
    /// (Saturate), or `ε + sup_{|x|>L} |f(x) − below/above|` (Piecewise),
    /// plus the fixed-point rounding of the products.
    pub fn poly_clamped<E: Exchange>(
        &mut self,
        ex: &mut E,
        x: &Share,
        coeffs: &[f64],
        scale: f64,
        bound: f64,
        mode: ClampMode,
    ) -> Result<Share> {
        if !(bound.is_finite() && bound > 0.0) {
            return Err(SharingError::BadParameter("clamp bound must be positive"));
        }
        let (xc, b_lo, b_hi) = self.clamp_with_bits(ex, x, -bound, bound)?;
        let y = self.poly(ex, &xc, coeffs, scale)?;
        match mode {
            ClampMode::Saturate => Ok(y),
            ClampMode::Piecewise { below, above } => {
                let fp = self.fixed_point();
                let eval = |t: f64| super::poly::eval(coeffs, scale, t);
                let k_lo = fp.encode(below - eval(-bound))?;
                let k_hi = fp.encode(above - eval(bound))?;
                y.add(&b_lo.mul_public_scalar(k_lo))?
                    .add(&b_hi.mul_public_scalar(k_hi))
            }
        }
    }

    /// Sigmoid by the shipped degree-7/9 polynomial on `[-8, 8]`, evaluated
    /// on `clamp(x, -8, 8)` (Saturate) or 0/1 outside (Piecewise). Error on
    /// the whole line ≤ the fit's error + `1 − σ(8)` ≈ 3.4e-4 (+ rounding).
    pub fn sigmoid_clamped<E: Exchange>(
        &mut self,
        ex: &mut E,
        x: &Share,
        degree: usize,
        piecewise: bool,
    ) -> Result<Share> {
        let (coeffs, scale) = super::poly::sigmoid_poly(degree)?;
        let mode = if piecewise {
            ClampMode::Piecewise {
                below: 0.0,
                above: 1.0,
            }
        } else {
            ClampMode::Saturate
        };
        self.poly_clamped(ex, x, &coeffs, scale, scale, mode)
    }

    /// tanh(x) = 2σ(2x) − 1 on `clamp(x, -4, 4)` (or ±1 outside).
    pub fn tanh_clamped<E: Exchange>(
        &mut self,
        ex: &mut E,
        x: &Share,
        degree: usize,
        piecewise: bool,
    ) -> Result<Share> {
        let (coeffs, scale) = super::poly::sigmoid_poly(degree)?;
        let c: Vec<f64> = coeffs
            .iter()
            .enumerate()
            .map(|(k, &v)| if k == 0 { 2.0 * v - 1.0 } else { 2.0 * v })
            .collect();
        let mode = if piecewise {
            ClampMode::Piecewise {
                below: -1.0,
                above: 1.0,
            }
        } else {
            ClampMode::Saturate
        };
        self.poly_clamped(ex, x, &c, scale / 2.0, scale / 2.0, mode)
    }

    /// Maximum along the last axis (shape `[..., n]` → `[...]`), by a
    /// tournament: ⌈log2 n⌉ levels of one batched comparison + one batched
    /// select, 9 rounds per level.
    pub fn max_last_axis<E: Exchange>(&mut self, ex: &mut E, x: &Share) -> Result<Share> {
        Ok(self.tournament(ex, x, Payload::None)?.0)
    }

    /// Maximum and argmax along the last axis. The argmax is returned as
    /// shares of the *index* (an integer ring element in `0..n`, not fixed
    /// point), shape `[...]`; ties resolve to the lowest index.
    /// Same rounds as [`Engine::max_last_axis`] (indices ride in the same
    /// select round).
    pub fn argmax_last_axis<E: Exchange>(
        &mut self,
        ex: &mut E,
        x: &Share,
    ) -> Result<(Share, Share)> {
        let (m, idx) = self.tournament(ex, x, Payload::Index)?;
        let idx = idx.ok_or(SharingError::BadParameter("internal: missing index"))?;
        Ok((m, idx))
    }

    /// Maximum and argmax as a *one-hot* vector (shape `[..., n]`, integer
    /// 0/1 entries). Same rounds as [`Engine::max_last_axis`]; the select
    /// rounds carry `n` payload elements per candidate.
    pub fn argmax_onehot_last_axis<E: Exchange>(
        &mut self,
        ex: &mut E,
        x: &Share,
    ) -> Result<(Share, Share)> {
        let (m, oh) = self.tournament(ex, x, Payload::OneHot)?;
        let oh = oh.ok_or(SharingError::BadParameter("internal: missing one-hot"))?;
        Ok((m, oh))
    }

    fn tournament<E: Exchange>(
        &mut self,
        ex: &mut E,
        x: &Share,
        payload: Payload,
    ) -> Result<(Share, Option<Share>)> {
        let p = self.party();
        check_party(x, p)?;
        let shape = x.shape();
        let (&n, lead) = shape.split_last().ok_or(SharingError::UnsupportedShape {
            op: "max along last axis",
            shape: shape.to_vec(),
        })?;
        if n == 0 {
            return Err(SharingError::UnsupportedShape {
                op: "max along last axis",
                shape: shape.to_vec(),
            });
        }
        let rows = numel(lead)?;
        let pw = match payload {
            Payload::None => 0,
            Payload::Index => 1,
            Payload::OneHot => n,
        };
        // Candidates: values [rows][k], payloads [rows][k][pw].
        let mut vals: Vec<u64> = x.value().data().to_vec();
        let p0 = p == Party::P0;
        let mut pay: Vec<u64> = Vec::with_capacity(rows * n * pw);
        for _ in 0..rows {
            for j in 0..n {
                match payload {
                    Payload::None => {}
                    Payload::Index => pay.push(if p0 { j as u64 } else { 0 }),
                    Payload::OneHot => {
                        pay.extend((0..n).map(|t| u64::from(p0 && t == j)));
                    }
                }
            }
        }
        let mut k = n;
        while k > 1 {
            let half = k / 2;
            let nk = k.div_ceil(2);
            let m = rows * half;
            // left/right values and payload differences
            let mut diff = Vec::with_capacity(m); // left - right
            let mut lv = Vec::with_capacity(m);
            let mut dv = Vec::with_capacity(m); // right - left
            let mut lp = Vec::with_capacity(m * pw);
            let mut dp = Vec::with_capacity(m * pw);
            for r in 0..rows {
                for j in 0..half {
                    let (a, b) = (vals[r * k + 2 * j], vals[r * k + 2 * j + 1]);
                    diff.push(a.wrapping_sub(b));
                    lv.push(a);
                    dv.push(b.wrapping_sub(a));
                    let (ia, ib) = ((r * k + 2 * j) * pw, (r * k + 2 * j + 1) * pw);
                    for t in 0..pw {
                        lp.push(pay[ia + t]);
                        dp.push(pay[ib + t].wrapping_sub(pay[ia + t]));
                    }
                }
            }
            let lt = self.msb(ex, &Share::new(p, RingTensor::new(diff, vec![m])?))?;
            // lt broadcast over [value, payload...]
            let ltd = lt.value().data();
            let mut sel = Vec::with_capacity(m * (1 + pw));
            sel.extend_from_slice(ltd);
            for &l in ltd {
                sel.extend(std::iter::repeat_n(l, pw));
            }
            let mut dd = dv;
            dd.extend_from_slice(&dp);
            let len = sel.len();
            let prod = self.mul_ring(
                ex,
                &Share::new(p, RingTensor::new(sel, vec![len])?),
                &Share::new(p, RingTensor::new(dd, vec![len])?),
            )?;
            let pr = prod.value().data();
            let mut nvals = Vec::with_capacity(rows * nk);
            let mut npay = Vec::with_capacity(rows * nk * pw);
            for r in 0..rows {
                for j in 0..half {
                    let i = r * half + j;
                    nvals.push(lv[i].wrapping_add(pr[i]));
                    for t in 0..pw {
                        npay.push(lp[i * pw + t].wrapping_add(pr[m + i * pw + t]));
                    }
                }
                if k % 2 == 1 {
                    nvals.push(vals[r * k + k - 1]);
                    let ia = (r * k + k - 1) * pw;
                    npay.extend_from_slice(&pay[ia..ia + pw]);
                }
            }
            vals = nvals;
            pay = npay;
            k = nk;
        }
        let out = Share::new(p, RingTensor::new(vals, lead.to_vec())?);
        let pay = match payload {
            Payload::None => None,
            Payload::Index => Some(Share::new(p, RingTensor::new(pay, lead.to_vec())?)),
            Payload::OneHot => Some(Share::new(p, RingTensor::new(pay, shape.to_vec())?)),
        };
        Ok((out, pay))
    }
}

/// A request for correlated randomness of either family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnyRequest {
    Arith(CorrelationRequest),
    Compare(CompareRequest),
}

/// The correlations each composite asks for, in the order it asks: what a
/// dealer must prepare ahead of the run. Computed from the shapes alone;
/// every function mirrors the protocol of the same name above, and a test
/// checks each against a recorded run.
pub mod requests {
    use super::{and_triple_bits, numel, AnyRequest, Result, SharingError};
    use crate::sharing::correlations::{CompareRequest, CorrelationRequest};

    /// One MSB of a tensor of `shape` (mask, AND triples, daBits).
    pub fn msb(shape: &[usize], out: &mut Vec<AnyRequest>) -> Result<()> {
        let n = numel(shape)?;
        out.push(AnyRequest::Compare(CompareRequest::MaskedBits {
            shape: shape.to_vec(),
        }));
        out.push(AnyRequest::Compare(CompareRequest::AndTriples {
            bits: and_triple_bits(n),
        }));
        out.push(AnyRequest::Compare(CompareRequest::DaBits {
            shape: shape.to_vec(),
        }));
        Ok(())
    }

    /// One elementwise ring product (a select, or `msb · x`).
    pub fn product(shape: &[usize], out: &mut Vec<AnyRequest>) {
        out.push(AnyRequest::Arith(CorrelationRequest::ElementwiseTriple {
            shape: shape.to_vec(),
        }));
    }

    /// [`super::Engine::relu`], [`super::Engine::max_elem`] and
    /// [`super::Engine::min_elem`]: an MSB and a product of the same shape.
    pub fn compare_then_product(shape: &[usize]) -> Result<Vec<AnyRequest>> {
        let mut out = Vec::new();
        msb(shape, &mut out)?;
        product(shape, &mut out);
        Ok(out)
    }

    /// [`super::Engine::clamp`]: both comparisons and both products batched.
    pub fn clamp(shape: &[usize]) -> Result<Vec<AnyRequest>> {
        let n2 = numel(shape)?
            .checked_mul(2)
            .ok_or(SharingError::BadParameter("tensor too large"))?;
        compare_then_product(&[n2])
    }

    /// The tournament of [`super::Engine::max_last_axis`] (`payload` = 0),
    /// [`super::Engine::argmax_last_axis`] (1) and
    /// [`super::Engine::argmax_onehot_last_axis`] (the axis length).
    pub fn tournament(shape: &[usize], payload: usize) -> Result<Vec<AnyRequest>> {
        let (&n, lead) = shape.split_last().ok_or(SharingError::UnsupportedShape {
            op: "max along last axis",
            shape: shape.to_vec(),
        })?;
        let rows = numel(lead)?;
        let mut out = Vec::new();
        let mut k = n;
        while k > 1 {
            let m = rows * (k / 2);
            msb(&[m], &mut out)?;
            product(&[m * (1 + payload)], &mut out);
            k = k.div_ceil(2);
        }
        Ok(out)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Payload {
    None,
    Index,
    OneHot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_compression_and_packing() {
        let x = 0b1011_0110u64;
        assert_eq!(even_bits(x), 0b0110);
        assert_eq!(odd_bits(x), 0b1101);
        assert_eq!(even_bits(u64::MAX), u64::from(u32::MAX));
        for w in [1u32, 2, 4, 8, 16, 32, 64] {
            let vals: Vec<u64> = (0..37u64)
                .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) & low_mask(w))
                .collect();
            let packed = pack(&vals, w);
            assert_eq!(packed.len(), (37 * w as usize).div_ceil(64));
            assert_eq!(unpack(&packed, w, 37), vals);
        }
        assert_eq!(
            (1..=LEVELS).map(level_width).sum::<u32>() as usize,
            AND_GATES_PER_MSB
        );
    }
}
