"""Who speaks: per-frame evidence of each person against the scene's sound, and decisions.

Each person track gets a per-frame *evidence* at zero lag (built-in estimator: product of
the standardised motion and speech signals, whose mean is their correlation; model: the
scaled cosine of the picture and sound window embeddings). A listener's evidence is not
zero on average (a track's motion correlates a little with any speech by chance, and more
with slow bursts), so each track is compared with itself: the same evidence with the sound
circularly shifted by 0.5 s or more (`null_shifts`) tells how high the score of this very
motion gets against speech it is not in sync with. The standardised score

    z = (score at zero lag - mean of the shifted scores) / their standard deviation

is comparable between tracks of different lengths and steadiness. With people in view
and speech present, the highest z speaks (forced choice). Only when off-screen voices are
allowed does a best z under Z_SPEAKING make the voice "off-screen" instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import norm

from . import bootstrap, calibration, offset

NULL_MIN_SHIFT = 13  # frames (0.5 s): band-passed gesture and speech signals decorrelate
# well within this, so shifts at least this long give evidence of "not in sync"
NULL_SHIFTS = 48  # most shifted copies per track (evenly spread over the allowed shifts)
Z_SPEAKING = 1.0  # scene z at least this: the best-matching person's motion clearly follows
# the sound (a non-speaker reaches it in about 1 scene in 5, a single real speaker in 2 of
# 3: docs/accuracy.md). Decides "off-screen voice" (when allowed) and a lone person's
# confidence.
Z_FRAME = 0.0  # the same for per-frame windows, which are short (2 s) and noisy: evidence
# above the person's own shifted-sound average
MIN_SPEECH_FRACTION = 0.2  # scenes with speech on fewer frames than this: nobody speaks

# Confidence calibration (`calibration`): P(right) = sigmoid(a + b * logit(raw) + c *
# log(people) [+ d * disagree]), raw = the bootstrap agreement (scene) or Phi(margin)
# (frame), people = the candidates. Fitted per (level, off-screen allowed) by `gestsync eval
# --protocol speaker --fit-calibration` on composite scenes; fit and check clips:
# docs/accuracy.md. A lone person named by force keeps the raw value (see `decide_scene`):
# composites cannot say how often a lone visible person's voice is really off-screen.
CALIBRATION = {
    ("scene", False): (1.0092, 0.2344, -0.5019),
    ("scene", True): (0.6313, 0.1179, -0.4573),
    ("frame", False): (0.5947, 0.3690, -0.8778),
    ("frame", True): (0.0144, 0.3495, -0.4049),
}
CALIBRATION_SOURCE = ("gestsync eval --protocol speaker --fit-calibration on the 9 "
                      "single-speaker samples, every composite of 1-4 people, 2026-11-29")
# Scenes scored with a face cue: disagree = 1 when the body alone names another person.
# Fitted the same way with --cues face+body (2026-12-02); checked leave one clip out by
# studies/speaker_unsure.py (docs/accuracy.md).
FACE_CALIBRATION = {
    ("scene", False): (1.9201, 0.5373, -0.9374, -0.8379),
    ("scene", True): (1.1840, 0.2470, -0.4315, -0.6539),
}
COMPETING_SHARE = offset.COMPETING_SHARE  # another person picked by this share of the
# bootstrap resamples competed for the answer (as another lag does for an offset)

NO_SPEECH = "no speech"
OFF_SCREEN = "off-screen voice"  # speech, but no visible person's motion matches it
SPEAKING = "speaking"
NO_PERSON = "no person"


def calibrated(raw, people, level: str, allow_offscreen: bool, coefficients=None,
               disagree=None) -> np.ndarray:
    """Calibrated confidence of decisions with raw confidence `raw` among `people`
    candidates (arrays broadcast); a lone person chosen by force keeps `raw`. `disagree`
    (scenes scored with a face cue): whether the body alone names another person; it
    selects FACE_CALIBRATION."""
    raw = np.asarray(raw, float)
    people = np.broadcast_to(np.asarray(people, float), raw.shape)
    extra = [np.log(np.maximum(people.ravel(), 1))]
    if disagree is None:
        coefficients = coefficients or CALIBRATION[(level, allow_offscreen)]
    else:
        coefficients = coefficients or FACE_CALIBRATION[(level, allow_offscreen)]
        extra.append(np.broadcast_to(np.asarray(disagree, float), raw.shape).ravel())
    out = calibration.apply(calibration.features(raw.ravel(), *extra), coefficients).reshape(raw.shape)
    return np.where((people <= 1) & (not allow_offscreen), raw, out)


def null_shifts(length: int, most: int = NULL_SHIFTS) -> np.ndarray:
    """Circular shifts (frames) of the sound used as "out of sync" references: up to `most`
    values spread evenly over [NULL_MIN_SHIFT, length - NULL_MIN_SHIFT]."""
    lo, hi = NULL_MIN_SHIFT, length - NULL_MIN_SHIFT
    if hi < lo:
        return np.zeros(0, np.int64)
    return np.unique(np.round(np.linspace(lo, hi, min(most, hi - lo + 1))).astype(np.int64))


def circular_evidence(picture: np.ndarray, sound: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Zero-lag and circularly shifted per-frame evidence.

    picture, sound: (T,) signals or (T, D) embeddings on one 25 fps clock.
    Returns (1 + S) x T float64: row 0 is scale * <picture[t], sound[t]>, row 1 + i the
    same with sound[(t + shifts[i]) mod T], shifts = `null_shifts(T)`.
    """
    p = np.asarray(picture, np.float64).reshape(len(picture), -1)
    s = np.asarray(sound, np.float64).reshape(len(sound), -1)
    return evidence_rows(p, lambda t: s[t], np.arange(len(p)), len(p), scale)


