//! The MSB of an additively shared 64-bit value by the millionaires'
//! protocol of CrypTFlow2 (Rathee et al., CCS 2020, Algorithm 1; Cheetah
//! uses the same), for the comparisons whose correlations come from OT
//! ([`super::compare::SelectKind::Ot`]). It ends with XOR shares of the bit,
//! for the OT multiplexer ([`Engine::mux`]).
//!
//! **Width.** The engine's [`Engine::compare_bits`] bounds the compared
//! values by `[-2^bits, 2^bits)`; the comparison then reads the low
//! `w = 4L − 1` bits with `L = `[`plan::params::mill_leaves`]`(bits)`
//! leaves (16 and `w = 63` without a bound, 6 and `w = 23` for values
//! below `2^23`). Below `2^w` in magnitude, bits `w` to 63 of `x` all equal
//! its sign, so `msb(x)` is bit `w`. (CrypTFlow2 compares `ℓ`-bit values
//! in a ring of `ℓ` bits; here the ring stays `Z_2^64` and the bound comes
//! from the compiler's range analysis.)
//!
//! With `x = x0 + x1 mod 2^64` and `x_b' = x_b mod 2^w`,
//! `bit_w(x) = bit_w(x0) ⊕ bit_w(x1) ⊕ carry`, `carry = [x0' + x1' ≥ 2^w]
//! = [b < a]` for party 0's `a = x0'` and party 1's `b = 2^w − 1 − x1'`
//! (the low `w` bits of `¬x1`). So the carry is one comparison of two
//! private `w`-bit numbers, no masked opening.
//!
//! 1. **Leaves, 2 rounds.** Both numbers are cut into `L` chunks of 4 bits
//!    (the top one has 3). For chunk `k` party 0 knows, for every `v < 16`,
//!    the 2-bit message `M_v = ([v < a_k] ⊕ s_lt, [v = a_k] ⊕ s_eq)` under
//!    fresh uniform mask bits `s` (its shares); party 1 gets `M_{b_k}` by a
//!    1-of-16 OT, i.e. its shares of `lt_k = [b_k < a_k]` and
//!    `eq_k = [b_k = a_k]`. The OTs are precomputed random ones
//!    ([`CorrelationRequest::OneOf16Ots`]: party 0 holds pads
//!    `R_0..R_15`, party 1 a random `c` and `R_c`), derandomised as in
//!    Beaver, "Precomputing oblivious transfer" (CRYPTO 1995): party 1
//!    sends `d = b_k ⊕ c` (`4L` bits per element for all chunks), party 0
//!    sends `T_v = M_v ⊕ R_{v⊕d}` for all `v` (32 bits per chunk), and
//!    party 1 reads `T_{b_k} ⊕ R_c = M_{b_k}`.
//! 2. **AND tree, `ceil(log2 L)` rounds.** Adjacent chunks (hi, lo)
//!    combine as `lt = lt_hi ⊕ (eq_hi ∧ lt_lo)`, `eq = eq_hi ∧ eq_lo`, an
//!    odd top chunk passing through; the lowest group's `eq` is never
//!    needed, so a level of `m` nodes has `2·⌊m/2⌋ − 1` AND gates per
//!    element (15, 7, 3, 1: 26 in all for 16 leaves; 5, 1, 1 for 6), on
//!    boolean Beaver triples ([`CorrelationRequest::AndTriples`])
//!    bit-packed across elements. The last level's `lt` is the carry.
//!
//! Rounds (messages each way, [`plan::params::mill_rounds`]): 6 for 9 to
//! 16 leaves, 5 for 5 to 8, against 7 for the masked opening and carry tree of
//! [`super::compare`]. Bytes per element for 16 leaves: party 1 sends
//! 8 + 6.5, party 0 64 + 6.5 (each AND round `e ‖ f`, packed); for 6
//! leaves 3 + 1.75 and 24 + 1.75. COTs per element in preprocessing: `4L`
//! for the leaves, 2 per AND gate (116 for 16 leaves, 38 for 6), against
//! 63 + 250 for the carry tree.
//!
//! What each party sees: party 0 the flips `d = b_k ⊕ c` (uniform: `c` is)
//! and the AND openings (one-time padded by the triples); party 1 the `T_v`,
//! each padded by a pad `R_{v⊕d}` it does not hold except at `v = b_k`,
//! where it gets `M_{b_k}`, whose bits are padded by `s`. The pads are
//! those of a random 1-of-16 OT (`ot::one_of_n::random_send_short`:
//! Naor–Pinkas from 4 random OTs, `R_u = ⊕_t field_u(p_t^{u_t})` of tccr
//! pads), so every `R_u` with `u ≠ c` is pseudorandom to party 1. The
//! width is public (it is in the plan) and reveals nothing about the
//! values beyond the compiler's public bound.

