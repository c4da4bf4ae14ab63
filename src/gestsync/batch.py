"""The batch engine: one task over many videos, in parallel, resumable.

A job plugs in a `Task`: what it does to one video (`process(video) -> row`, never raising:
a failure is a row with status "error") and what each process loads once (`warm_up`). The
corpus runs of `sync`/`speaker` (`corpus.py`) and `gestsync prepare` (`prepare.py`) are
the two tasks. The engine owns the rest:

- inputs (`expand_inputs`): files, folders (searched recursively), lists (`@FILE` or
  `FILE.txt`: one path a line, relative to the list, `#` comments) and the
  `manifest.jsonl` of `gestsync prepare`;
- the ledger of finished videos, which makes a rerun resume: a JSONL journal (`Journal`,
  the corpus results file) or one JSON record per video (`RecordFolder`, prepare's
  `videos/`). Videos with a row are skipped; failed ones are redone with retry_failed. Only
  the driver writes the ledger, a row as soon as its video finishes;
- running: inline (`--jobs 1`), a local pool of `--jobs` processes, or Ray actors (one CPU
  each, on a cluster or a private local Ray); each process warms up once;
- the progress bar and the tally (`Summary`).

`--jobs` counts videos at once; `--workers` (pose processes within one video) belongs to
the task.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import math
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

from .errors import GestsyncError, needs_extra
from .outputs import atomic_path, write_bytes, write_json_atomic
from .timebase import VIDEO_SUFFIXES

HEAD_BYTES = 1 << 20  # a journal's content hash covers the first MB
KEY_FIELDS = ("command", "path", "size", "sha256_first_mb")  # a journal row's video
Row = dict[str, Any]
OnRow = Callable[[Row], None]


class BatchError(GestsyncError):
    """Bad batch input, options or ledger (a usage error: exit status 2)."""


class Task(Protocol):
    """What a job does to one video. Sent to worker processes: plain values only."""

    name: str  # the job's name: the progress bar's label, a journal row's "command"

    def warm_up(self) -> None:
        """Load what every video needs (a model), once per process."""

    def process(self, video: str) -> Row:
        """The video's row, with "status" "ok" or "error"; never raises."""


# ------------------------------------------------------------------------------ options

def add_engine_options(group, jobs_default: str, jobs_note: str = "") -> None:
    """--engine, --jobs, --address and --retry-failed, one meaning in every command;
    `jobs_note` ends --jobs' help."""
    group.add_argument("--engine", choices=("local", "ray"), help="local: a process pool on "
                       "the computer running the command (default); ray: Ray actors, on "
                       "--address or a private local Ray")
    group.add_argument("--jobs", type=int, metavar="N", help="videos processed at once "
                       f"(default: {jobs_default}){jobs_note}")
    group.add_argument("--address", "--ray-address", dest="address", metavar="ADDR",
                       help="with --engine ray: the cluster to join (host:6379 from `ray "
                       "start --head`, or auto); default: start a private Ray here")
    group.add_argument("--retry-failed", action="store_true",
                       help="redo the videos that failed before")


def check_engine(engine: str, jobs: int | None, address: str | None) -> None:
    """Engine options that cannot work, named before any video."""
    if engine not in ("local", "ray"):
        raise BatchError(f"--engine must be local or ray, got {engine!r}")
    if jobs is not None and jobs < 1:
        raise BatchError(f"--jobs must be 1 or more, got {jobs}")
    if address and engine != "ray":
        raise BatchError("--address joins a Ray cluster: add --engine ray")
    if engine == "ray":
        if importlib.util.find_spec("ray") is None:
            raise BatchError(needs_extra("--engine ray", "train"))
        check_reachable(address)


# ------------------------------------------------------------------------------- inputs

