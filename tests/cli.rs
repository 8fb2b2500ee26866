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
    assert!(
        out.stderr.is_empty(),
        "bundled models check without warnings: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
fn check_rejects_what_compile_rejects() {
    // Leaks (E0302), overflow (E0301), no approximation (E0305), an
    // impossible `via` (E0303): `veil check` used to print `ok` for these.
    let files = veil_files("tests/corpus/compile_errors");
    assert!(files.len() >= 5, "{files:?}");
    for file in files {
        let check = veil(&["check", &file]);
        let stderr = String::from_utf8_lossy(&check.stderr);
        assert_eq!(check.status.code(), Some(1), "{file}: {stderr}");
        assert!(check.stdout.is_empty(), "{file}: no `ok` line");
        assert!(stderr.contains("error[E03"), "{file}: {stderr}");
        assert!(
            stderr.contains(&format!("error: `{file}` has ")),
            "{stderr}"
        );
        // The same diagnostics as `veil compile`.
        let compile = veil(&["compile", &file]);
        assert_eq!(compile.status.code(), Some(1));
        let compile_err = String::from_utf8_lossy(&compile.stderr);
        let codes = |s: &str| -> Vec<String> {
            s.lines()
                .filter(|l| l.starts_with("error[") || l.starts_with("warning["))
                .map(String::from)
                .collect()
        };
        assert_eq!(codes(&stderr), codes(&compile_err), "{file}");
    }
}

#[test]
fn check_warns_when_an_error_bound_exceeds_the_output_range() {
    let out = veil(&["check", "tests/corpus/warnings/bound_high_degree.veil"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a warning, not an error: {stderr}");
    assert!(
        stderr.contains("warning[W0102]: the error bound of output `p` is larger than its range"),
        "{stderr}"
    );
    assert!(stderr.contains("give a lower `degree:`"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: "));
    let out = veil(&["explain", "W0102"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("W0102: "));
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

/// Issue 14, defect 6: a first row that does not name every column is data,
/// and a bad row is reported with its line and column, not dropped as a header.
#[test]
fn a_first_csv_row_is_a_header_only_when_it_names_the_columns() {
    let dir = scratch("csv-header");
    let missing = "NA,NA,NA,NA,NA,NA,NA,NA";
    let o = run_linreg(&linreg_inputs(&dir, Some(missing), &[ROW_A]), &[]);
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("features.csv`: line 1, column 1: `NA`, a missing value"),
        "{err}"
    );
    let empty = ",,,,,,,";
    let o = run_linreg(&linreg_inputs(&dir, Some(empty), &[ROW_A]), &[]);
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("line 1, column 1: an empty field"), "{err}");
    // Quoted numbers are numbers: the first row is data, so two rows come out.
    let quoted = "\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\"";
    let o = run_linreg(&linreg_inputs(&dir, Some(quoted), &[ROW_B]), &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(text.contains("buyer learns price [2]"), "{text}");
    // A real header is still skipped.
    let header = "a,b,c,d,e,f,g,h";
    let o = run_linreg(&linreg_inputs(&dir, Some(header), &[ROW_B]), &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("buyer learns price [1]"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 14, defect 7: a repeated `-i NAME=...` is refused, naming both, by
/// `veil run` and by `veil party`.
#[test]
fn a_repeated_input_is_refused_naming_both() {
    let dir = scratch("repeated");
    let mut inputs = linreg_inputs(&dir, None, &[ROW_A]);
    let other = dir.join("coef2.json");
    std::fs::write(&other, "[0, 0, 0, 0, 0, 0, 0, 0]").unwrap();
    inputs.push(format!("coef={}", other.display()));
    let o = run_linreg(&inputs, &[]);
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--input coef is given twice")
            && err.contains(&format!("coef={}", dir.join("coef.json").display()))
            && err.contains(&format!("coef={}", other.display())),
        "{err}"
    );
    assert!(o.stdout.is_empty());

    // `veil party`: refused before it connects to anyone.
    let certs = dir.join("certs");
    let made = veil(&[
        "certs",
        "--out",
        certs.to_str().unwrap(),
        "buyer",
        "appraiser",
        "helper",
    ]);
    assert!(made.status.success(), "{}", stderr_of(&made));
    let mut toml = String::new();
    for (p, port) in [("buyer", 1), ("appraiser", 2), ("helper", 3)] {
        toml.push_str(&format!(
            "[[party]]\nname = \"{p}\"\naddress = \"127.0.0.1:{port}\"\ncert = {:?}\nkey = {:?}\n\n",
            certs.join(format!("{p}.crt")),
            certs.join(format!("{p}.key"))
        ));
    }
    let config = dir.join("parties.toml");
    std::fs::write(&config, toml).unwrap();
    let x = &inputs[0];
    let o = veil(&[
        "party",
        "models/linreg.veil",
        "--as",
        "buyer",
        "--config",
        config.to_str().unwrap(),
        "--connect-timeout",
        "1",
        "-i",
        x,
        "-i",
        x,
    ]);
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "--input features is given twice, as `{x}` and as `{x}`"
        )),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 14: `--id-column` carries a CSV's ID column through to the output
/// CSVs, which have a header row.
#[test]
fn an_id_column_is_carried_to_the_output_csvs() {
    let dir = scratch("id-column");
    let header = "id,f0,f1,f2,f3,f4,f5,f6,f7";
    let rows = [format!("a-1,{ROW_A}"), format!("\"b, 2\",{ROW_B}")];
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let inputs = linreg_inputs(&dir, Some(header), &rows);
    let out = dir.join("out");
    let o = run_linreg(&inputs, &["--id-column", "id", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let csv = std::fs::read_to_string(out.join("buyer-price.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert_eq!(lines[0], "id,price");
    // price = (features @ coef + 100) * 1000: 304 and 180.5 thousand.
    let value = |line: &str| -> f64 { line.rsplit(',').next().unwrap().parse().unwrap() };
    assert!(
        lines[1].starts_with("a-1,") && (value(lines[1]) - 304_000.0).abs() < 50.0,
        "{csv}"
    );
    assert!(
        lines[2].starts_with("\"b, 2\",") && (value(lines[2]) - 180_500.0).abs() < 50.0,
        "{csv}"
    );
    // Without --id-column the ID column is an error, with the hint.
    let o = run_linreg(&inputs, &[]);
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("line 2, column 1: text, not a number; if it is an ID column, name it with --id-column NAME"),
        "{err}"
    );
    // A column the header does not have is refused.
    let o = run_linreg(&inputs, &["--id-column", "key"]);
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("line 2, column 1: text, not a number; the header has no column `key`"),
        "{err}"
    );
    // IDs that no output has the rows of: written nowhere, and said so.
    let model = dir.join("total.veil");
    std::fs::write(
        &model,
        "model total { party a; party b; dealer d;
           input x: fixed[batch] private(a) in [0, 10];
           input y: fixed private(b) in [0, 1000];
           let s = sum(x) * y;
           output s to a; }",
    )
    .unwrap();
    std::fs::write(dir.join("x.csv"), "id,v\nr1,1\nr2,2\n").unwrap();
    let o = veil(&[
        "run",
        model.to_str().unwrap(),
        "-i",
        &format!("x={}", dir.join("x.csv").display()),
        "-i",
        &inputs[2].replace("intercept=", "y="),
        "--id-column",
        "id",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(
        stderr_of(&o)
            .contains("warning: --id-column id: no output written here has one row per ID"),
        "{}",
        stderr_of(&o)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("a-s.csv")).unwrap(),
        "s\n300\n"
    );
    let numeric = linreg_inputs(&dir, Some("a,b,c,d,e,f,g,h"), &[ROW_A]);
    let o = run_linreg(&numeric, &["--id-column", "key"]);
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--id-column key: no CSV input has a column `key`"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 14: a value outside its range is named by its line and column in a
/// CSV file (counting the header), by its index in JSON; never by its value.
#[test]
fn range_errors_name_the_line_and_column() {
    let dir = scratch("positions");
    let bad = "1,2,3,4,5,6,7,10.25";
    let inputs = linreg_inputs(
        &dir,
        Some("# features\na,b,c,d,e,f,g,h"),
        &[ROW_A, ROW_B, bad],
    );
    std::fs::write(dir.join("coef.json"), "[1, 2, 3, 4, 5, 6, -77.5, 8]").unwrap();
    let o = run_linreg(&inputs, &[]);
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("input `features`: the value at line 5, column 8 of")
            && err.contains("features.csv` lies outside the declared range [0, 10]"),
        "{err}"
    );
    assert!(
        err.contains("input `coef`: the value at [6] of")
            && err.contains("coef.json` lies outside the declared range [-50, 50]"),
        "{err}"
    );
    assert!(
        !err.contains("value #") && !err.contains("10.25") && !err.contains("77.5"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 14: `-` is standard input for one input and standard output for `-o`.
#[test]
fn a_dash_reads_standard_input_and_writes_standard_output() {
    use std::io::Write as _;
    use std::process::Stdio;
    let dir = scratch("stdio");
    let inputs = linreg_inputs(&dir, None, &[ROW_A, ROW_B]);
    let run = |bindings: &[String], stdin: &str, extra: &[&str]| -> Output {
        let mut args = vec!["run".to_string(), "models/linreg.veil".to_string()];
        for b in bindings {
            args.extend(["-i".to_string(), b.clone()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_veil"))
            .args(&args)
            .current_dir(root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    // The features as CSV on standard input (sniffed), outputs as JSON on stdout.
    let piped = [
        "features=-".to_string(),
        inputs[1].clone(),
        inputs[2].clone(),
    ];
    let csv = format!("{ROW_A}\n{ROW_B}\n");
    let o = run(&piped, &csv, &["-o", "-"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)));
    let price = json["buyer"]["price"].as_array().unwrap();
    assert_eq!(price.len(), 2, "{json}");
    assert!(
        (price[0].as_f64().unwrap() - 304_000.0).abs() < 50.0,
        "{json}"
    );
    // Issue 22: CSV on standard input is read a chunk at a time, and a bad
    // line far into it is named.
    let mut rows: Vec<&str> = std::iter::repeat_n(ROW_A, 2000).collect();
    let o = run(
        &piped,
        &(rows.join("\n") + "\n"),
        &["--chunk-rows", "500", "-o", "-"],
    );
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(
        stderr_of(&o).contains("2000 rows in 4 chunks"),
        "{}",
        stderr_of(&o)
    );
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["buyer"]["price"].as_array().unwrap().len(), 2000);
    rows[1799] = "1,NA,3,4,5,6,7,8";
    let o = run(
        &piped,
        &(rows.join("\n") + "\n"),
        &["--chunk-rows", "500", "-o", "-"],
    );
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("standard input") && err.contains("line 1800, column 2"),
        "{err}"
    );
    assert!(o.stdout.is_empty(), "nothing written: {:?}", o.stdout);
    // JSON on standard input, named by --stdin-format.
    let piped = [inputs[0].clone(), "coef=-".to_string(), inputs[2].clone()];
    let o = run(
        &piped,
        "[1,2,3,4,5,6,7,8]",
        &["--stdin-format", "json", "-o", "-"],
    );
    assert!(o.status.success(), "{}", stderr_of(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["buyer"]["price"].as_array().unwrap().len(), 2);
    // Only one input can read standard input.
    let piped = [
        inputs[0].clone(),
        "coef=-".to_string(),
        "intercept=-".to_string(),
    ];
    let o = run(&piped, "[1,2,3,4,5,6,7,8]", &[]);
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "standard input can feed one input only, but `coef=-` and `intercept=-` read it"
        ),
        "{err}"
    );
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

/// Issue 14: `veil run --check` runs the reference interpreter on the same
/// file inputs and prints each output's error next to the compiler's bound
/// (it used to be available with --demo only).
#[test]
fn check_compares_file_inputs_with_the_reference() {
    let dir = scratch("check");
    let inputs = linreg_inputs(&dir, None, &[ROW_A, ROW_B]);
    let o = run_linreg(&inputs, &["--check"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr_of(&o));
    // (1*1 + ... + 8*8 + 100) * 1000 and (0.5 + 80 + 100) * 1000.
    assert!(
        out.contains("reference price at buyer: [304000.0000, 180500.0000]"),
        "{out}"
    );
    assert!(out.contains("max |private - reference| = "), "{out}");
    assert!(out.contains("(compiler's bound "), "{out}");
    let o = run_linreg(&inputs, &[]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("reference"));
    std::fs::remove_dir_all(&dir).unwrap();
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
    let (now, next) = (plan::FORMAT_VERSION, plan::FORMAT_VERSION + 1);
    assert!(text.contains(&format!("\"format\": {now},")));
    refused(
        "next.json",
        &text.replace(
            &format!("\"format\": {now},"),
            &format!("\"format\": {next},"),
        ),
        &[
            &format!(
                "error: {}: plan format {next}, but this veil runs plans of format {now}",
                path("next.json")
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

/// Issue 14, defect 10: runs too large for the machine died with SIGABRT
/// ("memory allocation failed"). Each is now refused quickly, before
/// anything large is allocated, with exit status 1 (not a signal) and an
/// error that names the estimate, the limit and how to get under it.
#[test]
fn a_run_too_large_for_memory_is_refused_before_it_starts() {
    let started = std::time::Instant::now();
    let refused = |args: &[&str]| {
        let o = veil(args);
        let err = stderr_of(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        err
    };
    // `run --demo --batch 10000000`: ~140 GiB; a fixed limit makes the
    // test the same on every machine.
    let err = refused(&[
        "run",
        "models/logreg_100.veil",
        "--demo",
        "--batch",
        "10000000",
        "--max-memory",
        "16GiB",
        // In one chunk (issue 22: by default it would run in chunks).
        "--chunk-rows",
        "10000000",
    ]);
    for want in [
        "error: this run needs an estimated ",
        " at batch = 10000000 (client ",
        "more than the limit of 16 GiB (--max-memory)",
        "help: use a smaller batch (about --chunk-rows ",
        "or raise the limit with --max-memory ",
        "nothing was run",
    ] {
        assert!(err.contains(want), "{want:?} in {err}");
    }
    // The batch it suggests fits.
    let suggested = err
        .split("about --chunk-rows ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("a suggested batch");
    assert!((100_000..10_000_000).contains(&suggested), "{err}");
    // Under the default limit (half the machine's memory): a batch no
    // machine holds.
    let err = refused(&[
        "run",
        "models/logreg_100.veil",
        "--demo",
        "--batch",
        "1099511627776",
        "--chunk-rows",
        "1099511627776",
    ]);
    assert!(
        err.contains("more than the limit of")
            && (err.contains("(half of this machine's ") || err.contains("cannot be read")),
        "{err}"
    );
    // `bench --batches 10000000000`: refused before the first measurement.
    let o = veil(&[
        "bench",
        "models/logreg_100.veil",
        "--batches",
        "1,10000000000",
    ]);
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error: mode `dealer`: this run needs an estimated ")
            && err.contains("at batch = 10000000000")
            && err.contains("about --batches ")
            && err.contains("nothing was measured"),
        "{err}"
    );
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("dealer "),
        "no measurement ran"
    );
    // `fixed[100000000, 100000000]`: too large to be a type at all.
    let dir = scratch("too-large");
    let model = dir.join("huge.veil");
    std::fs::write(
        &model,
        "model huge { party a; party b; dealer d;
           input x: fixed[100000000, 100000000] private(a) in [-1, 1];
           input w: fixed private(b) in [-1, 1];
           let z = x * w; output z to a; }",
    )
    .unwrap();
    let err = refused(&["run", model.to_str().unwrap(), "--demo"]);
    assert!(err.contains("error[E0215]"), "{err}");
    // `bench --assume`: each measurement plans for its own batch, so the
    // flag would be silently overridden; refused, naming --batches.
    let o = veil(&["bench", "models/logreg_100.veil", "--assume", "batch=5"]);
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--assume batch=5 has no effect") && err.contains("--batches 5"),
        "{err}"
    );
    // Sizes past what a batch can be are refused when parsed.
    for (flag, cmd) in [("--batch", "run"), ("--batches", "bench")] {
        let mut args = vec![cmd, "models/logreg_100.veil", flag, "18446744073709551616"];
        if cmd == "run" {
            args.push("--demo");
        }
        let o = veil(&args);
        assert_eq!(o.status.code(), Some(2), "{}", stderr_of(&o));
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "refusals are quick: {:?}",
        started.elapsed()
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `--max-memory` decides: a run over it is refused, the same run under a
/// higher one runs; with data files the hint is to split the data.
#[test]
fn max_memory_is_the_limit_a_run_is_checked_against() {
    // In one chunk (issue 22: by default it would run in chunks that fit).
    let small = [
        "--demo",
        "--batch",
        "1000",
        "--chunk-rows",
        "1000",
        "--max-memory",
        "1MiB",
    ];
    let o = veil(&[&["run", "models/logreg_100.veil"][..], &small].concat());
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("more than the limit of 1.0 MiB"), "{err}");
    let o = veil(&[
        "run",
        "models/logreg_100.veil",
        "--demo",
        "--batch",
        "1000",
        "--max-memory",
        "1GiB",
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));

    let dir = scratch("max-memory-data");
    let rows: Vec<&str> = std::iter::repeat_n(ROW_A, 2000).collect();
    let inputs = linreg_inputs(&dir, None, &rows);
    let o = run_linreg(&inputs, &["--max-memory", "2MiB", "--chunk-rows", "2000"]);
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("at batch = 2000")
            && err.contains("use a smaller batch (about --chunk-rows ")
            && err.contains("nothing was run"),
        "{err}"
    );
    // Without --chunk-rows the rows run in chunks that fit.
    let o = run_linreg(&inputs, &["--max-memory", "2MiB"]);
    let err = stderr_of(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("2000 rows in "), "{err}");
    let o = run_linreg(&inputs, &["--max-memory", "64MiB"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    for bad in ["lots", "0", "12 parsecs"] {
        let o = run_linreg(&inputs, &["--max-memory", bad]);
        let err = stderr_of(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("--max-memory"), "{err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `--prefer rlwe-masked` and `--prefer rlwe-prepared` fix the form of the
/// RLWE products whose `W` is the model owner's input: the masked one
/// (Delphi: `rlwe.mask` in the preprocessing, `rlwe.masked.open` online),
/// the cost model's choice too, or the prepared one; both run and match
/// the reference.
#[test]
fn prefer_rlwe_masked_or_prepared_fixes_the_products_form() {
    for (prefer, has, lacks) in [
        ("rlwe-masked", "rlwe.masked.open", "rlwe.prepare"),
        ("rlwe-prepared", "rlwe.prepare.respond", "rlwe.mask"),
        ("rlwe", "rlwe.masked.open", "rlwe.prepare"),
    ] {
        let o = veil(&[
            "compile",
            "models/relu_classifier.veil",
            "--no-dealer",
            "--prefer",
            prefer,
            "--emit",
            "plan",
        ]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{}", stderr_of(&o));
        assert!(
            out.contains(has) && !out.contains(lacks),
            "{prefer}:\n{out}"
        );
        let o = veil(&[
            "run",
            "models/relu_classifier.veil",
            "--demo",
            "--batch",
            "3",
            "--prefer",
            prefer,
            "--no-dealer",
        ]);
        assert!(o.status.success(), "{prefer}: {}", stderr_of(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("max error over all outputs"), "{out}");
    }
}

/// `--prefer rlwe` (issue 17): the report names RLWE for the products, and
/// a demo run of the plan matches the reference.
#[test]
fn prefer_rlwe_runs_matrix_products_on_rlwe() {
    let o = veil(&[
        "compile",
        "models/mlp.veil",
        "--no-dealer",
        "--prefer",
        "rlwe",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(out.contains("%5 = matmul(x, w1): rlwe"), "{out}");
    assert!(out.contains("%8 = matmul(h, w2): rlwe"), "{out}");
    let o = veil(&[
        "run",
        "models/linreg.veil",
        "--demo",
        "--batch",
        "3",
        "--prefer",
        "rlwe",
        "--no-dealer",
        "--key-bits",
        "2048",
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("max error over all outputs"), "{out}");
}

/// Deterministic values in `[lo, hi]` (a linear congruential generator):
/// the same data for both runs of a comparison.
fn values_in(seed: &mut u64, lo: f64, hi: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (*seed >> 11) as f64 / (1u64 << 53) as f64;
            // Three decimals, as a CSV file would have them, kept in range.
            (((lo + (hi - lo) * u) * 1000.0).round() / 1000.0).clamp(lo, hi)
        })
        .collect()
}

/// A `.npy` file (format 1.0, little-endian f8) of `shape`.
fn write_npy(path: &Path, shape: &[usize], data: &[f64]) {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut h = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
    bytes.extend_from_slice(h.as_bytes());
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// Input files for every input of `model` in `dir`, `rows` rows for the
/// `batch` dimension: the inputs with rows as CSV (or `.npy` with `npy`),
/// the others as JSON. Returns the `-i` arguments and the plan's outputs
/// with their error bounds.
fn inputs_for(
    model: &str,
    dir: &Path,
    rows: usize,
    npy: bool,
) -> (Vec<String>, Vec<(String, f64)>) {
    let o = veil(&["compile", model, "--emit", "json"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut seed = 7u64;
    let mut bindings = Vec::new();
    for input in plan["inputs"].as_array().unwrap() {
        let name = input["name"].as_str().unwrap();
        let shape: Vec<usize> = input["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| match (d.get("Known"), d.get("Symbol")) {
                (Some(n), _) => n.as_u64().unwrap() as usize,
                (_, Some(_)) => rows,
                _ => panic!("a dimension: {d}"),
            })
            .collect();
        let has_rows = input["shape"]
            .get(0)
            .is_some_and(|d| d.get("Symbol").is_some());
        let (lo, hi) = (
            input["range"][0].as_f64().unwrap(),
            input["range"][1].as_f64().unwrap(),
        );
        let n: usize = shape.iter().product();
        let data = values_in(&mut seed, lo, hi, n);
        let path = if has_rows && npy {
            let p = dir.join(format!("{name}.npy"));
            write_npy(&p, &shape, &data);
            p
        } else if has_rows {
            let width = n / rows;
            let header: Vec<String> = (0..width).map(|j| format!("c{j}")).collect();
            let mut text = header.join(",") + "\n";
            for row in data.chunks(width) {
                let cells: Vec<String> = row.iter().map(f64::to_string).collect();
                text += &(cells.join(",") + "\n");
            }
            let p = dir.join(format!("{name}.csv"));
            std::fs::write(&p, text).unwrap();
            p
        } else {
            // Nested arrays, the last dimension innermost.
            let mut value = serde_json::json!(data);
            for &d in shape.iter().skip(1).rev() {
                let flat = value.as_array().unwrap().clone();
                value = serde_json::json!(flat.chunks(d).collect::<Vec<_>>());
            }
            let value = match shape.as_slice() {
                [] => serde_json::json!(data[0]),
                _ => value,
            };
            let p = dir.join(format!("{name}.json"));
            std::fs::write(&p, value.to_string()).unwrap();
            p
        };
        bindings.push(format!("{name}={}", path.display()));
    }
    let outputs = plan["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap().to_string(),
                o["error_bound"].as_f64().unwrap(),
            )
        })
        .collect();
    (bindings, outputs)
}

/// Issue 22: every bundled model gives the same outputs whether its rows
/// run in one chunk or in several (the last one not full), each checked
/// against the reference (`--check` fails above the compiler's bound), and
/// the files written are the same but for the last bits of each value
/// (a private run's truncations are exact to one unit in the last place,
/// not bit for bit: two runs in one chunk differ as much).
#[test]
fn one_chunk_and_many_give_the_same_outputs_for_every_bundled_model() {
    for model in veil_files("models") {
        let name = Path::new(&model)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // Paillier keys are made per chunk, and the convolutional networks
        // are large: fewer rows for those models.
        let nets = ["net_a", "net_b", "net_c", "net_d", "lenet5", "mobile_dw"];
        let (rows, chunk) = if name == "credit_2p" || nets.contains(&name.as_str()) {
            (12, "5")
        } else {
            (230, "100")
        };
        let dir = scratch(&format!("chunks-{name}"));
        // Images ([batch, 1, 28, 28]) as .npy, rows read a chunk at a time.
        let npy = name == "mlp" || nets.contains(&name.as_str());
        let (bindings, outputs) = inputs_for(&model, &dir, rows, npy);
        // A model that sums over its rows cannot run in chunks, and says so.
        if name == "row_stats" {
            let mut args = vec!["run", model.as_str()];
            for b in &bindings {
                args.extend(["-i", b.as_str()]);
            }
            let out = dir.join("refused");
            args.extend(["--chunk-rows", chunk, "-o", out.to_str().unwrap()]);
            let o = veil(&args);
            assert!(!o.status.success());
            assert!(
                stderr_of(&o).contains("cannot run in chunks of rows"),
                "{}",
                stderr_of(&o)
            );
            assert!(!out.exists());
            continue;
        }
        let run = |out: &Path, chunk_rows: &str| {
            let mut args = vec!["run", model.as_str()];
            for b in &bindings {
                args.extend(["-i", b.as_str()]);
            }
            let out = out.to_str().unwrap();
            args.extend(["--check", "--chunk-rows", chunk_rows, "-o", out]);
            let o = veil(&args);
            assert!(
                o.status.success(),
                "{model} in chunks of {chunk_rows}: {}",
                stderr_of(&o)
            );
            stderr_of(&o)
        };
        let (one, many) = (dir.join("one"), dir.join("many"));
        let said = run(&one, "1000000");
        assert!(
            said.contains(&format!("{rows} rows in 1 chunk of up to {rows} rows")),
            "{said}"
        );
        let said = run(&many, chunk);
        assert!(
            said.contains(&format!("{rows} rows in 3 chunks of up to {chunk} rows")),
            "{said}"
        );
        let mut files: Vec<String> = std::fs::read_dir(&one)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut again: Vec<String> = std::fs::read_dir(&many)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        again.sort();
        assert_eq!(
            files, again,
            "{model}: the same files, and no temporary ones"
        );
        assert!(files.iter().all(|f| !f.starts_with('.')), "{files:?}");
        for f in files.iter().filter(|f| f.ends_with(".json")) {
            let read = |d: &Path| -> serde_json::Value {
                serde_json::from_str(&std::fs::read_to_string(d.join(f)).unwrap()).unwrap()
            };
            let (a, b) = (read(&one), read(&many));
            let (a, b) = (a.as_object().unwrap(), b.as_object().unwrap());
            assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
            for (output, va) in a {
                let bound = outputs.iter().find(|(n, _)| n == output).unwrap().1;
                let flat = |v: &serde_json::Value| -> Vec<f64> {
                    let mut out = Vec::new();
                    let mut stack = vec![v.clone()];
                    while let Some(v) = stack.pop() {
                        match v {
                            serde_json::Value::Array(xs) => stack.extend(xs.into_iter().rev()),
                            x => out.push(x.as_f64().unwrap()),
                        }
                    }
                    out
                };
                let (xa, xb) = (flat(va), flat(&b[output]));
                assert_eq!(xa.len(), xb.len(), "{model} {output}");
                assert_eq!(va.as_array().unwrap().len(), rows, "{model} {output}");
                for (x, y) in xa.iter().zip(&xb) {
                    // Each within the bound of the reference, so within twice it of each other.
                    assert!(
                        (x - y).abs() <= 2.0 * bound,
                        "{model} {output}: {x} vs {y} (bound {bound})"
                    );
                }
            }
        }
        for f in files.iter().filter(|f| f.ends_with(".csv")) {
            let a = std::fs::read_to_string(one.join(f)).unwrap();
            let b = std::fs::read_to_string(many.join(f)).unwrap();
            assert_eq!(
                a.lines().next(),
                b.lines().next(),
                "{model} {f}: one header"
            );
            assert_eq!(a.lines().count(), rows + 1, "{model} {f}");
            assert_eq!(b.lines().count(), rows + 1, "{model} {f}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// Issue 22: a bad row far into a file read in chunks stops the run after
/// earlier chunks ran, names the file, line and column, and leaves no file
/// behind (neither outputs nor staging files), whether the row does not
/// parse or lies outside the input's range.
#[test]
fn a_bad_row_late_in_a_stream_writes_nothing_and_names_the_row() {
    let dir = scratch("late-bad-row");
    let out = dir.join("out");
    for (bad, expected) in [
        (
            "1,NA,3,4,5,6,7,8",
            "line 1801, column 2: `NA`, a missing value",
        ),
        ("1,2,3,4,5,6,7,80", "the value at line 1801, column 8 of"),
    ] {
        let mut rows: Vec<&str> = std::iter::repeat_n(ROW_A, 2000).collect();
        rows[1799] = bad;
        let inputs = linreg_inputs(&dir, Some("a,b,c,d,e,f,g,h"), &rows);
        let o = run_linreg(
            &inputs,
            &["--chunk-rows", "500", "-o", out.to_str().unwrap()],
        );
        let err = stderr_of(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains(expected) && err.contains("features.csv"),
            "{err}"
        );
        assert!(err.contains("no output was written"), "{err}");
        let left: Vec<_> = std::fs::read_dir(&out)
            .map(|d| d.collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{left:?}");
    }
    // The same file without the bad row runs, in four chunks.
    let rows: Vec<&str> = std::iter::repeat_n(ROW_A, 2000).collect();
    let inputs = linreg_inputs(&dir, Some("a,b,c,d,e,f,g,h"), &rows);
    let o = run_linreg(
        &inputs,
        &["--chunk-rows", "500", "-o", out.to_str().unwrap()],
    );
    let err = stderr_of(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("2000 rows in 4 chunks"), "{err}");
    let csv = std::fs::read_to_string(out.join("buyer-price.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2001);
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 22: `--chunk-rows` on a model whose rows are not independent (a
/// sum along `batch`) is refused, saying why; without the flag it runs in
/// one piece as before.
#[test]
fn a_model_that_combines_rows_does_not_run_in_chunks() {
    let dir = scratch("combines-rows");
    let model = dir.join("total.veil");
    std::fs::write(
        &model,
        "model total { party a; party b; dealer d;
           input x: fixed[batch] private(a) in [-1, 1];
           input w: fixed private(b) in [-1, 1];
           let z = sum(x * w); output z to a; }",
    )
    .unwrap();
    let m = model.to_str().unwrap();
    let o = veil(&["run", m, "--demo", "--batch", "50", "--chunk-rows", "10"]);
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--chunk-rows: total cannot run in chunks of rows: `batch` is limited"),
        "{err}"
    );
    let o = veil(&["run", m, "--demo", "--batch", "50"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 16: without a dealer the report says how the parties make their
/// correlations and why; `--correlations` decides instead of the cost
/// model, and with the model's dealer it is said to have no effect.
#[test]
fn correlations_flag_chooses_the_engine_without_a_dealer() {
    let o = veil(&["compile", "models/relu_classifier.veil", "--no-dealer"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("no dealer (correlations by OT)"), "{out}");
    assert!(
        out.contains("correlations without a dealer: by OT, cheapest by the cost model"),
        "{out}"
    );
    let o = veil(&[
        "compile",
        "models/relu_classifier.veil",
        "--no-dealer",
        "--correlations",
        "paillier",
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("no dealer (correlations by Paillier)"),
        "{out}"
    );
    assert!(out.contains("keys: 1"), "{out}");
    assert!(
        !out.contains("cheapest by the cost model (estimate"),
        "{out}"
    );
    let o = veil(&[
        "compile",
        "models/relu_classifier.veil",
        "--correlations",
        "ot",
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(
        stderr_of(&o).contains("--correlations ot has no effect: the model's dealer supplies"),
        "{}",
        stderr_of(&o)
    );
}

/// `in "FILE"` names per-column ranges in a .csv or .npy file of shape
/// [k, 2] next to the model: `veil check`, `compile` and `run` read it;
/// a file that cannot be read, or of another shape or count, is E0208 at
/// the file's name in the model; data outside a column's range is refused
/// at its place.
#[test]
fn per_column_ranges_are_read_from_a_file_next_to_the_model() {
    let dir = scratch("column-ranges");
    let model = |file: &str| {
        format!(
            "model m {{ party a; party b; dealer d;
               input x: fixed[batch, 3] private(a) in \"{file}\";
               input w: fixed[3] private(b) in [-1, 1];
               let z = x @ w; output z to a; }}"
        )
    };
    std::fs::write(dir.join("m.veil"), model("r.csv")).unwrap();
    std::fs::write(dir.join("r.csv"), "0,255\n-1,1\n-2,2\n").unwrap();
    let ranges = plan::Tensor::new(vec![3, 2], vec![0.0, 255.0, -1.0, 1.0, -2.0, 2.0]).unwrap();
    std::fs::write(dir.join("n.veil"), model("sub/r.npy")).unwrap();
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/r.npy"), plan::npy::to_npy(&ranges)).unwrap();
    let m = dir.join("m.veil").display().to_string();
    let n = dir.join("n.veil").display().to_string();
    let out = veil(&["check", &m, &n]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in [&m, &n] {
        let out = veil(&["compile", file, "--emit", "plan"]);
        let plan = String::from_utf8_lossy(&out.stdout);
        assert!(
            plan.contains("x: [batch, 3] private(a) in [[0, 255], [-1, 1], [-2, 2]]"),
            "{plan}"
        );
    }

    // Refused: another shape, another count, a missing file.
    std::fs::write(dir.join("r.csv"), "0,255,1\n-1,1,1\n").unwrap();
    let out = veil(&["check", &m]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("error[E0208]: cannot read the column ranges in `r.csv`"),
        "{err}"
    );
    assert!(err.contains("expected [k, 2]"), "{err}");
    std::fs::write(dir.join("r.csv"), "0,255\n-1,1\n").unwrap();
    let err = String::from_utf8_lossy(&veil(&["check", &m]).stderr).to_string();
    assert!(
        err.contains("2 column ranges for an input of 3 columns"),
        "{err}"
    );
    std::fs::write(dir.join("r.csv"), "0,255\n1,-1\n-2,2\n").unwrap();
    let err = String::from_utf8_lossy(&veil(&["check", &m]).stderr).to_string();
    assert!(
        err.contains("empty range [1, -1] for row 2 of `r.csv`"),
        "{err}"
    );
    std::fs::remove_file(dir.join("sub/r.npy")).unwrap();
    let err = String::from_utf8_lossy(&veil(&["check", &n]).stderr).to_string();
    assert!(
        err.contains("cannot read the column ranges in `sub/r.npy`"),
        "{err}"
    );

    // A value inside the widest column's range but outside its own.
    std::fs::write(dir.join("r.csv"), "0,255\n-1,1\n-2,2\n").unwrap();
    std::fs::write(dir.join("x.csv"), "10,0.5,1\n3,17.25,0\n").unwrap();
    std::fs::write(dir.join("w.csv"), "0.5,0.5,-0.5\n").unwrap();
    let (x, w) = (dir.join("x.csv"), dir.join("w.csv"));
    let (x, w) = (format!("x={}", x.display()), format!("w={}", w.display()));
    let out = veil(&["run", &m, "-i", &x, "-i", &w]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("line 2, column 2") && err.contains("[-1, 1] of its column (2 of 3)"),
        "{err}"
    );
    assert!(!err.contains("17.25"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
