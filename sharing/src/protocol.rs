//! The online protocols of one computing party.
//!
//! Primitive steps are explicit round functions:
//!
//! | operation | round 1 (send) | round 2 (receive peer's message) |
//! |---|---|---|
//! | open | [`Share::open_msg`] | [`Share::open_finish`] |
//! | Beaver product (elementwise or matmul) | [`Engine::mul_round1`] / [`Engine::matmul_round1`] → [`BeaverMsg`] | [`Engine::mul_round2`] |
//! | truncation with dealer triple | [`Engine::trunc_round1`] → [`OpenMsg`] | [`Engine::trunc_round2`] |
//! | local (SecureML) truncation | [`Engine::trunc_local`] (no communication) | |
//!
//! Composite protocols (fixed-point products, polynomials) are written per
//! party against [`Exchange`], which swaps one [`Message`] with the peer.
//!
//! ## Truncation
//!
//! A product of two fixed-point values carries `2f` fractional bits and is
//! truncated by `f` bits.
//!
//! *Dealer truncation* ([`TruncMode::Dealer`]) uses a triple `(r, r>>f,
//! msb(r))` with `r` uniform over Z_2^64. For a shared `x` with
//! `|x| < 2^62` (as a signed ring element): party 0 adds `2^62`, so
//! `x' = x + 2^62` lies in `[0, 2^63)`; both open `c = x' + r mod 2^64`,
//! which is uniformly distributed whatever `x` is (perfect masking, no
//! statistical slack needed). The wrap bit of `x' + r` is
//! `w = msb(r) * (1 - msb(c))` (because `x' < 2^63`), which is linear in the
//! shared `msb(r)`. Then
//! `(c >> f) - (r >> f) + 2^(64-f) w = (x' >> f) + e` with `e ∈ {0, 1}`
//! (the borrow of the low `f` bits), and party 0 subtracts `2^(62-f)`.
//! Result: `floor(x / 2^f) + e`, i.e. the plaintext arithmetic shift or one
//! LSB above it, never a large error.
//! Requirement: `|x| < 2^62` before truncation, i.e. for `f = 16` the real
//! product must be below `2^30` in magnitude. One round.
//!
//! *Two-party truncation* ([`TruncMode::DaBits`], no dealer): the
//! "truncation with a known MSB" of Cheetah (Huang et al., USENIX Security
//! 2022, §4.2; the wrap computation is SIRNN's, Rathee et al., S&P 2021),
//! with the one secret AND replaced by a daBit. Party 0 adds `2^62`, so the
//! shares `x0, x1` of `x' = x + 2^62 ∈ [0, 2^63)` wrap (`x0 + x1 ≥ 2^64`
//! as integers) exactly when `a ∨ b`, for `a = msb(x0)` (known to party 0)
//! and `b = msb(x1)` (party 1): if either is set and the sum did not wrap,
//! `x'` would be at least `2^63`. Then
//! `(x0 >> f) + (x1 >> f) − 2^(64−f)·w = (x' >> f) − e`, `e ∈ {0, 1}` the
//! carry of the low `f` bits, and `2^(64−f)·w = 2^(63−f)·(a + b + (a ⊕ b))`
//! exactly. `a ⊕ b` comes from a daBit `s = u ⊕ v` (party 0 holds `u`,
//! party 1 `v`, both an additive share of `s`): each party sends its bit
//! XOR its half (`a ⊕ u`, `b ⊕ v`: one bit per element, uniform to the
//! peer since the half is), both learn `t = a ⊕ b ⊕ s`, and
//! `a ⊕ b = t + (1 − 2t)·s` on additive shares. Party 0 finally subtracts
//! `2^(62−f)` and adds 1. Result: `floor(x / 2^f) + 1 − e`, within the same
//! one LSB above the exact shift as the dealer's. Requirement: `|x| < 2^62`.
//! One round, one bit each way per element.
//!
//! *Local truncation* ([`TruncMode::Local`], SecureML): party 0 computes
//! `x0 >> f`, party 1 computes `-((-x1) >> f)` (logical shifts). If
//! `|x| < 2^ℓ` the result is `floor(x/2^f) + e`, `e ∈ {0, 1}`, except with
//! probability about `2^(ℓ+1-64)` per element, where the result is off by
//! about `2^(64-f)` (a catastrophic error). For `f = 16` and products of
//! values below `2^8` (ℓ = 48) that is ≈ 2^-15 per element. No
//! communication.

use serde::{Deserialize, Serialize};

use super::correlations::Correlations;
use super::error::{Result, SharingError};
use super::fixed::FixedPoint;
use super::ring::RingTensor;
use super::share::{OpenMsg, Party, Share};

/// How products are truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TruncMode {
    /// Dealer-supplied truncation triples; one round, ±1 LSB.
    Dealer,
    /// SecureML local truncation; no round, small failure probability.
    /// Veil's plans never use it (the failure is a wrong answer); it stays
    /// for comparison in the benchmarks.
    Local,
    /// Two-party truncation from one daBit per element (no dealer); one
    /// round, ±1 LSB.
    DaBits,
}

/// Round-1 message of a Beaver product: my shares of `e = x - a` and
/// `f = y - b`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeaverMsg {
    pub e: OpenMsg,
    pub f: OpenMsg,
}

impl std::fmt::Debug for BeaverMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BeaverMsg")
            .field("e_shape", &self.e.shape)
            .field("f_shape", &self.f.shape)
            .finish()
    }
}

