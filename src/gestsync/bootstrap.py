"""The block bootstrap behind every confidence: how often resampled clips give the same answer.

A clip's frames are cut into blocks (1 s by default: long enough to keep the signals' own
correlation); a resample draws as many blocks with replacement. Each decision (the offset,
whose scene it is) is taken again on every resample, and the share that agrees is the raw
confidence, which `calibration` turns into a probability.
"""

from __future__ import annotations

import numpy as np

from .timebase import FPS

BLOCK_FRAMES = FPS  # 1 s
RESAMPLES = 200


def block_sums(values: np.ndarray, block: int = BLOCK_FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """(sums, counts) of the finite values of each block along the last axis: arrays of
    shape values.shape[:-1] + (B,), B = max(1, length // block) nearly equal blocks."""
    length = values.shape[-1]
    blocks = np.array_split(np.arange(length), max(1, length // block))
    sums = np.stack([np.nansum(values[..., b], axis=-1) for b in blocks], axis=-1)
    counts = np.stack([np.isfinite(values[..., b]).sum(axis=-1) for b in blocks], axis=-1)
    return sums, counts


def draws(num_blocks: int, seed: int = 0, resamples: int = RESAMPLES) -> np.ndarray:
    """resamples x num_blocks: how many times each block is drawn in each resample."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(num_blocks, np.full(num_blocks, 1 / num_blocks), size=resamples)
