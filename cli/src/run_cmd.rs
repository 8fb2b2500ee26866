//! `veil run`: compile a model and run every party in this process.

use crate::compile_cmd::{compile_file_with, TargetArgs};
use crate::data;
use clap::Args;
use compiler::reference::preview;
use plan::{Plan, Tensor};
use std::collections::{BTreeMap, VecDeque};
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
    #[arg(long, value_name = "FILE", conflicts_with_all = ["file", "demo", "check"])]
    #[arg(conflicts_with_all = crate::plan_file::COMPILE_FLAGS)]
    pub plan: Option<PathBuf>,
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
    /// Also run the plaintext reference interpreter on the same inputs, print each
    /// output's error next to the compiler's bound, and fail (writing nothing) if
    /// an error exceeds its bound. Implied by --demo.
    #[arg(long)]
    pub check: bool,
    /// Print per-party traffic, rounds and time per phase, next to the compiler's estimate.
    #[arg(long)]
    pub stats: bool,
    /// Run in chunks of N rows. By default a model that computes each row of
    /// its outputs from the same row of its inputs runs in chunks sized for
    /// throughput within --max-memory (4,096 rows, or fewer when they do not
    /// fit; at most 1 GiB when --max-memory is not given), as one session
    /// whatever the file's size; other models run in one piece.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=crate::limits::MAX_BATCH))]
    pub chunk_rows: Option<u64>,
    /// No progress bar and no summary line on standard error.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[command(flatten)]
    pub memory: crate::limits::MemoryArgs,
    #[command(flatten)]
    pub target: TargetArgs,
}

pub use compiler::reference::Comparison;

/// Compares every output each party learned with the reference interpreter's
/// ([`compiler::reference::compare`]).
pub fn compare_with_reference(
    plan: &Plan,
    outcomes: &[runtime::exec::Outcome],
    reference: &[compiler::reference::Expected],
) -> Comparison {
    let learned: Vec<&[(String, Tensor)]> = outcomes.iter().map(|o| &o.outputs[..]).collect();
    compiler::reference::compare(plan, &learned, reference)
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
    /// Bind every input (of this party, for `veil party`) that has a file
    /// named after it in DIR, as NAME.npy, NAME.csv or NAME.json, and is not
    /// bound with -i: the weight files `veil import` writes, say.
    #[arg(long = "inputs", value_name = "DIR")]
    pub input_dir: Option<PathBuf>,
}

/// The bindings given with -i, and those found in the --inputs folder for
/// the inputs `party` supplies (all, for None) that -i leaves unbound.
pub fn bindings(
    plan: &Plan,
    party: Option<plan::PartyIdx>,
    args: &InputArgs,
) -> Result<Vec<(String, PathBuf)>, String> {
    let mut all = args.inputs.clone();
    let Some(dir) = &args.input_dir else {
        return Ok(all);
    };
    if !dir.is_dir() {
        return Err(format!("--inputs {}: not a folder", dir.display()));
    }
    for spec in &plan.inputs {
        let mine = match (party, &spec.owner) {
            (None, _) | (_, plan::Owner::Public) => true,
            (Some(p), plan::Owner::Party(q)) => p == *q,
        };
        if !mine || all.iter().any(|(n, _)| n == &spec.name) {
            continue;
        }
        let found: Vec<PathBuf> = ["npy", "csv", "json"]
            .iter()
            .map(|ext| dir.join(format!("{}.{ext}", spec.name)))
            .filter(|p| p.is_file())
            .collect();
        match found.as_slice() {
            [] => {}
            [one] => all.push((spec.name.clone(), one.clone())),
            many => {
                let names: Vec<String> = many.iter().map(|p| p.display().to_string()).collect();
                return Err(format!(
                    "--inputs {}: input `{}` has {} files ({}): keep one, or bind it with -i",
                    dir.display(),
                    spec.name,
                    many.len(),
                    names.join(", ")
                ));
            }
        }
    }
    Ok(all)
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
#[derive(Default)]
pub struct Inputs {
    pub values: BTreeMap<String, Tensor>,
    /// The `--id-column`'s IDs, when one was asked for.
    pub ids: Option<RowIds>,
    /// In a run in chunks, the inputs read a chunk at a time (their first
    /// chunk is in `values`, and `ids` are its IDs).
    pub streams: Vec<Stream>,
}

/// An input read in chunks of rows.
pub struct Stream {
    pub name: String,
    pub file: String,
    pub source: crate::stream::Source,
}

/// Row IDs read from a CSV input, and the dimension they label (the first
/// dimension of that input, such as `batch`).
#[derive(Debug)]
pub struct RowIds {
    pub column: String,
    pub values: Vec<String>,
    pub dim: plan::Dim,
}

/// The plan as the executor takes it. Every plan the cli runs was checked
/// when it was compiled or loaded, so a failure here is a bug, and is
/// reported as one.
pub fn valid(plan: &Plan) -> Result<plan::ValidPlan<'_>, runtime::exec::ExecError> {
    plan::validate(plan).map_err(not_valid)
}

