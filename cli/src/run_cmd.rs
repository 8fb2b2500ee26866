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
    /// The model file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub data: InputArgs,
    /// Generate random inputs of the declared shapes and ranges, and compare the
    /// private result with the plaintext reference.
    #[arg(long, conflicts_with_all = ["inputs", "id_column", "stdin_format"])]
    pub demo: bool,
    /// With --demo: the size of every symbolic dimension (such as `batch`).
    /// A run whose estimated memory exceeds --max-memory is refused.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=crate::limits::MAX_BATCH))]
    pub batch: u64,
    /// Write each party's outputs to DIR/<party>.json and DIR/<party>-<output>.csv
    /// (all files or none); `-o -` prints them to standard output as JSON.
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Print per-party traffic, rounds and time per phase, next to the compiler's estimate.
    #[arg(long)]
    pub stats: bool,
    #[command(flatten)]
    pub memory: crate::limits::MemoryArgs,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// Where inputs come from: shared by `veil run` and `veil party`.
#[derive(Args, Debug, Clone, Default)]
pub struct InputArgs {
    /// Bind an input to a data file: NAME=PATH (.csv, .json or .npy), or NAME=-
    /// for standard input. Give each input once.
    #[arg(long = "input", short = 'i', value_name = "NAME=PATH", value_parser = parse_binding)]
    pub inputs: Vec<(String, PathBuf)>,
    /// The column of row IDs in a CSV input (named in its header row): it is not
    /// read as numbers, and it becomes the first column of every output CSV whose
    /// rows are that input's rows.
    #[arg(long, value_name = "NAME")]
    pub id_column: Option<String>,
    /// The format of the input read from standard input (`-i NAME=-`). Without it,
    /// the first bytes decide: the .npy magic, `[` for JSON, anything else CSV.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub stdin_format: Option<data::Format>,
}

pub fn parse_binding(s: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = s
        .split_once('=')
        .ok_or("expected NAME=PATH, such as x=client.csv (or x=- for standard input)")?;
    if name.trim().is_empty() || path.trim().is_empty() {
        return Err("expected NAME=PATH, such as x=client.csv (or x=- for standard input)".into());
    }
    Ok((name.trim().to_string(), PathBuf::from(path.trim())))
}

/// Inputs loaded from the command line's files.
#[derive(Debug, Default)]
pub struct Inputs {
    pub values: BTreeMap<String, Tensor>,
    /// The `--id-column`'s IDs, when one was asked for.
    pub ids: Option<RowIds>,
}

/// Row IDs read from a CSV input, and the dimension they label (the first
/// dimension of that input, such as `batch`).
#[derive(Debug)]
pub struct RowIds {
    pub column: String,
    pub values: Vec<String>,
    pub dim: plan::Dim,
}

/// Random inputs of the declared shapes and ranges (OS-seeded).
pub fn demo_inputs(plan: &Plan, batch: usize) -> Result<BTreeMap<String, Tensor>, String> {
    runtime::exec::random_inputs(plan, batch, &mut rand::rng()).map_err(|e| e.message)
}

pub use runtime::exec::inputs_per_party as per_party;

