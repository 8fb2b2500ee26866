//! AES-128 encryption of many blocks per call: under one key (the fixed-key
//! hash) or under several keys at once (SoftSpoken's GGM leaves, whose
//! counter-mode streams all stand at the same position).
//!
//! # Backends
//!
//! Chosen once per process at run time ([`Backend::detect`]):
//!
//! * [`Backend::Vaes512`] (`avx512f`, `vaes`, `aes`): one 512-bit register
//!   holds four blocks; with several keys, its four lanes hold four
//!   different keys' blocks (the round keys are stored lane-interleaved,
//!   four keys per 64-byte row), so one `vaesenc` advances four leaves.
//! * [`Backend::Vaes256`] (`avx2`, `vaes`, `aes`): the same with two lanes.
//! * [`Backend::Portable`]: the `aes` crate, exactly the path used before
//!   these backends existed (AES-NI when the CPU has it, otherwise its
//!   constant-time bitsliced software), for machines without VAES.
//!
//! Every backend computes plain AES-128 and gives byte-identical outputs
//! (the tests compare them with the `aes` crate and with FIPS-197 and
//! SP 800-38A vectors). AES-NI and VAES run in constant time; nothing here
//! indexes a table by secret data. The key schedules of the VAES backends
//! are expanded with `aeskeygenassist` (as in S. Gueron, "Intel Advanced
//! Encryption Standard (AES) New Instructions Set", Intel white paper
//! 323641, 2010, §"AES-128 key expansion"), written from that description.
//! Several independent registers are kept in flight per round so the
//! pipelined AES units stay busy (the same white paper's "parallelizing"
//! section; no code was copied from any implementation).
//!
//! Blocks are [`Block`]s: their little-endian bytes are the AES bytes, as in
//! [`crate::crypto`].

use std::sync::OnceLock;

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;
use zeroize::Zeroize;

use crate::block::Block;

/// Round keys of AES-128 (the whitening key and ten rounds).
const ROUNDS: usize = 11;

/// Keys per lane-interleaved row of round keys (a 512-bit register's lanes;
/// the 256-bit backend uses half a row at a time).
const ROW: usize = 4;

/// An implementation of AES-128 encryption.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Backend {
    /// 512-bit VAES, four blocks per instruction.
    Vaes512,
    /// 256-bit VAES, two blocks per instruction.
    Vaes256,
    /// The `aes` crate (AES-NI or its constant-time software fallback).
    Portable,
}

impl Backend {
    /// The fastest backend this CPU runs (detected once per process).
    pub fn detect() -> Backend {
        static DETECTED: OnceLock<Backend> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            Backend::all()
                .into_iter()
                .find(|b| b.is_available())
                .unwrap_or(Backend::Portable)
        })
    }

    /// Every backend, fastest first.
    pub fn all() -> [Backend; 3] {
        [Backend::Vaes512, Backend::Vaes256, Backend::Portable]
    }

    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            Backend::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Backend::Vaes512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("vaes")
                    && std::arch::is_x86_feature_detected!("aes")
            }
            #[cfg(target_arch = "x86_64")]
            Backend::Vaes256 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("vaes")
                    && std::arch::is_x86_feature_detected!("aes")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// The `aes` crate's cipher for a key given as a block.
fn portable_cipher(key: Block) -> Aes128 {
    let mut bytes = key.to_bytes();
    let cipher = Aes128::new(&bytes.into());
    bytes.zeroize();
    cipher
}

/// Encrypts `blocks` in place with the `aes` crate.
#[inline]
pub(crate) fn portable_encrypt(cipher: &Aes128, blocks: &mut [Block]) {
    #[cfg(target_endian = "little")]
    {
        // SAFETY: `Block` is `repr(transparent)` over `u128` (16 bytes, no
        // padding) and `aes::Block` is `GenericArray<u8, U16>`, which is
        // `repr(transparent)` over `[u8; 16]` (16 bytes, alignment 1). The
        // slice is reborrowed mutably for the call only, the lengths match and
        // the alignment requirement goes down. On a little-endian target the
        // bytes in memory are exactly `Block::to_bytes`.
        let aes_blocks: &mut [aes::Block] = unsafe {
            std::slice::from_raw_parts_mut(blocks.as_mut_ptr().cast::<aes::Block>(), blocks.len())
        };
        cipher.encrypt_blocks(aes_blocks);
    }
    #[cfg(not(target_endian = "little"))]
    {
        for b in blocks.iter_mut() {
            let mut a = aes::Block::from(b.to_bytes());
            cipher.encrypt_block(&mut a);
            *b = Block::from_bytes(a.into());
        }
    }
}

/// AES-128 under one key, many blocks per call.
#[derive(Clone)]
pub struct WideAes {
    inner: OneKey,
}

