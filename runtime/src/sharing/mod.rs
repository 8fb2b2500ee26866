//! Additive secret sharing over Z_2^64 (see issue 4).
