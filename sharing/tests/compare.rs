//! Secure comparison against plaintext: MSB, less-than, select, relu,
//! max/min, max/argmax along the last axis, clamp and clamped sigmoid, with
//! the seed-expanding dealer source, over random values plus the ring's
//! extremes. Proptest seeds are fixed so runs are reproducible.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use sharing::driver::{dealer_engines_for_tests, run_two_party};
use sharing::*;

mod common;
use common::{opened, share_raw};

const F: u32 = 16;

fn cfg() -> Config {
    Config {
        cases: 24,
        rng_seed: RngSeed::Fixed(0xc0ffee),
        failure_persistence: None,
        ..Config::default()
    }
}

fn engines(seed: u64) -> (Engine<DealerSource>, Engine<DealerSource>) {
    let (e0, e1, _) = dealer_engines_for_tests(seed, FixedPoint::default(), TruncMode::Dealer);
    (e0, e1)
}

/// Largest magnitude for which all pairwise differences stay below 2^63.
const BIG: i64 = (1i64 << 62) - 1;

/// Ring extremes that are valid inputs to a comparison of two values.
fn extremes() -> Vec<i64> {
    vec![
        0,
        1,
        -1,
        2,
        -2,
        BIG,
        -BIG,
        -BIG - 1,
        BIG - 1,
        1 << 16,
        -(1 << 16),
        1 << 40,
        -(1 << 40),
    ]
}

/// Random values of mixed magnitudes (full 62-bit range, fixed-point
/// sized, tiny) followed by the extremes.
fn values() -> impl Strategy<Value = Vec<i64>> {
    let one = prop_oneof![
        -BIG..=BIG,
        -(1i64 << 32)..(1i64 << 32),
        -8i64..8,
        proptest::sample::select(extremes()),
    ];
    proptest::collection::vec(one, 1..40).prop_map(|mut v| {
        v.extend(extremes());
        v
    })
}

fn run<T0: Send, T1: Send>(
    f0: impl FnOnce(&mut driver::ChannelExchange) -> Result<T0> + Send,
    f1: impl FnOnce(&mut driver::ChannelExchange) -> Result<T1> + Send,
) -> ((T0, driver::ExchangeStats), (T1, driver::ExchangeStats)) {
    run_two_party(f0, f1).unwrap()
}

#[test]
fn msb_of_every_ring_extreme() {
    let mut vals: Vec<i64> = vec![
        0,
        1,
        -1,
        i64::MAX,
        i64::MIN,
        i64::MIN + 1,
        i64::MAX - 1,
        1 << 62,
        -(1 << 62),
    ];
    for k in 0..64 {
        vals.push((1u64 << k) as i64);
        vals.push(((1u64 << k) as i64).wrapping_neg());
        vals.push(((1u64 << k) - 1) as i64);
    }
    let n = vals.len();
    let (x0, x1) = share_raw(&vals, &[n], 3);
    let (mut e0, mut e1) = engines(4);
    let ((b0, s0), (b1, s1)) = run(|ex| e0.msb(ex, &x0), |ex| e1.msb(ex, &x1));
    let want: Vec<i64> = vals.iter().map(|&v| i64::from(v < 0)).collect();
    assert_eq!(opened(&b0, &b1), want);
    assert_eq!(s0.rounds, MSB_ROUNDS);
    assert_eq!(s1.rounds, MSB_ROUNDS);
    // 8n (open) + packed AND operands + packed B2A bits.
    let words = |w: usize| (n * w).div_ceil(64);
    let expect = 8 * (n + 2 * [64, 32, 16, 8, 4, 1].map(words).iter().sum::<usize>() + words(1));
    assert_eq!(s0.bytes_sent, expect);
}

