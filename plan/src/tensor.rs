//! Plain tensors of reals: how inputs and outputs cross the boundary between
//! the command line, the reference interpreter and the runtime.

use crate::{Dim, InputSpec, Owner, Plan, Shape};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    pub shape: Vec<usize>,
    /// Row-major.
    pub data: Vec<f64>,
}

impl fmt::Debug for Tensor {
    // Tensors may hold private inputs: never print their values in debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor{:?}", self.shape)
    }
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f64>) -> Result<Tensor, String> {
        let Some(n) = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) else {
            return Err(format!("shape {shape:?} has more than 2^64 elements"));
        };
        if n != data.len() {
            return Err(format!(
                "shape {shape:?} needs {n} values, found {}",
                data.len()
            ));
        }
        Ok(Tensor { shape, data })
    }

    pub fn scalar(v: f64) -> Tensor {
        Tensor {
            shape: vec![],
            data: vec![v],
        }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The tensor borrowed, without a copy.
    pub fn view(&self) -> TensorRef<'_> {
        TensorRef {
            shape: &self.shape,
            data: &self.data,
        }
    }
}

/// A tensor borrowed from whoever owns its values: the shape and the
/// row-major values, `data.len()` the product of `shape` ([`TensorRef::new`]
/// checks it; [`Tensor::view`] has it). How a party's inputs reach the
/// runtime ([`bind_inputs`], `runtime::exec::run_party`), so that a caller
/// holding them elsewhere (a NumPy array, a chunk of a larger tensor) lends
/// them for the run without a copy. The executor only reads its inputs.
#[derive(Clone, Copy, PartialEq)]
pub struct TensorRef<'a> {
    pub shape: &'a [usize],
    /// Row-major.
    pub data: &'a [f64],
}

impl fmt::Debug for TensorRef<'_> {
    // As `Tensor`'s: never the values (they may be private inputs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TensorRef{:?}", self.shape)
    }
}

impl<'a> TensorRef<'a> {
    /// `data` (row-major) viewed as `shape`; an error if the number of
    /// values is not the shape's.
    pub fn new(shape: &'a [usize], data: &'a [f64]) -> Result<TensorRef<'a>, String> {
        match shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) {
            Some(n) if n == data.len() => Ok(TensorRef { shape, data }),
            Some(n) => Err(format!(
                "shape {shape:?} needs {n} values, found {}",
                data.len()
            )),
            None => Err(format!("shape {shape:?} has more than 2^64 elements")),
        }
    }

    /// An owned copy.
    pub fn to_tensor(&self) -> Tensor {
        Tensor {
            shape: self.shape.to_vec(),
            data: self.data.to_vec(),
        }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// SHA-256 of the shape and the values' bits: parties compare the
    /// digests of the public inputs each was given (public data only).
    pub fn digest(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update((self.shape.len() as u64).to_le_bytes());
        for d in self.shape {
            h.update((*d as u64).to_le_bytes());
        }
        for v in self.data {
            h.update(v.to_bits().to_le_bytes());
        }
        h.finalize().into()
    }
}

impl<'a> From<&'a Tensor> for TensorRef<'a> {
    fn from(t: &'a Tensor) -> TensorRef<'a> {
        t.view()
    }
}

impl<'a> From<&TensorRef<'a>> for TensorRef<'a> {
    fn from(t: &TensorRef<'a>) -> TensorRef<'a> {
        *t
    }
}

/// Views of owned tensors, by name: what [`bind_inputs`] and the runtime
/// take, from a map of [`Tensor`]s.
pub fn views(tensors: &BTreeMap<String, Tensor>) -> BTreeMap<String, TensorRef<'_>> {
    tensors.iter().map(|(k, t)| (k.clone(), t.view())).collect()
}

/// Why an input was rejected; always names the input, never its values.
#[derive(Clone, Debug, PartialEq)]
pub struct InputError {
    pub input: String,
    pub message: String,
    /// The row-major index of the value the error is about, if it is about
    /// one: the caller knows the file and can name its place there.
    pub at: Option<usize>,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some(i) => write!(f, "input `{}`: value #{i} {}", self.input, self.message),
            None => write!(f, "input `{}`: {}", self.input, self.message),
        }
    }
}

