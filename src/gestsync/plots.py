"""Figures written next to the results (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_offset_scores(path: Path, lags: np.ndarray, scores: np.ndarray, offset: int,
                       confidence: float, title: str, competing: list[int] = ()) -> None:
    """Score against candidate offset, the chosen one marked (and the offsets that
    competed with it, grey); saved as PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=100)
    ax.plot(lags, scores, color="tab:blue", lw=1.5, marker="." if len(lags) < 60 else None)
    ax.axvline(offset, color="tab:red", ls="--", lw=1)
    for i, rival in enumerate(competing):
        ax.axvline(rival, color="grey", ls=":", lw=1,
                   label="competed: " + ", ".join(f"{r:+d}" for r in competing) if i == 0 else None)
    best = scores[np.flatnonzero(lags == offset)[0]]
    ax.plot([offset], [best], "o", color="tab:red",
            label=f"offset {offset:+d} frames ({offset / 25:+.2f} s), confidence {confidence:.2f}")
    ax.set_xlabel("offset (frames at 25 fps; > 0: sound later than picture)")
    ax.set_ylabel("sync score")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
