//! The one primitive of dealer-free preprocessing: packed, masked cross
//! terms under party 0's Paillier key (Gilboa style).
//!
//! Party 0 (the key owner) encrypts plaintexts whose values already sit in
//! slot positions ([`Input`]: `Σ_t v_t · 2^{s·(first + t)}` for a slot width
//! `s`; a single value pre-shifted into slot `q` is the case of one value).
//! Party 1 builds each output ciphertext ([`Group`]) as one
//! multi-exponentiation `Π Enc(input_i)^{e_i}` (its own values as
//! exponents) times a *fresh* encryption of a packed mask
//! `R = Σ_q R_q · 2^{s·q}` (each `R_q` uniform below `2^(B + 40)` where every
//! slot's cross sum is below `2^B`), so the reply's randomness is fresh and
//! each slot is statistically hidden (distance ≤ 2^-40). Party 0 decrypts one
//! ciphertext per group and keeps each slot mod 2^64; party 1 keeps
//! `-R_q mod 2^64`. The two are additive shares of the slot's integer cross
//! sum mod 2^64 (and, reduced mod 2, XOR shares of its parity).
//!
//! The slot width is `s = B + 40 + 1` (mask plus one carry bit), so slots
//! never carry into each other, and a ciphertext holds
//! `S = ⌊(|n| − 2) / s⌋` slots: the packed plaintext stays below
//! `2^(|n|−2) < n`, so nothing wraps modulo `n`.
//!
//! Elementwise Beaver triples, matrix triples (packed along rows for one
//! term, along columns for the other), AND triples, daBits and masked bits
//! (`preprocess::twoparty`) are all this primitive with different inputs and
//! groups.

use crate::exec::ExecError;
use crate::paillier::{Ciphertext, Keypair, PublicKey};
use num_bigint::{BigInt, BigRng010 as BigRng, BigUint};
use rand::Rng;
use rayon::prelude::*;

/// Statistical slack of every slot mask, in bits.
pub const MASK_SLACK_BITS: u32 = plan::params::MASK_SLACK_BITS;

/// Slot layout for cross sums below `2^bound_bits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Every slot's cross sum is below `2^bound_bits`.
    pub bound_bits: u32,
    /// Mask bits: `bound_bits + 40`.
    pub mask_bits: u32,
    /// Slot width `s = mask_bits + 1`.
    pub slot_bits: u32,
    /// Slots per ciphertext `S`.
    pub slots: usize,
}

impl Layout {
    /// The layout for a key of `key_bits` bits and cross sums below
    /// `2^bound_bits`.
    pub fn new(key_bits: u64, bound_bits: u32) -> Result<Self, ExecError> {
        let mask_bits = bound_bits + MASK_SLACK_BITS;
        let slot_bits = mask_bits + 1;
        let slots = (key_bits.saturating_sub(2) / u64::from(slot_bits)) as usize;
        if slots == 0 {
            return Err(ExecError::crypto(
                "the Paillier key is too small for one cross-term slot",
            ));
        }
        Ok(Layout {
            bound_bits,
            mask_bits,
            slot_bits,
            slots,
        })
    }

    /// Bits of a sum of `terms` products of a `a_bits`-bit and a
    /// `b_bits`-bit value: `a_bits + b_bits + ⌈log2 terms⌉`.
    pub fn product_bound(a_bits: u32, b_bits: u32, terms: usize) -> u32 {
        let log = if terms <= 1 {
            0
        } else {
            usize::BITS - (terms - 1).leading_zeros()
        };
        a_bits + b_bits + log
    }

    fn shift(&self, slot: usize) -> usize {
        slot * self.slot_bits as usize
    }
}

/// One plaintext party 0 encrypts: `values[t]` in slot `first + t`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    pub first: usize,
    pub values: Vec<u64>,
}

impl Input {
    /// One value pre-shifted into slot `slot`.
    pub fn at(slot: usize, value: u64) -> Self {
        Input {
            first: slot,
            values: vec![value],
        }
    }
}

/// One ciphertext party 1 returns: `Π inputs[i]^e` over `terms`, whose
/// first `slots` slots party 0 reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub terms: Vec<(usize, u64)>,
    pub slots: usize,
}

