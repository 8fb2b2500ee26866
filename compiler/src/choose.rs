//! Protocol choice: for every live operation, how it runs (in the clear at
//! one party, with Paillier under one party's key, or on additive shares),
//! chosen by minimising the cost model over the whole graph.
//!
//! The search is a dynamic programme in topological order: for every value
//! and every representation it can take ([`Repr`]) the cheapest way to
//! produce it, either natively by a method or by converting another
//! representation. This is exact on trees; on DAGs a value used twice has
//! its cost counted once per use during the search (the plan's estimate,
//! priced afterwards from the emitted plan by `cost::estimate`, counts it
//! once).

use crate::cost::{Cost, CostTable, Network, CLEAR_POLY_RING_OPS, RING_BYTES};
use crate::error::{CompileError, InternalError};
use crate::graph::{Graph, Visibility};
use crate::ir::*;
use grammar::{Code, Diagnostic};
use plan::params::{COMPARE_FULL_BITS, COMPARISON_ROUNDS};
use std::collections::{BTreeMap, BTreeSet};

/// How a value is represented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Repr {
    /// Known to every party.
    Public,
    /// In the clear at one party.
    Clear(PartyId),
    /// Additively shared between the two computing parties.
    Shared,
    /// Encrypted under the key of the given party, held by the other one.
    Cipher(PartyId),
}

/// How an operation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Public,
    Clear(PartyId),
    Shares,
    Paillier(PartyId),
    /// A matrix product by RLWE (the result as shares): the party holding
    /// `x` (or each share of it) encrypts, the party holding `W` (or each
    /// share of it) multiplies.
    Rlwe,
}

impl Method {
    pub fn result(self) -> Repr {
        match self {
            Method::Public => Repr::Public,
            Method::Clear(p) => Repr::Clear(p),
            Method::Shares | Method::Rlwe => Repr::Shared,
            Method::Paillier(k) => Repr::Cipher(k),
        }
    }
}

/// A form of an RLWE product whose `W` is the multiplying party's input,
/// forced by `crate::Options::rlwe_form` (else the cost model picks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RlweForm {
    /// `rlwe::prepared`: `W`'s half in the preprocessing, `x`'s
    /// coefficients up and the results down online
    /// ([`Chooser::rlwe_prepared`]).
    Prepared,
    /// Delphi's masks: the whole product on a random mask in the
    /// preprocessing, `x` minus the mask up online, no HE online
    /// ([`Chooser::rlwe_masked`]).
    Masked,
    /// In one piece online (tests).
    Whole,
}

/// How one representation of a value is obtained.
#[derive(Clone, Debug, PartialEq)]
pub enum How {
    Native { method: Method, operands: Vec<Repr> },
    Convert { from: Repr },
}

#[derive(Clone, Debug)]
struct Entry {
    cost: Cost,
    score: f64,
    how: How,
}

/// The compiler's decision for one operation, for the report.
#[derive(Clone, Debug)]
pub struct Decision {
    pub value: ValueId,
    pub method: Method,
    pub cost: Cost,
    pub runner_up: Option<(Method, Cost)>,
    pub reason: String,
}

/// The outcome: which representations of which values to materialise, and how.
pub struct Selection {
    pub materialize: BTreeMap<ValueId, BTreeMap<Repr, How>>,
    /// For each output (by index), the representation it is revealed from.
    pub output_from: Vec<Repr>,
    pub decisions: Vec<Decision>,
}

/// A grouped convolution's products that RLWE runs, with their `Sum`
/// ([`Chooser::rlwe_grouped`]).
#[derive(Clone, Debug)]
pub struct GroupedConv {
    /// The convolution's input.
    pub x: ValueId,
    /// Its window (with its groups).
    pub window: plan::Window,
    /// The `Sum` over each patch, the products' only user.
    pub sum: ValueId,
    pub groups: usize,
    /// Output channels.
    pub cout: usize,
    /// Entries of a group's patch, `C/groups·K`.
    pub r: usize,
}

impl GroupedConv {
    /// The window of the same convolution in one group (the ungrouped
    /// patches, or HomConv with the block-diagonal kernels).
    pub fn ungrouped(&self) -> plan::Window {
        plan::Window {
            groups: 1,
            per_group: 1,
            ..self.window.clone()
        }
    }
}

pub struct Chooser<'a, 'm> {
    pub g: &'a Graph<'m>,
    pub costs: &'a CostTable,
    pub net: Network,
    pub dealer: bool,
    /// Where the correlations come from (the dealer, or how the two
    /// parties generate them).
    pub source: crate::cost::Source,
    pub prefer: Option<Protocol>,
    /// The form of RLWE products with `W` a party's input, when forced
    /// (`crate::Options::rlwe_form`).
    pub rlwe_form: Option<RlweForm>,
    /// Sigmoid/tanh evaluated on a clamped input (see `analysis`).
    pub clamped: std::collections::BTreeSet<ValueId>,
    /// The analysis's fits of sigmoid and tanh (their domains bound the
    /// clamps' comparisons).
    pub fits: &'a BTreeMap<ValueId, crate::approx::Fit>,
}

impl Chooser<'_, '_> {
    /// Without a dealer, how the two parties generate correlations.
    pub fn engine(&self) -> plan::CorrelationEngine {
        match self.source {
            crate::cost::Source::Paillier => plan::CorrelationEngine::Paillier,
            crate::cost::Source::Dealer
            | crate::cost::Source::DealerDcf
            | crate::cost::Source::Ot => plan::CorrelationEngine::Ot,
        }
    }

    fn other(&self, p: PartyId) -> PartyId {
        *self
            .g
            .model
            .compute_parties()
            .iter()
            .find(|q| **q != p)
            .expect("two computing parties")
    }

    fn n(&self, v: ValueId) -> f64 {
        self.g.elements(&self.g.value(v).shape) as f64
    }

    fn score(&self, c: Cost) -> f64 {
        c.seconds(&self.net)
    }

    // --- primitive costs ---

    // The primitives' costs are the table's (cost.rs); the chooser only
    // knows where the correlations come from.

    /// A Beaver product (`k`: products summed per output element).
    pub fn beaver(&self, x: f64, y: f64, z: f64, k: f64) -> Cost {
        self.costs.beaver(self.source, x, y, z, k)
    }

    pub fn trunc(&self, n: f64) -> Cost {
        self.costs.trunc(self.source, n)
    }

    /// Cost of converting `n` elements from one representation to another, if possible.
    fn convert(&self, from: Repr, to: Repr, n: f64) -> Option<Cost> {
        let c = self.costs;
        match (from, to) {
            (Repr::Public, Repr::Shared) => Some(Cost::ZERO),
            (Repr::Clear(_), Repr::Shared) => {
                Some(Cost::compute(n * c.ring_op) + Cost::comm(n * RING_BYTES, 1))
            }
            (Repr::Clear(p), Repr::Cipher(k)) if p == k => Some(
                Cost::compute(n * c.paillier_encrypt) + Cost::comm(n * c.ciphertext_bytes(), 1),
            ),
            (Repr::Cipher(_), Repr::Shared) => Some(
                Cost::compute(n * (c.paillier_encrypt + c.paillier_add + c.paillier_decrypt))
                    + Cost::comm(n * c.ciphertext_bytes(), 1),
            ),
            _ => None,
        }
    }

    /// Cost of converting `n` elements from `from` to `to` in at most two
    /// steps (clear → Paillier → shares), zero if they are the same.
    fn convert_any(&self, from: Repr, to: Repr, n: f64) -> Option<Cost> {
        if from == to {
            return Some(Cost::ZERO);
        }
        let via = self.g.model.compute_parties().into_iter().filter_map(|k| {
            Some(self.convert(from, Repr::Cipher(k), n)? + self.convert(Repr::Cipher(k), to, n)?)
        });
        self.convert(from, to, n)
            .into_iter()
            .chain(via)
            .min_by(|a, b| self.score(*a).total_cmp(&self.score(*b)))
    }

    /// The powers t^k a polynomial of `degree` needs (odd-only when `odd`),
    /// each computed as a product of two earlier powers, in rounds of
    /// independent products: returns (products, rounds).
    pub fn power_schedule(degree: u32, odd: bool) -> Vec<Vec<(u32, u32, u32)>> {
        let mut needed: Vec<u32> = (2..=degree).filter(|k| !odd || k % 2 == 1).collect();
        // Every needed power k = a + b with a the largest power of two below k.
        let mut all = std::collections::BTreeSet::new();
        while let Some(k) = needed.pop() {
            if k < 2 || !all.insert(k) {
                continue;
            }
            let a = 1u32 << (31 - (k - 1).leading_zeros());
            let a = if a == k { k / 2 } else { a };
            needed.push(a);
            needed.push(k - a);
        }
        let mut depth: BTreeMap<u32, u32> = BTreeMap::new();
        depth.insert(1, 0);
        let mut levels: Vec<Vec<(u32, u32, u32)>> = Vec::new();
        for &k in &all {
            let a = 1u32 << (31 - (k - 1).leading_zeros());
            let a = if a == k { k / 2 } else { a };
            let b = k - a;
            let d = depth[&a].max(depth[&b]) + 1;
            depth.insert(k, d);
            if levels.len() < d as usize {
                levels.resize(d as usize, Vec::new());
            }
            levels[d as usize - 1].push((k, a, b));
        }
        levels
    }

