//! Keys: generation, CRT decryption, key-owner encryption.

use std::fmt;
use std::sync::{Arc, OnceLock};

use num_bigint::{BigInt, BigRng010 as BigRng, BigUint};
use num_integer::Integer;
use num_traits::{One, Zero};
use rand::{CryptoRng, Rng};
use zeroize::Zeroize;

use super::djn::FixedBaseTable;
use super::monty::{
    add_limbs, ct_sub_mod, from_limbs, mul_full, mul_low, sub_limbs, to_limbs, wipe, Monty,
};
use super::ops::Ciphertext;
use super::primes::{factor_from_phi, random_prime};
use super::{
    PaillierError, Result, DEFAULT_KEY_BITS, DJN_EXPONENT_BITS, MAX_KEY_BITS, MIN_KEY_BITS,
};

/// Progress events emitted during key generation (no secret content).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeygenEvent {
    /// A prime candidate was rejected.
    CandidateRejected,
    /// Prime number `index` (0 or 1) was found.
    PrimeFound(u8),
    /// The key pair is complete.
    Done,
}

/// A Paillier public key with `g = n + 1` and a DJN fixed base `h_s`.
#[derive(Clone)]
pub struct PublicKey {
    pub(crate) n: BigUint,
    pub(crate) n2: BigUint,
    pub(crate) max_int: BigUint,
    pub(crate) hs: BigUint,
    pub(crate) table: Arc<OnceLock<FixedBaseTable>>,
    pub(crate) mont: Arc<Monty>,
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.n == other.n
    }
}
impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("bits", &self.n.bits())
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// A public key for modulus `n`, drawing a fresh DJN base from the OS-seeded
    /// CSPRNG. Refuses moduli below [`MIN_KEY_BITS`].
    pub fn from_n(n: BigUint) -> Result<Self> {
        if n.bits() < MIN_KEY_BITS {
            return Err(PaillierError::KeyTooSmall(n.bits()));
        }
        Self::from_n_unchecked_size(n, &mut rand::rng())
    }

    /// As [`PublicKey::from_n`] without the size floor; test-only.
    pub fn from_n_insecure_for_tests<R: Rng + ?Sized>(n: BigUint, rng: &mut R) -> Result<Self> {
        Self::from_n_unchecked_size(n, rng)
    }

    pub(crate) fn from_n_unchecked_size<R: Rng + ?Sized>(n: BigUint, rng: &mut R) -> Result<Self> {
        if n.bits() < 4 || n.is_even() {
            return Err(PaillierError::InvalidKey(
                "modulus must be odd and larger than 8",
            ));
        }
        let n2 = &n * &n;
        // h = -x^2 mod n for a random unit x; h_s = h^n mod n^2
        let x = loop {
            let x = rng.random_biguint_below(&n);
            if !x.is_zero() && x.gcd(&n).is_one() {
                break x;
            }
        };
        let h = &n - (&x * &x % &n);
        let mont =
            Arc::new(Monty::new(&n2).ok_or(PaillierError::InvalidKey("modulus must be odd"))?);
        let hs = mont.pow_vartime(&h, &n); // h and n are public
        let max_int = &n / 3u32 - 1u32;
        Ok(PublicKey {
            mont,
            n,
            n2,
            max_int,
            hs,
            table: Arc::new(OnceLock::new()),
        })
    }

    /// The modulus `n`.
    pub fn n(&self) -> &BigUint {
        &self.n
    }
    /// `n²`.
    pub fn n_squared(&self) -> &BigUint {
        &self.n2
    }
    /// Bit length of `n`.
    pub fn bits(&self) -> u64 {
        self.n.bits()
    }
    /// Largest encodable signed magnitude, `⌊n/3⌋ - 1`.
    pub fn max_int(&self) -> &BigUint {
        &self.max_int
    }
    pub(crate) fn mont_n2(&self) -> &Monty {
        &self.mont
    }

    /// The DJN fixed base `h_s` (public).
    pub fn djn_base(&self) -> &BigUint {
        &self.hs
    }
}

/// One prime's half of CRT decryption, in the limb form the constant-time
/// path uses (see the crate docs, "Timing"). Wiped on drop.
#[derive(Clone)]
struct Half {
    /// The prime `p`, and `p − 1` (the secret exponent).
    p: BigUint,
    pm1: BigUint,
    /// Bit length of `p`: the public bound the ladder runs to.
    bits: u64,
    /// Arithmetic modulo `p²` and modulo `p`.
    mont_sq: Monty,
    mont: Monty,
    /// `p⁻¹ mod 2^{64·k}` (`k` = limbs of `p`), for the exact division `L(x) = (x − 1)/p`.
    p_inv_2k: Vec<u64>,
    /// `h_p · R mod p`, `h_p = L(g^{p−1} mod p²)⁻¹ mod p`, in Montgomery form.
    h_mont: Vec<u64>,
}

