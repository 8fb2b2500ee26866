//! Correlated randomness behind one interface, [`Correlations`]: one
//! request type ([`CorrelationRequest`]) and one share type
//! ([`CorrelationShare`]) for every correlation of every protocol family
//! (Beaver triples, truncation pairs, the comparison correlations). A family
//! adds variants to those two enums and to [`SeedExpander::expand`] /
//! [`Dealer::correction`]; nothing else keeps a parallel list.
//!
//! Sources:
//! 1. A dealer that expands short PRG seeds ([`Dealer`], [`DealerSource`]):
//!    each computing party receives a 32-byte seed and derives from an
//!    AES-128 counter-mode stream its shares of every correlation (party 0
//!    also of the parts party 1 gets as corrections). The dealer sends
//!    party 1 only those corrections ([`DealerMsg`]: `c1` of a triple,
//!    `(r>>f)_1` and `msb(r)_1` of a truncation pair, the XOR share of a
//!    mask's bits, `c1` of AND triples, the additive share of daBits);
//!    [`Dealer::bytes_sent`] counts every byte it sends (seeds included).
//!    Every request draws PRG streams from one counter, so the dealer must
//!    be asked in the protocol's order (the online pair does this
//!    automatically).
//! 2. Two-party generation with Paillier lives in the executor
//!    (`exec::twoparty`): it runs its own offline protocol and fills a
//!    [`PrecomputedCorrelations`] per party with
//!    [`PrecomputedCorrelations::push`]. The online protocols only ever see
//!    the trait.
//!
//! Both parties must request correlations in the same order (they run the
//! same protocol, so they do). [`RecordingCorrelations`] logs the requests of
//! a run so that preprocessing can be done ahead of time.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// The stream cipher that expands the dealer's seeds: AES-128 in counter
/// mode (the `aes` crate uses AES-NI where the processor has it, detected
/// at run time). Expansion is the dealer mode's largest cost: the 8 MB mask
/// of a 10,000 x 100 batch takes about 1.2 ms here against 2.2 ms with
/// ChaCha12. The counter block is the stream number (high 64 bits) and the
/// block number (low 64 bits, little-endian), so any stream can be entered
/// at any element.
type PrgCipher = ctr::Ctr64LE<aes::Aes128>;

/// The AES key of a 32-byte seed: its two halves XORed, uniform when the
/// seed is (seeds keep 32 bytes on the wire).
fn prg_key(seed: &[u8; 32]) -> zeroize::Zeroizing<[u8; 16]> {
    zeroize::Zeroizing::new(std::array::from_fn(|i| seed[i] ^ seed[16 + i]))
}
/// The window of a convolution triple ([`CorrelationRequest::ConvTriple`]).
pub use plan::Window;
use serde::{Deserialize, Serialize};

use super::error::{Result, SharingError};
use super::ring::{numel, RingTensor};
use super::share::{Party, Share};

/// What a protocol step needs from the preprocessing: every correlation of
/// every protocol family.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CorrelationRequest {
    /// `(a, b, c = a * b)` elementwise, all of `shape`.
    ElementwiseTriple { shape: Vec<usize> },
    /// `(a, b, c = a @ b)` with `a: a_shape`, `b: b_shape`.
    MatmulTriple {
        a_shape: Vec<usize>,
        b_shape: Vec<usize>,
    },
    /// `(a, b, c = a ⊛ b)`: a convolution triple, `a` of the
    /// convolution's input `a_shape` (`[batch, C, S...]`), `b` of `b_shape`
    /// and `c` the convolution of `a` by `b` under `window`
    /// ([`conv_product`]): with one group `b` is `[C·K, O]` and
    /// `c = im2col(a) @ b`; with `groups > 1` (depthwise included) `b` is
    /// `[O, C/groups·K]`, one row per output channel, and `c` sums each
    /// output channel's group patch times its row. `c` is `[positions, O]`
    /// ([`conv_out_shape`]).
    ConvTriple {
        a_shape: Vec<usize>,
        window: plan::Window,
        b_shape: Vec<usize>,
    },
    /// Truncation triple `(r, r >> f, msb(r))`, `r` uniform in Z_2^64.
    Trunc { shape: Vec<usize>, frac_bits: u32 },
    /// An "input-holder" matrix triple for `x @ w` where `x` is in the clear
    /// at one party and `w` at the other: `a` is known entirely to
    /// `a_holder` (the other party's share of it is zero), `b` entirely to
    /// the other party, and `c = a @ b` is shared. Each party then sends only
    /// its own masked input (`x - a` or `w - b`), once.
    HolderMatmulTriple {
        a_shape: Vec<usize>,
        b_shape: Vec<usize>,
        a_holder: Party,
    },
    /// An input-holder convolution triple for `x ⊛ w` where `x` is in the
    /// clear at one party and `w` at the other: `a` of the input's shape
    /// `a_shape` known entirely to `a_holder`, `b` of `b_shape` entirely to
    /// the other party, and `c = a ⊛ b` ([`conv_product`] under `window`,
    /// as for [`CorrelationRequest::ConvTriple`]) shared. Each party sends
    /// only its own masked input once: `x − a` (|x| elements, not the
    /// patches') or `w − b`.
    HolderConvTriple {
        a_shape: Vec<usize>,
        window: plan::Window,
        b_shape: Vec<usize>,
        a_holder: Party,
    },
    /// A uniform mask `r` over Z_2^64 of `shape`, shared additively *and*
    /// bitwise: one word per element whose bits are XOR shares of the bits
    /// of `r` (secure comparison, [`super::compare`]).
    MaskedBits { shape: Vec<usize> },
    /// `bits` boolean Beaver triples `(a, b, c = a AND b)`, XOR-shared and
    /// bit-packed in `ceil(bits / 64)` words (bit `i` is bit `i % 64` of
    /// word `i / 64`).
    AndTriples { bits: usize },
    /// One random bit `s` per element of `shape`, shared both ways
    /// ("daBit"): XOR shares bit-packed as for
    /// [`CorrelationRequest::AndTriples`] and additive shares of `s` as a
    /// 0/1 ring element.
    DaBits { shape: Vec<usize> },
    /// One random 1-of-2 OT per element of `shape` with 64-bit messages,
    /// `sender` sending: the sender holds pads `k0, k1`, the receiver a
    /// random choice bit `c` (bit-packed as for
    /// [`CorrelationRequest::AndTriples`]) and `k_c`. Derandomised online
    /// (Beaver 1995) by the OT multiplexer of [`super::compare`].
    RandomOts { shape: Vec<usize>, sender: Party },
    /// `count` random 1-of-16 OTs of 2-bit messages, party 0 sending (the
    /// leaves of the millionaires' comparison, [`super::millionaire`]).
    /// Party 0 holds the 16 pads of each and a uniform 2-bit mask, party 1
    /// a random choice `c < 16` and pad `c`. Layouts in [`OneOf16Side`].
    OneOf16Ots { count: usize },
    /// The dealer's correlation for a one-round MSB of every element of
    /// `shape`, each within `2^bits` (63: anywhere), by a distributed
    /// comparison function ([`super::dcf`]): a uniform mask `r` shared
    /// additively, additive shares of its bit `r_bits`, each party's root
    /// seed, and the correction words of the `bits`-bit DCF
    /// `(1 − 2·r_bits)·[c' < r mod 2^bits]` (party 1's correction; it
    /// forwards them to party 0 online). See [`super::compare`].
    DcfMsb { shape: Vec<usize>, bits: u32 },
}

