//! An import that compiles: the highest precision at which the compiler
//! proves that nothing overflows, and, for deep networks whose proven
//! ranges overflow at every precision, relu activations clamped at their
//! calibrated maxima. What `veil import` and `veil.import_onnx` both run.

use std::collections::BTreeMap;

use grammar::Diagnostic;

use crate::{import, ImportError, Imported, Options, CALIBRATION_MARGIN};

/// The precisions tried, best first, when none is asked for.
pub const PRECISIONS: [u32; 5] = [20, 18, 16, 14, 12];
/// Rows of the calibration sample the plaintext probe of activations reads.
pub const PROBE_ROWS: usize = 256;

/// A model that compiles.
#[derive(Clone, Debug)]
pub struct Fitted {
    pub imported: Imported,
    /// The precision chosen.
    pub precision: u32,
    /// How many relu activations are clamped at calibrated maxima (0: none).
    pub clamped: usize,
}

/// Why no model that compiles came out.
#[derive(Clone, Debug)]
pub enum FitError {
    Import(ImportError),
    /// The translation does not check: a bug of the importer.
    NotChecked {
        diagnostics: Vec<Diagnostic>,
        source: String,
    },
    /// It does not compile at any precision tried: the diagnostics and
    /// source at the first.
    DoesNotCompile {
        diagnostics: Vec<Diagnostic>,
        source: String,
    },
    /// The compiler failed, or the calibration sample did not run.
    Internal(String),
}

impl From<ImportError> for FitError {
    fn from(e: ImportError) -> Self {
        FitError::Import(e)
    }
}

/// Imports at the highest of `precisions` at which the model compiles
/// (with `compiler::Options::default()`), clamping activations if that is
/// what it takes and `opts` has a calibration sample.
pub fn import_compiling(
    bytes: &[u8],
    external: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>,
    opts: &Options,
    precisions: &[u32],
) -> Result<Fitted, FitError> {
    let mut opts = opts.clone();
    opts.precision = precisions.first().copied().unwrap_or(opts.precision);
    let outcome = attempt(bytes, external, &opts, precisions)?;
    let first = match outcome {
        Ok((imported, precision)) => {
            return Ok(Fitted {
                imported,
                precision,
                clamped: 0,
            })
        }
        Err(first) => first,
    };
    if !opts.calibration.is_empty() {
        let maxima = activation_maxima(&first.1, &opts)?;
        if !maxima.is_empty() {
            let clamped = maxima.len();
            opts.clamps = maxima;
            if let Ok((imported, precision)) = attempt(bytes, external, &opts, precisions)? {
                return Ok(Fitted {
                    imported,
                    precision,
                    clamped,
                });
            }
        }
    }
    Err(FitError::DoesNotCompile {
        diagnostics: first.0,
        source: first.1.source,
    })
}

type Attempt = Result<(Imported, u32), (Vec<Diagnostic>, Imported)>;

fn attempt(
    bytes: &[u8],
    external: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>,
    opts: &Options,
    precisions: &[u32],
) -> Result<Attempt, FitError> {
    let translated = import(bytes, external, opts)?;
    let mut first_failure = None;
    for &p in precisions {
        let imported = translated.at_precision(opts.precision, p);
        let checked = compiler::check_source(&imported.source);
        let Some(model) = checked.model.as_ref().filter(|_| !checked.has_errors()) else {
            return Err(FitError::NotChecked {
                diagnostics: checked.diagnostics,
                source: imported.source,
            });
        };
        let diagnostics = compiler::analyse(model, &compiler::Options::default())
            .map_err(|e| FitError::Internal(e.to_string()))?;
        if diagnostics.iter().any(|d| d.is_error()) {
            first_failure.get_or_insert((diagnostics, imported));
            continue;
        }
        return Ok(Ok((imported, p)));
    }
    Ok(Err(first_failure.expect("at least one precision was tried")))
}

/// Each relu activation's largest value on (the first [`PROBE_ROWS`] rows
/// of) the calibration sample, by the plaintext reference interpreter on the
/// imported model with the weights bound, widened by
/// [`CALIBRATION_MARGIN`] and rounded outward.
fn activation_maxima(
    imported: &Imported,
    opts: &Options,
) -> Result<BTreeMap<String, f64>, FitError> {
    let source = &imported.source;
    // The same model with every activation an output.
    let end = source
        .rfind('}')
        .ok_or_else(|| FitError::Internal("no closing brace".into()))?;
    let mut probe = source[..end].to_string();
    for a in &imported.activations {
        if !source.contains(&format!("output {a} to ")) {
            probe.push_str(&format!("    output {a} to {};\n", opts.data_owner));
        }
    }
    probe.push_str("}\n");
    let checked = compiler::check_source(&probe);
    let model = checked
        .model
        .filter(|_| checked.diagnostics.iter().all(|d| !d.is_error()));
    let model =
        model.ok_or_else(|| FitError::Internal("the activation probe does not check".into()))?;
    let mut inputs: BTreeMap<String, plan::Tensor> = imported.weights.iter().cloned().collect();
    for d in &imported.data_inputs {
        let Some(t) = opts
            .calibration
            .get(&d.onnx_name)
            .or_else(|| opts.calibration.get(&d.name))
        else {
            return Ok(BTreeMap::new());
        };
        let per_row: usize = d.dims[1..].iter().product();
        let rows = (t.data.len() / per_row.max(1)).min(PROBE_ROWS);
        let mut shape = d.dims.clone();
        shape[0] = rows;
        let data = t.data[..rows * per_row].to_vec();
        inputs.insert(d.name.clone(), plan::Tensor { shape, data });
    }
    let outputs = compiler::reference::evaluate(&model, &inputs).map_err(|e| {
        FitError::Internal(format!(
            "the calibration sample does not run through the model: {e}"
        ))
    })?;
    let mut maxima = BTreeMap::new();
    for (name, t) in outputs {
        if imported.activations.contains(&name) {
            let hi = t.data.iter().copied().fold(0.0, f64::max);
            let (_, hi) = crate::outward(0.0, hi * (1.0 + CALIBRATION_MARGIN).max(1e-3));
            maxima.insert(name, hi);
        }
    }
    Ok(maxima)
}
