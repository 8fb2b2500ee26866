//! `veil party`: run one party of a model over the network (TLS over TCP).

use crate::compile_cmd::{compile_file, TargetArgs};
use crate::run_cmd::{write_outputs, InputArgs, Inputs};
use clap::Args;
use net::{TcpConfig, TcpTransport, DEFAULT_MAX_FRAME};
use plan::{PartyIdx, Plan};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct PartyArgs {
    /// The model file (every party compiles it with the same flags), or --plan FILE.
    #[arg(value_name = "FILE", required_unless_present = "plan")]
    pub file: Option<PathBuf>,
    /// Run a plan written by `veil compile --emit json` instead of compiling
    /// a model file (its format version and consistency are checked). Every
    /// party may run the same plan file.
    #[arg(long, value_name = "FILE", conflicts_with = "file")]
    #[arg(conflicts_with_all = crate::plan_file::COMPILE_FLAGS)]
    pub plan: Option<PathBuf>,
    /// Which party of the model this process is.
    #[arg(long = "as", value_name = "NAME")]
    pub me: String,
    /// The deployment file: every party's address and certificate (see docs/deployment.md).
    #[arg(long, value_name = "parties.toml")]
    pub config: PathBuf,
    // This party's inputs: -i NAME=PATH (once per input), --id-column, --stdin-format.
    #[command(flatten)]
    pub data: InputArgs,
    /// Write this party's outputs to DIR/<party>.json and one CSV per output (all
    /// files or none); `-o -` prints them to standard output as JSON.
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Print this party's traffic, rounds and time per phase.
    #[arg(long)]
    pub stats: bool,
    /// Session id: every party of one run must give the same one.
    #[arg(long, value_name = "ID", default_value = "default")]
    pub session: String,
    /// Seconds to wait for all peers to connect.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub connect_timeout: u64,
    /// Seconds to wait for any one message from a peer.
    #[arg(long, value_name = "SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,
    /// Largest frame accepted from a peer, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = (DEFAULT_MAX_FRAME >> 20) as u64, value_parser = clap::value_parser!(u64).range(1..=4095))]
    pub max_frame_mib: u64,
    // --max-memory: checked once the parties have agreed on the sizes (such
    // as `batch`); a party over it stops before the run starts.
    /// Run in chunks of N rows (every party that gives it must give the same
    /// N). By default the party that reads an input in rows picks the chunk
    /// as `veil run` does, and tells the others at session setup.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=crate::limits::MAX_BATCH))]
    pub chunk_rows: Option<u64>,
    /// No progress bar and no summary line on standard error.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[command(flatten)]
    pub memory: crate::limits::MemoryArgs,
    #[command(flatten)]
    pub target: TargetArgs,
}

fn fail(msg: &str) -> ExitCode {
    for line in msg.lines() {
        eprintln!("error: {line}");
    }
    eprintln!("note: the party was stopped; no output was written");
    ExitCode::FAILURE
}

