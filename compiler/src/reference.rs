//! The plaintext reference interpreter: the specification of what a model
//! computes. It evaluates a checked model in plain f64 arithmetic, as
//! docs/language.md defines each operation: real arithmetic, the exact
//! logistic function and hyperbolic tangent (not the polynomials the
//! compiler fits), no fixed point, no cryptography. Every private run is
//! compared against it, within the error bound the compiler reports.
//!
//! It is written from the language reference, not from the runtime: it
//! shares no arithmetic with `plan::ClearOp::apply` or the tensor helpers
//! of `plan`, so that a differential test compares two implementations
//! (`tests/differential.rs`, `tests/fuzzgen.rs`). `plan::Tensor` is only
//! the container inputs and outputs cross the boundary in.
//!
//! Conventions the language reference leaves open, fixed here: `argmax`
//! returns the lowest index among equal largest entries (as NumPy does);
//! sums run left to right.

use crate::ir::*;
use plan::Tensor;
use std::collections::BTreeMap;

/// Evaluate every output of `model` on `inputs` (by input name). Each
/// input must have its declared shape; named dimensions (`batch`) are bound
/// from the inputs and must agree. Errors name inputs and shapes, never
/// values.
pub fn evaluate(
    model: &CheckedModel,
    inputs: &BTreeMap<String, Tensor>,
) -> Result<Vec<(String, Tensor)>, String> {
    Ok(expected(model, inputs)?
        .into_iter()
        .map(|e| (e.name, e.value))
        .collect())
}

/// What one output should be: its exact value and, for an `argmax`, the
/// exact entries it picks the largest of (a near-tie may pick another).
#[derive(Clone, Debug)]
pub struct Expected {
    pub name: String,
    pub value: Tensor,
    /// For an output that is an `argmax`: its operand, the rows it ranks.
    pub scores: Option<Tensor>,
}

/// Like [`evaluate`], with each `argmax` output's scores.
pub fn expected(
    model: &CheckedModel,
    inputs: &BTreeMap<String, Tensor>,
) -> Result<Vec<Expected>, String> {
    let dims = bind_dims(model, inputs)?;
    let mut values: Vec<Option<Tensor>> = vec![None; model.values().len()];
    for (i, v) in model.values().iter().enumerate() {
        let get = |id: ValueId| values[id.index()].as_ref().expect("operands come first");
        let t = match &v.op {
            Op::Input { .. } => {
                let name = v.name.as_deref().unwrap_or_default();
                inputs[name].clone()
            }
            Op::Const { data } => Tensor {
                shape: concrete(&v.shape, &dims)?,
                data: data.clone(),
            },
            Op::Neg(a) => map(get(*a), |x| -x),
            Op::Add(a, b) => elementwise(get(*a), get(*b), |x, y| x + y)?,
            Op::Sub(a, b) => elementwise(get(*a), get(*b), |x, y| x - y)?,
            Op::Mul(a, b) => elementwise(get(*a), get(*b), |x, y| x * y)?,
            Op::MatMul(a, b) => matmul(get(*a), get(*b))?,
            Op::Sum(a) => along_last(get(*a), |row| row.iter().sum())?,
            Op::Mean(a) => along_last(get(*a), |row| row.iter().sum::<f64>() / row.len() as f64)?,
            Op::Square(a) => map(get(*a), |x| x * x),
            Op::Sigmoid(a, _) => map(get(*a), logistic),
            Op::Tanh(a, _) => map(get(*a), f64::tanh),
            Op::Exp(a) => map(get(*a), f64::exp),
            Op::Reciprocal(a) => map(get(*a), |x| 1.0 / x),
            Op::Poly(a, c) => map(get(*a), |x| polynomial(c, x)),
            Op::Relu(a) => map(get(*a), |x| if x > 0.0 { x } else { 0.0 }),
            Op::MaxReduce(a) => along_last(get(*a), |row| row[first_largest(row)])?,
            Op::MinReduce(a) => along_last(get(*a), |row| {
                row.iter().fold(row[0], |m, &x| if x < m { x } else { m })
            })?,
            Op::Argmax(a) => along_last(get(*a), |row| first_largest(row) as f64)?,
            Op::Max(a, b) => elementwise(get(*a), get(*b), |x, y| if y > x { y } else { x })?,
            Op::Min(a, b) => elementwise(get(*a), get(*b), |x, y| if y < x { y } else { x })?,
            Op::Permute(a, perm) => permute(get(*a), perm)?,
            Op::Reshape(a) => Tensor {
                shape: concrete(&v.shape, &dims)?,
                data: get(*a).data.clone(),
            },
            Op::Clamp(a, lo, hi) => map(get(*a), |x| {
                if x < *lo {
                    *lo
                } else if x > *hi {
                    *hi
                } else {
                    x
                }
            }),
        };
        // The checker computed every value's shape; the reference computes
        // it again from the operations' definitions. They must agree.
        let want = concrete(&v.shape, &dims)?;
        if t.shape != want || t.data.len() != want.iter().product::<usize>() {
            return Err(format!(
                "reference interpreter: `{}` ({}) has shape {:?}, the checker says {} = {want:?}",
                v.name.as_deref().unwrap_or("a value"),
                v.op.mnemonic(),
                t.shape,
                v.shape
            ));
        }
        values[i] = Some(t);
    }
    let value = |v: ValueId| values[v.index()].clone().expect("evaluated");
    Ok(model
        .outputs()
        .iter()
        .map(|o| Expected {
            name: o.name.clone(),
            value: value(o.value),
            scores: match model.value(o.value).op {
                Op::Argmax(a) => Some(value(a)),
                _ => None,
            },
        })
        .collect())
}

