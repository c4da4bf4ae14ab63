"""Video embedding speed and memory: the authors' way vs `GestSyncModel.embed_video_clip`.

The authors' way: every 25-frame window (one per frame) goes through the whole network,
so the conv stack runs 21 times per frame (they also held all windows at once in
float64; here, more kindly, float32 windows in batches). Ours: the conv stack once per
frame over overlapping chunks, then the transformer per window.

    python benchmarks/bench_model.py --frames 110            # both ways, same clip
    python benchmarks/bench_model.py --frames 1000 --memory-only   # ours, streamed, RSS curve

Weights are random unless --checkpoint is given (speed does not depend on them); frames
are random uint8 RGB 270 x 480. Peak RSS per phase is sampled from /proc/self/statm (Linux).

Measured 2026-11-24 on a shared 2-core CPU (torch 2.13 CPU, load 4-5, so wall times are noisy):
T=110: ours 6.4 s CPU, peak RSS 0.78 GB; authors' way 74 s CPU, 2.0 GB; 11.7x less CPU.
T=1000 streamed: 59 s CPU (59 ms per window), peak RSS 0.78 GB, flat along the clip.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from gestsync.checkpoint import load_model
from gestsync.model import FRAME_HEIGHT, FRAME_WIDTH, GestSyncModel

PAGE = 4096  # bytes per page in /proc/self/statm on x86_64 Linux
MB = 1e6


def rss_mb() -> float:
    """Current resident set size of this process in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / MB


class PeakRss:
    """Context manager sampling RSS every `interval` s; `.peak` is the maximum seen (MB)."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval, self.peak, self._stop = interval, 0.0, threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRss:
        self.peak = rss_mb()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def authors_way(model: GestSyncModel, frames: np.ndarray, batch: int) -> torch.Tensor:
    """Every window through the whole network: `(T - 24) x 1024`."""
    n_windows = frames.shape[0] - 24
    out = []
    with torch.no_grad():
        for s in range(0, n_windows, batch):
            starts = range(s, min(s + batch, n_windows))
            windows = torch.stack([torch.from_numpy(frames[i : i + 25]) for i in starts])  # B x 25 x H x W x 3
            windows = windows.permute(0, 4, 1, 2, 3).float().div_(255)  # B x 3 x 25 x H x W
            out.append(model.embed_video(windows).cpu())
    return torch.cat(out)


def timed(label: str, fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float, float]:
    """Run fn; print and return (result, wall seconds, CPU seconds of this process)."""
    with PeakRss() as mem:
        start, cpu_start = time.perf_counter(), time.process_time()
        result = fn()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(f"{label:<40} {seconds:8.2f} s wall {cpu:8.2f} s CPU   peak RSS {mem.peak:7.0f} MB")
    return result, seconds, cpu


def compare(args: argparse.Namespace, model: GestSyncModel) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (args.frames, FRAME_HEIGHT, FRAME_WIDTH, 3), dtype=np.uint8)
    print(f"clip: {args.frames} frames (uint8, {frames.nbytes / MB:.0f} MB), {args.frames - 24} windows; "
          f"RSS before: {rss_mb():.0f} MB")  # fmt: skip
    ours, t_ours, cpu_ours = timed(
        f"embed_video_clip (chunk {args.chunk})", lambda: model.embed_video_clip(frames, args.chunk)
    )
    theirs, t_theirs, cpu_theirs = timed(
        f"authors' way (batch {args.batch} windows)", lambda: authors_way(model, frames, args.batch)
    )
    err = float((ours - theirs).abs().max() / theirs.abs().max())
    print(f"speed-up: {t_theirs / t_ours:.1f}x wall, {cpu_theirs / cpu_ours:.1f}x CPU   "
          f"max |diff| / max |value|: {err:.1e}")  # fmt: skip
    n = args.frames - 24
    print(f"wall per window: authors {1e3 * t_theirs / n:.0f} ms, ours {1e3 * t_ours / n:.0f} ms")


def streamed_frames(n: int) -> Iterator[np.ndarray]:
    """n random uint8 frames, made lazily from a small pool (the clip is never held)."""
    pool = np.random.default_rng(0).integers(0, 256, (16, FRAME_HEIGHT, FRAME_WIDTH, 3), dtype=np.uint8)
    return itertools.islice(itertools.cycle(pool), n)


def memory_curve(args: argparse.Namespace, model: GestSyncModel) -> None:
    curve: list[tuple[int, float]] = []
    every = max(1, args.frames // 10)

    def progress(step: str, done: int, total: int | None) -> None:
        if not curve or done - curve[-1][0] >= every:
            curve.append((done, rss_mb()))

    print(f"streamed clip: {args.frames} frames; RSS before: {rss_mb():.0f} MB")
    timed(f"embed_video_clip (chunk {args.chunk})",
          lambda: model.embed_video_clip(streamed_frames(args.frames), args.chunk, progress=progress))  # fmt: skip
    print("frames read -> RSS (MB): " + ", ".join(f"{d}: {r:.0f}" for d, r in curve))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=110, help="clip length T (>= 25)")
    parser.add_argument("--chunk", type=int, default=32, help="embed_video_clip conv-stack chunk")
    parser.add_argument("--batch", type=int, default=8, help="windows per batch, authors' way")
    parser.add_argument("--memory-only", action="store_true", help="only ours, streamed, with an RSS curve")
    parser.add_argument("--checkpoint", help="weights to load (default: random)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.frames < 25:
        parser.error("--frames must be at least 25")
    model = load_model(args.checkpoint, args.device) if args.checkpoint else GestSyncModel().to(args.device).eval()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}; "
          f"RSS with model: {rss_mb():.0f} MB")  # fmt: skip
    if args.memory_only:
        memory_curve(args, model)
    else:
        compare(args, model)
    print(f"process peak RSS (ru_maxrss): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
