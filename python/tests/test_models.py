"""Every bundled model, run from Python, against the command line on the
same inputs: both within the compiler's bounds of the plaintext reference
(`check=True` and `--check`), hence within twice the bound of each other."""

import json
import subprocess

import numpy as np
import pytest

import veil
from conftest import MODELS

BATCH = 12


def inputs_for(m, rng):
    """Random inputs of the model's shapes, in the declared ranges (in
    [-1, 1] where the model declares none and the default is the wide
    encoding range), `batch`-like names at BATCH."""
    out = {}
    for name, (_, shape, (lo, hi)) in m.inputs.items():
        dims = [d if isinstance(d, int) else BATCH for d in shape]
        if hi - lo > 1e6:
            lo, hi = max(lo, -1.0), min(hi, 1.0)
        out[name] = rng.uniform(lo, hi, size=dims)
    return out


@pytest.mark.parametrize("path", sorted(MODELS.glob("*.veil")), ids=lambda p: p.stem)
def test_bundled_model_matches_the_command_line(path, tmp_path, veil_bin):
    m = veil.compile(str(path))
    rng = np.random.default_rng()
    given = inputs_for(m, rng)

    mine = m.run(given, check=True)
    assert isinstance(mine, veil.CheckedRun)
    assert mine.worst <= max(e["bound"] for e in mine.errors)

    args = [veil_bin, "run", str(path), "--check", "--quiet", "-o", "-"]
    for name, value in given.items():
        f = tmp_path / f"{name}.json"
        f.write_text(json.dumps(value.tolist()))
        args += ["-i", f"{name}={f}"]
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout)

    assert set(theirs) == set(mine), (theirs.keys(), mine.keys())
    for party, outputs in mine.items():
        assert set(outputs) == set(theirs[party])
        for name, value in outputs.items():
            (_, shape, bound) = m.outputs[name]
            other = np.asarray(theirs[party][name], dtype=np.float64)
            assert value.shape == other.shape, name
            near_tie = next(e["near_tie"] for e in mine.errors if e["output"] == name)
            if near_tie is None:
                assert np.max(np.abs(value - other), initial=0.0) <= 2 * bound + 1e-12, name
            else:
                # argmax: both are checked against the reference above, where
                # an index within its near-tie slack counts as exact; rows
                # that far from a tie agree.
                ref = mine.reference[name]
                exact = (value == ref) & (other == ref)
                assert exact.mean() > 0.5, name
