//! The product `x @ W` with its input-independent work done ahead: the same
//! ciphertexts as [`crate::matmul`], split so that only the coefficients
//! that carry `x` (and the coefficients of the results that carry outputs)
//! travel once `x` is known, and the online work has no transform.
//!
//! # Why it splits
//!
//! A query is `b = Delta x^ - a s + e` with `a` expanded from a seed. Every
//! part of it but `Delta x^` at the input positions is known before `x`:
//! the seed, and `b` at the coefficients that carry no input (encryptions
//! of 0). The server's result is `(b, a) * w^ + u pk + (e1 + mask + flood,
//! e2)`, linear in the query. So
//!
//! - offline, the client sends the seed and `b` off the input positions
//!   ([`OfflineQueryMsg`]); the server runs the whole protocol on that query
//!   with the input positions zero: products, re-randomisation, mask,
//!   flooding, switching `a` down. It sends the results' `a` halves
//!   ([`OfflineResponseMsg`]) and keeps their `b` halves at the used
//!   coefficients on every prime; the client computes `a s` at the used
//!   coefficients (the only transforms left are here);
//! - online, the client sends `b` at the input positions only
//!   ([`OnlineQueryMsg`], `log2 q / 8` bytes per input element): the
//!   encoding of `x` plus its precomputed `-a s + e`. The server adds their
//!   products with `W` to the kept `b` halves. A used coefficient of a
//!   result (row `r`, column `j`) is reached by the input positions only
//!   through `sum_c b[r, c] W[c, j]` (see [`crate::layout`]: no other pair
//!   of an input and a weight coefficient meets there, and wrapped
//!   exponents land below `d1 - 1`), so this is a plain matrix product
//!   modulo each prime, `batch k n` multiply-accumulates per prime and
//!   digit, whatever the tiling. The server switches the sums down and
//!   sends them ([`OnlineResponseMsg`]); the client adds its `a s` and
//!   decodes.
//!
//! The ciphertexts are exactly those of [`crate::Server::respond`], so the
//! noise budget and the circuit-privacy argument of [`crate::layout`] hold
//! unchanged. Freshness is in the types: every preprocessed value (the
//! client's `-a s + e`, the server's masks, flooding and re-randomiser) is
//! consumed by value by the one online step that uses it, so none can serve
//! two inputs. (Two online queries on one `-a s + e` would reveal the
//! difference of the inputs.)

use zeroize::Zeroizing;

use crate::layout::Layout;
use crate::matmul::{
    check_layout, check_weights, switch_down, weight_digits, wrong_size, Client, PeerKey, QueryMsg,
    Server, DOMAIN_QUERY,
};
use crate::params::Params;
use crate::sample::{expand_uniform_ntt, Seed};
use crate::wire::{self, Reader, WireError, Writer};
use crate::Error;

const KIND_OFFLINE_QUERY: u8 = 4;
const KIND_OFFLINE_RESPONSE: u8 = 5;
const KIND_ONLINE_QUERY: u8 = 6;
const KIND_ONLINE_RESPONSE: u8 = 7;

/// `W` made ready once per model: its digits, and their residues modulo
/// every prime for the online products. Zeroized on drop.
pub struct PreparedWeights {
    layout: Layout,
    /// [`weight_digits`]: `digits[g k n + row n + col]`.
    digits: Zeroizing<Vec<i64>>,
    /// `residues[(g L + l) k n + row n + col]`: digit `g` modulo prime `l`.
    residues: Zeroizing<Vec<u64>>,
    /// The plaintext tiles in NTT form, when they take at most
    /// [`CACHED_TILE_BYTES`]; otherwise each preprocessing transforms them.
    tiles: Option<Zeroizing<Vec<u64>>>,
}

/// The most memory [`PreparedWeights`] keeps `W`'s tiles in NTT form in.
pub const CACHED_TILE_BYTES: usize = 64 << 20;

impl std::fmt::Debug for PreparedWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PreparedWeights {{ {:?}, .. }}", self.layout.shape)
    }
}

