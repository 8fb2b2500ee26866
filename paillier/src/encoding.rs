//! Signed and fixed-point encodings into `Z_n` with an overflow band.
//!
//! * Signed: `|m| ≤ max_int = ⌊n/3⌋ - 1`; negatives wrap to `n + m`. A
//!   decryption `x` with `max_int < x < n - max_int` is
//!   [`PaillierError::Overflow`].
//! * Fixed point: `value = mantissa · 16^exponent` (python-paillier's
//!   convention, base 16). Adding numbers aligns them to the smaller
//!   exponent; multiplying adds exponents.

use num_bigint::{BigInt, BigUint, Sign};
use num_integer::Integer;
use num_traits::{Signed, ToPrimitive};

use super::keys::{PrivateKey, PublicKey};
use super::ops::Ciphertext;
use super::{PaillierError, Result};

/// Base of the fixed-point exponent.
pub const BASE: u32 = 16;
const LOG2_BASE: i64 = 4;
const FLOAT_MANTISSA_BITS: i64 = 53;

/// Encode a signed integer into `Z_n`.
pub fn encode_signed(pk: &PublicKey, m: &BigInt) -> Result<BigUint> {
    if m.magnitude() > pk.max_int() {
        return Err(PaillierError::PlaintextOutOfRange);
    }
    let n = BigInt::from(pk.n().clone());
    Ok(m.mod_floor(&n).magnitude().clone())
}

/// Decode an element of `Z_n` into a signed integer, or `Overflow`.
pub fn decode_signed(pk: &PublicKey, x: &BigUint) -> Result<BigInt> {
    let n = pk.n();
    if x >= n {
        return Err(PaillierError::Malformed("value not reduced mod n".into()));
    }
    if x <= pk.max_int() {
        Ok(BigInt::from(x.clone()))
    } else if x >= &(n - pk.max_int()) {
        Ok(BigInt::from(x.clone()) - BigInt::from(n.clone()))
    } else {
        Err(PaillierError::Overflow)
    }
}

/// A plaintext `mantissa · 16^exponent`. `Debug` redacts the mantissa.
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedNumber {
    pub mantissa: BigInt,
    pub exponent: i32,
}

impl std::fmt::Debug for EncodedNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedNumber")
            .field("mantissa", &"<redacted>")
            .field("exponent", &self.exponent)
            .finish()
    }
}

/// A ciphertext of `mantissa` with a public exponent: `value = m · 16^e`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedNumber {
    pub ciphertext: Ciphertext,
    pub exponent: i32,
}

/// `(m, k)` with `x = m · 2^k` exactly, `m` an integer.
fn decompose_f64(x: f64) -> (i64, i64) {
    let bits = x.to_bits();
    let sign = if bits >> 63 == 1 { -1i64 } else { 1 };
    let exp = ((bits >> 52) & 0x7ff) as i64;
    let frac = (bits & ((1u64 << 52) - 1)) as i64;
    if exp == 0 {
        (sign * frac, -1074)
    } else {
        (sign * (frac | (1i64 << 52)), exp - 1075)
    }
}

/// Python's `math.frexp(x)[1]` for finite non-zero `x`.
fn frexp_exponent(x: f64) -> i64 {
    if x == 0.0 {
        return 0;
    }
    let (m, k) = decompose_f64(x);
    let mbits = 64 - m.unsigned_abs().leading_zeros() as i64;
    k + mbits
}

/// Round `m / 2^s` half to even (Python's `round`).
fn round_shift(m: &BigInt, s: u64) -> BigInt {
    if s == 0 {
        return m.clone();
    }
    let mag = m.magnitude();
    if s > mag.bits() + 1 {
        // |m| / 2^s < 1/2: rounds to zero (and avoids huge shifts)
        return BigInt::from(0u32);
    }
    let q = mag >> s;
    let r = mag - (&q << s);
    let half = BigUint::from(1u32) << (s - 1);
    let q = if r > half || (r == half && q.is_odd()) {
        q + 1u32
    } else {
        q
    };
    BigInt::from_biguint(
        if m.is_negative() {
            Sign::Minus
        } else {
            Sign::Plus
        },
        q,
    )
}

impl EncodedNumber {
    /// An integer with exponent 0.
    pub fn from_int(m: BigInt) -> Self {
        EncodedNumber {
            mantissa: m,
            exponent: 0,
        }
    }

