"""`find_offset`: the audio-visual offset of a single-speaker video, end to end.

A `SyncRequest` holds everything a job needs but the video and where its outputs go,
checked once, when made; `run_sync` does one video's job with a model already loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import cues as cue_names
from . import face, media, offset, outputs, people, plots, scan, scoring
from .cues import Cues
from .errors import UsageError
from .request import Request
from .results import OffsetResult
from .weights import Loaded, ModelSpec, open_model

DEFAULT_MAX_OFFSET = 50  # frames: +-2 s, the published model's search range
# Pose on every 2nd frame (12.5 fps), interpolated between: the estimator keeps only
# 0.5-6 Hz, under that rate's 6.25 Hz Nyquist limit, and it halves the costliest stage.
# Checked on the offset protocol: the same answers as every frame on the 88 s sample.
POSE_STRIDE = 2
MIN_SEGMENT_SECONDS = 2


@dataclass(frozen=True)
class SyncRequest(Request):
    """What `find_offset` does to every video it is given (see `find_offset` for each
    option; `Request`: checked when made). Plain values: picklable."""

    model: ModelSpec = field(default_factory=ModelSpec)
    max_offset: int = DEFAULT_MAX_OFFSET
    context_frames: int | None = None
    grid: int = 1
    always_write: bool = False
    segment_seconds: float | None = None
    pose_stride: int = POSE_STRIDE
    workers: int = 1
    cues: Cues = cue_names.DEFAULT

    def check(self) -> None:
        if self.max_offset < 0:
            raise UsageError(f"--max-offset must be 0 or more frames, got {self.max_offset}")
        if self.grid < 1:
            raise UsageError(f"--grid must be 1 or more frames, got {self.grid}")
        if self.segment_seconds is not None and self.segment_seconds < MIN_SEGMENT_SECONDS:
            raise UsageError(f"--segments must be at least {MIN_SEGMENT_SECONDS} s, got "
                             f"{self.segment_seconds:g}")
        if self.context_frames is not None and self.context_frames < 1:
            raise UsageError(f"--context-frames must be at least 1, got {self.context_frames}")
        if self.pose_stride < 1:
            raise UsageError(f"--pose-stride must be 1 or more, got {self.pose_stride}")

    @classmethod
    def from_args(cls, args, workers: int) -> SyncRequest:
        """From `gestsync sync`'s parsed arguments; `workers` when --workers is not given."""
        return cls(ModelSpec.from_args(args), args.max_offset, args.context_frames, args.grid,
                   args.always_write, args.segments, args.pose_stride,
                   cls.workers_of(args, workers), args.cues)


def find_offset(video: str | os.PathLike, *, out_dir: str | os.PathLike | None = None,
                write_video: bool = True, progress: scan.Progress | None = None,
                **options) -> OffsetResult:
    """Estimate how far the sound of `video` is shifted against its picture.

    Args:
        video: a video file with one visible speaker and sound.
        out_dir: where to write offset.json, scores.png and <name>_synced.mp4; None writes
            nothing to disk.
        write_video: write the sync-corrected copy (skipped when the offset is 0 or the
            answer is uncertain, unless always_write).
        progress: hook called as progress(stage, completed, total); None: no progress.
        options (`SyncRequest`):
        model: "auto" (default): the published GestSync model when it is in the cache
            (`gestsync models download gestsync-rgb`), else the built-in estimator, which
            needs no weights; "builtin"; "gestsync-rgb"; or the path of a model file (the
            published `model_rgb.pth` or our own). Loaded on every call: a `Syncer` loads
            it once for many videos.
        checkpoint: a model file path, as before `model` existed (same as model=PATH).
        device: torch device for the model ("cpu", "cuda"); None picks a GPU if present.
        precision: the model's arithmetic, "fp32" (default) or "bf16" (faster on CPUs
            with bfloat16 instructions, embeddings within about 1e-3 of fp32).
        max_offset: candidates span [-max_offset, max_offset] frames at 25 fps.
        context_frames: score only N frames, from frame max_offset on (default: the
            whole clip); see `offset.scored_span`.
        grid: candidate step in frames (1: every frame; 5: the authors' grid).
        always_write: write the corrected copy even when it would be skipped.
        segment_seconds: also report the offset of every stretch of this length and
            whether it drifts along the clip.
        pose_stride: run the pose detector on every k-th frame (faster, coarser).
        workers: pose-detection processes (see `scan.find_people`; > 1 needs the calling
            script's top level guarded by `if __name__ == "__main__":`).
        cues: what is read, by name or as a `cues.Cues`: body (default: gestures, face
            masked, as in the paper), face+body (the lips' motion too, where the face is
            visible) or face (lips only; the body where no face is found).
    Raises:
        GestsyncError (MediaError, PeopleError, CheckpointError, UsageError) for problems
        the user can fix.
    """
    return run_sync(video, SyncRequest.of(**options), None, out_dir, write_video, progress)


