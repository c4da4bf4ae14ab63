"""Offset search: score every candidate lag, pick the best, say how sure we are.

Both scorers (the built-in estimator and the published model) produce an *evidence* matrix:
evidence[i, t] says how well picture frame t agrees with sound frame t + lags[i] (NaN where
that sound frame does not exist). A lag's score is the mean evidence over the scored frames
(the published model), or the mean of standardised 2 s sub-window votes (the built-in
estimator; see `block_totals`).
"""

from __future__ import annotations

import warnings

import numpy as np

from . import bootstrap, calibration
from .timebase import FPS

AGREE_FRAMES = 2  # resamples within this many frames of the answer agree with it
UNCERTAIN_BELOW = 0.5  # confidence under this: the answer is reported as uncertain
PRODUCT_ROWS = 2048  # `shifted_products` multiplies this many rows at a time (8 MB of 1024-d embeddings)

# Calibration: P(answer within AGREE_FRAMES of the truth) = sigmoid(a + b * logit(agreement)
# + c * log(scored seconds)), fitted by `gestsync eval --fit-calibration` (logistic
# regression on the offset protocol's trials; which clips fitted and which checked it is
# in docs/accuracy.md). Values below: see CALIBRATION_SOURCE.
CALIBRATION = (-3.3103, 0.1762, 0.8957)
CALIBRATION_SOURCE = ("gestsync eval --shifts=-20:20 --fit-calibration on ../shared/samples, "
                      "2026-11-24: fitted on clone95 obama and himanshu8426 immigration, "
                      "checked on the other 7 single-speaker clips")


