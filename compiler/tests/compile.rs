//! The compiler stage over the shared corpus: for every bundled model the
//! graph, the report and the plan text are snapshotted (and must be
//! deterministic and valid); choices that must differ do; and the
//! compile-error corpus is rejected with rendered diagnostics.

use compiler::{CompileError, Network, Options};
use std::path::{Path, PathBuf};

fn corpus(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "veil"))
        .collect();
    files.sort();
    files
}

fn checked(source: &str) -> compiler::ir::CheckedModel {
    let r = compiler::check_source(source);
    r.model
        .unwrap_or_else(|| panic!("{}", grammar::render(&r.diagnostics, "model", source)))
}

/// Compile; an error of the model as its rendered diagnostics.
fn compile(model: &compiler::ir::CheckedModel, o: &Options) -> Result<compiler::Compiled, String> {
    compiler::compile(model, o).map_err(|e| match e {
        CompileError::Model(d) => format!("{d:#?}"),
        internal => format!("{internal}: {:?}", std::error::Error::source(&internal)),
    })
}

fn opts(f: impl FnOnce(&mut Options)) -> Options {
    let mut o = Options::default();
    f(&mut o);
    o
}

/// The method chosen for each operation, as `label: method` lines.
fn choices(source: &str, o: &Options) -> Vec<String> {
    let c = compile(&checked(source), o).unwrap_or_else(|e| panic!("{e}"));
    c.report
        .lines()
        .filter(|l| {
            l.starts_with("  ")
                && !l.starts_with("   ")
                && l.contains(" = ")
                && l.ends_with(|c: char| c.is_alphanumeric() || c == ']')
        })
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn every_model_compiles_to_a_valid_deterministic_plan() {
    for path in corpus("models") {
        let source = std::fs::read_to_string(&path).unwrap();
        let model = checked(&source);
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        for (variant, o) in [
            ("", Options::default()),
            ("_no_dealer", opts(|o| o.use_dealer = false)),
        ] {
            // Every model compiles with and without a dealer (comparisons
            // get Paillier-generated correlations without one).
            let a = compile(&model, &o).unwrap_or_else(|e| panic!("{name}: {e}"));
            let b = compile(&model, &o).unwrap();
            assert_eq!(a.plan, b.plan, "{name}: compilation is deterministic");
            assert_eq!(a.report, b.report);
            plan::validate(&a.plan).unwrap();
            // JSON round trip.
            assert_eq!(plan::Plan::from_json(&a.plan.to_json()).unwrap(), a.plan);
            insta::assert_snapshot!(format!("{name}{variant}_report"), a.report);
            insta::assert_snapshot!(format!("{name}{variant}_plan"), a.plan.to_text());
            if variant.is_empty() {
                insta::assert_snapshot!(format!("{name}_graph"), a.graph_text);
            }
        }
    }
}

#[test]
fn a_dealer_makes_shares_cheaper_than_paillier() {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/logreg_100.veil"),
    )
    .unwrap();
    let with = choices(&src, &Options::default());
    let without = choices(
        &src,
        &opts(|o| {
            o.use_dealer = false;
            o.correlations = Some(plan::CorrelationEngine::Paillier);
        }),
    );
    assert!(
        with.iter()
            .any(|l| l.starts_with("%3 = matmul(x, w): shares")),
        "{with:?}"
    );
    // Without a dealer the product runs on RLWE (issue 17): thousands of
    // multiply-accumulates per ciphertext beat Paillier's one per term.
    assert!(
        without
            .iter()
            .any(|l| l.starts_with("%3 = matmul(x, w): rlwe")),
        "{without:?}"
    );
    // Paillier alone, for a single row: encrypting the client's 100
    // features beats encrypting per row.
    let one = choices(
        &src,
        &opts(|o| {
            o.use_dealer = false;
            o.correlations = Some(plan::CorrelationEngine::Paillier);
            o.prefer = Some(compiler::ir::Protocol::Paillier);
            o.assume.insert("batch".into(), 1);
        }),
    );
    assert!(
        one.iter()
            .any(|l| l.starts_with("%3 = matmul(x, w): paillier[client]")),
        "{one:?}"
    );
}

