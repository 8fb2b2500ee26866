//! Two-dimensional convolutions without rotations: Cheetah's HomConv
//! packing (Huang, Lu, Hong, Ding, "Cheetah", USENIX Security 2022,
//! Section 4.2), for a valid, stride-1 convolution of an input `T`
//! (`[C, H, W]`, at the encrypting party) with `M` kernels `K`
//! (`[M, C, h, h']`, at the other party).
//!
//! # The encoding
//!
//! A group of `g` channels (`g H W <= N`) is one polynomial, a kernel's
//! part for that group another, reversed:
//!
//! ```text
//! t^(X) = sum_{c,i,j} T[c,i,j] X^(c H W + i W + j)
//! k^(X) = sum_{c,l,l'} K[m,c,l,l'] X^(O - c H W - l W - l'),  O = (g-1) H W + (h-1) W + (h'-1)
//! ```
//!
//! The coefficient of `X^(O + i W + j)` in `t^ k^` is then the output
//! `[m, i, j]` for `i <= H - h`, `j <= W - h'`: two monomials meet there
//! only if `(c - c') H W + (i' - l - i) W + (j' - l' - j) = 0`, and with
//! `|j' - l' - j| < W` and `|i' - l - i| < H` that forces `c = c'`,
//! `i' = i + l`, `j' = j + l'`. Exponents at or beyond `N` wrap below `O`,
//! where no output sits, and query coefficients beyond the group's inputs
//! reach only exponents above the last output (so, as with `d2 = 1` in
//! [`crate::layout`], only the inputs' coefficients are sent: 16 bytes per
//! input element with [`Params::n8192_q128`]). The groups of one kernel
//! accumulate before the result is finished; each kernel (and digit) is one
//! result, re-randomised, masked, flooded and switched down exactly as a
//! matrix product's ([`crate::layout`] has the noise budget and the
//! circuit-privacy argument, with `C h h'` plaintext coefficients per
//! output).
//!
//! # Several kernels per product
//!
//! With `S = g H W`, `P` kernels with `P S <= N` share one plaintext,
//! kernel `p` shifted by `p S`, and their outputs sit at
//! `p S + O + i W + j`, in `[p S + O, (p + 1) S)`. The inputs' products
//! with kernel `p` fill `[p S, p S + O + S)`: below kernel `p + 1`'s first
//! output, and those of the last kernel that pass `N` wrap below `O`. But
//! query coefficients beyond the inputs would reach other kernels'
//! outputs, so such a query sends all `N` coefficients (encryptions of 0
//! beyond the inputs, with their small noise): fewer results
//! (`ceil(M / P)`) for more upload. [`ConvLayout::choose`] weighs the two; the noise budget counts
//! the `P C h h'` plaintext coefficients that reach each output.
//!
//! Padding and strides are the caller's: pad the input, and keep every
//! `s`-th output (the others are computed and dropped). Inputs with
//! `H W > N` need spatial tiles with a halo of `h - 1`, which this module
//! does not do; [`ConvLayout::new`] refuses them.

use zeroize::Zeroizing;

use crate::layout::{digit_plan, result_levels, split_digits, CostModel};
use crate::matmul::{
    check_layout_degree, wrong_size, Accumulator, Client, PeerKey, ResultCt, ResultSpec, Server,
    DOMAIN_QUERY,
};
use crate::params::Params;
use crate::sample::{expand_uniform_ntt, Seed};
use crate::wire::{self, Reader, WireError, Writer};
use crate::Error;

const KIND_CONV_QUERY: u8 = 8;
const KIND_CONV_RESPONSE: u8 = 9;
/// The geometry after the common header: twelve `u32` and the flooding
/// bound (`u128`), little-endian.
const GEOMETRY_BYTES: usize = 12 * 4 + 16;

/// A valid, stride-1 convolution: input `[channels, height, width]`,
/// kernels `[filters, channels, kernel_h, kernel_w]`, output
/// `[filters, height - kernel_h + 1, width - kernel_w + 1]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub filters: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
}

impl ConvShape {
    pub fn out_h(&self) -> usize {
        self.height + 1 - self.kernel_h
    }
    pub fn out_w(&self) -> usize {
        self.width + 1 - self.kernel_w
    }
    pub fn macs(&self) -> u64 {
        (self.filters * self.channels * self.kernel_h * self.kernel_w) as u64
            * (self.out_h() * self.out_w()) as u64
    }
}

