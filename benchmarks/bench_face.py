"""The face cue's extra time against the people stage, in one run.

    OMP_NUM_THREADS=1 python benchmarks/bench_face.py [VIDEO ...] [--stride 2]

For each clip (default: a body sample and a talking-head sample): the people stage of
`gestsync sync` (people count and one-person pose pass, `scan.single_person`, pose
stride 2, one process), then the face stage of `--cues face+body` (`face.person_mouth`: one
more decode and the face mesh on every `--stride`-th frame in the person's head box), and
the ratio of the two. Target: at most 0.30.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gestsync import face, media, scan, sync

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
DEFAULT = (SAMPLES / "sync_sample_1.mp4",
           SAMPLES / "OpenTalker__SadTalker__WDA_KatieHill_000.mp4")


def measure(video: Path, stride: int) -> tuple[float, float, int]:
    info = media.probe(video)
    t0 = time.perf_counter()
    tracks, _ = scan.single_person(info, stride=sync.POSE_STRIDE, need_hands=False)
    t1 = time.perf_counter()
    opening = face.person_mouth(info, scan.person_pieces(tracks, info.num_frames), stride)
    t2 = time.perf_counter()
    found = int(face.bridge(opening)[1].sum())
    return t1 - t0, t2 - t1, found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="*", type=Path, default=list(DEFAULT))
    ap.add_argument("--stride", type=int, default=face.FACE_STRIDE)
    args = ap.parse_args()
    print("| clip | frames | people stage s | face stage s | ratio | frames with a face |")
    print("|---|---|---|---|---|---|")
    for video in args.videos:
        frames = media.probe(video).num_frames
        people_s, face_s, found = measure(video, args.stride)
        print(f"| {video.name} | {frames} | {people_s:.2f} | {face_s:.2f} | "
              f"{face_s / people_s:.2f} | {found} |", flush=True)


if __name__ == "__main__":
    main()
