"""Logistic calibration: turn a raw agreement score into the probability of being right.

P(right) = sigmoid(w . features), features = (1, logit(raw), extra...). The offset search
uses the scored length as the extra feature, the speaker decisions the number of people
(and, with a face cue, whether the body alone names someone else).
"""

from __future__ import annotations

import numpy as np


def logit(p) -> np.ndarray:
    """log(p / (1 - p)), with p clipped to [0.01, 0.99] so that 0 and 1 stay finite."""
    p = np.clip(np.asarray(p, float), 0.01, 0.99)
    return np.log(p / (1 - p))


def features(raw, *extra) -> np.ndarray:
    """N x (2 + len(extra)) design matrix (1, logit(raw), extra...)."""
    raw = np.atleast_1d(np.asarray(raw, float))
    columns = [np.broadcast_to(np.asarray(e, float), raw.shape) for e in extra]
    return np.stack([np.ones_like(raw), logit(raw), *columns], axis=1)


def apply(x: np.ndarray, coefficients) -> np.ndarray:
    """sigmoid(x @ coefficients) for a design matrix of `features`."""
    return 1 / (1 + np.exp(-(x @ np.asarray(coefficients, float))))


def fit(x: np.ndarray, right, weights=None) -> tuple[float, ...]:
    """Logistic-regression coefficients (slightly L2-regularised, so that a small or
    separable set still gives finite values); `weights` counts repeated rows."""
    from scipy.optimize import minimize

    y = np.asarray(right, float)
    w8 = np.ones_like(y) if weights is None else np.asarray(weights, float)

    def loss(w):
        z = x @ w
        return np.sum(w8 * (np.logaddexp(0, z) - y * z)) / w8.sum() + 1e-3 * np.sum(w[1:] ** 2)

    return tuple(float(v) for v in minimize(loss, np.zeros(x.shape[1]), method="BFGS").x)
