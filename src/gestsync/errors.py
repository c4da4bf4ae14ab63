"""Errors that gestsync raises for problems the user can fix, and how a stop is raised.

Every `GestsyncError` carries a message that names the problem and the fix; the CLI prints
it as one line and exits with status 2. Anything else is an internal error (status 1).
"""

import contextlib
import re
import signal
import threading
from typing import Iterator


class GestsyncError(Exception):
    """A problem with the user's input or options; the message says how to fix it."""


class MediaError(GestsyncError):
    """The file cannot be read as a video with sound, or cannot be written."""


class PeopleError(GestsyncError):
    """No usable person in the video (none, several, or hands never visible)."""


class CheckpointError(GestsyncError):
    """A model checkpoint that is missing, corrupt, or does not match the architecture."""


class DetectorError(GestsyncError):
    """The person detector's model (a pip package) is missing or not the one expected."""


class BatchError(GestsyncError):
    """Bad batch input, options or ledger (a usage error: exit status 2)."""


class UsageError(GestsyncError):
    """Bad command-line arguments."""


# Every third-party module gestsync imports at run time, by the name it is imported as, and
# the distribution that provides it (as pyproject.toml declares it). tests/test_packaging.py
# checks both tables against the imports in src/gestsync and the package's metadata.
CORE_PACKAGES = {
    "av": "av", "cv2": "opencv-contrib-python", "matplotlib": "matplotlib",
    "mediapipe": "mediapipe", "numpy": "numpy", "PIL": "pillow", "platformdirs": "platformdirs",
    "scipy": "scipy", "silero_vad": "silero-vad", "torch": "torch", "tqdm": "tqdm"}
# The optional parts: module -> (what needs it, the extra of pyproject.toml that installs it).
EXTRA_PACKAGES = {"gradio": ("gestsync serve", "demo"), "ray": ("--engine ray", "train"),
                  "pyarrow": ("Parquet (.parquet files)", "train")}


def needs_extra(what: str, extra: str) -> str:
    """The one line that says which extra an optional part needs."""
    return f'{what} needs the {extra} extra: pip install "gestsync[{extra}]"'


def missing_package(error: ImportError) -> GestsyncError | None:
    """The usage error for an import that failed because one of our dependencies is missing
    or broken (it names what to install), or None when the module is not one of ours."""
    name = getattr(error, "name", None)
    if not name:  # e.g. raised in another process: the name is only in the message
        found = re.search(r"No module named '([^']+)'", str(error))
        name = found.group(1) if found else ""
    top = name.split(".")[0]
    if top in EXTRA_PACKAGES:
        return UsageError(needs_extra(*EXTRA_PACKAGES[top]))
    if top in CORE_PACKAGES:
        dist = CORE_PACKAGES[top]
        return UsageError(f"{dist}, which gestsync needs, is missing or broken ({error}): "
                          f'reinstall it with pip install --force-reinstall "{_requirement(dist)}", '
                          "or reinstall gestsync")
    return None


def _requirement(dist: str) -> str:
    """`dist` with the version gestsync's metadata asks for (e.g. mediapipe==0.10.21)."""
    import importlib.metadata

    try:
        requires = importlib.metadata.requires("gestsync") or []
    except importlib.metadata.PackageNotFoundError:
        return dist
    for line in requires:
        spec = line.split(";")[0].strip()
        found = re.match(r"[A-Za-z0-9._-]+", spec)
        if ";" not in line and found and _normal(found.group()) == _normal(dist):
            return spec.replace(" ", "")
    return dist


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl+C wherever the program is, so `with` blocks clean up."""


_received: list[Terminated] = []  # SIGTERMs of the latest `sigterm_as_interrupt` block


def stop_received() -> Terminated | None:
    """The SIGTERM received in the latest `sigterm_as_interrupt` block, if any, even when a
    library caught it on the way (e.g. mid-import) and failed later in another way."""
    return _received[-1] if _received else None


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within: `kill` (SIGTERM) stops the program as Ctrl+C does, so temporary folders and
    partial outputs are removed on the way out. Only the main thread can set handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        _received.append(Terminated())
        raise _received[-1]

    _received.clear()
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
