//! Random models against the reference interpreter, as Cranelift's fuzzgen
//! tests its compiler against its interpreter.
//!
//! A proptest strategy builds small valid models: a few inputs of small
//! shapes (scalars, vectors, `[batch, k]` matrices) owned by either party or
//! public, with random declared ranges, a few public constants, a random DAG
//! of operations drawn from every operator and builtin with shape-compatible
//! operands (poolings, with and without `ceil_mode`, along vectors and the
//! rows of matrices), a dealer or not, and one or more outputs to random
//! parties.
//! Each model is printed as source text (a failure names a `.veil` file to
//! reproduce it), checked, and compiled. Cases the compiler correctly
//! refuses (E0301 overflow, E0302 leak, E0303 no protocol, E0304/E0305
//! polynomials) are counted, not run, and most cases must compile. The rest
//! run privately in process on random inputs inside the declared ranges,
//! and every output at every recipient must lie within the compiler's error
//! bound of `compiler::reference`, which computes exactly in f64.
//!
//! `cargo test` runs `DEFAULT_CASES` cases from a fixed seed. Locally:
//! `VEIL_FUZZ_CASES=5000 VEIL_FUZZ_SEED=7 cargo test --release -p cli --test fuzzgen
//! -- --nocapture` (the seed is any u64; a failure prints its model, options
//! and inputs, shrunk).
//!
//! Every bug it finds is kept, minimised, as a `regression_*` test at the
//! end of this file: the model, run with each protocol preference on the
//! inputs that showed it.

use compiler::ir::Protocol;
use grammar::Code;
use plan::Tensor;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use rand::{RngExt, SeedableRng};
use runtime::exec;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

const DEFAULT_CASES: u32 = 48;
const DEFAULT_SEED: u64 = 0x5eed_f022;
/// Paillier keys for the runs without a dealer (test-only size).
const KEY_BITS: u64 = 1024;

// ----- the generated model -----

/// A dimension: the symbolic `batch`, or a small number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum D {
    Batch,
    K(u64),
}

type Shape = Vec<D>;

fn shape_text(s: &[D]) -> String {
    if s.is_empty() {
        return "fixed".into();
    }
    let dims: Vec<String> = s
        .iter()
        .map(|d| match d {
            D::Batch => "batch".to_string(),
            D::K(k) => k.to_string(),
        })
        .collect();
    format!("fixed[{}]", dims.join(", "))
}

#[derive(Clone, Debug)]
enum Owner {
    Alice,
    Bob,
    Public,
    /// A `const` with these values (as many as the shape holds).
    Const(Vec<f64>),
}

