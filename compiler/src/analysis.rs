//! Checks on the dataflow graph before protocols are chosen: polynomial
//! fits for sigmoid and tanh, overflow by range analysis, outputs that would
//! give away another party's input, and each output's error bound.

use crate::approx::{self, Fit, Func};
use crate::graph::{fmt_num, Graph, Interval, Visibility};
use crate::ir::*;
use grammar::{Code, Diagnostic};
use plan::params::TRUNC_OFFSET_BITS;
use std::collections::{BTreeMap, BTreeSet};

pub struct Analysis {
    pub fits: BTreeMap<ValueId, Fit>,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    /// Estimated absolute error of each output against exact arithmetic.
    pub error_bounds: Vec<f64>,
    /// For each output that is an `argmax`: twice the error bound of its
    /// input. Entries that close to the row's maximum may compare either
    /// way, so the index of any of them is correct (`plan::OutputSpec::near_tie`).
    pub near_ties: Vec<Option<f64>>,
    /// Sigmoid/tanh whose input is clamped into the fitted domain first
    /// (with secure comparison), so the error bound holds on the whole line.
    pub clamped: BTreeSet<ValueId>,
}

/// Secure comparison is always available (a dealer's correlations, or the
/// two parties generate them with Paillier), so a secret sigmoid/tanh input
/// that can leave the fitted domain is clamped into it. `cheap_compare`
/// (a dealer): clamp whenever the input can leave the domain. Without a
/// dealer a comparison costs ~190 Paillier encryptions per element, so the
/// input is clamped only where the unclamped polynomial would overflow;
/// elsewhere the W0101 warning stands (error unbounded outside the domain).
pub fn analyse(g: &Graph, cheap_compare: bool) -> Analysis {
    let mut a = Analysis {
        fits: BTreeMap::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        error_bounds: Vec::new(),
        near_ties: Vec::new(),
        clamped: BTreeSet::new(),
    };
    let f = g.model.precision();
    // Products are computed at scale 2f before truncation; keep one bit spare.
    let product_limit = 2f64.powi(TRUNC_OFFSET_BITS as i32 - 2 * f as i32);
    let value_limit = 2f64.powi(TRUNC_OFFSET_BITS as i32 - f as i32);
    for v in g.order() {
        let value = g.value(v);
        let node = g.node(v);
        let range = node.range;
        let label = g.label(v);
        let is_product = matches!(
            value.op,
            Op::Mul(..) | Op::MatMul(..) | Op::Square(_) | Op::Mean(_)
        );
        // Products on shares or ciphertexts are held at scale 2f before
        // truncation; values computed in the clear are only encoded at scale f.
        let limit = if is_product && node.visibility == Visibility::Secret {
            product_limit
        } else {
            value_limit
        };
        // (`log` of a range reaching 0 is unbounded below: E0304 says why.)
        let log_outside = matches!(value.op, Op::Log(x) if g.node(x).range.lo <= 0.0);
        if node.visibility != Visibility::Public
            && !matches!(value.op, Op::Input { .. } | Op::Const { .. })
            && !log_outside
            && range.magnitude() >= limit
        {
            a.errors.push(
                Diagnostic::error(
                    Code::Overflow,
                    format!("`{label}` can overflow the fixed-point encoding"),
                )
                .primary(value.span, format!("range analysis bounds it by {range}"))
                .note(format!(
                    "at precision {f}, {} must stay below 2^{} = {}",
                    if limit == product_limit {
                        "products"
                    } else {
                        "values"
                    },
                    if limit == product_limit {
                        TRUNC_OFFSET_BITS - 2 * f
                    } else {
                        TRUNC_OFFSET_BITS - f
                    },
                    fmt_num(limit)
                ))
                .help("declare tighter `in [lo, hi]` ranges on the inputs, or lower `precision`"),
            );
        }
        if let Op::Sigmoid(x, approx) | Op::Tanh(x, approx) = &value.op {
            let func = if matches!(value.op, Op::Sigmoid(..)) {
                Func::Sigmoid
            } else {
                Func::Tanh
            };
            fit_for(&mut a, g, v, *x, func, approx, cheap_compare);
        }
        // exp is (1 + t + t²/2)^(2^n) with t = x/2^n: wrong below x = -2^n
        // (the base grows again there), and its last square must fit like a
        // product.
        if let (Op::Exp(x), Visibility::Secret) = (&value.op, node.visibility) {
            let r = g.node(*x).range;
            let m = 2f64.powi(EXP_SQUARINGS as i32);
            let top = exp_limit(r.hi.max(0.0));
            if r.lo < -m && top < product_limit && cheap_compare {
                // Clamp the input at -m first (one comparison per element):
                // e^x < e^-m there, which the clamped formula gives as 0.
                a.clamped.insert(v);
            } else if r.lo < -m || top >= product_limit {
                a.errors.push(
                    Diagnostic::error(
                        Code::PolyOverflow,
                        format!("`exp` cannot be computed on the range of `{}`", g.label(*x)),
                    )
                    .primary(value.span, format!("its input lies in {r}"))
                    .note(format!(
                        "`exp` is (1 + t + t²/2)^{m} with t = x/{m} on shares: exact only for x ≥ -{m}, and its powers must stay below {} at precision {f}",
                        fmt_num(product_limit)
                    ))
                    .help("subtract the maximum first (`exp(s - max(s))` lies in (0, 1]), or declare tighter input ranges"),
                );
            }
        }
        if let Op::Reciprocal(x) = &value.op {
            let r = g.node(*x).range;
            let plan = reciprocal_plan(g, *x);
            let fits = plan.is_some_and(|p| {
                let y = 2.0 / p.a;
                y < value_limit && y * p.b.max(2.0) < product_limit
            });
            if !fits {
                a.errors.push(
                    Diagnostic::error(
                        Code::PolyOverflow,
                        format!("`reciprocal` cannot be computed on the range of `{}`", g.label(*x)),
                    )
                    .primary(value.span, format!("its input lies in {r}"))
                    .note(format!(
                        "`reciprocal` runs Newton's iteration on a range that excludes 0, at most {MAX_RECIPROCAL_ITERATIONS} steps (a ratio of largest to smallest magnitude up to about 10^4), with 1/x below {}",
                        fmt_num(value_limit.min(product_limit))
                    ))
                    .help("keep the divisor away from 0: declare tighter input ranges, or `clamp(x, lo, hi)` with 0 < lo first"),
                );
            }
        }
        // ln x: of a positive range; on shares, within `log_plan`'s limits
        // (its exp needs no clamp and fits).
        if let Op::Log(x) = &value.op {
            let r = g.node(*x).range;
            let m = 2f64.powi(EXP_SQUARINGS as i32);
            let planned = log_plan(g, *x).is_some_and(|lp| {
                lp.exp_range.lo >= -m && exp_limit(lp.exp_range.hi) < product_limit
            });
            if r.lo <= 0.0 {
                a.errors.push(
                    Diagnostic::error(
                        Code::PolyOverflow,
                        format!("`log` needs a positive input, `{}` lies in {r}", g.label(*x)),
                    )
                    .primary(value.span, "its input can be 0 or negative")
                    .help("declare the input's range above 0, or `clamp(x, lo, hi)` with 0 < lo first"),
                );
            } else if node.visibility == Visibility::Secret && !planned {
                a.errors.push(
                    Diagnostic::error(
                        Code::PolyOverflow,
                        format!("`log` cannot be computed on the range of `{}`", g.label(*x)),
                    )
                    .primary(value.span, format!("its input lies in {r}"))
                    .note(format!(
                        "`log` on shares runs Newton's iteration y ← y − 1 + x·e^(−y), at most {MAX_LOG_ITERATIONS} steps (a ratio of largest to smallest input up to about 10^9), with 1/x below {} and rounding under {LOG_MARGIN} at precision {f}",
                        fmt_num(product_limit)
                    ))
                    .help("declare a tighter input range, or `clamp(x, lo, hi)` first"),
                );
            }
        }
        // 1/√x: of a positive range; on shares, by Newton's iteration
        // within `rsqrt_plan`'s limits.
        if let Op::Rsqrt(x) = &value.op {
            let r = g.node(*x).range;
            let fits = rsqrt_plan(g, *x).is_some_and(|p| {
                let y = 1.5 / p.a.sqrt();
                y < value_limit && y * y * p.b.max(1.0) < product_limit
            });
            if r.lo > 0.0 && node.visibility == Visibility::Secret && !fits {
                a.errors.push(
                    Diagnostic::error(
                        Code::PolyOverflow,
                        format!("`{label}` (1/√x) cannot be computed on the range of `{}`", g.label(*x)),
                    )
                    .primary(value.span, format!("its input lies in {r}"))
                    .note(format!(
                        "1/√x on shares runs Newton's iteration y ← y·(3 − x·y²)/2 from a constant guess, at most {MAX_RSQRT_ITERATIONS} steps (a ratio of largest to smallest input up to about 10^7)"
                    ))
                    .help("declare a tighter input range, or `clamp(x, lo, hi)` with 0 < lo first"),
                );
            }
            if r.lo <= 0.0 {
                a.errors.push(
                    Diagnostic::error(
                        Code::PolyOverflow,
                        format!(
                            "`{label}` (1/√x) needs a positive input, `{}` lies in {r}",
                            g.label(*x)
                        ),
                    )
                    .primary(value.span, "its input can be 0 or negative")
                    .help("declare the variance's range above 0, or give `eps:` a positive value"),
                );
            }
        }
        if let Op::Poly(x, coeffs) = &value.op {
            let r = g.node(*x).range.magnitude();
            let worst = coeffs
                .iter()
                .enumerate()
                .map(|(k, c)| r.powi(k as i32) * c.abs().max(1.0))
                .fold(0.0, f64::max);
            if node.visibility == Visibility::Secret && worst >= product_limit {
                a.errors.push(
                    Diagnostic::error(
                        Code::PolyOverflow,
                        format!("the polynomial `{label}` can overflow on its input's range"),
                    )
                    .primary(
                        value.span,
                        format!(
                            "its input lies in {}, where its terms reach {}",
                            g.node(*x).range,
                            fmt_num(worst)
                        ),
                    )
                    .help("declare tighter input ranges, or rescale the polynomial's variable"),
                );
            }
        }
    }
    for o in g.model.outputs() {
        for &p in &o.to {
            if let Some(input) = reveals_input(g, o.value, p) {
                let iv = g.value(input);
                let owner = match &iv.op {
                    Op::Input {
                        owner: Owner::Party(q),
                        ..
                    } => g.model.party(*q).name.clone(),
                    _ => "another party".into(),
                };
                a.errors.push(
                    Diagnostic::error(
                        Code::Leak,
                        format!("output `{}` would reveal {owner}'s private input `{}` to `{}`", o.name, g.label(input), g.model.party(p).name),
                    )
                    .primary(o.span, format!("`{}` learns `{}`, and can solve for `{}`", g.model.party(p).name, o.name, g.label(input)))
                    .secondary(iv.span, format!("private to {owner}"))
                    .note("every other operand of this output is known to its recipient, so the output determines the input exactly")
                    .help(format!("address `{}` to {owner} only, or output a function that does not determine the input", o.name)),
                );
            }
        }
    }
    let (bounds, sources, near_ties) = error_bounds(g, &a.fits, &a.clamped);
    a.near_ties = near_ties;
    for ((o, &bound), source) in g.model.outputs().iter().zip(&bounds).zip(sources) {
        let range = g.node(o.value).range;
        // An infinite bound comes from a missing fit, already an error (E0305).
        if bound.is_finite() && exceeds_range(bound, range) {
            a.warnings
                .push(bound_warning(g, &a.fits, o, bound, range, source));
        }
    }
    // The recipient clamps a revealed output to its range (lower.rs), so
    // its error never exceeds the range's width.
    a.error_bounds = g
        .model
        .outputs()
        .iter()
        .zip(bounds)
        .map(|(o, bound)| {
            let range = g.node(o.value).range;
            bound.min(range.hi - range.lo)
        })
        .collect();
    a
}

