//! OT extension: Lawrence Roy, "SoftSpokenOT: Quieter OT Extension from
//! Small-Field Silent VOLE in the Minicrypt Model" (CRYPTO 2022, ePrint
//! 2022/192), the semi-honest protocol with the repetition code (no
//! consistency check), producing correlated OTs ([`crate::cot`]):
//! the sender holds `Δ` and `q_j`, the receiver `r_j` and
//! `t_j = q_j ⊕ r_j·Δ`.
//!
//! # The protocol
//!
//! `Δ`'s 128 bits are cut into `B = 128/k` pieces `Δ_i` of `k` bits; each
//! piece is one small-field VOLE over `F_2` with `2^k` seeds:
//!
//! * **Setup** (once per extension): for each piece, a GGM tree of depth
//!   `k` whose leaves are seeds `s_x`, `x ∈ {0,1}^k`. The extension
//!   receiver (the VOLE prover) knows every leaf; the extension sender (the
//!   verifier) every leaf but `s_{Δ_i}`. It comes from `k` random base OTs
//!   per piece (128 in all, as for IKNP), the receiver sending both keys
//!   `k_d^0, k_d^1` of level `d` and the sender choosing `k_d^{¬Δ_{i,d}}`.
//!   Level 1 *is* the base keys of level 1; each deeper level doubles its
//!   parents with the PRG, and the receiver sends `K_d^b ⊕ k_d^b` for both
//!   `b`, where `K_d^b` is the XOR of the level's nodes whose bit `d` is
//!   `b`. The sender, knowing every node of the level above but the one
//!   on its path, expands them and recovers its path's sibling
//!   `K_d^{¬Δ_d} ⊕ (the XOR of the other nodes on that side)`, and so
//!   every node but the one on its path (the standard construction of
//!   `(N−1)`-out-of-`N` OT from `log N` 1-of-2 OTs; with random base OTs
//!   the receiver sends the corrections, `2(k − 1)` blocks per piece, with
//!   its first batch).
//! * **Each batch** of `n` OTs (padded to a multiple of 128), per piece:
//!   `r_x = G(s_x)` (n bits at the batch's PRG position); the receiver
//!   computes `u = Σ_x r_x` and `V_l = Σ_x x_l·r_x` (`l < k`) and sends
//!   `u ⊕ r`, `r` its choice bits; the sender computes
//!   `W_l = Σ_{x ≠ Δ_i} (x ⊕ Δ_i)_l·r_x = V_l ⊕ Δ_{i,l}·u` and
//!   `q^{ik+l} = W_l ⊕ Δ_{i,l}·(u ⊕ r) = V_l ⊕ Δ_{i,l}·r`. With
//!   `t^{ik+l} = V_l`, column `c` satisfies `q^c = t^c ⊕ Δ_c·r`, exactly
//!   IKNP's column relation, and the columns transpose as in IKNP into
//!   `q_j = t_j ⊕ r_j·Δ`. With `k = 1` this *is* IKNP.
//!
//! The receiver sends `B` bits per OT instead of IKNP's 128; the price is
//! PRG work, `2^k` blocks per 128 OTs and piece for the receiver and
//! `2^k − 1` for the sender: `(2^{k+1} − 1)/k` AES blocks per OT for both
//! together against IKNP's 3.
//!
//! # The choice of `k` ([`K`] = 4)
//!
//! Measured with `cargo bench -p ot --bench ot -- cot/` (both parties on
//! one core, 2^20 OTs in batches of 2^16, buffers reused; the 2-core
//! development machine, load average 3–6 from other agents; BENCHMARKS.md,
//! "SoftSpoken OT extension"), all four in one invocation:
//!
//! | extension | bits per OT | AES blocks per OT | COT/s |
//! |---|---:|---:|---:|
//! | IKNP | 128 | 3 | 57.6 M |
//! | k = 2 | 64 | 3.5 | 40.9 M |
//! | k = 4 | 32 | 7.75 | 22.0 M |
//! | k = 8 | 16 | 63.9 | 3.1 M |
//!
//! `k = 4` quarters IKNP's traffic (a dealer-free ReLU's 118 COTs: 472
//! bytes instead of 1,888, 599 bytes = 4.8 kbit per ReLU in all, under the
//! issue's 10 kbit) and stays twice above its 10 M COT/s floor; `k = 2`
//! would leave a ReLU at 8.6 kbit, close to the limit, and `k = 8` is
//! below the floor. About half the time was AES (`perf`), the rest the sums,
//! the transposes and the copies; with VAES ([`MultiKeyAes`], the leaves
//! of 4 pieces per call) k = 4 runs at 40–45 M (BENCHMARKS.md, "SoftSpoken
//! on VAES"; k = 2 at 52–58 M, k = 8 at 7.5–9.2 M; IKNP no faster, 43–49 M).
//!
//! # Security (semi-honest)
//!
//! The sender sees, per piece and batch, `u ⊕ r = Σ_x r_x ⊕ r`, masked by
//! `r_{Δ_i} = G(s_{Δ_i})`, the one expansion it cannot compute (its seed is
//! the GGM leaf it lacks, pseudorandom given its view by the PRG's
//! security, level by level); the setup corrections are one-time pads
//! under the base keys it did not choose. The receiver only ever sees
//! values computed from seeds it generated. Assumptions: the base OT, AES
//! as a PRG/PRF, and the correlation-robust (tccr) hash for everything
//! derived from the COTs ([`crate::ot`]). PRG positions carry on from batch
//! to batch, so no block of any `G(s_x)` is used twice.
//!
//! Written from the paper's §3–§5 (the small-field VOLE and its
//! subspace/repetition-code form); no implementation was read.

use rand::CryptoRng;
use zeroize::Zeroize;

use crate::base::{self, BaseHello, BaseReply, BaseSender};
use crate::block::{pack_bits_into, Block};
use crate::cot::{reset_secret_buffer, resize_secret_buffer};
pub use crate::cot::{ReceiverCots, SenderCots, KAPPA};
use crate::crypto::Prg;
use crate::error::{Error, Result};
use crate::transpose::transpose128;
use crate::wide_aes::MultiKeyAes;
use crate::wire::{size_of_items, tag, Reader, Writer};

/// Bits of `Δ` per small-field VOLE: the default, used by the runtime
/// (see the module's table).
pub const K: usize = 4;

/// The most OTs one extension message may carry (2^28).
pub const MAX_BATCH: usize = 1 << 28;