    /// Encode an `f64` as python-paillier does: the exponent keeps every bit
    /// of the float's precision, capped at `max_exponent` if given.
    pub fn from_f64(x: f64, max_exponent: Option<i32>) -> Result<Self> {
        if !x.is_finite() {
            return Err(PaillierError::NotFinite);
        }
        let bin_lsb = frexp_exponent(x) - FLOAT_MANTISSA_BITS;
        let prec = Integer::div_floor(&bin_lsb, &LOG2_BASE);
        let e = match max_exponent {
            Some(m) => prec.min(m as i64),
            None => prec,
        };
        Self::from_f64_with_exponent(x, e.clamp(i32::MIN as i64, i32::MAX as i64) as i32)
    }

    /// Fixed-point encoding at a given exponent (rounding half to even).
    pub fn from_f64_with_exponent(x: f64, exponent: i32) -> Result<Self> {
        if !x.is_finite() {
            return Err(PaillierError::NotFinite);
        }
        let (m, k) = decompose_f64(x);
        // x·16^-e = m·2^(k - 4e)
        let shift = k - LOG2_BASE * exponent as i64;
        let m = BigInt::from(m);
        let mantissa = if shift >= 0 {
            if shift > 1 << 20 {
                return Err(PaillierError::PlaintextOutOfRange);
            }
            m << shift as usize
        } else {
            round_shift(&m, shift.unsigned_abs())
        };
        Ok(EncodedNumber { mantissa, exponent })
    }

    /// Nearest `f64` (correctly rounded mantissa, then an exact power of 2).
    pub fn to_f64(&self) -> f64 {
        // keep 64 significant bits plus a sticky bit, then scale exactly
        let b = self.mantissa.magnitude().bits();
        let s = b.saturating_sub(64);
        let mut t = self.mantissa.magnitude() >> s;
        if s > 0 && (&t << s) != *self.mantissa.magnitude() {
            t |= BigUint::from(1u32);
        }
        let mut v = t.to_f64().unwrap_or(f64::NAN);
        if self.mantissa.is_negative() {
            v = -v;
        }
        let mut e2 = LOG2_BASE * self.exponent as i64 + s as i64;
        while e2 != 0 && v != 0.0 && v.is_finite() {
            let step = e2.clamp(-1000, 1000);
            v *= 2f64.powi(step as i32);
            e2 -= step;
        }
        v
    }

    /// Lower the exponent (exact): mantissa × 16^(e - new).
    pub fn decrease_exponent_to(&self, new_exp: i32) -> Result<Self> {
        if new_exp > self.exponent {
            return Err(PaillierError::Malformed("cannot increase exponent".into()));
        }
        let diff = (self.exponent as i64 - new_exp as i64) as usize;
        Ok(EncodedNumber {
            mantissa: &self.mantissa << (4 * diff),
            exponent: new_exp,
        })
    }
}

fn pow16(diff: i64) -> BigInt {
    BigInt::from(1u32) << (4 * diff as usize)
}

/// Largest exponent gap accepted when aligning (keeps work bounded on
/// hostile inputs: 16^4096 has 16 384 bits).
const MAX_EXPONENT_GAP: i64 = 4096;

impl PublicKey {
    /// Encrypt a signed integer (DJN).
    pub fn encrypt_signed(&self, m: &BigInt) -> Result<Ciphertext> {
        self.encrypt(&encode_signed(self, m)?)
    }

    /// Encrypt an encoded number.
    pub fn encrypt_encoded(&self, x: &EncodedNumber) -> Result<EncryptedNumber> {
        Ok(EncryptedNumber {
            ciphertext: self.encrypt_signed(&x.mantissa)?,
            exponent: x.exponent,
        })
    }

    /// Encrypt an `f64` (python-paillier encoding).
    pub fn encrypt_f64(&self, x: f64) -> Result<EncryptedNumber> {
        self.encrypt_encoded(&EncodedNumber::from_f64(x, None)?)
    }

    /// Lower the exponent of an encrypted number (homomorphic ×16^diff).
    pub fn decrease_exponent_to(
        &self,
        a: &EncryptedNumber,
        new_exp: i32,
    ) -> Result<EncryptedNumber> {
        let diff = a.exponent as i64 - new_exp as i64;
        if diff < 0 {
            return Err(PaillierError::Malformed("cannot increase exponent".into()));
        }
        if diff > MAX_EXPONENT_GAP {
            return Err(PaillierError::Malformed("exponents too far apart".into()));
        }
        Ok(EncryptedNumber {
            ciphertext: self.mul_scalar(&a.ciphertext, &pow16(diff)),
            exponent: new_exp,
        })
    }

