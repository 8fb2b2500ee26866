#!/usr/bin/env python3
"""Regenerates the ONNX fixtures of tests/onnx/fixtures (not run in CI).

Each fixture is a folder with `model.onnx`, `calib.npy` (a calibration sample
of the data input), `x.npy` (test rows) and `expected_<output>.npy` (what
onnxruntime computes on x.npy). The Rust test tests/onnx.rs imports each with
`veil import`, runs it with `veil run`, with and without a dealer, and compares.

scikit-learn models are exported with skl2onnx. PyTorch could not be installed
on the machine that made these (PyPI's Linux torch wheel needs the CUDA
packages), so the "torch-style" networks are built node by node with
onnx.helper in the form torch.onnx.export writes them (Gemm with transB = 1,
Conv with pads, BatchNormalization, Flatten, GlobalAveragePool, a residual
Add), with random weights.

    python3 -m venv venv && venv/bin/pip install onnx onnxruntime skl2onnx scikit-learn numpy
    venv/bin/python tests/onnx/make_fixtures.py
"""
import os
import shutil

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import to_onnx
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris, make_classification
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
rng = np.random.default_rng(20261206)


def save(name, model, calib, x, external=False, expected=None):
    d = os.path.join(HERE, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    path = os.path.join(d, "model.onnx")
    if external:
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location="model.onnx.data", size_threshold=0)
    else:
        onnx.save_model(model, path)
    np.save(os.path.join(d, "calib.npy"), calib.astype(np.float64))
    np.save(os.path.join(d, "x.npy"), x.astype(np.float64))
    if expected is not None:
        # onnxruntime does not run opsets this old: numpy computes the model.
        for o, v in expected(x).items():
            np.save(os.path.join(d, f"expected_{o}.npy"), v.astype(np.float64))
        print(name, "expected from numpy")
        return
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0].name
    outs = sess.run(None, {inp: x.astype(np.float32)})
    for o, v in zip(sess.get_outputs(), outs):
        np.save(os.path.join(d, f"expected_{o.name}.npy"), np.asarray(v).astype(np.float64))
    print(name, [o.name for o in sess.get_outputs()], [np.asarray(v).shape for v in outs])


def split(X, n_test=16):
    idx = rng.permutation(len(X))
    return X[idx[n_test:]], X[idx[:n_test]]


def sk(name, est, X, y, **opts):
    train, test = split(X)
    est.fit(X, y)
    last = est.steps[-1][1] if hasattr(est, "steps") else est
    options = {id(last): {"zipmap": False}} if hasattr(est, "predict_proba") else None
    m = to_onnx(est, X[:1].astype(np.float32), options=options, **opts)
    save(name, m, train, test)
    if hasattr(est, "classes_"):
        np.save(os.path.join(HERE, name, "classes.npy"), est.classes_.astype(np.float64))


def linear_fixtures():
    X, y = make_classification(n_samples=400, n_features=8, n_informative=5, random_state=1)
    sk("sk_logreg_binary", LogisticRegression(), X, y)
    X, y = load_iris(return_X_y=True)
    sk("sk_logreg_multiclass", LogisticRegression(max_iter=1000), X, y)
    X, y = load_diabetes(return_X_y=True)
    sk("sk_linear_regression", LinearRegression(), X, y)
    X, y = load_breast_cancer(return_X_y=True)
    sk("sk_scaler_logreg", make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), X, y)
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    sk("sk_mlp_classifier", MLPClassifier((16,), max_iter=300, random_state=0), X, y)
    # Class labels other than 0..k-1: a public label table after the reveal.
    sk("sk_mlp_labels", MLPClassifier((16,), max_iter=300, random_state=0), X, y * 10 + 3)
    X, y = load_iris(return_X_y=True)
    sk("sk_logreg_labels", LogisticRegression(max_iter=1000), X, np.array([3, 5, 9])[y])


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def graph_model(nodes, inits, in_shape, out_name, out_shape, opset, name):
    inputs = [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["batch"] + in_shape)]
    if opset < 9:
        # Old IR versions list every initializer among the graph's inputs too.
        inputs += [helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in inits]
    g = helper.make_graph(
        nodes, name,
        inputs,
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["batch"] + out_shape)],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="veil-fixtures")
    m.ir_version = 8 if opset >= 13 else 3
    onnx.checker.check_model(m)
    return m


