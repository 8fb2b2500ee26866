//! Correlated randomness without a dealer: the two computing parties
//! generate Beaver triples and the comparison correlations with Paillier,
//! all through one primitive ([`super::crossterms`]: party 0 encrypts values
//! already placed in slot positions, party 1 returns one masked,
//! re-randomised multi-exponentiation per group of slots).
//!
//! Each party draws its own halves; every correlation needs only the
//! *cross terms* between them, as integers shared additively mod 2^64:
//!
//! * **elementwise triple** `c = a·b`: cross `a0·b1 + b0·a1` per element
//!   (party 0 encrypts `a0`, `b0` pre-shifted into their slot, party 1 uses
//!   `b1`, `a1` as 64-bit exponents); one reply per `S` elements.
//! * **matrix triple** `C = A·B` (`m×k`, `k×n`): `A0·B1` packed along rows
//!   (party 0 encrypts, per column `l` and group of `S` rows, the packed
//!   column of `A0`; party 1 raises it to `B1[l][j]` and multiplies over
//!   `l`), `A1·B0` packed along columns (packed rows of `B0`, exponents
//!   `A1[i][l]`). Inputs and replies shrink by `S`.
//! * **AND triples** (XOR-shared bits): the integer `a0·b1 + a1·b0` reduced
//!   mod 2 is the XOR of the two cross products, so
//!   `c_i = a_i·b_i ⊕ (cross share mod 2)`. One encryption per triple, not
//!   two: party 0 encrypts `b0 + a0·2^s` (two adjacent slots), party 1
//!   raises it to `b1 + a1·2^s`, which puts `b0·b1`, the cross sum and
//!   `a0·a1` in three adjacent slots (all masked; only the middle one is
//!   kept). Replies carry `S/3` triples each.
//! * **daBits**: `s = s0 ⊕ s1 = s0 + s1 − 2·s0·s1`; XOR shares are the
//!   `s_i`, additive shares `s_i − 2·(share of s0·s1)`.
//! * **masked bits**: `r = x0 ⊕ x1` for random words `x_i` (so party `i`'s
//!   XOR share of `r`'s bits is `x_i`) and additively
//!   `r = x0 + x1 − 2·(x0 ∧ x1)` where `2·(x0 ∧ x1) = Σ_{i<63} 2^{i+1}
//!   x0_i x1_i mod 2^64` is one slot per element: party 0 encrypts its bits
//!   pre-weighted by `2^{i+1}`, party 1 multiplies the ones its own bits
//!   select (63 encryptions per element, the same as 63 daBits would cost,
//!   but one slot instead of 63).
//!
//! Every request the plan will make (its own Beaver triples and those of
//! its comparisons, in the executor's request order) is served in one
//! exchange: party 0 sends all its ciphertexts, party 1 all its replies
//! (the executor cuts each into frames, `exec::dealerfree`). Party 1 sees
//! only ciphertexts under party 0's key; party 0 sees each slot only masked
//! with 40 bits of statistical slack, in a fresh encryption.
//!
//! Sans I/O: [`Party0`] and [`Party1`] are the two sides as state machines,
//! messages in and messages out; the executor does the sends and receives.

use super::crossterms::{self, chunks, Group, Input, Layout};
use crate::exec::{ExecError, Progress};
use crate::paillier::{Ciphertext, Keypair, PublicKey};
use crate::sharing::CorrelationRequest as Request;
use crate::sharing::{
    share::random_tensor, AndTripleShare, CorrelationRequest, CorrelationShare, DaBitShare,
    MaskedBitsShare, Party, PrecomputedCorrelations, RingTensor, Share, TripleShare,
};
use num_bigint::BigUint;

/// Per job: its slot layout and this party's shares of the cross terms.
type Crosses = Vec<(Layout, Vec<u64>)>;
use rand::{Rng, RngExt};
use rayon::prelude::*;

/// One correlation being generated: the request and this party's halves.
enum Job {
    Elementwise {
        a: RingTensor,
        b: RingTensor,
    },
    Matmul {
        a: RingTensor,
        b: RingTensor,
        m: usize,
        k: usize,
        n: usize,
    },
    /// XOR halves `a`, `b` of `words · 64` AND triples.
    And {
        bits: usize,
        a: Vec<u64>,
        b: Vec<u64>,
    },
    /// One random bit per element (0/1 values).
    DaBits {
        shape: Vec<usize>,
        s: Vec<u64>,
    },
    /// One random word per element.
    MaskedBits {
        shape: Vec<usize>,
        x: Vec<u64>,
    },
}

fn bits_of(words: &[u64], count: usize) -> Vec<u64> {
    (0..count)
        .map(|i| (words[i / 64] >> (i % 64)) & 1)
        .collect()
}