    /// `n` secure comparisons taking `rounds` rounds, of values within
    /// `2^bits`: see [`CostTable::comparison`].
    pub fn comparison(&self, n: f64, rounds: u32, bits: u32) -> Cost {
        self.costs.comparison(self.source, n, rounds, bits)
    }

    pub fn holder_matmul(&self, nx: f64, nw: f64, nz: f64, k: f64) -> Cost {
        self.costs.holder_matmul(nx, nw, nz, k)
    }

    /// `exp` of `n` elements on shares (without a clamp): t = x/2^k, t² (a
    /// round), 1 + t + t²/2, then k squarings, each a round
    /// (k = `EXP_SQUARINGS`).
    fn exp_cost(&self, n: f64) -> Cost {
        let mut c = self.trunc(n) + Cost::compute(3.0 * n * self.costs.ring_op);
        for _ in 0..=crate::ir::EXP_SQUARINGS {
            c += self.beaver(n, n, n, 1.0) + self.trunc(n);
        }
        c
    }

    fn poly_cost(&self, n: f64, degree: u32, odd: bool) -> Cost {
        let levels = Self::power_schedule(degree, odd);
        let mut cost = self.trunc(n) + Cost::compute(n * self.costs.ring_op); // t = x / L
        for level in &levels {
            let k = level.len() as f64;
            let mut c = self.beaver(k * n, k * n, k * n, 1.0) + self.trunc(k * n);
            // Products in one level share their rounds.
            c.rounds = 2.min(c.rounds);
            cost += c;
        }
        cost + Cost::compute(n * degree as f64 * self.costs.ring_op) + self.trunc(n)
    }

    /// Cost of running `v` by `method` with operands in `reprs`, or None if
    /// the method cannot run this operation that way.
    /// The model takes `argmax` of `a` (so `max` of `a` on shares is free).
    fn has_argmax(&self, a: ValueId) -> bool {
        self.g
            .model
            .values()
            .iter()
            .any(|u| matches!(u.op, Op::Argmax(b) if b == a))
    }

    fn op_cost(&self, v: ValueId, method: Method, reprs: &[Repr]) -> Option<Cost> {
        let value = self.g.value(v);
        let n = self.n(v);
        let c = self.costs;
        let operands = value.op.operands();
        let size = |i: usize| self.n(operands[i]);
        match method {
            // Patches that only input-holder convolution triples read are
            // never cut (the lowering drops the step: they read the input).
            Method::Clear(p) if self.patches_only_for_holder_convs(v, p) => Some(Cost::ZERO),
            Method::Public | Method::Clear(_) => Some(Cost::compute(match &value.op {
                Op::MatMul(a, _) => n * self.g.last_dim(*a) as f64 * c.ring_mac,
                Op::Sigmoid(..)
                | Op::Tanh(..)
                | Op::Poly(..)
                | Op::Exp(_)
                | Op::Reciprocal(_)
                | Op::Log(_)
                | Op::Rsqrt(_) => n * CLEAR_POLY_RING_OPS * c.ring_op,
                _ => n * c.ring_op,
            })),
            Method::Shares => {
                let public = |i: usize| reprs[i] == Repr::Public;
                Some(match &value.op {
                    // The sum of a grouped convolution's products: its
                    // convolution triple computed it.
                    Op::Sum(a) if self.conv_triple(*a).is_some() => Cost::ZERO,
                    Op::Add(..)
                    | Op::Sub(..)
                    | Op::Neg(_)
                    | Op::Sum(_)
                    | Op::Permute(..)
                    | Op::Reshape(_) => Cost::compute(size(0) * c.ring_op),
                    // Patches that only convolution triples read are never
                    // cut (the lowering drops the step: they read the input).
                    Op::Im2col(..) if self.patches_only_for_triples(v) => Cost::ZERO,
                    Op::Im2col(..) | Op::Concat(_) | Op::Narrow(..) => Cost::compute(n * c.ring_op),
                    Op::Mean(_) => Cost::compute(size(0) * c.ring_op) + self.trunc(n),
                    Op::Mul(..) if public(0) || public(1) => {
                        Cost::compute(n * c.ring_op) + self.trunc(n)
                    }
                    // A convolution of one party's clear input by the
                    // other's kernels: an input-holder convolution triple,
                    // each side's masked input sent once (x, not the
                    // patches). A grouped one's result is the patches' sums.
                    Op::Mul(cols, _) | Op::MatMul(cols, _)
                        if self.holder_conv(v, reprs).is_some() =>
                    {
                        let (x, _) = self.holder_conv(v, reprs)?;
                        let (out, k) = if matches!(value.op, Op::Mul(..)) {
                            let width = self.g.last_dim(*cols).max(1) as f64;
                            (n / width, width)
                        } else {
                            (n, self.g.last_dim(*cols) as f64)
                        };
                        self.holder_matmul(self.n(x), size(1), out, k) + self.trunc(out)
                    }
                    // A grouped convolution: the dealer's convolution
                    // triple opens x and W and yields the patches' sums.
                    Op::Mul(cols, _) if self.conv_triple(v).is_some() => {
                        let (x, _) = self.conv_triple(v)?;
                        let width = self.g.last_dim(*cols).max(1) as f64;
                        self.beaver(self.n(x), size(1), n / width, width)
                            + Cost::compute(3.0 * n * c.ring_mac)
                            + self.trunc(n / width)
                    }
                    Op::Mul(..) => self.beaver(n, n, n, 1.0) + self.trunc(n),
                    Op::Square(_) => self.beaver(n, n, n, 1.0) + self.trunc(n),
                    Op::MatMul(a, _) => {
                        let k = self.g.last_dim(*a) as f64;
                        if public(0) || public(1) {
                            Cost::compute(n * k * c.ring_mac) + self.trunc(n)
                        } else if matches!(reprs, [Repr::Clear(_), Repr::Clear(_)]) {
                            self.holder_matmul(size(0), size(1), n, k) + self.trunc(n)
                        } else {
                            // A dealer's convolution triple opens x, not its patches.
                            let x = self.conv_triple(v).map_or(size(0), |(x, _)| self.n(x));
                            self.beaver(x, size(1), n, k)
                                + Cost::compute(3.0 * n * k * c.ring_mac)
                                + self.trunc(n)
                        }
                    }
                    Op::Sigmoid(..) | Op::Tanh(..) => {
                        let degree = self.degree_hint(v);
                        let clamp = if self.clamped.contains(&v) {
                            let bits = match (self.fits.get(&v), value.op.operands().first()) {
                                (Some(fit), Some(x)) => {
                                    self.g.clamp_bits(*x, fit.domain.0, fit.domain.1)
                                }
                                _ => COMPARE_FULL_BITS,
                            };
                            self.comparison(2.0 * n, COMPARISON_ROUNDS, bits)
                        } else {
                            Cost::ZERO
                        };
                        self.poly_cost(n, degree, true) + clamp
                    }
                    Op::Exp(_) => {
                        let mut cost = self.exp_cost(n);
                        if self.clamped.contains(&v) {
                            cost +=
                                self.comparison(2.0 * n, COMPARISON_ROUNDS, self.g.compare_bits(v));
                        }
                        cost
                    }
                    // The tangent (a public product), then per Newton step
                    // an exp and one product.
                    Op::Log(a) => {
                        let steps =
                            crate::analysis::log_plan(self.g, *a).map_or(1, |p| p.iterations);
                        let mut cost = self.trunc(n) + Cost::compute(2.0 * n * c.ring_op);
                        for _ in 0..steps {
                            cost += self.exp_cost(n) + self.beaver(n, n, n, 1.0) + self.trunc(n);
                            cost += Cost::compute(3.0 * n * c.ring_op);
                        }
                        cost
                    }
                    // One public product, then two rounds of products per iteration.
                    Op::Reciprocal(a) => {
                        let steps = crate::analysis::reciprocal_plan(self.g, *a)
                            .map_or(1, |p| p.iterations);
                        let mut c = self.trunc(n) + Cost::compute(2.0 * n * c.ring_op);
                        for _ in 1..steps {
                            c += self.beaver(n, n, n, 1.0) + self.trunc(n);
                            c += self.beaver(n, n, n, 1.0) + self.trunc(n);
                        }
                        c
                    }
                    Op::Poly(_, coeffs) => {
                        self.poly_cost(n, (coeffs.len() as u32).saturating_sub(1).max(1), false)
                    }
                    // Secure comparison: correlations from the dealer, or
                    // generated by the two parties with Paillier.
                    Op::Relu(_) | Op::Max(..) | Op::Min(..) | Op::Clamp(..) => {
                        let k = if matches!(value.op, Op::Clamp(..)) {
                            2.0
                        } else {
                            1.0
                        };
                        self.comparison(k * n, COMPARISON_ROUNDS, self.g.compare_bits(v))
                    }
                    // The maximum of an operand whose argmax the model also
                    // takes comes out of argmax's tournament (the lowering
                    // fuses them: `NonlinearOp::MaxArgmax`); only local moves.
                    Op::MaxReduce(a) if self.has_argmax(*a) => Cost::compute(n * c.ring_op),
                    // A tournament: K - 1 comparisons per row of K entries
                    // (argmax also selects the index: K - 1 more selects).
                    Op::MaxReduce(a) | Op::MinReduce(a) | Op::Argmax(a) => {
                        let last = self.g.last_dim(*a);
                        let compared =
                            size(0) / (last.max(1) as f64) * last.saturating_sub(1) as f64;
                        let cost = self.comparison(
                            compared,
                            plan::NonlinearOp::MaxReduce.rounds(last),
                            self.g.compare_bits(v),
                        );
                        if matches!(value.op, Op::Argmax(_)) {
                            cost + self.costs.select(self.source, compared)
                        } else {
                            cost
                        }
                    }
                    // In the clear only (the analysis refuses it on secret values).
                    // One public product, then three rounds of products per step.
                    Op::Rsqrt(a) => {
                        let steps =
                            crate::analysis::rsqrt_plan(self.g, *a).map_or(1, |p| p.iterations);
                        let mut cost = self.trunc(n) + Cost::compute(2.0 * n * c.ring_op);
                        for _ in 1..steps {
                            for _ in 0..3 {
                                cost += self.beaver(n, n, n, 1.0) + self.trunc(n);
                            }
                        }
                        cost
                    }
                    Op::Input { .. } | Op::Const { .. } => return None,
                })
            }
            Method::Rlwe => {
                let (_, w, batch, k, cols) = self.rlwe_dims(v)?;
                let w = &w;
                // A grouped convolution's result is the sums (`batch`
                // rows of `cols`), and its operands are rearranged
                // locally first: the patches ungrouped, the kernels
                // block-diagonal (`groups + 1` times `W`'s entries moved).
                let (n, moves) = match self.rlwe_grouped(v) {
                    Some(gc) => (
                        batch * cols,
                        Cost::compute((size(0) + (gc.groups + 1) as f64 * size(1)) * c.ring_op),
                    ),
                    None => (n, Cost::ZERO),
                };
                let dims = (batch, k, cols);
                let product =
                    |w_bits| Some(self.rlwe_product_cost(v, dims, w_bits)?.0 + c.rlwe_key());
                // A convolution's patches times clear kernels: HomConv when cheaper.
                // (`rlwe_conv` makes the same choice for the lowering.)
                let clear_w = |w_bits| {
                    let by_product = self.rlwe_product_cost(v, dims, w_bits)?.0;
                    Some(
                        match self.rlwe_conv_cost(v, w_bits) {
                            Some((_, _, conv)) if self.score(conv) < self.score(by_product) => conv,
                            _ => by_product,
                        } + c.rlwe_key(),
                    )
                };
                let local = Cost::compute(n * k * c.ring_mac);
                Some(
                    moves
                        + match reprs {
                            [Repr::Clear(p), Repr::Clear(q)] if p != q => {
                                clear_w(self.rlwe_w_bits(*w, reprs[1])?)? + self.trunc(n)
                            }
                            [Repr::Shared, Repr::Clear(_)] => {
                                clear_w(self.rlwe_w_bits(*w, reprs[1])?)? + local + self.trunc(n)
                            }
                            [Repr::Shared, Repr::Shared] => {
                                let one = product(plan::params::RLWE_MAX_W_BITS)?;
                                one + one + local + local + self.trunc(n)
                            }
                            _ => return None,
                        },
                )
            }
            Method::Paillier(_) => {
                let cipher = |i: usize| matches!(reprs[i], Repr::Cipher(_));
                Some(match &value.op {
                    Op::MatMul(a, _) => {
                        let k = self.g.last_dim(*a) as f64;
                        Cost::compute(n * k * c.paillier_mul_term)
                    }
                    Op::Mul(..) => Cost::compute(n * c.paillier_mul_term),
                    Op::Add(..) | Op::Sub(..) if cipher(0) && cipher(1) => {
                        Cost::compute(n * c.paillier_add)
                    }
                    Op::Add(..) | Op::Sub(..) => Cost::compute(n * 2.0 * c.paillier_add),
                    Op::Neg(_) => Cost::compute(n * c.paillier_mul_term),
                    Op::Sum(_) => Cost::compute(size(0) * c.paillier_add),
                    Op::Mean(_) => {
                        Cost::compute(size(0) * c.paillier_add + n * c.paillier_mul_term)
                    }
                    _ => return None,
                })
            }
        }
    }

