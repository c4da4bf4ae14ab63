"""`Syncer`: a model loaded once, for many videos; `syncer_for`: this process's Syncers (the
command line's folder runs, the web demo's jobs and the corpus workers all take theirs
from it)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .results import OffsetResult, SpeakerResult
from .speaker import SpeakerRequest, run_speakers
from .sync import SyncRequest, run_sync
from .weights import AUTO, ModelSpec, check_as_loaded, open_model

Request = SyncRequest | SpeakerRequest


class Syncer:
    """`Syncer("gestsync-rgb").find_offset("a.mp4")`: `find_offset` and `find_speakers` with
    the model loaded once, here.

    Args:
        model: as for `find_offset`: "auto", "builtin", "gestsync-rgb" or a model file
            (or a `ModelSpec`, whose device and precision then hold).
        device: torch device for the model ("cpu", "cuda"); None picks a GPU if present.
        checkpoint: a model file path (the older spelling of model=PATH).
        precision: the model's arithmetic, "fp32" (default, exact) or "bf16".
    Raises:
        GestsyncError (CheckpointError, UsageError) when the model cannot be found or read.
    """

    def __init__(self, model: str | os.PathLike | ModelSpec | None = AUTO, *,
                 device: str | None = None, checkpoint: str | os.PathLike | None = None,
                 precision: str = "fp32"):
        spec = model if isinstance(model, ModelSpec) else ModelSpec(model, device, precision,
                                                                     checkpoint)
        self.model = open_model(spec)

    @property
    def label(self) -> str:
        """How summaries name the model ("built-in estimator", "gestsync-rgb", ...)."""
        return self.model.choice.label

    def find_offset(self, video: str | os.PathLike, **options) -> OffsetResult:
        """`find_offset(video, **options)` with this model (`device` and `precision`, if
        given, must be those it was loaded with: UsageError otherwise)."""
        outputs, request = self._request(SyncRequest, options)
        return run_sync(video, request, self.model, **outputs)

    def find_speakers(self, video: str | os.PathLike, **options) -> SpeakerResult:
        """`find_speakers(video, **options)` with this model (as `find_offset`)."""
        outputs, request = self._request(SpeakerRequest, options)
        return run_speakers(video, request, self.model, **outputs)

    def run(self, video: str | os.PathLike, request: Request, **outputs):
        """The job of `request` on one video with this model (`out_dir`, `write_video` and
        `progress` as for `find_offset`)."""
        job = run_sync if isinstance(request, SyncRequest) else run_speakers
        return job(video, request, self.model, **outputs)

    def _request(self, kind, options: dict) -> tuple[dict, Request]:
        """(the output keywords of `options`, the request of the rest, with this model)."""
        options = dict(options)
        outputs = {k: options.pop(k) for k in ("out_dir", "write_video", "progress")
                   if k in options}
        asked = {k: options.pop(k) for k in ("device", "precision") if k in options}
        check_as_loaded(self.model, **asked)
        return outputs, kind(self.model.spec, **options)


KEPT = 2  # Syncers kept per process (the web page offers several models)
_KEPT: dict[tuple, Syncer] = {}
_LOCK = threading.Lock()


def syncer_for(spec: ModelSpec) -> Syncer:
    """This process's `Syncer` of `spec`: loaded by the first job that needs it, then kept
    (the KEPT most recent), and loaded again when its model file changes."""
    path = spec.model.path
    stamp = (path.stat().st_size, path.stat().st_mtime_ns) if path and Path(path).is_file() else None
    key = (spec, stamp)
    with _LOCK:
        if key not in _KEPT:
            for old in [k for k in _KEPT if k[0] == spec]:  # its file changed
                del _KEPT[old]
            while len(_KEPT) >= KEPT:
                _KEPT.pop(next(iter(_KEPT)))
            _KEPT[key] = Syncer(spec)
        return _KEPT[key]
