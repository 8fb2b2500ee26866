//! Parameter sets `(N, q = p_1 ... p_L, t = 2^64)` and the constants derived
//! from them.

use std::sync::Arc;

use num_bigint::BigUint;
use num_traits::{One, ToPrimitive};

use crate::arith::{is_prime, ntt_primes, Modulus, Shoup};
use crate::ntt::NttTable;
use crate::Error;

/// The HomomorphicEncryption.org standard's largest `log2 q` for 128-bit
/// classical security with a uniform ternary secret and error of standard
/// deviation 8/sqrt(2 pi) = 3.2 (Albrecht et al., "Homomorphic Encryption
/// Security Standard", HomomorphicEncryption.org, Toronto, November 2018,
/// Table 1; the same numbers are `SEAL_HE_STD_PARMS_128_TC` in Microsoft
/// SEAL's `util/hestdparms.h`).
pub const HE_STANDARD_128: [(usize, u32); 6] = [
    (1024, 27),
    (2048, 54),
    (4096, 109),
    (8192, 218),
    (16384, 438),
    (32768, 881),
];

/// The standard deviation of the error distribution: a centred binomial
/// distribution with `ETA` = 21 (the difference of two sums of 21 fair bits),
/// variance 21/2, standard deviation 3.24 >= 3.2, every sample in [-21, 21].
/// Microsoft SEAL samples its errors the same way (`sample_poly_cbd`).
pub const ETA: u32 = 21;
/// Variance of one error coefficient, `ETA / 2`.
pub const ERROR_VARIANCE: f64 = ETA as f64 / 2.0;

/// The plaintext modulus is `2^64`: plaintexts are polynomials over the
/// share ring `Z_2^64` itself.
pub const LOG_T: u32 = 64;

/// A parameter set: ring degree `n`, RNS primes `p_1 ... p_L` with
/// `q = p_1 ... p_L`, plaintext modulus `t = 2^64`.
pub struct Params {
    n: usize,
    moduli: Vec<Modulus>,
    tables: Vec<NttTable>,
    log2_q: f64,
    /// q mod 2^64.
    q_lo: u64,
    /// floor(q / 2^64) mod p_i.
    q_hi_mod: Vec<u64>,
    /// Decoding constants for each prefix `p_1 ... p_l` of the primes
    /// (index `l - 1`): results may be switched down to fewer primes.
    decoders: Vec<Decoder>,
    /// Constants for dropping prime `l` (index `l - 1`) from prime `i < l`.
    pub(crate) drop: Vec<Vec<crate::simd::DropPrime>>,
    /// log2 of each prefix product.
    log2_prefix: Vec<f64>,
    /// Constants to reduce unreduced sums of products, per prime.
    pub(crate) acc_reduce: Vec<crate::simd::AccReduce>,
    fingerprint: u64,
    secure: bool,
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Params")
            .field("n", &self.n)
            .field(
                "primes",
                &self.moduli.iter().map(|m| m.value()).collect::<Vec<_>>(),
            )
            .field("log2_q", &self.log2_q)
            .field("secure", &self.secure)
            .finish()
    }
}

/// Constants to decode modulo `q_l = p_1 ... p_l`.
#[derive(Clone, Debug)]
struct Decoder {
    /// (q_l / p_i)^-1 mod p_i.
    qstar_inv: Vec<Shoup>,
    /// floor(2^64 / p_i).
    dec_int: Vec<u64>,
    /// floor((2^64 mod p_i) * 2^64 / p_i): the fractional part of 2^64 / p_i
    /// in units of 2^-64.
    dec_frac: Vec<u64>,
}

/// The three primes of [`Params::n8192_q128`]: the two largest 43-bit primes
/// and the largest 42-bit prime that are 1 mod 2^14 (found by
/// [`crate::arith::ntt_primes`]; a test checks them). log2 q = 127.9999998.
pub const PRIMES_N8192_Q128: [u64; 3] = [8796092858369, 8796092792833, 4398046150657];
/// The four primes of [`Params::n8192_q180`]: the four largest 45-bit primes
/// that are 1 mod 2^14. log2 q = 179.9999999.
pub const PRIMES_N8192_Q180: [u64; 4] = [
    35184371613697,
    35184371417089,
    35184371138561,
    35184371089409,
];

