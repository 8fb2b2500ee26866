//! The execution plan: the contract between the compiler and the runtime.
//!
//! A [`Plan`] says, for every party, exactly what it computes, sends and
//! receives: a straight-line [`Program`] of [`Instr`]uctions over numbered
//! registers ([`Reg`]), with explicit [`Instr::Send`] / [`Instr::Recv`]
//! steps. It also lists the correlated randomness the parties need
//! ([`Correlation`]), the Paillier keys, the inputs each party binds and the
//! outputs each party learns.
//!
//! A plan holds no secret: no input value, share, key or mask. Public
//! constants of the model are the only data in it.
//!
//! [`Plan::to_text`] is the stable, readable form used by `veil compile
//! --emit plan` and by snapshot tests; [`validate`] checks the plan's
//! internal consistency (a failure is a compiler bug).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::fmt::{self, Write};

mod fingerprint;
mod load;
pub mod npy;
pub mod params;
mod tensor;
mod validate;
mod window;
pub use fingerprint::{explain, Difference, Fingerprint};
pub use load::LoadError;
pub use tensor::{
    bind_inputs, check_parameters, concat_last, concrete, infer_dims, narrow_last, permute_data,
    views, InputError, Tensor, TensorRef,
};
pub use validate::{validate, SharedValidPlan, ValidPlan, ValidationError};
pub use window::{im2col_data, Window};

/// Bumped when the plan format changes incompatibly, so an older runtime
/// refuses a newer plan by its version rather than failing to parse it.
/// 3: correlations name their engine (OT or Paillier), RLWE matrix
/// products, and the ops `Exp`, `Reciprocal`, `Log`, `MinReduce`,
/// `Permute`, `Reshape`, `Im2col` windows, `Rsqrt`, `Concat` and `Narrow`.
/// 4: inputs carry per-column ranges (`InputSpec::columns`), which an older
/// runtime would not enforce, windows `ceil_mode`'s extra padding
/// (`Window::extra`), which it would not apply, and comparisons may be
/// `NonlinearOp::MaxArgmax`, which it would not know.
/// 5: the dealer may deal comparisons as DCF keys (`Instr::Deal`'s
/// `comparisons`), which an older runtime would silently ignore and so run
/// another protocol than its peers; correlations may be input-holder
/// convolution triples (`Correlation::HolderConv`); and RLWE products may
/// be prepared or masked (`RlwePrepare*`, `RlweMask*`), which came without
/// a bump.
/// 6: comparisons may bound their compared values (`Instr::Nonlinear`'s
/// `bits`), which an older runtime would ignore and so read more bits than
/// its peer.
pub const FORMAT_VERSION: u32 = 6;

/// Index into [`Plan::parties`].
pub type PartyIdx = u32;

/// How the comparisons of a plan with a dealer take the sign bit (the
/// executor's `sharing::SelectKind`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DealerComparisons {
    /// A masked opening and a carry tree of AND gates:
    /// [`params::MSB_ROUNDS`] rounds, few bytes.
    #[default]
    CarryTree,
    /// A masked opening and a distributed comparison function per element
    /// (`sharing::dcf`): one round, 1.5 KiB of keys per comparison from the
    /// dealer and again between the parties.
    Dcf,
}

impl DealerComparisons {
    pub fn is_carry_tree(&self) -> bool {
        *self == DealerComparisons::CarryTree
    }
}

/// A register: a value in a party's program. A register number means the
/// same logical value at every party that holds it (for a shared value, each
/// computing party holds its own share under the same number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Reg(pub u32);

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Dim {
    Known(u64),
    Symbol(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    pub fn scalar() -> Shape {
        Shape(Vec::new())
    }

    /// Number of elements, with symbolic dimensions bound by `bind`.
    pub fn len(&self, bind: &dyn Fn(&str) -> Option<u64>) -> Option<u64> {
        self.0.iter().try_fold(1u64, |acc, d| {
            let n = match d {
                Dim::Known(n) => *n,
                Dim::Symbol(s) => bind(s)?,
            };
            acc.checked_mul(n)
        })
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match d {
                Dim::Known(n) => write!(f, "{n}")?,
                Dim::Symbol(s) => f.write_str(s)?,
            }
        }
        f.write_str("]")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Compute,
    Dealer,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub name: String,
    pub role: Role,
}

/// Who provides an input's data at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Owner {
    Public,
    Party(PartyIdx),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub name: String,
    pub owner: Owner,
    pub shape: Shape,
    /// The range every value of this input lies in: the declared
    /// `in [lo, hi]`, or the compiler's default for the model's precision.
    /// The compiler's overflow and error analysis assumed it, so the runtime
    /// refuses data outside it.
    pub range: (f64, f64),
    /// Whether the model declared `range` (otherwise it is the default).
    pub range_declared: bool,
    /// Declared ranges of each entry of the last axis (`in [[lo, hi],
    /// ...]`), tighter than `range` (their hull); empty if none. The runtime
    /// refuses a value outside its column's range.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<(f64, f64)>,
}

impl InputSpec {
    /// A model's parameter: an input of no symbolic size (weights, a
    /// threshold), as opposed to its data, whose size is the batch's. A
    /// service keeps its parameters from request to request.
    pub fn is_parameter(&self) -> bool {
        !self.shape.0.iter().any(|d| matches!(d, Dim::Symbol(_)))
    }