use super::compare::{even_bits, odd_bits, XorBits};
use super::correlations::{
    AndTripleShare, CorrelationRequest, Correlations, OneOf16Share, OneOf16Side,
};
use super::error::{Result, SharingError};
use super::protocol::{Engine, Exchange, Message};
use super::ring::numel;
use super::share::{Party, Share};

/// The comparison's shape for compared values in `[-2^bits, 2^bits)`.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    /// 4-bit chunks (1 to 16).
    leaves: usize,
    /// AND-tree levels (`ceil(log2 leaves)`).
    levels: u32,
    /// Bits compared: `4·leaves − 1`; bit `width` is the MSB.
    width: u32,
}

impl Geometry {
    fn new(bits: u32) -> Result<Geometry> {
        if !(1..=plan::params::COMPARE_FULL_BITS).contains(&bits) {
            return Err(SharingError::BadParameter(
                "comparison width must be 1 to 63 bits",
            ));
        }
        let leaves = plan::params::mill_leaves(bits) as usize;
        Ok(Geometry {
            leaves,
            levels: leaves.next_power_of_two().trailing_zeros(),
            width: 4 * leaves as u32 - 1,
        })
    }

    fn low(self) -> u64 {
        (1u64 << self.width) - 1
    }

    /// Nodes entering tree level `level` (1-based): each level pairs
    /// adjacent nodes, an odd top node passing through.
    fn nodes(self, level: u32) -> usize {
        (1..level).fold(self.leaves, |n, _| n.div_ceil(2))
    }

    /// AND gates per element at tree level `level`: one per pair for `lt`,
    /// one per pair but the lowest for `eq`.
    fn level_ands(self, level: u32) -> usize {
        plan::params::mill_level_ands(self.nodes(level) as u32) as usize
    }

    fn level_words(self, n: usize, level: u32) -> usize {
        (n * self.level_ands(level)).div_ceil(64)
    }

    /// AND triples (in bits, whole words per level) for `n` elements.
    fn and_triple_bits(self, n: usize) -> usize {
        64 * (1..=self.levels)
            .map(|l| self.level_words(n, l))
            .sum::<usize>()
    }

    /// Random 1-of-16 OTs for `n` elements.
    fn leaf_ots(self, n: usize) -> Result<usize> {
        n.checked_mul(self.leaves)
            .ok_or(SharingError::BadParameter("tensor too large"))
    }
}

/// Messages each way of one comparison within `2^bits`.
pub fn rounds(bits: u32) -> usize {
    plan::params::mill_rounds(plan::params::mill_leaves(bits)) as usize
}

/// The correlations of one comparison of `n` elements within `2^bits`, in
/// order.
pub fn requests(n: usize, bits: u32, out: &mut Vec<CorrelationRequest>) -> Result<()> {
    let g = Geometry::new(bits)?;
    out.push(CorrelationRequest::OneOf16Ots {
        count: g.leaf_ots(n)?,
    });
    out.push(CorrelationRequest::AndTriples {
        bits: g.and_triple_bits(n),
    });
    Ok(())
}

/// `w`-bit values packed back to back (value `i` at bit `i·w`).
fn pack_bits(vals: &[u64], w: usize, words: usize) -> Vec<u64> {
    let mut out = vec![0u64; words];
    for (i, &v) in vals.iter().enumerate() {
        let p = i * w;
        let (q, r) = (p / 64, p % 64);
        out[q] |= v << r;
        if r + w > 64 {
            out[q + 1] |= v >> (64 - r);
        }
    }
    out
}

/// Inverse of [`pack_bits`] for `n` values (`w ≤ 64`).
fn unpack_bits(words: &[u64], w: usize, n: usize) -> Vec<u64> {
    let mask = if w >= 64 { u64::MAX } else { (1u64 << w) - 1 };
    (0..n)
        .map(|i| {
            let p = i * w;
            let (q, r) = (p / 64, p % 64);
            let mut v = words[q] >> r;
            if r + w > 64 {
                v |= words[q + 1] << (64 - r);
            }
            v & mask
        })
        .collect()
}

