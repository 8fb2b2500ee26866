//! Comparison-based functions inside small models, and the statistics of
//! the masked opening.
//!
//! - The opened `c = x + r` of an MSB is uniform whatever `x` is
//!   (deterministic test with a fixed, test-named seed).
//! - Logistic regression with logits spanning [-40, 40]: the clamped
//!   sigmoid stays within the polynomial's stated error (+ the tail beyond
//!   the fit domain + fixed-point rounding) everywhere and gives the same
//!   labels as plaintext; the unclamped polynomial does not.
//! - A two-layer ReLU network with argmax gives the plaintext labels.

use rand::RngExt;
use runtime::sharing::driver::{dealer_engines_for_tests, run_two_party};
use runtime::sharing::poly::{sigmoid, SIGMOID_DEG9_MAX_ERR};
use runtime::sharing::share::fixed_seed_rng_for_tests;
use runtime::sharing::*;

fn fp() -> FixedPoint {
    FixedPoint::default()
}

fn share_f(vals: &[f64], shape: &[usize], seed: u64) -> (Share, Share) {
    let t = fp().encode_tensor(vals, shape).unwrap();
    share_with_rng(&t, &mut fixed_seed_rng_for_tests(seed)).unwrap()
}

fn open_f(a: &Share, b: &Share) -> Vec<f64> {
    fp().decode_tensor(&reconstruct(a, b).unwrap())
}

#[test]
fn masked_opening_is_uniform_whatever_x_is() {
    const N: usize = 1 << 14;
    let mut dealer = Dealer::new_with_fixed_seed_for_tests(0x5eed_c0de);
    let s0 = dealer.seed_msg(Party::P0);
    let s1 = dealer.seed_msg(Party::P1);
    let (src0, src1) = (
        DealerSource::party0(s0).unwrap(),
        DealerSource::party1(s1, vec![]).unwrap(),
    );
    let mut e0 = Engine::new(fp(), TruncMode::Dealer, src0);
    let mut e1 = Engine::new(fp(), TruncMode::Dealer, src1);
    for (k, &x) in [0i64, 1, -1, (1 << 62) - 1, -(1 << 62), 12345 << 16]
        .iter()
        .enumerate()
    {
        let t = RingTensor::filled(&[N], x as u64).unwrap();
        let (x0, x1) = share_with_rng(&t, &mut fixed_seed_rng_for_tests(k as u64)).unwrap();
        let reqs = [
            CorrelationRequest::MaskedBits { shape: vec![N] },
            CorrelationRequest::AndTriples {
                bits: compare::and_triple_bits(N),
            },
            CorrelationRequest::DaBits { shape: vec![N] },
        ];
        let corr = reqs.iter().map(|r| dealer.correction(r).unwrap()).collect();
        e1.correlations_mut().push_corrections(corr).unwrap();
        let (_, m0) = e0.msb_round1(&x0).unwrap();
        let (_, m1) = e1.msb_round1(&x1).unwrap();
        let c: Vec<u64> = m0
            .data
            .iter()
            .zip(&m1.data)
            .map(|(a, b)| a.wrapping_add(*b))
            .collect();
        // Every bit is a fair coin: within 5 standard deviations.
        let sd = (N as f64 / 4.0).sqrt();
        for bit in 0..64 {
            let ones = c.iter().filter(|&&v| (v >> bit) & 1 == 1).count() as f64;
            assert!(
                (ones - N as f64 / 2.0).abs() < 5.0 * sd,
                "x #{k}: bit {bit} has {ones} ones of {N}"
            );
        }
        // Top byte: chi-square over 256 buckets (255 dof; mean 255,
        // sd ≈ 22.6), well under mean + 6 sd.
        let mut buckets = [0f64; 256];
        for &v in &c {
            buckets[(v >> 56) as usize] += 1.0;
        }
        let e = N as f64 / 256.0;
        let chi2: f64 = buckets.iter().map(|o| (o - e) * (o - e) / e).sum();
        assert!(chi2 < 255.0 + 6.0 * 22.6, "x #{k}: chi2 {chi2}");
    }
}

#[test]
fn logistic_regression_with_clamped_sigmoid() {
    // 400 samples, 4 features; logits span [-40, 40].
    let mut rng = fixed_seed_rng_for_tests(11);
    let (m, d) = (400, 4);
    let w = [9.0, -7.5, 6.0, 4.5];
    let b = 1.25;
    let mut xs = Vec::with_capacity(m * d);
    for _ in 0..m * d {
        xs.push(rng.random_range(-1.5..1.5));
    }
    let logits: Vec<f64> = xs
        .chunks(d)
        .map(|r| r.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() + b)
        .collect();
    let lmax = logits.iter().fold(0f64, |a, v| a.max(v.abs()));
    assert!(lmax > 25.0 && lmax <= 40.0, "logit range {lmax}");
    let x = share_f(&xs, &[m, d], 1);
    let wt = share_f(&w, &[d], 2);
    let (mut e0, mut e1, _) = dealer_engines_for_tests(3, fp(), TruncMode::Dealer);
    let run =
        |e: &mut Engine<DealerSource>, ex: &mut driver::ChannelExchange, x: &Share, w: &Share| {
            let z = e.matmul(ex, x, w)?;
            let z = e.add_public_fixed(&z, b)?;
            Ok(vec![
                e.sigmoid_clamped(ex, &z, 9, false)?,
                e.sigmoid_clamped(ex, &z, 9, true)?,
                e.sigmoid(ex, &z, 9)?,
            ])
        };
    let ((r0, _), (r1, _)) = run_two_party(
        |ex| run(&mut e0, ex, &x.0, &wt.0),
        |ex| run(&mut e1, ex, &x.1, &wt.1),
    )
    .unwrap();
    // Stated bound: the fit's max error on [-8, 8] plus the tail 1 - σ(8)
    // beyond the domain, plus fixed-point rounding (a few 2^-16).
    let bound = SIGMOID_DEG9_MAX_ERR + (1.0 - sigmoid(8.0)) + 1e-3;
    for (k, res) in [(0, "saturate"), (1, "piecewise")] {
        let p = open_f(&r0[k], &r1[k]);
        for (i, (&z, &pi)) in logits.iter().zip(&p).enumerate() {
            let err = (pi - sigmoid(z)).abs();
            assert!(err <= bound, "{res}: sample {i}: error {err} > {bound}");
            if z.abs() > 0.01 {
                assert_eq!(pi >= 0.5, sigmoid(z) >= 0.5, "{res}: label of sample {i}");
            }
        }
    }
    // The unclamped polynomial is far off outside [-8, 8].
    let p = open_f(&r0[2], &r1[2]);
    let worst = logits
        .iter()
        .zip(&p)
        .map(|(&z, &pi)| (pi - sigmoid(z)).abs())
        .fold(0f64, f64::max);
    assert!(worst > 1.0, "unclamped worst error {worst}");
}