impl Params {
    /// N = 8192 and a 128-bit q (three primes of 43, 43 and 42 bits): a query
    /// coefficient takes 16 bytes. 128-bit secure with a wide margin (the
    /// standard allows log2 q <= 218 at N = 8192). The default.
    /// Built once per process (the tables take milliseconds, which a
    /// batch-1 session would otherwise pay each time) and shared.
    pub fn n8192_q128() -> Arc<Params> {
        static BUILT: std::sync::OnceLock<Arc<Params>> = std::sync::OnceLock::new();
        BUILT
            .get_or_init(|| {
                Arc::new(
                    Self::build(8192, &PRIMES_N8192_Q128, true)
                        .expect("built-in parameters are valid"),
                )
            })
            .clone()
    }

    /// N = 8192 and a 180-bit q (four 45-bit primes): room to multiply by
    /// full 64-bit plaintexts (shares) without splitting them into digits, at
    /// 22.5 bytes per query coefficient.
    pub fn n8192_q180() -> Arc<Params> {
        Arc::new(
            Self::build(8192, &PRIMES_N8192_Q180, true).expect("built-in parameters are valid"),
        )
    }

    /// A parameter set from explicit primes, refused unless it reaches 128-bit
    /// security by [`HE_STANDARD_128`].
    pub fn new(n: usize, primes: &[u64]) -> Result<Arc<Params>, Error> {
        Self::build(n, primes, true).map(Arc::new)
    }

    /// Small, INSECURE parameters for quick tests: ring degree `n` (a power of
    /// two from 2 to 4096) with primes of the same sizes as
    /// [`Params::n8192_q128`] (43, 43, 42 bits), so the noise budget behaves
    /// like the real one while transforms are short.
    pub fn insecure_for_tests(n: usize) -> Arc<Params> {
        let mut primes = ntt_primes(43, n, 2, &[]);
        primes.extend(ntt_primes(42, n, 1, &primes));
        Arc::new(Self::build(n, &primes, false).expect("test parameters are valid"))
    }

    /// Small, INSECURE parameters with four 45-bit primes (like
    /// [`Params::n8192_q180`]) for quick tests.
    pub fn insecure_q180_for_tests(n: usize) -> Arc<Params> {
        let primes = ntt_primes(45, n, 4, &[]);
        Arc::new(Self::build(n, &primes, false).expect("test parameters are valid"))
    }

