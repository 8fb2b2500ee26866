//! OTs derived from correlated OTs: random OT, choice flips (chosen choices
//! on precomputed OTs), and chosen-message 1-of-2 OT on messages of any
//! width (128-bit blocks, `u64`, or byte strings).
//!
//! Random OT (ALSZ13 §5.3): the sender's pads are `x_j^0 = H(j, q_j)` and
//! `x_j^1 = H(j, q_j ⊕ Δ)`, the receiver's is `H(j, t_j) = x_j^{r_j}`, with
//! `H` the tccr hash of [`crate::crypto`] and `j` the OT's global index.
//! The pad the receiver did not choose is `H(j, t_j ⊕ Δ)`: pseudorandom to
//! it because `Δ` is.
//!
//! Chosen messages: the sender sends `m_j^b ⊕ x_j^b` for both `b`. Pads of
//! more than 16 bytes are stretched with the AES PRG keyed by the pad.
//!
//! Chosen choices on precomputed OTs (Beaver's derandomisation, "Precomputing
//! oblivious transfer", CRYPTO 1995): the receiver sends `d_j = r_j ⊕ c_j`;
//! the sender replaces `q_j` by `q_j ⊕ d_j·Δ`, after which the COT has
//! choice `c_j` ([`flip_choices`], [`SenderCots::apply_flips`]).

use zeroize::Zeroize;

use crate::block::{pack_bits, Block};
pub use crate::cot::{ReceiverCots, ReceiverCotsRef, SenderCots, SenderCotsRef};
use crate::crypto::{FixedKeyAes, Prg};
use crate::error::{Error, Result};
use crate::wire::{size_of_items, tag, Reader, Writer};

/// The most messages one chosen-message OT message may carry.
pub const MAX_MESSAGES: usize = 1 << 28;
/// The widest message, in bytes.
pub const MAX_WIDTH: usize = 1 << 20;

/// Calls `f(j, [H(j, q_j), H(j, q_j ⊕ Δ)])` for every OT `j` (offset from
/// the first), hashing 64 OTs (128 blocks) per pass.
pub fn for_each_sender_pad<'a>(
    cots: impl Into<SenderCotsRef<'a>>,
    mut f: impl FnMut(usize, [Block; 2]),
) {
    let cots: SenderCotsRef<'a> = cots.into();
    let h = FixedKeyAes::shared();
    let delta = *cots.delta;
    let mut buf = [Block::ZERO; 128];
    for (c, qs) in cots.q.chunks(64).enumerate() {
        let n = qs.len();
        for (k, &q) in qs.iter().enumerate() {
            buf[k] = q;
            buf[n + k] = q ^ delta;
        }
        let first = cots.first as u128 + 64 * c as u128;
        h.tccr_with(&mut buf[..2 * n], |k| Block(first + (k % n) as u128));
        for k in 0..n {
            f(64 * c + k, [buf[k], buf[n + k]]);
        }
    }
    buf.zeroize();
}

/// Calls `f(j, H(j, t_j))` for every OT `j` (offset from the first), the
/// receiver's pads, 128 at a time on the stack (no copy of the batch).
pub fn for_each_receiver_pad<'a>(
    cots: impl Into<ReceiverCotsRef<'a>>,
    mut f: impl FnMut(usize, Block),
) {
    let cots: ReceiverCotsRef<'a> = cots.into();
    let h = FixedKeyAes::shared();
    let mut buf = [Block::ZERO; 128];
    for (c, ts) in cots.t.chunks(128).enumerate() {
        let buf = &mut buf[..ts.len()];
        buf.copy_from_slice(ts);
        h.tccr_seq(cots.first as u128 + 128 * c as u128, buf);
        for (k, &p) in buf.iter().enumerate() {
            f(128 * c + k, p);
        }
    }
    buf.zeroize();
}

impl SenderCotsRef<'_> {
    /// Random OT: the pads `[x_j^0, x_j^1]` of every OT.
    pub fn random_ot(&self) -> Vec<[Block; 2]> {
        let mut out = Vec::with_capacity(self.len());
        for_each_sender_pad(*self, |_, pads| out.push(pads));
        out
    }
}

impl SenderCots {
    /// Random OT: the pads `[x_j^0, x_j^1]` of every OT.
    pub fn random_ot(&self) -> Vec<[Block; 2]> {
        self.view().random_ot()
    }

    /// Applies the receiver's flips: afterwards OT `j` has the choice the
    /// receiver asked for.
    pub fn apply_flips(&mut self, flips: &Flips) -> Result<()> {
        if flips.first != self.first || flips.count != self.len() {
            return Err(Error::Mismatch {
                what: Flips::WHAT,
                detail: format!(
                    "flips for OTs {}..+{}, these COTs are {}..+{}",
                    flips.first,
                    flips.count,
                    self.first,
                    self.len()
                ),
            });
        }
        let delta = self.delta;
        for (j, q) in self.q[self.at..].iter_mut().enumerate() {
            *q ^= delta.select(flips.bits[j / 128].bit(j % 128));
        }
        Ok(())
    }
}

