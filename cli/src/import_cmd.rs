//! `veil import`: an ONNX model to a Veil model file and weight files.
//!
//! The translation is the `onnx` crate's; this command reads the files,
//! checks the generated model with the compiler (a model that does not check
//! is never written), and writes everything at once.

use crate::data;
use crate::{render, write_all_atomically_as, Access};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The ONNX model (`.onnx`). External data files are read from its folder.
    #[arg(value_name = "MODEL.onnx")]
    pub model: PathBuf,
    /// The folder to write `model.veil` and one `.npy` file per weight into
    /// (created if missing).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: PathBuf,
    /// The party that owns the data inputs and receives the outputs.
    #[arg(long, value_name = "NAME", default_value = "client")]
    pub data_owner: String,
    /// The party that owns the weights.
    #[arg(long, value_name = "NAME", default_value = "server")]
    pub model_owner: String,
    /// The dealer's name (the default model has a dealer named `helper`).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "helper",
        conflicts_with = "no_dealer"
    )]
    pub dealer: String,
    /// Import without a dealer: the two parties make their correlations themselves.
    #[arg(long)]
    pub no_dealer: bool,
    /// A sample of a data input (.npy, .csv or .json): its range becomes the
    /// sample's, widened by 10% of its span on each side. Repeatable.
    #[arg(long, value_name = "NAME=FILE", value_parser = crate::run_cmd::parse_binding)]
    pub calibrate: Vec<(String, PathBuf)>,
    /// A data input's range by hand, as NAME=LO:HI. Repeatable.
    #[arg(long, value_name = "NAME=LO:HI", value_parser = parse_range)]
    pub range: Vec<(String, (f64, f64))>,
    /// Fractional bits of the fixed-point encoding. Without it, the highest of
    /// 20, 18, 16, 14 and 12 at which the compiler proves that nothing overflows.
    #[arg(long, value_name = "BITS")]
    pub precision: Option<u32>,
    /// Replace `model.veil` and weight files already in DIR.
    #[arg(long)]
    pub force: bool,
}

fn parse_range(s: &str) -> Result<(String, (f64, f64)), String> {
    let usage = "expected NAME=LO:HI, such as x=-4:4";
    let (name, r) = s.split_once('=').ok_or(usage)?;
    let (lo, hi) = r.split_once(':').ok_or(usage)?;
    let num = |v: &str| {
        v.trim()
            .parse::<f64>()
            .map_err(|_| format!("`{v}` is not a number ({usage})"))
    };
    let (lo, hi) = (num(lo)?, num(hi)?);
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(format!(
            "the range {lo}:{hi} is empty or not finite ({usage})"
        ));
    }
    Ok((name.trim().to_string(), (lo, hi)))
}

