//! Why compilation stopped: errors in the model, which are diagnostics for
//! its author, or a broken invariant of the compiler's own (an invalid or
//! leaking plan, a state the earlier stages rule out), which is a bug in
//! Veil and carries its cause. The two never mix: no internal failure
//! becomes a user diagnostic code, and no user error is internal.

use grammar::Diagnostic;
use std::error::Error;
use std::fmt;

/// Why [`crate::compile`] returned no plan.
#[derive(Debug)]
pub enum CompileError {
    /// The model is in error: every diagnostic found (errors, and the
    /// warnings found with them), in source order.
    Model(Vec<Diagnostic>),
    /// The compiler broke one of its own invariants: a bug in Veil, not in
    /// the model.
    Internal(InternalError),
}

/// An internal compiler error: what failed, and why (its [`Error::source`]).
#[derive(Debug)]
pub struct InternalError {
    message: String,
    source: Option<Box<dyn Error + Send + Sync + 'static>>,
}

/// A list of failures of one check, as one error: `first; second; ...`.
#[derive(Debug)]
pub struct Failures<E>(pub Vec<E>);

impl InternalError {
    /// What every internal error asks of the user.
    pub const REPORT: &'static str = "this is a bug in Veil; please report it with the model file";

    pub fn new(message: impl Into<String>) -> InternalError {
        InternalError {
            message: message.into(),
            source: None,
        }
    }

    pub fn with_source(
        message: impl Into<String>,
        source: impl Error + Send + Sync + 'static,
    ) -> InternalError {
        InternalError {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// The error as the user sees it: what failed, each cause on its own
    /// line, and what to report (the model `file`). Not a diagnostic with a
    /// code and a place in the model: the model is not what is wrong.
    pub fn render(&self, file: &str) -> String {
        let mut text = format!("error: {self}\n");
        let mut cause = Error::source(self);
        while let Some(c) = cause {
            text += &format!("  caused by: {c}\n");
            cause = c.source();
        }
        text += &format!("  = note: {} (`{file}`)\n", InternalError::REPORT);
        text
    }

    /// What failed, without its causes.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for InternalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "internal compiler error: {}", self.message)
    }
}

impl Error for InternalError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileError::Model(d) => {
                let n = d.iter().filter(|d| d.is_error()).count();
                write!(
                    f,
                    "the model has {n} error{}",
                    if n == 1 { "" } else { "s" }
                )
            }
            CompileError::Internal(e) => e.fmt(f),
        }
    }
}

impl Error for CompileError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            CompileError::Model(_) => None,
            CompileError::Internal(e) => e.source(),
        }
    }
}

impl From<InternalError> for CompileError {
    fn from(e: InternalError) -> CompileError {
        CompileError::Internal(e)
    }
}

impl<E: fmt::Display> fmt::Display for Failures<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl<E: fmt::Display + fmt::Debug> Error for Failures<E> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_keeps_its_cause_and_is_not_a_diagnostic() {
        let e = InternalError::with_source(
            "the emitted plan fails validation",
            Failures(vec!["one".to_string(), "two".to_string()]),
        );
        assert_eq!(
            e.to_string(),
            "internal compiler error: the emitted plan fails validation"
        );
        assert_eq!(e.source().unwrap().to_string(), "one; two");
        let c = CompileError::from(e);
        assert!(matches!(c, CompileError::Internal(_)));
        assert_eq!(c.source().unwrap().to_string(), "one; two");
        assert!(InternalError::new("x").source().is_none());
    }
}
