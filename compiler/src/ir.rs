//! The checked model: Veil's first IR. Only [`crate::check`] builds one, so
//! holding a [`CheckedModel`] means names resolve, parties exist and every
//! operation's shapes agree.
//!
//! Values live in one arena ([`CheckedModel::values`]) in definition order:
//! an operation's operands always have smaller [`ValueId`]s than the
//! operation itself.

use grammar::Span;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartyId(pub u32);

impl ValueId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl PartyId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Owns inputs, computes, may receive outputs.
    Compute,
    /// Supplies correlated randomness only.
    Dealer,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Party {
    pub name: String,
    pub role: Role,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    Known(u64),
    /// Bound at run time from the data, such as `batch`.
    Symbol(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Symbol(s) => f.write_str(s),
        }
    }
}

/// A tensor shape: `[]` is a scalar, `[n]` a vector, `[m, n]` a matrix.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    pub fn scalar() -> Shape {
        Shape(Vec::new())
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    pub fn is_scalar(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("fixed");
        }
        f.write_str("fixed[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Public,
    Party(PartyId),
}

/// A protocol override written with `via`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Paillier,
    Shares,
    /// RLWE matrix products (`via rlwe`, `--prefer rlwe`).
    Rlwe,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Paillier => "paillier",
            Protocol::Shares => "shares",
            Protocol::Rlwe => "rlwe",
        }
    }
}

/// Squarings in `exp`: e^x ≈ (1 + t + t²/2)^(2^n) with t = x/2^n, CrypTen's
/// limit method with a second-order base. The base's t² is one more product,
/// so `exp` costs n + 1 products: as many as the first-order (1 + x/256)^256
/// it replaced, with an error near e^x·|x|³/(6·4^n) rather than e^x·x²/512.
pub const EXP_SQUARINGS: u32 = 7;

/// The base of `exp`'s squarings: 1 + t + t²/2 (the Taylor polynomial of
/// e^t), at least 1/2 everywhere and increasing for t ≥ -1 (x ≥ -2^n).
pub fn exp_base(t: f64) -> f64 {
    1.0 + t + t * t / 2.0
}

/// (1 + t + t²/2)^(2^n) with t = x/2^n, the value `exp` computes for `x` in
/// exact arithmetic (its own approximation of e^x, before rounding).
pub fn exp_limit(x: f64) -> f64 {
    let m = 2f64.powi(EXP_SQUARINGS as i32);
    exp_base(x / m).powi(1 << EXP_SQUARINGS)
}

/// Where `exp` of an operand at most `hi` clamps it first (see `analysis`: the formula is wrong below
/// `-2^n`):
/// `[-2^n, max(hi, 1 - 2^n)]`, `n` = [`EXP_SQUARINGS`].
pub fn exp_clamp(hi: f64) -> (f64, f64) {
    let m = 2f64.powi(EXP_SQUARINGS as i32);
    (-m, hi.max(1.0 - m))
}

