//! Matrix products by RLWE: the holder of `x` (or of a share of it)
//! encrypts it under its own key, the holder of `W` (or of a share of it)
//! multiplies, masks with its share and answers; see the `rlwe` crate and
//! ARCHITECTURE.md for what each party sees.

use super::{pi, Lowerer};
use crate::choose::Repr;
use crate::ir::{PartyId, ValueId};
use plan::{ClearOp, Instr, Kind, Reg, ShareOp};

impl Lowerer<'_, '_> {
    /// [`Lowerer::pass`] in the preprocessing of prepared products.
    fn pass_pre(&mut self, from: PartyId, to: PartyId, regs: Vec<Reg>) {
        self.rlwe_pre[from.index()].push(Instr::Send {
            to: pi(to),
            regs: regs.clone(),
        });
        self.rlwe_pre[to.index()].push(Instr::Recv {
            from: pi(from),
            regs,
        });
    }

    pub(super) fn rlwe(&mut self, v: ValueId, reprs: &[Repr], args: &[Reg]) -> Reg {
        // A grouped convolution's products (`Chooser::rlwe_grouped`): the
        // product computes their `Sum`, which takes this result as it is.
        let grouped = self.chooser.rlwe_grouped(v);
        let out = grouped.as_ref().map_or(v, |gc| gc.sum);
        let label = self.g.label(out);
        let note = format!("{label} = {}", self.g.describe(out));
        let shape = self.shape(out);
        let f = self.f;
        let w_value = self.g.value(v).op.operands()[1];
        let untruncated = format!("{note} (untruncated)");
        // A convolution's patches times clear kernels: HomConv on the input
        // itself when the chooser finds it cheaper (and the input is there
        // in the patches' representation, as it is when they were cut locally).
        let conv = self
            .chooser
            .rlwe_conv(v, reprs)
            .and_then(|(x, window)| Some((*self.have.get(&(x, reprs[0]))?, window)));
        // A grouped one by one product per group, where cheaper.
        if let Some(gc) = grouped
            .as_ref()
            .filter(|_| self.chooser.rlwe_by_groups(v, reprs))
        {
            let w_bits = match reprs[1] {
                Repr::Shared => plan::params::RLWE_MAX_W_BITS,
                r => self.w_bits(w_value, r),
            };
            let z = self.rlwe_groups(gc, reprs, args[0], args[1], w_bits, shape, &note, &label);
            let z = self.trunc1(z);
            self.summed.insert(z);
            return z;
        }
        // Else it multiplies the ungrouped patches (unless HomConv reads
        // the clear input itself) by the block-diagonal kernels, both
        // rearranged locally where they are.
        let args: Vec<Reg> = match &grouped {
            Some(gc) => {
                let x = if conv.is_some() && reprs[0] != Repr::Shared {
                    args[0]
                } else {
                    self.ungrouped_patches(args[0], reprs[0], gc, &label)
                };
                let w = self.block_diagonal(args[1], reprs[1], gc, &label);
                vec![x, w]
            }
            None => args.to_vec(),
        };
        let args = &args[..];
        let z = match *reprs {
            // x clear at px, W clear at pw: px encrypts x.
            [Repr::Clear(px), Repr::Clear(pw)] => {
                let dst = self.share_reg(shape, 2 * f, untruncated);
                let w_bits = self.w_bits(w_value, reprs[1]);
                let (x, conv) = conv.map_or((args[0], None), |(x, w)| (x, Some(w)));
                let flavour = self.flavour(v, reprs, conv);
                self.rlwe_product(px, x, None, pw, args[1], w_bits, dst, flavour);
                dst
            }
            // x shared, W clear at pw: the other party encrypts its share,
            // pw adds its own share's product locally.
            [Repr::Shared, Repr::Clear(pw)] => {
                let dst = self.share_reg(shape, 2 * f, untruncated);
                let w_bits = self.w_bits(w_value, reprs[1]);
                let px = self.other(pw);
                let (x, conv) = conv.map_or((args[0], None), |(x, w)| (x, Some(w)));
                let flavour = self.flavour(v, reprs, conv);
                self.rlwe_product(px, x, Some(args[0]), pw, args[1], w_bits, dst, flavour);
                dst
            }
            // Both shared: x0 W1 from P0 to P1 (P1 adds x1 W1), x1 W0 from
            // P1 to P0 (P0 adds x0 W0); the four terms sum to x @ W.
            [Repr::Shared, Repr::Shared] => {
                let [p0, p1] = self.p;
                let bits = plan::params::RLWE_MAX_W_BITS;
                let half = |l: &mut Self, note: String| l.share_reg(shape.clone(), 2 * f, note);
                let a = half(
                    self,
                    format!("{note} (x of {} times W)", self.g.model.party(p0).name),
                );
                let whole = Flavour::Whole(None);
                self.rlwe_product(p0, args[0], Some(args[0]), p1, args[1], bits, a, whole);
                let b = half(
                    self,
                    format!("{note} (x of {} times W)", self.g.model.party(p1).name),
                );
                let whole = Flavour::Whole(None);
                self.rlwe_product(p1, args[0], Some(args[0]), p0, args[1], bits, b, whole);
                let dst = self.share_reg(shape.clone(), 2 * f, untruncated);
                self.local(dst, ShareOp::Add, vec![a, b]);
                dst
            }
            _ => unreachable!("the chooser offers RLWE only for these operand layouts"),
        };
        let z = self.trunc1(z);
        if grouped.is_some() {
            self.summed.insert(z);
        }
        z
    }

