//! Differential tests (Cranelift style): every bundled model, run privately
//! in one process, must match the plaintext reference interpreter within
//! the error bound the compiler reports, for several batch sizes, with and
//! without a dealer, and with the Paillier-heavy and shares-only protocol
//! choices. Plus: no party's transcript holds another party's input in the clear.

use plan::{Owner, Plan, Tensor};
use rand::SeedableRng;
use runtime::exec::Transport;
use runtime::exec::{self, ChannelTransport, ExecError};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

fn model(name: &str) -> compiler::ir::CheckedModel {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .join(format!("{name}.veil"));
    let source = std::fs::read_to_string(path).unwrap();
    let r = compiler::check_source(&source);
    r.model
        .unwrap_or_else(|| panic!("{}", grammar::render(&r.diagnostics, name, &source)))
}

/// Random inputs in the declared ranges, from a fixed seed (test data only).
fn inputs_with_fixed_seed_for_tests(
    plan: &Plan,
    batch: usize,
    seed: u64,
) -> BTreeMap<String, Tensor> {
    exec::random_inputs(
        plan,
        batch,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed),
    )
    .unwrap()
}

use exec::inputs_per_party as per_party;

/// The executor takes only a validated plan; every compiled one is.
fn valid(plan: &Plan) -> plan::ValidPlan<'_> {
    plan::validate(plan).expect("a compiled plan validates")
}

fn test_options() -> exec::Options {
    exec::Options::with_small_keys_for_tests(1024)
}

/// Compile `name` with `opts`, run it privately on seeded inputs, and check
/// every output at every recipient against the reference.
fn check(name: &str, batch: usize, opts: &compiler::Options, seed: u64) -> Vec<exec::Outcome> {
    check_model(name, &model(name), batch, opts, seed)
}

fn check_model(
    name: &str,
    m: &compiler::ir::CheckedModel,
    batch: usize,
    opts: &compiler::Options,
    seed: u64,
) -> Vec<exec::Outcome> {
    let compiled = compiler::compile(m, opts).unwrap_or_else(|d| panic!("{name}: {d:?}"));
    let inputs = inputs_with_fixed_seed_for_tests(&compiled.plan, batch, seed);
    check_on(name, m, &compiled.plan, batch, &inputs)
}

/// Run `plan` (compiled from `m`) privately on `inputs`, and check every
/// output at every recipient against the reference.
fn check_on(
    name: &str,
    m: &compiler::ir::CheckedModel,
    plan: &Plan,
    batch: usize,
    inputs: &BTreeMap<String, Tensor>,
) -> Vec<exec::Outcome> {
    check_with(name, m, plan, batch, inputs, &test_options())
}

/// [`check_on`] with these executor options.
fn check_with(
    name: &str,
    m: &compiler::ir::CheckedModel,
    plan: &Plan,
    batch: usize,
    inputs: &BTreeMap<String, Tensor>,
    opts: &exec::Options,
) -> Vec<exec::Outcome> {
    let outcomes = exec::run_in_process(&valid(plan), &per_party(plan, inputs), opts)
        .unwrap_or_else(|e| panic!("{name} batch {batch}: {e}"));
    check_outcomes(name, m, plan, batch, inputs, outcomes)
}

/// Every output within its bound of the reference, and delivered only to
/// the parties it is addressed to.
fn check_outcomes(
    name: &str,
    m: &compiler::ir::CheckedModel,
    plan: &Plan,
    batch: usize,
    inputs: &BTreeMap<String, Tensor>,
    outcomes: Vec<exec::Outcome>,
) -> Vec<exec::Outcome> {
    let reference = compiler::reference::expected(m, inputs).unwrap();
    let mut checked = 0;
    for (o, spec) in plan.outputs.iter().enumerate() {
        let expected = &reference[o];
        for &p in &spec.to {
            let (got_name, got) = outcomes[p as usize]
                .outputs
                .iter()
                .find(|(n, _)| n == &spec.name)
                .expect("output delivered");
            assert_eq!(got_name, &spec.name);
            assert_eq!(
                got.shape, expected.value.shape,
                "{name}: shape of {}",
                spec.name
            );
            // |private - exact|, an argmax's near-tie index counting as exact.
            let deviations = compiler::reference::deviations(spec, got, expected).unwrap();
            for d in deviations {
                assert!(
                    d <= spec.error_bound,
                    "{name} batch {batch} ({:?}): output {} differs by {} > bound {}",
                    plan.randomness,
                    spec.name,
                    d,
                    spec.error_bound
                );
            }
            checked += 1;
        }
    }
    // Parties not addressed learn nothing.
    for (p, o) in outcomes.iter().enumerate() {
        for (n, _) in &o.outputs {
            let spec = plan.outputs.iter().find(|s| &s.name == n).unwrap();
            assert!(
                spec.to.contains(&(p as u32)),
                "{} learned {n}",
                plan.party_name(p as u32)
            );
        }
    }
    assert!(checked > 0);
    outcomes
}

fn options(f: impl FnOnce(&mut compiler::Options)) -> compiler::Options {
    let mut o = compiler::Options {
        key_bits: 2048,
        ..compiler::Options::default()
    };
    f(&mut o);
    o
}

const MODELS: [&str; 4] = ["logreg_100", "linreg", "mlp", "credit_2p"];
/// The benchmark networks with their trained weights (models/nets/), run on
/// the test images by `bundled_networks_label_test_images_as_the_reference`.
const NETS: [&str; 5] = ["net_a", "net_b", "net_c", "net_d", "lenet5"];
/// Models with comparisons (clamped sigmoid, relu, argmax): their
/// correlations come from the dealer, or without one from Paillier.
const DEALER_MODELS: [&str; 5] = [
    "logreg_wide",
    "relu_classifier",
    "row_stats",
    "channels",
    "softmax_classifier",
];

/// Convolutional models with random weights (no trained set), run on
/// random inputs by `depthwise_separable_blocks_take_convolution_triples`.
const CONV_MODELS: [&str; 1] = ["mobile_dw"];

/// models/mobile_dw.veil (MobileNet-style depthwise-separable blocks) with
/// a dealer: each convolution on shares, the two depthwise ones included,
/// takes one convolution triple (no elementwise triple for their products,
/// no patches cut on shares), the first (the client's image by the
/// server's kernels) an input-holder one, and a run matches the reference
/// at every recipient within the compiler's bounds.
#[test]
fn depthwise_separable_blocks_take_convolution_triples() {
    let o = options(|_| {});
    let plan = compiler::compile(&model(CONV_MODELS[0]), &o).unwrap().plan;
    let text = plan.to_text();
    let correlations = text.split("registers:").next().unwrap_or("");
    assert_eq!(
        correlations.matches("convolution triple").count(),
        5,
        "{correlations}"
    );
    assert_eq!(
        correlations
            .matches("input-holder convolution triple")
            .count(),
        1,
        "{correlations}"
    );
    for depthwise in ["groups 16x1]", "groups 32x1]"] {
        assert_eq!(text.matches(depthwise).count(), 1, "{correlations}");
    }
    assert!(!text.contains(": triple "), "{correlations}");
    assert!(!text.contains("share.im2col"), "{text}");
    for batch in [1, 3] {
        check(CONV_MODELS[0], batch, &o, 40 + batch as u64);
    }
}

/// Every model with comparisons, with the dealer's comparisons forced to
/// DCF keys (`plan::DealerComparisons::Dcf`), matches the reference; the
/// plan says so, and each comparison takes 2 rounds instead of 9 (the run's
/// rounds equal the plan's count, which the carry tree's plan exceeds).
#[test]
fn with_a_dealer_dealing_dcf_keys_every_comparison_model_matches_the_reference() {
    for (i, name) in DEALER_MODELS.iter().chain(NETS[..1].iter()).enumerate() {
        let dcf = options(|o| o.dealer_comparisons = Some(plan::DealerComparisons::Dcf));
        let tree = options(|o| o.dealer_comparisons = Some(plan::DealerComparisons::CarryTree));
        let plan = compiler::compile(&model(name), &dcf).unwrap().plan;
        assert!(
            plan.to_text().contains("deal (comparisons by DCF keys)"),
            "{name}"
        );
        let tree_plan = compiler::compile(&model(name), &tree).unwrap().plan;
        assert!(
            plan.estimate.rounds < tree_plan.estimate.rounds,
            "{name}: {} rounds by DCF keys, {} by the carry tree",
            plan.estimate.rounds,
            tree_plan.estimate.rounds
        );
        for batch in [1, 4] {
            check(name, batch, &dcf, 700 + i as u64 * 10 + batch as u64);
        }
    }
}

/// The cost model takes DCF keys where rounds cost more than bytes (batch 1
/// of a small classifier) and the carry tree where bytes do (batch 1000),
/// and the estimate of the DCF plan is within 10% of what a run sends, with
/// its rounds exact.
#[test]
fn the_cost_model_weighs_dcf_keys_against_the_carry_tree() {
    let chosen = |batch: u64| {
        let o = options(|o| {
            o.assume.insert("batch".into(), batch);
        });
        compiler::compile(&model("relu_classifier"), &o)
            .unwrap()
            .plan
            .dealer_comparisons()
    };
    assert_eq!(chosen(1), plan::DealerComparisons::Dcf);
    assert_eq!(chosen(1000), plan::DealerComparisons::CarryTree);
    for batch in [1, 3] {
        let (est, bytes, rounds) = traffic_against_estimate("relu_classifier", true, batch, 31);
        assert_eq!(rounds, est.rounds, "batch {batch}");
        assert_bytes_within(&est, bytes, 0.1, &format!("batch {batch}"));
    }
}

#[test]
fn with_a_dealer_every_model_matches_the_reference() {
    for (i, name) in MODELS.iter().chain(&DEALER_MODELS).enumerate() {
        for batch in [1, 3, 17] {
            check(
                name,
                batch,
                &options(|_| {}),
                100 + i as u64 * 10 + batch as u64,
            );
        }
    }
}

#[test]
fn without_a_dealer_every_model_matches_the_reference() {
    use plan::CorrelationEngine::{Ot, Paillier};
    for (i, name) in MODELS.iter().enumerate() {
        // Both engines; Paillier (slow) at one batch size.
        for (engine, batch) in [(Ot, 1), (Ot, 4), (Paillier, 2)] {
            let o = options(|o| {
                o.use_dealer = false;
                o.correlations = Some(engine);
            });
            let plan = compiler::compile(&model(name), &o).unwrap().plan;
            assert!(
                plan.correlation_engine().is_none_or(|e| e == engine),
                "{name}: {:?}",
                plan.correlation_engine()
            );
            check(name, batch, &o, 200 + i as u64 * 10 + batch as u64);
        }
    }
}

/// Sessions that keep their OT extension between them (a service's
/// connection, a run's chunks) skip the base OTs after the first, and
/// every session still matches the reference.
#[test]
fn sessions_continuing_one_ot_extension_match_the_reference() {
    let o = options(|o| {
        o.use_dealer = false;
        o.correlations = Some(plan::CorrelationEngine::Ot);
    });
    let m = model("relu_classifier");
    let plan = compiler::compile(&m, &o).unwrap().plan;
    let mut opts = test_options();
    opts.ot_link = Some(std::sync::Arc::new(exec::OtLink::new()));
    let cold = |batch: usize, seed: u64| {
        let inputs = inputs_with_fixed_seed_for_tests(&plan, batch, seed);
        check_on("relu_classifier", &m, &plan, batch, &inputs)
    };
    let warm = |batch: usize, seed: u64| {
        let inputs = inputs_with_fixed_seed_for_tests(&plan, batch, seed);
        check_with("relu_classifier", &m, &plan, batch, &inputs, &opts)
    };
    let sent = |o: &[exec::Outcome]| o.iter().map(|o| o.stats.bytes_sent).sum::<u64>();
    let rounds = |o: &[exec::Outcome]| o.iter().map(|o| o.stats.rounds).max().unwrap_or(0);
    let first = warm(3, 900);
    assert_eq!(
        sent(&first),
        sent(&cold(3, 901)),
        "the first session does base OTs"
    );
    // The hospital's RLWE public key, sent once per connection; later
    // sessions name it by its 16-byte seed.
    let rlwe_key = rlwe::PublicKeyMsg::byte_len(&rlwe::Params::n8192_q128()) as u64;
    for (i, batch) in [3, 1, 5, 3].into_iter().enumerate() {
        let again = warm(batch, 902 + i as u64);
        let fresh = cold(batch, 902 + i as u64);
        // 128 base OTs (a hello and a reply of Ristretto points) and the
        // RLWE public key are not sent.
        assert!(
            sent(&again) + 4_000 + rlwe_key - 16 < sent(&fresh),
            "batch {batch}: {} bytes continuing, {} afresh",
            sent(&again),
            sent(&fresh)
        );
        assert!(
            rounds(&again) < rounds(&fresh),
            "batch {batch}: no base-OT round trip"
        );
    }
}

/// A party that resumes an OT extension its peer no longer holds (the
/// peer's side was dropped, as after a failed session) gets a clear error
/// naming the fix, from both sides, and no output.
#[test]
fn resuming_an_extension_the_peer_dropped_is_refused() {
    let o = options(|o| {
        o.use_dealer = false;
        o.correlations = Some(plan::CorrelationEngine::Ot);
    });
    let plan = compiler::compile(&model("relu_classifier"), &o)
        .unwrap()
        .plan;
    // Party 0 (the first computing party) comes with an empty link.
    let p0 = (0..plan.parties.len())
        .find(|&p| plan.parties[p].role == plan::Role::Compute)
        .unwrap();
    let results = second_session_with_one_fresh_link(&plan, 950, p0);
    let e = results[p0]
        .as_ref()
        .expect_err("party 0 refuses the resume");
    assert!(
        e.to_string().contains("does not hold") && e.to_string().contains("reconnect"),
        "{e}"
    );
    let p1 = (p0 + 1..plan.parties.len())
        .find(|&p| plan.parties[p].role == plan::Role::Compute)
        .unwrap();
    assert!(results[p1].is_err(), "party 1 gets no output");
}

