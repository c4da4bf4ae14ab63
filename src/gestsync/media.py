"""Reading and writing media: probe a clip, stream its pictures on a 25 fps grid, read its
sound at 16 kHz, and write copies whose sound is shifted against the untouched picture.

Everything is measured on the presentation clock of the file (container timestamps), so a
picture stream that starts later than the sound, or a variable frame rate, maps correctly.
Pure PyAV: no ffmpeg binary, no shell.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from .errors import GestsyncError, MediaError
from .outputs import atomic_path
from .progress import Progress
from .timebase import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME

log = logging.getLogger(__name__)

SILENCE_DBFS = -60.0  # RMS below this (dB relative to full scale 1.0) counts as silence
PTS_SLACK = 0.0005  # s: container timestamps are often rounded to 1 ms
SEEK_MARGIN = 0.5  # s of sound decoded before a seek target (AAC needs the frame before)
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)
AUDIO_BITRATE_PER_CHANNEL = 96000  # bit/s for the re-encoded sound: transparent for speech
OUTPUT_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}


@dataclass(frozen=True)
class MediaInfo:
    """What `probe` learnt about a clip. Times are seconds on the presentation clock.

    width, height: displayed size (after rotation); rotation: counter-clockwise degrees
    (0, 90, 180, 270) that the stored picture is turned by for display, from the display
    matrix (a phone clip tagged "rotate=90" has 270; flips and a non-square sample aspect
    ratio are ignored); video_fps: average rate of the source (shown pictures per second);
    container: FFmpeg's demuxer name; start: analysis origin, where frame 0 of the 25 fps grid
    lies; num_frames: 25 fps frames in [start, min(video_end, audio_end)).
    """

    path: Path
    container: str
    width: int
    height: int
    rotation: int
    video_codec: str
    video_fps: float
    video_start: float
    video_end: float
    audio_codec: str
    audio_rate: int
    audio_channels: int
    audio_start: float
    audio_end: float
    start: float
    num_frames: int

    @property
    def duration(self) -> float:
        """Length of the analysed span in seconds (num_frames / FPS)."""
        return self.num_frames / FPS


# ----------------------------------------------------------------------------- reading


def _open(path: Path) -> av.container.InputContainer:
    """Open `path` for reading, turning FFmpeg's complaints into MediaError."""
    if not path.exists():
        raise MediaError(f"{path} does not exist: check the path")
    if path.is_dir():
        raise MediaError(f"{path} is a folder: give a video file")
    try:
        return av.open(str(path), "r")
    except PermissionError as e:
        raise MediaError(f"cannot read {path}: permission denied; check its permissions") from e
    except (av.FFmpegError, UnicodeDecodeError) as e:
        why = getattr(e, "strerror", None) or str(e)
        raise MediaError(f"{path.name} is not a readable video ({why}; truncated, corrupt or not "
                         "media): give an mp4, mkv, mov, avi or webm file") from e


def _streams(container: av.container.InputContainer, path: Path):
    """The first video and the first audio stream, or MediaError naming the missing one."""
    if not container.streams.video:
        raise MediaError(f"no video stream in {path.name}: give a video, not a sound file")
    if not container.streams.audio:
        raise MediaError(f"no audio stream in {path.name}: give a video with sound")
    return container.streams.video[0], container.streams.audio[0]


def _demux(container, streams, path: Path) -> Iterator[av.Packet]:
    """Demuxed packets, each stream ending with an empty packet that flushes its decoder."""
    try:
        yield from container.demux(streams)
    except av.FFmpegError as e:
        raise MediaError(f"{path.name} is truncated or corrupt ({e}): "
                         "re-download or re-encode it") from e


def _decoded(container, stream, path: Path) -> Iterator[av.frame.Frame]:
    """Decoded frames of one stream in presentation order; broken packets are skipped."""
    for packet in _demux(container, stream, path):
        try:
            yield from packet.decode()
        except av.error.InvalidDataError as e:
            log.warning("skipping an undecodable packet in %s: %s", path.name, e)


