//! The executor's side of dealer-free preprocessing: it drives the sans-I/O
//! state machines of [`crate::preprocess::twoparty`] and does their sends and
//! receives. Each message is a stream of frames of at most [`FRAME_BYTES`]
//! (one frame unless the preprocessing is large; the TCP transport refuses
//! frames above 256 MiB by default); both sides know the counts, so the
//! split is implicit.

use super::wire::{self, Wire};
use super::{Exec, ExecError, Stats, Transport};
use crate::preprocess::crossterms::chunks;
use crate::preprocess::otgen::{OtParty0, OtParty1};
use crate::preprocess::twoparty::{Party0, Party1};
use crate::sharing::{Party, PrecomputedCorrelations};
use num_bigint::BigUint;
use plan::{CorrelationEngine, PartyIdx};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Generates every correlation the plan's run will ask for (Beaver triples
/// and comparison correlations, in protocol order), by `engine`.
pub(super) fn generate(
    ex: &mut Exec<'_>,
    peer: PartyIdx,
    engine: CorrelationEngine,
    t: &mut dyn Transport,
) -> Result<PrecomputedCorrelations, ExecError> {
    let role = ex.role()?;
    let mut rng = crate::sharing::share::os_rng()?;
    let order = ex.request_order()?;
    if order.is_empty() {
        return Ok(PrecomputedCorrelations::new(role));
    }
    if engine == CorrelationEngine::Ot {
        return by_ot(ex, peer, t, order, role, &mut rng);
    }
    // Paillier: one exchange, party 0's ciphertexts then party 1's replies.
    match role {
        Party::P0 => {
            let kp = ex.keypair.clone().ok_or_else(|| {
                ExecError::protocol("party 0 needs its key pair to generate correlations")
            })?;
            let (p0, out) = Party0::start(kp, order, &mut rng, ex.opts.progress.as_deref())?;
            let bits = p0.key_bits();
            send_stream(ex, t, peer, out, bits)?;
            let back = recv_stream(ex, t, peer, p0.expected_replies(), bits)?;
            p0.finish(back)
        }
        Party::P1 => {
            let pk = ex.key_for(peer)?.clone();
            let p1 = Party1::start(pk, order, &mut rng)?;
            let bits = p1.key_bits();
            let got = recv_stream(ex, t, peer, p1.expected_inputs(), bits)?;
            let (replies, p1) = p1.reply(got, &mut rng)?;
            send_stream(ex, t, peer, replies, bits)?;
            p1.finish()
        }
    }
}

/// The OT extensions two parties keep between their sessions over one
/// connection (a service's client connection, the chunks of one run), so
/// that a session after the first needs no base OTs: the public-key part
/// of dealer-free preprocessing, most of a batch-1 session's time.
///
/// Keeping the extension makes every session's OTs part of one SoftSpoken
/// extension between the same two parties: `Δ` and the base seeds stay,
/// while every OT has a fresh index (the tweak of its hash) and fresh
/// random choices, so no correlation is shared between sessions. A
/// session that fails drops the extensions it took; the next one on the
/// connection then does base OTs afresh (or is refused, if only one side
/// kept its extension: the connection is then out of step and closes).
/// At most [`OtLink::KEEP`] extensions per side are kept.
///
/// The link keeps RLWE keys the same way: the key pair a party encrypts
/// its queries under (taken by a session's `rlwe.keygen`, put back when
/// the session succeeds) and the peer's public keys (kept when first
/// parsed), each named by its public key's random seed. A later session
/// sends that seed instead of a new public key ([`RlweKind::KeptKey`]),
/// which saves the encrypting party its key generation and the other its
/// parsing and NTTs. An RLWE key encrypts any number of queries (each is
/// a fresh RLWE sample; the results are re-randomised and flooded per
/// session as before), which is how Cheetah and SPU use one key per link.
/// A session that fails drops the key pair it took.
///
/// [`RlweKind::KeptKey`]: super::wire::RlweKind::KeptKey
#[derive(Default)]
pub struct OtLink {
    senders: std::sync::Mutex<Vec<(u64, ot::softspoken::Sender)>>,
    receivers: std::sync::Mutex<Vec<(u64, ot::softspoken::Receiver)>>,
    /// By party: its RLWE client and its public key's seed.
    rlwe_clients: std::sync::Mutex<Vec<(PartyIdx, rlwe::Seed, rlwe::Client)>>,
    /// By party: the peers' public keys it kept, by seed, oldest first.
    rlwe_peers: std::sync::Mutex<Vec<(PartyIdx, rlwe::Seed, Arc<rlwe::PeerKey>)>>,
}

