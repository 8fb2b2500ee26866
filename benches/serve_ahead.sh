#!/usr/bin/env bash
# Latency of a prediction service on a trained network, with a dealer and
# without one, with and without the next session prepared ahead of its
# data (`veil predict --ahead`, issue 17). Usage:
#   benches/serve_ahead.sh [QUERIES] [RATE]
# For each of three setups, starts `veil serve` on loopback for
# models/net_a.veil (784-128-128-10, the trained weights in
# models/nets/net_a/) and runs one `veil predict` client asking QUERIES
# queries (12) of the 100 test images (models/nets/digits_test_x.npy), at
# RATE queries per second (3; `--rate`, so the client idles between
# queries), over one connection:
#   dealer        the dealer keeps 2 streams dealt ahead for batch 100
#   no-dealer     the two parties alone, OT and RLWE preprocessing
#   no-dealer+ahead  the same, each next session prepared before its data
# Prints per setup the median, least and most latency in ms and the test
# accuracy of the last query's labels (against digits_test_y.npy). The
# first query of each setup pays for
# the connection (and the base OTs), so the median is the figure to read.
# Knobs: VEIL=path (skip the build), REPS=N (rounds of the three, 1),
# KEEP=1 (keep the folder).
set -euo pipefail
cd "$(dirname "$0")/.."
QUERIES="${1:-12}"
RATE="${2:-3}"
if [ -z "${VEIL:-}" ]; then cargo build --release --quiet -p cli; fi
VEIL="$(realpath "${VEIL:-./target/release/veil}")"
ROOT="$(pwd)"
MODEL="$ROOT/models/net_a.veil"
DIR="$(mktemp -d -t veil-serve-ahead.XXXXXX)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -z "${KEEP:-}" ]; then rm -rf "$DIR"; else echo "kept $DIR" >&2; fi
}
trap cleanup EXIT
cd "$DIR"
"$VEIL" certs --out dep server helper >/dev/null
"$VEIL" certs --out ca --new-ca >/dev/null
"$VEIL" certs --out clients --ca ca --client alice >/dev/null
# Free loopback ports rather than the defaults.
read -r P1 P2 < <(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
sed -i "s/127.0.0.1:7100/127.0.0.1:$P1/; s/127.0.0.1:7101/127.0.0.1:$P2/" dep/parties.toml

one() { # NAME DEALER(yes|no) PREDICT-FLAGS...
    local name=$1 dealer=$2; shift 2
    local flags=()
    [ "$dealer" = no ] && flags=(--no-dealer)
    PIDS=()
    if [ "$dealer" = yes ]; then
        "$VEIL" serve "$MODEL" --as helper --config dep/parties.toml --client-ca ca/ca.crt \
            --deal-ahead 2 --deal-ahead-batch 100 2> helper.log &
        PIDS+=($!)
    fi
    : > server.log
    "$VEIL" serve "$MODEL" --as server --config dep/parties.toml --client-ca ca/ca.crt \
        --inputs "$ROOT/models/nets/net_a" "${flags[@]}" 2> server.log &
    PIDS+=($!)
    for _ in $(seq 300); do grep -q serving server.log && break; sleep 0.1; done
    [ "$dealer" = yes ] && for _ in $(seq 300); do grep -q serving helper.log && break; sleep 0.1; done
    sleep 1 # the dealer's first streams
    rm -rf out t.txt
    "$VEIL" predict "$MODEL" --config dep/parties.toml --cert clients/alice.crt \
        --key clients/alice.key -i "x=$ROOT/models/nets/digits_test_x.npy" -o out \
        --repeat "$QUERIES" --rate "$RATE" --timings t.txt -q "${flags[@]}" "$@" 2> predict.log \
        || { cat predict.log >&2; exit 1; }
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    PIDS=()
    local acc
    # The labels file is .npy of little-endian int64: read without numpy.
    acc=$(python3 -c 'import ast, json, struct
raw = open("'"$ROOT"'/models/nets/digits_test_y.npy", "rb").read()
n = struct.unpack("<H", raw[8:10])[0]
head = ast.literal_eval(raw[10:10 + n].decode())
assert head["descr"] == "<i8"
y = struct.unpack("<%dq" % head["shape"][0], raw[10 + n:])
got = json.load(open("out/client.json"))["label"]
print(round(sum(int(a) == b for a, b in zip(got, y)) / len(y), 3))' 2>/dev/null || echo -)
    sort -n t.txt | awk -v n="$name" -v a="$acc" '{v[NR]=$1} END {
        printf "%-16s median_ms=%.1f min_ms=%.1f max_ms=%.1f queries=%d accuracy=%s\n",
            n, v[int((NR+1)/2)], v[1], v[NR], NR, a }'
}
for _ in $(seq "${REPS:-1}"); do
    one dealer yes
    one no-dealer no
    one no-dealer+ahead no --ahead
done
