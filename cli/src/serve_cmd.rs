//! `veil serve`: one party of a model as a long-lived service (the model
//! owner, or the dealer), answering many clients' sessions concurrently.
//!
//! * The deployment file (parties.toml) lists the service's parties: the
//!   model owner and, when the plan has one, the dealer (address,
//!   certificate; each reads its own key). The model's other computing
//!   party, the data owner, is the client: it is not listed, and proves who
//!   it is with a certificate the client CA signed (`--client-ca`).
//! * A session: the client connects to the model owner and asks for one
//!   (its hello names the plan and its batch size); the model owner picks a
//!   fresh id, answers, and connects to the dealer with that id and the
//!   client's certificate fingerprint; the client connects to the dealer
//!   with the id too, and the dealer pairs the two. Then the executor runs,
//!   the same `run_party` as `veil party`. Every session draws fresh
//!   correlations (the dealer's seeds come from the OS), and nothing but the
//!   loaded inputs carries from one session to the next.
//! * Threads: one per connection (std threads; no async runtime), at most
//!   `--max-sessions` running a session at once, `--queue` more waiting for
//!   a slot (up to `--queue-timeout`), past that a `busy` answer.

use crate::compile_cmd::{compile_file, TargetArgs};
use crate::run_cmd::{InputArgs, Inputs};
use clap::Args;
use net::service::{Conn, DenyList, Dialer, Identity, ServiceHello, ServiceReply, ServiceTls};
use net::{NetError, TcpTransport, DEFAULT_MAX_FRAME};
use plan::{PartyIdx, Plan};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Seconds, possibly fractional (`0.5`), as a duration.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(0.001..=86_400.0).contains(&v) {
        return Err(format!("`{s}`: give between 0.001 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The model file (the service and its clients compile it with the same flags), or --plan FILE.
    #[arg(value_name = "FILE", required_unless_present = "plan")]
    pub file: Option<PathBuf>,
    /// Serve a plan written by `veil compile --emit json`.
    #[arg(long, value_name = "FILE", conflicts_with = "file")]
    #[arg(conflicts_with_all = crate::plan_file::COMPILE_FLAGS)]
    pub plan: Option<PathBuf>,
    /// Which party this service is: the model owner, or the dealer.
    #[arg(long = "as", value_name = "NAME")]
    pub me: String,
    /// The deployment file: the model owner's and the dealer's address and
    /// certificate (see docs/deployment.md).
    #[arg(long, value_name = "parties.toml")]
    pub config: PathBuf,
    /// The certificate of the authority that signs clients' certificates
    /// (`veil certs --new-ca`). Without it no client can connect.
    #[arg(long, value_name = "FILE")]
    pub client_ca: Option<PathBuf>,
    /// Client certificates refused although the CA signed them: one SHA-256
    /// fingerprint (as `veil certs --client` prints it) or client name a
    /// line. Read again on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub deny: Option<PathBuf>,
    /// Where to listen, if not this party's address in the deployment file.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    // The model owner's inputs, loaded once.
    #[command(flatten)]
    pub data: InputArgs,
    /// Sessions running at once, at most.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_sessions: u64,
    /// Requests waiting for a slot beyond --max-sessions, at most; past
    /// that a client is told the service is busy.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub queue: u64,
    /// How long a request may wait in the queue before it is told `busy`.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub queue_timeout: Duration,
    /// The largest batch (every symbolic dimension) a client may ask for.
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=crate::limits::MAX_BATCH))]
    pub max_batch: u64,
    /// Seconds to connect to the dealer (the model owner), and for the other
    /// side of a session to join (the dealer).
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub connect_timeout: Duration,
    /// Seconds a new connection has for its TLS handshake and first request.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub handshake_timeout: Duration,
    /// Seconds to wait for any one message within a session, and for the
    /// next request on an open connection.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub idle_timeout: Duration,
    /// Seconds a whole session may take.
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = parse_secs)]
    pub session_timeout: Duration,
    /// On SIGTERM (or SIGINT): seconds the sessions in flight have to finish.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub drain_timeout: Duration,
    /// The dealer: streams of correlated randomness kept computed ahead of
    /// their sessions, this many for each --deal-ahead-batch size (0: none),
    /// so a session's preprocessing is a send, not the dealer's work. Each
    /// stream is fresh and serves one session. The model owner ignores it.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub deal_ahead: u64,
    /// The batch sizes (every symbolic dimension at that size) the dealer
    /// deals ahead for, comma-separated; sessions of other sizes are dealt
    /// when they start.
    #[arg(long, value_name = "N,...", value_delimiter = ',', default_value = "1", value_parser = clap::value_parser!(u64).range(1..))]
    pub deal_ahead_batch: Vec<u64>,
    /// Serve metrics in the Prometheus text format on this address (off by default).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Largest frame accepted from a peer, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = (DEFAULT_MAX_FRAME >> 20) as u64, value_parser = clap::value_parser!(u64).range(1..=4095))]
    pub max_frame_mib: u64,
    #[command(flatten)]
    pub memory: crate::limits::MemoryArgs,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// A party of the deployment as read from parties.toml.
pub struct Entry {
    pub name: String,
    pub address: String,
    pub cert: Vec<u8>,
    pub key: Option<Vec<u8>>,
    pub listen: Option<String>,
}

/// The roles of a service deployment, from the plan and the deployment file.
pub struct Deployment {
    /// The model owner: the computing party listed in the file.
    pub server: PartyIdx,
    /// The data owner: the computing party not listed.
    pub client: PartyIdx,
    pub dealer: Option<PartyIdx>,
    /// Per party of the plan, its entry, if listed.
    pub entries: Vec<Option<Entry>>,
}

