//! A 128-bit block, the unit of every OT message and key.

use std::fmt;
use std::ops::{BitAnd, BitAndAssign, BitXor, BitXorAssign};

use rand::CryptoRng;
use zeroize::Zeroize;

/// 128 bits, little-endian when written as bytes.
///
/// Bit `i` of a block is bit `i` of the `u128` (bit 0 is the least
/// significant bit of byte 0). `Debug` never prints the value: blocks hold
/// keys, pads and masks.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash, Zeroize)]
#[repr(transparent)]
pub struct Block(pub u128);

impl Block {
    /// All zeros.
    pub const ZERO: Block = Block(0);
    /// All ones.
    pub const ONES: Block = Block(u128::MAX);
    /// Size of a block in bytes.
    pub const BYTES: usize = 16;

    /// The block whose bytes (little-endian) are `bytes`.
    #[inline]
    pub fn from_bytes(bytes: [u8; 16]) -> Block {
        Block(u128::from_le_bytes(bytes))
    }

    /// The block's 16 bytes, little-endian.
    #[inline]
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_le_bytes()
    }

    /// A uniformly random block.
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Block {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        let block = Block::from_bytes(bytes);
        bytes.zeroize();
        block
    }

    /// Bit `i` (0 ≤ i < 128).
    #[inline]
    pub fn bit(self, i: usize) -> bool {
        (self.0 >> i) & 1 == 1
    }

    /// The least significant bit.
    #[inline]
    pub fn lsb(self) -> bool {
        self.0 & 1 == 1
    }

    /// The low 64 bits.
    #[inline]
    pub fn low_u64(self) -> u64 {
        self.0 as u64
    }

    /// The block if `bit`, zero otherwise (branch-free).
    #[inline]
    pub fn select(self, bit: bool) -> Block {
        Block(self.0 & (bit as u128).wrapping_neg())
    }
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Block(..)")
    }
}

impl BitXor for Block {
    type Output = Block;
    #[inline]
    fn bitxor(self, rhs: Block) -> Block {
        Block(self.0 ^ rhs.0)
    }
}

impl BitXorAssign for Block {
    #[inline]
    fn bitxor_assign(&mut self, rhs: Block) {
        self.0 ^= rhs.0;
    }
}

impl BitAnd for Block {
    type Output = Block;
    #[inline]
    fn bitand(self, rhs: Block) -> Block {
        Block(self.0 & rhs.0)
    }
}

impl BitAndAssign for Block {
    #[inline]
    fn bitand_assign(&mut self, rhs: Block) {
        self.0 &= rhs.0;
    }
}

impl From<u128> for Block {
    fn from(v: u128) -> Block {
        Block(v)
    }
}

/// Packs bits into blocks: bit `j` of the input is bit `j % 128` of block
/// `j / 128`. The last block is padded with zeros.
pub fn pack_bits(bits: &[bool]) -> Vec<Block> {
    let mut out = Vec::new();
    pack_bits_into(bits, &mut out);
    out
}

/// [`pack_bits`] into a reused buffer.
pub fn pack_bits_into(bits: &[bool], out: &mut Vec<Block>) {
    out.clear();
    out.reserve(bits.len().div_ceil(128));
    for chunk in bits.chunks(128) {
        let mut w = 0u128;
        for (k, c8) in chunk.chunks(8).enumerate() {
            w |= (pack8(c8) as u128) << (8 * k);
        }
        out.push(Block(w));
    }
}

/// Eight (or fewer) bools, least significant first, as one byte. With the
/// bytes `b_i ∈ {0, 1}` in `x`, the product with `Σ_j 2^(7j+7)` puts `b_i`
/// at bit `56 + i` and nothing else in the top byte (no two partial
/// products share a bit, so there are no carries).
#[inline]
fn pack8(c8: &[bool]) -> u8 {
    let mut bytes = [0u8; 8];
    for (b, &v) in bytes.iter_mut().zip(c8) {
        *b = v as u8;
    }
    let x = u64::from_le_bytes(bytes);
    (x.wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8
}

/// The first `n` bits of `packed` (the inverse of [`pack_bits`]).
pub fn unpack_bits(packed: &[Block], n: usize) -> Vec<bool> {
    (0..n).map(|j| packed[j / 128].bit(j % 128)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_little_endian() {
        let mut bytes = [0u8; 16];
        bytes[0] = 1;
        bytes[15] = 0x80;
        let b = Block::from_bytes(bytes);
        assert!(b.bit(0));
        assert!(b.bit(127));
        assert!(!b.bit(1));
        assert_eq!(b.to_bytes(), bytes);
    }

    #[test]
    fn pack_unpack_round_trip() {
        let bits: Vec<bool> = (0..300).map(|i| (i * 7 + i / 3) % 5 < 2).collect();
        let packed = pack_bits(&bits);
        assert_eq!(packed.len(), 3);
        assert_eq!(unpack_bits(&packed, 300), bits);
        // Padding is zero.
        assert_eq!(packed[2].0 >> 44, 0);
        // Every byte pattern packs to itself.
        for v in 0..=255u8 {
            let bits: Vec<bool> = (0..8).map(|i| (v >> i) & 1 == 1).collect();
            assert_eq!(pack8(&bits), v);
            assert_eq!(pack_bits(&bits)[0].0, v as u128);
        }
    }

    #[test]
    fn debug_hides_value() {
        assert_eq!(format!("{:?}", Block(0xdead_beef)), "Block(..)");
    }

    #[test]
    fn select_is_and_with_bit() {
        let b = Block(0x1234_5678);
        assert_eq!(b.select(true), b);
        assert_eq!(b.select(false), Block::ZERO);
    }
}