def candidate_lags(max_offset: int, grid: int = 1) -> np.ndarray:
    """Candidate offsets in frames: every `grid`-th integer in [-max_offset, max_offset]."""
    if max_offset < 0:
        raise ValueError(f"--max-offset must be 0 or more frames, got {max_offset}")
    if grid < 1:
        raise ValueError(f"--grid must be 1 or more frames, got {grid}")
    return np.arange(-(max_offset // grid) * grid, max_offset + 1, grid)


def scored_span(num_frames: int, context_frames: int | None,
                max_offset: int = 0) -> tuple[int, int]:
    """Frames [start, stop) whose evidence is scored: the whole clip, or `context_frames`
    frames from frame `max_offset` on (the first frame where every earlier-sound candidate
    has sound, as the authors' code does), moved back when the clip ends sooner."""
    if context_frames is None or context_frames >= num_frames:
        return 0, num_frames
    start = max(0, min(max_offset, num_frames - context_frames))
    return start, start + context_frames


def shifted_products(picture, sound, lags: np.ndarray, scale: float = 1.0,
                     num_frames: int | None = None) -> np.ndarray:
    """Evidence at every lag: evidence[i, t] = scale * <picture[t], sound[t + lags[i]]>.

    picture, sound: (T,) signals or T x D embeddings (numpy arrays or torch tensors) on one
    25 fps clock. Returns len(lags) x num_frames (default len(picture)) float64, NaN where
    t + lag is outside the sound or t outside the picture.
    """
    num_frames = len(picture) if num_frames is None else num_frames
    evidence = np.full((len(lags), num_frames), np.nan)
    for i, lag in enumerate(np.asarray(lags, dtype=int)):
        first, last = max(0, -lag), min(len(picture), len(sound) - lag)
        for start in range(first, last, PRODUCT_ROWS):  # products of embeddings in bounded blocks
            stop = min(start + PRODUCT_ROWS, last)
            products = picture[start:stop] * sound[start + lag:stop + lag]
            if products.ndim == 2:
                products = products.sum(1)
            evidence[i, start:stop] = scale * np.asarray(products)
    return evidence


def block_totals(evidence: np.ndarray, span: tuple[int, int], subwindow: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per-lag (sums, counts), each L x B, of the blocks of `span`: the units that a score
    averages over and that the bootstrap resamples.

    subwindow None: 1 s blocks of raw evidence (sum and number of frames with sound), so
    the score is the mean evidence over the span (the published model's rule).
    subwindow k: k-frame sub-windows, each one vote: its lag curve (evidence sum / sqrt of
    the frames with sound) standardised across lags (sum = that z value, count = 1), so a
    few loud, busy seconds cannot outweigh the rest of the span.
    """
    part = evidence[:, span[0]:span[1]]
    sums, counts = bootstrap.block_sums(part, subwindow or bootstrap.BLOCK_FRAMES)  # L x B
    if subwindow is None:
        return sums, counts
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a sub-window with no sound at all
        curves = np.where(counts > 0, sums / np.sqrt(counts), np.nan)
        z = (curves - np.nanmean(curves, axis=0)) / np.nanstd(curves, axis=0)
    seen = np.isfinite(z)  # a flat curve (nobody moving, or silence) abstains
    return np.where(seen, z, 0.0), seen.astype(float)


def lag_scores(evidence: np.ndarray, span: tuple[int, int], subwindow: int | None = None
               ) -> np.ndarray:
    """Score of each lag over the frames of `span` (NaN if none of them has sound): the mean
    evidence, or with `subwindow` the mean sub-window vote (see `block_totals`; 0 where
    every sub-window abstains)."""
    return _scores(evidence, span, *block_totals(evidence, span, subwindow))


def _scores(evidence: np.ndarray, span: tuple[int, int], sums: np.ndarray, counts: np.ndarray
            ) -> np.ndarray:
    has_sound = np.isfinite(evidence[:, span[0]:span[1]]).any(axis=1)
    return np.where(has_sound, sums.sum(axis=1) / np.maximum(counts.sum(axis=1), 1), np.nan)


def best_lag(lags: np.ndarray, scores: np.ndarray) -> int:
    """The lag of the highest score; ties go to the one nearest zero."""
    if not np.isfinite(scores).any():
        raise ValueError("no candidate offset could be scored: the clip is too short")
    top = np.nanmax(scores)
    tied = lags[np.isclose(scores, top, rtol=0, atol=1e-12)]
    return int(tied[np.argmin(np.abs(tied))])


def bootstrap_agreement(evidence: np.ndarray, span: tuple[int, int], lags: np.ndarray,
                         answer: int, subwindow: int | None = None, seed: int = 0) -> float:
    """Share of block-bootstrap resamples of the scored frames whose best lag lies within
    AGREE_FRAMES of `answer`.

    The span is cut into the blocks of `block_totals` (1 s, or the sub-windows); each
    resample draws as many blocks with replacement and recomputes every lag's score.
    1.0: every plausible variation of the clip gives the same answer; near
    1 / (number of candidates): no better than chance.
    """
    return _agreement(*block_totals(evidence, span, subwindow), lags, answer, seed)


def _agreement(sums: np.ndarray, counts: np.ndarray, lags: np.ndarray, answer: int,
               seed: int = 0) -> float:
    draws = bootstrap.draws(sums.shape[1], seed)  # R x B: how often each block is drawn
    with np.errstate(invalid="ignore", divide="ignore"):
        resampled = (draws @ sums.T) / (draws @ counts.T)  # R x L
    resampled = np.where(np.isfinite(resampled), resampled, -np.inf)
    picks = lags[resampled.argmax(axis=1)]
    return float(np.mean(np.abs(picks - answer) <= AGREE_FRAMES))


def calibration_features(agreement, scored_frames) -> np.ndarray:
    """N x 3 design matrix (1, logit(agreement), log(scored seconds)) of the calibration."""
    seconds = np.atleast_1d(np.asarray(scored_frames, float)) / FPS
    return calibration.features(agreement, np.log(seconds))


def calibrated_confidence(agreement: float, scored_frames: int,
                          coefficients: tuple[float, float, float] = CALIBRATION) -> float:
    """Probability that an answer is right within AGREE_FRAMES, from the bootstrap
    agreement and how many frames were scored (see CALIBRATION)."""
    return float(calibration.apply(calibration_features(agreement, scored_frames), coefficients)[0])


def fit_calibration(agreement, scored_frames, correct) -> tuple[float, float, float]:
    """Logistic-regression coefficients for `calibrated_confidence`."""
    return calibration.fit(calibration_features(agreement, scored_frames), correct)


DRIFT_FRAMES = 2 * AGREE_FRAMES  # confident segments this far apart: the offset drifts


def span_answer(evidence: np.ndarray, span: tuple[int, int], lags: np.ndarray,
                subwindow: int | None = None,
                coefficients: tuple[float, float, float] = CALIBRATION
                ) -> tuple[int, float, float, np.ndarray]:
    """(best lag, bootstrap agreement, calibrated confidence, scores) for one span
    (`subwindow`: see `block_totals`; `coefficients`: the calibration of the cues used)."""
    totals = block_totals(evidence, span, subwindow)  # shared by the scores and the bootstrap
    scores = _scores(evidence, span, *totals)
    best = best_lag(lags, scores)
    agreement = _agreement(*totals, lags, best)
    confidence = calibrated_confidence(agreement, span[1] - span[0], coefficients)
    return best, agreement, confidence, scores


def segment_offsets(evidence: np.ndarray, lags: np.ndarray, segment_frames: int,
                    subwindow: int | None = None,
                    coefficients: tuple[float, float, float] = CALIBRATION) -> list[dict]:
    """The offset of each consecutive `segment_frames` stretch of the clip (the last one
    takes the remainder when it is at least half a segment, else it joins the one before)."""
    if segment_frames < 2 * FPS:
        raise ValueError(f"--segments must be at least 2 s, got {segment_frames / FPS:g} s")
    total = evidence.shape[1]
    starts = list(range(0, total, segment_frames))
    if len(starts) > 1 and total - starts[-1] < segment_frames // 2:
        starts.pop()
    rows = []
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else total
        best, _, confidence, _ = span_answer(evidence, (start, stop), lags, subwindow,
                                             coefficients)
        rows.append({"start_seconds": start / FPS, "end_seconds": stop / FPS,
                     "offset_frames": best, "confidence": round(confidence, 3)})
    return rows


def drift(segments: list[dict]) -> dict:
    """Does the offset change along the clip? Uses the segments that are not uncertain.

    Returns {"drifting": bool | None (None: fewer than two confident segments),
    "frames_per_minute": least-squares slope of offset against time (or None)}.
    """
    sure = [s for s in segments if s["confidence"] >= UNCERTAIN_BELOW]
    if len(sure) < 2:
        return {"drifting": None, "frames_per_minute": None}
    t = np.array([(s["start_seconds"] + s["end_seconds"]) / 2 for s in sure]) / 60
    y = np.array([s["offset_frames"] for s in sure], float)
    slope = float(np.polyfit(t, y, 1)[0])
    return {"drifting": bool(y.max() - y.min() > DRIFT_FRAMES),
            "frames_per_minute": round(slope, 2)}