fn pack_bits(bits: &[u64]) -> Vec<u64> {
    let mut out = vec![0u64; bits.len().div_ceil(64)];
    for (i, b) in bits.iter().enumerate() {
        out[i / 64] |= (b & 1) << (i % 64);
    }
    out
}

impl Job {
    fn new<R: Rng + ?Sized>(req: &Request, rng: &mut R) -> Result<Job, ExecError> {
        Ok(match req {
            CorrelationRequest::ElementwiseTriple { shape } => Job::Elementwise {
                a: random_tensor(rng, shape)?,
                b: random_tensor(rng, shape)?,
            },
            CorrelationRequest::MatmulTriple { a_shape, b_shape } => {
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
                Job::Matmul {
                    a: random_tensor(rng, a_shape)?,
                    b: random_tensor(rng, b_shape)?,
                    m,
                    k,
                    n,
                }
            }
            CorrelationRequest::Trunc { .. }
            | CorrelationRequest::HolderMatmulTriple { .. }
            | CorrelationRequest::HolderConvTriple { .. } => {
                return Err(ExecError::protocol(
                    "truncation and input-holder correlations need a dealer",
                ))
            }
            CorrelationRequest::ConvTriple { .. } => {
                return Err(ExecError::protocol(
                    "convolution triples need a dealer; without one the compiler lowers a \
                     convolution to products of its patches (recompile the plan without a dealer)",
                ))
            }
            CorrelationRequest::RandomOts { .. } | CorrelationRequest::OneOf16Ots { .. } => {
                return Err(ExecError::protocol(
                    "random OTs come from the OT engine or a dealer, not from Paillier",
                ))
            }
            CorrelationRequest::DcfMsb { .. } => {
                return Err(ExecError::protocol(
                    "DCF keys come from a dealer, not from Paillier",
                ))
            }
            CorrelationRequest::AndTriples { bits } => {
                let words = CorrelationRequest::words_for_bits(*bits);
                Job::And {
                    bits: *bits,
                    a: (0..words).map(|_| rng.random()).collect(),
                    b: (0..words).map(|_| rng.random()).collect(),
                }
            }
            CorrelationRequest::DaBits { shape } => {
                let n = crate::sharing::ring::numel(shape)?;
                Job::DaBits {
                    shape: shape.clone(),
                    s: (0..n).map(|_| rng.random_range(0..2u64)).collect(),
                }
            }
            CorrelationRequest::MaskedBits { shape } => {
                let n = crate::sharing::ring::numel(shape)?;
                Job::MaskedBits {
                    shape: shape.clone(),
                    x: (0..n).map(|_| rng.random()).collect(),
                }
            }
        })
    }

    /// The slot layout of this job's cross terms.
    fn layout(&self, key_bits: u64) -> Result<Layout, ExecError> {
        let bound = match self {
            Job::Elementwise { .. } => Layout::product_bound(64, 64, 2),
            Job::Matmul { k, .. } => Layout::product_bound(64, 64, *k),
            Job::And { .. } => Layout::product_bound(1, 1, 2),
            Job::DaBits { .. } => Layout::product_bound(1, 1, 1),
            // Σ_{i<63} 2^{i+1}·bit < 2^64.
            Job::MaskedBits { .. } => 64,
        };
        let l = Layout::new(key_bits, bound)?;
        if let Job::And { .. } = self {
            Self::and_per(&l)?;
        }
        Ok(l)
    }

    /// Number of bit triples (whole words).
    fn and_count(a: &[u64]) -> usize {
        a.len() * 64
    }

    /// AND triples per ciphertext: three slots each (see [`Job::inputs`]).
    fn and_per(l: &Layout) -> Result<usize, ExecError> {
        if l.slots < 3 || l.slot_bits >= 62 {
            return Err(ExecError::crypto(
                "the Paillier key is too small for AND-triple generation",
            ));
        }
        Ok(l.slots / 3)
    }

