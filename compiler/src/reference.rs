//! The plaintext reference interpreter: evaluates a checked model exactly in
//! f64 (sigmoid and tanh exact, no fixed point, no cryptography). Every
//! private run is compared against it.

use crate::ir::*;
use plan::Tensor;
use std::collections::BTreeMap;

/// Evaluate every output of `model` on `inputs` (by input name).
pub fn evaluate(
    model: &CheckedModel,
    inputs: &BTreeMap<String, Tensor>,
) -> Result<Vec<(String, Tensor)>, String> {
    let mut values: Vec<Option<Tensor>> = vec![None; model.values().len()];
    for (i, v) in model.values().iter().enumerate() {
        let get = |id: &ValueId| values[id.index()].as_ref().expect("operands come first");
        let t = match &v.op {
            Op::Input { .. } => {
                let name = v.name.as_deref().unwrap_or_default();
                inputs
                    .get(name)
                    .cloned()
                    .ok_or_else(|| format!("missing input `{name}`"))?
            }
            Op::Const { data } => {
                let shape: Vec<usize> = v
                    .shape
                    .0
                    .iter()
                    .map(|d| match d {
                        Dim::Known(n) => *n as usize,
                        Dim::Symbol(_) => 1,
                    })
                    .collect();
                Tensor::new(shape, data.clone())?
            }
            op => {
                let args: Vec<&Tensor> = op.operands().iter().map(get).collect();
                crate::lower::clear_op(op).apply(&args)?
            }
        };
        values[i] = Some(t);
    }
    Ok(model
        .outputs()
        .iter()
        .map(|o| {
            (
                o.name.clone(),
                values[o.value.index()].clone().expect("evaluated"),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &str, inputs: &[(&str, Vec<usize>, Vec<f64>)]) -> Vec<(String, Tensor)> {
        let m = crate::check_source(src).model.expect("valid model");
        let inputs = inputs
            .iter()
            .map(|(n, s, d)| (n.to_string(), Tensor::new(s.clone(), d.clone()).unwrap()))
            .collect();
        evaluate(&m, &inputs).unwrap()
    }

    #[test]
    fn linear_algebra_and_broadcasting() {
        let out = run(
            "model m { party a; party b; input x: fixed[n, 2] private(a); input w: fixed[2, 3] private(b);
               input c: fixed[3] private(b); let y = x @ w + c; let s = sum(y) * 2; output y to a; output s to a; }",
            &[("x", vec![2, 2], vec![1., 2., 3., 4.]), ("w", vec![2, 3], vec![1., 0., 1., 0., 1., 1.]), ("c", vec![3], vec![10., 20., 30.])],
        );
        assert_eq!(out[0].1.shape, vec![2, 3]);
        assert_eq!(out[0].1.data, vec![11., 22., 33., 13., 24., 37.]);
        assert_eq!(out[1].1.data, vec![132., 148.]);
    }

    #[test]
    fn nonlinear_functions_are_exact() {
        let out = run(
            "model m { party a; party b; input x: fixed[3] private(a); let p = sigmoid(x); let t = tanh(x);
               let q = poly(x, [1, 2, 3]); let r = relu(x); let k = argmax(x); let c = clamp(x, -1, 1);
               output p to a; output t to a; output q to a; output r to a; output k to a; output c to b; }",
            &[("x", vec![3], vec![-2.0, 0.0, 3.0])],
        );
        assert!((out[0].1.data[0] - 0.11920292202211755).abs() < 1e-15);
        assert!((out[1].1.data[2] - 3f64.tanh()).abs() < 1e-15);
        assert_eq!(out[2].1.data, vec![9.0, 1.0, 34.0]);
        assert_eq!(out[3].1.data, vec![0.0, 0.0, 3.0]);
        assert_eq!(out[4].1.data, vec![2.0]);
        assert_eq!(out[5].1.data, vec![-1.0, 0.0, 1.0]);
    }
}
