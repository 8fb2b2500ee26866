//! The executor: one party interprets its program from the plan against a
//! [`Transport`]. The same code runs every party in one process (threads
//! and channels, [`run_in_process`]) and, with another transport, as
//! separate processes.
//!
//! A run has three phases:
//! 1. session setup: each party binds the symbolic dimensions its inputs
//!    determine (such as `batch`) and tells the others; sizes are public;
//! 2. preprocessing: the plan's instructions before the first input —
//!    keys and correlated randomness (from the dealer, or two-party);
//! 3. online: everything else.
//!
//! Inputs are checked (shape, finiteness, declared range) before any
//! cryptography runs. Every received frame is decoded and checked against
//! the register it fills; a malformed message is an error, never a panic.

pub mod ahead;
pub mod chunks;
mod dealerfree;
pub mod memory;
pub(crate) mod nonlinear;
mod ops;
pub mod pool;
mod rlwe_ops;
pub mod transport;
mod weights;

pub use dealerfree::OtLink;
pub use transport::{ChannelTransport, Transport};
pub use weights::WeightCache;
/// The wire format, its own crate: `runtime::exec::wire` paths keep working.
pub use wire;

use crate::paillier::{Ciphertext, Keypair, PublicKey};
use crate::sharing::{
    CorrelationRequest, Correlations, Dealer, DealerMsg, DealerSource, Engine, FixedPoint,
    HolderState, MulState, Party as Role, SeedMsg, SelectKind, Share, TruncMode, TruncState,
    WrapTruncState,
};
use plan::{Correlation, Instr, Kind, PartyIdx, Plan, Reg, Tensor, TensorRef, ValidPlan};
use std::collections::VecDeque;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wire::Wire;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input data (shape, range, missing): reported before any cryptography.
    Input,
    /// A peer disconnected, timed out or could not be reached.
    Transport,
    /// A peer sent something that does not fit the plan.
    Protocol,
    /// A cryptographic operation failed (bad key, overflow, ...).
    Crypto,
}

/// Why a run failed. `message` is what the user reads (it names the party
/// and, as before, the cause's text); `source` is the typed cause where one
/// exists (a transport's [`std::io::Error`], a sharing or Paillier error,
/// the network's own error), for callers that walk the chain or downcast.
/// Two errors are equal when their kind and message are.
#[derive(Clone, Debug)]
pub struct ExecError {
    pub kind: ErrorKind,
    pub message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl ExecError {
    pub fn new(kind: ErrorKind, m: impl Into<String>) -> Self {
        ExecError {
            kind,
            message: m.into(),
            source: None,
        }
    }
    pub fn input(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Input, m)
    }
    pub fn transport(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transport, m)
    }
    pub fn protocol(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Protocol, m)
    }
    pub fn crypto(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Crypto, m)
    }

    /// The same error, with `source` as its typed cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The same error (kind and cause kept) with `prefix: ` before its message.
    pub fn context(mut self, prefix: impl fmt::Display) -> Self {
        self.message = format!("{prefix}: {}", self.message);
        self
    }
}

impl PartialEq for ExecError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for ExecError {}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<crate::sharing::SharingError> for ExecError {
    fn from(e: crate::sharing::SharingError) -> Self {
        ExecError::protocol(e.to_string()).with_source(e)
    }
}

impl From<crate::paillier::PaillierError> for ExecError {
    fn from(e: crate::paillier::PaillierError) -> Self {
        ExecError::crypto(e.to_string()).with_source(e)
    }
}

/// How a run is configured beyond the plan.
#[derive(Clone, Debug)]
pub struct Options {
    /// Paillier key size; `None`: the plan's (at least 2048 bits).
    key_bits: Option<u64>,
    insecure_keys: bool,
    /// How long a party waits for a message before giving up.
    pub timeout: Duration,
    /// Where the parties count their progress, for a caller that shows it.
    pub progress: Option<Arc<Progress>>,
    /// Refuse to run a party whose estimated memory ([`memory::estimate`],
    /// at the sizes bound at session setup) exceeds this many bytes.
    pub max_memory: Option<u64>,
    /// Refuse a session in which a peer announces a symbolic dimension
    /// (such as `batch`) above this (a service's maximum batch size).
    pub max_dim: Option<u64>,
    /// The dealer: streams computed ahead, taken when one is ready for the
    /// session's plan and sizes (a service's dealer).
    pub dealings: Option<Arc<pool::DealingPool>>,
    /// Without a dealer: the OT extensions kept between this party's
    /// sessions with the same peer ([`OtLink`]); `None`, base OTs in
    /// every session.
    pub ot_link: Option<Arc<OtLink>>,
    /// The model owner's RLWE weights made ready once and kept between
    /// sessions ([`WeightCache`]); `None`, every session makes them.
    pub rlwe_weights: Option<Arc<WeightCache>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            key_bits: None,
            insecure_keys: false,
            timeout: Duration::from_secs(120),
            progress: None,
            max_memory: None,
            max_dim: None,
            dealings: None,
            ot_link: None,
            rlwe_weights: None,
        }
    }
}

/// How far a run has got, counted by the parties as they go, for a caller
/// that shows it (the runtime does no I/O). The slow part of a run without
/// a dealer is the two-party preprocessing (party 0's Paillier encryptions,
/// or the pieces of OT it answers); the rest is one party's program.
#[derive(Debug, Default)]
pub struct Progress {
    /// Ciphertexts party 0 encrypts for the two-party preprocessing with
    /// Paillier.
    pub encrypt_total: AtomicU64,
    pub encrypt_done: AtomicU64,
    /// Pieces (2^18 OTs each) party 0 answers in the two-party
    /// preprocessing by OT.
    pub ot_total: AtomicU64,
    pub ot_done: AtomicU64,
    /// Instructions of the counting party's program.
    pub steps_total: AtomicU64,
    pub steps_done: AtomicU64,
    /// The party that counts its steps; `None`: the first computing party
    /// (in one process every party shares this).
    pub party: Option<PartyIdx>,
}

impl Options {
    /// Test-only: Paillier keys of `bits` (below 2048 allowed) so tests run quickly.
    pub fn with_small_keys_for_tests(bits: u64) -> Options {
        Options {
            key_bits: Some(bits),
            insecure_keys: true,
            ..Options::default()
        }
    }
}

/// What a party measured during its run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub frames_sent: u64,
    /// Times this party waited for a message after sending (communication rounds).
    pub rounds: u32,
    pub setup: Duration,
    pub preprocessing: Duration,
    pub online: Duration,
    /// Of `bytes_sent`, those sent in the online phase (from the first
    /// input on).
    pub online_bytes_sent: u64,
    /// The most bytes the party's registers held at once (as
    /// [`memory::estimate`] counts them in [`memory::PartyMemory::registers`]).
    pub peak_register_bytes: u64,
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub outputs: Vec<(String, Tensor)>,
    pub stats: Stats,
}

