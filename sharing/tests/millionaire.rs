//! The millionaires' comparison ([`sharing::millionaire`], the MSB of the
//! dealer-free comparisons) against plaintext: random values, the ring's
//! edges (0, ±1, 2^63 − 1, −2^63), shares whose low 63 bits tie (no
//! carry), and pairs of shares that differ in one 4-bit chunk only (every
//! chunk boundary); rounds, bytes and malformed peer messages. The 1-of-16
//! OTs and AND triples come from the seed-expanding dealer, which serves
//! them for tests; without a dealer they come from IKNP (the runtime's
//! `preprocess::otgen`). Proptest seeds are fixed.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use sharing::compare::XorBits;
use sharing::driver::{ot_select_engines_for_tests, run_two_party};
use sharing::millionaire;
use sharing::*;

fn cfg() -> Config {
    Config {
        cases: 32,
        rng_seed: RngSeed::Fixed(0x6d11_1e55),
        failure_persistence: None,
        ..Config::default()
    }
}

fn engines(seed: u64) -> (Engine<DealerSource>, Engine<DealerSource>) {
    ot_select_engines_for_tests(seed)
}

/// Shares `(x0, x − x0)` of each `x`, with the given `x0`.
fn shares(pairs: &[(u64, u64)]) -> (Share, Share) {
    let n = pairs.len();
    let s0: Vec<u64> = pairs.iter().map(|&(_, x0)| x0).collect();
    let s1: Vec<u64> = pairs.iter().map(|&(x, x0)| x.wrapping_sub(x0)).collect();
    (
        Share::new(Party::P0, RingTensor::new(s0, vec![n]).unwrap()),
        Share::new(Party::P1, RingTensor::new(s1, vec![n]).unwrap()),
    )
}

fn bits_of(b0: &XorBits, b1: &XorBits) -> Vec<bool> {
    assert_eq!(b0.n, b1.n);
    (0..b0.n)
        .map(|i| ((b0.words[i / 64] ^ b1.words[i / 64]) >> (i % 64)) & 1 == 1)
        .collect()
}

/// Runs the comparison on `(x, x0)` pairs and checks every bit against
/// the sign of `x`; returns party 0's and party 1's exchange stats.
fn check(pairs: &[(u64, u64)], seed: u64) -> (driver::ExchangeStats, driver::ExchangeStats) {
    check_within(pairs, seed, 63)
}

/// [`check`] with both engines told the values lie within `2^bits`.
fn check_within(
    pairs: &[(u64, u64)],
    seed: u64,
    bits: u32,
) -> (driver::ExchangeStats, driver::ExchangeStats) {
    let (x0, x1) = shares(pairs);
    let (mut e0, mut e1) = engines(seed);
    e0.set_compare_bits(bits).unwrap();
    e1.set_compare_bits(bits).unwrap();
    let ((b0, s0), (b1, s1)) =
        run_two_party(|ex| e0.msb_bits(ex, &x0), |ex| e1.msb_bits(ex, &x1)).unwrap();
    let got = bits_of(&b0, &b1);
    for (k, (&(x, x0), g)) in pairs.iter().zip(got).enumerate() {
        assert_eq!(
            g,
            (x as i64) < 0,
            "element {k}: x = {x:#x}, x0 = {x0:#x}, within 2^{bits}"
        );
    }
    // The bits past n are zero in both shares.
    let tail = b0.n % 64;
    if tail != 0 {
        assert_eq!(b0.words.last().unwrap() >> tail, 0);
        assert_eq!(b1.words.last().unwrap() >> tail, 0);
    }
    (s0, s1)
}

const LOW63: u64 = (1 << 63) - 1;

