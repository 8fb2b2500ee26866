#!/usr/bin/env python3
"""Train the bundled benchmark networks and write their weights, test split
and model files (issue 18). For regeneration only; not run in CI.

    /work/wt/onnx-venv/bin/python models/nets/train.py   # any Python with numpy and scikit-learn

The data is NOT MNIST (which cannot be downloaded here): it is
scikit-learn's bundled 8x8 digits (1,797 images, 16 grey levels), each
pixel repeated 3x3 (24x24) and padded with 2 zero pixels on every side to
28x28, in [0, 1]. 100 images (a fixed seed) are the test split; the rest
train. The layer lists are the published ones (input 1x28x28):

  net_a   SecureML: FC 784-128-128-10, relu
  net_b   MiniONN: conv 5x5x16, relu, maxpool 2, conv 5x5x16, relu,
          maxpool 2, FC 256-100, relu, FC 100-10
  net_c   LeNet variant: conv 5x5x20, relu, maxpool 2, conv 5x5x50, relu,
          maxpool 2, FC 800-500, relu, FC 500-10
  net_d   Chameleon: conv 5x5x5 stride 2 padding 2, relu, FC 980-100,
          relu, FC 100-10
  lenet5  LeNet-5: conv 5x5x6 padding 2, relu, avgpool 2, conv 5x5x16,
          relu, avgpool 2, FC 400-120, relu, FC 120-84, relu, FC 84-10

Training is plain numpy (im2col convolutions, Adam, cross-entropy). Weights
are stored as int8 with a power-of-two scale per tensor (written into the
model file, so the model multiplies them back exactly in the clear at the
model owner); biases as float32. Files: models/nets/<net>/*.npy,
models/nets/digits_test_{x,y}.npy, models/<net>.veil.
"""

import os
import numpy as np
from sklearn.datasets import load_digits

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.dirname(HERE)
rng = np.random.default_rng(18)


def data():
    d = load_digits()
    imgs = d.images.astype(np.float32) / 16.0  # [n, 8, 8] in [0, 1]
    big = np.kron(imgs, np.ones((1, 3, 3), np.float32))  # [n, 24, 24]
    big = np.pad(big, ((0, 0), (2, 2), (2, 2)))[:, None]  # [n, 1, 28, 28]
    order = np.random.default_rng(2026).permutation(len(big))
    test, train = order[:100], order[100:]
    return big[train], d.target[train], big[test], d.target[test]


# Layers: forward(x, cache) -> y; backward(dy) -> dx, accumulating grads.
class Dense:
    def __init__(self, n, m):
        self.p = {"w": rng.normal(0, np.sqrt(2 / n), (n, m)).astype(np.float32),
                  "b": np.zeros(m, np.float32)}

    def fwd(self, x):
        self.x = x
        return x @ self.p["w"] + self.p["b"]

    def bwd(self, dy):
        self.g = {"w": self.x.T @ dy, "b": dy.sum(0)}
        return dy @ self.p["w"].T


class Conv:
    def __init__(self, cin, cout, k, stride=1, pad=0):
        n = cin * k * k
        self.k, self.s, self.pad = k, stride, pad
        self.p = {"w": rng.normal(0, np.sqrt(2 / n), (cout, cin, k, k)).astype(np.float32),
                  "b": np.zeros(cout, np.float32)}

    def fwd(self, x):
        k, s, p = self.k, self.s, self.pad
        self.shape = x.shape
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))
        win = win[:, :, ::s, ::s]  # [B, C, Ho, Wo, k, k]
        self.cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(x.shape[0], win.shape[2], win.shape[3], -1)
        w = self.p["w"].reshape(self.p["w"].shape[0], -1)
        y = self.cols @ w.T + self.p["b"]  # [B, Ho, Wo, Cout]
        return y.transpose(0, 3, 1, 2)

    def bwd(self, dy):
        k, s, p = self.k, self.s, self.pad
        B, C, H, W = self.shape
        dyt = dy.transpose(0, 2, 3, 1)  # [B, Ho, Wo, Cout]
        cout = dyt.shape[-1]
        w = self.p["w"].reshape(cout, -1)
        self.g = {"w": (dyt.reshape(-1, cout).T @ self.cols.reshape(-1, w.shape[1])).reshape(self.p["w"].shape),
                  "b": dyt.sum((0, 1, 2))}
        dcols = (dyt @ w).reshape(B, dyt.shape[1], dyt.shape[2], C, k, k)
        dxp = np.zeros((B, C, H + 2 * p, W + 2 * p), np.float32)
        ho, wo = dyt.shape[1], dyt.shape[2]
        for i in range(k):
            for j in range(k):
                dxp[:, :, i:i + s * ho:s, j:j + s * wo:s] += dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
        return dxp[:, :, p:p + H, p:p + W]


