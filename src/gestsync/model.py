"""The GestSync network (published RGB variant): video and audio encoders, scaled cosine.

Module and parameter names follow the published checkpoint `model_rgb.pth` exactly (181
state-dict entries, see docs/model.md), so it loads with `strict=True`.

Video: `B x 3 x 25 x 270 x 480` RGB windows in [0, 1] -> conv stack (`net_vid`, only its
first conv mixes time) -> 21 tokens of 512 -> positional encoding -> transformer ->
`ff_vid` -> `B x 1024 x 21` -> mean over tokens -> `B x 1024`.
Audio: `B x 1 x 80 x 100` log-mel windows -> conv stack (`net_aud`) -> `ff_aud` -> `B x 1024`.

For whole clips use `embed_video_clip`: it runs the conv stack once per frame (not once
per window and frame, as the authors' code does: about 21x less work) in bounded memory.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple, Union

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from gestsync.audio import MEL_WINDOW, N_MELS, WINDOW_FRAMES, num_windows
from gestsync.audio import mel_windows as _cut_mel_windows
from gestsync.arguments import PRECISIONS
from gestsync.progress import Progress

FRAME_HEIGHT = 270  # model input frame size in pixels (the conv stack reduces it to 1 x 1)
FRAME_WIDTH = 480
D_MODEL = 512  # channels out of both conv stacks = transformer width
TEMPORAL_KERNEL = 5  # net_vid.conv1 spans 5 frames with no temporal padding (the only time mixing)
TEMPORAL_CONTEXT = TEMPORAL_KERNEL - 1  # 4: a clip of T frames gives T - 4 conv-stack outputs
AUDIO_BATCH = 64  # sound windows per pass of `embed_audio_clip`: 256 held 230 MB more at the
# peak (the first conv's output is 0.5 MB a window) and ran no faster on 2 cores
VARIANTS = ("rgb",)  # what `ModelConfig` describes; the keypoint variant has its own config
# (keypoint_model.KeypointModelConfig), and variants.VARIANTS maps every variant to its network

# progress(step, completed, total): total is None when the clip length is not known up front
# A clip: float 3 x T x H x W in [0, 1], uint8 T x H x W x 3, or an iterable of uint8 H x W x 3 frames
Frames = Union[torch.Tensor, np.ndarray, Iterable[Any]]


def config_from_dict(cls, values: dict[str, Any]):
    """`cls(**values)` for a config dataclass; unknown fields raise ValueError naming the
    valid ones (shared by the model configs)."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; valid fields: {sorted(known)}")
    return cls(**values)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a GestSync model; the defaults are the published RGB model.

    The conv stacks and the frame size (270 x 480) are fixed by the published weights;
    the fields below are what a retrained model may change.
    """

    variant: str = "rgb"  # video encoder; only "rgb" (published) for now
    window_frames: int = WINDOW_FRAMES  # 25 video frames (1 s) per window -> 21 tokens
    n_layers: int = 6  # transformer encoder layers
    n_heads: int = 8
    d_ff: int = 2048  # transformer feed-forward width
    dropout: float = 0.1  # positional encoding and transformer dropout (training only)
    embed_dim: int = 1024  # output embedding size, video and audio
    max_positions: int = 50  # rows of the positional-encoding table `pos_encoder.pe`

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown model variant {self.variant!r}: this gestsync builds {', '.join(VARIANTS)}")
        if D_MODEL % self.n_heads:
            raise ValueError(f"n_heads={self.n_heads} must divide the model width {D_MODEL}")
        if not TEMPORAL_KERNEL <= self.window_frames <= self.max_positions + TEMPORAL_CONTEXT:
            raise ValueError(
                f"window_frames={self.window_frames} must be {TEMPORAL_KERNEL} .. "
                f"{self.max_positions + TEMPORAL_CONTEXT} (max_positions + {TEMPORAL_CONTEXT})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must be in [0, 1)")

    @property
    def tokens_per_window(self) -> int:
        """Conv-stack outputs (transformer tokens) per window: 21 for 25 frames."""
        return self.window_frames - TEMPORAL_CONTEXT

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON- and weights_only-safe), stored next to the weights by our training."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Inverse of `to_dict`; unknown fields raise ValueError naming the valid ones."""
        return config_from_dict(cls, values)


class _Block(NamedTuple):
    """One conv stage: conv, batch-norm, ReLU, optional max-pool. (time,) height, width."""

    out: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    pool: tuple[tuple[int, ...], tuple[int, ...]] | None = None  # (kernel, stride)


