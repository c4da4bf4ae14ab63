"""The model variants, in one place: what each is built from and how it is fed.

- `rgb`: the published GestSync network on the masked 16:9 body crop (`model_scoring`).
- `keypoint`: ours, on the pose keypoints that the people stage already found
  (`keypoint_scoring`), trainable on a CPU.

Everything that depends on the variant asks here (`of(model)` or `named(name)`): loading,
scoring for `sync`, `speaker` and `eval`, and training. Nothing else compares variant names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .keypoint_model import KEYPOINT_VARIANT, KeypointModelConfig, KeypointSyncModel
from .model import GestSyncModel, ModelConfig

RGB = "rgb"


@dataclass(frozen=True)
class Variant:
    """One variant: its config and network classes and the facts that change how it is fed."""

    name: str
    config: type  # ModelConfig-like: from_dict, to_dict
    network: Callable[[Any], Any]
    published: bool  # the authors' architecture: `gestsync-rgb` and `--init model_rgb.pth`
    reads_keypoints: bool  # its picture side reads pose keypoints, not the masked crop
    batch_norm: bool  # has batch-norm layers (SyncBatchNorm across GPUs when training)

    def offset_evidence(self, model, info, audio, person, lags, progress):
        """len(lags) x T evidence of one person at every lag (`gestsync sync`)."""
        if self.reads_keypoints:
            from .keypoint_scoring import keypoint_evidence

            return keypoint_evidence(model, info, audio, person, lags, progress)
        from .model_scoring import model_evidence

        return model_evidence(model, info, audio, person, lags, progress)

    def track_embeddings(self, model, info, audio, track, progress):
        """Zero-lag window embeddings over a track's frames (`gestsync speaker`)."""
        if self.reads_keypoints:
            from .keypoint_scoring import track_embeddings

            return track_embeddings(model, info, audio, track, progress)
        from .model_scoring import track_embeddings

        return track_embeddings(model, info, audio, track, progress)

    def clip_video(self, model, info, person, progress):
        """The picture side of a whole clip for one person: W x D window embeddings."""
        if self.reads_keypoints:
            from .keypoint_scoring import track_features

            return model.embed_video_clip(track_features(person, info.num_frames))
        from .model_scoring import masked_crops

        return model.embed_video_clip(masked_crops(info, person), progress=lambda step, done, total:
                                      progress("model (picture)", done, total or info.num_frames))


VARIANTS = {
    RGB: Variant(RGB, ModelConfig, GestSyncModel, published=True, reads_keypoints=False,
                 batch_norm=True),
    KEYPOINT_VARIANT: Variant(KEYPOINT_VARIANT, KeypointModelConfig, KeypointSyncModel,
                              published=False, reads_keypoints=True, batch_norm=False),
}


def named(name: str) -> Variant:
    """The variant called `name`; ValueError naming the known ones otherwise."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown model variant {name!r}: known are {', '.join(VARIANTS)}") from None


def of(model) -> Variant:
    """The variant of a loaded model (or of a config)."""
    config = getattr(model, "config", model)
    return named(getattr(config, "variant", RGB))
