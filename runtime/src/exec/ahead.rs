//! Sessions run ahead of their data (issue 17): without a dealer, two
//! parties compute a session's preprocessing (OT correlations, RLWE keys,
//! masks and the masked products' answers) before the data owner has its
//! inputs, and the session's data then pays for the online phase only.
//! This is Delphi's offline/online split (Mishra et al., USENIX Security
//! 2020) and what a dealer's [`super::pool::DealingPool`] does for a dealer.
//!
//! Each party stops at its *gate*: the first instruction that reads one of
//! its *late* inputs (those with a symbolic size, the data), or the start
//! of its online phase ([`super::online_from`]) if that comes first. There
//! it finishes what it started (RLWE answers on their own threads, frames
//! still to read or send) and asks for its late inputs. The parameters
//! (inputs of no symbolic size, such as the weights) are given at the start,
//! as a service holds them.
//!
//! A gate moves back, if need be, so that the programs' parts before the
//! gates form a consistent cut ([`gates`]): each party's part receives only
//! frames the other's part sends, and their joint steps pair up.
//! Then the parts run to completion on their own, and nothing waits across
//! a gate.
//!
//! Security: the run is the same run, in the same order; only the time
//! between the gate and the rest changes. Every correlation, mask and key
//! is still drawn for one session and used by it alone; a session that
//! never reaches its data ends with its state dropped.

use super::{online_from, ChannelTransport, ExecError, Options, Outcome};
use plan::{InputSpec, Instr, Owner, PartyIdx, Plan, Tensor, TensorRef, ValidPlan};
use std::collections::BTreeMap;
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

/// How a party run ahead gets its late inputs.
pub(super) struct Ahead<'g> {
    /// The sizes of the plan's symbolic dimensions for this session.
    pub dims: &'g BTreeMap<String, usize>,
    /// Called once, at the gate; returns the late inputs.
    pub open: &'g (dyn Fn() -> Result<BTreeMap<String, Tensor>, ExecError> + Sync),
}

/// Whether `party` gives `input` at its gate rather than at the start.
fn is_late(input: &InputSpec, party: PartyIdx) -> bool {
    input.owner == Owner::Party(party) && !input.is_parameter()
}

/// Where `me`'s program stops for its late inputs (at most its length):
/// its place in [`gates`].
pub(super) fn gate_at(plan: &Plan, me: PartyIdx) -> usize {
    gates(plan)
        .into_iter()
        .find(|(p, _)| *p == me)
        .map_or(0, |(_, g)| g)
}

/// Each computing party's gate. A party's first candidate is the first
/// instruction that reads one of its late inputs ([`input_read`]), or the
/// start of its online phase if that comes first. Then, until nothing
/// moves, a gate moves back to the first receive of a frame the other party
/// sends only after its own gate, and to the first joint step (a
/// comparison, the correlations' generation: [`joint`]) that the other
/// party's part lacks. The parts before the gates then form a consistent
/// cut: each receives only frames the other's part sends, and their joint
/// steps pair up, so both parts run to their gates without waiting on
/// anything after one.
pub(super) fn gates(plan: &Plan) -> Vec<(PartyIdx, usize)> {
    let parties: Vec<PartyIdx> = (0..plan.parties.len() as PartyIdx)
        .filter(|&p| plan.takes_part(p) && plan.parties[p as usize].role == plan::Role::Compute)
        .collect();
    let mut gates: Vec<(PartyIdx, usize)> = parties
        .iter()
        .map(|&me| {
            let program = &plan.program(me).instrs;
            let first_late = program.iter().position(|i| {
                input_read(i)
                    .and_then(|input| plan.inputs.get(input as usize))
                    .is_some_and(|spec| is_late(spec, me))
            });
            (
                me,
                online_from(program).min(first_late.unwrap_or(program.len())),
            )
        })
        .collect();
    if gates.len() != 2 {
        return gates;
    }
    loop {
        let mut moved = false;
        for (a, b) in [(0, 1), (1, 0)] {
            let ((pa, ga), (pb, gb)) = (gates[a], gates[b]);
            let part_a = &plan.program(pa).instrs[..ga];
            let program_b = &plan.program(pb).instrs;
            let sent = part_a
                .iter()
                .filter(|i| matches!(i, Instr::Send { to, .. } if *to == pb))
                .count();
            let steps = part_a.iter().filter(|i| joint(i)).count();
            // b's receive of a's frame number `sent` (counting from 0), and
            // its joint step number `steps`: b's part stops before
            // either.
            let recv_at = program_b
                .iter()
                .enumerate()
                .filter(|(_, i)| matches!(i, Instr::Recv { from, .. } if *from == pa))
                .nth(sent)
                .map(|(at, _)| at);
            let step_at = program_b
                .iter()
                .enumerate()
                .filter(|(_, i)| joint(i))
                .nth(steps)
                .map(|(at, _)| at);
            let limit = recv_at.into_iter().chain(step_at).min().unwrap_or(gb);
            if limit < gb {
                gates[b].1 = limit;
                moved = true;
            }
        }
        if !moved {
            return gates;
        }
    }
}

