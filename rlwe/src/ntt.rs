//! The negacyclic number-theoretic transform over one RNS prime.
//!
//! `forward` maps the coefficients of `a(X)` in `Z_p[X]/(X^N + 1)` to the
//! evaluations `a(psi^(2 brv(i) + 1))` in bit-reversed order, so that a ring
//! product is a pointwise product; `inverse` undoes it. The loops are the
//! Cooley–Tukey / Gentleman–Sande pair of Longa and Naehrig ("Speeding up the
//! Number Theoretic Transform for Faster Ideal Lattice-Based Cryptography",
//! CANS 2016, Algorithms 1 and 2) with the negacyclic twist folded into the
//! twiddles, and Harvey's lazy butterflies (values kept in `[0, 4p)` between
//! layers, Shoup multiplication by the twiddles), as SEAL does in
//! `util/ntt.cpp`. Written from the papers.

use crate::arith::{primitive_root_2n, Modulus, Shoup};
use crate::simd::{has_ifma, shoup52};

/// Twiddles of the three last forward (first three inverse) layers, laid out
/// per block of 8 coefficients so that eight blocks load as one vector:
/// slot 0 holds `w[n/8 + b]`, slots 1 and 2 `w[n/4 + 2b + {0,1}]`, slots 3
/// to 6 `w[n/2 + 4b + {0..3}]`, each `n/8` long.
#[derive(Clone, Debug, Default)]
pub(crate) struct TailTwiddles {
    pub w: Vec<u64>,
    pub s: Vec<u64>,
}

impl TailTwiddles {
    fn new(n: usize, p: u64, tw: &[Shoup]) -> TailTwiddles {
        let blocks = n / 8;
        let mut w = vec![0u64; 7 * blocks];
        let mut s = vec![0u64; 7 * blocks];
        if n >= 64 {
            for b in 0..blocks {
                let idx = [
                    n / 8 + b,
                    n / 4 + 2 * b,
                    n / 4 + 2 * b + 1,
                    n / 2 + 4 * b,
                    n / 2 + 4 * b + 1,
                    n / 2 + 4 * b + 2,
                    n / 2 + 4 * b + 3,
                ];
                for (slot, &i) in idx.iter().enumerate() {
                    w[slot * blocks + b] = tw[i].w;
                    s[slot * blocks + b] = shoup52(tw[i].w, p);
                }
            }
        }
        TailTwiddles { w, s }
    }
}

/// Twiddle tables for one prime and one ring degree.
#[derive(Clone, Debug)]
pub struct NttTable {
    modulus: Modulus,
    log_n: u32,
    /// psi^brv(i) for i in 0..n (index 0 unused).
    fwd: Vec<Shoup>,
    /// psi^-brv(i) for i in 0..n (index 0 unused).
    inv: Vec<Shoup>,
    /// n^-1 mod p.
    pub(crate) n_inv: Shoup,
    /// n^-1 * psi^-brv(1): the last inverse layer's twiddle times n^-1.
    pub(crate) n_inv_w: Shoup,
    // The same constants for the 52-bit vector kernels.
    pub(crate) n: usize,
    pub(crate) p: u64,
    pub(crate) fwd_w: Vec<u64>,
    pub(crate) fwd_s52: Vec<u64>,
    pub(crate) inv_w: Vec<u64>,
    pub(crate) inv_s52: Vec<u64>,
    pub(crate) fwd_tail: TailTwiddles,
    pub(crate) inv_tail: TailTwiddles,
    pub(crate) n_inv_s52: u64,
    pub(crate) n_inv_w_s52: u64,
    vector: bool,
}

fn bit_reverse(x: usize, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        x.reverse_bits() >> (usize::BITS - bits)
    }
}