class Relu:
    p = {}

    def fwd(self, x):
        self.m = x > 0
        return x * self.m

    def bwd(self, dy):
        self.g = {}
        return dy * self.m


class Pool:
    """2x2, stride 2: max or average."""
    p = {}

    def __init__(self, kind):
        self.kind = kind

    def fwd(self, x):
        B, C, H, W = x.shape
        r = x.reshape(B, C, H // 2, 2, W // 2, 2)
        if self.kind == "max":
            y = r.max((3, 5))
            self.m = r == y[:, :, :, None, :, None]
            return y
        return r.mean((3, 5))

    def bwd(self, dy):
        self.g = {}
        up = dy[:, :, :, None, :, None]
        if self.kind == "max":
            d = self.m * up
        else:
            d = np.broadcast_to(up / 4, up.shape[:3] + (2,) + up.shape[4:5] + (2,))
        B, C, h, _, w, _ = d.shape
        return d.reshape(B, C, h * 2, w * 2)


class Flatten:
    p = {}

    def fwd(self, x):
        self.shape = x.shape
        return x.reshape(x.shape[0], -1)

    def bwd(self, dy):
        self.g = {}
        return dy.reshape(self.shape)


NETS = {
    "net_a": lambda: [Flatten(), Dense(784, 128), Relu(), Dense(128, 128), Relu(), Dense(128, 10)],
    "net_b": lambda: [Conv(1, 16, 5), Relu(), Pool("max"), Conv(16, 16, 5), Relu(), Pool("max"),
                      Flatten(), Dense(256, 100), Relu(), Dense(100, 10)],
    "net_c": lambda: [Conv(1, 20, 5), Relu(), Pool("max"), Conv(20, 50, 5), Relu(), Pool("max"),
                      Flatten(), Dense(800, 500), Relu(), Dense(500, 10)],
    "net_d": lambda: [Conv(1, 5, 5, stride=2, pad=2), Relu(), Flatten(), Dense(980, 100), Relu(),
                      Dense(100, 10)],
    "lenet5": lambda: [Conv(1, 6, 5, pad=2), Relu(), Pool("avg"), Conv(6, 16, 5), Relu(), Pool("avg"),
                       Flatten(), Dense(400, 120), Relu(), Dense(120, 84), Relu(), Dense(84, 10)],
}


def forward(layers, x):
    for l in layers:
        x = l.fwd(x)
    return x


def train(layers, x, y, epochs=12, batch=64, lr=2e-3):
    m = [{k: np.zeros_like(v) for k, v in l.p.items()} for l in layers]
    v = [{k: np.zeros_like(a) for k, a in l.p.items()} for l in layers]
    t = 0
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            logits = forward(layers, x[idx])
            z = logits - logits.max(1, keepdims=True)
            prob = np.exp(z) / np.exp(z).sum(1, keepdims=True)
            d = prob
            d[np.arange(len(idx)), y[idx]] -= 1
            d /= len(idx)
            for l in reversed(layers):
                d = l.bwd(d)
            t += 1
            for l, ml, vl in zip(layers, m, v):
                for k in l.p:
                    g = l.g[k]
                    ml[k] = 0.9 * ml[k] + 0.1 * g
                    vl[k] = 0.999 * vl[k] + 0.001 * g * g
                    mh, vh = ml[k] / (1 - 0.9 ** t), vl[k] / (1 - 0.999 ** t)
                    l.p[k] -= (lr * mh / (np.sqrt(vh) + 1e-8)).astype(np.float32)


def quantise(w):
    """int8 values and a power-of-two scale: w ≈ q · 2^-e."""
    e = int(np.floor(np.log2(127 / np.abs(w).max())))
    q = np.clip(np.round(w * 2.0 ** e), -127, 127).astype(np.int8)
    return q, e


def bound(a):
    """A round range for |a|: the next power of two."""
    return 2.0 ** int(np.ceil(np.log2(max(np.abs(a).max(), 1e-3))))


TITLES = {
    "net_a": "Network A (SecureML): FC 784-128-128-10 with relu.",
    "net_b": "Network B (MiniONN): conv 5x5x16, relu, maxpool 2, conv 5x5x16, relu, maxpool 2,\n// FC 256-100, relu, FC 100-10.",
    "net_c": "Network C (LeNet variant): conv 5x5x20, relu, maxpool 2, conv 5x5x50, relu,\n// maxpool 2, FC 800-500, relu, FC 500-10.",
    "net_d": "Network D (Chameleon): conv 5x5x5 stride 2 padding 2, relu, FC 980-100, relu,\n// FC 100-10.",
    "lenet5": "LeNet-5: conv 5x5x6 padding 2, relu, avgpool 2, conv 5x5x16, relu, avgpool 2,\n// FC 400-120, relu, FC 120-84, relu, FC 84-10.",
}


# Fractional bits where the default (16) leaves the range analysis too
# little room: five layers of interval bounds exceed 2^30 at precision 16.
PRECISION = {"lenet5": 14}


def model_text(name, layers, params):
    """The .veil file: inputs (int8 weights with their scales, biases), then the layers."""
    decl, body = [], []
    h = "x"
    n = 0
    pending_relu = False
    for l in layers:
        if isinstance(l, (Dense, Conv)):
            n += 1
            (q, e), b = params[n]
            dims = ", ".join(str(d) for d in q.shape)
            decl.append(f"    input w{n}q: fixed[{dims}] private(server) in [-127, 127];")
            decl.append(f"    input b{n}: fixed[{len(b)}] private(server) in [{-bound(b):g}, {bound(b):g}];")
            body.append(f"    let w{n} = w{n}q * {2.0 ** -e!r};")
            if isinstance(l, Dense):
                body.append(f"    let h{n} = {h} @ w{n} + b{n};")
            else:
                extra = ""
                if l.s != 1:
                    extra += f", stride: {l.s}"
                if l.pad:
                    extra += f", padding: {l.pad}"
                body.append(f"    let h{n} = conv2d({h}, w{n}, b{n}{extra});")
            h = f"h{n}"
        elif isinstance(l, Relu):
            body.append(f"    let r{n} = relu({h});")
            h = f"r{n}"
        elif isinstance(l, Pool):
            body.append(f"    let p{n} = {l.kind}_pool2d({h}, 2);")
            h = f"p{n}"
        elif isinstance(l, Flatten):
            body.append(f"    let f = flatten({h}, start_dim: 1);")
            h = "f"
    body.append(f"    let label = argmax({h});")
    return "\n".join([
        f"// {TITLES[name]}",
        "// Trained on scikit-learn's 8x8 digits upsampled to 28x28 (NOT MNIST):",
        f"// weights in models/nets/{name}/, a 100-image test split in",
        "// models/nets/digits_test_{x,y}.npy; regenerate with models/nets/train.py.",
        "// Weights are int8 times a power of two, multiplied back at the server.",
        f"model {name} {{",
        *([f"    precision {PRECISION[name]};"] if name in PRECISION else []),
        "    party client;",
        "    party server;",
        "    dealer helper;",
        "",
        "    input x: fixed[batch, 1, 28, 28] private(client) in [0, 1];",
        *decl,
        "",
        *body,
        f"    output {h} to client;",
        "    output label to client;",
        "}",
        "",
    ])


def main():
    xtr, ytr, xte, yte = data()
    np.save(os.path.join(HERE, "digits_test_x.npy"), xte.astype(np.float32))
    np.save(os.path.join(HERE, "digits_test_y.npy"), yte.astype(np.int64))
    for name, make in NETS.items():
        layers = make()
        train(layers, xtr, ytr)
        # The stored network: int8 weights times their scales.
        params, n = {}, 0
        out = os.path.join(HERE, name)
        os.makedirs(out, exist_ok=True)
        for l in layers:
            if isinstance(l, (Dense, Conv)):
                n += 1
                q, e = quantise(l.p["w"])
                l.p["w"] = q.astype(np.float32) * np.float32(2.0 ** -e)
                params[n] = ((q, e), l.p["b"])
                np.save(os.path.join(out, f"w{n}q.npy"), q)
                np.save(os.path.join(out, f"b{n}.npy"), l.p["b"].astype(np.float32))
        acc = (forward(layers, xte).argmax(1) == yte).mean()
        train_acc = (forward(layers, xtr).argmax(1) == ytr).mean()
        with open(os.path.join(MODELS, f"{name}.veil"), "w") as f:
            f.write(model_text(name, layers, params))
        print(f"{name}: train accuracy {train_acc:.3f}, test accuracy {acc:.3f} (int8 weights)")


if __name__ == "__main__":
    main()
