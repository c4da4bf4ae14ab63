"""Shot cuts: PySceneDetect's content detector fed with frames we already decode.

`SceneCuts` takes the 25 fps frames of the people stage one by one (no second decode)
and, at the end, returns the scenes as [start, end) frame spans covering the clip.
"""

from __future__ import annotations

import numpy as np
from .timebase import FPS

CUT_THRESHOLD = 27.0  # PySceneDetect's default: mean HSV change (0-255) that marks a cut
MIN_SCENE_FRAMES = 15  # 0.6 s: PySceneDetect's default shortest scene (flashes merge)


class SceneCuts:
    """Streaming shot-cut detector (PySceneDetect ContentDetector).

    Call `feed(k, rgb)` for frames k = 0, 1, 2, ... in order (any resolution; the
    detector compares hue, saturation and luma of consecutive frames), then `spans(n)`.

    Args:
        threshold: score above which two consecutive frames are a cut (higher: fewer cuts).
        min_scene_frames: cuts closer together than this are merged.
    """

    def __init__(self, threshold: float = CUT_THRESHOLD, min_scene_frames: int = MIN_SCENE_FRAMES):
        if threshold <= 0 or min_scene_frames < 1:
            raise ValueError(f"need a scene threshold > 0 and min_scene_frames >= 1, got "
                             f"{threshold} and {min_scene_frames}")
        from scenedetect.detectors import ContentDetector

        self._detector = ContentDetector(threshold=threshold, min_scene_len=min_scene_frames)
        self._cuts: list[int] = []
        self._last = -1

    def feed(self, k: int, rgb: np.ndarray) -> None:
        """Frame k (uint8 H x W x 3 RGB) of the 25 fps grid; k must follow the last one."""
        if k != self._last + 1:
            raise ValueError(f"frames must come in order: {k} after {self._last}")
        self._last = k
        bgr = np.ascontiguousarray(rgb[..., ::-1])  # the detector converts from BGR
        self._cuts += [t.frame_num for t in self._detector.process_frame(self._timecode(k), bgr)]

    def spans(self, num_frames: int | None = None) -> list[tuple[int, int]]:
        """Scenes as [start, end) frame spans, in order, covering frames 0 .. num_frames
        (default: every frame fed)."""
        end = self._last + 1 if num_frames is None else num_frames
        if self._last >= 0:
            self._cuts += [t.frame_num for t in self._detector.post_process(self._timecode(self._last))]
        return cut_spans(self._cuts, end)

    @staticmethod
    def _timecode(k: int):
        from scenedetect.common import FrameTimecode

        return FrameTimecode(k, fps=float(FPS))


def cut_spans(cuts: list[int], num_frames: int) -> list[tuple[int, int]]:
    """[start, end) spans between sorted cut frames (a cut starts a new scene)."""
    inner = sorted({int(c) for c in cuts if 0 < c < num_frames})
    bounds = [0] + inner + [num_frames]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