impl BeaverMsg {
    pub fn payload_bytes(&self) -> usize {
        self.e.payload_bytes() + self.f.payload_bytes()
    }
}

#[derive(Clone, PartialEq, Eq)]
enum MulKind {
    Elementwise,
    Matmul,
    /// `x ⊛ w` with a convolution triple: `e = x − a` is opened at x's
    /// size and cut into patches locally (im2col is linear).
    Conv(plan::Window),
}

/// State kept between the two rounds of an input-holder product
/// ([`Engine::holder_matmul_round1`]).
pub struct HolderState {
    party: Party,
    /// This party holds `x` (and all of `a`).
    holder: bool,
    /// The operand of round 2's product: `a` at the holder (party 0 turns
    /// it into `x` in round 2), `y` (party 0) or `b` (party 1) at the other.
    kept: RingTensor,
    c: RingTensor,
    /// Shape of the peer's masked input.
    peer_shape: Vec<usize>,
    /// A convolution's window ([`Engine::holder_conv_round1`]): round 2's
    /// product is [`super::correlations::conv_product`], not `@`.
    window: Option<plan::Window>,
}

impl std::fmt::Debug for HolderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HolderState")
            .field("party", &self.party)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

/// State kept between the two rounds of a Beaver product.
pub struct MulState {
    party: Party,
    kind: MulKind,
    a: RingTensor,
    b: RingTensor,
    c: RingTensor,
    e: RingTensor,
    f: RingTensor,
}

impl std::fmt::Debug for MulState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MulState")
            .field("party", &self.party)
            .finish_non_exhaustive()
    }
}

/// State kept between the two rounds of a dealer truncation.
pub struct TruncState {
    party: Party,
    frac_bits: u32,
    masked: RingTensor,
    r_shift: RingTensor,
    r_msb: RingTensor,
}

impl std::fmt::Debug for TruncState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TruncState")
            .field("party", &self.party)
            .finish_non_exhaustive()
    }
}

/// State kept between the two rounds of a two-party (daBit) truncation.
pub struct WrapTruncState {
    party: Party,
    frac_bits: u32,
    shape: Vec<usize>,
    /// `x_i >> f` (party 0's share with the offset added).
    shifted: Vec<u64>,
    /// This party's MSB of its share, one bit per element, packed.
    msb: Vec<u64>,
    /// The bits this party sent: `msb ⊕ u`, packed.
    sent: Vec<u64>,
    /// Additive shares of the daBits.
    dabit_arith: Vec<u64>,
}

impl std::fmt::Debug for WrapTruncState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrapTruncState")
            .field("party", &self.party)
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

/// Everything the parties exchange in the online phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Open(OpenMsg),
    Beaver(BeaverMsg),
}

impl Message {
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Open(_) => "open",
            Message::Beaver(_) => "beaver",
        }
    }
    pub fn payload_bytes(&self) -> usize {
        match self {
            Message::Open(m) => m.payload_bytes(),
            Message::Beaver(m) => m.payload_bytes(),
        }
    }
    fn into_open(self) -> Result<OpenMsg> {
        match self {
            Message::Open(m) => Ok(m),
            other => Err(SharingError::UnexpectedMessage {
                expected: "open",
                got: other.kind(),
            }),
        }
    }
    fn into_beaver(self) -> Result<BeaverMsg> {
        match self {
            Message::Beaver(m) => Ok(m),
            other => Err(SharingError::UnexpectedMessage {
                expected: "beaver",
                got: other.kind(),
            }),
        }
    }
}

/// Sends my message for the current round and returns the peer's.
pub trait Exchange {
    fn exchange(&mut self, msg: Message) -> Result<Message>;
}

/// One computing party: fixed-point format, truncation mode and its source
/// of correlated randomness.
pub struct Engine<C> {
    fp: FixedPoint,
    trunc: TruncMode,
    select: super::compare::SelectKind,
    /// The compared values of the comparisons now running lie in
    /// `[-2^compare_bits, 2^compare_bits)` ([`Engine::set_compare_bits`]).
    compare_bits: u32,
    corr: C,
}

impl<C> std::fmt::Debug for Engine<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("fp", &self.fp)
            .field("trunc", &self.trunc)
            .field("select", &self.select)
            .field("compare_bits", &self.compare_bits)
            .finish_non_exhaustive()
    }
}

fn check_party(x: &Share, p: Party) -> Result<()> {
    if x.party() != p {
        return Err(SharingError::PartyMismatch(
            "share does not belong to this engine's party",
        ));
    }
    Ok(())
}

const OFFSET_BITS: u32 = plan::params::TRUNC_OFFSET_BITS;

