"""scikit-learn estimators as Veil models, read from their fitted attributes.

``from_sklearn(estimator, X_sample)`` writes the model's source text (a
dense layer per linear layer, the estimator's activations, softmax for
probabilities), compiles it with ``veil.compile`` and binds the weights as
the inputs of party ``server``. The data is input ``x`` of party
``client``, who learns ``label`` and ``proba`` (a classifier) or ``y`` (a
regressor). No skl2onnx or other converter is involved.

Supported: LogisticRegression (binary and multinomial), LinearRegression,
Ridge, MLPClassifier and MLPRegressor (relu, tanh, logistic, identity
hidden layers), each alone or after a StandardScaler or MinMaxScaler in a
Pipeline. Anything else is refused, naming the estimator.
"""

import numpy as np

from . import _veil

#: Hidden activations of scikit-learn's MLPs, as Veil writes them (`{}` is
#: the pre-activation). sigmoid and tanh are degree-19 polynomials on their
#: default domains (off by 2.7e-4 and 5.5e-4): the lowest degree the
#: compiler picks for a tolerance stops at 15 (off by 0.0013 and 0.0025),
#: which left the digits tanh MLP's probabilities within 4.7e-3 of
#: predict_proba; at 19 it is 2.8e-3.
_ACTIVATIONS = {
    "relu": "relu({})",
    "tanh": "tanh({}, degree: 19)",
    "logistic": "sigmoid({}, degree: 19)",
    "identity": "{}",
}

#: Fixed-point fractional bits tried for the generated models, most precise
#: first: the first at which no product can overflow (E0301; the ranges of
#: raw features in the thousands times weights folded with a scaler need
#: fewer bits) is kept.
PRECISIONS = (24, 22, 20, 18, 17, 16, 15, 14, 13, 12)


class Refused(_veil.VeilError):
    """An estimator ``from_sklearn`` cannot convert (named in the message)."""


def _name(obj):
    return type(obj).__name__


def _refuse(obj, why):
    supported = (
        "LogisticRegression, LinearRegression, Ridge, MLPClassifier, MLPRegressor, "
        "optionally after a StandardScaler or MinMaxScaler in a Pipeline"
    )
    err = Refused(f"from_sklearn: {_name(obj)} {why} (supported: {supported})")
    err.diagnostics = []
    return err


def _fmt(v):
    return repr(float(v))


def _interval(values, margin):
    """[lo, hi] around ``values`` widened by ``margin`` of its width on each
    side (at least ``margin`` itself, for constant data)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = margin * max(hi - lo, 1.0)
    return lo - pad, hi + pad


def _bound(w):
    """A symmetric range that holds every weight of ``w``."""
    a = float(np.max(np.abs(w))) if np.size(w) else 0.0
    return max(a * (1 + 1e-6), 1e-6)


class SklearnModel:
    """A Veil model made from a scikit-learn estimator: a ``veil.Model``
    (``.model``) with the weights bound, whose ``run`` maps ``label``
    through the estimator's ``classes_``. Every other attribute is the
    Model's (``report()``, ``inputs``, ``plan_json()``, ...)."""

    def __init__(self, model, estimator, classes, margin):
        self.model = model
        self.estimator = estimator
        self.classes_ = classes
        self.margin = margin

    def run(self, inputs=None, **options):
        """As ``Model.run``; ``label`` holds the estimator's class labels
        (``classes_``), as ``predict`` gives them."""
        return self._labels(self.model.run(inputs, **options))

    def _labels(self, out):
        if self.classes_ is None:
            return out
        for outputs in out.values():
            if "label" in outputs:
                idx = np.rint(outputs["label"]).astype(np.int64)
                outputs["label"] = self.classes_[idx]
        return out

    def __getattr__(self, name):
        return getattr(self.model, name)

    def _repr_html_(self):
        return self.model._repr_html_()

    def __repr__(self):
        return f"<veil.SklearnModel of {_name(self.estimator)}: {self.model!r}>"


