"""Progress hooks: every stage reports `progress(stage, completed, total)`.

`total` may be None where it is not known in advance (a lazily read clip). The command
line shows one tqdm bar per stage (`TqdmProgress`); the web demo maps them onto its own
bar; the Python API's default is None, meaning no progress.
"""

from __future__ import annotations

import sys
from typing import Callable, Optional

Progress = Callable[[str, int, Optional[int]], None]


def no_progress(stage: str, completed: int, total: int | None) -> None:
    """A progress hook that does nothing."""


def progress_hook(progress: Progress | None) -> Progress:
    """`progress`, or `no_progress` for None (the public API's default)."""
    return no_progress if progress is None else progress


class TqdmProgress:
    """A progress hook (stage, completed, total) that shows one tqdm bar per stage."""

    def __init__(self, label: str, enabled: bool = True):
        self.label, self.enabled, self.bars = label, enabled, {}

    def __call__(self, stage: str, completed: int, total: int | None) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(total=total, desc=f"{self.label}: {stage}",
                                          unit="frame" if total > 1 else "step",
                                          leave=False, file=sys.stderr, dynamic_ncols=True)
        bar.total = total
        bar.update(completed - bar.n)
        if completed >= total:
            bar.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
