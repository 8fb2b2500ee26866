//! Paillier: talk vectors, homomorphism properties, error paths.

use std::sync::OnceLock;

use num_bigint::{BigInt, BigUint};
use num_traits::{One, Zero};
use paillier::encoding::{decode_signed, encode_signed};
use paillier::{
    Ciphertext, EncodedNumber, Keypair, PackingLayout, PaillierError, PublicKey, RandomizerPool,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn key() -> &'static Keypair {
    static KEY: OnceLock<Keypair> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(0x5eed);
        Keypair::generate_insecure_for_tests(1024, &mut rng).unwrap()
    })
}

fn big(x: u64) -> BigUint {
    BigUint::from(x)
}

fn toy() -> Keypair {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    Keypair::from_primes_for_tests(big(5), big(7), &mut rng).unwrap()
}

#[test]
fn talk_vectors_n35() {
    let kp = toy();
    let pk = &kp.public;
    assert_eq!(pk.n(), &big(35));
    assert_eq!(pk.n_squared(), &big(1225));
    let c1 = pk
        .encrypt_with_randomness_for_tests(&big(5), &big(2))
        .unwrap();
    let c2 = pk
        .encrypt_with_randomness_for_tests(&big(5), &big(4))
        .unwrap();
    assert_eq!(c1.as_biguint(), &big(718));
    assert_eq!(c2.as_biguint(), &big(674));
    let sum = pk.add(&c1, &c2);
    assert_eq!(sum.as_biguint(), &big(57));
    let c3 = pk
        .encrypt_with_randomness_for_tests(&big(10), &big(8))
        .unwrap();
    assert_eq!(c3.as_biguint(), &big(57));
    for (c, m) in [(&c1, 5u64), (&c2, 5), (&sum, 10), (&c3, 10)] {
        assert_eq!(kp.private.decrypt(c), big(m));
        assert_eq!(kp.private.decrypt_sequential(c), big(m));
        assert_eq!(kp.private.decrypt_plain_formula_vartime(c), big(m));
    }
    // g = n + 1 = 36: g^m = 1 + m n mod n^2
    assert_eq!(big(36).modpow(&big(5), &big(1225)), big(1 + 5 * 35));
}

/// Issue 14, defect 9: a key size above the loader's bound is refused before
/// any work (a 1,000,000-bit request used to run forever).
#[test]
fn keygen_refuses_sizes_above_the_loader_bound() {
    use paillier::jwk::MAX_KEY_BITS;
    for bits in [MAX_KEY_BITS + 2, 1_000_000] {
        let err = Keypair::generate_with_progress(bits, &mut rand::rng(), &mut |_| {
            panic!("started generating a {bits}-bit key")
        })
        .unwrap_err();
        assert!(
            err.to_string().contains(&MAX_KEY_BITS.to_string()),
            "{bits}: {err}"
        );
    }
}

#[test]
fn key_sizes_enforced() {
    assert_eq!(
        Keypair::generate(1024).unwrap_err(),
        PaillierError::KeyTooSmall(1024)
    );
    assert!(matches!(
        PublicKey::from_n(BigUint::from(35u32)),
        Err(PaillierError::KeyTooSmall(_))
    ));
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    assert_eq!(
        Keypair::generate_insecure_for_tests(15, &mut rng).unwrap_err(),
        PaillierError::BadKeySize(15)
    );
    for bits in [64u64, 128, 256] {
        let kp = Keypair::generate_insecure_for_tests(bits, &mut rng).unwrap();
        assert_eq!(kp.public.bits(), bits);
    }
    assert_eq!(key().public.bits(), 1024);
    // p == q refused
    assert!(Keypair::from_primes_for_tests(big(7), big(7), &mut rng).is_err());
}

#[test]
fn keygen_2048_with_progress() {
    let mut events = 0usize;
    let mut done = false;
    let kp = Keypair::generate_with_progress(2048, &mut rand::rng(), &mut |e| {
        events += 1;
        if e == paillier::KeygenEvent::Done {
            done = true;
        }
    })
    .unwrap();
    assert!(done && events >= 3);
    assert_eq!(kp.public.bits(), 2048);
    let c = kp.public.encrypt(&big(42)).unwrap();
    assert_eq!(kp.private.decrypt(&c), big(42));
}

#[test]
fn debug_redacts_secrets() {
    let kp = key();
    let s = format!("{:?}", kp.private);
    assert!(s.contains("redacted"));
    let phi = kp.private.phi().to_string();
    assert!(!s.contains(&phi[phi.len() - 20..]));
    let s = format!("{kp:?}");
    assert!(!s.contains(&phi[phi.len() - 20..]));
    let pool = RandomizerPool::new(&kp.public);
    assert!(!format!("{pool:?}").is_empty());
}

