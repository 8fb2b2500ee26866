//! Veil's compiler.
//!
//! front ([`check`]) → [`ir::CheckedModel`] → [`graph::Graph`] (dataflow DAG
//! with shapes, visibility and ranges) → [`analysis`] (approximations,
//! overflow, output leaks, error bounds) → [`choose`] (protocol per
//! operation, by the [`cost`] model) → [`lower`] → [`plan::Plan`], validated
//! by [`plan::validate`] and by the [`leak`]age check before it is returned.

pub mod analysis;
pub mod approx;
pub mod builtins;
mod check;
pub mod choose;
pub mod cost;
mod error;
pub mod graph;
pub mod ir;
pub mod leak;
pub mod lower;
pub mod reference;
mod report;

pub use builtins::BUILTINS;
pub use check::{
    broadcast, check, check_source, check_source_with, check_with, CheckResult, RangeReader,
    MAX_DEGREE,
};
pub use cost::{CostTable, Network};
pub use error::{CompileError, Failures, InternalError};

use grammar::Diagnostic;
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
    /// Without a dealer: how the two parties generate correlations; `None`:
    /// the cost model compares the whole plan both ways and picks.
    pub correlations: Option<plan::CorrelationEngine>,
    /// The form of every RLWE product whose `W` is a party's input
    /// (`--prefer rlwe-masked`, `--prefer rlwe-prepared`: tests and
    /// benchmarks); `None`: the cost model's ([`choose::Chooser::rlwe_masked`]).
    pub rlwe_form: Option<choose::RlweForm>,
    /// With a dealer: how comparisons take the sign bit; `None`: the cost
    /// model compares the whole plan both ways and picks (the carry tree's
    /// eight rounds against a DCF's one round and 3 KiB).
    pub dealer_comparisons: Option<plan::DealerComparisons>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            network: Network::LAN,
            key_bits: 3072,
            assume: BTreeMap::new(),
            use_dealer: true,
            prefer: None,
            correlations: None,
            rlwe_form: None,
            dealer_comparisons: None,
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

/// The checks after [`check`] that need no cost model, as `veil check` runs
/// them: range analysis (E0301), polynomial fits and their domains (E0304,
/// E0305, W0101), outputs that reveal another party's input (E0302), error
/// bounds against the output's range (W0102), and whether every operation
/// (and every `via`) has a protocol at all (E0303, which depends on the
/// operations and visibilities, not on costs). Errors and warnings, in
/// source order; empty for a model that compiles cleanly. [`compile`] runs
/// the same analysis and reports the same diagnostics. `Err`: the compiler
/// broke an invariant of its own (a bug in Veil, not in the model).
pub fn analyse(model: &ir::CheckedModel, opts: &Options) -> Result<Vec<Diagnostic>, InternalError> {
    let engine = opts.correlations.unwrap_or(plan::CorrelationEngine::Ot);
    let comparisons = opts.dealer_comparisons.unwrap_or_default();
    let front = match Front::new(model, opts, engine, comparisons) {
        Ok(front) => front,
        Err(d) => return Ok(d),
    };
    let costs = CostTable::for_key_bits(opts.key_bits);
    let mut d = match front.chooser(&costs, opts).run() {
        Ok(_) => Vec::new(),
        Err(CompileError::Model(errors)) => errors,
        Err(CompileError::Internal(e)) => return Err(e),
    };
    d.extend(front.analysis.warnings);
    sort(&mut d);
    Ok(d)
}

/// Diagnostics in source order (stable: equal places keep their order).
fn sort(d: &mut [Diagnostic]) {
    d.sort_by_key(|d| d.primary_span().map_or(0, |s| s.start));
}

/// The graph and its analysis: everything before protocol choice.
struct Front<'m> {
    g: graph::Graph<'m>,
    dealer: Option<ir::PartyId>,
    /// Without a dealer, how the two parties generate correlations.
    engine: plan::CorrelationEngine,
    /// With a dealer, how comparisons take the sign bit.
    comparisons: plan::DealerComparisons,
    analysis: analysis::Analysis,
}