    /// A convolution's product `Im2col(x) @ W` (a 2-D window HomConv runs)
    /// by RLWE natively (`rlwe::conv`, no patches on the wire): `x`, the
    /// window and the cost, or `None` when `v` is no such product or no
    /// HomConv layout fits. `w_bits` as for the product.
    ///
    /// A grouped convolution ([`Chooser::rlwe_grouped`]) runs as the
    /// ungrouped one by the block-diagonal kernels: the window returned is
    /// the ungrouped one.
    fn rlwe_conv_cost(&self, v: ValueId, w_bits: u32) -> Option<(ValueId, plan::Window, Cost)> {
        let (x, window) = match &self.g.value(v).op {
            Op::MatMul(cols, _) => match &self.g.value(*cols).op {
                Op::Im2col(x, window) => (*x, window.clone()),
                _ => return None,
            },
            Op::Mul(..) => {
                let gc = self.rlwe_grouped(v)?;
                (gc.x, gc.ungrouped())
            }
            _ => return None,
        };
        if !window.is_homconv() {
            return None;
        }
        let known = |v: ValueId, i: usize| match self.g.value(v).shape.0.get(i)? {
            Dim::Known(n) => Some(*n as f64),
            Dim::Symbol(_) => None,
        };
        let (c, out_h, out_w, m) = (known(x, 1)?, known(v, 1)?, known(v, 2)?, known(v, 3)?);
        let (_, _, rows, _, _) = self.rlwe_dims(v)?;
        let batch = (rows / (out_h * out_w).max(1.0)).max(1.0);
        let (kh, kw) = (window.kernel[0] as f64, window.kernel[1] as f64);
        let h = (out_h - 1.0) * window.stride[0] as f64 + kh;
        let w = (out_w - 1.0) * window.stride[1] as f64 + kw;
        let cost = self
            .costs
            .rlwe_conv(batch, [c, h, w], m, [kh, kw], w_bits)?;
        Some((x, window, cost))
    }

    /// A grouped (or depthwise) convolution's products `v = Im2col(x) * W`
    /// (`[rows.., Cout, R]`, `W` `[Cout, R]`, `R = C/groups·K`) whose only
    /// user sums the patch, which RLWE runs. A grouped convolution is
    /// `groups` ungrouped ones side by side, so it runs as products the
    /// runtime already has, priced by the same rows of the cost table, in
    /// the cheapest of three forms: one product of the ungrouped patches
    /// `[rows.., C·K]` by the block-diagonal kernels `[C·K, Cout]` (each
    /// output channel's column zero outside its group's `R` rows), or
    /// HomConv on `x` with those kernels ([`Chooser::rlwe_conv`]), where
    /// the zero blocks waste HE work in proportion to `groups`; or one
    /// product per group ([`Chooser::rlwe_by_groups`], `[rows.., R]` by
    /// `[R, m]`, the queries in one message), which wastes none but pays
    /// a fixed part and at least a ciphertext per group. At
    /// `models/mobile_dw.veil`'s depthwise shapes (16 and 32 channels,
    /// 3×3) HomConv and the block-diagonal product are cheaper for a few
    /// images, one product per group from about 10 (BENCHMARKS.md,
    /// "Grouped and depthwise convolutions by RLWE"). `Lowerer::rlwe`
    /// builds the operands by local moves. The result is the sums, so the
    /// `Sum` costs nothing (as after a convolution triple).
    pub fn rlwe_grouped(&self, v: ValueId) -> Option<GroupedConv> {
        let Op::Mul(cols, w) = &self.g.value(v).op else {
            return None;
        };
        let Op::Im2col(x, window) = &self.g.value(*cols).op else {
            return None;
        };
        let (ws, cs) = (&self.g.value(*w).shape.0, &self.g.value(*cols).shape.0);
        let known = |d: Option<&Dim>| match d {
            Some(Dim::Known(n)) => Some(*n as usize),
            _ => None,
        };
        let (cout, r) = (known(ws.first())?, known(ws.get(1))?);
        if window.groups < 2
            || ws.len() != 2
            || cs.len() < 3
            || known(cs.get(cs.len() - 2)) != Some(cout)
            || known(cs.last()) != Some(r)
            || cout % window.groups != 0
            || window.per_group * window.groups != cout
        {
            return None;
        }
        let users = self.g.users(v);
        let sum = match users[..] {
            [u] if matches!(self.g.value(u).op, Op::Sum(_)) => u,
            _ => return None,
        };
        if self.g.model.outputs().iter().any(|o| o.value == v) {
            return None;
        }
        Some(GroupedConv {
            x: *x,
            window: window.clone(),
            sum,
            groups: window.groups,
            cout,
            r,
        })
    }