def expand_inputs(items: Iterable[str | os.PathLike],
                  suffixes: Iterable[str] = VIDEO_SUFFIXES) -> list[Path]:
    """Videos from files, folders (recursive), lists (`@FILE` or `FILE.txt`: one path per
    line, relative to the list, `#` comments) and prepare manifests (`.jsonl`: their video
    rows), without repeats, in the order given (folders sorted)."""
    suffixes = {s.lower() for s in suffixes}
    found: list[Path] = []
    for item in items:
        found += _expand_one(str(item), suffixes)
    unique = {os.path.abspath(p): p for p in reversed(found)}  # first occurrence wins
    return [unique[k] for k in dict.fromkeys(os.path.abspath(p) for p in found)]


def _expand_one(item: str, suffixes: set[str]) -> list[Path]:
    if item.startswith("@"):
        return _read_list(Path(item[1:]))
    path = Path(item)
    if path.is_dir():
        return videos_in(path, suffixes)
    if not path.exists():
        raise BatchError(f"{path}: no such file or folder: give videos, folders, @LIST.txt "
                         "or a prepare manifest.jsonl")
    if path.suffix.lower() == ".txt":
        return _read_list(path)
    if path.suffix.lower() == ".jsonl":
        return _read_manifest(path)
    return [path]


def videos_in(folder: Path, suffixes: Iterable[str] = VIDEO_SUFFIXES,
              recursive: bool = True) -> list[Path]:
    """The videos in `folder` (and below it, if `recursive`), sorted; none is an error."""
    suffixes = {s.lower() for s in suffixes}
    files = folder.rglob("*") if recursive else folder.iterdir()
    videos = sorted(p for p in files if p.suffix.lower() in suffixes and p.is_file())
    if not videos:
        raise BatchError(f"no videos {'under' if recursive else 'in'} folder {folder} (looked "
                         f"for {', '.join(sorted(suffixes))}): give a folder with videos")
    return videos


def _read_list(path: Path) -> list[Path]:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise BatchError(f"cannot read the list @{path} ({why(e)}): give a text file with "
                         "one video path per line") from e
    names = [ln.strip() for ln in lines]
    return [path.parent / n for n in names if n and not n.startswith("#")]


def _read_manifest(path: Path) -> list[Path]:
    """The source videos of a `gestsync prepare` manifest (its `kind: video` rows)."""
    sources = []
    try:
        for line in path.read_text().splitlines():
            row = json.loads(line) if line.strip() else {}
            if row.get("kind") == "video" and row.get("source"):
                sources.append(_manifest_source(path, row["source"]))
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as e:
        raise BatchError(f"cannot read the manifest {path} ({why(e)}): give the "
                         "manifest.jsonl written by `gestsync prepare`") from e
    if not sources:
        raise BatchError(f"{path} has no video rows: give the manifest.jsonl written by "
                         "`gestsync prepare` (or @LIST.txt for a list of paths)")
    return sources


def _manifest_source(manifest: Path, source: str) -> Path:
    """A manifest's `source` as prepare recorded it; relative ones are tried against the
    manifest's folder, then the current folder."""
    path = Path(source)
    beside = manifest.parent / path
    return beside if not path.is_absolute() and beside.exists() else path


def why(e: BaseException) -> str:
    """A short reason: the OS error text, else the first line of the message."""
    text = getattr(e, "strerror", None) or str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# ------------------------------------------------------------------------------ ledgers

def counts_as_done(row: Row, retry_failed: bool) -> bool:
    """A video with this row is not done again (unless it failed and retry_failed)."""
    return not (retry_failed and row.get("status") != "ok")


class RecordFolder:
    """One JSON record per video, `<folder>/<name_of(video)>.json` (the row's `id_field`),
    each written whole (renamed into place): a video with a record is done."""

    def __init__(self, folder: str | os.PathLike, name_of: Callable[[Path], str],
                 id_field: str):
        self.folder, self.name_of, self.id_field = Path(folder), name_of, id_field

    def open(self) -> "RecordFolder":
        self.folder.mkdir(parents=True, exist_ok=True)
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
        """Nothing held open."""


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
        import fcntl

        self._seed_from_parquet()
        try:
            self.journal.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.journal, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise BatchError(f"cannot open --results {self.path} ({why(e)}): choose a "
                             "writable place") from e
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.close()
            raise BatchError(f"another run is writing {self.journal}: wait for it, or give "
                             "another --results") from None
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


