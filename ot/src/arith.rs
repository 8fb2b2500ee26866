//! Arithmetic over Z_2^64 from correlated OTs: Gilboa's product of a
//! sender's value and a receiver's value, and Beaver triples built from two
//! such products.
//!
//! Gilboa ("Two party RSA key generation", CRYPTO 1999), in the correlated
//! OT form of ALSZ13 (§5.3, "C-OT") and the bit-width trimming of Demmler,
//! Schneider and Zohner (ABY, NDSS 2015, §III-C): to share `a·b` where the
//! sender holds `a` and the receiver holds `b = Σ b_i 2^i`, run one COT per
//! bit of `b` with choice `b_i`. For bit `i` the sender's random value is
//! `s_i = H(j, q_j)` and it sends `τ_i = a − H(j, q_j ⊕ Δ) + s_i`; the
//! receiver computes `y_i = H(j, t_j) + b_i·τ_i`, so `y_i − s_i = b_i·a`.
//! Then `Σ 2^i y_i` and `−Σ 2^i s_i` are additive shares of `a·b` mod 2^64.
//! Only the low `64 − i` bits of `τ_i` matter after the factor `2^i`, so
//! they are all that is sent: 2,080 bits per product instead of 4,096.
//!
//! Security (semi-honest): the receiver sees `τ_i`, masked by
//! `H(j, q_j ⊕ Δ)` when `b_i = 0` and by `H(j, q_j)`-independent pads
//! otherwise (tccr hash, `Δ` secret); the sender sees only the extension
//! message, which hides the `b_i`.
//!
//! A Beaver triple `(a, b, c = a·b)` shared between the two parties needs
//! the cross terms `a_0·b_1` and `b_0·a_1`. Both are Gilboa products with
//! the extension receiver (party 1) choosing by its bits, so 128 COTs in one
//! direction make a triple, and party 1's `a_1, b_1` are its random choice
//! bits: random COTs give random triples with no further input.

use rand::CryptoRng;
use zeroize::Zeroize;

use crate::block::Block;
use crate::crypto::FixedKeyAes;
use crate::error::{Error, Result};
use crate::iknp::{ReceiverCots, SenderCots};
use crate::wire::{tag, Reader, Writer};

/// Bits sent per product: `Σ_{i<64} (64 − i)`.
pub const BITS_PER_PRODUCT: usize = 64 * 65 / 2;

/// The most products one corrections message may carry.
pub const MAX_PRODUCTS: usize = 1 << 26;

const WHAT: &str = "Gilboa corrections";

/// The sender's corrections `τ` for a batch of products, bit-packed.
#[derive(Clone, PartialEq, Eq)]
pub struct Corrections {
    first: u64,
    count: usize,
    words: Vec<u64>,
}

impl std::fmt::Debug for Corrections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Corrections")
            .field("first", &self.first)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

fn words_for(count: usize) -> usize {
    (count * BITS_PER_PRODUCT).div_ceil(64)
}

impl Corrections {
    /// Number of products.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Tag, first (u64), count (u64), then the packed words (u64 each).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(tag::CORRECTIONS, 16 + 8 * self.words.len());
        w.u64(self.first);
        w.u64(self.count as u64);
        w.u64s(&self.words);
        w.finish()
    }

    /// Decodes, checking the length and that padding bits are zero.
    pub fn from_bytes(bytes: &[u8]) -> Result<Corrections> {
        let mut r = Reader::new(WHAT, tag::CORRECTIONS, bytes)?;
        let first = r.u64()?;
        let count = r.count(MAX_PRODUCTS as u64, "the number of products")?;
        let nw = words_for(count);
        r.expect_remaining(nw * 8)?;
        let words = r.u64s(nw)?;
        r.finish()?;
        let used = (count * BITS_PER_PRODUCT) % 64;
        if used != 0 && words.last().is_some_and(|w| w >> used != 0) {
            return Err(Error::Invalid {
                what: WHAT,
                detail: "padding bits past the last correction are set".into(),
            });
        }
        Ok(Corrections {
            first,
            count,
            words,
        })
    }
}

struct BitWriter {
    words: Vec<u64>,
    acc: u64,
    used: u32,
}

#[inline]
fn low_bits(v: u64, w: u32) -> u64 {
    if w >= 64 {
        v
    } else {
        v & ((1u64 << w) - 1)
    }
}

