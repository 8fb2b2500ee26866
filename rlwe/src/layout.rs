//! Cheetah's coefficient encoding of a matrix product, its tiling, the noise
//! budget that fixes the flooding width and the digit size of the plaintext
//! operand, and the cost model that picks the tiles.
//!
//! # The encoding
//!
//! Huang, Lu, Hong and Ding ("Cheetah", USENIX Security 2022, Section 3.1)
//! encode a tile `X` of `d0 x d1` and a tile `W` of `d1 x d2`, with
//! `d0 d1 d2 <= N`, as
//!
//! ```text
//! x^(X) = sum_{r,c} X[r,c] X^(r d1 d2 + c)
//! w^(W) = sum_{c,j} W[c,j] X^(j d1 + d1 - 1 - c)
//! ```
//!
//! so that the coefficient of `X^(r d1 d2 + j d1 + d1 - 1)` in `x^ w^` is
//! `sum_c X[r,c] W[c,j]`, exactly: two monomials meet there only if
//! `(r'-r) d1 d2 + (j'-j) d1 + (c-c') = 0`, which with `|c-c'| < d1` and
//! `|(j'-j) d1 + c - c'| < d1 d2` forces `r' = r, j' = j, c' = c`. Exponents
//! beyond `N` wrap (with a sign) into `[0, d1 - 1)`, where no result sits.
//! One ciphertext-plaintext product therefore computes `d0 d1 d2` products,
//! with no rotation. Tiles of `k` accumulate: the products of the `k` tiles of
//! one output tile are summed before anything else happens.
//!
//! When `d2 = 1` the result of row `r` only involves query coefficients
//! `r d1 .. r d1 + d1`, so the party that encrypts sends only the
//! coefficients that carry an input (the others are taken as zero by the
//! receiver; they only reach coefficients that are dropped). That is how the
//! upload reaches `log2(q) / 8` bytes per input element. With `d2 > 1` every
//! coefficient of the query reaches some result, and all `N` are sent.
//!
//! # The noise budget (one output coefficient)
//!
//! The query is `(b, a)` with `b + a s = round(q x^ / t) + e`, `e` centred
//! binomial (variance 10.5, `|e| <= 21`), and the rounding error `|eps| <= 1/2`.
//! The product with an integer polynomial `w^` (digits bounded by `B`) has
//! phase `(q/t) [x^ w^ mod t] + (e + eps) w^`, because `q/t * t * K = q K`
//! vanishes mod q: this is why the encoding rounds exactly instead of using
//! `floor(q/t)`, whose error would be multiplied by the wrap-around `K`.
//! With `T` nonzero plaintext coefficients reaching one output coefficient
//! (`T = k_tiles * d1 * d2`):
//!
//! - product noise `E`: `|E| <= B (T/2 + 9.5 * 3.24 * sqrt(T))` except with
//!   probability `2 exp(-9.5^2 / 2) < 2^-64` (the errors are subgaussian
//!   with variance proxy 10.5); its mean absolute value is at most
//!   `B sqrt(T (10.5 + 1/4))`;
//! - re-randomisation with the public key: `u e_pk + e_2 s + e_1`, at most
//!   `2 N 21 + 21` (ternary `u` and `s`);
//! - the mask `z` adds its own rounding error, at most 1/2;
//! - flooding `f`, uniform in `[-F, F]`.
//!
//! Decryption of the masked value is exact when the total stays below
//! `q / 2^65` (half the scale `q/t`) with a margin of `2^-10` of it for the
//! fixed-point decoding. The parameters below choose
//! `F = 2^40 (B sqrt(T (10.5 + 1/4)) + 2 N 21 + 22)` and refuse a layout in
//! which `F + max|E| + ...` does not fit; the digit size `B` of the plaintext
//! operand shrinks (more digits, one product each) until it fits.
//!
//! # Circuit privacy (why 40 bits)
//!
//! The decrypting party knows `s` and `e`, so from a result coefficient it
//! learns the noise `E + (re-randomisation) + f`, and `E = (e + eps) w^`
//! depends on the weights. It learns nothing else: the result's `a` part is
//! `sum a w^ + u a_pk + e_2`, an RLWE sample in the secret `u` (which is why
//! the re-randomisation is there; without it `a w^` would give `w^` away),
//! and the coefficients that carry no result are dropped before sending
//! (they hold cross terms of other weights). For a fixed shift `c`, uniform
//! `f` in `[-F, F]` and `f + c` are at statistical distance `|c| / (2F + 1)`;
//! averaged over the honest error `e`, the distance per revealed coefficient
//! is at most `E|c| / (2F) <= 2^-41`. So each revealed coefficient is within
//! `2^-40` of a simulation that knows only the masked output: 40 bits of
//! statistical slack per output value, as in Cheetah (and SPU's
//! `kNoiseFloodBits = 40`).
//!
//! The argument is for semi-honest parties, as in the rest of Veil: it
//! averages over the client's honestly sampled query noise. A client that
//! chose a large query noise on purpose would make `E` exceed the flooding
//! and learn about `W`; defending against that needs zero-knowledge proofs
//! of well-formed queries, which this crate does not attempt.