impl std::fmt::Debug for OtLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The extensions' seeds are secret: only their count is shown.
        f.debug_struct("OtLink")
            .field(
                "senders",
                &self.senders.lock().map(|v| v.len()).unwrap_or(0),
            )
            .field(
                "receivers",
                &self.receivers.lock().map(|v| v.len()).unwrap_or(0),
            )
            .field(
                "rlwe_clients",
                &self.rlwe_clients.lock().map(|v| v.len()).unwrap_or(0),
            )
            .field(
                "rlwe_peers",
                &self.rlwe_peers.lock().map(|v| v.len()).unwrap_or(0),
            )
            .finish()
    }
}

impl OtLink {
    /// Most extensions kept per side (two chunks in flight need two).
    pub const KEEP: usize = 4;

    pub fn new() -> OtLink {
        OtLink::default()
    }

    fn take_sender(&self, id: u64) -> Option<ot::softspoken::Sender> {
        let mut v = self.senders.lock().ok()?;
        let i = v.iter().position(|(k, _)| *k == id)?;
        Some(v.swap_remove(i).1)
    }

    /// Keeps `s` under `id`; false if the link is full.
    fn put_sender(&self, id: u64, s: ot::softspoken::Sender) -> bool {
        let Ok(mut v) = self.senders.lock() else {
            return false;
        };
        v.retain(|(k, _)| *k != id);
        if v.len() < Self::KEEP {
            v.push((id, s));
            true
        } else {
            false
        }
    }

    /// A key pair `me` kept, made with parameters `fingerprint`.
    pub(super) fn take_rlwe_client(
        &self,
        me: PartyIdx,
        fingerprint: u64,
    ) -> Option<(rlwe::Seed, rlwe::Client)> {
        let mut v = self.rlwe_clients.lock().ok()?;
        let i = v
            .iter()
            .position(|(p, _, c)| *p == me && c.params().fingerprint() == fingerprint)?;
        let (_, seed, client) = v.swap_remove(i);
        Some((seed, client))
    }

    /// Keeps `me`'s key pair (named by its public key's seed) for a later
    /// session; dropped if the link is full.
    pub(super) fn put_rlwe_client(&self, me: PartyIdx, seed: rlwe::Seed, client: rlwe::Client) {
        if let Ok(mut v) = self.rlwe_clients.lock() {
            if v.len() < Self::KEEP {
                v.push((me, seed, client));
            }
        }
    }

    /// The peer's public key `me` kept under `seed`.
    pub(super) fn rlwe_peer(&self, me: PartyIdx, seed: &rlwe::Seed) -> Option<Arc<rlwe::PeerKey>> {
        let v = self.rlwe_peers.lock().ok()?;
        v.iter()
            .find(|(p, s, _)| *p == me && s == seed)
            .map(|(_, _, k)| k.clone())
    }

    /// Keeps a peer's public key; the oldest goes when the link is full.
    pub(super) fn put_rlwe_peer(&self, me: PartyIdx, seed: rlwe::Seed, key: Arc<rlwe::PeerKey>) {
        if let Ok(mut v) = self.rlwe_peers.lock() {
            v.retain(|(p, s, _)| !(*p == me && *s == seed));
            if v.len() >= Self::KEEP {
                v.remove(0);
            }
            v.push((me, seed, key));
        }
    }

    fn take_receiver(&self) -> Option<(u64, ot::softspoken::Receiver)> {
        self.receivers.lock().ok()?.pop()
    }

    fn put_receiver(&self, id: u64, r: ot::softspoken::Receiver) {
        if let Ok(mut v) = self.receivers.lock() {
            if v.len() < Self::KEEP {
                v.push((id, r));
            }
        }
    }
}

/// Party 1's first OT message: base OTs afresh, or a kept extension.
const HELLO_FRESH: u8 = 0;
const HELLO_RESUME: u8 = 1;

