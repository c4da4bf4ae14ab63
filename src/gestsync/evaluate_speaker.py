"""`gestsync eval --protocol speaker`: the composite-scene protocol of docs/evaluation.md.

Two to four single-speaker clips stand side by side and the sound of exactly one of them
is kept: that one is the speaker. Every (combination of clips, which one speaks) is a
trial, scored with the built-in estimator exactly as `gestsync speaker` scores tracks,
per scene (whole common length, and every non-overlapping 5 s and 10 s window) and per
frame (frames with speech). The people stage runs once per clip: a person's track in a
side-by-side composite is the same person with the same motion, so the composite's
evidence is computed from each clip's own track and the kept sound, without drawing the
composite picture. A one-person variant asks "speaking or off-screen voice": each clip
with its own sound (speaking) and with every other clip's sound (off-screen).
"""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import cues as cue_names
from . import estimator, face, media, people, scan, scoring, speaker_scores, vad
from .cues import Cues
from .errors import GestsyncError
from .estimator import heard_signal, motion_evidence

WINDOWS = {"5s": 125, "10s": 250, "whole": None}
DEFAULT_CONTEXT = 50  # per-frame window, as `gestsync speaker --per-frame`


@dataclass
class ClipSignals:
    """One clip's person motion, sound and voice activity, aligned (stated offset undone)."""

    name: str
    motion: np.ndarray  # F x T
    speech: np.ndarray  # G x T
    speech_frames: np.ndarray  # bool (T,)
    speech_probability: np.ndarray  # (T,)
    mouth: np.ndarray | None = None  # with a face cue: 2 x T mouth signals (`face`)
    face_seen: np.ndarray | None = None  # bool (T,): frames with the face

    @property
    def length(self) -> int:
        return self.motion.shape[1]

    def mouth_in(self, span: slice) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(mouth signals, face seen) of the frames of `span`; (None, None) without a face cue."""
        if self.mouth is None:
            return None, None
        return self.mouth[:, span], self.face_seen[span]


def _align(x: np.ndarray, stated: int) -> np.ndarray:
    """Undo a stated offset (> 0: sound later) on a (..., T) sound signal: value at frame t
    becomes x[t + stated]; edges hold the nearest value."""
    t = np.clip(np.arange(x.shape[-1]) + stated, 0, x.shape[-1] - 1)
    return x[..., t]


OLD_STRIDES = (1, 5)  # (landmark, detection) strides of caches written before they were kept


def speaker_strides() -> tuple[int, int]:
    """(landmark, detection) strides of `gestsync speaker`'s people stage."""
    return scan.SPEAKER_POSE_STRIDE, scan.DETECT_STRIDE


def clip_signals(clip: Path, stated: int, progress: scan.Progress, cache: Path | None = None,
                 cues: Cues = cue_names.DEFAULT, strides: tuple[int, int] | None = None
                 ) -> ClipSignals:
    """Motion of the clip's person and its aligned speech signals (with a face cue, the
    mouth signals too).

    `strides`: (landmark, detection) strides of the people stage (None: `speaker`'s).
    With `cache`, the slow part (the person's motion and mouth, from the pose and face
    stages) and the sound are kept in `cache/<clip>.npz` with the strides they were made
    with, and reused for the same strides; speech signals are always recomputed.
    """
    strides = strides or speaker_strides()
    cached = None if cache is None else cache / f"{clip.stem}.npz"
    stored = {}
    if cached is not None and cached.is_file():
        with np.load(cached) as z:
            stored = {k: z[k] for k in z.files}
        if tuple(stored.get("strides", OLD_STRIDES)) != tuple(strides):
            stored = {}
    if "motion" not in stored or (cues.reads_face and "opening" not in stored):
        stored.update(_people_stage(clip, progress, cues, strides))
        if cached is not None:
            cache.mkdir(parents=True, exist_ok=True)
            np.savez(cached, **stored)
    motion, audio = stored["motion"], stored["audio"]
    frames = motion.shape[1]
    voice = vad.voice_activity(audio, frames)
    mouth = seen = None
    if cues.reads_face:
        mouth, seen = face.mouth_signals(stored["opening"][:frames])
    return ClipSignals(clip.name, motion, _align(estimator.speech_signals(audio, frames), stated),
                       _align(voice.speech, stated), _align(voice.probability, stated),
                       mouth, seen)


