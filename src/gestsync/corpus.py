"""`gestsync sync|speaker ... --results FILE`: a whole corpus, one row per video, resumable.

Videos run in parallel in a local process pool (`--engine local --jobs N`) or as Ray tasks
(`--engine ray`, on a running cluster with `--address`, else on a private local one), one
task per video; each worker process loads the model once. Only the driver writes the
results file:

- `.jsonl`: one JSON object per line, appended with a single `write` of the whole line
  (O_APPEND) followed by `fsync`, so a killed run leaves whole rows only; a partial last
  line from an older crash is cut off when the next run opens the file;
- `.parquet`: the rows go to `FILE.parquet.jsonl` as above (the journal) and the parquet
  file is rebuilt from it, written to a temporary name and renamed, at the end of a run
  (and by the next run after a kill).

A row is the `--json` result plus `video`, `command`, `status` ("ok" or "error"), `error`
(one line, or null), the video's key (`path`: absolute, `size`, `sha256_first_mb`) and
timing (`seconds`, `cpu_seconds`, `worker`, `finished_at`). A rerun with the same results file skips every
video whose key (with the command) already has a row; `--retry-failed` redoes the errors. A
video done again (a retry, or its file changed) keeps only its newest row.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import math
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from .errors import GestsyncError, needs_extra
from .outputs import atomic_path, write_bytes

HEAD_BYTES = 1 << 20  # the content hash covers the first MB
RESULT_SUFFIXES = (".jsonl", ".parquet")
TIMING_FIELDS = ("seconds", "cpu_seconds", "worker", "finished_at")  # differ between runs of one video
KEY_FIELDS = ("command", "path", "size", "sha256_first_mb")
Row = dict[str, Any]


class CorpusError(GestsyncError):
    """Bad corpus input or results file (a usage error: exit status 2)."""


# ------------------------------------------------------------------------------ options

def add_corpus_options(p: argparse.ArgumentParser) -> None:
    """The options of a corpus run (`sync` and `speaker`); all but --results need it."""
    g = p.add_argument_group("corpus runs (with --results; see docs/corpus.md)")
    g.add_argument("--results", metavar="PATH", help="write one row per video to PATH "
                   "(.jsonl or .parquet) and skip videos already there; VIDEO may then also "
                   "be @LIST.txt (one path per line) or a prepare manifest.jsonl, and folders "
                   "are searched recursively")
    g.add_argument("--engine", choices=("local", "ray"), help="local: a process pool on the "
                   "computer running the command (default); ray: Ray tasks, on --address or a "
                   "private local Ray")
    g.add_argument("--jobs", type=int, metavar="N", help="videos processed at once (default: "
                   "one per CPU core; with ray, the cluster's CPUs); not --workers, which "
                   "splits one video's pose detection")
    g.add_argument("--address", "--ray-address", dest="address", metavar="ADDR",
                   help="with --engine ray: the cluster to join (host:6379 from `ray start "
                   "--head`, or auto); default: start a private Ray here")
    g.add_argument("--write-videos", action="store_true", help="also write each video's "
                   "folder (json, plot, corrected or annotated video) under --out "
                   "(default results/) as <name>-<key>/; by default only FILE is written")
    g.add_argument("--retry-failed", action="store_true",
                   help="redo the videos whose row in FILE is an error")


def check_corpus_options(args: argparse.Namespace) -> None:
    """Corpus-only options without --results are a usage error."""
    if args.results is not None:
        return
    given = [flag for flag, value in (("--engine", args.engine), ("--jobs", args.jobs),
                                      ("--address", args.address),
                                      ("--write-videos", args.write_videos),
                                      ("--retry-failed", args.retry_failed)) if value]
    if given:
        raise CorpusError(f"{', '.join(given)}: only for a corpus run; add --results "
                          "FILE.jsonl (or .parquet)")


@dataclass(frozen=True)
class Job:
    """What every video of a run gets done to it. Plain values only (sent to workers)."""

    command: str  # "sync" or "speaker"
    request: Any  # the command's request (`sync.SyncRequest`, `speaker.SpeakerRequest`)
    out_root: str | None = None  # with --write-videos: per-video folders go under it
    write_video: bool = False


def job_from_args(args: argparse.Namespace, request: Any) -> Job:
    """The job of a corpus run; `request`: the command's request, from the CLI."""
    if args.write_videos and getattr(args, "no_video", False):
        raise CorpusError("--write-videos and --no-video contradict each other: give one")
    if args.out is not None and not args.write_videos:
        raise CorpusError("--out: a corpus run writes only --results FILE unless "
                          "--write-videos is given: add it, or leave out --out")
    out_root = (args.out or "results") if args.write_videos else None
    return Job(args.command, request, out_root, bool(args.write_videos))


