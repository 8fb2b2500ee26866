//! `veil run`: compile a model and run every party in this process.

use crate::compile_cmd::{compile_file_with, TargetArgs};
use crate::data;
use clap::Args;
use plan::{Plan, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The model file (or --plan FILE).
    #[arg(value_name = "FILE", required_unless_present = "plan")]
    pub file: Option<PathBuf>,
    /// Run a plan written by `veil compile --emit json` instead of compiling
    /// a model file (its format version and consistency are checked).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["file", "demo"])]
    #[arg(conflicts_with_all = crate::plan_file::COMPILE_FLAGS)]
    pub plan: Option<PathBuf>,
    /// Bind an input to a data file: NAME=PATH (.csv, .json or .npy). Repeat per input.
    #[arg(long = "input", short = 'i', value_name = "NAME=PATH", value_parser = parse_binding)]
    pub inputs: Vec<(String, PathBuf)>,
    /// Generate random inputs of the declared shapes and ranges, and compare the
    /// private result with the plaintext reference.
    #[arg(long, conflicts_with = "inputs")]
    pub demo: bool,
    /// With --demo: the size of every symbolic dimension (such as `batch`).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub batch: u64,
    /// Write each party's outputs to DIR/<party>.json (and one CSV per output), atomically.
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Print per-party traffic, rounds and time per phase, next to the compiler's estimate.
    #[arg(long)]
    pub stats: bool,
    #[command(flatten)]
    pub target: TargetArgs,
}

pub fn parse_binding(s: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = s
        .split_once('=')
        .ok_or("expected NAME=PATH, such as x=client.csv")?;
    if name.trim().is_empty() || path.trim().is_empty() {
        return Err("expected NAME=PATH, such as x=client.csv".into());
    }
    Ok((name.trim().to_string(), PathBuf::from(path.trim())))
}

/// Random inputs of the declared shapes and ranges (OS-seeded).
pub fn demo_inputs(plan: &Plan, batch: usize) -> BTreeMap<String, Tensor> {
    runtime::exec::random_inputs(plan, batch, &mut rand::rng())
}

pub use runtime::exec::inputs_per_party as per_party;

/// Load and check the inputs bound on the command line: all of them
/// (`party` = None), or those one party supplies (its own and the public ones).
/// Every problem is reported, each naming the input and its file.
pub fn load_inputs(
    plan: &Plan,
    party: Option<plan::PartyIdx>,
    bindings: &[(String, PathBuf)],
) -> Result<BTreeMap<String, Tensor>, String> {
    let mut all = BTreeMap::new();
    let mut errors = Vec::new();
    for (name, path) in bindings {
        let Some(spec) = plan.inputs.iter().find(|i| &i.name == name) else {
            let known: Vec<&str> = plan.inputs.iter().map(|i| i.name.as_str()).collect();
            errors.push(format!(
                "--input {name}: the model has no input `{name}` (its inputs: {})",
                known.join(", ")
            ));
            continue;
        };
        match data::load(path) {
            Ok(t) => {
                all.insert(name.clone(), data::fit_rank(t, spec.shape.0.len()));
            }
            Err(e) => errors.push(format!("input `{name}`: {e}")),
        }
    }
    // Check what loaded (shapes, values, missing inputs) even if another
    // file failed, so every problem is reported in one run.
    let failed: Vec<&String> = bindings
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !all.contains_key(*n))
        .collect();
    {
        if let Err(errs) = plan::bind_inputs(plan, party, &all) {
            for e in errs.into_iter().filter(|e| !failed.contains(&&e.input)) {
                let file = bindings
                    .iter()
                    .find(|(n, _)| *n == e.input)
                    .map(|(_, p)| format!(" (from `{}`)", p.display()))
                    .unwrap_or_default();
                errors.push(format!("{e}{file}"));
            }
        }
    }
    if errors.is_empty() {
        Ok(all)
    } else {
        Err(errors.join("\n"))
    }
}

