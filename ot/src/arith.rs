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
use crate::cot::{ReceiverCotsRef, SenderCotsRef};
use crate::crypto::FixedKeyAes;
use crate::error::{Error, Result};
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
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// [`Corrections::to_bytes`], appended to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut w = Writer::after(
            std::mem::take(out),
            tag::CORRECTIONS,
            16 + 8 * self.words.len(),
        );
        w.u64(self.first);
        w.u64(self.count as u64);
        w.u64s(&self.words);
        *out = w.finish();
    }

    /// An empty message, to be filled by [`Corrections::decode`].
    pub fn empty() -> Corrections {
        Corrections {
            first: 0,
            count: 0,
            words: Vec::new(),
        }
    }

    /// Decodes, checking the length and that padding bits are zero.
    pub fn from_bytes(bytes: &[u8]) -> Result<Corrections> {
        let mut c = Corrections::empty();
        c.decode(bytes)?;
        Ok(c)
    }

    /// [`Corrections::from_bytes`] into this message's buffer (reused). On
    /// an error its contents are unspecified.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<()> {
        let mut r = Reader::new(WHAT, tag::CORRECTIONS, bytes)?;
        let first = r.u64()?;
        let count = r.count(MAX_PRODUCTS as u64, "the number of products")?;
        let nw = words_for(count);
        r.expect_remaining(nw * 8)?;
        r.u64s_into(nw, &mut self.words)?;
        r.finish()?;
        let used = (count * BITS_PER_PRODUCT) % 64;
        if used != 0 && self.words.last().is_some_and(|w| w >> used != 0) {
            return Err(Error::Invalid {
                what: WHAT,
                detail: "padding bits past the last correction are set".into(),
            });
        }
        self.first = first;
        self.count = count;
        Ok(())
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
pub fn receiver_values<'a>(cots: impl Into<ReceiverCotsRef<'a>>) -> Vec<u64> {
    let cots: ReceiverCotsRef<'a> = cots.into();
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
pub fn send<'a>(cots: impl Into<SenderCotsRef<'a>>, a: &[u64]) -> Result<(Corrections, Vec<u64>)> {
    let cots: SenderCotsRef<'a> = cots.into();
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
            buf[64 + i] = q[i] ^ *cots.delta;
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
pub fn receive<'a>(cots: impl Into<ReceiverCotsRef<'a>>, msg: &Corrections) -> Result<Vec<u64>> {
    let cots: ReceiverCotsRef<'a> = cots.into();
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
pub fn beaver_sender<'a, R: CryptoRng + ?Sized>(
    cots: impl Into<SenderCotsRef<'a>>,
    rng: &mut R,
) -> Result<(Corrections, TripleShares)> {
    let cots: SenderCotsRef<'a> = cots.into();
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
pub fn beaver_receiver<'a>(
    cots: impl Into<ReceiverCotsRef<'a>>,
    msg: &Corrections,
) -> Result<TripleShares> {
    let cots: ReceiverCotsRef<'a> = cots.into();
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

/// The most bits one [`Packed`] message may carry (2^34: 2 GiB).
pub const MAX_PACKED_BITS: u64 = 1 << 34;

const PACKED: &str = "packed Gilboa corrections";

/// Corrections of variable widths, bit-packed: what [`send_bit_products`]
/// and [`send_vectors`] send. The receiver knows the total width from its
/// own request and checks it ([`Packed::check`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Packed {
    first: u64,
    bits: u64,
    words: Vec<u64>,
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packed")
            .field("first", &self.first)
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

impl Packed {
    /// Total bits carried.
    pub fn bits(&self) -> u64 {
        self.bits
    }

    /// Encoded size in bytes of a message of `bits` bits.
    pub fn encoded_len(bits: u64) -> usize {
        1 + 16 + 8 * bits.div_ceil(64) as usize
    }

    /// Tag, first (u64), bits (u64), then the packed words (u64 each).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// [`Packed::to_bytes`], appended to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut w = Writer::after(std::mem::take(out), tag::PACKED, 16 + 8 * self.words.len());
        w.u64(self.first);
        w.u64(self.bits);
        w.u64s(&self.words);
        *out = w.finish();
    }

    /// An empty message, to be filled by [`Packed::decode`].
    pub fn empty() -> Packed {
        Packed {
            first: 0,
            bits: 0,
            words: Vec::new(),
        }
    }

    /// Decodes, checking the length and that padding bits are zero.
    pub fn from_bytes(bytes: &[u8]) -> Result<Packed> {
        let mut p = Packed::empty();
        p.decode(bytes)?;
        Ok(p)
    }

    /// [`Packed::from_bytes`] into this message's buffer (reused). On an
    /// error its contents are unspecified.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<()> {
        let mut r = Reader::new(PACKED, tag::PACKED, bytes)?;
        let first = r.u64()?;
        let bits = r.u64()?;
        if bits > MAX_PACKED_BITS {
            return Err(Error::Invalid {
                what: PACKED,
                detail: format!("{bits} bits is more than the limit of {MAX_PACKED_BITS}"),
            });
        }
        let nw = bits.div_ceil(64) as usize;
        r.expect_remaining(nw * 8)?;
        r.u64s_into(nw, &mut self.words)?;
        r.finish()?;
        let used = (bits % 64) as u32;
        if used != 0 && self.words.last().is_some_and(|w| w >> used != 0) {
            return Err(Error::Invalid {
                what: PACKED,
                detail: "padding bits past the last correction are set".into(),
            });
        }
        self.first = first;
        self.bits = bits;
        Ok(())
    }

    /// Checks that this message answers COTs from `first` with `bits` bits.
    fn check(&self, first: u64, bits: u64) -> Result<()> {
        if self.first != first || self.bits != bits {
            return Err(Error::Mismatch {
                what: PACKED,
                detail: format!(
                    "{} bits for OTs from {}, expected {bits} bits for OTs from {first}",
                    self.bits, self.first
                ),
            });
        }
        Ok(())
    }
}