/// Check `given` against the plan's inputs that `party` supplies (every
/// input, for `None`): every one present, shapes agreeing (binding symbolic
/// dimensions such as `batch` consistently), values finite and inside the
/// input's range, and the dimensions within the plan's
/// [`Plan::dim_limits`]. Returns the bound dimensions.
pub fn bind_inputs(
    plan: &Plan,
    party: Option<u32>,
    given: &BTreeMap<String, TensorRef<'_>>,
) -> Result<BTreeMap<String, usize>, Vec<InputError>> {
    let dims = infer_dims(plan, party, given)?;
    let errors: Vec<InputError> = dims
        .iter()
        .filter_map(|(name, &size)| {
            let message = plan.check_dims([(name.as_str(), size as u64)]).err()?;
            let symbol = Dim::Symbol(name.clone());
            let input = plan
                .inputs
                .iter()
                .find(|i| given.contains_key(&i.name) && i.shape.0.contains(&symbol))
                .map_or_else(String::new, |i| i.name.clone());
            Some(InputError {
                input,
                message,
                at: None,
            })
        })
        .collect();
    if errors.is_empty() {
        Ok(dims)
    } else {
        Err(errors)
    }
}

/// As [`bind_inputs`], without the plan's dimension limits: the sizes the
/// data has, to compile a plan for them.
pub fn infer_dims(
    plan: &Plan,
    party: Option<u32>,
    given: &BTreeMap<String, TensorRef<'_>>,
) -> Result<BTreeMap<String, usize>, Vec<InputError>> {
    infer_dims_of(plan, party, given, |_| true)
}

/// The checks of [`bind_inputs`] on a party's parameters (its inputs of no
/// symbolic size, [`InputSpec::is_parameter`]) and the public inputs alone:
/// for a session run ahead of its data, whose other inputs come later.
pub fn check_parameters(
    plan: &Plan,
    party: u32,
    given: &BTreeMap<String, TensorRef<'_>>,
) -> Result<(), Vec<InputError>> {
    infer_dims_of(plan, Some(party), given, |i| {
        i.is_parameter() || i.owner == Owner::Public
    })
    .map(|_| ())
}

fn infer_dims_of(
    plan: &Plan,
    party: Option<u32>,
    given: &BTreeMap<String, TensorRef<'_>>,
    include: impl Fn(&InputSpec) -> bool,
) -> Result<BTreeMap<String, usize>, Vec<InputError>> {
    let mut dims: BTreeMap<String, usize> = BTreeMap::new();
    let mut errors = Vec::new();
    let wanted: Vec<&InputSpec> = plan
        .inputs
        .iter()
        .filter(|i| match (party, i.owner) {
            (None, _) | (_, Owner::Public) => true,
            (Some(p), Owner::Party(q)) => p == q,
        })
        .filter(|i| include(i))
        .collect();
    for name in given.keys() {
        if !wanted.iter().any(|i| &i.name == name) {
            let known: Vec<&str> = wanted.iter().map(|i| i.name.as_str()).collect();
            let owner = plan
                .inputs
                .iter()
                .find(|i| &i.name == name)
                .map(|i| i.owner);
            let message = match owner {
                Some(Owner::Party(q)) => {
                    format!("belongs to {}, not to this party", plan.party_name(q))
                }
                _ => format!(
                    "the model has no such input (its inputs here: {})",
                    known.join(", ")
                ),
            };
            errors.push(InputError {
                input: name.clone(),
                message,
                at: None,
            });
        }
    }
    for spec in wanted {
        let Some(t) = given.get(&spec.name) else {
            errors.push(InputError {
                input: spec.name.clone(),
                message: format!(
                    "missing: the model declares `input {}: fixed{}`; give it with --input {}=FILE",
                    spec.name,
                    if spec.shape.0.is_empty() {
                        String::new()
                    } else {
                        spec.shape.to_string()
                    },
                    spec.name
                ),
                at: None,
            });
            continue;
        };
        if let Err(m) = bind_shape(&spec.shape, t.shape, &mut dims) {
            errors.push(InputError {
                input: spec.name.clone(),
                message: m,
                at: None,
            });
            continue;
        }
        if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
            errors.push(InputError {
                input: spec.name.clone(),
                message: "is not a finite number (NaN or infinity)".into(),
                at: Some(i),
            });
            continue;
        }
        if !spec.columns.is_empty() {
            let outside = t.data.iter().enumerate().position(|(i, v)| {
                let (lo, hi) = spec.range_at(i);
                *v < lo || *v > hi
            });
            if let Some(i) = outside {
                let (lo, hi) = spec.range_at(i);
                errors.push(InputError {
                    input: spec.name.clone(),
                    message: format!(
                        "lies outside the declared range [{lo}, {hi}] of its column ({} of {})",
                        i % spec.columns.len() + 1,
                        spec.columns.len()
                    ),
                    at: Some(i),
                });
            }
            continue;
        }
        let (lo, hi) = spec.range;
        if let Some(i) = t.data.iter().position(|v| *v < lo || *v > hi) {
            let message = if spec.range_declared {
                format!("lies outside the declared range [{lo}, {hi}]")
            } else {
                format!(
                    "lies outside [{lo}, {hi}], the range the compiler assumes for an input \
                     declared without `in [lo, hi]`; declare the input's real range in the \
                     model (`input {}: ... in [lo, hi]`)",
                    spec.name
                )
            };
            errors.push(InputError {
                input: spec.name.clone(),
                message,
                at: Some(i),
            });
        }
    }
    if errors.is_empty() {
        Ok(dims)
    } else {
        Err(errors)
    }
}