    /// The range the value at flat (row-major) index `i` must lie in: its
    /// column's, or the input's.
    pub fn range_at(&self, i: usize) -> (f64, f64) {
        match self.columns.len() {
            0 => self.range,
            k => self.columns[i % k],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    pub name: String,
    pub to: Vec<PartyIdx>,
    pub shape: Shape,
    /// The error bound the compiler computed for this output, against exact
    /// real arithmetic on the same inputs (approximations + rounding).
    pub error_bound: f64,
    /// For an `argmax` output: an index is also correct when its entry's
    /// exact value lies within this much of the exact maximum of its row
    /// (twice the error bound of the argmax's input), since entries that
    /// close may compare either way on fixed-point values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub near_tie: Option<f64>,
    /// For an `argmax` output with a public label table: index `i` is
    /// revealed as `labels[i]` (the runtime maps it after the reveal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<f64>>,
}

impl OutputSpec {
    /// An `argmax` output as the receiver sees it: each index `i` replaced
    /// by `labels[i]` when the output has a label table. An index outside
    /// the table (which a correct run never gives) is an error.
    pub fn labelled(&self, mut t: Tensor) -> Result<Tensor, String> {
        let Some(labels) = &self.labels else {
            return Ok(t);
        };
        for v in &mut t.data {
            let i = v.round();
            if !(i >= 0.0 && (i as usize) < labels.len()) {
                return Err(format!(
                    "output `{}`: index {v} is outside its table of {} labels",
                    self.name,
                    labels.len()
                ));
            }
            *v = labels[i as usize];
        }
        Ok(t)
    }

    /// The index a label stands for (the inverse of [`Self::labelled`]);
    /// without a table, the value itself.
    pub fn index_of(&self, v: f64) -> f64 {
        match &self.labels {
            Some(labels) => labels
                .iter()
                .position(|l| *l == v)
                .map_or(f64::NAN, |i| i as f64),
            None => v,
        }
    }
}

/// What a register holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// A plaintext tensor (f64) known to the parties that hold the register.
    Clear,
    /// An additive share over Z_2^64 of a fixed-point tensor, with `scale`
    /// fractional bits.
    Share { scale: u32 },
    /// Paillier ciphertexts under `key`'s public key of a fixed-point tensor
    /// with `scale` fractional bits.
    Cipher { key: PartyIdx, scale: u32 },
    /// A protocol message (masked shares, correction terms): opaque data
    /// produced by one instruction, sent, and consumed by another.
    Message,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegInfo {
    pub kind: Kind,
    pub shape: Shape,
    /// What the register is, for people: "z = x @ w", "share of x", ...
    pub note: String,
}

/// Correlated randomness, generated in the preprocessing phase (by the
/// dealer, or by the two computing parties with Paillier).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Correlation {
    /// Beaver triple for `a ∘ b` elementwise: a, b, c = a·b of `shape`.
    Elementwise { shape: Shape },
    /// Matrix triple for `a @ b`: a of `lhs`, b of `rhs`, c = a @ b.
    MatMul { lhs: Shape, rhs: Shape },
    /// Convolution triple for `x ⊛ w`: a of `input` (x's shape, not the
    /// patches'), b of `rhs`, c the convolution of a by b under `window`.
    /// With one group `rhs` is `[C·K, O]` and c = im2col(a) @ b; with
    /// `groups > 1` (depthwise included) `rhs` is `[O, C/groups·K]`, one row
    /// per output channel, dotted with its group's patch. Its Beaver product
    /// opens |x| + |w| elements instead of the patches (dealer only).
    Conv {
        input: Shape,
        window: Window,
        rhs: Shape,
    },
    /// Input-holder matrix triple for `x @ w` with `x` in the clear at
    /// `lhs_holder` and `w` at the other party: `a` known to the holder
    /// alone, `b` to the other alone, `c = a @ b` shared.
    HolderMatMul {
        lhs: Shape,
        rhs: Shape,
        lhs_holder: PartyIdx,
    },
    /// Input-holder convolution triple for `x ⊛ w` with `x` in the clear at
    /// `lhs_holder` and `w` at the other party: `a` of `input` (x's shape,
    /// not the patches') known to the holder alone, `b` of `rhs` (as for
    /// [`Correlation::Conv`]) to the other alone, `c = a ⊛ b` shared. Each
    /// side sends its masked input once: |x| + |w| elements (dealer only).
    HolderConv {
        input: Shape,
        window: Window,
        rhs: Shape,
        lhs_holder: PartyIdx,
    },
    /// Truncation pair: r uniform in Z_2^64, with shares of r >> bits and msb(r).
    Trunc { shape: Shape, bits: u32 },
    /// Two-party truncation by `bits` (no dealer): one daBit per element of
    /// `shape`, which yields the wrap of the shares (see
    /// `runtime::sharing::protocol`).
    TruncDaBits { shape: Shape, bits: u32 },
}

impl Correlation {
    /// The shift of a truncation correlation.
    pub fn trunc_bits(&self) -> Option<u32> {
        match self {
            Correlation::Trunc { bits, .. } | Correlation::TruncDaBits { bits, .. } => Some(*bits),
            _ => None,
        }
    }
}

/// How two computing parties generate correlations without a dealer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CorrelationEngine {
    /// Oblivious transfer: SoftSpoken OT extension over base OTs in
    /// Ristretto255, Gilboa products (the `ot` crate).
    Ot,
    /// Packed Paillier cross terms under party 0's key.
    Paillier,
}

impl CorrelationEngine {
    pub fn name(self) -> &'static str {
        match self {
            CorrelationEngine::Ot => "OT",
            CorrelationEngine::Paillier => "Paillier",
        }
    }
}

/// Where correlated randomness comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RandomnessSource {
    Dealer(PartyIdx),
    /// The two computing parties generate it together
    /// ([`Instr::GenerateCorrelations`] names how).
    TwoParty,
}

/// A Paillier key pair one party generates; the public half goes to `peer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySpec {
    pub owner: PartyIdx,
    pub peer: PartyIdx,
    pub min_bits: u32,
}

/// Plaintext operations, computed in f64 by a party that may see all operands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClearOp {
    Neg,
    Add,
    Sub,
    Mul,
    MatMul,
    Sum,
    Mean,
    Square,
    Sigmoid,
    Tanh,
    Exp,
    Reciprocal,
    /// Natural logarithm.
    Log,
    Poly(Vec<f64>),
    Relu,
    MaxReduce,
    MinReduce,
    Argmax,
    Max,
    Min,
    Clamp(f64, f64),
    /// Reorder the axes: axis `i` of the result is axis `perm[i]` of the operand.
    Permute(Vec<usize>),
    /// The operand's values, row-major, in the destination's shape.
    Reshape,
    /// The sliding windows' patches (see [`Window`]).
    Im2col(Window),
    /// 1/√x elementwise.
    Rsqrt,
    /// The operands joined along their last axis.
    Concat,
    /// Entries `start..start + len` of the last axis.
    Narrow {
        start: usize,
        len: usize,
    },
}

/// Local (communication-free) operations on shares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ShareOp {
    Add,
    Sub,
    Neg,
    /// share + public clear value (encoded at the share's scale; the leader adds it).
    AddPublic,
    /// share - public clear value (the leader subtracts it).
    SubPublic,
    /// public clear value - share.
    PublicSub,
    /// share ∘ public clear value, the public side encoded with `bits`
    /// fractional bits (the result's scale grows by `bits`).
    MulPublic {
        bits: u32,
    },
    /// share @ public matrix/vector (or public @ share when `public_left`).
    MatMulPublic {
        bits: u32,
        public_left: bool,
    },
    /// Sum along the last axis.
    Sum,
    /// Multiply by a public integer (no scale change).
    MulInt(i64),
    /// Repeat a share along leading dimensions to the destination's shape
    /// (suffix broadcasting, as for elementwise operations).
    Broadcast,
    /// Reorder the axes: axis `i` of the result is axis `perm[i]` of the operand.
    Permute(Vec<usize>),
    /// The share's values, row-major, in the destination's shape.
    Reshape,
    /// The sliding windows' patches (see [`Window`]; the padding holds 0).
    Im2col(Window),
    /// The operands (shares at one scale) joined along their last axis.
    Concat,
    /// Entries `start..start + len` of the last axis.
    Narrow {
        start: usize,
        len: usize,
    },
}

/// Operations on Paillier ciphertexts by the party holding them (which does
/// not hold the key), with a plaintext tensor it may see.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum HomOp {
    /// Enc(x) @ w, w plaintext encoded with `bits` fractional bits.
    MatMul {
        bits: u32,
    },
    /// w @ Enc(x).
    MatMulLeft {
        bits: u32,
    },
    /// Enc(x) ∘ w elementwise.
    Mul {
        bits: u32,
    },
    /// Enc(x) + w (w encoded at the ciphertext's scale).
    AddPlain,
    /// Enc(x) - w.
    SubPlain,
    /// w - Enc(x).
    PlainSub,
    /// Enc(x) + Enc(y).
    Add,
    /// Enc(x) - Enc(y).
    Sub,
    Neg,
    Sum,
}

/// Comparison-based operations on shares. Each runs as one interactive
/// protocol with the peer (secure comparison: an 8-round MSB extraction on
/// dealer-supplied masked bits and AND triples, then Beaver selects); its
/// rounds are given by [`NonlinearOp::rounds`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum NonlinearOp {
    Relu,
    Max,
    Min,
    /// Maximum along the last axis (a tournament of comparisons).
    MaxReduce,
    /// Index of the maximum along the last axis, as a fixed-point value.
    Argmax,
    /// Maximum and argmax along the last axis from one tournament, stacked
    /// on a new last axis: `[..., n]` → `[..., 2]`, entry 0 the maximum,
    /// entry 1 the index as a fixed-point value (a model that asks for
    /// both of the same operand pays once).
    MaxArgmax,
    /// Limit to `[lo, hi]`.
    Clamp {
        lo: f64,
        hi: f64,
    },
}