#[test]
fn invalid_ciphertexts_rejected() {
    let pk = &key().public;
    assert_eq!(
        Ciphertext::from_biguint(pk, BigUint::zero()).unwrap_err(),
        PaillierError::InvalidCiphertext
    );
    assert!(Ciphertext::from_biguint(pk, pk.n_squared().clone()).is_err());
    assert!(Ciphertext::from_biguint(pk, pk.n().clone()).is_err());
    assert!(Ciphertext::from_biguint(pk, BigUint::one()).is_ok());
    assert_eq!(
        pk.encrypt(pk.n()).unwrap_err(),
        PaillierError::PlaintextOutOfRange
    );
    assert!(key().private.encrypt_crt(pk.n()).is_err());
    assert!(pk
        .encrypt_signed(&BigInt::from(pk.max_int().clone() + 1u32))
        .is_err());
}

#[test]
fn overflow_band_is_an_error() {
    let kp = key();
    let pk = &kp.public;
    let max = BigInt::from(pk.max_int().clone());
    let c = pk.encrypt_signed(&max).unwrap();
    let doubled = pk.add(&c, &c);
    assert_eq!(
        kp.private.decrypt_signed(&doubled).unwrap_err(),
        PaillierError::Overflow
    );
    let mid = pk.n() / 2u32;
    assert_eq!(
        decode_signed(pk, &mid).unwrap_err(),
        PaillierError::Overflow
    );
    assert!(decode_signed(pk, pk.n()).is_err());
    assert_eq!(
        decode_signed(pk, &encode_signed(pk, &-&max).unwrap()).unwrap(),
        -max
    );
}

#[test]
fn pool_and_rerandomize() {
    let kp = key();
    let pk = &kp.public;
    let mut pool = RandomizerPool::new(pk);
    assert_eq!(pool.encrypt(&big(1)).unwrap_err(), PaillierError::PoolEmpty);
    pool.fill(3);
    assert_eq!(pool.len(), 3);
    let c = pool.encrypt(&big(9)).unwrap();
    assert_eq!(kp.private.decrypt(&c), big(9));
    let c2 = pool.rerandomize(&c).unwrap();
    assert_ne!(c, c2);
    assert_eq!(kp.private.decrypt(&c2), big(9));
    let c3 = pk.rerandomize(&c);
    assert_ne!(c3, c);
    assert_eq!(kp.private.decrypt(&c3), big(9));
    assert!(pool.encrypt(pk.n()).is_err());
}

#[test]
fn dot_product_length_mismatch() {
    let pk = &key().public;
    let c = pk.encrypt(&big(1)).unwrap();
    assert_eq!(
        pk.dot_i64(&[c], &[1, 2]).unwrap_err(),
        PaillierError::LengthMismatch(1, 2)
    );
    assert_eq!(
        key().private.decrypt(&pk.dot_i64(&[], &[]).unwrap()),
        big(0)
    );
}

#[test]
fn dot_product_100_single_and_multi_thread() {
    let kp = key();
    let pk = &kp.public;
    let xs: Vec<i64> = (0..100).map(|i| (i * 7919 % 2001) - 1000).collect();
    let ws: Vec<i64> = (0..100)
        .map(|i: i64| i.wrapping_mul(0x1234_5678_9abc) ^ (i << 40))
        .collect();
    let cts: Vec<Ciphertext> = xs
        .iter()
        .map(|&x| pk.encrypt_signed(&BigInt::from(x)).unwrap())
        .collect();
    let want: BigInt = xs
        .iter()
        .zip(&ws)
        .map(|(&x, &w)| BigInt::from(x) * BigInt::from(w))
        .sum();
    let got = kp
        .private
        .decrypt_signed(&pk.dot_i64(&cts, &ws).unwrap())
        .unwrap();
    assert_eq!(got, want);
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let got1 = single.install(|| pk.dot_i64(&cts, &ws).unwrap());
    assert_eq!(kp.private.decrypt_signed(&got1).unwrap(), want);
    let wb: Vec<BigInt> = ws.iter().map(|&w| BigInt::from(w)).collect();
    assert_eq!(
        kp.private
            .decrypt_signed(&pk.dot_naive(&cts, &wb).unwrap())
            .unwrap(),
        want
    );
}