#[test]
fn without_a_dealer_rlwe_runs_products_except_where_ot_or_paillier_wins() {
    let src = "model m { party client; party server; dealer helper;
        input x: fixed[batch, K] private(client) in [-4, 4];
        input w: fixed[K] private(server) in [-0.05, 0.05];
        let z = x @ w;
        output z to client; }";
    let at = |k: u32, batch: u64, network: Network| {
        choices(
            &src.replace('K', &k.to_string()),
            &opts(|o| {
                o.use_dealer = false;
                o.network = network;
                o.assume.insert("batch".into(), batch);
            }),
        )
    };
    // On a LAN a tiny product at batch 1 runs on shares with a Beaver
    // triple made by OT (about 10 kB, no RLWE key); RLWE wins a layer of
    // any width.
    assert_eq!(at(4, 1, Network::LAN), vec!["z = matmul(x, w): shares"]);
    assert_eq!(at(100, 1000, Network::LAN), vec!["z = matmul(x, w): rlwe"]);
    // A tiny layer at batch 1 over a WAN: Paillier's few ciphertexts beat
    // RLWE's 200 KB key and messages and its extra truncation round.
    assert_eq!(
        at(4, 1, Network::WAN),
        vec!["z = matmul(x, w): paillier[client]"]
    );
    // A wide one over the same WAN: RLWE again.
    assert_eq!(at(100, 1000, Network::WAN), vec!["z = matmul(x, w): rlwe"]);
}

#[test]
fn rlwe_products_take_w_bits_from_the_range_analysis() {
    // The runtime splits W into digits by these bits and refuses entries
    // outside them, so they must cover every value the range allows:
    // 1000 at 16 fractional bits is 65,536,000 < 2^26, plus a sign bit.
    let src = "model m { party client; party server;
        input x: fixed[1, 2] private(client) in [-1, 1];
        input w: fixed[2] private(server) in [-R, R];
        let z = x @ w;
        output z to client; }";
    let prefer = opts(|o| {
        o.use_dealer = false;
        o.prefer = Some(compiler::ir::Protocol::Rlwe);
    });
    for (range, bits) in [("1000", 27), ("0.05", 13), ("1", 18)] {
        let c = compile(&checked(&src.replace('R', range)), &prefer).unwrap();
        let text = c.plan.to_text();
        assert!(
            text.contains(&format!("(w: {bits} bits)")),
            "W in [-{range}, {range}]:\n{text}"
        );
    }
}

#[test]
fn a_wan_favours_fewer_rounds() {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/linreg.veil"),
    )
    .unwrap();
    let batch1 = |net: Network| {
        opts(|o| {
            o.network = net;
            o.assume.insert("batch".into(), 1);
        })
    };
    let lan = choices(&src, &batch1(Network::LAN));
    let wan = choices(&src, &batch1(Network::WAN));
    assert!(lan.iter().all(|l| l.ends_with(": shares")), "{lan:?}");
    assert!(
        wan.iter().all(|l| l.ends_with(": paillier[buyer]")),
        "{wan:?}"
    );
}

