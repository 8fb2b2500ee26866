"""from_sklearn on scikit-learn's bundled data sets: the private run gives
`predict` on every test row and `predict_proba` within 5e-3."""

import re
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler, StandardScaler  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402

import veil  # noqa: E402


def split(loader):
    X, y = loader(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, random_state=0)


def private(est, X_train, X_test):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", veil.VeilWarning)
        m = veil.from_sklearn(est, X_train)
    assert set(m.inputs) - set(m.bound) == {"x"}
    assert m.inputs["x"][0] == "client"
    return m, m.run({"x": X_test})["client"]


def fitted(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings
        return est.fit(X, y)


CLASSIFIERS = [
    ("breast_cancer", lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))),
    ("breast_cancer", lambda: make_pipeline(MinMaxScaler(), LogisticRegression(max_iter=5000))),
    ("digits", lambda: LogisticRegression(max_iter=5000)),
    ("digits", lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))),
    (
        "breast_cancer",
        lambda: make_pipeline(
            StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), activation="relu", max_iter=500, random_state=0)
        ),
    ),
    (
        "digits",
        lambda: make_pipeline(
            MinMaxScaler(), MLPClassifier(hidden_layer_sizes=(24,), activation="tanh", max_iter=500, random_state=0)
        ),
    ),
    (
        "digits",
        lambda: make_pipeline(
            StandardScaler(),
            MLPClassifier(hidden_layer_sizes=(16,), activation="logistic", max_iter=500, random_state=0),
        ),
    ),
]
LOADERS = {"breast_cancer": load_breast_cancer, "digits": load_digits}


@pytest.mark.parametrize("data,make", CLASSIFIERS)
def test_classifier_matches_predict_and_predict_proba(data, make):
    X_train, X_test, y_train, _ = split(LOADERS[data])
    est = fitted(make(), X_train, y_train)
    m, out = private(est, X_train, X_test)
    np.testing.assert_array_equal(out["label"], est.predict(X_test))
    assert out["label"].dtype == est.predict(X_test).dtype
    proba = est.predict_proba(X_test)
    assert out["proba"].shape == proba.shape
    assert np.max(np.abs(out["proba"] - proba)) < 5e-3


def test_labels_map_through_classes():
    X_train, X_test, y_train, _ = split(load_breast_cancer)
    names = np.array(["benign", "malignant"])
    est = fitted(make_pipeline(StandardScaler(), LogisticRegression()), X_train, names[y_train])
    _, out = private(est, X_train, X_test)
    np.testing.assert_array_equal(out["label"], est.predict(X_test))


@pytest.mark.parametrize(
    "make",
    [
        LinearRegression,
        lambda: Ridge(alpha=1.0),
        lambda: make_pipeline(StandardScaler(), Ridge(alpha=0.5)),
        lambda: make_pipeline(
            StandardScaler(), MLPRegressor(hidden_layer_sizes=(8,), activation="tanh", max_iter=2000, random_state=0)
        ),
    ],
)
def test_regressor_matches_predict(make):
    X_train, X_test, y_train, _ = split(load_diabetes)
    est = fitted(make(), X_train, y_train)
    m, out = private(est, X_train, X_test)
    want = est.predict(X_test)
    assert out["y"].shape == want.shape
    # The compiler's bound on y's error, against exact arithmetic.
    bound = m.outputs["y"][2]
    assert np.max(np.abs(out["y"] - want)) <= bound + 1e-9
    assert np.max(np.abs(out["y"] - want)) < 1e-2 * np.max(np.abs(want))


def test_data_outside_the_sample_range_is_refused():
    X_train, X_test, y_train, _ = split(load_breast_cancer)
    est = fitted(make_pipeline(StandardScaler(), LogisticRegression()), X_train, y_train)
    m, _ = private(est, X_train, X_test[:2])
    lo, hi = m.inputs["x"][2]
    assert lo < X_train.min() and hi > X_train.max()
    with pytest.raises(veil.InputError, match="outside"):
        m.run({"x": X_test[:2] + 10 * hi})


def test_anything_else_is_refused_naming_the_estimator():
    X, y = load_breast_cancer(return_X_y=True)
    tree = DecisionTreeClassifier().fit(X, y)
    with pytest.raises(veil.VeilError, match="DecisionTreeClassifier"):
        veil.from_sklearn(tree, X)
    with pytest.raises(veil.VeilError, match="not fitted"):
        veil.from_sklearn(LogisticRegression(), X)


def test_per_feature_ranges_tighten_the_bound():
    # Breast cancer's features range from about 0.05 to 4000: with one range
    # for all, every feature takes the widest, and the bound with it.
    X_train, _, y_train, _ = split(load_breast_cancer)
    est = fitted(make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)), X_train, y_train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", veil.VeilWarning)
        m = veil.from_sklearn(est, X_train, per_feature=True)
    # Rows of the sample lie in their features' ranges, and run.
    got = m.run({"x": X_train[:4]})["client"]
    assert np.array_equal(got["label"], est.predict(X_train[:4]))
    assert np.max(np.abs(got["proba"] - est.predict_proba(X_train[:4]))) <= m.outputs["proba"][2]
    first = float(X_train[:, 0].min() - 0.1 * np.ptp(X_train[:, 0]))
    assert f"in [[{first!r}, " in m.source
    # With one range for every feature: a looser bound.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", veil.VeilWarning)
        one = veil.from_sklearn(est, X_train)
    assert "in [[" not in one.source
    assert m.outputs["proba"][2] < one.outputs["proba"][2] / 4, (m.outputs, one.outputs)
