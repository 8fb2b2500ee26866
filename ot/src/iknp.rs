//! OT extension: Ishai, Kilian, Nissim and Petrank, "Extending Oblivious
//! Transfers Efficiently" (CRYPTO 2003), semi-honest, producing correlated
//! OTs with a global `Δ` in the form of Asharov, Lindell, Schneider and
//! Zohner, "More Efficient Oblivious Transfer and Extensions for Faster
//! Secure Computation" (CCS 2013, §5.3, C-OT).
//!
//! Roles are reversed for the 128 base OTs: the extension *receiver* is the
//! base-OT sender (it learns both seeds `k_i^0, k_i^1` of every column
//! `i < 128`), the extension *sender* draws `Δ` and learns `k_i^{Δ_i}`.
//!
//! For a batch of `n` OTs with choice bits `r ∈ {0,1}^n` (n padded up to a
//! multiple of 128), the receiver expands `t^i = G(k_i^0)` and sends
//! `u^i = t^i ⊕ G(k_i^1) ⊕ r`; the sender computes
//! `q^i = G(k_i^{Δ_i}) ⊕ Δ_i·u^i = t^i ⊕ Δ_i·r`. Transposed, row `j` gives
//! `q_j = t_j ⊕ r_j·Δ`: a correlated OT (COT) with global `Δ`, the sender
//! holding `q_j` and `Δ`, the receiver `r_j` and `t_j`. The PRG `G` is
//! AES-128 in counter mode keyed by the seed ([`crate::crypto::Prg`]); its
//! position carries on from batch to batch, so no block of `G` is ever used
//! twice.
//!
//! Semi-honest security: the receiver's choices are hidden because
//! `G(k_i^{1-Δ_i})` is pseudorandom to the sender; the sender's `Δ` is
//! hidden because the receiver only ever sees outputs of `G` on seeds it
//! generated. The COTs themselves are not random OTs (`q_j ⊕ t_j` is `Δ`
//! or 0); [`crate::ot`] hashes them with the tccr hash to get independent
//! pads. No consistency check is run: that is the malicious-secure KOS
//! variant, out of scope for Veil's semi-honest model.
//!
//! Message layout: the `u` columns are sent block-major: for each group of
//! 128 OTs, the 128 column blocks in column order, which is exactly the
//! input of one 128 × 128 transpose on the sender's side.
//!
//! The layout of the per-chunk loops follows emp-ot's `IKNP` and swanky's
//! `ocelot::ot::alsz` (read for reference, not copied).

use rand::CryptoRng;
use zeroize::Zeroize;

use crate::base::{self, BaseHello, BaseReply, BaseSender};
use crate::block::{pack_bits_into, Block};
use crate::crypto::Prg;
use crate::error::{Error, Result};
use crate::transpose::transpose128;
use crate::wire::{size_of_items, tag, Reader, Writer};

/// Computational security parameter: the number of base OTs and columns.
pub const KAPPA: usize = 128;

/// The most OTs one extension message may carry (2^28: a 4 GiB message).
pub const MAX_BATCH: usize = 1 << 28;

/// Blocks per column processed together: 8 blocks = 1,024 OTs, which keeps
/// the 128 × 8 working set (16 KiB) in L1 and gives AES eight blocks per
/// call.
const CHUNK: usize = 8;

/// Empties a buffer of secrets for reuse with room for `capacity` items.
/// Old values are overwritten by the new batch or, past its length, stay in
/// the spare capacity until `Drop` zeroizes the whole allocation; a buffer
/// too small is zeroized and replaced rather than grown, so a reallocation
/// never leaves secrets in freed memory.
fn reset_secret_buffer<T: Zeroize>(v: &mut Vec<T>, capacity: usize) {
    if v.capacity() < capacity {
        v.zeroize();
        *v = Vec::with_capacity(capacity);
    } else {
        v.clear();
    }
}

/// The receiver's message for one batch.
#[derive(Clone, PartialEq, Eq)]
pub struct ExtendMsg {
    first: u64,
    count: usize,
    u: Vec<Block>,
}

