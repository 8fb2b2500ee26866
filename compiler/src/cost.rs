//! The cost model: one table of per-operation costs (measured by the
//! runtime's benchmarks, see BENCHMARKS.md), the cost of each protocol
//! primitive built from it, and the network profiles. Protocol parameters
//! the runtime shares (rounds, mask slack) come from `plan::params`.

use plan::params::{AND_GATES_PER_MSB, MASK_SLACK_BITS};
use std::collections::{BTreeMap, BTreeSet};

/// Per-operation costs, in seconds per element unless noted. Keep this the
/// only place such numbers live.
#[derive(Clone, Debug, PartialEq)]
pub struct CostTable {
    /// Paillier key size the plan asks for.
    pub key_bits: u32,
    /// Public-key (DJN) encryption of one value.
    pub paillier_encrypt: f64,
    /// CRT decryption of one ciphertext.
    pub paillier_decrypt: f64,
    /// One ciphertext × plaintext product inside a multi-exponentiation
    /// (encrypted dot product), per term.
    pub paillier_mul_term: f64,
    /// Ciphertext + ciphertext.
    pub paillier_add: f64,
    /// One ring operation on shares or clear values.
    pub ring_op: f64,
    /// One multiply-accumulate of a matrix product over the ring.
    pub ring_mac: f64,
    /// Dealer-side generation of one element of correlated randomness.
    pub dealer_element: f64,
    /// Two-party generation of one element of a Beaver triple with Paillier
    /// (amortised over packing).
    pub paillier_triple_element: f64,
}

impl CostTable {
    /// Costs for a key size (3072 default, 2048 allowed).
    pub fn for_key_bits(key_bits: u32) -> CostTable {
        // Measured with `cargo bench -p paillier` on the reference machine
        // (2-core AMD EPYC); see BENCHMARKS.md. 2048-bit numbers scale by
        // roughly (2048/3072)^2 for multiplications, ^3 for exponentiations.
        let (enc, dec, term, add) = if key_bits <= 2048 {
            (0.35e-3, 3.0e-3, 0.09e-3, 9e-6)
        } else {
            (0.9e-3, 9.0e-3, 0.25e-3, 20e-6)
        };
        CostTable {
            key_bits,
            paillier_encrypt: enc,
            paillier_decrypt: dec,
            paillier_mul_term: term,
            paillier_add: add,
            ring_op: 1.0e-9,
            ring_mac: 0.7e-9,
            dealer_element: 6.0e-9,
            paillier_triple_element: (2.0 * enc + 2.0 * term + dec) / 8.0,
        }
    }

    /// Two-party (Paillier) preprocessing of one secure comparison element
    /// without a dealer: `(seconds, bytes)`. Party 0 encrypts 63 weighted
    /// bits for the mask shared bitwise, one plaintext per AND triple (125
    /// per comparison; three slots each), 1 for the daBit and 2 for the
    /// select's Beaver triple; party 1 returns one ciphertext per group of
    /// slots (a fresh mask encryption each), which party 0 decrypts. Bit
    /// exponents are plain multiplications (counted as additions).
    pub fn paillier_comparison(&self) -> (f64, f64) {
        let and = f64::from(AND_GATES_PER_MSB);
        let bit_inputs = 63.0 + and + 1.0;
        let inputs = bit_inputs + 2.0;
        let replies = 1.0 / cross_slots(self.key_bits, 64)
            + and / (cross_slots(self.key_bits, 3) / 3.0).floor().max(1.0)
            + 1.0 / cross_slots(self.key_bits, 2)
            + 1.0 / cross_slots(self.key_bits, 129);
        let compute = (inputs + replies) * self.paillier_encrypt
            + replies * self.paillier_decrypt
            + 2.0 * self.paillier_mul_term
            + bit_inputs * self.paillier_add;
        (compute, (inputs + replies) * self.ciphertext_bytes())
    }

    /// Two-party (Paillier) preprocessing of one daBit without a dealer:
    /// `(seconds, bytes)`. Party 0 encrypts its bit; party 1 raises it to
    /// its own bit (an addition) inside one reply per group of slots, each
    /// with a fresh mask encryption that party 0 decrypts. Truncation
    /// without a dealer uses one per element.
    pub fn paillier_dabit(&self) -> (f64, f64) {
        let replies = 1.0 / cross_slots(self.key_bits, 2);
        let compute = (1.0 + replies) * self.paillier_encrypt
            + replies * self.paillier_decrypt
            + self.paillier_add;
        (compute, (1.0 + replies) * self.ciphertext_bytes())
    }

    /// Bytes of one Paillier ciphertext (an element of Z_{n²}).
    pub fn ciphertext_bytes(&self) -> f64 {
        (2 * self.key_bits / 8) as f64
    }

