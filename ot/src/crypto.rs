//! The symmetric primitives: AES-128 as a PRG keyed by a seed, and the
//! tweakable correlation-robust hash built from fixed-key AES.
//!
//! The PRG's AES comes from the `aes` crate, which detects AES-NI at run
//! time (and falls back to a constant-time software implementation); the
//! fixed-key hash goes through [`crate::wide_aes`], which uses 512- or
//! 256-bit VAES when the CPU has it and the same `aes` crate otherwise.
//! Either way many blocks go to each call so the hardware pipeline stays
//! full.
//!
//! * PRG: `G(seed)[k] = AES_seed(k)` (counter mode, the counter as a
//!   little-endian 128-bit integer). Secure if AES-128 is a PRF.
//! * Hash: `tccr(i, x) = π(π(x) ⊕ i) ⊕ π(x)` with `π = AES_K` for a fixed,
//!   public key `K`. This is the tweakable circular correlation-robust hash
//!   of Guo, Katz, Wang and Yu, "Efficient and Secure Multiparty Computation
//!   from Fixed-Key Block Ciphers" (IEEE S&P 2020, ePrint 2019/074, §7.3),
//!   secure when `π` is modelled as a random permutation. It is what the
//!   IKNP outputs are hashed with: `tccr(j, q_j)` and `tccr(j, q_j ⊕ Δ)` are
//!   independent-looking pads as long as `Δ` is secret and each tweak `j` is
//!   used once per input.

use std::sync::OnceLock;

use aes::cipher::KeyInit;
use aes::Aes128;

use zeroize::Zeroize;

use crate::block::Block;
use crate::wide_aes::WideAes;

/// Encrypts `blocks` in place with `cipher` (the `aes` crate's path).
#[inline]
pub(crate) fn encrypt_in_place(cipher: &Aes128, blocks: &mut [Block]) {
    crate::wide_aes::portable_encrypt(cipher, blocks);
}

/// AES-128 with a key, as a pseudorandom generator (counter mode).
#[derive(Clone)]
pub struct Prg {
    cipher: Aes128,
}

impl Prg {
    /// The PRG seeded with `seed` (the seed is the AES key).
    pub fn new(seed: Block) -> Prg {
        let mut key = seed.to_bytes();
        let cipher = Aes128::new(&key.into());
        key.zeroize();
        Prg { cipher }
    }

    /// Writes blocks `start, start + 1, …` of the stream into `out`.
    #[inline]
    pub fn fill(&self, start: u128, out: &mut [Block]) {
        for (k, b) in out.iter_mut().enumerate() {
            *b = Block(start.wrapping_add(k as u128));
        }
        encrypt_in_place(&self.cipher, out);
    }

    /// `len` bytes of the stream from block 0 (for messages of any length).
    pub fn bytes(&self, len: usize) -> Vec<u8> {
        let mut blocks = vec![Block::ZERO; len.div_ceil(16)];
        self.fill(0, &mut blocks);
        let mut out: Vec<u8> = blocks.iter().flat_map(|b| b.to_bytes()).collect();
        out.truncate(len);
        out
    }
}

impl std::fmt::Debug for Prg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prg(..)")
    }
}

/// The fixed, public AES key of `π`: the first 128 bits of the fractional
/// part of π (nothing up the sleeve).
pub const FIXED_KEY: [u8; 16] = 0x243F_6A88_85A3_08D3_1319_8A2E_0370_7344u128.to_be_bytes();

/// Fixed-key AES `π` and the hash built on it.
#[derive(Clone)]
pub struct FixedKeyAes {
    cipher: WideAes,
}

impl std::fmt::Debug for FixedKeyAes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FixedKeyAes")
    }
}

impl Default for FixedKeyAes {
    fn default() -> Self {
        FixedKeyAes::new()
    }
}

impl FixedKeyAes {
    /// `π` with [`FIXED_KEY`].
    pub fn new() -> FixedKeyAes {
        FixedKeyAes {
            cipher: WideAes::new(Block::from_bytes(FIXED_KEY)),
        }
    }

