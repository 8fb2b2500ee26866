//! Paillier homomorphic encryption (see issue 3).
//!
//! # Overview
//!
//! * [`Keypair`] generation: `n = p·q` with `p`, `q` random primes of exactly
//!   `|n|/2` bits (top two bits set so `|n|` is exact), `p ≠ q`,
//!   `gcd(n, (p-1)(q-1)) = 1`. Default `|n| = 3072` ([`DEFAULT_KEY_BITS`]);
//!   sizes above [`MAX_KEY_BITS`] = 16384 are refused ([`check_key_bits`]),
//!   and so is anything below [`MIN_KEY_BITS`] = 2048 except through the
//!   test-only constructors whose names say so
//!   ([`Keypair::generate_insecure_for_tests`],
//!   [`Keypair::from_primes_for_tests`]). Randomness comes from an OS-seeded
//!   CSPRNG (`rand::rng()`), or from a caller-supplied `CryptoRng`.
//! * `g = n + 1`, so `g^m = 1 + m·n mod n²` (no exponentiation).
//! * Decryption uses the CRT with `hp`, `hq`, `p⁻¹ mod q` precomputed once per
//!   key; the two halves run in parallel with `rayon::join`. It is
//!   constant-time in the key (see "Timing" below).
//! * Homomorphic operations on [`PublicKey`]: ciphertext + ciphertext,
//!   ciphertext + plaintext, ciphertext × public integer (negative too, via a
//!   modular inverse), and the encrypted dot product
//!   [`PublicKey::dot`] computed as one multi-exponentiation (Pippenger-style
//!   buckets, see [`multiexp`]) rather than a loop of separate powers.
//!
//! # Fast encryption
//!
//! * Key owner: [`PrivateKey::encrypt_crt`] computes `r^n mod p²` and
//!   `r^n mod q²` and recombines.
//! * Public key, Damgård–Jurik–Nielsen variant ([`PublicKey::encrypt`]):
//!   `c = (1 + m·n) · h_s^α mod n²` with `h = -x² mod n` for a random unit
//!   `x`, `h_s = h^n mod n²` a public fixed base, and a **short exponent**
//!   `α` of [`DJN_EXPONENT_BITS`] = 256 bits (= 2κ for κ = 128, the security
//!   level of 3072-bit keys; we use it for 2048-bit keys too). The DJN paper
//!   takes `α` of `⌈|n|/2⌉` bits; using 2κ bits relies on the *short-exponent
//!   indistinguishability* assumption (h_s^α with a 2κ-bit α is
//!   indistinguishable from a uniformly random element of ⟨h_s⟩, in the style
//!   of Koshiba–Kurosawa's short-exponent DDH), on top of DCR. `h_s^α` is
//!   evaluated with a fixed-base windowed table (window
//!   [`djn::WINDOW_BITS`] bits: `⌈256/6⌉ = 43` modular multiplications and no
//!   squaring), built lazily once per public key and shared by clones.
//!   Every loader of a bare `n` (e.g. a python-paillier JWK) draws its own
//!   `h` — `h` is not needed for decryption.
//! * [`RandomizerPool`]: randomisers `h_s^α` precomputed offline (in
//!   parallel), so online encryption is one multiplication modulo `n²`.
//!   [`PublicKey::rerandomize`] multiplies a ciphertext by a fresh randomiser.
//!
//! # Encoding ([`encoding`])
//!
//! Signed integers live in `Z_n` with `max_int = ⌊n/3⌋ - 1`: values in
//! `[-max_int, max_int]` are valid; `x ≤ max_int` decodes to `x`,
//! `x ≥ n - max_int` decodes to `x - n`, and anything in the middle band is
//! [`PaillierError::Overflow`], never a wrong number. Reals are fixed point
//! `mantissa · 16^exponent`, the same convention as python-paillier.
//!
//! # Packing ([`packing`])
//!
//! See the module docs of [`packing`] for the slot layout and limits.
//!
//! # Interop ([`jwk`])
//!
//! python-paillier's `pheutil` JSON: public key
//! `{"kty":"DAJ","alg":"PAI-GN1","key_ops":["encrypt"],"n":<base64url>,"kid":..}`,
//! private key `{"kty":"DAJ","key_ops":["decrypt"],"p":..,"q":..,"pub":{..},"kid":..}`
//! (as phe ≥ 1.4 writes and reads it; the older form with `"lambda"` and
//! `"mu"` instead of `"p"` and `"q"` is read too, never written),
//! encrypted numbers `{"v":"<decimal>","e":<exponent>}`. Veil's CLI adds an
//! optional public `"key_fp"` (bit length and low 64 bits of `n`), ignored by
//! phe, so that a number paired with the wrong key is a clear error; without
//! it (phe-made files) a wrong key is caught only when the ciphertext is not
//! in `Z*_{n²}` or decrypts into the overflow band. Moduli above
//! [`MAX_KEY_BITS`] are refused when parsed.
//!
//! # Timing
//!
//! What runs in constant time (the same instructions and memory accesses
//! for every secret value of a given public size):
//!
//! * The Montgomery products, squarings and reductions of the private
//!   `monty` module: loops run over the limb count, the final conditional
//!   subtraction is always computed and chosen with a mask, and
//!   `u64 × u64 → u128` is a single `mul` instruction on x86-64 and
//!   aarch64. `R² mod n` is found by doubling with masked subtraction, and
//!   reduction of a ciphertext modulo a secret `p²` uses Montgomery
//!   reductions, not division.
//! * Exponentiation by a secret exponent: a fixed-window ladder (as
//!   crypto-bigint does). For a public bound on the exponent's bit length
//!   (the bit length of `p`) it runs the same squarings and multiplications
//!   in the same order, and reads each window's table entry by a masked
//!   scan over every entry. A test records the sequence of products for
//!   exponents of the same length and checks it is identical.
//! * Decryption ([`PrivateKey::decrypt`]): `c^{p−1} mod p²` by the ladder,
//!   `L(x) = (x − 1)/p` as a product with `p⁻¹ mod 2^{64k}` (exact division
//!   without a division), `· h_p mod p` as a Montgomery product, and the
//!   CRT recombination with masked modular subtraction and schoolbook
//!   products on fixed limb counts. The key-owner CRT encryptions recombine
//!   the same way.
//! * Key setup's secret constants: `h_p = (p − (q mod p))⁻¹ mod p` (the
//!   closed form of `L(g^{p−1} mod p²)⁻¹`), `p⁻¹ mod q` by Fermat
//!   (`a^{p−2}` through the ladder, result checked), `(p²)⁻¹ mod q²` by one
//!   Newton step from it, `p⁻¹ mod 2^{64k}` by Newton's iteration; and the
//!   Miller–Rabin exponentiations of key generation use the ladder.
//!
//! What is variable-time, and why that is acceptable (or not yet fixed):
//!
//! * `*_vartime` functions: the sliding-window exponentiation (used only
//!   with public exponents: `n`, public scalars, public weights of the dot
//!   product; its branches follow the exponent, its products are the
//!   constant-time ones above, so a secret *base* such as `r` in `r^n` does
//!   not leak through it), [`PrivateKey::decrypt_plain_formula_vartime`]
//!   and [`PrivateKey::mu_vartime`] (test cross-checks, num-bigint's
//!   `modpow`/`modinv` on secrets), and loading a key from phe's old
//!   `lambda` form (factoring `n` from `λ` takes square roots with
//!   num-bigint, once per load).
//! * The DJN fixed-base evaluation `h_s^α` skips zero digits of the secret
//!   randomness `α` and indexes its table by them (`FixedBaseTable::pow_vartime`).
//!   It leaks timing about `α`, not about the key; a masked scan over each
//!   63-entry row would close it at a cost to encryption. Not done yet.
//! * num-bigint is not constant-time and does not claim to be. Its
//!   numbers are normalised (no leading zero limbs), so lengths follow
//!   values; its multiplication picks schoolbook, Karatsuba or Toom-3 by
//!   operand *length* (a value's leading zero limb, probability about
//!   2⁻⁶⁴, can change the path), and its division (Knuth's algorithm D)
//!   has data-dependent correction steps. So what still runs through it is
//!   named here: turning results into `BigUint`s (the plaintext, once
//!   decrypted, is the caller's), the comparison that orders `p < q`, the
//!   `gcd(n, φ)` check, and the products that form `n`, `p²`, `p − 1` and
//!   `φ` at key setup, and in key generation the primality tests' trial
//!   division and the squarings that follow each ladder. These run once
//!   per key, not once per ciphertext, so an attacker gets a single trace
//!   of them.
//!
//! # Zeroization
//!
//! [`PrivateKey`] (and through it [`Keypair`]) wipes its secrets on drop:
//! the limb vectors with the `zeroize` crate (whole capacity), the
//! Montgomery contexts of `p²`, `q²`, `p`, `q`, the fixed-base tables
//! modulo `p²` and `q²`, and the `BigUint`s `p`, `q`, `p − 1`, `q − 1`
//! (whose limbs are overwritten in place through `assign_from_slice` with
//! zeros: num-bigint has no zeroize support). What cannot be guaranteed:
//! num-bigint's arithmetic allocates temporaries (products, remainders,
//! copies) that are freed without being wiped, and a `BigUint`'s spare
//! capacity beyond its current length is not reachable; values returned to
//! the caller ([`PrivateKey::phi`], decrypted plaintexts) are the caller's
//! to wipe.
//!
//! # Hygiene
//!
//! No I/O here. `Debug` of [`PrivateKey`] and [`Keypair`] is redacted; error
//! messages never contain keys, plaintexts or randomness.

