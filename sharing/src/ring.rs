//! Tensors over the ring Z_2^64: a flat `Vec<u64>` in row-major order plus a
//! shape. All arithmetic wraps.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::error::{Result, SharingError};
use super::share::OpenMsg;

/// Element count above which elementwise loops run on rayon.
const PAR_THRESHOLD: usize = 1 << 15;
/// [`RingTensor::matmul`] of at most this many rows goes row by row over
/// the right operand as it lies, without transposing it.
const FEW_ROWS: usize = 4;

/// A tensor of ring elements. `Debug` prints the shape only, because ring
/// tensors usually hold shares or masks.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingTensor {
    data: Vec<u64>,
    shape: Vec<usize>,
}

impl std::fmt::Debug for RingTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingTensor")
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

/// Number of elements of a shape (1 for the scalar shape `[]`), or an error
/// on overflow.
pub fn numel(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or(SharingError::UnsupportedShape {
            op: "numel (overflow)",
            shape: shape.to_vec(),
        })
}

impl RingTensor {
    /// Builds a tensor, checking that `data.len()` matches `shape`.
    pub fn new(data: Vec<u64>, shape: Vec<usize>) -> Result<Self> {
        let expected = numel(&shape)?;
        if data.len() != expected {
            return Err(SharingError::BadLength {
                len: data.len(),
                shape,
                expected,
            });
        }
        Ok(Self { data, shape })
    }

    /// The all-zero tensor.
    pub fn zeros(shape: &[usize]) -> Result<Self> {
        Self::filled(shape, 0)
    }

    /// A tensor whose every element is `v`. An error, not an abort, when
    /// the element count overflows or the memory cannot be had.
    pub fn filled(shape: &[usize], v: u64) -> Result<Self> {
        let n = numel(shape)?;
        let mut data = Vec::new();
        data.try_reserve_exact(n)
            .map_err(|_| SharingError::OutOfMemory {
                shape: shape.to_vec(),
            })?;
        data.resize(n, v);
        Ok(Self {
            data,
            shape: shape.to_vec(),
        })
    }

