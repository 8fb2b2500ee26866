//! Every decoder meets hostile bytes: random input, the right tag followed
//! by random input, and every truncation and single-byte change of a valid
//! message. Each must return a value or a typed error, never panic, and a
//! message whose length does not fit its header must be an error.

use ot::arith::{self, Corrections};
use ot::base::{BaseHello, BaseReply};
use ot::error::Error;
use ot::one_of_n::{self, OneOfNMsg};
use ot::ot::{self as cot, ChosenMsg, Flips};
use ot::softspoken::{self, ExtendMsg};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use rand::SeedableRng;

fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x5eed_0bad),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Runs every decoder on `bytes`; returns how many accepted it.
fn decode_all(bytes: &[u8]) -> usize {
    [
        BaseHello::from_bytes(bytes).is_ok(),
        BaseReply::from_bytes(bytes).is_ok(),
        ExtendMsg::from_bytes(bytes).is_ok(),
        Flips::from_bytes(bytes).is_ok(),
        ChosenMsg::from_bytes(bytes).is_ok(),
        OneOfNMsg::from_bytes(bytes).is_ok(),
        Corrections::from_bytes(bytes).is_ok(),
    ]
    .iter()
    .filter(|&&ok| ok)
    .count()
}

/// One valid message of each kind.
fn valid_messages() -> Vec<Vec<u8>> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
    let (rs, hello) = softspoken::Receiver::setup(&mut rng).unwrap();
    let (mut s, reply) = softspoken::Sender::setup(&hello, &mut rng).unwrap();
    let mut r = rs.finish(&reply).unwrap();
    let (ext, mut rc) = r.extend_random(130, &mut rng).unwrap();
    let mut sc = s.extend(&ext).unwrap();
    let flips = cot::flip_choices(&mut rc, &[true; 130]).unwrap();
    sc.apply_flips(&flips).unwrap();
    let chosen = cot::send_u64(&sc, &[[5, 6]; 130]).unwrap();
    let (ext2, _) = r.extend_random(64 * 3, &mut rng).unwrap();
    let sc2 = s.extend(&ext2).unwrap();
    let (corr, _) = arith::send(&sc2, &[1, 2, 3]).unwrap();
    let (ext3, _) = r.extend_random(2 * 3, &mut rng).unwrap();
    let sc3 = s.extend(&ext3).unwrap();
    let msgs: Vec<Vec<Vec<u8>>> = (0..3)
        .map(|_| (0..4).map(|x| vec![x as u8; 5]).collect())
        .collect();
    let one = one_of_n::send(&sc3, 2, &msgs).unwrap();
    // The extension's first message (with the setup) and a later one.
    vec![
        ext2.to_bytes(),
        hello.to_bytes(),
        reply.to_bytes(),
        ext.to_bytes(),
        flips.to_bytes(),
        chosen.to_bytes(),
        corr.to_bytes(),
        one.to_bytes(),
    ]
}

#[test]
fn valid_messages_decode_and_every_truncation_is_an_error() {
    for msg in valid_messages() {
        assert_eq!(
            decode_all(&msg),
            1,
            "exactly one decoder accepts a valid message"
        );
        for cut in 0..msg.len() {
            assert_eq!(
                decode_all(&msg[..cut]),
                0,
                "truncated to {cut} of {} bytes",
                msg.len()
            );
        }
        let mut longer = msg.clone();
        longer.push(0);
        assert_eq!(decode_all(&longer), 0, "a trailing byte");
    }
}

#[test]
fn every_single_byte_change_of_the_headers_is_handled() {
    for msg in valid_messages() {
        // The headers and first point/blocks: all changes of the first 48
        // bytes, each to a few values.
        for i in 0..msg.len().min(48) {
            for v in [0u8, 1, 0x7f, 0x80, 0xff, msg[i] ^ 1] {
                let mut m = msg.clone();
                m[i] = v;
                decode_all(&m);
            }
        }
    }
}

#[test]
fn bad_points_are_rejected_with_their_index() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
    let (_, hello) = softspoken::Receiver::setup(&mut rng).unwrap();
    let (_, reply) = softspoken::Sender::setup(&hello, &mut rng).unwrap();
    let mut bytes = reply.to_bytes();
    // Point 5 becomes a non-canonical encoding (the field element p + 1).
    let mut p_plus_1 = [0xffu8; 32];
    p_plus_1[0] = 0xee;
    p_plus_1[31] = 0x7f;
    bytes[9 + 5 * 32..9 + 6 * 32].copy_from_slice(&p_plus_1);
    assert_eq!(
        BaseReply::from_bytes(&bytes),
        Err(Error::BadPoint {
            what: "base OT reply",
            index: 5
        })
    );
    // Negative (odd) encodings are not canonical in Ristretto255.
    let mut odd = reply.to_bytes();
    odd[9] |= 1;
    assert!(BaseReply::from_bytes(&odd).is_err());
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        decode_all(&bytes);
    }

    #[test]
    fn random_bodies_after_a_valid_tag_never_panic(tag in 1u8..=8, body in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut bytes = vec![tag];
        bytes.extend_from_slice(&body);
        decode_all(&bytes);
    }

    #[test]
    fn plausible_headers_with_random_counts_never_panic(tag in 1u8..=8, first in any::<u64>(), count in prop_oneof![0u64..300, any::<u64>()], third in prop_oneof![0u64..20, any::<u64>()], body in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut bytes = vec![tag];
        bytes.extend_from_slice(&first.to_le_bytes());
        bytes.extend_from_slice(&count.to_le_bytes());
        bytes.extend_from_slice(&third.to_le_bytes());
        bytes.extend_from_slice(&body);
        decode_all(&bytes);
    }
}
