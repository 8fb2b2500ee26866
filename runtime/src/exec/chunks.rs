//! Runs in chunks of rows (issue 22): which plans can run so ([`row_dim`]),
//! and how the parties of a networked session agree on the chunks
//! ([`agree_chunking`], [`next_rows`]), messages over the [`Transport`]
//! before each chunk's run. `veil party` and the Python module's
//! `veil.party` both speak it, so either can run with the other.

use super::Transport;
use plan::{Dim, Plan};

/// The symbolic dimension a plan's rows run along, when the plan computes
/// every row of its outputs from the same row of its inputs (and so can run
/// in chunks of rows): `Ok(None)` when it has no symbolic dimension, `Err`
/// with the reason when it is not row-wise.
///
/// Row-wise means: one symbolic dimension `S`; wherever a register,
/// input or output has `S`, it is its first dimension, and every output
/// has it; no instruction reads a register with `S` and writes one without
/// it, but for messages, which have no shape (a reduction along the rows,
/// such as a sum or maximum over them);
/// and no dimension limit names `S` (a sum or mean along it).
pub fn row_dim(plan: &Plan) -> Result<Option<String>, String> {
    let mut symbols: Vec<&str> = Vec::new();
    for i in &plan.inputs {
        for d in &i.shape.0 {
            if let Dim::Symbol(s) = d {
                if !symbols.contains(&s.as_str()) {
                    symbols.push(s);
                }
            }
        }
    }
    let s = match symbols.as_slice() {
        [] => return Ok(None),
        [s] => *s,
        _ => {
            return Err(format!(
                "it has several symbolic dimensions ({})",
                symbols.join(", ")
            ))
        }
    };
    let has = |shape: &plan::Shape| {
        shape
            .0
            .iter()
            .any(|d| matches!(d, Dim::Symbol(x) if x == s))
    };
    let first_only = |shape: &plan::Shape| {
        shape
            .0
            .iter()
            .skip(1)
            .all(|d| !matches!(d, Dim::Symbol(x) if x == s))
    };
    if let Some(l) = plan.dim_limits.iter().find(|l| l.name == s) {
        return Err(format!(
            "`{s}` is limited to {} {} ({}): the rows are not independent",
            if l.exact { "exactly" } else { "at most" },
            l.size,
            l.because
        ));
    }
    for i in &plan.inputs {
        if !first_only(&i.shape) {
            return Err(format!(
                "input `{}` has `{s}` after its first dimension",
                i.name
            ));
        }
    }
    for o in &plan.outputs {
        let first = matches!(o.shape.0.first(), Some(Dim::Symbol(x)) if x == s);
        if !first || !first_only(&o.shape) {
            return Err(format!(
                "output `{}` ({}) does not have one row per `{s}`",
                o.name, o.shape
            ));
        }
    }
    // A value may hold its rows along another dimension than the first (a
    // keep-dims broadcast such as softmax's `s - max(s)` permutes them
    // there and back); what matters is that no instruction combines rows:
    // the rows dimension appears once per value, a reshape keeps it first
    // (a row-major reshape that moves it would mix rows), and an
    // instruction that reads rows writes rows (reductions and products
    // that sum over the rows drop the dimension).
    let count = |shape: &plan::Shape| {
        shape
            .0
            .iter()
            .filter(|d| matches!(d, Dim::Symbol(x) if x == s))
            .count()
    };
    if let Some(r) = plan.regs.iter().find(|r| count(&r.shape) > 1) {
        return Err(format!("`{}` has `{s}` twice ({})", r.note, r.shape));
    }
    let first = |r: &plan::Reg| {
        let shape = &plan.reg(*r).shape;
        !has(shape) || matches!(shape.0.first(), Some(Dim::Symbol(x)) if x == s)
    };
    for prog in &plan.programs {
        for ins in &prog.instrs {
            let reshape = matches!(
                ins,
                plan::Instr::Local {
                    op: plan::ShareOp::Reshape,
                    ..
                } | plan::Instr::Clear {
                    op: plan::ClearOp::Reshape,
                    ..
                }
            );
            if reshape && !(ins.reads().iter().all(first) && ins.writes().iter().all(first)) {
                let w = ins.writes().into_iter().next();
                let note = w.map(|w| plan.reg(w).note.clone()).unwrap_or_default();
                return Err(format!(
                    "`{note}` reshapes a value whose `{s}` is not its first dimension"
                ));
            }
            let reads_rows = ins.reads().iter().any(|r| has(&plan.reg(*r).shape));
            if reads_rows {
                // Messages have no shape of their own: the values they
                // carry are the registers around them.
                let value = |w: &plan::Reg| plan.reg(*w).kind != plan::Kind::Message;
                if let Some(w) = ins
                    .writes()
                    .into_iter()
                    .find(|w| value(w) && !has(&plan.reg(*w).shape))
                {
                    return Err(format!("`{}` combines rows along `{s}`", plan.reg(w).note));
                }
            }
        }
    }
    Ok(Some(s.to_string()))
}