/// Runs `plan` twice at batch 2 with one link shared by every party (so
/// the second session continues what the first kept), except that in the
/// second session party `fresh` comes with an empty link; returns each
/// party's result of the second session.
fn second_session_with_one_fresh_link(
    plan: &Plan,
    seed: u64,
    fresh: usize,
) -> Vec<Result<exec::Outcome, ExecError>> {
    let inputs = inputs_with_fixed_seed_for_tests(plan, 2, seed);
    let per = per_party(plan, &inputs);
    let mut linked = test_options();
    linked.ot_link = Some(Arc::new(exec::OtLink::new()));
    exec::run_in_process(&valid(plan), &per, &linked).unwrap();
    let mut empty = test_options();
    empty.ot_link = Some(Arc::new(exec::OtLink::new()));
    empty.timeout = std::time::Duration::from_secs(5);
    linked.timeout = empty.timeout;
    let names: Vec<String> = plan.parties.iter().map(|p| p.name.clone()).collect();
    let valid = valid(plan);
    std::thread::scope(|s| {
        let handles: Vec<_> = ChannelTransport::mesh(&names, empty.timeout)
            .into_iter()
            .enumerate()
            .map(|(p, mut t)| {
                let opts = if p == fresh { &empty } else { &linked };
                let (valid, mine) = (&valid, &per[p]);
                s.spawn(move || exec::run_party(valid, p as u32, mine, &mut t, opts))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// A service's sessions: the model owner's weights stay, the data
/// changes. With a weight cache (`veil serve`'s), each masked product's
/// `W` is made ready the second time it is seen and answers from then on,
/// and every session still matches the reference.
#[test]
fn sessions_with_weights_made_ready_match_the_reference() {
    let o = options(|o| {
        o.use_dealer = false;
        o.correlations = Some(plan::CorrelationEngine::Ot);
    });
    for name in ["relu_classifier", "net_a"] {
        let m = model(name);
        let plan = compiler::compile(&m, &o).unwrap().plan;
        let products = plan.to_text().matches("rlwe.masked.close").count();
        assert!(products >= 2, "{name}");
        let mut opts = test_options();
        opts.ot_link = Some(Arc::new(exec::OtLink::new()));
        let cache = Arc::new(exec::WeightCache::new(exec::WeightCache::DEFAULT_BYTES));
        opts.rlwe_weights = Some(cache.clone());
        let first = inputs_with_fixed_seed_for_tests(&plan, 2, 970);
        for session in 0..3u64 {
            let mut inputs = inputs_with_fixed_seed_for_tests(&plan, 2, 971 + session);
            // The model owner's inputs are the first session's.
            for spec in &plan.inputs {
                if spec.is_parameter() {
                    inputs.insert(spec.name.clone(), first[&spec.name].clone());
                }
            }
            check_with(name, &m, &plan, 2, &inputs, &opts);
            let want = if session == 0 { 0 } else { products };
            assert_eq!(cache.ready(), want, "{name}, session {session}");
        }
    }
}

/// Sessions run ahead of their data (`exec::ahead`): the two parties
/// compute the preprocessing with only their parameters, and the data
/// comes at the gates. Every model of the corpus, without a dealer, runs
/// ahead and matches the reference, over a kept link as a service keeps
/// it, and a session's correlations are its own: the second session on the
/// link, with new data, still matches.
#[test]
fn sessions_run_ahead_of_their_data_match_the_reference() {
    let o = options(|o| {
        o.use_dealer = false;
        o.correlations = Some(plan::CorrelationEngine::Ot);
    });
    let every = MODELS
        .iter()
        .chain(&DEALER_MODELS)
        .chain(&NETS)
        .chain(&CONV_MODELS);
    for (i, name) in every.enumerate() {
        let batch = 1 + i % 3;
        let m = model(name);
        let plan = compiler::compile(&m, &o).unwrap().plan;
        exec::ahead::check(&plan).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut opts = test_options();
        opts.ot_link = Some(Arc::new(exec::OtLink::new()));
        let first = inputs_with_fixed_seed_for_tests(&plan, batch, 980);
        for session in 0..2u64 {
            let mut inputs = inputs_with_fixed_seed_for_tests(&plan, batch, 981 + session);
            for spec in plan.inputs.iter().filter(|s| s.is_parameter()) {
                inputs.insert(spec.name.clone(), first[&spec.name].clone());
            }
            let per = per_party(&plan, &inputs);
            let (early, late) = exec::ahead::split_data(&plan, &per);
            let dims = plan::infer_dims(&plan, None, &plan::views(&inputs)).unwrap();
            let (outcomes, _) =
                exec::ahead::run_in_process_ahead(&valid(&plan), &early, late, &dims, &opts)
                    .unwrap_or_else(|e| panic!("{name} session {session}: {e}"));
            check_outcomes(name, &m, &plan, batch, &inputs, outcomes);
        }
    }
}

/// A session prepared for one batch size refuses data of another, before
/// it reads it, with a message naming both sizes; a plan with a dealer is
/// refused (its dealer's pool is what runs ahead there).
#[test]
fn a_session_run_ahead_refuses_data_of_another_size_and_plans_with_a_dealer() {
    let o = options(|o| {
        o.use_dealer = false;
        o.correlations = Some(plan::CorrelationEngine::Ot);
    });
    let m = model("relu_classifier");
    let plan = compiler::compile(&m, &o).unwrap().plan;
    let inputs = inputs_with_fixed_seed_for_tests(&plan, 3, 990);
    let per = per_party(&plan, &inputs);
    let (early, late) = exec::ahead::split_data(&plan, &per);
    let dims: BTreeMap<String, usize> = [("batch".to_string(), 5)].into();
    let mut opts = test_options();
    opts.timeout = std::time::Duration::from_secs(5);
    let e = exec::ahead::run_in_process_ahead(&valid(&plan), &early, late, &dims, &opts)
        .expect_err("3 rows for a session of 5");
    assert!(
        e.to_string().contains("batch=3") && e.to_string().contains("batch=5"),
        "{e}"
    );
    let dealt = compiler::compile(&m, &options(|_| {})).unwrap().plan;
    let e = exec::ahead::check(&dealt).expect_err("a dealer's plan");
    assert!(e.to_string().contains("dealer"), "{e}");
}

/// A model owner whose link lost the data owner's RLWE key (a fresh
/// link on one side only) refuses the kept key's seed with a clear error
/// naming the fix, and neither party gets an output.
#[test]
fn a_kept_rlwe_key_the_peer_does_not_hold_is_refused() {
    let o = options(|o| {
        o.use_dealer = false;
        o.correlations = Some(plan::CorrelationEngine::Ot);
    });
    let plan = compiler::compile(&model("relu_classifier"), &o)
        .unwrap()
        .plan;
    // The hospital encrypts (x is its input); the lab answers, and comes
    // with an empty link.
    let party = |name: &str| plan.parties.iter().position(|p| p.name == name).unwrap();
    let (client, server) = (party("hospital"), party("lab"));
    let results = second_session_with_one_fresh_link(&plan, 960, server);
    let e = results[server]
        .as_ref()
        .expect_err("the lab refuses the kept key");
    assert!(
        e.to_string().contains("RLWE key") && e.to_string().contains("reconnect"),
        "{e}"
    );
    assert!(results[client].is_err(), "the hospital gets no output");
}

#[test]
fn shares_only_and_paillier_heavy_plans_match_the_reference() {
    use compiler::ir::Protocol;
    for (i, name) in MODELS.iter().enumerate() {
        for (j, prefer) in [Protocol::Shares, Protocol::Paillier]
            .into_iter()
            .enumerate()
        {
            for dealer in [true, false] {
                let o = options(|o| {
                    o.prefer = Some(prefer);
                    o.use_dealer = dealer;
                });
                check(
                    name,
                    3,
                    &o,
                    300 + i as u64 * 10 + j as u64 * 2 + dealer as u64,
                );
            }
        }
    }
}

/// Every bundled model without a dealer, its matrix products forced onto
/// RLWE (`--prefer rlwe`), matches the reference (the cost model's own
/// choice, mostly RLWE too, is `without_a_dealer_every_model_matches_the_reference`).
#[test]
fn rlwe_plans_match_the_reference_without_a_dealer() {
    use compiler::ir::Protocol;
    let o = options(|o| {
        o.prefer = Some(Protocol::Rlwe);
        o.use_dealer = false;
    });
    for (i, name) in MODELS.iter().chain(&DEALER_MODELS).enumerate() {
        let plan = compiler::compile(&model(name), &o).unwrap().plan;
        let text = plan.to_text();
        // Every model but the one without a product has an RLWE one.
        assert_eq!(
            text.contains("rlwe.respond"),
            *name != "credit_2p",
            "{name}:\n{text}"
        );
        for batch in [1, 3] {
            check(name, batch, &o, 700 + i as u64 * 10 + batch as u64);
        }
    }
}

/// Issue 17's products (`benches/rlwe/matmul_KxN.veil`) without a dealer,
/// forced prepared (`--prefer rlwe-prepared`; the cost model's own choice
/// is masked, `issue_17_products_run_masked_and_match_the_reference`), at
/// batch 1 and at batch 100 (the report names it), match the reference;
/// the data owner uploads 16 bytes per input element online for the
/// product (plus its header and the truncation's opening).
#[test]
fn issue_17_products_run_prepared_and_match_the_reference() {
    use compiler::choose::RlweForm;
    use compiler::ir::Protocol;
    for (i, (k, n)) in [(64, 16), (128, 128), (784, 128)].into_iter().enumerate() {
        let name = format!("matmul_{k}x{n}");
        let path = format!("{}/../benches/rlwe/{name}.veil", env!("CARGO_MANIFEST_DIR"));
        let m = checked(&std::fs::read_to_string(&path).unwrap());
        for prefer in [None, Some(Protocol::Rlwe)] {
            for batch in [1usize, 100] {
                let o = options(|o| {
                    o.prefer = prefer;
                    o.rlwe_form = Some(RlweForm::Prepared);
                    o.use_dealer = false;
                    o.assume.insert("batch".into(), batch as u64);
                });
                let compiled = compiler::compile(&m, &o).unwrap();
                let text = compiled.plan.to_text();
                assert!(
                    text.contains("rlwe.prepare.respond") && text.contains(") prepared"),
                    "{name} at {batch}:\n{text}"
                );
                assert!(compiled
                    .report
                    .contains("prepared: W's part in the preprocessing"));
                // Large products are slow in debug builds: batch 2 for them.
                let rows = if k * n > 10_000 { 2 } else { batch };
                let outcomes = check_model(&name, &m, rows, &o, 1700 + i as u64 * 10 + rows as u64);
                let data = compiled.plan.parties.iter().position(|p| p.name == "data");
                let sent = outcomes[data.unwrap()].stats.online_bytes_sent as usize;
                // The query's 16 B per input and header, 8 B per output opened.
                assert!(
                    sent >= 16 * rows * k && sent <= 16 * rows * k + 8 * rows * n + 200,
                    "{sent}"
                );
            }
        }
    }
}

/// A masked product whose `W` the model owner computes from its inputs
/// (dequantised weights, `wq * scale`, and a longer chain of clear steps)
/// has those steps moved into its preprocessing, before the correlations
/// are generated, and still matches the reference, with the cost model's
/// choice and forced masked, at batch 1 and 5.
#[test]
fn masked_products_of_computed_weights_match_the_reference() {
    use compiler::choose::RlweForm;
    use compiler::ir::Protocol;
    let m = checked(
        "model dequantised {
            party client;
            party server;
            input x: fixed[batch, 24] private(client) in [-1, 1];
            input w1q: fixed[24, 16] private(server) in [-127, 127];
            input b1: fixed[16] private(server) in [-1, 1];
            input w2q: fixed[16, 3] private(server) in [-127, 127];
            input z2: fixed private(server) in [-4, 4];
            let w1 = w1q * 0.0078125;
            let h = relu(x @ w1 + b1);
            let w2 = (w2q - z2) * 0.00390625;
            let y = h @ w2;
            output y to client;
        }",
    );
    for (j, (prefer, form)) in [(None, None), (Some(Protocol::Rlwe), Some(RlweForm::Masked))]
        .into_iter()
        .enumerate()
    {
        let o = options(|o| {
            o.prefer = prefer;
            o.rlwe_form = form;
            o.use_dealer = false;
        });
        let plan = compiler::compile(&m, &o).unwrap().plan;
        let text = plan.to_text();
        assert_eq!(text.matches("rlwe.masked.open").count(), 2, "{text}");
        // At the server, both weights are computed before the correlations.
        let server = plan
            .parties
            .iter()
            .position(|p| p.name == "server")
            .unwrap();
        let lines: Vec<String> = plan.programs[server]
            .instrs
            .iter()
            .map(|i| plan.instr_text(i))
            .collect();
        let generate = lines
            .iter()
            .position(|l| l.contains("generate correlations"))
            .unwrap();
        let muls: Vec<usize> = (lines.iter().enumerate())
            .filter(|(_, l)| l.contains("clear.mul"))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(muls.len(), 2, "{lines:#?}");
        assert!(muls.iter().all(|&i| i < generate), "{lines:#?}");
        for batch in [1, 5] {
            check_model(
                "dequantised",
                &m,
                batch,
                &o,
                3900 + j as u64 * 10 + batch as u64,
            );
        }
    }
}

/// Issue 17's products without a dealer run masked (Delphi) by the cost
/// model's own choice and by `--prefer rlwe-masked`, at batch 1 and 100,
/// and match the reference. Online neither party runs an RLWE instruction
/// for the product (the HE is all in the preprocessing), and the data
/// owner's one message for it is `x - r`: exactly 8 bytes per input
/// element and the frame's header; nothing comes back for it.
#[test]
fn issue_17_products_run_masked_and_match_the_reference() {
    use compiler::choose::RlweForm;
    use compiler::ir::Protocol;
    use runtime::exec::wire::{self, Wire};
    for (i, (k, n)) in [(64, 16), (128, 128), (784, 128)].into_iter().enumerate() {
        let name = format!("matmul_{k}x{n}");
        let path = format!("{}/../benches/rlwe/{name}.veil", env!("CARGO_MANIFEST_DIR"));
        let m = checked(&std::fs::read_to_string(&path).unwrap());
        for (prefer, form) in [(None, None), (Some(Protocol::Rlwe), Some(RlweForm::Masked))] {
            for batch in [1usize, 100] {
                let o = options(|o| {
                    o.prefer = prefer;
                    o.rlwe_form = form;
                    o.use_dealer = false;
                    o.assume.insert("batch".into(), batch as u64);
                });
                let compiled = compiler::compile(&m, &o).unwrap();
                let plan = &compiled.plan;
                let text = plan.to_text();
                let what = format!("{name} at {batch} ({form:?})");
                assert!(
                    text.contains("rlwe.masked.open") && text.contains("rlwe.masked.close"),
                    "{what}:\n{text}"
                );
                assert!(!text.contains("rlwe.prepare"), "{what}:\n{text}");
                assert!(
                    compiled.report.contains("masked (Delphi)"),
                    "{what}:\n{}",
                    compiled.report
                );
                // The online phase (from the first input on) has no RLWE
                // instruction but the masked open and close.
                for prog in &plan.programs {
                    let online = prog
                        .instrs
                        .iter()
                        .skip_while(|i| !matches!(i, plan::Instr::Input { .. }));
                    for ins in online {
                        let t = plan.instr_text(ins);
                        assert!(
                            !t.contains("rlwe.") || t.contains("rlwe.masked."),
                            "{what}: online {t}"
                        );
                    }
                }
                // Large products are slow in debug builds: batch 2 for them.
                let rows = if k * n > 10_000 { 2 } else { batch };
                let inputs = inputs_with_fixed_seed_for_tests(plan, rows, 1800 + i as u64 * 10);
                let names: Vec<String> = plan.parties.iter().map(|p| p.name.clone()).collect();
                let logs: Vec<Arc<Mutex<Vec<Vec<u8>>>>> =
                    names.iter().map(|_| Arc::default()).collect();
                let transports: Vec<SentFrames> =
                    ChannelTransport::mesh(&names, std::time::Duration::from_secs(60))
                        .into_iter()
                        .zip(&logs)
                        .map(|(inner, sent)| SentFrames {
                            inner,
                            sent: sent.clone(),
                        })
                        .collect();
                let reference = compiler::reference::expected(&m, &inputs).unwrap();
                let outcomes = exec::run_with_transports(
                    &valid(plan),
                    &per_party(plan, &inputs),
                    transports,
                    &test_options(),
                )
                .unwrap_or_else(|e| panic!("{what}: {e}"));
                let data = plan.parties.iter().position(|p| p.name == "data").unwrap();
                let (_, y) = &outcomes[data].outputs[0];
                let d = compiler::reference::deviations(&plan.outputs[0], y, &reference[0]);
                assert!(
                    d.unwrap().iter().all(|d| *d <= plan.outputs[0].error_bound),
                    "{what}"
                );
                let frames = logs[data].lock().unwrap();
                let header = wire::encode(&[Wire::Ring(runtime::sharing::OpenMsg {
                    data: Vec::new(),
                    shape: vec![rows, k],
                })])
                .len();
                let masked: Vec<usize> = frames
                    .iter()
                    .filter(|f| {
                        matches!(&wire::decode(f).unwrap()[..],
                            [Wire::Ring(o)] if o.shape == [rows, k])
                    })
                    .map(|f| f.len())
                    .collect();
                assert_eq!(masked, [8 * rows * k + header], "{what}");
                // The data owner's RLWE frames: its key and the mask's
                // query, both in the preprocessing.
                let rlwe = frames
                    .iter()
                    .filter(|f| {
                        wire::decode(f)
                            .unwrap()
                            .iter()
                            .any(|v| matches!(v, Wire::Rlwe { .. }))
                    })
                    .count();
                assert_eq!(rlwe, 2, "{what}");
                // Online: the masked input, the truncation's opening and the output's.
                let sent = outcomes[data].stats.online_bytes_sent as usize;
                assert!(
                    sent >= 8 * rows * k && sent <= 8 * rows * k + 8 * rows * n + 200,
                    "{what}: {sent}"
                );
            }
        }
    }
}

/// Records every frame a party sends.
struct SentFrames {
    inner: ChannelTransport,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Transport for SentFrames {
    fn send(&mut self, to: u32, frame: Vec<u8>) -> Result<(), ExecError> {
        self.sent.lock().unwrap().push(frame.clone());
        self.inner.send(to, frame)
    }
    fn recv(&mut self, from: u32) -> Result<Vec<u8>, ExecError> {
        self.inner.recv(from)
    }
}

/// The mask of a masked RLWE product is fresh in every session (drawn
/// from the OS CSPRNG in the preprocessing): the same input sent twice is
/// two different `x - r`, and neither contains `x`.
#[test]
fn a_masked_products_mask_is_fresh_per_session() {
    use runtime::exec::wire::{self, Wire};
    let o = options(|o| o.use_dealer = false);
    let plan = compiler::compile(&model("logreg_100"), &o).unwrap().plan;
    assert!(plan.to_text().contains("rlwe.masked.open"));
    let inputs = inputs_with_fixed_seed_for_tests(&plan, 4, 9);
    let names: Vec<String> = plan.parties.iter().map(|p| p.name.clone()).collect();
    let client = plan
        .programs
        .iter()
        .position(|p| {
            p.instrs
                .iter()
                .any(|i| matches!(i, plan::Instr::RlweMaskedOpen { .. }))
        })
        .unwrap();
    let shape: Vec<usize> = plan
        .programs
        .iter()
        .flat_map(|p| &p.instrs)
        .find_map(|i| match i {
            plan::Instr::RlweMaskedOpen { msg, .. } => {
                let dims = plan::infer_dims(&plan, None, &plan::views(&inputs)).unwrap();
                Some(plan::concrete(&plan.reg(*msg).shape, &dims).unwrap())
            }
            _ => None,
        })
        .unwrap();
    let mut opened = Vec::new();
    for _ in 0..2 {
        let logs: Vec<Arc<Mutex<Vec<Vec<u8>>>>> = names.iter().map(|_| Arc::default()).collect();
        let transports: Vec<SentFrames> =
            ChannelTransport::mesh(&names, std::time::Duration::from_secs(60))
                .into_iter()
                .zip(&logs)
                .map(|(inner, sent)| SentFrames {
                    inner,
                    sent: sent.clone(),
                })
                .collect();
        exec::run_with_transports(
            &valid(&plan),
            &per_party(&plan, &inputs),
            transports,
            &test_options(),
        )
        .unwrap();
        let frames = logs[client].lock().unwrap();
        let first = frames
            .iter()
            .find_map(|f| match &wire::decode(f).unwrap()[..] {
                [Wire::Ring(o)] if o.shape == shape => Some(o.data.clone()),
                _ => None,
            })
            .expect("the masked input");
        opened.push(first);
    }
    assert_eq!(opened[0].len(), opened[1].len());
    let same = opened[0]
        .iter()
        .zip(&opened[1])
        .filter(|(a, b)| a == b)
        .count();
    assert_eq!(same, 0, "two sessions' masked inputs share {same} entries");
}

/// A malformed masked input from the peer (entries missing, another
/// shape, another kind of message), or a malformed RLWE message of the
/// product on the mask in the preprocessing, is a clear error, never a
/// panic.
#[test]
fn a_malformed_masked_rlwe_input_is_an_error() {
    use runtime::exec::wire::{self, Wire};
    let o = options(|o| o.use_dealer = false);
    let plan = compiler::compile(&model("logreg_100"), &o).unwrap().plan;
    let x = plan
        .programs
        .iter()
        .flat_map(|p| &p.instrs)
        .find_map(|i| match i {
            plan::Instr::RlweMaskedOpen { msg, .. } => Some(*msg),
            _ => None,
        })
        .expect("a masked product");
    let inputs = inputs_with_fixed_seed_for_tests(&plan, 3, 5);
    let names: Vec<String> = plan.parties.iter().map(|p| p.name.clone()).collect();
    type Edit = fn(&mut runtime::sharing::OpenMsg) -> Wire;
    let cases: [(Edit, &str); 4] = [
        (
            |m| {
                m.data.pop();
                Wire::Ring(m.clone())
            },
            "",
        ),
        (
            |m| {
                m.shape = vec![m.data.len()];
                Wire::Ring(m.clone())
            },
            "malformed masked RLWE input",
        ),
        (
            |m| {
                m.shape.reverse();
                Wire::Ring(m.clone())
            },
            "malformed masked RLWE input",
        ),
        (
            |m| Wire::Clear {
                shape: m.shape.clone(),
                data: vec![0.0; m.data.len()],
            },
            "expected x minus its mask",
        ),
    ];
    let shape: Vec<usize> = {
        let dims = plan::infer_dims(&plan, None, &plan::views(&inputs)).unwrap();
        plan::concrete(&plan.reg(x).shape, &dims).unwrap()
    };
    for (edit, expect) in cases {
        let transports: Vec<EditRing> =
            ChannelTransport::mesh(&names, std::time::Duration::from_secs(60))
                .into_iter()
                .map(|inner| EditRing {
                    inner,
                    shape: shape.clone(),
                    edit,
                })
                .collect();
        let err = exec::run_with_transports(
            &valid(&plan),
            &per_party(&plan, &inputs),
            transports,
            &test_options(),
        )
        .expect_err("a malformed masked input is refused");
        assert!(err.to_string().contains(expect), "{err}");
    }
    // The product on the mask in the preprocessing: the client's key and
    // its query of the mask, the server's response, each malformed.
    assert_tampered_rlwe_is_refused(
        &plan,
        &inputs,
        &[
            (0, 0, TRUNCATE, "public key truncated"),
            (0, 1, TRUNCATE, "mask query truncated"),
            (0, 1, EXTEND, "mask query extended"),
            (0, 1, HEADER, "mask query header"),
            (0, 1, OVER_PRIME, "mask query residue over its prime"),
            (1, 0, TRUNCATE, "response truncated"),
            (1, 0, EMPTY, "response empty"),
            (1, 0, HEADER, "response header"),
            (1, 0, OVER_PRIME, "response residue over its prime"),
        ],
    );
    /// Rewrites a frame of one ring message of `shape` with `edit`.
    struct EditRing {
        inner: ChannelTransport,
        shape: Vec<usize>,
        edit: Edit,
    }
    impl Transport for EditRing {
        fn send(&mut self, to: u32, frame: Vec<u8>) -> Result<(), ExecError> {
            match &mut wire::decode(&frame).unwrap()[..] {
                [Wire::Ring(m)] if m.shape == self.shape => {
                    let edited = (self.edit)(m);
                    self.inner.send(to, wire::encode(&[edited]))
                }
                _ => self.inner.send(to, frame),
            }
        }
        fn recv(&mut self, from: u32) -> Result<Vec<u8>, ExecError> {
            self.inner.recv(from)
        }
    }
}

/// The convolutions of net_b and LeNet-5 run on RLWE HomConv (the input
/// encrypted, no patches on the wire), both when forced onto RLWE and by
/// the cost model's own choice without a dealer, and match the reference.
#[test]
fn convolutions_run_on_rlwe_homconv_and_match_the_reference() {
    use compiler::ir::Protocol;
    for (i, name) in ["net_b", "lenet5"].into_iter().enumerate() {
        for prefer in [Some(Protocol::Rlwe), None] {
            // At batch 1 (HomConv is one query per image; the patches'
            // product, batched, wins from about 10 to 30 images on).
            let o = options(|o| {
                o.prefer = prefer;
                o.use_dealer = false;
                o.assume.insert("batch".into(), 1);
            });
            let compiled = compiler::compile(&model(name), &o).unwrap();
            let text = compiled.plan.to_text();
            // Both convolutions: the first on the client's clear input, the
            // second on shares (the client's share encrypted).
            assert_eq!(
                text.matches(" as conv im2col[").count(),
                4,
                "{name} ({prefer:?}): a query and a response per convolution\n{text}"
            );
            let report = &compiled.report;
            assert!(report.contains("RLWE HomConv"), "{name}:\n{report}");
            for batch in [1, 3] {
                check(name, batch, &o, 900 + i as u64 * 10 + batch as u64);
            }
        }
    }
}

/// The source of a model with one convolution of `x` (at the client) by
/// `w` (at the server), and one of `x` shared (plus the server's `xs`).
fn conv_model_source(
    c: usize,
    hw: [usize; 2],
    m: usize,
    k: [usize; 2],
    stride: usize,
    pad: usize,
) -> String {
    let [h, w] = hw;
    let [kh, kw] = k;
    format!(
        "model conv {{
            precision 12;
            party client; party server;
            input x: fixed[batch, {c}, {h}, {w}] private(client) in [-1, 1];
            input xs: fixed[batch, {c}, {h}, {w}] private(server) in [-1, 1];
            input w: fixed[{m}, {c}, {kh}, {kw}] private(server) in [-1, 1];
            input b: fixed[{m}] private(server) in [-1, 1];
            let first = conv2d(x, w, b, stride: {stride}, padding: {pad});
            let later = conv2d(x + xs, w, stride: {stride}, padding: {pad});
            output first to client;
            output later to server;
        }}"
    )
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 8, ..Default::default() })]
    /// Random convolution shapes, strides and paddings through the whole
    /// pipeline (compiler, plan, both runtimes) on RLWE HomConv, in both
    /// operand layouts (the input clear at the client, and shared), match
    /// the reference: masked (the cost model's choice: HomConv on the
    /// mask in the preprocessing, the input minus the mask online, cut
    /// into patches at the server) and in one piece online.
    #[test]
    fn random_convolutions_on_rlwe_match_the_reference(
        c in 1usize..5,
        h in 3usize..12,
        w in 3usize..12,
        m in 1usize..6,
        kh in 1usize..4,
        kw in 1usize..4,
        stride in 1usize..3,
        pad in 0usize..2,
        batch in 1usize..3,
        seed in 0u64..1000,
    ) {
        use compiler::choose::RlweForm;
        use compiler::ir::Protocol;
        let src = conv_model_source(c, [h, w], m, [kh, kw], stride, pad);
        let model = checked(&src);
        for (form, convs, masked) in [(None, 6, 2), (Some(RlweForm::Whole), 4, 0)] {
            let o = options(|o| {
                o.prefer = Some(Protocol::Rlwe);
                o.rlwe_form = form;
                o.use_dealer = false;
                o.assume.insert("batch".into(), 1);
            });
            let plan = compiler::compile(&model, &o).unwrap().plan;
            let text = plan.to_text();
            // Both convolutions, each a query and a response (and masked,
            // the server's patches of the input minus its mask online).
            proptest::prop_assert_eq!(text.matches(" as conv im2col[").count(), convs, "{}", text);
            proptest::prop_assert_eq!(text.matches("rlwe.masked.close").count(), masked, "{}", text);
            check_model("conv", &model, batch, &o, seed);
        }
    }
}

