//! Property tests: every operation on shares matches plaintext fixed-point
//! arithmetic, exactly for linear operations and within the documented
//! truncation error (result = floor(x / 2^f) + {0, 1}) for products, with
//! the dealer source and both truncation modes. The proptest RNG seed is
//! fixed so runs are reproducible.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use sharing::driver::{dealer_engines_for_tests, run_two_party};
use sharing::share::fixed_seed_rng_for_tests;
use sharing::*;

mod common;
use common::opened;

const F: u32 = 16;

fn cfg() -> Config {
    Config {
        cases: 48,
        rng_seed: RngSeed::Fixed(0x5eed),
        failure_persistence: None,
        ..Config::default()
    }
}

fn enc(v: f64) -> i64 {
    FixedPoint::default().encode(v).unwrap() as i64
}

fn share_vals(vals: &[f64], shape: &[usize], seed: u64) -> (Share, Share) {
    let t = FixedPoint::default().encode_tensor(vals, shape).unwrap();
    share_with_rng(&t, &mut fixed_seed_rng_for_tests(seed)).unwrap()
}

fn within_trunc(got: &[i64], exact_2f: &[i64]) -> bool {
    got.len() == exact_2f.len()
        && got
            .iter()
            .zip(exact_2f)
            .all(|(&g, &e)| (0..=1).contains(&(g - (e >> F))))
}

fn mode_strategy() -> impl Strategy<Value = TruncMode> {
    prop_oneof![
        Just(TruncMode::Dealer),
        Just(TruncMode::Local),
        Just(TruncMode::DaBits)
    ]
}

/// Shape `[m, k]` with `m*k` values in `[-lim, lim]`.
fn matrix(lim: f64) -> impl Strategy<Value = (usize, usize, Vec<f64>)> {
    (1usize..7, 1usize..7).prop_flat_map(move |(m, k)| {
        (
            Just(m),
            Just(k),
            proptest::collection::vec(-lim..lim, m * k),
        )
    })
}