impl<C: Correlations> Engine<C> {
    pub fn new(fp: FixedPoint, trunc: TruncMode, corr: C) -> Self {
        Self {
            fp,
            trunc,
            select: super::compare::SelectKind::Beaver,
            compare_bits: plan::params::COMPARE_FULL_BITS,
            corr,
        }
    }
    /// The same engine with the comparisons' selects done by `select`
    /// (both parties and the preprocessing must agree on it).
    pub fn with_select(mut self, select: super::compare::SelectKind) -> Self {
        self.select = select;
        self
    }
    pub fn select_kind(&self) -> super::compare::SelectKind {
        self.select
    }
    /// From now on every value a comparison compares lies in
    /// `[-2^bits, 2^bits)` (1 ≤ `bits` ≤ 63; 63, the default, says
    /// nothing). The millionaires' comparison ([`SelectKind::Ot`]) then
    /// reads only `4L − 1` bits ([`plan::params::mill_leaves`]) and the
    /// dealer's DCF ([`SelectKind::Dcf`]) `bits`; the dealer's carry tree
    /// reads all 64. A value outside the bound gives a
    /// wrong bit: the caller vouches for it (the compiler's range
    /// analysis, on inputs the runtime checked). Both parties and the
    /// preprocessing must use the same bound.
    ///
    /// [`SelectKind::Ot`]: super::compare::SelectKind::Ot
    /// [`SelectKind::Dcf`]: super::compare::SelectKind::Dcf
    pub fn set_compare_bits(&mut self, bits: u32) -> Result<()> {
        if !(1..=plan::params::COMPARE_FULL_BITS).contains(&bits) {
            return Err(SharingError::BadParameter(
                "comparison width must be 1 to 63 bits",
            ));
        }
        self.compare_bits = bits;
        Ok(())
    }
    pub fn compare_bits(&self) -> u32 {
        self.compare_bits
    }
    pub fn party(&self) -> Party {
        self.corr.party()
    }
    pub fn fixed_point(&self) -> FixedPoint {
        self.fp
    }
    pub fn trunc_mode(&self) -> TruncMode {
        self.trunc
    }
    pub fn correlations(&self) -> &C {
        &self.corr
    }
    pub fn correlations_mut(&mut self) -> &mut C {
        &mut self.corr
    }
    pub fn into_correlations(self) -> C {
        self.corr
    }

    // ---------------------------------------------------------------- rounds

    /// Round 1 of an elementwise ring product `x * y` (no truncation).
    pub fn mul_round1(&mut self, x: &Share, y: &Share) -> Result<(MulState, BeaverMsg)> {
        if x.shape() != y.shape() {
            return Err(SharingError::ShapeMismatch {
                op: "mul",
                left: x.shape().to_vec(),
                right: y.shape().to_vec(),
            });
        }
        let t = self.corr.elementwise_triple(x.shape())?;
        self.round1(MulKind::Elementwise, x, y, t)
    }

    /// Round 1 of a ring matrix product `x @ y` with one matrix triple
    /// (shapes `[m,k]@[k,n]`, `[m,k]@[k]`, `[k]@[k]`).
    pub fn matmul_round1(&mut self, x: &Share, y: &Share) -> Result<(MulState, BeaverMsg)> {
        RingTensor::matmul_shape(x.shape(), y.shape())?;
        let t = self.corr.matmul_triple(x.shape(), y.shape())?;
        self.round1(MulKind::Matmul, x, y, t)
    }

    /// Round 1 of a convolution `x ⊛ y` (`x` of `[batch, C, S...]`, `y` of
    /// `[C·K, O]`, or with groups `[O, C/groups·K]`: see
    /// [`super::correlations::conv_product`]) with one convolution triple:
    /// the message opens `x − a` and `y − b`, |x| + |y| elements rather than
    /// the patches'.
    pub fn conv_round1(
        &mut self,
        x: &Share,
        y: &Share,
        window: &plan::Window,
    ) -> Result<(MulState, BeaverMsg)> {
        super::correlations::conv_out_shape(x.shape(), window, y.shape())?;
        let t = self.corr.conv_triple(x.shape(), window, y.shape())?;
        self.round1(MulKind::Conv(window.clone()), x, y, t)
    }

    /// Round 1 of `x @ y` with an input-holder triple: `x` is in the clear
    /// at `a_holder` and `y` at the other party, so the holder's share of
    /// `a` is all of `a` and the other's share of `b` all of `b` (the missing
    /// halves are zero). Each party sends only its own masked input:
    /// `e = x − a` from the holder, `f = y − b` from the other.
    ///
    /// With `z_i = c_i + e·b_i + a_i·f (+ e·f at party 0)` and the zero
    /// halves dropped, each party needs one product in round 2: the holder
    /// `c + a·f`, or `c + x·f` if it is party 0 (`a + e = x`); the other
    /// `c + e·b`, or `c + e·y` if it is party 0. Only the holder's `x` and the
    /// other's `y` are read; the zero shares of the other operand are not.
    pub fn holder_matmul_round1(
        &mut self,
        x: &Share,
        y: &Share,
        a_holder: Party,
    ) -> Result<(HolderState, OpenMsg)> {
        self.holder_round1(x, y, None, a_holder)
    }

    /// Round 1 of a convolution `x ⊛ y` (shapes as for
    /// [`Engine::conv_round1`]) with an input-holder convolution triple
    /// ([`CorrelationRequest::HolderConvTriple`]): as
    /// [`Engine::holder_matmul_round1`], but the holder's `x − a` is the
    /// input's size, not its patches', and round 2's products are
    /// convolutions (im2col is linear, so `e` and `a` are cut into patches
    /// there, locally).
    ///
    /// [`CorrelationRequest::HolderConvTriple`]: super::correlations::CorrelationRequest::HolderConvTriple
    pub fn holder_conv_round1(
        &mut self,
        x: &Share,
        y: &Share,
        window: &plan::Window,
        a_holder: Party,
    ) -> Result<(HolderState, OpenMsg)> {
        self.holder_round1(x, y, Some(window), a_holder)
    }

