//! Randomness: the public expansion of seeds into uniform polynomials, the
//! private generator seeded from the operating system, and the secret, error
//! and flooding distributions.

use aes::cipher::{KeyIvInit, StreamCipher};
use rand::TryRng;
use zeroize::{Zeroize, Zeroizing};

use crate::params::{Params, ETA};
use crate::Error;

/// A public seed from which both parties expand the `a` part of a ciphertext.
pub type Seed = [u8; 16];

type Cipher = ctr::Ctr64LE<aes::Aes128>;

/// Expands `seed` into a uniform polynomial directly in the NTT domain (the
/// NTT of a uniform polynomial is uniform, so both parties may simply agree
/// that these values are `NTT(a)`), `L * N` residues, prime by prime.
/// AES-128 in counter mode is the generator (AES-NI when the CPU has it);
/// `domain` separates independent expansions of one seed. Rejection sampling
/// keeps each residue exactly uniform.
pub fn expand_uniform_ntt(params: &Params, seed: &Seed, domain: u8, index: u32, out: &mut [u64]) {
    let n = params.n();
    debug_assert_eq!(out.len(), n * params.levels());
    // The counter occupies the low 8 bytes of the block; the domain and the
    // index fill the high 8, so no two expansions share a keystream.
    let mut iv = [0u8; 16];
    iv[8] = domain;
    iv[9] = b'a';
    iv[12..16].copy_from_slice(&index.to_le_bytes());
    let mut cipher = Cipher::new(seed.into(), &iv.into());
    let mut buf = vec![0u8; 8 * 1024];
    let mut pos = buf.len();
    for (i, md) in params.moduli().iter().enumerate() {
        let p = md.value();
        let mask = u64::MAX >> p.leading_zeros();
        let dst = &mut out[i * n..(i + 1) * n];
        let mut filled = 0;
        while filled < n {
            if pos == buf.len() {
                buf.iter_mut().for_each(|b| *b = 0);
                cipher.apply_keystream(&mut buf);
                pos = 0;
            }
            let mut word = [0u8; 8];
            word.copy_from_slice(&buf[pos..pos + 8]);
            pos += 8;
            let v = u64::from_le_bytes(word) & mask;
            if v < p {
                dst[filled] = v;
                filled += 1;
            }
        }
    }
}

/// The private generator of one party: AES-128 in counter mode (as in
/// NIST's CTR_DRBG, with AES-NI where the CPU has it) keyed from the
/// operating system's CSPRNG. Fast enough to draw every noise coefficient
/// from it. Its buffer is zeroized on drop.
pub struct SecretRng {
    cipher: Cipher,
    buf: Zeroizing<Vec<u8>>,
    pos: usize,
}

const RNG_BUFFER: usize = 8192;

impl std::fmt::Debug for SecretRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretRng(..)")
    }
}

impl SecretRng {
    /// Keyed from the operating system's CSPRNG.
    pub fn from_os() -> Result<SecretRng, Error> {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::SysRng
            .try_fill_bytes(&mut key[..])
            .map_err(|e| Error::Randomness(e.to_string()))?;
        Ok(SecretRng::from_key(&key))
    }

    /// Deterministic, for reproducible tests only.
    pub fn from_seed_for_tests(seed: u64) -> SecretRng {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        SecretRng::from_key(&key)
    }

    fn from_key(key: &[u8; 32]) -> SecretRng {
        let mut k = [0u8; 16];
        let mut iv = [0u8; 16];
        k.copy_from_slice(&key[..16]);
        iv.copy_from_slice(&key[16..]);
        let cipher = Cipher::new(&k.into(), &iv.into());
        k.zeroize();
        iv.zeroize();
        SecretRng {
            cipher,
            buf: Zeroizing::new(vec![0u8; RNG_BUFFER]),
            pos: RNG_BUFFER,
        }
    }

    #[inline]
    fn refill(&mut self) {
        self.buf.iter_mut().for_each(|b| *b = 0);
        self.cipher.apply_keystream(&mut self.buf);
        self.pos = 0;
    }

