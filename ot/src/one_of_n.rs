//! 1-of-N OT for N = 2^l, batched, from l correlated OTs per instance.
//!
//! The construction is Naor and Pinkas's ("Computationally secure oblivious
//! transfer", J. Cryptology 2005, §4: 1-of-N from log N 1-of-2 OTs and a
//! PRF): message `x` is masked with `⊕_t F(k_t^{x_t}, x)`, where
//! `k_t^0, k_t^1` are the two keys of the `t`-th 1-of-2 OT. A receiver that
//! chose `c` knows exactly the keys `k_t^{c_t}`, so it can unmask `m_c`, and
//! every other `x` has a position `t` with `x_t ≠ c_t` whose key it lacks.
//!
//! The keys are the COT values themselves, `k_t^b = q_t ⊕ b·Δ`, and the PRF
//! is the tccr hash with the tweak `(2^127 | j_t·2^64 | x)` (the top bit
//! separates these tweaks from the random-OT tweaks `j`): every query
//! `H(tweak, q ⊕ Δ)` the receiver cannot compute has a distinct tweak, which
//! is what tweakable correlation robustness asks (GKWY20). Cost per instance:
//! `l` COTs, `N·l` hashes for the sender, `l` for the receiver, and `N`
//! messages on the wire. For large N, Kolesnikov and Kumaresan's code-based
//! 1-of-N extension (CRYPTO 2013) would send less; it is not implemented.

use zeroize::Zeroize;

use crate::block::Block;
use crate::cot::{ReceiverCotsRef, SenderCotsRef};
use crate::crypto::{FixedKeyAes, Prg};
use crate::error::{Error, Result};
use crate::wire::{size_of_items, tag, Reader, Writer};

/// The largest `l` (N = 2^l) supported.
pub const MAX_LOG_N: u32 = 16;

const WHAT: &str = "1-of-N OT message";

fn tweak(j: u64, x: u64) -> Block {
    Block(1u128 << 127 | (j as u128) << 64 | x as u128)
}

/// The sender's masked messages: `count` instances of `2^log_n` messages of
/// `width` bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct OneOfNMsg {
    first: u64,
    count: usize,
    log_n: u32,
    width: usize,
    data: Vec<u8>,
}

impl std::fmt::Debug for OneOfNMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneOfNMsg")
            .field("first", &self.first)
            .field("count", &self.count)
            .field("log_n", &self.log_n)
            .field("width", &self.width)
            .finish_non_exhaustive()
    }
}

impl OneOfNMsg {
    /// Tag, first, count, log N, width (u64 each), then the messages.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(tag::ONE_OF_N, 32 + self.data.len());
        w.u64(self.first);
        w.u64(self.count as u64);
        w.u64(self.log_n as u64);
        w.u64(self.width as u64);
        w.bytes(&self.data);
        w.finish()
    }

    /// Decodes, checking every field and the body length.
    pub fn from_bytes(bytes: &[u8]) -> Result<OneOfNMsg> {
        let mut r = Reader::new(WHAT, tag::ONE_OF_N, bytes)?;
        let first = r.u64()?;
        let count = r.count(crate::ot::MAX_MESSAGES as u64, "the number of instances")?;
        let log_n = r.count(MAX_LOG_N as u64, "log N")? as u32;
        let width = r.count(crate::ot::MAX_WIDTH as u64, "the message width")?;
        if log_n == 0 || width == 0 {
            return Err(Error::Invalid {
                what: WHAT,
                detail: "log N and the width must be positive".into(),
            });
        }
        let per = size_of_items(WHAT, 1usize << log_n, width)?;
        let len = size_of_items(WHAT, count, per)?;
        r.expect_remaining(len)?;
        let data = r.bytes(len)?.to_vec();
        r.finish()?;
        Ok(OneOfNMsg {
            first,
            count,
            log_n,
            width,
            data,
        })
    }
}

fn xor_stretched(pad: Block, out: &mut [u8]) {
    if out.len() <= 16 {
        for (o, p) in out.iter_mut().zip(pad.to_bytes()) {
            *o ^= p;
        }
    } else {
        let mut s = Prg::new(pad).bytes(out.len());
        for (o, p) in out.iter_mut().zip(&s) {
            *o ^= p;
        }
        s.zeroize();
    }
}

/// The receiver's choice bits for 1-of-N choices `c` (each `< 2^log_n`):
/// `log_n` bits per instance, least significant first. Feed them to the
/// extension (or to [`crate::ot::flip_choices`]).
pub fn choice_bits(choices: &[u64], log_n: u32) -> Vec<bool> {
    choices
        .iter()
        .flat_map(|&c| (0..log_n).map(move |t| (c >> t) & 1 == 1))
        .collect()
}