    fn holder_round1(
        &mut self,
        x: &Share,
        y: &Share,
        window: Option<&plan::Window>,
        a_holder: Party,
    ) -> Result<(HolderState, OpenMsg)> {
        check_party(x, self.party())?;
        let t = self.holder_triple(x.shape(), y, window, a_holder)?;
        let p = self.party();
        let holder = p == a_holder;
        let (sent, kept) = if holder {
            // Party 0 needs x = a + e in round 2: it rebuilds it there from
            // the message it sent, rather than copying x now.
            (x.value().sub(t.a.value())?, t.a.into_value())
        } else {
            let f = y.value().sub(t.b.value())?;
            let kept = if p == Party::P0 {
                y.value().clone()
            } else {
                t.b.into_value()
            };
            (f, kept)
        };
        let peer_shape = if holder { y.shape() } else { x.shape() }.to_vec();
        Ok((
            HolderState {
                party: p,
                holder,
                kept,
                c: t.c.into_value(),
                peer_shape,
                window: window.cloned(),
            },
            OpenMsg::from_tensor(sent),
        ))
    }

    /// [`Engine::holder_matmul_round1`] (or with a `window`
    /// [`Engine::holder_conv_round1`]) at the holder, straight from its
    /// clear input: `x` is encoded at `frac_bits` and masked in one pass,
    /// so no share of `x` is materialised (for a large batch that is two
    /// passes over its memory fewer). The state and message are those of
    /// encoding `x`, taking it as this party's share and calling
    /// [`Engine::holder_matmul_round1`].
    pub fn holder_matmul_round1_clear(
        &mut self,
        x: &[f64],
        x_shape: &[usize],
        frac_bits: u32,
        y: &Share,
        window: Option<&plan::Window>,
        a_holder: Party,
    ) -> Result<(HolderState, OpenMsg)> {
        if self.party() != a_holder {
            return Err(SharingError::PartyMismatch(
                "only the holder of x masks it from the clear",
            ));
        }
        let expected = super::ring::numel(x_shape)?;
        if expected != x.len() {
            return Err(SharingError::BadLength {
                len: x.len(),
                shape: x_shape.to_vec(),
                expected,
            });
        }
        let t = self.holder_triple(x_shape, y, window, a_holder)?;
        let scale = 2f64.powi(frac_bits as i32);
        let mut ok = true;
        let sent: Vec<u64> = x
            .iter()
            .zip(t.a.value().data())
            .map(|(v, a)| {
                let e = super::fixed::scale_round(*v, scale);
                ok &= e.is_some();
                (e.unwrap_or(0) as u64).wrapping_sub(*a)
            })
            .collect();
        if !ok {
            return Err(SharingError::Encode {
                frac_bits,
                reason: "out of range",
            });
        }
        Ok((
            HolderState {
                party: self.party(),
                holder: true,
                kept: t.a.into_value(),
                c: t.c.into_value(),
                peer_shape: y.shape().to_vec(),
                window: window.cloned(),
            },
            OpenMsg::from_tensor(RingTensor::new(sent, x_shape.to_vec())?),
        ))
    }

    /// The input-holder triple for `x_shape @ y` (or with a `window`,
    /// `x_shape ⊛ y`), checked to be this party's.
    fn holder_triple(
        &mut self,
        x_shape: &[usize],
        y: &Share,
        window: Option<&plan::Window>,
        a_holder: Party,
    ) -> Result<super::correlations::TripleShare> {
        let p = self.party();
        check_party(y, p)?;
        let t = match window {
            Some(window) => {
                super::correlations::conv_out_shape(x_shape, window, y.shape())?;
                self.corr
                    .holder_conv_triple(x_shape, window, y.shape(), a_holder)?
            }
            None => {
                RingTensor::matmul_shape(x_shape, y.shape())?;
                self.corr
                    .holder_matmul_triple(x_shape, y.shape(), a_holder)?
            }
        };
        check_party(&t.a, p)?;
        Ok(t)
    }

    /// Round 2 of [`Engine::holder_matmul_round1`]: `peer` is the other
    /// party's masked input (`f` at the holder, `e` at the other), `sent`
    /// the message this party sent in round 1.
    pub fn holder_matmul_round2(
        mut state: HolderState,
        peer: OpenMsg,
        sent: &OpenMsg,
    ) -> Result<Share> {
        if state.holder && state.party == Party::P0 {
            // kept = a; x = a + e.
            state.kept.add_assign_msg(sent)?;
        }
        let peer = peer.into_tensor()?;
        if peer.shape() != state.peer_shape.as_slice() {
            return Err(SharingError::ShapeMismatch {
                op: "input-holder product",
                left: state.peer_shape,
                right: peer.shape().to_vec(),
            });
        }
        let prod = match (&state.window, state.holder) {
            (Some(w), true) => super::correlations::conv_product(&state.kept, w, &peer)?,
            (Some(w), false) => super::correlations::conv_product(&peer, w, &state.kept)?,
            (None, true) => state.kept.matmul(&peer)?,
            (None, false) => peer.matmul(&state.kept)?,
        };
        let mut z = state.c;
        z.add_assign(&prod)?;
        Ok(Share::new(state.party, z))
    }

