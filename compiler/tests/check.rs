//! The checker stage over the shared corpus: bundled models check cleanly;
//! every file of the error corpus is rejected, and its rendered diagnostics
//! are snapshotted; the warnings corpus passes with warnings.

use std::path::{Path, PathBuf};

fn corpus(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "veil"))
        .collect();
    files.sort();
    files
}

fn rendered(path: &Path) -> (compiler::CheckResult, String) {
    let source = std::fs::read_to_string(path).unwrap();
    let result = compiler::check_source(&source);
    let name = format!("{}", path.file_name().unwrap().to_string_lossy());
    let text = grammar::render(&result.diagnostics, &name, &source);
    (result, text)
}

#[test]
fn bundled_models_check_without_diagnostics() {
    for path in corpus("models") {
        let (result, text) = rendered(&path);
        assert!(result.diagnostics.is_empty(), "{}:\n{text}", path.display());
        assert!(result.model.is_some());
    }
}

#[test]
fn error_corpus_is_rejected_with_pointed_messages() {
    let files = corpus("tests/corpus/errors");
    assert!(files.len() >= 20, "{files:?}");
    for path in files {
        let (result, text) = rendered(&path);
        assert!(result.has_errors(), "{} should be rejected", path.display());
        assert!(result.model.is_none());
        for d in result.diagnostics.iter().filter(|d| d.is_error()) {
            assert!(
                d.primary_span().is_some(),
                "{}: every error points somewhere: {}",
                path.display(),
                d.message
            );
        }
        let name = format!("error_{}", path.file_stem().unwrap().to_string_lossy());
        insta::assert_snapshot!(name, text);
    }
}

#[test]
fn warnings_corpus_passes_with_warnings() {
    for path in corpus("tests/corpus/warnings") {
        let (result, text) = rendered(&path);
        assert!(!result.has_errors(), "{}:\n{text}", path.display());
        assert!(
            !result.diagnostics.is_empty(),
            "{} should warn",
            path.display()
        );
        let name = format!("warning_{}", path.file_stem().unwrap().to_string_lossy());
        insta::assert_snapshot!(name, text);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
    /// The checker sees arbitrary (syntactically valid) models without panicking.
    #[test]
    fn checker_never_panics(
        body in proptest::collection::vec(proptest::sample::select(vec![
            "party a;", "party b;", "dealer d;", "input x: fixed[n, 3] private(a);",
            "input w: fixed[3] private(b);", "input s: fixed public in [1, -1];",
            "const c: fixed[2] = [1, [2]];", "const k: fixed[2, 2] = [[1, 2], [3]];",
            "let y = x @ w;", "let y = sigmoid(y, degree: 3);", "let z = max(x);",
            "let q = clamp(z, 1, 0) via shares;", "output y to a;", "output q to d;",
            "output z to a, a;", "let t = poly(s, []);", "precision 99;",
            "let u = argmax(s) @ s;", "let v = unknown(x);", "output v to b;",
        ]), 0..12)
    ) {
        let source = format!("model m {{ {} }}", body.join(" "));
        let r = compiler::check_source(&source);
        let _ = grammar::render(&r.diagnostics, "p.veil", &source);
        proptest::prop_assert_eq!(r.model.is_some(), !r.has_errors());
    }
}

/// `clamp(x, -…-1, 2)` with `signs` minus signs, built as an AST directly:
/// the parser refuses more than `grammar::MAX_NESTING` signs in a row, but
/// the checker must not depend on that to stay within its stack.
fn clamp_with_signs(signs: usize) -> grammar::ast::Model {
    use grammar::ast::{ArgValue, Expr, ExprId, ExprKind, Item};
    let mut ast = grammar::parse(
        "model m { party a; party b; input x: fixed private(a); let y = clamp(x, 1, 2); output y to b; }",
    )
    .unwrap();
    // The arena is [x, 1, 2, clamp(...)]; put the signs between `1` and `2`.
    assert_eq!(ast.exprs.len(), 4);
    let (one, two, mut call) = (
        ast.exprs[1].clone(),
        ast.exprs[2].clone(),
        ast.exprs[3].clone(),
    );
    let mut exprs = vec![ast.exprs[0].clone(), one.clone()];
    for i in 0..signs {
        exprs.push(Expr {
            kind: ExprKind::Neg(ExprId(1 + i as u32)),
            span: one.span,
        });
    }
    let lo = ExprId(exprs.len() as u32 - 1);
    exprs.push(two);
    let hi = ExprId(exprs.len() as u32 - 1);
    let ExprKind::Call { args, .. } = &mut call.kind else {
        panic!("expected the call")
    };
    args[1].value = ArgValue::Expr(lo);
    args[2].value = ArgValue::Expr(hi);
    exprs.push(call);
    let root = ExprId(exprs.len() as u32 - 1);
    ast.exprs = exprs;
    for item in &mut ast.items {
        if let Item::Let { value, .. } = item {
            *value = root;
        }
    }
    ast
}

#[test]
fn two_million_minus_signs_in_a_literal_argument_do_not_overflow_the_checker() {
    for (signs, lo) in [(2_000_000, 1.0), (65, -1.0)] {
        let r = compiler::check(&clamp_with_signs(signs));
        let model = r
            .model
            .unwrap_or_else(|| panic!("{signs} signs: {:?}", r.diagnostics));
        let clamp = model
            .values
            .iter()
            .find_map(|v| match v.op {
                compiler::ir::Op::Clamp(_, lo, hi) => Some((lo, hi)),
                _ => None,
            })
            .expect("the clamp");
        assert_eq!(clamp, (lo, 2.0), "{signs} signs");
    }
}
