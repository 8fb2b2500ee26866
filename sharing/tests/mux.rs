//! The OT multiplexer ([`Engine::mux`]) and the comparisons that select
//! with it ([`SelectKind::Ot`]), against plaintext: random and edge inputs
//! (0, ±1, 2^63 − 1, −2^63, equal values), rounds and bytes, malformed peer
//! messages. The random OTs come from the seed-expanding dealer, which
//! serves them for tests; without a dealer they come from IKNP (the
//! runtime's `preprocess::otgen`). Proptest seeds are fixed.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use rand::RngExt;
use sharing::compare::XorBits;
use sharing::driver::{dealer_engines_for_tests, ot_select_engines_for_tests, run_two_party};
use sharing::share::fixed_seed_rng_for_tests;
use sharing::*;

mod common;
use common::{opened, share_raw};

fn cfg() -> Config {
    Config {
        cases: 24,
        rng_seed: RngSeed::Fixed(0x0dd_ba11),
        failure_persistence: None,
        ..Config::default()
    }
}

fn engines(seed: u64) -> (Engine<DealerSource>, Engine<DealerSource>) {
    ot_select_engines_for_tests(seed)
}

fn run<T0: Send, T1: Send>(
    f0: impl FnOnce(&mut driver::ChannelExchange) -> Result<T0> + Send,
    f1: impl FnOnce(&mut driver::ChannelExchange) -> Result<T1> + Send,
) -> ((T0, driver::ExchangeStats), (T1, driver::ExchangeStats)) {
    run_two_party(f0, f1).unwrap()
}

/// XOR shares of `bits`.
fn share_bits(bits: &[bool], seed: u64) -> (XorBits, XorBits) {
    let mut rng = fixed_seed_rng_for_tests(seed);
    let n = bits.len();
    let mut w0 = vec![0u64; n.div_ceil(64)];
    let mut w1 = w0.clone();
    for (i, &b) in bits.iter().enumerate() {
        let t: bool = rng.random();
        w0[i / 64] |= u64::from(t) << (i % 64);
        w1[i / 64] |= u64::from(t ^ b) << (i % 64);
    }
    (XorBits { n, words: w0 }, XorBits { n, words: w1 })
}

fn edges() -> Vec<i64> {
    vec![
        0,
        1,
        -1,
        2,
        -2,
        i64::MAX,
        i64::MIN,
        i64::MAX - 1,
        i64::MIN + 1,
    ]
}

/// Largest magnitude for which all pairwise differences stay below 2^63.
const BIG: i64 = (1i64 << 62) - 1;

