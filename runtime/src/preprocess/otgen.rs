//! Correlated randomness without a dealer, from oblivious transfer: the
//! same correlations as [`super::twoparty`] (Beaver triples, matrix triples,
//! AND triples, daBits, masked bits), built from SoftSpoken correlated OTs
//! (the `ot` crate, [`softspoken`], 32 bits per COT on the wire) instead of
//! Paillier.
//!
//! Party 1 is the OT-extension receiver and party 0 the sender (it holds
//! `Δ`). Party 1's random choice bits *are* its halves of the correlations,
//! so every COT is a random one and the extension runs in one direction:
//!
//! * **elementwise triple**: 128 COTs per element, Gilboa products for the
//!   cross terms `a0·b1` and `b0·a1` ([`ot::arith::beaver_sender`]).
//! * **matrix triple** `C = A·B` (`m×k`, `k×n`): the cross term `A0·B1` is
//!   `k·n` vector products (party 1's `B1[l][j]`, 64 COTs, times party 0's
//!   column `A0[:, l]`), `A1·B0` is `m·k` vector products (party 1's
//!   `A1[i][l]` times party 0's row `B0[l, :]`), [`ot::arith::send_vectors`].
//! * **AND triples**: two random OTs each, no message beyond the extension
//!   ([`ot::boolean`]).
//! * **daBits**: `s = s0 ⊕ s1 = s0 + s1 − 2·s0·s1`; the product is one COT
//!   with party 1's bit as the choice and party 0's as the value.
//! * **masked bits**: `r = x0 ⊕ x1` with `2·(x0 ∧ x1) = Σ_{i<63} 2^{i+1}
//!   x0_i x1_i`: 63 COTs per element, bit `i` needing `63 − i` bits of
//!   correction.
//! * **random OTs** (the comparisons' multiplexer, `sharing::compare`):
//!   one COT each, no correction; the pads are the low 64 bits of the tccr
//!   hash ([`ot::ot`]). Those with party 0 sending come from the extension
//!   above. Those with party 1 sending need the extension the other way:
//!   a second SoftSpoken instance with party 0 as receiver, only when the order
//!   has such OTs. Its 128 base OTs are the first 128 forward random OTs
//!   of piece 0 (no public-key work, no extra message:
//!   [`softspoken::Receiver::from_random_ots`]), and party 0 appends its
//!   extension message to each piece's corrections.
//! * **random 1-of-16 OTs** (the millionaires' comparison's leaves,
//!   `sharing::millionaire`): 4 COTs each, no correction; party 0's 16
//!   2-bit pads are fields of its 4 random-OT pads
//!   ([`ot::one_of_n::random_send_short`]), party 1's choice its 4 choice
//!   bits.
//!   Party 0 draws each OT's 2-bit mask here.
//!
//! The work is cut into *pieces* of at most [`PIECE_COTS`] COTs and
//! [`PIECE_BITS`] bits of corrections, so memory stays bounded whatever
//! the batch: per piece party 1 sends an extension message and party 0
//! answers with the corrections. Both sides derive the same pieces from the
//! request order, so no sizes travel on the wire; every size is checked.
//!
//! Security (semi-honest; `ot/SECURITY.md`): party 0 sees only the
//! extension messages, which hide party 1's choice bits (SoftSpoken: each
//! piece's `u ⊕ r` is masked by the expansion of the seed party 0 lacks; base OTs
//! under CDH in Ristretto255); party 1 sees corrections masked by the
//! correlation-robust hash of pads it cannot compute (tccr from fixed-key
//! AES). Neither sees the other's halves. No mask with statistical slack is
//! needed: every value is hidden perfectly by a pad, up to the hash.
//!
//! Sans I/O: [`OtParty0`] and [`OtParty1`] are state machines; the
//! executor (`exec::dealerfree`) carries their messages.

use crate::exec::ExecError;
use crate::sharing::{
    AndTripleShare, CorrelationRequest as Request, CorrelationShare, DaBitShare, MaskedBitsShare,
    OneOf16Share, OneOf16Side, OtSide, Party, PrecomputedCorrelations, RandomOtShare, RingTensor,
    Share, TripleShare,
};
use ot::arith::{self, Corrections, Packed, BITS_PER_PRODUCT};
use ot::cot::{ReceiverCotsRef, SenderCotsRef};
use ot::softspoken::{self, ExtendMsg, ReceiverCots, SenderCots};
use ot::{base, boolean, one_of_n};
use rand::{CryptoRng, RngExt};
use zeroize::Zeroize;

/// Most COTs per piece ([`plan::params::OT_PIECE_COTS`]).
pub const PIECE_COTS: usize = plan::params::OT_PIECE_COTS;
/// Most bits of corrections per piece ([`plan::params::OT_PIECE_BITS`]).
pub const PIECE_BITS: u64 = plan::params::OT_PIECE_BITS;

/// COTs per random 1-of-16 OT.
const LEAF_COTS: usize = 4;

/// Bits of correction per masked-bits element: `Σ_{i<63} (63 − i)`.
const MASKED_BITS_PER_ELEMENT: u64 = 63 * 64 / 2;

fn ot_error(e: ot::Error) -> ExecError {
    ExecError::protocol(format!("oblivious transfer with the peer: {e}")).with_source(e)
}

/// A run of items of one job, in one piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    /// Elementwise triples `start .. start + len`.
    Triples {
        job: usize,
        start: usize,
        len: usize,
    },
    /// AND triples `start .. start + len` (multiples of 64).
    And {
        job: usize,
        start: usize,
        len: usize,
    },
    /// daBits `start .. start + len`.
    DaBits {
        job: usize,
        start: usize,
        len: usize,
    },
    /// Masked-bits elements `start .. start + len`.
    Masked {
        job: usize,
        start: usize,
        len: usize,
    },
    /// Products `p = l·n + j` of the cross term `A0·B1`.
    MatLeft {
        job: usize,
        start: usize,
        len: usize,
    },
    /// Products `p = i·k + l` of the cross term `A1·B0`.
    MatRight {
        job: usize,
        start: usize,
        len: usize,
    },
    /// The 128 forward random OTs that set up the reverse extension (the
    /// first unit, when there is one).
    Boot,
    /// Random 1-of-16 OTs `start .. start + len` (`start` a multiple of
    /// 32), party 0 sending.
    Leaf16 {
        job: usize,
        start: usize,
        len: usize,
    },
    /// Random OTs `start .. start + len` (`start` a multiple of 64), party
    /// 0 sending (forward COTs) or party 1 sending (reverse COTs).
    Rot {
        job: usize,
        start: usize,
        len: usize,
        reverse: bool,
    },
}

impl Unit {
    fn range(&self) -> (usize, usize, usize) {
        match *self {
            Unit::Triples { job, start, len }
            | Unit::And { job, start, len }
            | Unit::DaBits { job, start, len }
            | Unit::Masked { job, start, len }
            | Unit::MatLeft { job, start, len }
            | Unit::MatRight { job, start, len }
            | Unit::Leaf16 { job, start, len }
            | Unit::Rot {
                job, start, len, ..
            } => (job, start, len),
            // No job: never looked up (handled before the jobs).
            Unit::Boot => (usize::MAX, 0, softspoken::KAPPA),
        }
    }

    /// COTs of the reverse extension (party 0 receiving) it consumes.
    fn rev_cots(&self) -> usize {
        match *self {
            Unit::Rot {
                len, reverse: true, ..
            } => len,
            _ => 0,
        }
    }

    /// COTs of the forward extension (party 1 receiving) it consumes.
    fn fwd_cots(&self) -> usize {
        self.cots() - self.rev_cots()
    }