#[test]
fn via_overrides_the_cost_model() {
    let base = "model m { party client; party server; dealer helper;
        input x: fixed[batch, 100] private(client) in [-4, 4];
        input w: fixed[100] private(server) in [-0.05, 0.05];
        let z = x @ w VIA;
        output z to client; }";
    let auto = choices(&base.replace("VIA", ""), &Options::default());
    assert_eq!(auto, vec!["z = matmul(x, w): shares"]);
    let forced = choices(&base.replace("VIA", "via paillier"), &Options::default());
    assert_eq!(forced, vec!["z = matmul(x, w): paillier[server]"]);
    // With a dealer the triples are cheaper, but `via rlwe` still wins.
    let forced = choices(&base.replace("VIA", "via rlwe"), &Options::default());
    assert_eq!(forced, vec!["z = matmul(x, w): rlwe"]);
    let report = compile(
        &checked(&base.replace("VIA", "via rlwe")),
        &Options::default(),
    )
    .unwrap()
    .report;
    assert!(report.contains("`via rlwe`"), "{report}");
    let no_dealer = opts(|o| {
        o.use_dealer = false;
        o.correlations = Some(plan::CorrelationEngine::Paillier);
    });
    assert_eq!(
        choices(&base.replace("VIA", ""), &no_dealer),
        vec!["z = matmul(x, w): rlwe"]
    );
    assert_eq!(
        choices(&base.replace("VIA", "via paillier"), &no_dealer),
        vec!["z = matmul(x, w): paillier[server]"]
    );
    assert_eq!(
        choices(&base.replace("VIA", "via shares"), &no_dealer),
        vec!["z = matmul(x, w): shares"]
    );
    // RLWE runs products only: on anything else `via rlwe` is E0303.
    let sum = base.replace("x @ w VIA", "sum(x * x) via rlwe");
    let Err(text) = compile(&checked(&sum), &no_dealer) else {
        panic!("`sum(..) via rlwe` should not compile");
    };
    assert!(text.contains("cannot run via rlwe"), "{text}");
}

#[test]
fn compile_errors_are_rejected_with_pointed_messages() {
    let files = corpus("tests/corpus/compile_errors");
    assert!(files.len() >= 5);
    for path in files {
        let source = std::fs::read_to_string(&path).unwrap();
        let model = checked(&source);
        let Err(CompileError::Model(diags)) = compiler::compile(&model, &Options::default()) else {
            panic!("{} should not compile, with diagnostics", path.display());
        };
        assert!(diags.iter().any(|d| d.is_error()));
        // `veil check` runs the same analysis and finds the same errors.
        let analysed = compiler::analyse(&model, &Options::default()).unwrap();
        assert_eq!(
            format!("{analysed:?}"),
            format!("{diags:?}"),
            "{}",
            path.display()
        );
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        insta::assert_snapshot!(
            format!(
                "compile_error_{}",
                path.file_stem().unwrap().to_string_lossy()
            ),
            grammar::render(&diags, &name, &source)
        );
    }
}

#[test]
fn no_secret_reaches_the_plan() {
    // The plan holds the model's public constants and nothing else: no
    // numbers a party supplies at run time, no keys.
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/credit_2p.veil"),
    )
    .unwrap();
    let c = compile(&checked(&src), &opts(|o| o.use_dealer = false)).unwrap();
    for prog in &c.plan.programs {
        for ins in &prog.instrs {
            if let plan::Instr::Const { data, .. } = ins {
                assert!(
                    data.len() <= 1,
                    "only scalar model constants and coefficients: {data:?}"
                );
            }
        }
    }
    let json = c.plan.to_json();
    assert!(!json.contains("\"lambda\"") && !json.contains("\"mu\""));
}

/// Issue 14, defect 3: the runner-up's figure includes the conversions that
/// deliver the value where the plan uses it, as the choice's does. For
/// `bigmul` it used to read "runner-up paillier[a] at 1.157e0 s vs
/// 4.244e0 s": the Paillier product before it became shares.
#[test]
fn a_runner_up_is_never_cheaper_than_the_choice() {
    let bigmul = "model bigmul { party a; party b;
        input x: fixed[batch] private(a) in [-4000, 4000];
        input y: fixed[batch] private(b) in [-4000, 4000];
        let z = x * y; output z to a; }"
        .to_string();
    let sources = corpus("models")
        .into_iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .chain([bigmul]);
    let mut seen = 0;
    for source in sources {
        for o in [Options::default(), opts(|o| o.use_dealer = false)] {
            let report = compile(&checked(&source), &o).unwrap().report;
            for line in report.lines().filter(|l| l.contains("runner-up")) {
                let tail = line.split(" at ").last().unwrap();
                let (runner, chosen) = tail.trim_end_matches(" s").split_once(" s vs ").unwrap();
                let (runner, chosen): (f64, f64) =
                    (runner.parse().unwrap(), chosen.parse().unwrap());
                assert!(runner >= chosen, "{line}");
                seen += 1;
            }
        }
    }
    assert!(seen > 5, "only {seen} runner-ups");
}

