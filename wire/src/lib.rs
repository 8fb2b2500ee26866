//! The wire format of values exchanged between parties: a small tagged
//! binary encoding (little-endian, length-prefixed). Decoding checks every
//! length against the bytes present and a size limit, so a malformed or
//! hostile message is an error, never a panic or a huge allocation.
//!
//! A frame is [`VERSION`] (one byte), a count of values (u64), then each
//! value as its [`tag`] and body. Correlation requests inside dealer
//! corrections carry a [`request_tag`]. The tests pin one golden encoding
//! per value kind: a change to the format changes them, and [`VERSION`].
//!
//! This crate is the only code that parses the values a peer sends: the
//! executor decodes every frame here, into a typed [`WireError`] when the
//! bytes do not fit. (The `net` crate cuts frames out of the TLS stream and
//! reads the hello; it never looks inside a frame.) It does no I/O.

use num_bigint::BigUint;
use sharing::{
    BeaverMsg, CorrelationRequest, DealerMsg, OpenMsg, Party, RingTensor, SeedMsg, SharingError,
};

/// Why a peer's bytes do not decode. Messages name kinds, tags and
/// lengths, never the bytes themselves.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message too large")]
    TooLarge,
    #[error(
        "wire format {found}, but this veil speaks format {VERSION} (a different veil version)"
    )]
    Version { found: u8 },
    #[error("message truncated")]
    Truncated,
    #[error("length field exceeds the message")]
    LengthExceedsMessage,
    #[error("too many dimensions")]
    TooManyDimensions,
    #[error("shape overflows")]
    ShapeOverflows,
    #[error("tensor length does not match its shape")]
    LengthMismatch,
    /// The ring tensor itself is malformed.
    #[error("{0}")]
    Tensor(#[source] SharingError),
    #[error("unknown party {0}")]
    UnknownParty(u8),
    #[error("bad truncation bits")]
    BadTruncationBits,
    #[error("bad bit count")]
    BadBitCount,
    #[error("unknown correlation tag {0}")]
    UnknownRequestTag(u8),
    #[error("unknown value tag {0}")]
    UnknownTag(u8),
    /// A name (of a dimension or an input) is not UTF-8.
    #[error("{0} name is not UTF-8")]
    NotUtf8(&'static str),
    #[error("a public input's digest is not 32 bytes")]
    BadDigest,
    #[error("trailing bytes after the message")]
    TrailingBytes,
    #[error("bad convolution window")]
    BadWindow,
}

/// Largest single message accepted (bytes).
pub const MAX_MESSAGE_BYTES: usize = 1 << 31;

/// The wire format's version, the first byte of every frame.
pub const VERSION: u8 = 5;

/// The tag of each value kind.
pub mod tag {
    pub const RING: u8 = 1;
    pub const BEAVER: u8 = 2;
    pub const CLEAR: u8 = 3;
    pub const CIPHERS: u8 = 4;
    pub const PUBLIC_KEY: u8 = 5;
    pub const DEALER: u8 = 6;
    pub const SESSION: u8 = 7;
    pub const DEALER_CHUNK: u8 = 8;
    pub const RLWE_PUBLIC_KEY: u8 = 9;
    pub const RLWE_QUERY: u8 = 10;
    pub const RLWE_RESPONSE: u8 = 11;
    pub const OT: u8 = 12;
    pub const RLWE_KEPT_KEY: u8 = 13;
}

/// The tag of each correlation request in a dealer's corrections.
pub mod request_tag {
    pub const ELEMENTWISE_TRIPLE: u8 = 0;
    pub const MATMUL_TRIPLE: u8 = 1;
    pub const TRUNC: u8 = 2;
    pub const HOLDER_MATMUL_TRIPLE: u8 = 3;
    pub const MASKED_BITS: u8 = 4;
    pub const AND_TRIPLES: u8 = 5;
    pub const DA_BITS: u8 = 6;
    pub const RANDOM_OTS: u8 = 7;
    pub const ONE_OF_16_OTS: u8 = 8;
    pub const CONV_TRIPLE: u8 = 9;
    pub const HOLDER_CONV_TRIPLE: u8 = 10;
    pub const DCF_MSB: u8 = 11;
}

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
        chunks: u64,
    },
    /// Party 1's corrections for one instruction that uses correlations
    /// (`group` counts those instructions from 0), streamed by the dealer
    /// after its first message.
    DealerChunk {
        group: u64,
        corrections: Vec<DealerMsg>,
    },
    /// An RLWE message (`rlwe`'s own encoding: a header naming its kind,
    /// parameters and layout, then residues below their primes). Framed
    /// here; its body is parsed, with those checks, by `rlwe`'s
    /// `from_bytes`, which needs the parameters and layout the receiver
    /// expects.
    Rlwe {
        kind: RlweKind,
        bytes: Vec<u8>,
    },
    /// Session metadata: sizes of symbolic dimensions, and a digest of
    /// every public input the sender was given.
    Session {
        dims: Vec<(String, u64)>,
        public: Vec<(String, [u8; 32])>,
    },
    /// A message of the dealer-free oblivious-transfer protocol, opaque
    /// here: the `ot` crate's own encoding (tagged and length-checked by
    /// its decoders), carried as bytes.
    Ot(Vec<u8>),
}

