#!/usr/bin/env python3
"""Time python-paillier (phe + gmpy2) on the operations of Veil's
paillier/benches/paillier.rs. Single thread (phe has no parallelism).

    pip install phe gmpy2
    python3 benches/peers/phe_ops.py [--bits 2048,3072] [--json out.json]

Each figure is the median over several timed batches, in microseconds.
"""
import argparse
import json
import random
import statistics
import time

import phe
from phe import paillier


def timeit(fn, min_time=1.0, batches=7):
    # calibrate the batch size so that one batch takes ~min_time/batches
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time / batches or n >= 1 << 20:
            break
        n *= 2
    samples = []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n)
    return statistics.median(samples) * 1e6


def run(bits, keygen_reps):
    assert paillier.powmod.__module__ != "builtins" or True
    res = {}
    t0 = time.perf_counter()
    for _ in range(keygen_reps):
        pub, priv = paillier.generate_paillier_keypair(n_length=bits)
    res["keygen"] = (time.perf_counter() - t0) / keygen_reps * 1e6
    m = random.getrandbits(64)
    res["encrypt_public"] = timeit(lambda: pub.encrypt(m))
    res["raw_encrypt"] = timeit(lambda: pub.raw_encrypt(m))
    ct = pub.encrypt(m)
    ct2 = pub.encrypt(7)
    res["decrypt"] = timeit(lambda: priv.decrypt(ct))
    res["raw_decrypt"] = timeit(lambda: priv.raw_decrypt(ct.ciphertext(False)))
    res["add"] = timeit(lambda: ct + ct2)
    k = random.getrandbits(64) | (1 << 63)
    res["mul_u64"] = timeit(lambda: ct * k)
    cts = [pub.encrypt(i) for i in range(100)]
    ws = [random.getrandbits(64) | (1 << 63) for _ in range(100)]

    def dot():
        acc = cts[0] * ws[0]
        for c, w in zip(cts[1:], ws[1:]):
            acc = acc + c * w
        return acc

    res["dot100_u64"] = timeit(dot, min_time=2.0, batches=5)
    assert priv.decrypt(dot()) == sum(i * w for i, w in enumerate(ws))
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bits", default="2048,3072")
    ap.add_argument("--keygen-reps", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    try:
        import gmpy2  # noqa: F401
        backend = "gmpy2 " + gmpy2.version()
    except ImportError:
        backend = "pure python (no gmpy2!)"
    out = {"phe": phe.__version__, "backend": backend, "results": {}}
    for bits in [int(b) for b in args.bits.split(",")]:
        r = run(bits, args.keygen_reps)
        out["results"][bits] = r
        for name, us in r.items():
            print(f"phe {bits:5d} {name:16s} {us:12.1f} us")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
