//! Veil's compiler.
//!
//! front ([`check`]) → [`ir::CheckedModel`] → [`graph::Graph`] (dataflow DAG
//! with shapes, visibility and ranges) → [`analysis`] (approximations,
//! overflow, output leaks, error bounds) → [`choose`] (protocol per
//! operation, by the [`cost`] model) → [`lower`] → [`plan::Plan`], validated
//! by [`plan::validate`] and by the [`leak`]age check before it is returned.

pub mod analysis;
pub mod approx;
mod check;
pub mod choose;
pub mod cost;
pub mod graph;
pub mod ir;
pub mod leak;
pub mod lower;
pub mod reference;
mod report;

pub use check::{broadcast, check, check_source, CheckResult, BUILTINS, MAX_DEGREE};
pub use cost::{CostTable, Network};

use grammar::{Code, Diagnostic};
use std::collections::BTreeMap;

/// Size assumed for a symbolic dimension (such as `batch`) in cost
/// estimates, unless the user gives one.
pub const DEFAULT_ASSUMED_DIM: u64 = 1000;

#[derive(Clone, Debug)]
pub struct Options {
    pub network: Network,
    /// Paillier modulus size; 3072 by default, at least 2048.
    pub key_bits: u32,
    /// Sizes assumed for symbolic dimensions in estimates.
    pub assume: BTreeMap<String, u64>,
    /// Use the model's dealer if it declares one (`false`: compile as if it did not).
    pub use_dealer: bool,
    /// Restrict every secret operation to one protocol family where it can
    /// run (like a `via` on each operation without one); `None`: the cost model decides.
    pub prefer: Option<ir::Protocol>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            network: Network::LAN,
            key_bits: 3072,
            assume: BTreeMap::new(),
            use_dealer: true,
            prefer: None,
        }
    }
}

/// Everything the compiler produced for one model.
pub struct Compiled {
    pub plan: plan::Plan,
    pub graph_text: String,
    pub dot: String,
    pub report: String,
    pub warnings: Vec<Diagnostic>,
}

/// Compile a checked model to a validated plan.
pub fn compile(model: &ir::CheckedModel, opts: &Options) -> Result<Compiled, Vec<Diagnostic>> {
    let g = graph::Graph::build(model, opts.assume.clone());
    let dealer = if opts.use_dealer {
        model.dealer()
    } else {
        None
    };
    // Secure comparison is always available (dealer or two-party Paillier
    // correlations); without a dealer it is dear, so clamp only where needed.
    let analysis = analysis::analyse(&g, dealer.is_some());
    if !analysis.errors.is_empty() {
        let mut d = analysis.errors;
        d.extend(analysis.warnings);
        d.sort_by_key(|d| d.primary_span().map_or(0, |s| s.start));
        return Err(d);
    }
    let costs = CostTable::for_key_bits(opts.key_bits);
    let chooser = choose::Chooser {
        g: &g,
        costs: &costs,
        net: opts.network,
        dealer: dealer.is_some(),
        prefer: opts.prefer,
        clamped: analysis.clamped.clone(),
    };
    let selection = chooser.run()?;
    let lowerer = lower::Lowerer::new(
        &g,
        &chooser,
        &analysis.fits,
        dealer,
        analysis.error_bounds.clone(),
    );
    let plan = lowerer.run(&selection);
    if let Err(errors) = plan::validate(&plan) {
        let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        return Err(vec![Diagnostic::error(
            Code::NoProtocol,
            format!("internal compiler error: invalid plan: {}", list.join("; ")),
        )
        .primary(grammar::Span::new(0, 0), "while compiling this model")
        .note(
            "this is a bug in Veil's compiler; please report it with the model file",
        )]);
    }
    let views = leak::views(&plan);
    let violations: Vec<String> = views
        .iter()
        .flat_map(|(p, v)| {
            let name = plan.party_name(*p).to_string();
            v.violations.iter().map(move |x| format!("{name}: {x}"))
        })
        .collect();
    if !violations.is_empty() {
        return Err(vec![Diagnostic::error(
            Code::Leak,
            "the plan would reveal values beyond the outputs",
        )
        .primary(grammar::Span::new(0, 0), "in this model")
        .note(violations.join("; "))
        .note(
            "this is a bug in Veil's compiler; please report it with the model file",
        )]);
    }
    let report = report::render(&g, &chooser, &selection, &analysis, &plan, opts);
    let dot = g.to_dot(&|v| report::colour(&selection, v, model));
    Ok(Compiled {
        graph_text: g.to_text(),
        dot,
        report,
        warnings: analysis.warnings,
        plan,
    })
}