/// How a convolution is packed: channels per query polynomial, the digit
/// split of the kernels and the flooding, all derived from public data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvLayout {
    pub shape: ConvShape,
    /// Every kernel entry, read as a signed 64-bit integer, lies in
    /// `[-2^(w_bits-1), 2^(w_bits-1))`; 64 means any `u64`.
    pub w_bits: u32,
    /// Channels per query polynomial.
    pub group: usize,
    /// Kernels per plaintext (and per result).
    pub packed: usize,
    pub digit_bits: u32,
    pub digits: usize,
    pub flood: u128,
    pub result_levels: usize,
    pub ring_degree: usize,
}

impl ConvLayout {
    /// One kernel per product: the query carries only the inputs.
    pub fn new(params: &Params, shape: ConvShape, w_bits: u32) -> Result<ConvLayout, Error> {
        ConvLayout::with_packing(params, shape, w_bits, 1)
    }

    /// The cheapest number of kernels per product by `cost` (its
    /// `max_upload_per_input`, if set, keeps one kernel per product).
    pub fn choose(
        params: &Params,
        shape: ConvShape,
        w_bits: u32,
        cost: &CostModel,
    ) -> Result<ConvLayout, Error> {
        let first = ConvLayout::new(params, shape, w_bits)?;
        if cost.max_upload_per_input.is_some() {
            return Ok(first);
        }
        let mut best = (first.estimated_cost(params, cost), first);
        for packed in 2..=shape.filters {
            match ConvLayout::with_packing(params, shape, w_bits, packed) {
                Ok(l) => {
                    let c = l.estimated_cost(params, cost);
                    if c < best.0 {
                        best = (c, l);
                    }
                }
                Err(_) => break,
            }
        }
        Ok(best.1)
    }

    /// Estimated time of the whole exchange (both parties), microseconds;
    /// the terms of [`crate::Layout::estimated_cost`].
    pub fn estimated_cost(&self, params: &Params, cost: &CostModel) -> f64 {
        let l = params.levels() as f64;
        let queries = self.groups() as f64;
        let plaintexts = (self.groups() * self.products() * self.digits) as f64;
        let results = self.result_count() as f64;
        let kept = self.result_levels as f64;
        let ntts = queries * 2.0 * l + plaintexts * l + results * (3.0 * l + 2.0 * kept);
        let bytes = (self.query_bytes(params) + self.response_bytes(params)) as f64;
        ntts * cost.ntt_us + plaintexts * 2.0 * l * cost.pointwise_us + bytes * cost.us_per_byte
    }

    /// `packed` kernels per product; errors if they do not fit the ring or
    /// the noise budget.
    pub fn with_packing(
        params: &Params,
        shape: ConvShape,
        w_bits: u32,
        packed: usize,
    ) -> Result<ConvLayout, Error> {
        let s = shape;
        if [
            s.channels, s.height, s.width, s.filters, s.kernel_h, s.kernel_w,
        ]
        .contains(&0)
            || s.kernel_h > s.height
            || s.kernel_w > s.width
        {
            return Err(Error::Shape(format!(
                "convolution {shape:?}: every size must be positive and the kernel no larger than the input"
            )));
        }
        if !(1..=64).contains(&w_bits) {
            return Err(Error::InvalidLayout(format!(
                "weight bits {w_bits} outside 1..=64"
            )));
        }
        let big = 1 << 24;
        if [s.channels, s.filters].iter().any(|&v| v > big) {
            return Err(Error::InvalidLayout(format!(
                "convolution {shape:?} is too large"
            )));
        }
        let n = params.n();
        let hw = s.height.saturating_mul(s.width);
        if hw > n {
            return Err(Error::InvalidLayout(format!(
                "one {} x {} channel does not fit the ring degree {n}; spatial tiling is not implemented",
                s.height, s.width
            )));
        }
        let group = s.channels.min(n / hw);
        let stride = group * hw;
        if packed == 0 || packed > s.filters || packed.saturating_mul(stride) > n {
            return Err(Error::InvalidLayout(format!(
                "{packed} kernels of stride {stride} per product do not fit the ring degree {n}"
            )));
        }
        let terms = packed * s.channels * s.kernel_h * s.kernel_w;
        let (digit_bits, digits, flood) = digit_plan(params, w_bits, terms).ok_or_else(|| {
            Error::InvalidLayout(format!(
                "no digit size fits the noise budget of q = 2^{:.1} with {terms} terms per result",
                params.log2_q()
            ))
        })?;
        Ok(ConvLayout {
            shape,
            w_bits,
            group,
            packed,
            digit_bits,
            digits,
            flood,
            result_levels: result_levels(params, digit_bits, terms),
            ring_degree: n,
        })
    }

