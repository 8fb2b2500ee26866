//! Property tests of every protocol: the receiver gets exactly what it
//! chose and not the other message, correlations hold, triples reconstruct.
//! Both parties run in one process; messages go through `to_bytes` and
//! `from_bytes` as they would on a wire. Randomness: proptest with a fixed
//! seed, and ChaCha20 seeded from the generated case.

#![allow(clippy::needless_range_loop)] // index loops read best when comparing parties

use ot::arith::{self, Corrections};
use ot::base::{BaseHello, BaseReply};
use ot::block::Block;
use ot::boolean;
use ot::one_of_n::{self, OneOfNMsg};
use ot::ot::{self as cot, ChosenMsg, Flips};
use ot::softspoken::{self, ExtendMsg, Receiver, ReceiverCots, Sender, SenderCots};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x0f1e_2d3c),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Both extension parties, the base OTs run through the wire encoding.
fn pair(seed: u64) -> (Sender, Receiver, ChaCha20Rng) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (rs, hello) = Receiver::setup(&mut rng).unwrap();
    let hello = BaseHello::from_bytes(&hello.to_bytes()).unwrap();
    let (s, reply) = Sender::setup(&hello, &mut rng).unwrap();
    let reply = BaseReply::from_bytes(&reply.to_bytes()).unwrap();
    (s, rs.finish(&reply).unwrap(), rng)
}

fn extend(s: &mut Sender, r: &mut Receiver, choices: &[bool]) -> (SenderCots, ReceiverCots) {
    let (msg, rc) = r.extend(choices).unwrap();
    let msg = ExtendMsg::from_bytes(&msg.to_bytes()).unwrap();
    (s.extend(&msg).unwrap(), rc)
}

fn extend_random(
    s: &mut Sender,
    r: &mut Receiver,
    rng: &mut ChaCha20Rng,
    n: usize,
) -> (SenderCots, ReceiverCots) {
    let (msg, rc) = r.extend_random(n, rng).unwrap();
    let msg = ExtendMsg::from_bytes(&msg.to_bytes()).unwrap();
    (s.extend(&msg).unwrap(), rc)
}

/// Edge values and random ones.
fn ring_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1u64),
        Just(u64::MAX),
        Just(1u64 << 63),
        Just((1u64 << 63) - 1),
        any::<u64>(),
    ]
}

