//! Lowering: the protocol selection → a [`plan::Plan`] with one straight-line
//! program per party, explicit sends and receives, the correlations and keys
//! it needs, and an estimate computed from what is actually emitted.

use crate::approx::Fit;
use crate::choose::{Chooser, How, Method, Repr, Selection};
use crate::cost::{Cost, RING_BYTES};
use crate::graph::Graph;
use crate::ir::{self, Op, Owner, PartyId, Role, ValueId};
use plan::{ClearOp, Correlation, HomOp, Instr, Kind, PartyIdx, Reg, RegInfo, ShareOp};
use std::collections::{BTreeMap, BTreeSet};

pub struct Lowerer<'a, 'm> {
    pub g: &'a Graph<'m>,
    pub chooser: &'a Chooser<'a, 'm>,
    pub fits: &'a BTreeMap<ValueId, Fit>,
    pub dealer: Option<PartyId>,
    pub error_bounds: Vec<f64>,
    regs: Vec<RegInfo>,
    programs: Vec<Vec<Instr>>,
    correlations: Vec<Correlation>,
    /// The plan runs secure comparisons (which need preprocessing even
    /// when it has no correlations of its own).
    compares: bool,
    have: BTreeMap<(ValueId, Repr), Reg>,
    keys: BTreeSet<PartyId>,
    cost: Cost,
    f: u32,
    p: [PartyId; 2],
}

fn pi(p: PartyId) -> PartyIdx {
    p.0
}

pub fn plan_shape(s: &ir::Shape) -> plan::Shape {
    plan::Shape(
        s.0.iter()
            .map(|d| match d {
                ir::Dim::Known(n) => plan::Dim::Known(*n),
                ir::Dim::Symbol(s) => plan::Dim::Symbol(s.clone()),
            })
            .collect(),
    )
}

impl<'a, 'm> Lowerer<'a, 'm> {
    pub fn new(
        g: &'a Graph<'m>,
        chooser: &'a Chooser<'a, 'm>,
        fits: &'a BTreeMap<ValueId, Fit>,
        dealer: Option<PartyId>,
        error_bounds: Vec<f64>,
    ) -> Self {
        let compute = g.model.compute_parties();
        Lowerer {
            g,
            chooser,
            fits,
            dealer,
            error_bounds,
            regs: Vec::new(),
            programs: vec![Vec::new(); g.model.parties().len()],
            correlations: Vec::new(),
            compares: false,
            have: BTreeMap::new(),
            keys: BTreeSet::new(),
            cost: Cost::ZERO,
            f: g.model.precision(),
            p: [compute[0], compute[1]],
        }
    }

    fn other(&self, p: PartyId) -> PartyId {
        if p == self.p[0] {
            self.p[1]
        } else {
            self.p[0]
        }
    }

    fn reg(&mut self, kind: Kind, shape: plan::Shape, note: impl Into<String>) -> Reg {
        self.regs.push(RegInfo {
            kind,
            shape,
            note: note.into(),
        });
        Reg(self.regs.len() as u32 - 1)
    }

    fn emit(&mut self, p: PartyId, ins: Instr) {
        self.programs[p.index()].push(ins);
    }

    fn shape(&self, v: ValueId) -> plan::Shape {
        plan_shape(&self.g.value(v).shape)
    }

    fn n(&self, v: ValueId) -> f64 {
        self.g.elements(&self.g.value(v).shape) as f64
    }

    fn n_shape(&self, s: &plan::Shape) -> f64 {
        s.0.iter()
            .map(|d| match d {
                plan::Dim::Known(n) => *n as f64,
                plan::Dim::Symbol(name) => *self
                    .g
                    .assume
                    .get(name)
                    .unwrap_or(&crate::DEFAULT_ASSUMED_DIM)
                    as f64,
            })
            .product()
    }

    fn scale_of(&self, r: Reg) -> u32 {
        match self.regs[r.0 as usize].kind {
            Kind::Share { scale } | Kind::Cipher { scale, .. } => scale,
            _ => 0,
        }
    }

    /// A public constant at both computing parties.
    fn public_const(&mut self, data: Vec<f64>, note: String) -> Reg {
        let r = self.reg(Kind::Clear, plan::Shape::scalar(), note);
        for p in self.p {
            self.emit(
                p,
                Instr::Const {
                    dst: r,
                    data: data.clone(),
                },
            );
        }
        r
    }

    /// A public constant at one party.
    fn const_at(&mut self, p: PartyId, data: Vec<f64>, note: String) -> Reg {
        let r = self.reg(Kind::Clear, plan::Shape::scalar(), note);
        self.emit(p, Instr::Const { dst: r, data });
        r
    }

