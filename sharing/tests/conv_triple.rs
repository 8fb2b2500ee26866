//! The dealer's convolution triple (`CorrelationRequest::ConvTriple`):
//! `x ⊛ w` on shares against a direct convolution in the clear (written
//! out here, not through `plan::im2col_data`), over random ring values,
//! shapes, strides, paddings, dilations and groups (depthwise included);
//! the message opens |x| + |w| elements and the dealer corrects only
//! party 1's `c`.

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

/// `x` (`[batch, c, h, w]`) convolved with `w` in Z_2^64, written out
/// loop by loop: `[batch·ho·wo, o]`, flat. With one group `w` is
/// `[c·kh·kw, o]` (row `ch·K + i·kw + j`); with `groups > 1` it is
/// `[o, c/groups·kh·kw]`, output channel `oc` reading the channels of group
/// `oc / (o / groups)`. Zero padding, or with `edge` the nearest entry;
/// `extra` pads the end of each axis further.
fn direct_conv(x: &RingTensor, w: &RingTensor, win: &Window) -> (Vec<u64>, Vec<usize>) {
    let s = x.shape();
    let (batch, c, h, wd) = (s[0], s[1], s[2], s[3]);
    let (kh, kw) = (win.kernel[0], win.kernel[1]);
    let grouped = win.groups > 1;
    let o = if grouped { w.shape()[0] } else { w.shape()[1] };
    let cg = c / win.groups;
    let extra = |a: usize| win.extra.get(a).copied().unwrap_or(0);
    let out_len = |size: usize, a: usize| {
        (size + 2 * win.padding[a] + extra(a) - win.dilation[a] * (win.kernel[a] - 1) - 1)
            / win.stride[a]
            + 1
    };
    let (ho, wo) = (out_len(h, 0), out_len(wd, 1));
    // The entry at (y, x) of a padded axis of `size`, or None in zeros.
    let at = |p: isize, size: usize| {
        if win.edge {
            Some(p.clamp(0, size as isize - 1) as usize)
        } else {
            (p >= 0 && (p as usize) < size).then_some(p as usize)
        }
    };
    let mut out = vec![0u64; batch * ho * wo * o];
    for b in 0..batch {
        for oy in 0..ho {
            for ox in 0..wo {
                for oc in 0..o {
                    let g = if grouped { oc / (o / win.groups) } else { 0 };
                    let channels = if grouped { g * cg..(g + 1) * cg } else { 0..c };
                    let mut acc = 0u64;
                    for ch in channels {
                        for i in 0..kh {
                            for j in 0..kw {
                                let y = (oy * win.stride[0] + i * win.dilation[0]) as isize
                                    - win.padding[0] as isize;
                                let xx = (ox * win.stride[1] + j * win.dilation[1]) as isize
                                    - win.padding[1] as isize;
                                let (Some(y), Some(xx)) = (at(y, h), at(xx, wd)) else {
                                    continue;
                                };
                                let v = x.data()[((b * c + ch) * h + y) * wd + xx];
                                let k = if grouped {
                                    w.data()[(oc * cg + ch - g * cg) * kh * kw + i * kw + j]
                                } else {
                                    w.data()[(ch * kh * kw + i * kw + j) * o + oc]
                                };
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

/// Runs `x ⊛ w` on shares with one convolution triple from a dealer and
/// checks it against [`direct_conv`]: the messages open exactly |x| + |w|
/// words each way, and the dealer sends party 1's `c` (one word per
/// output) and little else.
fn check_triple(x: &RingTensor, w: &RingTensor, window: &Window, seed: u64) {
    let (x0, x1) = share_with_rng(x, &mut fixed_seed_rng_for_tests(seed + 1)).unwrap();
    let (w0, w1) = share_with_rng(w, &mut fixed_seed_rng_for_tests(seed + 2)).unwrap();
    let (mut e0, mut e1, dealer) =
        dealer_engines_for_tests(seed, FixedPoint::default(), TruncMode::Dealer);
    let (s0, m0) = e0.conv_round1(&x0, &w0, window).unwrap();
    let (s1, m1) = e1.conv_round1(&x1, &w1, window).unwrap();
    // Opened: x − a and w − b, not the patches.
    let opened = 8 * (x.data().len() + w.data().len());
    assert_eq!(m0.payload_bytes(), opened);
    assert_eq!(m1.payload_bytes(), opened);
    let z0 = Engine::<DealerSource>::mul_round2(s0, m1).unwrap();
    let z1 = Engine::<DealerSource>::mul_round2(s1, m0).unwrap();
    let z = reconstruct(&z0, &z1).unwrap();
    let (want, shape) = direct_conv(x, w, window);
    assert_eq!(z.shape(), &shape[..], "{window:?}");
    assert_eq!(z.data(), &want[..], "{window:?}");
    // The dealer sent two seeds and party 1's c: one word per output.
    let sent = dealer.lock().unwrap().bytes_sent();
    assert!(
        sent >= 8 * want.len() as u64 && sent <= 8 * want.len() as u64 + 256,
        "dealer sent {sent} bytes for a c of {} words",
        want.len()
    );
}

fn random_tensor(rng: &mut impl RngExt, shape: Vec<usize>) -> RingTensor {
    let n = shape.iter().product();
    RingTensor::new((0..n).map(|_| rng.random::<u64>()).collect(), shape).unwrap()
}

/// A 2-d window for the property tests (padding at most the kernel less
/// one) and the input's height and width: each axis as long as the
/// dilated kernel reaches, and `extra` more.
fn window_2d(
    k: (usize, usize),
    stride: (usize, usize),
    dilation: (usize, usize),
    pad: (usize, usize),
    extra: (usize, usize),
    (groups, per_group): (usize, usize),
) -> (Window, usize, usize) {
    let window = Window {
        kernel: vec![k.0, k.1],
        stride: vec![stride.0, stride.1],
        padding: vec![pad.0.min(k.0 - 1), pad.1.min(k.1 - 1)],
        dilation: vec![dilation.0, dilation.1],
        groups,
        per_group,
        edge: false,
        extra: Vec::new(),
    };
    let h = dilation.0 * (k.0 - 1) + 1 + extra.0;
    let wd = dilation.1 * (k.1 - 1) + 1 + extra.1;
    (window, h, wd)
}

/// Kernel, stride, dilation and padding of a random 2-d window, and the
/// input's rows and columns beyond its last position: what the property
/// tests draw for [`window_2d`].
type WindowParams = (
    (usize, usize),
    (usize, usize),
    (usize, usize),
    (usize, usize),
    (usize, usize),
);

fn window_params() -> impl Strategy<Value = WindowParams> {
    (
        (1usize..4, 1usize..4),
        (1usize..3, 1usize..3),
        (1usize..3, 1usize..3),
        (0usize..3, 0usize..3),
        (0usize..4, 0usize..4),
    )
}

proptest! {
    #![proptest_config(cfg())]
    #[test]
    fn a_convolution_triple_computes_the_convolution(
        batch in 1usize..3,
        c in 1usize..4,
        o in 1usize..4,
        (k, stride, dilation, pad, extra) in window_params(),
        seed in 0u64..1_000_000,
    ) {
        let (window, h, wd) = window_2d(k, stride, dilation, pad, extra, (1, 1));
        let mut rng = fixed_seed_rng_for_tests(seed);
        let x = random_tensor(&mut rng, vec![batch, c, h, wd]);
        let w = random_tensor(&mut rng, vec![c * k.0 * k.1, o]);
        check_triple(&x, &w, &window, seed);
    }
}

proptest! {
    #![proptest_config(cfg())]
    /// Grouped convolutions, depthwise ones (one input channel per group)
    /// among them, with several output channels per group or one: the
    /// kernel is `[O, C/groups·K]` and the messages still open |x| + |w|.
    #[test]
    fn a_grouped_convolution_triple_computes_the_grouped_convolution(
        batch in 1usize..3,
        groups in 2usize..5,
        cg in 1usize..3,
        per_group in 1usize..3,
        (k, stride, dilation, pad, extra) in window_params(),
        seed in 0u64..1_000_000,
    ) {
        let (window, h, wd) = window_2d(k, stride, dilation, pad, extra, (groups, per_group));
        let mut rng = fixed_seed_rng_for_tests(seed);
        let x = random_tensor(&mut rng, vec![batch, groups * cg, h, wd]);
        let w = random_tensor(&mut rng, vec![groups * per_group, cg * k.0 * k.1]);
        check_triple(&x, &w, &window, seed);
    }
}

/// A depthwise 3×3 convolution as MobileNet has it (8 channels, stride 2,
/// padding 1): one kernel row of 9 per channel.
#[test]
fn a_depthwise_convolution_triple_opens_the_input_and_the_kernels() {
    let (window, ..) = window_2d((3, 3), (2, 2), (1, 1), (1, 1), (0, 0), (8, 1));
    let mut rng = fixed_seed_rng_for_tests(5);
    let x = random_tensor(&mut rng, vec![2, 8, 9, 7]);
    let w = random_tensor(&mut rng, vec![8, 9]);
    check_triple(&x, &w, &window, 11);
}

/// im2col copies entries, so it is linear with the nearest-entry padding
/// of max pooling and with `ceil_mode`'s extra padding too (no
/// convolution has them; a triple over such a window is still right).
#[test]
fn a_convolution_triple_over_edge_and_extra_padding_is_right() {
    let base = Window {
        kernel: vec![2, 3],
        stride: vec![2, 1],
        padding: vec![1, 1],
        dilation: vec![1, 1],
        groups: 1,
        per_group: 1,
        edge: false,
        extra: vec![1, 2],
    };
    let mut rng = fixed_seed_rng_for_tests(7);
    let x = random_tensor(&mut rng, vec![1, 2, 5, 4]);
    for (edge, groups) in [(false, 1), (true, 1), (true, 2)] {
        let window = Window {
            edge,
            groups,
            ..base.clone()
        };
        let w = if groups == 1 {
            random_tensor(&mut rng, vec![2 * 6, 3])
        } else {
            random_tensor(&mut rng, vec![2, 6])
        };
        check_triple(&x, &w, &window, 13);
    }
}

/// A kernel whose shape does not fit the window (a grouped one given as a
/// matrix, a matrix with the wrong rows, output channels that are not
/// groups·per_group) is refused with an error, not a wrong product.
#[test]
fn a_convolution_triple_refuses_a_kernel_that_does_not_fit() {
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
        per_group: 2,
        ..base.clone()
    };
    let bad_per_group = Window {
        per_group: 2,
        ..base.clone()
    };
    for (window, shape) in [
        (grouped.clone(), vec![8, 4]),
        (grouped.clone(), vec![2, 4]),
        (grouped, vec![4, 8]),
        (base.clone(), vec![4, 1]),
        (bad_per_group, vec![8, 1]),
    ] {
        let n = shape.iter().product();
        let w = RingTensor::new(vec![1; n], shape).unwrap();
        let (w0, _) = share_with_rng(&w, &mut fixed_seed_rng_for_tests(2)).unwrap();
        let (mut e0, _, _) = dealer_engines_for_tests(3, FixedPoint::default(), TruncMode::Dealer);
        assert!(
            e0.conv_round1(&x0, &w0, &window).is_err(),
            "{window:?} {:?}",
            w.shape()
        );
    }
}

/// Runs `x ⊛ w` with `x` in the clear at `holder` and `w` at the other
/// party by one input-holder convolution triple
/// (`CorrelationRequest::HolderConvTriple`) and checks it against
/// [`direct_conv`]: the holder sends exactly |x| words (`x − a`, not the
/// patches), the other |w| (`w − b`), and the dealer party 1's `c`. With
/// `from_clear` the holder masks its input straight from fixed-point
/// values (`holder_matmul_round1_clear`), which must give the same result.
fn check_holder_triple(x: &RingTensor, w: &RingTensor, window: &Window, holder: Party, seed: u64) {
    let other = holder.other();
    let (mut e0, mut e1, dealer) =
        dealer_engines_for_tests(seed, FixedPoint::default(), TruncMode::Dealer);
    let (eh, eo) = match holder {
        Party::P0 => (&mut e0, &mut e1),
        Party::P1 => (&mut e1, &mut e0),
    };
    // The absent halves are zero: the holder's share of w, the other's of x.
    let zx = RingTensor::zeros(x.shape()).unwrap();
    let zw = RingTensor::zeros(w.shape()).unwrap();
    let (sh, mh) = eh
        .holder_conv_round1(
            &Share::new(holder, x.clone()),
            &Share::new(holder, zw),
            window,
            holder,
        )
        .unwrap();
    let (so, mo) = eo
        .holder_conv_round1(
            &Share::new(other, zx),
            &Share::new(other, w.clone()),
            window,
            holder,
        )
        .unwrap();
    assert_eq!(
        mh.payload_bytes(),
        8 * x.data().len(),
        "the holder sends x − a"
    );
    assert_eq!(
        mo.payload_bytes(),
        8 * w.data().len(),
        "the other sends w − b"
    );
    let zh = Engine::<DealerSource>::holder_matmul_round2(sh, mo.clone(), &mh).unwrap();
    let zo = Engine::<DealerSource>::holder_matmul_round2(so, mh, &mo).unwrap();
    let z = reconstruct(&zh, &zo).unwrap();
    let (want, shape) = direct_conv(x, w, window);
    assert_eq!(z.shape(), &shape[..], "{window:?}");
    assert_eq!(z.data(), &want[..], "{window:?}");
    let sent = dealer.lock().unwrap().bytes_sent();
    assert!(
        sent >= 8 * want.len() as u64 && sent <= 8 * want.len() as u64 + 256,
        "dealer sent {sent} bytes for a c of {} words",
        want.len()
    );
}

/// The same product with the holder's `x` given as clear fixed-point
/// values (`holder_matmul_round1_clear` with the window): the message is
/// |x| words and the result that of encoding `x` first.
fn check_holder_triple_from_clear(
    batch: usize,
    c: usize,
    (h, wd): (usize, usize),
    w: &RingTensor,
    window: &Window,
    holder: Party,
    seed: u64,
) {
    let fp = FixedPoint::default();
    let mut rng = fixed_seed_rng_for_tests(seed);
    let n = batch * c * h * wd;
    let xv: Vec<f64> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
    let x = fp.encode_tensor(&xv, &[batch, c, h, wd]).unwrap();
    let other = holder.other();
    let (mut e0, mut e1, _) = dealer_engines_for_tests(seed, fp, TruncMode::Dealer);
    let (eh, eo) = match holder {
        Party::P0 => (&mut e0, &mut e1),
        Party::P1 => (&mut e1, &mut e0),
    };
    let zw = Share::new(holder, RingTensor::zeros(w.shape()).unwrap());
    let (sh, mh) = eh
        .holder_matmul_round1_clear(
            &xv,
            &[batch, c, h, wd],
            fp.frac_bits(),
            &zw,
            Some(window),
            holder,
        )
        .unwrap();
    let zx = RingTensor::zeros(&[batch, c, h, wd]).unwrap();
    let (so, mo) = eo
        .holder_conv_round1(
            &Share::new(other, zx),
            &Share::new(other, w.clone()),
            window,
            holder,
        )
        .unwrap();
    assert_eq!(mh.payload_bytes(), 8 * n);
    let zh = Engine::<DealerSource>::holder_matmul_round2(sh, mo.clone(), &mh).unwrap();
    let zo = Engine::<DealerSource>::holder_matmul_round2(so, mh, &mo).unwrap();
    let z = reconstruct(&zh, &zo).unwrap();
    let (want, _) = direct_conv(&x, w, window);
    assert_eq!(z.data(), &want[..], "{window:?}");
}

proptest! {
    #![proptest_config(cfg())]
    /// An input-holder convolution triple computes the convolution of one
    /// party's clear input by the other's clear kernels, with one group
    /// or several (depthwise among them), either party holding the input,
    /// over random shapes, strides, paddings and dilations.
    #[test]
    fn an_input_holder_convolution_triple_computes_the_convolution(
        batch in 1usize..3,
        groups in 1usize..4,
        cg in 1usize..3,
        per_group in 1usize..3,
        (k, stride, dilation, pad, extra) in window_params(),
        p1_holds in proptest::bool::ANY,
        seed in 0u64..1_000_000,
    ) {
        let per_group = if groups == 1 { 1 } else { per_group };
        let (window, h, wd) = window_2d(k, stride, dilation, pad, extra, (groups, per_group));
        let mut rng = fixed_seed_rng_for_tests(seed);
        let c = groups * cg;
        let x = random_tensor(&mut rng, vec![batch, c, h, wd]);
        let w = if groups == 1 {
            random_tensor(&mut rng, vec![c * k.0 * k.1, 1 + seed as usize % 3])
        } else {
            random_tensor(&mut rng, vec![groups * per_group, cg * k.0 * k.1])
        };
        let holder = if p1_holds { Party::P1 } else { Party::P0 };
        check_holder_triple(&x, &w, &window, holder, seed);
        check_holder_triple_from_clear(batch, c, (h, wd), &w, &window, holder, seed);
    }
}

/// A malformed peer message (the other party's `w − b` of the wrong
/// shape, or the holder's `x − a` cut to the patches' size) is an error
/// in round 2, not a panic or a wrong product.
#[test]
fn an_input_holder_convolution_refuses_a_malformed_message() {
    let (window, ..) = window_2d((2, 2), (1, 1), (1, 1), (0, 0), (0, 0), (1, 1));
    let mut rng = fixed_seed_rng_for_tests(4);
    let x = random_tensor(&mut rng, vec![1, 2, 3, 3]);
    let w = random_tensor(&mut rng, vec![8, 2]);
    let (mut e0, mut e1, _) = dealer_engines_for_tests(9, FixedPoint::default(), TruncMode::Dealer);
    let (s0, m0) = e0
        .holder_conv_round1(
            &Share::new(Party::P0, x.clone()),
            &Share::new(Party::P0, RingTensor::zeros(w.shape()).unwrap()),
            &window,
            Party::P0,
        )
        .unwrap();
    let (s1, m1) = e1
        .holder_conv_round1(
            &Share::new(Party::P1, RingTensor::zeros(x.shape()).unwrap()),
            &Share::new(Party::P1, w.clone()),
            &window,
            Party::P0,
        )
        .unwrap();
    let wrong = |shape: Vec<usize>| {
        let n = shape.iter().product();
        OpenMsg::from_tensor(RingTensor::new(vec![3; n], shape).unwrap())
    };
    assert!(Engine::<DealerSource>::holder_matmul_round2(s0, wrong(vec![2, 8]), &m0).is_err());
    // The patches' size (4 positions × 8) instead of the input's.
    assert!(Engine::<DealerSource>::holder_matmul_round2(s1, wrong(vec![4, 8]), &m1).is_err());
}