/// Reads parties.toml and decides who serves and who is the client. `me`:
/// whose key to read (`None`: none, for a client).
pub fn deployment(path: &Path, plan: &Plan, me: Option<&str>) -> Result<Deployment, String> {
    let at = |e: String| format!("`{}`: {e}", path.display());
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    // The same format as `veil party`'s, read by the same parser.
    let party = net::deployment::parse(&text, path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let read = |what: &str, p: &Path| {
        let p = resolve(p);
        std::fs::read(&p).map_err(|e| at(format!("{what}: cannot read `{}`: {e}", p.display())))
    };
    let mut entries: Vec<Option<Entry>> = plan.parties.iter().map(|_| None).collect();
    for (i, e) in party.iter().enumerate() {
        if party[..i].iter().any(|o| o.name == e.name) {
            return Err(at(format!("party `{}` is listed twice", e.name)));
        }
        let Some(p) = plan.parties.iter().position(|p| p.name == e.name) else {
            return Err(at(format!(
                "party `{}` is not a party of model {}",
                e.name, plan.model
            )));
        };
        if !plan.takes_part(p as PartyIdx) {
            continue;
        }
        let key = match (&e.key, me == Some(e.name.as_str())) {
            (Some(k), true) => Some(read(&format!("private key of {}", e.name), k)?),
            (None, true) => {
                return Err(at(format!(
                    "party `{}` has no `key = \"...\"` line: this party needs its private key",
                    e.name
                )))
            }
            _ => None,
        };
        entries[p] = Some(Entry {
            name: e.name.clone(),
            address: e.address.clone(),
            cert: read(&format!("certificate of {}", e.name), &e.cert)?,
            key,
            listen: e.listen.clone(),
        });
    }
    let compute: Vec<PartyIdx> = (0..plan.parties.len() as PartyIdx)
        .filter(|&p| plan.parties[p as usize].role == plan::Role::Compute)
        .collect();
    let listed: Vec<PartyIdx> = compute
        .iter()
        .copied()
        .filter(|&p| entries[p as usize].is_some())
        .collect();
    let names = |ps: &[PartyIdx]| {
        ps.iter()
            .map(|&p| plan.party_name(p).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let [server] = listed[..] else {
        return Err(at(format!(
            "list exactly one computing party of {} (the model owner, which serves) and not \
             the client; it lists {}",
            plan.model,
            if listed.is_empty() {
                "none".to_string()
            } else {
                names(&listed)
            }
        )));
    };
    let client = compute
        .iter()
        .copied()
        .find(|&p| p != server)
        .ok_or_else(|| at(format!("{} has only one computing party", plan.model)))?;
    let dealer = (0..plan.parties.len() as PartyIdx)
        .find(|&p| plan.parties[p as usize].role == plan::Role::Dealer && plan.takes_part(p));
    if let Some(d) = dealer {
        if entries[d as usize].is_none() {
            return Err(at(format!(
                "the dealer `{}` is missing (the plan has one; to run without it, compile \
                 with --no-dealer everywhere)",
                plan.party_name(d)
            )));
        }
    }
    Ok(Deployment {
        server,
        client,
        dealer,
        entries,
    })
}

/// The plan of `--plan FILE` or of the model FILE.
pub fn load_plan(
    plan: &Option<PathBuf>,
    file: &Option<PathBuf>,
    target: &TargetArgs,
) -> Option<Plan> {
    match (plan, file) {
        (Some(path), _) => match crate::plan_file::load(path) {
            Ok(plan) => Some(plan),
            Err(e) => {
                eprintln!("error: {e}");
                None
            }
        },
        (None, Some(file)) => compile_file(file, target).map(|c| c.plan),
        (None, None) => {
            eprintln!("error: give a model FILE or --plan FILE");
            None
        }
    }
}

/// Counters for the metrics endpoint and the summary at exit.
#[derive(Default)]
struct Metrics {
    ok: AtomicU64,
    failed: AtomicU64,
    busy: AtomicU64,
    refused: AtomicU64,
    timed_out: AtomicU64,
    /// Connections dropped before a request: TLS failed (garbage, no or
    /// an unknown or revoked certificate), silence, or too many connections.
    rejected: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    /// Session latency (request to outputs), in buckets of `BUCKETS_MS`.
    buckets: [AtomicU64; BUCKETS_MS.len()],
    latency_sum_us: AtomicU64,
}

const BUCKETS_MS: [f64; 12] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0, 30000.0,
];

impl Metrics {
    fn observe(&self, latency: Duration) {
        let ms = latency.as_secs_f64() * 1e3;
        for (b, le) in self.buckets.iter().zip(BUCKETS_MS) {
            if ms <= le {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_sum_us
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(
        &self,
        pool: &Pool,
        connections: usize,
        pending: usize,
        dealings: Option<&runtime::exec::pool::DealingPool>,
    ) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (active, queued) = pool.depth();
        let mut s = String::new();
        s.push_str(
            "# HELP veil_sessions_total Sessions by outcome.\n# TYPE veil_sessions_total counter\n",
        );
        for (outcome, v) in [
            ("ok", &self.ok),
            ("failed", &self.failed),
            ("busy", &self.busy),
            ("refused", &self.refused),
            ("timed_out", &self.timed_out),
        ] {
            s.push_str(&format!(
                "veil_sessions_total{{outcome=\"{outcome}\"}} {}\n",
                g(v)
            ));
        }
        s.push_str(&format!(
            "# HELP veil_connections_rejected_total Connections dropped before a request.\n\
             # TYPE veil_connections_rejected_total counter\nveil_connections_rejected_total {}\n",
            g(&self.rejected)
        ));
        s.push_str(&format!(
            "# HELP veil_bytes_total Bytes of sessions, by direction.\n# TYPE veil_bytes_total counter\n\
             veil_bytes_total{{direction=\"sent\"}} {}\nveil_bytes_total{{direction=\"received\"}} {}\n",
            g(&self.bytes_sent),
            g(&self.bytes_received)
        ));
        s.push_str("# HELP veil_session_seconds Session latency, request to outputs.\n# TYPE veil_session_seconds histogram\n");
        for (b, le) in self.buckets.iter().zip(BUCKETS_MS) {
            s.push_str(&format!(
                "veil_session_seconds_bucket{{le=\"{}\"}} {}\n",
                le / 1e3,
                g(b)
            ));
        }
        let count = g(&self.ok) + g(&self.failed) + g(&self.timed_out);
        s.push_str(&format!(
            "veil_session_seconds_bucket{{le=\"+Inf\"}} {count}\nveil_session_seconds_sum {}\nveil_session_seconds_count {count}\n",
            g(&self.latency_sum_us) as f64 / 1e6
        ));
        s.push_str(&format!(
            "# HELP veil_pool Sessions running, requests queued, open connections, and (dealer) sides waiting for their partner.\n\
             # TYPE veil_pool gauge\nveil_pool{{state=\"active\"}} {active}\nveil_pool{{state=\"queued\"}} {queued}\n\
             veil_pool{{state=\"connections\"}} {connections}\nveil_pool{{state=\"pairing\"}} {pending}\n"
        ));
        if let Some(d) = dealings {
            s.push_str(&format!(
                "# HELP veil_dealt_ahead Dealer streams ready ahead of their sessions.\n\
                 # TYPE veil_dealt_ahead gauge\nveil_dealt_ahead {}\n\
                 # HELP veil_dealt_ahead_sessions_total Sessions by whether a stream dealt ahead was ready.\n\
                 # TYPE veil_dealt_ahead_sessions_total counter\n\
                 veil_dealt_ahead_sessions_total{{ready=\"yes\"}} {}\nveil_dealt_ahead_sessions_total{{ready=\"no\"}} {}\n",
                d.len(),
                g(&d.hits),
                g(&d.misses)
            ));
        }
        s
    }
}

/// Slots for running sessions, and a bounded queue for them.
struct Pool {
    max: usize,
    queue: usize,
    state: Mutex<(usize, usize)>,
    freed: Condvar,
}

struct Slot<'a>(&'a Pool);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.state.lock() {
            s.0 -= 1;
        }
        self.0.freed.notify_one();
    }
}

impl Pool {
    fn new(max: usize, queue: usize) -> Pool {
        Pool {
            max,
            queue,
            state: Mutex::new((0, 0)),
            freed: Condvar::new(),
        }
    }

    fn depth(&self) -> (usize, usize) {
        self.state.lock().map(|s| *s).unwrap_or((0, 0))
    }

    /// A slot now, or after waiting in the queue at most `wait`; `Err`:
    /// why not (the reason a client reads).
    fn acquire(&self, wait: Duration, stop: &AtomicBool) -> Result<Slot<'_>, String> {
        let mut s = self
            .state
            .lock()
            .map_err(|_| "internal error".to_string())?;
        if s.0 < self.max {
            s.0 += 1;
            return Ok(Slot(self));
        }
        if s.1 >= self.queue {
            return Err(format!(
                "the service is busy ({} sessions running, {} waiting); try again later",
                s.0, s.1
            ));
        }
        s.1 += 1;
        let deadline = Instant::now() + wait;
        loop {
            let now = Instant::now();
            if stop.load(Ordering::SeqCst) || now >= deadline {
                s.1 -= 1;
                return Err(if stop.load(Ordering::SeqCst) {
                    "the service is stopping; try again later (or another replica)".into()
                } else {
                    format!(
                        "the service is busy (waited {:.1} s for a slot); try again later",
                        wait.as_secs_f64()
                    )
                });
            }
            if s.0 < self.max {
                s.1 -= 1;
                s.0 += 1;
                return Ok(Slot(self));
            }
            let step = (deadline - now).min(Duration::from_millis(100));
            s = match self.freed.wait_timeout(s, step) {
                Ok((s, _)) => s,
                Err(_) => return Err("internal error".into()),
            };
        }
    }
}

