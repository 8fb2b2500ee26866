//! Secure comparison with the dealer's DCF keys ([`SelectKind::Dcf`])
//! against plaintext: the MSB in one round, relu, max/min, clamp and the
//! tournaments in two rounds per comparison, with exact message sizes, the
//! dealer's queued corrections, and malformed peer messages.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use sharing::dcf::CW_WORDS;
use sharing::driver::{dealer_engines_for_tests, run_two_party};
use sharing::*;

mod common;
use common::{opened, share_raw};

fn engines(seed: u64) -> (Engine<DealerSource>, Engine<DealerSource>) {
    let (e0, e1, _) = dealer_engines_for_tests(seed, FixedPoint::default(), TruncMode::Dealer);
    (
        e0.with_select(SelectKind::Dcf),
        e1.with_select(SelectKind::Dcf),
    )
}

fn run<T0: Send, T1: Send>(
    f0: impl FnOnce(&mut driver::ChannelExchange) -> Result<T0> + Send,
    f1: impl FnOnce(&mut driver::ChannelExchange) -> Result<T1> + Send,
) -> ((T0, driver::ExchangeStats), (T1, driver::ExchangeStats)) {
    run_two_party(f0, f1).unwrap()
}

/// Every power of two, its negation and its predecessor, and the ring's
/// extremes.
fn ring_edges() -> Vec<i64> {
    let mut vals: Vec<i64> = vec![0, 1, -1, i64::MAX, i64::MIN, i64::MIN + 1, i64::MAX - 1];
    for k in 0..64 {
        vals.push((1u64 << k) as i64);
        vals.push(((1u64 << k) as i64).wrapping_neg());
        vals.push(((1u64 << k) - 1) as i64);
    }
    vals
}

#[test]
fn msb_in_one_round_on_every_ring_edge() {
    let vals = ring_edges();
    let n = vals.len();
    let (x0, x1) = share_raw(&vals, &[n], 3);
    let (mut e0, mut e1) = engines(4);
    let ((b0, s0), (b1, s1)) = run(|ex| e0.msb(ex, &x0), |ex| e1.msb(ex, &x1));
    let want: Vec<i64> = vals.iter().map(|&v| i64::from(v < 0)).collect();
    assert_eq!(opened(&b0, &b1), want);
    assert_eq!((s0.rounds, s1.rounds), (1, 1));
    // Party 0 sends its share of c; party 1 its share and the correction
    // words it forwards.
    assert_eq!(s0.bytes_sent, 8 * n);
    assert_eq!(s1.bytes_sent, 8 * n * (1 + CW_WORDS));
}

#[test]
fn the_dealer_sends_party_1_the_correction_words_and_its_msb_share() {
    let n = 5;
    let mut dealer = Dealer::new_with_fixed_seed_for_tests(1);
    let req = CorrelationRequest::DcfMsb {
        shape: vec![n],
        bits: 63,
    };
    let msg = dealer.correction(&req).unwrap();
    assert_eq!(msg.payload_bytes(), 8 * (n + n * CW_WORDS) as u64);
    // Within 2^22: a 22-bit DCF, 3·22 + 2 words.
    let req = CorrelationRequest::DcfMsb {
        shape: vec![n],
        bits: 22,
    };
    let msg = dealer.correction(&req).unwrap();
    assert_eq!(msg.payload_bytes(), 8 * (n + n * 68) as u64);
    // A width outside 1 to 63 is refused, not dealt.
    for bits in [0, 64] {
        let req = CorrelationRequest::DcfMsb {
            shape: vec![n],
            bits,
        };
        assert!(dealer.correction(&req).is_err());
    }
    // Debug shows no key material.
    let dbg = format!("{msg:?}");
    assert!(!dbg.contains("tensors"), "{dbg}");
}

