#!/usr/bin/env bash
# Idempotent installer for Veil's peer benchmarks (python-paillier, MPyC, CrypTen).
# Creates one venv per peer under $VEIL_PEERS_DIR (default ~/.cache/veil-peers).
# Usage: benches/peers/setup.sh [phe|mpyc|crypten ...]   (default: all three)
set -euo pipefail
DIR="${VEIL_PEERS_DIR:-$HOME/.cache/veil-peers}"
PY="${PYTHON:-python3}"
mkdir -p "$DIR"
PEERS=("$@"); [ ${#PEERS[@]} -eq 0 ] && PEERS=(phe mpyc crypten)

mkvenv() { # name
  local v="$DIR/$1"
  if [ ! -x "$v/bin/python" ]; then "$PY" -m venv "$v"; "$v/bin/pip" install -q --upgrade pip; fi
}
ok() { [ -f "$DIR/$1/.ok" ]; }

for p in "${PEERS[@]}"; do
  case "$p" in
  phe)
    ok phe || { mkvenv phe
      "$DIR/phe/bin/pip" install -q phe gmpy2 numpy
      "$DIR/phe/bin/python" -c "import phe, gmpy2, numpy; print('phe', phe.__version__ if hasattr(phe,'__version__') else '?', 'gmpy2', gmpy2.version())"
      touch "$DIR/phe/.ok"; } ;;
  mpyc)
    ok mpyc || { mkvenv mpyc
      "$DIR/mpyc/bin/pip" install -q mpyc gmpy2 numpy
      "$DIR/mpyc/bin/python" -c "import mpyc, gmpy2, numpy; print('mpyc', mpyc.__version__, 'numpy', numpy.__version__)"
      touch "$DIR/mpyc/.ok"; } ;;
  crypten)
    ok crypten || { mkvenv crypten
      # torch 2.0.1 from PyPI is the CUDA build on linux-x86_64 (pulls nvidia-* wheels, ~2.5 GB);
      # the +cpu wheels live only on PyTorch's own index, which is not reachable here.
      "$DIR/crypten/bin/pip" install -q "torch==2.0.1" "numpy<2"
      "$DIR/crypten/bin/pip" install -q --no-deps crypten==0.4.1
      "$DIR/crypten/bin/pip" install -q omegaconf onnx pandas pyyaml tensorboard future scipy scikit-learn torchvision==0.15.2 "numpy<2" "torch==2.0.1"
      "$DIR/crypten/bin/python" -c "import torch, crypten; print('torch', torch.__version__, 'crypten', crypten.__version__ if hasattr(crypten,'__version__') else '0.4.1')"
      touch "$DIR/crypten/.ok"; } ;;
  *) echo "unknown peer $p" >&2; exit 2 ;;
  esac
done
echo "peers ready in $DIR"