    /// COTs this unit consumes.
    fn cots(&self) -> usize {
        let (_, _, len) = self.range();
        len * match self {
            Unit::Triples { .. } => 128,
            Unit::And { .. } => 2,
            Unit::DaBits { .. } => 1,
            Unit::Masked { .. } => 63,
            Unit::MatLeft { .. } | Unit::MatRight { .. } => 64,
            Unit::Leaf16 { .. } => LEAF_COTS,
            Unit::Rot { .. } | Unit::Boot => 1,
        }
    }

    /// Whether party 0 sends corrections for it.
    fn corrected(&self) -> bool {
        !matches!(
            self,
            Unit::And { .. } | Unit::Rot { .. } | Unit::Leaf16 { .. } | Unit::Boot
        )
    }
}

/// Dimensions of one request, as the units see it.
#[derive(Clone, Copy, Debug)]
enum Size {
    Triples(usize),
    And(usize),
    DaBits(usize),
    Masked(usize),
    Matmul { m: usize, k: usize, n: usize },
    Rot { n: usize, reverse: bool },
    Leaf16(usize),
}

fn size_of(req: &Request) -> Result<Size, ExecError> {
    let numel = |s: &[usize]| crate::sharing::ring::numel(s).map_err(ExecError::from);
    Ok(match req {
        Request::ElementwiseTriple { shape } => Size::Triples(numel(shape)?),
        Request::MatmulTriple { a_shape, b_shape } => {
            RingTensor::matmul_shape(a_shape, b_shape)?;
            let (m, k) = match a_shape.as_slice() {
                [m, k] => (*m, *k),
                [k] => (1, *k),
                _ => return Err(ExecError::protocol("unsupported matrix triple shape")),
            };
            let n = match b_shape.as_slice() {
                [_, n] => *n,
                _ => 1,
            };
            Size::Matmul { m, k, n }
        }
        Request::AndTriples { bits } => Size::And(64 * Request::words_for_bits(*bits)),
        Request::DaBits { shape } => Size::DaBits(numel(shape)?),
        Request::MaskedBits { shape } => Size::Masked(numel(shape)?),
        Request::RandomOts { shape, sender } => Size::Rot {
            n: numel(shape)?,
            reverse: *sender == Party::P1,
        },
        Request::OneOf16Ots { count } => Size::Leaf16(*count),
        Request::Trunc { .. }
        | Request::HolderMatmulTriple { .. }
        | Request::HolderConvTriple { .. }
        | Request::DcfMsb { .. } => {
            return Err(ExecError::protocol(
                "truncation pairs, input-holder correlations and DCF keys need a dealer",
            ))
        }
        Request::ConvTriple { .. } => {
            return Err(ExecError::protocol(
                "convolution triples need a dealer; without one the compiler lowers a \
                 convolution to products of its patches (recompile the plan without a dealer)",
            ))
        }
    })
}

/// Cuts `total` items of `cots` COTs and `bits` correction bits each into
/// runs that fit a piece (at least one item per run; `align` items at a
/// time).
fn runs(total: usize, cots: usize, bits: u64, align: usize) -> Vec<(usize, usize)> {
    let by_cots = PIECE_COTS / cots.max(1);
    let by_bits = PIECE_BITS
        .checked_div(bits)
        .map_or(usize::MAX, |v| v as usize);
    let per = (by_cots.min(by_bits) / align * align).max(align);
    (0..total)
        .step_by(per)
        .map(|s| (s, per.min(total - s)))
        .collect()
}

/// The units of every request, in order, and the pieces (ranges of units).
fn plan_units(sizes: &[Size]) -> (Vec<Unit>, Vec<std::ops::Range<usize>>) {
    let mut units = Vec::new();
    for (job, size) in sizes.iter().enumerate() {
        let p = BITS_PER_PRODUCT as u64;
        match *size {
            Size::Triples(n) => units.extend(
                runs(n, 128, 2 * p, 1)
                    .into_iter()
                    .map(|(start, len)| Unit::Triples { job, start, len }),
            ),
            Size::And(n) => {
                units.extend(runs(n, 2, 0, 64).into_iter().map(|(start, len)| Unit::And {
                    job,
                    start,
                    len,
                }))
            }
            Size::DaBits(n) => units.extend(
                runs(n, 1, 64, 1)
                    .into_iter()
                    .map(|(start, len)| Unit::DaBits { job, start, len }),
            ),
            Size::Masked(n) => units.extend(
                runs(n, 63, MASKED_BITS_PER_ELEMENT, 1)
                    .into_iter()
                    .map(|(start, len)| Unit::Masked { job, start, len }),
            ),
            Size::Rot { n, reverse } => {
                units.extend(runs(n, 1, 0, 64).into_iter().map(|(start, len)| Unit::Rot {
                    job,
                    start,
                    len,
                    reverse,
                }))
            }
            Size::Leaf16(n) => units.extend(
                runs(n, LEAF_COTS, 0, 32)
                    .into_iter()
                    .map(|(start, len)| Unit::Leaf16 { job, start, len }),
            ),
            Size::Matmul { m, k, n } => {
                units.extend(
                    runs(k * n, 64, p * m as u64, 1)
                        .into_iter()
                        .map(|(start, len)| Unit::MatLeft { job, start, len }),
                );
                units.extend(
                    runs(m * k, 64, p * n as u64, 1)
                        .into_iter()
                        .map(|(start, len)| Unit::MatRight { job, start, len }),
                );
            }
        }
    }
    if units.iter().any(|u| u.rev_cots() > 0) {
        units.insert(0, Unit::Boot);
    }
    let mut pieces = Vec::new();
    let (mut start, mut cots, mut bits) = (0, 0usize, 0u64);
    for (i, u) in units.iter().enumerate() {
        let (c, b) = (u.cots(), unit_bits(u, sizes));
        if i > start && (cots + c > PIECE_COTS || bits + b > PIECE_BITS) {
            pieces.push(start..i);
            (start, cots, bits) = (i, 0, 0);
        }
        cots += c;
        bits += b;
    }
    if start < units.len() {
        pieces.push(start..units.len());
    }
    (units, pieces)
}

fn unit_bits(u: &Unit, sizes: &[Size]) -> u64 {
    let p = BITS_PER_PRODUCT as u64;
    if matches!(u, Unit::Boot) {
        return 0;
    }
    let (job, _, len) = u.range();
    let len = len as u64;
    match (u, sizes[job]) {
        (Unit::Triples { .. }, _) => 2 * p * len,
        (Unit::And { .. } | Unit::Rot { .. } | Unit::Leaf16 { .. } | Unit::Boot, _) => 0,
        (Unit::DaBits { .. }, _) => 64 * len,
        (Unit::Masked { .. }, _) => MASKED_BITS_PER_ELEMENT * len,
        (Unit::MatLeft { .. }, Size::Matmul { m, .. }) => p * m as u64 * len,
        (Unit::MatRight { .. }, Size::Matmul { n, .. }) => p * n as u64 * len,
        _ => 0,
    }
}

/// Total COTs and correction bits for `order`: what the cost model and the
/// memory estimate count (a test checks it against a run).
pub(crate) fn ot_counts(order: &[Request]) -> Result<(u64, u64), ExecError> {
    let sizes = order.iter().map(size_of).collect::<Result<Vec<_>, _>>()?;
    let (units, _) = plan_units(&sizes);
    Ok(units.iter().fold((0, 0), |(c, b), u| {
        (c + u.cots() as u64, b + unit_bits(u, &sizes))
    }))
}