impl CorrelationRequest {
    fn validate(&self) -> Result<()> {
        match self {
            CorrelationRequest::ElementwiseTriple { shape }
            | CorrelationRequest::MaskedBits { shape }
            | CorrelationRequest::DaBits { shape }
            | CorrelationRequest::RandomOts { shape, .. } => numel(shape).map(|_| ()),
            CorrelationRequest::DcfMsb { shape, bits } => {
                if !(1..=plan::params::COMPARE_FULL_BITS).contains(bits) {
                    return Err(SharingError::BadParameter(
                        "comparison width must be 1 to 63 bits",
                    ));
                }
                numel(shape)?
                    .checked_mul(super::dcf::cw_words(*bits))
                    .filter(|&w| w <= isize::MAX as usize / 8)
                    .ok_or(SharingError::BadParameter("too many comparisons"))?;
                Ok(())
            }
            CorrelationRequest::MatmulTriple { a_shape, b_shape }
            | CorrelationRequest::HolderMatmulTriple {
                a_shape, b_shape, ..
            } => {
                numel(a_shape)?;
                numel(b_shape)?;
                RingTensor::matmul_shape(a_shape, b_shape).map(|_| ())
            }
            CorrelationRequest::ConvTriple {
                a_shape,
                window,
                b_shape,
            }
            | CorrelationRequest::HolderConvTriple {
                a_shape,
                window,
                b_shape,
                ..
            } => {
                numel(a_shape)?;
                numel(b_shape)?;
                let (rows, groups, width) = conv_dims(a_shape, window)?;
                numel(&[rows, groups, width])?;
                conv_out_shape(a_shape, window, b_shape).map(|_| ())
            }
            CorrelationRequest::Trunc { shape, frac_bits } => {
                if *frac_bits == 0 || *frac_bits >= 62 {
                    return Err(SharingError::BadParameter(
                        "trunc frac_bits must be in 1..62",
                    ));
                }
                numel(shape).map(|_| ())
            }
            CorrelationRequest::AndTriples { bits } => {
                if *bits > (isize::MAX as usize) / 8 {
                    return Err(SharingError::BadParameter("too many AND triples"));
                }
                Ok(())
            }
            CorrelationRequest::OneOf16Ots { count } => {
                if *count > (isize::MAX as usize) / 64 {
                    return Err(SharingError::BadParameter("too many 1-of-16 OTs"));
                }
                Ok(())
            }
        }
    }

    /// Roughly how many words expanding this request computes (inputs,
    /// the product of a matrix triple, outputs): whether splitting it over
    /// threads is worth a hand-off.
    fn work(&self) -> usize {
        let n = |s: &[usize]| s.iter().product::<usize>();
        match self {
            CorrelationRequest::ElementwiseTriple { shape }
            | CorrelationRequest::MaskedBits { shape }
            | CorrelationRequest::DaBits { shape }
            | CorrelationRequest::RandomOts { shape, .. }
            | CorrelationRequest::Trunc { shape, .. } => n(shape).saturating_mul(3),
            CorrelationRequest::DcfMsb { shape, .. } => n(shape).saturating_mul(4),
            CorrelationRequest::MatmulTriple { a_shape, b_shape }
            | CorrelationRequest::HolderMatmulTriple {
                a_shape, b_shape, ..
            } => n(a_shape)
                .saturating_add(n(b_shape))
                .saturating_mul(b_shape.last().copied().unwrap_or(1).max(1)),
            CorrelationRequest::ConvTriple {
                a_shape,
                window,
                b_shape,
            }
            | CorrelationRequest::HolderConvTriple {
                a_shape,
                window,
                b_shape,
                ..
            } => conv_dims(a_shape, window)
                .map_or(n(a_shape), |(rows, g, width)| {
                    rows.saturating_mul(g).saturating_mul(width)
                })
                .saturating_add(n(b_shape))
                .saturating_mul(if window.groups > 1 {
                    window.per_group.max(1)
                } else {
                    b_shape.last().copied().unwrap_or(1).max(1)
                }),
            CorrelationRequest::AndTriples { bits } => {
                Self::words_for_bits(*bits).saturating_mul(3)
            }
            CorrelationRequest::OneOf16Ots { count } => count.saturating_mul(2),
        }
    }

    /// Packed words needed for `bits` bits.
    pub fn words_for_bits(bits: usize) -> usize {
        bits.div_ceil(64)
    }

    /// Shapes of the tensors in the dealer's correction to party 1.
    fn correction_shapes(&self) -> Result<Vec<Vec<usize>>> {
        Ok(match self {
            CorrelationRequest::ElementwiseTriple { shape }
            | CorrelationRequest::MaskedBits { shape }
            | CorrelationRequest::DaBits { shape } => vec![shape.clone()],
            CorrelationRequest::MatmulTriple { a_shape, b_shape }
            | CorrelationRequest::HolderMatmulTriple {
                a_shape, b_shape, ..
            } => vec![RingTensor::matmul_shape(a_shape, b_shape)?],
            CorrelationRequest::ConvTriple {
                a_shape,
                window,
                b_shape,
            }
            | CorrelationRequest::HolderConvTriple {
                a_shape,
                window,
                b_shape,
                ..
            } => vec![conv_out_shape(a_shape, window, b_shape)?],
            CorrelationRequest::Trunc { shape, .. } => vec![shape.clone(), shape.clone()],
            CorrelationRequest::AndTriples { bits } => {
                vec![vec![CorrelationRequest::words_for_bits(*bits)]]
            }
            // Party 1 receives: its pad `k_c`. Party 1 sends: both pads.
            CorrelationRequest::RandomOts { shape, sender } => match sender {
                Party::P0 => vec![shape.clone()],
                Party::P1 => vec![shape.clone(), shape.clone()],
            },
            // Party 1's chosen pads.
            CorrelationRequest::OneOf16Ots { count } => vec![vec![OneOf16Side::mask_words(*count)]],
            // Party 1's share of msb(r), and the correction words.
            CorrelationRequest::DcfMsb { shape, bits } => {
                vec![
                    shape.clone(),
                    vec![numel(shape)? * super::dcf::cw_words(*bits)],
                ]
            }
        })
    }
}

/// The patches of an `a_shape` input under `window` as a convolution
/// triple multiplies them: rows (batch and output positions), groups, and
/// each group's patch width `C/groups·K` (one patch per group, not per
/// output channel: [`plan::Window::per_group`] copies are never made).
pub fn conv_dims(a_shape: &[usize], window: &plan::Window) -> Result<(usize, usize, usize)> {
    if window.per_group == 0 || (window.groups <= 1 && window.per_group != 1) {
        return Err(SharingError::BadParameter(
            "a convolution window needs one or more output channels per group (one without groups)",
        ));
    }
    let out = one_patch_per_group(window)
        .out_shape(a_shape)
        .map_err(|e| SharingError::Correlations(format!("convolution triple: {e}")))?;
    let lead = if window.groups > 1 { 2 } else { 1 };
    let positions = &out[..out.len().saturating_sub(lead)];
    let rows = positions
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or(SharingError::BadParameter("too many convolution patches"))?;
    Ok((rows, window.groups, out.last().copied().unwrap_or(1)))
}

/// `window` with one copy of each group's patch.
fn one_patch_per_group(window: &plan::Window) -> plan::Window {
    plan::Window {
        per_group: 1,
        ..window.clone()
    }
}

/// The shape of a convolution triple's `c` for an `a_shape` input and a
/// `b_shape` kernel under `window`: `[positions, O]`. With one group `b` is
/// `[C·K, O]`; with `groups > 1` it is `[groups·per_group, C/groups·K]`.
pub fn conv_out_shape(
    a_shape: &[usize],
    window: &plan::Window,
    b_shape: &[usize],
) -> Result<Vec<usize>> {
    let (rows, groups, width) = conv_dims(a_shape, window)?;
    if groups == 1 {
        return RingTensor::matmul_shape(&[rows, width], b_shape);
    }
    let outs = groups.checked_mul(window.per_group);
    match b_shape {
        [o, k] if Some(*o) == outs && *k == width => Ok(vec![rows, *o]),
        _ => Err(SharingError::ShapeMismatch {
            op: "grouped convolution",
            left: a_shape.to_vec(),
            right: b_shape.to_vec(),
        }),
    }
}

/// The patches of `a` under `window` as rows ([`conv_dims`]; one group:
/// `[rows, C·K]`), zero in the padding ([`plan::im2col_data`]).
pub fn conv_patches(a: &RingTensor, window: &plan::Window) -> Result<RingTensor> {
    let (rows, groups, width) = conv_dims(a.shape(), window)?;
    let (data, _) = plan::im2col_data(a.data(), a.shape(), &one_patch_per_group(window), 0u64)
        .map_err(|e| SharingError::Correlations(format!("convolution triple: {e}")))?;
    let shape = if groups > 1 {
        vec![rows, groups, width]
    } else {
        vec![rows, width]
    };
    RingTensor::new(data, shape)
}

