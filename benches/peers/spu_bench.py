#!/usr/bin/env python3
"""SecretFlow SPU on Veil's dealer-free workloads, in its in-process
two-party simulator (the real protocol, both parties in one process).

Protocols: CHEETAH (dealer-free: silent OT for nonlinear operations, lattice
HE for matrix products) and SEMI2K (a trusted dealer, like Veil's).
Field FM64 with 16 fraction bits, as Veil's fixed point.

Workloads (the same shapes and ranges as Veil's models):
  relu              relu(x + y), x and y of 10^5 elements in [-8, 8]
  logreg            LR-100: sigmoid(x @ w + b), x [rows, 100] in [-4, 4]
                    (models/logreg_100.veil)
  relu_classifier   argmax and max of relu(x @ w1 + b1) @ w2, 8-16-4
                    (models/relu_classifier.veil)
  matmul_KxN        x @ w, x [rows, K] in [-1, 1], w [K, N] in [-0.25, 0.25]
                    for (K, N) in (64, 16), (128, 128), (784, 128): issue 17's
                    RLWE products (benches/rlwe/matmul_KxN.veil)
  net_a ... lenet5  the convolutional benchmark networks of issue 18
                    (models/net_a.veil ... lenet5.veil): logits and label
                    of 1x28x28 images in [0, 1], random weights of the
                    same shapes (throughput does not depend on them)

Each measurement is the median of --repeat timed calls after one untimed
call (which compiles). Prints one line per (workload, protocol):
  spu <workload> <protocol> rows=<n> seconds=<s> per_second=<n/s> max_err=<e>

Install: python3 -m venv spu && spu/bin/pip install spu   (SPU 0.9.5)
"""
import argparse
import statistics
import time

import numpy as np


def workloads(rows, rng):
    import jax.numpy as jnp

    def relu(x, y):
        return jnp.maximum(x + y, 0)

    def logreg(x, w, b):
        return 1 / (1 + jnp.exp(-(x @ w + b)))

    def classifier(x, w1, b1, w2):
        h = jnp.maximum(x @ w1 + b1, 0)
        s = h @ w2
        return jnp.argmax(s, axis=1), jnp.max(s, axis=1)

    u = lambda lo, hi, shape: rng.uniform(lo, hi, shape).astype(np.float32)
    return {
        "relu": (relu, lambda: (u(-8, 8, rows["relu"]), u(-8, 8, rows["relu"])), rows["relu"]),
        "logreg": (
            logreg,
            lambda: (u(-4, 4, (rows["logreg"], 100)), u(-0.4, 0.4, 100), u(-1, 1, ())),
            rows["logreg"],
        ),
        "relu_classifier": (
            classifier,
            lambda: (
                u(-2, 2, (rows["relu_classifier"], 8)),
                u(-1, 1, (8, 16)),
                u(-1, 1, 16),
                u(-1, 1, (16, 4)),
            ),
            rows["relu_classifier"],
        ),
        **{
            f"matmul_{k}x{n}": (
                lambda x, w: x @ w,
                lambda k=k, n=n: (u(-1, 1, (rows["matmul"], k)), u(-0.25, 0.25, (k, n))),
                rows["matmul"],
            )
            for k, n in ((64, 16), (128, 128), (784, 128))
        },
    }