/// The input a step reads by its index: an `Input`, or a masked or
/// prepared product's answer that reads `W` from the input itself.
fn input_read(ins: &Instr) -> Option<u32> {
    match ins {
        Instr::Input { input, .. }
        | Instr::RlweRespond {
            weights: Some(input),
            ..
        }
        | Instr::RlwePrepareRespond { weights: input, .. } => Some(*input),
        _ => None,
    }
}

/// A step that runs a protocol with the other party over the transport
/// itself (not through `send` and `recv`): the two parties' steps pair up
/// in order.
fn joint(ins: &Instr) -> bool {
    matches!(
        ins,
        Instr::GenerateCorrelations { .. } | Instr::Nonlinear { .. }
    )
}

/// Whether `plan` can run ahead of its data: two computing parties without
/// a dealer. Their gates ([`gates`]) always form a consistent cut; a plan
/// whose preprocessing needs the data (a product on it comes first) stops
/// early and computes little ahead.
pub fn check(plan: &Plan) -> Result<(), ExecError> {
    if plan.randomness != plan::RandomnessSource::TwoParty {
        return Err(ExecError::input(
            "only a plan without a dealer runs ahead of its data (a dealer's streams are \
             computed ahead by the dealer's pool instead)",
        ));
    }
    if gates(plan).len() != 2 {
        return Err(ExecError::input(
            "a run ahead of the data needs exactly two computing parties",
        ));
    }
    Ok(())
}

/// Each party's inputs (`per[p]`, as [`super::inputs_per_party`] lays
/// them out) cut by [`split_party_data`].
#[allow(clippy::type_complexity)]
pub fn split_data<'a>(
    plan: &Plan,
    per: &[BTreeMap<String, TensorRef<'a>>],
) -> (
    Vec<BTreeMap<String, TensorRef<'a>>>,
    Vec<BTreeMap<String, Tensor>>,
) {
    per.iter()
        .enumerate()
        .map(|(p, mine)| split_party_data(plan, p as PartyIdx, mine))
        .unzip()
}

/// Party `me`'s inputs cut into what it gives at the start of a run ahead
/// (its parameters and the public inputs) and its data, given at its gate.
pub fn split_party_data<'a>(
    plan: &Plan,
    me: PartyIdx,
    mine: &BTreeMap<String, TensorRef<'a>>,
) -> (BTreeMap<String, TensorRef<'a>>, BTreeMap<String, Tensor>) {
    let late = |name: &str| plan.inputs.iter().any(|i| i.name == name && is_late(i, me));
    let early = mine
        .iter()
        .filter(|(k, _)| !late(k))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let data = mine
        .iter()
        .filter(|(k, _)| late(k))
        .map(|(k, v)| {
            let t = Tensor {
                shape: v.shape.to_vec(),
                data: v.data.to_vec(),
            };
            (k.clone(), t)
        })
        .collect();
    (early, data)
}

/// `me`'s sizes for a run ahead: `dims`, checked against the plan's limits,
/// after checking the parameters given at the start.
pub(super) fn early_dims(
    plan: &Plan,
    me: PartyIdx,
    early: &BTreeMap<String, TensorRef<'_>>,
    dims: &BTreeMap<String, usize>,
) -> Result<BTreeMap<String, usize>, ExecError> {
    plan::check_parameters(plan, me, early).map_err(input_errors)?;
    plan.check_dims(dims.iter().map(|(k, v)| (k.as_str(), *v as u64)))
        .map_err(ExecError::input)?;
    Ok(dims.clone())
}

/// The early and late inputs together.
pub(super) fn merge<'a>(
    early: &BTreeMap<String, TensorRef<'a>>,
    late: &'a BTreeMap<String, Tensor>,
) -> BTreeMap<String, TensorRef<'a>> {
    let mut all = early.clone();
    all.extend(late.iter().map(|(k, v)| (k.clone(), v.view())));
    all
}

