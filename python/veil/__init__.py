"""Veil from Python: compile a model, run it privately, numpy in and out.

    import veil
    m = veil.compile("models/logreg_100.veil")      # or veil.compile(source=...)
    print(m.report())                               # the protocol report
    out = m.run({"x": X, "w": w, "b": b})           # {party: {output: ndarray}}
    m = veil.from_sklearn(estimator, X_sample)      # weights bound in the model
    m.run({"x": X})["client"]["proba"]              # what predict_proba(X) gives

The same compiler and runtime as the ``veil`` command line (a Rust
extension, ``veil._veil``); nothing is implemented twice.
"""

from ._veil import (  # noqa: F401
    Diagnostic,
    InputError,
    Model,
    VeilError,
    _input_address_for_tests,
    _panic_for_tests,
    compile,
)
from ._veil import _import_onnx
from ._veil import party as _party

__all__ = [
    "CheckedRun",
    "Diagnostic",
    "InputError",
    "Model",
    "VeilError",
    "VeilWarning",
    "compile",
    "from_sklearn",
    "import_onnx",
    "party",
]


class VeilWarning(UserWarning):
    """A model's warning (such as W0102, an error bound large against an
    output's range), or an option that has no effect."""


class CheckedRun(dict):
    """What ``Model.run(..., check=True)`` returns: the outputs,
    ``{party: {output: ndarray}}``, as ``run`` returns them, and

    - ``reference``: ``{output: ndarray}``, the plaintext reference
      interpreter's exact values on the same inputs;
    - ``errors``: per output and party, ``{"output", "party", "error",
      "bound", "near_tie"}``: the largest ``|private - reference|`` and the
      compiler's bound on it (an argmax index within ``near_tie`` of its
      row's maximum counts as exact);
    - ``worst``: the largest error over all outputs;
    - ``text``: the comparison as ``veil run --check`` prints it.

    A result beyond its bound is never returned: ``run`` raises instead.
    """

    def __init__(self, outputs, reference, errors, worst, text):
        super().__init__(outputs)
        self.reference = reference
        self.errors = errors
        self.worst = worst
        self.text = text

    def __repr__(self):
        return f"CheckedRun({dict.__repr__(self)}, worst={self.worst:.3e})"


def party(model, *, as_, config, inputs=None, **options):
    """Run one party of ``model`` over the network, as ``veil party`` does:
    ``as_`` names the party, ``config`` the deployment file (``parties.toml``,
    as ``veil certs`` writes it), ``inputs`` this party's own inputs (the
    model's bound inputs of this party are used too). Every party compiles
    the same model with the same options. Returns this party's outputs,
    ``{output: ndarray}``. ``options``: ``session=``, ``timeout=``,
    ``connect_timeout=`` (seconds), ``max_frame_mib=``, ``chunk_rows=``.

    A model whose rows are independent runs in chunks of rows as ``veil
    party`` runs it (the parties agree on the chunks at setup: this party's
    rows in one chunk, or ``chunk_rows``), so Python and command-line
    parties can run one session together."""
    from .sklearn import SklearnModel

    if isinstance(model, SklearnModel):
        out = _party(model.model, as_=as_, config=config, inputs=inputs, **options)
        return model._labels({as_: out})[as_]
    return _party(model, as_=as_, config=config, inputs=inputs, **options)


def from_sklearn(estimator, X_sample, *, margin=0.1, per_feature=False, **options):
    """A Veil model computing a fitted scikit-learn estimator's predictions,
    with its weights bound in: ``run({"x": X})`` then needs only the data.
    See ``veil.sklearn.from_sklearn``."""
    from .sklearn import from_sklearn as convert

    return convert(estimator, X_sample, margin=margin, per_feature=per_feature, **options)


def import_onnx(
    path,
    *,
    calibrate=None,
    ranges=None,
    dealer=True,
    data_owner="client",
    model_owner="server",
    precision=None,
    **options,
):
    """A Veil model translated from an ONNX model (PyTorch, scikit-learn
    through skl2onnx, Keras), as ``veil import`` translates it, with its
    weights bound: ``run({input: X})`` then needs only the data.

    - ``calibrate``: ``{input: sample}``, data like the data to come; each
      data input's range is the sample's widened by 10% of its span (and a
      deep network's relu activations are clamped at their calibrated
      maxima when the proven ranges would overflow: a ``VeilWarning`` says
      so). ``ranges``: ``{input: (lo, hi)}`` by hand. Without either, the
      range is [-8, 8], with a warning.
    - ``dealer=False``: no dealer; ``data_owner``, ``model_owner``: the
      parties' names (``client``, ``server``); ``precision``: fractional
      bits (default: the highest of 20, 18, 16, 14, 12 that compiles).
    - ``options``: ``compile``'s keywords (``network=``, ...).

    Input and output names are the ONNX names made identifiers
    (``input.1`` becomes ``input_1``). See docs/import.md for the ops.
    """
    import os
    import warnings

    source, weights, notes = _import_onnx(
        os.fspath(path),
        calibrate=calibrate,
        ranges=ranges,
        dealer=dealer,
        data_owner=data_owner,
        model_owner=model_owner,
        precision=precision,
    )
    for note in notes:
        warnings.warn(note, VeilWarning, stacklevel=2)
    model = compile(source=source, name=os.fspath(path), dealer=dealer, **options)
    return model.bind(weights)