fn check_widths(
    what: &'static str,
    n: usize,
    cots: usize,
    width: &impl Fn(usize) -> u32,
) -> Result<u64> {
    if n != cots {
        return Err(Error::Input {
            what,
            detail: format!("{n} products need {n} COTs, got {cots}"),
        });
    }
    let mut bits = 0u64;
    for j in 0..n {
        let w = width(j);
        if !(1..=64).contains(&w) {
            return Err(Error::Input {
                what,
                detail: format!("product {j} has width {w}, outside 1..=64"),
            });
        }
        bits += w as u64;
    }
    if bits > MAX_PACKED_BITS {
        return Err(Error::Input {
            what,
            detail: format!("{bits} bits of corrections is more than the limit"),
        });
    }
    Ok(bits)
}

/// Sender: shares of `c_j·a[j] mod 2^width(j)` for every COT `j`, where
/// `c_j` is the receiver's choice bit (one COT per product; Gilboa with a
/// one-bit receiver value). The sender's share is `−H(j, q_j)` and it
/// sends `τ_j = a_j − H(j, q_j ⊕ Δ) + H(j, q_j)`, low `width(j)` bits
/// only. Shares are reduced mod `2^width(j)`.
pub fn send_bit_products<'a>(
    cots: impl Into<SenderCotsRef<'a>>,
    a: &[u64],
    width: impl Fn(usize) -> u32,
) -> Result<(Packed, Vec<u64>)> {
    let cots: SenderCotsRef<'a> = cots.into();
    let bits = check_widths("send_bit_products", a.len(), cots.len(), &width)?;
    let h = FixedKeyAes::shared();
    let mut out = BitWriter::with_capacity(bits.div_ceil(64) as usize);
    let mut shares = Vec::with_capacity(a.len());
    let mut buf = [Block::ZERO; 128];
    for (c, chunk) in a.chunks(64).enumerate() {
        let base = 64 * c;
        let len = chunk.len();
        for i in 0..len {
            buf[i] = cots.q[base + i];
            buf[64 + i] = cots.q[base + i] ^ *cots.delta;
        }
        let first = cots.first as u128 + base as u128;
        h.tccr_with(&mut buf, |i| Block(first + (i % 64) as u128));
        for (i, &ai) in chunk.iter().enumerate() {
            let w = width(base + i);
            let s = buf[i].low_u64();
            let tau = ai.wrapping_sub(buf[64 + i].low_u64()).wrapping_add(s);
            out.push(tau, w);
            shares.push(low_bits(s.wrapping_neg(), w));
        }
    }
    buf.zeroize();
    Ok((
        Packed {
            first: cots.first,
            bits,
            words: out.finish(),
        },
        shares,
    ))
}

/// Receiver: its shares of the products of [`send_bit_products`].
pub fn receive_bit_products<'a>(
    cots: impl Into<ReceiverCotsRef<'a>>,
    msg: &Packed,
    width: impl Fn(usize) -> u32,
) -> Result<Vec<u64>> {
    let cots: ReceiverCotsRef<'a> = cots.into();
    let n = cots.len();
    let bits = check_widths("receive_bit_products", n, n, &width)?;
    msg.check(cots.first, bits)?;
    let h = FixedKeyAes::shared();
    let mut reader = BitReader {
        words: &msg.words,
        pos: 0,
    };
    let mut shares = Vec::with_capacity(n);
    let mut hs = [Block::ZERO; 64];
    for base in (0..n).step_by(64) {
        let len = (n - base).min(64);
        hs[..len].copy_from_slice(&cots.t[base..base + len]);
        h.tccr_seq(cots.first as u128 + base as u128, &mut hs[..len]);
        for (i, hi) in hs[..len].iter().enumerate() {
            let w = width(base + i);
            let tau = reader.pull(w);
            let mask = (cots.choices[base + i] as u64).wrapping_neg();
            shares.push(low_bits(hi.low_u64().wrapping_add(tau & mask), w));
        }
    }
    hs.zeroize();
    Ok(shares)
}