    pub fn run(mut self, sel: &Selection) -> plan::Plan {
        let model = self.g.model;
        // Preprocessing: keys first, then correlations (patched in at the end
        // once we know what is needed).
        for repr in sel.materialize.values().flat_map(|m| m.keys()) {
            if let Repr::Cipher(k) = repr {
                self.keys.insert(*k);
            }
        }

        for v in self.g.order() {
            let Some(reprs) = sel.materialize.get(&v) else {
                continue;
            };
            let mut items: Vec<(&Repr, &How)> = reprs.iter().collect();
            // Natives first, then conversions to ciphertexts, then to shares.
            items.sort_by_key(|(r, h)| match (h, r) {
                (How::Native { .. }, _) => 0,
                (How::Convert { .. }, Repr::Cipher(_)) => 1,
                _ => 2,
            });
            for (repr, how) in items {
                let reg = match how {
                    How::Native { method, operands } => self.native(v, *method, operands),
                    How::Convert { from } => self.convert(v, *from, *repr),
                };
                self.have.insert((v, *repr), reg);
            }
        }
        for (i, (o, from)) in model.outputs().iter().zip(&sel.output_from).enumerate() {
            self.output(i as u32, o, *from);
        }

        // Preprocessing programs, prepended.
        let mut pre: Vec<Vec<Instr>> = vec![Vec::new(); model.parties().len()];
        let mut keys = Vec::new();
        let preprocess = !self.correlations.is_empty() || self.compares;
        let needs_two_party = self.dealer.is_none() && preprocess;
        if needs_two_party {
            // Triples are generated under the leader's key (see runtime::exec::twoparty).
            self.keys.insert(self.p[0]);
        }
        for k in self.keys.clone() {
            let h = self.other(k);
            let pk = self.reg(
                Kind::Message,
                plan::Shape::scalar(),
                format!("public key of {}", model.party(k).name),
            );
            pre[k.index()].push(Instr::KeyGen { public: pk });
            pre[k.index()].push(Instr::Send {
                to: pi(h),
                regs: vec![pk],
            });
            pre[h.index()].push(Instr::Recv {
                from: pi(k),
                regs: vec![pk],
            });
            keys.push(plan::KeySpec {
                owner: pi(k),
                peer: pi(h),
                min_bits: self.chooser.costs.key_bits,
            });
            self.cost += Cost::comm(self.chooser.costs.ciphertext_bytes() / 2.0, 1);
        }
        if preprocess {
            match self.dealer {
                Some(d) => {
                    let outs: Vec<Reg> = self
                        .p
                        .into_iter()
                        .map(|p| {
                            self.reg(
                                Kind::Message,
                                plan::Shape::scalar(),
                                format!("correlations for {}", model.party(p).name),
                            )
                        })
                        .collect();
                    pre[d.index()].push(Instr::Deal { out: outs.clone() });
                    for (i, p) in self.p.into_iter().enumerate() {
                        pre[d.index()].push(Instr::Send {
                            to: pi(p),
                            regs: vec![outs[i]],
                        });
                        pre[p.index()].push(Instr::Recv {
                            from: pi(d),
                            regs: vec![outs[i]],
                        });
                        pre[p.index()].push(Instr::Expand { src: outs[i] });
                    }
                }
                None => {
                    for p in self.p {
                        let peer = self.other(p);
                        pre[p.index()].push(Instr::GenerateCorrelations { peer: pi(peer) });
                    }
                }
            }
        }
        let programs: Vec<plan::Program> = pre
            .into_iter()
            .zip(std::mem::take(&mut self.programs))
            .enumerate()
            .map(|(i, (mut pre, body))| {
                pre.extend(body);
                plan::Program {
                    party: i as u32,
                    instrs: pre,
                }
            })
            .collect();

        let parties = model
            .parties()
            .iter()
            .map(|p| plan::Party {
                name: p.name.clone(),
                role: match p.role {
                    Role::Compute => plan::Role::Compute,
                    Role::Dealer => plan::Role::Dealer,
                },
            })
            .collect();
        let inputs = self.input_specs();
        let outputs = model
            .outputs()
            .iter()
            .enumerate()
            .map(|(i, o)| plan::OutputSpec {
                name: o.name.clone(),
                to: o.to.iter().map(|p| pi(*p)).collect(),
                shape: self.shape(o.value),
                error_bound: self.error_bounds[i],
            })
            .collect();
        let net = self.chooser.net;
        let mut plan = plan::Plan {
            format: plan::FORMAT_VERSION,
            dim_limits: self
                .g
                .dim_assumptions()
                .into_iter()
                .map(|(name, size, exact, v)| plan::DimLimit {
                    name,
                    size,
                    exact,
                    because: format!("{} = {}", self.g.label(v), self.g.describe(v)),
                })
                .collect(),
            model: model.name().to_string(),
            precision: self.f,
            parties,
            inputs,
            outputs,
            regs: self.regs,
            randomness: match self.dealer {
                Some(d) => plan::RandomnessSource::Dealer(pi(d)),
                None => plan::RandomnessSource::TwoParty,
            },
            correlations: self.correlations,
            keys,
            programs,
            estimate: plan::Estimate::default(),
        };
        let rounds = self
            .p
            .iter()
            .map(|p| plan.rounds(pi(*p)))
            .max()
            .unwrap_or(0);
        // Estimates carry four significant digits: enough to compare plans,
        // and stable across platforms' last-bit differences in the sums.
        plan.estimate = plan::Estimate {
            compute_seconds: significant(self.cost.compute),
            bytes: self.cost.bytes.round(),
            rounds,
            seconds: significant(
                self.cost.compute
                    + self.cost.bytes / net.bytes_per_second
                    + rounds as f64 * net.latency_seconds,
            ),
            assumed_dims: symbols_in(self.g),
        };
        plan
    }

    fn input_specs(&self) -> Vec<plan::InputSpec> {
        let model = self.g.model;
        model
            .values()
            .iter()
            .filter_map(|v| match &v.op {
                Op::Input { owner, range } => Some(plan::InputSpec {
                    name: v.name.clone().unwrap_or_default(),
                    owner: match owner {
                        Owner::Public => plan::Owner::Public,
                        Owner::Party(p) => plan::Owner::Party(pi(*p)),
                    },
                    shape: plan_shape(&v.shape),
                    range: crate::ir::input_range(*range, model.precision()),
                    range_declared: range.is_some(),
                }),
                _ => None,
            })
            .collect()
    }

    fn input_index(&self, v: ValueId) -> u32 {
        self.g.model.values()[..v.index()]
            .iter()
            .filter(|x| matches!(x.op, Op::Input { .. }))
            .count() as u32
    }

    fn get(&self, v: ValueId, r: Repr) -> Reg {
        *self
            .have
            .get(&(v, r))
            .unwrap_or_else(|| panic!("lowering order: {v:?} as {r:?} not materialised"))
    }

