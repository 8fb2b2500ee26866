"""veil.import_onnx on the ONNX fixtures (tests/onnx/fixtures, exported
with skl2onnx and onnx.helper; onnxruntime's outputs beside them): the
private run matches onnxruntime, as `veil import` + `veil run` do in
tests/onnx.rs."""

import warnings

import numpy as np
import pytest

import veil

from conftest import ROOT

FIXTURES = ROOT / "tests" / "onnx" / "fixtures"


def load(name):
    d = FIXTURES / name
    return d, np.load(d / "calib.npy"), np.load(d / "x.npy")


@pytest.mark.parametrize("dealer", [True, False])
def test_a_scikit_learn_mlp_matches_onnxruntime(dealer):
    d, calib, x = load("sk_mlp_labels")
    m = veil.import_onnx(d / "model.onnx", calibrate={"X": calib}, dealer=dealer)
    assert set(m.inputs) - set(m.bound) == {"X"}
    out = m.run({"X": x})["client"]
    np.testing.assert_array_equal(out["label"], np.load(d / "expected_label.npy"))
    proba = np.load(d / "expected_probabilities.npy")
    assert np.abs(out["probabilities"] - proba).max() < 5e-3


def test_a_convolutional_network_matches_onnxruntime():
    d, calib, x = load("torch_resnet_tiny")
    m = veil.import_onnx(d / "model.onnx", calibrate={"input.1": calib})
    logits = m.run({"input_1": x})["client"]["logits"]
    want = np.load(d / "expected_logits.npy")
    assert np.abs(logits - want).max() < 1e-2
    np.testing.assert_array_equal(logits.argmax(1), want.argmax(1))


def test_a_deep_network_is_clamped_with_a_warning():
    d, calib, x = load("deep_mlp")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = veil.import_onnx(d / "model.onnx", calibrate={"input_1": calib})
    assert any("clamped" in str(w.message) for w in caught)
    logits = m.run({"input_1": x})["client"]["logits"]
    assert np.abs(logits - np.load(d / "expected_logits.npy")).max() < 1e-2


def test_an_unsupported_op_raises_veil_error(tmp_path):
    onnx_path = FIXTURES / "sk_logreg_binary" / "model.onnx"
    bad = tmp_path / "model.onnx"
    bad.write_bytes(onnx_path.read_bytes().replace(b"LinearClassifier", b"LinearClassifieX"))
    with pytest.raises(veil.VeilError, match="LinearClassifieX"):
        veil.import_onnx(bad)
