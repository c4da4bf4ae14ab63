"""Quiet means quiet: on success, stderr holds nothing (no library log lines: MediaPipe logs
through absl, which no environment variable silences; no advice of ours either), while
errors still get through."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SAMPLES, needs_samples

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {SRC!r})\n{code}"],
                          capture_output=True, text=True, timeout=300)


def _gestsync(*argv: str) -> subprocess.CompletedProcess:
    return _python(f"from gestsync.cli import main\nsys.exit(main({list(argv)!r}))")


def test_held_lines_pass_on_but_mediapipe_chatter():
    """What is written to fd 2 inside `native_logs_hidden` comes out after it, in order,
    without MediaPipe's info and warning lines; the projection warning is noted."""
    done = _python(
        "import os\nfrom gestsync import pose\n"
        "with pose.native_logs_hidden():\n"
        "    os.write(2, b'W0000 00:00:1.0 7 landmark_projection_calculator.cc:186] Using NORM_RECT\\n')\n"
        "    os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n')\n"
        "    os.write(2, b'E0000 00:00:1.0 7 graph.cc:1] a real error\\n')\n"
        "    print('from python', file=sys.stderr, flush=True)\n"
        "print(pose.projection_warned())")
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["E0000 00:00:1.0 7 graph.cc:1] a real error", "from python"]
    assert done.stdout.strip() == "True"


@needs_samples
def test_pose_warning_after_empty_frames_is_hidden():
    """MediaPipe warns on the first landmarks it projects, not at set-up: here on a frame
    after five blank ones."""
    clip = SAMPLES / "sync_sample_3.mp4"
    done = _python(
        "import numpy as np\nfrom gestsync import media, pose\n"
        f"info = media.probe({str(clip)!r})\n"
        "frames = list(media.iter_frames(info, num_frames=10))\n"
        "with pose.PoseDetector(max_people=2) as d:\n"
        "    people = [len(d.detect(np.zeros_like(frames[0]), i)) for i in range(5)]\n"
        "    people += [len(d.detect(f, i)) for i, f in enumerate(frames, 5)]\n"
        "print(max(people[:5]) == 0, max(people) > 0, pose.projection_warned())")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "True"], done.stdout  # nobody, then someone
    assert done.stderr == ""


@pytest.mark.slow
@needs_samples
@pytest.mark.parametrize("argv", [
    ("sync", "sync_sample_3.mp4"),
    ("sync", "sync_sample_3.mp4", "--cues", "face+body"),
    ("speaker", "asd_sample_1.mp4"),
    ("speaker", "asd_sample_1.mp4", "--cues", "face+body"),
], ids=lambda argv: "-".join(argv))
def test_quiet_run_writes_nothing_on_stderr(tmp_path, argv):
    command, clip, *rest = argv
    done = _gestsync(command, str(SAMPLES / clip), "--quiet", "--out", str(tmp_path / "out"), *rest)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