impl NonlinearOp {
    /// Communication rounds, for a last dimension of `n` (reductions).
    pub fn rounds(&self, n: u64) -> u32 {
        use params::COMPARISON_ROUNDS;
        match self {
            NonlinearOp::Relu | NonlinearOp::Max | NonlinearOp::Min | NonlinearOp::Clamp { .. } => {
                COMPARISON_ROUNDS
            }
            NonlinearOp::MaxReduce | NonlinearOp::Argmax | NonlinearOp::MaxArgmax => {
                COMPARISON_ROUNDS * (64 - n.max(1).saturating_sub(1).leading_zeros())
            }
        }
    }
}

fn full_compare_bits() -> u32 {
    params::COMPARE_FULL_BITS
}

fn is_full_compare_bits(bits: &u32) -> bool {
    *bits == params::COMPARE_FULL_BITS
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Instr {
    // --- preprocessing (before inputs exist) ---
    /// Generate a Paillier key pair; `public` receives the public key (sent
    /// to the peer), the private key never leaves this party.
    KeyGen {
        public: Reg,
    },
    /// Dealer: generate every correlation of the plan; `out[i]` is the
    /// message (seed and corrections) for the i-th computing party.
    /// `comparisons`: how the plan's comparisons take the sign bit, which
    /// fixes the correlations dealt for them (every party reads it here).
    Deal {
        out: Vec<Reg>,
        #[serde(default, skip_serializing_if = "DealerComparisons::is_carry_tree")]
        comparisons: DealerComparisons,
    },
    /// Computing party: derive this party's correlation shares from the
    /// dealer's message.
    Expand {
        src: Reg,
    },
    /// Both computing parties: generate the plan's correlations together
    /// (interactive; no dealer), by `engine`.
    GenerateCorrelations {
        peer: PartyIdx,
        engine: CorrelationEngine,
    },

    // --- plaintext, local ---
    /// Bind input `input` from the data this party supplies.
    Input {
        dst: Reg,
        input: u32,
    },
    /// A public constant of the model.
    Const {
        dst: Reg,
        data: Vec<f64>,
    },
    Clear {
        dst: Reg,
        op: ClearOp,
        args: Vec<Reg>,
    },

    // --- secret sharing, local ---
    /// Split a clear value this party holds into two shares (fixed-point
    /// with the plan's precision): keep `keep`, and `send` goes to the peer.
    Split {
        src: Reg,
        keep: Reg,
        send: Reg,
    },
    /// A clear value both computing parties know, as a share: the leader's
    /// share is the value, the other's zero.
    Embed {
        src: Reg,
        dst: Reg,
        leader: bool,
    },
    /// A clear value one party holds, as a share without communication: the
    /// holder's share is the value (`src`), the other's zero (`src` None).
    /// Only input-holder products use it (their masks hide the value).
    Own {
        src: Option<Reg>,
        dst: Reg,
    },
    /// Input-holder product, round 1: this party's masked input, `x - a`
    /// (the holder of `x`) or `w - b` (the other), for correlation `corr`.
    HolderOpen {
        msg: Reg,
        x: Reg,
        y: Reg,
        corr: u32,
    },
    /// Input-holder product, round 2: this party's share of `x @ w` (of
    /// `x ⊛ w` for a [`Correlation::HolderConv`]).
    HolderClose {
        dst: Reg,
        mine: Reg,
        theirs: Reg,
        corr: u32,
        leader: bool,
    },
    Local {
        dst: Reg,
        op: ShareOp,
        args: Vec<Reg>,
        leader: bool,
    },
    /// Beaver multiplication, round 1: message (x - a, y - b) from this
    /// party's shares and correlation `corr`.
    BeaverOpen {
        msg: Reg,
        x: Reg,
        y: Reg,
        corr: u32,
    },
    /// Beaver multiplication, round 2: opens x - a and y - b from both
    /// messages and computes this party's share of x·y (or x @ y).
    BeaverClose {
        dst: Reg,
        mine: Reg,
        theirs: Reg,
        corr: u32,
        leader: bool,
    },
    /// Truncation by `corr`'s bits, round 1. With a dealer's pair
    /// ([`Correlation::Trunc`]) the message is `x + r`; with daBits
    /// ([`Correlation::TruncDaBits`]) one masked bit per element.
    TruncOpen {
        msg: Reg,
        x: Reg,
        corr: u32,
    },
    /// Truncation round 2: combines the peer's message with this party's
    /// and computes the truncated share.
    TruncClose {
        dst: Reg,
        mine: Reg,
        theirs: Reg,
        corr: u32,
        leader: bool,
    },

    // --- Paillier ---
    /// Encrypt a clear value this party holds under its own key.
    Encrypt {
        dst: Reg,
        src: Reg,
    },
    /// Homomorphic operation by the ciphertext holder.
    Hom {
        dst: Reg,
        op: HomOp,
        args: Vec<Reg>,
    },
    /// Cipher → shares, holder side: add a fresh random mask with
    /// [`params::MASK_SLACK_BITS`] bits of statistical slack over
    /// `bound_bits`, keep the share -(mask >> shift),
    /// and put the masked ciphertext in `masked` for the key owner.
    Mask {
        masked: Reg,
        share: Reg,
        src: Reg,
        bound_bits: u32,
        shift: u32,
    },
    /// Cipher → shares, key-owner side: decrypt and keep (value >> shift) mod 2^64.
    DecryptShare {
        dst: Reg,
        src: Reg,
        shift: u32,
    },
    /// Re-randomise ciphertexts before they leave this party.
    Rerandomize {
        dst: Reg,
        src: Reg,
    },
    /// Decrypt a ciphertext under this party's key to a clear value (only
    /// ever for an output addressed to this party).
    Decrypt {
        dst: Reg,
        src: Reg,
    },

    // --- RLWE (lattice) matrix products, `x @ w` ---
    /// This party's RLWE key pair, once per session before its first
    /// [`Instr::RlweQuery`]; `public` receives the public key (sent to the
    /// peer, which re-randomises its responses with it). The secret key
    /// never leaves this party.
    RlweKeyGen {
        public: Reg,
    },
    /// RLWE product, the encrypting party: `msg` is the seeded encryption,
    /// under this party's own RLWE key, of `x` (a clear value, encoded at the
    /// plan's precision, or this party's share). `dst` is the product's
    /// share register; its shape, `x`'s and `w_bits` fix the layout both
    /// parties compute ([`params::RLWE_RING_DEGREE`]).
    ///
    /// With `conv`, the product is a convolution's Im2col patches times its
    /// kernels `[C·kh·kw, Cout]` run natively (Cheetah's HomConv, no
    /// patches on the wire): `x` is then the input `[batch, C, H, W]`
    /// (padded here by `conv`'s padding, zeros), `dst` `[batch, Ho, Wo,
    /// Cout]`; 2-D, one group, dilation 1, zero padding.
    RlweQuery {
        msg: Reg,
        x: Reg,
        dst: Reg,
        w_bits: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conv: Option<Window>,
        /// The product was prepared ([`Instr::RlwePrepare`]): `msg` is then
        /// only `x`'s coefficients of the query (`rlwe::OnlineQueryMsg`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        prepared: bool,
    },
    /// RLWE product, the other party: multiplies the peer's `query` by `w`
    /// (clear, encoded at the plan's precision, or this party's share; every
    /// entry a signed integer of `w_bits` bits), re-randomises with the
    /// peer's public key `key`, floods and masks; `msg` is the response and
    /// `dst` this party's share of the product, plus `add @ w` when `add`
    /// is this party's share of `x`.
    RlweRespond {
        msg: Reg,
        dst: Reg,
        query: Reg,
        key: Reg,
        w: Reg,
        add: Option<Reg>,
        w_bits: u32,
        /// The convolution of [`Instr::RlweQuery`]'s `conv`: `w` is then
        /// `[C·kh·kw, Cout]` and `add` (if any) this party's share of the
        /// patches, `[batch, Ho, Wo, C·kh·kw]`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conv: Option<Window>,
        /// The product was prepared ([`Instr::RlwePrepareRespond`]): `query`
        /// is then the online query and `msg` the used coefficients of
        /// the results (`rlwe::OnlineResponseMsg`); `key` is unused.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        prepared: bool,
        /// `W` is this party's input `weights`, read here in the
        /// preprocessing of a masked product ([`Instr::RlweMask`]), before
        /// any input is bound; `w` (the register its later [`Instr::Input`]
        /// binds) is then named for its shape only, and `add` is `None`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weights: Option<u32>,
    },
    /// RLWE product, the encrypting party: decrypts the peer's `response`
    /// into this party's share `dst` (the register its query named).
    RlweFinish {
        dst: Reg,
        response: Reg,
    },
    /// Preprocessing of a masked RLWE product (Delphi's linear layers,
    /// Mishra et al., USENIX Security 2020, section 4), the encrypting
    /// party: draws `mask`, uniform in Z_2^64 from the OS CSPRNG, fresh for
    /// this product and session; it never leaves this party. An
    /// [`Instr::RlweQuery`] of `mask` and its [`Instr::RlweRespond`]
    /// (`weights`) follow in the preprocessing: shares of `mask @ W`.
    RlweMask {
        mask: Reg,
    },
    /// Online step of a masked RLWE product, the encrypting party: `msg`
    /// is `x - mask` (`x` clear, encoded at the plan's precision, or this
    /// party's share of it; uniform, since `mask` is), sent to the peer;
    /// this party's share `dst` of `x @ W` is `pre`, its share of
    /// `mask @ W`. No HE online and nothing comes back.
    RlweMaskedOpen {
        msg: Reg,
        x: Reg,
        mask: Reg,
        pre: Reg,
        dst: Reg,
    },
    /// Online step of a masked RLWE product, the other party: its share
    /// `dst` of `x @ W` is `(msg + add) @ w + pre`, locally in Z_2^64
    /// (`msg` the peer's `x - mask`, `add` this party's share of `x` if `x`
    /// is shared, `pre` its share of `mask @ W`). With `conv` (a
    /// convolution by HomConv on the mask in the preprocessing), `msg` is
    /// the input minus its mask, cut into `conv`'s patches here, and
    /// `add` this party's share of the patches: `(im2col(msg) + add) @ w +
    /// pre`.
    RlweMaskedClose {
        dst: Reg,
        msg: Reg,
        w: Reg,
        add: Option<Reg>,
        pre: Reg,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conv: Option<Window>,
    },
    /// Preprocessing of a prepared RLWE product (`rlwe::prepared`), the
    /// encrypting party: `msg` is the query's seed and its coefficients
    /// that carry no input (`rlwe::OfflineQueryMsg`). `x` and `dst` are the
    /// registers of the later [`Instr::RlweQuery`] (`prepared`), named for
    /// their shapes only: neither holds a value yet.
    RlwePrepare {
        msg: Reg,
        x: Reg,
        dst: Reg,
        w_bits: u32,
    },
    /// Preprocessing of a prepared RLWE product, the other party: answers
    /// the peer's offline `query` under its key `key` with `W`, which is
    /// this party's input `weights` (read here, before any input is bound:
    /// the model owner has its weights before data arrives; `w`, the
    /// register its later [`Instr::Input`] binds, is named for its shape
    /// only). `msg` is the results' `a` halves
    /// (`rlwe::OfflineResponseMsg`); the rest waits for the
    /// [`Instr::RlweRespond`] (`prepared`) of the same `dst`.
    RlwePrepareRespond {
        msg: Reg,
        dst: Reg,
        query: Reg,
        key: Reg,
        w: Reg,
        weights: u32,
        w_bits: u32,
    },
    /// Preprocessing of a prepared RLWE product, the encrypting party:
    /// takes the peer's offline `response` for `dst`.
    RlwePrepareFinish {
        dst: Reg,
        response: Reg,
    },

    /// A comparison-based operation on shares, run jointly with `peer`
    /// (both computing parties execute it at the same point of their programs).
    Nonlinear {
        dst: Reg,
        op: NonlinearOp,
        args: Vec<Reg>,
        peer: PartyIdx,
        leader: bool,
        /// Every value the operation compares (the operand for `Relu`, the
        /// differences of operands or entries for the others, `x − lo` and
        /// `hi − x` for `Clamp`) lies in `[-2^bits, 2^bits)` at the plan's
        /// precision, by the compiler's range analysis: the millionaires'
        /// comparison reads only the bits that can differ
        /// ([`params::mill_leaves`]). 1 to 63; 63 says nothing.
        #[serde(
            default = "full_compare_bits",
            skip_serializing_if = "is_full_compare_bits"
        )]
        bits: u32,
    },

    // --- communication ---
    Send {
        to: PartyIdx,
        regs: Vec<Reg>,
    },
    Recv {
        from: PartyIdx,
        regs: Vec<Reg>,
    },

    // --- outputs ---
    /// Reconstruct a clear value from this party's share and the peer's.
    Reveal {
        dst: Reg,
        mine: Reg,
        theirs: Reg,
    },
    /// This party learns output `output`, from clear register `src`.
    Output {
        src: Reg,
        output: u32,
    },
}

