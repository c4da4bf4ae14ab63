"""Face mask geometry, bundle building, and the detectors on a few real frames."""

import os
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from gestsync import person_detector, pose
from gestsync.pose import (CHIN_MARGIN, FACE_OVAL, NO_FACE_BAND, FaceMasker, PoseDetector,
                           bundle_path, head_box, mask_face)
from conftest import SAMPLES


def decode(name: str, start: int, count: int) -> list[np.ndarray]:
    """Frames start .. start+count-1 of a sample as uint8 RGB; skips when it is absent."""
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"{path} not available")
    av = pytest.importorskip("av")
    frames = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= start:
                frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    """A bundle cache shared by all the tests of one pytest run (built once)."""
    return tmp_path_factory.mktemp("gestsync-cache")


# --------------------------------------------------------------------------- face mask

def test_face_oval_ids():
    assert len(FACE_OVAL) == 36 == len(set(FACE_OVAL))
    assert FACE_OVAL[0] == 10 and FACE_OVAL[-1] == 454 and list(FACE_OVAL) == sorted(FACE_OVAL)


def test_mask_with_face_blacks_rows_down_to_chin_plus_15():
    crop = np.full((270, 480, 3), 200, np.uint8)  # already model size: resize is exact
    out = mask_face(crop, 100.7)
    last = 100 + CHIN_MARGIN  # int(y_chin) + 15, inclusive
    assert out.shape == (270, 480, 3) and out.dtype == np.uint8
    assert (out[: last + 1] == 0).all() and (out[last + 1:] == 200).all()
    assert (crop == 200).all()  # input untouched


def test_mask_is_drawn_at_the_crops_resolution_then_resized():
    rng = np.random.default_rng(0)
    crop = rng.integers(1, 256, (540, 960, 3), dtype=np.uint8)  # twice the model size
    out = mask_face(crop, 100.0)
    expected = crop.copy()
    expected[: 100 + CHIN_MARGIN + 1] = 0  # 15 pixels of the CROP, not of the output
    np.testing.assert_array_equal(out, cv2.resize(expected, (480, 270)))
    assert (out[:57] == 0).all() and (out[59:] > 0).any(axis=(1, 2)).all()


def test_mask_without_face_resizes_then_blacks_band():
    crop = np.full((540, 960, 3), 90, np.uint8)
    out = mask_face(crop, None)
    assert (out[: NO_FACE_BAND + 1] == 0).all() and (out[NO_FACE_BAND + 1:] == 90).all()


def test_mask_chin_below_the_crop_blacks_everything():
    assert (mask_face(np.full((100, 160, 3), 50, np.uint8), 500.0) == 0).all()


def test_head_box_is_a_square_around_the_face():
    k = np.zeros((33, 4), np.float32)
    k[[7, 8], :2] = [(90, 100), (110, 100)]  # ears 20 px apart
    k[[2, 5], :2] = [(96, 97), (104, 97)]
    k[[9, 10], :2] = [(97, 106), (103, 106)]
    x0, y0, x1, y1 = head_box(k)
    assert x1 - x0 == pytest.approx(y1 - y0) == pytest.approx(pose.HEAD_SCALE * 22.5)
    assert x0 < 90 and x1 > 110 and y0 < 97 and y1 > 106


# ----------------------------------------------------------------------------- bundles

def test_bundle_is_built_once_and_valid(cache):
    path = bundle_path("pose_landmarker", cache)
    assert path.parent.name.startswith("mediapipe-")
    stat = path.stat()
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["pose_detector.tflite", "pose_landmarks_detector.tflite"]
    assert bundle_path("pose_landmarker", cache) == path
    assert path.stat().st_mtime_ns == stat.st_mtime_ns and path.stat().st_ino == stat.st_ino
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left