impl Drop for Half {
    fn drop(&mut self) {
        wipe(&mut self.p);
        wipe(&mut self.pm1);
        self.p_inv_2k.zeroize();
        self.h_mont.zeroize();
    }
}

/// `p⁻¹ mod 2^{64·len}` for odd `p` by Newton's iteration (a fixed number
/// of full-width products, so the same work for every `p` of a length).
fn inv_mod_word_power(p: &[u64]) -> Vec<u64> {
    let k = p.len();
    let mut x = vec![0u64; k];
    let mut inv: u64 = 1;
    for _ in 0..7 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(p[0].wrapping_mul(inv)));
    }
    x[0] = inv; // correct to 64 bits; each step doubles that
    let mut px = vec![0u64; k];
    let mut two_minus = vec![0u64; k];
    let mut next = vec![0u64; k];
    let mut two = vec![0u64; k];
    two[0] = 2;
    let mut precision = 64;
    while precision < 64 * k {
        mul_low(p, &x, &mut px);
        sub_limbs(&two, &px, &mut two_minus);
        mul_low(&x, &two_minus, &mut next);
        std::mem::swap(&mut x, &mut next);
        precision *= 2;
    }
    px.zeroize();
    two_minus.zeroize();
    next.zeroize();
    x
}

/// `a⁻¹ mod p` for `a` given as limbs below `p`, by Fermat (`a^{p−2}`,
/// the constant-time ladder). Correct when `p` is prime; checked, so a
/// composite `p` or a non-invertible `a` is an error, never a wrong constant.
fn inv_mod_prime(a: &[u64], p: &BigUint, mont: &Monty, what: &'static str) -> Result<Vec<u64>> {
    let mut s = mont.scratch();
    let mut am = mont.limbs_to_mont(a, &mut s);
    let mut e = p - 2u32;
    let mut inv_m = mont.pow_mont(&am, &e, p.bits(), &mut s);
    let mut check = vec![0u64; mont.limbs()];
    mont.mul(&am, &inv_m, &mut check, &mut s); // a·a⁻¹·R in Montgomery form
    let mut check = mont.out_of_mont_limbs(&check, &mut s);
    let ok = check[0] == 1 && check[1..].iter().all(|&w| w == 0);
    let inv = mont.out_of_mont_limbs(&inv_m, &mut s);
    am.zeroize();
    inv_m.zeroize();
    check.zeroize();
    wipe(&mut e);
    if ok {
        Ok(inv)
    } else {
        Err(PaillierError::InvalidKey(what))
    }
}

impl Half {
    /// The half for prime `p` whose partner prime is `other`.
    fn new(p: &BigUint, other: &BigUint, what: &'static str) -> Result<Self> {
        let mut p2 = p * p;
        let mont_sq = Monty::new(&p2).ok_or(PaillierError::InvalidKey("p must be odd"))?;
        wipe(&mut p2);
        let mont = Monty::new(p).ok_or(PaillierError::InvalidKey("p must be odd"))?;
        let k = mont.limbs();
        let p_limbs = to_limbs(p, k);
        let p_inv_2k = inv_mod_word_power(&p_limbs);
        // With g = n + 1, g^{p−1} = 1 + (p−1)·n mod p², so
        // L(g^{p−1} mod p²) = (p−1)·q mod p = p − (q mod p).
        let mut s = mont.scratch();
        let mut other_mod_p = mont.reduce(other, &mut s);
        let mut l = vec![0u64; k];
        sub_limbs(&p_limbs, &other_mod_p, &mut l);
        let mut h = inv_mod_prime(&l, p, &mont, what)?;
        let h_mont = mont.limbs_to_mont(&h, &mut s);
        other_mod_p.zeroize();
        l.zeroize();
        h.zeroize();
        Ok(Half {
            p: p.clone(),
            pm1: p - 1u32,
            bits: p.bits(),
            mont_sq,
            mont,
            p_inv_2k,
            h_mont,
        })
    }