    /// Party 0's plaintexts, from its halves.
    fn inputs(&self, l: &Layout) -> Vec<Input> {
        let s = l.slots;
        match self {
            Job::Elementwise { a, b } => a
                .data()
                .iter()
                .zip(b.data())
                .enumerate()
                .flat_map(|(o, (a, b))| [Input::at(o % s, *a), Input::at(o % s, *b)])
                .collect(),
            Job::Matmul { a, b, m, k, n } => {
                let (a, b) = (a.data(), b.data());
                let mut out = Vec::new();
                // Term 1: packed columns of A0, per row group.
                for (start, len) in chunks(*m, s) {
                    for l in 0..*k {
                        out.push(Input {
                            first: 0,
                            values: (start..start + len).map(|i| a[i * k + l]).collect(),
                        });
                    }
                }
                // Term 2: packed rows of B0, per column group.
                for (start, len) in chunks(*n, s) {
                    for l in 0..*k {
                        out.push(Input {
                            first: 0,
                            values: (start..start + len).map(|j| b[l * n + j]).collect(),
                        });
                    }
                }
                out
            }
            // One plaintext per triple: b0 in slot 3t, a0 in slot 3t + 1.
            // Raised to b1 + a1·2^s it holds b0·b1, a0·b1 + b0·a1 (the cross
            // sum, slot 3t + 1) and a0·a1, every slot masked.
            Job::And { a, b, .. } => {
                let n = Self::and_count(a);
                let per = s / 3;
                let (a, b) = (bits_of(a, n), bits_of(b, n));
                (0..n)
                    .map(|o| Input {
                        first: 3 * (o % per),
                        values: vec![b[o], a[o]],
                    })
                    .collect()
            }
            Job::DaBits { s: bits, .. } => bits
                .iter()
                .enumerate()
                .map(|(o, v)| Input::at(o % s, *v))
                .collect(),
            Job::MaskedBits { x, .. } => x
                .iter()
                .enumerate()
                .flat_map(|(e, w)| {
                    (0..63).map(move |i| Input::at(e % s, ((w >> i) & 1) << (i + 1)))
                })
                .collect(),
        }
    }

    /// Number of inputs party 0 sends (what party 1 expects).
    fn input_count(&self, l: &Layout) -> usize {
        let s = l.slots;
        match self {
            Job::Elementwise { a, .. } => 2 * a.len(),
            Job::Matmul { m, k, n, .. } => k * (m.div_ceil(s) + n.div_ceil(s)),
            Job::And { a, .. } => Self::and_count(a),
            Job::DaBits { s: bits, .. } => bits.len(),
            Job::MaskedBits { x, .. } => 63 * x.len(),
        }
    }

    /// Party 1's groups, from its halves (input indices as in [`Job::inputs`]).
    fn groups(&self, l: &Layout) -> Vec<Group> {
        let s = l.slots;
        match self {
            Job::Elementwise { a, b } => chunks(a.len(), s)
                .map(|(start, len)| Group {
                    terms: (start..start + len)
                        .flat_map(|o| [(2 * o, b.data()[o]), (2 * o + 1, a.data()[o])])
                        .collect(),
                    slots: len,
                })
                .collect(),
            Job::Matmul { a, b, m, k, n } => {
                let (a, b) = (a.data(), b.data());
                let mut out = Vec::new();
                // Term 1, (row group, j): Π_l col(A0)_l ^ B1[l][j].
                for (g, (_, len)) in chunks(*m, s).enumerate() {
                    for j in 0..*n {
                        out.push(Group {
                            terms: (0..*k).map(|l| (g * k + l, b[l * n + j])).collect(),
                            slots: len,
                        });
                    }
                }
                // Term 2, (i, column group): Π_l row(B0)_l ^ A1[i][l].
                let base = k * m.div_ceil(s);
                for i in 0..*m {
                    for (h, (_, len)) in chunks(*n, s).enumerate() {
                        out.push(Group {
                            terms: (0..*k).map(|l| (base + h * k + l, a[i * k + l])).collect(),
                            slots: len,
                        });
                    }
                }
                out
            }
            Job::And { a, b, .. } => {
                let n = Self::and_count(a);
                let (a, b) = (bits_of(a, n), bits_of(b, n));
                let w = l.slot_bits;
                chunks(n, s / 3)
                    .map(|(start, len)| Group {
                        terms: (start..start + len)
                            .map(|o| (o, b[o] | (a[o] << w)))
                            .collect(),
                        slots: 3 * len,
                    })
                    .collect()
            }
            Job::DaBits { s: bits, .. } => chunks(bits.len(), s)
                .map(|(start, len)| Group {
                    terms: (start..start + len).map(|o| (o, bits[o])).collect(),
                    slots: len,
                })
                .collect(),
            Job::MaskedBits { x, .. } => chunks(x.len(), s)
                .map(|(start, len)| Group {
                    terms: (start..start + len)
                        .flat_map(|e| (0..63).map(move |i| (63 * e + i, (x[e] >> i) & 1)))
                        .collect(),
                    slots: len,
                })
                .collect(),
        }
    }

    /// Slots read per group (what party 0 decrypts), as in [`Job::groups`].
    fn slot_counts(&self, l: &Layout) -> Vec<usize> {
        let s = l.slots;
        let lens = |n: usize| chunks(n, s).map(|(_, len)| len);
        match self {
            Job::Elementwise { a, .. } => lens(a.len()).collect(),
            Job::Matmul { m, n, .. } => {
                let mut out: Vec<usize> = lens(*m)
                    .flat_map(|len| std::iter::repeat_n(len, *n))
                    .collect();
                for _ in 0..*m {
                    out.extend(lens(*n));
                }
                out
            }
            Job::And { a, .. } => chunks(Self::and_count(a), s / 3)
                .map(|(_, len)| 3 * len)
                .collect(),
            Job::DaBits { s: bits, .. } => lens(bits.len()).collect(),
            Job::MaskedBits { x, .. } => lens(x.len()).collect(),
        }
    }

