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

use super::ops::encode_fixed;
use super::wire::{RlweKind, Wire};
use super::{Exec, ExecError, Value};
use crate::sharing::{RingTensor, Share};
use plan::{Instr, Kind, Reg};
use rlwe::{Client, CostModel, Layout, PeerKey, PublicKeyMsg, QueryMsg, ResponseMsg, Server};
use std::sync::Arc;

/// The RLWE state of one party: parameters (their NTT tables are built
/// once), its own client (key pair) if it encrypts, its server randomness
/// if it answers, the peer's key as parsed, and the layouts of queries
/// awaiting their response.
#[derive(Default)]
pub(super) struct RlweState {
    params: Option<Arc<rlwe::Params>>,
    client: Option<Client>,
    server: Option<Server>,
    peer_keys: std::collections::HashMap<Reg, PeerKey>,
    pending: std::collections::HashMap<Reg, Layout>,
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

/// For the memory estimate: the bytes of the message `ins` writes and of
/// its largest temporaries (the server's queries and accumulators in NTT
/// form), given the plan's shapes with dimensions bound.
pub(super) fn footprint(
    ins: &Instr,
    shape_of: &dyn Fn(Reg) -> Result<Vec<usize>, ExecError>,
) -> Result<Option<(u64, u64)>, ExecError> {
    if !matches!(
        ins,
        Instr::RlweKeyGen { .. } | Instr::RlweQuery { .. } | Instr::RlweRespond { .. }
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
    Ok(match ins {
        Instr::RlweKeyGen { .. } => {
            let key = PublicKeyMsg::byte_len(&params) as u64;
            Some((key, key + 2 * poly))
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
    /// result, and `w_bits`.
    fn rlwe_layout(
        &mut self,
        operand: Reg,
        lhs: bool,
        dst: Reg,
        w_bits: u32,
    ) -> Result<(rlwe::Shape, Layout), ExecError> {
        let os = self.reg_shape(operand)?;
        let out: usize = self.reg_shape(dst)?.iter().product();
        let shape = product_shape(&os, lhs, out)?;
        let params = self.rlwe.params();
        Ok((shape, layout(&params, shape, w_bits)?))
    }

    /// A clear value (fixed-point at the plan's precision) or this party's
    /// share, as ring elements.
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

    pub(super) fn step_rlwe(&mut self, ins: &Instr) -> Result<(), ExecError> {
        match ins {
            Instr::RlweKeyGen { public } => {
                if self.rlwe.client.is_some() {
                    return Err(ExecError::protocol("a second RLWE key pair in one session"));
                }
                let params = self.rlwe.params();
                let mut client = Client::new(params.clone())
                    .map_err(|e| rlwe_error("cannot make an RLWE key", e))?;
                let bytes = client.public_key().to_bytes(&params);
                self.rlwe.client = Some(client);
                self.set(
                    *public,
                    Value::Wire(Wire::Rlwe {
                        kind: RlweKind::PublicKey,
                        bytes,
                    }),
                );
            }
            Instr::RlweQuery {
                msg,
                x,
                dst,
                w_bits,
            } => {
                let (_, layout) = self.rlwe_layout(*x, true, *dst, *w_bits)?;
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
                if self.rlwe.pending.insert(*dst, layout).is_some() {
                    return Err(ExecError::protocol(format!(
                        "two RLWE queries for register {dst}"
                    )));
                }
                let bytes = query.to_bytes(&params);
                self.set(
                    *msg,
                    Value::Wire(Wire::Rlwe {
                        kind: RlweKind::Query,
                        bytes,
                    }),
                );
            }
            Instr::RlweRespond {
                msg,
                dst,
                query,
                key,
                w,
                add,
                w_bits,
            } => {
                let (shape, layout) = self.rlwe_layout(*w, false, *dst, *w_bits)?;
                let params = self.rlwe.params();
                let peer = self.plan.party_name(self.other_party()?).to_string();
                if !self.rlwe.peer_keys.contains_key(key) {
                    let bytes = self.rlwe_message(*key, RlweKind::PublicKey)?;
                    let pk = PublicKeyMsg::from_bytes(bytes, &params)
                        .and_then(|m| PeerKey::new(params.clone(), &m))
                        .map_err(|e| {
                            rlwe_error(&format!("malformed RLWE public key from {peer}"), e)
                        })?;
                    self.rlwe.peer_keys.insert(*key, pk);
                }
                let q = QueryMsg::from_bytes(
                    self.rlwe_message(*query, RlweKind::Query)?,
                    &params,
                    &layout,
                )
                .map_err(|e| rlwe_error(&format!("malformed RLWE query from {peer}"), e))?;
                let wdata = self.rlwe_operand(*w)?;
                let server = match &mut self.rlwe.server {
                    Some(s) => s,
                    None => self.rlwe.server.insert(
                        Server::new(params.clone())
                            .map_err(|e| rlwe_error("cannot start the RLWE server", e))?,
                    ),
                };
                let pk = &self.rlwe.peer_keys[key];
                let (response, mut share) = server
                    .respond(pk, &layout, &wdata, &q)
                    .map_err(|e| rlwe_error("cannot answer an RLWE query", e))?;
                if let Some(a) = add {
                    // This party's share of x times w, locally.
                    let xs = self.share(*a)?.value();
                    let (b, k, n) = (shape.batch, shape.k, shape.n);
                    let xm = RingTensor::new(xs.data().to_vec(), vec![b, k])?;
                    let wm = RingTensor::new(wdata, vec![k, n])?;
                    let local = xm.matmul(&wm)?;
                    for (s, l) in share.iter_mut().zip(local.data()) {
                        *s = s.wrapping_add(*l);
                    }
                }
                let bytes = response.to_bytes(&params);
                let out = RingTensor::new(share, self.reg_shape(*dst)?)?;
                let s = Share::new(self.role()?, out);
                self.set(*dst, Value::Share(s));
                self.set(
                    *msg,
                    Value::Wire(Wire::Rlwe {
                        kind: RlweKind::Response,
                        bytes,
                    }),
                );
            }
            Instr::RlweFinish { dst, response } => {
                let layout = self.rlwe.pending.remove(dst).ok_or_else(|| {
                    ExecError::protocol(format!("an RLWE response for {dst} without its query"))
                })?;
                let params = self.rlwe.params();
                let peer = self.plan.party_name(self.other_party()?).to_string();
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

    /// The other computing party.
    fn other_party(&self) -> Result<plan::PartyIdx, ExecError> {
        (0..self.plan.parties.len() as plan::PartyIdx)
            .find(|p| *p != self.me && self.plan.parties[*p as usize].role == plan::Role::Compute)
            .ok_or_else(|| ExecError::protocol("the plan has no second computing party"))
    }
}
