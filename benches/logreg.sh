#!/usr/bin/env bash
# The talk's workload (logistic regression over 100 private features) on Veil
# and on its peers, in one invocation, so BENCHMARKS.md can show ratios
# measured under the same load. Usage:
#   benches/logreg.sh [OUT.jsonl]        (default: target/bench/logreg.jsonl)
# Knobs: BATCHES (default 1,100,1000,10000), PEERS (crypten mpyc phe),
#        REPS (3), SKIP_PEERS=1 to measure Veil only.
# All parties run on this machine (loopback / in process). Every system gets
# the same data distribution: the ranges models/logreg_100.veil declares.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-target/bench/logreg.jsonl}"
BATCHES="${BATCHES:-1,100,1000,10000}"
REPS="${REPS:-3}"
mkdir -p "$(dirname "$OUT")"
: > "$OUT"
if [ -z "${VEIL:-}" ]; then cargo build --release --quiet; fi
VEIL="${VEIL:-./target/release/veil}"
MODEL=models/logreg_100.veil
echo "== veil (a) two parties + dealer, in process and over loopback TLS" >&2
$VEIL bench $MODEL --modes dealer --batches "$BATCHES" --repeat "$REPS" --transport memory,tcp --json "$OUT"
echo "== veil (c) hybrid: Paillier for x @ w, shares for the sigmoid (2048-bit keys)" >&2
# One run each, no warm-up: every run generates fresh keys, which dominate.
$VEIL bench $MODEL --modes hybrid --batches "1,100,1000" --repeat 1 --warmup 0 --key-bits 2048 --json "$OUT"
echo "== veil (b) two parties alone (Paillier-generated triples, 2048-bit keys)" >&2
$VEIL bench $MODEL --modes two-party --batches "1,100" --repeat 1 --warmup 0 --key-bits 2048 --json "$OUT"
if [ "${SKIP_PEERS:-0}" != 1 ]; then
    DIST=veil REPS="$REPS" PHE_MAX_ROWS="${PHE_MAX_ROWS:-100}" bash benches/peers/run_all.sh "$OUT" "$BATCHES"
fi
python3 benches/peers/table.py "$OUT"