def _layers(est):
    """The estimator's dense layers [(W, b)] (W: [in, out]), hidden
    activation, and kind: 'binary', 'multiclass' or 'regressor'."""
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    if not hasattr(est, "coef_") and not hasattr(est, "coefs_"):
        raise _refuse(est, "is not fitted (call fit first), or is not supported")
    if isinstance(est, LogisticRegression):
        coef = np.asarray(est.coef_, dtype=np.float64)
        intercept = np.broadcast_to(np.asarray(est.intercept_, dtype=np.float64), (coef.shape[0],))
        if len(est.classes_) == 2:
            return [(coef.T, intercept)], None, "binary"
        multi = getattr(est, "multi_class", "auto")
        if multi == "ovr" or (multi == "auto" and getattr(est, "solver", "") == "liblinear"):
            raise _refuse(est, "with one-vs-rest classes is not supported (use the multinomial default)")
        return [(coef.T, intercept)], None, "multiclass"
    if isinstance(est, (LinearRegression, Ridge)):
        coef = np.asarray(est.coef_, dtype=np.float64)
        intercept = np.asarray(est.intercept_, dtype=np.float64)
        if coef.ndim == 1:
            return [(coef[:, None], np.reshape(intercept, (1,)))], None, "regressor1"
        return [(coef.T, np.broadcast_to(intercept, (coef.shape[0],)))], None, "regressor"
    if isinstance(est, (MLPClassifier, MLPRegressor)):
        if est.activation not in _ACTIVATIONS:
            raise _refuse(est, f"with activation={est.activation!r} is not supported")
        layers = [
            (np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64))
            for w, b in zip(est.coefs_, est.intercepts_)
        ]
        if isinstance(est, MLPRegressor):
            kind = "regressor1" if layers[-1][0].shape[1] == 1 else "regressor"
            return layers, est.activation, kind
        if est.out_activation_ == "logistic" and len(est.classes_) == 2:
            return layers, est.activation, "binary"
        if est.out_activation_ == "softmax":
            return layers, est.activation, "multiclass"
        raise _refuse(est, "with multilabel outputs is not supported")
    raise _refuse(est, "is not supported")