fn block() -> impl Strategy<Value = Block> {
    prop_oneof![
        Just(Block::ZERO),
        Just(Block::ONES),
        any::<u128>().prop_map(Block)
    ]
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn cot_correlation_holds(seed in any::<u64>(), choices in prop::collection::vec(any::<bool>(), 1..3000)) {
        let (mut s, mut r, _) = pair(seed);
        let (sc, rc) = extend(&mut s, &mut r, &choices);
        prop_assert_eq!(rc.choices(), &choices[..]);
        for j in 0..choices.len() {
            prop_assert_eq!(rc.t()[j], sc.q()[j] ^ sc.delta().select(choices[j]));
        }
        // Δ is not zero (it would make the OTs worthless) and the COTs are
        // not all equal.
        prop_assert_ne!(sc.delta(), Block::ZERO);
    }

    #[test]
    fn random_ot_gives_the_chosen_pad_only(seed in any::<u64>(), n in 1usize..600) {
        let (mut s, mut r, mut rng) = pair(seed);
        // A first batch so indices do not start at zero.
        extend_random(&mut s, &mut r, &mut rng, 5);
        let (sc, rc) = extend_random(&mut s, &mut r, &mut rng, n);
        let pads = sc.random_ot();
        let mine = rc.random_ot();
        for j in 0..n {
            let c = rc.choices()[j] as usize;
            prop_assert_eq!(mine[j], pads[j][c]);
            prop_assert_ne!(mine[j], pads[j][1 - c]);
        }
    }

    #[test]
    fn chosen_blocks(seed in any::<u64>(), msgs in prop::collection::vec((block(), block(), any::<bool>()), 1..300)) {
        let (mut s, mut r, _) = pair(seed);
        let choices: Vec<bool> = msgs.iter().map(|m| m.2).collect();
        let pairs: Vec<[Block; 2]> = msgs.iter().map(|m| [m.0, m.1]).collect();
        let (sc, rc) = extend(&mut s, &mut r, &choices);
        let wire = cot::send_blocks(&sc, &pairs).unwrap();
        let wire = ChosenMsg::from_bytes(&wire.to_bytes()).unwrap();
        let got = cot::receive_blocks(&rc, &wire).unwrap();
        let pads = rc.random_ot();
        let bytes = wire.to_bytes();
        for j in 0..pairs.len() {
            let c = choices[j] as usize;
            prop_assert_eq!(got[j], pairs[j][c]);
            // Unmasking the other message with the only pad the receiver has
            // does not give it.
            let off = 1 + 24 + (2 * j + (1 - c)) * 16;
            let other = Block::from_bytes(bytes[off..off + 16].try_into().unwrap()) ^ pads[j];
            prop_assert_ne!(other, pairs[j][1 - c]);
        }
    }

    #[test]
    fn chosen_u64_and_bytes(seed in any::<u64>(), msgs in prop::collection::vec((ring_value(), ring_value(), any::<bool>()), 1..200), width in 1usize..70) {
        let (mut s, mut r, mut rng) = pair(seed);
        let choices: Vec<bool> = msgs.iter().map(|m| m.2).collect();
        let pairs: Vec<[u64; 2]> = msgs.iter().map(|m| [m.0, m.1]).collect();
        let (sc, rc) = extend(&mut s, &mut r, &choices);
        let wire = ChosenMsg::from_bytes(&cot::send_u64(&sc, &pairs).unwrap().to_bytes()).unwrap();
        let got = cot::receive_u64(&rc, &wire).unwrap();
        for j in 0..pairs.len() {
            prop_assert_eq!(got[j], pairs[j][choices[j] as usize]);
        }
        // Byte strings of any width, on random COTs with flipped choices.
        let (mut sc, mut rc) = extend_random(&mut s, &mut r, &mut rng, pairs.len());
        let flips = cot::flip_choices(&mut rc, &choices).unwrap();
        sc.apply_flips(&Flips::from_bytes(&flips.to_bytes()).unwrap()).unwrap();
        let strings: Vec<[Vec<u8>; 2]> = pairs
            .iter()
            .map(|p| {
                let f = |v: u64| (0..width).map(|i| (v.rotate_left(i as u32 * 5) as u8) ^ i as u8).collect::<Vec<u8>>();
                [f(p[0]), f(!p[1])]
            })
            .collect();
        let refs: Vec<[&[u8]; 2]> = strings.iter().map(|m| [&m[0][..], &m[1][..]]).collect();
        let wire = ChosenMsg::from_bytes(&cot::send_bytes(&sc, &refs).unwrap().to_bytes()).unwrap();
        let got = cot::receive_bytes(&rc, &wire).unwrap();
        for j in 0..strings.len() {
            prop_assert_eq!(&got[j], &strings[j][choices[j] as usize]);
        }
    }

    #[test]
    fn one_of_n_gives_the_chosen_message_only(seed in any::<u64>(), log_n in 1u32..=5, count in 1usize..20, width in 1usize..40) {
        let (mut s, mut r, mut rng) = pair(seed);
        let n = 1usize << log_n;
        let mut choices = Vec::new();
        let mut messages = Vec::new();
        for i in 0..count {
            choices.push(((seed >> (i % 60)) as usize % n) as u64);
            messages.push((0..n).map(|x| (0..width).map(|b| (x * 31 + b * 7 + i) as u8).collect()).collect::<Vec<Vec<u8>>>());
        }
        let (mut sc, mut rc) = extend_random(&mut s, &mut r, &mut rng, count * log_n as usize);
        let flips = cot::flip_choices(&mut rc, &one_of_n::choice_bits(&choices, log_n)).unwrap();
        sc.apply_flips(&flips).unwrap();
        let wire = one_of_n::send(&sc, log_n, &messages).unwrap();
        let wire = OneOfNMsg::from_bytes(&wire.to_bytes()).unwrap();
        let got = one_of_n::receive(&rc, &wire).unwrap();
        for i in 0..count {
            prop_assert_eq!(&got[i], &messages[i][choices[i] as usize]);
        }
        // A receiver that pretends its choice was another index (by
        // flipping its recorded choice bits without the sender knowing)
        // gets garbage, not the other message (checked from 8 bytes up, so a
        // chance match has probability at most 2^-64).
        if width >= 8 {
            let mut lying = rc.clone();
            let wrong = (choices[0] as usize + 1) % n;
            let bits = one_of_n::choice_bits(&[wrong as u64], log_n);
            let mut wanted = lying.choices().to_vec();
            wanted[..log_n as usize].copy_from_slice(&bits);
            let _ = cot::flip_choices(&mut lying, &wanted).unwrap();
            let other = one_of_n::receive(&lying, &wire).unwrap();
            prop_assert_ne!(&other[0], &messages[0][wrong]);
        }
    }

    #[test]
    fn random_one_of_n_short_pads_agree_at_the_choice_only(seed in any::<u64>(), log_n in 1u32..=5, count in 1usize..40, width in 1u32..=4) {
        let (mut s, mut r, mut rng) = pair(seed);
        let n = 1u32 << log_n;
        let l = log_n as usize;
        let (sc, rc) = extend_random(&mut s, &mut r, &mut rng, count * l);
        let sent = one_of_n::random_send_short(&sc, log_n, width).unwrap();
        let (choices, got) = one_of_n::random_receive_short(&rc, log_n, width).unwrap();
        prop_assert_eq!(sent.len(), count);
        prop_assert_eq!(choices.len(), count);
        let field = |all: u128, x: u32| (all >> (x * width)) & ((1u128 << width) - 1);
        for i in 0..count {
            let c = choices[i] as u32;
            prop_assert!(c < n);
            // The choice is the COTs' choice bits, least significant first.
            let bits = one_of_n::choice_bits(&[choices[i]], log_n);
            prop_assert_eq!(&rc.choices()[i * l..(i + 1) * l], &bits[..]);
            prop_assert_eq!(got[i], field(sent[i], c));
            // Nothing past the N pads.
            if n * width < 128 {
                prop_assert_eq!(sent[i] >> (n * width), 0);
            }
        }
    }

    #[test]
    fn gilboa_products_reconstruct(seed in any::<u64>(), ab in prop::collection::vec((ring_value(), ring_value()), 1..40)) {
        let (mut s, mut r, _) = pair(seed);
        let a: Vec<u64> = ab.iter().map(|p| p.0).collect();
        let b: Vec<u64> = ab.iter().map(|p| p.1).collect();
        let (sc, rc) = extend(&mut s, &mut r, &arith::receiver_choices(&b));
        prop_assert_eq!(arith::receiver_values(&rc), b.clone());
        let (msg, s_shares) = arith::send(&sc, &a).unwrap();
        let bytes = msg.to_bytes();
        prop_assert_eq!(bytes.len(), 17 + (a.len() * arith::BITS_PER_PRODUCT).div_ceil(64) * 8);
        let msg = Corrections::from_bytes(&bytes).unwrap();
        let r_shares = arith::receive(&rc, &msg).unwrap();
        for k in 0..a.len() {
            prop_assert_eq!(s_shares[k].wrapping_add(r_shares[k]), a[k].wrapping_mul(b[k]));
        }
    }

    #[test]
    fn beaver_triples_reconstruct(seed in any::<u64>(), n in 1usize..50) {
        let (mut s, mut r, mut rng) = pair(seed);
        let (sc, rc) = extend_random(&mut s, &mut r, &mut rng, 128 * n);
        let (msg, t0) = arith::beaver_sender(&sc, &mut rng).unwrap();
        let t1 = arith::beaver_receiver(&rc, &Corrections::from_bytes(&msg.to_bytes()).unwrap()).unwrap();
        for k in 0..n {
            let a = t0.a[k].wrapping_add(t1.a[k]);
            let b = t0.b[k].wrapping_add(t1.b[k]);
            prop_assert_eq!(t0.c[k].wrapping_add(t1.c[k]), a.wrapping_mul(b));
        }
    }

    #[test]
    fn and_triples_reconstruct(seed in any::<u64>(), n in 1usize..2000) {
        let (mut s, mut r, mut rng) = pair(seed);
        let (sc, rc) = extend_random(&mut s, &mut r, &mut rng, 2 * n);
        let t0 = boolean::and_triples_sender(&sc).unwrap();
        let t1 = boolean::and_triples_receiver(&rc).unwrap();
        for k in 0..n {
            let (a0, b0, c0) = t0.get(k);
            let (a1, b1, c1) = t1.get(k);
            prop_assert_eq!(c0 ^ c1, (a0 ^ a1) & (b0 ^ b1));
        }
    }
}