fn relu_net_plain(x: &[f64], w1: &[f64], w2: &[f64], d: usize, h: usize, k: usize) -> Vec<f64> {
    let hid: Vec<f64> = (0..h)
        .map(|j| (0..d).map(|i| x[i] * w1[i * h + j]).sum::<f64>().max(0.0))
        .collect();
    (0..k)
        .map(|c| (0..h).map(|j| hid[j] * w2[j * k + c]).sum())
        .collect()
}

#[test]
fn two_layer_relu_network_argmax_labels() {
    let mut rng = fixed_seed_rng_for_tests(21);
    let (m, d, h, k) = (64, 6, 16, 5);
    let mut r =
        |n: usize, s: f64| -> Vec<f64> { (0..n).map(|_| rng.random_range(-s..s)).collect() };
    let xs = r(m * d, 2.0);
    let w1 = r(d * h, 1.0);
    let w2 = r(h * k, 1.0);
    let x = share_f(&xs, &[m, d], 1);
    let a = share_f(&w1, &[d, h], 2);
    let c = share_f(&w2, &[h, k], 3);
    let (mut e0, mut e1, _) = dealer_engines_for_tests(4, fp(), TruncMode::Dealer);
    let run = |e: &mut Engine<DealerSource>,
               ex: &mut driver::ChannelExchange,
               x: &Share,
               a: &Share,
               c: &Share| {
        let hid = e.matmul(ex, x, a)?;
        let hid = e.relu(ex, &hid)?;
        let logits = e.matmul(ex, &hid, c)?;
        e.argmax_last_axis(ex, &logits)
    };
    let (((_, i0), _), ((_, i1), _)) = run_two_party(
        |ex| run(&mut e0, ex, &x.0, &a.0, &c.0),
        |ex| run(&mut e1, ex, &x.1, &a.1, &c.1),
    )
    .unwrap();
    let labels = reconstruct(&i0, &i1).unwrap();
    let mut checked = 0;
    for (row, &got) in xs.chunks(d).zip(labels.data()) {
        let lg = relu_net_plain(row, &w1, &w2, d, h, k);
        let mut sorted = lg.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        if sorted[0] - sorted[1] < 1e-2 {
            continue; // near-tie: fixed-point rounding may pick either
        }
        let want = lg.iter().position(|&v| v == sorted[0]).unwrap() as u64;
        assert_eq!(got, want);
        checked += 1;
    }
    assert!(checked >= m - 4, "only {checked} rows without near-ties");
}

#[test]
fn clamped_tanh_holds_its_bound_on_the_whole_line() {
    let n = 401;
    let xs: Vec<f64> = (0..n)
        .map(|i| -40.0 + 80.0 * i as f64 / (n - 1) as f64)
        .collect();
    let x = share_f(&xs, &[n], 5);
    let (mut e0, mut e1, _) = dealer_engines_for_tests(6, fp(), TruncMode::Dealer);
    let ((r0, s0), (r1, _)) = run_two_party(
        |ex| {
            Ok(vec![
                e0.tanh_clamped(ex, &x.0, 9, false)?,
                e0.tanh_clamped(ex, &x.0, 9, true)?,
            ])
        },
        |ex| {
            Ok(vec![
                e1.tanh_clamped(ex, &x.1, 9, false)?,
                e1.tanh_clamped(ex, &x.1, 9, true)?,
            ])
        },
    )
    .unwrap();
    assert_eq!(s0.rounds, 2 * (9 + 10));
    // tanh = 2σ(2x) − 1: twice the sigmoid fit's error, plus the tail
    // 1 − tanh(4) beyond the domain [-4, 4], plus rounding.
    let bound = 2.0 * SIGMOID_DEG9_MAX_ERR + (1.0 - 4f64.tanh()) + 2e-3;
    for k in 0..2 {
        let t = open_f(&r0[k], &r1[k]);
        for (&xi, &ti) in xs.iter().zip(&t) {
            assert!((ti - xi.tanh()).abs() <= bound, "x = {xi}: {ti}");
        }
    }
    // Piecewise: exactly ±1 (up to rounding) outside [-4, 4].
    let t = open_f(&r0[1], &r1[1]);
    for (&xi, &ti) in xs.iter().zip(&t) {
        if xi.abs() > 4.0 {
            assert!((ti - xi.signum()).abs() < 1e-3, "x = {xi}: {ti}");
        }
    }
}
