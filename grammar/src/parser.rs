//! Source text → [`ast::Model`]. The only module that sees pest's types.

use crate::ast::*;
use crate::{Code, Diagnostic, Span};
use pest::iterators::Pair;
use pest::Parser as _;

#[derive(pest_derive::Parser)]
#[grammar = "veil.pest"]
struct VeilParser;

/// Parentheses and brackets may nest this deep, and this many `-` signs may
/// follow each other. The limit keeps the recursive-descent parser's stack,
/// and the depth of every expression tree, bounded on hostile input.
pub const MAX_NESTING: usize = 64;

/// Parse a model file. Never panics: every input either parses or yields at
/// least one error diagnostic.
pub fn parse(source: &str) -> Result<Model, Vec<Diagnostic>> {
    check_nesting(source)?;
    let mut pairs =
        VeilParser::parse(Rule::file, source).map_err(|e| vec![syntax_error(&e, source)])?;
    let file = pairs
        .next()
        .expect("the `file` rule always yields one pair");
    let model_pair = file
        .into_inner()
        .find(|p| p.as_rule() == Rule::model)
        .expect("`file` contains `model`");
    let mut builder = Builder {
        exprs: Vec::new(),
        errors: Vec::new(),
    };
    let model = builder.model(model_pair);
    if builder.errors.is_empty() {
        Ok(model)
    } else {
        Err(builder.errors)
    }
}

/// Reject pathologically nested brackets, and long runs of `-` signs (each
/// one a level of negation in the tree), before the parser sees them.
fn check_nesting(source: &str) -> Result<(), Vec<Diagnostic>> {
    let mut depth = 0usize;
    // `-` signs since the last token other than `-`; blanks and comments
    // do not break a run.
    let mut minus_run = 0usize;
    let mut in_comment = false;
    let mut prev = '\0';
    for (i, c) in source.char_indices() {
        if in_comment {
            in_comment = c != '\n';
        } else if c == '/' && prev == '/' {
            in_comment = true;
        } else if c == '(' || c == '[' {
            depth += 1;
            if depth > MAX_NESTING {
                return Err(vec![Diagnostic::error(
                    Code::TooDeep,
                    format!("brackets nested deeper than {MAX_NESTING} levels"),
                )
                .primary(Span::new(i, i + 1), "this one is too deep")
                .help("split the expression into several `let` definitions")]);
            }
        } else if c == ')' || c == ']' {
            depth = depth.saturating_sub(1);
        }
        if !in_comment {
            if c == '-' {
                minus_run += 1;
                if minus_run > MAX_NESTING {
                    return Err(vec![Diagnostic::error(
                        Code::TooDeep,
                        format!("more than {MAX_NESTING} `-` signs in a row"),
                    )
                    .primary(Span::new(i, i + 1), "one sign too many")
                    .help("signs cancel in pairs: write one `-` for an odd number of them, none for an even number")]);
                }
            } else if !(c.is_whitespace() || c == '/') {
                minus_run = 0;
            }
        }
        prev = if in_comment { '\0' } else { c };
    }
    Ok(())
}

