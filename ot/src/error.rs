//! Errors: malformed messages from the peer, messages out of order, and
//! inputs that do not fit the OTs they are meant to use.
//!
//! No error carries a secret: only lengths, counts, indices and names.

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A message ended before its fields did, or has bytes left over.
    #[error("malformed {what}: expected {expected} bytes, got {got}")]
    Length {
        /// The message kind.
        what: &'static str,
        /// The length its header implies.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// A message starts with another message's tag.
    #[error("malformed {what}: it starts with tag {got:#04x}, not {expected:#04x} (a different message, or messages out of order)")]
    Tag {
        /// The message kind expected.
        what: &'static str,
        /// Its tag.
        expected: u8,
        /// The tag received.
        got: u8,
    },
    /// A group element that does not decode.
    #[error("malformed {what}: point {index} is not a canonical Ristretto255 encoding")]
    BadPoint {
        /// The message kind.
        what: &'static str,
        /// Which point.
        index: usize,
    },
    /// The identity element where an honest peer sends a random element.
    #[error("malformed {what}: point {index} is the identity element, which an honest peer sends with probability 2^-252")]
    IdentityPoint {
        /// The message kind.
        what: &'static str,
        /// Which point.
        index: usize,
    },
    /// A field holds a value outside its range (a count too large, padding
    /// bits that must be zero, an unknown parameter).
    #[error("malformed {what}: {detail}")]
    Invalid {
        /// The message kind.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The message is well formed but does not fit this party's state: a
    /// different count of OTs, or the wrong batch.
    #[error("unexpected {what}: {detail}")]
    Mismatch {
        /// The message kind.
        what: &'static str,
        /// What differs.
        detail: String,
    },
    /// The caller's own inputs do not fit (lengths disagree): a bug in the
    /// caller, reported rather than panicking.
    #[error("invalid input to {what}: {detail}")]
    Input {
        /// The function called.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