/// Where a program's online phase starts, for [`Stats::preprocessing`]:
/// after its last step that only the preprocessing has (correlations,
/// keys, the dealer's message, RLWE preparation and masked products' work
/// on their masks) and the sends right after it, or at its first input or
/// constant if that comes later. (A model owner's weights that a masked
/// product's preprocessing reads are read before it.)
fn online_from(program: &[Instr]) -> usize {
    let masked: HashSet<Reg> = program
        .iter()
        .filter_map(|i| match i {
            Instr::RlweMaskedOpen { pre, .. } | Instr::RlweMaskedClose { pre, .. } => Some(*pre),
            _ => None,
        })
        .collect();
    let first_input = program
        .iter()
        .position(|i| matches!(i, Instr::Input { .. } | Instr::Const { .. }))
        .unwrap_or(program.len());
    let Some(last) = program.iter().rposition(|i| match i {
        Instr::GenerateCorrelations { .. }
        | Instr::Deal { .. }
        | Instr::Expand { .. }
        | Instr::KeyGen { .. }
        | Instr::RlweMask { .. }
        | Instr::RlwePrepare { .. }
        | Instr::RlwePrepareRespond { .. }
        | Instr::RlwePrepareFinish { .. } => true,
        Instr::RlweQuery { dst, .. }
        | Instr::RlweRespond { dst, .. }
        | Instr::RlweFinish { dst, .. } => masked.contains(dst),
        _ => false,
    }) else {
        return first_input;
    };
    let mut at = last + 1;
    while matches!(program.get(at), Some(Instr::Send { .. })) {
        at += 1;
    }
    at.max(first_input)
}

/// Instructions that use the transport or the peers' keys themselves: every
/// deferred receive is read before them.
fn reads_everything(ins: &Instr) -> bool {
    matches!(
        ins,
        Instr::Nonlinear { .. }
            | Instr::GenerateCorrelations { .. }
            | Instr::KeyGen { .. }
            | Instr::Encrypt { .. }
            | Instr::Hom { .. }
            | Instr::Mask { .. }
            | Instr::DecryptShare { .. }
            | Instr::Rerandomize { .. }
            | Instr::Decrypt { .. }
    )
}

/// Instructions that draw correlations, each the consumer of one group of
/// [`Exec::request_groups`].
fn uses_correlations(ins: &Instr) -> bool {
    matches!(
        ins,
        Instr::BeaverOpen { .. }
            | Instr::TruncOpen { .. }
            | Instr::HolderOpen { .. }
            | Instr::Nonlinear { .. }
    )
}

/// The largest register (in elements) a step may touch while the
/// transport holds small frames back: local work on 4,096 values takes
/// microseconds.
const HOLD_FRAMES_ELEMENTS: u64 = 4096;

/// The `Own` destinations (shares of this party's own clear values) whose
/// only reader is an input-holder product that this party holds: those are
/// encoded and masked in one pass when the product starts
/// ([`Engine::holder_matmul_round1_clear`]) instead of encoded first. For
/// the talk's workload that is the 8 MB batch, read once instead of three
/// times.
fn masked_from_clear(
    program: &plan::Program,
    requests: &[nonlinear::Request],
    me: Role,
) -> HashSet<Reg> {
    // Each register an `Own` writes from a clear source: whether every
    // reader so far is this party's half of an input-holder product, and
    // whether it has one. One pass, one buffer (this runs per session).
    let mut candidates: HashMap<Reg, (bool, bool)> = program
        .instrs
        .iter()
        .filter_map(|ins| match ins {
            Instr::Own { src: Some(_), dst } => Some((*dst, (true, false))),
            _ => None,
        })
        .collect();
    if candidates.is_empty() {
        return HashSet::new();
    }
    let mut reads = Vec::new();
    for ins in &program.instrs {
        reads.clear();
        ins.reads_into(&mut reads);
        for r in &reads {
            let Some((all_holder, seen)) = candidates.get_mut(r) else {
                continue;
            };
            *seen = true;
            *all_holder &= match ins {
                Instr::HolderOpen { x, y, corr, .. } => {
                    x == r
                        && y != r
                        && matches!(
                            requests.get(*corr as usize),
                            Some(CorrelationRequest::HolderMatmulTriple { a_holder, .. }
                                | CorrelationRequest::HolderConvTriple { a_holder, .. }) if *a_holder == me
                        )
                }
                _ => false,
            };
        }
    }
    candidates
        .into_iter()
        .filter(|(_, (all_holder, seen))| *all_holder && *seen)
        .map(|(dst, _)| dst)
        .collect()
}

/// A truncation between its two rounds: with the dealer's pair, or from
/// daBits without a dealer.
enum Truncation {
    Dealer(TruncState),
    DaBits(WrapTruncState),
}

/// A register's value at one party.
enum Value {
    Clear(Tensor),
    /// This party's input number `i` of the plan, read where it is (a batch
    /// of inputs can be large; it is not copied into the register).
    Input(u32),
    /// This party's share of its input number `i`, not encoded yet: the
    /// input-holder product that is its only reader encodes and masks it in
    /// one pass (see [`masked_from_clear`]).
    Unencoded(u32),
    Share(Share),
    Cipher {
        key: PartyIdx,
        shape: Vec<usize>,
        cts: Vec<Ciphertext>,
    },
    Wire(Wire),
    /// The dealer's message to party 1: its first frame, then the
    /// corrections of each instruction that uses correlations, computed on
    /// another thread and sent as they are ready (see [`Dealing`]).
    Dealing(Dealing),
}

/// The dealer's stream to party 1. Party 0 needs only its seed and gets it
/// at once; party 1 gets its corrections in the frames [`dealer_cuts`]
/// lays out, each sent as soon as the dealer's thread has computed it, so
/// party 1 starts on the first product while the dealer still works on the
/// comparisons' corrections.
struct Dealing {
    seed: SeedMsg,
    frames: usize,
    batches: DealingBatches,
}

/// Where a [`Dealing`]'s frames come from.
enum DealingBatches {
    /// Computed on the dealer's thread as the session goes.
    Thread {
        rx: std::sync::mpsc::Receiver<Result<Batch, ExecError>>,
        thread: std::thread::JoinHandle<()>,
    },
    /// Computed ahead, taken from a [`pool::DealingPool`].
    Ready(Vec<Batch>),
}

/// The corrections of the groups `first..end` (of [`request_groups`]),
/// taken from `groups`.
fn deal_batch(
    dealer: &mut Dealer,
    groups: &mut impl Iterator<Item = Vec<nonlinear::Request>>,
    first: usize,
    end: usize,
) -> Result<Batch, ExecError> {
    let corrections = groups
        .take(end - first)
        .flatten()
        .map(|r| dealer.correction(&r))
        .collect::<Result<_, _>>()?;
    Ok(Batch { first, corrections })
}

/// The corrections of one frame of a [`Dealing`]: `groups` of
/// [`Exec::request_groups`] from `first` on.
struct Batch {
    first: usize,
    corrections: Vec<DealerMsg>,
}

/// Party 1's side of [`Dealing`]: where its remaining corrections come from.
struct DealerFeed {
    from: PartyIdx,
    /// Requests per instruction that uses correlations (in program order).
    sizes: Vec<usize>,
    /// The next such instruction.
    next: usize,
    /// Groups received so far (`0..covered`).
    covered: usize,
    /// Where each frame still to come ends.
    ends: VecDeque<usize>,
}

/// The dealer merges consecutive groups into one frame while their work
/// (words of randomness it draws) stays within this.
const DEALER_FRAME_WORK: usize = 1 << 16;

