#!/usr/bin/env python3
"""Writes a ResNet-50-shaped ONNX model (torchvision's topology, random
weights) and a few random 224x224 images, for `benches/onnx/resnet50.sh`.

The graph is built node by node with onnx.helper in the form
torch.onnx.export writes torchvision.models.resnet50() (PyTorch cannot be
installed on the machine that wrote this): conv 7x7/2 + BatchNormalization +
Relu, MaxPool 3x3/2 pad 1, bottleneck stages of [3, 4, 6, 3] blocks (1x1,
3x3 with the stride, 1x1 x4, a 1x1/stride downsample on the first block of
each stage), GlobalAveragePool, Flatten, Gemm 2048 -> 1000. Weights are
He-initialised and BatchNormalization statistics are random but sane, so
activations stay in a range like a trained network's.

    python resnet50.py OUT_DIR [--size 224] [--images 1]
"""
import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--size", type=int, default=224)
p.add_argument("--images", type=int, default=1)
p.add_argument("--width", type=int, default=64, help="channels of the first stage (64 in ResNet-50)")
args = p.parse_args()
rng = np.random.default_rng(50)
nodes, inits = [], []


def init(name, a):
    inits.append(numpy_helper.from_array(np.asarray(a, dtype=np.float32), name))
    return name


def conv_bn(x, out, cin, cout, k, stride, pad, relu=True, gamma=1.0):
    w = init(f"{out}.conv.weight", rng.normal(0, np.sqrt(2.0 / (cin * k * k)), (cout, cin, k, k)))
    nodes.append(helper.make_node("Conv", [x, w], [f"{out}.c"], name=f"/{out}/Conv", kernel_shape=[k, k],
                                  strides=[stride, stride], pads=[pad] * 4, dilations=[1, 1], group=1))
    names = [init(f"{out}.bn.{n}", v) for n, v in [
        ("weight", rng.uniform(0.5, 1.0, cout) * gamma), ("bias", rng.normal(0, 0.05, cout)),
        ("running_mean", rng.normal(0, 0.05, cout)), ("running_var", rng.uniform(0.8, 1.2, cout))]]
    y = f"{out}.bn" if relu else out
    nodes.append(helper.make_node("BatchNormalization", [f"{out}.c"] + names, [y], name=f"/{out}/BatchNormalization",
                                  epsilon=1e-5, momentum=0.9))
    if relu:
        nodes.append(helper.make_node("Relu", [y], [out], name=f"/{out}/Relu"))
    return out


def bottleneck(x, name, cin, width, stride, down):
    a = conv_bn(x, f"{name}.a", cin, width, 1, 1, 0)
    b = conv_bn(a, f"{name}.b", width, width, 3, stride, 1)
    c = conv_bn(b, f"{name}.c3", width, width * 4, 1, 1, 0, relu=False, gamma=0.2)
    skip = conv_bn(x, f"{name}.down", cin, width * 4, 1, stride, 0, relu=False) if down else x
    nodes.append(helper.make_node("Add", [c, skip], [f"{name}.sum"], name=f"/{name}/Add"))
    nodes.append(helper.make_node("Relu", [f"{name}.sum"], [name], name=f"/{name}/Relu"))
    return name


w0 = args.width
x = conv_bn("input", "stem", 3, w0, 7, 2, 3)
nodes.append(helper.make_node("MaxPool", [x], ["pool"], name="/maxpool/MaxPool", kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4))
x, cin = "pool", w0
for stage, (blocks, stride) in enumerate(zip([3, 4, 6, 3], [1, 2, 2, 2])):
    width = w0 * 2 ** stage
    for i in range(blocks):
        x = bottleneck(x, f"layer{stage + 1}.{i}", cin, width, stride if i == 0 else 1, i == 0)
        cin = width * 4
nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"], name="/avgpool/GlobalAveragePool"))
nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="/Flatten", axis=1))
fcw = init("fc.weight", rng.normal(0, np.sqrt(1.0 / cin), (1000, cin)))
fcb = init("fc.bias", rng.normal(0, 0.01, 1000))
nodes.append(helper.make_node("Gemm", ["flat", fcw, fcb], ["logits"], name="/fc/Gemm", transB=1))
g = helper.make_graph(nodes, "resnet50",
                      [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, args.size, args.size])],
                      [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1000])], inits)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="veil-benches")
m.ir_version = 8
os.makedirs(args.out, exist_ok=True)
onnx.save_model(m, os.path.join(args.out, "resnet50.onnx"), save_as_external_data=True,
                location="resnet50.onnx.data", size_threshold=1024)
imgs = rng.uniform(-2.0, 2.0, (max(args.images, 8), 3, args.size, args.size))
np.save(os.path.join(args.out, "images.npy"), imgs[: args.images])
np.save(os.path.join(args.out, "calib.npy"), imgs)
print("params:", sum(int(np.prod(i.dims)) for i in inits))
