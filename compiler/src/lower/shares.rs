//! Lowering on additive shares: local operations, Beaver products,
//! truncation, input-holder products, comparisons and polynomials.

use super::exchange::{Open, Step};
use super::{pi, Lowerer};
use crate::choose::{Chooser, Repr};
use crate::ir::{self, Op, PartyId, ValueId};
use plan::{Correlation, Instr, Reg, ShareOp};
use std::collections::BTreeMap;

impl Lowerer<'_, '_> {
    pub(super) fn local(&mut self, dst: Reg, op: ShareOp, args: Vec<Reg>) {
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
    }

    /// Beaver products, all in one round: (x, y, correlation, note) → shares at scale 2f.
    fn beaver_batch(
        &mut self,
        products: Vec<(Reg, Reg, Correlation, plan::Shape, String)>,
    ) -> Vec<Reg> {
        let mut steps = Vec::new();
        for (x, y, corr, out_shape, note) in products {
            let scale = self.scale_of(x) + self.scale_of(y);
            let corr = self.correlation(corr);
            let (mine, theirs) = self.messages(format!("masked operands of {note}"));
            let dst = self.share_reg(out_shape, scale, note);
            steps.push(Step {
                open: Open::Beaver { x, y },
                corr,
                mine,
                theirs,
                dst,
            });
        }
        self.exchange(&steps);
        steps.iter().map(|s| s.dst).collect()
    }

    /// Truncate shares by `bits`, all in one round: with the dealer's
    /// truncation pairs, or without a dealer from daBits (the wrap of the
    /// shares; `runtime::sharing::protocol`).
    fn trunc_batch(&mut self, xs: Vec<(Reg, u32)>) -> Vec<Reg> {
        let mut steps = Vec::new();
        for (x, bits) in xs {
            let info = self.regs[x.0 as usize].clone();
            let scale = self.scale_of(x) - bits;
            let dst = self.share_reg(
                info.shape.clone(),
                scale,
                format!("{} >> {bits}", info.note),
            );
            let shape = info.shape.clone();
            let corr = self.correlation(match self.dealer {
                Some(_) => Correlation::Trunc { shape, bits },
                None => Correlation::TruncDaBits { shape, bits },
            });
            let (mine, theirs) = self.messages(format!("masked {}", info.note));
            steps.push(Step {
                open: Open::Trunc { x },
                corr,
                mine,
                theirs,
                dst,
            });
        }
        self.exchange(&steps);
        steps.iter().map(|s| s.dst).collect()
    }

    pub(super) fn trunc1(&mut self, x: Reg) -> Reg {
        let bits = self.scale_of(x) - self.f;
        if bits == 0 {
            return x;
        }
        self.trunc_batch(vec![(x, bits)])[0]
    }

    /// Multiply a share by a public scalar constant, then truncate.
    fn mul_public_scalar(&mut self, x: Reg, c: f64, note: String) -> Reg {
        self.mul_public_scalar_bits(x, c, self.f, note)
    }

    /// The same with the constant encoded at `bits` fractional bits (more
    /// than f for a small constant whose relative error matters).
    fn mul_public_scalar_bits(&mut self, x: Reg, c: f64, bits: u32, note: String) -> Reg {
        let k = self.public_const(vec![c], format!("{c}"));
        let shape = self.regs[x.0 as usize].shape.clone();
        let scale = self.scale_of(x) + bits;
        let dst = self.share_reg(shape, scale, note);
        self.local(dst, ShareOp::MulPublic { bits }, vec![x, k]);
        self.trunc1(dst)
    }

