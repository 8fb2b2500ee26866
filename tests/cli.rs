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

/// A scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("veil-cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Inputs for models/linreg.veil in `dir`: `features.csv` (rows of 8
/// values in [0, 10], `header` as its first line if given), `coef.json`
/// and `intercept.json`. Returns the `-i` arguments.
fn linreg_inputs(dir: &Path, header: Option<&str>, rows: &[&str]) -> Vec<String> {
    let mut csv = header.map(|h| format!("{h}\n")).unwrap_or_default();
    for r in rows {
        csv.push_str(r);
        csv.push('\n');
    }
    std::fs::write(dir.join("features.csv"), csv).unwrap();
    std::fs::write(dir.join("coef.json"), "[1, 2, 3, 4, 5, 6, 7, 8]").unwrap();
    std::fs::write(dir.join("intercept.json"), "100").unwrap();
    [
        "features=features.csv",
        "coef=coef.json",
        "intercept=intercept.json",
    ]
    .iter()
    .map(|b| {
        let (n, f) = b.split_once('=').unwrap();
        format!("{n}={}", dir.join(f).display())
    })
    .collect()
}

/// `veil run models/linreg.veil` with `-i` for each binding, then `extra`.
fn run_linreg(bindings: &[String], extra: &[&str]) -> Output {
    let mut args = vec!["run", "models/linreg.veil"];
    for b in bindings {
        args.extend(["-i", b.as_str()]);
    }
    args.extend(extra);
    veil(&args)
}

fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const ROW_A: &str = "1,2,3,4,5,6,7,8";
const ROW_B: &str = "0.5,0,0,0,0,0,0,10";

/// Issue 14, defect 5: a failed run leaves every earlier output file as it
/// was, and no new or temporary file.
#[test]
fn outputs_are_all_or_nothing() {
    let dir = scratch("all-or-nothing");
    let inputs = linreg_inputs(&dir, None, &[ROW_A, ROW_B]);
    let out = dir.join("out");
    std::fs::create_dir_all(out.join("buyer.json")).unwrap(); // squats on an output's name
    std::fs::write(out.join("buyer-price.csv"), "an earlier run's file\n").unwrap();
    let o = run_linreg(&inputs, &["-o", out.to_str().unwrap()]);
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("buyer-price.csv")).unwrap(),
        "an earlier run's file\n",
        "{err}"
    );
    assert!(
        err.contains("buyer.json") && err.contains("is a directory"),
        "{err}"
    );
    let mut left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["buyer-price.csv", "buyer.json"],
        "no temporaries left"
    );
    // Once the directory is gone, the run writes both files.
    std::fs::remove_dir(out.join("buyer.json")).unwrap();
    let o = run_linreg(&inputs, &["-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(out.join("buyer.json").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 14: `--color` colours diagnostics; plain into a pipe by default.
#[test]
fn diagnostics_are_coloured_when_asked() {
    let file = "tests/corpus/errors/unknown_name.veil";
    let o = veil(&["check", file]);
    assert!(!stderr_of(&o).contains('\x1b'), "plain into a pipe");
    for args in [
        ["--color", "always", "check", file],
        ["check", "--color", "always", file],
    ] {
        let o = veil(&args);
        let err = stderr_of(&o);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            err.contains("\x1b[") && err.contains("E0101"),
            "{args:?}: {err}"
        );
    }
    // The flag wins over NO_COLOR; `never` is plain.
    let o = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["compile", "--color", "always", file])
        .env("NO_COLOR", "1")
        .current_dir(root())
        .output()
        .unwrap();
    assert!(stderr_of(&o).contains("\x1b["));
    let o = veil(&["check", "--color", "never", file]);
    assert!(!stderr_of(&o).contains('\x1b'));
}