/// The 16 two-bit fields of `r` permuted by `d`: field `v` of the result is
/// field `v ⊕ d` of `r`.
#[inline]
fn xor_permute(mut r: u32, d: u32) -> u32 {
    if d & 1 != 0 {
        r = ((r & 0x3333_3333) << 2) | ((r >> 2) & 0x3333_3333);
    }
    if d & 2 != 0 {
        r = ((r & 0x0f0f_0f0f) << 4) | ((r >> 4) & 0x0f0f_0f0f);
    }
    if d & 4 != 0 {
        r = ((r & 0x00ff_00ff) << 8) | ((r >> 8) & 0x00ff_00ff);
    }
    if d & 8 != 0 {
        r = r.rotate_left(16);
    }
    r
}

/// Party 0's 16 messages for chunk value `a < 16` under masks `s`
/// (bit 0: `lt`, bit 1: `eq`): field `v` is `([v < a] ⊕ s_0, [v = a] ⊕ s_1)`.
#[inline]
fn leaf_messages(a: u32, s: u32) -> u32 {
    let lt = 0x5555_5555u32 & ((1u32 << (2 * a)) - 1);
    let eq = 2u32 << (2 * a);
    let pad = ((s & 1) * 0x5555_5555) | ((s >> 1) * 0xaaaa_aaaa);
    lt ^ eq ^ pad
}

fn corr_err(what: &str) -> SharingError {
    SharingError::Correlations(format!(
        "millionaires' comparison correlation has the wrong size: {what}"
    ))
}

fn words_msg(data: Vec<u64>) -> Message {
    Message::Open(super::compare::words_msg(data))
}

/// The peer's message of `expected` words.
fn peer_words(m: Message, expected: usize) -> Result<Vec<u64>> {
    let peer = match m {
        Message::Open(o) => o,
        other => {
            return Err(SharingError::UnexpectedMessage {
                expected: "open",
                got: other.kind(),
            })
        }
    };
    super::compare::peer_words(peer, expected)
}

fn check(
    ots: &OneOf16Share,
    triples: &AndTripleShare,
    p: Party,
    n: usize,
    g: Geometry,
) -> Result<()> {
    let count = g.leaf_ots(n)?;
    if ots.party != p || triples.party != p {
        return Err(SharingError::PartyMismatch(
            "comparison correlations belong to the other party",
        ));
    }
    if ots.count != count {
        return Err(corr_err("1-of-16 OTs"));
    }
    let ok = match &ots.side {
        OneOf16Side::Sender { pads, masks } => {
            p == Party::P0
                && pads.len() >= OneOf16Side::pad_words(count)
                && masks.len() >= OneOf16Side::mask_words(count)
        }
        OneOf16Side::Receiver { choices, got } => {
            p == Party::P1
                && choices.len() >= OneOf16Side::choice_words(count)
                && got.len() >= OneOf16Side::mask_words(count)
        }
    };
    if !ok {
        return Err(corr_err("1-of-16 OTs"));
    }
    let tw = CorrelationRequest::words_for_bits(g.and_triple_bits(n));
    if triples.a.len() < tw || triples.b.len() < tw || triples.c.len() < tw {
        return Err(corr_err("AND triples"));
    }
    Ok(())
}

/// Two bits of OT `j` in a stream of 2-bit fields.
#[inline]
fn field2(words: &[u64], j: usize) -> u64 {
    (words[j / 32] >> (2 * (j % 32))) & 3
}

