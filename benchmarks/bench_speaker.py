"""Real-time factor per stage of `gestsync speaker` (built-in estimator, or `--model`) and
peak memory, for a 720p clip with 2 and with 4 people.

    .venv/bin/python benchmarks/bench_speaker.py [--seconds 60] [--people 2 4] [--workers 1 2]
    .venv/bin/python benchmarks/bench_speaker.py --model random --precision bf16   # the network

2 people: asd_sample_1 (a 720p talk-show stage) looped. 4 people: four single-speaker
samples, each scaled to 640 x 360, in a 2 x 2 grid, the sound of the first kept. Clips are
written streaming (libx264), then each run happens in a fresh process so that its peak
resident memory is its own; with several --workers values, each clip runs once per value
(pose-detection processes; the shot cuts are found in the main process meanwhile). The
real-time factor is seconds of processing per second of
video. Each stage's time is taken from the progress hook: from its first to its last call,
as wall-clock time and as the process's CPU time (all threads; on a shared machine the CPU
time is the steadier figure, and CPU / wall shows how many cores a stage kept busy).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

from pathlib import Path
from typing import Iterator

import av
import numpy as np

from gestsync import media
from stage_times import print_stages, timed_stages

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
SIZE = (1280, 720)
TWO = ["asd_sample_1.mp4"]
FOUR = ["sync_sample_1.mp4", "facebookresearch__VisualVoice__noisy_restaurant.mp4",
        "clone95__Speech-to_lips__obama.mp4", "sync_sample_3.mp4"]


def _looped(path: Path, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """The clip's 25 fps frames at `size`, over and over (decoded again each time)."""
    info = media.probe(path)
    while True:
        yield from media.iter_frames(info, size=size)


MIDDLE = slice(SIZE[0] // 4, SIZE[0] * 3 // 4)  # the middle 640 columns of a 1280 x 720 frame


def _composed(sources: list[Path], layout: str) -> Iterator[np.ndarray]:
    """Frames of a layout: "full" (one source at 1280 x 720), "grid" (four at 640 x 360 in a
    2 x 2 grid), "halves" (the middle 640 x 720 of two sources at 1280 x 720, side by side)
    or "half" (the first of those halves alone, 640 x 720)."""
    tile = (SIZE[0] // 2, SIZE[1] // 2) if layout == "grid" else SIZE
    streams = [_looped(p, tile) for p in sources]
    while True:
        tiles = [next(s) for s in streams]
        if layout == "grid":
            yield np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
        elif layout in ("halves", "half"):
            yield np.ascontiguousarray(np.hstack([t[:, MIDDLE] for t in tiles]))
        else:
            yield tiles[0]


def make_clip(sources: list[Path], out: Path, seconds: float, layout: str | None = None) -> Path:
    """A clip of `layout` (`_composed`; default: "full" for one source, "grid" for four)
    looped to `seconds`, with the first source's sound (libx264, AAC)."""
    layout = layout or ("full" if len(sources) == 1 else "grid")
    total = int(seconds * media.FPS)
    frames = _composed(sources[:1] if layout == "half" else sources, layout)
    audio = media.read_audio(media.probe(sources[0]))
    first = next(frames)
    with av.open(str(out), "w") as c:
        vs = c.add_stream("libx264", rate=media.FPS, options={"preset": "veryfast", "crf": "23"})
        vs.width, vs.height, vs.pix_fmt = first.shape[1], first.shape[0], "yuv420p"
        as_ = c.add_stream("aac", rate=media.SAMPLE_RATE, layout="mono")
        frame = first
        for _ in range(total):
            c.mux(vs.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            frame = next(frames)
        c.mux(vs.encode(None))
        sound = np.resize(audio, total * media.SAMPLES_PER_FRAME).astype(np.float32)
        for start in range(0, len(sound), 1024):
            piece = av.AudioFrame.from_ndarray(sound[None, start:start + 1024], format="flt", layout="mono")
            piece.sample_rate, piece.pts = media.SAMPLE_RATE, start
            c.mux(as_.encode(piece))
        c.mux(as_.encode(None))
    return out


def run_one(clip: Path, out_dir: Path, max_people: int, workers: int, model: str = "builtin",
            precision: str = "fp32") -> dict:
    """find_speakers on `clip` with per-frame decisions; stage times from the progress hook."""
    from gestsync import find_speakers

    result, timing = timed_stages(find_speakers, clip, model=model, per_frame=True,
                                  max_people=max_people, out_dir=out_dir, workers=workers,
                                  device="cpu", precision=precision)
    return {**timing, "duration": result.duration_seconds, "tracks": len(result.tracks),
            "scenes": len(result.scenes)}


def report(name: str, r: dict) -> None:
    print_stages(f"{name}: {r['duration']:.1f} s at 1280x720, {r['tracks']} tracks in "
                 f"{r['scenes']} scene(s)", r["duration"], r)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--people", type=int, nargs="+", default=[2, 4], choices=[2, 4])
    ap.add_argument("--run", type=Path, help=argparse.SUPPRESS)  # child process: one clip
    ap.add_argument("--max-people", type=int, default=4, help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, nargs="+", default=[1], help="pose processes (each "
                    "value one run)")
    ap.add_argument("--model", default="builtin", help="builtin (default), a model file, or "
                    "random: the published network with random weights (speed does not depend "
                    "on them)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    args = ap.parse_args()
    if args.run:
        with tempfile.TemporaryDirectory() as out:
            print(json.dumps(run_one(args.run, Path(out), args.max_people, args.workers[0],
                                     args.model, args.precision)))
        return
    with tempfile.TemporaryDirectory() as work:
        if args.model == "random":
            from bench_sync_model import random_published_checkpoint

            args.model = str(random_published_checkpoint(Path(work) / "model_rgb.pth"))
        for n in args.people:
            sources = [SAMPLES / s for s in (TWO if n == 2 else FOUR)]
            if not all(p.is_file() for p in sources):
                sys.exit(f"missing samples in {SAMPLES}")
            clip = make_clip(sources, Path(work) / f"{n}people.mp4", args.seconds)
            for workers in args.workers:
                child = subprocess.run([sys.executable, __file__, "--run", str(clip),
                                        "--workers", str(workers), "--model", args.model,
                                        "--precision", args.precision],
                                       capture_output=True, text=True, check=True)
                report(f"{n} people, {workers} pose process(es), model {Path(args.model).name} "
                       f"{args.precision}",
                       json.loads(child.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
