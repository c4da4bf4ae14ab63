"""`gestsync eval`: the offset protocol of docs/evaluation.md on a folder of in-sync clips.

For every single-speaker clip with a known offset in MANIFEST.tsv, real copies are written
with the picture copied packet for packet and the sound moved by s frames (each s in
--shifts, after undoing the clip's own stated offset). Every copy goes through the same
scoring as `gestsync sync`; the pose stage runs once per clip because the picture of every
copy is bit-identical to the source. Each copy is scored on every non-overlapping window
of each context length, and each window counts as one trial.
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import cues as cue_names
from . import estimator, face, media, offset, scan, scoring
from .cues import Cues
from .errors import GestsyncError
from .samples import FACE_ONLY, fit_check_split, single_speaker_clips  # noqa: F401 - also used as evaluate.*
from .sync import POSE_STRIDE

TOLERANCES = (0, 1, 2, 5)
AGREE = offset.AGREE_FRAMES  # an answer within this many frames of the truth is right
CONTEXTS = {"5s": 125, "10s": 250, "whole": None}
HANDS_WELL_VISIBLE = 0.8  # share of the person's frames with a hand in view
FACE_WELL_VISIBLE = 0.8  # share of the clip's frames where the face mesh found the face
LONG_CLIP_FRAMES = 20 * estimator.FPS  # the whole-clip accuracy target is for clips this long (docs/evaluation.md)


@dataclass
class Trial:
    clip: str
    hands: str  # "visible" or "partly"
    context: str
    shift: int
    predicted: int
    confidence: float  # calibrated
    agreement: float  # raw bootstrap agreement
    scored_frames: int
    cues: str = cue_names.DEFAULT.name  # the cues scored (a `cues.CHOICES` name)
    face: str = ""  # with a face cue: "face-only crop", "visible" (a face on
    # FACE_WELL_VISIBLE of the frames or more) or "partly"
    scores: list | None = None  # each candidate lag's score (None: not scored)
    picks: list | None = None  # how many bootstrap resamples picked each candidate lag
    margin: float = offset.MAX_MARGIN  # `offset.peak_margin`
    competing: list | None = None  # `offset.competing_lags` (the answer first)
    face_share: float | None = None  # the person's frames with the face in view, as the
    # pose sees it (`face.face_share`: what the hint of an uncertain body answer reads)

    @property
    def error(self) -> int:
        return self.predicted - self.shift


def evaluate_clip(clip: Path, stated: int, shifts: list[int], lags: np.ndarray,
                  work: Path, progress: scan.Progress, net=None, cues: Cues = cue_names.DEFAULT,
                  face_only: bool = False) -> list[Trial]:
    """All trials of one clip: one pose pass (and with a model `net`, one pass of its
    picture side; with a face cue, one face-mesh pass), one shifted copy per shift."""
    info = media.probe(clip)
    tracks, person = scan.single_person(info, progress, stride=POSE_STRIDE,
                                        need_hands=cues.needs_hands)
    hands = "visible" if person.visible_hands_ratio >= HANDS_WELL_VISIBLE else "partly"
    cue = scoring.for_run(net, cues)
    score = cue.offset_scorer(info, tracks, person, progress)
    rule = cue.confidence_rule(cue.used(score.face_seen))
    tag = {"cues": cues.name, "face_share": round(face.face_share(person.keypoints[person.posed]), 3)}
    if score.face_seen is not None:
        tag["face"] = "face-only crop" if face_only else (
            "visible" if score.face_seen.mean() >= FACE_WELL_VISIBLE else "partly")
    suffix, trials = media.output_suffix(info), []
    for i, shift in enumerate(shifts):
        copy = media.shift_audio_copy(clip, work / f"{clip.stem}_{shift:+d}{suffix}",
                                      shift - stated)
        copy_info = media.probe(copy)
        frames = min(copy_info.num_frames, info.num_frames)
        evidence = score(media.read_audio(copy_info), frames, lags)
        copy.unlink()
        for name, context in CONTEXTS.items():
            trials += _windows(clip.name, hands, name, context, shift, evidence, lags,
                               cue.subwindow, rule, tag)
        progress("shifted copies", i + 1, len(shifts))
    return trials


def _windows(clip, hands, name, context, shift, evidence, lags, subwindow, rule, tag
             ) -> list[Trial]:
    frames = evidence.shape[1]
    if context is not None and context > frames:
        return []
    length = context or frames
    trials = []
    for start in range(0, frames - length + 1, length):
        span = (start, start + length)
        a = offset.span_details(evidence, span, lags, subwindow, rule)
        trials.append(Trial(clip, hands, name, shift, a.offset, a.confidence, a.agreement, length,
                            **tag, scores=[None if not np.isfinite(v) else round(float(v), 5)
                                           for v in a.scores],
                            picks=np.bincount(np.searchsorted(lags, a.picks),
                                              minlength=len(lags)).tolist(),
                            margin=a.margin, competing=a.competing))
    return trials


def summarise(trials: list[Trial]) -> dict:
    """Accuracy at each tolerance, median absolute error and count."""
    errors = np.abs([t.error for t in trials])
    row = {f"acc@{k}": float(np.mean(errors <= k)) for k in TOLERANCES}
    row["median_abs_error"] = float(np.median(errors))
    row["trials"] = len(trials)
    return row


def calibration(trials: list[Trial], bins=(0.0, 0.25, 0.5, 0.75, 0.9, 1.01)) -> list[dict]:
    """Accuracy at +-2 frames per confidence bin: a calibrated confidence matches it."""
    rows = []
    for low, high in zip(bins[:-1], bins[1:]):
        part = [t for t in trials if low <= t.confidence < high]
        if part:
            rows.append({"confidence": f"[{low:.2f}, {min(high, 1):.2f}{']' if high > 1 else ')'}",
                         "mean_confidence": float(np.mean([t.confidence for t in part])),
                         "acc@2": float(np.mean([abs(t.error) <= 2 for t in part])),
                         "trials": len(part)})
    return rows


def report(trials: list[Trial], durations: dict[str, float]) -> str:
    """Markdown tables: per context, per clip and context, per hand visibility, calibration."""
    head = "| {} | acc@0 | acc@1 | acc@2 | acc@5 | median abs err | trials |"
    line = "| {} | {acc@0:.2f} | {acc@1:.2f} | {acc@2:.2f} | {acc@5:.2f} | {median_abs_error:.1f} | {trials} |"
    out = ["### All clips, per context", head.format("context"), "|---|---|---|---|---|---|---|"]
    for c in CONTEXTS:
        part = [t for t in trials if t.context == c]
        if part:
            out.append(line.format(c, **summarise(part)))
    long_clips = [t for t in trials
                  if t.context == "whole" and t.scored_frames >= LONG_CLIP_FRAMES]
    if long_clips:
        out.append(line.format(f"whole, clips of {LONG_CLIP_FRAMES // estimator.FPS} s or more",
                               **summarise(long_clips)))
    out += ["", "### Per clip (whole-clip context)", head.format("clip (length, hands)"),
            "|---|---|---|---|---|---|---|"]
    for clip in sorted({t.clip for t in trials}):
        part = [t for t in trials if t.clip == clip and t.context == "whole"]
        label = f"{clip} ({durations[clip]:.1f} s, hands {part[0].hands})"
        out.append(line.format(label, **summarise(part)))
    out += ["", "### Hands well visible vs partly visible (per context)",
            head.format("hands, context"), "|---|---|---|---|---|---|---|"]
    for hands in ("visible", "partly"):
        for c in CONTEXTS:
            part = [t for t in trials if t.hands == hands and t.context == c]
            if part:
                out.append(line.format(f"{hands}, {c}", **summarise(part)))
    out += _face_rows(trials, head, line)
    out += ["", "### Confidence calibration (all contexts)",
            "| confidence | mean confidence | acc@2 | trials |", "|---|---|---|---|"]
    for row in calibration(trials):
        out.append("| {confidence} | {mean_confidence:.2f} | {acc@2:.2f} | {trials} |".format(**row))
    return "\n".join(out)


def _face_rows(trials: list[Trial], head: str, line: str) -> list[str]:
    """With a face cue: accuracy by how visible the face was, per context."""
    kinds = [k for k in ("visible", "partly", "face-only crop") if any(t.face == k for t in trials)]
    if not kinds:
        return []
    out = ["", "### Face visible, partly visible, face-only crops (per context)",
           head.format("face, context"), "|---|---|---|---|---|---|---|"]
    for kind in kinds:
        for c in CONTEXTS:
            part = [t for t in trials if t.face == kind and t.context == c]
            if part:
                out.append(line.format(f"{kind}, {c}", **summarise(part)))
    return out


def parse_shifts(text: str) -> list[int]:
    """'A:B[:STEP]' -> [A, A + STEP, ..., B]; GestsyncError naming the form otherwise."""
    try:
        parts = [int(x) for x in text.split(":")]
        start, stop = parts[0], parts[1]
        step = parts[2] if len(parts) > 2 else 1
        if step < 1 or stop < start:
            raise ValueError
    except (ValueError, IndexError):
        raise GestsyncError(f"--shifts {text!r} is not A:B[:STEP] with A <= B and STEP >= 1, "
                            "e.g. -20:20") from None
    return list(range(start, stop + 1, step))


def _parse_people(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(sorted({int(x) for x in text.split(",")}))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise GestsyncError(f"--people {text!r} is not a list of counts >= 1, e.g. 2,3,4")
    return sizes


def run_eval(args) -> int:
    from .sync import SyncRequest
    from .weights import ModelSpec

    request = SyncRequest(ModelSpec.from_args(args), max_offset=args.max_offset, cues=args.cues)
    choice = request.model.model
    if args.protocol == "speaker":
        from .evaluate_speaker import run

        if choice.path is not None and args.model != "auto":
            raise GestsyncError("the speaker protocol scores with the built-in estimator only: "
                                "give --model builtin, or use the offset protocol")
        return run(Path(args.samples), _parse_people(args.people), args.quiet, args.json_out,
                   Path(args.cache) if args.cache else None, args.fit_calibration, request.cues)
    if args.trials:
        trials, durations = _read_trials(Path(args.trials))
    else:
        trials, durations = _run_offset_protocol(args, request)
    scorer = f"trials from {args.trials}" if args.trials else choice.label
    cues = "" if request.cues == cue_names.DEFAULT else f", cues {request.cues}"
    print(f"Offset protocol: {len(durations)} clips, shifts {args.shifts} frames, candidates "
          f"+-{args.max_offset} frames, {scorer}{cues}.\n")
    print(report(trials, durations))
    if args.fit_calibration:
        print("\n" + calibration_report(trials))
    return 0


def _read_trials(path: Path) -> tuple[list[Trial], dict[str, float]]:
    """Trials (and clip durations) from an earlier --json-out file, their peak margin,
    competing lags and confidence recomputed with the current rules (the file may predate
    them; one without scores and picks keeps its margin and competing lags unknown)."""
    trials, durations = [], {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        durations[row["clip"]] = row.pop("clip_seconds")
        row.pop("error")
        trial = Trial(**row)
        if trial.scores is not None and trial.picks is not None:
            trial = _rescored(trial)
        calibration = cue_names.parse(trial.cues).calibration
        trials.append(_with_confidence(trial, calibration.coefficients))
    return trials, durations


def _rescored(trial: Trial) -> Trial:
    """`trial` with its peak margin and competing lags from its stored scores and picks."""
    half = len(trial.scores) // 2
    lags = np.arange(-half, half + 1)
    scores = np.array([np.nan if v is None else v for v in trial.scores])
    picks = np.repeat(lags, trial.picks)
    return replace(trial, margin=offset.peak_margin(lags, scores, trial.predicted),
                   competing=offset.competing_lags(lags, picks, trial.predicted))


def _with_confidence(trial: Trial, coefficients) -> Trial:
    return replace(trial, confidence=offset.calibrated_confidence(
        trial.agreement, trial.scored_frames, coefficients, trial.margin))


def _face_only_names(samples: Path) -> set[str]:
    """File names of the talking-head crops (FACE_ONLY rows) of MANIFEST.tsv."""
    with (samples / "MANIFEST.tsv").open() as f:
        return {row["file"] for row in csv.DictReader(f, delimiter="\t")
                if row["people"].strip() == FACE_ONLY}


def calibration_report(trials: list[Trial]) -> str:
    """Fit the confidence curve and the confidence that makes an answer sure on the fit
    clips (`fit_check_split`), then show how both hold on the check clips, which the fit
    never saw: the reliability per confidence bin, and how often the sure answers are right
    and how many answers are sure (all contexts, and per context)."""
    fit = [t for t in trials if fit_check_split(t.clip) == "fit"]
    check = [t for t in trials if fit_check_split(t.clip) == "check"]
    if not fit or not check:
        return "### Calibration fit\nNeeds trials of both fit and check clips (`fit_check_split`)."
    coefficients = _fit_calibration(fit)
    fit = [_with_confidence(t, coefficients) for t in fit]
    check = [_with_confidence(t, coefficients) for t in check]
    sure_at = sure_threshold(fit)
    out = [f"### Calibration fit: fitted on {len({t.clip for t in fit})} fit clips, checked on "
           f"{len({t.clip for t in check})} check clips",
           "Check clips' confidences from the curve fitted on the fit clips:",
           "| confidence | mean confidence | acc@2 | trials |", "|---|---|---|---|"]
    for row in calibration(check):
        out.append("| {confidence} | {mean_confidence:.2f} | {acc@2:.2f} | {trials} |".format(**row))
    shown = (f"never (no confidence from which the answers of {SURE_MIN_CLIPS} fit clips or "
             "more are right 95% of the time)") if sure_at is None else f"{sure_at:.3f}"
    out += ["", f"Sure at (the lowest confidence from which the fit clips' answers are right "
            f"95% of the time): {shown}", "",
            "| clips, context | sure answers right | sure answers (share of all) | trials |",
            "|---|---|---|---|"]
    for name, part in (("fit", fit), ("check", check)):
        for context in (*CONTEXTS, "all"):
            rows = [t for t in part if context in ("all", t.context)]
            if rows:
                out.append(_sure_row(f"{name}, {context}", rows, sure_at))
    out += ["", f"CONFIDENCE coefficients = ({', '.join(f'{c:.4f}' for c in coefficients)}), "
            f"sure_at = {'None' if sure_at is None else f'{sure_at:.3f}'}"]
    return "\n".join(out)


def _sure_row(label: str, trials: list[Trial], sure_at: float | None) -> str:
    sure = [t for t in trials if sure_at is not None and t.confidence >= sure_at]
    right = f"{np.mean([abs(t.error) <= 2 for t in sure]):.2f}" if sure else "-"
    return f"| {label} | {right} | {len(sure)} ({len(sure) / len(trials):.2f}) | {len(trials)} |"


SURE_RIGHT = 0.95  # a sure answer must be right this often
SURE_MIN_TRIALS = 20  # ... over at least this many answers at or above the threshold
SURE_MIN_CLIPS = 2  # ... from at least this many clips (one clip's answers at every shift
# are nearly one answer: a promise needs more than one clip behind it)


def sure_threshold(trials: list[Trial]) -> float | None:
    """The lowest confidence t such that the answers at t or above, and at every higher
    threshold with SURE_MIN_TRIALS answers or more, are right SURE_RIGHT of the time, and
    the answers at t or above come from SURE_MIN_CLIPS clips or more; None when there is
    no such t."""
    ranked = sorted(trials, key=lambda t: -t.confidence)
    right = np.cumsum([abs(t.error) <= AGREE for t in ranked]) / np.arange(1, len(ranked) + 1)
    found, clips = None, set()
    for i, t in enumerate(ranked):
        clips.add(t.clip)
        if i + 1 >= SURE_MIN_TRIALS and right[i] < SURE_RIGHT:
            break
        if (i + 1 >= SURE_MIN_TRIALS and len(clips) >= SURE_MIN_CLIPS
                and (i + 1 == len(ranked) or ranked[i + 1].confidence < t.confidence)):
            found = t.confidence
    return found


def _fit_calibration(trials: list[Trial]) -> tuple[float, ...]:
    return offset.fit_calibration([t.agreement for t in trials], [t.scored_frames for t in trials],
                                  [t.margin for t in trials],
                                  [abs(t.error) <= AGREE for t in trials])


def _run_offset_protocol(args, request) -> tuple[list[Trial], dict[str, float]]:
    from .progress import TqdmProgress
    from .weights import load

    shifts = parse_shifts(args.shifts)
    lags = offset.candidate_lags(request.max_offset)
    cues = request.cues
    clips = single_speaker_clips(Path(args.samples), face_only=cues.reads_face)
    face_only = _face_only_names(Path(args.samples)) if cues.reads_face else set()
    if not clips:
        raise GestsyncError(f"no single-speaker clip with a known offset in {args.samples}")
    net = load(request.model)
    trials, durations = [], {}
    with tempfile.TemporaryDirectory(prefix="gestsync-eval-") as work:
        for clip, stated in clips:
            progress = TqdmProgress(clip.name, enabled=not args.quiet)
            try:
                durations[clip.name] = media.probe(clip).duration
                trials += evaluate_clip(clip, stated, shifts, lags, Path(work), progress, net,
                                        cues, clip.name in face_only)
            except GestsyncError as e:
                print(f"gestsync: skipped {clip.name}: {e}", file=sys.stderr)
            finally:
                progress.close()
    if args.json_out:
        with open(args.json_out, "w") as f:
            for t in trials:
                f.write(json.dumps({**t.__dict__, "error": t.error,
                                    "clip_seconds": durations[t.clip]}) + "\n")
    return trials, durations