def nets(rows, rng):
    """The benchmark networks: layer lists as models/nets/train.py."""
    import jax.numpy as jnp
    from jax import lax

    u = lambda shape: rng.uniform(-0.1, 0.1, shape).astype(np.float32)
    conv = lambda cin, cout, k, s=1, p=0: ("conv", (cout, cin, k, k), s, p)
    dense = lambda n, m: ("dense", (n, m))
    layers = {
        "net_a": ["flat", dense(784, 128), "relu", dense(128, 128), "relu", dense(128, 10)],
        "net_b": [conv(1, 16, 5), "relu", "max", conv(16, 16, 5), "relu", "max", "flat",
                  dense(256, 100), "relu", dense(100, 10)],
        "net_c": [conv(1, 20, 5), "relu", "max", conv(20, 50, 5), "relu", "max", "flat",
                  dense(800, 500), "relu", dense(500, 10)],
        "net_d": [conv(1, 5, 5, 2, 2), "relu", "flat", dense(980, 100), "relu", dense(100, 10)],
        "lenet5": [conv(1, 6, 5, 1, 2), "relu", "avg", conv(6, 16, 5), "relu", "avg", "flat",
                   dense(400, 120), "relu", dense(120, 84), "relu", dense(84, 10)],
    }
    out = {}
    for name, ls in layers.items():
        params = []
        for l in ls:
            if isinstance(l, tuple):
                params += [u(l[1]), u(l[1][0] if l[0] == "conv" else l[1][1])]

        def fn(x, *ps, ls=ls):
            ps = list(ps)
            for l in ls:
                if l == "relu":
                    x = jnp.maximum(x, 0)
                elif l in ("max", "avg"):
                    b, c, h, w = x.shape
                    r = x.reshape(b, c, h // 2, 2, w // 2, 2)
                    x = r.max(axis=(3, 5)) if l == "max" else r.mean(axis=(3, 5))
                elif l == "flat":
                    x = x.reshape(x.shape[0], -1)
                elif l[0] == "conv":
                    w, bias = ps.pop(0), ps.pop(0)
                    x = lax.conv_general_dilated(x, w, (l[2], l[2]), [(l[3], l[3])] * 2,
                                                 dimension_numbers=("NCHW", "OIHW", "NCHW"))
                    x = x + bias[None, :, None, None]
                else:
                    w, bias = ps.pop(0), ps.pop(0)
                    x = x @ w + bias
            return x, jnp.argmax(x, axis=1)

        n = rows["nets"]
        out[name] = (fn, lambda params=params, n=n: (rng.uniform(0, 1, (n, 1, 28, 28)).astype(np.float32),
                                                     *params), n)
    return out


def max_err(got, want):
    got = got if isinstance(got, (tuple, list)) else (got,)
    want = want if isinstance(want, (tuple, list)) else (want,)
    return max(float(np.max(np.abs(np.asarray(g, np.float64) - np.asarray(w, np.float64))))
               for g, w in zip(got, want))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="relu,logreg,relu_classifier")
    ap.add_argument("--protocols", default="CHEETAH,SEMI2K")
    ap.add_argument("--relu-rows", type=int, default=100_000)
    ap.add_argument("--logreg-rows", type=int, default=10_000)
    ap.add_argument("--classifier-rows", type=int, default=1_000)
    ap.add_argument("--net-rows", type=int, default=100)
    ap.add_argument("--matmul-rows", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    import spu.libspu as libspu
    import spu.utils.simulation as spsim

    rows = {"relu": a.relu_rows, "logreg": a.logreg_rows, "relu_classifier": a.classifier_rows,
            "nets": a.net_rows, "matmul": a.matmul_rows}
    rng = np.random.default_rng(a.seed)
    table = workloads(rows, rng)
    table.update(nets(rows, rng))
    for proto in a.protocols.split(","):
        cfg = libspu.RuntimeConfig(
            protocol=getattr(libspu.ProtocolKind, proto),
            field=libspu.FieldType.FM64,
            fxp_fraction_bits=16,
        )
        sim = spsim.Simulator(2, cfg)
        for name in a.workloads.split(","):
            fn, make, n = table[name]
            args = make()
            want = fn(*args)
            f = spsim.sim_jax(sim, fn)
            f(*args)  # compiles
            times = []
            for _ in range(a.repeat):
                t0 = time.perf_counter()
                got = f(*args)
                times.append(time.perf_counter() - t0)
            s = statistics.median(times)
            print(f"spu {name} {proto} rows={n} seconds={s:.4f} per_second={n / s:.1f} "
                  f"max_err={max_err(got, want):.2e}", flush=True)


if __name__ == "__main__":
    main()
