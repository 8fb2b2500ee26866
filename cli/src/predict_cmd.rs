//! `veil predict`: the data owner's side of sessions with a `veil serve`
//! service. One connection to the model owner carries every query of the
//! run (`--per-row`, `--repeat`); each query is its own session, with its
//! own id and fresh correlations, and its own connection to the dealer.
//! The outputs of every query are written at the end, all files or none.

use crate::compile_cmd::TargetArgs;
use crate::run_cmd::{write_outputs, InputArgs, Inputs, RowIds};
use crate::serve_cmd::{deployment, load_plan, parse_secs};
use clap::Args;
use net::service::{Conn, Dialer, ServiceHello, ServiceReply};
use net::{NetError, TcpTransport, DEFAULT_MAX_FRAME};
use plan::{PartyIdx, Tensor};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// The model file (compiled with the same flags as the service's), or --plan FILE.
    #[arg(value_name = "FILE", required_unless_present = "plan")]
    pub file: Option<PathBuf>,
    #[arg(long, value_name = "FILE", conflicts_with = "file")]
    #[arg(conflicts_with_all = crate::plan_file::COMPILE_FLAGS)]
    pub plan: Option<PathBuf>,
    /// The service's deployment file: the model owner's and the dealer's
    /// addresses and certificates (no keys needed).
    #[arg(long, value_name = "parties.toml")]
    pub config: PathBuf,
    /// The model owner's address, if not the one in the deployment file
    /// (such as a load balancer's).
    #[arg(long, value_name = "ADDR")]
    pub server: Option<String>,
    /// This client's certificate, signed by the service's client CA.
    #[arg(long, value_name = "FILE")]
    pub cert: PathBuf,
    /// This client's private key.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    // The client's inputs.
    #[command(flatten)]
    pub data: InputArgs,
    /// Write the outputs to DIR/<party>.json and one CSV per output (all
    /// files or none); `-o -` prints them as JSON.
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// One query (session) per row of the inputs, all over one connection;
    /// the outputs are the rows' in order (as `--chunk-rows 1`).
    #[arg(long, conflicts_with = "chunk_rows")]
    pub per_row: bool,
    /// One query (session) per N rows, all over one connection: the inputs
    /// are read a chunk at a time (CSV line by line, .npy by rows) and the
    /// outputs staged and written at the end, all files or none, so a file
    /// of any size is scored in bounded memory. N must not exceed the
    /// service's maximum batch.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_rows: Option<u64>,
    /// Run the same query N times over one connection (the last one's
    /// outputs are written): for measuring. With --per-row each row is
    /// queried once.
    #[arg(long, value_name = "N", default_value_t = 1, conflicts_with = "chunk_rows", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub repeat: u64,
    /// Times to try again, after a pause, when the service answers `busy`
    /// or a connection fails before a session starts.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retries: u32,
    /// Seconds to connect and set up a session.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub connect_timeout: Duration,
    /// Seconds to wait for any one message from the service.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub timeout: Duration,
    /// Write each query's latency in milliseconds, one a line, to FILE.
    #[arg(long, value_name = "FILE")]
    pub timings: Option<PathBuf>,
    /// Start queries on a schedule, Q per second (with --per-row,
    /// --chunk-rows or --repeat), as independent users would send them,
    /// rather than each as soon as the last one ends: for measuring latency
    /// at a given load. A query that starts late (the one before took
    /// longer than its slot) counts its wait in its latency.
    #[arg(long, value_name = "Q", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Without a dealer: start each query's session before its data, as
    /// soon as the query before it ends, so that the two parties compute
    /// its preprocessing (OT correlations, RLWE masks and products) while
    /// this client waits for its rows or its slot (--rate), and the rows
    /// then pay for the online phase only. For rows that arrive over time
    /// (`-i x=-` with --chunk-rows) and for --repeat or --rate. A shorter
    /// last chunk runs in the session prepared for a full one (its last row
    /// repeated, the extra outputs dropped); a session prepared for a chunk
    /// that never comes (the input ended) is abandoned, and the server logs
    /// it as failed.
    #[arg(long)]
    pub ahead: bool,
    /// With --ahead: seconds a prepared session waits for its data before
    /// it is abandoned (and the data, when it comes, starts a new one).
    /// Keep it below the service's --idle-timeout (30 s by default), which
    /// ends a session whose client stays silent longer.
    #[arg(long, value_name = "SECS", default_value = "20", value_parser = parse_secs, requires = "ahead")]
    pub ahead_wait: Duration,
    #[arg(long, value_name = "MIB", default_value_t = (DEFAULT_MAX_FRAME >> 20) as u64, value_parser = clap::value_parser!(u64).range(1..=4095))]
    pub max_frame_mib: u64,
    /// No summary line on standard error.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// `--rate`: queries per second, from one a day to a million.
fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of queries per second"))?;
    if !(1.0 / 86_400.0..=1e6).contains(&v) {
        return Err(format!(
            "`{s}`: give between 0.0000116 (one a day) and 1000000 queries per second"
        ));
    }
    Ok(v)
}

fn fail(msg: &str) -> ExitCode {
    for line in msg.lines() {
        eprintln!("error: {line}");
    }
    eprintln!("note: no output was written");
    ExitCode::FAILURE
}

/// Where the client connects, and how.
struct Client<'a> {
    /// The plan, validated once for every session of this process.
    valid: plan::ValidPlan<'a>,
    /// The hello to the server and to the dealer, built once (the plan's
    /// fingerprint hashes the whole plan); each session fills in its own
    /// dimensions or id.
    hello: ServiceHello,
    dealer_hello: Option<ServiceHello>,
    me: PartyIdx,
    server: PartyIdx,
    server_name: String,
    server_addr: String,
    dealer: Option<(PartyIdx, String, String, Dialer)>,
    to_server: Dialer,
    args: &'a PredictArgs,
    /// Without a dealer, the OT extension kept with the server between the
    /// sessions of one connection (a new one with each connection).
    ot_link: std::sync::Mutex<std::sync::Arc<runtime::exec::OtLink>>,
}

/// A session started before its data (`--ahead`): its thread sends the
/// hello and runs the preprocessing with the server, then waits at its gate
/// for the data, at most `--ahead-wait`.
struct Prepared<'scope> {
    dims: Vec<(String, u64)>,
    data: mpsc::Sender<BTreeMap<String, Tensor>>,
    handle: std::thread::ScopedJoinHandle<'scope, PreparedEnd>,
}

/// How a prepared session ended: its outcome, the connection (when it can
/// serve the next session), and whether it got its data (if not, the data
/// was never used and runs in a new session).
struct PreparedEnd {
    result: Result<runtime::exec::Outcome, QueryError>,
    conn: Option<Conn>,
    used_data: bool,
}

impl Prepared<'_> {
    /// The session's outcome on `data`, or `None` if it ended before its
    /// data (abandoned or failed): the data has not been used.
    fn finish(
        self,
        data: BTreeMap<String, Tensor>,
        conn: &mut Option<Conn>,
    ) -> Option<Result<runtime::exec::Outcome, QueryError>> {
        let _ = self.data.send(data);
        let end = self.handle.join().unwrap_or_else(|_| PreparedEnd {
            result: Err(QueryError::Fatal(
                "a prepared session's thread panicked".into(),
            )),
            conn: None,
            used_data: true,
        });
        *conn = end.conn.filter(|_| end.result.is_ok());
        end.used_data.then_some(end.result)
    }

    /// Ends the session before its data: the server sees the connection
    /// close.
    fn abandon(self) {
        drop(self.data);
        let _ = self.handle.join();
    }
}