    /// Beaver triples for `elements` elements: from the dealer, or generated
    /// by the two parties with Paillier (four elements per ciphertext).
    pub fn triple(&self, dealer: bool, elements: f64) -> Cost {
        if dealer {
            Cost::compute(elements * self.dealer_element) + Cost::comm(elements * RING_BYTES, 0)
        } else {
            Cost::compute(elements * self.paillier_triple_element)
                + Cost::comm(elements * self.ciphertext_bytes() / 4.0, 0)
        }
    }

    /// A Beaver product of `x` and `y` elements into `z`: each party sends
    /// its shares of x − a and y − b, one round.
    pub fn beaver(&self, dealer: bool, x: f64, y: f64, z: f64) -> Cost {
        self.triple(dealer, x + y + z)
            + Cost::comm(2.0 * (x + y) * RING_BYTES, 1)
            + Cost::compute((x + y + z) * 4.0 * self.ring_op)
    }

    /// Truncation of `n` elements: a dealer's truncation pair and a masked
    /// opening each way, or without a dealer one daBit per element and one
    /// bit each way.
    pub fn trunc(&self, dealer: bool, n: f64) -> Cost {
        if dealer {
            Cost::compute(n * (3.0 * self.dealer_element + 4.0 * self.ring_op))
                + Cost::comm(n * 3.0 * RING_BYTES, 0)
                + Cost::comm(2.0 * n * RING_BYTES, 1)
        } else {
            let (seconds, bytes) = self.paillier_dabit();
            Cost::compute(n * (seconds + 8.0 * self.ring_op))
                + Cost::comm(n * bytes, 0)
                + Cost::comm(2.0 * n / 8.0, 1)
        }
    }

    /// `n` secure comparisons (MSB extraction: masked opening, a 6-level
    /// carry tree of AND gates, a bit conversion) and a Beaver select each,
    /// in `rounds` rounds; the correlations come from the dealer, or without
    /// one from the Paillier preprocessing of [`CostTable::paillier_comparison`].
    pub fn comparison(&self, dealer: bool, n: f64, rounds: u32) -> Cost {
        let pre = if dealer {
            Cost::comm(n * COMPARISON_DEALER_BYTES, 0)
        } else {
            let (compute, bytes) = self.paillier_comparison();
            Cost::compute(n * compute) + Cost::comm(n * bytes, 0)
        };
        Cost::compute(n * COMPARISON_RING_OPS * self.ring_op)
            + Cost::comm(n * COMPARISON_ONLINE_BYTES, rounds)
            + pre
    }

    /// `x @ w` ([.., k] @ [k, ..], `nx`, `nw`, `nz` elements) by an
    /// input-holder triple: each side sends its masked input once (one
    /// round); the dealer expands a and b and sends the correction of c.
    pub fn holder_matmul(&self, nx: f64, nw: f64, nz: f64, k: f64) -> Cost {
        Cost::comm((nx + nw) * RING_BYTES, 1)
            + Cost::comm(nz * RING_BYTES, 0)
            + Cost::compute(
                (nx + nw + 2.0 * nz) * self.dealer_element + 3.0 * nz * k * self.ring_mac,
            )
    }
}

/// Slots per ciphertext of the two-party cross terms whose sums stay below
/// `2^bound_bits`: `⌊(|n| − 2) / (bound + slack + 1)⌋` (the mask slack and a
/// carry bit, as the runtime's `exec::crossterms::Layout`).
pub fn cross_slots(key_bits: u32, bound_bits: u32) -> f64 {
    (key_bits.saturating_sub(2) / (bound_bits + MASK_SLACK_BITS + 1)).max(1) as f64
}

/// One ring element on the wire.
pub const RING_BYTES: f64 = 8.0;

/// Ring operations of one secure comparison and its select, per element.
pub const COMPARISON_RING_OPS: f64 = 300.0;

/// Bytes one secure comparison sends online, per element: the MSB
/// extraction's masked opening and AND gates (about 39.4 each way) and the
/// Beaver select (32).
pub const COMPARISON_ONLINE_BYTES: f64 = 2.0 * 39.4 + 32.0;

/// Bytes of dealer correlations for one secure comparison (masked bits, AND
/// triples, a daBit and the select's triple), per element.
pub const COMPARISON_DEALER_BYTES: f64 = 31.6;

/// Ring operations of a polynomial (sigmoid, tanh, poly) evaluated in the
/// clear, per element.
pub const CLEAR_POLY_RING_OPS: f64 = 20.0;

/// A network profile: bandwidth and one-way latency per round.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Network {
    pub name: &'static str,
    pub bytes_per_second: f64,
    pub latency_seconds: f64,
}