    fn round1(
        &self,
        kind: MulKind,
        x: &Share,
        y: &Share,
        t: super::correlations::TripleShare,
    ) -> Result<(MulState, BeaverMsg)> {
        let p = self.party();
        check_party(x, p)?;
        check_party(y, p)?;
        check_party(&t.a, p)?;
        let e = x.value().sub(t.a.value())?;
        let f = y.value().sub(t.b.value())?;
        let msg = BeaverMsg {
            e: OpenMsg::from_tensor(e.clone()),
            f: OpenMsg::from_tensor(f.clone()),
        };
        Ok((
            MulState {
                party: p,
                kind,
                a: t.a.into_value(),
                b: t.b.into_value(),
                c: t.c.into_value(),
                e,
                f,
            },
            msg,
        ))
    }

    /// Round 2 of a Beaver product: combines the peer's message into my
    /// share of `x * y` (or `x @ y`). Party 0 adds the public `e * f`.
    pub fn mul_round2(state: MulState, peer: BeaverMsg) -> Result<Share> {
        let pe = peer.e.into_tensor()?;
        let pf = peer.f.into_tensor()?;
        state.e.check_same_shape(&pe, "beaver e")?;
        state.f.check_same_shape(&pf, "beaver f")?;
        let p0 = state.party == Party::P0;
        let z = match state.kind {
            MulKind::Elementwise => {
                // One fused pass: z = c + e*b + a*f (+ e*f for party 0),
                // with e = e_mine + e_peer, f = f_mine + f_peer.
                let n = state.c.len();
                let mut out = state.c.into_parts().0;
                let (a, b) = (state.a.data(), state.b.data());
                let (e0, e1, f0, f1) = (state.e.data(), pe.data(), state.f.data(), pf.data());
                if out.len() != n || a.len() != n || b.len() != n || e0.len() != n {
                    return Err(SharingError::BadLength {
                        len: e0.len(),
                        shape: state.e.shape().to_vec(),
                        expected: n,
                    });
                }
                let body = |i0: usize, chunk: &mut [u64]| {
                    for (j, z) in chunk.iter_mut().enumerate() {
                        let i = i0 + j;
                        let e = e0[i].wrapping_add(e1[i]);
                        let f = f0[i].wrapping_add(f1[i]);
                        let mut v = z
                            .wrapping_add(e.wrapping_mul(b[i]))
                            .wrapping_add(a[i].wrapping_mul(f));
                        if p0 {
                            v = v.wrapping_add(e.wrapping_mul(f));
                        }
                        *z = v;
                    }
                };
                par_chunks(&mut out, body);
                RingTensor::new(out, state.e.shape().to_vec())?
            }
            MulKind::Matmul => {
                let e = state.e.add(&pe)?;
                let f = state.f.add(&pf)?;
                // z = c + e@b + a@f (+ e@f for party 0) = c + e@(b [+ f]) + a@f
                let bf = if p0 { state.b.add(&f)? } else { state.b };
                let mut z = state.c;
                z.add_assign(&e.matmul(&bf)?)?;
                z.add_assign(&state.a.matmul(&f)?)?;
                z
            }
            MulKind::Conv(window) => {
                // As for a matrix triple on the patches: the convolution
                // is bilinear and im2col linear, x ⊛ w − a ⊛ b = e ⊛ (b + f)
                // + a ⊛ f, so z = c + e ⊛ (b [+ f]) + a ⊛ f.
                use super::correlations::conv_product;
                let e = state.e.add(&pe)?;
                let f = state.f.add(&pf)?;
                let bf = if p0 { state.b.add(&f)? } else { state.b };
                let mut z = state.c;
                z.add_assign(&conv_product(&e, &window, &bf)?)?;
                z.add_assign(&conv_product(&state.a, &window, &f)?)?;
                z
            }
        };
        Ok(Share::new(state.party, z))
    }

    /// Round 1 of a dealer truncation by `f` bits: my share of the opened
    /// value `x + 2^62 + r`.
    pub fn trunc_round1(&mut self, x: &Share) -> Result<(TruncState, OpenMsg)> {
        self.trunc_bits_round1(x, self.fp.frac_bits())
    }

    /// As [`Engine::trunc_round1`] with an explicit shift.
    pub fn trunc_bits_round1(&mut self, x: &Share, bits: u32) -> Result<(TruncState, OpenMsg)> {
        let p = self.party();
        check_party(x, p)?;
        if !(1..=61).contains(&bits) {
            return Err(SharingError::BadParameter(
                "truncation bits must be in 1..=61",
            ));
        }
        let t = self.corr.trunc_triple(x.shape(), bits)?;
        let off = if p == Party::P0 {
            1u64 << OFFSET_BITS
        } else {
            0
        };
        let masked = x.value().zip_with(t.r.value(), "trunc mask", move |a, r| {
            a.wrapping_add(r).wrapping_add(off)
        })?;
        let msg = OpenMsg::from_tensor(masked.clone());
        Ok((
            TruncState {
                party: p,
                frac_bits: bits,
                masked,
                r_shift: t.r_shift.into_value(),
                r_msb: t.r_msb.into_value(),
            },
            msg,
        ))
    }

