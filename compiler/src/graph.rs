//! The dataflow graph: the live operations of a checked model as a petgraph
//! DAG, each node annotated with its shape, visibility and value range
//! (interval analysis from the declared `in [lo, hi]` ranges).

use crate::ir::*;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Who can see a value in the clear, before any protocol is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Visibility {
    Public,
    Private(PartyId),
    /// Depends on private data of both parties: known to no single party.
    Secret,
}

impl Visibility {
    pub fn join(self, other: Visibility) -> Visibility {
        match (self, other) {
            (Visibility::Public, v) | (v, Visibility::Public) => v,
            (Visibility::Private(a), Visibility::Private(b)) if a == b => Visibility::Private(a),
            _ => Visibility::Secret,
        }
    }
}

/// A closed interval of reals.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    pub fn new(lo: f64, hi: f64) -> Interval {
        Interval { lo, hi }
    }

    pub fn point(v: f64) -> Interval {
        Interval::new(v, v)
    }

    pub fn magnitude(self) -> f64 {
        self.lo.abs().max(self.hi.abs())
    }

    fn add(self, o: Interval) -> Interval {
        Interval::new(self.lo + o.lo, self.hi + o.hi)
    }

    fn sub(self, o: Interval) -> Interval {
        Interval::new(self.lo - o.hi, self.hi - o.lo)
    }

    fn neg(self) -> Interval {
        Interval::new(-self.hi, -self.lo)
    }

    fn mul(self, o: Interval) -> Interval {
        let p = [
            self.lo * o.lo,
            self.lo * o.hi,
            self.hi * o.lo,
            self.hi * o.hi,
        ];
        Interval::new(
            p.iter().cloned().fold(f64::INFINITY, f64::min),
            p.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        )
    }

    fn scale(self, k: f64) -> Interval {
        self.mul(Interval::point(k))
    }

    fn hull(self, o: Interval) -> Interval {
        Interval::new(self.lo.min(o.lo), self.hi.max(o.hi))
    }

    fn square(self) -> Interval {
        let m = self.magnitude();
        if self.lo <= 0.0 && self.hi >= 0.0 {
            Interval::new(0.0, m * m)
        } else {
            let n = self.lo.abs().min(self.hi.abs());
            Interval::new(n * n, m * m)
        }
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {}]", fmt_num(self.lo), fmt_num(self.hi))
    }
}

/// ` by column [..], [..]` for a graph's text: every column's range, or
/// the first four and the count when there are more than eight.
fn columns_text(cols: &[Interval]) -> String {
    let shown = if cols.len() > 8 { &cols[..4] } else { cols };
    let mut text: Vec<String> = shown.iter().map(Interval::to_string).collect();
    if shown.len() < cols.len() {
        text.push(format!("… ({} columns)", cols.len()));
    }
    format!(" by column {}", text.join(", "))
}

/// The least `bits` with every value of magnitude up to `magnitude` (real
/// units) at `precision` fractional bits inside `[-2^bits, 2^bits)`, with a
/// margin: the bound is `2·magnitude + 1`, so a computed value may stray
/// from its range by the range's own magnitude plus one (fixed-point
/// rounding and the approximations' errors, far below that wherever the
/// error analysis bounds them) and still compare right. 63 where that does
/// not fit in 62 bits, or the range is unbounded.
pub fn compare_bits_for(magnitude: f64, precision: u32) -> u32 {
    let full = plan::params::COMPARE_FULL_BITS;
    let bound = (2.0 * magnitude.abs() + 1.0) * 2f64.powi(precision as i32);
    if !bound.is_finite() || bound >= 2f64.powi(full as i32 - 1) {
        return full;
    }
    (bound.log2().floor() as u32 + 1).clamp(1, full)
}

