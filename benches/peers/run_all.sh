#!/usr/bin/env bash
# Run all peer benchmarks on the talk's workload and append JSON lines to OUT.
# Usage: benches/peers/run_all.sh OUT.jsonl [BATCHES]      (BATCHES default 1,100,1000)
# Env knobs:
#   VEIL_PEERS_DIR   venv cache (default ~/.cache/veil-peers); setup.sh runs if a venv is missing
#   PEERS            subset, default "crypten mpyc phe"
#   DIST             uniform (default) | normal
#   REPS             timed repetitions per batch (default 3; phe always 1)
#   MPYC_10000=1     allow MPyC batches >= 10000 (slow, minutes)
#   PHE_MAX_ROWS     phe: time at most this many rows per batch and extrapolate (default 100; 0 = all)
#   PHE_WORKERS      phe: processes for encryption/eval (default 2)
#   PHE_KEYSIZE      phe: Paillier modulus bits (default 2048)
#   PEER_TIMEOUT     seconds one peer command may take before it is stopped (default 900)
set -euo pipefail
OUT="${1:?usage: run_all.sh OUT.jsonl [BATCHES]}"
BATCHES="${2:-1,100,1000}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${VEIL_PEERS_DIR:-$HOME/.cache/veil-peers}"
PEERS="${PEERS:-crypten mpyc phe}"
DIST="${DIST:-uniform}"
REPS="${REPS:-3}"
mkdir -p "$(dirname "$OUT")"

for p in $PEERS; do
  [ -f "$DIR/$p/.ok" ] || VEIL_PEERS_DIR="$DIR" bash "$HERE/setup.sh" "$p" >&2
done

run() { # label cmd...
  echo "# $*" >&2
  # A peer that hangs (CrypTen's gloo rendezvous sometimes does) loses its
  # rows instead of stopping the whole comparison.
  timeout "${PEER_TIMEOUT:-900}" "$@" | grep --line-buffered '^{' | tee -a "$OUT" \
    || echo "# no (complete) result: timed out after ${PEER_TIMEOUT:-900} s or failed" >&2
}

for p in $PEERS; do
  case "$p" in
  crypten)
    for s in builtin poly5-clamped; do
      run "$DIR/crypten/bin/python" "$HERE/crypten_logreg.py" --batches "$BATCHES" --dist "$DIST" --reps "$REPS" --sigmoid "$s"
    done ;;
  mpyc)
    extra=(); [ "${MPYC_10000:-0}" = 1 ] && extra=(--allow-10000)
    for s in poly5-clamped poly5; do
      run "$DIR/mpyc/bin/python" "$HERE/mpyc_logreg.py" -M3 --batches "$BATCHES" --dist "$DIST" --reps "$REPS" --sigmoid "$s" "${extra[@]}"
    done ;;
  phe)
    run "$DIR/phe/bin/python" "$HERE/phe_logreg.py" --batches "$BATCHES" --dist "$DIST" --reps 1 \
      --keysize "${PHE_KEYSIZE:-2048}" --workers "${PHE_WORKERS:-2}" --max-rows "${PHE_MAX_ROWS:-100}" ;;
  *) echo "unknown peer $p" >&2; exit 2 ;;
  esac
done
echo "# results appended to $OUT" >&2
