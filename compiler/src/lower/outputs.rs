//! Lowering of outputs: each is revealed to its recipients from the
//! representation the chooser picked, and clamped to its proven range.

use super::{pi, Lowerer};
use crate::choose::Repr;
use crate::ir::{self, PartyId, ValueId};
use plan::{ClearOp, Instr, Kind, Reg};
use std::collections::BTreeMap;

impl Lowerer<'_, '_> {
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

    pub(super) fn output(&mut self, index: u32, o: &ir::Output, from: Repr) {
        let v = o.value;
        let src = self.get(v, from);
        let shape = self.shape(v);
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
            }
        }
    }
}