/// Short, stable number formatting for reports.
pub fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e6 || v.abs() < 1e-3 {
        format!("{v:.3e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    pub value: ValueId,
    pub visibility: Visibility,
    pub range: Interval,
    /// Ranges of each entry of the last axis, where they are tighter than
    /// `range` (its hull holds them all): from an input's per-column ranges
    /// (`in [[lo, hi], ...]`), through elementwise operations and a matrix
    /// product with a constant. `None` everywhere else.
    pub cols: Option<Vec<Interval>>,
}

/// The live part of the model as a DAG; edges run operand → user.
pub struct Graph<'m> {
    pub model: &'m CheckedModel,
    pub graph: DiGraph<Node, u8>,
    /// Node of each live value.
    pub nodes: BTreeMap<ValueId, NodeIndex>,
    /// Sizes assumed for symbolic dimensions (cost estimates, reductions).
    pub assume: BTreeMap<String, u64>,
}

impl<'m> Graph<'m> {
    pub fn build(model: &'m CheckedModel, assume: BTreeMap<String, u64>) -> Graph<'m> {
        let mut live = vec![false; model.values().len()];
        for o in model.outputs() {
            live[o.value.index()] = true;
        }
        for i in (0..model.values().len()).rev() {
            if live[i] {
                for op in model.values()[i].op.operands() {
                    live[op.index()] = true;
                }
            }
        }
        let mut g = Graph {
            model,
            graph: DiGraph::new(),
            nodes: BTreeMap::new(),
            assume,
        };
        for (i, v) in model.values().iter().enumerate() {
            if !live[i] {
                continue;
            }
            let id = ValueId(i as u32);
            let operands = v.op.operands();
            let visibility = match &v.op {
                Op::Input {
                    owner: Owner::Public,
                    ..
                }
                | Op::Const { .. } => Visibility::Public,
                Op::Input {
                    owner: Owner::Party(p),
                    ..
                } => Visibility::Private(*p),
                _ => operands
                    .iter()
                    .map(|o| g.node(*o).visibility)
                    .fold(Visibility::Public, Visibility::join),
            };
            let cols = g.columns_of(v);
            let mut range = g.range_of(v);
            if let Some(hull) = cols.iter().flatten().copied().reduce(Interval::hull) {
                // Both enclose the value: their intersection does too.
                range = Interval::new(range.lo.max(hull.lo), range.hi.min(hull.hi));
            }
            let n = g.graph.add_node(Node {
                value: id,
                visibility,
                range,
                cols,
            });
            for o in operands {
                let from = g.nodes[&o];
                g.graph.add_edge(from, n, 0);
            }
            g.nodes.insert(id, n);
        }
        g
    }

    pub fn node(&self, v: ValueId) -> &Node {
        &self.graph[self.nodes[&v]]
    }

    pub fn value(&self, v: ValueId) -> &Value {
        self.model.value(v)
    }

    /// The live values that read `v` (once each, in definition order).
    pub fn users(&self, v: ValueId) -> Vec<ValueId> {
        let users: std::collections::BTreeSet<ValueId> = self
            .graph
            .neighbors_directed(self.nodes[&v], petgraph::Direction::Outgoing)
            .map(|n| self.graph[n].value)
            .collect();
        users.into_iter().collect()
    }

    /// Live values in definition (topological) order.
    pub fn order(&self) -> Vec<ValueId> {
        self.nodes.keys().copied().collect()
    }

    /// Size of a dimension, with symbols bound to their assumed sizes.
    pub fn dim_size(&self, d: &Dim) -> u64 {
        match d {
            Dim::Known(n) => *n,
            Dim::Symbol(s) => *self.assume.get(s).unwrap_or(&crate::DEFAULT_ASSUMED_DIM),
        }
    }

    /// Number of elements, with symbols at their assumed sizes (saturating:
    /// an `--assume`d size can be anything, and the count only feeds the
    /// cost model's floating-point estimates).
    pub fn elements(&self, shape: &Shape) -> u64 {
        shape
            .0
            .iter()
            .fold(1u64, |acc, d| acc.saturating_mul(self.dim_size(d)))
    }

    /// The bound of `v`'s comparisons (`plan::Instr::Nonlinear`'s `bits`):
    /// every value they compare lies in `[-2^bits, 2^bits)` at the model's
    /// precision. `relu` compares its operand, `max`/`min` the operands'
    /// difference, `clamp` `x − lo` and `hi − x` (as does `exp`'s clamp,
    /// see `lower`), the tournaments (`max` of a tensor, `min`, `argmax`)
    /// differences of entries. 63 (no bound) for every other op; sigmoid
    /// and tanh clamp into their fitted domain, which the caller passes to
    /// [`Graph::clamp_bits`].
    pub fn compare_bits(&self, v: ValueId) -> u32 {
        let r = |x: &ValueId| self.node(*x).range;
        let magnitude = match &self.value(v).op {
            Op::Relu(a) => r(a).magnitude(),
            Op::Max(a, b) | Op::Min(a, b) => {
                let (a, b) = (r(a), r(b));
                (a.lo - b.hi).abs().max((a.hi - b.lo).abs())
            }
            Op::Clamp(a, lo, hi) => return self.clamp_bits(*a, *lo, *hi),
            Op::Exp(a) => {
                let (lo, hi) = exp_clamp(r(a).hi);
                return self.clamp_bits(*a, lo, hi);
            }
            Op::MaxReduce(a) | Op::MinReduce(a) | Op::Argmax(a) => r(a).hi - r(a).lo,
            _ => return plan::params::COMPARE_FULL_BITS,
        };
        compare_bits_for(magnitude, self.model.precision())
    }

    /// The bound of a clamp of `x` to `[lo, hi]`: it compares `x − lo` and
    /// `hi − x`.
    pub fn clamp_bits(&self, x: ValueId, lo: f64, hi: f64) -> u32 {
        let a = self.node(x).range;
        let magnitude = [a.lo - lo, a.hi - lo, hi - a.lo, hi - a.hi]
            .into_iter()
            .fold(0.0, |m: f64, d| m.max(d.abs()));
        compare_bits_for(magnitude, self.model.precision())
    }

    /// Size of the last dimension of `v` (1 for a scalar).
    pub fn last_dim(&self, v: ValueId) -> u64 {
        self.value(v).shape.0.last().map_or(1, |d| self.dim_size(d))
    }

    /// The symbolic dimensions whose assumed size the analysis depends on:
    /// for every live reduction along a symbolic last dimension (sum, mean,
    /// a matrix product's inner dimension, argmax), the symbol, its assumed
    /// size, whether the plan needs exactly that size (a mean divides by
    /// it), and the value. Deduplicated per symbol, exact first.
    pub fn dim_assumptions(&self) -> Vec<(String, u64, bool, ValueId)> {
        let mut found: BTreeMap<String, (bool, ValueId)> = BTreeMap::new();
        for v in self.order() {
            let (operand, exact) = match &self.value(v).op {
                Op::Mean(a) => (*a, true),
                Op::Sum(a) | Op::MatMul(a, _) | Op::Argmax(a) => (*a, false),
                _ => continue,
            };
            if let Some(Dim::Symbol(s)) = self.value(operand).shape.0.last() {
                let e = found.entry(s.clone()).or_insert((exact, v));
                if exact && !e.0 {
                    *e = (true, v);
                }
            }
        }
        found
            .into_iter()
            .map(|(s, (exact, v))| {
                let size = self.dim_size(&Dim::Symbol(s.clone()));
                (s, size, exact, v)
            })
            .collect()
    }

    /// `s` when `a - b` is `s - max(s, axis: k)` entry by entry, as the
    /// checker writes it: `b` is a maximum of `s` along axis `k` (the last,
    /// or moved last by a `Permute`), and `a` is `s` with axis `k` moved
    /// first (a keep-dims broadcast), or `s` itself when `k` is 0 and `b`
    /// broadcasts over it as its trailing dimensions. Then every entry of
    /// `a - b` is an entry of `s` less the maximum of its own row: at most 0.
    fn less_its_max(&self, a: ValueId, b: ValueId) -> Option<ValueId> {
        let Op::MaxReduce(x) = &self.value(b).op else {
            return None;
        };
        let moved_to = |v: ValueId, last: bool| -> (ValueId, Option<usize>) {
            match &self.value(v).op {
                Op::Permute(s, p) => {
                    let rank = p.len();
                    let k = if last { p[rank - 1] } else { p[0] };
                    let rest: Vec<usize> = (0..rank).filter(|&i| i != k).collect();
                    let expected: Vec<usize> = if last {
                        rest.into_iter().chain([k]).collect()
                    } else {
                        [k].into_iter().chain(rest).collect()
                    };
                    if *p == expected {
                        (*s, Some(k))
                    } else {
                        (v, None)
                    }
                }
                _ => (v, None),
            }
        };
        let (s, reduced) = moved_to(*x, true);
        let reduced = reduced.unwrap_or(self.value(s).shape.rank().saturating_sub(1));
        match moved_to(a, false) {
            (t, Some(k)) if t == s && k == reduced => Some(s),
            (t, None)
                if t == a
                    && a == s
                    && reduced == 0
                    && self.value(s).shape.rank() == self.value(b).shape.rank() + 1 =>
            {
                Some(s)
            }
            _ => None,
        }
    }

    /// The per-column ranges of `x` as an operand of `v`: its own, when
    /// its shape is the trailing part of `v`'s (so its last axis is
    /// `v`'s); with `consts`, a constant's column hulls too.
    fn aligned_columns(&self, x: ValueId, v: &Value, consts: bool) -> Option<Vec<Interval>> {
        let (xs, vs) = (&self.value(x).shape.0, &v.shape.0);
        if xs.is_empty() || xs.len() > vs.len() || xs[..] != vs[vs.len() - xs.len()..] {
            return None;
        }
        match (&self.node(x).cols, &self.value(x).op) {
            (Some(c), _) => Some(c.clone()),
            (None, Op::Const { data }) if consts => {
                let k = self.last_dim(x) as usize;
                let mut c = vec![None::<Interval>; k];
                for (i, d) in data.iter().enumerate() {
                    let p = Interval::point(*d);
                    c[i % k] = Some(c[i % k].map_or(p, |h| h.hull(p)));
                }
                c.into_iter().collect()
            }
            _ => None,
        }
    }

    /// Per-column ranges of `v` (see [`Node::cols`]).
    fn columns_of(&self, v: &Value) -> Option<Vec<Interval>> {
        let r = |x: &ValueId| self.node(*x).range;
        let cols = |x: &ValueId| self.node(*x).cols.clone();
        let each = |a: &ValueId, f: &dyn Fn(Interval) -> Interval| {
            cols(a).map(|c| c.into_iter().map(f).collect::<Vec<_>>())
        };
        match &v.op {
            Op::Input {
                columns: Some(c), ..
            } => Some(c.iter().map(|&(lo, hi)| Interval::new(lo, hi)).collect()),
            Op::Neg(a) => each(a, &Interval::neg),
            Op::Square(a) => each(a, &Interval::square),
            Op::Relu(a) => each(a, &|x| Interval::new(x.lo.max(0.0), x.hi.max(0.0))),
            Op::Clamp(a, lo, hi) => each(a, &|x| {
                Interval::new(x.lo.clamp(*lo, *hi), x.hi.clamp(*lo, *hi))
            }),
            Op::Add(a, b) | Op::Sub(a, b) | Op::Mul(a, b) | Op::Max(a, b) | Op::Min(a, b) => {
                // A constant contributes its columns only beside an operand with them.
                let with = self.aligned_columns(*a, v, false).is_some()
                    || self.aligned_columns(*b, v, false).is_some();
                if !with || matches!(v.op, Op::Sub(a, b) if self.less_its_max(a, b).is_some()) {
                    return None;
                }
                let ca = self.aligned_columns(*a, v, true);
                let cb = self.aligned_columns(*b, v, true);
                let k = ca.as_ref().or(cb.as_ref()).map_or(0, Vec::len);
                let pick = |c: &Option<Vec<Interval>>, x: &ValueId, j: usize| {
                    c.as_ref().map_or(r(x), |c| c[j])
                };
                Some(
                    (0..k)
                        .map(|j| {
                            let (x, y) = (pick(&ca, a, j), pick(&cb, b, j));
                            match &v.op {
                                Op::Add(..) => x.add(y),
                                Op::Sub(..) => x.sub(y),
                                Op::Mul(..) => x.mul(y),
                                Op::Max(..) => Interval::new(x.lo.max(y.lo), x.hi.max(y.hi)),
                                _ => Interval::new(x.lo.min(y.lo), x.hi.min(y.hi)),
                            }
                        })
                        .collect(),
                )
            }
            // Column c of `a @ b` for a constant matrix `b` [k, m]: the sum
            // over j of a's column j times b[j, c].
            Op::MatMul(a, b) => {
                let ca = cols(a)?;
                let Op::Const { data } = &self.value(*b).op else {
                    return None;
                };
                if self.value(*b).shape.rank() != 2 {
                    return None;
                }
                let m = self.last_dim(*b) as usize;
                Some(
                    (0..m)
                        .map(|c| {
                            ca.iter()
                                .enumerate()
                                .map(|(j, x)| x.scale(data[j * m + c]))
                                .fold(Interval::point(0.0), Interval::add)
                        })
                        .collect(),
                )
            }
            _ => None,
        }
    }

    /// The range of `a @ b` (or `sum(a)`, `b` = `None`) from `a`'s
    /// per-column ranges: the sum over its columns j of column j times
    /// row j of `b` (a constant's, or `b`'s whole range).
    fn columns_times(&self, a: ValueId, b: Option<ValueId>) -> Option<Interval> {
        let ca = self.node(a).cols.as_ref()?;
        let row = |j: usize| -> Interval {
            let Some(b) = b else {
                return Interval::point(1.0);
            };
            match &self.value(b).op {
                Op::Const { data } if self.value(b).shape.rank() <= 2 => {
                    let m = if self.value(b).shape.rank() == 2 {
                        self.last_dim(b) as usize
                    } else {
                        1
                    };
                    data[j * m..(j + 1) * m]
                        .iter()
                        .map(|d| Interval::point(*d))
                        .reduce(Interval::hull)
                        .unwrap_or(Interval::point(0.0))
                }
                _ => self.node(b).range,
            }
        };
        Some(
            ca.iter()
                .enumerate()
                .map(|(j, x)| x.mul(row(j)))
                .fold(Interval::point(0.0), Interval::add),
        )
    }

    fn range_of(&self, v: &Value) -> Interval {
        let r = |x: &ValueId| self.node(*x).range;
        match &v.op {
            Op::Input { range, .. } => {
                let (lo, hi) = input_range(*range, self.model.precision());
                Interval::new(lo, hi)
            }
            Op::Const { data } => data
                .iter()
                .map(|x| Interval::point(*x))
                .reduce(Interval::hull)
                .unwrap_or(Interval::point(0.0)),
            Op::Neg(a) => r(a).neg(),
            Op::Add(a, b) => r(a).add(r(b)),
            Op::Sub(a, b) => match self.less_its_max(*a, *b) {
                // Each entry less the maximum of a set of entries holding it.
                Some(s) => Interval::new(r(&s).lo - r(&s).hi, 0.0),
                None => r(a).sub(r(b)),
            },
            Op::Mul(a, b) => r(a).mul(r(b)),
            Op::MatMul(a, b) => match self.columns_times(*a, Some(*b)) {
                Some(range) => range,
                None => {
                    let k = self.last_dim(*a);
                    r(a).mul(r(b)).scale(k as f64)
                }
            },
            Op::Sum(a) => self
                .columns_times(*a, None)
                .unwrap_or_else(|| r(a).scale(self.last_dim(*a) as f64)),
            Op::Mean(a)
            | Op::MaxReduce(a)
            | Op::MinReduce(a)
            | Op::Permute(a, _)
            | Op::Reshape(a) => r(a),
            // Zeros where a window reaches into the padding (an edge
            // padding repeats entries instead).
            Op::Im2col(a, w) if !w.edge && w.padding.iter().any(|&p| p > 0) => {
                r(a).hull(Interval::point(0.0))
            }
            Op::Im2col(a, _) | Op::Narrow(a, ..) => r(a),
            Op::Concat(parts) => parts
                .iter()
                .map(r)
                .reduce(Interval::hull)
                .unwrap_or(Interval::point(0.0)),
            Op::Square(a) => r(a).square(),
            Op::Exp(a) => Interval::new(r(a).lo.exp(), r(a).hi.exp()),
            // Over a range without 0 (the analysis refuses any other).
            Op::Reciprocal(a) if r(a).lo > 0.0 || r(a).hi < 0.0 => {
                Interval::new(1.0 / r(a).hi, 1.0 / r(a).lo)
            }
            Op::Reciprocal(_) => Interval::new(f64::NEG_INFINITY, f64::INFINITY),
            // Over a range above 0 (the analysis refuses any other).
            Op::Log(a) if r(a).lo > 0.0 => Interval::new(r(a).lo.ln(), r(a).hi.ln()),
            Op::Log(_) => Interval::new(f64::NEG_INFINITY, f64::INFINITY),
            Op::Rsqrt(a) if r(a).lo > 0.0 => {
                Interval::new(1.0 / r(a).hi.sqrt(), 1.0 / r(a).lo.sqrt())
            }
            Op::Rsqrt(_) => Interval::new(0.0, f64::INFINITY),
            Op::Sigmoid(..) => Interval::new(0.0, 1.0),
            Op::Tanh(..) => Interval::new(-1.0, 1.0),
            Op::Poly(a, coeffs) => {
                // Horner in interval arithmetic.
                let x = r(a);
                coeffs.iter().rev().fold(Interval::point(0.0), |acc, c| {
                    acc.mul(x).add(Interval::point(*c))
                })
            }
            Op::Relu(a) => Interval::new(r(a).lo.max(0.0), r(a).hi.max(0.0)),
            Op::Argmax(a) => Interval::new(0.0, (self.last_dim(*a).saturating_sub(1)) as f64),
            Op::Max(a, b) => Interval::new(r(a).lo.max(r(b).lo), r(a).hi.max(r(b).hi)),
            Op::Min(a, b) => Interval::new(r(a).lo.min(r(b).lo), r(a).hi.min(r(b).hi)),
            Op::Clamp(a, lo, hi) => Interval::new(r(a).lo.clamp(*lo, *hi), r(a).hi.clamp(*lo, *hi)),
        }
    }

    /// A stable text form: one line per live value.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "graph {}", self.model.name());
        for v in self.order() {
            let value = self.value(v);
            let node = self.node(v);
            let _ = writeln!(
                out,
                "  {} = {} : {} {} range {}{}{}",
                self.label(v),
                self.describe(v),
                value.shape,
                match node.visibility {
                    Visibility::Public => "public".to_string(),
                    Visibility::Private(p) => format!("private({})", self.model.party(p).name),
                    Visibility::Secret => "secret".to_string(),
                },
                node.range,
                node.cols.as_deref().map(columns_text).unwrap_or_default(),
                value
                    .via
                    .map(|p| format!(" via {}", p.name()))
                    .unwrap_or_default(),
            );
        }
        out
    }

