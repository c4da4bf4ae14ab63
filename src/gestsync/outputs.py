"""Writing outputs all or nothing: result folders are staged, then moved into place
together; single files are written beside their name, then renamed onto it. Every file
and folder gets the permissions a plain open() or mkdir() would give it (the umask)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import GestsyncError


def cache_root() -> Path:
    """Where gestsync keeps what it builds or downloads (the pose bundles, the person
    detector's weights, the weights cache): `$GESTSYNC_HOME`, else `$GESTSYNC_CACHE`, else
    the user cache folder (~/.cache/gestsync on Linux)."""
    root = os.environ.get("GESTSYNC_HOME") or os.environ.get("GESTSYNC_CACHE")
    if root:
        return Path(root).expanduser()
    import platformdirs

    return platformdirs.user_cache_path("gestsync")


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


def _umask() -> int:
    """The process umask, read without changing it where /proc/self/status says it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Permissions of a new file as open() makes it: 0o666 less the umask."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    """Permissions of a new folder as mkdir() makes it: 0o777 less the umask."""
    return 0o777 & ~_umask()


def temp_beside(path: Path, suffix: str = ".tmp") -> Path:
    """A new empty hidden file in `path`'s folder, with the mode of the file it will replace,
    else open()'s permissions (mkstemp alone makes it private). GestsyncError naming the
    folder when it cannot be written."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    except OSError as e:
        raise GestsyncError(f"cannot write to folder {path.parent} ({e.strerror or e}): "
                            "choose a writable folder") from e
    try:
        os.fchmod(fd, path.stat().st_mode & 0o777 if path.is_file() else file_mode())
    finally:
        os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Write `path` all or nothing: yields a temporary name beside it (`temp_beside`) to
    write; on success that file replaces `path`, on any error it is removed."""
    tmp = temp_beside(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data` all at once, on disk (fsync) before the rename."""
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_json_atomic(path: Path, data: Any, indent: int | None = None) -> None:
    """JSON with a trailing newline, all or nothing (`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=indent) + "\n")


def write_json(path: Path, data: dict) -> None:
    """Pretty JSON with a trailing newline."""
    path.write_text(json.dumps(data, indent=2) + "\n")