fn describe(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::model | Rule::kw_model => "`model`",
        Rule::precision_decl | Rule::kw_precision => "`precision`",
        Rule::party_decl | Rule::kw_party => "`party`",
        Rule::dealer_decl | Rule::kw_dealer => "`dealer`",
        Rule::input_decl | Rule::kw_input => "`input`",
        Rule::const_decl | Rule::kw_const => "`const`",
        Rule::let_decl | Rule::kw_let => "`let`",
        Rule::output_decl | Rule::kw_output => "`output`",
        Rule::kw_to => "`to`",
        Rule::labels | Rule::kw_labels => "`labels [...]`",
        Rule::ty | Rule::kw_fixed => "a type such as `fixed[100]`",
        Rule::shape => "a shape such as `[batch, 100]`",
        Rule::dim => "a dimension (a number or a name)",
        Rule::visibility | Rule::kw_public | Rule::kw_private | Rule::private_vis => {
            "`public` or `private(PARTY)`"
        }
        Rule::range | Rule::kw_in | Rule::column_ranges => "a range `in [lo, hi]`",
        Rule::column_range => "a column's range `[lo, hi]`",
        Rule::range_file => "a file name in quotes",
        Rule::kw_via | Rule::via => "`via`",
        Rule::signed_number | Rule::number | Rule::neg_sign => "a number",
        Rule::integer | Rule::digits => "a whole number",
        Rule::expr
        | Rule::additive
        | Rule::multiplicative
        | Rule::unary
        | Rule::paren
        | Rule::neg_op => "an expression",
        Rule::call => "a function call",
        Rule::arg => "an argument",
        Rule::array => "an array `[...]`",
        Rule::add_op => "`+` or `-`",
        Rule::mul_op => "`*`, `/` or `@`",
        Rule::ident => "a name",
        Rule::semi => "`;`",
        Rule::colon => "`:`",
        Rule::comma => "`,`",
        Rule::equals => "`=`",
        Rule::lbrace => "`{`",
        Rule::rbrace => "`}`",
        Rule::lparen => "`(`",
        Rule::rparen => "`)`",
        Rule::lbracket => "`[`",
        Rule::rbracket => "`]`",
        Rule::EOI => "end of file",
        _ => return None,
    })
}

fn syntax_error(e: &pest::error::Error<Rule>, source: &str) -> Diagnostic {
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let mut expected: Vec<&str> = Vec::new();
    let mut positives: &[Rule] = &[];
    if let pest::error::ErrorVariant::ParsingError { positives: p, .. } = &e.variant {
        positives = p;
        for &r in p {
            if let Some(d) = describe(r) {
                if !expected.contains(&d) {
                    expected.push(d);
                }
            }
        }
    }
    let at_end = source[pos.min(source.len())..].trim().is_empty();
    let found_end = pos.min(source.len());
    let rest = &source[found_end..];
    let word_len = rest
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(rest.len(), |(i, _)| i);
    let found: String = if word_len > 0 {
        rest[..word_len].chars().take(20).collect()
    } else {
        rest.chars().take(1).collect()
    };
    // The last character of the previous token: where rustc would say "expected `;` here".
    let prev = previous_token_char(source, found_end);
    let expected_text = match expected.len() {
        0 => "something else".to_string(),
        1 => expected[0].to_string(),
        n => format!("{} or {}", expected[..n - 1].join(", "), expected[n - 1]),
    };
    // A label needs a non-empty span to be visible; point at the offending
    // character (or the last character of the file at its end).
    let char_len = source[found_end..].chars().next().map_or(0, char::len_utf8);
    let span = if char_len > 0 && !at_end {
        Span::new(found_end, found_end + char_len)
    } else {
        prev.unwrap_or_default()
    };
    if at_end && positives.contains(&Rule::rbrace) {
        return Diagnostic::error(
            Code::Syntax,
            "unexpected end of file: the model block is not closed",
        )
        .primary(span, format!("expected {expected_text} after this"))
        .help("close the model with `}` after its last declaration");
    }
    if expected == ["`;`"] && !at_end {
        if let Some(prev) = prev {
            return Diagnostic::error(Code::Syntax, format!("expected `;`, found `{found}`"))
                .primary(prev, "expected `;` after this")
                .secondary(
                    Span::new(found_end, found_end + char_len),
                    "unexpected token",
                )
                .help("every declaration ends with `;`");
        }
    }
    let message = if at_end {
        format!("unexpected end of file, expected {expected_text}")
    } else {
        format!("expected {expected_text}, found `{found}`")
    };
    let mut d =
        Diagnostic::error(Code::Syntax, message).primary(span, format!("expected {expected_text}"));
    if expected == ["`;`"] || (positives.contains(&Rule::semi) && !at_end) {
        d = d.help("every declaration ends with `;`");
    } else if positives.contains(&Rule::ident) && is_keyword(&found) {
        d = d.help(format!(
            "`{found}` is a keyword and cannot be used as a name"
        ));
    }
    d
}