impl BitWriter {
    fn with_capacity(words: usize) -> BitWriter {
        BitWriter {
            words: Vec::with_capacity(words),
            acc: 0,
            used: 0,
        }
    }
    /// Appends the low `w` bits of `v` (1 ≤ w ≤ 64).
    #[inline]
    fn push(&mut self, v: u64, w: u32) {
        let v = low_bits(v, w);
        self.acc |= v << self.used;
        let total = self.used + w;
        if total >= 64 {
            self.words.push(self.acc);
            let consumed = 64 - self.used;
            self.acc = if consumed >= 64 { 0 } else { v >> consumed };
            self.used = total - 64;
        } else {
            self.used = total;
        }
    }
    fn finish(mut self) -> Vec<u64> {
        if self.used > 0 {
            self.words.push(self.acc);
        }
        self.words
    }
}

struct BitReader<'a> {
    words: &'a [u64],
    pos: usize,
}

impl BitReader<'_> {
    /// The next `w` bits (the caller checked the length beforehand).
    #[inline]
    fn pull(&mut self, w: u32) -> u64 {
        let (word, off) = (self.pos / 64, (self.pos % 64) as u32);
        let mut v = self.words[word] >> off;
        if off > 0 && off + w > 64 {
            v |= self.words[word + 1] << (64 - off);
        }
        self.pos += w as usize;
        low_bits(v, w)
    }
}

/// The receiver's choice bits for values `b`: 64 per value, least
/// significant first.
pub fn receiver_choices(b: &[u64]) -> Vec<bool> {
    b.iter()
        .flat_map(|&v| (0..64).map(move |i| (v >> i) & 1 == 1))
        .collect()
}

/// The receiver's values, read back from its COTs' choice bits.
pub fn receiver_values(cots: &ReceiverCots) -> Vec<u64> {
    cots.choices
        .chunks(64)
        .map(|bits| {
            bits.iter()
                .enumerate()
                .fold(0u64, |v, (i, &b)| v | (b as u64) << i)
        })
        .collect()
}

/// Sender: shares of `a[k]·b[k]` for every `k`, where the receiver's `b[k]`
/// are the choice bits of COTs `64k .. 64k + 64`. Returns the corrections
/// to send and this side's shares.
pub fn send(cots: &SenderCots, a: &[u64]) -> Result<(Corrections, Vec<u64>)> {
    if cots.len() != 64 * a.len() || a.len() > MAX_PRODUCTS {
        return Err(Error::Input {
            what: "gilboa::send",
            detail: format!(
                "{} products need {} COTs, got {}",
                a.len(),
                64 * a.len(),
                cots.len()
            ),
        });
    }
    let h = FixedKeyAes::shared();
    let mut out = BitWriter::with_capacity(words_for(a.len()));
    let mut shares = Vec::with_capacity(a.len());
    // Both hashes of 64 COTs in one pass: [H(j, q_j)] then [H(j, q_j ⊕ Δ)].
    let mut buf = [Block::ZERO; 128];
    for (k, &ak) in a.iter().enumerate() {
        let q = &cots.q[64 * k..64 * k + 64];
        for i in 0..64 {
            buf[i] = q[i];
            buf[64 + i] = q[i] ^ cots.delta;
        }
        let first = cots.first as u128 + 64 * k as u128;
        h.tccr_with(&mut buf, |i| Block(first + (i % 64) as u128));
        let mut share = 0u64;
        for i in 0..64 {
            let s = buf[i].low_u64();
            let tau = ak.wrapping_sub(buf[64 + i].low_u64()).wrapping_add(s);
            out.push(tau, 64 - i as u32);
            share = share.wrapping_sub(s << i);
        }
        shares.push(share);
    }
    buf.zeroize();
    Ok((
        Corrections {
            first: cots.first,
            count: a.len(),
            words: out.finish(),
        },
        shares,
    ))
}

/// Receiver: its shares of the products.
pub fn receive(cots: &ReceiverCots, msg: &Corrections) -> Result<Vec<u64>> {
    if msg.first != cots.first || msg.count.checked_mul(64) != Some(cots.len()) {
        return Err(Error::Mismatch {
            what: WHAT,
            detail: format!(
                "{} products from OT {}, these COTs are {}..+{}",
                msg.count,
                msg.first,
                cots.first,
                cots.len()
            ),
        });
    }
    let h = FixedKeyAes::shared();
    let mut reader = BitReader {
        words: &msg.words,
        pos: 0,
    };
    let mut shares = Vec::with_capacity(msg.count);
    let mut hs = [Block::ZERO; 64];
    for k in 0..msg.count {
        hs.copy_from_slice(&cots.t[64 * k..64 * k + 64]);
        h.tccr_seq((cots.first + 64 * k as u64) as u128, &mut hs);
        let mut share = 0u64;
        for (i, hi) in hs.iter().enumerate() {
            let tau = reader.pull(64 - i as u32);
            let mask = (cots.choices[64 * k + i] as u64).wrapping_neg();
            let y = hi.low_u64().wrapping_add(tau & mask);
            share = share.wrapping_add(y << i);
        }
        shares.push(share);
    }
    hs.zeroize();
    Ok(shares)
}