/// How far each element of `got`, a private result of output `spec`, is
/// from the exact `want`: `|got - exact|`, except that an `argmax` index
/// whose entry lies within `spec.near_tie` of its row's exact maximum is
/// as good as the first largest (only its distance to the nearest whole
/// number counts). `None` when the shapes differ.
pub fn deviations(spec: &plan::OutputSpec, got: &Tensor, want: &Expected) -> Option<Vec<f64>> {
    if got.shape != want.value.shape || got.data.len() != want.value.data.len() {
        return None;
    }
    let plain = || {
        got.data
            .iter()
            .zip(&want.value.data)
            .map(|(a, b)| (a - b).abs())
    };
    let (Some(slack), Some(scores)) = (spec.near_tie, &want.scores) else {
        return Some(plain().collect());
    };
    let k = scores.shape.last().copied().unwrap_or(1).max(1);
    Some(
        plain()
            .zip(&got.data)
            .zip(scores.data.chunks(k))
            .map(|((error, &index), row)| {
                let j = index.round();
                let best = row[first_largest(row)];
                let near = j >= 0.0 && (j as usize) < row.len() && row[j as usize] >= best - slack;
                if near {
                    (index - j).abs()
                } else {
                    error
                }
            })
            .collect(),
    )
}

/// The sizes of the named dimensions, from the inputs' shapes; every input
/// present with its declared shape.
fn bind_dims(
    model: &CheckedModel,
    inputs: &BTreeMap<String, Tensor>,
) -> Result<BTreeMap<String, usize>, String> {
    let mut dims = BTreeMap::new();
    for v in model.values() {
        if !matches!(v.op, Op::Input { .. }) {
            continue;
        }
        let name = v.name.as_deref().unwrap_or_default();
        let t = inputs
            .get(name)
            .ok_or_else(|| format!("missing input `{name}`"))?;
        let bad = || {
            format!(
                "input `{name}` has shape {:?}, the model declares {}",
                t.shape, v.shape
            )
        };
        if t.shape.len() != v.shape.rank() || t.data.len() != t.shape.iter().product::<usize>() {
            return Err(bad());
        }
        for (d, &n) in v.shape.0.iter().zip(&t.shape) {
            match d {
                Dim::Known(k) if *k as usize != n => return Err(bad()),
                Dim::Known(_) => {}
                Dim::Symbol(s) => {
                    if *dims.entry(s.clone()).or_insert(n) != n {
                        return Err(format!(
                            "input `{name}` has shape {:?}: dimension `{s}` is {} in an earlier input",
                            t.shape, dims[s]
                        ));
                    }
                }
            }
        }
    }
    Ok(dims)
}

fn concrete(shape: &Shape, dims: &BTreeMap<String, usize>) -> Result<Vec<usize>, String> {
    shape
        .0
        .iter()
        .map(|d| match d {
            Dim::Known(n) => Ok(*n as usize),
            Dim::Symbol(s) => dims
                .get(s)
                .copied()
                .ok_or_else(|| format!("dimension `{s}` is not bound by any input")),
        })
        .collect()
}

