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
from .pose import CROP_HEIGHT, CROP_WIDTH, FaceMasker, head_box, mask_face

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


def crop_head_box(keypoints: np.ndarray, box: np.ndarray) -> np.ndarray:
    """`pose.head_box` of (33, 4) frame-pixel keypoints, in pixels of the 480 x 270 crop of
    `box` (a `square_boxes` row): a square there, centred on the head, as wide as the
    head's square is once stretched by the crop (its larger side)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    scale = np.array([CROP_WIDTH / (x1 - x0), CROP_HEIGHT / (y1 - y0)])
    head = head_box(keypoints).astype(np.float64)
    centre = ((head[:2] + head[2:]) / 2 - (x0, y0)) * scale
    half = float(((head[2:] - head[:2]) * scale).max()) / 2
    return np.concatenate([centre - half, centre + half]).astype(np.float32)


def mask_square(crop: np.ndarray, masker: FaceMasker, head: np.ndarray | None = None
                ) -> np.ndarray:
    """Hide the face on a 480 x 270 crop (`cut_square`) as the authors did: black rows
    0 .. int(y_chin) + 15 where the face mesh finds the face on the crop, else rows
    0 .. 110. `head` (`crop_head_box`) makes the face mesh look only there."""
    return mask_face(crop, masker.chin_y(crop, head))


def masked_squares(info: media.MediaInfo, squares: np.ndarray, first_frame: int,
                   keypoints: np.ndarray | None = None, start_frame: int = 0,
                   num_frames: int | None = None, masker: FaceMasker | None = None
                   ) -> Iterator[np.ndarray]:
    """The model's input for every 25 fps frame (or num_frames from start_frame) in the
    authors' geometry: uint8 270 x 480 x 3 per frame, face hidden.

    Args:
        squares: (T, 3) x, y, s (`smooth_squares`) of frames first_frame .. first_frame+T-1;
            frames outside them reuse the nearest square.
        keypoints: optional (T, 33, 4) pose landmarks (frame pixels) of the same frames,
            to point the face mesh at the head (`crop_head_box`); None: the whole crop.
        masker: a FaceMasker used and left open (one per track); None opens one.
    """
    squares = np.asarray(squares, np.float64)
    if squares.ndim != 2 or squares.shape[1] != 3 or len(squares) == 0:
        raise ValueError(f"squares must be (T, 3) with T >= 1, got {squares.shape}")
    boxes = square_boxes(squares, (info.width, info.height))
    with contextlib.nullcontext(masker) if masker is not None else FaceMasker() as faces:
        for k, frame in enumerate(media.iter_frames(info, start_frame=start_frame,
                                                    num_frames=num_frames)):
            i = int(np.clip(start_frame + k - first_frame, 0, len(squares) - 1))
            head = None if keypoints is None else crop_head_box(keypoints[i], boxes[i])
            yield mask_square(cut_square(frame, squares[i]), faces, head)


# ----------------------------------------------------------------- current geometry

def masked_crops(info: media.MediaInfo, track: people.Track, start_frame: int = 0,
                 num_frames: int | None = None, masker: FaceMasker | None = None
                 ) -> Iterator[np.ndarray]:
    """The model's input for every 25 fps frame (or num_frames from start_frame): the
    person's 16:9 crop, face hidden, uint8 270 x 480 x 3. Frames outside the track reuse
    its nearest box. `gestsync prepare` writes the same crops as training clips. A given
    `masker` (one per track) is used and left open, e.g. to read its `faces_found`."""
    boxes = track.crop_boxes()
    with contextlib.nullcontext(masker) if masker is not None else FaceMasker() as faces:
        for k, frame in enumerate(media.iter_frames(info, start_frame=start_frame,
                                                    num_frames=num_frames)):
            i = int(np.clip(start_frame + k - track.start, 0, track.length - 1))
            keypoints = track.keypoints[i]  # interpolated where not detected: still a head box
            yield faces.masked_crop(frame, boxes[i], keypoints)


def streamed_crops(info: media.MediaInfo, track: people.Track, start_frame: int = 0,
                   num_frames: int | None = None) -> Iterator[np.ndarray]:
    """`masked_crops` made in a background thread (decode and face mesh on one core while
    the network runs), at most `pipeline.DEPTH` ahead: the same crops, in the same order."""
    return pipeline.prefetched(masked_crops(info, track, start_frame, num_frames))
