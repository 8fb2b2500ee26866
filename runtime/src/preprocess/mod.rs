//! Dealer-free preprocessing: the two computing parties generate their
//! correlated randomness (Beaver triples, comparison correlations) with
//! Paillier, without a dealer.
//!
//! Sans I/O: messages in, messages out. [`twoparty::Party0`] and
//! [`twoparty::Party1`] are the two sides as state machines; the executor
//! (`exec::dealerfree`) does their sends and receives and the framing.
//! [`crossterms`] is the one primitive they are built on. OT extension will
//! join them here.

pub(crate) mod crossterms;
pub(crate) mod twoparty;