/// The three RLWE messages of a product (see `rlwe::matmul`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RlweKind {
    /// The encrypting party's public key, once per session.
    PublicKey,
    /// The encrypted operand.
    Query,
    /// The masked, flooded, re-randomised results.
    Response,
    /// Instead of a public key: the seed naming one the peer kept from an
    /// earlier session on the same connection (`runtime`'s `OtLink`).
    KeptKey,
}

impl RlweKind {
    fn tag(self) -> u8 {
        match self {
            RlweKind::PublicKey => tag::RLWE_PUBLIC_KEY,
            RlweKind::Query => tag::RLWE_QUERY,
            RlweKind::Response => tag::RLWE_RESPONSE,
            RlweKind::KeptKey => tag::RLWE_KEPT_KEY,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RlweKind::PublicKey => "RLWE public key",
            RlweKind::Query => "RLWE query",
            RlweKind::Response => "RLWE response",
            RlweKind::KeptKey => "kept RLWE key",
        }
    }
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
            Wire::Rlwe { kind, .. } => kind.name(),
            Wire::Session { .. } => "session metadata",
            Wire::Ot(_) => "oblivious-transfer message",
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
    fn corrections(&mut self, corrections: &[DealerMsg]) {
        self.u64(corrections.len() as u64);
        for c in corrections {
            self.request(&c.request);
            self.tensors(&c.tensors);
        }
    }
    /// A convolution triple's window: kernel, stride, padding, dilation,
    /// extra end padding, groups, outputs per group, edge padding.
    fn window(&mut self, window: &sharing::correlations::Window) {
        for v in [&window.kernel, &window.stride, &window.padding] {
            self.shape(v);
        }
        self.shape(&window.dilation);
        self.shape(&window.extra);
        self.u64(window.groups as u64);
        self.u64(window.per_group as u64);
        self.u8(window.edge as u8);
    }
    fn request(&mut self, r: &CorrelationRequest) {
        use request_tag as t;
        match r {
            CorrelationRequest::ElementwiseTriple { shape } => {
                self.u8(t::ELEMENTWISE_TRIPLE);
                self.shape(shape);
            }
            CorrelationRequest::MatmulTriple { a_shape, b_shape } => {
                self.u8(t::MATMUL_TRIPLE);
                self.shape(a_shape);
                self.shape(b_shape);
            }
            CorrelationRequest::ConvTriple {
                a_shape,
                window,
                b_shape,
            } => {
                self.u8(t::CONV_TRIPLE);
                self.shape(a_shape);
                self.window(window);
                self.shape(b_shape);
            }
            CorrelationRequest::HolderConvTriple {
                a_shape,
                window,
                b_shape,
                a_holder,
            } => {
                self.u8(t::HOLDER_CONV_TRIPLE);
                self.shape(a_shape);
                self.window(window);
                self.shape(b_shape);
                self.u8(a_holder.index() as u8);
            }
            CorrelationRequest::Trunc { shape, frac_bits } => {
                self.u8(t::TRUNC);
                self.shape(shape);
                self.u64(*frac_bits as u64);
            }
            CorrelationRequest::HolderMatmulTriple {
                a_shape,
                b_shape,
                a_holder,
            } => {
                self.u8(t::HOLDER_MATMUL_TRIPLE);
                self.shape(a_shape);
                self.shape(b_shape);
                self.u8(a_holder.index() as u8);
            }
            CorrelationRequest::MaskedBits { shape } => {
                self.u8(t::MASKED_BITS);
                self.shape(shape);
            }
            CorrelationRequest::AndTriples { bits } => {
                self.u8(t::AND_TRIPLES);
                self.u64(*bits as u64);
            }
            CorrelationRequest::DaBits { shape } => {
                self.u8(t::DA_BITS);
                self.shape(shape);
            }
            CorrelationRequest::RandomOts { shape, sender } => {
                self.u8(t::RANDOM_OTS);
                self.shape(shape);
                self.u8(sender.index() as u8);
            }
            CorrelationRequest::OneOf16Ots { count } => {
                self.u8(t::ONE_OF_16_OTS);
                self.u64(*count as u64);
            }
            CorrelationRequest::DcfMsb { shape, bits } => {
                self.u8(t::DCF_MSB);
                self.shape(shape);
                self.u8(*bits as u8);
            }
        }
    }
}

