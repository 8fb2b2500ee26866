//! The wire format of values exchanged between parties: a small tagged
//! binary encoding (little-endian, length-prefixed). Decoding checks every
//! length against the bytes present and a size limit, so a malformed or
//! hostile message is an error, never a panic or a huge allocation.

use crate::sharing::{
    BeaverMsg, CompareDealerMsg, CompareRequest, CorrelationRequest, DealerMsg, OpenMsg, Party,
    RingTensor, SeedMsg,
};
use num_bigint::BigUint;

/// Largest single message accepted (bytes).
pub const MAX_MESSAGE_BYTES: usize = 1 << 31;

#[derive(Clone)]
pub enum Wire {
    Ring(OpenMsg),
    Beaver(BeaverMsg),
    Clear {
        shape: Vec<usize>,
        data: Vec<f64>,
    },
    Ciphers {
        shape: Vec<usize>,
        cts: Vec<BigUint>,
    },
    PublicKey(BigUint),
    /// The dealer's first message to a party: its seed, any corrections
    /// sent with it, and how many [`Wire::DealerChunk`] frames follow.
    Dealer {
        seed: SeedMsg,
        corrections: Vec<DealerMsg>,
        compare: Vec<CompareDealerMsg>,
        chunks: u64,
    },
    /// Party 1's corrections for one instruction that uses correlations
    /// (`group` counts those instructions from 0), streamed by the dealer
    /// after its first message.
    DealerChunk {
        group: u64,
        corrections: Vec<DealerMsg>,
        compare: Vec<CompareDealerMsg>,
    },
    /// Session metadata: sizes of symbolic dimensions, and a digest of
    /// every public input the sender was given.
    Session {
        dims: Vec<(String, u64)>,
        public: Vec<(String, [u8; 32])>,
    },
}

impl std::fmt::Debug for Wire {
    // Never print payloads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

impl Wire {
    pub fn kind(&self) -> &'static str {
        match self {
            Wire::Ring(_) => "ring tensor",
            Wire::Beaver(_) => "Beaver message",
            Wire::Clear { .. } => "clear tensor",
            Wire::Ciphers { .. } => "ciphertexts",
            Wire::PublicKey(_) => "public key",
            Wire::Dealer { .. } => "dealer message",
            Wire::DealerChunk { .. } => "dealer corrections",
            Wire::Session { .. } => "session metadata",
        }
    }
}

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn shape(&mut self, s: &[usize]) {
        self.u64(s.len() as u64);
        for d in s {
            self.u64(*d as u64);
        }
    }
    fn ring(&mut self, m: &OpenMsg) {
        self.shape(&m.shape);
        self.words(&m.data);
    }
    /// A length and the words, written straight into the frame.
    fn words(&mut self, data: &[u64]) {
        self.u64(data.len() as u64);
        // Through a small buffer that stays in L1, so the output is written
        // once (not zeroed first, then overwritten).
        let mut buf = [0u8; 4096];
        for piece in data.chunks(buf.len() / 8) {
            let bytes = &mut buf[..piece.len() * 8];
            for (dst, v) in bytes.chunks_exact_mut(8).zip(piece) {
                dst.copy_from_slice(&v.to_le_bytes());
            }
            self.0.extend_from_slice(bytes);
        }
    }
    fn tensor(&mut self, t: &RingTensor) {
        self.shape(t.shape());
        self.words(t.data());
    }
    fn tensors(&mut self, ts: &[RingTensor]) {
        self.u64(ts.len() as u64);
        for t in ts {
            self.tensor(t);
        }
    }
    fn corrections(&mut self, corrections: &[DealerMsg], compare: &[CompareDealerMsg]) {
        self.u64(corrections.len() as u64);
        for c in corrections {
            self.request(&c.request);
            self.tensors(&c.tensors);
        }
        self.u64(compare.len() as u64);
        for c in compare {
            self.compare_request(&c.request);
            self.tensors(&c.tensors);
        }
    }
    fn compare_request(&mut self, r: &CompareRequest) {
        match r {
            CompareRequest::MaskedBits { shape } => {
                self.u8(0);
                self.shape(shape);
            }
            CompareRequest::AndTriples { bits } => {
                self.u8(1);
                self.u64(*bits as u64);
            }
            CompareRequest::DaBits { shape } => {
                self.u8(2);
                self.shape(shape);
            }
        }
    }
    fn request(&mut self, r: &CorrelationRequest) {
        match r {
            CorrelationRequest::ElementwiseTriple { shape } => {
                self.u8(0);
                self.shape(shape);
            }
            CorrelationRequest::MatmulTriple { a_shape, b_shape } => {
                self.u8(1);
                self.shape(a_shape);
                self.shape(b_shape);
            }
            CorrelationRequest::Trunc { shape, frac_bits } => {
                self.u8(2);
                self.shape(shape);
                self.u64(*frac_bits as u64);
            }
            CorrelationRequest::HolderMatmulTriple {
                a_shape,
                b_shape,
                a_holder,
            } => {
                self.u8(3);
                self.shape(a_shape);
                self.shape(b_shape);
                self.u8(a_holder.index() as u8);
            }
        }
    }
}

