//! Lowering with Paillier: homomorphic operations by the party that holds
//! the ciphertexts (the other party owns the key).

use super::{pi, Lowerer};
use crate::choose::Repr;
use crate::ir::{Op, PartyId, ValueId};
use plan::{HomOp, Instr, Kind, Reg};

impl Lowerer<'_, '_> {
    pub(super) fn paillier(&mut self, v: ValueId, k: PartyId, reprs: &[Repr], args: &[Reg]) -> Reg {
        let h = self.other(k);
        let value = self.g.value(v);
        let note = format!("{} = {}", self.g.label(v), self.g.describe(v));
        let shape = self.shape(v);
        let f = self.f;
        let cipher = |i: usize| matches!(reprs[i], Repr::Cipher(_));
        let (op, a, scale) = match &value.op {
            Op::MatMul(..) => {
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
                let (c, p) = if cipher(0) {
                    (args[0], args[1])
                } else {
                    (args[1], args[0])
                };
                (HomOp::Mul { bits: f }, vec![c, p], self.scale_of(c) + f)
            }
            Op::Add(..) | Op::Sub(..) => {
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
}
