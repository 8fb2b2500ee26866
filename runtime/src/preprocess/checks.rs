//! Test-only checks that both parties' correlations reconstruct as they
//! should, shared by every engine's tests (`twoparty`, `otgen`).

use crate::sharing::{
    reconstruct, CorrelationRequest as Request, CorrelationShare, Correlations, OneOf16Side,
    OtSide, Party, PrecomputedCorrelations, RingTensor, Share,
};

/// Beaver-triple requests every engine is tested on: elementwise (a tensor
/// and a scalar) and matrix products of every operand rank.
pub(crate) fn triple_requests() -> Vec<Request> {
    vec![
        Request::ElementwiseTriple { shape: vec![13] },
        Request::MatmulTriple {
            a_shape: vec![5, 7],
            b_shape: vec![7, 3],
        },
        Request::MatmulTriple {
            a_shape: vec![4, 6],
            b_shape: vec![6],
        },
        Request::MatmulTriple {
            a_shape: vec![6],
            b_shape: vec![6],
        },
        Request::MatmulTriple {
            a_shape: vec![1, 2],
            b_shape: vec![2, 9],
        },
        Request::ElementwiseTriple { shape: vec![] },
    ]
}

/// The comparison correlations every engine is tested on (AND triples
/// not a whole number of words, daBits past one word, one masked word).
pub(crate) fn compare_requests() -> Vec<Request> {
    vec![
        Request::MaskedBits { shape: vec![2, 5] },
        Request::AndTriples { bits: 200 },
        Request::DaBits { shape: vec![70] },
        Request::MaskedBits { shape: vec![1] },
    ]
}

/// Random OTs each way, of sizes around a word (the OT engine only).
pub(crate) fn random_ot_requests() -> Vec<Request> {
    vec![
        Request::RandomOts {
            shape: vec![70],
            sender: Party::P0,
        },
        Request::RandomOts {
            shape: vec![70],
            sender: Party::P1,
        },
        Request::MaskedBits { shape: vec![3] },
        Request::RandomOts {
            shape: vec![2, 64],
            sender: Party::P1,
        },
        Request::RandomOts {
            shape: vec![1],
            sender: Party::P0,
        },
    ]
}

/// Random 1-of-16 OTs around the packing's word sizes (the OT engine and
/// the dealer only).
pub(crate) fn one_of_16_requests() -> Vec<Request> {
    vec![
        Request::OneOf16Ots { count: 16 * 7 },
        Request::AndTriples { bits: 64 * 3 },
        Request::OneOf16Ots { count: 33 },
        Request::OneOf16Ots { count: 1 },
    ]
}

fn open(a: &Share, b: &Share) -> RingTensor {
    reconstruct(a, b).unwrap()
}

