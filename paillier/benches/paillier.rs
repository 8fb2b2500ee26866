//! Paillier micro-benchmarks at 2048 and 3072 bits, single thread unless the
//! name says `par`. Run: `cargo bench -p paillier`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use num_bigint::{BigInt, BigUint};
use paillier::{Ciphertext, Keypair, RandomizerPool};
use rand::RngExt;

fn bench(c: &mut Criterion) {
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let bits_list: Vec<u64> = std::env::var("VEIL_PAILLIER_BITS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![2048, 3072]);
    for bits in bits_list {
        let mut g = c.benchmark_group(format!("paillier{bits}"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        g.bench_function("keygen", |b| {
            b.iter(|| single.install(|| Keypair::generate(bits).unwrap()))
        });
        let kp = Keypair::generate(bits).unwrap();
        let pk = kp.public.clone();
        let sk = kp.private.clone();
        let _ = pk.djn_table(); // build the fixed-base table outside timing
        let mut rng = rand::rng();
        let m = BigUint::from(rng.random::<u64>());
        g.sample_size(20);
        g.bench_function("encrypt_public_djn", |b| {
            b.iter(|| single.install(|| pk.encrypt(black_box(&m)).unwrap()))
        });
        g.bench_function("encrypt_public_textbook", |b| {
            b.iter(|| {
                single.install(|| {
                    pk.encrypt_textbook(black_box(&m), &mut rand::rng())
                        .unwrap()
                })
            })
        });
        g.bench_function("encrypt_owner_crt", |b| {
            b.iter(|| single.install(|| sk.encrypt_crt(black_box(&m)).unwrap()))
        });
        g.bench_function("encrypt_owner_djn_crt", |b| {
            b.iter(|| single.install(|| sk.encrypt_djn_crt(black_box(&m)).unwrap()))
        });
        g.bench_function("encrypt_owner_crt_par", |b| {
            b.iter(|| sk.encrypt_crt(black_box(&m)).unwrap())
        });
        g.bench_function("encrypt_from_pool", |b| {
            b.iter_batched(
                || {
                    let mut pool = RandomizerPool::new(&pk);
                    pool.fill(1);
                    pool
                },
                |mut pool| pool.encrypt(black_box(&m)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        let ct = pk.encrypt(&m).unwrap();
        let ct2 = pk.encrypt(&BigUint::from(7u32)).unwrap();
        g.bench_function("decrypt", |b| {
            b.iter(|| sk.decrypt_sequential(black_box(&ct)))
        });
        g.bench_function("decrypt_par", |b| b.iter(|| sk.decrypt(black_box(&ct))));
        g.bench_function("add", |b| {
            b.iter(|| pk.add(black_box(&ct), black_box(&ct2)))
        });
        let k = BigInt::from(rng.random::<u64>() | (1 << 63));
        g.bench_function("mul_u64", |b| {
            b.iter(|| pk.mul_scalar(black_box(&ct), black_box(&k)))
        });
        let cts: Vec<Ciphertext> = (0..100u32)
            .map(|i| pk.encrypt(&BigUint::from(i)).unwrap())
            .collect();
        let ws: Vec<BigInt> = (0..100)
            .map(|_| BigInt::from(rng.random::<u64>() | (1 << 63)))
            .collect();
        g.bench_function("dot100_u64", |b| {
            b.iter(|| single.install(|| pk.dot(black_box(&cts), black_box(&ws)).unwrap()))
        });
        g.bench_function("dot100_u64_par", |b| {
            b.iter(|| pk.dot(black_box(&cts), black_box(&ws)).unwrap())
        });
        g.bench_function("dot100_u64_naive_loop", |b| {
            b.iter(|| single.install(|| pk.dot_naive(black_box(&cts), black_box(&ws)).unwrap()))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
