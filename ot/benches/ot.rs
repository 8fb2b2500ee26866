//! `cargo bench -p ot`: throughput on one core, both parties in one process,
//! alternating (the receiver's step, then the sender's, for each batch).
//! Messages are passed as values, not encoded: the wire encoding is a copy.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ot::{arith, boolean, softspoken};
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
    // IKNP is SoftSpoken with one bit per piece.
    let (mut s, mut r) = softspoken::setup_pair_with_k_for_tests(1, &mut rng);
    let choices: Vec<bool> = (0..N).map(|j| (j * 7) % 3 == 0).collect();
    // The engine as the runtime would drive it: batches of 2^16 OTs into
    // buffers reused from batch to batch.
    let batch = &choices[..1 << 16];
    let mut msg = softspoken::ExtendMsg::empty();
    let mut rc = softspoken::ReceiverCots::empty();
    let mut sc = softspoken::SenderCots::empty();
    g.bench_function("iknp_2^20_in_batches_of_2^16_reused_buffers", |b| {
        b.iter(|| {
            for _ in 0..N >> 16 {
                r.extend_into(batch, &mut msg, &mut rc).unwrap();
                s.extend_into(&msg, &mut sc).unwrap();
            }
            (rc.len(), sc.len())
        })
    });
    // SoftSpoken with k = 2, 4, 8 (4 is the runtime's), the same way.
    for k in [2usize, 4, 8] {
        let (mut s, mut r) = softspoken::setup_pair_with_k_for_tests(k, &mut rng);
        let mut msg = softspoken::ExtendMsg::empty();
        let mut rc = softspoken::ReceiverCots::empty();
        let mut sc = softspoken::SenderCots::empty();
        let name = format!("softspoken_k{k}_2^20_in_batches_of_2^16_reused_buffers");
        g.bench_function(name.as_str(), |b| {
            b.iter(|| {
                for _ in 0..N >> 16 {
                    r.extend_into(batch, &mut msg, &mut rc).unwrap();
                    s.extend_into(&msg, &mut sc).unwrap();
                }
                (rc.len(), sc.len())
            })
        });
    }
    g.bench_function("iknp_2^20_in_batches_of_2^16_fresh_buffers", |b| {
        b.iter(|| {
            let mut total = 0;
            for _ in 0..N >> 16 {
                let (msg, rc) = r.extend(batch).unwrap();
                let sc = s.extend(&msg).unwrap();
                total += rc.len() + sc.len();
            }
            total
        })
    });
    g.bench_function("iknp_2^20_in_one_batch", |b| {
        b.iter(|| {
            let (msg, rc) = r.extend(&choices).unwrap();
            let sc = s.extend(&msg).unwrap();
            (rc.len(), sc.len())
        })
    });
    g.bench_function("rot_2^20_in_batches_of_2^16", |b| {
        b.iter(|| {
            let mut total = 0;
            for _ in 0..N >> 16 {
                r.extend_into(batch, &mut msg, &mut rc).unwrap();
                s.extend_into(&msg, &mut sc).unwrap();
                total += rc.random_ot().len() + sc.random_ot().len();
            }
            total
        })
    });
    g.finish();
}

fn bench_base(c: &mut Criterion) {
    let mut g = c.benchmark_group("base_ot");
    g.sample_size(10);
    let mut rng = rng();
    g.bench_function("chou_orlandi_128_both_parties", |b| {
        b.iter(|| softspoken::setup_pair_for_tests(&mut rng))
    });
    g.finish();
}

fn bench_triples(c: &mut Criterion) {
    let mut g = c.benchmark_group("triples");
    g.sample_size(10);
    let mut rng = rng();
    let (mut s, mut r) = softspoken::setup_pair_for_tests(&mut rng);
    // 2^14 products or triples per iteration, 2^9 per batch (2^15 or 2^16
    // COTs), buffers reused.
    let n = 1 << 14;
    let per = 1 << 9;
    g.throughput(Throughput::Elements(n as u64));
    let a: Vec<u64> = (0..per as u64)
        .map(|k| k.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect();
    let b_choices =
        arith::receiver_choices(&a.iter().map(|v| v.rotate_left(17)).collect::<Vec<_>>());
    let mut msg = softspoken::ExtendMsg::empty();
    let mut rc = softspoken::ReceiverCots::empty();
    let mut sc = softspoken::SenderCots::empty();
    g.bench_function("gilboa_products_with_extension", |bch| {
        bch.iter(|| {
            let mut acc = 0u64;
            for _ in 0..n / per {
                r.extend_into(&b_choices, &mut msg, &mut rc).unwrap();
                s.extend_into(&msg, &mut sc).unwrap();
                let (corr, s0) = arith::send(&sc, &a).unwrap();
                let s1 = arith::receive(&rc, &corr).unwrap();
                acc ^= s0[0].wrapping_add(s1[0]);
            }
            acc
        })
    });
    g.bench_function("beaver_triples_with_extension", |bch| {
        bch.iter(|| {
            let mut acc = 0u64;
            for _ in 0..n / per {
                let (msg, rc) = r.extend_random(128 * per, &mut rng).unwrap();
                let sc = s.extend(&msg).unwrap();
                let (corr, t0) = arith::beaver_sender(&sc, &mut rng).unwrap();
                let t1 = arith::beaver_receiver(&rc, &corr).unwrap();
                acc ^= t0.c[0].wrapping_add(t1.c[0]);
            }
            acc
        })
    });
    let m = 1 << 20;
    g.throughput(Throughput::Elements(m as u64));
    g.bench_function("and_triples_with_extension", |bch| {
        bch.iter(|| {
            let mut acc = 0u64;
            for _ in 0..m >> 15 {
                let (msg, rc) = r.extend_random(1 << 16, &mut rng).unwrap();
                let sc = s.extend(&msg).unwrap();
                let t0 = boolean::and_triples_sender(&sc).unwrap();
                let t1 = boolean::and_triples_receiver(&rc).unwrap();
                acc ^= t0.c[0] ^ t1.c[0];
            }
            acc
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
    // Each backend this CPU runs: one key over 1,024 blocks, and one
    // SoftSpoken piece's worth (16 keys, 8 counter blocks each).
    for backend in ot::wide_aes::Backend::all() {
        if !backend.is_available() {
            continue;
        }
        let one = ot::wide_aes::WideAes::with_backend(ot::Block(5), backend);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("one_key_1024_blocks_{backend:?}"), |b| {
            b.iter(|| one.encrypt(std::hint::black_box(&mut xs)))
        });
        let keys: Vec<ot::Block> = (0..16u128).map(|k| ot::Block(k * 0x1234_5678)).collect();
        let multi = ot::wide_aes::MultiKeyAes::with_backend(&keys, backend);
        let mut out = vec![ot::Block::ZERO; 16 * 8];
        g.throughput(Throughput::Elements(128));
        g.bench_function(format!("16_keys_x_8_blocks_{backend:?}"), |b| {
            b.iter(|| multi.ctr_rows(std::hint::black_box(3), 8, &mut out, 16))
        });
    }
    g.finish();
}

criterion_group!(micro, bench_transpose, bench_hash);
criterion_main!(benches, micro);
