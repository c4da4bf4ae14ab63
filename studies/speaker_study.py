"""Study: ways to score "who is speaking" from body motion, on the composite-scene protocol.

Reads each single-speaker sample's cached people stage (`gestsync eval --protocol speaker
--cache DIR` writes it), then scores every 2-person composite (each person's own motion,
one person's sound) with several scene scores, forced choice. Prints accuracy per scene
length. Run: python studies/speaker_study.py --samples ../shared/samples --cache DIR
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from gestsync import estimator, scan, speaker_scores as ss
from gestsync.samples import single_speaker_clips
from gestsync.evaluate_speaker import WINDOWS, clip_signals
from gestsync.estimator import heard_signal


def heard(speech: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Standardised speech, averaged over the sound of frames t + lo .. t + hi."""
    sound = estimator.combined_signal(speech)
    frames = np.clip(np.arange(len(sound))[:, None] + np.arange(lo, hi + 1)[None], 0, len(sound) - 1)
    return sound[frames].mean(axis=1)


def z_whole(ev: np.ndarray) -> float:
    return float(ss.z_scores(np.nanmean(ev, axis=1)))


def z_blocks(ev: np.ndarray, block: int = 50) -> float:
    """Mean over 2 s blocks of each block's z (zero lag against the shifted rows)."""
    n = ev.shape[1] // block
    if n < 1:
        return z_whole(ev)
    means = ev[:, : n * block].reshape(len(ev), n, block).mean(axis=2).T  # n x (1 + S)
    return float(np.nanmean(ss.z_scores(means)))


def score(motion: np.ndarray, speech: np.ndarray, method: str) -> float:
    if method == "shipped (lead 0..4, whole z)":
        return z_whole(ss.circular_evidence(estimator.combined_signal(motion), heard_signal(speech)))
    if method == "lead 0..6":
        return z_whole(ss.circular_evidence(estimator.combined_signal(motion), heard(speech, 0, 6)))
    if method == "lead 1..3":
        return z_whole(ss.circular_evidence(estimator.combined_signal(motion), heard(speech, 1, 3)))
    if method == "2 s block z":
        return z_blocks(ss.circular_evidence(estimator.combined_signal(motion), heard_signal(speech)))
    if method == "per part, mean z":
        h = heard_signal(speech)
        return float(np.mean([z_whole(ss.circular_evidence(estimator.combined_signal(m[None]), h))
                              for m in motion]))
    if method == "per part, max z":
        h = heard_signal(speech)
        return float(np.max([z_whole(ss.circular_evidence(estimator.combined_signal(m[None]), h))
                             for m in motion]))
    if method == "hands only":
        return z_whole(ss.circular_evidence(estimator.combined_signal(motion[:1]), heard_signal(speech)))
    if method == "energy only":
        return z_whole(ss.circular_evidence(estimator.combined_signal(motion), heard_signal(speech[:1])))
    if method == "onsets only":
        return z_whole(ss.circular_evidence(estimator.combined_signal(motion), heard_signal(speech[1:])))
    raise ValueError(method)


METHODS = ("shipped (lead 0..4, whole z)", "lead 0..6", "lead 1..3", "2 s block z",
           "per part, mean z", "per part, max z", "hands only", "energy only", "onsets only")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", default="../shared/samples")
    p.add_argument("--cache", required=True)
    args = p.parse_args()
    clips = [clip_signals(c, s, scan.no_progress, Path(args.cache))
             for c, s in single_speaker_clips(Path(args.samples))]
    print("| method | " + " | ".join(f"2 people, {w}" for w in WINDOWS) + " |")
    print("|---|" + "---|" * len(WINDOWS))
    for method in METHODS:
        cells = []
        for window, size in WINDOWS.items():
            right = []
            for a, b in itertools.combinations(clips, 2):
                length = min(a.length, b.length)
                size_ = size or length
                for j, speaker in enumerate((a, b)):
                    for start in range(0, length - size_ + 1, size_):
                        span = slice(start, start + size_)
                        z = [score(c.motion[:, span], speaker.speech[:, span], method) for c in (a, b)]
                        right.append(int(np.nanargmax(z)) == j)
            cells.append(f"{np.mean(right):.2f} ({len(right)})")
        print(f"| {method} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
