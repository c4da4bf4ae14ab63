"""Scoring: every cue (gestures, a trained network, the face) behind one interface.

`for_run(net, cues)` gives the cue of a run (`cues.Cues`: what it reads). Every cue offers
- `offset_scorer(info, tracks, person, progress)`: the picture side of one person, computed
  once; it returns score(audio, frames, lags) -> len(lags) x frames evidence (`offset`), so
  that `gestsync eval` scores many shifted sounds against one picture as `sync` scores one;
- `speaker_evidence(info, audio, scenes, progress)`: `SpeakerEvidence`, per scene, per
  track, (1 + S) x T evidence at zero lag and against circularly shifted sound
  (`speaker_scores`), which cues carried it, and with the face the body's alone,
- `confidence_rule(used)`: the offset confidence rule of an answer (`offset.ConfidenceRule`),
and says how its evidence is scored (`subwindow`, see `offset.block_totals`).

- `BodyMotion`: the built-in estimator, no weights (`estimator`).
- `Network`: a trained model: the published RGB network or our keypoint model (how each
  is fed is in `variants`).
- `WithFace`: another cue with the lips' motion fused in (`face`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
import torch

from . import estimator, face, media, offset, people, scan, speaker_scores, variants
from .audio import log_mel
from .cues import DEFAULT, Cues
from .progress import Progress, no_progress

Score = Callable[[np.ndarray, int, np.ndarray], np.ndarray]  # (audio, frames, lags) -> L x frames
MODEL_WINDOW = 25  # frames per model window; its speaker score belongs to its centre frame
FIRST_SOUND_BATCH = 256  # sound windows embedded for a track's first one: the first batch of
# either network's `embed_audio_clip` (64 and 256 windows), as the track alone gets it


@dataclass
class OffsetScorer:
    """One person's picture side, ready to score any sound: scorer(audio, frames, lags)."""

    score: Score
    face_seen: np.ndarray | None = None  # frames where the face cue saw a face

    def __call__(self, audio: np.ndarray, frames: int, lags: np.ndarray) -> np.ndarray:
        return self.score(audio, frames, lags)


class SpeakerEvidence(NamedTuple):
    """What a cue gives `find_speakers`."""

    tracks: list[list[np.ndarray]]  # per scene, per track: (1 + S) x T evidence
    used: dict | None = None  # which cues carried it (`WithFace.used`); None: the body
    body_means: list[np.ndarray] | None = None  # a face cue's: per scene, the body cue
    # alone's `speaker_scores.scene_means`, to tell whether the body names someone else


def for_run(net, cues: Cues = DEFAULT):
    """The cue of a run: the built-in estimator (net None) or the model, with the face's
    lips fused in where `cues` reads the face."""
    body = BodyMotion() if net is None else Network(net)
    return WithFace(body, cues) if cues.reads_face else body


class _BodyCue:
    """A cue of the body alone (nothing fused in)."""

    rule = offset.BODY_CONFIDENCE
    reads_landmarks: bool  # the people stage finds pose landmarks only for a cue that reads them

    def used(self, seen: np.ndarray | None) -> dict | None:
        """Which cues carried an answer: None, the body alone."""
        return None

    def confidence_rule(self, used: dict | None) -> offset.ConfidenceRule:
        """The offset confidence rule of an answer: the body's, or the model's."""
        return self.rule

    def track_evidence(self, body: np.ndarray, signals, seen, speech) -> np.ndarray:
        """One track's speaker evidence (`speaker_evidence`) from its body's: as it is."""
        return body

    def body_means(self, scene: list[np.ndarray]) -> None:
        """What the body alone says of a scene's tracks (evidence `scene`), beside what
        this cue says: nothing, this cue is the body's."""
        return None


class BodyMotion(_BodyCue):
    """The built-in estimator: the speed of hands, arms and head against speech energy."""

    subwindow = estimator.SUBWINDOW_FRAMES  # 2 s sub-window votes
    unit_scale = True  # evidence is a product of standardised signals
    reads_landmarks = True  # hands, arms and head from the pose landmarks

    def offset_scorer(self, info: media.MediaInfo, tracks: list[people.Track],
                      person: people.Track, progress: Progress) -> OffsetScorer:
        motion = estimator.person_motion(scan.person_pieces(tracks, info.num_frames),
                                         info.num_frames)
        return OffsetScorer(lambda audio, frames, lags: estimator.evidence(
            motion[:, :frames], estimator.speech_signals(audio, frames), lags))

    def speaker_evidence(self, info: media.MediaInfo, audio: np.ndarray,
                         scenes: list[list[people.Track]], progress: Progress):
        speech = estimator.speech_signals(audio, info.num_frames)
        return SpeakerEvidence([[estimator.track_evidence(t.keypoints, speech[:, t.start:t.end],
                                                          t.motion, t.landmark_share)
                                 for t in scene] for scene in scenes])


