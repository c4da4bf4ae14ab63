"""Offset search: score every candidate lag, pick the best, say how sure we are.

Both scorers (the built-in estimator and the published model) produce an *evidence* matrix:
evidence[i, t] says how well picture frame t agrees with sound frame t + lags[i] (NaN where
that sound frame does not exist). A lag's score is the mean evidence over the scored frames
(the published model), or the mean of standardised 2 s sub-window votes (the built-in
estimator; see `block_totals`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from . import bootstrap, calibration
from .timebase import FPS

AGREE_FRAMES = 2  # resamples within this many frames of the answer agree with it
PRODUCT_ROWS = 2048  # `shifted_products` multiplies this many rows at a time (8 MB of 1024-d embeddings)
COMPETING_SHARE = 0.1  # another lag picked by this share of bootstrap resamples competed
MAX_MARGIN = 5.0  # `peak_margin` cap (standard deviations): one clear peak


@dataclass(frozen=True)
class ConfidenceRule:
    """How sure an answer of one cue is, and when it is sure enough to correct the video.

    confidence = sigmoid(a + b * logit(bootstrap agreement) + c * log(scored seconds)
    + d * peak margin): the probability of being right within AGREE_FRAMES, fitted by
    `gestsync eval --fit-calibration` on the fit clips of the offset protocol. An answer
    is `sure` at `sure_at` or more: the lowest confidence at which the fit clips' answers
    were right at least 95% of the time (checked on the check clips: docs/accuracy.md).
    Only a sure answer gets a corrected copy; below that it is reported as uncertain.
    """

    coefficients: tuple[float, ...]
    sure_at: float | None  # None: no answer of this cue is ever sure
    source: str

    def sure(self, confidence: float) -> bool:
        return self.sure_at is not None and bool(confidence >= self.sure_at)


# One rule per cue (`cues.Cues.face_rule`, `scoring`), from `gestsync eval --fit-calibration`
# on the trials of each cue (docs/accuracy.md#confidence): the curve and `sure_at` fitted on
# the fit clips, then checked on the check clips.
# No confidence of the body cue is right 95% of the time on two fit clips or more.
BODY_CONFIDENCE = ConfidenceRule((-3.2994, 0.3262, 0.9775, 0.0387), None,
                                 "2026-12-01 trials, --shifts=-20:20, 2 fit clips")
FACE_BODY_CONFIDENCE = ConfidenceRule((-0.3819, 0.4812, 0.1746, 0.7208), 0.808,
                                      "2026-12-01 trials, --shifts=-20:20, 6 fit clips")
FACE_CONFIDENCE = ConfidenceRule((1.2346, 0.2390, -1.2694, 2.3704), 0.799,
                                 "2026-12-01 trials, --shifts=-20:20:4, 6 fit clips")
# No trials (no model weights offline): the confidence is the bootstrap agreement itself
# (uncalibrated), sure only when the resamples are unanimous (0.99 or more).
MODEL_CONFIDENCE = ConfidenceRule((0.0, 1.0), 0.99, "not measured: no model weights offline")


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
    picks = bootstrap_picks(sums, counts, lags, seed)
    return float(np.mean(np.abs(picks - answer) <= AGREE_FRAMES))


def bootstrap_picks(sums: np.ndarray, counts: np.ndarray, lags: np.ndarray, seed: int = 0
                    ) -> np.ndarray:
    """The best lag of each block-bootstrap resample of (sums, counts) (`block_totals`)."""
    draws = bootstrap.draws(sums.shape[1], seed)  # R x B: how often each block is drawn
    with np.errstate(invalid="ignore", divide="ignore"):
        resampled = (draws @ sums.T) / (draws @ counts.T)  # R x L
    resampled = np.where(np.isfinite(resampled), resampled, -np.inf)
    return lags[resampled.argmax(axis=1)]


def calibration_features(agreement, scored_frames, margin=0.0) -> np.ndarray:
    """N x 4 design matrix (1, logit(agreement), log(scored seconds), peak margin) of the
    confidence curve (`ConfidenceRule`)."""
    seconds = np.atleast_1d(np.asarray(scored_frames, float)) / FPS
    x = calibration.features(agreement, np.log(seconds))
    return np.column_stack([x, np.broadcast_to(np.asarray(margin, float), len(x))])


def calibrated_confidence(agreement: float, scored_frames: int, coefficients: tuple[float, ...],
                          margin: float = MAX_MARGIN) -> float:
    """Probability that an answer is right within AGREE_FRAMES (a `ConfidenceRule`'s
    curve; with three coefficients, one without the peak margin)."""
    x = calibration_features(agreement, scored_frames, margin)
    return float(calibration.apply(x[:, :len(coefficients)], coefficients)[0])


def fit_calibration(agreement, scored_frames, margin, correct) -> tuple[float, ...]:
    """Logistic-regression coefficients of the confidence curve (`ConfidenceRule`)."""
    return calibration.fit(calibration_features(agreement, scored_frames, margin), correct)


def peak_margin(lags: np.ndarray, scores: np.ndarray, answer: int) -> float:
    """How far the answer's score stands above the best other peak (a local maximum more
    than AGREE_FRAMES away), in standard deviations of the scores over the lags; at most
    MAX_MARGIN (also when there is no other peak). Near 0: near-equal peaks."""
    spread = np.nanstd(scores) if np.isfinite(scores).any() else 0.0
    if not spread > 0:
        return 0.0
    padded = np.r_[-np.inf, np.where(np.isfinite(scores), scores, -np.inf), -np.inf]
    peaks = (padded[1:-1] >= padded[:-2]) & (padded[1:-1] >= padded[2:]) & np.isfinite(scores)
    others = peaks & (np.abs(lags - answer) > AGREE_FRAMES)
    if not others.any():
        return MAX_MARGIN
    top = scores[lags == answer][0]
    return float(min((top - scores[others].max()) / spread, MAX_MARGIN))


def competing_lags(lags: np.ndarray, picks: np.ndarray, answer: int) -> list[int]:
    """The answer, then each other lag that at least COMPETING_SHARE of the bootstrap
    resamples picked (`picks`: each resample's best lag), counting the picks within
    AGREE_FRAMES of a lag as its own; most picked first. Just [answer]: nothing competed."""
    left = np.asarray(picks)[np.abs(np.asarray(picks) - answer) > AGREE_FRAMES]
    out = [int(answer)]
    while len(left):
        values, counts = np.unique(left, return_counts=True)
        near = np.array([np.sum(np.abs(left - v) <= AGREE_FRAMES) for v in values])
        # the lag with the most picks near it, then with the most picks of its own
        centre = int(values[np.lexsort((counts, near))[-1]])
        if near.max() < COMPETING_SHARE * len(picks):
            break
        out.append(centre)
        left = left[np.abs(left - centre) > AGREE_FRAMES]
    return out


@dataclass
class SpanAnswer:
    """The answer for one span of frames and how sure it is."""

    offset: int
    agreement: float  # share of bootstrap resamples within AGREE_FRAMES of the answer
    confidence: float  # calibrated (the cue's `ConfidenceRule`)
    scores: np.ndarray  # each candidate lag's score
    margin: float  # `peak_margin`
    competing: list[int]  # `competing_lags`: the answer first
    picks: np.ndarray  # each bootstrap resample's best lag


def span_details(evidence: np.ndarray, span: tuple[int, int], lags: np.ndarray,
                 subwindow: int | None = None, rule: ConfidenceRule | None = None,
                 seed: int = 0) -> SpanAnswer:
    """The answer for one span (`subwindow`: see `block_totals`; `rule`: the confidence
    rule of the cues used, default the body cue's)."""
    rule = rule or BODY_CONFIDENCE
    totals = block_totals(evidence, span, subwindow)  # shared by the scores and the bootstrap
    scores = _scores(evidence, span, *totals)
    best = best_lag(lags, scores)
    picks = bootstrap_picks(*totals, lags, seed)
    agreement = float(np.mean(np.abs(picks - best) <= AGREE_FRAMES))
    margin = peak_margin(lags, scores, best)
    confidence = calibrated_confidence(agreement, span[1] - span[0], rule.coefficients, margin)
    return SpanAnswer(best, agreement, confidence, scores, margin,
                      competing_lags(lags, picks, best), picks)


def span_answer(evidence: np.ndarray, span: tuple[int, int], lags: np.ndarray,
                subwindow: int | None = None, rule: ConfidenceRule | None = None
                ) -> tuple[int, float, float, np.ndarray]:
    """(best lag, bootstrap agreement, calibrated confidence, scores): `span_details` in short."""
    a = span_details(evidence, span, lags, subwindow, rule)
    return a.offset, a.agreement, a.confidence, a.scores


DRIFT_FRAMES = 2 * AGREE_FRAMES  # confident segments this far apart: the offset drifts


def segment_offsets(evidence: np.ndarray, lags: np.ndarray, segment_frames: int,
                    subwindow: int | None = None, rule: ConfidenceRule | None = None
                    ) -> list[dict]:
    """The offset of each consecutive `segment_frames` stretch of the clip (the last one
    takes the remainder when it is at least half a segment, else it joins the one before);
    `sure`: its confidence reaches the rule's `sure_at`."""
    if segment_frames < 2 * FPS:
        raise ValueError(f"--segments must be at least 2 s, got {segment_frames / FPS:g} s")
    rule = rule or BODY_CONFIDENCE
    total = evidence.shape[1]
    starts = list(range(0, total, segment_frames))
    if len(starts) > 1 and total - starts[-1] < segment_frames // 2:
        starts.pop()
    rows = []
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else total
        a = span_details(evidence, (start, stop), lags, subwindow, rule)
        rows.append({"start_seconds": start / FPS, "end_seconds": stop / FPS,
                     "offset_frames": a.offset, "confidence": round(a.confidence, 3),
                     "sure": rule.sure(a.confidence), "competing_offsets": a.competing[1:]})
    return rows


def drift(segments: list[dict]) -> dict:
    """Does the offset change along the clip? Uses the sure segments.

    Returns {"drifting": bool | None (None: fewer than two confident segments),
    "frames_per_minute": least-squares slope of offset against time (or None)}.
    """
    sure = [s for s in segments if s["sure"]]
    if len(sure) < 2:
        return {"drifting": None, "frames_per_minute": None}
    t = np.array([(s["start_seconds"] + s["end_seconds"]) / 2 for s in sure]) / 60
    y = np.array([s["offset_frames"] for s in sure], float)
    slope = float(np.polyfit(t, y, 1)[0])
    return {"drifting": bool(y.max() - y.min() > DRIFT_FRAMES),
            "frames_per_minute": round(slope, 2)}