/// The inputs with the rows `is_rows` names grown to `rows` by repeating
/// their last row (`--ahead`'s shorter last chunk).
fn pad_rows(
    q: &BTreeMap<String, Tensor>,
    is_rows: &dyn Fn(&str) -> bool,
    rows: usize,
) -> BTreeMap<String, Tensor> {
    q.iter()
        .map(|(k, t)| {
            let have = t.shape.first().copied().unwrap_or(0);
            if !is_rows(k) || have == 0 || have >= rows {
                return (k.clone(), t.clone());
            }
            let width = t.data.len() / have;
            let mut data = t.data.clone();
            let last = t.data[(have - 1) * width..].to_vec();
            for _ in have..rows {
                data.extend_from_slice(&last);
            }
            let mut shape = t.shape.clone();
            shape[0] = rows;
            (k.clone(), Tensor { shape, data })
        })
        .collect()
}

/// The outcome with every output cut to its first `rows` rows (every output
/// of a row-wise plan has the rows first).
fn first_rows(mut o: runtime::exec::Outcome, rows: usize) -> runtime::exec::Outcome {
    for (_, t) in &mut o.outputs {
        let have = t.shape.first().copied().unwrap_or(0);
        if have > rows {
            let width = t.data.len() / have;
            t.data.truncate(rows * width);
            t.shape[0] = rows;
        }
    }
    o
}

/// Why a query did not run: worth another try, or not.
enum QueryError {
    Retry(String),
    Fatal(String),
}

