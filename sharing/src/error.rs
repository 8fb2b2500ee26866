//! Errors of the secret-sharing engine.
//!
//! Messages never contain share values, masks or plaintext values derived
//! from shares: only shapes, lengths, parameters and kinds.

use thiserror::Error;

/// Everything that can go wrong in the sharing engine.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SharingError {
    /// Two tensors (or a tensor and a message) have incompatible shapes.
    #[error("shape mismatch in {op}: {left:?} vs {right:?}")]
    ShapeMismatch {
        op: &'static str,
        left: Vec<usize>,
        right: Vec<usize>,
    },
    /// The data length does not match the product of the shape.
    #[error("tensor data has {len} elements but shape {shape:?} needs {expected}")]
    BadLength {
        len: usize,
        shape: Vec<usize>,
        expected: usize,
    },
    /// A shape is not supported by an operation (e.g. matmul of 3-d tensors).
    #[error("unsupported shape for {op}: {shape:?}")]
    UnsupportedShape { op: &'static str, shape: Vec<usize> },
    /// A real number cannot be encoded in the fixed-point format.
    #[error("cannot encode value in fixed point with {frac_bits} fractional bits: {reason}")]
    Encode {
        frac_bits: u32,
        reason: &'static str,
    },
    /// A fixed-point parameter is out of range.
    #[error("invalid fixed-point parameter: {0}")]
    BadParameter(&'static str),
    /// The two shares belong to the same party, or a party received its own role.
    #[error("party mismatch: {0}")]
    PartyMismatch(&'static str),
    /// A message of an unexpected kind arrived.
    #[error("unexpected message: expected {expected}, got {got}")]
    UnexpectedMessage {
        expected: &'static str,
        got: &'static str,
    },
    /// The correlated-randomness source could not satisfy a request.
    #[error("correlated randomness: {0}")]
    Correlations(String),
    /// The operating system RNG failed.
    #[error("operating system randomness unavailable")]
    OsRng,
    /// The transport between the two parties failed (driver / executor).
    #[error("exchange failed: {0}")]
    Exchange(String),
    /// The memory for a tensor could not be allocated.
    #[error("cannot allocate a tensor of shape {shape:?}: out of memory")]
    OutOfMemory { shape: Vec<usize> },
    /// Polynomial fitting failed (bad degree, empty domain, singular system).
    #[error("polynomial fit: {0}")]
    Fit(&'static str),
}

/// Result alias for the sharing engine.
pub type Result<T> = std::result::Result<T, SharingError>;