    /// Local data movement `mv` of `args` (clear at a party, or shares at
    /// their scale) into a new register of `shape`.
    fn moved(
        &mut self,
        repr: Repr,
        mv: Move,
        args: Vec<Reg>,
        shape: plan::Shape,
        note: String,
    ) -> Reg {
        match repr {
            Repr::Clear(p) => {
                let dst = self.reg(Kind::Clear, shape, note);
                let op = match mv {
                    Move::Reshape => ClearOp::Reshape,
                    Move::Permute(perm) => ClearOp::Permute(perm),
                    Move::Narrow(start, len) => ClearOp::Narrow { start, len },
                    Move::Concat => ClearOp::Concat,
                    Move::Zero => ClearOp::Sub,
                };
                self.emit(p, Instr::Clear { dst, op, args });
                dst
            }
            Repr::Shared => {
                let scale = self.scale_of(args[0]);
                let dst = self.share_reg(shape, scale, note);
                let op = match mv {
                    Move::Reshape => ShareOp::Reshape,
                    Move::Permute(perm) => ShareOp::Permute(perm),
                    Move::Narrow(start, len) => ShareOp::Narrow { start, len },
                    Move::Concat => ShareOp::Concat,
                    Move::Zero => ShareOp::Sub,
                };
                self.local(dst, op, args);
                dst
            }
            _ => unreachable!("RLWE operands are clear at a party or shares"),
        }
    }

