"""The face cue study: mouth lead, fusion weight and band, on simulated shifts.

    OMP_NUM_THREADS=1 nice python benchmarks/face_study.py [--cache /tmp/face_cache]
        [--shifts=-20:20:2] [--weights 0,0.5,1,2,4] [--leads 0,1,2,3]

The first run caches, per single-speaker clip of MANIFEST.tsv with a known offset (the
talking-head crops included), what the product's people stage gives (`scan.single_person`
with the pose stride of `gestsync sync`), the face mesh's mouth opening of that person
(`face.person_mouth`) and the 16 kHz sound. Every setting is then scored from the cache on
the offset protocol (docs/evaluation.md), simulated: the in-sync sound moved by s frames
with silence padding, whole clip and 5 s windows, candidates [-50, 50]. Accuracy is
reported per fit/check part of the clips (`evaluate.fit_check_split`), on which the
shipped settings were chosen and then checked.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from gestsync import cues as cue_names
from gestsync import estimator, evaluate, face, media, offset, scan, sync
from gestsync.audio import SAMPLES_PER_FRAME
from gestsync.errors import GestsyncError

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
LAGS = offset.candidate_lags(50)
CONTEXTS = {"whole": None, "5s": 125}


def build(path: Path, stated: int, dst: Path) -> None:
    info = media.probe(path)
    t0 = time.perf_counter()
    tracks, person = scan.single_person(info, stride=sync.POSE_STRIDE, need_hands=False)
    t1 = time.perf_counter()
    pieces = scan.person_pieces(tracks, info.num_frames)
    opening = face.person_mouth(info, pieces)
    t2 = time.perf_counter()
    motion = estimator.person_motion(pieces, info.num_frames)
    dst.parent.mkdir(parents=True, exist_ok=True)
    np.savez(dst, motion=motion, opening=opening, audio=media.read_audio(info), stated=stated,
             people_s=t1 - t0, face_s=t2 - t1,
             face_share=face.face_share(np.concatenate([k for _, k in pieces]))
             if pieces else 0.0)


def shifted(audio: np.ndarray, move: int) -> np.ndarray:
    move *= SAMPLES_PER_FRAME
    out = np.zeros_like(audio)
    if move >= 0:
        out[move:] = audio[:len(audio) - move]
    else:
        out[:move] = audio[-move:]
    return out


def trials(clip: dict, shifts, cues: str, weight: float, lead: int):
    face.MOUTH_LEAD_FRAMES = lead
    n = clip["motion"].shape[1]
    signals, seen = face.mouth_signals(clip["opening"][:n])
    out = []
    for s in shifts:
        speech = estimator.speech_signals(shifted(clip["audio"], s - clip["stated"]), n)
        body = estimator.evidence(clip["motion"], speech, LAGS)
        chosen = cue_names.parse(cues)
        mouth = face.mouth_evidence(signals, seen, speech, LAGS) if chosen.reads_face else None
        ev = chosen.fuse(body, mouth, seen, weight)
        for name, ctx in CONTEXTS.items():
            length = ctx or n
            for start in range(0, n - length + 1, length):
                best, agree, _, _ = offset.span_answer(ev, (start, start + length), LAGS,
                                                       estimator.SUBWINDOW_FRAMES)
                out.append((name, s, best, agree, length))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", default=str(SAMPLES))
    ap.add_argument("--cache", default="/tmp/face_cache")
    ap.add_argument("--shifts", default="-20:20:2")
    ap.add_argument("--weights", default="0,1,2,4")
    ap.add_argument("--leads", default=str(face.MOUTH_LEAD_FRAMES))
    ap.add_argument("--cues", default="face+body,face")
    ap.add_argument("--out", help="write the trials of the first setting as JSON lines")
    args = ap.parse_args()
    clips = {}
    for path, stated in evaluate.single_speaker_clips(Path(args.samples), face_only=True):
        dst = Path(args.cache) / f"{path.stem}.npz"
        if not dst.exists():
            print("caching", path.name, flush=True)
            try:
                build(path, stated, dst)
            except GestsyncError as e:  # as `gestsync eval`, which skips such clips
                print(f"skipped {path.name}: {e}")
                continue
        with np.load(dst) as d:
            clips[path.name] = {k: d[k] for k in d.files}
    shifts = evaluate.parse_shifts(args.shifts)
    for name, c in clips.items():
        share = np.mean(face.bridge(c["opening"])[1])
        print(f"{name}: face {share:.2f} (pose hint {float(c['face_share']):.2f}), people "
              f"{float(c['people_s']):.1f} s, face {float(c['face_s']):.1f} s")
    for cues in args.cues.split(","):
        for lead in map(int, args.leads.split(",")):
            for weight in map(float, args.weights.split(",")):
                if cues == "face" and weight != float(args.weights.split(",")[0]):
                    continue
                report(clips, shifts, cues, weight, lead)


def report(clips, shifts, cues, weight, lead) -> None:
    rows = {}
    for name, clip in clips.items():
        part = evaluate.fit_check_split(name)
        kind = "face-only" if name.startswith(("OpenTalker", "Sindhu")) else "body"
        for ctx, s, best, _, _ in trials(clip, shifts, cues, weight, lead):
            rows.setdefault((part, kind, ctx), []).append(abs(best - s) <= 2)
    text = ", ".join(f"{p}/{k}/{c} {np.mean(v):.2f}" for (p, k, c), v in sorted(rows.items()))
    print(f"cues={cues} weight={weight:g} lead={lead}: {text}", flush=True)


if __name__ == "__main__":
    main()