    fn native(&mut self, v: ValueId, method: Method, operands: &[Repr]) -> Reg {
        let value = self.g.value(v);
        let label = self.g.label(v);
        let shape = self.shape(v);
        let args: Vec<Reg> = value
            .op
            .operands()
            .iter()
            .zip(operands)
            .map(|(o, r)| self.get(*o, *r))
            .collect();
        match method {
            Method::Public | Method::Clear(_) => {
                let parties: Vec<PartyId> = match method {
                    Method::Clear(p) => vec![p],
                    _ => self.p.to_vec(),
                };
                let dst = self.reg(
                    Kind::Clear,
                    shape,
                    format!("{label} = {}", self.g.describe(v)),
                );
                for p in parties {
                    let ins = match &value.op {
                        Op::Input { .. } => Instr::Input {
                            dst,
                            input: self.input_index(v),
                        },
                        Op::Const { data } => Instr::Const {
                            dst,
                            data: data.clone(),
                        },
                        op => Instr::Clear {
                            dst,
                            op: clear_op(op),
                            args: args.clone(),
                        },
                    };
                    self.emit(p, ins);
                }
                self.cost += Cost::compute(self.n(v) * self.chooser.costs.ring_op);
                dst
            }
            Method::Shares => self.shares(v, operands, &args),
            Method::Paillier(k) => self.paillier(v, k, operands, &args),
        }
    }

    // ----- secret sharing -----

    fn share_reg(&mut self, shape: plan::Shape, scale: u32, note: String) -> Reg {
        self.reg(Kind::Share { scale }, shape, note)
    }

    fn local(&mut self, dst: Reg, op: ShareOp, args: Vec<Reg>) {
        for (i, p) in self.p.into_iter().enumerate() {
            self.emit(
                p,
                Instr::Local {
                    dst,
                    op: op.clone(),
                    args: args.clone(),
                    leader: i == 0,
                },
            );
        }
        let n = self.n_shape(&self.regs[dst.0 as usize].shape.clone());
        self.cost += Cost::compute(n * self.chooser.costs.ring_op);
    }

    /// Beaver products, all in one round: (x, y, correlation, note) → shares at scale 2f.
    fn beaver_batch(
        &mut self,
        products: Vec<(Reg, Reg, Correlation, plan::Shape, String)>,
    ) -> Vec<Reg> {
        let mut opens = Vec::new();
        for (x, y, corr, out_shape, note) in products {
            let (xs, ys) = (
                self.regs[x.0 as usize].shape.clone(),
                self.regs[y.0 as usize].shape.clone(),
            );
            let scale = self.scale_of(x) + self.scale_of(y);
            self.correlations.push(corr);
            let c = self.correlations.len() as u32 - 1;
            let msg = self.reg(
                Kind::Message,
                plan::Shape::scalar(),
                format!("masked operands of {note}"),
            );
            let theirs = self.reg(
                Kind::Message,
                plan::Shape::scalar(),
                format!("peer's masked operands of {note}"),
            );
            let dst = self.share_reg(out_shape.clone(), scale, note);
            let (nx, ny, nz) = (
                self.n_shape(&xs),
                self.n_shape(&ys),
                self.n_shape(&out_shape),
            );
            let mut c_cost = self.chooser.beaver(nx, ny, nz);
            c_cost.rounds = 0;
            self.cost += c_cost;
            opens.push((x, y, c, msg, theirs, dst));
        }
        for (i, p) in self.p.into_iter().enumerate() {
            for &(x, y, corr, msg, _, _) in &opens {
                self.emit(p, Instr::BeaverOpen { msg, x, y, corr });
            }
            let other = self.p[1 - i];
            self.emit(
                p,
                Instr::Send {
                    to: pi(other),
                    regs: opens.iter().map(|o| o.3).collect(),
                },
            );
            self.emit(
                p,
                Instr::Recv {
                    from: pi(other),
                    regs: opens.iter().map(|o| o.4).collect(),
                },
            );
            for &(_, _, corr, msg, theirs, dst) in &opens {
                self.emit(
                    p,
                    Instr::BeaverClose {
                        dst,
                        mine: msg,
                        theirs,
                        corr,
                        leader: i == 0,
                    },
                );
            }
        }
        opens.iter().map(|o| o.5).collect()
    }

    /// Truncate shares by `bits`, all in one round: with the dealer's
    /// truncation pairs, or without a dealer from daBits (the wrap of the
    /// shares; `runtime::sharing::protocol`).
    fn trunc_batch(&mut self, xs: Vec<(Reg, u32)>) -> Vec<Reg> {
        let mut outs = Vec::new();
        let mut opens = Vec::new();
        for (x, bits) in xs {
            let info = self.regs[x.0 as usize].clone();
            let scale = self.scale_of(x) - bits;
            let dst = self.share_reg(
                info.shape.clone(),
                scale,
                format!("{} >> {bits}", info.note),
            );
            let n = self.n_shape(&info.shape);
            let mut c = self.chooser.trunc(n);
            c.rounds = 0;
            self.cost += c;
            let shape = info.shape.clone();
            self.correlations.push(match self.dealer {
                Some(_) => Correlation::Trunc { shape, bits },
                None => Correlation::TruncDaBits { shape, bits },
            });
            let corr = self.correlations.len() as u32 - 1;
            let msg = self.reg(
                Kind::Message,
                plan::Shape::scalar(),
                format!("masked {}", info.note),
            );
            let theirs = self.reg(
                Kind::Message,
                plan::Shape::scalar(),
                format!("peer's masked {}", info.note),
            );
            opens.push((x, corr, msg, theirs, dst));
            outs.push(dst);
        }
        if !opens.is_empty() {
            for (i, p) in self.p.into_iter().enumerate() {
                for &(x, corr, msg, _, _) in &opens {
                    self.emit(p, Instr::TruncOpen { msg, x, corr });
                }
                let other = self.p[1 - i];
                self.emit(
                    p,
                    Instr::Send {
                        to: pi(other),
                        regs: opens.iter().map(|o| o.2).collect(),
                    },
                );
                self.emit(
                    p,
                    Instr::Recv {
                        from: pi(other),
                        regs: opens.iter().map(|o| o.3).collect(),
                    },
                );
                for &(_, corr, msg, theirs, dst) in &opens {
                    self.emit(
                        p,
                        Instr::TruncClose {
                            dst,
                            mine: msg,
                            theirs,
                            corr,
                            leader: i == 0,
                        },
                    );
                }
            }
        }
        outs
    }

