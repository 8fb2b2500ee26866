//! One diagnostic type for every stage, rendered with source snippets by
//! `codespan-reporting`.

use crate::Span;
use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// Stable diagnostic codes. The number never changes meaning once released;
/// `veil explain CODE` prints [`Code::explain`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    // Syntax (E00xx)
    Syntax,
    BadLiteral,
    TooDeep,
    // Names and parties (E01xx)
    UnknownName,
    DuplicateDefinition,
    UnknownParty,
    OutputToDealer,
    DealerInput,
    PartyCount,
    MultipleDealers,
    NoOutputs,
    UnknownFunction,
    UnknownProtocol,
    DuplicatePrecision,
    UseBeforeDefinition,
    // Shapes and values (E02xx)
    ShapeMismatch,
    MatMulMismatch,
    BadRank,
    BadArguments,
    UnknownArgument,
    BadDegree,
    BadDomain,
    BadRange,
    ConstShape,
    SymbolicConst,
    BadPrecision,
    LiteralOutOfRange,
    ViaWithoutOperation,
    ZeroDim,
    TensorTooLarge,
    BadReshape,
    BadLabels,
    // Compilation (E03xx)
    Overflow,
    Leak,
    NoProtocol,
    PolyOverflow,
    NoApproximation,
    // Warnings
    Unused,
    PrecisionLoss,
    BeyondDomain,
    BoundExceedsRange,
}