/// Load and check the inputs bound on the command line: all of them
/// (`party` = None), or those one party supplies (its own and the public ones).
/// Every problem is reported, each naming the input and its file, and a value
/// by its place in the file (a CSV file's line and column).
pub fn load_inputs(
    plan: &Plan,
    party: Option<plan::PartyIdx>,
    args: &InputArgs,
) -> Result<Inputs, String> {
    let bindings = &args.inputs;
    let mut all = BTreeMap::new();
    let mut layouts: BTreeMap<&str, data::Layout> = BTreeMap::new();
    let mut ids: Vec<(&str, Vec<String>)> = Vec::new();
    let mut errors = Vec::new();
    let binding = |(n, p): &(String, PathBuf)| format!("`{n}={}`", p.display());
    let stdin: Vec<&(String, PathBuf)> =
        bindings.iter().filter(|(_, p)| data::is_stdin(p)).collect();
    if stdin.len() > 1 {
        let given: Vec<String> = stdin.iter().map(|b| binding(b)).collect();
        errors.push(format!(
            "standard input can feed one input only, but {} read it; give the others a file",
            given.join(" and ")
        ));
    }
    for (k, (name, path)) in bindings.iter().enumerate() {
        if let Some(first) = bindings[..k].iter().find(|(n, _)| n == name) {
            errors.push(format!(
                "--input {name} is given twice, as {} and as {}: give each input once",
                binding(first),
                binding(&bindings[k])
            ));
            continue;
        }
        let Some(spec) = plan.inputs.iter().find(|i| &i.name == name) else {
            let known: Vec<&str> = plan.inputs.iter().map(|i| i.name.as_str()).collect();
            errors.push(format!(
                "--input {name}: the model has no input `{name}` (its inputs: {})",
                known.join(", ")
            ));
            continue;
        };
        if stdin.len() > 1 && data::is_stdin(path) {
            continue;
        }
        match data::load(path, args.stdin_format, args.id_column.as_deref()) {
            Ok(l) => {
                all.insert(name.clone(), data::fit_rank(l.tensor, spec.shape.0.len()));
                layouts.insert(name, l.layout);
                if let Some(v) = l.ids {
                    ids.push((name, v));
                }
            }
            Err(e) => errors.push(format!("input `{name}`: {e}")),
        }
    }
    let file_of = |name: &str| {
        bindings
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| data::describe(p))
    };
    let row_ids = match &args.id_column {
        None => None,
        Some(column) => match row_ids(plan, column, &all, ids, &file_of, errors.is_empty()) {
            Ok(r) => r,
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };
    // Check what loaded (shapes, values, missing inputs) even if another
    // file failed, so every problem is reported in one run.
    let failed: Vec<&String> = bindings
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !all.contains_key(*n))
        .collect();
    // Dimension limits are checked when the plan runs: `veil run` compiles
    // the plan for the sizes the data has.
    if let Err(errs) = plan::infer_dims(plan, party, &all) {
        for e in errs.into_iter().filter(|e| !failed.contains(&&e.input)) {
            let file = file_of(&e.input);
            match (e.at, layouts.get(e.input.as_str()), &file) {
                (Some(i), Some(layout), Some(file)) => {
                    let at = layout.position(i);
                    let at = if at.is_empty() {
                        String::new()
                    } else {
                        format!(" {at}")
                    };
                    errors.push(format!(
                        "input `{}`: the value{at} of {file} {}",
                        e.input, e.message
                    ));
                }
                _ => errors.push(match file {
                    Some(file) => format!("{e} (from {file})"),
                    None => e.to_string(),
                }),
            }
        }
    }
    if errors.is_empty() {
        Ok(Inputs {
            values: all,
            ids: row_ids,
        })
    } else {
        Err(errors.join("\n"))
    }
}

/// A dimension as the model writes it: `batch` or 8.
fn dim_text(d: &plan::Dim) -> String {
    match d {
        plan::Dim::Known(n) => n.to_string(),
        plan::Dim::Symbol(s) => format!("`{s}`"),
    }
}