/// The convolution of `a` (`[batch, C, S...]`) by `b` under `window`, as a
/// convolution triple's `c` and its Beaver product compute it
/// ([`conv_out_shape`]): one group, the patches times `b`; with groups,
/// output channel `o = g·per_group + r` is the dot product of group `g`'s
/// patch with row `o` of `b`.
pub fn conv_product(a: &RingTensor, window: &plan::Window, b: &RingTensor) -> Result<RingTensor> {
    let out_shape = conv_out_shape(a.shape(), window, b.shape())?;
    let patches = conv_patches(a, window)?;
    if window.groups == 1 {
        return patches.matmul(b);
    }
    let (outs, width) = (out_shape[1], b.shape()[1]);
    let per_group = window.per_group;
    let (p, w) = (patches.data(), b.data());
    let mut out = vec![0u64; out_shape[0] * outs];
    let row = |(r, dst): (usize, &mut [u64])| {
        let patch = &p[r * window.groups * width..(r + 1) * window.groups * width];
        for (o, d) in dst.iter_mut().enumerate() {
            let g = o / per_group;
            let x = &patch[g * width..(g + 1) * width];
            let k = &w[o * width..(o + 1) * width];
            *d = x
                .iter()
                .zip(k)
                .fold(0u64, |acc, (x, k)| acc.wrapping_add(x.wrapping_mul(*k)));
        }
    };
    if out.len().saturating_mul(width) >= 1 << 16 {
        use rayon::prelude::*;
        out.par_chunks_mut(outs.max(1)).enumerate().for_each(row);
    } else {
        out.chunks_mut(outs.max(1)).enumerate().for_each(row);
    }
    RingTensor::new(out, out_shape)
}

/// One party's share of a Beaver triple.
#[derive(Debug, Clone)]
pub struct TripleShare {
    pub a: Share,
    pub b: Share,
    pub c: Share,
}

/// One party's share of a truncation triple `(r, r >> f, msb(r))` where `r`
/// is uniform over Z_2^64, `r >> f` is the logical shift of `r` viewed as an
/// unsigned integer and `msb(r)` its top bit (as 0/1 ring element).
#[derive(Debug, Clone)]
pub struct TruncShare {
    pub r: Share,
    pub r_shift: Share,
    pub r_msb: Share,
}

/// One party's share of a mask `r` shared additively (`r`) and bitwise
/// (`r_bits`: XOR share of the 64 bits of each element, one word each).
#[derive(Clone)]
pub struct MaskedBitsShare {
    pub r: Share,
    pub r_bits: RingTensor,
}

/// One party's XOR shares of bit-packed boolean Beaver triples.
#[derive(Clone)]
pub struct AndTripleShare {
    pub party: Party,
    pub bits: usize,
    pub a: Vec<u64>,
    pub b: Vec<u64>,
    pub c: Vec<u64>,
}

/// One party's share of random bits shared both ways: packed XOR shares and
/// additive shares (0/1 in the ring).
#[derive(Clone)]
pub struct DaBitShare {
    pub bits: Vec<u64>,
    pub arith: Share,
}

/// One party's side of random OTs ([`CorrelationRequest::RandomOts`]).
/// `Debug` shows sizes only.
#[derive(Clone)]
pub struct RandomOtShare {
    pub party: Party,
    /// Number of OTs.
    pub n: usize,
    pub side: OtSide,
}

/// The sender's pads, or the receiver's choices and pads.
#[derive(Clone)]
pub enum OtSide {
    /// `k0[j], k1[j]` of every OT `j`.
    Sender { k0: Vec<u64>, k1: Vec<u64> },
    /// Choice bits (packed, bit `j % 64` of word `j / 64`) and `k_c[j]`.
    Receiver { choices: Vec<u64>, pads: Vec<u64> },
}

impl Drop for RandomOtShare {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        match &mut self.side {
            OtSide::Sender { k0, k1 } => {
                k0.zeroize();
                k1.zeroize();
            }
            OtSide::Receiver { choices, pads } => {
                choices.zeroize();
                pads.zeroize();
            }
        }
    }
}

/// One party's side of random 1-of-16 OTs
/// ([`CorrelationRequest::OneOf16Ots`]). `Debug` shows sizes only.
#[derive(Clone)]
pub struct OneOf16Share {
    pub party: Party,
    /// Number of OTs.
    pub count: usize,
    pub side: OneOf16Side,
}

/// Party 0's pads and masks, or party 1's choices and chosen pads. Only the
/// bits named here count; the rest of each word is arbitrary.
#[derive(Clone)]
pub enum OneOf16Side {
    /// OT `i`'s pad `x < 16` is bits `32·(i % 2) + 2x ..+2` of
    /// `pads[i / 2]`; its mask bits `2·(i % 32) ..+2` of `masks[i / 32]`.
    Sender { pads: Vec<u64>, masks: Vec<u64> },
    /// OT `i`'s choice is bits `4·(i % 16) ..+4` of `choices[i / 16]`, its
    /// pad bits `2·(i % 32) ..+2` of `got[i / 32]`.
    Receiver { choices: Vec<u64>, got: Vec<u64> },
}

impl OneOf16Side {
    /// Words of the sender's pads for `count` OTs.
    pub fn pad_words(count: usize) -> usize {
        count.div_ceil(2)
    }
    /// Words of the masks (and of the receiver's chosen pads).
    pub fn mask_words(count: usize) -> usize {
        count.div_ceil(32)
    }
    /// Words of the receiver's choices.
    pub fn choice_words(count: usize) -> usize {
        count.div_ceil(16)
    }
}

impl Drop for OneOf16Share {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        match &mut self.side {
            OneOf16Side::Sender { pads: a, masks: b }
            | OneOf16Side::Receiver { choices: a, got: b } => {
                a.zeroize();
                b.zeroize();
            }
        }
    }
}

/// One party's side of a [`CorrelationRequest::DcfMsb`]. `Debug` shows
/// sizes only.
#[derive(Clone)]
pub struct DcfShare {
    /// Additive share of the mask `r`.
    pub r: Share,
    /// Additive share of `r_63`, the mask's top bit (0/1 in the ring).
    pub r_msb: Share,
    /// This party's root seed of each element's DCF.
    pub roots: Vec<u128>,
    /// Party 1: the correction words (forwarded to party 0 online); party
    /// 0: `None`.
    pub cws: Option<super::dcf::Cws>,
}

impl Drop for DcfShare {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.roots);
    }
}

/// One party's share of a correlation, of the kind its request names.
/// `Debug` shows kinds and sizes only.
#[derive(Clone)]
pub enum CorrelationShare {
    Triple(TripleShare),
    Trunc(TruncShare),
    MaskedBits(MaskedBitsShare),
    AndTriples(AndTripleShare),
    DaBits(DaBitShare),
    RandomOts(RandomOtShare),
    OneOf16Ots(OneOf16Share),
    Dcf(DcfShare),
}

impl CorrelationShare {
    pub fn party(&self) -> Party {
        match self {
            CorrelationShare::Triple(t) => t.a.party(),
            CorrelationShare::Trunc(t) => t.r.party(),
            CorrelationShare::MaskedBits(m) => m.r.party(),
            CorrelationShare::AndTriples(t) => t.party,
            CorrelationShare::DaBits(d) => d.arith.party(),
            CorrelationShare::RandomOts(r) => r.party,
            CorrelationShare::OneOf16Ots(r) => r.party,
            CorrelationShare::Dcf(d) => d.r.party(),
        }
    }
}

impl std::fmt::Debug for CorrelationShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, shape): (&str, Vec<usize>) = match self {
            CorrelationShare::Triple(t) => ("Triple", t.c.shape().to_vec()),
            CorrelationShare::Trunc(t) => ("Trunc", t.r.shape().to_vec()),
            CorrelationShare::MaskedBits(m) => ("MaskedBits", m.r.shape().to_vec()),
            CorrelationShare::AndTriples(t) => ("AndTriples", vec![t.bits]),
            CorrelationShare::DaBits(d) => ("DaBits", d.arith.shape().to_vec()),
            CorrelationShare::RandomOts(r) => ("RandomOts", vec![r.n]),
            CorrelationShare::OneOf16Ots(r) => ("OneOf16Ots", vec![r.count]),
            CorrelationShare::Dcf(d) => ("Dcf", d.r.shape().to_vec()),
        };
        f.debug_struct(kind)
            .field("party", &self.party())
            .field("shape", &shape)
            .finish_non_exhaustive()
    }
}

/// The one interface the online protocols use.
pub trait Correlations {
    /// Which party this source serves.
    fn party(&self) -> Party;

    /// Serves one request (in protocol order).
    fn fetch(&mut self, req: &CorrelationRequest) -> Result<CorrelationShare>;

    /// Appends dealer corrections that arrived after the source was made
    /// (party 1 of a dealer that streams them). Only a source that queues
    /// corrections takes them.
    fn supply(&mut self, corrections: Vec<DealerMsg>) -> Result<()> {
        let _ = corrections;
        Err(SharingError::Correlations(
            "this source does not take dealer corrections".into(),
        ))
    }

    /// Elementwise Beaver triple of `shape`.
    fn elementwise_triple(&mut self, shape: &[usize]) -> Result<TripleShare> {
        match self.fetch(&CorrelationRequest::ElementwiseTriple {
            shape: shape.to_vec(),
        })? {
            CorrelationShare::Triple(t) => Ok(t),
            _ => Err(wrong_kind()),
        }
    }

