"""Shot cuts: a content detector fed with frames we already decode.

`SceneCuts` takes the 25 fps frames of the people stage one by one (no second decode)
and, at the end, returns the scenes as [start, end) frame spans covering the clip.

It finds the cuts that PySceneDetect's `ContentDetector` finds with its defaults (mean
hue, saturation and value change between consecutive frames, edges off; cuts closer than
the shortest scene merged), written here so that a plain `pip install gestsync` needs no
scenedetect, whose declared opencv-python would sit beside mediapipe's
opencv-contrib-python in the same `cv2` folder. tests/test_scenes.py checks that both give
the same cuts on the sample clips and the same merging on random score sequences.
"""

from __future__ import annotations

import numpy as np

CUT_THRESHOLD = 27.0  # mean HSV change (0-255) that marks a cut (PySceneDetect's default)
MIN_SCENE_FRAMES = 15  # 0.6 s: the shortest scene (PySceneDetect's default; flashes merge)


def hsv_change(previous: np.ndarray, current: np.ndarray) -> float:
    """Mean absolute change of hue, saturation and value between two uint8 HSV frames
    (H x W x 3, OpenCV's ranges), averaged over the three channels."""
    pixels = float(previous.shape[0] * previous.shape[1])
    import cv2

    # per channel: the integer sum of |a - b| over the frame, then the mean per pixel
    sums = cv2.sumElems(cv2.absdiff(previous, current))
    hue, sat, val = (sums[c] / pixels for c in range(3))
    return (hue + sat + val) / 3.0


class MinLengthMerge:
    """Turns "frame k changed more than the threshold" into cuts, keeping scenes at least
    `length` frames long: a burst of changes closer together than that (a flash, a fast
    wipe) gives one cut at its last frame, once `length` calm frames follow it, and only
    after a first regular cut; before that, too-close changes are dropped.

    `step(k, above)` for k = 0, 1, 2, ... returns the cuts decided at frame k (0 or 1).
    """

    def __init__(self, length: int):
        self.length = length
        self.last_above: int | None = None  # the latest frame over the threshold
        self.burst_start: int | None = None  # first frame of the burst being merged
        self.had_cut = False

    def step(self, k: int, above: bool) -> list[int]:
        if self.length <= 0:
            return [k] if above else []
        if self.last_above is None:
            self.last_above = k  # counting starts at the first frame
        far_enough = k - self.last_above >= self.length
        if above:
            self.last_above = k
        if self.burst_start is not None:  # merging: wait for `length` calm frames
            if (far_enough and not above
                    and self.last_above - self.burst_start >= self.length):
                self.burst_start = None
                return [self.last_above]
            return []
        if not above:
            return []
        if far_enough:
            self.had_cut = True
            return [k]
        if self.had_cut:
            self.burst_start = k
        return []


class SceneCuts:
    """Streaming shot-cut detector.

    Call `feed(k, rgb)` for frames k = 0, 1, 2, ... in order (any resolution; the
    detector compares hue, saturation and value of consecutive frames), then `spans(n)`.

    Args:
        threshold: mean HSV change above which two consecutive frames are a cut (higher:
            fewer cuts).
        min_scene_frames: cuts closer together than this are merged.
    """

    def __init__(self, threshold: float = CUT_THRESHOLD, min_scene_frames: int = MIN_SCENE_FRAMES):
        if threshold <= 0 or min_scene_frames < 1:
            raise ValueError(f"need a scene threshold > 0 and min_scene_frames >= 1, got "
                             f"{threshold} and {min_scene_frames}")
        self.threshold = threshold
        self._merge = MinLengthMerge(min_scene_frames)
        self._cuts: list[int] = []
        self._last = -1
        self._previous: np.ndarray | None = None

    def feed(self, k: int, rgb: np.ndarray) -> None:
        """Frame k (uint8 H x W x 3 RGB) of the 25 fps grid; k must follow the last one."""
        if k != self._last + 1:
            raise ValueError(f"frames must come in order: {k} after {self._last}")
        import cv2

        self._last = k
        hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)
        change = 0.0 if self._previous is None else hsv_change(self._previous, hsv)
        self._previous = hsv
        self._cuts += self._merge.step(k, change >= self.threshold)

    def spans(self, num_frames: int | None = None) -> list[tuple[int, int]]:
        """Scenes as [start, end) frame spans, in order, covering frames 0 .. num_frames
        (default: every frame fed). A burst still being merged at the end gives no cut."""
        end = self._last + 1 if num_frames is None else num_frames
        return cut_spans(self._cuts, end)


def cuts_of(changes, threshold: float = CUT_THRESHOLD,
            min_scene_frames: int = MIN_SCENE_FRAMES) -> list[int]:
    """The cuts `SceneCuts` finds from a whole sequence of per-frame `hsv_change` values
    (frame k's change since frame k - 1)."""
    merge = MinLengthMerge(min_scene_frames)
    return [c for k, change in enumerate(changes) for c in merge.step(k, change >= threshold)]


def cut_spans(cuts: list[int], num_frames: int) -> list[tuple[int, int]]:
    """[start, end) spans between sorted cut frames (a cut starts a new scene)."""
    inner = sorted({int(c) for c in cuts if 0 < c < num_frames})
    bounds = [0] + inner + [num_frames]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