    /// Homomorphic sum of two encrypted numbers (aligned to the smaller exponent).
    pub fn add_encrypted(
        &self,
        a: &EncryptedNumber,
        b: &EncryptedNumber,
    ) -> Result<EncryptedNumber> {
        let e = a.exponent.min(b.exponent);
        let a = self.decrease_exponent_to(a, e)?;
        let b = self.decrease_exponent_to(b, e)?;
        Ok(EncryptedNumber {
            ciphertext: self.add(&a.ciphertext, &b.ciphertext),
            exponent: e,
        })
    }

    /// Encrypted + plaintext.
    pub fn add_encoded(&self, a: &EncryptedNumber, b: &EncodedNumber) -> Result<EncryptedNumber> {
        let e = a.exponent.min(b.exponent);
        let a = self.decrease_exponent_to(a, e)?;
        if (b.exponent as i64 - e as i64) > MAX_EXPONENT_GAP {
            return Err(PaillierError::Malformed("exponents too far apart".into()));
        }
        let b = b.decrease_exponent_to(e)?;
        if b.mantissa.magnitude() > self.max_int() {
            return Err(PaillierError::PlaintextOutOfRange);
        }
        Ok(EncryptedNumber {
            ciphertext: self.add_plain(&a.ciphertext, &b.mantissa),
            exponent: e,
        })
    }

    /// Encrypted × plaintext.
    pub fn mul_encoded(&self, a: &EncryptedNumber, b: &EncodedNumber) -> Result<EncryptedNumber> {
        if b.mantissa.magnitude() > self.max_int() {
            return Err(PaillierError::PlaintextOutOfRange);
        }
        let exponent = a
            .exponent
            .checked_add(b.exponent)
            .ok_or_else(|| PaillierError::Malformed("exponent overflow".into()))?;
        Ok(EncryptedNumber {
            ciphertext: self.mul_scalar(&a.ciphertext, &b.mantissa),
            exponent,
        })
    }
}

impl PrivateKey {
    /// Decrypt an encrypted number to its encoding (Overflow on the middle band).
    pub fn decrypt_encoded(&self, a: &EncryptedNumber) -> Result<EncodedNumber> {
        let m = self.decrypt_signed(&a.ciphertext)?;
        Ok(EncodedNumber {
            mantissa: m,
            exponent: a.exponent,
        })
    }

    /// Decrypt an encrypted number to the nearest `f64`.
    pub fn decrypt_f64(&self, a: &EncryptedNumber) -> Result<f64> {
        Ok(self.decrypt_encoded(a)?.to_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_traits::Zero;

    #[test]
    fn f64_roundtrip_encoding() {
        for x in [
            0.0,
            1.0,
            -1.5,
            0.1,
            1e-300,
            -123456.789,
            1e300,
            f64::MIN_POSITIVE,
        ] {
            let e = EncodedNumber::from_f64(x, None).unwrap();
            assert_eq!(e.to_f64(), x, "{x}");
            let e32 = EncodedNumber::from_f64(x, Some(-32)).unwrap();
            assert_eq!(e32.to_f64(), x, "{x}");
        }
        assert!(EncodedNumber::from_f64(f64::NAN, None).is_err());
        // extreme exponents neither panic nor allocate huge numbers
        let z = EncodedNumber::from_f64_with_exponent(1.5, i32::MAX).unwrap();
        assert_eq!(z.mantissa, BigInt::from(0));
        assert!(EncodedNumber::from_f64_with_exponent(1.5, i32::MIN).is_err());
        assert!(!format!("{z:?}").contains("mantissa: 0"));
    }

    #[test]
    fn frexp_matches_python() {
        assert_eq!(frexp_exponent(1.0), 1);
        assert_eq!(frexp_exponent(0.5), 0);
        assert_eq!(frexp_exponent(3.0), 2);
        assert_eq!(frexp_exponent(0.1), -3);
    }

    #[test]
    fn round_half_even() {
        assert_eq!(round_shift(&BigInt::from(5), 1), BigInt::from(2));
        assert_eq!(round_shift(&BigInt::from(7), 1), BigInt::from(4));
        assert_eq!(round_shift(&BigInt::from(-7), 1), BigInt::from(-4));
        assert!(BigInt::zero() == round_shift(&BigInt::from(1), 2));
    }
}