    /// Round 2 of a dealer truncation.
    pub fn trunc_round2(state: TruncState, peer: OpenMsg) -> Result<Share> {
        let c = state.masked.add(&peer.into_tensor()?)?;
        let f = state.frac_bits;
        let wrap_scale = 1u64 << (64 - f);
        let p0 = state.party == Party::P0;
        let offset = (1u64 << (OFFSET_BITS - f)).wrapping_neg();
        c.check_same_shape(&state.r_shift, "trunc r>>f")?;
        c.check_same_shape(&state.r_msb, "trunc msb(r)")?;
        let (rs, rm) = (state.r_shift.data(), state.r_msb.data());
        let (mut out, shape) = c.into_parts();
        let body = |i0: usize, chunk: &mut [u64]| {
            for (j, y) in chunk.iter_mut().enumerate() {
                let i = i0 + j;
                let c = *y;
                let not_cmsb = 1 - (c >> 63);
                let w = rm[i].wrapping_mul(not_cmsb);
                let mut v = w.wrapping_mul(wrap_scale).wrapping_sub(rs[i]);
                if p0 {
                    v = v.wrapping_add(c >> f).wrapping_add(offset);
                }
                *y = v;
            }
        };
        par_chunks(&mut out, body);
        Ok(Share::new(state.party, RingTensor::new(out, shape)?))
    }

    /// Round 1 of a two-party truncation by `bits` (module docs): fetches
    /// one daBit per element and returns this party's packed bits
    /// `msb(x_i) ⊕ u_i`, one bit per element in 64-bit words.
    pub fn trunc_dabits_round1(
        &mut self,
        x: &Share,
        bits: u32,
    ) -> Result<(WrapTruncState, OpenMsg)> {
        let p = self.party();
        check_party(x, p)?;
        if !(1..=61).contains(&bits) {
            return Err(SharingError::BadParameter(
                "truncation bits must be in 1..=61",
            ));
        }
        let shape = x.shape().to_vec();
        let n = x.value().data().len();
        let words = n.div_ceil(64);
        let dabit = self.corr.dabits(&shape)?;
        if dabit.arith.party() != p {
            return Err(SharingError::PartyMismatch(
                "daBits belong to the other party",
            ));
        }
        if dabit.arith.shape() != shape.as_slice() || dabit.bits.len() < words {
            return Err(SharingError::Correlations(
                "daBits of the wrong size for a truncation".into(),
            ));
        }
        let off = if p == Party::P0 {
            1u64 << OFFSET_BITS
        } else {
            0
        };
        let mut shifted = Vec::with_capacity(n);
        let mut msb = vec![0u64; words];
        for (i, v) in x.value().data().iter().enumerate() {
            let v = v.wrapping_add(off);
            shifted.push(v >> bits);
            msb[i / 64] |= (v >> 63) << (i % 64);
        }
        let sent: Vec<u64> = msb.iter().zip(&dabit.bits).map(|(m, u)| m ^ u).collect();
        let sent = mask_tail(sent, n);
        let msg = OpenMsg {
            data: sent.clone(),
            shape: vec![words],
        };
        Ok((
            WrapTruncState {
                party: p,
                frac_bits: bits,
                shape,
                shifted,
                msb,
                sent,
                dabit_arith: dabit.arith.into_value().into_parts().0,
            },
            msg,
        ))
    }

    /// Round 2 of a two-party truncation: the peer's packed bits in, this
    /// party's share of the truncated value out. A message of the wrong
    /// size, or with bits set past the last element, is an error.
    pub fn trunc_dabits_round2(state: WrapTruncState, peer: OpenMsg) -> Result<Share> {
        let n = state.shifted.len();
        let words = n.div_ceil(64);
        if peer.shape != [words] || peer.data.len() != words {
            return Err(SharingError::ShapeMismatch {
                op: "the peer's truncation bits",
                left: vec![words],
                right: peer.shape,
            });
        }
        if mask_tail(peer.data.clone(), n) != peer.data {
            return Err(SharingError::Correlations(
                "the peer's truncation bits have bits set past the last element".into(),
            ));
        }
        let f = state.frac_bits;
        let scale = 1u64 << (63 - f);
        let p0 = state.party == Party::P0;
        // Party 0: − 2^(62−f) + 1.
        let offset = (1u64 << (OFFSET_BITS - f)).wrapping_neg().wrapping_add(1);
        let mut out = state.shifted;
        for (i, y) in out.iter_mut().enumerate() {
            let (w, b) = (i / 64, i % 64);
            let t = ((state.sent[w] ^ peer.data[w]) >> b) & 1;
            let own = (state.msb[w] >> b) & 1;
            // Share of a ⊕ b = t + (1 − 2t)·s.
            let s = state.dabit_arith[i];
            let mut xor = if t == 1 { s.wrapping_neg() } else { s };
            if p0 {
                xor = xor.wrapping_add(t);
            }
            let mut v = y.wrapping_sub(scale.wrapping_mul(own.wrapping_add(xor)));
            if p0 {
                v = v.wrapping_add(offset);
            }
            *y = v;
        }
        Ok(Share::new(state.party, RingTensor::new(out, state.shape)?))
    }

    /// SecureML local truncation by `f` bits (no communication; see module
    /// docs for the failure probability).
    pub fn trunc_local(&self, x: &Share) -> Share {
        trunc_local_bits(x, self.fp.frac_bits())
    }

    // ------------------------------------------------------------ composites

    /// Opens `x` to both parties.
    pub fn open<E: Exchange>(&self, ex: &mut E, x: &Share) -> Result<RingTensor> {
        let peer = ex.exchange(Message::Open(x.open_msg()))?.into_open()?;
        x.open_finish(peer)
    }

    /// Opens `x` and decodes it as fixed point.
    pub fn open_fixed<E: Exchange>(&self, ex: &mut E, x: &Share) -> Result<Vec<f64>> {
        Ok(self.fp.decode_tensor(&self.open(ex, x)?))
    }

