//! Paillier homomorphic encryption (see issue 3).
