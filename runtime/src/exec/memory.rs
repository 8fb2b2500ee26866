//! How much memory a run needs, estimated from the plan and the sizes of its
//! symbolic dimensions before anything is allocated, so that a run too large
//! for the machine is refused with a clear error instead of dying in the
//! allocator halfway through.
//!
//! Per party it adds up what the executor holds at once: its inputs; every
//! register its program writes (the executor keeps them to the end of the
//! run, except a peer's message, dropped once used); its shares of the
//! correlated randomness (a dealer's corrections may all be queued for
//! party 1 at once); without a dealer, the Paillier ciphertexts of the
//! preprocessing exchange; and the temporaries of its largest instruction.
//! It is conservative: every part is an upper bound of what the executor
//! allocates for it, and `registers` is checked against the executor's own
//! count ([`super::Stats::peak_register_bytes`]) in the differential tests.
//! Allocator overhead and the transport's buffers are not counted.

use super::nonlinear::Request;
use super::wire::Wire;
use super::{
    bind_requests, concrete, masked_from_clear, request_groups, role_of, ExecError, Value,
};
use crate::sharing::CorrelationRequest;
use plan::{Correlation, Instr, Kind, Owner, PartyIdx, Plan, RandomnessSource, Reg, Role};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What one party holds at its peak, by part, in bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartyMemory {
    /// Its own inputs and the public ones (a computing party).
    pub inputs: u64,
    /// Every register its program writes.
    pub registers: u64,
    /// Its shares of the correlated randomness; for a dealer, the
    /// corrections it sends.
    pub correlations: u64,
    /// Without a dealer: the Paillier ciphertexts and halves of the
    /// preprocessing exchange.
    pub preprocessing: u64,
    /// Temporaries of its largest instruction (an encoded frame, a
    /// comparison's bit vectors, the dealer's expansion of a correlation).
    pub working: u64,
}

impl PartyMemory {
    pub fn total(&self) -> u64 {
        [
            self.inputs,
            self.registers,
            self.correlations,
            self.preprocessing,
            self.working,
        ]
        .into_iter()
        .fold(0, u64::saturating_add)
    }