/// How `reciprocal` computes 1/x for an input in `[lo, hi]` (not holding
/// 0): on z = x (or -x when the range is negative, `negate`) in `[a, b]`,
/// Newton's iteration y ← y·(2 − z·y) from the constant `guess` 2/(a + b),
/// whose relative error 1 − z·y is at most (b − a)/(a + b) and squares at
/// each step; `iterations` steps bring it below 2^-(f+2)/a. The first
/// step, 2c − c²·z, is a public product.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReciprocalPlan {
    pub negate: bool,
    pub a: f64,
    pub b: f64,
    pub guess: f64,
    pub iterations: u32,
}

/// At most this many Newton steps (a range up to about 10^4 wide in ratio).
pub const MAX_RECIPROCAL_ITERATIONS: u32 = 16;

/// The plan for `reciprocal` of `x`, from its range; `None` when the range
/// holds 0 or is too wide a ratio for [`MAX_RECIPROCAL_ITERATIONS`].
pub fn reciprocal_plan(g: &Graph, x: ValueId) -> Option<ReciprocalPlan> {
    let r = g.node(x).range;
    if !(r.lo > 0.0 || r.hi < 0.0) || !r.lo.is_finite() || !r.hi.is_finite() {
        return None;
    }
    let negate = r.hi < 0.0;
    let (a, b) = if negate { (-r.hi, -r.lo) } else { (r.lo, r.hi) };
    let guess = 2.0 / (a + b);
    let eps0 = (b - a) / (a + b);
    let target = 2f64.powi(-(g.model.precision() as i32) - 2) * a;
    let iterations = (1..=MAX_RECIPROCAL_ITERATIONS).find(|&k| eps0.powi(1 << k) <= target)?;
    Some(ReciprocalPlan {
        negate,
        a,
        b,
        guess,
        iterations,
    })
}

