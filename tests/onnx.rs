//! ONNX import end to end: every fixture in tests/onnx/fixtures (made by
//! tests/onnx/make_fixtures.py with onnxruntime's outputs beside it) goes
//! through `veil import` and `veil run`, with and without a dealer, and the
//! private outputs are compared with onnxruntime's: labels equal (or a
//! near-tie of onnxruntime's own probabilities), probabilities within 5e-3,
//! other outputs within the compiler's error bound.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Fixture folder and the name of its data input.
const FIXTURES: &[(&str, &str)] = &[
    ("sk_logreg_binary", "X"),
    ("sk_logreg_multiclass", "X"),
    ("sk_linear_regression", "X"),
    ("sk_scaler_logreg", "X"),
    ("sk_mlp_classifier", "X"),
    ("sk_mlp_labels", "X"),
    ("sk_logreg_labels", "X"),
    ("torch_mlp", "input_1"),
    ("torch_mlp_external", "input_1"),
    ("opset6", "input_1"),
    ("torch_lenet5", "input_1"),
    ("torch_resnet_tiny", "input_1"),
    ("deep_mlp", "input_1"),
    ("torch_log_softmax", "input_1"),
    ("torch_dilated_pool", "input_1"),
    ("torch_ceil_pool", "input_1"),
    ("torch_log_sqrt_reciprocal", "input_1"),
];

fn veil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(args)
        .output()
        .expect("run veil")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/onnx/fixtures")
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("veil-onnx-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A float64 little-endian C-order .npy file (what make_fixtures.py writes).
fn npy(path: &Path) -> (Vec<usize>, Vec<f64>) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let t = plan::npy::parse_npy(&b).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (t.shape, t.data)
}

fn flatten(v: &serde_json::Value, out: &mut Vec<f64>) {
    match v {
        serde_json::Value::Array(a) => a.iter().for_each(|x| flatten(x, out)),
        serde_json::Value::Number(n) => out.push(n.as_f64().unwrap()),
        other => panic!("unexpected {other}"),
    }
}

fn check(name: &str, input: &str, dealer: bool) {
    let src = fixtures().join(name);
    let dir = scratch(&format!("{name}-{dealer}"));
    let model = src.join("model.onnx");
    let calib = format!("{input}={}", src.join("calib.npy").display());
    let mut args = vec![
        "import",
        model.to_str().unwrap(),
        "-o",
        dir.to_str().unwrap(),
        "--calibrate",
        &calib,
    ];
    if !dealer {
        args.push("--no-dealer");
    }
    let out = veil(&args);
    assert!(
        out.status.success(),
        "{name}: import failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("veil run ") && stdout.contains("veil party "),
        "{name}: no commands printed:\n{stdout}"
    );
    let veil_file = dir.join("model.veil");
    let x = format!("{input}={}", src.join("x.npy").display());
    let outdir = dir.join("out");
    let out = veil(&[
        "run",
        veil_file.to_str().unwrap(),
        "--inputs",
        dir.to_str().unwrap(),
        "-i",
        &x,
        "-o",
        outdir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{name}: run failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The compiler's error bounds, from the plan.
    let plan = veil(&["compile", veil_file.to_str().unwrap(), "--emit", "json"]);
    assert!(plan.status.success(), "{name}: compile failed");
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).expect("plan JSON");
    let bound = |o: &str| -> f64 {
        plan["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == o)
            .expect("output in plan")["error_bound"]
            .as_f64()
            .unwrap()
    };
    let got: serde_json::Value =
        serde_json::from_slice(&std::fs::read(outdir.join("client.json")).expect("client.json"))
            .unwrap();
    let mut compared = 0;
    let expected_probs = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("expected_prob")
        })
        .map(|p| npy(&p));
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_stem().unwrap().to_string_lossy().to_string();
        let Some(onnx_name) = file.strip_prefix("expected_") else {
            continue;
        };
        let (_, want) = npy(&path);
        let mut have = Vec::new();
        flatten(&got[onnx_name], &mut have);
        assert_eq!(
            have.len(),
            want.len(),
            "{name}: output {onnx_name} has {} values, onnxruntime {}",
            have.len(),
            want.len()
        );
        if onnx_name == "label" {
            let (dims, p) = expected_probs
                .clone()
                .expect("a label comes with probabilities");
            let k = dims[1];
            // Labels are the classes (`classes.npy`, scikit-learn's classes_).
            let classes = src.join("classes.npy");
            let classes = if classes.exists() {
                npy(&classes).1
            } else {
                (0..k).map(|i| i as f64).collect()
            };
            let index = |label: f64| {
                let i = classes.iter().position(|c| *c == label);
                i.unwrap_or_else(|| panic!("{name}: {label} is not a class"))
            };
            for (row, (h, w)) in have.iter().zip(&want).enumerate() {
                let (h, w) = (index(*h), index(*w));
                let r = &p[row * k..(row + 1) * k];
                assert!(
                    h == w || r[h] >= r[w] - 1e-2,
                    "{name}: row {row}: label {h}, onnxruntime {w} (probabilities {r:?})"
                );
            }
        } else {
            let tol = if onnx_name.starts_with("prob") {
                5e-3
            } else {
                bound(onnx_name) + 1e-4
            };
            let worst = have
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(
                worst <= tol,
                "{name}: output {onnx_name} differs from onnxruntime by {worst} > {tol}"
            );
            if onnx_name == "logits" {
                // The class each row's logits pick is onnxruntime's (a
                // near-tie within 1e-3 either way), whatever the bound.
                let k = *npy(&path).0.last().unwrap();
                for (row, (h, w)) in have.chunks(k).zip(want.chunks(k)).enumerate() {
                    let top = |r: &[f64]| (0..k).fold(0, |b, j| if r[j] > r[b] { j } else { b });
                    let (i, j) = (top(h), top(w));
                    assert!(
                        i == j || w[i] >= w[j] - 1e-3,
                        "{name}: row {row}: class {i}, onnxruntime {j}"
                    );
                }
                assert!(
                    worst < 1e-2,
                    "{name}: logits differ from onnxruntime by {worst}"
                );
            }
        }
        compared += 1;
    }
    assert!(compared > 0, "{name}: no expected outputs");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fixtures_match_onnxruntime_with_a_dealer() {
    for (name, input) in FIXTURES {
        check(name, input, true);
    }
}

