"""How `Model.run` reads its inputs: a C-contiguous float64 array in place
(no copy), any other layout or type converted once, in row-major order;
and a finished result, or a model's bound weights, do not change when the
arrays they came from do."""

import numpy as np

import veil
from conftest import MODELS


def address(a):
    return a.__array_interface__["data"][0]


def lr100_expected(x, w, b):
    return 1.0 / (1.0 + np.exp(-(x @ w + b)))


def test_a_c_contiguous_float64_array_is_read_in_place():
    rng = np.random.default_rng()
    x = rng.uniform(-4, 4, size=(2_000, 100))
    assert veil._input_address_for_tests(x) == address(x)
    # A block of whole rows is contiguous too: read in place as well.
    rows = x[100:300]
    assert veil._input_address_for_tests(rows) == address(rows)
    # A read-only array (such as one over a file or bytes) is borrowed too.
    frozen = x.copy()
    frozen.flags.writeable = False
    assert veil._input_address_for_tests(frozen) == address(frozen)
    # Every other layout or type is a converted copy, read elsewhere.
    for other in [
        np.asfortranarray(x),
        x[:, ::2],
        x[::2],
        x.T,
        x.astype(np.float32),
        x.astype(">f8"),  # float64 in the other byte order
    ]:
        assert veil._input_address_for_tests(other) != address(other)


def test_inputs_of_any_layout_give_the_reference_result():
    m = veil.compile(str(MODELS / "logreg_100.veil"))
    bound = m.outputs["p"][2]
    rng = np.random.default_rng()
    big = rng.uniform(-4, 4, size=(60, 200))
    w, b = rng.uniform(-0.1, 0.1, size=100), rng.uniform(-1, 1)
    cases = [
        big[:, :100],  # rows of a wider array: not contiguous
        big[::2, 100:],  # every other row
        np.asfortranarray(big[:30, :100]),  # column-major memory
        big[:30, :100].astype(">f8"),  # byte-swapped float64
        np.ascontiguousarray(big[:30, :100]),  # read in place
    ]
    for x in cases:
        want = lr100_expected(np.array(x, dtype=np.float64), w, b)
        got = m.run({"x": x, "w": w, "b": b})["client"]["p"]
        assert got.shape == want.shape
        assert np.max(np.abs(got - want)) <= bound, (x.flags, x.dtype)
    # A weight given as a strided view and the bias as a 0-d array.
    wide = np.repeat(w, 3)[::3]
    assert not wide.flags.c_contiguous
    x = cases[-1]
    got = m.run({"x": x, "w": wide, "b": np.array(b)})["client"]["p"]
    assert np.max(np.abs(got - lr100_expected(x, w, b))) <= bound


def test_a_finished_result_does_not_change_with_its_inputs():
    m = veil.compile(str(MODELS / "logreg_100.veil"))
    rng = np.random.default_rng()
    x = rng.uniform(-4, 4, size=(50, 100))
    w, b = rng.uniform(-0.1, 0.1, size=100), np.array(0.25)
    want = lr100_expected(x, w, b)
    out = m.run({"x": x, "w": w, "b": b}, check=True)
    p = out["client"]["p"]
    kept, ref = p.copy(), out.reference["p"].copy()
    # The outputs own their values: writing into the inputs (read in
    # place during the run) leaves them as they were.
    assert not np.shares_memory(p, x)
    x[:] = 0.0
    w[:] = 0.0
    b[...] = 0.0
    assert np.array_equal(p, kept)
    assert np.array_equal(out.reference["p"], ref)
    assert np.max(np.abs(p - want)) <= m.outputs["p"][2]
    # A run on the changed arrays reads their new values.
    again = m.run({"x": x, "w": w, "b": b})["client"]["p"]
    assert np.max(np.abs(again - 0.5)) <= m.outputs["p"][2]


def test_bound_inputs_are_copied_into_the_model():
    m = veil.compile(str(MODELS / "logreg_100.veil"))
    rng = np.random.default_rng()
    x = rng.uniform(-4, 4, size=(20, 100))
    w, b = rng.uniform(-0.1, 0.1, size=100), np.array(-0.5)
    want = lr100_expected(x, w, b)
    served = m.bind({"w": w, "b": b})
    w[:] = 0.0
    b[...] = 0.0
    got = served.run({"x": x})["client"]["p"]
    assert np.max(np.abs(got - want)) <= m.outputs["p"][2]
