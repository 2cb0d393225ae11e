#!/usr/bin/env bash
# Create .venv with infattn and its notebook, development and data extras (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev,notebook,data]"
echo "infattn installed in .venv ($(.venv/bin/python -c 'import jax; print("jax", jax.__version__)'))"