    /// The products `a` of a grouped convolution whose `Sum` `v` (on
    /// shares) reads the sums RLWE computed: `how` made `a`'s shares
    /// ([`Chooser::rlwe_grouped`]). That `Sum` costs nothing.
    fn rlwe_summed(&self, v: ValueId, method: Method, how: Option<&How>) -> Option<ValueId> {
        let Op::Sum(a) = self.g.value(v).op else {
            return None;
        };
        let by_rlwe = matches!(
            how,
            Some(How::Native {
                method: Method::Rlwe,
                ..
            })
        );
        (method == Method::Shares && by_rlwe && self.rlwe_grouped(a).is_some()).then_some(a)
    }

    /// A grouped convolution ([`Chooser::rlwe_grouped`]) by one RLWE
    /// product per group instead (`groups` products `[rows, R] @ [R, m]`,
    /// `m` output channels per group, no zero blocks), their queries in
    /// one message and their responses in one: the products' compute and
    /// bytes, one round trip.
    fn rlwe_parts_cost(&self, v: ValueId, w_bits: u32) -> Option<Cost> {
        let gc = self.rlwe_grouped(v)?;
        let (_, _, rows, _, _) = self.rlwe_dims(v)?;
        let m = (gc.cout / gc.groups) as f64;
        let one = self.costs.rlwe_matmul(rows, gc.r as f64, m, w_bits)?;
        let g = gc.groups as f64;
        Some(Cost::compute(g * one.compute) + Cost::comm(g * one.bytes, one.rounds))
    }

    /// The RLWE product `v` (`batch x k` by `k x cols`, [`Chooser::rlwe_dims`])
    /// in one piece, or for a grouped convolution one product per group
    /// where that is cheaper (the zero blocks of the block-diagonal kernels
    /// cost HE work in proportion to the groups; a product per group costs
    /// a fixed part and a ciphertext at least per group): its cost, and
    /// whether it runs per group.
    fn rlwe_product_cost(
        &self,
        v: ValueId,
        (batch, k, cols): (f64, f64, f64),
        w_bits: u32,
    ) -> Option<(Cost, bool)> {
        let whole = self.costs.rlwe_matmul(batch, k, cols, w_bits);
        match (whole, self.rlwe_parts_cost(v, w_bits)) {
            (Some(w), Some(p)) if self.score(p) < self.score(w) => Some((p, true)),
            (Some(w), _) => Some((w, false)),
            (None, p) => Some((p?, true)),
        }
    }

    /// Whether the grouped convolution `v` by RLWE with operands `reprs`
    /// runs as one product per group ([`Chooser::rlwe_product_cost`]; not
    /// when HomConv runs it, [`Chooser::rlwe_conv`]).
    pub fn rlwe_by_groups(&self, v: ValueId, reprs: &[Repr]) -> bool {
        let Some((_, w, batch, k, cols)) = self.rlwe_dims(v) else {
            return false;
        };
        if self.rlwe_grouped(v).is_none() || self.rlwe_conv(v, reprs).is_some() {
            return false;
        }
        let Some(w_bits) = reprs.get(1).and_then(|r| self.rlwe_w_bits(w, *r)) else {
            return false;
        };
        self.rlwe_product_cost(v, (batch, k, cols), w_bits)
            .is_some_and(|(_, parts)| parts)
    }

    /// The shape of an RLWE product `v` as the runtime runs it: `(a, w,
    /// batch, k, cols)`, `a` the left operand, `batch` its rows, `k` the
    /// inner dimension and `cols` the result's columns; for a grouped
    /// convolution ([`Chooser::rlwe_grouped`]) those of the ungrouped
    /// patches by the block-diagonal kernels. `None` for anything else.
    fn rlwe_dims(&self, v: ValueId) -> Option<(ValueId, ValueId, f64, f64, f64)> {
        match &self.g.value(v).op {
            Op::MatMul(a, w) => {
                let k = self.g.last_dim(*a) as f64;
                let batch = (self.n(*a) / k.max(1.0)).max(1.0);
                Some((*a, *w, batch, k, (self.n(v) / batch).max(1.0)))
            }
            Op::Mul(a, w) => {
                let gc = self.rlwe_grouped(v)?;
                let batch = (self.n(v) / (gc.cout * gc.r).max(1) as f64).max(1.0);
                Some((*a, *w, batch, (gc.groups * gc.r) as f64, gc.cout as f64))
            }
            _ => None,
        }
    }

    /// A convolution's product on shares that a dealer's convolution
    /// triple computes (`plan::Correlation::Conv`: |x| + |W| opened
    /// instead of the patches): `x` and the window, or `None` without a
    /// dealer, with a public operand, for patches fewer than `x`'s
    /// entries, or for another product. With one
    /// group the product is `Im2col(x) @ W` (`W` `[C·K, O]`); with groups
    /// (depthwise included) it is `Im2col(x) * W` (`W` `[O, C/groups·K]`,
    /// each output channel's patch times its row) whose only user sums
    /// the patch: the triple yields that sum, so the products themselves
    /// never exist (the lowering hands the `Sum` the triple's result).
    pub fn conv_triple(&self, v: ValueId) -> Option<(ValueId, plan::Window)> {
        let (x, window, cols, w) = self.conv_with_a_dealer(v)?;
        if [cols, w]
            .iter()
            .any(|o| self.g.node(*o).visibility == Visibility::Public)
        {
            return None;
        }
        Some((x, window))
    }

    /// A convolution's product `v` whose input `x` is in the clear at one
    /// party and whose kernel is in the clear at the other (`reprs`
    /// `[Clear(p), Clear(q)]`, the patches `Im2col(x)` clear at `p`) that
    /// an input-holder convolution triple computes
    /// (`plan::Correlation::HolderConv`): `x` and the window. The holder
    /// of `x` sends `x − a` (|x| words, not the patches'), the other
    /// `W − b`; `None` where a convolution triple would not run
    /// ([`Chooser::conv_triple`]: no dealer, patches fewer than `x`'s
    /// entries, not a convolution) or for other operands.
    pub fn holder_conv(&self, v: ValueId, reprs: &[Repr]) -> Option<(ValueId, plan::Window)> {
        let [Repr::Clear(p), Repr::Clear(q)] = *reprs else {
            return None;
        };
        if p == q {
            return None;
        }
        let (x, window, _, _) = self.conv_with_a_dealer(v)?;
        Some((x, window))
    }

    /// The convolution `v` a triple with a dealer computes, whatever its
    /// operands' representations: `x`, the window, the patches and the
    /// kernel (see [`Chooser::conv_triple`]).
    fn conv_with_a_dealer(&self, v: ValueId) -> Option<(ValueId, plan::Window, ValueId, ValueId)> {
        if !self.dealer {
            return None;
        }
        let (cols, w, grouped) = match &self.g.value(v).op {
            Op::MatMul(cols, w) => (*cols, *w, false),
            Op::Mul(cols, w) => (*cols, *w, true),
            _ => return None,
        };
        let Op::Im2col(x, window) = &self.g.value(cols).op else {
            return None;
        };
        // Opening x instead of the patches saves only where the patches
        // are at least as many (a strided 1×1 convolution's are fewer).
        if grouped != (window.groups > 1)
            || self.n(*x) > self.n(cols)
            || self.g.value(w).shape.0.len() != 2
        {
            return None;
        }
        if grouped {
            let users = self.g.users(v);
            let summed = matches!(users[..], [u] if matches!(self.g.value(u).op, Op::Sum(_)));
            let output = self.g.model.outputs().iter().any(|o| o.value == v);
            if !summed || output {
                return None;
            }
        }
        Some((*x, window.clone(), cols, w))
    }

    /// Whether `v` is the patches `Im2col(x)` of `x` clear at `p` and
    /// every user is a convolution by kernels clear at the other party
    /// that an input-holder convolution triple computes
    /// ([`Chooser::holder_conv`]): they read `x`, so these patches are
    /// never cut.
    fn patches_only_for_holder_convs(&self, v: ValueId, p: PartyId) -> bool {
        if !matches!(self.g.value(v).op, Op::Im2col(..)) {
            return false;
        }
        let users = self.g.users(v);
        !users.is_empty()
            && users.iter().all(|u| match &self.g.value(*u).op {
                Op::MatMul(cols, w) | Op::Mul(cols, w) if *cols == v => {
                    match self.g.node(*w).visibility {
                        Visibility::Private(q) if q != p => self
                            .holder_conv(*u, &[Repr::Clear(p), Repr::Clear(q)])
                            .is_some(),
                        _ => false,
                    }
                }
                _ => false,
            })
    }

    /// Whether only convolution triples read the patches `v` (they read
    /// the input instead: the lowering never cuts these patches).
    fn patches_only_for_triples(&self, v: ValueId) -> bool {
        self.g
            .users(v)
            .iter()
            .all(|u| self.conv_triple(*u).is_some())
    }