impl ReceiverCotsRef<'_> {
    /// Random OT: the receiver's pad `x_j^{r_j}` of every OT.
    pub fn random_ot(&self) -> Vec<Block> {
        let mut out = self.t.to_vec();
        FixedKeyAes::shared().tccr_seq(self.first as u128, &mut out);
        out
    }
}

impl ReceiverCots {
    /// Random OT: the receiver's pad `x_j^{r_j}` of every OT.
    pub fn random_ot(&self) -> Vec<Block> {
        self.view().random_ot()
    }
}

/// The receiver's choice flips `d_j = r_j ⊕ c_j` (uniform to the sender
/// when the `r_j` are).
#[derive(Clone, PartialEq, Eq)]
pub struct Flips {
    first: u64,
    count: usize,
    bits: Vec<Block>,
}

impl std::fmt::Debug for Flips {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flips")
            .field("first", &self.first)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl Flips {
    const WHAT: &'static str = "OT choice flips";

    /// Tag, first (u64), count (u64), bits packed in 16-byte blocks.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(tag::FLIPS, 16 + 16 * self.bits.len());
        w.u64(self.first);
        w.u64(self.count as u64);
        w.blocks(&self.bits);
        w.finish()
    }

    /// Decodes; padding bits past `count` must be zero.
    pub fn from_bytes(bytes: &[u8]) -> Result<Flips> {
        let mut r = Reader::new(Self::WHAT, tag::FLIPS, bytes)?;
        let first = r.u64()?;
        let count = r.count(MAX_MESSAGES as u64, "the number of flips")?;
        let nb = count.div_ceil(128);
        r.expect_remaining(size_of_items(Self::WHAT, nb, 16)?)?;
        let bits = r.blocks(nb)?;
        r.finish()?;
        check_padding(Self::WHAT, &bits, count)?;
        Ok(Flips { first, count, bits })
    }
}

fn check_padding(what: &'static str, bits: &[Block], count: usize) -> Result<()> {
    if !count.is_multiple_of(128) {
        if let Some(last) = bits.last() {
            if last.0 >> (count % 128) != 0 {
                return Err(Error::Invalid {
                    what,
                    detail: "padding bits past the count are set".into(),
                });
            }
        }
    }
    Ok(())
}

/// Receiver: turns COTs with random choices into COTs with the choices
/// `wanted`. Send the flips to the sender, who applies them with
/// [`SenderCots::apply_flips`].
pub fn flip_choices(cots: &mut ReceiverCots, wanted: &[bool]) -> Result<Flips> {
    if wanted.len() != cots.len() {
        return Err(Error::Input {
            what: "flip_choices",
            detail: format!("{} choices for {} OTs", wanted.len(), cots.len()),
        });
    }
    let d: Vec<bool> = cots
        .choices()
        .iter()
        .zip(wanted)
        .map(|(&r, &c)| r ^ c)
        .collect();
    let at = cots.at;
    cots.choices[at..].copy_from_slice(wanted);
    Ok(Flips {
        first: cots.first,
        count: d.len(),
        bits: pack_bits(&d),
    })
}

/// The sender's masked messages of a chosen-message OT: `2 × count`
/// messages of `width` bytes each.
#[derive(Clone, PartialEq, Eq)]
pub struct ChosenMsg {
    first: u64,
    count: usize,
    width: usize,
    data: Vec<u8>,
}

impl std::fmt::Debug for ChosenMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChosenMsg")
            .field("first", &self.first)
            .field("count", &self.count)
            .field("width", &self.width)
            .finish_non_exhaustive()
    }
}

impl ChosenMsg {
    const WHAT: &'static str = "chosen-message OT message";

    /// Tag, first (u64), count (u64), width (u64), then `2·count·width` bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(tag::CHOSEN, 24 + self.data.len());
        w.u64(self.first);
        w.u64(self.count as u64);
        w.u64(self.width as u64);
        w.bytes(&self.data);
        w.finish()
    }

    /// Decodes, checking the body length against count and width.
    pub fn from_bytes(bytes: &[u8]) -> Result<ChosenMsg> {
        let mut r = Reader::new(Self::WHAT, tag::CHOSEN, bytes)?;
        let first = r.u64()?;
        let count = r.count(MAX_MESSAGES as u64, "the number of OTs")?;
        let width = r.count(MAX_WIDTH as u64, "the message width")?;
        if width == 0 {
            return Err(Error::Invalid {
                what: Self::WHAT,
                detail: "messages of zero bytes".into(),
            });
        }
        let len = size_of_items(Self::WHAT, count, 2 * width)?;
        r.expect_remaining(len)?;
        let data = r.bytes(len)?.to_vec();
        r.finish()?;
        Ok(ChosenMsg {
            first,
            count,
            width,
            data,
        })
    }
}

/// XORs the pad of `block` stretched to `out.len()` bytes into `out`.
fn xor_pad(block: Block, out: &mut [u8]) {
    if out.len() <= 16 {
        for (o, p) in out.iter_mut().zip(block.to_bytes()) {
            *o ^= p;
        }
    } else {
        let mut pad = Prg::new(block).bytes(out.len());
        for (o, p) in out.iter_mut().zip(&pad) {
            *o ^= p;
        }
        pad.zeroize();
    }
}

