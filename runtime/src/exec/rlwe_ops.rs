//! RLWE matrix products (`rlwe`'s sans-I/O client and server) as executor
//! instructions: [`Instr::RlweKeyGen`], [`Instr::RlweQuery`] at the
//! encrypting party, [`Instr::RlweRespond`] at the other, and
//! [`Instr::RlweFinish`] back at the encrypting party. The messages travel
//! as [`Wire::Rlwe`] through the plan's ordinary sends and receives; every
//! one a peer sent is parsed here by `rlwe`'s checked `from_bytes` against
//! the parameters and the layout this party computed itself, so a
//! malformed one is an [`ExecError`], never a panic.
//!
//! Both parties derive the layout from public data alone: the plan's
//! shapes (with the session's dimensions) and the instruction's `w_bits`.
//!
//! With a `conv` window the product is a convolution run by `rlwe::conv`
//! (Cheetah's HomConv): one query per image of the batch, the input padded
//! and cropped to the `(Ho - 1) s + kh` rows and `(Wo - 1) s + kw` columns
//! the kept outputs read, the stride-1 outputs computed and every `s`-th
//! kept. The messages of the batch travel concatenated, each of the length
//! the layout fixes.

use super::ops::encode_fixed;
use super::wire::{RlweKind, Wire};
use super::{Exec, ExecError, Value};
use crate::sharing::{RingTensor, Share};
use plan::{Instr, Kind, Reg, Window};
use rlwe::{
    Client, ConvLayout, ConvQueryMsg, ConvResponseMsg, ConvShape, CostModel, Layout,
    OfflineQueryMsg, OfflineResponseMsg, OnlineQueryMsg, OnlineResponseMsg, PeerKey, PendingQuery,
    PendingResult, PreparedQuery, PreparedResponse, PreparedWeights, PublicKeyMsg, QueryMsg,
    ResponseMsg, Server,
};
use std::sync::Arc;
use zeroize::Zeroizing;

/// The RLWE state of one party: parameters (their NTT tables are built
/// once), its own client (key pair) if it encrypts, its server randomness
/// if it answers, the peer's key as parsed, and the layouts of queries
/// awaiting their response.
#[derive(Default)]
pub(super) struct RlweState {
    params: Option<Arc<rlwe::Params>>,
    client: Option<Client>,
    /// The seed of `client`'s public key: its name on the [`super::OtLink`].
    client_seed: Option<rlwe::Seed>,
    /// Whether products are answered on their own threads: set while the
    /// party has dealer-free preprocessing still ahead of it, which they
    /// overlap.
    pub(super) overlap: bool,
    /// Responses being computed on their own threads.
    background: Vec<Background>,
    server: Option<Server>,
    peer_keys: std::collections::HashMap<Reg, Arc<PeerKey>>,
    pending: std::collections::HashMap<Reg, Pending>,
    /// Prepared products by their result register (`rlwe::prepared`): the
    /// encrypting party's between [`Instr::RlwePrepare`] and
    /// [`Instr::RlwePrepareFinish`], then until its online query.
    preparing: std::collections::HashMap<Reg, PendingQuery>,
    preparing_layouts: std::collections::HashMap<Reg, Layout>,
    prepared_queries: std::collections::HashMap<Reg, PreparedQuery>,
    /// The other party's, from [`Instr::RlwePrepareRespond`] until its
    /// online answer: `W` made ready and the preprocessed results.
    prepared_responses: std::collections::HashMap<Reg, (PreparedWeights, PreparedResponse)>,
    /// A masked product's `W` encoded while its party waited for `x - r`
    /// ([`Exec::before_receiving`]), by `W`'s register.
    encoded_w: Option<(Reg, Vec<u64>)>,
}

/// A matrix product's response being computed on its own thread: the
/// registers it will set.
pub(super) struct Background {
    msg: Reg,
    dst: Reg,
    dst_shape: Vec<usize>,
    handle: std::thread::JoinHandle<Result<Answered, ExecError>>,
}

/// An answered product: the server (for its next product), the response's
/// bytes and the server's share.
type Answered = (Server, Vec<u8>, Vec<u64>);

/// Answers `q` with `W = wdata` and, with `own` (this party's share of
/// `x`), adds `own @ W` to the share: the response's bytes and the share,
/// with the server back for its next product.
#[allow(clippy::too_many_arguments)]
fn respond(
    mut server: Server,
    pk: &PeerKey,
    layout: &Layout,
    shape: rlwe::Shape,
    wdata: Vec<u64>,
    q: &QueryMsg,
    own: Option<Zeroizing<Vec<u64>>>,
    cache: Option<&super::WeightCache>,
) -> Result<Answered, ExecError> {
    let params = server.params().clone();
    // `W` made ready in an earlier session (or now, the second time).
    let ready = match cache {
        Some(c) => c
            .get(&params, layout, &wdata)
            .map_err(|e| rlwe_error("cannot answer an RLWE query", e))?,
        None => None,
    };
    let answered = match ready {
        Some(ready) => server.respond_tiles(pk, &ready, q),
        None => server.respond(pk, layout, &wdata, q),
    };
    let (response, mut share) =
        answered.map_err(|e| rlwe_error("cannot answer an RLWE query", e))?;
    if let Some(xs) = own {
        // This party's share of x times w, locally.
        add_local_product(
            &mut share,
            xs.to_vec(),
            shape.batch,
            shape.k,
            wdata,
            shape.n,
        )?;
    }
    let bytes = response.to_bytes(&params);
    Ok((server, bytes, share))
}

/// Adds `x @ w` (`x` `[rows, k]`, `w` `[k, n]`, ring elements) to
/// `share`: a party's local product with its own share of `x`.
fn add_local_product(
    share: &mut [u64],
    x: Vec<u64>,
    rows: usize,
    k: usize,
    w: Vec<u64>,
    n: usize,
) -> Result<(), ExecError> {
    let local = RingTensor::new(x, vec![rows, k])?.matmul(&RingTensor::new(w, vec![k, n])?)?;
    for (s, l) in share.iter_mut().zip(local.data()) {
        *s = s.wrapping_add(*l);
    }
    Ok(())
}

/// A query awaiting its response: a matrix product's layout, or a
/// convolution's with its geometry, or a prepared product's online state.
enum Pending {
    Product(Layout),
    Conv(Conv),
    Prepared(Layout, PendingResult),
}

/// An RLWE convolution as both parties derive it: the HomConv layout of
/// one image, the batch and the strides of the kept outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Conv {
    layout: ConvLayout,
    batch: usize,
    stride: [usize; 2],
    /// Kept outputs per image, rows and columns.
    out: [usize; 2],
}