fn map(a: &Tensor, f: impl Fn(f64) -> f64) -> Tensor {
    Tensor {
        shape: a.shape.clone(),
        data: a.data.iter().map(|&x| f(x)).collect(),
    }
}

/// A tensor of rank at most 2 seen as rows × columns: a scalar is 1 × 1, a
/// vector `[n]` one row of n.
fn rows_cols(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (1, *n),
        [m, n] => (*m, *n),
        _ => (0, 0),
    }
}

/// Elementwise `f` with the language's broadcasting: equal shapes, a scalar
/// with anything, or a vector `[n]` with a matrix `[m, n]` (the vector
/// applied to every row).
fn elementwise(a: &Tensor, b: &Tensor, f: impl Fn(f64, f64) -> f64) -> Result<Tensor, String> {
    let shape = match (a.shape.as_slice(), b.shape.as_slice()) {
        (x, y) if x == y => x.to_vec(),
        ([], y) => y.to_vec(),
        (x, []) => x.to_vec(),
        ([n], [_, k]) | ([_, k], [n]) if n == k => {
            if a.shape.len() == 2 {
                a.shape.clone()
            } else {
                b.shape.clone()
            }
        }
        _ => {
            return Err(format!(
                "reference interpreter: shapes {:?} and {:?} do not broadcast",
                a.shape, b.shape
            ))
        }
    };
    if shape.len() > 2 {
        return Err(format!("reference interpreter: rank of {shape:?} above 2"));
    }
    let (rows, cols) = rows_cols(&shape);
    // Entry (r, c) of an operand broadcast to the result's shape.
    let at = |t: &Tensor, r: usize, c: usize| match t.shape.len() {
        0 => t.data[0],
        1 => t.data[c],
        _ => t.data[r * cols + c],
    };
    let mut data = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            data.push(f(at(a, r, c), at(b, r, c)));
        }
    }
    Ok(Tensor { shape, data })
}

/// `a @ b`, by the table in the language reference: `[n]@[n]` → scalar,
/// `[m,n]@[n]` → `[m]`, `[n]@[n,k]` → `[k]`, `[m,n]@[n,k]` → `[m,k]`.
fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor, String> {
    let (m, n, shape_a) = match a.shape.as_slice() {
        [n] => (1, *n, vec![]),
        [m, n] => (*m, *n, vec![*m]),
        _ => return Err(format!("reference interpreter: `@` of {:?}", a.shape)),
    };
    let (n2, k, shape_b) = match b.shape.as_slice() {
        [n] => (*n, 1, vec![]),
        [n, k] => (*n, *k, vec![*k]),
        _ => return Err(format!("reference interpreter: `@` with {:?}", b.shape)),
    };
    if n != n2 {
        return Err(format!(
            "reference interpreter: `@` of {:?} and {:?}",
            a.shape, b.shape
        ));
    }
    let mut data = Vec::with_capacity(m * k);
    for i in 0..m {
        for j in 0..k {
            let mut s = 0.0;
            for l in 0..n {
                s += a.data[i * n + l] * b.data[l * k + j];
            }
            data.push(s);
        }
    }
    let mut shape = shape_a;
    shape.extend(shape_b);
    Ok(Tensor { shape, data })
}

/// `f` of each row along the last dimension: `[m, n]` → `[m]`, `[n]` → scalar.
fn along_last(a: &Tensor, f: impl Fn(&[f64]) -> f64) -> Result<Tensor, String> {
    let Some((&cols, outer)) = a.shape.split_last() else {
        return Err("reference interpreter: no last dimension to reduce in a scalar".into());
    };
    let rows: usize = outer.iter().product();
    if cols == 0 {
        return Err("reference interpreter: reduction of an empty dimension".into());
    }
    let data = (0..rows)
        .map(|r| f(&a.data[r * cols..(r + 1) * cols]))
        .collect();
    Ok(Tensor {
        shape: a.shape[..a.shape.len() - 1].to_vec(),
        data,
    })
}