/// The dealer's half-open sessions: the first side to arrive waits here
/// for the other (at most `--connect-timeout`).
struct Waiting {
    side: Side,
    conn: Conn,
    hello: ServiceHello,
    since: Instant,
    /// Where its connection goes back once the session ran.
    back: std::sync::mpsc::Sender<Conn>,
}

/// What became of a hello at the dealer.
enum Pairing {
    /// This side waits for the other.
    Parked,
    /// The other side was waiting: run the session.
    Paired(Box<(Waiting, Conn, ServiceHello)>),
    Drop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Server,
    Client,
}

/// What every connection's thread shares.
struct Shared {
    /// The plan, validated once at start-up for every session.
    valid: plan::SharedValidPlan,
    /// The plan's fingerprint, as hellos name it (it hashes the whole plan:
    /// computed once).
    fp: plan::Fingerprint,
    /// Whether the memory limit holds at --max-batch, checked at start-up:
    /// the estimate only grows with the batch, so then no session needs
    /// its own check.
    memory_fits_max_batch: bool,
    me: PartyIdx,
    dep: Deployment,
    inputs: BTreeMap<String, plan::Tensor>,
    tls: ServiceTls,
    /// The model owner's way to the dealer.
    dealer: Option<Dialer>,
    /// The model owner's connections to the dealer between sessions, and
    /// since when each is idle.
    dealer_idle: Mutex<Vec<(Conn, Instant)>>,
    server_fp: Option<[u8; 32]>,
    pool: Pool,
    /// The dealer's streams dealt ahead (--deal-ahead).
    dealings: Option<Arc<runtime::exec::pool::DealingPool>>,
    /// The model owner's RLWE weights made ready once (masked products).
    rlwe_weights: Arc<runtime::exec::WeightCache>,
    metrics: Metrics,
    stop: AtomicBool,
    connections: AtomicUsize,
    pairing: Mutex<HashMap<String, Waiting>>,
    args: ServeArgsCopy,
}

impl Shared {
    fn plan(&self) -> &Plan {
        self.valid.plan()
    }
}

/// The settings the threads read.
struct ServeArgsCopy {
    handshake: Duration,
    idle: Duration,
    session: Duration,
    connect: Duration,
    queue_wait: Duration,
    max_batch: u64,
    max_memory: u64,
    max_frame: usize,
    max_connections: usize,
}

fn fail(msg: &str) -> ExitCode {
    for line in msg.lines() {
        eprintln!("error: {line}");
    }
    ExitCode::FAILURE
}

/// Log lines (one per session, and the service's own events) go to
/// standard error through `tracing`, as `key=value` fields.
fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        .try_init();
}

