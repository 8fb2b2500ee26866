//! `--plan FILE` for `veil run` and `veil party`: a plan written by `veil
//! compile --emit json`, read and checked instead of compiling a model.

use plan::{LoadError, Plan};
use runtime::paillier::jwk::MAX_KEY_BITS;
use std::path::Path;

/// The compile flags that make no sense with `--plan` (the plan was
/// compiled already): clap refuses them together.
pub const COMPILE_FLAGS: [&str; 8] = [
    "network",
    "bandwidth",
    "latency",
    "no_dealer",
    "correlations",
    "key_bits",
    "prefer",
    "assume",
];

/// Read, parse and check a plan file: its format version, its structure
/// (with line and column), [`plan::validate`] and its key sizes. The errors
/// name the file and say what to do.
pub fn load(path: &Path) -> Result<Plan, String> {
    let text = crate::read_source(path)?;
    let plan = Plan::load_json(&text).map_err(|e| match e {
        LoadError::Syntax {
            line,
            column,
            message,
        } => format!(
            "{}:{line}:{column}: {message} (a plan file is what `veil compile MODEL --emit json` writes)",
            path.display()
        ),
        other => format!("{}: {other}", path.display()),
    })?;
    if let Some(k) = plan
        .keys
        .iter()
        .find(|k| u64::from(k.min_bits) > MAX_KEY_BITS)
    {
        return Err(format!(
            "{}: the plan asks for Paillier keys of {} bits; at most {MAX_KEY_BITS} are supported",
            path.display(),
            k.min_bits
        ));
    }
    Ok(plan)
}