    /// `m mod p = L(c^{p−1} mod p²) · h_p mod p`, as limbs of `p`, in
    /// constant time (see the crate docs).
    fn decrypt(&self, c: &BigUint) -> Vec<u64> {
        let sq = &self.mont_sq;
        let k2 = sq.limbs();
        let k = self.mont.limbs();
        let mut s = sq.scratch();
        let mut cm = sq.to_mont(c, &mut s);
        let mut xm = sq.pow_mont(&cm, &self.pm1, self.bits, &mut s);
        let mut x = sq.out_of_mont_limbs(&xm, &mut s);
        // x ≡ 1 mod p, so x − 1 = p·y with y < p: y = (x − 1)·p⁻¹ mod 2^{64k}
        let mut one = vec![0u64; k2];
        one[0] = 1;
        let mut xm1 = vec![0u64; k2];
        sub_limbs(&x, &one, &mut xm1);
        let mut y = vec![0u64; k];
        mul_low(&xm1[..k], &self.p_inv_2k, &mut y);
        let mut sp = self.mont.scratch();
        let mut mp = vec![0u64; k];
        self.mont.mul(&y, &self.h_mont, &mut mp, &mut sp); // y·h_p mod p
        cm.zeroize();
        xm.zeroize();
        x.zeroize();
        xm1.zeroize();
        y.zeroize();
        mp
    }
}

/// Constant-time CRT recombination: for `a < A`, `b < B`, `A < B` coprime,
/// the `x < A·B` with `x ≡ a mod A`, `x ≡ b mod B`:
/// `x = a + A·((b − a)·A⁻¹ mod B)`. `inv_mont` is `A⁻¹·R mod B`.
#[derive(Clone)]
struct Crt {
    a_limbs: Vec<u64>,
    mont_b: Monty,
    inv_mont: Vec<u64>,
}

impl Drop for Crt {
    fn drop(&mut self) {
        self.a_limbs.zeroize();
        self.inv_mont.zeroize();
    }
}

impl Crt {
    /// For `A < B`, both odd; `B` prime (the inverse is found by Fermat, and checked).
    fn new(a: &BigUint, b: &BigUint, what: &'static str) -> Result<Self> {
        let mont_b = Monty::new(b).ok_or(PaillierError::InvalidKey("moduli must be odd"))?;
        let kb = mont_b.limbs();
        let mut a_in_b = to_limbs(a, kb); // a < b
        let mut inv = inv_mod_prime(&a_in_b, b, &mont_b, what)?;
        let mut s = mont_b.scratch();
        let inv_mont = mont_b.limbs_to_mont(&inv, &mut s);
        a_in_b.zeroize();
        inv.zeroize();
        Ok(Crt {
            a_limbs: to_limbs(a, a.bits().div_ceil(64) as usize),
            mont_b,
            inv_mont,
        })
    }

    /// As [`Crt::new`] with `inv_mont` given (for a composite `B`).
    fn with_inverse(a: &BigUint, mont_b: Monty, inv: &BigUint) -> Self {
        let mut s = mont_b.scratch();
        let mut inv_limbs = mont_b.reduce(inv, &mut s);
        let inv_mont = mont_b.limbs_to_mont(&inv_limbs, &mut s);
        inv_limbs.zeroize();
        Crt {
            a_limbs: to_limbs(a, a.bits().div_ceil(64) as usize),
            mont_b,
            inv_mont,
        }
    }

    /// Recombine residues given as limbs (`a` of at most `B`'s limbs).
    fn combine(&self, a: &[u64], b: &[u64]) -> BigUint {
        let kb = self.mont_b.limbs();
        let ka = self.a_limbs.len();
        let mut a_b = vec![0u64; kb];
        a_b[..a.len().min(kb)].copy_from_slice(&a[..a.len().min(kb)]);
        let mut b_b = vec![0u64; kb];
        b_b[..b.len().min(kb)].copy_from_slice(&b[..b.len().min(kb)]);
        let mut diff = vec![0u64; kb];
        ct_sub_mod(&b_b, &a_b, self.mont_b.modulus_limbs(), &mut diff);
        let mut s = self.mont_b.scratch();
        let mut u = vec![0u64; kb];
        self.mont_b.mul(&diff, &self.inv_mont, &mut u, &mut s); // (b − a)·A⁻¹ mod B
        let mut x = vec![0u64; ka + kb + 1];
        mul_full(&u, &self.a_limbs, &mut x[..ka + kb]);
        let mut a_x = vec![0u64; ka + kb + 1];
        a_x[..a.len()].copy_from_slice(a);
        let mut sum = vec![0u64; ka + kb + 1];
        add_limbs(&x, &a_x, &mut sum);
        let out = from_limbs(&sum);
        for v in [
            &mut a_b, &mut b_b, &mut diff, &mut u, &mut x, &mut a_x, &mut sum,
        ] {
            v.zeroize();
        }
        out
    }
}

