"""`Syncer`: a model loaded once, for many videos (the CLI's folder runs, the web demo's
jobs and the corpus workers keep one each)."""

from __future__ import annotations

import os

from . import models
from .results import OffsetResult, SpeakerResult
from .speaker import find_speakers
from .sync import find_offset


MODEL_OPTIONS = ("model", "device", "precision")  # what a Syncer is made with


def split_options(options: dict) -> tuple[dict, dict]:
    """(the MODEL_OPTIONS of `options`, the rest: keyword arguments of its methods)."""
    return ({k: v for k, v in options.items() if k in MODEL_OPTIONS},
            {k: v for k, v in options.items() if k not in MODEL_OPTIONS})


class Syncer:
    """`Syncer("gestsync-rgb").find_offset("a.mp4")`: `find_offset` and `find_speakers` with
    the model loaded once, here.

    Args:
        model: as for `find_offset`: "auto", "builtin", "gestsync-rgb" or a model file.
        device: torch device for the model ("cpu", "cuda"); None picks a GPU if present.
        checkpoint: a model file path (the older spelling of model=PATH).
        precision: the model's arithmetic, "fp32" (default, exact) or "bf16".
    Raises:
        GestsyncError (CheckpointError) when the model cannot be found or read.
    """

    def __init__(self, model: str | os.PathLike | None = models.AUTO, *,
                 device: str | None = None, checkpoint: str | os.PathLike | None = None,
                 precision: str = "fp32"):
        self.model = models.open_model(model, checkpoint, device, precision)

    @property
    def label(self) -> str:
        """How summaries name the model ("built-in estimator", "gestsync-rgb", ...)."""
        return self.model.choice.label

    def find_offset(self, video: str | os.PathLike, **options) -> OffsetResult:
        """`sync.find_offset(video, **options)` with this model."""
        return find_offset(video, model=self.model, **options)

    def find_speakers(self, video: str | os.PathLike, **options) -> SpeakerResult:
        """`speaker.find_speakers(video, **options)` with this model."""
        return find_speakers(video, model=self.model, **options)
