//! The leakage report: for each party, every value it sees, classified as
//! its own or public data, an output addressed to it, masked (a share or a
//! masked opening: uniformly random on its own), or encrypted under a key it
//! does not hold. A plan in which a party would see anything else in the
//! clear is refused.

use plan::{Instr, Kind, Owner, PartyIdx, Plan, Reg};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

#[derive(Clone, Debug, Default)]
pub struct PartyView {
    /// (register note, why it is allowed).
    pub clear: Vec<(String, String)>,
    /// Public constants and values computed from them only.
    pub constants: usize,
    pub masked: usize,
    pub encrypted: Vec<String>,
    pub violations: Vec<String>,
}

/// Every (sent register, received register) pair: the k-th send from a to
/// b with the k-th receive at b from a.
fn send_recv_pairs(plan: &Plan) -> Vec<(Reg, Reg)> {
    let mut pairs: Vec<(Reg, Reg)> = Vec::new();
    let n = plan.parties.len();
    for a in 0..n {
        for b in 0..n {
            let sends = plan.programs[a].instrs.iter().filter_map(|i| match i {
                Instr::Send { to, regs } if *to as usize == b => Some(regs),
                _ => None,
            });
            let recvs = plan.programs[b].instrs.iter().filter_map(|i| match i {
                Instr::Recv { from, regs } if *from as usize == a => Some(regs),
                _ => None,
            });
            for (s, r) in sends.zip(recvs) {
                pairs.extend(s.iter().copied().zip(r.iter().copied()));
            }
        }
    }
    pairs
}

/// Input dependencies of every register, across all parties.
fn dependencies(plan: &Plan, pairs: &[(Reg, Reg)]) -> Vec<BTreeSet<u32>> {
    let mut deps: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); plan.regs.len()];
    loop {
        let mut changed = false;
        for prog in &plan.programs {
            for ins in &prog.instrs {
                let mut d: BTreeSet<u32> = ins
                    .reads()
                    .iter()
                    .flat_map(|r| deps[r.0 as usize].iter().copied())
                    .collect();
                if let Instr::Input { input, .. }
                | Instr::RlwePrepareRespond { weights: input, .. }
                | Instr::RlweRespond {
                    weights: Some(input),
                    ..
                } = ins
                {
                    if plan.inputs[*input as usize].owner != Owner::Public {
                        d.insert(*input);
                    }
                }
                for w in ins.writes() {
                    let before = deps[w.0 as usize].len();
                    deps[w.0 as usize].extend(d.iter().copied());
                    changed |= deps[w.0 as usize].len() != before;
                }
            }
        }
        for (s, r) in pairs {
            let d = deps[s.0 as usize].clone();
            let before = deps[r.0 as usize].len();
            deps[r.0 as usize].extend(d);
            changed |= deps[r.0 as usize].len() != before;
        }
        if !changed {
            return deps;
        }
    }
}

/// Why a message written by `ins` reveals nothing on its own, or `None` if
/// there is no such argument. The match is exhaustive on purpose: a new
/// instruction (a new protocol family's round) that writes a
/// [`Kind::Message`] must state here what masks it, or every plan that uses
/// it is refused.
fn message_protection(ins: &Instr) -> Option<&'static str> {
    match ins {
        // x - a, y - b: one-time pads from a Beaver or input-holder triple.
        Instr::BeaverOpen { .. } | Instr::HolderOpen { .. } => Some("masked by a triple"),
        // x + r with r 40 bits wider than x, or one daBit-masked bit.
        Instr::TruncOpen { .. } => Some("masked by a truncation pair"),
        // A Paillier public key is public.
        Instr::KeyGen { .. } => Some("a public key"),
        // An RLWE public key is public (an RLWE sample, seeded).
        Instr::RlweKeyGen { .. } => Some("an RLWE public key"),
        // RLWE encryptions under the sender's own key: the receiver holds
        // no key to it (semantic security under RLWE).
        Instr::RlweQuery { .. } => Some("encrypted under the sender's own RLWE key"),
        // The sum of the product and a fresh uniform mask (the sender's
        // share), re-randomised with the receiver's public key and flooded
        // with 40 bits of statistical slack (`rlwe::layout`): decryption
        // shows the masked product only.
        Instr::RlweRespond { .. } => {
            Some("masked by fresh shares, re-randomised and noise-flooded (40 bits)")
        }
        // The prepared split sends the same ciphertexts in two parts
        // (`rlwe::prepared`): the query's seed and encryptions of zero now,
        // its input coefficients online, both under the sender's own key.
        Instr::RlwePrepare { .. } => Some("encrypted under the sender's own RLWE key"),
        // The `a` halves of the results `RlweRespond` would send: the
        // re-randomiser (a fresh encryption of zero under the receiver's
        // key) makes them pseudorandom whatever `W` is.
        Instr::RlwePrepareRespond { .. } => {
            Some("the re-randomised halves of masked, noise-flooded results (40 bits)")
        }
        // x - r with r uniform in Z_2^64, drawn by the sender for this
        // product alone (`RlweMask`) and never sent: a one-time pad.
        Instr::RlweMaskedOpen { .. } => Some("masked by a fresh uniform one-time mask"),
        // Seeds and corrections: the dealer's randomness, independent of
        // every input.
        Instr::Deal { .. } => Some("the dealer's randomness"),
        Instr::Expand { .. }
        | Instr::GenerateCorrelations { .. }
        | Instr::Input { .. }
        | Instr::Const { .. }
        | Instr::Clear { .. }
        | Instr::Split { .. }
        | Instr::Embed { .. }
        | Instr::Own { .. }
        | Instr::HolderClose { .. }
        | Instr::Local { .. }
        | Instr::BeaverClose { .. }
        | Instr::TruncClose { .. }
        | Instr::Encrypt { .. }
        | Instr::Hom { .. }
        | Instr::Mask { .. }
        | Instr::DecryptShare { .. }
        | Instr::Rerandomize { .. }
        | Instr::Decrypt { .. }
        | Instr::Nonlinear { .. }
        | Instr::RlweFinish { .. }
        | Instr::RlwePrepareFinish { .. }
        | Instr::RlweMask { .. }
        | Instr::RlweMaskedClose { .. }
        | Instr::Send { .. }
        | Instr::Recv { .. }
        | Instr::Reveal { .. }
        | Instr::Output { .. } => None,
    }
}

