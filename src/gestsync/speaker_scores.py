"""Who speaks: per-frame evidence of each person against the scene's sound, and decisions.

Each person track gets a per-frame *evidence* at zero lag (built-in estimator: product of
the standardised motion and speech signals, whose mean is their correlation; model: the
scaled cosine of the picture and sound window embeddings). A listener's evidence is not
zero on average (a track's motion correlates a little with any speech by chance, and more
with slow bursts), so each track is compared with itself: the same evidence with the sound
circularly shifted by 0.5 s or more (`null_shifts`) tells how high the score of this very
motion gets against speech it is not in sync with. The standardised score

    z = (score at zero lag - mean of the shifted scores) / their standard deviation

is comparable between tracks of different lengths and steadiness; the highest z speaks,
if it reaches Z_SPEAKING (otherwise the voice is off-screen or nobody visible matches).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

FPS = 25
NULL_MIN_SHIFT = 13  # frames (0.5 s): band-passed gesture and speech signals decorrelate
# well within this, so shifts at least this long give evidence of "not in sync"
NULL_SHIFTS = 48  # most shifted copies per track (evenly spread over the allowed shifts)
Z_SPEAKING = 1.0  # scene z at least this: the best-matching person is said to speak (a
# non-speaker reaches it in about 1 scene in 5, a single real speaker in 2 of 3: README)
Z_FRAME = 0.0  # per-frame windows are short (2 s), so their z is noisy: the best person
# speaks when its evidence is above its own shifted-sound average
MIN_SPEECH_FRACTION = 0.2  # scenes with speech on fewer frames than this: nobody speaks
BOOTSTRAP_BLOCK = FPS  # 1 s blocks keep the signals' own correlation
BOOTSTRAP_RESAMPLES = 200

NO_SPEECH = "no speech"
OFF_SCREEN = "off-screen voice"  # speech, but no visible person's motion matches it
SPEAKING = "speaking"
NO_PERSON = "no person"


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
    shifts = np.concatenate([[0], null_shifts(len(p))])
    return np.stack([scale * (p * np.roll(s, -k, axis=0)).sum(1) for k in shifts])


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
    confidence: float
    reason: str


def pick(z: np.ndarray, z_speaking: float = Z_SPEAKING) -> int | None:
    """Index of the highest finite z if it reaches z_speaking, else None."""
    if not np.isfinite(z).any():
        return None
    best = int(np.nanargmax(z))
    return best if z[best] >= z_speaking else None


def scene_means(evidence: list[np.ndarray]) -> np.ndarray:
    """Per-track mean over its frames of each evidence row: K x (1 + S) (NaN-aware)."""
    width = max(e.shape[0] for e in evidence)
    out = np.full((len(evidence), width), np.nan)
    for i, e in enumerate(evidence):
        with np.errstate(invalid="ignore"):
            out[i, :e.shape[0]] = np.nanmean(e, axis=1) if np.isfinite(e).any() else np.nan
    return out


def decide_scene(evidence: list[np.ndarray], offsets: list[int], length: int,
                 speech_fraction: float, z_speaking: float = Z_SPEAKING,
                 seed: int = 0) -> tuple[Decision, np.ndarray, np.ndarray]:
    """Whole-scene decision.

    Args:
        evidence: per track, (1 + S) x T_i evidence (`circular_evidence`), NaN where unscored.
        offsets: first frame of each track relative to the scene's start.
        length: frames in the scene.
        speech_fraction: share of the scene's frames with speech (voice activity).
    Returns:
        (decision, scores (K,) zero-lag mean evidence, z (K,)).
        Confidence: share of block-bootstrap resamples of the scene (1 s blocks drawn with
        replacement) that give the same decision; for "no speech", 1 - speech_fraction.
    """
    if not evidence:
        return Decision(None, 1.0, NO_PERSON), np.zeros(0), np.zeros(0)
    means = scene_means(evidence)
    z = z_scores(means)
    if speech_fraction < MIN_SPEECH_FRACTION:
        return Decision(None, round(1 - speech_fraction, 3), NO_SPEECH), means[:, 0], z
    chosen = pick(z, z_speaking)
    agree = _bootstrap_agreement(evidence, offsets, length, chosen, z_speaking, seed)
    return Decision(chosen, agree, SPEAKING if chosen is not None else OFF_SCREEN), means[:, 0], z


def _bootstrap_agreement(evidence, offsets, length, chosen, z_speaking, seed) -> float:
    """Share of block-bootstrap resamples of the scene whose decision equals `chosen`."""
    width = max(e.shape[0] for e in evidence)
    placed = np.full((len(evidence), width, length), np.nan)
    for i, (e, o) in enumerate(zip(evidence, offsets)):
        placed[i, :e.shape[0], o:o + e.shape[1]] = e
    blocks = np.array_split(np.arange(length), max(1, length // BOOTSTRAP_BLOCK))
    sums = np.stack([np.nansum(placed[..., b], axis=-1) for b in blocks], -1)  # K x W x B
    counts = np.stack([np.isfinite(placed[..., b]).sum(-1) for b in blocks], -1)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(blocks), np.full(len(blocks), 1 / len(blocks)),
                            size=BOOTSTRAP_RESAMPLES)  # R x B
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.einsum("rb,kwb->rkw", draws, sums) / np.einsum("rb,kwb->rkw", draws, counts)
    z = z_scores(means)  # R x K
    picks = [pick(row, z_speaking) for row in z]
    return round(float(np.mean([p == chosen for p in picks])), 3)


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
                  z_speaking: float = Z_FRAME) -> tuple[list[int | None], np.ndarray]:
    """Per-frame decisions from K x T windowed z and the frames' voice activity.

    A frame without speech has nobody speaking (confidence 1 - speech probability);
    otherwise the highest z speaks if it reaches z_speaking. Confidence is Phi(margin):
    margin = best z - max(second z, z_speaking) for a speaker, z_speaking - best z for
    nobody; the chance that unit-variance noise on the margin leaves the decision as is.
    """
    ranked = np.sort(np.where(np.isfinite(z), z, -np.inf), axis=0)[::-1]  # K x T, best first
    best = ranked[0] if len(z) else np.full(z.shape[1], -np.inf)
    second = ranked[1] if len(z) > 1 else np.full(z.shape[1], -np.inf)
    chosen = np.argmax(np.where(np.isfinite(z), z, -np.inf), axis=0) if len(z) else best.astype(int)
    speaking = speech & (best >= z_speaking)
    margin = np.where(speaking, best - np.maximum(second, z_speaking), z_speaking - best)
    confidence = np.where(speech, norm.cdf(margin), 1 - speech_probability)
    speakers = [int(c) if s else None for c, s in zip(chosen, speaking)]
    return speakers, np.round(confidence, 3)
