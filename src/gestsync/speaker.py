"""`find_speakers`: who is speaking, scene by scene and frame by frame, from gestures alone.

Stages: one decode of the clip feeds both the shot-cut detector (`scenes`) and the pose
detector (`scan.find_people`); people are tracked within each scene; each track is
scored against the scene's sound at zero lag by the run's cue (`scoring`: the built-in
estimator or a model, with the face if asked); voice activity (`vad`) says where nobody
speaks; `speaker_scores` decides.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import cues as cue_names
from . import media, outputs, people, scan, scoring, speaker_scores, vad
from .cues import Cues
from .errors import MediaError, PeopleError, UsageError
from .request import Request
from .weights import Loaded, ModelSpec, open_model
from .results import SceneSpeakers, SpeakerResult, TrackSpeaker, describe_shares, frame_shares  # noqa: F401
from .scenes import CUT_THRESHOLD

DEFAULT_MAX_PEOPLE = 4  # people tracked per frame (pose cost grows with it)
DEFAULT_CONTEXT_FRAMES = 50  # --per-frame window: 2 s around each frame


@dataclass(frozen=True)
class SpeakerRequest(Request):
    """What `find_speakers` does to every video it is given (see `find_speakers` for each
    option; `Request`: checked when made). Plain values: picklable."""

    model: ModelSpec = field(default_factory=ModelSpec)
    per_frame: bool = False
    context_frames: int = DEFAULT_CONTEXT_FRAMES
    max_people: int = DEFAULT_MAX_PEOPLE
    min_track_frames: int = people.MIN_FRAMES
    min_track_size: float = people.MIN_SIZE
    max_gap: int = people.MAX_GAP
    scene_threshold: float = CUT_THRESHOLD
    allow_offscreen: bool = False
    workers: int = 1
    cues: Cues = cue_names.DEFAULT

    def check(self) -> None:
        if self.context_frames < 1:
            raise UsageError(f"--context-frames must be at least 1, got {self.context_frames}")
        if self.max_people < 1:
            raise UsageError(f"--max-people must be at least 1, got {self.max_people}")
        if self.min_track_frames < scoring.MODEL_WINDOW:
            raise UsageError(f"--min-track-frames must be at least {scoring.MODEL_WINDOW} (one "
                             f"second), got {self.min_track_frames}")
        if self.min_track_size < 0 or self.max_gap < 0 or self.scene_threshold <= 0:
            raise UsageError("--min-track-size and --max-gap must be >= 0 and "
                             "--scene-threshold > 0")

    @classmethod
    def from_args(cls, args, workers: int) -> SpeakerRequest:
        """From `gestsync speaker`'s parsed arguments; `workers` when --workers is not given."""
        return cls(ModelSpec.from_args(args), args.per_frame, args.context_frames,
                   args.max_people, args.min_track_frames, args.min_track_size, args.max_gap,
                   args.scene_threshold, args.allow_offscreen,
                   cls.workers_of(args, workers), args.cues)


