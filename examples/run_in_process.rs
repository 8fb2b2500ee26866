//! Run a model privately in this process with the library API (every party
//! on its own thread, talking over in-process channels), on generated
//! inputs, and compare the private result with the plaintext reference
//! interpreter, as `veil run --demo` does.
//!
//! ```sh
//! cargo run --release --example run_in_process
//! ```

use std::error::Error;

const LOGREG: &str = include_str!("../models/logreg_100.veil");

fn main() -> Result<(), Box<dyn Error>> {
    let batch = 200;
    let model = compiler::check_source(LOGREG)
        .model
        .ok_or("the bundled model checks")?;
    // Compile for the batch size the run has: the error bounds and the
    // estimates depend on it.
    let mut options = compiler::Options::default();
    options.assume.insert("batch".into(), batch as u64);
    let plan = compiler::compile(&model, &options)?.plan;

    // Inputs of the declared shapes, uniform in the declared ranges. Real
    // data would come as `plan::Tensor`s by input name instead.
    let inputs = runtime::exec::random_inputs(&plan, batch, &mut rand::rng())?;

    // What the run will hold, before it holds it.
    // The runtime borrows its inputs (`plan::TensorRef`): `plan::views`
    // lends a map of owned tensors without a copy.
    let dims =
        plan::infer_dims(&plan, None, &plan::views(&inputs)).map_err(|e| format!("{e:?}"))?;
    let memory = runtime::exec::memory::estimate(&plan, &dims, None)?;
    println!(
        "estimated memory: {} for the parties",
        runtime::exec::memory::bytes_text(memory.parties_total())
    );

    // Each party gets only its own inputs (and the public ones), borrowed.
    let per_party = runtime::exec::inputs_per_party(&plan, &inputs);
    // The executor runs only a validated plan: `plan::validate` is the one
    // way to get the `ValidPlan` it takes.
    let valid = plan::validate(&plan).map_err(|e| format!("invalid plan: {e:?}"))?;
    let outcomes =
        runtime::exec::run_in_process(&valid, &per_party, &runtime::exec::Options::default())?;

    // The same model in plain f64, and the compiler's error bound per output.
    let reference = compiler::reference::expected(&model, &inputs)?;
    for (p, outcome) in outcomes.iter().enumerate() {
        for (name, private) in &outcome.outputs {
            let exact = reference
                .iter()
                .find(|r| &r.name == name)
                .ok_or("the reference has every output")?;
            let spec = plan
                .outputs
                .iter()
                .find(|o| &o.name == name)
                .ok_or("the plan has every output")?;
            // |private - exact| per value (an argmax index within its
            // near-tie slack of the maximum counts as exact).
            let error = compiler::reference::deviations(spec, private, exact)
                .ok_or("the private output has the reference's shape")?
                .into_iter()
                .fold(0.0, f64::max);
            println!(
                "{} learns {name} ({} values): max |private - reference| = {error:.3e}, bound {:.3e}; sent {} B in {} rounds",
                plan.party_name(p as u32),
                private.data.len(),
                spec.error_bound,
                outcome.stats.bytes_sent,
                outcome.stats.rounds,
            );
            if error > spec.error_bound || error.is_nan() {
                return Err(format!("{name} is off by more than the compiler's bound").into());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().unwrap();
    }
}