/// Bytes of `w`'s bulk data (tensors, ciphertexts), to size the frame once.
fn bulk_len(w: &Wire) -> usize {
    let tensors = |ts: &[RingTensor]| ts.iter().map(|t| 8 * t.data().len() + 64).sum::<usize>();
    let dealer = |c: &[DealerMsg], k: &[CompareDealerMsg]| {
        c.iter().map(|m| tensors(&m.tensors) + 64).sum::<usize>()
            + k.iter().map(|m| tensors(&m.tensors) + 64).sum::<usize>()
    };
    match w {
        Wire::Ring(m) => 8 * m.data.len(),
        Wire::Beaver(b) => 8 * (b.e.data.len() + b.f.data.len()),
        Wire::Clear { data, .. } => 8 * data.len(),
        Wire::Ciphers { cts, .. } => cts.iter().map(|c| c.bits() as usize / 8 + 9).sum(),
        Wire::PublicKey(n) => n.bits() as usize / 8 + 9,
        Wire::Dealer {
            corrections,
            compare,
            ..
        }
        | Wire::DealerChunk {
            corrections,
            compare,
            ..
        } => dealer(corrections, compare),
        Wire::Session { dims, public } => {
            dims.iter().map(|(n, _)| n.len() + 16).sum::<usize>()
                + public.iter().map(|(n, _)| n.len() + 40).sum::<usize>()
        }
    }
}

pub fn encode<V: std::borrow::Borrow<Wire>>(values: &[V]) -> Vec<u8> {
    let capacity = values
        .iter()
        .map(|v| bulk_len(v.borrow()) + 128)
        .sum::<usize>();
    let mut w = W(Vec::with_capacity(capacity));
    w.u64(values.len() as u64);
    for v in values {
        match v.borrow() {
            Wire::Ring(m) => {
                w.u8(1);
                w.ring(m);
            }
            Wire::Beaver(b) => {
                w.u8(2);
                w.ring(&b.e);
                w.ring(&b.f);
            }
            Wire::Clear { shape, data } => {
                w.u8(3);
                w.shape(shape);
                w.u64(data.len() as u64);
                for x in data {
                    w.0.extend_from_slice(&x.to_le_bytes());
                }
            }
            Wire::Ciphers { shape, cts } => {
                w.u8(4);
                w.shape(shape);
                w.u64(cts.len() as u64);
                for c in cts {
                    w.bytes(&c.to_bytes_le());
                }
            }
            Wire::PublicKey(n) => {
                w.u8(5);
                w.bytes(&n.to_bytes_le());
            }
            Wire::Dealer {
                seed,
                corrections,
                compare,
                chunks,
            } => {
                w.u8(6);
                w.u8(seed.party.index() as u8);
                w.0.extend_from_slice(&seed.seed);
                w.corrections(corrections, compare);
                w.u64(*chunks);
            }
            Wire::DealerChunk {
                group,
                corrections,
                compare,
            } => {
                w.u8(8);
                w.u64(*group);
                w.corrections(corrections, compare);
            }
            Wire::Session { dims, public } => {
                w.u8(7);
                w.u64(dims.len() as u64);
                for (name, n) in dims {
                    w.bytes(name.as_bytes());
                    w.u64(*n);
                }
                w.u64(public.len() as u64);
                for (name, digest) in public {
                    w.bytes(name.as_bytes());
                    w.bytes(digest);
                }
            }
        }
    }
    w.0
}

