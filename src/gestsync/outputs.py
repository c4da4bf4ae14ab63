"""Writing result folders all or nothing: files are staged, then moved into place together."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import GestsyncError


def default_out_dir(video: Path) -> Path:
    """`results/<video name>/` under the current folder."""
    return Path("results") / video.stem


def check_writable(out_dir: Path) -> None:
    """Fail early, before any work, when `out_dir` cannot be created or written.

    Creates nothing: the folder is made only when results are written (`staged`).
    """
    probe_dir = out_dir
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent  # the nearest existing ancestor must accept new entries
    if probe_dir.exists() and not probe_dir.is_dir():
        raise GestsyncError(f"output folder {out_dir} is not a folder ({probe_dir} is a "
                            "file): choose another --out")
    _try_writing(probe_dir, out_dir)


def _make_dir(out_dir: Path) -> None:
    _try_writing(out_dir, out_dir, create=True)


def _try_writing(folder: Path, out_dir: Path, create: bool = False) -> None:
    """Create a scratch file in `folder` (made first if `create`); a clear error if not."""
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".gestsync-check-"):
            pass
    except OSError as e:
        raise GestsyncError(
            f"cannot write to output folder {out_dir} ({e.strerror or e}): choose a "
            "writable folder with --out") from e


@contextlib.contextmanager
def staged(out_dir: Path) -> Iterator[Path]:
    """A private staging folder inside `out_dir`; on success its files move into `out_dir`.

    On any error nothing is moved and the staging folder is removed, so the output folder
    holds either all of a run's files or none of them.
    """
    _make_dir(out_dir)
    stage = Path(tempfile.mkdtemp(dir=out_dir, prefix=".gestsync-partial-"))
    try:
        yield stage
        for item in stage.iterdir():
            os.replace(item, out_dir / item.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def write_json(path: Path, data: dict) -> None:
    """Pretty JSON with a trailing newline."""
    path.write_text(json.dumps(data, indent=2) + "\n")