/// The chunking of a `veil party` session, agreed at its setup: every
/// party sends every peer the rows of a chunk it reads (0 when it reads no
/// input in rows and was not given `--chunk-rows`), and all that are not 0
/// must be equal. Returns the agreed rows (`mine` when nobody else says).
pub fn agree_chunking(
    plan: &Plan,
    me: u32,
    mine: u64,
    t: &mut dyn Transport,
) -> Result<u64, String> {
    let said = exchange(plan, me, "chunk-rows", mine, t)?;
    let mut agreed: Option<(u64, u32)> = (mine != 0).then_some((mine, me));
    for (p, n) in said {
        match agreed {
            _ if n == 0 => {}
            None => agreed = Some((n, p)),
            Some((m, q)) if m != n => {
                return Err(format!(
                    "the parties disagree on the chunking: {} runs chunks of {m} rows, {} of {n} \
                     (give every party the same --chunk-rows)",
                    plan.party_name(q),
                    plan.party_name(p)
                ))
            }
            Some(_) => {}
        }
    }
    Ok(agreed.map_or(mine, |(n, _)| n))
}

/// Before each chunk of a `veil party` session: every party sends every
/// peer the rows of its next chunk (`None`: it reads no input in rows and
/// follows; `Some(0)`: its inputs are over). Returns the rows of the next
/// chunk, 0 at the end, or an error when the parties that read rows
/// disagree (their files differ in length).
pub fn next_rows(
    plan: &Plan,
    me: u32,
    mine: Option<u64>,
    done: u64,
    t: &mut dyn Transport,
) -> Result<u64, String> {
    const FOLLOW: u64 = u64::MAX;
    let said = exchange(plan, me, "rows", mine.unwrap_or(FOLLOW), t)?;
    let all = mine
        .map(|n| (me, n))
        .into_iter()
        .chain(said.into_iter().filter(|(_, n)| *n != FOLLOW));
    let mut agreed: Option<(u64, u32)> = None;
    for (p, n) in all {
        match agreed {
            None => agreed = Some((n, p)),
            Some((m, q)) if m != n => {
                let (a, b) = (plan.party_name(q), plan.party_name(p));
                return Err(format!(
                    "the parties' inputs differ in length: after row {done}, {a} has {} and {b} {}",
                    if m == 0 {
                        "no more rows".into()
                    } else {
                        format!("{m} more rows")
                    },
                    if n == 0 {
                        "none".into()
                    } else {
                        format!("{n} more")
                    },
                ));
            }
            Some(_) => {}
        }
    }
    agreed
        .map(|(n, _)| n)
        .ok_or_else(|| "no party reads an input in rows".to_string())
}

/// Sends `value` under `name` to every peer taking part, and reads theirs.
fn exchange(
    plan: &Plan,
    me: u32,
    name: &str,
    value: u64,
    t: &mut dyn Transport,
) -> Result<Vec<(u32, u64)>, String> {
    use super::wire::{self, Wire};
    let peers: Vec<u32> = (0..plan.parties.len() as u32)
        .filter(|&p| p != me && plan.takes_part(p))
        .collect();
    let frame = wire::encode(&[Wire::Session {
        dims: vec![(name.to_string(), value)],
        public: Vec::new(),
    }]);
    for &p in &peers {
        t.send(p, frame.clone()).map_err(|e| e.to_string())?;
    }
    let mut said = Vec::new();
    for &p in &peers {
        let bytes = t.recv(p).map_err(|e| e.to_string())?;
        let got = wire::decode(&bytes)
            .map_err(|e| format!("chunking from {}: {e}", plan.party_name(p)))?;
        match got.as_slice() {
            [Wire::Session { dims, .. }] if dims.len() == 1 && dims[0].0 == name => {
                said.push((p, dims[0].1))
            }
            _ => {
                return Err(format!(
                    "{} did not say its {name} (is it running the same version of Veil?)",
                    plan.party_name(p)
                ))
            }
        }
    }
    Ok(said)
}