    /// Ring product `x * y` (no truncation), one round.
    pub fn mul_ring<E: Exchange>(&mut self, ex: &mut E, x: &Share, y: &Share) -> Result<Share> {
        let (st, msg) = self.mul_round1(x, y)?;
        let peer = ex.exchange(Message::Beaver(msg))?.into_beaver()?;
        Self::mul_round2(st, peer)
    }

    /// Ring matrix product `x @ y` (no truncation), one round.
    pub fn matmul_ring<E: Exchange>(&mut self, ex: &mut E, x: &Share, y: &Share) -> Result<Share> {
        let (st, msg) = self.matmul_round1(x, y)?;
        let peer = ex.exchange(Message::Beaver(msg))?.into_beaver()?;
        Self::mul_round2(st, peer)
    }

    /// Truncates by `f` bits with the engine's mode (dealer: one round).
    pub fn truncate<E: Exchange>(&mut self, ex: &mut E, x: &Share) -> Result<Share> {
        match self.trunc {
            TruncMode::Local => Ok(self.trunc_local(x)),
            TruncMode::DaBits => {
                let bits = self.fp.frac_bits();
                let (st, msg) = self.trunc_dabits_round1(x, bits)?;
                let peer = ex.exchange(Message::Open(msg))?.into_open()?;
                Self::trunc_dabits_round2(st, peer)
            }
            TruncMode::Dealer => {
                let (st, msg) = self.trunc_round1(x)?;
                let peer = ex.exchange(Message::Open(msg))?.into_open()?;
                Self::trunc_round2(st, peer)
            }
        }
    }

    /// Fixed-point elementwise product: Beaver product then truncation.
    pub fn mul<E: Exchange>(&mut self, ex: &mut E, x: &Share, y: &Share) -> Result<Share> {
        let z = self.mul_ring(ex, x, y)?;
        self.truncate(ex, &z)
    }

    /// Fixed-point matrix product: one matrix triple, then truncation.
    pub fn matmul<E: Exchange>(&mut self, ex: &mut E, x: &Share, y: &Share) -> Result<Share> {
        let z = self.matmul_ring(ex, x, y)?;
        self.truncate(ex, &z)
    }

    /// Several elementwise fixed-point products in one Beaver round (and one
    /// truncation round): operands are concatenated into one triple.
    pub fn mul_many<E: Exchange>(
        &mut self,
        ex: &mut E,
        pairs: &[(&Share, &Share)],
    ) -> Result<Vec<Share>> {
        let p = self.party();
        let mut shapes = Vec::with_capacity(pairs.len());
        for (x, y) in pairs {
            if x.shape() != y.shape() {
                return Err(SharingError::ShapeMismatch {
                    op: "mul_many",
                    left: x.shape().to_vec(),
                    right: y.shape().to_vec(),
                });
            }
            shapes.push(x.shape().to_vec());
        }
        let xs: Vec<&RingTensor> = pairs.iter().map(|(x, _)| x.value()).collect();
        let ys: Vec<&RingTensor> = pairs.iter().map(|(_, y)| y.value()).collect();
        let x = Share::new(p, RingTensor::concat_flat(&xs));
        let y = Share::new(p, RingTensor::concat_flat(&ys));
        for (a, _) in pairs {
            check_party(a, p)?;
        }
        let z = self.mul(ex, &x, &y)?;
        Ok(z.value()
            .split_flat(&shapes)?
            .into_iter()
            .map(|t| Share::new(p, t))
            .collect())
    }

    /// `x * v` for a public real `v`: local scaling by the encoding of `v`,
    /// then truncation.
    pub fn mul_public_fixed<E: Exchange>(
        &mut self,
        ex: &mut E,
        x: &Share,
        v: f64,
    ) -> Result<Share> {
        let k = self.fp.encode(v)?;
        let z = x.mul_public_scalar(k);
        self.truncate(ex, &z)
    }

    /// `x * c` elementwise for a public real tensor `c`, then truncation.
    pub fn mul_public_fixed_tensor<E: Exchange>(
        &mut self,
        ex: &mut E,
        x: &Share,
        c: &[f64],
    ) -> Result<Share> {
        let ct = self.fp.encode_tensor(c, x.shape())?;
        let z = x.mul_public(&ct)?;
        self.truncate(ex, &z)
    }

    /// Adds a public real constant.
    pub fn add_public_fixed(&self, x: &Share, v: f64) -> Result<Share> {
        Ok(x.add_public_scalar(self.fp.encode(v)?))
    }