/// Told the values lie within `2^bits`, the DCF reads `bits` bits: every
/// width against the sign, at the bound's edges, in one round, with
/// `3·bits + 2` words of correction per element forwarded.
#[test]
fn msb_within_a_bound_in_one_round() {
    for bits in [1u32, 2, 7, 16, 22, 31, 32, 40, 62, 63] {
        let b = 1i128 << bits;
        let mut vals: Vec<i64> = [0, 1, -1, b - 1, -b, b / 2, -b / 2, 3 - b, b - 3]
            .into_iter()
            .filter(|v| (-b..b).contains(v))
            .map(|v| v as i64)
            .collect();
        vals.extend((0..40).map(|i| ((i * 0x9e37_79b9_i128) % b) as i64));
        vals.extend((0..40).map(|i| (-(i * 0x7f4a_7c15_i128) % b) as i64));
        let n = vals.len();
        let (x0, x1) = share_raw(&vals, &[n], u64::from(bits));
        let (mut e0, mut e1) = engines(u64::from(bits) + 9);
        e0.set_compare_bits(bits).unwrap();
        e1.set_compare_bits(bits).unwrap();
        let ((b0, s0), (b1, s1)) = run(|ex| e0.msb(ex, &x0), |ex| e1.msb(ex, &x1));
        let want: Vec<i64> = vals.iter().map(|&v| i64::from(v < 0)).collect();
        assert_eq!(opened(&b0, &b1), want, "within 2^{bits}");
        assert_eq!((s0.rounds, s1.rounds), (1, 1));
        let words = sharing::dcf::cw_words(bits);
        assert_eq!(s1.bytes_sent, 8 * n * (1 + words));
    }
}

proptest! {
    #![proptest_config(Config {
        cases: 16,
        rng_seed: RngSeed::Fixed(0xdcf),
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn relu_max_min_clamp_match_plaintext(
        raw in proptest::collection::vec(-(1i64 << 61)..(1i64 << 61), 1..30),
        small in proptest::collection::vec(-1000i64..1000, 0..10),
        seed in any::<u64>(),
    ) {
        let mut xs = raw;
        xs.extend(small);
        xs.extend([0, 1, -1]);
        let n = xs.len();
        let ys: Vec<i64> = xs.iter().rev().copied().collect();
        let x = share_raw(&xs, &[n], seed);
        let y = share_raw(&ys, &[n], seed ^ 1);
        let fp = FixedPoint::default();
        let (mut e0, mut e1) = engines(seed);
        let ((r0, s0), (r1, _)) = run(
            |ex| Ok(vec![e0.relu(ex, &x.0)?, e0.max_elem(ex, &x.0, &y.0)?,
                         e0.min_elem(ex, &x.0, &y.0)?, e0.clamp(ex, &x.0, -2.5, 3.0)?]),
            |ex| Ok(vec![e1.relu(ex, &x.1)?, e1.max_elem(ex, &x.1, &y.1)?,
                         e1.min_elem(ex, &x.1, &y.1)?, e1.clamp(ex, &x.1, -2.5, 3.0)?]),
        );
        // Each: one round for the MSB, one for the product.
        prop_assert_eq!(s0.rounds, 4 * 2);
        prop_assert_eq!(opened(&r0[0], &r1[0]), xs.iter().map(|&a| a.max(0)).collect::<Vec<_>>());
        let mx: Vec<i64> = xs.iter().zip(&ys).map(|(&a, &b)| a.max(b)).collect();
        let mn: Vec<i64> = xs.iter().zip(&ys).map(|(&a, &b)| a.min(b)).collect();
        prop_assert_eq!(opened(&r0[1], &r1[1]), mx);
        prop_assert_eq!(opened(&r0[2], &r1[2]), mn);
        let (l, h) = (fp.encode(-2.5).unwrap() as i64, fp.encode(3.0).unwrap() as i64);
        prop_assert_eq!(opened(&r0[3], &r1[3]), xs.iter().map(|&v| v.clamp(l, h)).collect::<Vec<_>>());
    }

    #[test]
    fn argmax_tournament_two_rounds_per_level(rows in 1usize..4, n in 1usize..10, seed in any::<u64>(),
                                              pool in proptest::collection::vec(-(1i64 << 50)..(1i64 << 50), 8)) {
        // Few distinct values so that ties occur.
        let xs: Vec<i64> = (0..rows * n).map(|i| pool[(i * 5 + seed as usize % 3) % 4]).collect();
        let x = share_raw(&xs, &[rows, n], seed);
        let (mut e0, mut e1) = engines(seed);
        let ((r0, s0), (r1, _)) = run(
            |ex| { let (m, i) = e0.argmax_last_axis(ex, &x.0)?; Ok(vec![m, i]) },
            |ex| { let (m, i) = e1.argmax_last_axis(ex, &x.1)?; Ok(vec![m, i]) },
        );
        let levels = (n as f64).log2().ceil() as usize;
        prop_assert_eq!(s0.rounds, 2 * levels);
        let (mut mx, mut idx) = (vec![], vec![]);
        for r in xs.chunks(n) {
            let m = *r.iter().max().unwrap();
            mx.push(m);
            idx.push(r.iter().position(|&v| v == m).unwrap() as i64);
        }
        prop_assert_eq!(opened(&r0[0], &r1[0]), mx);
        prop_assert_eq!(opened(&r0[1], &r1[1]), idx);
    }
}

