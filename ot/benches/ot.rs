//! `cargo bench -p ot`: throughput on one core, both parties in one process,
//! alternating (the receiver's step, then the sender's, for each batch).
//! Messages are passed as values, not encoded: the wire encoding is a copy.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ot::{arith, boolean, iknp};
use rand::SeedableRng;

fn rng() -> rand_chacha::ChaCha20Rng {
    rand_chacha::ChaCha20Rng::seed_from_u64(1)
}

/// OTs per iteration for the extension benches.
const N: usize = 1 << 20;

fn bench_cot(c: &mut Criterion) {
    let mut g = c.benchmark_group("cot");
    g.sample_size(20);
    g.throughput(Throughput::Elements(N as u64));
    let mut rng = rng();
    let (mut s, mut r) = iknp::setup_pair_for_tests(&mut rng);
    let choices: Vec<bool> = (0..N).map(|j| (j * 7) % 3 == 0).collect();
    g.bench_function("iknp_2^20_both_parties", |b| {
        b.iter(|| {
            let (msg, rc) = r.extend(&choices).unwrap();
            let sc = s.extend(&msg).unwrap();
            (rc.len(), sc.len())
        })
    });
    let small: Vec<bool> = choices[..1 << 16].to_vec();
    g.bench_function("iknp_16_batches_of_2^16_both_parties", |b| {
        b.iter(|| {
            let mut total = 0;
            for _ in 0..16 {
                let (msg, rc) = r.extend(&small).unwrap();
                let sc = s.extend(&msg).unwrap();
                total += rc.len() + sc.len();
            }
            total
        })
    });
    g.bench_function("rot_2^20_both_parties", |b| {
        b.iter(|| {
            let (msg, rc) = r.extend(&choices).unwrap();
            let sc = s.extend(&msg).unwrap();
            (rc.random_ot().len(), sc.random_ot().len())
        })
    });
    g.finish();
}

fn bench_base(c: &mut Criterion) {
    let mut g = c.benchmark_group("base_ot");
    g.sample_size(10);
    let mut rng = rng();
    g.bench_function("chou_orlandi_128_both_parties", |b| {
        b.iter(|| iknp::setup_pair_for_tests(&mut rng))
    });
    g.finish();
}

fn bench_triples(c: &mut Criterion) {
    let mut g = c.benchmark_group("triples");
    g.sample_size(10);
    let mut rng = rng();
    let (mut s, mut r) = iknp::setup_pair_for_tests(&mut rng);
    let n = 1 << 14;
    g.throughput(Throughput::Elements(n as u64));
    let a: Vec<u64> = (0..n as u64)
        .map(|k| k.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect();
    let b_choices =
        arith::receiver_choices(&a.iter().map(|v| v.rotate_left(17)).collect::<Vec<_>>());
    g.bench_function("gilboa_products_2^14_with_extension", |bch| {
        bch.iter(|| {
            let (msg, rc) = r.extend(&b_choices).unwrap();
            let sc = s.extend(&msg).unwrap();
            let (corr, s0) = arith::send(&sc, &a).unwrap();
            let s1 = arith::receive(&rc, &corr).unwrap();
            s0[0].wrapping_add(s1[0])
        })
    });
    g.bench_function("beaver_triples_2^14_with_extension", |bch| {
        bch.iter(|| {
            let (msg, rc) = r.extend_random(128 * n, &mut rng).unwrap();
            let sc = s.extend(&msg).unwrap();
            let (corr, t0) = arith::beaver_sender(&sc, &mut rng).unwrap();
            let t1 = arith::beaver_receiver(&rc, &corr).unwrap();
            t0.c[0].wrapping_add(t1.c[0])
        })
    });
    let m = 1 << 20;
    g.throughput(Throughput::Elements(m as u64));
    g.bench_function("and_triples_2^20_with_extension", |bch| {
        bch.iter(|| {
            let (msg, rc) = r.extend_random(2 * m, &mut rng).unwrap();
            let sc = s.extend(&msg).unwrap();
            let t0 = boolean::and_triples_sender(&sc).unwrap();
            let t1 = boolean::and_triples_receiver(&rc).unwrap();
            t0.c[0] ^ t1.c[0]
        })
    });
    g.finish();
}

criterion_group!(benches, bench_cot, bench_base, bench_triples);

fn bench_transpose(c: &mut Criterion) {
    let mut g = c.benchmark_group("transpose");
    g.throughput(Throughput::Elements(128));
    let mut m = [ot::Block::ZERO; 128];
    for (i, b) in m.iter_mut().enumerate() {
        *b = ot::Block((i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
    }
    g.bench_function("128x128", |b| {
        b.iter(|| {
            ot::transpose::transpose128(std::hint::black_box(&mut m));
        })
    });
    g.finish();
}

fn bench_hash(c: &mut Criterion) {
    let mut g = c.benchmark_group("aes");
    let n = 1024;
    g.throughput(Throughput::Elements(n as u64));
    let h = ot::crypto::FixedKeyAes::new();
    let mut xs: Vec<ot::Block> = (0..n as u128).map(ot::Block).collect();
    g.bench_function("fixed_key_aes_1024_blocks", |b| {
        b.iter(|| h.permute(std::hint::black_box(&mut xs)))
    });
    g.bench_function("tccr_1024_blocks", |b| {
        b.iter(|| h.tccr_seq(7, std::hint::black_box(&mut xs)))
    });
    g.finish();
}

criterion_group!(micro, bench_transpose, bench_hash);
criterion_main!(benches, micro);