/// Bytes of `w`'s bulk data (tensors, ciphertexts), to size the frame once.
fn bulk_len(w: &Wire) -> usize {
    let tensors = |ts: &[RingTensor]| ts.iter().map(|t| 8 * t.data().len() + 64).sum::<usize>();
    let dealer = |c: &[DealerMsg]| c.iter().map(|m| tensors(&m.tensors) + 64).sum::<usize>();
    match w {
        Wire::Ring(m) => 8 * m.data.len(),
        Wire::Beaver(b) => 8 * (b.e.data.len() + b.f.data.len()),
        Wire::Clear { data, .. } => 8 * data.len(),
        Wire::Ciphers { cts, .. } => cts.iter().map(|c| c.bits() as usize / 8 + 9).sum(),
        Wire::PublicKey(n) => n.bits() as usize / 8 + 9,
        Wire::Dealer { corrections, .. } | Wire::DealerChunk { corrections, .. } => {
            dealer(corrections)
        }
        Wire::Rlwe { bytes, .. } => bytes.len() + 8,
        Wire::Session { dims, public } => {
            dims.iter().map(|(n, _)| n.len() + 16).sum::<usize>()
                + public.iter().map(|(n, _)| n.len() + 40).sum::<usize>()
        }
        Wire::Ot(bytes) => bytes.len() + 9,
    }
}

pub fn encode<V: std::borrow::Borrow<Wire>>(values: &[V]) -> Vec<u8> {
    let capacity = values
        .iter()
        .map(|v| bulk_len(v.borrow()) + 128)
        .sum::<usize>();
    let mut w = W(Vec::with_capacity(capacity));
    w.u8(VERSION);
    w.u64(values.len() as u64);
    for v in values {
        match v.borrow() {
            Wire::Ring(m) => {
                w.u8(tag::RING);
                w.ring(m);
            }
            Wire::Beaver(b) => {
                w.u8(tag::BEAVER);
                w.ring(&b.e);
                w.ring(&b.f);
            }
            Wire::Clear { shape, data } => {
                w.u8(tag::CLEAR);
                w.shape(shape);
                w.u64(data.len() as u64);
                for x in data {
                    w.0.extend_from_slice(&x.to_le_bytes());
                }
            }
            Wire::Ciphers { shape, cts } => {
                w.u8(tag::CIPHERS);
                w.shape(shape);
                w.u64(cts.len() as u64);
                for c in cts {
                    w.bytes(&c.to_bytes_le());
                }
            }
            Wire::PublicKey(n) => {
                w.u8(tag::PUBLIC_KEY);
                w.bytes(&n.to_bytes_le());
            }
            Wire::Dealer {
                seed,
                corrections,
                chunks,
            } => {
                w.u8(tag::DEALER);
                w.u8(seed.party.index() as u8);
                w.0.extend_from_slice(&seed.seed);
                w.corrections(corrections);
                w.u64(*chunks);
            }
            Wire::DealerChunk { group, corrections } => {
                w.u8(tag::DEALER_CHUNK);
                w.u64(*group);
                w.corrections(corrections);
            }
            Wire::Rlwe { kind, bytes } => {
                w.u8(kind.tag());
                w.bytes(bytes);
            }
            Wire::Session { dims, public } => {
                w.u8(tag::SESSION);
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
            Wire::Ot(bytes) => {
                w.u8(tag::OT);
                w.bytes(bytes);
            }
        }
    }
    w.0
}

struct R<'a> {
    b: &'a [u8],
    at: usize,
}

type D<T> = Result<T, WireError>;

