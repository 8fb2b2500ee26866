//! `veil bench`: run a model at several batch sizes in each deployment mode
//! and report time, throughput, traffic, rounds and accuracy.

use crate::compile_cmd::{compile_file_with, TargetArgs};
use crate::run_cmd::{demo_inputs, per_party};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// (a) two computing parties and the model's dealer; the cost model chooses.
    Dealer,
    /// (b) two parties alone: correlated randomness generated with Paillier.
    TwoParty,
    /// (c) hybrid: Paillier for the linear layers, shares (with the dealer) for the rest.
    Hybrid,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Dealer => "dealer",
            Mode::TwoParty => "two-party",
            Mode::Hybrid => "hybrid",
        }
    }
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The model file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Batch sizes (the size of every symbolic dimension).
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000,10000")]
    pub batches: Vec<usize>,
    /// Deployment modes to measure.
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        default_value = "dealer,two-party,hybrid"
    )]
    pub modes: Vec<Mode>,
    /// Runs per measurement; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,
    /// Also append one JSON object per measurement to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub target: TargetArgs,
}

pub fn run(args: &BenchArgs) -> ExitCode {
    let mut rows = Vec::new();
    println!(
        "{:<10} {:>7} {:>10} {:>12} {:>14} {:>7} {:>10}",
        "mode", "batch", "seconds", "preds/s", "bytes/pred", "rounds", "max err"
    );
    for &mode in &args.modes {
        let mut options = args.target.options();
        match mode {
            Mode::Dealer => {}
            Mode::TwoParty => options.use_dealer = false,
            Mode::Hybrid => options.prefer = Some(compiler::ir::Protocol::Paillier),
        }
        for &batch in &args.batches {
            options.assume = [("batch".to_string(), batch as u64)].into_iter().collect();
            let Some((model, compiled)) = compile_file_with(&args.file, &options) else {
                return ExitCode::FAILURE;
            };
            let plan = &compiled.plan;
            if mode == Mode::Dealer
                && plan.randomness == plan::RandomnessSource::TwoParty
                && !plan.correlations.is_empty()
            {
                eprintln!(
                    "note: {} declares no dealer; mode `dealer` runs without one",
                    plan.model
                );
            }
            let mut times = Vec::new();
            let mut bytes = 0u64;
            let mut rounds = 0u32;
            let mut max_err: f64 = 0.0;
            for r in 0..args.repeat {
                eprint!(
                    "\r{} batch {batch}: run {}/{} ...   ",
                    mode.name(),
                    r + 1,
                    args.repeat
                );
                let inputs = demo_inputs(plan, batch);
                let reference = match compiler::reference::evaluate(&model, &inputs) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("\nerror: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                let start = Instant::now();
                let outcomes = match runtime::exec::run_in_process(
                    plan,
                    &per_party(plan, &inputs),
                    &runtime::exec::Options::default(),
                ) {
                    Ok(o) => o,
                    Err(e) => {
                        eprintln!("\nerror: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                times.push(start.elapsed().as_secs_f64());
                bytes = outcomes.iter().map(|o| o.stats.bytes_sent).sum();
                rounds = outcomes.iter().map(|o| o.stats.rounds).max().unwrap_or(0);
                for o in &outcomes {
                    for (name, t) in &o.outputs {
                        let (_, want) = reference
                            .iter()
                            .find(|(n, _)| n == name)
                            .expect("same outputs");
                        for (a, b) in t.data.iter().zip(&want.data) {
                            max_err = max_err.max((a - b).abs());
                        }
                    }
                }
            }
            eprint!("\r{:60}\r", "");
            times.sort_by(f64::total_cmp);
            let seconds = times[times.len() / 2];
            let row = serde_json::json!({
                "peer": "veil",
                "mode": mode.name(),
                "batch": batch,
                "seconds": seconds,
                "preds_per_s": batch as f64 / seconds,
                "bytes_per_pred": bytes as f64 / batch as f64,
                "rounds": rounds,
                "max_err": max_err,
                "estimate_bytes": plan.estimate.bytes,
                "estimate_rounds": plan.estimate.rounds,
            });
            println!(
                "{:<10} {:>7} {:>10.4} {:>12.1} {:>14.1} {:>7} {:>10.2e}",
                mode.name(),
                batch,
                seconds,
                batch as f64 / seconds,
                bytes as f64 / batch as f64,
                rounds,
                max_err
            );
            rows.push(row);
        }
    }
    if let Some(path) = &args.json {
        use std::io::Write as _;
        let text: String = rows.iter().map(|r| r.to_string() + "\n").collect();
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        if let Err(e) = written {
            eprintln!("error: cannot write `{}`: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
