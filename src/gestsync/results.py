"""What `find_offset` and `find_speakers` return: plain dataclasses, JSON-ready with
`to_dict()` (the `--json` lines, offset.json, speakers.json), and how per-frame speaker
decisions are put in words."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class OffsetResult:
    """What `find_offset` found. Frames are at 25 fps on the presentation clock.

    offset_frames > 0 means the sound comes later than the picture (the published
    model's convention): delay the picture, or advance the sound, by that much to fix it.
    confidence: calibrated probability that the answer is right within 2 frames, from
    `bootstrap_agreement` (the share of block-bootstrap resamples of the clip that agree
    with it within 2 frames), the scored length and `peak_margin`, with the curve of the
    cues used (`cues.Cues.confidence_rule`); `uncertain` below `sure_at`, the confidence at which
    that cue's answers were right 95% of the time on held-out clips (docs/accuracy.md).
    """

    video: str
    offset_frames: int
    offset_seconds: float
    confidence: float
    uncertain: bool
    bootstrap_agreement: float
    method: str  # "builtin" (no weights), "gestsync-rgb" (the cached published model) or
    # "model" (a model file given by path)
    num_frames: int
    duration_seconds: float
    scored_frames: tuple[int, int]  # [start, stop) on the 25 fps grid
    candidates: list[int]
    scores: list[float | None]
    segments: list[dict] | None = None  # with segment_seconds: the offset of each stretch
    drift: dict | None = None  # with segment_seconds: {"drifting", "frames_per_minute"}
    person: dict | None = None  # whose gestures carried the answer (`PersonAnswer` fields)
    people: list[dict] | None = None  # with several people: every person's own answer
    outputs: dict[str, str] = field(default_factory=dict)
    # With --cues face+body or face: which cues carried the answer and how much
    # (`cues.Cues.summary`); with the default body cue, absent from the JSON.
    cues: dict | None = None
    # An uncertain body answer for a person whose face was in view on most frames:
    # the name of face+body (absent otherwise).
    suggested_cues: str | None = None
    # How far the answer's score stands above the best other peak, in standard deviations
    # of the scores (`offset.peak_margin`; near 0: near-equal peaks).
    peak_margin: float | None = None
    # Other offsets that the bootstrap resamples picked often (`offset.competing_lags`),
    # most picked first; empty when nothing competed with the answer.
    competing_offsets: list[int] = field(default_factory=list)
    sure_at: float | None = None  # the confidence that a corrected copy needs (see above)

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN scores become None; `cues` and `suggested_cues` only when
        set)."""
        d = asdict(self)
        for key in ("cues", "suggested_cues"):
            if d[key] is None:
                del d[key]
        return d


@dataclass
class SceneSpeakers:
    """One scene: frames [start_frame, end_frame) at 25 fps, and who speaks in it.

    speaker: id of the speaking track, or None (reason says why: "no speech",
    "off-screen voice", "no person"). confidence: see README (bootstrap agreement).
    unsure: another person competed (`competing`: ids named by at least 10% of the
    bootstrap resamples) or, with a face cue, the body alone names another (`body_names`).
    frame_speakers / frame_confidence: per frame, with per_frame only.
    """

    index: int
    start_frame: int
    end_frame: int
    start_seconds: float
    end_seconds: float
    speech_fraction: float
    track_ids: list[int]
    speaker: int | None
    confidence: float
    reason: str
    unsure: bool = False
    competing: list[int] = field(default_factory=list)
    body_names: int | None = None
    frame_speakers: list[int | None] | None = None
    frame_confidence: list[float] | None = None


@dataclass
class TrackSpeaker:
    """One person in one scene: boxes per frame (x0, y0, x1, y1, original pixels)."""

    id: int
    scene: int
    start_frame: int
    end_frame: int
    score: float | None  # mean zero-lag evidence (correlation or scaled cosine)
    z: float | None  # score standardised against the track's own shifted-sound scores
    boxes: list[list[int]]


@dataclass
class SpeakerResult:
    """What `find_speakers` found; frames are at 25 fps on the presentation clock."""

    video: str
    method: str  # "builtin", "gestsync-rgb" (the cached published model) or "model" (a file)
    num_frames: int
    duration_seconds: float
    per_frame: bool
    context_frames: int | None
    scenes: list[SceneSpeakers]
    tracks: list[TrackSpeaker]
    outputs: dict[str, str] = field(default_factory=dict)
    cues: dict | None = None  # with a face cue: `cues.Cues.summary` over every track's frames

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["cues"] is None:  # the default body cue: the JSON as before
            del d["cues"]
        return d

    def speaker_at(self, frame: int) -> int | None:
        """Track id speaking at `frame` (per-frame decision if present, else the scene's)."""
        for s in self.scenes:
            if s.start_frame <= frame < s.end_frame:
                if s.frame_speakers is not None:
                    return s.frame_speakers[frame - s.start_frame]
                return s.speaker
        return None


def scene_doubt(scene: dict) -> str:
    """Why a scene's answer (`SceneSpeakers.to_dict`) is unsure, '' when it is not:
    'unsure: #2 or #1', 'unsure: the body alone names #1', or both."""
    if not scene.get("unsure"):
        return ""
    parts = []
    if scene.get("competing"):
        parts.append(" or ".join(f"#{i}" for i in [scene["speaker"], *scene["competing"]]))
    if scene.get("body_names") is not None:
        parts.append(f"the body alone names #{scene['body_names']}")
    return "unsure: " + "; ".join(parts)


def frame_shares(frame_speakers: list[int | None]) -> list[tuple[int | None, float]]:
    """(track id or None, share of the frames) of a scene's per-frame decisions, largest
    share first: how the summary line, the web page and the boxed video's labels agree."""
    ids, counts = np.unique(np.array([-1 if f is None else f for f in frame_speakers]),
                            return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return [(None if ids[i] < 0 else int(ids[i]), counts[i] / len(frame_speakers)) for i in order]


def describe_shares(frame_speakers: list[int | None]) -> str:
    """'#1 67%, #0 20%, nobody 13%' (`frame_shares` in words)."""
    return ", ".join(f"{'nobody' if who is None else f'#{who}'} {round(100 * share)}%"
                     for who, share in frame_shares(frame_speakers))