# ------------------------------------------------------------------------------ engines

def run_local(task: Task, videos: Sequence[str], jobs: int) -> Iterator[Row]:
    """Rows as videos finish, from `jobs` processes (inline for 1)."""
    if jobs <= 1:
        task.warm_up()
        for video in videos:
            yield task.process(video)
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    queue = iter(videos)
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no inherited threads
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_pool_start,
                             initargs=(task,)) as pool:
        running = {pool.submit(_pool_process, task, v) for v in _take(queue, 2 * jobs)}
        try:
            while running:
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                running |= {pool.submit(_pool_process, task, v) for v in _take(queue, len(finished))}
                yield from (f.result() for f in finished)
        except BrokenProcessPool as e:
            raise BatchError(f"a worker process died ({e}); the rows written are kept: run "
                             "the same command again to go on, with fewer --jobs if memory "
                             "ran out") from e
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # stopped early: drop the queue


_START_ERROR: list[GestsyncError] = []  # in a pool process: why the warm-up failed


def _pool_start(task: Task) -> None:
    """Pool initializer: warm up; a model that does not load stops the run (see below)
    instead of breaking the pool."""
    try:
        task.warm_up()
    except GestsyncError as e:
        _START_ERROR.append(e)


def _pool_process(task: Task, video: str) -> Row:
    if _START_ERROR:
        raise BatchError(str(_START_ERROR[0]))  # raised in the driver by f.result()
    return task.process(video)


def _take(queue: Iterator[str], n: int) -> list[str]:
    return [v for _, v in zip(range(n), queue)]


class Worker:
    """A Ray actor: warms up once, then processes one video per call."""

    def __init__(self, task: Task):
        self.task, self.error = task, None
        try:
            task.warm_up()
        except GestsyncError as e:  # told by ready(): no traceback from Ray's side
            self.error = str(e)

    def ready(self) -> str | None:
        """None, or why the warm-up failed."""
        return self.error

    def process(self, video: str) -> Row:
        return self.task.process(video)