struct R<'a> {
    b: &'a [u8],
    at: usize,
}

type D<T> = Result<T, String>;

impl R<'_> {
    fn take(&mut self, n: usize) -> D<&[u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or("message truncated")?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> D<u8> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> D<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    /// A count of items each at least `min_size` bytes: bounded by what remains.
    fn count(&mut self, min_size: usize) -> D<usize> {
        let n = self.u64()?;
        let remaining = (self.b.len() - self.at) as u64;
        if n.saturating_mul(min_size.max(1) as u64) > remaining {
            return Err("length field exceeds the message".into());
        }
        Ok(n as usize)
    }
    fn bytes(&mut self) -> D<Vec<u8>> {
        let n = self.count(1)?;
        Ok(self.take(n)?.to_vec())
    }
    fn shape(&mut self) -> D<Vec<usize>> {
        let n = self.count(8)?;
        if n > 8 {
            return Err("too many dimensions".into());
        }
        (0..n).map(|_| self.u64().map(|d| d as usize)).collect()
    }
    fn ring(&mut self) -> D<OpenMsg> {
        let shape = self.shape()?;
        let n = self.count(8)?;
        let expect = shape
            .iter()
            .try_fold(1usize, |a, d| a.checked_mul(*d))
            .ok_or("shape overflows")?;
        if n != expect {
            return Err("tensor length does not match its shape".into());
        }
        let raw = self.take(n * 8)?;
        let data = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        Ok(OpenMsg { data, shape })
    }
    fn tensor(&mut self) -> D<RingTensor> {
        self.ring()?.into_tensor().map_err(|e| e.to_string())
    }
    fn tensors(&mut self) -> D<Vec<RingTensor>> {
        let k = self.count(16)?;
        (0..k).map(|_| self.tensor()).collect()
    }
    fn corrections(&mut self) -> D<(Vec<DealerMsg>, Vec<CompareDealerMsg>)> {
        let n = self.count(1)?;
        let mut corrections = Vec::with_capacity(n);
        for _ in 0..n {
            let request = self.request()?;
            corrections.push(DealerMsg {
                request,
                tensors: self.tensors()?,
            });
        }
        let n = self.count(1)?;
        let mut compare = Vec::with_capacity(n);
        for _ in 0..n {
            let request = self.compare_request()?;
            compare.push(CompareDealerMsg {
                request,
                tensors: self.tensors()?,
            });
        }
        Ok((corrections, compare))
    }
    fn compare_request(&mut self) -> D<CompareRequest> {
        Ok(match self.u8()? {
            0 => CompareRequest::MaskedBits {
                shape: self.shape()?,
            },
            1 => CompareRequest::AndTriples {
                bits: usize::try_from(self.u64()?).map_err(|_| "bad bit count")?,
            },
            2 => CompareRequest::DaBits {
                shape: self.shape()?,
            },
            t => return Err(format!("unknown comparison correlation tag {t}")),
        })
    }
    fn request(&mut self) -> D<CorrelationRequest> {
        Ok(match self.u8()? {
            0 => CorrelationRequest::ElementwiseTriple {
                shape: self.shape()?,
            },
            1 => CorrelationRequest::MatmulTriple {
                a_shape: self.shape()?,
                b_shape: self.shape()?,
            },
            2 => CorrelationRequest::Trunc {
                shape: self.shape()?,
                frac_bits: u32::try_from(self.u64()?).map_err(|_| "bad truncation bits")?,
            },
            3 => CorrelationRequest::HolderMatmulTriple {
                a_shape: self.shape()?,
                b_shape: self.shape()?,
                a_holder: match self.u8()? {
                    0 => Party::P0,
                    1 => Party::P1,
                    p => return Err(format!("unknown party {p}")),
                },
            },
            t => return Err(format!("unknown correlation tag {t}")),
        })
    }
}

