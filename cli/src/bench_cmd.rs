//! `veil bench`: run a model at several batch sizes in each deployment mode
//! and report time, throughput, traffic, rounds and accuracy.

use crate::compile_cmd::{compile_file_with, TargetArgs};
use crate::run_cmd::{demo_inputs, per_party};
use clap::{Args, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// (a) two computing parties and the model's dealer; the cost model chooses.
    Dealer,
    /// (b) two parties alone: they generate the correlated randomness
    /// themselves (by OT or Paillier, as the cost model or --correlations chooses).
    TwoParty,
    /// (c) hybrid: Paillier for the linear layers, shares (with the dealer) for the rest.
    Hybrid,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Dealer => "dealer",
            Mode::TwoParty => "two-party",
            Mode::Hybrid => "hybrid",
        }
    }
}

/// How the parties of a measurement talk to each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Via {
    /// In-process channels (frames are still encoded and counted).
    Memory,
    /// Loopback TCP with mutual TLS, as `veil party` deployments use.
    Tcp,
}

/// How two parties without a dealer set up their oblivious-transfer
/// extension in each measured run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Link {
    /// Base OTs in every run, as `veil run` and a connection's first
    /// request do.
    Fresh,
    /// The extension kept between runs, as a service keeps it between the
    /// requests of one connection: base OTs once, in the warm-up run.
    Kept,
    /// As `kept`, and each run's preprocessing done before its data comes
    /// (`runtime::exec::ahead`): `seconds` is the time from the data to the
    /// outputs, a request's latency when its session was prepared while
    /// the connection was idle.
    Ahead,
}

impl Link {
    fn name(self) -> &'static str {
        match self {
            Link::Fresh => "fresh",
            Link::Kept => "kept",
            Link::Ahead => "ahead",
        }
    }
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Memory => "memory",
            Via::Tcp => "tcp",
        }
    }
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The model file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Batch sizes (the size of every symbolic dimension). A batch whose
    /// estimated memory exceeds --max-memory is refused before anything runs.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000,10000", value_parser = clap::value_parser!(u64).range(1..=crate::limits::MAX_BATCH))]
    pub batches: Vec<u64>,
    /// Deployment modes to measure.
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        default_value = "dealer,two-party,hybrid"
    )]
    pub modes: Vec<Mode>,
    /// Transports to measure: in-process channels, loopback TCP with mutual
    /// TLS (ephemeral certificates), or both. Connection setup is reported
    /// separately and not in `seconds`.
    #[arg(long, value_delimiter = ',', value_enum, default_value = "memory")]
    pub transport: Vec<Via>,
    /// Without a dealer, by OT: whether every run sets up the parties'
    /// oblivious-transfer extension afresh (base OTs, about 8 ms of
    /// public-key work) and RLWE keys, or keeps them from the run before,
    /// as `veil serve` and `veil predict` keep them between the requests
    /// of one connection (with the model owner's weights made ready for
    /// RLWE once per process). `kept` pays for the setup in the warm-up
    /// run (with `--warmup 0`, in the first measured run), and keeps the
    /// model's parameters (inputs of no symbolic size) from run to run, as
    /// a service's are; the data is new each run. `ahead` is `kept` with
    /// each run's preprocessing done before its data comes (as `veil
    /// predict --ahead` does between requests): `seconds` is then the time
    /// from the data to the outputs (in memory only). Plans without OT
    /// preprocessing measure `fresh` only.
    #[arg(long, value_delimiter = ',', value_enum, default_value = "fresh")]
    pub link: Vec<Link>,
    /// Runs per measurement; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,
    /// Unmeasured runs before each measurement (the first run of a size
    /// pays for faulting in its buffers); their results are still checked.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub warmup: u32,
    /// Also append one JSON object per measurement to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub memory: crate::limits::MemoryArgs,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// Whether an input is one of the model's parameters: of a size that no
/// symbolic dimension (such as `batch`) sets.
/// The options a measurement of `mode` compiles with.
fn mode_options(args: &BenchArgs, mode: Mode) -> compiler::Options {
    let mut options = args.target.options();
    match mode {
        Mode::Dealer => {}
        Mode::TwoParty => options.use_dealer = false,
        Mode::Hybrid => options.prefer = Some(compiler::ir::Protocol::Paillier),
    }
    options
}