/// One correlation being generated: this party's halves and cross shares.
enum Job {
    Triples {
        shape: Vec<usize>,
        a: Vec<u64>,
        b: Vec<u64>,
        c: Vec<u64>,
    },
    Matmul {
        a_shape: Vec<usize>,
        b_shape: Vec<usize>,
        m: usize,
        k: usize,
        n: usize,
        a: Vec<u64>,
        b: Vec<u64>,
        cross: Vec<u64>,
    },
    And {
        bits: usize,
        a: Vec<u64>,
        b: Vec<u64>,
        c: Vec<u64>,
    },
    DaBits {
        shape: Vec<usize>,
        s: Vec<u64>,
        cross: Vec<u64>,
    },
    Masked {
        shape: Vec<usize>,
        x: Vec<u64>,
        cross: Vec<u64>,
    },
    /// This party's side of random OTs: the sender's pads `k0`, `k1`, or
    /// the receiver's packed choices and pads.
    Rot {
        n: usize,
        sender: bool,
        a: Vec<u64>,
        b: Vec<u64>,
    },
    /// Random 1-of-16 OTs: party 0's pads and masks, or party 1's choices
    /// and chosen pads (layouts of `sharing::OneOf16Side`).
    Leaf16 {
        count: usize,
        sender: bool,
        a: Vec<u64>,
        b: Vec<u64>,
    },
}

impl Drop for Job {
    fn drop(&mut self) {
        match self {
            Job::Triples { a, b, c, .. } | Job::And { a, b, c, .. } => {
                a.zeroize();
                b.zeroize();
                c.zeroize();
            }
            Job::Matmul { a, b, cross, .. } => {
                a.zeroize();
                b.zeroize();
                cross.zeroize();
            }
            Job::DaBits { s: v, cross, .. }
            | Job::Masked { x: v, cross, .. }
            | Job::Rot { a: v, b: cross, .. }
            | Job::Leaf16 { a: v, b: cross, .. } => {
                v.zeroize();
                cross.zeroize();
            }
        }
    }
}

impl Job {
    /// The job for `req`; party 0 draws its halves here (party 1's come
    /// from its choice bits, except bit 63 of masked-bits words).
    fn new<R: CryptoRng + ?Sized>(
        req: &Request,
        size: Size,
        p0: bool,
        rng: &mut R,
    ) -> Result<Job, ExecError> {
        let mut random = |n: usize| -> Vec<u64> { (0..n).map(|_| rng.random()).collect() };
        Ok(match (req, size) {
            (Request::ElementwiseTriple { shape }, Size::Triples(n)) => Job::Triples {
                shape: shape.clone(),
                a: vec![0; n],
                b: vec![0; n],
                c: vec![0; n],
            },
            (Request::MatmulTriple { a_shape, b_shape }, Size::Matmul { m, k, n }) => {
                let (a, b) = if p0 {
                    (random(m * k), random(k * n))
                } else {
                    (vec![0; m * k], vec![0; k * n])
                };
                Job::Matmul {
                    a_shape: a_shape.clone(),
                    b_shape: b_shape.clone(),
                    m,
                    k,
                    n,
                    a,
                    b,
                    cross: vec![0; m * n],
                }
            }
            (Request::AndTriples { bits }, Size::And(n)) => Job::And {
                bits: *bits,
                a: vec![0; n / 64],
                b: vec![0; n / 64],
                c: vec![0; n / 64],
            },
            (Request::DaBits { shape }, Size::DaBits(n)) => Job::DaBits {
                shape: shape.clone(),
                s: if p0 {
                    random(n).into_iter().map(|v| v & 1).collect()
                } else {
                    vec![0; n]
                },
                cross: vec![0; n],
            },
            (Request::MaskedBits { shape }, Size::Masked(n)) => Job::Masked {
                shape: shape.clone(),
                // Party 1 overwrites bits 0..63 with its choice bits.
                x: random(n),
                cross: vec![0; n],
            },
            (Request::RandomOts { sender, .. }, Size::Rot { n, .. }) => {
                let sender = (*sender == Party::P0) == p0;
                Job::Rot {
                    n,
                    sender,
                    a: vec![0; if sender { n } else { n.div_ceil(64) }],
                    b: vec![0; n],
                }
            }
            (Request::OneOf16Ots { count }, Size::Leaf16(n)) => Job::Leaf16 {
                count: *count,
                sender: p0,
                a: vec![
                    0;
                    if p0 {
                        OneOf16Side::pad_words(n)
                    } else {
                        OneOf16Side::choice_words(n)
                    }
                ],
                // Party 0's masks: fresh uniform bits.
                b: if p0 {
                    random(OneOf16Side::mask_words(n))
                } else {
                    vec![0; OneOf16Side::mask_words(n)]
                },
            },
            _ => return Err(ExecError::protocol("correlation request and size disagree")),
        })
    }

    /// This party's correlation.
    fn finish(mut self, role: Party) -> Result<CorrelationShare, ExecError> {
        let take = std::mem::take;
        Ok(match &mut self {
            Job::Triples { shape, a, b, c } => {
                let t = |v: Vec<u64>| RingTensor::new(v, shape.clone());
                triple(role, t(take(a))?, t(take(b))?, t(take(c))?)
            }
            Job::Matmul {
                a_shape,
                b_shape,
                a,
                b,
                cross,
                ..
            } => {
                let a = RingTensor::new(take(a), a_shape.clone())?;
                let b = RingTensor::new(take(b), b_shape.clone())?;
                let own = a.matmul(&b)?;
                let shape = own.shape().to_vec();
                let c = own
                    .data()
                    .iter()
                    .zip(cross.iter())
                    .map(|(x, y)| x.wrapping_add(*y))
                    .collect();
                triple(role, a, b, RingTensor::new(c, shape)?)
            }
            Job::And { bits, a, b, c } => CorrelationShare::AndTriples(AndTripleShare {
                party: role,
                bits: *bits,
                a: take(a),
                b: take(b),
                c: take(c),
            }),
            Job::DaBits { shape, s, cross } => {
                let arith = s
                    .iter()
                    .zip(cross.iter())
                    .map(|(b, x)| b.wrapping_sub(x.wrapping_mul(2)))
                    .collect();
                let mut packed = vec![0u64; s.len().div_ceil(64)];
                for (i, b) in s.iter().enumerate() {
                    packed[i / 64] |= (b & 1) << (i % 64);
                }
                CorrelationShare::DaBits(DaBitShare {
                    bits: packed,
                    arith: Share::new(role, RingTensor::new(arith, shape.clone())?),
                })
            }
            Job::Masked { shape, x, cross } => {
                // The cross term is 2·(x0 ∧ x1); r = x0 + x1 − 2·(x0 ∧ x1).
                let r = x
                    .iter()
                    .zip(cross.iter())
                    .map(|(x, c)| x.wrapping_sub(*c))
                    .collect();
                CorrelationShare::MaskedBits(MaskedBitsShare {
                    r: Share::new(role, RingTensor::new(r, shape.clone())?),
                    r_bits: RingTensor::new(take(x), shape.clone())?,
                })
            }
            Job::Rot { n, sender, a, b } => {
                let side = if *sender {
                    OtSide::Sender {
                        k0: take(a),
                        k1: take(b),
                    }
                } else {
                    OtSide::Receiver {
                        choices: take(a),
                        pads: take(b),
                    }
                };
                CorrelationShare::RandomOts(RandomOtShare {
                    party: role,
                    n: *n,
                    side,
                })
            }
            Job::Leaf16 {
                count,
                sender,
                a,
                b,
            } => {
                let side = if *sender {
                    OneOf16Side::Sender {
                        pads: take(a),
                        masks: take(b),
                    }
                } else {
                    OneOf16Side::Receiver {
                        choices: take(a),
                        got: take(b),
                    }
                };
                CorrelationShare::OneOf16Ots(OneOf16Share {
                    party: role,
                    count: *count,
                    side,
                })
            }
        })
    }
}

fn triple(role: Party, a: RingTensor, b: RingTensor, c: RingTensor) -> CorrelationShare {
    CorrelationShare::Triple(TripleShare {
        a: Share::new(role, a),
        b: Share::new(role, b),
        c: Share::new(role, c),
    })
}

/// The sender's side of random OTs `start..` from its COTs: the low 64
/// bits of the pads.
fn rot_sender(cots: SenderCotsRef<'_>, start: usize, k0: &mut [u64], k1: &mut [u64]) {
    ot::ot::for_each_sender_pad(cots, |j, [p0, p1]| {
        k0[start + j] = p0.0 as u64;
        k1[start + j] = p1.0 as u64;
    });
}