pub fn run(args: &RunArgs) -> ExitCode {
    let mut options = args.target.options();
    // A model file is compiled; a plan file is loaded (no model: no
    // recompiling for the data's sizes, no reference).
    let (model, mut plan) = match (&args.plan, &args.file) {
        (Some(path), _) => match crate::plan_file::load(path) {
            Ok(plan) => (None, plan),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        (None, Some(file)) => match compile_file_with(file, &options) {
            Some((model, compiled)) => (Some(model), compiled.plan),
            None => return ExitCode::FAILURE,
        },
        (None, None) => {
            eprintln!("error: give a model FILE or --plan FILE");
            return ExitCode::FAILURE;
        }
    };
    let inputs = if args.demo {
        demo_inputs(&plan, args.batch as usize)
    } else {
        match load_inputs(&plan, None, &args.inputs) {
            Ok(i) => i,
            Err(e) => {
                for line in e.lines() {
                    eprintln!("error: {line}");
                }
                eprintln!("note: nothing was run; no output was written");
                return ExitCode::FAILURE;
            }
        }
    };
    // Estimates for the sizes the data actually has (the plan is the same).
    if let (Some(model), Ok(dims)) = (&model, plan::bind_inputs(&plan, None, &inputs)) {
        options.assume = dims.into_iter().map(|(k, v)| (k, v as u64)).collect();
        if let Ok(c) = compiler::compile(model, &options) {
            plan = c.plan;
        }
    }
    let plan = &plan;
    let parties = plan
        .parties
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    eprintln!(
        "running {} privately: {parties} in this process ...",
        plan.model
    );
    let started = Instant::now();
    let outcomes = match runtime::exec::run_in_process(
        plan,
        &per_party(plan, &inputs),
        &runtime::exec::Options::default(),
    ) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("note: the run was stopped; no output was written");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("done in {:.3} s", started.elapsed().as_secs_f64());
    if args.stats {
        print_stats(plan, &outcomes);
    }
    if let Some(dir) = &args.output {
        if let Err(e) = write_outputs(dir, plan, &outcomes) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
        eprintln!("outputs written to {}", dir.display());
    } else {
        for (p, o) in outcomes.iter().enumerate() {
            for (name, t) in &o.outputs {
                println!(
                    "{} learns {name} {:?}: {}",
                    plan.party_name(p as u32),
                    t.shape,
                    preview(t)
                );
            }
        }
    }
    if let (true, Some(model)) = (args.demo, &model) {
        match compiler::reference::evaluate(model, &inputs) {
            Ok(reference) => {
                let mut worst: f64 = 0.0;
                for (p, o) in outcomes.iter().enumerate() {
                    for (name, t) in &o.outputs {
                        let (_, r) = reference
                            .iter()
                            .find(|(n, _)| n == name)
                            .expect("same outputs");
                        let err = t
                            .data
                            .iter()
                            .zip(&r.data)
                            .map(|(a, b)| (a - b).abs())
                            .fold(0.0, f64::max);
                        let bound = plan
                            .outputs
                            .iter()
                            .find(|s| &s.name == name)
                            .map_or(f64::NAN, |s| s.error_bound);
                        println!(
                            "reference {name} at {}: {}\n  max |private - reference| = {err:.3e} (compiler's bound {bound:.3e})",
                            plan.party_name(p as u32),
                            preview(r)
                        );
                        worst = worst.max(err);
                    }
                }
                println!("max error over all outputs: {worst:.3e}");
            }
            Err(e) => eprintln!("warning: the reference interpreter failed: {e}"),
        }
    }
    ExitCode::SUCCESS
}

fn preview(t: &Tensor) -> String {
    let shown: Vec<String> = t.data.iter().take(8).map(|v| format!("{v:.4}")).collect();
    let more = if t.data.len() > 8 {
        format!(", ... ({} values)", t.data.len())
    } else {
        String::new()
    };
    format!("[{}{more}]", shown.join(", "))
}

pub fn print_stats(plan: &Plan, outcomes: &[runtime::exec::Outcome]) {
    eprintln!(
        "{:<12} {:>12} {:>12} {:>7} {:>10} {:>10} {:>10}",
        "party", "sent (B)", "recv (B)", "rounds", "setup", "preproc", "online"
    );
    let mut total = 0u64;
    for (p, o) in outcomes.iter().enumerate() {
        let s = &o.stats;
        total += s.bytes_sent;
        eprintln!(
            "{:<12} {:>12} {:>12} {:>7} {:>9.3}s {:>9.3}s {:>9.3}s",
            plan.party_name(p as u32),
            s.bytes_sent,
            s.bytes_received,
            s.rounds,
            s.setup.as_secs_f64(),
            s.preprocessing.as_secs_f64(),
            s.online.as_secs_f64()
        );
    }
    let e = &plan.estimate;
    eprintln!(
        "total sent: {total} B; compiler's estimate: {:.0} B and {} rounds (assuming {:?})",
        e.bytes, e.rounds, e.assumed_dims
    );
}

pub fn write_outputs(
    dir: &Path,
    plan: &Plan,
    outcomes: &[runtime::exec::Outcome],
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for (p, o) in outcomes.iter().enumerate() {
        if o.outputs.is_empty() {
            continue;
        }
        let party = plan.party_name(p as u32);
        let mut obj = serde_json::Map::new();
        for (name, t) in &o.outputs {
            obj.insert(name.clone(), data::to_json_value(t));
            files.push((
                dir.join(format!("{party}-{name}.csv")),
                data::to_csv(t).into_bytes(),
            ));
        }
        let json = serde_json::to_string_pretty(&serde_json::Value::Object(obj))
            .expect("valid JSON")
            + "\n";
        files.push((dir.join(format!("{party}.json")), json.into_bytes()));
    }
    // All files are written to temporaries first; only then renamed.
    crate::write_all_atomically(&files)
}
