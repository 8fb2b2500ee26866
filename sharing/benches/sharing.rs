//! Secret-sharing benchmarks (issue 4): both parties in one process, each on
//! its own thread, messages passed over channels; correlated randomness from
//! the seed-expanding dealer. Online phases run from precomputed
//! correlations so preprocessing is measured separately.
//!
//! Run: `cargo bench -p sharing --bench sharing`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sharing::driver::{dealer_engines_for_tests, run_two_party, ExchangeStats};
use sharing::share::fixed_seed_rng_for_tests;
use sharing::*;

type Pre = Engine<PrecomputedCorrelations>;

fn fp() -> FixedPoint {
    FixedPoint::default()
}

fn shares_of(values: &[f64], shape: &[usize], seed: u64) -> (Share, Share) {
    let t = fp().encode_tensor(values, shape).unwrap();
    share_with_rng(&t, &mut fixed_seed_rng_for_tests(seed)).unwrap()
}

fn values(n: usize, lo: f64, hi: f64, seed: u64) -> Vec<f64> {
    use rand::Rng;
    let mut rng = fixed_seed_rng_for_tests(seed);
    (0..n)
        .map(|_| lo + (hi - lo) * (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
        .collect()
}

/// A two-party protocol: party index, engine, exchange -> output share.
type Proto<'a, C> =
    &'a (dyn Fn(&mut Engine<C>, &mut driver::ChannelExchange, usize) -> Result<Share> + Sync);

use sharing::driver;

/// Runs `proto` once with an online dealer and records party 0's requests.
fn record(
    mode: TruncMode,
    proto: Proto<'_, RecordingCorrelations<DealerSource>>,
    proto1: Proto<'_, DealerSource>,
) -> Vec<CorrelationRequest> {
    let (e0, mut e1, _) = dealer_engines_for_tests(1, fp(), mode);
    let mut r0 = Engine::new(
        fp(),
        mode,
        RecordingCorrelations::new(e0.into_correlations()),
    );
    run_two_party(|ex| proto(&mut r0, ex, 0), |ex| proto1(&mut e1, ex, 1)).unwrap();
    r0.into_correlations().log
}

/// Preprocessing: the dealer expands seeds and computes party 1's
/// corrections; each party expands its seed into its correlation shares.
fn preprocess(reqs: &[CorrelationRequest], mode: TruncMode) -> (Pre, Pre, u64) {
    let mut dealer = Dealer::new_with_fixed_seed_for_tests(2);
    let s0 = dealer.seed_msg(Party::P0);
    let s1 = dealer.seed_msg(Party::P1);
    let corr = dealer.corrections(reqs).unwrap();
    let ((p0, p1), bytes) = (
        rayon::join(
            || {
                PrecomputedCorrelations::precompute(&mut DealerSource::party0(s0).unwrap(), reqs)
                    .unwrap()
            },
            || {
                PrecomputedCorrelations::precompute(
                    &mut DealerSource::party1(s1, corr).unwrap(),
                    reqs,
                )
                .unwrap()
            },
        ),
        dealer.bytes_sent(),
    );
    (
        Engine::new(fp(), mode, p0),
        Engine::new(fp(), mode, p1),
        bytes,
    )
}

fn online(
    e: (Pre, Pre, u64),
    proto: Proto<'_, PrecomputedCorrelations>,
) -> (Share, Share, ExchangeStats) {
    let (mut e0, mut e1, _) = e;
    let ((a, st), (b, _)) =
        run_two_party(|ex| proto(&mut e0, ex, 0), |ex| proto(&mut e1, ex, 1)).unwrap();
    (a, b, st)
}

fn group_cfg<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g
}

fn report(name: &str, reqs: &[CorrelationRequest], proto: Proto<'_, PrecomputedCorrelations>) {
    let e = preprocess(reqs, TruncMode::Dealer);
    let dealer_bytes = e.2;
    let (_, _, st) = online(e, proto);
    eprintln!(
        "[{name}] dealer bytes sent: {dealer_bytes}; online per party: {} rounds, {} bytes sent",
        st.rounds, st.bytes_sent
    );
}

fn bench_elementwise(c: &mut Criterion) {
    let n = 1_000_000;
    let x = shares_of(&values(n, -10.0, 10.0, 1), &[n], 1);
    let y = shares_of(&values(n, -10.0, 10.0, 2), &[n], 2);
    let xs = [x.0.clone(), x.1.clone()];
    let ys = [y.0.clone(), y.1.clone()];
    let p_rec = |e: &mut Engine<RecordingCorrelations<DealerSource>>,
                 ex: &mut driver::ChannelExchange,
                 i: usize| e.mul(ex, &xs[i], &ys[i]);
    let p1 = |e: &mut Engine<DealerSource>, ex: &mut driver::ChannelExchange, i: usize| {
        e.mul(ex, &xs[i], &ys[i])
    };
    let reqs = record(TruncMode::Dealer, &p_rec, &p1);
    let reqs_local = record(TruncMode::Local, &p_rec, &p1);
    let p = |e: &mut Pre, ex: &mut driver::ChannelExchange, i: usize| e.mul(ex, &xs[i], &ys[i]);
    report("beaver_mul_1M", &reqs, &p);

    let mut g = group_cfg(c, "sharing/beaver_mul_1M");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("preprocess_dealer", |b| {
        b.iter(|| black_box(preprocess(&reqs, TruncMode::Dealer)))
    });
    for (mode, reqs) in [(TruncMode::Dealer, &reqs), (TruncMode::Local, &reqs_local)] {
        g.bench_function(format!("online_trunc_{mode:?}"), |b| {
            b.iter_batched(
                || preprocess(reqs, mode),
                |e| black_box(online(e, &p)),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn bench_matmul_and_lr(c: &mut Criterion) {
    let (rows, feats) = (10_000, 100);
    let x = shares_of(&values(rows * feats, -1.0, 1.0, 3), &[rows, feats], 3);
    let w = shares_of(&values(feats, -0.3, 0.3, 4), &[feats], 4);
    let xs = [x.0.clone(), x.1.clone()];
    let ws = [w.0.clone(), w.1.clone()];

    // x @ w: 10,000 dot products of length 100 with one matrix triple.
    let mm_rec = |e: &mut Engine<RecordingCorrelations<DealerSource>>,
                  ex: &mut driver::ChannelExchange,
                  i: usize| e.matmul(ex, &xs[i], &ws[i]);
    let mm1 = |e: &mut Engine<DealerSource>, ex: &mut driver::ChannelExchange, i: usize| {
        e.matmul(ex, &xs[i], &ws[i])
    };
    let mm_reqs = record(TruncMode::Dealer, &mm_rec, &mm1);
    let mm = |e: &mut Pre, ex: &mut driver::ChannelExchange, i: usize| e.matmul(ex, &xs[i], &ws[i]);
    report("matmul_10000x100", &mm_reqs, &mm);

    let mut g = group_cfg(c, "sharing/matmul_triple_10000x100_dot");
    g.throughput(Throughput::Elements(rows as u64));
    g.bench_function("preprocess_dealer", |b| {
        b.iter(|| black_box(preprocess(&mm_reqs, TruncMode::Dealer)))
    });
    g.bench_function("online", |b| {
        b.iter_batched(
            || preprocess(&mm_reqs, TruncMode::Dealer),
            |e| black_box(online(e, &mm)),
            BatchSize::PerIteration,
        )
    });
    g.finish();

    // Logistic regression inference: sigmoid(x @ w), degree-7 polynomial.
    let lr_rec = |e: &mut Engine<RecordingCorrelations<DealerSource>>,
                  ex: &mut driver::ChannelExchange,
                  i: usize| {
        let z = e.matmul(ex, &xs[i], &ws[i])?;
        e.sigmoid(ex, &z, 7)
    };
    let lr1 = |e: &mut Engine<DealerSource>, ex: &mut driver::ChannelExchange, i: usize| {
        let z = e.matmul(ex, &xs[i], &ws[i])?;
        e.sigmoid(ex, &z, 7)
    };
    let lr_reqs = record(TruncMode::Dealer, &lr_rec, &lr1);
    let lr_reqs_local = record(TruncMode::Local, &lr_rec, &lr1);
    let lr = |e: &mut Pre, ex: &mut driver::ChannelExchange, i: usize| {
        let z = e.matmul(ex, &xs[i], &ws[i])?;
        e.sigmoid(ex, &z, 7)
    };
    report("logreg_10000x100_deg7", &lr_reqs, &lr);
    // Accuracy check against plaintext.
    {
        let (a, b, _) = online(preprocess(&lr_reqs, TruncMode::Dealer), &lr);
        let got = fp().decode_tensor(&reconstruct(&a, &b).unwrap());
        let xv = values(rows * feats, -1.0, 1.0, 3);
        let wv = values(feats, -0.3, 0.3, 4);
        let worst = xv
            .chunks(feats)
            .zip(&got)
            .map(|(r, g)| {
                let z: f64 = r.iter().zip(&wv).map(|(p, q)| p * q).sum();
                (sharing::poly::sigmoid(z) - g).abs()
            })
            .fold(0.0, f64::max);
        eprintln!("[logreg_10000x100_deg7] max |error| vs plaintext sigmoid: {worst:.5}");
    }

    let mut g = group_cfg(c, "sharing/logreg_10000x100_deg7");
    g.throughput(Throughput::Elements(rows as u64));
    g.bench_function("preprocess_dealer", |b| {
        b.iter(|| black_box(preprocess(&lr_reqs, TruncMode::Dealer)))
    });
    g.bench_function("preprocess_dealer_local_trunc", |b| {
        b.iter(|| black_box(preprocess(&lr_reqs_local, TruncMode::Local)))
    });
    for (mode, reqs) in [
        (TruncMode::Dealer, &lr_reqs),
        (TruncMode::Local, &lr_reqs_local),
    ] {
        g.bench_function(format!("online_trunc_{mode:?}"), |b| {
            b.iter_batched(
                || preprocess(reqs, mode),
                |e| black_box(online(e, &lr)),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn bench_sigmoid(c: &mut Criterion) {
    let n = 10_000;
    let x = shares_of(&values(n, -8.0, 8.0, 5), &[n], 5);
    let xs = [x.0.clone(), x.1.clone()];
    let mut g = group_cfg(c, "sharing/sigmoid_10000");
    g.throughput(Throughput::Elements(n as u64));
    for degree in [7usize, 9] {
        let rec = |e: &mut Engine<RecordingCorrelations<DealerSource>>,
                   ex: &mut driver::ChannelExchange,
                   i: usize| e.sigmoid(ex, &xs[i], degree);
        let p1 = |e: &mut Engine<DealerSource>, ex: &mut driver::ChannelExchange, i: usize| {
            e.sigmoid(ex, &xs[i], degree)
        };
        let reqs = record(TruncMode::Dealer, &rec, &p1);
        let p =
            |e: &mut Pre, ex: &mut driver::ChannelExchange, i: usize| e.sigmoid(ex, &xs[i], degree);
        report(&format!("sigmoid_10000_deg{degree}"), &reqs, &p);
        g.bench_function(format!("deg{degree}_preprocess_dealer"), |b| {
            b.iter(|| black_box(preprocess(&reqs, TruncMode::Dealer)))
        });
        g.bench_function(format!("deg{degree}_online_trunc_Dealer"), |b| {
            b.iter_batched(
                || preprocess(&reqs, TruncMode::Dealer),
                |e| black_box(online(e, &p)),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_elementwise,
    bench_matmul_and_lr,
    bench_sigmoid
);
criterion_main!(benches);