class Network(_BodyCue):
    """A trained network: scaled cosines of picture and sound window embeddings."""

    subwindow = None  # the plain mean, as the authors' code scores
    unit_scale = False  # scaled cosines: `WithFace` rescales them
    rule = offset.MODEL_CONFIDENCE

    def __init__(self, net) -> None:
        self.net, self.variant = net, variants.of(net)
        self.scale = float(net.logits_scale.weight.detach().reshape(()))
        self.reads_landmarks = self.variant.reads_keypoints  # the published model: pixels only

    def offset_scorer(self, info, tracks, person, progress) -> OffsetScorer:
        video = self.variant.clip_video(self.net, info, person, progress)
        return OffsetScorer(lambda audio, frames, lags: shifted_cosines(
            video[:frames], self.sound(audio, progress), lags, self.scale, frames))

    def sound(self, audio: np.ndarray, progress: Progress = no_progress) -> torch.Tensor:
        """Window embeddings of the sound: row s is frames s .. s + 24. Reported to
        `progress` as one step, "model (sound)"."""
        progress("model (sound)", 0, 1)
        with torch.inference_mode():
            sound = self.net.embed_audio_clip(log_mel(audio).to(self.net.device))
        progress("model (sound)", 1, 1)
        return sound

    def speaker_evidence(self, info, audio, scenes, progress):
        total, done, out = sum(len(s) for s in scenes), 0, []
        for scene in scenes:
            out.append(self.scene_evidence(info, audio, scene, progress) if scene else [])
            done += len(scene)
            progress("model (people)", done, total)
        return SpeakerEvidence(out)

    def scene_evidence(self, info, audio, scene: list[people.Track], progress) -> list[np.ndarray]:
        """Each track's (1 + S) x track.length evidence: `speaker_scores.circular_evidence`
        of its L2-normalised picture and sound window embeddings (the scaled cosine at zero
        lag and against circularly shifted sound), each window's score on its centre frame.
        The picture windows of all tracks come from one decode and shared batches
        (`variants.scene_video`) and are scored as they come: no track holds its embeddings."""
        sounds = self.track_sounds(audio, scene, progress)
        evidence = [_StreamedEvidence(t.length, sound, self.scale) for t, sound in zip(scene, sounds)]
        for i, first, video in self.variant.scene_video(self.net, info, scene, progress):
            evidence[i].add(first, video)
        return [e.out for e in evidence]

    def track_sounds(self, audio, scene: list[people.Track], progress) -> list[_TrackSound]:
        """Each track's sound windows as its own stretch of sound gives them, from one
        embedding per stretch of the scene that tracks cover. A track's windows are the
        stretch's from its start on, but for its first: its log-mel's first frame is padded
        at the track's start, so that window is embedded anew, in the first batch that the
        track alone would get (the numbers depend on the batch's size)."""
        out = {}
        for start, end in people.covered_spans(scene):
            sound = self.normalised_sound(audio, start, end, progress).numpy()
            for i, track in enumerate(scene):
                if start <= track.start < end:
                    first = (sound[track.start - start] if track.start == start else
                             self.normalised_sound(audio, track.start, track.start + min(
                                 track.length, FIRST_SOUND_BATCH + MODEL_WINDOW - 1)).numpy()[0])
                    out[i] = _TrackSound(sound, track.start - start, first)
        return [out[i] for i in range(len(scene))]

    def normalised_sound(self, audio, start: int, end: int, progress=no_progress) -> torch.Tensor:
        """L2-normalised window embeddings of the sound of frames start .. end - 1 (in place:
        an hour of sound holds 368 MB of them, once)."""
        sound = self.sound(audio[start * media.SAMPLES_PER_FRAME:end * media.SAMPLES_PER_FRAME], progress)
        with torch.inference_mode():  # `sound` is an inference tensor
            return torch.nn.functional.normalize(sound, dim=1, out=sound)


class _TrackSound:
    """A track's normalised sound window embeddings: rows of its stretch's from `offset`
    on, the first replaced by `first`."""

    def __init__(self, stretch: np.ndarray, offset: int, first: np.ndarray) -> None:
        self.stretch, self.offset, self.first = stretch, offset, first

    def rows(self, windows: np.ndarray) -> np.ndarray:
        """float64 len(windows) x D: the embeddings of the track's windows `windows`."""
        out = self.stretch[self.offset + windows].astype(np.float64)
        out[windows == 0] = self.first
        return out