impl Network {
    /// 1 Gbit/s, 0.5 ms per round: two machines in one data centre.
    pub const LAN: Network = Network {
        name: "lan",
        bytes_per_second: 125e6,
        latency_seconds: 0.5e-3,
    };
    /// 100 Mbit/s, 40 ms per round: parties in different regions.
    pub const WAN: Network = Network {
        name: "wan",
        bytes_per_second: 12.5e6,
        latency_seconds: 40e-3,
    };

    pub fn custom(mbit_per_second: f64, latency_ms: f64) -> Network {
        Network {
            name: "custom",
            bytes_per_second: mbit_per_second * 1e6 / 8.0,
            latency_seconds: latency_ms * 1e-3,
        }
    }
}

/// Estimated cost of a piece of the plan.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    pub compute: f64,
    pub bytes: f64,
    pub rounds: u32,
}

impl Cost {
    pub const ZERO: Cost = Cost {
        compute: 0.0,
        bytes: 0.0,
        rounds: 0,
    };

    pub fn compute(seconds: f64) -> Cost {
        Cost {
            compute: seconds,
            ..Cost::ZERO
        }
    }

    pub fn comm(bytes: f64, rounds: u32) -> Cost {
        Cost {
            compute: 0.0,
            bytes,
            rounds,
        }
    }

    /// Estimated wall-clock seconds under `net`.
    pub fn seconds(&self, net: &Network) -> f64 {
        self.compute + self.bytes / net.bytes_per_second + self.rounds as f64 * net.latency_seconds
    }
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost {
            compute: self.compute + o.compute,
            bytes: self.bytes + o.bytes,
            rounds: self.rounds + o.rounds,
        }
    }
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        *self = *self + o;
    }
}

impl std::iter::Sum for Cost {
    fn sum<I: Iterator<Item = Cost>>(iter: I) -> Cost {
        iter.fold(Cost::ZERO, |a, b| a + b)
    }
}

