"""Sync evidence from the published GestSync model (used with --model).

Window s of the picture (frames s .. s + 24 of the person's masked crop) and window s + lag
of the sound are compared by the model's scaled cosine; that is evidence[lag, s].
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch

from . import media, people, pipeline
from .audio import log_mel
from .model import GestSyncModel
from .pose import FaceMasker
from .progress import Progress


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


def streamed_crops(info: media.MediaInfo, track: people.Track, **span) -> Iterator[np.ndarray]:
    """`masked_crops(info, track, **span)` made in a background thread (decode and face mesh
    on one core while the network runs), at most `pipeline.DEPTH` ahead: the same crops, in
    the same order."""
    return pipeline.prefetched(masked_crops(info, track, **span))


def embed_crops(model: GestSyncModel, crops: Iterator[np.ndarray], total: int,
                progress: Progress) -> torch.Tensor:
    """`embed_video_clip` of (streamed) crops, progress reported against `total` frames."""
    return model.embed_video_clip(
        crops, progress=lambda step, done, _: progress("model (picture)", done, total))


def model_evidence(model: GestSyncModel, info: media.MediaInfo, audio: np.ndarray,
                   track: people.Track, lags: np.ndarray, progress: Progress) -> np.ndarray:
    """len(lags) x T evidence (NaN where a window is missing), T = info.num_frames."""
    video = embed_crops(model, streamed_crops(info, track), info.num_frames, progress)
    with torch.inference_mode():
        sound = model.embed_audio_clip(log_mel(audio).to(model.device))
    video = torch.nn.functional.normalize(video, dim=1)
    sound = torch.nn.functional.normalize(sound, dim=1)
    scale = float(model.logits_scale.weight.detach().reshape(()))
    evidence = np.full((len(lags), info.num_frames), np.nan)
    for i, lag in enumerate(np.asarray(lags, dtype=int)):
        first, last = max(0, -lag), min(len(video), len(sound) - lag)
        if last > first:
            cos = (video[first:last] * sound[first + lag:last + lag]).sum(dim=1)
            evidence[i, first:last] = scale * cos.numpy()
    return evidence


def track_embeddings(model: GestSyncModel, info: media.MediaInfo, audio: np.ndarray,
                     track: people.Track, progress: Progress
                     ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Zero-lag window embeddings over a track's own frames (for `gestsync speaker`).

    Returns (video, sound, scale): L2-normalised float32 W x 1024 each, row s the window
    of frames track.start + s .. + 24 (picture of the masked crop; its sound), and the
    model's logit scale, so that scale * (video * sound).sum(1) is the scaled cosine.
    The keypoint variant has its own (`variants`).
    """
    crops = streamed_crops(info, track, start_frame=track.start, num_frames=track.length)
    video = embed_crops(model, crops, track.length, progress)
    span = audio[track.start * media.SAMPLES_PER_FRAME:track.end * media.SAMPLES_PER_FRAME]
    with torch.inference_mode():
        sound = model.embed_audio_clip(log_mel(span).to(model.device))
    rows = min(len(video), len(sound))
    video = torch.nn.functional.normalize(video[:rows], dim=1)
    sound = torch.nn.functional.normalize(sound[:rows], dim=1)
    return video, sound, float(model.logits_scale.weight.detach().reshape(()))