/// 128-OT groups processed together: each AES call gets `CHUNK` counter
/// blocks under each of 64 leaves' keys (4 pieces for k = 4, 512 blocks),
/// four keys per 512-bit VAES register ([`MultiKeyAes`]).
const CHUNK: usize = 8;

/// Whether `k` is a supported piece size (a divisor of 128, at most 8).
fn valid_k(k: usize) -> bool {
    matches!(k, 1 | 2 | 4 | 8)
}

/// Blocks of setup corrections for piece size `k`: `2(k − 1)` per piece.
pub fn setup_blocks(k: usize) -> usize {
    (KAPPA / k) * 2 * (k - 1)
}

/// The length-doubling PRG of the GGM tree: blocks 0 and 1 of `G(node)`.
fn expand(node: Block) -> [Block; 2] {
    let mut out = [Block::ZERO; 2];
    Prg::new(node).fill(0, &mut out);
    out
}

/// The prover's GGM tree for one piece from its `k` base-OT key pairs
/// (`keys[d]` for level `d + 1`): the `2^k` leaves (leaf `x` at index `x`;
/// bit `d` of `x` is the branch at depth `d + 1`) and the `2(k − 1)`
/// corrections (`K_d^0 ⊕ k_d^0, K_d^1 ⊕ k_d^1` for each deeper level).
fn prover_tree(keys: &[[Block; 2]]) -> (Vec<Block>, Vec<Block>) {
    let k = keys.len();
    let mut level = vec![keys[0][0], keys[0][1]];
    let mut corrections = Vec::with_capacity(2 * (k - 1));
    for (d, key) in keys.iter().enumerate().skip(1) {
        let half = 1usize << d;
        let mut next = vec![Block::ZERO; 2 * half];
        let mut sums = [Block::ZERO; 2];
        for p in 0..half {
            let c = expand(level[p]);
            next[p] = c[0];
            next[p | half] = c[1];
            sums[0] ^= c[0];
            sums[1] ^= c[1];
        }
        corrections.push(sums[0] ^ key[0]);
        corrections.push(sums[1] ^ key[1]);
        sums.zeroize();
        level.zeroize();
        level = next;
    }
    (level, corrections)
}

/// The verifier's punctured tree for one piece: `keys[d]` is
/// `k_{d+1}^{¬Δ_d}`, `delta` the piece `Δ_i` (k bits), `corrections` the
/// prover's. Every leaf but leaf `delta`, which is left zero (it cannot be
/// computed). Setup only: the branches on `delta` run once per extension.
fn verifier_tree(keys: &[Block], delta: usize, corrections: &[Block]) -> Vec<Block> {
    let mut level = vec![Block::ZERO; 2];
    level[(delta & 1) ^ 1] = keys[0];
    for (d, &key) in keys.iter().enumerate().skip(1) {
        let half = 1usize << d;
        let path = delta & (half - 1);
        let side = ((delta >> d) & 1) ^ 1;
        let mut next = vec![Block::ZERO; 2 * half];
        let mut sum = Block::ZERO;
        for p in (0..half).filter(|&p| p != path) {
            let c = expand(level[p]);
            next[p] = c[0];
            next[p | half] = c[1];
            sum ^= c[side];
        }
        next[path | (side << d)] = corrections[2 * (d - 1) + side] ^ key ^ sum;
        sum.zeroize();
        level.zeroize();
        level = next;
    }
    level
}

/// One piece's sums for one 128-OT group from its leaves' expansions
/// `row[x] = r_x` (`2^k` of them): `cols[l][b] = Σ_x x_l·r_x` for `l < k`,
/// and `row[0]` becomes `Σ_x r_x`. Halving, bit by bit: after round `l`,
/// `row[x]` for `x` a multiple of `2^{l+1}` holds the sum of the `row[x']`
/// with `x' >> (l+1) = x >> (l+1)`, and round `l` adds the odd ones of the
/// pairs into `cols[l]`: `2(2^k − 1)` XORs per group, no branch on the
/// data.
#[inline]
fn fold_row(row: &mut [Block], b: usize, cols: &mut [[Block; CHUNK]]) {
    for (l, col) in cols.iter_mut().enumerate() {
        let stride = 1usize << l;
        let mut acc = Block::ZERO;
        for pair in row.chunks_exact_mut(2 * stride) {
            let odd = pair[stride];
            acc ^= odd;
            pair[0] ^= odd;
        }
        col[b] = acc;
    }
}

/// The prover's part of every piece for 128-OT groups `start .. start + w`:
/// `u[i][b] = Σ_x r_x` and `cols[ik + l][b] = Σ_x x_l·r_x` for piece `i`,
/// from the keys of all pieces' leaves, piece by piece, each in leaf order
/// (one call to AES for all of them; `g` is scratch of `CHUNK` rows of
/// every leaf).
fn prover_pieces(
    leaves: &MultiKeyAes,
    k: usize,
    start: u128,
    w: usize,
    g: &mut [Block],
    u: &mut [[Block; CHUNK]],
    cols: &mut [[Block; CHUNK]],
) {
    let per = pieces_per_call(k);
    let n = per << k;
    for (p, (cols, u)) in cols.chunks_mut(per * k).zip(u.chunks_mut(per)).enumerate() {
        let keys = p * n..((p + 1) * n).min(leaves.len());
        let n = keys.len();
        leaves.ctr_rows_of(keys, start, w, g, n);
        for (b, row) in g.chunks_exact_mut(n).take(w).enumerate() {
            let pieces = row.chunks_exact_mut(1 << k).zip(cols.chunks_exact_mut(k));
            for ((piece, cols), u) in pieces.zip(u.iter_mut()) {
                fold_row(piece, b, cols);
                u[b] = piece[0];
            }
        }
    }
}

/// The 128 OTs of group `b` in an output buffer (where they are
/// transposed in place).
#[inline]
fn group_of(v: &mut [Block], b: usize) -> &mut [Block; 128] {
    (&mut v[128 * b..128 * (b + 1)])
        .try_into()
        .expect("128 blocks per group")
}

/// Pieces whose leaves go to AES together: 64 keys (8 KiB of scratch rows,
/// which stay in the first-level cache), or one piece when it has more.
fn pieces_per_call(k: usize) -> usize {
    (64 >> k).max(1)
}

