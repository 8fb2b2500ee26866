//! The plaintext reference interpreter: evaluates a checked model exactly in
//! f64 (sigmoid and tanh exact, no fixed point, no cryptography). Every
//! private run is compared against it.

use crate::ir::*;
use plan::Tensor;
use std::collections::BTreeMap;

/// Evaluate every output of `model` on `inputs` (by input name).
pub fn evaluate(model: &CheckedModel, inputs: &BTreeMap<String, Tensor>) -> Result<Vec<(String, Tensor)>, String> {
    let mut values: Vec<Option<Tensor>> = vec![None; model.values.len()];
    for (i, v) in model.values.iter().enumerate() {
        let get = |id: &ValueId| values[id.index()].as_ref().expect("operands come first");
        let t = match &v.op {
            Op::Input { .. } => {
                let name = v.name.as_deref().unwrap_or_default();
                inputs.get(name).cloned().ok_or_else(|| format!("missing input `{name}`"))?
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
            Op::Neg(a) => map(get(a), |x| -x),
            Op::Add(a, b) => zip(get(a), get(b), |x, y| x + y),
            Op::Sub(a, b) => zip(get(a), get(b), |x, y| x - y),
            Op::Mul(a, b) => zip(get(a), get(b), |x, y| x * y),
            Op::Max(a, b) => zip(get(a), get(b), f64::max),
            Op::Min(a, b) => zip(get(a), get(b), f64::min),
            Op::MatMul(a, b) => matmul(get(a), get(b)),
            Op::Sum(a) => reduce(get(a), |row| row.iter().sum()),
            Op::Mean(a) => reduce(get(a), |row| row.iter().sum::<f64>() / row.len() as f64),
            Op::MaxReduce(a) => reduce(get(a), |row| row.iter().cloned().fold(f64::NEG_INFINITY, f64::max)),
            Op::Argmax(a) => reduce(get(a), |row| {
                let mut best = 0;
                for (j, x) in row.iter().enumerate() {
                    if *x > row[best] {
                        best = j;
                    }
                }
                best as f64
            }),
            Op::Square(a) => map(get(a), |x| x * x),
            Op::Sigmoid(a, _) => map(get(a), |x| 1.0 / (1.0 + (-x).exp())),
            Op::Tanh(a, _) => map(get(a), f64::tanh),
            Op::Poly(a, c) => map(get(a), |x| c.iter().rev().fold(0.0, |acc, k| acc * x + k)),
            Op::Relu(a) => map(get(a), |x| x.max(0.0)),
            Op::Clamp(a, lo, hi) => map(get(a), |x| x.clamp(*lo, *hi)),
        };
        values[i] = Some(t);
    }
    Ok(model
        .outputs
        .iter()
        .map(|o| (o.name.clone(), values[o.value.index()].clone().expect("evaluated")))
        .collect())
}

fn map(a: &Tensor, f: impl Fn(f64) -> f64) -> Tensor {
    Tensor {
        shape: a.shape.clone(),
        data: a.data.iter().map(|x| f(*x)).collect(),
    }
}

/// Elementwise with suffix broadcasting (the checker guarantees the shorter
/// shape is a suffix of the longer).
fn zip(a: &Tensor, b: &Tensor, f: impl Fn(f64, f64) -> f64) -> Tensor {
    let (n, shape) = if a.len() >= b.len() { (a.len(), a.shape.clone()) } else { (b.len(), b.shape.clone()) };
    let data = (0..n).map(|i| f(a.data[i % a.len()], b.data[i % b.len()])).collect();
    Tensor { shape, data }
}

fn matmul(a: &Tensor, b: &Tensor) -> Tensor {
    let (m, k) = match a.shape.as_slice() {
        [k] => (1, *k),
        [m, k] => (*m, *k),
        _ => unreachable!("checked ranks"),
    };
    let n = match b.shape.as_slice() {
        [_] => 1,
        [_, n] => *n,
        _ => unreachable!("checked ranks"),
    };
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|l| a.data[i * k + l] * b.data[l * n + j]).sum();
        }
    }
    let mut shape = a.shape[..a.shape.len() - 1].to_vec();
    shape.extend_from_slice(&b.shape[1..]);
    Tensor { shape, data: out }
}

fn reduce(a: &Tensor, f: impl Fn(&[f64]) -> f64) -> Tensor {
    let k = *a.shape.last().expect("checked: not a scalar");
    Tensor {
        shape: a.shape[..a.shape.len() - 1].to_vec(),
        data: a.data.chunks(k.max(1)).map(f).collect(),
    }
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
