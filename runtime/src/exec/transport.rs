//! Transports: how a party's frames reach its peers. The executor only sees
//! the [`Transport`] trait; this module provides the in-process one
//! (threads and channels). A frame is one `Send` instruction's batch of
//! values: the executor sends one frame per round per peer.

use super::ExecError;
use plan::PartyIdx;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub trait Transport {
    /// Sends one frame now (after any held back for the same peer).
    fn send(&mut self, to: PartyIdx, frame: Vec<u8>) -> Result<(), ExecError>;
    /// Sends one frame, or holds it back (if small) to go with the next
    /// frames in one write: a `Send` instruction's frame, which the
    /// executor flushes ([`Transport::flush`]) before any step that may
    /// take long. Frames to one peer still arrive in order.
    fn send_held(&mut self, to: PartyIdx, frame: Vec<u8>) -> Result<(), ExecError> {
        self.send(to, frame)
    }
    /// Receives one frame; first sends every frame held back, so a party
    /// never waits with a frame of its own unsent.
    fn recv(&mut self, from: PartyIdx) -> Result<Vec<u8>, ExecError>;
    /// `from`'s next frame if it has already arrived, without waiting and
    /// without sending the frames held back (nobody waits on this party
    /// while it does not wait). `None`: not here yet, or this transport
    /// cannot tell cheaply (the default); then the executor calls
    /// [`Transport::recv`], which flushes and waits. Whatever it returns,
    /// frames from one peer are still read in the order they were sent.
    fn try_recv(&mut self, from: PartyIdx) -> Result<Option<Vec<u8>>, ExecError> {
        let _ = from;
        Ok(None)
    }
    /// Sends every frame held back. The executor calls it before any step
    /// that may take long, and when a party's program ends.
    fn flush(&mut self) -> Result<(), ExecError> {
        Ok(())
    }
}

/// The largest frame [`ChannelTransport::send_held`] holds back (as
/// `net::TcpTransport`'s own limit): larger ones go at once.
pub const CHANNEL_HOLD_LIMIT: usize = 16 << 10;

/// How long [`ChannelTransport::recv`] may poll its channel before it
/// parks the thread (see [`ChannelTransport::with_spin`]).
pub const DEFAULT_SPIN: Duration = Duration::from_micros(300);

/// What the ends of a mesh share.
struct Mesh {
    presence: Vec<Presence>,
    /// Ends not dropped yet: the threads that may still want a core.
    alive: AtomicUsize,
    /// Cores this process may run on.
    cores: usize,
}

/// What each end of a mesh tells the others about its thread, so that a
/// receive polls only while the peer can answer soon from another core.
/// Updated at each send, flush and receive; between them a thread may
/// have moved, which costs at most one budget of polling.
struct Presence {
    /// Parked in a receive (or not started yet, or gone).
    parked: AtomicBool,
    /// The core the thread last ran on, as it last looked.
    cpu: AtomicU32,
}

/// One party's end of an in-process mesh. Frames travel in batches: the
/// frames held back ([`Transport::send_held`]) go as one message, so the
/// peer is woken once for them.
pub struct ChannelTransport {
    me: PartyIdx,
    names: Vec<String>,
    to: BTreeMap<PartyIdx, Sender<Vec<Vec<u8>>>>,
    from: BTreeMap<PartyIdx, Receiver<Vec<Vec<u8>>>>,
    /// Frames of a batch not read yet, per sender.
    pending: BTreeMap<PartyIdx, VecDeque<Vec<u8>>>,
    /// Frames held back, per peer, in the order they were sent.
    held: BTreeMap<PartyIdx, Vec<Vec<u8>>>,
    mesh: Arc<Mesh>,
    /// Peers sent a frame since this end last received from them (one of
    /// them parked may be waking up for it).
    woken: BTreeSet<PartyIdx>,
    timeout: Duration,
    spin: Duration,
}

impl ChannelTransport {
    /// A full mesh between `names.len()` parties; a receive that waits
    /// longer than `timeout` fails.
    pub fn mesh(names: &[String], timeout: Duration) -> Vec<ChannelTransport> {
        let n = names.len() as PartyIdx;
        let mesh = Arc::new(Mesh {
            presence: (0..n)
                .map(|_| Presence {
                    parked: AtomicBool::new(true),
                    cpu: AtomicU32::new(NO_CPU),
                })
                .collect(),
            alive: AtomicUsize::new(n as usize),
            cores: cores(),
        });
        let mut ends: Vec<ChannelTransport> = (0..n)
            .map(|me| ChannelTransport {
                me,
                names: names.to_vec(),
                to: BTreeMap::new(),
                from: BTreeMap::new(),
                pending: BTreeMap::new(),
                held: BTreeMap::new(),
                mesh: mesh.clone(),
                woken: BTreeSet::new(),
                timeout,
                spin: DEFAULT_SPIN,
            })
            .collect();
        for a in 0..n {
            for b in 0..n {
                if a != b {
                    let (tx, rx) = channel();
                    ends[a as usize].to.insert(b, tx);
                    ends[b as usize].from.insert(a, rx);
                }
            }
        }
        ends
    }