def _people_stage(clip: Path, progress: scan.Progress, cues: Cues, strides: tuple[int, int]
                  ) -> dict:
    """The person's motion, the sound, (with a face cue) the mouth opening of a clip and
    the (landmark, detection) `strides` of its people stage."""
    info = media.probe(clip)
    tracks = scan.scan_people(info, max_people=2, progress=progress, stride=strides[0],
                              detect_stride=strides[1])
    people.main_person(tracks, info.num_frames, name=clip.name, need_hands=cues.needs_hands)
    pieces = scan.person_pieces(tracks, info.num_frames)
    out = {"motion": estimator.person_motion(pieces, info.num_frames),
           "audio": media.read_audio(info), "strides": np.array(strides, np.int64)}
    if cues.reads_face:
        out["opening"] = face.person_mouth(info, pieces, progress=progress)
    return out


CONFIDENCE_BINS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0001)  # reliability table columns
RAW_BINS = 20  # per-frame raw confidences are kept as counts in this many equal bins


@dataclass
class SpeakerTrial:
    people: int
    clips: tuple[str, ...]
    speaker: int | None  # index of the clip whose sound is kept; None: off-screen voice
    window: str
    start: int
    frames: int
    predicted: int | None  # with off-screen voices allowed
    forced: int  # highest z, no threshold (the default: someone visible always speaks)
    confidence: float | None  # raw (before calibration), of `predicted`; None: no speech
    forced_confidence: float | None  # raw, of `forced`
    frame_correct: int  # speech frames decided right, off-screen voices allowed
    frame_none: int  # speech frames decided "nobody", off-screen voices allowed
    frame_forced: int  # speech frames whose forced decision is the speaker
    speech_frames: int
    frame_bins: dict  # {"forced"|"offscreen": [[frames, right] per RAW_BINS bin of raw
    # confidence]}
    forced_unsure: bool = False  # the forced answer's `Decision.unsure`
    disagree: bool | None = None  # with a face cue: the body alone names another person
    forced_disagree: bool | None = None  # the same for the forced answer

    @property
    def correct(self) -> bool:
        return self.predicted == self.speaker


def composite_trials(group: list[ClipSignals], sound: ClipSignals, speaker: int | None,
                     context: int = DEFAULT_CONTEXT, cues: Cues = cue_names.DEFAULT
                     ) -> list[SpeakerTrial]:
    """Every window of one composite: the people of `group`, the sound of `sound`, scored
    by the cue of `gestsync speaker` with the built-in estimator (`scoring.for_run`)."""
    cue = scoring.for_run(None, cues)
    length = min(c.length for c in group + [sound])
    trials = []
    for window, size in WINDOWS.items():
        size = size or length
        for start in range(0, length - size + 1, size):
            trials.append(_trial(group, sound, speaker, window, start, size, context, cue))
    return trials


