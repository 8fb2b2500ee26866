//! The semantic checker: AST → [`CheckedModel`], collecting every error in
//! one run. Nothing unchecked reaches later stages: they take a
//! `CheckedModel`, which only this module constructs.

use crate::builtins::{self, Args, Named, Param, ShapeRule};
use crate::ir::*;
use grammar::ast::{self, ArgValue, ArrayElem, ConstValue, DimKind, ExprId, ExprKind, Item};
use grammar::{suggest, Code, Diagnostic, Span};
use std::collections::{HashMap, HashSet};

/// The result of checking: the model if there were no errors, and every
/// diagnostic (errors and warnings) in source order.
#[derive(Debug)]
pub struct CheckResult {
    pub model: Option<CheckedModel>,
    pub diagnostics: Vec<Diagnostic>,
}

impl CheckResult {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Parse and check model source text.
pub fn check_source(source: &str) -> CheckResult {
    match grammar::parse(source) {
        Ok(ast) => check(&ast),
        Err(diagnostics) => CheckResult {
            model: None,
            diagnostics,
        },
    }
}

/// Highest polynomial degree accepted in `degree:` and `poly`.
pub const MAX_DEGREE: u64 = 31;

/// The most elements a tensor type may have (the product of its numbered
/// dimensions): more than any machine holds, and small enough that sizes in
/// bytes (up to 2^12 bytes per element, a ciphertext) stay far from
/// overflowing 64 bits.
pub const MAX_ELEMENTS: u64 = 1 << 48;

pub fn check(model: &ast::Model) -> CheckResult {
    check_with(model, &|_| {
        Err(
            "this front end reads no files: give the ranges as a list `in [[lo, hi], ...]`, \
             or check the model with the `veil` command, which reads range files next to the model"
                .to_string(),
        )
    })
}

/// Reads a file of per-column ranges named in a model (`in "ranges.npy"`)
/// for the checker: the `[lo, hi]` pair of each row, or why it cannot.
/// The compiler does no I/O; front ends (the cli, Python) pass one that
/// reads `.npy` and `.csv` files next to the model.
pub type RangeReader<'r> = dyn Fn(&str) -> Result<Vec<(f64, f64)>, String> + 'r;

/// As [`check_source`], with the front end's reader of range files.
pub fn check_source_with(source: &str, read_ranges: &RangeReader) -> CheckResult {
    match grammar::parse(source) {
        Ok(ast) => check_with(&ast, read_ranges),
        Err(diagnostics) => CheckResult {
            model: None,
            diagnostics,
        },
    }
}

/// As [`check`], with the front end's reader of range files.
pub fn check_with(model: &ast::Model, read_ranges: &RangeReader) -> CheckResult {
    let flags = model
        .exprs
        .iter()
        .flat_map(|e| match &e.kind {
            ExprKind::Call { args, .. } => args.as_slice(),
            _ => &[],
        })
        .filter(|a| {
            a.name
                .as_ref()
                .is_some_and(|n| n.name == Named::CeilMode.name())
        })
        .filter_map(|a| match &a.value {
            ArgValue::Expr(e) => Some(*e),
            ArgValue::Array(_) => None,
        })
        .collect();
    let mut c = Checker {
        read_ranges,
        flags,
        ast: model,
        diags: Vec::new(),
        parties: Vec::new(),
        values: Vec::new(),
        scope: HashMap::new(),
        all_defs: HashMap::new(),
        expr_values: vec![None; model.exprs.len()],
        precision: DEFAULT_PRECISION,
        outputs: Vec::new(),
        poisoned: HashSet::new(),
        reordered: Vec::new(),
    };
    c.run();
    let Checker {
        diags,
        parties,
        values,
        precision,
        outputs,
        ..
    } = c;
    let mut diagnostics = diags;
    diagnostics.sort_by_key(|d| d.primary_span().map_or(0, |s| s.start));
    let model = if diagnostics.iter().any(Diagnostic::is_error) {
        None
    } else {
        Some(CheckedModel::new(
            model.name.name.clone(),
            precision,
            parties,
            values,
            outputs,
        ))
    };
    CheckResult { model, diagnostics }
}

#[derive(Clone, Copy)]
enum DefKind {
    Party,
    Value,
}

struct Def {
    kind: DefKind,
    span: Span,
}

struct Checker<'a> {
    read_ranges: &'a RangeReader<'a>,
    /// The values given to a flag (`ceil_mode:`): `true`, `false` (or a
    /// mistake `Checker::flag` reports), not names of values.
    flags: HashSet<ExprId>,
    ast: &'a ast::Model,
    diags: Vec<Diagnostic>,
    parties: Vec<Party>,
    values: Vec<Value>,
    /// Value names defined so far, in source order.
    scope: HashMap<String, ValueId>,
    /// Every name defined anywhere (first definition), for duplicate and
    /// use-before-definition errors.
    all_defs: HashMap<String, Def>,
    /// The value each expression evaluated to; `None` for an expression in error.
    expr_values: Vec<Option<ValueId>>,
    precision: u32,
    outputs: Vec<Output>,
    /// Names whose definition is in error: uses of them report nothing more.
    poisoned: HashSet<String>,
    /// Values a rewrite bypassed, with the value that replaced them
    /// (`relu` before `max_pool2d`, pooled first): used, as the source
    /// says, wherever the replacement is (for the unused warnings).
    reordered: Vec<(ValueId, ValueId)>,
}