impl Client<'_> {
    fn connect(&self) -> Result<Conn, NetError> {
        let mut c = self.to_server.dial(
            &self.server_name,
            &self.server_addr,
            Instant::now() + self.args.connect_timeout,
        )?;
        c.set_name(&self.server_name);
        Ok(c)
    }

    /// The session's hello over `conn` (connected first if `None`) and the
    /// server's reply: the connection, ready for the session, and its id.
    fn open_session(
        &self,
        conn: &mut Option<Conn>,
        dims: &[(String, u64)],
        setup: Instant,
    ) -> Result<(Conn, String), QueryError> {
        let mut c = match conn.take() {
            Some(c) => c,
            None => {
                let c = self
                    .connect()
                    .map_err(|e| QueryError::Retry(e.to_string()))?;
                if let Ok(mut link) = self.ot_link.lock() {
                    *link = Default::default();
                }
                c
            }
        };
        let mut hello = self.hello.clone();
        hello.dims = dims.to_vec();
        c.send(&hello.to_bytes(), setup)
            .map_err(|e| QueryError::Retry(e.to_string()))?;
        let reply = c
            .recv(setup.saturating_duration_since(Instant::now()))
            .and_then(|f| ServiceReply::parse(&f, &self.server_name))
            .map_err(|e| QueryError::Retry(e.to_string()))?;
        let session = match reply {
            ServiceReply::Ok { session } => session,
            ServiceReply::Busy { reason } => {
                return Err(QueryError::Retry(format!("{}: {reason}", self.server_name)))
            }
            ServiceReply::Refused { reason } => {
                return Err(QueryError::Fatal(format!(
                    "{} refused the session: {reason}",
                    self.server_name
                )))
            }
        };
        Ok((c, session))
    }

    /// Starts the next session before its data (`--ahead`), over `conn`
    /// (connected first if `None`), at the sizes `dims`, with this
    /// client's parameters and public inputs `early`.
    fn prepare<'scope, 'env>(
        &'env self,
        scope: &'scope std::thread::Scope<'scope, 'env>,
        conn: Option<Conn>,
        dims: Vec<(String, u64)>,
        early: BTreeMap<String, Tensor>,
    ) -> Prepared<'scope> {
        let (data, gate) = mpsc::channel::<BTreeMap<String, Tensor>>();
        let sizes = dims.clone();
        let handle = scope.spawn(move || {
            let mut conn = conn;
            let plan = self.valid.plan();
            let setup = Instant::now() + self.args.connect_timeout;
            let (c, session) = match self.open_session(&mut conn, &sizes, setup) {
                Ok(s) => s,
                Err(e) => {
                    return PreparedEnd {
                        result: Err(e),
                        conn: None,
                        used_data: false,
                    }
                }
            };
            let mut peers: Vec<Option<Conn>> = (0..plan.parties.len()).map(|_| None).collect();
            peers[self.server as usize] = Some(c);
            let (mut t, ids) = TcpTransport::from_conns(
                plan.party_name(self.me),
                peers,
                self.args.timeout,
                (self.args.max_frame_mib as usize) << 20,
                None,
            );
            let opts = self.session_options();
            let used = std::sync::atomic::AtomicBool::new(false);
            let gate = std::sync::Mutex::new(gate);
            let wait = self.args.ahead_wait;
            let open = || {
                let got = gate
                    .lock()
                    .map_err(|_| runtime::exec::ExecError::input("a gate's lock was poisoned"))?
                    .recv_timeout(wait)
                    .map_err(|_| {
                        runtime::exec::ExecError::input(
                            "the session prepared ahead was abandoned: no data came",
                        )
                    })?;
                used.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(got)
            };
            let dims: BTreeMap<String, usize> = sizes
                .iter()
                .map(|(k, v)| (k.clone(), *v as usize))
                .collect();
            let result = runtime::exec::ahead::run_party_ahead(
                &self.valid,
                self.me,
                &plan::views(&early),
                &dims,
                &open,
                &mut t,
                &opts,
            );
            let mut conns = t.into_conns(ids);
            PreparedEnd {
                result: result.map_err(|e| QueryError::Fatal(format!("session {session}: {e}"))),
                conn: conns[self.server as usize].take(),
                used_data: used.load(std::sync::atomic::Ordering::SeqCst),
            }
        });
        Prepared { dims, data, handle }
    }

    /// Options of a session with the server: this connection's OT link.
    fn session_options(&self) -> runtime::exec::Options {
        let mut opts = runtime::exec::Options::default();
        opts.timeout = self.args.timeout;
        opts.ot_link = self.ot_link.lock().ok().map(|l| l.clone());
        opts
    }

    /// One session over `conn` (connected first if `None`).
    fn query(
        &self,
        conn: &mut Option<Conn>,
        dealer_conn: &mut Option<Conn>,
        inputs: &BTreeMap<String, Tensor>,
        dims: &[(String, u64)],
    ) -> Result<runtime::exec::Outcome, QueryError> {
        let plan = self.valid.plan();
        let me_name = plan.party_name(self.me);
        let setup = Instant::now() + self.args.connect_timeout;
        let (c, session) = self.open_session(conn, dims, setup)?;
        let mut peers: Vec<Option<Conn>> = (0..plan.parties.len()).map(|_| None).collect();
        peers[self.server as usize] = Some(c);
        if let (Some((d, name, addr, dialer)), Some(dealer_hello)) =
            (&self.dealer, &self.dealer_hello)
        {
            // The connection of the previous session, if the dealer kept it.
            let kept = dealer_conn
                .take()
                .and_then(|mut c| (!c.is_closed()).then_some(c));
            let dc = kept
                .map(Ok)
                .unwrap_or_else(|| dialer.dial(name, addr, setup))
                .and_then(|mut dc| {
                    dc.set_name(name);
                    dc.send(
                        &ServiceHello {
                            session: session.clone(),
                            ..dealer_hello.clone()
                        }
                        .to_bytes(),
                        setup,
                    )?;
                    Ok(dc)
                })
                .map_err(|e| QueryError::Fatal(format!("session {session}: {e}")))?;
            peers[*d as usize] = Some(dc);
        }
        let (mut t, ids) = TcpTransport::from_conns(
            me_name,
            peers,
            self.args.timeout,
            (self.args.max_frame_mib as usize) << 20,
            None,
        );
        let opts = self.session_options();
        let result =
            runtime::exec::run_party(&self.valid, self.me, &plan::views(inputs), &mut t, &opts);
        let mut conns = t.into_conns(ids);
        if let Some((d, ..)) = &self.dealer {
            *dealer_conn = conns[*d as usize].take().filter(|_| result.is_ok());
        }
        let outcome = result.map_err(|e| QueryError::Fatal(format!("session {session}: {e}")))?;
        *conn = conns[self.server as usize].take();
        Ok(outcome)
    }
}