/// The `--id-column`'s IDs: from the CSV inputs whose header has the column
/// (several must agree), labelling the first dimension of those inputs.
fn row_ids(
    plan: &Plan,
    column: &str,
    loaded: &BTreeMap<String, Tensor>,
    found: Vec<(&str, Vec<String>)>,
    file_of: &dyn Fn(&str) -> Option<String>,
    complete: bool,
) -> Result<Option<RowIds>, String> {
    let file = |name: &str| file_of(name).unwrap_or_default();
    let mut result: Option<(&str, RowIds)> = None;
    for (name, values) in found {
        let Some(t) = loaded.get(name) else { continue };
        let spec = plan
            .inputs
            .iter()
            .find(|i| i.name == name)
            .expect("a known input");
        let Some(dim) = spec.shape.0.first() else {
            return Err(format!(
                "--id-column {column}: input `{name}` is a scalar, so there are no rows to label (the column is in {})",
                file(name)
            ));
        };
        if t.shape.first() != Some(&values.len()) {
            return Err(format!(
                "--id-column {column}: {} has {} rows, but input `{name}`'s first dimension ({}) is {}",
                file(name),
                values.len(),
                dim_text(dim),
                t.shape.first().copied().unwrap_or(1)
            ));
        }
        match &result {
            None => {
                result = Some((
                    name,
                    RowIds {
                        column: column.to_string(),
                        values,
                        dim: dim.clone(),
                    },
                ))
            }
            Some((first, r)) if r.values != values || &r.dim != dim => {
                return Err(format!(
                    "--id-column {column}: the IDs in {} and in {} differ; give the column in one file, or the same IDs in the same order",
                    file(first),
                    file(name)
                ));
            }
            Some(_) => {}
        }
    }
    match result {
        Some((_, r)) => Ok(Some(r)),
        // A file that failed to load may have had it: that error is reported.
        None if !complete => Ok(None),
        None => Err(format!(
            "--id-column {column}: no CSV input has a column `{column}` in its header row"
        )),
    }
}