fn values() -> impl Strategy<Value = Vec<i64>> {
    let one = prop_oneof![
        -BIG..=BIG,
        -(1i64 << 32)..(1i64 << 32),
        -8i64..8,
        proptest::sample::select(vec![0, 1, -1, BIG, -BIG, -BIG - 1]),
    ];
    proptest::collection::vec(one, 1..150)
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn mux_is_bit_times_value(xs in proptest::collection::vec(any::<i64>(), 0..200),
                              bits in proptest::collection::vec(any::<bool>(), 200),
                              seed in any::<u64>()) {
        let mut xs = xs;
        xs.extend(edges());
        xs.extend(edges());
        let n = xs.len();
        let mut bits = bits;
        bits.resize(n, true);
        // Both bits for each edge value.
        for (k, b) in bits[n - 18..].iter_mut().enumerate() {
            *b = k < 9;
        }
        let x = share_raw(&xs, &[n], seed);
        let (b0, b1) = share_bits(&bits, seed ^ 7);
        let (mut e0, mut e1) = engines(seed);
        let ((r0, s0), (r1, s1)) = run(|ex| e0.mux(ex, &b0, &x.0), |ex| e1.mux(ex, &b1, &x.1));
        let want: Vec<i64> = xs.iter().zip(&bits).map(|(&v, &b)| if b { v } else { 0 }).collect();
        prop_assert_eq!(opened(&r0, &r1), want);
        // Two rounds: the flipped choices (one bit each), one word each.
        prop_assert_eq!(s0.rounds, 2);
        prop_assert_eq!(s1.bytes_sent, 8 * (n.div_ceil(64) + n));
    }

    #[test]
    fn relu_max_min_clamp_select_by_ot(xs in values(), seed in any::<u64>(),
                                       lo in -1000.0f64..0.0, width in 0.0f64..2000.0) {
        let n = xs.len();
        // Reversed, so some pairs are equal (the middle one always).
        let ys: Vec<i64> = xs.iter().rev().copied().collect();
        let x = share_raw(&xs, &[n], seed);
        let y = share_raw(&ys, &[n], seed ^ 1);
        let hi = lo + width;
        let (mut e0, mut e1) = engines(seed);
        let ((r0, s0), (r1, _)) = run(
            |ex| Ok(vec![e0.relu(ex, &x.0)?, e0.max_elem(ex, &x.0, &y.0)?,
                         e0.min_elem(ex, &x.0, &y.0)?, e0.clamp(ex, &x.0, lo, hi)?]),
            |ex| Ok(vec![e1.relu(ex, &x.1)?, e1.max_elem(ex, &x.1, &y.1)?,
                         e1.min_elem(ex, &x.1, &y.1)?, e1.clamp(ex, &x.1, lo, hi)?]),
        );
        // The millionaires' comparison (6 rounds) + 2 mux rounds: one
        // fewer than with a Beaver select.
        prop_assert_eq!(s0.rounds, 4 * (millionaire::rounds(63) + 2));
        prop_assert_eq!(opened(&r0[0], &r1[0]), xs.iter().map(|&a| a.max(0)).collect::<Vec<_>>());
        let mx: Vec<i64> = xs.iter().zip(&ys).map(|(&a, &b)| a.max(b)).collect();
        let mn: Vec<i64> = xs.iter().zip(&ys).map(|(&a, &b)| a.min(b)).collect();
        prop_assert_eq!(opened(&r0[1], &r1[1]), mx);
        prop_assert_eq!(opened(&r0[2], &r1[2]), mn);
        let fp = FixedPoint::default();
        let (l, h) = (fp.encode(lo).unwrap() as i64, fp.encode(hi).unwrap() as i64);
        prop_assert_eq!(opened(&r0[3], &r1[3]), xs.iter().map(|&v| v.clamp(l, h)).collect::<Vec<_>>());
    }

    #[test]
    fn max_and_argmax_by_ot(rows in 1usize..5, n in 1usize..10, seed in any::<u64>(),
                            pool in proptest::collection::vec(-(1i64 << 61)..(1i64 << 61), 45)) {
        // Few distinct values so that ties occur.
        let xs: Vec<i64> = (0..rows * n)
            .map(|i| pool[(i * 7 + (seed % 5) as usize) % if seed % 2 == 0 { 45 } else { 3 }])
            .collect();
        let x = share_raw(&xs, &[rows, n], seed);
        let (mut e0, mut e1) = engines(seed);
        let ((r0, _), (r1, _)) = run(
            |ex| {
                let (m, i) = e0.argmax_last_axis(ex, &x.0)?;
                let (_, oh) = e0.argmax_onehot_last_axis(ex, &x.0)?;
                Ok(vec![m, i, oh])
            },
            |ex| {
                let (m, i) = e1.argmax_last_axis(ex, &x.1)?;
                let (_, oh) = e1.argmax_onehot_last_axis(ex, &x.1)?;
                Ok(vec![m, i, oh])
            },
        );
        let (mut mx, mut idx, mut oh) = (vec![], vec![], vec![]);
        for r in xs.chunks(n) {
            let m = *r.iter().max().unwrap();
            let i = r.iter().position(|&v| v == m).unwrap();
            mx.push(m);
            idx.push(i as i64);
            oh.extend((0..n).map(|t| i64::from(t == i)));
        }
        prop_assert_eq!(opened(&r0[0], &r1[0]), mx);
        prop_assert_eq!(opened(&r0[1], &r1[1]), idx);
        prop_assert_eq!(opened(&r0[2], &r1[2]), oh);
    }
}

#[test]
fn relu_of_every_ring_extreme_and_its_bytes() {
    let mut vals = edges();
    for k in 0..64 {
        vals.push((1u64 << k) as i64);
        vals.push(((1u64 << k) as i64).wrapping_neg());
    }
    let n = vals.len();
    let (x0, x1) = share_raw(&vals, &[n], 3);
    let (mut e0, mut e1) = engines(4);
    let ((r0, s0), (r1, s1)) = run(|ex| e0.relu(ex, &x0), |ex| e1.relu(ex, &x1));
    assert_eq!(
        opened(&r0, &r1),
        vals.iter().map(|&v| v.max(0)).collect::<Vec<_>>()
    );
    assert_eq!(s0.rounds, millionaire::rounds(63) + 2);
    assert_eq!(s0.rounds, MSB_ROUNDS);
    // Party 0: the masked leaves (16 × 32 bits per element) + packed AND
    // operands (15, 7, 3, 1 gates) + packed flipped choices + n words.
    // Party 1: the leaf flips (16 × 4 bits) in place of the leaves.
    let words = |w: usize| (n * w).div_ceil(64);
    let tree = 2 * [15, 7, 3, 1].map(words).iter().sum::<usize>();
    assert_eq!(s0.bytes_sent, 8 * (8 * n + tree + words(1) + n));
    assert_eq!(s1.bytes_sent, 8 * (n + tree + words(1) + n));
}