/// How 1/√x is computed on shares for an input in `[a, b]`, a > 0:
/// Newton's iteration y ← y·(3 − x·y²)/2 from the constant `guess` c.
/// With the relative error e = 1 − x·y², a step maps e to (3e² + e³)/4
/// (so e ≥ 0 after the first, then falls quadratically); c is chosen by
/// bisection so the first step leaves the same e at both ends of the range,
/// and `iterations` steps bring e/√a below 2^-(f+2). The first step,
/// 1.5c − (c³/2)·x, is a public product.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RsqrtPlan {
    pub a: f64,
    pub b: f64,
    pub guess: f64,
    pub iterations: u32,
}

/// The extra fractional bits of the first step's constant c³/2 (small for a
/// wide range, so its relative error at f bits would be large).
pub const RSQRT_GUESS_BITS: u32 = 8;

/// At most this many Newton steps for 1/√x.
pub const MAX_RSQRT_ITERATIONS: u32 = 24;

/// The relative error e = 1 − x·y² after `steps` Newton steps from `c`,
/// the worst over x in `[a, b]` (the map is monotone in |e| on each side
/// of 0, so the ends bound it).
fn rsqrt_error(c: f64, a: f64, b: f64, steps: u32) -> f64 {
    let step = |e: f64| (3.0 * e * e + e * e * e) / 4.0;
    let mut worst: f64 = 0.0;
    for x in [a, b] {
        let mut e = 1.0 - x * c * c;
        for _ in 0..steps {
            e = step(e);
        }
        worst = worst.max(e.abs());
    }
    worst
}

/// The plan for 1/√x of `x` on shares, from its range; `None` when the
/// range reaches 0, is unbounded, or needs more than
/// [`MAX_RSQRT_ITERATIONS`] steps.
pub fn rsqrt_plan(g: &Graph, x: ValueId) -> Option<RsqrtPlan> {
    let r = g.node(x).range;
    if r.lo.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || !r.hi.is_finite() {
        return None;
    }
    let (a, b) = (r.lo, r.hi);
    // c² in (0, 3/b): balance the first step's error at x = a and x = b.
    let (mut lo, mut hi) = (1.0 / b, 1.0 / b);
    if b > a {
        let (mut l, mut h) = (0.0, 3.0 / b);
        for _ in 0..200 {
            let m = (l + h) / 2.0;
            let ea = rsqrt_error(m.sqrt(), a, a, 1);
            let eb = rsqrt_error(m.sqrt(), b, b, 1);
            if ea > eb {
                l = m;
            } else {
                h = m;
            }
        }
        (lo, hi) = (l, h);
    }
    let guess = ((lo + hi) / 2.0).sqrt();
    let target = 2f64.powi(-(g.model.precision() as i32) - 2) * a.sqrt();
    let iterations = (1..=MAX_RSQRT_ITERATIONS).find(|&k| rsqrt_error(guess, a, b, k) <= target)?;
    Some(RsqrtPlan {
        a,
        b,
        guess,
        iterations,
    })
}

