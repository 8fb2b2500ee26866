//! Transposing 128 × 128 bit matrices: the step of OT extension that turns
//! 128 columns (one per base OT, n bits each) into n rows of 128 bits (one
//! per extended OT).
//!
//! The method is Eklundh's recursive block swap (as in Hacker's Delight,
//! §7-3, "transposing a bit matrix"): the 128 × 128 matrix is four 64 × 64
//! blocks; each is transposed in six rounds of masked swaps, and the two
//! off-diagonal blocks trade places. The four blocks are laid side by side
//! in lanes of a `[u64; 4]` so every swap is one 256-bit operation when AVX2
//! is present (detected at run time) and two 128-bit SSE2 operations
//! otherwise. About 1,200 vector operations per 128 OTs.

use crate::block::Block;

/// The masks of the six swap rounds: round `j` exchanges the bits of row `r`
/// whose column has bit `j` set with the bits of row `r + j` whose column
/// has it clear.
const ROUNDS: [(usize, u64); 6] = [
    (32, 0x0000_0000_FFFF_FFFF),
    (16, 0x0000_FFFF_0000_FFFF),
    (8, 0x00FF_00FF_00FF_00FF),
    (4, 0x0F0F_0F0F_0F0F_0F0F),
    (2, 0x3333_3333_3333_3333),
    (1, 0x5555_5555_5555_5555),
];

/// Transposes the 128 × 128 bit matrix in place: on return, bit `i` of
/// `m[j]` is what bit `j` of `m[i]` was.
#[inline]
pub fn transpose128(m: &mut [Block; 128]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { transpose128_avx2(m) };
            return;
        }
    }
    transpose128_portable(m);
}

/// The same algorithm with explicit AVX2 intrinsics: one `__m256i` holds
/// row `r` of all four 64 × 64 blocks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose128_avx2(m: &mut [Block; 128]) {
    use std::arch::x86_64::*;

    #[inline(always)]
    fn round<const J: i32>(x: &mut [__m256i; 64], mask: u64) {
        // SAFETY (of the intrinsics): only called from `transpose128_avx2`,
        // which runs with AVX2 enabled.
        unsafe {
            let mask = _mm256_set1_epi64x(mask as i64);
            let j = J as usize;
            let mut r0 = 0;
            while r0 < 64 {
                for r in r0..r0 + j {
                    let a = x[r];
                    let b = x[r + j];
                    let t = _mm256_and_si256(_mm256_xor_si256(_mm256_srli_epi64::<J>(a), b), mask);
                    x[r + j] = _mm256_xor_si256(b, t);
                    x[r] = _mm256_xor_si256(a, _mm256_slli_epi64::<J>(t));
                }
                r0 += 2 * j;
            }
        }
    }

    // SAFETY: `Block` is 16 bytes (`repr(transparent)` over `u128`), so the
    // unaligned 128-bit loads and stores at `m + r` and `m + 64 + r`
    // (r < 64) stay inside the 128-block array; AVX2 is enabled.
    unsafe {
        let p = m.as_mut_ptr().cast::<__m128i>();
        let mut x = [_mm256_setzero_si256(); 64];
        for (r, xr) in x.iter_mut().enumerate() {
            let lo = _mm_loadu_si128(p.add(r));
            let hi = _mm_loadu_si128(p.add(64 + r));
            *xr = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi);
        }
        round::<32>(&mut x, ROUNDS[0].1);
        round::<16>(&mut x, ROUNDS[1].1);
        round::<8>(&mut x, ROUNDS[2].1);
        round::<4>(&mut x, ROUNDS[3].1);
        round::<2>(&mut x, ROUNDS[4].1);
        round::<1>(&mut x, ROUNDS[5].1);
        for (j, &xj) in x.iter().enumerate() {
            // Lanes [0, 1, 2, 3] → [0, 2, 1, 3]: row j is lanes 0 and 2,
            // row 64 + j is lanes 1 and 3.
            let y = _mm256_permute4x64_epi64::<0b11_01_10_00>(xj);
            _mm_storeu_si128(p.add(j), _mm256_castsi256_si128(y));
            _mm_storeu_si128(p.add(64 + j), _mm256_extracti128_si256::<1>(y));
        }
    }
}

