//! Helpers the sharing crate's integration tests share (each test file
//! uses some of them).
#![allow(dead_code)]

use sharing::share::fixed_seed_rng_for_tests;
use sharing::*;

/// Shares of the ring values `vals` (as `u64`), split with a fixed seed.
pub fn share_raw(vals: &[i64], shape: &[usize], seed: u64) -> (Share, Share) {
    let t = RingTensor::new(vals.iter().map(|&v| v as u64).collect(), shape.to_vec()).unwrap();
    share_with_rng(&t, &mut fixed_seed_rng_for_tests(seed)).unwrap()
}

/// The reconstructed ring values, as signed integers.
pub fn opened(a: &Share, b: &Share) -> Vec<i64> {
    reconstruct(a, b)
        .unwrap()
        .data()
        .iter()
        .map(|&v| v as i64)
        .collect()
}