/// The error of `exp` on shares for an input in `r` whose own error is
/// `e_in`, at precision `f`: (1 + t + t²/2)^m, t = x/m, by n squarings from
/// y0 = 1 + t + t²/2, at a working precision of f + b bits
/// (`exp_extra_bits`). Returns the limit's own error against e^x (on a grid
/// of `r`), the rounding and input error δ carried through the squares
/// (δ_{k+1} = 2·Y_k·δ_k + δ_k² + ulp, Y_k the largest |y_k|; the ulp of the
/// working precision, and 2^-f for the last, from
/// δ_0 = δ_t·(1 + |t| + δ_t/2) + ulp as t²/2 is truncated once,
/// δ_t = e_in/m plus 2^-f when x/m is rounded, b = 0), and the gain of
/// `e_in` within δ.
pub fn exp_error(f: u32, r: Interval, e_in: f64) -> (f64, f64, f64) {
    let lsb = 2f64.powi(-(f as i32));
    let n = EXP_SQUARINGS as i32;
    let mm = 2f64.powi(n);
    let limit_error = (0..=4096)
        .map(|i| r.lo + (r.hi - r.lo) * i as f64 / 4096.0)
        .map(|x| (x.exp() - exp_limit(x)).abs())
        .fold(0.0, f64::max);
    let b = exp_extra_bits(f, r.hi);
    let ulp = lsb * 2f64.powi(-(b as i32));
    // y0 is convex in t, so largest at an end of the range.
    let base = exp_base(r.lo / mm).max(exp_base(r.hi / mm));
    let t_max = r.lo.abs().max(r.hi.abs()) / mm;
    let delta_t = e_in / mm + if b == 0 { lsb } else { 0.0 };
    let mut delta = delta_t * (1.0 + t_max + delta_t / 2.0) + ulp;
    let mut gain = (1.0 + t_max) / mm;
    for k in 0..n {
        let y = base.powi(1 << k);
        gain *= 2.0 * y;
        delta = 2.0 * y * delta + delta * delta + if k + 1 == n { lsb } else { ulp };
    }
    (limit_error, delta, gain)
}

/// How `log` computes ln x on shares for an input in `[a, b]`, a > 0.
/// The first guess is the tangent of ln at c = (b − a)/ln(b/a) (the
/// logarithmic mean, where the tangent's gap above ln is the same at both
/// ends): y0 = ln c − 1 + x/c ≥ ln x, one public product. Then Newton's
/// iteration on ln's inverse, y ← y − 1 + x·e^(−y): with ε = y − ln x each
/// step maps ε to ε − 1 + e^(−ε) (about ε²/2 near 0, ε − 1 far from it), so
/// from ε0 ≥ 0 it stays ≥ 0 and falls; `iterations` steps bring it below
/// 2^-(f+2). Each step is an `exp` on −y (in `exp_range`, whose ends carry
/// a margin of [`LOG_MARGIN`] for rounding) and one product. The same
/// approach is CrypTen's (`log` by Householder iterations on exp), here with
/// the first guess from the range analysis rather than a fixed fit.
#[derive(Clone, Debug, PartialEq)]
pub struct LogPlan {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub iterations: u32,
    pub exp_range: Interval,
    /// ε after the last step, the method's own error.
    pub method_error: f64,
    /// Rounding carried through the steps (`log_plan` says how).
    pub rounding: f64,
}

/// At most this many Newton steps for `log` (a ratio of largest to
/// smallest input beyond about 10^9 needs more).
pub const MAX_LOG_ITERATIONS: u32 = 24;

/// How far rounding may move `log`'s iterate before the range its `exp`
/// was planned for no longer holds; a plan whose rounding exceeds it is
/// refused.
pub const LOG_MARGIN: f64 = 1.0 / 8.0;

/// The plan for `log` of `x` on shares at precision `f`, from its range;
/// `None` when the range reaches 0, is unbounded, needs more than
/// [`MAX_LOG_ITERATIONS`] steps, or rounds by more than [`LOG_MARGIN`].
///
/// Rounding: δ0 = 2^-f (x/c truncated) + b·2^-f/2 (1/c encoded) + 2^-f/2
/// (ln c − 1 encoded); a step moves an earlier δ by the map's slope
/// 1 − e^(−t) for t within δ of ε, at most max(min(ε + δ, 1), e^δ − 1) in
/// size, and adds e^δ·ρ (ρ the
/// method's relative error in `exp`, as x·e^(−y) = e^(−ε) ≤ e^δ), b·E (the
/// `exp`'s rounding E times x ≤ b) and 2^-f (the product's truncation).
pub fn log_plan(g: &Graph, x: ValueId) -> Option<LogPlan> {
    let f = g.model.precision();
    let r = g.node(x).range;
    if r.lo.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || !r.hi.is_finite() {
        return None;
    }
    let (a, b) = (r.lo, r.hi);
    let c = if b > a * (1.0 + 1e-9) {
        (b - a) / (b / a).ln()
    } else {
        a
    };
    let gap = |x: f64| (c.ln() - 1.0 + x / c - x.ln()).max(0.0);
    let lsb = 2f64.powi(-(f as i32));
    let target = lsb / 4.0;
    let mut eps = gap(a).max(gap(b));
    let exp_range = Interval::new(-(b.ln() + eps) - LOG_MARGIN, -a.ln() + LOG_MARGIN);
    let mut delta = lsb + b * lsb / 2.0 + lsb / 2.0;
    // The exp's own error is relative (x·e^(−y) is e^(−ε) ≤ e^δ times it);
    // its rounding is absolute, so scaled by x ≤ b.
    let (_, exp_rounding, _) = exp_error(f, exp_range, 0.0);
    let relative_limit = (0..=4096)
        .map(|i| exp_range.lo + (exp_range.hi - exp_range.lo) * i as f64 / 4096.0)
        .map(|x| (exp_limit(x) / x.exp() - 1.0).abs())
        .fold(0.0, f64::max);
    let mut iterations = 0;
    while eps > target {
        if iterations == MAX_LOG_ITERATIONS {
            return None;
        }
        let slope = (eps + delta).min(1.0).max(delta.exp_m1());
        delta = slope * delta + delta.exp() * relative_limit + b * exp_rounding + lsb;
        // ε − (1 − e^(−ε)), without cancellation.
        eps += (-eps).exp_m1();
        iterations += 1;
        if delta > LOG_MARGIN {
            return None;
        }
    }
    Some(LogPlan {
        a,
        b,
        c,
        iterations,
        exp_range,
        method_error: eps,
        rounding: delta,
    })
}

