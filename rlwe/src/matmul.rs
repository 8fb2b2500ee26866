//! The two-party product `x @ W`: the data owner ([`Client`]) holds `x` and
//! a secret key, the model owner ([`Server`]) holds `W`. Messages:
//!
//! 1. once per session, client -> server: [`PublicKeyMsg`] (seeded);
//! 2. per product, client -> server: [`QueryMsg`], the seeded encryption of
//!    `x` in Cheetah's coefficient encoding;
//! 3. server -> client: [`ResponseMsg`], the re-randomised, flooded, masked
//!    results with every unused coefficient dropped. The server keeps its
//!    share `z`; the client decrypts its share `x @ W - z`.
//!
//! Both shares are over `Z_2^64` and add up to `x @ W mod 2^64` exactly.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::layout::{split_digits, Layout};
use crate::params::Params;
use crate::sample::{expand_uniform_ntt, SecretRng, Seed};
use crate::wire::{self, Reader, WireError, Writer};
use crate::Error;

const KIND_PUBLIC_KEY: u8 = 1;
const KIND_QUERY: u8 = 2;
const KIND_RESPONSE: u8 = 3;
const DOMAIN_PUBLIC_KEY: u8 = b'p';
pub(crate) const DOMAIN_QUERY: u8 = b'q';

/// A ternary secret key, kept in coefficient and NTT form. Zeroized on
/// drop; `Debug` shows no key material.
pub struct SecretKey {
    params: Arc<Params>,
    ntt: Zeroizing<Vec<u64>>,
    /// 52-bit Shoup quotients of `ntt`, for the vector products.
    ntt_s52: Zeroizing<Vec<u64>>,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey {{ n: {}, .. }}", self.params.n())
    }
}

impl SecretKey {
    pub fn generate(params: Arc<Params>, rng: &mut SecretRng) -> SecretKey {
        let n = params.n();
        let mut coeffs = Zeroizing::new(vec![0i8; n]);
        rng.ternary(&mut coeffs);
        let mut ntt = Zeroizing::new(vec![0u64; n * params.levels()]);
        for (l, md) in params.moduli().iter().enumerate() {
            let dst = &mut ntt[l * n..(l + 1) * n];
            for (d, &c) in dst.iter_mut().zip(coeffs.iter()) {
                *d = md.from_i64(c as i64);
            }
            params.table(l).forward(dst);
        }
        let ntt_s52 = Zeroizing::new(
            ntt.iter()
                .enumerate()
                .map(|(k, &v)| crate::simd::shoup52(v, params.moduli()[k / n].value()))
                .collect(),
        );
        SecretKey {
            params,
            ntt,
            ntt_s52,
        }
    }

    /// `a * s` in coefficient form from `a` in NTT form (all primes).
    pub(crate) fn mul_ntt(&self, a_ntt: &[u64], out: &mut [u64]) {
        self.mul_ntt_prefix(self.params.levels(), a_ntt, out);
    }

    /// [`SecretKey::mul_ntt`] over the first `levels` primes only.
    pub(crate) fn mul_ntt_prefix(&self, levels: usize, a_ntt: &[u64], out: &mut [u64]) {
        let n = self.params.n();
        for (l, md) in self.params.moduli().iter().enumerate().take(levels) {
            let range = l * n..(l + 1) * n;
            let dst = &mut out[range.clone()];
            crate::simd::mul_shoup(
                dst,
                &a_ntt[range.clone()],
                &self.ntt[range.clone()],
                &self.ntt_s52[range],
                md.value(),
            );
            self.params.table(l).inverse(dst);
        }
    }

    /// Seeded symmetric encryption of a polynomial over `Z_2^64`: returns `b`
    /// (coefficient form) with `b + a s = round(q m / 2^64) + e`, where `a`
    /// is the expansion of `(seed, domain, index)`.
    pub(crate) fn encrypt_seeded(
        &self,
        message: &[u64],
        seed: &Seed,
        domain: u8,
        index: u32,
        rng: &mut SecretRng,
    ) -> Vec<u64> {
        let params = &self.params;
        let n = params.n();
        let l = params.levels();
        let mut a = vec![0u64; n * l];
        expand_uniform_ntt(params, seed, domain, index, &mut a);
        let mut b = Zeroizing::new(vec![0u64; n * l]);
        self.mul_ntt(&a, &mut b);
        let mut enc = [0u64; 8];
        for (j, &m) in message.iter().enumerate() {
            params.encode_scaled(m, &mut enc);
            let e = rng.cbd();
            for (li, md) in params.moduli().iter().enumerate() {
                let v = &mut b[li * n + j];
                *v = md.add(md.sub(enc[li], *v), md.from_i64(e));
            }
        }
        b.to_vec()
    }

    /// Decrypts `(b, a)` given in coefficient form (all primes).
    #[cfg(test)]
    pub(crate) fn decrypt(&self, b: &[u64], a: &[u64]) -> Vec<u64> {
        let params = &self.params;
        let n = params.n();
        let mut a_ntt = Zeroizing::new(a.to_vec());
        for l in 0..params.levels() {
            params.table(l).forward(&mut a_ntt[l * n..(l + 1) * n]);
        }
        let mut phase = Zeroizing::new(vec![0u64; a.len()]);
        self.mul_ntt(&a_ntt, &mut phase);
        (0..n)
            .map(|j| {
                params.decode(
                    params
                        .moduli()
                        .iter()
                        .enumerate()
                        .map(|(l, md)| md.add(phase[l * n + j], b[l * n + j])),
                )
            })
            .collect()
    }
}

/// The client's public key: `b = -a s + e` with `a` expanded from `seed`.
/// Sent once per session, so that the server can re-randomise results.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKeyMsg {
    pub seed: Seed,
    /// `L * N` residues, prime-major, coefficient form.
    pub b: Vec<u64>,
}

impl std::fmt::Debug for PublicKeyMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKeyMsg {{ {} residues }}", self.b.len())
    }
}

impl PublicKeyMsg {
    pub fn byte_len(params: &Params) -> usize {
        wire::HEADER_BYTES + 16 + wire::residue_bytes(params, params.n())
    }

    pub fn to_bytes(&self, params: &Params) -> Vec<u8> {
        let mut w = Writer::header(params, KIND_PUBLIC_KEY, None, Self::byte_len(params));
        w.raw(&self.seed);
        wire::write_residues(&mut w, params, params.levels(), params.n(), &self.b);
        w.finish()
    }

    pub fn from_bytes(bytes: &[u8], params: &Params) -> Result<PublicKeyMsg, Error> {
        let mut r = Reader::open(bytes, params, KIND_PUBLIC_KEY, None, Self::byte_len(params))?;
        let seed = r.raw::<16>();
        let mut b = vec![0u64; params.n() * params.levels()];
        r.residues(params, params.levels(), params.n(), &mut b)?;
        Ok(PublicKeyMsg { seed, b })
    }
}

/// The seeded encryption of `x`: one seed, and per query ciphertext the
/// residues of `b` at the coefficients [`Layout::sent_positions`].
#[derive(Clone, PartialEq, Eq)]
pub struct QueryMsg {
    pub layout: Layout,
    pub seed: Seed,
    /// Per query ciphertext `(i, t)` in row-major order, `L * sent_count`
    /// residues, prime-major.
    pub b: Vec<Vec<u64>>,
}

impl std::fmt::Debug for QueryMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "QueryMsg {{ {:?}, {} ciphertexts }}",
            self.layout.shape,
            self.b.len()
        )
    }
}