/// `conv2d(...) via rlwe` runs the convolution on RLWE HomConv even with a
/// dealer (whose triples the cost model would otherwise take), masked (its
/// kernels are the server's input): HomConv on the mask in the
/// preprocessing, the input minus the mask online.
#[test]
fn a_convolution_via_rlwe_runs_on_homconv_with_a_dealer() {
    let src = "model via_conv {
        precision 12;
        party client; party server; dealer helper;
        input x: fixed[batch, 2, 7, 7] private(client) in [-1, 1];
        input w: fixed[3, 2, 3, 3] private(server) in [-1, 1];
        input b: fixed[3] private(server) in [-1, 1];
        let y = conv2d(x, w, b, padding: 1) via rlwe;
        output y to client;
    }";
    let m = checked(src);
    let o = options(|o| {
        o.assume.insert("batch".into(), 1);
    });
    let compiled = compiler::compile(&m, &o).unwrap();
    let text = compiled.plan.to_text();
    assert_eq!(text.matches(" as conv im2col[").count(), 3, "{text}");
    assert!(text.contains("rlwe.masked.close"), "{text}");
    assert!(
        compiled.report.contains("RLWE HomConv") && compiled.report.contains("`via rlwe`"),
        "{}",
        compiled.report
    );
    for batch in [1, 2] {
        check_model("via_conv", &m, batch, &o, 950 + batch as u64);
    }
}

/// `max` and `argmax` of one operand run as one tournament (fewer rounds
/// than two), with ties (relu's zeros: the lowest index wins), with and
/// without a dealer, and match the reference; `max` of another operand
/// keeps its own tournament.
#[test]
fn max_and_argmax_of_one_operand_share_a_tournament() {
    let src = "model fused {
        party client; party server; dealer helper;
        input x: fixed[batch, 5] private(client) in [-2, 2];
        input y: fixed[batch, 5] private(server) in [-2, 2];
        let r = relu(x + y);
        let k = argmax(r);
        let m = max(r);
        let n = max(x - y);
        output k to client;
        output m to client;
        output n to client;
    }";
    let m = checked(src);
    for dealer in [true, false] {
        let o = options(|o| o.use_dealer = dealer);
        let plan = compiler::compile(&m, &o).unwrap().plan;
        let text = plan.to_text();
        assert_eq!(text.matches("compare.maxargmax").count(), 2, "{text}");
        assert_eq!(text.matches("compare.maxreduce").count(), 2, "{text}");
        assert!(!text.contains("compare.argmax"), "{text}");
        for batch in [1, 6] {
            let outcomes = check_model("fused", &m, batch, &o, 960 + batch as u64);
            // relu (9 rounds) and two tournaments of 3 levels (27 each);
            // three tournaments would be 90 rounds.
            assert!(
                outcomes.iter().all(|o| o.stats.rounds < 75),
                "{:?}",
                outcomes[0].stats
            );
        }
    }
}

/// A malformed RLWE convolution query or response (one image's message
/// cut short, one too many, a residue over its prime) is a clear error.
#[test]
fn a_malformed_rlwe_convolution_message_is_an_error() {
    use compiler::choose::RlweForm;
    use compiler::ir::Protocol;
    let o = options(|o| {
        o.prefer = Some(Protocol::Rlwe);
        o.rlwe_form = Some(RlweForm::Whole);
        o.use_dealer = false;
        o.assume.insert("batch".into(), 1);
    });
    let m = checked(&conv_model_source(2, [6, 6], 3, [3, 3], 1, 1));
    let plan = compiler::compile(&m, &o).unwrap().plan;
    let text = plan.to_text();
    assert!(text.contains(" as conv im2col[") && !text.contains("rlwe.prepare"));
    let inputs = inputs_with_fixed_seed_for_tests(&plan, 2, 7);
    let another: RlweEdit = |b| b.extend(b.clone());
    assert_tampered_rlwe_is_refused(
        &plan,
        &inputs,
        &[
            (0, 0, TRUNCATE, "query truncated"),
            (0, 0, EXTEND, "query extended"),
            (0, 0, another, "query with a third image"),
            (0, 0, HEADER, "query header"),
            (0, 0, OVER_PRIME, "query residue over its prime"),
            (1, 0, TRUNCATE, "response truncated"),
            (1, 0, another, "response with a third image"),
            (1, 0, EMPTY, "response empty"),
            (1, 0, HEADER, "response header"),
            (1, 0, OVER_PRIME, "response residue over its prime"),
        ],
    );
}

/// The model of [`every_rlwe_operand_layout_matches_the_reference`].
const LAYOUTS: &str = "model layouts {
        precision 16;
        party client; party server; dealer helper;
        input x:  fixed[batch, 6] private(client) in [-2, 2];
        input xs: fixed[batch, 6] private(server) in [-2, 2];
        input w:  fixed[6, 3] private(server) in [-1, 1];
        input wc: fixed[6, 3] private(client) in [-1, 1];
        input v:  fixed[3] private(server) in [-1, 1];
        let clear_clear = x @ w;              // x at client, W at server
        let xsh = x + xs;                     // shared
        let shared_clear = xsh @ w;           // x shared, W at server
        let shared_clear2 = xsh @ wc;         // x shared, W at client
        let wsh = w + wc;                     // shared
        let both = xsh @ wsh;                 // both shared
        let vec = both @ v;                   // a vector W
        let computed = x @ (w * 0.5);         // W computed at the server
        output clear_clear to client;
        output computed to client;
        output shared_clear to client;
        output shared_clear2 to server;
        output both to client;
        output vec to server;
    }";

/// The operand layouts of [`every_rlwe_operand_layout_matches_the_reference`]
/// masked (Delphi; the cost model's choice, and forced): the four products
/// whose `W` is a party's input, and the one whose `W` the server computes
/// (`w * 0.5`, moved into its preprocessing), run their RLWE product on a
/// mask in the preprocessing (`rlwe.mask`, a query of it, the answer with
/// `W` read from the input or its register) and online only `x - r`
/// (clear at the client, or the client's share; the server adds its
/// share's product) and the local product; each against the reference,
/// with and without a dealer.
#[test]
fn every_rlwe_operand_layout_runs_masked_and_matches_the_reference() {
    use compiler::choose::RlweForm;
    use compiler::ir::Protocol;
    let m = checked(LAYOUTS);
    for (dealer, form) in [
        (false, None),
        (false, Some(RlweForm::Masked)),
        (true, Some(RlweForm::Masked)),
    ] {
        let o = options(|o| {
            o.prefer = Some(Protocol::Rlwe);
            o.rlwe_form = form;
            o.use_dealer = dealer;
        });
        let plan = compiler::compile(&m, &o).unwrap().plan;
        let text = plan.to_text();
        let what = format!("dealer {dealer}, {form:?}");
        assert_eq!(text.matches("rlwe.mask\n").count(), 5, "{what}:\n{text}");
        assert_eq!(text.matches("rlwe.masked.open").count(), 5, "{what}");
        assert_eq!(text.matches("rlwe.masked.close").count(), 5, "{what}");
        // Three of them on shares (all but `x @ w` and `x @ (w * 0.5)`):
        // the server adds its share of x.
        assert_eq!(text.matches("rlwe.masked.close (%").count(), 5, "{what}");
        assert_eq!(
            text.lines()
                .filter(|l| l.contains("rlwe.masked.close")
                    && l.contains(" + %")
                    && l.contains(") @"))
                .filter(|l| l.split(") @").next().unwrap().contains(" + "))
                .count(),
            3,
            "{what}:\n{text}"
        );
        // The products on the masks read `W` from the server's inputs.
        assert_eq!(text.matches(" = input `w` under").count(), 2, "{what}");
        assert_eq!(text.matches(" = input `wc` under").count(), 1, "{what}");
        assert_eq!(text.matches(" = input `v` under").count(), 1, "{what}");
        // The computed one's answer reads its register, computed before
        // it, in the preprocessing (before any masked open or close).
        let server = plan
            .parties
            .iter()
            .position(|p| p.name == "server")
            .unwrap();
        let lines: Vec<String> = (plan.programs[server].instrs.iter())
            .map(|i| plan.instr_text(i))
            .collect();
        let at = |f: &dyn Fn(&str) -> bool| lines.iter().position(|l| f(l));
        let mul = at(&|l| l.contains("clear.mul")).expect("w * 0.5 at the server");
        let reg = lines[mul].split(" = ").next().unwrap().trim().to_string();
        let answer = at(&|l| l.contains("rlwe.respond") && l.contains(&format!("@ {reg} under")))
            .unwrap_or_else(|| panic!("{what}: no answer reads {reg}:\n{lines:#?}"));
        let online = at(&|l| l.contains("rlwe.masked.")).unwrap();
        assert!(mul < answer && answer < online, "{what}:\n{lines:#?}");
        assert!(!text.contains("rlwe.prepare"), "{what}:\n{text}");
        for batch in [1, 5] {
            check_model("layouts", &m, batch, &o, 820 + batch as u64 + dealer as u64);
        }
    }
}

/// The three operand layouts of an RLWE product: `x` and `W` clear at
/// different parties, `x` shared with `W` clear (either party's), and both
/// shared (two cross products of 64-bit shares), each against the
/// reference, with and without a dealer. Where `W` is a party's input the
/// product runs prepared when forced (`rlwe.prepare`, its `W` part in the
/// preprocessing); a computed `W` and shared ones run in one piece.
#[test]
fn every_rlwe_operand_layout_matches_the_reference() {
    use compiler::choose::RlweForm;
    use compiler::ir::Protocol;
    let m = checked(LAYOUTS);
    for dealer in [false, true] {
        let o = options(|o| {
            o.prefer = Some(Protocol::Rlwe);
            o.rlwe_form = Some(RlweForm::Prepared);
            o.use_dealer = dealer;
        });
        let plan = compiler::compile(&m, &o).unwrap().plan;
        let text = plan.to_text();
        // 6 products; the both-shared one is two RLWE runs. The four with
        // W a party's input run prepared.
        assert_eq!(
            text.matches("rlwe.respond").count(),
            7,
            "dealer {dealer}:\n{text}"
        );
        assert_eq!(
            text.matches("rlwe.prepare.respond").count(),
            4,
            "dealer {dealer}:\n{text}"
        );
        assert_eq!(text.matches(") prepared").count(), 8, "{text}");
        assert!(text.contains("(w: 64 bits)"), "{text}");
        for batch in [1, 5] {
            check_model("layouts", &m, batch, &o, 800 + batch as u64 + dealer as u64);
        }
    }
}

/// Rewrites the RLWE message of the `n`th frame one party sends the other
/// with `f` (frames of other kinds pass unchanged and are not counted).
struct TamperRlwe {
    inner: ChannelTransport,
    active: bool,
    n: usize,
    seen: usize,
    f: fn(&mut Vec<u8>),
}

impl Transport for TamperRlwe {
    fn send(&mut self, to: u32, frame: Vec<u8>) -> Result<(), ExecError> {
        use runtime::exec::wire::{self, Wire};
        let mut values = wire::decode(&frame).unwrap();
        let rlwe = values.iter().any(|v| matches!(v, Wire::Rlwe { .. }));
        if !(self.active && rlwe) {
            return self.inner.send(to, frame);
        }
        self.seen += 1;
        if self.seen - 1 != self.n {
            return self.inner.send(to, frame);
        }
        if let Some(Wire::Rlwe { bytes, .. }) = values.last_mut() {
            (self.f)(bytes);
        }
        self.inner.send(to, wire::encode(&values))
    }
    fn recv(&mut self, from: u32) -> Result<Vec<u8>, ExecError> {
        self.inner.recv(from)
    }
}

/// A malformed RLWE key, query or response from a peer is a clear error
/// naming what was wrong, never a panic and never a wrong answer. The
/// product of logreg_100 runs prepared (its four messages), the one of a
/// computed `W` in one piece (its two).
#[test]
fn a_malformed_rlwe_message_is_an_error() {
    use compiler::choose::RlweForm;
    use compiler::ir::Protocol;
    let o = options(|o| {
        o.prefer = Some(Protocol::Rlwe);
        o.rlwe_form = Some(RlweForm::Prepared);
        o.use_dealer = false;
    });
    let plan = compiler::compile(&model("logreg_100"), &o).unwrap().plan;
    assert!(plan.to_text().contains("rlwe.prepare.respond"));
    let inputs = inputs_with_fixed_seed_for_tests(&plan, 3, 5);
    // The client (party 0) sends its key, its preprocessing query and its
    // online query in three RLWE frames; the server (party 1) answers the
    // two queries.
    assert_tampered_rlwe_is_refused(
        &plan,
        &inputs,
        &[
            (0, 0, TRUNCATE, "public key truncated"),
            (0, 0, HEADER, "public key header"),
            (0, 1, TRUNCATE, "preprocessing query truncated"),
            (0, 1, EXTEND, "preprocessing query extended"),
            (0, 1, HEADER, "preprocessing query header"),
            (1, 0, TRUNCATE, "preprocessing answer truncated"),
            (1, 0, EMPTY, "preprocessing answer empty"),
            (1, 0, HEADER, "preprocessing answer header"),
            (
                1,
                0,
                OVER_PRIME,
                "preprocessing answer residue over its prime",
            ),
            (0, 2, TRUNCATE, "query truncated"),
            (0, 2, EXTEND, "query extended"),
            (0, 2, HEADER, "query header"),
            (0, 2, OVER_PRIME, "query residue over its prime"),
            (1, 1, TRUNCATE, "response truncated"),
            (1, 1, EMPTY, "response empty"),
            (1, 1, HEADER, "response header"),
            (1, 1, OVER_PRIME, "response residue over its prime"),
        ],
    );
    let whole = checked(
        "model whole {
            precision 16;
            party client; party server; dealer helper;
            input x: fixed[batch, 8] private(client) in [-1, 1];
            input w: fixed[8, 4] private(server) in [-1, 1];
            let y = x @ (w * 0.5);
            output y to client;
        }",
    );
    let plan = compiler::compile(&whole, &o).unwrap().plan;
    let text = plan.to_text();
    assert!(
        text.contains("rlwe.respond") && !text.contains("prepare"),
        "{text}"
    );
    let inputs = inputs_with_fixed_seed_for_tests(&plan, 3, 6);
    assert_tampered_rlwe_is_refused(
        &plan,
        &inputs,
        &[
            (0, 0, TRUNCATE, "query truncated"),
            (0, 0, EXTEND, "query extended"),
            (0, 0, HEADER, "query header"),
            (0, 0, OVER_PRIME, "query residue over its prime"),
            (1, 0, TRUNCATE, "response truncated"),
            (1, 0, EMPTY, "response empty"),
            (1, 0, HEADER, "response header"),
            (1, 0, OVER_PRIME, "response residue over its prime"),
        ],
    );
    // Masked, the same computed W: its answer runs on the model owner's
    // own thread while the correlations are generated, and a malformed
    // key, query (of the mask) or response is still refused.
    let o = options(|o| {
        o.prefer = Some(Protocol::Rlwe);
        o.rlwe_form = Some(RlweForm::Masked);
        o.use_dealer = false;
    });
    let plan = compiler::compile(&whole, &o).unwrap().plan;
    let text = plan.to_text();
    assert!(text.contains("rlwe.masked.open"), "{text}");
    let inputs = inputs_with_fixed_seed_for_tests(&plan, 3, 7);
    assert_tampered_rlwe_is_refused(
        &plan,
        &inputs,
        &[
            (0, 0, TRUNCATE, "public key truncated"),
            (0, 1, TRUNCATE, "mask's query truncated"),
            (0, 1, OVER_PRIME, "mask's query residue over its prime"),
            (1, 0, TRUNCATE, "mask's response truncated"),
            (1, 0, OVER_PRIME, "mask's response residue over its prime"),
        ],
    );
}

/// A rewriting of an RLWE message's bytes.
type RlweEdit = fn(&mut Vec<u8>);
const TRUNCATE: RlweEdit = |b| b.truncate(b.len() / 2);
const EXTEND: RlweEdit = |b| b.push(0);
const HEADER: RlweEdit = |b| b.iter_mut().take(16).for_each(|x| *x ^= 0x5a);
const EMPTY: RlweEdit = |b| b.clear();
/// The last residue set above every prime.
const OVER_PRIME: RlweEdit = |b| {
    let n = b.len();
    b[n - 8..].fill(0xff);
};

/// Runs `plan` once per case `(from, n, edit, what)` with party `from`'s
/// `n`th RLWE message rewritten by `edit`, and asserts each run stops with
/// a "malformed RLWE" error (never a panic, never an answer).
fn assert_tampered_rlwe_is_refused(
    plan: &Plan,
    inputs: &BTreeMap<String, Tensor>,
    cases: &[(usize, usize, RlweEdit, &str)],
) {
    let names: Vec<String> = plan.parties.iter().map(|p| p.name.clone()).collect();
    for &(from, n, f, what) in cases {
        let transports: Vec<TamperRlwe> =
            ChannelTransport::mesh(&names, std::time::Duration::from_secs(60))
                .into_iter()
                .enumerate()
                .map(|(q, inner)| TamperRlwe {
                    inner,
                    active: q == from,
                    n,
                    seen: 0,
                    f,
                })
                .collect();
        let err = exec::run_with_transports(
            &valid(plan),
            &per_party(plan, inputs),
            transports,
            &test_options(),
        )
        .expect_err(what);
        assert!(err.to_string().contains("malformed RLWE"), "{what}: {err}");
    }
}

fn dealer_of(plan: &Plan) -> u32 {
    match plan.randomness {
        plan::RandomnessSource::Dealer(d) => d,
        plan::RandomnessSource::TwoParty => panic!("the plan has no dealer"),
    }
}

/// At 700 rows the input-holder product's correlation is past the dealer's
/// frame limit, so the dealer streams party 1's corrections: an empty first
/// frame with the seed, the product's, then the rest.
#[test]
fn streamed_dealer_corrections_match_the_reference() {
    let o = options(|o| o.use_dealer = true);
    let outcomes = check("logreg_100", 700, &o, 91);
    let plan = compiler::compile(&model("logreg_100"), &o).unwrap().plan;
    // One frame to party 0, three to party 1.
    assert_eq!(outcomes[dealer_of(&plan) as usize].stats.frames_sent, 4);
    check("relu_classifier", 700, &o, 92);
}

/// net B at 30 rows: its second convolution's triple (`a` of the input's
/// 69,120 words) is past the dealer's frame limit, so party 1's
/// corrections stream with the convolution triple in its own frame; both
/// parties and the dealer derive the same request order.
#[test]
fn streamed_convolution_triples_match_the_reference() {
    let o = options(|o| o.use_dealer = true);
    let plan = compiler::compile(&model("net_b"), &o).unwrap().plan;
    assert!(plan.to_text().contains("convolution triple"));
    let outcomes = check("net_b", 30, &o, 93);
    assert!(outcomes[dealer_of(&plan) as usize].stats.frames_sent >= 4);
}

/// When `active`, flips one bit of byte `at` of the `n`th frame sent `to`.
struct Tamper {
    inner: ChannelTransport,
    active: bool,
    to: u32,
    n: usize,
    at: usize,
    sent: usize,
}

impl Transport for Tamper {
    fn send(&mut self, to: u32, mut frame: Vec<u8>) -> Result<(), ExecError> {
        if self.active && to == self.to {
            if self.sent == self.n {
                frame[self.at] ^= 0x01;
            }
            self.sent += 1;
        }
        self.inner.send(to, frame)
    }
    fn recv(&mut self, from: u32) -> Result<Vec<u8>, ExecError> {
        self.inner.recv(from)
    }
}