impl Conv {
    /// From public data: the result `dst` (`[batch, Ho, Wo, Cout]`), the
    /// kernels `w` (`[C kh kw, Cout]`), the window and `w_bits`.
    fn new(
        params: &rlwe::Params,
        dst: &[usize],
        w: &[usize],
        window: &Window,
        w_bits: u32,
    ) -> Result<Conv, ExecError> {
        let bad = || {
            ExecError::protocol(format!(
                "an RLWE convolution with result {dst:?}, kernels {w:?} and kernel {:?} stride {:?}",
                window.kernel, window.stride
            ))
        };
        if !window.is_homconv() {
            return Err(bad());
        }
        let (&[batch, ho, wo, cout], &[ck, m]) = (dst, w) else {
            return Err(bad());
        };
        let (kh, kw) = (window.kernel[0], window.kernel[1]);
        let (sh, sw) = (window.stride[0], window.stride[1]);
        if m != cout || ho == 0 || wo == 0 || cout == 0 || ck == 0 || ck % (kh * kw) != 0 {
            return Err(bad());
        }
        let shape = ConvShape {
            channels: ck / (kh * kw),
            height: (ho - 1) * sh + kh,
            width: (wo - 1) * sw + kw,
            filters: cout,
            kernel_h: kh,
            kernel_w: kw,
        };
        let layout = ConvLayout::choose(params, shape, w_bits, &CostModel::default_for(params))
            .map_err(|e| rlwe_error("no RLWE layout for this convolution", e))?;
        Ok(Conv {
            layout,
            batch,
            stride: [sh, sw],
            out: [ho, wo],
        })
    }

    /// One image's input as the query takes it: `x` (`[C, H, W]` of the
    /// batch's `b`-th image in `x`, `[batch, C, H, W]`) padded with zeros
    /// and cropped to the rows and columns the kept outputs read.
    fn input(&self, x: &[u64], xs: &[usize], padding: &[usize], b: usize) -> Vec<u64> {
        let s = self.layout.shape;
        let (h0, w0) = (xs[2], xs[3]);
        let mut out = vec![0u64; s.channels * s.height * s.width];
        for c in 0..s.channels {
            for i in 0..s.height {
                let Some(r) = i.checked_sub(padding[0]).filter(|r| *r < h0) else {
                    continue;
                };
                for j in 0..s.width {
                    let Some(q) = j.checked_sub(padding[1]).filter(|q| *q < w0) else {
                        continue;
                    };
                    out[(c * s.height + i) * s.width + j] =
                        x[((b * s.channels + c) * h0 + r) * w0 + q];
                }
            }
        }
        out
    }

    /// Adds one image's stride-1 outputs (`[Cout, H - kh + 1, W - kw + 1]`)
    /// at the kept positions into `dst` (`[batch, Ho, Wo, Cout]`).
    fn keep(&self, full: &[u64], b: usize, dst: &mut [u64]) {
        let s = self.layout.shape;
        let (fh, fw) = (s.out_h(), s.out_w());
        let [ho, wo] = self.out;
        for i in 0..ho {
            for j in 0..wo {
                for m in 0..s.filters {
                    let v = full[(m * fh + i * self.stride[0]) * fw + j * self.stride[1]];
                    let at = ((b * ho + i) * wo + j) * s.filters + m;
                    dst[at] = dst[at].wrapping_add(v);
                }
            }
        }
    }

    /// The batch's messages, each of `len` bytes, from their concatenation.
    fn split<'a>(
        &self,
        bytes: &'a [u8],
        len: usize,
        what: &str,
    ) -> Result<Vec<&'a [u8]>, ExecError> {
        if len == 0 || bytes.len() != self.batch * len {
            return Err(ExecError::protocol(format!(
                "malformed RLWE convolution {what}: {} bytes, expected {} images of {len}",
                bytes.len(),
                self.batch
            )));
        }
        Ok(bytes.chunks(len).collect())
    }
}

/// An `rlwe` error as the executor reports it. Its messages name sizes,
/// kinds and layouts, never a key, share or plaintext.
fn rlwe_error(what: &str, e: rlwe::Error) -> ExecError {
    let kind = match e {
        rlwe::Error::Randomness(_) => ExecError::crypto,
        _ => ExecError::protocol,
    };
    kind(format!("{what}: {e}")).with_source(e)
}

/// `[batch, k] @ [k, n]` from the shape of `x` (`lhs`) or of `w`, and the
/// result's element count: `x` is `[k]` or `[batch, k]` (or of higher
/// rank, its leading dimensions the batch), `w` is `[k]` or `[k, n]`.
fn product_shape(operand: &[usize], lhs: bool, out: usize) -> Result<rlwe::Shape, ExecError> {
    let s = |batch, k, n| Ok(rlwe::Shape { batch, k, n });
    match (lhs, operand) {
        (true, [k]) => s(1, *k, out),
        (true, [rows @ .., k])
            if rows.iter().product::<usize>() > 0
                && out.is_multiple_of(rows.iter().product::<usize>()) =>
        {
            let b = rows.iter().product::<usize>();
            s(b, *k, out / b)
        }
        (false, [k]) => s(out, *k, 1),
        (false, [k, n]) if *n > 0 && out.is_multiple_of(*n) => s(out / n, *k, *n),
        _ => Err(ExecError::protocol(format!(
            "an RLWE product with an operand of shape {operand:?} and {out} results"
        ))),
    }
}

/// The layout both parties choose for `shape` (the time-optimal one of
/// `rlwe`'s cost model: deterministic, from public data).
fn layout(params: &rlwe::Params, shape: rlwe::Shape, w_bits: u32) -> Result<Layout, ExecError> {
    Layout::choose(params, shape, w_bits, &CostModel::default_for(params))
        .map_err(|e| rlwe_error("no RLWE layout for this product", e))
}

/// The layout both parties choose for a prepared product
/// (`rlwe::Layout::choose_prepared`: the fewest digits, then the cheapest
/// preprocessing; deterministic, from public data).
fn prepared_layout(
    params: &rlwe::Params,
    shape: rlwe::Shape,
    w_bits: u32,
) -> Result<Layout, ExecError> {
    Layout::choose_prepared(params, shape, w_bits, &CostModel::default_for(params))
        .map_err(|e| rlwe_error("no RLWE layout for this prepared product", e))
}

