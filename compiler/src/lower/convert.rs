//! Lowering of conversions between representations: public or clear
//! values to shares or ciphertexts, ciphertexts to shares.

use super::{pi, Lowerer};
use crate::choose::Repr;
use crate::ir::ValueId;
use plan::{Instr, Kind, Reg};

impl Lowerer<'_, '_> {
    pub(super) fn convert(&mut self, v: ValueId, from: Repr, to: Repr) -> Reg {
        let src = self.get(v, from);
        let shape = self.shape(v);
        let label = self.g.label(v);
        let f = self.f;
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
                share
            }
            _ => unreachable!("the chooser offers no conversion {from:?} → {to:?}"),
        }
    }
}
