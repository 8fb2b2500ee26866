//! AVX-512 IFMA kernels: the NTT butterflies and the multiply-accumulate of
//! the product, eight 52-bit lanes at a time. Used when the CPU has
//! `avx512ifma` (checked at run time); the scalar code is the fallback and
//! the reference the tests compare against.
//!
//! The 52-bit Shoup multiplication (`x w - floor(x w' / 2^52) p`, with
//! `w' = floor(w 2^52 / p)`, in `[0, 2p)` for `x < 2^52`) is the one Intel
//! HEXL uses for its IFMA NTT (Boemer et al., "Intel HEXL: Accelerating
//! Homomorphic Encryption with Intel AVX512-IFMA52", WAHC 2021); it needs
//! primes below 2^50 so that lazy values below `4p` stay below 2^52, which
//! [`crate::Params`] guarantees. Written from the paper.

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_ifma() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512ifma")
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn has_ifma() -> bool {
    false
}

/// Constants to reduce `lo + 2^52 hi` modulo `p` (see [`reduce_acc`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct AccReduce {
    p: u64,
    /// (1, 2^52 mod p, 2^104 mod p) with their 52-bit Shoup quotients.
    w: [u64; 3],
    ws: [u64; 3],
}

impl AccReduce {
    pub(crate) fn new(p: u64) -> AccReduce {
        let w = [
            1,
            ((1u128 << 52) % p as u128) as u64,
            ((1u128 << 104) % p as u128) as u64,
        ];
        AccReduce {
            p,
            w,
            ws: [shoup52(w[0], p), shoup52(w[1], p), shoup52(w[2], p)],
        }
    }

    /// `(lo + 2^52 hi) mod p` for `lo, hi < 2^63`.
    #[inline]
    pub(crate) fn reduce_scalar(&self, lo: u64, hi: u64) -> u64 {
        ((lo as u128 + ((hi as u128) << 52)) % self.p as u128) as u64
    }
}

/// `out = (lo + 2^52 hi) mod p` coefficient-wise, for `lo, hi < 2^63`.
pub(crate) fn reduce_acc(out: &mut [u64], lo: &[u64], hi: &[u64], c: &AccReduce) {
    #[cfg(target_arch = "x86_64")]
    if out.len().is_multiple_of(8) && has_ifma() {
        // SAFETY: the CPU has AVX-512 IFMA; lengths are checked inside.
        unsafe { x86::reduce_acc(out, lo, hi, c) };
        return;
    }
    for ((o, &l), &h) in out.iter_mut().zip(lo).zip(hi) {
        *o = c.reduce_scalar(l, h);
    }
}

/// `out = a w mod p` coefficient-wise, with `ws` the 52-bit Shoup quotients
/// of `w`; `a < 2^52`, `w < p < 2^50`.
pub(crate) fn mul_shoup(out: &mut [u64], a: &[u64], w: &[u64], ws: &[u64], p: u64) {
    #[cfg(target_arch = "x86_64")]
    if out.len().is_multiple_of(8) && has_ifma() {
        // SAFETY: the CPU has AVX-512 IFMA; lengths are checked inside.
        unsafe { x86::mul_shoup_slice(out, a, w, ws, p) };
        return;
    }
    for (((o, &x), &wv), &wsv) in out.iter_mut().zip(a).zip(w).zip(ws) {
        let q = ((x as u128 * wsv as u128) >> 52) as u64;
        let r = (x.wrapping_mul(wv).wrapping_sub(q.wrapping_mul(p))) & ((1 << 52) - 1);
        *o = if r >= p { r - p } else { r };
    }
}

/// Constants to drop prime `p_last` from the residues modulo `p_i`:
/// `x_i <- (x_i - c) p_last^-1 mod p_i` with `c` the centred residue of `x`
/// modulo `p_last`, i.e. `round(x / p_last)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DropPrime {
    pub p: u64,
    pub p_last: u64,
    /// p_last mod p.
    pub p_last_mod: u64,
    /// p_last^-1 mod p and its 52-bit Shoup quotient.
    pub inv: u64,
    pub inv_s52: u64,
}

impl DropPrime {
    #[inline]
    pub(crate) fn apply_scalar(&self, x: u64, c: u64) -> u64 {
        let p = self.p as u128;
        let c_mod = c as u128 % p;
        // centred: c - p_last when c > p_last / 2
        let shift = if c > self.p_last / 2 {
            self.p_last_mod as u128
        } else {
            0
        };
        let d = (x as u128 + 2 * p - c_mod + shift) % p;
        (d * self.inv as u128 % p) as u64
    }
}