/// A Paillier private key with CRT constants. `Debug` is redacted; every
/// secret is wiped on drop (see the crate docs, "Zeroization").
#[derive(Clone)]
pub struct PrivateKey {
    pub(crate) public: PublicKey,
    /// `p < q`.
    half_p: Half,
    half_q: Half,
    /// `m = m_p + p·((m_q − m_p)·p⁻¹ mod q)`.
    crt_n: Crt,
    /// `x = x_p + p²·((x_q − x_p)·(p²)⁻¹ mod q²)`, for key-owner encryption.
    crt_n2: Crt,
    /// Fixed-base tables of `h_s mod p²` and `h_s mod q²` (built lazily,
    /// shared by clones) for [`PrivateKey::encrypt_djn_crt`].
    djn_crt: Arc<OnceLock<(FixedBaseTable, FixedBaseTable)>>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("bits", &self.public.bits())
            .field("secret", &"<redacted>")
            .finish()
    }
}

fn l_function(x: &BigUint, p: &BigUint) -> BigUint {
    (x - 1u32) / p
}

impl PrivateKey {
    fn from_primes_unchecked<R: Rng + ?Sized>(p: BigUint, q: BigUint, rng: &mut R) -> Result<Self> {
        if p == q {
            return Err(PaillierError::InvalidKey("p and q must differ"));
        }
        if p.is_even() || q.is_even() || p < BigUint::from(3u32) || q < BigUint::from(3u32) {
            return Err(PaillierError::InvalidKey("p and q must be odd primes"));
        }
        let (p, q) = if p < q { (p, q) } else { (q, p) };
        let n = &p * &q;
        let pm1 = &p - 1u32;
        let qm1 = &q - 1u32;
        if !n.gcd(&(&pm1 * &qm1)).is_one() {
            return Err(PaillierError::InvalidKey("gcd(n, (p-1)(q-1)) != 1"));
        }
        let public = PublicKey::from_n_unchecked_size(n, rng)?;
        let half_p = Half::new(&p, &q, "h_p not invertible")?;
        let half_q = Half::new(&q, &p, "h_q not invertible")?;
        let crt_n = Crt::new(&p, &q, "p not invertible mod q")?;
        // (p²)⁻¹ mod q² by one Newton step from p⁻² mod q: x' = x·(2 − p²·x)
        let q2 = &q * &q;
        let mont_q2 = Monty::new(&q2).ok_or(PaillierError::InvalidKey("q must be odd"))?;
        let p2_inv_q2 = {
            let mut s = mont_q2.scratch();
            let k = mont_q2.limbs();
            let mq = &crt_n.mont_b;
            let mut sq = mq.scratch();
            let mut x1 = vec![0u64; mq.limbs()];
            mq.mul(&crt_n.inv_mont, &crt_n.inv_mont, &mut x1, &mut sq); // p⁻²·R mod q
            let mut x = mq.out_of_mont_limbs(&x1, &mut sq);
            let mut xb = from_limbs(&x);
            let mut xm = mont_q2.to_mont(&xb, &mut s);
            let mut p2 = &p * &p;
            let mut am = mont_q2.to_mont(&p2, &mut s);
            let mut ax = vec![0u64; k];
            mont_q2.mul(&am, &xm, &mut ax, &mut s);
            let mut two = vec![0u64; k];
            two[0] = 2;
            let mut two_m = mont_q2.limbs_to_mont(&two, &mut s);
            let mut d = vec![0u64; k];
            ct_sub_mod(&two_m, &ax, mont_q2.modulus_limbs(), &mut d);
            let mut inv_m = vec![0u64; k];
            mont_q2.mul(&xm, &d, &mut inv_m, &mut s);
            // check p²·(p²)⁻¹ ≡ 1 mod q²
            mont_q2.mul(&am, &inv_m, &mut ax, &mut s);
            let check = mont_q2.out_of_mont_limbs(&ax, &mut s);
            let ok = check[0] == 1 && check[1..].iter().all(|&w| w == 0);
            let inv = mont_q2.out_of_mont(&inv_m, &mut s);
            for v in [
                &mut x1, &mut x, &mut xm, &mut am, &mut ax, &mut two_m, &mut d, &mut inv_m,
            ] {
                v.zeroize();
            }
            wipe(&mut xb);
            wipe(&mut p2);
            if !ok {
                return Err(PaillierError::InvalidKey("p^2 not invertible mod q^2"));
            }
            inv
        };
        let mut p2 = &p * &p;
        let crt_n2 = Crt::with_inverse(&p2, mont_q2, &p2_inv_q2);
        wipe(&mut p2);
        let mut p2_inv_q2 = p2_inv_q2;
        wipe(&mut p2_inv_q2);
        let (mut p, mut q) = (p, q);
        wipe(&mut p);
        wipe(&mut q);
        Ok(PrivateKey {
            djn_crt: Arc::new(OnceLock::new()),
            public,
            half_p,
            half_q,
            crt_n,
            crt_n2,
        })
    }

