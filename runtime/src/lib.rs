//! Veil's runtime: additive secret sharing, the executor and the transports
//! that run a plan. Paillier lives in its own crate, re-exported here as
//! [`paillier`] so that `runtime::paillier::…` paths keep working.
//!
//! The maths modules are free of I/O: no files, no sockets, no printing.
//! The runtime depends on `plan` and the maths crates only; it never sees
//! source text, the AST or the compiler's graph.

pub mod exec;
pub use paillier;
pub mod sharing;
