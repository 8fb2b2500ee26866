//! Checks on the dataflow graph before protocols are chosen: polynomial
//! fits for sigmoid and tanh, overflow by range analysis, outputs that would
//! give away another party's input, and each output's error bound.

use crate::approx::{self, Fit, Func};
use crate::graph::{fmt_num, Graph, Visibility};
use crate::ir::*;
use grammar::{Code, Diagnostic};
use std::collections::{BTreeMap, BTreeSet};

pub struct Analysis {
    pub fits: BTreeMap<ValueId, Fit>,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    /// Estimated absolute error of each output against exact arithmetic.
    pub error_bounds: Vec<f64>,
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
        clamped: BTreeSet::new(),
    };
    let f = g.model.precision;
    // Products are computed at scale 2f before truncation; keep one bit spare.
    let product_limit = 2f64.powi(62 - 2 * f as i32);
    let value_limit = 2f64.powi(62 - f as i32);
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
        if node.visibility != Visibility::Public
            && !matches!(value.op, Op::Input { .. } | Op::Const { .. })
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
                        62 - 2 * f
                    } else {
                        62 - f
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
    for o in &g.model.outputs {
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
    a.error_bounds = error_bounds(g, &a.fits, &a.clamped);
    a
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
    let product_limit = 2f64.powi(62 - 2 * g.model.precision as i32);
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

/// Propagate absolute error bounds: encoding rounding at the inputs, one
/// unit in the last place per truncation, approximation errors, amplified by
/// each operation's sensitivity over the operands' ranges.
fn error_bounds(g: &Graph, fits: &BTreeMap<ValueId, Fit>, clamped: &BTreeSet<ValueId>) -> Vec<f64> {
    let lsb = 2f64.powi(-(g.model.precision as i32));
    let mut err: BTreeMap<ValueId, f64> = BTreeMap::new();
    for v in g.order() {
        let value = g.value(v);
        let e = |x: &ValueId| err[x];
        let m = |x: &ValueId| g.node(*x).range.magnitude();
        let k = |x: &ValueId| g.value(*x).shape.0.last().map_or(1, |d| g.dim_size(d)) as f64;
        let bound = match &value.op {
            Op::Input { .. } | Op::Const { .. } => lsb / 2.0,
            Op::Neg(a) => e(a),
            Op::Add(a, b) | Op::Sub(a, b) => e(a) + e(b),
            Op::Mul(a, b) => m(a) * e(b) + m(b) * e(a) + e(a) * e(b) + lsb,
            Op::MatMul(a, b) => k(a) * (m(a) * e(b) + m(b) * e(a) + e(a) * e(b)) + lsb,
            Op::Sum(a) => k(a) * e(a),
            // The sum times 1/k, a constant rounded to the precision: its
            // rounding error (lsb/2) scales with the sum.
            Op::Mean(a) => e(a) + k(a) * m(a) * lsb / 2.0 + lsb,
            Op::Square(a) => 2.0 * m(a) * e(a) + e(a) * e(a) + lsb,
            Op::Sigmoid(a, _) | Op::Tanh(a, _) => match fits.get(&v) {
                Some(fit) => {
                    // Clamped: beyond the domain the function is taken at its edge.
                    let tail = if clamped.contains(&v) {
                        (fit.func.eval(f64::INFINITY) - fit.func.eval(fit.domain.1)).abs()
                    } else {
                        0.0
                    };
                    tail + fit.max_error
                        + fit.lipschitz * e(a)
                        + lsb
                            * (fit.degree as f64 + 2.0)
                            * fit.coefficients().iter().map(|c| c.abs()).sum::<f64>()
                }
                None => f64::INFINITY,
            },
            Op::Poly(a, c) => {
                let r = m(a).max(1.0);
                let deriv: f64 = c
                    .iter()
                    .enumerate()
                    .skip(1)
                    .map(|(i, c)| i as f64 * c.abs() * r.powi(i as i32 - 1))
                    .sum();
                deriv * e(a)
                    + lsb * c.len() as f64 * c.iter().map(|x| x.abs()).sum::<f64>().max(1.0)
            }
            Op::Relu(a) | Op::MaxReduce(a) | Op::Clamp(a, ..) => e(a),
            Op::Max(a, b) | Op::Min(a, b) => e(a).max(e(b)),
            Op::Argmax(_) => 0.0,
        };
        err.insert(v, bound);
    }
    g.model.outputs.iter().map(|o| err[&o.value]).collect()
}