    /// Matrix Beaver triple for `a_shape @ b_shape`.
    fn matmul_triple(&mut self, a_shape: &[usize], b_shape: &[usize]) -> Result<TripleShare> {
        match self.fetch(&CorrelationRequest::MatmulTriple {
            a_shape: a_shape.to_vec(),
            b_shape: b_shape.to_vec(),
        })? {
            CorrelationShare::Triple(t) => Ok(t),
            _ => Err(wrong_kind()),
        }
    }

    /// Convolution triple for `im2col(a_shape) @ b_shape` under `window`.
    fn conv_triple(
        &mut self,
        a_shape: &[usize],
        window: &plan::Window,
        b_shape: &[usize],
    ) -> Result<TripleShare> {
        match self.fetch(&CorrelationRequest::ConvTriple {
            a_shape: a_shape.to_vec(),
            window: window.clone(),
            b_shape: b_shape.to_vec(),
        })? {
            CorrelationShare::Triple(t) => Ok(t),
            _ => Err(wrong_kind()),
        }
    }

    /// Input-holder matrix triple for `a_shape @ b_shape`, `a` at `a_holder`.
    fn holder_matmul_triple(
        &mut self,
        a_shape: &[usize],
        b_shape: &[usize],
        a_holder: Party,
    ) -> Result<TripleShare> {
        match self.fetch(&CorrelationRequest::HolderMatmulTriple {
            a_shape: a_shape.to_vec(),
            b_shape: b_shape.to_vec(),
            a_holder,
        })? {
            CorrelationShare::Triple(t) => Ok(t),
            _ => Err(wrong_kind()),
        }
    }

    /// Input-holder convolution triple for `a_shape ⊛ b_shape` under
    /// `window`, `a` at `a_holder`.
    fn holder_conv_triple(
        &mut self,
        a_shape: &[usize],
        window: &plan::Window,
        b_shape: &[usize],
        a_holder: Party,
    ) -> Result<TripleShare> {
        match self.fetch(&CorrelationRequest::HolderConvTriple {
            a_shape: a_shape.to_vec(),
            window: window.clone(),
            b_shape: b_shape.to_vec(),
            a_holder,
        })? {
            CorrelationShare::Triple(t) => Ok(t),
            _ => Err(wrong_kind()),
        }
    }

    /// Truncation triple of `shape` for `frac_bits`.
    fn trunc_triple(&mut self, shape: &[usize], frac_bits: u32) -> Result<TruncShare> {
        match self.fetch(&CorrelationRequest::Trunc {
            shape: shape.to_vec(),
            frac_bits,
        })? {
            CorrelationShare::Trunc(t) => Ok(t),
            _ => Err(wrong_kind()),
        }
    }

    /// A mask of `shape` shared additively and bitwise.
    fn masked_bits(&mut self, shape: &[usize]) -> Result<MaskedBitsShare> {
        match self.fetch(&CorrelationRequest::MaskedBits {
            shape: shape.to_vec(),
        })? {
            CorrelationShare::MaskedBits(m) => Ok(m),
            _ => Err(wrong_kind()),
        }
    }

    /// `bits` AND triples, bit-packed.
    fn and_triples(&mut self, bits: usize) -> Result<AndTripleShare> {
        match self.fetch(&CorrelationRequest::AndTriples { bits })? {
            CorrelationShare::AndTriples(t) => Ok(t),
            _ => Err(wrong_kind()),
        }
    }

    /// One random OT per element of `shape`, `sender` sending.
    fn random_ots(&mut self, shape: &[usize], sender: Party) -> Result<RandomOtShare> {
        match self.fetch(&CorrelationRequest::RandomOts {
            shape: shape.to_vec(),
            sender,
        })? {
            CorrelationShare::RandomOts(r) => Ok(r),
            _ => Err(wrong_kind()),
        }
    }

    /// The dealer's DCF correlation for the MSBs of a tensor of `shape`,
    /// each within `2^bits`.
    fn dcf_msb(&mut self, shape: &[usize], bits: u32) -> Result<DcfShare> {
        match self.fetch(&CorrelationRequest::DcfMsb {
            shape: shape.to_vec(),
            bits,
        })? {
            CorrelationShare::Dcf(d) => Ok(d),
            _ => Err(wrong_kind()),
        }
    }

    /// `count` random 1-of-16 OTs, party 0 sending.
    fn one_of_16_ots(&mut self, count: usize) -> Result<OneOf16Share> {
        match self.fetch(&CorrelationRequest::OneOf16Ots { count })? {
            CorrelationShare::OneOf16Ots(r) => Ok(r),
            _ => Err(wrong_kind()),
        }
    }

    /// One daBit per element of `shape`.
    fn dabits(&mut self, shape: &[usize]) -> Result<DaBitShare> {
        match self.fetch(&CorrelationRequest::DaBits {
            shape: shape.to_vec(),
        })? {
            CorrelationShare::DaBits(d) => Ok(d),
            _ => Err(wrong_kind()),
        }
    }
}

fn wrong_kind() -> SharingError {
    SharingError::Correlations("source returned the wrong kind of correlation".into())
}

impl<C: Correlations + ?Sized> Correlations for Box<C> {
    fn party(&self) -> Party {
        (**self).party()
    }
    fn fetch(&mut self, req: &CorrelationRequest) -> Result<CorrelationShare> {
        (**self).fetch(req)
    }
    fn supply(&mut self, corrections: Vec<DealerMsg>) -> Result<()> {
        (**self).supply(corrections)
    }
}

// ---------------------------------------------------------------------------
// Seed expansion shared by the dealer and the parties.

/// Deterministic expansion of a party's 32-byte seed into its PRG-derived
/// shares, request by request. Tensor number `i` (counting from 0 over the
/// whole session) is the ChaCha12 stream `i` under the seed as key, so big
/// tensors can be generated in parallel chunks by seeking.
struct SeedExpander {
    party: Party,
    seed: [u8; 32],
    next_stream: u64,
}

/// The PRG-derived part of one party's correlation share.
struct Expanded {
    /// `a`, `r`, the packed bits of AND triples' `a` or of daBits.
    first: RingTensor,
    /// `b` (triples, AND triples).
    second: Option<RingTensor>,
    /// Party 0 only: the parts party 1 gets as corrections (`c0`;
    /// `(r>>f)_0, msb(r)_0`; the bitwise mask `rb0`; AND `c0`; daBit
    /// `arith_0`).
    p0_extra: Vec<RingTensor>,
}

/// Elements per independently seeked PRG chunk.
const PRG_CHUNK: usize = 1 << 15;

/// Elements `start..start + out.len()` of stream `stream` under `seed`:
/// the little-endian words of its key stream.
fn prg_range(seed: &[u8; 32], stream: u64, start: usize, out: &mut [u64]) {
    use aes::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
    let mut iv = [0u8; 16];
    iv[8..].copy_from_slice(&stream.to_le_bytes());
    let key = prg_key(seed);
    let mut cipher = PrgCipher::new((&*key).into(), &iv.into());
    cipher.seek(start as u64 * 8);
    // In pieces that stay in L1: the key stream is XORed into zeros there.
    let mut buf = [0u8; 4096];
    for piece in out.chunks_mut(buf.len() / 8) {
        let bytes = &mut buf[..piece.len() * 8];
        bytes.fill(0);
        cipher.apply_keystream(bytes);
        for (o, w) in piece.iter_mut().zip(bytes.chunks_exact(8)) {
            *o = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        }
    }
}

/// Below this much [`CorrelationRequest::work`], the dealer expands the
/// two parties' streams one after the other.
const PAR_WORK: usize = 1 << 14;

fn prg_tensor(seed: &[u8; 32], stream: u64, shape: &[usize]) -> Result<RingTensor> {
    use rayon::prelude::*;
    let n = numel(shape)?;
    let mut data = vec![0u64; n];
    let fill = |(k, chunk): (usize, &mut [u64])| prg_range(seed, stream, k * PRG_CHUNK, chunk);
    if n > PRG_CHUNK {
        data.par_chunks_mut(PRG_CHUNK).enumerate().for_each(fill);
    } else {
        data.chunks_mut(PRG_CHUNK).enumerate().for_each(fill);
    }
    RingTensor::new(data, shape.to_vec())
}

impl Drop for SeedExpander {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.seed);
    }
}

impl SeedExpander {
    fn new(party: Party, seed: [u8; 32]) -> Self {
        Self {
            party,
            seed,
            next_stream: 0,
        }
    }

