//! Byte encoding of messages: a fixed header, then residues bit-packed at the
//! width of their prime. Decoding checks every length and range and returns
//! [`WireError`]s; it never panics.

use crate::layout::Layout;
use crate::params::Params;

pub(crate) const MAGIC: [u8; 4] = *b"VRLW";
pub(crate) const VERSION: u8 = 1;
/// magic, version, kind, fingerprint, then the layout: batch, k, n (u32 each),
/// w_bits, d0, d1, d2, digit_bits, digits, result primes (u32 each), flood
/// (u128).
pub(crate) const HEADER_BYTES: usize = 4 + 1 + 1 + 8 + 4 * 10 + 16;

/// What is wrong with a received message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message is {got} bytes, expected {expected}")]
    Length { expected: usize, got: usize },
    #[error("message does not start with the RLWE magic bytes")]
    Magic,
    #[error("message version {0} is not supported (expected {VERSION})")]
    Version(u8),
    #[error("message kind {got} where kind {expected} was expected")]
    Kind { expected: u8, got: u8 },
    #[error("message was made for other parameters (fingerprint {got:#018x}, expected {expected:#018x})")]
    Parameters { expected: u64, got: u64 },
    #[error("message was made for another layout than this party expects")]
    Layout,
    #[error("the {0} does not have the size its layout gives")]
    Size(&'static str),
    #[error("coefficient {index} of prime {prime} is not below the prime")]
    Range { index: usize, prime: usize },
}

pub(crate) struct Writer {
    bytes: Vec<u8>,
    acc: u128,
    nbits: u32,
}

impl Writer {
    pub fn new(capacity: usize) -> Writer {
        Writer {
            bytes: Vec::with_capacity(capacity),
            acc: 0,
            nbits: 0,
        }
    }

    pub fn header(params: &Params, kind: u8, layout: Option<&Layout>, capacity: usize) -> Writer {
        let mut w = Writer::new(capacity);
        w.bytes.extend_from_slice(&MAGIC);
        w.bytes.push(VERSION);
        w.bytes.push(kind);
        w.bytes
            .extend_from_slice(&params.fingerprint().to_le_bytes());
        let fields = layout_fields(layout);
        for f in fields {
            w.bytes.extend_from_slice(&f.to_le_bytes());
        }
        w.bytes
            .extend_from_slice(&layout.map_or(0, |l| l.flood).to_le_bytes());
        w
    }

    pub fn raw(&mut self, data: &[u8]) {
        debug_assert_eq!(self.nbits, 0);
        self.bytes.extend_from_slice(data);
    }

    /// Appends the low `bits` bits of `v` (bits <= 64).
    #[inline]
    pub fn bits(&mut self, v: u64, bits: u32) {
        self.acc |= (v as u128) << self.nbits;
        self.nbits += bits;
        while self.nbits >= 64 {
            self.bytes
                .extend_from_slice(&(self.acc as u64).to_le_bytes());
            self.acc >>= 64;
            self.nbits -= 64;
        }
    }

    /// Flushes a partial byte group so the next field starts on a byte.
    pub fn align(&mut self) {
        while self.nbits > 0 {
            self.bytes.push(self.acc as u8);
            self.acc >>= 8;
            self.nbits = self.nbits.saturating_sub(8);
        }
        self.acc = 0;
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.align();
        self.bytes
    }
}

fn layout_fields(layout: Option<&Layout>) -> [u32; 10] {
    match layout {
        None => [0; 10],
        Some(l) => [
            l.shape.batch as u32,
            l.shape.k as u32,
            l.shape.n as u32,
            l.w_bits,
            l.d0 as u32,
            l.d1 as u32,
            l.d2 as u32,
            l.digit_bits,
            l.digits as u32,
            l.result_levels as u32,
        ],
    }
}

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    acc: u128,
    nbits: u32,
}