impl std::fmt::Debug for ExtendMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtendMsg")
            .field("first", &self.first)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl ExtendMsg {
    const WHAT: &'static str = "OT extension message";

    /// An empty message, to be filled by [`Receiver::extend_into`].
    pub fn empty() -> ExtendMsg {
        ExtendMsg {
            first: 0,
            count: 0,
            u: Vec::new(),
        }
    }

    /// Index of the first OT of this batch.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// Number of OTs in this batch.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Size of [`ExtendMsg::to_bytes`] for `count` OTs.
    pub fn encoded_len(count: usize) -> usize {
        1 + 16 + count.div_ceil(128) * 128 * 16
    }

    /// Tag, first index (u64), count (u64), then the `u` blocks.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(tag::EXTEND, 16 + self.u.len() * 16);
        w.u64(self.first);
        w.u64(self.count as u64);
        w.blocks(&self.u);
        w.finish()
    }

    /// Decodes, checking the body has exactly the length the count implies.
    pub fn from_bytes(bytes: &[u8]) -> Result<ExtendMsg> {
        let mut r = Reader::new(Self::WHAT, tag::EXTEND, bytes)?;
        let first = r.u64()?;
        let count = r.count(MAX_BATCH as u64, "the number of OTs")?;
        if count == 0 {
            return Err(Error::Invalid {
                what: Self::WHAT,
                detail: "a batch of zero OTs".into(),
            });
        }
        let blocks = count.div_ceil(128) * 128;
        r.expect_remaining(size_of_items(Self::WHAT, blocks, 16)?)?;
        let u = r.blocks(blocks)?;
        r.finish()?;
        Ok(ExtendMsg { first, count, u })
    }
}

/// Correlated OTs as the sender holds them: `q_j` for OTs
/// `first .. first + len`, and `Δ`. For each `j`, the receiver holds
/// `t_j = q_j ⊕ r_j·Δ`.
#[derive(Clone)]
pub struct SenderCots {
    pub(crate) first: u64,
    pub(crate) delta: Block,
    pub(crate) q: Vec<Block>,
}

/// Correlated OTs as the receiver holds them: choice bits `r_j` and
/// `t_j = q_j ⊕ r_j·Δ`.
#[derive(Clone)]
pub struct ReceiverCots {
    pub(crate) first: u64,
    pub(crate) choices: Vec<bool>,
    pub(crate) t: Vec<Block>,
}

impl Drop for SenderCots {
    fn drop(&mut self) {
        self.delta.zeroize();
        self.q.zeroize();
    }
}

impl Drop for ReceiverCots {
    fn drop(&mut self) {
        self.choices.zeroize();
        self.t.zeroize();
    }
}

impl std::fmt::Debug for SenderCots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderCots")
            .field("first", &self.first)
            .field("len", &self.q.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ReceiverCots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverCots")
            .field("first", &self.first)
            .field("len", &self.t.len())
            .finish_non_exhaustive()
    }
}

impl SenderCots {
    /// No OTs: a buffer for [`Sender::extend_into`].
    pub fn empty() -> SenderCots {
        SenderCots {
            first: 0,
            delta: Block::ZERO,
            q: Vec::new(),
        }
    }

    /// Number of OTs.
    pub fn len(&self) -> usize {
        self.q.len()
    }
    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
    /// Global index of the first OT (the tweak of its hash).
    pub fn first(&self) -> u64 {
        self.first
    }
    /// The global correlation `Δ`.
    pub fn delta(&self) -> Block {
        self.delta
    }
    /// The `q_j`: the message for choice 0 (`q_j ⊕ Δ` is the one for 1).
    pub fn q(&self) -> &[Block] {
        &self.q
    }