    fn build(n: usize, primes: &[u64], check_security: bool) -> Result<Params, Error> {
        let bad = |why: String| Error::InvalidParameters(why);
        if !n.is_power_of_two() || !(2..=32768).contains(&n) {
            return Err(bad(format!(
                "ring degree {n} is not a power of two in 2..=32768"
            )));
        }
        if primes.is_empty() {
            return Err(bad("no primes".into()));
        }
        for (i, &p) in primes.iter().enumerate() {
            // Below 2^50 so that products of residues accumulate in 128 bits
            // without reduction (see `matmul::mul_acc`).
            if !(1u64 << 20..1u64 << 50).contains(&p) || !is_prime(p) {
                return Err(bad(format!("modulus {p} is not a prime in [2^20, 2^50)")));
            }
            if (p - 1) % (2 * n as u64) != 0 {
                return Err(bad(format!("prime {p} is not 1 mod 2N = {}", 2 * n)));
            }
            if primes[..i].contains(&p) {
                return Err(bad(format!("prime {p} repeats")));
            }
        }
        let q: BigUint = primes.iter().map(|&p| BigUint::from(p)).product();
        let shift = q.bits().saturating_sub(64);
        let top = (&q >> shift).to_u64().unwrap_or(u64::MAX);
        let log2_q = (top as f64).log2() + shift as f64;
        let q_bits = q.bits() as u32;
        if check_security {
            let max = HE_STANDARD_128
                .iter()
                .find(|(deg, _)| *deg == n)
                .map(|(_, b)| *b)
                .unwrap_or(0);
            if q_bits > max {
                return Err(Error::InsecureParameters {
                    n,
                    log2_q: q_bits,
                    max,
                });
            }
        }
        // Decoding needs the fractional terms to stay small: p_i < 2^50 and
        // at most 8 primes keep the error below 8 * 2^-14 = 2^-11 (see
        // `decode`), inside the 2^-10 margin of the noise budget.
        if primes.len() > 8 {
            return Err(bad("more than 8 primes".into()));
        }
        let two64 = BigUint::one() << 64u32;
        let q_lo = (&q % &two64).to_u64().unwrap_or(0);
        let q_hi = &q >> 64u32;
        let moduli: Vec<Modulus> = primes.iter().map(|&p| Modulus::new(p)).collect();
        let q_hi_mod = primes
            .iter()
            .map(|&p| (&q_hi % p).to_u64().unwrap_or(0))
            .collect();
        let mut decoders = Vec::with_capacity(primes.len());
        let mut drop = Vec::with_capacity(primes.len());
        let mut log2_prefix = Vec::with_capacity(primes.len());
        for l in 1..=primes.len() {
            let ql: BigUint = primes[..l].iter().map(|&p| BigUint::from(p)).product();
            let shift = ql.bits().saturating_sub(64);
            let top = (&ql >> shift).to_u64().unwrap_or(u64::MAX);
            log2_prefix.push((top as f64).log2() + shift as f64);
            decoders.push(Decoder {
                qstar_inv: moduli[..l]
                    .iter()
                    .map(|m| {
                        let qstar = (&ql / m.value()) % m.value();
                        m.shoup(m.inv(qstar.to_u64().unwrap_or(1)))
                    })
                    .collect(),
                dec_int: primes[..l].iter().map(|&p| u64::MAX / p).collect(),
                dec_frac: primes[..l]
                    .iter()
                    .map(|&p| {
                        let rem = ((1u128 << 64) % p as u128) as u64;
                        (((rem as u128) << 64) / p as u128) as u64
                    })
                    .collect(),
            });
            let last = primes[l - 1];
            drop.push(
                moduli[..l - 1]
                    .iter()
                    .map(|m| {
                        let inv = m.inv(last % m.value());
                        crate::simd::DropPrime {
                            p: m.value(),
                            p_last: last,
                            p_last_mod: last % m.value(),
                            inv,
                            inv_s52: crate::simd::shoup52(inv, m.value()),
                        }
                    })
                    .collect(),
            );
        }
        let tables = moduli.iter().map(|&m| NttTable::new(m, n)).collect();
        // FNV-1a over (n, primes): tells two parties' parameter sets apart.
        let mut h: u64 = 0xcbf29ce484222325;
        for w in std::iter::once(n as u64).chain(primes.iter().copied()) {
            for byte in w.to_le_bytes() {
                h ^= byte as u64;
                h = h.wrapping_mul(0x100000001b3);
            }
        }
        Ok(Params {
            n,
            moduli,
            tables,
            log2_q,
            q_lo,
            q_hi_mod,
            decoders,
            drop,
            log2_prefix,
            acc_reduce: primes
                .iter()
                .map(|&p| crate::simd::AccReduce::new(p))
                .collect(),
            fingerprint: h,
            secure: check_security,
        })
    }

    pub fn n(&self) -> usize {
        self.n
    }
    pub fn moduli(&self) -> &[Modulus] {
        &self.moduli
    }
    pub fn levels(&self) -> usize {
        self.moduli.len()
    }
    /// The NTT tables of prime `i`.
    pub fn table(&self, i: usize) -> &NttTable {
        &self.tables[i]
    }
    /// log2 of the ciphertext modulus q.
    pub fn log2_q(&self) -> f64 {
        self.log2_q
    }
    /// Identifies (N, primes); carried in every message.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
    /// Whether the set was checked against [`HE_STANDARD_128`].
    pub fn is_secure(&self) -> bool {
        self.secure
    }
    /// Bits of one residue of prime `i` on the wire.
    pub(crate) fn residue_bits(&self, i: usize) -> u32 {
        64 - self.moduli[i].value().leading_zeros()
    }
    /// Bits of one full coefficient (all residues) on the wire.
    pub fn coefficient_bits(&self) -> u32 {
        self.prefix_bits(self.levels())
    }
    /// Bits of one coefficient with residues of the first `levels` primes.
    pub fn prefix_bits(&self, levels: usize) -> u32 {
        (0..levels).map(|i| self.residue_bits(i)).sum()
    }
    /// log2 of the product of the first `levels` primes.
    pub fn log2_prefix(&self, levels: usize) -> f64 {
        self.log2_prefix[levels - 1]
    }

