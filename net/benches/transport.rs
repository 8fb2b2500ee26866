//! Transport benchmark (issue 8): one party sends a frame, the other
//! receives it whole and answers with a 4-byte frame; the time of that
//! exchange, for
//! * `tls`: Veil's TCP transport (mutual TLS 1.3 over loopback), and
//! * `plain-tcp`: the same framing over a bare loopback socket, in the same
//!   run, as the floor: what an unencrypted transport (CrypTen's gloo, say)
//!   pays for the same bytes.
//!
//! Run: `cargo bench -p net --bench transport`

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use net::{
    free_loopback_addresses, read_frame, PeerSpec, TcpConfig, TcpTransport, DEFAULT_MAX_FRAME,
};
use runtime::exec::transport::Transport;

const SIZES: [usize; 3] = [64 << 10, 1 << 20, 8 << 20];

fn tls_pair() -> (TcpTransport, TcpTransport) {
    let keys: Vec<(Vec<u8>, Vec<u8>)> = (0..2)
        .map(|i| {
            let ck = rcgen::generate_simple_self_signed(vec![format!("p{i}")]).unwrap();
            (
                ck.cert.pem().into_bytes(),
                ck.signing_key.serialize_pem().into_bytes(),
            )
        })
        .collect();
    let parties: Vec<Option<PeerSpec>> = free_loopback_addresses(2)
        .unwrap()
        .into_iter()
        .zip(&keys)
        .enumerate()
        .map(|(i, (address, (cert, _)))| {
            Some(PeerSpec {
                name: format!("p{i}"),
                address,
                cert: cert.clone(),
            })
        })
        .collect();
    let cfg = |me: usize| TcpConfig {
        me: me as plan::PartyIdx,
        parties: parties.clone(),
        key: keys[me].1.clone(),
        listen: None,
        plan: plan::Fingerprint {
            sections: vec![("bench".into(), [7; 32])],
        },
        session: "bench".into(),
        connect_timeout: Duration::from_secs(10),
        io_timeout: Duration::from_secs(30),
        max_frame: DEFAULT_MAX_FRAME,
        log: None,
    };
    let (c0, c1) = (cfg(0), cfg(1));
    let h = std::thread::spawn(move || TcpTransport::connect(&c1).unwrap());
    let t0 = TcpTransport::connect(&c0).unwrap();
    (t0, h.join().unwrap())
}

fn plain_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    a.set_nodelay(true).unwrap();
    b.set_nodelay(true).unwrap();
    (a, b)
}

fn plain_send(s: &mut TcpStream, frame: &[u8]) {
    s.write_all(&(frame.len() as u32).to_le_bytes()).unwrap();
    s.write_all(frame).unwrap();
}

fn plain_recv(s: &mut TcpStream) -> Vec<u8> {
    read_frame(s, DEFAULT_MAX_FRAME).unwrap()
}

fn transport(c: &mut Criterion) {
    let mut g = c.benchmark_group("transport");
    g.sample_size(20).measurement_time(Duration::from_secs(4));

    // The echo side runs on its own thread for the whole group, answering
    // every frame it receives with a 4-byte frame; a 0-byte frame stops it.
    let (mut t0, mut t1) = tls_pair();
    let tls_echo = std::thread::spawn(move || loop {
        let f = t1.recv(0).unwrap();
        if f.is_empty() {
            break;
        }
        t1.send(0, vec![1; 4]).unwrap();
    });
    let (mut a, mut b) = plain_pair();
    let plain_echo = std::thread::spawn(move || loop {
        let f = plain_recv(&mut b);
        if f.is_empty() {
            break;
        }
        plain_send(&mut b, &[1; 4]);
    });

    for size in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let frame = vec![0x5au8; size];
        g.bench_function(format!("tls/{}KiB", size >> 10), |bench| {
            bench.iter(|| {
                t0.send(1, frame.clone()).unwrap();
                assert_eq!(t0.recv(1).unwrap().len(), 4);
            })
        });
        g.bench_function(format!("plain-tcp/{}KiB", size >> 10), |bench| {
            bench.iter(|| {
                // The same clone as the TLS side: `Transport::send` takes
                // the frame by value.
                plain_send(&mut a, &frame.clone());
                assert_eq!(plain_recv(&mut a).len(), 4);
            })
        });
    }
    g.finish();
    t0.send(1, Vec::new()).unwrap();
    plain_send(&mut a, &[]);
    tls_echo.join().unwrap();
    plain_echo.join().unwrap();
}

criterion_group!(benches, transport);
criterion_main!(benches);