    /// Splits off the first `n` OTs (their indices keep their global
    /// values, so hashes stay tweaked uniquely).
    pub fn take(&mut self, n: usize) -> Result<SenderCots> {
        if n > self.q.len() {
            return Err(Error::Input {
                what: "SenderCots::take",
                detail: format!("{n} OTs asked for, {} left", self.q.len()),
            });
        }
        let rest = self.q.split_off(n);
        let head = std::mem::replace(&mut self.q, rest);
        let first = self.first;
        self.first += n as u64;
        Ok(SenderCots {
            first,
            delta: self.delta,
            q: head,
        })
    }
}

impl ReceiverCots {
    /// No OTs: a buffer for [`Receiver::extend_into`].
    pub fn empty() -> ReceiverCots {
        ReceiverCots {
            first: 0,
            choices: Vec::new(),
            t: Vec::new(),
        }
    }

    /// Number of OTs.
    pub fn len(&self) -> usize {
        self.t.len()
    }
    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }
    /// Global index of the first OT.
    pub fn first(&self) -> u64 {
        self.first
    }
    /// The choice bits `r_j`.
    pub fn choices(&self) -> &[bool] {
        &self.choices
    }
    /// The `t_j = q_j ⊕ r_j·Δ`.
    pub fn t(&self) -> &[Block] {
        &self.t
    }

    /// Splits off the first `n` OTs.
    pub fn take(&mut self, n: usize) -> Result<ReceiverCots> {
        if n > self.t.len() {
            return Err(Error::Input {
                what: "ReceiverCots::take",
                detail: format!("{n} OTs asked for, {} left", self.t.len()),
            });
        }
        let rest_t = self.t.split_off(n);
        let rest_c = self.choices.split_off(n);
        let head_t = std::mem::replace(&mut self.t, rest_t);
        let head_c = std::mem::replace(&mut self.choices, rest_c);
        let first = self.first;
        self.first += n as u64;
        Ok(ReceiverCots {
            first,
            choices: head_c,
            t: head_t,
        })
    }
}

/// The extension receiver after its first step (base-OT sender).
#[derive(Debug)]
pub struct ReceiverSetup {
    base: BaseSender,
}

/// The extension receiver, ready to extend.
pub struct Receiver {
    prg0: Vec<Prg>,
    prg1: Vec<Prg>,
    next: u64,
    /// Scratch: the packed choice bits of the current batch.
    packed: Vec<Block>,
}

/// The extension sender, ready to extend.
pub struct Sender {
    delta: Block,
    /// All ones in column `i` if bit `i` of `Δ` is set, else zero.
    masks: Vec<Block>,
    prgs: Vec<Prg>,
    next: u64,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("iknp::Receiver")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("iknp::Sender")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.delta.zeroize();
        self.masks.zeroize();
    }
}

impl Receiver {
    /// A receiver whose 128 base OTs are random OTs it *sent* earlier, e.g.
    /// pads of another extension running the other way
    /// ([`crate::ot`]'s `random_ot`): the pads seed the PRGs as base-OT
    /// keys would. Bootstrapping an extension from extended OTs instead of
    /// public-key base OTs is the standard setup of a second instance
    /// (Asharov, Lindell, Schneider, Zohner, CCS 2013, §5, base OTs from
    /// an earlier extension); it needs the pads to be uniform and
    /// independent, as the tccr-hashed pads of random OTs are.
    pub fn from_random_ots(pads: &[[Block; 2]]) -> Result<Receiver> {
        if pads.len() != KAPPA {
            return Err(Error::Input {
                what: "iknp::Receiver::from_random_ots",
                detail: format!("{} random OTs, an extension needs {KAPPA}", pads.len()),
            });
        }
        Ok(Receiver {
            prg0: pads.iter().map(|p| Prg::new(p[0])).collect(),
            prg1: pads.iter().map(|p| Prg::new(p[1])).collect(),
            next: 0,
            packed: Vec::new(),
        })
    }

    /// Step 1 (receiver): start the 128 base OTs. Send the hello to the
    /// sender.
    pub fn setup<R: CryptoRng + ?Sized>(rng: &mut R) -> Result<(ReceiverSetup, BaseHello)> {
        let (base, hello) = BaseSender::new(KAPPA, rng)?;
        Ok((ReceiverSetup { base }, hello))
    }