    fn trunc1(&mut self, x: Reg) -> Reg {
        let bits = self.scale_of(x) - self.f;
        if bits == 0 {
            return x;
        }
        self.trunc_batch(vec![(x, bits)])[0]
    }

    /// Multiply a share by a public scalar constant, then truncate.
    fn mul_public_scalar(&mut self, x: Reg, c: f64, note: String) -> Reg {
        let k = self.public_const(vec![c], format!("{c}"));
        let shape = self.regs[x.0 as usize].shape.clone();
        let scale = self.scale_of(x) + self.f;
        let dst = self.share_reg(shape, scale, note);
        self.local(dst, ShareOp::MulPublic { bits: self.f }, vec![x, k]);
        self.trunc1(dst)
    }

    fn shares(&mut self, v: ValueId, reprs: &[Repr], args: &[Reg]) -> Reg {
        let value = self.g.value(v);
        let label = self.g.label(v);
        let note = format!("{label} = {}", self.g.describe(v));
        let shape = self.shape(v);
        let f = self.f;
        let public = |i: usize| reprs[i] == Repr::Public;
        match &value.op {
            Op::Add(..) | Op::Sub(..) => {
                let is_add = matches!(value.op, Op::Add(..));
                let (op, a) = match (public(0), public(1)) {
                    (false, false) => (
                        if is_add { ShareOp::Add } else { ShareOp::Sub },
                        vec![args[0], args[1]],
                    ),
                    (false, true) => (
                        if is_add {
                            ShareOp::AddPublic
                        } else {
                            ShareOp::SubPublic
                        },
                        vec![args[0], args[1]],
                    ),
                    _ => (
                        if is_add {
                            ShareOp::AddPublic
                        } else {
                            ShareOp::PublicSub
                        },
                        vec![args[1], args[0]],
                    ),
                };
                let dst = self.share_reg(shape, f, note);
                self.local(dst, op, a);
                dst
            }
            Op::Neg(_) => {
                let dst = self.share_reg(shape, f, note);
                self.local(dst, ShareOp::Neg, vec![args[0]]);
                dst
            }
            Op::Sum(_) => {
                let dst = self.share_reg(shape, f, note);
                self.local(dst, ShareOp::Sum, vec![args[0]]);
                dst
            }
            Op::Mean(a) => {
                let k = self.g.last_dim(*a);
                let sum = self.share_reg(shape, f, format!("sum for {label}"));
                self.local(sum, ShareOp::Sum, vec![args[0]]);
                self.mul_public_scalar(sum, 1.0 / k as f64, note)
            }
            Op::Mul(a, b) if public(0) || public(1) => {
                let (s, p, pv) = if public(1) {
                    (args[0], args[1], *b)
                } else {
                    (args[1], args[0], *a)
                };
                if let Some(k) = integral_scalar(self.g.value(pv)) {
                    let dst = self.share_reg(shape, f, note);
                    self.local(dst, ShareOp::MulInt(k), vec![s]);
                    return dst;
                }
                let dst = self.share_reg(shape, 2 * f, format!("{note} (untruncated)"));
                self.local(dst, ShareOp::MulPublic { bits: f }, vec![s, p]);
                self.trunc1(dst)
            }
            Op::Mul(..) | Op::Square(_) => {
                let (x, y) = if matches!(value.op, Op::Square(_)) {
                    (args[0], args[0])
                } else {
                    (args[0], args[1])
                };
                let x = self.broadcast_to(x, &shape);
                let y = self.broadcast_to(y, &shape);
                let z = self.beaver_batch(vec![(
                    x,
                    y,
                    Correlation::Elementwise {
                        shape: shape.clone(),
                    },
                    shape,
                    note,
                )])[0];
                self.trunc1(z)
            }
            Op::MatMul(..) if matches!(reprs, [Repr::Clear(_), Repr::Clear(_)]) => {
                let [Repr::Clear(px), Repr::Clear(pw)] = reprs else {
                    unreachable!("matched above")
                };
                self.holder_matmul(args[0], args[1], *px, *pw, shape, note)
            }
            Op::MatMul(..) if public(0) || public(1) => {
                let (s, p, public_left) = if public(1) {
                    (args[0], args[1], false)
                } else {
                    (args[1], args[0], true)
                };
                let dst = self.share_reg(shape, 2 * f, format!("{note} (untruncated)"));
                self.local(
                    dst,
                    ShareOp::MatMulPublic {
                        bits: f,
                        public_left,
                    },
                    vec![s, p],
                );
                self.trunc1(dst)
            }
            Op::MatMul(..) => {
                let (ls, rs) = (
                    self.regs[args[0].0 as usize].shape.clone(),
                    self.regs[args[1].0 as usize].shape.clone(),
                );
                let z = self.beaver_batch(vec![(
                    args[0],
                    args[1],
                    Correlation::MatMul { lhs: ls, rhs: rs },
                    shape,
                    note,
                )])[0];
                self.trunc1(z)
            }
            Op::Sigmoid(..) | Op::Tanh(..) => {
                let fit = self.fits[&v].clone();
                // Out-of-domain inputs are first clamped into the fitted domain.
                let x = if self.chooser.clamped.contains(&v) {
                    let x_label = self.g.label(value.op.operands()[0]);
                    self.nonlinear(
                        plan::NonlinearOp::Clamp {
                            lo: fit.domain.0,
                            hi: fit.domain.1,
                        },
                        vec![args[0]],
                        shape.clone(),
                        format!("{x_label} clamped to [{}, {}]", fit.domain.0, fit.domain.1),
                    )
                } else {
                    args[0]
                };
                let t = self.mul_public_scalar(
                    x,
                    1.0 / fit.scale,
                    format!(
                        "t = {} / {}",
                        self.g.label(value.op.operands()[0]),
                        fit.scale
                    ),
                );
                self.polynomial(t, &fit.coefficients(), true, &shape, note)
            }
            Op::Poly(_, coeffs) => self.polynomial(args[0], coeffs, false, &shape, note),
            Op::Relu(_) => self.nonlinear(plan::NonlinearOp::Relu, args.to_vec(), shape, note),
            Op::Max(..) | Op::Min(..) => {
                let op = if matches!(value.op, Op::Max(..)) {
                    plan::NonlinearOp::Max
                } else {
                    plan::NonlinearOp::Min
                };
                let args = self.same_shape(args, &shape);
                self.nonlinear(op, args, shape, note)
            }
            Op::MaxReduce(_) => {
                self.nonlinear(plan::NonlinearOp::MaxReduce, args.to_vec(), shape, note)
            }
            Op::Argmax(_) => self.nonlinear(plan::NonlinearOp::Argmax, args.to_vec(), shape, note),
            Op::Clamp(_, lo, hi) => self.nonlinear(
                plan::NonlinearOp::Clamp { lo: *lo, hi: *hi },
                args.to_vec(),
                shape,
                note,
            ),
            other => unreachable!("the chooser never picks shares for {}", other.mnemonic()),
        }
    }

