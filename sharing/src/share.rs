//! Additive shares over Z_2^64: `x = x0 + x1 mod 2^64`, party 0 holds `x0`,
//! party 1 holds `x1`. Linear operations are local; public constants are
//! added by party 0 only.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

use super::error::{Result, SharingError};
use super::fixed::FixedPoint;
use super::ring::RingTensor;

/// One of the two computing parties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Party {
    P0,
    P1,
}

impl Party {
    pub fn index(self) -> usize {
        match self {
            Party::P0 => 0,
            Party::P1 => 1,
        }
    }
    pub fn other(self) -> Party {
        match self {
            Party::P0 => Party::P1,
            Party::P1 => Party::P0,
        }
    }
}

/// One party's additive share of a tensor. `Debug` shows party and shape
/// only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    party: Party,
    value: RingTensor,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Share")
            .field("party", &self.party)
            .field("shape", &self.value.shape())
            .finish_non_exhaustive()
    }
}

/// The message a party sends to open (or reveal) a shared value: its share
/// as plain data.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenMsg {
    pub data: Vec<u64>,
    pub shape: Vec<usize>,
}

impl std::fmt::Debug for OpenMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenMsg")
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

impl OpenMsg {
    pub fn from_tensor(t: RingTensor) -> Self {
        let (data, shape) = t.into_parts();
        Self { data, shape }
    }
    /// Validates length against shape.
    pub fn into_tensor(self) -> Result<RingTensor> {
        RingTensor::new(self.data, self.shape)
    }
    /// Payload size in bytes (8 per element).
    pub fn payload_bytes(&self) -> usize {
        self.data.len() * 8
    }
}

/// A fresh OS-seeded CSPRNG (ChaCha20 seeded from the operating system).
pub fn os_rng() -> Result<ChaCha20Rng> {
    ChaCha20Rng::try_from_rng(&mut rand::rngs::SysRng).map_err(|_| SharingError::OsRng)
}

/// A deterministic RNG for tests and benchmarks only.
pub fn fixed_seed_rng_for_tests(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Uniform random ring tensor.
pub fn random_tensor<R: Rng + ?Sized>(rng: &mut R, shape: &[usize]) -> Result<RingTensor> {
    let n = super::ring::numel(shape)?;
    let data = (0..n).map(|_| rng.next_u64()).collect();
    RingTensor::new(data, shape.to_vec())
}

/// Splits `x` into two uniformly random shares using the OS-seeded CSPRNG.
pub fn share(x: &RingTensor) -> Result<(Share, Share)> {
    share_with_rng(x, &mut os_rng()?)
}

/// Splits `x` into two shares using the given RNG (deterministic when the RNG
/// is, so only use fixed-seed RNGs in tests).
pub fn share_with_rng<R: Rng + ?Sized>(x: &RingTensor, rng: &mut R) -> Result<(Share, Share)> {
    x.validate()?;
    let r = random_tensor(rng, x.shape())?;
    let s1 = x.sub(&r)?;
    Ok((Share::new(Party::P0, r), Share::new(Party::P1, s1)))
}

/// Encodes reals in fixed point and shares them.
pub fn share_fixed(fp: &FixedPoint, values: &[f64], shape: &[usize]) -> Result<(Share, Share)> {
    share(&fp.encode_tensor(values, shape)?)
}

/// Adds the two shares: `x0 + x1`.
pub fn reconstruct(a: &Share, b: &Share) -> Result<RingTensor> {
    if a.party == b.party {
        return Err(SharingError::PartyMismatch(
            "reconstruct needs one share of each party",
        ));
    }
    a.value.add(&b.value)
}

impl Share {
    /// Wraps a tensor as `party`'s share.
    pub fn new(party: Party, value: RingTensor) -> Self {
        Self { party, value }
    }

    /// A party's share of a public tensor: party 0 holds it, party 1 zero.
    pub fn from_public(party: Party, value: &RingTensor) -> Result<Self> {
        value.validate()?;
        Ok(match party {
            Party::P0 => Self::new(party, value.clone()),
            Party::P1 => Self::new(party, RingTensor::zeros(value.shape())?),
        })
    }

    pub fn party(&self) -> Party {
        self.party
    }
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }
    /// The raw share. Treat as secret.
    pub fn value(&self) -> &RingTensor {
        &self.value
    }
    pub fn into_value(self) -> RingTensor {
        self.value
    }

    fn check_party(&self, other: &Share) -> Result<()> {
        if self.party != other.party {
            return Err(SharingError::PartyMismatch(
                "linear operation mixes shares of different parties",
            ));
        }
        Ok(())
    }

    pub fn add(&self, other: &Share) -> Result<Share> {
        self.check_party(other)?;
        Ok(Share::new(self.party, self.value.add(&other.value)?))
    }
    pub fn sub(&self, other: &Share) -> Result<Share> {
        self.check_party(other)?;
        Ok(Share::new(self.party, self.value.sub(&other.value)?))
    }
    pub fn neg(&self) -> Share {
        Share::new(self.party, self.value.neg())
    }

    /// `x + c` for a public tensor `c` (party 0 adds it).
    pub fn add_public(&self, c: &RingTensor) -> Result<Share> {
        match self.party {
            Party::P0 => Ok(Share::new(self.party, self.value.add(c)?)),
            Party::P1 => {
                self.value.check_same_shape(c, "add_public")?;
                Ok(self.clone())
            }
        }
    }
    /// `x + c` for a public scalar ring element.
    pub fn add_public_scalar(&self, c: u64) -> Share {
        match self.party {
            Party::P0 => Share::new(self.party, self.value.add_scalar(c)),
            Party::P1 => self.clone(),
        }
    }
    /// `x - c` for a public tensor.
    pub fn sub_public(&self, c: &RingTensor) -> Result<Share> {
        self.add_public(&c.neg())
    }
    /// `c - x` for a public tensor.
    pub fn rsub_public(&self, c: &RingTensor) -> Result<Share> {
        self.neg().add_public(c)
    }

    /// `k * x` for a public ring scalar (no truncation: use integers, or
    /// follow with a truncation when `k` is fixed-point encoded).
    pub fn mul_public_scalar(&self, k: u64) -> Share {
        Share::new(self.party, self.value.scale(k))
    }
    /// Elementwise `c * x` for a public ring tensor (no truncation).
    pub fn mul_public(&self, c: &RingTensor) -> Result<Share> {
        Ok(Share::new(self.party, self.value.mul(c)?))
    }
    /// `x @ c` for a public right operand (no truncation).
    pub fn matmul_public(&self, c: &RingTensor) -> Result<Share> {
        Ok(Share::new(self.party, self.value.matmul(c)?))
    }
    /// `c @ x` for a public left operand (no truncation).
    pub fn public_matmul(c: &RingTensor, x: &Share) -> Result<Share> {
        Ok(Share::new(x.party, c.matmul(&x.value)?))
    }

    /// Message to open this value to both parties (each sends its share).
    pub fn open_msg(&self) -> OpenMsg {
        OpenMsg::from_tensor(self.value.clone())
    }

    /// Combines my share with the peer's open message.
    pub fn open_finish(&self, peer: OpenMsg) -> Result<RingTensor> {
        let peer = peer.into_tensor()?;
        self.value.add(&peer)
    }

    /// Reveal to one party only: the other party sends [`Share::open_msg`]
    /// and the receiver calls [`Share::open_finish`]; the sender learns
    /// nothing. (Same two functions, used in one direction.)
    pub fn reveal_msg(&self) -> OpenMsg {
        self.open_msg()
    }
}
