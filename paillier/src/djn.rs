//! Damgård–Jurik–Nielsen public-key encryption with a fixed-base table, and
//! an offline pool of randomisers.

use num_bigint::{BigRng010 as BigRng, BigUint};
use rand::CryptoRng;
use rayon::prelude::*;

use super::keys::PublicKey;
use super::monty::Monty;
use super::ops::Ciphertext;
use super::{PaillierError, Result, DJN_EXPONENT_BITS};

/// Window width of the fixed-base table.
pub const WINDOW_BITS: u32 = 6;

/// `table[i][d-1] = h_s^{d·2^{w·i}} mod n²` for `d ∈ [1, 2^w)`, in
/// Montgomery form. The private key's tables modulo `p²` and `q²` are
/// secret, so every table is wiped on drop.
pub struct FixedBaseTable {
    rows: Vec<Vec<Vec<u64>>>,
}

impl Drop for FixedBaseTable {
    fn drop(&mut self) {
        for row in self.rows.iter_mut() {
            for entry in row.iter_mut() {
                zeroize::Zeroize::zeroize(entry);
            }
        }
    }
}

impl FixedBaseTable {
    pub(crate) fn build(base: &BigUint, ctx: &Monty, exp_bits: u64) -> Self {
        let w = WINDOW_BITS as u64;
        let nrows = exp_bits.div_ceil(w) as usize;
        let mut s = ctx.scratch();
        // row bases g_i = base^{2^{w i}}
        let mut row_bases = Vec::with_capacity(nrows);
        let mut g = ctx.to_mont(base, &mut s);
        let mut tmp = vec![0u64; ctx.limbs()];
        for _ in 0..nrows {
            row_bases.push(g.clone());
            for _ in 0..w {
                ctx.sqr(&g, &mut tmp, &mut s);
                std::mem::swap(&mut g, &mut tmp);
            }
        }
        let per_row = (1usize << w) - 1;
        let rows = row_bases
            .par_iter()
            .map(|gi| {
                let mut s = ctx.scratch();
                let mut row = Vec::with_capacity(per_row);
                row.push(gi.clone());
                for d in 1..per_row {
                    let mut next = vec![0u64; ctx.limbs()];
                    ctx.mul(&row[d - 1], gi, &mut next, &mut s);
                    row.push(next);
                }
                row
            })
            .collect();
        FixedBaseTable { rows }
    }

    /// `base^α mod n²` for `α` of at most the table's exponent length.
    ///
    /// Variable-time in `α`: it skips zero digits and indexes the table by
    /// `α`'s digits, so cache and timing depend on the encryption
    /// randomness (see the crate docs, "Timing").
    pub(crate) fn pow_vartime(&self, alpha: &BigUint, ctx: &Monty) -> BigUint {
        let digits = alpha.to_u64_digits();
        let w = WINDOW_BITS as u64;
        let mut s = ctx.scratch();
        let mut tmp = vec![0u64; ctx.limbs()];
        let mut acc: Option<Vec<u64>> = None;
        for (i, row) in self.rows.iter().enumerate() {
            let pos = i as u64 * w;
            let idx = (pos / 64) as usize;
            let off = pos % 64;
            let mut v = digits.get(idx).copied().unwrap_or(0) >> off;
            if off + w > 64 {
                v |= digits.get(idx + 1).copied().unwrap_or(0) << (64 - off);
            }
            let d = (v & ((1 << w) - 1)) as usize;
            if d > 0 {
                let t = &row[d - 1];
                match acc.as_mut() {
                    Some(a) => {
                        ctx.mul(a, t, &mut tmp, &mut s);
                        std::mem::swap(a, &mut tmp);
                    }
                    None => acc = Some(t.clone()),
                }
            }
        }
        match acc {
            Some(a) => ctx.out_of_mont(&a, &mut s),
            None => BigUint::from(1u32),
        }
    }