    /// `x @ w` with `x` in the clear at `px` and `w` at `pw`, by an
    /// input-holder triple: each side sends its masked input once.
    fn holder_matmul(
        &mut self,
        x: Reg,
        w: Reg,
        px: PartyId,
        pw: PartyId,
        shape: plan::Shape,
        note: String,
    ) -> Reg {
        let f = self.f;
        let (xs, ws) = (
            self.regs[x.0 as usize].shape.clone(),
            self.regs[w.0 as usize].shape.clone(),
        );
        let own_x = self.share_reg(
            xs.clone(),
            f,
            format!("{} (its holder's share)", self.regs[x.0 as usize].note),
        );
        let own_w = self.share_reg(
            ws.clone(),
            f,
            format!("{} (its holder's share)", self.regs[w.0 as usize].note),
        );
        for (reg, src, holder) in [(own_x, x, px), (own_w, w, pw)] {
            self.emit(
                holder,
                Instr::Own {
                    src: Some(src),
                    dst: reg,
                },
            );
            self.emit(
                self.other(holder),
                Instr::Own {
                    src: None,
                    dst: reg,
                },
            );
        }
        self.correlations.push(Correlation::HolderMatMul {
            lhs: xs.clone(),
            rhs: ws.clone(),
            lhs_holder: pi(px),
        });
        let corr = self.correlations.len() as u32 - 1;
        let msg = self.reg(
            Kind::Message,
            plan::Shape::scalar(),
            format!("masked input for {note}"),
        );
        let theirs = self.reg(
            Kind::Message,
            plan::Shape::scalar(),
            format!("peer's masked input for {note}"),
        );
        let dst = self.share_reg(shape.clone(), 2 * f, note);
        for (i, p) in self.p.into_iter().enumerate() {
            let other = self.p[1 - i];
            self.emit(
                p,
                Instr::HolderOpen {
                    msg,
                    x: own_x,
                    y: own_w,
                    corr,
                },
            );
            self.emit(
                p,
                Instr::Send {
                    to: pi(other),
                    regs: vec![msg],
                },
            );
            self.emit(
                p,
                Instr::Recv {
                    from: pi(other),
                    regs: vec![theirs],
                },
            );
            self.emit(
                p,
                Instr::HolderClose {
                    dst,
                    mine: msg,
                    theirs,
                    corr,
                    leader: i == 0,
                },
            );
        }
        let (nx, nw, nz) = (self.n_shape(&xs), self.n_shape(&ws), self.n_shape(&shape));
        let k = self.n_shape(&plan::Shape(xs.0.last().cloned().into_iter().collect()));
        let mut c = self.chooser.holder_matmul(nx, nw, nz, k);
        c.rounds = 0; // the plan's rounds are counted from its programs
        self.cost += c;
        self.trunc1(dst)
    }

    /// A comparison-based operation, run jointly by both computing parties.
    fn nonlinear(
        &mut self,
        op: plan::NonlinearOp,
        args: Vec<Reg>,
        shape: plan::Shape,
        note: String,
    ) -> Reg {
        self.compares = true;
        let dst = self.share_reg(shape, self.f, note);
        let n: f64 = args
            .iter()
            .map(|a| self.n_shape(&self.regs[a.0 as usize].shape.clone()))
            .fold(0.0, f64::max);
        // Clamp compares against both bounds.
        let k = if matches!(op, plan::NonlinearOp::Clamp { .. }) {
            2.0
        } else {
            1.0
        };
        self.cost += self.chooser.comparison(k * n, 0);
        for (i, p) in self.p.into_iter().enumerate() {
            let peer = pi(self.p[1 - i]);
            self.emit(
                p,
                Instr::Nonlinear {
                    dst,
                    op: op.clone(),
                    args: args.clone(),
                    peer,
                    leader: i == 0,
                },
            );
        }
        dst
    }

    /// Broadcast every operand to `shape` (elementwise comparisons need equal shapes).
    fn same_shape(&mut self, args: &[Reg], shape: &plan::Shape) -> Vec<Reg> {
        args.iter().map(|a| self.broadcast_to(*a, shape)).collect()
    }