#[derive(Clone)]
enum OneKey {
    /// Boxed: the `aes` crate's state is 704 bytes.
    Portable(Box<Aes128>),
    /// The round keys and the (VAES) backend that uses them.
    Vaes(Backend, [Block; ROUNDS]),
}

impl Drop for WideAes {
    fn drop(&mut self) {
        if let OneKey::Vaes(_, rk) = &mut self.inner {
            rk.zeroize();
        }
    }
}

impl std::fmt::Debug for WideAes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WideAes(..)")
    }
}

impl WideAes {
    /// The cipher keyed with `key`'s bytes, on the detected backend.
    pub fn new(key: Block) -> WideAes {
        WideAes::with_backend(key, Backend::detect())
    }

    /// The cipher on a given backend (which must be available).
    pub fn with_backend(key: Block, backend: Backend) -> WideAes {
        assert!(
            backend.is_available(),
            "AES backend {backend:?} unavailable"
        );
        let inner = match backend {
            Backend::Portable => OneKey::Portable(Box::new(portable_cipher(key))),
            _ => OneKey::Vaes(backend, expand_key(key)),
        };
        WideAes { inner }
    }

    /// Encrypts every block in place.
    #[inline]
    pub fn encrypt(&self, blocks: &mut [Block]) {
        match &self.inner {
            OneKey::Portable(c) => portable_encrypt(c, blocks),
            #[cfg(target_arch = "x86_64")]
            OneKey::Vaes(Backend::Vaes512, rk) => {
                // SAFETY: a `Vaes` cipher is only built for an available
                // backend (`with_backend` asserts it), so the CPU has
                // avx512f, vaes and aes.
                unsafe { x86::encrypt_one_key_512(rk, blocks) }
            }
            #[cfg(target_arch = "x86_64")]
            OneKey::Vaes(_, rk) => {
                // SAFETY: as above, the CPU has avx2, vaes and aes.
                unsafe { x86::encrypt_one_key_256(rk, blocks) }
            }
            #[cfg(not(target_arch = "x86_64"))]
            OneKey::Vaes(..) => unreachable!("VAES backends exist on x86_64 only"),
        }
    }
}

/// AES-128 under `n` keys at once, in counter mode: the streams of several
/// PRGs at one position. A key may be a hole (`None`): its outputs are
/// zero blocks (SoftSpoken's verifier lacks one leaf per piece and counts
/// it as zero), so a row of outputs keeps one layout for every piece.
pub struct MultiKeyAes {
    n: usize,
    inner: MultiKey,
}

enum MultiKey {
    Portable(Vec<Option<Aes128>>),
    /// Round keys in rows of [`ROW`] keys: key `4g + j`'s round `r` is at
    /// `(g·11 + r)·4 + j` (holes and lanes past the last key hold zeros;
    /// the outputs of the first are masked to zero, those of the second
    /// never stored); then the masks, `keep[4g + j]` all ones for a key and
    /// zero for a hole.
    Vaes {
        backend: Backend,
        rk: Vec<Block>,
        keep: Vec<Block>,
    },
}

impl Drop for MultiKeyAes {
    fn drop(&mut self) {
        if let MultiKey::Vaes { rk, .. } = &mut self.inner {
            rk.zeroize();
        }
    }
}

impl std::fmt::Debug for MultiKeyAes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MultiKeyAes({} keys)", self.n)
    }
}

impl MultiKeyAes {
    /// The ciphers keyed with `keys`, on the detected backend.
    pub fn new(keys: &[Block]) -> MultiKeyAes {
        MultiKeyAes::with_backend(keys, Backend::detect())
    }

    /// [`MultiKeyAes::with_holes`] on the detected backend.
    pub fn new_with_holes(keys: &[Option<Block>]) -> MultiKeyAes {
        MultiKeyAes::with_holes(keys, Backend::detect())
    }

    /// The ciphers on a given backend (which must be available).
    pub fn with_backend(keys: &[Block], backend: Backend) -> MultiKeyAes {
        let mut keys: Vec<Option<Block>> = keys.iter().map(|&k| Some(k)).collect();
        let out = MultiKeyAes::with_holes(&keys, backend);
        // Wipe the copies.
        keys.iter_mut().flatten().for_each(Zeroize::zeroize);
        out
    }