impl R<'_> {
    fn take(&mut self, n: usize) -> D<&[u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or(WireError::Truncated)?;
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
            return Err(WireError::LengthExceedsMessage);
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
            return Err(WireError::TooManyDimensions);
        }
        (0..n).map(|_| self.u64().map(|d| d as usize)).collect()
    }
    fn ring(&mut self) -> D<OpenMsg> {
        let shape = self.shape()?;
        let n = self.count(8)?;
        let expect = shape
            .iter()
            .try_fold(1usize, |a, d| a.checked_mul(*d))
            .ok_or(WireError::ShapeOverflows)?;
        if n != expect {
            return Err(WireError::LengthMismatch);
        }
        let raw = self.take(n * 8)?;
        let data = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        Ok(OpenMsg { data, shape })
    }
    fn tensor(&mut self) -> D<RingTensor> {
        self.ring()?.into_tensor().map_err(WireError::Tensor)
    }
    fn tensors(&mut self) -> D<Vec<RingTensor>> {
        let k = self.count(16)?;
        (0..k).map(|_| self.tensor()).collect()
    }
    fn corrections(&mut self) -> D<Vec<DealerMsg>> {
        let n = self.count(1)?;
        let mut corrections = Vec::with_capacity(n);
        for _ in 0..n {
            let request = self.request()?;
            corrections.push(DealerMsg {
                request,
                tensors: self.tensors()?,
            });
        }
        Ok(corrections)
    }
    fn party(&mut self) -> D<Party> {
        match self.u8()? {
            0 => Ok(Party::P0),
            1 => Ok(Party::P1),
            p => Err(WireError::UnknownParty(p)),
        }
    }
    /// A convolution triple's window (see `W::window`).
    fn window(&mut self) -> D<sharing::correlations::Window> {
        let (kernel, stride, padding) = (self.shape()?, self.shape()?, self.shape()?);
        let (dilation, extra) = (self.shape()?, self.shape()?);
        let count = |v: u64| usize::try_from(v).map_err(|_| WireError::BadWindow);
        let groups = count(self.u64()?)?;
        let per_group = count(self.u64()?)?;
        let edge = match self.u8()? {
            0 => false,
            1 => true,
            _ => return Err(WireError::BadWindow),
        };
        Ok(sharing::correlations::Window {
            kernel,
            stride,
            padding,
            dilation,
            groups,
            per_group,
            edge,
            extra,
        })
    }
    fn request(&mut self) -> D<CorrelationRequest> {
        use request_tag as t;
        Ok(match self.u8()? {
            t::ELEMENTWISE_TRIPLE => CorrelationRequest::ElementwiseTriple {
                shape: self.shape()?,
            },
            t::MATMUL_TRIPLE => CorrelationRequest::MatmulTriple {
                a_shape: self.shape()?,
                b_shape: self.shape()?,
            },
            t::TRUNC => CorrelationRequest::Trunc {
                shape: self.shape()?,
                frac_bits: u32::try_from(self.u64()?).map_err(|_| WireError::BadTruncationBits)?,
            },
            t::HOLDER_MATMUL_TRIPLE => CorrelationRequest::HolderMatmulTriple {
                a_shape: self.shape()?,
                b_shape: self.shape()?,
                a_holder: self.party()?,
            },
            t::MASKED_BITS => CorrelationRequest::MaskedBits {
                shape: self.shape()?,
            },
            t::AND_TRIPLES => CorrelationRequest::AndTriples {
                bits: usize::try_from(self.u64()?).map_err(|_| WireError::BadBitCount)?,
            },
            t::DA_BITS => CorrelationRequest::DaBits {
                shape: self.shape()?,
            },
            t::RANDOM_OTS => CorrelationRequest::RandomOts {
                shape: self.shape()?,
                sender: self.party()?,
            },
            t::ONE_OF_16_OTS => CorrelationRequest::OneOf16Ots {
                count: usize::try_from(self.u64()?).map_err(|_| WireError::BadBitCount)?,
            },
            t::DCF_MSB => CorrelationRequest::DcfMsb {
                shape: self.shape()?,
                bits: match self.u8()? {
                    b @ 1..=63 => u32::from(b),
                    _ => return Err(WireError::BadBitCount),
                },
            },
            t::CONV_TRIPLE => CorrelationRequest::ConvTriple {
                a_shape: self.shape()?,
                window: self.window()?,
                b_shape: self.shape()?,
            },
            t::HOLDER_CONV_TRIPLE => CorrelationRequest::HolderConvTriple {
                a_shape: self.shape()?,
                window: self.window()?,
                b_shape: self.shape()?,
                a_holder: self.party()?,
            },
            t => return Err(WireError::UnknownRequestTag(t)),
        })
    }
}

pub fn decode(bytes: &[u8]) -> Result<Vec<Wire>, WireError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge);
    }
    let mut r = R { b: bytes, at: 0 };
    match r.u8()? {
        VERSION => {}
        found => return Err(WireError::Version { found }),
    }
    let n = r.count(1)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(match r.u8()? {
            tag::RING => Wire::Ring(r.ring()?),
            tag::BEAVER => Wire::Beaver(BeaverMsg {
                e: r.ring()?,
                f: r.ring()?,
            }),
            tag::CLEAR => {
                let shape = r.shape()?;
                let n = r.count(8)?;
                let raw = r.take(n * 8)?;
                let data = raw
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect();
                Wire::Clear { shape, data }
            }
            tag::CIPHERS => {
                let shape = r.shape()?;
                let n = r.count(8)?;
                let cts = (0..n)
                    .map(|_| r.bytes().map(|b| BigUint::from_bytes_le(&b)))
                    .collect::<D<_>>()?;
                Wire::Ciphers { shape, cts }
            }
            tag::PUBLIC_KEY => Wire::PublicKey(BigUint::from_bytes_le(&r.bytes()?)),
            tag::DEALER => {
                let party = r.party()?;
                let seed: [u8; 32] = r.take(32)?.try_into().expect("32 bytes");
                let corrections = r.corrections()?;
                Wire::Dealer {
                    seed: SeedMsg { party, seed },
                    corrections,
                    chunks: r.u64()?,
                }
            }
            tag::DEALER_CHUNK => {
                let group = r.u64()?;
                let corrections = r.corrections()?;
                Wire::DealerChunk { group, corrections }
            }
            tag::SESSION => {
                let n = r.count(9)?;
                let dims = (0..n)
                    .map(|_| {
                        let name = String::from_utf8(r.bytes()?)
                            .map_err(|_| WireError::NotUtf8("dimension"))?;
                        Ok((name, r.u64()?))
                    })
                    .collect::<D<_>>()?;
                let n = r.count(41)?;
                let public = (0..n)
                    .map(|_| {
                        let name = String::from_utf8(r.bytes()?)
                            .map_err(|_| WireError::NotUtf8("input"))?;
                        let digest: [u8; 32] =
                            r.bytes()?.try_into().map_err(|_| WireError::BadDigest)?;
                        Ok((name, digest))
                    })
                    .collect::<D<_>>()?;
                Wire::Session { dims, public }
            }
            tag::RLWE_PUBLIC_KEY => Wire::Rlwe {
                kind: RlweKind::PublicKey,
                bytes: r.bytes()?,
            },
            tag::RLWE_QUERY => Wire::Rlwe {
                kind: RlweKind::Query,
                bytes: r.bytes()?,
            },
            tag::RLWE_RESPONSE => Wire::Rlwe {
                kind: RlweKind::Response,
                bytes: r.bytes()?,
            },
            tag::RLWE_KEPT_KEY => Wire::Rlwe {
                kind: RlweKind::KeptKey,
                bytes: r.bytes()?,
            },
            tag::OT => Wire::Ot(r.bytes()?),
            t => return Err(WireError::UnknownTag(t)),
        });
    }
    if r.at != bytes.len() {
        return Err(WireError::TrailingBytes);
    }
    Ok(out)
}