/// Words of randomness the dealer draws for `req`: the measure of its work.
fn dealer_work(req: &nonlinear::Request) -> usize {
    use crate::sharing::CorrelationRequest as R;
    let n = |s: &[usize]| s.iter().fold(1usize, |a, &d| a.saturating_mul(d));
    match req {
        R::ElementwiseTriple { shape } => n(shape).saturating_mul(3),
        R::Trunc { shape, .. } | R::MaskedBits { shape } | R::DaBits { shape } => {
            n(shape).saturating_mul(2)
        }
        R::MatmulTriple { a_shape, b_shape }
        | R::HolderMatmulTriple {
            a_shape, b_shape, ..
        }
        | R::ConvTriple {
            a_shape, b_shape, ..
        }
        | R::HolderConvTriple {
            a_shape, b_shape, ..
        } => n(a_shape).saturating_add(n(b_shape)),
        R::AndTriples { bits } => bits.div_ceil(64).saturating_mul(3),
        R::RandomOts { shape, .. } => n(shape).saturating_mul(3),
        R::OneOf16Ots { count } => count.saturating_mul(2),
        // Key generation: 8 AES blocks per level (63 at most), some 500
        // words' worth at full width.
        R::DcfMsb { shape, bits } => n(shape).saturating_mul(8 * *bits as usize),
    }
}

/// How the dealer cuts party 1's corrections into frames: the group index
/// each frame ends at (exclusive), in order. The first frame carries the
/// seed and takes only groups within [`DEALER_FRAME_WORK`] (it may take
/// none), so a small plan's corrections go out in one frame and a large
/// plan's first product is not held up by the rest. Every later frame
/// takes at least one group. Deterministic, so both ends agree on it.
fn dealer_cuts(groups: &[Vec<nonlinear::Request>]) -> Vec<usize> {
    let work: Vec<usize> = groups
        .iter()
        .map(|g| g.iter().map(dealer_work).sum())
        .collect();
    let mut ends = Vec::new();
    let mut at = 0;
    loop {
        let start = at;
        let mut sum = 0usize;
        while let Some(&w) = work.get(at) {
            let take_anyway = at == start && !ends.is_empty();
            if w > 0 && !take_anyway && sum.saturating_add(w) > DEALER_FRAME_WORK {
                break;
            }
            sum = sum.saturating_add(w);
            at += 1;
        }
        ends.push(at);
        if at == groups.len() {
            return ends;
        }
    }
}

/// A shape with the run's symbolic dimensions bound (its element count
/// checked to fit a `usize`).
fn concrete(shape: &plan::Shape, dims: &BTreeMap<String, usize>) -> Result<Vec<usize>, ExecError> {
    plan::concrete(shape, dims).map_err(ExecError::input)
}

/// A product's left operand as the matrix the engines multiply (`[b, m,
/// k]` as `[b·m, k]`, [`ops::rows_shape`]).
fn rows(shape: Vec<usize>) -> Vec<usize> {
    ops::rows_shape(&shape).unwrap_or(shape)
}

/// The plan's correlations as requests, at the run's sizes.
fn bind_requests(
    plan: &Plan,
    dims: &BTreeMap<String, usize>,
) -> Result<Vec<nonlinear::Request>, ExecError> {
    plan.correlations
        .iter()
        .map(|c| {
            Ok(match c {
                Correlation::Elementwise { shape } => CorrelationRequest::ElementwiseTriple {
                    shape: concrete(shape, dims)?,
                },
                Correlation::MatMul { lhs, rhs } => CorrelationRequest::MatmulTriple {
                    a_shape: rows(concrete(lhs, dims)?),
                    b_shape: concrete(rhs, dims)?,
                },
                Correlation::Conv { input, window, rhs } => CorrelationRequest::ConvTriple {
                    a_shape: concrete(input, dims)?,
                    window: window.clone(),
                    b_shape: concrete(rhs, dims)?,
                },
                Correlation::HolderMatMul {
                    lhs,
                    rhs,
                    lhs_holder,
                } => CorrelationRequest::HolderMatmulTriple {
                    a_shape: rows(concrete(lhs, dims)?),
                    b_shape: concrete(rhs, dims)?,
                    a_holder: role_of(plan, *lhs_holder)?,
                },
                Correlation::HolderConv {
                    input,
                    window,
                    rhs,
                    lhs_holder,
                } => CorrelationRequest::HolderConvTriple {
                    a_shape: concrete(input, dims)?,
                    window: window.clone(),
                    b_shape: concrete(rhs, dims)?,
                    a_holder: role_of(plan, *lhs_holder)?,
                },
                Correlation::Trunc { shape, bits } => CorrelationRequest::Trunc {
                    shape: concrete(shape, dims)?,
                    frac_bits: *bits,
                },
                Correlation::TruncDaBits { shape, .. } => CorrelationRequest::DaBits {
                    shape: concrete(shape, dims)?,
                },
            })
        })
        .collect()
}

/// Every correlation request the computing parties will make, in order
/// (the plan's own, `requests`, and those of comparison protocols, which
/// never truncate, so the order is the same in both modes), cut into one
/// group per instruction that [`uses_correlations`] (in the leader's
/// program order; a group may be empty).
fn request_groups(
    plan: &Plan,
    dims: &BTreeMap<String, usize>,
    requests: &[nonlinear::Request],
) -> Result<Vec<Vec<nonlinear::Request>>, ExecError> {
    let leader = plan
        .programs
        .iter()
        .find(|p| plan.parties[p.party as usize].role == plan::Role::Compute)
        .ok_or_else(|| ExecError::protocol("the plan has no computing party"))?;
    let kind = select_kind(plan);
    let mut groups = Vec::new();
    for ins in leader.instrs.iter().filter(|i| uses_correlations(i)) {
        groups.push(match ins {
            Instr::BeaverOpen { corr, .. }
            | Instr::TruncOpen { corr, .. }
            | Instr::HolderOpen { corr, .. } => {
                let r = requests
                    .get(*corr as usize)
                    .ok_or_else(|| ExecError::protocol("unknown correlation"))?;
                vec![r.clone()]
            }
            Instr::Nonlinear { op, args, bits, .. } => {
                let shapes = args
                    .iter()
                    .map(|r| concrete(&plan.reg(*r).shape, dims))
                    .collect::<Result<Vec<_>, _>>()?;
                nonlinear::request_order(op, &shapes, kind, *bits)?
            }
            _ => Vec::new(),
        });
    }
    Ok(groups)
}

/// How the plan's comparisons select: by the OT multiplexer where the
/// correlations come from OT, else by a Beaver product (dealer, Paillier),
/// after an MSB by DCF keys where the dealer deals them. Both parties and
/// the preprocessing read it from the plan.
pub(crate) fn select_kind(plan: &Plan) -> SelectKind {
    if plan.dealer_comparisons() == plan::DealerComparisons::Dcf {
        return SelectKind::Dcf;
    }
    let ot = plan.programs.iter().any(|p| {
        p.instrs.iter().any(|i| {
            matches!(
                i,
                Instr::GenerateCorrelations {
                    engine: plan::CorrelationEngine::Ot,
                    ..
                }
            )
        })
    });
    if ot {
        SelectKind::Ot
    } else {
        SelectKind::Beaver
    }
}

/// The sharing role (P0 = leader, P1) of a computing party.
fn role_of(plan: &Plan, p: PartyIdx) -> Result<Role, ExecError> {
    let compute: Vec<PartyIdx> = (0..plan.parties.len() as u32)
        .filter(|q| plan.parties[*q as usize].role == plan::Role::Compute)
        .collect();
    match compute.iter().position(|q| *q == p) {
        Some(0) => Ok(Role::P0),
        Some(_) => Ok(Role::P1),
        None => Err(ExecError::protocol(
            "an input-holder triple names a party that does not compute",
        )),
    }
}

