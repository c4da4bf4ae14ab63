"""Log-mel audio features as the published GestSync model expects them.

Pipeline (see docs/model.md, "Audio features"): 16 kHz mono waveform -> STFT magnitude
(n_fft 512, 20 ms periodic Hann window, 10 ms hop, centred, reflect padding) -> 80 Slaney
mel bands (0-8000 Hz) -> natural log. 100 feature frames per second, 4 per video frame.

The mel filterbank is built here (same numbers as librosa's default
`librosa.filters.mel`), so neither librosa nor torchaudio is needed at run time.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
from .timebase import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME  # noqa: F401 - the model's rates

N_FFT = 512  # STFT size: 257 frequency bins
WIN_LENGTH = SAMPLE_RATE * 20 // 1000  # 320 samples: 20 ms Hann window
HOP_LENGTH = SAMPLE_RATE * 10 // 1000  # 160 samples: 10 ms hop -> 100 mel frames per second
N_MELS = 80  # mel bands
F_MIN = 0.0  # Hz, lowest mel band edge
F_MAX = SAMPLE_RATE / 2  # 8000 Hz: Nyquist
LOG_EPS = 1e-20  # added before the log, as the authors do (no other normalisation)
MEL_CHUNK_FRAMES = 2000  # `log_mel` computes the STFT 20 s at a time: its complex spectrum
# is not held for the whole clip (3 minutes of sound: 90 -> 31 MB at the peak, and 2x faster)
MEL_PER_FRAME = SAMPLE_RATE // HOP_LENGTH // FPS  # 4 mel frames per video frame
WINDOW_FRAMES = FPS  # one-second model window: 25 video frames
MEL_WINDOW = WINDOW_FRAMES * MEL_PER_FRAME  # 100 mel frames under one video window

# Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above.
_SLANEY_HZ_PER_MEL = 200.0 / 3  # linear part: 66.67 Hz per mel
_SLANEY_BREAK_HZ = 1000.0  # where the scale turns logarithmic
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL  # 15 mel
_SLANEY_LOG_STEP = np.log(6.4) / 27.0  # log-frequency step per mel above the break


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Frequency in Hz -> Slaney mel (float64 array)."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _SLANEY_HZ_PER_MEL
    safe = np.maximum(hz, _SLANEY_BREAK_HZ)  # avoids log of values the `where` discards
    log = _SLANEY_BREAK_MEL + np.log(safe / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP
    return np.where(hz >= _SLANEY_BREAK_HZ, log, linear)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Slaney mel -> frequency in Hz (float64 array); inverse of `hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * _SLANEY_HZ_PER_MEL
    log = _SLANEY_BREAK_HZ * np.exp(_SLANEY_LOG_STEP * (mel - _SLANEY_BREAK_MEL))
    return np.where(mel >= _SLANEY_BREAK_MEL, log, linear)


@functools.lru_cache(maxsize=8)
def _filterbank(n_mels: int, n_fft: int, sample_rate: int, fmin: float, fmax: float) -> np.ndarray:
    bin_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    # n_mels + 2 band edges, equally spaced in mel; band i rises on edges i..i+1, falls on i+1..i+2
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    dist = edges[:, None] - bin_hz[None, :]  # (n_mels + 2) x n_bins
    rising = -dist[:-2] / widths[:-1, None]
    falling = dist[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    # Slaney norm: each triangle has unit area in Hz (height 2 / band width)
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    weights.setflags(write=False)
    return weights


def mel_filterbank(
    n_mels: int = N_MELS,
    n_fft: int = N_FFT,
    sample_rate: int = SAMPLE_RATE,
    fmin: float = F_MIN,
    fmax: float = F_MAX,
) -> torch.Tensor:
    """Triangular mel filters, Slaney scale and Slaney area norm (librosa's default).

    Returns float32 `n_mels x (n_fft // 2 + 1)` (80 x 257 by default); row i weights the
    STFT bins (0 .. sample_rate / 2 Hz) of mel band i. A fresh tensor on each call.
    """
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= {sample_rate / 2} Hz, got {fmin}, {fmax}")
    return torch.tensor(_filterbank(n_mels, n_fft, sample_rate, float(fmin), float(fmax)), dtype=torch.float32)


def log_mel(wav: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Log-mel features of a mono 16 kHz waveform, exactly as the published model expects.

    Args:
        wav: 1-D float waveform at `SAMPLE_RATE` (16 kHz), N samples, roughly in [-1, 1].
            A tensor stays on its device; a NumPy array is computed on the CPU.
    Returns:
        float32 `T x 80`, T = N // 160 (100 frames per second; the last STFT frame is
        dropped), values `log(mel @ |STFT| + 1e-20)`.
    """
    wav = torch.as_tensor(wav)
    if wav.ndim != 1 or not wav.is_floating_point():
        raise ValueError(
            f"expected a 1-D float waveform at {SAMPLE_RATE} Hz, got {tuple(wav.shape)} {wav.dtype}; "
            "mix down to mono and give wav[0] for a 1 x N array"
        )
    if wav.numel() <= N_FFT // 2:
        raise ValueError(f"waveform of {wav.numel()} samples is too short: need more than {N_FFT // 2}")
    # centred frames: frame f spans samples f * HOP - N_FFT / 2 .. + N_FFT of the reflect-padded
    # waveform, as torch.stft(center=True) pads it; the last frame is dropped
    padded = torch.nn.functional.pad(wav.to(torch.float32)[None, None], (N_FFT // 2, N_FFT // 2),
                                     mode="reflect")[0, 0]
    window = torch.hann_window(WIN_LENGTH, periodic=True, device=wav.device)
    bank = mel_filterbank().to(wav.device)
    num_frames, parts = wav.numel() // HOP_LENGTH, []
    for first in range(0, num_frames, MEL_CHUNK_FRAMES):
        last = min(first + MEL_CHUNK_FRAMES, num_frames)
        spec = torch.stft(padded[first * HOP_LENGTH:(last - 1) * HOP_LENGTH + N_FFT], N_FFT,
                          hop_length=HOP_LENGTH, win_length=WIN_LENGTH, window=window,
                          center=False, return_complex=True)
        parts.append(torch.log(bank @ spec.abs() + LOG_EPS).T)  # magnitude, not power
    return torch.cat(parts).contiguous()


def mel_windows(mel: torch.Tensor, starts: Sequence[int] | torch.Tensor | np.ndarray) -> torch.Tensor:
    """Cut the model's audio windows under given video frames.

    Args:
        mel: `T x 80` log-mel features (from `log_mel`).
        starts: video-frame indices s; window s covers mel frames 4s .. 4s + 99, the sound
            under video frames s .. s + 24.
    Returns:
        `B x 1 x 80 x 100` (frequency x time), B = len(starts), same dtype and device as
        `mel`. Only the selected windows are copied (the overlapping view is not).
    """
    if mel.ndim != 2 or mel.shape[1] != N_MELS:
        raise ValueError(f"expected T x {N_MELS} log-mel features, got {tuple(mel.shape)}")
    starts = torch.as_tensor(starts, dtype=torch.long).reshape(-1)
    n_windows = num_windows(mel.shape[0])
    if starts.numel() and (int(starts.min()) < 0 or int(starts.max()) >= n_windows):
        raise ValueError(
            f"window starts must be video frames 0 .. {n_windows - 1} for {mel.shape[0]} mel frames "
            f"(each window needs {MEL_WINDOW}), got {int(starts.min())} .. {int(starts.max())}"
        )
    view = mel.T.unfold(1, MEL_WINDOW, MEL_PER_FRAME)  # 80 x n_windows x 100, no copy
    return view[:, starts.to(mel.device)].permute(1, 0, 2).unsqueeze(1).contiguous()


def num_windows(n_mel_frames: int) -> int:
    """How many video-frame window starts `n_mel_frames` of features allow (0 if too short)."""
    return max(0, (n_mel_frames - MEL_WINDOW) // MEL_PER_FRAME + 1)