    /// Index of the next OT this receiver will produce.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// One batch of COTs with the given choice bits. Send the message to
    /// the sender; keep the returned COTs.
    pub fn extend(&mut self, choices: &[bool]) -> Result<(ExtendMsg, ReceiverCots)> {
        let mut msg = ExtendMsg::empty();
        let mut cots = ReceiverCots::empty();
        self.extend_into(choices, &mut msg, &mut cots)?;
        Ok((msg, cots))
    }

    /// [`Receiver::extend`] into buffers reused from an earlier batch (no
    /// allocation once they are large enough; their old contents are
    /// overwritten).
    pub fn extend_into(
        &mut self,
        choices: &[bool],
        msg: &mut ExtendMsg,
        cots: &mut ReceiverCots,
    ) -> Result<()> {
        let n = choices.len();
        if n == 0 || n > MAX_BATCH {
            return Err(Error::Input {
                what: "iknp::Receiver::extend",
                detail: format!("{n} OTs requested; between 1 and {MAX_BATCH} per batch"),
            });
        }
        let nblocks = n.div_ceil(128);
        let mut r = std::mem::take(&mut self.packed);
        pack_bits_into(choices, &mut r);
        let u = &mut msg.u;
        u.clear();
        u.reserve(nblocks * KAPPA);
        let t = &mut cots.t;
        reset_secret_buffer(t, nblocks * 128);
        let pos = (self.next / 128) as u128;
        let mut cols = [[Block::ZERO; CHUNK]; KAPPA];
        let mut g1 = [Block::ZERO; CHUNK];
        let mut uchunk = [[Block::ZERO; KAPPA]; CHUNK];
        let mut m = [Block::ZERO; 128];
        for cb in (0..nblocks).step_by(CHUNK) {
            let w = CHUNK.min(nblocks - cb);
            for i in 0..KAPPA {
                let col = &mut cols[i][..w];
                self.prg0[i].fill(pos + cb as u128, col);
                self.prg1[i].fill(pos + cb as u128, &mut g1[..w]);
                for b in 0..w {
                    uchunk[b][i] = col[b] ^ g1[b] ^ r[cb + b];
                }
            }
            for b in 0..w {
                u.extend_from_slice(&uchunk[b]);
                for (i, row) in m.iter_mut().enumerate() {
                    *row = cols[i][b];
                }
                transpose128(&mut m);
                t.extend_from_slice(&m);
            }
        }
        m.zeroize();
        cols.zeroize();
        g1.zeroize();
        r.zeroize();
        self.packed = r;
        t.truncate(n);
        reset_secret_buffer(&mut cots.choices, n);
        cots.choices.extend_from_slice(choices);
        let first = self.next;
        cots.first = first;
        msg.first = first;
        msg.count = n;
        self.next += (nblocks * 128) as u64;
        Ok(())
    }

    /// One batch of `n` COTs with uniformly random choice bits.
    pub fn extend_random<R: CryptoRng + ?Sized>(
        &mut self,
        n: usize,
        rng: &mut R,
    ) -> Result<(ExtendMsg, ReceiverCots)> {
        let mut bytes = vec![0u8; n.div_ceil(8)];
        rng.fill_bytes(&mut bytes);
        let mut choices: Vec<bool> = (0..n).map(|j| (bytes[j / 8] >> (j % 8)) & 1 == 1).collect();
        bytes.zeroize();
        let out = self.extend(&choices);
        choices.zeroize();
        out
    }
}

impl ReceiverSetup {
    /// Step 3 (receiver): finish the base OTs with the sender's reply.
    pub fn finish(self, reply: &BaseReply) -> Result<Receiver> {
        let mut keys = self.base.finish(reply)?;
        let prg0 = keys.iter().map(|k| Prg::new(k[0])).collect();
        let prg1 = keys.iter().map(|k| Prg::new(k[1])).collect();
        keys.zeroize();
        Ok(Receiver {
            prg0,
            prg1,
            next: 0,
            packed: Vec::new(),
        })
    }
}