#[test]
fn an_error_bound_wider_than_the_output_range_is_flagged() {
    // A probability whose bound is 944.7: W0102 among compile's warnings
    // (with the analysis's bound), and the report says so next to the
    // plan's bound, which is the range's width: the recipient clamps the
    // revealed value to [0, 1].
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/corpus/warnings/bound_high_degree.veil"),
    )
    .unwrap();
    for o in [Options::default(), opts(|o| o.use_dealer = false)] {
        let c = compile(&checked(&src), &o).unwrap();
        let codes: Vec<&str> = c.warnings.iter().map(|d| d.code.as_str()).collect();
        assert_eq!(codes, ["W0102"]);
        assert!(
            c.warnings[0].labels[0].message.contains("944.7"),
            "{:?}",
            c.warnings
        );
        assert!(
            c.report
                .contains("error bound 1 (not below its range [0, 1]: W0102)"),
            "{}",
            c.report
        );
        assert_eq!(c.plan.outputs[0].error_bound, 1.0);
    }
}

#[test]
fn an_absurd_assumed_dimension_is_no_overflow() {
    // The element count of [batch, 100] at batch = 2^64 - 1 overflows 64
    // bits: the compiler's size arithmetic saturates instead of panicking.
    let src = "model m { party a; party b; dealer d;
        input x: fixed[batch, 100] private(a) in [-1, 1];
        input w: fixed[100] private(b) in [-1, 1];
        let z = x * w; output z to a; }";
    for (dealer, size) in [(true, u64::MAX), (false, u64::MAX), (true, 1 << 62)] {
        let o = opts(|o| {
            o.use_dealer = dealer;
            o.assume.insert("batch".into(), size);
        });
        // Compiling may refuse (the ranges of a reduction grow with the
        // batch), but never panics; this model has none, so it compiles.
        let c = compile(&checked(src), &o).expect("compiles");
        assert!(!c.plan.estimate.bytes.is_nan());
        assert_eq!(c.plan.estimate.assumed_dims["batch"], size);
    }
}

/// The leakage check does not take a message's word for being masked: it
/// asks what produced it. Every corpus plan passes; a message register
/// produced by an instruction with no masking argument (here, an input
/// relabelled as a message, as a new protocol family's round would be if
/// nobody wrote its argument down) is a violation.
#[test]
fn a_message_is_masked_only_if_its_producer_says_why() {
    let src = "model m { party a; party b; dealer d;
        input x: fixed[batch] private(a) in [-1, 1];
        input w: fixed private(b) in [-1, 1];
        let z = x * w; output z to a; }";
    let mut plan = compile(&checked(src), &opts(|o| o.use_dealer = true))
        .unwrap()
        .plan;
    let clean = compiler::leak::views(&plan);
    assert!(clean.values().all(|v| v.violations.is_empty()));
    assert!(clean.values().any(|v| v.masked > 0));
    let input = plan.programs[0]
        .instrs
        .iter()
        .find_map(|i| match i {
            plan::Instr::Input { dst, .. } => Some(*dst),
            _ => None,
        })
        .unwrap();
    plan.regs[input.0 as usize].kind = plan::Kind::Message;
    let views = compiler::leak::views(&plan);
    let v = &views[&plan.programs[0].party];
    assert!(
        v.violations
            .iter()
            .any(|m| m.contains("no masking argument")),
        "{:?}",
        v.violations
    );
}