#[test]
fn a_tampered_stream_of_dealer_corrections_is_an_error() {
    let plan = compiler::compile(&model("logreg_100"), &options(|o| o.use_dealer = true))
        .unwrap()
        .plan;
    let inputs = inputs_with_fixed_seed_for_tests(&plan, 700, 5);
    let names: Vec<String> = plan.parties.iter().map(|p| p.name.clone()).collect();
    let dealer = dealer_of(&plan);
    let p1 = plan
        .parties
        .iter()
        .enumerate()
        .filter(|(_, p)| p.role == plan::Role::Compute)
        .nth(1)
        .unwrap()
        .0 as u32;
    // The dealer's frames to party 1, each [version, count (8 bytes), tag,
    // ...]: the session's dimensions, the first frame (byte 10: whose
    // seed), the product's corrections (bytes 10..18: the group they start
    // at), the rest (byte 9: the tag).
    for (n, at, expect) in [
        (1, 10, "seed is not for party 1"),
        (2, 10, "arrived where group 0 was due"),
        (3, 9, "malformed corrections from the dealer"),
    ] {
        let transports: Vec<Tamper> =
            ChannelTransport::mesh(&names, std::time::Duration::from_secs(60))
                .into_iter()
                .enumerate()
                .map(|(q, inner)| Tamper {
                    inner,
                    active: q as u32 == dealer,
                    to: p1,
                    n,
                    at,
                    sent: 0,
                })
                .collect();
        let err = exec::run_with_transports(
            &valid(&plan),
            &per_party(&plan, &inputs),
            transports,
            &test_options(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains(expect),
            "frame {n} byte {at}: {err}"
        );
    }
}

/// Records every frame a party receives.
struct Recording {
    inner: ChannelTransport,
    received: Arc<Mutex<Vec<u8>>>,
}

impl Transport for Recording {
    fn send(&mut self, to: u32, frame: Vec<u8>) -> Result<(), ExecError> {
        self.inner.send(to, frame)
    }
    fn recv(&mut self, from: u32) -> Result<Vec<u8>, ExecError> {
        let f = self.inner.recv(from)?;
        self.received.lock().unwrap().extend_from_slice(&f);
        Ok(f)
    }
}

#[test]
fn no_transcript_contains_another_partys_input_in_the_clear() {
    use compiler::ir::Protocol;
    for (name, prefer, dealer) in [
        ("logreg_100", None, true),
        ("logreg_100", Some(Protocol::Paillier), false),
        ("credit_2p", None, false),
        ("mlp", None, true),
        // Correlations by OT, comparisons included.
        ("relu_classifier", None, false),
        ("mlp", Some(Protocol::Rlwe), false),
    ] {
        let m = model(name);
        let o = options(|o| {
            o.prefer = prefer;
            o.use_dealer = dealer;
        });
        let plan = compiler::compile(&m, &o).unwrap().plan;
        let inputs = inputs_with_fixed_seed_for_tests(&plan, 5, 7);
        let names: Vec<String> = plan.parties.iter().map(|p| p.name.clone()).collect();
        let logs: Vec<Arc<Mutex<Vec<u8>>>> = names.iter().map(|_| Arc::default()).collect();
        let transports: Vec<Recording> =
            ChannelTransport::mesh(&names, std::time::Duration::from_secs(60))
                .into_iter()
                .zip(&logs)
                .map(|(inner, log)| Recording {
                    inner,
                    received: log.clone(),
                })
                .collect();
        exec::run_with_transports(
            &valid(&plan),
            &per_party(&plan, &inputs),
            transports,
            &test_options(),
        )
        .unwrap();
        for spec in &plan.inputs {
            let Owner::Party(owner) = spec.owner else {
                continue;
            };
            // Patterns: the value as f64, and as a fixed-point ring element.
            let mut patterns: Vec<[u8; 8]> = Vec::new();
            for v in &inputs[&spec.name].data {
                let fixed = (v * 2f64.powi(plan.precision as i32)).round() as i64;
                if fixed.unsigned_abs() < 1 << 20 {
                    continue; // too many zero bytes to be a meaningful pattern
                }
                patterns.push(v.to_le_bytes());
                patterns.push((fixed as u64).to_le_bytes());
            }
            for (q, log) in logs.iter().enumerate() {
                if q as u32 == owner {
                    continue;
                }
                let bytes = log.lock().unwrap();
                for p in &patterns {
                    assert!(
                        !bytes.windows(8).any(|w| w == p),
                        "{name}: {} received {}'s input `{}` in the clear",
                        names[q],
                        names[owner as usize],
                        spec.name
                    );
                }
            }
        }
    }
}

/// Issue 20: dealer streams computed ahead (a service's pool) give the same
/// answers as streams dealt during the session; each is used by one
/// session only, and a session finding none ready deals its own.
#[test]
fn streams_dealt_ahead_match_the_reference_and_serve_one_session_each() {
    for name in ["logreg_100", "relu_classifier", "mlp"] {
        let m = model(name);
        let batch = 3;
        let o = options(|o| {
            o.assume.insert("batch".into(), batch as u64);
        });
        let plan = Arc::new(compiler::compile(&m, &o).unwrap().plan);
        let sizes = vec![BTreeMap::from([("batch".to_string(), batch)])];
        let pool = Arc::new(exec::pool::DealingPool::new(plan.clone(), sizes, 2).unwrap());
        assert!(pool.fill_one().unwrap() && pool.fill_one().unwrap());
        assert!(!pool.fill_one().unwrap(), "{name}: two a size at most");
        assert_eq!(pool.len(), 2);
        let mut opts = test_options();
        opts.dealings = Some(pool.clone());
        for (i, ready) in [2, 1, 0, 0].into_iter().enumerate() {
            assert_eq!(pool.len(), ready, "{name}");
            let inputs = inputs_with_fixed_seed_for_tests(&plan, batch, 900 + i as u64);
            check_with(name, &m, &plan, batch, &inputs, &opts);
        }
        use std::sync::atomic::Ordering::Relaxed;
        assert_eq!(pool.hits.load(Relaxed), 2, "{name}");
        assert_eq!(pool.misses.load(Relaxed), 2, "{name}");
        // Another size than the pool keeps deals on its own.
        let inputs = inputs_with_fixed_seed_for_tests(&plan, 5, 950);
        check_with(name, &m, &plan, 5, &inputs, &opts);
        assert_eq!(pool.misses.load(Relaxed), 3, "{name}");
    }
    // A size the plan cannot bind is refused when the pool is made.
    let plan = Arc::new(
        compiler::compile(&model("logreg_100"), &options(|_| {}))
            .unwrap()
            .plan,
    );
    let bad = vec![BTreeMap::from([("rows".to_string(), 1)])];
    assert!(exec::pool::DealingPool::new(plan, bad, 1).is_err());
}

/// The statistics a run reports agree with the compiler's estimate (for the
/// same batch size): rounds within one, bytes within a factor of two. The
/// estimate counts payload bytes; the wire adds framing, and the compiler's
/// per-primitive byte counts are upper bounds.
#[test]
fn measured_traffic_matches_the_compilers_estimate() {
    for (name, dealer) in [
        ("logreg_100", true),
        ("mlp", true),
        ("linreg", true),
        ("logreg_100", false),
        ("relu_classifier", false),
        ("mlp", false),
    ] {
        let (est, bytes, rounds) = traffic_against_estimate(name, dealer, 50, 11);
        // Rounds within one: the estimate does not see how a party's last
        // pending message overlaps with the two-party triple generation.
        assert!(
            rounds.abs_diff(est.rounds) <= 1,
            "{name} (dealer: {dealer}): {rounds} rounds, estimated {}",
            est.rounds
        );
        let ratio = bytes as f64 / est.bytes;
        assert!(
            (0.5..=2.0).contains(&ratio),
            "{name} (dealer: {dealer}): measured {bytes} B, estimated {} B",
            est.bytes
        );
    }
}

/// Compiles bundled model `name` for `batch` rows (with a dealer or not),
/// runs it on seeded inputs, and returns the compiler's estimate with the
/// bytes every party sent and the most rounds any party waited.
fn traffic_against_estimate(
    name: &str,
    dealer: bool,
    batch: usize,
    seed: u64,
) -> (plan::Estimate, u64, u32) {
    traffic_of(&model(name), dealer, batch, seed)
}

/// The compiler's byte estimate within `tolerance` (a fraction) of the
/// bytes a run sent: `estimate / measured` in `[1 − tolerance, 1 + tolerance]`.
fn assert_bytes_within(est: &plan::Estimate, bytes: u64, tolerance: f64, what: &str) {
    let ratio = est.bytes / bytes as f64;
    assert!(
        (1.0 - tolerance..=1.0 + tolerance).contains(&ratio),
        "{what}: measured {bytes} B, estimated {} B",
        est.bytes
    );
}

fn traffic_of(
    m: &compiler::ir::CheckedModel,
    dealer: bool,
    batch: usize,
    seed: u64,
) -> (plan::Estimate, u64, u32) {
    let o = options(|o| {
        o.use_dealer = dealer;
        o.assume.insert("batch".into(), batch as u64);
    });
    let plan = compiler::compile(m, &o).unwrap().plan;
    let inputs = inputs_with_fixed_seed_for_tests(&plan, batch, seed);
    let outcomes =
        exec::run_in_process(&valid(&plan), &per_party(&plan, &inputs), &test_options()).unwrap();
    let bytes = outcomes.iter().map(|o| o.stats.bytes_sent).sum();
    let rounds = outcomes.iter().map(|o| o.stats.rounds).max().unwrap();
    (plan.estimate, bytes, rounds)
}

/// Issue 18's target for the benchmark networks with a dealer: the
/// compiler's bytes within 10% of what a run sends, and rounds within one
/// (the dealer's correlations priced as what it sends: corrections of
/// party 1's shares only, `cost::CostTable::triple`).
#[test]
fn network_traffic_with_a_dealer_is_within_ten_percent_of_the_estimate() {
    for name in ["net_a", "net_b", "net_c", "net_d", "lenet5", "mobile_dw"] {
        let (est, bytes, rounds) = traffic_against_estimate(name, true, 2, 12);
        assert!(
            rounds.abs_diff(est.rounds) <= 1,
            "{name}: {rounds} rounds, estimated {}",
            est.rounds
        );
        assert_bytes_within(&est, bytes, 0.1, name);
    }
}

/// The same target without a dealer (correlations by OT, products by
/// RLWE). Bytes are held to 3%, tighter than the issue's 10%: with the RLWE
/// products priced at the layout the runtime takes (`cost::CostTable::
/// rlwe_matmul`) every network is within 1.2%, and pricing them at other
/// tiles, as before, put net_a 5.3% over. Rounds within 10%:
/// the estimate counts one round per `OT_PIECE_COTS` of OT preprocessing,
/// and the runtime, which keeps each request's runs whole, cuts a few more
/// pieces (net_b at batch 10: 233 estimated, 241 run).
#[test]
fn network_traffic_without_a_dealer_is_within_ten_percent_of_the_estimate() {
    for name in ["net_a", "net_b", "net_c", "net_d", "lenet5", "mobile_dw"] {
        let (est, bytes, rounds) = traffic_against_estimate(name, false, 2, 13);
        let rounds_ratio = f64::from(est.rounds) / f64::from(rounds);
        assert!(
            (0.9..=1.1).contains(&rounds_ratio),
            "{name}: {rounds} rounds, estimated {}",
            est.rounds
        );
        assert_bytes_within(&est, bytes, 0.03, name);
    }
}

/// mobile_dw without a dealer at 10 images, where both depthwise
/// convolutions run one RLWE product per group (their queries in one
/// message): the estimate within 3% of the bytes a run sends, and rounds
/// within 10%, as for the networks above.
#[test]
fn grouped_convolutions_by_group_traffic_matches_the_estimate() {
    let o = options(|o| {
        o.use_dealer = false;
        o.assume.insert("batch".into(), 10);
    });
    let m = model(CONV_MODELS[0]);
    let report = compiler::compile(&m, &o).unwrap().report;
    assert_eq!(
        report.matches("one product per group").count(),
        2,
        "{report}"
    );
    let (est, bytes, rounds) = traffic_of(&m, false, 10, 14);
    let rounds_ratio = f64::from(est.rounds) / f64::from(rounds);
    assert!(
        (0.9..=1.1).contains(&rounds_ratio),
        "{rounds} rounds, estimated {}",
        est.rounds
    );
    assert_bytes_within(&est, bytes, 0.03, "mobile_dw at 10");
}

/// argmax is a tournament of K - 1 comparisons per row that selects the
/// index alongside the maximum: K - 1 more selects (`cost::CostTable::
/// select`). Priced as K comparisons, as before, the estimate was 11% under
/// with a dealer and 10% over without one; now both within 1% at 300 rows.
#[test]
fn argmax_traffic_matches_the_estimate() {
    let source = "model am { party a; party b; dealer d;
        input x: fixed[batch, 10] private(a) in [-1, 1];
        input y: fixed[batch, 10] private(b) in [-1, 1];
        let label = argmax(x + y);
        let m = max(x + y, axis: 1);
        output label to a;
        output m to a; }";
    let r = compiler::check_source(source);
    let m = r.model.unwrap_or_else(|| panic!("{:?}", r.diagnostics));
    for dealer in [true, false] {
        let (est, bytes, _) = traffic_of(&m, dealer, 300, 21);
        assert_bytes_within(&est, bytes, 0.03, &format!("dealer {dealer}"));
    }
}

#[test]
fn every_bundled_model_is_covered() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        // models/nets/ holds the networks' weights and data.
        if path.extension().is_none_or(|x| x != "veil") {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            MODELS.contains(&name.as_str())
                || DEALER_MODELS.contains(&name.as_str())
                || NETS.contains(&name.as_str())
                || CONV_MODELS.contains(&name.as_str()),
            "models/{name}.veil has no differential test"
        );
    }
}

/// Comparisons without a dealer: the two parties generate the comparison
/// correlations with Paillier (small batches, small test keys).
#[test]
fn comparisons_without_a_dealer_match_the_reference() {
    for (i, name) in DEALER_MODELS.iter().enumerate() {
        let o = options(|o| o.use_dealer = false);
        let plan = compiler::compile(&model(name), &o).unwrap().plan;
        assert!(
            plan.programs
                .iter()
                .flat_map(|p| &p.instrs)
                .any(|i| matches!(i, plan::Instr::Nonlinear { .. })),
            "{name}: the plan should compare"
        );
        check(name, 2, &o, 400 + i as u64);
    }
}

/// A plan whose only correlations are its comparisons' still gets its
/// preprocessing (from the dealer, or two-party).
#[test]
fn comparisons_alone_get_their_preprocessing() {
    let source = "model cmp { party a; party b; dealer d;
        input x: fixed[batch, 3] private(a) in [-1, 1];
        input y: fixed[batch, 3] private(b) in [-1, 1];
        let z = relu(x + y);
        output z to a; }";
    let r = compiler::check_source(source);
    let m = r.model.unwrap_or_else(|| panic!("{:?}", r.diagnostics));
    for (i, dealer) in [true, false].into_iter().enumerate() {
        let o = options(|o| o.use_dealer = dealer);
        let plan = compiler::compile(&m, &o).unwrap().plan;
        assert!(plan.correlations.is_empty());
        check_model("cmp", &m, 2, &o, 500 + i as u64);
    }
}

/// Logits spanning [-40, 40] and beyond: with the clamped sigmoid every
/// private prediction is within the stated bound and has the plaintext label.
#[test]
fn clamped_sigmoid_holds_its_bound_on_wide_logits() {
    for dealer in [true, false] {
        clamped_sigmoid_on_wide_logits(dealer);
    }
}

/// Without a dealer the clamp's comparisons read only the bits the
/// logits and the fitted domain span (`Graph::clamp_bits`).
fn clamped_sigmoid_on_wide_logits(dealer: bool) {
    let m = model("logreg_wide");
    let plan = compiler::compile(&m, &options(|o| o.use_dealer = dealer))
        .unwrap()
        .plan;
    let bits = plan.programs[0].instrs.iter().find_map(|i| match i {
        plan::Instr::Nonlinear { bits, .. } => Some(*bits),
        _ => None,
    });
    assert!(bits.is_some_and(|b| b < 32), "{bits:?}");
    let bound = plan.outputs[0].error_bound;
    assert!(bound < 0.02, "bound {bound}");
    let inputs = inputs_with_fixed_seed_for_tests(&plan, 300, 5);
    let reference = compiler::reference::evaluate(&m, &inputs).unwrap();
    let z = inputs["x"].view().matmul(&inputs["w"].view()).unwrap();
    assert!(
        z.data.iter().any(|v| *v > 20.0) && z.data.iter().any(|v| *v < -20.0),
        "logits should span a wide range"
    );
    let outcomes =
        exec::run_in_process(&valid(&plan), &per_party(&plan, &inputs), &test_options()).unwrap();
    let got = &outcomes[0].outputs[0].1;
    for (a, b) in got.data.iter().zip(&reference[0].1.data) {
        assert!((a - b).abs() <= bound, "{a} vs {b}");
        if (b - 0.5).abs() > bound {
            assert_eq!(*a >= 0.5, *b >= 0.5);
        }
    }
}

fn checked(source: &str) -> compiler::ir::CheckedModel {
    let r = compiler::check_source(source);
    r.model.unwrap_or_else(|| panic!("{:?}", r.diagnostics))
}

/// Issue 14, defect 1: an input declared without `in [lo, hi]` lies in the
/// default range the compiler's analysis assumed, and the runtime refuses
/// data outside it. It used to accept `x = 1e11` and answer `-1539607552`
/// for `1e11 * 0.5`.
#[test]
fn data_outside_an_undeclared_inputs_default_range_is_refused() {
    let m = checked(
        "model halfrange_mul { party a; party b; dealer d;
          input x: fixed[batch] private(a); input y: fixed private(b) in [-0.5, 0.5];
          let z = x * y; output z to a; }",
    );
    for dealer in [true, false] {
        let plan = compiler::compile(&m, &options(|o| o.use_dealer = dealer))
            .unwrap()
            .plan;
        let spec = &plan.inputs[0];
        assert!(!spec.range_declared);
        let wide = compiler::ir::max_literal_magnitude(plan.precision);
        assert_eq!(spec.range, (-wide, wide));
        let inputs = BTreeMap::from([
            (
                "x".to_string(),
                Tensor::new(vec![2], vec![1e11, 3.0]).unwrap(),
            ),
            ("y".to_string(), Tensor::new(vec![], vec![0.5]).unwrap()),
        ]);
        let err = exec::run_in_process(&valid(&plan), &per_party(&plan, &inputs), &test_options())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("value #0 lies outside") && err.contains("in [lo, hi]"),
            "{err}"
        );
        assert!(
            !err.contains("1e11") && !err.contains("100000000000"),
            "{err}"
        );
        // At the edge of the default range the answer is right.
        let inputs = BTreeMap::from([
            (
                "x".to_string(),
                Tensor::new(vec![3], vec![wide, -wide, 3.0]).unwrap(),
            ),
            ("y".to_string(), Tensor::new(vec![], vec![0.5]).unwrap()),
        ]);
        let reference = compiler::reference::evaluate(&m, &inputs).unwrap();
        let outcomes =
            exec::run_in_process(&valid(&plan), &per_party(&plan, &inputs), &test_options())
                .unwrap();
        for (a, b) in outcomes[0].outputs[0]
            .1
            .data
            .iter()
            .zip(&reference[0].1.data)
        {
            assert!(
                (a - b).abs() <= plan.outputs[0].error_bound,
                "dealer {dealer}: {a} vs {b}"
            );
        }
    }
}

/// Without a dealer each comparison reads only the bits its values can
/// span (`Instr::Nonlinear`'s `bits`): values at the very edges of the
/// declared ranges, where the compared values are largest, and around
/// zero, where the sign flips, still compare right in every op that
/// narrows (relu, max, min, clamp, the tournaments).
#[test]
fn narrowed_comparisons_at_the_edges_of_their_ranges_match_the_reference() {
    let m = checked(
        "model edges { party a; party b; dealer d;
          input x: fixed[batch, 4] private(a) in [-3, 3];
          input y: fixed[batch, 4] private(b) in [-3, 3];
          let s = x + y;
          let r = relu(s);
          let hi = max(x, y);
          let lo = min(x, y);
          let c = clamp(s, -1, 2.5);
          let m = max(s);
          let k = argmax(s);
          output r to a; output hi to a; output lo to a; output c to a;
          output m to a; output k to a; }",
    );
    let plan = compiler::compile(&m, &options(|o| o.use_dealer = false))
        .unwrap()
        .plan;
    let bits: Vec<u32> = plan.programs[0]
        .instrs
        .iter()
        .filter_map(|i| match i {
            plan::Instr::Nonlinear { bits, .. } => Some(*bits),
            _ => None,
        })
        .collect();
    assert_eq!(bits.len(), 5, "{bits:?}");
    assert!(bits.iter().all(|&b| b < 24), "{bits:?}");
    let ulp = 2f64.powi(-(plan.precision as i32));
    let edges = [-3.0, 3.0, 0.0, ulp, -ulp, 3.0 - ulp, -3.0 + ulp, 1.5];
    let rows = edges.len() * edges.len() / 4 * 4;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (i, &a) in edges.iter().enumerate() {
        for (j, &b) in edges.iter().enumerate() {
            x.push(a);
            y.push(if (i + j) % 3 == 0 { -b } else { b });
        }
    }
    let inputs = BTreeMap::from([
        ("x".to_string(), Tensor::new(vec![rows / 4, 4], x).unwrap()),
        ("y".to_string(), Tensor::new(vec![rows / 4, 4], y).unwrap()),
    ]);
    check_on("edges", &m, &plan, rows / 4, &inputs);
}

/// Issue 14, defect 2: without a dealer, products used to be truncated
/// locally (SecureML), which fails with probability about |x|/2^63 per
/// element: here about 2^-7, so a thousand rows had several answers off by
/// 2^32. Two-party truncation from daBits is now as exact as the dealer's.
#[test]
fn products_of_large_values_without_a_dealer_are_exact() {
    let m = checked(
        "model bigmul { party a; party b;
          input x: fixed[batch] private(a) in [-4000, 4000];
          input y: fixed[batch] private(b) in [-4000, 4000];
          let z = x * y; output z to a; }",
    );
    let o = options(|o| o.use_dealer = false);
    let plan = compiler::compile(&m, &o).unwrap().plan;
    assert!(plan
        .correlations
        .iter()
        .any(|c| matches!(c, plan::Correlation::TruncDaBits { .. })));
    check_model("bigmul", &m, 1000, &o, 600);
}