/// The extra fractional bits `exp` of an input at most `hi` works with at
/// precision `f`: [`EXP_SQUARINGS`] when its largest power, held at twice
/// the working precision before each truncation, still fits (then x/2^n is
/// exact: the share of x read at f + n bits), otherwise 0. The lowering and
/// the error bound both use it.
pub fn exp_extra_bits(f: u32, hi: f64) -> u32 {
    let n = EXP_SQUARINGS;
    let top = exp_limit(hi.max(0.0));
    let room = TRUNC_OFFSET_BITS as f64 - 1.0 - 2.0 * (f + n) as f64;
    if top.log2() < room {
        n
    } else {
        0
    }
}

/// An error bound that says nothing about the value: at least as wide as
/// the value's own range (a probability in [0, 1] off by up to 1 or more).
pub fn exceeds_range(bound: f64, range: Interval) -> bool {
    let width = range.hi - range.lo;
    bound > 0.0 && width > 0.0 && bound >= width
}

/// W0102: the output's error bound is at least its range; say where most
/// of the bound comes from, and what would shrink it.
fn bound_warning(
    g: &Graph,
    fits: &BTreeMap<ValueId, Fit>,
    o: &Output,
    bound: f64,
    range: Interval,
    source: Source,
) -> Diagnostic {
    let d = Diagnostic::warning(
        Code::BoundExceedsRange,
        format!(
            "the error bound of output `{}` is larger than its range",
            o.name
        ),
    )
    .primary(
        o.span,
        format!(
            "`{}` lies in {range}, but the compiler bounds its error only by {}",
            o.name,
            fmt_num(bound)
        ),
    );
    let f = g.model.precision();
    match source {
        Source::Rounding => d
            .note(format!(
                "most of it is rounding (2^-{f} per operation at precision {f}), multiplied by the magnitudes of the values it passes through"
            ))
            .help("declare tighter `in [lo, hi]` ranges on the inputs, or raise `precision`"),
        Source::Approximation(v) => {
            let Some(fit) = fits.get(&v) else {
                return d;
            };
            // Name the input if it has a name; `%2` would mean nothing.
            let x = match &g.value(v).op {
                Op::Sigmoid(x, _) | Op::Tanh(x, _) => g.value(*x).name.clone(),
                _ => None,
            }
            .unwrap_or_else(|| "...".into());
            let (lo, hi) = fit.func.default_domain();
            d.secondary(
                g.value(v).span,
                format!(
                    "most of it is this degree-{} polynomial's own error, up to {} on [{}, {}]",
                    fit.degree,
                    fmt_num(fit.max_error),
                    fmt_num(fit.domain.0),
                    fmt_num(fit.domain.1)
                ),
            )
            .help(format!(
                "fit it on a smaller domain: declare tighter input ranges, clamp its input first (`clamp({x}, {}, {})`), or give a narrower `domain:`; or raise `degree:`",
                fmt_num(lo),
                fmt_num(hi)
            ))
        }
        Source::Coefficients(v) => match fits.get(&v) {
            Some(fit) => {
                let sum: f64 = fit.coefficients().iter().map(|c| c.abs()).sum();
                d.secondary(
                    g.value(v).span,
                    format!(
                        "most of it is rounding multiplied by this degree-{} polynomial's coefficients (their magnitudes sum to {})",
                        fit.degree,
                        fmt_num(sum)
                    ),
                )
                .help("give a lower `degree:` (without one the compiler picks the lowest within `tol:`), fit it on a narrower domain (tighter input ranges, or `domain:`), or raise `precision`")
            }
            None => {
                let sum: f64 = match &g.value(v).op {
                    Op::Poly(_, c) => c.iter().map(|c| c.abs()).sum(),
                    _ => 0.0,
                };
                d.secondary(
                    g.value(v).span,
                    format!(
                        "most of it is rounding multiplied by this polynomial's coefficients (their magnitudes sum to {})",
                        fmt_num(sum)
                    ),
                )
                .help("rescale the polynomial's variable so that its coefficients are smaller, or raise `precision`")
            }
        },
    }
}