/// The span of the last non-blank, non-comment character before `pos`.
fn previous_token_char(source: &str, pos: usize) -> Option<Span> {
    let before = &source[..pos];
    // Drop trailing comments line by line, then whitespace.
    let mut end = before.len();
    loop {
        let text = before[..end].trim_end();
        let line_start = text.rfind('\n').map_or(0, |i| i + 1);
        match text[line_start..].find("//") {
            Some(c) => end = line_start + c,
            None => {
                end = text.len();
                break;
            }
        }
    }
    let (i, c) = before[..end].char_indices().last()?;
    Some(Span::new(i, i + c.len_utf8()))
}

fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "model"
            | "precision"
            | "party"
            | "dealer"
            | "input"
            | "const"
            | "let"
            | "output"
            | "to"
            | "fixed"
            | "public"
            | "private"
            | "in"
            | "via"
    )
}

fn span_of(pair: &Pair<Rule>) -> Span {
    let s = pair.as_span();
    Span::new(s.start(), s.end())
}

fn is_punct(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::semi
            | Rule::colon
            | Rule::comma
            | Rule::equals
            | Rule::lbrace
            | Rule::rbrace
            | Rule::lparen
            | Rule::rparen
            | Rule::lbracket
            | Rule::rbracket
            | Rule::kw_model
            | Rule::kw_precision
            | Rule::kw_party
            | Rule::kw_dealer
            | Rule::kw_input
            | Rule::kw_const
            | Rule::kw_let
            | Rule::kw_output
            | Rule::kw_to
            | Rule::kw_labels
            | Rule::kw_fixed
            | Rule::kw_in
            | Rule::kw_via
            | Rule::kw_private
            | Rule::EOI
    )
}

/// The meaningful children of a pair: punctuation and keywords dropped.
fn children(pair: Pair<Rule>) -> impl Iterator<Item = Pair<Rule>> {
    pair.into_inner().filter(|p| !is_punct(p.as_rule()))
}

struct Builder {
    exprs: Vec<Expr>,
    errors: Vec<Diagnostic>,
}

impl Builder {
    fn model(&mut self, pair: Pair<Rule>) -> Model {
        let span = span_of(&pair);
        let mut it = children(pair);
        let name = ident(it.next().expect("model name"));
        let items = it.map(|p| self.item(p)).collect();
        Model {
            name,
            items,
            exprs: std::mem::take(&mut self.exprs),
            span,
        }
    }

    fn item(&mut self, pair: Pair<Rule>) -> Item {
        let span = span_of(&pair);
        let rule = pair.as_rule();
        let mut it = children(pair);
        match rule {
            Rule::precision_decl => Item::Precision {
                bits: self.integer(it.next().expect("precision value")),
                span,
            },
            Rule::party_decl => Item::Party {
                name: ident(it.next().expect("party name")),
                span,
            },
            Rule::dealer_decl => Item::Dealer {
                name: ident(it.next().expect("dealer name")),
                span,
            },
            Rule::input_decl => {
                let name = ident(it.next().expect("input name"));
                let ty = self.ty(it.next().expect("input type"));
                let visibility = visibility(it.next().expect("visibility"));
                let (mut range, mut columns) = (None, None);
                if let Some(p) = it.next() {
                    match p.as_rule() {
                        Rule::column_ranges => columns = Some(self.column_ranges(p)),
                        _ => range = Some(self.range(p)),
                    }
                }
                Item::Input {
                    name,
                    ty,
                    visibility,
                    range,
                    columns,
                    span,
                }
            }
            Rule::const_decl => {
                let name = ident(it.next().expect("const name"));
                let ty = self.ty(it.next().expect("const type"));
                let v = it.next().expect("const value");
                let value = match v.as_rule() {
                    Rule::array => ConstValue::Array(self.array(v)),
                    _ => ConstValue::Number(self.signed_number(v)),
                };
                Item::Const {
                    name,
                    ty,
                    value,
                    span,
                }
            }
            Rule::let_decl => {
                let name = ident(it.next().expect("let name"));
                let value = self.expr(it.next().expect("let value"));
                Item::Let { name, value, span }
            }
            Rule::output_decl => {
                let value = ident(it.next().expect("output value"));
                let mut to = Vec::new();
                let mut labels = None;
                for p in it {
                    match p.as_rule() {
                        Rule::labels => {
                            let array = p.into_inner().nth(1).expect("labels array");
                            labels = Some(self.array(array));
                        }
                        _ => to.push(ident(p)),
                    }
                }
                Item::Output {
                    value,
                    to,
                    labels,
                    span,
                }
            }
            r => unreachable!("grammar yields no item of rule {r:?}"),
        }
    }