use crate::params::{Params, ERROR_VARIANCE, ETA};
use crate::Error;

/// Statistical security parameter of the noise flooding.
pub const FLOOD_BITS: u32 = 40;

/// The shape of `x @ W`: `x` is `[batch, k]`, `W` is `[k, n]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    pub batch: usize,
    pub k: usize,
    pub n: usize,
}

impl Shape {
    pub fn macs(&self) -> u64 {
        self.batch as u64 * self.k as u64 * self.n as u64
    }
}

/// How a product is tiled and how the plaintext operand is split. Both
/// parties compute the same layout from public data ([`Layout::choose`]) or
/// agree on one; messages carry it and are refused when it differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    pub shape: Shape,
    /// Every entry of `W`, read as a signed 64-bit integer, lies in
    /// `[-2^(w_bits-1), 2^(w_bits-1))`. 64 means any `u64` (a share).
    pub w_bits: u32,
    /// Rows of `x` per query ciphertext.
    pub d0: usize,
    /// Columns of `x` (rows of `W`) per tile.
    pub d1: usize,
    /// Columns of `W` per product.
    pub d2: usize,
    /// Each digit of `W` lies in `[-2^(digit_bits-1), 2^(digit_bits-1)]`.
    pub digit_bits: u32,
    /// Number of digits of `W` (one product each).
    pub digits: usize,
    /// Flooding bound `F`: uniform noise in `[-F, F]`.
    pub flood: u128,
    /// Primes kept in a result: the server switches results down to
    /// `p_1 ... p_result_levels` (dividing the phase by the dropped primes)
    /// when the budget leaves room for the switching error.
    pub result_levels: usize,
    /// Ring degree the layout was made for.
    pub ring_degree: usize,
}

/// Unit costs for choosing a layout, in microseconds.
#[derive(Clone, Copy, Debug)]
pub struct CostModel {
    /// One NTT of one prime (forward or inverse).
    pub ntt_us: f64,
    /// One pointwise multiply-accumulate of one prime polynomial.
    pub pointwise_us: f64,
    /// Transfer time per byte (0 to ignore traffic).
    pub us_per_byte: f64,
    /// If set, only layouts whose query carries at most this many bytes per
    /// input element (headers aside) are considered, when any exists.
    pub max_upload_per_input: Option<f64>,
}

impl CostModel {
    /// Measured on the development machine for N = 8192 (see the crate
    /// docs), with traffic at 100 MB/s and no bound on the upload.
    pub fn default_for(params: &Params) -> CostModel {
        let scale = params.n() as f64 / 8192.0 * (params.n().max(2).ilog2() as f64 / 13.0);
        CostModel {
            ntt_us: 45.0 * scale,
            pointwise_us: 9.0 * params.n() as f64 / 8192.0,
            us_per_byte: 0.01,
            max_upload_per_input: None,
        }
    }

    /// [`CostModel::default_for`] with the upload held to one coefficient
    /// per input element (`log2 q / 8` bytes: 16 with
    /// [`Params::n8192_q128`]), which forces `d2 = 1`: one result
    /// ciphertext per output column and row tile.
    pub fn upload_bound(params: &Params) -> CostModel {
        CostModel {
            max_upload_per_input: Some(params.coefficient_bits() as f64 / 8.0),
            ..CostModel::default_for(params)
        }
    }
}

fn ceil_div(a: usize, b: usize) -> usize {
    a.div_ceil(b)
}