    /// A grouped convolution's patches `[rows.., Cout, R]` (output channel
    /// `o = j·m + i` reading group `j`'s `R = C/groups·K` entries, `m`
    /// per group) as the ungrouped patches `[rows.., C·K]`: group `j`'s
    /// patch is the first copy of it, and channel `j·C/groups + c'` at
    /// kernel offset `k` is column `(j·C/groups + c')·K + k = j·R + c'·K + k`
    /// (`plan::Window`'s layouts). Local moves: reshape, and with `m > 1`
    /// the copies moved last and the first kept.
    fn ungrouped_patches(
        &mut self,
        cols: Reg,
        repr: Repr,
        gc: &crate::choose::GroupedConv,
        label: &str,
    ) -> Reg {
        let shape = self.regs[cols.0 as usize].shape.clone();
        let prefix = shape.0[..shape.0.len() - 2].to_vec();
        let (g, m, r) = (gc.groups, gc.cout / gc.groups, gc.r);
        let with = |last: &[usize]| {
            let mut d = prefix.clone();
            d.extend(last.iter().map(|&n| plan::Dim::Known(n as u64)));
            plan::Shape(d)
        };
        let note = format!("ungrouped patches for {label}");
        if m == 1 {
            return self.moved(repr, Move::Reshape, vec![cols], with(&[g * r]), note);
        }
        let split = self.moved(
            repr,
            Move::Reshape,
            vec![cols],
            with(&[g, m, r]),
            format!("{note} (groups, copies)"),
        );
        let n = prefix.len() + 3;
        let perm: Vec<usize> = (0..n - 2).chain([n - 1, n - 2]).collect();
        let last = self.moved(
            repr,
            Move::Permute(perm),
            vec![split],
            with(&[g, r, m]),
            format!("{note} (copies last)"),
        );
        let first = self.moved(
            repr,
            Move::Narrow(0, 1),
            vec![last],
            with(&[g, r, 1]),
            format!("{note} (one copy)"),
        );
        self.moved(repr, Move::Reshape, vec![first], with(&[g * r]), note)
    }

    /// A grouped convolution's kernels `W` `[Cout, R]` as the
    /// block-diagonal `[C·K, Cout]` the ungrouped patches multiply: row
    /// `j·R + r`, column `j·m + i` holds `W[j·m + i, r]`, every entry
    /// outside group `j`'s block 0. By local moves only (no new
    /// operation in the plan): `D = W` as `[R, g, m]` (`D[r, j, i]`), then
    /// `m·g` zeros after each `[R, j]` row (`[R, g, (g+1)·m]`); read row
    /// by row, block `j` starts at `j·(g+1)·m`, so the first `g·g·m` of
    /// each `r`'s entries cut into rows of `g·m` put it at column
    /// `j·(g+1)·m − j·g·m = j·m` of row `j` with zeros around it (the
    /// usual diagonal-by-reshape of a zero-padded array); then `[g, R,
    /// g·m]` and `[g·R, Cout]`. `W` is small (`Cout·R` entries, `g + 1`
    /// times that moved).
    fn block_diagonal(
        &mut self,
        w: Reg,
        repr: Repr,
        gc: &crate::choose::GroupedConv,
        label: &str,
    ) -> Reg {
        let (g, m, r) = (gc.groups, gc.cout / gc.groups, gc.r);
        let shape =
            |d: &[usize]| plan::Shape(d.iter().map(|&n| plan::Dim::Known(n as u64)).collect());
        let note = |what: &str| format!("block-diagonal kernels for {label} ({what})");
        let split = self.moved(
            repr,
            Move::Reshape,
            vec![w],
            shape(&[g, m, r]),
            note("groups"),
        );
        let d = self.moved(
            repr,
            Move::Permute(vec![2, 0, 1]),
            vec![split],
            shape(&[r, g, m]),
            note("by group"),
        );
        let zero = self.moved(
            repr,
            Move::Zero,
            vec![d, d],
            shape(&[r, g, m]),
            note("zeros"),
        );
        let padded = self.moved(
            repr,
            Move::Concat,
            std::iter::once(d)
                .chain(std::iter::repeat_n(zero, g))
                .collect(),
            shape(&[r, g, (g + 1) * m]),
            note("padded"),
        );
        let flat = self.moved(
            repr,
            Move::Reshape,
            vec![padded],
            shape(&[r, g * (g + 1) * m]),
            note("flat"),
        );
        let cut = self.moved(
            repr,
            Move::Narrow(0, g * g * m),
            vec![flat],
            shape(&[r, g * g * m]),
            note("cut"),
        );
        let rows = self.moved(
            repr,
            Move::Reshape,
            vec![cut],
            shape(&[r, g, g * m]),
            note("diagonal"),
        );
        let blocks = self.moved(
            repr,
            Move::Permute(vec![1, 0, 2]),
            vec![rows],
            shape(&[g, r, g * m]),
            note("blocks"),
        );
        self.moved(
            repr,
            Move::Reshape,
            vec![blocks],
            shape(&[g * r, gc.cout]),
            format!("block-diagonal kernels for {label}"),
        )
    }