/// The leaves: per element, my shares of `lt_k` (bit `k` of the first
/// word) and `eq_k` (of the second). Two exchanges. OT `i·L + k` serves
/// chunk `k` of element `i`; the flips are `4L` bits per element and the
/// masked messages 32 bits per chunk, both packed back to back.
fn leaves<E: Exchange>(
    ex: &mut E,
    ots: &OneOf16Share,
    x: &[u64],
    g: Geometry,
) -> Result<Vec<(u64, u64)>> {
    let n = x.len();
    let l = g.leaves;
    let flip_bits = 4 * l;
    let flip_words = (n * flip_bits).div_ceil(64);
    let t_words = (n * l).div_ceil(2);
    match &ots.side {
        OneOf16Side::Sender { pads, masks } => {
            let d = peer_words(ex.exchange(words_msg(Vec::new()))?, flip_words)?;
            let d = unpack_bits(&d, flip_bits, n);
            let mut out = Vec::with_capacity(n);
            let mut t = vec![0u64; t_words];
            for (i, (&xi, &di)) in x.iter().zip(&d).enumerate() {
                let a = xi & g.low();
                let (mut lt, mut eq) = (0u64, 0u64);
                for k in 0..l {
                    let j = i * l + k;
                    let ak = ((a >> (4 * k)) & 15) as u32;
                    let dk = ((di >> (4 * k)) & 15) as u32;
                    let s = field2(masks, j) as u32;
                    let r = (pads[j / 2] >> (32 * (j % 2))) as u32;
                    let tk = leaf_messages(ak, s) ^ xor_permute(r, dk);
                    t[j / 2] |= u64::from(tk) << (32 * (j % 2));
                    lt |= u64::from(s & 1) << k;
                    eq |= u64::from(s >> 1) << k;
                }
                out.push((lt, eq));
            }
            peer_words(ex.exchange(words_msg(t))?, 0)?;
            Ok(out)
        }
        OneOf16Side::Receiver { choices, got } => {
            let b: Vec<u64> = x.iter().map(|&xi| !xi & g.low()).collect();
            let c = unpack_bits(choices, flip_bits, n);
            let d: Vec<u64> = b.iter().zip(&c).map(|(b, c)| b ^ c).collect();
            peer_words(
                ex.exchange(words_msg(pack_bits(&d, flip_bits, flip_words)))?,
                0,
            )?;
            let t = peer_words(ex.exchange(words_msg(Vec::new()))?, t_words)?;
            Ok(b.iter()
                .enumerate()
                .map(|(i, &bi)| {
                    let (mut lt, mut eq) = (0u64, 0u64);
                    for k in 0..l {
                        let j = i * l + k;
                        let bk = (bi >> (4 * k)) & 15;
                        let tk = t[j / 2] >> (32 * (j % 2));
                        let m = ((tk >> (2 * bk)) & 3) ^ field2(got, j);
                        lt |= (m & 1) << k;
                        eq |= (m >> 1) << k;
                    }
                    (lt, eq)
                })
                .collect())
        }
    }
}

