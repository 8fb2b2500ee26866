//! Dealer streams computed ahead of their sessions (issue 20): a service's
//! dealer keeps a bounded pool of them for the batch sizes it expects, so
//! a session's preprocessing is a pop and a send rather than the dealer's
//! work on the session's critical path.
//!
//! Each entry is one [`Dealer`] with fresh OS-seeded seeds and all of party
//! 1's corrections for one plan at one binding of its symbolic dimensions.
//! An entry is taken by exactly one session ([`DealingPool::take`] pops it
//! under the lock) and never reused; a session whose sizes have no entry
//! ready deals as usual, on its own thread. The pool holds no input: only
//! seeds and corrections, which are the dealer's own secrets, kept in this
//! process like the dealer's state of a live session.

use super::{bind_requests, dealer_cuts, request_groups, Batch, ExecError};
use crate::sharing::{Dealer, Party as Role, SeedMsg};
use plan::Plan;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// One session's dealer stream, computed ahead.
pub(super) struct Ahead {
    pub s0: SeedMsg,
    pub s1: SeedMsg,
    /// Party 1's frames, as [`dealer_cuts`] lays them out.
    pub batches: Vec<Batch>,
}

/// Dealer streams for one plan, `depth` ready for each binding in `sizes`.
pub struct DealingPool {
    plan: Arc<Plan>,
    sizes: Vec<BTreeMap<String, usize>>,
    depth: usize,
    ready: Mutex<Vec<VecDeque<Ahead>>>,
    taken: Condvar,
    /// Sessions served from the pool, and sessions that found it empty for
    /// their sizes (or asked for sizes it does not keep).
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

/// Sizes and counts only: the streams are secret.
impl std::fmt::Debug for DealingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DealingPool")
            .field("sizes", &self.sizes)
            .field("depth", &self.depth)
            .field("ready", &self.len())
            .field("hits", &self.hits)
            .field("misses", &self.misses)
            .finish_non_exhaustive()
    }
}

impl DealingPool {
    /// A pool for `plan` (validated) keeping `depth` streams for each of
    /// `sizes` (bindings of the plan's symbolic dimensions, such as
    /// `batch=1`). Empty until [`DealingPool::fill_one`] or
    /// [`DealingPool::run_filler`] fills it.
    pub fn new(
        plan: Arc<Plan>,
        sizes: Vec<BTreeMap<String, usize>>,
        depth: usize,
    ) -> Result<DealingPool, ExecError> {
        if let Err(errors) = plan::validate(&plan) {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            return Err(ExecError::protocol(format!(
                "the plan does not validate: {}",
                errors.join("; ")
            )));
        }
        // Every size must bind the plan; checked here, once.
        for dims in &sizes {
            request_groups(&plan, dims, &bind_requests(&plan, dims)?)?;
        }
        let ready = sizes.iter().map(|_| VecDeque::new()).collect();
        Ok(DealingPool {
            plan,
            sizes,
            depth,
            ready: Mutex::new(ready),
            taken: Condvar::new(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// Streams ready, over every size.
    pub fn len(&self) -> usize {
        self.lock().iter().map(VecDeque::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<VecDeque<Ahead>>> {
        // A filler that panicked leaves whole entries or none: the queues
        // are still sound.
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Computes one stream for the size with the fewest ready, if any is
    /// below `depth`; `Ok(false)` when every size is full.
    pub fn fill_one(&self) -> Result<bool, ExecError> {
        let at = {
            let ready = self.lock();
            match (0..self.sizes.len())
                .filter(|&i| ready[i].len() < self.depth)
                .min_by_key(|&i| ready[i].len())
            {
                Some(i) => i,
                None => return Ok(false),
            }
        };
        // Computed without the lock: sessions take entries meanwhile.
        let ahead = deal(&self.plan, &self.sizes[at])?;
        self.lock()[at].push_back(ahead);
        Ok(true)
    }

    /// Fills the pool, then waits until a session takes an entry (or a
    /// second passes) and fills again, until `stop` is set or dealing
    /// fails (which it does only if the OS's randomness does).
    pub fn run_filler(&self, stop: &AtomicBool) -> Result<(), ExecError> {
        while !stop.load(Ordering::Relaxed) {
            if !self.fill_one()? {
                let ready = self.lock();
                let _unused = self
                    .taken
                    .wait_timeout(ready, Duration::from_secs(1))
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
        Ok(())
    }

    /// The stream for `plan` at `dims`, if one is ready: taken, never to be
    /// handed out again.
    pub(super) fn take(&self, plan: &Plan, dims: &BTreeMap<String, usize>) -> Option<Ahead> {
        let found = std::ptr::eq(plan, self.plan.as_ref())
            .then(|| self.sizes.iter().position(|s| s == dims))
            .flatten()
            .and_then(|i| self.lock()[i].pop_front());
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if found.is_some() {
            self.taken.notify_one();
        }
        found
    }
}

/// A fresh dealer's whole stream for `plan` at `dims`.
fn deal(plan: &Plan, dims: &BTreeMap<String, usize>) -> Result<Ahead, ExecError> {
    let mut dealer = Dealer::new()?;
    let [s0, s1] = [dealer.seed_msg(Role::P0), dealer.seed_msg(Role::P1)];
    let groups = request_groups(plan, dims, &bind_requests(plan, dims)?)?;
    let ends = dealer_cuts(&groups);
    let mut groups = groups.into_iter();
    let mut first = 0;
    let mut batches = Vec::with_capacity(ends.len());
    for end in ends {
        batches.push(super::deal_batch(&mut dealer, &mut groups, first, end)?);
        first = end;
    }
    Ok(Ahead { s0, s1, batches })
}