pub fn run(args: &ImportArgs) -> ExitCode {
    match import(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn import(args: &ImportArgs) -> Result<(), String> {
    let bytes = std::fs::read(&args.model)
        .map_err(|e| format!("cannot read `{}`: {e}", args.model.display()))?;
    let folder = args
        .model
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut calibration = BTreeMap::new();
    for (name, path) in &args.calibrate {
        let loaded =
            data::load(path, None, None).map_err(|e| format!("--calibrate {name}: {e}"))?;
        calibration.insert(name.clone(), loaded.tensor);
    }
    let opts = onnx::Options {
        data_owner: args.data_owner.clone(),
        model_owner: args.model_owner.clone(),
        dealer: (!args.no_dealer).then(|| args.dealer.clone()),
        ranges: args.range.iter().cloned().collect(),
        calibration,
        precision: args.precision.unwrap_or(onnx::DEFAULT_PRECISION),
        name: None,
        source_name: args
            .model
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default(),
        clamps: BTreeMap::new(),
    };
    let mut external = |location: &str| -> Result<Vec<u8>, String> {
        // Only files inside the model's folder: a model must not make the
        // importer read (and turn into weights) any other file.
        let rel = Path::new(location);
        if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err("the location must be a path inside the model's folder".into());
        }
        std::fs::read(folder.join(rel)).map_err(|e| e.to_string())
    };
    let file = args.output.join("model.veil");
    let name = file.display().to_string();
    let candidates: Vec<u32> = match args.precision {
        Some(p) => vec![p],
        None => onnx::fit::PRECISIONS.to_vec(),
    };
    let fitted = match onnx::fit::import_compiling(&bytes, &mut external, &opts, &candidates) {
        Ok(f) => f,
        Err(onnx::fit::FitError::Import(e)) => {
            return Err(format!("{}: {e}", args.model.display()))
        }
        Err(onnx::fit::FitError::NotChecked {
            diagnostics,
            source,
        }) => {
            eprint!("{}", render(&diagnostics, &name, &source));
            return Err(format!(
                "the model translated from `{}` does not check (a bug in veil import: please report it with the model); nothing was written",
                args.model.display()
            ));
        }
        Err(onnx::fit::FitError::DoesNotCompile {
            diagnostics,
            source,
        }) => {
            eprint!("{}", render(&diagnostics, &name, &source));
            return Err(format!(
                "the model imported from `{}` does not compile{}: narrow the data ranges (--calibrate NAME=FILE or --range NAME=LO:HI){}; nothing was written",
                args.model.display(),
                if args.precision.is_some() { "" } else { " at any precision from 20 down to 12" },
                if args.precision.is_some() { ", or try another --precision" } else { "" },
            ));
        }
        Err(onnx::fit::FitError::Internal(e)) => {
            return Err(format!("{}: {e}", args.model.display()))
        }
    };
    if fitted.clamped > 0 {
        eprintln!(
            "note: the model does not compile with ranges proven from the inputs alone; each of its {} relu activations is clamped at its maximum on the calibration sample, widened by {}% (`clamp(x, 0, hi)`: data beyond that differs from the ONNX model)",
            fitted.clamped,
            onnx::CALIBRATION_MARGIN * 100.0
        );
    }
    if args.precision.is_none() && fitted.precision != onnx::DEFAULT_PRECISION {
        eprintln!(
            "note: precision {} (the highest at which the compiler proves that no value overflows)",
            fitted.precision
        );
    }
    let imported = fitted.imported;
    let mut files: Vec<(PathBuf, Vec<u8>)> =
        vec![(file.clone(), imported.source.clone().into_bytes())];
    for (name, t) in &imported.weights {
        files.push((args.output.join(format!("{name}.npy")), data::to_npy(t)));
    }
    if !args.force {
        let existing: Vec<String> = files
            .iter()
            .filter(|(p, _)| p.exists())
            .map(|(p, _)| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(format!(
                "{} already exist{}: import into an empty folder, or replace them with --force",
                existing.join(", "),
                if existing.len() == 1 { "s" } else { "" }
            ));
        }
    }
    std::fs::create_dir_all(&args.output)
        .map_err(|e| format!("cannot create `{}`: {e}", args.output.display()))?;
    // The weights are the model owner's secrets: owner-only files.
    write_all_atomically_as(&files, Access::Private)?;
    for w in &imported.warnings {
        eprintln!("warning: {w}");
    }
    let dir = args.output.display();
    eprintln!(
        "imported `{}`: {} and {} weight file{} written to {dir}",
        args.model.display(),
        file.display(),
        imported.weights.len(),
        if imported.weights.len() == 1 { "" } else { "s" }
    );
    let data_flags: Vec<String> = imported
        .data_inputs
        .iter()
        .map(|d| format!("-i {}=<{}.npy>", d.name, d.name))
        .collect();
    println!(
        "Run it in one process (the data owner's files bound with -i, the weights from {dir}):"
    );
    println!(
        "  veil run {} --inputs {dir} {} -o out/",
        file.display(),
        data_flags.join(" ")
    );
    println!("Run it as separate parties (see `veil party --help` and `veil certs --help` for parties.toml):");
    println!(
        "  veil party {} --as {} --config parties.toml --inputs {dir}",
        file.display(),
        args.model_owner
    );
    println!(
        "  veil party {} --as {} --config parties.toml {} -o out/",
        file.display(),
        args.data_owner,
        data_flags.join(" ")
    );
    if !args.no_dealer {
        println!(
            "  veil party {} --as {} --config parties.toml",
            file.display(),
            args.dealer
        );
    }
    Ok(())
}