impl Layout {
    pub fn m_tiles(&self) -> usize {
        ceil_div(self.shape.batch, self.d0)
    }
    pub fn k_tiles(&self) -> usize {
        ceil_div(self.shape.k, self.d1)
    }
    pub fn n_tiles(&self) -> usize {
        ceil_div(self.shape.n, self.d2)
    }
    /// Query ciphertexts: one per (row tile, k tile).
    pub fn query_count(&self) -> usize {
        self.m_tiles() * self.k_tiles()
    }
    /// Result ciphertexts: one per (row tile, column tile, digit).
    pub fn result_count(&self) -> usize {
        self.m_tiles() * self.n_tiles() * self.digits
    }
    /// Plaintext coefficients that reach one result coefficient.
    pub fn terms(&self) -> usize {
        self.k_tiles() * self.d1 * self.d2
    }

    /// Rows of `x` in row tile `i`.
    pub fn rows(&self, i: usize) -> usize {
        (self.shape.batch - i * self.d0).min(self.d0)
    }
    /// Columns of `x` in k tile `t`.
    pub fn cols(&self, t: usize) -> usize {
        (self.shape.k - t * self.d1).min(self.d1)
    }
    /// Columns of `W` in column tile `s`.
    pub fn out_cols(&self, s: usize) -> usize {
        (self.shape.n - s * self.d2).min(self.d2)
    }

    /// Coefficient of query tile `(i, t)` that carries `x[row r, col c]`
    /// (tile-relative).
    pub fn query_position(&self, r: usize, c: usize) -> usize {
        r * self.d1 * self.d2 + c
    }
    /// Coefficient of a plaintext tile that carries `W[c, j]` (tile-relative).
    pub fn weight_position(&self, c: usize, j: usize) -> usize {
        j * self.d1 + self.d1 - 1 - c
    }
    /// Coefficient of a result that carries output `(r, j)` (tile-relative).
    pub fn result_position(&self, r: usize, j: usize) -> usize {
        r * self.d1 * self.d2 + j * self.d1 + self.d1 - 1
    }

    /// The query coefficients sent for query tile `(i, t)`, in order.
    pub fn sent_positions(&self, i: usize, t: usize) -> Vec<usize> {
        if self.d2 == 1 {
            let mut v = Vec::with_capacity(self.rows(i) * self.cols(t));
            for r in 0..self.rows(i) {
                for c in 0..self.cols(t) {
                    v.push(self.query_position(r, c));
                }
            }
            v
        } else {
            (0..self.ring_degree).collect()
        }
    }

    /// Number of query coefficients sent for tile `(i, t)`.
    pub fn sent_count(&self, i: usize, t: usize) -> usize {
        if self.d2 == 1 {
            self.rows(i) * self.cols(t)
        } else {
            self.ring_degree
        }
    }

    /// Query coefficients of tile `(i, t)` that carry an input, in order.
    pub fn input_positions(&self, i: usize, t: usize) -> Vec<usize> {
        let mut v = Vec::with_capacity(self.rows(i) * self.cols(t));
        for r in 0..self.rows(i) {
            for c in 0..self.cols(t) {
                v.push(self.query_position(r, c));
            }
        }
        v
    }

    /// The query coefficients of tile `(i, t)` that the preprocessed
    /// protocol sends ahead of the input ([`crate::OfflineQueryMsg`]): those
    /// of [`Layout::sent_positions`] that carry no input (none when
    /// `d2 = 1`).
    pub fn offline_positions(&self, i: usize, t: usize) -> Vec<usize> {
        if self.d2 == 1 {
            return Vec::new();
        }
        let mut carries = vec![false; self.ring_degree];
        for p in self.input_positions(i, t) {
            carries[p] = true;
        }
        (0..self.ring_degree).filter(|&p| !carries[p]).collect()
    }

    /// Bytes of [`crate::OfflineQueryMsg`].
    pub fn offline_query_bytes(&self, params: &Params) -> usize {
        let coeffs = if self.d2 == 1 {
            0
        } else {
            self.query_count() * self.ring_degree - self.shape.batch * self.shape.k
        };
        crate::wire::HEADER_BYTES + 16 + (coeffs * params.coefficient_bits() as usize).div_ceil(8)
    }

