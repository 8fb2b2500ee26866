//! Constant tensors known at import time: weights, attributes and the
//! results of shape arithmetic, folded before anything reaches the model.

use crate::proto::{tensor_proto::DataType, TensorProto};
use crate::ImportError;

/// A constant: row-major values (integers are exact up to 2^53) and its shape.
/// A dimension that is the data's batch size, unknown at import time, appears
/// in the results of `Shape` as [`BATCH`].
#[derive(Clone, Debug, PartialEq)]
pub struct Const {
    pub dims: Vec<usize>,
    pub data: Vec<f64>,
}

/// Stands for the batch size in shape arithmetic (the output of `Shape`).
pub const BATCH: f64 = -7.0e15;

impl Const {
    pub fn scalar(v: f64) -> Const {
        Const {
            dims: vec![],
            data: vec![v],
        }
    }

    pub fn vector(v: Vec<f64>) -> Const {
        Const {
            dims: vec![v.len()],
            data: v,
        }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// One value, whatever the rank (`[1, 1]` counts).
    pub fn as_scalar(&self) -> Option<f64> {
        (self.data.len() == 1).then(|| self.data[0])
    }

    pub fn ints(&self) -> Vec<i64> {
        self.data.iter().map(|v| *v as i64).collect()
    }

    /// The dimensions with leading 1s dropped: what broadcasts the same way
    /// against a tensor of higher rank.
    pub fn squeezed_leading(&self) -> Vec<usize> {
        let k = self.dims.iter().take_while(|d| **d == 1).count();
        self.dims[k..].to_vec()
    }

    pub fn reshaped(mut self, dims: Vec<usize>) -> Const {
        debug_assert_eq!(dims.iter().product::<usize>(), self.data.len());
        self.dims = dims;
        self
    }

    /// `self` transposed by `perm` (dimension i of the result is dimension perm[i]).
    pub fn permuted(&self, perm: &[usize]) -> Const {
        let rank = self.dims.len();
        let dims: Vec<usize> = perm.iter().map(|&p| self.dims[p]).collect();
        let strides = strides(&self.dims);
        let mut data = Vec::with_capacity(self.data.len());
        let mut idx = vec![0usize; rank];
        for _ in 0..self.data.len() {
            let src: usize = (0..rank).map(|i| idx[i] * strides[perm[i]]).sum();
            data.push(self.data[src]);
            for i in (0..rank).rev() {
                idx[i] += 1;
                if idx[i] < dims[i] {
                    break;
                }
                idx[i] = 0;
            }
        }
        Const { dims, data }
    }

    /// Elementwise `f(self, other)` with numpy broadcasting.
    pub fn zip(&self, other: &Const, f: impl Fn(f64, f64) -> f64) -> Result<Const, String> {
        let dims = broadcast(&self.dims, &other.dims)?;
        let n: usize = dims.iter().product();
        let data = {
            let a = expand_index(&self.dims, &dims);
            let b = expand_index(&other.dims, &dims);
            (0..n)
                .map(|i| f(self.data[a(i)], other.data[b(i)]))
                .collect()
        };
        Ok(Const { dims, data })
    }

    pub fn map(&self, f: impl Fn(f64) -> f64) -> Const {
        Const {
            dims: self.dims.clone(),
            data: self.data.iter().map(|v| f(*v)).collect(),
        }
    }

    /// `self @ other` for two matrices.
    pub fn matmul(&self, other: &Const) -> Result<Const, String> {
        let (&[m, k], &[k2, n]) = (self.dims.as_slice(), other.dims.as_slice()) else {
            return Err(format!(
                "a product of constants of shapes {:?} and {:?}",
                self.dims, other.dims
            ));
        };
        if k != k2 {
            return Err(format!(
                "a product of constants of shapes [{m}, {k}] and [{k2}, {n}]"
            ));
        }
        let mut data = vec![0.0; m * n];
        for i in 0..m {
            for t in 0..k {
                let a = self.data[i * k + t];
                for j in 0..n {
                    data[i * n + j] += a * other.data[t * n + j];
                }
            }
        }
        Ok(Const {
            dims: vec![m, n],
            data,
        })
    }

    /// The range of the values, widened outward to two significant digits so
    /// that a declared range tells little more than the magnitude.
    pub fn range(&self) -> (f64, f64) {
        let lo = self.data.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self.data.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        outward(lo.min(0.0), hi.max(0.0))
    }
}

/// `[lo, hi]` widened to two significant digits of the larger magnitude
/// (`[-0.4137, 0.911]` → `[-0.42, 0.92]`), never empty.
pub fn outward(lo: f64, hi: f64) -> (f64, f64) {
    let m = lo.abs().max(hi.abs());
    if m == 0.0 || !m.is_finite() {
        return (-1.0, 1.0);
    }
    let step = 10f64.powf(m.log10().floor() - 1.0);
    let (l, h) = ((lo / step).floor() * step, (hi / step).ceil() * step);
    let round = |v: f64| (v / step).round() * step;
    let (l, h) = (round(l), round(h));
    if l == h {
        (l - step, h + step)
    } else {
        (l, h)
    }
}

pub fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

pub fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let x = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let y = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = match (x, y) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        };
    }
    Ok(out)
}