    /// Query polynomials: one per group of channels.
    pub fn groups(&self) -> usize {
        self.shape.channels.div_ceil(self.group)
    }
    /// Channels in group `g`.
    pub fn cols(&self, g: usize) -> usize {
        (self.shape.channels - g * self.group).min(self.group)
    }
    /// Plaintexts per group of channels: one per `packed` kernels.
    pub fn products(&self) -> usize {
        self.shape.filters.div_ceil(self.packed)
    }
    /// Kernels in plaintext `r`.
    pub fn filters_in(&self, r: usize) -> usize {
        (self.shape.filters - r * self.packed).min(self.packed)
    }
    /// Results: one per plaintext and digit.
    pub fn result_count(&self) -> usize {
        self.products() * self.digits
    }
    /// Query coefficients sent for group `g`: its inputs, or all `N` when
    /// kernels share a product.
    pub fn sent_count(&self, g: usize) -> usize {
        if self.packed == 1 {
            self.cols(g) * self.hw()
        } else {
            self.ring_degree
        }
    }
    /// The shift between packed kernels: `g H W`.
    fn stride(&self) -> usize {
        self.group * self.hw()
    }
    fn hw(&self) -> usize {
        self.shape.height * self.shape.width
    }
    fn offset(&self) -> usize {
        (self.group - 1) * self.hw()
            + (self.shape.kernel_h - 1) * self.shape.width
            + (self.shape.kernel_w - 1)
    }
    /// Coefficient of a plaintext that carries `K[m, c, l, l2]` for its
    /// `p`-th kernel (`c` within its group).
    pub fn kernel_position(&self, p: usize, c: usize, l: usize, l2: usize) -> usize {
        p * self.stride() + self.offset() - c * self.hw() - l * self.shape.width - l2
    }
    /// The coefficients of result `r` that carry outputs, kernel by kernel,
    /// each row-major.
    pub fn used_positions(&self, r: usize) -> Vec<usize> {
        let (o, w, stride) = (self.offset(), self.shape.width, self.stride());
        let (oh, ow) = (self.shape.out_h(), self.shape.out_w());
        (0..self.filters_in(r))
            .flat_map(|p| {
                (0..oh).flat_map(move |i| (0..ow).map(move |j| p * stride + o + i * w + j))
            })
            .collect()
    }

    /// Bytes of [`ConvQueryMsg`]: the seed and the sent coefficients.
    pub fn query_bytes(&self, params: &Params) -> usize {
        let coeffs = if self.packed == 1 {
            self.shape.channels * self.hw()
        } else {
            self.groups() * self.ring_degree
        };
        wire::HEADER_BYTES
            + GEOMETRY_BYTES
            + 16
            + (coeffs * params.coefficient_bits() as usize).div_ceil(8)
    }

    /// Bytes of [`ConvResponseMsg`]: per result all of `a`, the used `b`.
    pub fn response_bytes(&self, params: &Params) -> usize {
        let coeffs = (self.products() * self.ring_degree
            + self.shape.filters * self.shape.out_h() * self.shape.out_w())
            * self.digits;
        wire::HEADER_BYTES
            + GEOMETRY_BYTES
            + (coeffs * params.prefix_bits(self.result_levels) as usize).div_ceil(8)
    }

    fn geometry(&self) -> Vec<u8> {
        let s = self.shape;
        let mut v = Vec::with_capacity(GEOMETRY_BYTES);
        for f in [
            s.channels,
            s.height,
            s.width,
            s.filters,
            s.kernel_h,
            s.kernel_w,
            self.w_bits as usize,
            self.group,
            self.packed,
            self.digit_bits as usize,
            self.digits,
            self.result_levels,
        ] {
            v.extend_from_slice(&(f as u32).to_le_bytes());
        }
        v.extend_from_slice(&self.flood.to_le_bytes());
        v
    }

    /// A message's header for this layout, or why it does not match.
    fn open<'a>(
        &self,
        bytes: &'a [u8],
        params: &Params,
        kind: u8,
        len: usize,
    ) -> Result<Reader<'a>, Error> {
        check_layout_degree(params, self.ring_degree)?;
        let mut r = Reader::open(bytes, params, kind, None, len)?;
        let got = r.raw::<GEOMETRY_BYTES>();
        if got[..] != self.geometry()[..] {
            return Err(Error::Wire(WireError::Layout));
        }
        Ok(r)
    }
}

/// The seeded encryption of a convolution's input: per group of channels,
/// `b` at the group's input coefficients (`L * cols * H * W` residues,
/// prime-major).
#[derive(Clone, PartialEq, Eq)]
pub struct ConvQueryMsg {
    pub layout: ConvLayout,
    pub seed: Seed,
    pub b: Vec<Vec<u64>>,
}

