//! Lowering: the protocol selection → a [`plan::Plan`] with one straight-line
//! program per party, explicit sends and receives, the correlations and keys
//! it needs, and its estimate, priced afterwards from what was emitted
//! ([`crate::cost::estimate`]).

use crate::approx::Fit;
use crate::choose::{Chooser, How, Method, Repr, Selection};
use crate::graph::Graph;
use crate::ir::{self, Op, Owner, PartyId, Role, ValueId};
use plan::{ClearOp, Correlation, Instr, Kind, PartyIdx, Reg, RegInfo};
use std::collections::{BTreeMap, BTreeSet};

mod convert;
mod exchange;
mod outputs;
mod paillier;
mod preprocess;
mod rlwe;
mod shares;

pub struct Lowerer<'a, 'm> {
    pub g: &'a Graph<'m>,
    pub chooser: &'a Chooser<'a, 'm>,
    pub fits: &'a BTreeMap<ValueId, Fit>,
    pub dealer: Option<PartyId>,
    pub error_bounds: Vec<f64>,
    pub near_ties: Vec<Option<f64>>,
    regs: Vec<RegInfo>,
    programs: Vec<Vec<Instr>>,
    correlations: Vec<Correlation>,
    /// The plan runs secure comparisons (which need preprocessing even
    /// when it has no correlations of its own).
    compares: bool,
    have: BTreeMap<(ValueId, Repr), Reg>,
    keys: BTreeSet<PartyId>,
    /// Per party that encrypts RLWE queries, the register of its RLWE
    /// public key, and whether the peer has it yet.
    rlwe_keys: BTreeMap<PartyId, (Reg, bool)>,
    /// Operands (as shares) of both a `max` and an `argmax` along the last
    /// axis: one tournament computes both ([`plan::NonlinearOp::MaxArgmax`]).
    fused: BTreeSet<(ValueId, Repr)>,
    /// The stacked `[max, index]` register of each fused operand's register.
    tournaments: BTreeMap<Reg, Reg>,
    /// Registers of grouped convolutions' products that a convolution
    /// triple already summed over the patch: the `Sum` reading one is it.
    summed: BTreeSet<Reg>,
    /// Parties whose RLWE key pair is made in the preprocessing (for
    /// prepared products), and each party's preprocessing of prepared
    /// RLWE products, appended to its preprocessing phase.
    rlwe_pre_keys: BTreeSet<PartyId>,
    rlwe_pre: Vec<Vec<Instr>>,
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
        near_ties: Vec<Option<f64>>,
    ) -> Self {
        let compute = g.model.compute_parties();
        Lowerer {
            g,
            chooser,
            fits,
            dealer,
            error_bounds,
            near_ties,
            regs: Vec::new(),
            programs: vec![Vec::new(); g.model.parties().len()],
            correlations: Vec::new(),
            compares: false,
            have: BTreeMap::new(),
            keys: BTreeSet::new(),
            rlwe_keys: BTreeMap::new(),
            fused: BTreeSet::new(),
            tournaments: BTreeMap::new(),
            summed: BTreeSet::new(),
            rlwe_pre_keys: BTreeSet::new(),
            rlwe_pre: vec![Vec::new(); g.model.parties().len()],
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

    /// `regs` from `from` to `to`: the send in one program, the matching
    /// receive in the other.
    fn pass(&mut self, from: PartyId, to: PartyId, regs: Vec<Reg>) {
        self.emit(
            from,
            Instr::Send {
                to: pi(to),
                regs: regs.clone(),
            },
        );
        self.emit(
            to,
            Instr::Recv {
                from: pi(from),
                regs,
            },
        );
    }

    fn shape(&self, v: ValueId) -> plan::Shape {
        plan_shape(&self.g.value(v).shape)
    }

    fn share_reg(&mut self, shape: plan::Shape, scale: u32, note: String) -> Reg {
        self.reg(Kind::Share { scale }, shape, note)
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

        self.fused = fused_tournaments(model, sel);
        // RLWE keys of parties that encrypt a prepared or masked product: made and
        // sent in the preprocessing, before any product needs them.
        for v in self.g.order() {
            for how in sel.materialize.get(&v).into_iter().flat_map(|m| m.values()) {
                if let How::Native {
                    method: Method::Rlwe,
                    operands,
                } = how
                {
                    if self.chooser.rlwe_prepared(v, operands)
                        || self.chooser.rlwe_masked(v, operands)
                    {
                        let client = match operands[..] {
                            [Repr::Clear(px), _] => px,
                            [_, Repr::Clear(pw)] => self.other(pw),
                            _ => continue,
                        };
                        self.rlwe_pre_key(client);
                    }
                }
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
        self.drop_unread_im2col();

        // Preprocessing programs, prepended.
        let (pre, keys) = self.preprocessing();
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
                near_tie: self.near_ties[i],
                labels: o.labels.clone(),
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
        plan.estimate = crate::cost::estimate(&plan, self.chooser.costs, &net, symbols_in(self.g));
        plan
    }

    /// Drops every im2col step whose patches no instruction reads: a
    /// convolution that a dealer's convolution triple (or RLWE HomConv on
    /// clear operands) computes reads its input, not the patches. The
    /// register stays declared, never written, so the others keep their
    /// numbers; the estimate and the memory estimate, both priced from
    /// the emitted programs, no longer count the step.
    fn drop_unread_im2col(&mut self) {
        let read: BTreeSet<Reg> = (self.programs.iter())
            .chain(&self.rlwe_pre)
            .flatten()
            .flat_map(Instr::reads)
            .collect();
        for program in &mut self.programs {
            program.retain(|ins| {
                !matches!(ins,
                    Instr::Local { dst, op: plan::ShareOp::Im2col(_), .. }
                    | Instr::Clear { dst, op: ClearOp::Im2col(_), .. }
                    if !read.contains(dst))
            });
        }
    }

    fn input_specs(&self) -> Vec<plan::InputSpec> {
        let model = self.g.model;
        model
            .values()
            .iter()
            .filter_map(|v| match &v.op {
                Op::Input {
                    owner,
                    range,
                    columns,
                } => Some(plan::InputSpec {
                    name: v.name.clone().unwrap_or_default(),
                    owner: match owner {
                        Owner::Public => plan::Owner::Public,
                        Owner::Party(p) => plan::Owner::Party(pi(*p)),
                    },
                    shape: plan_shape(&v.shape),
                    range: crate::ir::input_range(*range, model.precision()),
                    range_declared: range.is_some(),
                    columns: columns.clone().unwrap_or_default(),
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
                dst
            }
            Method::Shares => self.shares(v, operands, &args),
            Method::Paillier(k) => self.paillier(v, k, operands, &args),
            Method::Rlwe => self.rlwe(v, operands, &args),
        }
    }
}

/// The operands (with their representation) of which the selection
/// computes both `max` and `argmax` on shares: one tournament serves both.
fn fused_tournaments(model: &ir::CheckedModel, sel: &Selection) -> BTreeSet<(ValueId, Repr)> {
    let on_shares = |want: fn(&Op) -> Option<ValueId>| -> BTreeSet<(ValueId, Repr)> {
        model
            .values()
            .iter()
            .enumerate()
            .filter_map(|(i, value)| {
                let a = want(&value.op)?;
                let v = ValueId(i as u32);
                sel.materialize.get(&v)?.values().find_map(|how| match how {
                    How::Native {
                        method: Method::Shares,
                        operands,
                    } => operands.first().map(|r| (a, *r)),
                    _ => None,
                })
            })
            .collect()
    };
    let maxes = on_shares(|op| match op {
        Op::MaxReduce(a) => Some(*a),
        _ => None,
    });
    let argmaxes = on_shares(|op| match op {
        Op::Argmax(a) => Some(*a),
        _ => None,
    });
    maxes.intersection(&argmaxes).copied().collect()
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
        Op::MinReduce(_) => ClearOp::MinReduce,
        Op::Argmax(_) => ClearOp::Argmax,
        Op::Max(..) => ClearOp::Max,
        Op::Min(..) => ClearOp::Min,
        Op::Clamp(_, lo, hi) => ClearOp::Clamp(*lo, *hi),
        Op::Permute(_, perm) => ClearOp::Permute(perm.clone()),
        Op::Reshape(_) => ClearOp::Reshape,
        Op::Im2col(_, w) => ClearOp::Im2col(w.clone()),
        Op::Exp(_) => ClearOp::Exp,
        Op::Reciprocal(_) => ClearOp::Reciprocal,
        Op::Log(_) => ClearOp::Log,
        Op::Rsqrt(_) => ClearOp::Rsqrt,
        Op::Concat(_) => ClearOp::Concat,
        Op::Narrow(_, start, len) => ClearOp::Narrow {
            start: *start as usize,
            len: *len as usize,
        },
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