struct Exec<'a> {
    plan: &'a Plan,
    /// Borrowed for the run (the executor only reads them).
    inputs: &'a BTreeMap<String, TensorRef<'a>>,
    me: PartyIdx,
    role: Option<Role>,
    opts: &'a Options,
    dims: BTreeMap<String, usize>,
    regs: Vec<Option<Value>>,
    fp: FixedPoint,
    engine: Option<Engine<Box<dyn Correlations + Send>>>,
    mul_states: HashMap<Reg, MulState>,
    holder_states: HashMap<Reg, HolderState>,
    trunc_states: HashMap<Reg, Truncation>,
    keypair: Option<Keypair>,
    peer_keys: BTreeMap<PartyIdx, PublicKey>,
    requests: Vec<nonlinear::Request>,
    stats: Stats,
    sent_since_recv: bool,
    feed: Option<DealerFeed>,
    /// `Own` destinations left [`Value::Unencoded`] (see [`masked_from_clear`]).
    unencoded: HashSet<Reg>,
    /// Bytes the registers hold now ([`memory::value_bytes`]).
    held: u64,
    /// Keys, randomness and pending queries of RLWE products.
    rlwe: rlwe_ops::RlweState,
}

/// Run party `me` of `plan` with its `inputs` (by name) over `transport`.
/// The inputs are borrowed, not copied: [`Tensor::view`] (or
/// [`plan::views`]) lends owned tensors, and a caller holding the values
/// elsewhere (a NumPy array) lends them the same way.
/// The plan is a [`ValidPlan`]: [`plan::validate`] is its only constructor,
/// and the executor indexes with its registers and parties.
pub fn run_party(
    plan: &ValidPlan<'_>,
    me: PartyIdx,
    inputs: &BTreeMap<String, TensorRef<'_>>,
    transport: &mut dyn Transport,
    opts: &Options,
) -> Result<Outcome, ExecError> {
    run_party_inner(plan, me, inputs, None, transport, opts)
}