    /// e^x on shares for `x` at most `hi`, clamped at -2^n first when
    /// `clamp` says with what bound (see `analysis`, `Graph::compare_bits`):
    /// (1 + t + t²/2)^(2^n) with t = x/2^n.
    fn exp_shares(
        &mut self,
        x: Reg,
        hi: f64,
        clamp: Option<u32>,
        shape: &plan::Shape,
        label: &str,
        x_label: &str,
    ) -> Reg {
        let f = self.f;
        let n = ir::EXP_SQUARINGS;
        let b = crate::analysis::exp_extra_bits(f, hi);
        let w = f + b;
        // Inputs that can fall below -2^n are first clamped there
        // (see `analysis`): the formula is wrong below it.
        let mut x = x;
        if let Some(bits) = clamp {
            let (lo, hi) = ir::exp_clamp(hi);
            x = self.nonlinear(
                plan::NonlinearOp::Clamp { lo, hi },
                vec![x],
                shape.clone(),
                format!("{x_label} clamped to [{lo}, {hi}]"),
                bits,
            );
        }
        let t = if b == n {
            let t = self.share_reg(shape.clone(), w, format!("{label}: x / 2^{n}"));
            self.local(t, ShareOp::Reshape, vec![x]);
            t
        } else {
            self.mul_public_scalar(x, 2f64.powi(-(n as i32)), format!("{label}: x / 2^{n}"))
        };
        let t2 = self.beaver_batch(vec![(
            t,
            t,
            Correlation::Elementwise {
                shape: shape.clone(),
            },
            shape.clone(),
            format!("{label}: t² (t = x / 2^{n})"),
        )])[0];
        // t² at 2w bits shifted by w + 1 is t²/2 at w bits (the
        // register's scale says w - 1: read it at w, as t above).
        let shifted = self.trunc_batch(vec![(t2, w + 1)])[0];
        let half = self.share_reg(shape.clone(), w, format!("{label}: t²/2"));
        self.local(half, ShareOp::Reshape, vec![shifted]);
        let one = self.public_const(vec![1.0], "1".into());
        let t1 = self.share_reg(shape.clone(), w, format!("{label}: 1 + t"));
        self.local(t1, ShareOp::AddPublic, vec![t, one]);
        let mut y = self.share_reg(shape.clone(), w, format!("{label}: 1 + t + t²/2"));
        self.local(y, ShareOp::Add, vec![t1, half]);
        for k in 1..=n {
            let square = self.beaver_batch(vec![(
                y,
                y,
                Correlation::Elementwise {
                    shape: shape.clone(),
                },
                shape.clone(),
                format!("{label}: squaring {k} of {n}"),
            )])[0];
            let bits = if k == n { 2 * w - f } else { w };
            y = self.trunc_batch(vec![(square, bits)])[0];
        }
        y
    }