/// The results, kernel-major then digit: all of `a`, `b` at
/// [`ConvLayout::used_positions`], on the layout's kept primes.
#[derive(Clone, PartialEq, Eq)]
pub struct ConvResponseMsg {
    pub layout: ConvLayout,
    pub cts: Vec<ResultCt>,
}

impl std::fmt::Debug for ConvQueryMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ConvQueryMsg {{ {:?}, {} ciphertexts }}",
            self.layout.shape,
            self.b.len()
        )
    }
}

impl std::fmt::Debug for ConvResponseMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ConvResponseMsg {{ {:?}, {} ciphertexts }}",
            self.layout.shape,
            self.cts.len()
        )
    }
}

impl ConvQueryMsg {
    pub fn to_bytes(&self, params: &Params) -> Vec<u8> {
        let len = self.layout.query_bytes(params);
        let mut w = Writer::header(params, KIND_CONV_QUERY, None, len);
        w.raw(&self.layout.geometry());
        w.raw(&self.seed);
        let levels = params.levels();
        for b in &self.b {
            wire::write_residues(&mut w, params, levels, b.len() / levels, b);
        }
        w.finish()
    }

    pub fn from_bytes(
        bytes: &[u8],
        params: &Params,
        layout: &ConvLayout,
    ) -> Result<ConvQueryMsg, Error> {
        let mut r = layout.open(bytes, params, KIND_CONV_QUERY, layout.query_bytes(params))?;
        let seed = r.raw::<16>();
        let levels = params.levels();
        let mut b = Vec::with_capacity(layout.groups());
        for g in 0..layout.groups() {
            let count = layout.sent_count(g);
            let mut v = vec![0u64; count * levels];
            r.residues(params, levels, count, &mut v)?;
            b.push(v);
        }
        Ok(ConvQueryMsg {
            layout: *layout,
            seed,
            b,
        })
    }
}

impl ConvResponseMsg {
    pub fn to_bytes(&self, params: &Params) -> Vec<u8> {
        let len = self.layout.response_bytes(params);
        let mut w = Writer::header(params, KIND_CONV_RESPONSE, None, len);
        w.raw(&self.layout.geometry());
        let l = self.layout.result_levels;
        for ct in &self.cts {
            wire::write_residues(&mut w, params, l, ct.a.len() / l, &ct.a);
            wire::write_residues(&mut w, params, l, ct.b.len() / l, &ct.b);
        }
        w.finish()
    }

    pub fn from_bytes(
        bytes: &[u8],
        params: &Params,
        layout: &ConvLayout,
    ) -> Result<ConvResponseMsg, Error> {
        let len = layout.response_bytes(params);
        let mut r = layout.open(bytes, params, KIND_CONV_RESPONSE, len)?;
        let (n, l) = (params.n(), layout.result_levels);
        let mut cts = Vec::with_capacity(layout.result_count());
        for idx in 0..layout.result_count() {
            let used = layout.filters_in(idx / layout.digits)
                * layout.shape.out_h()
                * layout.shape.out_w();
            let mut a = vec![0u64; n * l];
            r.residues(params, l, n, &mut a)?;
            let mut b = vec![0u64; used * l];
            r.residues(params, l, used, &mut b)?;
            cts.push(ResultCt { a, b });
        }
        Ok(ConvResponseMsg {
            layout: *layout,
            cts,
        })
    }
}

impl Client {
    /// Encrypts the input `x` (`[channels, height, width]`, row-major).
    pub fn conv_query(&mut self, layout: &ConvLayout, x: &[u64]) -> Result<ConvQueryMsg, Error> {
        let params = self.params.clone();
        check_layout_degree(&params, layout.ring_degree)?;
        let hw = layout.hw();
        if x.len() != layout.shape.channels * hw {
            return Err(Error::Shape(format!(
                "the input has {} values, the convolution expects {} x {} x {}",
                x.len(),
                layout.shape.channels,
                layout.shape.height,
                layout.shape.width
            )));
        }
        let (n, levels) = (params.n(), params.levels());
        let seed = self.rng.seed();
        let mut a = vec![0u64; n * levels];
        let mut as_ = Zeroizing::new(vec![0u64; n * levels]);
        let mut b = Vec::with_capacity(layout.groups());
        for g in 0..layout.groups() {
            let positions: Vec<usize> = (0..layout.sent_count(g)).collect();
            let (base, inputs) = (g * layout.group * hw, layout.cols(g) * hw);
            let message = |pos: usize| if pos < inputs { x[base + pos] } else { 0 };
            b.push(self.encrypt_at(&seed, g as u32, &positions, message, &mut a, &mut as_));
        }
        Ok(ConvQueryMsg {
            layout: *layout,
            seed,
            b,
        })
    }

