//! Runs one `[batch, k] @ [k, n]` product end to end, `reps` times, for
//! profiling (`perf stat`, `perf record`) and for comparing tilings:
//!
//! ```text
//! cargo run --release -p rlwe --example matmul_once -- BATCH K N W_BITS REPS [D0 D1 D2]
//! ```
//!
//! Prints the layout, the traffic and the wall and CPU time per product.
//! `RLWE_UPLOAD_BOUND=1` chooses the layout under the 16-byte upload bound,
//! `RLWE_Q180=1` uses the 180-bit modulus for 64-bit weights.
//! `RLWE_PREPARED=1` runs the preprocessed protocol ([`rlwe::prepared`]):
//! it chooses by [`Layout::choose_prepared`] and times the input-independent
//! part (offline) and the rest (online) apart.

use rlwe::{
    Client, CostModel, Layout, OfflineQueryMsg, OfflineResponseMsg, OnlineQueryMsg,
    OnlineResponseMsg, Params, PeerKey, PreparedWeights, PublicKeyMsg, QueryMsg, ResponseMsg,
    Server, Shape,
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
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let (batch, k, n, w_bits, reps) = (args[0], args[1], args[2], args[3] as u32, args[4]);
    let params = if w_bits == 64 && std::env::var("RLWE_Q180").is_ok() {
        Params::n8192_q180()
    } else {
        Params::n8192_q128()
    };
    let shape = Shape { batch, k, n };
    let prepared = std::env::var("RLWE_PREPARED").is_ok();
    let layout = if args.len() >= 8 {
        Layout::with_tiles(&params, shape, w_bits, args[5], args[6], args[7]).unwrap()
    } else if prepared {
        Layout::choose_prepared(&params, shape, w_bits, &CostModel::default_for(&params)).unwrap()
    } else {
        let cost = if std::env::var("RLWE_UPLOAD_BOUND").is_ok() {
            CostModel::upload_bound(&params)
        } else {
            CostModel::default_for(&params)
        };
        Layout::choose(&params, shape, w_bits, &cost).unwrap()
    };
    let mut client = Client::new(params.clone()).unwrap();
    let mut server = Server::new(params.clone()).unwrap();
    let pk = PublicKeyMsg::from_bytes(&client.public_key().to_bytes(&params), &params).unwrap();
    let key = PeerKey::new(params.clone(), &pk).unwrap();
    let mut s = 0x1234_5678u64;
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
    let x: Vec<u64> = (0..batch * k).map(|_| next(64)).collect();
    let w: Vec<u64> = (0..k * n).map(|_| next(w_bits)).collect();
    if prepared {
        return run_prepared(&params, &layout, &x, &w, reps);
    }
    let up = layout.query_bytes(&params);
    let down = layout.response_bytes(&params);
    println!(
        "[{batch}, {k}] @ [{k}, {n}], w_bits {w_bits}, log2 q {:.1}: tiles {} x {} x {}, {} digit(s) of {} bits, {} queries, {} results, estimate {:.0} us",
        params.log2_q(), layout.d0, layout.d1, layout.d2, layout.digits, layout.digit_bits,
        layout.query_count(), layout.result_count(), layout.estimated_cost(&params, &CostModel::default_for(&params))
    );
    println!(
        "upload {up} B ({:.2} B per input element), returned {down} B ({:.1} B per output)",
        up as f64 / (batch * k) as f64,
        down as f64 / (batch * n) as f64
    );
    let (wall0, cpu0) = (Instant::now(), cpu_seconds());
    for _ in 0..reps {
        let q = client.query(&layout, &x).unwrap().to_bytes(&params);
        let q = QueryMsg::from_bytes(&q, &params, &layout).unwrap();
        let (resp, server_share) = server.respond(&key, &layout, &w, &q).unwrap();
        let resp = ResponseMsg::from_bytes(&resp.to_bytes(&params), &params, &layout).unwrap();
        let client_share = client.finish(&layout, &resp).unwrap();
        std::hint::black_box((client_share, server_share));
    }
    let wall = wall0.elapsed().as_secs_f64() / reps as f64;
    let cpu = (cpu_seconds() - cpu0) / reps as f64;
    let macs = shape.macs() as f64;
    println!(
        "per product: wall {:.2} ms ({:.1} MAC/us), CPU {:.2} ms ({:.1} MAC/us)",
        wall * 1e3,
        macs / wall / 1e6,
        cpu * 1e3,
        macs / cpu / 1e6
    );
}

