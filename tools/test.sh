#!/usr/bin/env bash
# The test command: install (idempotent), build the reference neural-tangents
# environment, regenerate the reference kernels, then lint and run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/reference/setup_env.sh
REF_ENV=${INFATTN_REF_ENV:-.cache/ntref}
export INFATTN_REF_DIR=${INFATTN_REF_DIR:-.cache/reference}
echo "== regenerating reference kernels with neural-tangents 0.6.5"
# two streams, one per core: the kernel grid, and the predict and empirical cases (they
# write distinct files; only dump.py writes the manifest). `wait` returns dump.py's status.
"$REF_ENV/bin/python" tools/reference/dump.py "$INFATTN_REF_DIR" &
grid=$!
"$REF_ENV/bin/python" tools/reference/dump_predict.py "$INFATTN_REF_DIR"
"$REF_ENV/bin/python" tools/reference/dump_empirical.py "$INFATTN_REF_DIR"
wait "$grid"
echo "== ruff"
.venv/bin/ruff check infattn tests tools benchmarks
.venv/bin/ruff format --check infattn tests tools benchmarks
echo "== Python 3.12: core package without extras, main job, reference parity"
bash tools/py312_check.sh
echo "== doctests: every public function's Example"
.venv/bin/python -m pytest -q -p no:cacheprovider -n 2 --doctest-modules infattn
echo "== notebooks executed in fast mode (INFATTN_FAST=1)"
# a cell waits at most 240 s (fast-mode cells take under a minute); a notebook that
# fails or stalls is run once more (a
# notebook client once stalled on a kernel that had gone idle, 2026-12-03)
INFATTN_FAST=1 .venv/bin/python -m pytest -q -p no:cacheprovider --nbmake --nbmake-timeout=240 \
  --reruns 1 notebooks
echo "== pytest"
.venv/bin/python -m pytest -q -n 2 --dist loadfile "$@"