def evidence_rows(picture: np.ndarray, sound_at, times: np.ndarray, length: int,
                  scale: float) -> np.ndarray:
    """`circular_evidence` of some of a clip's times: picture (n x D) at `times`,
    sound_at(times) -> n x D the sound at those times of a `length`-long clip.
    Returns (1 + S) x n: scale * <picture[j], sound_at((times[j] + shift) mod length)> for
    shift 0 and each of `null_shifts(length)`."""
    shifts = np.concatenate([[0], null_shifts(length)])
    return np.stack([scale * (picture * sound_at((times + k) % length)).sum(1) for k in shifts])


def z_scores(means: np.ndarray) -> np.ndarray:
    """(..., 1 + S) mean evidence (zero lag first, then shifted) -> (...) z; NaN if S < 2."""
    null = means[..., 1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = np.nanstd(null, axis=-1) if null.shape[-1] >= 2 else np.full(means.shape[:-1], np.nan)
        return (means[..., 0] - np.nanmean(null, axis=-1)) / np.maximum(spread, 1e-9)


@dataclass
class Decision:
    """Who speaks in a span: `speaker` is an index into the candidate tracks or None."""

    speaker: int | None
    confidence: float  # calibrated (see CALIBRATION)
    reason: str
    raw_confidence: float | None = None  # before calibration
    competing: list[int] = field(default_factory=list)  # `competing_people`: others that
    # the bootstrap resamples named often enough to compete with the speaker
    body_names: int | None = None  # scored with a face cue: whom the body alone names,
    # when it is not the speaker

    @property
    def unsure(self) -> bool:
        """Another person competed, or the cues disagree."""
        return bool(self.competing) or self.body_names is not None


def pick(z: np.ndarray, z_speaking: float | None = Z_SPEAKING) -> int | None:
    """Index of the highest finite z if it reaches z_speaking (None: always), else None."""
    if not np.isfinite(z).any():
        return None
    best = int(np.nanargmax(z))
    return best if z_speaking is None or z[best] >= z_speaking else None


def scene_means(evidence: list[np.ndarray]) -> np.ndarray:
    """Per-track mean over its frames of each evidence row: K x (1 + S) (NaN-aware)."""
    width = max(e.shape[0] for e in evidence)
    out = np.full((len(evidence), width), np.nan)
    for i, e in enumerate(evidence):
        with np.errstate(invalid="ignore"):
            out[i, :e.shape[0]] = np.nanmean(e, axis=1) if np.isfinite(e).any() else np.nan
    return out


def decide_scene(evidence: list[np.ndarray], offsets: list[int], length: int,
                 speech_fraction: float, allow_offscreen: bool = False, seed: int = 0,
                 body_means: np.ndarray | None = None) -> tuple[Decision, np.ndarray, np.ndarray]:
    """Whole-scene decision.

    Args:
        evidence: per track, (1 + S) x T_i evidence (`circular_evidence`), NaN where unscored.
        offsets: first frame of each track relative to the scene's start.
        length: frames in the scene.
        speech_fraction: share of the scene's frames with speech (voice activity).
        allow_offscreen: a best z under Z_SPEAKING answers "off-screen voice"; otherwise
            the highest z speaks (forced choice).
        body_means: with a face cue, the body cue alone's `scene_means` (K x (1 + S)):
            whom it names is compared with the answer (`Decision.body_names`).
    Returns:
        (decision, scores (K,) zero-lag mean evidence, z (K,)).
        Raw confidence, calibrated into `confidence` (`calibrated`): the share of
        block-bootstrap resamples of the scene (1 s blocks drawn with replacement) that
        give the same decision; for a lone person chosen by force, the share in which
        their z reaches Z_SPEAKING; for "no speech", 1 - speech_fraction.
    """
    if not evidence:
        return Decision(None, 1.0, NO_PERSON), np.zeros(0), np.zeros(0)
    means = scene_means(evidence)
    z = z_scores(means)
    if speech_fraction < MIN_SPEECH_FRACTION:
        return Decision(None, round(1 - speech_fraction, 3), NO_SPEECH), means[:, 0], z
    threshold = Z_SPEAKING if allow_offscreen else None
    chosen = pick(z, threshold)
    resampled = _bootstrap_z(evidence, offsets, length, seed)  # R x K
    picks = [pick(row, threshold) for row in resampled]
    if threshold is None and len(evidence) == 1:
        agree = float(np.mean(np.nan_to_num(resampled[:, 0], nan=-np.inf) >= Z_SPEAKING))
    else:
        agree = float(np.mean([p == chosen for p in picks]))
    body = None if body_means is None else pick(z_scores(body_means), threshold)
    body_names = body if body is not None and chosen is not None and body != chosen else None
    disagree = None if body_means is None else body_names is not None
    sure = float(calibrated(agree, len(evidence), "scene", allow_offscreen, disagree=disagree))
    reason = SPEAKING if chosen is not None else OFF_SCREEN
    return (Decision(chosen, round(sure, 3), reason, round(agree, 3),
                     competing_people(picks, chosen), body_names), means[:, 0], z)


def competing_people(picks: list[int | None], chosen: int | None) -> list[int]:
    """Other people named by at least COMPETING_SHARE of the resamples, most often first."""
    if chosen is None:
        return []
    counts = np.bincount([p for p in picks if p is not None and p != chosen], minlength=1)
    others = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0]
    return [i for i in others if counts[i] >= COMPETING_SHARE * len(picks)]