/// By oblivious transfer: party 1 starts the base OTs (or resumes an
/// extension kept on the [`OtLink`]), party 0 answers; then per piece
/// party 1 sends an extension message and party 0 the corrections (and
/// its reverse extension, when party 1 sends random OTs). Party 1 sends
/// the next piece's extension before it waits for the current
/// corrections, so both parties compute at once; at most two pieces are
/// in flight.
fn by_ot(
    ex: &mut Exec<'_>,
    peer: PartyIdx,
    t: &mut dyn Transport,
    order: Vec<crate::sharing::CorrelationRequest>,
    role: Party,
    rng: &mut rand_chacha::ChaCha20Rng,
) -> Result<PrecomputedCorrelations, ExecError> {
    let link = ex.opts.ot_link.clone();
    match role {
        Party::P0 => {
            let hello = recv_ot(ex, t, peer)?;
            let (tag, id, rest) = match hello.as_slice() {
                [tag, rest @ ..] if rest.len() >= 8 => {
                    let (id, rest) = rest.split_at(8);
                    (
                        *tag,
                        u64::from_le_bytes(id.try_into().expect("8 bytes")),
                        rest,
                    )
                }
                _ => {
                    return Err(ExecError::protocol(
                        "malformed oblivious-transfer hello from the peer (too short)",
                    ))
                }
            };
            let mut p0 = match tag {
                HELLO_FRESH => {
                    let (p0, reply) = OtParty0::start(order, rest, rng)?;
                    send_ot(ex, t, peer, reply)?;
                    p0
                }
                HELLO_RESUME => {
                    let at = <[u8; 8]>::try_from(rest)
                        .map(u64::from_le_bytes)
                        .map_err(|_| {
                            ExecError::protocol("malformed oblivious-transfer resume from the peer")
                        })?;
                    let sender = link
                        .as_ref()
                        .and_then(|l| l.take_sender(id))
                        .filter(|s| s.next_index() == at)
                        .ok_or_else(|| {
                            ExecError::protocol(
                                "the peer continues an oblivious-transfer extension this party                                  does not hold (an earlier session on this connection failed):                                  reconnect",
                            )
                        })?;
                    OtParty0::resume(order, sender, rng)?
                }
                other => {
                    return Err(ExecError::protocol(format!(
                        "malformed oblivious-transfer hello from the peer (kind {other})"
                    )))
                }
            };
            let progress = ex.opts.progress.clone();
            let n = p0.pieces();
            if let Some(p) = &progress {
                p.ot_total.store(n as u64, Ordering::Relaxed);
            }
            let mut last = None;
            for i in 0..n {
                let (ext, at) = recv_ot_frame(ex, t, peer)?;
                // The corrections are written into their frame as computed
                // and the extension read from its frame: no copies.
                let mut corrections = wire::ot_frame(0);
                p0.answer_into(i, &ext[at..], rng, &mut corrections)?;
                if i + 1 < n {
                    send_ot_frame(ex, t, peer, corrections)?;
                } else {
                    last = Some(corrections);
                }
                if let Some(p) = &progress {
                    p.ot_done.fetch_add(1, Ordering::Relaxed);
                }
            }
            let (out, sender) = p0.finish_keeping()?;
            // Kept before the last corrections go (party 1 can resume only
            // after it has them), and said so in their last byte: party 1
            // keeps its side only if this side kept its own.
            if let Some(mut c) = last {
                let kept = link.as_ref().is_some_and(|l| l.put_sender(id, sender));
                c.push(u8::from(kept));
                send_ot_frame(ex, t, peer, c)?;
            }
            Ok(out)
        }
        Party::P1 => {
            let kept = link.as_ref().and_then(|l| l.take_receiver());
            let (mut p1, id) = match kept {
                Some((id, receiver)) => {
                    let at = receiver.next_index();
                    let p1 = OtParty1::resume(order, receiver, rng)?;
                    let mut hello = vec![HELLO_RESUME];
                    hello.extend_from_slice(&id.to_le_bytes());
                    hello.extend_from_slice(&at.to_le_bytes());
                    send_ot(ex, t, peer, hello)?;
                    (p1, id)
                }
                None => {
                    let id: u64 = rand::RngExt::random(rng);
                    let (mut p1, base) = OtParty1::start(order, rng)?;
                    let mut hello = vec![HELLO_FRESH];
                    hello.extend_from_slice(&id.to_le_bytes());
                    hello.extend_from_slice(&base);
                    send_ot(ex, t, peer, hello)?;
                    let reply = recv_ot(ex, t, peer)?;
                    p1.set_up(&reply)?;
                    (p1, id)
                }
            };
            let n = p1.pieces();
            let mut pending = std::collections::VecDeque::new();
            for i in 0..n {
                let mut ext = wire::ot_frame(0);
                let p = p1.extend_into(i, rng, &mut ext)?;
                send_ot_frame(ex, t, peer, ext)?;
                pending.push_back(p);
                if pending.len() == 2 {
                    let (corrections, at) = recv_ot_frame(ex, t, peer)?;
                    p1.absorb(
                        pending.pop_front().expect("two pending"),
                        &corrections[at..],
                    )?;
                }
            }
            let mut peer_kept = false;
            while let Some(p) = pending.pop_front() {
                let (frame, at) = recv_ot_frame(ex, t, peer)?;
                let mut corrections = &frame[at..];
                if pending.is_empty() {
                    // The last piece's corrections end with party 0's flag.
                    let (flag, rest) = match corrections.split_last() {
                        Some((&0, rest)) => (false, rest),
                        Some((&1, rest)) => (true, rest),
                        _ => {
                            return Err(ExecError::protocol(
                                "malformed oblivious-transfer corrections from the peer (no \
                                 closing flag)",
                            ))
                        }
                    };
                    peer_kept = flag;
                    corrections = rest;
                }
                p1.absorb(p, corrections)?;
            }
            let (out, receiver) = p1.finish_keeping()?;
            if let (Some(l), Some(r), true) = (&link, receiver, peer_kept) {
                l.put_receiver(id, r);
            }
            Ok(out)
        }
    }
}