    /// The parts, for an error message: "inputs 8.0 GiB, registers ...".
    pub fn parts_text(&self) -> String {
        [
            ("inputs", self.inputs),
            ("registers", self.registers),
            ("correlations", self.correlations),
            ("preprocessing", self.preprocessing),
            ("temporaries", self.working),
        ]
        .into_iter()
        .filter(|(_, b)| *b > 0)
        .map(|(what, b)| format!("{what} {}", bytes_text(b)))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

/// The estimate for a whole run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Per party, in the plan's order.
    pub parties: Vec<PartyMemory>,
    /// Every input once: the copy the caller loaded or generated (the
    /// parties' copies are in [`PartyMemory::inputs`]).
    pub inputs: u64,
}

impl MemoryEstimate {
    /// Every party's total: what a run of all of them in one process needs
    /// (besides the caller's own copy of the inputs, [`MemoryEstimate::inputs`]).
    pub fn parties_total(&self) -> u64 {
        self.parties
            .iter()
            .map(PartyMemory::total)
            .fold(0, u64::saturating_add)
    }
}

/// Bytes as people read them: "812 B", "1.5 KiB", "12.3 GiB".
pub fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes == u64::MAX {
        return "more than 16 EiB".into();
    }
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if v < 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

/// Bytes a Paillier ciphertext (mod n², for a key of `key_bits`) takes in
/// memory: its limbs and the vector that holds them.
fn ciphertext_bytes(key_bits: u64) -> u64 {
    (2 * key_bits).div_ceil(64) * 8 + 24
}

/// Bytes of a register's value as the executor holds it, for
/// [`super::Stats::peak_register_bytes`]. The dealer's messages count as
/// correlations, not registers: they go straight into the party's source.
pub(super) fn value_bytes(v: &Value) -> u64 {
    let biguint = |x: &num_bigint::BigUint| x.bits().div_ceil(64) * 8 + 24;
    match v {
        Value::Clear(t) => 8 * t.data.len() as u64,
        Value::Share(s) => 8 * s.value().len() as u64,
        Value::Cipher { cts, .. } => cts.iter().map(|c| biguint(c.as_biguint())).sum(),
        Value::Input(_) | Value::Unencoded(_) | Value::Dealing(_) => 0,
        Value::Wire(w) => match w {
            Wire::Ring(m) => 8 * m.data.len() as u64,
            Wire::Beaver(b) => 8 * (b.e.data.len() + b.f.data.len()) as u64,
            Wire::Clear { data, .. } => 8 * data.len() as u64,
            Wire::Ciphers { cts, .. } => cts.iter().map(biguint).sum(),
            Wire::PublicKey(n) => biguint(n),
            Wire::Ot(bytes) => bytes.len() as u64,
            Wire::Rlwe { bytes, .. } => bytes.len() as u64,
            Wire::Dealer { .. } | Wire::DealerChunk { .. } | Wire::Session { .. } => 0,
        },
    }
}

/// Words (8 bytes) of one party's share of a correlation.
fn share_words(req: &Request) -> u64 {
    let n = |s: &[usize]| s.iter().fold(1u64, |a, &d| a.saturating_mul(d as u64));
    let sum = |xs: &[u64]| xs.iter().copied().fold(0u64, u64::saturating_add);
    match req {
        CorrelationRequest::ElementwiseTriple { shape }
        | CorrelationRequest::Trunc { shape, .. } => n(shape).saturating_mul(3),
        CorrelationRequest::MatmulTriple { a_shape, b_shape }
        | CorrelationRequest::HolderMatmulTriple {
            a_shape, b_shape, ..
        } => {
            let out = n(&a_shape[..a_shape.len().saturating_sub(1)])
                .saturating_mul(n(b_shape.get(1..).unwrap_or(&[])));
            sum(&[n(a_shape), n(b_shape), out])
        }
        CorrelationRequest::ConvTriple { b_shape, .. }
        | CorrelationRequest::HolderConvTriple { b_shape, .. } => {
            sum(&[n(b_shape), correction_words(req)]).saturating_add(conv_input_words(req))
        }
        CorrelationRequest::MaskedBits { shape } => n(shape).saturating_mul(2),
        CorrelationRequest::AndTriples { bits } => {
            (CorrelationRequest::words_for_bits(*bits) as u64).saturating_mul(3)
        }
        CorrelationRequest::DaBits { shape } => n(shape).saturating_add(n(shape).div_ceil(64)),
        // Sender: two pads; receiver: a pad and the packed choices.
        CorrelationRequest::RandomOts { shape, .. } => n(shape).saturating_mul(2),
        // Sender: pads and masks; receiver: choices and chosen pads.
        CorrelationRequest::OneOf16Ots { count } => {
            let c = *count as u64;
            c.div_ceil(2).saturating_add(c.div_ceil(32))
        }
        // r, msb(r), the root seeds, and (party 1) the correction words.
        CorrelationRequest::DcfMsb { shape, bits } => {
            n(shape).saturating_mul(4 + u64::from(plan::params::dcf_cw_words(*bits)))
        }
    }
}

/// Words of the dealer's correction for party 1 (what it sends).
fn correction_words(req: &Request) -> u64 {
    let n = |s: &[usize]| s.iter().fold(1u64, |a, &d| a.saturating_mul(d as u64));
    match req {
        CorrelationRequest::ElementwiseTriple { shape } => n(shape),
        CorrelationRequest::Trunc { shape, .. } => n(shape).saturating_mul(2),
        CorrelationRequest::MatmulTriple { a_shape, b_shape }
        | CorrelationRequest::HolderMatmulTriple {
            a_shape, b_shape, ..
        } => n(&a_shape[..a_shape.len().saturating_sub(1)])
            .saturating_mul(n(b_shape.get(1..).unwrap_or(&[]))),
        // c: one word per output (the patches' rows times the output channels).
        CorrelationRequest::ConvTriple {
            a_shape,
            window,
            b_shape,
        }
        | CorrelationRequest::HolderConvTriple {
            a_shape,
            window,
            b_shape,
            ..
        } => crate::sharing::correlations::conv_out_shape(a_shape, window, b_shape)
            .map_or(0, |c| n(&c)),
        CorrelationRequest::MaskedBits { shape } | CorrelationRequest::DaBits { shape } => n(shape),
        CorrelationRequest::DcfMsb { shape, bits } => {
            n(shape).saturating_mul(1 + u64::from(plan::params::dcf_cw_words(*bits)))
        }
        CorrelationRequest::AndTriples { bits } => CorrelationRequest::words_for_bits(*bits) as u64,
        CorrelationRequest::RandomOts { shape, sender } => match sender {
            crate::sharing::Party::P0 => n(shape),
            crate::sharing::Party::P1 => n(shape).saturating_mul(2),
        },
        CorrelationRequest::OneOf16Ots { count } => (*count as u64).div_ceil(32),
    }
}

/// Words of the patches a convolution triple's product cuts an `input`
/// into (one per group, [`crate::sharing::correlations::conv_dims`]).
fn conv_patch_words(input: &[usize], window: &plan::Window) -> u64 {
    crate::sharing::correlations::conv_dims(input, window).map_or(0, |(rows, g, width)| {
        (rows as u64)
            .saturating_mul(g as u64)
            .saturating_mul(width as u64)
    })
}

/// Words of a convolution triple's `a` (the input's shape).
fn conv_input_words(req: &Request) -> u64 {
    match req {
        CorrelationRequest::ConvTriple { a_shape, .. }
        | CorrelationRequest::HolderConvTriple { a_shape, .. } => a_shape
            .iter()
            .fold(1u64, |a, &d| a.saturating_mul(d as u64)),
        _ => 0,
    }
}

/// Words the dealer's thread holds while it computes `req`'s correction:
/// both parties' expansions and the correlation itself (an input-holder
/// triple's `a` streams through and is never held whole).
fn dealing_words(req: &Request) -> u64 {
    match req {
        CorrelationRequest::HolderMatmulTriple { b_shape, .. } => {
            let b = b_shape
                .iter()
                .fold(1u64, |a, &d| a.saturating_mul(d as u64));
            b.saturating_add(correction_words(req)).saturating_mul(3)
        }
        other => share_words(other).saturating_mul(3),
    }
}

/// With a dealer, a party draws a product's correlation when the product
/// opens and uses it up when it closes (a comparison's, within its one
/// instruction): the most words drawn and not yet used up at once, in the
/// leader's program order (the other party's follows the same order).
fn live_correlation_words(plan: &Plan, groups: &[Vec<Request>]) -> u64 {
    let Some(leader) = plan
        .programs
        .iter()
        .find(|p| plan.parties[p.party as usize].role == Role::Compute)
    else {
        return 0;
    };
    let mut groups = groups.iter();
    let (mut live, mut peak) = (0u64, 0u64);
    let mut open: HashMap<u32, u64> = HashMap::new();
    for ins in &leader.instrs {
        if super::uses_correlations(ins) {
            let words = groups.next().map_or(0, |g| {
                g.iter().map(share_words).fold(0, u64::saturating_add)
            });
            peak = peak.max(live.saturating_add(words));
            if let Instr::BeaverOpen { corr, .. }
            | Instr::TruncOpen { corr, .. }
            | Instr::HolderOpen { corr, .. } = ins
            {
                live = live.saturating_add(words);
                open.insert(*corr, words);
            }
        }
        if let Instr::BeaverClose { corr, .. }
        | Instr::TruncClose { corr, .. }
        | Instr::HolderClose { corr, .. } = ins
        {
            live = live.saturating_sub(open.remove(corr).unwrap_or(0));
        }
    }
    peak
}

/// Estimate the memory of a run of `plan` with its symbolic dimensions
/// bound to `dims`, every Paillier key of `key_bits` (or the plan's
/// minimum). An error means a shape cannot even be counted (its element
/// count overflows).
pub fn estimate(
    plan: &Plan,
    dims: &BTreeMap<String, usize>,
    key_bits: Option<u64>,
) -> Result<MemoryEstimate, ExecError> {
    let add = |xs: &mut u64, b: u64| *xs = xs.saturating_add(b);
    let elements = |shape: &plan::Shape| -> Result<u64, ExecError> {
        Ok(concrete(shape, dims)?.iter().product::<usize>() as u64)
    };
    // The key a ciphertext of `key` is under, as `KeyGen` sizes it.
    let bits_of = |key: PartyIdx| {
        key_bits.unwrap_or_else(|| {
            plan.keys
                .iter()
                .find(|k| k.owner == key)
                .map_or(3072, |k| u64::from(k.min_bits))
        })
    };
    let requests = bind_requests(plan, dims)?;
    let groups = request_groups(plan, dims, &requests)?;
    let order: Vec<Request> = groups.iter().flatten().cloned().collect();
    let sum = |f: fn(&Request) -> u64| {
        order
            .iter()
            .map(f)
            .fold(0u64, u64::saturating_add)
            .saturating_mul(8)
    };
    // Without a dealer a party holds all its correlations from the start;
    // with one, those in use (and the dealer, all of party 1's corrections:
    // it may be that far ahead).
    let all_correlations = sum(share_words);
    // (Party 1 reads the dealer's frames of corrections just ahead.)
    let live_correlations = live_correlation_words(plan, &groups)
        .saturating_add(super::DEALER_FRAME_WORK as u64)
        .saturating_mul(8);
    let corrections = sum(correction_words);

    // Registers as the executor holds them: a message's size depends on
    // the instruction that writes it, a received one on what the peer sent.
    let n_parties = plan.parties.len();
    let mut sizes: Vec<HashMap<Reg, u64>> = vec![HashMap::new(); n_parties];
    let mut sends: Vec<Vec<Vec<&[Reg]>>> = vec![vec![Vec::new(); n_parties]; n_parties];
    let mut working = vec![0u64; n_parties];
    for prog in &plan.programs {
        let p = prog.party as usize;
        let unencoded: HashSet<Reg> = match role_of(plan, prog.party) {
            Ok(role) if plan.parties[p].role == Role::Compute => {
                masked_from_clear(prog, &requests, role)
            }
            _ => HashSet::new(),
        };
        for ins in &prog.instrs {
            if let Instr::Send { to, regs } = ins {
                if let Some(list) = sends[p].get_mut(*to as usize) {
                    list.push(regs);
                }
            }
            if matches!(ins, Instr::Recv { .. }) {
                continue;
            }
            let shape_of = |r: Reg| concrete(&plan.reg(r).shape, dims);
            let rlwe = super::rlwe_ops::footprint(ins, &shape_of)?;
            for r in ins.writes() {
                let info = plan.reg(r);
                let n = elements(&info.shape)?;
                let bytes = match (info.kind, ins) {
                    (Kind::Clear, Instr::Input { .. }) => 0,
                    (Kind::Clear, Instr::Const { data, .. }) => 8 * data.len().max(1) as u64,
                    (Kind::Share { .. }, _) if unencoded.contains(&r) => 0,
                    (Kind::Clear | Kind::Share { .. }, _) => n.saturating_mul(8),
                    (Kind::Cipher { key, .. }, _) => {
                        n.saturating_mul(ciphertext_bytes(bits_of(key)))
                    }
                    (Kind::Message, _) if rlwe.is_some() => rlwe.map_or(0, |(m, _)| m),
                    (Kind::Message, Instr::KeyGen { .. }) => {
                        bits_of(prog.party).div_ceil(64) * 8 + 24
                    }
                    (Kind::Message, Instr::BeaverOpen { x, y, .. }) => {
                        elements(&plan.reg(*x).shape)?
                            .saturating_add(elements(&plan.reg(*y).shape)?)
                            .saturating_mul(8)
                    }
                    (Kind::Message, Instr::HolderOpen { x, y, corr, .. }) => {
                        let holder = match plan.correlations.get(*corr as usize) {
                            Some(
                                Correlation::HolderMatMul { lhs_holder, .. }
                                | Correlation::HolderConv { lhs_holder, .. },
                            ) => *lhs_holder,
                            _ => {
                                return Err(ExecError::protocol(
                                    "input-holder product without its correlation",
                                ))
                            }
                        };
                        let opened = if holder == prog.party { x } else { y };
                        elements(&plan.reg(*opened).shape)?.saturating_mul(8)
                    }
                    (Kind::Message, Instr::TruncOpen { x, corr, .. }) => {
                        let n = elements(&plan.reg(*x).shape)?;
                        match plan.correlations.get(*corr as usize) {
                            Some(Correlation::TruncDaBits { .. }) => n.div_ceil(64) * 8,
                            _ => n.saturating_mul(8),
                        }
                    }
                    // `x` minus its mask: the register has `x`'s shape.
                    (Kind::Message, Instr::RlweMaskedOpen { .. }) => n.saturating_mul(8),
                    // The dealer's messages are correlations (counted below).
                    (Kind::Message, _) => 0,
                };
                sizes[p].insert(r, bytes);
            }
            // Temporaries: an encoded frame, a comparison's bit vectors, a
            // copy of what the instruction writes; a convolution triple's
            // close also cuts `x − a` and `a` into patches (an input-holder
            // one's, one of them).
            let temp = match ins {
                Instr::HolderClose { dst, corr, .. } => {
                    let patches = match plan.correlations.get(*corr as usize) {
                        Some(Correlation::HolderConv { input, window, .. }) => {
                            conv_patch_words(&concrete(input, dims)?, window)
                        }
                        _ => 0,
                    };
                    patches
                        .saturating_mul(8)
                        .saturating_add(sizes[p].get(dst).copied().unwrap_or(0))
                }
                Instr::BeaverClose { dst, corr, .. } => {
                    let patches = match plan.correlations.get(*corr as usize) {
                        Some(Correlation::Conv { input, window, .. }) => {
                            conv_patch_words(&concrete(input, dims)?, window)
                        }
                        _ => 0,
                    };
                    patches
                        .saturating_mul(2 * 8)
                        .saturating_add(sizes[p].get(dst).copied().unwrap_or(0))
                }
                Instr::Send { regs, .. } => regs
                    .iter()
                    .map(|r| sizes[p].get(r).copied().unwrap_or(0))
                    .fold(0, u64::saturating_add),
                Instr::Nonlinear { args, .. } => {
                    let mut n = 0u64;
                    for a in args {
                        add(&mut n, elements(&plan.reg(*a).shape)?);
                    }
                    n.saturating_mul(16 * 8)
                }
                Instr::Deal { .. } => order
                    .iter()
                    .map(dealing_words)
                    .max()
                    .unwrap_or(0)
                    .saturating_mul(8),
                Instr::GenerateCorrelations { .. } | Instr::Recv { .. } => 0,
                _ if rlwe.is_some() => rlwe.map_or(0, |(_, w)| w),
                other => other
                    .writes()
                    .iter()
                    .map(|r| sizes[p].get(r).copied().unwrap_or(0))
                    .fold(0, u64::saturating_add),
            };
            working[p] = working[p].max(temp);
        }
    }
    // A received register is the size of what its sender sent (the k-th
    // receive from a peer pairs with the peer's k-th send to this party).
    for prog in &plan.programs {
        let q = prog.party as usize;
        let mut next = vec![0usize; n_parties];
        for ins in &prog.instrs {
            let Instr::Recv { from, regs } = ins else {
                continue;
            };
            let p = *from as usize;
            let sent = sends
                .get(p)
                .and_then(|s| s[q].get(next[p]))
                .copied()
                .unwrap_or(&[]);
            next[p] += 1;
            for (i, r) in regs.iter().enumerate() {
                let bytes = sent
                    .get(i)
                    .and_then(|s| sizes[p].get(s))
                    .copied()
                    .unwrap_or(0);
                sizes[q].insert(*r, bytes);
            }
        }
    }

    let mut all_inputs = 0u64;
    let mut parties: Vec<PartyMemory> = (0..n_parties).map(|_| PartyMemory::default()).collect();
    for spec in &plan.inputs {
        let bytes = elements(&spec.shape)?.saturating_mul(8);
        add(&mut all_inputs, bytes);
        for (p, party) in plan.parties.iter().enumerate() {
            let holds = match spec.owner {
                Owner::Public => party.role == Role::Compute,
                Owner::Party(o) => o as usize == p,
            };
            if holds {
                add(&mut parties[p].inputs, bytes);
            }
        }
    }
    let dealer = match plan.randomness {
        RandomnessSource::Dealer(d) => Some(d as usize),
        RandomnessSource::TwoParty => None,
    };
    for (p, m) in parties.iter_mut().enumerate() {
        m.registers = sizes[p].values().copied().fold(0, u64::saturating_add);
        m.working = working[p];
        let prog = &plan.programs.iter().find(|g| g.party as usize == p);
        let instrs = prog.map_or(&[][..], |g| &g.instrs[..]);
        let uses = |f: fn(&Instr) -> bool| instrs.iter().any(f);
        if dealer == Some(p) {
            m.correlations = corrections;
        } else if uses(|i| matches!(i, Instr::GenerateCorrelations { .. })) {
            m.correlations = all_correlations;
        } else if uses(|i| matches!(i, Instr::Expand { .. })) {
            m.correlations = live_correlations;
        }
        if plan.correlation_engine() == Some(plan::CorrelationEngine::Ot)
            && uses(|i| matches!(i, Instr::GenerateCorrelations { .. }))
        {
            // At most two pieces in flight: their COTs (16 bytes and a
            // choice each, plus the extension message) and corrections
            // (the message and its decoding), besides the correlations.
            use crate::preprocess::otgen::{ot_counts, PIECE_BITS, PIECE_COTS};
            let (cots, bits) = ot_counts(&order)?;
            let cots = cots.min(2 * PIECE_COTS as u64);
            let bytes = bits.min(2 * PIECE_BITS).div_ceil(8);
            m.preprocessing = cots
                .saturating_mul(33)
                .saturating_add(bytes.saturating_mul(2))
                .saturating_add(all_correlations);
        } else if uses(|i| matches!(i, Instr::GenerateCorrelations { .. })) {
            // Party 0's key encrypts, party 1 replies under it: every
            // ciphertext both ways, held once and once more in flight.
            let leader = (0..n_parties as PartyIdx)
                .find(|q| plan.parties[*q as usize].role == Role::Compute)
                .unwrap_or(0);
            let bits = bits_of(leader);
            let mut count = 0u64;
            for req in &order {
                let (sent, replies) = crate::preprocess::twoparty::ciphertext_counts(req, bits)?;
                add(&mut count, sent.saturating_add(replies));
            }
            m.preprocessing = count
                .saturating_mul(2 * ciphertext_bytes(bits))
                .saturating_add(all_correlations);
        }
    }
    Ok(MemoryEstimate {
        parties,
        inputs: all_inputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_people_read_them() {
        assert_eq!(bytes_text(0), "0 B");
        assert_eq!(bytes_text(1023), "1023 B");
        assert_eq!(bytes_text(1536), "1.5 KiB");
        assert_eq!(bytes_text(8 << 30), "8.0 GiB");
        assert_eq!(bytes_text(80_000_000_000_000_000), "71 PiB");
        assert_eq!(bytes_text(u64::MAX), "more than 16 EiB");
    }
}