class _StreamedEvidence:
    """One track's `speaker_scores.circular_evidence`, filled as its picture windows come:
    each entry is its own sum (numbers as when all windows are at hand), each window's
    score on its centre frame; NaN where no window is centred."""

    def __init__(self, length: int, sound: _TrackSound, scale: float) -> None:
        self.windows = length - MODEL_WINDOW + 1
        self.out = np.full((1 + len(speaker_scores.null_shifts(self.windows)), length), np.nan)
        self.sound, self.scale = sound, scale

    def add(self, first: int, video: torch.Tensor) -> None:
        """Score the picture embeddings (n x D) of windows first .. first + n - 1."""
        picture = torch.nn.functional.normalize(video, dim=1).numpy().astype(np.float64)
        windows = np.arange(first, first + len(picture))
        frames = slice(MODEL_WINDOW // 2 + first, MODEL_WINDOW // 2 + first + len(picture))
        self.out[:, frames] = speaker_scores.evidence_rows(picture, self.sound.rows, windows,
                                                           self.windows, self.scale)


class WithFace:
    """Another cue with the mouth's motion fused in where a face is seen (`Cues.fuse`)."""

    def __init__(self, body: _BodyCue, cues: Cues) -> None:
        self.body, self.cues = body, cues
        self.subwindow, self.unit_scale = body.subwindow, body.unit_scale
        self.reads_landmarks = True  # the face is sought in the head box they give

    def offset_scorer(self, info, tracks, person, progress) -> OffsetScorer:
        body = self.body.offset_scorer(info, tracks, person, progress)
        pieces = scan.person_pieces(tracks, info.num_frames)
        signals, seen = face.mouth_signals(face.person_mouth(info, pieces, progress=progress))

        def fused(audio, frames, lags):
            speech = estimator.speech_signals(audio, frames)
            evidence, seen_here = body(audio, frames, lags), seen[:frames]
            if not seen_here.any():  # no face anywhere: the body carries the clip alone
                return evidence
            mouth = face.mouth_evidence(signals[:, :frames], seen_here, speech, lags)
            return self.cues.fuse(self._face_scaled(evidence), mouth, seen_here)
        return OffsetScorer(fused, seen)

    def _face_scaled(self, evidence: np.ndarray, row: int | None = None) -> np.ndarray:
        """Body evidence on the face evidence's scale: a model's scaled cosines
        (`unit_scale` False) divided by their spread (of `row` only, when given)."""
        if self.unit_scale:
            return evidence
        spread = np.nanstd(evidence if row is None else evidence[row])
        return evidence / max(float(spread), 1e-12)

    def speaker_evidence(self, info, audio, scenes, progress):
        """As the body cue's, each track's mouth fused in (`track_evidence`), and per
        scene what the body alone says (`body_means`)."""
        evidence = self.body.speaker_evidence(info, audio, scenes, progress).tracks
        body_means = [self.body_means(ev) for ev in evidence]
        mouths = face.track_mouths(info, scenes, progress=progress)
        speech = estimator.speech_signals(audio, info.num_frames)
        out, seen_all = [], []
        for scene, scene_ev, scene_mouths in zip(scenes, evidence, mouths):
            out.append([self.track_evidence(body, signals, seen, speech[:, track.start:track.end])
                        for track, body, (signals, seen) in zip(scene, scene_ev, scene_mouths)])
            seen_all += [seen for _, seen in scene_mouths]
        used = self.used(np.concatenate(seen_all) if seen_all else np.zeros(0, bool))
        return SpeakerEvidence(out, used, body_means)

    def track_evidence(self, body: np.ndarray, signals: np.ndarray, seen: np.ndarray,
                       speech: np.ndarray) -> np.ndarray:
        """One track's (1 + S) x T speaker evidence: its body's (same shape) with its mouth's
        (mouth signals against its G x T speech signals) fused in before the z-score."""
        body = self._face_scaled(body, row=0)
        if not seen.any():
            return body
        return self.cues.fuse(body, face.mouth_speaker_evidence(signals, seen, speech), seen)

    def body_means(self, scene: list[np.ndarray]) -> np.ndarray:
        """What the body alone says of a scene's tracks (their body evidence `scene`):
        `speaker_scores.scene_means`, to tell whether it names another person."""
        return speaker_scores.scene_means(scene) if scene else np.zeros((0, 1))

    def used(self, seen: np.ndarray | None) -> dict:
        """Which cues carried the answer and their weights (`Cues.summary`) over the
        frames of `seen` (True: a face was seen)."""
        return self.cues.summary(seen)

    def confidence_rule(self, used: dict | None) -> offset.ConfidenceRule:
        """The model's rule for a trained network (with or without the face); else the
        rule of these cues where the face carried the answer, the body's otherwise."""
        if isinstance(self.body, Network):
            return self.body.rule
        return self.cues.confidence_rule(used)


def shifted_cosines(video: torch.Tensor, sound: torch.Tensor, lags: np.ndarray, scale: float,
                    num_frames: int) -> np.ndarray:
    """evidence[i, s] = scale * cos(video[s], sound[s + lags[i]]), NaN where either is missing.

    Dot products over products of norms (as `F.normalize`, a norm is at least 1e-12), so no
    normalised copy of the embeddings is held: 8 KB a frame less at the peak of a long clip.
    """
    video, sound = video.float(), sound.float()
    dots = offset.shifted_products(video, sound, lags, scale, num_frames)
    norms = offset.shifted_products(video.norm(dim=1).clamp_min(1e-12), sound.norm(dim=1).clamp_min(1e-12),
                                    lags, 1.0, num_frames)
    return dots / norms