    /// Decrypts the response into this party's share of the output
    /// (`[filters, out_h, out_w]`, row-major).
    pub fn conv_finish(
        &self,
        layout: &ConvLayout,
        response: &ConvResponseMsg,
    ) -> Result<Vec<u64>, Error> {
        let params = &self.params;
        check_layout_degree(params, layout.ring_degree)?;
        if response.layout != *layout || response.cts.len() != layout.result_count() {
            return Err(Error::Wire(WireError::Layout));
        }
        let levels = layout.result_levels;
        let ohw = layout.shape.out_h() * layout.shape.out_w();
        let mut a_ntt = vec![0u64; params.n() * levels];
        let mut as_ = Zeroizing::new(vec![0u64; params.n() * levels]);
        let mut share = vec![0u64; layout.shape.filters * ohw];
        for (idx, ct) in response.cts.iter().enumerate() {
            let (r, g) = (idx / layout.digits, idx % layout.digits);
            let used = layout.used_positions(r);
            let values = self.decrypt_used(ct, &used, levels, &mut a_ntt, &mut as_)?;
            let shift = g as u32 * layout.digit_bits;
            let first = r * layout.packed * ohw;
            for (out, v) in share[first..first + used.len()].iter_mut().zip(values) {
                *out = out.wrapping_add(v.wrapping_shl(shift));
            }
        }
        Ok(share)
    }
}