impl Sender {
    /// The sender matching [`Receiver::from_random_ots`]: the 128 random
    /// OTs it *received* (uniform choices, which become the bits of `Δ`,
    /// and the chosen pads, which seed the PRGs).
    pub fn from_random_ots(choices: &[bool], pads: &[Block]) -> Result<Sender> {
        if choices.len() != KAPPA || pads.len() != KAPPA {
            return Err(Error::Input {
                what: "iknp::Sender::from_random_ots",
                detail: format!(
                    "{} choices and {} pads, an extension needs {KAPPA}",
                    choices.len(),
                    pads.len()
                ),
            });
        }
        let delta = Block(
            choices
                .iter()
                .enumerate()
                .fold(0u128, |d, (i, &c)| d | (u128::from(c) << i)),
        );
        let masks = (0..KAPPA)
            .map(|i| Block::ONES.select(delta.bit(i)))
            .collect();
        Ok(Sender {
            delta,
            masks,
            prgs: pads.iter().map(|&k| Prg::new(k)).collect(),
            next: 0,
        })
    }

    /// Step 2 (sender): draw `Δ` and answer the receiver's hello.
    pub fn setup<R: CryptoRng + ?Sized>(
        hello: &BaseHello,
        rng: &mut R,
    ) -> Result<(Sender, BaseReply)> {
        let delta = Block::random(rng);
        Self::setup_with_delta(hello, delta, rng)
    }

    /// Step 2 with a given `Δ` (it must be secret and uniformly random; use
    /// this only to fix a bit of `Δ`, such as its lowest for point and
    /// permute, knowing that this lowers security by that bit).
    pub fn setup_with_delta<R: CryptoRng + ?Sized>(
        hello: &BaseHello,
        delta: Block,
        rng: &mut R,
    ) -> Result<(Sender, BaseReply)> {
        if hello.count() != KAPPA {
            return Err(Error::Mismatch {
                what: "base OT hello",
                detail: format!(
                    "{} base OTs offered, OT extension needs {KAPPA}",
                    hello.count()
                ),
            });
        }
        let mut choices: Vec<bool> = (0..KAPPA).map(|i| delta.bit(i)).collect();
        let (mut keys, reply) = base::receive(hello, &choices, rng)?;
        choices.zeroize();
        let prgs = keys.iter().map(|&k| Prg::new(k)).collect();
        keys.zeroize();
        let masks = (0..KAPPA)
            .map(|i| Block::ONES.select(delta.bit(i)))
            .collect();
        Ok((
            Sender {
                delta,
                masks,
                prgs,
                next: 0,
            },
            reply,
        ))
    }

    /// The global correlation `Δ`.
    pub fn delta(&self) -> Block {
        self.delta
    }

    /// Index of the next OT this sender expects.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// One batch: the receiver's message in, this side's COTs out.
    pub fn extend(&mut self, msg: &ExtendMsg) -> Result<SenderCots> {
        let mut cots = SenderCots::empty();
        self.extend_into(msg, &mut cots)?;
        Ok(cots)
    }

