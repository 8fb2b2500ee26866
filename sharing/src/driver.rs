//! In-process two-party driver for tests and benchmarks: runs each party's
//! protocol code on its own thread and passes [`Message`]s over channels.
//! No sockets, no serialization; the executor for real deployments lives
//! elsewhere and implements [`Exchange`] over its transport.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use super::correlations::{Dealer, DealerSource};
use super::fixed::FixedPoint;
use super::protocol::{Engine, TruncMode};

use super::error::{Result, SharingError};
use super::protocol::{Exchange, Message};

/// Traffic counters of one party.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExchangeStats {
    /// Number of rounds (messages sent).
    pub rounds: usize,
    /// Payload bytes sent (8 per ring element).
    pub bytes_sent: usize,
}

/// One end of an in-process channel pair.
#[derive(Debug)]
pub struct ChannelExchange {
    tx: Sender<Message>,
    rx: Receiver<Message>,
    stats: ExchangeStats,
}

impl ChannelExchange {
    /// Two connected ends.
    pub fn pair() -> (ChannelExchange, ChannelExchange) {
        let (t0, r1) = channel();
        let (t1, r0) = channel();
        (
            ChannelExchange {
                tx: t0,
                rx: r0,
                stats: ExchangeStats::default(),
            },
            ChannelExchange {
                tx: t1,
                rx: r1,
                stats: ExchangeStats::default(),
            },
        )
    }

    pub fn stats(&self) -> ExchangeStats {
        self.stats
    }
}

impl Exchange for ChannelExchange {
    fn exchange(&mut self, msg: Message) -> Result<Message> {
        self.stats.rounds += 1;
        self.stats.bytes_sent += msg.payload_bytes();
        self.tx
            .send(msg)
            .map_err(|_| SharingError::Exchange("peer hung up".into()))?;
        self.rx
            .recv()
            .map_err(|_| SharingError::Exchange("peer hung up".into()))
    }
}

/// Runs party 0's and party 1's code concurrently, connected by channels.
/// Returns both results and traffic counters. If one side fails, the other
/// sees a hang-up error instead of blocking forever.
pub fn run_two_party<T0, T1, F0, F1>(
    f0: F0,
    f1: F1,
) -> Result<((T0, ExchangeStats), (T1, ExchangeStats))>
where
    T0: Send,
    T1: Send,
    F0: FnOnce(&mut ChannelExchange) -> Result<T0> + Send,
    F1: FnOnce(&mut ChannelExchange) -> Result<T1> + Send,
{
    let (mut e0, mut e1) = ChannelExchange::pair();
    let (r0, r1) = std::thread::scope(|s| {
        let h1 = s.spawn(move || {
            let r = f1(&mut e1);
            (r, e1.stats())
        });
        let r0 = {
            let r = f0(&mut e0);
            let st = e0.stats();
            drop(e0);
            (r, st)
        };
        let r1 = h1.join().unwrap_or_else(|_| {
            (
                Err(SharingError::Exchange("party 1 panicked".into())),
                ExchangeStats::default(),
            )
        });
        (r0, r1)
    });
    Ok(((r0.0?, r0.1), (r1.0?, r1.1)))
}

/// Two engines sharing one in-process dealer, plus the dealer (to read its
/// byte count).
pub type DealerEngines = (
    Engine<DealerSource>,
    Engine<DealerSource>,
    Arc<Mutex<Dealer>>,
);

/// Two engines backed by one in-process, fixed-seed dealer (tests and
/// benchmarks only).
pub fn dealer_engines_for_tests(seed: u64, fp: FixedPoint, mode: TruncMode) -> DealerEngines {
    let (s0, s1, d) = DealerSource::online_pair(Dealer::new_with_fixed_seed_for_tests(seed));
    (Engine::new(fp, mode, s0), Engine::new(fp, mode, s1), d)
}

/// [`dealer_engines_for_tests`] with the default fixed point and dealer
/// truncation, selecting as dealer-free OT plans do ([`crate::compare::SelectKind::Ot`]:
/// the OT multiplexer, and the millionaires' comparison for the MSB).
pub fn ot_select_engines_for_tests(seed: u64) -> (Engine<DealerSource>, Engine<DealerSource>) {
    let (e0, e1, _) = dealer_engines_for_tests(seed, FixedPoint::default(), TruncMode::Dealer);
    (
        e0.with_select(crate::compare::SelectKind::Ot),
        e1.with_select(crate::compare::SelectKind::Ot),
    )
}

/// Two engines backed by an OS-seeded in-process dealer.
pub fn dealer_engines(fp: FixedPoint, mode: TruncMode) -> Result<DealerEngines> {
    let (s0, s1, d) = DealerSource::online_pair(Dealer::new()?);
    Ok((Engine::new(fp, mode, s0), Engine::new(fp, mode, s1), d))
}
