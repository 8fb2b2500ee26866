//! RLWE (BFV-style) encryption for two-party linear layers, with Cheetah's
//! coefficient encoding (Huang, Lu, Hong, Ding, "Cheetah: Lean and Fast
//! Secure Two-Party Deep Neural Network Inference", USENIX Security 2022).
//!
//! Pure maths and sans-I/O: [`Client`] (the data owner, who holds `x` and the
//! secret key) and [`Server`] (the model owner, who holds `W`) exchange
//! [`PublicKeyMsg`], [`QueryMsg`] and [`ResponseMsg`] as bytes and end with
//! additive shares of `x @ W` over `Z_2^64`. No networking, files or
//! printing; secrets come from the operating system's CSPRNG, are zeroized
//! on drop, and no `Debug` output shows one.
//!
//! ```
//! use rlwe::{Client, CostModel, Layout, PeerKey, Params, PublicKeyMsg, QueryMsg, ResponseMsg, Server, Shape};
//! let params = Params::insecure_for_tests(256); // Params::n8192_q128() for real use
//! let shape = Shape { batch: 2, k: 3, n: 2 };
//! let layout = Layout::choose(&params, shape, 16, &CostModel::default_for(&params)).unwrap();
//! let (mut client, mut server) = (Client::new(params.clone()).unwrap(), Server::new(params.clone()).unwrap());
//! // once per session: the client's public key, for re-randomising results
//! let pk = PublicKeyMsg::from_bytes(&client.public_key().to_bytes(&params), &params).unwrap();
//! let key = PeerKey::new(params.clone(), &pk).unwrap();
//! // per product
//! let x = [1, 2, 3, 4, 5, 6];
//! let w = [1, u64::MAX, 2, 0, 3, 7]; // entries as signed 16-bit values: -1 is u64::MAX
//! let query = QueryMsg::from_bytes(&client.query(&layout, &x).unwrap().to_bytes(&params), &params, &layout).unwrap();
//! let (response, server_share) = server.respond(&key, &layout, &w, &query).unwrap();
//! let response = ResponseMsg::from_bytes(&response.to_bytes(&params), &params, &layout).unwrap();
//! let client_share = client.finish(&layout, &response).unwrap();
//! let y: Vec<u64> = client_share.iter().zip(&server_share).map(|(a, b)| a.wrapping_add(*b)).collect();
//! assert_eq!(y, [14, 20, 32, 38]);
//! ```
//!
//! # Operand layouts
//!
//! The protocol computes `x @ W` with `x` at the encrypting party and `W` at
//! the other. The three layouts of a layer reduce to it:
//! - `x` clear at P0, `W` clear at P1 (a first layer): one run.
//! - `x` shared (`x0` at P0, `x1` at P1), `W` clear at P1 (later layers): P0
//!   runs it on `x0` under its own key; P1 adds `x1 @ W` to its share.
//! - both shared: `x @ W = x0 W0 + x0 W1 + x1 W0 + x1 W1`; the two cross terms
//!   are two runs in opposite directions (each party encrypts its share of
//!   `x` under its own key), the other two are local.
//!
//! # Why a plaintext modulus of exactly 2^64
//!
//! Shares live in `Z_2^64`. With coefficient encoding no SIMD slots are
//! needed, so the plaintext modulus need not be a prime `1 mod 2N`, and this
//! crate takes `t = 2^64` itself: a decrypted coefficient *is* a share, and
//! every wrap-around of the products (`x w` in `Z[X]`, summed over `k`)
//! happens modulo `2^64`, exactly as the shares need. The scale is not
//! `floor(q/t)` (whose error, multiplied by the wrap-around count, would
//! grow with `x w / t`) but exact rounding: a message `m` is encoded as
//! `round(q m / 2^64)`; then the phase of `Enc(x) * w` is
//! `(q / 2^64) [x w mod 2^64] + (e + eps) w` with `|eps| <= 1/2`, because
//! `(q / 2^64) 2^64 K = q K` vanishes modulo `q`. Decoding needs no big
//! integers: `round(2^64 phi / q) mod 2^64 = sum_i y_i 2^64 / p_i mod 2^64`
//! with `y_i = [r_i (q/p_i)^-1]_{p_i}` (see [`Params`]).
//!
//! A prime `t` (what the `fhe` crate offers, below 2^62) would give shares
//! modulo `t`; moving them to `Z_2^64` exactly needs either a secure
//! comparison per value (the sum of the two shares wrapped modulo `t` or
//! not), or a `t` above the integer product plus a 40-bit statistical mask,
//! about `2^(64 + 64 + log2 k + 40)`, far beyond 2^62. Paillier avoids this
//! because its plaintext space (2048 bits) dwarfs the integer product; RLWE
//! with `t = 2^64` avoids it because the arithmetic is already modulo 2^64.
//!
//! # `fhe` or an NTT of our own (measured)
//!
//! Own NTT, by measurement and by fit. In one process, same three primes,
//! N = 8192, on the shared 2-core development machine (load 6-10 from other
//! builds; CPU time per call, from `/proc/thread-self/stat`, so contention
//! counts less than in wall time):
//!
//! | operation (CPU time) | `fhe` 0.1.1 / `fhe-math` | this crate |
//! |---|---|---|
//! | NTT forward + inverse, one prime | 225-425 us | 25-75 us (AVX-512 IFMA; about 320 us wall scalar) |
//! | symmetric encryption of 8192 values (3 primes) | 2.0-3.25 ms | 0.75-1.5 ms (seeded, `b` only) |
//! | ciphertext x plaintext, pointwise (3 primes) | 100-250 us | 45-65 us (from the profile), accumulated unreduced |
//! | decryption (3 primes) | 1.75-4.0 ms | per result: two transforms per kept prime (2 of 3) |
//!
//! (`cargo run --release --manifest-path benches/peers/fhe_rs/Cargo.toml`,
//! two runs, loads 6 and 12.)
//!
//! And `fhe` fixes the plaintext modulus below 2^62, encodes with
//! `floor(q/t)`, and has no hook for exact `2^64` scaling, the dropping of
//! unused coefficients, or decryption of selected coefficients; each would
//! have meant working around it. The NTT here is Harvey's lazy butterflies
//! with Shoup multiplication; when the CPU has AVX-512 IFMA (checked at run
//! time) the 52-bit variant of Intel HEXL runs eight lanes at a time, and the
//! scalar code is the fallback and the tests' reference.
//!
//! # Parameters and security
//!
//! 128-bit classical security by the HomomorphicEncryption.org standard
//! (Albrecht et al., "Homomorphic Encryption Security Standard", 2018,
//! Table 1, uniform ternary secret, error standard deviation 3.2; the same
//! numbers are SEAL's `SEAL_HE_STD_PARMS_128_TC`):
//!
//! | N | max log2 q |
//! |---|---|
//! | 1024 | 27 |
//! | 2048 | 54 |
//! | 4096 | 109 |
//! | 8192 | 218 |
//! | 16384 | 438 |
//! | 32768 | 881 |
//!
//! Secrets are uniform ternary; errors are centred binomial with parameter
//! 21 (standard deviation 3.24, as SEAL samples them). [`Params::new`]
//! refuses any set above the table; small insecure sets exist only through
//! [`Params::insecure_for_tests`].
//!
//! - [`Params::n8192_q128`]: N = 8192, q = three primes of 43, 43, 42 bits
//!   (log2 q = 128.0 <= 218). A query coefficient is 16 bytes.
//! - [`Params::n8192_q180`]: N = 8192, four 45-bit primes (log2 q = 180.0
//!   <= 218), room for 64-bit plaintext operands in one product.
//!
//! N = 4096 (log2 q <= 109) cannot work with `t = 2^64`: the scale `q/t`
//! would be at most 2^45, while 40 bits of flooding above the
//! re-randomisation noise alone (`2 N 21`, about 2^17.4) need 2^57.
//!
//! # Noise, flooding and digits
//!
//! See [`layout`] for the budget and the circuit-privacy argument (40 bits of
//! statistical slack per revealed coefficient, by noise flooding after a
//! public-key re-randomisation). The budget fixes how large the entries of
//! the plaintext operand `W` may be; larger entries are split into balanced
//! digits, one product each, recombined on the shares. With q = 2^128, a
//! 16-bit weight fits one product when at most about 3,500 plaintext
//! coefficients reach a result; 64-bit shares take 4 or 5 digits; with
//! q = 2^180 they take one.
//!
//! # Traffic
//!
//! Queries are seeded: the `a` halves come from one 16-byte seed, and only
//! `b` travels, at `sum(bits of p_i)` = 128 bits (16 bytes) per coefficient
//! for `n8192_q128`. With `d2 = 1` tiles only the coefficients that carry an
//! input are sent, so the upload is 16 bytes per input element plus an
//! 86-byte header ([`CostModel::upload_bound`] asks for such layouts).
//! Results carry all of `a` and only the used coefficients of `b`, after
//! the server has switched them down to the fewest primes the noise budget
//! allows (2 of 3 at q = 2^128, 2 of 4 at q = 2^180): 86 or 90 bits per
//! coefficient.
//!
//! # Measured
//!
//! End to end (encrypt, multiply, re-randomise, flood, mask, drop, switch
//! down, decrypt, all through bytes), one core, 16-bit weights, q = 2^128,
//! on the shared 2-core machine (Xeon with AVX-512 IFMA, load average 5-12
//! from other builds). "wall" is `cargo bench -p rlwe --bench matmul`
//! (criterion, median); "CPU" is the process's CPU time from
//! `cargo run --release -p rlwe --example matmul_once -- BATCH K N 16 REPS`
//! (add `RLWE_UPLOAD_BOUND=1` for the bounded layouts), which counts less of
//! the contention. Multiply-accumulates per microsecond:
//!
//! | `[batch, k] @ [k, n]` | time-optimal tiles | wall | CPU | upload B / input | 16-byte-bound tiles | wall | CPU |
//! |---|---|---|---|---|---|---|---|
//! | 1, 64, 16 | 1 x 64 x 16 | 0.27 | 0.3 | 2049 | 1 x 64 x 1 (17.3 B) | 0.07 | < 0.1 |
//! | 100, 64, 16 | 100 x 16 x 4 | 9.5 | 6.0 | 82 | 100 x 64 x 1 | 7.1 | 4.1 |
//! | 1, 784, 128 | 1 x 112 x 64, 2 digits | 4.3 | 3.6 | 1170 | 1 x 784 x 1 (16.1 B) | 0.73 | 0.5 |
//! | 100, 784, 128 | 100 x 20 x 4 | 44.6 | 34.2 | 67 | 100 x 79 x 1 (16.00 B) | 36.5 | 25.3 |
//! | 1, 128, 128 | 1 x 128 x 43 | 3.6 | 2.0 | 1025 | 1 x 128 x 1 (16.7 B) | 0.12 | 0.1 |
//! | 100, 128, 128 | 100 x 10 x 8 | 26.6 | 22.8 | 133 | 100 x 64 x 1 | 9.5 | 8.0 |
//!
//! Returned bytes per output: 231 (batch 100, 784 x 128, time-optimal), 891
//! (bounded); results are 86 bits per coefficient after switching down.
//! Full 64-bit weights (shares): 4 or 5 digits at q = 2^128 (5.9 MAC/us wall
//! at 100 x 784 x 128), one product at q = 2^180 (24.5 MAC/us CPU, 10 wall).
//! One NTT of one prime, N = 8192: 46 us forward, 29 us inverse (wall); one
//! full query ciphertext (8192 inputs): 1.2 ms.
//!
//! The cost of one result ciphertext (thirteen transforms of one prime at
//! q = 2^128: the server's re-randomiser and two inverses on three primes,
//! the client's forward and inverse on the two kept) bounds small products:
//! a batch-1 product of 1,024 multiply-accumulates needs at least one query,
//! one plaintext tile and one result, about twenty transforms of 25-50 us,
//! so it cannot reach 20 multiply-accumulates per microsecond. With the
//! upload bound (`d2 = 1`) every output column of a row tile is its own
//! result, which is why that bound costs most on narrow inputs.
//!
//! # Preprocessing ([`prepared`])
//!
//! Everything but the coefficients that carry `x` is known before `x`: the
//! query's seed, its encryptions of zero elsewhere, and so (by linearity)
//! the server's whole product on them, its re-randomiser, mask and
//! flooding, and the results' `a` halves with the client's `a s`. The
//! split sends exactly the ciphertexts of [`Server::respond`]; online the
//! client sends `b` at the inputs (16 bytes each) and the server adds a
//! plain product modulo each prime of those residues with `W`'s digits (a
//! used result coefficient meets no other input), switches down and
//! answers with the used coefficients (86 bits each). Online there is no
//! transform at all, which is what batch 1 needed: the bound above (about
//! twenty transforms per product) moves to the preprocessing.
//!
//! Measured (`RLWE_PREPARED=1 cargo run --release -p rlwe --example
//! matmul_once -- BATCH K N 16 REPS`, same machine, load 4-5, 16-bit
//! weights; online = the client's encoding, the server's product, the
//! client's decoding, all through bytes; MAC/us on wall time):
//!
//! | `[batch, k] @ [k, n]` | tiles | online wall | online MAC/us | online up, B / input | offline CPU | offline up + down |
//! |---|---|---|---|---|---|---|
//! | 1, 64, 16 | 1 x 64 x 16 | 24 us | 42 | 16 (+70 B header) | 3.3 ms | 130 + 88 kB |
//! | 1, 784, 128 | 1 x 784 x 7 | 0.57 ms | 177 | 16 | 27 ms | 119 kB + 1.7 MB |
//! | 1, 128, 128 | 1 x 128 x 43 | 0.13 ms | 131 | 16 | 6.0 ms | 129 + 264 kB |
//! | 100, 64, 16 | 100 x 16 x 4 | 1.4 ms | 71 | 16 | 14 ms | 422 + 352 kB |
//! | 100, 784, 128 | 100 x 20 x 4 | 71 ms | 141 | 16 | 264 ms | 4.0 + 2.8 MB |
//! | 100, 128, 128 | 100 x 10 x 8 | 7.6 ms | 214 | 16 | 60 ms | 1.5 + 1.4 MB |
//!
//! (The offline column predates [`PreparedWeights`] keeping `W`'s tiles in
//! NTT form, which cut it by 15-30%; BENCHMARKS.md has both.)
//!
//! [`Layout::choose_prepared`] takes the fewest digits (the online work is
//! `batch k n` products per prime and digit, whatever the tiles), then the
//! cheapest preprocessing.
//!
//! # Convolutions ([`conv`])
//!
//! Cheetah's HomConv packing: an input's channels, rows and columns in one
//! polynomial, each kernel reversed in another, no rotations; several
//! kernels share a plaintext when they fit (then all `N` query
//! coefficients travel). Against Im2col and a matrix product (what the
//! compiler lowers `conv2d` to), one valid convolution, 16-bit kernels,
//! `cargo run --release -p rlwe --example conv_once -- C H W M KH KW 16
//! REPS` (load 7; MAC/us on CPU time, upload per input element):
//!
//! | convolution | HomConv, 1 kernel per product | HomConv, chosen | Im2col + matmul |
//! |---|---|---|---|
//! | LeNet-5 conv1, 1 x 32 x 32, 6 of 5 x 5 | 10.7, 16 B | 21.4, 128 B | 6.7, 640 B |
//! | LeNet-5 conv2, 6 x 14 x 14, 16 of 5 x 5 | 10.4, 16 B | 40.0, 112 B | 10.9, 446 B |
//! | net_b conv1, 1 x 28 x 28, 16 of 5 x 5 | 8.1, 16 B | 25.6, 167 B | 8.9, 669 B |
//! | net_b conv2, 16 x 12 x 12, 16 of 5 x 5 | 17.1, 16 B | 41.0, 57 B | 15.2, 398 B |

