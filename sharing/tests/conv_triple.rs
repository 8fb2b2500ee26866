//! The dealer's convolution triple (`CorrelationRequest::ConvTriple`):
//! `im2col(x) @ w` on shares against a direct convolution in the clear
//! (written out here, not through `plan::im2col_data`), over random ring
//! values, shapes, strides, paddings and dilations; the message opens
//! |x| + |w| elements and the dealer corrects only party 1's `c`.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use rand::RngExt;
use sharing::correlations::Window;
use sharing::driver::dealer_engines_for_tests;
use sharing::share::fixed_seed_rng_for_tests;
use sharing::*;

fn cfg() -> Config {
    Config {
        cases: 24,
        rng_seed: RngSeed::Fixed(0xc0a7),
        failure_persistence: None,
        ..Config::default()
    }
}

/// `x` (`[batch, c, h, w]`) convolved with `w` (`[c·kh·kw, o]`, row
/// `c·K + i·kw + j`) in Z_2^64: `[batch, ho, wo, o]`, flat.
fn direct_conv(x: &RingTensor, w: &RingTensor, win: &Window) -> (Vec<u64>, Vec<usize>) {
    let s = x.shape();
    let (batch, c, h, wd) = (s[0], s[1], s[2], s[3]);
    let (kh, kw) = (win.kernel[0], win.kernel[1]);
    let o = w.shape()[1];
    let out_len = |size: usize, a: usize| {
        (size + 2 * win.padding[a] - win.dilation[a] * (win.kernel[a] - 1) - 1) / win.stride[a] + 1
    };
    let (ho, wo) = (out_len(h, 0), out_len(wd, 1));
    let mut out = vec![0u64; batch * ho * wo * o];
    for b in 0..batch {
        for oy in 0..ho {
            for ox in 0..wo {
                for oc in 0..o {
                    let mut acc = 0u64;
                    for ch in 0..c {
                        for i in 0..kh {
                            for j in 0..kw {
                                let y = (oy * win.stride[0] + i * win.dilation[0]) as isize
                                    - win.padding[0] as isize;
                                let xx = (ox * win.stride[1] + j * win.dilation[1]) as isize
                                    - win.padding[1] as isize;
                                if y < 0 || xx < 0 || y as usize >= h || xx as usize >= wd {
                                    continue;
                                }
                                let v =
                                    x.data()[((b * c + ch) * h + y as usize) * wd + xx as usize];
                                let k = w.data()[(ch * kh * kw + i * kw + j) * o + oc];
                                acc = acc.wrapping_add(v.wrapping_mul(k));
                            }
                        }
                    }
                    out[((b * ho + oy) * wo + ox) * o + oc] = acc;
                }
            }
        }
    }
    (out, vec![batch * ho * wo, o])
}

proptest! {
    #![proptest_config(cfg())]
    #[test]
    fn a_convolution_triple_computes_the_convolution(
        batch in 1usize..3,
        c in 1usize..4,
        o in 1usize..4,
        k in (1usize..4, 1usize..4),
        stride in (1usize..3, 1usize..3),
        dilation in (1usize..3, 1usize..3),
        pad in (0usize..3, 0usize..3),
        extra in (0usize..4, 0usize..4),
        seed in 0u64..1_000_000,
    ) {
        let window = Window {
            kernel: vec![k.0, k.1],
            stride: vec![stride.0, stride.1],
            padding: vec![pad.0.min(k.0 - 1), pad.1.min(k.1 - 1)],
            dilation: vec![dilation.0, dilation.1],
            groups: 1,
            per_group: 1,
            edge: false,
            extra: Vec::new(),
        };
        // Each axis at least as long as the dilated kernel reaches.
        let h = dilation.0 * (k.0 - 1) + 1 + extra.0;
        let wd = dilation.1 * (k.1 - 1) + 1 + extra.1;
        let mut rng = fixed_seed_rng_for_tests(seed);
        let mut tensor = |shape: Vec<usize>| {
            let n = shape.iter().product();
            RingTensor::new((0..n).map(|_| rng.random::<u64>()).collect(), shape).unwrap()
        };
        let x = tensor(vec![batch, c, h, wd]);
        let w = tensor(vec![c * k.0 * k.1, o]);
        let (x0, x1) = share_with_rng(&x, &mut fixed_seed_rng_for_tests(seed + 1)).unwrap();
        let (w0, w1) = share_with_rng(&w, &mut fixed_seed_rng_for_tests(seed + 2)).unwrap();
        let (mut e0, mut e1, dealer) =
            dealer_engines_for_tests(seed, FixedPoint::default(), TruncMode::Dealer);
        let (s0, m0) = e0.conv_round1(&x0, &w0, &window).unwrap();
        let (s1, m1) = e1.conv_round1(&x1, &w1, &window).unwrap();
        // Opened: x − a and w − b, not the patches.
        let opened = 8 * (x.data().len() + w.data().len());
        prop_assert_eq!(m0.payload_bytes(), opened);
        prop_assert_eq!(m1.payload_bytes(), opened);
        let z0 = Engine::<DealerSource>::mul_round2(s0, m1).unwrap();
        let z1 = Engine::<DealerSource>::mul_round2(s1, m0).unwrap();
        let z = reconstruct(&z0, &z1).unwrap();
        let (want, shape) = direct_conv(&x, &w, &window);
        prop_assert_eq!(z.shape(), &shape[..]);
        prop_assert_eq!(z.data(), &want[..]);
        // The dealer sent two seeds and party 1's c: one word per output.
        let sent = dealer.lock().unwrap().bytes_sent();
        prop_assert!(sent >= 8 * want.len() as u64 && sent <= 8 * want.len() as u64 + 256,
            "dealer sent {sent} bytes for a c of {} words", want.len());
    }
}

/// A window with groups or edge padding is refused with an error, not a
/// wrong product.
#[test]
fn a_convolution_triple_refuses_grouped_and_edge_windows() {
    let x = RingTensor::new(vec![1; 2 * 3 * 3], vec![1, 2, 3, 3]).unwrap();
    let (x0, _) = share_with_rng(&x, &mut fixed_seed_rng_for_tests(1)).unwrap();
    let base = Window {
        kernel: vec![2, 2],
        stride: vec![1, 1],
        padding: vec![0, 0],
        dilation: vec![1, 1],
        groups: 1,
        per_group: 1,
        edge: false,
        extra: Vec::new(),
    };
    let grouped = Window {
        groups: 2,
        ..base.clone()
    };
    let edge = Window {
        edge: true,
        ..base.clone()
    };
    for (window, rows) in [(grouped, 4), (edge, 8)] {
        let w = RingTensor::new(vec![1; rows], vec![rows, 1]).unwrap();
        let (w0, _) = share_with_rng(&w, &mut fixed_seed_rng_for_tests(2)).unwrap();
        let (mut e0, _, _) = dealer_engines_for_tests(3, FixedPoint::default(), TruncMode::Dealer);
        assert!(e0.conv_round1(&x0, &w0, &window).is_err(), "{window:?}");
    }
}
