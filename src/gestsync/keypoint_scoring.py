"""Sync evidence from the keypoint variant (`gestsync sync` / `speaker --checkpoint` with one
of our keypoint checkpoints). The picture side is the person's pose keypoints, already found by
the people stage, so nothing is decoded again.

evidence[i, s] = scaled cosine of picture window s and sound window s + lags[i].
"""

from __future__ import annotations

import numpy as np
import torch

from . import media, people
from .audio import log_mel
from .keypoint_model import KeypointSyncModel, keypoint_features
from .scan import Progress


def track_features(track: people.Track, num_frames: int) -> np.ndarray:
    """`num_frames x 85` model input for a clip: the track's keypoints in its crop boxes;
    frames outside the track count as nobody visible (zeros)."""
    index = np.clip(np.arange(num_frames) - track.start, 0, track.length - 1)
    keypoints = track.keypoints[index].copy()
    outside = (np.arange(num_frames) < track.start) | (np.arange(num_frames) >= track.end)
    keypoints[outside, :, 3] = 0.0
    return keypoint_features(keypoints, track.crop_boxes()[index])


def keypoint_evidence(model: KeypointSyncModel, info: media.MediaInfo, audio: np.ndarray,
                      track: people.Track, lags: np.ndarray, progress: Progress) -> np.ndarray:
    """len(lags) x T evidence (NaN where a window is missing), T = info.num_frames."""
    progress("model (keypoints)", 0, 1)
    video = model.embed_video_clip(track_features(track, info.num_frames))
    sound = model.embed_audio_clip(log_mel(audio).to(model.device))
    progress("model (keypoints)", 1, 1)
    return shifted_cosines(video, sound, lags, float(model.logits_scale.weight.detach().reshape(())),
                           info.num_frames)


def shifted_cosines(video: torch.Tensor, sound: torch.Tensor, lags: np.ndarray, scale: float,
                    num_frames: int) -> np.ndarray:
    """evidence[i, s] = scale * cos(video[s], sound[s + lags[i]]), NaN where either is missing."""
    video = torch.nn.functional.normalize(video.float(), dim=1)
    sound = torch.nn.functional.normalize(sound.float(), dim=1)
    evidence = np.full((len(lags), num_frames), np.nan)
    for i, lag in enumerate(np.asarray(lags, dtype=int)):
        first, last = max(0, -lag), min(len(video), len(sound) - lag)
        if last > first:
            evidence[i, first:last] = scale * (video[first:last] * sound[first + lag:last + lag]).sum(1).numpy()
    return evidence


def track_embeddings(model: KeypointSyncModel, info: media.MediaInfo, audio: np.ndarray,
                     track: people.Track, progress: Progress) -> tuple[torch.Tensor, torch.Tensor, float]:
    """As `model_scoring.track_embeddings` (for `gestsync speaker`), from the track's
    keypoints: L2-normalised W x D picture and sound embeddings over the track's own frames,
    and the logit scale."""
    progress("model (keypoints)", 0, 1)
    features = keypoint_features(track.keypoints, track.crop_boxes())
    video = model.embed_video_clip(features)
    span = audio[track.start * media.SAMPLES_PER_FRAME:track.end * media.SAMPLES_PER_FRAME]
    sound = model.embed_audio_clip(log_mel(span).to(model.device))
    progress("model (keypoints)", 1, 1)
    rows = min(len(video), len(sound))
    video = torch.nn.functional.normalize(video[:rows], dim=1)
    sound = torch.nn.functional.normalize(sound[:rows], dim=1)
    return video, sound, float(model.logits_scale.weight.detach().reshape(()))