impl QueryMsg {
    pub fn to_bytes(&self, params: &Params) -> Vec<u8> {
        let mut w = Writer::header(
            params,
            KIND_QUERY,
            Some(&self.layout),
            self.layout.query_bytes(params),
        );
        w.raw(&self.seed);
        for b in &self.b {
            wire::write_residues(
                &mut w,
                params,
                params.levels(),
                b.len() / params.levels(),
                b,
            );
        }
        w.finish()
    }

    /// Parses a query for `layout`, checking sizes and that every residue is
    /// below its prime.
    pub fn from_bytes(bytes: &[u8], params: &Params, layout: &Layout) -> Result<QueryMsg, Error> {
        check_layout(params, layout)?;
        let mut r = Reader::open(
            bytes,
            params,
            KIND_QUERY,
            Some(layout),
            layout.query_bytes(params),
        )?;
        let seed = r.raw::<16>();
        let mut cts = Vec::with_capacity(layout.query_count());
        for i in 0..layout.m_tiles() {
            for t in 0..layout.k_tiles() {
                let count = layout.sent_count(i, t);
                let mut b = vec![0u64; count * params.levels()];
                r.residues(params, params.levels(), count, &mut b)?;
                cts.push(b);
            }
        }
        Ok(QueryMsg {
            layout: *layout,
            seed,
            b: cts,
        })
    }
}

/// One result ciphertext: all of `a`, and `b` at the used coefficients only.
#[derive(Clone, PartialEq, Eq)]
pub struct ResultCt {
    /// `L * N` residues, prime-major, coefficient form.
    pub a: Vec<u64>,
    /// `L * used` residues, prime-major, at [`Layout::used_positions`].
    pub b: Vec<u64>,
}

/// The server's answer: one [`ResultCt`] per (row tile, column tile, digit).
#[derive(Clone, PartialEq, Eq)]
pub struct ResponseMsg {
    pub layout: Layout,
    pub cts: Vec<ResultCt>,
}

impl std::fmt::Debug for ResponseMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ResponseMsg {{ {:?}, {} ciphertexts }}",
            self.layout.shape,
            self.cts.len()
        )
    }
}

impl ResponseMsg {
    pub fn to_bytes(&self, params: &Params) -> Vec<u8> {
        let mut w = Writer::header(
            params,
            KIND_RESPONSE,
            Some(&self.layout),
            self.layout.response_bytes(params),
        );
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
        layout: &Layout,
    ) -> Result<ResponseMsg, Error> {
        check_layout(params, layout)?;
        let mut r = Reader::open(
            bytes,
            params,
            KIND_RESPONSE,
            Some(layout),
            layout.response_bytes(params),
        )?;
        let n = params.n();
        let l = layout.result_levels;
        let mut cts = Vec::with_capacity(layout.result_count());
        for i in 0..layout.m_tiles() {
            for s in 0..layout.n_tiles() {
                for _ in 0..layout.digits {
                    let used = layout.rows(i) * layout.out_cols(s);
                    let mut a = vec![0u64; n * l];
                    r.residues(params, l, n, &mut a)?;
                    let mut b = vec![0u64; used * l];
                    r.residues(params, l, used, &mut b)?;
                    cts.push(ResultCt { a, b });
                }
            }
        }
        Ok(ResponseMsg {
            layout: *layout,
            cts,
        })
    }
}

pub(crate) fn check_layout(params: &Params, layout: &Layout) -> Result<(), Error> {
    check_layout_degree(params, layout.ring_degree)
}

/// A layout made for `ring_degree` fits `params`.
pub(crate) fn check_layout_degree(params: &Params, ring_degree: usize) -> Result<(), Error> {
    if ring_degree != params.n() {
        return Err(Error::InvalidLayout(format!(
            "layout made for ring degree {}, parameters have {}",
            ring_degree,
            params.n()
        )));
    }
    Ok(())
}

/// An in-memory message whose parts do not have the sizes its layout gives.
pub(crate) fn wrong_size(what: &'static str) -> Error {
    Error::Wire(WireError::Size(what))
}

/// The data owner: holds the secret key and `x`, decrypts its share.
pub struct Client {
    pub(crate) params: Arc<Params>,
    pub(crate) sk: SecretKey,
    pub(crate) rng: SecretRng,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client {{ {:?}, .. }}", self.params)
    }
}

impl Client {
    /// A client with a fresh key from the operating system's CSPRNG.
    pub fn new(params: Arc<Params>) -> Result<Client, Error> {
        let mut rng = SecretRng::from_os()?;
        let sk = SecretKey::generate(params.clone(), &mut rng);
        Ok(Client { params, sk, rng })
    }

