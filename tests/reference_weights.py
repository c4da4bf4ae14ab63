"""Deterministic weights and inputs that produced tests/data/vectors.npz (docs/model.md)."""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import torch

VECTORS = Path(__file__).parent / "data" / "vectors.npz"


def published_keys() -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of the 181 published state-dict entries, in file order."""
    out = []
    for line in np.load(VECTORS)["state_dict_keys"]:
        name, shape = str(line).split("\t")
        out.append((name, tuple(int(d) for d in shape.strip("()").split(",") if d.strip())))
    return out


def reference_tensor(name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The reference rule for one entry; the first matching rule wins."""
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    if name.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.long)
    if name.endswith("running_var"):
        base = 0.1 if name.startswith("net_vid.") else 1.0
        return base * (1 + 0.5 * torch.rand(shape, generator=g))
    if name.endswith("running_mean"):
        return 0.1 * torch.randn(shape, generator=g)
    if ".bn" in name or ".norm" in name:
        return (1.0 if name.endswith(".weight") else 0.0) + 0.1 * torch.randn(shape, generator=g)
    if name == "logits_scale.weight":
        return torch.ones(shape)
    fan_in = math.prod(shape[1:]) if len(shape) > 1 else shape[0]
    return torch.randn(shape, generator=g) / math.sqrt(fan_in)


def reference_state_dict() -> dict[str, torch.Tensor]:
    return {name: reference_tensor(name, shape) for name, shape in published_keys()}


def published_checkpoint(state: dict[str, torch.Tensor]) -> dict:
    """The published file's layout: `module.` prefixes, optimizer state, step and epoch."""
    optimizer = {
        "state": {},
        "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0, "params": [0, 1]}],
    }
    return {
        "state_dict": {f"module.{k}": v for k, v in state.items()},
        "optimizer": optimizer,
        "global_step": 1234,
        "global_epoch": 5,
    }


def reference_video() -> torch.Tensor:
    """2 x 3 x 25 x 270 x 480 float32 in [0, 1]."""
    g = torch.Generator().manual_seed(1)
    v = torch.rand((2, 3, 25, 270, 480), generator=g)
    v[0] *= torch.linspace(0.1, 1.0, 25)[None, :, None, None]
    v[1] = v[1] ** 3 * torch.linspace(1.0, 0.2, 25)[None, :, None, None]
    return v


def reference_wav() -> torch.Tensor:
    """1 x 48000 float32, 3 s at 16 kHz."""
    g = torch.Generator().manual_seed(2)
    return 0.1 * torch.randn((1, 48000), generator=g)


def rel_err(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """max |a - b| / max |b|."""
    a, b = torch.as_tensor(np.asarray(a), dtype=torch.float64), torch.as_tensor(np.asarray(b), dtype=torch.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max() / b.abs().max())