/// The verifier's part of every piece: `cols[ik + l][b] = Σ_{y ≠ 0}
/// y_l·r_{y ⊕ Δ_i}` from the keys of leaves `y ⊕ Δ_i`, `y = 0 .. 2^k`, per
/// piece, `y = 0` a hole (stored in that order, so nothing here depends on
/// `Δ_i`; the missing leaf counts as zero).
fn verifier_pieces(
    leaves: &MultiKeyAes,
    k: usize,
    start: u128,
    w: usize,
    g: &mut [Block],
    cols: &mut [[Block; CHUNK]],
) {
    let per = pieces_per_call(k);
    let n = per << k;
    for (p, cols) in cols.chunks_mut(per * k).enumerate() {
        let keys = p * n..((p + 1) * n).min(leaves.len());
        let n = keys.len();
        leaves.ctr_rows_of(keys, start, w, g, n);
        for (b, row) in g.chunks_exact_mut(n).take(w).enumerate() {
            for (piece, cols) in row.chunks_exact_mut(1 << k).zip(cols.chunks_exact_mut(k)) {
                fold_row(piece, b, cols);
            }
        }
    }
}

/// The receiver's message for one batch.
#[derive(Clone, PartialEq, Eq)]
pub struct ExtendMsg {
    k: usize,
    first: u64,
    count: usize,
    /// The GGM corrections, in the first batch of an extension only.
    setup: Vec<Block>,
    /// Per 128-OT group, `u_i ⊕ r` for each piece `i`.
    u: Vec<Block>,
}

impl std::fmt::Debug for ExtendMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtendMsg")
            .field("k", &self.k)
            .field("first", &self.first)
            .field("count", &self.count)
            .field("setup", &!self.setup.is_empty())
            .finish_non_exhaustive()
    }
}

impl ExtendMsg {
    const WHAT: &'static str = "SoftSpoken OT extension message";

    /// An empty message, to be filled by [`Receiver::extend_into`].
    pub fn empty() -> ExtendMsg {
        ExtendMsg {
            k: K,
            first: 0,
            count: 0,
            setup: Vec::new(),
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

    /// Whether it carries the extension's setup (its first batch).
    pub fn has_setup(&self) -> bool {
        !self.setup.is_empty()
    }

    /// Size of [`ExtendMsg::to_bytes`] for `count` OTs with [`K`], without
    /// the setup (add [`ExtendMsg::SETUP_BYTES`] for an extension's first
    /// batch).
    pub fn encoded_len(count: usize) -> usize {
        1 + 32 + count.div_ceil(128) * (KAPPA / K) * 16
    }

    /// Bytes the setup adds to an extension's first message with [`K`].
    pub const SETUP_BYTES: usize = (KAPPA / K) * 2 * (K - 1) * 16;

    /// Tag, first index, count, `k`, setup blocks (all u64), then the
    /// setup and the `u` blocks.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// [`ExtendMsg::to_bytes`], appended to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let blocks = self.setup.len() + self.u.len();
        let mut w = Writer::after(std::mem::take(out), tag::SOFT_EXTEND, 32 + blocks * 16);
        w.u64(self.first);
        w.u64(self.count as u64);
        w.u64(self.k as u64);
        w.u64(self.setup.len() as u64);
        w.blocks(&self.setup);
        w.blocks(&self.u);
        *out = w.finish();
    }

    /// Decodes, checking `k` and that the body has exactly the length the
    /// header implies.
    pub fn from_bytes(bytes: &[u8]) -> Result<ExtendMsg> {
        let mut msg = ExtendMsg::empty();
        msg.decode(bytes)?;
        Ok(msg)
    }

    /// [`ExtendMsg::from_bytes`] into this message's buffers (reused from
    /// batch to batch). On an error its contents are unspecified.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<()> {
        let mut r = Reader::new(Self::WHAT, tag::SOFT_EXTEND, bytes)?;
        let first = r.u64()?;
        let count = r.count(MAX_BATCH as u64, "the number of OTs")?;
        if count == 0 {
            return Err(Error::Invalid {
                what: Self::WHAT,
                detail: "a batch of zero OTs".into(),
            });
        }
        let k = r.count(8, "the piece size k")?;
        if !valid_k(k) {
            return Err(Error::Invalid {
                what: Self::WHAT,
                detail: format!("piece size k = {k}; 1, 2, 4 or 8 bits"),
            });
        }
        let nsetup = r.count(KAPPA as u64 * 2, "the number of setup blocks")?;
        if nsetup != 0 && nsetup != setup_blocks(k) {
            return Err(Error::Invalid {
                what: Self::WHAT,
                detail: format!(
                    "{nsetup} setup blocks; 0 or {} for k = {k}",
                    setup_blocks(k)
                ),
            });
        }
        let blocks = count.div_ceil(128) * (KAPPA / k);
        r.expect_remaining(size_of_items(Self::WHAT, nsetup + blocks, 16)?)?;
        r.blocks_into(nsetup, &mut self.setup)?;
        r.blocks_into(blocks, &mut self.u)?;
        r.finish()?;
        self.k = k;
        self.first = first;
        self.count = count;
        Ok(())
    }
}

/// The extension receiver after its first step (base-OT sender).
#[derive(Debug)]
pub struct ReceiverSetup {
    base: BaseSender,
    k: usize,
}

/// The extension receiver (VOLE prover), ready to extend.
pub struct Receiver {
    k: usize,
    /// The keys of the leaves (their PRGs), piece by piece, each piece's
    /// in leaf order.
    leaves: MultiKeyAes,
    /// The GGM corrections, until the first batch carries them.
    setup: Vec<Block>,
    next: u64,
    /// Scratch: the packed choice bits of the current batch.
    packed: Vec<Block>,
}

/// The extension sender (VOLE verifier), ready to extend once the first
/// batch brings the setup.
pub struct Sender {
    k: usize,
    delta: Block,
    /// All ones in column `c` if bit `c` of `Δ` is set, else zero.
    masks: Vec<Block>,
    /// The chosen base keys `k^{¬Δ}`, until the setup arrives.
    keys: Vec<Block>,
    /// The keys (PRGs) of leaves `y ⊕ Δ_i` for `y = 0 .. 2^k`, piece by
    /// piece, `y = 0` a hole; `None` until the setup arrives.
    leaves: Option<MultiKeyAes>,
    next: u64,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("softspoken::Receiver")
            .field("k", &self.k)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("softspoken::Sender")
            .field("k", &self.k)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.setup.zeroize();
        self.packed.zeroize();
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.delta.zeroize();
        self.masks.zeroize();
        self.keys.zeroize();
    }
}

