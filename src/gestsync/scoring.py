"""Scoring: every cue (gestures, a trained network, the face) behind one interface.

`for_run(net, cues)` gives the cue of a run. Every cue offers
- `offset_scorer(info, tracks, person, progress)`: the picture side of one person, computed
  once; it returns score(audio, frames, lags) -> len(lags) x frames evidence (`offset`), so
  that `gestsync eval` scores many shifted sounds against one picture as `sync` scores one;
- `speaker_evidence(info, audio, scenes, progress)`: per scene, per track, (1 + S) x T
  evidence at zero lag and against circularly shifted sound (`speaker_scores`), and which
  cues carried it (`used`),
and says how its evidence is scored (`subwindow`, see `offset.block_totals`).

- `BodyMotion`: the built-in estimator, no weights (`estimator`).
- `Network`: a trained model: the published RGB network or our keypoint model (how each
  is fed is in `variants`).
- `WithFace`: another cue with the lips' motion fused in (`face`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from . import estimator, face, media, offset, people, scan, speaker_scores, variants
from .audio import log_mel
from .progress import Progress, no_progress

Score = Callable[[np.ndarray, int, np.ndarray], np.ndarray]  # (audio, frames, lags) -> L x frames
MODEL_WINDOW = 25  # frames per model window; its speaker score belongs to its centre frame


@dataclass
class OffsetScorer:
    """One person's picture side, ready to score any sound: scorer(audio, frames, lags)."""

    score: Score
    face_seen: np.ndarray | None = None  # frames where the face cue saw a face

    def __call__(self, audio: np.ndarray, frames: int, lags: np.ndarray) -> np.ndarray:
        return self.score(audio, frames, lags)


def for_run(net, cues: str = face.DEFAULT_CUES):
    """The cue of a run: the built-in estimator (net None) or the model, with the face's
    lips fused in unless `cues` is "body"."""
    face.check_cues(cues)
    body = BodyMotion() if net is None else Network(net)
    return body if cues == "body" else WithFace(body, cues)


class _BodyCue:
    """A cue of the body alone (nothing fused in)."""

    def used(self, seen: np.ndarray | None) -> dict | None:
        """Which cues carried an answer: None, the body alone."""
        return None


class BodyMotion(_BodyCue):
    """The built-in estimator: the speed of hands, arms and head against speech energy."""

    subwindow = estimator.SUBWINDOW_FRAMES  # 2 s sub-window votes
    unit_scale = True  # evidence is a product of standardised signals

    def offset_scorer(self, info: media.MediaInfo, tracks: list[people.Track],
                      person: people.Track, progress: Progress) -> OffsetScorer:
        motion = estimator.person_motion(scan.person_pieces(tracks, info.num_frames),
                                         info.num_frames)
        return OffsetScorer(lambda audio, frames, lags: estimator.evidence(
            motion[:, :frames], estimator.speech_signals(audio, frames), lags))

    def speaker_evidence(self, info: media.MediaInfo, audio: np.ndarray,
                         scenes: list[list[people.Track]], progress: Progress):
        speech = estimator.speech_signals(audio, info.num_frames)
        return [[estimator.track_evidence(t.keypoints, speech[:, t.start:t.end], t.motion,
                                          t.landmark_share) for t in scene]
                for scene in scenes], None


class Network(_BodyCue):
    """A trained network: scaled cosines of picture and sound window embeddings."""

    subwindow = None  # the plain mean, as the authors' code scores
    unit_scale = False  # scaled cosines: `WithFace` rescales them

    def __init__(self, net) -> None:
        self.net, self.variant = net, variants.of(net)
        self.scale = float(net.logits_scale.weight.detach().reshape(()))

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
            out.append([])
            for track in scene:
                out[-1].append(self.track_evidence(info, audio, track, progress))
                done += 1
                progress("model (people)", done, total)
        return out, None

    def track_evidence(self, info, audio, track: people.Track, progress) -> np.ndarray:
        """(1 + S) x track.length: the scaled cosine at zero lag and against circularly
        shifted sound, each window's score on its centre frame."""
        video, sound = self.track_embeddings(info, audio, track, progress)
        scored = speaker_scores.circular_evidence(video.numpy(), sound.numpy(), self.scale)
        out = np.full((scored.shape[0], track.length), np.nan)
        centre = MODEL_WINDOW // 2
        out[:, centre:centre + scored.shape[1]] = scored
        return out

    def track_embeddings(self, info, audio, track: people.Track, progress
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised W x D picture and sound embeddings over the track's own frames:
        row s is the window of frames track.start + s .. + 24."""
        video = self.variant.track_video(self.net, info, track, progress)
        span = audio[track.start * media.SAMPLES_PER_FRAME:track.end * media.SAMPLES_PER_FRAME]
        sound = self.sound(span)
        rows = min(len(video), len(sound))
        return (torch.nn.functional.normalize(video[:rows], dim=1),
                torch.nn.functional.normalize(sound[:rows], dim=1))


class WithFace:
    """Another cue with the mouth's motion fused in where a face is seen (`face.fuse`)."""

    def __init__(self, body: _BodyCue, cues: str) -> None:
        self.body, self.cues = body, cues
        self.subwindow, self.unit_scale = body.subwindow, body.unit_scale

    def offset_scorer(self, info, tracks, person, progress) -> OffsetScorer:
        body = self.body.offset_scorer(info, tracks, person, progress)
        pieces = scan.person_pieces(tracks, info.num_frames)
        signals, seen = face.mouth_signals(face.person_mouth(info, pieces, progress=progress))

        def fused(audio, frames, lags):
            speech = estimator.speech_signals(audio, frames)
            return face.fused_evidence(body(audio, frames, lags), signals[:, :frames],
                                       seen[:frames], speech, lags, self.cues, self.unit_scale)
        return OffsetScorer(fused, seen)

    def speaker_evidence(self, info, audio, scenes, progress):
        """As the body cue's, each track's mouth fused in (`face.speaker_evidence`)."""
        evidence, _ = self.body.speaker_evidence(info, audio, scenes, progress)
        mouths = face.track_mouths(info, scenes, progress=progress)
        speech = estimator.speech_signals(audio, info.num_frames)
        out, seen_all = [], []
        for scene, scene_ev, scene_mouths in zip(scenes, evidence, mouths):
            out.append([])
            for track, body, (signals, seen) in zip(scene, scene_ev, scene_mouths):
                if not self.unit_scale:  # a model's scaled cosines, to the face's scale
                    body = body / max(float(np.nanstd(body[0])), 1e-12)
                out[-1].append(face.speaker_evidence(body, signals, seen,
                                                     speech[:, track.start:track.end], self.cues))
                seen_all.append(seen)
        return out, self.used(np.concatenate(seen_all) if seen_all else np.zeros(0, bool))

    def used(self, seen: np.ndarray | None) -> dict:
        """Which cues carried the answer and their weights (`face.cue_summary`) over the
        frames of `seen` (True: a face was seen)."""
        return face.cue_summary(self.cues if seen.any() else "body", seen, len(seen))


def confidence_rule(cue, used: dict | None) -> offset.ConfidenceRule:
    """The offset confidence rule (`offset.CONFIDENCE`) of a run's cue and the cues that
    carried its answer (`used`): "model" for a trained network (with or without the face),
    the face cue's where a face was seen, else the body's."""
    body = cue.body if isinstance(cue, WithFace) else cue
    if isinstance(body, Network):
        return offset.CONFIDENCE["model"]
    if isinstance(cue, WithFace) and used and "face" in used:
        return offset.CONFIDENCE[cue.cues]
    return offset.CONFIDENCE["body"]


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