    /// A private key from its primes (python-paillier ≥ 1.4 stores `p` and
    /// `q`); `p·q` must be `public`'s `n`. Primality is not tested (neither
    /// does phe); a non-prime factor fails the checks of the CRT constants
    /// or decrypts to wrong numbers, never panics.
    pub(crate) fn from_public_and_factors(
        public: PublicKey,
        p: &BigUint,
        q: &BigUint,
    ) -> Result<Self> {
        let n_bits = public.n.bits();
        if p.bits() >= n_bits || q.bits() >= n_bits || &(p * q) != public.n() {
            return Err(PaillierError::InvalidKey("p and q do not multiply to n"));
        }
        let mut key = Self::from_primes_unchecked(p.clone(), q.clone(), &mut rand::rng())?;
        key.public = public; // keep the caller's h_s and table
        key.djn_crt = Arc::new(OnceLock::new()); // (built from that h_s)
        Ok(key)
    }

    /// The primes `(p, q)` with `p < q`, as python-paillier orders them. Secret.
    pub(crate) fn factors(&self) -> (&BigUint, &BigUint) {
        (&self.half_p.p, &self.half_q.p)
    }

    /// Recover a private key from `n` and python-paillier's `lambda`
    /// (`(p-1)(q-1)`, or a divisor of it such as the Carmichael λ).
    /// Variable-time (the factoring takes square roots of secrets with
    /// num-bigint); run once when an old-format key file is loaded.
    pub(crate) fn from_n_lambda_vartime(public: PublicKey, lambda: &BigUint) -> Result<Self> {
        let n = public.n.clone();
        if lambda.is_zero() || lambda.bits() > n.bits() {
            return Err(PaillierError::InvalidKey("lambda does not match n"));
        }
        for k in 1u32..=64 {
            let phi = lambda * k;
            if let Some((p, q)) = factor_from_phi(&n, &phi) {
                let mut key = Self::from_primes_unchecked(p, q, &mut rand::rng())?;
                key.public = public; // keep the caller's h_s and table
                key.djn_crt = Arc::new(OnceLock::new()); // (built from that h_s)
                return Ok(key);
            }
        }
        Err(PaillierError::InvalidKey("lambda does not match n"))
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// `(p-1)(q-1)`, python-paillier's `lambda`. Secret.
    pub fn phi(&self) -> BigUint {
        &self.half_p.pm1 * &self.half_q.pm1
    }

    /// `μ = φ⁻¹ mod n`. Secret; variable-time (num-bigint's `modinv`).
    pub fn mu_vartime(&self) -> BigUint {
        self.phi()
            .modinv(&self.public.n)
            .expect("phi is invertible mod n for a valid key")
    }

    /// Raw decryption to `Z_n`, using the CRT (halves in parallel).
    /// Constant-time in the key (see the crate docs, "Timing").
    pub fn decrypt(&self, c: &Ciphertext) -> BigUint {
        let c = c.as_biguint();
        let (mp, mq) = rayon::join(|| self.half_p.decrypt(c), || self.half_q.decrypt(c));
        self.recombine(mp, mq)
    }

    /// Raw decryption without rayon (single thread).
    pub fn decrypt_sequential(&self, c: &Ciphertext) -> BigUint {
        let c = c.as_biguint();
        let mp = self.half_p.decrypt(c);
        let mq = self.half_q.decrypt(c);
        self.recombine(mp, mq)
    }

    fn recombine(&self, mut mp: Vec<u64>, mut mq: Vec<u64>) -> BigUint {
        let m = self.crt_n.combine(&mp, &mq);
        mp.zeroize();
        mq.zeroize();
        m
    }

    /// Textbook decryption `L(c^λ mod n²)·μ mod n` with `λ = (p-1)(q-1)`;
    /// slow and variable-time (num-bigint's `modpow` on the secret `λ`),
    /// kept to cross-check the CRT path.
    pub fn decrypt_plain_formula_vartime(&self, c: &Ciphertext) -> BigUint {
        let n = &self.public.n;
        let lambda = self.phi();
        let x = c.as_biguint().modpow(&lambda, &self.public.n2);
        l_function(&x, n) * self.mu_vartime() % n
    }

    /// Decrypt and decode a signed integer (overflow band is an error).
    pub fn decrypt_signed(&self, c: &Ciphertext) -> Result<BigInt> {
        super::encoding::decode_signed(&self.public, &self.decrypt(c))
    }

    /// Key-owner encryption: `r^n mod n²` computed modulo `p²` and `q²`.
    pub fn encrypt_crt(&self, m: &BigUint) -> Result<Ciphertext> {
        self.encrypt_crt_with_rng(m, &mut rand::rng())
    }

    /// Key-owner encryption with a caller-supplied CSPRNG.
    pub fn encrypt_crt_with_rng<R: CryptoRng + ?Sized>(
        &self,
        m: &BigUint,
        rng: &mut R,
    ) -> Result<Ciphertext> {
        if m >= &self.public.n {
            return Err(PaillierError::PlaintextOutOfRange);
        }
        let r = self.public.random_unit(rng);
        let rn = self.rn_crt(&r);
        Ok(self.public.combine(m, &rn))
    }

    /// Key-owner DJN encryption: the same ciphertext distribution as
    /// [`PublicKey::encrypt`] (`(1 + m·n) · h_s^α`, 256-bit `α`), with
    /// `h_s^α` computed from fixed-base tables modulo `p²` and `q²` and
    /// recombined (half-size multiplications).
    pub fn encrypt_djn_crt(&self, m: &BigUint) -> Result<Ciphertext> {
        if m >= &self.public.n {
            return Err(PaillierError::PlaintextOutOfRange);
        }
        let alpha = rand::rng().random_biguint(DJN_EXPONENT_BITS);
        Ok(self.public.combine(m, &self.djn_randomizer_crt(&alpha)))
    }

    /// `h_s^α mod n²` via the CRT.
    pub(crate) fn djn_randomizer_crt(&self, alpha: &BigUint) -> BigUint {
        let (sp, sq) = (&self.half_p.mont_sq, &self.half_q.mont_sq);
        let (tp, tq) = self.djn_crt.get_or_init(|| {
            // (the table builder reduces h_s modulo p² and q² itself)
            rayon::join(
                || FixedBaseTable::build(&self.public.hs, sp, DJN_EXPONENT_BITS),
                || FixedBaseTable::build(&self.public.hs, sq, DJN_EXPONENT_BITS),
            )
        });
        let a = tp.pow_vartime(alpha, sp);
        let b = tq.pow_vartime(alpha, sq);
        self.recombine_n2(a, b)
    }

    /// `r^n mod n²` via the CRT (both halves in parallel). The exponent is
    /// the public `n` (equal to `n mod φ(p²)` on units), so the sliding
    /// window's branches depend on nothing secret; the secret `r` and the
    /// moduli go only through constant-time products.
    pub fn rn_crt(&self, r: &BigUint) -> BigUint {
        let n = &self.public.n;
        let (a, b) = rayon::join(
            || self.half_p.mont_sq.pow_vartime(r, n),
            || self.half_q.mont_sq.pow_vartime(r, n),
        );
        self.recombine_n2(a, b)
    }

    /// `x mod n²` from `x mod p²` and `x mod q²`, in constant time.
    fn recombine_n2(&self, mut a: BigUint, mut b: BigUint) -> BigUint {
        let mut al = to_limbs(&a, self.half_p.mont_sq.limbs());
        let mut bl = to_limbs(&b, self.half_q.mont_sq.limbs());
        let x = self.crt_n2.combine(&al, &bl);
        al.zeroize();
        bl.zeroize();
        wipe(&mut a);
        wipe(&mut b);
        x
    }
}

/// A key pair.
#[derive(Clone)]
pub struct Keypair {
    pub public: PublicKey,
    pub private: PrivateKey,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("public", &self.public)
            .field("private", &self.private)
            .finish()
    }
}