    fn broadcast_to(&mut self, x: Reg, shape: &plan::Shape) -> Reg {
        if &self.regs[x.0 as usize].shape == shape {
            return x;
        }
        let scale = self.scale_of(x);
        let note = format!("{} broadcast to {shape}", self.regs[x.0 as usize].note);
        let dst = self.share_reg(shape.clone(), scale, note);
        self.local(dst, ShareOp::Broadcast, vec![x]);
        dst
    }

    /// Σ c_k x^k on shares: powers by the log-depth schedule, one truncation
    /// per power, one for the combination.
    fn polynomial(
        &mut self,
        x: Reg,
        coeffs: &[f64],
        odd: bool,
        shape: &plan::Shape,
        note: String,
    ) -> Reg {
        let f = self.f;
        let degree = coeffs.iter().rposition(|c| *c != 0.0).unwrap_or(0) as u32;
        let mut powers: BTreeMap<u32, Reg> = BTreeMap::new();
        powers.insert(1, x);
        for level in Chooser::power_schedule(degree.max(1), odd) {
            let products = level
                .iter()
                .map(|&(k, a, b)| {
                    (
                        powers[&a],
                        powers[&b],
                        Correlation::Elementwise {
                            shape: shape.clone(),
                        },
                        shape.clone(),
                        format!("power {k} for {note}"),
                    )
                })
                .collect();
            let raw = self.beaver_batch(products);
            let truncated = self.trunc_batch(raw.iter().map(|r| (*r, f)).collect());
            for (&(k, _, _), r) in level.iter().zip(truncated) {
                powers.insert(k, r);
            }
        }
        // Combination at scale 2f, one truncation.
        let mut acc: Option<Reg> = None;
        for (k, c) in coeffs.iter().enumerate().skip(1) {
            if *c == 0.0 {
                continue;
            }
            let coef = self.public_const(vec![*c], format!("c{k}"));
            let term = self.share_reg(shape.clone(), 2 * f, format!("c{k}·x^{k} for {note}"));
            self.local(
                term,
                ShareOp::MulPublic { bits: f },
                vec![powers[&(k as u32)], coef],
            );
            acc = Some(match acc {
                None => term,
                Some(a) => {
                    let s = self.share_reg(shape.clone(), 2 * f, format!("partial sum for {note}"));
                    self.local(s, ShareOp::Add, vec![a, term]);
                    s
                }
            });
        }
        let body = match acc {
            Some(a) => self.trunc1(a),
            None => {
                let zero = self.public_const(vec![0.0], "0".into());
                let z = self.share_reg(shape.clone(), f, format!("zero for {note}"));
                for (i, p) in self.p.into_iter().enumerate() {
                    self.emit(
                        p,
                        Instr::Embed {
                            src: zero,
                            dst: z,
                            leader: i == 0,
                        },
                    );
                }
                z
            }
        };
        if coeffs[0] == 0.0 {
            return body;
        }
        let c0 = self.public_const(vec![coeffs[0]], "c0".into());
        let dst = self.share_reg(shape.clone(), f, note);
        self.local(dst, ShareOp::AddPublic, vec![body, c0]);
        dst
    }

    // ----- Paillier -----

    fn paillier(&mut self, v: ValueId, k: PartyId, reprs: &[Repr], args: &[Reg]) -> Reg {
        let h = self.other(k);
        let value = self.g.value(v);
        let note = format!("{} = {}", self.g.label(v), self.g.describe(v));
        let shape = self.shape(v);
        let f = self.f;
        let cipher = |i: usize| matches!(reprs[i], Repr::Cipher(_));
        let costs = self.chooser.costs;
        let n = self.n(v);
        let (op, a, scale) = match &value.op {
            Op::MatMul(x, _) => {
                let kdim = self.g.last_dim(*x) as f64;
                self.cost += Cost::compute(n * kdim * costs.paillier_mul_term);
                if cipher(0) {
                    (
                        HomOp::MatMul { bits: f },
                        vec![args[0], args[1]],
                        self.scale_of(args[0]) + f,
                    )
                } else {
                    (
                        HomOp::MatMulLeft { bits: f },
                        vec![args[1], args[0]],
                        self.scale_of(args[1]) + f,
                    )
                }
            }
            Op::Mul(..) => {
                self.cost += Cost::compute(n * costs.paillier_mul_term);
                let (c, p) = if cipher(0) {
                    (args[0], args[1])
                } else {
                    (args[1], args[0])
                };
                (HomOp::Mul { bits: f }, vec![c, p], self.scale_of(c) + f)
            }
            Op::Add(..) | Op::Sub(..) => {
                self.cost += Cost::compute(n * costs.paillier_add);
                let add = matches!(value.op, Op::Add(..));
                match (cipher(0), cipher(1)) {
                    (true, true) => {
                        let (x, y) = self.align(args[0], args[1], k, h);
                        let s = self.scale_of(x);
                        (if add { HomOp::Add } else { HomOp::Sub }, vec![x, y], s)
                    }
                    (true, false) => (
                        if add {
                            HomOp::AddPlain
                        } else {
                            HomOp::SubPlain
                        },
                        vec![args[0], args[1]],
                        self.scale_of(args[0]),
                    ),
                    _ => (
                        if add {
                            HomOp::AddPlain
                        } else {
                            HomOp::PlainSub
                        },
                        vec![args[1], args[0]],
                        self.scale_of(args[1]),
                    ),
                }
            }
            Op::Neg(_) => (HomOp::Neg, vec![args[0]], self.scale_of(args[0])),
            Op::Sum(_) => (HomOp::Sum, vec![args[0]], self.scale_of(args[0])),
            Op::Mean(x) => {
                let kdim = self.g.last_dim(*x);
                let s = self.scale_of(args[0]);
                let sum = self.reg(
                    Kind::Cipher {
                        key: pi(k),
                        scale: s,
                    },
                    shape.clone(),
                    format!("sum for {note}"),
                );
                self.emit(
                    h,
                    Instr::Hom {
                        dst: sum,
                        op: HomOp::Sum,
                        args: vec![args[0]],
                    },
                );
                let inv = self.const_at(h, vec![1.0 / kdim as f64], format!("1/{kdim}"));
                (HomOp::Mul { bits: f }, vec![sum, inv], s + f)
            }
            other => unreachable!("the chooser never picks Paillier for {}", other.mnemonic()),
        };
        let dst = self.reg(Kind::Cipher { key: pi(k), scale }, shape, note);
        self.emit(h, Instr::Hom { dst, op, args: a });
        dst
    }