    /// Deterministic keys and noise, for reproducible tests only.
    pub fn from_seed_for_tests(params: Arc<Params>, seed: u64) -> Client {
        let mut rng = SecretRng::from_seed_for_tests(seed);
        let sk = SecretKey::generate(params.clone(), &mut rng);
        Client { params, sk, rng }
    }

    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }

    /// A fresh public key for the server to re-randomise results with.
    pub fn public_key(&mut self) -> PublicKeyMsg {
        let seed = self.rng.seed();
        let zero = vec![0u64; self.params.n()];
        let b = self
            .sk
            .encrypt_seeded(&zero, &seed, DOMAIN_PUBLIC_KEY, 0, &mut self.rng);
        PublicKeyMsg { seed, b }
    }

    /// Encrypts `x` (`[batch, k]`, row-major, values in `Z_2^64`).
    pub fn query(&mut self, layout: &Layout, x: &[u64]) -> Result<QueryMsg, Error> {
        let params = self.params.clone();
        check_layout(&params, layout)?;
        let shape = layout.shape;
        if x.len() != shape.batch * shape.k {
            return Err(Error::Shape(format!(
                "x has {} values, the layout expects {} x {} = {}",
                x.len(),
                shape.batch,
                shape.k,
                shape.batch * shape.k
            )));
        }
        let n = params.n();
        let levels = params.levels();
        let seed = self.rng.seed();
        let mut a = vec![0u64; n * levels];
        let mut as_ = Zeroizing::new(vec![0u64; n * levels]);
        let stride = layout.d1 * layout.d2;
        let mut cts = Vec::with_capacity(layout.query_count());
        for i in 0..layout.m_tiles() {
            for t in 0..layout.k_tiles() {
                let index = (i * layout.k_tiles() + t) as u32;
                let positions = layout.sent_positions(i, t);
                let message = |pos: usize| {
                    let (r, c) = (pos / stride, pos % stride);
                    if r < layout.rows(i) && c < layout.cols(t) {
                        x[(i * layout.d0 + r) * shape.k + t * layout.d1 + c]
                    } else {
                        0
                    }
                };
                cts.push(self.encrypt_at(&seed, index, &positions, message, &mut a, &mut as_));
            }
        }
        Ok(QueryMsg {
            layout: *layout,
            seed,
            b: cts,
        })
    }

    /// `b` of the seeded query ciphertext `(seed, index)` at `positions`
    /// (prime-major), coefficient `pos` encrypting `message(pos)`. `a` and
    /// `as_` are scratch of `L N` residues.
    pub(crate) fn encrypt_at(
        &mut self,
        seed: &Seed,
        index: u32,
        positions: &[usize],
        message: impl Fn(usize) -> u64,
        a: &mut [u64],
        as_: &mut [u64],
    ) -> Vec<u64> {
        let params = self.params.clone();
        let (n, levels) = (params.n(), params.levels());
        expand_uniform_ntt(&params, seed, DOMAIN_QUERY, index, a);
        self.sk.mul_ntt(a, as_);
        let count = positions.len();
        let mut b = vec![0u64; count * levels];
        let mut enc = Zeroizing::new([0u64; 8]);
        for (j, &pos) in positions.iter().enumerate() {
            let m = message(pos);
            if m == 0 {
                // Padding (most coefficients when d2 > 1): no encoding.
                enc.iter_mut().for_each(|v| *v = 0);
            } else {
                params.encode_scaled(m, &mut enc[..]);
            }
            let e = self.rng.cbd();
            for (li, md) in params.moduli().iter().enumerate() {
                // enc - a s + e, with |e| <= 21 < p: in (p - 21, 3p + 21)
                // before two conditional subtractions.
                let p = md.value();
                let mut v = ((enc[li] + 2 * p - as_[li * n + pos]) as i64 + e) as u64;
                if v >= 2 * p {
                    v -= 2 * p;
                }
                if v >= p {
                    v -= p;
                }
                b[li * count + j] = v;
            }
        }
        b
    }

    /// Decrypts the response into this party's share of `x @ W`
    /// (`[batch, n]`, row-major).
    pub fn finish(&self, layout: &Layout, response: &ResponseMsg) -> Result<Vec<u64>, Error> {
        let params = &self.params;
        check_layout(params, layout)?;
        if response.layout != *layout || response.cts.len() != layout.result_count() {
            return Err(Error::Wire(WireError::Layout));
        }
        let n = params.n();
        let levels = layout.result_levels;
        let shape = layout.shape;
        let mut share = vec![0u64; shape.batch * shape.n];
        let mut a_ntt = vec![0u64; n * levels];
        let mut as_ = Zeroizing::new(vec![0u64; n * levels]);
        let mut idx = 0;
        for i in 0..layout.m_tiles() {
            for s in 0..layout.n_tiles() {
                let used = layout.used_positions(i, s);
                for g in 0..layout.digits {
                    let ct = &response.cts[idx];
                    idx += 1;
                    let values = self.decrypt_used(ct, &used, levels, &mut a_ntt, &mut as_)?;
                    let shift = g as u32 * layout.digit_bits;
                    let cols = layout.out_cols(s);
                    for (u, v) in values.into_iter().enumerate() {
                        let (r, j) = (u / cols, u % cols);
                        let out = &mut share[(i * layout.d0 + r) * shape.n + s * layout.d2 + j];
                        *out = out.wrapping_add(v.wrapping_shl(shift));
                    }
                }
            }
        }
        Ok(share)
    }

    /// Decrypts the coefficients `used` of a result on its first `levels`
    /// primes (its `b` holds exactly those), checking sizes and ranges.
    /// `a_ntt` and `as_` are scratch of `levels N` residues.
    pub(crate) fn decrypt_used(
        &self,
        ct: &ResultCt,
        used: &[usize],
        levels: usize,
        a_ntt: &mut [u64],
        as_: &mut [u64],
    ) -> Result<Vec<u64>, Error> {
        let params = &self.params;
        let n = params.n();
        if ct.a.len() != n * levels || ct.b.len() != used.len() * levels {
            return Err(wrong_size("result ciphertext"));
        }
        for (l, md) in params.moduli().iter().enumerate().take(levels) {
            let src = &ct.a[l * n..(l + 1) * n];
            if src.iter().any(|&v| v >= md.value())
                || ct.b[l * used.len()..(l + 1) * used.len()]
                    .iter()
                    .any(|&v| v >= md.value())
            {
                return Err(Error::Wire(WireError::Range { index: 0, prime: l }));
            }
            a_ntt[l * n..(l + 1) * n].copy_from_slice(src);
            params.table(l).forward(&mut a_ntt[l * n..(l + 1) * n]);
        }
        self.sk.mul_ntt_prefix(levels, a_ntt, as_);
        Ok(used
            .iter()
            .enumerate()
            .map(|(u, &pos)| {
                params.decode_prefix(
                    levels,
                    params
                        .moduli()
                        .iter()
                        .enumerate()
                        .map(|(l, md)| md.add(as_[l * n + pos], ct.b[l * used.len() + u])),
                )
            })
            .collect())
    }
}

/// The client's public key as the server uses it (NTT form).
pub struct PeerKey {
    pub(crate) params: Arc<Params>,
    b_ntt: Vec<u64>,
    a_ntt: Vec<u64>,
}

impl std::fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PeerKey {{ n: {} }}", self.params.n())
    }
}

impl PeerKey {
    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }

    pub fn new(params: Arc<Params>, msg: &PublicKeyMsg) -> Result<PeerKey, Error> {
        let n = params.n();
        let levels = params.levels();
        if msg.b.len() != n * levels {
            return Err(wrong_size("public key"));
        }
        let mut b_ntt = msg.b.clone();
        for (l, md) in params.moduli().iter().enumerate() {
            let chunk = &mut b_ntt[l * n..(l + 1) * n];
            if let Some(index) = chunk.iter().position(|&v| v >= md.value()) {
                return Err(Error::Wire(WireError::Range { index, prime: l }));
            }
            params.table(l).forward(chunk);
        }
        let mut a_ntt = vec![0u64; n * levels];
        expand_uniform_ntt(&params, &msg.seed, DOMAIN_PUBLIC_KEY, 0, &mut a_ntt);
        Ok(PeerKey {
            params,
            b_ntt,
            a_ntt,
        })
    }
}

/// `W` made ready for many queries of one layout: split into digits and,
/// when they take at most the caller's budget, its plaintext tiles in NTT
/// form (most of a small product's answer). A server that answers many
/// queries with one `W`, such as a service's sessions, makes it once
/// ([`WeightTiles::new`]) and answers with [`Server::respond_tiles`].
pub struct WeightTiles {
    layout: Layout,
    fingerprint: u64,
    digits: Zeroizing<Vec<i64>>,
    tiles: Option<Zeroizing<Vec<u64>>>,
}

impl std::fmt::Debug for WeightTiles {
    // `W` is secret: only the layout and the sizes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightTiles")
            .field("shape", &self.layout.shape)
            .field("bytes", &self.bytes())
            .finish_non_exhaustive()
    }
}