/// A modulus size Veil generates: even, from [`MIN_KEY_BITS`] to
/// [`MAX_KEY_BITS`] (the bound the JSON loader applies too).
pub fn check_key_bits(bits: u64) -> Result<()> {
    if bits < MIN_KEY_BITS {
        return Err(PaillierError::KeyTooSmall(bits));
    }
    if bits > MAX_KEY_BITS {
        return Err(PaillierError::KeyTooLarge(bits));
    }
    if !bits.is_multiple_of(2) {
        return Err(PaillierError::BadKeySize(bits));
    }
    Ok(())
}

impl Keypair {
    /// Generate a key pair of [`DEFAULT_KEY_BITS`] bits from the OS-seeded CSPRNG.
    pub fn generate_default() -> Result<Self> {
        Self::generate(DEFAULT_KEY_BITS)
    }

    /// Generate a key pair of `bits` (see [`check_key_bits`]) from the OS-seeded CSPRNG.
    pub fn generate(bits: u64) -> Result<Self> {
        Self::generate_with_progress(bits, &mut rand::rng(), &mut |_| {})
    }

    /// Generate with a caller-supplied CSPRNG and a progress callback.
    pub fn generate_with_progress<R: CryptoRng + ?Sized>(
        bits: u64,
        rng: &mut R,
        progress: &mut dyn FnMut(KeygenEvent),
    ) -> Result<Self> {
        check_key_bits(bits)?;
        Self::generate_unchecked(bits, rng, progress)
    }

