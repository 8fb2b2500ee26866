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
        // Nor does the analysis `veil check` runs after the checker warn.
        let model = result.model.unwrap();
        for use_dealer in [true, false] {
            let opts = compiler::Options {
                use_dealer,
                ..compiler::Options::default()
            };
            let mut d = compiler::analyse(&model, &opts).unwrap();
            // Without a dealer, a sigmoid whose input can leave its domain
            // is not clamped (comparisons are dear), and says so.
            d.retain(|d| use_dealer || d.code != grammar::Code::BeyondDomain);
            let source = std::fs::read_to_string(&path).unwrap();
            assert!(
                d.is_empty(),
                "{} (dealer: {use_dealer}):\n{}",
                path.display(),
                grammar::render(&d, "model", &source)
            );
        }
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

/// What `veil check` reports: the checker's diagnostics, and for a valid
/// model those of the analysis after it (compile's default options).
fn checked_and_analysed(path: &Path) -> (Vec<grammar::Diagnostic>, String) {
    let source = std::fs::read_to_string(path).unwrap();
    let result = compiler::check_source(&source);
    let mut d = result.diagnostics;
    if let Some(model) = &result.model {
        d.extend(compiler::analyse(model, &compiler::Options::default()).unwrap());
        d.sort_by_key(|d| d.primary_span().map_or(0, |s| s.start));
    }
    let name = format!("{}", path.file_name().unwrap().to_string_lossy());
    let text = grammar::render(&d, &name, &source);
    (d, text)
}

#[test]
fn warnings_corpus_passes_with_warnings() {
    for path in corpus("tests/corpus/warnings") {
        let (d, text) = checked_and_analysed(&path);
        assert!(
            !d.iter().any(|d| d.is_error()),
            "{}:\n{text}",
            path.display()
        );
        assert!(!d.is_empty(), "{} should warn", path.display());
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
            .values()
            .iter()
            .find_map(|v| match v.op {
                compiler::ir::Op::Clamp(_, lo, hi) => Some((lo, hi)),
                _ => None,
            })
            .expect("the clamp");
        assert_eq!(clamp, (lo, 2.0), "{signs} signs");
    }
}