    /// How the product `v` with `W` clear at a party runs: natively as a
    /// convolution (`conv`), masked or prepared when the chooser says so,
    /// else in one piece.
    fn flavour(&self, v: ValueId, reprs: &[Repr], conv: Option<plan::Window>) -> Flavour {
        if let Some(window) = conv {
            // Masked when its kernels are the server's input, as read there.
            let kernels = match (self.chooser.rlwe_masked_kernels(v, reprs), reprs[1]) {
                (Some(k), Repr::Clear(pw)) if self.chooser.rlwe_masked(v, reprs) => {
                    self.have.get(&(k, Repr::Clear(pw))).copied()
                }
                _ => None,
            };
            match kernels {
                Some(kernels) => Flavour::MaskedConv(window, kernels),
                None => Flavour::Whole(Some(window)),
            }
        } else if self.chooser.rlwe_masked(v, reprs) {
            Flavour::Masked
        } else if self.chooser.rlwe_prepared(v, reprs) {
            Flavour::Prepared
        } else {
            Flavour::Whole(None)
        }
    }

    fn w_bits(&self, w: ValueId, repr: Repr) -> u32 {
        self.chooser
            .rlwe_w_bits(w, repr)
            .expect("the chooser offers RLWE only when W's range fits")
    }

    /// Moves the steps by which `server` computes `w` (inputs, constants
    /// and clear steps, with everything they read) from its online
    /// program to the end of its RLWE preprocessing, in their order, so
    /// that the preprocessing can read `w`. Nothing moves, and false
    /// comes back, if any of those steps is something else (a receive, a
    /// step on shares): the chooser offers computed weights only where
    /// they are not ([`crate::choose::Chooser::computed_alone`]).
    fn hoist_to_pre(&mut self, server: PartyId, w: Reg) -> bool {
        let s = server.index();
        let written_before = |pre: &[Instr], r: Reg| pre.iter().any(|i| i.writes().contains(&r));
        let mut take = std::collections::BTreeSet::new();
        let mut stack = vec![w];
        while let Some(r) = stack.pop() {
            if written_before(&self.rlwe_pre[s], r) {
                continue;
            }
            let Some(at) = self.programs[s]
                .iter()
                .position(|i| i.writes().contains(&r))
            else {
                return false;
            };
            match &self.programs[s][at] {
                Instr::Input { .. } | Instr::Const { .. } => {}
                Instr::Clear { args, .. } => stack.extend(args.iter().copied()),
                _ => return false,
            }
            take.insert(at);
        }
        let program = std::mem::take(&mut self.programs[s]);
        for (at, ins) in program.into_iter().enumerate() {
            if take.contains(&at) {
                self.rlwe_pre[s].push(ins);
            } else {
                self.programs[s].push(ins);
            }
        }
        true
    }

    /// The input `w` binds at `server`, if `w` is one (a prepared
    /// product's preprocessing reads it from there).
    fn input_of(&self, server: PartyId, w: Reg) -> Option<u32> {
        self.programs[server.index()].iter().find_map(|i| match i {
            Instr::Input { dst, input } if *dst == w => Some(*input),
            _ => None,
        })
    }