impl PreparedWeights {
    /// `w` is `[k, n]`, row-major, each entry within `layout.w_bits` signed bits.
    pub fn new(params: &Params, layout: &Layout, w: &[u64]) -> Result<PreparedWeights, Error> {
        check_layout(params, layout)?;
        check_weights(layout, w)?;
        let digits = weight_digits(layout, w);
        let kn = w.len();
        let levels = params.levels();
        let mut residues = Zeroizing::new(vec![0u64; layout.digits * levels * kn]);
        for g in 0..layout.digits {
            for (l, md) in params.moduli().iter().enumerate() {
                let dst = &mut residues[(g * levels + l) * kn..(g * levels + l + 1) * kn];
                for (d, &v) in dst.iter_mut().zip(&digits[g * kn..(g + 1) * kn]) {
                    *d = md.from_i64(v);
                }
            }
        }
        let tiles = Server::weight_tiles(params, layout, &digits, CACHED_TILE_BYTES);
        Ok(PreparedWeights {
            layout: *layout,
            digits,
            residues,
            tiles,
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }
}

/// Offline, client -> server: the query's seed and `b` at
/// [`Layout::offline_positions`].
#[derive(Clone, PartialEq, Eq)]
pub struct OfflineQueryMsg {
    pub layout: Layout,
    pub seed: Seed,
    /// Per query ciphertext `(i, t)`, row-major: `L * offline count`
    /// residues, prime-major.
    pub b: Vec<Vec<u64>>,
}

/// Offline, server -> client: the `a` half of every result (all `N`
/// coefficients, on the layout's kept primes), in the order of
/// [`crate::ResponseMsg`].
#[derive(Clone, PartialEq, Eq)]
pub struct OfflineResponseMsg {
    pub layout: Layout,
    pub a: Vec<Vec<u64>>,
}

/// Online, client -> server: `b` at the input positions, `L * batch * k`
/// residues, prime-major, each prime's in the row-major order of `x`.
#[derive(Clone, PartialEq, Eq)]
pub struct OnlineQueryMsg {
    pub layout: Layout,
    pub b: Vec<u64>,
}

/// Online, server -> client: per result, `b` at the used coefficients on
/// the kept primes (`kept * used` residues, prime-major).
#[derive(Clone, PartialEq, Eq)]
pub struct OnlineResponseMsg {
    pub layout: Layout,
    pub b: Vec<Vec<u64>>,
}

macro_rules! debug_counts {
    ($t:ty, $field:ident) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    "{} {{ {:?}, {} parts }}",
                    stringify!($t),
                    self.layout.shape,
                    self.$field.len()
                )
            }
        }
    };
}
debug_counts!(OfflineQueryMsg, b);
debug_counts!(OfflineResponseMsg, a);
debug_counts!(OnlineQueryMsg, b);
debug_counts!(OnlineResponseMsg, b);

impl OfflineQueryMsg {
    pub fn to_bytes(&self, params: &Params) -> Vec<u8> {
        let len = self.layout.offline_query_bytes(params);
        let mut w = Writer::header(params, KIND_OFFLINE_QUERY, Some(&self.layout), len);
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
        layout: &Layout,
    ) -> Result<OfflineQueryMsg, Error> {
        check_layout(params, layout)?;
        let len = layout.offline_query_bytes(params);
        let mut r = Reader::open(bytes, params, KIND_OFFLINE_QUERY, Some(layout), len)?;
        let seed = r.raw::<16>();
        let levels = params.levels();
        let mut b = Vec::with_capacity(layout.query_count());
        for i in 0..layout.m_tiles() {
            for t in 0..layout.k_tiles() {
                let count = offline_count(layout, i, t);
                let mut v = vec![0u64; count * levels];
                r.residues(params, levels, count, &mut v)?;
                b.push(v);
            }
        }
        Ok(OfflineQueryMsg {
            layout: *layout,
            seed,
            b,
        })
    }
}

impl OfflineResponseMsg {
    pub fn to_bytes(&self, params: &Params) -> Vec<u8> {
        let len = self.layout.offline_response_bytes(params);
        let mut w = Writer::header(params, KIND_OFFLINE_RESPONSE, Some(&self.layout), len);
        let l = self.layout.result_levels;
        for a in &self.a {
            wire::write_residues(&mut w, params, l, a.len() / l, a);
        }
        w.finish()
    }

    pub fn from_bytes(
        bytes: &[u8],
        params: &Params,
        layout: &Layout,
    ) -> Result<OfflineResponseMsg, Error> {
        check_layout(params, layout)?;
        let len = layout.offline_response_bytes(params);
        let mut r = Reader::open(bytes, params, KIND_OFFLINE_RESPONSE, Some(layout), len)?;
        let (n, l) = (params.n(), layout.result_levels);
        let mut a = Vec::with_capacity(layout.result_count());
        for _ in 0..layout.result_count() {
            let mut v = vec![0u64; n * l];
            r.residues(params, l, n, &mut v)?;
            a.push(v);
        }
        Ok(OfflineResponseMsg { layout: *layout, a })
    }
}

impl OnlineQueryMsg {
    pub fn to_bytes(&self, params: &Params) -> Vec<u8> {
        let len = self.layout.online_query_bytes(params);
        let mut w = Writer::header(params, KIND_ONLINE_QUERY, Some(&self.layout), len);
        let levels = params.levels();
        wire::write_residues(&mut w, params, levels, self.b.len() / levels, &self.b);
        w.finish()
    }

    pub fn from_bytes(
        bytes: &[u8],
        params: &Params,
        layout: &Layout,
    ) -> Result<OnlineQueryMsg, Error> {
        check_layout(params, layout)?;
        let len = layout.online_query_bytes(params);
        let mut r = Reader::open(bytes, params, KIND_ONLINE_QUERY, Some(layout), len)?;
        let count = layout.shape.batch * layout.shape.k;
        let mut b = vec![0u64; count * params.levels()];
        r.residues(params, params.levels(), count, &mut b)?;
        Ok(OnlineQueryMsg { layout: *layout, b })
    }
}

