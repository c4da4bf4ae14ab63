"""`gestsync sync|speaker ... --results FILE`: a whole corpus, one row per video, resumable.

The corpus task (`CorpusTask`: one video in, its row out) runs on the batch engine
(`batch.py`): a local process pool (`--engine local --jobs N`) or Ray actors (`--engine
ray`, on a running cluster with `--address`, else on a private local one); each worker
process loads the model once. Only the driver writes the results file (`ledger.Journal`):

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
import hashlib
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from . import batch
from .errors import BatchError as CorpusError  # bad corpus input or options: exit status 2
from .batch import expand_inputs
from .ledger import Journal as Results, Row, file_key, json_line
from .errors import GestsyncError

TIMING_FIELDS = ("seconds", "cpu_seconds", "worker", "finished_at")  # differ between runs of one video


# ------------------------------------------------------------------------------ options

def add_corpus_options(p: argparse.ArgumentParser) -> None:
    """The options of a corpus run (`sync` and `speaker`); all but --results need it."""
    g = p.add_argument_group("corpus runs (with --results; see docs/corpus.md)")
    g.add_argument("--results", metavar="PATH", help="write one row per video to PATH "
                   "(.jsonl or .parquet) and skip videos already there; VIDEO may then also "
                   "be a list (@LIST or LIST.txt: one path per line) or a prepare manifest.jsonl, "
                   "and folders are searched recursively")
    g.add_argument("--write-videos", action="store_true", help="also write each video's "
                   "folder (json, plot, corrected or annotated video) under --out "
                   "(default results/) as <name>-<key>/; by default only FILE is written")
    batch.add_engine_options(g, jobs_default="one per CPU core; with ray, the cluster's CPUs",
                             jobs_note="; not --workers, which splits one video's pose detection")


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


class CorpusTask:
    """The engine's task (`batch.Task`) of a corpus run: one video in, its row out."""

    def __init__(self, job: Job):
        self.job, self.name = job, job.command

    def warm_up(self) -> None:
        warm_up(self.job)

    def process(self, video: str) -> Row:
        return process_video(self.job, video)


# ---------------------------------------------------------------------------- the run

def run_cli(args: argparse.Namespace, request: Any, suffixes: Iterable[str]) -> int:
    """The corpus form of `gestsync sync|speaker` with its checked `request`; returns the
    exit status."""
    batch.check_engine(args.engine or "local", args.jobs, args.address)
    job = job_from_args(args, request)
    results = Results(args.results)
    videos = expand_inputs(args.videos, suffixes)
    results.open()
    try:
        summary = batch.run_batch(CorpusTask(job), videos, results, args.engine or "local",
                                  args.jobs, args.address, args.retry_failed,
                                  on_row=_printer(args.json), quiet=args.quiet)
    finally:
        results.close()
    print(summary.line(results.path), file=sys.stderr if args.json else sys.stdout, flush=True)
    return 1 if summary.failed or summary.lost else 0


def _printer(as_json: bool) -> Callable[[Row], None] | None:
    if not as_json:
        return None
    return lambda row: print(json_line(row), end="", flush=True)
