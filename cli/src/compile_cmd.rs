//! `veil compile`.

use crate::read_source;
use clap::{Args, ValueEnum};
use compiler::{Network, Options};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Emit {
    /// The plan's readable text form.
    Plan,
    /// The plan as JSON: a plan file, for `veil run --plan` and `veil party --plan`.
    Json,
    /// The dataflow graph with shapes, visibility and ranges.
    Graph,
    /// The graph in Graphviz DOT, coloured by protocol.
    Dot,
    /// Per operation: protocol, reason, estimates, runner-up; totals; leakage.
    Report,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum NetworkProfile {
    /// 1 Gbit/s, 0.5 ms per round.
    Lan,
    /// 100 Mbit/s, 40 ms per round.
    Wan,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Prefer {
    /// Additive secret sharing.
    Shares,
    /// Paillier for linear operations with one side in the clear.
    Paillier,
    /// RLWE for matrix products and convolutions (grouped and depthwise ones too) on secret values (lattice encryption).
    Rlwe,
    /// RLWE, and every product whose W is a party's input masked
    /// (Delphi): the HE on a random mask in the preprocessing, x minus the
    /// mask sent online and multiplied in the clear.
    RlweMasked,
    /// RLWE, and every product whose W is a party's input prepared: W's
    /// half of the HE in the preprocessing, x's coefficients online.
    RlwePrepared,
}

#[derive(Args, Debug)]
pub struct CompileArgs {
    /// The model file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// What to print.
    #[arg(long, value_enum, default_value = "report")]
    pub emit: Emit,
    /// Write to this file (atomically) instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// How two parties generate correlations without a dealer.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorrelationsArg {
    /// Oblivious transfer (SoftSpoken OT extension, Gilboa products): fast.
    Ot,
    /// Paillier cross terms under party 0's key: slow, little traffic for
    /// wide matrix products.
    Paillier,
}

/// With a dealer, how secure comparisons take the sign bit.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComparisonsArg {
    /// A masked opening and a carry tree of AND gates: 9 rounds per
    /// comparison and its select, about 150 bytes.
    CarryTree,
    /// A masked opening and a distributed comparison function (DCF keys,
    /// function secret sharing): 2 rounds, about 3.1 KiB. For small batches
    /// and long round trips.
    Dcf,
}

/// Options shared by every command that compiles.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// Network profile the cost model assumes.
    #[arg(long, value_enum, default_value = "lan")]
    pub network: NetworkProfile,
    /// Explicit bandwidth in Mbit/s (overrides --network; give --latency too).
    #[arg(long, value_name = "MBIT", requires = "latency")]
    pub bandwidth: Option<f64>,
    /// Explicit latency per round in milliseconds (with --bandwidth).
    #[arg(long, value_name = "MS", requires = "bandwidth")]
    pub latency: Option<f64>,
    /// Compile as if the model declared no dealer (the two computing parties
    /// generate the correlated randomness themselves: see --correlations).
    #[arg(long)]
    pub no_dealer: bool,
    /// Without a dealer, how the two parties generate correlations: by
    /// oblivious transfer or with Paillier. Default: the cost model compiles
    /// both and keeps the cheaper plan (the report says why).
    #[arg(long, value_enum, value_name = "HOW")]
    pub correlations: Option<CorrelationsArg>,
    /// With a dealer, how comparisons (relu, max, argmax, clamp) take the
    /// sign bit. Default: the cost model compiles both and keeps the cheaper
    /// plan for the assumed sizes (--assume), and the report says why. Every
    /// party of a deployment must compile alike.
    #[arg(long, value_enum, value_name = "HOW")]
    pub comparisons: Option<ComparisonsArg>,
    /// Paillier key size in bits (2048 or more).
    #[arg(long, value_name = "BITS", default_value_t = 3072, value_parser = clap::value_parser!(u32).range(2048..=8192))]
    pub key_bits: u32,
    /// Prefer one protocol family for every secret operation it can run
    /// (the cost model still decides the rest).
    #[arg(long, value_enum)]
    pub prefer: Option<Prefer>,
    /// Size assumed for a symbolic dimension in estimates, e.g. `--assume batch=10000`.
    #[arg(long, value_name = "NAME=SIZE", value_parser = parse_assume)]
    pub assume: Vec<(String, u64)>,
}

fn parse_assume(s: &str) -> Result<(String, u64), String> {
    let (name, size) = s
        .split_once('=')
        .ok_or("expected NAME=SIZE, such as batch=1000")?;
    let size: u64 = size
        .trim()
        .parse()
        .map_err(|_| format!("`{size}` is not a positive whole number"))?;
    if size == 0 {
        return Err("a dimension is at least 1".into());
    }
    Ok((name.trim().to_string(), size))
}