#[derive(Clone, Debug)]
struct InputRecipe {
    shape: Shape,
    owner: Owner,
    /// `None`: declared without `in [lo, hi]`.
    range: Option<(f64, f64)>,
    /// Declare one range per column of a numbered last dimension
    /// ([`column_ranges`]) rather than one for the whole input.
    per_column: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpKind {
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
    Poly,
    Relu,
    MaxReduce,
    Argmax,
    Max,
    Min,
    Clamp,
    /// `max_pool1d` or `avg_pool1d` of a vector or a matrix's rows.
    Pool,
}

const OP_KINDS: [OpKind; 18] = [
    OpKind::Neg,
    OpKind::Add,
    OpKind::Sub,
    OpKind::Mul,
    OpKind::MatMul,
    OpKind::Sum,
    OpKind::Mean,
    OpKind::Square,
    OpKind::Sigmoid,
    OpKind::Tanh,
    OpKind::Poly,
    OpKind::Relu,
    OpKind::MaxReduce,
    OpKind::Argmax,
    OpKind::Max,
    OpKind::Min,
    OpKind::Clamp,
    OpKind::Pool,
];

/// One operation, before its operands are resolved against the values
/// defined so far (so that shrinking keeps every model valid).
#[derive(Clone, Debug)]
struct OpRecipe {
    kind: OpKind,
    a: Index,
    b: Index,
    /// The second operand of an elementwise operation as a number literal.
    literal: Option<f64>,
    coefficients: Vec<f64>,
    /// `clamp` bounds: lower, and width above it.
    clamp: (f64, f64),
    /// `sigmoid`/`tanh` named arguments: `degree:`, `domain: [-d, d]`.
    degree: Option<u32>,
    domain: Option<f64>,
    via: Option<Protocol>,
}

#[derive(Clone, Debug)]
struct Recipe {
    precision: u32,
    dealer: bool,
    prefer: Option<Protocol>,
    batch: usize,
    inputs: Vec<InputRecipe>,
    ops: Vec<OpRecipe>,
    /// (value among the operations, recipients: 0 alice, 1 bob, 2 both).
    outputs: Vec<(Index, u8)>,
    data_seed: u64,
}

/// An input of a built model: its name, shape, and range (`None`: none declared).
struct InputDecl {
    name: String,
    shape: Shape,
    range: Option<(f64, f64)>,
    /// Per-column ranges, when declared.
    columns: Option<Vec<(f64, f64)>>,
}

/// A model built from a recipe: its source and what the data needs.
struct Model {
    source: String,
    /// Inputs (not constants), as declared.
    inputs: Vec<InputDecl>,
    /// An output is secret: known to neither party alone before it is revealed.
    secret: bool,
}

fn quarters(lo: i32, hi: i32) -> impl Strategy<Value = f64> {
    (lo..=hi).prop_map(|i| i as f64 / 4.0)
}

fn shape_strategy() -> impl Strategy<Value = Shape> {
    let k = || prop::sample::select(vec![2u64, 2, 2, 3, 3, 1]).prop_map(D::K);
    prop_oneof![
        2 => Just(vec![]),
        3 => k().prop_map(|k| vec![k]),
        1 => Just(vec![D::Batch]),
        4 => k().prop_map(|k| vec![D::Batch, k]),
        1 => (k(), k()).prop_map(|(a, b)| vec![a, b]),
    ]
}

fn input_strategy() -> impl Strategy<Value = InputRecipe> {
    let owner = prop_oneof![
        4 => Just(Owner::Alice),
        4 => Just(Owner::Bob),
        1 => Just(Owner::Public),
        1 => prop::collection::vec(quarters(-8, 8), 9).prop_map(Owner::Const),
    ];
    let range = prop_oneof![
        9 => (quarters(-16, 8), quarters(1, 16)).prop_map(|(lo, w)| Some((lo, lo + w))),
        1 => Just(None),
    ];
    (shape_strategy(), owner, range, prop::bool::weighted(0.3)).prop_map(
        |(shape, owner, range, per_column)| InputRecipe {
            // A constant has no symbolic dimensions.
            shape: match owner {
                Owner::Const(_) => shape
                    .into_iter()
                    .map(|d| if d == D::Batch { D::K(2) } else { d })
                    .collect(),
                _ => shape,
            },
            owner,
            range,
            per_column,
        },
    )
}

/// Per-column ranges inside `[lo, hi]` for a last dimension of `k`:
/// the whole range, its lower half and its upper half in turn (so the
/// columns differ, as a scaler inside a model makes them).
fn column_ranges((lo, hi): (f64, f64), k: u64) -> Vec<(f64, f64)> {
    let mid = lo + (hi - lo) / 2.0;
    (0..k)
        .map(|j| match j % 3 {
            0 => (lo, hi),
            1 => (lo, mid),
            _ => (mid, hi),
        })
        .collect()
}

fn op_strategy() -> impl Strategy<Value = OpRecipe> {
    (
        // Binary operations three times as likely: they make values secret.
        // Poolings too (below).
        prop::sample::select(
            OP_KINDS
                .iter()
                .flat_map(|k| {
                    let binary = matches!(
                        k,
                        OpKind::Add
                            | OpKind::Sub
                            | OpKind::Mul
                            | OpKind::MatMul
                            | OpKind::Max
                            | OpKind::Min
                    );
                    // Poolings too: most draw a value they cannot pool
                    // (a scalar, a window longer than the row) and fall back.
                    let pool = *k == OpKind::Pool;
                    std::iter::repeat_n(*k, if binary || pool { 3 } else { 1 })
                })
                .collect::<Vec<_>>(),
        ),
        any::<Index>(),
        any::<Index>(),
        prop::option::weighted(0.2, quarters(-12, 12)),
        prop::collection::vec(quarters(-8, 8), 1..=4),
        (quarters(-12, 8), quarters(1, 12)),
        prop::option::weighted(0.3, prop::sample::select(vec![1u32, 3, 5, 7, 9])),
        prop::option::weighted(0.15, prop::sample::select(vec![2.0, 4.0, 8.0])),
        prop::option::weighted(
            0.1,
            prop::sample::select(vec![Protocol::Shares, Protocol::Paillier]),
        ),
    )
        .prop_map(
            |(kind, a, b, literal, coefficients, clamp, degree, domain, via)| OpRecipe {
                kind,
                a,
                b,
                literal,
                coefficients,
                clamp,
                degree,
                domain,
                via,
            },
        )
}

fn recipe_strategy() -> impl Strategy<Value = Recipe> {
    (
        prop::sample::select(vec![16u32, 16, 16, 12, 20]),
        any::<bool>(),
        prop::sample::select(vec![
            None,
            None,
            Some(Protocol::Shares),
            Some(Protocol::Paillier),
            Some(Protocol::Rlwe),
        ]),
        1usize..=3,
        prop::collection::vec(input_strategy(), 2..=5),
        prop::collection::vec(op_strategy(), 1..=6),
        prop::collection::vec((any::<Index>(), 0u8..3), 1..=2),
        (any::<u64>(), prop::bool::weighted(0.5)),
    )
        .prop_map(
            |(
                precision,
                dealer,
                prefer,
                batch,
                mut inputs,
                ops,
                outputs,
                (data_seed, same_shape),
            )| {
                // Both parties own an input (the first two), so that
                // something is secret.
                for (inp, owner) in inputs.iter_mut().zip([Owner::Alice, Owner::Bob]) {
                    inp.owner = owner;
                }
                // Mostly of shapes that combine elementwise.
                if same_shape {
                    inputs[1].shape = inputs[0].shape.clone();
                }
                Recipe {
                    precision,
                    dealer,
                    prefer,
                    batch,
                    inputs,
                    ops,
                    outputs,
                    data_seed,
                }
            },
        )
}

/// The language's broadcasting rule (docs/language.md): equal shapes, a
/// scalar with anything, a vector `[n]` with a matrix `[m, n]`.
fn broadcast(a: &[D], b: &[D]) -> Option<Shape> {
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    // The trailing rule, or keep-dims: `short` is `long` less one dimension.
    let kept = long.len() == short.len() + 1
        && (0..long.len()).any(|k| {
            let mut dims = long.to_vec();
            dims.remove(k);
            dims == short
        });
    (long.ends_with(short) || kept).then(|| long.to_vec())
}

fn matmul_shape(a: &[D], b: &[D]) -> Option<Shape> {
    if a.is_empty() || b.is_empty() || a.last() != b.first() {
        return None;
    }
    let mut s = a[..a.len() - 1].to_vec();
    s.extend_from_slice(&b[1..]);
    Some(s)
}

fn number(v: f64) -> String {
    format!("{v}")
}

impl Recipe {
    fn build(&self) -> Model {
        let mut src = String::new();
        let _ = writeln!(src, "model fuzz {{");
        if self.precision != 16 {
            let _ = writeln!(src, "    precision {};", self.precision);
        }
        let _ = writeln!(src, "    party alice;\n    party bob;");
        if self.dealer {
            let _ = writeln!(src, "    dealer carol;");
        }
        let mut values: Vec<Val> = Vec::new();
        let mut inputs = Vec::new();
        for (i, inp) in self.inputs.iter().enumerate() {
            let ty = shape_text(&inp.shape);
            let (name, vis) = match &inp.owner {
                Owner::Const(pool) => {
                    let name = format!("c{i}");
                    let data = const_literal(&inp.shape, pool);
                    let _ = writeln!(src, "    const {name}: {ty} = {data};");
                    (name, Vis::Public)
                }
                owner => {
                    let name = format!("x{i}");
                    let (text, vis) = match owner {
                        Owner::Alice => ("private(alice)", Vis::Alice),
                        Owner::Bob => ("private(bob)", Vis::Bob),
                        _ => ("public", Vis::Public),
                    };
                    let columns = match (inp.range, inp.shape.last()) {
                        (Some(r), Some(D::K(k))) if inp.per_column => Some(column_ranges(r, *k)),
                        _ => None,
                    };
                    let range = match (&columns, inp.range) {
                        (Some(cols), _) => format!(
                            " in [{}]",
                            cols.iter()
                                .map(|(lo, hi)| format!("[{}, {}]", number(*lo), number(*hi)))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        (None, Some((lo, hi))) => format!(" in [{}, {}]", number(lo), number(hi)),
                        (None, None) => String::new(),
                    };
                    let _ = writeln!(src, "    input {name}: {ty} {text}{range};");
                    inputs.push(InputDecl {
                        name: name.clone(),
                        shape: inp.shape.clone(),
                        range: inp.range,
                        columns,
                    });
                    (name, vis)
                }
            };
            values.push(Val {
                name,
                shape: inp.shape.clone(),
                vis,
            });
        }
        let first_op = values.len();
        for (i, op) in self.ops.iter().enumerate() {
            let (expr, shape, vis) = resolve(op, &values);
            let _ = writeln!(src, "    let v{i} = {expr};");
            values.push(Val {
                name: format!("v{i}"),
                shape,
                vis,
            });
        }
        // Outputs: each a distinct operation, recipients merged.
        let mut outs: BTreeMap<usize, u8> = BTreeMap::new();
        let mut any_secret = false;
        for (v, to) in &self.outputs {
            // Mostly a secret value, if there is one.
            let mut ops: Vec<usize> = (first_op..values.len()).collect();
            let secret: Vec<usize> = ops
                .iter()
                .copied()
                .filter(|&i| values[i].vis == Vis::Secret)
                .collect();
            if !secret.is_empty() && v.index(4) != 0 {
                ops = secret;
            }
            let v = recent(v, &ops);
            any_secret |= values[v].vis == Vis::Secret;
            let bits = match to {
                0 => 1,
                1 => 2,
                _ => 3,
            };
            *outs.entry(v).or_default() |= bits;
        }
        for (v, bits) in outs {
            let to = match bits {
                1 => "alice",
                2 => "bob",
                _ => "alice, bob",
            };
            let _ = writeln!(src, "    output {} to {to};", values[v].name);
        }
        src.push_str("}\n");
        Model {
            source: src,
            inputs,
            secret: any_secret,
        }
    }
}

/// A constant's array literal, its values taken from `pool` in order.
fn const_literal(shape: &[D], pool: &[f64]) -> String {
    let k = |d: &D| match d {
        D::K(k) => *k as usize,
        D::Batch => unreachable!("constants have known dimensions"),
    };
    let row = |from: usize, n: usize| {
        let items: Vec<String> = (0..n)
            .map(|j| number(pool[(from + j) % pool.len()]))
            .collect();
        format!("[{}]", items.join(", "))
    };
    match shape {
        [] => number(pool[0]),
        [n] => row(0, k(n)),
        [m, n] => {
            let rows: Vec<String> = (0..k(m)).map(|r| row(r * k(n), k(n))).collect();
            format!("[{}]", rows.join(", "))
        }
        _ => unreachable!("rank at most 2"),
    }
}

/// Who knows a value in the clear (as the compiler's graph computes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Vis {
    Public,
    Alice,
    Bob,
    Secret,
}

impl Vis {
    fn join(self, other: Vis) -> Vis {
        match (self, other) {
            (Vis::Public, v) | (v, Vis::Public) => v,
            (a, b) if a == b => a,
            _ => Vis::Secret,
        }
    }
}

#[derive(Clone, Debug)]
struct Val {
    name: String,
    shape: Shape,
    vis: Vis,
}

/// One of `cands` (in definition order, non-empty), the recent ones more
/// likely: models are chains more than fans.
fn recent(ix: &Index, cands: &[usize]) -> usize {
    let u = ix.index(1 << 16) as f64 / (1 << 16) as f64;
    let back = ((u * u) * cands.len() as f64) as usize;
    cands[cands.len() - 1 - back.min(cands.len() - 1)]
}

/// The expression, result shape and visibility of `op` over the values
/// defined so far. Operands are recent values, and a binary operation's
/// second operand mostly one that makes the result secret (known to
/// neither party alone), where protocols run. An operation whose operands
/// cannot be found (a reduction with only scalars around) becomes a
/// negation.
fn resolve(op: &OpRecipe, values: &[Val]) -> (String, Shape, Vis) {
    let all = |ok: &dyn Fn(&Val) -> bool| -> Vec<usize> {
        (0..values.len()).filter(|&i| ok(&values[i])).collect()
    };
    // The second operand: among those `ok`, mostly those mixing with `a`.
    let partner = |a: &Val, ok: &dyn Fn(&Val) -> bool| -> Option<usize> {
        let cands = all(ok);
        let mixing: Vec<usize> = cands
            .iter()
            .copied()
            .filter(|&i| values[i].vis.join(a.vis) == Vis::Secret)
            .collect();
        if !mixing.is_empty() && op.b.index(4) != 0 {
            Some(recent(&op.b, &mixing))
        } else {
            (!cands.is_empty()).then(|| recent(&op.b, &cands))
        }
    };
    // The first operand: mostly a secret value, if there is one.
    let secret = all(&|v| v.vis == Vis::Secret);
    let a = if !secret.is_empty() && op.a.index(4) != 0 {
        &values[recent(&op.a, &secret)]
    } else {
        &values[recent(&op.a, &all(&|_| true))]
    };
    let via = |e: String| match op.via {
        Some(p) => format!("{e} via {}", p.name()),
        None => e,
    };
    let unary = |text: String| (text, a.shape.clone(), a.vis);
    let neg = || unary(format!("-{}", a.name));
    // The second operand of an elementwise operation.
    let second = || -> (String, Shape, Vis) {
        if let Some(v) = op.literal {
            let text = if v < 0.0 {
                format!("({})", number(v))
            } else {
                number(v)
            };
            return (text, vec![], Vis::Public);
        }
        let b =
            &values[partner(a, &|v| broadcast(&a.shape, &v.shape).is_some()).expect("a itself")];
        (b.name.clone(), b.shape.clone(), b.vis)
    };
    // A matrix that `reshape(_, [m, 1, k])` can name (at most one `batch`).
    let matrix = |v: &Val| v.shape.len() == 2 && v.shape != [D::Batch, D::Batch];
    // A vector, or a matrix's rows, a pooling can slide a window of 2 or
    // more along.
    let poolable = |v: &Val| {
        (v.shape.len() == 1 || matrix(v)) && matches!(v.shape.last(), Some(D::K(k)) if *k >= 2)
    };
    let reduce = |f: &str| -> (String, Shape, Vis) {
        let cands = all(&|v| !v.shape.is_empty());
        if cands.is_empty() {
            return neg();
        }
        let x = &values[recent(&op.a, &cands)];
        // Mostly the last axis by default; sometimes another, or the last
        // named (`axis: -1`).
        let rank = x.shape.len();
        let (axis, text) = match op.b.index(4) {
            0 if rank > 1 => {
                let k = op.b.index(997) % (rank - 1);
                (k, format!("{f}({}, axis: {k})", x.name))
            }
            1 => (rank - 1, format!("{f}({}, axis: -1)", x.name)),
            _ => (rank - 1, format!("{f}({})", x.name)),
        };
        let mut shape = x.shape.clone();
        shape.remove(axis);
        (text, shape, x.vis)
    };
    match op.kind {
        // Mostly a rearrangement of a matrix instead (same values, local on
        // shares), when there is one.
        OpKind::Neg if op.b.index(8) < 6 && !all(&|v| matrix(v)).is_empty() => {
            let a = &values[recent(&op.a, &all(&|v| matrix(v)))];
            let (m, k) = (a.shape[0], a.shape[1]);
            let dim = |d: D| match d {
                D::Batch => "-1".to_string(),
                D::K(n) => n.to_string(),
            };
            match op.b.index(3) {
                0 => (format!("transpose({}, 0, 1)", a.name), vec![k, m], a.vis),
                1 => (format!("permute({}, [-1, 0])", a.name), vec![k, m], a.vis),
                _ => (
                    format!(
                        "flatten(reshape({}, [{}, 1, {}]), start_dim: 1)",
                        a.name,
                        dim(m),
                        dim(k)
                    ),
                    vec![m, k],
                    a.vis,
                ),
            }
        }
        OpKind::Neg => neg(),
        OpKind::Add | OpKind::Sub | OpKind::Mul | OpKind::Max | OpKind::Min => {
            let (bn, bsh, bvis) = second();
            let shape = broadcast(&a.shape, &bsh).expect("compatible");
            let text = match op.kind {
                OpKind::Add => via(format!("{} + {bn}", a.name)),
                OpKind::Sub => via(format!("{} - {bn}", a.name)),
                OpKind::Mul => via(format!("{} * {bn}", a.name)),
                OpKind::Max => format!("max({}, {bn})", a.name),
                _ => format!("min({}, {bn})", a.name),
            };
            (text, shape, a.vis.join(bvis))
        }
        OpKind::MatMul => {
            let left = all(&|x| {
                values
                    .iter()
                    .any(|y| matmul_shape(&x.shape, &y.shape).is_some())
            });
            if left.is_empty() {
                return neg();
            }
            let x = &values[recent(&op.a, &left)];
            let y = &values[partner(x, &|y| matmul_shape(&x.shape, &y.shape).is_some())
                .expect("checked above")];
            (
                via(format!("{} @ {}", x.name, y.name)),
                matmul_shape(&x.shape, &y.shape).expect("compatible"),
                x.vis.join(y.vis),
            )
        }
        // A pooling along a vector or each row of a matrix as a one-channel
        // signal: max or mean windows with a random kernel, stride and
        // padding, three in four in `ceil_mode`.
        OpKind::Pool if !all(&|v| poolable(v)).is_empty() => {
            let x = &values[recent(&op.a, &all(&|v| poolable(v)))];
            let Some(&D::K(len)) = x.shape.last() else {
                unreachable!("poolable: a known last dimension")
            };
            let f = if op.b.index(2) == 0 {
                "avg_pool1d"
            } else {
                "max_pool1d"
            };
            let k = 2 + op.b.index(997) as u64 % (len.min(4) - 1);
            let stride = 1 + op.a.index(991) as u64 % 3;
            let padding = op.b.index(983) as u64 % (k / 2 + 1);
            let ceil = op.a.index(4) != 0;
            // PyTorch's output length; with `ceil_mode` rounded up, less a
            // last window that would start past the input and its left padding.
            let span = len + 2 * padding - k;
            let mut out = if ceil {
                span.div_ceil(stride) + 1
            } else {
                span / stride + 1
            };
            if ceil && (out - 1) * stride >= len + padding {
                out -= 1;
            }
            let (rows, start, shape) = match x.shape[..] {
                [m, _] => (
                    match m {
                        D::Batch => "-1".to_string(),
                        D::K(n) => n.to_string(),
                    },
                    1,
                    vec![m, D::K(out)],
                ),
                _ => ("1".to_string(), 0, vec![D::K(out)]),
            };
            (
                format!(
                    "flatten({f}(reshape({}, [{rows}, 1, {len}]), {k}, stride: {stride}, \
                     padding: {padding}, ceil_mode: {ceil}), start_dim: {start})",
                    x.name
                ),
                shape,
                x.vis,
            )
        }
        OpKind::Pool => neg(),
        OpKind::Sum => reduce("sum"),
        OpKind::Mean => reduce("mean"),
        OpKind::MaxReduce if op.a.index(3) == 0 => reduce("min"),
        OpKind::MaxReduce => reduce("max"),
        OpKind::Argmax => reduce("argmax"),
        OpKind::Square => unary(format!("square({})", a.name)),
        // Sometimes one of the activations written out in comparisons.
        OpKind::Relu => match op.b.index(6) {
            0 => unary(format!("leaky_relu({}, negative_slope: 0.1)", a.name)),
            1 => unary(format!("relu6({})", a.name)),
            _ => unary(format!("relu({})", a.name)),
        },
        // Sometimes softmax along a numbered dimension instead, or exp of
        // a value less its row's maximum (both in (0, 1]).
        OpKind::Sigmoid | OpKind::Tanh
            if op.b.index(4) == 0 && a.shape.last().is_some_and(|d| *d != D::Batch) =>
        {
            if op.kind == OpKind::Sigmoid {
                unary(format!("softmax({})", a.name))
            } else {
                unary(format!("exp({} - max({}))", a.name, a.name))
            }
        }
        OpKind::Sigmoid | OpKind::Tanh => {
            let f = if op.kind == OpKind::Sigmoid {
                "sigmoid"
            } else {
                "tanh"
            };
            let mut args = a.name.clone();
            if let Some(d) = op.degree {
                let _ = write!(args, ", degree: {d}");
            }
            if let Some(d) = op.domain {
                let _ = write!(args, ", domain: [{}, {}]", number(-d), number(d));
            }
            unary(format!("{f}({args})"))
        }
        OpKind::Poly => {
            let c: Vec<String> = op.coefficients.iter().map(|c| number(*c)).collect();
            unary(format!("poly({}, [{}])", a.name, c.join(", ")))
        }
        OpKind::Clamp => {
            let (lo, w) = op.clamp;
            let f = if op.b.index(3) == 0 {
                "hardtanh"
            } else {
                "clamp"
            };
            unary(format!(
                "{f}({}, {}, {})",
                a.name,
                number(lo),
                number(lo + w)
            ))
        }
    }
}

// ----- running one case -----

/// Errors the compiler may give a valid model: it cannot run it safely.
fn is_refusal(d: &grammar::Diagnostic) -> bool {
    matches!(
        d.code,
        Code::Overflow | Code::Leak | Code::NoProtocol | Code::PolyOverflow | Code::NoApproximation
    ) && !d.message.contains("internal compiler error")
        && !d
            .message
            .contains("the plan would reveal values beyond the outputs")
}

/// Random data inside each input's range: mostly uniform, with the range's
/// ends, zero and repeated values (ties for comparisons) mixed in. An input
/// without a declared range takes values in the default range the compiler
/// assumed, small or anywhere in it.
fn inputs_for(model: &Model, batch: usize, precision: u32, seed: u64) -> BTreeMap<String, Tensor> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = BTreeMap::new();
    for InputDecl {
        name,
        shape,
        range,
        columns,
    } in &model.inputs
    {
        let dims: Vec<usize> = shape
            .iter()
            .map(|d| match d {
                D::Batch => batch,
                D::K(k) => *k as usize,
            })
            .collect();
        let n: usize = dims.iter().product();
        let (lo, hi) = match range {
            Some(r) => *r,
            None => {
                let wide = compiler::ir::max_literal_magnitude(precision);
                if rng.random_bool(0.5) {
                    (-1.0, 1.0)
                } else {
                    (-wide, wide)
                }
            }
        };
        let mut data: Vec<f64> = Vec::with_capacity(n);
        for i in 0..n {
            // Each entry within its column's range, when declared per column.
            let (lo, hi) = columns.as_ref().map_or((lo, hi), |c| c[i % c.len()]);
            let v = match rng.random_range(0..10) {
                0 => lo,
                1 => hi,
                2 if lo <= 0.0 && 0.0 <= hi => 0.0,
                // A repeated value (ties), from the same column if ranged
                // per column.
                3 if !data.is_empty() => match columns {
                    Some(c) if i >= c.len() => data[i - c.len()],
                    Some(_) => rng.random_range(lo..=hi),
                    None => data[rng.random_range(0..data.len())],
                },
                _ => rng.random_range(lo..=hi),
            };
            data.push(v);
        }
        out.insert(name.clone(), Tensor::new(dims, data).expect("sized"));
    }
    out
}