/// The receiver's side of random OTs `start..` (`start` a multiple of
/// 64): packed choices and the low 64 bits of its pads.
fn rot_receiver(cots: ReceiverCotsRef<'_>, start: usize, choices: &mut [u64], pads: &mut [u64]) {
    ot::ot::for_each_receiver_pad(cots, |j, p| pads[start + j] = p.0 as u64);
    for (w, bits) in cots.choices().chunks(64).enumerate() {
        choices[start / 64 + w] = value_of(bits);
    }
}

/// Party 0's side of random 1-of-16 OTs `start..` (`start` a multiple of
/// 32): 16 pads of 2 bits per 32-bit half word.
fn leaf_sender(cots: SenderCotsRef<'_>, start: usize, pads: &mut [u64]) -> Result<(), ExecError> {
    let mut all = one_of_n::random_send_short(cots, 4, 2).map_err(ot_error)?;
    for (i, p) in all.iter().enumerate() {
        let j = start + i;
        pads[j / 2] |= (*p as u64) << (32 * (j % 2));
    }
    all.zeroize();
    Ok(())
}

/// Party 1's side of random 1-of-16 OTs `start..`: its choices (4 bits
/// each) and its 2-bit pads.
fn leaf_receiver(
    cots: ReceiverCotsRef<'_>,
    start: usize,
    choices: &mut [u64],
    got: &mut [u64],
) -> Result<(), ExecError> {
    let (mut c, mut pads) = one_of_n::random_receive_short(cots, 4, 2).map_err(ot_error)?;
    for (i, (ci, p)) in c.iter().zip(&pads).enumerate() {
        let j = start + i;
        choices[j / 16] |= ci << (4 * (j % 16));
        got[j / 32] |= (*p as u64) << (2 * (j % 32));
    }
    c.zeroize();
    pads.zeroize();
    Ok(())
}

/// The value a receiver's 64 choice bits spell (least significant first).
fn value_of(choices: &[bool]) -> u64 {
    choices
        .iter()
        .enumerate()
        .fold(0u64, |v, (i, &b)| v | (b as u64) << i)
}

/// Adds vector-product shares into a matrix triple's cross term.
/// `left`: products `p = l·n + j`, each a column of `m` values for output
/// column `j`; otherwise products `p = i·k + l`, each a row of `n` values
/// for output row `i`.
fn accumulate(
    cross: &mut [u64],
    (m, k, n): (usize, usize, usize),
    left: bool,
    start: usize,
    shares: &[u64],
) {
    if left {
        for (q, col) in shares.chunks(m).enumerate() {
            let j = (start + q) % n;
            for (i, v) in col.iter().enumerate() {
                cross[i * n + j] = cross[i * n + j].wrapping_add(*v);
            }
        }
    } else {
        for (q, row) in shares.chunks(n).enumerate() {
            let i = (start + q) / k;
            for (j, v) in row.iter().enumerate() {
                cross[i * n + j] = cross[i * n + j].wrapping_add(*v);
            }
        }
    }
}

/// Ranges of units, one per piece.
type Pieces = Vec<std::ops::Range<usize>>;

/// What [`new_jobs`] plans: the requests' sizes, the jobs, their units and
/// the pieces.
type Planned = (Vec<Size>, Vec<Job>, Vec<Unit>, Pieces);

fn new_jobs<R: CryptoRng + ?Sized>(
    order: &[Request],
    p0: bool,
    rng: &mut R,
) -> Result<Planned, ExecError> {
    let sizes = order.iter().map(size_of).collect::<Result<Vec<_>, _>>()?;
    let jobs = order
        .iter()
        .zip(&sizes)
        .map(|(r, s)| Job::new(r, *s, p0, rng))
        .collect::<Result<Vec<_>, _>>()?;
    let (units, pieces) = plan_units(&sizes);
    Ok((sizes, jobs, units, pieces))
}

fn finish_all(
    role: Party,
    jobs: Vec<Job>,
    order: &[Request],
) -> Result<PrecomputedCorrelations, ExecError> {
    let mut store = PrecomputedCorrelations::new(role);
    for (job, req) in jobs.into_iter().zip(order) {
        store.push(req.clone(), job.finish(role)?)?;
    }
    Ok(store)
}

/// Appends a message to a piece's corrections, length-prefixed: `write`
/// encodes it in place after the prefix, which is filled in afterwards.
fn put_with(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&[0; 8]);
    write(out);
    let len = (out.len() - at - 8) as u64;
    out[at..at + 8].copy_from_slice(&len.to_le_bytes());
}

/// The next length-prefixed message of a piece's corrections.
fn get<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8], ExecError> {
    let short = || ExecError::protocol("the peer's OT corrections end early");
    let (len, rest) = bytes.split_first_chunk::<8>().ok_or_else(short)?;
    let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|_| short())?;
    if len > rest.len() {
        return Err(short());
    }
    let (msg, rest) = rest.split_at(len);
    *bytes = rest;
    Ok(msg)
}

/// Party 0 (the OT-extension sender) of dealer-free generation.
pub struct OtParty0 {
    sender: softspoken::Sender,
    /// The reverse extension (party 0 receiving), once piece 0's first
    /// random OTs set it up.
    rev: Option<softspoken::Receiver>,
    /// Buffers reused from piece to piece (no fresh pages per piece): the
    /// decoded extension message, the forward COTs, and the reverse
    /// extension's message and COTs.
    ext: ExtendMsg,
    cots: SenderCots,
    rev_msg: ExtendMsg,
    rev_cots: ReceiverCots,
    order: Vec<Request>,
    sizes: Vec<Size>,
    jobs: Vec<Job>,
    units: Vec<Unit>,
    pieces: Vec<std::ops::Range<usize>>,
}

impl OtParty0 {
    /// Answers party 1's base-OT hello: the state and the reply to send.
    pub fn start<R: CryptoRng + ?Sized>(
        order: Vec<Request>,
        hello: &[u8],
        rng: &mut R,
    ) -> Result<(OtParty0, Vec<u8>), ExecError> {
        let hello = base::BaseHello::from_bytes(hello).map_err(ot_error)?;
        let (sender, reply) = softspoken::Sender::setup(&hello, rng).map_err(ot_error)?;
        let (sizes, jobs, units, pieces) = new_jobs(&order, true, rng)?;
        Ok((
            OtParty0 {
                sender,
                rev: None,
                ext: ExtendMsg::empty(),
                cots: SenderCots::empty(),
                rev_msg: ExtendMsg::empty(),
                rev_cots: ReceiverCots::empty(),
                order,
                sizes,
                jobs,
                units,
                pieces,
            },
            reply.to_bytes(),
        ))
    }

    /// Continues the extension `sender` of an earlier session with the
    /// same peer: no base OTs (see `exec::OtLink`).
    pub fn resume<R: CryptoRng + ?Sized>(
        order: Vec<Request>,
        sender: softspoken::Sender,
        rng: &mut R,
    ) -> Result<OtParty0, ExecError> {
        let (sizes, jobs, units, pieces) = new_jobs(&order, true, rng)?;
        Ok(OtParty0 {
            sender,
            rev: None,
            ext: ExtendMsg::empty(),
            cots: SenderCots::empty(),
            rev_msg: ExtendMsg::empty(),
            rev_cots: ReceiverCots::empty(),
            order,
            sizes,
            jobs,
            units,
            pieces,
        })
    }

    /// Number of pieces (extension message in, corrections out).
    pub fn pieces(&self) -> usize {
        self.pieces.len()
    }