impl Server {
    /// Convolves the encrypted input with `kernels` (`[filters, channels,
    /// kernel_h, kernel_w]`, row-major, each entry within `w_bits` signed
    /// bits) and returns the response and this party's share of the output
    /// (`[filters, out_h, out_w]`).
    pub fn conv_respond(
        &mut self,
        key: &PeerKey,
        layout: &ConvLayout,
        kernels: &[u64],
        query: &ConvQueryMsg,
    ) -> Result<(ConvResponseMsg, Vec<u64>), Error> {
        let params = self.params.clone();
        check_layout_degree(&params, layout.ring_degree)?;
        if key.params.fingerprint() != params.fingerprint() {
            return Err(Error::Wire(WireError::Parameters {
                expected: params.fingerprint(),
                got: key.params.fingerprint(),
            }));
        }
        if query.layout != *layout || query.b.len() != layout.groups() {
            return Err(Error::Wire(WireError::Layout));
        }
        let s = layout.shape;
        let per_filter = s.channels * s.kernel_h * s.kernel_w;
        if kernels.len() != s.filters * per_filter {
            return Err(Error::Shape(format!(
                "the kernels have {} values, the convolution expects {} x {} x {} x {}",
                kernels.len(),
                s.filters,
                s.channels,
                s.kernel_h,
                s.kernel_w
            )));
        }
        if layout.w_bits < 64 {
            let lo = -(1i64 << (layout.w_bits - 1));
            let hi = (1i64 << (layout.w_bits - 1)) - 1;
            if let Some(index) = kernels
                .iter()
                .position(|&v| !(lo..=hi).contains(&(v as i64)))
            {
                return Err(Error::Shape(format!(
                    "kernel entry {index} does not fit the {} signed bits the layout was made for",
                    layout.w_bits
                )));
            }
        }
        let (n, levels) = (params.n(), params.levels());
        // The query polynomials in NTT form.
        let mut queries = Vec::with_capacity(layout.groups());
        for (g, sent) in query.b.iter().enumerate() {
            let count = layout.sent_count(g);
            if sent.len() != count * levels {
                return Err(wrong_size("convolution query"));
            }
            let mut b = vec![0u64; n * levels];
            for (l, md) in params.moduli().iter().enumerate() {
                let src = &sent[l * count..(l + 1) * count];
                if let Some(index) = src.iter().position(|&v| v >= md.value()) {
                    return Err(Error::Wire(WireError::Range { index, prime: l }));
                }
                let dst = &mut b[l * n..(l + 1) * n];
                dst[..count].copy_from_slice(src);
                params.table(l).forward_sparse(dst, count);
            }
            let mut a = vec![0u64; n * levels];
            expand_uniform_ntt(&params, &query.seed, DOMAIN_QUERY, g as u32, &mut a);
            queries.push((b, a));
        }
        let ohw = s.out_h() * s.out_w();
        let mut share = vec![0u64; s.filters * ohw];
        let mut cts = Vec::with_capacity(layout.result_count());
        let mut what = Zeroizing::new(vec![0u64; n * levels]);
        let mut digit = vec![0i64; layout.digits];
        let mut acc = Accumulator::new(n * levels);
        for r in 0..layout.products() {
            let used = layout.used_positions(r);
            let span = layout.kernel_position(layout.filters_in(r) - 1, 0, 0, 0) + 1;
            for g in 0..layout.digits {
                acc.clear();
                for (gr, q) in queries.iter().enumerate() {
                    what.iter_mut().for_each(|v| *v = 0);
                    for p in 0..layout.filters_in(r) {
                        let m = r * layout.packed + p;
                        let kernel = &kernels[m * per_filter..(m + 1) * per_filter];
                        for c in 0..layout.cols(gr) {
                            let channel = gr * layout.group + c;
                            for l in 0..s.kernel_h {
                                for l2 in 0..s.kernel_w {
                                    let v = kernel[(channel * s.kernel_h + l) * s.kernel_w + l2];
                                    split_digits(v, layout.digit_bits, layout.digits, &mut digit);
                                    let pos = layout.kernel_position(p, c, l, l2);
                                    for (li, md) in params.moduli().iter().enumerate() {
                                        what[li * n + pos] = md.from_i64(digit[g]);
                                    }
                                }
                            }
                        }
                    }
                    for l in 0..levels {
                        params
                            .table(l)
                            .forward_sparse(&mut what[l * n..(l + 1) * n], span);
                    }
                    acc.add_products(&params, (&q.0, &q.1), &what);
                }
                let first = r * layout.packed * ohw;
                let slots: Vec<usize> = (first..first + used.len()).collect();
                let spec = ResultSpec {
                    used: &used,
                    slots: &slots,
                    shift: g as u32 * layout.digit_bits,
                    flood: layout.flood,
                    keep: layout.result_levels,
                    switch_b: true,
                };
                cts.push(self.finish_result(key, &mut acc, &spec, &mut share));
            }
        }
        Ok((
            ConvResponseMsg {
                layout: *layout,
                cts,
            },
            share,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matmul::PublicKeyMsg;
    use crate::CostModel;
    use proptest::prelude::*;
    use std::sync::Arc;

    /// The convolution over `Z_2^64`, directly.
    fn reference(x: &[u64], k: &[u64], s: ConvShape) -> Vec<u64> {
        let (oh, ow) = (s.out_h(), s.out_w());
        let mut y = vec![0u64; s.filters * oh * ow];
        for m in 0..s.filters {
            for i in 0..oh {
                for j in 0..ow {
                    let mut acc = 0u64;
                    for c in 0..s.channels {
                        for l in 0..s.kernel_h {
                            for l2 in 0..s.kernel_w {
                                let xv = x[(c * s.height + i + l) * s.width + j + l2];
                                let kv =
                                    k[((m * s.channels + c) * s.kernel_h + l) * s.kernel_w + l2];
                                acc = acc.wrapping_add(xv.wrapping_mul(kv));
                            }
                        }
                    }
                    y[(m * oh + i) * ow + j] = acc;
                }
            }
        }
        y
    }

    fn lcg(seed: u64, len: usize) -> Vec<u64> {
        let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s ^ (s >> 29)
            })
            .collect()
    }

    fn signed(v: &[u64], bits: u32) -> Vec<u64> {
        v.iter()
            .map(|&v| {
                if bits == 64 {
                    v
                } else {
                    ((v as i64) >> (64 - bits)) as u64
                }
            })
            .collect()
    }

    /// Through bytes, sizes checked; returns (client share, server share).
    fn run(
        params: &Arc<Params>,
        layout: &ConvLayout,
        x: &[u64],
        k: &[u64],
        seed: u64,
    ) -> (Vec<u64>, Vec<u64>) {
        let mut client = Client::from_seed_for_tests(params.clone(), seed);
        let mut server = Server::from_seed_for_tests(params.clone(), seed ^ 0x77);
        let pk = PublicKeyMsg::from_bytes(&client.public_key().to_bytes(params), params).unwrap();
        let key = PeerKey::new(params.clone(), &pk).unwrap();
        let q = client.conv_query(layout, x).unwrap().to_bytes(params);
        assert_eq!(q.len(), layout.query_bytes(params));
        let q = ConvQueryMsg::from_bytes(&q, params, layout).unwrap();
        let (resp, server_share) = server.conv_respond(&key, layout, k, &q).unwrap();
        let r = resp.to_bytes(params);
        assert_eq!(r.len(), layout.response_bytes(params));
        let resp = ConvResponseMsg::from_bytes(&r, params, layout).unwrap();
        (client.conv_finish(layout, &resp).unwrap(), server_share)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn homconv_matches_the_convolution(
            channels in 1usize..6, height in 1usize..9, width in 1usize..9,
            filters in 1usize..5, kh in 1usize..4, kw in 1usize..4, packed in 1usize..4,
            w_bits in prop::sample::select(vec![4u32, 16, 64]),
            seed in any::<u64>(), q180 in any::<bool>(),
        ) {
            prop_assume!(kh <= height && kw <= width);
            // N = 64 splits larger inputs into several groups of channels;
            // N = 256 leaves room for several kernels per product.
            let n = if packed > 1 { 256 } else { 64 };
            let params = if q180 { Params::insecure_q180_for_tests(n) } else { Params::insecure_for_tests(n) };
            let shape = ConvShape { channels, height, width, filters, kernel_h: kh, kernel_w: kw };
            let layout = match ConvLayout::with_packing(&params, shape, w_bits, packed) {
                Ok(l) => l,
                Err(_) => {
                    // only a channel larger than the ring, or packed
                    // kernels that do not fit it
                    prop_assert!(height * width > n || packed > 1);
                    return Ok(());
                }
            };
            prop_assert_eq!(layout.packed, packed);
            let x = lcg(seed, channels * height * width);
            let k = signed(&lcg(seed ^ 3, filters * channels * kh * kw), w_bits);
            let (c, s) = run(&params, &layout, &x, &k, seed);
            let sum: Vec<u64> = c.iter().zip(&s).map(|(a, b)| a.wrapping_add(*b)).collect();
            prop_assert_eq!(sum, reference(&x, &k, shape));
        }

        #[test]
        fn corrupted_bytes_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
            let params = Params::insecure_for_tests(32);
            let shape = ConvShape { channels: 2, height: 3, width: 3, filters: 2, kernel_h: 2, kernel_w: 2 };
            let layout = ConvLayout::new(&params, shape, 64, ).unwrap();
            let mut client = Client::from_seed_for_tests(params.clone(), 1);
            let mut server = Server::from_seed_for_tests(params.clone(), 2);
            let key = PeerKey::new(params.clone(), &client.public_key()).unwrap();
            let q = client.conv_query(&layout, &lcg(1, 18)).unwrap();
            let kernels = lcg(2, 16);
            let (resp, _) = server.conv_respond(&key, &layout, &kernels, &q).unwrap();
            for bytes in [q.to_bytes(&params), resp.to_bytes(&params)] {
                let mut b = bytes.clone();
                for (i, v) in &flips {
                    let at = i.index(b.len());
                    b[at] ^= v;
                }
                if let Ok(q2) = ConvQueryMsg::from_bytes(&b, &params, &layout) {
                    let _ = server.conv_respond(&key, &layout, &kernels, &q2);
                }
                if let Ok(r2) = ConvResponseMsg::from_bytes(&b, &params, &layout) {
                    let _ = client.conv_finish(&layout, &r2);
                }
                let short = &bytes[..cut.index(bytes.len())];
                prop_assert!(ConvQueryMsg::from_bytes(short, &params, &layout).is_err());
                prop_assert!(ConvResponseMsg::from_bytes(short, &params, &layout).is_err());
            }
        }
    }

