//! Packing several signed values into one plaintext.
//!
//! # Slot layout
//!
//! A packed plaintext is the signed integer `P = Σ_i s_i · 2^{i·W}`, slot 0 in
//! the least significant bits, encoded into `Z_n` like any signed integer.
//! Slots hold signed values in balanced form: unpacking takes the low `W`
//! bits, reads them as a two's-complement-style value in `[-2^{W-1}, 2^{W-1})`,
//! subtracts it and shifts — so carries and borrows between slots are undone
//! exactly as long as every slot stays in range.
//!
//! # Limits
//!
//! With inputs `|x| < 2^v`, public weights `|w| < 2^u` and dot products of at
//! most `d` terms, a slot result satisfies `|Σ w·x| < 2^B`,
//! `B = v + u + ⌈log₂ d⌉`. A statistical mask `r ∈ [0, 2^{B+40})` (40-bit
//! statistical hiding, [`MASK_BITS`]) may be added to every slot before the
//! ciphertext is handed to the key owner, so the slot width is
//! `W = B + 40 + 2` (one bit for the mask carry, one for the sign), and a
//! ciphertext holds `k = ⌊(|n| - 3) / W⌋` slots so that `|P| < 2^{|n|-3} < n/3`
//! stays out of the overflow band. E.g. `|n| = 2048`, `v = u = 16`,
//! `d = 1024`: `W = 84`, `k = 24` slots.
//!
//! # Dot-product forms
//!
//! * **Batch of rows** ([`PackingLayout::packed_matvec`]): for `y = W·x` with
//!   `x` encrypted one value per ciphertext, column `j` gets the packed
//!   public weight `ω_j = Σ_r W[r][j] · 2^{r·W}`; one multi-exponentiation
//!   `Π Enc(x_j)^{ω_j}` yields `k` dot products (rows) packed in one
//!   ciphertext — one pass of public multiplications for `k` rows.
//! * **Batch of inputs**: if ciphertext `j` packs `x_j` of `k` different input
//!   vectors, the plain [`PublicKey::dot`] with weights `w` yields the `k` dot
//!   products `w·x^{(b)}` in the slots.

use num_bigint::{BigInt, BigRng010 as BigRng, BigUint};
use num_traits::{One, Zero};
use rand::CryptoRng;

use super::keys::{PrivateKey, PublicKey};
use super::ops::Ciphertext;
use super::{encoding, PaillierError, Result};

/// Statistical security of slot masks, in bits.
pub const MASK_BITS: u64 = 40;

/// A slot layout for given value, weight and length bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackingLayout {
    /// Bits of |input value| bound: `|x| < 2^value_bits`.
    pub value_bits: u64,
    /// Bits of |weight| bound: `|w| < 2^weight_bits`.
    pub weight_bits: u64,
    /// Maximum number of terms of a dot product.
    pub terms: usize,
    /// Slot width `W`.
    pub slot_bits: u64,
    /// Slots per ciphertext.
    pub slots: usize,
}

fn ceil_log2(d: usize) -> u64 {
    if d <= 1 {
        0
    } else {
        (usize::BITS - (d - 1).leading_zeros()) as u64
    }
}

impl PackingLayout {
    /// Compute the layout for a key of `n_bits` bits.
    pub fn new(n_bits: u64, value_bits: u64, weight_bits: u64, terms: usize) -> Result<Self> {
        let bound = value_bits + weight_bits + ceil_log2(terms.max(1));
        let slot_bits = bound + MASK_BITS + 2;
        let slots = (n_bits.saturating_sub(3) / slot_bits) as usize;
        if slots == 0 {
            return Err(PaillierError::Packing(
                "a single slot does not fit in this key".into(),
            ));
        }
        Ok(PackingLayout {
            value_bits,
            weight_bits,
            terms: terms.max(1),
            slot_bits,
            slots,
        })
    }

    /// Bound `B` on a slot's dot-product result: `|result| < 2^B`.
    pub fn result_bits(&self) -> u64 {
        self.value_bits + self.weight_bits + ceil_log2(self.terms)
    }