impl Receiver {
    /// The prover from its 128 base-OT key pairs (`k` per piece).
    fn from_keys(keys: &[[Block; 2]], k: usize) -> Result<Receiver> {
        if !valid_k(k) || keys.len() != KAPPA {
            return Err(Error::Input {
                what: "softspoken::Receiver",
                detail: format!(
                    "{} base OTs with k = {k}; {KAPPA} and k of 1, 2, 4 or 8",
                    keys.len()
                ),
            });
        }
        let mut seeds = Vec::with_capacity((KAPPA / k) << k);
        let mut setup = Vec::with_capacity(setup_blocks(k));
        for piece in keys.chunks_exact(k) {
            let (mut leaves, corrections) = prover_tree(piece);
            seeds.extend_from_slice(&leaves);
            setup.extend_from_slice(&corrections);
            leaves.zeroize();
        }
        let leaves = MultiKeyAes::new(&seeds);
        seeds.zeroize();
        Ok(Receiver {
            k,
            leaves,
            setup,
            next: 0,
            packed: Vec::new(),
        })
    }

    /// A receiver whose 128 base OTs are random OTs it *sent* earlier
    /// (pads of another extension running the other way), as
    /// [`Receiver::from_random_ots`]; piece size [`K`].
    pub fn from_random_ots(pads: &[[Block; 2]]) -> Result<Receiver> {
        if pads.len() != KAPPA {
            return Err(Error::Input {
                what: "softspoken::Receiver::from_random_ots",
                detail: format!("{} random OTs, an extension needs {KAPPA}", pads.len()),
            });
        }
        Receiver::from_keys(pads, K)
    }

    /// Step 1 (receiver): start the 128 base OTs. Send the hello to the
    /// sender.
    pub fn setup<R: CryptoRng + ?Sized>(rng: &mut R) -> Result<(ReceiverSetup, BaseHello)> {
        Receiver::setup_with_k(K, rng)
    }

    /// [`Receiver::setup`] with piece size `k` (1, 2, 4 or 8; the sender
    /// must use the same).
    pub fn setup_with_k<R: CryptoRng + ?Sized>(
        k: usize,
        rng: &mut R,
    ) -> Result<(ReceiverSetup, BaseHello)> {
        if !valid_k(k) {
            return Err(Error::Input {
                what: "softspoken::Receiver::setup_with_k",
                detail: format!("k = {k}; 1, 2, 4 or 8"),
            });
        }
        let (base, hello) = BaseSender::new(KAPPA, rng)?;
        Ok((ReceiverSetup { base, k }, hello))
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

    /// [`Receiver::extend`] into buffers reused from an earlier batch.
    pub fn extend_into(
        &mut self,
        choices: &[bool],
        msg: &mut ExtendMsg,
        cots: &mut ReceiverCots,
    ) -> Result<()> {
        let n = choices.len();
        check_batch(n)?;
        reset_secret_buffer(&mut self.packed, n.div_ceil(128));
        pack_bits_into(choices, &mut self.packed);
        reset_secret_buffer(&mut cots.choices, n);
        cots.choices.extend_from_slice(choices);
        self.extend_packed(n, msg, cots);
        Ok(())
    }

    /// The batch of `n` OTs whose choice bits are in `self.packed` (zero
    /// past `n`) and in `cots.choices`.
    fn extend_packed(&mut self, n: usize, msg: &mut ExtendMsg, cots: &mut ReceiverCots) {
        let (k, pieces) = (self.k, KAPPA / self.k);
        let leaves = 1usize << k;
        let nblocks = n.div_ceil(128);
        let mut r = std::mem::take(&mut self.packed);
        // Both outputs are written in place, 128 OTs at a time (a reused
        // buffer is only resized, not cleared and refilled).
        let u = &mut msg.u;
        u.resize(nblocks * pieces, Block::ZERO);
        let t = &mut cots.t;
        resize_secret_buffer(t, nblocks * 128);
        let pos = (self.next / 128) as u128;
        let mut cols = [[Block::ZERO; CHUNK]; KAPPA];
        let mut usum = [[Block::ZERO; CHUNK]; KAPPA];
        let mut g = vec![Block::ZERO; CHUNK * leaves * pieces_per_call(k)];
        for cb in (0..nblocks).step_by(CHUNK) {
            let w = CHUNK.min(nblocks - cb);
            prover_pieces(
                &self.leaves,
                k,
                pos + cb as u128,
                w,
                &mut g,
                &mut usum[..pieces],
                &mut cols,
            );
            for b in 0..w {
                let ub = &mut u[(cb + b) * pieces..(cb + b + 1) * pieces];
                for (i, x) in ub.iter_mut().enumerate() {
                    *x = usum[i][b] ^ r[cb + b];
                }
                let m = group_of(t, cb + b);
                for (c, row) in m.iter_mut().enumerate() {
                    *row = cols[c][b];
                }
                transpose128(m);
            }
        }
        cols.zeroize();
        usum.zeroize();
        g.zeroize();
        r.zeroize();
        self.packed = r;
        t.truncate(n);
        msg.setup.clear();
        msg.setup.append(&mut self.setup);
        let first = self.next;
        cots.first = first;
        cots.at = 0;
        msg.k = k;
        msg.first = first;
        msg.count = n;
        self.next += (nblocks * 128) as u64;
    }

    /// One batch of `n` COTs with uniformly random choice bits.
    pub fn extend_random<R: CryptoRng + ?Sized>(
        &mut self,
        n: usize,
        rng: &mut R,
    ) -> Result<(ExtendMsg, ReceiverCots)> {
        let mut msg = ExtendMsg::empty();
        let mut cots = ReceiverCots::empty();
        self.extend_random_into(n, rng, &mut msg, &mut cots)?;
        Ok((msg, cots))
    }

    /// [`Receiver::extend_random`] into buffers reused from an earlier
    /// batch. Choice bit `j` is bit `j % 8` of byte `j / 8` of
    /// `n.div_ceil(8)` bytes from `rng`, packed as drawn.
    pub fn extend_random_into<R: CryptoRng + ?Sized>(
        &mut self,
        n: usize,
        rng: &mut R,
        msg: &mut ExtendMsg,
        cots: &mut ReceiverCots,
    ) -> Result<()> {
        check_batch(n)?;
        let mut bytes = vec![0u8; n.div_ceil(8)];
        rng.fill_bytes(&mut bytes);
        if !n.is_multiple_of(8) {
            // The draw's bits past n are not choices: packed as zeros.
            bytes[n / 8] &= (1u8 << (n % 8)) - 1;
        }
        let r = &mut self.packed;
        reset_secret_buffer(r, n.div_ceil(128));
        r.extend(bytes.chunks(16).map(|c| {
            let mut b = [0u8; 16];
            b[..c.len()].copy_from_slice(c);
            let block = Block::from_bytes(b);
            b.zeroize();
            block
        }));
        reset_secret_buffer(&mut cots.choices, n);
        cots.choices
            .extend((0..n).map(|j| (bytes[j / 8] >> (j % 8)) & 1 == 1));
        bytes.zeroize();
        self.extend_packed(n, msg, cots);
        Ok(())
    }
}

/// A batch size the extension takes (1 to [`MAX_BATCH`]).
fn check_batch(n: usize) -> Result<()> {
    if n == 0 || n > MAX_BATCH {
        return Err(Error::Input {
            what: "softspoken::Receiver::extend",
            detail: format!("{n} OTs requested; between 1 and {MAX_BATCH} per batch"),
        });
    }
    Ok(())
}

impl ReceiverSetup {
    /// Step 3 (receiver): finish the base OTs with the sender's reply and
    /// build the GGM trees (their corrections go with the first batch).
    pub fn finish(self, reply: &BaseReply) -> Result<Receiver> {
        let mut keys = self.base.finish(reply)?;
        let out = Receiver::from_keys(&keys, self.k);
        keys.zeroize();
        out
    }
}

impl Sender {
    /// The sender from `Δ` and its chosen base keys `k^{¬Δ}`.
    fn from_keys(delta: Block, keys: Vec<Block>, k: usize) -> Sender {
        let masks = (0..KAPPA)
            .map(|c| Block::ONES.select(delta.bit(c)))
            .collect();
        Sender {
            k,
            delta,
            masks,
            keys,
            leaves: None,
            next: 0,
        }
    }