    /// One RLWE product into `dst` (shares at both parties): `client`
    /// encrypts `x` (its clear value or its share), `server` multiplies by
    /// `w` and adds `add @ w` (its share of `x`) to its share. The
    /// client's public key travels with its first query. With a `conv`
    /// window, `x` is the convolution's input and `add` its patches
    /// ([`Instr::RlweQuery`]). Prepared (when `w` is the server's input
    /// and the client's key is not already made online), the product's
    /// `x`-independent part goes to the preprocessing
    /// ([`Lowerer::rlwe_prepared_product`]).
    #[allow(clippy::too_many_arguments)]
    fn rlwe_product(
        &mut self,
        client: PartyId,
        x: Reg,
        add: Option<Reg>,
        server: PartyId,
        w: Reg,
        w_bits: u32,
        dst: Reg,
        flavour: Flavour,
    ) {
        // Prepared or masked, the preprocessing reads W from the server's
        // input (a masked convolution's, its kernel input): `read`, and
        // `masked` (with the convolution's window, if any) or prepared.
        // Whole, or when the client's key is made online, the product runs
        // online, as a convolution with `conv`.
        let (read, conv, masked) = match flavour {
            Flavour::Whole(conv) => (None, conv, None),
            Flavour::Prepared => (Some(w), None, None),
            Flavour::Masked => (Some(w), None, Some(None)),
            Flavour::MaskedConv(window, kernels) => {
                (Some(kernels), Some(window.clone()), Some(Some(window)))
            }
        };
        // Its key is in the preprocessing (`Lowerer::run`). A masked
        // matrix product whose `W` the server computes alone
        // (`Chooser::computed_alone`) has those steps moved into the
        // preprocessing, where its answer reads `W`'s register.
        let weights = read.and_then(|r| self.input_of(server, r));
        let computed = weights.is_none()
            && matches!(masked, Some(None))
            && self.rlwe_pre_keys.contains(&client)
            && self.hoist_to_pre(server, w);
        if (weights.is_some() || computed) && self.rlwe_pre_keys.contains(&client) {
            let product = Prepared {
                client,
                x,
                add,
                server,
                w,
                weights,
                w_bits,
                dst,
            };
            return match (masked, weights) {
                (Some(window), _) => self.rlwe_masked_product(product, window),
                (None, Some(weights)) => self.rlwe_prepared_product(product, weights),
                (None, None) => unreachable!("a prepared product reads W from an input"),
            };
        }
        self.rlwe_whole(client, server, vec![(x, add, w, dst)], w_bits, conv);
    }

    /// RLWE products in one piece online, `(x, add, w, dst)` each as in
    /// [`Lowerer::rlwe_product`], all with `client` encrypting and
    /// `server` multiplying: every query in one message (after the
    /// client's key, the first time), every response in one, so one round
    /// trip however many products.
    fn rlwe_whole(
        &mut self,
        client: PartyId,
        server: PartyId,
        items: Vec<(Reg, Option<Reg>, Reg, Reg)>,
        w_bits: u32,
        conv: Option<plan::Window>,
    ) {
        let mut first = Vec::new();
        let key = match self.rlwe_keys.get(&client) {
            Some((key, _)) => *key,
            None => {
                let key = self.reg(
                    Kind::Message,
                    plan::Shape::scalar(),
                    format!("RLWE public key of {}", self.g.model.party(client).name),
                );
                self.emit(client, Instr::RlweKeyGen { public: key });
                self.rlwe_keys.insert(client, (key, false));
                key
            }
        };
        if let Some((_, sent)) = self.rlwe_keys.get_mut(&client) {
            if !*sent {
                *sent = true;
                first.push(key);
            }
        }
        let mut messages = Vec::new();
        for &(x, _, _, dst) in &items {
            let what = self.regs[dst.0 as usize].note.clone();
            let query = self.reg(
                Kind::Message,
                plan::Shape::scalar(),
                format!("RLWE query for {what}"),
            );
            let response = self.reg(
                Kind::Message,
                plan::Shape::scalar(),
                format!("RLWE response for {what}"),
            );
            first.push(query);
            messages.push((query, response));
            self.emit(
                client,
                Instr::RlweQuery {
                    msg: query,
                    x,
                    dst,
                    w_bits,
                    conv: conv.clone(),
                    prepared: false,
                },
            );
        }
        self.pass(client, server, first);
        for (&(_, add, w, dst), &(query, response)) in items.iter().zip(&messages) {
            self.emit(
                server,
                Instr::RlweRespond {
                    msg: response,
                    dst,
                    query,
                    key,
                    w,
                    add,
                    w_bits,
                    conv: conv.clone(),
                    prepared: false,
                    weights: None,
                },
            );
        }
        self.pass(server, client, messages.iter().map(|m| m.1).collect());
        for (&(.., dst), &(_, response)) in items.iter().zip(&messages) {
            self.emit(client, Instr::RlweFinish { dst, response });
        }
    }

