//! Oblivious transfer for Veil's dealer-free two-party mode: base OT, OT
//! extension, the OT flavours built on it, and the correlations the
//! executor consumes (Beaver triples over Z_2^64, AND triples).
//!
//! Pure maths, no I/O: every protocol is sans-I/O. Each party is a value
//! with methods of the form "my state + the peer's message in → my message
//! out"; messages are plain structs with `to_bytes` / `from_bytes`, and
//! `from_bytes` checks every length and field and returns a typed
//! [`error::Error`] on malformed input, never panics. `Debug` of anything
//! that holds a secret prints sizes and indices only. Keys, seeds and `Δ`
//! come from the caller's `CryptoRng` (use `rand::rng()`, seeded from the
//! OS); fixed seeds appear only in tests and in functions named
//! `*_for_tests`. Secrets are zeroized on drop.
//!
//! # The pieces
//!
//! | module | what | paper |
//! |---|---|---|
//! | [`base`] | 1-of-2 base OT over Ristretto255, keys bound to the transcript | Chou–Orlandi 2015, fixed per Hauck–Loss 2017 |
//! | [`softspoken`] | OT extension to correlated OT with a global `Δ`, 32 bits per OT (`k = 4`; `k = 1` is IKNP's 128) | Roy, CRYPTO 2022; Ishai–Kilian–Nissim–Petrank 2003 |
//! | [`cot`] | the correlated OTs extension produces, with a global `Δ` | ALSZ 2013 (C-OT) |
//! | [`ot`] | random OT, chosen-message OT (blocks, `u64`, bytes), choice flips | ALSZ 2013; Beaver 1995 |
//! | [`one_of_n`] | 1-of-2^l OT from l correlated OTs | Naor–Pinkas 2005 |
//! | [`arith`] | products and Beaver triples over Z_2^64 | Gilboa 1999; ABY 2015 |
//! | [`boolean`] | AND triples from random OTs, no extra messages | ALSZ 2013 |
//! | [`crypto`] | AES-128 PRG; tccr hash from fixed-key AES | Guo–Katz–Wang–Yu 2020 |
//! | [`wide_aes`] | AES-128 on many blocks per call, one key or several at once (VAES when present) | FIPS-197; Gueron 2010 (AES-NI) |
//! | [`transpose`] | 128 × 128 bit-matrix transpose (AVX2 when present) | Eklundh; Hacker's Delight |
//!
//! # A session, both parties in one process
//!
//! ```
//! use ot::{arith, softspoken};
//! let mut rng = rand::rng();
//! // Party 1 (extension receiver) starts the base OTs.
//! let (setup, hello) = softspoken::Receiver::setup(&mut rng)?;
//! // Party 0 (extension sender) answers; it draws Δ.
//! let hello = ot::base::BaseHello::from_bytes(&hello.to_bytes())?;
//! let (mut sender, reply) = softspoken::Sender::setup(&hello, &mut rng)?;
//! let mut receiver = setup.finish(&ot::base::BaseReply::from_bytes(&reply.to_bytes())?)?;
//! // 1,000 Beaver triples: 128 random COTs each, one message each way.
//! let (ext, r_cots) = receiver.extend_random(128 * 1000, &mut rng)?;
//! let s_cots = sender.extend(&softspoken::ExtendMsg::from_bytes(&ext.to_bytes())?)?;
//! let (corrections, t0) = arith::beaver_sender(&s_cots, &mut rng)?;
//! let t1 = arith::beaver_receiver(&r_cots, &corrections)?;
//! let a = t0.a[0].wrapping_add(t1.a[0]);
//! let b = t0.b[0].wrapping_add(t1.b[0]);
//! assert_eq!(t0.c[0].wrapping_add(t1.c[0]), a.wrapping_mul(b));
//! # Ok::<(), ot::error::Error>(())
//! ```
//!
//! # SoftSpoken, and IKNP as its k = 1
//!
//! The extension is SoftSpoken with `k = 4` ([`softspoken`], semi-honest,
//! repetition code): 32 bits on the wire per OT where IKNP sends 128, for
//! `(2^(k+1) − 1)/k` AES blocks per OT (7.75 against IKNP's 3) and a
//! one-time GGM setup (3 KiB in the first message). With `k = 1` it is
//! IKNP, column for column, so IKNP has no module of its own (it had one
//! until SoftSpoken landed; the figures below compare with it). Both
//! parties on one core, batches of 2^16, the 2-core machine at load
//! average 3–6: IKNP 57.6 M COTs per second, SoftSpoken 40.9 M at k = 2,
//! 22.0 M at k = 4, 3.1 M at k = 8 (`cargo bench -p ot --bench ot --
//! cot/`; BENCHMARKS.md, "SoftSpoken"). k = 4 is the choice: a quarter of
//! the traffic (a ReLU's 118 COTs are 472 bytes instead of 1,888) and
//! above the issue's 10 M per second. Earlier (IKNP only) the component
//! costs were fixed-key AES at 2–3 ns per block and a 128 × 128 transpose
//! at 0.3–0.5 µs; SoftSpoken's AES work dominated its profile (half the
//! time). Since [`wide_aes`] (VAES, four leaves' keys per 512-bit
//! instruction, detected at run time) k = 4 runs at 40–45 M COTs per
//! second on the same machine (BENCHMARKS.md, "SoftSpoken on VAES"); on
//! CPUs without VAES the `aes` crate path keeps the figures above.
//!
//! # Security
//!
//! Semi-honest, κ = 128 bits computational, 40 bits statistical where masks
//! are used by callers. The assumptions are in `ot/SECURITY.md` and in each
//! module: CDH in Ristretto255 with SHA-256 as a random oracle (base OT),
//! AES-128 as a PRF (PRG), and fixed-key AES as a random permutation (tccr
//! hash).

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod arith;
pub mod base;
pub mod block;
pub mod boolean;
pub mod cot;
pub mod crypto;
pub mod error;
pub mod one_of_n;
pub mod ot;
pub mod softspoken;
pub mod transpose;
pub mod wide_aes;
mod wire;

pub use block::Block;
pub use error::{Error, Result};