    #[test]
    fn lenet5_shapes_at_real_parameters() {
        // LeNet-5's first convolution on a padded 32 x 32 input, and its
        // second on 6 x 14 x 14, 8-bit kernels (16 fractional bits of a
        // weight below 2^-8 in magnitude would need more; the product is
        // exact for any entry within w_bits).
        let params = Params::n8192_q128();
        for (shape, seed) in [
            (
                ConvShape {
                    channels: 1,
                    height: 32,
                    width: 32,
                    filters: 6,
                    kernel_h: 5,
                    kernel_w: 5,
                },
                1,
            ),
            (
                ConvShape {
                    channels: 6,
                    height: 14,
                    width: 14,
                    filters: 16,
                    kernel_h: 5,
                    kernel_w: 5,
                },
                2,
            ),
        ] {
            let layout = ConvLayout::new(&params, shape, 16).unwrap();
            assert_eq!(layout.groups(), 1);
            let chosen =
                ConvLayout::choose(&params, shape, 16, &CostModel::default_for(&params)).unwrap();
            assert!(chosen.packed > 1, "{chosen:?}");
            // one 128-bit coefficient per input element
            let inputs = shape.channels * shape.height * shape.width;
            assert_eq!(
                layout.query_bytes(&params),
                wire::HEADER_BYTES + GEOMETRY_BYTES + 16 + inputs * 16
            );
            let x = lcg(seed, inputs);
            let k = signed(&lcg(seed + 9, shape.filters * shape.channels * 25), 16);
            for layout in [layout, chosen] {
                let (c, s) = run(&params, &layout, &x, &k, seed);
                let sum: Vec<u64> = c.iter().zip(&s).map(|(a, b)| a.wrapping_add(*b)).collect();
                assert_eq!(sum, reference(&x, &k, shape));
            }
        }
    }