/// Sender: `messages[i]` holds instance `i`'s `2^log_n` messages, all of one
/// width. Uses `log_n` COTs per instance.
pub fn send<'a>(
    cots: impl Into<SenderCotsRef<'a>>,
    log_n: u32,
    messages: &[Vec<Vec<u8>>],
) -> Result<OneOfNMsg> {
    let cots: SenderCotsRef<'a> = cots.into();
    let what = "one_of_n::send";
    if log_n == 0 || log_n > MAX_LOG_N {
        return Err(Error::Input {
            what,
            detail: format!("log N = {log_n}; between 1 and {MAX_LOG_N} is supported"),
        });
    }
    let l = log_n as usize;
    let n = 1usize << l;
    if cots.len() != messages.len() * l {
        return Err(Error::Input {
            what,
            detail: format!(
                "{} instances need {} COTs, got {}",
                messages.len(),
                messages.len() * l,
                cots.len()
            ),
        });
    }
    let width = messages
        .first()
        .and_then(|m| m.first())
        .map_or(1, |m| m.len());
    if width == 0
        || width > crate::ot::MAX_WIDTH
        || messages
            .iter()
            .any(|inst| inst.len() != n || inst.iter().any(|m| m.len() != width))
    {
        return Err(Error::Input {
            what,
            detail: format!(
                "each instance needs {n} messages of one width (1 to {} bytes)",
                crate::ot::MAX_WIDTH
            ),
        });
    }
    let h = FixedKeyAes::shared();
    let mut data = Vec::with_capacity(messages.len() * n * width);
    let mut keys = vec![Block::ZERO; n];
    for (i, inst) in messages.iter().enumerate() {
        keys.iter_mut().for_each(|k| *k = Block::ZERO);
        for t in 0..l {
            let j = cots.first + (i * l + t) as u64;
            let q = cots.q[i * l + t];
            let mut hashed: Vec<Block> = (0..n)
                .map(|x| q ^ cots.delta.select((x >> t) & 1 == 1))
                .collect();
            h.tccr_with(&mut hashed, |x| tweak(j, x as u64));
            for (k, hx) in keys.iter_mut().zip(&hashed) {
                *k ^= *hx;
            }
            hashed.zeroize();
        }
        for (x, m) in inst.iter().enumerate() {
            let start = data.len();
            data.extend_from_slice(m);
            xor_stretched(keys[x], &mut data[start..]);
        }
    }
    keys.zeroize();
    Ok(OneOfNMsg {
        first: cots.first,
        count: messages.len(),
        log_n,
        width,
        data,
    })
}

/// Receiver: the chosen message of each instance (the choice is read from
/// the COTs' choice bits, `log_n` per instance, least significant first).
pub fn receive<'a>(cots: impl Into<ReceiverCotsRef<'a>>, msg: &OneOfNMsg) -> Result<Vec<Vec<u8>>> {
    let cots: ReceiverCotsRef<'a> = cots.into();
    let l = msg.log_n as usize;
    if msg.first != cots.first || msg.count.checked_mul(l) != Some(cots.len()) {
        return Err(Error::Mismatch {
            what: WHAT,
            detail: format!(
                "{} instances of 1-of-2^{} from OT {}, these COTs are {}..+{}",
                msg.count,
                msg.log_n,
                msg.first,
                cots.first,
                cots.len()
            ),
        });
    }
    let h = FixedKeyAes::shared();
    let n = 1usize << l;
    // Every instance's choice, then all the hashes in one batched call.
    let mut choices: Vec<usize> = (0..msg.count)
        .map(|i| (0..l).fold(0, |c, t| c | (usize::from(cots.choices[i * l + t]) << t)))
        .collect();
    let mut hashed = cots.t.to_vec();
    h.tccr_with(&mut hashed, |x| {
        tweak(cots.first + x as u64, choices[x / l] as u64)
    });
    let mut out = Vec::with_capacity(msg.count);
    for (i, (&c, hs)) in choices.iter().zip(hashed.chunks_exact(l)).enumerate() {
        let mut key = hs.iter().fold(Block::ZERO, |k, &x| k ^ x);
        let start = (i * n + c) * msg.width;
        let mut m = msg.data[start..start + msg.width].to_vec();
        xor_stretched(key, &mut m);
        key.zeroize();
        out.push(m);
    }
    hashed.zeroize();
    choices.zeroize();
    Ok(out)
}