def _packet_time(packet: av.Packet) -> float | None:
    """Presentation time (s) of a packet, falling back to its decode time."""
    ts = packet.pts if packet.pts is not None else packet.dts
    return None if ts is None else float(ts * packet.time_base)


def _stream_ends(container, streams, path: Path) -> list[tuple[float, int]]:
    """(end time in s, number of shown packets) per stream, from the packets alone.

    Packets without a duration are assumed to last 1/average rate (video) or 1024 samples
    (audio). Packets flagged as discarded (outside an edit list) are never shown. Raises
    MediaError when the file is cut short (see `_check_complete`).
    """
    ends = {s.index: [-math.inf, 0, _default_duration(s)] for s in streams}
    last = None
    for packet in _demux(container, streams, path):
        t = _packet_time(packet)
        if not packet.size or t is None:
            continue
        last = packet
        if packet.is_discard:
            continue
        span = ends[packet.stream.index]
        dur = float(packet.duration * packet.time_base) if packet.duration else span[2]
        span[0], span[1] = max(span[0], t + dur), span[1] + 1
    found = [(ends[s.index][0], ends[s.index][1]) for s in streams]
    _check_complete(container, max(end for end, _ in found), last, path)
    return found


def _check_complete(container, end: float, last: av.Packet | None, path: Path) -> None:
    """MediaError if the data stops short: a partly read last packet, or an end (s) well
    before the duration the container declares (more than 1 s and 10% short)."""
    declared = math.inf
    if container.duration:
        declared = ((container.start_time or 0) + container.duration) / av.time_base
    short = end < declared - max(1.0, 0.1 * declared)
    if short or (last is not None and last.is_corrupt):
        of = f" of {declared:.2f} s" if declared < math.inf else ""
        raise MediaError(f"{path.name} is truncated (data up to {max(end, 0):.2f} s{of}): "
                         "re-download or re-encode it")


def _default_duration(stream) -> float:
    """Seconds one packet lasts when the container does not say."""
    if stream.type == "audio":
        return 1024 / (stream.codec_context.sample_rate or SAMPLE_RATE)
    return 1.0 / float(stream.average_rate or stream.guessed_rate or FPS)


def _first_frame(container, stream, path: Path, what: str) -> av.frame.Frame:
    """The first decodable frame of `stream`, or MediaError."""
    for frame in _decoded(container, stream, path):
        if frame.time is not None:
            return frame
    raise MediaError(f"no decodable {what} frames in {path.name}: re-encode the file")


def _codec_name(stream) -> str:
    """FFmpeg's name of the format (h264, mp3, av1), not of the decoder (mp3float, libdav1d)."""
    return stream.codec_context.codec.canonical_name


def _check_size(stream, path: Path) -> None:
    """MediaError when the codec parameters give a zero width or height."""
    if not stream.codec_context.width or not stream.codec_context.height:
        raise MediaError(f"zero-size video frames in {path.name}: re-encode the file")


def probe(path: str | os.PathLike) -> MediaInfo:
    """Read a clip's streams, start/end times and rotation; decodes one frame of each stream.

    Raises MediaError for a missing file, a folder, a file that is not media, truncated
    or corrupt, without video or without sound, with zero-size or undecodable frames, or
    whose picture and sound do not overlap.
    """
    path = Path(path)
    with _open(path) as c:
        v, a = _streams(c, path)
        _check_size(v, path)
        (video_end, count), (audio_end, _) = _stream_ends(c, [v, a], path)
        facts = dict(path=path, container=c.format.name, video_codec=_codec_name(v),
                     audio_codec=_codec_name(a), audio_rate=a.codec_context.sample_rate,
                     audio_channels=a.codec_context.layout.nb_channels,
                     video_end=video_end, audio_end=audio_end)
    with _open(path) as c:
        first = _first_frame(c, c.streams.video[0], path, "video")
        rotation = int(round(first.rotation / 90.0)) * 90 % 360
        size, video_start = (first.width, first.height), float(first.time)
    with _open(path) as c:
        audio_start = float(_first_frame(c, c.streams.audio[0], path, "audio").time)
    if rotation in (90, 270):
        size = size[::-1]
    return _info(facts, size, rotation, video_start, audio_start, count)