/// Party 0: encrypts every input (in parallel), counting each in `done`.
/// Errors if an input does not fit the layout.
pub fn encrypt_inputs(
    kp: &Keypair,
    layout: &Layout,
    inputs: &[Input],
    done: Option<&std::sync::atomic::AtomicU64>,
) -> Result<Vec<Ciphertext>, ExecError> {
    inputs
        .par_iter()
        .map(|inp| {
            if inp.first + inp.values.len() > layout.slots {
                return Err(ExecError::protocol("cross-term input exceeds the slots"));
            }
            let mut m = BigUint::ZERO;
            for v in inp.values.iter().rev() {
                m = (m << layout.slot_bits as usize) + BigUint::from(*v);
            }
            m <<= layout.shift(inp.first);
            // Key-owner DJN encryption (same distribution as the public
            // one, half-size arithmetic via the CRT; measured faster).
            let c = kp.private.encrypt_djn_crt(&m)?;
            if let Some(d) = done {
                d.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(c)
        })
        .collect()
}

/// Party 1: one ciphertext per group, and its own shares (`-R_q mod 2^64`,
/// flattened over groups and slots in order). Exponent bounds are the
/// caller's promise (they enter `layout.bound_bits`); indices are checked.
pub fn combine<R: Rng + ?Sized>(
    pk: &PublicKey,
    layout: &Layout,
    inputs: &[Ciphertext],
    groups: &[Group],
    rng: &mut R,
) -> Result<(Vec<Ciphertext>, Vec<u64>), ExecError> {
    // Masks drawn sequentially from the caller's CSPRNG.
    let masks: Vec<Vec<BigUint>> = groups
        .iter()
        .map(|g| {
            (0..g.slots)
                .map(|_| rng.random_biguint(u64::from(layout.mask_bits)))
                .collect()
        })
        .collect();
    let results: Vec<Ciphertext> = groups
        .par_iter()
        .zip(&masks)
        .map(|(g, mask)| {
            if g.slots > layout.slots {
                return Err(ExecError::protocol("cross-term group exceeds the slots"));
            }
            let mut bases = Vec::with_capacity(g.terms.len());
            let mut exps = Vec::with_capacity(g.terms.len());
            for &(i, e) in &g.terms {
                if e == 0 {
                    continue;
                }
                let c = inputs
                    .get(i)
                    .ok_or_else(|| ExecError::protocol("cross-term input index out of range"))?;
                bases.push(c.clone());
                exps.push(BigInt::from(e));
            }
            let mut r = BigUint::ZERO;
            for m in mask.iter().rev() {
                r = (r << layout.slot_bits as usize) + m;
            }
            // A fresh encryption of the mask: re-randomises the product too.
            let enc_r = pk.encrypt(&r)?;
            Ok(if bases.is_empty() {
                enc_r
            } else {
                pk.add(&pk.dot(&bases, &exps)?, &enc_r)
            })
        })
        .collect::<Result<_, ExecError>>()?;
    let mine = masks
        .iter()
        .flatten()
        .map(|m| low_u64(m).wrapping_neg())
        .collect();
    Ok((results, mine))
}

/// Party 0: decrypts each reply and reads its first `slots[g]` slots mod
/// 2^64 (flattened in order).
pub fn decrypt_slots(
    kp: &Keypair,
    layout: &Layout,
    replies: &[Ciphertext],
    slots: &[usize],
) -> Result<Vec<u64>, ExecError> {
    if replies.len() != slots.len() {
        return Err(ExecError::protocol(
            "wrong number of cross-term ciphertexts",
        ));
    }
    if slots.iter().any(|s| *s > layout.slots) {
        return Err(ExecError::protocol("cross-term group exceeds the slots"));
    }
    let per: Vec<Vec<u64>> = replies
        .par_iter()
        .zip(slots)
        .map(|(c, &k)| {
            let m = kp.private.decrypt(c);
            // A slot narrower than 64 bits must not pick up its neighbour.
            let keep = if layout.slot_bits >= 64 {
                u64::MAX
            } else {
                (1u64 << layout.slot_bits) - 1
            };
            (0..k)
                .map(|q| low_u64(&(&m >> layout.shift(q))) & keep)
                .collect()
        })
        .collect();
    Ok(per.into_iter().flatten().collect())
}

fn low_u64(x: &BigUint) -> u64 {
    x.iter_u64_digits().next().unwrap_or(0)
}

/// Splits `n` outputs into groups of at most `slots`: `(start, len)`.
pub fn chunks(n: usize, slots: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..n.div_ceil(slots.max(1))).map(move |g| {
        let start = g * slots;
        (start, slots.min(n - start))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    fn key(bits: u64) -> Keypair {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(bits);
        Keypair::generate_insecure_for_tests(bits, &mut rng).unwrap()
    }

    /// Runs the primitive end to end; returns the reconstructed slots.
    fn run(kp: &Keypair, layout: &Layout, inputs: &[Input], groups: &[Group]) -> Vec<u64> {
        let cts = encrypt_inputs(kp, layout, inputs, None).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let (replies, mine) = combine(&kp.public, layout, &cts, groups, &mut rng).unwrap();
        let slots: Vec<usize> = groups.iter().map(|g| g.slots).collect();
        let theirs = decrypt_slots(kp, layout, &replies, &slots).unwrap();
        theirs
            .iter()
            .zip(&mine)
            .map(|(a, b)| a.wrapping_add(*b))
            .collect()
    }

    #[test]
    fn preshifted_products_equal_plain_cross_sums() {
        let kp = key(1024);
        let layout = Layout::new(1024, Layout::product_bound(64, 64, 2)).unwrap();
        assert_eq!(layout.slot_bits, 170);
        assert_eq!(layout.slots, 6);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        // 13 elements: not a multiple of the slot count; edge values included.
        let n = 13;
        let mut a0: Vec<u64> = (0..n).map(|_| rng.random()).collect();
        let mut b0: Vec<u64> = (0..n).map(|_| rng.random()).collect();
        let mut a1: Vec<u64> = (0..n).map(|_| rng.random()).collect();
        let b1: Vec<u64> = (0..n).map(|_| rng.random()).collect();
        a0[0] = u64::MAX;
        b0[0] = u64::MAX;
        a1[0] = u64::MAX;
        a0[1] = 0;
        a1[2] = 0;
        b0[3] = u64::MAX;
        let mut inputs = Vec::new();
        for o in 0..n {
            inputs.push(Input::at(o % layout.slots, a0[o]));
            inputs.push(Input::at(o % layout.slots, b0[o]));
        }
        let groups: Vec<Group> = chunks(n, layout.slots)
            .map(|(s, len)| Group {
                terms: (s..s + len)
                    .flat_map(|o| [(2 * o, b1[o]), (2 * o + 1, a1[o])])
                    .collect(),
                slots: len,
            })
            .collect();
        assert_eq!(groups.len(), 3);
        let got = run(&kp, &layout, &inputs, &groups);
        let want: Vec<u64> = (0..n)
            .map(|o| {
                a0[o]
                    .wrapping_mul(b1[o])
                    .wrapping_add(b0[o].wrapping_mul(a1[o]))
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn packed_inputs_and_bit_exponents() {
        let kp = key(768);
        // Bits: sums of 3 bit products.
        let layout = Layout::new(768, Layout::product_bound(1, 1, 3)).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let s = layout.slots;
        let n = s + 3;
        // Three packed inputs per chunk, each holding that chunk's bits.
        let x: Vec<Vec<u64>> = (0..3)
            .map(|_| (0..n).map(|_| rng.random_range(0..2)).collect())
            .collect();
        let y: Vec<u64> = (0..3).map(|_| rng.random_range(0..2)).collect();
        let mut inputs = Vec::new();
        let mut groups = Vec::new();
        for (start, len) in chunks(n, s) {
            let base = inputs.len();
            for xi in &x {
                inputs.push(Input {
                    first: 0,
                    values: xi[start..start + len].to_vec(),
                });
            }
            groups.push(Group {
                terms: (0..3).map(|i| (base + i, y[i])).collect(),
                slots: len,
            });
        }
        let got = run(&kp, &layout, &inputs, &groups);
        let want: Vec<u64> = (0..n)
            .map(|o| (0..3).map(|i| x[i][o] * y[i]).sum())
            .collect();
        assert_eq!(got, want);
        // Reduced mod 2 the shares are XOR shares of the parity.
        assert!(got.iter().zip(&want).all(|(g, w)| g & 1 == w & 1));
    }

    #[test]
    fn bad_indices_and_oversized_groups_are_errors() {
        let kp = key(512);
        let layout = Layout::new(512, 10).unwrap();
        let cts = encrypt_inputs(&kp, &layout, &[Input::at(0, 1)], None).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let bad = Group {
            terms: vec![(5, 1)],
            slots: 1,
        };
        assert!(combine(&kp.public, &layout, &cts, &[bad], &mut rng).is_err());
        let big = Group {
            terms: vec![],
            slots: layout.slots + 1,
        };
        assert!(combine(&kp.public, &layout, &cts, &[big], &mut rng).is_err());
        assert!(encrypt_inputs(&kp, &layout, &[Input::at(layout.slots, 1)], None).is_err());
        assert!(decrypt_slots(&kp, &layout, &cts, &[]).is_err());
        assert!(Layout::new(40, 64).is_err());
    }
}