# ------------------------------------------------------------------------------- inputs

def expand_inputs(items: Sequence[str], suffixes: Iterable[str]) -> list[Path]:
    """Videos from files, folders (recursive), `@list.txt` files (one path per line,
    relative to the list, `#` comments) and prepare manifests (`.jsonl`: their video rows),
    without repeats, in the order given (folders sorted)."""
    suffixes = {s.lower() for s in suffixes}
    found: list[Path] = []
    for item in items:
        found += _expand_one(item, suffixes)
    unique = {os.path.abspath(p): p for p in reversed(found)}  # first occurrence wins
    return [unique[k] for k in dict.fromkeys(os.path.abspath(p) for p in found)]


def _expand_one(item: str, suffixes: set[str]) -> list[Path]:
    if item.startswith("@"):
        return _read_list(Path(item[1:]))
    path = Path(item)
    if path.is_dir():
        videos = sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
        if not videos:
            raise CorpusError(f"no videos under folder {path} (looked for "
                              f"{', '.join(sorted(suffixes))}): give a folder with videos")
        return videos
    if not path.exists():
        raise CorpusError(f"{path}: no such file or folder: give videos, folders, @LIST.txt "
                          "or a prepare manifest.jsonl")
    if path.suffix.lower() == ".jsonl":
        return _read_manifest(path)
    return [path]


def _read_list(path: Path) -> list[Path]:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise CorpusError(f"cannot read the list @{path} ({_why(e)}): give a text file with "
                          "one video path per line") from e
    names = [ln.strip() for ln in lines]
    return [path.parent / n for n in names if n and not n.startswith("#")]


def _read_manifest(path: Path) -> list[Path]:
    """The source videos of a `gestsync prepare` manifest (its `kind: video` rows)."""
    sources = []
    try:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            row = json.loads(line) if line.strip() else {}
            if row.get("kind") == "video" and row.get("source"):
                sources.append(_manifest_source(path, row["source"]))
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as e:
        raise CorpusError(f"cannot read the manifest {path} ({_why(e)}): give the "
                          "manifest.jsonl written by `gestsync prepare`") from e
    if not sources:
        raise CorpusError(f"{path} has no video rows: give the manifest.jsonl written by "
                          "`gestsync prepare` (or @LIST.txt for a list of paths)")
    return sources


def _manifest_source(manifest: Path, source: str) -> Path:
    """A manifest's `source` as prepare recorded it; relative ones are tried against the
    manifest's folder, then the current folder."""
    path = Path(source)
    beside = manifest.parent / path
    return beside if not path.is_absolute() and beside.exists() else path


def _why(e: BaseException) -> str:
    """A short reason: the OS error text, else the first line of the message."""
    text = getattr(e, "strerror", None) or str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# ---------------------------------------------------------------------------------- keys

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


# ------------------------------------------------------------------------- the results

class Results:
    """The results file of a run: rows already there, and appending new ones safely."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in RESULT_SUFFIXES:
            raise CorpusError(f"--results {path}: unknown suffix {suffix or '(none)'!r}: "
                              "give a .jsonl or .parquet file")
        self.parquet = suffix == ".parquet"
        self.journal = self.path.with_name(self.path.name + ".jsonl") if self.parquet else self.path
        self.fd: int | None = None
        self.rows: dict[tuple, Row] = {}  # by (command, path)
        self.superseded = 0  # rows replaced by a later row of the same video

    def open(self) -> "Results":
        """Lock the journal against a second run, cut off a partial last line, load rows."""
        import fcntl

        self._seed_from_parquet()
        try:
            self.journal.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.journal, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise CorpusError(f"cannot open --results {self.path} ({_why(e)}): choose a "
                              "writable place") from e
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.close()
            raise CorpusError(f"another run is writing {self.journal}: wait for it, or give "
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
        return {row_key(r) for r in self.rows.values()
                if not (retry_failed and r.get("status") != "ok")}

    def append(self, row: Row) -> None:
        """One write of the whole line at the end of the file, then fsync."""
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
        raise CorpusError(needs_extra("--results FILE.parquet", "train")
                          + " (or use FILE.jsonl)") from e
    return pa, pq


# ------------------------------------------------------------------------ one video

def process_video(job: Job, video: str) -> Row:
    """Run the job on one video; never raises: a failure is a row with status "error"."""
    started, cpu = time.perf_counter(), time.process_time()
    row: Row = {"video": video}
    try:
        result = _run(job, Path(video))
        row.update(result.to_dict(), video=video, status="ok", error=None)
    except Exception as e:  # noqa: BLE001 - one bad video must not stop a corpus
        row.update(status="error", error=error_line(e))
    row.update(command=job.command, **file_key(video),
               seconds=round(time.perf_counter() - started, 3),
               cpu_seconds=round(time.process_time() - cpu, 3),
               worker=f"{socket.gethostname()}:{os.getpid()}", finished_at=round(time.time(), 3))
    return row


def error_line(e: BaseException) -> str:
    """One line: our own errors' message as it is; anything else (an internal error) with
    its type in front."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if isinstance(e, GestsyncError) else f"{type(e).__name__}: {text}"