fn fit_for(
    a: &mut Analysis,
    g: &Graph,
    v: ValueId,
    x: ValueId,
    func: Func,
    approx: &Approx,
    cheap_compare: bool,
) {
    let product_limit = 2f64.powi(TRUNC_OFFSET_BITS as i32 - 2 * g.model.precision() as i32);
    let value = g.value(v);
    let label = g.label(v);
    let range = g.node(x).range;
    let tol = approx.tol.unwrap_or(approx::DEFAULT_TOL);
    let domain = approx.domain.unwrap_or_else(|| {
        // Fit on the input's range: narrower than the default domain, it
        // allows a lower degree; wider, it is used if a fit within the
        // tolerance exists there (otherwise the default domain, and a warning).
        let (lo, hi) = func.default_domain();
        let default = hi.max(-lo);
        let m = range.magnitude().max(1e-3);
        if m <= default || (approx.degree.is_none() && approx::choose(func, (-m, m), tol).is_ok()) {
            (-m, m)
        } else {
            (-default, default)
        }
    });
    let fit = match approx.degree {
        Some(d) => approx::fit(func, d, domain),
        None => match approx::choose(func, domain, tol) {
            Ok(fit) => fit,
            Err(best) => {
                a.errors.push(
                    Diagnostic::error(
                        Code::NoApproximation,
                        format!(
                            "no polynomial approximates {} within {tol} on [{}, {}]",
                            func.name(),
                            fmt_num(domain.0),
                            fmt_num(domain.1)
                        ),
                    )
                    .primary(
                        value.span,
                        format!(
                            "the best, degree {}, is off by {}",
                            best.degree,
                            fmt_num(best.max_error)
                        ),
                    )
                    .help("raise `tol:`, narrow `domain:`, or give `degree:` explicitly"),
                );
                return;
            }
        },
    };
    let scale = fit.scale;
    let beyond = range.lo < fit.domain.0 - 1e-9 || range.hi > fit.domain.1 + 1e-9;
    let t = range.magnitude() / scale;
    let worst = fit
        .coefficients()
        .iter()
        .enumerate()
        .map(|(k, c)| t.powi(k as i32) * c.abs().max(1.0))
        .fold(0.0, f64::max);
    let secret = g.node(v).visibility == Visibility::Secret;
    if beyond && secret && (cheap_compare || worst >= product_limit) {
        // Clamp the input into the domain: accurate on the whole line.
        a.clamped.insert(v);
    } else if beyond {
        if g.node(v).visibility == Visibility::Secret && worst >= product_limit {
            a.errors.push(
                Diagnostic::error(
                    Code::PolyOverflow,
                    format!(
                        "the degree-{} polynomial for `{label}` overflows on its input's range",
                        fit.degree
                    ),
                )
                .primary(
                    value.span,
                    format!(
                        "{} of `{}` lies in {range}, far outside the fitted domain [{}, {}]",
                        func.name(),
                        g.label(x),
                        fmt_num(fit.domain.0),
                        fmt_num(fit.domain.1)
                    ),
                )
                .note(format!(
                    "there its powers reach {}, beyond the fixed-point range",
                    fmt_num(worst)
                ))
                .help("declare tighter `in` ranges on the inputs, or give a wider `domain:`"),
            );
        } else {
            a.warnings.push(
                Diagnostic::warning(
                    Code::BeyondDomain,
                    format!("the input of `{label}` can leave the polynomial's domain"),
                )
                .primary(
                    value.span,
                    format!(
                        "`{}` lies in {range}; {} is fitted on [{}, {}]",
                        g.label(x),
                        func.name(),
                        fmt_num(fit.domain.0),
                        fmt_num(fit.domain.1)
                    ),
                )
                .note(format!(
                    "inside the domain the error is at most {}; outside it is not bounded",
                    fmt_num(fit.max_error)
                ))
                .help("declare tighter input ranges, or widen `domain:`"),
            );
        }
    }
    a.fits.insert(v, fit);
}

/// If `v` determines another party's private input exactly for `p` (every
/// other operand on the way is known to `p`, through invertible operations),
/// that input.
fn reveals_input(g: &Graph, v: ValueId, p: PartyId) -> Option<ValueId> {
    let known = |x: ValueId| {
        matches!(g.node(x).visibility, Visibility::Public)
            || g.node(x).visibility == Visibility::Private(p)
    };
    let mut cur = v;
    loop {
        let value = g.value(cur);
        cur = match &value.op {
            Op::Input {
                owner: Owner::Party(q),
                ..
            } if *q != p => return Some(cur),
            Op::Neg(a) => *a,
            // Bijections that only move values: same values, another shape
            // (and the patches of windows, which repeat them).
            Op::Permute(a, _) | Op::Reshape(a) | Op::Im2col(a, _) => {
                cur = *a;
                continue;
            }
            Op::Add(a, b) | Op::Sub(a, b) => {
                if known(*b) && !known(*a) {
                    *a
                } else if known(*a) && !known(*b) {
                    *b
                } else {
                    return None;
                }
            }
            Op::Mul(a, b) => {
                let nonzero_const = |x: ValueId| matches!(&g.value(x).op, Op::Const { data } if data.iter().all(|d| *d != 0.0));
                if nonzero_const(*b) {
                    *a
                } else if nonzero_const(*a) {
                    *b
                } else {
                    return None;
                }
            }
            _ => return None,
        };
        if g.value(cur).shape != value.shape {
            return None;
        }
    }
}

/// Where (most of) an error bound comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    /// Encoding and truncation rounding, amplified by the ranges it meets.
    Rounding,
    /// The approximation error of the sigmoid/tanh polynomial at this value
    /// (with the function's tail beyond a clamped domain).
    Approximation(ValueId),
    /// Rounding amplified by the coefficients of the polynomial at this value.
    Coefficients(ValueId),
}