fn check_vectors(
    what: &'static str,
    cots: usize,
    a_len: usize,
    len: usize,
) -> Result<(usize, u64)> {
    if len == 0 || !cots.is_multiple_of(64) || (cots / 64).checked_mul(len) != Some(a_len) {
        return Err(Error::Input {
            what,
            detail: format!(
                "{cots} COTs and {a_len} values do not make products of 64 COTs by vectors of {len}"
            ),
        });
    }
    let count = cots / 64;
    let bits = (count as u64)
        .checked_mul(len as u64)
        .and_then(|v| v.checked_mul(BITS_PER_PRODUCT as u64))
        .filter(|&b| b <= MAX_PACKED_BITS)
        .ok_or_else(|| Error::Input {
            what,
            detail: "the corrections would exceed the message limit".into(),
        })?;
    Ok((count, bits))
}

/// Tweak of word pair `t` of COT `j`'s pads (unique per COT and pair; a COT
/// is used once).
#[inline]
fn vector_tweak(j: u64, t: usize) -> Block {
    Block(((j as u128) << 64) | t as u128)
}

/// `len` pad words from `x` for COT `j`: two words per hashed block.
fn pads(h: &FixedKeyAes, j: u64, x: Block, len: usize, buf: &mut Vec<Block>, out: &mut Vec<u64>) {
    buf.clear();
    buf.resize(len.div_ceil(2), x);
    h.tccr_with(buf, |t| vector_tweak(j, t));
    out.clear();
    for b in buf.iter() {
        out.push(b.0 as u64);
        out.push((b.0 >> 64) as u64);
    }
    out.truncate(len);
}

/// Sender: shares of the products `b_k · a_k`, where the receiver's value
/// `b_k` is the choice bits of COTs `64k .. 64k + 64` (least significant
/// first) and the sender's `a_k` is the vector `a[k·len .. (k+1)·len]`: a
/// vector Gilboa product (one receiver value times `len` sender values,
/// ABY's vector OT). Returns the corrections and this side's shares,
/// `count × len` words in the layout of `a`. Bit `i` sends the low `64 − i`
/// bits of each correction, so `2,080 · len` bits per product.
pub fn send_vectors<'a>(
    cots: impl Into<SenderCotsRef<'a>>,
    a: &[u64],
    len: usize,
) -> Result<(Packed, Vec<u64>)> {
    let cots: SenderCotsRef<'a> = cots.into();
    let (count, bits) = check_vectors("send_vectors", cots.len(), a.len(), len)?;
    let h = FixedKeyAes::shared();
    let mut out = BitWriter::with_capacity(bits.div_ceil(64) as usize);
    let mut shares = vec![0u64; count * len];
    let (mut buf, mut p0, mut p1) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..count {
        let ak = &a[k * len..(k + 1) * len];
        let sk = &mut shares[k * len..(k + 1) * len];
        for i in 0..64 {
            let j = 64 * k + i;
            let idx = cots.first + j as u64;
            pads(h, idx, cots.q[j], len, &mut buf, &mut p0);
            pads(h, idx, cots.q[j] ^ *cots.delta, len, &mut buf, &mut p1);
            let w = 64 - i as u32;
            for t in 0..len {
                let tau = ak[t].wrapping_sub(p1[t]).wrapping_add(p0[t]);
                out.push(tau, w);
                sk[t] = sk[t].wrapping_sub(p0[t] << i);
            }
        }
    }
    buf.zeroize();
    p0.zeroize();
    p1.zeroize();
    Ok((
        Packed {
            first: cots.first,
            bits,
            words: out.finish(),
        },
        shares,
    ))
}