#[test]
fn msb_of_a_scalar_and_an_empty_batch_of_rows() {
    let (x0, x1) = share_raw(&[-5], &[], 1);
    let (mut e0, mut e1) = engines(2);
    let ((b0, _), (b1, _)) = run(|ex| e0.msb(ex, &x0), |ex| e1.msb(ex, &x1));
    assert_eq!(opened(&b0, &b1), vec![1]);
    assert_eq!(b0.shape(), &[] as &[usize]);
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn less_than_select_relu_min_max(xs in values(), seed in any::<u64>()) {
        let n = xs.len();
        let ys: Vec<i64> = xs.iter().rev().copied().collect();
        let x = share_raw(&xs, &[n], seed);
        let y = share_raw(&ys, &[n], seed ^ 1);
        let (mut e0, mut e1) = engines(seed);
        let ((r0, s0), (r1, _)) = run(
            |ex| {
                let lt = e0.less_than(ex, &x.0, &y.0)?;
                let sel = e0.select(ex, &lt, &x.0, &y.0)?;
                Ok(vec![lt, sel, e0.relu(ex, &x.0)?, e0.max_elem(ex, &x.0, &y.0)?,
                        e0.min_elem(ex, &x.0, &y.0)?])
            },
            |ex| {
                let lt = e1.less_than(ex, &x.1, &y.1)?;
                let sel = e1.select(ex, &lt, &x.1, &y.1)?;
                Ok(vec![lt, sel, e1.relu(ex, &x.1)?, e1.max_elem(ex, &x.1, &y.1)?,
                        e1.min_elem(ex, &x.1, &y.1)?])
            },
        );
        prop_assert_eq!(s0.rounds, 8 + 1 + 9 + 9 + 9);
        let lt: Vec<i64> = xs.iter().zip(&ys).map(|(a, b)| i64::from(a < b)).collect();
        prop_assert_eq!(opened(&r0[0], &r1[0]), lt);
        let sel: Vec<i64> = xs.iter().zip(&ys).map(|(&a, &b)| if a < b { a } else { b }).collect();
        prop_assert_eq!(opened(&r0[1], &r1[1]), sel.clone());
        prop_assert_eq!(opened(&r0[2], &r1[2]), xs.iter().map(|&a| a.max(0)).collect::<Vec<_>>());
        let mx: Vec<i64> = xs.iter().zip(&ys).map(|(&a, &b)| a.max(b)).collect();
        prop_assert_eq!(opened(&r0[3], &r1[3]), mx);
        prop_assert_eq!(opened(&r0[4], &r1[4]), sel);
    }

    #[test]
    fn clamp_matches_plaintext(xs in values(), seed in any::<u64>(),
                               lo in -1000.0f64..0.0, width in 0.0f64..2000.0) {
        let fp = FixedPoint::default();
        let hi = lo + width;
        let n = xs.len();
        let x = share_raw(&xs, &[n], seed);
        let (mut e0, mut e1) = engines(seed);
        let ((c0, s0), (c1, _)) = run(
            |ex| e0.clamp(ex, &x.0, lo, hi),
            |ex| e1.clamp(ex, &x.1, lo, hi),
        );
        prop_assert_eq!(s0.rounds, 9);
        let (l, h) = (fp.encode(lo).unwrap() as i64, fp.encode(hi).unwrap() as i64);
        prop_assert_eq!(opened(&c0, &c1), xs.iter().map(|&v| v.clamp(l, h)).collect::<Vec<_>>());
    }

    #[test]
    fn max_and_argmax_last_axis(rows in 1usize..5, n in 1usize..10, seed in any::<u64>(),
                                pool in proptest::collection::vec(-(1i64 << 61)..(1i64 << 61), 45)) {
        // Few distinct values so that ties occur.
        let xs: Vec<i64> = (0..rows * n)
            .map(|i| pool[(i * 7 + (seed % 5) as usize) % if seed % 2 == 0 { 45 } else { 3 }])
            .collect();
        let x = share_raw(&xs, &[rows, n], seed);
        let (mut e0, mut e1) = engines(seed);
        let ((r0, s0), (r1, _)) = run(
            |ex| {
                let m = e0.max_last_axis(ex, &x.0)?;
                let (m2, i) = e0.argmax_last_axis(ex, &x.0)?;
                let (m3, oh) = e0.argmax_onehot_last_axis(ex, &x.0)?;
                Ok(vec![m, m2, i, m3, oh])
            },
            |ex| {
                let m = e1.max_last_axis(ex, &x.1)?;
                let (m2, i) = e1.argmax_last_axis(ex, &x.1)?;
                let (m3, oh) = e1.argmax_onehot_last_axis(ex, &x.1)?;
                Ok(vec![m, m2, i, m3, oh])
            },
        );
        let levels = (n as f64).log2().ceil() as usize;
        prop_assert_eq!(s0.rounds, 3 * 9 * levels);
        let mut mx = vec![];
        let mut idx = vec![];
        let mut oh = vec![];
        for r in xs.chunks(n) {
            let m = *r.iter().max().unwrap();
            let i = r.iter().position(|&v| v == m).unwrap();
            mx.push(m);
            idx.push(i as i64);
            oh.extend((0..n).map(|t| i64::from(t == i)));
        }
        prop_assert_eq!(r0[0].shape(), &[rows][..]);
        prop_assert_eq!(opened(&r0[0], &r1[0]), mx.clone());
        prop_assert_eq!(opened(&r0[1], &r1[1]), mx.clone());
        prop_assert_eq!(opened(&r0[2], &r1[2]), idx);
        prop_assert_eq!(opened(&r0[3], &r1[3]), mx);
        prop_assert_eq!(r0[4].shape(), &[rows, n][..]);
        prop_assert_eq!(opened(&r0[4], &r1[4]), oh);
    }
}