    /// The ciphers for `keys`, holes (`None`) giving zero blocks, on a
    /// given backend (which must be available).
    pub fn with_holes(keys: &[Option<Block>], backend: Backend) -> MultiKeyAes {
        assert!(
            backend.is_available(),
            "AES backend {backend:?} unavailable"
        );
        let inner = match backend {
            Backend::Portable => {
                MultiKey::Portable(keys.iter().map(|k| k.map(portable_cipher)).collect())
            }
            _ => {
                let rows = keys.len().div_ceil(ROW);
                let mut rk = vec![Block::ZERO; rows * ROUNDS * ROW];
                let mut keep = vec![Block::ZERO; rows * ROW];
                for (x, key) in keys.iter().enumerate() {
                    let Some(key) = *key else { continue };
                    keep[x] = Block::ONES;
                    let mut sched = expand_key(key);
                    let (g, j) = (x / ROW, x % ROW);
                    for (r, &k) in sched.iter().enumerate() {
                        rk[(g * ROUNDS + r) * ROW + j] = k;
                    }
                    sched.zeroize();
                }
                MultiKey::Vaes { backend, rk, keep }
            }
        };
        MultiKeyAes {
            n: keys.len(),
            inner,
        }
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Counter mode under every key: `out[b·stride + x] = AES_{key x}(start
    /// + b)` for `b < w` and every key `x` (the counter as a little-endian
    /// 128-bit block, as [`crate::crypto::Prg::fill`]; zero for a hole).
    /// Entries of `out` between rows are left alone.
    ///
    /// # Panics
    ///
    /// If `stride` is below the number of keys or `out` is too short for
    /// `w` rows (a bug in the caller, never data from a peer).
    pub fn ctr_rows(&self, start: u128, w: usize, out: &mut [Block], stride: usize) {
        self.ctr_rows_of(0..self.n, start, w, out, stride);
    }

    /// [`MultiKeyAes::ctr_rows`] for the keys in `keys` only (its start a
    /// multiple of four): `out[b·stride + x − keys.start]` for `x` in
    /// `keys`. Callers cut their keys this way so the rows stay in the
    /// first-level cache.
    ///
    /// # Panics
    ///
    /// As [`MultiKeyAes::ctr_rows`], and if `keys` is not a range of keys
    /// starting at a multiple of four.
    pub fn ctr_rows_of(
        &self,
        keys: std::ops::Range<usize>,
        start: u128,
        w: usize,
        out: &mut [Block],
        stride: usize,
    ) {
        let n = keys.len();
        assert!(
            keys.start.is_multiple_of(ROW) && keys.end <= self.n,
            "MultiKeyAes::ctr_rows_of: keys {keys:?} of {}",
            self.n
        );
        if w == 0 || n == 0 {
            return;
        }
        assert!(
            stride >= n && out.len() >= (w - 1) * stride + n,
            "MultiKeyAes::ctr_rows: {w} rows of {n} keys, stride {stride}, into {} blocks",
            out.len()
        );
        match &self.inner {
            MultiKey::Portable(ciphers) => {
                // Eight rows at a time: the counters once, each key's eight
                // blocks in one call (the crate pipelines eight), then row
                // by row into `out`.
                let mut cols = [[Block::ZERO; 8]; 16];
                for b0 in (0..w).step_by(8) {
                    let m = 8.min(w - b0);
                    let ctr: [Block; 8] =
                        std::array::from_fn(|i| Block(start.wrapping_add((b0 + i) as u128)));
                    for (x0, part) in ciphers[keys.clone()].chunks(16).enumerate() {
                        for (col, c) in cols.iter_mut().zip(part) {
                            match c {
                                Some(c) => {
                                    col[..m].copy_from_slice(&ctr[..m]);
                                    portable_encrypt(c, &mut col[..m]);
                                }
                                None => col[..m].fill(Block::ZERO),
                            }
                        }
                        for b in 0..m {
                            let at = (b0 + b) * stride + 16 * x0;
                            let row = &mut out[at..at + part.len()];
                            for (o, col) in row.iter_mut().zip(&cols) {
                                *o = col[b];
                            }
                        }
                    }
                }
                cols.zeroize();
            }
            #[cfg(target_arch = "x86_64")]
            MultiKey::Vaes {
                backend: Backend::Vaes512,
                rk,
                keep,
            } => {
                // SAFETY: built only for an available backend (asserted in
                // `with_holes`): the CPU has avx512f, vaes and aes; the
                // lengths are asserted above.
                unsafe { x86::ctr_rows_512(rk, keep, keys, start, w, out, stride) }
            }
            #[cfg(target_arch = "x86_64")]
            MultiKey::Vaes { rk, keep, .. } => {
                // SAFETY: as above, the CPU has avx2, vaes and aes.
                unsafe { x86::ctr_rows_256(rk, keep, keys, start, w, out, stride) }
            }
            #[cfg(not(target_arch = "x86_64"))]
            MultiKey::Vaes { .. } => unreachable!("VAES backends exist on x86_64 only"),
        }
    }
}

/// The AES-128 key schedule of `key` (VAES backends only, which imply
/// AES-NI).
fn expand_key(key: Block) -> [Block; ROUNDS] {
    #[cfg(target_arch = "x86_64")]
    {
        assert!(std::arch::is_x86_feature_detected!("aes"));
        // SAFETY: the CPU has AES-NI (checked just above).
        unsafe { x86::expand_key(key) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = key;
        unreachable!("VAES backends exist on x86_64 only")
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The intrinsics. Loads and stores go through slices (bounds checked)
    //! and `loadu`/`storeu` (no alignment needed), except the stores of the
    //! multi-key fast paths, bounds checked once per call by
    //! `ctr_rows_of`; `Block` is 16 bytes in
    //! AES byte order on this little-endian target.

    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::{ROUNDS, ROW};
    use crate::block::Block;

    /// One step of the AES-128 key schedule: the previous round key and
    /// `aeskeygenassist`'s output (its word 3 is `SubWord(RotWord(w3)) ⊕
    /// rcon`) give the next round key: `w_i = w_{i−4} ⊕ w_{i−1}` prefix
    /// sums, done with three 4-byte shifts.
    #[inline]
    #[target_feature(enable = "aes,sse2")]
    fn schedule_step(prev: __m128i, assist: __m128i) -> __m128i {
        let t = _mm_shuffle_epi32::<0xff>(assist);
        // k ⊕ (k << 32) ⊕ (k << 64) ⊕ (k << 96), by doubling.
        let mut k = _mm_xor_si128(prev, _mm_slli_si128::<4>(prev));
        k = _mm_xor_si128(k, _mm_slli_si128::<8>(k));
        _mm_xor_si128(k, t)
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn load(b: &Block) -> __m128i {
        // SAFETY: `b` is 16 readable bytes; `loadu` needs no alignment.
        unsafe { _mm_loadu_si128(std::ptr::from_ref(b).cast()) }
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn store(b: &mut Block, v: __m128i) {
        // SAFETY: `b` is 16 writable bytes; `storeu` needs no alignment.
        unsafe { _mm_storeu_si128(std::ptr::from_mut(b).cast(), v) }
    }

    /// The eleven round keys of AES-128.
    ///
    /// # Safety
    ///
    /// The CPU must have AES-NI.
    #[target_feature(enable = "aes,sse2")]
    pub(super) unsafe fn expand_key(key: Block) -> [Block; ROUNDS] {
        let mut rk = [Block::ZERO; ROUNDS];
        let mut k = load(&key);
        store(&mut rk[0], k);
        macro_rules! step {
            ($r:expr, $rcon:expr) => {
                k = schedule_step(k, _mm_aeskeygenassist_si128::<$rcon>(k));
                store(&mut rk[$r], k);
            };
        }
        step!(1, 0x01);
        step!(2, 0x02);
        step!(3, 0x04);
        step!(4, 0x08);
        step!(5, 0x10);
        step!(6, 0x20);
        step!(7, 0x40);
        step!(8, 0x80);
        step!(9, 0x1b);
        step!(10, 0x36);
        rk
    }

    // ---- 512 bits: four blocks per register ----

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load4(b: &[Block]) -> __m512i {
        let b = &b[..4];
        // SAFETY: `b` is 64 readable bytes; `loadu` needs no alignment.
        unsafe { _mm512_loadu_si512(b.as_ptr().cast()) }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn store4(b: &mut [Block], v: __m512i) {
        let b = &mut b[..4];
        // SAFETY: `b` is 64 writable bytes; `storeu` needs no alignment.
        unsafe { _mm512_storeu_si512(b.as_mut_ptr().cast(), v) }
    }

    /// All ten rounds on `M` registers with round keys `k`.
    #[inline(always)]
    fn rounds512<const M: usize>(x: &mut [__m512i; M], k: &[__m512i; ROUNDS]) {
        // SAFETY (of the intrinsics below): only called from functions
        // compiled with avx512f and vaes, on CPUs that have them.
        unsafe {
            for v in x.iter_mut() {
                *v = _mm512_xor_si512(*v, k[0]);
            }
            for key in &k[1..ROUNDS - 1] {
                for v in x.iter_mut() {
                    *v = _mm512_aesenc_epi128(*v, *key);
                }
            }
            for v in x.iter_mut() {
                *v = _mm512_aesenclast_epi128(*v, k[ROUNDS - 1]);
            }
        }
    }

    /// `blocks[i] ← AES(blocks[i])` under one key, 32 blocks per pass.
    ///
    /// # Safety
    ///
    /// The CPU must have avx512f, vaes and aes.
    #[target_feature(enable = "avx512f,vaes,aes")]
    pub(super) unsafe fn encrypt_one_key_512(rk: &[Block; ROUNDS], blocks: &mut [Block]) {
        let k: [__m512i; ROUNDS] = std::array::from_fn(|r| _mm512_broadcast_i32x4(load(&rk[r])));
        let mut chunks = blocks.chunks_exact_mut(32);
        for c in &mut chunks {
            let mut x: [__m512i; 8] = std::array::from_fn(|i| load4(&c[4 * i..]));
            rounds512(&mut x, &k);
            for (i, v) in x.into_iter().enumerate() {
                store4(&mut c[4 * i..], v);
            }
        }
        let rest = chunks.into_remainder();
        let mut quads = rest.chunks_exact_mut(4);
        for c in &mut quads {
            let mut x = [load4(c)];
            rounds512(&mut x, &k);
            store4(c, x[0]);
        }
        let tail = quads.into_remainder();
        if !tail.is_empty() {
            let mut tmp = [Block::ZERO; 4];
            tmp[..tail.len()].copy_from_slice(tail);
            let mut x = [load4(&tmp)];
            rounds512(&mut x, &k);
            store4(&mut tmp, x[0]);
            tail.copy_from_slice(&tmp[..tail.len()]);
        }
    }

    /// Counter blocks `start + b0 .. start + b0 + M`, each in every lane.
    #[inline(always)]
    fn counters512<const M: usize>(start: u128, b0: usize) -> [__m512i; M] {
        std::array::from_fn(|i| {
            let c = Block(start.wrapping_add((b0 + i) as u128));
            // SAFETY: only called from functions compiled with avx512f.
            unsafe { _mm512_broadcast_i32x4(load(&c)) }
        })
    }

    /// Stores register `v` (lanes: keys `4g .. 4g + 4`) into row `b`.
    #[inline(always)]
    fn put512(out: &mut [Block], at: usize, lanes: usize, v: __m512i) {
        if lanes == ROW {
            // SAFETY: only called from functions compiled with avx512f.
            unsafe { store4(&mut out[at..], v) }
        } else {
            let mut tmp = [Block::ZERO; ROW];
            // SAFETY: as above.
            unsafe { store4(&mut tmp, v) };
            out[at..at + lanes].copy_from_slice(&tmp[..lanes]);
        }
    }

    /// [`super::MultiKeyAes::ctr_rows_of`] with four keys per register.
    ///
    /// # Safety
    ///
    /// The CPU must have avx512f, vaes and aes, and `stride ≥ keys.len()`,
    /// `out.len() ≥ (w − 1)·stride + keys.len()` (checked by the caller).
    #[target_feature(enable = "avx512f,vaes,aes")]
    pub(super) unsafe fn ctr_rows_512(
        rk: &[Block],
        keep: &[Block],
        keys: Range<usize>,
        start: u128,
        w: usize,
        out: &mut [Block],
        stride: usize,
    ) {
        // The common case first: eight rows at a time for the groups of
        // four keys, the counters computed once for all of them (every key
        // encrypts the same counters).
        //
        // The stores go through a raw pointer, bounds checked once by the
        // caller: with a check per store, the compiler sank each register's
        // ten rounds down to its store and the registers no longer
        // overlapped (half the throughput).
        let (first, full) = (keys.start / ROW, keys.len() / ROW);
        let dst = out.as_mut_ptr();
        let mut fast = 0;
        while w - fast >= 8 {
            let ctr = counters512::<8>(start, fast);
            for g in first..first + full {
                let at = g * ROW - keys.start;
                let k: [__m512i; ROUNDS] =
                    std::array::from_fn(|r| load4(&rk[(g * ROUNDS + r) * ROW..]));
                let mask = load4(&keep[g * ROW..]);
                let mut x = ctr;
                rounds512(&mut x, &k);
                for (i, v) in x.into_iter().enumerate() {
                    let to = (fast + i) * stride + at;
                    debug_assert!(to + ROW <= out.len());
                    // SAFETY: row `fast + i < w`, keys `at .. at + 4` of
                    // `keys.len() ≤ stride`: `to + 4 ≤ (w − 1)·stride +
                    // keys.len() ≤ out.len()` (the caller's contract).
                    unsafe { _mm512_storeu_si512(dst.add(to).cast(), _mm512_and_si512(v, mask)) };
                }
            }
            fast += 8;
        }
        // Then the rest: the rows left for the full groups, every row for a
        // last group of fewer than four keys.
        for g in first..keys.end.div_ceil(ROW) {
            let lanes = ROW.min(keys.end - g * ROW);
            let at = g * ROW - keys.start;
            let mut b0 = if lanes == ROW { fast } else { 0 };
            if b0 == w {
                continue;
            }
            let k: [__m512i; ROUNDS] =
                std::array::from_fn(|r| load4(&rk[(g * ROUNDS + r) * ROW..]));
            let mask = load4(&keep[g * ROW..]);
            // Eight rows per pass (eight registers in flight), then the rest
            // one at a time.
            while w - b0 >= 8 {
                let mut x = counters512::<8>(start, b0);
                rounds512(&mut x, &k);
                for (i, v) in x.into_iter().enumerate() {
                    put512(
                        out,
                        (b0 + i) * stride + at,
                        lanes,
                        _mm512_and_si512(v, mask),
                    );
                }
                b0 += 8;
            }
            if w - b0 >= 4 {
                let mut x = counters512::<4>(start, b0);
                rounds512(&mut x, &k);
                for (i, v) in x.into_iter().enumerate() {
                    put512(
                        out,
                        (b0 + i) * stride + at,
                        lanes,
                        _mm512_and_si512(v, mask),
                    );
                }
                b0 += 4;
            }
            while b0 < w {
                let mut x = counters512::<1>(start, b0);
                rounds512(&mut x, &k);
                put512(out, b0 * stride + at, lanes, _mm512_and_si512(x[0], mask));
                b0 += 1;
            }
        }
    }

    // ---- 256 bits: two blocks per register ----

    #[inline]
    #[target_feature(enable = "avx")]
    fn load2(b: &[Block]) -> __m256i {
        let b = &b[..2];
        // SAFETY: `b` is 32 readable bytes; `loadu` needs no alignment.
        unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
    }

    #[inline]
    #[target_feature(enable = "avx")]
    fn store2(b: &mut [Block], v: __m256i) {
        let b = &mut b[..2];
        // SAFETY: `b` is 32 writable bytes; `storeu` needs no alignment.
        unsafe { _mm256_storeu_si256(b.as_mut_ptr().cast(), v) }
    }

    /// All ten rounds on `M` registers with round keys `k`.
    #[inline(always)]
    fn rounds256<const M: usize>(x: &mut [__m256i; M], k: &[__m256i; ROUNDS]) {
        // SAFETY (of the intrinsics below): only called from functions
        // compiled with avx2 and vaes, on CPUs that have them.
        unsafe {
            for v in x.iter_mut() {
                *v = _mm256_xor_si256(*v, k[0]);
            }
            for key in &k[1..ROUNDS - 1] {
                for v in x.iter_mut() {
                    *v = _mm256_aesenc_epi128(*v, *key);
                }
            }
            for v in x.iter_mut() {
                *v = _mm256_aesenclast_epi128(*v, k[ROUNDS - 1]);
            }
        }
    }

    /// `blocks[i] ← AES(blocks[i])` under one key, 16 blocks per pass.
    ///
    /// # Safety
    ///
    /// The CPU must have avx2, vaes and aes.
    #[target_feature(enable = "avx2,vaes,aes")]
    pub(super) unsafe fn encrypt_one_key_256(rk: &[Block; ROUNDS], blocks: &mut [Block]) {
        let k: [__m256i; ROUNDS] =
            std::array::from_fn(|r| _mm256_broadcastsi128_si256(load(&rk[r])));
        let mut chunks = blocks.chunks_exact_mut(16);
        for c in &mut chunks {
            let mut x: [__m256i; 8] = std::array::from_fn(|i| load2(&c[2 * i..]));
            rounds256(&mut x, &k);
            for (i, v) in x.into_iter().enumerate() {
                store2(&mut c[2 * i..], v);
            }
        }
        let rest = chunks.into_remainder();
        let mut pairs = rest.chunks_exact_mut(2);
        for c in &mut pairs {
            let mut x = [load2(c)];
            rounds256(&mut x, &k);
            store2(c, x[0]);
        }
        let tail = pairs.into_remainder();
        if !tail.is_empty() {
            let mut tmp = [tail[0], Block::ZERO];
            let mut x = [load2(&tmp)];
            rounds256(&mut x, &k);
            store2(&mut tmp, x[0]);
            tail[0] = tmp[0];
        }
    }

    /// Counter blocks `start + b0 .. start + b0 + M`, each in both lanes.
    #[inline(always)]
    fn counters256<const M: usize>(start: u128, b0: usize) -> [__m256i; M] {
        std::array::from_fn(|i| {
            let c = Block(start.wrapping_add((b0 + i) as u128));
            // SAFETY: only called from functions compiled with avx2.
            unsafe { _mm256_broadcastsi128_si256(load(&c)) }
        })
    }

    #[inline(always)]
    fn put256(out: &mut [Block], at: usize, lanes: usize, v: __m256i) {
        if lanes == 2 {
            // SAFETY: only called from functions compiled with avx2.
            unsafe { store2(&mut out[at..], v) }
        } else {
            // SAFETY: as above.
            unsafe { store(&mut out[at], _mm256_castsi256_si128(v)) }
        }
    }

    /// [`super::MultiKeyAes::ctr_rows_of`] with two keys per register (half
    /// a row of round keys).
    ///
    /// # Safety
    ///
    /// The CPU must have avx2, vaes and aes, and `stride ≥ keys.len()`,
    /// `out.len() ≥ (w − 1)·stride + keys.len()` (checked by the caller).
    #[target_feature(enable = "avx2,vaes,aes")]
    pub(super) unsafe fn ctr_rows_256(
        rk: &[Block],
        keep: &[Block],
        keys: Range<usize>,
        start: u128,
        w: usize,
        out: &mut [Block],
        stride: usize,
    ) {
        // As `ctr_rows_512`: eight rows at a time for the pairs of keys
        // first, then the rest.
        let (first, full) = (keys.start / 2, keys.len() / 2);
        let dst = out.as_mut_ptr();
        let mut fast = 0;
        while w - fast >= 8 {
            let ctr = counters256::<8>(start, fast);
            for h in first..first + full {
                let (g, j) = (h / 2, 2 * (h % 2));
                let at = 2 * h - keys.start;
                let k: [__m256i; ROUNDS] =
                    std::array::from_fn(|r| load2(&rk[(g * ROUNDS + r) * ROW + j..]));
                let mask = load2(&keep[2 * h..]);
                let mut x = ctr;
                rounds256(&mut x, &k);
                for (i, v) in x.into_iter().enumerate() {
                    let to = (fast + i) * stride + at;
                    debug_assert!(to + 2 <= out.len());
                    // SAFETY: row `fast + i < w`, keys `at .. at + 2` of
                    // `keys.len() ≤ stride`: `to + 2 ≤ (w − 1)·stride +
                    // keys.len() ≤ out.len()` (the caller's contract).
                    unsafe { _mm256_storeu_si256(dst.add(to).cast(), _mm256_and_si256(v, mask)) };
                }
            }
            fast += 8;
        }
        for h in first..keys.end.div_ceil(2) {
            let (g, j) = (h / 2, 2 * (h % 2));
            let lanes = 2.min(keys.end - 2 * h);
            let at = 2 * h - keys.start;
            let mut b0 = if lanes == 2 { fast } else { 0 };
            if b0 == w {
                continue;
            }
            let k: [__m256i; ROUNDS] =
                std::array::from_fn(|r| load2(&rk[(g * ROUNDS + r) * ROW + j..]));
            let mask = load2(&keep[2 * h..]);
            while w - b0 >= 8 {
                let mut x = counters256::<8>(start, b0);
                rounds256(&mut x, &k);
                for (i, v) in x.into_iter().enumerate() {
                    put256(
                        out,
                        (b0 + i) * stride + at,
                        lanes,
                        _mm256_and_si256(v, mask),
                    );
                }
                b0 += 8;
            }
            if w - b0 >= 4 {
                let mut x = counters256::<4>(start, b0);
                rounds256(&mut x, &k);
                for (i, v) in x.into_iter().enumerate() {
                    put256(
                        out,
                        (b0 + i) * stride + at,
                        lanes,
                        _mm256_and_si256(v, mask),
                    );
                }
                b0 += 4;
            }
            while b0 < w {
                let mut x = counters256::<1>(start, b0);
                rounds256(&mut x, &k);
                put256(out, b0 * stride + at, lanes, _mm256_and_si256(x[0], mask));
                b0 += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Block {
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        Block::from_bytes(out)
    }

    fn available() -> Vec<Backend> {
        Backend::all()
            .into_iter()
            .filter(|b| b.is_available())
            .collect()
    }

    /// (key, plaintext, ciphertext): FIPS-197 Appendix C.1, then the four
    /// blocks of NIST SP 800-38A F.1.1 (ECB-AES128.Encrypt).
    const VECTORS: [(&str, &str, &str); 5] = [
        (
            "000102030405060708090a0b0c0d0e0f",
            "00112233445566778899aabbccddeeff",
            "69c4e0d86a7b0430d8cdb78070b4c55a",
        ),
        (
            "2b7e151628aed2a6abf7158809cf4f3c",
            "6bc1bee22e409f96e93d7e117393172a",
            "3ad77bb40d7a3660a89ecaf32466ef97",
        ),
        (
            "2b7e151628aed2a6abf7158809cf4f3c",
            "ae2d8a571e03ac9c9eb76fac45af8e51",
            "f5d3d58503b9699de785895a96fdbaaf",
        ),
        (
            "2b7e151628aed2a6abf7158809cf4f3c",
            "30c81c46a35ce411e5fbc1191a0a52ef",
            "43b1cd7f598ece23881b00e3ed030688",
        ),
        (
            "2b7e151628aed2a6abf7158809cf4f3c",
            "f69f2445df4f9b17ad2b417be66c3710",
            "7b0c785e27e8ad3f8223207104725dd4",
        ),
    ];

    #[test]
    fn the_portable_backend_is_always_there() {
        assert!(Backend::Portable.is_available());
        assert!(available().contains(&Backend::detect()));
        // Report what this machine runs (visible with --nocapture).
        println!("AES backends here: {:?}", available());
    }

    #[test]
    fn known_answers_on_every_backend_one_key() {
        for backend in available() {
            for (key, pt, ct) in VECTORS {
                // Lengths that end in each path: a full pass, whole
                // registers, a partial register.
                for len in [1usize, 2, 3, 4, 5, 16, 17, 32, 35, 70] {
                    let aes = WideAes::with_backend(hex(key), backend);
                    let mut blocks = vec![hex(pt); len];
                    aes.encrypt(&mut blocks);
                    assert!(
                        blocks.iter().all(|&b| b == hex(ct)),
                        "{backend:?}, {len} blocks, key {key}"
                    );
                }
            }
        }
    }

    #[test]
    fn known_answers_on_every_backend_several_keys() {
        // The five vectors' keys side by side (two distinct keys, in lanes
        // 0..5); each key's "counter" row 0 is its plaintext when the
        // counter starts there.
        for backend in available() {
            for (key, pt, ct) in VECTORS {
                let keys = [Block(7), hex(key), Block(9), hex(key), hex(key)];
                let aes = MultiKeyAes::with_backend(&keys, backend);
                let mut out = vec![Block::ZERO; 3 * keys.len()];
                aes.ctr_rows(hex(pt).0, 3, &mut out, keys.len());
                for x in [1, 3, 4] {
                    assert_eq!(out[x], hex(ct), "{backend:?}, lane {x}, key {key}");
                }
            }
        }
    }

    /// The reference: the `aes` crate, one block at a time.
    fn reference(key: Block, block: Block) -> Block {
        let c = portable_cipher(key);
        let mut a = aes::Block::from(block.to_bytes());
        c.encrypt_block(&mut a);
        Block::from_bytes(a.into())
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 64,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Every backend's counter mode under several keys equals the `aes`
        /// crate block by block, for key counts that are not multiples of
        /// the lanes, any row count, gaps between rows and counters that
        /// wrap around 2^128.
        #[test]
        fn several_keys_match_the_aes_crate(
            keys in proptest::collection::vec(any::<u128>(), 1..20),
            w in 0usize..21,
            gap in 0usize..3,
            start in any::<u128>(),
            near_wrap in any::<bool>(),
        ) {
            let keys: Vec<Block> = keys.into_iter().map(Block).collect();
            let start = if near_wrap { u128::MAX - 3 } else { start };
            let stride = keys.len() + gap;
            for backend in available() {
                let aes = MultiKeyAes::with_backend(&keys, backend);
                // A sub-range of the keys, as the SoftSpoken loops use.
                let from = (keys.len() / 2) & !3;
                let mut part = vec![Block::ZERO; w * keys.len()];
                aes.ctr_rows_of(from..keys.len(), start, w, &mut part, keys.len());
                for b in 0..w {
                    for x in from..keys.len() {
                        let want = reference(keys[x], Block(start.wrapping_add(b as u128)));
                        prop_assert_eq!(part[b * keys.len() + x - from], want);
                    }
                }
                let sentinel = Block(0x5a5a);
                let mut out = vec![sentinel; w * stride + 1];
                aes.ctr_rows(start, w, &mut out, stride);
                for b in 0..w {
                    for (x, &key) in keys.iter().enumerate() {
                        let want = reference(key, Block(start.wrapping_add(b as u128)));
                        prop_assert_eq!(out[b * stride + x], want, "{:?} b {} x {}", backend, b, x);
                    }
                    // The gaps are left alone.
                    for x in keys.len()..stride {
                        prop_assert_eq!(out[b * stride + x], sentinel);
                    }
                }
                prop_assert_eq!(out[w * stride], sentinel);
            }
        }

        /// Every backend's one-key path equals the `aes` crate, any length.
        #[test]
        fn one_key_matches_the_aes_crate(
            key in any::<u128>(),
            blocks in proptest::collection::vec(any::<u128>(), 0..80),
        ) {
            let blocks: Vec<Block> = blocks.into_iter().map(Block).collect();
            for backend in available() {
                let aes = WideAes::with_backend(Block(key), backend);
                let mut out = blocks.clone();
                aes.encrypt(&mut out);
                for (&o, &b) in out.iter().zip(&blocks) {
                    prop_assert_eq!(o, reference(Block(key), b), "{:?}", backend);
                }
            }
        }
    }

    #[test]
    fn holes_give_zero_blocks_on_every_backend() {
        let keys: Vec<Option<Block>> = (0..11u128)
            .map(|x| (x % 3 != 0).then_some(Block(x * 77 + 1)))
            .collect();
        for backend in available() {
            let aes = MultiKeyAes::with_holes(&keys, backend);
            let mut out = vec![Block(1); 5 * 12];
            aes.ctr_rows(40, 5, &mut out, 12);
            for b in 0..5 {
                for (x, key) in keys.iter().enumerate() {
                    let want = key.map_or(Block::ZERO, |k| reference(k, Block(40 + b as u128)));
                    assert_eq!(out[b * 12 + x], want, "{backend:?} b {b} x {x}");
                }
                assert_eq!(out[b * 12 + 11], Block(1));
            }
        }
    }

    #[test]
    fn debug_shows_no_key() {
        let aes = MultiKeyAes::new(&[Block(1), Block(2)]);
        assert_eq!(format!("{aes:?}"), "MultiKeyAes(2 keys)");
        assert_eq!(format!("{:?}", WideAes::new(Block(3))), "WideAes(..)");
    }
}