    /// Bytes of [`crate::OfflineResponseMsg`]: the `a` halves of the results.
    pub fn offline_response_bytes(&self, params: &Params) -> usize {
        let coeffs = self.result_count() * self.ring_degree;
        crate::wire::HEADER_BYTES
            + (coeffs * params.prefix_bits(self.result_levels) as usize).div_ceil(8)
    }

    /// Bytes of [`crate::OnlineQueryMsg`]: one coefficient per input.
    pub fn online_query_bytes(&self, params: &Params) -> usize {
        let coeffs = self.shape.batch * self.shape.k;
        crate::wire::HEADER_BYTES + (coeffs * params.coefficient_bits() as usize).div_ceil(8)
    }

    /// Bytes of [`crate::OnlineResponseMsg`]: the used `b` coefficients.
    pub fn online_response_bytes(&self, params: &Params) -> usize {
        let coeffs = self.shape.batch * self.shape.n * self.digits;
        crate::wire::HEADER_BYTES
            + (coeffs * params.prefix_bits(self.result_levels) as usize).div_ceil(8)
    }

    /// The result coefficients kept for result tile `(i, s)`, in order
    /// (row-major over the tile's outputs).
    pub fn used_positions(&self, i: usize, s: usize) -> Vec<usize> {
        let mut v = Vec::with_capacity(self.rows(i) * self.out_cols(s));
        for r in 0..self.rows(i) {
            for j in 0..self.out_cols(s) {
                v.push(self.result_position(r, j));
            }
        }
        v
    }

    /// A layout with the given tiles; the digit split and the flooding bound
    /// are derived. Errors if the tiles do not fit the ring or no digit size
    /// fits the noise budget.
    pub fn with_tiles(
        params: &Params,
        shape: Shape,
        w_bits: u32,
        d0: usize,
        d1: usize,
        d2: usize,
    ) -> Result<Layout, Error> {
        check_shape(shape, w_bits)?;
        let n = params.n();
        // Tiles larger than the operands shrink to them.
        let d0 = d0.min(shape.batch);
        let d1 = d1.min(shape.k);
        let d2 = d2.min(shape.n);
        if d0 == 0 || d1 == 0 || d2 == 0 || d0.saturating_mul(d1).saturating_mul(d2) > n {
            return Err(Error::InvalidLayout(format!(
                "tiles {d0} x {d1} x {d2} do not fit the ring degree {n}"
            )));
        }
        let mut layout = Layout {
            shape,
            w_bits,
            d0,
            d1,
            d2,
            digit_bits: w_bits,
            digits: 1,
            flood: 0,
            result_levels: params.levels(),
            ring_degree: n,
        };
        let (digit_bits, digits, flood) =
            digit_plan(params, w_bits, layout.terms()).ok_or_else(|| {
                Error::InvalidLayout(format!(
                    "no digit size fits the noise budget of q = 2^{:.1} with {} terms per result",
                    params.log2_q(),
                    layout.terms()
                ))
            })?;
        layout.digit_bits = digit_bits;
        layout.digits = digits;
        layout.flood = flood;
        layout.result_levels = result_levels(params, digit_bits, layout.terms());
        Ok(layout)
    }

    /// The cheapest layout for `shape` by `cost`.
    pub fn choose(
        params: &Params,
        shape: Shape,
        w_bits: u32,
        cost: &CostModel,
    ) -> Result<Layout, Error> {
        check_shape(shape, w_bits)?;
        let mut best: Option<(f64, Layout)> = None;
        let mut best_within: Option<(f64, Layout)> = None;
        let inputs = (shape.batch * shape.k) as f64;
        for layout in candidates(params, shape, w_bits) {
            let c = layout.estimated_cost(params, cost);
            if best.as_ref().is_none_or(|(b, _)| c < *b) {
                best = Some((c, layout));
            }
            let payload = (layout.query_bytes(params) - crate::wire::HEADER_BYTES - 16) as f64;
            if cost
                .max_upload_per_input
                .is_some_and(|m| payload <= m * inputs)
                && best_within.as_ref().is_none_or(|(b, _)| c < *b)
            {
                best_within = Some((c, layout));
            }
        }
        best_within.or(best).map(|(_, l)| l).ok_or_else(|| {
            Error::InvalidLayout(format!("no layout of {shape:?} fits these parameters"))
        })
    }