/// Receiver: its shares of the products of [`send_vectors`].
pub fn receive_vectors<'a>(
    cots: impl Into<ReceiverCotsRef<'a>>,
    msg: &Packed,
    len: usize,
) -> Result<Vec<u64>> {
    let cots: ReceiverCotsRef<'a> = cots.into();
    let n = cots.len();
    let (count, bits) = check_vectors("receive_vectors", n, (n / 64) * len, len)?;
    msg.check(cots.first, bits)?;
    let h = FixedKeyAes::shared();
    let mut reader = BitReader {
        words: &msg.words,
        pos: 0,
    };
    let mut shares = vec![0u64; count * len];
    let (mut buf, mut p) = (Vec::new(), Vec::new());
    for k in 0..count {
        let sk = &mut shares[k * len..(k + 1) * len];
        for i in 0..64 {
            let j = 64 * k + i;
            pads(h, cots.first + j as u64, cots.t[j], len, &mut buf, &mut p);
            let mask = (cots.choices[j] as u64).wrapping_neg();
            let w = 64 - i as u32;
            for t in 0..len {
                let tau = reader.pull(w);
                sk[t] = sk[t].wrapping_add(p[t].wrapping_add(tau & mask) << i);
            }
        }
    }
    buf.zeroize();
    p.zeroize();
    Ok(shares)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cot::{ReceiverCots, SenderCots};

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

    fn cots(n: usize, choices: Option<Vec<bool>>, seed: u64) -> (SenderCots, ReceiverCots) {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let (mut s, mut r) = crate::softspoken::setup_pair_for_tests(&mut rng);
        // Skip a few so `first` is not zero.
        let (m, _) = r.extend(&[true, false, true]).unwrap();
        s.extend(&m).unwrap();
        let choices = choices.unwrap_or_else(|| (0..n).map(|_| rng.random()).collect());
        let (m, rc) = r.extend(&choices).unwrap();
        let sc = s
            .extend(&crate::softspoken::ExtendMsg::from_bytes(&m.to_bytes()).unwrap())
            .unwrap();
        (sc, rc)
    }

    #[test]
    fn bit_products_share_choice_times_value_at_every_width() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        for n in [1usize, 63, 64, 65, 200] {
            let (sc, rc) = cots(n, None, n as u64);
            let a: Vec<u64> = (0..n)
                .map(|j| match j % 4 {
                    0 => u64::MAX,
                    1 => 0,
                    _ => rng.random(),
                })
                .collect();
            let width = |j: usize| (j % 64) as u32 + 1;
            let (msg, s0) = send_bit_products(&sc, &a, width).unwrap();
            let msg = Packed::from_bytes(&msg.to_bytes()).unwrap();
            let s1 = receive_bit_products(&rc, &msg, width).unwrap();
            for j in 0..n {
                let want = low_bits(a[j] * rc.choices()[j] as u64, width(j));
                assert_eq!(
                    low_bits(s0[j].wrapping_add(s1[j]), width(j)),
                    want,
                    "n {n} j {j}"
                );
            }
            // A message for other widths is refused, not misread.
            assert!(receive_bit_products(&rc, &msg, |_| 64).is_err() || n % 64 == 63);
        }
    }

    #[test]
    fn vector_products_share_value_times_vector() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        for (count, len) in [(1usize, 1usize), (3, 5), (2, 64)] {
            let b: Vec<u64> = (0..count)
                .map(|k| if k == 0 { u64::MAX } else { rng.random() })
                .collect();
            let (sc, rc) = cots(64 * count, Some(receiver_choices(&b)), 9);
            let a: Vec<u64> = (0..count * len).map(|_| rng.random()).collect();
            let (msg, s0) = send_vectors(&sc, &a, len).unwrap();
            let msg = Packed::from_bytes(&msg.to_bytes()).unwrap();
            assert_eq!(msg.bits(), (count * len * BITS_PER_PRODUCT) as u64);
            let s1 = receive_vectors(&rc, &msg, len).unwrap();
            for (k, bk) in b.iter().enumerate() {
                for t in 0..len {
                    let o = k * len + t;
                    assert_eq!(s0[o].wrapping_add(s1[o]), a[o].wrapping_mul(*bk));
                }
            }
            // The wrong vector length is a mismatch error.
            if len > 1 {
                assert!(receive_vectors(&rc, &msg, len - 1).is_err());
            }
        }
    }

    #[test]
    fn malformed_packed_messages_are_errors() {
        let (sc, rc) = cots(64, None, 5);
        let (msg, _) = send_vectors(&sc, &[7u64; 3], 3).unwrap();
        let bytes = msg.to_bytes();
        // Truncated, extended, wrong tag, padding bits set: all errors.
        assert!(Packed::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Packed::from_bytes(&longer).is_err());
        let mut tagged = bytes.clone();
        tagged[0] ^= 0x7f;
        assert!(Packed::from_bytes(&tagged).is_err());
        let mut padded = bytes.clone();
        let last = padded.len() - 1;
        padded[last] |= 0x80;
        assert!(Packed::from_bytes(&padded).is_err());
        // A huge declared size is refused before allocating.
        let mut huge = bytes.clone();
        huge[9..17].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Packed::from_bytes(&huge).is_err());
        assert!(receive_vectors(&rc, &Packed::from_bytes(&bytes).unwrap(), 3).is_ok());
    }
}
