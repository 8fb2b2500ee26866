//! Distributed comparison functions (DCF): function secret sharing of
//! `f(x) = β·[x < α]` over `n`-bit inputs, with outputs in Z_2^64.
//!
//! The construction is Fig. 1 of Boyle, Chandran, Gilboa, Gupta, Ishai,
//! Kumar and Ryffel, "Function Secret Sharing for Mixed-Mode and
//! Fixed-Point Secure Computation" (EUROCRYPT 2021, ePrint 2020/1392): a
//! GGM tree walked along the bits of the input, most significant first,
//! with one correction word per level. Keys `k0`, `k1` come from
//! [`gen`]; `eval(0, k0, x) + eval(1, k1, x) = β·[x < α]` for every `x`,
//! and each key alone is pseudorandom (it hides `α` and `β`).
//!
//! Here a key is split in two: the party's own root seed (128 bits) and the
//! correction words ([`Cws`]), which are the same for both parties. The
//! dealer's comparison correlation ([`crate::correlations::CorrelationRequest::DcfMsb`])
//! derives each root from that party's PRG stream and sends the correction
//! words to party 1 only; party 1 forwards them to party 0 with its first
//! message of the comparison ([`crate::compare`]). Both views are exactly
//! those of the paper's keys.
//!
//! **PRG.** `G(s) = (π₀(s) ⊕ s, π₁(s) ⊕ s, π₂(s) ⊕ s, π₃(s) ⊕ s)` with
//! `π_i = AES-128` under four fixed public keys (Matyas–Meyer–Oseas), the
//! usual instantiation of FSS implementations; secure when fixed-key AES is
//! modelled as a random permutation (the assumption `ot`'s hash makes too).
//! Block 0 is the left child's seed, block 1 the right's, block 2 the two
//! 64-bit output words `v_L ‖ v_R`, and bits 0 and 1 of block 3 the two
//! control bits: seeds keep all 128 bits (λ = 128).
//!
//! **Timing.** [`gen`] (the dealer, on the secret `α`, `β`) selects between
//! the two children with masks, never with a branch on a secret bit.
//! [`eval`] branches on the bits of `x`, which is public (an opened masked
//! value) in every use here.
//!
//! Sizes, for `n` = [`DCF_BITS`] = 63: [`CW_WORDS`] = 192 words (1,536
//! bytes) of correction words per comparison; [`gen`] computes 8 AES blocks
//! per level, [`eval`] 4.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;

use super::error::{Result, SharingError};

/// Input bits of the comparisons Veil runs: the low 63 bits of an opened
/// masked value (the MSB protocol of [`crate::compare`]).
pub const DCF_BITS: u32 = 63;

/// Words of the correction words of one `bits`-bit DCF: per level the seed
/// correction (2 words) and the value correction (1 word), the control-bit
/// corrections packed two per level, and the final correction (1 word).
pub const fn cw_words(bits: u32) -> usize {
    plan::params::dcf_cw_words(bits) as usize
}

/// [`cw_words`] of [`DCF_BITS`] (the compiler prices it as
/// `plan::params::DCF_CW_WORDS`).
pub const CW_WORDS: usize = cw_words(DCF_BITS);
const _: () = assert!(CW_WORDS == plan::params::DCF_CW_WORDS as usize);

/// The four fixed public AES keys of the PRG: arbitrary constants (the
/// hexadecimal digits of π after the point), nothing up the sleeve.
const PRG_KEYS: [u128; 4] = [
    0x243F_6A88_85A3_08D3_1319_8A2E_0370_7344,
    0xA409_3822_299F_31D0_082E_FA98_EC4E_6C89,
    0x4528_21E6_38D0_1377_BE54_66CF_34E9_0C6C,
    0xC0AC_29B7_C97C_50DD_3F84_D5B5_B547_0917,
];

/// The length-quadrupling PRG of the tree (see the module docs).
pub struct Prg {
    ciphers: [Aes128; 4],
}

impl Default for Prg {
    fn default() -> Self {
        Self::new()
    }
}

/// One node's expansion: both children's seeds, output words and control
/// bits (0 or 1).
#[derive(Clone, Copy, Default)]
struct Children {
    s: [u128; 2],
    v: [u64; 2],
    t: [u64; 2],
}