impl TargetArgs {
    pub fn options(&self) -> Options {
        let network = match (self.bandwidth, self.latency) {
            (Some(b), Some(l)) => Network::custom(b, l),
            _ => match self.network {
                NetworkProfile::Lan => Network::LAN,
                NetworkProfile::Wan => Network::WAN,
            },
        };
        Options {
            network,
            key_bits: self.key_bits,
            assume: self.assume.iter().cloned().collect::<BTreeMap<_, _>>(),
            use_dealer: !self.no_dealer,
            prefer: self.prefer.map(|p| match p {
                Prefer::Shares => compiler::ir::Protocol::Shares,
                Prefer::Paillier => compiler::ir::Protocol::Paillier,
                Prefer::Rlwe | Prefer::RlweMasked | Prefer::RlwePrepared => {
                    compiler::ir::Protocol::Rlwe
                }
            }),
            rlwe_form: match self.prefer {
                Some(Prefer::RlweMasked) => Some(compiler::choose::RlweForm::Masked),
                Some(Prefer::RlwePrepared) => Some(compiler::choose::RlweForm::Prepared),
                _ => None,
            },
            correlations: self.correlations.map(|c| match c {
                CorrelationsArg::Ot => plan::CorrelationEngine::Ot,
                CorrelationsArg::Paillier => plan::CorrelationEngine::Paillier,
            }),
            dealer_comparisons: self.comparisons.map(|c| match c {
                ComparisonsArg::CarryTree => plan::DealerComparisons::CarryTree,
                ComparisonsArg::Dcf => plan::DealerComparisons::Dcf,
            }),
        }
    }
}

/// Parse, check and compile a file, printing diagnostics. `None` on failure.
pub fn compile_file(path: &Path, target: &TargetArgs) -> Option<compiler::Compiled> {
    compile_file_with(path, &target.options()).map(|(_, c)| c)
}

/// As [`compile_file`], with explicit options; also returns the checked model.
pub fn compile_file_with(
    path: &Path,
    options: &Options,
) -> Option<(compiler::ir::CheckedModel, compiler::Compiled)> {
    let source = match read_source(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return None;
        }
    };
    let name = path.display().to_string();
    let checked = compiler::check_source_with(&source, &|f| crate::data::read_ranges(path, f));
    eprint!("{}", crate::render(&checked.diagnostics, &name, &source));
    let model = checked.model?;
    if let (Some(how), true, Some(_)) = (options.correlations, options.use_dealer, model.dealer()) {
        eprintln!(
            "warning: --correlations {} has no effect: the model's dealer supplies the correlations (add --no-dealer to run without it)",
            how.name().to_lowercase()
        );
    }
    match compiler::compile(&model, options) {
        Ok(c) => {
            eprint!("{}", crate::render(&c.warnings, &name, &source));
            Some((model, c))
        }
        Err(compiler::CompileError::Model(diags)) => {
            eprint!("{}", crate::render(&diags, &name, &source));
            let n = diags.iter().filter(|d| d.is_error()).count();
            eprintln!(
                "error: could not compile `{name}` ({n} error{})",
                if n == 1 { "" } else { "s" }
            );
            None
        }
        Err(compiler::CompileError::Internal(e)) => {
            eprint!("{}", internal_error(&e, &name));
            None
        }
    }
}

/// An internal compiler error as the user sees it: what failed, each cause
/// on its own line, and what to report. Not a diagnostic with a code and a
/// place in the model: the model is not what is wrong.
pub fn internal_error(e: &compiler::InternalError, file: &str) -> String {
    e.render(file)
}

pub fn run(args: &CompileArgs) -> ExitCode {
    let Some(c) = compile_file(&args.file, &args.target) else {
        return ExitCode::FAILURE;
    };
    let text = match args.emit {
        Emit::Plan => c.plan.to_text(),
        Emit::Json => c.plan.to_json() + "\n",
        Emit::Graph => c.graph_text,
        Emit::Dot => c.dot,
        Emit::Report => c.report,
    };
    match &args.output {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(out) => match crate::write_atomically(out, text.as_bytes(), crate::Access::Public) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An internal error prints as a bug report: its cause, and what to
    /// report, and no diagnostic code (E0303 was what it used to borrow).
    #[test]
    fn an_internal_error_prints_its_causes_and_asks_for_a_report() {
        let cause = compiler::Failures(vec!["client, instruction 3: r7 read before written"]);
        let e = compiler::InternalError::with_source("the emitted plan fails validation", cause);
        let text = internal_error(&e, "m.veil");
        assert_eq!(
            text,
            "error: internal compiler error: the emitted plan fails validation\n\
             \x20 caused by: client, instruction 3: r7 read before written\n\
             \x20 = note: this is a bug in Veil; please report it with the model file (`m.veil`)\n"
        );
        assert!(!text.contains("E0"));
    }
}