/// Drops prime `p_last` from one prime's residues `x` (in place), given the
/// residues `last` modulo `p_last` (both in `[0, p)`).
pub(crate) fn drop_prime(x: &mut [u64], last: &[u64], c: &DropPrime) {
    #[cfg(target_arch = "x86_64")]
    if x.len().is_multiple_of(8) && c.p_last < 2 * c.p && has_ifma() {
        // SAFETY: the CPU has AVX-512 IFMA; lengths are checked inside.
        unsafe { x86::drop_prime(x, last, c) };
        return;
    }
    for (v, &l) in x.iter_mut().zip(last) {
        *v = c.apply_scalar(*v, l);
    }
}

/// `floor(w 2^52 / p)`.
pub(crate) fn shoup52(w: u64, p: u64) -> u64 {
    (((w as u128) << 52) / p as u128) as u64
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    use crate::ntt::NttTable;

    const MASK52: u64 = (1 << 52) - 1;

    #[inline(always)]
    unsafe fn load(p: *const u64) -> __m512i {
        _mm512_loadu_si512(p as *const _)
    }

    #[inline(always)]
    unsafe fn store(p: *mut u64, v: __m512i) {
        _mm512_storeu_si512(p as *mut _, v)
    }

    /// `x w mod p` in `[0, 2p)` for `x < 2^52`.
    #[inline(always)]
    unsafe fn mul_shoup(x: __m512i, w: __m512i, ws: __m512i, p: __m512i, mask: __m512i) -> __m512i {
        let z = _mm512_setzero_si512();
        let q = _mm512_madd52hi_epu64(z, x, ws);
        let xw = _mm512_madd52lo_epu64(z, x, w);
        let qp = _mm512_madd52lo_epu64(z, q, p);
        _mm512_and_si512(_mm512_sub_epi64(xw, qp), mask)
    }

    /// `x mod m` for `x < 2m`.
    #[inline(always)]
    unsafe fn reduce_once(x: __m512i, m: __m512i) -> __m512i {
        _mm512_min_epu64(x, _mm512_sub_epi64(x, m))
    }

    struct Consts {
        p: __m512i,
        two_p: __m512i,
        mask: __m512i,
    }

    /// Cooley–Tukey butterfly on `[0, 4p)` values.
    #[inline(always)]
    unsafe fn ct(x: &mut __m512i, y: &mut __m512i, w: __m512i, ws: __m512i, c: &Consts) {
        let u = reduce_once(*x, c.two_p);
        let v = mul_shoup(*y, w, ws, c.p, c.mask);
        *x = _mm512_add_epi64(u, v);
        *y = _mm512_sub_epi64(_mm512_add_epi64(u, c.two_p), v);
    }

    /// Gentleman–Sande butterfly on `[0, 2p)` values.
    #[inline(always)]
    unsafe fn gs(x: &mut __m512i, y: &mut __m512i, w: __m512i, ws: __m512i, c: &Consts) {
        let s = reduce_once(_mm512_add_epi64(*x, *y), c.two_p);
        let d = _mm512_sub_epi64(_mm512_add_epi64(*x, c.two_p), *y);
        *x = s;
        *y = mul_shoup(d, w, ws, c.p, c.mask);
    }

    /// Transposes eight registers as an 8 x 8 matrix of 64-bit words.
    #[inline(always)]
    unsafe fn transpose(r: &mut [__m512i; 8]) {
        let lo1 = _mm512_set_epi64(14, 6, 12, 4, 10, 2, 8, 0);
        let hi1 = _mm512_set_epi64(15, 7, 13, 5, 11, 3, 9, 1);
        let lo2 = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
        let hi2 = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
        let lo4 = _mm512_set_epi64(11, 10, 9, 8, 3, 2, 1, 0);
        let hi4 = _mm512_set_epi64(15, 14, 13, 12, 7, 6, 5, 4);
        let mut u = [_mm512_setzero_si512(); 8];
        for k in 0..4 {
            u[2 * k] = _mm512_permutex2var_epi64(r[2 * k], lo1, r[2 * k + 1]);
            u[2 * k + 1] = _mm512_permutex2var_epi64(r[2 * k], hi1, r[2 * k + 1]);
        }
        let mut v = [_mm512_setzero_si512(); 8];
        for base in [0, 4] {
            v[base] = _mm512_permutex2var_epi64(u[base], lo2, u[base + 2]);
            v[base + 2] = _mm512_permutex2var_epi64(u[base], hi2, u[base + 2]);
            v[base + 1] = _mm512_permutex2var_epi64(u[base + 1], lo2, u[base + 3]);
            v[base + 3] = _mm512_permutex2var_epi64(u[base + 1], hi2, u[base + 3]);
        }
        for k in 0..4 {
            r[k] = _mm512_permutex2var_epi64(v[k], lo4, v[k + 4]);
            r[k + 4] = _mm512_permutex2var_epi64(v[k], hi4, v[k + 4]);
        }
    }

    /// The forward transform from layer `first_layer` on (the earlier
    /// layers are done by the caller). Needs `n >= 64` and
    /// `first_layer + 3 <= log2 n`.
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(crate) unsafe fn forward(t: &NttTable, a: &mut [u64], first_layer: u32) {
        let n = t.n;
        assert!(n >= 64 && a.len() == n && (1usize << first_layer) <= n / 8);
        let c = Consts {
            p: _mm512_set1_epi64(t.p as i64),
            two_p: _mm512_set1_epi64(2 * t.p as i64),
            mask: _mm512_set1_epi64(MASK52 as i64),
        };
        let ptr = a.as_mut_ptr();
        // Layers with half-width t >= 8: contiguous vectors.
        let mut m = 1usize << first_layer;
        while m <= n / 16 {
            let half = n / (2 * m);
            for i in 0..m {
                let w = _mm512_set1_epi64(t.fwd_w[m + i] as i64);
                let ws = _mm512_set1_epi64(t.fwd_s52[m + i] as i64);
                let base = 2 * i * half;
                let mut j = base;
                while j < base + half {
                    let mut x = load(ptr.add(j));
                    let mut y = load(ptr.add(j + half));
                    ct(&mut x, &mut y, w, ws, &c);
                    store(ptr.add(j), x);
                    store(ptr.add(j + half), y);
                    j += 8;
                }
            }
            m <<= 1;
        }
        // The last three layers stay inside blocks of 8: transpose 8 blocks
        // so that lane k holds block k, and use per-block twiddles.
        let blocks = n / 8;
        let tw = &t.fwd_tail;
        for g in 0..blocks / 8 {
            let mut r = [_mm512_setzero_si512(); 8];
            for (k, reg) in r.iter_mut().enumerate() {
                *reg = load(ptr.add(64 * g + 8 * k));
            }
            transpose(&mut r);
            let twiddle = |slot: usize| {
                let o = slot * blocks + 8 * g;
                (load(tw.w.as_ptr().add(o)), load(tw.s.as_ptr().add(o)))
            };
            let (w, ws) = twiddle(0);
            for e in 0..4 {
                let (lo, hi) = r.split_at_mut(4);
                ct(&mut lo[e], &mut hi[e], w, ws, &c);
            }
            let (wa, wsa) = twiddle(1);
            let (wb, wsb) = twiddle(2);
            for (e, (w, ws)) in [
                (0, (wa, wsa)),
                (1, (wa, wsa)),
                (4, (wb, wsb)),
                (5, (wb, wsb)),
            ] {
                let (lo, hi) = r.split_at_mut(e + 2);
                ct(&mut lo[e], &mut hi[0], w, ws, &c);
            }
            for k in 0..4 {
                let (w, ws) = twiddle(3 + k);
                let (lo, hi) = r.split_at_mut(2 * k + 1);
                ct(&mut lo[2 * k], &mut hi[0], w, ws, &c);
            }
            for reg in r.iter_mut() {
                *reg = reduce_once(reduce_once(*reg, c.two_p), c.p);
            }
            transpose(&mut r);
            for (k, reg) in r.iter().enumerate() {
                store(ptr.add(64 * g + 8 * k), *reg);
            }
        }
    }

    /// The inverse transform, `n >= 64`, input in `[0, 2p)`, output in `[0, p)`.
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(crate) unsafe fn inverse(t: &NttTable, a: &mut [u64]) {
        let n = t.n;
        assert!(n >= 64 && a.len() == n);
        let c = Consts {
            p: _mm512_set1_epi64(t.p as i64),
            two_p: _mm512_set1_epi64(2 * t.p as i64),
            mask: _mm512_set1_epi64(MASK52 as i64),
        };
        let ptr = a.as_mut_ptr();
        let blocks = n / 8;
        let tw = &t.inv_tail;
        for g in 0..blocks / 8 {
            let mut r = [_mm512_setzero_si512(); 8];
            for (k, reg) in r.iter_mut().enumerate() {
                *reg = load(ptr.add(64 * g + 8 * k));
            }
            transpose(&mut r);
            let twiddle = |slot: usize| {
                let o = slot * blocks + 8 * g;
                (load(tw.w.as_ptr().add(o)), load(tw.s.as_ptr().add(o)))
            };
            // t = 1: pairs (2k, 2k+1)
            for k in 0..4 {
                let (w, ws) = twiddle(3 + k);
                let (lo, hi) = r.split_at_mut(2 * k + 1);
                gs(&mut lo[2 * k], &mut hi[0], w, ws, &c);
            }
            // t = 2: pairs (0,2), (1,3) and (4,6), (5,7)
            let (wa, wsa) = twiddle(1);
            let (wb, wsb) = twiddle(2);
            for (e, (w, ws)) in [
                (0, (wa, wsa)),
                (1, (wa, wsa)),
                (4, (wb, wsb)),
                (5, (wb, wsb)),
            ] {
                let (lo, hi) = r.split_at_mut(e + 2);
                gs(&mut lo[e], &mut hi[0], w, ws, &c);
            }
            // t = 4: pairs (e, e+4)
            let (w, ws) = twiddle(0);
            for e in 0..4 {
                let (lo, hi) = r.split_at_mut(4);
                gs(&mut lo[e], &mut hi[e], w, ws, &c);
            }
            transpose(&mut r);
            for (k, reg) in r.iter().enumerate() {
                store(ptr.add(64 * g + 8 * k), *reg);
            }
        }
        // Layers with half-width 8 .. n/4.
        let mut half = 8usize;
        let mut m = n / 8;
        while m > 2 {
            let h = m >> 1;
            for i in 0..h {
                let w = _mm512_set1_epi64(t.inv_w[h + i] as i64);
                let ws = _mm512_set1_epi64(t.inv_s52[h + i] as i64);
                let base = 2 * i * half;
                let mut j = base;
                while j < base + half {
                    let mut x = load(ptr.add(j));
                    let mut y = load(ptr.add(j + half));
                    gs(&mut x, &mut y, w, ws, &c);
                    store(ptr.add(j), x);
                    store(ptr.add(j + half), y);
                    j += 8;
                }
            }
            half <<= 1;
            m = h;
        }
        // Last layer with n^-1 folded in, fully reduced.
        let ni = _mm512_set1_epi64(t.n_inv.w as i64);
        let nis = _mm512_set1_epi64(t.n_inv_s52 as i64);
        let niw = _mm512_set1_epi64(t.n_inv_w.w as i64);
        let niws = _mm512_set1_epi64(t.n_inv_w_s52 as i64);
        let half = n / 2;
        let mut j = 0;
        while j < half {
            let x = load(ptr.add(j));
            let y = load(ptr.add(j + half));
            let s = _mm512_add_epi64(x, y);
            let d = _mm512_sub_epi64(_mm512_add_epi64(x, c.two_p), y);
            let s = reduce_once(mul_shoup(s, ni, nis, c.p, c.mask), c.p);
            let d = reduce_once(mul_shoup(d, niw, niws, c.p, c.mask), c.p);
            store(ptr.add(j), s);
            store(ptr.add(j + half), d);
            j += 8;
        }
    }

    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(crate) unsafe fn reduce_acc(out: &mut [u64], lo: &[u64], hi: &[u64], c: &super::AccReduce) {
        let len = out.len();
        assert!(lo.len() == len && hi.len() == len && len.is_multiple_of(8));
        let p = _mm512_set1_epi64(c.p as i64);
        let mask = _mm512_set1_epi64(MASK52 as i64);
        let w: [__m512i; 3] = std::array::from_fn(|i| _mm512_set1_epi64(c.w[i] as i64));
        let ws: [__m512i; 3] = std::array::from_fn(|i| _mm512_set1_epi64(c.ws[i] as i64));
        let mut j = 0;
        while j < len {
            let l = load(lo.as_ptr().add(j));
            let h = load(hi.as_ptr().add(j));
            // lo + 2^52 hi = l0 + 2^52 h0 + 2^104 h1 with l0, h0 < 2^52
            let l0 = _mm512_and_si512(l, mask);
            let h = _mm512_add_epi64(h, _mm512_srli_epi64(l, 52));
            let h0 = _mm512_and_si512(h, mask);
            let h1 = _mm512_srli_epi64(h, 52);
            let r = _mm512_add_epi64(
                _mm512_add_epi64(
                    mul_shoup(l0, w[0], ws[0], p, mask),
                    mul_shoup(h0, w[1], ws[1], p, mask),
                ),
                mul_shoup(h1, w[2], ws[2], p, mask),
            );
            // r < 6p
            let two_p = _mm512_add_epi64(p, p);
            let four_p = _mm512_add_epi64(two_p, two_p);
            let r = reduce_once(r, four_p);
            let r = reduce_once(r, two_p);
            let r = reduce_once(r, p);
            store(out.as_mut_ptr().add(j), r);
            j += 8;
        }
    }

    /// Needs `p_last < 2p` (so `c mod p` is one conditional subtraction).
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(crate) unsafe fn drop_prime(x: &mut [u64], last: &[u64], c: &super::DropPrime) {
        let len = x.len();
        assert!(last.len() == len && len.is_multiple_of(8) && c.p_last < 2 * c.p);
        let p = _mm512_set1_epi64(c.p as i64);
        let two_p = _mm512_set1_epi64(2 * c.p as i64);
        let mask = _mm512_set1_epi64(MASK52 as i64);
        let half = _mm512_set1_epi64((c.p_last / 2) as i64);
        let shift = _mm512_set1_epi64(c.p_last_mod as i64);
        let w = _mm512_set1_epi64(c.inv as i64);
        let ws = _mm512_set1_epi64(c.inv_s52 as i64);
        let mut j = 0;
        while j < len {
            let l = load(last.as_ptr().add(j));
            let v = load(x.as_ptr().add(j));
            let c_mod = reduce_once(l, p);
            // x + 2p - c_mod (+ p_last mod p where c is negative when centred): < 4p
            let mut d = _mm512_sub_epi64(_mm512_add_epi64(v, two_p), c_mod);
            let neg = _mm512_cmpgt_epu64_mask(l, half);
            d = _mm512_mask_add_epi64(d, neg, d, shift);
            let r = mul_shoup(d, w, ws, p, mask);
            store(x.as_mut_ptr().add(j), reduce_once(r, p));
            j += 8;
        }
    }

    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(crate) unsafe fn mul_shoup_slice(
        out: &mut [u64],
        a: &[u64],
        w: &[u64],
        ws: &[u64],
        p: u64,
    ) {
        let len = out.len();
        assert!(a.len() == len && w.len() == len && ws.len() == len && len.is_multiple_of(8));
        let pv = _mm512_set1_epi64(p as i64);
        let mask = _mm512_set1_epi64(MASK52 as i64);
        let mut j = 0;
        while j < len {
            let r = mul_shoup(
                load(a.as_ptr().add(j)),
                load(w.as_ptr().add(j)),
                load(ws.as_ptr().add(j)),
                pv,
                mask,
            );
            store(out.as_mut_ptr().add(j), reduce_once(r, pv));
            j += 8;
        }
    }

    /// `lo_b += lo52(xb w)`, `hi_b += hi52(xb w)`, and the same for `xa`:
    /// both halves of a ciphertext times one plaintext, `w` loaded once.
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(crate) unsafe fn mul_acc2(acc: [&mut [u64]; 4], xb: &[u64], xa: &[u64], w: &[u64]) {
        let [lo_b, hi_b, lo_a, hi_a] = acc;
        let len = w.len();
        assert!(
            lo_b.len() == len
                && hi_b.len() == len
                && lo_a.len() == len
                && hi_a.len() == len
                && xb.len() == len
                && xa.len() == len
                && len.is_multiple_of(8)
        );
        let mut j = 0;
        while j < len {
            let wv = load(w.as_ptr().add(j));
            let b = load(xb.as_ptr().add(j));
            let a = load(xa.as_ptr().add(j));
            store(
                lo_b.as_mut_ptr().add(j),
                _mm512_madd52lo_epu64(load(lo_b.as_ptr().add(j)), b, wv),
            );
            store(
                hi_b.as_mut_ptr().add(j),
                _mm512_madd52hi_epu64(load(hi_b.as_ptr().add(j)), b, wv),
            );
            store(
                lo_a.as_mut_ptr().add(j),
                _mm512_madd52lo_epu64(load(lo_a.as_ptr().add(j)), a, wv),
            );
            store(
                hi_a.as_mut_ptr().add(j),
                _mm512_madd52hi_epu64(load(hi_a.as_ptr().add(j)), a, wv),
            );
            j += 8;
        }
    }
}