    /// Bring two ciphertexts to the same scale.
    fn align(&mut self, x: Reg, y: Reg, k: PartyId, h: PartyId) -> (Reg, Reg) {
        let (sx, sy) = (self.scale_of(x), self.scale_of(y));
        if sx == sy {
            return (x, y);
        }
        let (low, high, bits) = if sx < sy {
            (x, y, sy - sx)
        } else {
            (y, x, sx - sy)
        };
        let info = self.regs[low.0 as usize].clone();
        let one = self.const_at(h, vec![1.0], "1".into());
        let up = self.reg(
            Kind::Cipher {
                key: pi(k),
                scale: sx.max(sy),
            },
            info.shape,
            format!("{} rescaled", info.note),
        );
        self.emit(
            h,
            Instr::Hom {
                dst: up,
                op: HomOp::Mul { bits },
                args: vec![low, one],
            },
        );
        if sx < sy {
            (up, high)
        } else {
            (high, up)
        }
    }

    // ----- conversions -----

    fn convert(&mut self, v: ValueId, from: Repr, to: Repr) -> Reg {
        let src = self.get(v, from);
        let shape = self.shape(v);
        let label = self.g.label(v);
        let f = self.f;
        let n = self.n(v);
        let costs = self.chooser.costs;
        match (from, to) {
            (Repr::Public, Repr::Shared) => {
                let dst = self.share_reg(shape, f, format!("{label} (public, as a share)"));
                for (i, p) in self.p.into_iter().enumerate() {
                    self.emit(
                        p,
                        Instr::Embed {
                            src,
                            dst,
                            leader: i == 0,
                        },
                    );
                }
                dst
            }
            (Repr::Clear(p), Repr::Shared) => {
                let q = self.other(p);
                let keep = self.share_reg(shape.clone(), f, format!("share of {label}"));
                let send = self.share_reg(
                    shape,
                    f,
                    format!("{}'s share of {label}", self.g.model.party(q).name),
                );
                self.emit(p, Instr::Split { src, keep, send });
                self.emit(
                    p,
                    Instr::Send {
                        to: pi(q),
                        regs: vec![send],
                    },
                );
                self.emit(
                    q,
                    Instr::Recv {
                        from: pi(p),
                        regs: vec![keep],
                    },
                );
                self.cost += Cost::compute(n * costs.ring_op) + Cost::comm(n * RING_BYTES, 0);
                keep
            }
            (Repr::Clear(p), Repr::Cipher(k)) if p == k => {
                let h = self.other(k);
                let dst = self.reg(
                    Kind::Cipher {
                        key: pi(k),
                        scale: f,
                    },
                    shape,
                    format!("Enc({label})"),
                );
                self.emit(k, Instr::Encrypt { dst, src });
                self.emit(
                    k,
                    Instr::Send {
                        to: pi(h),
                        regs: vec![dst],
                    },
                );
                self.emit(
                    h,
                    Instr::Recv {
                        from: pi(k),
                        regs: vec![dst],
                    },
                );
                self.cost += Cost::compute(n * costs.paillier_encrypt)
                    + Cost::comm(n * costs.ciphertext_bytes(), 0);
                dst
            }
            (Repr::Cipher(k), Repr::Shared) => {
                let h = self.other(k);
                let scale = self.scale_of(src);
                let magnitude = self.g.node(v).range.magnitude().max(1.0);
                let bound_bits = (magnitude.log2() + scale as f64).ceil() as u32 + 1;
                let masked = self.reg(
                    Kind::Cipher { key: pi(k), scale },
                    shape.clone(),
                    format!("masked {label}"),
                );
                let share = self.share_reg(shape, f, format!("share of {label}"));
                let shift = scale - f;
                self.emit(
                    h,
                    Instr::Mask {
                        masked,
                        share,
                        src,
                        bound_bits,
                        shift,
                    },
                );
                self.emit(
                    h,
                    Instr::Send {
                        to: pi(k),
                        regs: vec![masked],
                    },
                );
                self.emit(
                    k,
                    Instr::Recv {
                        from: pi(h),
                        regs: vec![masked],
                    },
                );
                self.emit(
                    k,
                    Instr::DecryptShare {
                        dst: share,
                        src: masked,
                        shift,
                    },
                );
                self.cost += Cost::compute(
                    n * (costs.paillier_encrypt + costs.paillier_add + costs.paillier_decrypt),
                ) + Cost::comm(n * costs.ciphertext_bytes(), 0);
                share
            }
            _ => unreachable!("the chooser offers no conversion {from:?} → {to:?}"),
        }
    }

    // ----- outputs -----

