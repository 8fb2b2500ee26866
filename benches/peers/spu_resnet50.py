#!/usr/bin/env python3
"""SecretFlow SPU on the ResNet-50 of benches/onnx/resnet50.py: torchvision's
topology with every BatchNormalization folded into its convolution (as Veil's
import folds it), random weights of the same shapes (the time does not
depend on them), one 224x224 image, in SPU's in-process two-party simulator.

    spu/bin/python benches/peers/spu_resnet50.py [--protocol SEMI2K] [--size 224]

Prints: spu resnet50 <protocol> size=<n> seconds=<s> (one timed call after
the compiling one). SPU 0.9.5, field FM64, 16 fraction bits.
"""
import argparse
import time

import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--protocol", default="SEMI2K")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--width", type=int, default=64)
    a = p.parse_args()
    import jax.numpy as jnp
    from jax import lax
    import spu.libspu as libspu
    import spu.utils.simulation as spsim

    rng = np.random.default_rng(50)
    shapes = []  # (cout, cin, k, stride, pad) per conv, in order

    def conv_spec(cin, cout, k, stride, pad):
        shapes.append((cout, cin, k, stride, pad))

    w0 = a.width
    conv_spec(3, w0, 7, 2, 3)
    blocks = []
    cin = w0
    for stage, (n, stride) in enumerate(zip([3, 4, 6, 3], [1, 2, 2, 2])):
        width = w0 * 2**stage
        for i in range(n):
            s = stride if i == 0 else 1
            conv_spec(cin, width, 1, 1, 0)
            conv_spec(width, width, 3, s, 1)
            conv_spec(width, width * 4, 1, 1, 0)
            if i == 0:
                conv_spec(cin, width * 4, 1, s, 0)
            blocks.append(i == 0)
            cin = width * 4
    params = []
    for cout, cin_, k, _, _ in shapes:
        params.append(rng.normal(0, np.sqrt(2.0 / (cin_ * k * k)), (cout, cin_, k, k)).astype(np.float32))
        params.append(rng.normal(0, 0.05, cout).astype(np.float32))
    params.append(rng.normal(0, np.sqrt(1.0 / cin), (cin, 1000)).astype(np.float32))
    params.append(rng.normal(0, 0.01, 1000).astype(np.float32))
    x = rng.uniform(-2, 2, (1, 3, a.size, a.size)).astype(np.float32)

    def net(x, *ps):
        it = iter(ps)
        specs = iter(shapes)

        def conv(h, relu=True):
            w, b = next(it), next(it)
            _, _, _, stride, pad = next(specs)
            y = lax.conv_general_dilated(h, w, (stride, stride), [(pad, pad), (pad, pad)],
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
            y = y + b[None, :, None, None]
            return jnp.maximum(y, 0) if relu else y

        h = conv(x)
        h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 3, 3), (1, 1, 2, 2),
                              [(0, 0), (0, 0), (1, 1), (1, 1)])
        for down in blocks:
            y = conv(h)
            y = conv(y)
            y = conv(y, relu=False)
            skip = conv(h, relu=False) if down else h
            h = jnp.maximum(y + skip, 0)
        g = jnp.mean(h, axis=(2, 3))
        wf, bf = next(it), next(it)
        return g @ wf + bf

    cfg = libspu.RuntimeConfig(protocol=getattr(libspu.ProtocolKind, a.protocol),
                               field=libspu.FieldType.FM64, fxp_fraction_bits=16)
    sim = spsim.Simulator(2, cfg)
    f = spsim.sim_jax(sim, net)
    t0 = time.perf_counter()
    got = f(x, *params)
    first = time.perf_counter() - t0
    want = np.asarray(net(x, *params))
    t0 = time.perf_counter()
    f(x, *params)
    s = time.perf_counter() - t0
    print(f"spu resnet50 {a.protocol} size={a.size} seconds={s:.2f} first_call={first:.2f} "
          f"max_err={np.abs(np.asarray(got) - want).max():.2e} class_equal={bool(np.asarray(got).argmax() == want.argmax())}",
          flush=True)


if __name__ == "__main__":
    main()
