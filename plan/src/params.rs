//! Protocol parameters the compiler and the runtime must agree on: the
//! compiler costs and bounds plans with them, the runtime executes with them.
//! Change one here and both sides follow; costs (seconds, bytes per
//! primitive) live in the compiler's `cost.rs`, not here.

/// Rounds of one MSB extraction (masked opening, a 6-level carry tree of AND
/// gates, a bit conversion): the core of every secure comparison.
pub const MSB_ROUNDS: u32 = 8;

/// AND gates per element of the MSB extraction's carry tree
/// (64 + 32 + 16 + 8 + 4 + 1): one AND triple each.
pub const AND_GATES_PER_MSB: u32 = 125;

/// Rounds of one secure comparison with its Beaver select: the MSB
/// extraction, then one round for the select.
pub const COMPARISON_ROUNDS: u32 = MSB_ROUNDS + 1;

/// Statistical slack, in bits, of every mask over the bound of the value it
/// hides (cipher → shares masks, two-party cross-term slots).
pub const MASK_SLACK_BITS: u32 = 40;

/// Bits of the truncation offset: party 0 adds `2^TRUNC_OFFSET_BITS` before
/// shifting its share, so a truncation is exact for every value (at its
/// working scale) below `2^TRUNC_OFFSET_BITS` in magnitude. The compiler's
/// overflow check enforces that bound.
pub const TRUNC_OFFSET_BITS: u32 = 62;