pub fn run(args: &ServeArgs) -> ExitCode {
    init_logging();
    let Some(plan) = load_plan(&args.plan, &args.file, &args.target) else {
        return ExitCode::FAILURE;
    };
    let Some(me) = plan.parties.iter().position(|p| p.name == args.me) else {
        let names: Vec<&str> = plan.parties.iter().map(|p| p.name.as_str()).collect();
        return fail(&format!(
            "--as {}: the model has no such party (its parties: {})",
            args.me,
            names.join(", ")
        ));
    };
    let me = me as PartyIdx;
    let dep = match deployment(&args.config, &plan, Some(&args.me)) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    if me == dep.client {
        return fail(&format!(
            "--as {}: {} is the client of this deployment (not listed in `{}`); run `veil predict` \
             for it, and `veil serve` for {}",
            args.me,
            args.me,
            args.config.display(),
            plan.party_name(dep.server)
        ));
    }
    if Some(me) != dep.dealer && me != dep.server {
        return fail(&format!("--as {}: takes no part in this plan", args.me));
    }
    let inputs = if Some(me) == dep.dealer {
        if !args.data.inputs.is_empty() {
            return fail(&format!("{} is the dealer: it takes no inputs", args.me));
        }
        BTreeMap::new()
    } else {
        match crate::run_cmd::load_inputs(&plan, Some(me), &args.data) {
            Ok(Inputs { values, .. }) => values,
            Err(e) => return fail(&e),
        }
    };
    let mine = dep.entries[me as usize].as_ref().expect("listed");
    let deny = match &args.deny {
        Some(p) => match read_deny(p) {
            Ok(d) => d,
            Err(e) => return fail(&e),
        },
        None => DenyList::default(),
    };
    let ca = match &args.client_ca {
        Some(p) => match std::fs::read(p) {
            Ok(b) => Some(b),
            Err(e) => return fail(&format!("--client-ca: cannot read `{}`: {e}", p.display())),
        },
        None => None,
    };
    let max_frame = (args.max_frame_mib as usize) << 20;
    let key = mine.key.clone().unwrap_or_default();
    // The dealer pins the model owner; the model owner pins nobody (it
    // dials the dealer, and only clients call it).
    let pinned: Vec<Vec<u8>> = match dep.dealer {
        Some(d) if d == me => vec![dep.entries[dep.server as usize]
            .as_ref()
            .expect("listed")
            .cert
            .clone()],
        _ => Vec::new(),
    };
    let tls = match ServiceTls::new(
        &args.me,
        &mine.cert,
        &key,
        &pinned,
        ca.as_deref(),
        deny,
        max_frame,
    ) {
        Ok(t) => t,
        Err(e) => return fail(&e.to_string()),
    };
    let dealer = match dep.dealer {
        Some(d) if me == dep.server => {
            let e = dep.entries[d as usize].as_ref().expect("listed");
            match Dialer::new(&e.cert, &mine.cert, &key, max_frame) {
                Ok(d) => Some(d),
                Err(e) => return fail(&e.to_string()),
            }
        }
        _ => None,
    };
    let server_fp = dep.entries[dep.server as usize]
        .as_ref()
        .and_then(|e| net::parse_cert(&e.cert).ok())
        .map(|c| net::service::fingerprint(c.as_ref()));
    if ca.is_none() {
        tracing::warn!("no --client-ca: no client can connect");
    }
    let listen = args
        .listen
        .clone()
        .or_else(|| mine.listen.clone())
        .unwrap_or_else(|| mine.address.clone());
    let listener = match net::service::listen(&args.me, &listen) {
        Ok(l) => l,
        Err(e) => return fail(&e.to_string()),
    };
    let max_sessions = args.max_sessions as usize;
    let queue = args.queue as usize;
    let plan = Arc::new(plan);
    let valid = match crate::run_cmd::shared_valid(Arc::clone(&plan)) {
        Ok(v) => v,
        Err(e) => return fail(&e.to_string()),
    };
    let memory_limit = args.memory.limit().0;
    // The estimate grows with every symbolic dimension (a test checks this
    // on the bundled models), so a service whose largest batch fits never
    // has to estimate a session's memory again.
    let memory_fits_max_batch =
        runtime::exec::memory::estimate(&plan, &plan.dims_at(args.max_batch as usize), None)
            .is_ok_and(|e| e.parties[me as usize].total() <= memory_limit);
    let dealings = if Some(me) == dep.dealer && args.deal_ahead > 0 {
        let mut sizes: Vec<BTreeMap<String, usize>> = Vec::new();
        for &n in &args.deal_ahead_batch {
            if n > args.max_batch {
                return fail(&format!(
                    "--deal-ahead-batch {n} is above --max-batch {}",
                    args.max_batch
                ));
            }
            let dims = plan.dims_at(n as usize);
            if !sizes.contains(&dims) {
                sizes.push(dims);
            }
        }
        match runtime::exec::pool::DealingPool::new(
            Arc::clone(&plan),
            sizes,
            args.deal_ahead as usize,
        ) {
            Ok(p) => Some(Arc::new(p)),
            Err(e) => return fail(&format!("--deal-ahead: {e}")),
        }
    } else {
        None
    };
    let shared = Arc::new(Shared {
        fp: plan.fingerprint(),
        valid,
        memory_fits_max_batch,
        me,
        dep,
        inputs,
        tls,
        dealer,
        dealer_idle: Mutex::new(Vec::new()),
        server_fp,
        pool: Pool::new(max_sessions, queue),
        dealings,
        rlwe_weights: Arc::new(runtime::exec::WeightCache::new(
            runtime::exec::WeightCache::DEFAULT_BYTES,
        )),
        metrics: Metrics::default(),
        stop: AtomicBool::new(false),
        connections: AtomicUsize::new(0),
        pairing: Mutex::new(HashMap::new()),
        args: ServeArgsCopy {
            handshake: args.handshake_timeout,
            idle: args.idle_timeout,
            session: args.session_timeout,
            connect: args.connect_timeout,
            queue_wait: args.queue_timeout,
            max_batch: args.max_batch,
            max_memory: memory_limit,
            max_frame,
            // Running, queued, and as many again in their handshake or
            // idle between sessions.
            max_connections: 2 * (max_sessions + queue) + 64,
        },
    });
    let term = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for (sig, flag) in [
        (signal_hook::consts::SIGTERM, &term),
        (signal_hook::consts::SIGINT, &term),
        (signal_hook::consts::SIGHUP, &hup),
    ] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(flag)) {
            return fail(&format!("cannot handle signal {sig}: {e}"));
        }
    }
    let metrics_stop = Arc::new(AtomicBool::new(false));
    let metrics_thread = match &args.metrics {
        None => None,
        Some(addr) => {
            let s = Arc::clone(&shared);
            match net::service::serve_text(
                addr,
                Arc::clone(&metrics_stop),
                Arc::new(move || {
                    let pending = s.pairing.lock().map(|m| m.len()).unwrap_or(0);
                    s.metrics.render(
                        &s.pool,
                        s.connections.load(Ordering::Relaxed),
                        pending,
                        s.dealings.as_deref(),
                    )
                }),
            ) {
                Ok(t) => Some(t),
                Err(e) => return fail(&format!("--metrics: {e}")),
            }
        }
    };
    let role = if Some(me) == shared.dep.dealer {
        "dealer"
    } else {
        "model owner"
    };
    tracing::info!(
        party = %args.me,
        role,
        model = %shared.plan().model,
        plan = %&net::hex(&shared.fp.digest())[..16],
        listen = %listen,
        max_sessions,
        queue,
        "serving"
    );
    // Also on standard error for scripts waiting for the port.
    eprintln!("{}: serving {} on {listen}", args.me, shared.plan().model);
    // The dealer's streams dealt ahead, filled in the background until the
    // service stops.
    let filler = shared.dealings.clone().map(|d| {
        let stop = Arc::clone(&term);
        std::thread::Builder::new()
            .name("veil-deal-ahead".into())
            .spawn(move || {
                if let Err(e) = d.run_filler(&stop) {
                    tracing::warn!(error = %e, "dealing ahead stopped; sessions deal as they start");
                }
            })
    });
    let filler = match filler.transpose() {
        Ok(f) => f,
        Err(e) => return fail(&format!("--deal-ahead: cannot start a thread: {e}")),
    };
    if shared.dealings.is_some() {
        tracing::info!(
            streams = args.deal_ahead,
            batches = ?args.deal_ahead_batch,
            "dealing ahead"
        );
    }
    let deny_path = args.deny.clone();
    let pool_stop = Arc::clone(&term);
    net::service::accept_until(
        &listener,
        &pool_stop,
        || {
            if hup.swap(false, Ordering::SeqCst) {
                match &deny_path {
                    Some(p) => match read_deny(p) {
                        Ok(d) => {
                            tracing::info!(entries = d.len(), "deny list reloaded");
                            shared.tls.set_deny(d);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "deny list not reloaded; keeping the old one")
                        }
                    },
                    None => tracing::info!("SIGHUP: no --deny file to reload"),
                }
            }
            expire_pairing(&shared);
        },
        |sock, from| {
            let open = shared.connections.fetch_add(1, Ordering::SeqCst);
            if open >= shared.args.max_connections {
                shared.connections.fetch_sub(1, Ordering::SeqCst);
                shared.metrics.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%from, open, "connection dropped: too many open connections");
                return;
            }
            let s = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("veil-conn-{from}"))
                .spawn(move || {
                    let _open = Open(&s.connections);
                    if Some(s.me) == s.dep.dealer {
                        dealer_connection(&s, sock, from);
                    } else {
                        owner_connection(&s, sock, from);
                    }
                });
            if let Err(e) = spawned {
                shared.connections.fetch_sub(1, Ordering::SeqCst);
                tracing::warn!(%from, error = %e, "connection dropped: no thread for it");
            }
        },
        |e| tracing::warn!(error = %e, "accepting a connection failed"),
    );
    drop(listener);
    shared.stop.store(true, Ordering::SeqCst);
    let drain = Instant::now() + args.drain_timeout;
    let (active, queued) = shared.pool.depth();
    tracing::info!(
        active,
        queued,
        "stopping: no new connections; draining sessions in flight"
    );
    while shared.connections.load(Ordering::SeqCst) > 0 && Instant::now() < drain {
        expire_pairing(&shared);
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = shared.connections.load(Ordering::SeqCst);
    if let Some(f) = filler {
        // `term` is set: it stops within a second, after the stream it is on.
        let _ = f.join();
    }
    metrics_stop.store(true, Ordering::SeqCst);
    if let Some(t) = metrics_thread {
        let _ = t.join();
    }
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let m = &shared.metrics;
    if left > 0 {
        tracing::warn!(
            connections = left,
            "drain deadline passed; closing the rest"
        );
    }
    tracing::info!(
        ok = g(&m.ok),
        failed = g(&m.failed),
        busy = g(&m.busy),
        refused = g(&m.refused),
        timed_out = g(&m.timed_out),
        rejected = g(&m.rejected),
        "stopped"
    );
    ExitCode::SUCCESS
}