/// For the memory estimate: the bytes of the message `ins` writes and of
/// its largest temporaries (the server's queries and accumulators in NTT
/// form), given the plan's shapes with dimensions bound.
pub(super) fn footprint(
    ins: &Instr,
    shape_of: &dyn Fn(Reg) -> Result<Vec<usize>, ExecError>,
) -> Result<Option<(u64, u64)>, ExecError> {
    if !matches!(
        ins,
        Instr::RlweKeyGen { .. }
            | Instr::RlweQuery { .. }
            | Instr::RlweRespond { .. }
            | Instr::RlwePrepare { .. }
            | Instr::RlwePrepareRespond { .. }
    ) {
        return Ok(None);
    }
    let params = rlwe::Params::n8192_q128();
    let poly = (params.n() * params.levels() * 8) as u64;
    let product = |operand: Reg, lhs: bool, dst: Reg, w_bits: u32| {
        let out: usize = shape_of(dst)?.iter().product();
        layout(
            &params,
            product_shape(&shape_of(operand)?, lhs, out)?,
            w_bits,
        )
    };
    let prepared = |operand: Reg, lhs: bool, dst: Reg, w_bits: u32| {
        let out: usize = shape_of(dst)?.iter().product();
        prepared_layout(
            &params,
            product_shape(&shape_of(operand)?, lhs, out)?,
            w_bits,
        )
    };
    let conv = |dst: Reg, w: &[usize], window: &Window, w_bits: u32| {
        Conv::new(&params, &shape_of(dst)?, w, window, w_bits)
    };
    Ok(match ins {
        Instr::RlweQuery {
            x,
            dst,
            w_bits,
            conv: Some(window),
            ..
        } => {
            // The client does not hold `w`: its shape from `x`, the result and the window.
            let d = shape_of(*dst)?;
            let k = window.kernel.iter().product::<usize>();
            let c = shape_of(*x)?.get(1).copied().unwrap_or(0) * k;
            let cv = conv(*dst, &[c, d.last().copied().unwrap_or(0)], window, *w_bits)?;
            let q = (cv.batch * cv.layout.query_bytes(&params)) as u64;
            Some((q, q + 2 * poly))
        }
        Instr::RlweRespond {
            w,
            dst,
            w_bits,
            conv: Some(window),
            ..
        } => {
            let cv = conv(*dst, &shape_of(*w)?, window, *w_bits)?;
            let l = cv.layout;
            let r = (cv.batch * l.response_bytes(&params)) as u64;
            let held =
                (l.groups() * (1 + l.products() * l.digits) + l.result_count()) as u64 * 2 * poly;
            Some((r, r + held))
        }
        Instr::RlweKeyGen { .. } => {
            let key = PublicKeyMsg::byte_len(&params) as u64;
            Some((key, key + 2 * poly))
        }
        Instr::RlweQuery {
            x,
            dst,
            w_bits,
            prepared: true,
            ..
        } => {
            let l = prepared(*x, true, *dst, *w_bits)?;
            let q = l.online_query_bytes(&params) as u64;
            Some((q, q))
        }
        Instr::RlweRespond {
            w,
            dst,
            w_bits,
            prepared: true,
            ..
        } => {
            let l = prepared(*w, false, *dst, *w_bits)?;
            let r = l.online_response_bytes(&params) as u64;
            Some((r, r))
        }
        Instr::RlwePrepare { x, dst, w_bits, .. } => {
            let l = prepared(*x, true, *dst, *w_bits)?;
            let q = l.offline_query_bytes(&params) as u64;
            Some((q, q + 2 * poly))
        }
        Instr::RlwePrepareRespond { dst, w, w_bits, .. } => {
            let l = prepared(*w, false, *dst, *w_bits)?;
            let r = l.offline_response_bytes(&params) as u64;
            // The server's transforms as in a product, and the kept `b`
            // halves and `W`'s residues until the online step.
            let held = (l.query_count() + l.m_tiles() + 2 * l.result_count()) as u64 * 2 * poly;
            Some((r, r + held))
        }
        Instr::RlweQuery { x, dst, w_bits, .. } => {
            let l = product(*x, true, *dst, *w_bits)?;
            let q = l.query_bytes(&params) as u64;
            Some((q, q + 2 * poly))
        }
        Instr::RlweRespond { w, dst, w_bits, .. } => {
            let l = product(*w, false, *dst, *w_bits)?;
            let r = l.response_bytes(&params) as u64;
            let held = (l.query_count() + l.m_tiles() + l.result_count()) as u64 * 2 * poly;
            Some((r, r + held))
        }
        _ => None,
    })
}

impl RlweState {
    fn params(&mut self) -> Arc<rlwe::Params> {
        self.params
            .get_or_insert_with(rlwe::Params::n8192_q128)
            .clone()
    }
}