def gemm(name, inp, out, k, n, inits, scale=None):
    scale = scale or 1.0 / np.sqrt(k)
    inits += [init(f"{name}.weight", rng.normal(0, scale, (n, k))), init(f"{name}.bias", rng.normal(0, 0.1, n))]
    return helper.make_node("Gemm", [inp, f"{name}.weight", f"{name}.bias"], [out], name=f"/{name}/Gemm",
                            alpha=1.0, beta=1.0, transB=1)


def mlp(opset=17, external=False, name="torch_mlp"):
    inits = []
    nodes = [
        gemm("fc1", "input.1", "/fc1/Gemm_output_0", 20, 32, inits),
        helper.make_node("Relu", ["/fc1/Gemm_output_0"], ["/relu/Relu_output_0"], name="/relu/Relu"),
        gemm("fc2", "/relu/Relu_output_0", "/fc2/Gemm_output_0", 32, 5, inits),
        helper.make_node("Softmax", ["/fc2/Gemm_output_0"], ["probs"], name="/Softmax", axis=1),
    ]
    m = graph_model(nodes, inits, [20], "probs", [5], opset, name)
    x = rng.uniform(-2, 2, (216, 20))
    save(name, m, x[16:], x[:16], external=external)


def conv(name, inp, out, cin, cout, k, inits, pad=0, stride=1, bias=True):
    inits.append(init(f"{name}.weight", rng.normal(0, 1.0 / np.sqrt(cin * k * k), (cout, cin, k, k))))
    ins = [inp, f"{name}.weight"]
    if bias:
        inits.append(init(f"{name}.bias", rng.normal(0, 0.1, cout)))
        ins.append(f"{name}.bias")
    return helper.make_node("Conv", ins, [out], name=f"/{name}/Conv", kernel_shape=[k, k],
                            pads=[pad] * 4, strides=[stride, stride], dilations=[1, 1], group=1)


def lenet5():
    inits = []
    n = [
        conv("conv1", "input.1", "c1", 1, 6, 5, inits, pad=2),
        helper.make_node("Relu", ["c1"], ["r1"], name="/relu1/Relu"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="/pool1/MaxPool", kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0]),
        conv("conv2", "p1", "c2", 6, 16, 5, inits),
        helper.make_node("Relu", ["c2"], ["r2"], name="/relu2/Relu"),
        helper.make_node("AveragePool", ["r2"], ["p2"], name="/pool2/AveragePool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["f"], name="/Flatten", axis=1),
        gemm("fc1", "f", "g1", 400, 120, inits),
        helper.make_node("Relu", ["g1"], ["h1"], name="/relu3/Relu"),
        gemm("fc2", "h1", "g2", 120, 84, inits),
        helper.make_node("Relu", ["g2"], ["h2"], name="/relu4/Relu"),
        gemm("fc3", "h2", "logits", 84, 10, inits),
    ]
    m = graph_model(n, inits, [1, 28, 28], "logits", [10], 17, "lenet5")
    x = rng.uniform(0, 1, (48, 1, 28, 28))
    save("torch_lenet5", m, x[8:], x[:8])


def bn(name, inp, out, c, inits):
    inits += [init(f"{name}.weight", rng.uniform(0.5, 1.5, c)), init(f"{name}.bias", rng.normal(0, 0.1, c)),
              init(f"{name}.running_mean", rng.normal(0, 0.1, c)), init(f"{name}.running_var", rng.uniform(0.5, 1.5, c))]
    return helper.make_node("BatchNormalization", [inp, f"{name}.weight", f"{name}.bias", f"{name}.running_mean",
                            f"{name}.running_var"], [out], name=f"/{name}/BatchNormalization", epsilon=1e-5, momentum=0.9)


