//! RLWE (BFV-style) encryption for two-party linear layers, Cheetah-style.
//! (Full documentation below is written in `docs`.)

pub mod arith;
pub mod layout;
pub mod matmul;
pub mod ntt;
pub mod params;
pub mod sample;
mod simd;
mod wire;

pub use layout::{CostModel, Layout, Shape};
pub use matmul::{
    Client, PeerKey, PublicKeyMsg, QueryMsg, ResponseMsg, ResultCt, SecretKey, Server,
};
pub use params::Params;
pub use wire::WireError;

/// Everything that can go wrong, typed. No message carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid RLWE parameters: {0}")]
    InvalidParameters(String),
    #[error("RLWE parameters N = {n}, log2 q = {log2_q} are below 128-bit security (the HomomorphicEncryption.org standard allows log2 q <= {max} at this N)")]
    InsecureParameters { n: usize, log2_q: u32, max: u32 },
    #[error("invalid layout: {0}")]
    InvalidLayout(String),
    #[error("operand shape: {0}")]
    Shape(String),
    #[error("malformed message: {0}")]
    Wire(#[from] WireError),
    #[error("the operating system's random number generator failed: {0}")]
    Randomness(String),
}