#[test]
fn round_functions_drive_message_by_message() {
    // Drive msb_round1 / msb_step by hand, both parties in one thread.
    let vals = [5i64, -7, 0, -1, BIG, -BIG];
    let (x0, x1) = share_raw(&vals, &[2, 3], 9);
    let (mut e0, mut e1) = engines(10);
    let (mut s0, mut m0) = e0.msb_round1(&x0).unwrap();
    let (mut s1, mut m1) = e1.msb_round1(&x1).unwrap();
    let mut rounds = 1;
    let (b0, b1) = loop {
        let a = Engine::<DealerSource>::msb_step(s0, m1).unwrap();
        let b = Engine::<DealerSource>::msb_step(s1, m0).unwrap();
        match (a, b) {
            (MsbStep::Send(a, ma), MsbStep::Send(b, mb)) => {
                rounds += 1;
                s0 = *a;
                s1 = *b;
                m0 = ma;
                m1 = mb;
            }
            (MsbStep::Done(a), MsbStep::Done(b)) => break (a, b),
            _ => panic!("parties out of step"),
        }
    };
    assert_eq!(rounds, MSB_ROUNDS);
    assert_eq!(opened(&b0, &b1), vec![0, 1, 0, 1, 0, 1]);
    // Debug never shows share contents.
    let dbg = format!("{:?}", e0.msb_round1(&x0).unwrap());
    assert!(dbg.contains("MsbState") && !dbg.contains("data"), "{dbg}");
}

#[test]
fn malformed_messages_are_errors() {
    let (x0, _) = share_raw(&[1, 2, 3], &[3], 1);
    let (mut e0, _) = engines(2);
    // Wrong shape for the opening.
    let (s, _) = e0.msb_round1(&x0).unwrap();
    let bad = OpenMsg {
        data: vec![1, 2],
        shape: vec![2],
    };
    assert!(Engine::<DealerSource>::msb_step(s, bad).is_err());
    // Length inconsistent with shape.
    let (s, _) = e0.msb_round1(&x0).unwrap();
    let bad = OpenMsg {
        data: vec![1, 2],
        shape: vec![3],
    };
    assert!(Engine::<DealerSource>::msb_step(s, bad).is_err());
    // Correct opening, then a truncated AND message.
    let (s, m) = e0.msb_round1(&x0).unwrap();
    let MsbStep::Send(s, _) = Engine::<DealerSource>::msb_step(s, m).unwrap() else {
        panic!("expected a message")
    };
    let bad = OpenMsg {
        data: vec![0],
        shape: vec![1],
    };
    assert!(Engine::<DealerSource>::msb_step(*s, bad).is_err());
    // A source without comparison correlations is an error, not a panic.
    let mut pre = Engine::new(
        FixedPoint::default(),
        TruncMode::Dealer,
        PrecomputedCorrelations::new(Party::P0),
    );
    assert!(pre.msb_round1(&x0).is_err());
    // Bad clamp bounds.
    let (mut e0, _) = engines(3);
    let mut dummy = driver::ChannelExchange::pair().0;
    assert!(e0.clamp(&mut dummy, &x0, 1.0, -1.0).is_err());
}

#[test]
fn queued_and_precomputed_dealer_corrections_work() {
    // Record the requests of one run, have the dealer produce party 1's
    // corrections ahead of time, and run again from the queue.
    let vals = [3i64, -4, 0, BIG];
    let (x0, x1) = share_raw(&vals, &[4], 5);
    let mut dealer = Dealer::new_with_fixed_seed_for_tests(77);
    let s0 = dealer.seed_msg(Party::P0);
    let s1 = dealer.seed_msg(Party::P1);
    let n = 4;
    let reqs = [
        CorrelationRequest::MaskedBits { shape: vec![n] },
        CorrelationRequest::AndTriples {
            bits: sharing::compare::and_triple_bits(n),
        },
        CorrelationRequest::DaBits { shape: vec![n] },
    ];
    let corr: Vec<DealerMsg> = reqs.iter().map(|r| dealer.correction(r).unwrap()).collect();
    let before = dealer.bytes_sent();
    assert_eq!(
        before,
        64 + corr.iter().map(|m| m.payload_bytes()).sum::<u64>()
    );
    let src0 = DealerSource::party0(s0).unwrap();
    let mut src1 = DealerSource::party1(s1, vec![]).unwrap();
    src1.push_corrections(corr).unwrap();
    let pre1 = PrecomputedCorrelations::precompute(&mut src1, &reqs).unwrap();
    assert_eq!(pre1.remaining(), 3);
    let fp = FixedPoint::default();
    let mut e0 = Engine::new(fp, TruncMode::Dealer, src0);
    let mut e1 = Engine::new(fp, TruncMode::Dealer, pre1);
    let ((b0, _), (b1, _)) = run(|ex| e0.msb(ex, &x0), |ex| e1.msb(ex, &x1));
    assert_eq!(opened(&b0, &b1), vec![0, 1, 0, 0]);
    // Out-of-order corrections are rejected.
    let mut d2 = Dealer::new_with_fixed_seed_for_tests(78);
    let mut src = DealerSource::party1(d2.seed_msg(Party::P1), vec![]).unwrap();
    src.push_corrections(vec![d2.correction(&reqs[2]).unwrap()])
        .unwrap();
    assert!(src.fetch(&reqs[0]).is_err());
}

#[test]
fn fixed_point_decode_sanity() {
    // The fixed-point format the comparisons assume.
    assert_eq!(FixedPoint::default().frac_bits(), F);
}
