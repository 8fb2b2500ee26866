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
            Op::Log(a) => map(get(*a), f64::ln),
            Op::Rsqrt(a) => map(get(*a), |x| 1.0 / x.sqrt()),
            // Row by row along the last axis: each operand's row in turn.
            Op::Concat(parts) => {
                let ts: Vec<&Tensor> = parts.iter().map(|p| get(*p)).collect();
                let rows = ts[0].data.len() / ts[0].shape.last().copied().unwrap_or(1).max(1);
                let mut data = Vec::new();
                for r in 0..rows {
                    for t in &ts {
                        let w = t.shape.last().copied().unwrap_or(1);
                        data.extend_from_slice(&t.data[r * w..(r + 1) * w]);
                    }
                }
                Tensor {
                    shape: concrete(&v.shape, &dims)?,
                    data,
                }
            }
            Op::Narrow(a, start, len) => {
                let t = get(*a);
                let shape = concrete(&v.shape, &dims)?;
                let (w, n) = (t.shape.last().copied().unwrap_or(1), *len as usize);
                let s = *start as usize;
                let data = (t.data.chunks(w.max(1)))
                    .flat_map(|row| row[s..s + n].iter().copied())
                    .collect();
                Tensor { shape, data }
            }
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
            Op::Im2col(a, w) => patches(get(*a), w, &concrete(&v.shape, &dims)?)?,
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
            value: match &o.labels {
                Some(labels) => {
                    let mut t = value(o.value);
                    for v in &mut t.data {
                        *v = labels[*v as usize];
                    }
                    t
                }
                None => value(o.value),
            },
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
    if spec.labels.is_some() {
        // Labels compare as the indices they stand for.
        let index = |t: &Tensor| Tensor {
            shape: t.shape.clone(),
            data: t.data.iter().map(|v| spec.index_of(*v)).collect(),
        };
        let unlabelled = plan::OutputSpec {
            labels: None,
            ..spec.clone()
        };
        let want = Expected {
            value: index(&want.value),
            ..want.clone()
        };
        return deviations(&unlabelled, &index(got), &want);
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

/// Elementwise `f` with the language's broadcasting: equal shapes, a scalar
/// with anything, or an operand whose shape is the other's last
/// dimensions (a vector `[n]` with a matrix `[m, n]`, `[k, n]` with
/// `[b, k, n]`), applied at every index of the leading ones.
fn elementwise(a: &Tensor, b: &Tensor, f: impl Fn(f64, f64) -> f64) -> Result<Tensor, String> {
    let long = if a.shape.len() >= b.shape.len() { a } else { b };
    let short = if std::ptr::eq(long, a) { b } else { a };
    if long.shape[long.shape.len() - short.shape.len()..] != short.shape[..] {
        return Err(format!(
            "reference interpreter: shapes {:?} and {:?} do not broadcast",
            a.shape, b.shape
        ));
    }
    // Entry i of the result is entry i of the longer operand and entry
    // i mod |short| of the shorter (its dimensions are the trailing ones).
    let n = short.data.len().max(1);
    let data = (0..long.data.len())
        .map(|i| {
            let (x, y) = (long.data[i], short.data[i % n]);
            if std::ptr::eq(long, a) {
                f(x, y)
            } else {
                f(y, x)
            }
        })
        .collect();
    Ok(Tensor {
        shape: long.shape.clone(),
        data,
    })
}

/// `a @ b`, by the table in the language reference: `[n]@[n]` → scalar,
/// `[m,n]@[n]` → `[m]`, `[n]@[n,k]` → `[k]`, `[m,n]@[n,k]` → `[m,k]`.
fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor, String> {
    // A left operand of higher rank is a stack of rows: `[b, m, n] @ [n, k]`.
    let (m, n, shape_a) = match a.shape.as_slice() {
        [n] => (1, *n, vec![]),
        [rows @ .., n] if !rows.is_empty() => (rows.iter().product(), *n, rows.to_vec()),
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

/// The patches of `a` (`[batch, C, S...]`) under the window `w`, as the
/// language reference defines `conv2d`'s: for output position `o` (per
/// spatial axis `i`, `o_i` from 0) and kernel offset `j`, input position
/// `o_i·stride_i + j_i·dilation_i − padding_i`, zero outside the input;
/// columns run over the group's channels, then the kernel offsets
/// (row-major), and each of a group's `per_group` output channels gets
/// its own copy. An edge window (max pooling) reads the nearest input
/// position instead of zero. `want` is the result's shape (the checker's).
fn patches(a: &Tensor, w: &plan::Window, want: &[usize]) -> Result<Tensor, String> {
    let r = w.kernel.len();
    if a.shape.len() != r + 2 || want.len() < r + 2 {
        return Err(format!("reference interpreter: windows over {:?}", a.shape));
    }
    let (c, spatial) = (a.shape[1], &a.shape[2..]);
    let out_spatial = &want[1..=r];
    let channels = c / w.groups;
    let copies = if w.groups > 1 { w.per_group } else { 1 };
    // Row-major offset of a coordinate in `dims`, and the coordinate of an offset.
    let coordinate = |mut i: usize, dims: &[usize]| -> Vec<usize> {
        let mut out = vec![0; dims.len()];
        for k in (0..dims.len()).rev() {
            out[k] = i % dims[k];
            i /= dims[k];
        }
        out
    };
    let positions: usize = out_spatial.iter().product();
    let offsets: usize = w.kernel.iter().product();
    let mut data = Vec::new();
    for b in 0..a.shape[0] {
        for p in 0..positions {
            let o = coordinate(p, out_spatial);
            for g in 0..w.groups {
                for _ in 0..copies {
                    for ch in g * channels..(g + 1) * channels {
                        for j in 0..offsets {
                            let jj = coordinate(j, &w.kernel);
                            let mut index = Some(b * c + ch);
                            for i in 0..r {
                                let mut x = (o[i] * w.stride[i] + jj[i] * w.dilation[i]) as i64
                                    - w.padding[i] as i64;
                                if w.edge {
                                    x = x.clamp(0, spatial[i] as i64 - 1);
                                }
                                index = match index {
                                    Some(at) if x >= 0 && (x as usize) < spatial[i] => {
                                        Some(at * spatial[i] + x as usize)
                                    }
                                    _ => None,
                                };
                            }
                            data.push(index.map_or(0.0, |at| a.data[at]));
                        }
                    }
                }
            }
        }
    }
    Ok(Tensor {
        shape: want.to_vec(),
        data,
    })
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

    /// PyTorch's definition of a convolution, directly: `out[b, o, p...] =
    /// bias[o] + Σ_{c, j...} x[b, g·C/groups + c, p·stride + j·dilation −
    /// padding] · w[o, c, j...]`, zero outside `x`, `g = o / (Cout/groups)`.
    /// `spatial` holds (size, kernel, stride, padding, dilation) per axis.
    #[allow(clippy::too_many_arguments)]
    fn direct_conv(
        x: &[f64],
        w: &[f64],
        bias: &[f64],
        batch: usize,
        c: usize,
        cout: usize,
        groups: usize,
        spatial: &[(usize, usize, usize, usize, usize)],
    ) -> Vec<f64> {
        let outs: Vec<usize> = spatial
            .iter()
            .map(|&(n, k, s, p, d)| (n + 2 * p - d * (k - 1) - 1) / s + 1)
            .collect();
        let (cg, og) = (c / groups, cout / groups);
        let positions: usize = outs.iter().product();
        let offsets: usize = spatial.iter().map(|t| t.1).product();
        let mut out = Vec::new();
        for b in 0..batch {
            for o in 0..cout {
                for p in 0..positions {
                    let mut acc = bias.get(o).copied().unwrap_or(0.0);
                    for ci in 0..cg {
                        for j in 0..offsets {
                            // Unravel p and j per axis, last axis fastest.
                            let (mut pp, mut jj) = (p, j);
                            let mut xi = Some(b * c + (o / og) * cg + ci);
                            let mut wi = o * cg + ci;
                            let mut coords = Vec::new();
                            for (a, &(_, k, _, _, _)) in spatial.iter().enumerate().rev() {
                                coords.push((a, pp % outs[a], jj % k));
                                pp /= outs[a];
                                jj /= k;
                            }
                            coords.reverse();
                            for (a, op, jo) in coords {
                                let (n, k, s, pad, d) = spatial[a];
                                let at = (op * s + jo * d) as i64 - pad as i64;
                                xi = xi
                                    .filter(|_| at >= 0 && (at as usize) < n)
                                    .map(|i| i * n + at as usize);
                                wi = wi * k + jo;
                            }
                            if let Some(i) = xi {
                                acc += x[i] * w[wi];
                            }
                        }
                    }
                    out.push(acc);
                }
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// `conv2d` and `conv1d` as the checker writes them out (patches,
        /// a product, a bias, channels moved back) compute the convolution
        /// as PyTorch defines it, for random shapes and parameters.
        #[test]
        fn convolutions_compute_pytorchs_definition(
            two in proptest::bool::ANY,
            batch in 1usize..3,
            groups in 1usize..4,
            cg in 1usize..3,
            og in 1usize..3,
            axes in proptest::collection::vec((1usize..4, 1usize..3, 0usize..3, 1usize..3, 0usize..4), 2),
            with_bias in proptest::bool::ANY,
            seed in 0u64..1000,
        ) {
            let spatial: Vec<(usize, usize, usize, usize, usize)> = axes
                .iter()
                .take(if two { 2 } else { 1 })
                // size = the dilated kernel's reach, less twice the padding, plus some.
                .map(|&(k, s, p, d, more)| {
                    let reach = d * (k - 1) + 1;
                    (reach.saturating_sub(2 * p).max(1) + more, k, s, p.min(k.saturating_sub(1)), d)
                })
                .collect();
            let (c, cout) = (cg * groups, og * groups);
            let per_axis = |f: fn(&(usize, usize, usize, usize, usize)) -> usize| {
                format!("[{}]", spatial.iter().map(|t| f(t).to_string()).collect::<Vec<_>>().join(", "))
            };
            let dims = |v: Vec<usize>| v.iter().map(usize::to_string).collect::<Vec<_>>().join(", ");
            let xshape: Vec<usize> = [batch, c].into_iter().chain(spatial.iter().map(|t| t.0)).collect();
            let wshape: Vec<usize> = [cout, cg].into_iter().chain(spatial.iter().map(|t| t.1)).collect();
            let f = if two { "conv2d" } else { "conv1d" };
            let b = if with_bias { "b, " } else { "" };
            let src = format!(
                "model m {{ party a; party q; input x: fixed[{}] private(a); input w: fixed[{}] private(q);
                   input b: fixed[{cout}] private(q);
                   let y = {f}(x, w, {b}stride: {}, padding: {}, dilation: {}, groups: {groups});
                   let s = sum(b) * 0; output y to a; output s to a; }}",
                dims(xshape.clone()), dims(wshape.clone()),
                per_axis(|t| t.2), per_axis(|t| t.3), per_axis(|t| t.4),
            );
            let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let mut draw = |n: usize| -> Vec<f64> {
                (0..n).map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((state >> 33) % 17) as f64 - 8.0
                }).collect()
            };
            let xd = draw(xshape.iter().product());
            let wd = draw(wshape.iter().product());
            let bd = draw(cout);
            let out = try_run(&src, &[("x", xshape, xd.clone()), ("w", wshape, wd.clone()), ("b", vec![cout], bd.clone())])
                .map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{src}: {e}")))?;
            let bias = if with_bias { bd } else { vec![] };
            let want = direct_conv(&xd, &wd, &bias, batch, c, cout, groups, &spatial);
            proptest::prop_assert_eq!(&out[0].1.data, &want, "{}", src);
        }
    }

    /// PyTorch's pooling, directly: each window's maximum over the input
    /// entries it covers (padding is −∞), or its sum over K with padded
    /// zeros counted. `spatial` holds (size, kernel, stride, padding,
    /// dilation). With `ceil`, PyTorch's `ceil_mode=True`: the output size
    /// rounded up, less one where the last window would start beyond the
    /// input and its left padding; a mean divides by the window's entries
    /// within the input and its padding (`count_include_pad`).
    fn direct_pool(
        x: &[f64],
        batch_channels: usize,
        spatial: &[(usize, usize, usize, usize, usize)],
        max: bool,
        ceil: bool,
    ) -> Vec<f64> {
        let outs: Vec<usize> = spatial
            .iter()
            .map(|&(n, k, s, p, d)| {
                let reach = (n + 2 * p - (d * (k - 1) + 1)) as f64 / s as f64;
                let out = if ceil { reach.ceil() } else { reach.floor() } as usize + 1;
                if ceil && (out - 1) * s >= n + p {
                    out - 1
                } else {
                    out
                }
            })
            .collect();
        let positions: usize = outs.iter().product();
        let offsets: usize = spatial.iter().map(|t| t.1).product();
        let plane: usize = spatial.iter().map(|t| t.0).product();
        let mut out = Vec::new();
        for bc in 0..batch_channels {
            for p in 0..positions {
                let mut best = f64::NEG_INFINITY;
                let mut sum = 0.0;
                // Offsets within the input and its padding (the divisor).
                let mut within = 0usize;
                for j in 0..offsets {
                    let (mut pp, mut jj) = (p, j);
                    let mut coords = Vec::new();
                    for a in (0..spatial.len()).rev() {
                        coords.push((a, pp % outs[a], jj % spatial[a].1));
                        pp /= outs[a];
                        jj /= spatial[a].1;
                    }
                    coords.reverse();
                    let mut at = Some(0usize);
                    let mut padded = true;
                    for (a, o, jo) in coords {
                        let (n, _, s, pad, d) = spatial[a];
                        let i = (o * s + jo * d) as i64 - pad as i64;
                        padded &= i < (n + pad) as i64;
                        at = at
                            .filter(|_| i >= 0 && (i as usize) < n)
                            .map(|f| f * n + i as usize);
                    }
                    within += padded as usize;
                    if let Some(f) = at {
                        let v = x[bc * plane + f];
                        best = best.max(v);
                        sum += v;
                    }
                }
                out.push(if max { best } else { sum / within as f64 });
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// `max_pool2d`, `avg_pool2d` and the 1-d forms as the checker
        /// writes them out compute PyTorch's definitions (−∞ padding for
        /// the maximum, padded zeros counted in the mean), for random
        /// shapes and windows, after a relu too (which the checker moves
        /// after a max pooling).
        #[test]
        fn poolings_compute_pytorchs_definition(
            two in proptest::bool::ANY,
            max in proptest::bool::ANY,
            relu in proptest::bool::ANY,
            ceil in proptest::bool::ANY,
            batch in 1usize..3,
            c in 1usize..4,
            axes in proptest::collection::vec((1usize..4, 1usize..4, 0usize..2, 0usize..4, 1usize..3), 2),
            seed in 0u64..1000,
        ) {
            // Dilation too, except for max pooling with padding or
            // ceil_mode (refused).
            let spatial: Vec<(usize, usize, usize, usize, usize)> = axes
                .iter()
                .take(if two { 2 } else { 1 })
                .map(|&(k, s, p, more, d)| {
                    let p = p.min(k / 2);
                    let d = if max && (p > 0 || ceil) { 1 } else { d };
                    (((d * (k - 1) + 1).saturating_sub(2 * p)).max(1) + more, k, s, p, d)
                })
                .collect();
            let list = |f: fn(&(usize, usize, usize, usize, usize)) -> usize| {
                format!("[{}]", spatial.iter().map(|t| f(t).to_string()).collect::<Vec<_>>().join(", "))
            };
            let xshape: Vec<usize> = [batch, c].into_iter().chain(spatial.iter().map(|t| t.0)).collect();
            let f = format!("{}_pool{}d", if max { "max" } else { "avg" }, spatial.len());
            let operand = if relu { "relu(x)" } else { "x" };
            let src = format!(
                "model m {{ party a; party q; input x: fixed[{}] private(a);
                   let y = {f}({operand}, {}, stride: {}, padding: {}, dilation: {}, ceil_mode: {ceil}); output y to a; }}",
                xshape.iter().map(usize::to_string).collect::<Vec<_>>().join(", "),
                list(|t| t.1), list(|t| t.2), list(|t| t.3), list(|t| t.4),
            );
            let checked = crate::check_source(&src);
            proptest::prop_assert!(checked.diagnostics.is_empty(), "{}: {:?}", src, checked.diagnostics);
            let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let xd: Vec<f64> = (0..xshape.iter().product::<usize>()).map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 33) % 17) as f64 - 8.0
            }).collect();
            let out = try_run(&src, &[("x", xshape, xd.clone())])
                .map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{src}: {e}")))?;
            let input: Vec<f64> = if relu { xd.iter().map(|v| v.max(0.0)).collect() } else { xd };
            let want = direct_pool(&input, batch * c, &spatial, max, ceil);
            if ceil && !max {
                // 1/count is a rounded constant: equal up to rounding.
                proptest::prop_assert_eq!(out[0].1.data.len(), want.len());
                for (a, b) in out[0].1.data.iter().zip(&want) {
                    proptest::prop_assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{}: {} vs {}", src, a, b);
                }
            } else {
                proptest::prop_assert_eq!(&out[0].1.data, &want, "{}", src);
            }
            // relu then max pooling: the comparisons of the relu run on the pooled values.
            let model = checked.model.expect("checked");
            if relu && max {
                proptest::prop_assert!(model.values().iter().any(|v| matches!(v.op, Op::Relu(a) if matches!(model.value(a).op, Op::MaxReduce(_)))));
            }
        }
    }

    /// `batch_norm` as the checker writes it out is PyTorch's inference
    /// formula, `(x − mean)/√(var + eps)·weight + bias` per channel, on a
    /// dense layer's output and on a convolution's (where it is folded into
    /// the weights, which the same party holds), and on an input (not
    /// folded).
    #[test]
    fn batch_norm_is_pytorchs_inference_formula() {
        let stats = [
            ("m", vec![3], vec![0.5, -1.0, 2.0]),
            ("v", vec![3], vec![1.0, 0.25, 4.0]),
            ("g", vec![3], vec![2.0, -1.0, 0.5]),
            ("c", vec![3], vec![0.1, 0.2, -0.3]),
        ];
        let bn = |x: f64, ch: usize, affine: bool| {
            let y = (x - stats[0].2[ch]) / (stats[1].2[ch] + 1e-3f64).sqrt();
            if affine {
                y * stats[2].2[ch] + stats[3].2[ch]
            } else {
                y
            }
        };
        // Dense: [n, 3], folded into w and b (all the server's).
        let src = "model m { party a; party s; input x: fixed[n, 2] private(a); input w: fixed[2, 3] private(s);
            input b: fixed[3] private(s); input m: fixed[3] private(s); input v: fixed[3] private(s) in [0.1, 8];
            input g: fixed[3] private(s); input c: fixed[3] private(s);
            let y = batch_norm(x @ w + b, m, v, g, c, eps: 1e-3); let z = batch_norm(x @ w, m, v, eps: 1e-3);
            output y to a; output z to a; }";
        let model = crate::check_source(src).model.unwrap();
        let y = model.value(model.outputs()[0].value);
        let Op::Add(p, _) = y.op else {
            panic!("{:?}", y.op)
        };
        let Op::MatMul(_, w2) = model.value(p).op else {
            panic!("not folded")
        };
        assert!(
            matches!(model.value(w2).op, Op::Mul(..)),
            "the weights carry the scale"
        );
        let mut inputs = vec![
            ("x", vec![2, 2], vec![1.0, -2.0, 0.5, 3.0]),
            ("w", vec![2, 3], vec![1.0, 0.5, -1.0, 2.0, 0.0, 1.5]),
            ("b", vec![3], vec![0.3, -0.2, 0.1]),
        ];
        inputs.extend(stats.iter().cloned());
        let out = run(src, &inputs);
        for (r, row) in [[1.0, -2.0], [0.5, 3.0]].iter().enumerate() {
            for ch in 0..3 {
                let wx = row[0] * inputs[1].2[ch] + row[1] * inputs[1].2[3 + ch];
                let want_y = bn(wx + inputs[2].2[ch], ch, true);
                let want_z = bn(wx, ch, false);
                assert!((out[0].1.data[r * 3 + ch] - want_y).abs() < 1e-12);
                assert!((out[1].1.data[r * 3 + ch] - want_z).abs() < 1e-12);
            }
        }
        // Convolution, folded; and an input image, with the statistics of
        // another party (not folded: x·scale + shift along dimension 1).
        let src = "model m { party a; party s; input x: fixed[n, 1, 3, 3] private(a); input w: fixed[3, 1, 2, 2] private(s);
            input m: fixed[3] private(s); input v: fixed[3] private(s) in [0.1, 8];
            input g: fixed[3] private(s); input c: fixed[3] private(s);
            input x3: fixed[n, 3, 2] private(a);
            let y = batch_norm(conv2d(x, w), m, v, g, c, eps: 1e-3);
            let z = batch_norm(x3, m, v, g, c, eps: 1e-3);
            output y to a; output z to a; }";
        let model = crate::check_source(src).model.unwrap();
        let y = model.value(model.outputs()[0].value);
        let Op::Permute(add, _) = y.op else {
            panic!("{:?}", y.op)
        };
        let Op::Add(p, _) = model.value(add).op else {
            panic!()
        };
        let Op::MatMul(_, w2) = model.value(p).op else {
            panic!("not folded")
        };
        assert!(matches!(model.value(w2).op, Op::Mul(..)));
        let x: Vec<f64> = (0..9).map(|i| i as f64 - 4.0).collect();
        let w: Vec<f64> = (0..12).map(|i| (i as f64 - 6.0) / 4.0).collect();
        let x3: Vec<f64> = (0..6).map(|i| i as f64 * 0.5 - 1.0).collect();
        let mut inputs = vec![
            ("x", vec![1, 1, 3, 3], x.clone()),
            ("w", vec![3, 1, 2, 2], w.clone()),
            ("x3", vec![1, 3, 2], x3.clone()),
        ];
        inputs.extend(stats.iter().cloned());
        let out = run(src, &inputs);
        for ch in 0..3 {
            for (i, j) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let mut acc = 0.0;
                for (di, dj) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    acc += x[(i + di) * 3 + j + dj] * w[ch * 4 + di * 2 + dj];
                }
                let got = out[0].1.data[ch * 4 + i * 2 + j];
                assert!(
                    (got - bn(acc, ch, true)).abs() < 1e-12,
                    "{got} {}",
                    bn(acc, ch, true)
                );
            }
            for l in 0..2 {
                assert!((out[1].1.data[ch * 2 + l] - bn(x3[ch * 2 + l], ch, true)).abs() < 1e-12);
            }
        }
    }

    /// `concat` along any axis and `narrow` (PyTorch's `cat` and
    /// `narrow`), as the checker writes them out, index by index.
    #[test]
    fn concat_and_narrow_are_pytorchs() {
        let src = "model m { party a; party b; input x: fixed[n, 2, 3] private(a); input y: fixed[n, 1, 3] private(b);
            input z: fixed[n, 2, 2] private(b);
            let c1 = concat(x, y, axis: 1); let c2 = cat(x, z, x); let c0 = concat(x, axis: 1);
            let s = narrow(x, 2, 1, 2); let t = narrow(c1, 1, 1, 2);
            output c1 to a; output c2 to a; output c0 to a; output s to a; output t to a; }";
        let x: Vec<f64> = (0..12).map(f64::from).collect();
        let y: Vec<f64> = (100..106).map(f64::from).collect();
        let z: Vec<f64> = (200..208).map(f64::from).collect();
        let out = run(
            src,
            &[
                ("x", vec![2, 2, 3], x.clone()),
                ("y", vec![2, 1, 3], y.clone()),
                ("z", vec![2, 2, 2], z.clone()),
            ],
        );
        let at = |t: &[f64], dims: [usize; 3], i: [usize; 3]| {
            t[(i[0] * dims[1] + i[1]) * dims[2] + i[2]]
        };
        for b in 0..2 {
            for r in 0..3 {
                for col in 0..3 {
                    let want = if r < 2 {
                        at(&x, [2, 2, 3], [b, r, col])
                    } else {
                        at(&y, [2, 1, 3], [b, 0, col])
                    };
                    assert_eq!(at(&out[0].1.data, [2, 3, 3], [b, r, col]), want);
                }
                if r < 2 {
                    for col in 0..8 {
                        let want = match col {
                            0..3 => at(&x, [2, 2, 3], [b, r, col]),
                            3..5 => at(&z, [2, 2, 2], [b, r, col - 3]),
                            _ => at(&x, [2, 2, 3], [b, r, col - 5]),
                        };
                        assert_eq!(at(&out[1].1.data, [2, 2, 8], [b, r, col]), want);
                    }
                    for col in 0..2 {
                        assert_eq!(
                            at(&out[3].1.data, [2, 2, 2], [b, r, col]),
                            at(&x, [2, 2, 3], [b, r, col + 1])
                        );
                    }
                    for col in 0..3 {
                        let want = if r == 0 {
                            at(&x, [2, 2, 3], [b, 1, col])
                        } else {
                            at(&y, [2, 1, 3], [b, 0, col])
                        };
                        assert_eq!(at(&out[4].1.data, [2, 2, 3], [b, r, col]), want);
                    }
                }
            }
        }
        assert_eq!(out[2].1.data, x);
        assert_eq!(out[1].1.shape, vec![2, 2, 8]);
    }
}
