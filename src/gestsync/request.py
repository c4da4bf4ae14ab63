"""What the requests of both jobs share (`sync.SyncRequest`, `speaker.SpeakerRequest`):
a `ModelSpec` first, cues given by name and held as `Cues`, a count of pose processes;
each checked once, when made (UsageError naming the option)."""

from __future__ import annotations

from dataclasses import dataclass

from . import cues as cue_names
from .errors import UsageError
from .weights import ModelSpec


@dataclass(frozen=True)
class Request:
    """Base of a job's request: subclasses add their fields (`model` first, `workers` and
    `cues` among them) and check them in `check`."""

    model: ModelSpec

    def __post_init__(self) -> None:
        object.__setattr__(self, "cues", cue_names.parse(self.cues))
        if self.workers < 1:
            raise UsageError(f"--workers must be 1 or more, got {self.workers}")
        self.check()

    def check(self) -> None:
        """UsageError naming the first option of the subclass's that is out of range."""

    @classmethod
    def of(cls, **options):
        """The request of a job function's keyword arguments (the model's four as a
        `ModelSpec`)."""
        spec, rest = ModelSpec.taken_from(options)
        return cls(spec, **rest)

    @staticmethod
    def workers_of(args, workers: int) -> int:
        """--workers as given, else `workers` (the command's default)."""
        return workers if args.workers is None else args.workers
