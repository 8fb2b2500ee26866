//! `veil compile --emit report`: per operation the protocol, the reason,
//! the estimates and the runner-up; totals; error bounds; the leakage report.

use crate::analysis::Analysis;
use crate::choose::{method_name, Chooser, How, Method, Repr, Selection};
use crate::graph::{fmt_num, Graph};
use crate::ir::{CheckedModel, ValueId};
use crate::Options;
use std::fmt::Write;

pub fn render(
    g: &Graph,
    chooser: &Chooser,
    sel: &Selection,
    analysis: &Analysis,
    plan: &plan::Plan,
    opts: &Options,
) -> String {
    let model = g.model;
    let net = &chooser.net;
    let mut s = String::new();
    let dealer = match plan.randomness {
        plan::RandomnessSource::Dealer(d) => format!("dealer {}", plan.party_name(d)),
        plan::RandomnessSource::TwoParty => match plan.correlation_engine() {
            Some(e) => format!("no dealer (correlations by {})", e.name()),
            None => "no dealer".into(),
        },
    };
    let dims: Vec<String> = plan
        .estimate
        .assumed_dims
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let _ =
        writeln!(
        s,
        "model {}: network {} ({} Mbit/s, {} ms per round), {dealer}, Paillier keys of {} bits{}",
        model.name(),
        net.name,
        fmt_num(net.bytes_per_second * 8.0 / 1e6),
        fmt_num(net.latency_seconds * 1e3),
        opts.key_bits,
        if dims.is_empty() { String::new() } else { format!(", assuming {}", dims.join(", ")) }
    );
    let _ = writeln!(s, "\noperations:");
    for d in &sel.decisions {
        let _ = writeln!(
            s,
            "  {} = {}: {}\n    estimate {} s ({} s compute, {} bytes, {} rounds)\n    because {}",
            g.label(d.value),
            g.describe(d.value),
            method_name(model.parties(), d.method),
            fmt_num(d.cost.seconds(net)),
            fmt_num(d.cost.compute),
            fmt_num(d.cost.bytes),
            d.cost.rounds,
            d.reason
        );
        if let Some(fit) = analysis.fits.get(&d.value) {
            let _ = writeln!(
                s,
                "    approximation: degree {} on [{}, {}] in t = x/{}, max error {}",
                fit.degree,
                fmt_num(fit.domain.0),
                fmt_num(fit.domain.1),
                fmt_num(fit.scale),
                fmt_num(fit.max_error)
            );
        }
    }
    let conversions: Vec<String> = sel
        .materialize
        .iter()
        .flat_map(|(v, m)| m.iter().map(move |(r, h)| (*v, *r, h)))
        .filter_map(|(v, r, h)| match h {
            How::Convert { from } => Some(format!(
                "  {}: {} → {}",
                g.label(v),
                repr_name(model, *from),
                repr_name(model, r)
            )),
            How::Native { .. } => None,
        })
        .collect();
    if !conversions.is_empty() {
        let _ = writeln!(s, "\nconversions:\n{}", conversions.join("\n"));
    }
    let _ = writeln!(s, "\noutputs:");
    for ((o, from), spec) in model
        .outputs()
        .iter()
        .zip(&sel.output_from)
        .zip(&plan.outputs)
    {
        let to: Vec<&str> = o.to.iter().map(|p| model.party(*p).name.as_str()).collect();
        let range = g.node(o.value).range;
        let _ = writeln!(
            s,
            "  {} to {}: revealed from {}, error bound {}{}{}",
            o.name,
            to.join(", "),
            repr_name(model, *from),
            fmt_num(spec.error_bound),
            match spec.near_tie {
                Some(slack) => format!(
                    " (or any index whose entry is within {} of the maximum)",
                    fmt_num(slack)
                ),
                None => String::new(),
            } + &match &spec.labels {
                Some(l) => format!(
                    ", revealed as labels [{}]",
                    l.iter().map(|v| fmt_num(*v)).collect::<Vec<_>>().join(", ")
                ),
                None => String::new(),
            },
            if crate::analysis::exceeds_range(spec.error_bound, range) {
                format!(" (not below its range {range}: W0102)")
            } else {
                String::new()
            }
        );
    }
    let e = &plan.estimate;
    let _ = writeln!(
        s,
        "\ntotal estimate: {} s ({} s compute, {} bytes, {} rounds)",
        fmt_num(e.seconds),
        fmt_num(e.compute_seconds),
        fmt_num(e.bytes),
        e.rounds
    );
    let _ = writeln!(
        s,
        "correlations: {}, keys: {}",
        plan.correlations.len(),
        plan.keys.len()
    );
    let _ = writeln!(s, "\nleakage (what each party sees):");
    s.push_str(&crate::leak::report(plan));
    s
}

pub fn repr_name(model: &CheckedModel, r: Repr) -> String {
    match r {
        Repr::Public => "public".into(),
        Repr::Clear(p) => format!("clear at {}", model.party(p).name),
        Repr::Shared => "shares".into(),
        Repr::Cipher(k) => format!("Paillier under {}'s key", model.party(k).name),
    }
}

/// Node colour and note for the DOT graph.
pub fn colour(sel: &Selection, v: ValueId, model: &CheckedModel) -> (&'static str, String) {
    let Some(m) = sel.materialize.get(&v) else {
        return ("white", String::new());
    };
    let method = m.values().find_map(|h| match h {
        How::Native { method, .. } => Some(*method),
        How::Convert { .. } => None,
    });
    match method {
        Some(Method::Public) => ("lightgrey", "public".into()),
        Some(Method::Clear(p)) => ("palegreen", format!("clear at {}", model.party(p).name)),
        Some(Method::Shares) => ("lightskyblue", "shares".into()),
        Some(Method::Paillier(k)) => ("orange", format!("paillier[{}]", model.party(k).name)),
        Some(Method::Rlwe) => ("plum", "rlwe".into()),
        None => ("white", String::new()),
    }
}