/// Propagate absolute error bounds: encoding rounding at the inputs, one
/// unit in the last place per truncation, approximation errors, amplified by
/// each operation's sensitivity over the operands' ranges. Alongside, each
/// bound split by [`Source`] (the bound is linear in its operands' errors,
/// up to a max), to say where most of an output's bound comes from.
///
/// An `argmax` is exact only when its row's maximum leads by more than
/// twice its input's bound; otherwise any near-largest index may come out.
/// So as an operand it carries the width of its range (any index), and as
/// an output it is checked as a set (an index whose entry is within
/// `near_tie` of the maximum), with a bound of 0 on the index itself.
fn error_bounds(
    g: &Graph,
    fits: &BTreeMap<ValueId, Fit>,
    clamped: &BTreeSet<ValueId>,
) -> (Vec<f64>, Vec<Source>, Vec<Option<f64>>) {
    type Parts = BTreeMap<Source, f64>;
    let lsb = 2f64.powi(-(g.model.precision() as i32));
    let mut err: BTreeMap<ValueId, f64> = BTreeMap::new();
    let mut parts: BTreeMap<ValueId, Parts> = BTreeMap::new();
    for v in g.order() {
        let value = g.value(v);
        let e = |x: &ValueId| err[x];
        let m = |x: &ValueId| g.node(*x).range.magnitude();
        let k = |x: &ValueId| g.value(*x).shape.0.last().map_or(1, |d| g.dim_size(d)) as f64;
        let mut p = Parts::new();
        let add = |p: &mut Parts, source: Source, amount: f64| {
            *p.entry(source).or_default() += amount;
        };
        let inherit = |p: &mut Parts, x: &ValueId, factor: f64| {
            for (s, amount) in &parts[x] {
                *p.entry(*s).or_default() += factor * amount;
            }
        };
        let bound = match &value.op {
            Op::Input { .. } | Op::Const { .. } => {
                add(&mut p, Source::Rounding, lsb / 2.0);
                lsb / 2.0
            }
            Op::Neg(a) => {
                inherit(&mut p, a, 1.0);
                e(a)
            }
            Op::Add(a, b) | Op::Sub(a, b) => {
                inherit(&mut p, a, 1.0);
                inherit(&mut p, b, 1.0);
                e(a) + e(b)
            }
            Op::Mul(a, b) => {
                inherit(&mut p, a, m(b) + e(b));
                inherit(&mut p, b, m(a));
                add(&mut p, Source::Rounding, lsb);
                m(a) * e(b) + m(b) * e(a) + e(a) * e(b) + lsb
            }
            // Σ_j |a_j| is k·m(a), or less with per-column ranges of a.
            Op::MatMul(a, b) => {
                inherit(&mut p, a, k(a) * (m(b) + e(b)));
                let bound = match &g.node(*a).cols {
                    Some(c) => {
                        let sum_a: f64 = c.iter().map(|x| x.magnitude()).sum();
                        inherit(&mut p, b, sum_a);
                        sum_a * e(b) + k(a) * (m(b) * e(a) + e(a) * e(b)) + lsb
                    }
                    None => {
                        inherit(&mut p, b, k(a) * m(a));
                        k(a) * (m(a) * e(b) + m(b) * e(a) + e(a) * e(b)) + lsb
                    }
                };
                add(&mut p, Source::Rounding, lsb);
                bound
            }
            // On shares, Newton's iteration (`rsqrt_plan`) on the computed
            // input, in [a − e, b + e]: the method's relative error e_K as
            // an absolute one, at most e_K/√(a − e); rounding δ through the
            // steps (a step's slope is 3e/2, and δ in y moves e by at most
            // 2·x·y·δ + x·δ² ≤ 2√b·δ + b·δ², as x·y² ≤ 1 after the first
            // step; each step truncates y² (a unit, times x·y/2 ≤ √b/2),
            // x·y²/2 (times y ≤ Y, the largest y) and the product); and the
            // input's error through 1/√x.
            Op::Rsqrt(a) if g.node(v).visibility == Visibility::Secret => match rsqrt_plan(g, *a) {
                Some(rp) if rp.a - e(a) > 0.0 => {
                    let (a1, b1) = (rp.a - e(a), rp.b + e(a));
                    let big_y = (1.5 * rp.guess).max(1.0 / a1.sqrt()) * 1.5;
                    let round = lsb * (1.0 + (big_y + b1.sqrt() / 2.0));
                    let coefficient = lsb * 2f64.powi(-(RSQRT_GUESS_BITS as i32)) / 2.0;
                    let mut delta = lsb + b1 * coefficient + lsb / 2.0;
                    for k in 1..rp.iterations {
                        let err = rsqrt_error(rp.guess, a1, b1, k);
                        let slope = 1.5 * (err + 2.0 * b1.sqrt() * delta + b1 * delta * delta);
                        delta = slope * delta + round;
                    }
                    let method = rsqrt_error(rp.guess, a1, b1, rp.iterations) / a1.sqrt();
                    let gain = 0.5 * a1.powf(-1.5);
                    inherit(&mut p, a, gain);
                    add(&mut p, Source::Approximation(v), method);
                    add(&mut p, Source::Rounding, delta);
                    method + delta + gain * e(a)
                }
                _ => {
                    add(&mut p, Source::Approximation(v), f64::INFINITY);
                    f64::INFINITY
                }
            },
            // Exact in the clear, then encoded: the input's error through
            // |d(1/√x)/dx| = x^(-3/2)/2 at the range's low end, and a rounding.
            Op::Rsqrt(a) => {
                let lo = g.node(*a).range.lo.max(f64::MIN_POSITIVE);
                let gain = 0.5 * lo.powf(-1.5);
                inherit(&mut p, a, gain);
                add(&mut p, Source::Rounding, lsb);
                gain * e(a) + lsb
            }
            Op::Sum(a) => {
                inherit(&mut p, a, k(a));
                k(a) * e(a)
            }
            // The sum times 1/k, a constant rounded to the precision: its
            // rounding error (lsb/2) scales with the sum.
            Op::Mean(a) => {
                inherit(&mut p, a, 1.0);
                let constant = k(a) * m(a) * lsb / 2.0;
                add(&mut p, Source::Rounding, lsb + constant);
                e(a) + constant + lsb
            }
            Op::Square(a) => {
                inherit(&mut p, a, 2.0 * m(a) + e(a));
                add(&mut p, Source::Rounding, lsb);
                2.0 * m(a) * e(a) + e(a) * e(a) + lsb
            }
            Op::Sigmoid(a, _) | Op::Tanh(a, _) => match fits.get(&v) {
                Some(fit) => {
                    // Clamped: beyond the domain the function is taken at its edge.
                    let tail = if clamped.contains(&v) {
                        (fit.func.eval(f64::INFINITY) - fit.func.eval(fit.domain.1)).abs()
                    } else {
                        0.0
                    };
                    let coefficients = lsb
                        * (fit.degree as f64 + 2.0)
                        * fit.coefficients().iter().map(|c| c.abs()).sum::<f64>();
                    add(&mut p, Source::Approximation(v), tail + fit.max_error);
                    inherit(&mut p, a, fit.lipschitz);
                    add(&mut p, Source::Coefficients(v), coefficients);
                    tail + fit.max_error + fit.lipschitz * e(a) + coefficients
                }
                None => {
                    add(&mut p, Source::Approximation(v), f64::INFINITY);
                    f64::INFINITY
                }
            },
            // (1 + t + t²/2)^m, t = x/m, by n squarings from
            // y0 = 1 + t + t²/2, at a working precision of f + b bits
            // (`exp_extra_bits`): the limit's own error against e^x (on a
            // grid of the input's range), and rounding
            // δ_{k+1} = 2·Y_k·δ_k + δ_k² + ulp through the squares (Y_k the
            // largest |y_k|; the ulp of the working precision, and 2^-f for
            // the last), from δ_0 = δ_t·(1 + |t| + δ_t/2) + ulp (t²/2 is
            // truncated once), δ_t = e(x)/m (plus 2^-f when x/m is rounded,
            // b = 0).
            Op::Exp(a) => {
                let mut r = g.node(*a).range;
                if clamped.contains(&v) {
                    // Evaluated on max(x, -m): the grid includes -m, where
                    // the error is e^-m (the formula gives about 2^-m),
                    // which bounds the error of every clamped input too.
                    r.lo = r.lo.max(-(2f64.powi(EXP_SQUARINGS as i32)));
                }
                let (limit_error, delta, gain) = exp_error(g.model.precision(), r, e(a));
                inherit(&mut p, a, gain);
                add(&mut p, Source::Approximation(v), limit_error);
                add(&mut p, Source::Rounding, (delta - gain * e(a)).max(0.0));
                limit_error + delta
            }
            // Newton's iteration on ln's inverse (`log_plan`): the method's
            // own error and the rounding through the steps, both from the
            // plan, and the input's error through ln, e/(a − e).
            Op::Log(x) => match log_plan(g, *x) {
                Some(lp) if lp.a - e(x) > 0.0 => {
                    let gain = 1.0 / (lp.a - e(x));
                    inherit(&mut p, x, gain);
                    add(&mut p, Source::Approximation(v), lp.method_error);
                    add(&mut p, Source::Rounding, lp.rounding);
                    lp.method_error + lp.rounding + gain * e(x)
                }
                _ => {
                    add(&mut p, Source::Approximation(v), f64::INFINITY);
                    f64::INFINITY
                }
            },
            // Newton's iteration on the computed input ẑ, which lies in
            // [a − e, b + e]: the iteration's own error ε_K/(a − e), the
            // rounding δ carried through the steps (each step multiplies
            // an earlier δ by 2ε_k and adds its own truncations), and the
            // input's error through 1/x, e/(a·(a − e)).
            Op::Reciprocal(x) => match reciprocal_plan(g, *x) {
                Some(rp) if rp.a - e(x) > 0.0 => {
                    let (a1, b1) = (rp.a - e(x), rp.b + e(x));
                    let eps0 = (1.0 - rp.guess * a1).abs().max((1.0 - rp.guess * b1).abs());
                    let y = 1.0 / a1;
                    let mut delta = lsb + b1 * lsb / 2.0 + lsb / 2.0;
                    let mut eps = eps0 * eps0;
                    for _ in 1..rp.iterations {
                        delta = 2.0 * eps * delta + b1 * delta * delta + lsb * (2.0 + y);
                        eps = eps * eps;
                    }
                    let method = eps / a1;
                    let input = e(x) / (rp.a * a1);
                    inherit(&mut p, x, 1.0 / (rp.a * a1));
                    add(&mut p, Source::Approximation(v), method);
                    add(&mut p, Source::Rounding, delta);
                    method + delta + input
                }
                _ => {
                    add(&mut p, Source::Approximation(v), f64::INFINITY);
                    f64::INFINITY
                }
            },
            Op::Poly(a, c) => {
                let r = m(a).max(1.0);
                let deriv: f64 = c
                    .iter()
                    .enumerate()
                    .skip(1)
                    .map(|(i, c)| i as f64 * c.abs() * r.powi(i as i32 - 1))
                    .sum();
                let coefficients =
                    lsb * c.len() as f64 * c.iter().map(|x| x.abs()).sum::<f64>().max(1.0);
                inherit(&mut p, a, deriv);
                add(&mut p, Source::Coefficients(v), coefficients);
                deriv * e(a) + coefficients
            }
            Op::Relu(a)
            | Op::MaxReduce(a)
            | Op::MinReduce(a)
            | Op::Clamp(a, ..)
            | Op::Permute(a, _)
            | Op::Reshape(a)
            | Op::Im2col(a, _)
            | Op::Narrow(a, ..) => {
                inherit(&mut p, a, 1.0);
                e(a)
            }
            // Each entry is one operand's.
            Op::Concat(parts) => {
                for x in parts {
                    inherit(&mut p, x, 1.0);
                }
                parts.iter().map(e).fold(0.0, f64::max)
            }
            Op::Max(a, b) | Op::Min(a, b) => {
                let larger = if e(b) > e(a) { b } else { a };
                inherit(&mut p, larger, 1.0);
                e(a).max(e(b))
            }
            Op::Argmax(a) => {
                let width = g.node(v).range.hi - g.node(v).range.lo;
                if e(a) > 0.0 {
                    add(&mut p, Source::Rounding, width);
                    width
                } else {
                    0.0
                }
            }
        };
        err.insert(v, bound);
        parts.insert(v, p);
    }
    let dominant = |v: &ValueId| {
        parts[v]
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)))
            .map_or(Source::Rounding, |(s, _)| *s)
    };
    let mut near_ties = Vec::new();
    let (bounds, sources) = g
        .model
        .outputs()
        .iter()
        .map(|o| match g.value(o.value).op {
            Op::Argmax(a) => {
                near_ties.push(Some(2.0 * err[&a]));
                (0.0, Source::Rounding)
            }
            _ => {
                near_ties.push(None);
                (err[&o.value], dominant(&o.value))
            }
        })
        .unzip();
    (bounds, sources, near_ties)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_exceeds_a_range_when_it_is_at_least_its_width() {
        let unit = Interval::new(0.0, 1.0);
        assert!(exceeds_range(92.7, unit));
        assert!(exceeds_range(1.0, unit));
        assert!(!exceeds_range(0.99, unit));
        // An exact value, or a value of one possible value, has nothing to compare.
        assert!(!exceeds_range(0.0, unit));
        assert!(!exceeds_range(1e-5, Interval::point(3.0)));
        assert!(exceeds_range(4.0, Interval::new(-2.0, 2.0)));
    }
}