    fn ty(&mut self, pair: Pair<Rule>) -> Type {
        let span = span_of(&pair);
        let dims = match children(pair).next() {
            Some(shape) => children(shape).map(|d| self.dim(d)).collect(),
            None => Vec::new(),
        };
        Type { dims, span }
    }

    fn dim(&mut self, pair: Pair<Rule>) -> Dim {
        let span = span_of(&pair);
        let inner = children(pair).next().expect("dim content");
        let kind = match inner.as_rule() {
            Rule::integer => DimKind::Known(self.integer(inner)),
            _ => DimKind::Symbol(inner.as_str().to_string()),
        };
        Dim { kind, span }
    }

    fn range(&mut self, pair: Pair<Rule>) -> RangeLit {
        let span = span_of(&pair);
        let mut it = children(pair);
        let lo = self.signed_number(it.next().expect("range lo"));
        let hi = self.signed_number(it.next().expect("range hi"));
        RangeLit { lo, hi, span }
    }

    fn column_ranges(&mut self, pair: Pair<Rule>) -> ColumnRanges {
        let span = span_of(&pair);
        let mut ranges = Vec::new();
        for p in children(pair) {
            match p.as_rule() {
                Rule::range_file => {
                    let text = p.as_str();
                    return ColumnRanges::File {
                        path: text[1..text.len() - 1].to_string(),
                        span: span_of(&p),
                    };
                }
                Rule::column_range => ranges.push(self.range(p)),
                _ => {}
            }
        }
        ColumnRanges::List { ranges, span }
    }

    fn integer(&mut self, pair: Pair<Rule>) -> u64 {
        let text: String = pair.as_str().chars().filter(|&c| c != '_').collect();
        match text.parse::<u64>() {
            Ok(v) => v,
            Err(_) => {
                self.errors.push(
                    Diagnostic::error(Code::BadLiteral, "integer literal is too large")
                        .primary(span_of(&pair), "does not fit in 64 bits"),
                );
                0
            }
        }
    }