    /// The sender matching [`Receiver::from_random_ots`]: the 128 random
    /// OTs it *received*. `Δ` is the complement of the uniform choices (a
    /// verifier chooses the keys off its path), the chosen pads are the
    /// base keys.
    pub fn from_random_ots(choices: &[bool], pads: &[Block]) -> Result<Sender> {
        if choices.len() != KAPPA || pads.len() != KAPPA {
            return Err(Error::Input {
                what: "softspoken::Sender::from_random_ots",
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
                .fold(0u128, |d, (i, &c)| d | (u128::from(!c) << i)),
        );
        Ok(Sender::from_keys(delta, pads.to_vec(), K))
    }

    /// Step 2 (sender): draw `Δ` and answer the receiver's hello.
    pub fn setup<R: CryptoRng + ?Sized>(
        hello: &BaseHello,
        rng: &mut R,
    ) -> Result<(Sender, BaseReply)> {
        Sender::setup_with_k(hello, K, rng)
    }

    /// [`Sender::setup`] with piece size `k` (the receiver's).
    pub fn setup_with_k<R: CryptoRng + ?Sized>(
        hello: &BaseHello,
        k: usize,
        rng: &mut R,
    ) -> Result<(Sender, BaseReply)> {
        if !valid_k(k) {
            return Err(Error::Input {
                what: "softspoken::Sender::setup_with_k",
                detail: format!("k = {k}; 1, 2, 4 or 8"),
            });
        }
        if hello.count() != KAPPA {
            return Err(Error::Mismatch {
                what: "base OT hello",
                detail: format!(
                    "{} base OTs offered, OT extension needs {KAPPA}",
                    hello.count()
                ),
            });
        }
        let delta = Block::random(rng);
        let mut choices: Vec<bool> = (0..KAPPA).map(|c| !delta.bit(c)).collect();
        let (keys, reply) = base::receive(hello, &choices, rng)?;
        choices.zeroize();
        Ok((Sender::from_keys(delta, keys, k), reply))
    }

    /// The global correlation `Δ`.
    pub fn delta(&self) -> Block {
        self.delta
    }

    /// Index of the next OT this sender expects.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// Builds the punctured trees from the receiver's corrections.
    fn absorb_setup(&mut self, corrections: &[Block]) {
        let k = self.k;
        let leaves = 1usize << k;
        let mut seeds = Vec::with_capacity(KAPPA / k * leaves);
        let per = 2 * (k - 1);
        for (i, keys) in self.keys.chunks_exact(k).enumerate() {
            let corr = &corrections[i * per..(i + 1) * per];
            let delta_i = ((self.delta.0 >> (i * k)) as usize) & (leaves - 1);
            let mut tree = verifier_tree(keys, delta_i, corr);
            seeds.push(None);
            seeds.extend((1..leaves).map(|y| Some(tree[y ^ delta_i])));
            tree.zeroize();
        }
        self.keys.zeroize();
        self.keys = Vec::new();
        self.leaves = Some(MultiKeyAes::new_with_holes(&seeds));
        seeds.iter_mut().flatten().for_each(Zeroize::zeroize);
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
        let (k, pieces) = (self.k, KAPPA / self.k);
        if msg.k != k {
            return Err(Error::Mismatch {
                what: ExtendMsg::WHAT,
                detail: format!("piece size k = {}, this sender uses k = {k}", msg.k),
            });
        }
        let ready = self.leaves.is_some();
        match (ready, msg.setup.len()) {
            (false, s) if s == setup_blocks(k) => self.absorb_setup(&msg.setup),
            (true, 0) => {}
            (false, _) => {
                return Err(Error::Mismatch {
                    what: ExtendMsg::WHAT,
                    detail: "the extension's first batch carries no setup".into(),
                })
            }
            (true, _) => {
                return Err(Error::Mismatch {
                    what: ExtendMsg::WHAT,
                    detail: "a second setup for an extension already set up".into(),
                })
            }
        }
        let n = msg.count;
        let nblocks = n.div_ceil(128);
        if msg.u.len() != nblocks * pieces {
            return Err(Error::Input {
                what: "softspoken::Sender::extend",
                detail: format!("a message for {n} OTs with {} blocks", msg.u.len()),
            });
        }
        let leaves = self.leaves.as_ref().expect("set up just above");
        let mut g = vec![Block::ZERO; (CHUNK << k) * pieces_per_call(k)];
        let q = &mut cots.q;
        resize_secret_buffer(q, nblocks * 128);
        let pos = (self.next / 128) as u128;
        let mut cols = [[Block::ZERO; CHUNK]; KAPPA];
        for cb in (0..nblocks).step_by(CHUNK) {
            let w = CHUNK.min(nblocks - cb);
            verifier_pieces(leaves, k, pos + cb as u128, w, &mut g, &mut cols);
            let group = &msg.u[cb * pieces..(cb + w) * pieces];
            for (b, u) in group.chunks_exact(pieces).enumerate() {
                let m = group_of(q, cb + b);
                for (c, row) in m.iter_mut().enumerate() {
                    *row = cols[c][b] ^ (u[c / k] & self.masks[c]);
                }
                transpose128(m);
            }
        }
        cols.zeroize();
        g.zeroize();
        q.truncate(n);
        self.next += (nblocks * 128) as u64;
        cots.first = msg.first;
        cots.at = 0;
        cots.delta = self.delta;
        Ok(())
    }
}

/// Both setups in one process, for tests and benchmarks.
pub fn setup_pair_for_tests<R: CryptoRng + ?Sized>(rng: &mut R) -> (Sender, Receiver) {
    setup_pair_with_k_for_tests(K, rng)
}

/// [`setup_pair_for_tests`] with piece size `k`.
pub fn setup_pair_with_k_for_tests<R: CryptoRng + ?Sized>(
    k: usize,
    rng: &mut R,
) -> (Sender, Receiver) {
    let (rs, hello) = Receiver::setup_with_k(k, rng).expect("128 base OTs");
    let (sender, reply) = Sender::setup_with_k(&hello, k, rng).expect("fresh hello");
    let receiver = rs.finish(&reply).expect("fresh reply");
    (sender, receiver)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    fn pair_k(k: usize, seed: u64) -> (Sender, Receiver, rand_chacha::ChaCha20Rng) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let (rs, hello) = Receiver::setup_with_k(k, &mut rng).unwrap();
        let hello = BaseHello::from_bytes(&hello.to_bytes()).unwrap();
        let (s, reply) = Sender::setup_with_k(&hello, k, &mut rng).unwrap();
        let reply = BaseReply::from_bytes(&reply.to_bytes()).unwrap();
        let r = rs.finish(&reply).unwrap();
        (s, r, rng)
    }

    fn pair(seed: u64) -> (Sender, Receiver, rand_chacha::ChaCha20Rng) {
        pair_k(K, seed)
    }

    fn check(s: &Sender, sc: &SenderCots, rc: &ReceiverCots, what: &str) {
        assert_eq!(sc.len(), rc.len(), "{what}");
        assert_eq!(sc.first(), rc.first(), "{what}");
        for j in 0..sc.len() {
            let want = sc.q()[j] ^ s.delta().select(rc.choices()[j]);
            assert_eq!(rc.t()[j], want, "{what}, OT {j}");
        }
    }

    #[test]
    fn punctured_tree_matches_the_provers_but_at_delta() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
        for k in 1..=8usize {
            let keys: Vec<[Block; 2]> = (0..k)
                .map(|_| [Block::random(&mut rng), Block::random(&mut rng)])
                .collect();
            let (leaves, corr) = prover_tree(&keys);
            assert_eq!((leaves.len(), corr.len()), (1 << k, 2 * (k - 1)));
            // Distinct leaves (a collision would mean a broken expansion).
            let set: std::collections::HashSet<u128> = leaves.iter().map(|b| b.0).collect();
            assert_eq!(set.len(), 1 << k, "k = {k}");
            let deltas: Vec<usize> = if k <= 4 {
                (0..1 << k).collect()
            } else {
                (0..6).map(|_| rng.random_range(0..1usize << k)).collect()
            };
            for delta in deltas {
                let chosen: Vec<Block> = (0..k).map(|d| keys[d][((delta >> d) & 1) ^ 1]).collect();
                let tree = verifier_tree(&chosen, delta, &corr);
                for x in 0..1usize << k {
                    if x == delta {
                        assert_ne!(tree[x], leaves[x], "k {k}: the punctured leaf is computed");
                        assert_eq!(tree[x], Block::ZERO);
                    } else {
                        assert_eq!(tree[x], leaves[x], "k {k}, Δ_i {delta}, leaf {x}");
                    }
                }
                // The key on the path (the one not chosen) is what the
                // punctured leaf needs: with the wrong keys the verifier
                // gets other leaves.
                let wrong: Vec<Block> = (0..k).map(|d| keys[d][(delta >> d) & 1]).collect();
                if k > 1 {
                    let bad = verifier_tree(&wrong, delta, &corr);
                    assert!((0..1 << k).any(|x| x != delta && bad[x] != leaves[x]));
                }
            }
        }
    }