#[test]
fn fixed_point_basics() {
    let kp = key();
    let pk = &kp.public;
    let a = pk.encrypt_f64(1.5).unwrap();
    let b = pk.encrypt_f64(-0.25).unwrap();
    let s = pk.add_encrypted(&a, &b).unwrap();
    assert_eq!(kp.private.decrypt_f64(&s).unwrap(), 1.25);
    let p = pk
        .mul_encoded(&a, &EncodedNumber::from_f64(-2.0, None).unwrap())
        .unwrap();
    assert_eq!(kp.private.decrypt_f64(&p).unwrap(), -3.0);
    let q = pk
        .add_encoded(&a, &EncodedNumber::from_f64(0.1, None).unwrap())
        .unwrap();
    assert!((kp.private.decrypt_f64(&q).unwrap() - 1.6).abs() < 1e-12);
    assert_eq!(
        pk.encrypt_f64(f64::INFINITY).unwrap_err(),
        PaillierError::NotFinite
    );
    assert!(pk.decrease_exponent_to(&a, a.exponent + 1).is_err());
    assert!(pk.decrease_exponent_to(&a, a.exponent - 100_000).is_err());
}

#[test]
fn packing_layout_and_errors() {
    let l = PackingLayout::new(2048, 16, 16, 1024).unwrap();
    assert_eq!(l.slot_bits, 84);
    assert_eq!(l.slots, 24);
    assert!(PackingLayout::new(64, 16, 16, 1024).is_err());
    let l = PackingLayout::new(1024, 8, 8, 8).unwrap();
    assert!(l.pack(&vec![BigInt::from(1); l.slots + 1]).is_err());
    assert!(l.pack(&[BigInt::from(256)]).is_err());
    let pk = &key().public;
    let c = pk.encrypt(&big(1)).unwrap();
    assert!(l
        .packed_matvec(pk, &vec![c.clone(); 9], &[vec![1; 9]])
        .is_err());
    assert!(l
        .packed_matvec(pk, std::slice::from_ref(&c), &[vec![1, 2]])
        .is_err());
    assert!(l
        .packed_matvec(pk, std::slice::from_ref(&c), &[vec![1000]])
        .is_err());
    assert!(l.decrypt_packed(&key().private, &c, l.slots + 1).is_err());
}

#[test]
fn packed_matvec_with_mask() {
    let kp = key();
    let pk = &kp.public;
    let d = 10usize;
    let l = PackingLayout::new(pk.bits(), 12, 12, d).unwrap();
    let xs: Vec<i64> = (0..d as i64).map(|i| i * 311 - 1500).collect();
    let rows: Vec<Vec<i64>> = (0..(l.slots as i64 + 2))
        .map(|r| {
            (0..d as i64)
                .map(|j| ((r * 37 + j * 101) % 4001) - 2000)
                .collect()
        })
        .collect();
    let cts: Vec<Ciphertext> = xs
        .iter()
        .map(|&x| pk.encrypt_signed(&BigInt::from(x)).unwrap())
        .collect();
    let out = l.packed_matvec(pk, &cts, &rows).unwrap();
    assert_eq!(out.len(), 2);
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut got = Vec::new();
    for (k, c) in out.iter().enumerate() {
        let count = (rows.len() - k * l.slots).min(l.slots);
        let (masked, masks) = l.mask(pk, c, count, &mut rng).unwrap();
        let vals = l.decrypt_packed(&kp.private, &masked, count).unwrap();
        for (v, m) in vals.into_iter().zip(masks) {
            got.push(v - BigInt::from(m));
        }
    }
    let want: Vec<BigInt> = rows
        .iter()
        .map(|r| r.iter().zip(&xs).map(|(&w, &x)| BigInt::from(w * x)).sum())
        .collect();
    assert_eq!(got, want);
}

