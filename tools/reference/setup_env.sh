#!/usr/bin/env bash
# Create the pinned neural-tangents 0.6.5 reference environment (idempotent).
#
#   bash tools/reference/setup_env.sh [--dry-run]
#
# Location: $INFATTN_REF_ENV, default <repo>/.cache/ntref. Interpreter: $INFATTN_REF_PYTHON,
# default python3.11. If the environment already imports the pinned neural_tangents and jax,
# nothing is done. With --dry-run the commands are printed instead of run.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ENV_DIR="${INFATTN_REF_ENV:-$REPO/.cache/ntref}"
PYTHON="${INFATTN_REF_PYTHON:-python3.11}"
REQUIREMENTS="$REPO/tools/reference/requirements.txt"
DRY_RUN=0
[[ "${1:-}" == "--dry-run" ]] && DRY_RUN=1

run() {
  if (( DRY_RUN )); then echo "+ $*"; else "$@"; fi
}

is_ready() {
  # True when the env imports the pinned versions of neural_tangents and jax, and NT's predict
  # (which needs scipy<1.13).
  [[ -x "$ENV_DIR/bin/python" ]] || return 1
  TF_CPP_MIN_LOG_LEVEL=3 JAX_PLATFORMS=cpu "$ENV_DIR/bin/python" - <<'PY' >/dev/null 2>&1
import jax
import neural_tangents
from neural_tangents import predict
assert neural_tangents.__version__ == "0.6.5", neural_tangents.__version__
assert jax.__version__ == "0.4.23", jax.__version__
PY
}

if is_ready; then
  echo "reference environment ready: $ENV_DIR (neural-tangents 0.6.5, jax 0.4.23)"
  exit 0
fi

if ! command -v "$PYTHON" >/dev/null; then
  echo "error: $PYTHON not found; set INFATTN_REF_PYTHON to a Python 3.11 interpreter" >&2
  exit 1
fi

if [[ ! -x "$ENV_DIR/bin/python" ]]; then
  run mkdir -p "$(dirname "$ENV_DIR")"
  run "$PYTHON" -m venv "$ENV_DIR"
fi
run "$ENV_DIR/bin/python" -m pip install -q --upgrade pip
run "$ENV_DIR/bin/python" -m pip install -q -r "$REQUIREMENTS"

if (( DRY_RUN )); then
  echo "(dry run: nothing installed)"
elif is_ready; then
  echo "reference environment ready: $ENV_DIR"
else
  echo "error: $ENV_DIR does not import the pinned neural_tangents/jax after install" >&2
  exit 1
fi