impl Instr {
    /// Registers this instruction reads.
    pub fn reads(&self) -> Vec<Reg> {
        let mut r = Vec::new();
        self.reads_into(&mut r);
        r
    }

    /// [`Instr::reads`] appended to `out`, for a caller that reuses one
    /// buffer over a program (the executor, once per instruction).
    pub fn reads_into(&self, out: &mut Vec<Reg>) {
        match self {
            Instr::Input { .. }
            | Instr::Const { .. }
            | Instr::Recv { .. }
            | Instr::KeyGen { .. }
            | Instr::RlweKeyGen { .. }
            | Instr::Deal { .. }
            | Instr::GenerateCorrelations { .. }
            | Instr::RlweMask { .. }
            | Instr::RlwePrepare { .. } => {}
            Instr::RlweQuery { x, .. } => out.push(*x),
            Instr::RlweRespond {
                query,
                key,
                w,
                add,
                weights,
                ..
            } => {
                out.extend_from_slice(&[*query, *key]);
                // A masked product's preprocessing reads `W` from the input.
                if weights.is_none() {
                    out.push(*w);
                }
                out.extend(add);
            }
            Instr::RlweMaskedOpen { x, mask, pre, .. } => out.extend_from_slice(&[*x, *mask, *pre]),
            Instr::RlweMaskedClose {
                msg, w, add, pre, ..
            } => {
                out.extend_from_slice(&[*msg, *w, *pre]);
                out.extend(add);
            }
            Instr::RlweFinish { response, .. } | Instr::RlwePrepareFinish { response, .. } => {
                out.push(*response)
            }
            Instr::RlwePrepareRespond { query, key, .. } => out.extend_from_slice(&[*query, *key]),
            Instr::Expand { src } => out.push(*src),
            Instr::Clear { args, .. }
            | Instr::Local { args, .. }
            | Instr::Hom { args, .. }
            | Instr::Nonlinear { args, .. } => out.extend_from_slice(args),
            Instr::Split { src, .. }
            | Instr::Embed { src, .. }
            | Instr::Encrypt { src, .. }
            | Instr::Mask { src, .. }
            | Instr::DecryptShare { src, .. }
            | Instr::Rerandomize { src, .. }
            | Instr::Decrypt { src, .. }
            | Instr::Output { src, .. } => out.push(*src),
            Instr::BeaverOpen { x, y, .. } | Instr::HolderOpen { x, y, .. } => {
                out.extend_from_slice(&[*x, *y])
            }
            Instr::Own { src, .. } => out.extend(src),
            Instr::BeaverClose { mine, theirs, .. }
            | Instr::HolderClose { mine, theirs, .. }
            | Instr::TruncClose { mine, theirs, .. }
            | Instr::Reveal { mine, theirs, .. } => out.extend_from_slice(&[*mine, *theirs]),
            Instr::TruncOpen { x, .. } => out.push(*x),
            Instr::Send { regs, .. } => out.extend_from_slice(regs),
        }
    }

