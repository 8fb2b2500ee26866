//! python-paillier (`pheutil`) JSON interop. Pure data conversion, no I/O.
//!
//! * public key: `{"kty":"DAJ","alg":"PAI-GN1","key_ops":["encrypt"],"n":B64,"kid":..}`
//! * private key: `{"kty":"DAJ","key_ops":["decrypt"],"p":B64,"q":B64,"pub":{..},"kid":..}`
//!   with `p < q`, as python-paillier ≥ 1.4 (`pheutil genpkey`) writes it and
//!   phe 1.5's `pheutil` requires; that is the form written. Also read: the
//!   older form with `"lambda":B64,"mu":B64` instead of `p`, `q`
//!   (`lambda = (p-1)(q-1)`, `mu = lambda⁻¹ mod n`), and both together when
//!   they agree.
//! * encrypted number: `{"v":"<decimal ciphertext>","e":<exponent>}`
//!
//! `B64` is the big-endian magnitude in base64url without padding.

use num_bigint::BigUint;
use num_traits::Zero;
use serde_json::{json, Value};

use super::encoding::EncryptedNumber;
use super::keys::{PrivateKey, PublicKey};
use super::ops::Ciphertext;
use super::{PaillierError, Result, MIN_KEY_BITS};

pub use super::MAX_KEY_BITS;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding.
pub fn base64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((v >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Decode base64url (padding optional; standard `+/` also accepted).
pub fn base64url_decode(s: &str) -> Result<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut nbits = 0;
    for ch in s.bytes() {
        let v = match ch {
            b'A'..=b'Z' => ch - b'A',
            b'a'..=b'z' => ch - b'a' + 26,
            b'0'..=b'9' => ch - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => {
                return Err(PaillierError::Malformed(
                    "invalid base64url character".into(),
                ))
            }
        };
        acc = (acc << 6) | v as u32;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((acc >> nbits) as u8);
            acc &= (1 << nbits) - 1;
        }
    }
    if nbits >= 6 {
        return Err(PaillierError::Malformed("invalid base64url length".into()));
    }
    Ok(out)
}

fn int_to_b64(x: &BigUint) -> String {
    base64url_encode(&x.to_bytes_be())
}

fn b64_field(obj: &Value, field: &str, what: &str) -> Result<BigUint> {
    let s = match obj.get(field) {
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err(PaillierError::Malformed(format!(
                "{what}: field \"{field}\" is not a base64url string"
            )))
        }
        None => {
            return Err(PaillierError::Malformed(format!(
                "{what}: missing string field \"{field}\""
            )))
        }
    };
    let x = BigUint::from_bytes_be(&base64url_decode(s).map_err(|_| {
        PaillierError::Malformed(format!("{what}: field \"{field}\" is not base64url"))
    })?);
    if x.is_zero() {
        return Err(PaillierError::Malformed(format!(
            "{what}: field \"{field}\" is zero"
        )));
    }
    Ok(x)
}

fn check_str(obj: &Value, field: &str, want: &str, what: &str) -> Result<()> {
    match obj.get(field).and_then(Value::as_str) {
        Some(v) if v == want => Ok(()),
        _ => Err(PaillierError::Malformed(format!(
            "{what}: field \"{field}\" must be \"{want}\""
        ))),
    }
}

fn has_op(obj: &Value, op: &str) -> bool {
    obj.get("key_ops")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(op)))
}

/// Public key JWK.
pub fn public_key_to_jwk(pk: &PublicKey, kid: &str) -> Value {
    json!({
        "kty": "DAJ",
        "alg": "PAI-GN1",
        "key_ops": ["encrypt"],
        "n": int_to_b64(pk.n()),
        "kid": kid,
    })
}

/// Parse a public key JWK (refusing moduli below 2048 bits).
pub fn public_key_from_jwk(v: &Value) -> Result<PublicKey> {
    let n = parse_public_n(v)?;
    if n.bits() < MIN_KEY_BITS {
        return Err(PaillierError::KeyTooSmall(n.bits()));
    }
    PublicKey::from_n(n)
}

