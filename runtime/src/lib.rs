//! Veil's runtime: the executor and the transports that run a plan. The
//! maths lives in its own crates, re-exported here as [`paillier`] and
//! [`sharing`] so that `runtime::paillier::…` and `runtime::sharing::…`
//! paths keep working.
//!
//! The maths crates are free of I/O: no files, no sockets, no printing.
//! The runtime depends on `plan` and the maths crates only; it never sees
//! source text, the AST or the compiler's graph.

pub mod exec;
mod preprocess;
pub use paillier;
pub use sharing;
