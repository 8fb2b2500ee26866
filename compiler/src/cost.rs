//! The cost model: one table of per-operation costs (measured by the
//! runtime's benchmarks, see BENCHMARKS.md), the cost of each protocol
//! primitive built from it, and the network profiles. Protocol parameters
//! the runtime shares (rounds, mask slack) come from `plan::params`.

use plan::params::MASK_SLACK_BITS;

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
        // Measured with `cargo bench -p runtime` on the reference machine
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
        let and = 125.0;
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