/// Decrements the count of open connections when a connection's thread ends.
struct Open<'a>(&'a AtomicUsize);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn read_deny(path: &Path) -> Result<DenyList, String> {
    std::fs::read_to_string(path)
        .map(|t| DenyList::parse(&t))
        .map_err(|e| format!("--deny: cannot read `{}`: {e}", path.display()))
}

/// Wait for the next request on `conn` until `until`, giving up early when
/// the service stops. `Ok(None)`: closed, silent past `until`, or stopping.
fn next_request(
    s: &Shared,
    conn: &mut Conn,
    until: Instant,
    first: bool,
) -> Result<Option<Vec<u8>>, NetError> {
    loop {
        if conn.poll(net::WAIT_SLICE)? {
            return match conn.recv(Duration::from_millis(1)) {
                Ok(f) => Ok(Some(f)),
                // Closed between sessions: the client is done.
                Err(NetError::Peer(_)) if !first => Ok(None),
                Err(e) => Err(e),
            };
        }
        if Instant::now() >= until {
            return Err(NetError::Peer(format!(
                "silent for {:.1} s",
                if first { s.args.handshake } else { s.args.idle }.as_secs_f64()
            )));
        }
        if s.stop.load(Ordering::SeqCst) && !first {
            return Ok(None);
        }
    }
}

