//! Statistical tests, deterministic through test-named fixed seeds: each
//! share alone is uniform, and the values opened during a Beaver product
//! (x - a) and a dealer truncation (x + 2^62 + r) do not depend on x.

use sharing::driver::dealer_engines_for_tests;
use sharing::share::fixed_seed_rng_for_tests;
use sharing::*;

const BINS: usize = 16; // top 4 bits
/// Chi-square critical value, 15 degrees of freedom, p = 0.001.
const CHI2_CRIT_15: f64 = 37.70;

fn chi_square_top_bits(values: &[u64]) -> f64 {
    let mut counts = [0usize; BINS];
    for &v in values {
        counts[(v >> 60) as usize] += 1;
    }
    let expected = values.len() as f64 / BINS as f64;
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

/// Chi-square on the low 4 bits too (catches a share that only hides the
/// high bits).
fn chi_square_low_bits(values: &[u64]) -> f64 {
    let shifted: Vec<u64> = values.iter().map(|v| v << 60).collect();
    chi_square_top_bits(&shifted)
}

#[test]
fn each_share_alone_is_uniform() {
    let n = 64_000;
    for secret in [0u64, 42, 1 << 63, u64::MAX] {
        let t = RingTensor::filled(&[n], secret).unwrap();
        let (a, b) = share_with_rng(&t, &mut fixed_seed_rng_for_tests(1234 + secret % 7)).unwrap();
        for s in [a.value().data(), b.value().data()] {
            let hi = chi_square_top_bits(s);
            let lo = chi_square_low_bits(s);
            assert!(hi < CHI2_CRIT_15, "secret {secret}: chi2 top {hi}");
            assert!(lo < CHI2_CRIT_15, "secret {secret}: chi2 low {lo}");
        }
    }
}

#[test]
fn opened_beaver_values_are_masked() {
    // The opened e = x - a must look uniform whatever x is: compare a zero
    // secret with a large constant and with a structured ramp.
    let n = 64_000;
    let fp = FixedPoint::default();
    let secrets: Vec<RingTensor> = vec![
        RingTensor::zeros(&[n]).unwrap(),
        RingTensor::filled(&[n], fp.encode(1234.5).unwrap()).unwrap(),
        RingTensor::new((0..n as u64).collect(), vec![n]).unwrap(),
    ];
    for (i, x) in secrets.iter().enumerate() {
        let (x0, x1) = share_with_rng(x, &mut fixed_seed_rng_for_tests(99 + i as u64)).unwrap();
        let (mut e0, mut e1, _) = dealer_engines_for_tests(500 + i as u64, fp, TruncMode::Dealer);
        let (_, m0) = e0.mul_round1(&x0, &x0).unwrap();
        let (_, m1) = e1.mul_round1(&x1, &x1).unwrap();
        let e =
            m0.e.into_tensor()
                .unwrap()
                .add(&m1.e.into_tensor().unwrap())
                .unwrap();
        let hi = chi_square_top_bits(e.data());
        let lo = chi_square_low_bits(e.data());
        assert!(hi < CHI2_CRIT_15, "secret {i}: chi2 top {hi}");
        assert!(lo < CHI2_CRIT_15, "secret {i}: chi2 low {lo}");
        // And e is not x: the masked values differ from the secret almost
        // everywhere.
        let same = e
            .data()
            .iter()
            .zip(x.data())
            .filter(|(a, b)| a == b)
            .count();
        assert!(same < 4);

        // Dealer truncation opens c = x + 2^62 + r: also uniform.
        let (_, t0) = e0.trunc_round1(&x0).unwrap();
        let (_, t1) = e1.trunc_round1(&x1).unwrap();
        let c = t0
            .into_tensor()
            .unwrap()
            .add(&t1.into_tensor().unwrap())
            .unwrap();
        let hi = chi_square_top_bits(c.data());
        assert!(hi < CHI2_CRIT_15, "trunc secret {i}: chi2 top {hi}");
    }
}

#[test]
fn matrix_triple_opened_values_are_masked() {
    let fp = FixedPoint::default();
    let (m, k) = (500, 100);
    let x = RingTensor::filled(&[m, k], fp.encode(3.0).unwrap()).unwrap();
    let w = RingTensor::filled(&[k], fp.encode(-0.5).unwrap()).unwrap();
    let (x0, x1) = share_with_rng(&x, &mut fixed_seed_rng_for_tests(7)).unwrap();
    let (w0, w1) = share_with_rng(&w, &mut fixed_seed_rng_for_tests(8)).unwrap();
    let (mut e0, mut e1, _) = dealer_engines_for_tests(9, fp, TruncMode::Dealer);
    let (_, m0) = e0.matmul_round1(&x0, &w0).unwrap();
    let (_, m1) = e1.matmul_round1(&x1, &w1).unwrap();
    let e =
        m0.e.into_tensor()
            .unwrap()
            .add(&m1.e.into_tensor().unwrap())
            .unwrap();
    assert!(chi_square_top_bits(e.data()) < CHI2_CRIT_15);
    assert!(chi_square_low_bits(e.data()) < CHI2_CRIT_15);
}