    /// For a product by RLWE with `W` clear at a party (`reprs`), the
    /// convolution to run natively instead (its input `x` and window) when
    /// the cost model finds HomConv cheaper than the product of the patches.
    pub fn rlwe_conv(&self, v: ValueId, reprs: &[Repr]) -> Option<(ValueId, plan::Window)> {
        let ([Repr::Clear(_), Repr::Clear(_)] | [Repr::Shared, Repr::Clear(_)]) = reprs else {
            return None;
        };
        let (_, w, batch, k, cols) = self.rlwe_dims(v)?;
        let w_bits = self.rlwe_w_bits(w, reprs[1])?;
        let (product, _) = self.rlwe_product_cost(v, (batch, k, cols), w_bits)?;
        let (x, window, conv) = self.rlwe_conv_cost(v, w_bits)?;
        (self.score(conv) < self.score(product)).then_some((x, window))
    }

    /// Whether the RLWE product `v` with `W` clear at a party (`reprs`)
    /// runs prepared (`rlwe::prepared`, `CostTable::rlwe_prepared_matmul`):
    /// when its online step is cheaper than the whole product and its
    /// preprocessing and online step together cost at most twice the
    /// product. The first is the point: the preprocessing runs before the
    /// data exists, so what the data owner waits for is the online step
    /// (20-100x cheaper at the shapes). The second bounds what the
    /// split adds overall (the results' `a` halves travel whole and the
    /// client transforms them), so a product where that would dominate
    /// stays in one piece. The method's cost (`cost`) stays the product's.
    ///
    /// `W` must be the multiplying party's input (its preprocessing reads
    /// it there, before any input is bound); a convolution runs HomConv
    /// unprepared.
    ///
    /// A product that runs masked ([`Chooser::rlwe_masked`]) does not run
    /// prepared.
    pub fn rlwe_prepared(&self, v: ValueId, reprs: &[Repr]) -> bool {
        self.rlwe_prepared_costs(v, reprs).is_some()
    }

    /// The preprocessing and online costs of `v` prepared, when it runs
    /// prepared ([`Chooser::rlwe_prepared`]).
    fn rlwe_prepared_costs(&self, v: ValueId, reprs: &[Repr]) -> Option<(Cost, Cost)> {
        if self.rlwe_form == Some(RlweForm::Whole) || self.rlwe_masked(v, reprs) {
            return None;
        }
        let (batch, k, cols, w_bits) = self.rlwe_split_product(v, reprs, false)?;
        let plain = self.costs.rlwe_matmul(batch, k, cols, w_bits)?;
        let (pre, online) = self.costs.rlwe_prepared_matmul(batch, k, cols, w_bits)?;
        (self.rlwe_form == Some(RlweForm::Prepared) || self.split_pays(plain, pre, online))
            .then_some((pre, online))
    }

    /// Whether the RLWE product `v` with `W` clear at a party (`reprs`)
    /// runs masked (Delphi's linear layers, Mishra et al., USENIX Security
    /// 2020, section 4; `CostTable::rlwe_masked_matmul`): in the
    /// preprocessing the party holding `x` (or the other share of it)
    /// draws a uniform mask `r` and the two run the whole RLWE product on
    /// `r` (shares of `r @ W`); online it sends `x - r` and the holder of
    /// `W` multiplies in the clear. The same rule as
    /// [`Chooser::rlwe_prepared`] (online cheaper than the whole product,
    /// both parts at most twice it), and the same operands: `W` the
    /// multiplying party's input, no convolution. Where both forms pass,
    /// the masked one wins: its online step is one message and a local
    /// product, its preprocessing the product itself.
    /// `crate::Options::rlwe_form` forces either.
    pub fn rlwe_masked(&self, v: ValueId, reprs: &[Repr]) -> bool {
        self.rlwe_masked_costs(v, reprs).is_some()
    }

    /// The preprocessing and online costs of `v` masked, when it runs
    /// masked ([`Chooser::rlwe_masked`]).
    fn rlwe_masked_costs(&self, v: ValueId, reprs: &[Repr]) -> Option<(Cost, Cost)> {
        if matches!(self.rlwe_form, Some(RlweForm::Prepared | RlweForm::Whole)) {
            return None;
        }
        let (plain, pre, online) = match self.rlwe_masked_kernels(v, reprs) {
            // A convolution by HomConv on the mask; online its input minus
            // the mask up, the patches cut and multiplied at the server.
            Some(_) => {
                let Op::MatMul(cols, w) = &self.g.value(v).op else {
                    return None;
                };
                let (x, _, conv) = self.rlwe_conv_cost(v, self.rlwe_w_bits(*w, reprs[1])?)?;
                let k = self.g.last_dim(*cols) as f64;
                let batch = (self.n(*cols) / k.max(1.0)).max(1.0);
                let n = (self.n(v) / batch).max(1.0);
                let sent = self.n(x);
                let pre = conv + Cost::compute(sent * self.costs.ring_op);
                (conv, pre, self.costs.rlwe_masked_online(batch, k, n, sent))
            }
            None => {
                let (batch, k, cols, w_bits) = self.rlwe_split_product(v, reprs, true)?;
                let plain = self.costs.rlwe_matmul(batch, k, cols, w_bits)?;
                let (pre, online) = self.costs.rlwe_masked_matmul(batch, k, cols, w_bits)?;
                (plain, pre, online)
            }
        };
        (self.rlwe_form == Some(RlweForm::Masked) || self.split_pays(plain, pre, online))
            .then_some((pre, online))
    }

    /// For a convolution by HomConv ([`Chooser::rlwe_conv`]) with `W` clear
    /// at the multiplying party, the kernel input `K` (`[Cout, C, kh, kw]`,
    /// that party's input) when `W` is `K` reshaped to `[Cout, C kh kw]` and
    /// transposed, as `conv2d` builds it: its preprocessing reads the
    /// kernels from the input, in the order HomConv takes them. A
    /// convolution can then run masked ([`Chooser::rlwe_masked`]).
    pub fn rlwe_masked_kernels(&self, v: ValueId, reprs: &[Repr]) -> Option<ValueId> {
        let ([Repr::Clear(_), Repr::Clear(pw)] | [Repr::Shared, Repr::Clear(pw)]) = *reprs else {
            return None;
        };
        self.rlwe_conv(v, reprs)?;
        let Op::MatMul(_, w) = &self.g.value(v).op else {
            return None;
        };
        let Op::Permute(wm, perm) = &self.g.value(*w).op else {
            return None;
        };
        let Op::Reshape(k) = &self.g.value(*wm).op else {
            return None;
        };
        let kernel = self.g.value(*k);
        match kernel.op {
            Op::Input {
                owner: crate::ir::Owner::Party(owner),
                ..
            } if owner == pw && perm[..] == [1, 0] && kernel.shape.0.len() == 4 => Some(*k),
            _ => None,
        }
    }

    /// A product split between the preprocessing and the online phase
    /// pays when its online part is cheaper than the whole product and
    /// both parts together cost at most twice it.
    fn split_pays(&self, plain: Cost, pre: Cost, online: Cost) -> bool {
        self.score(online) < self.score(plain)
            && self.score(pre + online) <= 2.0 * self.score(plain)
    }

    /// `(batch, k, n, w_bits)` of an RLWE product that may be split
    /// between the preprocessing and the online phase (prepared or
    /// masked): `W` clear at the multiplying party as its input (read in
    /// the preprocessing, before any input is bound), or with `computed`
    /// any value that party computes alone from its inputs and public
    /// values ([`Chooser::computed_alone`]: the lowering moves those
    /// steps into the preprocessing), `x` clear at the other or shared,
    /// and no convolution.
    fn rlwe_split_product(
        &self,
        v: ValueId,
        reprs: &[Repr],
        computed: bool,
    ) -> Option<(f64, f64, f64, u32)> {
        let ([Repr::Clear(_), Repr::Clear(pw)] | [Repr::Shared, Repr::Clear(pw)]) = *reprs else {
            return None;
        };
        let Op::MatMul(a, w) = &self.g.value(v).op else {
            return None;
        };
        match self.g.value(*w).op {
            Op::Input {
                owner: crate::ir::Owner::Party(owner),
                ..
            } if owner == pw => {}
            _ if computed && self.computed_alone(*w, pw) => {}
            _ => return None,
        }
        if self.rlwe_conv(v, reprs).is_some() {
            return None;
        }
        let w_bits = self.rlwe_w_bits(*w, reprs[1])?;
        let k = self.g.last_dim(*a) as f64;
        let batch = (self.n(*a) / k.max(1.0)).max(1.0);
        let cols = (self.n(v) / batch).max(1.0);
        Some((batch, k, cols, w_bits))
    }

    /// Whether party `p` computes `w` alone, locally: `w` and everything
    /// it is computed from are `p`'s inputs, public values, or steps on
    /// them, which run in the clear at `p` (their only method) with no
    /// message. Im2col, whose patches may be cut as shares, does not
    /// count.
    pub fn computed_alone(&self, w: ValueId, p: PartyId) -> bool {
        let mut stack = vec![w];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(v) = stack.pop() {
            if !seen.insert(v) {
                continue;
            }
            match self.g.node(v).visibility {
                Visibility::Public => {}
                Visibility::Private(q) if q == p => {}
                _ => return false,
            }
            let value = self.g.value(v);
            if matches!(value.op, Op::Im2col(..)) {
                return false;
            }
            stack.extend(value.op.operands());
        }
        true
    }