    /// How long a receive may poll for its frame before it parks the
    /// thread ([`DEFAULT_SPIN`] unless set; zero never polls). Waking a
    /// parked thread costs the sender a system call and the receiver a
    /// trip through the scheduler, tens of microseconds on a virtual
    /// machine; polling saves both when the peer answers within the
    /// budget. It polls only while every end of the mesh still running
    /// can have a core of its own (else polling takes a core another
    /// thread needs: a dealer's, or the peer's), and only while the peer
    /// is running on another core: a peer that is parked, or last seen on
    /// this core, could not answer while this thread holds the core (one
    /// it has just sent a frame gets [`WAKE_GRACE`] of yielding to wake).
    pub fn with_spin(mut self, spin: Duration) -> Self {
        self.spin = spin;
        self
    }

    fn name(&self, p: PartyIdx) -> &str {
        self.names.get(p as usize).map_or("?", String::as_str)
    }

    fn rx(&self, from: PartyIdx) -> Result<&Receiver<Vec<Vec<u8>>>, ExecError> {
        self.from
            .get(&from)
            .ok_or_else(|| ExecError::transport(format!("no channel from party {from}")))
    }

    /// `from`'s next frame if it has arrived.
    fn poll(&mut self, from: PartyIdx) -> Result<Option<Vec<u8>>, ExecError> {
        if let Some(f) = self.pending.get_mut(&from).and_then(VecDeque::pop_front) {
            return Ok(Some(f));
        }
        match self.rx(from)?.try_recv() {
            Ok(batch) => {
                self.woken.remove(&from);
                Ok(self.unbatch(from, batch))
            }
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(self.stopped(from)),
        }
    }

    /// The first frame of a batch; the rest wait in `pending`.
    fn unbatch(&mut self, from: PartyIdx, batch: Vec<Vec<u8>>) -> Option<Vec<u8>> {
        let mut batch = batch.into_iter();
        let first = batch.next();
        let rest: Vec<Vec<u8>> = batch.collect();
        if !rest.is_empty() {
            self.pending.entry(from).or_default().extend(rest);
        }
        first
    }

    fn stopped(&self, from: PartyIdx) -> ExecError {
        ExecError::transport(format!(
            "{} stopped before sending its message",
            self.name(from)
        ))
    }

    fn send_batch(&mut self, to: PartyIdx, batch: Vec<Vec<u8>>) -> Result<(), ExecError> {
        self.woken.insert(to);
        let tx = self
            .to
            .get(&to)
            .ok_or_else(|| ExecError::transport(format!("no channel to party {to}")))?;
        tx.send(batch)
            .map_err(|_| ExecError::transport(format!("{} has stopped", self.name(to))))
    }

    /// Tells the peers this thread is running, and where.
    fn running(&self) {
        if let Some(me) = self.mesh.presence.get(self.me as usize) {
            me.cpu.store(current_cpu(), Ordering::Relaxed);
            me.parked.store(false, Ordering::Release);
        }
    }

    fn set_parked(&self, parked: bool) {
        if let Some(me) = self.mesh.presence.get(self.me as usize) {
            me.parked.store(parked, Ordering::Release);
        }
    }

    /// Where `from`'s thread is, as far as this one can tell; publishes
    /// this thread's core on the way.
    fn peer(&self, from: PartyIdx) -> Peer {
        let cpu = current_cpu();
        if let Some(me) = self.mesh.presence.get(self.me as usize) {
            me.cpu.store(cpu, Ordering::Relaxed);
        }
        let Some(peer) = self.mesh.presence.get(from as usize) else {
            return Peer::Unknown;
        };
        if peer.parked.load(Ordering::Acquire) {
            return Peer::Parked;
        }
        match peer.cpu.load(Ordering::Relaxed) {
            theirs if theirs == NO_CPU || cpu == NO_CPU => Peer::Unknown,
            theirs if theirs == cpu => Peer::Here,
            _ => Peer::Elsewhere,
        }
    }
}

/// Where a peer's thread is, for a receive deciding whether to poll.
enum Peer {
    /// Running on another core: it may answer soon, so poll.
    Elsewhere,
    /// Last seen on this core: it cannot run while this thread polls.
    Here,
    /// Parked in a receive (or not started, or gone).
    Parked,
    /// Cannot tell (no core number on this platform).
    Unknown,
}