/// A literal position for the unary-chain property: the model body with
/// `LIT` where the literal goes, the literal, whether the grammar allows an
/// expression there (a chain of signs) or only a signed number (one sign),
/// the error code expected when the signed value is invalid there, and how
/// to read the value back from the checked model.
type Invalid = Option<(fn(f64) -> bool, &'static str)>;

struct Position {
    body: &'static str,
    base: f64,
    expression: bool,
    invalid: Invalid,
    read: fn(&compiler::ir::CheckedModel) -> f64,
}

fn positions() -> Vec<Position> {
    use compiler::ir::{CheckedModel, Op};
    fn find<T>(m: &CheckedModel, f: impl Fn(&Op) -> Option<T>) -> T {
        m.values().iter().find_map(|v| f(&v.op)).expect("the value")
    }
    fn approx(m: &CheckedModel) -> compiler::ir::Approx {
        find(m, |op| match op {
            Op::Sigmoid(_, a) => Some(a.clone()),
            _ => None,
        })
    }
    vec![
        Position {
            body: "let y = clamp(x, LIT, 100);",
            base: 3.0,
            expression: true,
            invalid: None,
            read: |m| {
                find(m, |op| match op {
                    Op::Clamp(_, lo, _) => Some(*lo),
                    _ => None,
                })
            },
        },
        Position {
            body: "let y = clamp(x, -100, LIT);",
            base: 3.0,
            expression: true,
            invalid: None,
            read: |m| {
                find(m, |op| match op {
                    Op::Clamp(_, _, hi) => Some(*hi),
                    _ => None,
                })
            },
        },
        Position {
            body: "let y = sigmoid(x, degree: LIT);",
            base: 3.0,
            expression: true,
            invalid: Some((|v| v < 0.0, "E0206")),
            read: |m| f64::from(approx(m).degree.unwrap()),
        },
        Position {
            body: "let y = sigmoid(x, tol: LIT);",
            base: 0.25,
            expression: true,
            invalid: Some((|v| v < 0.0, "E0204")),
            read: |m| approx(m).tol.unwrap(),
        },
        Position {
            body: "let y = x * LIT;",
            base: 3.0,
            expression: true,
            invalid: None,
            read: |m| {
                // Follow the right operand of the product through its negations.
                let mut v = find(m, |op| match op {
                    Op::Mul(_, b) => Some(*b),
                    _ => None,
                });
                let mut sign = 1.0;
                loop {
                    match &m.value(v).op {
                        Op::Neg(a) => {
                            sign = -sign;
                            v = *a;
                        }
                        Op::Const { data } => return sign * data[0],
                        op => panic!("unexpected {op:?}"),
                    }
                }
            },
        },
        Position {
            body: "let y = poly(x, [1, LIT]);",
            base: 3.0,
            expression: false,
            invalid: None,
            read: |m| {
                find(m, |op| match op {
                    Op::Poly(_, c) => Some(c[1]),
                    _ => None,
                })
            },
        },
        Position {
            body: "let y = sigmoid(x, domain: [LIT, 100]);",
            base: 3.0,
            expression: false,
            invalid: None,
            read: |m| approx(m).domain.unwrap().0,
        },
        Position {
            body: "input r: fixed private(b) in [LIT, 100]; let y = x * r;",
            base: 3.0,
            expression: false,
            invalid: None,
            read: |m| {
                find(m, |op| match op {
                    Op::Input {
                        range: Some((lo, 100.0)),
                        ..
                    } => Some(*lo),
                    _ => None,
                })
            },
        },
        Position {
            body: "const c: fixed = LIT; let y = x * c;",
            base: 3.0,
            expression: false,
            invalid: None,
            read: |m| {
                find(m, |op| match op {
                    Op::Const { data } => Some(data[0]),
                    _ => None,
                })
            },
        },
        Position {
            body: "const c: fixed[4] = [1, LIT, 1, 1]; let y = x * c;",
            base: 3.0,
            expression: false,
            invalid: None,
            read: |m| {
                find(m, |op| match op {
                    Op::Const { data } if data.len() == 4 => Some(data[1]),
                    _ => None,
                })
            },
        },
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
    /// Chains of `-` signs, short and long, with blanks and comments between
    /// them, in every literal position: the checker never panics, refuses
    /// chains over the limit (E0003) and extra signs where only a signed
    /// number is allowed (E0001), and otherwise reads the value with its sign.
    #[test]
    fn unary_chains_in_every_literal_position(
        which in 0usize..10,
        seps in proptest::prop_oneof![
            proptest::collection::vec(proptest::sample::select(vec!["", " ", "\n", " // -\n"]), 0..80),
            proptest::collection::vec(proptest::sample::select(vec!["", " "]), 1000..5000),
        ],
    ) {
        let positions = positions();
        let p = &positions[which % positions.len()];
        let signs: String = seps.iter().map(|s| format!("-{s}")).collect();
        let lit = format!("{signs}{}", p.base);
        let source = format!(
            "model m {{ party a; party b; input x: fixed[4] private(a) in [-4, 4]; {} output y to b; }}",
            p.body.replace("LIT", &lit)
        );
        let r = compiler::check_source(&source);
        let _ = grammar::render(&r.diagnostics, "p.veil", &source);
        let errors: Vec<&str> = r.diagnostics.iter().filter(|d| d.is_error()).map(|d| d.code.as_str()).collect();
        let k = seps.len();
        let value = if k % 2 == 0 { p.base } else { -p.base };
        if k > grammar::MAX_NESTING {
            proptest::prop_assert_eq!(errors, vec!["E0003"]);
        } else if !p.expression && k > 1 {
            proptest::prop_assert_eq!(errors, vec!["E0001"]);
        } else if let Some((_, code)) = p.invalid.filter(|(bad, _)| bad(value)) {
            proptest::prop_assert_eq!(errors, vec![code]);
        } else {
            let m = r.model.as_ref();
            proptest::prop_assert!(m.is_some(), "{}", grammar::render(&r.diagnostics, "p.veil", &source));
            proptest::prop_assert_eq!((p.read)(m.unwrap()), value);
        }
    }
}