pub mod djn;
pub mod encoding;
pub mod jwk;
pub mod keys;
mod monty;
pub mod multiexp;
pub mod ops;
pub mod packing;
mod primes;

pub use djn::RandomizerPool;
pub use encoding::{EncodedNumber, EncryptedNumber};
pub use keys::{check_key_bits, KeygenEvent, Keypair, PrivateKey, PublicKey};
pub use ops::Ciphertext;
pub use packing::PackingLayout;

/// Default modulus size in bits.
pub const DEFAULT_KEY_BITS: u64 = 3072;
/// Smallest modulus size accepted outside the test-only constructors.
pub const MIN_KEY_BITS: u64 = 2048;
/// Largest modulus size generated or loaded from JSON: one bound for both,
/// so every key Veil makes it can read back, and a hostile file or a typo
/// in `--keysize` cannot make it work without end.
pub const MAX_KEY_BITS: u64 = 16384;
/// Bit length of the short DJN exponent `α`.
pub const DJN_EXPONENT_BITS: u64 = 256;

/// Everything that can go wrong. Messages never contain secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaillierError {
    #[error("key size of {0} bits is below the {MIN_KEY_BITS}-bit minimum")]
    KeyTooSmall(u64),
    #[error("key size of {0} bits is above the {MAX_KEY_BITS}-bit maximum")]
    KeyTooLarge(u64),
    #[error("key size of {0} bits is not supported (must be even and at least 8)")]
    BadKeySize(u64),
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    #[error("ciphertext is not an element of Z*_(n^2) for this key")]
    InvalidCiphertext,
    #[error("the number was encrypted under a different public key")]
    KeyMismatch,
    #[error("plaintext is out of range for this key")]
    PlaintextOutOfRange,
    #[error("decrypted value lies in the overflow band (result too large, or wrong key)")]
    Overflow,
    #[error("length mismatch: {0} ciphertexts but {1} weights")]
    LengthMismatch(usize, usize),
    #[error("randomiser pool is empty")]
    PoolEmpty,
    #[error("number is not finite")]
    NotFinite,
    #[error("malformed input: {0}")]
    Malformed(String),
    #[error("packing: {0}")]
    Packing(String),
}

/// Shorthand result type.
pub type Result<T> = std::result::Result<T, PaillierError>;