/// How to approximate sigmoid or tanh; `None` fields are the compiler's choice.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Approx {
    pub degree: Option<u32>,
    pub domain: Option<(f64, f64)>,
    pub tol: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Input {
        owner: Owner,
        /// The declared range; with `columns`, their hull.
        range: Option<(f64, f64)>,
        /// Declared ranges of each entry of the last axis (`in [[lo, hi], ...]`).
        columns: Option<Vec<(f64, f64)>>,
    },
    /// A public constant (a `const` or a literal), row-major.
    Const {
        data: Vec<f64>,
    },
    Neg(ValueId),
    Add(ValueId, ValueId),
    Sub(ValueId, ValueId),
    Mul(ValueId, ValueId),
    MatMul(ValueId, ValueId),
    /// Sum along the last axis.
    Sum(ValueId),
    /// Mean along the last axis.
    Mean(ValueId),
    Square(ValueId),
    Sigmoid(ValueId, Approx),
    Tanh(ValueId, Approx),
    /// c0 + c1 x + c2 x^2 + ...
    Poly(ValueId, Vec<f64>),
    Relu(ValueId),
    /// Maximum along the last axis.
    MaxReduce(ValueId),
    /// Minimum along the last axis.
    MinReduce(ValueId),
    /// Index of the maximum along the last axis.
    Argmax(ValueId),
    /// Elementwise maximum of two tensors.
    Max(ValueId, ValueId),
    /// Elementwise minimum of two tensors.
    Min(ValueId, ValueId),
    Clamp(ValueId, f64, f64),
    /// e^x elementwise, computed as (1 + t + t²/2)^(2^n) with t = x/2^n and
    /// n = [`EXP_SQUARINGS`] (valid for x ≥ -2^n; see [`exp_limit`]).
    Exp(ValueId),
    /// 1/x elementwise, by Newton's iteration from a constant first guess;
    /// the range of x must exclude 0 (see `analysis::reciprocal_plan`).
    Reciprocal(ValueId),
    /// ln x elementwise, by Newton's iteration y ← y − 1 + x·e^(−y) from a
    /// tangent of ln; the range of x must lie above 0 (see
    /// `analysis::log_plan`).
    Log(ValueId),
    /// The operand's axes reordered: axis `i` of the result is axis
    /// `perm[i]` of the operand (local data movement, no arithmetic).
    Permute(ValueId, Vec<usize>),
    /// The operand's values, row-major, in the value's own shape (same count).
    Reshape(ValueId),
    /// The patches of sliding windows over `[batch, C, S...]` (local data
    /// movement, zeros in the padding): `conv2d`, `conv1d` and the pooling
    /// builtins are written out with it (`plan::Window` has the layout).
    Im2col(ValueId, plan::Window),
    /// 1/√x elementwise, computed in the clear only (public values or one
    /// party's): `batch_norm`'s scale from the model owner's variance.
    Rsqrt(ValueId),
    /// The operands joined along their last axis (local data movement;
    /// `concat` along another axis permutes it last first).
    Concat(Vec<ValueId>),
    /// Entries `start..start + len` of the operand's last axis (`narrow`).
    Narrow(ValueId, u64, u64),
}

impl Op {
    /// The operands, in order.
    pub fn operands(&self) -> Vec<ValueId> {
        match self {
            Op::Input { .. } | Op::Const { .. } => vec![],
            Op::Neg(a)
            | Op::Sum(a)
            | Op::Mean(a)
            | Op::Square(a)
            | Op::Sigmoid(a, _)
            | Op::Tanh(a, _)
            | Op::Poly(a, _)
            | Op::Relu(a)
            | Op::MaxReduce(a)
            | Op::MinReduce(a)
            | Op::Argmax(a)
            | Op::Clamp(a, _, _)
            | Op::Permute(a, _)
            | Op::Reshape(a)
            | Op::Im2col(a, _)
            | Op::Rsqrt(a)
            | Op::Narrow(a, ..)
            | Op::Exp(a)
            | Op::Reciprocal(a)
            | Op::Log(a) => vec![*a],
            Op::Concat(parts) => parts.clone(),
            Op::Add(a, b)
            | Op::Sub(a, b)
            | Op::Mul(a, b)
            | Op::MatMul(a, b)
            | Op::Max(a, b)
            | Op::Min(a, b) => {
                vec![*a, *b]
            }
        }
    }