/// [`run_party`], or with `ahead` a run whose late inputs arrive at its
/// gate ([`ahead`]).
fn run_party_inner(
    plan: &ValidPlan<'_>,
    me: PartyIdx,
    inputs: &BTreeMap<String, TensorRef<'_>>,
    ahead: Option<ahead::Ahead<'_>>,
    transport: &mut dyn Transport,
    opts: &Options,
) -> Result<Outcome, ExecError> {
    let plan: &Plan = plan.plan();
    let start = Instant::now();
    // A run ahead receives its late inputs at the gate: they live here, so
    // that the executor can borrow them for the rest of the run.
    let late_inputs: std::cell::OnceCell<BTreeMap<String, Tensor>> = std::cell::OnceCell::new();
    let all_inputs: std::cell::OnceCell<BTreeMap<String, TensorRef<'_>>> =
        std::cell::OnceCell::new();
    let is_dealer = plan
        .parties
        .get(me as usize)
        .map(|p| p.role == plan::Role::Dealer)
        .ok_or_else(|| ExecError::input(format!("the plan has no party {me}")))?;
    let own = if is_dealer {
        if !inputs.is_empty() {
            return Err(ExecError::input("the dealer takes no inputs"));
        }
        BTreeMap::new()
    } else if let Some(a) = &ahead {
        ahead::early_dims(plan, me, inputs, a.dims)?
    } else {
        plan::bind_inputs(plan, Some(me), inputs).map_err(|errs| {
            ExecError::input(
                errs.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?
    };
    if !plan.takes_part(me) {
        // The dealer of a plan compiled without one: nothing to do, and
        // nobody to talk to.
        return Ok(Outcome {
            outputs: Vec::new(),
            stats: Stats::default(),
        });
    }
    let compute: Vec<PartyIdx> = (0..plan.parties.len() as u32)
        .filter(|p| plan.parties[*p as usize].role == plan::Role::Compute)
        .collect();
    let role = compute
        .iter()
        .position(|p| *p == me)
        .map(|i| if i == 0 { Role::P0 } else { Role::P1 });
    let mut ex = Exec {
        plan,
        inputs,
        me,
        role,
        opts,
        dims: own,
        regs: (0..plan.regs.len()).map(|_| None).collect(),
        fp: FixedPoint::new(plan.precision).map_err(ExecError::from)?,
        engine: None,
        mul_states: HashMap::new(),
        holder_states: HashMap::new(),
        trunc_states: HashMap::new(),
        keypair: None,
        peer_keys: BTreeMap::new(),
        requests: Vec::new(),
        stats: Stats::default(),
        sent_since_recv: false,
        feed: None,
        unencoded: HashSet::new(),
        held: 0,
        rlwe: rlwe_ops::RlweState::default(),
    };
    ex.exchange_dims(transport)?;
    if let Some(limit) = opts.max_memory {
        ex.check_memory(limit)?;
    }
    ex.requests = ex.bind_requests()?;
    if let Some(role) = role {
        ex.unencoded = masked_from_clear(plan.program(me), &ex.requests, role);
    }
    if let (plan::RandomnessSource::TwoParty, Some(role)) = (plan.randomness, role) {
        // Correlations (if any) arrive via GenerateCorrelations.
        let store: Box<dyn Correlations + Send> =
            Box::new(crate::sharing::PrecomputedCorrelations::new(role));
        ex.engine = Some(Engine::new(ex.fp, TruncMode::DaBits, store));
    }
    ex.stats.setup = start.elapsed();
    let program = &plan.program(me).instrs;
    let online_start = online_from(program);
    let gate_at = ahead.as_ref().map(|_| ahead::gate_at(plan, me));
    // The phases' clock, which stops while a run ahead waits at its gate.
    let mut t = Instant::now();
    let mut outputs = Vec::new();
    // Receives are read when their values are first needed, not where the
    // program lists them, so a party is not held up by a peer's message it
    // does not need yet (party 0 encodes and masks its input while the
    // dealer is still computing party 1's corrections). Frames from one
    // peer are still read in program order, and everything is read before
    // an instruction that uses the transport or keys itself.
    let mut deferred: VecDeque<(PartyIdx, &[Reg])> = VecDeque::new();
    let name = |e: ExecError| e.context(plan.party_name(me));
    // One party counts its steps for `Options::progress`.
    let progress = opts.progress.as_deref().filter(|p| match p.party {
        Some(q) => q == me,
        None => role == Some(Role::P0),
    });
    if let Some(p) = progress {
        p.steps_total.store(program.len() as u64, Ordering::Relaxed);
    }
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    // RLWE products answered before the dealer-free preprocessing run on
    // their own threads while it runs (the compiler places them there).
    ex.rlwe.overlap = program
        .iter()
        .any(|i| matches!(i, Instr::GenerateCorrelations { .. }));
    // One step past the end: a gate there opens after the last instruction.
    for at in 0..=program.len() {
        if gate_at == Some(at) {
            if let Some(a) = &ahead {
                // Everything before the gate is done, answers included;
                // then the late inputs.
                ex.join_rlwe(None).map_err(name)?;
                for (from, regs) in deferred.drain(..) {
                    ex.receive(from, regs, transport).map_err(name)?;
                }
                transport.flush().map_err(name)?;
                let waited = Instant::now();
                let got = (a.open)().map_err(name)?;
                t += waited.elapsed();
                let late = late_inputs
                    .set(got)
                    .ok()
                    .and_then(|()| late_inputs.get())
                    .ok_or_else(|| name(ExecError::protocol("a gate opened twice")))?;
                let merged = all_inputs.get_or_init(|| ahead::merge(inputs, late));
                ahead::check_late(plan, me, merged, &ex.dims).map_err(name)?;
                ex.inputs = merged;
            }
        }
        let Some(ins) = program.get(at) else {
            break;
        };
        if at == online_start {
            ex.stats.preprocessing = t.elapsed();
            ex.stats.online_bytes_sent = ex.stats.bytes_sent;
        }
        if let Some(p) = progress {
            p.steps_done.store(at as u64, Ordering::Relaxed);
        }
        if let Instr::Recv { from, regs } = ins {
            ex.count_recv();
            deferred.push_back((*from, regs));
            continue;
        }
        reads.clear();
        ins.reads_into(&mut reads);
        if matches!(ins, Instr::GenerateCorrelations { .. }) {
            // Products answered from here on are answered in place.
            ex.rlwe.overlap = false;
        }
        ex.join_rlwe(Some(&reads)).map_err(name)?;
        let upto = if reads_everything(ins) {
            deferred.len()
        } else {
            deferred
                .iter()
                .rposition(|(_, regs)| regs.iter().any(|r| reads.contains(r)))
                .map_or(0, |p| p + 1)
        };
        if upto > 0 {
            ex.before_receiving(ins);
        }
        for (from, regs) in deferred.drain(..upto) {
            ex.receive(from, regs, transport).map_err(name)?;
        }
        if uses_correlations(ins) {
            ex.feed_dealer(transport).map_err(name)?;
        }
        if !ex.may_hold_frames(ins, &reads, &mut writes) {
            transport.flush().map_err(name)?;
        }
        ex.step(ins, transport, &mut outputs).map_err(name)?;
    }
    ex.join_rlwe(None).map_err(name)?;
    transport.flush().map_err(name)?;
    for (from, regs) in deferred {
        ex.receive(from, regs, transport).map_err(name)?;
    }
    if ex.feed.as_ref().is_some_and(|f| !f.ends.is_empty()) {
        return Err(name(ExecError::protocol(
            "the dealer sent corrections this party never used",
        )));
    }
    if online_start == program.len() {
        ex.stats.preprocessing = t.elapsed();
        ex.stats.online_bytes_sent = ex.stats.bytes_sent;
    }
    ex.stats.online_bytes_sent = ex.stats.bytes_sent - ex.stats.online_bytes_sent;
    ex.stats.online = t.elapsed() - ex.stats.preprocessing;
    // A last message that nothing answers still takes a trip (as `Plan::rounds` counts it).
    if ex.sent_since_recv {
        ex.stats.rounds += 1;
    }
    // The session succeeded: its RLWE key pair serves the next one on
    // this connection (a failed session drops it).
    ex.keep_rlwe_key();
    Ok(Outcome {
        outputs,
        stats: ex.stats,
    })
}

/// Run every party of `plan` in this process, one thread each.
/// `inputs[p]` holds party p's inputs (public inputs go to every computing party).
pub fn run_in_process(
    plan: &ValidPlan<'_>,
    inputs: &[BTreeMap<String, TensorRef<'_>>],
    opts: &Options,
) -> Result<Vec<Outcome>, ExecError> {
    let names: Vec<String> = plan.parties.iter().map(|p| p.name.clone()).collect();
    run_with_transports(
        plan,
        inputs,
        ChannelTransport::mesh(&names, opts.timeout),
        opts,
    )
}

/// Run every party on its own thread, party p over `transports[p]`.
pub fn run_with_transports<T: Transport + Send>(
    plan: &ValidPlan<'_>,
    inputs: &[BTreeMap<String, TensorRef<'_>>],
    transports: Vec<T>,
    opts: &Options,
) -> Result<Vec<Outcome>, ExecError> {
    let results: Vec<Result<Outcome, ExecError>> = std::thread::scope(|s| {
        let handles: Vec<_> = transports
            .into_iter()
            .enumerate()
            .map(|(p, mut t)| {
                static NONE: BTreeMap<String, TensorRef<'static>> = BTreeMap::new();
                let mine = inputs.get(p).unwrap_or(&NONE);
                s.spawn(move || run_party(plan, p as PartyIdx, mine, &mut t, opts))
            })
            .collect();
        joined(handles)
    });
    first_error(results)
}

/// The parties' threads' results, a panic as an error.
fn joined(
    handles: Vec<std::thread::ScopedJoinHandle<'_, Result<Outcome, ExecError>>>,
) -> Vec<Result<Outcome, ExecError>> {
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(ExecError::protocol("a party's thread panicked")))
        })
        .collect()
}

/// The outcomes, or the root cause of a failure: an input or protocol
/// error rather than the peers' "stopped" errors it caused.
fn first_error(results: Vec<Result<Outcome, ExecError>>) -> Result<Vec<Outcome>, ExecError> {
    let mut errors: Vec<ExecError> = results
        .iter()
        .filter_map(|r| r.as_ref().err().cloned())
        .collect();
    if !errors.is_empty() {
        errors.sort_by_key(|e| match e.kind {
            ErrorKind::Input => 0,
            ErrorKind::Crypto => 1,
            ErrorKind::Protocol => 2,
            ErrorKind::Transport => 3,
        });
        return Err(errors.remove(0));
    }
    Ok(results.into_iter().map(|r| r.expect("no errors")).collect())
}

impl Exec<'_> {
    fn concrete(&self, shape: &plan::Shape) -> Result<Vec<usize>, ExecError> {
        concrete(shape, &self.dims)
    }

    /// Elements of register `r` at this session's sizes (`None`: a size
    /// not bound yet, or too many to count).
    fn reg_elements(&self, r: Reg) -> Option<u64> {
        self.plan.reg(r).shape.0.iter().try_fold(1u64, |n, d| {
            let d = match d {
                plan::Dim::Known(d) => *d,
                plan::Dim::Symbol(s) => *self.dims.get(s)? as u64,
            };
            n.checked_mul(d)
        })
    }

    /// Whether frames the transport holds back ([`Transport::flush`]) may
    /// wait through `ins`: a step that neither waits nor computes for long,
    /// which is bookkeeping or local arithmetic on at most
    /// [`HOLD_FRAMES_ELEMENTS`] values per register. Anything else (a
    /// comparison, a product on a large batch, Paillier or RLWE work) first
    /// sends them, so a peer is never kept waiting through a long step.
    /// `writes` is scratch for the registers `ins` writes.
    fn may_hold_frames(&self, ins: &Instr, reads: &[Reg], writes: &mut Vec<Reg>) -> bool {
        let cheap_kind = matches!(
            ins,
            Instr::Send { .. }
                | Instr::Input { .. }
                | Instr::Const { .. }
                | Instr::Output { .. }
                | Instr::Own { .. }
                | Instr::Split { .. }
                | Instr::Local { .. }
                | Instr::Clear { .. }
                | Instr::Embed { .. }
                | Instr::HolderOpen { .. }
                | Instr::HolderClose { .. }
                | Instr::BeaverOpen { .. }
                | Instr::BeaverClose { .. }
                | Instr::TruncOpen { .. }
                | Instr::TruncClose { .. }
        );
        if !cheap_kind {
            return false;
        }
        writes.clear();
        ins.writes_into(writes);
        reads.iter().chain(writes.iter()).all(|r| {
            self.reg_elements(*r)
                .is_some_and(|n| n <= HOLD_FRAMES_ELEMENTS)
        })
    }

    fn reg_shape(&self, r: Reg) -> Result<Vec<usize>, ExecError> {
        self.concrete(&self.plan.reg(r).shape)
    }

    fn scale(&self, r: Reg) -> u32 {
        match self.plan.reg(r).kind {
            Kind::Share { scale } | Kind::Cipher { scale, .. } => scale,
            _ => self.plan.precision,
        }
    }

    fn exchange_dims(&mut self, t: &mut dyn Transport) -> Result<(), ExecError> {
        let n = self.plan.parties.len() as PartyIdx;
        let mine: Vec<(String, u64)> = self
            .dims
            .iter()
            .map(|(k, v)| (k.clone(), *v as u64))
            .collect();
        // Public inputs are given to every computing party separately: they
        // compare digests, so a mismatch is an error, not a wrong answer.
        let public: Vec<(String, [u8; 32])> = self
            .plan
            .inputs
            .iter()
            .filter(|i| i.owner == plan::Owner::Public)
            .filter_map(|i| Some((i.name.clone(), self.inputs.get(&i.name)?.digest())))
            .collect();
        let frame = wire::encode(&[Wire::Session {
            dims: mine,
            public: public.clone(),
        }]);
        // Only between parties that take part: the dealer of a plan
        // compiled without one is not even started.
        let peers: Vec<PartyIdx> = (0..n)
            .filter(|&p| p != self.me && self.plan.takes_part(p))
            .collect();
        for &p in &peers {
            t.send(p, frame.clone())?;
        }
        for &p in &peers {
            let got = wire::decode(&t.recv(p)?).map_err(|e| {
                ExecError::protocol(format!(
                    "session setup from {}: {e}",
                    self.plan.party_name(p)
                ))
                .with_source(e)
            })?;
            let Some(Wire::Session {
                dims,
                public: theirs,
            }) = got.into_iter().next()
            else {
                return Err(ExecError::protocol(format!(
                    "{} did not start the session",
                    self.plan.party_name(p)
                )));
            };
            for (name, digest) in &theirs {
                if public.iter().any(|(n, d)| n == name && d != digest) {
                    return Err(ExecError::input(format!(
                        "public input `{name}` differs between {} and {}: every party must be \
                         given the same values",
                        self.plan.party_name(self.me),
                        self.plan.party_name(p)
                    )));
                }
            }
            for (name, size) in dims {
                if let Some(max) = self.opts.max_dim.filter(|&m| size > m) {
                    return Err(ExecError::input(format!(
                        "{} asks for `{name}` = {size}, more than this party's limit of {max}",
                        self.plan.party_name(p)
                    )));
                }
                let size = size as usize;
                match self.dims.get(&name) {
                    Some(&m) if m != size => {
                        return Err(ExecError::input(format!(
                            "dimension `{name}` is {m} here but {size} at {}",
                            self.plan.party_name(p)
                        )))
                    }
                    _ => {
                        self.plan
                            .check_dims([(name.as_str(), size as u64)])
                            .map_err(|e| {
                                ExecError::input(format!("from {}: {e}", self.plan.party_name(p)))
                            })?;
                        self.dims.insert(name, size);
                    }
                }
            }
        }
        Ok(())
    }

    fn bind_requests(&self) -> Result<Vec<nonlinear::Request>, ExecError> {
        bind_requests(self.plan, &self.dims)
    }

    fn set(&mut self, r: Reg, v: Value) {
        let added = memory::value_bytes(&v);
        if let Some(old) = self.regs[r.0 as usize].replace(v) {
            self.held = self.held.saturating_sub(memory::value_bytes(&old));
        }
        self.held = self.held.saturating_add(added);
        self.stats.peak_register_bytes = self.stats.peak_register_bytes.max(self.held);
    }

    /// Takes a register's value out (a message used once).
    fn take(&mut self, r: Reg) -> Option<Value> {
        let v = self.regs[r.0 as usize].take();
        if let Some(v) = &v {
            self.held = self.held.saturating_sub(memory::value_bytes(v));
        }
        v
    }

    /// Refuses the run if this party's estimated memory exceeds `limit`.
    fn check_memory(&self, limit: u64) -> Result<(), ExecError> {
        let estimate = memory::estimate(self.plan, &self.dims, self.opts.key_bits)?;
        let mine = &estimate.parties[self.me as usize];
        if mine.total() <= limit {
            return Ok(());
        }
        let dims: Vec<String> = self
            .dims
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        Err(ExecError::input(format!(
            "this party would need about {} of memory{} ({}), more than its limit of {}: \
             raise the limit with --max-memory SIZE, or run the data in smaller batches",
            memory::bytes_text(mine.total()),
            if dims.is_empty() {
                String::new()
            } else {
                format!(" at {}", dims.join(", "))
            },
            mine.parts_text(),
            memory::bytes_text(limit),
        )))
    }

    fn get(&self, r: Reg) -> Result<&Value, ExecError> {
        self.regs[r.0 as usize]
            .as_ref()
            .ok_or_else(|| ExecError::protocol(format!("register {r} read before it was written")))
    }

    /// A clear register's value, borrowed: a value the party computed, or
    /// its own input.
    fn clear(&self, r: Reg) -> Result<TensorRef<'_>, ExecError> {
        match self.get(r)? {
            Value::Clear(t) => Ok(t.view()),
            Value::Input(i) => self.own_input(*i),
            _ => Err(ExecError::protocol(format!(
                "register {r} is not a clear value"
            ))),
        }
    }

    fn share(&self, r: Reg) -> Result<&Share, ExecError> {
        match self.get(r)? {
            Value::Share(s) => Ok(s),
            _ => Err(ExecError::protocol(format!("register {r} is not a share"))),
        }
    }

    fn cipher(&self, r: Reg) -> Result<(PartyIdx, &[usize], &[Ciphertext]), ExecError> {
        match self.get(r)? {
            Value::Cipher { key, shape, cts } => Ok((*key, shape, cts)),
            _ => Err(ExecError::protocol(format!(
                "register {r} is not a ciphertext"
            ))),
        }
    }

    fn role(&self) -> Result<Role, ExecError> {
        self.role
            .ok_or_else(|| ExecError::protocol("the dealer cannot compute on shares"))
    }

    fn key_for(&self, key: PartyIdx) -> Result<&PublicKey, ExecError> {
        if key == self.me {
            return self
                .keypair
                .as_ref()
                .map(|k| &k.public)
                .ok_or_else(|| ExecError::protocol("no key pair generated"));
        }
        self.peer_keys.get(&key).ok_or_else(|| {
            ExecError::protocol(format!("no public key from {}", self.plan.party_name(key)))
        })
    }

    fn step(
        &mut self,
        ins: &Instr,
        t: &mut dyn Transport,
        outputs: &mut Vec<(String, Tensor)>,
    ) -> Result<(), ExecError> {
        match ins {
            Instr::KeyGen { public } => {
                let bits = self.opts.key_bits.unwrap_or_else(|| {
                    self.plan
                        .keys
                        .iter()
                        .find(|k| k.owner == self.me)
                        .map_or(3072, |k| k.min_bits as u64)
                });
                let kp = if self.opts.insecure_keys {
                    Keypair::generate_insecure_for_tests(bits, &mut rand::rng())?
                } else {
                    Keypair::generate(bits)?
                };
                self.set(*public, Value::Wire(Wire::PublicKey(kp.public.n().clone())));
                self.keypair = Some(kp);
            }
            Instr::Deal { out, .. } => {
                if let Some(ahead) = self
                    .opts
                    .dealings
                    .as_ref()
                    .and_then(|p| p.take(self.plan, &self.dims))
                {
                    self.set(
                        out[0],
                        Value::Wire(Wire::Dealer {
                            seed: ahead.s0,
                            corrections: vec![],
                            chunks: 0,
                        }),
                    );
                    self.set(
                        out[1],
                        Value::Dealing(Dealing {
                            seed: ahead.s1,
                            frames: ahead.batches.len(),
                            batches: DealingBatches::Ready(ahead.batches),
                        }),
                    );
                    return Ok(());
                }
                let mut dealer = Dealer::new()?;
                let [s0, s1] = [dealer.seed_msg(Role::P0), dealer.seed_msg(Role::P1)];
                self.set(
                    out[0],
                    Value::Wire(Wire::Dealer {
                        seed: s0,
                        corrections: vec![],
                        chunks: 0,
                    }),
                );
                let groups = self.request_groups()?;
                let ends = dealer_cuts(&groups);
                let frames = ends.len();
                let (tx, rx) = std::sync::mpsc::channel();
                let work = move || {
                    let mut groups = groups.into_iter();
                    let mut first = 0;
                    for end in ends {
                        let batch = deal_batch(&mut dealer, &mut groups, first, end);
                        first = end;
                        let failed = batch.is_err();
                        // A closed channel means the sending side gave up.
                        if tx.send(batch).is_err() || failed {
                            return;
                        }
                    }
                };
                let thread = std::thread::Builder::new()
                    .name("veil-dealer".into())
                    .spawn(work)
                    .map_err(|e| {
                        ExecError::protocol(format!("cannot start a thread: {e}")).with_source(e)
                    })?;
                self.set(
                    out[1],
                    Value::Dealing(Dealing {
                        seed: s1,
                        frames,
                        batches: DealingBatches::Thread { rx, thread },
                    }),
                );
            }
            Instr::Expand { src } => {
                // Only `Expand` reads the dealer's first message: taken, not copied.
                let Some(Value::Wire(Wire::Dealer {
                    seed,
                    corrections,
                    chunks,
                })) = self.take(*src)
                else {
                    return Err(ExecError::protocol("expected the dealer's message"));
                };
                let source = match self.role()? {
                    Role::P0 => DealerSource::party0(seed)?,
                    Role::P1 => {
                        let s = DealerSource::party1(seed, corrections)?;
                        self.feed = Some(self.dealer_feed(chunks)?);
                        s
                    }
                };
                let source: Box<dyn Correlations + Send> = Box::new(source);
                self.engine = Some(
                    Engine::new(self.fp, TruncMode::Dealer, source)
                        .with_select(select_kind(self.plan)),
                );
            }
            Instr::GenerateCorrelations { peer, engine } => {
                let store = dealerfree::generate(self, *peer, *engine, t)?;
                let store: Box<dyn Correlations + Send> = Box::new(store);
                self.engine = Some(
                    Engine::new(self.fp, TruncMode::DaBits, store)
                        .with_select(select_kind(self.plan)),
                );
            }
            Instr::Input { dst, input } => {
                // Inputs were validated in `run_party`.
                self.own_input(*input)?;
                self.set(*dst, Value::Input(*input));
            }
            Instr::Const { dst, data } => {
                let shape = self.reg_shape(*dst)?;
                let t = Tensor::new(shape, data.clone())
                    .or_else(|_| Tensor::new(vec![data.len()], data.clone()))
                    .map_err(ExecError::protocol)?;
                self.set(*dst, Value::Clear(t));
            }
            Instr::Clear { dst, op, args } => {
                let a: Vec<TensorRef<'_>> = args
                    .iter()
                    .map(|r| self.clear(*r))
                    .collect::<Result<_, _>>()?;
                let mut v = op.apply(&a).map_err(ExecError::protocol)?;
                if *op == plan::ClearOp::Reshape {
                    // The same values, row-major, in the register's shape.
                    v = Tensor::new(self.reg_shape(*dst)?, v.data).map_err(ExecError::protocol)?;
                }
                self.set(*dst, Value::Clear(v));
            }
            _ => self.step_crypto(ins, t, outputs)?,
        }
        Ok(())
    }

    /// Party 1's feed of the dealer's frames that follow its first message,
    /// which announced `chunks` of them: the layout is computed here from
    /// the plan, as the dealer did, and must agree with it.
    fn dealer_feed(&self, chunks: u64) -> Result<DealerFeed, ExecError> {
        let plan::RandomnessSource::Dealer(from) = self.plan.randomness else {
            return Err(ExecError::protocol("the plan has no dealer"));
        };
        let groups = self.request_groups()?;
        let mut ends: VecDeque<usize> = dealer_cuts(&groups).into();
        if ends.len() as u64 != chunks + 1 {
            return Err(ExecError::protocol(format!(
                "the dealer announced {} frames of corrections, this plan needs {}",
                chunks + 1,
                ends.len()
            )));
        }
        let covered = ends.pop_front().unwrap_or(0);
        Ok(DealerFeed {
            from,
            sizes: groups.iter().map(Vec::len).collect(),
            next: 0,
            covered,
            ends,
        })
    }

    /// Every correlation request the computing parties will make, in order:
    /// the plan's own (Beaver, truncation), and those of comparison protocols
    /// (which never truncate, so the order is the same in both modes).
    fn request_order(&self) -> Result<Vec<nonlinear::Request>, ExecError> {
        Ok(self.request_groups()?.into_iter().flatten().collect())
    }

    /// [`Exec::request_order`] cut into one group per instruction that
    /// [`uses_correlations`] (see [`request_groups`]).
    fn request_groups(&self) -> Result<Vec<Vec<nonlinear::Request>>, ExecError> {
        request_groups(self.plan, &self.dims, &self.requests)
    }

    fn own_input(&self, input: u32) -> Result<TensorRef<'_>, ExecError> {
        let spec = self
            .plan
            .inputs
            .get(input as usize)
            .ok_or_else(|| ExecError::protocol(format!("the plan has no input {input}")))?;
        self.inputs
            .get(&spec.name)
            .copied()
            .ok_or_else(|| ExecError::input(format!("input `{}` is missing", spec.name)))
    }
}