fn bind_shape(
    spec: &Shape,
    got: &[usize],
    dims: &mut BTreeMap<String, usize>,
) -> Result<(), String> {
    if spec.0.len() != got.len() {
        return Err(format!(
            "expected shape {spec} ({} dimensions), the data has shape {got:?}",
            spec.0.len()
        ));
    }
    for (d, &n) in spec.0.iter().zip(got) {
        match d {
            Dim::Known(k) if *k as usize != n => {
                return Err(format!("expected shape {spec}, the data has shape {got:?}"))
            }
            Dim::Known(_) => {}
            Dim::Symbol(s) => match dims.get(s) {
                Some(&m) if m != n => {
                    return Err(format!(
                        "dimension `{s}` is {n} here but {m} in an earlier input"
                    ));
                }
                _ => {
                    if n == 0 {
                        return Err(format!("dimension `{s}` is 0: there is no data"));
                    }
                    dims.insert(s.clone(), n);
                }
            },
        }
    }
    Ok(())
}

/// A shape with its symbolic dimensions bound. An error names a dimension
/// that `dims` does not bind, or a shape whose element count does not fit a
/// `usize` (so that every later size computation on it is exact).
pub fn concrete(shape: &Shape, dims: &BTreeMap<String, usize>) -> Result<Vec<usize>, String> {
    let out = shape
        .0
        .iter()
        .map(|d| match d {
            Dim::Known(n) => usize::try_from(*n)
                .map_err(|_| format!("dimension {n} of {shape} is too large for this machine")),
            Dim::Symbol(s) => dims
                .get(s)
                .copied()
                .ok_or_else(|| format!("dimension `{s}` of {shape} is not bound by any input")),
        })
        .collect::<Result<Vec<usize>, String>>()?;
    if out
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .is_none()
    {
        let bound: Vec<String> = shape
            .0
            .iter()
            .filter_map(|d| match d {
                Dim::Symbol(s) => dims.get(s).map(|n| format!("{s} = {n}")),
                Dim::Known(_) => None,
            })
            .collect();
        return Err(format!(
            "a tensor of shape {shape}{} has more than 2^64 elements",
            if bound.is_empty() {
                String::new()
            } else {
                format!(" with {}", bound.join(", "))
            }
        ));
    }
    Ok(out)
}