impl Prg {
    pub fn new() -> Self {
        Self {
            ciphers: PRG_KEYS.map(|k| Aes128::new(&k.to_le_bytes().into())),
        }
    }

    /// `G(s)` of every seed, the AES blocks of each key encrypted together
    /// so the hardware pipeline stays full.
    fn expand(&self, seeds: &[u128], out: &mut Vec<Children>, bufs: &mut [Vec<aes::Block>; 2]) {
        out.clear();
        out.resize(seeds.len(), Children::default());
        let [blocks, buf] = bufs;
        blocks.clear();
        blocks.extend(seeds.iter().map(|s| aes::Block::from(s.to_le_bytes())));
        for (k, cipher) in self.ciphers.iter().enumerate() {
            buf.clear();
            buf.extend_from_slice(blocks);
            cipher.encrypt_blocks(buf);
            for ((o, b), s) in out.iter_mut().zip(buf.iter()).zip(seeds) {
                let w = u128::from_le_bytes((*b).into()) ^ s;
                match k {
                    0 => o.s[0] = w,
                    1 => o.s[1] = w,
                    2 => o.v = [w as u64, (w >> 64) as u64],
                    _ => o.t = [(w & 1) as u64, ((w >> 1) & 1) as u64],
                }
            }
        }
    }
}

/// The correction words of `m` DCFs of `bits` bits each, as the words the
/// dealer sends ([`Cws::words`]): for DCF `j`, words
/// `j·cw_words(bits) ..` hold the `bits` seed corrections (low word first),
/// the `bits` value corrections, the packed control-bit corrections (bit
/// `2i` left, `2i + 1` right, of level `i`) and the final correction.
#[derive(Clone, PartialEq, Eq)]
pub struct Cws {
    pub bits: u32,
    pub words: Vec<u64>,
}

impl std::fmt::Debug for Cws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cws")
            .field("bits", &self.bits)
            .field("count", &self.count())
            .finish_non_exhaustive()
    }
}

/// Elements a DCF generation or evaluation takes at a time, level by
/// level: enough blocks per AES call to keep the pipeline full, few enough
/// that their correction words (1.5 KiB each) stay in the L2 cache while
/// the levels walk through them.
const BLOCK: usize = 64;

/// The correction words of a run of DCFs (a block of [`Cws::words`]).
#[derive(Clone, Copy)]
struct CwsRef<'a> {
    bits: u32,
    words: &'a [u64],
}

impl Cws {
    /// How many DCFs these are the correction words of.
    pub fn count(&self) -> usize {
        self.words.len() / cw_words(self.bits)
    }

    /// Checks that `words` are whole sets of correction words for `count`
    /// DCFs of `bits` bits (a malformed peer message is an error).
    pub fn new(bits: u32, count: usize, words: Vec<u64>) -> Result<Cws> {
        if bits == 0 || bits > 64 {
            return Err(SharingError::BadParameter("a DCF has 1 to 64 input bits"));
        }
        if Some(words.len()) != count.checked_mul(cw_words(bits)) {
            return Err(SharingError::Correlations(format!(
                "expected the correction words of {count} comparisons, got {} words",
                words.len()
            )));
        }
        Ok(Cws { bits, words })
    }
}

impl CwsRef<'_> {
    fn seed(&self, j: usize, level: usize) -> u128 {
        let base = j * cw_words(self.bits) + 2 * level;
        u128::from(self.words[base]) | (u128::from(self.words[base + 1]) << 64)
    }

    fn value(&self, j: usize, level: usize) -> u64 {
        let n = self.bits as usize;
        self.words[j * cw_words(self.bits) + 2 * n + level]
    }

    /// Control-bit corrections of `level`, left and right, as 0/1.
    fn control(&self, j: usize, level: usize) -> [u64; 2] {
        let n = self.bits as usize;
        let w = self.words[j * cw_words(self.bits) + 3 * n + (2 * level) / 64];
        let sh = (2 * level) % 64;
        [(w >> sh) & 1, (w >> (sh + 1)) & 1]
    }

    fn last(&self, j: usize) -> u64 {
        self.words[(j + 1) * cw_words(self.bits) - 1]
    }
}

