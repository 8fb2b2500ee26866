//! Veil's compiler: checks a parsed model ([`check`]) into the typed IR of
//! [`ir`], and (later stages) builds the dataflow graph, chooses protocols and
//! lowers to a [`plan`].

mod check;
pub mod ir;

pub use check::{broadcast, check, check_source, CheckResult, BUILTINS, MAX_DEGREE};
