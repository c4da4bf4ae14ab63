"""Shot cuts (gestsync.scenes): our content detector against PySceneDetect's.

gestsync finds cuts itself so that a plain pip install needs no scenedetect (whose
opencv-python would clash with mediapipe's opencv-contrib-python). The comparisons run where
scenedetect is installed (`make test` installs it, without its dependencies, for these
tests only) and skip elsewhere.
"""

import numpy as np
import pytest

from conftest import SAMPLES, needs_samples
from gestsync.scenes import (CUT_THRESHOLD, MIN_SCENE_FRAMES, MinLengthMerge, SceneCuts, cut_spans,
                             cuts_of, hsv_change)


def _flat(rgb, size=(48, 64)) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (*size, 3)).copy()


def _spans(frames, **kw) -> list[tuple[int, int]]:
    cuts = SceneCuts(**kw)
    for k, frame in enumerate(frames):
        cuts.feed(k, frame)
    return cuts.spans()


def test_a_colour_change_is_a_cut_and_a_steady_shot_is_not():
    rng = np.random.default_rng(0)
    noise = lambda: rng.integers(-3, 4, (48, 64, 3))  # noqa: E731  camera noise, no cut
    shot_a = [np.clip(_flat((200, 40, 40)) + noise(), 0, 255).astype(np.uint8) for _ in range(30)]
    shot_b = [np.clip(_flat((30, 160, 220)) + noise(), 0, 255).astype(np.uint8) for _ in range(40)]
    assert _spans(shot_a + shot_b) == [(0, 30), (30, 70)]
    assert _spans(shot_a) == [(0, 30)]
    assert _spans(shot_a + shot_b, threshold=255) == [(0, 70)]  # nothing changes that much


def test_changes_closer_than_a_scene_merge_into_one_cut():
    red, blue, white = _flat((200, 40, 40)), _flat((30, 160, 220)), _flat((255, 255, 255))
    # a cut at 20, then a 3-frame flash at 50: a cut where it starts; its end, 3 frames
    # later, is too close to be a cut of its own
    assert _spans([red] * 20 + [blue] * 30 + [white] * 3 + [blue] * 40) == [
        (0, 20), (20, 50), (50, 93)]
    # a cut at 20, then the picture changes every 5 frames from 30 to 60 (a fast montage):
    # one cut at the last change, decided once 15 calm frames follow it
    montage = [red] * 20 + [blue] * 10 + [white, white, white, red, red] * 6 + [blue] * 30
    assert _spans(montage) == [(0, 20), (20, 60), (60, 90)]
    # before the first cut, a change too close to the start is dropped, not merged
    assert _spans([red] * 5 + [blue] * 40) == [(0, 45)]


def test_cuts_of_a_whole_sequence_are_the_streamed_ones():
    """`cuts_of` (the people stage's per-frame changes) finds what `SceneCuts` finds."""
    import cv2

    red, blue, white = _flat((200, 40, 40)), _flat((30, 160, 220)), _flat((255, 255, 255))
    frames = [red] * 20 + [blue] * 30 + [white] * 3 + [blue] * 40
    hsv = [cv2.cvtColor(f, cv2.COLOR_RGB2HSV) for f in frames]
    changes = [0.0] + [hsv_change(a, b) for a, b in zip(hsv[:-1], hsv[1:])]
    assert cut_spans(cuts_of(changes), len(frames)) == _spans(frames) == [(0, 20), (20, 50), (50, 93)]


def test_frames_must_come_in_order_and_options_are_checked():
    cuts = SceneCuts()
    cuts.feed(0, _flat((0, 0, 0)))
    with pytest.raises(ValueError, match="in order"):
        cuts.feed(2, _flat((0, 0, 0)))
    with pytest.raises(ValueError, match="threshold"):
        SceneCuts(threshold=0)
    assert cut_spans([0, 5, 5, 12, 20], 12) == [(0, 5), (5, 12)]


@pytest.mark.parametrize("seed", range(20))
def test_merging_matches_pyscenedetect_on_random_changes(seed):
    """The min-length merge is PySceneDetect's FlashFilter (merge mode) on any sequence."""
    pytest.importorskip("scenedetect")
    from scenedetect.common import FrameTimecode
    from scenedetect.detector import FlashFilter

    rng = np.random.default_rng(seed)
    length = int(rng.integers(1, 20))
    above = rng.random(600) < rng.choice([0.02, 0.1, 0.3, 0.7])
    theirs = FlashFilter(FlashFilter.Mode.MERGE, length)
    ours = MinLengthMerge(length)
    got = [c for k, a in enumerate(above) for c in ours.step(k, bool(a))]
    want = [t.frame_num for k, a in enumerate(above)
            for t in theirs.filter(FrameTimecode(k, fps=25.0), bool(a))]
    assert got == want


@needs_samples
@pytest.mark.slow
@pytest.mark.parametrize("name", ["ageitgey__face_recognition__short_hamilton_clip.mp4",
                                  "asd_sample_2.mp4", "kugelblitz779__AzureVideoIndexer__friends.mp4"])
def test_same_cuts_as_pyscenedetect_on_the_samples(name):
    """On clips with shot cuts, at the default threshold and at a low one (many cuts and
    merges), our cuts are PySceneDetect ContentDetector's, fed the same frames."""
    pytest.importorskip("scenedetect")
    from scenedetect.common import FrameTimecode
    from scenedetect.detectors import ContentDetector

    from gestsync import media
    from gestsync.scan import pose_size

    info = media.probe(SAMPLES / name)
    thresholds = (CUT_THRESHOLD, 8.0)
    ours = [SceneCuts(t) for t in thresholds]
    theirs = [ContentDetector(threshold=t, min_scene_len=MIN_SCENE_FRAMES) for t in thresholds]
    found: list[list[int]] = [[] for _ in thresholds]
    k = -1
    for k, frame in enumerate(media.iter_frames(info, size=pose_size(info))):
        bgr = np.ascontiguousarray(frame[..., ::-1])
        for mine, detector, cuts in zip(ours, theirs, found):
            mine.feed(k, frame)
            cuts += [t.frame_num for t in detector.process_frame(FrameTimecode(k, fps=25.0), bgr)]
    for mine, detector, cuts in zip(ours, theirs, found):
        cuts += [t.frame_num for t in detector.post_process(FrameTimecode(k, fps=25.0))]
        assert mine.spans() == cut_spans(cuts, k + 1)
    assert len(ours[0].spans()) > 1  # the clip has cuts at the default threshold
    assert ours[1].spans() != ours[0].spans()  # the low threshold cuts elsewhere too
