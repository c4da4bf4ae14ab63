"""Errors that gestsync raises for problems the user can fix.

Every `GestsyncError` carries a message that names the problem and the fix; the CLI prints
it as one line and exits with status 2. Anything else is an internal error (status 1).
"""


class GestsyncError(Exception):
    """A problem with the user's input or options; the message says how to fix it."""


class MediaError(GestsyncError):
    """The file cannot be read as a video with sound, or cannot be written."""


class PeopleError(GestsyncError):
    """No usable person in the video (none, several, or hands never visible)."""


class CheckpointError(GestsyncError):
    """A model checkpoint that is missing, corrupt, or does not match the architecture."""


class UsageError(GestsyncError):
    """Bad command-line arguments."""
