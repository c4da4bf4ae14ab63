"""`speaker --model` at the speed of `sync`: the people of a scene share one decode and go
through the network together, with the numbers of one track at a time (fp32), and nothing
per track grows with the clip but its evidence.

Random weights in the published format (tests/reference_weights.py): the numbers, not the
answers, are under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SAMPLES, needs_samples
from reference_weights import reference_state_dict

from gestsync.model import GestSyncModel


@pytest.fixture(scope="module")
def net():
    model = GestSyncModel()
    model.load_state_dict(reference_state_dict())
    return model.eval()


def _frames(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 270, 480, 3, generator=g) * 255).to(torch.uint8)


def _side_by_side(clips: dict, starts: dict):
    """One dict per time step, {key: frame} of the clips on it."""
    end = max(starts[k] + len(c) for k, c in clips.items())
    for t in range(end):
        yield {k: c[t - starts[k]] for k, c in clips.items() if 0 <= t - starts[k] < len(c)}


def _gathered(pieces, lengths: dict, dim: int = 1024) -> dict:
    """{key: W x dim} from the yielded (key, first window, rows), checking each window
    comes once and in order."""
    out = {k: torch.full((n - 24, dim), float("nan")) for k, n in lengths.items()}
    nxt = dict.fromkeys(lengths, 0)
    for key, first, rows in pieces:
        assert first == nxt[key], "windows out of order"
        out[key][first:first + len(rows)] = rows
        nxt[key] = first + len(rows)
    assert nxt == {k: n - 24 for k, n in lengths.items()}
    return out


def test_clips_together_equal_each_clip_alone(net):
    """Clips that start and end at different frames, through the conv stack (blocks of 36
    frames, as `speaker` runs it) and the head in shared batches: every embedding equals
    `embed_video_clip` of the clip alone, bit for bit (fp32). Head batches of 8 windows, so
    that several are full at once."""
    chunk, batch = 32, 8
    clips = {"a": _frames(80, 1), "b": _frames(62, 2), "c": _frames(45, 3)}
    starts = {"a": 0, "b": 9, "c": 30}
    lengths = {k: len(c) for k, c in clips.items()}
    steps = []
    together = _gathered(net.embed_video_clips(_side_by_side(clips, starts), lengths, chunk, batch,
                                               progress=lambda *a: steps.append(a)), lengths)
    for key, clip in clips.items():
        alone = net.embed_video_clip(iter(clip), chunk=chunk, batch=batch)
        assert torch.equal(together[key], alone), key
    assert steps[-1] == ("video features", 80, None)


def test_a_clip_that_ends_early_or_is_too_short_is_an_error(net):
    with pytest.raises(ValueError, match="fewer than 25"):
        list(net.embed_video_clips(iter([]), {"a": 24}))
    with pytest.raises(ValueError, match="ended early"):
        list(net.embed_video_clips(({"a": f} for f in _frames(26, 1)), {"a": 30}))
    with pytest.raises(ValueError, match="no length"):
        list(net.embed_video_clips(iter([{"b": _frames(1, 1)[0]}]), {"a": 30}))