impl OnlineResponseMsg {
    pub fn to_bytes(&self, params: &Params) -> Vec<u8> {
        let len = self.layout.online_response_bytes(params);
        let mut w = Writer::header(params, KIND_ONLINE_RESPONSE, Some(&self.layout), len);
        let l = self.layout.result_levels;
        for b in &self.b {
            wire::write_residues(&mut w, params, l, b.len() / l, b);
        }
        w.finish()
    }

    pub fn from_bytes(
        bytes: &[u8],
        params: &Params,
        layout: &Layout,
    ) -> Result<OnlineResponseMsg, Error> {
        check_layout(params, layout)?;
        let len = layout.online_response_bytes(params);
        let mut r = Reader::open(bytes, params, KIND_ONLINE_RESPONSE, Some(layout), len)?;
        let l = layout.result_levels;
        let mut b = Vec::with_capacity(layout.result_count());
        for (i, s, _) in results(layout) {
            let used = layout.rows(i) * layout.out_cols(s);
            let mut v = vec![0u64; used * l];
            r.residues(params, l, used, &mut v)?;
            b.push(v);
        }
        Ok(OnlineResponseMsg { layout: *layout, b })
    }
}

fn offline_count(layout: &Layout, i: usize, t: usize) -> usize {
    if layout.d2 == 1 {
        0
    } else {
        layout.ring_degree - layout.rows(i) * layout.cols(t)
    }
}

/// `(row tile, column tile, digit)` of every result, in message order.
fn results(layout: &Layout) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    (0..layout.m_tiles()).flat_map(move |i| {
        (0..layout.n_tiles()).flat_map(move |s| (0..layout.digits).map(move |g| (i, s, g)))
    })
}

/// The client after [`Client::prepare`]: `-a s + e` at the input positions,
/// waiting for the server's [`OfflineResponseMsg`].
pub struct PendingQuery {
    layout: Layout,
    /// `L * batch * k`, prime-major, the row-major order of `x`.
    pad: Zeroizing<Vec<u64>>,
}

/// The client ready for one input ([`Client::online_query`] consumes it).
pub struct PreparedQuery {
    layout: Layout,
    pad: Zeroizing<Vec<u64>>,
    /// Per result, `a s` at the used coefficients on the kept primes.
    phase: Zeroizing<Vec<Vec<u64>>>,
}

/// The client after its online query, waiting for [`OnlineResponseMsg`].
pub struct PendingResult {
    layout: Layout,
    phase: Zeroizing<Vec<Vec<u64>>>,
}

/// The server's preprocessed results for one query ([`Server::online`]
/// consumes it): `b` at the used coefficients on every prime, already
/// re-randomised, masked and flooded, and the server's share.
pub struct PreparedResponse {
    layout: Layout,
    b: Zeroizing<Vec<Vec<u64>>>,
    share: Zeroizing<Vec<u64>>,
}

macro_rules! debug_opaque {
    ($($t:ty),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{} {{ {:?}, .. }}", stringify!($t), self.layout.shape)
            }
        }
    )*};
}
debug_opaque!(PendingQuery, PreparedQuery, PendingResult, PreparedResponse);

impl Client {
    /// Offline: a fresh seed, and the query's `b` everywhere but at the
    /// inputs. Keeps `-a s + e` at the inputs for [`Client::online_query`].
    pub fn prepare(&mut self, layout: &Layout) -> Result<(OfflineQueryMsg, PendingQuery), Error> {
        let params = self.params.clone();
        check_layout(&params, layout)?;
        let (n, levels) = (params.n(), params.levels());
        let shape = layout.shape;
        let inputs = shape.batch * shape.k;
        let seed = self.rng.seed();
        let mut a = vec![0u64; n * levels];
        let mut as_ = Zeroizing::new(vec![0u64; n * levels]);
        let mut pad = Zeroizing::new(vec![0u64; inputs * levels]);
        let mut cts = Vec::with_capacity(layout.query_count());
        // -a s + e at one coefficient, on every prime.
        let mut encrypt_zero = |as_: &[u64], pos: usize, out: &mut dyn FnMut(usize, u64)| {
            let e = self.rng.cbd();
            for (l, md) in params.moduli().iter().enumerate() {
                out(l, md.add(md.neg(as_[l * n + pos]), md.from_i64(e)));
            }
        };
        for i in 0..layout.m_tiles() {
            for t in 0..layout.k_tiles() {
                let index = (i * layout.k_tiles() + t) as u32;
                expand_uniform_ntt(&params, &seed, DOMAIN_QUERY, index, &mut a);
                self.sk.mul_ntt(&a, &mut as_);
                for r in 0..layout.rows(i) {
                    for c in 0..layout.cols(t) {
                        let x_index = (i * layout.d0 + r) * shape.k + t * layout.d1 + c;
                        encrypt_zero(&as_, layout.query_position(r, c), &mut |l, v| {
                            pad[l * inputs + x_index] = v
                        });
                    }
                }
                let positions = layout.offline_positions(i, t);
                let count = positions.len();
                let mut b = vec![0u64; count * levels];
                for (j, &pos) in positions.iter().enumerate() {
                    encrypt_zero(&as_, pos, &mut |l, v| b[l * count + j] = v);
                }
                cts.push(b);
            }
        }
        Ok((
            OfflineQueryMsg {
                layout: *layout,
                seed,
                b: cts,
            },
            PendingQuery {
                layout: *layout,
                pad,
            },
        ))
    }