/// How long a receive keeps yielding for a peer it has sent a frame to
/// that is still marked parked (a thread just woken is marked so until it
/// runs) before it parks too.
const WAKE_GRACE: Duration = Duration::from_micros(50);

/// The cores this process may run on, read once (it reads files).
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |c| c.get()))
}

/// A core number nobody has.
const NO_CPU: u32 = u32::MAX;

/// The core this thread runs on now ([`NO_CPU`] where that cannot be told).
fn current_cpu() -> u32 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sched_getcpu takes no arguments and only reads the
        // calling thread's state; it returns -1 on failure.
        let c = unsafe { libc::sched_getcpu() };
        u32::try_from(c).unwrap_or(NO_CPU)
    }
    #[cfg(not(target_os = "linux"))]
    {
        NO_CPU
    }
}

impl Transport for ChannelTransport {
    fn send(&mut self, to: PartyIdx, frame: Vec<u8>) -> Result<(), ExecError> {
        let mut batch = self.held.remove(&to).unwrap_or_default();
        batch.push(frame);
        self.running();
        self.send_batch(to, batch)
    }

    /// Holds a frame of at most [`CHANNEL_HOLD_LIMIT`] bytes until the next
    /// send to that peer, receive or flush, which sends it in one batch
    /// with the others.
    fn send_held(&mut self, to: PartyIdx, frame: Vec<u8>) -> Result<(), ExecError> {
        if frame.len() > CHANNEL_HOLD_LIMIT {
            return self.send(to, frame);
        }
        if !self.to.contains_key(&to) {
            return Err(ExecError::transport(format!("no channel to party {to}")));
        }
        self.held.entry(to).or_default().push(frame);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ExecError> {
        if self.held.is_empty() {
            return Ok(());
        }
        self.running();
        for (to, batch) in std::mem::take(&mut self.held) {
            self.send_batch(to, batch)?;
        }
        Ok(())
    }

    fn try_recv(&mut self, from: PartyIdx) -> Result<Option<Vec<u8>>, ExecError> {
        self.poll(from)
    }

    fn recv(&mut self, from: PartyIdx) -> Result<Vec<u8>, ExecError> {
        self.flush()?;
        if let Some(f) = self.poll(from)? {
            return Ok(f);
        }
        let start = Instant::now();
        let budget = self.spin.min(self.timeout);
        // Poll only while every live end can have a core of its own: else
        // polling takes the core a peer or a third party needs.
        let alive = self.mesh.alive.load(Ordering::Relaxed);
        if !budget.is_zero() && alive <= self.mesh.cores {
            self.running();
            while start.elapsed() < budget {
                match self.peer(from) {
                    Peer::Elsewhere => {
                        for _ in 0..16 {
                            std::hint::spin_loop();
                        }
                    }
                    // Perhaps woken by this party's last frame and not on
                    // a core yet, maybe queued on this one: let it run.
                    Peer::Parked if self.woken.contains(&from) && start.elapsed() < WAKE_GRACE => {
                        std::thread::yield_now()
                    }
                    _ => break,
                }
                if let Some(f) = self.poll(from)? {
                    return Ok(f);
                }
            }
        }
        let wait = self.timeout.saturating_sub(start.elapsed());
        self.set_parked(true);
        let got = self.rx(from)?.recv_timeout(wait);
        // Woken, perhaps on another core.
        self.running();
        if got.is_ok() {
            self.woken.remove(&from);
        }
        match got {
            Ok(batch) => match self.unbatch(from, batch) {
                Some(f) => Ok(f),
                None => Err(ExecError::transport(format!(
                    "{} sent an empty batch",
                    self.name(from)
                ))),
            },
            Err(RecvTimeoutError::Timeout) => Err(ExecError::transport(format!(
                "{} timed out waiting for {} ({} s)",
                self.name(self.me),
                self.name(from),
                self.timeout.as_secs()
            ))),
            Err(RecvTimeoutError::Disconnected) => Err(self.stopped(from)),
        }
    }
}

impl Drop for ChannelTransport {
    /// A party that is gone answers nobody: its peers stop polling for it.
    fn drop(&mut self) {
        self.set_parked(true);
        self.mesh.alive.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(timeout: Duration) -> (ChannelTransport, ChannelTransport) {
        let names = ["a".to_string(), "b".to_string()];
        let mut ends = ChannelTransport::mesh(&names, timeout).into_iter();
        (ends.next().unwrap(), ends.next().unwrap())
    }

    /// A receive whose frame is already here (`try_recv`) leaves the held
    /// frames held; frames to a peer still arrive in the order they were
    /// sent, held or not; a receive that must wait sends them first (else
    /// the two ends here would wait for each other until the timeout).
    #[test]
    fn a_frame_already_here_is_read_without_flushing_and_a_wait_flushes() {
        let (mut a, mut b) = pair(Duration::from_secs(10));
        std::thread::scope(|s| {
            let ta = s.spawn(move || -> Result<(), ExecError> {
                a.send_held(1, vec![1; 10])?;
                // b's frame (sent before b waits) is here or on its way.
                let first = loop {
                    if let Some(f) = a.try_recv(1)? {
                        break f;
                    }
                    std::thread::yield_now();
                };
                assert_eq!(first, vec![9; 3]);
                a.send_held(1, vec![2; 20])?;
                // A large frame goes at once, after the held ones.
                a.send_held(1, vec![3; CHANNEL_HOLD_LIMIT + 1])?;
                a.send_held(1, vec![4; 5])?;
                // Nothing is here: this flushes, then waits for b's answer.
                assert_eq!(a.recv(1)?, vec![8; 2]);
                Ok(())
            });
            let tb = s.spawn(move || -> Result<(), ExecError> {
                b.send(0, vec![9; 3])?;
                assert_eq!(b.recv(0)?, vec![1; 10]);
                assert_eq!(b.recv(0)?, vec![2; 20]);
                assert_eq!(b.recv(0)?, vec![3; CHANNEL_HOLD_LIMIT + 1]);
                // The frame held after the large one went with the wait.
                assert_eq!(b.recv(0)?, vec![4; 5]);
                b.send(0, vec![8; 2])?;
                Ok(())
            });
            ta.join().unwrap().unwrap();
            tb.join().unwrap().unwrap();
        });
    }

    /// Held frames stay held until a send, wait or flush: the peer sees
    /// none of them before.
    #[test]
    fn held_frames_wait_for_the_flush() {
        let (mut a, mut b) = pair(Duration::from_secs(10));
        a.send_held(1, vec![1]).unwrap();
        a.send_held(1, vec![2]).unwrap();
        assert_eq!(b.try_recv(0).unwrap(), None);
        a.flush().unwrap();
        assert_eq!(b.try_recv(0).unwrap(), Some(vec![1]));
        assert_eq!(b.try_recv(0).unwrap(), Some(vec![2]));
        assert_eq!(b.try_recv(0).unwrap(), None);
        a.send_held(1, vec![3]).unwrap();
        a.send(1, vec![4]).unwrap();
        assert_eq!(b.recv(0).unwrap(), vec![3]);
        assert_eq!(b.recv(0).unwrap(), vec![4]);
        // A frame read by try_recv leaves this end's held frames held.
        a.send_held(1, vec![5]).unwrap();
        b.send(0, vec![6]).unwrap();
        assert_eq!(a.try_recv(1).unwrap(), Some(vec![6]));
        assert_eq!(b.try_recv(0).unwrap(), None);
        assert_eq!(a.try_recv(1).unwrap(), None);
        a.send_held(1, vec![7]).unwrap();
        b.send(0, vec![8]).unwrap();
        // recv flushes even when its frame is here already.
        assert_eq!(a.recv(1).unwrap(), vec![8]);
        assert_eq!(b.try_recv(0).unwrap(), Some(vec![5]));
        assert_eq!(b.try_recv(0).unwrap(), Some(vec![7]));
    }

    /// A receive still times out while it polls: with a budget shorter and
    /// one longer than the timeout, and the peer running (on another core
    /// where there is one, so the receive polls) without sending.
    #[test]
    fn a_receive_times_out_with_polling() {
        for spin in [Duration::from_millis(20), Duration::from_secs(30)] {
            let timeout = Duration::from_millis(150);
            let (a, mut b) = pair(timeout);
            let mut a = a.with_spin(spin);
            let stop = std::sync::atomic::AtomicBool::new(false);
            std::thread::scope(|s| {
                s.spawn(|| {
                    // Marks b running, then keeps it so.
                    b.send(0, vec![1]).unwrap();
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                });
                assert_eq!(a.recv(1).unwrap(), vec![1]);
                let start = Instant::now();
                let e = a.recv(1).unwrap_err();
                let took = start.elapsed();
                stop.store(true, Ordering::Relaxed);
                assert!(e.to_string().contains("timed out waiting for b"), "{e}");
                assert!(took >= timeout, "gave up after {took:?}");
                assert!(took < Duration::from_secs(10), "took {took:?}");
            });
        }
    }

    /// A peer that has stopped is an error at once, polling or not.
    #[test]
    fn a_stopped_peer_is_an_error() {
        let (mut a, b) = pair(Duration::from_secs(30));
        drop(b);
        let start = Instant::now();
        let e = a.recv(1).unwrap_err();
        assert!(e.to_string().contains("b stopped"), "{e}");
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(a.try_recv(1).is_err());
    }
}
