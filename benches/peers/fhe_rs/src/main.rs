// Measurement, same process: `fhe` 0.1.1 / `fhe-math` against the
// rlwe crate's own NTT, at N = 8192 with the same three primes.
use fhe::bfv::{BfvParametersBuilder, Encoding, Plaintext, SecretKey};
use fhe_math::rq::{Context, Poly, Representation};
use fhe_traits::{FheDecrypter, FheEncoder, FheEncrypter};
use std::time::Instant;

fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

fn time<F: FnMut()>(name: &str, iters: u32, mut f: F) {
    f();
    let (t, c) = (Instant::now(), cpu());
    for _ in 0..iters {
        f();
    }
    println!(
        "{name}: wall {:.1} us, CPU {:.1} us",
        t.elapsed().as_secs_f64() * 1e6 / iters as f64,
        (cpu() - c) * 1e6 / iters as f64
    );
}

fn main() {
    let mut rng = rand::rng();
    let primes = rlwe::params::PRIMES_N8192_Q128.to_vec();
    let n = 8192;
    for round in 0..2 {
        println!("round {round}");
        let ctx1 = Context::new_arc(&primes[..1], n).unwrap();
        let mut p1 = Poly::random(&ctx1, Representation::PowerBasis, &mut rng);
        time(
            "  fhe-math NTT forward+inverse, one prime, N=8192",
            400,
            || {
                p1.change_representation(Representation::Ntt);
                p1.change_representation(Representation::PowerBasis);
            },
        );
        let params = rlwe::Params::n8192_q128();
        let table = params.table(0);
        let mut a: Vec<u64> = (0..n as u64).map(|i| i * 7919 % primes[0]).collect();
        time("  rlwe NTT forward+inverse, one prime, N=8192", 400, || {
            table.forward(&mut a);
            table.inverse(&mut a);
        });
        // One full seeded query ciphertext: the rlwe crate's symmetric
        // encryption of 8192 values (it sends only b).
        let mut client = rlwe::Client::new(params.clone()).unwrap();
        let shape = rlwe::Shape {
            batch: 1,
            k: n,
            n: 1,
        };
        let layout = rlwe::Layout::with_tiles(&params, shape, 16, 1, n, 1).unwrap();
        let x: Vec<u64> = (0..n as u64).collect();
        time(
            "  rlwe encrypt (seeded query, 8192 values), 3 primes",
            40,
            || {
                let _ = client.query(&layout, &x).unwrap();
            },
        );
        let par = BfvParametersBuilder::new()
            .set_degree(n)
            .set_plaintext_modulus((1u64 << 61) - 1)
            .set_moduli(&primes)
            .build_arc()
            .unwrap();
        let sk = SecretKey::random(&par, &mut rng);
        let vals: Vec<u64> = (0..n as u64).collect();
        let pt = Plaintext::try_encode(&vals, Encoding::poly(), &par).unwrap();
        let ct: fhe::bfv::Ciphertext = sk.try_encrypt(&pt, &mut rng).unwrap();
        time("  fhe encrypt (secret key), N=8192, 3 primes", 40, || {
            let _: fhe::bfv::Ciphertext = sk.try_encrypt(&pt, &mut rng).unwrap();
        });
        time(
            "  fhe ct x pt (NTT form, no transforms), N=8192, 3 primes",
            200,
            || {
                let _ = &ct * &pt;
            },
        );
        time("  fhe decrypt, N=8192, 3 primes", 40, || {
            let _ = sk.try_decrypt(&ct).unwrap();
        });
    }
}
