//! Additive secret sharing over Z_2^64 (see issue 4).
//!
//! Two computing parties hold additive shares `x = x0 + x1 mod 2^64` of
//! fixed-point tensors. Everything here is pure maths: communication steps
//! are explicit functions that produce and consume plain-data messages
//! (`*_round1` / `*_round2`), and composite protocols are written per party
//! against the [`protocol::Exchange`] trait, so the same code runs in one
//! process ([`driver`]) and, later, over a network.

pub mod correlations;
pub mod driver;
pub mod error;
pub mod fixed;
pub mod poly;
pub mod protocol;
pub mod ring;
pub mod share;

pub use correlations::{
    CorrelationRequest, CorrelationShare, Correlations, Dealer, DealerMsg, DealerSource,
    PrecomputedCorrelations, RecordingCorrelations, SeedMsg, TripleShare, TruncShare,
};
pub use error::{Result, SharingError};
pub use fixed::{FixedPoint, DEFAULT_FRAC_BITS};
pub use protocol::{BeaverMsg, Engine, Exchange, Message, MulState, TruncMode, TruncState};
pub use ring::RingTensor;
pub use share::{reconstruct, share, share_fixed, share_with_rng, OpenMsg, Party, Share};
