//! One valid, stride-1 convolution end to end, `reps` times, by Cheetah's
//! HomConv packing ([`rlwe::conv`]) and by Im2col and a matrix product
//! (what the compiler lowers `conv2d` to), for comparing the two:
//!
//! ```text
//! cargo run --release -p rlwe --example conv_once -- C H W M KH KW W_BITS REPS
//! ```
//!
//! Prints per method the wall and CPU time per convolution, MAC/us and the
//! upload per input element (of the `C x H x W` input).

use rlwe::{
    Client, ConvLayout, ConvQueryMsg, ConvResponseMsg, ConvShape, CostModel, Layout, Params,
    PeerKey, PublicKeyMsg, QueryMsg, ResponseMsg, Server, Shape,
};
use std::time::Instant;

fn cpu_seconds() -> f64 {
    // /proc/thread-self/stat fields 14 and 15: user and system time in ticks.
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let shape = ConvShape {
        channels: a[0],
        height: a[1],
        width: a[2],
        filters: a[3],
        kernel_h: a[4],
        kernel_w: a[5],
    };
    let (w_bits, reps) = (a[6] as u32, a[7]);
    let params = Params::n8192_q128();
    let mut client = Client::new(params.clone()).unwrap();
    let mut server = Server::new(params.clone()).unwrap();
    let pk = PublicKeyMsg::from_bytes(&client.public_key().to_bytes(&params), &params).unwrap();
    let key = PeerKey::new(params.clone(), &pk).unwrap();
    let mut s = 0x9876_5432u64;
    let mut next = |bits: u32| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        if bits == 64 {
            s
        } else {
            ((s as i64) >> (64 - bits)) as u64
        }
    };
    let (c, h, w) = (shape.channels, shape.height, shape.width);
    let (kh, kw, m) = (shape.kernel_h, shape.kernel_w, shape.filters);
    let x: Vec<u64> = (0..c * h * w).map(|_| next(64)).collect();
    let kernels: Vec<u64> = (0..m * c * kh * kw).map(|_| next(w_bits)).collect();
    let inputs = (c * h * w) as f64;
    let macs = shape.macs() as f64;
    let report = |name: &str, up: usize, wall: f64, cpu: f64| {
        println!(
            "{name}: upload {up} B ({:.1} B per input element); wall {:.2} ms ({:.1} MAC/us), CPU {:.2} ms ({:.1} MAC/us)",
            up as f64 / inputs,
            wall * 1e3,
            macs / wall / 1e6,
            cpu * 1e3,
            macs / cpu / 1e6
        );
    };

    let single = ConvLayout::new(&params, shape, w_bits).unwrap();
    let chosen =
        ConvLayout::choose(&params, shape, w_bits, &CostModel::default_for(&params)).unwrap();
    for (name, layout) in [
        ("HomConv, 1 kernel per product", single),
        ("HomConv, chosen", chosen),
    ] {
        println!(
            "{name}: {} group(s) of {} channels, {} kernel(s) per product, {} digit(s), {} results",
            layout.groups(),
            layout.group,
            layout.packed,
            layout.digits,
            layout.result_count()
        );
        let (cpu0, wall0) = (cpu_seconds(), Instant::now());
        for _ in 0..reps {
            let q = client.conv_query(&layout, &x).unwrap().to_bytes(&params);
            let q = ConvQueryMsg::from_bytes(&q, &params, &layout).unwrap();
            let (r, server_share) = server.conv_respond(&key, &layout, &kernels, &q).unwrap();
            let r = ConvResponseMsg::from_bytes(&r.to_bytes(&params), &params, &layout).unwrap();
            let client_share = client.conv_finish(&layout, &r).unwrap();
            std::hint::black_box((client_share, server_share));
        }
        let wall = wall0.elapsed().as_secs_f64() / reps as f64;
        let cpu = (cpu_seconds() - cpu0) / reps as f64;
        report(name, layout.query_bytes(&params), wall, cpu);
    }

    // Im2col: rows are output positions, columns (channel, l, l2).
    let (oh, ow) = (shape.out_h(), shape.out_w());
    let k = c * kh * kw;
    let mut cols = vec![0u64; oh * ow * k];
    for i in 0..oh {
        for j in 0..ow {
            for ch in 0..c {
                for l in 0..kh {
                    for l2 in 0..kw {
                        cols[(i * ow + j) * k + (ch * kh + l) * kw + l2] =
                            x[(ch * h + i + l) * w + j + l2];
                    }
                }
            }
        }
    }
    // W = kernels transposed: [k, m].
    let mut wt = vec![0u64; k * m];
    for f in 0..m {
        for r in 0..k {
            wt[r * m + f] = kernels[f * k + r];
        }
    }
    let mshape = Shape {
        batch: oh * ow,
        k,
        n: m,
    };
    let layout = Layout::choose(&params, mshape, w_bits, &CostModel::default_for(&params)).unwrap();
    println!(
        "Im2col + matmul [{}, {k}] @ [{k}, {m}]: tiles {} x {} x {}, {} digit(s), {} results",
        oh * ow,
        layout.d0,
        layout.d1,
        layout.d2,
        layout.digits,
        layout.result_count()
    );
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    for _ in 0..reps {
        let q = client.query(&layout, &cols).unwrap().to_bytes(&params);
        let q = QueryMsg::from_bytes(&q, &params, &layout).unwrap();
        let (r, server_share) = server.respond(&key, &layout, &wt, &q).unwrap();
        let r = ResponseMsg::from_bytes(&r.to_bytes(&params), &params, &layout).unwrap();
        let client_share = client.finish(&layout, &r).unwrap();
        std::hint::black_box((client_share, server_share));
    }
    let wall = wall0.elapsed().as_secs_f64() / reps as f64;
    let cpu = (cpu_seconds() - cpu0) / reps as f64;
    report("Im2col + matmul", layout.query_bytes(&params), wall, cpu);
}