impl WeightTiles {
    /// `W` (`[k, n]`, row-major, checked to fit the layout's `w_bits`)
    /// for `layout`; its tiles in NTT form only if they take at most
    /// `max_bytes`.
    pub fn new(
        params: &Params,
        layout: &Layout,
        w: &[u64],
        max_bytes: usize,
    ) -> Result<WeightTiles, Error> {
        check_layout(params, layout)?;
        check_weights(layout, w)?;
        let digits = weight_digits(layout, w);
        let tiles = Server::weight_tiles(params, layout, &digits, max_bytes);
        Ok(WeightTiles {
            layout: *layout,
            fingerprint: params.fingerprint(),
            digits,
            tiles,
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The memory it holds.
    pub fn bytes(&self) -> usize {
        8 * (self.digits.len() + self.tiles.as_ref().map_or(0, |t| t.len()))
    }
}

/// The model owner: holds `W`, answers queries, keeps its share.
pub struct Server {
    pub(crate) params: Arc<Params>,
    pub(crate) rng: SecretRng,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Server {{ {:?}, .. }}", self.params)
    }
}

impl Server {
    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }

    /// A server whose randomness comes from the operating system's CSPRNG.
    pub fn new(params: Arc<Params>) -> Result<Server, Error> {
        Ok(Server {
            params,
            rng: SecretRng::from_os()?,
        })
    }

    /// Deterministic randomness, for reproducible tests only.
    pub fn from_seed_for_tests(params: Arc<Params>, seed: u64) -> Server {
        Server {
            params,
            rng: SecretRng::from_seed_for_tests(seed),
        }
    }

    /// Multiplies the encrypted `x` by `W` (`[k, n]`, row-major) and returns
    /// the response and this party's share of `x @ W` (`[batch, n]`).
    pub fn respond(
        &mut self,
        key: &PeerKey,
        layout: &Layout,
        w: &[u64],
        query: &QueryMsg,
    ) -> Result<(ResponseMsg, Vec<u64>), Error> {
        let params = self.params.clone();
        check_layout(&params, layout)?;
        if key.params.fingerprint() != params.fingerprint() {
            return Err(Error::Wire(WireError::Parameters {
                expected: params.fingerprint(),
                got: key.params.fingerprint(),
            }));
        }
        if query.layout != *layout || query.b.len() != layout.query_count() {
            return Err(Error::Wire(WireError::Layout));
        }
        check_weights(layout, w)?;
        let digits = weight_digits(layout, w);
        let (cts, share) = self.respond_digits(key, layout, &digits, None, query, true)?;
        Ok((
            ResponseMsg {
                layout: *layout,
                cts,
            },
            share,
        ))
    }

    /// [`Server::respond`] with `W` made ready beforehand: the same
    /// response (for the same randomness), without splitting `W` or (when
    /// kept) transforming its tiles.
    pub fn respond_tiles(
        &mut self,
        key: &PeerKey,
        w: &WeightTiles,
        query: &QueryMsg,
    ) -> Result<(ResponseMsg, Vec<u64>), Error> {
        let params = self.params.clone();
        let layout = w.layout;
        for got in [key.params.fingerprint(), w.fingerprint] {
            if got != params.fingerprint() {
                return Err(Error::Wire(WireError::Parameters {
                    expected: params.fingerprint(),
                    got,
                }));
            }
        }
        if query.layout != layout || query.b.len() != layout.query_count() {
            return Err(Error::Wire(WireError::Layout));
        }
        let cached = w.tiles.as_ref().map(|t| &t[..]);
        let (cts, share) = self.respond_digits(key, &layout, &w.digits, cached, query, true)?;
        Ok((ResponseMsg { layout, cts }, share))
    }

    /// The body of [`Server::respond`] on `W` split into digits
    /// ([`weight_digits`]). With `switch_b` false the results' `b` halves
    /// keep every prime (the caller adds to them and switches them down).
    pub(crate) fn respond_digits(
        &mut self,
        key: &PeerKey,
        layout: &Layout,
        digits: &[i64],
        cached: Option<&[u64]>,
        query: &QueryMsg,
        switch_b: bool,
    ) -> Result<(Vec<ResultCt>, Vec<u64>), Error> {
        let params = self.params.clone();
        let shape = layout.shape;
        let n = params.n();
        let levels = params.levels();
        let dcount = layout.digits;
        let wlen = shape.k * shape.n;
        let tiles = layout.k_tiles() * layout.n_tiles() * dcount;
        if digits.len() != dcount * wlen
            || query.b.len() != layout.query_count()
            || cached.is_some_and(|c| c.len() != tiles * n * levels)
        {
            return Err(wrong_size("weights or query"));
        }

        // The query ciphertexts in NTT form.
        let mut queries: Vec<(Vec<u64>, Vec<u64>)> = Vec::with_capacity(layout.query_count());
        for i in 0..layout.m_tiles() {
            for t in 0..layout.k_tiles() {
                let idx = i * layout.k_tiles() + t;
                let sent = &query.b[idx];
                let positions = layout.sent_positions(i, t);
                if sent.len() != positions.len() * levels {
                    return Err(wrong_size("query ciphertext"));
                }
                let mut b = vec![0u64; n * levels];
                for (l, md) in params.moduli().iter().enumerate() {
                    let src = &sent[l * positions.len()..(l + 1) * positions.len()];
                    if let Some(index) = src.iter().position(|&v| v >= md.value()) {
                        return Err(Error::Wire(WireError::Range { index, prime: l }));
                    }
                    let dst = &mut b[l * n..(l + 1) * n];
                    for (&pos, &v) in positions.iter().zip(src) {
                        dst[pos] = v;
                    }
                    let span = positions.last().map_or(0, |&p| p + 1);
                    params.table(l).forward_sparse(dst, span);
                }
                let mut a = vec![0u64; n * levels];
                expand_uniform_ntt(&params, &query.seed, DOMAIN_QUERY, idx as u32, &mut a);
                queries.push((b, a));
            }
        }

        let mut share = vec![0u64; shape.batch * shape.n];
        let mut cts = vec![None; layout.result_count()];
        // One plaintext tile at a time: it is used while hot in the cache.
        let mut what = Zeroizing::new(vec![0u64; n * levels]);
        // Per row tile, the (b, a) accumulators.
        let mut acc: Vec<Accumulator> = (0..layout.m_tiles())
            .map(|_| Accumulator::new(n * levels))
            .collect();
        for s in 0..layout.n_tiles() {
            for g in 0..dcount {
                let plane = &digits[g * wlen..(g + 1) * wlen];
                for a in acc.iter_mut() {
                    a.clear();
                }
                let kt = layout.k_tiles();
                for t in 0..kt {
                    // The plaintext tile W[t, s], digit g, in NTT form.
                    let tile: &[u64] = match cached {
                        Some(c) => {
                            let at = ((s * dcount + g) * kt + t) * n * levels;
                            &c[at..at + n * levels]
                        }
                        None => {
                            weight_tile(&params, layout, plane, t, s, &mut what);
                            &what
                        }
                    };
                    for (i, acc_i) in acc.iter_mut().enumerate() {
                        let (qb, qa) = &queries[i * kt + t];
                        acc_i.add_products(&params, (qb, qa), tile);
                    }
                }
                for (i, acc_i) in acc.iter_mut().enumerate() {
                    let used = layout.used_positions(i, s);
                    let cols = layout.out_cols(s);
                    let slots: Vec<usize> = (0..used.len())
                        .map(|u| (i * layout.d0 + u / cols) * shape.n + s * layout.d2 + u % cols)
                        .collect();
                    let spec = ResultSpec {
                        used: &used,
                        slots: &slots,
                        shift: g as u32 * layout.digit_bits,
                        flood: layout.flood,
                        keep: layout.result_levels,
                        switch_b,
                    };
                    let ct = self.finish_result(key, acc_i, &spec, &mut share);
                    cts[(i * layout.n_tiles() + s) * dcount + g] = Some(ct);
                }
            }
        }
        let cts = cts
            .into_iter()
            .map(|c| c.expect("every result is computed"))
            .collect();
        Ok((cts, share))
    }

    /// Every plaintext tile of `W` in NTT form, in the order
    /// [`Server::respond_digits`] reads them (`(s, g, t)`), if they take at
    /// most `max_bytes`: for products of one `W` with many queries.
    pub(crate) fn weight_tiles(
        params: &Params,
        layout: &Layout,
        digits: &[i64],
        max_bytes: usize,
    ) -> Option<Zeroizing<Vec<u64>>> {
        let (n, levels) = (params.n(), params.levels());
        let count = layout.k_tiles() * layout.n_tiles() * layout.digits;
        if count.saturating_mul(n * levels * 8) > max_bytes {
            return None;
        }
        let wlen = layout.shape.k * layout.shape.n;
        let mut out = Zeroizing::new(vec![0u64; count * n * levels]);
        let mut idx = 0;
        for s in 0..layout.n_tiles() {
            for g in 0..layout.digits {
                let plane = &digits[g * wlen..(g + 1) * wlen];
                for t in 0..layout.k_tiles() {
                    let dst = &mut out[idx * n * levels..(idx + 1) * n * levels];
                    weight_tile(params, layout, plane, t, s, dst);
                    idx += 1;
                }
            }
        }
        Some(out)
    }

    /// Re-randomises, returns to coefficient form, masks and floods one
    /// accumulated result, and drops its unused coefficients (see
    /// [`ResultSpec`]).
    pub(crate) fn finish_result(
        &mut self,
        key: &PeerKey,
        acc: &mut Accumulator,
        spec: &ResultSpec,
        share: &mut [u64],
    ) -> ResultCt {
        let params = self.params.clone();
        let n = params.n();
        let levels = params.levels();
        // + u * pk, u ternary, in NTT form before reducing.
        let mut u = Zeroizing::new(vec![0i8; n]);
        self.rng.ternary(&mut u);
        let mut u_ntt = Zeroizing::new(vec![0u64; n * levels]);
        for (l, md) in params.moduli().iter().enumerate() {
            let dst = &mut u_ntt[l * n..(l + 1) * n];
            let p = md.value();
            for (d, &c) in dst.iter_mut().zip(u.iter()) {
                *d = match c {
                    -1 => p - 1,
                    c => c as u64,
                };
            }
            params.table(l).forward(dst);
        }
        acc.add_products(&params, (&key.b_ntt, &key.a_ntt), &u_ntt);
        let mut b = vec![0u64; n * levels];
        let mut a = vec![0u64; n * levels];
        for l in 0..levels {
            let range = l * n..(l + 1) * n;
            let c = &params.acc_reduce[l];
            crate::simd::reduce_acc(
                &mut b[range.clone()],
                &acc.lo_b[range.clone()],
                &acc.hi_b[range.clone()],
                c,
            );
            crate::simd::reduce_acc(
                &mut a[range.clone()],
                &acc.lo_a[range.clone()],
                &acc.hi_a[range.clone()],
                c,
            );
            params.table(l).inverse(&mut b[range.clone()]);
            params.table(l).inverse(&mut a[range]);
        }
        // + e2 on every coefficient of a.
        let mut e2 = Zeroizing::new(vec![0i64; n]);
        for v in e2.iter_mut() {
            *v = self.rng.cbd();
        }
        for (l, md) in params.moduli().iter().enumerate() {
            let p = md.value();
            for (v, &e) in a[l * n..(l + 1) * n].iter_mut().zip(e2.iter()) {
                // |e| <= 21 < p: one conditional correction.
                let s = *v as i64 + e;
                *v = if s < 0 {
                    (s + p as i64) as u64
                } else if s as u64 >= p {
                    s as u64 - p
                } else {
                    s as u64
                };
            }
        }
        // Mask, e1 and flooding on the used coefficients of b.
        let count = spec.used.len();
        let mut out_b = vec![0u64; count * levels];
        let mut enc = [0u64; 8];
        for (u_idx, (&pos, &slot)) in spec.used.iter().zip(spec.slots).enumerate() {
            let z = self.rng.next_u64();
            let slot = &mut share[slot];
            *slot = slot.wrapping_add(z.wrapping_shl(spec.shift));
            params.encode_scaled(z.wrapping_neg(), &mut enc);
            let noise = self.rng.uniform_symmetric(spec.flood) + self.rng.cbd() as i128;
            for (l, md) in params.moduli().iter().enumerate() {
                out_b[l * count + u_idx] =
                    md.add(md.add(b[l * n + pos], enc[l]), md.from_i128(noise));
            }
        }
        // Switch down to the layout's primes: a on every coefficient, b on
        // the used ones.
        let keep = spec.keep;
        if keep == levels {
            return ResultCt { a, b: out_b };
        }
        let small_b = if spec.switch_b {
            switch_down(&params, &out_b, count, keep)
        } else {
            out_b
        };
        let mut small_a = a;
        for l in (keep + 1..=levels).rev() {
            let (rest, last) = small_a.split_at_mut((l - 1) * n);
            for (i, dp) in params.drop[l - 1].iter().enumerate() {
                crate::simd::drop_prime(&mut rest[i * n..(i + 1) * n], &last[..n], dp);
            }
        }
        small_a.truncate(keep * n);
        ResultCt {
            a: small_a,
            b: small_b,
        }
    }
}

/// What [`Server::finish_result`] does with one result: keeps the
/// coefficients `used`, masks coefficient `used[u]` with a fresh `z` and
/// adds `z << shift` to `share[slots[u]]`, floods with `[-flood, flood]`,
/// and switches `a` (and `b` if `switch_b`) down to `keep` primes.
pub(crate) struct ResultSpec<'a> {
    pub used: &'a [usize],
    pub slots: &'a [usize],
    pub shift: u32,
    pub flood: u128,
    pub keep: usize,
    pub switch_b: bool,
}