impl NttTable {
    pub fn new(modulus: Modulus, n: usize) -> NttTable {
        assert!(
            n.is_power_of_two() && n >= 2,
            "ring degree must be a power of two"
        );
        let log_n = n.trailing_zeros();
        let psi = primitive_root_2n(&modulus, n);
        let psi_inv = modulus.inv(psi);
        // psi^e and psi^-e for every e < n by running products (2n
        // multiplications; a `pow` per entry made building the tables the
        // largest cost of a batch-1 session without a dealer).
        let mut pw = vec![1u64; n];
        let mut pw_inv = vec![1u64; n];
        for e in 1..n {
            pw[e] = modulus.mul(pw[e - 1], psi);
            pw_inv[e] = modulus.mul(pw_inv[e - 1], psi_inv);
        }
        let mut fwd = vec![Shoup::default(); n];
        let mut inv = vec![Shoup::default(); n];
        for (i, (f, v)) in fwd.iter_mut().zip(inv.iter_mut()).enumerate().skip(1) {
            let e = bit_reverse(i, log_n);
            *f = modulus.shoup(pw[e]);
            *v = modulus.shoup(pw_inv[e]);
        }
        let n_inv_raw = modulus.inv(n as u64);
        let n_inv = modulus.shoup(n_inv_raw);
        let n_inv_w = modulus.shoup(modulus.mul(n_inv_raw, inv[1].w));
        let p = modulus.value();
        NttTable {
            modulus,
            n,
            log_n,
            fwd_w: fwd.iter().map(|t| t.w).collect(),
            fwd_s52: fwd.iter().map(|t| shoup52(t.w, p)).collect(),
            inv_w: inv.iter().map(|t| t.w).collect(),
            inv_s52: inv.iter().map(|t| shoup52(t.w, p)).collect(),
            fwd_tail: TailTwiddles::new(n, p, &fwd),
            inv_tail: TailTwiddles::new(n, p, &inv),
            n_inv_s52: shoup52(n_inv.w, p),
            n_inv_w_s52: shoup52(n_inv_w.w, p),
            p,
            vector: n >= 64 && p < 1 << 50 && has_ifma(),
            fwd,
            inv,
            n_inv,
            n_inv_w,
        }
    }

    pub fn modulus(&self) -> &Modulus {
        &self.modulus
    }

    /// In-place forward transform. Input values in `[0, 4p)`, output in `[0, p)`.
    pub fn forward(&self, a: &mut [u64]) {
        self.forward_from_layer(a, 0);
    }

    /// The forward transform of a polynomial whose coefficients at indices
    /// `len..n` are zero: the first layers then only copy, so they are done as
    /// a copy. Same result as [`NttTable::forward`].
    pub fn forward_sparse(&self, a: &mut [u64], len: usize) {
        debug_assert!(a[len.min(self.n)..].iter().all(|&x| x == 0));
        let mut skip = 0u32;
        while skip < self.log_n && len.max(1) <= self.n >> (skip + 1) {
            skip += 1;
        }
        let block = self.n >> skip;
        for b in 1..(1usize << skip) {
            a.copy_within(0..block, b * block);
        }
        self.forward_from_layer(a, skip);
    }

    fn forward_from_layer(&self, a: &mut [u64], first_layer: u32) {
        assert_eq!(a.len(), self.n);
        #[cfg(target_arch = "x86_64")]
        if self.vector && first_layer + 3 <= self.log_n {
            // SAFETY: `vector` is only set when the CPU has AVX-512 IFMA,
            // n >= 64 and p < 2^50, which the kernel requires.
            unsafe { crate::simd::x86::forward(self, a, first_layer) };
            return;
        }
        self.forward_scalar(a, first_layer);
    }