#[derive(Default)]
struct Counts {
    compiled: AtomicUsize,
    refused: AtomicUsize,
    /// Compiled with W0101: a polynomial's input can leave its domain, where
    /// the compiler states no bound; run, outputs not compared.
    unbounded: AtomicUsize,
    /// Compiled with a secret output (computed under protocols, not in the clear).
    secret: AtomicUsize,
    /// Compiled with an input ranged per column.
    per_column: AtomicUsize,
    /// Compiled with a pooling in `ceil_mode`.
    ceil_mode: AtomicUsize,
    /// Without a dealer, so also run ahead of the data.
    ahead: AtomicUsize,
}

/// One model to check: its source and the compiler options the recipe
/// chose (the dealer, if any, is in the source).
struct Case<'a> {
    source: &'a str,
    prefer: Option<Protocol>,
    batch: usize,
}

/// What became of a case that passed.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// The compiler refused it with an error it may give a valid model.
    Refused,
    /// Compiled and ran; `unbounded`: with W0101, outputs not compared;
    /// `ahead`: without a dealer, also run ahead of its data.
    Ran { unbounded: bool, ahead: bool },
}

fn describe(case: &Case, inputs: &BTreeMap<String, Tensor>) -> String {
    let data: Vec<String> = inputs
        .iter()
        .map(|(n, t)| format!("{n} {:?} = {:?}", t.shape, t.data))
        .collect();
    format!(
        "model (save as fuzz.veil):\n{}options: prefer {:?}, batch {}\ninputs:\n  {}",
        case.source,
        case.prefer,
        case.batch,
        data.join("\n  ")
    )
}