/// `count` coefficients given on every prime (prime-major), switched down
/// to the first `keep` primes.
pub(crate) fn switch_down(params: &Params, b: &[u64], count: usize, keep: usize) -> Vec<u64> {
    let levels = params.levels();
    if keep == levels {
        return b.to_vec();
    }
    let mut res = [0u64; 8];
    let mut small_b = vec![0u64; count * keep];
    for u in 0..count {
        for l in 0..levels {
            res[l] = b[l * count + u];
        }
        for l in (keep + 1..=levels).rev() {
            params.drop_last_prime(&mut res, l);
        }
        for l in 0..keep {
            small_b[l * count + u] = res[l];
        }
    }
    small_b
}

/// The plaintext tile `W[t, s]` of one digit plane (`[k, n]`) in NTT form,
/// into `out` (`L N` residues).
fn weight_tile(
    params: &Params,
    layout: &Layout,
    plane: &[i64],
    t: usize,
    s: usize,
    out: &mut [u64],
) {
    let n = params.n();
    let span = layout.out_cols(s) * layout.d1;
    out.iter_mut().for_each(|v| *v = 0);
    for (l, md) in params.moduli().iter().enumerate() {
        let dst = &mut out[l * n..(l + 1) * n];
        for c in 0..layout.cols(t) {
            let row = (t * layout.d1 + c) * layout.shape.n + s * layout.d2;
            for j in 0..layout.out_cols(s) {
                dst[layout.weight_position(c, j)] = md.from_i64(plane[row + j]);
            }
        }
        params.table(l).forward_sparse(dst, span);
    }
}