impl Drop for Cws {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.words);
    }
}

/// All ones where `bit` (0 or 1) is 1.
fn mask64(bit: u64) -> u64 {
    0u64.wrapping_sub(bit & 1)
}

fn mask128(bit: u64) -> u128 {
    0u128.wrapping_sub(u128::from(bit & 1))
}

/// `(−1)^t · x` for a control bit `t`, without a branch.
fn signed(t: u64, x: u64) -> u64 {
    let m = mask64(t);
    (x ^ m).wrapping_sub(m)
}

/// The correction words of DCFs `β_j·[x < α_j]` on `bits`-bit inputs, for
/// party 0's root seeds `roots[0]` and party 1's `roots[1]` (one per DCF).
/// Bits of `α_j` above `bits` are ignored. Constant-time in `α` and `β`.
pub fn gen(prg: &Prg, bits: u32, alpha: &[u64], beta: &[u64], roots: [&[u128]; 2]) -> Result<Cws> {
    let m = alpha.len();
    if beta.len() != m || roots[0].len() != m || roots[1].len() != m {
        return Err(SharingError::BadParameter(
            "a DCF needs one α, β and root seed pair each",
        ));
    }
    if bits == 0 || bits > 64 {
        return Err(SharingError::BadParameter("a DCF has 1 to 64 input bits"));
    }
    let cw = cw_words(bits);
    let mut words = vec![0u64; m * cw];
    let mut bufs = Default::default();
    for (k, out) in words.chunks_mut(BLOCK * cw).enumerate() {
        let r = k * BLOCK..(k * BLOCK + out.len() / cw);
        gen_block(
            prg,
            bits,
            &alpha[r.clone()],
            &beta[r.clone()],
            [&roots[0][r.clone()], &roots[1][r]],
            out,
            &mut bufs,
        );
    }
    Cws::new(bits, m, words)
}

/// [`gen`] of one block of DCFs into their words `words` (zeroed).
fn gen_block(
    prg: &Prg,
    bits: u32,
    alpha: &[u64],
    beta: &[u64],
    roots: [&[u128]; 2],
    words: &mut [u64],
    bufs: &mut [Vec<aes::Block>; 2],
) {
    let m = alpha.len();
    let n = bits as usize;
    let cw = cw_words(bits);
    let mut s = [roots[0].to_vec(), roots[1].to_vec()];
    let mut t = [vec![0u64; m], vec![1u64; m]];
    let mut v_alpha = vec![0u64; m];
    let (mut e0, mut e1) = (Vec::new(), Vec::new());
    for level in 0..n {
        prg.expand(&s[0], &mut e0, bufs);
        prg.expand(&s[1], &mut e1, bufs);
        let shift = n - 1 - level;
        for j in 0..m {
            let a = (alpha[j] >> shift) & 1;
            // keep = the child on α's path (left if a = 0), lose = the other;
            // selected by masks: `pick(x) = x[a]`, `other(x) = x[1 - a]`.
            let ma = mask128(a);
            let pick128 = |x: [u128; 2]| (x[0] & !ma) | (x[1] & ma);
            let other128 = |x: [u128; 2]| (x[1] & !ma) | (x[0] & ma);
            let ma64 = mask64(a);
            let pick64 = |x: [u64; 2]| (x[0] & !ma64) | (x[1] & ma64);
            let other64 = |x: [u64; 2]| (x[1] & !ma64) | (x[0] & ma64);
            let (c0, c1) = (&e0[j], &e1[j]);
            let s_cw = other128(c0.s) ^ other128(c1.s);
            let t1 = t[1][j];
            let mut v_cw = signed(
                t1,
                other64(c1.v)
                    .wrapping_sub(other64(c0.v))
                    .wrapping_sub(v_alpha[j]),
            );
            // The lost child is the left one when a = 1: every x below α
            // leaves the path there, so it carries β.
            v_cw = v_cw.wrapping_add(signed(t1, beta[j]) & ma64);
            v_alpha[j] = v_alpha[j]
                .wrapping_sub(pick64(c1.v))
                .wrapping_add(pick64(c0.v))
                .wrapping_add(signed(t1, v_cw));
            let t_cw = [c0.t[0] ^ c1.t[0] ^ a ^ 1, c0.t[1] ^ c1.t[1] ^ a];
            let base = j * cw;
            words[base + 2 * level] = s_cw as u64;
            words[base + 2 * level + 1] = (s_cw >> 64) as u64;
            words[base + 2 * n + level] = v_cw;
            words[base + 3 * n + (2 * level) / 64] |=
                (t_cw[0] | (t_cw[1] << 1)) << ((2 * level) % 64);
            let t_keep = pick64(t_cw);
            for (b, c) in [(0, c0), (1, c1)] {
                let tb = t[b][j];
                s[b][j] = pick128(c.s) ^ (s_cw & mask128(tb));
                t[b][j] = pick64(c.t) ^ (tb & t_keep);
            }
        }
    }
    for j in 0..m {
        let last = signed(
            t[1][j],
            (s[1][j] as u64)
                .wrapping_sub(s[0][j] as u64)
                .wrapping_sub(v_alpha[j]),
        );
        words[(j + 1) * cw - 1] = last;
    }
    for x in s.iter_mut() {
        zeroize::Zeroize::zeroize(x);
    }
}

