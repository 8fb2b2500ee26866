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
        scale_round(v, self.scale())
            .map(|s| s as u64)
            .ok_or_else(|| self.enc_err("out of range"))
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

/// `v * scale` rounded half away from zero (as [`f64::round`]), or `None`
/// when it is not finite or its magnitude reaches 2^62. Fixed-point encoding
/// of large tensors spends most of its time here: this avoids `round`'s libm
/// call (x86-64's baseline has no rounding instruction), about 10x faster.
#[inline]
pub fn scale_round(v: f64, scale: f64) -> Option<i64> {
    let x = v * scale;
    if x.is_nan() || x.abs() >= (1u64 << 62) as f64 {
        return None;
    }
    // Exact: below 2^52 `t` is, and above it `x` is already an integer; and
    // `x - t` is exact because `t` is `x` with its fraction dropped.
    let t = x as i64;
    let frac = x - t as f64;
    Some(t + (frac >= 0.5) as i64 - (frac <= -0.5) as i64)
}

#[cfg(test)]
mod scale_round_tests {
    use super::scale_round;

    #[test]
    fn rounds_as_f64_round_does() {
        let mut values = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            0.49999999999999994,
            -0.49999999999999994,
            0.5000000000000001,
            4503599627370495.5,
            -4503599627370495.5,
            4503599627370497.0,
            9007199254740993.0,
            4.611686018427387e18,
            -4.611686018427387e18,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bits = (x >> 2) | (1 << 62);
            let v = f64::from_bits(bits & !(1 << 63)) % 1e15;
            values.push(if x & 1 == 0 { v } else { -v });
            values.push((x % 2_000_001) as f64 / 4.0 - 250_000.0);
        }
        for v in values {
            let want = v.round();
            let got = scale_round(v, 1.0);
            if want.abs() < (1u64 << 62) as f64 {
                assert_eq!(got, Some(want as i64), "{v:e}");
            } else {
                assert_eq!(got, None, "{v:e}");
            }
        }
        assert_eq!(scale_round(0.75, 65536.0), Some(49152));
        assert_eq!(scale_round(-1.0 / 131072.0, 65536.0), Some(-1));
    }

    #[test]
    fn refuses_what_does_not_fit() {
        for v in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            2f64.powi(62),
            -2f64.powi(62),
            1e300,
        ] {
            assert_eq!(scale_round(v, 1.0), None, "{v}");
        }
        assert_eq!(scale_round(2f64.powi(46), 65536.0), None);
        assert!(scale_round(2f64.powi(45), 65536.0).is_some());
    }
}