    /// Registers this instruction writes.
    pub fn writes(&self) -> Vec<Reg> {
        let mut w = Vec::new();
        self.writes_into(&mut w);
        w
    }

    /// [`Instr::writes`] appended to `out`.
    pub fn writes_into(&self, out: &mut Vec<Reg>) {
        match self {
            Instr::Input { dst, .. }
            | Instr::Const { dst, .. }
            | Instr::Clear { dst, .. }
            | Instr::Embed { dst, .. }
            | Instr::Local { dst, .. }
            | Instr::BeaverClose { dst, .. }
            | Instr::HolderClose { dst, .. }
            | Instr::Own { dst, .. }
            | Instr::TruncClose { dst, .. }
            | Instr::Encrypt { dst, .. }
            | Instr::Hom { dst, .. }
            | Instr::DecryptShare { dst, .. }
            | Instr::Rerandomize { dst, .. }
            | Instr::Decrypt { dst, .. }
            | Instr::Nonlinear { dst, .. }
            | Instr::RlweFinish { dst, .. }
            | Instr::Reveal { dst, .. } => out.push(*dst),
            Instr::RlweQuery { msg, .. }
            | Instr::RlwePrepare { msg, .. }
            | Instr::RlwePrepareRespond { msg, .. } => out.push(*msg),
            Instr::RlweRespond { msg, dst, .. } | Instr::RlweMaskedOpen { msg, dst, .. } => {
                out.extend_from_slice(&[*msg, *dst])
            }
            Instr::RlweMask { mask } => out.push(*mask),
            Instr::RlweMaskedClose { dst, .. } => out.push(*dst),
            Instr::Split { keep, send, .. } => out.extend_from_slice(&[*keep, *send]),
            Instr::BeaverOpen { msg, .. }
            | Instr::TruncOpen { msg, .. }
            | Instr::HolderOpen { msg, .. } => out.push(*msg),
            Instr::Mask { masked, share, .. } => out.extend_from_slice(&[*masked, *share]),
            Instr::Recv { regs, .. } | Instr::Deal { out: regs, .. } => out.extend_from_slice(regs),
            Instr::KeyGen { public } | Instr::RlweKeyGen { public } => out.push(*public),
            Instr::Send { .. }
            | Instr::Output { .. }
            | Instr::Expand { .. }
            | Instr::RlwePrepareFinish { .. }
            | Instr::GenerateCorrelations { .. } => {}
        }
    }
}

/// One party's straight-line program. Execution has two phases: the
/// preprocessing (keys and correlated randomness, before inputs exist) and
/// `instrs`, the online phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Program {
    pub party: PartyIdx,
    pub instrs: Vec<Instr>,
}

/// The compiler's estimate for the whole plan, per the chosen network profile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub compute_seconds: f64,
    pub bytes: f64,
    pub rounds: u32,
    pub seconds: f64,
    /// The size assumed for symbolic dimensions in the estimate.
    pub assumed_dims: BTreeMap<String, u64>,
}

/// A size the compiler's analysis assumed for a symbolic dimension: a
/// reduction along it (a sum, a matrix product's inner dimension, an argmax)
/// has a range that grows with it, and a mean divides by it. The runtime
/// refuses data whose dimension exceeds `size` (or differs from it, when
/// `exact`), since the overflow and error analysis would not hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DimLimit {
    pub name: String,
    pub size: u64,
    /// The plan is right only at exactly this size (a mean divides by it).
    pub exact: bool,
    /// The operation that depends on it, for people: "s = sum(x)".
    pub because: String,
}

impl DimLimit {
    /// Checks one bound size; the error says what to do.
    pub fn check(&self, size: u64) -> Result<(), String> {
        let ok = if self.exact {
            size == self.size
        } else {
            size <= self.size
        };
        if ok {
            return Ok(());
        }
        Err(format!(
            "dimension `{}` is {size}, but the plan was compiled for {} {} (`{}` {}); \
             compile it for this size with --assume {}={size}",
            self.name,
            if self.exact { "exactly" } else { "at most" },
            self.size,
            self.because,
            if self.exact {
                "divides by it"
            } else {
                "reduces along it, and its range grows with it"
            },
            self.name,
        ))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    pub model: String,
    /// Fractional bits of the fixed-point encoding.
    pub precision: u32,
    pub parties: Vec<Party>,
    pub inputs: Vec<InputSpec>,
    /// Sizes of symbolic dimensions the analysis depends on.
    pub dim_limits: Vec<DimLimit>,
    pub outputs: Vec<OutputSpec>,
    pub regs: Vec<RegInfo>,
    pub randomness: RandomnessSource,
    pub correlations: Vec<Correlation>,
    pub keys: Vec<KeySpec>,
    pub programs: Vec<Program>,
    pub estimate: Estimate,
}

impl Plan {
    pub fn reg(&self, r: Reg) -> &RegInfo {
        &self.regs[r.0 as usize]
    }

    pub fn party_name(&self, p: PartyIdx) -> &str {
        &self.parties[p as usize].name
    }

    pub fn program(&self, p: PartyIdx) -> &Program {
        &self.programs[p as usize]
    }

    /// Every symbolic dimension of the plan's inputs at `size` (a batch:
    /// `--batch`, a service's `--max-batch`, random demo inputs).
    pub fn dims_at(&self, size: usize) -> BTreeMap<String, usize> {
        self.inputs
            .iter()
            .flat_map(|i| &i.shape.0)
            .filter_map(|d| match d {
                Dim::Symbol(s) => Some((s.clone(), size)),
                Dim::Known(_) => None,
            })
            .collect()
    }

    /// Checks the sizes of symbolic dimensions against [`Plan::dim_limits`].
    pub fn check_dims<'a>(
        &self,
        dims: impl IntoIterator<Item = (&'a str, u64)>,
    ) -> Result<(), String> {
        for (name, size) in dims {
            for l in self.dim_limits.iter().filter(|l| l.name == name) {
                l.check(size)?;
            }
        }
        Ok(())
    }