/// Bytes of an oblivious-transfer frame before its payload: the version,
/// the value count (1), the tag and the payload's length.
pub const OT_HEADER: usize = 1 + 8 + 1 + 8;

/// A frame of one [`Wire::Ot`] value whose payload the caller appends (with
/// room for `capacity` payload bytes), then seals with
/// [`seal_ot_frame`]: the bytes `encode(&[Wire::Ot(payload)])` gives, built
/// where the payload is written instead of copied there.
pub fn ot_frame(capacity: usize) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(OT_HEADER + capacity));
    w.u8(VERSION);
    w.u64(1);
    w.u8(tag::OT);
    w.u64(0);
    w.0
}

/// Writes the payload's length into a frame from [`ot_frame`].
///
/// # Panics
/// If `frame` is shorter than [`OT_HEADER`] (not from [`ot_frame`]).
pub fn seal_ot_frame(frame: &mut [u8]) {
    let len = (frame.len() - OT_HEADER) as u64;
    frame[OT_HEADER - 8..OT_HEADER].copy_from_slice(&len.to_le_bytes());
}

/// The payload of a frame holding one [`Wire::Ot`] value, borrowed (what
/// [`decode`] would give, without the copy); `None` for a well-formed
/// frame of anything else, and [`decode`]'s error for a malformed one.
pub fn ot_payload(frame: &[u8]) -> Result<Option<&[u8]>, WireError> {
    if frame.len() <= MAX_MESSAGE_BYTES && frame.len() >= OT_HEADER {
        let (head, payload) = frame.split_at(OT_HEADER);
        let mut r = R { b: head, at: 0 };
        if (r.u8()?, r.u64()?, r.u8()?, r.u64()?) == (VERSION, 1, tag::OT, payload.len() as u64) {
            return Ok(Some(payload));
        }
    }
    // Anything else: decode's verdict (an error, or other values).
    decode(frame).map(|_| None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ot_frames_are_the_encoding_and_decode_in_place() {
        for payload in [vec![], vec![7u8], (0..=255u8).collect::<Vec<_>>()] {
            let mut frame = ot_frame(3);
            frame.extend_from_slice(&payload);
            seal_ot_frame(&mut frame);
            assert_eq!(frame, encode(&[Wire::Ot(payload.clone())]));
            assert_eq!(ot_payload(&frame), Ok(Some(&payload[..])));
            // A cut or a longer frame is decode's error, never a payload.
            assert!(ot_payload(&frame[..frame.len() - 1]).is_err());
            let mut long = frame.clone();
            long.push(0);
            assert!(ot_payload(&long).is_err());
        }
        for cut in 0..OT_HEADER {
            assert!(ot_payload(&ot_frame(0)[..cut]).is_err());
        }
        // Two values, or another kind: no payload, no error.
        let two = encode(&[Wire::Ot(vec![1]), Wire::Ot(vec![2])]);
        assert_eq!(ot_payload(&two), Ok(None));
        let other = encode(&[Wire::Clear {
            shape: vec![1],
            data: vec![1.0],
        }]);
        assert_eq!(ot_payload(&other), Ok(None));
        let mut bad = encode(&[Wire::Ot(vec![1])]);
        bad[0] = 9;
        assert!(ot_payload(&bad).is_err());
    }

    fn ring(data: Vec<u64>, shape: Vec<usize>) -> RingTensor {
        RingTensor::new(data, shape).unwrap()
    }

    /// One value of every kind, and the request kinds inside corrections.
    fn sample() -> Vec<(&'static str, Wire)> {
        vec![
            (
                "ring",
                Wire::Ring(OpenMsg {
                    data: vec![1, u64::MAX],
                    shape: vec![2],
                }),
            ),
            (
                "beaver",
                Wire::Beaver(BeaverMsg {
                    e: OpenMsg {
                        data: vec![3],
                        shape: vec![],
                    },
                    f: OpenMsg {
                        data: vec![4],
                        shape: vec![1],
                    },
                }),
            ),
            (
                "clear",
                Wire::Clear {
                    shape: vec![],
                    data: vec![0.5],
                },
            ),
            (
                "ciphers",
                Wire::Ciphers {
                    shape: vec![1],
                    cts: vec![BigUint::from(12345u32)],
                },
            ),
            ("public key", Wire::PublicKey(BigUint::from(35u32))),
            (
                "session",
                Wire::Session {
                    dims: vec![("batch".into(), 7)],
                    public: vec![("t".into(), [9; 32])],
                },
            ),
            (
                "dealer",
                Wire::Dealer {
                    seed: SeedMsg {
                        party: Party::P1,
                        seed: [7; 32],
                    },
                    corrections: vec![DealerMsg {
                        request: CorrelationRequest::ElementwiseTriple { shape: vec![1] },
                        tensors: vec![ring(vec![5], vec![1])],
                    }],
                    chunks: 2,
                },
            ),
            (
                "dealer chunk",
                Wire::DealerChunk {
                    group: 3,
                    corrections: vec![
                        DealerMsg {
                            request: CorrelationRequest::MatmulTriple {
                                a_shape: vec![1, 2],
                                b_shape: vec![2],
                            },
                            tensors: vec![ring(vec![6], vec![1])],
                        },
                        DealerMsg {
                            request: CorrelationRequest::Trunc {
                                shape: vec![1],
                                frac_bits: 16,
                            },
                            tensors: vec![ring(vec![1], vec![1]), ring(vec![0], vec![1])],
                        },
                        DealerMsg {
                            request: CorrelationRequest::HolderMatmulTriple {
                                a_shape: vec![1, 1],
                                b_shape: vec![1],
                                a_holder: Party::P1,
                            },
                            tensors: vec![ring(vec![2], vec![1])],
                        },
                        DealerMsg {
                            request: CorrelationRequest::MaskedBits { shape: vec![1] },
                            tensors: vec![ring(vec![8], vec![1])],
                        },
                        DealerMsg {
                            request: CorrelationRequest::AndTriples { bits: 64 },
                            tensors: vec![ring(vec![9], vec![1])],
                        },
                        DealerMsg {
                            request: CorrelationRequest::DaBits { shape: vec![1] },
                            tensors: vec![ring(vec![1], vec![1])],
                        },
                    ],
                },
            ),
            (
                "rlwe public key",
                Wire::Rlwe {
                    kind: RlweKind::PublicKey,
                    bytes: vec![0xab, 0xcd],
                },
            ),
            (
                "rlwe query",
                Wire::Rlwe {
                    kind: RlweKind::Query,
                    bytes: vec![1],
                },
            ),
            (
                "rlwe response",
                Wire::Rlwe {
                    kind: RlweKind::Response,
                    bytes: vec![],
                },
            ),
            ("ot", Wire::Ot(vec![1, 2, 0xff])),
            (
                "rlwe kept key",
                Wire::Rlwe {
                    kind: RlweKind::KeptKey,
                    bytes: vec![7; 16],
                },
            ),
        ]
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The encoding of every value kind, pinned. A change here is a change
    /// of the wire format: bump [`VERSION`] with it.
    #[test]
    fn golden_encodings() {
        let golden = [
            GOLDEN_RING,
            GOLDEN_BEAVER,
            GOLDEN_CLEAR,
            GOLDEN_CIPHERS,
            GOLDEN_PUBLIC_KEY,
            GOLDEN_SESSION,
            GOLDEN_DEALER,
            GOLDEN_DEALER_CHUNK,
            GOLDEN_RLWE_PUBLIC_KEY,
            GOLDEN_RLWE_QUERY,
            GOLDEN_RLWE_RESPONSE,
            GOLDEN_OT,
            GOLDEN_RLWE_KEPT_KEY,
        ];
        assert_eq!(golden.len(), sample().len(), "one golden vector per kind");
        let mut wrong = Vec::new();
        for ((name, value), want) in sample().iter().zip(golden) {
            let got = hex(&encode(&[value]));
            if got != want {
                wrong.push(format!("{name}: {got}"));
            }
            let back = decode(&encode(&[value])).unwrap();
            assert_eq!(back.len(), 1);
            assert_eq!(hex(&encode(&back)), got, "{name} round trip");
        }
        assert!(wrong.is_empty(), "encodings changed:\n{}", wrong.join("\n"));
    }

    /// A convolution triple's request (its window in full) round-trips,
    /// and a window whose edge flag is not 0 or 1 is refused.
    #[test]
    fn convolution_triple_requests_round_trip() {
        let window = sharing::correlations::Window {
            kernel: vec![2, 3],
            stride: vec![1, 2],
            padding: vec![1, 0],
            dilation: vec![2, 1],
            groups: 1,
            per_group: 1,
            edge: false,
            extra: Vec::new(),
        };
        let w = Wire::DealerChunk {
            group: 2,
            corrections: vec![DealerMsg {
                request: CorrelationRequest::ConvTriple {
                    a_shape: vec![1, 2, 5, 6],
                    window,
                    b_shape: vec![12, 3],
                },
                tensors: vec![RingTensor::new(vec![9; 6], vec![2, 3]).unwrap()],
            }],
        };
        let bytes = encode(&[&w]);
        let back = decode(&bytes).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(encode(&back), bytes);
        let Wire::DealerChunk { corrections, .. } = &back[0] else {
            panic!("expected a dealer chunk");
        };
        let Wire::DealerChunk {
            corrections: sent, ..
        } = &w
        else {
            unreachable!()
        };
        assert_eq!(corrections[0].request, sent[0].request);
        // The edge flag: the one byte that differs with `edge: true`.
        let mut edged = w.clone();
        if let Wire::DealerChunk { corrections, .. } = &mut edged {
            if let CorrelationRequest::ConvTriple { window, .. } = &mut corrections[0].request {
                window.edge = true;
            }
        }
        let other = encode(&[&edged]);
        let differ: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != other[i]).collect();
        assert_eq!(differ.len(), 1);
        let mut bad = bytes.clone();
        bad[differ[0]] = 2;
        assert!(decode(&bad).is_err());
    }

    /// An input-holder convolution triple's request (tag 10: the window
    /// as a convolution triple's, then the holder) round-trips for either
    /// holder, and an unknown holder is refused.
    #[test]
    fn input_holder_convolution_triple_requests_round_trip() {
        let window = sharing::correlations::Window {
            kernel: vec![3],
            stride: vec![2],
            padding: vec![1],
            dilation: vec![1],
            groups: 2,
            per_group: 3,
            edge: false,
            extra: Vec::new(),
        };
        let chunk = |a_holder| Wire::DealerChunk {
            group: 1,
            corrections: vec![DealerMsg {
                request: CorrelationRequest::HolderConvTriple {
                    a_shape: vec![2, 4, 7],
                    window: window.clone(),
                    b_shape: vec![6, 6],
                    a_holder,
                },
                tensors: vec![RingTensor::new(vec![5; 8], vec![8, 1]).unwrap()],
            }],
        };
        let encoded: Vec<Vec<u8>> = [Party::P0, Party::P1]
            .into_iter()
            .map(|holder| {
                let w = chunk(holder);
                let bytes = encode(&[&w]);
                let back = decode(&bytes).unwrap();
                assert_eq!(encode(&back), bytes);
                let (
                    Wire::DealerChunk { corrections, .. },
                    Wire::DealerChunk {
                        corrections: sent, ..
                    },
                ) = (&back[0], &w)
                else {
                    panic!("expected dealer chunks");
                };
                assert_eq!(corrections[0].request, sent[0].request);
                bytes
            })
            .collect();
        assert!(encoded[0].contains(&request_tag::HOLDER_CONV_TRIPLE));
        // The holder: the one byte that differs between the two.
        let differ: Vec<usize> = (0..encoded[0].len())
            .filter(|&i| encoded[0][i] != encoded[1][i])
            .collect();
        assert_eq!(differ.len(), 1);
        let mut bad = encoded[0].clone();
        bad[differ[0]] = 2;
        assert_eq!(decode(&bad).err(), Some(WireError::UnknownParty(2)));
    }

    #[test]
    fn random_ot_requests_round_trip() {
        for sender in [Party::P0, Party::P1] {
            let w = Wire::DealerChunk {
                group: 3,
                corrections: vec![DealerMsg {
                    request: CorrelationRequest::RandomOts {
                        shape: vec![2, 3],
                        sender,
                    },
                    tensors: vec![RingTensor::new(vec![7; 6], vec![2, 3]).unwrap()],
                }],
            };
            let bytes = encode(&[&w]);
            assert_eq!(encode(&decode(&bytes).unwrap()), bytes);
            let Wire::DealerChunk { corrections, .. } = &decode(&bytes).unwrap()[0] else {
                panic!("not a chunk");
            };
            assert_eq!(
                corrections[0].request,
                CorrelationRequest::RandomOts {
                    shape: vec![2, 3],
                    sender
                }
            );
        }
    }

    #[test]
    fn dcf_requests_round_trip() {
        let req = CorrelationRequest::DcfMsb {
            shape: vec![2, 3],
            bits: 22,
        };
        let w = Wire::DealerChunk {
            group: 4,
            corrections: vec![DealerMsg {
                request: req.clone(),
                tensors: vec![RingTensor::new(vec![7; 6], vec![2, 3]).unwrap()],
            }],
        };
        let bytes = encode(&[&w]);
        assert_eq!(encode(&decode(&bytes).unwrap()), bytes);
        let Wire::DealerChunk { corrections, .. } = &decode(&bytes).unwrap()[0] else {
            panic!("not a chunk");
        };
        assert_eq!(corrections[0].request, req);
        // A width outside 1 to 63 does not decode.
        for bits in [0, 64] {
            let bad = Wire::DealerChunk {
                group: 4,
                corrections: vec![DealerMsg {
                    request: CorrelationRequest::DcfMsb {
                        shape: vec![2, 3],
                        bits,
                    },
                    tensors: Vec::new(),
                }],
            };
            assert_eq!(
                decode(&encode(&[&bad])).unwrap_err(),
                WireError::BadBitCount
            );
        }
    }

    #[test]
    fn one_of_16_ot_requests_round_trip() {
        let req = CorrelationRequest::OneOf16Ots { count: 48 };
        let w = Wire::DealerChunk {
            group: 1,
            corrections: vec![DealerMsg {
                request: req.clone(),
                tensors: vec![RingTensor::new(vec![5, 6], vec![2]).unwrap()],
            }],
        };
        let bytes = encode(&[&w]);
        assert_eq!(encode(&decode(&bytes).unwrap()), bytes);
        let Wire::DealerChunk { corrections, .. } = &decode(&bytes).unwrap()[0] else {
            panic!("not a chunk");
        };
        assert_eq!(corrections[0].request, req);
    }

    const GOLDEN_OT: &str = "0501000000000000000c03000000000000000102ff";
    const GOLDEN_RING: &str = concat!(
        "05010000000000000001010000000000000002000000000000000200000000000000010000000000",
        "0000ffffffffffffffff"
    );
    const GOLDEN_BEAVER: &str = concat!(
        "05010000000000000002000000000000000001000000000000000300000000000000010000000000",
        "0000010000000000000001000000000000000400000000000000"
    );
    const GOLDEN_CLEAR: &str =
        "0501000000000000000300000000000000000100000000000000000000000000e03f";
    const GOLDEN_CIPHERS: &str = concat!(
        "05010000000000000004010000000000000001000000000000000100000000000000020000000000",
        "00003930"
    );
    const GOLDEN_PUBLIC_KEY: &str = "05010000000000000005010000000000000023";
    const GOLDEN_SESSION: &str = concat!(
        "05010000000000000007010000000000000005000000000000006261746368070000000000000001",
        "00000000000000010000000000000074200000000000000009090909090909090909090909090909",
        "09090909090909090909090909090909"
    );
    const GOLDEN_DEALER: &str = concat!(
        "05010000000000000006010707070707070707070707070707070707070707070707070707070707",
        "07070701000000000000000001000000000000000100000000000000010000000000000001000000",
        "000000000100000000000000010000000000000005000000000000000200000000000000"
    );
    const GOLDEN_DEALER_CHUNK: &str = concat!(
        "05010000000000000008030000000000000006000000000000000102000000000000000100000000",
        "00000002000000000000000100000000000000020000000000000001000000000000000100000000",
        "00000001000000000000000100000000000000060000000000000002010000000000000001000000",
        "00000000100000000000000002000000000000000100000000000000010000000000000001000000",
        "00000000010000000000000001000000000000000100000000000000010000000000000000000000",
        "00000000030200000000000000010000000000000001000000000000000100000000000000010000",
        "00000000000101000000000000000100000000000000010000000000000001000000000000000200",
        "00000000000004010000000000000001000000000000000100000000000000010000000000000001",
        "00000000000000010000000000000008000000000000000540000000000000000100000000000000",
        "01000000000000000100000000000000010000000000000009000000000000000601000000000000",
        "00010000000000000001000000000000000100000000000000010000000000000001000000000000",
        "000100000000000000"
    );

    const GOLDEN_RLWE_PUBLIC_KEY: &str = "050100000000000000090200000000000000abcd";
    const GOLDEN_RLWE_QUERY: &str = "0501000000000000000a010000000000000001";
    const GOLDEN_RLWE_KEPT_KEY: &str =
        "0501000000000000000d100000000000000007070707070707070707070707070707";
    const GOLDEN_RLWE_RESPONSE: &str = "0501000000000000000b0000000000000000";

    #[test]
    fn another_version_is_refused_by_name() {
        let mut bytes = encode(&[Wire::PublicKey(BigUint::from(35u32))]);
        bytes[0] = VERSION + 1;
        let e = decode(&bytes).unwrap_err();
        assert_eq!(e, WireError::Version { found: VERSION + 1 });
        assert!(e.to_string().contains("a different veil version"), "{e}");
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let values: Vec<Wire> = sample().into_iter().map(|(_, v)| v).collect();
        let bytes = encode(&values);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            let _ = decode(&b); // may decode to something else, must not panic
        }
        let mut huge = vec![VERSION];
        huge.extend_from_slice(&1u64.to_le_bytes());
        huge.push(tag::RING);
        huge.extend_from_slice(&1u64.to_le_bytes());
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 2000,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x3172e),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Arbitrary bytes, and arbitrary bytes after a valid frame header
        /// and tag, decode to a value or an error, never a panic or an
        /// allocation beyond the input's size.
        #[test]
        fn decode_takes_arbitrary_bytes(
            raw in proptest::collection::vec(any::<u8>(), 0..256),
            tag in 0u8..10,
            count in 0u64..3,
        ) {
            let _ = decode(&raw);
            let mut framed = vec![VERSION];
            framed.extend_from_slice(&count.to_le_bytes());
            framed.push(tag);
            framed.extend_from_slice(&raw);
            if let Ok(values) = decode(&framed) {
                // What decodes re-encodes to the same bytes.
                prop_assert_eq!(encode(&values), framed);
            }
        }
    }
}