/// [`valid`] for a holder that runs many sessions (`veil serve`).
pub fn shared_valid(
    plan: std::sync::Arc<Plan>,
) -> Result<plan::SharedValidPlan, runtime::exec::ExecError> {
    plan::SharedValidPlan::new(plan).map_err(not_valid)
}

fn not_valid(errors: Vec<plan::ValidationError>) -> runtime::exec::ExecError {
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    runtime::exec::ExecError::protocol(format!(
        "internal error: the plan does not validate ({}); please report this bug",
        errors.join("; ")
    ))
}

/// One outcome per party of `plan`, `me`'s and empty ones for the others:
/// what [`write_outputs`] takes from a process that ran one party.
pub fn only_party(
    plan: &Plan,
    me: plan::PartyIdx,
    outcome: runtime::exec::Outcome,
) -> Vec<runtime::exec::Outcome> {
    let mut all: Vec<runtime::exec::Outcome> = plan
        .parties
        .iter()
        .map(|_| runtime::exec::Outcome {
            outputs: Vec::new(),
            stats: Default::default(),
        })
        .collect();
    all[me as usize] = outcome;
    all
}

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
    load_inputs_in_chunks(plan, party, args, None)
}

/// As [`load_inputs`]; with `chunks` (the row dimension and the rows of a
/// chunk), the inputs whose first dimension is the row dimension are opened
/// as [`Stream`]s and only their first chunk is read and checked.
pub fn load_inputs_in_chunks(
    plan: &Plan,
    party: Option<plan::PartyIdx>,
    args: &InputArgs,
    chunks: Option<(&str, usize)>,
) -> Result<Inputs, String> {
    let bindings = &bindings(plan, party, args)?;
    let mut all = BTreeMap::new();
    let mut layouts: BTreeMap<&str, (data::Layout, usize)> = BTreeMap::new();
    let mut streams = Vec::new();
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
        let rows = chunks.filter(
            |(dim, _)| matches!(spec.shape.0.first(), Some(plan::Dim::Symbol(s)) if s == dim),
        );
        if let Some((_, rows)) = rows {
            let opened =
                crate::stream::Source::open(path, args.stdin_format, args.id_column.as_deref())
                    .and_then(|mut source| {
                        let first = source
                            .next(rows)
                            .map_err(|e| format!("{}: {e}", data::describe(path)))?;
                        Ok((source, first.expect("a first chunk or an error")))
                    });
            match opened {
                Ok((source, chunk)) => {
                    all.insert(
                        name.clone(),
                        data::fit_rank(chunk.tensor, spec.shape.0.len()),
                    );
                    layouts.insert(name, (chunk.layout, chunk.offset));
                    if let Some(v) = chunk.ids {
                        ids.push((name, v));
                    }
                    streams.push(Stream {
                        name: name.clone(),
                        file: data::describe(path),
                        source,
                    });
                }
                Err(e) => errors.push(format!("input `{name}`: {e}")),
            }
            continue;
        }
        match data::load(path, args.stdin_format, args.id_column.as_deref()) {
            Ok(l) => {
                all.insert(name.clone(), data::fit_rank(l.tensor, spec.shape.0.len()));
                layouts.insert(name, (l.layout, 0));
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
    errors.extend(placed_errors(
        plan, party, &all, &layouts, &file_of, &failed,
    ));
    if errors.is_empty() {
        Ok(Inputs {
            values: all,
            ids: row_ids,
            streams,
        })
    } else {
        Err(errors.join("\n"))
    }
}

/// The problems [`plan::infer_dims`] finds in `all` (but for the inputs in
/// `failed`, whose files did not load), each naming its input and the
/// value's place in its file.
pub fn placed_errors(
    plan: &Plan,
    party: Option<plan::PartyIdx>,
    all: &BTreeMap<String, Tensor>,
    layouts: &BTreeMap<&str, (data::Layout, usize)>,
    file_of: &dyn Fn(&str) -> Option<String>,
    failed: &[&String],
) -> Vec<String> {
    let mut errors = Vec::new();
    if let Err(errs) = plan::infer_dims(plan, party, &plan::views(all)) {
        for e in errs.into_iter().filter(|e| !failed.contains(&&e.input)) {
            let file = file_of(&e.input);
            match (e.at, layouts.get(e.input.as_str()), &file) {
                (Some(i), Some((layout, offset)), Some(file)) => {
                    let at = layout.position(offset + i);
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
    errors
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
    let refused = |e: String| {
        eprintln!("error: {e}");
        eprintln!("note: nothing was run; no output was written");
        ExitCode::FAILURE
    };
    match (crate::stream::row_dim(&plan), args.chunk_rows) {
        (Ok(Some(dim)), _) => return run_in_chunks(args, model, plan, options, &dim),
        (Ok(None), Some(_)) => {
            return refused(format!(
                "--chunk-rows: {} has no symbolic dimension (such as `batch`) to cut into chunks",
                plan.model
            ))
        }
        (Err(why), Some(_)) => {
            return refused(format!(
                "--chunk-rows: {} cannot run in chunks of rows: {why}; run it without --chunk-rows",
                plan.model
            ))
        }
        _ => {}
    }
    let (inputs, ids) = if args.demo {
        // Before the demo data is made: it alone can be too large.
        let batch = args.batch as usize;
        let dims = plan.dims_at(batch);
        let sizes = crate::limits::Sizes::Batch { flag: "--batch" };
        let inputs =
            crate::limits::check_in_process(&plan, &dims, model.as_ref(), &args.memory, sizes)
                .and_then(|()| demo_inputs(&plan, batch));
        match inputs {
            Ok(i) => (i, None),
            Err(e) => return refused(e),
        }
    } else {
        match load_inputs(&plan, None, &args.data) {
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
    // A plan file runs as it is (its limits are checked when it runs).
    if let (Some(file), Ok(dims)) = (
        &args.file,
        plan::infer_dims(&plan, None, &plan::views(&inputs)),
    ) {
        let dims: BTreeMap<String, u64> = dims.into_iter().map(|(k, v)| (k, v as u64)).collect();
        if dims != plan.estimate.assumed_dims {
            options.assume = dims;
            match compile_file_with(file, &options) {
                Some((_, c)) => plan = c.plan,
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
    let plan = &plan;
    if !args.demo {
        let dims = plan::infer_dims(plan, None, &plan::views(&inputs)).unwrap_or_default();
        let sizes = crate::limits::Sizes::Data;
        // With --check the reference interpreter runs too.
        let reference = model.as_ref().filter(|_| args.check);
        if let Err(e) = crate::limits::check_in_process(plan, &dims, reference, &args.memory, sizes)
        {
            return refused(e);
        }
    }
    announce(plan);
    let started = Instant::now();
    let outcomes = match crate::progress::with_progress(None, |progress| {
        let mut opts = runtime::exec::Options::default();
        opts.progress = progress;
        runtime::exec::run_in_process(&valid(plan)?, &per_party(plan, &inputs), &opts)
    }) {
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
    // The comparison comes before any output is written: a result outside
    // its bound is not written at all.
    // (--plan conflicts with --demo and --check: a plan has no model.)
    let comparison = match (args.demo || args.check, &model) {
        (true, Some(model)) => match compiler::reference::expected(model, &inputs) {
            Ok(reference) => Some(compare_with_reference(plan, &outcomes, &reference)),
            Err(e) => {
                eprintln!("error: the reference interpreter failed: {e}");
                eprintln!("note: no output was written");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let failed = comparison
        .as_ref()
        .is_some_and(|c| !c.over_bound.is_empty());
    match &args.output {
        Some(dir) if !failed => {
            if let Err(e) = write_outputs(dir, plan, &outcomes, ids.as_ref()) {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
        Some(_) => {}
        None => {
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
    }
    report_comparison(comparison.as_ref(), failed, args.output.is_some(), say)
}

/// Says on standard error which model runs and which parties take part.
fn announce(plan: &Plan) {
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
}

/// Prints the comparison with the reference (if one ran) through `say`,
/// and the failure when a result is outside its bound (`failed`): the exit
/// status of a run whose outputs were written, or withheld on failure.
fn report_comparison(
    comparison: Option<&Comparison>,
    failed: bool,
    to_files: bool,
    say: fn(std::fmt::Arguments),
) -> ExitCode {
    let Some(c) = comparison else {
        return ExitCode::SUCCESS;
    };
    for line in &c.lines {
        say(format_args!("{line}"));
    }
    say(format_args!("max error over all outputs: {:.3e}", c.worst));
    if failed {
        eprintln!(
            "error: the private result differs from the plaintext reference by more than \
             the compiler's bound: {}",
            c.over_bound.join("; ")
        );
        eprintln!("note: this is a bug in Veil; please report it with the model file");
        if to_files {
            eprintln!("note: no output was written");
        }
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// `veil run` of a plan whose rows are independent ([`crate::stream::row_dim`]):
/// the rows in chunks as one session (issue 22). Chunk k binds the same plan
/// with `dim` at the chunk's rows and runs every party with fresh
/// correlations; the inputs without `dim` (a model owner's weights) are read
/// once; outputs are appended to staging files and renamed into place at the
/// end, so that a failure in any chunk (a bad row, a party's error, a result
/// outside its bound) leaves nothing behind. Memory is that of one chunk.
fn run_in_chunks(
    args: &RunArgs,
    model: Option<compiler::ir::CheckedModel>,
    mut plan: Plan,
    mut options: compiler::Options,
    dim: &str,
) -> ExitCode {
    use crate::stream;
    let refused = |e: String| {
        for line in e.lines() {
            eprintln!("error: {line}");
        }
        eprintln!("note: nothing was run; no output was written");
        ExitCode::FAILURE
    };
    let reference = model.as_ref().filter(|_| args.demo || args.check);
    let (limit, _) = args.memory.limit();
    let budget = match args.memory.max_memory {
        Some(_) => limit,
        None => limit.min(stream::DEFAULT_BUDGET),
    };
    let asked = args.chunk_rows.map(|n| n as usize);
    let (rows, depth) = {
        let p = &plan;
        let bytes_at = |n: usize| {
            crate::limits::in_process_bytes(p, &p.dims_at(n), reference)
                .ok()
                .map(|(b, _)| b)
        };
        // When not even one row fits, the check below says so.
        let rows = stream::chunk_rows(asked, budget, &bytes_at).unwrap_or(1);
        (rows, stream::pipeline_depth(bytes_at(rows), budget))
    };
    let rows = if args.demo {
        rows.min(args.batch as usize)
    } else {
        rows
    };
    let sizes = || match (asked, args.demo) {
        (Some(_), _) => crate::limits::Sizes::Batch {
            flag: "--chunk-rows",
        },
        (None, true) => crate::limits::Sizes::Batch { flag: "--batch" },
        (None, false) => crate::limits::Sizes::Data,
    };
    let dims = BTreeMap::from([(dim.to_string(), rows)]);
    // A chunk asked for may be larger than the file: then it is checked
    // at the rows the file has, once its first chunk is read.
    let mut checked = true;
    if let Err(e) = crate::limits::check_in_process(&plan, &dims, reference, &args.memory, sizes())
    {
        if args.demo || asked.is_none() {
            return refused(e);
        }
        checked = false;
    }
    // The first chunk, and the inputs read in chunks.
    let is_rows = |spec: &plan::InputSpec| matches!(spec.shape.0.first(), Some(plan::Dim::Symbol(s)) if s == dim);
    let mut rng = rand::rng();
    let (first, ids, mut streams) = if args.demo {
        match runtime::exec::random_inputs(&plan, rows, &mut rng) {
            Ok(i) => (i, None, Vec::new()),
            Err(e) => return refused(e.message),
        }
    } else {
        match load_inputs_in_chunks(&plan, None, &args.data, Some((dim, rows))) {
            Ok(i) => (i.values, i.ids, i.streams),
            Err(e) => return refused(e),
        }
    };
    let row_inputs: Vec<String> = plan
        .inputs
        .iter()
        .filter(|s| is_rows(s))
        .map(|s| s.name.clone())
        .collect();
    let rows_in = |inputs: &BTreeMap<String, Tensor>| {
        row_inputs
            .iter()
            .find_map(|n| inputs.get(n))
            .and_then(|t| t.shape.first().copied())
            .unwrap_or(rows)
    };
    // The plan for the chunks' size: a file of one chunk compiles for its
    // rows, as a run in one piece does.
    let first_rows = rows_in(&first);
    if let Some(file) = &args.file {
        let assume = BTreeMap::from([(dim.to_string(), first_rows as u64)]);
        if assume != plan.estimate.assumed_dims {
            options.assume = assume;
            match compile_file_with(file, &options) {
                Some((_, c)) => plan = c.plan,
                None => {
                    eprintln!(
                        "note: the model was compiled for chunks of {dim}={first_rows}; nothing was run"
                    );
                    return ExitCode::FAILURE;
                }
            }
            checked = false;
        }
    }
    if !checked {
        let dims = BTreeMap::from([(dim.to_string(), first_rows)]);
        if let Err(e) =
            crate::limits::check_in_process(&plan, &dims, reference, &args.memory, sizes())
        {
            return refused(e);
        }
    }
    let plan = &plan;
    let valid = match valid(plan) {
        Ok(v) => v,
        Err(e) => return refused(e.to_string()),
    };
    let fixed: BTreeMap<String, Tensor> = first
        .iter()
        .filter(|(n, _)| !row_inputs.contains(n))
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect();
    announce(plan);
    let to_stdout = args.output.as_deref().is_some_and(data::is_stdin);
    let mut staged = match &args.output {
        Some(dir) if !to_stdout => match stream::StagedOutputs::create(dir, plan, None) {
            Ok(s) => Some(s),
            Err(e) => return refused(e),
        },
        _ => None,
    };
    let failed = |e: String| {
        for line in e.lines() {
            eprintln!("error: {line}");
        }
        eprintln!("note: the run was stopped; no output was written");
        ExitCode::FAILURE
    };
    let progress = crate::progress::Rows::new(args.quiet);
    let started = Instant::now();
    let mut collected = stream::Collected::default();
    let mut stats: Vec<runtime::exec::Stats> = vec![Default::default(); plan.parties.len()];
    let mut comparison = Comparison::default();
    let mut last: Vec<runtime::exec::Outcome> = Vec::new();
    let (mut done, mut chunks, mut largest) = (0usize, 0usize, 0usize);
    let total = if args.demo {
        Some(args.batch as usize)
    } else {
        streams.iter().find_map(|s| s.source.total_rows())
    };
    // The next chunk after `read` rows: generated, or read from every
    // input in chunks.
    let read_next = |streams: &mut [Stream],
                     rng: &mut rand::rngs::ThreadRng,
                     read: usize|
     -> Result<Option<Chunked>, String> {
        if !args.demo {
            return next_chunk(plan, None, streams, &fixed, rows, read, ids.is_some());
        }
        let left = args.batch as usize - read;
        if left == 0 {
            return Ok(None);
        }
        let mut i =
            runtime::exec::random_inputs(plan, left.min(rows), rng).map_err(|e| e.message)?;
        i.retain(|name, _| !fixed.contains_key(name));
        i.extend(fixed.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(Some((i, None)))
    };
    // Chunks run `depth` at a time: chunk k+1's preprocessing (the
    // dealer's stream, or the two parties' OT) and reading overlap chunk
    // k's online phase. Results are taken in order.
    let mut next = Some((first, ids.as_ref().map(|r| r.values.clone())));
    let mut read = 0usize;
    // Without a dealer the chunks continue the parties' OT extensions
    // (base OTs once per run, not per chunk).
    let mut opts = runtime::exec::Options::default();
    opts.ot_link = Some(std::sync::Arc::new(runtime::exec::OtLink::new()));
    opts.rlwe_weights = Some(std::sync::Arc::new(runtime::exec::WeightCache::new(
        runtime::exec::WeightCache::DEFAULT_BYTES,
    )));
    let ended = std::thread::scope(|s| -> Result<(), String> {
        let valid = &valid;
        let opts = &opts;
        let mut pending = VecDeque::new();
        loop {
            while pending.len() < depth {
                let Some((inputs, chunk_ids)) = next.take() else {
                    break;
                };
                // The chunk's thread borrows its inputs (no copy per party);
                // the reference reads them again once it is done.
                let inputs = std::sync::Arc::new(inputs);
                let lent = inputs.clone();
                let run = s.spawn(move || {
                    runtime::exec::run_in_process(valid, &per_party(plan, &*lent), opts)
                });
                read += rows_in(&inputs);
                pending.push_back((run, inputs, chunk_ids));
                next = read_next(&mut streams, &mut rng, read)?;
            }
            let Some((run, inputs, chunk_ids)) = pending.pop_front() else {
                return Ok(());
            };
            let n = rows_in(&inputs);
            let outcomes = run
                .join()
                .unwrap_or_else(|_| {
                    Err(runtime::exec::ExecError::protocol(
                        "a chunk's thread panicked",
                    ))
                })
                .map_err(|e| {
                    if chunks == 0 {
                        e.to_string()
                    } else {
                        format!("{e} (in the chunk of rows {}..{})", done + 1, done + n)
                    }
                })?;
            if let Some(model) = reference {
                let r = compiler::reference::expected(model, &inputs)
                    .map_err(|e| format!("the reference interpreter failed: {e}"))?;
                comparison.absorb(compare_with_reference(plan, &outcomes, &r));
            }
            stream::append_chunk(
                staged.as_mut(),
                &mut collected,
                &outcomes,
                ids.as_ref().map(|r| r.column.as_str()),
                chunk_ids,
            )?;
            for (total, o) in stats.iter_mut().zip(&outcomes) {
                stream::add_stats(total, &o.stats);
            }
            last = outcomes;
            done += n;
            chunks += 1;
            largest = largest.max(n);
            let fraction = match total {
                Some(t) => Some(done as f64 / t.max(1) as f64),
                None => streams.iter().find_map(|s| s.source.fraction()),
            };
            progress.update(done as u64, fraction);
        }
    });
    if let Err(e) = ended {
        progress.finish();
        return failed(e);
    }
    progress.finish();
    let secs = started.elapsed().as_secs_f64();
    eprintln!("done in {secs:.3} s");
    if !args.quiet {
        eprintln!(
            "{done} rows in {chunks} chunk{} of up to {largest} rows: {:.0} rows/s",
            if chunks == 1 { "" } else { "s" },
            done as f64 / secs.max(1e-9)
        );
    }
    let all_ids = std::mem::take(&mut collected.ids);
    let outcomes = match staged {
        Some(_) => last
            .into_iter()
            .zip(stats)
            .map(|(_, stats)| runtime::exec::Outcome {
                outputs: Vec::new(),
                stats,
            })
            .collect(),
        None => collected.into_outcomes(&last, stats),
    };
    if args.stats {
        print_stats(plan, &outcomes);
        if chunks > 1 {
            eprintln!(
                "(traffic, rounds and times are the sum over the {chunks} chunks; the compiler's estimate is for one chunk)"
            );
        }
    }
    let say: fn(std::fmt::Arguments) = if to_stdout {
        |a| eprintln!("{a}")
    } else {
        |a| println!("{a}")
    };
    let comparison = reference.map(|_| comparison);
    let over = comparison
        .as_ref()
        .is_some_and(|c| !c.over_bound.is_empty());
    if !over {
        let written = match (staged, &args.output) {
            (Some(s), _) => s.commit(),
            (None, Some(dir)) => {
                let ids = ids.map(|r| RowIds {
                    values: all_ids,
                    ..r
                });
                write_outputs(dir, plan, &outcomes, ids.as_ref())
            }
            (None, None) => {
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
                Ok(())
            }
        };
        if let Err(e) = written {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    report_comparison(comparison.as_ref(), over, args.output.is_some(), say)
}

/// A chunk's inputs by name, and its row IDs when the data has them.
pub type Chunked = (BTreeMap<String, Tensor>, Option<Vec<String>>);

/// The next chunk of the inputs read in chunks (with `fixed`, the inputs
/// read once), checked as the first was, and its row IDs; `None` after the
/// last row. Inputs that end at different rows are an error.
pub fn next_chunk(
    plan: &Plan,
    party: Option<plan::PartyIdx>,
    streams: &mut [Stream],
    fixed: &BTreeMap<String, Tensor>,
    rows: usize,
    done: usize,
    with_ids: bool,
) -> Result<Option<Chunked>, String> {
    let mut chunks = Vec::new();
    for s in streams.iter_mut() {
        let c = s
            .source
            .next(rows)
            .map_err(|e| format!("input `{}`: {}: {e}", s.name, s.file))?;
        chunks.push(c);
    }
    let sizes: Vec<Option<usize>> = chunks
        .iter()
        .map(|c| c.as_ref().map(|c| c.rows()))
        .collect();
    if sizes.iter().all(Option::is_none) {
        return Ok(None);
    }
    if sizes.iter().any(|s| *s != sizes[0]) {
        let counts: Vec<String> = streams
            .iter()
            .zip(&sizes)
            .map(|(s, n)| format!("{} has {} rows", s.file, done + n.unwrap_or(0)))
            .collect();
        return Err(format!(
            "the inputs read in rows differ in length: after row {done}, {}",
            counts.join(", ")
        ));
    }
    let mut inputs = fixed.clone();
    let mut layouts = BTreeMap::new();
    let mut ids: Option<Vec<String>> = None;
    for (s, c) in streams.iter().zip(chunks) {
        let c = c.expect("every input has the chunk");
        let rank = plan
            .inputs
            .iter()
            .find(|i| i.name == s.name)
            .map_or(0, |i| i.shape.0.len());
        if let (true, Some(v)) = (with_ids, c.ids) {
            match &ids {
                Some(first) if first != &v => {
                    return Err(format!(
                        "--id-column: the IDs in {} differ from those of another input after row {done}",
                        s.file
                    ))
                }
                _ => ids = Some(v),
            }
        }
        inputs.insert(s.name.clone(), data::fit_rank(c.tensor, rank));
        layouts.insert(s.name.as_str(), (c.layout, c.offset));
    }
    let file_of = |name: &str| {
        streams
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.file.clone())
    };
    let errors = placed_errors(plan, party, &inputs, &layouts, &file_of, &[]);
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    Ok(Some((inputs, ids)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use runtime::exec::Outcome;

    fn plan() -> Plan {
        plan_of("let z = x * y;")
    }

    fn plan_of(z: &str) -> Plan {
        let r = compiler::check_source(&format!(
            "model m {{ party a; party b; dealer d;
               input x: fixed[2] private(a) in [-1, 1]; input y: fixed[2] private(b) in [-1, 1];
               {z} output z to a; }}"
        ));
        compiler::compile(&r.model.unwrap(), &compiler::Options::default())
            .unwrap()
            .plan
    }

    #[test]
    fn an_inputs_folder_binds_each_partys_own_files_and_refuses_two_per_input() {
        let plan = plan();
        let dir = std::env::temp_dir().join(format!("veil-inputs-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("x.json"), "[0.5, 0.25]").unwrap();
        std::fs::write(dir.join("y.csv"), "0.5,0.25\n").unwrap();
        std::fs::write(dir.join("model.veil"), "not an input").unwrap();
        let args = |given: Vec<(String, PathBuf)>| InputArgs {
            inputs: given,
            id_column: None,
            stdin_format: None,
            input_dir: Some(dir.clone()),
        };
        let names = |b: Vec<(String, PathBuf)>| b.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        // All inputs in one process; party a's (x) and party b's (y) apart.
        assert_eq!(
            names(bindings(&plan, None, &args(vec![])).unwrap()),
            ["x", "y"]
        );
        assert_eq!(
            names(bindings(&plan, Some(0), &args(vec![])).unwrap()),
            ["x"]
        );
        assert_eq!(
            names(bindings(&plan, Some(1), &args(vec![])).unwrap()),
            ["y"]
        );
        // -i wins over the folder.
        let given = vec![("x".to_string(), PathBuf::from("other.csv"))];
        let b = bindings(&plan, None, &args(given)).unwrap();
        assert_eq!(b[0].1, PathBuf::from("other.csv"));
        assert_eq!(b.len(), 2);
        // Two files for one input: which one is meant is unclear.
        std::fs::write(
            dir.join("x.npy"),
            crate::data::to_npy(&Tensor {
                shape: vec![2],
                data: vec![0.0; 2],
            }),
        )
        .unwrap();
        let e = bindings(&plan, None, &args(vec![])).unwrap_err();
        assert!(e.contains("input `x` has 2 files"), "{e}");
        // Loaded through the same path as -i.
        std::fs::remove_file(dir.join("x.npy")).unwrap();
        let loaded = load_inputs(&plan, None, &args(vec![])).unwrap();
        assert_eq!(loaded.values["x"].data, vec![0.5, 0.25]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn expected(value: Vec<f64>, scores: Option<Vec<f64>>) -> Vec<compiler::reference::Expected> {
        vec![compiler::reference::Expected {
            name: "z".into(),
            value: Tensor::new(vec![value.len()], value).unwrap(),
            scores: scores.map(|s| Tensor::new(vec![s.len()], s).unwrap()),
        }]
    }

    fn outcome(z: Vec<f64>) -> Vec<Outcome> {
        let mut v: Vec<Outcome> = (0..3)
            .map(|_| Outcome {
                outputs: vec![],
                stats: Default::default(),
            })
            .collect();
        v[0].outputs
            .push(("z".into(), Tensor::new(vec![z.len()], z).unwrap()));
        v
    }

    /// `--check` and `--demo` fail when an error exceeds the compiler's
    /// bound, is NaN, or the shapes differ; they pass within it.
    #[test]
    fn an_error_beyond_the_bound_is_a_failure() {
        let plan = plan();
        let bound = plan.outputs[0].error_bound;
        let reference = expected(vec![0.5, -0.25], None);
        let ok =
            compare_with_reference(&plan, &outcome(vec![0.5 + bound / 2.0, -0.25]), &reference);
        assert!(ok.over_bound.is_empty(), "{:?}", ok.over_bound);
        assert_eq!(ok.lines.len(), 1);
        for bad in [
            vec![0.5 + 2.0 * bound, -0.25],
            vec![f64::NAN, -0.25],
            vec![0.5, -0.25, 0.0],
        ] {
            let c = compare_with_reference(&plan, &outcome(bad.clone()), &reference);
            assert_eq!(c.over_bound.len(), 1, "{bad:?}");
            assert!(
                c.over_bound[0].starts_with("`z` at a:"),
                "{:?}",
                c.over_bound
            );
        }
    }

    /// An argmax output is checked as a set: an index whose exact entry is
    /// within the plan's near-tie slack of the row's maximum passes, any
    /// other index fails, whatever the bound on the index (0).
    #[test]
    fn an_argmax_passes_on_a_near_tie_and_fails_otherwise() {
        let plan = plan_of("let s = x * y; let z = argmax(s);");
        // A scalar output of one row: argmax of a [2] vector.
        let spec = &plan.outputs[0];
        assert_eq!(spec.error_bound, 0.0);
        let slack = spec.near_tie.expect("an argmax output has a slack");
        assert!(slack > 0.0 && slack < 1e-3, "{slack}");
        let scalar = |v: f64| {
            let mut o = outcome(vec![]);
            o[0].outputs[0].1 = Tensor::scalar(v);
            o
        };
        let reference = |scores: Vec<f64>| {
            vec![compiler::reference::Expected {
                name: "z".into(),
                value: Tensor::scalar(1.0),
                scores: Some(Tensor::new(vec![2], scores).unwrap()),
            }]
        };
        // Entry 0 is within the slack of the maximum (entry 1): either index passes.
        let tie = reference(vec![0.3, 0.3 + slack / 2.0]);
        for got in [0.0, 1.0] {
            let c = compare_with_reference(&plan, &scalar(got), &tie);
            assert!(c.over_bound.is_empty(), "{got}: {:?}", c.over_bound);
        }
        assert!(compare_with_reference(&plan, &scalar(1.0), &tie).lines[0]
            .contains("or any index within"));
        // A clear lead: only the first largest passes.
        let lead = reference(vec![0.3, 0.3 + 2.0 * slack]);
        assert_eq!(
            compare_with_reference(&plan, &scalar(0.0), &lead)
                .over_bound
                .len(),
            1
        );
        assert!(compare_with_reference(&plan, &scalar(1.0), &lead)
            .over_bound
            .is_empty());
        // An index outside the row, or not a whole number, never passes.
        for got in [2.0, 0.5] {
            assert_eq!(
                compare_with_reference(&plan, &scalar(got), &tie)
                    .over_bound
                    .len(),
                1,
                "{got}"
            );
        }
    }
}