fn transpose128_portable(m: &mut [Block; 128]) {
    transpose128_body(m);
}

#[inline(always)]
fn transpose128_body(m: &mut [Block; 128]) {
    // Lanes: [rows 0..64 low half, rows 0..64 high half, rows 64..128 low,
    // rows 64..128 high], i.e. the four 64 × 64 blocks.
    let mut x = [[0u64; 4]; 64];
    for (r, lanes) in x.iter_mut().enumerate() {
        let a = m[r].0;
        let b = m[64 + r].0;
        *lanes = [a as u64, (a >> 64) as u64, b as u64, (b >> 64) as u64];
    }
    transpose64x4(&mut x);
    // Block (0,0) and (1,1) stay, (0,1) and (1,0) trade places.
    for (j, lanes) in x.iter().enumerate() {
        m[j] = Block(lanes[0] as u128 | (lanes[2] as u128) << 64);
        m[64 + j] = Block(lanes[1] as u128 | (lanes[3] as u128) << 64);
    }
}

#[inline(always)]
fn transpose64x4(x: &mut [[u64; 4]; 64]) {
    // One function per round so each shift is a constant and every loop
    // has a fixed trip count: LLVM unrolls them and keeps the four lanes in
    // one vector register.
    swap_round::<32>(x, ROUNDS[0].1);
    swap_round::<16>(x, ROUNDS[1].1);
    swap_round::<8>(x, ROUNDS[2].1);
    swap_round::<4>(x, ROUNDS[3].1);
    swap_round::<2>(x, ROUNDS[4].1);
    swap_round::<1>(x, ROUNDS[5].1);
}

#[inline(always)]
fn swap_round<const J: usize>(x: &mut [[u64; 4]; 64], mask: u64) {
    let mut r0 = 0;
    while r0 < 64 {
        for r in r0..r0 + J {
            let a = x[r];
            let b = x[r + J];
            let mut na = [0u64; 4];
            let mut nb = [0u64; 4];
            for l in 0..4 {
                let t = ((a[l] >> J) ^ b[l]) & mask;
                nb[l] = b[l] ^ t;
                na[l] = a[l] ^ (t << J);
            }
            x[r] = na;
            x[r + J] = nb;
        }
        r0 += 2 * J;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn naive(m: &[Block; 128]) -> [Block; 128] {
        let mut out = [Block::ZERO; 128];
        for (i, row) in m.iter().enumerate() {
            for (j, o) in out.iter_mut().enumerate() {
                if row.bit(j) {
                    o.0 |= 1u128 << i;
                }
            }
        }
        out
    }

    fn random_matrix(seed: u64) -> [Block; 128] {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let mut m = [Block::ZERO; 128];
        for b in m.iter_mut() {
            let mut bytes = [0u8; 16];
            rng.fill_bytes(&mut bytes);
            *b = Block::from_bytes(bytes);
        }
        m
    }

    #[test]
    fn matches_naive_transpose() {
        for seed in 0..20 {
            let m = random_matrix(seed);
            let mut fast = m;
            transpose128(&mut fast);
            assert_eq!(fast, naive(&m), "seed {seed}");
            let mut portable = m;
            transpose128_portable(&mut portable);
            assert_eq!(portable, fast);
            // Transposing twice is the identity.
            transpose128(&mut fast);
            assert_eq!(fast, m);
        }
    }

    #[test]
    fn single_bits_land_where_expected() {
        for (i, j) in [
            (0, 0),
            (0, 127),
            (127, 0),
            (5, 70),
            (70, 5),
            (127, 127),
            (63, 64),
        ] {
            let mut m = [Block::ZERO; 128];
            m[i] = Block(1u128 << j);
            transpose128(&mut m);
            for (k, b) in m.iter().enumerate() {
                let want = if k == j {
                    Block(1u128 << i)
                } else {
                    Block::ZERO
                };
                assert_eq!(*b, want, "bit ({i},{j}) row {k}");
            }
        }
    }
}
