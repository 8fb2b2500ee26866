//! The parser stage over the shared corpus: every bundled model parses, and
//! its AST text form is snapshotted; no input makes the parser panic.

use proptest::prelude::*;
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

#[test]
fn every_bundled_model_parses_to_a_stable_ast() {
    let files = corpus("models");
    assert!(
        files.len() >= 4,
        "expected the bundled models, found {files:?}"
    );
    for path in files {
        let source = std::fs::read_to_string(&path).unwrap();
        let ast = grammar::parse(&source).unwrap_or_else(|d| {
            panic!(
                "{}:\n{}",
                path.display(),
                grammar::render(&d, "model", &source)
            )
        });
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        insta::assert_snapshot!(name, grammar::ast_to_text(&ast));
    }
}

#[test]
fn spans_point_at_their_source() {
    let source =
        "model m { party a; party b; input x: fixed[3] private(a); let y = x + 1; output y to b; }";
    let ast = grammar::parse(source).unwrap();
    for item in &ast.items {
        let span = item.span();
        let text = &source[span.start..span.end];
        assert!(
            text.ends_with(';'),
            "item span should cover the declaration: {text:?}"
        );
    }
    let root = ast.exprs.last().unwrap();
    assert_eq!(&source[root.span.start..root.span.end], "x + 1");
}

#[test]
fn precedence_and_associativity() {
    let ast = grammar::parse("model m { let a = x - y - z * w @ v + -u; }").unwrap();
    let text = grammar::ast_to_text(&ast);
    assert!(
        text.contains("let a = (+ (- (- x y) (@ (* z w) v)) (neg u))"),
        "{text}"
    );
}

#[test]
fn per_column_ranges_parse_as_a_list_or_a_file() {
    let ast = grammar::parse(
        "model m { input x: fixed[batch, 2] private(a) in [[-1, 1], [0, 2.5e2],];
                   input y: fixed[batch, 2] private(a) in \"r.npy\";
                   input z: fixed[2] public in [-4, 4]; }",
    )
    .unwrap();
    let text = grammar::ast_to_text(&ast);
    assert!(
        text.contains("input x: fixed[batch, 2] private(a) in [[-1, 1], [0, 250]]"),
        "{text}"
    );
    assert!(
        text.contains("input y: fixed[batch, 2] private(a) in \"r.npy\""),
        "{text}"
    );
    assert!(
        text.contains("input z: fixed[2] public in [-4, 4] @"),
        "{text}"
    );
    match &ast.items[1] {
        grammar::ast::Item::Input {
            columns: Some(grammar::ast::ColumnRanges::File { path, span }),
            range: None,
            ..
        } => {
            assert_eq!(path, "r.npy");
            assert_eq!(span.end - span.start, 7, "the quoted name");
        }
        other => panic!("{other:?}"),
    }
    // A bracket too few is a syntax error at its place.
    let err =
        grammar::parse("model m { input x: fixed[2] public in [[-1, 1], [0 2]]; }").unwrap_err();
    assert_eq!(err[0].code, grammar::Code::Syntax);
}

#[test]
fn syntax_errors_have_a_place_and_an_expectation() {
    let err = grammar::parse("model m { party a }").unwrap_err();
    assert_eq!(err.len(), 1);
    assert_eq!(err[0].code, grammar::Code::Syntax);
    assert!(
        err[0].message.contains("expected `;`"),
        "{}",
        err[0].message
    );
    let span = err[0].primary_span().unwrap();
    assert_eq!(span, grammar::Span::new(16, 17), "points at the end of `a`");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!(
        "model m {{ let a = {}x{}; }}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    let err = grammar::parse(&deep).unwrap_err();
    assert_eq!(err[0].code, grammar::Code::TooDeep);
    let ok = format!(
        "model m {{ let a = {}x{}; }}",
        "(".repeat(grammar::MAX_NESTING),
        ")".repeat(grammar::MAX_NESTING)
    );
    assert!(grammar::parse(&ok).is_ok());
}

#[test]
fn long_runs_of_minus_signs_are_an_error_not_a_stack_overflow() {
    // The literal position of defect 11 (issue 14): two million signs.
    let source = format!(
        "model m {{ party a; party b; input x: fixed private(a); let y = clamp(x, {}1, 2); output y to b; }}",
        "-".repeat(2_000_000)
    );
    let start = std::time::Instant::now();
    let err = grammar::parse(&source).unwrap_err();
    assert!(start.elapsed().as_secs() < 2, "{:?}", start.elapsed());
    assert_eq!(err.len(), 1);
    assert_eq!(err[0].code, grammar::Code::TooDeep);
    let first = source.find('-').unwrap();
    assert_eq!(
        err[0].primary_span(),
        Some(grammar::Span::new(
            first + grammar::MAX_NESTING,
            first + grammar::MAX_NESTING + 1
        )),
        "points at the first sign over the limit"
    );
    // Blanks and comments between the signs do not reset the count.
    let spaced = format!(
        "model m {{ let a = {}x; }}",
        "- // sign\n".repeat(grammar::MAX_NESTING + 1)
    );
    assert_eq!(
        grammar::parse(&spaced).unwrap_err()[0].code,
        grammar::Code::TooDeep
    );
    // Up to the limit they parse, each one a negation.
    let ok = format!(
        "model m {{ let a = {}x; }}",
        "- // sign\n".repeat(grammar::MAX_NESTING)
    );
    let ast = grammar::parse(&ok).unwrap();
    assert_eq!(ast.exprs.len(), grammar::MAX_NESTING + 1);
    // Signs in comments and separated by operands are not a run.
    let separated = format!(
        "model m {{ let a = x{}; // {} \n }}",
        " - x".repeat(1000),
        "-".repeat(1000)
    );
    assert!(grammar::parse(&separated).is_ok());
}

#[test]
fn long_operator_chains_do_not_overflow() {
    let chain = format!("model m {{ let a = x{}; }}", " + x".repeat(200_000));
    let ast = grammar::parse(&chain).unwrap();
    assert_eq!(ast.exprs.len(), 400_001);
    // Printing walks the left-nested chain without recursion.
    assert!(grammar::ast_to_text(&ast).len() > 400_000);
}

fn model_sources() -> Vec<String> {
    corpus("models")
        .into_iter()
        .chain(corpus("tests/corpus/errors"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_text(s in "\\PC*") {
        let _ = grammar::parse(&s);
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let s = String::from_utf8_lossy(&bytes);
        let _ = grammar::parse(&s);
    }

    #[test]
    fn never_panics_on_mutated_models(
        which in 0usize..64,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<char>(), 0u8..3), 1..8),
    ) {
        let sources = model_sources();
        let mut s: Vec<char> = sources[which % sources.len()].chars().collect();
        for (at, c, kind) in edits {
            if s.is_empty() { break; }
            let i = at.index(s.len());
            match kind {
                0 => { s.remove(i); }
                1 => s.insert(i, c),
                _ => s[i] = c,
            }
        }
        let s: String = s.into_iter().collect();
        if let Err(diags) = grammar::parse(&s) {
            prop_assert!(!diags.is_empty());
            // Rendering must not panic either, whatever the spans.
            let _ = grammar::render(&diags, "fuzz.veil", &s);
        }
    }
}