impl<'m> Front<'m> {
    /// `Err`: the analysis found errors (with its warnings, in source order).
    fn new(
        model: &'m ir::CheckedModel,
        opts: &Options,
        engine: plan::CorrelationEngine,
        comparisons: plan::DealerComparisons,
    ) -> Result<Front<'m>, Vec<Diagnostic>> {
        let g = graph::Graph::build(model, opts.assume.clone());
        let dealer = if opts.use_dealer {
            model.dealer()
        } else {
            None
        };
        // Secure comparison is always available (a dealer's, OT or Paillier
        // correlations); with Paillier it is dear, so clamp only where needed.
        let cheap_comparisons = dealer.is_some() || engine == plan::CorrelationEngine::Ot;
        let analysis = analysis::analyse(&g, cheap_comparisons);
        if !analysis.errors.is_empty() {
            let mut d = analysis.errors;
            d.extend(analysis.warnings);
            sort(&mut d);
            return Err(d);
        }
        Ok(Front {
            g,
            dealer,
            engine,
            comparisons,
            analysis,
        })
    }

    fn chooser<'a>(&'a self, costs: &'a CostTable, opts: &Options) -> choose::Chooser<'a, 'm> {
        choose::Chooser {
            g: &self.g,
            costs,
            net: opts.network,
            dealer: self.dealer.is_some(),
            source: match (self.dealer, self.comparisons) {
                (Some(_), plan::DealerComparisons::CarryTree) => cost::Source::Dealer,
                (Some(_), plan::DealerComparisons::Dcf) => cost::Source::DealerDcf,
                (None, _) => cost::Source::two_party(self.engine),
            },
            prefer: opts.prefer,
            rlwe_form: opts.rlwe_form,
            clamped: self.analysis.clamped.clone(),
            fits: &self.analysis.fits,
        }
    }
}

/// Compile a checked model to a validated plan. Without a dealer and
/// without `opts.correlations`, the plan is compiled with correlations by
/// OT and by Paillier, and the one with the lower estimate wins (the report
/// says by how much).
pub fn compile(model: &ir::CheckedModel, opts: &Options) -> Result<Compiled, CompileError> {
    let dealer_free = !opts.use_dealer || model.dealer().is_none();
    if let (true, None) = (dealer_free, opts.correlations) {
        use plan::CorrelationEngine::{Ot, Paillier};
        let tree = plan::DealerComparisons::CarryTree;
        let ot = compile_with(model, opts, Ot, tree);
        let paillier = compile_with(model, opts, Paillier, tree);
        return match (ot, paillier) {
            // Nothing to say when the plan generates no correlations.
            (Ok(a), Ok(b)) => Ok(cheaper(
                [
                    (a, Ot.name(), Ot.name()),
                    (b, Paillier.name(), Paillier.name()),
                ],
                "correlations without a dealer",
                |p| p.correlation_engine().is_some(),
            )),
            (Ok(a), Err(_)) => Ok(a),
            (Err(e), _) => Err(e),
        };
    }
    let engine = opts.correlations.unwrap_or(plan::CorrelationEngine::Ot);
    if let (false, None) = (dealer_free, opts.dealer_comparisons) {
        use plan::DealerComparisons::{CarryTree, Dcf};
        let tree = compile_with(model, opts, engine, CarryTree)?;
        if !tree.plan.has_comparisons() {
            return Ok(tree);
        }
        let dcf = compile_with(model, opts, engine, Dcf)?;
        return Ok(cheaper(
            [
                (
                    tree,
                    "the carry tree (8 rounds for the sign)",
                    "the carry tree",
                ),
                (
                    dcf,
                    "DCF keys (1 round for the sign, 3 KiB each)",
                    "DCF keys",
                ),
            ],
            "comparisons with the dealer",
            |_| true,
        ));
    }
    compile_with(
        model,
        opts,
        engine,
        opts.dealer_comparisons.unwrap_or_default(),
    )
}