def resnet():
    inits = []
    n = [
        conv("conv1", "input.1", "c1", 3, 8, 3, inits, pad=1, bias=False),
        bn("bn1", "c1", "b1", 8, inits),
        helper.make_node("Relu", ["b1"], ["r1"], name="/relu1/Relu"),
        conv("block.conv1", "r1", "c2", 8, 8, 3, inits, pad=1, bias=False),
        bn("block.bn1", "c2", "b2", 8, inits),
        helper.make_node("Relu", ["b2"], ["r2"], name="/block/relu/Relu"),
        conv("block.conv2", "r2", "c3", 8, 8, 3, inits, pad=1, bias=False),
        bn("block.bn2", "c3", "b3", 8, inits),
        helper.make_node("Add", ["b3", "r1"], ["s"], name="/block/Add"),
        helper.make_node("Relu", ["s"], ["r3"], name="/block/relu_1/Relu"),
        helper.make_node("GlobalAveragePool", ["r3"], ["gap"], name="/avgpool/GlobalAveragePool"),
        helper.make_node("Flatten", ["gap"], ["f"], name="/Flatten", axis=1),
        gemm("fc", "f", "logits", 8, 4, inits),
    ]
    m = graph_model(n, inits, [3, 8, 8], "logits", [4], 17, "resnet_tiny")
    x = rng.uniform(-1, 1, (48, 3, 8, 8))
    save("torch_resnet_tiny", m, x[8:], x[:8])


def opset6():
    # An old export: opset 6 BatchNormalization with is_test, Add with legacy
    # broadcast and axis, Reshape with a shape input.
    inits = [init("W", rng.normal(0, 0.3, (12, 6))), init("b", rng.normal(0, 0.1, 6)),
             init("scale", rng.uniform(0.5, 1.5, 6)), init("B", rng.normal(0, 0.1, 6)),
             init("mean", rng.normal(0, 0.1, 6)), init("var", rng.uniform(0.5, 1.5, 6)),
             init("W2", rng.normal(0, 0.3, (6, 3))), numpy_helper.from_array(np.array([-1, 6], dtype=np.int64), "shape")]
    n = [
        helper.make_node("MatMul", ["input.1", "W"], ["m"], name="matmul"),
        helper.make_node("Add", ["m", "b"], ["a"], name="add", broadcast=1, axis=1),
        helper.make_node("BatchNormalization", ["a", "scale", "B", "mean", "var"], ["bn"], name="bn", is_test=1, epsilon=1e-5),
        helper.make_node("Reshape", ["bn", "shape"], ["rs"], name="reshape"),
        helper.make_node("Tanh", ["rs"], ["t"], name="tanh"),
        helper.make_node("MatMul", ["t", "W2"], ["y"], name="matmul2"),
    ]
    m = graph_model(n, inits, [12], "y", [3], 6, "old_export")
    x = rng.uniform(-1, 1, (116, 12))
    v = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in inits}

    def expected(x):
        a = x @ v["W"] + v["b"]
        bn = (a - v["mean"]) / np.sqrt(v["var"] + 1e-5) * v["scale"] + v["B"]
        return {"y": np.tanh(bn) @ v["W2"]}

    save("opset6", m, x[16:], x[:16], expected=expected)


def deep_mlp():
    # 16 relu layers: the ranges proven from the input's alone overflow at
    # every precision, so veil import clamps each activation at its
    # calibrated maximum.
    inits, nodes, x = [], [], "input.1"
    for i in range(16):
        nodes.append(gemm(f"fc{i}", x, f"h{i}", 32, 32, inits, scale=np.sqrt(2.0 / 32)))
        nodes.append(helper.make_node("Relu", [f"h{i}"], [f"r{i}"], name=f"/relu{i}/Relu"))
        x = f"r{i}"
    nodes.append(gemm("out", x, "logits", 32, 4, inits))
    m = graph_model(nodes, inits, [32], "logits", [4], 17, "deep_mlp")
    x = rng.uniform(-1, 1, (416, 32))
    save("deep_mlp", m, x[16:], x[:16])


def log_softmax_mlp():
    """An MLP whose head is LogSoftmax (as torch's F.log_softmax exports),
    with its own random stream so that adding it changed no other fixture."""
    global rng
    saved, rng = rng, np.random.default_rng(20261218)
    inits = []
    nodes = [
        gemm("fc1", "input.1", "/fc1/Gemm_output_0", 12, 16, inits),
        helper.make_node("Relu", ["/fc1/Gemm_output_0"], ["/relu/Relu_output_0"], name="/relu/Relu"),
        gemm("fc2", "/relu/Relu_output_0", "/fc2/Gemm_output_0", 16, 4, inits),
        helper.make_node("LogSoftmax", ["/fc2/Gemm_output_0"], ["log_probs"], name="/LogSoftmax", axis=1),
    ]
    m = graph_model(nodes, inits, [12], "log_probs", [4], 17, "torch_log_softmax")
    x = rng.uniform(-2, 2, (116, 12))
    save("torch_log_softmax", m, x[16:], x[:16])
    rng = saved