impl Code {
    pub const ALL: [Code; 41] = [
        Code::Syntax,
        Code::BadLiteral,
        Code::TooDeep,
        Code::UnknownName,
        Code::DuplicateDefinition,
        Code::UnknownParty,
        Code::OutputToDealer,
        Code::DealerInput,
        Code::PartyCount,
        Code::MultipleDealers,
        Code::NoOutputs,
        Code::UnknownFunction,
        Code::UnknownProtocol,
        Code::DuplicatePrecision,
        Code::UseBeforeDefinition,
        Code::ShapeMismatch,
        Code::MatMulMismatch,
        Code::BadRank,
        Code::BadArguments,
        Code::UnknownArgument,
        Code::BadDegree,
        Code::BadDomain,
        Code::BadRange,
        Code::ConstShape,
        Code::SymbolicConst,
        Code::BadPrecision,
        Code::LiteralOutOfRange,
        Code::ViaWithoutOperation,
        Code::ZeroDim,
        Code::TensorTooLarge,
        Code::BadReshape,
        Code::BadLabels,
        Code::Overflow,
        Code::Leak,
        Code::NoProtocol,
        Code::PolyOverflow,
        Code::NoApproximation,
        Code::Unused,
        Code::PrecisionLoss,
        Code::BeyondDomain,
        Code::BoundExceedsRange,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::Syntax => "E0001",
            Code::BadLiteral => "E0002",
            Code::TooDeep => "E0003",
            Code::UnknownName => "E0101",
            Code::DuplicateDefinition => "E0102",
            Code::UnknownParty => "E0103",
            Code::OutputToDealer => "E0104",
            Code::DealerInput => "E0105",
            Code::PartyCount => "E0106",
            Code::MultipleDealers => "E0107",
            Code::NoOutputs => "E0108",
            Code::UnknownFunction => "E0109",
            Code::UnknownProtocol => "E0110",
            Code::DuplicatePrecision => "E0111",
            Code::UseBeforeDefinition => "E0112",
            Code::ShapeMismatch => "E0201",
            Code::MatMulMismatch => "E0202",
            Code::BadRank => "E0203",
            Code::BadArguments => "E0204",
            Code::UnknownArgument => "E0205",
            Code::BadDegree => "E0206",
            Code::BadDomain => "E0207",
            Code::BadRange => "E0208",
            Code::ConstShape => "E0209",
            Code::SymbolicConst => "E0210",
            Code::BadPrecision => "E0211",
            Code::LiteralOutOfRange => "E0212",
            Code::ViaWithoutOperation => "E0213",
            Code::ZeroDim => "E0214",
            Code::TensorTooLarge => "E0215",
            Code::BadReshape => "E0216",
            Code::BadLabels => "E0220",
            Code::Overflow => "E0301",
            Code::Leak => "E0302",
            Code::NoProtocol => "E0303",
            Code::PolyOverflow => "E0304",
            Code::NoApproximation => "E0305",
            Code::Unused => "W0001",
            Code::PrecisionLoss => "W0002",
            Code::BeyondDomain => "W0101",
            Code::BoundExceedsRange => "W0102",
        }
    }

    pub fn parse(code: &str) -> Option<Code> {
        Code::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(code))
    }

    /// A longer explanation, for `veil explain` (which follows the codes
    /// about calls, E0109, E0204 and E0205, with the list of builtins: the
    /// compiler's registry, which this crate does not see).
    pub fn explain(self) -> &'static str {
        match self {
            Code::Syntax => "The model file does not follow Veil's grammar. The message lists what the parser expected at that point; a missing `;` or `}` is the usual cause.",
            Code::BadLiteral => "A number literal cannot be represented: it is too large, or not finite.",
            Code::TooDeep => "Parentheses or brackets are nested more than 64 levels deep, or more than 64 `-` signs follow each other: the limit keeps the parser bounded on hostile input. Split the expression with `let`; minus signs cancel in pairs.",
            Code::UnknownName => "A name is used that no `input`, `const` or `let` defines. Check the spelling.",
            Code::DuplicateDefinition => "Two declarations define the same name. Every party, input, constant and `let` needs its own name.",
            Code::UnknownParty => "A party is named that no `party` or `dealer` declaration declares.",
            Code::OutputToDealer => "Outputs go to computing parties. A dealer only supplies correlated randomness and must learn nothing.",
            Code::DealerInput => "A dealer supplies correlated randomness only; it cannot own inputs. Declare the owner with `party` instead.",
            Code::PartyCount => "Veil runs two-party protocols: a model declares exactly two computing parties (`party`), plus an optional dealer.",
            Code::MultipleDealers => "At most one `dealer` may be declared.",
            Code::NoOutputs => "A model without `output` computes nothing anybody learns. Add `output NAME to PARTY;`.",
            Code::UnknownFunction => "The called function is not one of Veil's builtins. Check the spelling against the list of builtins.",
            Code::UnknownProtocol => "`via` takes `paillier`, `shares` or `rlwe`.",
            Code::DuplicatePrecision => "`precision` may be given once per model.",
            Code::UseBeforeDefinition => "A name is used before the line that defines it. Models read top to bottom: move the definition up.",
            Code::ShapeMismatch => "Elementwise operations need operands of the same shape, or a scalar on one side. Dimensions match only when both are the same number or the same symbol.",
            Code::MatMulMismatch => "In `a @ b` the last dimension of `a` must equal the first dimension of `b`.",
            Code::BadRank => "The operation needs an operand of another rank: `@` takes vectors and matrices, reductions take at least a vector.",
            Code::BadArguments => "A builtin was called with the wrong number or kind of arguments.",
            Code::UnknownArgument => "A named argument is not one the builtin accepts.",
            Code::BadDegree => "A polynomial degree must be a positive whole number no larger than the maximum; sigmoid and tanh approximations use odd degrees.",
            Code::BadDomain => "A domain `[lo, hi]` needs lo < hi, both finite.",
            Code::BadRange => "A value range `in [lo, hi]` needs lo <= hi, both finite and representable. Per-column ranges (`in [[lo, hi], ...]`, or a file `in \"ranges.npy\"` of shape [k, 2]) need one such range per entry of the input's last dimension, which must be a number, and a file the front end can read.",
            Code::ConstShape => "A constant's value does not have the shape its type declares.",
            Code::SymbolicConst => "Constants have fixed shapes: a symbolic dimension such as `batch` is only allowed on inputs.",
            Code::BadPrecision => "`precision` sets the fractional bits of the fixed-point encoding; it must be between 8 and 24.",
            Code::LiteralOutOfRange => "A literal does not fit the fixed-point encoding at this precision.",
            Code::ViaWithoutOperation => "`via` chooses how an operation runs; the expression before it must be an operation, not a bare name or literal.",
            Code::ZeroDim => "Dimensions must be at least 1.",
            Code::TensorTooLarge => "A tensor type has more than 2^48 elements (the product of its dimensions), about 2.8e14: more than any machine can hold, and more than Veil's size arithmetic allows. Check the dimensions; a size that grows with the data belongs in a symbolic dimension such as `batch`, whose size `veil run` checks against the memory available.",
            Code::BadReshape => "`reshape`, `flatten`, `transpose` or `permute` names dimensions its operand does not have: a new shape with another number of elements, a named dimension (`batch`) merged with others or left to be inferred as a multiple, more than one `-1`, or axes that are out of range or not a permutation. The values keep their row-major order; `-1` in `reshape` stands for whatever the other dimensions leave, which may be `batch` itself.",
            Code::BadLabels => "An output's `labels [..]` table maps an `argmax` index to the label it is revealed as (`output label to client labels [3, 5, 7];` reveals index 1 as 5). It needs an output that is an `argmax` (directly, not an expression of one) and one distinct number per entry of the axis the argmax ranks.",
            Code::Overflow => "Range analysis found a value that can exceed what the fixed-point encoding holds (products are computed at twice the precision before truncation). Declare tighter `in` ranges on the inputs, or lower `precision`.",
            Code::Leak => "An output would reveal another party's private input exactly (for example `x + w` addressed to the owner of `x` gives away `w`). Veil refuses plans that reveal more than the outputs' owners may learn.",
            Code::NoProtocol => "No protocol available to the compiler can compute this operation on these operands, or a `via` override asks for one that cannot.",
            Code::PolyOverflow => "The polynomial approximating sigmoid or tanh is evaluated on the input's whole range; outside its fitted domain its powers grow until they overflow the fixed-point encoding. Declare tighter `in` ranges on the inputs, or a wider `domain:`.",
            Code::NoApproximation => "No polynomial up to the compiler's maximum degree approximates the function within the tolerance on this domain. Raise `tol:`, narrow `domain:`, or give `degree:` explicitly.",
            Code::Unused => "A definition is never used by any output. It costs nothing at run time (the compiler drops it), but is often a mistake. Not reported while a definition or an output is in error (a misspelt name, say): what it meant to use is unknown until it is fixed.",
            Code::PrecisionLoss => "A literal is not exactly representable at this precision and will be rounded.",
            Code::BeyondDomain => "The input of sigmoid or tanh can lie outside the domain its polynomial is fitted on; there the approximation is not accurate. Declare tighter input ranges or widen `domain:`.",
            Code::BoundExceedsRange => "The compiler's bound on an output's error (rounding, polynomial approximation, amplified through the operations) is at least as wide as the output's own range, so the bound says nothing: a probability in [0, 1] off by up to 92.7 could be any probability. The warning points at where most of the bound comes from. Rounding amplified by wide ranges: declare tighter `in [lo, hi]` ranges on the inputs, or raise `precision`. A polynomial's own error: fit it on a smaller domain (tighter ranges, or `clamp` its input first), or raise `degree:`. A high-degree polynomial's large coefficients multiplying rounding: give a lower `degree:`.",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub span: Span,
    pub message: String,
    pub primary: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    pub labels: Vec<Label>,
    pub notes: Vec<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            labels: Vec::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    /// The main place the diagnostic is about.
    pub fn primary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            span,
            message: message.into(),
            primary: true,
        });
        self
    }

    /// A related place, for context.
    pub fn secondary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            span,
            message: message.into(),
            primary: false,
        });
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The span of the first primary label, if any.
    pub fn primary_span(&self) -> Option<Span> {
        self.labels.iter().find(|l| l.primary).map(|l| l.span)
    }

    fn to_codespan(&self, source_len: usize) -> cs::Diagnostic<()> {
        let severity = match self.severity {
            Severity::Error => cs::Severity::Error,
            Severity::Warning => cs::Severity::Warning,
        };
        let clamp =
            |s: Span| s.start.min(source_len)..s.end.min(source_len).max(s.start.min(source_len));
        let labels = self
            .labels
            .iter()
            .map(|l| {
                let style = if l.primary {
                    cs::LabelStyle::Primary
                } else {
                    cs::LabelStyle::Secondary
                };
                cs::Label::new(style, (), clamp(l.span)).with_message(l.message.clone())
            })
            .collect();
        let mut notes: Vec<String> = self.notes.iter().map(|n| format!("note: {n}")).collect();
        if let Some(help) = &self.help {
            notes.push(format!("help: {help}"));
        }
        cs::Diagnostic::new(severity)
            .with_code(self.code.as_str())
            .with_message(self.message.clone())
            .with_labels(labels)
            .with_notes(notes)
    }
}

