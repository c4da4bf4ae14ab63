"""Tiny synthetic test videos written with PyAV, for tests of any module.

Each picture carries its source frame number as 8 black/white stripes across the top half
(bit 7 on the left), so a test can tell which source frame it got back; a white square
moves across the bottom half. The sound is a quiet 440 Hz tone with optional loud clicks
(short 2 kHz bursts) at known times. Everything is small so a clip encodes in milliseconds.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import numpy as np

TIME_BASE = Fraction(1, 1000)  # pts unit for written video: 1 ms, fine enough for VFR
TONE_HZ = 440.0
TONE_AMP = 0.03  # about -30 dBFS: audible but far below a click
CLICK_HZ = 2000.0
CLICK_SECONDS = 0.002  # one click = 2 ms burst, Hann windowed
CLICK_AMP = 0.9
INDEX_BITS = 8  # frame numbers wrap at 256

_FORMATS = {".mp4": "mp4", ".mkv": "matroska", ".avi": "avi", ".mov": "mov", ".webm": "webm"}
_VIDEO_OPTIONS = {
    "libx264": {"preset": "ultrafast"},
    "libx265": {"preset": "ultrafast", "x265-params": "log-level=none"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"},
    "libvpx": {"deadline": "realtime", "cpu-used": "8"},
    "libsvtav1": {"preset": "12"},
}
_VIDEO_CODECS = {"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9", "vp8": "libvpx",
                 "av1": "libsvtav1", "mpeg4": "mpeg4"}
_AUDIO_CODECS = {"aac": "aac", "mp3": "libmp3lame", "opus": "libopus", "pcm": "pcm_s16le"}


def has_encoder(name: str) -> bool:
    """True when this PyAV wheel can encode with `name` (our short names or FFmpeg's)."""
    name = _VIDEO_CODECS.get(name, _AUDIO_CODECS.get(name, name))
    try:
        av.Codec(name, "w")
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return False
    return True


def frame_times(seconds: float, fps: float, vfr: bool = False, video_start: float = 0.0) -> list[float]:
    """Presentation times (s) of the source pictures, rounded to TIME_BASE.

    Constant rate: i / fps. VFR: intervals cycle through 0.5, 1.5, 1.0 and 2.0 times 1/fps,
    so the average rate is still about fps but single frames last 3 times longer than others.
    """
    steps = [0.5, 1.5, 1.0, 2.0] if vfr else [1.0]
    times, t, i = [], 0.0, 0
    while t < seconds - 1e-9:
        times.append(round((video_start + t) * 1000) / 1000)
        t += steps[i % len(steps)] / fps
        i += 1
    return times


def picture(index: int, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 (h, w, 3) picture encoding `index` (mod 256) as stripes over the top half."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    stripe = w // INDEX_BITS
    for bit in range(INDEX_BITS):
        if (index >> (INDEX_BITS - 1 - bit)) & 1:
            img[: h // 2, bit * stripe : (bit + 1) * stripe] = 255
    side = max(h // 4, 2)
    x = (index * 3) % max(w - side, 1)
    img[h - side - 2 : h - 2, x : x + side] = 255
    return img


def read_index(img: np.ndarray) -> int:
    """Inverse of `picture`: the frame number shown in an upright RGB picture (any size)."""
    h, w = img.shape[:2]
    top = img[: h // 2].mean(axis=(0, 2))  # brightness per column
    value = 0
    for bit in range(INDEX_BITS):
        lo, hi = bit * w // INDEX_BITS, (bit + 1) * w // INDEX_BITS
        centre = top[lo + (hi - lo) // 4 : hi - (hi - lo) // 4]
        value = value * 2 + int(centre.mean() > 127)
    return value


def sound(seconds: float, rate: int, clicks: Sequence[float] = (), silent: bool = False,
          channels: int = 1) -> np.ndarray:
    """float32 (channels, n) samples at `rate` Hz: tone plus clicks centred at `clicks` (s)."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    x = np.zeros(n) if silent else TONE_AMP * np.sin(2 * np.pi * TONE_HZ * t)
    width = int(round(CLICK_SECONDS * rate))
    burst = CLICK_AMP * np.hanning(width) * np.sin(2 * np.pi * CLICK_HZ * np.arange(width) / rate)
    for c in clicks:
        i = int(round(c * rate)) - width // 2
        x[max(i, 0) : i + width] = burst[max(-i, 0) : max(-i, 0) + len(x[max(i, 0) : i + width])]
    return np.repeat(x[None].astype(np.float32), channels, axis=0)


def click_time(x: np.ndarray, rate: int) -> float:
    """Centre (s) of the loudest click in mono float samples: peak of a 1 ms energy envelope."""
    win = max(int(rate * 0.001), 1)
    env = np.convolve(x.astype(np.float64) ** 2, np.ones(win) / win, mode="same")
    return float(np.argmax(env)) / rate


def _add_video(out: av.container.OutputContainer, vcodec: str, fps: float, size: tuple[int, int],
               rotation: int) -> av.video.stream.VideoStream:
    name = _VIDEO_CODECS.get(vcodec, vcodec)
    stream = out.add_stream(name, rate=Fraction(fps).limit_denominator(1001),
                            options=_VIDEO_OPTIONS.get(name, {}))
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    if out.format.name not in ("avi",):  # avi keeps 1/fps: constant rate only
        stream.time_base = stream.codec_context.time_base = TIME_BASE
    stream.codec_context.gop_size = 12
    if rotation:
        stream.set_display_rotation(rotation)
    return stream


def _add_audio(out: av.container.OutputContainer, acodec: str, rate: int,
               channels: int) -> av.audio.stream.AudioStream:
    name = _AUDIO_CODECS.get(acodec, acodec)
    if name == "libopus":
        rate = 48000  # libopus accepts 8/12/16/24/48 kHz; 48 kHz is what every muxer expects
    return out.add_stream(name, rate=rate, layout="mono" if channels == 1 else "stereo")


def _write_video(out, stream, times: list[float], size: tuple[int, int]) -> None:
    for i, t in enumerate(times):
        frame = av.VideoFrame.from_ndarray(picture(i, size), format="rgb24")
        if out.format.name != "avi":
            frame.pts = int(round(t / TIME_BASE))
            frame.time_base = TIME_BASE
        else:
            frame.pts = i
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def _write_audio(out, stream, samples: np.ndarray, start: float) -> None:
    rate = stream.codec_context.sample_rate
    layout = "mono" if samples.shape[0] == 1 else "stereo"
    chunk = rate // 10
    first = int(round(start * rate))
    for i in range(0, samples.shape[1], chunk):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, i : i + chunk]),
                                           format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = first + i
        frame.time_base = Fraction(1, rate)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def make_video(path: str | Path, seconds: float = 2.0, fps: float = 25, size: tuple[int, int] = (64, 48),
               container: str | None = None, vcodec: str = "h264", acodec: str = "aac",
               audio: bool = True, video: bool = True, video_start: float = 0.0,
               audio_start: float = 0.0, rotation: int = 0, vfr: bool = False,
               silent: bool = False, clicks: Sequence[float] = (), audio_rate: int = 16000,
               channels: int = 1, faststart: bool = False) -> Path:
    """Write a synthetic clip and return its path.

    seconds: length of each stream; fps: picture rate (the average one when `vfr`);
    size: (width, height) as stored (before `rotation`, CCW degrees in the display matrix);
    video_start / audio_start: first presentation time (s) of each stream; clicks: times
    (s, on the presentation clock) of loud clicks; audio_rate in Hz (opus always 48000).
    The container comes from `container` (FFmpeg name) or the file suffix.
    """
    path = Path(path)
    fmt = container or _FORMATS[path.suffix.lower()]
    options = {"movflags": "+faststart"} if faststart else {}
    # avi cannot hold negative timestamps: FFmpeg's default shift for an mp3 encoder delay
    # would open a gap after the first picture. Disabled, the sound starts with that delay.
    extra = {"avoid_negative_ts": "disabled"} if fmt == "avi" else {}
    with av.open(str(path), "w", format=fmt, options=options, container_options=extra) as out:
        vs = _add_video(out, vcodec, fps, size, rotation) if video else None
        as_ = _add_audio(out, acodec, audio_rate, channels) if audio else None
        if vs is not None:
            _write_video(out, vs, frame_times(seconds, fps, vfr, video_start), size)
        if as_ is not None:
            rate = as_.codec_context.sample_rate
            clicks_local = [c - audio_start for c in clicks]
            _write_audio(out, as_, sound(seconds, rate, clicks_local, silent, channels), audio_start)
    return path
