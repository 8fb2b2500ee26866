#!/usr/bin/env bash
# ResNet-50 (torchvision's topology, random weights, 224x224) imported from
# ONNX and run privately with a dealer, compared with onnxruntime.
#
#   benches/onnx/resnet50.sh PYTHON [WORKDIR]
#
# PYTHON is a Python with onnx, onnxruntime and numpy
# (python3 -m venv v && v/bin/pip install onnx onnxruntime numpy).
set -euo pipefail
py=${1:?usage: benches/onnx/resnet50.sh PYTHON [WORKDIR]}
dir=${2:-$(mktemp -d)}
root=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release -q -p cli --manifest-path "$root/Cargo.toml"
veil="$root/target/release/veil"
"$py" "$root/benches/onnx/resnet50.py" "$dir"
rm -rf "$dir/imp" "$dir/out"
/usr/bin/time -f "import: %e s, %M kB" "$veil" import "$dir/resnet50.onnx" -o "$dir/imp" --calibrate input="$dir/calib.npy" > /dev/null
/usr/bin/time -f "run: %e s wall, %M kB" "$veil" run "$dir/imp/model.veil" --inputs "$dir/imp" -i input_1="$dir/images.npy" --stats -o "$dir/out" 2>&1 | grep -v "^warning\|^ *[│┌=]\|^[0-9]* │\|^$"
"$py" - "$dir" <<'PY'
import json, sys, numpy as np, onnxruntime as ort
d = sys.argv[1]
s = ort.InferenceSession(f"{d}/resnet50.onnx", providers=["CPUExecutionProvider"])
x = np.load(f"{d}/images.npy").astype(np.float32)
ref = s.run(None, {"input": x})[0]
got = np.array(json.load(open(f"{d}/out/client.json"))["logits"])
print(f"max |veil - onnxruntime| = {np.abs(got - ref).max():.3e}; classes equal: {bool((got.argmax(1) == ref.argmax(1)).all())}")
PY