pub mod arith;
pub mod conv;
pub mod layout;
pub mod matmul;
pub mod ntt;
pub mod params;
pub mod prepared;
pub mod sample;
mod simd;
mod wire;

pub use conv::{ConvLayout, ConvQueryMsg, ConvResponseMsg, ConvShape};
pub use layout::{CostModel, Layout, Shape};
pub use matmul::{
    Client, PeerKey, PublicKeyMsg, QueryMsg, ResponseMsg, ResultCt, SecretKey, Server, WeightTiles,
};
pub use params::Params;
pub use prepared::{
    OfflineQueryMsg, OfflineResponseMsg, OnlineQueryMsg, OnlineResponseMsg, PendingQuery,
    PendingResult, PreparedQuery, PreparedResponse, PreparedWeights,
};
pub use sample::Seed;
pub use wire::WireError;

/// Everything that can go wrong, typed. No message carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid RLWE parameters: {0}")]
    InvalidParameters(String),
    #[error("RLWE parameters N = {n}, log2 q = {log2_q} are below 128-bit security (the HomomorphicEncryption.org standard allows log2 q <= {max} at this N)")]
    InsecureParameters { n: usize, log2_q: u32, max: u32 },
    #[error("invalid layout: {0}")]
    InvalidLayout(String),
    #[error("operand shape: {0}")]
    Shape(String),
    #[error("malformed message: {0}")]
    Wire(#[from] WireError),
    #[error("the operating system's random number generator failed: {0}")]
    Randomness(String),
}
