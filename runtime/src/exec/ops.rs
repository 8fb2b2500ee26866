//! The executor's instructions on shares, ciphertexts and messages.

use super::wire::{self, Wire};
use super::{Exec, ExecError, Transport, Value};
use crate::paillier::{Ciphertext, PublicKey};
use crate::sharing::{self, scale_round, RingTensor, Share};
use num_bigint::{BigInt, BigRng010 as BigRng, BigUint};
use num_traits::{One, ToPrimitive};
use plan::{Correlation, HomOp, Instr, Kind, PartyIdx, Reg, ShareOp, Tensor, TensorRef};
use rayon::prelude::*;
use std::borrow::Cow;

/// Fixed-point encoding at `bits` fractional bits, checked to fit the ring.
pub(super) fn encode_fixed(t: TensorRef<'_>, bits: u32) -> Result<RingTensor, ExecError> {
    let scale = 2f64.powi(bits as i32);
    // One sequential pass that writes its output once (a collect of known
    // length, not a zeroed vector overwritten): the pass is bound by memory
    // bandwidth, and a value that does not fit only clears the flag.
    let mut ok = true;
    let data: Vec<u64> = t
        .data
        .iter()
        .map(|v| {
            let x = scale_round(*v, scale);
            ok &= x.is_some();
            x.unwrap_or(0) as u64
        })
        .collect();
    if !ok {
        return Err(ExecError::crypto(format!(
            "a value does not fit the fixed-point encoding at {bits} fractional bits"
        )));
    }
    Ok(RingTensor::new(data, t.shape.to_vec())?)
}

pub(super) fn decode_fixed(t: &RingTensor, bits: u32) -> Tensor {
    let scale = 2f64.powi(-(bits as i32));
    Tensor {
        shape: t.shape().to_vec(),
        data: t.data().iter().map(|x| *x as i64 as f64 * scale).collect(),
    }
}

/// Repeat `t` to `shape` (suffix broadcasting).
fn broadcast_ring(t: &RingTensor, shape: &[usize]) -> Result<RingTensor, ExecError> {
    if t.shape() == shape {
        return Ok(t.clone());
    }
    if !shape.ends_with(t.shape()) || t.is_empty() {
        return Err(ExecError::protocol(format!(
            "cannot broadcast {:?} to {shape:?}",
            t.shape()
        )));
    }
    let n: usize = shape.iter().product();
    let data = (0..n).map(|i| t.data()[i % t.len()]).collect();
    Ok(RingTensor::new(data, shape.to_vec())?)
}

fn sum_last(t: &RingTensor) -> Result<RingTensor, ExecError> {
    let shape = t.shape();
    let k = *shape
        .last()
        .ok_or_else(|| ExecError::protocol("cannot sum a scalar"))?;
    let data = t
        .data()
        .chunks(k.max(1))
        .map(|r| r.iter().fold(0u64, |a, b| a.wrapping_add(*b)))
        .collect();
    Ok(RingTensor::new(data, shape[..shape.len() - 1].to_vec())?)
}

/// A signed integer as an element of Z_n.
fn to_zn(pk: &PublicKey, v: i64) -> BigUint {
    if v >= 0 {
        BigUint::from(v as u64)
    } else {
        pk.n() - BigUint::from(v.unsigned_abs())
    }
}

fn fixed_ints(t: TensorRef<'_>, bits: u32) -> Result<Vec<i64>, ExecError> {
    let scale = 2f64.powi(bits as i32);
    t.data
        .iter()
        .map(|v| {
            scale_round(*v, scale).ok_or_else(|| {
                ExecError::crypto("a plaintext does not fit the fixed-point encoding")
            })
        })
        .collect()
}

/// The shape a matrix product's left operand of `shape` is multiplied in:
/// a rank above 2 as rows, `[b, m, k]` → `[b·m, k]` (the plan keeps named
/// dimensions such as the batch apart; the engines multiply matrices).
/// `None` when the shape is already a vector or matrix.
pub(super) fn rows_shape(shape: &[usize]) -> Option<Vec<usize>> {
    match shape {
        [rows @ .., k] if rows.len() > 1 => Some(vec![rows.iter().product(), *k]),
        _ => None,
    }
}

/// `s` in its product shape ([`rows_shape`]), borrowed when unchanged.
fn as_rows(s: &Share) -> Result<Cow<'_, Share>, ExecError> {
    Ok(match rows_shape(s.shape()) {
        Some(rows) => Cow::Owned(Share::new(
            s.party(),
            RingTensor::new(s.value().data().to_vec(), rows)?,
        )),
        None => Cow::Borrowed(s),
    })
}

