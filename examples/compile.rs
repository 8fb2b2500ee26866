//! Compile a model with the library API and print what `veil compile`
//! prints: the report (the protocol chosen for each operation, why, and what
//! it costs; what each party sees) and the plan (each party's program).
//!
//! ```sh
//! cargo run --example compile                       # models/logreg_100.veil
//! cargo run --example compile -- models/mlp.veil    # any model file
//! ```

use std::error::Error;

/// The talk's workload, built in so the example runs from any directory.
const LOGREG: &str = include_str!("../models/logreg_100.veil");

fn main() -> Result<(), Box<dyn Error>> {
    // A flag (the test harness passes `--quiet` under `cargo test -q`) is
    // not a path.
    let (name, source) = match std::env::args().nth(1).filter(|a| !a.starts_with('-')) {
        Some(path) => {
            let source =
                std::fs::read_to_string(&path).map_err(|e| format!("cannot read `{path}`: {e}"))?;
            (path, source)
        }
        None => ("models/logreg_100.veil".to_string(), LOGREG.to_string()),
    };

    // Parse and check: every error at once, each with its place and fix.
    let checked = compiler::check_source(&source);
    let Some(model) = checked.model else {
        eprint!("{}", grammar::render(&checked.diagnostics, &name, &source));
        return Err(format!("{name} has errors").into());
    };

    // Choose a protocol per operation with the cost model, and lower the
    // choice to a plan. The options are `veil compile`'s flags.
    let mut options = compiler::Options::default();
    options.assume.insert("batch".into(), 1000);
    let compiled = match compiler::compile(&model, &options) {
        Ok(compiled) => compiled,
        Err(compiler::CompileError::Model(diagnostics)) => {
            eprint!("{}", grammar::render(&diagnostics, &name, &source));
            return Err(format!("{name} does not compile").into());
        }
        // A bug in the compiler, not in the model: it carries its cause.
        Err(e) => return Err(e.into()),
    };
    eprint!("{}", grammar::render(&compiled.warnings, &name, &source));

    println!("{}", compiled.report);
    println!("{}", compiled.plan.to_text());
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().unwrap();
    }
}