/// `W` has `k n` entries that fit `layout.w_bits` signed bits.
pub(crate) fn check_weights(layout: &Layout, w: &[u64]) -> Result<(), Error> {
    let shape = layout.shape;
    if w.len() != shape.k * shape.n {
        return Err(Error::Shape(format!(
            "W has {} values, the layout expects {} x {} = {}",
            w.len(),
            shape.k,
            shape.n,
            shape.k * shape.n
        )));
    }
    if layout.w_bits < 64 {
        let lo = -(1i64 << (layout.w_bits - 1));
        let hi = (1i64 << (layout.w_bits - 1)) - 1;
        if let Some(index) = w.iter().position(|&v| !(lo..=hi).contains(&(v as i64))) {
            return Err(Error::Shape(format!(
                "W[{}, {}] does not fit the {} signed bits the layout was made for",
                index / shape.n,
                index % shape.n,
                layout.w_bits
            )));
        }
    }
    Ok(())
}

/// The balanced digits of `W` (`[k, n]`, checked to fit `layout.w_bits`),
/// digit-major: `digits[g * k n + row * n + col]`.
pub(crate) fn weight_digits(layout: &Layout, w: &[u64]) -> Zeroizing<Vec<i64>> {
    let dcount = layout.digits;
    let mut digits = Zeroizing::new(vec![0i64; dcount * w.len()]);
    let mut tmp = vec![0i64; dcount];
    for (idx, &v) in w.iter().enumerate() {
        split_digits(v, layout.digit_bits, dcount, &mut tmp);
        for (g, &d) in tmp.iter().enumerate() {
            digits[g * w.len() + idx] = d;
        }
    }
    digits
}

/// Sums of products of residues, unreduced, as `lo + 2^52 hi` per
/// coefficient (the form the IFMA kernel produces), for the `b` and `a`
/// halves of one result. Residues are below 2^50 ([`Params`] refuses larger
/// primes): a product adds less than 2^52 to `lo` and 2^48 to `hi`, and
/// every [`FLUSH_EVERY`] products the sums are folded modulo their prime,
/// far from overflow.
pub(crate) struct Accumulator {
    lo_b: Vec<u64>,
    hi_b: Vec<u64>,
    lo_a: Vec<u64>,
    hi_a: Vec<u64>,
    pending: usize,
}

const FLUSH_EVERY: usize = 1024;

impl Accumulator {
    pub(crate) fn new(len: usize) -> Accumulator {
        Accumulator {
            lo_b: vec![0; len],
            hi_b: vec![0; len],
            lo_a: vec![0; len],
            hi_a: vec![0; len],
            pending: 0,
        }
    }

    pub(crate) fn clear(&mut self) {
        for v in [
            &mut self.lo_b,
            &mut self.hi_b,
            &mut self.lo_a,
            &mut self.hi_a,
        ] {
            v.iter_mut().for_each(|x| *x = 0);
        }
        self.pending = 0;
    }

    /// `(b, a) += (qb, qa) * w`, all in NTT form, prime-major.
    pub(crate) fn add_products(&mut self, params: &Params, query: (&[u64], &[u64]), w: &[u64]) {
        let (qb, qa) = query;
        crate::simd::mul_acc2(
            [
                &mut self.lo_b,
                &mut self.hi_b,
                &mut self.lo_a,
                &mut self.hi_a,
            ],
            qb,
            qa,
            w,
        );
        self.pending += 1;
        if self.pending == FLUSH_EVERY {
            let n = params.n();
            for k in 0..self.lo_b.len() {
                let md = &params.moduli()[k / n];
                for (lo, hi) in [
                    (&mut self.lo_b, &mut self.hi_b),
                    (&mut self.lo_a, &mut self.hi_a),
                ] {
                    lo[k] = md.reduce_u128(lo[k] as u128 + ((hi[k] as u128) << 52));
                    hi[k] = 0;
                }
            }
            self.pending = 0;
        }
    }
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)]
mod tests {
    use super::*;
    use crate::layout::{CostModel, Shape};
    use proptest::prelude::*;

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

    /// Runs the whole protocol through bytes and returns (client share,
    /// server share).
    fn run(
        params: &Arc<Params>,
        layout: &Layout,
        x: &[u64],
        w: &[u64],
        seed: u64,
    ) -> (Vec<u64>, Vec<u64>) {
        let mut client = Client::from_seed_for_tests(params.clone(), seed);
        let mut server = Server::from_seed_for_tests(params.clone(), seed ^ 0x5555);
        let pk_bytes = client.public_key().to_bytes(params);
        let pk = PublicKeyMsg::from_bytes(&pk_bytes, params).unwrap();
        let key = PeerKey::new(params.clone(), &pk).unwrap();
        let q_bytes = client.query(layout, x).unwrap().to_bytes(params);
        assert_eq!(q_bytes.len(), layout.query_bytes(params));
        let query = QueryMsg::from_bytes(&q_bytes, params, layout).unwrap();
        let (resp, server_share) = server.respond(&key, layout, w, &query).unwrap();
        let r_bytes = resp.to_bytes(params);
        assert_eq!(r_bytes.len(), layout.response_bytes(params));
        let resp = ResponseMsg::from_bytes(&r_bytes, params, layout).unwrap();
        (client.finish(layout, &resp).unwrap(), server_share)
    }