def _info(facts: dict, size: tuple[int, int], rotation: int, video_start: float,
          audio_start: float, count: int) -> MediaInfo:
    """Assemble MediaInfo; the 25 fps grid starts where both streams have begun."""
    name = facts["path"].name
    if not size[0] or not size[1]:
        raise MediaError(f"zero-size video frames in {name}: re-encode the file")
    start = max(video_start, audio_start)
    span = min(facts["video_end"], facts["audio_end"]) - start
    if span <= 0:
        raise MediaError(f"picture and sound of {name} do not overlap in time: re-mux the file")
    return MediaInfo(
        **facts, width=size[0], height=size[1], rotation=rotation,
        video_fps=count / (facts["video_end"] - video_start),
        video_start=video_start, audio_start=audio_start, start=start,
        num_frames=math.ceil((span - PTS_SLACK) * FPS))  # grid points k: start + k/FPS < end


def _grid_count(info: MediaInfo, start_frame: int, num_frames: int | None) -> int:
    """How many 25 fps frames to deliver from `start_frame` (ValueError on bad arguments)."""
    if start_frame < 0 or (num_frames is not None and num_frames < 0):
        raise ValueError(f"start_frame and num_frames must be >= 0, "
                         f"got {start_frame} and {num_frames}")
    return max(info.num_frames - start_frame, 0) if num_frames is None else num_frames


def _video_frames_from(info: MediaInfo, t0: float) -> Iterator[av.VideoFrame]:
    """Decoded pictures in display order, the first one shown at or before time t0 (s).

    Seeks to the keyframe before t0 when t0 is past the first picture; if the seek lands
    too late (formats without an index), decodes from the beginning instead.
    """
    if t0 > info.video_start + 1.0:
        with _open(info.path) as c:
            v = c.streams.video[0]
            v.thread_type = "AUTO"
            c.seek(int(t0 / v.time_base), stream=v)  # keyframe at or before t0
            frames = _decoded(c, v, info.path)
            first = next(frames, None)
            if first is not None and first.time is not None and first.time <= t0 + PTS_SLACK:
                yield first
                yield from frames
                return
            log.info("seek in %s landed past %.3f s: decoding from the start", info.path.name, t0)
    with _open(info.path) as c:
        v = c.streams.video[0]
        v.thread_type = "AUTO"
        yield from _decoded(c, v, info.path)