def _run(job: Job, video: Path):
    out_dir = None
    if job.out_root is not None:
        out_dir = Path(job.out_root) / out_name(video)
    from .syncer import syncer_for

    return syncer_for(job.request.model).run(video, job.request, out_dir=out_dir,
                                             write_video=job.write_video)


def out_name(video: Path) -> str:
    """`<name>-<8 hex digits of the absolute path>`: unique over a recursive corpus."""
    digest = hashlib.sha256(os.path.abspath(video).encode()).hexdigest()[:8]
    return f"{video.stem}-{digest}"


def warm_up(job: Job) -> None:
    """Import the command's modules and load the model of `job` into this process (kept
    for every later video), so that the first video's time is its own."""
    from .syncer import syncer_for

    syncer_for(job.request.model)


# ------------------------------------------------------------------------ engines

def run_local(job: Job, videos: Sequence[str], jobs: int) -> Iterator[Row]:
    """Rows as videos finish, from `jobs` processes (inline for 1)."""
    if jobs <= 1:
        warm_up(job)
        for video in videos:
            yield process_video(job, video)
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    queue = iter(videos)
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no inherited threads
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_pool_start,
                             initargs=(job,)) as pool:
        running = {pool.submit(_pool_process, job, v) for v in _take(queue, 2 * jobs)}
        try:
            while running:
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                running |= {pool.submit(_pool_process, job, v) for v in _take(queue, len(finished))}
                yield from (f.result() for f in finished)
        except BrokenProcessPool as e:
            raise CorpusError(f"a worker process died ({e}); the rows written are kept: run "
                              "the same command again to go on, with fewer --jobs if memory "
                              "ran out") from e
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # stopped early: drop the queue


_START_ERROR: list[GestsyncError] = []  # in a pool process: why the model did not load


def _pool_start(job: Job) -> None:
    """Pool initializer: warm up; a model that does not load stops the run (see below)
    instead of breaking the pool."""
    try:
        warm_up(job)
    except GestsyncError as e:
        _START_ERROR.append(e)


def _pool_process(job: Job, video: str) -> Row:
    if _START_ERROR:
        raise CorpusError(str(_START_ERROR[0]))  # raised in the driver by f.result()
    return process_video(job, video)


def _take(queue: Iterator[str], n: int) -> list[str]:
    return [v for _, v in zip(range(n), queue)]