    pub fn fill_bytes(&mut self, out: &mut [u8]) {
        for b in out.iter_mut() {
            if self.pos == RNG_BUFFER {
                self.refill();
            }
            *b = self.buf[self.pos];
            self.pos += 1;
        }
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        if self.pos + 8 > RNG_BUFFER {
            self.refill();
        }
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.buf[self.pos..self.pos + 8]);
        self.pos += 8;
        u64::from_le_bytes(w)
    }

    pub fn seed(&mut self) -> Seed {
        let mut s = [0u8; 16];
        self.fill_bytes(&mut s);
        s
    }

    /// One sample of the centred binomial distribution with parameter
    /// [`ETA`]: popcount of 21 bits minus popcount of 21 others.
    #[inline]
    pub fn cbd(&mut self) -> i64 {
        let x = self.next_u64();
        let mask = (1u64 << ETA) - 1;
        (x & mask).count_ones() as i64 - ((x >> ETA) & mask).count_ones() as i64
    }

    /// Uniform ternary coefficients in {-1, 0, 1}.
    pub fn ternary(&mut self, out: &mut [i8]) {
        let mut filled = 0;
        while filled < out.len() {
            let mut x = self.next_u64();
            for _ in 0..32 {
                let v = (x & 3) as i8;
                x >>= 2;
                if v < 3 {
                    out[filled] = v - 1;
                    filled += 1;
                    if filled == out.len() {
                        break;
                    }
                }
            }
        }
    }

    /// A uniform integer in `[-bound, bound]`, `bound < 2^126`.
    pub fn uniform_symmetric(&mut self, bound: u128) -> i128 {
        debug_assert!(bound < 1 << 126);
        let range = 2 * bound + 1;
        let bits = 128 - range.leading_zeros();
        let mask = if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        loop {
            let v = (((self.next_u64() as u128) << 64) | self.next_u64() as u128) & mask;
            if v < range {
                return v as i128 - bound as i128;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_is_deterministic_uniform_and_separated() {
        let p = Params::insecure_for_tests(256);
        let mut a = vec![0; 256 * 3];
        let mut b = vec![0; 256 * 3];
        let mut c = vec![0; 256 * 3];
        let mut d = vec![0; 256 * 3];
        expand_uniform_ntt(&p, &[7; 16], 0, 0, &mut a);
        expand_uniform_ntt(&p, &[7; 16], 0, 0, &mut b);
        expand_uniform_ntt(&p, &[7; 16], 1, 0, &mut c);
        expand_uniform_ntt(&p, &[7; 16], 0, 1, &mut d);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        for (i, md) in p.moduli().iter().enumerate() {
            let chunk = &a[i * 256..(i + 1) * 256];
            assert!(chunk.iter().all(|&v| v < md.value()));
            // The top bit is set in about half of the residues.
            let high = chunk.iter().filter(|&&v| v > md.value() / 2).count();
            assert!((80..176).contains(&high), "{high}");
        }
    }

    #[test]
    fn distributions_have_the_right_moments() {
        let mut rng = SecretRng::from_seed_for_tests(1);
        let samples: Vec<i64> = (0..20000).map(|_| rng.cbd()).collect();
        assert!(samples.iter().all(|v| v.abs() <= ETA as i64));
        let mean = samples.iter().sum::<i64>() as f64 / 20000.0;
        let var = samples
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / 20000.0;
        assert!(mean.abs() < 0.1 && (var - 10.5).abs() < 0.6, "{mean} {var}");
        let mut t = vec![0i8; 30000];
        rng.ternary(&mut t);
        for v in -1..=1 {
            let c = t.iter().filter(|&&x| x == v).count();
            assert!((9400..10600).contains(&c), "{v}: {c}");
        }
        for _ in 0..1000 {
            let v = rng.uniform_symmetric(5);
            assert!((-5..=5).contains(&v));
        }
        let big = 1u128 << 100;
        let v: Vec<i128> = (0..64).map(|_| rng.uniform_symmetric(big)).collect();
        assert!(v.iter().all(|x| x.unsigned_abs() <= big));
        assert!(v.iter().any(|x| x.unsigned_abs() > big / 4));
    }

    #[test]
    fn os_generator_works() {
        let mut a = SecretRng::from_os().unwrap();
        let mut b = SecretRng::from_os().unwrap();
        assert_ne!(a.seed(), b.seed());
    }
}