    /// The corrections for piece `i`, from party 1's extension message.
    #[cfg(test)]
    pub fn answer<R: CryptoRng + ?Sized>(
        &mut self,
        i: usize,
        extend: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, ExecError> {
        let mut out = Vec::new();
        self.answer_into(i, extend, rng, &mut out)?;
        Ok(out)
    }

    /// [`OtParty0::answer`], appending the corrections to `out` (a frame
    /// being built, see `wire::ot_frame`).
    pub fn answer_into<R: CryptoRng + ?Sized>(
        &mut self,
        i: usize,
        extend: &[u8],
        rng: &mut R,
        out: &mut Vec<u8>,
    ) -> Result<(), ExecError> {
        let range =
            self.pieces.get(i).cloned().ok_or_else(|| {
                ExecError::protocol(format!("OT piece {i} of {}", self.pieces.len()))
            })?;
        let units = &self.units[range.clone()];
        let want: usize = units.iter().map(Unit::fwd_cots).sum();
        let rev_n: usize = units.iter().map(Unit::rev_cots).sum();
        // A piece of reverse OTs only has an empty forward extension (no
        // bytes at all).
        if want == 0 {
            if !extend.is_empty() {
                return Err(ExecError::protocol(format!(
                    "the peer sent an OT extension for piece {i}, which has none"
                )));
            }
        } else {
            self.ext.decode(extend).map_err(ot_error)?;
            self.check_extension(i, want)?;
            self.sender
                .extend_into(&self.ext, &mut self.cots)
                .map_err(ot_error)?;
        }
        out.reserve(self.answer_len(range.clone()));
        // The COTs are read in place, unit by unit (`part`), so the
        // buffers go back to `self` afterwards.
        let cots = std::mem::replace(&mut self.cots, SenderCots::empty());
        let mut rev_cots = std::mem::replace(&mut self.rev_cots, ReceiverCots::empty());
        let result = self.answer_units(range, want, rev_n, &cots, &mut rev_cots, rng, out);
        self.cots = cots;
        self.rev_cots = rev_cots;
        result?;
        // The reverse extension message last.
        if rev_n > 0 {
            put_with(out, |o| self.rev_msg.encode_into(o));
        }
        Ok(())
    }

    /// Bytes of corrections piece `range` adds (a capacity, so the piece is
    /// written without growing its buffer).
    fn answer_len(&self, range: std::ops::Range<usize>) -> usize {
        self.units[range]
            .iter()
            .map(|u| {
                let bits = unit_bits(u, &self.sizes);
                let rev = if u.rev_cots() > 0 {
                    ExtendMsg::encoded_len(u.rev_cots()) + ExtendMsg::SETUP_BYTES
                } else {
                    0
                };
                8 + 64 + (bits as usize).div_ceil(8) + rev
            })
            .sum()
    }

    #[allow(clippy::too_many_arguments)]
    fn answer_units<R: CryptoRng + ?Sized>(
        &mut self,
        range: std::ops::Range<usize>,
        want: usize,
        rev_n: usize,
        cots: &SenderCots,
        rev_cots: &mut ReceiverCots,
        rng: &mut R,
        out: &mut Vec<u8>,
    ) -> Result<(), ExecError> {
        let (mut at, mut rev_at, mut rev_ready) = (0usize, 0usize, false);
        for idx in range {
            let u = self.units[idx];
            if u.rev_cots() > 0 {
                if !rev_ready {
                    // After the boot unit (piece 0's first) set it up.
                    let receiver = self.rev.as_mut().ok_or_else(|| {
                        ExecError::protocol("reverse OT extension before its base OTs")
                    })?;
                    receiver
                        .extend_random_into(rev_n, rng, &mut self.rev_msg, rev_cots)
                        .map_err(ot_error)?;
                    rev_ready = true;
                }
                let part = rev_cots.part(rev_at, u.rev_cots()).map_err(ot_error)?;
                rev_at += u.rev_cots();
                self.rev_unit(&u, part)?;
                continue;
            }
            let part = cots.part(at, u.cots()).map_err(ot_error)?;
            at += u.cots();
            if matches!(u, Unit::Boot) {
                let pads: Vec<[ot::Block; 2]> = part.random_ot();
                self.rev = Some(softspoken::Receiver::from_random_ots(&pads).map_err(ot_error)?);
                continue;
            }
            self.unit(&u, part, rng, out)?;
        }
        debug_assert_eq!((at, rev_at), (want, if rev_ready { rev_n } else { 0 }));
        Ok(())
    }

    /// Party 1's extension message for piece `i` is for `want` OTs from
    /// where this sender is.
    fn check_extension(&self, i: usize, want: usize) -> Result<(), ExecError> {
        let msg = &self.ext;
        if msg.count() != want || msg.first() != self.sender.next_index() {
            return Err(ExecError::protocol(format!(
                "the peer's OT extension message for piece {i} has {} OTs from {}, expected {want} from {}",
                msg.count(),
                msg.first(),
                self.sender.next_index()
            )));
        }
        Ok(())
    }

    /// Party 0 receiving random OTs (party 1 sends them).
    fn rev_unit(&mut self, u: &Unit, cots: ReceiverCotsRef<'_>) -> Result<(), ExecError> {
        let (job, start, _) = u.range();
        match (u, &mut self.jobs[job]) {
            (Unit::Rot { .. }, Job::Rot { a, b, .. }) => rot_receiver(cots, start, a, b),
            _ => return Err(ExecError::protocol("OT unit does not match its job")),
        }
        Ok(())
    }

    /// One unit of party 0's piece: its shares, and its corrections (if
    /// any) appended to `out`.
    fn unit<R: CryptoRng + ?Sized>(
        &mut self,
        u: &Unit,
        cots: SenderCotsRef<'_>,
        rng: &mut R,
        out: &mut Vec<u8>,
    ) -> Result<(), ExecError> {
        let (job, start, len) = u.range();
        let end = start + len;
        match (u, &mut self.jobs[job]) {
            (Unit::Triples { .. }, Job::Triples { a, b, c, .. }) => {
                let (msg, t) = arith::beaver_sender(cots, rng).map_err(ot_error)?;
                a[start..end].copy_from_slice(&t.a);
                b[start..end].copy_from_slice(&t.b);
                c[start..end].copy_from_slice(&t.c);
                put_with(out, |o| msg.encode_into(o));
            }
            (Unit::And { .. }, Job::And { a, b, c, .. }) => {
                let t = boolean::and_triples_sender(cots).map_err(ot_error)?;
                let w = start / 64..end.div_ceil(64);
                a[w.clone()].copy_from_slice(&t.a);
                b[w.clone()].copy_from_slice(&t.b);
                c[w].copy_from_slice(&t.c);
            }
            (Unit::DaBits { .. }, Job::DaBits { s, cross, .. }) => {
                let (msg, shares) =
                    arith::send_bit_products(cots, &s[start..end], |_| 64).map_err(ot_error)?;
                cross[start..end].copy_from_slice(&shares);
                put_with(out, |o| msg.encode_into(o));
            }
            (Unit::Masked { .. }, Job::Masked { x, cross, .. }) => {
                let values: Vec<u64> = x[start..end]
                    .iter()
                    .flat_map(|&w| (0..63).map(move |i| (w >> i) & 1))
                    .collect();
                let (msg, shares) =
                    arith::send_bit_products(cots, &values, |j| 63 - (j % 63) as u32)
                        .map_err(ot_error)?;
                fold_masked(&mut cross[start..end], &shares);
                put_with(out, |o| msg.encode_into(o));
            }
            (
                Unit::MatLeft { .. } | Unit::MatRight { .. },
                Job::Matmul {
                    m,
                    k,
                    n,
                    a,
                    b,
                    cross,
                    ..
                },
            ) => {
                let (m, k, n) = (*m, *k, *n);
                let left = matches!(u, Unit::MatLeft { .. });
                // The sender's vector per product: column l of A0 (left),
                // row l of B0 (right).
                let (a, b) = (&*a, &*b);
                let (width, vectors): (usize, Vec<u64>) = if left {
                    let v = (start..end)
                        .flat_map(|p| {
                            let l = p / n;
                            (0..m).map(move |i| a[i * k + l])
                        })
                        .collect();
                    (m, v)
                } else {
                    let v = (start..end)
                        .flat_map(|p| {
                            let l = p % k;
                            b[l * n..(l + 1) * n].iter().copied()
                        })
                        .collect();
                    (n, v)
                };
                let (msg, shares) = arith::send_vectors(cots, &vectors, width).map_err(ot_error)?;
                accumulate(cross, (m, k, n), left, start, &shares);
                put_with(out, |o| msg.encode_into(o));
            }
            (Unit::Rot { .. }, Job::Rot { a, b, .. }) => {
                rot_sender(cots, start, a, b);
            }
            (Unit::Leaf16 { .. }, Job::Leaf16 { a, .. }) => {
                leaf_sender(cots, start, a)?;
            }
            _ => return Err(ExecError::protocol("OT unit does not match its job")),
        }
        Ok(())
    }

    /// Party 0's correlations, once every piece is answered.
    #[cfg(test)]
    pub fn finish(self) -> Result<PrecomputedCorrelations, ExecError> {
        self.finish_keeping().map(|(c, _)| c)
    }

    /// [`OtParty0::finish`], also handing back the extension for a later
    /// session with the same peer ([`OtParty0::resume`]).
    pub fn finish_keeping(
        self,
    ) -> Result<(PrecomputedCorrelations, softspoken::Sender), ExecError> {
        let OtParty0 {
            sender,
            order,
            jobs,
            cots,
            rev_cots,
            ..
        } = self;
        // The pieces' buffers go before the correlations are assembled.
        drop((cots, rev_cots));
        Ok((finish_all(Party::P0, jobs, &order)?, sender))
    }
}

/// `bytes` decoded into `buf` (a buffer kept from message to message).
fn decoded<'b>(
    buf: &'b mut Packed,
    bytes: Result<&[u8], ExecError>,
) -> Result<&'b Packed, ExecError> {
    buf.decode(bytes?).map_err(ot_error)?;
    Ok(buf)
}

