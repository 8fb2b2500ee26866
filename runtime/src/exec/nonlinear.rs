//! Comparison-based instructions (relu, max, min, argmax, clamp): each runs
//! the secure-comparison protocol of `sharing::compare` with the peer, its
//! rounds carried by the party's transport.
//!
//! The dealer (or, without one, the two parties' Paillier preprocessing)
//! must generate correlations in exactly the order the protocol asks for
//! them. That order depends only on the shapes; [`request_order`]
//! computes it with `sharing::compare::requests`, and a test checks it
//! against a recorded run of every operation.

use super::wire::{self, Wire};
use super::{ExecError, Stats, Transport};
use crate::sharing::{
    self, Correlations, Engine, Exchange, Message, SelectKind, Share, SharingError,
};
use plan::{NonlinearOp, PartyIdx};

/// One request for correlated randomness, of either family.
pub(super) use crate::sharing::CorrelationRequest as Request;

/// The executor's transport, seen by the comparison protocols as an
/// `Exchange` with the peer: one frame each way per round.
pub(super) struct PeerExchange<'a> {
    pub t: &'a mut dyn Transport,
    pub peer: PartyIdx,
    pub stats: &'a mut Stats,
    /// The transport's own error, kept so it is reported as such.
    pub failure: Option<ExecError>,
}

impl Exchange for PeerExchange<'_> {
    fn exchange(&mut self, msg: Message) -> sharing::Result<Message> {
        let out = match msg {
            Message::Open(m) => Wire::Ring(m),
            Message::Beaver(b) => Wire::Beaver(b),
        };
        let frame = wire::encode(&[out]);
        self.stats.bytes_sent += frame.len() as u64;
        self.stats.frames_sent += 1;
        let reply = self
            .t
            .send(self.peer, frame)
            .and_then(|()| self.t.recv(self.peer));
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                let text = e.message.clone();
                self.failure = Some(e);
                return Err(SharingError::Exchange(text));
            }
        };
        self.stats.bytes_received += reply.len() as u64;
        self.stats.rounds += 1;
        match wire::decode(&reply)
            .map_err(|e| SharingError::Exchange(e.to_string()))?
            .pop()
        {
            Some(Wire::Ring(m)) => Ok(Message::Open(m)),
            Some(Wire::Beaver(b)) => Ok(Message::Beaver(b)),
            _ => Err(SharingError::Exchange(
                "the peer sent an unexpected message during a comparison".into(),
            )),
        }
    }
}

/// Run `op` on `args` (this party's shares), whose compared values lie
/// within `2^bits` (the plan's bound; the engine is left at full width).
pub(crate) fn run<C: Correlations, E: Exchange>(
    engine: &mut Engine<C>,
    ex: &mut E,
    op: &NonlinearOp,
    bits: u32,
    args: &[&Share],
) -> sharing::Result<Share> {
    engine.set_compare_bits(bits)?;
    let out = run_op(engine, ex, op, args);
    engine.set_compare_bits(plan::params::COMPARE_FULL_BITS)?;
    out
}

fn run_op<C: Correlations, E: Exchange>(
    engine: &mut Engine<C>,
    ex: &mut E,
    op: &NonlinearOp,
    args: &[&Share],
) -> sharing::Result<Share> {
    let bad = || SharingError::BadParameter("wrong number of operands");
    let a = *args.first().ok_or_else(bad)?;
    match op {
        NonlinearOp::Relu => engine.relu(ex, a),
        NonlinearOp::Max => engine.max_elem(ex, a, args.get(1).ok_or_else(bad)?),
        NonlinearOp::Min => engine.min_elem(ex, a, args.get(1).ok_or_else(bad)?),
        NonlinearOp::MaxReduce => engine.max_last_axis(ex, a),
        NonlinearOp::Argmax => {
            let (_, idx) = engine.argmax_last_axis(ex, a)?;
            // An integer index; as a fixed-point value.
            Ok(idx.mul_public_scalar(1u64 << engine.fixed_point().frac_bits()))
        }
        NonlinearOp::MaxArgmax => {
            let (m, idx) = engine.argmax_last_axis(ex, a)?;
            let idx = idx.mul_public_scalar(1u64 << engine.fixed_point().frac_bits());
            // Stacked on a new last axis: [max, index] per row.
            let mut shape = m.shape().to_vec();
            let data: Vec<u64> = m
                .value()
                .data()
                .iter()
                .zip(idx.value().data())
                .flat_map(|(&v, &i)| [v, i])
                .collect();
            shape.push(2);
            Ok(Share::new(
                m.party(),
                sharing::RingTensor::new(data, shape)?,
            ))
        }
        NonlinearOp::Clamp { lo, hi } => engine.clamp(ex, a, *lo, *hi),
    }
}

