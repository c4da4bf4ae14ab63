"""What the published GestSync model sees: each frame's masked crop of one person.

`scoring.Network` feeds these crops to the network (through `variants`) and compares picture
and sound window embeddings; `gestsync prepare` writes the same crops as training clips.

The authors' geometry (their speaker and training crops), per frame of a person track:
`smooth_squares` turns the raw person boxes into a square (centre x, y, half side s, each
median-filtered over 13 frames), `cut_square` cuts it out of the frame padded with grey 110
and stretches it to 480 x 270, and `mask_square` hides the face on that 480 x 270 crop.
`masked_squares` streams the whole thing for a clip.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import cv2
import numpy as np
from scipy.ndimage import median_filter

from . import media, people, pipeline
from .pose import CROP_HEIGHT, CROP_WIDTH, FaceMasker, mask_face

SQUARE_SMOOTH_FRAMES = 13  # median filter over each of x, y, s (the authors' value)
PAD_GREY = 110  # the frame is padded with this grey on every side before the cut


# ------------------------------------------------------------------ authors' geometry

def smooth_squares(boxes: np.ndarray, frames: int = SQUARE_SMOOTH_FRAMES) -> np.ndarray:
    """Raw person boxes of one track -> the squares the authors cut, smoothed over time.

    For each box the centre (x, y) and s = half of its longer side, each median-filtered
    over `frames` frames with zeros beyond both ends of the track (as
    `scipy.signal.medfilt`, which the authors' numbers match exactly: the first and last
    six squares lean to the smaller values nearby, the very first and last being the
    smallest of seven frames).

    Args:
        boxes: (T, 4) x0, y0, x1, y1 in source pixels, consecutive frames (gaps filled).
    Returns:
        float64 (T, 3): x, y, s in source pixels.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    wh = boxes[:, 2:] - boxes[:, :2]
    raw = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2,
                    wh.max(axis=1) / 2], axis=1)
    if len(raw) == 0:
        return raw
    return median_filter(raw, size=(frames, 1), mode="constant", cval=0.0)


def square_boxes(squares: np.ndarray, frame_size: tuple[int, int] | None = None) -> np.ndarray:
    """The pixels `cut_square` takes for each square: int64 (..., 4) x0, y0, x1, y1.

    x0 = floor(x - s), x1 = floor(x + s) (and alike for y): the authors truncate the
    square's edges in the padded frame, whose offset int(s) is a whole number. The box may
    extend past the frame (that part is grey); given `frame_size` (width, height), it is
    clipped to the padded frame, int(s) beyond each edge, as their slicing does.
    """
    sq = np.asarray(squares, np.float64)
    x, y, s = sq[..., 0], sq[..., 1], sq[..., 2]
    box = np.floor(np.stack([x - s, y - s, x + s, y + s], axis=-1))
    if frame_size is not None:
        pad = np.trunc(s)[..., None]
        low = -pad
        high = np.asarray(frame_size, np.float64)[[0, 1, 0, 1]] + pad
        box = np.clip(box, low, high)
    box[..., 2:] = np.maximum(box[..., 2:], box[..., :2] + 1)  # at least one pixel
    return box.astype(np.int64)


def cut_square(frame_rgb: np.ndarray, square: np.ndarray) -> np.ndarray:
    """The authors' crop of one frame: uint8 270 x 480 x 3, not masked.

    The `square_boxes` box of `square` (x, y, s in pixels of `frame_rgb`) is cut out,
    grey PAD_GREY where it lies outside the frame, and resized (bilinear, cv2's default,
    which matches their crops best) to 480 x 270, stretching the square 16:9. Only the
    box is copied: the same pixels as padding the whole frame first.
    """
    h, w = frame_rgb.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in square_boxes(square, (w, h)))
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        grey = (PAD_GREY,) * frame_rgb.shape[2]
        piece = cv2.copyMakeBorder(frame_rgb[sy0:sy1, sx0:sx1], sy0 - y0, y1 - sy1,
                                   sx0 - x0, x1 - sx1, cv2.BORDER_CONSTANT, value=grey)
    else:
        piece = np.full((y1 - y0, x1 - x0) + frame_rgb.shape[2:], PAD_GREY, frame_rgb.dtype)
    return cv2.resize(piece, (CROP_WIDTH, CROP_HEIGHT), interpolation=cv2.INTER_LINEAR)