# net_vid on B x 3 x T x 270 x 480; spatial size after each block in the comments.
VIDEO_BLOCKS = (
    _Block(64, (5, 7, 7), (1, 3, 3), (0, 0, 0), ((1, 3, 3), (1, 2, 2))),  # 88x158 -> pool 43x78
    _Block(128, (1, 5, 5), (1, 2, 2), (0, 0, 0)),  # 20x37
    _Block(256, (1, 3, 3), (1, 2, 2), (0, 1, 1)),  # 10x19
    _Block(256, (1, 3, 3), (1, 1, 2), (0, 1, 1)),  # 10x10
    _Block(256, (1, 3, 3), (1, 1, 1), (0, 1, 1), ((1, 3, 3), (1, 2, 2))),  # 10x10 -> pool 4x4
    _Block(D_MODEL, (1, 4, 4), (1, 1, 1), (0, 0, 0)),  # fc6: 1x1
)
# net_aud on B x 1 x 80 x 100 (mel x time).
AUDIO_BLOCKS = (
    _Block(64, (3, 3), (2, 2), (1, 1), ((3, 3), (2, 2))),  # 40x50 -> pool 19x24
    _Block(192, (3, 3), (1, 2), (1, 1), ((3, 3), (2, 2))),  # 19x12 -> pool 9x5
    _Block(384, (3, 3), (1, 1), (1, 1)),  # 9x5
    _Block(256, (3, 3), (1, 1), (1, 1)),  # 9x5
    _Block(256, (3, 3), (1, 1), (1, 1), ((2, 3), (2, 2))),  # 9x5 -> pool 4x2
    _Block(D_MODEL, (4, 2), (1, 1), (0, 0)),  # fc6: 1x1
)


class ConvStack(nn.Module):
    """Blocks named conv1, bn1, mp1, ..., fc6, bn6 (the published names), 2-D or 3-D."""

    def __init__(self, in_channels: int, blocks: tuple[_Block, ...], dims: int) -> None:
        super().__init__()
        layers_3d, layers_2d = (nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d), (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d)
        conv, norm, pool = layers_3d if dims == 3 else layers_2d
        self.stages: list[tuple[str, str, str | None]] = []
        for i, b in enumerate(blocks, start=1):
            conv_name = "fc6" if i == len(blocks) else f"conv{i}"
            setattr(self, conv_name, conv(in_channels, b.out, b.kernel, b.stride, b.padding))
            setattr(self, f"bn{i}", norm(b.out))
            if b.pool is not None:
                setattr(self, f"mp{i}", pool(*b.pool))
            self.stages.append((conv_name, f"bn{i}", f"mp{i}" if b.pool is not None else None))
            in_channels = b.out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """In training mode the published layers as they are. In eval mode:
        - each batch-norm is folded into its conv (weights rescaled per call, a few ms): same
          numbers to about 1e-6 relative, no pass over the conv outputs (about 10% less CPU
          time for the video stack);
        - max-pools run one axis at a time (`_max_pool`): the same numbers, faster;
        - under `torch.autocast` the whole stack runs in its dtype (`_lowered_conv`)."""
        if not self.training and torch.is_autocast_enabled(x.device.type):
            x = x.to(torch.get_autocast_dtype(x.device.type))
        for index, (conv_name, bn_name, pool_name) in enumerate(self.stages):
            conv, bn = getattr(self, conv_name), getattr(self, bn_name)
            pool = getattr(self, pool_name) if pool_name is not None else None
            if self.training:
                x = bn(conv(x))
                x = pool(x) if pool is not None else x
            else:
                weight, bias = _folded_conv_bn(conv, bn)
                if x.dtype == torch.float32:
                    x = conv._conv_forward(x, weight, bias)
                else:
                    x = _lowered_conv(x, weight, bias, conv, first=index == 0)
                x = _max_pool(x, pool.kernel_size, pool.stride) if pool is not None else x
            # max-pool and ReLU commute: pool first, ReLU on 4x fewer values
            x = F.relu(x, inplace=True)
        return x


def _folded_conv_bn(conv: nn.Module, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of `conv` followed by eval-mode `bn`, float32; 3-D weights channels-last."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    weight = conv.weight * scale.reshape((-1,) + (1,) * (conv.weight.ndim - 1))
    if weight.ndim == 5:  # the video stack runs channels-last: give mkldnn the weight that way too
        weight = weight.contiguous(memory_format=torch.channels_last_3d)
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    return weight, bias


def _lowered_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, conv: nn.Module,
                  first: bool) -> torch.Tensor:
    """`conv` with folded (weight, bias) in x's dtype (bfloat16), channels-last, which
    oneDNN's bfloat16 kernels want (the audio stack: 4.5 -> 2.6 ms a window on one thread).
    The video stack's first conv runs on 3x3 pixel blocks (`_space_to_depth_conv`)."""
    if first and x.ndim == 5:
        return _space_to_depth_conv(x, weight.to(x.dtype), bias.to(x.dtype), conv.stride)
    layout = torch.channels_last_3d if x.ndim == 5 else torch.channels_last
    weight = weight.to(x.dtype).contiguous(memory_format=layout)
    return conv._conv_forward(x.contiguous(memory_format=layout), weight, bias.to(x.dtype))


