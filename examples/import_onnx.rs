//! Import a trained ONNX model with the library API (`onnx::import`, what
//! `veil import` does without the files), bind the weights it returns, and
//! run it privately in this process on the fixture's test rows: the labels
//! match scikit-learn's `predict` as onnxruntime computed it.
//!
//! ```sh
//! cargo run --release --example import_onnx
//! ```

use std::collections::BTreeMap;
use std::error::Error;

/// A scikit-learn MLPClassifier on the digits, exported with skl2onnx
/// (tests/onnx/fixtures, made by tests/onnx/make_fixtures.py).
const MODEL: &[u8] = include_bytes!("../tests/onnx/fixtures/sk_mlp_classifier/model.onnx");
const CALIB: &[u8] = include_bytes!("../tests/onnx/fixtures/sk_mlp_classifier/calib.npy");
const ROWS: &[u8] = include_bytes!("../tests/onnx/fixtures/sk_mlp_classifier/x.npy");
const LABELS: &[u8] = include_bytes!("../tests/onnx/fixtures/sk_mlp_classifier/expected_label.npy");

fn main() -> Result<(), Box<dyn Error>> {
    let calibration = BTreeMap::from([("X".to_string(), plan::npy::parse_npy(CALIB)?)]);
    let options = onnx::Options {
        calibration,
        ..onnx::Options::default()
    };
    // No external data files: a reader that refuses.
    let imported = onnx::import(MODEL, &mut |_| Err("no external data".into()), &options)?;
    println!("{}", imported.source);

    let model = compiler::check_source(&imported.source)
        .model
        .ok_or("an imported model checks")?;
    let rows = plan::npy::parse_npy(ROWS)?;
    let mut compile = compiler::Options::default();
    compile.assume.insert("batch".into(), rows.shape[0] as u64);
    let plan = compiler::compile(&model, &compile)?.plan;

    // The model owner's weights and the data owner's rows, by input name.
    let mut inputs: BTreeMap<String, plan::Tensor> = imported.weights.into_iter().collect();
    inputs.insert("X".into(), rows);
    let valid = plan::validate(&plan).map_err(|e| format!("invalid plan: {e:?}"))?;
    let outcomes = runtime::exec::run_in_process(
        &valid,
        &runtime::exec::inputs_per_party(&plan, &inputs),
        &runtime::exec::Options::default(),
    )?;
    let client = plan
        .parties
        .iter()
        .position(|p| p.name == "client")
        .ok_or("a client")?;
    let (_, labels) = outcomes[client]
        .outputs
        .iter()
        .find(|(n, _)| n == "label")
        .ok_or("the client learns the labels")?;
    let expected = plan::npy::parse_npy(LABELS)?;
    let same = labels
        .data
        .iter()
        .zip(&expected.data)
        .filter(|(a, b)| a == b)
        .count();
    println!(
        "labels equal to scikit-learn's: {same} of {}",
        expected.data.len()
    );
    if same != expected.data.len() {
        return Err("a label differs from scikit-learn's".into());
    }
    Ok(())
}

/// A float64 .npy file (what the fixtures are).
#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().unwrap();
    }
}
