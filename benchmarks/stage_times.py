"""Time a whole gestsync call stage by stage, through its progress hook (no private calls).

Each stage's time runs from its first to its last progress report; what no stage reports
(reading the sound, the estimator, the offset search, writing JSON and plots) is the rest.
"""

from __future__ import annotations

import resource
import time
from typing import Any, Callable


def timed_stages(call: Callable[..., Any], *args, **kwargs) -> tuple[Any, dict]:
    """(result of call(*args, progress=hook, **kwargs), {"seconds", "cpu", "stages": {name:
    (wall s, CPU s)}, "peak_mb"}); CPU seconds count this process's threads only."""
    spans: dict[str, list[float]] = {}

    def hook(stage: str, done: int, total: int | None) -> None:
        now = [time.perf_counter(), time.process_time()]
        spans.setdefault(stage, now + now)[2:] = now

    t0, c0 = time.perf_counter(), time.process_time()
    result = call(*args, progress=hook, **kwargs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    stages = {k: (v[2] - v[0], v[3] - v[1]) for k, v in spans.items()}
    stages["the rest (sound, scoring, outputs)"] = (wall - sum(w for w, _ in stages.values()),
                                                    cpu - sum(c for _, c in stages.values()))
    return result, {"seconds": wall, "cpu": cpu, "stages": stages,
                    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def print_stages(title: str, duration: float, timing: dict) -> None:
    """A table of wall and CPU seconds and real-time factors per stage."""
    print(f"\n{title}")
    print(f"{'stage':40s} {'wall s':>8s} {'wall RTF':>9s} {'CPU s':>8s} {'CPU RTF':>8s}")
    rows = list(timing["stages"].items()) + [("whole call", (timing["seconds"], timing["cpu"]))]
    for stage, (wall, cpu) in rows:
        print(f"{stage:40s} {wall:8.2f} {wall / duration:9.3f} {cpu:8.2f} {cpu / duration:8.3f}")
    print(f"peak resident memory: {timing['peak_mb']:.0f} MB")