def _bootstrap_z(evidence, offsets, length, seed) -> np.ndarray:
    """R x K z of every track in block-bootstrap resamples of the scene (1 s blocks)."""
    width = max(e.shape[0] for e in evidence)
    placed = np.full((len(evidence), width, length), np.nan)
    for i, (e, o) in enumerate(zip(evidence, offsets)):
        placed[i, :e.shape[0], o:o + e.shape[1]] = e
    sums, counts = bootstrap.block_sums(placed)  # K x W x B
    draws = bootstrap.draws(sums.shape[-1], seed)  # R x B
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.einsum("rb,kwb->rkw", draws, sums) / np.einsum("rb,kwb->rkw", draws, counts)
    return z_scores(means)


def window_means(evidence: np.ndarray, context: int) -> np.ndarray:
    """Moving average over `context` frames centred on each frame, NaN-aware.

    evidence: W x T. The window shrinks at the ends (and skips NaN) instead of padding
    with zeros, so the first and last frames are averaged over the frames that exist.
    Returns W x T (NaN where the window holds no finite value).
    """
    finite = np.isfinite(evidence)
    sums = np.concatenate([np.zeros((len(evidence), 1)), np.cumsum(np.where(finite, evidence, 0), 1)], 1)
    counts = np.concatenate([np.zeros((len(evidence), 1)), np.cumsum(finite, 1)], 1)
    t = np.arange(evidence.shape[1])
    lo = np.clip(t - context // 2, 0, None)
    hi = np.clip(t + context - context // 2, None, evidence.shape[1])
    n = counts[:, hi] - counts[:, lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sums[:, hi] - sums[:, lo]) / n, np.nan)


def frame_z(evidence: list[np.ndarray], offsets: list[int], length: int,
            context: int) -> np.ndarray:
    """K x length per-frame z of each track (windowed evidence), NaN where it is absent."""
    out = np.full((len(evidence), length), np.nan)
    for i, (e, o) in enumerate(zip(evidence, offsets)):
        present = np.isfinite(e[0])
        z = z_scores(np.moveaxis(window_means(e, context), 0, -1))
        out[i, o:o + e.shape[1]] = np.where(present, z, np.nan)
    return out


def decide_frames(z: np.ndarray, speech: np.ndarray, speech_probability: np.ndarray,
                  allow_offscreen: bool = False
                  ) -> tuple[list[int | None], np.ndarray, np.ndarray]:
    """Per-frame decisions from K x T windowed z and the frames' voice activity.

    A frame without speech has nobody speaking (confidence 1 - speech probability). On a
    frame with speech the highest z among the people present speaks (with allow_offscreen,
    only if it reaches Z_FRAME). Confidence is Phi(margin), the chance that unit-variance
    noise on the margin leaves the decision as is: margin = best z - second z, or best z -
    Z_FRAME for a lone person (or when off-screen voices are allowed and that is larger);
    Z_FRAME - best z for an off-screen voice. Returns (speakers, calibrated confidence,
    raw confidence) per frame.
    """
    present = np.isfinite(z)
    ranked = np.sort(np.where(present, z, -np.inf), axis=0)[::-1]  # K x T, best first
    best = ranked[0] if len(z) else np.full(z.shape[1], -np.inf)
    second = ranked[1] if len(z) > 1 else np.full(z.shape[1], -np.inf)
    chosen = (np.argmax(np.where(present, z, -np.inf), axis=0) if len(z)
              else np.zeros(z.shape[1], np.int64))  # nobody in view: never read
    lone = present.sum(axis=0) == 1
    floor = np.where(lone, Z_FRAME, -np.inf) if not allow_offscreen else np.full_like(best, Z_FRAME)
    speaking = speech & np.isfinite(best) & (best >= Z_FRAME if allow_offscreen else True)
    with np.errstate(invalid="ignore"):
        margin = np.where(speaking, best - np.maximum(second, floor), Z_FRAME - best)
    raw = norm.cdf(np.nan_to_num(margin, nan=0.0))
    sure = calibrated(raw, present.sum(axis=0), "frame", allow_offscreen)
    quiet = 1 - speech_probability
    speakers = [int(c) if s else None for c, s in zip(chosen, speaking)]
    return (speakers, np.round(np.where(speech, sure, quiet), 3),
            np.round(np.where(speech, raw, quiet), 3))
