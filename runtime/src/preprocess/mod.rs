//! Dealer-free preprocessing: the two computing parties generate their
//! correlated randomness (Beaver triples, comparison correlations) without
//! a dealer, by oblivious transfer ([`otgen`]) or with Paillier
//! ([`twoparty`]); the plan names which.
//!
//! Sans I/O: messages in, messages out. [`twoparty::Party0`] and
//! [`twoparty::Party1`] are the two sides as state machines; the executor
//! (`exec::dealerfree`) does their sends and receives and the framing.
//! [`crossterms`] is the one primitive they are built on.
//! [`otgen::OtParty0`] and [`otgen::OtParty1`] are the same correlations
//! from SoftSpoken correlated OTs.

#[cfg(test)]
mod checks;
pub(crate) mod crossterms;
pub(crate) mod otgen;
pub(crate) mod twoparty;