    fn number(&mut self, pair: &Pair<Rule>) -> f64 {
        let text: String = pair.as_str().chars().filter(|&c| c != '_').collect();
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => v,
            _ => {
                self.errors.push(
                    Diagnostic::error(Code::BadLiteral, "number literal is too large")
                        .primary(span_of(pair), "not a finite number"),
                );
                0.0
            }
        }
    }

    fn signed_number(&mut self, pair: Pair<Rule>) -> Number {
        let span = span_of(&pair);
        let mut negative = false;
        let mut value = 0.0;
        for p in children(pair) {
            match p.as_rule() {
                Rule::neg_sign => negative = true,
                _ => value = self.number(&p),
            }
        }
        Number {
            value: if negative { -value } else { value },
            span,
        }
    }

    fn array(&mut self, pair: Pair<Rule>) -> ArrayLit {
        let span = span_of(&pair);
        let elems = children(pair)
            .map(|p| match p.as_rule() {
                Rule::array => ArrayElem::Array(self.array(p)),
                _ => ArrayElem::Number(self.signed_number(p)),
            })
            .collect();
        ArrayLit { elems, span }
    }

    fn push(&mut self, kind: ExprKind, span: Span) -> ExprId {
        let id = ExprId(self.exprs.len() as u32);
        self.exprs.push(Expr { kind, span });
        id
    }

    fn expr(&mut self, pair: Pair<Rule>) -> ExprId {
        let span = span_of(&pair);
        match pair.as_rule() {
            Rule::expr => {
                let mut it = children(pair);
                let inner = self.expr(it.next().expect("expression body"));
                match it.next() {
                    Some(via) => {
                        let protocol = ident(children(via).next().expect("protocol name"));
                        self.push(
                            ExprKind::Via {
                                expr: inner,
                                protocol,
                            },
                            span,
                        )
                    }
                    None => inner,
                }
            }
            Rule::additive | Rule::multiplicative => {
                let mut it = children(pair);
                let first = it.next().expect("operand");
                let mut lhs_span = span_of(&first);
                let mut lhs = self.expr(first);
                while let Some(op) = it.next() {
                    let op_span = span_of(&op);
                    let op = match op.as_str() {
                        "+" => BinOp::Add,
                        "-" => BinOp::Sub,
                        "*" => BinOp::Mul,
                        "/" => BinOp::Div,
                        _ => BinOp::MatMul,
                    };
                    let rhs_pair = it.next().expect("right operand");
                    let rhs_span = span_of(&rhs_pair);
                    let rhs = self.expr(rhs_pair);
                    lhs_span = lhs_span.to(rhs_span);
                    lhs = self.push(
                        ExprKind::Binary {
                            op,
                            op_span,
                            lhs,
                            rhs,
                        },
                        lhs_span,
                    );
                }
                lhs
            }
            Rule::unary => {
                let parts: Vec<Pair<Rule>> = children(pair).collect();
                let (negs, operand) = parts.split_at(parts.len() - 1);
                let mut id = self.expr(operand[0].clone());
                for neg in negs.iter().rev() {
                    let s = Span::new(span_of(neg).start, span.end);
                    id = self.push(ExprKind::Neg(id), s);
                }
                id
            }
            Rule::paren => self.expr(children(pair).next().expect("parenthesised expression")),
            Rule::number => {
                let v = self.number(&pair);
                self.push(ExprKind::Number(v), span)
            }
            Rule::ident => self.push(ExprKind::Name(ident(pair)), span),
            Rule::call => {
                let mut it = children(pair);
                let func = ident(it.next().expect("function name"));
                let args = it.map(|a| self.arg(a)).collect();
                self.push(ExprKind::Call { func, args }, span)
            }
            r => unreachable!("grammar yields no expression of rule {r:?}"),
        }
    }

    fn arg(&mut self, pair: Pair<Rule>) -> Arg {
        let span = span_of(&pair);
        let mut name = None;
        let mut value = None;
        for p in children(pair) {
            match p.as_rule() {
                Rule::ident => name = Some(ident(p)),
                Rule::array => value = Some(ArgValue::Array(self.array(p))),
                _ => value = Some(ArgValue::Expr(self.expr(p))),
            }
        }
        Arg {
            name,
            value: value.expect("argument value"),
            span,
        }
    }
}

fn ident(pair: Pair<Rule>) -> Ident {
    Ident {
        span: span_of(&pair),
        name: pair.as_str().to_string(),
    }
}

fn visibility(pair: Pair<Rule>) -> Visibility {
    let span = span_of(&pair);
    let inner = pair.into_inner().next().expect("visibility content");
    match inner.as_rule() {
        Rule::private_vis => Visibility::Private {
            party: ident(children(inner).next().expect("owner")),
            span,
        },
        _ => Visibility::Public { span },
    }
}