    /// Whether party `p` takes part in the plan: it has instructions, a
    /// party talks to it, it supplies the correlated randomness, owns an
    /// input or learns an output. The dealer of a model compiled without
    /// one (`--no-dealer`) takes no part: it is neither started nor waited for.
    pub fn takes_part(&self, p: PartyIdx) -> bool {
        let named = |ins: &Instr| match ins {
            Instr::Send { to: q, .. }
            | Instr::Recv { from: q, .. }
            | Instr::Nonlinear { peer: q, .. }
            | Instr::GenerateCorrelations { peer: q, .. } => *q == p,
            _ => false,
        };
        self.programs
            .get(p as usize)
            .is_some_and(|prog| !prog.instrs.is_empty())
            || self
                .programs
                .iter()
                .flat_map(|prog| &prog.instrs)
                .any(named)
            || self.randomness == RandomnessSource::Dealer(p)
            || self.keys.iter().any(|k| k.owner == p || k.peer == p)
            || self.inputs.iter().any(|i| i.owner == Owner::Party(p))
            || self.outputs.iter().any(|o| o.to.contains(&p))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plans always serialize")
    }

    pub fn from_json(text: &str) -> Result<Plan, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The stable, indented text form.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) -> fmt::Result {
        writeln!(
            out,
            "plan {} (format {}, precision {})",
            self.model, self.format, self.precision
        )?;
        let parties: Vec<String> = self
            .parties
            .iter()
            .map(|p| match p.role {
                Role::Compute => p.name.clone(),
                Role::Dealer => format!("{} (dealer)", p.name),
            })
            .collect();
        writeln!(out, "  parties: {}", parties.join(", "))?;
        match self.randomness {
            RandomnessSource::Dealer(d) => {
                writeln!(out, "  randomness: dealer {}", self.party_name(d))?
            }
            RandomnessSource::TwoParty => writeln!(out, "  randomness: two-party")?,
        }
        writeln!(out, "  inputs:")?;
        for i in &self.inputs {
            let owner = match i.owner {
                Owner::Public => "public".to_string(),
                Owner::Party(p) => format!("private({})", self.party_name(p)),
            };
            let (lo, hi) = i.range;
            let range = if !i.columns.is_empty() {
                let c: Vec<String> = i
                    .columns
                    .iter()
                    .map(|(l, h)| format!("[{l}, {h}]"))
                    .collect();
                format!(" in [{}]", c.join(", "))
            } else if i.range_declared {
                format!(" in [{lo}, {hi}]")
            } else {
                format!(" in [{lo}, {hi}] (default)")
            };
            writeln!(out, "    {}: {} {owner}{range}", i.name, i.shape)?;
        }
        for l in &self.dim_limits {
            writeln!(
                out,
                "  dimension {} {} {} ({})",
                l.name,
                if l.exact { "=" } else { "<=" },
                l.size,
                l.because
            )?;
        }
        writeln!(out, "  outputs:")?;
        for o in &self.outputs {
            let to: Vec<&str> = o.to.iter().map(|p| self.party_name(*p)).collect();
            write!(
                out,
                "    {}: {} to {} (error <= {:.3e}",
                o.name,
                o.shape,
                to.join(", "),
                o.error_bound
            )?;
            match o.near_tie {
                Some(slack) => write!(out, ", or any index within {slack:.3e} of the maximum)")?,
                None => write!(out, ")")?,
            }
            match &o.labels {
                Some(l) => {
                    let l: Vec<String> = l.iter().map(|v| v.to_string()).collect();
                    writeln!(out, " labels [{}]", l.join(", "))?
                }
                None => writeln!(out)?,
            }
        }
        if !self.keys.is_empty() {
            writeln!(out, "  keys:")?;
            for k in &self.keys {
                writeln!(
                    out,
                    "    paillier key of {} (>= {} bits), public half to {}",
                    self.party_name(k.owner),
                    k.min_bits,
                    self.party_name(k.peer)
                )?;
            }
        }
        if !self.correlations.is_empty() {
            writeln!(out, "  correlations:")?;
            for (i, c) in self.correlations.iter().enumerate() {
                let text = match c {
                    Correlation::Elementwise { shape } => format!("triple {shape}"),
                    Correlation::MatMul { lhs, rhs } => format!("matrix triple {lhs} @ {rhs}"),
                    Correlation::Conv { input, window, rhs } => {
                        format!("convolution triple {input} {} @ {rhs}", window_text(window))
                    }
                    Correlation::HolderMatMul {
                        lhs,
                        rhs,
                        lhs_holder,
                    } => {
                        format!(
                            "input-holder matrix triple {lhs} @ {rhs}, a known to {}",
                            self.party_name(*lhs_holder)
                        )
                    }
                    Correlation::HolderConv {
                        input,
                        window,
                        rhs,
                        lhs_holder,
                    } => {
                        format!(
                            "input-holder convolution triple {input} {} @ {rhs}, a known to {}",
                            window_text(window),
                            self.party_name(*lhs_holder)
                        )
                    }
                    Correlation::Trunc { shape, bits } => {
                        format!("truncation pair {shape} >> {bits}")
                    }
                    Correlation::TruncDaBits { shape, bits } => {
                        format!("truncation daBits {shape} >> {bits}")
                    }
                };
                writeln!(out, "    #{i}: {text}")?;
            }
        }
        writeln!(out, "  registers:")?;
        for (i, r) in self.regs.iter().enumerate() {
            let kind = match r.kind {
                Kind::Clear => "clear".to_string(),
                Kind::Share { scale } => format!("share@{scale}"),
                Kind::Cipher { key, scale } => format!("cipher@{scale}[{}]", self.party_name(key)),
                Kind::Message => "message".to_string(),
            };
            writeln!(out, "    %{i}: {kind} {} ; {}", r.shape, r.note)?;
        }
        for prog in &self.programs {
            writeln!(out, "  program {}:", self.party_name(prog.party))?;
            if prog.instrs.is_empty() {
                writeln!(out, "    (nothing)")?;
            }
            for ins in &prog.instrs {
                writeln!(out, "    {}", self.instr_text(ins))?;
            }
        }
        let e = &self.estimate;
        let dims: Vec<String> = e
            .assumed_dims
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(
            out,
            "  estimate: {:.3e} s ({:.3e} s compute, {:.0} bytes, {} rounds){}",
            e.seconds,
            e.compute_seconds,
            e.bytes,
            e.rounds,
            if dims.is_empty() {
                String::new()
            } else {
                format!(" assuming {}", dims.join(", "))
            }
        )
    }

    /// How the two computing parties generate correlations (`None`: a
    /// dealer supplies them, or the plan needs none).
    pub fn correlation_engine(&self) -> Option<CorrelationEngine> {
        self.programs
            .iter()
            .flat_map(|p| &p.instrs)
            .find_map(|i| match i {
                Instr::GenerateCorrelations { engine, .. } => Some(*engine),
                _ => None,
            })
    }

    /// Whether any party runs a secure comparison.
    pub fn has_comparisons(&self) -> bool {
        self.programs
            .iter()
            .flat_map(|p| &p.instrs)
            .any(|i| matches!(i, Instr::Nonlinear { .. }))
    }