#[test]
fn queued_dealer_corrections_and_the_request_order() {
    // The requests a relu asks for, dealt ahead of time into party 1's queue.
    let vals = [3i64, -4, 0, i64::MAX, i64::MIN];
    let n = vals.len();
    let reqs = compare::requests::compare_then_product(&[n], SelectKind::Dcf, 63).unwrap();
    assert_eq!(
        reqs,
        vec![
            CorrelationRequest::DcfMsb {
                shape: vec![n],
                bits: 63
            },
            CorrelationRequest::ElementwiseTriple { shape: vec![n] },
        ]
    );
    let mut dealer = Dealer::new_with_fixed_seed_for_tests(5);
    let (s0, s1) = (dealer.seed_msg(Party::P0), dealer.seed_msg(Party::P1));
    let corr = dealer.corrections(&reqs).unwrap();
    let fp = FixedPoint::default();
    let mut e0 = Engine::new(fp, TruncMode::Dealer, DealerSource::party0(s0).unwrap())
        .with_select(SelectKind::Dcf);
    let mut e1 = Engine::new(
        fp,
        TruncMode::Dealer,
        DealerSource::party1(s1, corr).unwrap(),
    )
    .with_select(SelectKind::Dcf);
    let (x0, x1) = share_raw(&vals, &[n], 6);
    let ((r0, _), (r1, _)) = run(|ex| e0.relu(ex, &x0), |ex| e1.relu(ex, &x1));
    assert_eq!(opened(&r0, &r1), vec![3, 0, 0, i64::MAX, 0]);
}

#[test]
fn malformed_or_missing_correction_words_are_errors() {
    let (x0, x1) = share_raw(&[1, -2, 3], &[3], 1);
    // Party 0 receiving only the shares of c, without the correction words.
    let (mut e0, _) = engines(2);
    let (mut to_p0, mut from_p1) = driver::ChannelExchange::pair();
    let peer = std::thread::spawn(move || {
        let _ = from_p1.exchange(Message::Open(OpenMsg {
            data: vec![1, 2, 3],
            shape: vec![3],
        }));
    });
    assert!(e0.msb(&mut to_p0, &x0).is_err());
    peer.join().unwrap();
    // Party 1 without its correction words (a queue dealt for another request).
    let mut dealer = Dealer::new_with_fixed_seed_for_tests(3);
    let s1 = dealer.seed_msg(Party::P1);
    let wrong = dealer
        .correction(&CorrelationRequest::DaBits { shape: vec![3] })
        .unwrap();
    let mut e1 = Engine::new(
        FixedPoint::default(),
        TruncMode::Dealer,
        DealerSource::party1(s1, vec![wrong]).unwrap(),
    )
    .with_select(SelectKind::Dcf);
    let mut dummy = driver::ChannelExchange::pair().0;
    assert!(e1.msb(&mut dummy, &x1).is_err());
}