    /// The recipient of a revealed (or decrypted) output clamps it, in the
    /// clear and for free, to the range the analysis proved for the exact
    /// value: a sigmoid to [0, 1]. That never moves it further from the
    /// exact value, and hides nothing (the recipient learns the output
    /// anyway).
    fn clamp_revealed(&mut self, q: PartyId, v: ValueId, clear: Reg) -> Reg {
        let range = self.g.node(v).range;
        if !(range.lo.is_finite() && range.hi.is_finite()) {
            return clear;
        }
        let info = self.regs[clear.0 as usize].clone();
        let dst = self.reg(
            Kind::Clear,
            info.shape,
            format!("{} clamped to {range}", info.note),
        );
        self.emit(
            q,
            Instr::Clear {
                dst,
                op: ClearOp::Clamp(range.lo, range.hi),
                args: vec![clear],
            },
        );
        dst
    }

    fn output(&mut self, index: u32, o: &ir::Output, from: Repr) {
        let v = o.value;
        let src = self.get(v, from);
        let shape = self.shape(v);
        let n = self.n(v);
        let costs = self.chooser.costs;
        match from {
            Repr::Public => {
                for q in &o.to {
                    self.emit(*q, Instr::Output { src, output: index });
                }
            }
            Repr::Clear(p) => {
                for q in &o.to {
                    if *q == p {
                        self.emit(p, Instr::Output { src, output: index });
                    } else {
                        self.emit(
                            p,
                            Instr::Send {
                                to: pi(*q),
                                regs: vec![src],
                            },
                        );
                        self.emit(
                            *q,
                            Instr::Recv {
                                from: pi(p),
                                regs: vec![src],
                            },
                        );
                        self.emit(*q, Instr::Output { src, output: index });
                        self.cost += Cost::comm(n * RING_BYTES, 0);
                    }
                }
            }
            Repr::Shared => {
                let mut theirs = BTreeMap::new();
                for q in &o.to {
                    let t = self.share_reg(
                        shape.clone(),
                        self.scale_of(src),
                        format!("peer's share of output {}", o.name),
                    );
                    theirs.insert(*q, t);
                }
                for p in self.p {
                    for q in &o.to {
                        if *q != p {
                            self.emit(
                                p,
                                Instr::Send {
                                    to: pi(*q),
                                    regs: vec![src],
                                },
                            );
                            self.cost += Cost::comm(n * RING_BYTES, 0);
                        }
                    }
                }
                for q in &o.to {
                    let p = self.other(*q);
                    let t = theirs[q];
                    let clear = self.reg(Kind::Clear, shape.clone(), format!("output {}", o.name));
                    self.emit(
                        *q,
                        Instr::Recv {
                            from: pi(p),
                            regs: vec![t],
                        },
                    );
                    self.emit(
                        *q,
                        Instr::Reveal {
                            dst: clear,
                            mine: src,
                            theirs: t,
                        },
                    );
                    let clear = self.clamp_revealed(*q, v, clear);
                    self.emit(
                        *q,
                        Instr::Output {
                            src: clear,
                            output: index,
                        },
                    );
                }
            }
            Repr::Cipher(k) => {
                let h = self.other(k);
                let scale = self.scale_of(src);
                let fresh = self.reg(
                    Kind::Cipher { key: pi(k), scale },
                    shape.clone(),
                    format!("re-randomised {}", o.name),
                );
                let clear = self.reg(Kind::Clear, shape, format!("output {}", o.name));
                self.emit(h, Instr::Rerandomize { dst: fresh, src });
                self.emit(
                    h,
                    Instr::Send {
                        to: pi(k),
                        regs: vec![fresh],
                    },
                );
                self.emit(
                    k,
                    Instr::Recv {
                        from: pi(h),
                        regs: vec![fresh],
                    },
                );
                self.emit(
                    k,
                    Instr::Decrypt {
                        dst: clear,
                        src: fresh,
                    },
                );
                let clear = self.clamp_revealed(k, v, clear);
                self.emit(
                    k,
                    Instr::Output {
                        src: clear,
                        output: index,
                    },
                );
                self.cost += Cost::compute(n * (costs.paillier_encrypt + costs.paillier_decrypt))
                    + Cost::comm(n * costs.ciphertext_bytes(), 0);
            }
        }
    }
}

fn integral_scalar(v: &ir::Value) -> Option<i64> {
    match &v.op {
        Op::Const { data } if data.len() == 1 && data[0].fract() == 0.0 && data[0].abs() < 1e15 => {
            Some(data[0] as i64)
        }
        _ => None,
    }
}

pub fn clear_op(op: &Op) -> ClearOp {
    match op {
        Op::Neg(_) => ClearOp::Neg,
        Op::Add(..) => ClearOp::Add,
        Op::Sub(..) => ClearOp::Sub,
        Op::Mul(..) => ClearOp::Mul,
        Op::MatMul(..) => ClearOp::MatMul,
        Op::Sum(_) => ClearOp::Sum,
        Op::Mean(_) => ClearOp::Mean,
        Op::Square(_) => ClearOp::Square,
        Op::Sigmoid(..) => ClearOp::Sigmoid,
        Op::Tanh(..) => ClearOp::Tanh,
        Op::Poly(_, c) => ClearOp::Poly(c.clone()),
        Op::Relu(_) => ClearOp::Relu,
        Op::MaxReduce(_) => ClearOp::MaxReduce,
        Op::Argmax(_) => ClearOp::Argmax,
        Op::Max(..) => ClearOp::Max,
        Op::Min(..) => ClearOp::Min,
        Op::Clamp(_, lo, hi) => ClearOp::Clamp(*lo, *hi),
        Op::Input { .. } | Op::Const { .. } => {
            unreachable!("inputs and constants are not clear operations")
        }
    }
}

/// The symbolic dimensions the plan's shapes use, with their assumed sizes.
fn symbols_in(g: &Graph) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for v in g.order() {
        for d in &g.value(v).shape.0 {
            if let ir::Dim::Symbol(s) = d {
                out.insert(s.clone(), g.dim_size(d));
            }
        }
    }
    out
}

fn significant(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let e = v.abs().log10().floor() as i32 - 3;
    let scale = 10f64.powi(-e);
    (v * scale).round() / scale
}
