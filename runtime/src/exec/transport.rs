//! Transports: how a party's frames reach its peers. The executor only sees
//! the [`Transport`] trait; this module provides the in-process one
//! (threads and channels). A frame is one `Send` instruction's batch of
//! values: the executor sends one frame per round per peer.

use super::ExecError;
use plan::PartyIdx;
use std::collections::BTreeMap;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

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
    /// Sends every frame held back. The executor calls it before any step
    /// that may take long, and when a party's program ends.
    fn flush(&mut self) -> Result<(), ExecError> {
        Ok(())
    }
}

/// One party's end of an in-process mesh.
pub struct ChannelTransport {
    me: PartyIdx,
    names: Vec<String>,
    to: BTreeMap<PartyIdx, Sender<Vec<u8>>>,
    from: BTreeMap<PartyIdx, Receiver<Vec<u8>>>,
    timeout: Duration,
}

impl ChannelTransport {
    /// A full mesh between `names.len()` parties; a receive that waits
    /// longer than `timeout` fails.
    pub fn mesh(names: &[String], timeout: Duration) -> Vec<ChannelTransport> {
        let n = names.len() as PartyIdx;
        let mut ends: Vec<ChannelTransport> = (0..n)
            .map(|me| ChannelTransport {
                me,
                names: names.to_vec(),
                to: BTreeMap::new(),
                from: BTreeMap::new(),
                timeout,
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

    fn name(&self, p: PartyIdx) -> &str {
        self.names.get(p as usize).map_or("?", String::as_str)
    }
}

impl Transport for ChannelTransport {
    fn send(&mut self, to: PartyIdx, frame: Vec<u8>) -> Result<(), ExecError> {
        let tx = self
            .to
            .get(&to)
            .ok_or_else(|| ExecError::transport(format!("no channel to party {to}")))?;
        tx.send(frame)
            .map_err(|_| ExecError::transport(format!("{} has stopped", self.name(to))))
    }

    fn recv(&mut self, from: PartyIdx) -> Result<Vec<u8>, ExecError> {
        let rx = self
            .from
            .get(&from)
            .ok_or_else(|| ExecError::transport(format!("no channel from party {from}")))?;
        match rx.recv_timeout(self.timeout) {
            Ok(f) => Ok(f),
            Err(RecvTimeoutError::Timeout) => Err(ExecError::transport(format!(
                "{} timed out waiting for {} ({} s)",
                self.name(self.me),
                self.name(from),
                self.timeout.as_secs()
            ))),
            Err(RecvTimeoutError::Disconnected) => Err(ExecError::transport(format!(
                "{} stopped before sending its message",
                self.name(from)
            ))),
        }
    }
}