/// Check and compile `case`; unless the compiler refuses it, run it
/// privately on `inputs()` and compare every output at every recipient
/// with the reference, within the compiler's error bound.
fn check_case(
    case: &Case,
    inputs: impl FnOnce(&compiler::ir::CheckedModel) -> BTreeMap<String, Tensor>,
) -> Result<Verdict, TestCaseError> {
    let source = case.source;
    if std::env::var_os("VEIL_FUZZ_VERBOSE").is_some() {
        eprintln!("prefer {:?}, batch {}\n{source}", case.prefer, case.batch);
    }
    let checked = compiler::check_source(source);
    let Some(m) = checked.model else {
        return Err(TestCaseError::fail(format!(
            "the generated model does not check:\n{source}\n{}",
            grammar::render(&checked.diagnostics, "fuzz.veil", source)
        )));
    };
    let opts = compiler::Options {
        key_bits: 2048,
        prefer: case.prefer,
        assume: BTreeMap::from([("batch".to_string(), case.batch as u64)]),
        ..compiler::Options::default()
    };
    let analysed = compiler::analyse(&m, &opts).map_err(|e| {
        TestCaseError::fail(format!("internal compiler error in analyse: {e}\n{source}"))
    })?;
    let check_errors: Vec<Code> = analysed
        .iter()
        .filter(|d| d.severity == grammar::Severity::Error)
        .map(|d| d.code)
        .collect();
    let compiled = match compiler::compile(&m, &opts) {
        Ok(c) => c,
        Err(compiler::CompileError::Internal(e)) => {
            return Err(TestCaseError::fail(format!(
                "internal compiler error on a valid model: {e}\n{source}"
            )));
        }
        Err(compiler::CompileError::Model(d)) => {
            if d.iter()
                .all(|d| d.severity != grammar::Severity::Error || is_refusal(d))
            {
                // `veil check` must have said so too.
                let codes: Vec<Code> = d
                    .iter()
                    .filter(|d| d.severity == grammar::Severity::Error)
                    .map(|d| d.code)
                    .collect();
                prop_assert_eq!(
                    &codes,
                    &check_errors,
                    "compile and analyse disagree on\n{}",
                    source
                );
                return Ok(Verdict::Refused);
            }
            return Err(TestCaseError::fail(format!(
                "the compiler failed on a valid model:\n{source}\n{}",
                grammar::render(&d, "fuzz.veil", source)
            )));
        }
    };
    prop_assert!(
        check_errors.is_empty(),
        "analyse refuses what compile accepts ({:?}):\n{}",
        check_errors,
        source
    );
    let unbounded = compiled
        .warnings
        .iter()
        .any(|d| d.code == Code::BeyondDomain);
    let plan = &compiled.plan;
    let inputs = inputs(&m);
    let what = || describe(case, &inputs);
    let reference = compiler::reference::expected(&m, &inputs)
        .map_err(|e| TestCaseError::fail(format!("reference: {e}\n{}", what())))?;
    let valid = plan::validate(plan)
        .map_err(|e| TestCaseError::fail(format!("invalid plan: {e:?}\n{}", what())))?;
    let per = exec::inputs_per_party(plan, &inputs);
    let opts = exec::Options::with_small_keys_for_tests(KEY_BITS);
    let outcomes = exec::run_in_process(&valid, &per, &opts)
        .map_err(|e| TestCaseError::fail(format!("private run failed: {e}\n{}", what())))?;
    let mut runs = vec![("", outcomes)];
    // Without a dealer, the same session run ahead of its data too
    // (`exec::ahead`): the gates must never deadlock nor change a result.
    if exec::ahead::check(plan).is_ok() {
        let (early, late) = exec::ahead::split_data(plan, &per);
        let dims = plan::infer_dims(plan, None, &plan::views(&inputs))
            .map_err(|e| TestCaseError::fail(format!("sizes: {e:?}\n{}", what())))?;
        let (ahead, _) = exec::ahead::run_in_process_ahead(&valid, &early, late, &dims, &opts)
            .map_err(|e| {
                TestCaseError::fail(format!("private run ahead failed: {e}\n{}", what()))
            })?;
        runs.push((", run ahead of its data", ahead));
    }
    let ahead = runs.len() > 1;
    for (how, outcomes) in runs {
        for (o, spec) in plan.outputs.iter().enumerate() {
            let want = &reference[o];
            let name = &want.name;
            prop_assert_eq!(name, &spec.name);
            for (p, outcome) in outcomes.iter().enumerate() {
                let got = outcome.outputs.iter().find(|(n, _)| n == name);
                let Some((_, got)) = got else {
                    prop_assert!(
                        !spec.to.contains(&(p as u32)),
                        "{} did not receive {}\n{}",
                        plan.party_name(p as u32),
                        name,
                        what()
                    );
                    continue;
                };
                prop_assert!(
                    spec.to.contains(&(p as u32)),
                    "{} learned {}, not addressed to it\n{}",
                    plan.party_name(p as u32),
                    name,
                    what()
                );
                prop_assert_eq!(
                    &got.shape,
                    &want.value.shape,
                    "shape of {}\n{}",
                    name,
                    what()
                );
                if unbounded {
                    continue;
                }
                // An argmax's index within its near-tie slack counts as exact.
                let deviations =
                    compiler::reference::deviations(spec, got, want).unwrap_or_default();
                for (i, ((a, b), d)) in got
                    .data
                    .iter()
                    .zip(&want.value.data)
                    .zip(deviations)
                    .enumerate()
                {
                    prop_assert!(
                        d <= spec.error_bound,
                        "{} at {}{}: output {}[{}] = {} but the reference says {}: off by {:e}, \
                     above the compiler's bound {:e}\n{}",
                        plan.party_name(p as u32),
                        if matches!(plan.randomness, plan::RandomnessSource::TwoParty) {
                            "no dealer"
                        } else {
                            "with a dealer"
                        },
                        how,
                        name,
                        i,
                        a,
                        b,
                        (a - b).abs(),
                        spec.error_bound,
                        what()
                    );
                }
            }
        }
    }
    Ok(Verdict::Ran { unbounded, ahead })
}

