#!/usr/bin/env bash
# Create .venv and install gestsync with pinned dependencies (constraints.txt).
# Usage: scripts/setup.sh [--test]    (--test also installs the test extras)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt)
# mediapipe without its declared jax/sentencepiece/sounddevice (not used by the vision models).
"${PIP[@]}" --no-deps mediapipe==0.10.21
# scenedetect without its declared opencv-python (we use opencv-contrib-python).
"${PIP[@]}" --no-deps scenedetect==0.7.2
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
"${PIP[@]}" -e ".${extras}"