@dataclass
class RaySession:
    """Ray joined at `address`, or a private local Ray with `jobs` CPUs (stopped after)."""

    address: str | None
    jobs: int | None
    started_here: bool = field(default=False, init=False)

    def __enter__(self):
        try:
            import ray
        except ImportError as e:
            raise BatchError(needs_extra("--engine ray", "train")) from e
        if not ray.is_initialized():
            check_reachable(self.address)
            # "local": a new private Ray even when `ray start` left a cluster on this host
            kwargs = ({"address": self.address} if self.address else
                      {"address": "local", "num_cpus": self.jobs or os.cpu_count() or 1,
                       "include_dashboard": False})
            try:
                ray.init(log_to_driver=False, configure_logging=False, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise BatchError(f"cannot join Ray at {self.address} ({why(e)}): start it "
                                 "with `ray start --head` and give its address") from e
            self.started_here = True
        return ray

    def __exit__(self, *exc) -> None:
        if self.started_here:
            import ray

            ray.shutdown()


def check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail fast on a HOST:PORT (or ray://HOST:PORT) that nothing answers; Ray itself
    retries for minutes."""
    if not address or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not port.isdigit():
        raise BatchError(f"--address {address}: give HOST:PORT (e.g. head:6379) or auto")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as e:
        raise BatchError(f"nothing answers at --address {address} ({why(e)}): start the "
                         "cluster with `ray start --head` and give the address it prints") from e


def run_ray(task: Task, videos: Sequence[str], jobs: int | None, address: str | None,
            lost: list[str]) -> Iterator[Row]:
    """Rows as videos finish, from Ray actors (one CPU each, one call per video).

    A video whose worker died even after one retry gets no row (it goes into `lost`), so
    a rerun tries it again."""
    with RaySession(address, jobs) as ray:
        n = min(_ray_workers(ray, jobs), len(videos))
        actor = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=1)(Worker)
        workers = [actor.remote(task) for _ in range(max(n, 1))]
        _wait_ready(ray, workers)
        yield from _dispatch(ray, workers, iter(videos), lost)


def _ray_workers(ray, jobs: int | None) -> int:
    """--jobs, at most the cluster's CPUs (more workers would wait for a CPU forever)."""
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    if jobs is not None and jobs > cpus:
        print(f"gestsync: the Ray cluster has {cpus} CPUs: {cpus} workers, not --jobs {jobs}",
              file=sys.stderr)
    return min(jobs or cpus, cpus)


def _wait_ready(ray, workers: list) -> None:
    try:
        errors = ray.get([w.ready.remote() for w in workers])
    except Exception as e:  # noqa: BLE001 - the cause is the last line of Ray's message
        lines = [ln for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
        raise BatchError(f"the Ray workers could not start ({lines[-1].strip()}): every "
                         "node needs gestsync installed and the videos at the same paths") from e
    for error in filter(None, errors):
        raise BatchError(error)


def _dispatch(ray, workers: list, queue: Iterator[str], lost: list[str]) -> Iterator[Row]:
    """Keep two videos queued on each worker; yield rows in the order they finish."""
    refs: dict[Any, tuple[Any, str]] = {}

    def submit(worker, count: int) -> None:
        for video in _take(queue, count):
            refs[worker.process.remote(video)] = (worker, video)

    for w in workers:
        submit(w, 2)
    while refs:
        (ref,), _ = ray.wait(list(refs), num_returns=1)
        worker, video = refs.pop(ref)
        submit(worker, 1)
        try:
            yield ray.get(ref)
        except ray.exceptions.RayError as e:
            print(f"gestsync: {video}: the worker died ({type(e).__name__}); no row "
                  "written, a rerun tries it again", file=sys.stderr)
            lost.append(video)


# ------------------------------------------------------------------------------ the run

@dataclass
class Summary:
    videos: int
    skipped: int  # had a row before this run
    done: int = 0
    failed: int = 0
    lost: int = 0  # worker died: no row

    def line(self, ledger: Path) -> str:
        text = (f"{self.videos} videos: {self.done} done, {self.failed} failed, "
                f"{self.skipped} skipped (already in {ledger})")
        if self.lost:
            text += f", {self.lost} lost to dying workers (run again to retry them)"
        return text


def run_batch(task: Task, videos: Sequence[Path], ledger, engine: str = "local",
              jobs: int | None = None, address: str | None = None, retry_failed: bool = False,
              on_row: OnRow | None = None, quiet: bool = False) -> Summary:
    """Run `task` on the videos without a row in `ledger` (opened: a `Journal` or a
    `RecordFolder`), appending each row as it comes; `jobs` None: one per CPU core."""
    todo = ledger.todo(videos, task.name, retry_failed)
    summary = Summary(len(videos), len(videos) - len(todo))
    paths, lost = [str(v) for v in todo], []
    if not paths:
        rows: Iterator[Row] = (row for row in ())
    elif engine == "ray":
        rows = run_ray(task, paths, jobs, address, lost)
    else:
        rows = run_local(task, paths, jobs or cores())
    bar = _bar(len(todo), task.name, quiet)
    try:
        with contextlib.closing(rows):  # stops the workers if a row cannot be written
            for row in rows:
                ledger.append(row)
                summary.done += row["status"] == "ok"
                summary.failed += row["status"] != "ok"
                bar.set_postfix(failed=summary.failed, refresh=False)
                bar.update(1)
                if on_row is not None:
                    on_row(row)
    finally:
        bar.close()
        ledger.finish()
    summary.lost = len(lost)
    return summary


def _bar(total: int, label: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=label, unit="video", disable=quiet or not total,
                file=sys.stderr, dynamic_ncols=True, smoothing=0.1)


def cores() -> int:
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