def _space_to_depth_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                         stride: tuple[int, ...]) -> torch.Tensor:
    """A 3-D conv with spatial stride s as a stride-1 conv on s x s pixel blocks.

    The video stack's first conv (3 input channels, 7 x 7 taps, stride 3) becomes 27 input
    channels (3 x 3 pixels x RGB), 3 x 3 taps: the kernel zero-padded to 9 x 9, 1.65x the
    multiply-adds, but bfloat16 kernels run about 2x faster on 27 channels than on 3 (and
    slower than float32 on 3). The same output, up to summation order: B x C x T' x H' x W'.
    """
    _, channels, _, height, width = x.shape
    out_channels, _, kt, kh, kw = weight.shape
    st, s, s_w = stride
    blocks_h, blocks_w = -(-kh // s), -(-kw // s)  # taps in blocks
    if st != 1 or s != s_w or height % s or width % s or \
            height // s - blocks_h != (height - kh) // s or width // s - blocks_w != (width - kw) // s:
        return F.conv3d(x, weight, bias, stride)  # not a shape this rewrite covers
    n, t = x.shape[0], x.shape[2]
    # input: B x T x H x W x C (its channels-last memory) -> B x T x H/s x W/s x (s, s, C)
    blocks = x.permute(0, 2, 3, 4, 1).reshape(n, t, height // s, s, width // s, s, channels)
    blocks = blocks.permute(0, 1, 2, 4, 3, 5, 6).reshape(n, t, height // s, width // s, s * s * channels)
    blocks = blocks.permute(0, 4, 1, 2, 3)  # B x (s s C) x T x H/s x W/s, channels-last strides
    # weight: O x C x kt x kh x kw -> zero-pad to blocks -> O x (s, s, C) x kt x blocks_h x blocks_w
    padded = F.pad(weight.contiguous(), (0, blocks_w * s - kw, 0, blocks_h * s - kh))
    padded = padded.reshape(out_channels, channels, kt, blocks_h, s, blocks_w, s)
    padded = padded.permute(0, 4, 6, 1, 2, 3, 5).reshape(out_channels, s * s * channels, kt, blocks_h, blocks_w)
    return F.conv3d(blocks, padded.contiguous(memory_format=torch.channels_last_3d), bias)


def _max_pool(x: torch.Tensor, kernel: tuple[int, ...] | int, stride: tuple[int, ...] | int) -> torch.Tensor:
    """Max-pool without padding over the trailing len(kernel) axes, one axis at a time
    (a max of strided slices): the same values as nn.MaxPool2d/3d, faster on the CPU than
    torch's kernel for the conv stacks' 3 x 3 pools: 1.4x channels-last, 4.8x on the audio
    stack's channels-first first pool (1.5 -> 0.3 ms a window on one thread)."""
    kernel = (kernel,) * (x.ndim - 2) if isinstance(kernel, int) else tuple(kernel)
    stride = (stride,) * len(kernel) if isinstance(stride, int) else tuple(stride)
    for axis, (k, s) in enumerate(zip(kernel, stride), start=x.ndim - len(kernel)):
        if k == 1 and s == 1:
            continue
        count = (x.shape[axis] - k) // s + 1
        every_s = (slice(None),) * axis + (slice(None, None, s),)
        taps = [x.narrow(axis, j, s * (count - 1) + 1)[every_s] for j in range(k)]
        if k == 1:
            out = taps[0].clone()
        else:
            out = torch.maximum(taps[0], taps[1])
            for tap in taps[2:]:
                torch.maximum(out, tap, out=out)
        x = out
    return x


class PositionalEncoding(nn.Module):
    """Adds the table `pe` (1 x max_len x d, a buffer loaded with the weights), then dropout."""

    def __init__(self, d_model: int, max_len: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("pe", sinusoid_table(max_len, d_model).unsqueeze(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: B x N x d tokens, N <= max_len."""
        return self.dropout(x + self.pe[:, : x.shape[1]])


def sinusoid_table(max_len: int, d_model: int) -> torch.Tensor:
    """max_len x d_model: even channels sin(pos * f_i), odd cos(pos * f_i), f_i = 10000^(-2i/d)."""
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table


class GestSyncModel(nn.Module):
    """GestSync audio-visual embedding network (RGB video encoder).

    Build with `gestsync.load_model(path)` for the published weights. Inputs go to the
    model's device at call time; outputs are float32 on that device unless noted.
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ModelConfig()
        # Registration order = the published state-dict order.
        self.net_vid = ConvStack(3, VIDEO_BLOCKS, dims=3)
        self.ff_vid = nn.Sequential(nn.Linear(D_MODEL, D_MODEL), nn.ReLU(), nn.Linear(D_MODEL, config.embed_dim))
        self.pos_encoder = PositionalEncoding(D_MODEL, config.max_positions, config.dropout)
        layer = nn.TransformerEncoderLayer(
            D_MODEL, config.n_heads, config.d_ff, config.dropout, activation="relu", batch_first=True, norm_first=False
        )
        self.transformer_encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.net_aud = ConvStack(1, AUDIO_BLOCKS, dims=2)
        # Unused by the forward pass but present in the published file (strict loading needs them).
        self.lstm = nn.LSTM(D_MODEL, D_MODEL // 2, batch_first=True, bidirectional=True)
        self.ff_aud = nn.Sequential(OrderedDict(
            fc7=nn.Conv2d(D_MODEL, D_MODEL, 1), bn7=nn.BatchNorm2d(D_MODEL), relu=nn.ReLU(),
            fc8=nn.Conv2d(D_MODEL, config.embed_dim, 1),
        ))  # fmt: skip
        self.logits_scale = nn.Linear(1, 1, bias=False)  # similarity scale, starts at 1
        nn.init.ones_(self.logits_scale.weight)
        self.fc = nn.Linear(1, 1)  # unused, present in the published file
        self.precision = "fp32"  # arithmetic of the clip methods (`set_precision`); not a weight

    def set_precision(self, precision: str) -> GestSyncModel:
        """fp32 (default: the exact numbers) or bf16: the clip methods (`clip_features`,
        `embed_clip_features`, `embed_audio_clip`) then run under `torch.autocast` in
        bfloat16, conv stacks included (about 2x faster on a CPU with AMX; see
        `ConvStack.forward`). Weights and outputs stay float32. Returns self."""
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
        self.precision = precision
        return self

    def _lowered(self):
        """The arithmetic context of the clip methods (see `set_precision`)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    @property
    def device(self) -> torch.device:
        return self.logits_scale.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.logits_scale.weight.dtype

    # ---- video ----------------------------------------------------------------------------

    def video_features(self, frames: torch.Tensor) -> torch.Tensor:
        """Conv-stack output: `B x 3 x T x 270 x 480` in [0, 1] -> `B x 512 x (T - 4)`.

        Output t depends on frames t .. t + 4 only.
        """
        _check_video(frames, min_frames=TEMPORAL_KERNEL)
        # channels-last: same numbers, about 20% less CPU time (max-pool is 5x faster)
        x = frames.to(self.device, self.dtype).contiguous(memory_format=torch.channels_last_3d)
        return self.net_vid(x).flatten(2)  # B x 512 x (T - 4) x 1 x 1 -> B x 512 x (T - 4)

    def tokens_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Transformer head: `B x 512 x N` conv features -> `B x embed_dim x N` tokens (N <= 50)."""
        x = self.pos_encoder(features.to(self.device, self.dtype).transpose(1, 2))  # B x N x 512
        x = self.ff_vid(self.transformer_encoder(x))  # B x N x 1024
        return x.transpose(1, 2)

    def embeddings_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Window embeddings: `B x 512 x N` conv features -> `B x embed_dim`.

        Equal to `tokens_from_features(features).mean(dim=2)`, but the last (linear) layer
        of `ff_vid` runs on the token mean rather than on every token (a mean commutes with
        a linear map): about 5% less transformer-head work.
        """
        x = self.pos_encoder(features.to(self.device, self.dtype).transpose(1, 2))  # B x N x 512
        hidden = self.ff_vid[1](self.ff_vid[0](self.transformer_encoder(x)))  # B x N x 512 (Linear, ReLU)
        return self.ff_vid[2](hidden.mean(dim=1))

    def embed_video(self, windows: torch.Tensor) -> torch.Tensor:
        """Window embeddings: `B x 3 x 25 x 270 x 480` in [0, 1] -> `B x 1024`.

        Mean over the 21 tokens, not normalised (as the published model).
        """
        _check_video(windows, exact_frames=self.config.window_frames)
        return self.embeddings_from_features(self.video_features(windows))

    def clip_features(self, frames: Frames, chunk: int = 32, progress: Progress | None = None) -> torch.Tensor:
        """Conv-stack output for every frame position of a clip, computed once per frame.

        Args:
            frames: float `3 x T x 270 x 480` in [0, 1] (tensor or array), uint8
                `T x 270 x 480 x 3` RGB, or an iterable of uint8 `270 x 480 x 3` RGB frames
                (read lazily: only `chunk + 4` frames are held at a time).
            chunk: conv-stack outputs per pass; memory grows about 10 MB per unit.
            progress: called as `progress("video features", frames_read, total_or_None)`.
        Returns:
            float32 `max(T - 4, 0) x 512` on the CPU; row t covers frames t .. t + 4.
        """
        _require_eval(self)
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1, got {chunk}")
        total, read, out = _clip_length(frames), 0, [torch.empty(0, D_MODEL)]
        for block in _frame_chunks(frames, chunk):
            with torch.inference_mode(), self._lowered():
                out.append(self.video_features(block)[0].T.float().cpu())
            read += block.shape[2] - (TEMPORAL_CONTEXT if read else 0)
            _trim_heap()
            if progress is not None:
                progress("video features", read, total)
        return torch.cat(out)  # outside inference mode: an ordinary tensor

    def embed_clip_features(self, features: torch.Tensor, batch: int = 128) -> torch.Tensor:
        """Window embeddings from `clip_features`: `(T - 4) x 512` -> `(T - 24) x 1024`.

        Row s is the embedding of the window of frames s .. s + 24. float32 on the CPU.
        """
        _require_eval(self)
        n_tokens = self.config.tokens_per_window
        if features.ndim != 2 or features.shape[1] != D_MODEL or features.shape[0] < n_tokens:
            raise ValueError(
                f"expected (T - {TEMPORAL_CONTEXT}) x {D_MODEL} clip features with T >= "
                f"{self.config.window_frames} frames, got {tuple(features.shape)}"
            )
        windows = features.unfold(0, n_tokens, 1)  # (T - 24) x 512 x 21, a view
        out = torch.empty(windows.shape[0], self.config.embed_dim)  # an ordinary tensor, filled in place
        # PyTorch's fused transformer path needs no grad; inference mode also skips version counters
        with torch.inference_mode(), self._lowered():
            for s in range(0, windows.shape[0], batch):
                out[s : s + batch] = self.embeddings_from_features(windows[s : s + batch]).float().cpu()
        return out

    def embed_video_clip(
        self, frames: Frames, chunk: int = 32, batch: int = 128, progress: Progress | None = None
    ) -> torch.Tensor:
        """Embedding of the window starting at every frame of a clip.

        Equal to `embed_video` on each 25-frame window, but the conv stack runs once per
        frame over overlapping chunks (`chunk` + 4 frames) and the transformer runs on
        `batch` windows at a time, so memory does not grow with the clip (outputs aside:
        6 KB per frame). Needs the model in eval mode.

        Args:
            frames: see `clip_features` (float `3 x T x 270 x 480` in [0, 1], uint8
                `T x 270 x 480 x 3`, or an iterable of uint8 `270 x 480 x 3` frames).
            chunk: conv-stack outputs per pass (about 10 MB of CPU memory each).
            batch: windows per transformer pass.
            progress: `progress(step, completed, total_or_None)` hook.
        Returns:
            float32 `(T - 24) x 1024` on the CPU; row s is the window of frames s .. s + 24.
        """
        need = self.config.window_frames
        n = _clip_length(frames)
        if n is not None and n < need:
            raise ValueError(f"the clip has {n} frames: need at least {need} (one window)")
        features = self.clip_features(frames, chunk, progress)
        if features.shape[0] < self.config.tokens_per_window:  # a short iterable
            raise ValueError(f"the clip has fewer than {need} frames: need at least one window")
        return self.embed_clip_features(features, batch)

    def embed_video_clips(self, frames: Iterable[dict[Any, Any]], lengths: dict[Any, int],
                          chunk: int = 32, batch: int = 128, progress: Progress | None = None
                          ) -> Iterator[tuple[Any, int, torch.Tensor]]:
        """`embed_video_clip` of clips that run side by side (the people of a scene): their
        frames go through the network together, each clip's numbers as it alone gets them.

        A pass of the conv stack takes one block of `chunk` + 4 frames of every clip under way
        as one batch (it waits until each has one: at most `chunk` frames); a pass of the
        transformer head takes `batch` windows of every clip that has them. A clip's last,
        shorter block and head batch run alone, at the sizes `embed_video_clip` gives them
        (oneDNN picks its kernels by shape: at 12 frames a block, 2 clips in one batch gave
        other numbers than each alone; at 36, 1-4 clips gave the same). Memory does not grow
        with the clips' lengths: nothing is held for a window once it is yielded.

        Args:
            frames: one dict per time step, {clip key: uint8 270 x 480 x 3 RGB frame} of the
                clips on it; each clip's frames come on consecutive steps.
            lengths: {clip key: its frame count, at least one window}.
            chunk, batch: as `embed_video_clip`, per clip.
            progress: called as `progress("video features", steps read, None)`.
        Yields:
            (key, s, float32 n x embed_dim on the CPU): the embeddings of the clip's windows
            s .. s + n - 1 (row i: frames s + i .. s + i + 24), in order, as soon as computed.
        """
        _require_eval(self)
        if chunk < 1 or batch < 1:
            raise ValueError(f"chunk and batch must be at least 1, got {chunk} and {batch}")
        short = [k for k, n in lengths.items() if n < self.config.window_frames]
        if short:
            raise ValueError(f"clips {short} have fewer than {self.config.window_frames} frames: "
                             "need at least one window")
        clips = {k: _ClipStream(n, chunk) for k, n in lengths.items()}
        for step, present in enumerate(frames, start=1):
            for key, frame in present.items():
                if key not in clips:
                    raise ValueError(f"frames of clip {key!r}, which has no length")
                if clips[key].block is not None and clips[key].fills_block():
                    yield from self._clips_step(clips, batch)  # its next block came first
                clips[key].add(frame)
            under_way = [c for c in clips.values() if c.read and not c.convolved]
            if any(c.block is not None and c.last for c in under_way) or \
                    (under_way and all(c.block is not None for c in under_way)):
                yield from self._clips_step(clips, batch)
            if progress is not None:
                progress("video features", step, None)
        missing = {k: f"{c.read} of {c.length}" for k, c in clips.items() if c.read < c.length}
        if missing:
            raise ValueError(f"clips ended early (frames read): {missing}")
        yield from self._clips_step(clips, batch)

    def _clips_step(self, clips: dict[Any, _ClipStream], batch: int
                    ) -> Iterator[tuple[Any, int, torch.Tensor]]:
        """`embed_video_clips`: the conv stack on every waiting block (one batch per block
        length), then the head on every ready batch of windows."""
        waiting = [c for c in clips.values() if c.block is not None]
        full = [c for c in waiting if len(c.block) == c.chunk + TEMPORAL_CONTEXT]
        groups = ([full] if full else []) + [[c] for c in waiting if c not in full]
        for group in groups:  # a shorter, last block alone: its numbers depend on the batch
            blocks = _uint8_to_float(torch.stack([c.block for c in group]))
            with torch.inference_mode(), self._lowered():
                out = self.video_features(blocks).float().cpu()  # B x 512 x n
            del blocks
            for clip, rows in zip(group, out):
                clip.convolved_block(rows.T)
            _trim_heap()
        ready, last = [], []
        for key, clip in clips.items():
            for first, windows in clip.head_batches(self.config.tokens_per_window, batch):
                (ready if len(windows) == batch else last).append((key, first, windows))
        if ready:
            yield from self._heads(ready)
        for item in last:
            yield from self._heads([item])

    def _heads(self, items: list[tuple[Any, int, torch.Tensor]]) -> Iterator[tuple[Any, int, torch.Tensor]]:
        """The transformer head on the windows of `items` (key, s, n x 512 x tokens) in one
        pass; yields (key, s, n x embed_dim)."""
        windows = items[0][2] if len(items) == 1 else \
            torch.cat([w.transpose(1, 2) for _, _, w in items]).transpose(1, 2)
        out = torch.empty(windows.shape[0], self.config.embed_dim)  # an ordinary tensor
        with torch.inference_mode(), self._lowered():
            out[:] = self.embeddings_from_features(windows).float().cpu()
        start = 0
        for key, first, w in items:
            yield key, first, out[start:start + len(w)]
            start += len(w)

    # ---- audio ----------------------------------------------------------------------------

    def embed_audio(self, mel_windows: torch.Tensor) -> torch.Tensor:
        """Audio embeddings: `B x 1 x 80 x 100` log-mel windows (see `audio.mel_windows`) -> `B x 1024`."""
        expected = (1, N_MELS, MEL_WINDOW)
        if mel_windows.ndim != 4 or tuple(mel_windows.shape[1:]) != expected:
            shape = " x ".join(map(str, expected))
            raise ValueError(f"expected B x {shape} log-mel windows, got {tuple(mel_windows.shape)}")
        x = self.net_aud(mel_windows.to(self.device, self.dtype))  # B x 512 x 1 x 1
        return self.ff_aud(x).flatten(1)

    @torch.no_grad()
    def embed_audio_clip(self, mel: torch.Tensor, batch: int = AUDIO_BATCH) -> torch.Tensor:
        """Audio embedding under every video frame: `T x 80` log-mel -> `W x 1024`, float32 on the CPU.

        Row s is the window of mel frames 4s .. 4s + 99 (the sound of video frames
        s .. s + 24), W = `audio.num_windows(T)`. Needs the model in eval mode.
        """
        _require_eval(self)
        n = num_windows(mel.shape[0]) if mel.ndim == 2 else 0
        if n < 1:
            raise ValueError(f"expected T x {N_MELS} log-mel features with T >= {MEL_WINDOW}, got {tuple(mel.shape)}")
        out = torch.empty(n, self.config.embed_dim)
        with self._lowered():
            for s in range(0, n, batch):
                windows = _cut_mel_windows(mel, range(s, min(s + batch, n)))
                out[s : s + batch] = self.embed_audio(windows).float().cpu()
        _trim_heap()
        return out

    # ---- scoring --------------------------------------------------------------------------

    def similarity(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Scaled cosine similarity along the last axis (`... x 1024`, broadcast) -> `...`.

        The scale is the learnt `logits_scale.weight`.
        """
        cos = F.cosine_similarity(video.to(self.device, self.dtype), audio.to(self.device, self.dtype), dim=-1)
        return cos * self.logits_scale.weight.reshape(())

    def forward(self, windows: torch.Tensor, mel_windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(video `B x 1024`, audio `B' x 1024`) embeddings; see `embed_video`, `embed_audio`."""
        return self.embed_video(windows), self.embed_audio(mel_windows)


class _ClipStream:
    """One clip of `GestSyncModel.embed_video_clips`: its frames waiting for the conv stack
    (as `_stream_chunks` cuts them) and its conv outputs waiting for the head."""

    def __init__(self, length: int, chunk: int) -> None:
        self.length, self.chunk = length, chunk
        self.frames: list[torch.Tensor] = []
        self.read = 0  # frames read
        self.block: torch.Tensor | None = None  # uint8 n x H x W x 3 for the conv stack
        self.last = False  # the block is the clip's last
        self.convolved = False  # every conv output computed
        self.features = torch.empty(0, D_MODEL)  # conv outputs from window `next_window` on
        self.next_window = 0

    def add(self, frame: Any) -> None:
        if self.read == self.length:
            raise ValueError(f"a clip of {self.length} frames got more")
        if self.block is not None and self.fills_block():
            raise RuntimeError("a clip's block was not convolved before its next one")
        self.frames.append(_check_frame(frame, self.read))
        self.read += 1
        if len(self.frames) == self.chunk + TEMPORAL_CONTEXT or self.read == self.length:
            self.block, self.last = torch.stack(self.frames), self.read == self.length
            self.frames = self.frames[self.chunk:]

    def fills_block(self) -> bool:
        """Whether the next frame completes a block."""
        return len(self.frames) + 1 == self.chunk + TEMPORAL_CONTEXT or self.read + 1 == self.length

    def convolved_block(self, features: torch.Tensor) -> None:
        """Take the conv outputs (n x 512) of the waiting block."""
        self.features = torch.cat([self.features, features])
        self.convolved, self.block = self.last, None

    def head_batches(self, tokens: int, batch: int) -> Iterator[tuple[int, torch.Tensor]]:
        """(s, windows s .. s + n - 1 as n x 512 x tokens) ready for the head: `batch` of
        them, or the rest once every conv output is in (as `embed_clip_features` cuts them)."""
        windows = self.length - tokens - TEMPORAL_CONTEXT + 1
        while self.next_window < windows:
            n = min(batch, windows - self.next_window)
            if len(self.features) < n + tokens - 1 or (n < batch and not self.convolved):
                return
            yield self.next_window, self.features.unfold(0, tokens, 1)[:n]
            self.features, self.next_window = self.features[n:], self.next_window + n


# ---- input checks and clip chunking ----------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without it)
        return None


def _trim_heap() -> None:
    """Hand freed heap pages back to the OS (glibc `malloc_trim`; a no-op elsewhere).

    Without it glibc keeps the freed conv buffers of earlier chunks (up to ~100 MB each)
    and the resident size of a long clip creeps up (482 -> 602 MB over 2,000 streamed
    frames); with it, it stays flat (452 -> 454 MB) for about 0.7% more CPU time.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _require_eval(model: nn.Module) -> None:
    if model.training:
        raise RuntimeError("clip embedding needs the model in eval mode (batch-norm statistics): call model.eval()")


def _check_video(x: torch.Tensor, min_frames: int = 1, exact_frames: int | None = None) -> None:
    """Raise ValueError unless x is B x 3 x T x 270 x 480 with the required T."""
    frames_ok = x.ndim == 5 and (x.shape[2] == exact_frames if exact_frames else x.shape[2] >= min_frames)
    if not (frames_ok and x.shape[1] == 3 and tuple(x.shape[3:]) == (FRAME_HEIGHT, FRAME_WIDTH)):
        want = exact_frames if exact_frames else f"T>={min_frames}"
        raise ValueError(
            f"expected video B x 3 x {want} x {FRAME_HEIGHT} x {FRAME_WIDTH} (RGB in [0, 1]), got {tuple(x.shape)}"
        )


def _clip_length(frames: Frames) -> int | None:
    """Frame count of an array clip (checking its layout), None for an iterable."""
    if isinstance(frames, (torch.Tensor, np.ndarray)):
        return _array_layout(frames)
    return None


def _array_layout(frames: torch.Tensor | np.ndarray) -> int:
    """Validate an array clip; returns T."""
    shape, is_uint8 = tuple(frames.shape), frames.dtype in (np.uint8, torch.uint8)
    if is_uint8 and len(shape) == 4 and shape[1:] == (FRAME_HEIGHT, FRAME_WIDTH, 3):
        return shape[0]
    if not is_uint8 and len(shape) == 4 and shape[0] == 3 and shape[2:] == (FRAME_HEIGHT, FRAME_WIDTH):
        return shape[1]
    raise ValueError(
        f"expected a clip as uint8 T x {FRAME_HEIGHT} x {FRAME_WIDTH} x 3 or float 3 x T x {FRAME_HEIGHT} x "
        f"{FRAME_WIDTH} in [0, 1], got {frames.dtype} {shape}"
    )


def _frame_chunks(frames: Frames, chunk: int) -> Iterator[torch.Tensor]:
    """Yield float32 CPU `1 x 3 x n x 270 x 480` blocks in [0, 1], n <= chunk + 4, overlapping by 4 frames.

    Block k starts at frame k * chunk, so the conv-stack outputs of consecutive blocks
    tile the clip exactly.
    """
    if isinstance(frames, (torch.Tensor, np.ndarray)):
        yield from _array_chunks(frames, chunk)
    else:
        yield from _stream_chunks(frames, chunk)


def _array_chunks(frames: torch.Tensor | np.ndarray, chunk: int) -> Iterator[torch.Tensor]:
    n_frames = _array_layout(frames)
    uint8 = frames.dtype in (np.uint8, torch.uint8)
    for start in range(0, max(n_frames - TEMPORAL_CONTEXT, 0), chunk):
        stop = min(start + chunk + TEMPORAL_CONTEXT, n_frames)
        block = frames[start:stop] if uint8 else frames[:, start:stop]
        if isinstance(block, np.ndarray):
            block = torch.tensor(block)  # copies the block only (from_numpy warns on read-only arrays)
        yield _uint8_to_float(block) if uint8 else block.to(torch.float32).unsqueeze(0)


def _stream_chunks(frames: Iterable[Any], chunk: int) -> Iterator[torch.Tensor]:
    buffer: list[torch.Tensor] = []
    fresh = 0  # frames in buffer not yet covered by a yielded block's outputs
    for i, frame in enumerate(frames):
        buffer.append(_check_frame(frame, i))
        fresh += 1
        if len(buffer) == chunk + TEMPORAL_CONTEXT:
            yield _uint8_to_float(torch.stack(buffer))
            buffer, fresh = buffer[chunk:], 0
    if fresh and len(buffer) >= TEMPORAL_KERNEL:
        yield _uint8_to_float(torch.stack(buffer))


def _check_frame(frame: Any, index: int) -> torch.Tensor:
    # a copy: decoders may reuse their frame buffers, and read-only arrays cannot be shared
    frame = frame.clone() if isinstance(frame, torch.Tensor) else torch.tensor(np.asarray(frame))
    if frame.dtype != torch.uint8 or tuple(frame.shape) != (FRAME_HEIGHT, FRAME_WIDTH, 3):
        raise ValueError(
            f"frame {index}: expected uint8 {FRAME_HEIGHT} x {FRAME_WIDTH} x 3 RGB, "
            f"got {frame.dtype} {tuple(frame.shape)}"
        )
    return frame


def _uint8_to_float(block: torch.Tensor) -> torch.Tensor:
    """uint8 `n x H x W x 3` (or `B x n x H x W x 3`) -> float32 `1 (B) x 3 x n x H x W` in
    [0, 1] (pixel / 255).

    The result keeps the frames' memory layout, which is channels-last with the standard
    strides (unsqueezing after the permute would not be), as `video_features` wants it.
    """
    block = block.unsqueeze(0) if block.ndim == 4 else block
    return block.permute(0, 4, 1, 2, 3).to(torch.float32).div_(255.0)