def _trial(group, sound, speaker, window, start, size, context, cue) -> SpeakerTrial:
    span = slice(start, start + size)
    heard = heard_signal(sound.speech[:, span])
    body = [motion_evidence(c.motion[:, span], heard) for c in group]
    evidence = [cue.track_evidence(e, *c.mouth_in(span), sound.speech[:, span])
                for e, c in zip(body, group)]
    body_means = cue.body_means(body)  # with a face cue: does the body alone agree?
    offsets = [0] * len(group)
    speech = sound.speech_frames[span]
    decided = {allow: speaker_scores.decide_scene(evidence, offsets, size, float(speech.mean()),
                                                  allow, body_means=body_means)
               for allow in (False, True)}
    scene = {allow: d[0] for allow, d in decided.items()}
    scene_z = decided[False][2]  # per track, the same with either rule
    z = speaker_scores.frame_z(evidence, offsets, size, context)
    truth = -1 if speaker is None else speaker
    frames, bins = {}, {}
    for allow, name in ((False, "forced"), (True, "offscreen")):
        picks, _, raw = speaker_scores.decide_frames(z, speech, sound.speech_probability[span],
                                                     allow)
        right = (np.array([-1 if p is None else p for p in picks]) == truth)[speech]
        frames[name] = (right, np.array([p is None for p in picks])[speech])
        bins[name] = _binned(raw[speech], right)
    return SpeakerTrial(len(group), tuple(c.name for c in group), speaker, window, start, size,
                        scene[True].speaker, int(np.nanargmax(scene_z)),
                        scene[True].raw_confidence, scene[False].raw_confidence, int(frames["offscreen"][0].sum()),
                        int(frames["offscreen"][1].sum()), int(frames["forced"][0].sum()),
                        int(speech.sum()), bins, scene[False].unsure,
                        *(None if body_means is None else scene[allow].body_names is not None
                          for allow in (True, False)))


def _binned(raw: np.ndarray, right: np.ndarray) -> list[list[int]]:
    """[frames, right] per RAW_BINS equal bin of raw confidence."""
    which = np.minimum((raw * RAW_BINS).astype(int), RAW_BINS - 1)
    return [[int((which == b).sum()), int(right[which == b].sum())] for b in range(RAW_BINS)]


def run_protocol(signals: list[ClipSignals], sizes=(1, 2, 3, 4),
                 cues: Cues = cue_names.DEFAULT) -> list[SpeakerTrial]:
    """Trials for every group of `sizes` people and every choice of the kept sound."""
    trials = []
    for n in sizes:
        if n == 1:
            for person, heard in itertools.product(signals, signals):
                trials += composite_trials([person], heard, 0 if heard is person else None,
                                           cues=cues)
            continue
        for group in itertools.combinations(signals, n):
            for j, heard in enumerate(group):
                trials += composite_trials(list(group), heard, j, cues=cues)
    return trials


def _summary(trials: list[SpeakerTrial]) -> str:
    forced = np.mean([t.forced == t.speaker for t in trials])
    frames_forced = sum(t.frame_forced for t in trials) / max(sum(t.speech_frames for t in trials), 1)
    return f"{forced:.2f} | {frames_forced:.2f} | " + _decided(trials)


def _decided(trials: list[SpeakerTrial]) -> str:
    scene = np.mean([t.correct for t in trials])
    decided = [t for t in trials if t.predicted is not None]
    precision = np.mean([t.correct for t in decided]) if decided else float("nan")
    frames = sum(t.speech_frames for t in trials)
    frame_acc = sum(t.frame_correct for t in trials) / max(frames, 1)
    none = sum(t.frame_none for t in trials) / max(frames, 1)
    return (f"{scene:.2f} | {len(decided) / len(trials):.2f} | {precision:.2f} | "
            f"{frame_acc:.2f} | {none:.2f} | {len(trials)}")


def report(trials: list[SpeakerTrial]) -> str:
    """Markdown: accuracy per number of people and scene length; off-screen variant."""
    head = ("| people, scene | forced: scene acc | forced: frame acc | scene acc | said someone "
            "| acc when said | frame acc | frames 'nobody' | scenes |")
    out = ["### Composite scenes (the kept sound's person is the speaker)", head,
           "|---|---|---|---|---|---|---|---|---|"]
    for n in sorted({t.people for t in trials if t.people > 1}):
        for w in WINDOWS:
            part = [t for t in trials if t.people == n and t.window == w]
            if part:
                chance = 1 / n
                out.append(f"| {n} ({w}, chance {chance:.2f}) | {_summary(part)} |")
    single = [t for t in trials if t.people == 1]
    if single:
        out += ["", "### One person: speaking (own sound) vs off-screen voice (another clip's)",
                "| case, scene | acc | said someone | acc when said | frame acc | frames 'nobody' | scenes |",
                "|---|---|---|---|---|---|---|"]
        for label, own in (("own sound", True), ("off-screen", False)):
            for w in WINDOWS:
                part = [t for t in single if (t.speaker is not None) == own and t.window == w]
                if part:
                    out.append(f"| {label} ({w}) | {_decided(part)} |")
    return "\n".join(out + ["", "### Sure and unsure answers (forced, `Decision.unsure`)",
                            sure_table(trials),
                            "", "### Reliability: share right (answers) per calibrated confidence",
                            reliability(trials)])


