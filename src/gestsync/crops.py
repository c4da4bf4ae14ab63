"""What the published GestSync model sees: each frame's masked 16:9 crop of one person.

`scoring.Network` feeds these crops to the network (through `variants`) and compares picture
and sound window embeddings; `gestsync prepare` writes the same crops as training clips.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

from . import media, people, pipeline
from .pose import FaceMasker


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