fn send_ot(
    ex: &mut Exec<'_>,
    t: &mut dyn Transport,
    to: PartyIdx,
    bytes: Vec<u8>,
) -> Result<(), ExecError> {
    let mut frame = wire::ot_frame(bytes.len());
    frame.extend_from_slice(&bytes);
    send_ot_frame(ex, t, to, frame)
}

/// [`send_ot`] of a frame from `wire::ot_frame` whose payload is written.
fn send_ot_frame(
    ex: &mut Exec<'_>,
    t: &mut dyn Transport,
    to: PartyIdx,
    mut frame: Vec<u8>,
) -> Result<(), ExecError> {
    wire::seal_ot_frame(&mut frame);
    ex.stats.bytes_sent += frame.len() as u64;
    ex.stats.frames_sent += 1;
    ex.sent_since_recv = true;
    t.send(to, frame)
}

fn recv_ot(ex: &mut Exec<'_>, t: &mut dyn Transport, from: PartyIdx) -> Result<Vec<u8>, ExecError> {
    let (frame, at) = recv_ot_frame(ex, t, from)?;
    Ok(frame[at..].to_vec())
}

/// The peer's next oblivious-transfer message: its frame and where the
/// payload starts in it (read in place, not copied out).
fn recv_ot_frame(
    ex: &mut Exec<'_>,
    t: &mut dyn Transport,
    from: PartyIdx,
) -> Result<(Vec<u8>, usize), ExecError> {
    let frame = t.recv(from)?;
    ex.stats.bytes_received += frame.len() as u64;
    if std::mem::take(&mut ex.sent_since_recv) {
        ex.stats.rounds += 1;
    }
    let payload = wire::ot_payload(&frame).map_err(|e| {
        ExecError::protocol(format!("malformed oblivious-transfer message: {e}")).with_source(e)
    })?;
    match payload {
        Some(p) => {
            let at = frame.len() - p.len();
            Ok((frame, at))
        }
        None => Err(ExecError::protocol(
            "expected an oblivious-transfer message from the peer",
        )),
    }
}

/// Largest frame of the exchange (well below the TCP transport's default
/// limit of 256 MiB).
pub const FRAME_BYTES: usize = 64 << 20;

/// Ciphertexts per frame for a key of `key_bits` (each at most `2·|n|` bits,
/// plus the wire's length prefix).
fn per_frame(key_bits: u64) -> usize {
    (FRAME_BYTES / ((2 * key_bits as usize).div_ceil(8) + 16)).max(1)
}