def dilated_pool():
    """A convolution, a MaxPool with dilations 2 (no padding) and a dense
    layer; its own random stream, like log_softmax_mlp."""
    global rng
    saved, rng = rng, np.random.default_rng(20261219)
    inits = []
    n = [
        conv("conv1", "input.1", "c1", 1, 3, 3, inits, pad=1),
        helper.make_node("Relu", ["c1"], ["r1"], name="/relu1/Relu"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="/pool1/MaxPool", kernel_shape=[2, 2], strides=[2, 2],
                         pads=[0, 0, 0, 0], dilations=[2, 2]),
        helper.make_node("Flatten", ["p1"], ["f"], name="/Flatten", axis=1),
        gemm("fc1", "f", "logits", 3 * 5 * 5, 4, inits),
    ]
    m = graph_model(n, inits, [1, 12, 12], "logits", [4], 17, "torch_dilated_pool")
    x = rng.uniform(0, 1, (40, 1, 12, 12))
    save("torch_dilated_pool", m, x[8:], x[:8])
    rng = saved


def ceil_pool():
    """A convolution, a MaxPool and an AveragePool (padding 1, counted) with
    ceil_mode = 1 on odd sizes, each adding a last window, and a dense
    layer; its own random stream, like log_softmax_mlp."""
    global rng
    saved, rng = rng, np.random.default_rng(20261220)
    inits = []
    n = [
        conv("conv1", "input.1", "c1", 1, 3, 3, inits, pad=1),
        helper.make_node("Relu", ["c1"], ["r1"], name="/relu1/Relu"),
        # 11 → 6 (floor: 5)
        helper.make_node("MaxPool", ["r1"], ["p1"], name="/pool1/MaxPool", kernel_shape=[2, 2], strides=[2, 2],
                         pads=[0, 0, 0, 0], ceil_mode=1),
        # 6 → 4 (floor: 3); the last window holds one entry and one padded zero.
        helper.make_node("AveragePool", ["p1"], ["p2"], name="/pool2/AveragePool", kernel_shape=[3, 3],
                         strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1, count_include_pad=1),
        helper.make_node("Flatten", ["p2"], ["f"], name="/Flatten", axis=1),
        gemm("fc1", "f", "logits", 3 * 4 * 4, 4, inits),
    ]
    m = graph_model(n, inits, [1, 11, 11], "logits", [4], 17, "torch_ceil_pool")
    x = rng.uniform(0, 1, (40, 1, 11, 11))
    save("torch_ceil_pool", m, x[8:], x[:8])
    rng = saved


def log_sqrt_reciprocal():
    """Log, Sqrt and Reciprocal of positive features (as a model computing
    log-, root- and inverse-scaled features exports them), joined and fed
    to a dense layer; its own random stream, like log_softmax_mlp."""
    global rng
    saved, rng = rng, np.random.default_rng(20261221)
    inits = []
    n = [
        helper.make_node("Log", ["input.1"], ["l"], name="/Log"),
        helper.make_node("Sqrt", ["input.1"], ["s"], name="/Sqrt"),
        helper.make_node("Reciprocal", ["input.1"], ["r"], name="/Reciprocal"),
        helper.make_node("Concat", ["l", "s", "r"], ["c"], name="/Concat", axis=1),
        gemm("fc1", "c", "out", 18, 3, inits),
    ]
    m = graph_model(n, inits, [6], "out", [3], 17, "torch_log_sqrt_reciprocal")
    x = rng.uniform(0.5, 4.0, (116, 6))
    save("torch_log_sqrt_reciprocal", m, x[16:], x[:16])
    rng = saved


GENERATORS = {
    "linear": linear_fixtures,
    "torch_mlp": mlp,
    "torch_mlp_external": lambda: mlp(external=True, name="torch_mlp_external"),
    "torch_lenet5": lenet5,
    "torch_resnet_tiny": resnet,
    "opset6": opset6,
    "deep_mlp": deep_mlp,
    "torch_log_softmax": log_softmax_mlp,
    "torch_dilated_pool": dilated_pool,
    "torch_ceil_pool": ceil_pool,
    "torch_log_sqrt_reciprocal": log_sqrt_reciprocal,
}

if __name__ == "__main__":
    # All of them, or only those named (`make_fixtures.py torch_log_softmax`).
    import sys
    for name in sys.argv[1:] or GENERATORS:
        GENERATORS[name]()
