//! Veil's runtime: the cryptographic engines (Paillier, additive secret
//! sharing) and, later, the executor and transports that run a plan.
//!
//! The maths modules are free of I/O: no files, no sockets, no printing.
//! The runtime depends on `plan` only; it never sees source text, the AST or
//! the compiler's graph.

pub mod exec;
pub mod paillier;
pub mod sharing;
