//! The Veil model language: concrete syntax (a pest grammar), the AST with
//! source spans, and the diagnostics every later stage reports through.
//!
//! The entry point is [`parse`]. Pest's own types never leave the private
//! `parser` module: callers see only [`ast::Model`] or [`Diagnostic`]s.

pub mod ast;
mod diagnostic;
mod parser;
mod print;

pub use diagnostic::{render, render_with, Code, Color, Diagnostic, Label, Severity};
pub use parser::{parse, MAX_NESTING};
pub use print::ast_to_text;

/// A byte range in the source text, half open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// Edit distance used for "did you mean" suggestions.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest candidate to `name`, if it is close enough to be a likely typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (levenshtein(name, c), c))
        .filter(|&(d, _)| d <= limit)
        .min()
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("servr", ["client", "server"]), Some("server"));
        assert_eq!(suggest("sigmod", ["sigmoid", "tanh"]), Some("sigmoid"));
        assert_eq!(suggest("zzz", ["client", "server"]), None);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }
}
