//! Ciphertexts and homomorphic operations.

use num_bigint::{BigInt, BigUint, Sign};
use num_integer::Integer;
use num_traits::{One, Signed, Zero};
use rand::CryptoRng;
use rayon::prelude::*;

use super::keys::PublicKey;
use super::multiexp::multi_exp_monty;
use super::{PaillierError, Result};

/// A Paillier ciphertext, an element of `Z*_{n²}`. Not tied to a key at the
/// type level: operations take the [`PublicKey`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ciphertext {
    c: BigUint,
}

impl Ciphertext {
    pub(crate) fn new_unchecked(c: BigUint) -> Self {
        Ciphertext { c }
    }

    /// Validate `c ∈ Z*_{n²}` (0 < c < n², gcd(c, n) = 1).
    pub fn from_biguint(pk: &PublicKey, c: BigUint) -> Result<Self> {
        if c.is_zero() || c >= pk.n2 || !c.gcd(&pk.n).is_one() {
            return Err(PaillierError::InvalidCiphertext);
        }
        Ok(Ciphertext { c })
    }

    /// Test-only: wrap any value without validation.
    pub fn from_biguint_unchecked_for_tests(c: BigUint) -> Self {
        Ciphertext { c }
    }

    /// The ciphertext as an integer.
    pub fn as_biguint(&self) -> &BigUint {
        &self.c
    }
}

/// Map a signed integer into the balanced range and return (sign, magnitude)
/// with |k| ≤ n/2, preserving k mod n.
fn balanced_mod_n(pk: &PublicKey, k: &BigInt) -> (bool, BigUint) {
    let n = BigInt::from(pk.n.clone());
    let mut r = k.mod_floor(&n); // 0 <= r < n
    if &r + &r > n {
        r -= &n;
    }
    (r.is_negative(), r.magnitude().clone())
}

impl PublicKey {
    /// Encryption with explicit randomness `r` (test vectors): `g^m r^n mod n²`.
    pub fn encrypt_with_randomness_for_tests(
        &self,
        m: &BigUint,
        r: &BigUint,
    ) -> Result<Ciphertext> {
        if m >= &self.n {
            return Err(PaillierError::PlaintextOutOfRange);
        }
        let rn = self.mont_n2().pow_vartime(r, &self.n); // public exponent
        Ok(self.combine(m, &rn))
    }

    /// Textbook public-key encryption with a full-size `r^n` (slow baseline).
    pub fn encrypt_textbook<R: CryptoRng + ?Sized>(
        &self,
        m: &BigUint,
        rng: &mut R,
    ) -> Result<Ciphertext> {
        let r = self.random_unit(rng);
        self.encrypt_with_randomness_for_tests(m, &r)
    }

    /// `Enc(a) · Enc(b) = Enc(a + b)`.
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Ciphertext {
        Ciphertext::new_unchecked(&a.c * &b.c % &self.n2)
    }

    /// `Enc(a) · g^m = Enc(a + m)` for a signed plaintext `m` (taken mod n).
    pub fn add_plain(&self, a: &Ciphertext, m: &BigInt) -> Ciphertext {
        let n = BigInt::from(self.n.clone());
        let m = m.mod_floor(&n).magnitude().clone();
        let gm = m * &self.n + 1u32;
        Ciphertext::new_unchecked(&a.c * gm % &self.n2)
    }

    /// `Enc(a)^k = Enc(k·a)` for a public signed integer `k`.
    pub fn mul_scalar(&self, a: &Ciphertext, k: &BigInt) -> Ciphertext {
        let (neg, mag) = balanced_mod_n(self, k);
        let base = if neg { self.invert(a) } else { a.c.clone() };
        Ciphertext::new_unchecked(self.mont_n2().pow_vartime(&base, &mag))
    }

    /// `Enc(-a)`.
    pub fn neg(&self, a: &Ciphertext) -> Ciphertext {
        Ciphertext::new_unchecked(self.invert(a))
    }