    /// Signed bits of the plaintext operand `w` of an RLWE product, as
    /// ring elements: 64 for a share (any value), else from the range
    /// analysis: every entry encoded at the model's precision is at most
    /// `max |w| 2^f` rounded, in magnitude. `None` when that does not fit
    /// 64 bits (the compiler then runs the product another way).
    pub fn rlwe_w_bits(&self, w: ValueId, repr: Repr) -> Option<u32> {
        if repr == Repr::Shared {
            return Some(plan::params::RLWE_MAX_W_BITS);
        }
        let m = self.g.node(w).range.magnitude() * 2f64.powi(self.g.model.precision() as i32);
        if !m.is_finite() || m >= 2f64.powi(62) {
            return None;
        }
        let m = m.ceil() as u64 + 1;
        Some(65 - m.leading_zeros())
    }

    /// Degree used for a sigmoid/tanh in cost estimates.
    fn degree_hint(&self, v: ValueId) -> u32 {
        match &self.g.value(v).op {
            Op::Sigmoid(_, a) | Op::Tanh(_, a) => a.degree.unwrap_or(9),
            _ => 9,
        }
    }

    /// Shares for every operand, public operands used as they are (except by
    /// comparisons, which take every operand as shares; a public one embeds for free).
    fn shares_operands(&self, v: ValueId) -> Vec<Repr> {
        let value = self.g.value(v);
        let compares = matches!(
            value.op,
            Op::Relu(_)
                | Op::Max(..)
                | Op::Min(..)
                | Op::Clamp(..)
                | Op::MaxReduce(_)
                | Op::MinReduce(_)
                | Op::Argmax(_)
                // Joins shares: a public part is embedded as one.
                | Op::Concat(_)
        );
        value
            .op
            .operands()
            .iter()
            .map(|o| {
                if self.g.node(*o).visibility == Visibility::Public && !compares {
                    Repr::Public
                } else {
                    Repr::Shared
                }
            })
            .collect()
    }

    /// The operand representations a method can use, as alternatives.
    fn operand_options(&self, v: ValueId, method: Method) -> Vec<Vec<Repr>> {
        let value = self.g.value(v);
        let operands = value.op.operands();
        let vis = |o: &ValueId| self.g.node(*o).visibility;
        match method {
            Method::Public => vec![operands.iter().map(|_| Repr::Public).collect()],
            Method::Clear(p) => vec![operands
                .iter()
                .map(|o| {
                    if vis(o) == Visibility::Public {
                        Repr::Public
                    } else {
                        Repr::Clear(p)
                    }
                })
                .collect()],
            Method::Shares => {
                let mut options = vec![self.shares_operands(v)];
                // x @ w with x and w in the clear at different parties: an
                // input-holder triple (dealer only) avoids sharing them.
                if let (Op::MatMul(a, b), true) = (&value.op, self.dealer) {
                    if let (Visibility::Private(p), Visibility::Private(q)) = (vis(a), vis(b)) {
                        if p != q {
                            options.push(vec![Repr::Clear(p), Repr::Clear(q)]);
                        }
                    }
                }
                // A grouped convolution's products likewise, by an
                // input-holder convolution triple.
                if let Op::Mul(a, b) = &value.op {
                    if let (Visibility::Private(p), Visibility::Private(q)) = (vis(a), vis(b)) {
                        let clear = vec![Repr::Clear(p), Repr::Clear(q)];
                        if self.holder_conv(v, &clear).is_some() {
                            options.push(clear);
                        }
                    }
                }
                options
            }
            Method::Rlwe => {
                let Some((a, w, ..)) = self.rlwe_dims(v) else {
                    return vec![];
                };
                let (a, w) = (&a, &w);
                // x: its holder's clear value, or shares; W likewise.
                let side = |o: &ValueId| match vis(o) {
                    Visibility::Public => vec![],
                    Visibility::Private(p) => vec![Repr::Clear(p), Repr::Shared],
                    Visibility::Secret => vec![Repr::Shared],
                };
                let mut options = Vec::new();
                for x in side(a) {
                    for y in side(w) {
                        let ok = match (x, y) {
                            (Repr::Clear(p), Repr::Clear(q)) => p != q,
                            (Repr::Clear(_), _) => false,
                            _ => true,
                        };
                        if ok {
                            options.push(vec![x, y]);
                        }
                    }
                }
                options
            }
            Method::Paillier(k) => {
                let h = self.other(k);
                let per: Vec<Vec<Repr>> = operands
                    .iter()
                    .map(|o| match vis(o) {
                        Visibility::Public => vec![Repr::Public],
                        Visibility::Private(p) if p == h => vec![Repr::Clear(h), Repr::Cipher(k)],
                        _ => vec![Repr::Cipher(k)],
                    })
                    .collect();
                let mut combos: Vec<Vec<Repr>> = vec![vec![]];
                for options in per {
                    combos = combos
                        .into_iter()
                        .flat_map(|c| {
                            options.iter().map(move |r| {
                                let mut c = c.clone();
                                c.push(*r);
                                c
                            })
                        })
                        .collect();
                }
                combos
                    .into_iter()
                    .filter(|c| {
                        let ciphers = c.iter().filter(|r| matches!(r, Repr::Cipher(_))).count();
                        match &value.op {
                            Op::Mul(..) | Op::MatMul(..) => ciphers == 1,
                            _ => ciphers >= 1,
                        }
                    })
                    .collect()
            }
        }
    }

    /// The methods that may run `v`; with `prefer`, only the preferred
    /// family (the caller falls back to all when none of those can).
    fn methods(&self, v: ValueId, prefer: bool) -> Vec<Method> {
        let value = self.g.value(v);
        let node = self.g.node(v);
        let mut methods = match node.visibility {
            Visibility::Public => vec![Method::Public],
            Visibility::Private(p) => vec![Method::Clear(p)],
            Visibility::Secret => vec![Method::Shares],
        };
        // A convolution's patches of a party's input that only convolution
        // triples read are never cut: as shares they cost the input's
        // sharing, not the patches'. (Where the kernel is the other party's
        // clear value an input-holder convolution triple is cheaper still,
        // `Chooser::holder_conv`, and the patches stay clear.)
        if matches!(node.visibility, Visibility::Private(_))
            && matches!(&value.op, Op::Im2col(..))
            && self.patches_only_for_triples(v)
        {
            methods.push(Method::Shares);
        }
        if node.visibility == Visibility::Secret {
            for k in self.g.model.compute_parties() {
                methods.push(Method::Paillier(k));
            }
            // RLWE products compete without a dealer (with one, its
            // triples are cheaper); `--prefer rlwe` and `via rlwe` ask for
            // them anyway.
            if (matches!(value.op, Op::MatMul(..)) || self.rlwe_grouped(v).is_some())
                && (!self.dealer
                    || self.prefer == Some(Protocol::Rlwe)
                    || value.via == Some(Protocol::Rlwe))
            {
                methods.push(Method::Rlwe);
            }
        }
        match value.via {
            Some(Protocol::Shares) => methods.retain(|m| *m == Method::Shares),
            Some(Protocol::Paillier) => methods.retain(|m| matches!(m, Method::Paillier(_))),
            Some(Protocol::Rlwe) => methods.retain(|m| *m == Method::Rlwe),
            None if prefer => match self.prefer {
                Some(Protocol::Shares) => {
                    methods.retain(|m| *m == Method::Shares || !secret_method(*m))
                }
                Some(Protocol::Paillier) => methods.retain(|m| matches!(m, Method::Paillier(_))),
                Some(Protocol::Rlwe) => methods.retain(|m| *m == Method::Rlwe),
                None => {}
            },
            None => {}
        }
        methods
    }

