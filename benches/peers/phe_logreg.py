"""python-paillier (phe) peer: additively homomorphic logistic regression.

Pipeline (the usual "HE inference" baseline):
  1. client: keygen (once), encrypt every feature of x (fixed-point ints);
  2. server: Enc(z) = sum_j w_j * Enc(x_j) + b  with plaintext w, b;
  3. client: decrypt z, apply sigmoid in the clear.
The sigmoid is NOT computed privately here (client learns z = x@w+b, which
leaks more than p under a stricter model) -- that is the standard Paillier
baseline; Veil/CrypTen/MPyC compute the sigmoid inside the protocol.

Each phase is timed separately. Encryption dominates (~100 modexps per row);
--workers parallelises encryption and server evaluation over rows.
Bytes: upload = 100 ciphertexts/row (each 2*keysize bits), download = 1/row.
"""
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import numpy as np  # noqa: E402
import phe  # noqa: E402
from phe import paillier  # noqa: E402

_PK = None


def _init(n):
    global _PK
    _PK = paillier.PaillierPublicKey(n)


def _enc_rows(rows):
    # rows: list of lists of ints -> list of lists of raw ciphertext ints
    return [[_PK.raw_encrypt(v % _PK.n) for v in r] for r in rows]


def _eval_rows(args):
    rows, wq, bq = args
    out = []
    for r in rows:
        acc = paillier.EncryptedNumber(_PK, _PK.raw_encrypt(bq % _PK.n, r_value=1), 0)
        for c, wj in zip(r, wq):
            acc = acc + paillier.EncryptedNumber(_PK, c, 0) * int(wj)
        out.append(acc.ciphertext(be_secure=False))
    return out


def chunks(lst, k):
    k = max(1, k)
    n = len(lst)
    step = (n + k - 1) // k
    return [lst[i:i + step] for i in range(0, n, step)]


def main():
    ap = common.base_parser(__doc__)
    ap.add_argument("--keysize", type=int, default=2048)
    ap.add_argument("--frac-bits", type=int, default=16, help="fixed-point fractional bits for x and w")
    ap.add_argument("--workers", type=int, default=1, help="processes for encryption / server eval")
    ap.add_argument("--max-rows", type=int, default=0,
                    help="if >0 and batch is larger, time only this many rows and extrapolate linearly "
                         "(reported with extrapolated=true and rows_measured)")
    ap.set_defaults(reps=1)
    a = ap.parse_args()
    f = a.frac_bits
    t0 = time.perf_counter()
    pk, sk = paillier.generate_paillier_keypair(n_length=a.keysize)
    t_keygen = time.perf_counter() - t0
    ct_bytes = (2 * a.keysize + 7) // 8
    pool = ProcessPoolExecutor(a.workers, initializer=_init, initargs=(pk.n,)) if a.workers > 1 else None
    _init(pk.n)
    for batch in common.batches(a.batches):
        x, w, b = common.workload(batch, a.dist, a.seed)
        rows = batch
        if a.max_rows and batch > a.max_rows:
            rows = a.max_rows
            x = x[:rows]
        scale = batch / rows
        xq = [[int(round(v * (1 << f))) for v in row] for row in x]
        wq = [int(round(v * (1 << f))) for v in w]
        bq = int(round(b * (1 << (2 * f))))
        runs = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            if pool:
                enc = [r for part in pool.map(_enc_rows, chunks(xq, a.workers)) for r in part]
            else:
                enc = _enc_rows(xq)
            t1 = time.perf_counter()
            if pool:
                zc = [c for part in pool.map(_eval_rows, [(p, wq, bq) for p in chunks(enc, a.workers)]) for c in part]
            else:
                zc = _eval_rows((enc, wq, bq))
            t2 = time.perf_counter()
            z = []
            for c in zc:
                v = sk.raw_decrypt(c)
                if v > pk.max_int:
                    v -= pk.n
                z.append(v / float(1 << (2 * f)))
            p = common.sigmoid(np.array(z))
            t3 = time.perf_counter()
            runs.append((t1 - t0, t2 - t1, t3 - t2, t3 - t0, p))
        runs.sort(key=lambda r: r[3])
        enc_s, srv_s, dec_s, tot, p = runs[len(runs) // 2]
        enc_s, srv_s, dec_s, tot = enc_s * scale, srv_s * scale, dec_s * scale, tot * scale
        common.emit({
            "peer": "phe", "mode": f"paillier{a.keysize}-clear-sigmoid", "batch": batch, "dist": a.dist,
            "seconds": tot, "preds_per_s": batch / tot,
            "bytes_per_pred": 100 * ct_bytes + ct_bytes,
            "bytes_up_per_pred": 100 * ct_bytes, "bytes_down_per_pred": ct_bytes,
            "encrypt_s": enc_s, "server_s": srv_s, "decrypt_sigmoid_s": dec_s,
            "encrypt_s_per_row": enc_s / batch, "keygen_s": t_keygen,
            "rows_measured": rows, "extrapolated": rows != batch,
            "workers": a.workers, "reps": a.reps, "phe_version": phe.__version__ if hasattr(phe, "__version__") else "1.5.0",
            "max_err": common.max_err(p, common.exact(x, w, b)),
        })
    if pool:
        pool.shutdown()


if __name__ == "__main__":
    main()