    /// A rank-0 tensor.
    pub fn scalar(v: u64) -> Self {
        Self {
            data: vec![v],
            shape: vec![],
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn data(&self) -> &[u64] {
        &self.data
    }
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn into_parts(self) -> (Vec<u64>, Vec<usize>) {
        (self.data, self.shape)
    }

    /// Checks that a tensor received from elsewhere (e.g. deserialized) is
    /// well formed.
    pub fn validate(&self) -> Result<()> {
        let expected = numel(&self.shape)?;
        if self.data.len() != expected {
            return Err(SharingError::BadLength {
                len: self.data.len(),
                shape: self.shape.clone(),
                expected,
            });
        }
        Ok(())
    }

    /// Same data, new shape with the same element count.
    pub fn reshape(self, shape: Vec<usize>) -> Result<Self> {
        Self::new(self.data, shape)
    }

    pub(crate) fn check_same_shape(&self, other: &Self, op: &'static str) -> Result<()> {
        self.validate()?;
        other.validate()?;
        if self.shape != other.shape {
            return Err(SharingError::ShapeMismatch {
                op,
                left: self.shape.clone(),
                right: other.shape.clone(),
            });
        }
        Ok(())
    }

    /// Elementwise `f(a, b)` of two same-shape tensors.
    pub fn zip_with(
        &self,
        other: &Self,
        op: &'static str,
        f: impl Fn(u64, u64) -> u64 + Sync + Send,
    ) -> Result<Self> {
        self.check_same_shape(other, op)?;
        let data = if self.data.len() >= PAR_THRESHOLD {
            self.data
                .par_iter()
                .zip(other.data.par_iter())
                .map(|(&a, &b)| f(a, b))
                .collect()
        } else {
            self.data
                .iter()
                .zip(other.data.iter())
                .map(|(&a, &b)| f(a, b))
                .collect()
        };
        Ok(Self {
            data,
            shape: self.shape.clone(),
        })
    }

    /// Elementwise `f(a)`.
    pub fn map(&self, f: impl Fn(u64) -> u64 + Sync + Send) -> Self {
        let data = if self.data.len() >= PAR_THRESHOLD {
            self.data.par_iter().map(|&a| f(a)).collect()
        } else {
            self.data.iter().map(|&a| f(a)).collect()
        };
        Self {
            data,
            shape: self.shape.clone(),
        }
    }

    pub fn add(&self, other: &Self) -> Result<Self> {
        self.zip_with(other, "add", u64::wrapping_add)
    }
    pub fn sub(&self, other: &Self) -> Result<Self> {
        self.zip_with(other, "sub", u64::wrapping_sub)
    }
    /// Elementwise (Hadamard) product.
    pub fn mul(&self, other: &Self) -> Result<Self> {
        self.zip_with(other, "mul", u64::wrapping_mul)
    }
    pub fn neg(&self) -> Self {
        self.map(u64::wrapping_neg)
    }
    pub fn scale(&self, k: u64) -> Self {
        self.map(|a| a.wrapping_mul(k))
    }
    pub fn add_scalar(&self, k: u64) -> Self {
        self.map(|a| a.wrapping_add(k))
    }

    /// In-place `self += other`.
    pub fn add_assign(&mut self, other: &Self) -> Result<()> {
        self.check_same_shape(other, "add_assign")?;
        self.add_assign_words(&other.data);
        Ok(())
    }

    /// `self += other` for an opened message of the same shape.
    pub fn add_assign_msg(&mut self, other: &OpenMsg) -> Result<()> {
        if other.shape != self.shape || other.data.len() != self.data.len() {
            return Err(SharingError::ShapeMismatch {
                op: "add_assign",
                left: self.shape.clone(),
                right: other.shape.clone(),
            });
        }
        self.add_assign_words(&other.data);
        Ok(())
    }

    /// Callers check that the lengths agree.
    fn add_assign_words(&mut self, other: &[u64]) {
        if self.data.len() >= PAR_THRESHOLD {
            self.data
                .par_iter_mut()
                .zip(other.par_iter())
                .for_each(|(a, &b)| *a = a.wrapping_add(b));
        } else {
            for (a, &b) in self.data.iter_mut().zip(other.iter()) {
                *a = a.wrapping_add(b);
            }
        }
    }

    /// Output shape of `a @ b` for the supported shapes
    /// `[m,k]@[k,n] -> [m,n]`, `[m,k]@[k] -> [m]`, `[k]@[k,n] -> [n]`,
    /// `[k]@[k] -> []`.
    pub fn matmul_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
        let mismatch = || SharingError::ShapeMismatch {
            op: "matmul",
            left: a.to_vec(),
            right: b.to_vec(),
        };
        match (a.len(), b.len()) {
            (2, 2) if a[1] == b[0] => Ok(vec![a[0], b[1]]),
            (2, 1) if a[1] == b[0] => Ok(vec![a[0]]),
            (1, 2) if a[0] == b[0] => Ok(vec![b[1]]),
            (1, 1) if a[0] == b[0] => Ok(vec![]),
            (2, 2) | (2, 1) | (1, 2) | (1, 1) => Err(mismatch()),
            _ => Err(SharingError::UnsupportedShape {
                op: "matmul",
                shape: if matches!(a.len(), 1 | 2) {
                    b.to_vec()
                } else {
                    a.to_vec()
                },
            }),
        }
    }

    /// Matrix product over Z_2^64 (shapes as in [`RingTensor::matmul_shape`]).
    /// Rows of the output are computed in parallel; the right operand is
    /// transposed so the inner loop walks both operands contiguously,
    /// except for at most [`FEW_ROWS`] rows, which sum the right operand's
    /// rows as they lie.
    pub fn matmul(&self, other: &Self) -> Result<Self> {
        self.validate()?;
        other.validate()?;
        let out_shape = Self::matmul_shape(&self.shape, &other.shape)?;
        let (m, k) = match self.shape.len() {
            2 => (self.shape[0], self.shape[1]),
            _ => (1, self.shape[0]),
        };
        let n = if other.shape.len() == 2 {
            other.shape[1]
        } else {
            1
        };
        let mut out = vec![0u64; numel(&out_shape)?];
        if m <= FEW_ROWS && n > 1 {
            // A few rows (a batch-1 product): each row of the output is a
            // sum of the rows of `other`, read in order, so `other` is not
            // transposed first (which would touch it twice, once strided).
            for (i, orow) in out.chunks_exact_mut(n).enumerate() {
                let arow = &self.data[i * k..(i + 1) * k];
                for (a, brow) in arow.iter().zip(other.data.chunks_exact(n)) {
                    for (o, b) in orow.iter_mut().zip(brow) {
                        *o = o.wrapping_add(a.wrapping_mul(*b));
                    }
                }
            }
            return Ok(Self {
                data: out,
                shape: out_shape,
            });
        }
        // bt: [n, k]
        let bt: Vec<u64> = if n == 1 {
            other.data.clone()
        } else {
            let mut t = vec![0u64; n * k];
            for (r, row) in other.data.chunks_exact(n).enumerate() {
                for (c, &v) in row.iter().enumerate() {
                    t[c * k + r] = v;
                }
            }
            t
        };
        let work = |(i, orow): (usize, &mut [u64])| {
            let arow = &self.data[i * k..(i + 1) * k];
            for (j, o) in orow.iter_mut().enumerate() {
                *o = dot(arow, &bt[j * k..(j + 1) * k]);
            }
        };
        if k > 0 && m.saturating_mul(n).saturating_mul(k) >= PAR_THRESHOLD && n > 0 {
            out.par_chunks_mut(n).enumerate().for_each(work);
        } else if n > 0 {
            out.chunks_mut(n).enumerate().for_each(work);
        }
        Ok(Self {
            data: out,
            shape: out_shape,
        })
    }

    /// Concatenates flat tensors (used to batch several products into one
    /// round). Returns the concatenation as a 1-d tensor.
    pub fn concat_flat(parts: &[&Self]) -> Self {
        let mut data = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        for p in parts {
            data.extend_from_slice(&p.data);
        }
        let n = data.len();
        Self {
            data,
            shape: vec![n],
        }
    }

    /// Splits a flat tensor back into pieces with the given shapes.
    pub fn split_flat(&self, shapes: &[Vec<usize>]) -> Result<Vec<Self>> {
        let mut out = Vec::with_capacity(shapes.len());
        let mut off = 0usize;
        for s in shapes {
            let n = numel(s)?;
            let end = off.checked_add(n).filter(|&e| e <= self.data.len()).ok_or(
                SharingError::BadLength {
                    len: self.data.len(),
                    shape: s.clone(),
                    expected: off.saturating_add(n),
                },
            )?;
            out.push(Self {
                data: self.data[off..end].to_vec(),
                shape: s.clone(),
            });
            off = end;
        }
        if off != self.data.len() {
            return Err(SharingError::BadLength {
                len: self.data.len(),
                shape: vec![off],
                expected: off,
            });
        }
        Ok(out)
    }
}

#[inline]
fn dot(a: &[u64], b: &[u64]) -> u64 {
    // Four accumulators give the CPU independent multiply chains.
    let mut acc = [0u64; 4];
    let chunks = a.len() / 4;
    for c in 0..chunks {
        let i = c * 4;
        acc[0] = acc[0].wrapping_add(a[i].wrapping_mul(b[i]));
        acc[1] = acc[1].wrapping_add(a[i + 1].wrapping_mul(b[i + 1]));
        acc[2] = acc[2].wrapping_add(a[i + 2].wrapping_mul(b[i + 2]));
        acc[3] = acc[3].wrapping_add(a[i + 3].wrapping_mul(b[i + 3]));
    }
    let mut s = acc[0]
        .wrapping_add(acc[1])
        .wrapping_add(acc[2])
        .wrapping_add(acc[3]);
    for i in chunks * 4..a.len() {
        s = s.wrapping_add(a[i].wrapping_mul(b[i]));
    }
    s
}

/// Additive sharing over a small generic modulus `m` (Z_m), used to check
/// the worked example from the talk (m = 10). Not used by the engine, which
/// always works in Z_2^64.
pub mod zm {
    /// Given a secret `x` and party 1's random share `s1`, party 2's share is
    /// `(x - s1) mod m`.
    /// `None` if `m == 0` or `m > 2^32` (to keep the sums exact).
    pub fn share_with(x: u64, s1: u64, m: u64) -> Option<(u64, u64)> {
        if m == 0 || m > 1 << 32 {
            return None;
        }
        let s1 = s1 % m;
        let s2 = ((x % m) + m - s1) % m;
        Some((s1, s2))
    }
    /// `(s1 + s2) mod m`; `None` for a bad modulus.
    pub fn reconstruct(s1: u64, s2: u64, m: u64) -> Option<u64> {
        add(s1, s2, m)
    }
    /// Share (or value) addition mod m; `None` for a bad modulus.
    pub fn add(a: u64, b: u64, m: u64) -> Option<u64> {
        if m == 0 || m > 1 << 32 {
            return None;
        }
        Some(((a % m) + (b % m)) % m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ways of multiplying (a few rows, without transposing; more, by
    /// dot products) agree with the definition, wrapping included, for
    /// every shape pair `matmul` takes.
    #[test]
    fn matmul_matches_the_definition_for_few_and_many_rows() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for m in 0..=FEW_ROWS + 2 {
            for k in [0, 1, 3, 64] {
                for n in [1, 2, 16] {
                    let a: Vec<u64> = (0..m * k).map(|_| next()).collect();
                    let b: Vec<u64> = (0..k * n).map(|_| next()).collect();
                    let at = RingTensor::new(a.clone(), vec![m, k]).unwrap();
                    let bt = RingTensor::new(b.clone(), vec![k, n]).unwrap();
                    let got = at.matmul(&bt).unwrap();
                    assert_eq!(got.shape(), &[m, n]);
                    for i in 0..m {
                        for j in 0..n {
                            let want = (0..k).fold(0u64, |s, l| {
                                s.wrapping_add(a[i * k + l].wrapping_mul(b[l * n + j]))
                            });
                            assert_eq!(got.data()[i * n + j], want, "[{m},{k}]@[{k},{n}]");
                        }
                    }
                    if m == 1 {
                        // A vector times a matrix.
                        let v = RingTensor::new(a.clone(), vec![k]).unwrap();
                        let got1 = v.matmul(&bt).unwrap();
                        assert_eq!(got1.shape(), &[n]);
                        assert_eq!(got1.data(), got.data());
                    }
                }
            }
        }
    }
}
