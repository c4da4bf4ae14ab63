"""Real-time factor of each stage of `gestsync sync` (built-in estimator) and peak memory.

    .venv/bin/python benchmarks/bench_sync.py [--seconds 60] [--source CLIP]

Builds a clip of the asked length at 720p by looping a real sample (picture re-encoded with
libx264, sound copied in a loop), then times each stage in one run. The real-time factor is
seconds of processing per second of video: below 0.5 means at least 2x faster than real time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

from gestsync import media, scan
from gestsync.sync import find_offset
from stage_times import print_stages, timed_stages

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"


def make_long_clip(source: Path, out: Path, seconds: float, size=(1280, 720)) -> Path:
    """Loop `source`'s 25 fps picture and 16 kHz sound to `seconds` at `size`."""
    info = media.probe(source)
    frames = list(media.iter_frames(info, size=size))
    audio = media.read_audio(info)
    total = int(seconds * media.FPS)
    with av.open(str(out), "w") as c:
        vs = c.add_stream("libx264", rate=media.FPS, options={"preset": "veryfast", "crf": "23"})
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        as_ = c.add_stream("aac", rate=media.SAMPLE_RATE, layout="mono")
        for k in range(total):
            c.mux(vs.encode(av.VideoFrame.from_ndarray(frames[k % len(frames)], format="rgb24")))
        c.mux(vs.encode(None))
        sound = np.tile(audio, total // info.num_frames + 1)[: total * media.SAMPLES_PER_FRAME]
        for start in range(0, len(sound), 1024):
            piece = sound[start:start + 1024][None].astype(np.float32)
            frame = av.AudioFrame.from_ndarray(piece, format="flt", layout="mono")
            frame.sample_rate, frame.pts = media.SAMPLE_RATE, start
            c.mux(as_.encode(frame))
        c.mux(as_.encode(None))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--source", type=Path, default=SAMPLES / "sync_sample_2.mp4")
    ap.add_argument("--size", default="1280x720", help="W x H of the looped clip (default 1280x720)")
    ap.add_argument("--workers", type=int, default=scan.default_workers(),
                    help="pose-detection processes (default: as `gestsync sync`)")
    ap.add_argument("--cues", default="body", help="body (default), face+body or face")
    args = ap.parse_args()
    if not args.source.is_file():
        sys.exit(f"no source clip {args.source}: give --source")
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as work:
        size = tuple(int(v) for v in args.size.lower().split("x"))
        clip = make_long_clip(args.source, Path(work) / "long.mp4", args.seconds, size)
        result, timing = timed_stages(find_offset, clip, model="builtin", out_dir=Path(work) / "out",
                                      always_write=True, workers=args.workers, cues=args.cues)
    print(f"clip: {result.duration_seconds:.1f} s at {args.size}, {result.num_frames} frames at 25 fps; "
          f"{args.workers} pose processes (their CPU is not counted here); load average "
          f"before: {load:.1f} on {os.cpu_count()} cores")
    print_stages(f"gestsync sync --cues {args.cues} (the corrected copy written)",
                 result.duration_seconds, timing)
    print(f"-> {result.duration_seconds / timing['seconds']:.2f}x real time (wall)")


if __name__ == "__main__":  # guarded: pose worker processes re-import this module
    main()
