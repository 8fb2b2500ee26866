//! A stable, indented text form of the AST, used by snapshot tests and
//! `veil parse`. Expressions print as s-expressions; every item shows its span.

use crate::ast::*;
use std::fmt::Write;

pub fn ast_to_text(model: &Model) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "model {} @{}", model.name.name, model.span);
    for item in &model.items {
        let _ = writeln!(out, "  {} @{}", item_text(model, item), item.span());
    }
    out
}

fn item_text(m: &Model, item: &Item) -> String {
    match item {
        Item::Precision { bits, .. } => format!("precision {bits}"),
        Item::Party { name, .. } => format!("party {}", name.name),
        Item::Dealer { name, .. } => format!("dealer {}", name.name),
        Item::Input {
            name,
            ty,
            visibility,
            range,
            columns,
            ..
        } => {
            let vis = match visibility {
                Visibility::Public { .. } => "public".to_string(),
                Visibility::Private { party, .. } => format!("private({})", party.name),
            };
            let range = range
                .as_ref()
                .map(|r| format!(" in [{}, {}]", r.lo.value, r.hi.value))
                .unwrap_or_default();
            let columns = match columns {
                None => String::new(),
                Some(ColumnRanges::File { path, .. }) => format!(" in {path:?}"),
                Some(ColumnRanges::List { ranges, .. }) => {
                    let r: Vec<String> = ranges
                        .iter()
                        .map(|r| format!("[{}, {}]", r.lo.value, r.hi.value))
                        .collect();
                    format!(" in [{}]", r.join(", "))
                }
            };
            format!(
                "input {}: {} {vis}{range}{columns}",
                name.name,
                type_text(ty)
            )
        }
        Item::Const {
            name, ty, value, ..
        } => {
            let v = match value {
                ConstValue::Number(n) => n.value.to_string(),
                ConstValue::Array(a) => array_text(a),
            };
            format!("const {}: {} = {v}", name.name, type_text(ty))
        }
        Item::Let { name, value, .. } => format!("let {} = {}", name.name, expr_text(m, *value)),
        Item::Output {
            value, to, labels, ..
        } => {
            let to: Vec<&str> = to.iter().map(|p| p.name.as_str()).collect();
            let labels = labels
                .as_ref()
                .map(|a| format!(" labels {}", array_text(a)))
                .unwrap_or_default();
            format!("output {} to {}{labels}", value.name, to.join(", "))
        }
    }
}

pub(crate) fn type_text(ty: &Type) -> String {
    if ty.dims.is_empty() {
        return "fixed".into();
    }
    let dims: Vec<String> = ty
        .dims
        .iter()
        .map(|d| match &d.kind {
            DimKind::Known(n) => n.to_string(),
            DimKind::Symbol(s) => s.clone(),
        })
        .collect();
    format!("fixed[{}]", dims.join(", "))
}

fn array_text(a: &ArrayLit) -> String {
    let elems: Vec<String> = a
        .elems
        .iter()
        .map(|e| match e {
            ArrayElem::Number(n) => n.value.to_string(),
            ArrayElem::Array(a) => array_text(a),
        })
        .collect();
    format!("[{}]", elems.join(", "))
}

/// Expressions nest only as deep as the source's parentheses allow
/// (bounded by the parser), except for left-nested operator chains, which
/// are printed by this explicit-stack walk.
fn expr_text(m: &Model, root: ExprId) -> String {
    enum Step {
        Visit(ExprId),
        Text(String),
    }
    let mut out = String::new();
    let mut stack = vec![Step::Visit(root)];
    while let Some(step) = stack.pop() {
        match step {
            Step::Text(t) => out.push_str(&t),
            Step::Visit(id) => match &m.expr(id).kind {
                ExprKind::Number(v) => out.push_str(&v.to_string()),
                ExprKind::Name(n) => out.push_str(&n.name),
                ExprKind::Neg(e) => {
                    out.push_str("(neg ");
                    stack.push(Step::Text(")".into()));
                    stack.push(Step::Visit(*e));
                }
                ExprKind::Binary { op, lhs, rhs, .. } => {
                    out.push_str(&format!("({} ", op.symbol()));
                    stack.push(Step::Text(")".into()));
                    stack.push(Step::Visit(*rhs));
                    stack.push(Step::Text(" ".into()));
                    stack.push(Step::Visit(*lhs));
                }
                ExprKind::Via { expr, protocol } => {
                    out.push_str("(via ");
                    out.push_str(&protocol.name);
                    out.push(' ');
                    stack.push(Step::Text(")".into()));
                    stack.push(Step::Visit(*expr));
                }
                ExprKind::Call { func, args } => {
                    out.push('(');
                    out.push_str(&func.name);
                    stack.push(Step::Text(")".into()));
                    for arg in args.iter().rev() {
                        match &arg.value {
                            ArgValue::Expr(e) => stack.push(Step::Visit(*e)),
                            ArgValue::Array(a) => stack.push(Step::Text(array_text(a))),
                        }
                        let prefix = match &arg.name {
                            Some(n) => format!(" {}: ", n.name),
                            None => " ".into(),
                        };
                        stack.push(Step::Text(prefix));
                    }
                }
            },
        }
    }
    out
}
