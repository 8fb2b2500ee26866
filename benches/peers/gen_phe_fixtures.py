#!/usr/bin/env python3
"""Generate (and verify) python-paillier interop fixtures for Veil.

    python3 -m venv phe-venv && phe-venv/bin/pip install 'phe[cli]'
    phe-venv/bin/python benches/peers/gen_phe_fixtures.py paillier/tests/fixtures/phe
    phe-venv/bin/python benches/peers/gen_phe_fixtures.py --verify PRIV.json CASES.json

The JSON shapes are those of phe's `pheutil` CLI (phe 1.5, phe/command_line.py):
JWK keys whose "n", "p", "q" are base64url big-endian integers without
padding, and encrypted numbers {"v": "<decimal ciphertext>", "e": exponent}
with the exponent lowered to -32 where possible.

Files written:
  priv.json             private key as `pheutil genpkey` (phe >= 1.4) writes it:
                        {"kty", "key_ops", "p", "q", "pub", "kid"}
  priv_lambda_mu.json   the same key in the older pheutil form (phe < 1.4):
                        "lambda" = (p-1)(q-1) and "mu" = lambda^-1 mod n
                        instead of "p" and "q"
  pub.json              its public key, as `pheutil extract` writes it
  encrypted.json        [{"plain": x, "enc": {...}}] made by phe
  ops.json              phe's add / add_plain / mul results on such numbers

--verify decrypts each case {"plain": x, "enc": {...}} of CASES.json with
phe and exits 1 on any mismatch. PRIV.json may be in either form.
"""
import json
import os
import sys

import phe
from phe import util


def jwk_pair(pub, priv, kid):
    """Public and private JWK exactly as phe 1.5's `pheutil genpkey` builds them."""
    jwk_public = {
        "kty": "DAJ",
        "alg": "PAI-GN1",
        "key_ops": ["encrypt"],
        "n": util.int_to_base64(pub.n),
        "kid": "Paillier public key " + kid,
    }
    jwk_private = {
        "kty": "DAJ",
        "key_ops": ["decrypt"],
        "p": util.int_to_base64(priv.p),
        "q": util.int_to_base64(priv.q),
        "pub": jwk_public,
        "kid": "Paillier private key " + kid,
    }
    return jwk_public, jwk_private


def old_form(jwk_private, priv):
    """The same private key as pheutil wrote it before phe 1.4 (lambda, mu)."""
    n = priv.public_key.n
    lam = (priv.p - 1) * (priv.q - 1)
    old = {k: v for k, v in jwk_private.items() if k not in ("p", "q")}
    old["lambda"] = util.int_to_base64(lam)
    old["mu"] = util.int_to_base64(util.invert(lam, n))
    # keep pheutil's key order: kty, key_ops, lambda, mu, pub, kid
    return {k: old[k] for k in ("kty", "key_ops", "lambda", "mu", "pub", "kid")}


def serialise(enc):
    """As pheutil's serialise_encrypted."""
    if enc.exponent > -32:
        enc = enc.decrease_exponent_to(-32)
    return {"v": str(enc.ciphertext()), "e": enc.exponent}


def load_private(data):
    """Either form: "p" and "q" (phe >= 1.4), or "lambda" and "mu"."""
    n = util.base64_to_int(data["pub"]["n"])
    pub = phe.PaillierPublicKey(n)
    if "p" in data and "q" in data:
        p, q = util.base64_to_int(data["p"]), util.base64_to_int(data["q"])
    else:
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
    kid = "(Veil interop fixture, 2048 bits, phe {})".format(phe.__version__)
    jpub, jpriv = jwk_pair(pub, priv, kid)
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
        "priv_lambda_mu.json": old_form(jpriv, priv),
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