    fn check_bound(x: &BigInt, bits: u64, what: &str) -> Result<()> {
        if x.magnitude().bits() > bits {
            return Err(PaillierError::Packing(format!(
                "{what} exceeds {bits} bits"
            )));
        }
        Ok(())
    }

    /// Pack at most `slots` values into one signed integer.
    pub fn pack(&self, values: &[BigInt]) -> Result<BigInt> {
        if values.len() > self.slots {
            return Err(PaillierError::Packing(format!(
                "{} values but only {} slots",
                values.len(),
                self.slots
            )));
        }
        let mut acc = BigInt::zero();
        for v in values.iter().rev() {
            Self::check_bound(v, self.value_bits, "value")?;
            acc = (acc << self.slot_bits as usize) + v;
        }
        Ok(acc)
    }

    /// Unpack `count` slots from a signed packed integer.
    pub fn unpack(&self, packed: &BigInt, count: usize) -> Vec<BigInt> {
        let w = self.slot_bits as usize;
        let modulus = BigInt::one() << w;
        let half = BigInt::one() << (w - 1);
        let mut rest = packed.clone();
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let mut low = &rest & (&modulus - 1u32); // non-negative low bits
            if low >= half {
                low -= &modulus;
            }
            rest = (rest - &low) >> w;
            out.push(low);
        }
        out
    }

    /// Encrypt a packed vector.
    pub fn encrypt_packed(&self, pk: &PublicKey, values: &[BigInt]) -> Result<Ciphertext> {
        pk.encrypt_signed(&self.pack(values)?)
    }

    /// Decrypt and unpack `count` slots.
    pub fn decrypt_packed(
        &self,
        sk: &PrivateKey,
        c: &Ciphertext,
        count: usize,
    ) -> Result<Vec<BigInt>> {
        if count > self.slots {
            return Err(PaillierError::Packing(
                "more slots requested than exist".into(),
            ));
        }
        let packed = encoding::decode_signed(sk.public_key(), &sk.decrypt(c))?;
        Ok(self.unpack(&packed, count))
    }

    /// `y = W·x` for encrypted `x` (one value per ciphertext) and public rows
    /// `W`: returns `⌈rows/slots⌉` ciphertexts, each packing `slots` results.
    pub fn packed_matvec(
        &self,
        pk: &PublicKey,
        x: &[Ciphertext],
        rows: &[Vec<i64>],
    ) -> Result<Vec<Ciphertext>> {
        if x.len() > self.terms {
            return Err(PaillierError::Packing(format!(
                "{} terms but the layout allows {}",
                x.len(),
                self.terms
            )));
        }
        let mut out = Vec::new();
        for group in rows.chunks(self.slots) {
            let mut weights = vec![BigInt::zero(); x.len()];
            for row in group.iter().rev() {
                if row.len() != x.len() {
                    return Err(PaillierError::LengthMismatch(x.len(), row.len()));
                }
                for (j, &w) in row.iter().enumerate() {
                    let w = BigInt::from(w);
                    Self::check_bound(&w, self.weight_bits, "weight")?;
                    weights[j] = (std::mem::take(&mut weights[j]) << self.slot_bits as usize) + w;
                }
            }
            out.push(pk.dot(x, &weights)?);
        }
        Ok(out)
    }

    /// Add an independent mask `r_i ∈ [0, 2^{B+40})` to each of `count` slots;
    /// returns the masked ciphertext and the masks (secret to the masker).
    pub fn mask<R: CryptoRng + ?Sized>(
        &self,
        pk: &PublicKey,
        c: &Ciphertext,
        count: usize,
        rng: &mut R,
    ) -> Result<(Ciphertext, Vec<BigUint>)> {
        if count > self.slots {
            return Err(PaillierError::Packing(
                "more slots requested than exist".into(),
            ));
        }
        let bits = self.result_bits() + MASK_BITS;
        let masks: Vec<BigUint> = (0..count).map(|_| rng.random_biguint(bits)).collect();
        let mut packed = BigInt::zero();
        for r in masks.iter().rev() {
            packed = (packed << self.slot_bits as usize) + BigInt::from(r.clone());
        }
        Ok((pk.add_plain(c, &packed), masks))
    }
}