fn small_signed() -> impl Strategy<Value = i64> {
    -(1i64 << 40)..(1i64 << 40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn prop_signed_homomorphisms(a in small_signed(), b in small_signed(), k in any::<i32>()) {
        let kp = key();
        let pk = &kp.public;
        let (ba, bb, bk) = (BigInt::from(a), BigInt::from(b), BigInt::from(k));
        let ca = pk.encrypt_signed(&ba).unwrap();
        let cb = pk.encrypt_signed(&bb).unwrap();
        prop_assert_eq!(kp.private.decrypt_signed(&ca).unwrap(), ba.clone());
        prop_assert_eq!(kp.private.decrypt_signed(&pk.add(&ca, &cb)).unwrap(), &ba + &bb);
        prop_assert_eq!(kp.private.decrypt_signed(&pk.sub(&ca, &cb)).unwrap(), &ba - &bb);
        prop_assert_eq!(kp.private.decrypt_signed(&pk.add_plain(&ca, &bb)).unwrap(), &ba + &bb);
        prop_assert_eq!(kp.private.decrypt_signed(&pk.mul_scalar(&ca, &bk)).unwrap(), &ba * &bk);
        prop_assert_eq!(kp.private.decrypt_signed(&pk.neg(&ca)).unwrap(), -&ba);
    }

    #[test]
    fn prop_crt_matches_plain_formula(m in any::<u64>()) {
        let kp = key();
        let pk = &kp.public;
        let c1 = pk.encrypt(&big(m)).unwrap();
        let c2 = kp.private.encrypt_crt(&big(m)).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(m);
        let c3 = pk.encrypt_textbook(&big(m), &mut rng).unwrap();
        for c in [&c1, &c2, &c3] {
            prop_assert_eq!(kp.private.decrypt(c), big(m));
            prop_assert_eq!(kp.private.decrypt_plain_formula_vartime(c), big(m));
        }
    }

    #[test]
    fn prop_dot(xs in prop::collection::vec(small_signed(), 0..12), seed in any::<u64>()) {
        let kp = key();
        let pk = &kp.public;
        let ws: Vec<i64> = xs.iter().enumerate().map(|(i, _)| (seed.rotate_left(i as u32 * 7) as i64) >> 3).collect();
        let cts: Vec<Ciphertext> = xs.iter().map(|&x| pk.encrypt_signed(&BigInt::from(x)).unwrap()).collect();
        let want: BigInt = xs.iter().zip(&ws).map(|(&x, &w)| BigInt::from(x) * BigInt::from(w)).sum();
        prop_assert_eq!(kp.private.decrypt_signed(&pk.dot_i64(&cts, &ws).unwrap()).unwrap(), want);
    }

    #[test]
    fn prop_fixed_point(a in -1e6f64..1e6, b in -1e6f64..1e6) {
        let kp = key();
        let pk = &kp.public;
        let ea = pk.encrypt_f64(a).unwrap();
        let eb = pk.encrypt_f64(b).unwrap();
        prop_assert_eq!(kp.private.decrypt_f64(&ea).unwrap(), a);
        let s = kp.private.decrypt_f64(&pk.add_encrypted(&ea, &eb).unwrap()).unwrap();
        prop_assert!((s - (a + b)).abs() <= 1e-9 * (1.0 + (a + b).abs()));
        let p = kp.private.decrypt_f64(&pk.mul_encoded(&ea, &EncodedNumber::from_f64(b, None).unwrap()).unwrap()).unwrap();
        prop_assert!((p - a * b).abs() <= 1e-9 * (1.0 + (a * b).abs()));
        let q = kp.private.decrypt_f64(&pk.add_encoded(&ea, &EncodedNumber::from_f64(b, None).unwrap()).unwrap()).unwrap();
        prop_assert!((q - (a + b)).abs() <= 1e-9 * (1.0 + (a + b).abs()));
    }

    #[test]
    fn prop_packed(vals in prop::collection::vec(-(1i64 << 15)..(1i64 << 15), 1..8),
                   others in prop::collection::vec(-(1i64 << 15)..(1i64 << 15), 8),
                   k in -(1i64 << 15)..(1i64 << 15)) {
        let kp = key();
        let pk = &kp.public;
        let l = PackingLayout::new(pk.bits(), 16, 16, 4).unwrap();
        let a: Vec<BigInt> = vals.iter().map(|&v| BigInt::from(v)).collect();
        let b: Vec<BigInt> = others[..vals.len()].iter().map(|&v| BigInt::from(v)).collect();
        let ca = l.encrypt_packed(pk, &a).unwrap();
        let cb = l.encrypt_packed(pk, &b).unwrap();
        prop_assert_eq!(l.decrypt_packed(&kp.private, &ca, a.len()).unwrap(), a.clone());
        let sum = l.decrypt_packed(&kp.private, &pk.add(&ca, &cb), a.len()).unwrap();
        let want: Vec<BigInt> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        prop_assert_eq!(sum, want);
        let prod = l.decrypt_packed(&kp.private, &pk.mul_scalar(&ca, &BigInt::from(k)), a.len()).unwrap();
        let want: Vec<BigInt> = a.iter().map(|x| x * k).collect();
        prop_assert_eq!(prod, want);
        // batch of inputs: packed ciphertexts dotted with plain weights
        let dot = l.decrypt_packed(&kp.private, &pk.dot_i64(&[ca.clone(), cb.clone()], &[k, -3]).unwrap(), a.len()).unwrap();
        let want: Vec<BigInt> = a.iter().zip(&b).map(|(x, y)| x * k - y * 3).collect();
        prop_assert_eq!(dot, want);
    }
}