    /// Switches a coefficient given by its residues modulo `p_1 ... p_l`
    /// (`res[..l]`) to `p_1 ... p_(l-1)`: `x -> (x - c) / p_l` with `c` the
    /// centred residue modulo `p_l`, i.e. `round(x / p_l)`. A ciphertext's
    /// phase is divided by `p_l` up to an error of at most `(1 + |s|_1) / 2`.
    #[inline]
    pub(crate) fn drop_last_prime(&self, res: &mut [u64], l: usize) {
        let p_last = self.moduli[l - 1].value();
        let c = res[l - 1];
        let centred = if c > p_last / 2 {
            c as i64 - p_last as i64
        } else {
            c as i64
        };
        for ((r, md), dp) in res[..l - 1]
            .iter_mut()
            .zip(&self.moduli)
            .zip(&self.drop[l - 1])
        {
            let d = md.sub(*r, md.from_i64(centred));
            *r = md.mul(d, dp.inv);
        }
    }

    /// The residues of `round(q * m / 2^64)` for a message `m` in `Z_2^64`:
    /// with `q = q_hi * 2^64 + q_lo`, `q m / 2^64 = q_hi m + q_lo m / 2^64`,
    /// and only the second term needs rounding. Exact rounding (rather than
    /// `floor(q / t) * m`) keeps the encoding error below 1/2 whatever `m`,
    /// which is what lets a plaintext product wrap modulo `t` harmlessly.
    #[inline]
    pub(crate) fn encode_scaled(&self, m: u64, out: &mut [u64]) {
        let frac = ((self.q_lo as u128 * m as u128 + (1u128 << 63)) >> 64) as u64;
        for (i, md) in self.moduli.iter().enumerate() {
            let v = md.mul(self.q_hi_mod[i], md.reduce(m));
            out[i] = md.add(v, md.reduce(frac));
        }
    }

    /// `round(2^64 * phi / q) mod 2^64` from the residues of a phase `phi`.
    ///
    /// With `y_i = [r_i (q/p_i)^-1]_{p_i}`, `phi = sum_i y_i q/p_i - v q` for
    /// an integer `v`, so `2^64 phi / q = sum_i y_i 2^64 / p_i - v 2^64`,
    /// and the last term vanishes mod 2^64: no big integers are needed. The
    /// fractional parts of `2^64 / p_i` are kept to 64 bits, so the sum is
    /// off by less than `L * 2^-14` (each `y_i < 2^50` times an error below
    /// `2^-64`), at most `2^-11`; the noise budget keeps the true value
    /// further than that from a rounding boundary (see [`crate::layout`]).
    #[inline]
    #[cfg(test)]
    pub(crate) fn decode(&self, residues: impl Iterator<Item = u64>) -> u64 {
        self.decode_prefix(self.levels(), residues)
    }

