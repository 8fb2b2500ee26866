"""Shared workload generator and helpers for Veil's peer benchmarks.

The "talk's workload": private logistic regression with 100 features.
Client: x [batch, 100], uniform in [-4, 4] (or N(0,1) with --dist normal).
Server: w [100], uniform in [-1, 1] (or N(0, 0.3)), bias b uniform in [-1, 1].
Output to the client: p = sigmoid(x @ w + b).
"""
import argparse
import json
import math
import statistics
import sys

import numpy as np

FEATURES = 100


def workload(batch, dist="uniform", seed=0, features=FEATURES):
    rng = np.random.default_rng(seed)
    if dist == "uniform":
        x = rng.uniform(-4.0, 4.0, size=(batch, features))
        w = rng.uniform(-1.0, 1.0, size=(features,))
    elif dist == "veil":
        # The ranges models/logreg_100.veil declares (the data Veil's own
        # benchmark draws): x in [-4, 4], w in [-0.1, 0.1], b in [-1, 1].
        x = rng.uniform(-4.0, 4.0, size=(batch, features))
        w = rng.uniform(-0.1, 0.1, size=(features,))
    elif dist == "normal":
        x = rng.normal(0.0, 1.0, size=(batch, features))
        w = rng.normal(0.0, 0.3, size=(features,))
    else:
        raise ValueError(dist)
    b = float(rng.uniform(-1.0, 1.0))
    return x, w, b


def sigmoid(z):
    z = np.asarray(z, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-z))


def exact(x, w, b):
    return sigmoid(x @ w + b)


def base_parser(desc):
    p = argparse.ArgumentParser(description=desc)
    p.add_argument("--batches", default="1,100", help="comma-separated batch sizes")
    p.add_argument("--dist", choices=["uniform", "normal", "veil"], default="uniform")
    p.add_argument("--reps", type=int, default=3, help="timed runs per batch (median reported)")
    p.add_argument("--seed", type=int, default=0)
    return p


def batches(s):
    return [int(t) for t in s.split(",") if t.strip()]


def emit(rec):
    print(json.dumps(rec), flush=True)


def median(xs):
    return statistics.median(xs)


def max_err(pred, ref):
    return float(np.max(np.abs(np.asarray(pred, dtype=np.float64).reshape(-1) - np.asarray(ref).reshape(-1))))


def poly5_coeffs(T=8.0):
    """Least-squares odd degree-5 fit of sigmoid on [-T, T]: 0.5 + a1 z + a3 z^3 + a5 z^5.

    Public coefficients (computed in the clear); both the MPyC and CrypTen
    "poly5" modes use these so the approximations are identical.
    """
    z = np.linspace(-T, T, 4001)
    A = np.stack([z, z ** 3, z ** 5], axis=1)
    a, *_ = np.linalg.lstsq(A, sigmoid(z) - 0.5, rcond=None)
    return [float(v) for v in a]


def poly5_clear(z, coeffs, T=None):
    z = np.asarray(z, dtype=np.float64)
    if T is not None:
        z = np.clip(z, -T, T)
    a1, a3, a5 = coeffs
    z2 = z * z
    return 0.5 + z * (a1 + z2 * (a3 + z2 * a5))