#[test]
fn triples_are_not_constant() {
    let (mut s, mut r, mut rng) = pair(99);
    let (sc, rc) = extend_random(&mut s, &mut r, &mut rng, 2 * 1024);
    let t0 = boolean::and_triples_sender(&sc).unwrap();
    let t1 = boolean::and_triples_receiver(&rc).unwrap();
    let ones = |v: &[u64]| v.iter().map(|w| w.count_ones()).sum::<u32>();
    for v in [&t0.a, &t0.b, &t1.a, &t1.b] {
        // 1024 fair bits: outside [350, 674] has probability below 2^-70
        // (Hoeffding).
        assert!((350..=674).contains(&ones(v)), "{}", ones(v));
    }
    let (sc, rc) = extend_random(&mut s, &mut r, &mut rng, 128 * 64);
    let (msg, b0) = arith::beaver_sender(&sc, &mut rng).unwrap();
    let b1 = arith::beaver_receiver(&rc, &msg).unwrap();
    let distinct = |v: &[u64]| v.iter().collect::<std::collections::BTreeSet<_>>().len();
    for v in [&b0.a, &b0.b, &b1.a, &b1.b, &b1.c] {
        assert_eq!(distinct(v), 64);
    }
}

#[test]
fn mismatched_batches_are_errors_not_panics() {
    let (mut s, mut r, mut rng) = pair(5);
    let (sc, rc) = extend_random(&mut s, &mut r, &mut rng, 128);
    // Wrong number of inputs for the COTs.
    assert!(arith::send(&sc, &[1, 2, 3]).is_err());
    assert!(cot::send_u64(&sc, &[[1, 2]]).is_err());
    assert!(one_of_n::send(&sc, 3, &[]).is_err());
    // 128 COTs are not whole instances of 1-of-8 (3 COTs each), and
    // log N = 0 is refused.
    assert!(one_of_n::random_send_short(&sc, 3, 2).is_err());
    assert!(one_of_n::random_receive_short(&rc, 3, 2).is_err());
    assert!(one_of_n::random_receive_short(&rc, 0, 2).is_err());
    // More than 128 bits of pads per instance.
    assert!(one_of_n::random_send_short(&sc, 4, 9).is_err());
    assert!(one_of_n::random_receive_short(&rc, 2, 32).is_ok());
    assert!(one_of_n::random_receive_short(&rc, 2, 33).is_err());
    assert!(boolean::and_triples_sender(&sc).is_ok());
    // Messages built for other COTs.
    let (sc2, rc2) = extend_random(&mut s, &mut r, &mut rng, 128);
    let (msg, _) = arith::send(&sc2, &[7, 8]).unwrap();
    assert!(arith::receive(&rc, &msg).is_err());
    let wire = cot::send_u64(&sc2, &vec![[1, 2]; 128]).unwrap();
    assert!(cot::receive_u64(&rc, &wire).is_err());
    assert!(cot::receive_blocks(&rc2, &wire).is_err());
    let mut sc3 = sc;
    let mut rc_extra = rc2.clone();
    let flips = cot::flip_choices(&mut rc_extra, &[true; 128]).unwrap();
    assert!(sc3.apply_flips(&flips).is_err());
    drop(rc);
}

