//! Random prime generation (Miller–Rabin after a small-prime sieve).

use num_bigint::{BigRng010 as BigRng, BigUint};
use num_integer::Integer;
use num_traits::{One, ToPrimitive, Zero};
use rand::Rng;

/// Odd primes below 2000, used to sieve candidates.
fn small_primes() -> &'static [u32] {
    static PRIMES: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    PRIMES.get_or_init(|| {
        let mut v = Vec::new();
        'outer: for c in (3u32..2000).step_by(2) {
            for &p in &v {
                if p * p > c {
                    break;
                }
                if c % p == 0 {
                    continue 'outer;
                }
            }
            v.push(c);
        }
        v
    })
}

/// Miller–Rabin with `rounds` random bases (plus base 2).
pub(crate) fn is_probable_prime<R: Rng + ?Sized>(n: &BigUint, rounds: usize, rng: &mut R) -> bool {
    let two = BigUint::from(2u32);
    if *n < two {
        return false;
    }
    if let Some(small) = n.to_u64() {
        if small < 4 {
            return true;
        }
    }
    if n.is_even() {
        return false;
    }
    for &p in small_primes() {
        let p = BigUint::from(p);
        if *n == p {
            return true;
        }
        if (n % &p).is_zero() {
            return false;
        }
    }
    let n_minus_1 = n - 1u32;
    let s = n_minus_1.trailing_zeros().unwrap_or(0);
    let d = &n_minus_1 >> s;
    let ctx = super::monty::Monty::new(n).expect("n is odd and > 3 here");
    let witness = |a: &BigUint| -> bool {
        // true if `a` proves n composite
        let mut x = ctx.pow(a, &d, n.bits()); // d is secret: the ladder
        if x.is_one() || x == n_minus_1 {
            return false;
        }
        for _ in 1..s {
            x = &x * &x % n;
            if x == n_minus_1 {
                return false;
            }
            if x.is_one() {
                return true;
            }
        }
        true
    };
    if witness(&two) {
        return false;
    }
    let upper = &n_minus_1 - 1u32; // bases in [2, n-2]
    for _ in 0..rounds {
        let a = rng.random_biguint_range(&two, &upper.clone().max(BigUint::from(3u32)));
        if witness(&a) {
            return false;
        }
    }
    true
}

/// Number of Miller–Rabin rounds for a prime of `bits` bits (error ≤ 2^-100
/// for random candidates, FIPS 186-4 table C.2 is laxer).
fn rounds_for(bits: u64) -> usize {
    if bits >= 1024 {
        8
    } else if bits >= 512 {
        12
    } else {
        40
    }
}

/// A random prime of exactly `bits` bits with its two top bits set.
/// `on_candidate` is called once per rejected candidate (for progress only).
pub(crate) fn random_prime<R: Rng + ?Sized>(
    bits: u64,
    rng: &mut R,
    on_candidate: &mut dyn FnMut(),
) -> BigUint {
    assert!(bits >= 4, "prime size too small");
    let primes = small_primes();
    loop {
        let mut cand = rng.random_biguint(bits);
        cand.set_bit(bits - 1, true);
        cand.set_bit(bits - 2, true);
        cand.set_bit(0, true);
        // incremental sieve over a window of odd offsets
        let residues: Vec<u32> = primes
            .iter()
            .map(|&p| (&cand % p).to_u32().unwrap_or(0))
            .collect();
        let mut offset: u32 = 0;
        while offset < 4096 {
            let ok = primes.iter().zip(&residues).all(|(&p, &r)| {
                let v = (r + offset) % p;
                v != 0 || (bits <= 11 && BigUint::from(p) == &cand + offset)
            });
            if ok {
                let c = &cand + offset;
                if c.bits() != bits {
                    break;
                }
                if is_probable_prime(&c, rounds_for(bits), rng) {
                    return c;
                }
            }
            on_candidate();
            offset += 2;
        }
    }
}

/// Integer square root helper for recovering p, q from n and φ(n).
pub(crate) fn factor_from_phi(n: &BigUint, phi: &BigUint) -> Option<(BigUint, BigUint)> {
    // p + q = n - φ + 1 ; p, q = (s ± sqrt(s² - 4n)) / 2
    if phi >= n {
        return None;
    }
    let s = n - phi + 1u32;
    let s2 = &s * &s;
    let four_n = n << 2u32;
    if s2 < four_n {
        return None;
    }
    let disc = s2 - four_n;
    let r = disc.sqrt();
    if &r * &r != disc || (&s + &r).is_odd() {
        return None;
    }
    let p = (&s - &r) >> 1u32;
    let q = (&s + &r) >> 1u32;
    if p.is_zero() || p.is_one() || &p * &q != *n {
        return None;
    }
    Some((p, q))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn small_primes_classified() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let primes: Vec<u64> = (0u64..200)
            .filter(|&k| is_probable_prime(&BigUint::from(k), 5, &mut rng))
            .collect();
        assert_eq!(&primes[..10], &[2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert_eq!(primes.len(), 46);
        // Carmichael number 561
        assert!(!is_probable_prime(&BigUint::from(561u32), 5, &mut rng));
    }

    #[test]
    fn random_prime_has_exact_size() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        for bits in [16u64, 64, 256] {
            let p = random_prime(bits, &mut rng, &mut || {});
            assert_eq!(p.bits(), bits);
        }
    }
}
