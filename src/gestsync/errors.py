"""Errors that gestsync raises for problems the user can fix, and how a stop is raised.

Every `GestsyncError` carries a message that names the problem and the fix; the CLI prints
it as one line and exits with status 2. Anything else is an internal error (status 1).
"""

import contextlib
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


class UsageError(GestsyncError):
    """Bad command-line arguments."""


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