impl Exec<'_> {
    /// The product's layout, from public data: the plan's shapes of one
    /// operand (`x` at the encrypting party, `w` at the other) and of the
    /// result, and `w_bits`; a prepared product's ([`prepared_layout`])
    /// when `prepared`.
    fn rlwe_layout(
        &mut self,
        operand: Reg,
        lhs: bool,
        dst: Reg,
        w_bits: u32,
        prepared: bool,
    ) -> Result<(rlwe::Shape, Layout), ExecError> {
        let os = self.reg_shape(operand)?;
        let out: usize = self.reg_shape(dst)?.iter().product();
        let shape = product_shape(&os, lhs, out)?;
        let params = self.rlwe.params();
        let layout = if prepared {
            prepared_layout(&params, shape, w_bits)?
        } else {
            layout(&params, shape, w_bits)?
        };
        Ok((shape, layout))
    }

    /// A clear value (fixed-point at the plan's precision) or this party's
    /// share, as ring elements.
    /// Writes an RLWE message of `kind` into `msg`.
    fn set_rlwe(&mut self, msg: Reg, kind: RlweKind, bytes: Vec<u8>) {
        self.set(msg, Value::Wire(Wire::Rlwe { kind, bytes }));
    }

    /// Keeps what finishing the product of `dst` needs once its response
    /// arrives; a second query for the same register is a protocol error.
    fn rlwe_pending(&mut self, dst: Reg, pending: Pending) -> Result<(), ExecError> {
        if self.rlwe.pending.insert(dst, pending).is_some() {
            return Err(ExecError::protocol(format!(
                "two RLWE queries for register {dst}"
            )));
        }
        Ok(())
    }

    fn rlwe_operand(&self, r: Reg) -> Result<Vec<u64>, ExecError> {
        Ok(match self.plan.reg(r).kind {
            Kind::Share { .. } => self.share(r)?.value().data().to_vec(),
            Kind::Clear => encode_fixed(self.clear(r)?, self.plan.precision)?
                .data()
                .to_vec(),
            _ => {
                return Err(ExecError::protocol(format!(
                    "register {r} is not an operand an RLWE product takes"
                )))
            }
        })
    }

    /// The bytes of an RLWE message of `kind` in register `r`.
    fn rlwe_message(&self, r: Reg, kind: RlweKind) -> Result<&[u8], ExecError> {
        match self.get(r)? {
            Value::Wire(Wire::Rlwe { kind: k, bytes }) if *k == kind => Ok(bytes),
            Value::Wire(w) => Err(ExecError::protocol(format!(
                "expected an {}, got {}",
                kind.name(),
                w.kind()
            ))),
            _ => Err(ExecError::protocol(format!(
                "expected an {} in register {r}",
                kind.name()
            ))),
        }
    }

    /// Adds this party's share of `x` (`add`, `[batch, k]`) times `w`
    /// (`[k, n]`, ring elements) to `share`, locally.
    fn rlwe_add_local(
        &self,
        share: &mut [u64],
        add: Reg,
        wdata: Vec<u64>,
        shape: rlwe::Shape,
    ) -> Result<(), ExecError> {
        let xs = self.share(add)?.value().data().to_vec();
        add_local_product(share, xs, shape.batch, shape.k, wdata, shape.n)
    }

    /// `W` read from this party's input `weights` (a prepared or masked
    /// product's preprocessing, before any input is bound), encoded at the
    /// plan's precision; it must have the shape of register `w`.
    fn rlwe_weights(&self, w: Reg, weights: u32) -> Result<Vec<u64>, ExecError> {
        let t = self.own_input(weights)?;
        let ws = self.reg_shape(w)?;
        if t.shape != ws {
            return Err(ExecError::protocol(format!(
                "an RLWE product prepared with an input of shape {:?} for register {w} of shape {ws:?}",
                t.shape
            )));
        }
        Ok(encode_fixed(t, self.plan.precision)?.data().to_vec())
    }

    /// Masked RLWE products (Delphi's linear layers; [`Instr::RlweMask`]):
    /// the mask drawn in the preprocessing, `x` minus it sent online, and
    /// the peer's local product. The RLWE product on the mask runs as an
    /// ordinary [`Instr::RlweQuery`] and [`Instr::RlweRespond`] in the
    /// preprocessing.
    fn step_rlwe_masked(&mut self, ins: &Instr) -> Result<(), ExecError> {
        match ins {
            Instr::RlweMask { mask } => {
                // Fresh from the OS-seeded CSPRNG for this product alone;
                // used once, by `RlweMaskedOpen`, and never sent.
                let shape = self.reg_shape(*mask)?;
                let mut rng = crate::sharing::share::os_rng()?;
                let r = crate::sharing::share::random_tensor(&mut rng, &shape)?;
                let s = Share::new(self.role()?, r);
                self.set(*mask, Value::Share(s));
            }
            Instr::RlweMaskedOpen {
                msg,
                x,
                mask,
                pre,
                dst,
            } => {
                let data = Zeroizing::new(self.rlwe_operand(*x)?);
                let Some(Value::Share(r)) = self.take(*mask) else {
                    return Err(ExecError::protocol(format!(
                        "a masked RLWE product's mask {mask} used twice or never drawn"
                    )));
                };
                let r = Zeroizing::new(r.into_value().data().to_vec());
                if r.len() != data.len() {
                    return Err(ExecError::protocol(format!(
                        "a masked RLWE product of {} entries with a mask of {}",
                        data.len(),
                        r.len()
                    )));
                }
                let opened: Vec<u64> = data
                    .iter()
                    .zip(r.iter())
                    .map(|(x, r)| x.wrapping_sub(*r))
                    .collect();
                let Some(Value::Share(s)) = self.take(*pre) else {
                    return Err(ExecError::protocol(format!(
                        "a masked RLWE product without its preprocessing ({pre})"
                    )));
                };
                let share = RingTensor::new(s.into_value().data().to_vec(), self.reg_shape(*dst)?)?;
                let shape = self.reg_shape(*msg)?;
                self.set(*dst, Value::Share(Share::new(self.role()?, share)));
                self.set(
                    *msg,
                    Value::Wire(Wire::Ring(crate::sharing::OpenMsg {
                        data: opened,
                        shape,
                    })),
                );
            }
            Instr::RlweMaskedClose {
                dst,
                msg,
                w,
                add,
                pre,
                conv,
            } => {
                let peer = self.plan.party_name(self.other_party()?).to_string();
                let xs = self.reg_shape(*msg)?;
                let Some(Value::Wire(Wire::Ring(m))) = self.take(*msg) else {
                    return Err(ExecError::protocol(format!(
                        "expected x minus its mask from {peer}"
                    )));
                };
                if m.shape != xs || m.data.len() != xs.iter().product::<usize>() {
                    return Err(ExecError::protocol(format!(
                        "malformed masked RLWE input from {peer}: shape {:?}, {} entries, expected {xs:?}",
                        m.shape,
                        m.data.len()
                    )));
                }
                let mut x = m.data;
                if let Some(window) = conv {
                    // The convolution's patches of the input minus its mask.
                    x = plan::im2col_data(&x, &xs, window, 0u64)
                        .map_err(ExecError::protocol)?
                        .0;
                }
                if let Some(a) = add {
                    let mine = self.share(*a)?.value().data();
                    if mine.len() != x.len() {
                        return Err(ExecError::protocol(format!(
                            "a masked RLWE product whose share of x has {} entries, expected {}",
                            mine.len(),
                            x.len()
                        )));
                    }
                    for (x, a) in x.iter_mut().zip(mine) {
                        *x = x.wrapping_add(*a);
                    }
                }
                let wdata = match self.rlwe.encoded_w.take() {
                    Some((r, data)) if r == *w => data,
                    _ => self.rlwe_operand(*w)?,
                };
                let ws = self.reg_shape(*w)?;
                let out: usize = self.reg_shape(*dst)?.iter().product();
                let shape = product_shape(&ws, false, out)?;
                let (b, k, n) = (shape.batch, shape.k, shape.n);
                if x.len() != b * k {
                    return Err(ExecError::protocol(format!(
                        "a masked RLWE product of {} inputs into [{b}, {k}] @ [{k}, {n}]",
                        x.len()
                    )));
                }
                let xm = RingTensor::new(x, vec![b, k])?;
                let wm = RingTensor::new(wdata, vec![k, n])?;
                let mut z = xm.matmul(&wm)?.data().to_vec();
                let Some(Value::Share(s)) = self.take(*pre) else {
                    return Err(ExecError::protocol(format!(
                        "a masked RLWE product without its preprocessing ({pre})"
                    )));
                };
                let s = s.into_value();
                if s.data().len() != z.len() {
                    return Err(ExecError::protocol(format!(
                        "a masked RLWE product's preprocessed share of {} entries for {} results",
                        s.data().len(),
                        z.len()
                    )));
                }
                for (z, s) in z.iter_mut().zip(s.data()) {
                    *z = z.wrapping_add(*s);
                }
                let out = RingTensor::new(z, self.reg_shape(*dst)?)?;
                self.set(*dst, Value::Share(Share::new(self.role()?, out)));
            }
            other => {
                return Err(ExecError::protocol(format!(
                    "unexpected instruction {}",
                    self.plan.instr_text(other)
                )))
            }
        }
        Ok(())
    }

    /// Work `ins` can do before the frames it needs are read (the caller
    /// is about to wait for them): a masked product's `W` is encoded, so
    /// that once `x - r` arrives only the product is left. A failure here
    /// is left for the step itself to meet and report.
    pub(super) fn before_receiving(&mut self, ins: &Instr) {
        if let Instr::RlweMaskedClose { w, .. } = ins {
            if let Ok(data) = self.rlwe_operand(*w) {
                self.rlwe.encoded_w = Some((*w, data));
            }
        }
    }

    /// Starts this party's RLWE server on first use.
    fn rlwe_server(&mut self, params: &Arc<rlwe::Params>) -> Result<(), ExecError> {
        if self.rlwe.server.is_none() {
            self.rlwe.server = Some(
                Server::new(params.clone())
                    .map_err(|e| rlwe_error("cannot start the RLWE server", e))?,
            );
        }
        Ok(())
    }

    /// Prepared RLWE products (`rlwe::prepared`): the preprocessing's three
    /// steps and the online query and answer. Every message from the peer
    /// is parsed against the layout this party derived itself.
    fn step_rlwe_prepared(&mut self, ins: &Instr) -> Result<(), ExecError> {
        let params = self.rlwe.params();
        match ins {
            Instr::RlwePrepare {
                msg,
                x,
                dst,
                w_bits,
            } => {
                let (_, layout) = self.rlwe_layout(*x, true, *dst, *w_bits, true)?;
                let client = self.rlwe.client.as_mut().ok_or_else(|| {
                    ExecError::protocol("an RLWE preprocessing query before its key pair")
                })?;
                let (query, pending) = client
                    .prepare(&layout)
                    .map_err(|e| rlwe_error("cannot prepare an RLWE query", e))?;
                if self.rlwe.preparing.insert(*dst, pending).is_some()
                    || self.rlwe.prepared_queries.contains_key(dst)
                {
                    return Err(ExecError::protocol(format!(
                        "two RLWE preprocessing queries for register {dst}"
                    )));
                }
                self.rlwe.preparing_layouts.insert(*dst, layout);
                let bytes = query.to_bytes(&params);
                self.set_rlwe(*msg, RlweKind::Query, bytes);
            }
            Instr::RlwePrepareRespond {
                msg,
                dst,
                query,
                key,
                w,
                weights,
                w_bits,
            } => {
                let (_, layout) = self.rlwe_layout(*w, false, *dst, *w_bits, true)?;
                let peer = self.rlwe_peer_key(*key, &params)?;
                let q = OfflineQueryMsg::from_bytes(
                    self.rlwe_message(*query, RlweKind::Query)?,
                    &params,
                    &layout,
                )
                .map_err(|e| {
                    rlwe_error(
                        &format!("malformed RLWE preprocessing query from {peer}"),
                        e,
                    )
                })?;
                let wdata = Zeroizing::new(self.rlwe_weights(*w, *weights)?);
                let prepared_w = PreparedWeights::new(&params, &layout, &wdata)
                    .map_err(|e| rlwe_error("cannot prepare W for an RLWE product", e))?;
                self.rlwe_server(&params)?;
                let (Some(server), Some(pk)) =
                    (self.rlwe.server.as_mut(), self.rlwe.peer_keys.get(key))
                else {
                    return Err(ExecError::protocol(
                        "an RLWE preprocessing answer without its key",
                    ));
                };
                let (response, kept) = server
                    .prepare(pk, &prepared_w, &q)
                    .map_err(|e| rlwe_error("cannot prepare an RLWE answer", e))?;
                if self
                    .rlwe
                    .prepared_responses
                    .insert(*dst, (prepared_w, kept))
                    .is_some()
                {
                    return Err(ExecError::protocol(format!(
                        "two RLWE preprocessing answers for register {dst}"
                    )));
                }
                let bytes = response.to_bytes(&params);
                self.set_rlwe(*msg, RlweKind::Response, bytes);
            }
            Instr::RlwePrepareFinish { dst, response } => {
                let (Some(pending), Some(layout)) = (
                    self.rlwe.preparing.remove(dst),
                    self.rlwe.preparing_layouts.remove(dst),
                ) else {
                    return Err(ExecError::protocol(format!(
                        "an RLWE preprocessing answer for {dst} without its query"
                    )));
                };
                let peer = self.plan.party_name(self.other_party()?).to_string();
                let r = OfflineResponseMsg::from_bytes(
                    self.rlwe_message(*response, RlweKind::Response)?,
                    &params,
                    &layout,
                )
                .map_err(|e| {
                    rlwe_error(
                        &format!("malformed RLWE preprocessing answer from {peer}"),
                        e,
                    )
                })?;
                let client = self.rlwe.client.as_ref().ok_or_else(|| {
                    ExecError::protocol("an RLWE preprocessing answer without a key pair")
                })?;
                let prepared = client.prepare_finish(pending, &r).map_err(|e| {
                    rlwe_error(
                        &format!("malformed RLWE preprocessing answer from {peer}"),
                        e,
                    )
                })?;
                self.rlwe.prepared_queries.insert(*dst, prepared);
            }
            Instr::RlweQuery {
                msg,
                x,
                dst,
                w_bits,
                conv: None,
                prepared: true,
            } => {
                let (_, layout) = self.rlwe_layout(*x, true, *dst, *w_bits, true)?;
                let data = Zeroizing::new(self.rlwe_operand(*x)?);
                let prepared = self.rlwe.prepared_queries.remove(dst).ok_or_else(|| {
                    ExecError::protocol(format!(
                        "a prepared RLWE query for {dst} without its preprocessing"
                    ))
                })?;
                let client = self
                    .rlwe
                    .client
                    .as_ref()
                    .ok_or_else(|| ExecError::protocol("an RLWE query before its key pair"))?;
                let (query, pending) = client
                    .online_query(prepared, &data)
                    .map_err(|e| rlwe_error("cannot encode a prepared RLWE query", e))?;
                self.rlwe_pending(*dst, Pending::Prepared(layout, pending))?;
                let bytes = query.to_bytes(&params);
                self.set_rlwe(*msg, RlweKind::Query, bytes);
            }
            Instr::RlweRespond {
                msg,
                dst,
                query,
                w,
                add,
                w_bits,
                conv: None,
                prepared: true,
                ..
            } => {
                let (shape, layout) = self.rlwe_layout(*w, false, *dst, *w_bits, true)?;
                let peer = self.plan.party_name(self.other_party()?).to_string();
                let q = OnlineQueryMsg::from_bytes(
                    self.rlwe_message(*query, RlweKind::Query)?,
                    &params,
                    &layout,
                )
                .map_err(|e| rlwe_error(&format!("malformed RLWE query from {peer}"), e))?;
                let (weights, kept) =
                    self.rlwe.prepared_responses.remove(dst).ok_or_else(|| {
                        ExecError::protocol(format!(
                            "a prepared RLWE answer for {dst} without its preprocessing"
                        ))
                    })?;
                let server = self.rlwe.server.as_ref().ok_or_else(|| {
                    ExecError::protocol("a prepared RLWE answer without a server")
                })?;
                let (response, mut share) = server
                    .online(&weights, kept, &q)
                    .map_err(|e| rlwe_error("cannot answer a prepared RLWE query", e))?;
                if let Some(a) = add {
                    let wdata = self.rlwe_operand(*w)?;
                    self.rlwe_add_local(&mut share, *a, wdata, shape)?;
                }
                let bytes = response.to_bytes(&params);
                let out = RingTensor::new(share, self.reg_shape(*dst)?)?;
                let s = Share::new(self.role()?, out);
                self.set(*dst, Value::Share(s));
                self.set_rlwe(*msg, RlweKind::Response, bytes);
            }
            other => {
                return Err(ExecError::protocol(format!(
                    "unexpected instruction {}",
                    self.plan.instr_text(other)
                )))
            }
        }
        Ok(())
    }

    pub(super) fn step_rlwe(&mut self, ins: &Instr) -> Result<(), ExecError> {
        match ins {
            Instr::RlwePrepare { .. }
            | Instr::RlwePrepareRespond { .. }
            | Instr::RlwePrepareFinish { .. }
            | Instr::RlweQuery {
                conv: None,
                prepared: true,
                ..
            }
            | Instr::RlweRespond {
                conv: None,
                prepared: true,
                ..
            } => return self.step_rlwe_prepared(ins),
            Instr::RlweMask { .. }
            | Instr::RlweMaskedOpen { .. }
            | Instr::RlweMaskedClose { .. } => return self.step_rlwe_masked(ins),
            Instr::RlweQuery { prepared: true, .. } | Instr::RlweRespond { prepared: true, .. } => {
                return Err(ExecError::protocol(
                    "a prepared RLWE convolution (only products are prepared)",
                ))
            }
            Instr::RlweKeyGen { public } => {
                if self.rlwe.client.is_some() {
                    return Err(ExecError::protocol("a second RLWE key pair in one session"));
                }
                let params = self.rlwe.params();
                // A key pair kept from an earlier session on this
                // connection: its seed names it to the peer, who kept the
                // public key.
                let kept = self
                    .opts
                    .ot_link
                    .as_ref()
                    .and_then(|l| l.take_rlwe_client(self.me, params.fingerprint()));
                let (seed, client, kind, bytes) = match kept {
                    Some((seed, client)) => (seed, client, RlweKind::KeptKey, seed.to_vec()),
                    None => {
                        let mut client = Client::new(params.clone())
                            .map_err(|e| rlwe_error("cannot make an RLWE key", e))?;
                        let public = client.public_key();
                        let bytes = public.to_bytes(&params);
                        (public.seed, client, RlweKind::PublicKey, bytes)
                    }
                };
                self.rlwe.client = Some(client);
                self.rlwe.client_seed = Some(seed);
                self.set_rlwe(*public, kind, bytes);
            }
            Instr::RlweQuery {
                msg,
                x,
                dst,
                w_bits,
                conv: Some(window),
                ..
            } => {
                let xs = self.reg_shape(*x)?;
                let d = self.reg_shape(*dst)?;
                let k = window.kernel.iter().product::<usize>();
                let params = self.rlwe.params();
                let c = xs.get(1).copied().unwrap_or(0);
                let cv = Conv::new(
                    &params,
                    &d,
                    &[c * k, d.last().copied().unwrap_or(0)],
                    window,
                    *w_bits,
                )?;
                let fits = |i: usize| window.out_len(i, xs[2 + i]) == Some(cv.out[i]);
                if xs.len() != 4 || xs[0] != cv.batch || !fits(0) || !fits(1) {
                    return Err(ExecError::protocol(format!(
                        "an RLWE convolution of an input {xs:?} into {d:?}"
                    )));
                }
                let data = self.rlwe_operand(*x)?;
                let client = self
                    .rlwe
                    .client
                    .as_mut()
                    .ok_or_else(|| ExecError::protocol("an RLWE query before its key pair"))?;
                let mut bytes = Vec::with_capacity(cv.batch * cv.layout.query_bytes(&params));
                for b in 0..cv.batch {
                    let image = Zeroizing::new(cv.input(&data, &xs, &window.padding, b));
                    let query = client
                        .conv_query(&cv.layout, &image)
                        .map_err(|e| rlwe_error("cannot encrypt an RLWE convolution query", e))?;
                    bytes.extend(query.to_bytes(&params));
                }
                self.rlwe_pending(*dst, Pending::Conv(cv))?;
                self.set_rlwe(*msg, RlweKind::Query, bytes);
            }
            Instr::RlweQuery {
                msg,
                x,
                dst,
                w_bits,
                conv: None,
                ..
            } => {
                let (_, layout) = self.rlwe_layout(*x, true, *dst, *w_bits, false)?;
                let data = self.rlwe_operand(*x)?;
                let params = self.rlwe.params();
                let client = self
                    .rlwe
                    .client
                    .as_mut()
                    .ok_or_else(|| ExecError::protocol("an RLWE query before its key pair"))?;
                let query = client
                    .query(&layout, &data)
                    .map_err(|e| rlwe_error("cannot encrypt an RLWE query", e))?;
                self.rlwe_pending(*dst, Pending::Product(layout))?;
                let bytes = query.to_bytes(&params);
                self.set_rlwe(*msg, RlweKind::Query, bytes);
            }
            Instr::RlweRespond {
                msg,
                dst,
                query,
                key,
                w,
                add,
                w_bits,
                conv: Some(window),
                weights,
                ..
            } => {
                let params = self.rlwe.params();
                let d = self.reg_shape(*dst)?;
                let ws = self.reg_shape(*w)?;
                let cv = Conv::new(&params, &d, &ws, window, *w_bits)?;
                let peer = self.rlwe_peer_key(*key, &params)?;
                let len = cv.layout.query_bytes(&params);
                let queries = cv
                    .split(self.rlwe_message(*query, RlweKind::Query)?, len, "query")?
                    .into_iter()
                    .map(|q| ConvQueryMsg::from_bytes(q, &params, &cv.layout))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| {
                        rlwe_error(&format!("malformed RLWE convolution query from {peer}"), e)
                    })?;
                // `w` is [C kh kw, Cout]; the kernels [Cout, C, kh, kw]:
                // a masked product's preprocessing reads them from the input.
                let (ck, m) = (ws[0], ws[1]);
                let (wdata, kernels) = match weights {
                    Some(input) => {
                        let t = self.own_input(*input)?;
                        if t.shape.len() != 4 || t.shape[0] != m || t.data.len() != m * ck {
                            return Err(ExecError::protocol(format!(
                                "an RLWE convolution's kernels from an input of shape {:?} for {ws:?}",
                                t.shape
                            )));
                        }
                        let k = encode_fixed(t, self.plan.precision)?.data().to_vec();
                        (Vec::new(), k)
                    }
                    None => {
                        let wdata = self.rlwe_operand(*w)?;
                        let kernels = (0..m * ck).map(|i| wdata[(i % ck) * m + i / ck]).collect();
                        (wdata, kernels)
                    }
                };
                // This party's share of the patches, for its local product
                // with w.
                let own = match add {
                    Some(a) => {
                        let cols = self.share(*a)?.value();
                        let rows = cols.data().len() / ck.max(1);
                        if rows * m != d.iter().product::<usize>() {
                            return Err(ExecError::protocol(format!(
                                "an RLWE convolution's patches {:?} for a result {d:?}",
                                cols.shape()
                            )));
                        }
                        Some((Zeroizing::new(cols.data().to_vec()), rows))
                    }
                    None => None,
                };
                let pk = self.rlwe.peer_keys[key].clone();
                let dst_shape = d.clone();
                let answer = move |mut server: Server| -> Result<Answered, ExecError> {
                    let mut share = vec![0u64; d.iter().product()];
                    let mut bytes =
                        Vec::with_capacity(cv.batch * cv.layout.response_bytes(&params));
                    for (b, q) in queries.iter().enumerate() {
                        let (response, full) = server
                            .conv_respond(&pk, &cv.layout, &kernels, q)
                            .map_err(|e| {
                                rlwe_error("cannot answer an RLWE convolution query", e)
                            })?;
                        cv.keep(&full, b, &mut share);
                        bytes.extend(response.to_bytes(&params));
                    }
                    if let Some((cols, rows)) = own {
                        // This party's share of the patches times w, locally.
                        add_local_product(&mut share, cols.to_vec(), rows, ck, wdata, m)?;
                    }
                    Ok((server, bytes, share))
                };
                self.answer(*msg, *dst, dst_shape, answer)?;
            }
            Instr::RlweRespond {
                msg,
                dst,
                query,
                key,
                w,
                add,
                w_bits,
                conv: None,
                weights,
                ..
            } => {
                let (shape, layout) = self.rlwe_layout(*w, false, *dst, *w_bits, false)?;
                let params = self.rlwe.params();
                let peer = self.rlwe_peer_key(*key, &params)?;
                let q = QueryMsg::from_bytes(
                    self.rlwe_message(*query, RlweKind::Query)?,
                    &params,
                    &layout,
                )
                .map_err(|e| rlwe_error(&format!("malformed RLWE query from {peer}"), e))?;
                let wdata = match weights {
                    Some(input) => self.rlwe_weights(*w, *input)?,
                    None => self.rlwe_operand(*w)?,
                };
                // This party's share of x, for its local product with w.
                let own = match add {
                    Some(a) => Some(Zeroizing::new(self.share(*a)?.value().data().to_vec())),
                    None => None,
                };
                let pk = self.rlwe.peer_keys[key].clone();
                let dst_shape = self.reg_shape(*dst)?;
                let cache = self.opts.rlwe_weights.clone();
                let answer = move |server| {
                    respond(
                        server,
                        &pk,
                        &layout,
                        shape,
                        wdata,
                        &q,
                        own,
                        cache.as_deref(),
                    )
                };
                self.answer(*msg, *dst, dst_shape, answer)?;
            }
            Instr::RlweFinish { dst, response } => {
                let pending = self.rlwe.pending.remove(dst).ok_or_else(|| {
                    ExecError::protocol(format!("an RLWE response for {dst} without its query"))
                })?;
                let params = self.rlwe.params();
                let peer = self.plan.party_name(self.other_party()?).to_string();
                let layout = match pending {
                    Pending::Product(layout) => layout,
                    Pending::Prepared(layout, pending) => {
                        let client = self.rlwe.client.as_ref().ok_or_else(|| {
                            ExecError::protocol("an RLWE response without a key pair")
                        })?;
                        let share = OnlineResponseMsg::from_bytes(
                            self.rlwe_message(*response, RlweKind::Response)?,
                            &params,
                            &layout,
                        )
                        .and_then(|r| client.online_finish(pending, &r))
                        .map_err(|e| {
                            rlwe_error(&format!("malformed RLWE response from {peer}"), e)
                        })?;
                        let out = RingTensor::new(share, self.reg_shape(*dst)?)?;
                        let s = Share::new(self.role()?, out);
                        self.set(*dst, Value::Share(s));
                        return Ok(());
                    }
                    Pending::Conv(cv) => {
                        let bytes = self.rlwe_message(*response, RlweKind::Response)?;
                        let len = cv.layout.response_bytes(&params);
                        let client = self.rlwe.client.as_ref().ok_or_else(|| {
                            ExecError::protocol("an RLWE response without a key pair")
                        })?;
                        let d = self.reg_shape(*dst)?;
                        let mut share = vec![0u64; d.iter().product()];
                        for (b, r) in cv.split(bytes, len, "response")?.into_iter().enumerate() {
                            let full = ConvResponseMsg::from_bytes(r, &params, &cv.layout)
                                .and_then(|r| client.conv_finish(&cv.layout, &r))
                                .map_err(|e| {
                                    rlwe_error(
                                        &format!("malformed RLWE convolution response from {peer}"),
                                        e,
                                    )
                                })?;
                            cv.keep(&full, b, &mut share);
                        }
                        let out = RingTensor::new(share, d)?;
                        let s = Share::new(self.role()?, out);
                        self.set(*dst, Value::Share(s));
                        return Ok(());
                    }
                };
                let r = ResponseMsg::from_bytes(
                    self.rlwe_message(*response, RlweKind::Response)?,
                    &params,
                    &layout,
                )
                .map_err(|e| rlwe_error(&format!("malformed RLWE response from {peer}"), e))?;
                let client =
                    self.rlwe.client.as_ref().ok_or_else(|| {
                        ExecError::protocol("an RLWE response without a key pair")
                    })?;
                let share = client
                    .finish(&layout, &r)
                    .map_err(|e| rlwe_error(&format!("malformed RLWE response from {peer}"), e))?;
                let out = RingTensor::new(share, self.reg_shape(*dst)?)?;
                let s = Share::new(self.role()?, out);
                self.set(*dst, Value::Share(s));
            }
            other => {
                return Err(ExecError::protocol(format!(
                    "unexpected instruction {}",
                    self.plan.instr_text(other)
                )))
            }
        }
        Ok(())
    }

    /// Runs `answer` (a product's or convolution's answer) with this
    /// party's server and sets `msg` and `dst` from it. Before the
    /// dealer-free preprocessing it runs on its own thread, with a server
    /// of its own, while this one generates correlations, and is joined
    /// when `msg` or `dst` is first read ([`Exec::join_rlwe`]).
    fn answer(
        &mut self,
        msg: Reg,
        dst: Reg,
        dst_shape: Vec<usize>,
        answer: impl FnOnce(Server) -> Result<Answered, ExecError> + Send + 'static,
    ) -> Result<(), ExecError> {
        let params = self.rlwe.params();
        if self.rlwe.overlap {
            let server =
                Server::new(params).map_err(|e| rlwe_error("cannot start the RLWE server", e))?;
            let handle = std::thread::Builder::new()
                .name("veil-rlwe".into())
                .spawn(move || answer(server))
                .map_err(|e| ExecError::protocol(format!("cannot start an RLWE thread: {e}")))?;
            self.rlwe.background.push(Background {
                msg,
                dst,
                dst_shape,
                handle,
            });
            return Ok(());
        }
        let server = match self.rlwe.server.take() {
            Some(s) => s,
            None => {
                Server::new(params).map_err(|e| rlwe_error("cannot start the RLWE server", e))?
            }
        };
        let (server, bytes, share) = answer(server)?;
        self.rlwe.server = Some(server);
        self.set_response(msg, dst, dst_shape, bytes, share)
    }

    fn set_response(
        &mut self,
        msg: Reg,
        dst: Reg,
        dst_shape: Vec<usize>,
        bytes: Vec<u8>,
        share: Vec<u64>,
    ) -> Result<(), ExecError> {
        let out = RingTensor::new(share, dst_shape)?;
        let s = Share::new(self.role()?, out);
        self.set(dst, Value::Share(s));
        self.set_rlwe(msg, RlweKind::Response, bytes);
        Ok(())
    }

    /// Joins the responses computed on their own threads that write one of
    /// `reads` (every one when `reads` is `None`), and sets their registers.
    pub(super) fn join_rlwe(&mut self, reads: Option<&[Reg]>) -> Result<(), ExecError> {
        if self.rlwe.background.is_empty() {
            return Ok(());
        }
        let jobs = std::mem::take(&mut self.rlwe.background);
        let (ready, waiting): (Vec<_>, Vec<_>) = jobs
            .into_iter()
            .partition(|b| reads.is_none_or(|r| r.contains(&b.msg) || r.contains(&b.dst)));
        self.rlwe.background = waiting;
        for b in ready {
            let (server, bytes, share) = b.handle.join().map_err(|_| {
                ExecError::protocol("an RLWE response's thread panicked (a bug in veil)")
            })??;
            self.rlwe.server.get_or_insert(server);
            self.set_response(b.msg, b.dst, b.dst_shape, bytes, share)?;
        }
        Ok(())
    }

    /// Puts this party's RLWE key pair back on the connection's link, if
    /// it has both.
    pub(super) fn keep_rlwe_key(&mut self) {
        if let (Some(link), Some(client), Some(seed)) = (
            &self.opts.ot_link,
            self.rlwe.client.take(),
            self.rlwe.client_seed.take(),
        ) {
            link.put_rlwe_client(self.me, seed, client);
        }
    }

    /// The peer's public key in register `key`, parsed once; returns the
    /// peer's name for error messages.
    fn rlwe_peer_key(&mut self, key: Reg, params: &Arc<rlwe::Params>) -> Result<String, ExecError> {
        let peer = self.plan.party_name(self.other_party()?).to_string();
        if self.rlwe.peer_keys.contains_key(&key) {
            return Ok(peer);
        }
        let link = self.opts.ot_link.clone();
        let pk = match self.get(key)? {
            Value::Wire(Wire::Rlwe {
                kind: RlweKind::KeptKey,
                bytes,
            }) => {
                let seed = rlwe::Seed::try_from(bytes.as_slice()).map_err(|_| {
                    ExecError::protocol(format!(
                        "malformed kept RLWE key from {peer} ({} bytes, not 16)",
                        bytes.len()
                    ))
                })?;
                link.as_ref()
                    .and_then(|l| l.rlwe_peer(self.me, &seed))
                    .filter(|k| k.params().fingerprint() == params.fingerprint())
                    .ok_or_else(|| {
                        ExecError::protocol(format!(
                            "{peer} continues with an RLWE key from an earlier session that \
                             this party does not hold (the connection is out of step): reconnect"
                        ))
                    })?
            }
            _ => {
                let bytes = self.rlwe_message(key, RlweKind::PublicKey)?;
                let msg = PublicKeyMsg::from_bytes(bytes, params).map_err(|e| {
                    rlwe_error(&format!("malformed RLWE public key from {peer}"), e)
                })?;
                let pk = PeerKey::new(params.clone(), &msg)
                    .map(Arc::new)
                    .map_err(|e| {
                        rlwe_error(&format!("malformed RLWE public key from {peer}"), e)
                    })?;
                if let Some(l) = &link {
                    l.put_rlwe_peer(self.me, msg.seed, pk.clone());
                }
                pk
            }
        };
        self.rlwe.peer_keys.insert(key, pk);
        Ok(peer)
    }

    /// The other computing party.
    fn other_party(&self) -> Result<plan::PartyIdx, ExecError> {
        (0..self.plan.parties.len() as plan::PartyIdx)
            .find(|p| *p != self.me && self.plan.parties[*p as usize].role == plan::Role::Compute)
            .ok_or_else(|| ExecError::protocol("the plan has no second computing party"))
    }
}
