#!/usr/bin/env python3
"""The overhead of `Model.run` over the Rust call it makes, at LR-100
(models/logreg_100.veil, with its dealer) and batch 10,000: the median of
`m.run` (inputs in from NumPy, outputs out to NumPy, the GIL released, the
plan for the batch kept from the warm-up) against the median of `veil
bench`'s timing of `runtime::exec::run_in_process` alone, measured
alternately in one invocation; and, within each `m.run`, its time over
the Rust call's it made (`Model.last_stats["seconds"]`), which cancels
the noise of a shared machine.

    python benches/python_overhead.py [--veil target/release/veil] [--repeat 9]
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import tempfile
import time

import numpy as np

import veil

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "logreg_100.veil"


def rust_median(binary, batch, repeat):
    with tempfile.TemporaryDirectory() as d:
        out = pathlib.Path(d) / "bench.json"
        subprocess.run(
            [binary, "bench", str(MODEL), "--modes", "dealer", "--batches", str(batch),
             "--repeat", str(repeat), "--warmup", "1", "--json", str(out)],
            check=True, capture_output=True,
        )
        return json.loads(out.read_text().splitlines()[0])["seconds"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--veil", default=str(ROOT / "target" / "release" / "veil"))
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    m = veil.compile(str(MODEL))
    rng = np.random.default_rng()
    inputs = {
        "x": rng.uniform(-4, 4, size=(args.batch, 100)),
        "w": rng.uniform(-0.1, 0.1, size=100),
        "b": rng.uniform(-1, 1),
    }
    m.run(inputs)  # warm-up: compiles the plan for this batch
    py, rust, inner = [], [], []
    for _ in range(args.rounds):
        for _ in range(args.repeat):
            t = time.perf_counter()
            m.run(inputs)
            py.append(time.perf_counter() - t)
            # The same call's Rust part: run_with_transports alone.
            inner.append(m.last_stats["seconds"])
        rust.append(rust_median(args.veil, args.batch, args.repeat))
    py_med, rust_med = statistics.median(py), statistics.median(rust)
    print(f"m.run: median {py_med * 1e3:.2f} ms over {len(py)} runs")
    print(
        f"veil bench (run_in_process): medians {', '.join(f'{r * 1e3:.2f}' for r in rust)} ms "
        f"over {args.rounds} invocations of {args.repeat} runs; median {rust_med * 1e3:.2f} ms"
    )
    print(f"overhead of m.run against veil bench: {100 * (py_med / rust_med - 1):+.1f}%")
    # Within each call: m.run's time over its own Rust call's (noise on a
    # shared machine cancels out of the pairs).
    ratios = [p / r - 1 for p, r in zip(py, inner)]
    extra = [p - r for p, r in zip(py, inner)]
    print(
        f"within each call: median overhead {100 * statistics.median(ratios):+.1f}% "
        f"({statistics.median(extra) * 1e3:.2f} ms over a median Rust call of "
        f"{statistics.median(inner) * 1e3:.2f} ms)"
    )


if __name__ == "__main__":
    main()