    /// The layout for the preprocessed protocol ([`crate::prepared`]): its
    /// online work is `batch k n` products per prime and digit whatever the
    /// tiles, and its online upload one coefficient per input, so the
    /// fewest digits win, then the cheapest preprocessing by `cost`.
    pub fn choose_prepared(
        params: &Params,
        shape: Shape,
        w_bits: u32,
        cost: &CostModel,
    ) -> Result<Layout, Error> {
        check_shape(shape, w_bits)?;
        candidates(params, shape, w_bits)
            .into_iter()
            .map(|l| ((l.digits, l.estimated_cost(params, cost)), l))
            .min_by(|(a, _), (b, _)| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
            .map(|(_, l)| l)
            .ok_or_else(|| {
                Error::InvalidLayout(format!("no layout of {shape:?} fits these parameters"))
            })
    }

    /// Bytes of the query message (see [`crate::QueryMsg`]).
    pub fn query_bytes(&self, params: &Params) -> usize {
        // Sum of sent_count over the tiles, in closed form.
        let coeffs = if self.d2 == 1 {
            self.shape.batch * self.shape.k
        } else {
            self.query_count() * self.ring_degree
        };
        crate::wire::HEADER_BYTES + 16 + (coeffs * params.coefficient_bits() as usize).div_ceil(8)
    }

    /// Bytes of the response message (see [`crate::ResponseMsg`]).
    pub fn response_bytes(&self, params: &Params) -> usize {
        // Every result: all N coefficients of a, the used ones of b.
        let coeffs = (self.m_tiles() * self.n_tiles() * self.ring_degree
            + self.shape.batch * self.shape.n)
            * self.digits;
        crate::wire::HEADER_BYTES
            + (coeffs * params.prefix_bits(self.result_levels) as usize).div_ceil(8)
    }

    /// Estimated time of the whole exchange (both parties), microseconds.
    pub fn estimated_cost(&self, params: &Params, cost: &CostModel) -> f64 {
        let l = params.levels() as f64;
        let queries = self.query_count() as f64;
        let weights = (self.k_tiles() * self.n_tiles() * self.digits) as f64;
        let products = (self.query_count() * self.n_tiles() * self.digits) as f64;
        let results = self.result_count() as f64;
        // A weight tile spans d1 d2 coefficients; the sparse transform skips
        // the layers that only copy.
        let span = (self.d1 * self.d2).max(1);
        let log_n = (self.ring_degree.max(2)).ilog2() as f64;
        let skipped = (self.ring_degree / span).max(1).ilog2() as f64;
        let weight_ntt = (log_n - skipped).max(1.0) / log_n;
        let kept = self.result_levels as f64;
        let ntts = queries * 2.0 * l + weights * l * weight_ntt + results * (3.0 * l + 2.0 * kept);
        let pointwise = products * 2.0 * l;
        let bytes = (self.query_bytes(params) + self.response_bytes(params)) as f64;
        ntts * cost.ntt_us + pointwise * cost.pointwise_us + bytes * cost.us_per_byte
    }
}

pub(crate) fn check_shape(shape: Shape, w_bits: u32) -> Result<(), Error> {
    if shape.batch == 0 || shape.k == 0 || shape.n == 0 {
        return Err(Error::InvalidLayout(format!("empty product {shape:?}")));
    }
    if !(1..=64).contains(&w_bits) {
        return Err(Error::InvalidLayout(format!(
            "weight bits {w_bits} outside 1..=64"
        )));
    }
    // Keep every count comfortably inside u32 on the wire.
    if shape.batch > 1 << 24 || shape.k > 1 << 24 || shape.n > 1 << 24 {
        return Err(Error::InvalidLayout(format!(
            "product {shape:?} is too large"
        )));
    }
    Ok(())
}

/// Every layout worth trying for `shape`: the distinct tile counts of each
/// dimension that fit the ring, with a digit plan that fits the budget.
fn candidates(params: &Params, shape: Shape, w_bits: u32) -> Vec<Layout> {
    let n = params.n();
    let mut v = Vec::new();
    for d1 in tile_candidates(shape.k, n) {
        for d0 in tile_candidates(shape.batch, n / d1) {
            let rest = n / (d0 * d1);
            for d2 in tile_candidates(shape.n, rest) {
                if let Ok(layout) = Layout::with_tiles(params, shape, w_bits, d0, d1, d2) {
                    v.push(layout);
                }
            }
        }
    }
    v
}

/// Tile sizes worth trying for a dimension of `len` under a cap: the distinct
/// values of `ceil(len / tiles)` (each gives a different tile count).
fn tile_candidates(len: usize, cap: usize) -> Vec<usize> {
    let mut v = Vec::new();
    if cap == 0 {
        return v;
    }
    let mut tiles = len.div_ceil(cap).max(1);
    loop {
        let d = len.div_ceil(tiles);
        if v.last() != Some(&d) && d <= cap {
            v.push(d);
        }
        if d == 1 {
            break;
        }
        // next tile count that gives a smaller tile size
        tiles = len.div_ceil(d - 1).max(tiles + 1);
    }
    v
}

/// The flooding bound `F` for digits bounded by `bound` and `terms`
/// plaintext coefficients per result, if the budget holds.
pub fn flood_bound(params: &Params, bound: f64, terms: usize) -> Option<u128> {
    budget(params, bound, terms).map(|(f, _)| f)
}

/// `(F, slack)`: the flooding bound and what remains of the budget below
/// `q / 2^65 (1 - 2^-10)` once flooding, product and re-randomisation noise
/// are counted. Dropping primes `p_(l+1) ... p_L` from a result adds at most
/// `(1 + |s|_1) / 2 <= (N + 1) / 2` per dropped prime in units of the
/// smaller modulus, so at most `(L - l) (N + 1) q / q_l` in units of `q`;
/// results keep the fewest primes for which that fits the slack.
fn budget(params: &Params, bound: f64, terms: usize) -> Option<(u128, f64)> {
    let t = terms as f64;
    let n = params.n() as f64;
    let rerandomize = 2.0 * n * ETA as f64 + ETA as f64 + 1.0;
    let mean_abs = bound * (t * (ERROR_VARIANCE + 0.25)).sqrt() + rerandomize;
    let flood = (mean_abs * 2f64.powi(FLOOD_BITS as i32)).ceil();
    let max_product = bound * (t / 2.0 + 9.5 * (t * ERROR_VARIANCE).sqrt());
    let half_scale = 2f64.powf(params.log2_q() - 65.0);
    // f64 rounding of the terms is far inside the 2^-10 margin.
    let slack = half_scale * (1.0 - 2f64.powi(-10)) - (flood + max_product + rerandomize);
    if slack >= 0.0 && flood < 2f64.powi(125) {
        Some((flood as u128, slack))
    } else {
        None
    }
}

/// The fewest primes a result may keep after switching down, for digits
/// of `digit_bits` bits and `terms` plaintext coefficients per result.
pub(crate) fn result_levels(params: &Params, digit_bits: u32, terms: usize) -> usize {
    let bound = 2f64.powi(digit_bits as i32 - 1) + 1.0;
    let slack = budget(params, bound, terms).map_or(0.0, |(_, s)| s);
    (1..=params.levels())
        .find(|&l| {
            l == params.levels()
                || ((params.levels() - l) as f64 * (params.n() as f64 + 1.0))
                    * 2f64.powf(params.log2_q() - params.log2_prefix(l))
                    <= slack
        })
        .unwrap_or(params.levels())
}

/// `(digit_bits, digits, flood)` for weights of `w_bits` bits.
pub(crate) fn digit_plan(params: &Params, w_bits: u32, terms: usize) -> Option<(u32, usize, u128)> {
    for digits in 1..=64usize {
        let bits = (w_bits as usize).div_ceil(digits) as u32;
        if digits > 1 && (bits as usize) * (digits - 1) >= w_bits as usize {
            continue; // fewer digits already cover w_bits at this size
        }
        // Balanced digits are at most 2^(bits-1) in magnitude; one extra unit
        // of slack covers the top digit's rounding.
        let bound = 2f64.powi(bits as i32 - 1) + 1.0;
        if let Some(f) = flood_bound(params, bound, terms) {
            return Some((bits, digits, f));
        }
        if bits == 1 {
            break;
        }
    }
    None
}

/// Splits a weight (a signed integer of at most `w_bits` bits, or any value
/// mod 2^64 when `w_bits` = 64) into `digits` balanced digits of
/// `digit_bits` bits: `w = sum_g d_g 2^(g digit_bits) (mod 2^64)`, each
/// `|d_g| <= 2^(digit_bits - 1)`.
pub fn split_digits(w: u64, digit_bits: u32, digits: usize, out: &mut [i64]) {
    let mut v = w as i64 as i128;
    let b = digit_bits;
    for d in out.iter_mut().take(digits.saturating_sub(1)) {
        let m = v.rem_euclid(1i128 << b);
        let digit = if m >= 1i128 << (b - 1) {
            m - (1i128 << b)
        } else {
            m
        };
        *d = digit as i64;
        v = (v - digit) >> b;
    }
    if digits > 0 {
        // The top digit only matters mod 2^(64 - b (digits-1)); centre it.
        let shift = b as usize * (digits - 1);
        if shift < 64 {
            let width = 64 - shift as u32;
            let m = v.rem_euclid(1i128 << width);
            let top = if m >= 1i128 << (width - 1) {
                m - (1i128 << width)
            } else {
                m
            };
            // Both representatives agree mod 2^width; keep the smaller one.
            out[digits - 1] = if top.abs() <= v.abs() { top } else { v } as i64;
        } else {
            out[digits - 1] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn candidates_cover_tile_counts() {
        assert_eq!(tile_candidates(10, 100), vec![10, 5, 4, 3, 2, 1]);
        assert_eq!(tile_candidates(784, 8192)[..3], [784, 392, 262]);
        assert_eq!(tile_candidates(100, 10)[0], 10);
        assert!(tile_candidates(5, 0).is_empty());
    }

    #[test]
    fn budget_matches_the_documented_numbers() {
        let p = Params::n8192_q128();
        // 16-bit weights fit one digit when few terms reach a result ...
        assert!(flood_bound(&p, 2f64.powi(15) + 1.0, 800).is_some());
        // ... but not with 8192 terms: then 15-bit digits.
        assert!(flood_bound(&p, 2f64.powi(15) + 1.0, 8192).is_none());
        assert!(flood_bound(&p, 2f64.powi(14) + 1.0, 8192).is_some());
        // Full 64-bit weights need q180 for one digit.
        assert!(flood_bound(&p, 2f64.powi(63), 8192).is_none());
        let q180 = Params::n8192_q180();
        assert!(flood_bound(&q180, 2f64.powi(63) + 1.0, 8192).is_some());
        let l = Layout::with_tiles(
            &p,
            Shape {
                batch: 1,
                k: 784,
                n: 128,
            },
            64,
            1,
            784,
            10,
        )
        .unwrap();
        assert_eq!(l.terms(), 7840);
        assert_eq!((l.digit_bits, l.digits), (13, 5));
        // Results drop the 42-bit prime at q = 2^128 and two primes at 2^180.
        assert_eq!(l.result_levels, 2);
        let big = Shape {
            batch: 100,
            k: 784,
            n: 128,
        };
        let l = Layout::with_tiles(&p, big, 16, 100, 79, 1).unwrap();
        assert_eq!((l.digits, l.result_levels), (1, 2));
        let l = Layout::with_tiles(&q180, big, 64, 100, 79, 1).unwrap();
        assert_eq!((l.digits, l.result_levels), (1, 2));
    }

    #[test]
    fn positions_follow_the_encoding() {
        let p = Params::insecure_for_tests(64);
        let shape = Shape {
            batch: 3,
            k: 5,
            n: 4,
        };
        let l = Layout::with_tiles(&p, shape, 8, 2, 3, 2).unwrap();
        assert_eq!((l.m_tiles(), l.k_tiles(), l.n_tiles()), (2, 2, 2));
        assert_eq!((l.rows(1), l.cols(1), l.out_cols(1)), (1, 2, 2));
        // query position + weight position = result position when c matches
        for r in 0..2 {
            for c in 0..3 {
                for j in 0..2 {
                    assert_eq!(
                        l.query_position(r, c) + l.weight_position(c, j),
                        l.result_position(r, j)
                    );
                }
            }
        }
        assert_eq!(l.sent_count(0, 0), 64);
        let l1 = Layout::with_tiles(&p, shape, 8, 3, 5, 1).unwrap();
        assert_eq!(l1.sent_positions(0, 0).len(), 15);
        assert!(Layout::with_tiles(
            &p,
            Shape {
                batch: 3,
                k: 8,
                n: 4
            },
            8,
            3,
            8,
            4
        )
        .is_err());
        assert!(Layout::with_tiles(&p, shape, 65, 1, 1, 1).is_err());
        assert!(Layout::with_tiles(
            &p,
            Shape {
                batch: 0,
                k: 1,
                n: 1
            },
            8,
            1,
            1,
            1
        )
        .is_err());
    }

    /// Negacyclic product in Z_2^64[X]/(X^n + 1).
    fn negacyclic(a: &[u64], b: &[u64]) -> Vec<u64> {
        let n = a.len();
        let mut out = vec![0u64; n];
        for (i, &x) in a.iter().enumerate() {
            if x == 0 {
                continue;
            }
            for (j, &y) in b.iter().enumerate() {
                let p = x.wrapping_mul(y);
                if i + j < n {
                    out[i + j] = out[i + j].wrapping_add(p);
                } else {
                    out[i + j - n] = out[i + j - n].wrapping_sub(p);
                }
            }
        }
        out
    }

    proptest! {
        #[test]
        fn packing_round_trip(
            batch in 1usize..7, k in 1usize..10, n in 1usize..6,
            d0 in 1usize..7, d1 in 1usize..10, d2 in 1usize..6, seed in any::<u64>(),
        ) {
            // Without encryption: encode the tiles, multiply in
            // Z_2^64[X]/(X^N + 1), sum over k tiles, read the results back.
            let params = Params::insecure_for_tests(128);
            prop_assume!(d0.min(batch) * d1.min(k) * d2.min(n) <= 128);
            let shape = Shape { batch, k, n };
            let l = Layout::with_tiles(&params, shape, 64, d0, d1, d2).unwrap();
            let mut st = seed | 1;
            let mut next = || { st ^= st << 13; st ^= st >> 7; st ^= st << 17; st };
            let x: Vec<u64> = (0..batch * k).map(|_| next()).collect();
            let w: Vec<u64> = (0..k * n).map(|_| next()).collect();
            let mut y = vec![0u64; batch * n];
            for i in 0..l.m_tiles() {
                for s in 0..l.n_tiles() {
                    let mut acc = vec![0u64; 128];
                    for t in 0..l.k_tiles() {
                        let mut xp = vec![0u64; 128];
                        for r in 0..l.rows(i) {
                            for c in 0..l.cols(t) {
                                xp[l.query_position(r, c)] = x[(i * l.d0 + r) * k + t * l.d1 + c];
                            }
                        }
                        let mut wp = vec![0u64; 128];
                        for c in 0..l.cols(t) {
                            for j in 0..l.out_cols(s) {
                                wp[l.weight_position(c, j)] = w[(t * l.d1 + c) * n + s * l.d2 + j];
                            }
                        }
                        for (a, v) in acc.iter_mut().zip(negacyclic(&xp, &wp)) {
                            *a = a.wrapping_add(v);
                        }
                    }
                    for (u, pos) in l.used_positions(i, s).into_iter().enumerate() {
                        let (r, j) = (u / l.out_cols(s), u % l.out_cols(s));
                        y[(i * l.d0 + r) * n + s * l.d2 + j] = acc[pos];
                    }
                }
            }
            let mut expect = vec![0u64; batch * n];
            for r in 0..batch {
                for c in 0..k {
                    for j in 0..n {
                        expect[r * n + j] = expect[r * n + j].wrapping_add(x[r * k + c].wrapping_mul(w[c * n + j]));
                    }
                }
            }
            prop_assert_eq!(y, expect);
        }

        #[test]
        fn digits_recombine(w in any::<u64>(), bits in 1u32..=64, digit_bits in 2u32..=40) {
            let w = if bits == 64 { w } else { ((w as i64) >> (64 - bits)) as u64 };
            let digits = (bits as usize).div_ceil(digit_bits as usize);
            let mut out = vec![0i64; digits];
            split_digits(w, digit_bits, digits, &mut out);
            let mut acc = 0u64;
            for (g, d) in out.iter().enumerate() {
                prop_assert!(d.unsigned_abs() <= 1u64 << (digit_bits - 1), "digit {} = {}", g, d);
                acc = acc.wrapping_add((*d as u64).wrapping_shl(g as u32 * digit_bits));
            }
            prop_assert_eq!(acc, w);
        }
    }
}