    pub(super) fn shares(&mut self, v: ValueId, reprs: &[Repr], args: &[Reg]) -> Reg {
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
            // A grouped convolution's sum: its convolution triple's result.
            Op::Sum(_) if self.summed.contains(&args[0]) => args[0],
            Op::Sum(_) => {
                let dst = self.share_reg(shape, f, note);
                self.local(dst, ShareOp::Sum, vec![args[0]]);
                dst
            }
            Op::Permute(_, perm) => {
                let dst = self.share_reg(shape, f, note);
                self.local(dst, ShareOp::Permute(perm.clone()), vec![args[0]]);
                dst
            }
            Op::Reshape(_) => {
                let dst = self.share_reg(shape, f, note);
                self.local(dst, ShareOp::Reshape, vec![args[0]]);
                dst
            }
            Op::Im2col(_, w) => {
                let dst = self.share_reg(shape, f, note);
                self.local(dst, ShareOp::Im2col(w.clone()), vec![args[0]]);
                dst
            }
            Op::Concat(_) => {
                let dst = self.share_reg(shape, f, note);
                self.local(dst, ShareOp::Concat, args.to_vec());
                dst
            }
            Op::Narrow(_, start, len) => {
                let dst = self.share_reg(shape, f, note);
                let op = ShareOp::Narrow {
                    start: *start as usize,
                    len: *len as usize,
                };
                self.local(dst, op, vec![args[0]]);
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
            // A convolution of one party's clear input by the other's
            // kernels: an input-holder convolution triple on the input
            // itself (its clear patches go unread and their im2col is
            // dropped, `Lowerer::drop_unread_im2col`). A grouped one's
            // result is each output channel's sum over its patch: the
            // `Sum` that reads it takes it as it is.
            Op::Mul(..) | Op::MatMul(..) if self.chooser.holder_conv(v, reprs).is_some() => {
                let (x, window) = self.chooser.holder_conv(v, reprs).expect("matched above");
                let [Repr::Clear(px), Repr::Clear(pw)] = *reprs else {
                    unreachable!("holder_conv takes two clear operands")
                };
                let x = self.get(x, Repr::Clear(px));
                if matches!(value.op, Op::Mul(..)) {
                    let sum = self.g.users(v)[0];
                    let note = format!("{} = {}", self.g.label(sum), self.g.describe(sum));
                    let z = self.holder_product(
                        x,
                        args[1],
                        px,
                        pw,
                        Some(window),
                        self.shape(sum),
                        note,
                    );
                    self.summed.insert(z);
                    z
                } else {
                    self.holder_product(x, args[1], px, pw, Some(window), shape, note)
                }
            }
            // A grouped convolution with a dealer: one convolution triple
            // on the input itself gives each output channel's sum over its
            // patch (the patches' register goes unused, the products are
            // never formed; the `Sum` that reads this takes it as it is).
            Op::Mul(..)
                if self.chooser.conv_triple(v).is_some_and(|(x, _)| {
                    self.have.contains_key(&(x, crate::choose::Repr::Shared))
                }) =>
            {
                let (x, window) = self.chooser.conv_triple(v).expect("matched above");
                let sum = self.g.users(v)[0];
                let x = self.have[&(x, crate::choose::Repr::Shared)];
                let (input, rhs) = (
                    self.regs[x.0 as usize].shape.clone(),
                    self.regs[args[1].0 as usize].shape.clone(),
                );
                let note = format!("{} = {}", self.g.label(sum), self.g.describe(sum));
                let z = self.beaver_batch(vec![(
                    x,
                    args[1],
                    Correlation::Conv { input, window, rhs },
                    self.shape(sum),
                    note,
                )])[0];
                let z = self.trunc1(z);
                self.summed.insert(z);
                z
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
                self.holder_product(args[0], args[1], *px, *pw, None, shape, note)
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
            // A convolution with a dealer: a convolution triple on the
            // input itself (the patches' register goes unused, and its
            // im2col is dropped: `Lowerer::drop_unread_im2col`).
            Op::MatMul(..)
                if self.chooser.conv_triple(v).is_some_and(|(x, _)| {
                    self.have.contains_key(&(x, crate::choose::Repr::Shared))
                }) =>
            {
                let (x, window) = self.chooser.conv_triple(v).expect("matched above");
                let x = self.have[&(x, crate::choose::Repr::Shared)];
                let (input, rhs) = (
                    self.regs[x.0 as usize].shape.clone(),
                    self.regs[args[1].0 as usize].shape.clone(),
                );
                let z = self.beaver_batch(vec![(
                    x,
                    args[1],
                    Correlation::Conv { input, window, rhs },
                    shape,
                    note,
                )])[0];
                self.trunc1(z)
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
                        self.g
                            .clamp_bits(value.op.operands()[0], fit.domain.0, fit.domain.1),
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
            // Newton: y1 = 2c − c²·z (a public product), then
            // y ← y·(2 − z·y), two rounds of products per step.
            Op::Reciprocal(a) => {
                let rp = crate::analysis::reciprocal_plan(self.g, *a)
                    .expect("the analysis refuses a reciprocal without a plan (E0304)");
                let z = if rp.negate {
                    let z = self.share_reg(shape.clone(), f, format!("-{}", self.g.label(*a)));
                    self.local(z, ShareOp::Neg, vec![args[0]]);
                    z
                } else {
                    args[0]
                };
                let c = rp.guess;
                let t = self.mul_public_scalar(z, -c * c, format!("{label}: -c²·z"));
                let two_c = self.public_const(vec![2.0 * c], format!("{}", 2.0 * c));
                let mut y = self.share_reg(shape.clone(), f, format!("{label}: Newton step 1"));
                self.local(y, ShareOp::AddPublic, vec![t, two_c]);
                let two = self.public_const(vec![2.0], "2".into());
                for k in 2..=rp.iterations {
                    let zy = self.beaver_batch(vec![(
                        z,
                        y,
                        Correlation::Elementwise {
                            shape: shape.clone(),
                        },
                        shape.clone(),
                        format!("{label}: z·y, step {k}"),
                    )])[0];
                    let zy = self.trunc1(zy);
                    let v = self.share_reg(shape.clone(), f, format!("{label}: 2 − z·y, step {k}"));
                    self.local(v, ShareOp::PublicSub, vec![zy, two]);
                    let next = self.beaver_batch(vec![(
                        y,
                        v,
                        Correlation::Elementwise {
                            shape: shape.clone(),
                        },
                        shape.clone(),
                        format!("{label}: Newton step {k}"),
                    )])[0];
                    y = self.trunc1(next);
                }
                if rp.negate {
                    let dst = self.share_reg(shape, f, note);
                    self.local(dst, ShareOp::Neg, vec![y]);
                    dst
                } else {
                    y
                }
            }
            // (1 + t + t²/2)^(2^n) with t = x/2^n: a scaling, one product
            // for t² (halved by truncating one bit more), two additions, n
            // squarings. At f + b fractional bits (`exp_extra_bits`): with
            // b = n, the share of x read at f + n bits is t exactly.
            Op::Exp(a) => {
                let hi = self.g.node(*a).range.hi;
                let clamp = self
                    .chooser
                    .clamped
                    .contains(&v)
                    .then(|| self.g.compare_bits(v));
                let x_label = self.g.label(*a);
                self.exp_shares(args[0], hi, clamp, &shape, &label, &x_label)
            }
            // 1/√x by Newton (`analysis::rsqrt_plan`): y1 = 1.5c − (c³/2)·x
            // (a public product), then y ← y·(3/2 − x·y²/2), three rounds
            // of products per step (the halving is one more truncated bit).
            Op::Rsqrt(a) => {
                let rp = crate::analysis::rsqrt_plan(self.g, *a)
                    .expect("the analysis refuses 1/√x without a plan (E0304)");
                let x = args[0];
                let c = rp.guess;
                let t = self.mul_public_scalar_bits(
                    x,
                    -c * c * c / 2.0,
                    f + crate::analysis::RSQRT_GUESS_BITS,
                    format!("{label}: -(c³/2)·x"),
                );
                let k = self.public_const(vec![1.5 * c], format!("{}", 1.5 * c));
                let mut y = self.share_reg(shape.clone(), f, format!("{label}: Newton step 1"));
                self.local(y, ShareOp::AddPublic, vec![t, k]);
                let three_halves = self.public_const(vec![1.5], "1.5".into());
                let elementwise = Correlation::Elementwise {
                    shape: shape.clone(),
                };
                for step in 2..=rp.iterations {
                    let yy = self.beaver_batch(vec![(
                        y,
                        y,
                        elementwise.clone(),
                        shape.clone(),
                        format!("{label}: y², step {step}"),
                    )])[0];
                    let yy = self.trunc1(yy);
                    let xyy = self.beaver_batch(vec![(
                        x,
                        yy,
                        elementwise.clone(),
                        shape.clone(),
                        format!("{label}: x·y², step {step}"),
                    )])[0];
                    // At 2f bits shifted by f + 1: x·y²/2 at f bits (the
                    // register's scale says f − 1: read it at f).
                    let shifted = self.trunc_batch(vec![(xyy, f + 1)])[0];
                    let half =
                        self.share_reg(shape.clone(), f, format!("{label}: x·y²/2, step {step}"));
                    self.local(half, ShareOp::Reshape, vec![shifted]);
                    let u = self.share_reg(
                        shape.clone(),
                        f,
                        format!("{label}: 3/2 − x·y²/2, step {step}"),
                    );
                    self.local(u, ShareOp::PublicSub, vec![half, three_halves]);
                    let next = self.beaver_batch(vec![(
                        y,
                        u,
                        elementwise.clone(),
                        shape.clone(),
                        format!("{label}: Newton step {step}"),
                    )])[0];
                    y = self.trunc1(next);
                }
                y
            }
            // ln x: the tangent y0 = ln c − 1 + x/c (one public product),
            // then Newton's steps y ← y + x·e^(−y) − 1 (an `exp` and one
            // product each), as `analysis::log_plan` planned them.
            Op::Log(a) => {
                let lp = crate::analysis::log_plan(self.g, *a)
                    .expect("the analysis refuses a log without a plan (E0304)");
                let x = args[0];
                let t = self.mul_public_scalar(x, 1.0 / lp.c, format!("{label}: x / {}", lp.c));
                let k = self.public_const(vec![lp.c.ln() - 1.0], format!("ln {} - 1", lp.c));
                let mut y = self.share_reg(shape.clone(), f, format!("{label}: tangent"));
                self.local(y, ShareOp::AddPublic, vec![t, k]);
                let one = self.public_const(vec![1.0], "1".into());
                for step in 1..=lp.iterations {
                    let neg = self.share_reg(shape.clone(), f, format!("{label}: -y, step {step}"));
                    self.local(neg, ShareOp::Neg, vec![y]);
                    let z = self.exp_shares(
                        neg,
                        lp.exp_range.hi,
                        None,
                        &shape,
                        &format!("{label}: e^-y, step {step}"),
                        &format!("-y, step {step}"),
                    );
                    let p = self.beaver_batch(vec![(
                        x,
                        z,
                        Correlation::Elementwise {
                            shape: shape.clone(),
                        },
                        shape.clone(),
                        format!("{label}: x·e^-y, step {step}"),
                    )])[0];
                    let p = self.trunc1(p);
                    let s = self.share_reg(
                        shape.clone(),
                        f,
                        format!("{label}: y + x·e^-y, step {step}"),
                    );
                    self.local(s, ShareOp::Add, vec![y, p]);
                    y = self.share_reg(shape.clone(), f, format!("{label}: Newton step {step}"));
                    self.local(y, ShareOp::SubPublic, vec![s, one]);
                }
                y
            }
            Op::Relu(_) => {
                let bits = self.g.compare_bits(v);
                self.nonlinear(plan::NonlinearOp::Relu, args.to_vec(), shape, note, bits)
            }
            Op::Max(..) | Op::Min(..) => {
                let op = if matches!(value.op, Op::Max(..)) {
                    plan::NonlinearOp::Max
                } else {
                    plan::NonlinearOp::Min
                };
                let args = self.same_shape(args, &shape);
                let bits = self.g.compare_bits(v);
                self.nonlinear(op, args, shape, note, bits)
            }
            Op::MaxReduce(a) if self.fused.contains(&(*a, reprs[0])) => {
                self.fused_tournament(args[0], 0, shape, note, self.g.compare_bits(v))
            }
            Op::Argmax(a) if self.fused.contains(&(*a, reprs[0])) => {
                self.fused_tournament(args[0], 1, shape, note, self.g.compare_bits(v))
            }
            Op::MaxReduce(_) => {
                let bits = self.g.compare_bits(v);
                self.nonlinear(
                    plan::NonlinearOp::MaxReduce,
                    args.to_vec(),
                    shape,
                    note,
                    bits,
                )
            }
            // min(x) = -max(-x): negations are local.
            Op::MinReduce(_) => {
                let x_shape = self.regs[args[0].0 as usize].shape.clone();
                let neg = self.share_reg(x_shape, f, format!("-{label}'s operand"));
                self.local(neg, ShareOp::Neg, vec![args[0]]);
                let max = self.nonlinear(
                    plan::NonlinearOp::MaxReduce,
                    vec![neg],
                    shape.clone(),
                    format!("-{label}"),
                    self.g.compare_bits(v),
                );
                let dst = self.share_reg(shape, f, note);
                self.local(dst, ShareOp::Neg, vec![max]);
                dst
            }
            Op::Argmax(_) => {
                let bits = self.g.compare_bits(v);
                self.nonlinear(plan::NonlinearOp::Argmax, args.to_vec(), shape, note, bits)
            }
            Op::Clamp(_, lo, hi) => self.nonlinear(
                plan::NonlinearOp::Clamp { lo: *lo, hi: *hi },
                args.to_vec(),
                shape,
                note,
                self.g.compare_bits(v),
            ),
            other => unreachable!("the chooser never picks shares for {}", other.mnemonic()),
        }
    }

    /// `x @ w` with `x` in the clear at `px` and `w` at `pw`, by an
    /// input-holder triple: each side sends its masked input once. With a
    /// `window`, `x` is a convolution's input and the product `x ⊛ w`
    /// (`plan::Correlation::HolderConv`: `x − a` is the input's size).
    #[allow(clippy::too_many_arguments)]
    fn holder_product(
        &mut self,
        x: Reg,
        w: Reg,
        px: PartyId,
        pw: PartyId,
        window: Option<plan::Window>,
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
        let corr = self.correlation(match window {
            Some(window) => Correlation::HolderConv {
                input: xs.clone(),
                window,
                rhs: ws.clone(),
                lhs_holder: pi(px),
            },
            None => Correlation::HolderMatMul {
                lhs: xs.clone(),
                rhs: ws.clone(),
                lhs_holder: pi(px),
            },
        });
        let (mine, theirs) = self.messages(format!("masked input for {note}"));
        let dst = self.share_reg(shape.clone(), 2 * f, note);
        self.exchange(&[Step {
            open: Open::Holder { x: own_x, y: own_w },
            corr,
            mine,
            theirs,
            dst,
        }]);
        self.trunc1(dst)
    }

    /// A comparison-based operation, run jointly by both computing parties,
    /// on values within `2^bits` (`Graph::compare_bits`).
    fn nonlinear(
        &mut self,
        op: plan::NonlinearOp,
        args: Vec<Reg>,
        shape: plan::Shape,
        note: String,
        bits: u32,
    ) -> Reg {
        self.compares = true;
        let dst = self.share_reg(shape, self.f, note);
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
                    bits,
                },
            );
        }
        dst
    }

    /// Entry `entry` (0: the maximum, 1: the argmax) of the one tournament
    /// on `x` that serves both (emitted the first time either is asked for).
    fn fused_tournament(
        &mut self,
        x: Reg,
        entry: usize,
        shape: plan::Shape,
        note: String,
        bits: u32,
    ) -> Reg {
        let with = |n: u64| {
            let mut s = shape.clone();
            s.0.push(plan::Dim::Known(n));
            s
        };
        let stacked = match self.tournaments.get(&x) {
            Some(r) => *r,
            None => {
                let what = format!("max and argmax of {}", self.regs[x.0 as usize].note);
                let r = self.nonlinear(plan::NonlinearOp::MaxArgmax, vec![x], with(2), what, bits);
                self.tournaments.insert(x, r);
                r
            }
        };
        let one = self.share_reg(with(1), self.f, format!("{note} (stacked)"));
        self.local(
            one,
            ShareOp::Narrow {
                start: entry,
                len: 1,
            },
            vec![stacked],
        );
        let dst = self.share_reg(shape, self.f, note);
        self.local(dst, ShareOp::Reshape, vec![one]);
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
}

fn integral_scalar(v: &ir::Value) -> Option<i64> {
    match &v.op {
        Op::Const { data } if data.len() == 1 && data[0].fract() == 0.0 && data[0].abs() < 1e15 => {
            Some(data[0] as i64)
        }
        _ => None,
    }
}