#[test]
fn fixtures_match_onnxruntime_without_a_dealer() {
    for (name, input) in FIXTURES {
        check(name, input, false);
    }
}

#[test]
fn an_unsupported_op_is_named_with_its_node_and_the_supported_list() {
    // A model with an op Veil does not translate (Sin), written by hand:
    // ModelProto { ir_version 8, opset 17, graph { node Sin x -> y, input x [?, 3], output y } }.
    let dir = scratch("unsupported");
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("sin.onnx");
    std::fs::write(&model, sin_model()).unwrap();
    let out = veil(&[
        "import",
        model.to_str().unwrap(),
        "-o",
        dir.join("out").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Sin (opset 17) is not supported"), "{err}");
    assert!(err.contains("node `the_sine`"), "{err}");
    assert!(err.contains("supported ops: Add, ArgMax"), "{err}");
    assert!(
        !dir.join("out").join("model.veil").exists(),
        "nothing is written on failure"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The protobuf bytes of a one-node model `y = Sin(x)`, encoded by hand.
fn sin_model() -> Vec<u8> {
    fn leb128(mut n: u64, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn field(tag: u32, bytes: &[u8]) -> Vec<u8> {
        let mut v = vec![(tag << 3 | 2) as u8];
        leb128(bytes.len() as u64, &mut v);
        v.extend_from_slice(bytes);
        v
    }
    fn varint(tag: u32, x: u64) -> Vec<u8> {
        let mut v = vec![(tag << 3) as u8];
        leb128(x, &mut v);
        v
    }
    let node = [
        field(1, b"x"),
        field(2, b"y"),
        field(3, b"the_sine"),
        field(4, b"Sin"),
    ]
    .concat();
    let dim = |d: &[u8]| field(1, d);
    let shape = [dim(&field(2, b"N")), dim(&varint(1, 3))].concat();
    let tensor_type = [varint(1, 1), field(2, &shape)].concat();
    let ty = field(1, &tensor_type);
    let vi = |name: &[u8]| [field(1, name), field(2, &ty)].concat();
    let graph = [
        field(1, &node),
        field(2, b"g"),
        field(11, &vi(b"x")),
        field(12, &vi(b"y")),
    ]
    .concat();
    let opset = [field(1, b""), varint(2, 17)].concat();
    [varint(1, 8), field(7, &graph), field(8, &opset)].concat()
}