    /// `W` made ready once answers like `W` itself (same bytes, same
    /// share, for the same randomness), with and without its tiles kept,
    /// for several queries; a query of another layout is refused.
    #[test]
    fn weights_made_ready_answer_as_the_weights() {
        let params = Params::insecure_for_tests(64);
        let shape = Shape {
            batch: 3,
            k: 10,
            n: 5,
        };
        let layout = Layout::choose(&params, shape, 12, &CostModel::default_for(&params)).unwrap();
        let w: Vec<u64> = lcg(3, 50)
            .iter()
            .map(|v| (*v as i64 >> 53) as u64)
            .collect();
        let mut client = Client::from_seed_for_tests(params.clone(), 9);
        let pk = client.public_key();
        let key = PeerKey::new(params.clone(), &pk).unwrap();
        for budget in [0, usize::MAX] {
            let ready = WeightTiles::new(&params, &layout, &w, budget).unwrap();
            assert_eq!(ready.tiles.is_some(), budget > 0);
            for seed in 0..3u64 {
                let q = client.query(&layout, &lcg(seed, 30)).unwrap();
                let mut a = Server::from_seed_for_tests(params.clone(), seed);
                let mut b = Server::from_seed_for_tests(params.clone(), seed);
                let (ra, sa) = a.respond(&key, &layout, &w, &q).unwrap();
                let (rb, sb) = b.respond_tiles(&key, &ready, &q).unwrap();
                assert_eq!(ra.to_bytes(&params), rb.to_bytes(&params));
                assert_eq!(sa, sb);
            }
        }
        let other = Layout::choose(
            &params,
            Shape { batch: 4, ..shape },
            12,
            &CostModel::default_for(&params),
        )
        .unwrap();
        let q = client.query(&other, &lcg(1, 40)).unwrap();
        let ready = WeightTiles::new(&params, &layout, &w, usize::MAX).unwrap();
        let mut s = Server::from_seed_for_tests(params.clone(), 1);
        assert!(s.respond_tiles(&key, &ready, &q).is_err());
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn encrypt_decrypt_round_trip(seed in any::<u64>(), log_n in 1u32..=8, q180 in any::<bool>()) {
            let n = 1usize << log_n;
            let params = if q180 { Params::insecure_q180_for_tests(n) } else { Params::insecure_for_tests(n) };
            let l = params.levels();
            let mut rng = SecretRng::from_seed_for_tests(seed);
            let sk = SecretKey::generate(params.clone(), &mut rng);
            let msg = lcg(seed, n);
            let b = sk.encrypt_seeded(&msg, &[9; 16], DOMAIN_QUERY, 0, &mut rng);
            let mut a = vec![0u64; n * l];
            expand_uniform_ntt(&params, &[9; 16], DOMAIN_QUERY, 0, &mut a);
            for i in 0..l {
                params.table(i).inverse(&mut a[i * n..(i + 1) * n]);
            }
            prop_assert_eq!(sk.decrypt(&b, &a), msg.clone());
            // Another key does not decrypt it (at tiny N the two ternary
            // keys may coincide: 3^-N).
            let other = SecretKey::generate(params.clone(), &mut rng);
            if n >= 16 {
                prop_assert_ne!(other.decrypt(&b, &a), msg);
            }
        }

        #[test]
        fn ciphertext_times_plaintext(seed in any::<u64>(), log_n in 1u32..=7, shift in 40u32..64) {
            // Enc(m) * w decrypts to m * w in Z_2^64[X]/(X^N + 1) for w with
            // up to 64 - shift bits: the noise budget at q = 2^128 allows
            // 2^24 * N in magnitude.
            let n = 1usize << log_n;
            let params = Params::insecure_for_tests(n);
            let mut rng = SecretRng::from_seed_for_tests(seed);
            let sk = SecretKey::generate(params.clone(), &mut rng);
            let msg = lcg(seed ^ 2, n);
            let w: Vec<i64> = lcg(seed ^ 3, n).iter().map(|v| (*v as i64) >> shift).collect();
            let b = sk.encrypt_seeded(&msg, &[1; 16], DOMAIN_QUERY, 0, &mut rng);
            let mut a_ntt = vec![0u64; n * 3];
            expand_uniform_ntt(&params, &[1; 16], DOMAIN_QUERY, 0, &mut a_ntt);
            let mut b_ntt = b.clone();
            let mut w_ntt = vec![0u64; n * 3];
            for (l, md) in params.moduli().iter().enumerate() {
                params.table(l).forward(&mut b_ntt[l * n..(l + 1) * n]);
                for j in 0..n {
                    w_ntt[l * n + j] = md.from_i64(w[j]);
                }
                params.table(l).forward(&mut w_ntt[l * n..(l + 1) * n]);
            }
            let mut pb = vec![0u64; n * 3];
            let mut pa = vec![0u64; n * 3];
            for (l, md) in params.moduli().iter().enumerate() {
                for j in l * n..(l + 1) * n {
                    pb[j] = md.mul(b_ntt[j], w_ntt[j]);
                    pa[j] = md.mul(a_ntt[j], w_ntt[j]);
                }
                params.table(l).inverse(&mut pb[l * n..(l + 1) * n]);
                params.table(l).inverse(&mut pa[l * n..(l + 1) * n]);
            }
            let mut expect = vec![0u64; n];
            for i in 0..n {
                for j in 0..n {
                    let prod = msg[i].wrapping_mul(w[j] as u64);
                    if i + j < n {
                        expect[i + j] = expect[i + j].wrapping_add(prod);
                    } else {
                        expect[i + j - n] = expect[i + j - n].wrapping_sub(prod);
                    }
                }
            }
            prop_assert_eq!(sk.decrypt(&pb, &pa), expect);
        }
    }

    #[test]
    fn shares_add_up_on_a_known_product() {
        let params = Params::insecure_for_tests(256);
        let shape = Shape {
            batch: 2,
            k: 3,
            n: 2,
        };
        let x = vec![1, 2, 3, 4, 5, 6];
        let w = vec![1, u64::MAX, 2, 0, 3, 7]; // includes -1
        let layout = Layout::with_tiles(&params, shape, 64, 2, 3, 2).unwrap();
        let (c, s) = run(&params, &layout, &x, &w, 1);
        let sum: Vec<u64> = c.iter().zip(&s).map(|(a, b)| a.wrapping_add(*b)).collect();
        // [1 2 3] @ [[1 -1] [2 0] [3 7]] = [14, 20]; [4 5 6] -> [32, 38]
        assert_eq!(sum, vec![14, 20, 32, 38]);
        // The server's share is random, not the product.
        assert_ne!(s, sum);
    }

    #[test]
    fn long_accumulations_fold_without_overflow() {
        // More k tiles than FLUSH_EVERY, with the largest values.
        let params = Params::insecure_for_tests(64);
        let shape = Shape {
            batch: 2,
            k: FLUSH_EVERY + 300,
            n: 2,
        };
        let layout = Layout::with_tiles(&params, shape, 64, 2, 1, 2).unwrap();
        assert!(layout.k_tiles() > FLUSH_EVERY);
        let x = vec![u64::MAX; 2 * shape.k];
        let w = lcg(8, shape.k * 2);
        let (c, s) = run(&params, &layout, &x, &w, 5);
        let sum: Vec<u64> = c.iter().zip(&s).map(|(a, b)| a.wrapping_add(*b)).collect();
        assert_eq!(sum, reference(&x, &w, shape));
    }

    #[test]
    fn shared_operand_layouts_reduce_to_the_protocol() {
        // x shared (x0 at P0, x1 at P1), W clear at P1: P0 runs the protocol
        // on x0; P1 adds x1 @ W locally.
        let params = Params::insecure_for_tests(128);
        let shape = Shape {
            batch: 3,
            k: 4,
            n: 2,
        };
        let layout = Layout::with_tiles(&params, shape, 64, 3, 4, 2).unwrap();
        let x = lcg(21, 12);
        let x1 = lcg(22, 12);
        let x0: Vec<u64> = x.iter().zip(&x1).map(|(a, b)| a.wrapping_sub(*b)).collect();
        let w = lcg(23, 8);
        let (p0, p1_cross) = run(&params, &layout, &x0, &w, 3);
        let local = reference(&x1, &w, shape);
        let p1: Vec<u64> = p1_cross
            .iter()
            .zip(&local)
            .map(|(a, b)| a.wrapping_add(*b))
            .collect();
        let y: Vec<u64> = p0
            .iter()
            .zip(&p1)
            .map(|(a, b)| a.wrapping_add(*b))
            .collect();
        assert_eq!(y, reference(&x, &w, shape));

        // Both shared: x0 W1 (P0 encrypts x0, P1 holds W1) and x1 W0 (P1
        // encrypts x1 under its own key, P0 holds W0); x0 W0 and x1 W1 are
        // local.
        let w1 = lcg(24, 8);
        let w0: Vec<u64> = w.iter().zip(&w1).map(|(a, b)| a.wrapping_sub(*b)).collect();
        let (p0_a, p1_a) = run(&params, &layout, &x0, &w1, 4);
        let (p1_b, p0_b) = run(&params, &layout, &x1, &w0, 5);
        let add = |a: &[u64], b: &[u64]| -> Vec<u64> {
            a.iter().zip(b).map(|(u, v)| u.wrapping_add(*v)).collect()
        };
        let p0 = add(&add(&p0_a, &p0_b), &reference(&x0, &w0, shape));
        let p1 = add(&add(&p1_a, &p1_b), &reference(&x1, &w1, shape));
        assert_eq!(add(&p0, &p1), reference(&x, &w, shape));
    }