    /// `Enc(a) - Enc(b)`.
    pub fn sub(&self, a: &Ciphertext, b: &Ciphertext) -> Ciphertext {
        self.add(a, &self.neg(b))
    }

    fn invert(&self, a: &Ciphertext) -> BigUint {
        // a is a unit mod n² for validated ciphertexts; fall back to 1 otherwise
        a.c.modinv(&self.n2).unwrap_or_else(BigUint::one)
    }

    /// Encrypted dot product `Π c_i^{w_i} = Enc(Σ w_i·m_i)` as one
    /// multi-exponentiation (positive and negative weights are split into two
    /// multi-exponentiations and one inversion). Work is split across rayon
    /// threads when there are several.
    pub fn dot(&self, cts: &[Ciphertext], weights: &[BigInt]) -> Result<Ciphertext> {
        if cts.len() != weights.len() {
            return Err(PaillierError::LengthMismatch(cts.len(), weights.len()));
        }
        let mut pos_b = Vec::new();
        let mut pos_e = Vec::new();
        let mut neg_b = Vec::new();
        let mut neg_e = Vec::new();
        for (c, w) in cts.iter().zip(weights) {
            let (neg, mag) = balanced_mod_n(self, w);
            if mag.is_zero() {
                continue;
            }
            if neg {
                neg_b.push(&c.c);
                neg_e.push(mag);
            } else {
                pos_b.push(&c.c);
                pos_e.push(mag);
            }
        }
        let (p, q) = rayon::join(
            || self.par_multi_exp(&pos_b, &pos_e),
            || self.par_multi_exp(&neg_b, &neg_e),
        );
        let q_inv = if q.is_one() {
            q
        } else {
            q.modinv(&self.n2).unwrap_or_else(BigUint::one)
        };
        Ok(Ciphertext::new_unchecked(p * q_inv % &self.n2))
    }

    /// Dot product with `i64` weights.
    pub fn dot_i64(&self, cts: &[Ciphertext], weights: &[i64]) -> Result<Ciphertext> {
        let w: Vec<BigInt> = weights.iter().map(|&x| BigInt::from(x)).collect();
        self.dot(cts, &w)
    }

    /// Reference dot product: a loop of separate exponentiations (baseline).
    pub fn dot_naive(&self, cts: &[Ciphertext], weights: &[BigInt]) -> Result<Ciphertext> {
        if cts.len() != weights.len() {
            return Err(PaillierError::LengthMismatch(cts.len(), weights.len()));
        }
        let mut acc = Ciphertext::new_unchecked(BigUint::one());
        for (c, w) in cts.iter().zip(weights) {
            acc = self.add(&acc, &self.mul_scalar(c, w));
        }
        Ok(acc)
    }

    fn par_multi_exp(&self, bases: &[&BigUint], exps: &[BigUint]) -> BigUint {
        if bases.is_empty() {
            return BigUint::one();
        }
        let threads = rayon::current_num_threads().max(1);
        if threads == 1 || bases.len() < 32 {
            return multi_exp_monty(bases, exps, self.mont_n2());
        }
        let chunk = bases.len().div_ceil(threads);
        bases
            .par_chunks(chunk)
            .zip(exps.par_chunks(chunk))
            .map(|(b, e)| multi_exp_monty(b, e, self.mont_n2()))
            .reduce(BigUint::one, |a, b| a * b % &self.n2)
    }

    /// Convert a signed value into the sign-magnitude pair used above (public
    /// helper for callers that precompute exponents).
    pub fn signed_to_zn(&self, m: &BigInt) -> BigUint {
        let n = BigInt::from(self.n.clone());
        let r = m.mod_floor(&n);
        match r.sign() {
            Sign::Minus => unreachable!("mod_floor is non-negative"),
            _ => r.magnitude().clone(),
        }
    }
}
