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

/// Rounds of one secure comparison with its Beaver select where the dealer
/// deals DCF keys ([`crate::DealerComparisons::Dcf`]): the masked opening,
/// then the select.
pub const DCF_COMPARISON_ROUNDS: u32 = 2;

/// Words of the correction words of one `bits`-bit DCF (`sharing::dcf`):
/// per level the seed correction (2 words) and the value correction (1
/// word), the control-bit corrections packed two per level, and the final
/// correction (1 word). A dealer's comparison within `2^bits` takes one of
/// `bits` bits.
pub const fn dcf_cw_words(bits: u32) -> u32 {
    3 * bits + (2 * bits).div_ceil(64) + 1
}

/// Words of one comparison's DCF correction words (`sharing::dcf::CW_WORDS`
/// for 63-bit inputs: 3 per level, the packed control bits, the last):
/// what the dealer sends party 1 and party 1 forwards to party 0.
pub const DCF_CW_WORDS: u32 = dcf_cw_words(COMPARE_FULL_BITS);
const _: () = assert!(DCF_CW_WORDS == 192);

/// Widest comparison: the compared values may be anywhere in Z_2^64 (read
/// as signed). A comparison whose values the compiler bounds by
/// `[-2^bits, 2^bits)` says so in `Instr::Nonlinear`'s `bits`, and the
/// millionaires' comparison then reads fewer bits ([`mill_leaves`]).
pub const COMPARE_FULL_BITS: u32 = 63;

/// Leaves of the MSB without a dealer's correlations, from OT: the
/// millionaires' comparison (`sharing::millionaire`) of the low `4L − 1`
/// bits in 4-bit chunks (the top one has 3), one random 1-of-16 OT per
/// chunk, for compared values in `[-2^bits, 2^bits)`: `L` is the least
/// count with `4L − 1 ≥ bits` (16 for the full 63 bits, 6 for 23). Below
/// `2^bits` in magnitude, bits `4L − 1` to 63 of a value all equal its
/// sign, so bit `4L − 1` is the MSB.
pub const fn mill_leaves(bits: u32) -> u32 {
    let bits = if bits > COMPARE_FULL_BITS {
        COMPARE_FULL_BITS
    } else {
        bits
    };
    (bits + 1).div_ceil(4)
}

/// AND gates per element at each level of the millionaires' tree over
/// `nodes` nodes: adjacent nodes pair up (an odd top node passes through),
/// `2·pairs − 1` gates (the lowest group needs no equality bit).
pub const fn mill_level_ands(nodes: u32) -> u32 {
    let pairs = nodes / 2;
    if pairs == 0 {
        0
    } else {
        2 * pairs - 1
    }
}

/// AND gates per element of the millionaires' tree over `leaves` leaves
/// (15 + 7 + 3 + 1 = 26 for 16 leaves; 5 + 1 + 1 = 7 for 6).
pub const fn mill_and_gates(leaves: u32) -> u32 {
    let (mut nodes, mut gates) = (leaves, 0);
    while nodes > 1 {
        gates += mill_level_ands(nodes);
        nodes = nodes.div_ceil(2);
    }
    gates
}

/// Rounds of the millionaires' MSB over `leaves` leaves: the leaves' flips
/// and masked messages, then one per AND level, `ceil(log2 leaves)` (6 in
/// all for 16 leaves, 5 for 5 to 8). With the OT multiplexer's 2 rounds a
/// full-width comparison and its select take one round fewer than
/// [`COMPARISON_ROUNDS`].
pub const fn mill_rounds(leaves: u32) -> u32 {
    2 + leaves.next_power_of_two().trailing_zeros()
}

/// Statistical slack, in bits, of every mask over the bound of the value it
/// hides (cipher → shares masks, two-party cross-term slots).
pub const MASK_SLACK_BITS: u32 = 40;

/// Bits of the truncation offset: party 0 adds `2^TRUNC_OFFSET_BITS` before
/// shifting its share, so a truncation is exact for every value (at its
/// working scale) below `2^TRUNC_OFFSET_BITS` in magnitude. The compiler's
/// overflow check enforces that bound.
pub const TRUNC_OFFSET_BITS: u32 = 62;

/// Most correlated OTs per piece of dealer-free OT preprocessing (4 MiB of
/// extension message): the runtime generates correlations a piece at a time
/// (one extension message and one reply each, so memory stays bounded), and
/// the compiler counts one round per piece. Measured: 2× faster than pieces
/// of 2^20, whose buffers the allocator does not reuse.
pub const OT_PIECE_COTS: usize = 1 << 18;

/// Most bits of Gilboa corrections per piece (8 MiB).
pub const OT_PIECE_BITS: u64 = 1 << 26;
/// Ring degree of the RLWE parameters (`rlwe::Params::n8192_q128`: three
/// primes, log2 q = 128, 128-bit secure by the HomomorphicEncryption.org
/// table). Both parties tile RLWE products for it.
pub const RLWE_RING_DEGREE: usize = 8192;

/// Bits of the RLWE ciphertext modulus of [`RLWE_RING_DEGREE`]'s parameter
/// set: a query coefficient is `RLWE_Q_BITS / 8` bytes.
pub const RLWE_Q_BITS: u32 = 128;

/// Widest plaintext operand of an RLWE product: any value of `Z_2^64`
/// (a share), split into digits as the noise budget requires.
pub const RLWE_MAX_W_BITS: u32 = 64;

/// Statistical slack, in bits, of the RLWE noise flooding per revealed
/// coefficient (`rlwe::layout::FLOOD_BITS`).
pub const RLWE_FLOOD_BITS: u32 = 40;