/// Refuses, before anything is measured, a mode and batch whose run (every
/// party in this process, and the reference) would exceed the memory
/// limit. Compiles quietly: the measurements print the diagnostics.
fn check_memory(args: &BenchArgs) -> Result<(), String> {
    let source = crate::read_source(&args.file)?;
    let read = |f: &str| crate::data::read_ranges(&args.file, f);
    let Some(model) = compiler::check_source_with(&source, &read).model else {
        return Ok(());
    };
    for &mode in &args.modes {
        let mut options = mode_options(args, mode);
        for &batch in &args.batches {
            options.assume = [("batch".to_string(), batch)].into_iter().collect();
            let Ok(compiled) = compiler::compile(&model, &options) else {
                continue;
            };
            let plan = &compiled.plan;
            let batch = usize::try_from(batch).unwrap_or(usize::MAX);
            let dims = plan.dims_at(batch);
            let sizes = crate::limits::Sizes::Batch { flag: "--batches" };
            crate::limits::check_in_process(plan, &dims, Some(&model), &args.memory, sizes)
                .map_err(|e| format!("mode `{}`: {e}", mode.name()))?;
        }
    }
    Ok(())
}

pub fn run(args: &BenchArgs) -> ExitCode {
    // A progress line rewritten in place, on a terminal only: in a log it
    // would be one long line of carriage returns.
    let progress = std::io::stderr().is_terminal();
    // Each measurement plans for its own batch: an --assume would be
    // silently overridden.
    if let Some((name, size)) = args.target.assume.first() {
        eprintln!(
            "error: --assume {name}={size} has no effect on `veil bench`: every symbolic \
             dimension takes each --batches size in turn, and each measurement is planned \
             for it; give the sizes with --batches {size}"
        );
        return ExitCode::from(2);
    }
    if let Err(e) = check_memory(args) {
        eprintln!("error: {e}");
        eprintln!("note: nothing was measured");
        return ExitCode::FAILURE;
    }
    let mut rows = Vec::new();
    println!(
        "{:<10} {:<7} {:>7} {:>10} {:>12} {:>14} {:>7} {:>10} {:>6}",
        "mode", "via", "batch", "seconds", "preds/s", "bytes/pred", "rounds", "max err", "link"
    );
    let tls = if args.transport.contains(&Via::Tcp) {
        match LoopbackTls::new() {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    for &mode in &args.modes {
        let mut options = mode_options(args, mode);
        for &batch in &args.batches {
            options.assume = [("batch".to_string(), batch)].into_iter().collect();
            let batch = batch as usize;
            let Some((model, compiled)) = compile_file_with(&args.file, &options) else {
                return ExitCode::FAILURE;
            };
            let plan = &compiled.plan;
            let valid = match crate::run_cmd::valid(plan) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if mode == Mode::Dealer
                && plan.randomness == plan::RandomnessSource::TwoParty
                && !plan.correlations.is_empty()
            {
                eprintln!(
                    "note: {} declares no dealer; mode `dealer` runs without one",
                    plan.model
                );
            }
            // A kept extension matters only to OT preprocessing.
            let links: Vec<Option<Link>> =
                if plan.correlation_engine() == Some(plan::CorrelationEngine::Ot) {
                    args.link.iter().copied().map(Some).collect()
                } else {
                    vec![None]
                };
            for (&via, link) in args
                .transport
                .iter()
                .flat_map(|v| links.iter().map(move |l| (v, *l)))
            {
                if via == Via::Tcp && link == Some(Link::Ahead) {
                    eprintln!("note: `--link ahead` is measured in memory only; skipping tcp");
                    continue;
                }
                // One link for the measurement's runs when it is kept.
                let mut opts = runtime::exec::Options::default();
                let keeps = matches!(link, Some(Link::Kept | Link::Ahead));
                if link == Some(Link::Ahead) {
                    if let Err(e) = runtime::exec::ahead::check(plan) {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                }
                if keeps {
                    opts.ot_link = Some(std::sync::Arc::new(runtime::exec::OtLink::new()));
                    opts.rlwe_weights = Some(std::sync::Arc::new(runtime::exec::WeightCache::new(
                        runtime::exec::WeightCache::DEFAULT_BYTES,
                    )));
                }
                let link_name = link.map_or("-", Link::name);
                let mut params: Option<Vec<(String, plan::Tensor)>> = None;
                let mut times = Vec::new();
                let mut setups = Vec::new();
                let mut phases = Vec::new();
                let mut online_sent = std::collections::BTreeMap::new();
                let mut bytes = 0u64;
                let mut rounds = 0u32;
                let mut max_err: f64 = 0.0;
                for r in 0..args.warmup + args.repeat {
                    let measured = r >= args.warmup;
                    if progress {
                        let what = if measured {
                            format!("run {}/{}", r - args.warmup + 1, args.repeat)
                        } else {
                            "warm-up".to_string()
                        };
                        eprint!(
                            "\r{} over {} ({link_name} link) batch {batch}: {what} ...   ",
                            mode.name(),
                            via.name(),
                        );
                    }
                    let mut inputs = match demo_inputs(plan, batch) {
                        Ok(i) => i,
                        Err(e) => {
                            eprintln!("{}error: {e}", if progress { "\n" } else { "" });
                            return ExitCode::FAILURE;
                        }
                    };
                    // As a service: the model's parameters (inputs of no
                    // symbolic size) stay from run to run, the data is new.
                    if keeps {
                        match &params {
                            None => {
                                params = Some(
                                    (plan.inputs.iter())
                                        .filter(|i| i.is_parameter())
                                        .filter_map(|i| {
                                            Some((i.name.clone(), inputs.get(&i.name)?.clone()))
                                        })
                                        .collect::<Vec<_>>(),
                                )
                            }
                            Some(p) => inputs.extend(p.iter().cloned()),
                        }
                    }
                    let reference = match compiler::reference::expected(&model, &inputs) {
                        Ok(r) => r,
                        Err(e) => {
                            eprintln!("{}error: {e}", if progress { "\n" } else { "" });
                            return ExitCode::FAILURE;
                        }
                    };
                    let per = per_party(plan, &inputs);
                    let (outcomes, seconds, setup) = match via {
                        Via::Memory if link == Some(Link::Ahead) => {
                            let (early, late) = runtime::exec::ahead::split_data(plan, &per);
                            let dims = plan::infer_dims(plan, None, &plan::views(&inputs))
                                .unwrap_or_default();
                            match runtime::exec::ahead::run_in_process_ahead(
                                &valid, &early, late, &dims, &opts,
                            ) {
                                Ok((o, after)) => (Ok(o), after.as_secs_f64(), 0.0),
                                Err(e) => (Err(e), 0.0, 0.0),
                            }
                        }
                        Via::Memory => {
                            let start = Instant::now();
                            let o = runtime::exec::run_in_process(&valid, &per, &opts);
                            (o, start.elapsed().as_secs_f64(), 0.0)
                        }
                        Via::Tcp => {
                            let tls = tls.as_ref().expect("made when tcp is asked for");
                            let start = Instant::now();
                            match tls.connect(plan) {
                                Ok(ts) => {
                                    let setup = start.elapsed().as_secs_f64();
                                    let start = Instant::now();
                                    let o =
                                        runtime::exec::run_with_transports(&valid, &per, ts, &opts);
                                    (o, start.elapsed().as_secs_f64(), setup)
                                }
                                Err(e) => (Err(e), 0.0, 0.0),
                            }
                        }
                    };
                    let outcomes = match outcomes {
                        Ok(o) => o,
                        Err(e) => {
                            eprintln!("{}error: {e}", if progress { "\n" } else { "" });
                            return ExitCode::FAILURE;
                        }
                    };
                    if measured {
                        times.push(seconds);
                        setups.push(setup);
                    }
                    bytes = outcomes.iter().map(|o| o.stats.bytes_sent).sum();
                    if measured {
                        // Each party's phase times and bytes sent online.
                        phases.push(
                            plan.parties
                                .iter()
                                .zip(&outcomes)
                                .map(|(p, o)| {
                                    let s = &o.stats;
                                    let times =
                                        (s.preprocessing.as_secs_f64(), s.online.as_secs_f64());
                                    (p.name.clone(), times)
                                })
                                .collect::<std::collections::BTreeMap<_, _>>(),
                        );
                        online_sent = plan
                            .parties
                            .iter()
                            .zip(&outcomes)
                            .map(|(p, o)| (p.name.clone(), o.stats.online_bytes_sent))
                            .collect();
                    }
                    rounds = outcomes.iter().map(|o| o.stats.rounds).max().unwrap_or(0);
                    for o in &outcomes {
                        for (name, t) in &o.outputs {
                            let want = reference
                                .iter()
                                .find(|r| &r.name == name)
                                .expect("same outputs");
                            let spec = plan
                                .outputs
                                .iter()
                                .find(|s| &s.name == name)
                                .expect("same outputs");
                            // An argmax's near-tie index counts as exact.
                            let errors = compiler::reference::deviations(spec, t, want)
                                .unwrap_or_else(|| vec![f64::NAN]);
                            for e in errors {
                                max_err = max_err.max(e);
                            }
                        }
                    }
                }
                if progress {
                    eprint!("\r{:60}\r", "");
                }
                times.sort_by(f64::total_cmp);
                setups.sort_by(f64::total_cmp);
                let seconds = times[times.len() / 2];
                // Per party, the median of each phase over the runs.
                let median = |f: fn(&(f64, f64)) -> f64| {
                    let mut by = std::collections::BTreeMap::new();
                    for run in &phases {
                        for (name, t) in run {
                            by.entry(name.clone()).or_insert_with(Vec::new).push(f(t));
                        }
                    }
                    by.into_iter()
                        .map(|(name, mut v)| {
                            v.sort_by(f64::total_cmp);
                            (name, v[v.len() / 2])
                        })
                        .collect::<std::collections::BTreeMap<String, f64>>()
                };
                let pre_seconds = median(|t| t.0);
                let online_seconds = median(|t| t.1);
                let row = serde_json::json!({
                    "peer": "veil",
                    "mode": mode.name(),
                    "transport": via.name(),
                    "ot_link": link_name,
                    "connect_seconds": setups[setups.len() / 2],
                    "batch": batch,
                    "seconds": seconds,
                    "preds_per_s": batch as f64 / seconds,
                    "bytes_per_pred": bytes as f64 / batch as f64,
                    "rounds": rounds,
                    "max_err": max_err,
                    "estimate_bytes": plan.estimate.bytes,
                    "estimate_rounds": plan.estimate.rounds,
                    // Each party's phases (`--stats`'s, medians over the
                    // runs) and bytes sent online (in the last run).
                    "preprocessing_seconds": pre_seconds,
                    "online_seconds": online_seconds,
                    "online_bytes_sent": online_sent,
                });
                println!(
                    "{:<10} {:<7} {:>7} {:>10.4} {:>12.1} {:>14.1} {:>7} {:>10.2e} {:>6}",
                    mode.name(),
                    via.name(),
                    batch,
                    seconds,
                    batch as f64 / seconds,
                    bytes as f64 / batch as f64,
                    rounds,
                    max_err,
                    link_name
                );
                rows.push(row);
            }
        }
    }
    if let Some(path) = &args.json {
        use std::io::Write as _;
        let text: String = rows.iter().map(|r| r.to_string() + "\n").collect();
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        if let Err(e) = written {
            eprintln!("error: cannot write `{}`: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Ephemeral identities for loopback TCP runs: one self-signed certificate
/// per party slot, made once per `veil bench` and never written to disk.
struct LoopbackTls {
    /// (certificate PEM, key PEM) for up to three parties.
    ids: Vec<(Vec<u8>, Vec<u8>)>,
}

impl LoopbackTls {
    fn new() -> Result<Self, String> {
        let ids = (0..3)
            .map(|i| {
                let ck = rcgen::generate_simple_self_signed(vec![format!("veil-bench-{i}")])
                    .map_err(|e| format!("cannot generate a certificate: {e}"))?;
                Ok((
                    ck.cert.pem().into_bytes(),
                    ck.signing_key.serialize_pem().into_bytes(),
                ))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { ids })
    }

    /// Every party's connected transport (fresh ports, one session per call).
    fn connect(
        &self,
        plan: &plan::Plan,
    ) -> Result<Vec<net::TcpTransport>, runtime::exec::ExecError> {
        use net::{free_loopback_addresses, PeerSpec, TcpConfig, TcpTransport, DEFAULT_MAX_FRAME};
        let n = plan.parties.len();
        if n > self.ids.len() {
            return Err(runtime::exec::ExecError::protocol(
                "loopback benchmarks support at most three parties",
            ));
        }
        let addresses = free_loopback_addresses(n)
            .map_err(|e| runtime::exec::ExecError::protocol(format!("no free port: {e}")))?;
        let parties: Vec<Option<PeerSpec>> = addresses
            .into_iter()
            .enumerate()
            .map(|(i, address)| {
                Some(PeerSpec {
                    name: plan.party_name(i as u32).to_string(),
                    address,
                    cert: self.ids[i].0.clone(),
                })
            })
            .collect();
        let fingerprint = plan.fingerprint();
        let session = format!("bench-{}", std::process::id());
        let configs: Vec<TcpConfig> = (0..n)
            .map(|i| TcpConfig {
                me: i as u32,
                parties: parties.clone(),
                key: self.ids[i].1.clone(),
                listen: None,
                plan: fingerprint.clone(),
                session: session.clone(),
                connect_timeout: Duration::from_secs(20),
                io_timeout: Duration::from_secs(600),
                max_frame: DEFAULT_MAX_FRAME,
                log: None,
            })
            .collect();
        std::thread::scope(|s| {
            let hs: Vec<_> = configs
                .iter()
                .map(|c| s.spawn(move || TcpTransport::connect(c).map_err(Into::into)))
                .collect();
            hs.into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(runtime::exec::ExecError::protocol(
                            "a connecting thread panicked",
                        ))
                    })
                })
                .collect()
        })
    }
}
