//! Secure comparison benchmarks: both parties in one process, each on its
//! own thread, messages over channels.
//!
//! - `compare/msb_{10000,1000000}`: one batched MSB (= one `less_than`) of
//!   `n` elements, online phase only (correlations precomputed from the
//!   seed-expanding dealer), and the dealer preprocessing separately.
//! - `compare/sigmoid_10000`: clamped (saturating) vs unclamped degree-9
//!   sigmoid on 10,000 values, end to end with an in-process online dealer
//!   (correlation generation included in both).
//!
//! - `compare/dcf_10000`: the dealer's DCF keys for 10,000 comparisons
//!   (`dcf::gen`, 63 levels, 8 AES blocks each) and one party's evaluation
//!   (`dcf::eval`, 4 blocks per level): the compute the cost model's
//!   `dcf_comparison_seconds` prices (one generation, two evaluations).
//!
//! Rounds and bytes are counted from the message sizes and printed once per
//! case. Run: `cargo bench -p sharing --bench compare -- --noplot`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sharing::driver::{self, dealer_engines_for_tests, run_two_party};
use sharing::share::fixed_seed_rng_for_tests;
use sharing::*;

type Pre = Engine<PrecomputedCorrelations>;

fn fp() -> FixedPoint {
    FixedPoint::default()
}

fn shares_of(n: usize, lo: f64, hi: f64, seed: u64) -> (Share, Share) {
    use rand::Rng;
    let mut rng = fixed_seed_rng_for_tests(seed);
    let vals: Vec<f64> = (0..n)
        .map(|_| lo + (hi - lo) * (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
        .collect();
    let t = fp().encode_tensor(&vals, &[n]).unwrap();
    share_with_rng(&t, &mut fixed_seed_rng_for_tests(seed ^ 7)).unwrap()
}

fn msb_requests(n: usize) -> Vec<CorrelationRequest> {
    vec![
        CorrelationRequest::MaskedBits { shape: vec![n] },
        CorrelationRequest::AndTriples {
            bits: compare::and_triple_bits(n),
        },
        CorrelationRequest::DaBits { shape: vec![n] },
    ]
}

/// Dealer preprocessing for one MSB of `n` elements: party 1's corrections
/// and both parties' seed expansion. Returns the engines and the dealer's
/// bytes sent.
fn preprocess(n: usize) -> (Pre, Pre, u64) {
    let reqs = msb_requests(n);
    let mut dealer = Dealer::new_with_fixed_seed_for_tests(2);
    let s0 = dealer.seed_msg(Party::P0);
    let s1 = dealer.seed_msg(Party::P1);
    let corr = reqs.iter().map(|r| dealer.correction(r).unwrap()).collect();
    let mut src0 = DealerSource::party0(s0).unwrap();
    let mut src1 = DealerSource::party1(s1, vec![]).unwrap();
    src1.push_corrections(corr).unwrap();
    let p0 = PrecomputedCorrelations::precompute(&mut src0, &reqs).unwrap();
    let p1 = PrecomputedCorrelations::precompute(&mut src1, &reqs).unwrap();
    (
        Engine::new(fp(), TruncMode::Dealer, p0),
        Engine::new(fp(), TruncMode::Dealer, p1),
        dealer.bytes_sent(),
    )
}

fn online(e: (Pre, Pre, u64), x: &(Share, Share)) -> (driver::ExchangeStats, Share) {
    let (mut e0, mut e1, _) = e;
    let ((r, st), _) = run_two_party(|ex| e0.msb(ex, &x.0), |ex| e1.msb(ex, &x.1)).unwrap();
    (st, r)
}

fn bench_msb(c: &mut Criterion) {
    for n in [10_000usize, 1_000_000] {
        let x = shares_of(n, -1000.0, 1000.0, n as u64);
        let (st, _) = online(preprocess(n), &x);
        let dealer_bytes = preprocess(n).2;
        println!(
            "msb_{n}: rounds {} ; online bytes sent per party per comparison {:.2} ; \
             dealer bytes per comparison {:.2} (party 1 corrections + 64 B of seeds)",
            st.rounds,
            st.bytes_sent as f64 / n as f64,
            dealer_bytes as f64 / n as f64,
        );
        let mut g = c.benchmark_group(format!("compare/msb_{n}"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(if n > 100_000 { 20 } else { 5 }))
            .throughput(Throughput::Elements(n as u64));
        g.bench_function("online", |b| {
            b.iter_batched(
                || preprocess(n),
                |e| black_box(online(e, &x)),
                BatchSize::PerIteration,
            )
        });
        g.bench_function("preprocess_dealer", |b| b.iter(|| black_box(preprocess(n))));
        g.finish();
    }
}

fn bench_sigmoid(c: &mut Criterion) {
    let n = 10_000;
    let x = shares_of(n, -40.0, 40.0, 5);
    let run = |clamped: bool| {
        let (mut e0, mut e1, d) = dealer_engines_for_tests(3, fp(), TruncMode::Dealer);
        let f = |e: &mut Engine<DealerSource>, ex: &mut driver::ChannelExchange, s: &Share| {
            if clamped {
                e.sigmoid_clamped(ex, s, 9, false)
            } else {
                e.sigmoid(ex, s, 9)
            }
        };
        let ((r, st), _) =
            run_two_party(|ex| f(&mut e0, ex, &x.0), |ex| f(&mut e1, ex, &x.1)).unwrap();
        let db = d.lock().unwrap().bytes_sent();
        (r, st, db)
    };
    for clamped in [false, true] {
        let (_, st, db) = run(clamped);
        println!(
            "sigmoid_10000 deg9 clamped={clamped}: rounds {} ; online bytes per party per value \
             {:.2} ; dealer bytes per value {:.2}",
            st.rounds,
            st.bytes_sent as f64 / n as f64,
            db as f64 / n as f64
        );
    }
    let mut g = c.benchmark_group("compare/sigmoid_10000");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(n as u64));
    g.bench_function("deg9_unclamped_with_online_dealer", |b| {
        b.iter(|| black_box(run(false)))
    });
    g.bench_function("deg9_clamped_with_online_dealer", |b| {
        b.iter(|| black_box(run(true)))
    });
    g.finish();
}

fn bench_dcf(c: &mut Criterion) {
    use rand::Rng;
    let n = 10_000;
    let mut rng = fixed_seed_rng_for_tests(5);
    let mut draw = |m: usize| -> Vec<u64> { (0..m).map(|_| rng.next_u64()).collect() };
    let alpha: Vec<u64> = draw(n).iter().map(|a| a >> 1).collect();
    let beta = draw(n);
    let roots: Vec<Vec<u128>> = (0..2)
        .map(|_| {
            draw(n)
                .iter()
                .map(|&v| u128::from(v) << 64 | u128::from(v))
                .collect()
        })
        .collect();
    let x = draw(n);
    let prg = dcf::Prg::new();
    let mut g = c.benchmark_group("compare/dcf_10000");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("gen", |b| {
        b.iter(|| {
            black_box(dcf::gen(
                &prg,
                dcf::DCF_BITS,
                &alpha,
                &beta,
                [&roots[0], &roots[1]],
            ))
        })
    });
    let cws = dcf::gen(&prg, dcf::DCF_BITS, &alpha, &beta, [&roots[0], &roots[1]]).unwrap();
    g.bench_function("eval", |b| {
        b.iter(|| black_box(dcf::eval(&prg, 0, &roots[0], &cws, &x)))
    });
    g.finish();
}

criterion_group!(benches, bench_msb, bench_sigmoid, bench_dcf);
criterion_main!(benches);