    /// A grouped convolution ([`Chooser::rlwe_by_groups`]) by one RLWE
    /// product per group: group `j`'s patches (columns `j·R..` of the
    /// ungrouped patches) by its kernels (`W`'s rows `j·m..` transposed,
    /// `[R, m]`), the products' queries in one message; the groups'
    /// results joined along the channels (`o = j·m + i`) are the sums
    /// `[rows.., Cout]`, untruncated. Operand layouts as for one product.
    ///
    /// [`Chooser::rlwe_by_groups`]: crate::choose::Chooser::rlwe_by_groups
    #[allow(clippy::too_many_arguments)]
    fn rlwe_groups(
        &mut self,
        gc: &crate::choose::GroupedConv,
        reprs: &[Repr],
        cols: Reg,
        w: Reg,
        w_bits: u32,
        shape: plan::Shape,
        note: &str,
        label: &str,
    ) -> Reg {
        let (g, m, r) = (gc.groups, gc.cout / gc.groups, gc.r);
        let f = self.f;
        let x = self.ungrouped_patches(cols, reprs[0], gc, label);
        let prefix = {
            let d = &self.regs[x.0 as usize].shape.0;
            d[..d.len() - 1].to_vec()
        };
        let with = |last: usize| {
            let mut d = prefix.clone();
            d.push(plan::Dim::Known(last as u64));
            plan::Shape(d)
        };
        let known =
            |d: &[usize]| plan::Shape(d.iter().map(|&n| plan::Dim::Known(n as u64)).collect());
        let wt = self.moved(
            reprs[1],
            Move::Permute(vec![1, 0]),
            vec![w],
            known(&[r, gc.cout]),
            format!("kernels for {label}, transposed"),
        );
        let xs: Vec<Reg> = (0..g)
            .map(|j| {
                let note = format!("group {j}'s patches for {label}");
                self.moved(reprs[0], Move::Narrow(j * r, r), vec![x], with(r), note)
            })
            .collect();
        let ws: Vec<Reg> = (0..g)
            .map(|j| {
                let note = format!("group {j}'s kernels for {label}");
                self.moved(
                    reprs[1],
                    Move::Narrow(j * m, m),
                    vec![wt],
                    known(&[r, m]),
                    note,
                )
            })
            .collect();
        let products =
            |l: &mut Self, client: PartyId, server: PartyId, add: bool, whose: String| {
                let dsts: Vec<Reg> = (0..g)
                    .map(|j| {
                        let note = format!("{note} (group {j}{whose}, untruncated)");
                        l.share_reg(with(m), 2 * f, note)
                    })
                    .collect();
                let items = (0..g)
                    .map(|j| (xs[j], add.then_some(xs[j]), ws[j], dsts[j]))
                    .collect();
                l.rlwe_whole(client, server, items, w_bits, None);
                let joined =
                    l.share_reg(shape.clone(), 2 * f, format!("{note}{whose} (untruncated)"));
                l.local(joined, ShareOp::Concat, dsts);
                joined
            };
        match *reprs {
            [Repr::Clear(px), Repr::Clear(pw)] => products(self, px, pw, false, String::new()),
            [Repr::Shared, Repr::Clear(pw)] => {
                let px = self.other(pw);
                products(self, px, pw, true, String::new())
            }
            [Repr::Shared, Repr::Shared] => {
                let [p0, p1] = self.p;
                let name =
                    |l: &Self, p: PartyId| format!(", x of {} times W", l.g.model.party(p).name);
                let (n0, n1) = (name(self, p0), name(self, p1));
                let a = products(self, p0, p1, true, n0);
                let b = products(self, p1, p0, true, n1);
                let dst = self.share_reg(shape.clone(), 2 * f, format!("{note} (untruncated)"));
                self.local(dst, ShareOp::Add, vec![a, b]);
                dst
            }
            _ => unreachable!("the chooser offers RLWE only for these operand layouts"),
        }
    }
}