#[test]
fn debug_prints_no_secrets() {
    let (mut s, mut r, mut rng) = pair(6);
    let (sc, rc) = extend_random(&mut s, &mut r, &mut rng, 3);
    assert_eq!(format!("{sc:?}"), "SenderCots { first: 0, len: 3, .. }");
    assert_eq!(format!("{rc:?}"), "ReceiverCots { first: 0, len: 3, .. }");
    assert_eq!(
        format!("{s:?}"),
        "softspoken::Sender { k: 4, next: 128, .. }"
    );
    assert_eq!(
        format!("{r:?}"),
        "softspoken::Receiver { k: 4, next: 128, .. }"
    );
    let (msg, t) =
        arith::beaver_sender(&extend_random(&mut s, &mut r, &mut rng, 128).0, &mut rng).unwrap();
    assert_eq!(format!("{t:?}"), "TripleShares { len: 1, .. }");
    assert_eq!(
        format!("{msg:?}"),
        "Corrections { first: 128, count: 2, .. }"
    );
    let _ = softspoken::KAPPA;
}

#[test]
fn random_one_of_16_pads_look_uniform() {
    // 4,000 random 1-of-16 OTs of 2-bit messages: the 15 pads the receiver
    // did not choose differ from the chosen one about 3/4 of the time
    // (45,000 samples: outside [0.72, 0.78] has probability below 2^-40 for
    // uniform pads), and every pad value appears.
    let (mut s, mut r, mut rng) = pair(17);
    let count = 4000;
    let (sc, rc) = extend_random(&mut s, &mut r, &mut rng, 4 * count);
    let sent = one_of_n::random_send_short(&sc, 4, 2).unwrap();
    let (choices, got) = one_of_n::random_receive_short(&rc, 4, 2).unwrap();
    let (mut differ, mut total) = (0usize, 0usize);
    let mut seen = [0usize; 4];
    for i in 0..count {
        for x in 0..16u32 {
            let pad = (sent[i] >> (2 * x)) & 3;
            seen[pad as usize] += 1;
            if u64::from(x) != choices[i] {
                total += 1;
                differ += usize::from(pad != got[i]);
            }
        }
    }
    let frac = differ as f64 / total as f64;
    assert!((0.72..=0.78).contains(&frac), "{frac}");
    assert!(seen.iter().all(|&k| k > 15_000), "{seen:?}");
}