/// The tensor whose element at index `(i_0, ..., i_r)` is `a`'s element
/// at the index whose axis `perm[k]` is `i_k`.
fn permute(a: &Tensor, perm: &[usize]) -> Result<Tensor, String> {
    let mut sorted = perm.to_vec();
    sorted.sort_unstable();
    if sorted != (0..a.shape.len()).collect::<Vec<_>>() {
        return Err(format!(
            "reference interpreter: {perm:?} does not permute the axes of {:?}",
            a.shape
        ));
    }
    let shape: Vec<usize> = perm.iter().map(|&k| a.shape[k]).collect();
    let data = (0..a.data.len())
        .map(|flat| {
            // The result's index, last axis fastest; the same index in `a`.
            let mut rest = flat;
            let mut index = vec![0; shape.len()];
            for (k, &n) in shape.iter().enumerate().rev() {
                index[k] = rest % n;
                rest /= n;
            }
            let mut source = vec![0; shape.len()];
            for (k, &axis) in perm.iter().enumerate() {
                source[axis] = index[k];
            }
            let offset = source
                .iter()
                .zip(&a.shape)
                .fold(0, |acc, (i, n)| acc * n + i);
            a.data[offset]
        })
        .collect();
    Ok(Tensor { shape, data })
}

/// Index of the first largest entry of a non-empty row.
fn first_largest(row: &[f64]) -> usize {
    let mut best = 0;
    for (j, &x) in row.iter().enumerate().skip(1) {
        if x > row[best] {
            best = j;
        }
    }
    best
}