    /// This party's correlation from its halves and its shares of the
    /// cross terms (flattened in [`Job::groups`] order).
    fn finish(
        self,
        role: Party,
        req: &Request,
        l: &Layout,
        cross: Vec<u64>,
        store: &mut PrecomputedCorrelations,
    ) -> Result<(), ExecError> {
        let s = l.slots;
        match self {
            Job::Elementwise { a, b } => {
                let cross = RingTensor::new(cross, a.shape().to_vec())?;
                let c = a.mul(&b)?.add(&cross)?;
                store.push(req.clone(), triple(role, a, b, c))?;
            }
            Job::Matmul { a, b, m, k: _, n } => {
                let mut c = a.matmul(&b)?.into_parts();
                // Term 1: groups (row group g, j), slot t ↔ row g·S + t.
                let mut at = 0;
                for (start, len) in chunks(m, s) {
                    for j in 0..n {
                        for t in 0..len {
                            let o = (start + t) * n + j;
                            c.0[o] = c.0[o].wrapping_add(cross[at]);
                            at += 1;
                        }
                    }
                }
                // Term 2: groups (i, column group h), slot t ↔ column h·S + t.
                for i in 0..m {
                    for (start, len) in chunks(n, s) {
                        for t in 0..len {
                            let o = i * n + start + t;
                            c.0[o] = c.0[o].wrapping_add(cross[at]);
                            at += 1;
                        }
                    }
                }
                let c = RingTensor::new(c.0, c.1)?;
                store.push(req.clone(), triple(role, a, b, c))?;
            }
            Job::And { bits, a, b } => {
                // Three slots per triple; the cross sum is the middle one.
                let cross: Vec<u64> = cross.chunks(3).map(|c| c[1]).collect();
                let cross = pack_bits(&cross);
                let c = a
                    .iter()
                    .zip(&b)
                    .zip(&cross)
                    .map(|((a, b), x)| (a & b) ^ x)
                    .collect();
                store.push(
                    req.clone(),
                    CorrelationShare::AndTriples(AndTripleShare {
                        party: role,
                        bits,
                        a,
                        b,
                        c,
                    }),
                )?;
            }
            Job::DaBits { shape, s: bits } => {
                let arith = bits
                    .iter()
                    .zip(&cross)
                    .map(|(b, x)| b.wrapping_sub(x.wrapping_mul(2)))
                    .collect();
                store.push(
                    req.clone(),
                    CorrelationShare::DaBits(DaBitShare {
                        bits: pack_bits(&bits),
                        arith: Share::new(role, RingTensor::new(arith, shape)?),
                    }),
                )?;
            }
            Job::MaskedBits { shape, x } => {
                // The cross slot is already 2·(x0 ∧ x1).
                let rs = x
                    .iter()
                    .zip(&cross)
                    .map(|(x, c)| x.wrapping_sub(*c))
                    .collect();
                store.push(
                    req.clone(),
                    CorrelationShare::MaskedBits(MaskedBitsShare {
                        r: Share::new(role, RingTensor::new(rs, shape.clone())?),
                        r_bits: RingTensor::new(x, shape)?,
                    }),
                )?;
            }
        }
        Ok(())
    }
}

fn triple(role: Party, a: RingTensor, b: RingTensor, c: RingTensor) -> CorrelationShare {
    CorrelationShare::Triple(TripleShare {
        a: Share::new(role, a),
        b: Share::new(role, b),
        c: Share::new(role, c),
    })
}

/// Party 0 (the key owner) of the exchange that generates every
/// correlation the plan's run will ask for (Beaver triples and comparison
/// correlations, in protocol order). [`Party0::start`] draws its halves and
/// returns the ciphertexts to send; [`Party0::finish`] takes party 1's
/// replies and returns its correlations.
pub struct Party0 {
    kp: Keypair,
    order: Vec<Request>,
    jobs: Vec<Job>,
    layouts: Vec<Layout>,
}

impl Party0 {
    /// Draws party 0's halves for `order` and encrypts them (counted in
    /// `progress`): the state and the message for party 1.
    pub fn start<R: Rng + ?Sized>(
        kp: Keypair,
        order: Vec<Request>,
        rng: &mut R,
        progress: Option<&Progress>,
    ) -> Result<(Party0, Vec<BigUint>), ExecError> {
        let jobs = new_jobs(&order, rng)?;
        let (layouts, out) = party0_inputs(&kp, &jobs, progress)?;
        Ok((
            Party0 {
                kp,
                order,
                jobs,
                layouts,
            },
            out,
        ))
    }

