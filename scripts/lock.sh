#!/usr/bin/env bash
# Regenerate the lock files (every transitive dependency pinned, with sha256 hashes) from their inputs:
#   requirements.lock            pyproject.toml [cpu] + requirements.txt          (docker/Dockerfile, the CPU image)
#   requirements-dev.lock        pyproject.toml [cpu] + requirements-dev.txt      (scripts/setup.sh: make setup/test, CI)
#   requirements-gpu.lock        pyproject.toml [gpu], constrained to requirements.lock  (docker/Dockerfile.gpu)
#   docker/requirements-k80.lock docker/requirements-k80.txt                      (docker/Dockerfile.gpu-k80)
# The dev and GPU locks take requirements.lock as constraints, so a package shared with the CPU image has the same
# version everywhere. All target CPython 3.11 (3.11.7 or newer: the tested venv; the images have 3.11.14) on
# x86_64 Linux with glibc >= 2.28.
# Versions already in a lock are kept (uv prefers them); pass --upgrade to move everything to the newest versions
# the inputs allow, or --upgrade-package NAME for one. Needs uv (pip install uv; these locks: uv 0.13.9), found on
# PATH or as $UV.
#   scripts/lock.sh [--upgrade | --upgrade-package NAME ...]
set -euo pipefail
cd "$(dirname "$0")/.."
UV="${UV:-uv}"
command -v "$UV" >/dev/null 2>&1 || { echo "lock: error: uv not found: pip install uv (or set UV=/path/to/uv)" >&2; exit 2; }

compile() {  # compile OUTPUT INPUT... [uv options]: one lock; PYTHON_VERSION overrides the target Python
  local out="$1"; shift
  "$UV" pip compile --quiet --generate-hashes --python-version "${PYTHON_VERSION:-3.11.7}" \
    --python-platform x86_64-manylinux_2_28 \
    --custom-compile-command "scripts/lock.sh" --output-file "$out" "$@"
}

compile requirements.lock pyproject.toml requirements.txt --extra cpu "$@"
compile requirements-dev.lock pyproject.toml requirements-dev.txt --extra cpu -c requirements.lock "$@"
compile requirements-gpu.lock pyproject.toml --extra gpu -c requirements.lock "$@"
# tensorflow/tensorflow:2.14.0-gpu is Ubuntu 22.04 with its python3.11 package (3.11.0).
PYTHON_VERSION=3.11.0 compile docker/requirements-k80.lock docker/requirements-k80.txt "$@"
echo "lock: requirements.lock requirements-dev.lock requirements-gpu.lock docker/requirements-k80.lock written"