/// Masked bits: adds `Σ_i 2^{i+1}·share_i` per element (share `i` is mod
/// `2^{63−i}`, so the shifted sum is exact mod 2^64).
fn fold_masked(cross: &mut [u64], shares: &[u64]) {
    for (c, s) in cross.iter_mut().zip(shares.chunks(63)) {
        *c = s
            .iter()
            .enumerate()
            .fold(0u64, |acc, (i, v)| acc.wrapping_add(v << (i + 1)));
    }
}

/// Party 1 (the OT-extension receiver) of dealer-free generation.
pub struct OtParty1 {
    setup: Option<softspoken::ReceiverSetup>,
    receiver: Option<softspoken::Receiver>,
    /// The reverse extension's sender (party 1 sending random OTs).
    rev: Option<softspoken::Sender>,
    /// Buffers reused from piece to piece: the extension message, COT
    /// buffers handed back by [`OtParty1::absorb`] (two pieces may be in
    /// flight), the reverse extension's message and COTs, and the decoded
    /// corrections.
    msg: ExtendMsg,
    spare: Vec<ReceiverCots>,
    rev_msg: ExtendMsg,
    rev_cots: SenderCots,
    corrections: Corrections,
    packed: Packed,
    order: Vec<Request>,
    jobs: Vec<Job>,
    units: Vec<Unit>,
    pieces: Vec<std::ops::Range<usize>>,
}

/// Party 1's COTs of a piece whose corrections are still to come.
pub struct Pending {
    piece: usize,
    cots: ReceiverCots,
}

impl OtParty1 {
    /// Starts the base OTs: the state and the hello to send party 0.
    pub fn start<R: CryptoRng + ?Sized>(
        order: Vec<Request>,
        rng: &mut R,
    ) -> Result<(OtParty1, Vec<u8>), ExecError> {
        let (setup, hello) = softspoken::Receiver::setup(rng).map_err(ot_error)?;
        let (_, jobs, units, pieces) = new_jobs(&order, false, rng)?;
        Ok((
            OtParty1 {
                setup: Some(setup),
                receiver: None,
                rev: None,
                msg: ExtendMsg::empty(),
                spare: Vec::new(),
                rev_msg: ExtendMsg::empty(),
                rev_cots: SenderCots::empty(),
                corrections: Corrections::empty(),
                packed: Packed::empty(),
                order,
                jobs,
                units,
                pieces,
            },
            hello.to_bytes(),
        ))
    }

    /// Continues the extension `receiver` of an earlier session with the
    /// same peer: no base OTs, no hello (see `exec::OtLink`).
    pub fn resume<R: CryptoRng + ?Sized>(
        order: Vec<Request>,
        receiver: softspoken::Receiver,
        rng: &mut R,
    ) -> Result<OtParty1, ExecError> {
        let (_, jobs, units, pieces) = new_jobs(&order, false, rng)?;
        Ok(OtParty1 {
            setup: None,
            receiver: Some(receiver),
            rev: None,
            msg: ExtendMsg::empty(),
            spare: Vec::new(),
            rev_msg: ExtendMsg::empty(),
            rev_cots: SenderCots::empty(),
            corrections: Corrections::empty(),
            packed: Packed::empty(),
            order,
            jobs,
            units,
            pieces,
        })
    }

    /// Takes party 0's base-OT reply.
    pub fn set_up(&mut self, reply: &[u8]) -> Result<(), ExecError> {
        let reply = base::BaseReply::from_bytes(reply).map_err(ot_error)?;
        let setup = self
            .setup
            .take()
            .ok_or_else(|| ExecError::protocol("a second base-OT reply"))?;
        self.receiver = Some(setup.finish(&reply).map_err(ot_error)?);
        Ok(())
    }

    /// Number of pieces.
    pub fn pieces(&self) -> usize {
        self.pieces.len()
    }

    /// The extension message for piece `i` (random choices), and the COTs
    /// kept until its corrections arrive.
    #[cfg(test)]
    pub fn extend<R: CryptoRng + ?Sized>(
        &mut self,
        i: usize,
        rng: &mut R,
    ) -> Result<(Vec<u8>, Pending), ExecError> {
        let mut out = Vec::new();
        let pending = self.extend_into(i, rng, &mut out)?;
        Ok((out, pending))
    }

    /// [`OtParty1::extend`], appending the message to `out` (a frame being
    /// built, see `wire::ot_frame`).
    pub fn extend_into<R: CryptoRng + ?Sized>(
        &mut self,
        i: usize,
        rng: &mut R,
        out: &mut Vec<u8>,
    ) -> Result<Pending, ExecError> {
        let range =
            self.pieces.get(i).cloned().ok_or_else(|| {
                ExecError::protocol(format!("OT piece {i} of {}", self.pieces.len()))
            })?;
        let n: usize = self.units[range].iter().map(Unit::fwd_cots).sum();
        let receiver = self
            .receiver
            .as_mut()
            .ok_or_else(|| ExecError::protocol("OT extension before the base OTs"))?;
        if n == 0 {
            // Only reverse OTs in this piece: no message, no COTs.
            return Ok(Pending {
                piece: i,
                cots: ReceiverCots::empty(),
            });
        }
        let mut cots = self.spare.pop().unwrap_or_else(ReceiverCots::empty);
        receiver
            .extend_random_into(n, rng, &mut self.msg, &mut cots)
            .map_err(ot_error)?;
        self.msg.encode_into(out);
        Ok(Pending { piece: i, cots })
    }

