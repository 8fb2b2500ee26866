#!/usr/bin/env bash
# Issue 22's target, measured in one invocation: rows per second when
# `veil run` scores a large .npy file (LR-100 with a dealer), against a warm
# 10,000-row batch from `veil bench` measured just before and just after
# each file run, with the peak RSS of the file run.
#
#   benches/stream_rate.sh [ROWS] [REPEAT]     (default 1000000 rows, 3 times)
#
# Needs python3 (standard library only) to write the input file, and
# /usr/bin/time. The file, ROWS x 100 float64 values (800 MB at 10^6 rows),
# is written once under target/stream-bench/ and kept for later runs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
REPEAT=${2:-3}
DIR=target/stream-bench
mkdir -p "$DIR"
cargo build --release -q
VEIL=target/release/veil
X="$DIR/x_$ROWS.npy"
if [ ! -f "$X" ]; then
  echo "writing $X ($ROWS rows x 100 features, uniform in [-4, 4])" >&2
  python3 - "$X" "$ROWS" <<'EOF'
import array, random, sys
path, rows = sys.argv[1], int(sys.argv[2])
rng = random.Random(22)
# A block of 10,000 random rows, repeated: the values do not matter to speed.
block = array.array('d', (rng.uniform(-4, 4) for _ in range(10_000 * 100)))
header = "{'descr': '<f8', 'fortran_order': False, 'shape': (%d, 100), }" % rows
header += ' ' * (63 - (len(header) + 10) % 64) + '\n'
with open(path + '.part', 'wb') as f:
    f.write(b'\x93NUMPY\x01\x00' + len(header).to_bytes(2, 'little') + header.encode())
    left = rows
    while left:
        n = min(left, 10_000)
        block[: n * 100].tofile(f) if n == 10_000 else f.write(block[: n * 100].tobytes())
        left -= n
import os
os.replace(path + '.part', path)
EOF
  python3 -c "import json, random; r = random.Random(7); json.dump([r.uniform(-0.1, 0.1) for _ in range(100)], open('$DIR/w.json', 'w')); json.dump(0.25, open('$DIR/b.json', 'w'))"
fi
warm() {
  "$VEIL" bench models/logreg_100.veil --modes dealer --batches 10000 --repeat 5 2>/dev/null |
    awk '$1 == "dealer" { print $5 }'
}
echo "run  warm-before  file-rows/s  warm-after  ratio(file/mean warm)  peak-RSS-MB"
for i in $(seq "$REPEAT"); do
  before=$(warm)
  rm -rf "$DIR/out"
  stats=$( { /usr/bin/time -f 'RSS %M' "$VEIL" run models/logreg_100.veil -i x="$X" \
      -i w="$DIR/w.json" -i b="$DIR/b.json" -o "$DIR/out" >/dev/null; } 2>&1 )
  rate=$(echo "$stats" | awk '/rows in .* chunks? of/ { print $(NF-1) }')
  rss=$(echo "$stats" | awk '$1 == "RSS" { printf "%.0f", $2 / 1024 }')
  after=$(warm)
  ratio=$(awk -v r="$rate" -v a="$before" -v b="$after" 'BEGIN { printf "%.2f", r / ((a + b) / 2) }')
  echo "$i  $before  $rate  $after  $ratio  $rss"
done
rm -rf "$DIR/out"
