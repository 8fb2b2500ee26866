#!/usr/bin/env bash
# Load on the prediction service (issue 20). Usage:
#   benches/serve_load.sh CLIENTS QUERIES
# Starts `veil serve` for the dealer (helper) and the model owner (lab) of
# models/relu_classifier.veil on loopback, then CLIENTS concurrent
# `veil predict --per-row` processes, each asking QUERIES one-row queries
# (batch 1, one session each, all over one connection) on random rows.
# Every answer is checked against the plaintext model (relu, matrix
# products, argmax and max in f64) with the compiler's error bound for each
# output and its near-tie slack for the argmax, as compiler::reference's
# `deviations` does. Prints one line
#   served=N correct=N lost=0 p50_ms=… p99_ms=… preds_per_s=…
# (preds_per_s over the whole wave, the clients' start-up included; on
# standard error also the model owner's steady rate, sessions_per_s, from
# its log)
# (and on standard error the services' RSS at start and after each wave,
# as kB RSS/RSS less lazily freed pages, and the clients' CPU seconds,
# clients_cpu_s), and exits
# non-zero if any answer is missing or wrong.
# Knobs: NO_DEALER=1 (the two parties alone, OT preprocessing),
#        WAVES=N (run the clients N times against the same services, for a
#        soak: RSS after each wave; every wave's answers are checked),
#        RATE=Q (an open loop: the clients together offer Q queries per
#        second, each on its own schedule of Q/CLIENTS per second (`veil
#        predict --rate`), started a millisecond apart; a late query counts
#        its wait. Without it each client asks again as soon as it has its
#        answer, a closed loop, where latency grows with the client count),
#        VEIL=path (skip the build), MAX_SESSIONS (64), KEEP=1 (keep the folder),
#        DEALER_ARGS="..." (extra flags for the dealer, such as --deal-ahead 0),
#        COMPARISONS=dcf|carry-tree (how the dealer's comparisons take the
#        sign bit: `--comparisons`; default the cost model's choice for
#        batch 1000, the carry tree here).
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS="${1:?usage: benches/serve_load.sh CLIENTS QUERIES}"
QUERIES="${2:?usage: benches/serve_load.sh CLIENTS QUERIES}"
if [ -z "${VEIL:-}" ]; then cargo build --release --quiet -p cli; fi
VEIL="$(realpath "${VEIL:-./target/release/veil}")"
MODEL=models/relu_classifier.veil
DIR="$(mktemp -d -t veil-serve-load.XXXXXX)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ "${KEEP:-0}" != 1 ]; then rm -rf "$DIR"; else echo "kept $DIR" >&2; fi
}
trap cleanup EXIT
FLAGS=()
PARTIES=(lab helper)
if [ "${NO_DEALER:-0}" = 1 ]; then FLAGS=(--no-dealer); PARTIES=(lab); fi
if [ -n "${COMPARISONS:-}" ]; then FLAGS+=(--comparisons "$COMPARISONS"); fi

