"""MPyC peer: 3-party (honest majority, Shamir) private logistic regression.

Party 0 = client (inputs x, receives p), party 1 = server (inputs w, b),
party 2 = helper. Secure fixed point (SecFxp, default l=64, f=32).
Sigmoid = public odd degree-5 least-squares polynomial on [-T, T]
(common.poly5_coeffs); mode poly5-clamped first clamps z to [-T, T] with two
secure comparisons, mode poly5 evaluates the polynomial on raw z.

Run (spawns 3 local parties):
  python mpyc_logreg.py -M3 --batches 1,100
Batch 10000 is refused unless --allow-10000 is given (it is slow).
MPyC has no separate offline phase: randomness comes from PRSS, so all cost
is in the timed online run. Bytes are all parties' sent bytes (MPyC's own
per-connection counters, incl. 12-byte headers) during the timed section.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import numpy as np  # noqa: E402
import mpyc  # noqa: E402
from mpyc.runtime import mpc  # noqa: E402


def sent_bytes():
    return sum(p.protocol.nbytes_sent for p in mpc.parties if p.pid != mpc.pid and p.protocol is not None)


SERVER = 1


async def one_run(secfxp, batch, x, w, b, coeffs, T, clamp):
    await mpc.barrier()
    b0 = sent_bytes()
    t0 = time.perf_counter()
    # integral=False on every party: otherwise the zero placeholders of non-owners are
    # flagged integral and parties disagree on truncation (garbage / deadlock).
    X = mpc.input(secfxp.array(x if mpc.pid == 0 else np.zeros_like(x), integral=False), senders=0)
    W = mpc.input(secfxp.array(w if mpc.pid == SERVER else np.zeros_like(w), integral=False), senders=SERVER)
    B = mpc.input(secfxp(b if mpc.pid == SERVER else 0.0, integral=False), senders=SERVER)
    z = X @ W + B
    if clamp:
        z = mpc.np_minimum(mpc.np_maximum(z, -T), T)
    a1, a3, a5 = coeffs
    z2 = z * z
    p = z * (a1 + z2 * (a3 + z2 * a5)) + 0.5
    out = await mpc.output(p, receivers=0)
    t1 = time.perf_counter()
    nb = sent_bytes() - b0
    return t1 - t0, nb, out


async def main():
    ap = common.base_parser(__doc__)
    ap.add_argument("--sigmoid", choices=["poly5-clamped", "poly5"], default="poly5-clamped")
    ap.add_argument("--clamp", type=float, default=8.0, help="T: fit/clamp range [-T, T]")
    ap.add_argument("--bitlen", type=int, default=64, help="SecFxp bit length l")
    ap.add_argument("--frac", type=int, default=32, help="SecFxp fractional bits f")
    ap.add_argument("--allow-10000", action="store_true", help="allow batch sizes >= 10000")
    a, _ = ap.parse_known_args()
    secfxp = mpc.SecFxp(a.bitlen, a.frac)
    coeffs = common.poly5_coeffs(a.clamp)
    clamp = a.sigmoid == "poly5-clamped"
    global SERVER
    await mpc.start()
    SERVER = min(1, len(mpc.parties) - 1)
    for batch in common.batches(a.batches):
        if batch >= 10000 and not a.allow_10000:
            if mpc.pid == 0:
                print(f"# skipping batch {batch}: pass --allow-10000", file=sys.stderr)
            continue
        x, w, b = common.workload(batch, a.dist, a.seed)
        runs = []
        for _ in range(a.reps):
            runs.append(await one_run(secfxp, batch, x, w, b, coeffs, a.clamp, clamp))
        # total bytes = sum over parties of what each sent; gather to party 0 after timing
        per_party = await mpc.transfer([r[1] for r in runs], senders=None, receivers=0)
        if mpc.pid == 0:
            totals = [sum(pp[i] for pp in per_party) for i in range(len(runs))]
            secs = [r[0] for r in runs]
            med = common.median(secs)
            out = np.asarray(runs[-1][2], dtype=np.float64)
            ref = common.exact(x, w, b)
            common.emit({
                "peer": "mpyc", "mode": f"{len(mpc.parties)}pc-{a.sigmoid}", "batch": batch, "dist": a.dist,
                "seconds": med, "preds_per_s": batch / med,
                "bytes_per_pred": common.median(totals) / batch,
                "max_err": common.max_err(out, ref),
                "max_err_vs_poly": common.max_err(out, common.poly5_clear(x @ w + b, coeffs, a.clamp if clamp else None)),
                "runs_s": secs, "parties": len(mpc.parties), "secfxp": [a.bitlen, a.frac],
                "clamp_T": a.clamp, "mpyc_version": mpyc.__version__,
            })
    await mpc.shutdown()


if __name__ == "__main__":
    mpc.run(main())