    /// [`Sender::extend`] into a buffer reused from an earlier batch.
    pub fn extend_into(&mut self, msg: &ExtendMsg, cots: &mut SenderCots) -> Result<()> {
        if msg.first != self.next {
            return Err(Error::Mismatch {
                what: ExtendMsg::WHAT,
                detail: format!(
                    "it starts at OT {}, this sender is at OT {} (a batch lost, repeated or reordered)",
                    msg.first, self.next
                ),
            });
        }
        let n = msg.count;
        let nblocks = n.div_ceil(128);
        if msg.u.len() != nblocks * KAPPA {
            return Err(Error::Input {
                what: "iknp::Sender::extend",
                detail: format!("a message for {n} OTs with {} blocks", msg.u.len()),
            });
        }
        let q = &mut cots.q;
        reset_secret_buffer(q, nblocks * 128);
        let pos = (self.next / 128) as u128;
        let mut cols = [[Block::ZERO; CHUNK]; KAPPA];
        let mut m = [Block::ZERO; 128];
        for cb in (0..nblocks).step_by(CHUNK) {
            let w = CHUNK.min(nblocks - cb);
            for (prg, col) in self.prgs.iter().zip(cols.iter_mut()) {
                prg.fill(pos + cb as u128, &mut col[..w]);
            }
            let group = &msg.u[cb * KAPPA..(cb + w) * KAPPA];
            for (b, u) in group.chunks_exact(KAPPA).enumerate() {
                // The receiver's columns for these 128 OTs, read in order.
                for (i, row) in m.iter_mut().enumerate() {
                    *row = cols[i][b] ^ (u[i] & self.masks[i]);
                }
                transpose128(&mut m);
                q.extend_from_slice(&m);
            }
        }
        m.zeroize();
        cols.zeroize();
        q.truncate(n);
        self.next += (nblocks * 128) as u64;
        cots.first = msg.first;
        cots.delta = self.delta;
        Ok(())
    }
}