/// Maps a flat index of `to` to the flat index of `from` broadcast to it.
fn expand_index<'a>(from: &'a [usize], to: &'a [usize]) -> impl Fn(usize) -> usize + 'a {
    let fs = strides(from);
    let ts = strides(to);
    let off = to.len() - from.len();
    move |flat| {
        let mut src = 0;
        for (i, (d, s)) in from.iter().zip(&fs).enumerate() {
            let k = (flat / ts[i + off]) % to[i + off];
            if *d != 1 {
                src += k * s;
            }
        }
        src
    }
}

/// Decodes a tensor's values, from its typed fields, `raw_data` (little
/// endian) or an external file (read by `external`, given the location).
pub fn decode(
    t: &TensorProto,
    external: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>,
) -> Result<Const, ImportError> {
    let name = t.name().to_string();
    let bad = |m: String| ImportError::Tensor {
        name: name.clone(),
        message: m,
    };
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|d| usize::try_from(*d).map_err(|_| bad(format!("negative dimension {d}"))))
        .collect::<Result<_, _>>()?;
    let n: usize = dims.iter().product();
    let ty = DataType::try_from(t.data_type())
        .map_err(|_| bad(format!("unknown data type {}", t.data_type())))?;
    let raw: Option<Vec<u8>> =
        if t.data_location() == crate::proto::tensor_proto::DataLocation::External {
            let entry = |k: &str| {
                t.external_data
                    .iter()
                    .find(|e| e.key() == k)
                    .map(|e| e.value().to_string())
            };
            let location =
                entry("location").ok_or_else(|| bad("external data without a location".into()))?;
            let bytes =
                external(&location).map_err(|m| bad(format!("external data `{location}`: {m}")))?;
            let offset: usize = entry("offset")
                .map(|v| v.parse().unwrap_or(usize::MAX))
                .unwrap_or(0);
            let width = width(ty).ok_or_else(|| bad(format!("data type {ty:?} is not numeric")))?;
            let length: usize = entry("length")
                .map(|v| v.parse().unwrap_or(usize::MAX))
                .unwrap_or(n * width);
            let end = offset.checked_add(length).filter(|e| *e <= bytes.len());
            let Some(end) = end else {
                return Err(bad(format!(
                "external data `{location}` has {} bytes, but the tensor needs bytes {offset}..{}",
                bytes.len(),
                offset.saturating_add(length)
            )));
            };
            Some(bytes[offset..end].to_vec())
        } else {
            t.raw_data.clone()
        };
    let data: Vec<f64> = match raw {
        Some(raw) => {
            let w = width(ty).ok_or_else(|| bad(format!("data type {ty:?} is not numeric")))?;
            if raw.len() != n * w {
                return Err(bad(format!(
                    "{} bytes of data for {n} values of {w} bytes",
                    raw.len()
                )));
            }
            raw.chunks_exact(w).map(|c| from_le(ty, c)).collect()
        }
        None => match ty {
            DataType::Float => t.float_data.iter().map(|v| *v as f64).collect(),
            DataType::Double => t.double_data.clone(),
            DataType::Int64 => t.int64_data.iter().map(|v| *v as f64).collect(),
            DataType::Uint64 | DataType::Uint32 => {
                t.uint64_data.iter().map(|v| *v as f64).collect()
            }
            DataType::Int32
            | DataType::Int16
            | DataType::Int8
            | DataType::Uint16
            | DataType::Uint8
            | DataType::Bool => t.int32_data.iter().map(|v| *v as f64).collect(),
            DataType::Float16 => t.int32_data.iter().map(|v| f16(*v as u16)).collect(),
            other => {
                return Err(bad(format!(
                    "data type {other:?} is not supported (numbers only)"
                )))
            }
        },
    };
    if data.len() != n {
        return Err(bad(format!(
            "{} values for shape {dims:?} ({n} values)",
            data.len()
        )));
    }
    if let Some(v) = data.iter().find(|v| !v.is_finite()) {
        return Err(bad(format!("a value is not finite ({v})")));
    }
    Ok(Const { dims, data })
}