/// `msb(x)` as XOR shares by the millionaires' protocol
/// ([`rounds`]`(engine.compare_bits())` exchanges). Asks for the 1-of-16
/// OTs and the AND triples, in that order.
pub fn msb_bits<C: Correlations, E: Exchange>(
    engine: &mut Engine<C>,
    ex: &mut E,
    x: &Share,
) -> Result<XorBits> {
    let p = engine.party();
    if x.party() != p {
        return Err(SharingError::PartyMismatch(
            "share does not belong to this engine's party",
        ));
    }
    let g = Geometry::new(engine.compare_bits())?;
    let n = numel(x.shape())?;
    let corr = engine.correlations_mut();
    let ots = corr.one_of_16_ots(g.leaf_ots(n)?)?;
    let triples = corr.and_triples(g.and_triple_bits(n))?;
    check(&ots, &triples, p, n, g)?;
    let xs = x.value().data();
    let p0 = p == Party::P0;
    let (mut lt, mut eq): (Vec<u64>, Vec<u64>) = leaves(ex, &ots, xs, g)?.into_iter().unzip();
    let mut off = 0;
    for level in 1..=g.levels {
        let nodes = g.nodes(level);
        let pairs = nodes / 2;
        let low = (1u64 << pairs) - 1;
        let w = g.level_ands(level);
        let words = g.level_words(n, level);
        // Operands: eq_hi with lt_lo (every pair), eq_hi with eq_lo (pairs
        // above the lowest). An odd top node (bit `pairs` of the even
        // bits) passes through to the next level as its top node.
        let mut xv = Vec::with_capacity(n);
        let mut yv = Vec::with_capacity(n);
        let mut lt_hi = Vec::with_capacity(n);
        let mut top = Vec::with_capacity(if nodes % 2 == 1 { n } else { 0 });
        for i in 0..n {
            let (eh, el) = (odd_bits(eq[i]), even_bits(eq[i]));
            let (lh, ll) = (odd_bits(lt[i]), even_bits(lt[i]));
            xv.push(eh | ((eh >> 1) << pairs));
            yv.push((ll & low) | (((el & low) >> 1) << pairs));
            lt_hi.push(lh);
            if nodes % 2 == 1 {
                top.push(((ll >> pairs) & 1, (el >> pairs) & 1));
            }
        }
        let (xw, yw) = (pack_bits(&xv, w, words), pack_bits(&yv, w, words));
        let (a, b, c) = (
            &triples.a[off..off + words],
            &triples.b[off..off + words],
            &triples.c[off..off + words],
        );
        let mut mine = Vec::with_capacity(2 * words);
        mine.extend(xw.iter().zip(a).map(|(x, a)| x ^ a));
        mine.extend(yw.iter().zip(b).map(|(y, b)| y ^ b));
        let peer = peer_words(ex.exchange(words_msg(mine.clone()))?, 2 * words)?;
        let z: Vec<u64> = (0..words)
            .map(|j| {
                let e = mine[j] ^ peer[j];
                let f = mine[words + j] ^ peer[words + j];
                let mut z = c[j] ^ (e & b[j]) ^ (a[j] & f);
                if p0 {
                    z ^= e & f;
                }
                z
            })
            .collect();
        off += words;
        for (i, zi) in unpack_bits(&z, w, n).into_iter().enumerate() {
            lt[i] = lt_hi[i] ^ (zi & low);
            eq[i] = (zi >> pairs) << 1;
            if let Some(&(t_lt, t_eq)) = top.get(i) {
                lt[i] |= t_lt << pairs;
                eq[i] |= t_eq << pairs;
            }
        }
    }
    let mut words = vec![0u64; n.div_ceil(64)];
    for (i, (&l, &xi)) in lt.iter().zip(xs).enumerate() {
        words[i / 64] |= ((l ^ (xi >> g.width)) & 1) << (i % 64);
    }
    Ok(XorBits { n, words })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_permutation_and_messages() {
        for w in [1usize, 3, 7, 15] {
            let vals: Vec<u64> = (0..77u64)
                .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) & ((1 << w) - 1))
                .collect();
            let words = (77 * w).div_ceil(64);
            assert_eq!(unpack_bits(&pack_bits(&vals, w, words), w, 77), vals);
        }
        let r: u32 = 0xe4b1_7c29;
        for d in 0..16u32 {
            let p = xor_permute(r, d);
            for v in 0..16u32 {
                assert_eq!((p >> (2 * v)) & 3, (r >> (2 * (v ^ d))) & 3, "d={d} v={v}");
            }
        }
        for a in 0..16u32 {
            for s in 0..4u32 {
                let m = leaf_messages(a, s);
                for v in 0..16u32 {
                    let want = (u32::from(v < a) ^ (s & 1)) | ((u32::from(v == a) ^ (s >> 1)) << 1);
                    assert_eq!((m >> (2 * v)) & 3, want);
                }
            }
        }
        for (bits, leaves, width) in [(63, 16, 63), (60, 16, 63), (59, 15, 59), (32, 9, 35)]
            .into_iter()
            .chain([
                (31, 8, 31),
                (23, 6, 23),
                (22, 6, 23),
                (16, 5, 19),
                (15, 4, 15),
            ])
            .chain([(8, 3, 11), (7, 2, 7), (4, 2, 7), (3, 1, 3), (1, 1, 3)])
        {
            let g = Geometry::new(bits).unwrap();
            assert_eq!((g.leaves, g.width), (leaves, width), "bits {bits}");
            assert_eq!(
                (1..=g.levels).map(|l| g.level_ands(l)).sum::<usize>(),
                plan::params::mill_and_gates(leaves as u32) as usize
            );
            assert_eq!(rounds(bits), 2 + g.levels as usize);
            assert_eq!(g.nodes(g.levels + 1), 1, "bits {bits}");
        }
        assert_eq!(plan::params::mill_and_gates(16), 26);
        assert_eq!(plan::params::mill_and_gates(8), 11);
        assert_eq!(plan::params::mill_and_gates(6), 7);
        assert_eq!(plan::params::mill_and_gates(11), 9 + 5 + 1 + 1);
        assert_eq!(plan::params::mill_and_gates(1), 0);
        assert_eq!(
            (rounds(31), rounds(20), rounds(16), rounds(12)),
            (5, 5, 5, 4)
        );
        assert_eq!(rounds(63), 6);
        assert!(Geometry::new(0).is_err() && Geometry::new(64).is_err());
    }
}