    /// The key's size in bits (it sets the frame size).
    pub fn key_bits(&self) -> u64 {
        self.kp.public.bits()
    }

    /// How many ciphertexts party 1's reply holds.
    pub fn expected_replies(&self) -> usize {
        reply_count(&self.jobs, &self.layouts)
    }

    /// Party 0's correlations from party 1's `replies`.
    pub fn finish(self, replies: Vec<BigUint>) -> Result<PrecomputedCorrelations, ExecError> {
        let crosses = party0_crosses(&self.kp, &self.jobs, self.layouts, replies)?;
        finish(Party::P0, self.jobs, &self.order, crosses)
    }
}

/// Party 1 of the exchange: [`Party1::start`] draws its halves,
/// [`Party1::reply`] answers party 0's ciphertexts, and the
/// [`Party1Replied`] it leaves computes party 1's correlations while party
/// 0 decrypts.
pub struct Party1 {
    pk: PublicKey,
    order: Vec<Request>,
    jobs: Vec<Job>,
    layouts: Vec<Layout>,
}

/// Party 1 once its reply is made: what remains is local.
pub struct Party1Replied {
    order: Vec<Request>,
    jobs: Vec<Job>,
    crosses: Crosses,
}

impl Party1 {
    /// Draws party 1's halves for `order`, to be used under party 0's key `pk`.
    pub fn start<R: Rng + ?Sized>(
        pk: PublicKey,
        order: Vec<Request>,
        rng: &mut R,
    ) -> Result<Party1, ExecError> {
        let jobs = new_jobs(&order, rng)?;
        let layouts = layouts(&jobs, pk.bits())?;
        Ok(Party1 {
            pk,
            order,
            jobs,
            layouts,
        })
    }

    /// The key's size in bits (it sets the frame size).
    pub fn key_bits(&self) -> u64 {
        self.pk.bits()
    }

    /// How many ciphertexts party 0's message holds.
    pub fn expected_inputs(&self) -> usize {
        self.jobs
            .iter()
            .zip(&self.layouts)
            .map(|(j, l)| j.input_count(l))
            .sum()
    }

    /// The reply to party 0's ciphertexts `inputs` (checked), and the rest.
    pub fn reply<R: Rng + ?Sized>(
        self,
        inputs: Vec<BigUint>,
        rng: &mut R,
    ) -> Result<(Vec<BigUint>, Party1Replied), ExecError> {
        let (replies, crosses) = party1_reply(&self.pk, &self.jobs, inputs, rng)?;
        Ok((
            replies,
            Party1Replied {
                order: self.order,
                jobs: self.jobs,
                crosses,
            },
        ))
    }
}

impl Party1Replied {
    /// Party 1's correlations.
    pub fn finish(self) -> Result<PrecomputedCorrelations, ExecError> {
        finish(Party::P1, self.jobs, &self.order, self.crosses)
    }
}

/// Ciphertexts party 0 sends and party 1 returns for `req` under a key of
/// `key_bits` bits, as [`generate`] exchanges them: what the memory
/// estimate counts. Mirrors [`Job::input_count`] and [`reply_count`]
/// without drawing the halves (a test checks that they agree). Saturating:
/// the estimate only compares the result with a limit.
pub(crate) fn ciphertext_counts(req: &Request, key_bits: u64) -> Result<(u64, u64), ExecError> {
    let n = |shape: &[usize]| shape.iter().fold(1u64, |a, &d| a.saturating_mul(d as u64));
    let groups = |count: u64, per: u64| count.div_ceil(per.max(1));
    let layout = |bound| Layout::new(key_bits, bound);
    Ok(match req {
        CorrelationRequest::ElementwiseTriple { shape } => {
            let l = layout(Layout::product_bound(64, 64, 2))?;
            let n = n(shape);
            (n.saturating_mul(2), groups(n, l.slots as u64))
        }
        CorrelationRequest::MatmulTriple { a_shape, b_shape } => {
            let (m, k) = match a_shape.as_slice() {
                [m, k] => (*m as u64, *k),
                [k] => (1, *k),
                _ => return Err(ExecError::protocol("unsupported matrix triple shape")),
            };
            let cols = match b_shape.as_slice() {
                [_, c] => *c as u64,
                _ => 1,
            };
            let s = layout(Layout::product_bound(64, 64, k))?.slots as u64;
            let k = k as u64;
            let (row_groups, col_groups) = (groups(m, s), groups(cols, s));
            (
                k.saturating_mul(row_groups.saturating_add(col_groups)),
                row_groups
                    .saturating_mul(cols)
                    .saturating_add(m.saturating_mul(col_groups)),
            )
        }
        CorrelationRequest::Trunc { .. }
        | CorrelationRequest::HolderMatmulTriple { .. }
        | CorrelationRequest::HolderConvTriple { .. }
        | CorrelationRequest::ConvTriple { .. }
        | CorrelationRequest::RandomOts { .. }
        | CorrelationRequest::OneOf16Ots { .. }
        | CorrelationRequest::DcfMsb { .. } => (0, 0),
        CorrelationRequest::AndTriples { bits } => {
            let l = layout(Layout::product_bound(1, 1, 2))?;
            let count = (CorrelationRequest::words_for_bits(*bits) as u64).saturating_mul(64);
            (count, groups(count, l.slots as u64 / 3))
        }
        CorrelationRequest::DaBits { shape } => {
            let l = layout(Layout::product_bound(1, 1, 1))?;
            let n = n(shape);
            (n, groups(n, l.slots as u64))
        }
        CorrelationRequest::MaskedBits { shape } => {
            let l = layout(64)?;
            let n = n(shape);
            (n.saturating_mul(63), groups(n, l.slots as u64))
        }
    })
}