pub fn run(args: &PartyArgs) -> ExitCode {
    let plan = match (&args.plan, &args.file) {
        (Some(path), _) => match crate::plan_file::load(path) {
            Ok(plan) => plan,
            Err(e) => return fail(&e),
        },
        (None, Some(file)) => match compile_file(file, &args.target) {
            Some(compiled) => compiled.plan,
            None => return ExitCode::FAILURE,
        },
        (None, None) => return fail("give a model FILE or --plan FILE"),
    };
    let plan = &plan;
    let Some(me) = plan.parties.iter().position(|p| p.name == args.me) else {
        let names: Vec<&str> = plan.parties.iter().map(|p| p.name.as_str()).collect();
        return fail(&format!(
            "--as {}: the model has no such party (its parties: {})",
            args.me,
            names.join(", ")
        ));
    };
    let me = me as PartyIdx;
    if !plan.takes_part(me) {
        let active: Vec<&str> = (0..plan.parties.len() as PartyIdx)
            .filter(|&p| plan.takes_part(p))
            .map(|p| plan.party_name(p))
            .collect();
        let why = match plan.randomness {
            plan::RandomnessSource::TwoParty => " (it was compiled without a dealer)",
            plan::RandomnessSource::Dealer(_) => "",
        };
        return fail(&format!(
            "--as {}: {} takes no part in this plan{why}; start only {}",
            args.me,
            args.me,
            active.join(" and ")
        ));
    }
    let tcp = match load_config(&args.config, plan, me, args) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    match (crate::stream::row_dim(plan), args.chunk_rows) {
        (Ok(Some(dim)), _) => return run_in_chunks(args, plan, me, &tcp, &dim),
        (Ok(None), Some(_)) => {
            return fail(&format!(
                "--chunk-rows: {} has no symbolic dimension (such as `batch`) to cut into chunks",
                plan.model
            ))
        }
        (Err(why), Some(_)) => {
            return fail(&format!(
                "--chunk-rows: {} cannot run in chunks of rows: {why}; run it without --chunk-rows",
                plan.model
            ))
        }
        _ => {}
    }
    let Inputs {
        values: inputs,
        ids,
        ..
    } = match load_own_inputs(plan, me, &args.data) {
        Ok(i) => i,
        Err(e) => return fail(&e),
    };
    eprintln!(
        "{}: joining {} (session `{}`, plan {}) ...",
        args.me,
        plan.model,
        args.session,
        &net::hex(&tcp.plan.digest())[..16]
    );
    let started = Instant::now();
    let outcome = TcpTransport::connect(&tcp)
        .map_err(runtime::exec::ExecError::from)
        .and_then(|mut t| {
            eprintln!(
                "{}: connected to every peer in {:.3} s",
                args.me,
                started.elapsed().as_secs_f64()
            );
            crate::progress::with_progress(Some(me), |progress| {
                let mut opts = runtime::exec::Options::default();
                opts.timeout = Duration::from_secs(args.timeout);
                opts.progress = progress;
                opts.max_memory = Some(args.memory.limit().0);
                let inputs = plan::views(&inputs);
                runtime::exec::run_party(&crate::run_cmd::valid(plan)?, me, &inputs, &mut t, &opts)
            })
        });
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return fail(&format!("{}: {e}", args.me)),
    };
    eprintln!(
        "{}: done in {:.3} s",
        args.me,
        started.elapsed().as_secs_f64()
    );
    if args.stats {
        let s = &outcome.stats;
        eprintln!(
            "{}: sent {} B, received {} B, {} rounds; setup {:.3}s, preprocessing {:.3}s, online {:.3}s",
            args.me,
            s.bytes_sent,
            s.bytes_received,
            s.rounds,
            s.setup.as_secs_f64(),
            s.preprocessing.as_secs_f64(),
            s.online.as_secs_f64()
        );
    }
    if let Some(dir) = &args.output {
        let all = crate::run_cmd::only_party(plan, me, outcome);
        if let Err(e) = write_outputs(dir, plan, &all, ids.as_ref()) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    } else {
        for (name, t) in &outcome.outputs {
            let values: Vec<String> = t.data.iter().map(|v| format!("{v}")).collect();
            println!(
                "{} learns {name} {:?}: [{}]",
                args.me,
                t.shape,
                values.join(", ")
            );
        }
    }
    ExitCode::SUCCESS
}