/// Both setups in one process, for tests and benchmarks.
pub fn setup_pair_for_tests<R: CryptoRng + ?Sized>(rng: &mut R) -> (Sender, Receiver) {
    let (rs, hello) = Receiver::setup(rng).expect("128 base OTs");
    let (sender, reply) = Sender::setup(&hello, rng).expect("fresh hello");
    let receiver = rs.finish(&reply).expect("fresh reply");
    (sender, receiver)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn pair(seed: u64) -> (Sender, Receiver, rand_chacha::ChaCha20Rng) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let (rs, hello) = Receiver::setup(&mut rng).unwrap();
        let hello = BaseHello::from_bytes(&hello.to_bytes()).unwrap();
        let (s, reply) = Sender::setup(&hello, &mut rng).unwrap();
        let reply = BaseReply::from_bytes(&reply.to_bytes()).unwrap();
        let r = rs.finish(&reply).unwrap();
        (s, r, rng)
    }

    #[test]
    fn a_reverse_extension_bootstraps_from_forward_random_ots() {
        // 128 random OTs from the forward extension set up one running the
        // other way (the forward receiver sends there).
        let (mut s, mut r, mut rng) = pair(9);
        let (msg, rc) = r.extend_random(KAPPA, &mut rng).unwrap();
        let sc = s.extend(&msg).unwrap();
        let mut rev_s = Sender::from_random_ots(rc.choices(), &rc.random_ot()).unwrap();
        let mut rev_r = Receiver::from_random_ots(&sc.random_ot()).unwrap();
        for n in [1usize, 300, 4096] {
            let (msg, rrc) = rev_r.extend_random(n, &mut rng).unwrap();
            let rsc = rev_s.extend(&msg).unwrap();
            for j in 0..n {
                let want = rsc.q()[j] ^ rev_s.delta().select(rrc.choices()[j]);
                assert_eq!(rrc.t()[j], want, "n = {n}, OT {j}");
            }
        }
        // Δ is the forward choices, so about half its bits are set.
        let ones = rev_s.delta().0.count_ones();
        assert!((32..=96).contains(&ones), "{ones}");
        assert!(Receiver::from_random_ots(&sc.random_ot()[..127]).is_err());
        assert!(Sender::from_random_ots(&rc.choices()[..5], &rc.random_ot()).is_err());
    }

    #[test]
    fn correlation_holds_across_batches_and_sizes() {
        let (mut s, mut r, mut rng) = pair(1);
        for n in [1usize, 127, 128, 129, 1000, 1024, 1025, 5000] {
            let (msg, rc) = r.extend_random(n, &mut rng).unwrap();
            let msg = ExtendMsg::from_bytes(&msg.to_bytes()).unwrap();
            let sc = s.extend(&msg).unwrap();
            assert_eq!(sc.len(), n);
            assert_eq!(sc.first(), rc.first());
            for j in 0..n {
                let want = sc.q()[j] ^ s.delta().select(rc.choices()[j]);
                assert_eq!(rc.t()[j], want, "n {n} OT {j}");
            }
        }
        assert_eq!(s.next_index(), r.next_index());
    }

    #[test]
    fn reused_buffers_give_the_same_correlation() {
        let (mut s, mut r, _) = pair(5);
        let mut msg = ExtendMsg::empty();
        let mut rc = ReceiverCots::empty();
        let mut sc = SenderCots::empty();
        // Growing and shrinking batches through the same buffers.
        for n in [3000usize, 10, 129, 2048, 1] {
            let choices: Vec<bool> = (0..n).map(|j| (j * 5 + n) % 7 < 3).collect();
            r.extend_into(&choices, &mut msg, &mut rc).unwrap();
            s.extend_into(&msg, &mut sc).unwrap();
            assert_eq!((rc.len(), sc.len(), rc.first()), (n, n, sc.first()));
            assert_eq!(rc.choices(), &choices[..]);
            for ((&t, &q), &c) in rc.t().iter().zip(sc.q()).zip(&choices) {
                assert_eq!(t, q ^ s.delta().select(c));
            }
        }
    }

    #[test]
    fn out_of_order_batches_are_refused() {
        let (mut s, mut r, mut rng) = pair(2);
        let (m1, _) = r.extend_random(10, &mut rng).unwrap();
        let (m2, _) = r.extend_random(10, &mut rng).unwrap();
        assert!(matches!(s.extend(&m2), Err(Error::Mismatch { .. })));
        s.extend(&m1).unwrap();
        s.extend(&m2).unwrap();
        assert!(matches!(s.extend(&m2), Err(Error::Mismatch { .. })));
    }

    #[test]
    fn malformed_extend_messages_are_errors() {
        let (_, mut r, mut rng) = pair(3);
        let (m, _) = r.extend_random(200, &mut rng).unwrap();
        let bytes = m.to_bytes();
        assert_eq!(bytes.len(), ExtendMsg::encoded_len(200));
        assert!(matches!(
            ExtendMsg::from_bytes(&bytes[..bytes.len() - 1]),
            Err(Error::Length { .. })
        ));
        let mut zero = bytes.clone();
        zero[9..17].copy_from_slice(&0u64.to_le_bytes());
        assert!(matches!(
            ExtendMsg::from_bytes(&zero),
            Err(Error::Invalid { .. })
        ));
        let mut big = bytes.clone();
        big[9..17].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(matches!(
            ExtendMsg::from_bytes(&big),
            Err(Error::Invalid { .. })
        ));
        let mut more = bytes.clone();
        more[9..17].copy_from_slice(&300u64.to_le_bytes());
        assert!(matches!(
            ExtendMsg::from_bytes(&more),
            Err(Error::Length { .. })
        ));
        let mut wrong_tag = bytes;
        wrong_tag[0] = 0x01;
        assert!(matches!(
            ExtendMsg::from_bytes(&wrong_tag),
            Err(Error::Tag { .. })
        ));
    }

    #[test]
    fn take_splits_with_global_indices() {
        let (mut s, mut r, mut rng) = pair(4);
        let (m, mut rc) = r.extend_random(300, &mut rng).unwrap();
        let mut sc = s.extend(&m).unwrap();
        let (sh, rh) = (sc.take(100).unwrap(), rc.take(100).unwrap());
        assert_eq!(
            (sh.first(), sh.len(), sc.first(), sc.len()),
            (0, 100, 100, 200)
        );
        assert_eq!(
            (rh.first(), rh.len(), rc.first(), rc.len()),
            (0, 100, 100, 200)
        );
        for j in 0..200 {
            assert_eq!(rc.t()[j], sc.q()[j] ^ s.delta().select(rc.choices()[j]));
        }
        assert!(sc.take(201).is_err());
    }
}
