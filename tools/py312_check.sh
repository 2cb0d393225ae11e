#!/usr/bin/env bash
# The core package on Python 3.12 (the GPU image's version): install infattn without
# optional extras into .cache/py312, run the main job briefly and the reference parity
# tests. Needs `python3.12` (override with PYTHON312=...).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON312:-python3.12}
if ! "$PY" --version >/dev/null 2>&1; then  # a pyenv shim without 3.12 selected
  PY=$(ls -d "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.12*/bin/python3.12 \
       2>/dev/null | tail -n 1)
fi
if [ -z "$PY" ] || ! "$PY" --version >/dev/null 2>&1; then
  echo "Python 3.12 not found: set PYTHON312=/path/to/python3.12" >&2
  exit 1
fi
ENV=.cache/py312
if [ ! -x "$ENV/bin/python" ]; then
  "$PY" -m venv "$ENV"
fi
"$ENV/bin/python" -m pip install -q --upgrade pip
"$ENV/bin/python" -m pip install -q -e . "pytest>=8" "pytest-xdist>=3" "hypothesis>=6.100"
"$ENV/bin/python" -c 'import sys, jax; print("python", sys.version.split()[0], "jax", jax.__version__)'
"$ENV/bin/python" -m infattn --draws 8 --width 32
"$ENV/bin/python" -m pytest -q -p no:cacheprovider -n 2 tests/reference