impl<'a> Reader<'a> {
    /// Checks the total length and the header, and positions after it.
    pub fn open(
        bytes: &'a [u8],
        params: &Params,
        kind: u8,
        layout: Option<&Layout>,
        expected_len: usize,
    ) -> Result<Reader<'a>, WireError> {
        if bytes.len() < HEADER_BYTES || bytes[..4] != MAGIC {
            if bytes.len() >= 4 && bytes[..4] != MAGIC {
                return Err(WireError::Magic);
            }
            return Err(WireError::Length {
                expected: expected_len,
                got: bytes.len(),
            });
        }
        if bytes[4] != VERSION {
            return Err(WireError::Version(bytes[4]));
        }
        if bytes[5] != kind {
            return Err(WireError::Kind {
                expected: kind,
                got: bytes[5],
            });
        }
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&bytes[6..14]);
        let fp = u64::from_le_bytes(fp);
        if fp != params.fingerprint() {
            return Err(WireError::Parameters {
                expected: params.fingerprint(),
                got: fp,
            });
        }
        let mut expect = Vec::with_capacity(HEADER_BYTES - 14);
        for f in layout_fields(layout) {
            expect.extend_from_slice(&f.to_le_bytes());
        }
        expect.extend_from_slice(&layout.map_or(0, |l| l.flood).to_le_bytes());
        if bytes[14..HEADER_BYTES] != expect[..] {
            return Err(WireError::Layout);
        }
        if bytes.len() != expected_len {
            return Err(WireError::Length {
                expected: expected_len,
                got: bytes.len(),
            });
        }
        Ok(Reader {
            bytes,
            pos: HEADER_BYTES,
            acc: 0,
            nbits: 0,
        })
    }

    pub fn raw<const K: usize>(&mut self) -> [u8; K] {
        let mut out = [0u8; K];
        out.copy_from_slice(&self.bytes[self.pos..self.pos + K]);
        self.pos += K;
        out
    }

    /// Reads `bits` bits (bits <= 64). The caller checked the total length.
    #[inline]
    pub fn bits(&mut self, bits: u32) -> u64 {
        while self.nbits < bits {
            let take = (self.bytes.len() - self.pos).min(8);
            let mut word = [0u8; 8];
            word[..take].copy_from_slice(&self.bytes[self.pos..self.pos + take]);
            self.pos += take;
            self.acc |= (u64::from_le_bytes(word) as u128) << self.nbits;
            self.nbits += 8 * take as u32;
            if take == 0 {
                break;
            }
        }
        let v = (self.acc & ((1u128 << bits) - 1)) as u64;
        self.acc >>= bits;
        self.nbits = self.nbits.saturating_sub(bits);
        v
    }

    /// Reads `count` residues of each of the first `levels` primes
    /// (prime-major) into `out`, checking each is below its prime.
    pub fn residues(
        &mut self,
        params: &Params,
        levels: usize,
        count: usize,
        out: &mut [u64],
    ) -> Result<(), WireError> {
        for (i, md) in params.moduli().iter().enumerate().take(levels) {
            let bits = params.residue_bits(i);
            let p = md.value();
            for (j, slot) in out[i * count..(i + 1) * count].iter_mut().enumerate() {
                let v = self.bits(bits);
                if v >= p {
                    return Err(WireError::Range { index: j, prime: i });
                }
                *slot = v;
            }
        }
        Ok(())
    }
}

/// Appends `count` residues of each of the first `levels` primes
/// (prime-major) from `data`.
pub(crate) fn write_residues(
    w: &mut Writer,
    params: &Params,
    levels: usize,
    count: usize,
    data: &[u64],
) {
    for i in 0..levels {
        let bits = params.residue_bits(i);
        for &v in &data[i * count..(i + 1) * count] {
            w.bits(v, bits);
        }
    }
}

/// Bytes taken by `count` residues of every prime, after alignment.
pub(crate) fn residue_bytes(params: &Params, count: usize) -> usize {
    (count * params.coefficient_bits() as usize).div_ceil(8)
}
