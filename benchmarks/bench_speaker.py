"""Real-time factor per stage of `gestsync speaker` (built-in estimator) and peak memory,
for a 720p clip with 2 and with 4 people.

    .venv/bin/python benchmarks/bench_speaker.py [--seconds 60] [--people 2 4] [--workers 1 2]

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


def make_clip(sources: list[Path], out: Path, seconds: float) -> Path:
    """One source looped at 1280 x 720, or four in a 2 x 2 grid; the first one's sound."""
    total = int(seconds * media.FPS)
    tile = SIZE if len(sources) == 1 else (SIZE[0] // 2, SIZE[1] // 2)
    streams = [_looped(p, tile) for p in sources]
    audio = media.read_audio(media.probe(sources[0]))
    with av.open(str(out), "w") as c:
        vs = c.add_stream("libx264", rate=media.FPS, options={"preset": "veryfast", "crf": "23"})
        vs.width, vs.height, vs.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        as_ = c.add_stream("aac", rate=media.SAMPLE_RATE, layout="mono")
        for _ in range(total):
            tiles = [next(s) for s in streams]
            frame = tiles[0] if len(tiles) == 1 else np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
            c.mux(vs.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        c.mux(vs.encode(None))
        sound = np.resize(audio, total * media.SAMPLES_PER_FRAME).astype(np.float32)
        for start in range(0, len(sound), 1024):
            piece = av.AudioFrame.from_ndarray(sound[None, start:start + 1024], format="flt", layout="mono")
            piece.sample_rate, piece.pts = media.SAMPLE_RATE, start
            c.mux(as_.encode(piece))
        c.mux(as_.encode(None))
    return out


def run_one(clip: Path, out_dir: Path, max_people: int, workers: int) -> dict:
    """find_speakers on `clip` with per-frame decisions; stage times from the progress hook."""
    from gestsync import find_speakers

    result, timing = timed_stages(find_speakers, clip, model="builtin", per_frame=True,
                                  max_people=max_people, out_dir=out_dir, workers=workers)
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
    args = ap.parse_args()
    if args.run:
        with tempfile.TemporaryDirectory() as out:
            print(json.dumps(run_one(args.run, Path(out), args.max_people, args.workers[0])))
        return
    with tempfile.TemporaryDirectory() as work:
        for n in args.people:
            sources = [SAMPLES / s for s in (TWO if n == 2 else FOUR)]
            if not all(p.is_file() for p in sources):
                sys.exit(f"missing samples in {SAMPLES}")
            clip = make_clip(sources, Path(work) / f"{n}people.mp4", args.seconds)
            for workers in args.workers:
                child = subprocess.run([sys.executable, __file__, "--run", str(clip),
                                        "--workers", str(workers)],
                                       capture_output=True, text=True, check=True)
                report(f"{n} people, {workers} pose process(es)",
                       json.loads(child.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