/// Frame sizes for `total` ciphertexts, `per` at most per frame (at least
/// one frame, possibly empty, so an exchange is always one message each way).
fn frame_sizes(total: usize, per: usize) -> Vec<usize> {
    if total == 0 {
        return vec![0];
    }
    chunks(total, per).map(|(_, len)| len).collect()
}

fn send_stream(
    ex: &mut Exec<'_>,
    t: &mut dyn Transport,
    to: PartyIdx,
    cts: Vec<BigUint>,
    key_bits: u64,
) -> Result<(), ExecError> {
    send_frames(
        &mut ex.stats,
        &mut ex.sent_since_recv,
        t,
        to,
        cts,
        per_frame(key_bits),
    )
}

fn recv_stream(
    ex: &mut Exec<'_>,
    t: &mut dyn Transport,
    from: PartyIdx,
    total: usize,
    key_bits: u64,
) -> Result<Vec<BigUint>, ExecError> {
    recv_frames(
        &mut ex.stats,
        &mut ex.sent_since_recv,
        t,
        from,
        total,
        per_frame(key_bits),
    )
}

fn send_frames(
    stats: &mut Stats,
    sent_since_recv: &mut bool,
    t: &mut dyn Transport,
    to: PartyIdx,
    cts: Vec<BigUint>,
    per: usize,
) -> Result<(), ExecError> {
    let mut it = cts.into_iter();
    for len in frame_sizes(it.len(), per) {
        let part: Vec<BigUint> = it.by_ref().take(len).collect();
        let frame = wire::encode(&[Wire::Ciphers {
            shape: vec![part.len()],
            cts: part,
        }]);
        stats.bytes_sent += frame.len() as u64;
        stats.frames_sent += 1;
        *sent_since_recv = true;
        t.send(to, frame)?;
    }
    Ok(())
}

fn recv_frames(
    stats: &mut Stats,
    sent_since_recv: &mut bool,
    t: &mut dyn Transport,
    from: PartyIdx,
    total: usize,
    per: usize,
) -> Result<Vec<BigUint>, ExecError> {
    let mut out = Vec::with_capacity(total);
    for len in frame_sizes(total, per) {
        let frame = t.recv(from)?;
        stats.bytes_received += frame.len() as u64;
        if std::mem::take(sent_since_recv) {
            stats.rounds += 1;
        }
        let mut values = wire::decode(&frame).map_err(|e| {
            ExecError::protocol(format!("malformed correlation-generation message: {e}"))
                .with_source(e)
        })?;
        match (values.pop(), values.is_empty()) {
            (Some(Wire::Ciphers { shape, cts }), true) if shape == [len] && cts.len() == len => {
                out.extend(cts)
            }
            _ => {
                return Err(ExecError::protocol(
                    "correlation-generation message does not hold the expected ciphertexts",
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_the_stream() {
        assert_eq!(frame_sizes(0, 5), vec![0]);
        assert_eq!(frame_sizes(12, 5), vec![5, 5, 2]);
        assert_eq!(frame_sizes(10, 5), vec![5, 5]);
        // 2048-bit keys: 512-byte ciphertexts, about 126k per 64 MiB frame.
        assert_eq!(per_frame(2048), FRAME_BYTES / 528);
        // Over a transport, 3 per frame: 8 values in 3 frames, one round.
        let names = ["a".to_string(), "b".to_string()];
        let mut mesh =
            super::super::ChannelTransport::mesh(&names, std::time::Duration::from_secs(5));
        let mut tb = mesh.pop().unwrap();
        let mut ta = mesh.pop().unwrap();
        let vals: Vec<BigUint> = (1u32..=8).map(BigUint::from).collect();
        let (mut sa, mut sb) = (Stats::default(), Stats::default());
        let (mut fa, mut fb) = (false, false);
        send_frames(&mut sa, &mut fa, &mut ta, 1, vals.clone(), 3).unwrap();
        assert_eq!(sa.frames_sent, 3);
        let got = recv_frames(&mut sb, &mut fb, &mut tb, 0, 8, 3).unwrap();
        assert_eq!(got, vals);
        // A short stream is an error, not a hang or a panic.
        send_frames(&mut sa, &mut fa, &mut ta, 1, vals[..2].to_vec(), 3).unwrap();
        assert!(recv_frames(&mut sb, &mut fb, &mut tb, 0, 3, 3).is_err());
    }
}