fn new_jobs<R: Rng + ?Sized>(order: &[Request], rng: &mut R) -> Result<Vec<Job>, ExecError> {
    order.iter().map(|r| Job::new(r, rng)).collect()
}

fn layouts(jobs: &[Job], key_bits: u64) -> Result<Vec<Layout>, ExecError> {
    jobs.iter().map(|j| j.layout(key_bits)).collect()
}

fn reply_count(jobs: &[Job], layouts: &[Layout]) -> usize {
    jobs.iter()
        .zip(layouts)
        .map(|(j, l)| j.slot_counts(l).len())
        .sum()
}

/// Party 0's ciphertexts, all jobs in order, counted in `progress`.
fn party0_inputs(
    kp: &Keypair,
    jobs: &[Job],
    progress: Option<&Progress>,
) -> Result<(Vec<Layout>, Vec<BigUint>), ExecError> {
    use std::sync::atomic::Ordering;
    let layouts = layouts(jobs, kp.public.bits())?;
    let inputs: Vec<Vec<Input>> = jobs
        .iter()
        .zip(&layouts)
        .map(|(j, l)| j.inputs(l))
        .collect();
    if let Some(p) = progress {
        let total = inputs.iter().map(Vec::len).sum::<usize>() as u64;
        p.encrypt_total.store(total, Ordering::Relaxed);
    }
    let done = progress.map(|p| &p.encrypt_done);
    let mut out = Vec::new();
    for (inp, l) in inputs.iter().zip(&layouts) {
        out.extend(
            crossterms::encrypt_inputs(kp, l, inp, done)?
                .into_iter()
                .map(|c| c.as_biguint().clone()),
        );
    }
    Ok((layouts, out))
}

/// Validates `cts` as ciphertexts and splits them into runs of `counts`.
fn split(
    pk: &PublicKey,
    cts: Vec<BigUint>,
    counts: impl Iterator<Item = usize>,
) -> Result<Vec<Vec<Ciphertext>>, ExecError> {
    let all: Vec<Ciphertext> = cts
        .into_par_iter()
        .map(|c| Ciphertext::from_biguint(pk, c).map_err(ExecError::from))
        .collect::<Result<_, _>>()?;
    let mut it = all.into_iter();
    let out: Vec<Vec<Ciphertext>> = counts.map(|k| it.by_ref().take(k).collect()).collect();
    if it.next().is_some() {
        return Err(ExecError::protocol(
            "too many ciphertexts for correlation generation",
        ));
    }
    Ok(out)
}

/// Party 1: its replies (all jobs in order) and its cross shares.
fn party1_reply<R: Rng + ?Sized>(
    pk: &PublicKey,
    jobs: &[Job],
    got: Vec<BigUint>,
    rng: &mut R,
) -> Result<(Vec<BigUint>, Crosses), ExecError> {
    let layouts = layouts(jobs, pk.bits())?;
    let counts: Vec<usize> = jobs
        .iter()
        .zip(&layouts)
        .map(|(j, l)| j.input_count(l))
        .collect();
    if got.len() != counts.iter().sum::<usize>() {
        return Err(ExecError::protocol(
            "wrong number of ciphertexts for correlation generation",
        ));
    }
    let inputs = split(pk, got, counts.into_iter())?;
    let mut replies = Vec::new();
    let mut crosses = Vec::with_capacity(jobs.len());
    for ((j, l), inputs) in jobs.iter().zip(layouts).zip(inputs) {
        let (reply, mine) = crossterms::combine(pk, &l, &inputs, &j.groups(&l), rng)?;
        replies.extend(reply.into_iter().map(|c| c.as_biguint().clone()));
        crosses.push((l, mine));
    }
    Ok((replies, crosses))
}