proptest! {
    #![proptest_config(cfg())]

    /// Two-party truncation from daBits (what plans without a dealer use)
    /// is within one LSB above the exact shift for every `|x| < 2^62`, the
    /// whole range the compiler allows (SecureML's local truncation fails
    /// with probability about |x|/2^63 there), for every shift and both
    /// signs, on uniformly random shares.
    #[test]
    fn dabit_truncation_holds_up_to_the_limit(
        xs in proptest::collection::vec(-(1i64 << 62) + 1..(1i64 << 62), 1..200),
        bits in 1u32..=61,
        seed in any::<u64>(),
    ) {
        let shape = [xs.len()];
        let t = RingTensor::new(xs.iter().map(|&v| v as u64).collect(), shape.to_vec()).unwrap();
        let (x0, x1) = share_with_rng(&t, &mut fixed_seed_rng_for_tests(seed)).unwrap();
        let (mut e0, mut e1, _) =
            dealer_engines_for_tests(seed, FixedPoint::default(), TruncMode::DaBits);
        let ((z0, _), (z1, _)) = run_two_party(
            |ex| {
                let (st, m) = e0.trunc_dabits_round1(&x0, bits)?;
                let peer = ex.exchange(Message::Open(m))?;
                let Message::Open(peer) = peer else { unreachable!() };
                Engine::<DealerSource>::trunc_dabits_round2(st, peer)
            },
            |ex| {
                let (st, m) = e1.trunc_dabits_round1(&x1, bits)?;
                let peer = ex.exchange(Message::Open(m))?;
                let Message::Open(peer) = peer else { unreachable!() };
                Engine::<DealerSource>::trunc_dabits_round2(st, peer)
            },
        ).unwrap();
        for (got, x) in opened(&z0, &z1).iter().zip(&xs) {
            let d = got.wrapping_sub(x >> bits);
            prop_assert!((0..=1).contains(&d), "x = {x}, bits = {bits}: got {got}");
        }
    }

    #[test]
    fn linear_ops_exact((m, k, xv) in matrix(1000.0), seed in any::<u64>(), c in -1000i64..1000) {
        let yv: Vec<f64> = xv.iter().map(|v| v * 0.5 - 3.0).collect();
        let shape = [m, k];
        let (x0, x1) = share_vals(&xv, &shape, seed);
        let (y0, y1) = share_vals(&yv, &shape, seed ^ 1);
        let xe: Vec<i64> = xv.iter().map(|&v| enc(v)).collect();
        let ye: Vec<i64> = yv.iter().map(|&v| enc(v)).collect();
        prop_assert_eq!(opened(&x0, &x1), xe.clone());
        let s = opened(&x0.add(&y0).unwrap(), &x1.add(&y1).unwrap());
        prop_assert_eq!(s, xe.iter().zip(&ye).map(|(a, b)| a + b).collect::<Vec<_>>());
        let d = opened(&x0.sub(&y0).unwrap(), &x1.sub(&y1).unwrap());
        prop_assert_eq!(d, xe.iter().zip(&ye).map(|(a, b)| a - b).collect::<Vec<_>>());
        let n = opened(&x0.neg(), &x1.neg());
        prop_assert_eq!(n, xe.iter().map(|a| -a).collect::<Vec<_>>());
        let sc = opened(&x0.mul_public_scalar(c as u64), &x1.mul_public_scalar(c as u64));
        prop_assert_eq!(sc, xe.iter().map(|a| a * c).collect::<Vec<_>>());
        let pubt = FixedPoint::default().encode_tensor(&yv, &shape).unwrap();
        let ap = opened(&x0.add_public(&pubt).unwrap(), &x1.add_public(&pubt).unwrap());
        prop_assert_eq!(ap, xe.iter().zip(&ye).map(|(a, b)| a + b).collect::<Vec<_>>());
    }

    #[test]
    fn fixed_point_products((m, k, xv) in matrix(10.0), seed in any::<u64>(),
                            mode in mode_strategy(), v in -10.0f64..10.0) {
        let yv: Vec<f64> = xv.iter().rev().map(|v| v * 0.7 + 0.3).collect();
        let wv: Vec<f64> = (0..k).map(|i| (i as f64 * 0.37 + v).sin() * 5.0).collect();
        let shape = [m, k];
        let x = share_vals(&xv, &shape, seed);
        let y = share_vals(&yv, &shape, seed ^ 1);
        let w = share_vals(&wv, &[k], seed ^ 2);
        let (mut e0, mut e1, _) = dealer_engines_for_tests(seed, FixedPoint::default(), mode);
        let ((r0, _), (r1, _)) = run_two_party(
            |ex| Ok(vec![
                e0.mul(ex, &x.0, &y.0)?,
                e0.matmul(ex, &x.0, &w.0)?,
                e0.mul_public_fixed(ex, &x.0, v)?,
                e0.matmul(ex, &w.0, &w.0)?,
            ]),
            |ex| Ok(vec![
                e1.mul(ex, &x.1, &y.1)?,
                e1.matmul(ex, &x.1, &w.1)?,
                e1.mul_public_fixed(ex, &x.1, v)?,
                e1.matmul(ex, &w.1, &w.1)?,
            ]),
        ).unwrap();
        let xe: Vec<i64> = xv.iter().map(|&a| enc(a)).collect();
        let ye: Vec<i64> = yv.iter().map(|&a| enc(a)).collect();
        let we: Vec<i64> = wv.iter().map(|&a| enc(a)).collect();
        let prod: Vec<i64> = xe.iter().zip(&ye).map(|(a, b)| a * b).collect();
        prop_assert!(within_trunc(&opened(&r0[0], &r1[0]), &prod));
        let mv: Vec<i64> = xe.chunks(k).map(|r| r.iter().zip(&we).map(|(a, b)| a * b).sum()).collect();
        prop_assert!(within_trunc(&opened(&r0[1], &r1[1]), &mv));
        let pv: Vec<i64> = xe.iter().map(|a| a * enc(v)).collect();
        prop_assert!(within_trunc(&opened(&r0[2], &r1[2]), &pv));
        let dot: i64 = we.iter().map(|a| a * a).sum();
        prop_assert!(within_trunc(&opened(&r0[3], &r1[3]), &[dot]));
    }

    /// The input-holder product: `x` in the clear at one party, `w` at the
    /// other, both roles; the ring product is exact (no truncation here).
    #[test]
    fn holder_matmul_exact((m, k, xv) in matrix(10.0), n in 1usize..6, seed in any::<u64>(),
                           p0_holds_x in any::<bool>()) {
        let wv: Vec<f64> = (0..k * n).map(|i| ((i as f64) * 0.7 + seed as f64 * 1e-19).sin() * 3.0).collect();
        let fp = FixedPoint::default();
        let x = fp.encode_tensor(&xv, &[m, k]).unwrap();
        let w = fp.encode_tensor(&wv, &[k, n]).unwrap();
        let zx = RingTensor::zeros(&[m, k]).unwrap();
        let zw = RingTensor::zeros(&[k, n]).unwrap();
        let holder = if p0_holds_x { Party::P0 } else { Party::P1 };
        // Each party's shares: its own input in full, zero for the other's.
        let (x0, w0, x1, w1) = if p0_holds_x {
            (x.clone(), zw.clone(), zx.clone(), w.clone())
        } else {
            (zx.clone(), w.clone(), x.clone(), zw.clone())
        };
        let (mut e0, mut e1, _) = dealer_engines_for_tests(seed, fp, TruncMode::Dealer);
        let run = |e: &mut Engine<DealerSource>, ex: &mut driver::ChannelExchange, p: Party, xs: RingTensor, ws: RingTensor| {
            let (st, msg) = e.holder_matmul_round1(&Share::new(p, xs), &Share::new(p, ws), holder)?;
            let peer = match ex.exchange(Message::Open(msg.clone()))? {
                Message::Open(m) => m,
                Message::Beaver(_) => unreachable!("the test sends only openings"),
            };
            Engine::<DealerSource>::holder_matmul_round2(st, peer, &msg)
        };
        let ((z0, _), (z1, _)) = run_two_party(
            |ex| run(&mut e0, ex, Party::P0, x0, w0),
            |ex| run(&mut e1, ex, Party::P1, x1, w1),
        ).unwrap();
        let want = x.matmul(&w).unwrap();
        let got = reconstruct(&z0, &z1).unwrap();
        prop_assert_eq!(got.data(), want.data());
    }

    /// The holder masking its clear input directly sends the same message
    /// and keeps the same state as encoding it first: the same product.
    #[test]
    fn holder_masks_its_clear_input_as_it_masks_its_share((m, k, xv) in matrix(10.0),
                                                          n in 1usize..6, seed in any::<u64>(),
                                                          p0_holds_x in any::<bool>()) {
        let wv: Vec<f64> = (0..k * n).map(|i| ((i as f64) * 0.9 + seed as f64 * 1e-19).cos() * 3.0).collect();
        let fp = FixedPoint::default();
        let x = fp.encode_tensor(&xv, &[m, k]).unwrap();
        let w = fp.encode_tensor(&wv, &[k, n]).unwrap();
        let holder = if p0_holds_x { Party::P0 } else { Party::P1 };
        let other = if p0_holds_x { Party::P1 } else { Party::P0 };
        let zw = RingTensor::zeros(&[k, n]).unwrap();
        let mut results = Vec::new();
        for clear in [false, true] {
            let (mut e0, mut e1, _) = dealer_engines_for_tests(seed, fp, TruncMode::Dealer);
            let (eh, eo) = if p0_holds_x { (&mut e0, &mut e1) } else { (&mut e1, &mut e0) };
            let (sh, mh) = if clear {
                eh.holder_matmul_round1_clear(&xv, &[m, k], fp.frac_bits(), &Share::new(holder, zw.clone()), None, holder).unwrap()
            } else {
                eh.holder_matmul_round1(&Share::new(holder, x.clone()), &Share::new(holder, zw.clone()), holder).unwrap()
            };
            let zx = RingTensor::zeros(&[m, k]).unwrap();
            let (so, mo) = eo.holder_matmul_round1(&Share::new(other, zx), &Share::new(other, w.clone()), holder).unwrap();
            let zh = Engine::<DealerSource>::holder_matmul_round2(sh, mo.clone(), &mh).unwrap();
            let zo = Engine::<DealerSource>::holder_matmul_round2(so, mh.clone(), &mo).unwrap();
            results.push((mh.data.clone(), reconstruct(&zh, &zo).unwrap()));
        }
        prop_assert_eq!(&results[0].0, &results[1].0);
        prop_assert_eq!(results[0].1.data(), results[1].1.data());
        let want = x.matmul(&w).unwrap();
        prop_assert_eq!(results[1].1.data(), want.data());
    }

    #[test]
    fn matmul_2d((m, k, xv) in matrix(10.0), n in 1usize..6, seed in any::<u64>(),
                 mode in mode_strategy()) {
        let wv: Vec<f64> = (0..k * n).map(|i| ((i as f64) * 1.3 + seed as f64 * 1e-19).cos() * 3.0).collect();
        let x = share_vals(&xv, &[m, k], seed);
        let w = share_vals(&wv, &[k, n], seed ^ 7);
        let (mut e0, mut e1, _) = dealer_engines_for_tests(seed ^ 3, FixedPoint::default(), mode);
        let ((z0, _), (z1, _)) = run_two_party(
            |ex| e0.matmul(ex, &x.0, &w.0),
            |ex| e1.matmul(ex, &x.1, &w.1),
        ).unwrap();
        prop_assert_eq!(z0.shape(), &[m, n]);
        let xe: Vec<i64> = xv.iter().map(|&a| enc(a)).collect();
        let we: Vec<i64> = wv.iter().map(|&a| enc(a)).collect();
        let mut exact = vec![0i64; m * n];
        for i in 0..m {
            for j in 0..n {
                exact[i * n + j] = (0..k).map(|l| xe[i * k + l] * we[l * n + j]).sum();
            }
        }
        prop_assert!(within_trunc(&opened(&z0, &z1), &exact));
    }

    #[test]
    fn dealer_truncation_any_value(xs in proptest::collection::vec(-(1i64 << 62) + 1..(1i64 << 62), 1..64),
                                   seed in any::<u64>(), bits in 1u32..40) {
        let t = RingTensor::new(xs.iter().map(|&v| v as u64).collect(), vec![xs.len()]).unwrap();
        let (a, b) = share_with_rng(&t, &mut fixed_seed_rng_for_tests(seed)).unwrap();
        let (mut e0, mut e1, _) = dealer_engines_for_tests(seed, FixedPoint::default(), TruncMode::Dealer);
        let ((y0, _), (y1, _)) = run_two_party(
            |ex| {
                let (st, m) = e0.trunc_bits_round1(&a, bits)?;
                let peer = match ex.exchange(Message::Open(m))? { Message::Open(p) => p, _ => unreachable!() };
                Engine::<DealerSource>::trunc_round2(st, peer)
            },
            |ex| {
                let (st, m) = e1.trunc_bits_round1(&b, bits)?;
                let peer = match ex.exchange(Message::Open(m))? { Message::Open(p) => p, _ => unreachable!() };
                Engine::<DealerSource>::trunc_round2(st, peer)
            },
        ).unwrap();
        for (g, x) in opened(&y0, &y1).iter().zip(&xs) {
            prop_assert!((0..=1).contains(&(g - (x >> bits))));
        }
    }

    #[test]
    fn polynomial_matches_f64(coeffs in proptest::collection::vec(-2.0f64..2.0, 1..8),
                              xs in proptest::collection::vec(-4.0f64..4.0, 1..40),
                              seed in any::<u64>(), mode in mode_strategy()) {
        let n = xs.len();
        let x = share_vals(&xs, &[n], seed);
        let (mut e0, mut e1, _) = dealer_engines_for_tests(seed, FixedPoint::default(), mode);
        let ((a, _), (b, _)) = run_two_party(
            |ex| e0.poly(ex, &x.0, &coeffs, 4.0),
            |ex| e1.poly(ex, &x.1, &coeffs, 4.0),
        ).unwrap();
        let got = FixedPoint::default().decode_tensor(&reconstruct(&a, &b).unwrap());
        // Fixed-point slack: a few LSB (2^-16) per power, weighted by |c_k|.
        let bound = (coeffs.iter().map(|c| c.abs()).sum::<f64>() * 8.0 + 4.0) / 65536.0;
        for (g, &v) in got.iter().zip(&xs) {
            let want = sharing::poly::eval(&coeffs, 4.0, v);
            prop_assert!((g - want).abs() <= bound, "got {} want {} bound {}", g, want, bound);
        }
    }
}

#[test]
fn masking_from_the_clear_refuses_what_it_cannot_encode_and_the_wrong_party() {
    let fp = FixedPoint::default();
    let w = Share::new(Party::P0, RingTensor::zeros(&[2, 1]).unwrap());
    let (mut e0, mut e1, _) = dealer_engines_for_tests(1, fp, TruncMode::Dealer);
    for bad in [f64::NAN, f64::INFINITY, 1e30] {
        let err = e0
            .holder_matmul_round1_clear(&[0.5, bad], &[1, 2], fp.frac_bits(), &w, None, Party::P0)
            .unwrap_err();
        assert!(err.to_string().contains("cannot encode"), "{err}");
    }
    let err = e0
        .holder_matmul_round1_clear(&[0.5], &[1, 2], fp.frac_bits(), &w, None, Party::P0)
        .unwrap_err();
    assert!(err.to_string().contains("elements"), "{err}");
    let w1 = Share::new(Party::P1, RingTensor::zeros(&[2, 1]).unwrap());
    assert!(e1
        .holder_matmul_round1_clear(&[0.5, 0.25], &[1, 2], fp.frac_bits(), &w1, None, Party::P0)
        .is_err());
}