/// Local data movement ([`Lowerer::moved`]).
enum Move {
    Reshape,
    Permute(Vec<usize>),
    Narrow(usize, usize),
    Concat,
    /// `a - a`: zeros of `a`'s shape.
    Zero,
}

/// How an RLWE product runs: in one piece at its place in the program
/// (with a convolution's window, if any), prepared, or masked (a
/// convolution by HomConv with the register of its kernel input).
enum Flavour {
    Whole(Option<plan::Window>),
    Prepared,
    Masked,
    MaskedConv(plan::Window, Reg),
}

/// A prepared product's operands ([`Lowerer::rlwe_product`]'s, and the
/// server's input `weights` that `w` binds).
struct Prepared {
    client: PartyId,
    x: Reg,
    add: Option<Reg>,
    server: PartyId,
    w: Reg,
    /// `W`'s input, or none when the server computes `W` (masked only).
    weights: Option<u32>,
    w_bits: u32,
    dst: Reg,
}

impl Lowerer<'_, '_> {
    /// `client`'s RLWE key, made in the preprocessing and sent to the peer
    /// there (the first time it is asked for).
    pub(super) fn rlwe_pre_key(&mut self, client: PartyId) -> Reg {
        if let Some((key, _)) = self.rlwe_keys.get(&client) {
            return *key;
        }
        let key = self.reg(
            Kind::Message,
            plan::Shape::scalar(),
            format!("RLWE public key of {}", self.g.model.party(client).name),
        );
        let server = self.other(client);
        self.rlwe_pre[client.index()].push(Instr::RlweKeyGen { public: key });
        self.pass_pre(client, server, vec![key]);
        self.rlwe_keys.insert(client, (key, true));
        self.rlwe_pre_keys.insert(client);
        key
    }

    /// A prepared RLWE product (`rlwe::prepared`): in the preprocessing the
    /// client makes its key (with its first prepared product) and sends it
    /// with the offline query, the server answers with `W` read from its
    /// input, and the client takes the answer; online the client sends
    /// `x`'s coefficients and the server the used result coefficients.
    fn rlwe_prepared_product(&mut self, p: Prepared, weights: u32) {
        let Prepared {
            client,
            x,
            add,
            server,
            w,
            w_bits,
            dst,
            ..
        } = p;
        let what = self.regs[dst.0 as usize].note.clone();
        let key = self.rlwe_pre_key(client);
        let message =
            |l: &mut Self, what: String| l.reg(Kind::Message, plan::Shape::scalar(), what);
        let offline_query = message(self, format!("RLWE preprocessing query for {what}"));
        let offline_answer = message(self, format!("RLWE preprocessing answer for {what}"));
        let query = message(self, format!("RLWE query for {what}"));
        let response = message(self, format!("RLWE response for {what}"));
        let first = vec![offline_query];
        let (c, s) = (client.index(), server.index());
        self.rlwe_pre[c].push(Instr::RlwePrepare {
            msg: offline_query,
            x,
            dst,
            w_bits,
        });
        self.pass_pre(client, server, first);
        self.rlwe_pre[s].push(Instr::RlwePrepareRespond {
            msg: offline_answer,
            dst,
            query: offline_query,
            key,
            w,
            weights,
            w_bits,
        });
        self.pass_pre(server, client, vec![offline_answer]);
        self.rlwe_pre[c].push(Instr::RlwePrepareFinish {
            dst,
            response: offline_answer,
        });
        self.emit(
            client,
            Instr::RlweQuery {
                msg: query,
                x,
                dst,
                w_bits,
                conv: None,
                prepared: true,
            },
        );
        self.pass(client, server, vec![query]);
        self.emit(
            server,
            Instr::RlweRespond {
                msg: response,
                dst,
                query,
                key,
                w,
                add,
                w_bits,
                conv: None,
                prepared: true,
                weights: None,
            },
        );
        self.pass(server, client, vec![response]);
        self.emit(client, Instr::RlweFinish { dst, response });
    }
}

