//! Fixed-point encoding of reals into Z_2^64.
//!
//! A real `v` is encoded as the two's-complement integer `round(v * 2^f)`
//! reinterpreted as `u64`. Encoding rejects NaN, infinities and values whose
//! encoding would not fit the signed range allowed by [`FixedPoint::max_abs`].

use serde::{Deserialize, Serialize};

use super::error::{Result, SharingError};
use super::ring::RingTensor;

/// Default number of fractional bits.
pub const DEFAULT_FRAC_BITS: u32 = 16;

/// Fixed-point format with `frac_bits` fractional bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedPoint {
    frac_bits: u32,
}

impl Default for FixedPoint {
    fn default() -> Self {
        Self {
            frac_bits: DEFAULT_FRAC_BITS,
        }
    }
}

impl FixedPoint {
    /// `frac_bits` must be in `1..=30` so that a product (2f fractional
    /// bits) still leaves integer headroom in 64 bits.
    pub fn new(frac_bits: u32) -> Result<Self> {
        if !(1..=30).contains(&frac_bits) {
            return Err(SharingError::BadParameter("frac_bits must be in 1..=30"));
        }
        Ok(Self { frac_bits })
    }

    pub fn frac_bits(&self) -> u32 {
        self.frac_bits
    }

    /// `2^f` as f64.
    pub fn scale(&self) -> f64 {
        (1u64 << self.frac_bits) as f64
    }

    /// Largest magnitude accepted by [`FixedPoint::encode`]: encodings stay
    /// below 2^62 in magnitude, so sums of two encodings never overflow the
    /// signed 64-bit range. Products of two encoded values must additionally
    /// stay below 2^62 (i.e. |x*y| < 2^(62-2f)) for truncation to be exact
    /// up to one LSB.
    pub fn max_abs(&self) -> f64 {
        (1u64 << 62) as f64 / self.scale()
    }

    /// Encodes one real number.
    pub fn encode(&self, v: f64) -> Result<u64> {
        if v.is_nan() {
            return Err(self.enc_err("NaN"));
        }
        if v.is_infinite() {
            return Err(self.enc_err("infinite"));
        }
        let s = (v * self.scale()).round();
        if s.abs() >= (1u64 << 62) as f64 {
            return Err(self.enc_err("out of range"));
        }
        Ok((s as i64) as u64)
    }

    /// Decodes one ring element as a signed fixed-point number.
    pub fn decode(&self, x: u64) -> f64 {
        (x as i64) as f64 / self.scale()
    }

    /// Encodes a tensor of reals.
    pub fn encode_tensor(&self, values: &[f64], shape: &[usize]) -> Result<RingTensor> {
        let data = values
            .iter()
            .map(|&v| self.encode(v))
            .collect::<Result<Vec<_>>>()?;
        RingTensor::new(data, shape.to_vec())
    }

    /// Decodes a tensor of ring elements.
    pub fn decode_tensor(&self, t: &RingTensor) -> Vec<f64> {
        t.data().iter().map(|&x| self.decode(x)).collect()
    }

    fn enc_err(&self, reason: &'static str) -> SharingError {
        SharingError::Encode {
            frac_bits: self.frac_bits,
            reason,
        }
    }
}
