//! Polynomial approximations of sigmoid and tanh, fitted here and shipped to
//! the runtime as plain coefficients in the plan.
//!
//! A fit works in the scaled variable t = x / L, L = the domain's half-width,
//! so that powers of t stay in [-1, 1] and fixed-point precision survives.
//! Sigmoid is fitted as 0.5 + Σ c_k t^k and tanh as Σ c_k t^k over odd k
//! (both are odd around their centre). The error is measured on a dense grid
//! (not assumed).

/// Default approximation tolerance when a model gives no `tol:`.
pub const DEFAULT_TOL: f64 = 0.01;
/// Default domains when a model gives no `domain:`.
pub const SIGMOID_DOMAIN: (f64, f64) = (-8.0, 8.0);
pub const TANH_DOMAIN: (f64, f64) = (-4.0, 4.0);
/// Highest degree the compiler picks on its own.
pub const MAX_AUTO_DEGREE: u32 = 15;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    Sigmoid,
    Tanh,
}

impl Func {
    pub fn eval(self, x: f64) -> f64 {
        match self {
            Func::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Func::Tanh => x.tanh(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Func::Sigmoid => "sigmoid",
            Func::Tanh => "tanh",
        }
    }

    pub fn default_domain(self) -> (f64, f64) {
        match self {
            Func::Sigmoid => SIGMOID_DOMAIN,
            Func::Tanh => TANH_DOMAIN,
        }
    }

    /// The value the polynomial adds as constant term (the centre).
    pub fn offset(self) -> f64 {
        match self {
            Func::Sigmoid => 0.5,
            Func::Tanh => 0.0,
        }
    }
}

/// A fitted polynomial: f(x) ≈ offset + Σ odd[i] · (x / scale)^(2i+1).
#[derive(Clone, Debug, PartialEq)]
pub struct Fit {
    pub func: Func,
    pub degree: u32,
    pub domain: (f64, f64),
    /// L: the polynomial is in t = x / L.
    pub scale: f64,
    pub offset: f64,
    /// Coefficients of t^1, t^3, t^5, ...
    pub odd: Vec<f64>,
    /// Max |f(x) - p(x)| over the domain, measured on a dense grid.
    pub max_error: f64,
    /// Max |p'(x)| over the domain (how input error propagates).
    pub lipschitz: f64,
}

impl Fit {
    pub fn eval(&self, x: f64) -> f64 {
        let t = x / self.scale;
        let t2 = t * t;
        let mut acc = 0.0;
        for c in self.odd.iter().rev() {
            acc = acc * t2 + c;
        }
        self.offset + acc * t
    }

