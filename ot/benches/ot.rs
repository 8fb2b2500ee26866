//! `cargo bench -p ot`: OT throughput on one core, both parties in one
//! process, alternating (receiver then sender for each batch).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ot::iknp;
use rand::SeedableRng;

fn rng() -> rand_chacha::ChaCha20Rng {
    rand_chacha::ChaCha20Rng::seed_from_u64(1)
}

fn bench_cot(c: &mut Criterion) {
    let mut g = c.benchmark_group("cot");
    let n = 1 << 20;
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(20);
    let mut rng = rng();
    let (mut s, mut r) = iknp::setup_pair_for_tests(&mut rng);
    let choices: Vec<bool> = (0..n).map(|j| (j * 7) % 3 == 0).collect();
    g.bench_function("iknp_both_parties_2^20", |b| {
        b.iter(|| {
            let (msg, rc) = r.extend(&choices).unwrap();
            let sc = s.extend(&msg).unwrap();
            (rc.len(), sc.len())
        })
    });
    g.finish();
}

fn bench_base(c: &mut Criterion) {
    let mut g = c.benchmark_group("base_ot");
    g.sample_size(10);
    let mut rng = rng();
    g.bench_function("chou_orlandi_128_both_parties", |b| {
        b.iter_batched(
            || (),
            |_| iknp::setup_pair_for_tests(&mut rng),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_cot, bench_base);
criterion_main!(benches);