fn run_prepared(
    params: &std::sync::Arc<Params>,
    layout: &Layout,
    x: &[u64],
    w: &[u64],
    reps: usize,
) {
    let shape = layout.shape;
    let mut client = Client::new(params.clone()).unwrap();
    let mut server = Server::new(params.clone()).unwrap();
    let pk = PublicKeyMsg::from_bytes(&client.public_key().to_bytes(params), params).unwrap();
    let key = PeerKey::new(params.clone(), &pk).unwrap();
    let weights = PreparedWeights::new(params, layout, w).unwrap();
    println!(
        "prepared [{}, {}] @ [{}, {}], w_bits {}: tiles {} x {} x {}, {} digit(s) of {} bits, {} results",
        shape.batch, shape.k, shape.k, shape.n, layout.w_bits, layout.d0, layout.d1, layout.d2,
        layout.digits, layout.digit_bits, layout.result_count()
    );
    println!(
        "offline: up {} B, down {} B; online: up {} B ({:.2} B per input element), down {} B ({:.1} B per output)",
        layout.offline_query_bytes(params),
        layout.offline_response_bytes(params),
        layout.online_query_bytes(params),
        layout.online_query_bytes(params) as f64 / (shape.batch * shape.k) as f64,
        layout.online_response_bytes(params),
        layout.online_response_bytes(params) as f64 / (shape.batch * shape.n) as f64,
    );
    let (mut off_wall, mut off_cpu, mut on_wall, mut on_cpu) = (0.0, 0.0, 0.0, 0.0);
    for _ in 0..reps {
        let (wall0, cpu0) = (Instant::now(), cpu_seconds());
        let (oq, pending) = client.prepare(layout).unwrap();
        let oq = OfflineQueryMsg::from_bytes(&oq.to_bytes(params), params, layout).unwrap();
        let (or, prepared_r) = server.prepare(&key, &weights, &oq).unwrap();
        let or = OfflineResponseMsg::from_bytes(&or.to_bytes(params), params, layout).unwrap();
        let prepared_q = client.prepare_finish(pending, &or).unwrap();
        off_wall += wall0.elapsed().as_secs_f64();
        off_cpu += cpu_seconds() - cpu0;
        // CPU first: reading /proc takes some microseconds of wall time.
        let cpu0 = cpu_seconds();
        let wall0 = Instant::now();
        let (q, waiting) = client.online_query(prepared_q, x).unwrap();
        let q = OnlineQueryMsg::from_bytes(&q.to_bytes(params), params, layout).unwrap();
        let (resp, server_share) = server.online(&weights, prepared_r, &q).unwrap();
        let resp = OnlineResponseMsg::from_bytes(&resp.to_bytes(params), params, layout).unwrap();
        let client_share = client.online_finish(waiting, &resp).unwrap();
        on_wall += wall0.elapsed().as_secs_f64();
        on_cpu += cpu_seconds() - cpu0;
        std::hint::black_box((client_share, server_share));
    }
    let macs = shape.macs() as f64;
    let r = reps as f64;
    println!(
        "offline per product: wall {:.2} ms, CPU {:.2} ms",
        off_wall / r * 1e3,
        off_cpu / r * 1e3
    );
    println!(
        "online per product: wall {:.3} ms ({:.1} MAC/us), CPU {:.3} ms ({:.1} MAC/us)",
        on_wall / r * 1e3,
        macs / (on_wall / r) / 1e6,
        on_cpu / r * 1e3,
        macs / (on_cpu / r) / 1e6
    );
}