pub fn views(plan: &Plan) -> BTreeMap<PartyIdx, PartyView> {
    let pairs = send_recv_pairs(plan);
    let deps = dependencies(plan, &pairs);
    // The instruction that produced each register; a received register's
    // producer is the sender's.
    let mut producer: BTreeMap<Reg, &Instr> = BTreeMap::new();
    for ins in plan.programs.iter().flat_map(|p| &p.instrs) {
        if !matches!(ins, Instr::Recv { .. }) {
            for w in ins.writes() {
                producer.insert(w, ins);
            }
        }
    }
    for (s, r) in &pairs {
        if let Some(ins) = producer.get(s).copied() {
            producer.insert(*r, ins);
        }
    }
    let mut out = BTreeMap::new();
    for prog in &plan.programs {
        let p = prog.party;
        let mut view = PartyView::default();
        let mut seen: BTreeSet<Reg> = BTreeSet::new();
        let mut outputs: BTreeSet<Reg> = prog
            .instrs
            .iter()
            .filter_map(|i| match i {
                Instr::Output { src, .. } => Some(*src),
                _ => None,
            })
            .collect();
        // A revealed output is clamped to its range before it is output
        // (`Lowerer::clamp_revealed`): what was revealed is the output too.
        let revealed: BTreeSet<Reg> = prog
            .instrs
            .iter()
            .filter_map(|i| match i {
                Instr::Reveal { dst, .. } | Instr::Decrypt { dst, .. } => Some(*dst),
                _ => None,
            })
            .collect();
        for ins in &prog.instrs {
            if let Instr::Clear {
                dst,
                op: plan::ClearOp::Clamp(..),
                args,
            } = ins
            {
                if outputs.contains(dst) && args.iter().all(|a| revealed.contains(a)) {
                    outputs.extend(args.iter().copied());
                }
            }
        }
        for ins in &prog.instrs {
            for r in ins.writes() {
                if !seen.insert(r) {
                    continue;
                }
                let info = plan.reg(r);
                match info.kind {
                    Kind::Clear => {
                        let foreign: Vec<&str> = deps[r.0 as usize]
                            .iter()
                            .filter(|i| plan.inputs[**i as usize].owner != Owner::Party(p))
                            .map(|i| plan.inputs[*i as usize].name.as_str())
                            .collect();
                        let why = if deps[r.0 as usize].is_empty()
                            && !matches!(ins, Instr::Input { .. })
                        {
                            view.constants += 1;
                            continue;
                        } else if foreign.is_empty() {
                            "own or public data".to_string()
                        } else if outputs.contains(&r) {
                            "output addressed to it".to_string()
                        } else {
                            view.violations.push(format!(
                                "`{}` depends on private input(s) {}",
                                info.note,
                                foreign.join(", ")
                            ));
                            "VIOLATION".to_string()
                        };
                        view.clear.push((info.note.clone(), why));
                    }
                    Kind::Share { .. } => view.masked += 1,
                    Kind::Message => match producer.get(&r).copied().and_then(message_protection) {
                        Some(_) => view.masked += 1,
                        None => view.violations.push(format!(
                            "message `{}` comes from an instruction with no masking argument",
                            info.note
                        )),
                    },
                    Kind::Cipher { key, .. } if key != p => view.encrypted.push(format!(
                        "{} (under {}'s key)",
                        info.note,
                        plan.party_name(key)
                    )),
                    Kind::Cipher { .. } => {
                        // Under its own key: only its own data, or masked by the peer.
                        let masked = plan.programs.iter().flat_map(|q| &q.instrs).any(|i| {
                            matches!(i, Instr::Mask { masked, .. } | Instr::Rerandomize { dst: masked, .. } if *masked == r)
                        });
                        let own = deps[r.0 as usize]
                            .iter()
                            .all(|i| plan.inputs[*i as usize].owner == Owner::Party(p));
                        if masked || own {
                            view.masked += 1;
                        } else {
                            view.violations.push(format!(
                                "`{}` is decryptable by it and not masked",
                                info.note
                            ));
                        }
                    }
                }
            }
        }
        out.insert(p, view);
    }
    out
}

pub fn report(plan: &Plan) -> String {
    let mut s = String::new();
    for (p, view) in views(plan) {
        let _ = writeln!(s, "  {}:", plan.party_name(p));
        if view.clear.is_empty() && view.constants == 0 {
            let _ = writeln!(s, "    in the clear: nothing");
        }
        let mut clear: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (note, why) in &view.clear {
            clear.entry(why).or_default().push(note);
        }
        for (why, notes) in clear {
            let _ = writeln!(s, "    in the clear ({why}): {}", notes.join("; "));
        }
        if view.constants > 0 {
            let _ = writeln!(s, "    public constants: {}", view.constants);
        }
        let _ = writeln!(
            s,
            "    masked (shares, masked openings, own-key ciphertexts): {} values",
            view.masked
        );
        if !view.encrypted.is_empty() {
            let _ = writeln!(
                s,
                "    encrypted under a key it does not hold: {}",
                view.encrypted.join("; ")
            );
        }
    }
    s
}