/// One party's shares of a batch of Beaver triples: `c = a·b` over Z_2^64
/// once both parties' shares are added.
#[derive(Clone, PartialEq, Eq)]
pub struct TripleShares {
    /// Shares of `a`.
    pub a: Vec<u64>,
    /// Shares of `b`.
    pub b: Vec<u64>,
    /// Shares of `c`.
    pub c: Vec<u64>,
}

impl std::fmt::Debug for TripleShares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TripleShares")
            .field("len", &self.a.len())
            .finish_non_exhaustive()
    }
}

impl Drop for TripleShares {
    fn drop(&mut self) {
        self.a.zeroize();
        self.b.zeroize();
        self.c.zeroize();
    }
}

/// Party 0 (the extension sender): `n` triples from `128·n` COTs whose
/// receiver choices are random. Draws its `a_0, b_0` from `rng`; send the
/// corrections to party 1.
pub fn beaver_sender<R: CryptoRng + ?Sized>(
    cots: &SenderCots,
    rng: &mut R,
) -> Result<(Corrections, TripleShares)> {
    if !cots.len().is_multiple_of(128) {
        return Err(Error::Input {
            what: "beaver_sender",
            detail: format!(
                "{} COTs is not a multiple of 128 (128 per triple)",
                cots.len()
            ),
        });
    }
    let n = cots.len() / 128;
    let mut bytes = vec![0u8; 16 * n];
    rng.fill_bytes(&mut bytes);
    // [a_0 ; b_0]: the first n products pair a_0 with b_1, the next n pair
    // b_0 with a_1.
    let mut ab: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    bytes.zeroize();
    let (msg, mut cross) = send(cots, &ab)?;
    let (a, b) = ab.split_at(n);
    let c = (0..n)
        .map(|k| {
            a[k].wrapping_mul(b[k])
                .wrapping_add(cross[k])
                .wrapping_add(cross[n + k])
        })
        .collect();
    let shares = TripleShares {
        a: a.to_vec(),
        b: b.to_vec(),
        c,
    };
    ab.zeroize();
    cross.zeroize();
    Ok((msg, shares))
}

/// Party 1 (the extension receiver): its shares of the triples; its `a_1,
/// b_1` are its COTs' choice bits (`b_1` from the first `64·n`, `a_1` from
/// the rest).
pub fn beaver_receiver(cots: &ReceiverCots, msg: &Corrections) -> Result<TripleShares> {
    if !cots.len().is_multiple_of(128) {
        return Err(Error::Input {
            what: "beaver_receiver",
            detail: format!(
                "{} COTs is not a multiple of 128 (128 per triple)",
                cots.len()
            ),
        });
    }
    let n = cots.len() / 128;
    let mut cross = receive(cots, msg)?;
    let mut vals = receiver_values(cots);
    let (b, a) = vals.split_at(n);
    let c = (0..n)
        .map(|k| {
            a[k].wrapping_mul(b[k])
                .wrapping_add(cross[k])
                .wrapping_add(cross[n + k])
        })
        .collect();
    let shares = TripleShares {
        a: a.to_vec(),
        b: b.to_vec(),
        c,
    };
    vals.zeroize();
    cross.zeroize();
    Ok(shares)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_packing_round_trips_every_width() {
        let values: Vec<(u64, u32)> = (0..500u64)
            .map(|k| (k.wrapping_mul(0x9e37_79b9_7f4a_7c15), (k % 64) as u32 + 1))
            .collect();
        let mut w = BitWriter::with_capacity(0);
        for &(v, width) in &values {
            w.push(v, width);
        }
        let words = w.finish();
        let total: usize = values.iter().map(|&(_, w)| w as usize).sum();
        assert_eq!(words.len(), total.div_ceil(64));
        let mut r = BitReader {
            words: &words,
            pos: 0,
        };
        for &(v, width) in &values {
            assert_eq!(r.pull(width), low_bits(v, width));
        }
    }
}
