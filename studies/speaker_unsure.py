"""Does "the body alone names someone else" belong in the speaker confidence?

Reads the trials of `gestsync eval --protocol speaker --cues face+body --json-out F` and
compares two calibrations of the forced scene answers (2+ people), each checked leave one
clip out (fitted on the composites without clip c, applied to those with it):
  old:      sigmoid(a + b logit(raw) + c log(people))
  disagree: the same + d * [the body alone names another person]  (FACE_CALIBRATION)
It prints the log loss, the Brier score, the mean confidence against the share right for
answers where the cues agree and where they disagree, and a reliability table.

    python studies/speaker_unsure.py results/speaker_facebody.jsonl
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from gestsync import calibration

BINS = (0.0, 0.5, 0.7, 0.8, 0.9, 1.0001)


def forced_rows(path: str) -> list[dict]:
    """The forced scene answers of 2+ people with speech and a face cue's disagree flag."""
    rows = [json.loads(line) for line in open(path)]
    return [r for r in rows if r["people"] >= 2 and r["forced_confidence"] is not None
            and r["forced_disagree"] is not None]


def design(rows: list[dict], with_disagree: bool) -> np.ndarray:
    raw = np.array([r["forced_confidence"] for r in rows])
    extra = [np.log([r["people"] for r in rows])]
    if with_disagree:
        extra.append(np.array([r["forced_disagree"] for r in rows], float))
    return calibration.features(raw, *extra)


def leave_one_clip_out(rows: list[dict], with_disagree: bool):
    """(confidence, right, disagree) of every (clip, trial with that clip)."""
    right = np.array([r["forced"] == r["speaker"] for r in rows], float)
    out = []
    for clip in sorted({c for r in rows for c in r["clips"]}):
        train = [i for i, r in enumerate(rows) if clip not in r["clips"]]
        test = [i for i, r in enumerate(rows) if clip in r["clips"]]
        w = calibration.fit(design([rows[i] for i in train], with_disagree), right[train])
        p = calibration.apply(design([rows[i] for i in test], with_disagree), w)
        out += [(p[k], right[i], rows[i]["forced_disagree"]) for k, i in enumerate(test)]
    return tuple(np.array(col) for col in zip(*out))


def report(name: str, p: np.ndarray, y: np.ndarray, d: np.ndarray) -> None:
    d = d.astype(bool)
    loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    print(f"\n{name}: log loss {loss:.3f}, Brier {np.mean((p - y) ** 2):.3f}; cues agree: "
          f"confidence {p[~d].mean():.2f}, right {y[~d].mean():.2f}; disagree: confidence "
          f"{p[d].mean():.2f}, right {y[d].mean():.2f}")
    print("| confidence | answers | mean confidence | right |\n|---|---|---|---|")
    for lo, hi in zip(BINS, BINS[1:]):
        m = (p >= lo) & (p < hi)
        if m.any():
            print(f"| {lo:.1f}-{min(hi, 1):.1f} | {m.sum()} | {p[m].mean():.2f} | {y[m].mean():.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trials", help="--json-out of gestsync eval --protocol speaker --cues face+body")
    rows = forced_rows(ap.parse_args().trials)
    print(f"{len(rows)} forced scene answers of 2-4 people (every window), leave one clip out")
    for name, flag in (("old", False), ("disagree", True)):
        report(name, *leave_one_clip_out(rows, flag))


if __name__ == "__main__":
    main()