    fn tensor(&mut self, shape: &[usize]) -> Result<RingTensor> {
        let t = prg_tensor(&self.seed, self.next_stream, shape)?;
        self.next_stream += 1;
        Ok(t)
    }

    /// `prg(shape) @ b` for the next stream, without holding the PRG
    /// matrix: rows are generated in cache-sized blocks and multiplied as
    /// they come. Equal to `self.tensor(shape)?.matmul(b)` (same stream).
    fn tensor_matmul(&mut self, shape: &[usize], b: &RingTensor) -> Result<RingTensor> {
        use rayon::prelude::*;
        let c_shape = RingTensor::matmul_shape(shape, b.shape())?;
        let &[m, k] = shape else {
            return self.tensor(shape)?.matmul(b);
        };
        let n = b.shape().get(1).copied().unwrap_or(1);
        let stream = self.next_stream;
        self.next_stream += 1;
        let seed = self.seed;
        let bd = b.data();
        // About 32 KiB of PRG output per block.
        let rows = (4096 / k.max(1)).max(1);
        let mut c = vec![0u64; m * n];
        c.par_chunks_mut(rows * n)
            .enumerate()
            .for_each(|(blk, out)| {
                let r0 = blk * rows;
                let nr = out.len() / n;
                let mut a = vec![0u64; nr * k];
                prg_range(&seed, stream, r0 * k, &mut a);
                for (i, row) in a.chunks_exact(k).enumerate() {
                    for j in 0..n {
                        let mut acc = 0u64;
                        for (l, &x) in row.iter().enumerate() {
                            acc = acc.wrapping_add(x.wrapping_mul(bd[l * n + j]));
                        }
                        out[i * n + j] = acc;
                    }
                }
            });
        RingTensor::new(c, c_shape)
    }

    fn expand(&mut self, req: &CorrelationRequest) -> Result<Expanded> {
        req.validate()?;
        let p0 = self.party == Party::P0;
        // Party 0 draws the parts party 1 gets from the dealer.
        let p0_extra = |exp: &mut Self, shapes: &[&[usize]]| -> Result<Vec<RingTensor>> {
            if p0 {
                shapes.iter().map(|s| exp.tensor(s)).collect()
            } else {
                Ok(Vec::new())
            }
        };
        Ok(match req {
            CorrelationRequest::ElementwiseTriple { shape } => {
                let a = self.tensor(shape)?;
                let b = self.tensor(shape)?;
                Expanded {
                    first: a,
                    second: Some(b),
                    p0_extra: p0_extra(self, &[shape])?,
                }
            }
            CorrelationRequest::MatmulTriple { a_shape, b_shape } => {
                let c_shape = RingTensor::matmul_shape(a_shape, b_shape)?;
                let a = self.tensor(a_shape)?;
                let b = self.tensor(b_shape)?;
                Expanded {
                    first: a,
                    second: Some(b),
                    p0_extra: p0_extra(self, &[&c_shape])?,
                }
            }
            CorrelationRequest::ConvTriple {
                a_shape,
                window,
                b_shape,
            } => {
                let c_shape = conv_out_shape(a_shape, window, b_shape)?;
                let a = self.tensor(a_shape)?;
                let b = self.tensor(b_shape)?;
                Expanded {
                    first: a,
                    second: Some(b),
                    p0_extra: p0_extra(self, &[&c_shape])?,
                }
            }
            CorrelationRequest::HolderMatmulTriple {
                a_shape,
                b_shape,
                a_holder,
            }
            | CorrelationRequest::HolderConvTriple {
                a_shape,
                b_shape,
                a_holder,
                ..
            } => {
                let c_shape = match req {
                    CorrelationRequest::HolderConvTriple { window, .. } => {
                        conv_out_shape(a_shape, window, b_shape)?
                    }
                    _ => RingTensor::matmul_shape(a_shape, b_shape)?,
                };
                // The holder's share of a is all of a; the other's is zero (no PRG output).
                let (a, b) = if self.party == *a_holder {
                    (self.tensor(a_shape)?, RingTensor::zeros(b_shape)?)
                } else {
                    (RingTensor::zeros(a_shape)?, self.tensor(b_shape)?)
                };
                Expanded {
                    first: a,
                    second: Some(b),
                    p0_extra: p0_extra(self, &[&c_shape])?,
                }
            }
            CorrelationRequest::Trunc { shape, .. } => {
                let r = self.tensor(shape)?;
                Expanded {
                    first: r,
                    second: None,
                    p0_extra: p0_extra(self, &[shape, shape])?,
                }
            }
            CorrelationRequest::MaskedBits { shape } => {
                let r = self.tensor(shape)?;
                Expanded {
                    first: r,
                    second: None,
                    p0_extra: p0_extra(self, &[shape])?,
                }
            }
            CorrelationRequest::AndTriples { bits } => {
                let w = [CorrelationRequest::words_for_bits(*bits)];
                let a = self.tensor(&w)?;
                let b = self.tensor(&w)?;
                Expanded {
                    first: a,
                    second: Some(b),
                    p0_extra: p0_extra(self, &[&w])?,
                }
            }
            CorrelationRequest::DaBits { shape } => {
                let w = [CorrelationRequest::words_for_bits(numel(shape)?)];
                let bits = self.tensor(&w)?;
                Expanded {
                    first: bits,
                    second: None,
                    p0_extra: p0_extra(self, &[shape])?,
                }
            }
            // The sender draws both pads, the receiver its choices (and
            // party 0 as receiver its pad, plus the pad it did not choose,
            // which the dealer hands party 1).
            CorrelationRequest::RandomOts { shape, sender } => {
                let w = [CorrelationRequest::words_for_bits(numel(shape)?)];
                if self.party == *sender {
                    if p0 {
                        Expanded {
                            first: self.tensor(shape)?,
                            second: Some(self.tensor(shape)?),
                            p0_extra: Vec::new(),
                        }
                    } else {
                        Expanded {
                            first: RingTensor::zeros(&[0])?,
                            second: None,
                            p0_extra: Vec::new(),
                        }
                    }
                } else if p0 {
                    Expanded {
                        first: self.tensor(&w)?,
                        second: Some(self.tensor(shape)?),
                        p0_extra: p0_extra(self, &[shape])?,
                    }
                } else {
                    Expanded {
                        first: self.tensor(&w)?,
                        second: None,
                        p0_extra: Vec::new(),
                    }
                }
            }
            // Each party draws its share of r and its root seeds (two words
            // each); party 0 also its share of msb(r).
            CorrelationRequest::DcfMsb { shape, .. } => {
                let n = numel(shape)?;
                let r = self.tensor(shape)?;
                let roots = self.tensor(&[2 * n])?;
                Expanded {
                    first: r,
                    second: Some(roots),
                    p0_extra: p0_extra(self, &[shape])?,
                }
            }
            // Party 0 draws pads and masks, party 1 its choices (the dealer
            // hands it the chosen pads).
            CorrelationRequest::OneOf16Ots { count } => {
                if p0 {
                    Expanded {
                        first: self.tensor(&[OneOf16Side::pad_words(*count)])?,
                        second: Some(self.tensor(&[OneOf16Side::mask_words(*count)])?),
                        p0_extra: Vec::new(),
                    }
                } else {
                    Expanded {
                        first: self.tensor(&[OneOf16Side::choice_words(*count)])?,
                        second: None,
                        p0_extra: Vec::new(),
                    }
                }
            }
        })
    }
}

/// Party 0's second PRG tensor (the dealer reads it for corrections).
fn p0_second(x: &Expanded) -> Result<&RingTensor> {
    x.second
        .as_ref()
        .ok_or_else(|| SharingError::Correlations("missing b share".into()))
}

