"""Study: the landmark and detection strides of `gestsync speaker`'s people stage, accuracy
against CPU time.

For each (landmark stride, detection stride) of the grid:
- the speaker composite protocol (`gestsync eval --protocol speaker --model builtin`, body
  cue, forced choice): every single-speaker sample's people stage is run with those strides
  (one process, so the CPU seconds are this process's, all threads) and kept in
  `CACHE/p<landmark>_d<detection>/`, then every 2-, 3- and 4-person composite is scored;
- the labelled real samples (tests/data/speakers_truth.json) through
  `find_speakers` (built-in, per frame, one pose process), with the people stage's CPU
  seconds from the progress hook.
Paired against the grid's first entry: trials right with it only / with the other only.

    python studies/people_strides.py --cache DIR [--grid 1x5 2x5 1x10 2x10] [--parts composites labelled]
        [--workers 2]

A second run reuses the cached people stages and their CPU seconds (`cpu.json`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from gestsync import evaluate_speaker as es, scan
from gestsync.samples import single_speaker_clips

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "samples"
TRUTH = json.loads((ROOT / "tests" / "data" / "speakers_truth.json").read_text())


def composite_signals(samples: Path, cache: Path, strides: tuple[int, int]
                      ) -> tuple[list[es.ClipSignals], dict[str, float]]:
    """Every clip's signals with these strides, and each clip's people-stage CPU seconds."""
    folder = cache / f"p{strides[0]}_d{strides[1]}"
    folder.mkdir(parents=True, exist_ok=True)
    times_file = folder / "cpu.json"
    cpu = json.loads(times_file.read_text()) if times_file.is_file() else {}
    signals = []
    for clip, stated in single_speaker_clips(samples):
        start = time.process_time()
        try:
            signals.append(es.clip_signals(clip, stated, scan.no_progress, folder,
                                           strides=strides))
        except Exception as e:  # noqa: BLE001 - as `gestsync eval`: a clip without a person is skipped
            print(f"skipped {clip.name}: {e}", file=sys.stderr)
            continue
        if clip.name not in cpu:
            cpu[clip.name] = time.process_time() - start
            times_file.write_text(json.dumps(cpu, indent=1))
    return signals, cpu


def accuracy_rows(trials: list[es.SpeakerTrial]) -> dict[tuple[int, str], tuple[float, float, int]]:
    """{(people, window): (forced scene accuracy, forced frame accuracy, trials)}."""
    rows = {}
    for n in (2, 3, 4):
        for window in ("whole", "5s"):
            part = [t for t in trials if t.people == n and t.window == window]
            frames = sum(t.speech_frames for t in part)
            rows[(n, window)] = (float(np.mean([t.forced == t.speaker for t in part])),
                                 sum(t.frame_forced for t in part) / max(frames, 1), len(part))
    return rows


def paired(base: list[es.SpeakerTrial], other: list[es.SpeakerTrial]
           ) -> dict[tuple[int, str], tuple[int, int]]:
    """{(people, window): (scenes right with base only, right with other only)}, forced."""
    out = {}
    for a, b in zip(base, other):
        assert (a.clips, a.speaker, a.window, a.start) == (b.clips, b.speaker, b.window, b.start)
        key = (a.people, a.window)
        right_a, right_b = a.forced == a.speaker, b.forced == b.speaker
        lost, won = out.get(key, (0, 0))
        out[key] = (lost + (right_a and not right_b), won + (right_b and not right_a))
    return out


def labelled(strides: tuple[int, int], workers: int = 1) -> tuple[list[str], float]:
    """The labelled samples' answers with these strides and pose processes, and their
    people stages' CPU s (this process's: with `workers` > 1, the main process's only)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from stage_times import timed_stages

    from gestsync.speaker import find_speakers

    scan.SPEAKER_POSE_STRIDE, scan.DETECT_STRIDE = strides
    lines, cpu = [], 0.0
    for name in TRUTH:
        if name == "about":
            continue
        result, timing = timed_stages(find_speakers, SAMPLES / name, model="builtin",
                                      per_frame=True, write_video=False, workers=workers)
        cpu += timing["stages"]["people"][1]
        lines += answers(result.to_dict())
    return lines, cpu


