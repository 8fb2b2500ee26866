//! The abstract syntax tree. Every node carries the [`Span`] it came from.
//!
//! Expressions live in one arena per model ([`Model::exprs`]) and refer to
//! each other by [`ExprId`]; an expression's operands always have smaller
//! ids than the expression itself, so a single forward pass over the arena
//! visits operands before their users (and nothing ever recurses).

use crate::Span;

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub name: Ident,
    pub items: Vec<Item>,
    pub exprs: Vec<Expr>,
    pub span: Span,
}

impl Model {
    pub fn expr(&self, id: ExprId) -> &Expr {
        &self.exprs[id.0 as usize]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExprId(pub u32);

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `precision 16;`: fractional bits of the fixed-point encoding.
    Precision { bits: u64, span: Span },
    /// `party client;`
    Party { name: Ident, span: Span },
    /// `dealer helper;`
    Dealer { name: Ident, span: Span },
    /// `input x: fixed[batch, 100] private(client) in [-4, 4];`
    Input {
        name: Ident,
        ty: Type,
        visibility: Visibility,
        range: Option<RangeLit>,
        /// `in [[-1, 1], [0, 255]]` or `in "ranges.npy"`: one range per
        /// entry of the last axis (instead of `range`).
        columns: Option<ColumnRanges>,
        span: Span,
    },
    /// `const half: fixed = 0.5;`
    Const {
        name: Ident,
        ty: Type,
        value: ConstValue,
        span: Span,
    },
    /// `let z = x @ w + b;`
    Let {
        name: Ident,
        value: ExprId,
        span: Span,
    },
    /// `output p to client;`
    Output {
        value: Ident,
        to: Vec<Ident>,
        /// `labels [..]`: the public table an argmax index is revealed as.
        labels: Option<ArrayLit>,
        span: Span,
    },
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Precision { span, .. }
            | Item::Party { span, .. }
            | Item::Dealer { span, .. }
            | Item::Input { span, .. }
            | Item::Const { span, .. }
            | Item::Let { span, .. }
            | Item::Output { span, .. } => *span,
        }
    }
}

/// `fixed`, `fixed[100]`, `fixed[batch, 100]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Type {
    pub dims: Vec<Dim>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Dim {
    pub kind: DimKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DimKind {
    Known(u64),
    /// A size bound at run time, such as `batch`.
    Symbol(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Visibility {
    Public { span: Span },
    Private { party: Ident, span: Span },
}

/// A numeric literal, possibly negated (`-4`, `0.5`, `1e-3`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Number {
    pub value: f64,
    pub span: Span,
}

/// `in [lo, hi]`
#[derive(Clone, Debug, PartialEq)]
pub struct RangeLit {
    pub lo: Number,
    pub hi: Number,
    pub span: Span,
}

/// Per-column ranges of an input's last axis.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnRanges {
    /// `in [[-1, 1], [0, 255], ...]`
    List { ranges: Vec<RangeLit>, span: Span },
    /// `in "ranges.npy"`: a file of shape [k, 2] (.npy or .csv), read by the
    /// front end (the compiler does no I/O); `path` as written, unquoted.
    File { path: String, span: Span },
}

impl ColumnRanges {
    pub fn span(&self) -> Span {
        match self {
            ColumnRanges::List { span, .. } | ColumnRanges::File { span, .. } => *span,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ConstValue {
    Number(Number),
    Array(ArrayLit),
}

/// `[1, -2.5, 3]`, possibly nested.
#[derive(Clone, Debug, PartialEq)]
pub struct ArrayLit {
    pub elems: Vec<ArrayElem>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ArrayElem {
    Number(Number),
    Array(ArrayLit),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Number(f64),
    Name(Ident),
    Neg(ExprId),
    Binary {
        op: BinOp,
        op_span: Span,
        lhs: ExprId,
        rhs: ExprId,
    },
    Call {
        func: Ident,
        args: Vec<Arg>,
    },
    /// `expr via paillier`: a protocol override for the root operation of `expr`.
    Via {
        expr: ExprId,
        protocol: Ident,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    /// `a / b`: elementwise division.
    Div,
    MatMul,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::MatMul => "@",
        }
    }
}

/// A call argument: positional (`x`) or named (`degree: 9`).
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: ArgValue,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ArgValue {
    Expr(ExprId),
    Array(ArrayLit),
}