    /// The scalar forward transform (the reference for the vector one).
    pub(crate) fn forward_scalar(&self, a: &mut [u64], first_layer: u32) {
        assert_eq!(a.len(), self.n);
        let p = self.modulus.value();
        let two_p = 2 * p;
        let mut t = self.n >> first_layer;
        let mut m = 1usize << first_layer;
        while m < self.n {
            t >>= 1;
            for i in 0..m {
                let w = self.fwd[m + i];
                let j1 = 2 * i * t;
                let (lo, hi) = a[j1..j1 + 2 * t].split_at_mut(t);
                for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                    let mut u = *x;
                    if u >= two_p {
                        u -= two_p;
                    }
                    let v = w.mul_lazy(*y, p);
                    *x = u + v;
                    *y = u + two_p - v;
                }
            }
            m <<= 1;
        }
        for x in a.iter_mut() {
            let mut v = *x;
            if v >= two_p {
                v -= two_p;
            }
            if v >= p {
                v -= p;
            }
            *x = v;
        }
    }

    /// In-place inverse transform. Input values in `[0, 2p)`, output in `[0, p)`.
    pub fn inverse(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n);
        #[cfg(target_arch = "x86_64")]
        if self.vector {
            // SAFETY: as in `forward_from_layer`.
            unsafe { crate::simd::x86::inverse(self, a) };
            return;
        }
        self.inverse_scalar(a);
    }

    /// The scalar inverse transform (the reference for the vector one).
    pub(crate) fn inverse_scalar(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n);
        let p = self.modulus.value();
        let two_p = 2 * p;
        let mut t = 1usize;
        let mut m = self.n;
        while m > 2 {
            let h = m >> 1;
            for i in 0..h {
                let w = self.inv[h + i];
                let j1 = 2 * i * t;
                let (lo, hi) = a[j1..j1 + 2 * t].split_at_mut(t);
                for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                    let u = *x;
                    let v = *y;
                    let mut s = u + v;
                    if s >= two_p {
                        s -= two_p;
                    }
                    *x = s;
                    *y = w.mul_lazy(u + two_p - v, p);
                }
            }
            t <<= 1;
            m = h;
        }
        // Last layer (m = 2, h = 1) with n^-1 folded in.
        let (lo, hi) = a.split_at_mut(self.n / 2);
        for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
            let u = *x;
            let v = *y;
            let mut s = u + v;
            if s >= two_p {
                s -= two_p;
            }
            *x = self.n_inv.mul(s, p);
            *y = self.n_inv_w.mul(u + two_p - v, p);
        }
    }
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)]
mod tests {
    use super::*;
    use crate::arith::ntt_primes;
    use proptest::prelude::*;

    /// Negacyclic schoolbook product in Z_p[X]/(X^n + 1).
    fn schoolbook(m: &Modulus, a: &[u64], b: &[u64]) -> Vec<u64> {
        let n = a.len();
        let mut out = vec![0u64; n];
        for i in 0..n {
            for j in 0..n {
                let prod = m.mul(a[i], b[j]);
                let k = i + j;
                if k < n {
                    out[k] = m.add(out[k], prod);
                } else {
                    out[k - n] = m.sub(out[k - n], prod);
                }
            }
        }
        out
    }

    #[test]
    fn hand_computed_degree_two() {
        // p = 17, n = 2: psi must satisfy psi^2 = -1. The search rejects
        // 2^((17-1)/4) = 16 (its square is 1) and takes 3^4 = 13.
        let m = Modulus::new(17);
        let table = NttTable::new(m, 2);
        let psi = primitive_root_2n(&m, 2);
        assert_eq!(psi, 13);
        assert_eq!(m.mul(psi, psi), 16);
        // a(X) = 3 + 5X evaluates at psi and psi^3 = -psi.
        let mut a = vec![3, 5];
        table.forward(&mut a);
        assert_eq!(a, vec![(3 + 5 * psi) % 17, (3 + 17 * 17 - 5 * psi) % 17]);
        table.inverse(&mut a);
        assert_eq!(a, vec![3, 5]);
    }

    #[test]
    fn twiddles_are_the_bit_reversed_powers() {
        // The tables come from running products; each entry must be the
        // power a direct exponentiation gives.
        for (bits, log_n) in [(43, 4), (45, 10), (49, 13)] {
            let n = 1usize << log_n;
            let p = ntt_primes(bits, n, 1, &[])[0];
            let m = Modulus::new(p);
            let table = NttTable::new(m, n);
            let psi = primitive_root_2n(&m, n);
            let psi_inv = m.inv(psi);
            for i in [1, 2, 3, n / 2, n - 1] {
                let e = bit_reverse(i, log_n) as u64;
                assert_eq!(table.fwd[i].w, m.pow(psi, e), "forward {i} of n = {n}");
                assert_eq!(table.inv[i].w, m.pow(psi_inv, e), "inverse {i} of n = {n}");
            }
        }
    }