pub fn run(args: &PredictArgs) -> ExitCode {
    let Some(plan) = load_plan(&args.plan, &args.file, &args.target) else {
        return ExitCode::FAILURE;
    };
    let dep = match deployment(&args.config, &plan, None) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let me = dep.client;
    let read = |what: &str, p: &PathBuf| {
        std::fs::read(p).map_err(|e| format!("{what}: cannot read `{}`: {e}", p.display()))
    };
    let (cert, key) = match (read("--cert", &args.cert), read("--key", &args.key)) {
        (Ok(c), Ok(k)) => (c, k),
        (Err(e), _) | (_, Err(e)) => return fail(&e),
    };
    let max_frame = (args.max_frame_mib as usize) << 20;
    let server_entry = dep.entries[dep.server as usize].as_ref().expect("listed");
    let to_server = match Dialer::new(&server_entry.cert, &cert, &key, max_frame) {
        Ok(d) => d,
        Err(e) => return fail(&e.to_string()),
    };
    let dealer = match dep.dealer {
        None => None,
        Some(d) => {
            let e = dep.entries[d as usize].as_ref().expect("listed");
            match Dialer::new(&e.cert, &cert, &key, max_frame) {
                Ok(dialer) => Some((d, e.name.clone(), e.address.clone(), dialer)),
                Err(e) => return fail(&e.to_string()),
            }
        }
    };
    // With --chunk-rows (or --per-row, one row a chunk) the inputs with the
    // row dimension are read a chunk at a time, one query each.
    let chunking = match (args.per_row, args.chunk_rows) {
        (true, _) => Some(("--per-row", 1)),
        (false, Some(n)) => Some(("--chunk-rows", n as usize)),
        (false, None) => None,
    };
    let chunks = match chunking {
        None => None,
        Some((flag, n)) => match crate::stream::row_dim(&plan) {
            Ok(Some(dim)) => Some((dim, n)),
            Ok(None) => {
                return fail(&format!(
                    "{flag}: {} has no symbolic dimension (such as `batch`) to cut into rows",
                    plan.model
                ))
            }
            Err(why) => {
                return fail(&format!(
                    "{flag}: {} cannot run in chunks of rows: {why}",
                    plan.model
                ))
            }
        },
    };
    let Inputs {
        values: inputs,
        ids,
        mut streams,
    } = match crate::run_cmd::load_inputs_in_chunks(
        &plan,
        Some(me),
        &args.data,
        chunks.as_ref().map(|(d, n)| (d.as_str(), *n)),
    ) {
        Ok(i) => i,
        Err(e) => return fail(&e),
    };
    let is_rows = |name: &str| {
        chunks.as_ref().is_some_and(|(dim, _)| {
            plan.inputs.iter().any(|i| {
                i.name == name
                    && matches!(i.shape.0.first(), Some(plan::Dim::Symbol(s)) if s == dim)
            })
        })
    };
    let rows_in = |q: &BTreeMap<String, Tensor>| {
        q.iter()
            .find(|(k, _)| is_rows(k))
            .and_then(|(_, t)| t.shape.first().copied())
            .unwrap_or(0)
    };
    let fixed: BTreeMap<String, Tensor> = inputs
        .iter()
        .filter(|(k, _)| !is_rows(k))
        .map(|(k, t)| (k.clone(), t.clone()))
        .collect();
    let mut staged = match (&chunks, &args.output) {
        (Some(_), Some(dir)) if !crate::data::is_stdin(dir) => {
            match crate::stream::StagedOutputs::create(dir, &plan, Some(me)) {
                Ok(s) => Some(s),
                Err(e) => return fail(&e),
            }
        }
        _ => None,
    };
    let fp = plan.fingerprint();
    let valid = match crate::run_cmd::valid(&plan) {
        Ok(v) => v,
        Err(e) => return fail(&e.to_string()),
    };
    if args.ahead {
        if let Err(e) = runtime::exec::ahead::check(&plan) {
            return fail(&format!("--ahead: {e}"));
        }
    }
    let client = Client {
        valid,
        hello: ServiceHello::new(plan.party_name(me), &server_entry.name, &fp, ""),
        dealer_hello: dealer
            .as_ref()
            .map(|(_, name, ..)| ServiceHello::new(plan.party_name(me), name, &fp, "")),
        me,
        server: dep.server,
        server_name: server_entry.name.clone(),
        server_addr: args
            .server
            .clone()
            .unwrap_or_else(|| server_entry.address.clone()),
        dealer,
        to_server,
        args,
        ot_link: Default::default(),
    };
    let started = Instant::now();
    let mut conn: Option<Conn> = None;
    let mut dealer_conn: Option<Conn> = None;
    let mut collected = crate::stream::Collected::default();
    let mut last = Vec::new();
    let mut latencies: Vec<f64> = Vec::new();
    let mut stats = runtime::exec::Stats::default();
    let progress = crate::progress::Rows::new(args.quiet || chunks.is_none());
    let mut done = 0usize;
    let mut next = Some((inputs, ids.as_ref().map(|r| r.values.clone())));
    let ended = std::thread::scope(|scope| {
        let mut ahead: Option<Prepared> = None;
        while let Some((q, chunk_ids)) = next.take() {
            let q = &q;
            let dims: Vec<(String, u64)> = match plan::bind_inputs(&plan, Some(me), &plan::views(q))
            {
                Ok(d) => d.into_iter().map(|(k, v)| (k, v as u64)).collect(),
                Err(errs) => {
                    return Some(fail(
                        &errs
                            .iter()
                            .map(|e| e.to_string())
                            .collect::<Vec<_>>()
                            .join("\n"),
                    ))
                }
            };
            let repeat = if chunks.is_some() { 1 } else { args.repeat };
            for rep in 0..repeat {
                // On a schedule, a query's latency runs from its slot.
                let t0 = match args.rate {
                    Some(rate) => {
                        let slot = started + Duration::from_secs_f64(latencies.len() as f64 / rate);
                        if let Some(early) = slot.checked_duration_since(Instant::now()) {
                            std::thread::sleep(early);
                        }
                        slot
                    }
                    None => Instant::now(),
                };
                let mut tries = 0;
                let outcome = loop {
                    let attempt = match ahead.take() {
                        Some(p) => {
                            // A shorter last chunk runs in the session
                            // prepared for a full one, its last row
                            // repeated: the plan is row-wise (every output
                            // row from its input row), and the extra rows'
                            // outputs are dropped.
                            let pad_to = chunks.as_ref().and_then(|(dim, _)| {
                                match (&p.dims[..], &dims[..]) {
                                    ([(a, n)], [(b, m)]) if a == dim && b == dim && m < n => {
                                        Some(*n as usize)
                                    }
                                    _ => None,
                                }
                            });
                            if p.dims == dims || pad_to.is_some() {
                                let padded = pad_to.map(|n| pad_rows(q, &is_rows, n));
                                let (_, data) = runtime::exec::ahead::split_party_data(
                                    &plan,
                                    me,
                                    &plan::views(padded.as_ref().unwrap_or(q)),
                                );
                                match p.finish(data, &mut conn) {
                                    Some(r) => r.map(|o| match pad_to {
                                        Some(_) => first_rows(o, rows_in(q)),
                                        None => o,
                                    }),
                                    // It ended before its data: a new session.
                                    None => client.query(&mut conn, &mut dealer_conn, q, &dims),
                                }
                            } else {
                                p.abandon();
                                client.query(&mut conn, &mut dealer_conn, q, &dims)
                            }
                        }
                        None => client.query(&mut conn, &mut dealer_conn, q, &dims),
                    };
                    match attempt {
                        Ok(o) => break o,
                        Err(QueryError::Retry(e)) if tries < args.retries => {
                            tries += 1;
                            conn = None;
                            if !args.quiet {
                                eprintln!(
                                    "{}: {e}; trying again ({tries} of {})",
                                    plan.party_name(me),
                                    args.retries
                                );
                            }
                            std::thread::sleep(Duration::from_millis(50 << tries.min(6)));
                        }
                        Err(QueryError::Retry(e)) | Err(QueryError::Fatal(e)) => {
                            progress.finish();
                            let at = match chunks {
                                Some(_) => format!(
                                    " (in the chunk of rows {}..{})",
                                    done + 1,
                                    done + rows_in(q)
                                ),
                                None => String::new(),
                            };
                            return Some(fail(&format!("{}: {e}{at}", plan.party_name(me))));
                        }
                    }
                };
                latencies.push(t0.elapsed().as_secs_f64() * 1e3);
                crate::stream::add_stats(&mut stats, &outcome.stats);
                last = crate::run_cmd::only_party(&plan, me, outcome);
                // The next query's session, while this client reads its rows
                // or waits for its slot.
                // (A chunk shorter than the rest was the input's last.)
                let more = match chunks {
                    Some((_, n)) => rows_in(q) == n,
                    None => rep + 1 < repeat,
                };
                if args.ahead && more {
                    let (early, _) =
                        runtime::exec::ahead::split_party_data(&plan, me, &plan::views(q));
                    let early = early
                        .into_iter()
                        .map(|(k, v)| {
                            (
                                k,
                                Tensor {
                                    shape: v.shape.to_vec(),
                                    data: v.data.to_vec(),
                                },
                            )
                        })
                        .collect();
                    ahead = Some(client.prepare(scope, conn.take(), dims.clone(), early));
                }
            }
            let Some((_, rows)) = chunks else { continue };
            let written = crate::stream::append_chunk(
                staged.as_mut(),
                &mut collected,
                &last,
                ids.as_ref().map(|r| r.column.as_str()),
                chunk_ids,
            );
            if let Err(e) = written {
                progress.finish();
                return Some(fail(&e));
            }
            done += rows_in(q);
            next = match crate::run_cmd::next_chunk(
                &plan,
                Some(me),
                &mut streams,
                &fixed,
                rows,
                done,
                ids.is_some(),
            ) {
                Ok(n) => n,
                Err(e) => {
                    progress.finish();
                    return Some(fail(&format!("{}: {e}", plan.party_name(me))));
                }
            };
            progress.update(
                done as u64,
                streams.iter().find_map(|s| s.source.fraction()),
            );
        }
        if let Some(p) = ahead.take() {
            p.abandon();
        }
        None
    });
    if let Some(code) = ended {
        return code;
    }
    progress.finish();
    for c in [conn.take(), dealer_conn.take()].into_iter().flatten() {
        c.close();
    }
    let secs = started.elapsed().as_secs_f64();
    if let Some(path) = &args.timings {
        let text: String = latencies.iter().map(|l| format!("{l:.3}\n")).collect();
        if let Err(e) = crate::write_atomically(path, text.as_bytes(), crate::Access::Public) {
            return fail(&e);
        }
    }
    if !args.quiet {
        eprintln!(
            "{}: {} quer{} in {secs:.3} s; sent {} B, received {} B",
            plan.party_name(me),
            latencies.len(),
            if latencies.len() == 1 { "y" } else { "ies" },
            stats.bytes_sent,
            stats.bytes_received
        );
    }
    if let Some(s) = staged {
        return match s.commit() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let all_ids = std::mem::take(&mut collected.ids);
    let (outcomes, ids) = match chunks {
        Some(_) => (
            collected.into_outcomes(&last, vec![Default::default(); last.len()]),
            ids.map(|r| RowIds {
                values: all_ids,
                ..r
            }),
        ),
        None => (last, ids),
    };
    match &args.output {
        Some(dir) => {
            if let Err(e) = write_outputs(dir, &plan, &outcomes, ids.as_ref()) {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
        None => {
            for (name, t) in outcomes.get(me as usize).map_or(&[][..], |o| &o.outputs) {
                let values: Vec<String> = t.data.iter().map(|v| format!("{v}")).collect();
                println!(
                    "{} learns {name} {:?}: [{}]",
                    plan.party_name(me),
                    t.shape,
                    values.join(", ")
                );
            }
        }
    }
    ExitCode::SUCCESS
}
