"""The ledger of a batch run (`batch.run_batch`): which videos are done, so that a rerun
resumes. Two kinds, one interface (`append`, `finish`, `close`):

- `Journal`: a results file, one JSON row per line (`.jsonl`), or a `.parquet` table rebuilt
  from such a journal beside it; a row's video is its key (`KEY_FIELDS`). The corpus runs'
  `--results`.
- `RecordFolder`: one JSON record per video, each written whole. `gestsync prepare`'s
  `videos/`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .errors import BatchError, needs_extra
from .outputs import atomic_path, write_bytes, write_json_atomic

HEAD_BYTES = 1 << 20  # a journal's content hash covers the first MB
KEY_FIELDS = ("command", "path", "size", "sha256_first_mb")  # a journal row's video
Row = dict[str, Any]


def why(e: BaseException) -> str:
    """A short reason: the OS error text, else the first line of the message."""
    text = getattr(e, "strerror", None) or str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def locked_file(path: Path, flags: int, cannot: str, busy: str) -> int:
    """The descriptor of `path` (made, with its folder, if missing), locked against every
    other run; BatchError "`cannot` (why): choose a writable place", or `busy` when another
    run holds the lock."""
    import fcntl

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, flags | os.O_CREAT, 0o644)
    except OSError as e:
        raise BatchError(f"{cannot} ({why(e)}): choose a writable place") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise BatchError(busy) from None
    return fd


def counts_as_done(row: Row, retry_failed: bool) -> bool:
    """A video with this row is not done again (unless it failed and retry_failed)."""
    return not (retry_failed and row.get("status") != "ok")


class RecordFolder:
    """One JSON record per video, `<folder>/<name_of(video)>.json` (the row's `id_field`),
    each written whole (renamed into place): a video with a record is done."""

    LOCK = ".lock"  # held while a run writes the folder

    def __init__(self, folder: str | os.PathLike, name_of: Callable[[Path], str],
                 id_field: str):
        self.folder, self.name_of, self.id_field = Path(folder), name_of, id_field
        self.fd: int | None = None

    def open(self) -> "RecordFolder":
        """Make the folder and lock it against a second run (BatchError if one holds it)."""
        self.fd = locked_file(self.folder / self.LOCK, os.O_RDWR, f"cannot write {self.folder}",
                              f"another run is writing {self.folder.parent}: wait for it to "
                              "finish, or give another output folder")
        return self

    def read(self, name: str) -> Row | None:
        try:
            return json.loads((self.folder / f"{name}.json").read_text())
        except (OSError, ValueError):
            return None

    def todo(self, videos: Sequence[Path], name: str, retry_failed: bool) -> list[Path]:
        """The videos without a record (with retry_failed, or with a failed one)."""
        records = ((v, self.read(self.name_of(v))) for v in videos)
        return [v for v, r in records if r is None or not counts_as_done(r, retry_failed)]

    def append(self, row: Row) -> None:
        write_json_atomic(self.folder / f"{row[self.id_field]}.json", row)

    def finish(self) -> None:
        """Nothing to rebuild: each record is whole when written."""

    def close(self) -> None:
        """Release the lock."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def file_key(video: str | os.PathLike) -> dict[str, Any]:
    """`path` (absolute, links not followed), `size` and `sha256_first_mb`; a missing or
    unreadable file gets size -1 and an empty hash."""
    path = os.path.abspath(video)
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return {"path": path, "size": -1, "sha256_first_mb": ""}
    return {"path": path, "size": size, "sha256_first_mb": hashlib.sha256(head).hexdigest()}


def row_key(row: Row) -> tuple:
    return tuple(row.get(k) for k in KEY_FIELDS)


def _file_size(video: Path) -> int:
    try:
        return os.stat(video).st_size
    except OSError:
        return -1


def pending(videos: Sequence[Path], command: str, done: set[tuple]) -> list[Path]:
    """The videos without a row; the first MB is hashed only when path and size match."""
    known = {(k[1], k[2]) for k in done if k[0] == command}
    todo = []
    for video in videos:
        if (os.path.abspath(video), _file_size(video)) not in known:
            todo.append(video)
        elif row_key({"command": command, **file_key(video)}) not in done:
            todo.append(video)
    return todo


class Journal:
    """A results file: one JSON row per line (`.jsonl`), or a `.parquet` table rebuilt
    from such a journal beside it (`FILE.parquet.jsonl`). A row's video is its key
    (`KEY_FIELDS`: the task's name, the absolute path, size and hash of the first MB)."""

    SUFFIXES = (".jsonl", ".parquet")

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in self.SUFFIXES:
            raise BatchError(f"--results {path}: unknown suffix {suffix or '(none)'!r}: "
                             "give a .jsonl or .parquet file")
        self.parquet = suffix == ".parquet"
        if self.parquet:
            _pyarrow()  # a missing optional part is named before any video, not at the end
        self.journal = self.path.with_name(self.path.name + ".jsonl") if self.parquet else self.path
        self.fd: int | None = None
        self.rows: dict[tuple, Row] = {}  # by (command, path)
        self.superseded = 0  # rows replaced by a later row of the same video

    def open(self) -> "Journal":
        """Lock the journal against a second run, cut off a partial last line, load rows."""
        self._seed_from_parquet()
        self.fd = locked_file(self.journal, os.O_RDWR | os.O_APPEND,
                              f"cannot open --results {self.path}",
                              f"another run is writing {self.journal}: wait for it, or give "
                              "another --results")
        self._repair_tail()
        for row in _parse_lines(self.journal.read_bytes()):
            self._keep(row)
        return self

    def _seed_from_parquet(self) -> None:
        """A parquet file without its journal (copied elsewhere): its rows start the journal."""
        if not self.parquet or self.journal.exists() or not self.path.exists():
            return
        rows = read_parquet(self.path)
        write_bytes(self.journal, "".join(json_line(r) for r in rows).encode())

    def _repair_tail(self) -> None:
        size = os.fstat(self.fd).st_size
        if size == 0:
            return
        data = self.journal.read_bytes()
        if not data.endswith(b"\n"):
            os.ftruncate(self.fd, data.rfind(b"\n") + 1)  # a crash's partial row: drop it
            print(f"gestsync: dropped a partial last row of {self.journal} (an earlier run "
                  "was killed while writing); its video will be done again", file=sys.stderr)

    def _keep(self, row: Row) -> None:
        """A later row of the same command and path (a retry, or a changed file) replaces
        the earlier one."""
        place = (row.get("command"), row.get("path"))
        self.superseded += place in self.rows
        self.rows.pop(place, None)
        self.rows[place] = row

    def done_keys(self, retry_failed: bool) -> set[tuple]:
        """Keys of the videos not to do again."""
        return {row_key(r) for r in self.rows.values() if counts_as_done(r, retry_failed)}

    def todo(self, videos: Sequence[Path], name: str, retry_failed: bool) -> list[Path]:
        """The videos without a row of task `name` (with retry_failed, or a failed one)."""
        return pending(videos, name, self.done_keys(retry_failed))

    def append(self, row: Row) -> None:
        """One write of the whole line at the end of the file (O_APPEND), then fsync."""
        data = json_line(row).encode()
        while data:
            data = data[os.write(self.fd, data):]
        os.fsync(self.fd)
        self._keep(row)

    def finish(self) -> None:
        """Drop replaced rows from the journal and rebuild the parquet file."""
        if self.superseded:
            write_bytes(self.journal, "".join(json_line(r) for r in self.rows.values()).encode())
            self.superseded = 0
        if self.parquet:
            write_parquet(self.path, list(self.rows.values()))

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _parse_lines(data: bytes) -> Iterator[Row]:
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            print(f"gestsync: skipped line {n} of the results: not JSON", file=sys.stderr)
            continue
        if isinstance(row, dict):
            yield row


def json_line(row: Row) -> str:
    """One line of strict JSON (NaN and infinities become null)."""
    return json.dumps(_finite(row), allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_parquet(path: Path, rows: list[Row]) -> None:
    """The rows as a parquet table (columns: every field seen; nested fields as structs and
    lists, or as JSON text where rows disagree on their type), written then renamed."""
    pa, pq = _pyarrow()
    columns = list(dict.fromkeys(k for row in rows for k in row))
    table = pa.table({c: _column(pa, [_finite(row.get(c)) for row in rows]) for c in columns})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _column(pa, values: list) -> Any:
    try:
        column = pa.array(values)
        if _storable(pa, column.type):
            return column
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        pass
    return pa.array([None if v is None else json.dumps(v) for v in values], pa.string())


def _storable(pa, kind) -> bool:
    """Parquet has no struct without fields ({} in every row) and no null-only lists."""
    if pa.types.is_struct(kind):
        return kind.num_fields > 0 and all(_storable(pa, kind.field(i).type)
                                           for i in range(kind.num_fields))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _storable(pa, kind.value_type)
    return True


def read_parquet(path: Path) -> list[Row]:
    _, pq = _pyarrow()
    return pq.read_table(path).to_pylist()


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise BatchError(needs_extra("--results FILE.parquet", "train")
                         + " (or use FILE.jsonl)") from e
    return pa, pq
