//! Word-size modular arithmetic for the RNS primes: Barrett reduction of
//! 128-bit values, Shoup multiplication by precomputed constants, and the
//! prime search used to build parameter sets.
//!
//! The two reductions follow the descriptions in Harvey, "Faster arithmetic
//! for number-theoretic transforms" (J. Symb. Comp. 2014) and the way
//! Microsoft SEAL uses them (`util/uintarithsmallmod.h`: a two-word Barrett
//! constant `floor(2^128 / p)`); the code here is written from those
//! descriptions, not copied.

/// An odd prime below 2^62 (so that values in `[0, 4p)` fit a `u64`, which the
/// lazy NTT butterflies need), with its reduction constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modulus {
    p: u64,
    /// floor(2^128 / p), low word.
    ratio_lo: u64,
    /// floor(2^128 / p), high word.
    ratio_hi: u64,
}

impl Modulus {
    /// `p` must be odd, at least 3 and below 2^62.
    pub(crate) fn new(p: u64) -> Modulus {
        assert!(
            p >= 3 && p % 2 == 1 && p < (1 << 62),
            "modulus out of range"
        );
        // floor(2^128 / p) = floor((2^128 - 1) / p) since p does not divide 2^128.
        let ratio = u128::MAX / p as u128;
        Modulus {
            p,
            ratio_lo: ratio as u64,
            ratio_hi: (ratio >> 64) as u64,
        }
    }

    #[inline(always)]
    pub fn value(&self) -> u64 {
        self.p
    }

    /// `x mod p` for any 128-bit `x` (Barrett reduction with base 2^64).
    #[inline(always)]
    pub fn reduce_u128(&self, x: u128) -> u64 {
        let lo = x as u64;
        let hi = (x >> 64) as u64;
        // The quotient estimate is the high 128 bits of x * ratio (a 256-bit
        // product); only its low word is needed, as x - quot * p < 3p.
        let carry = ((lo as u128 * self.ratio_lo as u128) >> 64) as u64;
        let t = lo as u128 * self.ratio_hi as u128;
        let (mid, c1) = (t as u64).overflowing_add(carry);
        let mid_hi = ((t >> 64) as u64).wrapping_add(c1 as u64);
        let t2 = hi as u128 * self.ratio_lo as u128;
        let (_, c2) = mid.overflowing_add(t2 as u64);
        let carry2 = ((t2 >> 64) as u64).wrapping_add(c2 as u64);
        let quot = hi
            .wrapping_mul(self.ratio_hi)
            .wrapping_add(mid_hi)
            .wrapping_add(carry2);
        let mut r = lo.wrapping_sub(quot.wrapping_mul(self.p));
        // r < 3p here
        if r >= self.p {
            r -= self.p;
        }
        if r >= self.p {
            r -= self.p;
        }
        r
    }

    /// `x mod p` for a 64-bit `x`.
    #[inline(always)]
    pub fn reduce(&self, x: u64) -> u64 {
        self.reduce_u128(x as u128)
    }

    #[inline(always)]
    pub fn mul(&self, a: u64, b: u64) -> u64 {
        self.reduce_u128(a as u128 * b as u128)
    }

    #[inline(always)]
    pub fn add(&self, a: u64, b: u64) -> u64 {
        let s = a + b;
        if s >= self.p {
            s - self.p
        } else {
            s
        }
    }

    #[inline(always)]
    pub fn sub(&self, a: u64, b: u64) -> u64 {
        if a >= b {
            a - b
        } else {
            a + self.p - b
        }
    }

    #[inline(always)]
    pub fn neg(&self, a: u64) -> u64 {
        if a == 0 {
            0
        } else {
            self.p - a
        }
    }

    /// The residue of a signed value.
    #[inline(always)]
    pub fn from_i64(&self, v: i64) -> u64 {
        let r = self.reduce(v.unsigned_abs());
        if v < 0 {
            self.neg(r)
        } else {
            r
        }
    }

    /// The residue of a signed 128-bit value.
    #[inline]
    pub fn from_i128(&self, v: i128) -> u64 {
        let r = self.reduce_u128(v.unsigned_abs());
        if v < 0 {
            self.neg(r)
        } else {
            r
        }
    }

    pub fn pow(&self, mut base: u64, mut e: u64) -> u64 {
        let mut acc = 1u64;
        base = self.reduce(base);
        while e > 0 {
            if e & 1 == 1 {
                acc = self.mul(acc, base);
            }
            base = self.mul(base, base);
            e >>= 1;
        }
        acc
    }

    /// The inverse of a nonzero residue (Fermat).
    pub fn inv(&self, a: u64) -> u64 {
        debug_assert!(!a.is_multiple_of(self.p));
        self.pow(a, self.p - 2)
    }

    /// A multiplier `w < p` with its Shoup constant `floor(w * 2^64 / p)`.
    pub fn shoup(&self, w: u64) -> Shoup {
        debug_assert!(w < self.p);
        Shoup {
            w,
            w_shoup: (((w as u128) << 64) / self.p as u128) as u64,
        }
    }
}

/// A fixed multiplier with its precomputed Shoup quotient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Shoup {
    pub w: u64,
    pub w_shoup: u64,
}

