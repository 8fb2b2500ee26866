//! Additive secret sharing over Z_2^64 (see issue 4).
//!
//! Two computing parties hold additive shares `x = x0 + x1 mod 2^64` of
//! fixed-point tensors. Everything here is pure maths: communication steps
//! are explicit functions that produce and consume plain-data messages
//! (`*_round1` / `*_round2`), and composite protocols are written per party
//! against the [`protocol::Exchange`] trait, so the same code runs in one
//! process ([`driver`]) and, later, over a network.
//!
//! Map of the module:
//! - [`ring`]: [`RingTensor`] (flat `Vec<u64>` + shape), wrapping
//!   arithmetic, cache-friendly parallel matmul (`[m,k]@[k,n]`, `[m,k]@[k]`,
//!   `[k]@[k]`), and a tiny Z_m helper for the talk's example.
//! - [`fixed`]: [`FixedPoint`] encode/decode with range checks.
//! - [`mod@share`]: [`Party`], [`Share`], [`fn@share`] (OS-seeded ChaCha20),
//!   [`reconstruct`], open/reveal messages ([`OpenMsg`]), local linear ops.
//! - [`correlations`]: the [`Correlations`] trait (the only thing the online
//!   protocols use), the seed-expanding [`Dealer`] / [`DealerSource`], the
//!   [`PrecomputedCorrelations`] store (plug-in point for a Paillier-based
//!   offline phase) and [`RecordingCorrelations`].
//! - [`protocol`]: [`Engine`] — Beaver products (elementwise and one matrix
//!   triple per matmul), dealer and local truncation, fixed-point products,
//!   polynomial evaluation, sigmoid/tanh.
//! - [`compare`]: secure comparison — MSB/sign by a masked opening and a
//!   log-depth carry tree on boolean shares (8 rounds), `less_than`,
//!   `select`, `relu`, `max`/`min`, `max`/`argmax` along the last axis,
//!   `clamp`, clamped sigmoid/tanh.
//! - [`millionaire`]: the MSB without a dealer's correlations (CrypTFlow2's
//!   millionaires' protocol on random 1-of-16 OT leaves and an AND tree,
//!   6 rounds), for the comparisons whose correlations come from OT.
//! - [`poly`]: dependency-free `f64` fitting (least squares on Chebyshev
//!   nodes, max error measured on a dense grid) and the shipped sigmoid fits.
//! - [`driver`]: in-process two-party runner for tests and benches.
//!
//! Shares, masks and opened values never appear in `Debug` output or error
//! messages; malformed input (shapes, message lengths) is an error, never a
//! panic.

pub mod compare;
pub mod correlations;
pub mod dcf;
pub mod driver;
pub mod error;
pub mod fixed;
pub mod millionaire;
pub mod poly;
pub mod protocol;
pub mod ring;
pub mod share;

pub use compare::{ClampMode, MsbState, MsbStep, SelectKind, SelectState, MSB_ROUNDS};
pub use correlations::{
    AndTripleShare, CorrelationRequest, CorrelationShare, Correlations, DaBitShare, DcfShare,
    Dealer, DealerMsg, DealerSource, MaskedBitsShare, OneOf16Share, OneOf16Side, OtSide,
    PrecomputedCorrelations, RandomOtShare, RecordingCorrelations, SeedMsg, TripleShare,
    TruncShare,
};
pub use error::{Result, SharingError};
pub use fixed::{scale_round, FixedPoint, DEFAULT_FRAC_BITS};
pub use protocol::{
    BeaverMsg, Engine, Exchange, HolderState, Message, MulState, TruncMode, TruncState,
    WrapTruncState,
};
pub use ring::RingTensor;
pub use share::{reconstruct, share, share_fixed, share_with_rng, OpenMsg, Party, Share};