/// What a session reports in its log line.
struct Record<'a> {
    id: &'a str,
    client: &'a Identity,
    batch: u64,
    started: Instant,
}

fn log_session(s: &Shared, r: &Record<'_>, result: &Result<runtime::exec::Outcome, String>) {
    let total = r.started.elapsed();
    let ms = |d: Duration| (d.as_secs_f64() * 1e4).round() / 10.0;
    let m = &s.metrics;
    match result {
        Ok(o) => {
            m.ok.fetch_add(1, Ordering::Relaxed);
            m.observe(total);
            let st = &o.stats;
            m.bytes_sent.fetch_add(st.bytes_sent, Ordering::Relaxed);
            m.bytes_received
                .fetch_add(st.bytes_received, Ordering::Relaxed);
            tracing::info!(
                session = r.id,
                client = %r.client,
                batch = r.batch,
                bytes_sent = st.bytes_sent,
                bytes_received = st.bytes_received,
                rounds = st.rounds,
                setup_ms = ms(st.setup),
                preprocessing_ms = ms(st.preprocessing),
                online_ms = ms(st.online),
                total_ms = ms(total),
                outcome = "ok",
                "session"
            );
        }
        Err(e) => {
            let timed_out = e.contains("timed out");
            if timed_out {
                m.timed_out.fetch_add(1, Ordering::Relaxed);
            } else {
                m.failed.fetch_add(1, Ordering::Relaxed);
            }
            m.observe(total);
            tracing::warn!(
                session = r.id,
                client = %r.client,
                batch = r.batch,
                total_ms = ms(total),
                outcome = if timed_out { "timed_out" } else { "failed" },
                error = %e,
                "session"
            );
        }
    }
}

/// The executor's options for a session of this service.
fn session_options(s: &Shared) -> runtime::exec::Options {
    let mut opts = runtime::exec::Options::default();
    opts.timeout = s.args.idle;
    opts.max_memory = (!s.memory_fits_max_batch).then_some(s.args.max_memory);
    opts.max_dim = Some(s.args.max_batch);
    opts.dealings = s.dealings.clone();
    // The model owner's RLWE weights, made ready once for every session.
    opts.rlwe_weights = Some(s.rlwe_weights.clone());
    opts
}

/// The model owner's side of one client connection: requests, one session each.
fn owner_connection(s: &Shared, sock: std::net::TcpStream, from: std::net::SocketAddr) {
    let plan = s.plan();
    let client_name = plan.party_name(s.dep.client).to_string();
    let me_name = plan.party_name(s.me).to_string();
    let hs_deadline = Instant::now() + s.args.handshake;
    let mut conn = match s.tls.accept(sock, from, hs_deadline) {
        Ok(c) => c,
        Err(e) => {
            s.metrics.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%from, reason = %e, "connection dropped");
            return;
        }
    };
    conn.set_name(&client_name);
    let client = conn.identity().clone();
    let fp = &s.fp;
    // The hello to the dealer, built once (each session sets its id, sizes
    // and client).
    let dealer_hello = s.dep.dealer.and_then(|d| {
        let entry = s.dep.entries[d as usize].as_ref()?;
        Some(ServiceHello {
            client: net::hex(&client.fingerprint),
            ..ServiceHello::new(&me_name, &entry.name, fp, "")
        })
    });
    let mut opts = session_options(s);
    // Without a dealer the OT extension with this client is kept between
    // its sessions (dropped with the connection).
    opts.ot_link = Some(std::sync::Arc::new(runtime::exec::OtLink::new()));
    let mut first = true;
    loop {
        let until = Instant::now() + if first { s.args.handshake } else { s.args.idle };
        let frame = match next_request(
            s,
            &mut conn,
            until.min(if first { hs_deadline } else { until }),
            first,
        ) {
            Ok(Some(f)) => f,
            Ok(None) => {
                conn.close();
                return;
            }
            Err(e) => {
                if first {
                    s.metrics.rejected.fetch_add(1, Ordering::Relaxed);
                }
                tracing::warn!(%from, client = %client, reason = %e, "connection closed");
                return;
            }
        };
        first = false;
        let started = Instant::now();
        let refuse = |conn: &mut Conn, reason: String| {
            s.metrics.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%from, client = %client, reason = %reason, outcome = "refused", "session");
            let _ = conn.send(
                &ServiceReply::Refused { reason }.to_bytes(),
                Instant::now() + s.args.handshake,
            );
        };
        let hello = match ServiceHello::parse(&frame, &client_name)
            .and_then(|h| h.check(&client_name, &me_name, fp, "").map(|()| h))
        {
            Ok(h) => h,
            Err(e) => {
                refuse(&mut conn, e.to_string());
                return;
            }
        };
        if let Some((name, n)) = hello.dims.iter().find(|(_, n)| *n > s.args.max_batch) {
            refuse(
                &mut conn,
                format!(
                    "`{}` = {n} is more than this service's --max-batch of {}: send the rows \
                     in smaller batches",
                    name.chars().take(32).collect::<String>(),
                    s.args.max_batch
                ),
            );
            return;
        }
        let batch = hello.dims.iter().map(|(_, n)| *n).max().unwrap_or(0);
        let slot = if s.stop.load(Ordering::SeqCst) {
            Err("the service is stopping; try again later (or another replica)".to_string())
        } else {
            s.pool.acquire(s.args.queue_wait, &s.stop)
        };
        let _slot = match slot {
            Ok(slot) => slot,
            Err(reason) => {
                s.metrics.busy.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%from, client = %client, reason = %reason, outcome = "busy", "session");
                let _ = conn.send(
                    &ServiceReply::Busy { reason }.to_bytes(),
                    Instant::now() + s.args.handshake,
                );
                conn.close();
                return;
            }
        };
        let id = net::service::new_session_id();
        let record = Record {
            id: &id,
            client: &client,
            batch,
            started,
        };
        let deadline = started + s.args.session;
        if let Err(e) = conn.send(
            &ServiceReply::Ok {
                session: id.clone(),
            }
            .to_bytes(),
            deadline,
        ) {
            log_session(s, &record, &Err(e.to_string()));
            return;
        }
        let n = plan.parties.len();
        let mut peers: Vec<Option<Conn>> = (0..n).map(|_| None).collect();
        peers[s.dep.client as usize] = Some(conn);
        if let (Some(d), Some(dialer), Some(dealer_hello)) =
            (s.dep.dealer, &s.dealer, &dealer_hello)
        {
            let entry = s.dep.entries[d as usize].as_ref().expect("listed");
            let joined = idle_dealer_conn(s)
                .map(Ok)
                .unwrap_or_else(|| {
                    dialer.dial(
                        &entry.name,
                        &entry.address,
                        (Instant::now() + s.args.connect).min(deadline),
                    )
                })
                .and_then(|mut dc| {
                    let h = ServiceHello {
                        session: id.clone(),
                        dims: hello.dims.clone(),
                        ..dealer_hello.clone()
                    };
                    dc.send(&h.to_bytes(), deadline)?;
                    Ok(dc)
                });
            match joined {
                Ok(dc) => peers[d as usize] = Some(dc),
                Err(e) => {
                    log_session(
                        s,
                        &record,
                        &Err(format!("cannot reach the dealer {}: {e}", entry.name)),
                    );
                    return;
                }
            }
        }
        let (mut t, ids) = TcpTransport::from_conns(
            &me_name,
            peers,
            s.args.idle,
            s.args.max_frame,
            Some(deadline),
        );
        let result = runtime::exec::run_party(
            &s.valid.valid(),
            s.me,
            &plan::views(&s.inputs),
            &mut t,
            &opts,
        )
        .map_err(|e| e.to_string());
        let mut conns = t.into_conns(ids);
        log_session(s, &record, &result);
        if let Some(d) = s.dep.dealer {
            if let Some(dc) = conns[d as usize].take() {
                match (&result, s.dealer_idle.lock()) {
                    (Ok(_), Ok(mut idle)) if idle.len() < s.pool.max => {
                        idle.push((dc, Instant::now()))
                    }
                    _ => dc.close(),
                }
            }
        }
        match (result, conns[s.dep.client as usize].take()) {
            (Ok(_), Some(c)) => conn = c,
            _ => return,
        }
    }
}