class Worker:
    """A Ray actor: loads the model once, then processes one video per call."""

    def __init__(self, job: Job):
        self.job, self.error = job, None
        try:
            warm_up(job)
        except GestsyncError as e:  # told by ready(): no traceback from Ray's side
            self.error = str(e)

    def ready(self) -> str | None:
        """None, or why the model did not load."""
        return self.error

    def process(self, video: str) -> Row:
        return process_video(self.job, video)


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
            raise CorpusError(needs_extra("--engine ray", "train")) from e
        if not ray.is_initialized():
            _check_reachable(self.address)
            kwargs = ({"address": self.address} if self.address else
                      {"address": "local", "num_cpus": self.jobs or os.cpu_count() or 1,
                       "include_dashboard": False})
            try:
                ray.init(log_to_driver=False, configure_logging=False, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise CorpusError(f"cannot join Ray at {self.address} ({_why(e)}): start it "
                                  "with `ray start --head` and give its address") from e
            self.started_here = True
        return ray

    def __exit__(self, *exc) -> None:
        if self.started_here:
            import ray

            ray.shutdown()


def _check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail fast on a HOST:PORT (or ray://HOST:PORT) that nothing answers; Ray itself
    retries for minutes."""
    if not address or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not port.isdigit():
        raise CorpusError(f"--address {address}: give HOST:PORT (e.g. head:6379) or auto")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as e:
        raise CorpusError(f"nothing answers at --address {address} ({_why(e)}): start the "
                          "cluster with `ray start --head` and give the address it prints") from e


def run_ray(job: Job, videos: Sequence[str], jobs: int | None, address: str | None,
            lost: list[str]) -> Iterator[Row]:
    """Rows as videos finish, from Ray actors (one CPU each, one task per video).

    A video whose worker died even after one retry gets no row (it goes into `lost`), so
    a rerun tries it again."""
    with RaySession(address, jobs) as ray:
        n = min(_ray_workers(ray, jobs), len(videos))
        actor = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=1)(Worker)
        workers = [actor.remote(job) for _ in range(max(n, 1))]
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
        raise CorpusError(f"the Ray workers could not start ({lines[-1].strip()}): every "
                          "node needs gestsync installed and the videos at the same paths") from e
    for error in filter(None, errors):
        raise CorpusError(error)


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


# ---------------------------------------------------------------------------- the run

@dataclass
class Summary:
    videos: int
    skipped: int
    done: int = 0
    failed: int = 0
    lost: int = 0  # worker died: no row

    def line(self, results: Path) -> str:
        text = (f"{self.videos} videos: {self.done} done, {self.failed} failed, "
                f"{self.skipped} skipped (already in {results})")
        if self.lost:
            text += f", {self.lost} lost to dying workers (run again to retry them)"
        return text


def run_corpus(job: Job, videos: Sequence[Path], results: Results, engine: str = "local",
               jobs: int | None = None, address: str | None = None, retry_failed: bool = False,
               on_row: Callable[[Row], None] | None = None, quiet: bool = False) -> Summary:
    """Process the videos of `videos` without a row in `results`; append each row."""
    todo = pending(videos, job.command, results.done_keys(retry_failed))
    summary = Summary(len(videos), len(videos) - len(todo))
    paths, lost = [str(v) for v in todo], []
    if not paths:
        rows: Iterator[Row] = (row for row in ())
    elif engine == "ray":
        rows = run_ray(job, paths, jobs, address, lost)
    else:
        rows = run_local(job, paths, jobs or _cores())
    bar = _bar(len(todo), job.command, quiet)
    try:
        with contextlib.closing(rows):  # stops the workers if a row cannot be written
            for row in rows:
                results.append(row)
                summary.done += row["status"] == "ok"
                summary.failed += row["status"] != "ok"
                bar.set_postfix(failed=summary.failed, refresh=False)
                bar.update(1)
                if on_row is not None:
                    on_row(row)
    finally:
        bar.close()
        results.finish()
    summary.lost = len(lost)
    return summary


def _bar(total: int, command: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=command, unit="video", disable=quiet or not total, file=sys.stderr,
                dynamic_ncols=True, smoothing=0.1)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_cli(args: argparse.Namespace, request: Any, suffixes: Iterable[str]) -> int:
    """The corpus form of `gestsync sync|speaker` with its checked `request`; returns the
    exit status."""
    if args.jobs is not None and args.jobs < 1:
        raise CorpusError(f"--jobs must be 1 or more, got {args.jobs}")
    if args.address and args.engine != "ray":
        raise CorpusError("--address joins a Ray cluster: add --engine ray")
    job = job_from_args(args, request)
    results = Results(args.results)
    videos = expand_inputs(args.videos, suffixes)
    if results.parquet:
        _pyarrow()  # a missing optional part is named before any video, not at the end
    if args.engine == "ray":
        if importlib.util.find_spec("ray") is None:
            raise CorpusError(needs_extra("--engine ray", "train"))
        _check_reachable(args.address)
    results.open()
    try:
        summary = run_corpus(job, videos, results, args.engine or "local", args.jobs,
                             args.address, args.retry_failed, quiet=args.quiet,
                             on_row=_printer(args.json))
    finally:
        results.close()
    print(summary.line(results.path), file=sys.stderr if args.json else sys.stdout, flush=True)
    return 1 if summary.failed or summary.lost else 0


def _printer(as_json: bool) -> Callable[[Row], None] | None:
    if not as_json:
        return None
    return lambda row: print(json_line(row), end="", flush=True)