    /// Offline: takes the results' `a` halves and computes `a s` at the
    /// used coefficients.
    pub fn prepare_finish(
        &self,
        pending: PendingQuery,
        response: &OfflineResponseMsg,
    ) -> Result<PreparedQuery, Error> {
        let params = &self.params;
        let layout = pending.layout;
        if response.layout != layout || response.a.len() != layout.result_count() {
            return Err(Error::Wire(WireError::Layout));
        }
        let n = params.n();
        let levels = layout.result_levels;
        let mut a_ntt = vec![0u64; n * levels];
        let mut as_ = Zeroizing::new(vec![0u64; n * levels]);
        let mut phase = Zeroizing::new(Vec::with_capacity(layout.result_count()));
        for ((i, s, _), a) in results(&layout).zip(&response.a) {
            if a.len() != n * levels {
                return Err(wrong_size("result ciphertext"));
            }
            for (l, md) in params.moduli().iter().enumerate().take(levels) {
                let src = &a[l * n..(l + 1) * n];
                if let Some(index) = src.iter().position(|&v| v >= md.value()) {
                    return Err(Error::Wire(WireError::Range { index, prime: l }));
                }
                a_ntt[l * n..(l + 1) * n].copy_from_slice(src);
                params.table(l).forward(&mut a_ntt[l * n..(l + 1) * n]);
            }
            self.sk.mul_ntt_prefix(levels, &a_ntt, &mut as_);
            let used = layout.used_positions(i, s);
            let mut p = vec![0u64; used.len() * levels];
            for l in 0..levels {
                for (u, &pos) in used.iter().enumerate() {
                    p[l * used.len() + u] = as_[l * n + pos];
                }
            }
            phase.push(p);
        }
        Ok(PreparedQuery {
            layout,
            pad: pending.pad,
            phase,
        })
    }

    /// Online: `b` at the input positions, the encoding of `x`
    /// (`[batch, k]`, row-major) plus the precomputed `-a s + e`.
    pub fn online_query(
        &self,
        prepared: PreparedQuery,
        x: &[u64],
    ) -> Result<(OnlineQueryMsg, PendingResult), Error> {
        let params = &self.params;
        let layout = prepared.layout;
        let inputs = layout.shape.batch * layout.shape.k;
        if x.len() != inputs {
            return Err(Error::Shape(format!(
                "x has {} values, the layout expects {} x {} = {}",
                x.len(),
                layout.shape.batch,
                layout.shape.k,
                inputs
            )));
        }
        let mut b = prepared.pad.to_vec();
        let mut enc = Zeroizing::new([0u64; 8]);
        for (idx, &m) in x.iter().enumerate() {
            if m == 0 {
                continue;
            }
            params.encode_scaled(m, &mut enc[..]);
            for (l, md) in params.moduli().iter().enumerate() {
                let v = &mut b[l * inputs + idx];
                *v = md.add(*v, enc[l]);
            }
        }
        Ok((
            OnlineQueryMsg { layout, b },
            PendingResult {
                layout,
                phase: prepared.phase,
            },
        ))
    }

    /// Online: decrypts this party's share of `x @ W` (`[batch, n]`).
    pub fn online_finish(
        &self,
        pending: PendingResult,
        response: &OnlineResponseMsg,
    ) -> Result<Vec<u64>, Error> {
        let params = &self.params;
        let layout = pending.layout;
        if response.layout != layout || response.b.len() != layout.result_count() {
            return Err(Error::Wire(WireError::Layout));
        }
        let shape = layout.shape;
        let levels = layout.result_levels;
        let mut share = vec![0u64; shape.batch * shape.n];
        for (((i, s, g), b), phase) in results(&layout).zip(&response.b).zip(pending.phase.iter()) {
            let count = layout.rows(i) * layout.out_cols(s);
            if b.len() != count * levels {
                return Err(wrong_size("online result"));
            }
            for (l, md) in params.moduli().iter().enumerate().take(levels) {
                let part = &b[l * count..(l + 1) * count];
                if let Some(index) = part.iter().position(|&v| v >= md.value()) {
                    return Err(Error::Wire(WireError::Range { index, prime: l }));
                }
            }
            let shift = g as u32 * layout.digit_bits;
            let cols = layout.out_cols(s);
            for u in 0..count {
                let v = params.decode_prefix(
                    levels,
                    params
                        .moduli()
                        .iter()
                        .enumerate()
                        .map(|(l, md)| md.add(phase[l * count + u], b[l * count + u])),
                );
                let (r, j) = (u / cols, u % cols);
                let out = &mut share[(i * layout.d0 + r) * shape.n + s * layout.d2 + j];
                *out = out.wrapping_add(v.wrapping_shl(shift));
            }
        }
        Ok(share)
    }
}