/// Whether [`render_with`] colours the text. The caller decides: only it
/// knows whether the text goes to a terminal and what the user asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Color {
    /// Plain text: stable for snapshots, logs and pipes.
    #[default]
    Plain,
    /// ANSI escape codes, as terminals show them (rustc's colours).
    Ansi,
}

/// Render diagnostics as rustc-style text with source snippets (no colour,
/// so the output is stable for snapshots and logs).
pub fn render(diagnostics: &[Diagnostic], file_name: &str, source: &str) -> String {
    render_with(diagnostics, file_name, source, Color::Plain)
}

/// [`render`], coloured or not.
pub fn render_with(
    diagnostics: &[Diagnostic],
    file_name: &str,
    source: &str,
    color: Color,
) -> String {
    let file = SimpleFile::new(file_name, source);
    let config = term::Config::default();
    let mut out = String::new();
    for d in diagnostics {
        let d_cs = d.to_codespan(source.len());
        let rendered = match color {
            Color::Plain => term::emit_into_string(&config, &file, &d_cs),
            Color::Ansi => {
                let mut w = term::termcolor::Ansi::new(Vec::new());
                term::emit_to_write_style(&mut w, &config, &file, &d_cs)
                    .map(|()| String::from_utf8_lossy(&w.into_inner()).into_owned())
            }
        };
        match rendered {
            Ok(s) => out.push_str(&s),
            // Rendering only fails on spans outside the file, which `to_codespan`
            // clamps away; fall back to a plain line rather than losing the error.
            Err(_) => out.push_str(&format!("{:?}[{}]: {}\n", d.severity, d.code, d.message)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_documented_and_parses_back() {
        let doc = include_str!("../../docs/language.md");
        for code in Code::ALL {
            let row = format!("| {} | ", code.as_str());
            assert!(doc.contains(&row), "docs/language.md lacks {code}");
            assert_eq!(Code::parse(code.as_str()), Some(code));
            assert!(!code.explain().is_empty());
        }
    }

    #[test]
    fn ansi_colour_only_when_asked_and_the_same_text_otherwise() {
        let source = "model m { let x = y; }";
        let d = [Diagnostic::error(Code::UnknownName, "unknown name `y`")
            .primary(Span::new(18, 19), "not defined")];
        let plain = render(&d, "m.veil", source);
        assert!(!plain.contains('\x1b'), "{plain}");
        assert_eq!(render_with(&d, "m.veil", source, Color::Plain), plain);
        let ansi = render_with(&d, "m.veil", source, Color::Ansi);
        assert!(ansi.contains("\x1b["), "{ansi}");
        // Without the escape codes it is the plain text.
        let mut stripped = String::new();
        let mut chars = ansi.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                stripped.push(c);
            }
        }
        assert_eq!(stripped, plain);
    }
}