fn width(ty: DataType) -> Option<usize> {
    Some(match ty {
        DataType::Float | DataType::Int32 | DataType::Uint32 => 4,
        DataType::Double | DataType::Int64 | DataType::Uint64 => 8,
        DataType::Int16 | DataType::Uint16 | DataType::Float16 => 2,
        DataType::Int8 | DataType::Uint8 | DataType::Bool => 1,
        _ => return None,
    })
}

fn from_le(ty: DataType, c: &[u8]) -> f64 {
    match ty {
        DataType::Float => f32::from_le_bytes(c.try_into().unwrap()) as f64,
        DataType::Double => f64::from_le_bytes(c.try_into().unwrap()),
        DataType::Int64 => i64::from_le_bytes(c.try_into().unwrap()) as f64,
        DataType::Uint64 => u64::from_le_bytes(c.try_into().unwrap()) as f64,
        DataType::Int32 => i32::from_le_bytes(c.try_into().unwrap()) as f64,
        DataType::Uint32 => u32::from_le_bytes(c.try_into().unwrap()) as f64,
        DataType::Int16 => i16::from_le_bytes(c.try_into().unwrap()) as f64,
        DataType::Uint16 => u16::from_le_bytes(c.try_into().unwrap()) as f64,
        DataType::Float16 => f16(u16::from_le_bytes(c.try_into().unwrap())),
        DataType::Int8 => c[0] as i8 as f64,
        _ => c[0] as f64,
    }
}

/// IEEE 754 half precision to f64.
fn f16(bits: u16) -> f64 {
    let sign = if bits >> 15 == 1 { -1.0 } else { 1.0 };
    let exp = ((bits >> 10) & 0x1f) as i32;
    let frac = (bits & 0x3ff) as f64;
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 => f64::INFINITY,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outward_rounds_to_two_significant_digits() {
        assert_eq!(outward(-0.4137, 0.911), (-0.42, 0.92));
        assert_eq!(outward(0.0, 4254.0), (0.0, 4300.0));
        assert_eq!(outward(0.0, 0.0), (-1.0, 1.0));
    }

    #[test]
    fn broadcasting_and_permutation() {
        let a = Const {
            dims: vec![2, 3],
            data: vec![1., 2., 3., 4., 5., 6.],
        };
        let b = Const {
            dims: vec![3],
            data: vec![10., 20., 30.],
        };
        assert_eq!(
            a.zip(&b, |x, y| x + y).unwrap().data,
            vec![11., 22., 33., 14., 25., 36.]
        );
        let c = Const {
            dims: vec![2, 1],
            data: vec![1., 2.],
        };
        assert_eq!(
            a.zip(&c, |x, y| x * y).unwrap().data,
            vec![1., 2., 3., 8., 10., 12.]
        );
        assert_eq!(a.permuted(&[1, 0]).data, vec![1., 4., 2., 5., 3., 6.]);
        assert!(a.zip(&Const::vector(vec![1., 2.]), |x, _| x).is_err());
        assert_eq!(f16(0x3c00), 1.0);
        assert_eq!(f16(0xc000), -2.0);
    }
}