impl Server {
    /// Offline: runs the protocol on the query with its inputs zero; returns
    /// the results' `a` halves and keeps their `b` halves and the server's
    /// share (fresh masks, flooding and re-randomiser for this query only).
    pub fn prepare(
        &mut self,
        key: &PeerKey,
        weights: &PreparedWeights,
        query: &OfflineQueryMsg,
    ) -> Result<(OfflineResponseMsg, PreparedResponse), Error> {
        let params = self.params.clone();
        let layout = weights.layout;
        check_layout(&params, &layout)?;
        if key.params.fingerprint() != params.fingerprint() {
            return Err(Error::Wire(WireError::Parameters {
                expected: params.fingerprint(),
                got: key.params.fingerprint(),
            }));
        }
        if query.layout != layout || query.b.len() != layout.query_count() {
            return Err(Error::Wire(WireError::Layout));
        }
        let (n, levels) = (params.n(), params.levels());
        // The full query of `respond`, with zeros at the inputs.
        let mut full = Vec::with_capacity(layout.query_count());
        for i in 0..layout.m_tiles() {
            for t in 0..layout.k_tiles() {
                let sent = &query.b[i * layout.k_tiles() + t];
                let offline = layout.offline_positions(i, t);
                if sent.len() != offline.len() * levels {
                    return Err(wrong_size("offline query ciphertext"));
                }
                let count = layout.sent_count(i, t);
                let mut b = vec![0u64; count * levels];
                if layout.d2 > 1 {
                    // sent positions are 0..N: index = position
                    for l in 0..levels {
                        for (j, &pos) in offline.iter().enumerate() {
                            b[l * n + pos] = sent[l * offline.len() + j];
                        }
                    }
                }
                full.push(b);
            }
        }
        let full = QueryMsg {
            layout,
            seed: query.seed,
            b: full,
        };
        let tiles = weights.tiles.as_ref().map(|t| &t[..]);
        let (cts, share) =
            self.respond_digits(key, &layout, &weights.digits, tiles, &full, false)?;
        let mut a = Vec::with_capacity(cts.len());
        let mut b = Zeroizing::new(Vec::with_capacity(cts.len()));
        for ct in cts {
            a.push(ct.a);
            b.push(ct.b);
        }
        Ok((
            OfflineResponseMsg { layout, a },
            PreparedResponse {
                layout,
                b,
                share: Zeroizing::new(share),
            },
        ))
    }

