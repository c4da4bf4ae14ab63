"""Loading GestSync checkpoints: the published `model_rgb.pth` and our own.

Accepted layouts (all read with `torch.load(..., weights_only=True)`, loaded strictly):
- published: `{"state_dict": {...}, "optimizer": ..., "global_step": int, "global_epoch": int}`;
- ours: the same plus `CONFIG_KEY: ModelConfig.to_dict()` (e.g. `{"variant": "rgb", ...}`),
  which says which architecture to build (see `checkpoint_payload`);
- a bare state dict (`{name: tensor}`).
Anything wrong raises `CheckpointError` saying what was found and what to do.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from typing import Any

import torch

from gestsync.errors import CheckpointError, UsageError
from gestsync import variants
from gestsync.keypoint_model import KeypointSyncModel
from gestsync.model import GestSyncModel, ModelConfig

WEIGHTS_KEY = "state_dict"  # published format: weights under this key
CONFIG_KEY = "gestsync_config"  # our training: ModelConfig.to_dict() next to the weights
_SHOW = 5  # key names quoted per kind of mismatch
_FIX = (
    "give the published GestSync RGB model (model_rgb.pth) or a checkpoint saved by gestsync's training"
)

# Key renaming rules, applied in order to every state-dict key (a leading prefix is removed):
_PREFIXES = (
    "module.",  # saved from nn.DataParallel / DistributedDataParallel (the published file)
    "_orig_mod.",  # saved from a torch.compile'd model
)



def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`device` as given, else "cuda" when available, else "cpu" (decided at call time).
    UsageError for a name torch does not know or a CUDA device this machine lacks (rather
    than a checkpoint that seems damaged when torch cannot map it there)."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise UsageError(f"unknown --device {device!r}: use cpu, cuda or cuda:N") from None
    if chosen.type == "cuda" and (chosen.index or 0) >= torch.cuda.device_count():
        raise UsageError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA "
                         "device(s) that torch can use. Fix: leave --device out (a GPU is used "
                         "when present) or give --device cpu")
    return chosen


def load_model(path: str | os.PathLike[str], device: str | torch.device | None = None
               ) -> GestSyncModel | KeypointSyncModel:
    """Load a GestSync checkpoint into a model in eval mode on `device`.

    Args:
        path: `.pth` file: the published `model_rgb.pth`, one of ours, or a bare state dict.
        device: where to put the model; default "cuda" if available, else "cpu".
    Raises:
        CheckpointError: missing, unreadable or corrupt file, or weights that do not fit
            the architecture (the message names the missing/unexpected keys).
    """
    device = resolve_device(device)
    state, config = split_checkpoint(read_checkpoint(path, device), path)
    model = build_model(config, path)
    load_weights(model, state, path)
    return model.to(device).eval()


def load_weights(model: torch.nn.Module, state: Mapping[str, torch.Tensor],
                 path: str | os.PathLike[str] = "<checkpoint>") -> None:
    """`state` (wrapper prefixes removed) into `model`, strictly; CheckpointError naming
    the missing, unexpected and wrongly shaped keys when it does not fit. Every
    checkpoint load goes through here (inference and training)."""
    state = remap_keys(state)
    check_state_dict(model, state, path)
    model.load_state_dict(state, strict=True)


def read_checkpoint(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> dict[str, Any]:
    """`torch.load(path, weights_only=True)` with each failure turned into a CheckpointError."""
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}: {_FIX}")
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path} is a directory: give the .pth file inside it")
    try:
        obj = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # torch.load raises many types for foreign or damaged files
        why = _why_unreadable(path, e)
        raise CheckpointError(f"cannot read {path} as a PyTorch checkpoint: {why}. Fix: {_FIX}") from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a dict of weights: {_FIX}")
    return obj


def split_checkpoint(
    obj: Mapping[str, Any], path: str | os.PathLike[str] = "<checkpoint>"
) -> tuple[dict[str, torch.Tensor], ModelConfig]:
    """(state dict, architecture) from a loaded checkpoint dict, published, ours or bare."""
    if WEIGHTS_KEY in obj:
        state = obj[WEIGHTS_KEY]
    elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = obj  # a bare state dict
    else:
        raise CheckpointError(
            f"checkpoint {path} has no {WEIGHTS_KEY!r} entry and is not a state dict "
            f"(top-level keys: {_names(list(obj))}): {_FIX}"
        )
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {path}: {WEIGHTS_KEY!r} is not a mapping of names to tensors: {_FIX}")
    return dict(state), _config(obj.get(CONFIG_KEY), path)


def _config(entry: Any, path: str | os.PathLike[str]) -> ModelConfig:
    """ModelConfig from our `CONFIG_KEY` entry; absent means the published RGB model."""
    if entry is None:
        return ModelConfig()
    if not isinstance(entry, Mapping):
        raise CheckpointError(f"checkpoint {path}: {CONFIG_KEY!r} should be a dict, got {type(entry).__name__}")
    try:
        return variants.named(entry.get("variant", variants.RGB)).config.from_dict(dict(entry))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: bad {CONFIG_KEY!r}: {e}; it may need a newer gestsync") from e


def build_model(config: ModelConfig, path: str | os.PathLike[str] = "<checkpoint>"
                ) -> GestSyncModel | KeypointSyncModel:
    """An untrained model of the architecture `config` describes."""
    if config.variant not in variants.VARIANTS:
        raise CheckpointError(
            f"checkpoint {path} is a {config.variant!r} model; this gestsync loads {sorted(variants.VARIANTS)}"
        )
    return variants.named(config.variant).network(config)


def remap_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip the wrapper prefixes in `_PREFIXES` from every key."""
    out = {}
    for key, value in state.items():
        for prefix in _PREFIXES:
            key = key.removeprefix(prefix)
        out[key] = value
    return out


def check_state_dict(
    model: torch.nn.Module, state: Mapping[str, torch.Tensor], path: str | os.PathLike[str] = "<checkpoint>"
) -> None:
    """Raise CheckpointError naming missing, unexpected and wrongly shaped keys, if any."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [
        f"{k} {tuple(state[k].shape)} (model: {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = [
        f"{len(keys)} {kind} keys: {_names(keys)}"
        for kind, keys in (("missing", missing), ("unexpected", unexpected), ("wrongly shaped", reshaped))
        if keys
    ]
    if problems:
        raise CheckpointError(
            f"checkpoint {path} does not fit the GestSync {getattr(model, 'config', ModelConfig()).variant} model "
            f"({len(state)} tensors in the file, {len(expected)} expected): {'; '.join(problems)}. Fix: {_FIX}"
        )


def checkpoint_payload(model: GestSyncModel | KeypointSyncModel, **extra: Any) -> dict[str, Any]:
    """What our training saves: weights, their architecture, and `extra` (optimizer, step...).

    Loadable by `load_model` (and by the authors' code, which reads `state_dict` only).
    """
    return {WEIGHTS_KEY: model.state_dict(), CONFIG_KEY: model.config.to_dict(), **extra}


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (f", ... ({len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")


def _why_unreadable(path: str | os.PathLike[str], e: BaseException) -> str:
    if not zipfile.is_zipfile(path):  # torch.save has written zip archives since torch 1.6
        return "it is not a file written by torch.save, or it is truncated"
    if isinstance(e, pickle.UnpicklingError):  # weights_only refused a non-tensor object
        return "it holds Python objects other than tensors, refused because loading them could run code"
    return f"it is damaged ({type(e).__name__}: {_first_line(e)})"


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else "no message"