    /// All coefficients of the polynomial in t, from t^0 up.
    pub fn coefficients(&self) -> Vec<f64> {
        let mut c = vec![0.0; self.degree as usize + 1];
        c[0] = self.offset;
        for (i, v) in self.odd.iter().enumerate() {
            c[2 * i + 1] = *v;
        }
        c
    }
}

/// The published minimax sigmoid fits on [-8, 8] in t = x/8.
pub fn published_sigmoid(degree: u32) -> Option<Vec<f64>> {
    match degree {
        7 => Some(vec![1.76446, -4.38043, 5.71378, -2.61703]),
        9 => Some(vec![1.87315, -6.15713, 12.89557, -12.94086, 4.83770]),
        _ => None,
    }
}

/// Fit `func` on `domain` (symmetric about 0 is assumed for the odd basis;
/// an asymmetric domain is widened to its symmetric hull) with odd `degree`.
pub fn fit(func: Func, degree: u32, domain: (f64, f64)) -> Fit {
    let scale = domain.0.abs().max(domain.1.abs()).max(f64::MIN_POSITIVE);
    let terms = degree.div_ceil(2) as usize;
    let odd =
        if func == Func::Sigmoid && domain == SIGMOID_DOMAIN && published_sigmoid(degree).is_some()
        {
            published_sigmoid(degree).expect("checked")
        } else {
            least_squares(func, terms, scale)
        };
    let mut fit = Fit {
        func,
        degree,
        domain: (-scale, scale),
        scale,
        offset: func.offset(),
        odd,
        max_error: 0.0,
        lipschitz: 0.0,
    };
    let (err, lip) = measure(&fit);
    fit.max_error = err;
    fit.lipschitz = lip;
    fit
}

/// The lowest odd degree (up to `MAX_AUTO_DEGREE`) whose error on `domain` is
/// at most `tol`, or the best fit found with its error if none is.
pub fn choose(func: Func, domain: (f64, f64), tol: f64) -> Result<Fit, Fit> {
    let mut best: Option<Fit> = None;
    for degree in (1..=MAX_AUTO_DEGREE).step_by(2) {
        let f = fit(func, degree, domain);
        if f.max_error <= tol {
            return Ok(f);
        }
        if best.as_ref().is_none_or(|b| f.max_error < b.max_error) {
            best = Some(f);
        }
    }
    Err(best.expect("at least one degree tried"))
}

const GRID: usize = 4001;

fn measure(fit: &Fit) -> (f64, f64) {
    let (lo, hi) = fit.domain;
    let mut err: f64 = 0.0;
    let mut lip: f64 = 0.0;
    let h = (hi - lo) / (GRID - 1) as f64;
    let mut prev = fit.eval(lo);
    for i in 0..GRID {
        let x = lo + h * i as f64;
        let p = fit.eval(x);
        err = err.max((fit.func.eval(x) - p).abs());
        if i > 0 {
            lip = lip.max(((p - prev) / h).abs());
        }
        prev = p;
    }
    (err, lip)
}

/// Least squares on Chebyshev nodes in t ∈ [-1, 1], odd monomial basis,
/// solved by Householder QR.
#[allow(clippy::needless_range_loop)] // column-wise updates of a row-major matrix read clearest with indices
fn least_squares(func: Func, terms: usize, scale: f64) -> Vec<f64> {
    let nodes = 400;
    let rows: Vec<(Vec<f64>, f64)> = (0..nodes)
        .map(|i| {
            let t = ((2 * i + 1) as f64 * std::f64::consts::PI / (2 * nodes) as f64).cos();
            let basis: Vec<f64> = (0..terms).map(|k| t.powi(2 * k as i32 + 1)).collect();
            (basis, func.eval(t * scale) - func.offset())
        })
        .collect();
    let mut a: Vec<Vec<f64>> = rows.iter().map(|r| r.0.clone()).collect();
    let mut b: Vec<f64> = rows.iter().map(|r| r.1).collect();
    let (m, n) = (a.len(), terms);
    for k in 0..n {
        let norm = (k..m).map(|i| a[i][k] * a[i][k]).sum::<f64>().sqrt();
        if norm == 0.0 {
            continue;
        }
        let alpha = if a[k][k] > 0.0 { -norm } else { norm };
        let mut v: Vec<f64> = (k..m).map(|i| a[i][k]).collect();
        v[0] -= alpha;
        let vnorm2: f64 = v.iter().map(|x| x * x).sum();
        if vnorm2 == 0.0 {
            continue;
        }
        for j in k..n {
            let dot: f64 = (k..m).map(|i| v[i - k] * a[i][j]).sum();
            let f = 2.0 * dot / vnorm2;
            for i in k..m {
                a[i][j] -= f * v[i - k];
            }
        }
        let dot: f64 = (k..m).map(|i| v[i - k] * b[i]).sum();
        let f = 2.0 * dot / vnorm2;
        for i in k..m {
            b[i] -= f * v[i - k];
        }
    }
    let mut x = vec![0.0; n];
    for k in (0..n).rev() {
        let s: f64 = ((k + 1)..n).map(|j| a[k][j] * x[j]).sum();
        x[k] = if a[k][k] == 0.0 {
            0.0
        } else {
            (b[k] - s) / a[k][k]
        };
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_sigmoid_fits_have_their_stated_error() {
        let f7 = fit(Func::Sigmoid, 7, (-8.0, 8.0));
        assert!(
            f7.max_error < 0.0195 && f7.max_error > 0.015,
            "{}",
            f7.max_error
        );
        let f9 = fit(Func::Sigmoid, 9, (-8.0, 8.0));
        assert!(
            f9.max_error < 0.0092 && f9.max_error > 0.007,
            "{}",
            f9.max_error
        );
    }

    #[test]
    fn least_squares_improves_with_degree_and_is_accurate_on_small_domains() {
        let e3 = fit(Func::Tanh, 3, (-2.0, 2.0)).max_error;
        let e7 = fit(Func::Tanh, 7, (-2.0, 2.0)).max_error;
        assert!(e7 < e3 / 4.0, "{e3} {e7}");
        let s = fit(Func::Sigmoid, 5, (-2.0, 2.0));
        assert!(s.max_error < 1e-3, "{}", s.max_error);
        assert!((s.eval(1.0) - Func::Sigmoid.eval(1.0)).abs() <= s.max_error + 1e-12);
    }

    #[test]
    fn choose_picks_the_lowest_degree_within_tolerance() {
        let f = choose(Func::Sigmoid, (-8.0, 8.0), 0.01).unwrap();
        assert_eq!(f.degree, 9);
        let f = choose(Func::Sigmoid, (-1.0, 1.0), 0.01).unwrap();
        assert_eq!(f.degree, 1);
        assert!(choose(Func::Sigmoid, (-400.0, 400.0), 0.01).is_err());
    }
}
