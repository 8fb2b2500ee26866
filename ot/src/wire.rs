//! Bounds-checked encoding of messages. Every message is a one-byte tag,
//! then fixed-width little-endian fields; decoders check every length
//! before they allocate and reject trailing bytes.

use crate::block::Block;
use crate::error::{Error, Result};

/// Message tags (one per message kind, so a message handed to the wrong
/// decoder is a clear error).
pub(crate) mod tag {
    pub const BASE_HELLO: u8 = 0x01;
    pub const BASE_REPLY: u8 = 0x02;
    // 0x03 was IKNP's extension message (IKNP is SoftSpoken with k = 1 now):
    // retired, never reused, so an old peer's message is refused by tag.
    pub const CHOSEN: u8 = 0x04;
    pub const FLIPS: u8 = 0x05;
    pub const ONE_OF_N: u8 = 0x06;
    pub const CORRECTIONS: u8 = 0x07;
    pub const PACKED: u8 = 0x08;
    pub const SOFT_EXTEND: u8 = 0x09;
}

/// Appends fields to a byte buffer.
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new(tag: u8, capacity: usize) -> Writer {
        Writer::after(Vec::new(), tag, capacity)
    }
    /// A message appended to the bytes of `buf` (reserving `capacity`
    /// more for its fields): encoding into a buffer that carries it on.
    pub fn after(mut buf: Vec<u8>, tag: u8, capacity: usize) -> Writer {
        buf.reserve(capacity + 1);
        buf.push(tag);
        Writer { buf }
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    pub fn blocks(&mut self, blocks: &[Block]) {
        self.buf.reserve(blocks.len() * 16);
        for b in blocks {
            self.buf.extend_from_slice(&b.to_bytes());
        }
    }
    pub fn u64s(&mut self, words: &[u64]) {
        self.buf.reserve(words.len() * 8);
        for w in words {
            self.buf.extend_from_slice(&w.to_le_bytes());
        }
    }
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads fields from a message, checking every length.
pub(crate) struct Reader<'a> {
    what: &'static str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Checks the tag and starts after it.
    pub fn new(what: &'static str, expected_tag: u8, bytes: &'a [u8]) -> Result<Reader<'a>> {
        match bytes.first() {
            None => Err(Error::Length {
                what,
                expected: 1,
                got: 0,
            }),
            Some(&t) if t != expected_tag => Err(Error::Tag {
                what,
                expected: expected_tag,
                got: t,
            }),
            Some(_) => Ok(Reader {
                what,
                bytes,
                pos: 1,
            }),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(Error::Length {
                what: self.what,
                expected: self.pos.saturating_add(n),
                got: self.bytes.len(),
            }),
        }
    }

    pub fn u64(&mut self) -> Result<u64> {
        let s = self.take(8)?;
        Ok(u64::from_le_bytes(s.try_into().expect("8 bytes")))
    }

    /// A count that must be at most `max` (so later lengths cannot
    /// overflow), as a `usize`.
    pub fn count(&mut self, max: u64, field: &str) -> Result<usize> {
        let v = self.u64()?;
        if v > max {
            return Err(Error::Invalid {
                what: self.what,
                detail: format!("{field} is {v}, more than the limit {max}"),
            });
        }
        usize::try_from(v).map_err(|_| Error::Invalid {
            what: self.what,
            detail: format!("{field} is {v}, more than this machine can address"),
        })
    }

    /// Checks that exactly `n` more bytes remain (before reading a body
    /// whose size the header gave), so nothing is allocated for a message
    /// that is too short.
    pub fn expect_remaining(&self, n: usize) -> Result<()> {
        let have = self.bytes.len() - self.pos;
        if have != n {
            return Err(Error::Length {
                what: self.what,
                expected: self.pos.saturating_add(n),
                got: self.bytes.len(),
            });
        }
        Ok(())
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        self.take(n)
    }

    pub fn blocks(&mut self, n: usize) -> Result<Vec<Block>> {
        let mut out = Vec::new();
        self.blocks_into(n, &mut out)?;
        Ok(out)
    }

    /// [`Reader::blocks`] into a reused buffer (replacing its contents).
    pub fn blocks_into(&mut self, n: usize, out: &mut Vec<Block>) -> Result<()> {
        let len = n.checked_mul(16).ok_or(Error::Invalid {
            what: self.what,
            detail: format!("{n} blocks overflow"),
        })?;
        let s = self.take(len)?;
        out.clear();
        out.extend(
            s.chunks_exact(16)
                .map(|c| Block::from_bytes(c.try_into().expect("16 bytes"))),
        );
        Ok(())
    }

    /// [`Reader::u64s`] into a reused buffer (replacing its contents).
    pub fn u64s_into(&mut self, n: usize, out: &mut Vec<u64>) -> Result<()> {
        let len = n.checked_mul(8).ok_or(Error::Invalid {
            what: self.what,
            detail: format!("{n} words overflow"),
        })?;
        let s = self.take(len)?;
        out.clear();
        out.extend(
            s.chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))),
        );
        Ok(())
    }

    /// Rejects trailing bytes.
    pub fn finish(self) -> Result<()> {
        if self.pos != self.bytes.len() {
            return Err(Error::Length {
                what: self.what,
                expected: self.pos,
                got: self.bytes.len(),
            });
        }
        Ok(())
    }
}

/// A length in bytes of `count` items of `size` bytes, or an error.
pub(crate) fn size_of_items(what: &'static str, count: usize, size: usize) -> Result<usize> {
    count.checked_mul(size).ok_or(Error::Invalid {
        what,
        detail: format!("{count} items of {size} bytes overflow"),
    })
}