// The operations of `ClearOp::apply`, on views: a clear operation reads a
// party's input as it reads any clear value, without a copy.
impl TensorRef<'_> {
    pub fn map(&self, f: impl Fn(f64) -> f64) -> Tensor {
        Tensor {
            shape: self.shape.to_vec(),
            data: self.data.iter().map(|x| f(*x)).collect(),
        }
    }

    /// Elementwise with suffix broadcasting: the shorter shape must be a
    /// suffix of the longer (a scalar always is).
    pub fn zip(
        &self,
        other: &TensorRef<'_>,
        f: impl Fn(f64, f64) -> f64,
    ) -> Result<Tensor, String> {
        let (long, short) = if self.shape.len() >= other.shape.len() {
            (self, other)
        } else {
            (other, self)
        };
        if !long.shape.ends_with(short.shape) || short.data.is_empty() {
            return Err(format!(
                "shapes {:?} and {:?} do not broadcast",
                self.shape, other.shape
            ));
        }
        let n = long.len();
        let data = (0..n)
            .map(|i| f(self.data[i % self.len()], other.data[i % other.len()]))
            .collect();
        Ok(Tensor {
            shape: long.shape.to_vec(),
            data,
        })
    }

    /// `[k]@[k]`, `[m,k]@[k]`, `[k]@[k,n]`, `[m,k]@[k,n]`, and a left
    /// operand of higher rank as rows: `[b, m, k]@[k,n]` is `[b, m, n]`.
    pub fn matmul(&self, other: &TensorRef<'_>) -> Result<Tensor, String> {
        let bad = || {
            format!(
                "cannot multiply shapes {:?} and {:?}",
                self.shape, other.shape
            )
        };
        let (m, k) = match self.shape {
            [] => return Err(bad()),
            [k] => (1, *k),
            [rows @ .., k] => (rows.iter().product(), *k),
        };
        let (k2, n) = match other.shape {
            [k2] => (*k2, 1),
            [k2, n] => (*k2, *n),
            _ => return Err(bad()),
        };
        if k != k2 {
            return Err(bad());
        }
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            let row = &self.data[i * k..(i + 1) * k];
            for (l, a) in row.iter().enumerate() {
                let brow = &other.data[l * n..(l + 1) * n];
                for (o, b) in out[i * n..(i + 1) * n].iter_mut().zip(brow) {
                    *o += a * b;
                }
            }
        }
        let mut shape = self.shape[..self.shape.len() - 1].to_vec();
        shape.extend_from_slice(&other.shape[1..]);
        Ok(Tensor { shape, data: out })
    }

    /// Axis `i` of the result is axis `perm[i]` of `self`; `perm` must be
    /// a permutation of the axes.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor, String> {
        let (data, shape) = permute_data(self.data, self.shape, perm)?;
        Ok(Tensor { shape, data })
    }

    /// Reduce the last axis.
    pub fn reduce_last(&self, f: impl Fn(&[f64]) -> f64) -> Result<Tensor, String> {
        let Some(&k) = self.shape.last() else {
            return Err("cannot reduce a scalar".into());
        };
        Ok(Tensor {
            shape: self.shape[..self.shape.len() - 1].to_vec(),
            data: self.data.chunks(k.max(1)).map(f).collect(),
        })
    }
}

/// Tensors (data, shape) joined along their last axis; every other
/// dimension equal. Any element type; an error, never a panic.
pub fn concat_last<T: Copy>(parts: &[(&[T], &[usize])]) -> Result<(Vec<T>, Vec<usize>), String> {
    let Some(((_, first), _)) = parts.split_first() else {
        return Err("nothing to concatenate".into());
    };
    let Some((_, outer)) = first.split_last() else {
        return Err("cannot concatenate scalars".into());
    };
    let mut widths = Vec::new();
    for (data, shape) in parts {
        match shape.split_last() {
            Some((w, o)) if o == outer && data.len() == shape.iter().product::<usize>() => {
                widths.push(*w)
            }
            _ => return Err(format!("cannot concatenate {shape:?} with {first:?}")),
        }
    }
    let rows: usize = outer.iter().product();
    let mut out = Vec::with_capacity(rows * widths.iter().sum::<usize>());
    for r in 0..rows {
        for ((data, _), w) in parts.iter().zip(&widths) {
            out.extend_from_slice(&data[r * w..(r + 1) * w]);
        }
    }
    let mut shape = outer.to_vec();
    shape.push(widths.iter().sum());
    Ok((out, shape))
}