/// One party's share of `req` from its PRG part and the rest: party 0's own
/// `p0_extra`, or party 1's corrections from the dealer.
fn assemble(
    party: Party,
    req: &CorrelationRequest,
    exp: Expanded,
    extra: Vec<RingTensor>,
) -> Result<CorrelationShare> {
    let mut extra = extra.into_iter();
    let mut next = |what: &'static str| {
        extra
            .next()
            .ok_or_else(|| SharingError::Correlations(format!("missing {what}")))
    };
    let second = |exp: Option<RingTensor>| {
        exp.ok_or_else(|| SharingError::Correlations("missing b share".into()))
    };
    Ok(match req {
        CorrelationRequest::ElementwiseTriple { .. }
        | CorrelationRequest::MatmulTriple { .. }
        | CorrelationRequest::ConvTriple { .. }
        | CorrelationRequest::HolderMatmulTriple { .. }
        | CorrelationRequest::HolderConvTriple { .. } => CorrelationShare::Triple(TripleShare {
            a: Share::new(party, exp.first),
            b: Share::new(party, second(exp.second)?),
            c: Share::new(party, next("c share")?),
        }),
        CorrelationRequest::Trunc { .. } => CorrelationShare::Trunc(TruncShare {
            r: Share::new(party, exp.first),
            r_shift: Share::new(party, next("r>>f share")?),
            r_msb: Share::new(party, next("msb(r) share")?),
        }),
        CorrelationRequest::MaskedBits { .. } => CorrelationShare::MaskedBits(MaskedBitsShare {
            r: Share::new(party, exp.first),
            r_bits: next("bitwise mask share")?,
        }),
        CorrelationRequest::AndTriples { bits } => CorrelationShare::AndTriples(AndTripleShare {
            party,
            bits: *bits,
            a: exp.first.into_parts().0,
            b: second(exp.second)?.into_parts().0,
            c: next("c share")?.into_parts().0,
        }),
        CorrelationRequest::DaBits { .. } => CorrelationShare::DaBits(DaBitShare {
            bits: exp.first.into_parts().0,
            arith: Share::new(party, next("arithmetic bit share")?),
        }),
        CorrelationRequest::RandomOts { shape, sender } => {
            let n = numel(shape)?;
            let side = match (party, sender) {
                (Party::P0, Party::P0) => OtSide::Sender {
                    k0: exp.first.into_parts().0,
                    k1: second(exp.second)?.into_parts().0,
                },
                (Party::P0, Party::P1) => OtSide::Receiver {
                    choices: exp.first.into_parts().0,
                    pads: second(exp.second)?.into_parts().0,
                },
                (Party::P1, Party::P0) => OtSide::Receiver {
                    choices: exp.first.into_parts().0,
                    pads: next("receiver pads")?.into_parts().0,
                },
                (Party::P1, Party::P1) => OtSide::Sender {
                    k0: next("sender pads")?.into_parts().0,
                    k1: next("sender pads")?.into_parts().0,
                },
            };
            CorrelationShare::RandomOts(RandomOtShare { party, n, side })
        }
        CorrelationRequest::OneOf16Ots { count } => {
            let side = match party {
                Party::P0 => OneOf16Side::Sender {
                    pads: exp.first.into_parts().0,
                    masks: second(exp.second)?.into_parts().0,
                },
                Party::P1 => OneOf16Side::Receiver {
                    choices: exp.first.into_parts().0,
                    got: next("chosen pads")?.into_parts().0,
                },
            };
            CorrelationShare::OneOf16Ots(OneOf16Share {
                party,
                count: *count,
                side,
            })
        }
        CorrelationRequest::DcfMsb { shape, bits } => {
            let n = numel(shape)?;
            let r_msb = Share::new(party, next("msb(r) share")?);
            let cws = match party {
                Party::P0 => None,
                Party::P1 => Some(super::dcf::Cws::new(
                    *bits,
                    n,
                    next("correction words")?.into_parts().0,
                )?),
            };
            CorrelationShare::Dcf(DcfShare {
                r: Share::new(party, exp.first),
                r_msb,
                roots: words_to_seeds(second(exp.second)?.data()),
                cws,
            })
        }
    })
}

/// Root seeds from pairs of PRG words (low word first).
fn words_to_seeds(w: &[u64]) -> Vec<u128> {
    w.chunks_exact(2)
        .map(|p| u128::from(p[0]) | (u128::from(p[1]) << 64))
        .collect()
}

// ---------------------------------------------------------------------------
// The dealer.

/// The 32-byte seed the dealer sends to one computing party.
#[derive(Clone, Serialize, Deserialize)]
pub struct SeedMsg {
    pub party: Party,
    pub seed: [u8; 32],
}

impl Drop for SeedMsg {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.seed);
    }
}

impl std::fmt::Debug for SeedMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedMsg")
            .field("party", &self.party)
            .finish_non_exhaustive()
    }
}

/// Corrections the dealer sends to party 1 for one request (party 0 gets
/// nothing beyond its seed): `c1` for a triple; `(r>>f)_1, msb(r)_1` for a
/// truncation triple; the XOR share of `r`'s bits (one word per element)
/// for masked bits; `c1` (packed words) for AND triples; the additive share
/// of the bits for daBits.
#[derive(Clone, Serialize, Deserialize)]
pub struct DealerMsg {
    pub request: CorrelationRequest,
    pub tensors: Vec<RingTensor>,
}

impl std::fmt::Debug for DealerMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DealerMsg")
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

impl DealerMsg {
    /// Payload size (8 bytes per ring element).
    pub fn payload_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.len() as u64 * 8).sum()
    }
}

/// A trusted dealer that knows both parties' seeds and mirrors their PRG
/// expansion to compute party 1's corrections.
pub struct Dealer {
    seeds: [[u8; 32]; 2],
    exp: [SeedExpander; 2],
    bytes_sent: u64,
}

impl Drop for Dealer {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.seeds);
    }
}

impl std::fmt::Debug for Dealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dealer")
            .field("bytes_sent", &self.bytes_sent)
            .finish_non_exhaustive()
    }
}

impl Dealer {
    /// A dealer with seeds from the operating system's CSPRNG.
    pub fn new() -> Result<Self> {
        let mut rng = super::share::os_rng()?;
        Ok(Self::from_rng(&mut rng))
    }

    /// A deterministic dealer, for tests and benchmarks only.
    pub fn new_with_fixed_seed_for_tests(seed: u64) -> Self {
        Self::from_rng(&mut ChaCha20Rng::seed_from_u64(seed))
    }

    fn from_rng(rng: &mut ChaCha20Rng) -> Self {
        let mut s0 = [0u8; 32];
        let mut s1 = [0u8; 32];
        rng.fill_bytes(&mut s0);
        rng.fill_bytes(&mut s1);
        Self {
            seeds: [s0, s1],
            exp: [
                SeedExpander::new(Party::P0, s0),
                SeedExpander::new(Party::P1, s1),
            ],
            bytes_sent: 0,
        }
    }

    /// The seed message for `party` (32 bytes, counted once per call).
    pub fn seed_msg(&mut self, party: Party) -> SeedMsg {
        self.bytes_sent += 32;
        SeedMsg {
            party,
            seed: self.seeds[party.index()],
        }
    }