/// A connection to the dealer left open by an earlier session, if one is
/// still good: not closed by the dealer, and idle for less than half the
/// idle timeout (after which the dealer may close it).
fn idle_dealer_conn(s: &Shared) -> Option<Conn> {
    loop {
        let (mut c, since) = s.dealer_idle.lock().ok()?.pop()?;
        if since.elapsed() < s.args.idle / 2 && !c.is_closed() {
            return Some(c);
        }
    }
}

/// The dealer's side of one connection, the model owner's or a client's:
/// for each session, its hello, then the pairing with the other side. The
/// side that arrives second runs the session in its thread and hands the
/// first side's connection back, so both carry the next session.
fn dealer_connection(s: &Shared, sock: std::net::TcpStream, from: std::net::SocketAddr) {
    let plan = s.plan();
    let hs_deadline = Instant::now() + s.args.handshake;
    let mut conn = match s.tls.accept(sock, from, hs_deadline) {
        Ok(c) => c,
        Err(e) => {
            s.metrics.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%from, reason = %e, "connection dropped");
            return;
        }
    };
    let side = if Some(conn.identity().fingerprint) == s.server_fp {
        Side::Server
    } else {
        Side::Client
    };
    let peer = match side {
        Side::Server => s.dep.server,
        Side::Client => s.dep.client,
    };
    let peer_name = plan.party_name(peer).to_string();
    conn.set_name(&peer_name);
    let me_name = plan.party_name(s.me).to_string();
    let fp = &s.fp;
    let who = conn.identity().clone();
    let mut first = true;
    loop {
        let until = if first {
            hs_deadline
        } else {
            Instant::now() + s.args.idle
        };
        let hello = match next_request(s, &mut conn, until, first).and_then(|f| match f {
            None => Ok(None),
            Some(f) => ServiceHello::parse(&f, &peer_name)
                .and_then(|h| {
                    h.check(&peer_name, &me_name, fp, &h.session.clone())
                        .map(|()| h)
                })
                .map(Some),
        }) {
            Ok(Some(h)) if h.session.len() == 32 => h,
            Ok(None) => {
                conn.close();
                return;
            }
            Ok(Some(_)) => {
                s.metrics.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%from, client = %who, "connection dropped: no session id");
                return;
            }
            Err(e) => {
                if first {
                    s.metrics.rejected.fetch_add(1, Ordering::Relaxed);
                }
                tracing::warn!(%from, client = %who, reason = %e, "connection closed");
                return;
            }
        };
        first = false;
        // Pair with the other side, or wait for it.
        let (back, returned) = std::sync::mpsc::channel();
        let pairing = match s.pairing.lock() {
            Err(_) => Pairing::Drop,
            Ok(mut map) => match map.remove(&hello.session) {
                Some(w) if w.side != side => Pairing::Paired(Box::new((w, conn, hello))),
                Some(w) => {
                    // The same side twice: keep the first, drop this one.
                    tracing::warn!(%from, session = %hello.session, "connection dropped: its side of the session is already here");
                    map.insert(hello.session.clone(), w);
                    Pairing::Drop
                }
                None if map.len() >= s.args.max_connections => {
                    s.metrics.busy.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%from, "connection dropped: too many sessions waiting to be paired");
                    Pairing::Drop
                }
                None => {
                    map.insert(
                        hello.session.clone(),
                        Waiting {
                            side,
                            conn,
                            hello,
                            since: Instant::now(),
                            back,
                        },
                    );
                    Pairing::Parked
                }
            },
        };
        let (other, mine, hello) = match pairing {
            Pairing::Drop => return,
            // The other side's thread runs the session and hands this
            // connection back; if it never comes (expired, or the session
            // failed), the sender is dropped and this thread ends.
            Pairing::Parked => match returned.recv() {
                Ok(c) => {
                    conn = c;
                    continue;
                }
                Err(_) => return,
            },
            Pairing::Paired(p) => *p,
        };
        let Waiting {
            conn: other_conn,
            hello: other_hello,
            back: other_back,
            ..
        } = other;
        let (server, server_hello, client) = match side {
            Side::Server => (mine, hello, other_conn),
            Side::Client => (other_conn, other_hello, mine),
        };
        match dealer_session(s, &me_name, server, &server_hello, client) {
            Some((server, client)) => {
                let (mine, theirs) = match side {
                    Side::Server => (server, client),
                    Side::Client => (client, server),
                };
                let _ = other_back.send(theirs);
                conn = mine;
            }
            None => return,
        }
    }
}