/// Edge values and, for each, shares that tie in the low 63 bits, that
/// carry by one, and that differ by one in a single chunk `k` (both ways).
fn edge_pairs(r: u64) -> Vec<(u64, u64)> {
    let xs = [
        0u64,
        1,
        u64::MAX,
        LOW63,
        1 << 63,
        (1 << 63) + 1,
        2,
        u64::MAX - 1,
    ];
    let mut out = Vec::new();
    for &x in &xs {
        for x0 in [0, 1, u64::MAX, LOW63, 1 << 63, x, r] {
            out.push((x, x0));
        }
    }
    for k in 0..16 {
        for &base in &[0u64, LOW63, r & LOW63] {
            // a = x0' and b = low 63 bits of ¬x1: equal low bits mean
            // x0' + x1' = 2^63 − 1 (no carry); then move chunk k of a by
            // ±1 (where it stays a 4-bit chunk) to make a > b or a < b in
            // that chunk alone.
            let chunk = (base >> (4 * k)) & 15;
            for delta in [0i64, 1, -1, 15, -15] {
                let c = chunk as i64 + delta;
                let top = if k == 15 { 7 } else { 15 };
                if !(0..=top).contains(&c) {
                    continue;
                }
                let a = (base & !(15 << (4 * k))) | ((c as u64) << (4 * k));
                let b = base;
                for hi in [0u64, 1 << 63] {
                    let x0 = a | hi;
                    let x1 = (!b & LOW63) | (r & (1 << 63));
                    out.push((x0.wrapping_add(x1), x0));
                }
            }
        }
        // Chunk boundaries of the value itself.
        for x in [1u64 << (4 * k), (1u64 << (4 * k)).wrapping_sub(1)] {
            out.push((x, r));
            out.push((x.wrapping_neg(), r.rotate_left(7)));
        }
    }
    out
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn msb_of_random_shares(xs in proptest::collection::vec((any::<u64>(), any::<u64>()), 0..300),
                            seed in any::<u64>()) {
        check(&xs, seed);
    }

    #[test]
    fn msb_of_edges_ties_and_chunk_boundaries(r in any::<u64>(), seed in any::<u64>()) {
        check(&edge_pairs(r), seed);
    }

    /// Told the values lie in `[-2^bits, 2^bits)`, the comparison reads
    /// `4L − 1` bits; every value in the bound, its edges, and shares
    /// that tie in the bits read (no carry) or carry by one.
    #[test]
    fn msb_within_a_bound(bits in 1u32..=63, xs in proptest::collection::vec((any::<u64>(), any::<u64>()), 0..200),
                          r in any::<u64>(), seed in any::<u64>()) {
        let bound = 1i128 << bits;
        let inside = |v: u64| (((v as i64) as i128).rem_euclid(2 * bound) - bound) as i64 as u64;
        let mut pairs: Vec<(u64, u64)> = xs.iter().map(|&(x, x0)| (inside(x), x0)).collect();
        let w = 4 * sharing_leaves(bits) - 1;
        let low = if w == 63 { LOW63 } else { (1u64 << w) - 1 };
        for x in [0i128, 1, -1, bound - 1, -bound, bound / 2, -bound / 2] {
            let x = x as i64 as u64;
            for x0 in [0, 1, u64::MAX, r, low, !low, low.wrapping_add(1)] {
                pairs.push((x, x0));
            }
        }
        // Shares whose low w bits tie (x0' + x1' = 2^w − 1) and one more.
        for x in [0u64, low, low.wrapping_add(1)] {
            let x0 = r & low;
            pairs.push((x, x0));
            pairs.push((x, x0 | (r & !low)));
        }
        let pairs: Vec<(u64, u64)> = pairs
            .into_iter()
            .filter(|&(x, _)| ((x as i64) as i128) >= -bound && ((x as i64) as i128) < bound)
            .collect();
        let (s0, s1) = check_within(&pairs, seed, bits);
        prop_assert_eq!(s0.rounds, millionaire::rounds(bits));
        prop_assert_eq!(s1.rounds, millionaire::rounds(bits));
    }

    #[test]
    fn msb_of_small_values_and_their_negations(xs in proptest::collection::vec(-70_000i64..70_000, 1..100),
                                              r in any::<u64>(), seed in any::<u64>()) {
        let pairs: Vec<(u64, u64)> = xs.iter().enumerate()
            .map(|(i, &x)| (x as u64, r.rotate_left(i as u32)))
            .collect();
        check(&pairs, seed);
    }
}

/// Bytes party 0 and party 1 send comparing `n` elements over `leaves`
/// leaves whose AND levels have `gates` gates: per element 32 bits a leaf
/// from party 0 and 4 from party 1, bit-packed; each AND level's `e ‖ f`
/// from both.
fn bytes_sent(n: usize, leaves: usize, gates: &[usize]) -> (usize, usize) {
    let tree = 2 * gates.iter().map(|w| (n * w).div_ceil(64)).sum::<usize>();
    (
        8 * ((n * leaves).div_ceil(2) + tree),
        8 * ((4 * leaves * n).div_ceil(64) + tree),
    )
}

#[test]
fn rounds_and_bytes() {
    let pairs: Vec<(u64, u64)> = (0..100u64)
        .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i << 40))
        .collect();
    let (s0, s1) = check(&pairs, 5);
    assert_eq!((s0.rounds, s1.rounds), (6, 6));
    let n = pairs.len();
    assert_eq!(
        (s0.bytes_sent, s1.bytes_sent),
        bytes_sent(n, 16, &[15, 7, 3, 1])
    );
    // An empty tensor compares in the same rounds, sending nothing.
    let (s0, _) = check(&[], 6);
    assert_eq!(s0.rounds, 6);
    assert_eq!(s0.bytes_sent, 0);
    // Within 2^31: 8 leaves, three AND levels (7, 3, 1 gates), 5 rounds.
    let small: Vec<(u64, u64)> = (0..100i64)
        .map(|i| (((i - 50) * 40_000_000) as u64, (i as u64) << 40))
        .collect();
    let (s0, s1) = check_within(&small, 5, 31);
    assert_eq!((s0.rounds, s1.rounds), (5, 5));
    assert_eq!((s0.bytes_sent, s1.bytes_sent), bytes_sent(n, 8, &[7, 3, 1]));
    // Within 2^22: 6 leaves, levels of 6, 3 and 2 nodes (5, 1 and 1
    // gates: the odd top node of the second level passes through).
    let n: usize = 50;
    let smaller: Vec<(u64, u64)> = (0..n as i64)
        .map(|i| {
            (
                ((i - 25) * 160_000) as u64,
                (i as u64).wrapping_mul(0x9e37_79b9),
            )
        })
        .collect();
    let (s0, s1) = check_within(&smaller, 7, 22);
    assert_eq!((s0.rounds, s1.rounds), (5, 5));
    assert_eq!((s0.bytes_sent, s1.bytes_sent), bytes_sent(n, 6, &[5, 1, 1]));
}