/// Every input `me` has, checked as [`plan::bind_inputs`] checks them, with
/// the sizes the session was prepared for.
pub(super) fn check_late(
    plan: &Plan,
    me: PartyIdx,
    all: &BTreeMap<String, TensorRef<'_>>,
    dims: &BTreeMap<String, usize>,
) -> Result<(), ExecError> {
    let got = plan::bind_inputs(plan, Some(me), all).map_err(input_errors)?;
    for (name, size) in &got {
        if dims.get(name) != Some(size) {
            return Err(ExecError::input(format!(
                "the inputs have {name}={size}, but this session was prepared for {name}={}",
                dims.get(name)
                    .map_or("(unset)".to_string(), |d| d.to_string())
            )));
        }
    }
    Ok(())
}

fn input_errors(errs: Vec<plan::InputError>) -> ExecError {
    ExecError::input(
        errs.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// Party `me` of `plan` run ahead of its data: `early` holds its parameters
/// (and the public inputs), `dims` the session's sizes. `open` is called
/// once, when everything before the gate is done, and returns the late
/// inputs. Check the plan with [`check`] first: otherwise a party may wait
/// at its gate for a message its peer sends only after its own.
pub fn run_party_ahead(
    plan: &ValidPlan<'_>,
    me: PartyIdx,
    early: &BTreeMap<String, TensorRef<'_>>,
    dims: &BTreeMap<String, usize>,
    open: &(dyn Fn() -> Result<BTreeMap<String, Tensor>, ExecError> + Sync),
    transport: &mut dyn super::Transport,
    opts: &Options,
) -> Result<Outcome, ExecError> {
    super::run_party_inner(plan, me, early, Some(Ahead { dims, open }), transport, opts)
}

/// Every party of `plan` in this process, run ahead of its data: each
/// starts with `early[p]` at the sizes `dims`, and once every computing
/// party is at its gate, gets `late[p]`. Returns the outcomes and the time
/// from the gates' opening to the end: a session's latency when its
/// preprocessing was done ahead.
pub fn run_in_process_ahead(
    plan: &ValidPlan<'_>,
    early: &[BTreeMap<String, TensorRef<'_>>],
    mut late: Vec<BTreeMap<String, Tensor>>,
    dims: &BTreeMap<String, usize>,
    opts: &Options,
) -> Result<(Vec<Outcome>, Duration), ExecError> {
    check(plan.plan())?;
    let n = plan.parties.len();
    late.resize_with(n, BTreeMap::new);
    let names: Vec<String> = plan.parties.iter().map(|p| p.name.clone()).collect();
    // Each party says when it is at its gate, or that it ended (before its
    // gate if it failed): a failed party must not leave the others waiting.
    let (events, arrived) = mpsc::channel::<PartyIdx>();
    let releases: Vec<_> = (0..n)
        .map(|_| mpsc::channel::<BTreeMap<String, Tensor>>())
        .collect();
    let (release_tx, release_rx): (Vec<_>, Vec<_>) = releases.into_iter().unzip();
    let mut opened = None;
    let results: Vec<Result<Outcome, ExecError>> = std::thread::scope(|s| {
        let handles: Vec<_> = ChannelTransport::mesh(&names, opts.timeout)
            .into_iter()
            .zip(release_rx)
            .enumerate()
            .map(|(p, (mut t, rx))| {
                static NONE: BTreeMap<String, TensorRef<'static>> = BTreeMap::new();
                let mine = early.get(p).unwrap_or(&NONE);
                let events = events.clone();
                s.spawn(move || {
                    let rx = Mutex::new(rx);
                    let open = || {
                        let _ = events.send(p as PartyIdx);
                        rx.lock()
                            .map_err(|_| ExecError::protocol("a gate's lock was poisoned"))?
                            .recv()
                            .map_err(|_| ExecError::protocol("the run ahead was abandoned"))
                    };
                    let r = run_party_ahead(plan, p as PartyIdx, mine, dims, &open, &mut t, opts);
                    // Ended: counts as arrived (a second event is harmless).
                    let _ = events.send(p as PartyIdx);
                    r
                })
            })
            .collect();
        drop(events);
        // One event per party that takes part, then the gates open together.
        let waiting = (0..n as PartyIdx).filter(|&p| plan.takes_part(p)).count();
        let mut seen = std::collections::BTreeSet::new();
        while seen.len() < waiting {
            match arrived.recv() {
                Ok(p) => {
                    if plan.takes_part(p) {
                        seen.insert(p);
                    }
                }
                Err(_) => break,
            }
        }
        opened = Some(Instant::now());
        for (tx, inputs) in release_tx.into_iter().zip(late) {
            // A party that already ended has dropped its receiver.
            let _ = tx.send(inputs);
        }
        super::joined(handles)
    });
    let elapsed = opened.map_or(Duration::ZERO, |t| t.elapsed());
    super::first_error(results).map(|o| (o, elapsed))
}
