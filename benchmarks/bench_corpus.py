"""Videos per minute of a corpus run (`gestsync sync ... --results FILE`) with 1 and 2
videos at once, in the local process pool and on a private local Ray, in one run.

    nice .venv/bin/python benchmarks/bench_corpus.py [--videos N] [--jobs 1 2] [--engines local ray]

Each configuration is a fresh `gestsync sync` process writing a fresh results file (Ray's
start and the workers' model and library loading are part of the time, as they are for a
user), over the first N samples of ../shared/samples in name order that hold one person,
with the built-in estimator and one pose process per video. It prints a markdown table:
wall seconds, videos per minute, seconds of video per second, the summed per-video wall and
CPU times (from the rows), and the load average (1 min) before and after, since other work
on the machine slows every figure but the CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
ONE_PERSON = ["sync_sample_1.mp4", "sync_sample_2.mp4", "sync_sample_3.mp4",
              "clone95__Speech-to_lips__obama.mp4",
              "facebookresearch__VisualVoice__noisy_restaurant.mp4",
              "strfr__PythonStructuralSimilarity__obama.mp4",
              "ageitgey__face_recognition__short_hamilton_clip.mp4"]


def run_one(videos: list[Path], engine: str, jobs: int, model: str, work: Path) -> dict:
    results = work / f"{engine}-{jobs}.jsonl"
    cmd = [sys.executable, "-m", "gestsync", "sync", *map(str, videos), "--model", model,
           "--results", str(results), "--engine", engine, "--jobs", str(jobs), "--quiet"]
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    ok = [r for r in rows if r["status"] == "ok"]
    if done.returncode not in (0, 1) or len(rows) != len(videos):
        raise SystemExit(f"{engine} x{jobs} failed ({done.returncode}): {done.stderr[-2000:]}")
    return {"engine": engine, "jobs": jobs, "videos": len(rows), "failed": len(rows) - len(ok),
            "wall_s": wall, "videos_per_min": 60 * len(rows) / wall,
            "video_s_per_s": sum(r["duration_seconds"] for r in ok) / wall,
            "worker_s": sum(r["seconds"] for r in rows),
            "cpu_s": sum(r["cpu_seconds"] for r in rows),
            "load": (load_before, os.getloadavg()[0])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=len(ONE_PERSON), metavar="N",
                   help=f"how many one-person samples (default {len(ONE_PERSON)})")
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--engines", nargs="+", default=["local", "ray"], choices=("local", "ray"))
    p.add_argument("--model", default="builtin")
    args = p.parse_args()
    videos = [SAMPLES / name for name in ONE_PERSON[: args.videos]]
    seconds = sum(_duration(v) for v in videos)
    print(f"{len(videos)} videos, {seconds:.1f} s of video, --model {args.model}, "
          f"{os.cpu_count()} CPUs", flush=True)
    print("| engine | jobs | wall s | videos/min | s of video per s | per-video s | per-video CPU s "
          "| load before/after |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-corpus-") as work:
        for engine in args.engines:
            for jobs in args.jobs:
                r = run_one(videos, engine, jobs, args.model, Path(work))
                print(f"| {engine} | {jobs} | {r['wall_s']:.1f} | {r['videos_per_min']:.1f} | "
                      f"{r['video_s_per_s']:.2f} | {r['worker_s']:.1f} | {r['cpu_s']:.1f} | "
                      f"{r['load'][0]:.1f} / {r['load'][1]:.1f} |", flush=True)


def _duration(path: Path) -> float:
    import av

    with av.open(str(path)) as c:
        return c.duration / 1e6


if __name__ == "__main__":
    main()