fn run_case(r: &Recipe, counts: &Counts) -> Result<(), TestCaseError> {
    let model = r.build();
    let case = Case {
        source: &model.source,
        prefer: r.prefer,
        batch: r.batch,
    };
    // A panic (in the compiler or the runtime) fails the case with its model.
    let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        check_case(&case, |_| {
            inputs_for(&model, r.batch, r.precision, r.data_seed)
        })
    }))
    .map_err(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        TestCaseError::fail(format!(
            "panicked: {msg}\nmodel (save as fuzz.veil):\n{}options: prefer {:?}, batch {}",
            model.source, r.prefer, r.batch
        ))
    })?;
    match verdict? {
        Verdict::Refused => {
            counts.refused.fetch_add(1, Relaxed);
        }
        Verdict::Ran { unbounded, ahead } => {
            counts.compiled.fetch_add(1, Relaxed);
            if ahead {
                counts.ahead.fetch_add(1, Relaxed);
            }
            if model.inputs.iter().any(|i| i.columns.is_some()) {
                counts.per_column.fetch_add(1, Relaxed);
            }
            if model.source.contains("ceil_mode: true") {
                counts.ceil_mode.fetch_add(1, Relaxed);
            }
            if model.secret {
                counts.secret.fetch_add(1, Relaxed);
            }
            if unbounded {
                counts.unbounded.fetch_add(1, Relaxed);
            }
        }
    }
    Ok(())
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a whole number")),
    )
}