    /// The decoding above (`decode`) modulo the first `levels` primes.
    #[inline]
    pub(crate) fn decode_prefix(&self, levels: usize, residues: impl Iterator<Item = u64>) -> u64 {
        let d = &self.decoders[levels - 1];
        let mut int = 0u64;
        let mut frac = 0u128;
        for (i, r) in residues.take(levels).enumerate() {
            let p = self.moduli[i].value();
            let y = d.qstar_inv[i].mul(r, p);
            int = int.wrapping_add(y.wrapping_mul(d.dec_int[i]));
            frac += y as u128 * d.dec_frac[i] as u128;
        }
        let carry = (frac >> 64) as u64;
        let round = ((frac as u64) >> 63) & 1;
        int.wrapping_add(carry).wrapping_add(round)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn builtin_primes_are_the_documented_ones() {
        assert_eq!(ntt_primes(43, 8192, 2, &[])[..], PRIMES_N8192_Q128[..2]);
        assert_eq!(ntt_primes(42, 8192, 1, &[])[0], PRIMES_N8192_Q128[2]);
        assert_eq!(ntt_primes(45, 8192, 4, &[])[..], PRIMES_N8192_Q180[..]);
        let p = Params::n8192_q128();
        assert!(p.log2_q() > 127.99 && p.log2_q() < 128.0);
        assert_eq!(p.coefficient_bits(), 128);
        let p = Params::n8192_q180();
        assert!(p.log2_q() > 179.99 && p.log2_q() < 180.0);
    }

    #[test]
    fn insecure_sets_are_refused() {
        // N = 4096 allows 109 bits; 128 bits is too many.
        let mut primes = ntt_primes(43, 4096, 2, &[]);
        primes.extend(ntt_primes(42, 4096, 1, &primes));
        assert!(matches!(
            Params::new(4096, &primes),
            Err(Error::InsecureParameters {
                n: 4096,
                max: 109,
                ..
            })
        ));
        assert!(matches!(
            Params::new(8192, &[17]),
            Err(Error::InvalidParameters(_))
        ));
        assert!(matches!(
            Params::new(8192, &[PRIMES_N8192_Q128[0], PRIMES_N8192_Q128[0]]),
            Err(Error::InvalidParameters(_))
        ));
        // 2^43 - 1 is not prime... and a prime that is not 1 mod 2N:
        assert!(Params::new(8192, &[(1 << 61) - 1]).is_err());
        assert!(Params::new(8192, &PRIMES_N8192_Q128).is_ok());
    }

    fn big_q(p: &Params) -> BigUint {
        p.moduli()
            .iter()
            .map(|m| BigUint::from(m.value()))
            .product()
    }

    proptest! {
        #[test]
        fn encode_is_exact_rounding(m in any::<u64>()) {
            let p = Params::insecure_for_tests(16);
            let q = big_q(&p);
            let expect = ((&q * m) + (BigUint::one() << 63u32)) >> 64u32;
            let mut out = vec![0; 3];
            p.encode_scaled(m, &mut out);
            for (i, md) in p.moduli().iter().enumerate() {
                prop_assert_eq!(out[i], (&expect % md.value()).to_u64().unwrap());
            }
        }

        #[test]
        fn decode_rounds_phase(m in any::<u64>(), noise in -(1i64 << 62)..(1i64 << 62), q180 in any::<bool>()) {
            // phase = round(q m / 2^64) + noise with |noise| < q / 2^66
            let p = if q180 { Params::insecure_q180_for_tests(16) } else { Params::insecure_for_tests(16) };
            let l = p.levels();
            let mut enc = vec![0; l];
            p.encode_scaled(m, &mut enc);
            let res: Vec<u64> = p.moduli().iter().enumerate()
                .map(|(i, md)| md.add(enc[i], md.from_i64(noise))).collect();
            prop_assert_eq!(p.decode(res.into_iter()), m);
        }

        #[test]
        fn dropping_primes_divides_the_phase(m in any::<u64>(), noise in -(1i64 << 40)..(1i64 << 40)) {
            // round(q m / 2^64) + noise, switched from 3 primes to 2 and to
            // 1, still decodes to m: the phase is divided by the dropped
            // primes up to 1/2 each (no key here: a = 0).
            let p = Params::insecure_for_tests(16);
            let mut enc = vec![0; 3];
            p.encode_scaled(m, &mut enc);
            let mut res: Vec<u64> = p.moduli().iter().enumerate()
                .map(|(i, md)| md.add(enc[i], md.from_i64(noise))).collect();
            p.drop_last_prime(&mut res, 3);
            prop_assert_eq!(p.decode_prefix(2, res.iter().copied()), m);
            // q_1 / 2^64 < 1: one prime is too small to hold the scale.
            prop_assert!(p.log2_prefix(1) < 64.0 && p.log2_prefix(2) > 85.0);
        }
    }
}