/// Entries `start..start + len` of the last axis. Any element type; an
/// error, never a panic.
pub fn narrow_last<T: Copy>(
    data: &[T],
    shape: &[usize],
    start: usize,
    len: usize,
) -> Result<(Vec<T>, Vec<usize>), String> {
    let Some((&w, outer)) = shape.split_last() else {
        return Err("cannot narrow a scalar".into());
    };
    if start.checked_add(len).is_none_or(|end| end > w)
        || data.len() != shape.iter().product::<usize>()
    {
        return Err(format!(
            "cannot take {len} entries from {start} of {shape:?}"
        ));
    }
    let rows: usize = outer.iter().product();
    let out = (0..rows)
        .flat_map(|r| data[r * w + start..r * w + start + len].iter().copied())
        .collect();
    let mut out_shape = outer.to_vec();
    out_shape.push(len);
    Ok((out, out_shape))
}

/// Reorder the axes of row-major `data` of `shape`: axis `i` of the result
/// is axis `perm[i]` of the input. Any element type (reals, ring elements);
/// an error, never a panic, when `perm` is not a permutation of the axes or
/// `data` does not fill `shape`.
pub fn permute_data<T: Copy>(
    data: &[T],
    shape: &[usize],
    perm: &[usize],
) -> Result<(Vec<T>, Vec<usize>), String> {
    let rank = shape.len();
    let mut seen = vec![false; rank];
    let is_perm = perm.len() == rank
        && perm
            .iter()
            .all(|&a| a < rank && !std::mem::replace(&mut seen[a], true));
    if !is_perm {
        return Err(format!(
            "{perm:?} is not a permutation of the axes of {shape:?}"
        ));
    }
    if shape.iter().product::<usize>() != data.len() {
        return Err(format!("{} values do not fill {shape:?}", data.len()));
    }
    let out_shape: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
    // Row-major strides of the input, taken in the result's axis order.
    let mut strides = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    let by: Vec<usize> = perm.iter().map(|&a| strides[a]).collect();
    let mut out = Vec::with_capacity(data.len());
    let mut index = vec![0usize; rank];
    for _ in 0..data.len() {
        out.push(data[index.iter().zip(&by).map(|(i, s)| i * s).sum::<usize>()]);
        // Advance the result's row-major index.
        for i in (0..rank).rev() {
            index[i] += 1;
            if index[i] < out_shape[i] {
                break;
            }
            index[i] = 0;
        }
    }
    Ok((out, out_shape))
}