/// A reduction along `batch` has a range that grows with it, and a mean
/// divides by it: the plan records the size the analysis assumed, and the
/// runtime refuses more (it used to answer with an overflowed sum), or, for
/// a mean, any other size (it used to divide by the assumed size).
#[test]
fn a_batch_larger_than_the_plan_assumed_for_a_reduction_is_refused() {
    let m = checked(
        "model sums { party a; party b; dealer d;
          input x: fixed[batch] private(a) in [0, 1000];
          input y: fixed private(b) in [0, 1000];
          let s = sum(x) * y; let t = mean(x) * y;
          output s to a; output t to a; }",
    );
    let plan = compiler::compile(
        &m,
        &options(|o| {
            o.assume.insert("batch".into(), 8);
        }),
    )
    .unwrap()
    .plan;
    assert_eq!(plan.dim_limits.len(), 1, "{:?}", plan.dim_limits);
    assert!(plan.dim_limits[0].exact);
    for (batch, ok) in [(8, true), (9, false), (7, false)] {
        let inputs = inputs_with_fixed_seed_for_tests(&plan, batch, 3);
        let r = exec::run_in_process(&valid(&plan), &per_party(&plan, &inputs), &test_options());
        match (r, ok) {
            (Ok(outcomes), true) => {
                let reference = compiler::reference::evaluate(&m, &inputs).unwrap();
                for (o, spec) in plan.outputs.iter().enumerate() {
                    let got = &outcomes[0].outputs[o].1.data[0];
                    let want = reference[o].1.data[0];
                    assert!((got - want).abs() <= spec.error_bound, "{got} vs {want}");
                }
            }
            (Err(e), false) => {
                let e = e.to_string();
                assert!(
                    e.contains("dimension `batch` is")
                        && e.contains(&format!("--assume batch={batch}")),
                    "{e}"
                );
            }
            (r, _) => panic!("batch {batch}: {:?}", r.map(|_| ())),
        }
    }
    // A sum alone bounds the size from above only.
    let m = checked(
        "model sum1 { party a; party b; dealer d;
          input x: fixed[batch] private(a) in [0, 1000];
          input y: fixed private(b) in [0, 1000];
          let s = sum(x) * y; output s to a; }",
    );
    let plan = compiler::compile(
        &m,
        &options(|o| {
            o.assume.insert("batch".into(), 8);
        }),
    )
    .unwrap()
    .plan;
    assert!(!plan.dim_limits[0].exact);
    let inputs = inputs_with_fixed_seed_for_tests(&plan, 5, 3);
    exec::run_in_process(&valid(&plan), &per_party(&plan, &inputs), &test_options()).unwrap();
    let inputs = inputs_with_fixed_seed_for_tests(&plan, 9, 3);
    assert!(
        exec::run_in_process(&valid(&plan), &per_party(&plan, &inputs), &test_options()).is_err()
    );
}

/// Issue 14: a revealed probability lies in [0, 1] (the recipient clamps
/// it to the range the analysis proved); the polynomial used to give
/// -0.0084 and 1.0084 near saturation.
#[test]
fn revealed_probabilities_lie_in_the_unit_interval() {
    for (name, dealer) in [("logreg_wide", true), ("logreg_wide", false)] {
        let m = model(name);
        let o = options(|o| o.use_dealer = dealer);
        let plan = compiler::compile(&m, &o).unwrap().plan;
        let batch = if dealer { 400 } else { 4 };
        let inputs = inputs_with_fixed_seed_for_tests(&plan, batch, 8);
        let outcomes =
            exec::run_in_process(&valid(&plan), &per_party(&plan, &inputs), &test_options())
                .unwrap();
        let got = &outcomes[0].outputs[0].1.data;
        assert!(
            got.iter().all(|p| (0.0..=1.0).contains(p)),
            "{name}: {:?}",
            got.iter()
                .filter(|p| !(0.0..=1.0).contains(*p))
                .collect::<Vec<_>>()
        );
        // Saturated predictions exist, so the clamp mattered.
        assert!(got.iter().any(|p| *p == 0.0 || *p == 1.0), "{name}");
    }
}

/// Issue 14: a long run without a dealer shows its progress. The parties
/// count party 0's preprocessing ciphertexts and the first party's steps in
/// `Options::progress` (the command line draws them on a terminal).
#[test]
fn a_run_counts_its_progress() {
    let m = checked(
        "model mul { party a; party b;
          input x: fixed[batch] private(a) in [-4, 4];
          input y: fixed[batch] private(b) in [-4, 4];
          let z = x * y; output z to a; }",
    );
    // Paillier: the slow preprocessing that shows its progress (OT is
    // fast and counts no encryptions).
    let plan = compiler::compile(
        &m,
        &options(|o| {
            o.use_dealer = false;
            o.correlations = Some(plan::CorrelationEngine::Paillier);
        }),
    )
    .unwrap()
    .plan;
    let inputs = inputs_with_fixed_seed_for_tests(&plan, 3, 4);
    let mut opts = test_options();
    let progress = Arc::new(exec::Progress::default());
    opts.progress = Some(progress.clone());
    exec::run_in_process(&valid(&plan), &per_party(&plan, &inputs), &opts).unwrap();
    use std::sync::atomic::Ordering::Relaxed;
    let total = progress.encrypt_total.load(Relaxed);
    assert!(total > 0);
    assert_eq!(progress.encrypt_done.load(Relaxed), total);
    let steps = progress.steps_total.load(Relaxed);
    assert!(steps > 0);
    assert_eq!(progress.steps_done.load(Relaxed), steps - 1);

    // By OT: party 0 counts the pieces it answers.
    let plan = compiler::compile(
        &m,
        &options(|o| {
            o.use_dealer = false;
            o.correlations = Some(plan::CorrelationEngine::Ot);
        }),
    )
    .unwrap()
    .plan;
    let inputs = inputs_with_fixed_seed_for_tests(&plan, 3, 5);
    let mut opts = test_options();
    let progress = Arc::new(exec::Progress::default());
    opts.progress = Some(progress.clone());
    exec::run_in_process(&valid(&plan), &per_party(&plan, &inputs), &opts).unwrap();
    let pieces = progress.ot_total.load(Relaxed);
    assert!(pieces > 0);
    assert_eq!(progress.ot_done.load(Relaxed), pieces);
    assert_eq!(progress.encrypt_total.load(Relaxed), 0);
}

/// Each computing party is given the public inputs separately (`veil
/// party -i t=...` at each); the parties compare digests at session setup,
/// so different values are an error instead of a silently wrong answer.
#[test]
fn parties_given_different_public_inputs_refuse_to_run() {
    let m = checked(
        "model pub { party a; party b; dealer d;
          input x: fixed[batch] private(a) in [-1, 1];
          input y: fixed[batch] private(b) in [-1, 1];
          input t: fixed public in [-1, 1];
          let z = x * y + t; output z to a; }",
    );
    let plan = compiler::compile(&m, &options(|_| {})).unwrap().plan;
    let inputs = inputs_with_fixed_seed_for_tests(&plan, 3, 5);
    let mut parties = per_party(&plan, &inputs);
    exec::run_in_process(&valid(&plan), &parties, &test_options()).unwrap();
    let (quarter, half) = (Tensor::scalar(0.25), Tensor::scalar(0.5));
    parties[1].insert("t".into(), quarter.view());
    parties[0].insert("t".into(), half.view());
    let err = exec::run_in_process(&valid(&plan), &parties, &test_options())
        .unwrap_err()
        .to_string();
    assert!(err.contains("public input `t` differs between"), "{err}");
}

/// The memory estimate's registers against what the executor held: for
/// every bundled model, with a dealer, without one (comparisons included)
/// and Paillier-heavy, every party's peak is within the estimate, and the
/// estimate is not far above it (it counts every register to the end of
/// the run; the executor drops a peer's message once used).
#[test]
fn the_memory_estimate_bounds_the_registers_a_run_holds() {
    use compiler::ir::Protocol;
    let key_bits = 1024;
    let opts = exec::Options::with_small_keys_for_tests(key_bits);
    for name in MODELS.iter().chain(&DEALER_MODELS) {
        for (dealer, prefer) in [
            (true, None),
            (false, None),
            (true, Some(Protocol::Paillier)),
            (false, Some(Protocol::Rlwe)),
        ] {
            let batch = 6;
            let o = options(|o| {
                o.use_dealer = dealer;
                o.prefer = prefer;
                o.assume.insert("batch".into(), batch as u64);
            });
            let plan = compiler::compile(&model(name), &o).unwrap().plan;
            let inputs = inputs_with_fixed_seed_for_tests(&plan, batch, 5);
            let dims = plan::infer_dims(&plan, None, &plan::views(&inputs)).unwrap();
            let estimate = exec::memory::estimate(&plan, &dims, Some(key_bits)).unwrap();
            let outcomes = exec::run_in_process(&valid(&plan), &per_party(&plan, &inputs), &opts)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            for (p, o) in outcomes.iter().enumerate() {
                let held = o.stats.peak_register_bytes;
                let est = estimate.parties[p].registers;
                let what = format!(
                    "{name} (dealer: {dealer}, {prefer:?}), {}: held {held} B, estimated {est} B",
                    plan.party_name(p as u32)
                );
                assert!(held <= est, "{what}");
                assert!(2 * est <= 3 * held + 8192, "{what}");
                // Whatever a party holds, its inputs count (compute parties).
                if plan.parties[p].role == plan::Role::Compute {
                    assert!(estimate.parties[p].inputs > 0, "{what}");
                }
            }
        }
    }
}

/// The memory estimate never shrinks as the batch grows: `veil serve`
/// checks its limit once, at `--max-batch`, and then skips the check for
/// every smaller session. For every bundled model, with a dealer and
/// without one, every party's estimate at each batch is at most its
/// estimate at the next.
#[test]
fn the_memory_estimate_grows_with_the_batch() {
    for name in MODELS.iter().chain(&DEALER_MODELS).chain(&NETS) {
        for dealer in [true, false] {
            let plan = compiler::compile(&model(name), &options(|o| o.use_dealer = dealer))
                .unwrap()
                .plan;
            let at =
                |batch: usize| exec::memory::estimate(&plan, &plan.dims_at(batch), None).unwrap();
            let mut last = at(1);
            for batch in [2, 3, 7, 64, 100, 1000, 4096] {
                let next = at(batch);
                for (p, (a, b)) in last.parties.iter().zip(&next.parties).enumerate() {
                    assert!(
                        a.total() <= b.total(),
                        "{name} (dealer: {dealer}), {}: {} B at a smaller batch, {} B at {batch}",
                        plan.party_name(p as u32),
                        a.total(),
                        b.total()
                    );
                }
                last = next;
            }
        }
    }
}

/// The limit is enforced by the runtime itself, where `veil party` sets
/// it: a party over it stops at session setup, before any allocation the
/// run needs, naming the estimate, the limit and the way out.
#[test]
fn a_party_over_its_memory_limit_is_refused_at_session_setup() {
    let plan = compiler::compile(&model("logreg_100"), &options(|_| {}))
        .unwrap()
        .plan;
    let inputs = inputs_with_fixed_seed_for_tests(&plan, 10, 1);
    let mut opts = test_options();
    opts.max_memory = Some(1000);
    let e = exec::run_in_process(&valid(&plan), &per_party(&plan, &inputs), &opts).unwrap_err();
    assert_eq!(e.kind, exec::ErrorKind::Input, "{e}");
    assert!(
        e.message.contains("this party would need about")
            && e.message.contains("at batch = 10")
            && e.message.contains("more than its limit of 1000 B")
            && e.message.contains("--max-memory"),
        "{e}"
    );
    opts.max_memory = Some(1 << 30);
    exec::run_in_process(&valid(&plan), &per_party(&plan, &inputs), &opts).unwrap();
}

/// Rows of exact ties between products of rounded values (`3t · 0.1` and
/// `t · 0.3`): computed privately, either entry may come out largest, and
/// the index is checked as a set. The reference's first largest is not
/// always the private answer here, and every private answer is one of the
/// entries within the output's near-tie slack of the maximum.
#[test]
fn an_argmax_on_near_ties_is_checked_as_a_set() {
    let m = checked(
        "model m { party a; party b; dealer d;
           input x: fixed[batch, 2] private(a) in [-1, 1]; input y: fixed[2] private(b) in [-1, 1];
           let k = argmax(x * y); output k to a; }",
    );
    let rows = 64;
    let o = options(|o| {
        o.assume.insert("batch".into(), rows as u64);
    });
    let plan = compiler::compile(&m, &o).unwrap().plan;
    let spec = &plan.outputs[0];
    let slack = spec.near_tie.expect("an argmax output");
    let x: Vec<f64> = (1..=rows)
        .flat_map(|i| [0.015 * i as f64, 0.005 * i as f64])
        .collect();
    let inputs = BTreeMap::from([
        ("x".to_string(), Tensor::new(vec![rows, 2], x).unwrap()),
        (
            "y".to_string(),
            Tensor::new(vec![2], vec![0.1, 0.3]).unwrap(),
        ),
    ]);
    let want = &compiler::reference::expected(&m, &inputs).unwrap()[0];
    let mut other = 0;
    // Fresh dealer randomness each run.
    for run in 0..4 {
        let outcomes =
            exec::run_in_process(&valid(&plan), &per_party(&plan, &inputs), &test_options())
                .unwrap_or_else(|e| panic!("run {run}: {e}"));
        let got = &outcomes[0].outputs[0].1;
        let deviations = compiler::reference::deviations(spec, got, want).unwrap();
        for (r, (d, (g, w))) in deviations
            .iter()
            .zip(got.data.iter().zip(&want.value.data))
            .enumerate()
        {
            assert!(*d <= spec.error_bound, "row {r}: {g} (reference {w})");
            let scores = &want.scores.as_ref().unwrap().data[2 * r..2 * r + 2];
            assert!(
                (scores[0] - scores[1]).abs() < slack,
                "row {r} is a near-tie"
            );
            other += usize::from(g != w);
        }
    }
    assert!(other > 0, "no row came out as the other entry");
}

/// An argmax output with a public label table (`labels [..]`, what ONNX
/// classifiers with classes other than 0..k-1 import as): the receiver gets
/// the labels, equal to the reference's (near-ties as indices), with and
/// without a dealer.
#[test]
fn labelled_argmax_outputs_match_the_reference() {
    let m = checked(
        "model m { party a; party b; dealer d;
           input x: fixed[batch, 4] private(a) in [-2, 2]; input w: fixed[4, 3] private(b) in [-1, 1];
           let k = argmax(x @ w, axis: 1); output k to a labels [30, -1, 7.5]; }",
    );
    for (i, dealer) in [true, false].into_iter().enumerate() {
        let o = options(|o| {
            o.use_dealer = dealer;
            o.assume.insert("batch".into(), 40);
        });
        let outcomes = check_model("labels", &m, 40, &o, 950 + i as u64);
        let got = &outcomes[0].outputs[0].1;
        assert!(
            got.data.iter().all(|v| [30.0, -1.0, 7.5].contains(v)),
            "{:?}",
            got.data
        );
        for label in [30.0, -1.0, 7.5] {
            assert!(
                got.data.contains(&label),
                "every class occurs in 40 random rows"
            );
        }
    }
}

/// `exp` on shares, as (1 + t + t²/2)^128 with t = x/128: within its stated bound of the
/// exact e^x, with and without a dealer; on `s - max(s)` (the softmax
/// numerator, in (0, 1]) the bound is small enough for probabilities.
#[test]
fn exp_holds_its_bound() {
    let m = checked(
        "model m { party a; party b; dealer d;
           input x: fixed[batch, 4] private(a) in [-2, 2]; input w: fixed[4, 3] private(b) in [-1, 1];
           let s = x @ w; let e = exp(s - max(s)); let g = exp(x * w[0]);
           output e to a; output g to a; }"
            .replace("w[0]", "sum(w)")
            .as_str(),
    );
    for (i, dealer) in [true, false].into_iter().enumerate() {
        let o = options(|o| {
            o.use_dealer = dealer;
            o.assume.insert("batch".into(), 5);
        });
        let plan = compiler::compile(&m, &o).unwrap().plan;
        let e = plan.outputs[0].error_bound;
        assert!(e < 5e-4, "exp(s - max(s)) bound {e}");
        check_model("exp", &m, 5, &o, 900 + i as u64);
    }
    // Below -128 the base 1 + t + t²/2 grows again. Where comparisons are
    // cheap (a dealer, or OT correlations) the input is clamped at -128
    // first (e^-128 is 0 to any precision), and the result holds its bound
    // on inputs that go below; with Paillier correlations it is refused.
    let wide = checked(
        "model m { party a; party b; dealer d; input x: fixed[batch, 3] private(a) in [-300, 0];
           input y: fixed[3] private(b) in [1, 1.01]; let e = exp(x * y); output e to a; }",
    );
    for (i, dealer) in [true, false].into_iter().enumerate() {
        let o = options(|o| {
            o.use_dealer = dealer;
            o.correlations = (!dealer).then_some(plan::CorrelationEngine::Ot);
            o.assume.insert("batch".into(), 20);
        });
        let plan = compiler::compile(&wide, &o).unwrap().plan;
        assert!(
            plan.outputs[0].error_bound < 5e-3,
            "{}",
            plan.outputs[0].error_bound
        );
        let inputs = inputs_with_fixed_seed_for_tests(&plan, 20, 910 + i as u64);
        assert!(
            inputs["x"].data.iter().any(|v| *v < -260.0),
            "some input should lie below -128"
        );
        check_model("wide exp", &wide, 20, &o, 910 + i as u64);
    }
    let paillier = options(|o| {
        o.use_dealer = false;
        o.correlations = Some(plan::CorrelationEngine::Paillier);
    });
    match compiler::compile(&wide, &paillier) {
        Err(compiler::CompileError::Model(d)) => {
            assert!(
                d.iter().any(|d| d.code == grammar::Code::PolyOverflow),
                "{d:?}"
            )
        }
        other => panic!("exp below -128 compiled: {:?}", other.map(|_| ())),
    }
}

/// `reciprocal` on shares by Newton's iteration: within its stated bound
/// of the exact 1/x on positive and negative ranges, with and without a
/// dealer; a range holding 0 is refused (E0304).
#[test]
fn reciprocal_holds_its_bound() {
    let m = checked(
        "model m { party a; party b; dealer d;
           input x: fixed[batch, 3] private(a) in [0.5, 2]; input y: fixed[3] private(b) in [1, 2];
           let p = reciprocal(x * y); let n = reciprocal(0 - x - y); let q = x / y; let h = x / 4;
           output p to a; output n to a; output q to a; output h to a; }",
    );
    for (i, dealer) in [true, false].into_iter().enumerate() {
        let o = options(|o| {
            o.use_dealer = dealer;
            o.assume.insert("batch".into(), 4);
        });
        let plan = compiler::compile(&m, &o).unwrap().plan;
        for spec in &plan.outputs {
            assert!(
                spec.error_bound < 5e-3,
                "{}: bound {}",
                spec.name,
                spec.error_bound
            );
        }
        check_model("reciprocal", &m, 4, &o, 950 + i as u64);
    }
    assert_refused_where_the_range_reaches_zero("reciprocal", -1);
}

/// `softmax` along the classes of each row, privately, with and without a
/// dealer: every probability within the compiler's bound of the exact one
/// (about 2.0e-4 here, measured near 3e-5; it was 5.4e-3 with the
/// first-order (1 + x/256)^256, whose own error dominated), well within
/// the issue's 5e-3. Rows sum to 1 within the bound per entry.
#[test]
fn softmax_probabilities_hold_their_bound() {
    let m = checked(
        "model m { party a; party b; dealer d; precision 20;
           input x: fixed[batch, 6] private(a) in [-2, 2]; input w: fixed[6, 4] private(b) in [-1, 1];
           let s = x @ w; let p = softmax(s); let q = softmax(s, axis: 1);
           output p to a; output q to a; }",
    );
    for (i, dealer) in [true, false].into_iter().enumerate() {
        let o = options(|o| {
            o.use_dealer = dealer;
            o.assume.insert("batch".into(), 5);
        });
        let plan = compiler::compile(&m, &o).unwrap().plan;
        let bound = plan.outputs[0].error_bound;
        assert!(bound <= 5e-4, "softmax bound {bound}");
        let outcomes = check_model("softmax", &m, 5, &o, 970 + i as u64);
        let p = &outcomes[0].outputs[0].1;
        let inputs = inputs_with_fixed_seed_for_tests(&plan, 5, 970 + i as u64);
        let exact = &compiler::reference::evaluate(&m, &inputs).unwrap()[0].1;
        let worst = (p.data.iter().zip(&exact.data))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst <= bound, "softmax off by {worst}, bound {bound}");
        for row in p.data.chunks(4) {
            let total: f64 = row.iter().sum();
            assert!((total - 1.0).abs() <= 4.0 * bound, "a row sums to {total}");
        }
    }
}