/// Parse a public key JWK of any size (test-only).
pub fn public_key_from_jwk_insecure_for_tests(v: &Value) -> Result<PublicKey> {
    PublicKey::from_n_unchecked_size(parse_public_n(v)?, &mut rand::rng())
}

fn parse_public_n(v: &Value) -> Result<BigUint> {
    const WHAT: &str = "invalid public key";
    if !v.is_object() {
        return Err(PaillierError::Malformed(format!(
            "{WHAT}: not a JSON object"
        )));
    }
    check_str(v, "kty", "DAJ", WHAT)?;
    check_str(v, "alg", "PAI-GN1", WHAT)?;
    let n = b64_field(v, "n", WHAT)?;
    // bounds the work a hostile file causes
    if n.bits() > MAX_KEY_BITS {
        return Err(PaillierError::KeyTooLarge(n.bits()));
    }
    Ok(n)
}

/// Private key JWK in the form phe ≥ 1.4 writes (`p`, `q`). Contains
/// secrets: handle the result with care.
pub fn private_key_to_jwk(sk: &PrivateKey, kid: &str, pub_kid: &str) -> Value {
    let (p, q) = sk.factors();
    json!({
        "kty": "DAJ",
        "key_ops": ["decrypt"],
        "p": int_to_b64(p),
        "q": int_to_b64(q),
        "pub": public_key_to_jwk(sk.public_key(), pub_kid),
        "kid": kid,
    })
}

/// Parse a private key JWK in either form: `p` and `q` (their product must
/// be `n`), or the older `lambda` and `mu` (`lambda` must factor `n`, `mu`
/// must be its inverse). When both are present they must agree.
pub fn private_key_from_jwk(v: &Value) -> Result<PrivateKey> {
    private_key_from_jwk_impl(v, false)
}

/// As [`private_key_from_jwk`] without the size floor (test-only).
pub fn private_key_from_jwk_insecure_for_tests(v: &Value) -> Result<PrivateKey> {
    private_key_from_jwk_impl(v, true)
}

fn private_key_from_jwk_impl(v: &Value, insecure: bool) -> Result<PrivateKey> {
    const WHAT: &str = "invalid private key";
    if !v.is_object() {
        return Err(PaillierError::Malformed(format!(
            "{WHAT}: not a JSON object"
        )));
    }
    check_str(v, "kty", "DAJ", WHAT)?;
    if !has_op(v, "decrypt") {
        return Err(PaillierError::Malformed(format!(
            "{WHAT}: key_ops lacks \"decrypt\""
        )));
    }
    let pub_v = v
        .get("pub")
        .ok_or_else(|| PaillierError::Malformed(format!("{WHAT}: missing \"pub\"")))?;
    let pk = if insecure {
        public_key_from_jwk_insecure_for_tests(pub_v)?
    } else {
        public_key_from_jwk(pub_v)?
    };
    let has = |field: &str| v.get(field).is_some();
    let old_form = has("lambda") || has("mu");
    let sk = match (has("p"), has("q")) {
        (true, true) => {
            let p = b64_field(v, "p", WHAT)?;
            let q = b64_field(v, "q", WHAT)?;
            PrivateKey::from_public_and_factors(pk, &p, &q)?
        }
        (false, false) if old_form => {
            let lambda = b64_field(v, "lambda", WHAT)?;
            PrivateKey::from_n_lambda_vartime(pk, &lambda)?
        }
        (false, false) => {
            return Err(PaillierError::Malformed(format!(
                "{WHAT}: needs \"p\" and \"q\" (as pheutil 1.4 and later write it) \
                 or \"lambda\" and \"mu\" (as older pheutil wrote it)"
            )))
        }
        (p, _) => {
            let (has, lacks) = if p { ("p", "q") } else { ("q", "p") };
            return Err(PaillierError::Malformed(format!(
                "{WHAT}: has \"{has}\" but not \"{lacks}\""
            )));
        }
    };
    if old_form {
        let lambda = b64_field(v, "lambda", WHAT)?;
        let mu = b64_field(v, "mu", WHAT)?;
        let n = sk.public_key().n();
        if !(sk.phi() % &lambda).is_zero() {
            return Err(PaillierError::InvalidKey("lambda does not match p and q"));
        }
        if (&lambda * &mu) % n != BigUint::from(1u32) % n {
            return Err(PaillierError::InvalidKey("mu does not match lambda"));
        }
    }
    Ok(sk)
}

