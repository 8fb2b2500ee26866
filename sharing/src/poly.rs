//! Polynomial approximations for activation functions: plain `f64` maths,
//! no dependencies, reusable by the compiler.
//!
//! Polynomials are expressed in `t = x / scale` so that, on the domain
//! `[-scale, scale]`, every power `t^k` stays in `[-1, 1]` and keeps its
//! fixed-point precision: `p(x) = Σ_k coeffs[k] t^k`.

use super::error::{Result, SharingError};

/// Minimax-style odd sigmoid fit on [-8, 8], degree 7, in `t = x/8`:
/// `sigmoid(x) ≈ 0.5 + 1.76446 t - 4.38043 t^3 + 5.71378 t^5 - 2.61703 t^7`.
/// Max error on a dense grid: 0.01890 (at x ≈ ±7.35).
pub const SIGMOID_DEG7: [f64; 4] = [1.76446, -4.38043, 5.71378, -2.61703];
/// Measured max error of [`SIGMOID_DEG7`] on [-8, 8].
pub const SIGMOID_DEG7_MAX_ERR: f64 = 0.0189;
/// Degree 9 odd sigmoid fit on [-8, 8] in `t = x/8`.
/// Max error on a dense grid: 0.00877 (at x ≈ ±6.42).
pub const SIGMOID_DEG9: [f64; 5] = [1.87315, -6.15713, 12.89557, -12.94086, 4.83770];
/// Measured max error of [`SIGMOID_DEG9`] on [-8, 8].
pub const SIGMOID_DEG9_MAX_ERR: f64 = 0.00877;
/// Domain half-width of the shipped sigmoid fits.
pub const SIGMOID_SCALE: f64 = 8.0;

/// Full coefficient vector (index = power of `t`) and scale of the shipped
/// sigmoid polynomial of degree 7 or 9.
pub fn sigmoid_poly(degree: usize) -> Result<(Vec<f64>, f64)> {
    let odd: &[f64] = match degree {
        7 => &SIGMOID_DEG7,
        9 => &SIGMOID_DEG9,
        _ => return Err(SharingError::Fit("shipped sigmoid degrees are 7 and 9")),
    };
    Ok((odd_to_full(0.5, odd), SIGMOID_SCALE))
}

/// tanh(x) = 2σ(2x) − 1 from the shipped sigmoid polynomial: coefficients
/// and scale (half the sigmoid's: `Σ 2c_k (2x/s)^k = Σ 2c_k (x/(s/2))^k`,
/// with the constant `2c_0 − 1`).
pub fn tanh_poly(degree: usize) -> Result<(Vec<f64>, f64)> {
    let (coeffs, scale) = sigmoid_poly(degree)?;
    let c = coeffs
        .iter()
        .enumerate()
        .map(|(k, &v)| if k == 0 { 2.0 * v - 1.0 } else { 2.0 * v })
        .collect();
    Ok((c, scale / 2.0))
}

/// `[c0, c1, 0, c3, 0, c5, ...]` from a constant and odd coefficients.
pub fn odd_to_full(c0: f64, odd: &[f64]) -> Vec<f64> {
    let mut v = vec![0.0; 2 * odd.len()];
    v[0] = c0;
    for (i, &c) in odd.iter().enumerate() {
        v[2 * i + 1] = c;
    }
    v
}

/// Evaluates `Σ coeffs[k] (x/scale)^k` (Horner).
pub fn eval(coeffs: &[f64], scale: f64, x: f64) -> f64 {
    let t = x / scale;
    coeffs.iter().rev().fold(0.0, |acc, &c| acc * t + c)
}

/// Maximum of `|p(x) - f(x)|` over `points` evenly spaced points of
/// `[lo, hi]` (endpoints included).
pub fn max_error(
    f: impl Fn(f64) -> f64,
    coeffs: &[f64],
    scale: f64,
    lo: f64,
    hi: f64,
    points: usize,
) -> f64 {
    let n = points.max(2);
    (0..n)
        .map(|i| {
            let x = lo + (hi - lo) * i as f64 / (n - 1) as f64;
            (eval(coeffs, scale, x) - f(x)).abs()
        })
        .fold(0.0, f64::max)
}

/// Which powers a fit may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    /// All powers `0..=degree`.
    All,
    /// Odd powers only, plus a free constant term (e.g. sigmoid - 0.5).
    OddPlusConstant,
    /// Odd powers only (odd functions such as tanh).
    Odd,
    /// Even powers only.
    Even,
}

/// A fitted polynomial.
#[derive(Debug, Clone, PartialEq)]
pub struct PolyFit {
    /// Coefficients by power of `t = x / scale` (length `degree + 1`).
    pub coeffs: Vec<f64>,
    /// `max(|lo|, |hi|)`.
    pub scale: f64,
    /// Max absolute error measured on a dense grid of 100,001 points.
    pub max_error: f64,
}

