#!/usr/bin/env bash
# The headline ratio (mode (a), 10,000 rows, Veil against CrypTen with its
# built-in sigmoid) in N invocations, each Veil then CrypTen back to back:
# this VM's speed drifts between invocations, so one pair is not enough.
# Usage: benches/crypten_pairs.sh [N]      (default 4; needs the CrypTen venv
# that benches/peers/run_all.sh creates)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-4}"
PY="${CRYPTEN_PY:-$HOME/.cache/veil-peers/crypten/bin/python}"
if [ -z "${VEIL:-}" ]; then cargo build --release --quiet; fi
VEIL="${VEIL:-./target/release/veil}"
for i in $(seq 1 "$N"); do
    echo "== pair $i"
    "$VEIL" bench models/logreg_100.veil --modes dealer --batches 1,10000 --repeat 7 \
        --transport memory,tcp 2>/dev/null
    timeout 600 "$PY" benches/peers/crypten_logreg.py --batches 1,10000 --dist veil --reps 7 \
        --sigmoid builtin 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    if line.startswith("{"):
        d = json.loads(line)
        print("crypten %6d %.4f s %.1f preds/s" % (d["batch"], d["seconds"], d["preds_per_s"]))' \
        || echo "crypten: no result (its gloo rendezvous sometimes hangs; timed out after 600 s)"
done
