"""The batch engine: one task over many videos, in parallel, resumable.

A job plugs in a `Task`: what it does to one video (`process(video) -> row`, never raising:
a failure is a row with status "error") and what each process loads once (`warm_up`). The
corpus runs of `sync`/`speaker` (`corpus.py`) and `gestsync prepare` (`prepare.py`) are
the two tasks. The engine owns the rest:

- inputs (`expand_inputs`): files, folders (searched recursively), lists (`@FILE` or
  `FILE.txt`: one path a line, relative to the list, `#` comments) and the
  `manifest.jsonl` of `gestsync prepare`;
- the ledger of finished videos (`ledger.py`), which makes a rerun resume. Videos with a
  row are skipped; failed ones are redone with retry_failed. Only the driver writes the
  ledger, a row as soon as its video finishes;
- running: inline (`--jobs 1`), a local pool of `--jobs` processes, or Ray actors (one CPU
  each, on a cluster or a private local Ray); each process warms up once;
- the progress bar and the tally (`Summary`).

`--jobs` counts videos at once; `--workers` (pose processes within one video) belongs to
the task.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

from .errors import BatchError, GestsyncError, needs_extra
from .ledger import Row, why
from .timebase import VIDEO_SUFFIXES

OnRow = Callable[[Row], None]


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