def find_speakers(video: str | os.PathLike, *, out_dir: str | os.PathLike | None = None,
                  write_video: bool = True, progress: scan.Progress | None = None,
                  **options) -> SpeakerResult:
    """Find who speaks in each scene (and, with per_frame, on each frame) of `video`.

    Args:
        video: a video file with sound and one or more visible people.
        out_dir: where to write speakers.json and <name>_speakers.mp4; None writes nothing.
        write_video: write the annotated video.
        progress: hook called as progress(stage, completed, total); None: no progress.
        options (`SpeakerRequest`):
        model: "auto" (default: the cached published model, else the built-in estimator),
            "builtin", "gestsync-rgb" or a model file path (as for `find_offset`).
        checkpoint: a model file path, as before `model` existed (same as model=PATH).
        device: torch device for the model; None picks a GPU if present.
        precision: the model's arithmetic, "fp32" (default) or "bf16" (as `find_offset`).
        per_frame: also decide on every frame, from the evidence of the `context_frames`
            frames centred on it (fewer at the ends of a track: the window shrinks).
        max_people: most people detected per frame.
        min_track_frames, min_track_size, max_gap: tracks shorter than min_track_frames
            or smaller than min_track_size pixels are dropped; gaps up to max_gap frames
            are bridged (see `people.track_people`).
        scene_threshold: shot-cut threshold of the content detector (higher: fewer cuts).
        allow_offscreen: answer "off-screen voice" when no visible person's motion clearly
            follows the sound; by default one of the visible people is named whenever
            there is speech (forced choice).
        workers: pose-detection processes (as `find_offset`; each also measures the shot
            changes of its stretch, so the clip is decoded once).
        cues: what is read, as for `find_offset`: body (default), face+body (whose lips
            move with the sound, too) or face (lips; the body where a face is not found).
    Raises:
        GestsyncError (MediaError, PeopleError, CheckpointError, UsageError) for problems
        the user can fix: unreadable or silent input, clip under 2 s, no scene long
        enough, no person, a bad option.
    """
    return run_speakers(video, SpeakerRequest.of(**options), None, out_dir, write_video,
                        progress)


def run_speakers(video: str | os.PathLike, request: SpeakerRequest, loaded: Loaded | None = None,
                 out_dir: str | os.PathLike | None = None, write_video: bool = True,
                 progress: scan.Progress | None = None) -> SpeakerResult:
    """`find_speakers` of one video with a checked request; `loaded`: its model, loaded
    (None: loaded here, once the video's sound has been found usable)."""
    progress = scan.progress_hook(progress)
    if out_dir is not None:
        outputs.check_writable(Path(out_dir))
    info = media.probe(video)
    progress("reading sound", 0, 1)
    audio = media.checked_audio(info, None)  # as `gestsync sync`: length, silence
    progress("reading sound", 1, 1)
    loaded = loaded or open_model(request.model)
    scorer = scoring.for_run(loaded.net, request.cues)
    spans, tracks = _scenes_and_tracks(info, request, _landmark_stride(scorer), progress)
    progress("voice activity", 0, 1)
    voice = vad.voice_activity(audio, info.num_frames)
    progress("voice activity", 1, 1)
    progress("scoring", 0, 1)
    evidence = scorer.speaker_evidence(info, audio, tracks, progress)
    result = _decide(info, spans, tracks, evidence, voice, request, loaded.choice.method)
    result.cues = evidence.used
    progress("scoring", 1, 1)
    if out_dir is not None:
        _write_outputs(result, info, Path(out_dir), write_video, progress)
    return result


def _landmark_stride(scorer) -> int | None:
    """Every how many frames the people stage asks for landmarks: never when the cue does
    not read them (the published model reads pixels), else `scan.SPEAKER_POSE_STRIDE`."""
    return scan.SPEAKER_POSE_STRIDE if scorer.reads_landmarks else None


def _scenes_and_tracks(info: media.MediaInfo, options: SpeakerRequest, landmark_stride: int | None,
                       progress: scan.Progress
                       ) -> tuple[list[tuple[int, int]], list[list[people.Track]]]:
    """Scene spans and each scene's tracks; PeopleError/MediaError when nothing is usable."""
    progress("people", 0, info.num_frames)
    found = scan.find_people(info, options.max_people, progress, stride=landmark_stride,
                             workers=options.workers, detect_stride=scan.DETECT_STRIDE)
    spans = found.scene_spans(options.scene_threshold)
    longest = max(end - start for start, end in spans)
    if longest < options.min_track_frames:
        raise MediaError(
            f"no scene of {info.path.name} lasts {options.min_track_frames / media.FPS:g} s "
            f"(longest {longest / media.FPS:.2f} s between cuts): give a clip with longer "
            "shots, or a higher --scene-threshold or lower --min-track-frames")
    tracks = scan.scene_people(found, spans, (info.width, info.height),
                               min_frames=options.min_track_frames,
                               min_size=options.min_track_size, max_gap=options.max_gap)
    if not any(tracks):
        raise PeopleError(
            f"no person found in {info.path.name}: gestsync needs visible people, "
            "with the upper body in view, for at least "
            f"{options.min_track_frames / media.FPS:g} s")
    return spans, tracks


