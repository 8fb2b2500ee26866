//! Matrix products by RLWE: the holder of `x` (or of a share of it)
//! encrypts it under its own key, the holder of `W` (or of a share of it)
//! multiplies, masks with its share and answers; see the `rlwe` crate and
//! ARCHITECTURE.md for what each party sees.

use super::{pi, Lowerer};
use crate::choose::Repr;
use crate::ir::{PartyId, ValueId};
use plan::{Instr, Kind, Reg, ShareOp};

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
        let label = self.g.label(v);
        let note = format!("{label} = {}", self.g.describe(v));
        let shape = self.shape(v);
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
        self.trunc1(z)
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
        let what = self.regs[dst.0 as usize].note.clone();
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
        self.pass(client, server, first);
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
                conv,
                prepared: false,
                weights: None,
            },
        );
        self.pass(server, client, vec![response]);
        self.emit(client, Instr::RlweFinish { dst, response });
    }
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
