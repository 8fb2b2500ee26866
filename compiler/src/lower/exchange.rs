//! The one pattern every interactive step on shares follows: each computing
//! party opens a masked message, sends it, receives the peer's, and closes.
//! Beaver products, truncations and input-holder products all emit it
//! through [`Lowerer::exchange`]; a batch shares one send and one receive,
//! so it costs one round however many steps it holds.

use super::{pi, Lowerer};
use plan::{Correlation, Instr, Kind, Reg};

/// What a step opens: the operands its message masks.
#[derive(Clone, Copy)]
pub(super) enum Open {
    /// `x − a`, `y − b` for a Beaver triple.
    Beaver { x: Reg, y: Reg },
    /// `x + r` for a truncation pair, or masked bits for daBits.
    Trunc { x: Reg },
    /// The party's own input, masked, for an input-holder triple.
    Holder { x: Reg, y: Reg },
}

/// One step of an exchange: its correlation, the message each party sends
/// (`mine`, the same register number at both) and receives (`theirs`), and
/// the share it closes into.
pub(super) struct Step {
    pub open: Open,
    pub corr: u32,
    pub mine: Reg,
    pub theirs: Reg,
    pub dst: Reg,
}

impl Step {
    fn open(&self) -> Instr {
        let (msg, corr) = (self.mine, self.corr);
        match self.open {
            Open::Beaver { x, y } => Instr::BeaverOpen { msg, x, y, corr },
            Open::Trunc { x } => Instr::TruncOpen { msg, x, corr },
            Open::Holder { x, y } => Instr::HolderOpen { msg, x, y, corr },
        }
    }

    fn close(&self, leader: bool) -> Instr {
        let (dst, mine, theirs, corr) = (self.dst, self.mine, self.theirs, self.corr);
        match self.open {
            Open::Beaver { .. } => Instr::BeaverClose {
                dst,
                mine,
                theirs,
                corr,
                leader,
            },
            Open::Trunc { .. } => Instr::TruncClose {
                dst,
                mine,
                theirs,
                corr,
                leader,
            },
            Open::Holder { .. } => Instr::HolderClose {
                dst,
                mine,
                theirs,
                corr,
                leader,
            },
        }
    }
}

impl Lowerer<'_, '_> {
    /// Adds a correlation to the plan; returns its index.
    pub(super) fn correlation(&mut self, c: Correlation) -> u32 {
        self.correlations.push(c);
        self.correlations.len() as u32 - 1
    }

    /// The message registers of one step: this party's (`note`) and the
    /// peer's.
    pub(super) fn messages(&mut self, note: String) -> (Reg, Reg) {
        let mine = self.reg(Kind::Message, plan::Shape::scalar(), note.clone());
        let theirs = self.reg(
            Kind::Message,
            plan::Shape::scalar(),
            format!("peer's {note}"),
        );
        (mine, theirs)
    }

    /// Emits `steps` at both computing parties: every open, one send, one
    /// receive, every close (the first computing party leads).
    pub(super) fn exchange(&mut self, steps: &[Step]) {
        if steps.is_empty() {
            return;
        }
        for (i, p) in self.p.into_iter().enumerate() {
            let other = pi(self.p[1 - i]);
            for s in steps {
                self.emit(p, s.open());
            }
            self.emit(
                p,
                Instr::Send {
                    to: other,
                    regs: steps.iter().map(|s| s.mine).collect(),
                },
            );
            self.emit(
                p,
                Instr::Recv {
                    from: other,
                    regs: steps.iter().map(|s| s.theirs).collect(),
                },
            );
            for s in steps {
                self.emit(p, s.close(i == 0));
            }
        }
    }
}