    /// `Err`: an operation no protocol can run as its `via` asks (E0303),
    /// or an internal error.
    pub fn run(&self) -> Result<Selection, CompileError> {
        let mut best: BTreeMap<ValueId, BTreeMap<Repr, Entry>> = BTreeMap::new();
        let mut per_method: BTreeMap<ValueId, BTreeMap<Method, Cost>> = BTreeMap::new();
        let mut errors = Vec::new();
        // Operations already reported, and those that depend on them: an
        // operation whose operand has no method is a cascade, not an error.
        let mut failed: BTreeSet<ValueId> = BTreeSet::new();
        for v in self.g.order() {
            let value = self.g.value(v);
            let mut entries: BTreeMap<Repr, Entry> = BTreeMap::new();
            let offer = |entries: &mut BTreeMap<Repr, Entry>,
                         repr: Repr,
                         cost: Cost,
                         how: How,
                         score: f64| {
                if entries.get(&repr).is_none_or(|e| score < e.score) {
                    entries.insert(repr, Entry { cost, score, how });
                }
            };
            match &value.op {
                Op::Input {
                    owner: Owner::Party(p),
                    ..
                } => offer(
                    &mut entries,
                    Repr::Clear(*p),
                    Cost::ZERO,
                    How::Native {
                        method: Method::Clear(*p),
                        operands: vec![],
                    },
                    0.0,
                ),
                Op::Input { .. } | Op::Const { .. } => offer(
                    &mut entries,
                    Repr::Public,
                    Cost::ZERO,
                    How::Native {
                        method: Method::Public,
                        operands: vec![],
                    },
                    0.0,
                ),
                _ => {
                    let operands = value.op.operands();
                    // A preference applies where it can run; elsewhere every method competes.
                    let preferred = self.methods(v, true);
                    let feasible = |m: &Method| {
                        self.operand_options(v, *m).iter().any(|reprs| {
                            self.op_cost(v, *m, reprs).is_some()
                                && operands
                                    .iter()
                                    .zip(reprs)
                                    .all(|(o, r)| best[o].contains_key(r))
                        })
                    };
                    let methods = if preferred.iter().any(feasible) {
                        preferred
                    } else {
                        self.methods(v, false)
                    };
                    for method in methods {
                        for reprs in self.operand_options(v, method) {
                            let Some(op_cost) = self.op_cost(v, method, &reprs) else {
                                continue;
                            };
                            // The sums RLWE computed with a grouped
                            // convolution's products are this `Sum`.
                            let op_cost = match operands.first() {
                                Some(a)
                                    if self
                                        .rlwe_summed(
                                            v,
                                            method,
                                            best[a].get(&Repr::Shared).map(|e| &e.how),
                                        )
                                        .is_some() =>
                                {
                                    Cost::ZERO
                                }
                                _ => op_cost,
                            };
                            let mut total = op_cost;
                            let mut ok = true;
                            for (o, r) in operands.iter().zip(&reprs) {
                                match best[o].get(r) {
                                    Some(e) => total += e.cost,
                                    None => ok = false,
                                }
                            }
                            if !ok {
                                continue;
                            }
                            let score = self.score(total);
                            let m = per_method.entry(v).or_default();
                            if m.get(&method).is_none_or(|c| score < self.score(*c)) {
                                m.insert(method, total);
                            }
                            offer(
                                &mut entries,
                                method.result(),
                                total,
                                How::Native {
                                    method,
                                    operands: reprs.clone(),
                                },
                                score,
                            );
                        }
                    }
                }
            }
            if entries.is_empty() {
                if !value.op.operands().iter().any(|o| failed.contains(o)) {
                    errors.push(self.no_method(v)?);
                }
                failed.insert(v);
                // Keep going to report other operations; pretend it is shared.
                entries.insert(
                    Repr::Shared,
                    Entry {
                        cost: Cost::ZERO,
                        score: 0.0,
                        how: How::Native {
                            method: Method::Shares,
                            operands: vec![],
                        },
                    },
                );
            }
            // Conversions (Clear → Cipher first, so Clear → Cipher → Shared is considered too).
            let n = self.n(v);
            for target_shared in [false, true] {
                let snapshot: Vec<(Repr, Entry)> =
                    entries.iter().map(|(r, e)| (*r, e.clone())).collect();
                for (from, e) in snapshot {
                    // A grouped convolution's products by RLWE are its
                    // sums: only their `Sum` reads them.
                    if matches!(
                        e.how,
                        How::Native {
                            method: Method::Rlwe,
                            ..
                        }
                    ) && self.rlwe_grouped(v).is_some()
                    {
                        continue;
                    }
                    let targets: Vec<Repr> = if target_shared {
                        vec![Repr::Shared]
                    } else {
                        self.g
                            .model
                            .compute_parties()
                            .into_iter()
                            .map(Repr::Cipher)
                            .collect()
                    };
                    for to in targets {
                        if to == from {
                            continue;
                        }
                        if let Some(c) = self.convert(from, to, n) {
                            let total = e.cost + c;
                            let score = self.score(total);
                            offer(&mut entries, to, total, How::Convert { from }, score);
                        }
                    }
                }
            }
            best.insert(v, entries);
        }
        if !errors.is_empty() {
            return Err(CompileError::Model(errors));
        }

        // Outputs: choose the representation to reveal from.
        let mut output_from = Vec::new();
        for o in self.g.model.outputs() {
            let n = self.n(o.value);
            let (repr, _) = best[&o.value]
                .iter()
                .filter_map(|(r, e)| {
                    self.reveal_cost(*r, &o.to, n)
                        .map(|c| (*r, self.score(e.cost + c)))
                })
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .ok_or_else(|| {
                    InternalError::new(format!(
                        "no representation of output `{}` can be revealed to its parties",
                        o.name
                    ))
                })?;
            output_from.push(repr);
        }

        // Back-track from the outputs.
        let mut materialize: BTreeMap<ValueId, BTreeMap<Repr, How>> = BTreeMap::new();
        let mut stack: Vec<(ValueId, Repr)> = self
            .g
            .model
            .outputs()
            .iter()
            .zip(&output_from)
            .map(|(o, r)| (o.value, *r))
            .collect();
        while let Some((v, r)) = stack.pop() {
            if materialize.get(&v).is_some_and(|m| m.contains_key(&r)) {
                continue;
            }
            let how = best[&v][&r].how.clone();
            match &how {
                How::Convert { from } => stack.push((v, *from)),
                How::Native { operands, .. } => {
                    for (o, or) in self.g.value(v).op.operands().iter().zip(operands) {
                        stack.push((*o, *or));
                    }
                }
            }
            materialize.entry(v).or_default().insert(r, how);
        }

        let mut decisions = Vec::new();
        for (v, reprs) in &materialize {
            let value = self.g.value(*v);
            if matches!(value.op, Op::Input { .. } | Op::Const { .. }) {
                continue;
            }
            for (native, how) in reprs {
                let How::Native { method, operands } = how else {
                    continue;
                };
                let summed = value.op.operands().first().and_then(|a| {
                    let how = materialize.get(a).and_then(|m| m.get(&Repr::Shared));
                    self.rlwe_summed(*v, *method, how)
                });
                let cost = match summed {
                    Some(_) => Cost::ZERO,
                    None => self.op_cost(*v, *method, operands).unwrap_or_default(),
                };
                // Like with like: every method's total includes the
                // conversions that deliver the value in the representations
                // the plan builds from this result (a Paillier result still
                // has to become shares). Representations the plan computes
                // natively another way are not this method's to deliver: a
                // value may be both computed under a party's key and as
                // shares, and shares never convert back into that key.
                let uses: Vec<Repr> = reprs
                    .keys()
                    .copied()
                    .filter(|r| {
                        let mut at = *r;
                        while let Some(How::Convert { from }) = reprs.get(&at) {
                            at = *from;
                        }
                        at == *native
                    })
                    .collect();
                let delivered = |m: Method, total: Cost| {
                    uses.iter().try_fold(total, |acc, to| {
                        Some(acc + self.convert_any(m.result(), *to, self.n(*v))?)
                    })
                };
                let runner_up = per_method
                    .get(v)
                    .into_iter()
                    .flatten()
                    .filter(|(m, _)| *m != method)
                    .filter_map(|(m, c)| Some((*m, delivered(*m, *c)?)))
                    .min_by(|a, b| self.score(a.1).total_cmp(&self.score(b.1)));
                let chosen_total = per_method
                    .get(v)
                    .and_then(|m| m.get(method))
                    .and_then(|c| delivered(*method, *c))
                    .ok_or_else(|| {
                        InternalError::new(format!(
                            "the method chosen for `{}` does not deliver it where the plan uses it",
                            self.g.label(*v)
                        ))
                    })?;
                let reason = match summed {
                    Some(a) => format!(
                        "the RLWE product of {} computed it (each output channel's sum over its patch)",
                        self.g.label(a)
                    ),
                    None => self.reason(*v, *method, operands, chosen_total, runner_up),
                };
                decisions.push(Decision {
                    value: *v,
                    method: *method,
                    cost,
                    runner_up,
                    reason,
                });
            }
        }
        Ok(Selection {
            materialize,
            output_from,
            decisions,
        })
    }

    /// Cost of revealing a value held in `repr` to the parties `to`.
    pub fn reveal_cost(&self, repr: Repr, to: &[PartyId], n: f64) -> Option<Cost> {
        let c = self.costs;
        match repr {
            Repr::Public => Some(Cost::ZERO),
            Repr::Clear(p) => {
                let others = to.iter().filter(|q| **q != p).count() as f64;
                Some(Cost::comm(others * n * RING_BYTES, u32::from(others > 0.0)))
            }
            Repr::Shared => Some(Cost::comm(to.len() as f64 * n * RING_BYTES, 1)),
            Repr::Cipher(k) if to == [k] => Some(
                Cost::compute(n * (c.paillier_encrypt + c.paillier_decrypt))
                    + Cost::comm(n * c.ciphertext_bytes(), 1),
            ),
            Repr::Cipher(_) => None,
        }
    }