fn bits_xor(a: &[u64], b: &[u64]) -> Vec<u64> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// Every request in `reqs` is served, in order, with a share that
/// reconstructs to what its kind promises: `c = a·b` (elementwise or
/// matrix) for triples, `c = a ∧ b` for AND triples, a daBit's XOR and
/// additive halves the same bit, masked bits whose XOR-shared words are the
/// additively shared `r`. Both stores end empty.
pub(crate) fn assert_consistent(
    s0: &mut PrecomputedCorrelations,
    s1: &mut PrecomputedCorrelations,
    reqs: &[Request],
) {
    for r in reqs {
        match (s0.fetch(r).unwrap(), s1.fetch(r).unwrap()) {
            (CorrelationShare::Triple(t0), CorrelationShare::Triple(t1)) => {
                let (a, b, c) = (open(&t0.a, &t1.a), open(&t0.b, &t1.b), open(&t0.c, &t1.c));
                let want = match r {
                    Request::ElementwiseTriple { .. } => a.mul(&b).unwrap(),
                    _ => a.matmul(&b).unwrap(),
                };
                assert_eq!(c, want, "{r:?}");
            }
            (CorrelationShare::MaskedBits(m0), CorrelationShare::MaskedBits(m1)) => {
                let r = open(&m0.r, &m1.r);
                assert_eq!(
                    bits_xor(m0.r_bits.data(), m1.r_bits.data()),
                    r.data().to_vec()
                );
            }
            (CorrelationShare::AndTriples(t0), CorrelationShare::AndTriples(t1)) => {
                let Request::AndTriples { bits } = r else {
                    panic!("{r:?} served with AND triples");
                };
                assert_eq!(t0.bits, *bits);
                assert_eq!(t0.a.len(), Request::words_for_bits(*bits));
                let a = bits_xor(&t0.a, &t1.a);
                let b = bits_xor(&t0.b, &t1.b);
                let c = bits_xor(&t0.c, &t1.c);
                let want: Vec<u64> = a.iter().zip(&b).map(|(x, y)| x & y).collect();
                assert_eq!(c, want);
            }
            (CorrelationShare::DaBits(d0), CorrelationShare::DaBits(d1)) => {
                let xor = bits_xor(&d0.bits, &d1.bits);
                let arith = open(&d0.arith, &d1.arith);
                let Request::DaBits { shape } = r else {
                    panic!("{r:?} served with daBits");
                };
                assert_eq!(arith.shape(), &shape[..]);
                for (i, v) in arith.data().iter().enumerate() {
                    assert_eq!(*v, (xor[i / 64] >> (i % 64)) & 1, "daBit {i}");
                }
            }
            (CorrelationShare::RandomOts(o0), CorrelationShare::RandomOts(o1)) => {
                let Request::RandomOts { shape, sender } = r else {
                    panic!("{r:?} served with random OTs");
                };
                let n: usize = shape.iter().product();
                let (s, v) = if *sender == Party::P0 {
                    (&o0, &o1)
                } else {
                    (&o1, &o0)
                };
                assert_eq!((s.n, v.n), (n, n));
                let (OtSide::Sender { k0, k1 }, OtSide::Receiver { choices, pads }) =
                    (&s.side, &v.side)
                else {
                    panic!("{r:?}: the wrong party sends");
                };
                let mut ones = 0;
                for j in 0..n {
                    let c = (choices[j / 64] >> (j % 64)) & 1 == 1;
                    ones += usize::from(c);
                    assert_eq!(pads[j], if c { k1[j] } else { k0[j] }, "{r:?} OT {j}");
                    assert_ne!(k0[j], k1[j], "{r:?} OT {j}: equal pads");
                }
                // Random choices: neither all 0 nor all 1 on many OTs.
                assert!(
                    n < 20 || (ones > 0 && ones < n),
                    "{r:?}: {ones} of {n} chose 1"
                );
            }
            (CorrelationShare::OneOf16Ots(o0), CorrelationShare::OneOf16Ots(o1)) => {
                let Request::OneOf16Ots { count } = r else {
                    panic!("{r:?} served with 1-of-16 OTs");
                };
                assert_eq!((o0.count, o1.count), (*count, *count));
                let (OneOf16Side::Sender { pads, masks }, OneOf16Side::Receiver { choices, got }) =
                    (&o0.side, &o1.side)
                else {
                    panic!("{r:?}: party 0 must send");
                };
                let mut seen = [0usize; 16];
                let mut mask_ones = 0;
                let mut distinct = 0;
                for i in 0..*count {
                    let c = (choices[i / 16] >> (4 * (i % 16))) & 15;
                    seen[c as usize] += 1;
                    let all = (pads[i / 2] >> (32 * (i % 2))) & 0xffff_ffff;
                    let pad = |x: u64| (all >> (2 * x)) & 3;
                    let mine = (got[i / 32] >> (2 * (i % 32))) & 3;
                    assert_eq!(mine, pad(c), "{r:?} OT {i}");
                    distinct += usize::from((0..16).any(|x| pad(x) != pad(c)));
                    mask_ones += ((masks[i / 32] >> (2 * (i % 32))) & 3).count_ones() as usize;
                }
                // Pads and masks are random: on many OTs, not constant.
                if *count >= 64 {
                    assert!(seen.iter().filter(|&&k| k > 0).count() > 8, "{seen:?}");
                    assert!(
                        distinct > count * 9 / 10,
                        "{r:?}: {distinct} OTs with distinct pads"
                    );
                    assert!(mask_ones > 0 && mask_ones < 2 * count, "{r:?} masks");
                }
            }
            _ => panic!("wrong kind for {r:?}"),
        }
    }
    assert_eq!(s0.remaining(), 0);
    assert_eq!(s1.remaining(), 0);
}