    /// Test-only: any even size ≥ 16 bits, any RNG (fixed seeds allowed).
    pub fn generate_insecure_for_tests<R: Rng + ?Sized>(bits: u64, rng: &mut R) -> Result<Self> {
        Self::generate_unchecked(bits, rng, &mut |_| {})
    }

    /// Test-only: a key from explicit primes (e.g. the toy `p = 5, q = 7`).
    /// The primality of `p` and `q` is the caller's responsibility.
    pub fn from_primes_for_tests<R: Rng + ?Sized>(
        p: BigUint,
        q: BigUint,
        rng: &mut R,
    ) -> Result<Self> {
        let private = PrivateKey::from_primes_unchecked(p, q, rng)?;
        Ok(Keypair {
            public: private.public.clone(),
            private,
        })
    }

    fn generate_unchecked<R: Rng + ?Sized>(
        bits: u64,
        rng: &mut R,
        progress: &mut dyn FnMut(KeygenEvent),
    ) -> Result<Self> {
        if bits < 16 || !bits.is_multiple_of(2) {
            return Err(PaillierError::BadKeySize(bits));
        }
        let half = bits / 2;
        loop {
            let p = random_prime(half, rng, &mut || progress(KeygenEvent::CandidateRejected));
            progress(KeygenEvent::PrimeFound(0));
            let q = random_prime(half, rng, &mut || progress(KeygenEvent::CandidateRejected));
            progress(KeygenEvent::PrimeFound(1));
            if p == q {
                continue;
            }
            let n = &p * &q;
            if n.bits() != bits {
                continue;
            }
            match PrivateKey::from_primes_unchecked(p, q, rng) {
                Ok(private) => {
                    progress(KeygenEvent::Done);
                    return Ok(Keypair {
                        public: private.public.clone(),
                        private,
                    });
                }
                Err(_) => continue,
            }
        }
    }
}

impl PublicKey {
    /// A uniformly random unit of `Z_n`.
    pub(crate) fn random_unit<R: Rng + ?Sized>(&self, rng: &mut R) -> BigUint {
        loop {
            let r = rng.random_biguint_below(&self.n);
            if !r.is_zero() && r.gcd(&self.n).is_one() {
                return r;
            }
        }
    }

    /// `(1 + m·n) · rn mod n²` for `m < n`.
    pub(crate) fn combine(&self, m: &BigUint, rn: &BigUint) -> Ciphertext {
        let gm = m * &self.n + 1u32;
        Ciphertext::new_unchecked(gm * rn % &self.n2)
    }
}

#[cfg(test)]
mod djn_crt_tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn crt_randomiser_equals_the_public_one_and_decrypts() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
        let kp = Keypair::generate_insecure_for_tests(512, &mut rng).unwrap();
        for _ in 0..4 {
            let alpha = rng.random_biguint(DJN_EXPONENT_BITS);
            let public = kp
                .public
                .djn_table()
                .pow_vartime(&alpha, kp.public.mont_n2());
            assert_eq!(kp.private.djn_randomizer_crt(&alpha), public);
        }
        let m = BigUint::from(123_456_789u64);
        let c = kp.private.encrypt_djn_crt(&m).unwrap();
        assert_eq!(kp.private.decrypt(&c), m);
        assert!(kp.private.encrypt_djn_crt(kp.public.n()).is_err());
    }
}

