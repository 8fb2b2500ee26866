#!/usr/bin/env python3
"""Generate (and verify) python-paillier interop fixtures for Veil.

    pip install phe gmpy2
    python3 benches/peers/gen_phe_fixtures.py runtime/tests/fixtures/phe
    python3 benches/peers/gen_phe_fixtures.py --verify PRIV.json CASES.json

The JSON shapes are those of phe's `pheutil` CLI: JWK keys whose "n",
"lambda", "mu" are base64url big-endian integers without padding, and
encrypted numbers {"v": "<decimal ciphertext>", "e": exponent} with the
exponent lowered to -32 where possible. phe >= 1.4 keeps p, q instead of
lambda, mu; we write lambda = (p-1)(q-1) and mu = lambda^-1 mod n as the
original pheutil did.

--verify decrypts each case {"plain": x, "enc": {...}} of CASES.json with
phe and exits 1 on any mismatch (used by Veil's tests, direction Veil -> phe).
"""
import json
import os
import sys

import phe
from phe import util


def jwk_pair(pub, priv, kid):
    jwk_public = {
        "kty": "DAJ",
        "alg": "PAI-GN1",
        "key_ops": ["encrypt"],
        "n": util.int_to_base64(pub.n),
        "kid": "Paillier public key " + kid,
    }
    lam = (priv.p - 1) * (priv.q - 1)
    mu = util.invert(lam, pub.n)
    jwk_private = {
        "kty": "DAJ",
        "key_ops": ["decrypt"],
        "lambda": util.int_to_base64(lam),
        "mu": util.int_to_base64(mu),
        "pub": jwk_public,
        "kid": "Paillier private key " + kid,
    }
    return jwk_public, jwk_private


def serialise(enc):
    if enc.exponent > -32:
        enc = enc.decrease_exponent_to(-32)
    return {"v": str(enc.ciphertext()), "e": enc.exponent}


def load_private(data):
    n = util.base64_to_int(data["pub"]["n"])
    pub = phe.PaillierPublicKey(n)
    lam = util.base64_to_int(data["lambda"])
    # recover p, q from n and lambda = (p-1)(q-1)
    s = n - lam + 1
    d = util.isqrt(s * s - 4 * n)
    p, q = (s - d) // 2, (s + d) // 2
    assert p * q == n
    return pub, phe.PaillierPrivateKey(pub, p, q)


def generate(outdir):
    os.makedirs(outdir, exist_ok=True)
    pub, priv = phe.generate_paillier_keypair(n_length=2048)
    jpub, jpriv = jwk_pair(pub, priv, "(Veil interop fixture, 2048 bits)")
    values = [0.0, 1.0, -1.0, 42.0, -7.5, 0.1, 3.141592653589793, -2.5e-7, 1234567.890625, 1e15]
    cases = [{"plain": v, "enc": serialise(pub.encrypt(v))} for v in values]
    ops = []
    a, b = 12.5, -3.25
    # operate on the deserialised numbers, as pheutil's add/multiply do
    def load(enc):
        return phe.EncryptedNumber(pub, int(enc["v"]), exponent=enc["e"])

    ea, eb = load(serialise(pub.encrypt(a))), load(serialise(pub.encrypt(b)))
    ops.append({"op": "add", "a": serialise(ea), "b": serialise(eb), "result": serialise(ea + eb), "plain": a + b})
    ops.append({"op": "add_plain", "a": serialise(ea), "k": 0.75, "result": serialise(ea + 0.75), "plain": a + 0.75})
    ops.append({"op": "mul", "a": serialise(ea), "k": -4.0, "result": serialise(ea * -4.0), "plain": a * -4.0})
    ops.append({"op": "mul", "a": serialise(ea), "k": 0.5, "result": serialise(ea * 0.5), "plain": a * 0.5})
    files = {
        "pub.json": jpub,
        "priv.json": jpriv,
        "encrypted.json": cases,
        "ops.json": ops,
    }
    for name, obj in files.items():
        with open(os.path.join(outdir, name), "w") as f:
            json.dump(obj, f, indent=1)
            f.write("\n")
    print("wrote", ", ".join(sorted(files)), "to", outdir)


def verify(priv_path, cases_path):
    with open(priv_path) as f:
        pub, priv = load_private(json.load(f))
    with open(cases_path) as f:
        cases = json.load(f)
    bad = 0
    for c in cases:
        enc = phe.EncryptedNumber(pub, int(c["enc"]["v"]), exponent=c["enc"]["e"])
        got = priv.decrypt(enc)
        if abs(got - c["plain"]) > 1e-9 * (1 + abs(c["plain"])):
            print("mismatch: expected", c["plain"], "got", got)
            bad += 1
    print(len(cases) - bad, "passed,", bad, "failed")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--verify":
        verify(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 2:
        generate(sys.argv[1])
    else:
        print(__doc__)
        sys.exit(2)