fn check_short(what: &'static str, log_n: u32, width: u32, len: usize) -> Result<usize> {
    if log_n == 0 || log_n > 7 || width == 0 || (width as u64) << log_n > 128 {
        return Err(Error::Input {
            what,
            detail: format!(
                "2^{log_n} messages of {width} bits; at most 128 bits in all are supported"
            ),
        });
    }
    let l = log_n as usize;
    if !len.is_multiple_of(l) {
        return Err(Error::Input {
            what,
            detail: format!("{len} COTs are not a whole number of {l}-COT instances"),
        });
    }
    Ok(len / l)
}

/// Bits of a block's low `n` bits (`n ≤ 128`).
fn low(b: Block, n: u32) -> u128 {
    if n >= 128 {
        b.0
    } else {
        b.0 & ((1u128 << n) - 1)
    }
}

/// Random 1-of-N OT of short messages (`N·width ≤ 128` bits), sender's
/// side: per instance (`log_n` COTs each, in order) its `N` pads packed in
/// one `u128`, pad `x` at bits `x·width ..+width`. No message is sent: the
/// receiver's choice is its random COT choice bits, and the pads are
/// derandomised by the caller (Beaver 1995: the receiver sends
/// `chosen ⊕ c`, the sender the messages under the pads permuted by it).
///
/// Construction: Naor and Pinkas's 1-of-N from `log N` 1-of-2 OTs (J.
/// Cryptology 2005, §4), with their PRF `F_k(x)` realised as field `x` of a
/// pseudorandom `N·width`-bit string: the random-OT pads `p_t^0, p_t^1` of
/// COT `t` ([`crate::ot`], tccr hashes) are such strings, and
/// `pad_x = ⊕_t field_x(p_t^{x_t})`. A receiver that chose `c` holds every
/// `p_t^{c_t}`; each `x ≠ c` has a `t` with `x_t ≠ c_t`, and field `x` of
/// that `p_t^{x_t}` enters no other pad, so the pads it lacks are uniform
/// and independent to it. Cost: 2 hashes per COT for the sender, 1 for the
/// receiver (the chosen-message [`send`] hashes `N` times per COT).
pub fn random_send_short<'a>(
    cots: impl Into<SenderCotsRef<'a>>,
    log_n: u32,
    width: u32,
) -> Result<Vec<u128>> {
    let cots: SenderCotsRef<'a> = cots.into();
    let count = check_short("one_of_n::random_send_short", log_n, width, cots.len())?;
    let l = log_n as usize;
    let n = 1u32 << log_n;
    let bits = n * width;
    // Field x of mask t is all ones where bit t of x is set.
    let masks: Vec<u128> = (0..l)
        .map(|t| {
            (0..n)
                .filter(|x| (x >> t) & 1 == 1)
                .fold(0u128, |m, x| m | ((1u128 << width) - 1) << (x * width))
        })
        .collect();
    let mut out = vec![0u128; count];
    crate::ot::for_each_sender_pad(cots, |j, [p0, p1]| {
        let t = j % l;
        let m = masks[t];
        out[j / l] ^= (low(p0, bits) & !m) | (low(p1, bits) & m);
    });
    Ok(out)
}

/// Random 1-of-N OT of short messages, receiver's side: per instance its
/// random choice `c` (its `log_n` COT choice bits, least significant
/// first) and pad `c` of [`random_send_short`] (in the low `width` bits).
pub fn random_receive_short<'a>(
    cots: impl Into<ReceiverCotsRef<'a>>,
    log_n: u32,
    width: u32,
) -> Result<(Vec<u64>, Vec<u128>)> {
    let cots: ReceiverCotsRef<'a> = cots.into();
    let count = check_short("one_of_n::random_receive_short", log_n, width, cots.len())?;
    let l = log_n as usize;
    let choices: Vec<u64> = cots
        .choices
        .chunks(l)
        .map(|bits| {
            bits.iter()
                .enumerate()
                .fold(0u64, |c, (t, &b)| c | (b as u64) << t)
        })
        .collect();
    // Per instance the XOR of its pads (streamed from the hash, no copy
    // of the COTs), then field `c` of it.
    let mut all = vec![0u128; count];
    crate::ot::for_each_receiver_pad(cots, |j, p| all[j / l] ^= p.0);
    let got = all
        .iter()
        .zip(&choices)
        .map(|(&a, &c)| (a >> (c as u32 * width)) & ((1u128 << width) - 1))
        .collect();
    all.zeroize();
    debug_assert_eq!(choices.len(), count);
    Ok((choices, got))
}