/// The logistic function 1 / (1 + e^-x), in the form that neither
/// overflows nor loses precision for large |x|.
fn logistic(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// c0 + c1·x + c2·x² + ... (Horner's rule).
fn polynomial(c: &[f64], x: f64) -> f64 {
    let mut acc = 0.0;
    for k in c.iter().rev() {
        acc = acc * x + k;
    }
    acc
}

/// The private outputs next to the plaintext reference's.
#[derive(Debug, Default)]
pub struct Comparison {
    /// One report per output and recipient.
    pub lines: Vec<String>,
    pub worst: f64,
    /// The outputs whose error exceeds the compiler's bound (or is NaN).
    pub over_bound: Vec<String>,
    /// Per output and recipient: its name and party, the reference's
    /// preview, the error, the bound and an argmax's near-tie slack.
    pub entries: Vec<Entry>,
    /// Outputs the reference does not have.
    pub missing: Vec<String>,
}

/// One output at one party: name, party, preview, error, bound, slack.
pub type Entry = (String, String, String, f64, f64, Option<f64>);

/// The larger error; NaN sticks, so a broken element is never hidden by a good one.
fn worse(m: f64, e: f64) -> f64 {
    if m.is_nan() || e.is_nan() {
        f64::NAN
    } else {
        m.max(e)
    }
}

impl Comparison {
    /// The lines, the worst error and the failures from the entries.
    fn finish(&mut self) {
        self.lines.clear();
        self.over_bound = self.missing.clone();
        self.worst = 0.0;
        for (name, party, preview, err, bound, slack) in &self.entries {
            let ties = match slack {
                Some(slack) => format!(", or any index within {slack:.3e} of the maximum"),
                None => String::new(),
            };
            self.lines.push(format!(
                "reference {name} at {party}: {preview}\n  max |private - reference| = {err:.3e} (compiler's bound {bound:.3e}{ties})"
            ));
            self.worst = self.worst.max(*err);
            // A NaN error (a broken output) or a missing bound is a failure too.
            if err.is_nan() || bound.is_nan() || err > bound {
                self.over_bound
                    .push(format!("`{name}` at {party}: {err:.3e} > {bound:.3e}"));
            }
        }
    }

    /// Adds the comparison of a later chunk of rows: each output's error is
    /// the worst over the chunks; the previews stay the first chunk's.
    pub fn absorb(&mut self, c: Comparison) {
        if self.entries.is_empty() && self.missing.is_empty() {
            *self = c;
            return;
        }
        for (mine, theirs) in self.entries.iter_mut().zip(c.entries) {
            mine.3 = worse(mine.3, theirs.3);
        }
        for m in c.missing {
            if !self.missing.contains(&m) {
                self.missing.push(m);
            }
        }
        self.finish();
    }
}

/// Compares every output each party learned (`learned[p]`: party p's
/// outputs) with the reference interpreter's: `veil run --check` and `--demo`
/// and the Python module's `run(check=True)` report through it.
pub fn compare(
    plan: &plan::Plan,
    learned: &[&[(String, Tensor)]],
    reference: &[Expected],
) -> Comparison {
    let mut c = Comparison::default();
    for (p, outputs) in learned.iter().enumerate() {
        let party = plan.party_name(p as u32);
        for (name, t) in outputs.iter() {
            let Some(r) = reference.iter().find(|r| &r.name == name) else {
                c.missing.push(format!(
                    "`{name}` at {party}: the reference has no such output"
                ));
                continue;
            };
            let spec = plan.outputs.iter().find(|s| &s.name == name);
            // An argmax index within its near-tie slack counts as exact.
            let err = match spec.and_then(|s| deviations(s, t, r)) {
                Some(d) => d.into_iter().fold(0.0, worse),
                None => f64::NAN,
            };
            let bound = spec.map_or(f64::NAN, |s| s.error_bound);
            let slack = spec.and_then(|s| s.near_tie);
            c.entries.push((
                name.clone(),
                party.to_string(),
                preview(&r.value),
                err,
                bound,
                slack,
            ));
        }
    }
    c.finish();
    c
}

/// The first values of a tensor, for a line of text: `[0.5000, ...]`.
pub fn preview(t: &Tensor) -> String {
    let shown: Vec<String> = t.data.iter().take(8).map(|v| format!("{v:.4}")).collect();
    let more = if t.data.len() > 8 {
        format!(", ... ({} values)", t.data.len())
    } else {
        String::new()
    };
    format!("[{}{more}]", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &str, inputs: &[(&str, Vec<usize>, Vec<f64>)]) -> Vec<(String, Tensor)> {
        try_run(src, inputs).unwrap()
    }

    fn try_run(
        src: &str,
        inputs: &[(&str, Vec<usize>, Vec<f64>)],
    ) -> Result<Vec<(String, Tensor)>, String> {
        let m = crate::check_source(src).model.expect("valid model");
        let inputs = inputs
            .iter()
            .map(|(n, s, d)| (n.to_string(), Tensor::new(s.clone(), d.clone()).unwrap()))
            .collect();
        evaluate(&m, &inputs)
    }

    #[test]
    fn linear_algebra_and_broadcasting() {
        let out = run(
            "model m { party a; party b; input x: fixed[n, 2] private(a); input w: fixed[2, 3] private(b);
               input c: fixed[3] private(b); let y = x @ w + c; let s = sum(y) * 2; output y to a; output s to a; }",
            &[("x", vec![2, 2], vec![1., 2., 3., 4.]), ("w", vec![2, 3], vec![1., 0., 1., 0., 1., 1.]), ("c", vec![3], vec![10., 20., 30.])],
        );
        assert_eq!(out[0].1.shape, vec![2, 3]);
        assert_eq!(out[0].1.data, vec![11., 22., 33., 13., 24., 37.]);
        assert_eq!(out[1].1.data, vec![132., 148.]);
    }

    #[test]
    fn every_matrix_product_of_the_table() {
        let out = run(
            "model m { party a; party b;
               input u: fixed[2] private(a); input v: fixed[2] private(b);
               input x: fixed[3, 2] private(a); input w: fixed[2, 2] private(b);
               let d = u @ v; let xv = x @ v; let uw = u @ w; let xw = x @ w;
               output d to a; output xv to a; output uw to a; output xw to a; }",
            &[
                ("u", vec![2], vec![1., 2.]),
                ("v", vec![2], vec![3., -1.]),
                ("x", vec![3, 2], vec![1., 0., 0., 1., 2., 2.]),
                ("w", vec![2, 2], vec![1., 2., 3., 4.]),
            ],
        );
        assert_eq!(out[0].1.shape, Vec::<usize>::new());
        assert_eq!(out[0].1.data, vec![1.]);
        assert_eq!(
            (&out[1].1.shape, &out[1].1.data),
            (&vec![3], &vec![3., -1., 4.])
        );
        assert_eq!(
            (&out[2].1.shape, &out[2].1.data),
            (&vec![2], &vec![7., 10.])
        );
        assert_eq!(out[3].1.shape, vec![3, 2]);
        assert_eq!(out[3].1.data, vec![1., 2., 3., 4., 8., 12.]);
    }

    #[test]
    fn reductions_and_elementwise_comparisons() {
        let out = run(
            "model m { party a; party b; input x: fixed[2, 3] private(a); input y: fixed[3] private(b);
               let s = mean(x); let k = max(x); let hi = max(x, y); let lo = min(y, x); let z = min(x, 0.5);
               output s to a; output k to a; output hi to a; output lo to a; output z to a; }",
            &[
                ("x", vec![2, 3], vec![1., 2., 6., -1., -3., -2.]),
                ("y", vec![3], vec![0., 4., -5.]),
            ],
        );
        assert_eq!(out[0].1.data, vec![3., -2.]);
        assert_eq!(out[1].1.data, vec![6., -1.]);
        assert_eq!(out[2].1.data, vec![1., 4., 6., 0., 4., -2.]);
        assert_eq!(out[3].1.data, vec![0., 2., -5., -1., -3., -5.]);
        assert_eq!(out[4].1.data, vec![0.5, 0.5, 0.5, -1., -3., -2.]);
    }

    /// Hand-computed: reductions along each axis, and a reduced value
    /// broadcast back against its operand (keep-dims).
    #[test]
    fn reductions_along_an_axis_and_keep_dims_broadcasts() {
        let out = run(
            "model m { party a; party b; input x: fixed[2, 3] private(a);
               let c = sum(x, axis: 0); let k = max(x, axis: 0); let l = min(x); let i = argmax(x, axis: -2);
               let d = x - max(x); let e = mean(x, axis: 0) + x; let f = min(x, axis: 1) * x;
               output c to a; output k to a; output l to a; output i to a; output d to a; output e to a; output f to a; }",
            &[("x", vec![2, 3], vec![1., 2., 6., -1., 5., -2.])],
        );
        assert_eq!(
            (&out[0].1.shape, &out[0].1.data),
            (&vec![3], &vec![0., 7., 4.])
        );
        assert_eq!(out[1].1.data, vec![1., 5., 6.]);
        assert_eq!(
            (&out[2].1.shape, &out[2].1.data),
            (&vec![2], &vec![1., -2.])
        );
        assert_eq!(out[3].1.data, vec![0., 1., 0.]);
        assert_eq!(out[4].1.shape, vec![2, 3]);
        assert_eq!(out[4].1.data, vec![-5., -4., 0., -6., 0., -7.]);
        assert_eq!(out[5].1.data, vec![1., 5.5, 8., -1., 8.5, 0.]);
        assert_eq!(out[6].1.data, vec![1., 2., 6., 2., -10., 4.]);
    }

    /// Hand-computed: the same six values in other shapes and orders.
    #[test]
    fn reshape_flatten_transpose_and_permute() {
        let out = run(
            "model m { party a; party b; input x: fixed[2, 3] private(a);
               let r = reshape(x, [3, -1]); let t = transpose(x, 0, 1); let p = permute(reshape(x, [1, 2, 3]), [2, 0, 1]);
               let f = flatten(p); let g = flatten(p, start_dim: 1);
               output r to a; output t to a; output p to a; output f to a; output g to a; }",
            &[("x", vec![2, 3], vec![1., 2., 3., 4., 5., 6.])],
        );
        assert_eq!(
            (&out[0].1.shape, &out[0].1.data),
            (&vec![3, 2], &vec![1., 2., 3., 4., 5., 6.])
        );
        assert_eq!(
            (&out[1].1.shape, &out[1].1.data),
            (&vec![3, 2], &vec![1., 4., 2., 5., 3., 6.])
        );
        assert_eq!(
            (&out[2].1.shape, &out[2].1.data),
            (&vec![3, 1, 2], &vec![1., 4., 2., 5., 3., 6.])
        );
        assert_eq!(
            (&out[3].1.shape, &out[3].1.data),
            (&vec![6], &vec![1., 4., 2., 5., 3., 6.])
        );
        assert_eq!(
            (&out[4].1.shape, &out[4].1.data),
            (&vec![3, 2], &vec![1., 4., 2., 5., 3., 6.])
        );
    }

    /// softmax written out by the checker is the exact softmax.
    #[test]
    fn softmax_is_exact() {
        let out = run(
            "model m { party a; party b; input x: fixed[2, 2] private(a);
               let p = softmax(x); let q = softmax(x, axis: 0); let r = reciprocal(x); let d = x / 4; let e = 1 / x;
               output p to a; output q to a; output r to a; output d to a; output e to a; }",
            &[("x", vec![2, 2], vec![0.0, 3f64.ln(), 1.0, 1.0])],
        );
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
        assert!(
            close(&out[0].1.data, &[0.25, 0.75, 0.5, 0.5]),
            "{:?}",
            out[0].1.data
        );
        let e = 1f64.exp();
        let (c0, c1) = (1.0 / (1.0 + e), 3.0 / (3.0 + e));
        assert!(
            close(&out[1].1.data, &[c0, c1, 1.0 - c0, 1.0 - c1]),
            "{:?}",
            out[1].1.data
        );
        assert!(close(&out[2].1.data[1..], &[1.0 / 3f64.ln(), 1.0, 1.0]));
        assert!(close(&out[3].1.data, &[0.0, 3f64.ln() / 4.0, 0.25, 0.25]));
        assert_eq!(out[4].1.data[1..], out[2].1.data[1..]);
    }

    #[test]
    fn permute_moves_every_element() {
        let t = Tensor {
            shape: vec![2, 3, 4],
            data: (0..24).map(f64::from).collect(),
        };
        let p = permute(&t, &[2, 0, 1]).unwrap();
        assert_eq!(p.shape, vec![4, 2, 3]);
        for (i, j, k) in (0..24).map(|n| (n / 6, n / 3 % 2, n % 3)) {
            // p[i, j, k] = t[j, k, i]
            assert_eq!(p.data[i * 6 + j * 3 + k], t.data[j * 12 + k * 4 + i]);
        }
        assert!(permute(&t, &[0, 1]).is_err());
        assert!(permute(&t, &[0, 1, 1]).is_err());
    }

    #[test]
    fn nonlinear_functions_are_exact() {
        let out = run(
            "model m { party a; party b; input x: fixed[3] private(a); let p = sigmoid(x); let t = tanh(x);
               let q = poly(x, [1, 2, 3]); let r = relu(x); let k = argmax(x); let c = clamp(x, -1, 1);
               output p to a; output t to a; output q to a; output r to a; output k to a; output c to b; }",
            &[("x", vec![3], vec![-2.0, 0.0, 3.0])],
        );
        assert!((out[0].1.data[0] - 0.11920292202211755).abs() < 1e-15);
        assert_eq!(out[0].1.data[1], 0.5);
        assert!((out[1].1.data[2] - 3f64.tanh()).abs() < 1e-15);
        assert_eq!(out[2].1.data, vec![9.0, 1.0, 34.0]);
        assert_eq!(out[3].1.data, vec![0.0, 0.0, 3.0]);
        assert_eq!(out[4].1.data, vec![2.0]);
        assert_eq!(out[5].1.data, vec![-1.0, 0.0, 1.0]);
    }

    #[test]
    fn the_logistic_function_saturates_without_overflow() {
        let out = run(
            "model m { party a; party b; input x: fixed[4] private(a); let p = sigmoid(x); output p to a; }",
            &[("x", vec![4], vec![-800.0, -40.0, 40.0, 800.0])],
        );
        let p = &out[0].1.data;
        assert_eq!(p[0], 0.0);
        assert!(p[1] > 0.0 && (p[1] - (-40f64).exp()).abs() < 1e-30);
        assert!((1.0 - p[2]) < 1e-15);
        assert_eq!(p[3], 1.0);
    }

    #[test]
    fn argmax_takes_the_first_of_equal_entries() {
        let out = run(
            "model m { party a; party b; input x: fixed[2, 4] private(a); let k = argmax(x); output k to a; }",
            &[("x", vec![2, 4], vec![1., 3., 3., 0., -1., -1., -1., -1.])],
        );
        assert_eq!(out[0].1.data, vec![1.0, 0.0]);
    }

    #[test]
    fn inputs_must_have_their_declared_shapes() {
        let src = "model m { party a; party b; input x: fixed[n, 2] private(a); input y: fixed[n] private(b);
                   let z = sum(x) + y; output z to a; }";
        let err = try_run(src, &[("x", vec![2, 2], vec![0.; 4])]).unwrap_err();
        assert_eq!(err, "missing input `y`");
        let err = try_run(
            src,
            &[("x", vec![2, 3], vec![0.; 6]), ("y", vec![2], vec![0.; 2])],
        )
        .unwrap_err();
        assert!(err.contains("input `x` has shape [2, 3]"), "{err}");
        let err = try_run(
            src,
            &[("x", vec![2, 2], vec![0.; 4]), ("y", vec![3], vec![0.; 3])],
        )
        .unwrap_err();
        assert!(
            err.contains("dimension `n` is 2 in an earlier input"),
            "{err}"
        );
    }
}