    #[test]
    fn malformed_messages_are_typed_errors() {
        let params = Params::insecure_for_tests(64);
        let shape = ConvShape {
            channels: 3,
            height: 4,
            width: 4,
            filters: 2,
            kernel_h: 3,
            kernel_w: 2,
        };
        let layout = ConvLayout::new(&params, shape, 16).unwrap();
        let other = ConvLayout::new(
            &params,
            ConvShape {
                filters: 3,
                ..shape
            },
            16,
        )
        .unwrap();
        let params256 = Params::insecure_for_tests(256);
        let packed = ConvLayout::with_packing(&params256, shape, 16, 2).unwrap();
        let single = ConvLayout::new(&params256, shape, 16).unwrap();
        let mut client = Client::from_seed_for_tests(params.clone(), 5);
        let mut server = Server::from_seed_for_tests(params.clone(), 6);
        let key = PeerKey::new(params.clone(), &client.public_key()).unwrap();
        let x = lcg(3, 48);
        let q = client.conv_query(&layout, &x).unwrap();
        let q_bytes = q.to_bytes(&params);
        let parse = |b: &[u8]| ConvQueryMsg::from_bytes(b, &params, &layout);
        assert!(parse(&q_bytes).is_ok());
        assert!(matches!(
            parse(&q_bytes[..q_bytes.len() - 1]),
            Err(Error::Wire(WireError::Length { .. }))
        ));
        let mut long = q_bytes.clone();
        long.push(1);
        assert!(matches!(
            parse(&long),
            Err(Error::Wire(WireError::Length { .. }))
        ));
        // another geometry, another kind
        assert_eq!(
            ConvQueryMsg::from_bytes(&q_bytes, &params, &other),
            Err(Error::Wire(WireError::Layout))
        );
        let mut bad = q_bytes.clone();
        bad[wire::HEADER_BYTES] ^= 1; // the channel count
        assert_eq!(parse(&bad), Err(Error::Wire(WireError::Layout)));
        assert!(matches!(
            ConvResponseMsg::from_bytes(&q_bytes, &params, &layout),
            Err(Error::Wire(WireError::Kind {
                expected: 9,
                got: 8
            }))
        ));
        // a residue equal to its prime, right after the geometry and seed
        let mut bad = q_bytes.clone();
        let at = wire::HEADER_BYTES + GEOMETRY_BYTES + 16;
        let bits = params.residue_bits(0);
        let mut word = [0u8; 8];
        word.copy_from_slice(&bad[at..at + 8]);
        let old = u64::from_le_bytes(word);
        let new = (old & !((1u64 << bits) - 1)) | params.moduli()[0].value();
        bad[at..at + 8].copy_from_slice(&new.to_le_bytes());
        assert_eq!(
            parse(&bad),
            Err(Error::Wire(WireError::Range { index: 0, prime: 0 }))
        );
        // shapes and widths
        assert!(matches!(
            client.conv_query(&layout, &x[..47]),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            server.conv_respond(&key, &layout, &[0; 35], &q),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            server.conv_respond(&key, &layout, &[1 << 20; 36], &q),
            Err(Error::Shape(_))
        ));
        let mut short = q.clone();
        short.b[0].pop();
        assert!(server
            .conv_respond(&key, &layout, &[1; 36], &short)
            .is_err());
        let (mut resp, _) = server.conv_respond(&key, &layout, &[1; 36], &q).unwrap();
        resp.cts[0].b.pop();
        assert!(client.conv_finish(&layout, &resp).is_err());
        // one kernel per product is not two
        let mut c256 = Client::from_seed_for_tests(params256.clone(), 5);
        let q256 = c256.conv_query(&packed, &x).unwrap().to_bytes(&params256);
        assert!(ConvQueryMsg::from_bytes(&q256, &params256, &packed).is_ok());
        assert!(matches!(
            ConvQueryMsg::from_bytes(&q256, &params256, &single),
            Err(Error::Wire(_))
        ));
        assert!(ConvLayout::with_packing(&params256, shape, 16, 3).is_err());
        // layouts that cannot be made
        assert!(ConvLayout::new(
            &params,
            ConvShape {
                kernel_h: 5,
                ..shape
            },
            16
        )
        .is_err());
        assert!(ConvLayout::new(
            &params,
            ConvShape {
                height: 9,
                width: 9,
                ..shape
            },
            16
        )
        .is_err());
        assert!(ConvLayout::new(
            &params,
            ConvShape {
                filters: 0,
                ..shape
            },
            16
        )
        .is_err());
    }
}