/// The correlations `op` asks for on operands of these shapes, comparing
/// values within `2^bits`, in order.
pub(crate) fn request_order(
    op: &NonlinearOp,
    shapes: &[Vec<usize>],
    kind: SelectKind,
    bits: u32,
) -> Result<Vec<Request>, ExecError> {
    use crate::sharing::compare::{requests, Payload};
    let first = shapes
        .first()
        .ok_or_else(|| ExecError::protocol("a comparison without operands"))?;
    Ok(match op {
        NonlinearOp::Relu | NonlinearOp::Max | NonlinearOp::Min => {
            requests::compare_then_product(first, kind, bits)?
        }
        NonlinearOp::Clamp { .. } => requests::clamp(first, kind, bits)?,
        NonlinearOp::MaxReduce => requests::tournament(first, Payload::None, kind, bits)?,
        NonlinearOp::Argmax | NonlinearOp::MaxArgmax => {
            requests::tournament(first, Payload::Index, kind, bits)?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sharing::{
        Dealer, DealerSource, FixedPoint, Party, RecordingCorrelations, RingTensor, TruncMode,
    };

    /// The requests of a real run of `op` on zeros between two parties.
    fn recorded(
        op: &NonlinearOp,
        shapes: &[Vec<usize>],
        kind: SelectKind,
        bits: u32,
    ) -> sharing::Result<Vec<Request>> {
        let fp = FixedPoint::default();
        let (s0, s1, _) = DealerSource::online_pair(Dealer::new_with_fixed_seed_for_tests(1));
        let mut e0 =
            Engine::new(fp, TruncMode::Dealer, RecordingCorrelations::new(s0)).with_select(kind);
        let mut e1 = Engine::new(fp, TruncMode::Dealer, s1).with_select(kind);
        let zeros = |p: Party| -> sharing::Result<Vec<Share>> {
            shapes
                .iter()
                .map(|s| Ok(Share::new(p, RingTensor::zeros(s)?)))
                .collect()
        };
        let (a0, a1) = (zeros(Party::P0)?, zeros(Party::P1)?);
        sharing::driver::run_two_party(
            |ex| run(&mut e0, ex, op, bits, &a0.iter().collect::<Vec<_>>()),
            |ex| run(&mut e1, ex, op, bits, &a1.iter().collect::<Vec<_>>()),
        )?;
        Ok(e0.correlations().log.clone())
    }

    #[test]
    fn computed_request_order_matches_a_recorded_run() {
        let ops = [
            NonlinearOp::Relu,
            NonlinearOp::Max,
            NonlinearOp::Min,
            NonlinearOp::Clamp { lo: -2.0, hi: 3.0 },
            NonlinearOp::MaxReduce,
            NonlinearOp::Argmax,
            NonlinearOp::MaxArgmax,
        ];
        let shapes: [&[usize]; 6] = [&[1], &[5], &[3, 4], &[2, 7], &[33], &[2, 3, 9]];
        let kinds = [
            (SelectKind::Beaver, 63),
            (SelectKind::Ot, 63),
            (SelectKind::Ot, 22),
            (SelectKind::Ot, 5),
            (SelectKind::Dcf, 63),
            (SelectKind::Dcf, 22),
            (SelectKind::Beaver, 20),
        ];
        for (op, (kind, bits)) in ops.iter().flat_map(|op| kinds.map(|k| (op, k))) {
            for shape in shapes {
                let arity = if matches!(op, NonlinearOp::Max | NonlinearOp::Min) {
                    2
                } else {
                    1
                };
                let args = vec![shape.to_vec(); arity];
                let want = recorded(op, &args, kind, bits).unwrap();
                let got = request_order(op, &args, kind, bits).unwrap();
                assert!(!want.is_empty() || shape.last() == Some(&1));
                assert_eq!(got, want, "{op:?} on {shape:?} ({kind:?}, {bits} bits)");
                // The OT flavour never asks for what it replaces.
                let replaced = |r: &Request| {
                    matches!(
                        r,
                        Request::DaBits { .. } | Request::ElementwiseTriple { .. }
                    )
                };
                assert!(
                    want.is_empty() || (kind == SelectKind::Ot) != want.iter().any(replaced),
                    "{op:?} {kind:?}"
                );
            }
        }
    }
}
