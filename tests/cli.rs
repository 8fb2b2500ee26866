//! End-to-end tests of the `veil` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn veil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run veil")
}

fn veil_files(dir: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "veil"))
        .map(|p| format!("{dir}/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    files.sort();
    files
}

#[test]
fn check_accepts_every_bundled_model() {
    let files = veil_files("models");
    let args: Vec<&str> = std::iter::once("check")
        .chain(files.iter().map(String::as_str))
        .collect();
    let out = veil(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok: ")).count(),
        files.len()
    );
    assert!(stdout
        .contains("model logreg_100: parties client, server + dealer helper; 3 inputs, 1 output"));
}

#[test]
fn check_rejects_every_error_corpus_file_with_a_code() {
    for file in veil_files("tests/corpus/errors") {
        let out = veil(&["check", &file]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file}: {stderr}");
        assert!(stderr.contains("error[E0"), "{file}: {stderr}");
        assert!(
            stderr.contains(&file),
            "{file}: the message names the file: {stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "{file}: nothing on stdout for a failed check"
        );
    }
}

#[test]
fn check_with_some_bad_files_fails_but_reports_all() {
    let out = veil(&[
        "check",
        "models/linreg.veil",
        "tests/corpus/errors/unknown_name.veil",
        "missing.veil",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("ok: models/linreg.veil"));
    assert!(stderr.contains("did you mean `weights`?"));
    assert!(stderr.contains("cannot read `missing.veil`"), "{stderr}");
    assert!(stderr.contains("2 of 3 files failed"), "{stderr}");
}

#[test]
fn non_utf8_file_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("veil-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.veil");
    std::fs::write(&path, b"model m { \xff }").unwrap();
    let out = veil(&["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not UTF-8"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_teaches_with_examples() {
    let out = veil(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("check") && text.contains("Examples:"),
        "{text}"
    );
    let out = veil(&["check", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("veil check models/logreg_100.veil"), "{text}");
}

#[test]
fn explain_prints_the_long_form() {
    let out = veil(&["explain", "e0202"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("E0202: "));
    let out = veil(&["explain", "E9999"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn bench_runs_in_memory_and_over_loopback_tls_with_the_same_traffic() {
    let dir = std::env::temp_dir().join(format!("veil-cli-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("rows.jsonl");
    let out = veil(&[
        "bench",
        "models/logreg_100.veil",
        "--modes",
        "dealer",
        "--batches",
        // 700 rows: the dealer streams party 1's corrections in several
        // frames, over TLS too.
        "3,700",
        "--repeat",
        "1",
        "--transport",
        "memory,tcp",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&json).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4, "{text}");
    for r in &rows {
        // The degree-7 fit's bound (0.019) plus fixed-point rounding.
        assert!(r["max_err"].as_f64().unwrap() < 0.02, "{r}");
        assert!(r["preds_per_s"].as_f64().unwrap() > 0.0, "{r}");
    }
    for pair in rows.chunks(2) {
        assert_eq!(pair[0]["transport"], "memory");
        assert_eq!(pair[1]["transport"], "tcp");
        assert_eq!(pair[0]["batch"], pair[1]["batch"]);
        // Same plan, same frames: the transport changes nothing the parties send.
        assert_eq!(pair[0]["bytes_per_pred"], pair[1]["bytes_per_pred"]);
        assert_eq!(pair[0]["rounds"], pair[1]["rounds"]);
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 14: `veil compile --emit json` promised "what veil run and veil
/// party execute", but neither accepted it. `veil run --plan FILE` runs it
/// (the same result as the model file), and refuses another format version,
/// malformed JSON (with line and column), a tampered plan, and compile flags.
#[test]
fn run_executes_a_plan_file_and_refuses_a_bad_one() {
    let dir = std::env::temp_dir().join(format!("veil-cli-{}-plan", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = |f: &str| dir.join(f).display().to_string();
    std::fs::write(dir.join("f.csv"), "1,2,3,4,5,6,7,8\n0,0,0,0,0,0,0,1\n").unwrap();
    std::fs::write(dir.join("c.json"), "[1, 2, 3, 4, 5, 6, 7, 8]").unwrap();
    std::fs::write(dir.join("i.json"), "10").unwrap();
    let inputs = [
        "-i".to_string(),
        format!("features={}", path("f.csv")),
        "-i".to_string(),
        format!("coef={}", path("c.json")),
        "-i".to_string(),
        format!("intercept={}", path("i.json")),
    ];
    let plan = path("linreg.json");
    let o = veil(&[
        "compile",
        "models/linreg.veil",
        "--emit",
        "json",
        "-o",
        &plan,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run = |target: &[&str]| {
        let args: Vec<&str> = ["run"]
            .iter()
            .copied()
            .chain(target.iter().copied())
            .chain(inputs.iter().map(String::as_str))
            .collect();
        veil(&args)
    };
    let from_model = run(&["models/linreg.veil"]);
    let from_plan = run(&["--plan", &plan]);
    assert!(
        from_plan.status.success(),
        "{}",
        String::from_utf8_lossy(&from_plan.stderr)
    );
    let stdout = String::from_utf8_lossy(&from_plan.stdout);
    assert_eq!(
        stdout,
        "buyer learns price [2]: [214000.0000, 18000.0000]\n"
    );
    assert_eq!(from_plan.stdout, from_model.stdout);

    let text = std::fs::read_to_string(&plan).unwrap();
    let refused = |name: &str, contents: &str, want: &[&str]| {
        std::fs::write(dir.join(name), contents).unwrap();
        let o = run(&["--plan", &path(name)]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{name}: {stderr}");
        for w in want {
            assert!(stderr.contains(w), "{name}: wants {w:?}: {stderr}");
        }
        assert!(o.stdout.is_empty(), "{name}: nothing runs");
    };
    assert!(text.contains("\"format\": 1,"));
    refused(
        "v2.json",
        &text.replace("\"format\": 1,", "\"format\": 2,"),
        &[
            &format!(
                "error: {}: plan format 2, but this veil runs plans of format 1",
                path("v2.json")
            ),
            "veil compile MODEL --emit json",
        ],
    );
    let cut: String = text.lines().take(6).collect::<Vec<_>>().join("\n");
    refused(
        "cut.json",
        &cut,
        &[
            &format!("error: {}:6:", path("cut.json")),
            "EOF while parsing",
        ],
    );
    let mut tampered: serde_json::Value = serde_json::from_str(&text).unwrap();
    tampered["outputs"][0]["to"] = serde_json::json!([1]);
    refused(
        "tampered.json",
        &serde_json::to_string_pretty(&tampered).unwrap(),
        &[
            "the plan is inconsistent",
            "learns output `price` not addressed to it",
            "appraiser: never learns its output `price`",
        ],
    );
    refused(
        "model.json",
        "{\"model\": \"linreg\"}",
        &["not a Veil plan: it has no `format` field"],
    );
    // A plan was compiled already: compile flags and a model file are refused.
    for extra in [
        &["--no-dealer"][..],
        &["--network", "wan"],
        &["models/linreg.veil"],
    ] {
        let mut args = vec!["run", "--plan", plan.as_str()];
        args.extend_from_slice(extra);
        let o = veil(&args);
        assert_eq!(o.status.code(), Some(2), "{extra:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("cannot be used with"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