/// Leaves of the comparison within `2^bits`.
fn sharing_leaves(bits: u32) -> u32 {
    plan::params::mill_leaves(bits)
}

#[test]
fn request_order_is_the_ots_then_the_triples() {
    let mut want = Vec::new();
    millionaire::requests(10, 63, &mut want).unwrap();
    assert_eq!(
        want,
        vec![
            CorrelationRequest::OneOf16Ots { count: 160 },
            CorrelationRequest::AndTriples {
                bits: 64 * (3 + 2 + 1 + 1)
            },
        ]
    );
    let (x0, x1) = shares(&[(5, 9); 10]);
    let (s0, s1, _) = DealerSource::online_pair(Dealer::new_with_fixed_seed_for_tests(2));
    let fp = FixedPoint::default();
    let mut e0 = Engine::new(fp, TruncMode::Dealer, RecordingCorrelations::new(s0))
        .with_select(SelectKind::Ot);
    let mut e1 = Engine::new(fp, TruncMode::Dealer, s1).with_select(SelectKind::Ot);
    run_two_party(|ex| e0.msb_bits(ex, &x0), |ex| e1.msb_bits(ex, &x1)).unwrap();
    assert_eq!(e0.correlations().log, want);
    // Within 2^20: 6 leaves, levels of 5, 1 and 1 gates.
    let mut narrow = Vec::new();
    millionaire::requests(10, 20, &mut narrow).unwrap();
    assert_eq!(
        narrow,
        vec![
            CorrelationRequest::OneOf16Ots { count: 60 },
            CorrelationRequest::AndTriples {
                bits: 64 * (1 + 1 + 1)
            },
        ]
    );
    assert!(millionaire::requests(10, 0, &mut narrow).is_err());
    assert!(millionaire::requests(10, 64, &mut narrow).is_err());
}

/// An exchange that answers the `k`-th message with `replies[k]`.
struct Canned(Vec<Message>);

impl Exchange for Canned {
    fn exchange(&mut self, _: Message) -> Result<Message> {
        if self.0.is_empty() {
            return Err(SharingError::BadParameter("no more canned replies"));
        }
        Ok(self.0.remove(0))
    }
}

fn words(data: Vec<u64>) -> Message {
    let len = data.len();
    Message::Open(OpenMsg {
        data,
        shape: vec![len],
    })
}

#[test]
fn malformed_peer_messages_are_errors() {
    let n = 3;
    let (x0, x1) = shares(&[(1, 2), (3, 4), (5, 6)]);
    let good0 = [words(vec![7; n]), words(vec![])];
    let good1 = [words(vec![]), words(vec![9; 8 * n])];
    let tree1 = words(vec![0; 2]);
    // Party 0 (sender of the leaves): flips of the wrong length or shape,
    // a non-empty second message, a short AND opening.
    let bad0: Vec<Vec<Message>> = vec![
        vec![words(vec![1; n - 1])],
        vec![Message::Open(OpenMsg {
            data: vec![1; n],
            shape: vec![1, n],
        })],
        vec![good0[0].clone(), words(vec![1])],
        vec![good0[0].clone(), good0[1].clone(), words(vec![0; 1])],
        vec![],
    ];
    for replies in bad0 {
        let (mut e0, _) = engines(1);
        assert!(e0.msb_bits(&mut Canned(replies), &x0).is_err());
    }
    // Party 1: a non-empty first message, leaves of the wrong length, a
    // long AND opening.
    let bad1: Vec<Vec<Message>> = vec![
        vec![words(vec![1])],
        vec![good1[0].clone(), words(vec![9; 8 * n - 1])],
        vec![good1[0].clone(), good1[1].clone(), words(vec![0; 3])],
    ];
    for replies in bad1 {
        let (_, mut e1) = engines(1);
        assert!(e1.msb_bits(&mut Canned(replies), &x1).is_err());
    }
    // Well-formed replies go through the first level.
    let (_, mut e1) = engines(1);
    let err = e1
        .msb_bits(
            &mut Canned(vec![good1[0].clone(), good1[1].clone(), tree1]),
            &x1,
        )
        .unwrap_err();
    assert!(err.to_string().contains("no more canned replies"), "{err}");
    // A source without the 1-of-16 OTs is an error, not a panic.
    let mut pre = Engine::new(
        FixedPoint::default(),
        TruncMode::Dealer,
        PrecomputedCorrelations::new(Party::P0),
    )
    .with_select(SelectKind::Ot);
    assert!(pre.msb_bits(&mut Canned(good0.to_vec()), &x0).is_err());
    // A share of the other party is refused.
    let (mut e0, _) = engines(1);
    assert!(e0.msb_bits(&mut Canned(good0.to_vec()), &x1).is_err());
}