def _decide(info, spans, tracks, evidence: scoring.SpeakerEvidence, voice: vad.VoiceActivity,
            options: SpeakerRequest, method: str) -> SpeakerResult:
    scenes, results, next_id = [], [], 0
    body_means = evidence.body_means or [None] * len(spans)
    for index, ((start, end), scene, ev) in enumerate(zip(spans, tracks, evidence.tracks)):
        ids = list(range(next_id, next_id + len(scene)))
        next_id += len(scene)
        offsets = [t.start - start for t in scene]
        fraction = voice.fraction(start, end)
        decision, scores, z = speaker_scores.decide_scene(
            ev, offsets, end - start, fraction, options.allow_offscreen,
            body_means=body_means[index] if ev else None)
        scenes.append(_scene_result(index, start, end, fraction, ids, decision))
        if options.per_frame:
            _frame_decisions(scenes[-1], ev, offsets, ids, voice, options)
        results += [_track_result(i, index, t, s, zz) for i, t, s, zz in zip(ids, scene, scores, z)]
    return SpeakerResult(
        video=str(info.path), method=method, num_frames=info.num_frames,
        duration_seconds=round(info.duration, 3), per_frame=options.per_frame,
        context_frames=options.context_frames if options.per_frame else None,
        scenes=scenes, tracks=results)


def _scene_result(index: int, start: int, end: int, fraction: float, ids: list[int],
                  decision: speaker_scores.Decision) -> SceneSpeakers:
    def track_id(i):
        return None if i is None else ids[i]

    return SceneSpeakers(
        index=index, start_frame=start, end_frame=end, start_seconds=start / media.FPS,
        end_seconds=end / media.FPS, speech_fraction=round(fraction, 3), track_ids=ids,
        speaker=track_id(decision.speaker), confidence=decision.confidence,
        reason=decision.reason, unsure=decision.unsure,
        competing=[ids[i] for i in decision.competing],
        body_names=track_id(decision.body_names))


def _frame_decisions(scene: SceneSpeakers, evidence, offsets, ids, voice,
                     options: SpeakerRequest) -> None:
    span = slice(scene.start_frame, scene.end_frame)
    length = scene.end_frame - scene.start_frame
    z = (speaker_scores.frame_z(evidence, offsets, length, options.context_frames) if evidence
         else np.zeros((0, length)))
    picks, confidence, _ = speaker_scores.decide_frames(z, voice.speech[span],
                                                        voice.probability[span],
                                                        options.allow_offscreen)
    scene.frame_speakers = [None if p is None else ids[p] for p in picks]
    scene.frame_confidence = [float(c) for c in confidence]


def _track_result(track_id: int, scene: int, track: people.Track, score: float, z: float) -> TrackSpeaker:
    def num(x):
        return round(float(x), 4) if np.isfinite(x) else None

    return TrackSpeaker(id=track_id, scene=scene, start_frame=track.start, end_frame=track.end,
                        score=num(score), z=num(z),
                        boxes=np.round(track.boxes).astype(int).tolist())


def _write_outputs(result: SpeakerResult, info: media.MediaInfo, out_dir: Path,
                   write_video: bool, progress: scan.Progress) -> None:
    """speakers.json and (unless write_video is False) the annotated video, all or nothing."""
    names = {"json": "speakers.json"}
    if write_video:
        names["video"] = f"{info.path.stem}_speakers.mp4"
    result.outputs = {k: str(out_dir / v) for k, v in names.items()}
    with outputs.staged(out_dir) as stage:
        if write_video:
            from .render import write_speaker_video

            write_speaker_video(info, result, stage / names["video"], progress)
        outputs.write_json(stage / names["json"], result.to_dict())