impl Lowerer<'_, '_> {
    /// A masked RLWE product (Delphi's linear layers; see
    /// [`plan::Instr::RlweMask`]). In the preprocessing the client draws a
    /// mask `r` of `x`'s shape, and the whole RLWE product runs on it: the
    /// client's query of `r`, the server's answer with `W` read from its
    /// input; each keeps its share of `r @ W` in `pre`. Online the client
    /// sends `x - r` (one message, `x`'s size) and keeps `pre` as its share
    /// of `x @ W`; the server's share is `(x - r + add) @ W + pre`, locally.
    /// With a `conv` window, `x` is the convolution's input, `weights` its
    /// kernel input, `add` the server's share of the patches: the product
    /// on the mask is HomConv, and the server cuts `x - r` into patches.
    fn rlwe_masked_product(&mut self, p: Prepared, conv: Option<plan::Window>) {
        let Prepared {
            client,
            x,
            add,
            server,
            w,
            weights,
            w_bits,
            dst,
        } = p;
        let what = self.regs[dst.0 as usize].note.clone();
        let key = self.rlwe_pre_key(client);
        let (x_shape, dst_shape) = (
            self.regs[x.0 as usize].shape.clone(),
            self.regs[dst.0 as usize].shape.clone(),
        );
        let f = self.f;
        let mask = self.share_reg(x_shape.clone(), f, format!("RLWE mask of x for {what}"));
        let pre = self.share_reg(dst_shape, 2 * f, format!("mask @ W for {what}"));
        let message =
            |l: &mut Self, what: String| l.reg(Kind::Message, plan::Shape::scalar(), what);
        let query = message(self, format!("RLWE query of the mask for {what}"));
        let response = message(self, format!("RLWE response for the mask of {what}"));
        let (c, s) = (client.index(), server.index());
        self.rlwe_pre[c].push(Instr::RlweMask { mask });
        self.rlwe_pre[c].push(Instr::RlweQuery {
            msg: query,
            x: mask,
            dst: pre,
            w_bits,
            conv: conv.clone(),
            prepared: false,
        });
        self.pass_pre(client, server, vec![query]);
        self.rlwe_pre[s].push(Instr::RlweRespond {
            msg: response,
            dst: pre,
            query,
            key,
            w,
            add: None,
            w_bits,
            conv: conv.clone(),
            prepared: false,
            weights,
        });
        self.pass_pre(server, client, vec![response]);
        self.rlwe_pre[c].push(Instr::RlweFinish { dst: pre, response });
        let opened = self.reg(
            Kind::Message,
            x_shape,
            format!("x minus its mask for {what}"),
        );
        self.emit(
            client,
            Instr::RlweMaskedOpen {
                msg: opened,
                x,
                mask,
                pre,
                dst,
            },
        );
        self.pass(client, server, vec![opened]);
        self.emit(
            server,
            Instr::RlweMaskedClose {
                dst,
                msg: opened,
                w,
                add,
                pre,
                conv,
            },
        );
    }
}
