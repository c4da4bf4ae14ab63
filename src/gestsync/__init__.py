"""gestsync: audio-visual sync and active speaker detection from body gestures.

Public API:
    find_offset(video, ...) -> OffsetResult    the sync offset of a video (every visible person searched)
    find_speakers(video, ...) -> SpeakerResult who speaks, per scene and per frame
        (both take model="auto" | "builtin" | "gestsync-rgb" | PATH; see docs/models.md)
    Syncer(model, device=None)                 a model loaded once: .find_offset, .find_speakers
    load_model(path, device=None)             the published GestSync RGB model (or ours)
    log_mel(wav)                              the model's audio features
"""

import importlib.metadata

from .errors import GestsyncError

try:  # one place for the version: pyproject.toml, read back from the installed metadata
    __version__ = importlib.metadata.version("gestsync")
except importlib.metadata.PackageNotFoundError:  # imported from a source tree, not installed
    __version__ = "0+unknown"

__all__ = ["GestsyncError", "OffsetResult", "SpeakerResult", "Syncer", "find_offset",
           "find_speakers", "load_model", "log_mel"]


def __getattr__(name: str):
    # Lazy imports keep `import gestsync` (and `gestsync --help`) fast.
    if name in ("OffsetResult", "SpeakerResult"):
        from . import results

        return getattr(results, name)
    if name == "find_offset":
        from . import sync

        return getattr(sync, name)
    if name == "Syncer":
        from .syncer import Syncer

        return Syncer
    if name == "find_speakers":
        from . import speaker

        return getattr(speaker, name)
    if name == "load_model":
        from .checkpoint import load_model

        return load_model
    if name == "log_mel":
        from .audio import log_mel

        return log_mel
    raise AttributeError(f"module 'gestsync' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazy names above are not module globals yet: list the public API, as `__all__` does.
    return sorted(set(globals()) | set(__all__))