/// Party `party`'s (0 or 1) shares of `β_j·[x_j < α_j]`, from its root
/// seeds and the correction words. Bits of `x_j` above `cws.bits` are
/// ignored.
pub fn eval(prg: &Prg, party: u8, roots: &[u128], cws: &Cws, x: &[u64]) -> Result<Vec<u64>> {
    let m = x.len();
    if roots.len() != m || cws.count() != m || party > 1 {
        return Err(SharingError::BadParameter(
            "a DCF evaluation needs one root seed and set of correction words per input",
        ));
    }
    let cw = cw_words(cws.bits);
    let mut acc = vec![0u64; m];
    let mut bufs = Default::default();
    for (k, out) in acc.chunks_mut(BLOCK).enumerate() {
        let r = k * BLOCK..k * BLOCK + out.len();
        let block = CwsRef {
            bits: cws.bits,
            words: &cws.words[r.start * cw..r.end * cw],
        };
        eval_block(prg, party, &roots[r.clone()], block, &x[r], out, &mut bufs);
    }
    Ok(acc)
}

/// [`eval`] of one block of DCFs into `acc` (zeroed).
fn eval_block(
    prg: &Prg,
    party: u8,
    roots: &[u128],
    cws: CwsRef<'_>,
    x: &[u64],
    acc: &mut [u64],
    bufs: &mut [Vec<aes::Block>; 2],
) {
    let m = x.len();
    let n = cws.bits as usize;
    let p = u64::from(party);
    let mut s = roots.to_vec();
    let mut t = vec![p; m];
    let mut e = Vec::new();
    for level in 0..n {
        prg.expand(&s, &mut e, bufs);
        let shift = n - 1 - level;
        for j in 0..m {
            let c = &mut e[j];
            let tj = t[j];
            let s_cw = cws.seed(j, level) & mask128(tj);
            let t_cw = cws.control(j, level);
            let side = ((x[j] >> shift) & 1) as usize;
            let child_s = c.s[side] ^ s_cw;
            let child_t = c.t[side] ^ (t_cw[side] & tj);
            let v = c.v[side].wrapping_add(cws.value(j, level) & mask64(tj));
            acc[j] = acc[j].wrapping_add(signed(p, v));
            s[j] = child_s;
            t[j] = child_t;
        }
    }
    for j in 0..m {
        let last = (s[j] as u64).wrapping_add(cws.last(j) & mask64(t[j]));
        acc[j] = acc[j].wrapping_add(signed(p, last));
    }
    zeroize::Zeroize::zeroize(&mut s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    fn roots(rng: &mut ChaCha20Rng, m: usize) -> [Vec<u128>; 2] {
        [
            (0..m).map(|_| rng.random()).collect(),
            (0..m).map(|_| rng.random()).collect(),
        ]
    }

    fn reconstruct(prg: &Prg, r: &[Vec<u128>; 2], cws: &Cws, x: &[u64]) -> Vec<u64> {
        let y0 = eval(prg, 0, &r[0], cws, x).unwrap();
        let y1 = eval(prg, 1, &r[1], cws, x).unwrap();
        y0.iter()
            .zip(&y1)
            .map(|(a, b)| a.wrapping_add(*b))
            .collect()
    }

    #[test]
    fn every_input_of_every_small_domain() {
        let prg = Prg::new();
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for bits in 1..=5u32 {
            let size = 1u64 << bits;
            for alpha in 0..size {
                let beta: u64 = rng.random();
                // One DCF per input x, all with the same α and β.
                let xs: Vec<u64> = (0..size).collect();
                let m = xs.len();
                let r = roots(&mut rng, m);
                let cws = gen(&prg, bits, &vec![alpha; m], &vec![beta; m], [&r[0], &r[1]]).unwrap();
                let got = reconstruct(&prg, &r, &cws, &xs);
                for (x, y) in xs.iter().zip(got) {
                    let want = if *x < alpha { beta } else { 0 };
                    assert_eq!(y, want, "bits {bits}, α {alpha}, x {x}");
                }
            }
        }
    }

    #[test]
    fn sixty_three_bits_at_random_and_at_the_edges() {
        let prg = Prg::new();
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let top = (1u64 << 63) - 1;
        let mut alpha = Vec::new();
        let mut xs = Vec::new();
        for _ in 0..300 {
            let a = rng.random::<u64>() & top;
            let x = match rng.random_range(0..5) {
                0 => a,
                1 => a.wrapping_sub(1) & top,
                2 => (a + 1) & top,
                3 => a ^ (1 << rng.random_range(0..63)),
                _ => rng.random::<u64>() & top,
            };
            alpha.push(a);
            xs.push(x);
        }
        for (a, x) in [
            (0, 0),
            (0, top),
            (top, top),
            (top, 0),
            (1, 0),
            (top, top - 1),
        ] {
            alpha.push(a);
            xs.push(x);
        }
        let m = xs.len();
        let beta: Vec<u64> = (0..m).map(|_| rng.random()).collect();
        let r = roots(&mut rng, m);
        let cws = gen(&prg, DCF_BITS, &alpha, &beta, [&r[0], &r[1]]).unwrap();
        assert_eq!(cws.words.len(), m * CW_WORDS);
        let got = reconstruct(&prg, &r, &cws, &xs);
        // The high bit of x is ignored.
        let got_high = reconstruct(
            &prg,
            &r,
            &cws,
            &xs.iter().map(|x| x | 1 << 63).collect::<Vec<_>>(),
        );
        for j in 0..m {
            let want = if xs[j] < alpha[j] { beta[j] } else { 0 };
            assert_eq!(got[j], want, "α {}, x {}", alpha[j], xs[j]);
            assert_eq!(got_high[j], want);
        }
    }

    #[test]
    fn one_party_shares_look_unrelated_to_the_output() {
        // Each share alone is pseudorandom: over many keys for the same α,
        // β and x, party 0's output bits are balanced, and its share for
        // x < α differs from its share for x >= α.
        let prg = Prg::new();
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let m = 2000;
        let r = roots(&mut rng, m);
        let cws = gen(&prg, 16, &vec![1000; m], &vec![1; m], [&r[0], &r[1]]).unwrap();
        let y = eval(&prg, 0, &r[0], &cws, &vec![5; m]).unwrap();
        let ones: u32 = y.iter().map(|v| v.count_ones()).sum();
        let frac = f64::from(ones) / (64.0 * m as f64);
        assert!((frac - 0.5).abs() < 0.01, "{frac}");
    }

    #[test]
    fn malformed_correction_words_are_errors() {
        assert!(Cws::new(63, 2, vec![0; CW_WORDS]).is_err());
        assert!(Cws::new(0, 0, vec![]).is_err());
        assert!(Cws::new(65, 1, vec![0; 300]).is_err());
        let prg = Prg::new();
        let cws = Cws::new(63, 1, vec![0; CW_WORDS]).unwrap();
        assert!(eval(&prg, 0, &[0, 0], &cws, &[1, 2]).is_err());
        assert!(eval(&prg, 2, &[0], &cws, &[1]).is_err());
        assert!(gen(&prg, 63, &[1], &[], [&[0], &[0]]).is_err());
    }
}