/// A product's share in the destination's `shape` (same elements): the
/// rows of [`rows_shape`] back in the plan's shape.
fn in_shape(z: Share, shape: Vec<usize>) -> Result<Share, ExecError> {
    if z.shape() == shape.as_slice() {
        return Ok(z);
    }
    let data = z.value().data().to_vec();
    Ok(Share::new(z.party(), RingTensor::new(data, shape)?))
}

/// A share in a register, borrowed from the register file alone (so the
/// engine can be borrowed mutably at the same time).
fn share_in(regs: &[Option<Value>], r: Reg) -> Result<&Share, ExecError> {
    match regs[r.0 as usize].as_ref() {
        Some(Value::Share(s)) => Ok(s),
        Some(_) => Err(ExecError::protocol(format!("register {r} is not a share"))),
        None => Err(ExecError::protocol(format!(
            "register {r} read before it was written"
        ))),
    }
}

impl Exec<'_> {
    fn my_share(&self, t: RingTensor) -> Result<Share, ExecError> {
        Ok(Share::new(self.role()?, t))
    }

    /// The register as it goes on the wire (a message already in wire form
    /// is borrowed, not copied).
    fn to_wire(&self, r: Reg) -> Result<Cow<'_, Wire>, ExecError> {
        Ok(match self.get(r)? {
            Value::Clear(_) | Value::Input(_) => {
                let t = self.clear(r)?;
                Cow::Owned(Wire::Clear {
                    shape: t.shape.to_vec(),
                    data: t.data.to_vec(),
                })
            }
            Value::Share(s) => Cow::Owned(Wire::Ring(s.open_msg())),
            Value::Cipher { shape, cts, .. } => Cow::Owned(Wire::Ciphers {
                shape: shape.clone(),
                cts: cts.iter().map(|c| c.as_biguint().clone()).collect(),
            }),
            Value::Wire(w) => Cow::Borrowed(w),
            Value::Dealing(_) => {
                return Err(ExecError::protocol(format!(
                    "register {r} is the dealer's stream, sent on its own"
                )))
            }
            Value::Unencoded(_) => {
                return Err(ExecError::protocol(format!(
                    "register {r} is read only by its input-holder product"
                )))
            }
        })
    }

    /// Check a received value against the register's kind and shape. A
    /// public key also comes back parsed, with its owner.
    fn value_from_wire(
        &self,
        r: Reg,
        w: Wire,
    ) -> Result<(Value, Option<(plan::PartyIdx, PublicKey)>), ExecError> {
        let info = self.plan.reg(r);
        let bad = |what: &str| {
            ExecError::protocol(format!("received {what} for register {r} ({})", info.note))
        };
        let value = match info.kind {
            Kind::Clear => match w {
                Wire::Clear { shape, data } if shape == self.reg_shape(r)? => {
                    Value::Clear(Tensor::new(shape, data).map_err(ExecError::protocol)?)
                }
                other => return Err(bad(other.kind())),
            },
            Kind::Share { .. } => match w {
                Wire::Ring(m) if m.shape == self.reg_shape(r)? => {
                    Value::Share(self.my_share(m.into_tensor()?)?)
                }
                other => return Err(bad(other.kind())),
            },
            Kind::Cipher { key, .. } => match w {
                Wire::Ciphers { shape, cts }
                    if shape == self.reg_shape(r)?
                        && cts.len() == shape.iter().product::<usize>() =>
                {
                    let pk = self.key_for(key)?;
                    let cts = cts
                        .into_iter()
                        .map(|c| Ciphertext::from_biguint(pk, c))
                        .collect::<Result<Vec<_>, _>>()?;
                    Value::Cipher { key, shape, cts }
                }
                other => return Err(bad(other.kind())),
            },
            Kind::Message => match w {
                Wire::PublicKey(n) => {
                    let pk = if self.opts.insecure_keys {
                        PublicKey::from_n_insecure_for_tests(n, &mut rand::rng())?
                    } else {
                        PublicKey::from_n(n)?
                    };
                    let owner = self
                        .plan
                        .keys
                        .iter()
                        .find(|k| k.peer == self.me && !self.peer_keys.contains_key(&k.owner))
                        .map(|k| k.owner)
                        .ok_or_else(|| bad("an unexpected public key"))?;
                    return Ok((
                        Value::Wire(Wire::PublicKey(pk.n().clone())),
                        Some((owner, pk)),
                    ));
                }
                Wire::Session { .. } => return Err(bad("session metadata")),
                other => Value::Wire(other),
            },
        };
        Ok((value, None))
    }

    pub(super) fn step_crypto(
        &mut self,
        ins: &Instr,
        t: &mut dyn Transport,
        outputs: &mut Vec<(String, Tensor)>,
    ) -> Result<(), ExecError> {
        let f = self.plan.precision;
        match ins {
            Instr::Split { src, keep, send } => {
                let ring = encode_fixed(self.clear(*src)?, f)?;
                let (s0, s1) = sharing::share(&ring)?;
                let (mine, theirs) = if self.role()? == sharing::Party::P0 {
                    (s0, s1)
                } else {
                    (s1, s0)
                };
                self.set(*keep, Value::Share(mine));
                self.set(*send, Value::Share(theirs));
            }
            Instr::Embed { src, dst, .. } => {
                let ring = encode_fixed(self.clear(*src)?, self.scale(*dst))?;
                let shape = self.reg_shape(*dst)?;
                let ring = broadcast_ring(&ring, &shape)?;
                self.set(*dst, Value::Share(Share::from_public(self.role()?, &ring)?));
            }
            Instr::Local { dst, op, args, .. } => {
                let v = self.local(*dst, op, args)?;
                self.set(*dst, Value::Share(v));
            }
            Instr::Own { src, dst } => {
                if let (Some(src), true) = (src, self.unencoded.contains(dst)) {
                    if let Some(Value::Input(i)) = self.regs[src.0 as usize] {
                        self.set(*dst, Value::Unencoded(i));
                        return Ok(());
                    }
                }
                let t = match src {
                    Some(src) => encode_fixed(self.clear(*src)?, f)?,
                    None => RingTensor::zeros(&self.reg_shape(*dst)?)?,
                };
                let s = self.my_share(t)?;
                self.set(*dst, Value::Share(s));
            }
            Instr::HolderOpen { msg, x, y, corr } => {
                // A matrix product's `x` as rows; a convolution's as the
                // input it is (its triple's `a` is the input's shape).
                let (a_holder, window) = match self.requests.get(*corr as usize) {
                    Some(sharing::CorrelationRequest::HolderMatmulTriple { a_holder, .. }) => {
                        (*a_holder, None)
                    }
                    Some(sharing::CorrelationRequest::HolderConvTriple {
                        a_holder,
                        window,
                        ..
                    }) => (*a_holder, Some(window.clone())),
                    _ => {
                        return Err(ExecError::protocol(
                            "input-holder product without its correlation",
                        ))
                    }
                };
                let engine = self
                    .engine
                    .as_mut()
                    .ok_or_else(|| ExecError::protocol("no correlated randomness was set up"))?;
                let ys = share_in(&self.regs, *y)?;
                let (state, half) = match self.regs[x.0 as usize] {
                    Some(Value::Unencoded(i)) => {
                        let inputs = self.inputs;
                        let t = self
                            .plan
                            .inputs
                            .get(i as usize)
                            .and_then(|spec| inputs.get(&spec.name))
                            .ok_or_else(|| ExecError::protocol("an input went missing"))?;
                        let xs = match window {
                            Some(_) => t.shape.to_vec(),
                            None => rows_shape(t.shape).unwrap_or_else(|| t.shape.to_vec()),
                        };
                        engine.holder_matmul_round1_clear(
                            t.data,
                            &xs,
                            f,
                            ys,
                            window.as_ref(),
                            a_holder,
                        )?
                    }
                    _ => match &window {
                        Some(w) => {
                            engine.holder_conv_round1(share_in(&self.regs, *x)?, ys, w, a_holder)?
                        }
                        None => {
                            let xs = as_rows(share_in(&self.regs, *x)?)?;
                            engine.holder_matmul_round1(&xs, ys, a_holder)?
                        }
                    },
                };
                self.holder_states.insert(*msg, state);
                self.set(*msg, Value::Wire(Wire::Ring(half)));
            }
            Instr::HolderClose {
                dst, mine, theirs, ..
            } => {
                let state = self
                    .holder_states
                    .remove(mine)
                    .ok_or_else(|| ExecError::protocol("input-holder product closed twice"))?;
                let Some(Value::Wire(Wire::Ring(half))) = self.take(*theirs) else {
                    return Err(ExecError::protocol("expected the peer's masked input"));
                };
                let Value::Wire(Wire::Ring(sent)) = self.get(*mine)? else {
                    return Err(ExecError::protocol("expected this party's masked input"));
                };
                let z =
                    sharing::Engine::<Box<dyn sharing::Correlations + Send>>::holder_matmul_round2(
                        state, half, sent,
                    )?;
                let z = in_shape(z, self.reg_shape(*dst)?)?;
                self.set(*dst, Value::Share(z));
            }
            Instr::BeaverOpen { msg, x, y, corr } => {
                let matmul = matches!(
                    self.plan.correlations[*corr as usize],
                    Correlation::MatMul { .. }
                );
                let engine = self
                    .engine
                    .as_mut()
                    .ok_or_else(|| ExecError::protocol("no correlated randomness was set up"))?;
                let (xs, ys) = (share_in(&self.regs, *x)?, share_in(&self.regs, *y)?);
                let (state, m) = if let Correlation::Conv { window, .. } =
                    &self.plan.correlations[*corr as usize]
                {
                    engine.conv_round1(xs, ys, window)?
                } else if matmul {
                    engine.matmul_round1(&*as_rows(xs)?, ys)?
                } else {
                    engine.mul_round1(xs, ys)?
                };
                self.mul_states.insert(*msg, state);
                self.set(*msg, Value::Wire(Wire::Beaver(m)));
            }
            Instr::BeaverClose {
                dst, mine, theirs, ..
            } => {
                let state = self
                    .mul_states
                    .remove(mine)
                    .ok_or_else(|| ExecError::protocol("Beaver product closed twice"))?;
                // The peer's message is used once: take it out of its register.
                let Some(Value::Wire(Wire::Beaver(peer))) = self.take(*theirs) else {
                    return Err(ExecError::protocol("expected the peer's Beaver message"));
                };
                let z = sharing::Engine::<Box<dyn sharing::Correlations + Send>>::mul_round2(
                    state, peer,
                )?;
                let z = in_shape(z, self.reg_shape(*dst)?)?;
                self.set(*dst, Value::Share(z));
            }
            Instr::TruncOpen { msg, x, corr } => {
                let correlation = &self.plan.correlations[*corr as usize];
                let bits = correlation.trunc_bits().ok_or_else(|| {
                    ExecError::protocol("truncation with a non-truncation correlation")
                })?;
                let dabits = matches!(correlation, Correlation::TruncDaBits { .. });
                let engine = self
                    .engine
                    .as_mut()
                    .ok_or_else(|| ExecError::protocol("no correlated randomness was set up"))?;
                let x = share_in(&self.regs, *x)?;
                let (state, m) = if dabits {
                    let (st, m) = engine.trunc_dabits_round1(x, bits)?;
                    (super::Truncation::DaBits(st), m)
                } else {
                    let (st, m) = engine.trunc_bits_round1(x, bits)?;
                    (super::Truncation::Dealer(st), m)
                };
                self.trunc_states.insert(*msg, state);
                self.set(*msg, Value::Wire(Wire::Ring(m)));
            }
            Instr::TruncClose {
                dst, mine, theirs, ..
            } => {
                let state = self
                    .trunc_states
                    .remove(mine)
                    .ok_or_else(|| ExecError::protocol("truncation closed twice"))?;
                let Some(Value::Wire(Wire::Ring(peer))) = self.take(*theirs) else {
                    return Err(ExecError::protocol(
                        "expected the peer's truncation message",
                    ));
                };
                type E = sharing::Engine<Box<dyn sharing::Correlations + Send>>;
                let z = match state {
                    super::Truncation::Dealer(st) => E::trunc_round2(st, peer)?,
                    super::Truncation::DaBits(st) => E::trunc_dabits_round2(st, peer)?,
                };
                self.set(*dst, Value::Share(z));
            }
            Instr::Nonlinear {
                dst,
                op,
                args,
                peer,
                bits,
                ..
            } => {
                let engine = self.engine.as_mut().ok_or_else(|| {
                    ExecError::protocol(
                        "comparisons need correlated randomness (dealer or two-party)",
                    )
                })?;
                let shares = args
                    .iter()
                    .map(|r| share_in(&self.regs, *r))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut ex = super::nonlinear::PeerExchange {
                    t,
                    peer: *peer,
                    stats: &mut self.stats,
                    failure: None,
                };
                let result = super::nonlinear::run(engine, &mut ex, op, *bits, &shares);
                let failure = ex.failure.take();
                let z = match (result, failure) {
                    (Ok(z), _) => z,
                    (Err(_), Some(transport)) => return Err(transport),
                    (Err(e), None) => return Err(e.into()),
                };
                self.sent_since_recv = false;
                self.set(*dst, Value::Share(z));
            }
            Instr::Encrypt { dst, src } => {
                let kp = self
                    .keypair
                    .as_ref()
                    .ok_or_else(|| ExecError::protocol("encrypting without a key pair"))?;
                let t = self.clear(*src)?;
                let ints = fixed_ints(t, self.scale(*dst))?;
                let cts = ints
                    .par_iter()
                    .map(|v| kp.public.encrypt(&to_zn(&kp.public, *v)))
                    .collect::<Result<Vec<_>, _>>()?;
                let shape = t.shape.to_vec();
                self.set(
                    *dst,
                    Value::Cipher {
                        key: self.me,
                        shape,
                        cts,
                    },
                );
            }
            Instr::Hom { dst, op, args } => {
                let v = self.hom(*dst, op, args)?;
                self.set(*dst, v);
            }
            Instr::Mask {
                masked,
                share,
                src,
                bound_bits,
                shift,
            } => {
                let (key, shape, cts) = self.cipher(*src)?;
                let pk = self.key_for(key)?.clone();
                let offset = BigUint::one() << *bound_bits;
                let mask_bits = u64::from(*bound_bits) + u64::from(plan::params::MASK_SLACK_BITS);
                let pairs: Vec<(Ciphertext, u64)> = cts
                    .par_iter()
                    .map(|c| {
                        let r = rand::rng().random_biguint(mask_bits) + &offset;
                        let enc = pk.encrypt(&r)?;
                        let low = (&r >> *shift).iter_u64_digits().next().unwrap_or(0);
                        Ok((pk.add(c, &enc), low.wrapping_neg()))
                    })
                    .collect::<Result<_, crate::paillier::PaillierError>>()?;
                let shape = shape.to_vec();
                let (new_cts, shares): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
                let s = self.my_share(RingTensor::new(shares, shape.clone())?)?;
                self.set(
                    *masked,
                    Value::Cipher {
                        key,
                        shape,
                        cts: new_cts,
                    },
                );
                self.set(*share, Value::Share(s));
            }
            Instr::DecryptShare { dst, src, shift } => {
                let kp = self
                    .keypair
                    .as_ref()
                    .ok_or_else(|| ExecError::protocol("decrypting without a key pair"))?;
                let (_, shape, cts) = self.cipher(*src)?;
                let vals: Vec<u64> = cts
                    .par_iter()
                    .map(|c| {
                        (kp.private.decrypt(c) >> *shift)
                            .iter_u64_digits()
                            .next()
                            .unwrap_or(0)
                    })
                    .collect();
                let s = self.my_share(RingTensor::new(vals, shape.to_vec())?)?;
                self.set(*dst, Value::Share(s));
            }
            Instr::Rerandomize { dst, src } => {
                let (key, shape, cts) = self.cipher(*src)?;
                let pk = self.key_for(key)?;
                let cts = cts.par_iter().map(|c| pk.rerandomize(c)).collect();
                let shape = shape.to_vec();
                self.set(*dst, Value::Cipher { key, shape, cts });
            }
            Instr::Decrypt { dst, src } => {
                let kp = self
                    .keypair
                    .as_ref()
                    .ok_or_else(|| ExecError::protocol("decrypting without a key pair"))?;
                let scale = 2f64.powi(-(self.scale(*src) as i32));
                let (_, shape, cts) = self.cipher(*src)?;
                let data = cts
                    .par_iter()
                    .map(|c| {
                        let v = kp.private.decrypt_signed(c)?;
                        Ok(v.to_f64().unwrap_or(f64::NAN) * scale)
                    })
                    .collect::<Result<Vec<f64>, crate::paillier::PaillierError>>()?;
                let t = Tensor::new(shape.to_vec(), data).map_err(ExecError::protocol)?;
                self.set(*dst, Value::Clear(t));
            }
            Instr::RlweKeyGen { .. }
            | Instr::RlweQuery { .. }
            | Instr::RlweRespond { .. }
            | Instr::RlweFinish { .. }
            | Instr::RlwePrepare { .. }
            | Instr::RlwePrepareRespond { .. }
            | Instr::RlwePrepareFinish { .. }
            | Instr::RlweMask { .. }
            | Instr::RlweMaskedOpen { .. }
            | Instr::RlweMaskedClose { .. } => self.step_rlwe(ins)?,
            Instr::Send { to, regs } => {
                if let [r] = regs[..] {
                    if let Value::Dealing(_) = self.get(r)? {
                        return self.send_dealing(*to, r, t);
                    }
                }
                let values = regs
                    .iter()
                    .map(|r| self.to_wire(*r))
                    .collect::<Result<Vec<_>, _>>()?;
                self.send_frame(*to, wire::encode(&values), t, true)?;
            }
            Instr::Recv { from, regs } => {
                self.count_recv();
                self.receive(*from, regs, t)?;
            }
            Instr::Reveal { dst, mine, theirs } => {
                let sum = self
                    .share(*mine)?
                    .value()
                    .add(self.share(*theirs)?.value())?;
                let t = decode_fixed(&sum, self.scale(*mine));
                self.set(*dst, Value::Clear(t));
            }
            Instr::Output { src, output } => {
                let spec = &self.plan.outputs[*output as usize];
                let t = spec
                    .labelled(self.clear(*src)?.to_tensor())
                    .map_err(ExecError::protocol)?;
                outputs.push((spec.name.clone(), t));
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

    fn local(&mut self, dst: Reg, op: &ShareOp, args: &[Reg]) -> Result<Share, ExecError> {
        let shape = self.reg_shape(dst)?;
        let arg = |i: usize| {
            args.get(i)
                .copied()
                .ok_or_else(|| ExecError::protocol("missing operand"))
        };
        let s0 = self.share(arg(0)?)?;
        let public = |this: &Self, bits: u32| -> Result<RingTensor, ExecError> {
            encode_fixed(this.clear(arg(1)?)?, bits)
        };
        Ok(match op {
            ShareOp::Add | ShareOp::Sub => {
                let s1 = self.share(arg(1)?)?;
                let add = matches!(op, ShareOp::Add);
                if s0.shape() == shape.as_slice() && s1.shape() == shape.as_slice() {
                    if add {
                        s0.add(s1)?
                    } else {
                        s0.sub(s1)?
                    }
                } else {
                    let a = self.my_share(broadcast_ring(s0.value(), &shape)?)?;
                    let b = self.my_share(broadcast_ring(s1.value(), &shape)?)?;
                    if add {
                        a.add(&b)?
                    } else {
                        a.sub(&b)?
                    }
                }
            }
            ShareOp::Neg => s0.neg(),
            ShareOp::AddPublic | ShareOp::SubPublic | ShareOp::PublicSub => {
                let c = broadcast_ring(&public(self, self.scale(arg(0)?))?, &shape)?;
                let a = self.my_share(broadcast_ring(s0.value(), &shape)?)?;
                match op {
                    ShareOp::AddPublic => a.add_public(&c)?,
                    ShareOp::SubPublic => a.sub_public(&c)?,
                    _ => a.rsub_public(&c)?,
                }
            }
            ShareOp::MulPublic { bits } => {
                let c = broadcast_ring(&public(self, *bits)?, &shape)?;
                let a = self.my_share(broadcast_ring(s0.value(), &shape)?)?;
                a.mul_public(&c)?
            }
            ShareOp::MatMulPublic { bits, public_left } => {
                let c = public(self, *bits)?;
                let z = if *public_left {
                    let c = match rows_shape(c.shape()) {
                        Some(rows) => RingTensor::new(c.data().to_vec(), rows)?,
                        None => c,
                    };
                    Share::public_matmul(&c, s0)?
                } else {
                    as_rows(s0)?.matmul_public(&c)?
                };
                in_shape(z, shape)?
            }
            ShareOp::Sum => self.my_share(sum_last(s0.value())?)?,
            ShareOp::MulInt(k) => s0.mul_public_scalar(*k as u64),
            ShareOp::Broadcast => self.my_share(broadcast_ring(s0.value(), &shape)?)?,
            ShareOp::Permute(perm) => {
                let (data, out) = plan::permute_data(s0.value().data(), s0.shape(), perm)
                    .map_err(ExecError::protocol)?;
                if out != shape {
                    return Err(ExecError::protocol(format!(
                        "permute gives {out:?}, the register holds {shape:?}"
                    )));
                }
                self.my_share(RingTensor::new(data, shape)?)?
            }
            ShareOp::Im2col(w) => {
                let (data, out) = plan::im2col_data(s0.value().data(), s0.shape(), w, 0u64)
                    .map_err(ExecError::protocol)?;
                if out != shape {
                    return Err(ExecError::protocol(format!(
                        "im2col gives {out:?}, the register holds {shape:?}"
                    )));
                }
                self.my_share(RingTensor::new(data, shape)?)?
            }
            ShareOp::Concat => {
                let mut shares = Vec::with_capacity(args.len());
                for &r in args {
                    shares.push(self.share(r)?);
                }
                let parts: Vec<(&[u64], &[usize])> = (shares.iter())
                    .map(|s| (s.value().data(), s.shape()))
                    .collect();
                let (data, out) = plan::concat_last(&parts).map_err(ExecError::protocol)?;
                if out != shape {
                    return Err(ExecError::protocol(format!(
                        "concat gives {out:?}, the register holds {shape:?}"
                    )));
                }
                self.my_share(RingTensor::new(data, shape)?)?
            }
            ShareOp::Narrow { start, len } => {
                let (data, out) = plan::narrow_last(s0.value().data(), s0.shape(), *start, *len)
                    .map_err(ExecError::protocol)?;
                if out != shape {
                    return Err(ExecError::protocol(format!(
                        "narrow gives {out:?}, the register holds {shape:?}"
                    )));
                }
                self.my_share(RingTensor::new(data, shape)?)?
            }
            ShareOp::Reshape => {
                if s0.value().len() != shape.iter().product::<usize>() {
                    return Err(ExecError::protocol(format!(
                        "cannot reshape {:?} to {shape:?}",
                        s0.shape()
                    )));
                }
                self.my_share(RingTensor::new(s0.value().data().to_vec(), shape)?)?
            }
        })
    }

    fn hom(&self, dst: Reg, op: &HomOp, args: &[Reg]) -> Result<Value, ExecError> {
        let shape = self.reg_shape(dst)?;
        let (key, cshape, cts) = self.cipher(args[0])?;
        let pk = self.key_for(key)?;
        let plain = |bits: u32| -> Result<(Vec<usize>, Vec<i64>), ExecError> {
            let t = self.clear(args[1])?;
            Ok((t.shape.to_vec(), fixed_ints(t, bits)?))
        };
        let n_out: usize = shape.iter().product();
        let cts_out: Vec<Ciphertext> = match op {
            HomOp::MatMul { bits } | HomOp::MatMulLeft { bits } => {
                let (pshape, w) = plain(*bits)?;
                let left = matches!(op, HomOp::MatMulLeft { .. });
                // Cipher C (cshape) and plain P (pshape): C @ P, or P @ C when `left`.
                let (ashape, bshape) = if left {
                    (&pshape, &cshape.to_vec())
                } else {
                    (&cshape.to_vec(), &pshape)
                };
                let (m, k) = match ashape.as_slice() {
                    [k] => (1, *k),
                    [rows @ .., k] => (rows.iter().product(), *k),
                    [] => return Err(ExecError::protocol("bad matmul operand")),
                };
                let n = match bshape.as_slice() {
                    [_] => 1,
                    [_, n] => *n,
                    _ => return Err(ExecError::protocol("bad matmul operand")),
                };
                (0..m * n)
                    .into_par_iter()
                    .map(|o| {
                        let (i, j) = (o / n, o % n);
                        let (bases, weights): (Vec<Ciphertext>, Vec<BigInt>) = (0..k)
                            .map(|l| {
                                if left {
                                    (cts[l * n + j].clone(), BigInt::from(w[i * k + l]))
                                } else {
                                    (cts[i * k + l].clone(), BigInt::from(w[l * n + j]))
                                }
                            })
                            .unzip();
                        pk.dot(&bases, &weights)
                    })
                    .collect::<Result<_, _>>()?
            }
            HomOp::Mul { bits } => {
                let (_, w) = plain(*bits)?;
                (0..n_out)
                    .into_par_iter()
                    .map(|i| pk.mul_scalar(&cts[i % cts.len()], &BigInt::from(w[i % w.len()])))
                    .collect()
            }
            HomOp::AddPlain | HomOp::SubPlain | HomOp::PlainSub => {
                let (_, w) = plain(self.scale(args[0]))?;
                (0..n_out)
                    .into_par_iter()
                    .map(|i| {
                        let c = &cts[i % cts.len()];
                        let m = BigInt::from(w[i % w.len()]);
                        match op {
                            HomOp::AddPlain => pk.add_plain(c, &m),
                            HomOp::SubPlain => pk.add_plain(c, &-m),
                            _ => pk.add_plain(&pk.neg(c), &m),
                        }
                    })
                    .collect()
            }
            HomOp::Add | HomOp::Sub => {
                let (_, _, other) = self.cipher(args[1])?;
                (0..n_out)
                    .into_par_iter()
                    .map(|i| {
                        let (a, b) = (&cts[i % cts.len()], &other[i % other.len()]);
                        if matches!(op, HomOp::Add) {
                            pk.add(a, b)
                        } else {
                            pk.sub(a, b)
                        }
                    })
                    .collect()
            }
            HomOp::Neg => cts.par_iter().map(|c| pk.neg(c)).collect(),
            HomOp::Sum => {
                let k = *cshape
                    .last()
                    .ok_or_else(|| ExecError::protocol("cannot sum a scalar"))?;
                cts.par_chunks(k.max(1))
                    .map(|row| {
                        row.iter()
                            .skip(1)
                            .fold(row[0].clone(), |acc, c| pk.add(&acc, c))
                    })
                    .collect()
            }
        };
        if cts_out.len() != n_out {
            return Err(ExecError::protocol("homomorphic result has the wrong size"));
        }
        Ok(Value::Cipher {
            key,
            shape,
            cts: cts_out,
        })
    }
}

impl Exec<'_> {
    /// Sends one frame to `to` and counts it: bytes, frames, a round opened.
    fn send_frame(
        &mut self,
        to: PartyIdx,
        frame: Vec<u8>,
        t: &mut dyn Transport,
        hold: bool,
    ) -> Result<(), ExecError> {
        self.stats.bytes_sent += frame.len() as u64;
        self.stats.frames_sent += 1;
        self.sent_since_recv = true;
        if hold {
            t.send_held(to, frame)
        } else {
            t.send(to, frame)
        }
    }

    /// Sends the dealer's stream to party 1: each frame as soon as the
    /// dealer's thread has computed its corrections, the first with the seed.
    fn send_dealing(
        &mut self,
        to: PartyIdx,
        r: Reg,
        t: &mut dyn Transport,
    ) -> Result<(), ExecError> {
        let Some(Value::Dealing(d)) = self.take(r) else {
            return Err(ExecError::protocol(format!(
                "register {r} is not the dealer's stream"
            )));
        };
        let (ready, thread) = match d.batches {
            super::DealingBatches::Ready(b) => (Some(b), None),
            super::DealingBatches::Thread { rx, thread } => (None, Some((rx, thread))),
        };
        let batches: Box<dyn Iterator<Item = Result<super::Batch, ExecError>>> =
            match (ready, &thread) {
                (Some(b), _) => Box::new(b.into_iter().map(Ok)),
                (None, Some((rx, _))) => Box::new(rx.iter()),
                (None, None) => Box::new(std::iter::empty()),
            };
        let mut sent = 0;
        for batch in batches {
            let b = batch?;
            let frame = if sent == 0 {
                Wire::Dealer {
                    seed: d.seed.clone(),
                    corrections: b.corrections,
                    chunks: d.frames as u64 - 1,
                }
            } else {
                Wire::DealerChunk {
                    group: b.first as u64,
                    corrections: b.corrections,
                }
            };
            self.send_frame(to, wire::encode(&[frame]), t, false)?;
            sent += 1;
        }
        let stopped = thread.is_some_and(|(_, t)| t.join().is_err());
        if stopped || sent != d.frames {
            return Err(ExecError::protocol(
                "the dealer's thread stopped before computing every correction",
            ));
        }
        Ok(())
    }

    /// Party 1, before an instruction that uses correlations: reads the
    /// dealer's frames up to the one with this instruction's corrections.
    pub(super) fn feed_dealer(&mut self, t: &mut dyn Transport) -> Result<(), ExecError> {
        let Some(feed) = &mut self.feed else {
            return Ok(());
        };
        let group = feed.next;
        feed.next += 1;
        match feed.sizes.get(group) {
            Some(0) => return Ok(()),
            Some(_) => {}
            None => {
                return Err(ExecError::protocol(
                    "more instructions use correlations than the dealer planned for",
                ))
            }
        }
        while group >= feed.covered {
            let Some(end) = feed.ends.pop_front() else {
                return Err(ExecError::protocol("the dealer's corrections ran out"));
            };
            let frame = t.recv(feed.from)?;
            self.stats.bytes_received += frame.len() as u64;
            let bad = |what: String| {
                ExecError::protocol(format!("malformed corrections from the dealer: {what}"))
            };
            let mut values = wire::decode(&frame).map_err(|e| bad(e.to_string()).with_source(e))?;
            let (
                Some(Wire::DealerChunk {
                    group: first,
                    corrections,
                }),
                None,
            ) = (values.pop(), values.pop())
            else {
                return Err(bad("expected one batch of corrections".into()));
            };
            if first != feed.covered as u64 {
                return Err(bad(format!(
                    "corrections from group {first} arrived where group {} was due",
                    feed.covered
                )));
            }
            feed.covered = end;
            let engine = self
                .engine
                .as_mut()
                .ok_or_else(|| ExecError::protocol("no correlated randomness was set up"))?;
            engine.correlations_mut().supply(corrections)?;
        }
        Ok(())
    }

    /// A receive in program order: the round it closes is counted here even
    /// when the frame itself is read later (see `run_party`).
    pub(super) fn count_recv(&mut self) {
        if std::mem::take(&mut self.sent_since_recv) {
            self.stats.rounds += 1;
        }
    }

    /// Reads `from`'s next frame into `regs`.
    pub(super) fn receive(
        &mut self,
        from: PartyIdx,
        regs: &[Reg],
        t: &mut dyn Transport,
    ) -> Result<(), ExecError> {
        // A frame that is already here is read without first sending the
        // frames this party holds back: it does not wait, so nobody waits
        // on it, and the held frames can still go with the next ones (the
        // model owner's truncation opening with its output share).
        let frame = match t.try_recv(from)? {
            Some(f) => f,
            None => t.recv(from)?,
        };
        self.stats.bytes_received += frame.len() as u64;
        let who = self.plan.party_name(from).to_string();
        let values = wire::decode(&frame).map_err(|e| {
            ExecError::protocol(format!("malformed message from {who}: {e}")).with_source(e)
        })?;
        if values.len() != regs.len() {
            return Err(ExecError::protocol(format!(
                "{who} sent {} values, expected {}",
                values.len(),
                regs.len()
            )));
        }
        for (r, w) in regs.iter().zip(values) {
            let (v, key) = self
                .value_from_wire(*r, w)
                .map_err(|e| e.context(format_args!("from {who}")))?;
            if let Some((owner, pk)) = key {
                self.peer_keys.insert(owner, pk);
            }
            self.set(*r, v);
        }
        Ok(())
    }
}