#[test]
fn random_models_match_the_reference_within_their_bounds() {
    let cases = env_u64("VEIL_FUZZ_CASES").map_or(DEFAULT_CASES, |n| n as u32);
    let seed = env_u64("VEIL_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: env_u64("VEIL_FUZZ_SHRINK").map_or(200, |n| n as u32),
        ..Config::default()
    };
    let counts = Counts::default();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&recipe_strategy(), |r| run_case(&r, &counts));
    if let Err(e) = result {
        panic!("{e}");
    }
    let (compiled, refused, unbounded, secret, per_column, ceil_mode, ahead) = (
        counts.compiled.load(Relaxed),
        counts.refused.load(Relaxed),
        counts.unbounded.load(Relaxed),
        counts.secret.load(Relaxed),
        counts.per_column.load(Relaxed),
        counts.ceil_mode.load(Relaxed),
        counts.ahead.load(Relaxed),
    );
    eprintln!(
        "{cases} random models (seed {seed}): {compiled} compiled and ran ({secret} with a \
         secret output; {unbounded} with W0101, outputs not compared; {per_column} with \
         per-column ranges; {ceil_mode} with a pooling in ceil_mode; {ahead} without a \
         dealer, also run ahead of their data), {refused} refused"
    );
    // The generator exercises per-column input ranges and `ceil_mode`.
    assert!(
        per_column > 0,
        "no compiled model declares per-column ranges"
    );
    assert!(ceil_mode > 0, "no compiled model pools in ceil_mode");
    assert!(ahead > 0, "no compiled model ran ahead of its data");
    assert_eq!(compiled + refused, cases as usize);
    // Most generated models are ones the compiler accepts.
    assert!(compiled * 3 >= cases as usize * 2, "{compiled} of {cases}");
    assert!(unbounded * 10 <= compiled, "{unbounded} of {compiled}");
    // About 45% of compiled models have an output no single party could
    // compute alone (measured over seeds 2 to 5, 300 cases each); a third is
    // the floor, so any seed passes while the generator keeps its mix.
    assert!(secret * 3 >= compiled, "{secret} of {compiled}");
}