pub fn decode(bytes: &[u8]) -> Result<Vec<Wire>, String> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err("message too large".into());
    }
    let mut r = R { b: bytes, at: 0 };
    let n = r.count(1)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(match r.u8()? {
            1 => Wire::Ring(r.ring()?),
            2 => Wire::Beaver(BeaverMsg {
                e: r.ring()?,
                f: r.ring()?,
            }),
            3 => {
                let shape = r.shape()?;
                let n = r.count(8)?;
                let raw = r.take(n * 8)?;
                let data = raw
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect();
                Wire::Clear { shape, data }
            }
            4 => {
                let shape = r.shape()?;
                let n = r.count(8)?;
                let cts = (0..n)
                    .map(|_| r.bytes().map(|b| BigUint::from_bytes_le(&b)))
                    .collect::<D<_>>()?;
                Wire::Ciphers { shape, cts }
            }
            5 => Wire::PublicKey(BigUint::from_bytes_le(&r.bytes()?)),
            6 => {
                let party = match r.u8()? {
                    0 => Party::P0,
                    1 => Party::P1,
                    p => return Err(format!("unknown party {p}")),
                };
                let seed: [u8; 32] = r.take(32)?.try_into().expect("32 bytes");
                let (corrections, compare) = r.corrections()?;
                Wire::Dealer {
                    seed: SeedMsg { party, seed },
                    corrections,
                    compare,
                    chunks: r.u64()?,
                }
            }
            8 => {
                let group = r.u64()?;
                let (corrections, compare) = r.corrections()?;
                Wire::DealerChunk {
                    group,
                    corrections,
                    compare,
                }
            }
            7 => {
                let n = r.count(9)?;
                let dims = (0..n)
                    .map(|_| {
                        let name = String::from_utf8(r.bytes()?)
                            .map_err(|_| "dimension name is not UTF-8".to_string())?;
                        Ok((name, r.u64()?))
                    })
                    .collect::<D<_>>()?;
                let n = r.count(41)?;
                let public = (0..n)
                    .map(|_| {
                        let name = String::from_utf8(r.bytes()?)
                            .map_err(|_| "input name is not UTF-8".to_string())?;
                        let digest: [u8; 32] = r
                            .bytes()?
                            .try_into()
                            .map_err(|_| "a public input's digest is not 32 bytes".to_string())?;
                        Ok((name, digest))
                    })
                    .collect::<D<_>>()?;
                Wire::Session { dims, public }
            }
            t => return Err(format!("unknown value tag {t}")),
        });
    }
    if r.at != bytes.len() {
        return Err("trailing bytes after the message".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Wire> {
        vec![
            Wire::Ring(OpenMsg {
                data: vec![1, u64::MAX],
                shape: vec![2],
            }),
            Wire::Clear {
                shape: vec![],
                data: vec![0.5],
            },
            Wire::Ciphers {
                shape: vec![1],
                cts: vec![BigUint::from(12345u32)],
            },
            Wire::PublicKey(BigUint::from(35u32)),
            Wire::Session {
                dims: vec![("batch".into(), 7)],
                public: vec![("t".into(), [9; 32])],
            },
            Wire::Dealer {
                seed: SeedMsg {
                    party: Party::P1,
                    seed: [7; 32],
                },
                corrections: vec![],
                compare: vec![],
                chunks: 2,
            },
            Wire::DealerChunk {
                group: 3,
                corrections: vec![DealerMsg {
                    request: CorrelationRequest::Trunc {
                        shape: vec![2],
                        frac_bits: 16,
                    },
                    tensors: vec![RingTensor::new(vec![1, 2], vec![2]).unwrap()],
                }],
                compare: vec![CompareDealerMsg {
                    request: CompareRequest::AndTriples { bits: 64 },
                    tensors: vec![RingTensor::new(vec![9], vec![1]).unwrap()],
                }],
            },
        ]
    }

    #[test]
    fn round_trip() {
        let v = sample();
        let bytes = encode(&v);
        assert_eq!(encode(&decode(&bytes).unwrap()), bytes);
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let bytes = encode(&sample());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            let _ = decode(&b); // may decode to something else, must not panic
        }
        let mut huge = 1u64.to_le_bytes().to_vec();
        huge.push(1);
        huge.extend_from_slice(&1u64.to_le_bytes());
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
    }
}