    /// Party 1's shares for a piece, from party 0's corrections.
    pub fn absorb(&mut self, pending: Pending, corrections: &[u8]) -> Result<(), ExecError> {
        let Pending { piece, cots } = pending;
        let range = self.pieces[piece].clone();
        let rev_n: usize = self.units[range.clone()].iter().map(Unit::rev_cots).sum();
        let mut rest = corrections;
        let mut at = 0;
        for idx in range.clone() {
            let u = self.units[idx];
            if u.rev_cots() > 0 {
                continue;
            }
            let part = cots.part(at, u.cots()).map_err(ot_error)?;
            at += u.cots();
            if matches!(u, Unit::Boot) {
                let sender = softspoken::Sender::from_random_ots(part.choices(), &part.random_ot())
                    .map_err(ot_error)?;
                self.rev = Some(sender);
                continue;
            }
            let msg = if u.corrected() {
                Some(get(&mut rest)?)
            } else {
                None
            };
            self.unit(&u, part, msg)?;
        }
        // The buffer serves a later piece.
        self.spare.push(cots);
        if rev_n > 0 {
            // Party 0's reverse extension message closes the piece.
            self.rev_msg.decode(get(&mut rest)?).map_err(ot_error)?;
            let sender = self
                .rev
                .as_mut()
                .ok_or_else(|| ExecError::protocol("reverse OT extension before its base OTs"))?;
            let msg = &self.rev_msg;
            if msg.count() != rev_n || msg.first() != sender.next_index() {
                return Err(ExecError::protocol(format!(
                    "the peer's reverse OT extension for piece {piece} has {} OTs from {}, expected {rev_n} from {}",
                    msg.count(),
                    msg.first(),
                    sender.next_index()
                )));
            }
            sender
                .extend_into(msg, &mut self.rev_cots)
                .map_err(ot_error)?;
        }
        if !rest.is_empty() {
            return Err(ExecError::protocol(
                "the peer's OT corrections have bytes left over",
            ));
        }
        if rev_n > 0 {
            let mut at = 0;
            for idx in range {
                let u = self.units[idx];
                if u.rev_cots() == 0 {
                    continue;
                }
                let part = self.rev_cots.part(at, u.rev_cots()).map_err(ot_error)?;
                at += u.rev_cots();
                let (job, start, _) = u.range();
                match &mut self.jobs[job] {
                    Job::Rot { a, b, .. } => rot_sender(part, start, a, b),
                    _ => return Err(ExecError::protocol("OT unit does not match its job")),
                }
            }
        }
        Ok(())
    }

    fn unit(
        &mut self,
        u: &Unit,
        cots: ReceiverCotsRef<'_>,
        msg: Option<&[u8]>,
    ) -> Result<(), ExecError> {
        let (job, start, len) = u.range();
        let end = start + len;
        let msg = || msg.ok_or_else(|| ExecError::protocol("missing OT corrections"));
        // Corrections decode into buffers kept from unit to unit.
        let buf = &mut self.packed;
        match (u, &mut self.jobs[job]) {
            (Unit::Triples { .. }, Job::Triples { a, b, c, .. }) => {
                let corr = &mut self.corrections;
                corr.decode(msg()?).map_err(ot_error)?;
                let t = arith::beaver_receiver(cots, corr).map_err(ot_error)?;
                a[start..end].copy_from_slice(&t.a);
                b[start..end].copy_from_slice(&t.b);
                c[start..end].copy_from_slice(&t.c);
            }
            (Unit::And { .. }, Job::And { a, b, c, .. }) => {
                let t = boolean::and_triples_receiver(cots).map_err(ot_error)?;
                let w = start / 64..end.div_ceil(64);
                a[w.clone()].copy_from_slice(&t.a);
                b[w.clone()].copy_from_slice(&t.b);
                c[w].copy_from_slice(&t.c);
            }
            (Unit::DaBits { .. }, Job::DaBits { s, cross, .. }) => {
                let shares = arith::receive_bit_products(cots, decoded(buf, msg())?, |_| 64)
                    .map_err(ot_error)?;
                for (d, &ch) in s[start..end].iter_mut().zip(cots.choices()) {
                    *d = ch as u64;
                }
                cross[start..end].copy_from_slice(&shares);
            }
            (Unit::Masked { .. }, Job::Masked { x, cross, .. }) => {
                let shares = arith::receive_bit_products(cots, decoded(buf, msg())?, |j| {
                    63 - (j % 63) as u32
                })
                .map_err(ot_error)?;
                for (w, bits) in x[start..end].iter_mut().zip(cots.choices().chunks(63)) {
                    // Bits 0..63 are the choices; bit 63 stays random.
                    *w = (*w & (1 << 63)) | value_of(bits);
                }
                fold_masked(&mut cross[start..end], &shares);
            }
            (
                Unit::MatLeft { .. } | Unit::MatRight { .. },
                Job::Matmul {
                    m,
                    k,
                    n,
                    a,
                    b,
                    cross,
                    ..
                },
            ) => {
                let (m, k, n) = (*m, *k, *n);
                let left = matches!(u, Unit::MatLeft { .. });
                // Party 1's values: B1[l][j] at p = l·n + j (left), A1[i][l]
                // at p = i·k + l (right): both are the row-major index.
                let own = if left { b } else { a };
                for (p, bits) in (start..end).zip(cots.choices().chunks(64)) {
                    own[p] = value_of(bits);
                }
                let width = if left { m } else { n };
                let shares =
                    arith::receive_vectors(cots, decoded(buf, msg())?, width).map_err(ot_error)?;
                accumulate(cross, (m, k, n), left, start, &shares);
            }
            (Unit::Rot { .. }, Job::Rot { a, b, .. }) => rot_receiver(cots, start, a, b),
            (Unit::Leaf16 { .. }, Job::Leaf16 { a, b, .. }) => leaf_receiver(cots, start, a, b)?,
            _ => return Err(ExecError::protocol("OT unit does not match its job")),
        }
        Ok(())
    }

    /// Party 1's correlations, once every piece is absorbed.
    #[cfg(test)]
    pub fn finish(self) -> Result<PrecomputedCorrelations, ExecError> {
        self.finish_keeping().map(|(c, _)| c)
    }

    /// [`OtParty1::finish`], also handing back the extension (once the
    /// base OTs are done) for a later session ([`OtParty1::resume`]).
    pub fn finish_keeping(
        self,
    ) -> Result<(PrecomputedCorrelations, Option<softspoken::Receiver>), ExecError> {
        let OtParty1 {
            receiver,
            order,
            jobs,
            spare,
            rev_cots,
            ..
        } = self;
        // The pieces' buffers go before the correlations are assembled.
        drop((spare, rev_cots));
        Ok((finish_all(Party::P1, jobs, &order)?, receiver))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    /// Both parties' stores for `order`, the messages handed over directly
    /// (through their byte encodings) instead of through a transport.
    fn stores(order: &[Request], seed: u64) -> (PrecomputedCorrelations, PrecomputedCorrelations) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (mut p1, hello) = OtParty1::start(order.to_vec(), &mut rng).unwrap();
        let (mut p0, reply) = OtParty0::start(order.to_vec(), &hello, &mut rng).unwrap();
        p1.set_up(&reply).unwrap();
        assert_eq!(p0.pieces(), p1.pieces());
        let (mut cots, mut bits) = (0u64, 0u64);
        // The reverse extension's first message carries its setup.
        let mut rev_setup = ExtendMsg::SETUP_BYTES as u64;
        for i in 0..p1.pieces() {
            let (ext, pending) = p1.extend(i, &mut rng).unwrap();
            let corr = p0.answer(i, &ext, &mut rng).unwrap();
            cots += pending.cots.len() as u64;
            let rev: usize = p0.units[p0.pieces[i].clone()]
                .iter()
                .map(Unit::rev_cots)
                .sum();
            cots += rev as u64;
            // The reverse extension rides with the corrections (framed).
            let rev_bytes = if rev > 0 {
                8 + ExtendMsg::encoded_len(rev) as u64 + std::mem::take(&mut rev_setup)
            } else {
                0
            };
            bits += corr.len() as u64 - rev_bytes;
            p1.absorb(pending, &corr).unwrap();
        }
        let (want_cots, want_bits) = ot_counts(order).unwrap();
        assert_eq!(cots, want_cots, "COTs counted for the cost model");
        // Corrections carry framing (tags, lengths) and padding on top.
        assert!(bits * 8 >= want_bits && bits * 8 <= want_bits + 64 * 64 * order.len() as u64 * 40);
        (p0.finish().unwrap(), p1.finish().unwrap())
    }