/// Least-squares fit of `f` on `[lo, hi]` at `4 (degree + 1) + 64` Chebyshev
/// nodes, in the variable `t = x / max(|lo|, |hi|)`, solved by Householder QR.
/// The returned `max_error` is measured on a dense grid, not assumed.
pub fn fit_least_squares(
    f: impl Fn(f64) -> f64,
    lo: f64,
    hi: f64,
    degree: usize,
    parity: Parity,
) -> Result<PolyFit> {
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(SharingError::Fit("domain must be finite with lo < hi"));
    }
    if degree > 40 {
        return Err(SharingError::Fit("degree above 40 is not supported"));
    }
    let scale = lo.abs().max(hi.abs());
    let powers: Vec<usize> = (0..=degree)
        .filter(|&k| match parity {
            Parity::All => true,
            Parity::OddPlusConstant => k == 0 || k % 2 == 1,
            Parity::Odd => k % 2 == 1,
            Parity::Even => k % 2 == 0,
        })
        .collect();
    if powers.is_empty() {
        return Err(SharingError::Fit("no powers to fit"));
    }
    let n = 4 * (degree + 1) + 64;
    let mut a = vec![0.0; n * powers.len()]; // row-major [n, m]
    let mut y = vec![0.0; n];
    let m = powers.len();
    for i in 0..n {
        let theta = std::f64::consts::PI * (i as f64 + 0.5) / n as f64;
        let x = 0.5 * (lo + hi) + 0.5 * (hi - lo) * theta.cos();
        let t = x / scale;
        for (j, &k) in powers.iter().enumerate() {
            a[i * m + j] = t.powi(k as i32);
        }
        y[i] = f(x);
        if !y[i].is_finite() {
            return Err(SharingError::Fit("function is not finite on the domain"));
        }
    }
    let sol = lstsq(&mut a, &mut y, n, m)?;
    let mut coeffs = vec![0.0; degree + 1];
    for (j, &k) in powers.iter().enumerate() {
        coeffs[k] = sol[j];
    }
    let max_error = max_error(&f, &coeffs, scale, lo, hi, 100_001);
    Ok(PolyFit {
        coeffs,
        scale,
        max_error,
    })
}

/// Least squares `min |A x - y|` for row-major `a: [n, m]`, `n >= m`, by
/// Householder QR. Destroys `a` and `y`.
fn lstsq(a: &mut [f64], y: &mut [f64], n: usize, m: usize) -> Result<Vec<f64>> {
    if n < m {
        return Err(SharingError::Fit("fewer nodes than coefficients"));
    }
    for j in 0..m {
        let norm = (j..n).map(|i| a[i * m + j].powi(2)).sum::<f64>().sqrt();
        if norm == 0.0 {
            return Err(SharingError::Fit("singular system"));
        }
        let alpha = if a[j * m + j] > 0.0 { -norm } else { norm };
        let mut v: Vec<f64> = (j..n).map(|i| a[i * m + j]).collect();
        v[0] -= alpha;
        let vnorm2: f64 = v.iter().map(|x| x * x).sum();
        if vnorm2 == 0.0 {
            continue;
        }
        for col in j..m {
            let dot: f64 = (j..n).map(|i| v[i - j] * a[i * m + col]).sum();
            let s = 2.0 * dot / vnorm2;
            for i in j..n {
                a[i * m + col] -= s * v[i - j];
            }
        }
        let dot: f64 = (j..n).map(|i| v[i - j] * y[i]).sum();
        let s = 2.0 * dot / vnorm2;
        for i in j..n {
            y[i] -= s * v[i - j];
        }
    }
    let mut x = vec![0.0; m];
    for j in (0..m).rev() {
        let mut s = y[j];
        for k in j + 1..m {
            s -= a[j * m + k] * x[k];
        }
        let d = a[j * m + j];
        if d.abs() < 1e-300 {
            return Err(SharingError::Fit("singular system"));
        }
        x[j] = s / d;
    }
    Ok(x)
}

/// The logistic function.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_sigmoid_errors_are_true() {
        let (c7, s) = sigmoid_poly(7).unwrap();
        let e7 = max_error(sigmoid, &c7, s, -8.0, 8.0, 160_001);
        assert!((e7 - 0.01890).abs() < 5e-5, "deg 7 error {e7}");
        let (c9, s) = sigmoid_poly(9).unwrap();
        let e9 = max_error(sigmoid, &c9, s, -8.0, 8.0, 160_001);
        assert!((e9 - 0.008767).abs() < 5e-5, "deg 9 error {e9}");
        assert!(e7 <= 0.019 && e9 <= 0.0088);
    }

    #[test]
    fn least_squares_fit_sigmoid() {
        let f7 = fit_least_squares(sigmoid, -8.0, 8.0, 7, Parity::OddPlusConstant).unwrap();
        assert!((f7.coeffs[0] - 0.5).abs() < 1e-9);
        // Least squares is not minimax, but it is close.
        assert!(f7.max_error < 0.03, "{}", f7.max_error);
        let f9 = fit_least_squares(sigmoid, -8.0, 8.0, 9, Parity::OddPlusConstant).unwrap();
        assert!(f9.max_error < f7.max_error);
    }

    #[test]
    fn fit_recovers_polynomial() {
        let p = |x: f64| 1.0 - 2.0 * x + 0.5 * x * x * x;
        let fit = fit_least_squares(p, -2.0, 2.0, 3, Parity::All).unwrap();
        assert!(fit.max_error < 1e-9, "{}", fit.max_error);
        // in t = x/2: 1 - 4 t + 4 t^3
        assert!((fit.coeffs[1] + 4.0).abs() < 1e-9);
        assert!((fit.coeffs[3] - 4.0).abs() < 1e-9);
    }

    #[test]
    fn fit_rejects_bad_input() {
        assert!(fit_least_squares(sigmoid, 1.0, 1.0, 3, Parity::All).is_err());
        assert!(fit_least_squares(sigmoid, f64::NAN, 1.0, 3, Parity::All).is_err());
        assert!(fit_least_squares(sigmoid, -1.0, 1.0, 0, Parity::Odd).is_err());
    }
}