#[cfg(test)]
mod constant_time_tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    /// Decryption exactly as it was before the constant-time rewrite:
    /// num-bigint for `h_p`, the CRT and `L`, the sliding window for
    /// `c^{p−1} mod p²`.
    fn old_decrypt(sk: &PrivateKey, c: &BigUint) -> BigUint {
        let (p, q) = sk.factors();
        let g = sk.public.n() + 1u32;
        let half = |p: &BigUint| {
            let p2 = p * p;
            let pm1 = p - 1u32;
            let hp = l_function(&g.modpow(&pm1, &p2), p).modinv(p).unwrap();
            let x = Monty::new(&p2).unwrap().pow_vartime(c, &pm1);
            l_function(&x, p) * hp % p
        };
        let (mp, mq) = (half(p), half(q));
        let p_inv_q = p.modinv(q).unwrap();
        let diff = (&mq + q - (&mp % q)) % q;
        mp + diff * p_inv_q % q * p
    }

    fn old_rn_crt(sk: &PrivateKey, r: &BigUint) -> BigUint {
        let (p, q) = sk.factors();
        let (p2, q2) = (p * p, q * q);
        let n = sk.public.n();
        let a = r.modpow(&(n % (p * (p - 1u32))), &p2);
        let b = r.modpow(&(n % (q * (q - 1u32))), &q2);
        let diff = (b + &q2 - (&a % &q2)) % &q2;
        a + diff * p2.modinv(&q2).unwrap() % &q2 * &p2
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn constant_time_decryption_computes_what_the_old_one_did(
            seed in any::<u64>(),
            bits in prop::sample::select(vec![64u64, 128, 194, 256, 512]),
            m_seed in any::<u64>(),
        ) {
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
            let kp = Keypair::generate_insecure_for_tests(bits, &mut rng).unwrap();
            let sk = &kp.private;
            let mut mrng = rand_chacha::ChaCha20Rng::seed_from_u64(m_seed);
            for m in [
                BigUint::zero(),
                BigUint::one(),
                kp.public.n() - 1u32,
                mrng.random_biguint_below(kp.public.n()),
            ] {
                // any ciphertext of Z*_{n²}, not only fresh encryptions
                let c = sk.encrypt_crt_with_rng(&m, &mut mrng).unwrap();
                let other = kp.public.random_unit(&mut mrng);
                let c2 = Ciphertext::new_unchecked(c.as_biguint() * &other % kp.public.n_squared());
                for c in [c, c2] {
                    let old = old_decrypt(sk, c.as_biguint());
                    prop_assert_eq!(sk.decrypt(&c), old.clone());
                    prop_assert_eq!(sk.decrypt_sequential(&c), old);
                }
                prop_assert_eq!(sk.decrypt(&sk.encrypt_crt_with_rng(&m, &mut mrng).unwrap()), m);
            }
            let r = kp.public.random_unit(&mut mrng);
            prop_assert_eq!(sk.rn_crt(&r), old_rn_crt(sk, &r));
        }
    }

    #[test]
    fn toy_key_and_composite_factors() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let kp = Keypair::from_primes_for_tests(5u32.into(), 7u32.into(), &mut rng).unwrap();
        for m in 0u32..35 {
            let c = kp.private.encrypt_crt(&m.into()).unwrap();
            assert_eq!(kp.private.decrypt(&c), BigUint::from(m));
        }
        // composite "primes": an error, not a panic
        let r = PrivateKey::from_primes_unchecked(15u32.into(), 77u32.into(), &mut rng);
        assert!(r.is_err());
    }

    #[test]
    fn word_power_inverse() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(6);
        for k in 1..9usize {
            let mut p = rng.random_biguint(64 * k as u64);
            p.set_bit(0, true);
            let pl = to_limbs(&p, k);
            let inv = from_limbs(&inv_mod_word_power(&pl));
            assert!((&p * inv % (BigUint::one() << (64 * k))).is_one(), "k {k}");
        }
    }

    #[test]
    fn drop_wipes_biguint_limbs() {
        let mut x = (BigUint::one() << 300) - 1u32;
        wipe(&mut x);
        assert!(x.is_zero());
    }
}