def _speaker_side(d: dict, lo: float, hi: float, scene: int | None = None) -> set[int]:
    """Ids of the tracks (of `scene`, or any) whose median centre lies in [lo, hi] of the width."""
    width = 1280  # the labelled samples are all 1280 px wide
    return {t["id"] for t in d["tracks"] if (scene is None or t["scene"] == scene)
            and lo <= np.median(np.array(t["boxes"])[:, [0, 2]]) / width <= hi}


def answers(d: dict) -> list[str]:
    """One line per labelled stretch: right or wrong, with the tracks' z (scenes) or the
    share of frames given to the labelled speaker (per-frame stretches)."""
    name, out = Path(d["video"]).name, []
    for truth in TRUTH[name]:
        span = f"{name} {truth['start']:g}-{truth['end']:g} s"
        if truth.get("per_frame"):
            inside = _speaker_side(d, *truth["speaker_x"])
            picks = [who in inside for s in d["scenes"] for k, who in enumerate(s["frame_speakers"])
                     if who is not None and truth["start"] <= (s["start_frame"] + k) / 25 < truth["end"]]
            out.append(f"{span} (frames): {np.mean(picks):.2f} to the speaker")
            continue
        middle = (truth["start"] + truth["end"]) / 2
        scene = next(s for s in d["scenes"] if s["start_seconds"] <= middle < s["end_seconds"])
        inside = _speaker_side(d, *truth["speaker_x"], scene=scene["index"])
        zs = ", ".join(f"{t['z']:+.2f}{'*' if t['id'] in inside else ''}" for t in d["tracks"]
                       if t["scene"] == scene["index"])
        verdict = "right" if scene["speaker"] in inside else "wrong"
        out.append(f"{span}: {verdict} ({len(scene['track_ids'])} tracks, z {zs}; * the speaker)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--samples", type=Path, default=SAMPLES)
    ap.add_argument("--grid", nargs="+", default=["1x5", "2x5", "1x10", "2x10"],
                    help="LANDMARKxDETECTION strides; the first is the reference")
    ap.add_argument("--parts", nargs="+", default=["composites", "labelled"],
                    choices=["composites", "labelled"])
    ap.add_argument("--workers", type=int, default=1, help="pose processes for the labelled "
                    "samples (2: the tracking restarts halfway, a change of no meaning that "
                    "shows how much their answers move by chance)")
    args = ap.parse_args()
    grid = [tuple(int(v) for v in g.split("x")) for g in args.grid]
    if "composites" in args.parts:
        composites(args.samples, args.cache, grid)
    if "labelled" in args.parts:
        for strides in grid:
            lines, cpu = labelled(strides, args.workers)
            print(f"\nLabelled samples, strides {strides[0]} x {strides[1]}, {args.workers} "
                  f"pose process(es) (people stage {cpu:.0f} CPU s):", flush=True)
            print("\n".join(f"- {line}" for line in lines), flush=True)


def composites(samples: Path, cache: Path, grid: list[tuple[int, int]]) -> None:
    """The composite protocol's table for each strides of `grid`."""
    results = {}
    for strides in grid:
        signals, cpu = composite_signals(samples, cache, strides)
        results[strides] = (es.run_protocol(signals, (2, 3, 4)), sum(cpu.values()))
    base = results[grid[0]][0]
    print("| strides (landmark x detection) | people-stage CPU s, all clips | "
          + " | ".join(f"{n}, {w}" for n in (2, 3, 4) for w in ("whole", "5 s")) + " |")
    print("|---|---|" + "---|" * 6)
    for strides, (trials, cpu) in results.items():
        rows, pairs = accuracy_rows(trials), paired(base, trials)
        cells = [f"{s:.2f} / {f:.2f} (-{pairs[k][0]} +{pairs[k][1]})" for k, (s, f, _) in rows.items()]
        print(f"| {strides[0]} x {strides[1]} | {cpu:.0f} | " + " | ".join(cells) + " |")
    counts = accuracy_rows(base)
    print("\ncells: forced scene / frame accuracy (scenes right with the first row only / with "
          "this row only); scenes: " + ", ".join(f"{n} {w} {c[2]}" for (n, w), c in counts.items()))


if __name__ == "__main__":
    main()