    /// Evaluates `p(x) = Σ_k coeffs[k] (x / scale)^k` on shares.
    ///
    /// `t = x / scale` is computed first (one truncation) so that powers stay
    /// in `[-1, 1]` for inputs in `[-scale, scale]` and keep their precision.
    /// Powers `t^k` for the nonzero coefficients are computed level by level:
    /// `t^k = t^(2^(l-1)) * t^(k - 2^(l-1))` at level `l = ⌈log2 k⌉`, with all
    /// products of one level batched into one Beaver round, so a degree-`d`
    /// polynomial costs `⌈log2 d⌉` multiplication rounds. The weighted sum is
    /// truncated once.
    pub fn poly<E: Exchange>(
        &mut self,
        ex: &mut E,
        x: &Share,
        coeffs: &[f64],
        scale: f64,
    ) -> Result<Share> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(SharingError::BadParameter("poly scale must be positive"));
        }
        let p = self.party();
        check_party(x, p)?;
        let degree = coeffs.iter().rposition(|&c| c != 0.0).unwrap_or(0);
        let c0 = self.fp.encode(coeffs.first().copied().unwrap_or(0.0))?;
        if degree == 0 {
            return Ok(Share::new(p, RingTensor::zeros(x.shape())?).add_public_scalar(c0));
        }
        let t = if scale == 1.0 {
            x.clone()
        } else {
            self.mul_public_fixed(ex, x, 1.0 / scale)?
        };
        let needed = needed_powers(
            &(1..=degree)
                .filter(|&k| coeffs[k] != 0.0)
                .collect::<Vec<_>>(),
        );
        let mut pw: Vec<Option<Share>> = vec![None; degree + 1];
        pw[1] = Some(t);
        let mut level = 1u32;
        while (1usize << (level - 1)) < degree {
            let half = 1usize << (level - 1);
            let hi = (1usize << level).min(degree);
            let ks: Vec<usize> = (half + 1..=hi).filter(|k| needed.contains(k)).collect();
            if !ks.is_empty() {
                let pairs_owned: Vec<(Share, Share)> = ks
                    .iter()
                    .map(|&k| {
                        let l = pw[half].clone();
                        let r = pw[k - half].clone();
                        match (l, r) {
                            (Some(l), Some(r)) => Ok((l, r)),
                            _ => Err(SharingError::BadParameter("internal: missing power")),
                        }
                    })
                    .collect::<Result<_>>()?;
                let pairs: Vec<(&Share, &Share)> =
                    pairs_owned.iter().map(|(a, b)| (a, b)).collect();
                let prods = self.mul_many(ex, &pairs)?;
                for (k, s) in ks.into_iter().zip(prods) {
                    pw[k] = Some(s);
                }
            }
            level += 1;
        }
        let mut acc = RingTensor::zeros(x.shape())?;
        for (k, &ck) in coeffs.iter().enumerate().skip(1) {
            if ck == 0.0 {
                continue;
            }
            let s = pw[k]
                .as_ref()
                .ok_or(SharingError::BadParameter("internal: missing power"))?;
            acc.add_assign(&s.value().scale(self.fp.encode(ck)?))?;
        }
        let sum = self.truncate(ex, &Share::new(p, acc))?;
        Ok(sum.add_public_scalar(c0))
    }

    /// Sigmoid by the shipped minimax odd polynomial of degree 7 or 9 on
    /// `[-8, 8]` (see [`super::poly`]). Inputs outside the domain are not
    /// clamped and give wrong results.
    pub fn sigmoid<E: Exchange>(&mut self, ex: &mut E, x: &Share, degree: usize) -> Result<Share> {
        let (coeffs, scale) = super::poly::sigmoid_poly(degree)?;
        self.poly(ex, x, &coeffs, scale)
    }

    /// tanh(x) = 2 sigmoid(2x) - 1, from the sigmoid polynomial on [-4, 4].
    pub fn tanh<E: Exchange>(&mut self, ex: &mut E, x: &Share, degree: usize) -> Result<Share> {
        let (c, scale) = super::poly::tanh_poly(degree)?;
        self.poly(ex, x, &c, scale)
    }
}

/// Runs `body(start_index, chunk)` over `out` in parallel chunks when large.
fn par_chunks(out: &mut [u64], body: impl Fn(usize, &mut [u64]) + Sync + Send) {
    const CHUNK: usize = 1 << 14;
    if out.len() >= 4 * CHUNK {
        use rayon::prelude::*;
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(k, ch)| body(k * CHUNK, ch));
    } else {
        body(0, out);
    }
}

/// Clears the bits of the last word past `n` bits.
fn mask_tail(mut words: Vec<u64>, n: usize) -> Vec<u64> {
    if !n.is_multiple_of(64) {
        if let Some(last) = words.last_mut() {
            *last &= (1u64 << (n % 64)) - 1;
        }
    }
    words
}

/// SecureML local truncation of a share by `bits` (logical shifts).
pub fn trunc_local_bits(x: &Share, bits: u32) -> Share {
    let bits = bits.min(63);
    let v = match x.party() {
        Party::P0 => x.value().map(|a| a >> bits),
        Party::P1 => x.value().map(|a| (a.wrapping_neg() >> bits).wrapping_neg()),
    };
    Share::new(x.party(), v)
}

/// Closure of the powers needed to compute `ks` by the level scheme.
fn needed_powers(ks: &[usize]) -> std::collections::BTreeSet<usize> {
    let mut set = std::collections::BTreeSet::new();
    let mut stack: Vec<usize> = ks.to_vec();
    while let Some(k) = stack.pop() {
        if k == 0 || !set.insert(k) || k == 1 {
            continue;
        }
        let half = k.next_power_of_two() / 2;
        stack.push(half);
        stack.push(k - half);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::needed_powers;

    #[test]
    fn powers_closure() {
        let s: Vec<usize> = needed_powers(&[1, 3, 5, 7]).into_iter().collect();
        assert_eq!(s, vec![1, 2, 3, 4, 5, 7]);
        let s: Vec<usize> = needed_powers(&[9]).into_iter().collect();
        assert_eq!(s, vec![1, 2, 4, 8, 9]);
    }
}