def _to_rgb(frame: av.VideoFrame, size: tuple[int, int] | None, rotation: int,
            scaler: VideoReformatter) -> np.ndarray:
    """RGB uint8 (h, w, 3) upright picture, scaled by swscale to `size` = (w, h) if given.

    `scaler` is kept across frames: it caches the swscale context, which costs more to
    build than one scaled conversion (2.4 vs 1.3 ms per 720p frame, measured).
    """
    w, h = (None, None) if size is None else size if rotation in (0, 180) else size[::-1]
    img = scaler.reformat(frame, width=w, height=h, format="rgb24",
                          interpolation="AREA").to_ndarray()  # scale before turning
    if rotation:
        img = np.ascontiguousarray(np.rot90(img, k=rotation // 90))  # rot90 turns CCW
    return img


def _on_grid(frames: Iterator[av.VideoFrame], t0: float, count: int) -> Iterator[av.VideoFrame]:
    """For k in range(count), the frame on display at t0 + k / FPS (s): the last one whose
    time is <= that (within PTS_SLACK). Frames must come in display order, the first shown
    at or before t0; after the last frame, it stays on display."""
    k, shown = 0, None
    for frame in frames:
        t = frame.time
        if t is None:
            continue
        while k < count and shown is not None and t > t0 + k / FPS + PTS_SLACK:
            yield shown
            k += 1
        if k >= count:
            return
        shown = frame
    while k < count and shown is not None:
        yield shown
        k += 1


def iter_frames(info: MediaInfo, size: tuple[int, int] | None = None, start_frame: int = 0,
                num_frames: int | None = None) -> Iterator[np.ndarray]:
    """Stream the clip's pictures on the 25 fps grid, in constant memory.

    Frame k is the source picture on display at time info.start + (start_frame + k) / FPS:
    the last picture whose timestamp is <= that time, so pictures are repeated or dropped
    by timestamp whatever the source rate (constant or variable). Each yielded array is a
    fresh RGB uint8 array of shape (h, w, 3), upright, with (w, h) = `size` or
    (info.width, info.height). num_frames=None means up to info.num_frames; past the end
    of the picture stream the last picture repeats. Seeks when start_frame is over 1 s in.
    """
    count = _grid_count(info, start_frame, num_frames)
    if size is not None and (size[0] <= 0 or size[1] <= 0):
        raise ValueError(f"size must be (width, height) > 0, got {size}")
    t0 = info.start + start_frame / FPS
    scaler, last, img = VideoReformatter(), None, None
    frames = _video_frames_from(info, t0)
    try:
        for frame in _on_grid(frames, t0, count):
            if frame is last:
                yield img.copy()  # a repeated picture: convert once
                continue
            last, img = frame, _to_rgb(frame, size, info.rotation, scaler)
            yield img
    finally:
        frames.close()  # closes the container now, not at garbage collection


def read_audio(info: MediaInfo, start_frame: int = 0, num_frames: int | None = None) -> np.ndarray:
    """The clip's sound as float32 mono at SAMPLE_RATE (16 kHz), placed by timestamp.

    Sample n lies at time info.start + start_frame / FPS + n / SAMPLE_RATE; the result has
    exactly num_frames * SAMPLES_PER_FRAME samples (num_frames=None: up to
    info.num_frames), zero where the stream has no sound. Resampled and down-mixed by
    PyAV's AudioResampler.
    """
    count = _grid_count(info, start_frame, num_frames)
    out = np.zeros(count * SAMPLES_PER_FRAME, np.float32)
    origin = round((info.start + start_frame / FPS) * SAMPLE_RATE)  # 16 kHz sample clock
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    with _open(info.path) as c:
        a = c.streams.audio[0]
        _seek_audio(c, a, origin / SAMPLE_RATE - SEEK_MARGIN, info.audio_start)
        for frame in _decoded(c, a, info.path):
            if frame.time is not None and frame.time > (origin + len(out)) / SAMPLE_RATE + 1:
                break  # well past the requested span
            for piece in resampler.resample(frame):
                _place(out, piece, origin)
    for piece in resampler.resample(None):
        _place(out, piece, origin)
    return out


def _seek_audio(container, stream, t: float, stream_start: float) -> None:
    """Seek to the audio packet before time t (s) when t is well past the stream start."""
    if t > stream_start + 1.0:
        container.seek(int(t / stream.time_base), stream=stream)


def _place(out: np.ndarray, piece: av.AudioFrame, origin: int) -> None:
    """Copy a resampled mono piece into `out` where its timestamp says (pts in 1/16000 s)."""
    if piece.pts is None:
        raise MediaError("sound frames without timestamps: re-mux the file")
    samples = piece.to_ndarray().reshape(-1)
    i = round(piece.pts * piece.time_base * SAMPLE_RATE) - origin
    lo, hi = max(i, 0), min(i + len(samples), len(out))
    if lo < hi:
        out[lo:hi] = samples[lo - i : hi - i]


def is_silent(audio: np.ndarray) -> bool:
    """True when float audio (full scale 1.0) has RMS below SILENCE_DBFS (-60 dBFS)."""
    if audio.size == 0:
        return True
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return rms < 10 ** (SILENCE_DBFS / 20)


# ----------------------------------------------------------------------------- writing


def output_suffix(info: MediaInfo) -> str:
    """".mp4" when the clip's picture codec can be copied into mp4, else ".mkv"."""
    with av.open(os.devnull, "w", format="mp4") as out:
        return ".mp4" if info.video_codec in out.supported_codecs else ".mkv"


def write_synced(info: MediaInfo, out_path: str | os.PathLike, offset_frames: float) -> Path:
    """Write a copy of the clip with its sound brought into sync with the picture.

    offset_frames > 0 means the sound comes LATER than the picture by offset_frames / FPS
    seconds, so it is moved earlier by that much (later for negative values). The picture
    stream is copied packet for packet (bit-exact); see `shift_audio_copy`.
    """
    return _write_shifted(info, Path(out_path), -offset_frames)


def shift_audio_copy(src: str | os.PathLike, out_path: str | os.PathLike,
                     shift_frames: float) -> Path:
    """Copy `src` with its sound moved by shift_frames / FPS seconds (> 0: sound later).

    The picture is copied packet for packet (same bytes, timestamps, resolution and rate);
    the sound keeps its rate, span and start time, is silence-padded or trimmed to its
    original length and re-encoded (AAC; Opus for .webm). The output container follows the
    suffix of out_path (.mp4, .m4v, .mov, .mkv, .webm; `output_suffix` says whether mp4
    can hold the picture codec). Written atomically: a temp file in the same folder, then
    os.replace, so a failure leaves nothing behind. Returns out_path.
    """
    return _write_shifted(probe(src), Path(out_path), shift_frames)


def _write_shifted(info: MediaInfo, out_path: Path, shift_frames: float) -> Path:
    """Write `info`'s clip to out_path with the sound delayed by shift_frames / FPS s."""
    fmt = _output_format(out_path)
    folder = out_path.parent
    if not folder.is_dir():
        raise MediaError(f"output folder {folder} does not exist: create it or choose another")
    try:
        with atomic_path(out_path, suffix=out_path.suffix) as tmp:
            _remux(info, tmp, fmt, shift_frames)
    except MediaError:
        raise
    except GestsyncError as e:  # the folder cannot be written (`outputs.temp_beside`)
        raise MediaError(str(e)) from e
    return out_path


def _output_format(out_path: Path) -> str:
    """FFmpeg muxer name for the suffix of out_path, or MediaError."""
    fmt = OUTPUT_FORMATS.get(out_path.suffix.lower())
    if fmt is None:
        raise MediaError(f"cannot write {out_path.name}: give an output name ending in "
                         + ", ".join(OUTPUT_FORMATS))
    return fmt


def _remux(info: MediaInfo, tmp: Path, fmt: str, shift_frames: float) -> None:
    """Copy the picture packets and encode the shifted sound into `tmp` (muxer `fmt`)."""
    with _open(info.path) as vsrc, _open(info.path) as asrc:
        vin, ain = vsrc.streams.video[0], asrc.streams.audio[0]
        try:
            options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}  # web players
            with av.open(str(tmp), "w", format=fmt, options=options) as out:
                vout = _copy_stream(out, vin)
                aout = _audio_stream(out, fmt, info)
                video = _timed((p for p in _demux(vsrc, vin, info.path) if p.size), 0)
                audio = _timed(_shifted_packets(asrc, ain, aout, info, shift_frames), 1)
                for _, kind, packet in heapq.merge(video, audio, key=lambda x: x[:2]):
                    packet.stream = vout if kind == 0 else aout
                    out.mux(packet)
        except av.FFmpegError as e:
            raise MediaError(f"cannot write {tmp.suffix} output for {info.path.name} ({e}): "
                             "try an .mkv output name") from e


COPY_AUDIO_CODECS = ("aac", "mp3")  # copied as they are into `write_redrawn`'s mp4
X264_OPTIONS = {"preset": "veryfast", "crf": "20"}  # near-transparent, about 2x real time at 720p


def write_redrawn(info: MediaInfo, out_path: Path, draw: Callable[[int, np.ndarray], None],
                  progress: Progress) -> Path:
    """Re-encode `info`'s clip to out_path (.mp4: H.264 at the source's rate and upright
    size, each picture keeping its timestamp) after draw(k, rgb) drew on each picture in
    place: k its frame on the 25 fps grid (`iter_frames`), rgb upright uint8. The sound
    is copied packet for packet when mp4 holds its codec (AAC, MP3), else made AAC."""
    with _open(info.path) as vsrc, _open(info.path) as asrc:
        vin, ain = vsrc.streams.video[0], asrc.streams.audio[0]
        vin.thread_type = "AUTO"
        try:
            with av.open(str(out_path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
                vout = _h264_stream(out, vin, info)
                copy = _codec_name(ain) in COPY_AUDIO_CODECS
                aout = out.add_stream_from_template(ain) if copy else _audio_stream(out, "mp4", info)
                video = _timed(_redrawn_packets(vsrc, vin, vout, info, draw, progress), 0)
                sound = (p for p in _demux(asrc, ain, info.path) if p.size) if copy else \
                    _shifted_packets(asrc, ain, aout, info, 0.0)
                for _, kind, packet in heapq.merge(video, _timed(sound, 1), key=lambda x: x[:2]):
                    packet.stream = vout if kind == 0 else aout
                    out.mux(packet)
        except av.FFmpegError as e:
            raise MediaError(f"cannot write {out_path.name} for {info.path.name} ({e})") from e
    return out_path


def _h264_stream(out, vin, info: MediaInfo):
    """libx264 stream at the source's rate and upright size (even, as yuv420p needs)."""
    rate = vin.average_rate or vin.guessed_rate or FPS
    stream = out.add_stream("libx264", rate=rate, options=X264_OPTIONS)
    stream.width, stream.height = info.width // 2 * 2, info.height // 2 * 2
    stream.pix_fmt = "yuv420p"
    stream.time_base = vin.time_base
    stream.codec_context.time_base = vin.time_base
    return stream


def _redrawn_packets(src, vin, vout, info: MediaInfo, draw, progress) -> Iterator[av.Packet]:
    """Encoded packets of every source picture, drawn on, with its own timestamp."""
    scaler = VideoReformatter()
    count = max(1, round((info.video_end - info.video_start) * info.video_fps))
    progress("writing video", 0, count)
    for i, frame in enumerate(_decoded(src, vin, info.path)):
        if frame.time is None:
            continue
        rgb = _to_rgb(frame, None, info.rotation, scaler)[:vout.height, :vout.width]
        k = math.floor((frame.time - info.start + PTS_SLACK) * FPS)
        if 0 <= k < info.num_frames:
            draw(k, rgb)
        new = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        new.pts, new.time_base = frame.pts, frame.time_base
        yield from vout.encode(new)
        progress("writing video", min(i + 1, count), count)
    yield from vout.encode(None)
    progress("writing video", count, count)


def _timed(packets: Iterator[av.Packet], kind: int) -> Iterator[tuple[float, int, av.Packet]]:
    """(decode time in s, kind, packet) in decode order, for interleaving by time."""
    t = -math.inf
    for packet in packets:
        ts = packet.dts if packet.dts is not None else packet.pts
        t = t if ts is None else float(ts * packet.time_base)
        yield t, kind, packet


def _copy_stream(out, vin):
    """Output stream that takes vin's packets unchanged (codec parameters, time base)."""
    if _codec_name(vin) not in out.supported_codecs:
        raise MediaError(f"{out.format.name} cannot hold {_codec_name(vin)} video: "
                         "give an output name ending in .mkv")
    vout = out.add_stream_from_template(vin)
    vout.time_base = vin.time_base
    return vout


def _audio_stream(out, fmt: str, info: MediaInfo):
    """AAC encoder (Opus for webm) at the source rate where the codec allows it."""
    layout = "mono" if info.audio_channels == 1 else "stereo"
    if fmt == "webm":
        stream = out.add_stream("libopus", rate=48000, layout=layout)  # Opus runs at 48 kHz
    else:
        rate = info.audio_rate if info.audio_rate in AAC_RATES else 48000
        stream = out.add_stream("aac", rate=rate, layout=layout)
    stream.bit_rate = AUDIO_BITRATE_PER_CHANNEL * (1 if layout == "mono" else 2)
    return stream


def _shifted_packets(src, ain, aout, info: MediaInfo, shift_frames: float) -> Iterator[av.Packet]:
    """Encoded packets of the source sound delayed by shift_frames / FPS s, same span."""
    rate = aout.codec_context.sample_rate
    layout = aout.codec_context.layout.name
    first = round(info.audio_start * rate)  # output sample clock: same start as the source
    total = round((info.audio_end - info.audio_start) * rate)
    pieces = _native_pieces(src, ain, info, rate, layout, first)
    for index, samples in _shift(pieces, round(shift_frames * rate / FPS), total):
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=layout)
        frame.sample_rate, frame.time_base, frame.pts = rate, Fraction(1, rate), first + index
        yield from aout.encode(frame)
    yield from aout.encode(None)


def _native_pieces(src, ain, info: MediaInfo, rate: int, layout: str,
                   first: int) -> Iterator[tuple[int, np.ndarray]]:
    """(start index relative to `first`, float32 (channels, n)) pieces of the source sound."""
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    for frame in _decoded(src, ain, info.path):
        for piece in resampler.resample(frame):
            yield round(piece.pts * piece.time_base * rate) - first, piece.to_ndarray()
    for piece in resampler.resample(None):
        yield round(piece.pts * piece.time_base * rate) - first, piece.to_ndarray()


def _shift(pieces, delay: int, total: int, chunk: int = 4096) -> Iterator[tuple[int, np.ndarray]]:
    """Contiguous (index, samples) output pieces covering [0, total): input moved by `delay`.

    Gaps (before the sound, after it, or inside) become silence; overlaps and anything
    outside [0, total) are dropped.
    """
    pos, channels = 0, None
    for index, samples in pieces:
        channels = samples.shape[0]
        index += delay
        if index > pos:  # silence up to this piece
            yield from _silence(pos, min(index, total), channels, chunk)
            pos = max(pos, min(index, total))
        lo, hi = pos - index, min(samples.shape[1], total - index)
        if lo < hi:
            yield pos, np.ascontiguousarray(samples[:, lo:hi])
            pos = index + hi
    yield from _silence(pos, total, channels or 1, chunk)


def _silence(start: int, stop: int, channels: int, chunk: int) -> Iterator[tuple[int, np.ndarray]]:
    """Zero pieces covering [start, stop) in chunks of at most `chunk` samples."""
    for i in range(start, stop, chunk):
        yield i, np.zeros((channels, min(chunk, stop - i)), np.float32)


MIN_CLIP_FRAMES = 2 * FPS  # 2 s: shorter clips hold too few gestures to align


def checked_audio(info: MediaInfo, context_frames: int | None) -> np.ndarray:
    """The clip's sound at 16 kHz, after checking that the clip is long enough to align
    (MIN_CLIP_FRAMES, or `context_frames` when more) and not silent (`sync`, `speaker`)."""
    needed = max(MIN_CLIP_FRAMES, context_frames or 0)
    if info.num_frames < needed:
        raise MediaError(
            f"{info.path.name} has {info.num_frames / FPS:.2f} s of picture with sound; "
            f"{needed / FPS:.2f} s are needed: give a longer clip"
            + (" or a smaller --context-frames" if context_frames else ""))
    audio = read_audio(info)
    if is_silent(audio):
        raise MediaError(f"the sound of {info.path.name} is silent: give a video with speech")
    return audio