    #[test]
    fn each_piece_is_a_small_field_vole() {
        // W_l = V_l ⊕ Δ_{i,l}·u for every Δ_i, at two PRG positions.
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(12);
        for k in [1usize, 2, 3, 4] {
            let seeds: Vec<Block> = (0..1 << k).map(|_| Block::random(&mut rng)).collect();
            let prover = MultiKeyAes::new(&seeds);
            for start in [0u128, 77] {
                let w = 5;
                let mut u = [[Block::ZERO; CHUNK]];
                let mut v = vec![[Block::ZERO; CHUNK]; k];
                let mut g = vec![Block::ZERO; CHUNK << k];
                prover_pieces(&prover, k, start, w, &mut g, &mut u, &mut v);
                let u = u[0];
                assert_ne!(u[0], Block::ZERO);
                for delta in 0..1usize << k {
                    let verifier = MultiKeyAes::new_with_holes(
                        &(0..1usize << k)
                            .map(|y| (y != 0).then_some(seeds[y ^ delta]))
                            .collect::<Vec<_>>(),
                    );
                    let mut wcols = vec![[Block::ZERO; CHUNK]; k];
                    verifier_pieces(&verifier, k, start, w, &mut g, &mut wcols);
                    for l in 0..k {
                        for b in 0..w {
                            let want = v[l][b] ^ u[b].select((delta >> l) & 1 == 1);
                            assert_eq!(wcols[l][b], want, "k {k} Δ_i {delta} l {l} b {b}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn correlation_holds_across_batches_and_sizes_for_every_k() {
        for k in [1usize, 2, 4, 8] {
            let (mut s, mut r, mut rng) = pair_k(k, k as u64);
            for (at, n) in [1usize, 127, 128, 129, 1000, 1024, 1025, 5000]
                .into_iter()
                .enumerate()
            {
                let (msg, rc) = r.extend_random(n, &mut rng).unwrap();
                assert_eq!(msg.has_setup(), at == 0 && k > 1);
                let bytes = msg.to_bytes();
                let want = 1 + 32 + n.div_ceil(128) * (128 / k) * 16;
                let setup = if at == 0 { setup_blocks(k) * 16 } else { 0 };
                assert_eq!(bytes.len(), want + setup, "k {k} n {n}");
                let msg = ExtendMsg::from_bytes(&bytes).unwrap();
                let sc = s.extend(&msg).unwrap();
                assert_eq!(sc.len(), n);
                check(&s, &sc, &rc, &format!("k {k} n {n}"));
            }
            assert_eq!(s.next_index(), r.next_index());
        }
        assert_eq!(ExtendMsg::encoded_len(300), 1 + 32 + 3 * 32 * 16);
        assert_eq!(ExtendMsg::SETUP_BYTES, setup_blocks(K) * 16);
    }

    #[test]
    fn k_1_is_iknp() {
        // With one bit per piece the receiver sends G(s_0) ⊕ G(s_1) ⊕ r,
        // IKNP's column: 128 bits per OT.
        let (mut s, mut r, mut rng) = pair_k(1, 21);
        let (msg, rc) = r.extend_random(256, &mut rng).unwrap();
        assert_eq!(msg.u.len(), 2 * 128);
        assert!(msg.setup.is_empty() && setup_blocks(1) == 0);
        let sc = s.extend(&msg).unwrap();
        check(&s, &sc, &rc, "k 1");
    }

    #[test]
    fn extreme_choices_and_delta_bits() {
        let (mut s, mut r, _) = pair(13);
        for choices in [vec![false; 700], vec![true; 700]] {
            let (msg, rc) = r.extend(&choices).unwrap();
            let sc = s.extend(&msg).unwrap();
            check(&s, &sc, &rc, "constant choices");
            if choices[0] {
                assert!(rc.t().iter().zip(sc.q()).all(|(&t, &q)| t ^ q == s.delta()));
            } else {
                assert_eq!(rc.t(), sc.q());
            }
        }
        // Δ is uniform: about half its bits set.
        let ones = s.delta().0.count_ones();
        assert!((32..=96).contains(&ones), "{ones}");
    }

    #[test]
    fn a_reverse_extension_bootstraps_from_forward_random_ots() {
        let (mut s, mut r, mut rng) = pair(9);
        let (msg, rc) = r.extend_random(KAPPA, &mut rng).unwrap();
        let sc = s.extend(&msg).unwrap();
        let mut rev_s = Sender::from_random_ots(rc.choices(), &rc.random_ot()).unwrap();
        let mut rev_r = Receiver::from_random_ots(&sc.random_ot()).unwrap();
        for n in [1usize, 300, 4096] {
            let (msg, rrc) = rev_r.extend_random(n, &mut rng).unwrap();
            let msg = ExtendMsg::from_bytes(&msg.to_bytes()).unwrap();
            let rsc = rev_s.extend(&msg).unwrap();
            check(&rev_s, &rsc, &rrc, &format!("reverse, n {n}"));
        }
        // Δ' is the complement of the forward choices.
        let choices = Block(
            rc.choices()
                .iter()
                .enumerate()
                .fold(0u128, |d, (i, &c)| d | (u128::from(c) << i)),
        );
        assert_eq!(rev_s.delta(), Block(!choices.0));
        assert!(Receiver::from_random_ots(&sc.random_ot()[..127]).is_err());
        assert!(Sender::from_random_ots(&rc.choices()[..5], &rc.random_ot()).is_err());
    }

    #[test]
    fn reused_buffers_give_the_same_correlation() {
        let (mut s, mut r, _) = pair(5);
        let mut msg = ExtendMsg::empty();
        let mut rc = ReceiverCots::empty();
        let mut sc = SenderCots::empty();
        for n in [3000usize, 10, 129, 2048, 1] {
            let choices: Vec<bool> = (0..n).map(|j| (j * 5 + n) % 7 < 3).collect();
            r.extend_into(&choices, &mut msg, &mut rc).unwrap();
            s.extend_into(&msg, &mut sc).unwrap();
            assert_eq!(rc.choices(), &choices[..]);
            check(&s, &sc, &rc, &format!("n {n}"));
        }
    }

    #[test]
    fn out_of_order_batches_and_setups_are_refused() {
        let (mut s, mut r, mut rng) = pair(2);
        let (m1, _) = r.extend_random(10, &mut rng).unwrap();
        let (m2, _) = r.extend_random(10, &mut rng).unwrap();
        assert!(matches!(s.extend(&m2), Err(Error::Mismatch { .. })));
        // The first batch without its setup, then with a second setup.
        let mut bare = m1.clone();
        bare.setup.clear();
        assert!(matches!(s.extend(&bare), Err(Error::Mismatch { .. })));
        s.extend(&m1).unwrap();
        let mut again = m2.clone();
        again.setup = m1.setup.clone();
        assert!(matches!(s.extend(&again), Err(Error::Mismatch { .. })));
        s.extend(&m2).unwrap();
        assert!(matches!(s.extend(&m2), Err(Error::Mismatch { .. })));
        // Another piece size.
        let (mut s2, mut r2, mut rng2) = pair_k(2, 3);
        let (m, _) = r2.extend_random(10, &mut rng2).unwrap();
        let mut other = m.clone();
        other.k = 4;
        assert!(matches!(s2.extend(&other), Err(Error::Mismatch { .. })));
        s2.extend(&m).unwrap();
    }

    #[test]
    fn malformed_extend_messages_are_errors() {
        let (_, mut r, mut rng) = pair(3);
        let (first, _) = r.extend_random(200, &mut rng).unwrap();
        let (m, _) = r.extend_random(200, &mut rng).unwrap();
        let bytes = m.to_bytes();
        assert_eq!(bytes.len(), ExtendMsg::encoded_len(200));
        assert_eq!(
            first.to_bytes().len(),
            ExtendMsg::encoded_len(200) + ExtendMsg::SETUP_BYTES
        );
        assert!(matches!(
            ExtendMsg::from_bytes(&bytes[..bytes.len() - 1]),
            Err(Error::Length { .. })
        ));
        let field = |at: usize, v: u64| {
            let mut b = bytes.clone();
            b[at..at + 8].copy_from_slice(&v.to_le_bytes());
            ExtendMsg::from_bytes(&b)
        };
        assert!(matches!(field(9, 0), Err(Error::Invalid { .. })));
        assert!(matches!(field(9, 1 << 40), Err(Error::Invalid { .. })));
        assert!(matches!(field(9, 300), Err(Error::Length { .. })));
        for bad_k in [0u64, 3, 5, 16, u64::MAX] {
            assert!(
                matches!(field(17, bad_k), Err(Error::Invalid { .. })),
                "{bad_k}"
            );
        }
        // k = 2 needs twice the blocks.
        assert!(matches!(field(17, 2), Err(Error::Length { .. })));
        assert!(matches!(field(25, 7), Err(Error::Invalid { .. })));
        assert!(matches!(field(25, 1 << 50), Err(Error::Invalid { .. })));
        assert!(matches!(
            field(25, setup_blocks(K) as u64),
            Err(Error::Length { .. })
        ));
        let mut wrong_tag = bytes.clone();
        // IKNP's tag: the engines' messages never pass for each other.
        wrong_tag[0] = 0x03;
        assert!(matches!(
            ExtendMsg::from_bytes(&wrong_tag),
            Err(Error::Tag { .. })
        ));
        assert!(ExtendMsg::from_bytes(&[]).is_err());
        // Every truncation of a first message is an error, never a panic.
        let fb = first.to_bytes();
        for cut in 0..fb.len() {
            assert!(ExtendMsg::from_bytes(&fb[..cut]).is_err(), "{cut}");
        }
    }

    #[test]
    fn take_splits_with_global_indices() {
        let (mut s, mut r, mut rng) = pair(4);
        let (m, mut rc) = r.extend_random(300, &mut rng).unwrap();
        let mut sc = s.extend(&m).unwrap();
        let (sh, rh) = (sc.take(100).unwrap(), rc.take(100).unwrap());
        assert_eq!(
            (sh.first(), sc.first(), rh.first(), rc.first()),
            (0, 100, 0, 100)
        );
        check(&s, &sc, &rc, "rest");
        check(&s, &sh, &rh, "head");
    }

    #[test]
    fn parts_and_takes_see_the_same_ots() {
        let (mut s, mut r, mut rng) = pair(14);
        let (m, mut rc) = r.extend_random(1000, &mut rng).unwrap();
        let mut sc = s.extend(&m).unwrap();
        let (sv, rv) = (sc.clone(), rc.clone());
        let mut at = 0;
        for n in [1usize, 63, 64, 300, 0, 572] {
            let (sp, rp) = (sv.part(at, n).unwrap(), rv.part(at, n).unwrap());
            let (sh, rh) = (sc.take(n).unwrap(), rc.take(n).unwrap());
            assert_eq!((sp.first(), sp.q()), (sh.first(), sh.q()));
            assert_eq!(
                (rp.first(), rp.t(), rp.choices()),
                (rh.first(), rh.t(), rh.choices())
            );
            assert_eq!(sp.first(), at as u64);
            // The derived OTs read the run, not the buffer around it.
            assert_eq!(sp.random_ot(), sh.random_ot());
            assert_eq!(rp.random_ot(), rh.random_ot());
            at += n;
        }
        assert!(sc.is_empty() && rc.is_empty());
        assert!(sv.part(at, 1).is_err() && rv.part(1, at).is_err());
        assert!(sv.part(usize::MAX, 2).is_err());
        assert!(sc.take(1).is_err() && rc.take(1).is_err());
    }

    #[test]
    fn random_batches_into_reused_buffers_match_fresh_ones() {
        let (mut s1, mut r1, mut rng1) = pair(15);
        let (mut s2, mut r2, mut rng2) = pair(15);
        let (mut msg, mut rc, mut sc) = (
            ExtendMsg::empty(),
            ReceiverCots::empty(),
            SenderCots::empty(),
        );
        for n in [700usize, 9, 4096, 129] {
            let (m1, rc1) = r1.extend_random(n, &mut rng1).unwrap();
            let sc1 = s1.extend(&m1).unwrap();
            r2.extend_random_into(n, &mut rng2, &mut msg, &mut rc)
                .unwrap();
            s2.extend_into(&msg, &mut sc).unwrap();
            assert_eq!(m1.to_bytes(), msg.to_bytes(), "n {n}");
            assert_eq!((rc1.t(), rc1.choices()), (rc.t(), rc.choices()));
            assert_eq!(sc1.q(), sc.q());
            check(&s2, &sc, &rc, &format!("n {n}"));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 24,
            failure_persistence: None,
            ..Default::default()
        })]

        /// Random batch sizes, choices and piece sizes, two batches each
        /// (the first with the setup).
        #[test]
        fn correlation_holds_on_random_batches(
            k in proptest::sample::select(vec![1usize, 2, 4, 8]),
            n1 in 1usize..3000,
            n2 in 1usize..3000,
            seed in proptest::prelude::any::<u64>(),
        ) {
            let (mut s, mut r, mut rng) = pair_k(k, seed);
            for n in [n1, n2] {
                let choices: Vec<bool> = (0..n).map(|_| rng.random::<bool>()).collect();
                let (msg, rc) = r.extend(&choices).unwrap();
                let sc = s.extend(&ExtendMsg::from_bytes(&msg.to_bytes()).unwrap()).unwrap();
                proptest::prop_assert_eq!(rc.choices(), &choices[..]);
                for ((&t, &q), &c) in rc.t().iter().zip(sc.q()).zip(&choices) {
                    proptest::prop_assert_eq!(t, q ^ s.delta().select(c));
                }
                proptest::prop_assert_eq!((rc.len(), sc.len()), (n, n));
            }
        }
    }

    /// The extension's outputs for fixed seeds, pinned: a faster AES
    /// backend or a reordered piece loop must give the very same COTs and
    /// messages (digest recorded before the VAES backend landed).
    #[test]
    fn outputs_are_pinned_for_fixed_seeds() {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        for k in [1usize, 2, 4, 8] {
            let (mut s, mut r, mut rng) = pair_k(k, 77);
            for n in [1usize, 1000, 70_000] {
                let (msg, rc) = r.extend_random(n, &mut rng).unwrap();
                let sc = s.extend(&msg).unwrap();
                hash.update(msg.to_bytes());
                for (&t, &q) in rc.t().iter().zip(sc.q()) {
                    hash.update(t.to_bytes());
                    hash.update(q.to_bytes());
                }
                // The random OTs: the fixed-key hash of both sides.
                for (&t, &[p0, p1]) in rc.random_ot().iter().zip(&sc.random_ot()) {
                    hash.update(t.to_bytes());
                    hash.update(p0.to_bytes());
                    hash.update(p1.to_bytes());
                }
            }
        }
        let digest: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            digest,
            "3b3097889e1702990d56330bbe7483ee8bfcbce03698b5801c77413430a02cae"
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let (s, r, _) = pair(6);
        assert_eq!(format!("{s:?}"), "softspoken::Sender { k: 4, next: 0, .. }");
        assert_eq!(
            format!("{r:?}"),
            "softspoken::Receiver { k: 4, next: 0, .. }"
        );
    }
}
