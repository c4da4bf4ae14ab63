#!/usr/bin/env bash
# The install a user makes, checked: build the sdist and, from it, the wheel; install the
# wheel into a fresh virtual environment with plain pip (no constraints file, no setup
# script); run `gestsync sync` on a sample clip. Everything lives in a temporary folder that
# is removed at the end. .ci/run runs this before the test suite.
# Usage: scripts/check_install.sh [VIDEO]    (default ../shared/samples/sync_sample_3.mp4)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
video=${1:-../shared/samples/sync_sample_3.mp4}
say() { echo "check_install: $*"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# python -m build makes the sdist, then the wheel from that sdist: both are checked
"$PY" -m venv "$work/build"
"$work/build/bin/python" -m pip install --quiet --disable-pip-version-check build
"$work/build/bin/python" -m build --outdir "$work/dist" . > "$work/build.log" 2>&1 \
    || { cat "$work/build.log"; exit 1; }
wheel=$(ls "$work"/dist/gestsync-*.whl)
say "built $(cd "$work/dist" && echo *)"

"$PY" -m venv "$work/venv"
start=$SECONDS
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel"
say "pip install of the wheel: $((SECONDS - start)) s, venv $(du -sm "$work/venv" | cut -f1) MB"
"$work/venv/bin/python" -m pip check
# two wheels bring a cv2 (mediapipe's opencv-contrib-python, the detector wheel's
# opencv-python) into the same folder: the one imported must be the contrib build
"$work/venv/bin/python" -c "import cv2, sys; sys.exit(0 if hasattr(cv2, 'ximgproc') else \
'the cv2 imported is not opencv-contrib-python\'s')"
"$work/venv/bin/gestsync" --version

if [ ! -f "$video" ]; then
    say "$video is absent: the run on a sample is skipped"
    exit 0
fi
# a fresh model cache: the run builds what it needs from the installed wheels, offline
GESTSYNC_HOME="$work/home" GESTSYNC_CACHE="$work/cache" \
    "$work/venv/bin/gestsync" sync "$video" --out "$work/out" --quiet
say "gestsync sync $video: ok"
