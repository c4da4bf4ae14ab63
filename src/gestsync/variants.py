"""The model variants, in one place: what each is built from and how it is fed.

- `rgb`: the published GestSync network on the masked 16:9 body crop (`crops`).
- `keypoint`: ours, on the pose keypoints that the people stage already found
  (`keypoint_model`), trainable on a CPU.

Everything that depends on the variant asks here (`of(model)` or `named(name)`): loading,
feeding the picture side for `sync`, `speaker` and `eval` (`scoring.Network` scores what it
gives), and for training (`prepared_picture`). Nothing else compares variant names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .errors import GestsyncError
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

    def clip_video(self, model, info, person, progress):
        """The picture side of a whole clip for one person (`gestsync sync`, `eval`):
        window embeddings, row s the window of frames s .. s + 24."""
        if self.reads_keypoints:
            from .keypoint_model import track_features

            progress("model (keypoints)", 0, 1)
            video = model.embed_video_clip(track_features(person, info.num_frames))
            progress("model (keypoints)", 1, 1)
            return video
        from .crops import streamed_crops

        return model.embed_video_clip(streamed_crops(info, person), progress=lambda step, done, _:
                                      progress("model (picture)", done, info.num_frames))

    def scene_video(self, model, info, tracks, progress):
        """The picture side of a scene's tracks (`gestsync speaker`): yields (track index,
        first window s, rows) until every track's windows have come, row i the window of
        frames track.start + s + i .. + 24, each as the track alone would give it. One decode
        of the scene feeds every track's crops; their windows share the network's batches
        (`model.embed_video_clips`)."""
        if self.reads_keypoints:
            from .crops import crop_boxes
            from .keypoint_model import keypoint_features

            progress("model (keypoints)", 0, 1)
            for i, track in enumerate(tracks):
                yield i, 0, model.embed_video_clip(keypoint_features(track.keypoints, crop_boxes(track)))
            progress("model (keypoints)", 1, 1)
            return
        from .crops import streamed_scene_crops
        from .people import covered_spans

        frames = sum(end - start for start, end in covered_spans(tracks))
        yield from model.embed_video_clips(
            streamed_scene_crops(info, tracks), {i: t.length for i, t in enumerate(tracks)},
            progress=lambda step, done, _: progress("model (picture)", done, frames))


    def prepared_picture(self, row: dict, first: int, stop: int) -> np.ndarray:
        """The picture side's input over frames [first, stop) of a prepared clip (a row of
        `prepare.read_manifest`), for training: uint8 `T x 270 x 480 x 3` masked crops
        (rgb), or float32 `T x 85` features of its pose keypoints (keypoint)."""
        if self.reads_keypoints:
            from .keypoint_model import keypoint_features

            with np.load(row["keypoints"], allow_pickle=False) as z:
                return keypoint_features(z["keypoints"], z["crop_boxes"])[first:stop]
        return _decoded_frames(row["video"], first, stop)


def _decoded_frames(path: str, first: int, stop: int) -> np.ndarray:
    """uint8 frames [first, stop) of a prepared clip (25 fps, numbered from 0)."""
    import av

    out = []
    with av.open(path) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i >= stop:
                break
            if i >= first:
                out.append(frame.to_ndarray(format="rgb24"))
    if len(out) != stop - first:
        raise GestsyncError(f"{path} has fewer frames than its manifest row says: re-run gestsync prepare")
    return np.stack(out)


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
