"""Real-time factor of each stage of `gestsync sync` (built-in estimator) and peak memory.

    .venv/bin/python benchmarks/bench_sync.py [--seconds 60] [--source CLIP]

Builds a clip of the asked length at 720p by looping a real sample (picture re-encoded with
libx264, sound copied in a loop), then times each stage in one run. The real-time factor is
seconds of processing per second of video: below 0.5 means at least 2x faster than real time.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from gestsync import estimator, media, offset, scan, sync
from gestsync.sync import POSE_STRIDE

LOAD = 0.0
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


CPU = {}  # stage -> CPU seconds (all threads of this process)


def timed(fn, *args, **kw):
    """(value, wall seconds); the CPU seconds go to CPU[fn name]."""
    t, c = time.perf_counter(), time.process_time()
    value = fn(*args, **kw)
    CPU[getattr(fn, "__name__", str(fn))] = time.process_time() - c
    return value, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--source", type=Path, default=SAMPLES / "sync_sample_2.mp4")
    ap.add_argument("--size", default="1280x720", help="W x H of the looped clip (default 1280x720)")
    ap.add_argument("--workers", type=int, default=scan.default_workers(),
                    help="pose-detection processes (default: as `gestsync sync`)")
    args = ap.parse_args()
    if not args.source.is_file():
        sys.exit(f"no source clip {args.source}: give --source")
    global LOAD
    LOAD = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as work:
        size = tuple(int(v) for v in args.size.lower().split("x"))
        clip = make_long_clip(args.source, Path(work) / "long.mp4", args.seconds, size)
        info, t_probe = timed(media.probe, clip)
        _, t_decode = timed(lambda: sum(1 for _ in media.iter_frames(info, size=scan.pose_size(info))))
        (tracks, person), t_people = timed(scan.single_person, info, stride=POSE_STRIDE,
                                           workers=args.workers)
        audio, t_audio = timed(media.read_audio, info)
        lags = offset.candidate_lags(50)

        def estimate():
            motion = estimator.person_motion(scan.person_pieces(tracks, info.num_frames), info.num_frames)
            speech = estimator.speech_signals(audio, info.num_frames)
            ev = estimator.evidence(motion, speech, lags)
            return offset.span_answer(ev, offset.scored_span(info.num_frames, None), lags,
                                      sync.scoring_subwindow("builtin"))

        _, t_estimate = timed(estimate)
        _, t_write = timed(media.write_synced, info, Path(work) / "out.mp4", 7)
    d = info.duration
    rows = [("probe", t_probe, "probe"), ("decode only (640 px)", t_decode, "<lambda>"),
            (f"people: decode + pose + tracks ({args.workers} processes)", t_people, "single_person"),
            ("read audio", t_audio, "read_audio"),
            ("estimator + offset search + confidence", t_estimate, "estimate"),
            ("write synced video", t_write, "write_synced")]
    total = t_probe + t_people + t_audio + t_estimate + t_write
    cpu_total = sum(CPU[k] for k in ("probe", "single_person", "read_audio", "estimate", "write_synced"))
    print(f"clip: {d:.1f} s, {info.width}x{info.height}, {info.num_frames} frames at 25 fps; "
          f"person detected on {int(person.detected.sum())} frames; load average before: "
          f"{LOAD:.1f} on {os.cpu_count()} cores")
    print(f"{'stage':46s} {'wall s':>7s} {'wall RTF':>9s} {'CPU s':>7s} {'CPU RTF':>8s}")
    for name, t, key in rows:
        print(f"{name:46s} {t:7.2f} {t / d:9.3f} {CPU[key]:7.2f} {CPU[key] / d:8.3f}")
    print(f"{'whole command (all but decode-only)':46s} {total:7.2f} {total / d:9.3f} "
          f"{cpu_total:7.2f} {cpu_total / d:8.3f}   -> {d / total:.2f}x real time (wall)")
    print("(CPU s counts this process only: with several pose processes their CPU is not in it)")
    print(f"estimator share of pose stage: {t_estimate / t_people:.1%}")
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":  # guarded: pose worker processes re-import this module
    main()