/// Encrypted number as `{"v": "<decimal>", "e": exponent}`.
pub fn encrypted_number_to_json(x: &EncryptedNumber) -> Value {
    json!({
        "v": x.ciphertext.as_biguint().to_str_radix(10),
        "e": x.exponent,
    })
}

/// Public fingerprint of a key (`<bits>:<low 64 bits of n in hex>`), used
/// to catch numbers paired with the wrong key. Not secret, not a MAC.
pub fn key_fingerprint(pk: &PublicKey) -> String {
    let low = pk.n().iter_u64_digits().next().unwrap_or(0);
    format!("{}:{low:016x}", pk.bits())
}

/// As [`encrypted_number_to_json`] plus a `"key_fp"` field (ignored by phe,
/// checked by [`encrypted_number_from_json`] when present).
pub fn encrypted_number_to_json_with_key(pk: &PublicKey, x: &EncryptedNumber) -> Value {
    let mut v = encrypted_number_to_json(x);
    v["key_fp"] = Value::String(key_fingerprint(pk));
    v
}

/// Parse and validate an encrypted number for `pk` (ciphertext in `Z*_{n²}`;
/// if a `"key_fp"` field is present it must match `pk`).
pub fn encrypted_number_from_json(pk: &PublicKey, v: &Value) -> Result<EncryptedNumber> {
    const WHAT: &str = "invalid encrypted number";
    if let Some(fp) = v.get("key_fp") {
        if fp.as_str() != Some(key_fingerprint(pk).as_str()) {
            return Err(PaillierError::KeyMismatch);
        }
    }
    let s = v
        .get("v")
        .and_then(Value::as_str)
        .ok_or_else(|| PaillierError::Malformed(format!("{WHAT}: missing string field \"v\"")))?;
    if s.is_empty()
        || s.len() > 4 * pk.n_squared().bits() as usize
        || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(PaillierError::Malformed(format!(
            "{WHAT}: \"v\" is not a decimal integer"
        )));
    }
    let c = BigUint::parse_bytes(s.as_bytes(), 10).ok_or_else(|| {
        PaillierError::Malformed(format!("{WHAT}: \"v\" is not a decimal integer"))
    })?;
    let e = v
        .get("e")
        .and_then(Value::as_i64)
        .ok_or_else(|| PaillierError::Malformed(format!("{WHAT}: missing integer field \"e\"")))?;
    let exponent = i32::try_from(e)
        .map_err(|_| PaillierError::Malformed(format!("{WHAT}: exponent out of range")))?;
    Ok(EncryptedNumber {
        ciphertext: Ciphertext::from_biguint(pk, c)?,
        exponent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_roundtrip() {
        for len in 0..20usize {
            let bytes: Vec<u8> = (0..len as u8)
                .map(|x| x.wrapping_mul(37).wrapping_add(200))
                .collect();
            let s = base64url_encode(&bytes);
            assert!(!s.contains('='));
            assert_eq!(base64url_decode(&s).unwrap(), bytes);
        }
        assert_eq!(base64url_encode(b"\xfb\xff"), "-_8");
        assert!(base64url_decode("a").is_err());
        assert!(base64url_decode("a$").is_err());
    }
}