    /// Number of stored entries (for diagnostics).
    pub fn len(&self) -> usize {
        self.rows.iter().map(Vec::len).sum()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl PublicKey {
    /// The lazily built fixed-base table for `h_s` (shared between clones).
    pub fn djn_table(&self) -> &FixedBaseTable {
        self.table
            .get_or_init(|| FixedBaseTable::build(&self.hs, self.mont_n2(), DJN_EXPONENT_BITS))
    }

    /// A fresh randomiser `h_s^α mod n²` with a random 256-bit `α`.
    pub fn djn_randomizer<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> BigUint {
        let alpha = rng.random_biguint(DJN_EXPONENT_BITS);
        self.djn_table().pow_vartime(&alpha, self.mont_n2())
    }

    /// Public-key encryption (DJN short exponent) of `m ∈ [0, n)` with the
    /// OS-seeded CSPRNG.
    pub fn encrypt(&self, m: &BigUint) -> Result<Ciphertext> {
        self.encrypt_with_rng(m, &mut rand::rng())
    }

    /// Public-key encryption (DJN) with a caller-supplied RNG.
    pub fn encrypt_with_rng<R: CryptoRng + ?Sized>(
        &self,
        m: &BigUint,
        rng: &mut R,
    ) -> Result<Ciphertext> {
        if m >= &self.n {
            return Err(PaillierError::PlaintextOutOfRange);
        }
        let rn = self.djn_randomizer(rng);
        Ok(self.combine(m, &rn))
    }

    /// Multiply a ciphertext by a fresh randomiser (same plaintext).
    pub fn rerandomize(&self, c: &Ciphertext) -> Ciphertext {
        let rn = self.djn_randomizer(&mut rand::rng());
        Ciphertext::new_unchecked(c.as_biguint() * rn % &self.n2)
    }
}

/// Randomisers `h_s^α` precomputed offline; online encryption is one
/// multiplication modulo `n²`. Each randomiser is used once.
pub struct RandomizerPool {
    pk: PublicKey,
    items: Vec<BigUint>,
}

impl std::fmt::Debug for RandomizerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RandomizerPool")
            .field("remaining", &self.items.len())
            .finish_non_exhaustive()
    }
}

impl RandomizerPool {
    /// An empty pool for `pk`.
    pub fn new(pk: &PublicKey) -> Self {
        RandomizerPool {
            pk: pk.clone(),
            items: Vec::new(),
        }
    }

    /// Add `count` randomisers (computed in parallel) from the OS CSPRNG.
    pub fn fill(&mut self, count: usize) {
        self.fill_with_rng(count, &mut rand::rng())
    }

    /// Add `count` randomisers drawn with `rng`.
    pub fn fill_with_rng<R: CryptoRng + ?Sized>(&mut self, count: usize, rng: &mut R) {
        let alphas: Vec<BigUint> = (0..count)
            .map(|_| rng.random_biguint(DJN_EXPONENT_BITS))
            .collect();
        let table = self.pk.djn_table();
        let ctx = self.pk.mont_n2();
        let fresh: Vec<BigUint> = alphas
            .par_iter()
            .map(|a| table.pow_vartime(a, ctx))
            .collect();
        self.items.extend(fresh);
    }

    /// Randomisers left.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the pool is exhausted.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Encrypt `m ∈ [0, n)` with one pooled randomiser (one multiplication).
    pub fn encrypt(&mut self, m: &BigUint) -> Result<Ciphertext> {
        if m >= self.pk.n() {
            return Err(PaillierError::PlaintextOutOfRange);
        }
        let rn = self.items.pop().ok_or(PaillierError::PoolEmpty)?;
        Ok(self.pk.combine(m, &rn))
    }

    /// Re-randomise with one pooled randomiser.
    pub fn rerandomize(&mut self, c: &Ciphertext) -> Result<Ciphertext> {
        let rn = self.items.pop().ok_or(PaillierError::PoolEmpty)?;
        Ok(Ciphertext::new_unchecked(
            c.as_biguint() * rn % self.pk.n_squared(),
        ))
    }
}