    fn check_triples(reqs: &[Request], seed: u64) {
        let (mut s0, mut s1) = stores(reqs, seed);
        crate::preprocess::checks::assert_consistent(&mut s0, &mut s1, reqs);
    }

    #[test]
    fn triples_reconstruct_to_products() {
        check_triples(&crate::preprocess::checks::triple_requests(), 1);
    }

    #[test]
    fn many_pieces_reconstruct_too() {
        // 9,000 triples are 1.15 M COTs (two pieces); the matrix triple's
        // left term is 8 products of 300k bits of corrections each.
        let reqs = [
            Request::ElementwiseTriple { shape: vec![9000] },
            Request::MatmulTriple {
                a_shape: vec![2000, 2],
                b_shape: vec![2, 4],
            },
            Request::AndTriples { bits: 600_000 },
        ];
        let sizes: Vec<Size> = reqs.iter().map(|r| size_of(r).unwrap()).collect();
        let (_, pieces) = plan_units(&sizes);
        assert!(pieces.len() >= 3, "{} pieces", pieces.len());
        check_triples(&reqs[..2], 2);
    }

    #[test]
    fn compare_correlations_are_consistent() {
        let reqs = crate::preprocess::checks::compare_requests();
        let (mut s0, mut s1) = stores(&reqs, 3);
        crate::preprocess::checks::assert_consistent(&mut s0, &mut s1, &reqs);
    }

    #[test]
    fn random_ots_both_ways_are_consistent() {
        let mut reqs = crate::preprocess::checks::random_ot_requests();
        reqs.extend(crate::preprocess::checks::compare_requests());
        let (mut s0, mut s1) = stores(&reqs, 5);
        crate::preprocess::checks::assert_consistent(&mut s0, &mut s1, &reqs);
        // Over several pieces, reverse OTs in each.
        let big = [
            Request::RandomOts {
                shape: vec![PIECE_COTS - 100],
                sender: Party::P1,
            },
            Request::RandomOts {
                shape: vec![PIECE_COTS / 2 + 7],
                sender: Party::P0,
            },
            Request::RandomOts {
                shape: vec![PIECE_COTS / 2],
                sender: Party::P1,
            },
        ];
        consistent_over_pieces(&big, 6);
    }

    /// `reqs` need two pieces or more, and their stores are consistent;
    /// the pieces' units, for further checks.
    fn consistent_over_pieces(reqs: &[Request], seed: u64) -> Vec<Unit> {
        let sizes: Vec<Size> = reqs.iter().map(|r| size_of(r).unwrap()).collect();
        let (units, pieces) = plan_units(&sizes);
        assert!(pieces.len() >= 2, "{} pieces", pieces.len());
        let (mut s0, mut s1) = stores(reqs, seed);
        crate::preprocess::checks::assert_consistent(&mut s0, &mut s1, reqs);
        units
    }

    #[test]
    fn one_of_16_ots_are_consistent() {
        let mut reqs = crate::preprocess::checks::one_of_16_requests();
        reqs.extend(crate::preprocess::checks::random_ot_requests());
        let (mut s0, mut s1) = stores(&reqs, 9);
        crate::preprocess::checks::assert_consistent(&mut s0, &mut s1, &reqs);
        // Over several pieces (4 COTs each), units of whole words.
        let big = [
            Request::OneOf16Ots {
                count: PIECE_COTS / 4 + 1000,
            },
            Request::AndTriples { bits: 640 },
            Request::OneOf16Ots { count: 77 },
        ];
        for u in &consistent_over_pieces(&big, 10) {
            if let Unit::Leaf16 { start, .. } = u {
                assert_eq!(start % 32, 0);
            }
        }
    }

    #[test]
    fn malformed_reverse_ot_messages_are_errors() {
        let order = crate::preprocess::checks::random_ot_requests();
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let (mut p1, hello) = OtParty1::start(order.clone(), &mut rng).unwrap();
        let (mut p0, reply) = OtParty0::start(order.clone(), &hello, &mut rng).unwrap();
        p1.set_up(&reply).unwrap();
        let (ext, pending) = p1.extend(0, &mut rng).unwrap();
        let corr = p0.answer(0, &ext, &mut rng).unwrap();
        // The reverse extension message (last) cut short, missing, or with
        // a byte flipped in its count: errors, never a panic.
        let (_, pending2) = p1.extend(0, &mut rng).unwrap();
        assert!(p1.absorb(pending2, &corr[..corr.len() - 16]).is_err());
        let rev: usize = p0.units[p0.pieces[0].clone()]
            .iter()
            .map(Unit::rev_cots)
            .sum();
        assert_eq!(rev, 70 + 128);
        // Piece 0 has the reverse extension's first message, with its setup.
        let rev_len = 8 + ExtendMsg::encoded_len(rev) + ExtendMsg::SETUP_BYTES;
        let (_, pending3) = p1.extend(0, &mut rng).unwrap();
        assert!(p1.absorb(pending3, &corr[..corr.len() - rev_len]).is_err());
        let mut bad = corr.clone();
        let at = corr.len() - rev_len + 8 + 12;
        bad[at] ^= 0x40;
        let (_, pending4) = p1.extend(0, &mut rng).unwrap();
        assert!(p1.absorb(pending4, &bad).is_err());
        let _ = pending;
    }

    #[test]
    fn malformed_messages_are_errors() {
        let order = vec![
            Request::ElementwiseTriple { shape: vec![3] },
            Request::AndTriples { bits: 64 },
            Request::DaBits { shape: vec![2] },
        ];
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        // A garbage hello.
        assert!(OtParty0::start(order.clone(), &[1, 2, 3], &mut rng).is_err());
        let (mut p1, hello) = OtParty1::start(order.clone(), &mut rng).unwrap();
        let (mut p0, reply) = OtParty0::start(order.clone(), &hello, &mut rng).unwrap();
        assert!(p1.set_up(&reply[..reply.len() - 1]).is_err());
        let (mut p1, hello) = OtParty1::start(order.clone(), &mut rng).unwrap();
        let (mut p0b, reply) = OtParty0::start(order.clone(), &hello, &mut rng).unwrap();
        p1.set_up(&reply).unwrap();
        // An extension message of the wrong size, or for a piece that does
        // not exist, is refused.
        let (ext, pending) = p1.extend(0, &mut rng).unwrap();
        assert!(p0.answer(0, &ext[..ext.len() - 16], &mut rng).is_err());
        assert!(p0b.answer(5, &ext, &mut rng).is_err());
        let corr = p0b.answer(0, &ext, &mut rng).unwrap();
        // Corrections cut short, with bytes left over, or bit-flipped in a
        // length field: errors, never a panic.
        let (ext2, pending2) = p1.extend(0, &mut rng).unwrap();
        let _ = ext2;
        assert!(p1.absorb(pending2, &corr[..corr.len() - 1]).is_err());
        let mut longer = corr.clone();
        longer.push(0);
        let (_, pending3) = p1.extend(0, &mut rng).unwrap();
        assert!(p1.absorb(pending3, &longer).is_err());
        let mut bad_len = corr.clone();
        bad_len[7] = 0xff;
        let (_, pending4) = p1.extend(0, &mut rng).unwrap();
        assert!(p1.absorb(pending4, &bad_len).is_err());
        // The right corrections for other COTs do not decode as these.
        assert!(p1.absorb(pending, &corr).is_ok());
    }
}
