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

With `--within N`, only the pairs within each call: N runs of `m.run`
after a warm-up, and per run its time less its own Rust call's; the
median of those differences and of their share of the Rust call. Each of
`--invocations K` is a fresh process, and `--against PYTHON` runs every
invocation with that interpreter too (another build of the module, such
as the one before a change), alternating, so both see the same load:

    python benches/python_overhead.py --within 60 --invocations 5 \
        [--against /path/to/other/venv/bin/python]
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
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


def lr100(batch):
    m = veil.compile(str(MODEL))
    rng = np.random.default_rng()
    inputs = {
        "x": rng.uniform(-4, 4, size=(batch, 100)),
        "w": rng.uniform(-0.1, 0.1, size=100),
        "b": rng.uniform(-1, 1),
    }
    m.run(inputs)  # warm-up: compiles the plan for this batch
    return m, inputs


def within(batch, runs):
    """One invocation of `--within`: medians of `m.run`, of its Rust call,
    of their difference and of the difference's share of the Rust call."""
    m, inputs = lr100(batch)
    py, inner = [], []
    for _ in range(runs):
        t = time.perf_counter()
        m.run(inputs)
        py.append(time.perf_counter() - t)
        inner.append(m.last_stats["seconds"])
    return {
        "module": veil.__file__,
        "run": statistics.median(py),
        "rust": statistics.median(inner),
        "over": statistics.median(p - r for p, r in zip(py, inner)),
        "share": statistics.median((p - r) / r for p, r in zip(py, inner)),
    }


def invocations(args):
    """`--invocations` fresh processes of `--within`, alternating with
    `--against`'s interpreter when given; a line per invocation."""
    pythons = [sys.executable] + ([args.against] if args.against else [])
    rows = {p: [] for p in pythons}
    for i in range(args.invocations):
        for p in pythons:
            done = subprocess.run(
                [p, __file__, "--within", str(args.within), "--batch", str(args.batch), "--json"],
                check=True, capture_output=True, text=True,
            )
            r = json.loads(done.stdout.splitlines()[-1])
            rows[p].append(r)
            print(
                f"{i + 1} {p}: m.run {r['run'] * 1e3:.2f} ms, its Rust call {r['rust'] * 1e3:.2f} ms, "
                f"over {r['over'] * 1e3:.2f} ms, share {100 * r['share']:.1f}%",
                flush=True,
            )
    for p, rs in rows.items():
        print(
            f"{p} ({rs[0]['module']}): over {min(r['over'] for r in rs) * 1e3:.2f}–"
            f"{max(r['over'] for r in rs) * 1e3:.2f} ms, share "
            f"{100 * min(r['share'] for r in rs):.1f}–{100 * max(r['share'] for r in rs):.1f}% "
            f"(median of invocations {100 * statistics.median(r['share'] for r in rs):.1f}%)"
        )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--veil", default=str(ROOT / "target" / "release" / "veil"))
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--within", type=int, metavar="N",
                    help="only the pairs within each call, over N runs")
    ap.add_argument("--invocations", type=int, default=1, metavar="K",
                    help="with --within: K fresh processes")
    ap.add_argument("--against", metavar="PYTHON",
                    help="with --within: alternate with this interpreter's veil module")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.within:
        if args.json:
            print(json.dumps(within(args.batch, args.within)))
        else:
            invocations(args)
        return

    m, inputs = lr100(args.batch)
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