/// Random inputs of the plan's declared shapes, uniform in the declared
/// ranges (in [-1, 1] where none is declared), with every symbolic
/// dimension of size `batch`. For demonstrations, tests and benchmarks.
/// An error (before anything is allocated) if a shape's element count
/// overflows, or the memory for the inputs cannot be had; check the run's
/// size with [`memory::estimate`] first.
pub fn random_inputs<R: rand::Rng + ?Sized>(
    plan: &Plan,
    batch: usize,
    rng: &mut R,
) -> Result<BTreeMap<String, Tensor>, ExecError> {
    use rand::RngExt;
    let dims = plan.dims_at(batch);
    plan.inputs
        .iter()
        .map(|i| {
            let shape = concrete(&i.shape, &dims)?;
            // Demo data: the declared range, or [-1, 1] within the default.
            let (lo, hi) = if i.range_declared {
                i.range
            } else {
                (i.range.0.max(-1.0), i.range.1.min(1.0))
            };
            let n: usize = shape.iter().product();
            let columns = &i.columns;
            let mut data = Vec::new();
            data.try_reserve_exact(n).map_err(|_| {
                ExecError::input(format!(
                    "cannot allocate {} for input `{}`",
                    memory::bytes_text((n as u64).saturating_mul(8)),
                    i.name
                ))
            })?;
            data.extend((0..n).map(|j| {
                // Per-column ranges are always declared.
                let (lo, hi) = if columns.is_empty() {
                    (lo, hi)
                } else {
                    columns[j % columns.len()]
                };
                if lo == hi {
                    lo
                } else {
                    rng.random_range(lo..=hi)
                }
            }));
            Ok((i.name.clone(), Tensor { shape, data }))
        })
        .collect()
}