/// `log` on shares (Newton's iteration on exp from a tangent, steps from
/// the range) with random ranges, precisions and shapes, with and without a
/// dealer: within its stated bound of the exact ln, and the bound small.
#[test]
fn log_with_random_ranges_holds_its_bound() {
    use rand::RngExt;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1818);
    for case in 0..6u64 {
        let lo = rng.random_range(0.05..2.0f64);
        let hi = lo * rng.random_range(1.5..200.0f64);
        let k = rng.random_range(1..=5usize);
        let precision = if case % 3 == 0 { 16 } else { 20 };
        let m = checked(&format!(
            "model m {{ party a; party b; dealer d; precision {precision};
               input x: fixed[batch, {k}] private(a) in [{lo}, {hi}];
               input y: fixed[{k}] private(b) in [0, 1];
               let l = log(x + y); output l to a; }}"
        ));
        let dealer = case % 2 == 0;
        let o = options(|o| {
            o.use_dealer = dealer;
            o.assume.insert("batch".into(), 6);
        });
        let plan = compiler::compile(&m, &o).unwrap().plan;
        let bound = plan.outputs[0].error_bound;
        // Mostly the exp's rounding times the largest input.
        assert!(
            bound < (hi + 1.0) * 64.0 * 2f64.powi(-precision) + 1e-3,
            "log on [{lo}, {}] at precision {precision}: bound {bound}",
            hi + 1.0
        );
        check_model("log", &m, 6, &o, 1800 + case);
    }
    // A range reaching 0 is refused (E0304), not computed.
    assert_refused_where_the_range_reaches_zero("log", 0);
}

/// `log_softmax` along random axes of random shapes, with and without a
/// dealer: within the compiler's bound of the exact values (PyTorch's
/// definition, computed here from the inputs), the bound within 5e-3.
#[test]
fn log_softmax_along_random_axes_matches_the_reference() {
    use rand::RngExt;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1819);
    for case in 0..4u64 {
        let classes = rng.random_range(2..=6usize);
        let rows = rng.random_range(1..=3usize);
        let axis = rng.random_range(0..2usize);
        let shape = if axis == 0 {
            format!("[{classes}, {rows}]")
        } else {
            format!("[{rows}, {classes}]")
        };
        let m = checked(&format!(
            "model m {{ party a; party b; dealer d; precision 20;
               input x: fixed{shape} private(a) in [-3, 3]; input y: fixed{shape} private(b) in [-1, 1];
               let l = log_softmax(x + y, axis: {axis}); output l to a; }}"
        ));
        let dealer = case % 2 == 0;
        let o = options(|o| o.use_dealer = dealer);
        let plan = compiler::compile(&m, &o).unwrap().plan;
        let bound = plan.outputs[0].error_bound;
        assert!(bound <= 5e-3, "log_softmax bound {bound}");
        check_model("log_softmax", &m, 1, &o, 1900 + case);
        // The reference is PyTorch's formula.
        let inputs = inputs_with_fixed_seed_for_tests(&plan, 1, 1900 + case);
        let got = &compiler::reference::evaluate(&m, &inputs).unwrap()[0].1;
        let s: Vec<f64> = (inputs["x"].data.iter().zip(&inputs["y"].data))
            .map(|(a, b)| a + b)
            .collect();
        let (n0, n1) = if axis == 0 {
            (classes, rows)
        } else {
            (rows, classes)
        };
        for i in 0..n0 {
            for j in 0..n1 {
                let along: Vec<f64> = if axis == 0 {
                    (0..n0).map(|r| s[r * n1 + j]).collect()
                } else {
                    (0..n1).map(|c| s[i * n1 + c]).collect()
                };
                let max = along.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = max + along.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                let want = s[i * n1 + j] - lse;
                assert!((got.data[i * n1 + j] - want).abs() < 1e-9);
            }
        }
    }
}

/// `leaky_relu`, `relu6` and `hardtanh`, written out as `max(x, s·x)` and
/// `clamp`, privately with and without a dealer: within the compiler's
/// bound of the reference, and the reference is PyTorch's definition
/// (computed here directly from the inputs, not through the checker's
/// rewriting).
#[test]
fn leaky_relu_relu6_and_hardtanh_match_the_reference() {
    let m = checked(
        "model m { party a; party b; dealer d;
           input x: fixed[batch, 4] private(a) in [-2, 2]; input w: fixed[4, 3] private(b) in [-1, 1];
           let s = x @ w;
           let l = leaky_relu(s); let k = leaky_relu(s, negative_slope: 0.25);
           let r = relu6(3 * s); let h = hardtanh(s); let g = hardtanh(s, min_val: -2, max_val: 0.5);
           output l to a; output k to a; output r to a, b; output h to a; output g to b; }",
    );
    type Activation = fn(f64) -> f64;
    let exact: [(&str, Activation); 5] = [
        ("l", |v| if v >= 0.0 { v } else { 0.01 * v }),
        ("k", |v| if v >= 0.0 { v } else { 0.25 * v }),
        ("r", |v| (3.0 * v).clamp(0.0, 6.0)),
        ("h", |v| v.clamp(-1.0, 1.0)),
        ("g", |v| v.clamp(-2.0, 0.5)),
    ];
    for (i, dealer) in [true, false].into_iter().enumerate() {
        let o = options(|o| {
            o.use_dealer = dealer;
            o.assume.insert("batch".into(), 16);
        });
        let plan = compiler::compile(&m, &o).unwrap().plan;
        assert_eq!(plan.randomness == plan::RandomnessSource::TwoParty, !dealer);
        assert!(
            (plan.programs.iter().flat_map(|p| &p.instrs))
                .any(|i| matches!(i, plan::Instr::Nonlinear { .. })),
            "the plan should compare on shares"
        );
        for spec in &plan.outputs {
            assert!(
                spec.error_bound < 1e-3,
                "{}: bound {}",
                spec.name,
                spec.error_bound
            );
        }
        let seed = 990 + i as u64;
        check_model("activations", &m, 16, &o, seed);
        let inputs = inputs_with_fixed_seed_for_tests(&plan, 16, seed);
        let s = inputs["x"].view().matmul(&inputs["w"].view()).unwrap();
        // The inputs reach every branch: below each lower bound, between
        // the bounds, and above each upper one (`3 * s > 6` for `relu6`).
        assert!(s.data.iter().any(|v| *v < -2.0), "{:?}", s.data);
        assert!(s.data.iter().any(|v| (-1.0..0.0).contains(v)));
        assert!(s.data.iter().any(|v| (0.0..0.5).contains(v)));
        assert!(s.data.iter().any(|v| *v > 2.0), "{:?}", s.data);
        let reference = compiler::reference::evaluate(&m, &inputs).unwrap();
        for (name, f) in exact {
            let (_, got) = reference.iter().find(|(n, _)| n == name).unwrap();
            for (a, v) in got.data.iter().zip(&s.data) {
                assert!(
                    (a - f(*v)).abs() < 1e-9,
                    "{name}({v}) is {a}, not {}",
                    f(*v)
                );
            }
        }
    }
}

/// `conv2d` and `conv1d` with random shapes and parameters (stride,
/// padding, dilation, groups, bias), run privately with a dealer, without
/// one (OT), and with the Paillier-heavy and RLWE choices: within the
/// compiler's bound of the reference (whose convolution a compiler test
/// checks against PyTorch's definition). Images held by one party and
/// weights by the other (input-holder products), and images that are
/// secret sums of both parties' inputs (patches taken on shares).
#[test]
fn convolutions_with_random_parameters_match_the_reference() {
    use compiler::ir::Protocol;
    use rand::RngExt;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(18);
    for case in 0..6u64 {
        let two = case % 2 == 0;
        let spatial = if two { 2 } else { 1 };
        let groups = rng.random_range(1..=2usize);
        let (cg, og) = (rng.random_range(1..=2usize), rng.random_range(1..=2usize));
        let (c, cout) = (cg * groups, og * groups);
        let mut sizes = Vec::new();
        let mut kernel = Vec::new();
        let (mut stride, mut padding, mut dilation) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..spatial {
            let k = rng.random_range(1..=3usize);
            let d = rng.random_range(1..=2usize);
            let p = rng.random_range(0..k);
            let reach = d * (k - 1) + 1;
            sizes.push(reach.saturating_sub(2 * p).max(1) + rng.random_range(0..3usize));
            kernel.push(k);
            stride.push(rng.random_range(1..=2usize));
            padding.push(p);
            dilation.push(d);
        }
        let list = |v: &[usize]| {
            v.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let f = if two { "conv2d" } else { "conv1d" };
        let (xs, ws) = (list(&sizes), list(&kernel));
        let secret = case % 3 == 1;
        let bias = if case % 2 == 1 { "bias, " } else { "" };
        let source = format!(
            "model conv {{ party a; party b; dealer d;
               input xa: fixed[batch, {c}, {xs}] private(a) in [-1, 1];
               input xb: fixed[batch, {c}, {xs}] private(b) in [-1, 1];
               input w: fixed[{cout}, {cg}, {ws}] private(b) in [-1, 1];
               input bias: fixed[{cout}] private(b) in [-1, 1];
               let x = {};
               let y = {f}(x, w, {bias}stride: [{}], padding: [{}], dilation: [{}], groups: {groups});
               output y to a; }}",
            if secret { "xa + xb" } else { "xa + 0 * sum(sum(xb))" },
            list(&stride),
            list(&padding),
            list(&dilation),
        );
        let source = if secret {
            source
        } else {
            source.replace("xa + 0 * sum(sum(xb))", "xa").replace(
                "output y to a;",
                "let u = sum(xb, axis: 0); output y to a; output u to b;",
            )
        };
        let m = checked(&source);
        let choices: [(bool, Option<Protocol>); 4] = [
            (true, None),
            (false, None),
            (false, Some(Protocol::Paillier)),
            (false, Some(Protocol::Rlwe)),
        ];
        for (j, (dealer, prefer)) in choices.into_iter().enumerate() {
            // The Paillier and RLWE choices on half the cases (they are slow).
            if j >= 2 && case % 2 == 1 {
                continue;
            }
            let o = options(|o| {
                o.use_dealer = dealer;
                o.prefer = prefer;
                o.assume.insert("batch".into(), 2);
            });
            let name = format!("conv case {case} ({dealer}, {prefer:?}): {source}");
            check_model(&name, &m, 2, &o, 1800 + 10 * case + j as u64);
        }
    }
}

fn list(v: &[usize]) -> String {
    v.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A random pooling for the pooling tests: 2-d for even cases, max for
/// cases 0 and 1 mod 4; kernels from `k_min` to 3, strides from `s_min` to
/// 3, paddings up to half the kernel, dilation 1 where `no_dilation`
/// says so (else 1 or 2), and each size a little over one window (plus at
/// least `extra`).
struct PoolCase {
    spatial: usize,
    channels: usize,
    kind: &'static str,
    sizes: Vec<usize>,
    kernel: Vec<usize>,
    stride: Vec<usize>,
    padding: Vec<usize>,
    dilation: Vec<usize>,
}

impl PoolCase {
    fn random(
        rng: &mut rand_chacha::ChaCha8Rng,
        case: u64,
        k_min: usize,
        s_min: usize,
        extra: usize,
        no_dilation: fn(&str, usize) -> bool,
    ) -> PoolCase {
        use rand::RngExt;
        let spatial = if case.is_multiple_of(2) { 2 } else { 1 };
        let channels = rng.random_range(1..=3usize);
        let kind = if case % 4 < 2 { "max" } else { "avg" };
        let mut w = PoolCase {
            spatial,
            channels,
            kind,
            sizes: Vec::new(),
            kernel: Vec::new(),
            stride: Vec::new(),
            padding: Vec::new(),
            dilation: Vec::new(),
        };
        for _ in 0..spatial {
            let k = rng.random_range(k_min..=3usize);
            let p = rng.random_range(0..=k / 2);
            let d = if no_dilation(kind, p) {
                1
            } else {
                rng.random_range(1..=2usize)
            };
            w.sizes.push(
                (d * (k - 1) + 1).saturating_sub(2 * p).max(1) + rng.random_range(extra..4 + extra),
            );
            w.kernel.push(k);
            w.stride.push(rng.random_range(s_min..=3usize));
            w.padding.push(p);
            w.dilation.push(d);
        }
        w
    }

    /// The call's window arguments.
    fn args(&self) -> String {
        format!(
            "[{}], stride: [{}], padding: [{}], dilation: [{}]",
            list(&self.kernel),
            list(&self.stride),
            list(&self.padding),
            list(&self.dilation)
        )
    }
}

/// `max_pool2d`, `avg_pool2d`, their 1-d forms and `global_avg_pool` with
/// random windows, strides and paddings, on secret values (sums of both
/// parties' inputs, some through a relu, which the compiler moves after a
/// max pooling), with a dealer and without one: within the compiler's
/// bound of the reference (whose poolings a compiler test checks against
/// PyTorch's definitions).
#[test]
fn poolings_with_random_parameters_match_the_reference() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(182);
    for case in 0..8u64 {
        let w = PoolCase::random(&mut rng, case, 1, 1, 0, |kind, p| kind == "max" && p > 0);
        let (c, kind, spatial, xs) = (w.channels, w.kind, w.spatial, list(&w.sizes));
        let operand = if case % 3 == 0 { "relu(x)" } else { "x" };
        let source = format!(
            "model pool {{ party a; party b; dealer d;
               input xa: fixed[batch, {c}, {xs}] private(a) in [-1, 1];
               input xb: fixed[batch, {c}, {xs}] private(b) in [-1, 1];
               let x = xa + xb;
               let y = {kind}_pool{spatial}d({operand}, {});
               let g = global_avg_pool(x);
               output y to a; output g to b; }}",
            w.args(),
        );
        let m = checked(&source);
        for (j, dealer) in [true, false].into_iter().enumerate() {
            let o = options(|o| {
                o.use_dealer = dealer;
                o.assume.insert("batch".into(), 2);
            });
            let name = format!("pool case {case} (dealer: {dealer}): {source}");
            check_model(&name, &m, 2, &o, 1900 + 10 * case + j as u64);
        }
    }
}

/// Poolings with `ceil_mode: true` and random windows (max pooling
/// without dilation, refused where a window is added), with and without a
/// dealer: within the bound of the reference, whose poolings a compiler
/// test checks against PyTorch's definition; most cases add a window.
#[test]
fn poolings_with_ceil_mode_match_the_reference() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1818);
    let mut added = 0;
    for case in 0..8u64 {
        let w = PoolCase::random(&mut rng, case, 2, 2, 1, |kind, _| kind == "max");
        let (c, kind, spatial, xs) = (w.channels, w.kind, w.spatial, list(&w.sizes));
        let call =
            |ceil: bool| format!("{kind}_pool{spatial}d(x, {}, ceil_mode: {ceil})", w.args());
        let source = format!(
            "model pool {{ party a; party b; dealer d;
               input xa: fixed[batch, {c}, {xs}] private(a) in [-1, 1];
               input xb: fixed[batch, {c}, {xs}] private(b) in [-1, 1];
               let x = xa + xb;
               let y = {}; let z = {};
               output y to a; output z to b; }}",
            call(true),
            call(false),
        );
        let m = checked(&source);
        let shape = |i: usize| m.value(m.outputs()[i].value).shape.clone();
        if shape(0) != shape(1) {
            added += 1;
        }
        for (j, dealer) in [true, false].into_iter().enumerate() {
            let o = options(|o| {
                o.use_dealer = dealer;
                o.assume.insert("batch".into(), 2);
            });
            let name = format!("ceil case {case} (dealer: {dealer}): {source}");
            check_model(&name, &m, 2, &o, 2900 + 10 * case + j as u64);
        }
    }
    assert!(added >= 4, "only {added} cases added a window");
}

/// A `.npy` file of the bundled networks (format 1.0; `<f4`, `|i1` or
/// `<i8`, the dtypes models/nets/train.py writes).
fn npy_for_tests(path: &Path) -> Tensor {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00", "{}", path.display());
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    let field = |key: &str| {
        let at = header.find(key).unwrap() + key.len();
        header[at..].trim_start_matches([':', ' ', '\''])
    };
    let descr = &field("'descr'")[..3];
    let dims = field("'shape'");
    let dims = &dims[1..dims.find(')').unwrap()];
    let shape: Vec<usize> = dims
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().unwrap())
        .collect();
    let body = &bytes[10 + len..];
    let data: Vec<f64> = match descr {
        "<f4" => body
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        "|i1" => body.iter().map(|&b| b as i8 as f64).collect(),
        "<i8" => body
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        other => panic!("{}: dtype {other}", path.display()),
    };
    Tensor::new(shape, data).unwrap()
}

/// The first `n` rows of `t`.
fn rows_for_tests(t: &Tensor, n: usize) -> Tensor {
    let per: usize = t.shape[1..].iter().product();
    let mut shape = t.shape.clone();
    shape[0] = n;
    Tensor::new(shape, t.data[..n * per].to_vec()).unwrap()
}

/// The bundled networks A-D and LeNet-5 (models/net_*.veil, lenet5.veil)
/// with their trained weights, on test images of the digits split (not
/// MNIST: models/nets/train.py): the private labels equal the plaintext
/// reference's, exactly, with a dealer and without one, and the logits
/// lie within the compiler's bound. The reference's accuracy on the whole
/// split is printed, not asserted.
#[test]
fn bundled_networks_label_test_images_as_the_reference() {
    let nets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/nets");
    let images = npy_for_tests(&nets.join("digits_test_x.npy"));
    let labels = npy_for_tests(&nets.join("digits_test_y.npy"));
    assert_eq!(images.shape, vec![100, 1, 28, 28]);
    for (i, name) in NETS.iter().enumerate() {
        let m = model(name);
        let mut inputs: BTreeMap<String, Tensor> = BTreeMap::new();
        for v in m.values() {
            if let (compiler::ir::Op::Input { .. }, Some(input)) = (&v.op, &v.name) {
                if input != "x" {
                    inputs.insert(
                        input.clone(),
                        npy_for_tests(&nets.join(name).join(format!("{input}.npy"))),
                    );
                }
            }
        }
        // The reference on the whole split.
        inputs.insert("x".into(), images.clone());
        let all = compiler::reference::evaluate(&m, &inputs).unwrap();
        let predicted = &all.iter().find(|(n, _)| n == "label").unwrap().1;
        let right = (predicted.data.iter().zip(&labels.data))
            .filter(|(p, y)| p == y)
            .count();
        println!("{name}: the reference labels {right} of 100 test images right");
        assert!(
            right >= 50,
            "{name}: the trained weights label only {right} of 100"
        );
        for (j, (dealer, n)) in [(true, 4), (false, 2)].into_iter().enumerate() {
            // Different images for each net and setting.
            let first = 6 * i + 4 * j;
            let x = rows_for_tests(&images, first + n);
            let per: usize = x.shape[1..].iter().product();
            inputs.insert(
                "x".into(),
                Tensor::new(vec![n, 1, 28, 28], x.data[first * per..].to_vec()).unwrap(),
            );
            let o = options(|o| {
                o.use_dealer = dealer;
                o.assume.insert("batch".into(), n as u64);
            });
            let plan = compiler::compile(&m, &o).unwrap().plan;
            let what = format!("{name} (dealer: {dealer})");
            let outcomes = check_on(&what, &m, &plan, n, &inputs);
            let exact = compiler::reference::evaluate(&m, &inputs).unwrap();
            let want = &exact.iter().find(|(n, _)| n == "label").unwrap().1;
            let got = &outcomes[0]
                .outputs
                .iter()
                .find(|(n, _)| n == "label")
                .unwrap()
                .1;
            assert_eq!(got.data, want.data, "{what}: labels");
        }
    }
}

