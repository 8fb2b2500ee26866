//! Plain tensors of reals: how inputs and outputs cross the boundary between
//! the command line, the reference interpreter and the runtime.

use crate::{Dim, InputSpec, Owner, Plan, Shape};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    pub shape: Vec<usize>,
    /// Row-major.
    pub data: Vec<f64>,
}

impl fmt::Debug for Tensor {
    // Tensors may hold private inputs: never print their values in debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor{:?}", self.shape)
    }
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f64>) -> Result<Tensor, String> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(format!("shape {shape:?} needs {n} values, found {}", data.len()));
        }
        Ok(Tensor { shape, data })
    }

    pub fn scalar(v: f64) -> Tensor {
        Tensor {
            shape: vec![],
            data: vec![v],
        }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Why an input was rejected; always names the input, never its values.
#[derive(Clone, Debug, PartialEq)]
pub struct InputError {
    pub input: String,
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "input `{}`: {}", self.input, self.message)
    }
}

/// Check `given` against the plan's inputs that `party` supplies (every
/// input, for `None`): every one present, shapes agreeing (binding symbolic
/// dimensions such as `batch` consistently), values finite and inside the
/// declared range. Returns the bound dimensions.
pub fn bind_inputs(plan: &Plan, party: Option<u32>, given: &BTreeMap<String, Tensor>) -> Result<BTreeMap<String, usize>, Vec<InputError>> {
    let mut dims: BTreeMap<String, usize> = BTreeMap::new();
    let mut errors = Vec::new();
    let wanted: Vec<&InputSpec> = plan
        .inputs
        .iter()
        .filter(|i| match (party, i.owner) {
            (None, _) | (_, Owner::Public) => true,
            (Some(p), Owner::Party(q)) => p == q,
        })
        .collect();
    for name in given.keys() {
        if !wanted.iter().any(|i| &i.name == name) {
            let known: Vec<&str> = wanted.iter().map(|i| i.name.as_str()).collect();
            let owner = plan.inputs.iter().find(|i| &i.name == name).map(|i| i.owner);
            let message = match owner {
                Some(Owner::Party(q)) => format!("belongs to {}, not to this party", plan.party_name(q)),
                _ => format!("the model has no such input (its inputs here: {})", known.join(", ")),
            };
            errors.push(InputError { input: name.clone(), message });
        }
    }
    for spec in wanted {
        let Some(t) = given.get(&spec.name) else {
            errors.push(InputError {
                input: spec.name.clone(),
                message: format!("missing: the model declares `input {}: fixed{}`; give it with --input {}=FILE", spec.name, spec.shape, spec.name),
            });
            continue;
        };
        if let Err(m) = bind_shape(&spec.shape, &t.shape, &mut dims) {
            errors.push(InputError { input: spec.name.clone(), message: m });
            continue;
        }
        if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
            errors.push(InputError {
                input: spec.name.clone(),
                message: format!("value #{i} is not a finite number (NaN or infinity)"),
            });
            continue;
        }
        if let Some((lo, hi)) = spec.range {
            if let Some(i) = t.data.iter().position(|v| *v < lo || *v > hi) {
                errors.push(InputError {
                    input: spec.name.clone(),
                    message: format!("value #{i} lies outside the declared range [{lo}, {hi}]"),
                });
            }
        }
    }
    if errors.is_empty() {
        Ok(dims)
    } else {
        Err(errors)
    }
}

fn bind_shape(spec: &Shape, got: &[usize], dims: &mut BTreeMap<String, usize>) -> Result<(), String> {
    if spec.0.len() != got.len() {
        return Err(format!("expected shape {spec} ({} dimensions), the data has shape {got:?}", spec.0.len()));
    }
    for (d, &n) in spec.0.iter().zip(got) {
        match d {
            Dim::Known(k) if *k as usize != n => return Err(format!("expected shape {spec}, the data has shape {got:?}")),
            Dim::Known(_) => {}
            Dim::Symbol(s) => match dims.get(s) {
                Some(&m) if m != n => {
                    return Err(format!("dimension `{s}` is {n} here but {m} in an earlier input"));
                }
                _ => {
                    if n == 0 {
                        return Err(format!("dimension `{s}` is 0: there is no data"));
                    }
                    dims.insert(s.clone(), n);
                }
            },
        }
    }
    Ok(())
}

/// A shape with its symbolic dimensions bound.
pub fn concrete(shape: &Shape, dims: &BTreeMap<String, usize>) -> Option<Vec<usize>> {
    shape
        .0
        .iter()
        .map(|d| match d {
            Dim::Known(n) => Some(*n as usize),
            Dim::Symbol(s) => dims.get(s).copied(),
        })
        .collect()
}
