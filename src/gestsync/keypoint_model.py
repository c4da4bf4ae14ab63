"""A light GestSync variant on body keypoints instead of pixels, small enough to train on a CPU.

The paper also compares keypoint inputs. Here the picture side of a 25-frame window is the
track's upper-body pose keypoints (MediaPipe, `people.Track.keypoints`) in the coordinates
of the person's 16:9 crop, so it sees what the RGB model sees, minus the pixels:
head (nose, eyes, ears; never the mouth), shoulders, elbows, wrists and hand points, with
their frame-to-frame motion. Sound: the same log-mel windows as the RGB model.

Video: `B x 25 x F` features (`keypoint_features`) -> temporal conv stack (the first conv
spans 5 frames without padding, like the RGB model's) -> 21 steps, flattened in order ->
linear -> `B x embed_dim`. Audio: `B x 1 x 80 x 100` log-mel -> conv stack down to one step
per video frame (25) -> mean over frequency -> flattened in order -> linear. Keeping the
order (no pooling over time) lets a window's embedding say *when* its gestures and
syllables happen, which is what tells windows of one clip apart.
Similarity: scaled cosine, scale learnt (`logits_scale.weight`, starts at 1).
GroupNorm rather than BatchNorm: results do not depend on how a batch is split over
processes, and one window behaves the same in training and in use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .audio import MEL_WINDOW, N_MELS, WINDOW_FRAMES, num_windows
from .audio import mel_windows as _cut_mel_windows
from .crops import crop_boxes
from .model import config_from_dict

KEYPOINT_VARIANT = "keypoint"
# BlazePose ids: nose, eyes, ears (head motion; mouth 9, 10 left out: body gestures only),
# shoulders 11, 12, elbows 13, 14, wrists 15, 16, pinkies, index fingers, thumbs 17-22.
JOINTS = (0, 2, 5, 7, 8) + tuple(range(11, 23))
MIN_VISIBILITY = 0.5  # landmarks less visible than this are zeroed (with their flag)
FEATURES_PER_JOINT = 5  # x, y in crop heights, dx, dy per frame, visible flag
NUM_FEATURES = len(JOINTS) * FEATURES_PER_JOINT  # 85
TEMPORAL_KERNEL = 5  # first conv spans 5 frames, no padding (as the RGB model's conv1)
GROUPS = 8  # GroupNorm groups
# (frequency, time) strides of the audio convs: 80 x 100 -> 5 x 25, one step per video frame
AUDIO_STRIDES = ((2, 2), (2, 2), (2, 1), (2, 1))


@dataclass(frozen=True)
class KeypointModelConfig:
    """Architecture of the keypoint variant (stored in our checkpoints)."""

    variant: str = KEYPOINT_VARIANT
    window_frames: int = WINDOW_FRAMES  # 25 frames per window, as the RGB model
    hidden: int = 128  # channels of both conv stacks
    layers: int = 3  # temporal conv layers after the first
    embed_dim: int = 256
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.variant != KEYPOINT_VARIANT:
            raise ValueError(f"KeypointModelConfig is for variant {KEYPOINT_VARIANT!r}, got {self.variant!r}")
        if self.window_frames != WINDOW_FRAMES:
            raise ValueError(f"window_frames must be {WINDOW_FRAMES}: the audio windows are 1 s")
        if self.hidden < GROUPS or self.hidden % GROUPS or self.layers < 0 or self.embed_dim < 1:
            raise ValueError(f"need hidden a multiple of {GROUPS}, layers >= 0, embed_dim >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> KeypointModelConfig:
        return config_from_dict(cls, values)


def keypoint_features(keypoints: np.ndarray, crop_boxes: np.ndarray) -> np.ndarray:
    """Per-frame model input from pose keypoints.

    Args:
        keypoints: T x 33 x 4 (x, y in source pixels, z, visibility); NaN rows allowed.
        crop_boxes: T x 4 int x0, y0, x1, y1 of the person's square crop (`crops.crop_boxes`).
    Returns:
        float32 T x 85: per joint of JOINTS, x and y relative to the crop's top-left corner
        in crop heights, their change since the previous frame, and a visible flag;
        all five are 0 where the joint is not visible.
    """
    kp = np.asarray(keypoints, np.float64)[:, JOINTS]
    boxes = np.asarray(crop_boxes, np.float64)
    height = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)[:, None, None]
    xy = (kp[..., :2] - boxes[:, None, :2]) / height  # T x J x 2
    seen = np.nan_to_num(kp[..., 3]) >= MIN_VISIBILITY
    seen &= np.isfinite(xy).all(-1)
    xy = np.where(seen[..., None], xy, 0.0)
    motion = np.diff(xy, axis=0, prepend=xy[:1])
    motion[1:] *= (seen[1:] & seen[:-1])[..., None]
    out = np.concatenate([xy, motion, seen[..., None]], axis=-1)  # T x J x 5
    return out.reshape(len(kp), NUM_FEATURES).astype(np.float32)


def _conv1d(cin: int, cout: int, kernel: int, padding: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, cout, kernel, padding=padding), nn.GroupNorm(GROUPS, cout), nn.ReLU())


def _conv2d(cin: int, cout: int, stride: tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(GROUPS, cout), nn.ReLU())


class KeypointSyncModel(nn.Module):
    """Keypoint-vector GestSync: `embed_video` on `B x 25 x 85` keypoint windows, `embed_audio`
    on `B x 1 x 80 x 100` log-mel windows, `similarity` the scaled cosine.

    Same interface as `GestSyncModel` where it matters for training and scoring:
    `forward(video, audio) -> (B x D, B' x D)`, `embed_audio_clip`, `logits_scale`.
    """

    def __init__(self, config: KeypointModelConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or KeypointModelConfig()
        self.net_vid = nn.Sequential(
            _conv1d(NUM_FEATURES, c.hidden, TEMPORAL_KERNEL, 0),
            *[_conv1d(c.hidden, c.hidden, 3, 1) for _ in range(c.layers)])
        steps = c.window_frames - TEMPORAL_KERNEL + 1  # 21
        self.ff_vid = nn.Sequential(nn.Flatten(), nn.Dropout(c.dropout), nn.Linear(c.hidden * steps, c.embed_dim))
        widths = (32, 64, c.hidden, c.hidden)
        self.net_aud = nn.Sequential(*[
            _conv2d(cin, cout, stride) for cin, cout, stride in zip((1,) + widths[:-1], widths, AUDIO_STRIDES)])
        self.ff_aud = nn.Sequential(nn.Flatten(), nn.Dropout(c.dropout),
                                    nn.Linear(c.hidden * c.window_frames, c.embed_dim))
        self.logits_scale = nn.Linear(1, 1, bias=False)
        nn.init.ones_(self.logits_scale.weight)

    @property
    def device(self) -> torch.device:
        return self.logits_scale.weight.device

    def embed_video(self, windows: torch.Tensor) -> torch.Tensor:
        """`B x 25 x 85` keypoint features (`keypoint_features`) -> `B x embed_dim`."""
        want = (self.config.window_frames, NUM_FEATURES)
        if windows.ndim != 3 or tuple(windows.shape[1:]) != want:
            raise ValueError(f"expected keypoint windows B x {want[0]} x {want[1]}, got {tuple(windows.shape)}")
        x = self.net_vid(windows.to(self.device, torch.float32).transpose(1, 2))  # B x H x 21
        return self.ff_vid(x)

    def embed_audio(self, mel_windows: torch.Tensor) -> torch.Tensor:
        """`B x 1 x 80 x 100` log-mel windows -> `B x embed_dim`."""
        expected = (1, N_MELS, MEL_WINDOW)
        if mel_windows.ndim != 4 or tuple(mel_windows.shape[1:]) != expected:
            raise ValueError(f"expected B x 1 x {N_MELS} x {MEL_WINDOW} log-mel windows, got {tuple(mel_windows.shape)}")
        x = self.net_aud(mel_windows.to(self.device, torch.float32))
        return self.ff_aud(x.mean(dim=2))  # B x H x 25 (frequency pooled)

    def similarity(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Scaled cosine along the last axis (broadcast)."""
        cos = F.cosine_similarity(video.to(self.device), audio.to(self.device), dim=-1)
        return cos * self.logits_scale.weight.reshape(())

    def forward(self, windows: torch.Tensor, mel_windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embed_video(windows), self.embed_audio(mel_windows)

    @torch.no_grad()
    def embed_video_clip(self, features: torch.Tensor | np.ndarray, batch: int = 256) -> torch.Tensor:
        """Embedding of the window starting at every frame: `T x 85` -> `(T - 24) x D`, CPU float32."""
        features = torch.as_tensor(np.asarray(features, np.float32))
        n = features.shape[0] - self.config.window_frames + 1
        if features.ndim != 2 or n < 1:
            raise ValueError(f"expected T x {NUM_FEATURES} features with T >= {self.config.window_frames}, "
                             f"got {tuple(features.shape)}")
        windows = features.unfold(0, self.config.window_frames, 1).transpose(1, 2)  # n x 25 x 85
        return torch.cat([self.embed_video(windows[s:s + batch]).float().cpu() for s in range(0, n, batch)])

    @torch.no_grad()
    def embed_audio_clip(self, mel: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """Audio embedding under every video frame: `T x 80` log-mel -> `W x D`, CPU float32."""
        n = num_windows(mel.shape[0]) if mel.ndim == 2 else 0
        if n < 1:
            raise ValueError(f"expected T x {N_MELS} log-mel features with T >= {MEL_WINDOW}, got {tuple(mel.shape)}")
        return torch.cat([self.embed_audio(_cut_mel_windows(mel, range(s, min(s + batch, n)))).float().cpu()
                          for s in range(0, n, batch)])


def track_features(track, num_frames: int) -> np.ndarray:
    """`num_frames x 85` model input for a clip from a `people.Track`: its keypoints in its
    crop boxes; frames outside the track count as nobody visible (zeros)."""
    index = np.clip(np.arange(num_frames) - track.start, 0, track.length - 1)
    keypoints = track.keypoints[index].copy()
    outside = (np.arange(num_frames) < track.start) | (np.arange(num_frames) >= track.end)
    keypoints[outside, :, 3] = 0.0
    return keypoint_features(keypoints, crop_boxes(track)[index])
