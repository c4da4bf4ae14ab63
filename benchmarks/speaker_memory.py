"""Peak memory of `gestsync speaker` on a long 4-person clip, its pose processes included.

    .venv/bin/python benchmarks/speaker_memory.py --minutes 1 2.5 5 10 [--model random]

Builds one minute of the 4-person 2 x 2 composite of `bench_speaker.py` (four single-speaker
samples at 640 x 360, the first one's sound), repeats it packet for packet (no re-encoding)
to each length, and runs `gestsync speaker CLIP --per-frame --no-video --json --quiet` on it
in a child process. Every 0.5 s the resident memory of that process and of all its
descendants (the pose processes) is read from /proc; the table gives the peak of the sum,
the peak of the main process alone, and the CPU seconds of the whole tree. `--trace DIR`
keeps each run's samples (seconds, tree MB, main MB, processes) as CSV.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

from bench_speaker import FOUR, SAMPLES, make_clip

PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def repeated(clip: Path, times: float, out: Path) -> Path:
    """`clip` (whole seconds long) played `times` times over (the last time cut short),
    its packets copied: same picture and sound, no re-encoding."""
    with av.open(str(clip)) as src:
        length = Fraction(int(round(float(src.duration / av.time_base))))
    end = length * Fraction(times).limit_denominator(100)
    with av.open(str(out), "w") as dst:
        streams = {}
        with av.open(str(clip)) as src:
            for s in src.streams:
                streams[s.index] = dst.add_stream_from_template(s)
        for k in range(int(-(-end // length))):
            with av.open(str(clip)) as src:
                for packet in src.demux():
                    if packet.dts is None or (k and packet.pts < 0):  # the demuxer's flush
                        continue  # packet; the sound encoder's priming (before 0) once only
                    shift = int(k * length / packet.time_base)
                    if (packet.pts or 0) * packet.time_base + k * length >= end:
                        continue
                    packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                    packet.stream = streams[packet.stream.index]
                    dst.mux(packet)
    return out


def _tree(pid: int) -> list[int]:
    """`pid` and all its descendants (from /proc/*/stat parent ids)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += parents.get(p, [])
    return out


def _rss_mb(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_MB
    except (OSError, IndexError, ValueError):
        return 0.0


def measured(command: list[str], trace: Path | None) -> dict:
    """Run `command`; its peak tree and main-process memory (MB), wall and tree CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rows, peak_tree, peak_main = [], 0.0, 0.0
    while child.poll() is None:
        pids = _tree(child.pid)
        main, tree = _rss_mb(child.pid), sum(_rss_mb(p) for p in pids)
        peak_tree, peak_main = max(peak_tree, tree), max(peak_main, main)
        rows.append(f"{time.perf_counter() - start:.1f},{tree:.0f},{main:.0f},{len(pids)}")
        time.sleep(0.5)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if child.returncode:
        sys.exit(f"{' '.join(command)} failed: {child.stderr.read()[-2000:]}")
    if trace is not None:
        trace.write_text("seconds,tree_mb,main_mb,processes\n" + "\n".join(rows) + "\n")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"tree_mb": peak_tree, "main_mb": peak_main, "wall": wall, "cpu": cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 2.5, 5, 10])
    ap.add_argument("--model", default="builtin", help="builtin (default), a model file, or "
                    "random: the published network with random weights")
    ap.add_argument("--work", type=Path, help="keep the clips here (default: a temporary folder)")
    ap.add_argument("--trace", type=Path, help="write each run's memory samples here as CSV")
    args = ap.parse_args()
    sources = [SAMPLES / s for s in FOUR]
    if not all(p.is_file() for p in sources):
        sys.exit(f"missing samples in {SAMPLES}")
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        if args.model == "random":
            from bench_sync_model import random_published_checkpoint

            args.model = str(random_published_checkpoint(work / "model_rgb.pth"))
        minute = work / "four_1min.mp4"
        if not minute.is_file():
            make_clip(sources, minute, 60)
        gestsync = Path(sys.executable).with_name("gestsync")
        print(f"| minutes | peak MB, whole tree | peak MB, main process | wall s | CPU s (tree) |"
              f" model {Path(args.model).name}, load {os.getloadavg()[0]:.1f} at the start")
        print("|---|---|---|---|---|", flush=True)
        for minutes in args.minutes:
            clip = work / f"four_{minutes:g}min.mp4"
            if not clip.is_file():
                repeated(minute, minutes, clip)
            trace = None if args.trace is None else args.trace / f"{clip.stem}.csv"
            if trace is not None:
                trace.parent.mkdir(parents=True, exist_ok=True)
            r = measured([str(gestsync), "speaker", str(clip), "--model", args.model,
                          "--per-frame", "--no-video", "--json", "--quiet", "--out",
                          str(work / f"out_{minutes:g}")], trace)
            print(f"| {minutes:g} | {r['tree_mb']:.0f} | {r['main_mb']:.0f} | {r['wall']:.0f} | "
                  f"{r['cpu']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