/// The plan's estimate, in one pass over its emitted programs: every
/// instruction costs what the table above says its primitive costs, with
/// symbolic dimensions bound to `dims` (the sizes the compiler assumed);
/// rounds are counted from the programs' sends and receives
/// ([`plan::Plan::rounds`]).
///
/// What the pass charges where:
/// - work both computing parties do together (`Local`, the close of a
///   Beaver product, a truncation or an input-holder product, a
///   comparison) once, at the leader, including its messages and the
///   correlations it consumes (from the dealer, or generated with Paillier);
/// - clear values computed at several parties once;
/// - a `Send` 8 bytes per element of a clear value or share, one ciphertext
///   per element of a ciphertext, and half a ciphertext for a public key;
///   the messages of the primitives above and the dealer's are theirs.
///
/// Estimates carry four significant digits: enough to compare plans, and
/// stable across platforms' last-bit differences in the sums.
pub fn estimate(
    plan: &plan::Plan,
    costs: &CostTable,
    net: &Network,
    dims: BTreeMap<String, u64>,
) -> plan::Estimate {
    use plan::{ClearOp, HomOp, Instr, Kind, Reg};
    let dealer = matches!(plan.randomness, plan::RandomnessSource::Dealer(_));
    let elements = |s: &plan::Shape| -> f64 {
        s.0.iter()
            .map(|d| match d {
                plan::Dim::Known(n) => *n as f64,
                plan::Dim::Symbol(name) => {
                    *dims.get(name).unwrap_or(&crate::DEFAULT_ASSUMED_DIM) as f64
                }
            })
            .product()
    };
    let shape = |r: Reg| &plan.reg(r).shape;
    let n = |r: Reg| elements(shape(r));
    // The inner dimension of a product whose left operand is `r`.
    let last = |r: Reg| {
        elements(&plan::Shape(
            shape(r).0.last().cloned().into_iter().collect(),
        ))
    };
    let online = |mut c: Cost| {
        c.rounds = 0;
        c
    };

    let mut total = Cost::ZERO;
    let mut clear_done = BTreeSet::new();
    let mut public_keys = BTreeSet::new();
    for program in &plan.programs {
        // Open instructions by message: the operands the close consumes.
        let mut opened: BTreeMap<Reg, (Reg, Reg)> = BTreeMap::new();
        for ins in &program.instrs {
            total += match ins {
                Instr::KeyGen { public } => {
                    public_keys.insert(*public);
                    Cost::ZERO
                }
                Instr::Input { dst, .. } | Instr::Const { dst, .. } | Instr::Clear { dst, .. }
                    if !clear_done.insert(*dst) =>
                {
                    Cost::ZERO
                }
                Instr::Input { dst, .. } | Instr::Const { dst, .. } => {
                    Cost::compute(n(*dst) * costs.ring_op)
                }
                Instr::Clear { dst, op, args } => Cost::compute(match op {
                    ClearOp::MatMul => n(*dst) * last(args[0]) * costs.ring_mac,
                    ClearOp::Sigmoid
                    | ClearOp::Tanh
                    | ClearOp::Exp
                    | ClearOp::Reciprocal
                    | ClearOp::Poly(_) => n(*dst) * CLEAR_POLY_RING_OPS * costs.ring_op,
                    _ => n(*dst) * costs.ring_op,
                }),
                Instr::Split { send, .. } => Cost::compute(n(*send) * costs.ring_op),
                Instr::Local {
                    dst, leader: true, ..
                } => Cost::compute(n(*dst) * costs.ring_op),
                Instr::BeaverOpen { msg, x, y, .. } | Instr::HolderOpen { msg, x, y, .. } => {
                    opened.insert(*msg, (*x, *y));
                    Cost::ZERO
                }
                Instr::BeaverClose {
                    dst,
                    mine,
                    leader: true,
                    ..
                } => {
                    let (x, y) = opened[mine];
                    online(costs.beaver(dealer, n(x), n(y), n(*dst)))
                }
                Instr::HolderClose {
                    dst,
                    mine,
                    leader: true,
                    ..
                } => {
                    let (x, w) = opened[mine];
                    online(costs.holder_matmul(n(x), n(w), n(*dst), last(x)))
                }
                Instr::TruncClose {
                    dst, leader: true, ..
                } => online(costs.trunc(dealer, n(*dst))),
                Instr::Nonlinear {
                    op,
                    args,
                    leader: true,
                    ..
                } => {
                    let n = args.iter().map(|a| n(*a)).fold(0.0, f64::max);
                    // Clamp compares against both bounds.
                    let k = if matches!(op, plan::NonlinearOp::Clamp { .. }) {
                        2.0
                    } else {
                        1.0
                    };
                    costs.comparison(dealer, k * n, 0)
                }
                Instr::Encrypt { dst, .. } => Cost::compute(n(*dst) * costs.paillier_encrypt),
                Instr::Hom { dst, op, args } => Cost::compute(match op {
                    HomOp::MatMul { .. } => n(*dst) * last(args[0]) * costs.paillier_mul_term,
                    HomOp::MatMulLeft { .. } => n(*dst) * last(args[1]) * costs.paillier_mul_term,
                    HomOp::Mul { .. } | HomOp::Neg => n(*dst) * costs.paillier_mul_term,
                    HomOp::Sum => n(args[0]) * costs.paillier_add,
                    HomOp::AddPlain
                    | HomOp::SubPlain
                    | HomOp::PlainSub
                    | HomOp::Add
                    | HomOp::Sub => n(*dst) * costs.paillier_add,
                }),
                // A fresh mask's encryption, added to the ciphertext.
                Instr::Mask { masked, .. } => {
                    Cost::compute(n(*masked) * (costs.paillier_encrypt + costs.paillier_add))
                }
                Instr::Rerandomize { dst, .. } => Cost::compute(n(*dst) * costs.paillier_encrypt),
                Instr::DecryptShare { dst, .. } | Instr::Decrypt { dst, .. } => {
                    Cost::compute(n(*dst) * costs.paillier_decrypt)
                }
                Instr::Send { regs, .. } => Cost::comm(
                    regs.iter()
                        .map(|r| match plan.reg(*r).kind {
                            Kind::Clear | Kind::Share { .. } => n(*r) * RING_BYTES,
                            Kind::Cipher { .. } => n(*r) * costs.ciphertext_bytes(),
                            Kind::Message if public_keys.contains(r) => {
                                costs.ciphertext_bytes() / 2.0
                            }
                            Kind::Message => 0.0,
                        })
                        .sum(),
                    0,
                ),
                _ => Cost::ZERO,
            };
        }
    }
    let rounds = plan
        .parties
        .iter()
        .enumerate()
        .filter(|(_, p)| p.role == plan::Role::Compute)
        .map(|(i, _)| plan.rounds(i as plan::PartyIdx))
        .max()
        .unwrap_or(0);
    plan::Estimate {
        compute_seconds: significant(total.compute),
        bytes: total.bytes.round(),
        rounds,
        seconds: significant(
            total.compute
                + total.bytes / net.bytes_per_second
                + rounds as f64 * net.latency_seconds,
        ),
        assumed_dims: dims,
    }
}

/// `v` to four significant digits.
fn significant(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let e = v.abs().log10().floor() as i32 - 3;
    let scale = 10f64.powi(-e);
    (v * scale).round() / scale
}