def test_bundle_write_is_atomic(tmp_path, monkeypatch):
    def fail(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pose, "_with_metadata", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        bundle_path("pose_landmarker", tmp_path)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # no partial bundle


def test_cache_root_from_environment(monkeypatch, tmp_path):
    """One cache root for the bundles, the person detector and the weights cache."""
    from gestsync import weights
    from gestsync.outputs import cache_root

    monkeypatch.setenv("GESTSYNC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GESTSYNC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "home"
    assert person_detector.cache_path().parent == tmp_path / "home"
    assert weights.models_dir() == tmp_path / "home" / "models"
    monkeypatch.delenv("GESTSYNC_HOME")
    assert cache_root() == tmp_path / "cache"
    monkeypatch.delenv("GESTSYNC_CACHE")
    if sys.platform.startswith("linux"):
        assert cache_root() == tmp_path / "xdg" / "gestsync"


# ---------------------------------------------------------------------- real detectors

def detect_all(frames, cache, **options) -> list[np.ndarray]:
    with PoseDetector(cache=cache, **options) as detector:
        return [detector.detect(f, i) for i, f in enumerate(frames)]


def test_pose_detector_finds_one_person(cache):
    frames = decode("sync_sample_1.mp4", 0, 8)
    poses = detect_all(frames, cache, max_people=2)
    assert [len(p) for p in poses] == [1] * 8
    h, w = frames[0].shape[:2]
    p = poses[0]
    assert p.shape == (1, 33, 4) and p.dtype == np.float32
    assert 0 < p[0, 0, 0] < w and 0 < p[0, 0, 1] < h  # nose in pixels of the frame
    assert p[0, 0, 3] > 0.5


def test_pose_detector_finds_two_people(cache):
    # The detector is face-anchored and one of the two wears a mask: it is found on the
    # third frame, then tracked (VIDEO mode).
    frames = decode("asd_sample_1.mp4", 0, 12)
    poses = detect_all(frames, cache, max_people=4)
    assert sum(len(p) == 2 for p in poses) >= 9
    noses = sorted(poses[-1][:, 0, 0])
    assert noses[0] < 640 < noses[1]  # one on each side of the 1280-wide frame


def test_pose_detector_needs_increasing_frames(cache):
    frame = np.zeros((90, 160, 3), np.uint8)
    with PoseDetector(cache=cache) as detector:
        assert detector.detect(frame, 3).shape == (0, 33, 4)
        with pytest.raises(ValueError, match="increase"):
            detector.detect(frame, 3)
        with pytest.raises(ValueError, match="uint8"):
            detector.detect(frame.astype(np.float32), 4)


def test_face_masker_finds_the_chin(cache):
    frames = decode("sync_sample_1.mp4", 0, 3)
    (keypoints,) = detect_all(frames[:1], cache)[0]
    with FaceMasker() as masker:  # one masker per kind of input: it tracks the face
        chins = [masker.chin_y(f) for f in frames]
    with FaceMasker() as masker:
        head_chin = masker.chin_y(frames[0], head_box(keypoints))
        out = masker.mask(frames[1], head_box(keypoints))
    mouth_y = keypoints[9:11, 1].mean()
    for y in chins + [head_chin]:
        assert y is not None and mouth_y < y < mouth_y + 60
    assert out.shape == (270, 480, 3) and (out[: int(mouth_y) + CHIN_MARGIN] == 0).all()


QUIET_SCRIPT = """
import numpy as np
from gestsync.pose import FaceMasker, PoseDetector
frames = [np.full((270, 480, 3), v, np.uint8) for v in (0, 90, 180)]
with FaceMasker() as masker, PoseDetector() as poses:
    for i, frame in enumerate(frames):
        masker.chin_y(frame)
        poses.detect(frame, i)
print("done")
"""


def test_detectors_keep_mediapipe_set_up_lines_off_stderr(cache):
    """MediaPipe's C++ start-up warnings (some from its own threads, after the constructor
    returns) must not reach the terminal, whoever creates the detectors."""
    import subprocess

    run = subprocess.run([sys.executable, "-c", QUIET_SCRIPT], capture_output=True, text=True,
                         env={**os.environ, "GESTSYNC_HOME": str(cache)}, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "done\n"
    assert run.stderr == ""