/// One session at the dealer; the two connections back if it succeeded.
fn dealer_session(
    s: &Shared,
    me_name: &str,
    server: Conn,
    server_hello: &ServiceHello,
    client: Conn,
) -> Option<(Conn, Conn)> {
    let plan = s.plan();
    let started = Instant::now();
    let id = server_hello.session.clone();
    let client_id = client.identity().clone();
    let batch = server_hello.dims.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let record = Record {
        id: &id,
        client: &client_id,
        batch,
        started,
    };
    if server_hello.client != net::hex(&client_id.fingerprint) {
        log_session(
            s,
            &record,
            &Err("the client that joined is not the one the model owner served".into()),
        );
        return None;
    }
    let _slot = match s.pool.acquire(s.args.queue_wait, &s.stop) {
        Ok(slot) => slot,
        Err(reason) => {
            s.metrics.busy.fetch_add(1, Ordering::Relaxed);
            tracing::info!(session = %id, reason = %reason, outcome = "busy", "session");
            return None;
        }
    };
    let n = plan.parties.len();
    let mut peers: Vec<Option<Conn>> = (0..n).map(|_| None).collect();
    peers[s.dep.server as usize] = Some(server);
    peers[s.dep.client as usize] = Some(client);
    let (mut t, ids) = TcpTransport::from_conns(
        me_name,
        peers,
        s.args.idle,
        s.args.max_frame,
        Some(started + s.args.session),
    );
    let result = runtime::exec::run_party(
        &s.valid.valid(),
        s.me,
        &BTreeMap::new(),
        &mut t,
        &session_options(s),
    )
    .map_err(|e| e.to_string());
    log_session(s, &record, &result);
    let mut conns = t.into_conns(ids);
    let server = conns[s.dep.server as usize].take();
    let client = conns[s.dep.client as usize].take();
    match (result, server, client) {
        (Ok(_), Some(server), Some(client)) => Some((server, client)),
        _ => None,
    }
}

/// Drops the dealer's half-open sessions whose other side never came.
fn expire_pairing(s: &Shared) {
    if Some(s.me) != s.dep.dealer {
        return;
    }
    let expired: Vec<Waiting> = match s.pairing.lock() {
        Ok(mut map) => {
            let old: Vec<String> = map
                .iter()
                .filter(|(_, w)| w.since.elapsed() > s.args.connect)
                .map(|(k, _)| k.clone())
                .collect();
            old.iter().filter_map(|k| map.remove(k)).collect()
        }
        Err(_) => return,
    };
    for w in expired {
        s.metrics.timed_out.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            session = %w.hello.session,
            waiting = ?w.side,
            peer = %w.conn.identity(),
            outcome = "timed_out",
            "session: the other side never joined"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_queues_then_answers_busy() {
        let pool = Pool::new(1, 1);
        let stop = AtomicBool::new(false);
        let first = pool.acquire(Duration::from_secs(5), &stop).unwrap();
        std::thread::scope(|s| {
            // The second waits in the queue and gets the slot when it frees.
            let waiter = s.spawn(|| pool.acquire(Duration::from_secs(5), &stop).map(|_| ()));
            let deadline = Instant::now() + Duration::from_secs(5);
            while pool.depth() != (1, 1) {
                assert!(Instant::now() < deadline, "{:?}", pool.depth());
                std::thread::sleep(Duration::from_millis(1));
            }
            // The queue is full: a third is told the service is busy.
            let e = pool
                .acquire(Duration::from_secs(5), &stop)
                .err()
                .expect("busy");
            assert!(e.contains("busy (1 sessions running, 1 waiting)"), "{e}");
            drop(first);
            assert!(waiter.join().unwrap().is_ok());
        });
        assert_eq!(pool.depth(), (0, 0));
        // A queued request gives up after its wait, or when the service stops.
        let _held = pool.acquire(Duration::from_secs(5), &stop).unwrap();
        let e = pool
            .acquire(Duration::from_millis(30), &stop)
            .err()
            .unwrap();
        assert!(e.contains("waited"), "{e}");
        stop.store(true, Ordering::SeqCst);
        let e = pool.acquire(Duration::from_secs(5), &stop).err().unwrap();
        assert!(e.contains("stopping"), "{e}");
        assert_eq!(pool.depth(), (1, 0));
    }

    #[test]
    fn metrics_count_sessions_and_latency_buckets() {
        let m = Metrics::default();
        m.ok.fetch_add(2, Ordering::Relaxed);
        m.observe(Duration::from_millis(3));
        m.observe(Duration::from_millis(40));
        let text = m.render(&Pool::new(4, 4), 3, 0, None);
        assert!(
            text.contains("veil_sessions_total{outcome=\"ok\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("veil_session_seconds_bucket{le=\"0.002\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("veil_session_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("veil_session_seconds_bucket{le=\"0.05\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("veil_pool{state=\"connections\"} 3\n"),
            "{text}"
        );
    }

    #[test]
    fn fractional_seconds_parse_and_nonsense_is_refused() {
        assert_eq!(parse_secs("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_secs("30"), Ok(Duration::from_secs(30)));
        assert!(parse_secs("0").is_err());
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
    }
}