/// Inputs by name, with their shapes and values.
fn given(inputs: &[(&str, &[usize], &[f64])]) -> BTreeMap<String, Tensor> {
    inputs
        .iter()
        .map(|(n, s, d)| (n.to_string(), Tensor::new(s.to_vec(), d.to_vec()).unwrap()))
        .collect()
}

/// Check `source` with each protocol preference, on `inputs`: it must
/// compile (under at least one preference) and match the reference.
fn regression(source: &str, batch: usize, inputs: &[(&str, &[usize], &[f64])]) {
    let mut ran = 0;
    for prefer in [
        None,
        Some(Protocol::Shares),
        Some(Protocol::Paillier),
        Some(Protocol::Rlwe),
    ] {
        let case = Case {
            source,
            prefer,
            batch,
        };
        match check_case(&case, |_| given(inputs)) {
            Ok(Verdict::Ran { unbounded, .. }) => {
                assert!(!unbounded, "W0101 on\n{source}");
                ran += 1;
            }
            Ok(Verdict::Refused) => {}
            Err(e) => panic!("prefer {prefer:?}: {e}"),
        }
    }
    assert!(ran > 0, "refused under every preference:\n{source}");
}

/// Both parties' data in one product, without a dealer, by RLWE: the
/// masked product's answer reads alice's data as its `W` by index, in the
/// preprocessing (no `input` step), so a run ahead of the data must stop
/// before it. Its gate was placed at the first `input` step only, and the
/// run ahead failed: "input `x0` is missing".
#[test]
fn regression_a_run_ahead_stops_before_an_answer_that_reads_the_data() {
    regression(
        "model fuzz {
    party alice;
    party bob;
    input x0: fixed[batch] private(alice) in [0, 0.25];
    input x1: fixed[batch] private(bob) in [0, 0.25];
    input x2: fixed private(alice) in [0, 0.25];
    let v0 = x1 @ x0;
    output v0 to alice, bob;
}
",
        1,
        &[
            ("x0", &[1], &[0.08781139852395387]),
            ("x1", &[1], &[0.0428584217323289]),
            ("x2", &[], &[0.08733050914751911]),
        ],
    );
}