/// Split inputs by the party that supplies them; public inputs go to every
/// computing party. Views of `all` (owned [`Tensor`]s or views), not copies.
pub fn inputs_per_party<'a, T>(
    plan: &Plan,
    all: &'a BTreeMap<String, T>,
) -> Vec<BTreeMap<String, TensorRef<'a>>>
where
    &'a T: Into<TensorRef<'a>>,
{
    let mut out = vec![BTreeMap::new(); plan.parties.len()];
    for spec in &plan.inputs {
        let Some(t) = all.get(&spec.name) else {
            continue;
        };
        match spec.owner {
            plan::Owner::Party(p) => {
                out[p as usize].insert(spec.name.clone(), t.into());
            }
            plan::Owner::Public => {
                for (p, party) in plan.parties.iter().enumerate() {
                    if party.role == plan::Role::Compute {
                        out[p].insert(spec.name.clone(), t.into());
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sharing::CorrelationRequest;

    fn triple(n: usize) -> nonlinear::Request {
        CorrelationRequest::ElementwiseTriple { shape: vec![n] }
    }

    /// The typed causes survive: a sharing error, a malformed frame, and a
    /// context prefix, with the message as informative as before.
    #[test]
    fn errors_keep_their_sources() {
        use std::error::Error as _;
        let cause = crate::sharing::SharingError::Exchange("the peer stopped".into());
        let e = ExecError::from(cause.clone()).context("p1");
        assert_eq!(e.kind, ErrorKind::Protocol);
        assert_eq!(e.message, format!("p1: {cause}"));
        let source = e
            .source()
            .and_then(|s| s.downcast_ref::<crate::sharing::SharingError>());
        assert_eq!(source, Some(&cause));

        let bad = wire::decode(&[wire::VERSION + 1]).unwrap_err();
        let e = ExecError::protocol(format!("malformed message from p0: {bad}"))
            .with_source(bad.clone());
        assert!(e.message.contains("a different veil version"), "{e}");
        let source = e.source().and_then(|s| s.downcast_ref::<wire::WireError>());
        assert_eq!(source, Some(&bad));
        // Equality is by kind and message, as before.
        assert_eq!(e, ExecError::protocol(e.message.clone()));
    }

    fn holder(rows: usize) -> nonlinear::Request {
        CorrelationRequest::HolderMatmulTriple {
            a_shape: vec![rows, 100],
            b_shape: vec![100],
            a_holder: Role::P0,
        }
    }

    #[test]
    fn a_small_plan_goes_out_in_the_first_frame() {
        let groups = vec![vec![holder(10)], vec![triple(10)], vec![], vec![triple(10)]];
        assert_eq!(dealer_cuts(&groups), vec![4]);
        assert_eq!(dealer_cuts(&[]), vec![0]);
    }

    #[test]
    fn a_large_first_product_gets_a_frame_of_its_own() {
        // The first frame (with the seed) cannot hold the product's
        // 1,000,100 words, so it goes out empty; the rest fit in one more.
        let and = CorrelationRequest::AndTriples { bits: 64 * 1000 };
        let groups = vec![
            vec![holder(10_000)],
            vec![triple(10_000)],
            vec![and.clone(), triple(10_000)],
            vec![],
        ];
        assert_eq!(dealer_cuts(&groups), vec![0, 1, 4]);
        // A group that would take a frame past the limit starts the next
        // one; empty groups ride along with the frame before them.
        let groups = vec![
            vec![triple(10)],
            vec![triple(30_000)],
            vec![],
            vec![triple(30_000)],
            vec![triple(1)],
        ];
        assert_eq!(dealer_cuts(&groups), vec![1, 3, 4, 5]);
    }

    #[test]
    fn only_a_share_read_by_nothing_but_its_holders_product_stays_unencoded() {
        let holder = |h| CorrelationRequest::HolderMatmulTriple {
            a_shape: vec![4, 3],
            b_shape: vec![3],
            a_holder: h,
        };
        // An input-holder convolution's input stays unencoded the same way.
        let conv = CorrelationRequest::HolderConvTriple {
            a_shape: vec![1, 1, 3, 3],
            window: plan::Window {
                kernel: vec![2, 2],
                stride: vec![1, 1],
                padding: vec![0, 0],
                dilation: vec![1, 1],
                groups: 1,
                per_group: 1,
                edge: false,
                extra: Vec::new(),
            },
            b_shape: vec![4, 2],
            a_holder: Role::P0,
        };
        let requests = vec![holder(Role::P0), holder(Role::P1), conv];
        let own = |src, dst| Instr::Own {
            src: Some(Reg(src)),
            dst: Reg(dst),
        };
        let open = |x, corr| Instr::HolderOpen {
            msg: Reg(90 + x),
            x: Reg(x),
            y: Reg(50),
            corr,
        };
        let program = plan::Program {
            party: 0,
            instrs: vec![
                own(0, 1), // read by its own product only: stays unencoded
                own(2, 3), // also read by an addition
                own(4, 5), // read by a product party 1 holds
                Instr::Own {
                    src: None,
                    dst: Reg(50),
                },
                own(6, 7), // read by nothing
                own(8, 9), // read by its own convolution only: stays unencoded
                open(1, 0),
                open(9, 2),
                open(3, 0),
                Instr::Local {
                    dst: Reg(60),
                    op: plan::ShareOp::Add,
                    args: vec![Reg(3), Reg(3)],
                    leader: false,
                },
                open(5, 1),
            ],
        };
        let got = masked_from_clear(&program, &requests, Role::P0);
        assert_eq!(got, HashSet::from([Reg(1), Reg(9)]));
        // Party 1 holds the last product's x.
        let got = masked_from_clear(&program, &requests, Role::P1);
        assert_eq!(got, HashSet::from([Reg(5)]));
    }

    #[test]
    fn every_cut_is_after_the_last_and_the_last_covers_every_group() {
        for n in [0usize, 1, 5, 40] {
            for size in [1usize, 5_000, 70_000] {
                let groups: Vec<Vec<nonlinear::Request>> = (0..n)
                    .map(|i| {
                        if i % 3 == 2 {
                            vec![]
                        } else {
                            vec![triple(size + i)]
                        }
                    })
                    .collect();
                let cuts = dealer_cuts(&groups);
                assert_eq!(*cuts.last().unwrap(), n, "{n} groups of {size}");
                assert!(cuts.windows(2).all(|w| w[0] < w[1]), "{cuts:?}");
            }
        }
    }
}
