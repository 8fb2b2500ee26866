//! The cost model: one table of per-operation costs (measured by the
//! runtime's benchmarks, see BENCHMARKS.md) and the network profiles.

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
}

/// Slots per ciphertext of the two-party cross terms whose sums stay below
/// `2^bound_bits`: `⌊(|n| − 2) / (bound + 41)⌋` (40 bits of mask slack and a
/// carry bit, as the runtime's `exec::crossterms::Layout`).
pub fn cross_slots(key_bits: u32, bound_bits: u32) -> f64 {
    (key_bits.saturating_sub(2) / (bound_bits + 41)).max(1) as f64
}

/// One ring element on the wire.
pub const RING_BYTES: f64 = 8.0;

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
