"""`<name>_speakers.mp4`: the original video and sound with every tracked person boxed and
the speaker highlighted and labelled with the score (`media.write_redrawn` re-encodes the
picture at its own rate and size and keeps the sound).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from . import media
from .progress import Progress, progress_hook

if TYPE_CHECKING:
    from .results import SpeakerResult

SPEAKER_RGB = (40, 220, 60)  # green box for the speaker
OTHER_RGB = (235, 235, 235)  # light grey boxes for everyone else
LINE_FRACTION = 1 / 360  # box line width per pixel of frame height (2 px at 720p)
FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_FRACTION = 1 / 1200  # font scale per pixel of frame height (0.6 at 720p)


def _labels(result: SpeakerResult) -> dict[int, str]:
    """Short text per track id: its id and score (z in brackets)."""
    out = {}
    for t in result.tracks:
        score = "n/a" if t.score is None else f"{t.score:+.2f}"
        z = "" if t.z is None else f" (z {t.z:+.1f})"
        out[t.id] = f"#{t.id} {score}{z}"
    return out


def speaker_label(label: str, score: float | None, per_frame: bool, unsure: bool = False) -> str:
    """The named speaker's label: "SPEAKING?" for a scene's answer that is unsure
    (`SceneSpeakers.unsure`). Its numbers are the whole track's, so a score of 0 or less on
    the speaker says why: with per-frame decisions the person speaks at this moment (the
    track as a whole scored low); otherwise the scene's people all scored low and this one
    least so."""
    head = "SPEAKING?" if unsure and not per_frame else "SPEAKING"
    if score is None or score > 0:
        return f"{head} {label}"
    if per_frame:
        return f"{head} now {label} over the whole track"
    return f"{head} {label}, best of low scores"


def draw(rgb: np.ndarray, k: int, result: SpeakerResult, labels: dict[int, str]) -> None:
    """Draw, in place on upright uint8 RGB `rgb`, the boxes of 25 fps frame k: every box
    first, then the labels, each at its box's top left or, where an earlier label is in
    the way, just below that label."""
    h = rgb.shape[0]
    width = max(1, round(h * LINE_FRACTION))
    scale = max(0.35, h * FONT_FRACTION)
    speaker = result.speaker_at(k)
    unsure = any(s.unsure for s in result.scenes if s.start_frame <= k < s.end_frame)
    present = [t for t in result.tracks if t.start_frame <= k < t.end_frame]
    placed: list[tuple[int, int, int, int]] = []
    for t in present:
        x0, y0, x1, y1 = t.boxes[k - t.start_frame]
        speaking = t.id == speaker
        cv2.rectangle(rgb, (x0, y0), (x1, y1), SPEAKER_RGB if speaking else OTHER_RGB,
                      width * (3 if speaking else 1))
    for t in present:
        x0, y0 = t.boxes[k - t.start_frame][:2]
        speaking = t.id == speaker
        text = (speaker_label(labels[t.id], t.score, result.per_frame, unsure) if speaking
                else labels[t.id])
        (tw, th), base = cv2.getTextSize(text, FONT, scale, width)
        box = _free_place(x0, max(y0, th + base + 2) - th - base - 2, tw + 4, th + base + 2, placed)
        placed.append(box)
        bx, by, bw, bh = box
        cv2.rectangle(rgb, (bx, by), (bx + bw, by + bh), SPEAKER_RGB if speaking else OTHER_RGB, -1)
        cv2.putText(rgb, text, (bx + 2, by + bh - base), FONT, scale, (0, 0, 0), width, cv2.LINE_AA)


def _free_place(x: int, y: int, w: int, h: int, placed: list[tuple[int, int, int, int]]
                ) -> tuple[int, int, int, int]:
    """(x, y', w, h): the label rectangle moved down, a label's height at a time, until it
    overlaps none of `placed`."""
    def overlaps(y):
        return any(x < px + pw and px < x + w and y < py + ph and py < y + h
                   for px, py, pw, ph in placed)

    while overlaps(y):
        y += h
    return x, y, w, h


def write_speaker_video(info: media.MediaInfo, result: SpeakerResult, out_path: Path,
                        progress: Progress | None = None) -> Path:
    """Write the annotated copy of `info`'s clip to out_path (.mp4, H.264 + sound)."""
    labels = _labels(result)
    return media.write_redrawn(info, out_path, lambda k, rgb: draw(rgb, k, result, labels),
                               progress_hook(progress))
