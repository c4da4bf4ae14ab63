"""Study: do the offset hints of `gestsync sync` lead somewhere? Measured on saved trials.

Reads trial files of `gestsync eval --json-out` (the offset protocol, one per cue), their
confidence recomputed with the shipped rules (`cues.Cues.calibration`), and prints:

1. `--cues face+body` after an uncertain body answer (the hint `suggested_cues`): for the
   windows where the hint fires (body not sure, the face in view on at least
   `face.FACE_VISIBLE_SHARE` of the person's frames), how often following it makes the
   answer better (body wrong, face+body right) or worse, and how often it ends in a
   corrected copy that is right or wrong (face+body sure).
2. What makes a `--segments` stretch sure: per cue and window length, the share of windows
   that are sure and how often those are right.

Run: python studies/offset_hints.py --body B.jsonl --face-body F.jsonl [--face C.jsonl]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from gestsync import cues, face
from gestsync.evaluate import AGREE, CONTEXTS, _read_trials


def keyed(trials) -> dict:
    """(clip, shift, context, window index) -> trial."""
    seen, out = defaultdict(int), {}
    for t in trials:
        group = (t.clip, t.shift, t.context)
        out[group + (seen[group],)] = t
        seen[group] += 1
    return out


def right(t) -> bool:
    return abs(t.error) <= AGREE


def sure(t) -> bool:
    return cues.parse(t.cues).calibration.sure(t.confidence)


def hint_table(body, face_body) -> list[str]:
    """Where the face+body hint fires, what following it does, per context."""
    pairs = [(b, face_body[k]) for k, b in keyed(body).items() if k in face_body]
    fired = [(b, f) for b, f in pairs
             if not sure(b) and (b.face_share or 0) >= face.FACE_VISIBLE_SHARE]
    out = ["| context | hint fires | better | worse | same | copy right | copy wrong |",
           "|---|---|---|---|---|---|---|"]
    for context in (*CONTEXTS, "all"):
        part = [(b, f) for b, f in fired if context in ("all", b.context)]
        if not part:
            continue
        better = sum(right(f) and not right(b) for b, f in part)
        worse = sum(right(b) and not right(f) for b, f in part)
        copies = [f for _, f in part if sure(f) and f.predicted != 0]
        out.append(f"| {context} | {len(part)} of {sum(c == context or context == 'all' for c in (b.context for b, _ in pairs))} "
                   f"| {better} | {worse} | {len(part) - better - worse} "
                   f"| {sum(map(right, copies))} | {sum(not right(f) for f in copies)} |")
    clips = sorted({b.clip for b, _ in fired})
    out.append("")
    out.append("Clips where it fires: " + ", ".join(clips))
    return out


def sure_table(named: dict) -> list[str]:
    """Per cue and window length: sure share, and how often the sure ones are right."""
    out = ["| cues | window | sure (share) | sure and right | all right | windows |",
           "|---|---|---|---|---|---|"]
    for name, trials in named.items():
        for context in CONTEXTS:
            part = [t for t in trials if t.context == context]
            if not part:
                continue
            good = [t for t in part if sure(t)]
            ok = f"{np.mean([right(t) for t in good]):.2f}" if good else "-"
            out.append(f"| {name} | {context} | {len(good)} ({len(good) / len(part):.2f}) | {ok} "
                       f"| {np.mean([right(t) for t in part]):.2f} | {len(part)} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--body", required=True, type=Path)
    parser.add_argument("--face-body", required=True, type=Path)
    parser.add_argument("--face", type=Path)
    args = parser.parse_args()
    body, _ = _read_trials(args.body)
    face_body, _ = _read_trials(args.face_body)
    named = {"body": body, "face+body": face_body}
    if args.face:
        named["face"] = _read_trials(args.face)[0]
    print("### The face+body hint after an uncertain body answer\n")
    print("\n".join(hint_table(body, keyed(face_body))))
    print("\n### Sure windows per cue and length\n")
    print("\n".join(sure_table(named)))


if __name__ == "__main__":
    main()