impl Shoup {
    /// `x * w mod p`, lazily: the result is in `[0, 2p)`. Any 64-bit `x`.
    #[inline(always)]
    pub fn mul_lazy(&self, x: u64, p: u64) -> u64 {
        let q = ((x as u128 * self.w_shoup as u128) >> 64) as u64;
        x.wrapping_mul(self.w).wrapping_sub(q.wrapping_mul(p))
    }

    /// `x * w mod p`, fully reduced.
    #[inline(always)]
    pub fn mul(&self, x: u64, p: u64) -> u64 {
        let r = self.mul_lazy(x, p);
        if r >= p {
            r - p
        } else {
            r
        }
    }
}

/// Deterministic Miller–Rabin for 64-bit integers (the first 12 primes as
/// bases are a proven witness set below 3.3 * 10^24).
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    const BASES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    for &b in &BASES {
        if n == b {
            return true;
        }
        if n.is_multiple_of(b) {
            return false;
        }
    }
    let mulmod = |a: u64, b: u64| ((a as u128 * b as u128) % n as u128) as u64;
    let powmod = |mut b: u64, mut e: u64| {
        let mut acc = 1u64;
        while e > 0 {
            if e & 1 == 1 {
                acc = mulmod(acc, b);
            }
            b = mulmod(b, b);
            e >>= 1;
        }
        acc
    };
    let s = (n - 1).trailing_zeros();
    let d = (n - 1) >> s;
    'witness: for &a in &BASES {
        let mut x = powmod(a, d);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mulmod(x, x);
            if x == n - 1 {
                continue 'witness;
            }
        }
        return false;
    }
    true
}

/// The largest `count` primes below `2^bits` that are `1 mod 2n` (so that the
/// negacyclic NTT of length `n` exists), in decreasing order, skipping any in
/// `exclude`.
pub fn ntt_primes(bits: u32, n: usize, count: usize, exclude: &[u64]) -> Vec<u64> {
    assert!((20..=62).contains(&bits), "prime size out of range");
    let step = 2 * n as u64;
    let mut c = ((1u64 << bits) - 1) / step * step + 1;
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        assert!(c > step, "ran out of primes");
        if is_prime(c) && !exclude.contains(&c) {
            out.push(c);
        }
        c -= step;
    }
    out
}

/// A primitive `2n`-th root of unity mod `p`, the same one on every machine:
/// the first candidate `x^((p-1)/2n)` for `x = 2, 3, ...` whose `n`-th power
/// is `-1`.
pub fn primitive_root_2n(m: &Modulus, n: usize) -> u64 {
    let p = m.value();
    let two_n = 2 * n as u64;
    assert_eq!((p - 1) % two_n, 0, "p is not 1 mod 2n");
    for x in 2..p {
        let g = m.pow(x, (p - 1) / two_n);
        if m.pow(g, n as u64) == p - 1 {
            return g;
        }
    }
    unreachable!("every prime 1 mod 2n has a primitive 2n-th root")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P43: u64 = 8796092858369; // a 43-bit prime 1 mod 2^14

    #[test]
    fn known_primes() {
        assert!(is_prime(P43));
        assert!(is_prime((1u64 << 61) - 1));
        assert!(!is_prime((1u64 << 61) + 1));
        assert!(!is_prime(3215031751)); // strong pseudoprime to bases 2, 3, 5, 7
        assert!(!is_prime(1));
        assert!(is_prime(2));
    }

    #[test]
    fn prime_search_gives_ntt_friendly_primes() {
        let ps = ntt_primes(43, 8192, 3, &[]);
        assert_eq!(ps.len(), 3);
        for &p in &ps {
            assert!(is_prime(p));
            assert_eq!(p % 16384, 1);
            assert!(p < 1 << 43 && p > 1 << 42);
        }
        assert!(ps[0] > ps[1] && ps[1] > ps[2]);
    }

    #[test]
    fn root_has_order_2n() {
        let m = Modulus::new(P43);
        let g = primitive_root_2n(&m, 8192);
        assert_eq!(m.pow(g, 8192), P43 - 1);
        assert_eq!(m.pow(g, 16384), 1);
    }

    proptest! {
        #[test]
        fn barrett_matches_remainder(x in any::<u128>(), pick in 0usize..3) {
            let ps = [P43, (1u64 << 61) - 1, 12289];
            let m = Modulus::new(ps[pick]);
            prop_assert_eq!(m.reduce_u128(x) as u128, x % ps[pick] as u128);
        }

        #[test]
        fn shoup_matches_remainder(x in any::<u64>(), w in any::<u64>()) {
            let m = Modulus::new(P43);
            let w = w % P43;
            let s = m.shoup(w);
            let lazy = s.mul_lazy(x, P43);
            prop_assert!(lazy < 2 * P43);
            prop_assert_eq!(s.mul(x, P43) as u128, (x as u128 * w as u128) % P43 as u128);
        }

        #[test]
        fn signed_residues(v in any::<i64>()) {
            let m = Modulus::new(P43);
            let expect = (v as i128).rem_euclid(P43 as i128) as u64;
            prop_assert_eq!(m.from_i64(v), expect);
            prop_assert_eq!(m.from_i128(v as i128 * 1_000_003), (v as i128 * 1_000_003).rem_euclid(P43 as i128) as u64);
        }
    }
}