    /// Party 1's corrections for the next request (in protocol order).
    pub fn correction(&mut self, req: &CorrelationRequest) -> Result<DealerMsg> {
        match req {
            CorrelationRequest::HolderMatmulTriple {
                a_shape,
                b_shape,
                a_holder,
            } => return self.holder_correction(req, a_shape, None, b_shape, *a_holder),
            CorrelationRequest::HolderConvTriple {
                a_shape,
                window,
                b_shape,
                a_holder,
            } => return self.holder_correction(req, a_shape, Some(window), b_shape, *a_holder),
            _ => {}
        }
        let [e0, e1] = &mut self.exp;
        // Both parties' expansions at once, unless the request is small:
        // then handing one to another thread costs more than it saves (a
        // service's batch-1 sessions are many such requests).
        let (x0, x1) = if req.work() < PAR_WORK {
            (e0.expand(req), e1.expand(req))
        } else {
            rayon::join(|| e0.expand(req), || e1.expand(req))
        };
        let (x0, x1) = (x0?, x1?);
        let extra0 = |i: usize| {
            x0.p0_extra
                .get(i)
                .ok_or_else(|| SharingError::Correlations("missing party 0 share".into()))
        };
        let seconds = || match (&x0.second, &x1.second) {
            (Some(b0), Some(b1)) => Ok((b0, b1)),
            _ => Err(SharingError::Correlations("missing b share".into())),
        };
        let tensors = match req {
            CorrelationRequest::ElementwiseTriple { .. }
            | CorrelationRequest::MatmulTriple { .. }
            | CorrelationRequest::ConvTriple { .. }
            | CorrelationRequest::HolderMatmulTriple { .. }
            | CorrelationRequest::HolderConvTriple { .. } => {
                // (Input-holder triples take `holder_correction`.)
                let (b0, b1) = seconds()?;
                let a = x0.first.add(&x1.first)?;
                let b = b0.add(b1)?;
                let c = match req {
                    CorrelationRequest::ElementwiseTriple { .. } => a.mul(&b)?,
                    CorrelationRequest::ConvTriple { window, .. } => conv_product(&a, window, &b)?,
                    _ => a.matmul(&b)?,
                };
                vec![c.sub(extra0(0)?)?]
            }
            CorrelationRequest::Trunc { frac_bits, .. } => {
                let f = *frac_bits;
                let r = x0.first.add(&x1.first)?;
                let rs = r.map(|v| v >> f);
                let msb = r.map(|v| v >> 63);
                vec![rs.sub(extra0(0)?)?, msb.sub(extra0(1)?)?]
            }
            CorrelationRequest::MaskedBits { .. } => {
                // r = r0 + r1 (additive); party 1's bitwise share is r ^ rb0.
                let r = x0.first.add(&x1.first)?;
                vec![r.zip_with(extra0(0)?, "mask bits", |r, b0| r ^ b0)?]
            }
            CorrelationRequest::AndTriples { .. } => {
                let (b0, b1) = seconds()?;
                let a = x0.first.zip_with(&x1.first, "and a", |u, v| u ^ v)?;
                let b = b0.zip_with(b1, "and b", |u, v| u ^ v)?;
                let c = a.zip_with(&b, "and c", |u, v| u & v)?;
                vec![c.zip_with(extra0(0)?, "and c1", |c, c0| c ^ c0)?]
            }
            CorrelationRequest::DaBits { shape } => {
                let s = x0.first.zip_with(&x1.first, "dabit", |u, v| u ^ v)?;
                let n = numel(shape)?;
                let sw = s.data();
                let a0 = extra0(0)?.data();
                let data: Vec<u64> = (0..n)
                    .map(|i| ((sw[i / 64] >> (i % 64)) & 1).wrapping_sub(a0[i]))
                    .collect();
                vec![RingTensor::new(data, shape.clone())?]
            }
            CorrelationRequest::RandomOts { shape, sender } => {
                let n = numel(shape)?;
                let bit = |w: &[u64], j: usize| (w[j / 64] >> (j % 64)) & 1 == 1;
                match sender {
                    // Party 1 receives k_c of party 0's pads.
                    Party::P0 => {
                        let (k0, k1) = (x0.first.data(), p0_second(&x0)?.data());
                        let c = x1.first.data();
                        let pads = (0..n)
                            .map(|j| if bit(c, j) { k1[j] } else { k0[j] })
                            .collect();
                        vec![RingTensor::new(pads, shape.clone())?]
                    }
                    // Party 1 sends: party 0's pad where party 0 chose,
                    // the other drawn for it.
                    Party::P1 => {
                        let (c, pad, other) =
                            (x0.first.data(), p0_second(&x0)?.data(), extra0(0)?.data());
                        let pick = |want: bool| -> Vec<u64> {
                            (0..n)
                                .map(|j| if bit(c, j) == want { pad[j] } else { other[j] })
                                .collect()
                        };
                        vec![
                            RingTensor::new(pick(false), shape.clone())?,
                            RingTensor::new(pick(true), shape.clone())?,
                        ]
                    }
                }
            }
            CorrelationRequest::DcfMsb { shape, bits } => {
                // α = r mod 2^bits and β = 1 − 2·r_bits, so that r_bits plus
                // the DCF's output is r_bits ⊕ [c' < α] (see `compare`).
                let r = x0.first.add(&x1.first)?;
                let low = (1u64 << bits) - 1;
                let alpha: Vec<u64> = r.data().iter().map(|v| v & low).collect();
                let msb = r.map(|v| (v >> bits) & 1);
                let beta: Vec<u64> = msb
                    .data()
                    .iter()
                    .map(|b| 1u64.wrapping_sub(2 * b))
                    .collect();
                let (k0, k1) = seconds()?;
                let roots = [words_to_seeds(k0.data()), words_to_seeds(k1.data())];
                let prg = super::dcf::Prg::new();
                let mut cws = super::dcf::gen(&prg, *bits, &alpha, &beta, [&roots[0], &roots[1]])?;
                let words = std::mem::take(&mut cws.words);
                let len = words.len();
                debug_assert_eq!(
                    Some(len),
                    numel(shape)?.checked_mul(super::dcf::cw_words(*bits))
                );
                vec![msb.sub(extra0(0)?)?, RingTensor::new(words, vec![len])?]
            }
            CorrelationRequest::OneOf16Ots { count } => {
                let (pads, c) = (x0.first.data(), x1.first.data());
                let mut got = vec![0u64; OneOf16Side::mask_words(*count)];
                for i in 0..*count {
                    let ci = (c[i / 16] >> (4 * (i % 16))) & 15;
                    let pad = (pads[i / 2] >> (32 * (i % 2) + 2 * ci as usize)) & 3;
                    got[i / 32] |= pad << (2 * (i % 32));
                }
                let w = got.len();
                vec![RingTensor::new(got, vec![w])?]
            }
        };
        let msg = DealerMsg {
            request: req.clone(),
            tensors,
        };
        self.bytes_sent += msg.payload_bytes();
        Ok(msg)
    }

    /// The input-holder triple's correction, `a @ b − c0`, with `a` never
    /// held whole (see [`SeedExpander::tensor_matmul`]), or with a
    /// `window` the convolution triple's `a ⊛ b − c0` ([`conv_product`]:
    /// `a` is the input's size, not the patches'). Draws the same streams,
    /// in the same order, as each party's own expansion.
    fn holder_correction(
        &mut self,
        req: &CorrelationRequest,
        a_shape: &[usize],
        window: Option<&plan::Window>,
        b_shape: &[usize],
        a_holder: Party,
    ) -> Result<DealerMsg> {
        req.validate()?;
        let c_shape = match window {
            Some(window) => conv_out_shape(a_shape, window, b_shape)?,
            None => RingTensor::matmul_shape(a_shape, b_shape)?,
        };
        let [e0, e1] = &mut self.exp;
        let (holder, other) = match a_holder {
            Party::P0 => (e0, e1),
            Party::P1 => (e1, e0),
        };
        // Each party draws its own operand first, then party 0 its c0.
        let b = other.tensor(b_shape)?;
        let c = match window {
            Some(window) => conv_product(&holder.tensor(a_shape)?, window, &b)?,
            None => holder.tensor_matmul(a_shape, &b)?,
        };
        let c0 = match a_holder {
            Party::P0 => holder.tensor(&c_shape)?,
            Party::P1 => other.tensor(&c_shape)?,
        };
        let msg = DealerMsg {
            request: req.clone(),
            tensors: vec![c.sub(&c0)?],
        };
        self.bytes_sent += msg.payload_bytes();
        Ok(msg)
    }

    /// Corrections for a whole list of requests.
    pub fn corrections(&mut self, reqs: &[CorrelationRequest]) -> Result<Vec<DealerMsg>> {
        reqs.iter().map(|r| self.correction(r)).collect()
    }

    /// Total bytes sent to the parties so far (seeds + corrections).
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }
}

enum Feed {
    /// Party 0 needs nothing beyond its seed.
    None,
    /// Corrections received ahead of time.
    Queue(VecDeque<DealerMsg>),
    /// In-process dealer asked on demand (tests, benches, drivers).
    Online(Arc<Mutex<Dealer>>),
}

/// A computing party's view of the seed-expanding dealer.
pub struct DealerSource {
    party: Party,
    exp: SeedExpander,
    feed: Feed,
}

impl std::fmt::Debug for DealerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DealerSource")
            .field("party", &self.party)
            .finish_non_exhaustive()
    }
}

impl DealerSource {
    /// Party 0's source: only its seed.
    pub fn party0(seed: SeedMsg) -> Result<Self> {
        if seed.party != Party::P0 {
            return Err(SharingError::PartyMismatch("seed is not for party 0"));
        }
        Ok(Self {
            party: Party::P0,
            exp: SeedExpander::new(Party::P0, seed.seed),
            feed: Feed::None,
        })
    }

    /// Party 1's source with corrections received ahead of time (more can be
    /// added with [`DealerSource::push_corrections`]).
    pub fn party1(seed: SeedMsg, corrections: Vec<DealerMsg>) -> Result<Self> {
        if seed.party != Party::P1 {
            return Err(SharingError::PartyMismatch("seed is not for party 1"));
        }
        Ok(Self {
            party: Party::P1,
            exp: SeedExpander::new(Party::P1, seed.seed),
            feed: Feed::Queue(corrections.into()),
        })
    }

    /// Appends corrections (party 1, queue mode).
    pub fn push_corrections(&mut self, msgs: Vec<DealerMsg>) -> Result<()> {
        match &mut self.feed {
            Feed::Queue(q) => {
                q.extend(msgs);
                Ok(())
            }
            _ => Err(SharingError::Correlations(
                "this source does not take queued corrections".into(),
            )),
        }
    }