def mask_square(crop: np.ndarray, masker: FaceMasker) -> np.ndarray:
    """Hide the face on a 480 x 270 crop (`cut_square`) as the authors did: black rows
    0 .. int(y_chin) + 15 where the face mesh finds the face on the whole crop, else rows
    0 .. 110. (Pointing the mesh at the head that the pose landmarks give matched their
    masks less well: on asd_sample_2 it was within 2 rows of theirs on 175 of 346 frames,
    against 231, and it finds "faces" on people seen from behind.)"""
    return mask_face(crop, masker.chin_y(crop))


def masked_squares(info: media.MediaInfo, squares: np.ndarray, first_frame: int,
                   start_frame: int = 0, num_frames: int | None = None,
                   masker: FaceMasker | None = None) -> Iterator[np.ndarray]:
    """The model's input for every 25 fps frame (or num_frames from start_frame) in the
    authors' geometry: uint8 270 x 480 x 3 per frame, face hidden.

    Args:
        squares: (T, 3) x, y, s (`smooth_squares`) of frames first_frame .. first_frame+T-1;
            frames outside them reuse the nearest square.
        masker: a FaceMasker used and left open (one per track); None opens one.
    """
    squares = np.asarray(squares, np.float64)
    if squares.ndim != 2 or squares.shape[1] != 3 or len(squares) == 0:
        raise ValueError(f"squares must be (T, 3) with T >= 1, got {squares.shape}")
    with contextlib.nullcontext(masker) if masker is not None else FaceMasker() as faces:
        for k, frame in enumerate(media.iter_frames(info, start_frame=start_frame,
                                                    num_frames=num_frames)):
            i = int(np.clip(start_frame + k - first_frame, 0, len(squares) - 1))
            yield mask_square(cut_square(frame, squares[i]), faces)


# ---------------------------------------------------------------------------- tracks

def crop_boxes(track: people.Track) -> np.ndarray:
    """int64 (T, 4) the square cut on each frame of a track, in source pixels (it may
    extend past the frame: that part is grey)."""
    return square_boxes(smooth_squares(track.boxes), track.frame_size)


def masked_crops(info: media.MediaInfo, track: people.Track, start_frame: int = 0,
                 num_frames: int | None = None, masker: FaceMasker | None = None
                 ) -> Iterator[np.ndarray]:
    """The model's input for every 25 fps frame (or num_frames from start_frame): the
    person's square crop in the authors' geometry, face hidden, uint8 270 x 480 x 3
    (`masked_squares`). `gestsync prepare` writes the same crops as training clips. A given
    `masker` (one per track) is used and left open, e.g. to read its `faces_found`."""
    return masked_squares(info, smooth_squares(track.boxes), track.start, start_frame,
                          num_frames, masker)


def scene_crops(info: media.MediaInfo, tracks: list[people.Track]) -> Iterator[dict[int, np.ndarray]]:
    """The model's input for every person of a scene from one decode: for each frame that
    some track covers, in order, {track index: its masked crop}, the crops of `masked_crops`
    (one FaceMasker per track, open while the track lasts). Frames no track covers are
    skipped (decoding resumes at the next track's start)."""
    squares = [smooth_squares(t.boxes) for t in tracks]
    maskers: dict[int, FaceMasker] = {}
    try:
        for start, end in people.covered_spans(tracks):
            for k, frame in enumerate(media.iter_frames(info, start_frame=start,
                                                        num_frames=end - start), start):
                on = [i for i, t in enumerate(tracks) if t.start <= k < t.end]
                for i in set(maskers) - set(on):
                    maskers.pop(i).close()
                for i in set(on) - set(maskers):
                    maskers[i] = FaceMasker()
                yield {i: mask_square(cut_square(frame, squares[i][k - tracks[i].start]), maskers[i])
                       for i in on}
    finally:
        for masker in maskers.values():
            masker.close()


def streamed_scene_crops(info: media.MediaInfo, tracks: list[people.Track]
                         ) -> Iterator[dict[int, np.ndarray]]:
    """`scene_crops` made in a background thread (as `streamed_crops`)."""
    return pipeline.prefetched(scene_crops(info, tracks))


def streamed_crops(info: media.MediaInfo, track: people.Track, start_frame: int = 0,
                   num_frames: int | None = None) -> Iterator[np.ndarray]:
    """`masked_crops` made in a background thread (decode and face mesh on one core while
    the network runs), at most `pipeline.DEPTH` ahead: the same crops, in the same order."""
    return pipeline.prefetched(masked_crops(info, track, start_frame, num_frames))