def _unpipe(estimator):
    """(scaler or None, final estimator) from an estimator or a Pipeline."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    if not isinstance(estimator, Pipeline):
        return None, estimator
    steps = [s for _, s in estimator.steps if s is not None and s != "passthrough"]
    if len(steps) == 1:
        return None, steps[0]
    if len(steps) == 2 and isinstance(steps[0], (StandardScaler, MinMaxScaler)):
        return steps[0], steps[1]
    names = ", ".join(_name(s) for s in steps)
    raise _refuse(
        estimator, f"of {names} is not supported: one StandardScaler or MinMaxScaler, then the model"
    )


def _fold(scaler, W, b):
    """The first layer with the scaler folded in, computed in the clear:
    ``scale(x) @ W + b == x @ W' + b'``."""
    from sklearn.preprocessing import StandardScaler

    if scaler is None:
        return W, b
    if isinstance(scaler, StandardScaler):
        mean = scaler.mean_ if scaler.with_mean else np.zeros(W.shape[0])
        scale = scaler.scale_ if scaler.with_std else np.ones(W.shape[0])
        Wf = W / np.asarray(scale, dtype=np.float64)[:, None]
        return Wf, b - np.asarray(mean, dtype=np.float64) @ Wf
    # MinMaxScaler: x * scale_ + min_ (clip=True would clamp: refused).
    if getattr(scaler, "clip", False):
        raise _refuse(scaler, "with clip=True is not supported")
    Wf = np.asarray(scaler.scale_, dtype=np.float64)[:, None] * W
    return Wf, b + np.asarray(scaler.min_, dtype=np.float64) @ W


def from_sklearn(estimator, X_sample, *, margin=0.1, per_feature=False, **options):
    """A Veil model computing a fitted scikit-learn estimator privately.

    ``X_sample``: data like the data to come (such as the training set):
    input ``x``'s declared range is its smallest and largest value widened
    by ``margin`` (10%) of that width on each side; data outside it is
    refused at run time. With ``per_feature=True``, each feature (column)
    gets its own range so, widened the same way: tighter error bounds when
    the features' scales differ, but a row whose feature leaves that
    feature's range is refused. The probabilities' logits are clamped to the
    largest logit the sample reaches, widened the same way.

    The model: input ``x`` of party ``client``; the weights, inputs of
    party ``server``, are bound in (``m.bound``); a dealer ``helper``.
    A classifier reveals ``label`` (mapped through ``classes_``) and
    ``proba`` (``predict_proba``'s columns) to ``client``; a regressor
    reveals ``y``. ``options`` are ``veil.compile``'s (``dealer=False``,
    ``network="wan"``, ...).

    Raises ``VeilError`` naming the estimator if it is not supported.
    """
    scaler, est = _unpipe(estimator)
    layers, activation, kind = _layers(est)
    X = np.asarray(X_sample, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"X_sample: a 2-d array of rows, not shape {X.shape}")
    if X.shape[1] != layers[0][0].shape[0]:
        raise ValueError(
            f"X_sample has {X.shape[1]} features, but {_name(est)} was fitted on {layers[0][0].shape[0]}"
        )
    if not margin >= 0:
        raise ValueError(f"margin={margin}: a fraction, 0 or more")
    W0, b0 = _fold(scaler, *layers[0])
    layers = [(W0, b0)] + layers[1:]
    if kind == "binary":
        # Two logits [-z/2, z/2]: softmax gives [1 - sigmoid(z), sigmoid(z)],
        # predict_proba's columns, and argmax is predict's z > 0.
        W, b = layers[-1]
        layers[-1] = (np.hstack([-W / 2, W / 2]), np.concatenate([-b / 2, b / 2]))

    # The logits on the sample, in the clear, for the clamp before softmax.
    h = X
    for i, (W, b) in enumerate(layers):
        h = h @ W + b
        if i < len(layers) - 1:
            h = _apply(activation, h)
    logit_bound = float(np.max(np.abs(h))) * (1 + margin) + margin

    n_features = X.shape[1]
    if per_feature:
        # One range per feature (column), so a narrow one keeps its own.
        cols = (_interval(X[:, j], margin) for j in range(n_features))
        ranges = ", ".join(f"[{_fmt(lo)}, {_fmt(hi)}]" for lo, hi in cols)
    else:
        lo, hi = _interval(X, margin)
        ranges = f"{_fmt(lo)}, {_fmt(hi)}"
    lines = [
        f"// {_name(estimator)} from scikit-learn (veil.from_sklearn)",
        f"model {_model_name(est)} {{",
        "    precision {precision};",
        "    party client;",
        "    party server;",
        "    dealer helper;",
        "",
        f"    input x: fixed[batch, {n_features}] private(client) in [{ranges}];",
    ]
    weights = {}
    for i, (W, b) in enumerate(layers, start=1):
        a, c = _bound(W), _bound(b)
        lines.append(
            f"    input w{i}: fixed[{W.shape[0]}, {W.shape[1]}] private(server) in [{_fmt(-a)}, {_fmt(a)}];"
        )
        lines.append(f"    input b{i}: fixed[{W.shape[1]}] private(server) in [{_fmt(-c)}, {_fmt(c)}];")
        weights[f"w{i}"] = np.ascontiguousarray(W)
        weights[f"b{i}"] = np.ascontiguousarray(b)
    lines.append("")
    prev = "x"
    for i in range(1, len(layers) + 1):
        z = f"{prev} @ w{i} + b{i}"
        if i < len(layers):
            lines.append(f"    let h{i} = {_ACTIVATIONS[activation].format(z)};")
            prev = f"h{i}"
        else:
            lines.append(f"    let z = {z};")
    if kind in ("binary", "multiclass"):
        lines += [
            "    let label = argmax(z);",
            f"    let proba = softmax(clamp(z, {_fmt(-logit_bound)}, {_fmt(logit_bound)}));",
            "    output label to client;",
            "    output proba to client;",
        ]
        classes = np.asarray(est.classes_)
    elif kind == "regressor1":
        lines += ["    let y = sum(z);", "    output y to client;"]
        classes = None
    else:
        lines += ["    let y = z;", "    output y to client;"]
        classes = None
    lines.append("}")
    template = "\n".join(lines) + "\n"
    name = f"<from_sklearn {_name(estimator)}>"
    for precision in PRECISIONS:
        source = template.replace("{precision}", str(precision))
        try:
            model = _veil.compile(source=source, name=name, **options)
            break
        except _veil.VeilError as e:
            # Overflow errors only (warnings, such as a loose error bound
            # that the overflow itself causes, do not count): a lower
            # precision may fit.
            errors = [d for d in e.diagnostics if d.severity == "error"]
            overflow = errors and all(d.code in ("E0301", "E0304") for d in errors)
            if not overflow or precision == PRECISIONS[-1]:
                raise
    return SklearnModel(model.bind(weights), estimator, classes, margin)


def _apply(activation, h):
    if activation == "relu":
        return np.maximum(h, 0)
    if activation == "tanh":
        return np.tanh(h)
    if activation == "logistic":
        return 1 / (1 + np.exp(-h))
    return h


def _model_name(est):
    out = []
    for ch in _name(est):
        if ch.isupper() and out:
            out.append("_")
        out.append(ch.lower())
    return "".join(out).replace("m_l_p", "mlp")
