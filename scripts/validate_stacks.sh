#!/usr/bin/env bash
# Validate configs/stacks/staging.yaml and production.yaml with ZenML's real flavors.
#
#   scripts/validate_stacks.sh       # prints a JSON report (scripts/validate_stacks.py); exit 1 if invalid
#
# Registering kubernetes/s3/mlflow/kaniko/slack components needs those ZenML integrations'
# packages, which the project's lock file deliberately leaves out. They are installed into a
# separate virtual environment under .cache/stack-validation/ (git-ignored; override with
# MLOPS_STACK_CACHE), built once per machine and rebuilt when uv.lock or the stacks' integrations
# change. Versions shared with the project are constrained to those of uv.lock.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly BIN=.venv/bin
readonly CACHE="${MLOPS_STACK_CACHE:-.cache/stack-validation}"
readonly VENV="$CACHE/venv"
readonly ENVS=(staging production)

[[ -x "$BIN/mlops" && -x "$BIN/uv" ]] || { echo "validate_stacks.sh: run 'make install' first" >&2; exit 2; }
mkdir -p "$CACHE"
# One builder at a time (parallel test workers, two checkouts sharing a cache).
exec 9>"$CACHE/.lock"
flock 9

env_flags=()
for env in "${ENVS[@]}"; do env_flags+=(--env "$env"); done
MLOPS_STATE_DIR="$CACHE/state" "$BIN/mlops" stack requirements "${env_flags[@]}" \
  --output "$CACHE/requirements.txt" >/dev/null
"$BIN/uv" export --quiet --frozen --all-extras --no-emit-project --no-hashes --no-header \
  --format requirements-txt --output-file "$CACHE/constraints.txt"
stamp="$(cat "$CACHE/requirements.txt" "$CACHE/constraints.txt" | sha256sum | cut -d' ' -f1)"

if [[ ! -x "$VENV/bin/python" || "$(cat "$VENV/.stamp" 2>/dev/null)" != "$stamp" ]]; then
  echo "validate_stacks.sh: building $VENV (once per machine)" >&2
  rm -rf "$VENV"
  "$BIN/uv" venv --quiet --python "$BIN/python" "$VENV"
  "$BIN/uv" pip install --quiet --python "$VENV/bin/python" "zenml[local]" \
    -r "$CACHE/requirements.txt" -c "$CACHE/constraints.txt"
  echo "$stamp" >"$VENV/.stamp"
fi

PYTHONPATH=src "$VENV/bin/python" scripts/validate_stacks.py "${env_flags[@]}"