    /// Online: adds the inputs' products with `W` to the preprocessed
    /// results, switches them down, and returns them with this party's
    /// share of `x @ W` (`[batch, n]`). No transform: `batch k n` products
    /// per prime and digit.
    pub fn online(
        &self,
        weights: &PreparedWeights,
        prepared: PreparedResponse,
        query: &OnlineQueryMsg,
    ) -> Result<(OnlineResponseMsg, Vec<u64>), Error> {
        let params = &self.params;
        let layout = weights.layout;
        if prepared.layout != layout || query.layout != layout {
            return Err(Error::Wire(WireError::Layout));
        }
        let shape = layout.shape;
        let (batch, k, nc) = (shape.batch, shape.k, shape.n);
        let levels = params.levels();
        if query.b.len() != batch * k * levels {
            return Err(wrong_size("online query"));
        }
        for (l, md) in params.moduli().iter().enumerate() {
            let part = &query.b[l * batch * k..(l + 1) * batch * k];
            if let Some(index) = part.iter().position(|&v| v >= md.value()) {
                return Err(Error::Wire(WireError::Range { index, prime: l }));
            }
        }
        let mut b = prepared.b;
        for ((i, s, _), ct) in results(&layout).zip(b.iter()) {
            if ct.len() != layout.rows(i) * layout.out_cols(s) * levels {
                return Err(wrong_size("prepared result"));
            }
        }
        let kn = k * nc;
        let nt = layout.n_tiles();
        // Residues below 2^50: a product is below 2^100 and a sum of at most
        // 2^24 of them (the largest k a layout allows) fits 128 bits.
        let mut acc = vec![0u128; nc];
        for g in 0..layout.digits {
            for (l, md) in params.moduli().iter().enumerate() {
                let w = &weights.residues[(g * levels + l) * kn..(g * levels + l + 1) * kn];
                let q = &query.b[l * batch * k..(l + 1) * batch * k];
                for r in 0..batch {
                    acc.iter_mut().for_each(|v| *v = 0);
                    for (c, &bv) in q[r * k..(r + 1) * k].iter().enumerate() {
                        let bv = bv as u128;
                        for (a, &wv) in acc.iter_mut().zip(&w[c * nc..(c + 1) * nc]) {
                            *a += bv * wv as u128;
                        }
                    }
                    let (i, rr) = (r / layout.d0, r % layout.d0);
                    for (j, &v) in acc.iter().enumerate() {
                        let (s, jj) = (j / layout.d2, j % layout.d2);
                        let cols = layout.out_cols(s);
                        let count = layout.rows(i) * cols;
                        let ct = &mut b[(i * nt + s) * layout.digits + g];
                        let slot = &mut ct[l * count + rr * cols + jj];
                        *slot = md.add(*slot, md.reduce_u128(v));
                    }
                }
            }
        }
        let keep = layout.result_levels;
        let mut out = Vec::with_capacity(b.len());
        for ((i, s, _), ct) in results(&layout).zip(b.iter()) {
            let count = layout.rows(i) * layout.out_cols(s);
            out.push(switch_down(params, ct, count, keep));
        }
        Ok((
            OnlineResponseMsg { layout, b: out },
            prepared.share.to_vec(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Shape;
    use crate::matmul::PublicKeyMsg;
    use crate::params::Params;
    use proptest::prelude::*;
    use std::sync::Arc;

    fn reference(x: &[u64], w: &[u64], shape: Shape) -> Vec<u64> {
        let mut y = vec![0u64; shape.batch * shape.n];
        for r in 0..shape.batch {
            for c in 0..shape.k {
                for j in 0..shape.n {
                    let v = &mut y[r * shape.n + j];
                    *v = v.wrapping_add(x[r * shape.k + c].wrapping_mul(w[c * shape.n + j]));
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

    fn parties(params: &Arc<Params>, seed: u64) -> (Client, Server, PeerKey) {
        let mut client = Client::from_seed_for_tests(params.clone(), seed);
        let server = Server::from_seed_for_tests(params.clone(), seed ^ 0x5555);
        let pk = PublicKeyMsg::from_bytes(&client.public_key().to_bytes(params), params).unwrap();
        let key = PeerKey::new(params.clone(), &pk).unwrap();
        (client, server, key)
    }

    /// All four messages through bytes, with their sizes checked; returns
    /// (client share, server share).
    fn run(
        params: &Arc<Params>,
        layout: &Layout,
        x: &[u64],
        w: &[u64],
        seed: u64,
    ) -> (Vec<u64>, Vec<u64>) {
        let (mut client, mut server, key) = parties(params, seed);
        let weights = PreparedWeights::new(params, layout, w).unwrap();
        let (oq, pending) = client.prepare(layout).unwrap();
        let bytes = oq.to_bytes(params);
        assert_eq!(bytes.len(), layout.offline_query_bytes(params));
        let oq = OfflineQueryMsg::from_bytes(&bytes, params, layout).unwrap();
        let (or, prepared_r) = server.prepare(&key, &weights, &oq).unwrap();
        let bytes = or.to_bytes(params);
        assert_eq!(bytes.len(), layout.offline_response_bytes(params));
        let or = OfflineResponseMsg::from_bytes(&bytes, params, layout).unwrap();
        let prepared_q = client.prepare_finish(pending, &or).unwrap();
        let (q, waiting) = client.online_query(prepared_q, x).unwrap();
        let bytes = q.to_bytes(params);
        assert_eq!(bytes.len(), layout.online_query_bytes(params));
        let q = OnlineQueryMsg::from_bytes(&bytes, params, layout).unwrap();
        let (resp, server_share) = server.online(&weights, prepared_r, &q).unwrap();
        let bytes = resp.to_bytes(params);
        assert_eq!(bytes.len(), layout.online_response_bytes(params));
        let resp = OnlineResponseMsg::from_bytes(&bytes, params, layout).unwrap();
        (client.online_finish(waiting, &resp).unwrap(), server_share)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn prepared_protocol_matches_matrix_product(
            batch in 1usize..6, k in 1usize..12, n in 1usize..7,
            d0 in 1usize..6, d1 in 1usize..12, d2 in 1usize..7,
            w_bits in prop::sample::select(vec![4u32, 16, 40, 64]),
            seed in any::<u64>(), q180 in any::<bool>(),
        ) {
            let params = if q180 { Params::insecure_q180_for_tests(128) } else { Params::insecure_for_tests(128) };
            prop_assume!(d0.min(batch) * d1.min(k) * d2.min(n) <= 128);
            let shape = Shape { batch, k, n };
            let layout = Layout::with_tiles(&params, shape, w_bits, d0, d1, d2).unwrap();
            let x = lcg(seed, batch * k);
            let w: Vec<u64> = lcg(seed ^ 1, k * n).iter()
                .map(|&v| if w_bits == 64 { v } else { ((v as i64) >> (64 - w_bits)) as u64 })
                .collect();
            let (c, s) = run(&params, &layout, &x, &w, seed);
            let sum: Vec<u64> = c.iter().zip(&s).map(|(a, b)| a.wrapping_add(*b)).collect();
            prop_assert_eq!(sum, reference(&x, &w, shape));
        }

        #[test]
        fn corrupted_bytes_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>(), d2 in 1usize..3) {
            let params = Params::insecure_for_tests(32);
            let shape = Shape { batch: 2, k: 3, n: 2 };
            let layout = Layout::with_tiles(&params, shape, 64, 2, 3, d2).unwrap();
            let (mut client, mut server, key) = parties(&params, 3);
            let weights = PreparedWeights::new(&params, &layout, &[1; 6]).unwrap();
            let (oq, pending) = client.prepare(&layout).unwrap();
            let (or, prepared_r) = server.prepare(&key, &weights, &oq).unwrap();
            let prepared_q = client.prepare_finish(pending, &or).unwrap();
            let (q, _waiting) = client.online_query(prepared_q, &[1, 2, 3, 4, 5, 6]).unwrap();
            let (resp, _) = server.online(&weights, prepared_r, &q).unwrap();
            for bytes in [oq.to_bytes(&params), or.to_bytes(&params), q.to_bytes(&params), resp.to_bytes(&params)] {
                let mut b = bytes.clone();
                for (i, v) in &flips {
                    let at = i.index(b.len());
                    b[at] ^= v;
                }
                if let Ok(m) = OfflineQueryMsg::from_bytes(&b, &params, &layout) {
                    let _ = server.prepare(&key, &weights, &m);
                }
                if let Ok(m) = OfflineResponseMsg::from_bytes(&b, &params, &layout) {
                    let (_, p) = client.prepare(&layout).unwrap();
                    let _ = client.prepare_finish(p, &m);
                }
                if let Ok(m) = OnlineQueryMsg::from_bytes(&b, &params, &layout) {
                    let (m2, _) = client.prepare(&layout).unwrap();
                    let (_, p) = server.prepare(&key, &weights, &m2).unwrap();
                    let _ = server.online(&weights, p, &m);
                }
                let _ = OnlineResponseMsg::from_bytes(&b, &params, &layout);
                let short = &bytes[..cut.index(bytes.len())];
                prop_assert!(OfflineQueryMsg::from_bytes(short, &params, &layout).is_err());
                prop_assert!(OfflineResponseMsg::from_bytes(short, &params, &layout).is_err());
                prop_assert!(OnlineQueryMsg::from_bytes(short, &params, &layout).is_err());
                prop_assert!(OnlineResponseMsg::from_bytes(short, &params, &layout).is_err());
            }
        }
    }

    #[test]
    fn real_parameters_upload_16_bytes_per_input() {
        let params = Params::n8192_q128();
        let shape = Shape {
            batch: 1,
            k: 64,
            n: 16,
        };
        let layout = Layout::with_tiles(&params, shape, 16, 1, 64, 16).unwrap();
        assert_eq!(
            layout.online_query_bytes(&params),
            wire::HEADER_BYTES + 64 * 16
        );
        let x = lcg(5, 64);
        let w: Vec<u64> = lcg(6, 64 * 16)
            .iter()
            .map(|&v| ((v as i64) >> 48) as u64)
            .collect();
        let (c, s) = run(&params, &layout, &x, &w, 11);
        let sum: Vec<u64> = c.iter().zip(&s).map(|(a, b)| a.wrapping_add(*b)).collect();
        assert_eq!(sum, reference(&x, &w, shape));
    }

    #[test]
    fn masks_are_fresh_per_query() {
        // Two preparations for one W: the server's shares differ, and each
        // decrypts correctly with its own client state only.
        let params = Params::insecure_for_tests(64);
        let shape = Shape {
            batch: 2,
            k: 4,
            n: 3,
        };
        let layout = Layout::with_tiles(&params, shape, 16, 2, 4, 3).unwrap();
        let (mut client, mut server, key) = parties(&params, 9);
        let w: Vec<u64> = (0..12u64).map(|v| v.wrapping_sub(6)).collect();
        let weights = PreparedWeights::new(&params, &layout, &w).unwrap();
        let (oq1, p1) = client.prepare(&layout).unwrap();
        let (oq2, p2) = client.prepare(&layout).unwrap();
        assert_ne!(oq1.seed, oq2.seed);
        let (or1, r1) = server.prepare(&key, &weights, &oq1).unwrap();
        let (or2, r2) = server.prepare(&key, &weights, &oq2).unwrap();
        assert_ne!(*r1.share, *r2.share);
        let x = lcg(1, 8);
        let q1 = client.prepare_finish(p1, &or1).unwrap();
        let q2 = client.prepare_finish(p2, &or2).unwrap();
        let (m1, wait1) = client.online_query(q1, &x).unwrap();
        let (m2, wait2) = client.online_query(q2, &x).unwrap();
        assert_ne!(m1.b, m2.b);
        let (resp1, s1) = server.online(&weights, r1, &m1).unwrap();
        let (resp2, s2) = server.online(&weights, r2, &m2).unwrap();
        let want = reference(&x, &w, shape);
        for (wait, resp, s) in [(wait1, &resp1, &s1), (wait2, &resp2, &s2)] {
            let c = client.online_finish(wait, resp).unwrap();
            let sum: Vec<u64> = c.iter().zip(s).map(|(a, b)| a.wrapping_add(*b)).collect();
            assert_eq!(sum, want);
        }
    }

    #[test]
    fn malformed_messages_are_typed_errors() {
        let params = Params::insecure_for_tests(64);
        let shape = Shape {
            batch: 2,
            k: 5,
            n: 3,
        };
        let layout = Layout::with_tiles(&params, shape, 16, 2, 5, 2).unwrap();
        let other_layout = Layout::with_tiles(&params, shape, 16, 1, 5, 2).unwrap();
        let (mut client, mut server, key) = parties(&params, 4);
        let weights = PreparedWeights::new(&params, &layout, &[2; 15]).unwrap();
        let (oq, pending) = client.prepare(&layout).unwrap();
        let (or, prepared_r) = server.prepare(&key, &weights, &oq).unwrap();
        let prepared_q = client.prepare_finish(pending, &or).unwrap();
        let (q, waiting) = client.online_query(prepared_q, &lcg(2, 10)).unwrap();
        let q_bytes = q.to_bytes(&params);
        let (resp, _) = server.online(&weights, prepared_r, &q).unwrap();
        let resp_bytes = resp.to_bytes(&params);
        // truncated and extended
        for bytes in [
            oq.to_bytes(&params),
            or.to_bytes(&params),
            q_bytes.clone(),
            resp_bytes.clone(),
        ] {
            let short = &bytes[..bytes.len() - 1];
            let mut long = bytes.clone();
            long.push(0);
            for b in [short, &long[..]] {
                assert!(matches!(
                    OfflineQueryMsg::from_bytes(b, &params, &layout),
                    Err(Error::Wire(_))
                ));
                assert!(matches!(
                    OfflineResponseMsg::from_bytes(b, &params, &layout),
                    Err(Error::Wire(_))
                ));
                assert!(matches!(
                    OnlineQueryMsg::from_bytes(b, &params, &layout),
                    Err(Error::Wire(_))
                ));
                assert!(matches!(
                    OnlineResponseMsg::from_bytes(b, &params, &layout),
                    Err(Error::Wire(_))
                ));
            }
        }
        // kinds are not interchangeable
        assert!(matches!(
            OnlineResponseMsg::from_bytes(&q_bytes, &params, &layout),
            Err(Error::Wire(WireError::Kind {
                expected: 7,
                got: 6
            }))
        ));
        // another layout
        assert_eq!(
            OnlineQueryMsg::from_bytes(&q_bytes, &params, &other_layout),
            Err(Error::Wire(WireError::Layout))
        );
        // a residue equal to its prime, right after the header
        let mut bad = q_bytes.clone();
        let at = wire::HEADER_BYTES;
        let bits = params.residue_bits(0);
        let mut word = [0u8; 8];
        word.copy_from_slice(&bad[at..at + 8]);
        let old = u64::from_le_bytes(word);
        let new = (old & !((1u64 << bits) - 1)) | params.moduli()[0].value();
        bad[at..at + 8].copy_from_slice(&new.to_le_bytes());
        assert_eq!(
            OnlineQueryMsg::from_bytes(&bad, &params, &layout),
            Err(Error::Wire(WireError::Range { index: 0, prime: 0 }))
        );
        // in-memory messages of the wrong size or layout are refused
        let mut short = resp.clone();
        short.b[0].pop();
        assert!(client.online_finish(waiting, &short).is_err());
        let (oq2, p2) = client.prepare(&layout).unwrap();
        let mut bad_oq = oq2.clone();
        bad_oq.b[0].pop();
        assert!(server.prepare(&key, &weights, &bad_oq).is_err());
        let (or2, r2) = server.prepare(&key, &weights, &oq2).unwrap();
        let mut bad_or = or2.clone();
        bad_or.a.pop();
        let (_, p3) = client.prepare(&layout).unwrap();
        assert!(client.prepare_finish(p3, &bad_or).is_err());
        let q2 = client.prepare_finish(p2, &or2).unwrap();
        assert!(matches!(
            client.online_query(q2, &[0; 3]),
            Err(Error::Shape(_))
        ));
        let mut bad_q = q.clone();
        bad_q.b.pop();
        assert!(server.online(&weights, r2, &bad_q).is_err());
        let other_weights = PreparedWeights::new(&params, &other_layout, &[2; 15]).unwrap();
        let (_, r3) = server
            .prepare(&key, &weights, &client.prepare(&layout).unwrap().0)
            .unwrap();
        assert_eq!(
            server.online(&other_weights, r3, &q).map(|_| ()),
            Err(Error::Wire(WireError::Layout))
        );
        // weights outside the layout's width, or of the wrong count
        assert!(matches!(
            PreparedWeights::new(&params, &layout, &[1 << 20; 15]),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            PreparedWeights::new(&params, &layout, &[0; 14]),
            Err(Error::Shape(_))
        ));
    }
}