/// `batch_norm` privately, with and without a dealer: folded into a
/// convolution's weights (the server holds them and the statistics: no
/// product beyond the convolution's) and unfolded on a
/// secret value (`x·scale + shift`, the scale computed in the clear at the
/// server), within the compiler's bound of the reference. A variance no
/// single party knows is refused (E0304), not computed wrongly.
#[test]
fn batch_norm_matches_the_reference_folded_or_not() {
    let m = checked(
        "model m { party a; party s; dealer d;
           input x: fixed[batch, 2, 5, 5] private(a) in [-1, 1];
           input w: fixed[3, 2, 3, 3] private(s) in [-1, 1]; input b: fixed[3] private(s) in [-1, 1];
           input mean: fixed[3] private(s) in [-1, 1]; input var: fixed[3] private(s) in [0.25, 4];
           input g: fixed[3] private(s) in [-2, 2]; input c: fixed[3] private(s) in [-1, 1];
           input y: fixed[batch, 3, 3, 3] private(s) in [-1, 1];
           let h = batch_norm(conv2d(x, w, b), mean, var, g, c);
           let k = batch_norm(h + y, mean, var);
           output h to a; output k to a; }",
    );
    for (i, dealer) in [true, false].into_iter().enumerate() {
        let o = options(|o| {
            o.use_dealer = dealer;
            o.assume.insert("batch".into(), 2);
        });
        let plan = compiler::compile(&m, &o).unwrap().plan;
        // The scale is computed in the clear at the server.
        let text = plan.to_text();
        assert!(text.contains("clear.rsqrt"), "{text}");
        if dealer {
            // Folded: one product for the convolution and none for h's
            // normalisation; k's is one product by the server's scale.
            let products = (plan.programs.iter().flat_map(|p| &p.instrs))
                .filter(|i| {
                    matches!(
                        i,
                        plan::Instr::BeaverOpen { .. } | plan::Instr::HolderOpen { .. }
                    )
                })
                .count();
            assert_eq!(
                products,
                2 * 2,
                "one per party for each of two products: {text}"
            );
        }
        check_model("batch_norm", &m, 2, &o, 1990 + i as u64);
    }
    // A variance no single party knows: 1/√ by Newton's iteration on shares.
    let secret = checked(
        "model m { party a; party s; dealer d; input x: fixed[batch, 3] private(a) in [-1, 1];
           input v: fixed[3] private(s) in [0.5, 1]; input u: fixed[3] private(a) in [0.5, 1];
           input z: fixed[3] private(s) in [-1, 1];
           let k = batch_norm(x, z, v + u); output k to a; }",
    );
    for (i, dealer) in [true, false].into_iter().enumerate() {
        let o = options(|o| {
            o.use_dealer = dealer;
            o.assume.insert("batch".into(), 3);
        });
        let plan = compiler::compile(&secret, &o).unwrap().plan;
        assert!(!plan.to_text().contains("clear.rsqrt"));
        assert!(
            plan.outputs[0].error_bound < 1e-3,
            "{}",
            plan.outputs[0].error_bound
        );
        check_model("secret batch_norm", &secret, 3, &o, 1995 + i as u64);
    }
}

/// `rsqrt` and `sqrt` on shares (Newton's iteration from a constant guess,
/// steps from the range) with random ranges and shapes, with and without a
/// dealer: within the stated bound of the exact values; a range reaching 0
/// is refused (E0304).
#[test]
fn rsqrt_and_sqrt_with_random_ranges_hold_their_bounds() {
    use rand::RngExt;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1820);
    for case in 0..6u64 {
        let lo = rng.random_range(0.01..2.0f64);
        let hi = lo * rng.random_range(1.5..1000.0f64);
        let k = rng.random_range(1..=4usize);
        let precision = if case % 3 == 0 { 16 } else { 20 };
        let m = checked(&format!(
            "model m {{ party a; party b; dealer d; precision {precision};
               input x: fixed[batch, {k}] private(a) in [{lo}, {hi}];
               input y: fixed[{k}] private(b) in [0, 1];
               let r = rsqrt(x + y); let s = sqrt(x + y); output r to a; output s to b; }}"
        ));
        let dealer = case % 2 == 0;
        let o = options(|o| {
            o.use_dealer = dealer;
            o.assume.insert("batch".into(), 5);
        });
        let plan = compiler::compile(&m, &o).unwrap().plan;
        // sqrt = x·rsqrt(x): rsqrt's error times x, up to hi + 1.
        for (spec, scale) in plan.outputs.iter().zip([1.0, hi + 1.0]) {
            assert!(
                spec.error_bound.is_finite() && spec.error_bound < 0.1 * scale,
                "[{lo}, {hi}] at precision {precision}: {} bound {}",
                spec.name,
                spec.error_bound
            );
        }
        check_model("rsqrt", &m, 5, &o, 2000 + case);
    }
    assert_refused_where_the_range_reaches_zero("rsqrt", -1);
}

/// `op(x + y)` with `x` in [lo, 1] and `y` in [0, 1], so its input's range
/// reaches 0, is refused at compile time (E0304), not computed.
fn assert_refused_where_the_range_reaches_zero(op: &str, lo: i32) {
    let zero = checked(&format!(
        "model m {{ party a; party b; input x: fixed[3] private(a) in [{lo}, 1];
           input y: fixed[3] private(b) in [0, 1]; let r = {op}(x + y); output r to a; }}"
    ));
    match compiler::compile(&zero, &options(|_| {})) {
        Err(compiler::CompileError::Model(d)) => {
            assert!(
                d.iter().any(|d| d.code == grammar::Code::PolyOverflow),
                "{op}: {d:?}"
            )
        }
        other => panic!("{op} around 0 compiled: {:?}", other.map(|_| ())),
    }
}

/// `concat` (along the channels of two convolutions, and of a secret
/// value with a public one) and `narrow`, privately with and without a
/// dealer: local data movement, within the compiler's bound of the
/// reference.
#[test]
fn concat_and_narrow_match_the_reference() {
    let m = checked(
        "model m { party a; party s; dealer d;
           input xa: fixed[batch, 1, 4, 4] private(a) in [-1, 1];
           input xs: fixed[batch, 1, 4, 4] private(s) in [-1, 1];
           input w: fixed[2, 1, 3, 3] private(s) in [-1, 1]; input v: fixed[3, 1, 1, 1] private(s) in [-1, 1];
           const k: fixed[1, 4] = [[1, 2, 3, 4]];
           let x = xa + xs;
           let c = concat(conv2d(x, w, padding: 1), conv2d(x, v), axis: 1);
           let n = narrow(relu(c), 1, 1, 3);
           let e = cat(narrow(x, 2, 0, 1), reshape(k, [1, 1, 4]) + 0 * narrow(x, 2, 1, 1), axis: 2);
           output n to a; output e to a; }",
    );
    for (i, dealer) in [true, false].into_iter().enumerate() {
        let o = options(|o| {
            o.use_dealer = dealer;
            o.assume.insert("batch".into(), 3);
        });
        let plan = compiler::compile(&m, &o).unwrap().plan;
        let text = plan.to_text();
        assert!(
            text.contains("share.concat") && text.contains("share.narrow"),
            "{text}"
        );
        check_model("concat", &m, 3, &o, 2100 + i as u64);
    }
}

/// A model over `x: [batch, k]` with per-column ranges `cols` (or, with
/// `hull`, the one range holding them all): a scaler inside the model, a
/// product with private weights on the scaled and on the raw features, and
/// a relu of the scaled ones.
fn column_ranges_source(cols: &[(i32, i32)], hull: bool) -> String {
    let k = cols.len();
    let range = if hull {
        let lo = cols.iter().map(|c| c.0).min().unwrap();
        let hi = cols.iter().map(|c| c.1).max().unwrap();
        format!("[{lo}, {hi}]")
    } else {
        let c: Vec<String> = cols.iter().map(|(l, h)| format!("[{l}, {h}]")).collect();
        format!("[{}]", c.join(", "))
    };
    let list = |f: &dyn Fn(f64, f64) -> f64| {
        let v: Vec<String> = cols
            .iter()
            .map(|&(l, h)| format!("{}", f(l as f64, h as f64)))
            .collect();
        v.join(", ")
    };
    let mu = list(&|l, h| (l + h) / 2.0);
    // 2/(width), rounded to a few digits: scaled columns lie in about [-1, 1].
    let inv = list(&|l, h| (2.0 / (h - l) * 1e4).round() / 1e4);
    format!(
        "model cols {{ party a; party b; dealer d;
           input x: fixed[batch, {k}] private(a) in {range};
           input w: fixed[{k}, 2] private(b) in [-1, 1];
           const mu: fixed[{k}] = [{mu}]; const inv: fixed[{k}] = [{inv}];
           let z = (x - mu) * inv;
           let s = z @ w; let t = x @ w; let r = relu(z);
           output s to a; output t to a; output r to a; }}"
    )
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 6, ..Default::default() })]
    /// Per-column input ranges (`in [[lo, hi], ...]`) with random widths,
    /// with and without a dealer: every output within its bound of the
    /// reference, on data spread over each column's range, and no bound
    /// wider than with the single range holding every column (the scaled
    /// product's much tighter where widths differ).
    #[test]
    fn per_column_ranges_hold_their_bounds_and_are_never_looser(
        cols in proptest::collection::vec((-300i32..300, 1i32..600), 2..6),
        batch in 1usize..4,
        seed in 0u64..1000,
    ) {
        let cols: Vec<(i32, i32)> = cols.into_iter().map(|(lo, w)| (lo, lo + w)).collect();
        let m = checked(&column_ranges_source(&cols, false));
        let wide = checked(&column_ranges_source(&cols, true));
        for dealer in [true, false] {
            let o = options(|o| {
                o.use_dealer = dealer;
                o.assume.insert("batch".into(), batch as u64);
            });
            let plan = compiler::compile(&m, &o).unwrap().plan;
            let columns: Vec<(f64, f64)> =
                cols.iter().map(|&(l, h)| (l as f64, h as f64)).collect();
            proptest::prop_assert_eq!(&plan.inputs[0].columns, &columns);
            let hull = compiler::compile(&wide, &o).unwrap().plan;
            for (a, b) in plan.outputs.iter().zip(&hull.outputs) {
                proptest::prop_assert!(
                    a.error_bound <= b.error_bound,
                    "{}: {} > {} with one range", a.name, a.error_bound, b.error_bound
                );
            }
            let widths: Vec<i32> = cols.iter().map(|c| c.1 - c.0).collect();
            if widths.iter().max().unwrap() >= &(4 * widths.iter().min().unwrap()) {
                proptest::prop_assert!(
                    plan.outputs[0].error_bound < hull.outputs[0].error_bound,
                    "{} vs {}", plan.outputs[0].error_bound, hull.outputs[0].error_bound
                );
            }
            check_model("cols", &m, batch, &o, seed);
        }
    }
}

/// The runtime enforces each column's range: a value inside the hull of
/// the columns but outside its own column's range is refused, the error
/// naming the value's place and column, never the value; the bounds the
/// compiler states are the tighter ones.
#[test]
fn a_value_outside_its_columns_range_is_refused() {
    let cols = [(0, 255), (-1, 1), (-2, 2)];
    let m = checked(&column_ranges_source(&cols, false));
    let wide = checked(&column_ranges_source(&cols, true));
    for dealer in [true, false] {
        let o = options(|o| o.use_dealer = dealer);
        let plan = compiler::compile(&m, &o).unwrap().plan;
        let hull = compiler::compile(&wide, &o).unwrap().plan;
        // The scaled product: far below the single range's bound.
        let (tight, loose) = (plan.outputs[0].error_bound, hull.outputs[0].error_bound);
        assert!(tight * 3.0 < loose, "{tight} vs {loose}");
        let w = Tensor::new(vec![3, 2], vec![0.5, -0.5, 0.25, 1.0, -1.0, 0.0]).unwrap();
        let x = Tensor::new(vec![2, 3], vec![200.0, 0.5, 1.0, 3.0, 17.25, 0.0]).unwrap();
        let inputs = BTreeMap::from([("x".to_string(), x), ("w".to_string(), w.clone())]);
        let err = exec::run_in_process(&valid(&plan), &per_party(&plan, &inputs), &test_options())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("value #4 lies outside the declared range [-1, 1] of its column (2 of 3)"),
            "{err}"
        );
        assert!(!err.contains("17.25"), "{err}");
        // The same data within each column's range runs, within the bounds.
        let x = Tensor::new(vec![2, 3], vec![255.0, 0.5, 1.0, 0.0, -1.0, -2.0]).unwrap();
        let inputs = BTreeMap::from([("x".to_string(), x), ("w".to_string(), w)]);
        check_on("cols", &m, &plan, 2, &inputs);
    }
}

/// A random convolution window for the property tests: the input's
/// spatial sizes (room for the dilated kernel, and `extra` more), the
/// kernel's, and `stride:`, `padding:` (at most the kernel less one) and
/// `dilation:` as model text.
#[derive(Clone, Debug)]
struct ConvCase {
    axes: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    pad: [usize; 2],
    extra: [usize; 2],
}

impl ConvCase {
    fn size(&self, a: usize) -> usize {
        self.dilation[a] * (self.kernel[a] - 1) + 1 + self.extra[a]
    }

    fn list(&self, f: impl Fn(usize) -> usize) -> String {
        (0..self.axes)
            .map(|a| f(a).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `conv2d` or `conv1d`.
    fn op(&self) -> &'static str {
        if self.axes == 2 {
            "conv2d"
        } else {
            "conv1d"
        }
    }

    /// The input's spatial sizes, as `fixed[...]` lists them.
    fn input_sizes(&self) -> String {
        self.list(|a| self.size(a))
    }

    fn kernel_sizes(&self) -> String {
        self.list(|a| self.kernel[a])
    }

    /// The named arguments after `x, w`.
    fn args(&self) -> String {
        format!(
            "stride: [{}], padding: [{}], dilation: [{}]",
            self.list(|a| self.stride[a]),
            self.list(|a| self.pad[a].min(self.kernel[a] - 1)),
            self.list(|a| self.dilation[a])
        )
    }

    /// Entries of one channel's patches (output positions × kernel).
    fn patches(&self) -> usize {
        (0..self.axes)
            .map(|a| {
                let p = self.pad[a].min(self.kernel[a] - 1);
                let span = self.dilation[a] * (self.kernel[a] - 1) + 1;
                ((self.size(a) + 2 * p - span) / self.stride[a] + 1) * self.kernel[a]
            })
            .product()
    }

    /// Entries of one channel of the input.
    fn input(&self) -> usize {
        (0..self.axes).map(|a| self.size(a)).product()
    }
}

/// Compiles `source` with its dealer at `batch`, runs it on seeded inputs
/// (checked against the reference by `check_on`) and returns the largest
/// deviation of output `y` from the reference, with the plan.
fn conv_run_with_a_dealer(source: &str, batch: usize, seed: u64) -> (plan::Plan, f64) {
    let m = checked(source);
    let o = options(|o| {
        o.use_dealer = true;
        o.assume.insert("batch".into(), batch as u64);
    });
    let plan = compiler::compile(&m, &o).unwrap().plan;
    let inputs = inputs_with_fixed_seed_for_tests(&plan, batch, seed);
    let outcomes = check_on(source, &m, &plan, batch, &inputs);
    let reference = compiler::reference::expected(&m, &inputs).unwrap();
    let (_, got) = outcomes[0].outputs.iter().find(|(n, _)| n == "y").unwrap();
    let worst = compiler::reference::deviations(&plan.outputs[0], got, &reference[0])
        .unwrap()
        .into_iter()
        .fold(0.0, f64::max);
    (plan, worst)
}

/// A random convolution of one or two spatial axes: kernel, stride,
/// dilation and padding, and the input's extent beyond its last window
/// position.
fn conv_case() -> impl proptest::strategy::Strategy<Value = ConvCase> {
    use proptest::strategy::Strategy;
    (
        proptest::bool::ANY,
        (1usize..4, 1usize..4),
        (1usize..3, 1usize..3),
        (1usize..3, 1usize..3),
        (0usize..3, 0usize..3),
        (0usize..4, 0usize..4),
    )
        .prop_map(|(two, k, stride, dilation, pad, extra)| ConvCase {
            axes: if two { 2 } else { 1 },
            kernel: [k.0, k.1],
            stride: [stride.0, stride.1],
            dilation: [dilation.0, dilation.1],
            pad: [pad.0, pad.1],
            extra: [extra.0, extra.1],
        })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 8, ..Default::default() })]
    /// With a dealer, `conv2d` and `conv1d` of a secret input (the sum of
    /// both parties' inputs) by a secret kernel use a convolution triple
    /// (`x − a` and `w − b` opened, not the patches) over random shapes,
    /// strides, paddings and dilations, and match the reference within the
    /// compiler's bound and within 0.05 (inputs and kernels in [-1, 1]).
    #[test]
    fn random_convolutions_with_a_dealer_use_a_convolution_triple(
        c in 1usize..4,
        cout in 1usize..4,
        w in conv_case(),
        batch in 1usize..3,
        seed in 0u64..1000,
    ) {
        let (f, xs, ks, args) = (w.op(), w.input_sizes(), w.kernel_sizes(), w.args());
        let source = format!(
            "model conv {{ party a; party b; dealer d;
               input xa: fixed[batch, {c}, {xs}] private(a) in [-1, 1];
               input xb: fixed[batch, {c}, {xs}] private(b) in [-1, 1];
               input wa: fixed[{cout}, {c}, {ks}] private(a) in [-0.5, 0.5];
               input wb: fixed[{cout}, {c}, {ks}] private(b) in [-0.5, 0.5];
               let y = {f}(xa + xb, wa + wb, {args});
               output y to a; }}"
        );
        let (plan, worst) = conv_run_with_a_dealer(&source, batch, seed);
        let text = plan.to_text();
        // Where the patches are fewer than the input's entries (a stride
        // beyond the kernel), the product of the patches opens less.
        if w.input() <= w.patches() {
            proptest::prop_assert_eq!(text.matches("convolution triple").count(), 1, "{}", text);
            proptest::prop_assert!(!text.contains("matrix triple"), "{}", text);
            // The patches are never cut: the triple reads the input.
            proptest::prop_assert!(!text.contains(".im2col["), "{}", text.split("registers:").nth(1).unwrap_or(""));
        } else {
            proptest::prop_assert!(!text.contains("convolution triple"), "{}", text);
        }
        proptest::prop_assert!(worst < 0.05, "{source}: off by {worst}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 8, ..Default::default() })]
    /// With a dealer, grouped `conv2d` and `conv1d` (depthwise among them:
    /// one input channel per group) of a secret input by a secret kernel
    /// use one convolution triple (`x − a` and `w − b` opened), no matrix
    /// or elementwise triple and no patches, over random groups, channels
    /// per group, strides, paddings and dilations, and match the
    /// reference within the compiler's bound and within 0.05. With `own`
    /// the input is one party's and the kernel the other's: an input-holder
    /// convolution triple, the input masked and sent by its holder, never
    /// its patches.
    #[test]
    fn random_grouped_convolutions_with_a_dealer_use_a_convolution_triple(
        own in proptest::bool::ANY,
        groups in 2usize..4,
        depthwise in proptest::bool::ANY,
        cg in 1usize..3,
        per_group in 1usize..3,
        w in conv_case(),
        batch in 1usize..3,
        seed in 0u64..1000,
    ) {
        let cg = if depthwise { 1 } else { cg };
        let (c, cout) = (groups * cg, groups * per_group);
        let (f, xs, ks, args) = (w.op(), w.input_sizes(), w.kernel_sizes(), w.args());
        let (inputs, x, kernel) = if own {
            (
                format!(
                    "input xa: fixed[batch, {c}, {xs}] private(a) in [-1, 1];
                     input wb: fixed[{cout}, {cg}, {ks}] private(b) in [-0.5, 0.5];"
                ),
                "xa",
                "wb",
            )
        } else {
            (
                format!(
                    "input xa: fixed[batch, {c}, {xs}] private(a) in [-1, 1];
                     input xb: fixed[batch, {c}, {xs}] private(b) in [-1, 1];
                     input wa: fixed[{cout}, {cg}, {ks}] private(a) in [-0.5, 0.5];
                     input wb: fixed[{cout}, {cg}, {ks}] private(b) in [-0.5, 0.5];"
                ),
                "xa + xb",
                "wa + wb",
            )
        };
        let source = format!(
            "model conv {{ party a; party b; dealer d;
               {inputs}
               let y = {f}({x}, {kernel}, {args}, groups: {groups});
               output y to a; }}"
        );
        let (plan, worst) = conv_run_with_a_dealer(&source, batch, seed);
        let text = plan.to_text();
        let correlations = text.split("registers:").next().unwrap_or("");
        // Each output channel's patch (per_group copies of its group's):
        // where those are fewer than the input's entries (a stride beyond
        // the kernel), the product of the patches opens less.
        if w.input() * c <= w.patches() * cout * cg {
            proptest::prop_assert_eq!(text.matches("convolution triple").count(), 1, "{}", correlations);
            proptest::prop_assert_eq!(
                text.contains("input-holder convolution triple"), own, "{}", correlations
            );
            proptest::prop_assert!(text.contains(&format!("groups {groups}x{per_group}")), "{}", correlations);
            proptest::prop_assert!(!text.contains("matrix triple"), "{}", correlations);
            proptest::prop_assert!(!text.contains(": triple "), "{}", correlations);
            // Neither on shares nor in the clear: the triple reads the input.
            proptest::prop_assert!(!text.contains(".im2col["), "{}", text);
        } else {
            proptest::prop_assert!(!text.contains("convolution triple"), "{}", correlations);
        }
        proptest::prop_assert!(worst < 0.05, "{source}: off by {worst}");
    }
}

/// A grouped convolution model of `x` by `w` (`layout` 0: `x` the
/// client's and `w` the server's clear inputs; 1: `x` a secret sum, `w` the
/// server's; 2: both secret sums), `f` its call with `groups:` and the
/// rest of its arguments.
fn grouped_conv_source(
    layout: usize,
    c: usize,
    xs: &str,
    cout: usize,
    ws: &str,
    call: &str,
) -> String {
    let (x, w) = match layout {
        0 => ("xa", "wb"),
        1 => ("xa + xb", "wb"),
        _ => ("xa + xb", "wa + wb"),
    };
    format!(
        "model conv {{ party a; party b; dealer d;
           input xa: fixed[batch, {c}, {xs}] private(a) in [-1, 1];
           input xb: fixed[batch, {c}, {xs}] private(b) in [-1, 1];
           input wa: fixed[{cout}, {ws}] private(a) in [-0.5, 0.5];
           input wb: fixed[{cout}, {ws}] private(b) in [-0.5, 0.5];
           let u = sum(xb, axis: 0);
           let v = sum(wa, axis: 0);
           let y = {};
           output y to a;
           output u to b;
           output v to a; }}",
        call.replace("X", x).replace("W", w)
    )
}