/// Sender: 1-of-2 OT of byte strings, all of the same width. `messages[j]`
/// is the pair for OT `j`; needs one COT per pair.
pub fn send_bytes<'a>(
    cots: impl Into<SenderCotsRef<'a>>,
    messages: &[[&[u8]; 2]],
) -> Result<ChosenMsg> {
    let cots: SenderCotsRef<'a> = cots.into();
    let what = "ot::send_bytes";
    if messages.len() != cots.len() {
        return Err(Error::Input {
            what,
            detail: format!("{} message pairs for {} OTs", messages.len(), cots.len()),
        });
    }
    let width = messages.first().map_or(1, |m| m[0].len());
    if width == 0
        || width > MAX_WIDTH
        || messages
            .iter()
            .any(|m| m[0].len() != width || m[1].len() != width)
    {
        return Err(Error::Input {
            what,
            detail: format!(
                "every message must have the same width, between 1 and {MAX_WIDTH} bytes"
            ),
        });
    }
    let mut data = vec![0u8; 2 * width * messages.len()];
    for_each_sender_pad(cots, |j, pads| {
        for (b, pad) in pads.into_iter().enumerate() {
            let out = &mut data[(2 * j + b) * width..(2 * j + b + 1) * width];
            out.copy_from_slice(messages[j][b]);
            xor_pad(pad, out);
        }
    });
    Ok(ChosenMsg {
        first: cots.first,
        count: messages.len(),
        width,
        data,
    })
}

/// Receiver: the chosen byte strings, one per OT.
pub fn receive_bytes<'a>(
    cots: impl Into<ReceiverCotsRef<'a>>,
    msg: &ChosenMsg,
) -> Result<Vec<Vec<u8>>> {
    let cots: ReceiverCotsRef<'a> = cots.into();
    if msg.first != cots.first || msg.count != cots.len() {
        return Err(Error::Mismatch {
            what: ChosenMsg::WHAT,
            detail: format!(
                "messages for OTs {}..+{}, these COTs are {}..+{}",
                msg.first,
                msg.count,
                cots.first,
                cots.len()
            ),
        });
    }
    let pads = cots.random_ot();
    let w = msg.width;
    Ok(pads
        .iter()
        .enumerate()
        .map(|(j, &pad)| {
            let c = cots.choices[j] as usize;
            let start = (2 * j + c) * w;
            let mut m = msg.data[start..start + w].to_vec();
            xor_pad(pad, &mut m);
            m
        })
        .collect())
}

/// Sender: 1-of-2 OT of 128-bit blocks.
pub fn send_blocks<'a>(
    cots: impl Into<SenderCotsRef<'a>>,
    messages: &[[Block; 2]],
) -> Result<ChosenMsg> {
    let cots: SenderCotsRef<'a> = cots.into();
    let bytes: Vec<[[u8; 16]; 2]> = messages
        .iter()
        .map(|m| [m[0].to_bytes(), m[1].to_bytes()])
        .collect();
    let refs: Vec<[&[u8]; 2]> = bytes.iter().map(|m| [&m[0][..], &m[1][..]]).collect();
    send_bytes(cots, &refs)
}

/// Receiver: the chosen blocks.
pub fn receive_blocks<'a>(
    cots: impl Into<ReceiverCotsRef<'a>>,
    msg: &ChosenMsg,
) -> Result<Vec<Block>> {
    let cots: ReceiverCotsRef<'a> = cots.into();
    expect_width(msg, 16)?;
    Ok(receive_bytes(cots, msg)?
        .into_iter()
        .map(|m| Block::from_bytes(m.try_into().expect("16 bytes")))
        .collect())
}

/// Sender: 1-of-2 OT of `u64`s.
pub fn send_u64<'a>(
    cots: impl Into<SenderCotsRef<'a>>,
    messages: &[[u64; 2]],
) -> Result<ChosenMsg> {
    let cots: SenderCotsRef<'a> = cots.into();
    let bytes: Vec<[[u8; 8]; 2]> = messages
        .iter()
        .map(|m| [m[0].to_le_bytes(), m[1].to_le_bytes()])
        .collect();
    let refs: Vec<[&[u8]; 2]> = bytes.iter().map(|m| [&m[0][..], &m[1][..]]).collect();
    send_bytes(cots, &refs)
}

/// Receiver: the chosen `u64`s.
pub fn receive_u64<'a>(cots: impl Into<ReceiverCotsRef<'a>>, msg: &ChosenMsg) -> Result<Vec<u64>> {
    let cots: ReceiverCotsRef<'a> = cots.into();
    expect_width(msg, 8)?;
    Ok(receive_bytes(cots, msg)?
        .into_iter()
        .map(|m| u64::from_le_bytes(m.try_into().expect("8 bytes")))
        .collect())
}

fn expect_width(msg: &ChosenMsg, width: usize) -> Result<()> {
    if msg.width != width {
        return Err(Error::Mismatch {
            what: ChosenMsg::WHAT,
            detail: format!("messages of {} bytes, expected {width}", msg.width),
        });
    }
    Ok(())
}
