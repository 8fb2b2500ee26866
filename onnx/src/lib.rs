//! ONNX import: translates an ONNX model into a Veil model file's source and
//! the model owner's weight tensors.
//!
//! Pure translation, no I/O: the caller hands over the model's bytes and a
//! function that reads external data files, and writes the results itself
//! (`veil import` in `cli`). The reader is prost with `proto.rs` generated
//! once from ONNX's `onnx-ml.proto` (see `codegen/`), so the build needs no
//! protoc.
//!
//! What the translation does, in order:
//! - decodes every constant (initializers, `Constant` nodes) and folds all
//!   arithmetic on constants, including shape arithmetic (`Shape`, `Gather`,
//!   `Concat`, `Cast`, ...), at import;
//! - folds whatever the model owner holds in the clear into the neighbouring
//!   linear operation: `Gemm`'s transposes, alpha and beta, a following bias,
//!   `BatchNormalization` into the preceding `Conv` or `Gemm`, and a `Scaler`
//!   (or `Sub`/`Div` by constants) into the first layer;
//! - tracks every value's shape with the data's first dimension as `batch`,
//!   so that reshapes are only emitted where Veil's shape differs;
//! - refuses, with the node, op and opset named, anything it cannot translate
//!   exactly. It never emits an approximate translation.

#[allow(clippy::all, clippy::pedantic)]
#[rustfmt::skip]
mod proto;
pub mod fit;
mod tensor;
mod translate;

pub use tensor::{outward, Const};
pub use translate::{SUPPORTED_ML_OPS, SUPPORTED_OPS};

use std::collections::BTreeMap;
use std::fmt;

/// Who is who in the imported model, and how data ranges are set.
#[derive(Clone, Debug)]
pub struct Options {
    /// The party that owns the data inputs and receives the outputs.
    pub data_owner: String,
    /// The party that owns the weights.
    pub model_owner: String,
    /// The dealer, if the model has one.
    pub dealer: Option<String>,
    /// Ranges set by hand for data inputs (by ONNX name or Veil name).
    pub ranges: BTreeMap<String, (f64, f64)>,
    /// Sample inputs (by ONNX name or Veil name): each data input's range is
    /// the sample's, widened by [`CALIBRATION_MARGIN`] of its span on each side.
    pub calibration: BTreeMap<String, plan::Tensor>,
    /// Fractional bits of the fixed-point encoding.
    pub precision: u32,
    /// The model's name, when the ONNX graph's should not be used.
    pub name: Option<String>,
    /// The file name, for the header comment.
    pub source_name: String,
    /// `relu` activations (by their name in the model file, as
    /// [`Imported::activations`] lists them) to compute as
    /// `clamp(x, 0, hi)`: their range then restarts at `[0, hi]`, which is
    /// what keeps the proven ranges of deep networks finite.
    pub clamps: BTreeMap<String, f64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            data_owner: "client".into(),
            model_owner: "server".into(),
            dealer: Some("helper".into()),
            ranges: BTreeMap::new(),
            calibration: BTreeMap::new(),
            precision: DEFAULT_PRECISION,
            name: None,
            source_name: "model.onnx".into(),
            clamps: BTreeMap::new(),
        }
    }
}

/// The default fixed-point precision of imported models: 20 fractional bits,
/// so that weights folded with a scaler (often of magnitude 10^-3) keep three
/// significant digits.
pub const DEFAULT_PRECISION: u32 = 20;
/// The range of a data input without `--range` or `--calibrate`.
pub const DEFAULT_RANGE: (f64, f64) = (-8.0, 8.0);
/// How far a calibrated range extends beyond the sample's: this fraction of
/// the sample's span on each side.
pub const CALIBRATION_MARGIN: f64 = 0.1;

/// An imported model.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The Veil model file's text.
    pub source: String,
    /// The model owner's inputs, by their name in the model file.
    pub weights: Vec<(String, plan::Tensor)>,
    /// The data inputs: Veil name, ONNX name, shape (first dimension the
    /// batch), and the range declared.
    pub data_inputs: Vec<DataInput>,
    /// The outputs: Veil name and ONNX name.
    pub outputs: Vec<(String, String)>,
    /// Things the user should know (a default range used, an output dropped).
    pub warnings: Vec<String>,
    /// The names of the `relu` activations in the model file (see
    /// [`Options::clamps`]).
    pub activations: Vec<String>,
}

impl Imported {
    /// The same model at another fixed-point precision (the translation
    /// does not depend on it: only the model file's `precision` line).
    pub fn at_precision(&self, from: u32, to: u32) -> Imported {
        let line = |p: u32| format!("\n    precision {p};\n");
        Imported {
            source: self.source.replacen(&line(from), &line(to), 1),
            ..self.clone()
        }
    }
}

#[derive(Clone, Debug)]
pub struct DataInput {
    pub name: String,
    pub onnx_name: String,
    pub dims: Vec<usize>,
    pub range: (f64, f64),
    pub how: RangeSource,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RangeSource {
    Given,
    Calibrated,
    Default,
}

/// Why a model could not be imported.
#[derive(Clone, Debug, PartialEq)]
pub enum ImportError {
    /// The bytes are not an ONNX model.
    Decode(String),
    /// A tensor's data is unusable.
    Tensor { name: String, message: String },
    /// An op Veil does not translate (or not with these attributes).
    Unsupported {
        op: String,
        node: String,
        opset: i64,
        reason: String,
    },
    /// The model is malformed or uses a construct Veil cannot express.
    Invalid { node: String, message: String },
    /// The options do not fit the model (a range for an unknown input, ...).
    Options(String),
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::Decode(m) => write!(f, "not a readable ONNX model: {m}"),
            ImportError::Tensor { name, message } => write!(f, "tensor `{name}`: {message}"),
            ImportError::Unsupported { op, node, opset, reason } => write!(
                f,
                "node `{node}`: {op} (opset {opset}) {reason}\n  supported ops: {}\n  supported ai.onnx.ml ops: {}",
                SUPPORTED_OPS.join(", "),
                SUPPORTED_ML_OPS.join(", ")
            ),
            ImportError::Invalid { node, message } => write!(f, "node `{node}`: {message}"),
            ImportError::Options(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for ImportError {}

/// Imports a model from its bytes. `external` reads an external data file
/// named by a tensor (a path relative to the model's folder).
pub fn import(
    bytes: &[u8],
    external: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>,
    opts: &Options,
) -> Result<Imported, ImportError> {
    use prost::Message;
    let model = proto::ModelProto::decode(bytes).map_err(|e| ImportError::Decode(e.to_string()))?;
    translate::translate(&model, external, opts)
}

/// Makes an ONNX name a Veil identifier: every character outside
/// `[A-Za-z0-9_]` becomes `_`, and a leading digit (or an empty name) gets a
/// `_` in front.
pub fn identifier(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn identifiers() {
        assert_eq!(super::identifier("input.1"), "input_1");
        assert_eq!(super::identifier("0"), "_0");
        assert_eq!(super::identifier("x"), "x");
        assert_eq!(super::identifier(""), "_");
    }
}