/// Compiles `source` with `o`, runs it at `batch` and checks it against the
/// reference (within the compiler's bound): the plan, its report and the
/// largest deviation of `y`.
fn grouped_conv_run(
    source: &str,
    o: &compiler::Options,
    batch: usize,
    seed: u64,
) -> (compiler::Compiled, f64) {
    let m = checked(source);
    let compiled = compiler::compile(&m, o).unwrap_or_else(|e| panic!("{source}: {e:?}"));
    let inputs = inputs_with_fixed_seed_for_tests(&compiled.plan, batch, seed);
    let outcomes = check_on(source, &m, &compiled.plan, batch, &inputs);
    let reference = compiler::reference::expected(&m, &inputs).unwrap();
    let (_, got) = outcomes[0].outputs.iter().find(|(n, _)| n == "y").unwrap();
    let worst = compiler::reference::deviations(&compiled.plan.outputs[0], got, &reference[0])
        .unwrap()
        .into_iter()
        .fold(0.0, f64::max);
    (compiled, worst)
}

/// Grouped convolutions (depthwise, a channel multiplier `Cout = 2C`,
/// stride 2, padding, dilation, `conv1d`) by RLWE, in each operand layout
/// RLWE runs (`x` clear at one party and `W` at the other, `x` shared and
/// `W` clear, both shared as two cross terms): forced (`--prefer rlwe`)
/// without a dealer and with one, and by the cost model's own choice
/// without one, match the reference within the compiler's bound and 0.05.
/// Forced, the products go by one RLWE product (HomConv where it is
/// cheaper) and no elementwise or convolution triple.
#[test]
fn grouped_convolutions_run_on_rlwe_and_match_the_reference() {
    use compiler::ir::Protocol;
    // (c, input sizes, cout, kernel input's trailing sizes, the call).
    let cases = [
        // Depthwise, padded: HomConv can run it.
        (
            4,
            "6, 6",
            4,
            "1, 3, 3",
            "conv2d(X, W, padding: 1, groups: 4)",
        ),
        // Depthwise with a channel multiplier, stride 2.
        (
            3,
            "7, 7",
            6,
            "1, 3, 3",
            "conv2d(X, W, stride: 2, padding: 1, groups: 3)",
        ),
        // Two groups of two channels, dilated (the patches' product).
        (
            4,
            "7, 6",
            4,
            "2, 3, 2",
            "conv2d(X, W, padding: [2, 1], dilation: [2, 1], groups: 2)",
        ),
        // conv1d, three groups, stride 2, dilation 2.
        (
            6,
            "9",
            6,
            "2, 3",
            "conv1d(X, W, stride: 2, padding: 1, dilation: 2, groups: 3)",
        ),
    ];
    let groups_of = |call: &str| -> usize {
        let at = call.find("groups: ").unwrap() + "groups: ".len();
        call[at..].trim_end_matches(')').parse().unwrap()
    };
    let mut seed = 4200;
    let mut by_groups = 0;
    for (c, xs, cout, ws, call) in cases {
        for layout in 0..3 {
            let source = grouped_conv_source(layout, c, xs, cout, ws, call);
            // Planned for 2 images, and for 1000 (where one product per
            // group is cheaper than one by the block-diagonal kernels);
            // run on 2.
            for (dealer, prefer, planned) in [
                (false, Some(Protocol::Rlwe), 2),
                (true, Some(Protocol::Rlwe), 2),
                (false, None, 2),
                (false, Some(Protocol::Rlwe), 1000),
                (false, None, 1000),
            ] {
                let o = options(|o| {
                    o.use_dealer = dealer;
                    o.prefer = prefer;
                    o.assume.insert("batch".into(), planned);
                });
                seed += 1;
                let (compiled, worst) = grouped_conv_run(&source, &o, 2, seed);
                let what = format!(
                    "layout {layout}, dealer {dealer}, {prefer:?}, planned for {planned}: {source}"
                );
                assert!(worst < 0.05, "{what}: off by {worst}");
                let text = compiled.plan.to_text();
                let report = &compiled.report;
                if prefer.is_some() {
                    assert!(
                        report.contains("grouped convolution on secret values: RLWE"),
                        "{what}\n{report}"
                    );
                    let correlations = text.split("registers:").next().unwrap_or("");
                    assert!(
                        !correlations.contains(": triple ["),
                        "{what}\n{correlations}"
                    );
                    assert!(
                        !correlations.contains("convolution triple"),
                        "{what}\n{correlations}"
                    );
                    // One product per cross term, or per group and term.
                    let groups = report.contains("one product per group");
                    by_groups += usize::from(groups);
                    let per_term = if groups { groups_of(call) } else { 1 };
                    assert_eq!(
                        text.matches("rlwe.respond").count(),
                        if layout == 2 { 2 * per_term } else { per_term },
                        "{what}\n{text}"
                    );
                }
            }
        }
    }
    eprintln!("{by_groups} of the forced plans run a product per group");
    assert!(by_groups >= 4, "{by_groups} plans run a product per group");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 8, ..Default::default() })]
    /// Without a dealer, random grouped `conv2d` and `conv1d` (depthwise
    /// among them) forced onto RLWE (`--prefer rlwe`), in the three operand
    /// layouts, over random groups, channels per group, output channels
    /// per group, strides, paddings and dilations: one RLWE product per
    /// cross term, no elementwise triple, and the reference within the
    /// compiler's bound and 0.05.
    #[test]
    fn random_grouped_convolutions_without_a_dealer_run_on_rlwe(
        layout in 0usize..3,
        groups in 2usize..4,
        depthwise in proptest::bool::ANY,
        cg in 1usize..3,
        per_group in 1usize..3,
        w in conv_case(),
        batch in 1usize..3,
        large in proptest::bool::ANY,
        seed in 0u64..1000,
    ) {
        use compiler::ir::Protocol;
        let cg = if depthwise { 1 } else { cg };
        let (c, cout) = (groups * cg, groups * per_group);
        let (f, xs, ks, args) = (w.op(), w.input_sizes(), w.kernel_sizes(), w.args());
        let call = format!("{f}(X, W, {args}, groups: {groups})");
        let source = grouped_conv_source(layout, c, &xs, cout, &format!("{cg}, {ks}"), &call);
        let o = options(|o| {
            o.use_dealer = false;
            o.prefer = Some(Protocol::Rlwe);
            // Planned for many images, one product per group may be cheaper.
            o.assume.insert("batch".into(), if large { 1000 } else { batch as u64 });
        });
        let (compiled, worst) = grouped_conv_run(&source, &o, batch, seed);
        let text = compiled.plan.to_text();
        let correlations = text.split("registers:").next().unwrap_or("");
        proptest::prop_assert!(!correlations.contains(": triple ["), "{}", correlations);
        let per_term = if compiled.report.contains("one product per group") { groups } else { 1 };
        proptest::prop_assert_eq!(
            text.matches("rlwe.respond").count(),
            if layout == 2 { 2 * per_term } else { per_term },
            "{}", text
        );
        proptest::prop_assert!(worst < 0.05, "{source}: off by {worst}");
    }
}

/// `conv2d(..., groups:) via rlwe` with a dealer runs the grouped
/// convolution by RLWE (its products and their sum), not by its
/// convolution triple, and matches the reference.
#[test]
fn a_grouped_convolution_via_rlwe_runs_on_rlwe_with_a_dealer() {
    let source = grouped_conv_source(
        1,
        4,
        "6, 6",
        8,
        "1, 3, 3",
        "conv2d(X, W, padding: 1, groups: 4) via rlwe",
    );
    let o = options(|o| {
        o.assume.insert("batch".into(), 2);
    });
    let (compiled, worst) = grouped_conv_run(&source, &o, 2, 77);
    assert!(worst < 0.05, "off by {worst}");
    let report = &compiled.report;
    assert!(
        report.contains("grouped convolution on secret values: RLWE"),
        "{report}"
    );
    assert!(report.contains("`via rlwe`"), "{report}");
    let text = compiled.plan.to_text();
    assert!(!text.contains("convolution triple"), "{text}");
    assert!(text.contains("rlwe.respond"), "{text}");
}

/// models/mobile_dw.veil without a dealer: both depthwise convolutions go
/// by RLWE (no elementwise triple for their products, which cost 0.50 s
/// and 30 MB of OT at batch 1 before), by the cost model's own choice and
/// forced, planned for one image and for 1000 (one product per group),
/// and a run matches the reference at every recipient.
#[test]
fn depthwise_separable_blocks_without_a_dealer_run_on_rlwe() {
    use compiler::ir::Protocol;
    // Planned for one image (HomConv, and one product by block-diagonal
    // kernels) and for 1000 (one product per group).
    for (prefer, planned) in [(None, 1), (None, 1000), (Some(Protocol::Rlwe), 1000)] {
        let o = options(|o| {
            o.use_dealer = false;
            o.prefer = prefer;
            o.assume.insert("batch".into(), planned);
        });
        let compiled = compiler::compile(&model(CONV_MODELS[0]), &o).unwrap();
        let report = &compiled.report;
        assert_eq!(
            report.matches("one product per group").count(),
            if planned == 1 { 0 } else { 2 },
            "{report}"
        );
        assert_eq!(
            report
                .matches("grouped convolution on secret values: RLWE")
                .count(),
            2,
            "{report}"
        );
        let text = compiled.plan.to_text();
        let correlations = text.split("registers:").next().unwrap_or("");
        assert!(!correlations.contains(": triple ["), "{correlations}");
        for batch in [1, 3] {
            check(CONV_MODELS[0], batch, &o, 60 + batch as u64);
        }
    }
}

/// A grouped convolution by RLWE adds no plan field: its block-diagonal
/// kernels, ungrouped patches and groups' operands are registers of existing local moves
/// (whose shapes `plan::validate` does not check; the executor does). A
/// plan file whose kernels' or patches' shape is tampered with is
/// refused, by `plan::validate` or by the run with an error, never a
/// panic or a wrong answer.
#[test]
fn a_tampered_grouped_convolution_on_rlwe_is_refused() {
    // Planned for one image: the kernels block-diagonal; for 1000: one
    // product per group.
    let compile = |batch: u64| {
        let o = options(|o| {
            o.use_dealer = false;
            o.assume.insert("batch".into(), batch);
        });
        compiler::compile(&model(CONV_MODELS[0]), &o).unwrap().plan
    };
    let (one, many) = (compile(1), compile(1000));
    let tamper = |plan: &Plan, note: &str, shape: Vec<u64>| {
        let inputs = inputs_with_fixed_seed_for_tests(plan, 1, 5);
        let mut bad = plan.clone();
        let reg = bad
            .regs
            .iter_mut()
            .find(|r| r.note == note)
            .unwrap_or_else(|| panic!("no register {note}"));
        reg.shape = plan::Shape(shape.into_iter().map(plan::Dim::Known).collect());
        let Ok(valid) = plan::validate(&bad) else {
            return;
        };
        let run = std::panic::catch_unwind(|| {
            exec::run_in_process(&valid, &per_party(&bad, &inputs), &test_options())
        });
        match run {
            Ok(Err(e)) => eprintln!("{note}: {e}"),
            Ok(Ok(_)) => panic!("{note} tampered: the run succeeded"),
            Err(_) => panic!("{note} tampered: the run panicked"),
        }
    };
    // The first depthwise convolution's kernels, [144, 16]: a column short,
    // a row short, a group short.
    tamper(&one, "block-diagonal kernels for %25", vec![144, 15]);
    tamper(&one, "block-diagonal kernels for %25", vec![143, 16]);
    tamper(&one, "block-diagonal kernels for %25", vec![135, 15]);
    // The second's ungrouped patches, [batch, 7, 7, 288], a channel short.
    tamper(&one, "ungrouped patches for %41", vec![1, 7, 7, 279]);
    // One product per group: a group's kernels [9, 1] and patches
    // [batch, 14, 14, 9] of another size.
    tamper(&many, "group 0's kernels for %25", vec![9, 2]);
    tamper(&many, "group 0's kernels for %25", vec![8, 1]);
    tamper(&many, "group 3's patches for %25", vec![1, 14, 14, 8]);
}

/// A plan whose masked product's preprocessing reads `W` from an input its
/// party does not own, or adds a share of `x` there, is refused by
/// `plan::validate` (a plan file is input like any other).
#[test]
fn a_masked_products_preprocessing_is_validated() {
    let o = options(|o| o.use_dealer = false);
    let plan = compiler::compile(&model("logreg_100"), &o).unwrap().plan;
    let (p, at) = plan
        .programs
        .iter()
        .enumerate()
        .find_map(|(p, prog)| {
            prog.instrs
                .iter()
                .position(|i| {
                    matches!(
                        i,
                        plan::Instr::RlweRespond {
                            weights: Some(_),
                            ..
                        }
                    )
                })
                .map(|at| (p, at))
        })
        .expect("a masked product");
    let foreign = plan
        .inputs
        .iter()
        .position(|i| i.owner != Owner::Party(p as u32) && i.owner != Owner::Public)
        .unwrap() as u32;
    let mut edits: Vec<(Plan, &str)> = Vec::new();
    let mut other = plan.clone();
    if let plan::Instr::RlweRespond { weights, .. } = &mut other.programs[p].instrs[at] {
        *weights = Some(foreign);
    }
    edits.push((other, "it does not own"));
    let mut added = plan.clone();
    if let plan::Instr::RlweRespond { add, w, .. } = &mut added.programs[p].instrs[at] {
        *add = Some(*w);
    }
    edits.push((added, "a masked RLWE product's preprocessing"));
    for (bad, expect) in edits {
        let errs = plan::validate(&bad).expect_err(expect);
        assert!(
            errs.iter().any(|e| e.to_string().contains(expect)),
            "{expect}: {errs:?}"
        );
    }
    assert!(plan::validate(&plan).is_ok());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 10, ..Default::default() })]
    /// With a dealer, a convolution (`conv2d` or `conv1d`, one group or
    /// several, depthwise among them) of one party's clear input by the
    /// other party's clear kernels, the networks' first layer, takes one
    /// input-holder convolution triple: the holder sends `x − a` (the
    /// input, not its patches) and the other `w − b`. No input-holder
    /// matrix triple, no other triple, and no im2col step, neither in the
    /// clear nor on shares; the result matches the reference within the
    /// compiler's bound and within 0.05. Where the patches are fewer than
    /// the input's entries (a stride beyond the kernel) the cost model
    /// keeps the product of the patches instead.
    #[test]
    fn a_first_layer_convolution_takes_an_input_holder_convolution_triple(
        groups in 1usize..4,
        depthwise in proptest::bool::ANY,
        cg in 1usize..3,
        per_group in 1usize..3,
        w in conv_case(),
        batch in 1usize..3,
        seed in 0u64..1000,
    ) {
        let cg = if depthwise { 1 } else { cg };
        let (c, cout) = (groups * cg, groups * per_group);
        let (f, xs, ks, args) = (w.op(), w.input_sizes(), w.kernel_sizes(), w.args());
        let source = format!(
            "model conv {{ party a; party b; dealer d;
               input x: fixed[batch, {c}, {xs}] private(a) in [-1, 1];
               input w: fixed[{cout}, {cg}, {ks}] private(b) in [-0.5, 0.5];
               let y = {f}(x, w, {args}, groups: {groups});
               output y to a; }}"
        );
        let (plan, worst) = conv_run_with_a_dealer(&source, batch, seed);
        let text = plan.to_text();
        let correlations = text.split("registers:").next().unwrap_or("");
        // The patches: one group's are every channel's; with groups each
        // output channel has its group's.
        let patches = if groups == 1 { w.patches() * c } else { w.patches() * cout * cg };
        if w.input() * c <= patches {
            proptest::prop_assert_eq!(
                correlations.matches("input-holder convolution triple").count(), 1, "{}", correlations
            );
            proptest::prop_assert_eq!(correlations.matches("triple").count(), 1, "{}", correlations);
            if groups > 1 {
                proptest::prop_assert!(correlations.contains(&format!("groups {groups}x{per_group}")), "{}", correlations);
            }
            // The triple reads the input: no patches are cut anywhere.
            proptest::prop_assert!(!text.contains(".im2col["), "{}", text);
            // The client's register that the holder's message masks is
            // the input's size, not the patches'.
            proptest::prop_assert!(
                correlations.contains(&format!("input-holder convolution triple [batch, {c}, {xs}]")),
                "{}", correlations
            );
        } else {
            proptest::prop_assert!(!correlations.contains("convolution triple"), "{}", correlations);
        }
        proptest::prop_assert!(worst < 0.05, "{source}: off by {worst}");
    }
}

/// The bundled networks whose first layer is a convolution of the
/// client's image by the server's kernels take an input-holder
/// convolution triple for it with a dealer (no input-holder matrix triple
/// of its patches is left), and without a dealer are unchanged in kind
/// (no convolution triple of either sort).
#[test]
fn the_networks_first_convolutions_take_input_holder_convolution_triples() {
    for name in ["net_b", "net_c", "net_d", "lenet5"] {
        for dealer in [true, false] {
            let o = options(|o| {
                o.use_dealer = dealer;
                o.assume.insert("batch".into(), 2);
            });
            let plan = compiler::compile(&model(name), &o).unwrap().plan;
            let text = plan.to_text();
            let correlations = text.split("registers:").next().unwrap_or("");
            let holder_convs = correlations
                .matches("input-holder convolution triple")
                .count();
            if dealer {
                assert_eq!(holder_convs, 1, "{name}: {correlations}");
                assert!(
                    !correlations.contains("input-holder matrix triple"),
                    "{name}: {correlations}"
                );
                assert!(!text.contains("clear.im2col["), "{name}: {text}");
            } else {
                assert_eq!(holder_convs, 0, "{name}: {correlations}");
                assert!(!correlations.contains("convolution triple"), "{name}");
            }
        }
    }
}

/// With a dealer, a convolution of one party's clear input by kernels
/// that are secret (here the sum of both parties' inputs), with one group
/// or two: the input is shared (never its patches) and one convolution
/// triple opens `x − a` and `w − b`; no matrix or elementwise triple, no
/// im2col step, the result within 0.05 of the reference, and the traffic
/// within 10% of the estimate. (Before, one group shared the patches: at
/// batch 3 below, 64,792 B against 23,489 B.)
#[test]
fn a_convolution_of_a_partys_input_by_secret_kernels_shares_the_input() {
    for groups in [1usize, 2] {
        let source = format!(
            "model ws {{ party a; party b; dealer d;
               input x: fixed[batch, 2, 6, 6] private(a) in [-1, 1];
               input wa: fixed[4, {}, 3, 3] private(a) in [-0.5, 0.5];
               input wb: fixed[4, {}, 3, 3] private(b) in [-0.5, 0.5];
               let y = conv2d(x, wa + wb, padding: 1, groups: {groups});
               output y to a; }}",
            2 / groups,
            2 / groups
        );
        let (plan, worst) = conv_run_with_a_dealer(&source, 3, 77 + groups as u64);
        let text = plan.to_text();
        let correlations = text.split("registers:").next().unwrap_or("");
        assert_eq!(correlations.matches("triple").count(), 1, "{correlations}");
        assert_eq!(
            correlations
                .matches("convolution triple [batch, 2, 6, 6]")
                .count(),
            1,
            "{correlations}"
        );
        assert!(!correlations.contains("input-holder"), "{correlations}");
        assert!(!text.contains(".im2col["), "{text}");
        assert!(worst < 0.05, "{source}: off by {worst}");
        let (est, bytes, _) = traffic_of(&checked(&source), true, 3, 5);
        assert_bytes_within(&est, bytes, 0.1, &format!("groups {groups}"));
    }
}

/// The report says why a first-layer convolution runs as it does: an
/// input-holder convolution triple (net B: 784 entries of the image per
/// row, not its 14,400 patches), or, where the patches are fewer than
/// the input's entries (a strided 1×1 convolution), an input-holder
/// product of the patches.
#[test]
fn the_report_explains_the_first_layer_convolutions_choice() {
    let o = options(|o| {
        o.use_dealer = true;
        o.assume.insert("batch".into(), 1);
    });
    let report = compiler::compile(&model("net_b"), &o).unwrap().report;
    assert!(
        report.contains("an input-holder convolution triple (client sends its input masked, 784 words, not its 14400 patches; server its kernels masked)"),
        "{report}"
    );
    let strided = checked(
        "model s11 { party a; party b; dealer d;
           input x: fixed[batch, 2, 6, 6] private(a) in [-1, 1];
           input w: fixed[3, 2, 1, 1] private(b) in [-0.5, 0.5];
           let y = conv2d(x, w, stride: 2);
           output y to a; }",
    );
    let compiled = compiler::compile(&strided, &o).unwrap();
    assert!(
        compiled.report.contains(
            "an input-holder product of its patches, fewer (18) than the input's entries (72)"
        ),
        "{}",
        compiled.report
    );
    assert!(compiled
        .plan
        .to_text()
        .contains("input-holder matrix triple"));
}
