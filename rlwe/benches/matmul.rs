//! `cargo bench -p rlwe`: the two-party product `[batch, k] @ [k, n]` end to
//! end on one core (client encrypts, server multiplies, re-randomises, masks
//! and floods, client decrypts; messages go through bytes), reported as
//! multiply-accumulates per microsecond, with the traffic per input element.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rlwe::{
    Client, CostModel, Layout, Params, PeerKey, PublicKeyMsg, QueryMsg, ResponseMsg, Server, Shape,
};
use std::hint::black_box;
use std::sync::Arc;

fn values(seed: u64, len: usize, bits: u32) -> Vec<u64> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            if bits == 64 {
                s
            } else {
                ((s as i64) >> (64 - bits)) as u64
            }
        })
        .collect()
}

fn product(c: &mut Criterion, params: &Arc<Params>, label: &str, w_bits: u32, upload_bound: bool) {
    let cost = if upload_bound {
        CostModel::upload_bound(params)
    } else {
        CostModel::default_for(params)
    };
    let label = if upload_bound {
        format!("{label}_16B")
    } else {
        label.to_string()
    };
    let mut group = c.benchmark_group(format!("matmul_{label}_w{w_bits}"));
    group.sample_size(10);
    let mut client = Client::new(params.clone()).unwrap();
    let mut server = Server::new(params.clone()).unwrap();
    let pk = PublicKeyMsg::from_bytes(&client.public_key().to_bytes(params), params).unwrap();
    let key = PeerKey::new(params.clone(), &pk).unwrap();
    for (k, n) in [(64usize, 16usize), (784, 128), (128, 128)] {
        for batch in [1usize, 100] {
            let shape = Shape { batch, k, n };
            let layout = Layout::choose(params, shape, w_bits, &cost).unwrap();
            let x = values(1, batch * k, 64);
            let w = values(2, k * n, w_bits);
            let up = layout.query_bytes(params);
            let down = layout.response_bytes(params);
            eprintln!(
                "{label} w_bits={w_bits} [{batch}, {k}] @ [{k}, {n}]: tiles {} x {} x {}, {} digit(s) of {} bits, {} queries, {} results; upload {} B = {:.2} B per input element; returned {} B = {:.1} B per output",
                layout.d0, layout.d1, layout.d2, layout.digits, layout.digit_bits,
                layout.query_count(), layout.result_count(),
                up, up as f64 / (batch * k) as f64, down, down as f64 / (batch * n) as f64
            );
            group.throughput(Throughput::Elements(shape.macs()));
            group.bench_with_input(
                BenchmarkId::from_parameter(format!("{batch}x{k}x{n}")),
                &layout,
                |bench, layout| {
                    bench.iter(|| {
                        let q = client.query(layout, &x).unwrap().to_bytes(params);
                        let q = QueryMsg::from_bytes(&q, params, layout).unwrap();
                        let (resp, server_share) = server.respond(&key, layout, &w, &q).unwrap();
                        let resp = ResponseMsg::from_bytes(&resp.to_bytes(params), params, layout)
                            .unwrap();
                        let client_share = client.finish(layout, &resp).unwrap();
                        black_box((client_share, server_share))
                    })
                },
            );
        }
    }
    group.finish();
}

fn ntt(c: &mut Criterion) {
    let params = Params::n8192_q128();
    let table = params.table(0);
    let p = params.moduli()[0].value();
    let mut a = values(3, 8192, 64)
        .iter()
        .map(|v| v % p)
        .collect::<Vec<_>>();
    let mut group = c.benchmark_group("ntt_n8192_one_prime");
    group.bench_function("forward", |b| b.iter(|| table.forward(black_box(&mut a))));
    group.bench_function("inverse", |b| b.iter(|| table.inverse(black_box(&mut a))));
    group.finish();
    // One full query ciphertext (N = 8192 inputs): seeded symmetric
    // encryption, the client's whole cost per 8192 inputs.
    let mut client = Client::new(params.clone()).unwrap();
    let shape = Shape {
        batch: 1,
        k: 8192,
        n: 1,
    };
    let layout = Layout::with_tiles(&params, shape, 16, 1, 8192, 1).unwrap();
    let x = values(4, 8192, 64);
    c.bench_function("query_one_ciphertext_n8192", |b| {
        b.iter(|| black_box(client.query(&layout, &x).unwrap()))
    });
}

fn benches(c: &mut Criterion) {
    ntt(c);
    let q128 = Params::n8192_q128();
    product(c, &q128, "q128", 16, false);
    product(c, &q128, "q128", 16, true);
    product(c, &q128, "q128", 64, false);
    let q180 = Params::n8192_q180();
    product(c, &q180, "q180", 64, false);
}

criterion_group!(matmul, benches);
criterion_main!(matmul);