/// `veil party` of a plan whose rows are independent: the session runs
/// the plan once per chunk of rows over the same connections. The parties
/// agree on the chunk size at setup, and before each chunk on its rows
/// (the parties that read inputs in rows say; the others follow), so a
/// party whose file is longer or shorter, or that fails on a bad row, stops
/// every party; outputs are staged and renamed into place at the end.
fn run_in_chunks(
    args: &PartyArgs,
    plan: &Plan,
    me: PartyIdx,
    tcp: &TcpConfig,
    dim: &str,
) -> ExitCode {
    use crate::stream;
    let is_rows = |spec: &plan::InputSpec| matches!(spec.shape.0.first(), Some(plan::Dim::Symbol(s)) if s == dim);
    let reads_rows = plan
        .inputs
        .iter()
        .any(|i| is_rows(i) && i.owner == plan::Owner::Party(me));
    let (limit, _) = args.memory.limit();
    let budget = match args.memory.max_memory {
        Some(_) => limit,
        None => limit.min(stream::DEFAULT_BUDGET),
    };
    let asked = args.chunk_rows.map(|n| n as usize);
    let rows = if reads_rows || asked.is_some() {
        let bytes_at = |n: usize| {
            runtime::exec::memory::estimate(plan, &plan.dims_at(n), None)
                .ok()
                .and_then(|e| e.parties.get(me as usize).map(|m| m.total()))
        };
        stream::chunk_rows(asked, budget, &bytes_at).unwrap_or(1)
    } else {
        0
    };
    let loaded = if plan.parties[me as usize].role == plan::Role::Dealer {
        load_own_inputs(plan, me, &args.data)
    } else {
        crate::run_cmd::load_inputs_in_chunks(plan, Some(me), &args.data, Some((dim, rows.max(1))))
    };
    let Inputs {
        values,
        ids,
        mut streams,
    } = match loaded {
        Ok(i) => i,
        Err(e) => return fail(&e),
    };
    let fixed: std::collections::BTreeMap<String, plan::Tensor> = values
        .iter()
        .filter(|(n, _)| !plan.inputs.iter().any(|i| &i.name == *n && is_rows(i)))
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect();
    let rows_in = |inputs: &std::collections::BTreeMap<String, plan::Tensor>| {
        plan.inputs
            .iter()
            .filter(|i| is_rows(i))
            .find_map(|i| inputs.get(&i.name))
            .and_then(|t| t.shape.first().copied())
            .unwrap_or(0)
    };
    let mut staged = match &args.output {
        Some(dir) if !crate::data::is_stdin(dir) => {
            match stream::StagedOutputs::create(dir, plan, Some(me)) {
                Ok(s) => Some(s),
                Err(e) => return fail(&e),
            }
        }
        _ => None,
    };
    eprintln!(
        "{}: joining {} (session `{}`, plan {}) ...",
        args.me,
        plan.model,
        args.session,
        &net::hex(&tcp.plan.digest())[..16]
    );
    let started = Instant::now();
    let mut t = match TcpTransport::connect(tcp) {
        Ok(t) => t,
        Err(e) => {
            return fail(&format!(
                "{}: {}",
                args.me,
                runtime::exec::ExecError::from(e)
            ))
        }
    };
    eprintln!(
        "{}: connected to every peer in {:.3} s",
        args.me,
        started.elapsed().as_secs_f64()
    );
    let valid = match crate::run_cmd::valid(plan) {
        Ok(v) => v,
        Err(e) => return fail(&e.to_string()),
    };
    let mut opts = runtime::exec::Options::default();
    opts.timeout = Duration::from_secs(args.timeout);
    opts.max_memory = Some(limit);
    // Without a dealer the chunks' sessions continue one OT extension.
    opts.ot_link = Some(std::sync::Arc::new(runtime::exec::OtLink::new()));
    opts.rlwe_weights = Some(std::sync::Arc::new(runtime::exec::WeightCache::new(
        runtime::exec::WeightCache::DEFAULT_BYTES,
    )));
    let progress = crate::progress::Rows::new(args.quiet);
    let mut collected = stream::Collected::default();
    let mut stats = runtime::exec::Stats::default();
    let mut last = None;
    let (mut done, mut chunks) = (0u64, 0u64);
    let agreed = match stream::agree_chunking(plan, me, rows as u64, &mut t) {
        Ok(n) => n,
        Err(e) => return fail(&format!("{}: {e}", args.me)),
    };
    let mut next = Some((values, ids.as_ref().map(|r| r.values.clone())));
    loop {
        let mine = reads_rows.then(|| next.as_ref().map_or(0, |(i, _)| rows_in(i) as u64));
        let n = match stream::next_rows(plan, me, mine, done, &mut t) {
            Ok(n) => n,
            Err(e) => {
                progress.finish();
                let at = match chunks {
                    0 => String::new(),
                    _ => format!(" (after the chunk of rows up to {done})"),
                };
                return fail(&format!("{}: {e}{at}", args.me));
            }
        };
        if n == 0 {
            break;
        }
        let (inputs, chunk_ids) = match (reads_rows, next.take()) {
            (true, Some(c)) => c,
            _ => (fixed.clone(), None),
        };
        let outcome =
            match runtime::exec::run_party(&valid, me, &plan::views(&inputs), &mut t, &opts) {
                Ok(o) => o,
                Err(e) => {
                    progress.finish();
                    return fail(&format!(
                        "{}: {e} (in the chunk of rows {}..{})",
                        args.me,
                        done + 1,
                        done + n
                    ));
                }
            };
        stream::add_stats(&mut stats, &outcome.stats);
        let all = crate::run_cmd::only_party(plan, me, outcome);
        let written = stream::append_chunk(
            staged.as_mut(),
            &mut collected,
            &all,
            ids.as_ref().map(|r| r.column.as_str()),
            chunk_ids,
        );
        if let Err(e) = written {
            progress.finish();
            return fail(&e);
        }
        last = Some(all);
        done += n;
        chunks += 1;
        if reads_rows {
            next = match crate::run_cmd::next_chunk(
                plan,
                Some(me),
                &mut streams,
                &fixed,
                agreed as usize,
                done as usize,
                ids.is_some(),
            ) {
                Ok(c) => c,
                Err(e) => {
                    progress.finish();
                    return fail(&format!("{}: {e}", args.me));
                }
            };
        }
        progress.update(done, streams.iter().find_map(|s| s.source.fraction()));
    }
    progress.finish();
    let secs = started.elapsed().as_secs_f64();
    eprintln!("{}: done in {secs:.3} s", args.me);
    if !args.quiet {
        eprintln!(
            "{}: {done} rows in {chunks} chunk{} of up to {agreed} rows: {:.0} rows/s",
            args.me,
            if chunks == 1 { "" } else { "s" },
            done as f64 / secs.max(1e-9)
        );
    }
    if args.stats {
        eprintln!(
            "{}: sent {} B, received {} B, {} rounds; setup {:.3}s, preprocessing {:.3}s, online {:.3}s",
            args.me,
            stats.bytes_sent,
            stats.bytes_received,
            stats.rounds,
            stats.setup.as_secs_f64(),
            stats.preprocessing.as_secs_f64(),
            stats.online.as_secs_f64()
        );
    }
    let last = last.unwrap_or_default();
    let all_ids = std::mem::take(&mut collected.ids);
    let written = match (staged, &args.output) {
        (Some(s), _) => s.commit(),
        (None, output) => {
            let outcomes = collected.into_outcomes(&last, vec![Default::default(); last.len()]);
            match output {
                Some(dir) => {
                    let ids = ids.map(|r| crate::run_cmd::RowIds {
                        values: all_ids,
                        ..r
                    });
                    write_outputs(dir, plan, &outcomes, ids.as_ref())
                }
                None => {
                    for (name, t) in outcomes.get(me as usize).map_or(&[][..], |o| &o.outputs) {
                        let values: Vec<String> = t.data.iter().map(|v| format!("{v}")).collect();
                        println!(
                            "{} learns {name} {:?}: [{}]",
                            args.me,
                            t.shape,
                            values.join(", ")
                        );
                    }
                    Ok(())
                }
            }
        }
    };
    if let Err(e) = written {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn load_config(
    path: &Path,
    plan: &Plan,
    me: PartyIdx,
    args: &PartyArgs,
) -> Result<TcpConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let read = |p: &Path| std::fs::read(p);
    let d = net::deployment::load(&text, path, plan, &args.me, &read)?;
    Ok(TcpConfig {
        me,
        parties: d.parties,
        key: d.key,
        listen: d.listen,
        plan: plan.fingerprint(),
        session: args.session.clone(),
        connect_timeout: Duration::from_secs(args.connect_timeout),
        io_timeout: Duration::from_secs(args.timeout),
        max_frame: (args.max_frame_mib as usize) << 20,
        // A stranger's connection, dropped while this party keeps waiting
        // for its peers: worth a line, not an error.
        log: Some(std::sync::Arc::new(|m: &str| eprintln!("warning: {m}"))),
    })
}

/// This party's inputs (its private ones and the public ones), checked
/// against the plan; another party's input is refused.
fn load_own_inputs(plan: &Plan, me: PartyIdx, args: &InputArgs) -> Result<Inputs, String> {
    if plan.parties[me as usize].role == plan::Role::Dealer {
        if !args.inputs.is_empty() {
            return Err(format!(
                "{} is the dealer: it takes no inputs",
                plan.party_name(me)
            ));
        }
        return Ok(Inputs::default());
    }
    crate::run_cmd::load_inputs(plan, Some(me), args)
}