    /// The E0303 for an operation whose `via` cannot run. Without a `via`
    /// every operation has a method (shares run anything, and every
    /// representation converts to shares), so none is an internal error.
    fn no_method(&self, v: ValueId) -> Result<Diagnostic, InternalError> {
        let value = self.g.value(v);
        let label = self.g.label(v);
        match value.via {
            Some(p) => Ok(Diagnostic::error(Code::NoProtocol, format!("`{label}` cannot run via {}", p.name()))
                .primary(value.span, format!("{} is not available for this operation", p.name()))
                .note(match p {
                    Protocol::Paillier => "Paillier runs linear operations (+, -, *, @, sum, mean) where one operand is encrypted under one party's key and the other is in the clear at the other party",
                    Protocol::Shares => "additive sharing runs operations on values no single party knows; this one can run in the clear",
                    Protocol::Rlwe => "RLWE runs matrix products `x @ W` and convolutions (grouped ones too) whose operands are secret",
                })
                .help("remove the `via`, and the compiler chooses")),
            None => Err(InternalError::new(format!(
                "no method can compute `{label}` = {}, though shares compute every operation",
                self.g.describe(v)
            ))),
        }
    }

    fn reason(
        &self,
        v: ValueId,
        method: Method,
        operands: &[Repr],
        chosen: Cost,
        runner_up: Option<(Method, Cost)>,
    ) -> String {
        let value = self.g.value(v);
        let name = |p: PartyId| self.g.model.party(p).name.clone();
        let base = match method {
            Method::Public => "every operand is public".to_string(),
            Method::Clear(p) if self.patches_only_for_holder_convs(v, p) => format!(
                "every operand is known to {}; never cut: the input-holder convolution triple reads the input",
                name(p)
            ),
            Method::Clear(p) => format!("every operand is known to {}", name(p)),
            Method::Shares if value.via == Some(Protocol::Shares) => "`via shares`".to_string(),
            Method::Paillier(_) if value.via == Some(Protocol::Paillier) => {
                "`via paillier`".to_string()
            }
            Method::Rlwe if self.rlwe_by_groups(v, operands) => format!(
                "grouped convolution on secret values: RLWE, one product per group ({} products of its patches by its kernels, the queries in one message), cheaper than one product by the block-diagonal kernels, its result each output channel's sum over its patch{}",
                self.rlwe_grouped(v).map_or(0, |gc| gc.groups),
                if value.via == Some(Protocol::Rlwe) { ", `via rlwe`" } else { "" }
            ),
            Method::Rlwe if self.rlwe_grouped(v).is_some() => format!(
                "grouped convolution on secret values: RLWE {}, one product for all {} groups (each output channel's kernel zero off its group), its result each output channel's sum over its patch{}",
                if self.rlwe_conv(v, operands).is_some() {
                    "HomConv on the input by the block-diagonal kernels (the holder of x encrypts it, the holder of the kernels multiplies), cheaper than the patches' product"
                } else {
                    "product of the ungrouped patches by the block-diagonal kernels (the holder of x encrypts, the holder of W multiplies)"
                },
                self.rlwe_grouped(v).map_or(0, |gc| gc.groups),
                if value.via == Some(Protocol::Rlwe) { ", `via rlwe`" } else { "" }
            ),
            Method::Rlwe if self.rlwe_conv(v, operands).is_some() => format!(
                "convolution on secret values: RLWE HomConv on the input (the holder of x encrypts it, the holder of the kernels multiplies), cheaper than its patches' product{}",
                if value.via == Some(Protocol::Rlwe) { ", `via rlwe`" } else { "" }
            ),
            Method::Rlwe if value.via == Some(Protocol::Rlwe) => "`via rlwe`".to_string(),
            Method::Shares if self.holder_conv(v, operands).is_some() => {
                let [Repr::Clear(p), Repr::Clear(q)] = operands else {
                    unreachable!("holder_conv takes two clear operands")
                };
                let (x, _) = self.holder_conv(v, operands).expect("matched above");
                format!(
                    "convolution of {}'s clear input by {}'s kernels: an input-holder convolution triple ({} sends its input masked, {} words, not its {} patches; {} its kernels masked){}",
                    name(*p),
                    name(*q),
                    name(*p),
                    self.n(x),
                    self.n(value.op.operands()[0]),
                    name(*q),
                    if matches!(value.op, Op::Mul(..)) {
                        ", each output channel's sum over its patch"
                    } else {
                        ""
                    }
                )
            }
            // A convolution whose patches are fewer than its input's
            // entries (a strided 1×1 one): no convolution triple.
            Method::Shares
                if matches!(operands, [Repr::Clear(_), Repr::Clear(_)])
                    && matches!(value.op, Op::MatMul(cols, _) if matches!(
                        self.g.value(cols).op,
                        Op::Im2col(x, _) if self.n(x) > self.n(cols)
                    )) =>
            {
                let cols = value.op.operands()[0];
                format!(
                    "convolution of a party's clear input by the other's kernels: an input-holder product of its patches, fewer ({}) than the input's entries ({}), so cheaper to send than the input",
                    self.n(cols),
                    self.n(self.g.value(cols).op.operands()[0])
                )
            }
            Method::Shares => match &value.op {
                Op::Mul(..) if self.conv_triple(v).is_some() => "grouped convolution on secret values: one convolution triple (the masked input and kernels opened, not the patches) gives each output channel's sum over its patch".into(),
                Op::Sum(a) if self.conv_triple(*a).is_some() => format!(
                    "the convolution triple of {} computed it",
                    self.g.label(*a)
                ),
                Op::Sigmoid(..) | Op::Tanh(..) | Op::Poly(..) | Op::Square(_) => {
                    "nonlinear on secret values: polynomial on shares".into()
                }
                Op::Exp(_) => "nonlinear on secret values: (1 + t + t²/2)^128, t = x/128, by a product and 7 squarings on shares".into(),
                Op::Reciprocal(_) => "nonlinear on secret values: Newton's iteration on shares".into(),
                Op::Log(_) => "nonlinear on secret values: Newton's iteration on exp, on shares".into(),
                Op::Rsqrt(_) => "nonlinear on secret values: Newton's iteration for 1/√x on shares".into(),
                Op::MaxReduce(a) if self.has_argmax(*a) => format!(
                    "comparison on secret values: taken from the tournament of argmax({}), which finds the maximum too",
                    self.g.label(*a)
                ),
                Op::Relu(_)
                | Op::Max(..)
                | Op::Min(..)
                | Op::MaxReduce(_)
                | Op::MinReduce(_)
                | Op::Argmax(_)
                | Op::Clamp(..) => match self.source {
                    crate::cost::Source::Dealer => {
                        "comparison on secret values: secure comparison with the dealer's correlations".into()
                    }
                    crate::cost::Source::DealerDcf => {
                        "comparison on secret values: secure comparison with the dealer's DCF keys (one round for the sign)".into()
                    }
                    crate::cost::Source::Paillier => {
                        "comparison on secret values: secure comparison, correlations generated with Paillier".into()
                    }
                    crate::cost::Source::Ot => {
                        let bits = self.g.compare_bits(v);
                        let leaves = plan::params::mill_leaves(bits);
                        let ot = "comparison on secret values: secure comparison, correlations generated by oblivious transfer";
                        if bits < COMPARE_FULL_BITS {
                            format!(
                                "{ot}; the range analysis bounds the compared values by 2^{bits} at the plan's scale, so it reads {} bits in {leaves} chunks, not 63 in 16",
                                4 * leaves - 1
                            )
                        } else {
                            ot.into()
                        }
                    }
                },
                Op::Permute(..)
                | Op::Reshape(_)
                | Op::Im2col(..)
                | Op::Concat(_)
                | Op::Narrow(..) => {
                    "moves values: local on shares, no communication".into()
                }
                _ => "cheapest by the cost model".into(),
            },
            Method::Paillier(k) => format!(
                "linear with one side in the clear: {}'s key, cheapest by the cost model",
                name(k)
            ),
            Method::Rlwe => "matrix product on secret values: RLWE (the holder of x encrypts, the holder of W multiplies), cheapest by the cost model".into(),
        };
        let base = match (
            self.rlwe_masked_costs(v, operands),
            self.rlwe_prepared_costs(v, operands),
        ) {
            (Some((pre, online)), _) if method == Method::Rlwe => format!(
                "{base}; masked (Delphi): the product on a random mask in the preprocessing ({:.3e} s), x minus the mask sent and multiplied in the clear online ({:.3e} s, no HE)",
                self.score(pre),
                self.score(online)
            ),
            (_, Some((pre, online))) if method == Method::Rlwe => format!(
                "{base}; prepared: W's part in the preprocessing ({:.3e} s), {:.3e} s online",
                self.score(pre),
                self.score(online)
            ),
            _ => base,
        };
        match runner_up {
            Some((m, c)) => format!(
                "{base}; runner-up {} at {:.3e} s vs {:.3e} s",
                method_name(self.g.model.parties(), m),
                self.score(c),
                self.score(chosen)
            ),
            None => base,
        }
    }
}

/// Methods that compute on secret values by a protocol of their own (not
/// plain shares).
fn secret_method(m: Method) -> bool {
    matches!(m, Method::Paillier(_) | Method::Rlwe)
}

pub fn method_name(parties: &[Party], m: Method) -> String {
    match m {
        Method::Public => "public".into(),
        Method::Clear(p) => format!("clear@{}", parties[p.index()].name),
        Method::Shares => "shares".into(),
        Method::Paillier(k) => format!("paillier[{}]", parties[k.index()].name),
        Method::Rlwe => "rlwe".into(),
    }
}