/// `lo += lo52(x w)` and `hi += hi52(x w)` coefficient-wise (so that
/// `lo + 2^52 hi` grows by `x w`) for both halves `x = xb, xa` of a
/// ciphertext against one plaintext `w`; residues below 2^50.
pub(crate) fn mul_acc2(acc: [&mut [u64]; 4], xb: &[u64], xa: &[u64], w: &[u64]) {
    #[cfg(target_arch = "x86_64")]
    if w.len().is_multiple_of(8) && has_ifma() {
        // SAFETY: the CPU has AVX-512 IFMA; lengths are checked inside.
        unsafe { x86::mul_acc2(acc, xb, xa, w) };
        return;
    }
    let [lo_b, hi_b, lo_a, hi_a] = acc;
    mul_acc_scalar(lo_b, hi_b, xb, w);
    mul_acc_scalar(lo_a, hi_a, xa, w);
}

pub(crate) fn mul_acc_scalar(lo: &mut [u64], hi: &mut [u64], x: &[u64], y: &[u64]) {
    for (((l, h), &xv), &yv) in lo.iter_mut().zip(hi.iter_mut()).zip(x).zip(y) {
        let prod = xv as u128 * yv as u128;
        *l += (prod as u64) & ((1 << 52) - 1);
        *h += (prod >> 52) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_multiply_accumulate_matches_scalar() {
        let len = 64;
        let mut s = 12345u64;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s >> 14 // 50 bits
        };
        let x: Vec<u64> = (0..len).map(|_| next()).collect();
        let y: Vec<u64> = (0..len).map(|_| next()).collect();
        let (mut lo1, mut hi1) = (vec![7u64; len], vec![3u64; len]);
        let (mut lo2, mut hi2) = (lo1.clone(), hi1.clone());
        let (mut lo4, mut hi4) = (lo1.clone(), hi1.clone());
        for _ in 0..5 {
            mul_acc2([&mut lo1, &mut hi1, &mut lo4, &mut hi4], &x, &y, &y);
            mul_acc_scalar(&mut lo2, &mut hi2, &x, &y);
        }
        let p = 8796092858369u64;
        let c = AccReduce::new(p);
        let mut r1 = vec![0u64; len];
        reduce_acc(&mut r1, &lo4, &hi4, &c);
        let big: Vec<u64> = (0..len).map(|j| (j as u64) << 57 | 12345).collect();
        let mut r2 = vec![0u64; len];
        reduce_acc(&mut r2, &big, &big, &c);
        let ws: Vec<u64> = y.iter().map(|&v| shoup52(v % p, p)).collect();
        let yr: Vec<u64> = y.iter().map(|&v| v % p).collect();
        let mut r3 = vec![0u64; len];
        mul_shoup(&mut r3, &x, &yr, &ws, p);
        let dp = DropPrime {
            p,
            p_last: 4398046150657,
            p_last_mod: 4398046150657,
            inv: 5,
            inv_s52: shoup52(5, p),
        };
        let xs: Vec<u64> = x.iter().map(|v| v % p).collect();
        let lasts: Vec<u64> = y.iter().map(|v| v % 4398046150657).collect();
        let mut dropped = xs.clone();
        drop_prime(&mut dropped, &lasts, &dp);
        for j in 0..len {
            assert_eq!(dropped[j], dp.apply_scalar(xs[j], lasts[j]));
            assert_eq!(r1[j], c.reduce_scalar(lo4[j], hi4[j]));
            assert_eq!(r2[j], c.reduce_scalar(big[j], big[j]));
            assert_eq!(r3[j] as u128, x[j] as u128 * yr[j] as u128 % p as u128);
            let v = lo4[j] as u128 + ((hi4[j] as u128) << 52);
            assert_eq!(v, 7 + (3u128 << 52) + 5 * y[j] as u128 * y[j] as u128);
        }
        for j in 0..len {
            let a = lo1[j] as u128 + ((hi1[j] as u128) << 52);
            let b = lo2[j] as u128 + ((hi2[j] as u128) << 52);
            assert_eq!(a, b);
            assert_eq!(a, 7 + (3u128 << 52) + 5 * x[j] as u128 * y[j] as u128);
        }
    }
}
