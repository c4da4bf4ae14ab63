"""Time a whole gestsync call stage by stage, through its progress hook (no private calls).

Each stage's time runs from its first to its last progress report. Stages may nest
("scoring" holds the model's stages), so their rows do not add up to the whole; the rest is
the time outside every stage (reading the sound, the estimator, the offset search, writing
JSON and plots).
"""

from __future__ import annotations

import os
import resource
import threading
import time
from pathlib import Path
from typing import Any, Callable

REST = "the rest (start, scoring, outputs)"  # what no stage reports


def timed_stages(call: Callable[..., Any], *args, **kwargs) -> tuple[Any, dict]:
    """(result of call(*args, progress=hook, **kwargs), {"seconds", "cpu", "stages": {name:
    (wall s, CPU s)}, "peak_mb", "stage_peaks_mb": {name: MB}}); CPU seconds count this
    process's threads only. A stage's peak is the largest resident memory sampled (every
    20 ms, Linux only) from its first report until another stage reports."""
    spans: dict[str, list[float]] = {}
    current, peaks = [REST], {}

    def hook(stage: str, done: int, total: int | None) -> None:
        now = [time.perf_counter(), time.process_time()]
        spans.setdefault(stage, now + now)[2:] = now
        current[0] = stage

    stop = threading.Event()
    sampler = threading.Thread(target=_sample_rss, args=(current, peaks, stop), daemon=True)
    sampler.start()
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        result = call(*args, progress=hook, **kwargs)
    finally:
        stop.set()
        sampler.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    stages = {k: (v[2] - v[0], v[3] - v[1]) for k, v in spans.items()}
    inside_wall, inside_cpu = _covered(spans.values())
    stages[REST] = (wall - inside_wall, cpu - inside_cpu)
    return result, {"seconds": wall, "cpu": cpu, "stages": stages, "stage_peaks_mb": peaks,
                    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _covered(spans) -> tuple[float, float]:
    """(wall s, CPU s) inside the union of stage spans [wall0, cpu0, wall1, cpu1]."""
    merged: list[list[float]] = []
    for w0, c0, w1, c1 in sorted(spans):
        if merged and w0 <= merged[-1][2]:
            if w1 > merged[-1][2]:
                merged[-1][2:] = [w1, c1]
        else:
            merged.append([w0, c0, w1, c1])
    return sum(m[2] - m[0] for m in merged), sum(m[3] - m[1] for m in merged)


def _sample_rss(current: list[str], peaks: dict[str, float], stop: threading.Event) -> None:
    """Record the resident memory (MB) of this process every 20 ms under the current stage."""
    statm = Path("/proc/self/statm")
    if not statm.exists():
        return
    page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20
    while not stop.wait(0.02):
        rss = int(statm.read_text().split()[1]) * page_mb
        peaks[current[0]] = max(peaks.get(current[0], 0.0), rss)


def print_stages(title: str, duration: float, timing: dict) -> None:
    """A table of wall and CPU seconds and real-time factors per stage."""
    print(f"\n{title}")
    print(f"{'stage':40s} {'wall s':>8s} {'wall RTF':>9s} {'CPU s':>8s} {'CPU RTF':>8s} {'peak MB':>8s}")
    rows = list(timing["stages"].items()) + [("whole call", (timing["seconds"], timing["cpu"]))]
    peaks = timing.get("stage_peaks_mb", {})
    for stage, (wall, cpu) in rows:
        peak = f"{peaks[stage]:8.0f}" if stage in peaks else f"{'':8s}"
        print(f"{stage:40s} {wall:8.2f} {wall / duration:9.3f} {cpu:8.2f} {cpu / duration:8.3f} {peak}")
    print(f"peak resident memory: {timing['peak_mb']:.0f} MB")