    /// How the dealer's comparisons take the sign bit (the carry tree where
    /// the plan has no dealer).
    pub fn dealer_comparisons(&self) -> DealerComparisons {
        self.programs
            .iter()
            .flat_map(|p| &p.instrs)
            .find_map(|i| match i {
                Instr::Deal { comparisons, .. } => Some(*comparisons),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// One instruction in the text form.
    pub fn instr_text(&self, ins: &Instr) -> String {
        let regs = |rs: &[Reg]| rs.iter().map(Reg::to_string).collect::<Vec<_>>().join(", ");
        let lead = |l: bool| if l { " (leader)" } else { "" };
        match ins {
            Instr::KeyGen { public } => format!("{public} = keygen"),
            Instr::Deal { out, comparisons } => match comparisons {
                DealerComparisons::CarryTree => format!("{} = deal", regs(out)),
                DealerComparisons::Dcf => format!("{} = deal (comparisons by DCF keys)", regs(out)),
            },
            Instr::Expand { src } => format!("expand {src}"),
            Instr::GenerateCorrelations { peer, engine } => {
                format!(
                    "generate correlations with {} by {}",
                    self.party_name(*peer),
                    engine.name()
                )
            }
            Instr::Input { dst, input } => {
                format!("{dst} = input {}", self.inputs[*input as usize].name)
            }
            Instr::Const { dst, data } => {
                let shown: Vec<String> = data.iter().take(4).map(|v| v.to_string()).collect();
                let more = if data.len() > 4 { ", ..." } else { "" };
                format!("{dst} = const [{}{more}]", shown.join(", "))
            }
            Instr::Clear { dst, op, args } => {
                format!("{dst} = clear.{} {}", clear_op_text(op), regs(args))
            }
            Instr::Split { src, keep, send } => format!("{keep}, {send} = split {src}"),
            Instr::Embed { src, dst, leader } => format!("{dst} = embed {src}{}", lead(*leader)),
            Instr::Local {
                dst,
                op,
                args,
                leader,
            } => {
                format!(
                    "{dst} = share.{} {}{}",
                    share_op_text(op),
                    regs(args),
                    lead(*leader)
                )
            }
            Instr::Own {
                src: Some(src),
                dst,
            } => format!("{dst} = own {src}"),
            Instr::Own { src: None, dst } => format!("{dst} = own (zero: the peer holds it)"),
            Instr::HolderOpen { msg, x, y, corr } => {
                format!("{msg} = holder.open {x}, {y} with #{corr}")
            }
            Instr::HolderClose {
                dst,
                mine,
                theirs,
                corr,
                leader,
            } => {
                format!(
                    "{dst} = holder.close {mine}, {theirs} with #{corr}{}",
                    lead(*leader)
                )
            }
            Instr::BeaverOpen { msg, x, y, corr } => {
                format!("{msg} = beaver.open {x}, {y} with #{corr}")
            }
            Instr::BeaverClose {
                dst,
                mine,
                theirs,
                corr,
                leader,
            } => {
                format!(
                    "{dst} = beaver.close {mine}, {theirs} with #{corr}{}",
                    lead(*leader)
                )
            }
            Instr::TruncOpen { msg, x, corr } => format!("{msg} = trunc.open {x} with #{corr}"),
            Instr::TruncClose {
                dst,
                mine,
                theirs,
                corr,
                leader,
            } => {
                format!(
                    "{dst} = trunc.close {mine}, {theirs} with #{corr}{}",
                    lead(*leader)
                )
            }
            Instr::Encrypt { dst, src } => format!("{dst} = encrypt {src}"),
            Instr::Hom { dst, op, args } => {
                format!("{dst} = hom.{} {}", hom_op_text(op), regs(args))
            }
            Instr::Mask {
                masked,
                share,
                src,
                bound_bits,
                shift,
            } => {
                format!("{masked}, {share} = mask {src} (|value| < 2^{bound_bits}, +{} bits slack, >> {shift})", params::MASK_SLACK_BITS)
            }
            Instr::DecryptShare { dst, src, shift } => {
                format!("{dst} = decrypt.share {src} >> {shift}")
            }
            Instr::Rerandomize { dst, src } => format!("{dst} = rerandomize {src}"),
            Instr::Decrypt { dst, src } => format!("{dst} = decrypt {src}"),
            Instr::RlweKeyGen { public } => format!("{public} = rlwe.keygen"),
            Instr::RlweQuery {
                msg,
                x,
                dst,
                w_bits,
                conv,
                prepared,
            } => format!(
                "{msg} = rlwe.query {x} for {dst} (w: {w_bits} bits){}{}",
                conv_text(conv),
                prepared_text(*prepared)
            ),
            Instr::RlweRespond {
                msg,
                dst,
                query,
                key,
                w,
                add,
                w_bits,
                conv,
                prepared,
                weights,
            } => format!(
                "{msg}, {dst} = rlwe.respond {query} @ {w}{}{} under {key} (w: {w_bits} bits){}{}",
                weights.map_or(String::new(), |i| format!(
                    " = input {}",
                    self.inputs
                        .get(i as usize)
                        .map_or(format!("#{i}"), |s| format!("`{}`", s.name))
                )),
                add.map_or(String::new(), |a| format!(" + {a} @ {w}")),
                conv_text(conv),
                prepared_text(*prepared)
            ),
            Instr::RlweMask { mask } => format!("{mask} = rlwe.mask"),
            Instr::RlweMaskedOpen {
                msg,
                x,
                mask,
                pre,
                dst,
            } => format!("{msg}, {dst} = rlwe.masked.open {x} - {mask}, {pre}"),
            Instr::RlweMaskedClose {
                dst,
                msg,
                w,
                add,
                pre,
                conv,
            } => format!(
                "{dst} = rlwe.masked.close ({msg}{}) @ {w} + {pre}{}",
                add.map_or(String::new(), |a| format!(" + {a}")),
                conv_text(conv)
            ),
            Instr::RlweFinish { dst, response } => format!("{dst} = rlwe.finish {response}"),
            Instr::RlwePrepare {
                msg,
                x,
                dst,
                w_bits,
            } => format!("{msg} = rlwe.prepare for {x} -> {dst} (w: {w_bits} bits)"),
            Instr::RlwePrepareRespond {
                msg,
                dst,
                query,
                key,
                w,
                weights,
                w_bits,
            } => format!(
                "{msg} = rlwe.prepare.respond {query} @ {w} = input {} for {dst} under {key} (w: {w_bits} bits)",
                self.inputs
                    .get(*weights as usize)
                    .map_or(format!("#{weights}"), |i| format!("`{}`", i.name))
            ),
            Instr::RlwePrepareFinish { dst, response } => {
                format!("rlwe.prepare.finish {response} for {dst}")
            }
            Instr::Nonlinear {
                dst,
                op,
                args,
                peer,
                leader,
                bits,
            } => format!(
                "{dst} = compare.{} {}{} with {}{}",
                match op {
                    NonlinearOp::Clamp { lo, hi } => format!("clamp[{lo}, {hi}]"),
                    other => format!("{other:?}").to_lowercase(),
                },
                regs(args),
                if is_full_compare_bits(bits) {
                    String::new()
                } else {
                    format!(" within 2^{bits}")
                },
                self.party_name(*peer),
                lead(*leader)
            ),
            Instr::Send { to, regs: rs } => {
                format!("send {} to {}", regs(rs), self.party_name(*to))
            }
            Instr::Recv { from, regs: rs } => {
                format!("recv {} from {}", regs(rs), self.party_name(*from))
            }
            Instr::Reveal { dst, mine, theirs } => format!("{dst} = reveal {mine}, {theirs}"),
            Instr::Output { src, output } => {
                format!("output {} = {src}", self.outputs[*output as usize].name)
            }
        }
    }

    /// Messages a party sends, in program order, grouped into rounds: a round
    /// ends where the party next waits for a message.
    pub fn rounds(&self, party: PartyIdx) -> u32 {
        let mut rounds = 0;
        let mut sent_since_recv = false;
        // Correlations from OT: comparisons by the millionaires' protocol
        // and the OT multiplexer, one round fewer each.
        let ot = self.programs.iter().any(|p| {
            p.instrs.iter().any(|i| {
                matches!(
                    i,
                    Instr::GenerateCorrelations {
                        engine: CorrelationEngine::Ot,
                        ..
                    }
                )
            })
        });
        let dcf = self.dealer_comparisons() == DealerComparisons::Dcf;
        for ins in &self.program(party).instrs {
            match ins {
                Instr::Nonlinear { op, args, bits, .. } => {
                    let n = args
                        .first()
                        .and_then(|r| self.reg(*r).shape.0.last())
                        .map_or(1, |d| match d {
                            Dim::Known(n) => *n,
                            Dim::Symbol(_) => 1,
                        });
                    // A pending send travels with the protocol's first message.
                    let r = op.rounds(n);
                    rounds += if ot {
                        let mill = params::mill_rounds(params::mill_leaves(*bits));
                        r / params::COMPARISON_ROUNDS * (mill + 2) + r % params::COMPARISON_ROUNDS
                    } else if dcf {
                        r / params::COMPARISON_ROUNDS * params::DCF_COMPARISON_ROUNDS
                            + r % params::COMPARISON_ROUNDS
                    } else {
                        r
                    };
                    sent_since_recv = false;
                }
                // By OT: the base OTs' hello and reply, then one extension
                // and its corrections per piece of 2^20 OTs (at least one;
                // a large plan has more, which this count does not see).
                Instr::GenerateCorrelations {
                    engine: CorrelationEngine::Ot,
                    ..
                } => {
                    rounds += 2;
                    sent_since_recv = false;
                }
                Instr::Send { .. } => sent_since_recv = true,
                Instr::Recv { .. } if sent_since_recv => {
                    rounds += 1;
                    sent_since_recv = false;
                }
                _ => {}
            }
        }
        rounds + u32::from(sent_since_recv)
    }
}

fn clear_op_text(op: &ClearOp) -> String {
    match op {
        ClearOp::Poly(c) => format!("poly{c:?}"),
        ClearOp::Clamp(lo, hi) => format!("clamp[{lo}, {hi}]"),
        ClearOp::Permute(perm) => format!("permute{perm:?}"),
        ClearOp::Im2col(w) => window_text(w),
        ClearOp::Narrow { start, len } => format!("narrow[{start}, {len}]"),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn share_op_text(op: &ShareOp) -> String {
    match op {
        ShareOp::MulPublic { bits } => format!("mul_public@{bits}"),
        ShareOp::MatMulPublic { bits, public_left } => {
            format!(
                "matmul_public@{bits}{}",
                if *public_left { " (public left)" } else { "" }
            )
        }
        ShareOp::MulInt(k) => format!("mul_int {k}"),
        ShareOp::Broadcast => "broadcast".into(),
        ShareOp::Add => "add".into(),
        ShareOp::Sub => "sub".into(),
        ShareOp::Neg => "neg".into(),
        ShareOp::AddPublic => "add_public".into(),
        ShareOp::SubPublic => "sub_public".into(),
        ShareOp::PublicSub => "public_sub".into(),
        ShareOp::Sum => "sum".into(),
        ShareOp::Permute(perm) => format!("permute{perm:?}"),
        ShareOp::Reshape => "reshape".into(),
        ShareOp::Im2col(w) => window_text(w),
        ShareOp::Concat => "concat".into(),
        ShareOp::Narrow { start, len } => format!("narrow[{start}, {len}]"),
    }
}

/// `im2col[kernel 5x5 stride 1x1 padding 0x0 dilation 1x1]`, with
/// `groups g x m` when grouped and `edge` after an edge padding.
fn window_text(w: &Window) -> String {
    let x = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join("x");
    let groups = if w.groups > 1 {
        format!(" groups {}x{}", w.groups, w.per_group)
    } else {
        String::new()
    };
    let edge = if w.edge { " edge" } else { "" };
    format!(
        "im2col[kernel {} stride {} padding {}{edge} dilation {}{groups}]",
        x(&w.kernel),
        x(&w.stride),
        x(&w.padding),
        x(&w.dilation)
    )
}

/// ` prepared` for a prepared RLWE product's online step.
fn prepared_text(prepared: bool) -> &'static str {
    if prepared {
        " prepared"
    } else {
        ""
    }
}

/// ` as conv im2col[...]` for an RLWE convolution, nothing for a product.
fn conv_text(conv: &Option<Window>) -> String {
    conv.as_ref()
        .map_or(String::new(), |w| format!(" as conv {}", window_text(w)))
}

fn hom_op_text(op: &HomOp) -> String {
    match op {
        HomOp::MatMul { bits } => format!("matmul@{bits}"),
        HomOp::MatMulLeft { bits } => format!("matmul_left@{bits}"),
        HomOp::Mul { bits } => format!("mul@{bits}"),
        HomOp::AddPlain => "add_plain".into(),
        HomOp::SubPlain => "sub_plain".into(),
        HomOp::PlainSub => "plain_sub".into(),
        HomOp::Add => "add".into(),
        HomOp::Sub => "sub".into(),
        HomOp::Neg => "neg".into(),
        HomOp::Sum => "sum".into(),
    }
}

/// Simulate message delivery: each party runs until it waits on a `Recv`
/// whose message has not been sent. Returns the blocked parties' program
/// counters if the plan deadlocks, `None` if every program finishes.
pub(crate) fn simulate(plan: &Plan) -> Result<(), Vec<(PartyIdx, usize)>> {
    let n = plan.programs.len();
    let mut pc = vec![0usize; n];
    // queues[from][to]: register lists sent and not yet received.
    let mut queues: Vec<Vec<VecDeque<Vec<Reg>>>> = vec![vec![VecDeque::new(); n]; n];
    let mut joined = vec![false; n];
    loop {
        let mut progressed = false;
        for p in 0..n {
            let prog = &plan.programs[p].instrs;
            while pc[p] < prog.len() {
                match &prog[pc[p]] {
                    // A joint protocol: both sides send, then both receive.
                    Instr::Nonlinear { peer, .. } if !joined[p] => {
                        queues[p][*peer as usize].push_back(Vec::new());
                        joined[p] = true;
                        progressed = true;
                        continue;
                    }
                    Instr::Nonlinear { peer, .. } => {
                        if queues[*peer as usize][p].pop_front().is_none() {
                            break;
                        }
                        joined[p] = false;
                    }
                    Instr::Send { to, regs } => queues[p][*to as usize].push_back(regs.clone()),
                    Instr::Recv { from, .. } if queues[*from as usize][p].pop_front().is_none() => {
                        break
                    }
                    _ => {}
                }
                pc[p] += 1;
                progressed = true;
            }
        }
        if (0..n).all(|p| pc[p] == plan.programs[p].instrs.len()) {
            return Ok(());
        }
        if !progressed {
            return Err((0..n)
                .filter(|&p| pc[p] < plan.programs[p].instrs.len())
                .map(|p| (p as PartyIdx, pc[p]))
                .collect());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_party_with_nothing_to_do_takes_no_part() {
        let plan = fingerprint::tests::echo_plan();
        assert!(plan.takes_part(0));
        assert!(!plan.takes_part(1));
        assert!(!plan.takes_part(7), "no such party");
        let mut dealt = plan.clone();
        dealt.randomness = RandomnessSource::Dealer(1);
        assert!(dealt.takes_part(1));
        let mut talked_to = plan.clone();
        talked_to.programs[0].instrs.push(Instr::Send {
            to: 1,
            regs: vec![Reg(0)],
        });
        assert!(talked_to.takes_part(1));
        let mut learns = plan;
        learns.outputs[0].to.push(1);
        assert!(learns.takes_part(1));
    }
}