def sure_table(trials: list[SpeakerTrial]) -> str:
    """Markdown: per number of people and window, the share of forced scene answers that
    are sure (no other person competed; with a face cue, the body alone agrees) and how
    often sure and unsure answers are right."""
    out = ["| people, scene | sure | right when sure | right when unsure | scenes |",
           "|---|---|---|---|---|"]

    def right(part):
        return f"{np.mean([t.forced == t.speaker for t in part]):.2f}" if part else "-"

    for n in sorted({t.people for t in trials if t.people > 1}):
        for w in WINDOWS:
            part = [t for t in trials if t.people == n and t.window == w]
            sure = [t for t in part if not t.forced_unsure]
            unsure = [t for t in part if t.forced_unsure]
            if part:
                out.append(f"| {n} ({w}) | {len(sure) / len(part):.2f} | {right(sure)} | "
                           f"{right(unsure)} | {len(part)} |")
    return "\n".join(out)


LEVELS = {("scene", False): "scene, forced (2+ people)",
          ("scene", True): "scene, off-screen allowed (1+ people)",
          ("frame", False): "frame, forced (2+ people)",
          ("frame", True): "frame, off-screen allowed (1+ people)"}


def calibration_data(trials: list[SpeakerTrial], level: str, allow: bool
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(raw confidence, people, right, weight, disagree) rows of one kind of decision:
    scenes with speech, or per-frame bins (centre of each RAW_BINS bin, counts as weights).
    Forced choice is measured with 2+ people (a lone person is not calibrated). disagree
    (scenes scored with a face cue, else None): the body alone named another person."""
    rows = []
    for t in trials:
        if not allow and t.people < 2:
            continue
        if level == "scene":
            raw = t.confidence if allow else t.forced_confidence
            if raw is not None:
                rows.append((raw, t.people, (t.predicted if allow else t.forced) == t.speaker, 1,
                             t.disagree if allow else t.forced_disagree))
            continue
        for b, (n, right) in enumerate(t.frame_bins["offscreen" if allow else "forced"]):
            centre = (b + 0.5) / RAW_BINS
            rows += [(centre, t.people, True, right, None), (centre, t.people, False, n - right, None)]
    rows = [r for r in rows if r[3] > 0]
    if not rows:
        return (np.zeros(0),) * 4 + (None,)
    columns = [np.array(col, float) for col in list(zip(*rows))[:4]]
    disagree = None if any(r[4] is None for r in rows) else np.array([r[4] for r in rows], float)
    return (*columns, disagree)


def _kinds(trials: list[SpeakerTrial]) -> list[tuple[str, bool]]:
    """The decisions to calibrate: with a face cue, only the scenes' (`FACE_CALIBRATION`)."""
    face_cue = any(t.disagree is not None for t in trials)
    return [k for k in LEVELS if not face_cue or k[0] == "scene"]


def fit_calibration(trials: list[SpeakerTrial]) -> dict:
    """CALIBRATION (FACE_CALIBRATION with a face cue) coefficients for every kind of
    decision, fitted on `trials`."""
    from . import calibration

    fitted = {}
    for level, allow in _kinds(trials):
        raw, people, right, weight, disagree = calibration_data(trials, level, allow)
        extra = [np.log(people)] + ([] if disagree is None else [disagree])
        fitted[(level, allow)] = calibration.fit(calibration.features(raw, *extra), right, weight)
    return fitted


def reliability(trials: list[SpeakerTrial], coefficients: dict | None = None) -> str:
    """Markdown: how often answers of each calibrated confidence are right, per kind."""
    edges = CONFIDENCE_BINS
    head = " | ".join(f"{lo:.1f}-{min(hi, 1):.1f}" for lo, hi in zip(edges, edges[1:]))
    out = [f"| answers | {head} | share right when >= 0.8 |", "|---|" + "---|" * len(edges)]
    for level, allow in _kinds(trials):
        raw, people, right, weight, disagree = calibration_data(trials, level, allow)
        sure = speaker_scores.calibrated(raw, people, level, allow,
                                         coefficients and coefficients[(level, allow)], disagree)
        which = np.digitize(sure, edges[1:-1])
        cells = []
        for b in range(len(edges) - 1):
            n = weight[which == b].sum()
            cells.append(f"{(weight * right)[which == b].sum() / n:.2f} ({n:.0f})" if n else "-")
        high = sure >= 0.8
        share = (weight * right)[high].sum() / weight[high].sum() if high.any() else float("nan")
        out.append(f"| {LEVELS[(level, allow)]} | " + " | ".join(cells) + f" | {share:.2f} |")
    return "\n".join(out)


def calibration_report(trials: list[SpeakerTrial]) -> str:
    """Fit on the composites of fit clips only, show the reliability on those of check
    clips only, and give the curves fitted on every composite (the ones to ship)."""
    from .samples import fit_check_split

    def only(split):
        return [t for t in trials if all(fit_check_split(c) == split for c in t.clips)]

    fitted = fit_calibration(only("fit"))
    everything = fit_calibration(trials)
    name = "FACE_CALIBRATION" if any(t.disagree is not None for t in trials) else "CALIBRATION"
    lines = [f"    {key!r}: ({', '.join(f'{c:.4f}' for c in value)})," for key, value in everything.items()]
    return "\n".join([
        "### Calibration fit", f"Fitted on composites of fit clips only ({len(only('fit'))} "
        f"trials), reliability on composites of check clips only ({len(only('check'))} trials):",
        reliability(only("check"), fitted), "", f"Fitted on every composite: {name} = {{",
        *lines, "}"])


def run(samples: Path, sizes: tuple[int, ...], quiet: bool, json_out: str | None,
        cache: Path | None, fit: bool = False, cues: Cues = cue_names.DEFAULT) -> int:
    from .progress import TqdmProgress
    from .samples import single_speaker_clips

    clips = single_speaker_clips(samples)
    if len(clips) < max(sizes):
        raise GestsyncError(f"{len(clips)} single-speaker clips in {samples}: the speaker "
                            f"protocol needs at least {max(sizes)}")
    signals = []
    for clip, stated in clips:
        progress = TqdmProgress(clip.name, enabled=not quiet)
        try:
            signals.append(clip_signals(clip, stated, progress, cache, cues))
        except GestsyncError as e:
            print(f"gestsync: skipped {clip.name}: {e}", file=sys.stderr)
        finally:
            progress.close()
    trials = run_protocol(signals, sizes, cues)
    if json_out:
        with open(json_out, "w") as f:
            for t in trials:
                f.write(json.dumps({**t.__dict__, "correct": t.correct}) + "\n")
    lengths = ", ".join(f"{s.name} {s.length / media.FPS:.1f} s" for s in signals)
    from .weights import BUILTIN_LABEL

    scorer = BUILTIN_LABEL + ("" if cues == cue_names.DEFAULT else f", cues {cues}")
    print(f"Speaker protocol: {len(signals)} clips ({lengths}); {scorer}; "
          f"per-frame context {DEFAULT_CONTEXT} frames; frame accuracy over frames with speech.\n")
    print(report(trials))
    if fit:
        print("\n" + calibration_report(trials))
    return 0