    #[test]
    fn real_parameters_decrypt_exactly() {
        // The secure sets at N = 8192, with full 64-bit weights (digits at
        // q = 2^128, one product at q = 2^180) and with 16-bit weights.
        for (params, w_bits) in [
            (Params::n8192_q128(), 64),
            (Params::n8192_q128(), 16),
            (Params::n8192_q180(), 64),
        ] {
            let shape = Shape {
                batch: 3,
                k: 300,
                n: 20,
            };
            let layout =
                Layout::choose(&params, shape, w_bits, &CostModel::default_for(&params)).unwrap();
            let x = lcg(31, 900);
            let w: Vec<u64> = lcg(32, 6000)
                .iter()
                .map(|&v| {
                    if w_bits == 64 {
                        v
                    } else {
                        ((v as i64) >> (64 - w_bits)) as u64
                    }
                })
                .collect();
            let (c, s) = run(&params, &layout, &x, &w, 9);
            let sum: Vec<u64> = c.iter().zip(&s).map(|(a, b)| a.wrapping_add(*b)).collect();
            assert_eq!(sum, reference(&x, &w, shape), "{params:?} {layout:?}");
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
        let layout = Layout::with_tiles(&params, shape, 16, 2, 5, 1).unwrap();
        let mut client = Client::from_seed_for_tests(params.clone(), 7);
        let pk = client.public_key().to_bytes(&params);
        let q = client
            .query(&layout, &lcg(4, 10))
            .unwrap()
            .to_bytes(&params);
        let parse = |b: &[u8]| QueryMsg::from_bytes(b, &params, &layout);
        assert!(parse(&q).is_ok());
        // truncated, extended, empty
        assert!(matches!(
            parse(&q[..q.len() - 1]),
            Err(Error::Wire(WireError::Length { .. }))
        ));
        let mut longer = q.clone();
        longer.push(0);
        assert!(matches!(
            parse(&longer),
            Err(Error::Wire(WireError::Length { .. }))
        ));
        assert!(matches!(
            parse(&[]),
            Err(Error::Wire(WireError::Length { .. }))
        ));
        // magic, version, kind
        let mut bad = q.clone();
        bad[0] ^= 1;
        assert_eq!(parse(&bad), Err(Error::Wire(WireError::Magic)));
        let mut bad = q.clone();
        bad[4] = 9;
        assert_eq!(parse(&bad), Err(Error::Wire(WireError::Version(9))));
        assert!(matches!(
            parse(&pk),
            Err(Error::Wire(WireError::Kind {
                expected: 2,
                got: 1
            }))
        ));
        // other parameters, other layout
        let other = Params::insecure_for_tests(128);
        assert!(matches!(
            QueryMsg::from_bytes(
                &q,
                &other,
                &Layout::with_tiles(&other, shape, 16, 2, 5, 1).unwrap()
            ),
            Err(Error::Wire(WireError::Parameters { .. }))
        ));
        let other_layout = Layout::with_tiles(&params, shape, 16, 1, 5, 1).unwrap();
        assert_eq!(
            QueryMsg::from_bytes(&q, &params, &other_layout),
            Err(Error::Wire(WireError::Layout))
        );
        // a residue equal to its prime: the first residue is the low bits
        // right after the header and the seed
        let mut bad = q.clone();
        let at = wire::HEADER_BYTES + 16;
        let p0 = params.moduli()[0].value();
        let bits = params.residue_bits(0);
        let mut word = [0u8; 8];
        word.copy_from_slice(&bad[at..at + 8]);
        let old = u64::from_le_bytes(word);
        let mask = (1u64 << bits) - 1;
        let new = (old & !mask) | p0;
        bad[at..at + 8].copy_from_slice(&new.to_le_bytes());
        assert_eq!(
            parse(&bad),
            Err(Error::Wire(WireError::Range { index: 0, prime: 0 }))
        );
        // all ones in the public key
        let mut bad = pk.clone();
        for b in bad[wire::HEADER_BYTES + 16..].iter_mut() {
            *b = 0xff;
        }
        assert!(matches!(
            PublicKeyMsg::from_bytes(&bad, &params),
            Err(Error::Wire(WireError::Range { .. }))
        ));
        // in-memory messages of the wrong size are refused, not indexed out of bounds
        let key = PeerKey::new(
            params.clone(),
            &PublicKeyMsg::from_bytes(&pk, &params).unwrap(),
        )
        .unwrap();
        let mut server = Server::from_seed_for_tests(params.clone(), 1);
        let mut query = parse(&q).unwrap();
        query.b[0].pop();
        assert!(server.respond(&key, &layout, &[0; 15], &query).is_err());
        let query = parse(&q).unwrap();
        assert!(matches!(
            server.respond(&key, &layout, &[0; 14], &query),
            Err(Error::Shape(_))
        ));
        // weights outside the declared width
        assert!(matches!(
            server.respond(&key, &layout, &[1 << 20; 15], &query),
            Err(Error::Shape(_))
        ));
        let (mut resp, _) = server.respond(&key, &layout, &[3; 15], &query).unwrap();
        resp.cts[0].b.push(1);
        assert!(client.finish(&layout, &resp).is_err());
        assert!(PeerKey::new(
            params.clone(),
            &PublicKeyMsg {
                seed: [0; 16],
                b: vec![1; 3]
            }
        )
        .is_err());
        assert!(matches!(
            client.query(&layout, &[0; 3]),
            Err(Error::Shape(_))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn corrupted_bytes_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
            let params = Params::insecure_for_tests(32);
            let shape = Shape { batch: 2, k: 3, n: 2 };
            let layout = Layout::with_tiles(&params, shape, 64, 2, 3, 2).unwrap();
            let mut client = Client::from_seed_for_tests(params.clone(), 1);
            let mut server = Server::from_seed_for_tests(params.clone(), 2);
            let pk = client.public_key();
            let key = PeerKey::new(params.clone(), &pk).unwrap();
            let q = client.query(&layout, &[1, 2, 3, 4, 5, 6]).unwrap();
            let (resp, _) = server.respond(&key, &layout, &[1; 6], &q).unwrap();
            for bytes in [pk.to_bytes(&params), q.to_bytes(&params), resp.to_bytes(&params)] {
                let mut b = bytes.clone();
                for (i, v) in &flips {
                    let at = i.index(b.len());
                    b[at] ^= v;
                }
                let _ = PublicKeyMsg::from_bytes(&b, &params);
                if let Ok(q2) = QueryMsg::from_bytes(&b, &params, &layout) {
                    let _ = server.respond(&key, &layout, &[1; 6], &q2);
                }
                if let Ok(r2) = ResponseMsg::from_bytes(&b, &params, &layout) {
                    let _ = client.finish(&layout, &r2);
                }
                let short = &bytes[..cut.index(bytes.len())];
                prop_assert!(QueryMsg::from_bytes(short, &params, &layout).is_err());
                prop_assert!(ResponseMsg::from_bytes(short, &params, &layout).is_err());
                prop_assert!(PublicKeyMsg::from_bytes(short, &params).is_err());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn protocol_matches_matrix_product(
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
        fn chosen_layouts_are_correct(batch in 1usize..40, k in 1usize..80, n in 1usize..20, seed in any::<u64>()) {
            let params = Params::insecure_for_tests(256);
            let shape = Shape { batch, k, n };
            let layout = Layout::choose(&params, shape, 64, &CostModel::default_for(&params)).unwrap();
            let x = lcg(seed, batch * k);
            let w = lcg(seed ^ 2, k * n);
            let (c, s) = run(&params, &layout, &x, &w, seed);
            let sum: Vec<u64> = c.iter().zip(&s).map(|(a, b)| a.wrapping_add(*b)).collect();
            prop_assert_eq!(sum, reference(&x, &w, shape));
        }
    }
}