#[test]
fn piecewise_sigmoid_gets_its_bits_from_the_mux() {
    let fp = FixedPoint::default();
    let xs = [-20.0, -8.5, -8.0, -1.0, 0.0, 0.5, 7.9, 8.0, 9.0, 30.0];
    let t = RingTensor::new(
        xs.iter().map(|&v| fp.encode(v).unwrap()).collect(),
        vec![xs.len()],
    )
    .unwrap();
    let (x0, x1) = share_with_rng(&t, &mut fixed_seed_rng_for_tests(5)).unwrap();
    let (e0, e1, _) = dealer_engines_for_tests(6, fp, TruncMode::Dealer);
    let (mut e0, mut e1) = (
        e0.with_select(SelectKind::Ot),
        e1.with_select(SelectKind::Ot),
    );
    let ((r0, _), (r1, _)) = run(
        |ex| e0.sigmoid_clamped(ex, &x0, 9, true),
        |ex| e1.sigmoid_clamped(ex, &x1, 9, true),
    );
    let got = reconstruct(&r0, &r1).unwrap();
    for (&x, &g) in xs.iter().zip(got.data()) {
        let want = 1.0 / (1.0 + (-x).exp());
        let g = fp.decode(g);
        let bound = sharing::poly::SIGMOID_DEG9_MAX_ERR + (1.0 - want.max(1.0 - want)) + 1e-3;
        assert!((g - want).abs() <= bound, "sigmoid({x}) = {g}, want {want}");
        if x.abs() > 8.0 {
            // Outside the domain the constants (up to the rounding of the
            // polynomial's value, a few LSBs).
            let c = if x > 0.0 { 1.0 } else { 0.0 };
            assert!((g - c).abs() <= 4.0 / 65536.0, "sigmoid({x}) = {g}");
        }
    }
}

/// An exchange that answers every message with `reply`.
struct Canned(Message);

impl Exchange for Canned {
    fn exchange(&mut self, _: Message) -> Result<Message> {
        Ok(self.0.clone())
    }
}

#[test]
fn malformed_mux_messages_are_errors() {
    let (x0, _) = share_raw(&[1, -2, 3], &[3], 1);
    let (b0, _) = share_bits(&[true, false, true], 2);
    let bad = [
        OpenMsg {
            data: vec![1, 2],
            shape: vec![2],
        },
        OpenMsg {
            data: vec![],
            shape: vec![0],
        },
        OpenMsg {
            data: vec![1],
            shape: vec![3],
        },
    ];
    for m in bad {
        let (mut e0, _) = engines(3);
        let err = e0.mux(&mut Canned(Message::Open(m)), &b0, &x0);
        assert!(err.is_err());
    }
    // Bits that do not match the value's size.
    let (mut e0, _) = engines(3);
    let (short, _) = share_bits(&[true], 2);
    let ok = Message::Open(OpenMsg {
        data: vec![0],
        shape: vec![1],
    });
    assert!(e0.mux(&mut Canned(ok), &short, &x0).is_err());
    // A source without random OTs is an error, not a panic.
    let mut pre = Engine::new(
        FixedPoint::default(),
        TruncMode::Dealer,
        PrecomputedCorrelations::new(Party::P0),
    )
    .with_select(SelectKind::Ot);
    let ok = Message::Open(OpenMsg {
        data: vec![0],
        shape: vec![1],
    });
    assert!(pre.mux(&mut Canned(ok), &b0, &x0).is_err());
}

#[test]
fn request_order_matches_the_ot_protocols() {
    use sharing::compare::{requests, Payload};
    let shape = [3usize, 5];
    let x = share_raw(&[7; 15], &shape, 1);
    let (s0, s1, _) = DealerSource::online_pair(Dealer::new_with_fixed_seed_for_tests(2));
    let fp = FixedPoint::default();
    let mut e0 = Engine::new(fp, TruncMode::Dealer, RecordingCorrelations::new(s0))
        .with_select(SelectKind::Ot);
    let mut e1 = Engine::new(fp, TruncMode::Dealer, s1).with_select(SelectKind::Ot);
    run(
        |ex| {
            e0.relu(ex, &x.0)?;
            e0.clamp(ex, &x.0, -1.0, 1.0)?;
            e0.argmax_last_axis(ex, &x.0)
        },
        |ex| {
            e1.relu(ex, &x.1)?;
            e1.clamp(ex, &x.1, -1.0, 1.0)?;
            e1.argmax_last_axis(ex, &x.1)
        },
    );
    let mut want = requests::compare_then_product(&shape, SelectKind::Ot, 63).unwrap();
    want.extend(requests::clamp(&shape, SelectKind::Ot, 63).unwrap());
    want.extend(requests::tournament(&shape, Payload::Index, SelectKind::Ot, 63).unwrap());
    assert_eq!(e0.correlations().log, want);
    assert!(want.iter().all(|r| !matches!(
        r,
        CorrelationRequest::DaBits { .. } | CorrelationRequest::ElementwiseTriple { .. }
    )));
}