    /// Both parties' sources backed by one in-process dealer asked on
    /// demand. Returns the dealer so its byte count can be read.
    pub fn online_pair(dealer: Dealer) -> (DealerSource, DealerSource, Arc<Mutex<Dealer>>) {
        let dealer = Arc::new(Mutex::new(dealer));
        let (s0, s1) = {
            let mut d = dealer.lock().unwrap_or_else(|e| e.into_inner());
            (d.seed_msg(Party::P0), d.seed_msg(Party::P1))
        };
        let p0 = DealerSource {
            party: Party::P0,
            exp: SeedExpander::new(Party::P0, s0.seed),
            feed: Feed::None,
        };
        let p1 = DealerSource {
            party: Party::P1,
            exp: SeedExpander::new(Party::P1, s1.seed),
            feed: Feed::Online(dealer.clone()),
        };
        (p0, p1, dealer)
    }
}

impl Correlations for DealerSource {
    fn party(&self) -> Party {
        self.party
    }

    fn supply(&mut self, corrections: Vec<DealerMsg>) -> Result<()> {
        self.push_corrections(corrections)
    }

    fn fetch(&mut self, req: &CorrelationRequest) -> Result<CorrelationShare> {
        let mut exp = self.exp.expand(req)?;
        let extra = match &mut self.feed {
            Feed::None => std::mem::take(&mut exp.p0_extra),
            Feed::Queue(q) => {
                let msg = q.pop_front().ok_or_else(|| {
                    SharingError::Correlations("no dealer corrections left".into())
                })?;
                check_msg(req, &msg)?;
                msg.tensors
            }
            Feed::Online(d) => {
                let msg = d
                    .lock()
                    .map_err(|_| SharingError::Correlations("dealer lock poisoned".into()))?
                    .correction(req)?;
                msg.tensors
            }
        };
        assemble(self.party, req, exp, extra)
    }
}

/// A dealer's correction is for this request, with tensors of its shapes.
fn check_msg(req: &CorrelationRequest, msg: &DealerMsg) -> Result<()> {
    if &msg.request != req {
        return Err(SharingError::Correlations(
            "dealer correction is for a different request (out of order?)".into(),
        ));
    }
    let shapes = req.correction_shapes()?;
    if msg.tensors.len() != shapes.len() {
        return Err(SharingError::Correlations(
            "dealer correction has the wrong number of tensors".into(),
        ));
    }
    for (t, s) in msg.tensors.iter().zip(shapes.iter()) {
        t.validate()?;
        if t.shape() != s.as_slice() {
            return Err(SharingError::ShapeMismatch {
                op: "dealer correction",
                left: t.shape().to_vec(),
                right: s.clone(),
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Precomputed store and request recording.

/// A queue of materialised correlation shares, consumed in order. This is
/// the plug-in point for other offline phases (e.g. Paillier-based
/// generation): fill it with [`PrecomputedCorrelations::push`].
#[derive(Debug)]
pub struct PrecomputedCorrelations {
    party: Party,
    queue: VecDeque<(CorrelationRequest, CorrelationShare)>,
}

impl PrecomputedCorrelations {
    pub fn new(party: Party) -> Self {
        Self {
            party,
            queue: VecDeque::new(),
        }
    }

    /// Adds one correlation (must be for this party).
    pub fn push(&mut self, req: CorrelationRequest, share: CorrelationShare) -> Result<()> {
        if share.party() != self.party {
            return Err(SharingError::PartyMismatch(
                "correlation for the other party",
            ));
        }
        self.queue.push_back((req, share));
        Ok(())
    }

    /// Runs `source` over `reqs` ahead of time (a dealer source must be
    /// asked in the protocol's order, e.g. by replaying a
    /// [`RecordingCorrelations`] log).
    pub fn precompute<C: Correlations + ?Sized>(
        source: &mut C,
        reqs: &[CorrelationRequest],
    ) -> Result<Self> {
        let mut out = Self::new(source.party());
        for r in reqs {
            let s = source.fetch(r)?;
            out.push(r.clone(), s)?;
        }
        Ok(out)
    }

    pub fn remaining(&self) -> usize {
        self.queue.len()
    }
}

impl Correlations for PrecomputedCorrelations {
    fn party(&self) -> Party {
        self.party
    }
    fn fetch(&mut self, req: &CorrelationRequest) -> Result<CorrelationShare> {
        let (r, s) = self.queue.pop_front().ok_or_else(|| {
            SharingError::Correlations("precomputed correlations exhausted".into())
        })?;
        if &r != req {
            return Err(SharingError::Correlations(
                "precomputed correlation is for a different request".into(),
            ));
        }
        Ok(s)
    }
}

/// Wraps a source and records every request, in order.
#[derive(Debug)]
pub struct RecordingCorrelations<C> {
    pub inner: C,
    pub log: Vec<CorrelationRequest>,
}

impl<C> RecordingCorrelations<C> {
    pub fn new(inner: C) -> Self {
        Self {
            inner,
            log: Vec::new(),
        }
    }
}

impl<C: Correlations> Correlations for RecordingCorrelations<C> {
    fn party(&self) -> Party {
        self.inner.party()
    }
    fn fetch(&mut self, req: &CorrelationRequest) -> Result<CorrelationShare> {
        self.log.push(req.clone());
        self.inner.fetch(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_prg_equals_one_sequential_stream() {
        use aes::cipher::{KeyIvInit, StreamCipher};
        let seed = [7u8; 32];
        let n = 2 * PRG_CHUNK + 5;
        let t = prg_tensor(&seed, 3, &[n]).unwrap();
        let mut iv = [0u8; 16];
        iv[8] = 3;
        let mut bytes = vec![0u8; n * 8];
        PrgCipher::new((&*prg_key(&seed)).into(), &iv.into()).apply_keystream(&mut bytes);
        let seq: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
            .collect();
        assert_eq!(t.data(), seq.as_slice());
        // Entered in the middle of a block's worth of pieces.
        let mut mid = vec![0u64; 700];
        prg_range(&seed, 3, 511, &mut mid);
        assert_eq!(mid, &seq[511..1211]);
        let other = prg_tensor(&seed, 4, &[8]).unwrap();
        assert_ne!(&t.data()[..8], other.data());
    }

    #[test]
    fn prg_is_aes_128_ctr_under_the_folded_seed() {
        use aes::cipher::{BlockEncrypt, KeyInit};
        // The seed's halves fold to the FIPS-197 C.1 key 000102..0f, and
        // AES-128 under it is the standard cipher (its known answer).
        let mut seed = [0u8; 32];
        for i in 0..16 {
            seed[i] = i as u8 ^ 0x5a;
            seed[16 + i] = 0x5a;
        }
        let key = prg_key(&seed);
        assert_eq!(*key, std::array::from_fn(|i| i as u8));
        let aes = aes::Aes128::new((&*key).into());
        let mut block = std::array::from_fn::<u8, 16, _>(|i| (i as u8) * 0x11).into();
        aes.encrypt_block(&mut block);
        assert_eq!(
            block.as_slice(),
            [
                0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
                0xc5, 0x5a
            ]
        );
        // Elements 6 and 7 of stream 5 are block 3: the counter block is
        // (3 little-endian, then 5 little-endian).
        let mut out = [0u64; 2];
        prg_range(&seed, 5, 6, &mut out);
        let mut block = [0u8; 16];
        block[0] = 3;
        block[8] = 5;
        let mut block = block.into();
        aes.encrypt_block(&mut block);
        let want = [
            u64::from_le_bytes(block[..8].try_into().unwrap()),
            u64::from_le_bytes(block[8..].try_into().unwrap()),
        ];
        assert_eq!(out, want);
    }

    #[test]
    fn fused_prg_matmul_equals_expanding_then_multiplying() {
        for (a_shape, b_shape) in [
            (vec![3000, 7], vec![7, 1]),
            (vec![1000, 100], vec![100, 3]),
            (vec![5, 4097], vec![4097]),
            (vec![9], vec![9]),
        ] {
            let b = prg_tensor(&[3; 32], 0, &b_shape).unwrap();
            let mut fused = SeedExpander::new(Party::P0, [9; 32]);
            let mut plain = SeedExpander::new(Party::P0, [9; 32]);
            let got = fused.tensor_matmul(&a_shape, &b).unwrap();
            let want = plain.tensor(&a_shape).unwrap().matmul(&b).unwrap();
            assert_eq!(got.shape(), want.shape());
            assert_eq!(got.data(), want.data(), "{a_shape:?} @ {b_shape:?}");
            // Both drew exactly one stream.
            assert_eq!(fused.next_stream, plain.next_stream);
        }
    }
}