    /// `%3` or the value's name.
    pub fn label(&self, v: ValueId) -> String {
        match &self.value(v).name {
            Some(n) => n.clone(),
            None => format!("%{}", v.0),
        }
    }

    /// The operation with operand labels, e.g. `matmul(x, w)`.
    pub fn describe(&self, v: ValueId) -> String {
        let value = self.value(v);
        let args: Vec<String> = value.op.operands().iter().map(|o| self.label(*o)).collect();
        match &value.op {
            Op::Input { .. } => "input".into(),
            Op::Const { data } if data.len() == 1 => format!("const {}", fmt_num(data[0])),
            Op::Const { data } => format!("const[{} values]", data.len()),
            op => format!("{}({})", op.mnemonic(), args.join(", ")),
        }
    }

    /// Graphviz DOT, nodes coloured by `colour(value)`.
    pub fn to_dot(&self, colour: &dyn Fn(ValueId) -> (&'static str, String)) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "digraph \"{}\" {{", self.model.name());
        let _ = writeln!(
            out,
            "  rankdir=LR;\n  node [shape=box, style=filled, fontname=\"monospace\"];"
        );
        for v in self.order() {
            let (fill, note) = colour(v);
            let _ = writeln!(
                out,
                "  v{} [label=\"{} = {}\\n{}\\n{}\", fillcolor=\"{fill}\"];",
                v.0,
                self.label(v),
                self.describe(v).replace('"', "'"),
                self.value(v).shape,
                note
            );
        }
        for e in self.graph.edge_indices() {
            let (a, b) = self.graph.edge_endpoints(e).expect("edge");
            let _ = writeln!(
                out,
                "  v{} -> v{};",
                self.graph[a].value.0, self.graph[b].value.0
            );
        }
        out.push_str("}\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The range of output `r` of a model over `s`, from the graph.
    fn range_of_r(types: &str, body: &str) -> Interval {
        let r = crate::check_source(&format!(
            "model m {{ party a; party b; input s: {types} private(a) in [-1, 2]; {body} output r to a; }}"
        ));
        let m = r.model.unwrap_or_else(|| panic!("{:?}", r.diagnostics));
        let g = Graph::build(&m, BTreeMap::new());
        g.node(m.outputs()[0].value).range
    }

    /// The comparison bound of output `r` over `s` in [-1, 2].
    fn compare_bits_of_r(types: &str, body: &str) -> u32 {
        let r = crate::check_source(&format!(
            "model m {{ party a; party b; input s: {types} private(a) in [-1, 2]; input t: fixed private(b) in [-3, 0.5]; {body} output r to a; }}"
        ));
        let m = r.model.unwrap_or_else(|| panic!("{:?}", r.diagnostics));
        let g = Graph::build(&m, BTreeMap::new());
        g.compare_bits(m.outputs()[0].value)
    }

    #[test]
    fn comparisons_are_bounded_by_their_operands_ranges() {
        // 2·m + 1 at 16 fractional bits: m = 2 gives 5·2^16 < 2^19.
        assert_eq!(compare_bits_of_r("fixed[4]", "let r = relu(s);"), 19);
        // s − t lies in [-1.5, 5]: 11·2^16 < 2^20.
        assert_eq!(compare_bits_of_r("fixed[4]", "let r = max(s, t);"), 20);
        assert_eq!(compare_bits_of_r("fixed[4]", "let r = min(s, t);"), 20);
        // s − (−10) reaches 12: 25·2^16 < 2^21.
        assert_eq!(
            compare_bits_of_r("fixed[4]", "let r = clamp(s, -10, 1);"),
            21
        );
        // Entries differ by at most 3: 7·2^16 < 2^19.
        assert_eq!(compare_bits_of_r("fixed[4]", "let r = max(s);"), 19);
        assert_eq!(compare_bits_of_r("fixed[4]", "let r = argmax(s);"), 19);
        // A wide operand: 2·(2·10^15)·2^16 does not fit in 62 bits.
        assert_eq!(
            compare_bits_of_r("fixed[4]", "let r = relu(s * 1000000000 * 1000000);"),
            63
        );
        // Not a comparison.
        assert_eq!(compare_bits_of_r("fixed[4]", "let r = s + s;"), 63);
        assert_eq!(compare_bits_for(0.0, 16), 17);
        assert_eq!(compare_bits_for(f64::INFINITY, 16), 63);
        assert_eq!(compare_bits_for(f64::NAN, 16), 63);
        assert_eq!(compare_bits_for(0.0, 0), 1);
    }

    #[test]
    fn many_columns_are_summarised_in_the_text() {
        let cols: Vec<Interval> = (0..10).map(|i| Interval::new(0.0, i as f64)).collect();
        assert_eq!(
            columns_text(&cols),
            " by column [0, 0], [0, 1], [0, 2], [0, 3], … (10 columns)"
        );
        assert_eq!(columns_text(&cols[..2]), " by column [0, 0], [0, 1]");
    }

    /// With per-column ranges, a scaler inside the model keeps each column
    /// its own range (the widest no longer sets every column's), and a
    /// product sums each column's magnitude rather than k times the widest.
    #[test]
    fn per_column_ranges_carry_through_a_scaler_and_a_product() {
        let src = "model m { party a; party b;
            input x: fixed[batch, 2] private(a) in [[0, 200], [-1, 1]];
            input w: fixed[2] private(b) in [-1, 1];
            const mu: fixed[2] = [100, 0]; const inv: fixed[2] = [0.01, 1];
            const m2: fixed[2, 2] = [[1, 0], [0, -2]];
            let z = (x - mu) * inv; let s = z @ w; let t = x @ w; let u = sum(x);
            let v = relu(x @ m2) + z;
            output s to a; output t to a; output u to a; output v to a; }";
        let r = crate::check_source(src);
        let m = r.model.unwrap_or_else(|| panic!("{:?}", r.diagnostics));
        let g = Graph::build(&m, BTreeMap::new());
        let range = |i: usize| g.node(m.outputs()[i].value).range;
        let z = m.outputs()[3].value;
        assert_eq!(range(0), Interval::new(-2.0, 2.0));
        assert_eq!(range(1), Interval::new(-201.0, 201.0));
        assert_eq!(range(2), Interval::new(-1.0, 201.0));
        // relu(x @ m2): columns [0, 200] and [0, 2]; plus z's [-1, 1] each.
        assert_eq!(
            g.node(z).cols,
            Some(vec![Interval::new(-1.0, 201.0), Interval::new(-1.0, 3.0)])
        );
        assert_eq!(range(3), Interval::new(-1.0, 201.0));
        // The graph's text shows them.
        let text = g.to_text();
        assert!(
            text.contains("range [-1, 201] by column [-1, 201], [-1, 3]"),
            "{text}"
        );
        // Without per-column ranges nothing has columns.
        let r = crate::check_source(&src.replace("[[0, 200], [-1, 1]]", "[-1, 200]"));
        let m = r.model.unwrap();
        let g = Graph::build(&m, BTreeMap::new());
        assert!(g.order().iter().all(|v| g.node(*v).cols.is_none()));
        assert_eq!(
            g.node(m.outputs()[1].value).range,
            Interval::new(-400.0, 400.0)
        );
    }

    /// `s - max(s)` lies in [lo - hi, 0] only where each entry meets the
    /// maximum of its own row (or column); otherwise the plain difference.
    #[test]
    fn an_entry_less_its_own_maximum_is_at_most_zero() {
        let own = Interval::new(-3.0, 0.0);
        let plain = Interval::new(-3.0, 3.0);
        for (types, body, want) in [
            ("fixed[batch, 3]", "let r = s - max(s);", own),
            ("fixed[batch, 3]", "let r = s - max(s, axis: 1);", own),
            ("fixed[batch, 3]", "let r = s - max(s, axis: 0);", own),
            (
                "fixed[2, 12]",
                "let t = reshape(s, [2, 3, 4]); let r = t - max(t, axis: 1);",
                own,
            ),
            (
                "fixed[2, 12]",
                "let t = reshape(s, [2, 3, 4]); let r = t - max(t, axis: 2);",
                own,
            ),
            // A square matrix: the trailing rule pairs s[i, j] with row j's maximum.
            ("fixed[3, 3]", "let r = s - max(s);", plain),
            ("fixed[3, 3]", "let r = s - max(s, axis: 0);", own),
            ("fixed[batch, 3]", "let r = max(s) - s;", plain),
        ] {
            assert_eq!(range_of_r(types, body), want, "{types}: {body}");
        }
    }
}