pub fn run(args: &RunArgs) -> ExitCode {
    let mut options = args.target.options();
    let Some((model, mut compiled)) = compile_file_with(&args.file, &options) else {
        return ExitCode::FAILURE;
    };
    let refused = |e: String| {
        eprintln!("error: {e}");
        eprintln!("note: nothing was run; no output was written");
        ExitCode::FAILURE
    };
    let (inputs, ids) = if args.demo {
        // Before the demo data is made: it alone can be too large.
        let batch = args.batch as usize;
        let dims = crate::limits::dims_at(&compiled.plan, batch);
        let sizes = crate::limits::Sizes::Batch { flag: "--batch" };
        let inputs = crate::limits::check_in_process(
            &compiled.plan,
            &dims,
            Some(&model),
            &args.memory,
            sizes,
        )
        .and_then(|()| demo_inputs(&compiled.plan, batch));
        match inputs {
            Ok(i) => (i, None),
            Err(e) => return refused(e),
        }
    } else {
        match load_inputs(&compiled.plan, None, &args.data) {
            Ok(i) => (i.values, i.ids),
            Err(e) => {
                for line in e.lines() {
                    eprintln!("error: {line}");
                }
                eprintln!("note: nothing was run; no output was written");
                return ExitCode::FAILURE;
            }
        }
    };
    // The plan for the sizes the data has: the analysis (the range of a sum
    // along `batch`, a mean's divisor) and the estimates depend on them.
    if let Ok(dims) = plan::infer_dims(&compiled.plan, None, &inputs) {
        let dims: BTreeMap<String, u64> = dims.into_iter().map(|(k, v)| (k, v as u64)).collect();
        if dims != compiled.plan.estimate.assumed_dims {
            options.assume = dims;
            match compile_file_with(&args.file, &options) {
                Some((_, c)) => compiled = c,
                None => {
                    eprintln!(
                        "note: the model was compiled for the sizes of its data ({}); nothing was run",
                        options
                            .assume
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let plan = &compiled.plan;
    if !args.demo {
        let dims = plan::infer_dims(plan, None, &inputs).unwrap_or_default();
        let sizes = crate::limits::Sizes::Data;
        if let Err(e) = crate::limits::check_in_process(plan, &dims, None, &args.memory, sizes) {
            return refused(e);
        }
    }
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
    // With `-o -` standard output carries the outputs' JSON only.
    let say: fn(std::fmt::Arguments) = match &args.output {
        Some(dir) if data::is_stdin(dir) => |a| eprintln!("{a}"),
        _ => |a| println!("{a}"),
    };
    if let Some(dir) = &args.output {
        if let Err(e) = write_outputs(dir, plan, &outcomes, ids.as_ref()) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
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
    if args.demo {
        match compiler::reference::evaluate(&model, &inputs) {
            Ok(reference) => {
                let mut worst: f64 = 0.0;
                let mut over_bound = Vec::new();
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
                        say(format_args!(
                            "reference {name} at {}: {}\n  max |private - reference| = {err:.3e} (compiler's bound {bound:.3e})",
                            plan.party_name(p as u32),
                            preview(r)
                        ));
                        worst = worst.max(err);
                        // A NaN result is a failure too.
                        if err > bound || err.is_nan() {
                            over_bound.push(format!(
                                "`{name}` at {}: {err:.3e} > {bound:.3e}",
                                plan.party_name(p as u32)
                            ));
                        }
                    }
                }
                say(format_args!("max error over all outputs: {worst:.3e}"));
                if !over_bound.is_empty() {
                    eprintln!(
                        "error: the private result differs from the plaintext reference by more \
                         than the compiler's bound: {}",
                        over_bound.join("; ")
                    );
                    eprintln!("note: this is a bug in Veil; please report it with the model file");
                    return ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("error: the reference interpreter failed: {e}");
                return ExitCode::FAILURE;
            }
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

/// Write the parties' outputs to `dir`: `<party>.json` and one
/// `<party>-<output>.csv` per output (with a header row, and the row IDs
/// first where an output's rows are the ID column's rows), all or none.
/// `-` prints `{party: {output: value}}` to standard output instead.
pub fn write_outputs(
    dir: &Path,
    plan: &Plan,
    outcomes: &[runtime::exec::Outcome],
    ids: Option<&RowIds>,
) -> Result<(), String> {
    if data::is_stdin(dir) {
        let mut all = serde_json::Map::new();
        for (p, o) in outcomes.iter().enumerate() {
            if o.outputs.is_empty() {
                continue;
            }
            let obj = o
                .outputs
                .iter()
                .map(|(name, t)| (name.clone(), data::to_json_value(t)))
                .collect();
            all.insert(
                plan.party_name(p as u32).to_string(),
                serde_json::Value::Object(obj),
            );
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::Value::Object(all)).expect("valid JSON")
        );
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let mut labelled = false;
    for (p, o) in outcomes.iter().enumerate() {
        if o.outputs.is_empty() {
            continue;
        }
        let party = plan.party_name(p as u32);
        let mut obj = serde_json::Map::new();
        for (name, t) in &o.outputs {
            obj.insert(name.clone(), data::to_json_value(t));
            let rows = plan
                .outputs
                .iter()
                .find(|s| &s.name == name)
                .and_then(|s| s.shape.0.first());
            let ids = ids
                .filter(|r| rows == Some(&r.dim) && t.shape.first() == Some(&r.values.len()))
                .map(|r| data::Ids {
                    column: &r.column,
                    values: &r.values,
                });
            labelled |= ids.is_some();
            files.push((
                dir.join(format!("{party}-{name}.csv")),
                data::to_csv(name, t, ids).into_bytes(),
            ));
        }
        let json = serde_json::to_string_pretty(&serde_json::Value::Object(obj))
            .expect("valid JSON")
            + "\n";
        files.push((dir.join(format!("{party}.json")), json.into_bytes()));
    }
    crate::write_all_atomically(&files)?;
    eprintln!("outputs written to {}", dir.display());
    if let (Some(r), false) = (ids, labelled || files.is_empty()) {
        eprintln!(
            "warning: --id-column {}: no output written here has one row per ID (a first dimension {}), so no output CSV has the IDs",
            r.column,
            dim_text(&r.dim)
        );
    }
    Ok(())
}