read -r LAB_PORT HELPER_PORT < <(python3 -c '
import socket
s=[socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1",0))
print(*[x.getsockname()[1] for x in s])')
"$VEIL" certs --out "$DIR/dep" "${PARTIES[@]}" >/dev/null
{
    echo "[[party]]"; echo 'name = "lab"'; echo "address = \"127.0.0.1:$LAB_PORT\""
    echo 'cert = "lab.crt"'; echo 'key = "lab.key"'
    if [ "${NO_DEALER:-0}" != 1 ]; then
        echo "[[party]]"; echo 'name = "helper"'; echo "address = \"127.0.0.1:$HELPER_PORT\""
        echo 'cert = "helper.crt"'; echo 'key = "helper.key"'
    fi
} > "$DIR/dep/parties.toml"
"$VEIL" certs --out "$DIR/ca" --new-ca >/dev/null
"$VEIL" certs --out "$DIR/clients" --ca "$DIR/ca" --client load >/dev/null
"$VEIL" compile "$MODEL" "${FLAGS[@]}" --emit json -o "$DIR/plan.json"

# The model owner's weights and each client's rows, in the declared ranges.
python3 - "$DIR" "$CLIENTS" "$QUERIES" <<'EOF'
import json, random, sys
d, clients, queries = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.SystemRandom()
u = lambda lo, hi: round(rng.uniform(lo, hi), 4)
json.dump([[u(-1, 1) for _ in range(16)] for _ in range(8)], open(f"{d}/w1.json", "w"))
json.dump([u(-1, 1) for _ in range(16)], open(f"{d}/b1.json", "w"))
json.dump([[u(-1, 1) for _ in range(4)] for _ in range(16)], open(f"{d}/w2.json", "w"))
for c in range(clients):
    with open(f"{d}/x{c}.csv", "w") as f:
        for _ in range(queries):
            f.write(",".join(str(u(-2, 2)) for _ in range(8)) + "\n")
EOF

serve() {
    local who=$1; shift
    "$VEIL" serve "$MODEL" --as "$who" --config "$DIR/dep/parties.toml" --client-ca "$DIR/ca/ca.crt" \
        --max-sessions "${MAX_SESSIONS:-64}" "${FLAGS[@]}" "$@" 2> "$DIR/$who.log" &
    PIDS+=($!)
    for _ in $(seq 1 600); do grep -q serving "$DIR/$who.log" && return 0; sleep 0.05; done
    echo "$who did not start:" >&2; cat "$DIR/$who.log" >&2; exit 1
}
# RSS in kB, and after a slash the RSS less the pages freed lazily
# (MADV_FREE, smaps_rollup's LazyFree): mimalloc hands freed memory back
# that way, and the kernel takes those pages only when it needs them, so
# RSS alone still counts them.
rss() {
    awk '/^Rss:/ {r = $2} /^LazyFree:/ {l = $2} END {print r "/" r - l}' "/proc/$1/smaps_rollup"
}
# DEALER_ARGS: extra flags for the dealer (such as --deal-ahead 0).
if [ "${NO_DEALER:-0}" != 1 ]; then serve helper ${DEALER_ARGS:-}; HELPER_PID=${PIDS[-1]}; fi
serve lab -i w1="$DIR/w1.json" -i b1="$DIR/b1.json" -i w2="$DIR/w2.json"
LAB_PID=${PIDS[-1]}
RSS_START="lab_rss_start_kb=$(rss "$LAB_PID")"
if [ -n "${HELPER_PID:-}" ]; then RSS_START="$RSS_START helper_rss_start_kb=$(rss "$HELPER_PID")"; fi

# Checks one wave's answers: appends "served correct" to checked.txt and
# the latencies to lat.txt.
cat > "$DIR/check.py" <<'EOF'
import json, os, sys
d, clients = sys.argv[1], int(sys.argv[2])
plan = json.load(open(f"{d}/plan.json"))
spec = {o["name"]: o for o in plan["outputs"]}
w1, b1, w2 = (json.load(open(f"{d}/{n}.json")) for n in ("w1", "b1", "w2"))
def reference(x):
    h = [max(0.0, sum(x[i] * w1[i][j] for i in range(8)) + b1[j]) for j in range(16)]
    return [sum(h[j] * w2[j][k] for j in range(16)) for k in range(4)]
served = correct = 0
with open(f"{d}/lat.txt", "a") as lat:
    for c in range(clients):
        out = f"{d}/out{c}/hospital.json"
        if not os.path.exists(out):
            continue
        rows = [[float(v) for v in l.split(",")] for l in open(f"{d}/x{c}.csv")]
        got = json.load(open(out))
        times = open(f"{d}/t{c}.txt").readlines()
        lat.writelines(times)
        # Without each client's first query (which also connects).
        open(f"{d}/lat_steady.txt", "a").writelines(times[1:])
        for r, x in enumerate(rows[: len(got["label"])]):
            served += 1
            s = reference(x)
            top = max(s)
            label, score = int(got["label"][r]), got["score"][r]
            # As compiler::reference::deviations: the argmax is right within
            # its near-tie slack of the row's maximum, the max within its bound.
            ok_label = 0 <= label < 4 and s[label] >= top - spec["label"].get("near_tie", 0.0)
            ok_score = abs(score - top) <= spec["score"]["error_bound"]
            correct += ok_label and ok_score
print(served, correct, file=open(f"{d}/checked.txt", "a"))
EOF

# CPU seconds of this shell's finished children (bash's `times`, second
# line), written to times.txt by the shell itself (in a `$(...)` it would
# count the subshell's children).
children_cpu() {
    python3 -c '
import re, sys
u, s = (float(m) * 60 + float(x) for m, x in re.findall(r"(\d+)m([\d.]+)s", open(sys.argv[1]).readlines()[-1]))
print(f"{u + s:.3f}")' "$DIR/times.txt"
}
CLIENTS_CPU=0
START=$(date +%s.%N)
FAILED=0
RSS_WAVES=""
for wave in $(seq 1 "${WAVES:-1}"); do
    rm -rf "$DIR"/out* "$DIR"/t[0-9]*.txt
    CLIENT_PIDS=()
    times > "$DIR/times.txt"; CPU_BEFORE=$(children_cpu)
    PACE=()
    if [ -n "${RATE:-}" ]; then
        PACE=(--rate "$(python3 -c "print($RATE / $CLIENTS)")")
    fi
    for c in $(seq 0 $((CLIENTS - 1))); do
        if [ -n "${RATE:-}" ]; then sleep 0.001; fi
        "$VEIL" predict "$MODEL" --config "$DIR/dep/parties.toml" --cert "$DIR/clients/load.crt" \
            --key "$DIR/clients/load.key" -i x="$DIR/x$c.csv" --per-row -q --retries 5 \
            --timings "$DIR/t$c.txt" -o "$DIR/out$c" "${FLAGS[@]}" "${PACE[@]}" 2> "$DIR/client$c.log" &
        CLIENT_PIDS+=($!)
    done
    for p in "${CLIENT_PIDS[@]}"; do wait "$p" || FAILED=$((FAILED + 1)); done
    times > "$DIR/times.txt"
    CLIENTS_CPU=$(python3 -c "print(round($CLIENTS_CPU + $(children_cpu) - $CPU_BEFORE, 3))")
    python3 "$DIR/check.py" "$DIR" "$CLIENTS"
    RSS_WAVES="$RSS_WAVES lab_rss_after_wave${wave}_kb=$(rss "$LAB_PID")"
    if [ -n "${HELPER_PID:-}" ]; then RSS_WAVES="$RSS_WAVES helper_rss_after_wave${wave}_kb=$(rss "$HELPER_PID")"; fi
done
END=$(date +%s.%N)
echo "$RSS_START$RSS_WAVES failed_clients=$FAILED clients_cpu_s=$CLIENTS_CPU" >&2
if [ "$FAILED" -gt 0 ]; then
    for c in $(seq 0 $((CLIENTS - 1))); do
        if [ -s "$DIR/client$c.log" ]; then echo "client $c: $(tail -2 "$DIR/client$c.log")" >&2; fi
    done
fi

python3 - "$DIR" "$CLIENTS" "$QUERIES" "$START" "$END" "${WAVES:-1}" <<'EOF'
import sys
d, clients, queries = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
secs, waves = float(sys.argv[5]) - float(sys.argv[4]), int(sys.argv[6])
served = correct = 0
for line in open(f"{d}/checked.txt"):
    s, c = map(int, line.split())
    served, correct = served + s, correct + c
lat = sorted(float(l) for l in open(f"{d}/lat.txt"))
pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
lost = clients * queries * waves - served
print(f"served={served} correct={correct} lost={lost} p50_ms={pct(0.5):.2f} p99_ms={pct(0.99):.2f} "
      f"preds_per_s={served / secs:.0f}")
steady = sorted(float(l) for l in open(f"{d}/lat_steady.txt"))
if steady:
    print(f"without each client's first query (connecting): p50_ms={steady[len(steady) // 2]:.2f} "
          f"p99_ms={steady[min(len(steady) - 1, int(0.99 * len(steady)))]:.2f}", file=sys.stderr)
# The service's own rate: sessions the model owner logged as done, between
# the 10th and the 90th percentile of their end times (leaving out the
# clients' start-up and the last stragglers).
import datetime
ends = sorted(
    datetime.datetime.fromisoformat(l.split()[0].replace("Z", "+00:00")).timestamp()
    for l in open(f"{d}/lab.log")
    if " session " in l and 'outcome="ok"' in l
)
if len(ends) >= 100:
    lo, hi = ends[len(ends) // 10], ends[len(ends) * 9 // 10]
    if hi > lo:
        print(f"the model owner's steady rate (10th to 90th percentile of session ends): "
              f"sessions_per_s={(len(ends) * 9 // 10 - len(ends) // 10) / (hi - lo):.0f}", file=sys.stderr)
sys.exit(0 if lost == 0 and correct == served else 1)
EOF