/// The cheaper by the cost model's estimate of two compilations of one
/// model (the first on a tie), each given with its name as the winner and
/// as the loser. Its report ends with a line "`topic`: by (winner), cheapest
/// by the cost model (estimate … s for the whole plan; by (loser) it would
/// be … s)", unless `say` finds nothing to say of the winning plan.
fn cheaper(
    [first, second]: [(Compiled, &str, &str); 2],
    topic: &str,
    say: impl Fn(&plan::Plan) -> bool,
) -> Compiled {
    let (mut win, lose) = if second.0.plan.estimate.seconds < first.0.plan.estimate.seconds {
        (second, first)
    } else {
        (first, second)
    };
    if say(&win.0.plan) {
        use std::fmt::Write;
        let _ = writeln!(
            win.0.report,
            "\n{topic}: by {}, cheapest by the cost model \
             (estimate {} s for the whole plan; by {} it would be {} s)",
            win.1,
            graph::fmt_num(win.0.plan.estimate.seconds),
            lose.2,
            graph::fmt_num(lose.0.plan.estimate.seconds)
        );
    }
    win.0
}

fn compile_with(
    model: &ir::CheckedModel,
    opts: &Options,
    engine: plan::CorrelationEngine,
    comparisons: plan::DealerComparisons,
) -> Result<Compiled, CompileError> {
    let front = Front::new(model, opts, engine, comparisons).map_err(CompileError::Model)?;
    let costs = CostTable::for_key_bits(opts.key_bits);
    let chooser = front.chooser(&costs, opts);
    let selection = chooser.run().map_err(|e| match e {
        CompileError::Model(mut d) => {
            d.extend(front.analysis.warnings.iter().cloned());
            sort(&mut d);
            CompileError::Model(d)
        }
        internal => internal,
    })?;
    let (g, analysis) = (&front.g, &front.analysis);
    let lowerer = lower::Lowerer::new(
        g,
        &chooser,
        &analysis.fits,
        front.dealer,
        analysis.error_bounds.clone(),
        analysis.near_ties.clone(),
    );
    let plan = lowerer.run(&selection);
    verify(&plan)?;
    let report = report::render(g, &chooser, &selection, analysis, &plan, opts);
    let dot = g.to_dot(&|v| report::colour(&selection, v, model));
    Ok(Compiled {
        graph_text: g.to_text(),
        dot,
        report,
        warnings: analysis.warnings.clone(),
        plan,
    })
}

/// The compiler's own checks of a plan it emitted: [`plan::validate`] and
/// the leakage check ([`leak::views`]). A plan failing either is a bug in
/// the compiler, whatever the model: an internal error, never a diagnostic.
fn verify(plan: &plan::Plan) -> Result<(), InternalError> {
    if let Err(errors) = plan::validate(plan) {
        return Err(InternalError::with_source(
            "the emitted plan fails validation",
            Failures(errors),
        ));
    }
    let violations: Vec<String> = leak::views(plan)
        .iter()
        .flat_map(|(p, v)| {
            let name = plan.party_name(*p).to_string();
            v.violations.iter().map(move |x| format!("{name}: {x}"))
        })
        .collect();
    if !violations.is_empty() {
        return Err(InternalError::with_source(
            "the emitted plan would reveal values beyond the outputs",
            Failures(violations),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    /// A plan the compiler emitted that fails its own checks is an internal
    /// error carrying the validator's findings as its source, not a
    /// diagnostic (it used to be E0303 with a span at the file's start).
    #[test]
    fn an_emitted_plan_failing_validation_is_an_internal_error_with_its_cause() {
        let src = "model m { party a; party b; input x: fixed[2] private(a) in [-1, 1];
                   input w: fixed[2] private(b) in [-1, 1]; let z = x * w; output z to a; }";
        let model = check_source(src).model.expect("checks");
        let mut plan = compile(&model, &Options::default()).expect("compiles").plan;
        assert!(verify(&plan).is_ok());

        // A broken invariant of the compiler's own: a party's program reads a
        // register nothing wrote.
        let at = plan.programs[0]
            .instrs
            .iter()
            .position(|i| !i.writes().is_empty())
            .expect("an instruction that writes");
        plan.programs[0].instrs.remove(at);
        let e = verify(&plan).expect_err("the plan is broken");
        assert_eq!(
            e.to_string(),
            "internal compiler error: the emitted plan fails validation"
        );
        let cause = e.source().expect("the validator's findings").to_string();
        assert!(cause.contains("before writing it"), "{cause}");
        let e = CompileError::from(e);
        assert!(matches!(e, CompileError::Internal(_)));
        assert!(e.source().is_some());
    }
}
