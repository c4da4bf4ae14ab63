"""`<name>_speakers.mp4`: the original video and sound with every tracked person boxed and
the speaker highlighted and labelled with the score.

The picture is decoded frame by frame at its own rate and size, drawn on, and re-encoded
with libx264 keeping each frame's timestamp; the sound is copied packet for packet when
mp4 holds its codec (AAC, MP3), otherwise re-encoded to AAC. Pure PyAV, no shell.
"""

from __future__ import annotations

import heapq
import math
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from . import media
from .progress import Progress, progress_hook

if TYPE_CHECKING:
    from .results import SpeakerResult

COPY_AUDIO_CODECS = ("aac", "mp3")  # copied as they are; anything else becomes AAC
X264_OPTIONS = {"preset": "veryfast", "crf": "20"}  # near-transparent, about 2x real time at 720p
SPEAKER_RGB = (40, 220, 60)  # green box for the speaker
OTHER_RGB = (235, 235, 235)  # light grey boxes for everyone else
LINE_FRACTION = 1 / 360  # box line width per pixel of frame height (2 px at 720p)
FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_FRACTION = 1 / 1200  # font scale per pixel of frame height (0.6 at 720p)


def _labels(result: SpeakerResult) -> dict[int, str]:
    """Short text per track id: its id and score (z in brackets)."""
    out = {}
    for t in result.tracks:
        score = "n/a" if t.score is None else f"{t.score:+.2f}"
        z = "" if t.z is None else f" (z {t.z:+.1f})"
        out[t.id] = f"#{t.id} {score}{z}"
    return out


def draw(rgb: np.ndarray, k: int, result: SpeakerResult, labels: dict[int, str]) -> None:
    """Draw, in place on upright uint8 RGB `rgb`, the boxes of 25 fps frame k."""
    h = rgb.shape[0]
    width = max(1, round(h * LINE_FRACTION))
    scale = max(0.35, h * FONT_FRACTION)
    speaker = result.speaker_at(k)
    for t in result.tracks:
        if not t.start_frame <= k < t.end_frame:
            continue
        x0, y0, x1, y1 = t.boxes[k - t.start_frame]
        speaking = t.id == speaker
        colour = SPEAKER_RGB if speaking else OTHER_RGB
        cv2.rectangle(rgb, (x0, y0), (x1, y1), colour, width * (3 if speaking else 1))
        text = ("SPEAKING " if speaking else "") + labels[t.id]
        (tw, th), base = cv2.getTextSize(text, FONT, scale, width)
        ty = max(y0, th + base + 2)
        cv2.rectangle(rgb, (x0, ty - th - base - 2), (x0 + tw + 4, ty), colour, -1)
        cv2.putText(rgb, text, (x0 + 2, ty - base), FONT, scale, (0, 0, 0), width, cv2.LINE_AA)


def write_speaker_video(info: media.MediaInfo, result: SpeakerResult, out_path: Path,
                        progress: Progress | None = None) -> Path:
    """Write the annotated copy of `info`'s clip to out_path (.mp4, H.264 + sound)."""
    progress = progress_hook(progress)
    with media._open(info.path) as vsrc, media._open(info.path) as asrc:
        vin, ain = vsrc.streams.video[0], asrc.streams.audio[0]
        vin.thread_type = "AUTO"
        try:
            with av.open(str(out_path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
                vout = _video_stream(out, vin, info)
                copy = media._codec_name(ain) in COPY_AUDIO_CODECS
                aout = out.add_stream_from_template(ain) if copy else media._audio_stream(out, "mp4", info)
                video = media._timed(_drawn_packets(vsrc, vin, vout, info, result, progress), 0)
                sound = (p for p in media._demux(asrc, ain, info.path) if p.size) if copy else \
                    media._shifted_packets(asrc, ain, aout, info, 0.0)
                for _, kind, packet in heapq.merge(video, media._timed(sound, 1), key=lambda x: x[:2]):
                    packet.stream = vout if kind == 0 else aout
                    out.mux(packet)
        except av.FFmpegError as e:
            raise media.MediaError(f"cannot write {out_path.name} for {info.path.name} ({e})") from e
    return out_path


def _video_stream(out, vin, info: media.MediaInfo):
    """libx264 stream at the source's rate and upright size (even, as yuv420p needs)."""
    rate = vin.average_rate or vin.guessed_rate or media.FPS
    stream = out.add_stream("libx264", rate=rate, options=X264_OPTIONS)
    stream.width, stream.height = info.width // 2 * 2, info.height // 2 * 2
    stream.pix_fmt = "yuv420p"
    stream.time_base = vin.time_base
    stream.codec_context.time_base = vin.time_base
    return stream


def _drawn_packets(src, vin, vout, info: media.MediaInfo, result: SpeakerResult,
                   progress: Progress) -> Iterator[av.Packet]:
    """Encoded packets of every source picture, drawn on, with its own timestamp."""
    labels, scaler = _labels(result), VideoReformatter()
    count = max(1, round((info.video_end - info.video_start) * info.video_fps))
    progress("writing video", 0, count)
    for i, frame in enumerate(media._decoded(src, vin, info.path)):
        if frame.time is None:
            continue
        rgb = media._to_rgb(frame, None, info.rotation, scaler)[:vout.height, :vout.width]
        k = math.floor((frame.time - info.start + media.PTS_SLACK) * media.FPS)
        if 0 <= k < info.num_frames:
            draw(rgb, k, result, labels)
        new = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        new.pts, new.time_base = frame.pts, frame.time_base
        yield from vout.encode(new)
        progress("writing video", min(i + 1, count), count)
    yield from vout.encode(None)
    progress("writing video", count, count)