    /// A short name for tables and plans.
    pub fn mnemonic(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Const { .. } => "const",
            Op::Neg(_) => "neg",
            Op::Add(..) => "add",
            Op::Sub(..) => "sub",
            Op::Mul(..) => "mul",
            Op::MatMul(..) => "matmul",
            Op::Sum(_) => "sum",
            Op::Mean(_) => "mean",
            Op::Square(_) => "square",
            Op::Sigmoid(..) => "sigmoid",
            Op::Tanh(..) => "tanh",
            Op::Poly(..) => "poly",
            Op::Relu(_) => "relu",
            Op::MaxReduce(_) => "max",
            Op::MinReduce(_) => "min",
            Op::Argmax(_) => "argmax",
            Op::Max(..) => "max",
            Op::Min(..) => "min",
            Op::Clamp(..) => "clamp",
            Op::Permute(..) => "permute",
            Op::Reshape(_) => "reshape",
            Op::Im2col(..) => "im2col",
            Op::Rsqrt(_) => "rsqrt",
            Op::Concat(_) => "concat",
            Op::Narrow(..) => "narrow",
            Op::Exp(_) => "exp",
            Op::Reciprocal(_) => "reciprocal",
            Op::Log(_) => "log",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub op: Op,
    pub shape: Shape,
    /// The `input`, `const` or `let` name this value was first bound to.
    pub name: Option<String>,
    pub span: Span,
    pub via: Option<Protocol>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub name: String,
    pub value: ValueId,
    pub to: Vec<PartyId>,
    /// `labels [..]`: an argmax index `i` is revealed as `labels[i]`.
    pub labels: Option<Vec<f64>>,
    pub span: Span,
}

/// A model that passed the checker. Its fields are private and it has no
/// public constructor, so only [`crate::check`] makes one and nobody changes
/// one afterwards: holding a `CheckedModel` means it is checked.
///
/// ```compile_fail
/// // Not outside the compiler: neither built field by field...
/// let m = compiler::ir::CheckedModel { name: String::new(), precision: 16, parties: vec![], values: vec![], outputs: vec![] };
/// ```
/// ```compile_fail
/// // ...nor changed.
/// let mut m = compiler::check_source("").model.unwrap();
/// m.values.clear();
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedModel {
    name: String,
    /// Fractional bits of the fixed-point encoding.
    precision: u32,
    parties: Vec<Party>,
    values: Vec<Value>,
    outputs: Vec<Output>,
}

impl CheckedModel {
    /// For [`crate::check`] only, once it found no error.
    pub(crate) fn new(
        name: String,
        precision: u32,
        parties: Vec<Party>,
        values: Vec<Value>,
        outputs: Vec<Output>,
    ) -> CheckedModel {
        CheckedModel {
            name,
            precision,
            parties,
            values,
            outputs,
        }
    }

    /// The model's name (`model NAME { ... }`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Fractional bits of the fixed-point encoding.
    pub fn precision(&self) -> u32 {
        self.precision
    }

    /// Every party, the dealer too, in declaration order ([`PartyId`] indexes it).
    pub fn parties(&self) -> &[Party] {
        &self.parties
    }

    /// The value arena ([`ValueId`] indexes it): operands before their users.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The outputs, in source order.
    pub fn outputs(&self) -> &[Output] {
        &self.outputs
    }

    pub fn value(&self, id: ValueId) -> &Value {
        &self.values[id.index()]
    }

    pub fn party(&self, id: PartyId) -> &Party {
        &self.parties[id.index()]
    }

    pub fn dealer(&self) -> Option<PartyId> {
        self.parties
            .iter()
            .position(|p| p.role == Role::Dealer)
            .map(|i| PartyId(i as u32))
    }

    pub fn compute_parties(&self) -> Vec<PartyId> {
        (0..self.parties.len() as u32)
            .map(PartyId)
            .filter(|p| self.party(*p).role == Role::Compute)
            .collect()
    }

    /// Number of operations (values that are neither inputs nor constants).
    pub fn operation_count(&self) -> usize {
        self.values
            .iter()
            .filter(|v| !matches!(v.op, Op::Input { .. } | Op::Const { .. }))
            .count()
    }

    pub fn input_count(&self) -> usize {
        self.values
            .iter()
            .filter(|v| matches!(v.op, Op::Input { .. }))
            .count()
    }
}

/// Default fractional bits of the fixed-point encoding.
pub const DEFAULT_PRECISION: u32 = 16;
/// Allowed range of `precision`.
pub const PRECISION_RANGE: std::ops::RangeInclusive<u64> = 8..=24;

/// Largest magnitude a literal may have at `precision` fractional bits: a
/// product of two such values, at scale 2^(2·precision), still fits in the
/// signed 64-bit ring with a bit to spare.
pub fn max_literal_magnitude(precision: u32) -> f64 {
    2f64.powi(62 - 2 * precision as i32)
}

/// The range of an input: the declared one, or `±max_literal_magnitude`.
/// The analysis assumes it and the plan carries it, so the runtime refuses
/// data outside it (the one definition both use).
pub fn input_range(declared: Option<(f64, f64)>, precision: u32) -> (f64, f64) {
    declared.unwrap_or_else(|| {
        let wide = max_literal_magnitude(precision);
        (-wide, wide)
    })
}