impl Checker<'_> {
    fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn run(&mut self) {
        let ast = self.ast;
        self.declarations();
        let mut next_expr = 0u32;
        for item in &ast.items {
            match item {
                Item::Input {
                    name,
                    ty,
                    visibility,
                    range,
                    columns,
                    ..
                } => {
                    let shape = self.ty(ty, true);
                    let owner = self.visibility(visibility);
                    let mut range = range.as_ref().and_then(|r| self.range(r));
                    let mut ok = true;
                    let columns = match (columns, &shape) {
                        (Some(c), Some(shape)) => {
                            let found = self.column_ranges(c, shape);
                            ok = found.is_some();
                            // The hull: what every value lies in.
                            range = found.as_ref().map(|c| {
                                c.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, r| {
                                    (a.0.min(r.0), a.1.max(r.1))
                                })
                            });
                            found
                        }
                        _ => None,
                    };
                    if let (Some(shape), Some(owner), true) = (shape, owner, ok) {
                        let op = Op::Input {
                            owner,
                            range,
                            columns,
                        };
                        self.define(name, op, shape, name.span);
                    } else {
                        self.poison(name);
                    }
                }
                Item::Const {
                    name, ty, value, ..
                } => {
                    let shape = self.ty(ty, false);
                    let data = shape
                        .as_ref()
                        .and_then(|s| self.const_value(s, ty.span, value));
                    match (shape, data) {
                        (Some(shape), Some(data)) => {
                            self.define(name, Op::Const { data }, shape, name.span)
                        }
                        _ => self.poison(name),
                    }
                }
                Item::Let { name, value, .. } => {
                    for id in next_expr..=value.0 {
                        self.expr(ExprId(id));
                    }
                    next_expr = value.0 + 1;
                    match self.expr_values[value.0 as usize] {
                        Some(v) => {
                            if self.values[v.index()].name.is_none() {
                                self.values[v.index()].name = Some(name.name.clone());
                                self.values[v.index()].span =
                                    name.span.to(self.values[v.index()].span);
                            }
                            self.bind(name, v);
                        }
                        None => self.poison(name),
                    }
                }
                Item::Output {
                    value,
                    to,
                    labels,
                    span,
                } => {
                    let v = self.lookup(value);
                    let labels = match (v, labels) {
                        (Some(v), Some(a)) => self.output_labels(value, v, a),
                        _ => None,
                    };
                    let mut parties = Vec::new();
                    for p in to {
                        if let Some(pid) = self.party_ref(p) {
                            if self.parties[pid.index()].role == Role::Dealer {
                                self.error(
                                    Diagnostic::error(Code::OutputToDealer, format!("output `{}` is addressed to the dealer `{}`", value.name, p.name))
                                        .primary(p.span, "a dealer cannot receive outputs")
                                        .secondary(self.parties[pid.index()].span, "declared as a dealer here")
                                        .help("address the output to a computing party declared with `party`"),
                                );
                            } else if parties.contains(&pid) {
                                self.error(
                                    Diagnostic::error(
                                        Code::DuplicateDefinition,
                                        format!("`{}` is named twice in this output", p.name),
                                    )
                                    .primary(p.span, "named again here"),
                                );
                            } else {
                                parties.push(pid);
                            }
                        }
                    }
                    if let Some(v) = v {
                        self.outputs.push(Output {
                            name: value.name.clone(),
                            value: v,
                            to: parties,
                            labels,
                            span: *span,
                        });
                    }
                }
                Item::Precision { .. } | Item::Party { .. } | Item::Dealer { .. } => {}
            }
        }
        if !ast.items.iter().any(|i| matches!(i, Item::Output { .. })) {
            self.error(
                Diagnostic::error(
                    Code::NoOutputs,
                    format!("model `{}` has no outputs", ast.name.name),
                )
                .primary(ast.name.span, "nothing computed here is given to any party")
                .help("add `output NAME to PARTY;`"),
            );
        }
        self.unused();
    }

    /// Parties and precision come first: they may be referenced before their declaration.
    fn declarations(&mut self) {
        let ast = self.ast;
        let mut precision_span: Option<Span> = None;
        let mut dealer_span: Option<Span> = None;
        for item in &ast.items {
            match item {
                Item::Precision { bits, span } => {
                    if let Some(first) = precision_span {
                        self.error(
                            Diagnostic::error(Code::DuplicatePrecision, "`precision` is set twice")
                                .primary(*span, "set again here")
                                .secondary(first, "first set here"),
                        );
                        continue;
                    }
                    precision_span = Some(*span);
                    if PRECISION_RANGE.contains(bits) {
                        self.precision = *bits as u32;
                    } else {
                        self.error(
                            Diagnostic::error(
                                Code::BadPrecision,
                                format!("precision {bits} is out of range"),
                            )
                            .primary(
                                *span,
                                format!(
                                    "must be between {} and {} fractional bits",
                                    PRECISION_RANGE.start(),
                                    PRECISION_RANGE.end()
                                ),
                            )
                            .note(format!("the default is {DEFAULT_PRECISION}")),
                        );
                    }
                }
                Item::Party { name, .. } | Item::Dealer { name, .. } => {
                    let role = if matches!(item, Item::Dealer { .. }) {
                        Role::Dealer
                    } else {
                        Role::Compute
                    };
                    if role == Role::Dealer {
                        if let Some(first) = dealer_span {
                            self.error(
                                Diagnostic::error(
                                    Code::MultipleDealers,
                                    "more than one dealer is declared",
                                )
                                .primary(item.span(), "second dealer")
                                .secondary(first, "first dealer")
                                .help("keep one `dealer`; the others can be removed"),
                            );
                            continue;
                        }
                        dealer_span = Some(item.span());
                    }
                    if self.declare(name, DefKind::Party) {
                        self.parties.push(Party {
                            name: name.name.clone(),
                            role,
                            span: name.span,
                        });
                    }
                }
                _ => {}
            }
        }
        let compute = self
            .parties
            .iter()
            .filter(|p| p.role == Role::Compute)
            .count();
        if compute != 2 {
            let mut d = Diagnostic::error(
                Code::PartyCount,
                format!(
                    "a model needs exactly two computing parties, `{}` declares {compute}",
                    ast.name.name
                ),
            )
            .primary(ast.name.span, "declared here");
            for p in self.parties.iter().filter(|p| p.role == Role::Compute) {
                d = d.secondary(p.span, "computing party");
            }
            d = d.help(if compute < 2 {
                "declare the other party with `party NAME;`"
            } else {
                "Veil runs two-party protocols; a party that only supplies randomness is a `dealer`"
            });
            self.error(d);
        }
        // Value names: recorded up front so that uses before definition and
        // duplicates can point at the other place.
        for item in &ast.items {
            let name = match item {
                Item::Input { name, .. } | Item::Const { name, .. } | Item::Let { name, .. } => {
                    name
                }
                _ => continue,
            };
            self.declare(name, DefKind::Value);
        }
    }

    /// Record a definition; report a duplicate. Returns whether it was new.
    fn declare(&mut self, name: &ast::Ident, kind: DefKind) -> bool {
        if let Some(first) = self.all_defs.get(&name.name) {
            let what = match first.kind {
                DefKind::Party => "a party",
                DefKind::Value => "a value",
            };
            let first_span = first.span;
            self.error(
                Diagnostic::error(
                    Code::DuplicateDefinition,
                    format!("`{}` is defined more than once", name.name),
                )
                .primary(name.span, "defined again here")
                .secondary(first_span, format!("first defined here, as {what}"))
                .help("give each party, input, constant and `let` its own name"),
            );
            if matches!(kind, DefKind::Value) {
                self.poisoned.insert(name.name.clone());
            }
            return false;
        }
        self.all_defs.insert(
            name.name.clone(),
            Def {
                kind,
                span: name.span,
            },
        );
        true
    }

    fn define(&mut self, name: &ast::Ident, op: Op, shape: Shape, span: Span) {
        let id = self.push(op, shape, span);
        self.values[id.index()].name = Some(name.name.clone());
        self.bind(name, id);
    }

    fn bind(&mut self, name: &ast::Ident, id: ValueId) {
        // A duplicate was reported by `declare`; the first definition wins.
        if self
            .all_defs
            .get(&name.name)
            .is_some_and(|d| d.span == name.span)
        {
            self.scope.insert(name.name.clone(), id);
        }
    }

    /// A definition in error: later uses should not report it as unknown.
    fn poison(&mut self, name: &ast::Ident) {
        self.scope.remove(&name.name);
        self.all_defs.entry(name.name.clone()).or_insert(Def {
            kind: DefKind::Value,
            span: name.span,
        });
        self.poisoned.insert(name.name.clone());
    }

    fn push(&mut self, op: Op, shape: Shape, span: Span) -> ValueId {
        let id = ValueId(self.values.len() as u32);
        self.values.push(Value {
            op,
            shape,
            name: None,
            span,
            via: None,
        });
        id
    }

    /// Resolve a value name at this point of the model.
    fn lookup(&mut self, name: &ast::Ident) -> Option<ValueId> {
        if let Some(&id) = self.scope.get(&name.name) {
            return Some(id);
        }
        if self.poisoned.contains(&name.name) {
            return None;
        }
        match self.all_defs.get(&name.name) {
            Some(Def {
                kind: DefKind::Value,
                span,
            }) if span.start > name.span.start => {
                let def = *span;
                self.error(
                    Diagnostic::error(
                        Code::UseBeforeDefinition,
                        format!("`{}` is used before it is defined", name.name),
                    )
                    .primary(name.span, "used here")
                    .secondary(def, "defined later here")
                    .help(format!(
                        "move the definition of `{}` above this line",
                        name.name
                    )),
                );
            }
            Some(Def {
                kind: DefKind::Party,
                span,
            }) => {
                let def = *span;
                self.error(
                    Diagnostic::error(
                        Code::UnknownName,
                        format!("`{}` is a party, not a value", name.name),
                    )
                    .primary(name.span, "expected an input, constant or `let` name")
                    .secondary(def, "declared as a party here"),
                );
            }
            _ => {
                let candidates: Vec<&str> = self.scope.keys().map(String::as_str).collect();
                let mut d = Diagnostic::error(
                    Code::UnknownName,
                    format!("cannot find value `{}` in this model", name.name),
                )
                .primary(name.span, "not defined");
                if let Some(s) = suggest(&name.name, candidates) {
                    d = d.help(format!("did you mean `{s}`?"));
                } else {
                    d = d.help(format!(
                        "define it with `input {}: ...;`, `const` or `let` before this line",
                        name.name
                    ));
                }
                self.error(d);
            }
        }
        None
    }

    fn party_ref(&mut self, name: &ast::Ident) -> Option<PartyId> {
        if let Some(i) = self.parties.iter().position(|p| p.name == name.name) {
            return Some(PartyId(i as u32));
        }
        let mut d = Diagnostic::error(Code::UnknownParty, format!("unknown party `{}`", name.name))
            .primary(name.span, "not declared as a party");
        let names: Vec<&str> = self.parties.iter().map(|p| p.name.as_str()).collect();
        if let Some(s) = suggest(&name.name, names.iter().copied()) {
            d = d.help(format!("did you mean `{s}`?"));
        } else if names.is_empty() {
            d = d.help(format!("declare it with `party {};`", name.name));
        } else {
            d = d.note(format!("the declared parties are: {}", names.join(", ")));
        }
        self.error(d);
        None
    }

    /// A declared type's shape: at most [`MAX_DECLARED_RANK`] dimensions.
    fn ty(&mut self, ty: &ast::Type, allow_symbols: bool) -> Option<Shape> {
        let mut ok = true;
        if ty.dims.len() > MAX_DECLARED_RANK {
            self.error(
                Diagnostic::error(
                    Code::BadRank,
                    format!(
                        "tensors have at most four dimensions, this type has {}",
                        ty.dims.len()
                    ),
                )
                .primary(ty.span, "too many dimensions")
                .note("four is enough for an image batch, [batch, channels, height, width], and a convolution's weights"),
            );
            ok = false;
        }
        let mut dims = Vec::new();
        for d in &ty.dims {
            match &d.kind {
                DimKind::Known(0) => {
                    self.error(
                        Diagnostic::error(Code::ZeroDim, "a dimension of size 0")
                            .primary(d.span, "must be at least 1"),
                    );
                    ok = false;
                }
                DimKind::Known(n) => dims.push(Dim::Known(*n)),
                DimKind::Symbol(s) if !allow_symbols => {
                    self.error(
                        Diagnostic::error(
                            Code::SymbolicConst,
                            format!("a constant cannot have the symbolic dimension `{s}`"),
                        )
                        .primary(d.span, "only inputs take sizes at run time")
                        .help("write the size as a number"),
                    );
                    ok = false;
                }
                DimKind::Symbol(s) => dims.push(Dim::Symbol(s.clone())),
            }
        }
        let known = dims.iter().try_fold(1u64, |acc, d| match d {
            Dim::Known(n) => acc.checked_mul(*n),
            Dim::Symbol(_) => Some(acc),
        });
        if ok && known.is_none_or(|n| n > MAX_ELEMENTS) {
            let product = match known {
                Some(n) => format!("{n} elements"),
                None => "more than 2^64 elements".into(),
            };
            self.error(
                Diagnostic::error(
                    Code::TensorTooLarge,
                    format!("a tensor of {product}, more than the limit of 2^48"),
                )
                .primary(ty.span, "the product of these dimensions is too large")
                .help(
                    "check the dimensions; a size that grows with the data belongs in a named \
                     dimension such as `batch`",
                ),
            );
            ok = false;
        }
        ok.then_some(Shape(dims))
    }

    fn visibility(&mut self, vis: &ast::Visibility) -> Option<Owner> {
        match vis {
            ast::Visibility::Public { .. } => Some(Owner::Public),
            ast::Visibility::Private { party, .. } => {
                let pid = self.party_ref(party)?;
                if self.parties[pid.index()].role == Role::Dealer {
                    self.error(
                        Diagnostic::error(
                            Code::DealerInput,
                            format!("the dealer `{}` cannot own an input", party.name),
                        )
                        .primary(party.span, "a dealer supplies correlated randomness only")
                        .secondary(self.parties[pid.index()].span, "declared as a dealer here")
                        .help("make the owner a computing party (`party`), or the input `public`"),
                    );
                    return None;
                }
                Some(Owner::Party(pid))
            }
        }
    }

    fn literal(&mut self, value: f64, span: Span) -> bool {
        let max = max_literal_magnitude(self.precision);
        if value.abs() >= max {
            self.error(
                Diagnostic::error(
                    Code::LiteralOutOfRange,
                    format!("{value} does not fit the fixed-point encoding"),
                )
                .primary(
                    span,
                    format!(
                        "magnitude must be below 2^{} = {max}",
                        62 - 2 * self.precision
                    ),
                )
                .note(format!(
                    "values are fixed-point with {} fractional bits",
                    self.precision
                )),
            );
            return false;
        }
        let scaled = value * 2f64.powi(self.precision as i32);
        if value != 0.0 && scaled.round() == 0.0 {
            self.diags.push(
                Diagnostic::warning(
                    Code::PrecisionLoss,
                    format!("{value} rounds to 0 at precision {}", self.precision),
                )
                .primary(span, "too small to represent")
                .help("raise `precision`, or rescale the model"),
            );
        }
        true
    }

    fn range(&mut self, r: &ast::RangeLit) -> Option<(f64, f64)> {
        let ok = self.literal(r.lo.value, r.lo.span) & self.literal(r.hi.value, r.hi.span);
        if r.lo.value > r.hi.value {
            self.error(
                Diagnostic::error(
                    Code::BadRange,
                    format!("empty range [{}, {}]", r.lo.value, r.hi.value),
                )
                .primary(r.span, "the lower bound is above the upper bound")
                .help(format!("write `in [{}, {}]`", r.hi.value, r.lo.value)),
            );
            return None;
        }
        ok.then_some((r.lo.value, r.hi.value))
    }

    /// Per-column ranges (a list, or a file read by the front end): one
    /// finite, representable `[lo, hi]` with lo <= hi per entry of the
    /// input's numbered last dimension. `None` after reporting an error.
    fn column_ranges(&mut self, c: &ast::ColumnRanges, shape: &Shape) -> Option<Vec<(f64, f64)>> {
        let span = c.span();
        // Each pair with the place to report it at, and how to name it.
        let pairs: Vec<(f64, f64, Span, String)> = match c {
            ast::ColumnRanges::List { ranges, .. } => ranges
                .iter()
                .enumerate()
                .map(|(i, r)| (r.lo.value, r.hi.value, r.span, format!("column {}", i + 1)))
                .collect(),
            ast::ColumnRanges::File { path, span } => match (self.read_ranges)(path) {
                Ok(rows) => rows
                    .into_iter()
                    .enumerate()
                    .map(|(i, (lo, hi))| (lo, hi, *span, format!("row {} of `{path}`", i + 1)))
                    .collect(),
                Err(e) => {
                    self.error(
                        Diagnostic::error(
                            Code::BadRange,
                            format!("cannot read the column ranges in `{path}`"),
                        )
                        .primary(*span, e)
                        .help("give a .npy or .csv file of shape [k, 2], one `lo, hi` row per column, next to the model"),
                    );
                    return None;
                }
            },
        };
        let k = match shape.0.last() {
            None => {
                self.error(
                    Diagnostic::error(Code::BadRange, "per-column ranges on a scalar input")
                        .primary(span, "a scalar has no columns")
                        .help("write one range, `in [lo, hi]`"),
                );
                return None;
            }
            Some(Dim::Symbol(s)) => {
                self.error(
                    Diagnostic::error(
                        Code::BadRange,
                        format!("per-column ranges along the named dimension `{s}`"),
                    )
                    .primary(span, "one range per column needs a numbered last dimension")
                    .help("write one range, `in [lo, hi]`, or put the features last, as in `fixed[batch, 4]`"),
                );
                return None;
            }
            Some(Dim::Known(k)) => *k,
        };
        if pairs.len() as u64 != k {
            self.error(
                Diagnostic::error(
                    Code::BadRange,
                    format!(
                        "{} column range{} for an input of {k} column{}",
                        pairs.len(),
                        if pairs.len() == 1 { "" } else { "s" },
                        if k == 1 { "" } else { "s" }
                    ),
                )
                .primary(
                    span,
                    format!("expected {k}, one per entry of the last dimension"),
                )
                .help(format!(
                    "give one `[lo, hi]` per column ({k}), or one range `in [lo, hi]` for all"
                )),
            );
            return None;
        }
        let mut ok = true;
        for (lo, hi, at, what) in &pairs {
            if !lo.is_finite() || !hi.is_finite() {
                self.error(
                    Diagnostic::error(Code::BadRange, format!("the range of {what} is not finite"))
                        .primary(*at, "NaN or infinite bound")
                        .help("give finite bounds: the compiler checks overflow against them"),
                );
                ok = false;
                continue;
            }
            if !(self.literal(*lo, *at) & self.literal(*hi, *at)) {
                ok = false;
                continue;
            }
            if lo > hi {
                self.error(
                    Diagnostic::error(
                        Code::BadRange,
                        format!("empty range [{lo}, {hi}] for {what}"),
                    )
                    .primary(*at, "the lower bound is above the upper bound")
                    .help(format!("write `[{hi}, {lo}]`")),
                );
                ok = false;
            }
        }
        ok.then(|| pairs.iter().map(|p| (p.0, p.1)).collect())
    }

    fn const_value(
        &mut self,
        shape: &Shape,
        type_span: Span,
        value: &ConstValue,
    ) -> Option<Vec<f64>> {
        let mut data = Vec::new();
        let mut found_dims = Vec::new();
        let ok = match value {
            ConstValue::Number(n) => {
                data.push(n.value);
                self.literal(n.value, n.span)
            }
            ConstValue::Array(a) => self.array_data(a, 0, &mut found_dims, &mut data),
        };
        if !ok {
            return None;
        }
        let expected: Vec<u64> = shape
            .0
            .iter()
            .map(|d| match d {
                Dim::Known(n) => *n,
                Dim::Symbol(_) => 0,
            })
            .collect();
        if expected != found_dims {
            let found = if found_dims.is_empty() {
                "fixed".to_string()
            } else {
                format!(
                    "fixed[{}]",
                    found_dims
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let span = match value {
                ConstValue::Number(n) => n.span,
                ConstValue::Array(a) => a.span,
            };
            self.error(
                Diagnostic::error(
                    Code::ConstShape,
                    format!("constant value has shape {found}, but its type is {shape}"),
                )
                .primary(span, format!("this is {found}"))
                .secondary(type_span, format!("declared as {shape}")),
            );
            return None;
        }
        Some(data)
    }

    /// Flatten a (possibly nested) array literal, recording its dimensions.
    fn array_data(
        &mut self,
        a: &ast::ArrayLit,
        depth: usize,
        dims: &mut Vec<u64>,
        data: &mut Vec<f64>,
    ) -> bool {
        let len = a.elems.len() as u64;
        if dims.len() == depth {
            dims.push(len);
        } else if dims[depth] != len {
            self.error(
                Diagnostic::error(
                    Code::ConstShape,
                    "rows of an array literal have different lengths",
                )
                .primary(
                    a.span,
                    format!(
                        "this row has {len} elements, an earlier one has {}",
                        dims[depth]
                    ),
                ),
            );
            return false;
        }
        let mut ok = true;
        for e in &a.elems {
            ok &= match e {
                ArrayElem::Number(n) => {
                    if depth + 1 != dims.len() && dims.len() > depth + 1 {
                        self.error(
                            Diagnostic::error(
                                Code::ConstShape,
                                "an array literal mixes numbers and rows",
                            )
                            .primary(n.span, "expected a row here"),
                        );
                        return false;
                    }
                    data.push(n.value);
                    self.literal(n.value, n.span)
                }
                ArrayElem::Array(inner) => {
                    if dims.len() == depth + 1 && !data.is_empty() {
                        self.error(
                            Diagnostic::error(
                                Code::ConstShape,
                                "an array literal mixes numbers and rows",
                            )
                            .primary(inner.span, "expected a number here"),
                        );
                        return false;
                    }
                    self.array_data(inner, depth + 1, dims, data)
                }
            };
        }
        ok
    }

    fn shape(&self, v: ValueId) -> &Shape {
        &self.values[v.index()].shape
    }

    /// Check one expression; its operands were checked before it.
    fn expr(&mut self, id: ExprId) {
        let ast = self.ast;
        let e = ast.expr(id);
        let result = match &e.kind {
            ExprKind::Number(v) => {
                if self.literal(*v, e.span) {
                    Some(self.push(Op::Const { data: vec![*v] }, Shape::scalar(), e.span))
                } else {
                    None
                }
            }
            // `ceil_mode: true`: a flag `Checker::flag` reads, not a value.
            ExprKind::Name(_) if self.flags.contains(&id) => None,
            ExprKind::Name(n) => self.lookup(n),
            ExprKind::Neg(a) => self.operand(*a).map(|a| {
                let s = self.shape(a).clone();
                self.push(Op::Neg(a), s, e.span)
            }),
            ExprKind::Binary {
                op,
                op_span,
                lhs,
                rhs,
            } => match (self.operand(*lhs), self.operand(*rhs)) {
                (Some(l), Some(r)) => self.binary(
                    *op,
                    l,
                    r,
                    [ast.expr(*lhs).span, *op_span, ast.expr(*rhs).span],
                    e.span,
                ),
                _ => None,
            },
            ExprKind::Call { func, args } => self.call(func, args, e.span),
            ExprKind::Via { expr, protocol } => {
                let protocol_value = match protocol.name.as_str() {
                    "paillier" => Some(Protocol::Paillier),
                    "shares" => Some(Protocol::Shares),
                    "rlwe" => Some(Protocol::Rlwe),
                    other => {
                        let mut d = Diagnostic::error(
                            Code::UnknownProtocol,
                            format!("unknown protocol `{other}`"),
                        )
                        .primary(
                            protocol.span,
                            "expected one of `paillier`, `shares`, `rlwe`",
                        );
                        if let Some(s) = suggest(other, ["paillier", "shares", "rlwe"]) {
                            d = d.help(format!("did you mean `{s}`?"));
                        }
                        self.error(d);
                        None
                    }
                };
                let inner = ast.expr(*expr);
                if matches!(
                    inner.kind,
                    ExprKind::Name(_) | ExprKind::Number(_) | ExprKind::Via { .. }
                ) {
                    self.error(
                        Diagnostic::error(
                            Code::ViaWithoutOperation,
                            "`via` needs an operation to apply to",
                        )
                        .primary(inner.span, "this is not an operation")
                        .help("write `via` after an operation, such as `x @ w via paillier`"),
                    );
                    None
                } else {
                    let v = self.expr_values[expr.0 as usize];
                    if let (Some(v), Some(p)) = (v, protocol_value) {
                        let at = self.conv_product(v, p).unwrap_or(v);
                        self.values[at.index()].via = Some(p);
                    }
                    v
                }
            }
        };
        self.expr_values[id.0 as usize] = result;
    }

    /// `conv2d(...) via rlwe`: the convolution's product (the value under
    /// its final permute and bias; a grouped one's products under their
    /// `Sum`), which RLWE runs (as HomConv when cheaper); `None` for
    /// anything else.
    fn conv_product(&self, v: ValueId, p: Protocol) -> Option<ValueId> {
        if p != Protocol::Rlwe {
            return None;
        }
        let Op::Permute(mut y, _) = self.values[v.index()].op else {
            return None;
        };
        if let Op::Add(a, _) = self.values[y.index()].op {
            y = a;
        }
        match self.values[y.index()].op {
            Op::MatMul(cols, _) if matches!(self.values[cols.index()].op, Op::Im2col(..)) => {
                Some(y)
            }
            // A grouped convolution: its products, which RLWE runs with
            // the `Sum` (`Chooser::rlwe_grouped`).
            Op::Sum(p) => match self.values[p.index()].op {
                Op::Mul(cols, _) if matches!(self.values[cols.index()].op, Op::Im2col(..)) => {
                    Some(p)
                }
                _ => None,
            },
            _ => None,
        }
    }

    fn operand(&self, id: ExprId) -> Option<ValueId> {
        self.expr_values[id.0 as usize]
    }

    /// `spans`: left operand, operator, right operand.
    fn binary(
        &mut self,
        op: ast::BinOp,
        l: ValueId,
        r: ValueId,
        spans: [Span; 3],
        span: Span,
    ) -> Option<ValueId> {
        let (lsh, rsh) = (self.shape(l).clone(), self.shape(r).clone());
        let [ls, op_span, rs] = spans;
        if op == ast::BinOp::MatMul {
            return self.matmul(l, r, lsh, rsh, spans, span);
        }
        // a / b is a * (1/b): by a constant, its reciprocal folded (no
        // protocol); by anything else, `reciprocal` (a range without 0).
        let r = if op == ast::BinOp::Div {
            match &self.values[r.index()].op {
                Op::Const { data } if data.iter().all(|d| *d != 0.0) => {
                    let data = data.iter().map(|d| 1.0 / d).collect();
                    self.push(Op::Const { data }, rsh.clone(), rs)
                }
                _ => self.push(Op::Reciprocal(r), rsh.clone(), rs),
            }
        } else {
            r
        };
        let (shape, (l, r), restore) = match self.broadcast_operands(l, r, span) {
            Some(s) => s,
            None => {
                self.error(
                    Diagnostic::error(
                        Code::ShapeMismatch,
                        format!("cannot apply `{}` to {lsh} and {rsh}", op.symbol()),
                    )
                    .primary(op_span, "shapes do not agree")
                    .secondary(ls, format!("this is {lsh}"))
                    .secondary(rs, format!("this is {rsh}"))
                    .note(BROADCAST_NOTE)
                    .help(if lsh.rank() == rsh.rank() && lsh.rank() > 0 {
                        "for a dot product or matrix product, use `@`"
                    } else {
                        "check the dimensions declared on the inputs"
                    }),
                );
                return None;
            }
        };
        let op = match op {
            ast::BinOp::Add => Op::Add(l, r),
            ast::BinOp::Sub => Op::Sub(l, r),
            ast::BinOp::Div => Op::Mul(l, r),
            _ => Op::Mul(l, r),
        };
        Some(self.push_restored(op, shape, restore, span))
    }

    fn matmul(
        &mut self,
        l: ValueId,
        r: ValueId,
        lsh: Shape,
        rsh: Shape,
        spans: [Span; 3],
        span: Span,
    ) -> Option<ValueId> {
        let [ls, op_span, rs] = spans;
        for (sh, s) in [(&lsh, ls), (&rsh, rs)] {
            if sh.is_scalar() {
                self.error(
                    Diagnostic::error(Code::BadRank, "`@` needs vectors or matrices, not a scalar")
                        .primary(s, "this is a scalar")
                        .help("to scale by a scalar, use `*`"),
                );
                return None;
            }
        }
        let inner_l = lsh.0.last().expect("non-scalar");
        let inner_r = &rsh.0[0];
        if inner_l != inner_r {
            self.error(
                Diagnostic::error(
                    Code::MatMulMismatch,
                    format!("cannot multiply {lsh} by {rsh}"),
                )
                .primary(
                    op_span,
                    format!("inner dimensions {inner_l} and {inner_r} differ"),
                )
                .secondary(ls, format!("this is {lsh}"))
                .secondary(rs, format!("this is {rsh}"))
                .note(
                    "in `a @ b`, the last dimension of `a` must equal the first dimension of `b`",
                ),
            );
            return None;
        }
        let mut dims: Vec<Dim> = lsh.0[..lsh.rank() - 1].to_vec();
        dims.extend_from_slice(&rsh.0[1..]);
        Some(self.push(Op::MatMul(l, r), Shape(dims), span))
    }

    /// A call of a builtin, as its entry in [`BUILTINS`] describes it.
    fn call(&mut self, func: &ast::Ident, args: &[ast::Arg], span: Span) -> Option<ValueId> {
        let name = func.name.as_str();
        let (positional, named): (Vec<&ast::Arg>, Vec<&ast::Arg>) =
            args.iter().partition(|a| a.name.is_none());
        let Some(builtin) = builtins::lookup(name) else {
            let mut d =
                Diagnostic::error(Code::UnknownFunction, format!("unknown function `{name}`"))
                    .primary(func.span, "not a builtin");
            if let Some(s) = suggest(name, builtins::names()) {
                d = d.help(format!("did you mean `{s}`?"));
            } else {
                let all: Vec<&str> = builtins::names().collect();
                d = d.note(format!("the builtins are: {}", all.join(", ")));
            }
            self.error(d);
            return None;
        };
        let allowed = builtin.named();
        let allowed_named: Vec<&str> = allowed.iter().map(|n| n.name()).collect();
        // Named arguments are checked even when an operand is in error.
        let approx = self.approx(&named, &allowed);
        let mut ok = approx.is_some();
        for a in &named {
            let n = a.name.as_ref().expect("named");
            if !allowed_named.contains(&n.name.as_str()) {
                let mut d = Diagnostic::error(
                    Code::UnknownArgument,
                    format!("`{name}` has no argument named `{}`", n.name),
                )
                .primary(n.span, "unknown argument");
                d = match suggest(&n.name, allowed_named.iter().copied()) {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None if allowed_named.is_empty() => {
                        d.note(format!("`{name}` takes no named arguments"))
                    }
                    None => d.note(format!("`{name}` accepts: {}", allowed_named.join(", "))),
                };
                self.error(d);
                ok = false;
            }
        }
        let Some(form) = builtin.form(positional.len()) else {
            let arity = builtin.arities();
            let want = arity
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" or ");
            self.error(
                Diagnostic::error(
                    Code::BadArguments,
                    format!(
                        "`{name}` takes {want} positional argument{}, {} given",
                        if arity == [1] { "" } else { "s" },
                        positional.len()
                    ),
                )
                .primary(span, "wrong number of arguments")
                .note(format!("signature: {}", builtin.signature())),
            );
            return None;
        };
        // A named argument of another form of this builtin (`max(a, b, axis: 1)`).
        for a in &named {
            let n = a.name.as_ref().expect("named");
            let known = allowed_named.contains(&n.name.as_str());
            if known && !form.args.named().iter().any(|k| k.name() == n.name) {
                let takes: Vec<&str> = (builtin.forms.iter())
                    .filter(|f| f.args.named().iter().any(|k| k.name() == n.name))
                    .map(|f| f.call)
                    .collect();
                self.error(
                    Diagnostic::error(
                        Code::UnknownArgument,
                        format!("`{}` takes no argument named `{}`", form.call, n.name),
                    )
                    .primary(n.span, "not an argument of this form")
                    .note(format!("`{}:` belongs to {}", n.name, takes.join(", ")))
                    .help(format!("remove `{}:`", n.name)),
                );
                ok = false;
            }
        }
        // The tensor arguments.
        let mut tensors = Vec::new();
        let params = form.args.positional();
        for (i, a) in positional.iter().enumerate() {
            let param = params.get(i).unwrap_or(&Param::Tensor);
            if *param != Param::Tensor {
                continue;
            }
            match &a.value {
                ArgValue::Expr(e) => match self.operand(*e) {
                    Some(v) => tensors.push(v),
                    None => ok = false,
                },
                ArgValue::Array(arr) => {
                    self.error(
                        Diagnostic::error(
                            Code::BadArguments,
                            format!("`{name}` takes a tensor here, not an array literal"),
                        )
                        .primary(arr.span, "array literal")
                        .help("declare the array as a `const` and pass its name"),
                    );
                    ok = false;
                }
            }
        }
        if !ok {
            return None;
        }
        let mut x = tensors[0];
        let mut restore: Restore = None;
        let xs = self.shape(x).clone();
        match form.args {
            Args::Softmax { log } => return self.softmax(name, log, x, &positional, &named, span),
            Args::LeakyRelu => return self.leaky_relu(x, &named, None, span),
            Args::LeakyReluSlope => return self.leaky_relu(x, &named, Some(positional[1]), span),
            Args::Hardtanh => return self.hardtanh(x, &named, span),
            Args::Sqrt => {
                let r = self.push(Op::Rsqrt(x), xs.clone(), span);
                return Some(self.push(Op::Mul(x, r), xs, span));
            }
            Args::Conv { spatial, .. } => {
                return self.conv(name, spatial, &tensors, &positional, &named, span)
            }
            Args::Pool { spatial, max } => {
                return self.pool(name, spatial, max, x, &positional, &named, span)
            }
            Args::GlobalAvgPool => return self.global_avg_pool(name, x, positional[0], span),
            Args::BatchNorm { .. } => {
                return self.batch_norm(name, &tensors, &positional, &named, span)
            }
            Args::Concat => return self.concat(name, &tensors, &positional, &named, span),
            Args::Narrow => return self.narrow(name, x, &positional, span),
            _ => {}
        }
        let shape = match form.args.shape() {
            ShapeRule::Rearranged => {
                return self.rearrange(name, form.args, x, &positional, &named, span)
            }
            ShapeRule::Same => xs,
            ShapeRule::Windowed => unreachable!("returned above"),
            ShapeRule::DropLast => {
                if xs.is_scalar() {
                    self.error(
                        Diagnostic::error(
                            Code::BadRank,
                            format!(
                                "`{name}` reduces the last dimension, but its argument is a scalar"
                            ),
                        )
                        .primary(positional[0].span, "this is a scalar"),
                    );
                    return None;
                }
                let axis = named
                    .iter()
                    .find(|a| a.name.as_ref().is_some_and(|n| n.name == "axis"));
                let axis = match axis {
                    Some(a) => self.axis(name, a, &xs)?,
                    None => xs.rank() - 1,
                };
                // Along another axis: move it last first (local data movement).
                let last = xs.rank() - 1;
                if axis != last {
                    let perm: Vec<usize> = (0..xs.rank())
                        .filter(|&k| k != axis)
                        .chain([axis])
                        .collect();
                    let moved = Shape(perm.iter().map(|&k| xs.0[k].clone()).collect());
                    x = self.push(Op::Permute(x, perm), moved, span);
                }
                let mut dims = xs.0.clone();
                dims.remove(axis);
                Shape(dims)
            }
            ShapeRule::Broadcast => {
                let ys = self.shape(tensors[1]).clone();
                let Some((shape, operands, moved)) = self.broadcast_operands(x, tensors[1], span)
                else {
                    self.error(
                        Diagnostic::error(
                            Code::ShapeMismatch,
                            format!("cannot take `{name}` of {xs} and {ys}"),
                        )
                        .primary(positional[0].span, format!("this is {xs}"))
                        .secondary(positional[1].span, format!("this is {ys}"))
                        .note(BROADCAST_NOTE),
                    );
                    return None;
                };
                x = operands.0;
                tensors[1] = operands.1;
                restore = moved;
                shape
            }
        };
        let op = match form.args {
            Args::Map(op) | Args::Reduce(op) => op(x),
            Args::Pair(op) => {
                let v = op(x, tensors[1]);
                return Some(self.push_restored(v, shape, restore, span));
            }
            Args::Approximated(op) => op(x, approx.expect("checked above")),
            Args::Coefficients(op) => op(x, self.coefficients(positional[1])?),
            Args::Bounds(op) => {
                let params = form.args.positional();
                let lo = self.number_arg(positional[1], params[1].what())?;
                let hi = self.number_arg(positional[2], params[2].what())?;
                if lo >= hi {
                    self.error(
                        Diagnostic::error(
                            Code::BadDomain,
                            format!("{name} bounds [{lo}, {hi}] are empty"),
                        )
                        .primary(
                            positional[1].span.to(positional[2].span),
                            "need lower < upper",
                        ),
                    );
                    return None;
                }
                op(x, lo, hi)
            }
            Args::Reshape
            | Args::Flatten
            | Args::Transpose
            | Args::Permute
            | Args::Softmax { .. }
            | Args::LeakyRelu
            | Args::LeakyReluSlope
            | Args::Hardtanh
            | Args::Sqrt
            | Args::Conv { .. }
            | Args::Pool { .. }
            | Args::GlobalAvgPool
            | Args::BatchNorm { .. }
            | Args::Concat
            | Args::Narrow => {
                unreachable!("returned above")
            }
        };
        Some(self.push(op, shape, span))
    }

    /// `axis: k` of a reduction of a `shape` value: a whole-number literal
    /// in `-rank..rank` (negative counts from the end), as an index.
    fn axis(&mut self, name: &str, arg: &ast::Arg, shape: &Shape) -> Option<usize> {
        let rank = shape.rank() as i64;
        let value = match &arg.value {
            ArgValue::Expr(e) => literal_value(self.ast, *e),
            ArgValue::Array(_) => None,
        };
        match value {
            Some(k) if k.fract() == 0.0 && k >= -(rank as f64) && k < rank as f64 => {
                let k = k as i64;
                Some(if k < 0 { rank + k } else { k } as usize)
            }
            _ => {
                let along: Vec<String> = (shape.0.iter().enumerate())
                    .map(|(k, d)| format!("`axis: {k}` runs along {d}"))
                    .collect();
                self.error(
                    Diagnostic::error(
                        Code::BadArguments,
                        format!("`{name}` of a {shape} value has no such axis"),
                    )
                    .primary(
                        arg.span,
                        format!("expected a whole number from {} to {}", -rank, rank - 1),
                    )
                    .note(format!(
                        "{}; negative axes count from the end (`-1` is the last)",
                        along.join(", ")
                    ))
                    .help(format!(
                        "the last axis is `axis: {}`, or `axis: -1`",
                        rank - 1
                    )),
                );
                None
            }
        }
    }

    /// `reshape`, `flatten`, `transpose` or `permute` of `x`: the same
    /// values in the shape its literal arguments give (`Op::Reshape`,
    /// `Op::Permute`), or E0216 naming what does not fit.
    fn rearrange(
        &mut self,
        name: &str,
        args: Args,
        x: ValueId,
        positional: &[&ast::Arg],
        named: &[&ast::Arg],
        span: Span,
    ) -> Option<ValueId> {
        let xs = self.shape(x).clone();
        let rank = xs.rank();
        let bad = |what: String, at: Span, label: &str| {
            Diagnostic::error(Code::BadReshape, what).primary(at, label.to_string())
        };
        match args {
            Args::Transpose | Args::Permute => {
                let perm: Vec<usize> = if matches!(args, Args::Transpose) {
                    let a = self.axis(name, positional[1], &xs)?;
                    let b = self.axis(name, positional[2], &xs)?;
                    let mut perm: Vec<usize> = (0..rank).collect();
                    perm.swap(a, b);
                    perm
                } else {
                    let dims = self.dims(positional[1])?;
                    let perm: Vec<usize> = dims
                        .iter()
                        .map(|&d| if d < 0 { d + rank as i64 } else { d })
                        .filter(|&d| (0..rank as i64).contains(&d))
                        .map(|d| d as usize)
                        .collect();
                    let mut sorted = perm.clone();
                    sorted.sort_unstable();
                    if dims.len() != rank || sorted != (0..rank).collect::<Vec<_>>() {
                        self.error(
                            bad(
                                format!("`permute` of a {xs} value needs each of its {rank} dimensions once"),
                                positional[1].span,
                                "not a permutation of the dimensions",
                            )
                            .note(format!("dimension `i` of the result is dimension `dims[i]` of the operand, from 0 to {}", rank.saturating_sub(1)))
                            .help(if rank == 2 {
                                "`permute(x, [1, 0])` swaps the two dimensions".to_string()
                            } else {
                                format!("for example `permute(x, [{}])` keeps the order", (0..rank).map(|k| k.to_string()).collect::<Vec<_>>().join(", "))
                            }),
                        );
                        return None;
                    }
                    perm
                };
                let shape = Shape(perm.iter().map(|&k| xs.0[k].clone()).collect());
                Some(self.push(Op::Permute(x, perm), shape, span))
            }
            Args::Flatten => {
                let mut range = (0, rank.saturating_sub(1));
                for a in named {
                    let n = a.name.as_ref().expect("named");
                    let k = if rank == 0 {
                        0
                    } else {
                        self.axis(name, a, &xs)?
                    };
                    if n.name == "start_dim" {
                        range.0 = k;
                    } else {
                        range.1 = k;
                    }
                }
                let (start, end) = range;
                if rank > 0 && start > end {
                    self.error(bad(
                        format!("`flatten` from dimension {start} to {end} of a {xs} value merges nothing"),
                        span,
                        "`start_dim` after `end_dim`",
                    ));
                    return None;
                }
                if rank == 0 {
                    return Some(self.push(Op::Reshape(x), Shape(vec![Dim::Known(1)]), span));
                }
                let merged = &xs.0[start..=end];
                let Some(d) = one_dim(merged) else {
                    self.error(
                        bad(
                            format!("`flatten` cannot merge {} of a {xs} value", dims_text(merged)),
                            span,
                            "a named dimension merged with others",
                        )
                        .note("a dimension is a number or one name (such as `batch`), not a product of them")
                        .help(if start == 0 && end > 0 {
                            "keep the batch apart with `start_dim: 1`"
                        } else {
                            "flatten only numbered dimensions together"
                        }),
                    );
                    return None;
                };
                let mut dims = xs.0[..start].to_vec();
                dims.push(d);
                dims.extend_from_slice(&xs.0[end + 1..]);
                Some(self.push(Op::Reshape(x), Shape(dims), span))
            }
            Args::Reshape => {
                let want = self.dims(positional[1])?;
                let at = positional[1].span;
                let (known, symbols) = count(&xs);
                let inferred = want.iter().filter(|&&d| d == -1).count();
                if inferred > 1 || want.iter().any(|&d| d == 0 || d < -1) {
                    self.error(
                        bad(
                            format!("cannot reshape {xs} to {want:?}"),
                            at,
                            "dimensions are whole numbers from 1, and at most one `-1`",
                        )
                        .note("`-1` stands for whatever the other dimensions leave"),
                    );
                    return None;
                }
                let given = (want.iter().filter(|&&d| d > 0))
                    .fold(1u64, |a, &d| a.saturating_mul(d as u64));
                let rest = (known % given == 0).then(|| known / given);
                let filler = match (inferred, rest, symbols.as_slice()) {
                    (0, Some(1), []) => None,
                    (1, Some(r), []) => Some(Dim::Known(r)),
                    (1, Some(1), [s]) => Some(Dim::Symbol(s.clone())),
                    _ => {
                        let what = if symbols.is_empty() {
                            format!("{known} elements")
                        } else {
                            format!("{known} × {} elements", symbols.join(" × "))
                        };
                        self.error(
                            bad(format!("cannot reshape {xs} to {want:?}"), at, format!("{xs} has {what}").as_str())
                                .note("a reshape keeps every value, in row-major order; `-1` stands for the rest, which must be a number or one named dimension")
                                .help(if symbols.len() == 1 && inferred == 0 {
                                    format!("write `-1` where `{}` goes", symbols[0])
                                } else {
                                    "check the dimensions".to_string()
                                }),
                        );
                        return None;
                    }
                };
                let dims = want
                    .iter()
                    .map(|&d| {
                        if d == -1 {
                            filler.clone().expect("inferred")
                        } else {
                            Dim::Known(d as u64)
                        }
                    })
                    .collect();
                Some(self.push(Op::Reshape(x), Shape(dims), span))
            }
            _ => unreachable!("only rearranging forms have ShapeRule::Rearranged"),
        }
    }

    /// `softmax(x, axis: k)` written out: `e = exp(x - max(x, axis: k))`
    /// (in (0, 1]: the graph knows an entry less its own maximum is at most
    /// 0), then `e * reciprocal(max(sum(e, axis: k), 1))`: the sum is at
    /// least 1 exactly (the maximum's own term), and the comparison with 1
    /// (one per row) lets the reciprocal's range start there.
    /// `log_softmax` (`log`) is `(x - max) - log(max(sum(e), 1))`, the log's
    /// range starting at 1 the same way.
    fn softmax(
        &mut self,
        name: &str,
        log: bool,
        x: ValueId,
        positional: &[&ast::Arg],
        named: &[&ast::Arg],
        span: Span,
    ) -> Option<ValueId> {
        let xs = self.shape(x).clone();
        if xs.is_scalar() {
            self.error(
                Diagnostic::error(
                    Code::BadRank,
                    format!("`{name}` runs along a dimension, but its argument is a scalar"),
                )
                .primary(positional[0].span, "this is a scalar"),
            );
            return None;
        }
        let axis = match named
            .iter()
            .find(|a| a.name.as_ref().is_some_and(|n| n.name == "axis"))
        {
            Some(a) => self.axis(name, a, &xs)?,
            None => xs.rank() - 1,
        };
        if let Dim::Symbol(s) = &xs.0[axis] {
            self.error(
                Diagnostic::error(
                    Code::BadRank,
                    format!("`{name}` along the named dimension `{s}`"),
                )
                .primary(span, format!("dimension {axis} of {xs} is `{s}`"))
                .note("softmax runs along a numbered dimension, such as the classes of each row")
                .help(format!("give `axis:` a numbered dimension of {xs}")),
            );
            return None;
        }
        let max = self.reduce_along(Op::MaxReduce, x, axis, span);
        let centred = self.along(x, max, axis, Op::Sub, span);
        let e = self.push(Op::Exp(centred), xs.clone(), span);
        let sum = self.reduce_along(Op::Sum, e, axis, span);
        let one = self.push(Op::Const { data: vec![1.0] }, Shape::scalar(), span);
        let sum_shape = self.shape(sum).clone();
        let at_least_one = self.push(Op::Max(sum, one), sum_shape.clone(), span);
        if log {
            let log_sum = self.push(Op::Log(at_least_one), sum_shape, span);
            return Some(self.along(centred, log_sum, axis, Op::Sub, span));
        }
        let inverse = self.push(Op::Reciprocal(at_least_one), sum_shape, span);
        Some(self.along(e, inverse, axis, Op::Mul, span))
    }

    /// An output's `labels [..]` table: on an `argmax`, one distinct number
    /// per entry of the ranked axis (E0220 otherwise).
    fn output_labels(
        &mut self,
        name: &ast::Ident,
        v: ValueId,
        array: &ast::ArrayLit,
    ) -> Option<Vec<f64>> {
        let numbers: Option<Vec<f64>> = array
            .elems
            .iter()
            .map(|e| match e {
                ast::ArrayElem::Number(n) => Some(n.value),
                ast::ArrayElem::Array(_) => None,
            })
            .collect();
        let bad = |m: String, label: String| {
            Diagnostic::error(Code::BadLabels, m).primary(array.span, label)
        };
        let Op::Argmax(scores) = &self.values[v.index()].op else {
            self.error(
                bad(
                    format!(
                        "`{}` has a label table, but it is not an `argmax`",
                        name.name
                    ),
                    "labels for an index".into(),
                )
                .help(format!(
                    "bind `let {} = argmax(...);` and output that",
                    name.name
                )),
            );
            return None;
        };
        let k = match self.shape(*scores).0.last() {
            Some(Dim::Known(k)) => *k as usize,
            _ => 0,
        };
        let Some(numbers) = numbers else {
            self.error(bad(
                "labels must be numbers".into(),
                "a nested array".into(),
            ));
            return None;
        };
        let distinct = numbers
            .iter()
            .enumerate()
            .all(|(i, a)| numbers[..i].iter().all(|b| a != b));
        if numbers.len() != k || !distinct {
            self.error(bad(
                format!(
                    "`{}` ranks {k} entries, so its labels are {k} distinct numbers",
                    name.name
                ),
                format!(
                    "{} label{}{}",
                    numbers.len(),
                    if numbers.len() == 1 { "" } else { "s" },
                    if distinct { "" } else { ", some repeated" }
                ),
            ));
            return None;
        }
        Some(numbers)
    }

    /// `conv2d(x, w, b?, stride:, padding:, dilation:, groups:)` (or
    /// `conv1d`, `spatial` 1) written out in local data movement and one
    /// product: the patches `cols = Op::Im2col(x)` (`[batch, Ho, Wo, C·K]`)
    /// times `w` reshaped to `[Cout, C·K]` and transposed (`Op::MatMul`, the
    /// batch and positions as rows), plus `b`, then the output channels
    /// moved to dimension 1. With `groups > 1` each output channel has its
    /// own patch (`[batch, Ho, Wo, Cout, C/groups·K]`), multiplied entry by
    /// entry with its row of `w` and summed (`Op::Mul`, `Op::Sum`): a
    /// depthwise convolution multiplies each input entry once per kernel
    /// offset, as many products as the convolution has.
    fn conv(
        &mut self,
        name: &str,
        spatial: usize,
        tensors: &[ValueId],
        positional: &[&ast::Arg],
        named: &[&ast::Arg],
        span: Span,
    ) -> Option<ValueId> {
        let (x, w) = (tensors[0], tensors[1]);
        let (xs, ws) = (self.shape(x).clone(), self.shape(w).clone());
        let axes = if spatial == 2 {
            "height, width"
        } else {
            "length"
        };
        let kernel_axes = if spatial == 2 { "kh, kw" } else { "k" };
        if xs.rank() != spatial + 2 {
            self.error(
                Diagnostic::error(
                    Code::BadRank,
                    format!("`{name}` takes `x` as [batch, channels, {axes}], not {xs}"),
                )
                .primary(positional[0].span, format!("this is {xs}"))
                .help(if xs.rank() == spatial + 1 {
                    "give it a batch dimension first: declare `x` as `fixed[batch, ...]`, or `reshape(x, [1, ...])` with its sizes".to_string()
                } else {
                    format!("reshape it to {} dimensions with `reshape`", spatial + 2)
                }),
            );
            return None;
        }
        if ws.rank() != spatial + 2 {
            self.error(
                Diagnostic::error(
                    Code::BadRank,
                    format!(
                        "`{name}` takes `w` as [out_channels, in_channels / groups, {kernel_axes}], not {ws}"
                    ),
                )
                .primary(positional[1].span, format!("this is {ws}")),
            );
            return None;
        }
        // Channels, sizes and kernels are numbers; only the batch may be named.
        let known = |sh: &Shape, from: usize| -> Option<Vec<u64>> {
            sh.0[from..]
                .iter()
                .map(|d| match d {
                    Dim::Known(n) => Some(*n),
                    Dim::Symbol(_) => None,
                })
                .collect()
        };
        let (Some(xd), Some(wd)) = (known(&xs, 1), known(&ws, 0)) else {
            let (at, sh) = if known(&xs, 1).is_none() {
                (positional[0].span, &xs)
            } else {
                (positional[1].span, &ws)
            };
            self.error(
                Diagnostic::error(
                    Code::BadRank,
                    format!(
                        "`{name}` needs numbered channel, kernel and {axes} dimensions, not {sh}"
                    ),
                )
                .primary(at, format!("this is {sh}"))
                .note("only the batch, dimension 0 of `x`, may be named"),
            );
            return None;
        };
        let (c, cout, cg) = (xd[0], wd[0], wd[1]);
        let window = self.window(name, spatial, named)?;
        let groups = window.groups as u64;
        if c % groups != 0 || cout % groups != 0 {
            let at = (named.iter())
                .find(|a| a.name.as_ref().is_some_and(|n| n.name == "groups"))
                .map_or(span, |a| a.span);
            self.error(
                Diagnostic::error(
                    Code::BadArguments,
                    format!("`groups: {groups}` does not divide the {c} input and {cout} output channels"),
                )
                .primary(at, "channels are split into this many groups")
                .note("each group convolves C / groups input channels into Cout / groups output channels")
                .help({
                    let common: Vec<String> = (1..=c.min(cout))
                        .filter(|g| c % g == 0 && cout % g == 0)
                        .map(|g| g.to_string())
                        .collect();
                    format!("`groups:` must divide both {c} and {cout}: {}", common.join(", "))
                }),
            );
            return None;
        }
        if cg.checked_mul(groups) != Some(c) {
            self.error(
                Diagnostic::error(
                    Code::ShapeMismatch,
                    format!("`{name}` of {xs} by {ws}: `x` has {c} channel{}, `w` takes {}", if c == 1 { "" } else { "s" }, cg.saturating_mul(groups)),
                )
                .primary(positional[0].span, format!("{c} input channel{}", if c == 1 { "" } else { "s" }))
                .secondary(positional[1].span, format!("{cg} input channel{}{}", if cg == 1 { "" } else { "s" }, if groups > 1 { format!(" per group, {groups} groups") } else { String::new() }))
                .note(format!("`w` is [out_channels, in_channels / groups, {kernel_axes}]: its dimension 1 times `groups` must be the channels of `x`, dimension 1"))
                .help(if groups == 1 && c % cg == 0 && cg < c {
                    format!("for a grouped convolution give `groups: {}`", c / cg)
                } else {
                    "check the channels of `x` and the weights".to_string()
                }),
            );
            return None;
        }
        let kernel: Vec<usize> = wd[2..].iter().map(|&k| k as usize).collect();
        let window = plan::Window {
            kernel,
            per_group: if groups > 1 {
                (cout / groups) as usize
            } else {
                1
            },
            ..window
        };
        let mut out_spatial = Vec::new();
        for (i, &size) in xd[1..].iter().enumerate() {
            let Some(o) = window.out_len(i, size as usize) else {
                let (k, p, d) = (window.kernel[i], window.padding[i], window.dilation[i]);
                let reach = d.saturating_mul(k - 1).saturating_add(1);
                self.error(
                    Diagnostic::error(
                        Code::BadArguments,
                        format!("the kernel of `{name}` is larger than its padded input"),
                    )
                    .primary(positional[1].span, format!("the kernel spans {reach} along dimension {}", i + 2))
                    .secondary(positional[0].span, format!("{size} along dimension {}{}", i + 2, if p > 0 { format!(", {} with padding {p}", (size as usize).saturating_add(p.saturating_mul(2))) } else { String::new() }))
                    .note("along each axis the (dilated) kernel, dilation·(k − 1) + 1, must fit in the input plus twice the padding")
                    .help("use a smaller kernel, or more `padding:`"),
                );
                return None;
            };
            out_spatial.push(Dim::Known(o as u64));
        }
        let bias = tensors.get(2).copied();
        if let Some(b) = bias {
            let bs = self.shape(b).clone();
            if bs != Shape(vec![Dim::Known(cout)]) {
                self.error(
                    Diagnostic::error(
                        Code::ShapeMismatch,
                        format!("the bias of `{name}` is {bs}, the convolution has {cout} output channels"),
                    )
                    .primary(positional[2].span, format!("this is {bs}"))
                    .secondary(positional[1].span, format!("{cout} output channels"))
                    .help(format!("give one bias per output channel, fixed[{cout}]")),
                );
                return None;
            }
        }
        let k: u64 = wd[2..].iter().product();
        let batch = xs.0[0].clone();
        let rows: Vec<Dim> = [batch.clone()]
            .into_iter()
            .chain(out_spatial.clone())
            .collect();
        let with = |last: &[u64]| {
            Shape(
                rows.iter()
                    .cloned()
                    .chain(last.iter().map(|&n| Dim::Known(n)))
                    .collect(),
            )
        };
        let grouped = groups > 1;
        let cols_shape = if grouped {
            with(&[cout, cg * k])
        } else {
            with(&[cg * k])
        };
        let cols = self.push(Op::Im2col(x, window), cols_shape.clone(), span);
        let wm = self.push(
            Op::Reshape(w),
            Shape(vec![Dim::Known(cout), Dim::Known(cg * k)]),
            span,
        );
        let y_shape = with(&[cout]);
        let mut y = if grouped {
            let products = self.push(Op::Mul(cols, wm), cols_shape, span);
            self.push(Op::Sum(products), y_shape.clone(), span)
        } else {
            let wt = self.push(
                Op::Permute(wm, vec![1, 0]),
                Shape(vec![Dim::Known(cg * k), Dim::Known(cout)]),
                span,
            );
            self.push(Op::MatMul(cols, wt), y_shape.clone(), span)
        };
        if let Some(b) = bias {
            y = self.push(Op::Add(y, b), y_shape, span);
        }
        // [batch, So..., Cout] → [batch, Cout, So...].
        let perm: Vec<usize> = [0, spatial + 1].into_iter().chain(1..=spatial).collect();
        let out = Shape(
            [batch, Dim::Known(cout)]
                .into_iter()
                .chain(out_spatial)
                .collect(),
        );
        Some(self.push(Op::Permute(y, perm), out, span))
    }

    /// `max_pool2d(x, k, stride:, padding:)`, `avg_pool2d` and their 1-d
    /// forms written out: the patches of each channel (`Op::Im2col` with one
    /// group per channel, `[batch, Ho, Wo, C, K]`), then `Op::MaxReduce` or
    /// `Op::Mean` (a sum and one product by the public 1/K), and the
    /// channels moved back. Max pooling pads with the nearest entry (the
    /// window's maximum is PyTorch's, with its −∞ padding: every window
    /// holds an entry when the padding is at most half the kernel). Relu
    /// and max pooling commute, so `max_pool2d(relu(x))` pools first: K
    /// times fewer comparisons in the relu.
    #[allow(clippy::too_many_arguments)]
    fn pool(
        &mut self,
        name: &str,
        spatial: usize,
        max: bool,
        x: ValueId,
        positional: &[&ast::Arg],
        named: &[&ast::Arg],
        span: Span,
    ) -> Option<ValueId> {
        let xs = self.shape(x).clone();
        let (c, sizes) = self.images(name, spatial, &xs, positional[0].span)?;
        let kernel = self.kernel(name, spatial, positional[1])?;
        let mut window = self.window(name, spatial, named)?;
        window.kernel = kernel.clone();
        if !named
            .iter()
            .any(|a| a.name.as_ref().is_some_and(|n| n.name == "stride"))
        {
            window.stride = kernel.clone();
        }
        if let Some(i) = (0..spatial).find(|&i| 2 * window.padding[i] > kernel[i]) {
            let at = (named.iter())
                .find(|a| a.name.as_ref().is_some_and(|n| n.name == "padding"))
                .map_or(span, |a| a.span);
            self.error(
                Diagnostic::error(
                    Code::BadArguments,
                    format!(
                        "`{name}` pads {} on each side of a window of {}: at most half the window",
                        window.padding[i], kernel[i]
                    ),
                )
                .primary(at, "more padding than half the window")
                .note("with more, a window could hold only padding (PyTorch refuses it too)")
                .help(format!("use `padding:` of at most {}", kernel[i] / 2)),
            );
            return None;
        }
        // Max pooling pads with the nearest entry (`Window::edge`), which
        // a dilated window could reach without holding it.
        if let Some(i) =
            (0..spatial).find(|&i| max && window.padding[i] > 0 && window.dilation[i] > 1)
        {
            let at = (named.iter())
                .find(|a| a.name.as_ref().is_some_and(|n| n.name == "dilation"))
                .map_or(span, |a| a.span);
            self.error(
                Diagnostic::error(
                    Code::BadArguments,
                    format!("`{name}` with both `dilation:` and `padding:` along dimension {}", i + 2),
                )
                .primary(at, format!("dilation {} with padding {}", window.dilation[i], window.padding[i]))
                .note("max pooling pads with the nearest entry, which a dilated window could reach without holding it")
                .help("pool without `padding:`, or with `dilation: 1`"),
            );
            return None;
        }
        let ceil_mode = self.flag(name, named, Named::CeilMode)?;
        if ceil_mode {
            let extra: Vec<usize> = (sizes.iter().enumerate())
                .map(|(i, &size)| window.ceil_extra(i, size as usize).unwrap_or(0))
                .collect();
            if extra.iter().any(|&e| e > 0) {
                window.extra = extra;
            }
        }
        // Max pooling's edge padding would repeat the last entry into a
        // dilated window beyond the input, which need not hold it.
        if let Some(i) = (0..spatial)
            .find(|&i| max && window.extra.get(i).is_some_and(|&e| e > 0) && window.dilation[i] > 1)
        {
            self.error(
                Diagnostic::error(
                    Code::BadArguments,
                    format!("`{name}` with `ceil_mode: true` and `dilation:` along dimension {}", i + 2),
                )
                .primary(span, format!("the last window, dilated by {}, reaches beyond the input", window.dilation[i]))
                .note("max pooling pads with the nearest entry, which a dilated window could reach without holding it")
                .help("pool with `dilation: 1`, or without `ceil_mode`, or pad the input to the size the windows need"),
            );
            return None;
        }
        let mut out_spatial = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            let Some(o) = window.out_len(i, size as usize) else {
                let p = window.padding[i];
                self.error(
                    Diagnostic::error(
                        Code::BadArguments,
                        format!("the window of `{name}` is larger than its input"),
                    )
                    .primary(
                        positional[1].span,
                        format!("a window of {} along dimension {}", kernel[i], i + 2),
                    )
                    .secondary(
                        positional[0].span,
                        format!(
                            "{size} along dimension {}{}",
                            i + 2,
                            if p > 0 {
                                format!(
                                    ", {} with padding {p}",
                                    (size as usize).saturating_add(p.saturating_mul(2))
                                )
                            } else {
                                String::new()
                            }
                        ),
                    )
                    .help("use a smaller window, or pool an earlier, larger value"),
                );
                return None;
            };
            out_spatial.push(Dim::Known(o as u64));
        }
        let k: u64 = kernel.iter().map(|&k| k as u64).product();
        window.groups = c as usize;
        window.edge = max;
        // relu then max pooling: pool first (they commute).
        let (x, relu) = match self.values[x.index()].op {
            Op::Relu(a) if max => (a, Some(x)),
            _ => (x, None),
        };
        let batch = xs.0[0].clone();
        let rows: Vec<Dim> = [batch.clone()]
            .into_iter()
            .chain(out_spatial.clone())
            .collect();
        let with = |last: &[u64]| {
            Shape(
                rows.iter()
                    .cloned()
                    .chain(last.iter().map(|&n| Dim::Known(n)))
                    .collect(),
            )
        };
        let (cols_shape, pooled_shape) = if c > 1 {
            (with(&[c, k]), with(&[c]))
        } else {
            (with(&[k]), Shape(rows.clone()))
        };
        // With `ceil_mode`'s extra windows, a mean divides each window's
        // sum by the entries it has in the input and its padding (PyTorch's
        // divisor with `count_include_pad`): a public constant per position.
        let divisors = (!max && !window.extra.is_empty()).then(|| {
            let outs: Vec<usize> = (out_spatial.iter())
                .map(|d| match d {
                    Dim::Known(n) => *n as usize,
                    Dim::Symbol(_) => 1,
                })
                .collect();
            let positions: usize = outs.iter().product();
            let mut data = Vec::with_capacity(positions * c as usize);
            for p in 0..positions {
                let (mut rest, mut count) = (p, 1usize);
                for i in (0..spatial).rev() {
                    let o = rest % outs[i];
                    rest /= outs[i];
                    let start = o * window.stride[i];
                    let end = sizes[i] as usize + 2 * window.padding[i];
                    count *= (0..kernel[i])
                        .filter(|j| start + j * window.dilation[i] < end)
                        .count();
                }
                data.extend(std::iter::repeat_n(1.0 / count as f64, c.max(1) as usize));
            }
            let dims: Vec<Dim> = out_spatial
                .iter()
                .cloned()
                .chain((c > 1).then_some(Dim::Known(c)))
                .collect();
            (data, Shape(dims))
        });
        let cols = self.push(Op::Im2col(x, window), cols_shape, span);
        let mut pooled = match divisors {
            Some((data, shape)) => {
                let sum = self.push(Op::Sum(cols), pooled_shape.clone(), span);
                let d = self.push(Op::Const { data }, shape, span);
                self.push(Op::Mul(sum, d), pooled_shape.clone(), span)
            }
            None if max => self.push(Op::MaxReduce(cols), pooled_shape.clone(), span),
            None => self.push(Op::Mean(cols), pooled_shape.clone(), span),
        };
        if let Some(r) = relu {
            pooled = self.push(Op::Relu(pooled), pooled_shape, span);
            self.reordered.push((r, pooled));
        }
        let out = Shape(
            [batch, Dim::Known(c)]
                .into_iter()
                .chain(out_spatial)
                .collect(),
        );
        Some(if c > 1 {
            // [batch, So..., C] → [batch, C, So...].
            let perm: Vec<usize> = [0, spatial + 1].into_iter().chain(1..=spatial).collect();
            self.push(Op::Permute(pooled, perm), out, span)
        } else {
            self.push(Op::Reshape(pooled), out, span)
        })
    }

    /// `global_avg_pool(x)`: each channel's mean over its positions,
    /// `[batch, C, H, W]` (positions merged first) or `[batch, C, L]` →
    /// `[batch, C]`.
    fn global_avg_pool(
        &mut self,
        name: &str,
        x: ValueId,
        arg: &ast::Arg,
        span: Span,
    ) -> Option<ValueId> {
        let xs = self.shape(x).clone();
        let spatial = xs.rank().saturating_sub(2).clamp(1, 2);
        let (c, sizes) = self.images(name, spatial, &xs, arg.span)?;
        let batch = xs.0[0].clone();
        let rows = if spatial == 2 {
            let merged = Shape(vec![
                batch.clone(),
                Dim::Known(c),
                Dim::Known(sizes.iter().product()),
            ]);
            self.push(Op::Reshape(x), merged, span)
        } else {
            x
        };
        Some(self.push(Op::Mean(rows), Shape(vec![batch, Dim::Known(c)]), span))
    }

    /// `concat(a, b, ..., axis: k)`: `Op::Concat` along the last axis,
    /// with `axis` moved last first (and back) when it is another.
    fn concat(
        &mut self,
        name: &str,
        tensors: &[ValueId],
        positional: &[&ast::Arg],
        named: &[&ast::Arg],
        span: Span,
    ) -> Option<ValueId> {
        let first = self.shape(tensors[0]).clone();
        if first.is_scalar() {
            self.error(
                Diagnostic::error(
                    Code::BadRank,
                    format!("`{name}` joins along a dimension, but its argument is a scalar"),
                )
                .primary(positional[0].span, "this is a scalar"),
            );
            return None;
        }
        let axis = match named
            .iter()
            .find(|a| a.name.as_ref().is_some_and(|n| n.name == "axis"))
        {
            Some(a) => self.axis(name, a, &first)?,
            None => first.rank() - 1,
        };
        let mut total = 0u64;
        for (i, &t) in tensors.iter().enumerate() {
            let ts = self.shape(t).clone();
            let same_rest = ts.rank() == first.rank()
                && (0..ts.rank()).all(|k| k == axis || ts.0[k] == first.0[k]);
            let along = match ts.0.get(axis) {
                Some(Dim::Known(n)) if same_rest => Some(*n),
                _ => None,
            };
            let Some(n) = along else {
                let why = if !same_rest {
                    format!("every dimension but {axis} must be equal")
                } else {
                    format!("dimension {axis} is named; only numbered dimensions are joined")
                };
                self.error(
                    Diagnostic::error(
                        Code::ShapeMismatch,
                        format!("cannot `{name}` {first} and {ts} along dimension {axis}"),
                    )
                    .primary(positional[i].span, format!("this is {ts}"))
                    .secondary(positional[0].span, format!("this is {first}"))
                    .note(why)
                    .help("check the shapes, or give `axis:` the dimension to join along"),
                );
                return None;
            };
            total += n;
        }
        let rank = first.rank();
        let perm: Vec<usize> = (0..rank).filter(|&k| k != axis).chain([axis]).collect();
        let moved = |sh: &Shape| Shape(perm.iter().map(|&k| sh.0[k].clone()).collect());
        let parts: Vec<ValueId> = tensors
            .iter()
            .map(|&t| {
                if axis == rank - 1 {
                    t
                } else {
                    let sh = moved(&self.shape(t).clone());
                    self.push(Op::Permute(t, perm.clone()), sh, span)
                }
            })
            .collect();
        let mut out = first.clone();
        out.0[axis] = Dim::Known(total);
        if axis == rank - 1 {
            return Some(self.push(Op::Concat(parts), out, span));
        }
        let joined = self.push(Op::Concat(parts), moved(&out), span);
        let mut back = vec![0; rank];
        for (i, &k) in perm.iter().enumerate() {
            back[k] = i;
        }
        Some(self.push(Op::Permute(joined, back), out, span))
    }

    /// `narrow(x, dim, start, length)`: `Op::Narrow` along the last axis,
    /// with `dim` moved last first (and back) when it is another.
    fn narrow(
        &mut self,
        name: &str,
        x: ValueId,
        positional: &[&ast::Arg],
        span: Span,
    ) -> Option<ValueId> {
        let xs = self.shape(x).clone();
        if xs.is_scalar() {
            self.error(
                Diagnostic::error(
                    Code::BadRank,
                    format!("`{name}` cuts along a dimension, but its argument is a scalar"),
                )
                .primary(positional[0].span, "this is a scalar"),
            );
            return None;
        }
        let axis = self.axis(name, positional[1], &xs)?;
        let start = self.number_arg(positional[2], "start")?;
        let len = self.number_arg(positional[3], "length")?;
        let size = match &xs.0[axis] {
            Dim::Known(n) => *n,
            Dim::Symbol(s) => {
                self.error(
                    Diagnostic::error(
                        Code::BadArguments,
                        format!("`{name}` along the named dimension `{s}`"),
                    )
                    .primary(
                        positional[1].span,
                        format!("dimension {axis} of {xs} is `{s}`"),
                    )
                    .help("cut a numbered dimension"),
                );
                return None;
            }
        };
        let whole = |v: f64| v.fract() == 0.0 && v >= 0.0;
        if !whole(start) || !whole(len) || len < 1.0 || start + len > size as f64 {
            self.error(
                Diagnostic::error(
                    Code::BadArguments,
                    format!("`{name}` cannot take {len} entries from {start} of the {size} along dimension {axis}"),
                )
                .primary(positional[2].span.to(positional[3].span), "start and length")
                .note(format!("`start` and `length` are whole numbers, `length` from 1, `start + length` at most {size}")),
            );
            return None;
        }
        let (start, len) = (start as u64, len as u64);
        let mut out = xs.clone();
        out.0[axis] = Dim::Known(len);
        let rank = xs.rank();
        if axis == rank - 1 {
            return Some(self.push(Op::Narrow(x, start, len), out, span));
        }
        let perm: Vec<usize> = (0..rank).filter(|&k| k != axis).chain([axis]).collect();
        let moved = |sh: &Shape| Shape(perm.iter().map(|&k| sh.0[k].clone()).collect());
        let xm = self.push(Op::Permute(x, perm.clone()), moved(&xs), span);
        let cut = self.push(Op::Narrow(xm, start, len), moved(&out), span);
        let mut back = vec![0; rank];
        for (i, &k) in perm.iter().enumerate() {
            back[k] = i;
        }
        Some(self.push(Op::Permute(cut, back), out, span))
    }

    /// `batch_norm(x, running_mean, running_var, weight?, bias?, eps:)`,
    /// PyTorch's in inference, written out: `scale = weight ·
    /// rsqrt(running_var + eps)` and `shift = bias − running_mean · scale`
    /// (in the clear where one party holds the statistics, `Op::Rsqrt`),
    /// then `x·scale + shift` along dimension 1. When `x` is a
    /// convolution or `a @ w + b` whose `w` and `b` that same party holds
    /// (or are constants), the scale and shift are folded into them
    /// instead (`w·scale`, `b·scale + shift`): no work on the secret side.
    fn batch_norm(
        &mut self,
        name: &str,
        tensors: &[ValueId],
        positional: &[&ast::Arg],
        named: &[&ast::Arg],
        span: Span,
    ) -> Option<ValueId> {
        let x = tensors[0];
        let xs = self.shape(x).clone();
        if xs.rank() < 2 {
            self.error(
                Diagnostic::error(
                    Code::BadRank,
                    format!("`{name}` normalises dimension 1 of `x`, which is {xs}"),
                )
                .primary(positional[0].span, format!("this is {xs}"))
                .help("give `x` as [batch, channels, ...]"),
            );
            return None;
        }
        let channels = xs.0[1].clone();
        let want = Shape(vec![channels.clone()]);
        let what = ["running_mean", "running_var", "weight", "bias"];
        for (i, &t) in tensors[1..].iter().enumerate() {
            let ts = self.shape(t).clone();
            if ts != want {
                self.error(
                    Diagnostic::error(
                        Code::ShapeMismatch,
                        format!(
                            "`{}` of `{name}` is {ts}, `x` has {channels} channels",
                            what[i]
                        ),
                    )
                    .primary(positional[i + 1].span, format!("this is {ts}"))
                    .secondary(
                        positional[0].span,
                        format!("{channels} channels in dimension 1 of {xs}"),
                    )
                    .help(format!("give one value per channel, {want}")),
                );
                return None;
            }
        }
        let eps = match self.named_number(named, Named::Eps).ok()? {
            Some((e, _)) if e > 0.0 => e,
            Some((e, at)) => {
                self.error(
                    Diagnostic::error(
                        Code::BadArguments,
                        format!("`eps:` of `{name}` must be positive, not {e}"),
                    )
                    .primary(at, "expected a number above 0")
                    .help("PyTorch's default is `eps: 1e-5`"),
                );
                return None;
            }
            None => 1e-5,
        };
        let (mean, var) = (tensors[1], tensors[2]);
        let stat = want.clone();
        let e = self.push(Op::Const { data: vec![eps] }, Shape::scalar(), span);
        let shifted = self.push(Op::Add(var, e), stat.clone(), span);
        let mut scale = self.push(Op::Rsqrt(shifted), stat.clone(), span);
        if let Some(&w) = tensors.get(3) {
            scale = self.push(Op::Mul(w, scale), stat.clone(), span);
        }
        let moved = self.push(Op::Mul(mean, scale), stat.clone(), span);
        let shift = match tensors.get(4) {
            Some(&b) => self.push(Op::Sub(b, moved), stat.clone(), span),
            None => self.push(Op::Neg(moved), stat.clone(), span),
        };
        // Fold into the weights just before, when one party (or nobody) holds all.
        if let Some(folded) = self.fold_affine(x, scale, shift, span) {
            self.reordered.push((x, folded));
            return Some(folded);
        }
        // x·scale + shift along dimension 1 (moved last when it is not).
        let rank = xs.rank();
        if rank == 2 {
            let scaled = self.push(Op::Mul(x, scale), xs.clone(), span);
            return Some(self.push(Op::Add(scaled, shift), xs, span));
        }
        let perm: Vec<usize> = (0..rank).filter(|&k| k != 1).chain([1]).collect();
        let moved_shape = Shape(perm.iter().map(|&k| xs.0[k].clone()).collect());
        let xm = self.push(Op::Permute(x, perm.clone()), moved_shape.clone(), span);
        let scaled = self.push(Op::Mul(xm, scale), moved_shape.clone(), span);
        let y = self.push(Op::Add(scaled, shift), moved_shape, span);
        let mut back = vec![0; rank];
        for (i, &k) in perm.iter().enumerate() {
            back[k] = i;
        }
        Some(self.push(Op::Permute(y, back), xs, span))
    }

    /// `x·scale + shift` per output channel folded into the operation that
    /// made `x`: a convolution as `Checker::conv` writes it (`permute(cols
    /// @ wt + b)`) or `a @ w + b` (`+ b` optional), when the weights, bias,
    /// scale and shift are held by one party or public. `None` otherwise.
    fn fold_affine(
        &mut self,
        x: ValueId,
        scale: ValueId,
        shift: ValueId,
        span: Span,
    ) -> Option<ValueId> {
        let (inner, perm) = match &self.values[x.index()].op {
            Op::Permute(y, p) => (*y, Some(p.clone())),
            _ => (x, None),
        };
        let (product, bias) = match self.values[inner.index()].op {
            Op::Add(p, b) => (p, Some(b)),
            Op::MatMul(..) => (inner, None),
            _ => return None,
        };
        let Op::MatMul(a, w) = self.values[product.index()].op else {
            return None;
        };
        // The product's output channels are its last dimension, and (for a
        // convolution) the permute moves them to dimension 1.
        let ps = self.shape(product).clone();
        if let Some(p) = &perm {
            let r = p.len();
            if r < 3 || p[1] != r - 1 || !matches!(self.values[a.index()].op, Op::Im2col(..)) {
                return None;
            }
        } else if ps.rank() != 2 {
            return None;
        }
        let ws = self.shape(w).clone();
        if ws.rank() != 2 || self.shape(scale).0.last() != ws.0.last() {
            return None;
        }
        if bias.is_some_and(|b| self.shape(b).rank() != 1) {
            return None;
        }
        let mut held = self.holders(w);
        for v in [Some(scale), Some(shift), bias].into_iter().flatten() {
            held.extend(self.holders(v));
        }
        held.retain(|o| *o != Owner::Public);
        held.dedup();
        if held.windows(2).any(|p| p[0] != p[1]) {
            return None;
        }
        let w2 = self.push(Op::Mul(w, scale), ws, span);
        let b2 = match bias {
            Some(b) => {
                let bs = self.shape(b).clone();
                let scaled = self.push(Op::Mul(b, scale), bs.clone(), span);
                self.push(Op::Add(scaled, shift), bs, span)
            }
            None => shift,
        };
        let p2 = self.push(Op::MatMul(a, w2), ps.clone(), span);
        let y = self.push(Op::Add(p2, b2), ps, span);
        Some(match perm {
            Some(p) => {
                let xs = self.shape(x).clone();
                self.push(Op::Permute(y, p), xs, span)
            }
            None => y,
        })
    }

    /// The parties whose inputs `v` depends on (`Owner::Public` for none).
    fn holders(&self, v: ValueId) -> Vec<Owner> {
        let mut seen = vec![false; v.index() + 1];
        let mut stack = vec![v];
        let mut out = Vec::new();
        while let Some(u) = stack.pop() {
            if std::mem::replace(&mut seen[u.index()], true) {
                continue;
            }
            match self.values[u.index()].op {
                Op::Input { owner, .. } => {
                    if !out.contains(&owner) {
                        out.push(owner);
                    }
                }
                ref op => stack.extend(op.operands()),
            }
        }
        if out.is_empty() {
            out.push(Owner::Public);
        }
        out
    }

    /// The channels and spatial sizes of `xs`, an operand of `name` that
    /// must be `[batch, C, S...]` with `spatial` numbered spatial axes.
    fn images(
        &mut self,
        name: &str,
        spatial: usize,
        xs: &Shape,
        at: Span,
    ) -> Option<(u64, Vec<u64>)> {
        let axes = if spatial == 2 {
            "height, width"
        } else {
            "length"
        };
        let expected = if name == "global_avg_pool" {
            "[batch, channels, height, width] or [batch, channels, length]".to_string()
        } else {
            format!("[batch, channels, {axes}]")
        };
        if xs.rank() != spatial + 2 {
            self.error(
                Diagnostic::error(
                    Code::BadRank,
                    format!("`{name}` takes `x` as {expected}, not {xs}"),
                )
                .primary(at, format!("this is {xs}"))
                .help(format!(
                    "reshape it to {} dimensions with `reshape`",
                    spatial + 2
                )),
            );
            return None;
        }
        let known: Option<Vec<u64>> = (xs.0[1..].iter())
            .map(|d| match d {
                Dim::Known(n) => Some(*n),
                Dim::Symbol(_) => None,
            })
            .collect();
        let Some(known) = known else {
            self.error(
                Diagnostic::error(
                    Code::BadRank,
                    format!("`{name}` needs numbered channel and {axes} dimensions, not {xs}"),
                )
                .primary(at, format!("this is {xs}"))
                .note("only the batch, dimension 0, may be named"),
            );
            return None;
        };
        Some((known[0], known[1..].to_vec()))
    }

    /// A pooling window: a whole number from 1 (the same along each axis)
    /// or an array of one per axis.
    fn kernel(&mut self, name: &str, spatial: usize, arg: &ast::Arg) -> Option<Vec<usize>> {
        let whole = |v: f64| v.fract() == 0.0 && (1.0..=2f64.powi(24)).contains(&v);
        let values: Option<Vec<usize>> = match &arg.value {
            ArgValue::Expr(e) => literal_value(self.ast, *e)
                .filter(|v| whole(*v))
                .map(|v| vec![v as usize; spatial]),
            ArgValue::Array(arr) if arr.elems.len() == spatial => (arr.elems.iter())
                .map(|e| match e {
                    ArrayElem::Number(v) if whole(v.value) => Some(v.value as usize),
                    _ => None,
                })
                .collect(),
            ArgValue::Array(_) => None,
        };
        if values.is_none() {
            let what = if spatial == 2 {
                "a whole number from 1, or `[kh, kw]` of them"
            } else {
                "a whole number from 1"
            };
            self.error(
                Diagnostic::error(
                    Code::BadArguments,
                    format!("the window of `{name}` must be {what}"),
                )
                .primary(arg.span, format!("expected {what}"))
                .help(format!("for example `{name}(x, 2)`")),
            );
        }
        values
    }

    /// `stride:`, `padding:`, `dilation:` and `groups:` of a convolution or
    /// pooling over `spatial` axes, as a window without its kernel (the
    /// caller sets it): each a whole-number literal, or (but `groups`) an
    /// array of one per axis; stride, dilation and groups from 1.
    fn window(&mut self, name: &str, spatial: usize, named: &[&ast::Arg]) -> Option<plan::Window> {
        let mut window = plan::Window {
            kernel: vec![1; spatial],
            stride: vec![1; spatial],
            padding: vec![0; spatial],
            dilation: vec![1; spatial],
            groups: 1,
            per_group: 1,
            edge: false,
            extra: vec![],
        };
        let mut ok = true;
        for a in named {
            let n = a.name.as_ref().expect("named").name.as_str();
            let (least, per_axis) = match n {
                "stride" | "dilation" => (1, true),
                "padding" => (0, true),
                "groups" => (1, false),
                _ => continue,
            };
            let whole = |v: f64| v.fract() == 0.0 && v >= least as f64 && v <= 2f64.powi(24);
            let values: Option<Vec<usize>> = match &a.value {
                ArgValue::Expr(e) => literal_value(self.ast, *e)
                    .filter(|v| whole(*v))
                    .map(|v| vec![v as usize; if per_axis { spatial } else { 1 }]),
                ArgValue::Array(arr) if per_axis && arr.elems.len() == spatial => arr
                    .elems
                    .iter()
                    .map(|e| match e {
                        ArrayElem::Number(v) if whole(v.value) => Some(v.value as usize),
                        _ => None,
                    })
                    .collect(),
                ArgValue::Array(_) => None,
            };
            let Some(values) = values else {
                let what = if per_axis && spatial == 2 {
                    format!("a whole number from {least}, or `[h, w]` of them")
                } else {
                    format!("a whole number from {least}")
                };
                self.error(
                    Diagnostic::error(
                        Code::BadArguments,
                        format!("`{n}:` of `{name}` must be {what}"),
                    )
                    .primary(a.span, format!("expected {what}"))
                    .help(match n {
                        "stride" => {
                            "for example `stride: 2`; the default, 1, moves the window one step"
                        }
                        "padding" => {
                            "for example `padding: 1`: one row and column of zeros on every side"
                        }
                        "dilation" => {
                            "for example `dilation: 2`; the default, 1, is a dense kernel"
                        }
                        _ => "for example `groups: 2`; the default is 1",
                    }),
                );
                ok = false;
                continue;
            };
            match n {
                "stride" => window.stride = values,
                "padding" => window.padding = values,
                "dilation" => window.dilation = values,
                _ => window.groups = values[0],
            }
        }
        ok.then_some(window)
    }

    /// The named number argument `which`, if given: its value (a number
    /// literal, possibly negated) and place. `Err` once reported.
    /// A flag such as `ceil_mode:`: `true` or `false` (or 1 or 0); false
    /// when not given. `None` after reporting another value.
    fn flag(&mut self, func: &str, named: &[&ast::Arg], which: Named) -> Option<bool> {
        let Some(a) = named
            .iter()
            .find(|a| a.name.as_ref().is_some_and(|n| n.name == which.name()))
        else {
            return Some(false);
        };
        let value = match &a.value {
            ArgValue::Expr(e) => match &self.ast.expr(*e).kind {
                ExprKind::Name(n) if n.name == "true" => Some(true),
                ExprKind::Name(n) if n.name == "false" => Some(false),
                _ => match literal_value(self.ast, *e) {
                    Some(1.0) => Some(true),
                    Some(0.0) => Some(false),
                    _ => None,
                },
            },
            ArgValue::Array(_) => None,
        };
        if value.is_none() {
            self.error(
                Diagnostic::error(
                    Code::BadArguments,
                    format!("`{}:` of `{func}` must be `true` or `false`", which.name()),
                )
                .primary(a.span, "expected `true` or `false`")
                .help(format!("for example `{}: true`", which.name())),
            );
        }
        value
    }

    fn named_number(
        &mut self,
        named: &[&ast::Arg],
        which: Named,
    ) -> Result<Option<(f64, Span)>, ()> {
        let Some(a) = named
            .iter()
            .find(|a| a.name.as_ref().is_some_and(|n| n.name == which.name()))
        else {
            return Ok(None);
        };
        let what = format!("`{}:` value", which.name());
        match self.number_arg(a, &what) {
            Some(v) => Ok(Some((v, a.span))),
            None => Err(()),
        }
    }

    /// `leaky_relu(x, negative_slope: s)`, written out as `max(x, s·x)`:
    /// for `0 < s < 1` that is `x` where `x ≥ 0` and `s·x` below, with one
    /// comparison per element on shares. The slope is `positional`, if
    /// given so, or `negative_slope:`.
    fn leaky_relu(
        &mut self,
        x: ValueId,
        named: &[&ast::Arg],
        positional: Option<&ast::Arg>,
        span: Span,
    ) -> Option<ValueId> {
        let given = match positional {
            Some(a) => Some((self.number_arg(a, "negative slope")?, a.span)),
            None => self.named_number(named, Named::NegativeSlope).ok()?,
        };
        let (slope, at) = given.unwrap_or((0.01, span));
        if !(slope > 0.0 && slope < 1.0) {
            let help = if slope == 0.0 {
                "with slope 0 it is `relu(x)`: write that".to_string()
            } else if slope == 1.0 {
                "with slope 1 it is `x` itself: use `x`".to_string()
            } else if slope > 1.0 {
                format!("for a slope above 1 write `min(x, {slope} * x)`")
            } else {
                format!("for a negative slope write `max(x, {slope} * x)`, or use a slope between 0 and 1")
            };
            self.error(
                Diagnostic::error(
                    Code::BadArguments,
                    format!("`leaky_relu` takes a `negative_slope` between 0 and 1, not {slope}"),
                )
                .primary(at, "expected 0 < negative_slope < 1")
                .note("leaky_relu(x) is max(x, negative_slope·x), which keeps x above 0 and scales it below only for a slope between 0 and 1")
                .help(help),
            );
            return None;
        }
        // The literal itself was checked as an expression (`Checker::literal`).
        let xs = self.shape(x).clone();
        let s = self.push(Op::Const { data: vec![slope] }, Shape::scalar(), at);
        let scaled = self.push(Op::Mul(x, s), xs.clone(), span);
        Some(self.push(Op::Max(x, scaled), xs, span))
    }

    /// `hardtanh(x, min_val: lo, max_val: hi)`: `clamp(x, lo, hi)`, by
    /// default `[-1, 1]`.
    fn hardtanh(&mut self, x: ValueId, named: &[&ast::Arg], span: Span) -> Option<ValueId> {
        let lo = self.named_number(named, Named::MinVal);
        let hi = self.named_number(named, Named::MaxVal);
        let (lo, hi) = (lo.ok()?, hi.ok()?);
        let (lo_v, hi_v) = (lo.map_or(-1.0, |l| l.0), hi.map_or(1.0, |h| h.0));
        if lo_v >= hi_v {
            let at = match (lo, hi) {
                (Some((_, a)), Some((_, b))) => a.to(b),
                (Some((_, a)), None) | (None, Some((_, a))) => a,
                (None, None) => span,
            };
            let defaults = match (lo, hi) {
                (None, _) => " (`min_val` defaults to -1)",
                (_, None) => " (`max_val` defaults to 1)",
                _ => "",
            };
            self.error(
                Diagnostic::error(
                    Code::BadDomain,
                    format!("hardtanh bounds [{lo_v}, {hi_v}] are empty{defaults}"),
                )
                .primary(at, "need min_val < max_val")
                .help("give both `min_val:` and `max_val:`, the lower first"),
            );
            return None;
        }
        let xs = self.shape(x).clone();
        Some(self.push(Op::Clamp(x, lo_v, hi_v), xs, span))
    }

    /// `op` (a last-axis reduction) of `x` along `axis`, moving it last first.
    fn reduce_along(
        &mut self,
        op: fn(ValueId) -> Op,
        x: ValueId,
        axis: usize,
        span: Span,
    ) -> ValueId {
        let xs = self.shape(x).clone();
        let last = xs.rank() - 1;
        let operand = if axis == last {
            x
        } else {
            let perm: Vec<usize> = (0..xs.rank())
                .filter(|&k| k != axis)
                .chain([axis])
                .collect();
            let moved = Shape(perm.iter().map(|&k| xs.0[k].clone()).collect());
            self.push(Op::Permute(x, perm), moved, span)
        };
        let mut dims = xs.0;
        dims.remove(axis);
        self.push(op(operand), Shape(dims), span)
    }

    /// `op(big, small)` where `small` is `big` reduced along `axis`: entry
    /// by entry with the reduction of its own row (`big` moved so `axis`
    /// comes first, where `small` broadcasts, and back).
    fn along(
        &mut self,
        big: ValueId,
        small: ValueId,
        axis: usize,
        op: fn(ValueId, ValueId) -> Op,
        span: Span,
    ) -> ValueId {
        let bs = self.shape(big).clone();
        let perm: Vec<usize> = [axis]
            .into_iter()
            .chain((0..bs.rank()).filter(|&k| k != axis))
            .collect();
        let moved = Shape(perm.iter().map(|&k| bs.0[k].clone()).collect());
        let p = self.push(Op::Permute(big, perm.clone()), moved.clone(), span);
        let v = self.push(op(p, small), moved, span);
        let mut back = vec![0; perm.len()];
        for (i, &k) in perm.iter().enumerate() {
            back[k] = i;
        }
        self.push(Op::Permute(v, back), bs, span)
    }

    /// An array literal of whole numbers (a shape or a permutation).
    fn dims(&mut self, arg: &ast::Arg) -> Option<Vec<i64>> {
        let ArgValue::Array(arr) = &arg.value else {
            self.error(
                Diagnostic::error(
                    Code::BadArguments,
                    "expected an array literal of whole numbers",
                )
                .primary(arg.span, "not an array literal")
                .help("for example `[1, 0]`"),
            );
            return None;
        };
        let mut out = Vec::new();
        for e in &arr.elems {
            match e {
                ArrayElem::Number(n)
                    if n.value.fract() == 0.0 && n.value.abs() <= 2f64.powi(48) =>
                {
                    out.push(n.value as i64)
                }
                ArrayElem::Number(n) => {
                    self.error(
                        Diagnostic::error(Code::BadArguments, "dimensions are whole numbers")
                            .primary(n.span, "not a whole number"),
                    );
                    return None;
                }
                ArrayElem::Array(a) => {
                    self.error(
                        Diagnostic::error(Code::BadArguments, "dimensions are numbers, not arrays")
                            .primary(a.span, "nested array"),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    /// The shape of an elementwise operation on `a` and `b`, and its
    /// operands: as they are when they broadcast ([`broadcast`]), or, when
    /// one is the other with one axis reduced away (`[batch]` against
    /// `[batch, k]`, the shape of `max(s)` against `s`), with the larger
    /// moved so that axis comes first, where the smaller broadcasts; the
    /// caller pushes its operation with [`Checker::push_restored`], which
    /// moves the axis back. `None` when neither applies.
    fn broadcast_operands(
        &mut self,
        a: ValueId,
        b: ValueId,
        span: Span,
    ) -> Option<(Shape, (ValueId, ValueId), Restore)> {
        let (ash, bsh) = (self.shape(a).clone(), self.shape(b).clone());
        if let Some(shape) = broadcast(&ash, &bsh) {
            return Some((shape, (a, b), None));
        }
        let (long, a_long) = if ash.rank() > bsh.rank() {
            (&ash, true)
        } else {
            (&bsh, false)
        };
        let short = if a_long { &bsh } else { &ash };
        let axis = kept_axis(long, short)?;
        // Move `axis` first: [k, rest...] broadcasts against `rest`.
        let perm: Vec<usize> = [axis]
            .into_iter()
            .chain((0..long.rank()).filter(|&k| k != axis))
            .collect();
        let moved = Shape(perm.iter().map(|&k| long.0[k].clone()).collect());
        let big = self.push(
            Op::Permute(if a_long { a } else { b }, perm.clone()),
            moved.clone(),
            span,
        );
        let mut back = vec![0; perm.len()];
        for (i, &k) in perm.iter().enumerate() {
            back[k] = i;
        }
        Some((
            moved,
            if a_long { (big, b) } else { (a, big) },
            Some((back, long.clone())),
        ))
    }

    /// Push `op` of `shape`, and move back an axis that
    /// [`Checker::broadcast_operands`] moved.
    fn push_restored(&mut self, op: Op, shape: Shape, restore: Restore, span: Span) -> ValueId {
        let v = self.push(op, shape, span);
        match restore {
            Some((back, shape)) => self.push(Op::Permute(v, back), shape, span),
            None => v,
        }
    }

    /// A numeric literal argument, possibly negated.
    fn number_arg(&mut self, arg: &ast::Arg, what: &str) -> Option<f64> {
        let value = match &arg.value {
            ArgValue::Expr(e) => literal_value(self.ast, *e),
            ArgValue::Array(_) => None,
        };
        if value.is_none() {
            self.error(
                Diagnostic::error(
                    Code::BadArguments,
                    format!("the {what} must be a number literal"),
                )
                .primary(arg.span, "not a number literal"),
            );
        }
        value
    }

    fn coefficients(&mut self, arg: &ast::Arg) -> Option<Vec<f64>> {
        let ArgValue::Array(arr) = &arg.value else {
            self.error(
                Diagnostic::error(
                    Code::BadArguments,
                    "`poly` takes its coefficients as an array literal",
                )
                .primary(arg.span, "expected `[c0, c1, ...]`"),
            );
            return None;
        };
        let mut coeffs = Vec::new();
        for e in &arr.elems {
            match e {
                ArrayElem::Number(n) => {
                    if !self.literal(n.value, n.span) {
                        return None;
                    }
                    coeffs.push(n.value);
                }
                ArrayElem::Array(a) => {
                    self.error(
                        Diagnostic::error(
                            Code::BadArguments,
                            "polynomial coefficients are numbers, not arrays",
                        )
                        .primary(a.span, "nested array"),
                    );
                    return None;
                }
            }
        }
        if coeffs.is_empty() || coeffs.len() as u64 > MAX_DEGREE + 1 {
            self.error(
                Diagnostic::error(
                    Code::BadDegree,
                    format!(
                        "a polynomial needs 1 to {} coefficients, this one has {}",
                        MAX_DEGREE + 1,
                        coeffs.len()
                    ),
                )
                .primary(arr.span, "coefficients c0, c1, ... of c0 + c1·x + ..."),
            );
            return None;
        }
        Some(coeffs)
    }

    /// The named arguments in `allowed` (others are reported by the caller).
    fn approx(&mut self, named: &[&ast::Arg], allowed: &[Named]) -> Option<Approx> {
        let mut approx = Approx::default();
        let mut ok = true;
        for a in named {
            let n = a.name.as_ref().expect("named");
            let Some(kind) = allowed.iter().find(|k| k.name() == n.name) else {
                continue;
            };
            match kind {
                Named::Degree => {
                    let v = match &a.value {
                        ArgValue::Expr(e) => literal_value(self.ast, *e),
                        ArgValue::Array(_) => None,
                    };
                    match v {
                        Some(d)
                            if d.fract() == 0.0
                                && d >= 1.0
                                && d <= MAX_DEGREE as f64
                                && d % 2.0 == 1.0 =>
                        {
                            approx.degree = Some(d as u32)
                        }
                        _ => {
                            self.error(
                                Diagnostic::error(Code::BadDegree, "`degree` must be an odd whole number")
                                    .primary(a.span, format!("expected 1, 3, 5, ..., {MAX_DEGREE}"))
                                    .note("sigmoid and tanh are odd functions around their centre, so their approximations use odd degrees"),
                            );
                            ok = false;
                        }
                    }
                }
                Named::Domain => {
                    let lohi = match &a.value {
                        ArgValue::Array(arr) => match arr.elems.as_slice() {
                            [ArrayElem::Number(lo), ArrayElem::Number(hi)] => {
                                Some((lo.value, hi.value))
                            }
                            _ => None,
                        },
                        ArgValue::Expr(_) => None,
                    };
                    match lohi {
                        Some((lo, hi)) if lo < hi => approx.domain = Some((lo, hi)),
                        _ => {
                            self.error(
                                Diagnostic::error(
                                    Code::BadDomain,
                                    "`domain` must be `[lo, hi]` with lo < hi",
                                )
                                .primary(a.span, "not a valid domain")
                                .help("for example `domain: [-8, 8]`"),
                            );
                            ok = false;
                        }
                    }
                }
                Named::Tol => {
                    let v = match &a.value {
                        ArgValue::Expr(e) => literal_value(self.ast, *e),
                        ArgValue::Array(_) => None,
                    };
                    match v {
                        Some(t) if t > 0.0 && t < 1.0 => approx.tol = Some(t),
                        _ => {
                            self.error(
                                Diagnostic::error(
                                    Code::BadArguments,
                                    "`tol` must be a number between 0 and 1",
                                )
                                .primary(a.span, "the largest acceptable approximation error")
                                .help("for example `tol: 0.01`"),
                            );
                            ok = false;
                        }
                    }
                }
                // Checked against the operand's rank in `call` (`Checker::axis`).
                Named::Axis | Named::StartDim | Named::EndDim => {}
                // Checked by `Checker::leaky_relu` and `Checker::hardtanh`.
                Named::NegativeSlope | Named::MinVal | Named::MaxVal => {}
                // Checked by `Checker::conv` against the operands.
                Named::Stride | Named::Padding | Named::Dilation | Named::Groups => {}
                // Checked by `Checker::batch_norm`.
                Named::Eps => {}
                // Checked by `Checker::pool`.
                Named::CeilMode => {}
            }
        }
        ok.then_some(approx)
    }

    /// Warn about definitions no output depends on. Not when a definition
    /// or an output is in error: what it meant to use is unknown (`x2` for
    /// `x`), so such warnings would be noise; they come once it is fixed.
    /// Errors elsewhere (parties, precision) leave them in place.
    fn unused(&mut self) {
        let output_items = (self.ast.items.iter())
            .filter(|i| matches!(i, Item::Output { .. }))
            .count();
        if self.outputs.is_empty() || self.outputs.len() < output_items || !self.poisoned.is_empty()
        {
            return;
        }
        let mut live = vec![false; self.values.len()];
        for o in &self.outputs {
            live[o.value.index()] = true;
        }
        for i in (0..self.values.len()).rev() {
            if live[i] {
                for operand in self.values[i].op.operands() {
                    live[operand.index()] = true;
                }
                // A bypassed value is used where its replacement is.
                for (bypassed, by) in &self.reordered {
                    if by.index() == i {
                        live[bypassed.index()] = true;
                    }
                }
            }
        }
        let ast = self.ast;
        for item in &ast.items {
            let (name, what) = match item {
                Item::Input { name, .. } => (name, "input"),
                Item::Const { name, .. } => (name, "constant"),
                Item::Let { name, .. } => (name, "value"),
                _ => continue,
            };
            if let Some(&id) = self.scope.get(&name.name) {
                if !live[id.index()]
                    && self
                        .all_defs
                        .get(&name.name)
                        .is_some_and(|d| d.span == name.span)
                {
                    self.diags.push(
                        Diagnostic::warning(
                            Code::Unused,
                            format!("{what} `{}` is never used by an output", name.name),
                        )
                        .primary(name.span, "unused")
                        .help("remove it, or output it"),
                    );
                }
            }
        }
    }
}

/// Most dimensions a declared input or constant may have (values computed
/// from them, such as a convolution's patches, may have more).
pub const MAX_DECLARED_RANK: usize = 4;

/// The value of a literal expression (`3`, `-0.5`, `--2`), if it is one.
/// A loop, not recursion: a hostile file may stack millions of signs.
fn literal_value(ast: &ast::Model, mut id: ExprId) -> Option<f64> {
    let mut negative = false;
    loop {
        match &ast.expr(id).kind {
            ExprKind::Number(v) => return Some(if negative { -*v } else { *v }),
            ExprKind::Neg(inner) => {
                negative = !negative;
                id = *inner;
            }
            _ => return None,
        }
    }
}

/// The number of elements of `shape`: the product of its numbered
/// dimensions, and its named ones.
fn count(shape: &Shape) -> (u64, Vec<String>) {
    let mut known = 1u64;
    let mut symbols = Vec::new();
    for d in &shape.0 {
        match d {
            Dim::Known(n) => known = known.saturating_mul(*n),
            Dim::Symbol(s) => symbols.push(s.clone()),
        }
    }
    (known, symbols)
}

/// `dims` merged into one dimension, if that is one: all numbered (their
/// product), or one name among ones.
fn one_dim(dims: &[Dim]) -> Option<Dim> {
    match count(&Shape(dims.to_vec())) {
        (n, s) if s.is_empty() => Some(Dim::Known(n)),
        (1, s) if s.len() == 1 => Some(Dim::Symbol(s[0].clone())),
        _ => None,
    }
}

fn dims_text(dims: &[Dim]) -> String {
    let d: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", d.join(", "))
}

/// How to move an axis back after a keep-dims broadcast: the permutation
/// and the shape it gives.
type Restore = Option<(Vec<usize>, Shape)>;

const BROADCAST_NOTE: &str = "elementwise operations need equal shapes; a scalar, a shape matching the other's last dimensions, or the other's shape with one dimension reduced away (`[batch]` against `[batch, k]`) broadcasts";

/// The axis of `long` that `short` lacks, when `short` is `long` without
/// one of its dimensions (the last such axis, as reductions default to the
/// last): the keep-dims broadcasting of a reduced value against its operand.
pub fn kept_axis(long: &Shape, short: &Shape) -> Option<usize> {
    if long.rank() != short.rank() + 1 {
        return None;
    }
    (0..long.rank()).rev().find(|&k| {
        let mut dims = long.0.clone();
        dims.remove(k);
        dims == short.0
    })
}

/// Elementwise broadcasting: equal shapes, a scalar on either side, or a
/// shape that matches the other's trailing dimensions.
pub fn broadcast(a: &Shape, b: &Shape) -> Option<Shape> {
    let (long, short) = if a.rank() >= b.rank() { (a, b) } else { (b, a) };
    let tail = &long.0[long.rank() - short.rank()..];
    (tail == short.0.as_slice()).then(|| long.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Check a model body (parties `a`, `b` and dealer `d` are declared) and
    /// compare the codes of its diagnostics, or the shape of its first output.
    fn check_body(body: &str, expect: &str) {
        let source = format!("model m {{ party a; party b; dealer d; {body} }}");
        let result = check_source(&source);
        let got = match &result.model {
            Some(m) => {
                let out = &m.outputs()[0];
                m.value(out.value).shape.to_string()
            }
            _ => result
                .diagnostics
                .iter()
                .filter(|d| d.is_error())
                .map(|d| d.code.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        };
        assert_eq!(got, expect, "for `{body}`");
    }

    #[test]
    fn shapes() {
        let inputs = "input x: fixed[n, 4] private(a); input v: fixed[4] private(b); input s: fixed public; input m: fixed[4, 3] private(b);";
        let cases = [
            ("x @ v", "fixed[n]"),
            ("v @ v", "fixed"),
            ("v @ m", "fixed[3]"),
            ("x @ m", "fixed[n, 3]"),
            ("x + v", "fixed[n, 4]"),
            ("s * x", "fixed[n, 4]"),
            ("sum(x)", "fixed[n]"),
            ("mean(v)", "fixed"),
            ("argmax(x @ m)", "fixed[n]"),
            ("max(x, v)", "fixed[n, 4]"),
            (
                "sigmoid(x @ v, degree: 9, domain: [-8, 8], tol: 0.01)",
                "fixed[n]",
            ),
            ("poly(v, [1, 0.5, -0.25])", "fixed[4]"),
            ("clamp(x, -1, 1)", "fixed[n, 4]"),
            ("x @ v via paillier", "fixed[n]"),
            ("x @ v via rlwe", "fixed[n]"),
            ("m @ v", "E0202"),
            ("x + m", "E0201"),
            ("s @ v", "E0203"),
            ("sum(s)", "E0203"),
            ("clamp(x, 1, -1)", "E0207"),
            ("poly(v, 3)", "E0204"),
            ("tanh(v, degree: 0)", "E0206"),
            ("sigmoid(v, tol: 2)", "E0204"),
            ("relu(v, degree: 3)", "E0205"),
            ("v via shares", "E0213"),
            ("(v + v) via magic", "E0110"),
            // Reductions along an axis, and keep-dims broadcasting.
            ("sum(x, axis: 0)", "fixed[4]"),
            ("mean(x, axis: -2)", "fixed[4]"),
            ("max(x, axis: 1)", "fixed[n]"),
            ("min(x, axis: -1)", "fixed[n]"),
            ("min(x)", "fixed[n]"),
            ("argmax(x @ m, axis: 0)", "fixed[3]"),
            ("sum(v, axis: 0)", "fixed"),
            ("x - max(x)", "fixed[n, 4]"),
            ("max(x, axis: 1) * x", "fixed[n, 4]"),
            ("max(x, sum(x))", "fixed[n, 4]"),
            ("min(sum(x), x)", "fixed[n, 4]"),
            ("x - sum(x, axis: 0)", "fixed[n, 4]"),
            ("sum(x, axis: 2)", "E0204"),
            ("sum(x, axis: -3)", "E0204"),
            ("sum(x, axis: 0.5)", "E0204"),
            ("max(x, v, axis: 0)", "E0205"),
            ("relu(x, axis: 0)", "E0205"),
            ("x @ m - sum(x, axis: 0)", "E0201"),
            // Rearranging the same values.
            ("reshape(x, [-1, 2, 2])", "fixed[n, 2, 2]"),
            ("reshape(m, [2, 6])", "fixed[2, 6]"),
            ("reshape(m, [-1])", "fixed[12]"),
            ("reshape(reshape(x, [-1, 2, 2]), [-1, 4])", "fixed[n, 4]"),
            (
                "flatten(reshape(x, [-1, 2, 2]), start_dim: 1)",
                "fixed[n, 4]",
            ),
            ("flatten(m)", "fixed[12]"),
            (
                "flatten(reshape(m, [2, 2, 3]), start_dim: -2, end_dim: 2)",
                "fixed[2, 6]",
            ),
            ("transpose(x, 0, 1)", "fixed[4, n]"),
            ("transpose(x, -1, 0)", "fixed[4, n]"),
            (
                "permute(reshape(x, [-1, 2, 2]), [2, 0, 1])",
                "fixed[2, n, 2]",
            ),
            ("permute(x, [-1, 0])", "fixed[4, n]"),
            ("reshape(x, [4, -1])", "fixed[4, n]"),
            ("reshape(x, [-1, 3])", "E0216"),
            ("reshape(x, [-1, -1])", "E0216"),
            ("reshape(m, [5, 3])", "E0216"),
            ("reshape(x, [0, 4])", "E0216"),
            ("reshape(x, 4)", "E0204"),
            ("flatten(x)", "E0216"),
            ("flatten(m, start_dim: 1, end_dim: 0)", "E0216"),
            ("flatten(m, start_dim: 2)", "E0204"),
            ("transpose(x, 0, 2)", "E0204"),
            ("permute(x, [0, 0])", "E0216"),
            ("permute(x, [0])", "E0216"),
            ("permute(x, [1.5, 0])", "E0204"),
            ("exp(x)", "fixed[n, 4]"),
            ("x / v", "fixed[n, 4]"),
            ("x / 2", "fixed[n, 4]"),
            ("x / sum(x)", "fixed[n, 4]"),
            ("x / m", "E0201"),
            ("reciprocal(v)", "fixed[4]"),
            ("softmax(x)", "fixed[n, 4]"),
            ("softmax(m, axis: 0)", "fixed[4, 3]"),
            ("softmax(x, axis: 0)", "E0203"),
            ("softmax(s)", "E0203"),
            ("softmax(x, axis: 2)", "E0204"),
            ("rsqrt(x)", "fixed[n, 4]"),
            ("sqrt(v)", "fixed[4]"),
            ("sqrt(x, 2)", "E0204"),
            ("log(x)", "fixed[n, 4]"),
            ("log(x, v)", "E0204"),
            ("log_softmax(x)", "fixed[n, 4]"),
            ("log_softmax(m, axis: 0)", "fixed[4, 3]"),
            ("log_softmax(x, axis: 0)", "E0203"),
            ("log_softmax(s)", "E0203"),
            ("log_softmax(x, dim: 1)", "E0205"),
        ];
        for (expr, expect) in cases {
            check_body(&format!("{inputs} let r = {expr}; output r to a;"), expect);
        }
    }

    #[test]
    fn names_and_parties() {
        check_body("input x: fixed private(a); output x to b;", "fixed");
        check_body("input x: fixed private(c); output x to b;", "E0103");
        check_body("input x: fixed private(d); output x to b;", "E0105");
        check_body("input x: fixed private(a); output x to d;", "E0104");
        check_body("input x: fixed private(a); output x to b, b;", "E0102");
        check_body("input x: fixed private(a); output y to b;", "E0101");
        check_body("input a: fixed public; output a to b;", "E0102");
        // Errors do not cascade: a broken definition is not also "unknown".
        check_body(
            "input x: fixed[0] private(a); let y = x + 1; output y to b;",
            "E0214",
        );
    }

    #[test]
    fn a_tensor_type_too_large_to_hold_is_an_error_not_an_overflow() {
        // 10^10 · 10^10 overflows 64 bits; 2^24 · 2^25 is just above the limit.
        for ty in [
            "fixed[10000000000, 10000000000]",
            "fixed[16777216, 33554432]",
        ] {
            check_body(
                &format!("input x: {ty} private(a); let y = x + 1; output y to b;"),
                "E0215",
            );
        }
        check_body(
            "const c: fixed[10000000000, 10000000000] = 1; input x: fixed private(a); let y = x + c; output y to b;",
            "E0215",
        );
        // At the limit, and with a named dimension of any size, it is fine.
        check_body(
            "input x: fixed[16777216, 16777216] private(a); output x to b;",
            "fixed[16777216, 16777216]",
        );
        check_body(
            "input x: fixed[n, 100000000] private(a); output x to b;",
            "fixed[n, 100000000]",
        );
    }

    /// The codes of every diagnostic, warnings included.
    fn codes(source: &str) -> Vec<&'static str> {
        let r = check_source(source);
        r.diagnostics.iter().map(|d| d.code.as_str()).collect()
    }

    #[test]
    fn an_error_in_a_definition_or_output_silences_unused_warnings() {
        // `v` is fine and output, so the outputs are not all in error.
        let m = |body: &str| {
            format!("model m {{ party a; party b; input x: fixed private(a); input w: fixed private(b); let v = w * 2; output v to b; {body} }}")
        };
        // `x2` meant `x`; `y`, in error, meant to use `w`.
        assert_eq!(codes(&m("let y = x2 * w; output y to a;")), ["E0101"]);
        assert_eq!(codes(&m("let y = x * w; output y2 to a;")), ["E0101"]);
        assert_eq!(
            codes(&m("let y = sigmoid(x * w, degre: 3); output y to a;")),
            ["E0205"]
        );
        // A valid model still warns, and so does one whose error is not in
        // a definition or an output.
        assert_eq!(codes(&m("let y = 2 * 2; output y to a;")), ["W0001"]);
        assert_eq!(
            codes(&m("precision 99; let y = 2 * 2; output y to a;")),
            ["W0001", "E0211"]
        );
    }

    #[test]
    fn via_is_recorded_on_the_operation() {
        let src = "model m { party a; party b; input x: fixed[2] private(a); input w: fixed[2] private(b); let z = (x @ w via paillier) + 1; output z to a; }";
        let m = check_source(src).model.unwrap();
        let dot = m
            .values()
            .iter()
            .find(|v| matches!(v.op, Op::MatMul(..)))
            .unwrap();
        assert_eq!(dot.via, Some(Protocol::Paillier));
        let add = m.value(m.outputs()[0].value);
        assert_eq!(add.via, None);
        let rlwe = src.replace("via paillier", "via rlwe");
        let m = check_source(&rlwe).model.unwrap();
        let dot = m
            .values()
            .iter()
            .find(|v| matches!(v.op, Op::MatMul(..)))
            .unwrap();
        assert_eq!(dot.via, Some(Protocol::Rlwe));
    }

    #[test]
    fn broadcasting_rules() {
        let s = |d: &[u64]| Shape(d.iter().map(|&n| Dim::Known(n)).collect());
        assert_eq!(broadcast(&s(&[2, 3]), &s(&[3])), Some(s(&[2, 3])));
        assert_eq!(broadcast(&s(&[]), &s(&[3])), Some(s(&[3])));
        assert_eq!(broadcast(&s(&[2, 3]), &s(&[2])), None);
        assert_eq!(broadcast(&s(&[3]), &s(&[4])), None);
    }

    /// A reduction along another axis than the last moves it last first; a
    /// keep-dims broadcast moves the larger operand's axis first and back.
    #[test]
    fn axis_reductions_and_keep_dims_broadcasts_move_axes_locally() {
        let r = check_source(
            "model m { party a; party b; input x: fixed[n, 4] private(a);
               let c = sum(x, axis: 0); let d = x - max(x); output c to a; output d to a; }",
        );
        let m = r.model.expect("checks");
        let ops: Vec<String> = m
            .values()
            .iter()
            .map(|v| match &v.op {
                Op::Permute(_, p) => format!("permute{p:?} {}", v.shape),
                op => format!("{} {}", op.mnemonic(), v.shape),
            })
            .collect();
        assert_eq!(
            ops,
            [
                "input fixed[n, 4]",
                "const fixed", // the literal `0` of `axis: 0`, unused
                "permute[1, 0] fixed[4, n]",
                "sum fixed[4]",
                "max fixed[n]",
                "permute[1, 0] fixed[4, n]",
                "sub fixed[4, n]",
                "permute[1, 0] fixed[n, 4]",
            ]
        );
    }

    /// `max_pool2d(relu(x))` pools first (they commute; K times fewer
    /// comparisons), and the `let` of the relu still counts as used.
    #[test]
    fn relu_before_max_pooling_is_pooled_first() {
        let r = check_source(
            "model m { party a; party b; input x: fixed[n, 2, 4, 4] private(a);
               let h = relu(x); let p = max_pool2d(h, 2); output p to b; }",
        );
        assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
        let m = r.model.unwrap();
        let out = m.value(m.outputs()[0].value);
        assert_eq!(out.shape.to_string(), "fixed[n, 2, 2, 2]");
        let Op::Permute(relu, _) = out.op else {
            panic!("{:?}", out.op)
        };
        let Op::Relu(pooled) = m.value(relu).op else {
            panic!("{:?}", m.value(relu).op)
        };
        assert_eq!(m.value(relu).shape.to_string(), "fixed[n, 2, 2, 2]");
        let Op::MaxReduce(cols) = m.value(pooled).op else {
            panic!("{:?}", m.value(pooled).op)
        };
        let Op::Im2col(x, w) = &m.value(cols).op else {
            panic!("{:?}", m.value(cols).op)
        };
        assert!(matches!(m.value(*x).op, Op::Input { .. }));
        assert!(w.edge && w.groups == 2 && w.stride == vec![2, 2]);
        // Average pooling does not commute with relu: it stays first.
        let r = check_source(
            "model m { party a; party b; input x: fixed[n, 1, 4] private(a);
               let p = avg_pool1d(relu(x), 2); output p to b; }",
        );
        let m = r.model.unwrap();
        let out = m.value(m.outputs()[0].value);
        assert_eq!(out.shape.to_string(), "fixed[n, 1, 2]");
        let Op::Reshape(mean) = out.op else {
            panic!("{:?}", out.op)
        };
        let Op::Mean(cols) = m.value(mean).op else {
            panic!("{:?}", m.value(mean).op)
        };
        let Op::Im2col(x, _) = &m.value(cols).op else {
            panic!()
        };
        assert!(matches!(m.value(*x).op, Op::Relu(_)));
    }

    /// `leaky_relu`, `relu6` and `hardtanh` become existing operations:
    /// `max(x, s·x)` and `clamp`, with PyTorch's defaults.
    #[test]
    fn activations_are_written_out_in_existing_operations() {
        let ops = |call: &str| {
            let r = check_source(&format!(
                "model m {{ party a; party b; input x: fixed[n, 4] private(a);
                   let y = {call}; output y to b; }}"
            ));
            let m = r
                .model
                .unwrap_or_else(|| panic!("{call}: {:?}", r.diagnostics));
            assert!(r.diagnostics.is_empty(), "{call}: {:?}", r.diagnostics);
            let out = m.value(m.outputs()[0].value);
            assert_eq!(out.shape.to_string(), "fixed[n, 4]", "{call}");
            (m.clone(), out.op.clone())
        };
        for (call, slope) in [
            ("leaky_relu(x)", 0.01),
            ("leaky_relu(x, negative_slope: 0.2)", 0.2),
            ("leaky_relu(x, 0.3)", 0.3),
        ] {
            let (m, op) = ops(call);
            let Op::Max(x, scaled) = op else {
                panic!("{call}: {op:?}")
            };
            assert!(matches!(m.value(x).op, Op::Input { .. }), "{call}");
            let Op::Mul(x2, c) = &m.value(scaled).op else {
                panic!("{call}: {:?}", m.value(scaled).op)
            };
            assert_eq!(*x2, x, "{call}");
            assert_eq!(m.value(*c).op, Op::Const { data: vec![slope] }, "{call}");
        }
        for (call, lo, hi) in [
            ("relu6(x)", 0.0, 6.0),
            ("hardtanh(x)", -1.0, 1.0),
            ("hardtanh(x, min_val: -2)", -2.0, 1.0),
            ("hardtanh(x, max_val: 0.5)", -1.0, 0.5),
            ("hardtanh(x, max_val: 3, min_val: -0.5)", -0.5, 3.0),
            ("hardtanh(x, -2, 2)", -2.0, 2.0),
        ] {
            let (m, op) = ops(call);
            let Op::Clamp(x, l, h) = op else {
                panic!("{call}: {op:?}")
            };
            assert!(matches!(m.value(x).op, Op::Input { .. }), "{call}");
            assert_eq!((l, h), (lo, hi), "{call}");
        }
    }

    #[test]
    fn activation_arguments_out_of_range_are_refused_with_the_fix() {
        let errors = |call: &str| {
            let r = check_source(&format!(
                "model m {{ party a; party b; input x: fixed[n, 4] private(a);
                   input w: fixed private(b); let y = {call}; output y to b; }}"
            ));
            assert!(r.model.is_none(), "{call} checks");
            (r.diagnostics.into_iter())
                .filter(|d| d.is_error())
                .map(|d| {
                    assert!(d.primary_span().is_some(), "{call}: {}", d.message);
                    let help = d.help.unwrap_or_default();
                    let notes = d.notes.join("; ");
                    (d.code.as_str(), format!("{} | {notes} | {help}", d.message))
                })
                .collect::<Vec<_>>()
        };
        for (call, code, says) in [
            (
                "leaky_relu(x, negative_slope: 1.5)",
                "E0204",
                "min(x, 1.5 * x)",
            ),
            ("leaky_relu(x, negative_slope: 1)", "E0204", "use `x`"),
            ("leaky_relu(x, negative_slope: 0)", "E0204", "relu(x)"),
            (
                "leaky_relu(x, negative_slope: -0.5)",
                "E0204",
                "max(x, -0.5 * x)",
            ),
            (
                "leaky_relu(x, negative_slope: w)",
                "E0204",
                "number literal",
            ),
            ("leaky_relu(x, slope: 0.1)", "E0205", "negative_slope"),
            (
                "hardtanh(x, min_val: 2, max_val: -2)",
                "E0207",
                "[2, -2] are empty",
            ),
            (
                "hardtanh(x, min_val: 1)",
                "E0207",
                "`max_val` defaults to 1",
            ),
            (
                "hardtanh(x, max_val: -1)",
                "E0207",
                "`min_val` defaults to -1",
            ),
            ("leaky_relu(x, 2)", "E0204", "min(x, 2 * x)"),
            (
                "leaky_relu(x, 0.1, negative_slope: 0.2)",
                "E0205",
                "no argument named",
            ),
            ("hardtanh(x, 1, -1)", "E0207", "[1, -1] are empty"),
            ("hardtanh(x, 1)", "E0204", "positional"),
            ("relu6(x, 1)", "E0204", "positional"),
        ] {
            let got = errors(call);
            assert_eq!(got.len(), 1, "{call}: {got:?}");
            assert_eq!(got[0].0, code, "{call}: {got:?}");
            assert!(got[0].1.contains(says), "{call}: {got:?}");
        }
    }
}
