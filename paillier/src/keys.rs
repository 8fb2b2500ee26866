//! Keys: generation, CRT decryption, key-owner encryption.

use std::fmt;
use std::sync::{Arc, OnceLock};

use num_bigint::{BigInt, BigRng010 as BigRng, BigUint};
use num_integer::Integer;
use num_traits::{One, Zero};
use rand::{CryptoRng, Rng};

use super::djn::FixedBaseTable;
use super::monty::Monty;
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
        let hs = mont.pow(&h, &n);
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

/// A Paillier private key with CRT constants. `Debug` is redacted.
#[derive(Clone)]
pub struct PrivateKey {
    pub(crate) public: PublicKey,
    p: BigUint,
    q: BigUint,
    p2: BigUint,
    q2: BigUint,
    pm1: BigUint,
    qm1: BigUint,
    hp: BigUint,
    hq: BigUint,
    p_inv_q: BigUint,
    // n mod φ(p²) and n mod φ(q²): exponents for key-owner encryption
    n_mod_phi_p2: BigUint,
    n_mod_phi_q2: BigUint,
    // q² · (q²⁻¹ mod p²) etc. for CRT recombination mod n²
    p2_inv_q2: BigUint,
    mont_p2: Monty,
    mont_q2: Monty,
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
        let p2 = &p * &p;
        let q2 = &q * &q;
        let g = &public.n + 1u32;
        let hp = l_function(&g.modpow(&pm1, &p2), &p)
            .modinv(&p)
            .ok_or(PaillierError::InvalidKey("h_p not invertible"))?;
        let hq = l_function(&g.modpow(&qm1, &q2), &q)
            .modinv(&q)
            .ok_or(PaillierError::InvalidKey("h_q not invertible"))?;
        let p_inv_q = p
            .modinv(&q)
            .ok_or(PaillierError::InvalidKey("p not invertible mod q"))?;
        let p2_inv_q2 = p2
            .modinv(&q2)
            .ok_or(PaillierError::InvalidKey("p^2 not invertible mod q^2"))?;
        let n_mod_phi_p2 = &public.n % (&p * &pm1);
        let n_mod_phi_q2 = &public.n % (&q * &qm1);
        let mont_p2 = Monty::new(&p2).ok_or(PaillierError::InvalidKey("p must be odd"))?;
        let mont_q2 = Monty::new(&q2).ok_or(PaillierError::InvalidKey("q must be odd"))?;
        Ok(PrivateKey {
            djn_crt: Arc::new(OnceLock::new()),
            mont_p2,
            mont_q2,
            public,
            p,
            q,
            p2,
            q2,
            pm1,
            qm1,
            hp,
            hq,
            p_inv_q,
            n_mod_phi_p2,
            n_mod_phi_q2,
            p2_inv_q2,
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
        (&self.p, &self.q)
    }

    /// Recover a private key from `n` and python-paillier's `lambda`
    /// (`(p-1)(q-1)`, or a divisor of it such as the Carmichael λ).
    pub(crate) fn from_n_lambda(public: PublicKey, lambda: &BigUint) -> Result<Self> {
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
        &self.pm1 * &self.qm1
    }

    /// `μ = φ⁻¹ mod n`. Secret.
    pub fn mu(&self) -> BigUint {
        self.phi()
            .modinv(&self.public.n)
            .expect("phi is invertible mod n for a valid key")
    }

    /// Raw decryption to `Z_n`, using the CRT (halves in parallel).
    pub fn decrypt(&self, c: &Ciphertext) -> BigUint {
        let c = c.as_biguint();
        let (mp, mq) = rayon::join(
            || self.decrypt_half(c, &self.p, &self.mont_p2, &self.pm1, &self.hp),
            || self.decrypt_half(c, &self.q, &self.mont_q2, &self.qm1, &self.hq),
        );
        self.crt_n(&mp, &mq)
    }

    /// Raw decryption without rayon (single thread).
    pub fn decrypt_sequential(&self, c: &Ciphertext) -> BigUint {
        let c = c.as_biguint();
        let mp = self.decrypt_half(c, &self.p, &self.mont_p2, &self.pm1, &self.hp);
        let mq = self.decrypt_half(c, &self.q, &self.mont_q2, &self.qm1, &self.hq);
        self.crt_n(&mp, &mq)
    }

    fn decrypt_half(
        &self,
        c: &BigUint,
        p: &BigUint,
        mont: &Monty,
        pm1: &BigUint,
        hp: &BigUint,
    ) -> BigUint {
        let x = mont.pow(c, pm1);
        l_function(&x, p) * hp % p
    }

    fn crt_n(&self, mp: &BigUint, mq: &BigUint) -> BigUint {
        // m = mp + ((mq - mp) * p^-1 mod q) * p
        let diff = (mq + &self.q - (mp % &self.q)) % &self.q;
        let u = diff * &self.p_inv_q % &self.q;
        mp + u * &self.p
    }

    /// Textbook decryption `L(c^λ mod n²)·μ mod n` with `λ = (p-1)(q-1)`;
    /// slow, kept to cross-check the CRT path.
    pub fn decrypt_plain_formula(&self, c: &Ciphertext) -> BigUint {
        let n = &self.public.n;
        let lambda = self.phi();
        let x = c.as_biguint().modpow(&lambda, &self.public.n2);
        l_function(&x, n) * self.mu() % n
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
        let (tp, tq) = self.djn_crt.get_or_init(|| {
            rayon::join(
                || {
                    FixedBaseTable::build(
                        &(&self.public.hs % &self.p2),
                        &self.mont_p2,
                        DJN_EXPONENT_BITS,
                    )
                },
                || {
                    FixedBaseTable::build(
                        &(&self.public.hs % &self.q2),
                        &self.mont_q2,
                        DJN_EXPONENT_BITS,
                    )
                },
            )
        });
        let a = tp.pow(alpha, &self.mont_p2);
        let b = tq.pow(alpha, &self.mont_q2);
        let diff = (b + &self.q2 - (&a % &self.q2)) % &self.q2;
        let u = diff * &self.p2_inv_q2 % &self.q2;
        a + u * &self.p2
    }

    /// `r^n mod n²` via the CRT (both halves in parallel).
    pub fn rn_crt(&self, r: &BigUint) -> BigUint {
        let (a, b) = rayon::join(
            || self.mont_p2.pow(r, &self.n_mod_phi_p2),
            || self.mont_q2.pow(r, &self.n_mod_phi_q2),
        );
        // x = a + p² · ((b - a) · (p²)⁻¹ mod q²)
        let diff = (b + &self.q2 - (&a % &self.q2)) % &self.q2;
        let u = diff * &self.p2_inv_q2 % &self.q2;
        a + u * &self.p2
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
            let public = kp.public.djn_table().pow(&alpha, kp.public.mont_n2());
            assert_eq!(kp.private.djn_randomizer_crt(&alpha), public);
        }
        let m = BigUint::from(123_456_789u64);
        let c = kp.private.encrypt_djn_crt(&m).unwrap();
        assert_eq!(kp.private.decrypt(&c), m);
        assert!(kp.private.encrypt_djn_crt(kp.public.n()).is_err());
    }
}
