#!/usr/bin/env python3
"""Veil without a dealer against SecretFlow SPU (Cheetah, and SEMI2K for
reference), measured in one invocation so the ratios share the machine's
load. Runs `veil bench --modes two-party` (in-process parties, correlations
by the cost model's choice, OT today) and `spu_bench.py` on the same
workloads and sizes, then prints a table of rows per second and ratios.

  benches/peers/spu_vs_veil.py --spu-python ~/.cache/veil-peers/spu/bin/python
"""
import argparse
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

WORKLOADS = {
    # name: (model file, batch)
    "relu": (HERE / "relu.veil", 100_000),
    "logreg": (ROOT / "models/logreg_100.veil", 10_000),
    "relu_classifier": (ROOT / "models/relu_classifier.veil", 1_000),
    # The convolutional networks of issue 18 (--net-rows sets their batch).
    "net_a": (ROOT / "models/net_a.veil", 100),
    "net_b": (ROOT / "models/net_b.veil", 100),
    "net_c": (ROOT / "models/net_c.veil", 100),
    "net_d": (ROOT / "models/net_d.veil", 100),
    "lenet5": (ROOT / "models/lenet5.veil", 100),
    # Issue 17's RLWE products (--matmul-rows sets their batch).
    "matmul_64x16": (ROOT / "benches/rlwe/matmul_64x16.veil", 1),
    "matmul_128x128": (ROOT / "benches/rlwe/matmul_128x128.veil", 1),
    "matmul_784x128": (ROOT / "benches/rlwe/matmul_784x128.veil", 1),
}
MATMULS = ("matmul_64x16", "matmul_128x128", "matmul_784x128")
NETS = ("net_a", "net_b", "net_c", "net_d", "lenet5")


def veil(bin_, model, batch, repeat, correlations, mode="two-party"):
    cmd = [bin_, "bench", str(model), "--modes", mode, "--batches", str(batch),
           "--repeat", str(repeat), "--warmup", "1"]
    if correlations:
        cmd += ["--correlations", correlations]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        f = line.split()
        # mode via batch seconds preds/s bytes/pred rounds max-err
        if len(f) >= 8 and f[0] == mode and f[2] == str(batch):
            return float(f[3]), float(f[4]), f[7], float(f[5])
    raise SystemExit(f"no result in veil bench output:\n{out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--veil", default=str(ROOT / "target/release/veil"))
    ap.add_argument("--spu-python", required=True, help="python of a venv with spu installed")
    ap.add_argument("--workloads", default="relu,logreg,relu_classifier")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--correlations", choices=["ot", "paillier"], default=None)
    ap.add_argument("--mode", choices=["two-party", "dealer"], default="two-party",
                    help="Veil without a dealer (against Cheetah) or with one (against SEMI2K)")
    ap.add_argument("--net-rows", type=int, default=None, help="batch of the convolutional networks")
    ap.add_argument("--matmul-rows", type=int, default=None, help="batch of the RLWE products")
    ap.add_argument("--classifier-rows", type=int, default=None,
                    help="batch of relu_classifier (1: the latency of one prediction)")
    ap.add_argument("--protocols", default="CHEETAH,SEMI2K")
    a = ap.parse_args()
    if a.matmul_rows:
        for n in MATMULS:
            WORKLOADS[n] = (WORKLOADS[n][0], a.matmul_rows)
    if a.classifier_rows:
        WORKLOADS["relu_classifier"] = (WORKLOADS["relu_classifier"][0], a.classifier_rows)
    if a.net_rows:
        for n in NETS:
            WORKLOADS[n] = (WORKLOADS[n][0], a.net_rows)

    names = a.workloads.split(",")
    spu_cmd = [a.spu_python, str(HERE / "spu_bench.py"), "--workloads", ",".join(names),
               "--repeat", str(a.repeat),
               "--relu-rows", str(WORKLOADS["relu"][1]),
               "--logreg-rows", str(WORKLOADS["logreg"][1]),
               "--classifier-rows", str(WORKLOADS["relu_classifier"][1]),
               "--net-rows", str(WORKLOADS["net_a"][1]),
               "--matmul-rows", str(WORKLOADS["matmul_64x16"][1]), "--protocols", a.protocols]
    rows = {}
    for name in names:
        model, batch = WORKLOADS[name]
        s, per, err, b = veil(a.veil, model, batch, a.repeat, a.correlations, a.mode)
        rows[name] = {"veil": (s, per, err)}
        print(f"veil {name} rows={batch} seconds={s:.4f} per_second={per:.1f} max_err={err} "
              f"bytes_per_row={b:.0f}", flush=True)
    # SPU logs to stderr; only its result lines go to stdout.
    out = subprocess.run(spu_cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True).stdout
    for line in out.splitlines():
        print(line, flush=True)
        m = re.match(r"spu (\S+) (\S+) rows=(\d+) seconds=(\S+) per_second=(\S+) max_err=(\S+)", line)
        if m:
            rows[m[1]][m[2]] = (float(m[4]), float(m[5]), m[6])
    print()
    fmt = lambda t: f"{t[0]:.3f} s ({t[1]:,.0f}/s)" if t else "—"
    if a.mode == "dealer":
        print("| workload | rows | Veil, dealer | SPU SEMI2K (dealer) | Veil / SEMI2K |")
        print("|---|---|---|---|---|")
        for name in names:
            r = rows[name]
            v, s2 = r["veil"], r.get("SEMI2K")
            ratio = f"{v[1] / s2[1]:.2f}×" if s2 else "—"
            print(f"| {name} | {WORKLOADS[name][1]:,} | {fmt(v)} | {fmt(s2)} | {ratio} |")
        return
    print("| workload | rows | Veil, no dealer | SPU Cheetah | Veil / Cheetah | SPU SEMI2K (dealer) |")
    print("|---|---|---|---|---|---|")
    for name in names:
        r = rows[name]
        v, c, s2 = r["veil"], r.get("CHEETAH"), r.get("SEMI2K")
        ratio = f"{v[1] / c[1]:.2f}×" if c else "—"
        print(f"| {name} | {WORKLOADS[name][1]:,} | {fmt(v)} | {fmt(c)} | {ratio} | {fmt(s2)} |")


if __name__ == "__main__":
    sys.exit(main())