    /// A shared instance (the key schedule is computed once per process).
    pub fn shared() -> &'static FixedKeyAes {
        static SHARED: OnceLock<FixedKeyAes> = OnceLock::new();
        SHARED.get_or_init(FixedKeyAes::new)
    }

    /// `π(x)` for every block, in place.
    #[inline]
    pub fn permute(&self, blocks: &mut [Block]) {
        self.cipher.encrypt(blocks);
    }

    /// `tccr(i, x) = π(π(x) ⊕ i) ⊕ π(x)` of one block.
    pub fn tccr(&self, tweak: Block, x: Block) -> Block {
        let mut b = [x];
        self.tccr_with(&mut b, |_| tweak);
        b[0]
    }

    /// `xs[k] ← tccr(first_tweak + k, xs[k])`.
    #[inline]
    pub fn tccr_seq(&self, first_tweak: u128, xs: &mut [Block]) {
        self.tccr_with(xs, |k| Block(first_tweak.wrapping_add(k as u128)));
    }

    /// `xs[k] ← tccr(tweak(k), xs[k])`, a stack-sized chunk at a time so
    /// each call to AES gets many blocks.
    #[inline]
    pub fn tccr_with(&self, xs: &mut [Block], tweak: impl Fn(usize) -> Block) {
        let mut y = [Block::ZERO; HASH_CHUNK];
        let mut base = 0;
        for chunk in xs.chunks_mut(HASH_CHUNK) {
            let y = &mut y[..chunk.len()];
            y.copy_from_slice(chunk);
            self.permute(y);
            for (k, (c, &yk)) in chunk.iter_mut().zip(y.iter()).enumerate() {
                *c = yk ^ tweak(base + k);
            }
            self.permute(chunk);
            for (c, &yk) in chunk.iter_mut().zip(y.iter()) {
                *c ^= yk;
            }
            base += HASH_CHUNK;
        }
        y.zeroize();
    }
}

/// Blocks hashed per pass (2 KiB on the stack).
const HASH_CHUNK: usize = 128;

#[cfg(test)]
mod tests {
    use super::*;

    fn hex16(s: &str) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    /// FIPS-197, Appendix C.1 (AES-128), through the same in-place path the
    /// PRG and the hash use (checks the byte order of `Block`).
    #[test]
    fn aes128_fips197_appendix_c1() {
        let key = hex16("000102030405060708090a0b0c0d0e0f");
        let pt = hex16("00112233445566778899aabbccddeeff");
        let ct = hex16("69c4e0d86a7b0430d8cdb78070b4c55a");
        let cipher = Aes128::new(&key.into());
        // Several blocks so the pipelined path runs, with the vector in the
        // middle and at the end.
        let mut blocks = vec![Block::from_bytes(pt); 11];
        encrypt_in_place(&cipher, &mut blocks);
        for b in &blocks {
            assert_eq!(b.to_bytes(), ct);
        }
    }

    /// FIPS-197, Appendix B (the cipher example), for a second key.
    #[test]
    fn aes128_fips197_appendix_b() {
        let key = hex16("2b7e151628aed2a6abf7158809cf4f3c");
        let pt = hex16("3243f6a8885a308d313198a2e0370734");
        let ct = hex16("3925841d02dc09fbdc118597196a0b32");
        let prg = Prg::new(Block::from_bytes(key));
        let mut b = [Block::from_bytes(pt)];
        encrypt_in_place(&prg.cipher, &mut b);
        assert_eq!(b[0].to_bytes(), ct);
    }

    #[test]
    fn prg_counter_mode_matches_single_blocks() {
        let prg = Prg::new(Block(42));
        let mut many = vec![Block::ZERO; 19];
        prg.fill(5, &mut many);
        for (k, &b) in many.iter().enumerate() {
            let mut one = [Block::ZERO];
            prg.fill(5 + k as u128, &mut one);
            assert_eq!(one[0], b);
        }
        assert_ne!(many[0], many[1]);
        let mut head = [Block::ZERO; 2];
        prg.fill(0, &mut head);
        let bytes = prg.bytes(20);
        assert_eq!(bytes.len(), 20);
        assert_eq!(bytes[..16], head[0].to_bytes());
        assert_eq!(bytes[16..], head[1].to_bytes()[..4]);
    }

    #[test]
    fn tccr_matches_definition_and_depends_on_tweak() {
        let h = FixedKeyAes::new();
        let x = Block(0x0123_4567_89ab_cdef_u128 << 40);
        let mut px = [x];
        h.permute(&mut px);
        let mut inner = [px[0] ^ Block(9)];
        h.permute(&mut inner);
        assert_eq!(h.tccr(Block(9), x), inner[0] ^ px[0]);
        assert_ne!(h.tccr(Block(9), x), h.tccr(Block(10), x));
        // The batched form agrees with the single form at every position.
        let mut xs: Vec<Block> = (0..21u128).map(|k| Block(k * 0x9e37_79b9)).collect();
        let orig = xs.clone();
        h.tccr_seq(100, &mut xs);
        for (k, (&o, &y)) in orig.iter().zip(&xs).enumerate() {
            assert_eq!(h.tccr(Block(100 + k as u128), o), y);
        }
    }
}
