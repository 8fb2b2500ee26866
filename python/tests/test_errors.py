"""Errors: compile errors carry their diagnostics; bad inputs are refused
before anything runs; a panic inside Veil is an exception, not a crash."""

import numpy as np
import pytest

import veil
from conftest import MODELS

BROKEN = """model broken {
    party client;
    party server;
    input x: fixed[batch, 4] private(client) in [-1, 1];
    input w: fixed[3] private(server) in [-1, 1];
    let y = x @ w + nope;
    output y to client;
}
"""


def test_compile_errors_carry_code_message_and_span():
    with pytest.raises(veil.VeilError) as caught:
        veil.compile(source=BROKEN, name="broken.veil")
    e = caught.value
    assert len(e.diagnostics) >= 2
    codes = [d.code for d in e.diagnostics]
    assert all(c.startswith("E") for c in codes), codes
    for d in e.diagnostics:
        assert d.severity == "error"
        start, end = d.span
        assert 0 <= start < end <= len(BROKEN)
        assert d.line == BROKEN[:start].count("\n") + 1
    unknown = [d for d in e.diagnostics if "nope" in d.message]
    assert unknown, [d.message for d in e.diagnostics]
    assert BROKEN[slice(*unknown[0].span)] == "nope"
    assert unknown[0].line == 6
    # The message is the rendered diagnostics, as `veil check` prints them.
    text = str(e)
    assert "broken.veil:6:" in text
    assert text.rstrip().endswith(f"could not compile `broken.veil` ({len(e.diagnostics)} errors)")


def test_a_missing_file_and_bad_options_are_python_errors():
    with pytest.raises(OSError):
        veil.compile("no/such/model.veil")
    with pytest.raises(TypeError):
        veil.compile()
    with pytest.raises(ValueError, match="network"):
        veil.compile(str(MODELS / "linreg.veil"), network="moon")


def test_inputs_are_checked_before_the_run():
    m = veil.compile(str(MODELS / "logreg_100.veil"))
    x = np.zeros((5, 100))
    w, b = np.zeros(100), np.zeros(())
    with pytest.raises(veil.InputError, match="no input `z`"):
        m.run({"x": x, "w": w, "b": b, "z": x})
    with pytest.raises(veil.InputError, match="`b`"):
        m.run({"x": x, "w": w})
    with pytest.raises(veil.InputError, match="outside"):
        m.run({"x": x + 100, "w": w, "b": b})
    with pytest.raises(veil.InputError):
        m.run({"x": np.zeros((5, 99)), "w": w, "b": b})
    assert issubclass(veil.InputError, veil.VeilError)


def test_a_panic_becomes_a_veil_error():
    with pytest.raises(veil.VeilError, match="bug in Veil"):
        veil._panic_for_tests()


def test_arrays_of_any_layout_and_type_are_read_in_row_major_order():
    m = veil.compile(str(MODELS / "linreg.veil"))
    rng = np.random.default_rng()
    x = rng.uniform(0, 10, size=(9, 8))
    coef, intercept = rng.uniform(-50, 50, size=8), 250.0
    bound = m.outputs["price"][2]
    ints = np.rint(x).astype(np.int64)
    cases = [
        (x, x),
        (np.asfortranarray(x), x),  # column-major memory
        (np.ascontiguousarray(x.T).T, x),  # a transposed view
        (x.tolist(), x),
        (ints, ints),
        (np.asfortranarray(ints), ints),
    ]
    for given, value in cases:
        want = (value @ coef + intercept) * 1000
        got = m.run({"features": given, "coef": coef, "intercept": intercept})["buyer"]["price"]
        assert np.all(np.abs(got - want) <= bound), (type(given), got - want)