/// `[k] @ [k, n]` (a row vector times a matrix, in the language's table)
/// compiled but the runtime's ring product refused its shape.
#[test]
fn regression_vector_times_matrix() {
    for dealer in ["", "dealer carol;"] {
        regression(
            &format!(
                "model fuzz {{
    party alice;
    party bob;
    {dealer}
    input x0: fixed[2] private(alice) in [-2, 2];
    input x1: fixed[2, 3] private(bob) in [-1, 1];
    let v0 = x0 @ x1;
    output v0 to alice, bob;
}}
"
            ),
            1,
            &[
                ("x0", &[2], &[1.5, -2.0]),
                ("x1", &[2, 3], &[1.0, -0.25, 0.5, -1.0, 0.75, 0.0]),
            ],
        );
    }
}

/// A value that is both an output and an operand of a later operation can
/// be held natively twice (as shares, and under a party's key): the
/// chooser's like-with-like comparison asked each method to deliver every
/// one of them, found no conversion from shares back into a key, and
/// panicked (found by this generator, seeds 2–5).
#[test]
fn regression_a_value_computed_twice_is_compared_only_with_what_it_delivers() {
    type Inputs<'a> = &'a [(&'a str, &'a [usize], &'a [f64])];
    let cases: [(&str, Inputs); 3] = [
        (
            "model fuzz { party alice; party bob;
    input x0: fixed private(alice) in [0, 0.25];
    input x1: fixed private(bob) in [0, 0.25];
    let v0 = x1 * x0;
    let v1 = v0 * x1;
    output v0 to alice, bob;
    output v1 to bob; }
",
            &[("x0", &[], &[0.2]), ("x1", &[], &[0.125])],
        ),
        (
            "model fuzz { party alice; party bob;
    input x0: fixed private(alice) in [0, 0.25];
    input x1: fixed private(bob) in [0, 0.25];
    let v0 = clamp(x0, 0, 0.25);
    let v1 = v0 + x1 via paillier;
    let v2 = clamp(v1, 1.25, 1.75);
    output v1 to bob;
    output v2 to bob; }
",
            &[("x0", &[], &[0.25]), ("x1", &[], &[0.0625])],
        ),
        (
            "model fuzz { party alice; party bob;
    input x0: fixed[2] private(alice) in [0, 0.25];
    input x1: fixed[2] private(bob) in [0, 0.25];
    let v0 = x1 * x0 via paillier;
    let v1 = v0 + (-2.25);
    let v2 = v1 - v1;
    output v0 to bob;
    output v1 to alice, bob; }
",
            &[("x0", &[2], &[0.1, 0.25]), ("x1", &[2], &[0.2, 0.0])],
        ),
    ];
    for (source, inputs) in cases {
        regression(source, 1, inputs);
    }
}