impl crate::ClearOp {
    /// Apply the operation exactly in f64 (sigmoid and tanh exact).
    pub fn apply(&self, args: &[TensorRef<'_>]) -> Result<Tensor, String> {
        use crate::ClearOp::*;
        let a = args.first().ok_or("missing operand")?;
        let b = || {
            args.get(1)
                .ok_or_else(|| "missing second operand".to_string())
        };
        match self {
            Neg => Ok(a.map(|x| -x)),
            Add => a.zip(b()?, |x, y| x + y),
            Sub => a.zip(b()?, |x, y| x - y),
            Mul => a.zip(b()?, |x, y| x * y),
            Max => a.zip(b()?, f64::max),
            Min => a.zip(b()?, f64::min),
            MatMul => a.matmul(b()?),
            Sum => a.reduce_last(|r| r.iter().sum()),
            Mean => a.reduce_last(|r| r.iter().sum::<f64>() / r.len() as f64),
            MaxReduce => a.reduce_last(|r| r.iter().cloned().fold(f64::NEG_INFINITY, f64::max)),
            MinReduce => a.reduce_last(|r| r.iter().cloned().fold(f64::INFINITY, f64::min)),
            Argmax => a.reduce_last(|r| {
                let mut best = 0;
                for (j, x) in r.iter().enumerate() {
                    if *x > r[best] {
                        best = j;
                    }
                }
                best as f64
            }),
            Square => Ok(a.map(|x| x * x)),
            Sigmoid => Ok(a.map(|x| 1.0 / (1.0 + (-x).exp()))),
            Tanh => Ok(a.map(f64::tanh)),
            Exp => Ok(a.map(f64::exp)),
            Reciprocal => Ok(a.map(f64::recip)),
            Log => Ok(a.map(f64::ln)),
            Rsqrt => Ok(a.map(|x| x.sqrt().recip())),
            Concat => {
                let parts: Vec<(&[f64], &[usize])> =
                    args.iter().map(|t| (t.data, t.shape)).collect();
                let (data, shape) = concat_last(&parts)?;
                Ok(Tensor { shape, data })
            }
            Narrow { start, len } => {
                let (data, shape) = narrow_last(a.data, a.shape, *start, *len)?;
                Ok(Tensor { shape, data })
            }
            Poly(c) => Ok(a.map(|x| c.iter().rev().fold(0.0, |acc, k| acc * x + k))),
            Relu => Ok(a.map(|x| x.max(0.0))),
            Clamp(lo, hi) => Ok(a.map(|x| x.clamp(*lo, *hi))),
            Permute(perm) => a.permute(perm),
            Im2col(w) => {
                let (data, shape) = crate::im2col_data(a.data, a.shape, w, 0.0)?;
                Ok(Tensor { shape, data })
            }
            // The destination's shape is the register's: the executor sets it.
            Reshape => Ok(a.to_tensor()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_whose_element_count_overflows_is_an_error_not_a_panic() {
        let big = 1usize << 40;
        let err = Tensor::new(vec![big, big], vec![]).unwrap_err();
        assert!(err.contains("more than 2^64 elements"), "{err}");

        let shape = Shape(vec![Dim::Symbol("batch".into()), Dim::Known(1 << 40)]);
        let dims = BTreeMap::from([("batch".to_string(), 1usize << 30)]);
        let err = concrete(&shape, &dims).unwrap_err();
        assert_eq!(
            err,
            "a tensor of shape [batch, 1099511627776] with batch = 1073741824 has more than 2^64 elements"
        );
        let err = concrete(&shape, &BTreeMap::new()).unwrap_err();
        assert!(
            err.contains("`batch`") && err.contains("not bound"),
            "{err}"
        );
        let dims = BTreeMap::from([("batch".to_string(), 3usize)]);
        assert_eq!(concrete(&shape, &dims), Ok(vec![3, 1 << 40]));
    }

    #[test]
    fn a_view_borrows_the_values_and_refuses_a_shape_they_do_not_fill() {
        let t = Tensor::new(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let v = t.view();
        assert!(std::ptr::eq(v.data, &t.data[..]));
        assert_eq!(v.to_tensor(), t);
        // Rows 1..2 of a larger buffer, as the chunked runs lend them.
        let rows = TensorRef::new(&[1, 3], &t.data[3..]).unwrap();
        assert_eq!(rows.to_tensor().data, vec![4.0, 5.0, 6.0]);
        assert_ne!(rows.digest(), v.digest());
        let err = TensorRef::new(&[2, 2], &t.data).unwrap_err();
        assert_eq!(err, "shape [2, 2] needs 4 values, found 6");
        let big = [1usize << 40, 1 << 40];
        assert!(TensorRef::new(&big, &[])
            .unwrap_err()
            .contains("more than 2^64"));
        assert_eq!(format!("{v:?}"), "TensorRef[2, 3]");
    }

    #[test]
    fn permute_reorders_axes_and_refuses_what_is_not_a_permutation() {
        // [2, 3] transposed.
        let t = Tensor::new(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let p = t.view().permute(&[1, 0]).unwrap();
        assert_eq!(p.shape, vec![3, 2]);
        assert_eq!(p.data, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        assert_eq!(p.view().permute(&[1, 0]).unwrap(), t);
        // [2, 2, 2]: result axes (2, 0, 1); element [i, j, k] = input [j, k, i].
        let c = Tensor::new(vec![2, 2, 2], (0..8).map(f64::from).collect()).unwrap();
        let q = c.view().permute(&[2, 0, 1]).unwrap();
        for (i, j, k) in (0..8).map(|n| (n / 4, n / 2 % 2, n % 2)) {
            assert_eq!(q.data[i * 4 + j * 2 + k], c.data[j * 4 + k * 2 + i]);
        }
        for bad in [&[0, 0][..], &[0][..], &[0, 2][..], &[1, 0, 2][..]] {
            assert!(t.view().permute(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Tensor::scalar(2.0).view().permute(&[]).unwrap(),
            Tensor::scalar(2.0)
        );
    }
}