    #[test]
    fn hand_computed_degree_four() {
        // p = 17, n = 4, psi of order 8. X * X^3 = X^4 = -1.
        let m = Modulus::new(17);
        let table = NttTable::new(m, 4);
        let mut x = vec![0, 1, 0, 0];
        let mut x3 = vec![0, 0, 0, 1];
        table.forward(&mut x);
        table.forward(&mut x3);
        let mut prod: Vec<u64> = x.iter().zip(&x3).map(|(a, b)| m.mul(*a, *b)).collect();
        table.inverse(&mut prod);
        assert_eq!(prod, vec![16, 0, 0, 0]);
        // (1 + 2X + 3X^2 + 4X^3)(5 + 6X): computed by hand, reduced by X^4 = -1:
        // 5 + 16X + 27X^2 + 38X^3 + 24X^4 -> (5-24) + 16X + 27X^2 + 38X^3
        let mut a = vec![1, 2, 3, 4];
        let mut b = vec![5, 6, 0, 0];
        table.forward(&mut a);
        table.forward(&mut b);
        let mut c: Vec<u64> = a.iter().zip(&b).map(|(x, y)| m.mul(*x, *y)).collect();
        table.inverse(&mut c);
        // 5 - 24 = -19 = 15 (mod 17)
        assert_eq!(c, vec![15, 16, 27 % 17, 38 % 17]);
    }

    #[test]
    fn vector_kernels_match_scalar() {
        if !has_ifma() {
            eprintln!("no AVX-512 IFMA on this CPU: the scalar path is the only one");
            return;
        }
        for log_n in 6..=13 {
            let n = 1usize << log_n;
            for bits in [43, 45, 49] {
                let p = ntt_primes(bits, n, 1, &[])[0];
                let table = NttTable::new(Modulus::new(p), n);
                assert!(table.vector);
                let mut state = (log_n as u64) << 32 | bits as u64;
                let orig: Vec<u64> = (0..n)
                    .map(|_| {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                        (state >> 11) % p
                    })
                    .collect();
                for first in 0..=(log_n - 3) {
                    // inputs the layer `first` may see: [0, 4p)
                    let mut a: Vec<u64> = orig
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| v + (i as u64 % 4) * p)
                        .collect();
                    let mut b = a.clone();
                    table.forward_from_layer(&mut a, first);
                    table.forward_scalar(&mut b, first);
                    assert_eq!(a, b, "forward n = {n}, p = {p}, from layer {first}");
                }
                let mut a: Vec<u64> = orig
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| v + (i as u64 % 2) * p)
                    .collect();
                let mut b = a.clone();
                table.inverse(&mut a);
                table.inverse_scalar(&mut b);
                assert_eq!(a, b, "inverse n = {n}, p = {p}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn inverse_undoes_forward(log_n in 1u32..=10, seed in any::<u64>()) {
            let n = 1usize << log_n;
            let p = ntt_primes(43, n, 1, &[])[0];
            let m = Modulus::new(p);
            let table = NttTable::new(m, n);
            let mut state = seed | 1;
            let orig: Vec<u64> = (0..n).map(|_| { state ^= state << 13; state ^= state >> 7; state ^= state << 17; state % p }).collect();
            let mut a = orig.clone();
            table.forward(&mut a);
            prop_assert!(a.iter().all(|&x| x < p));
            table.inverse(&mut a);
            prop_assert_eq!(a, orig);
        }

        #[test]
        fn product_matches_schoolbook(log_n in 1u32..=7, seed in any::<u64>(), sparse in 1usize..=128) {
            let n = 1usize << log_n;
            let p = ntt_primes(43, n, 1, &[])[0];
            let m = Modulus::new(p);
            let table = NttTable::new(m, n);
            let mut state = seed | 1;
            let mut next = || { state ^= state << 13; state ^= state >> 7; state ^= state << 17; state % p };
            let a: Vec<u64> = (0..n).map(|_| next()).collect();
            let len = sparse.min(n);
            let b: Vec<u64> = (0..n).map(|i| if i < len { next() } else { 0 }).collect();
            let expect = schoolbook(&m, &a, &b);
            let mut fa = a.clone();
            let mut fb = b.clone();
            table.forward(&mut fa);
            let mut fb_dense = b.clone();
            table.forward(&mut fb_dense);
            table.forward_sparse(&mut fb, len);
            prop_assert_eq!(&fb, &fb_dense);
            let mut c: Vec<u64> = fa.iter().zip(&fb).map(|(x, y)| m.mul(*x, *y)).collect();
            table.inverse(&mut c);
            prop_assert_eq!(c, expect);
        }
    }
}