def run_sync(video: str | os.PathLike, request: SyncRequest, loaded: Loaded | None = None,
             out_dir: str | os.PathLike | None = None, write_video: bool = True,
             progress: scan.Progress | None = None) -> OffsetResult:
    """`find_offset` of one video with a checked request; `loaded`: its model, loaded
    (None: loaded here, once the video has been found readable)."""
    progress = scan.progress_hook(progress)
    lags = offset.candidate_lags(request.max_offset, request.grid)
    if out_dir is not None:
        outputs.check_writable(Path(out_dir))
    info = media.probe(video)
    audio = media.checked_audio(info, request.context_frames)
    loaded = loaded or open_model(request.model)
    cue = scoring.for_run(loaded.net, request.cues)
    answers, persons = [], []
    for index, (tracks, person) in enumerate(scan.people_to_search(
            info, progress, stride=request.pose_stride, workers=request.workers,
            need_hands=request.cues.needs_hands)):
        persons.append(person)
        scorer = cue.offset_scorer(info, tracks, person, progress)
        evidence = scorer(audio, info.num_frames, lags)
        used = cue.used(scorer.face_seen)
        result = _decide(info, evidence, lags, request.context_frames, loaded.choice.method,
                         cue.subwindow, cue.confidence_rule(used))
        result.cues = used
        answers.append((result, evidence, person_summary(index, person)))
    result, evidence = _most_confident(answers)
    if not request.cues.reads_face and result.uncertain:
        result.suggested_cues = _face_suggestion(persons[result.person["track"]])
    if request.segment_seconds is not None:
        result.segments = offset.segment_offsets(
            evidence, lags, round(request.segment_seconds * media.FPS), cue.subwindow,
            cue.confidence_rule(result.cues))
        result.drift = offset.drift(result.segments)
    if out_dir is not None:
        _write_outputs(result, info, Path(out_dir), write_video, request.always_write, progress)
    return result


def person_summary(index: int, person: people.Track) -> dict:
    """JSON-ready: which person (index in the clip's search order), where and when."""
    box = np.median(person.boxes, axis=0)
    return {"track": index, "box": [int(round(v)) for v in box],
            "start_frame": int(person.start), "end_frame": int(person.end)}


def _most_confident(answers: list[tuple[OffsetResult, np.ndarray, dict]]
                    ) -> tuple[OffsetResult, np.ndarray]:
    """The answer of the person whose own answer is the most confident (then the
    highest peak score); with several people, each person's answer is listed too."""
    def key(item):
        result = item[0]
        peak = max((s for s in result.scores if s is not None), default=-np.inf)
        return (result.confidence, peak)

    best, evidence, person = max(answers, key=key)
    best.person = person
    if len(answers) > 1:
        best.people = [{**who, "offset_frames": r.offset_frames, "confidence": r.confidence}
                       for r, _, who in answers]
    return best, evidence


def _face_suggestion(person: people.Track) -> str | None:
    """`cues.FACE_BODY`'s name when the person who carried an uncertain body answer had the face in
    view on most frames (from the pose keypoints already there: no face mesh runs)."""
    share = face.face_share(person.keypoints[person.posed])
    return cue_names.FACE_BODY.name if share >= face.FACE_VISIBLE_SHARE else None


def _decide(info: media.MediaInfo, evidence: np.ndarray, lags: np.ndarray,
            context_frames: int | None, method: str, subwindow: int | None,
            rule: offset.ConfidenceRule = offset.BODY_CONFIDENCE) -> OffsetResult:
    span = offset.scored_span(info.num_frames, context_frames, int(-lags.min()))
    answer = offset.span_details(evidence, span, lags, subwindow, rule)
    return OffsetResult(
        video=str(info.path), offset_frames=answer.offset,
        offset_seconds=answer.offset / media.FPS, confidence=round(answer.confidence, 3),
        uncertain=not rule.sure(answer.confidence),
        bootstrap_agreement=round(answer.agreement, 3),
        method=method, num_frames=info.num_frames, duration_seconds=round(info.duration, 3),
        scored_frames=span, candidates=[int(x) for x in lags],
        scores=[None if not np.isfinite(s) else round(float(s), 6) for s in answer.scores],
        peak_margin=round(answer.margin, 3), competing_offsets=answer.competing[1:],
        sure_at=rule.sure_at)


def _plot_title(result: OffsetResult, info: media.MediaInfo) -> str:
    """The clip's name and, with several people, whose answer it is."""
    if not result.people:
        return info.path.name
    x0, y0, x1, y1 = result.person["box"]
    return (f"{info.path.name}: person #{result.person['track']} of {len(result.people)}, "
            f"box ({x0}, {y0})-({x1}, {y1})")


def _write_outputs(result: OffsetResult, info: media.MediaInfo, out_dir: Path,
                   write_video: bool, always_write: bool, progress: scan.Progress) -> None:
    """offset.json, scores.png and (when needed) the corrected video, all or nothing."""
    names = {"json": "offset.json", "plot": "scores.png"}
    # No corrected copy for an offset of 0 (nothing to correct) or an answer that is not
    # sure (`offset.ConfidenceRule`: it would apply a guess), unless asked for.
    if write_video and (always_write or (result.offset_frames != 0 and not result.uncertain)):
        names["synced_video"] = f"{info.path.stem}_synced{media.output_suffix(info)}"
    result.outputs = {k: str(out_dir / v) for k, v in names.items()}
    with outputs.staged(out_dir) as stage:
        if "synced_video" in names:
            progress("writing", 0, 1)
            media.write_synced(info, stage / names["synced_video"], result.offset_frames)
            progress("writing", 1, 1)
        scores = np.array([np.nan if s is None else s for s in result.scores])
        plots.plot_offset_scores(stage / names["plot"], np.array(result.candidates), scores,
                                 result.offset_frames, result.confidence, _plot_title(result, info),
                                 result.competing_offsets)
        outputs.write_json(stage / names["json"], result.to_dict())