/// Party 0: its cross shares from party 1's replies.
fn party0_crosses(
    kp: &Keypair,
    jobs: &[Job],
    layouts: Vec<Layout>,
    back: Vec<BigUint>,
) -> Result<Crosses, ExecError> {
    if back.len() != reply_count(jobs, &layouts) {
        return Err(ExecError::protocol(
            "wrong number of replies for correlation generation",
        ));
    }
    let counts: Vec<Vec<usize>> = jobs
        .iter()
        .zip(&layouts)
        .map(|(j, l)| j.slot_counts(l))
        .collect();
    let replies = split(&kp.public, back, counts.iter().map(Vec::len))?;
    replies
        .into_iter()
        .zip(counts)
        .zip(layouts)
        .map(|((cts, counts), l)| Ok((l, crossterms::decrypt_slots(kp, &l, &cts, &counts)?)))
        .collect()
}

fn finish(
    role: Party,
    jobs: Vec<Job>,
    order: &[Request],
    crosses: Crosses,
) -> Result<PrecomputedCorrelations, ExecError> {
    let mut store = PrecomputedCorrelations::new(role);
    for ((job, req), (l, cross)) in jobs.into_iter().zip(order).zip(crosses) {
        job.finish(role, req, &l, cross, &mut store)?;
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sharing::{
        driver::run_two_party, reconstruct, share_with_rng, Engine, FixedPoint, TruncMode,
    };
    use plan::NonlinearOp;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    /// Both parties' stores for `order`, from the two state machines (the
    /// messages handed over directly instead of through a transport).
    fn stores(order: &[Request], seed: u64) -> (PrecomputedCorrelations, PrecomputedCorrelations) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let kp = Keypair::generate_insecure_for_tests(512, &mut rng).unwrap();
        let pk = kp.public.clone();
        let (p0, msg) = Party0::start(kp, order.to_vec(), &mut rng, None).unwrap();
        let p1 = Party1::start(pk, order.to_vec(), &mut rng).unwrap();
        assert_eq!(p0.key_bits(), p1.key_bits());
        assert_eq!(msg.len(), p1.expected_inputs());
        let (reply, p1) = p1.reply(msg, &mut rng).unwrap();
        assert_eq!(reply.len(), p0.expected_replies());
        (p0.finish(reply).unwrap(), p1.finish().unwrap())
    }

    #[test]
    fn ciphertext_counts_agree_with_the_jobs() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let order = vec![
            CorrelationRequest::ElementwiseTriple { shape: vec![5, 7] },
            CorrelationRequest::MatmulTriple {
                a_shape: vec![9, 4],
                b_shape: vec![4, 30],
            },
            CorrelationRequest::MatmulTriple {
                a_shape: vec![4],
                b_shape: vec![4],
            },
            CorrelationRequest::AndTriples { bits: 700 },
            CorrelationRequest::DaBits { shape: vec![65] },
            CorrelationRequest::MaskedBits { shape: vec![3, 2] },
        ];
        for key_bits in [1024u64, 2048, 3072] {
            for req in &order {
                let job = Job::new(req, &mut rng).unwrap();
                let l = job.layout(key_bits).unwrap();
                let want = (
                    job.input_count(&l) as u64,
                    reply_count(std::slice::from_ref(&job), &[l]) as u64,
                );
                assert_eq!(ciphertext_counts(req, key_bits).unwrap(), want, "{req:?}");
            }
        }
    }

    #[test]
    fn triples_reconstruct_to_products() {
        let reqs = crate::preprocess::checks::triple_requests();
        let (mut s0, mut s1) = stores(&reqs, 1);
        crate::preprocess::checks::assert_consistent(&mut s0, &mut s1, &reqs);
    }

    #[test]
    fn compare_correlations_are_consistent() {
        let reqs = crate::preprocess::checks::compare_requests();
        let (mut s0, mut s1) = stores(&reqs, 2);
        crate::preprocess::checks::assert_consistent(&mut s0, &mut s1, &reqs);
    }

    #[test]
    fn malformed_replies_are_errors() {
        let order = vec![CorrelationRequest::DaBits { shape: vec![3] }];
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let kp = Keypair::generate_insecure_for_tests(512, &mut rng).unwrap();
        let jobs = new_jobs(&order, &mut rng).unwrap();
        let (layouts, msg) = party0_inputs(&kp, &jobs, None).unwrap();
        assert_eq!(msg.len(), 3);
        // Wrong count; right count with a value outside Z*_{n²}.
        assert!(party1_reply(&kp.public, &jobs, vec![], &mut rng).is_err());
        let ones: Vec<BigUint> = vec![1u32.into(); 2];
        assert!(party1_reply(&kp.public, &jobs, ones, &mut rng).is_err());
        let mut bad = msg.clone();
        bad[1] = BigUint::ZERO;
        assert!(party1_reply(&kp.public, &jobs, bad, &mut rng).is_err());
        assert!(party0_crosses(&kp, &jobs, layouts.clone(), vec![BigUint::ZERO]).is_err());
        assert!(party0_crosses(&kp, &jobs, layouts.clone(), vec![]).is_err());
        let (reply, _) = party1_reply(&kp.public, &jobs, msg, &mut rng).unwrap();
        assert!(party0_crosses(&kp, &jobs, layouts, reply).is_ok());
    }

    fn cfg() -> Config {
        Config {
            cases: 6,
            rng_seed: RngSeed::Fixed(0x2b1d),
            failure_persistence: None,
            ..Config::default()
        }
    }

    /// Runs `op` on shares of `args` with correlations from the two-party
    /// source; returns the opened result.
    fn run_op(op: &NonlinearOp, args: &[Vec<f64>], shapes: &[Vec<usize>], seed: u64) -> Vec<f64> {
        let fp = FixedPoint::default();
        let order =
            nonlinear::request_order(op, shapes, crate::sharing::SelectKind::Beaver, 63).unwrap();
        let (s0, s1) = stores(&order, seed);
        let mut e0 = Engine::new(fp, TruncMode::Local, s0);
        let mut e1 = Engine::new(fp, TruncMode::Local, s1);
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 7);
        let (a0, a1): (Vec<Share>, Vec<Share>) = args
            .iter()
            .zip(shapes)
            .map(|(v, s)| share_with_rng(&fp.encode_tensor(v, s).unwrap(), &mut rng).unwrap())
            .unzip();
        let ((r0, _), (r1, _)) = run_two_party(
            |ex| nonlinear::run(&mut e0, ex, op, 63, &a0.iter().collect::<Vec<_>>()),
            |ex| nonlinear::run(&mut e1, ex, op, 63, &a1.iter().collect::<Vec<_>>()),
        )
        .unwrap();
        // Every generated correlation was used, in order.
        assert_eq!(e0.correlations_mut().remaining(), 0);
        assert_eq!(e0.correlations_mut().remaining(), 0);
        fp.decode_tensor(&reconstruct(&r0, &r1).unwrap())
    }

    fn close(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-3, "got {g}, want {w}");
        }
    }

    use crate::exec::nonlinear;

    proptest! {
        #![proptest_config(cfg())]

        #[test]
        fn comparisons_with_two_party_correlations(
            xs in proptest::collection::vec(-1000.0f64..1000.0, 1..6),
            seed in any::<u64>(),
        ) {
            // Multiples of 1/8: exact in fixed point, so ties are ties.
            let xs: Vec<f64> = xs.iter().map(|v| (v * 8.0).round() / 8.0).collect();
            let n = xs.len();
            let mut ys: Vec<f64> = xs.iter().rev().map(|v| v * 0.5 - 1.0).collect();
            ys[0] = xs[0]; // a tie
            let shape = vec![n];
            let relu = run_op(&NonlinearOp::Relu, std::slice::from_ref(&xs), std::slice::from_ref(&shape), seed);
            close(&relu, &xs.iter().map(|v| v.max(0.0)).collect::<Vec<_>>());
            let max = run_op(&NonlinearOp::Max, &[xs.clone(), ys.clone()], &[shape.clone(), shape.clone()], seed);
            close(&max, &xs.iter().zip(&ys).map(|(a, b)| a.max(*b)).collect::<Vec<_>>());
            let min = run_op(&NonlinearOp::Min, &[xs.clone(), ys.clone()], &[shape.clone(), shape.clone()], seed);
            close(&min, &xs.iter().zip(&ys).map(|(a, b)| a.min(*b)).collect::<Vec<_>>());
            let clamp = run_op(&NonlinearOp::Clamp { lo: -8.0, hi: 8.0 }, std::slice::from_ref(&xs), std::slice::from_ref(&shape), seed);
            close(&clamp, &xs.iter().map(|v| v.clamp(-8.0, 8.0)).collect::<Vec<_>>());
            // Rows of the matrix [x; y] (2 × n): max and argmax along the last axis.
            let mut m = xs.clone();
            m.extend(&ys);
            let mshape = vec![2, n];
            let mx = run_op(&NonlinearOp::MaxReduce, std::slice::from_ref(&m), std::slice::from_ref(&mshape), seed);
            let am = run_op(&NonlinearOp::Argmax, std::slice::from_ref(&m), std::slice::from_ref(&mshape), seed);
            for (r, row) in m.chunks(n).enumerate() {
                let best = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let idx = row.iter().position(|v| *v == best).unwrap();
                close(&[mx[r]], &[best]);
                prop_assert_eq!(am[r], idx as f64);
            }
        }
    }
}
