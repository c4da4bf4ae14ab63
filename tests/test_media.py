"""Tests of gestsync.media on tiny synthetic clips (tests/synth.py), plus real clips from
shared/samples when that folder exists."""

from __future__ import annotations

import math
import os
from pathlib import Path

import av
import numpy as np
import pytest

import synth
from gestsync import media
from gestsync.errors import MediaError
from gestsync.media import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from conftest import SAMPLES

CLICK_TOL_S = 0.002  # where a decoded click may land, s (lossy codecs smear it slightly)

# (suffix, video codec, audio codec): one clip per combination
COMBOS = [
    (".mp4", "h264", "aac"), (".mp4", "hevc", "aac"), (".mp4", "mpeg4", "mp3"),
    (".mp4", "h264", "opus"), (".mkv", "vp9", "opus"), (".mkv", "h264", "pcm"),
    (".mkv", "mpeg4", "mp3"), (".avi", "mpeg4", "pcm"), (".mov", "h264", "pcm"),
    (".mov", "h264", "aac"), (".webm", "vp9", "opus"), (".webm", "vp8", "opus"),
    (".mp4", "av1", "aac"),
]


def need(*codecs: str) -> None:
    """Skip the test when this PyAV wheel lacks an encoder."""
    for codec in codecs:
        if not synth.has_encoder(codec):
            pytest.skip(f"this PyAV wheel has no {codec} encoder")


def grid_indices(times: list[float], start: float, count: int) -> list[int]:
    """Expected source frame for each 25 fps grid point: the last one shown by then."""
    times = np.asarray(times)
    return [int(np.searchsorted(times, start + k / FPS + 1e-6, side="right") - 1) for k in range(count)]


def shown_indices(info: media.MediaInfo, **kw) -> list[int]:
    return [synth.read_index(img) for img in media.iter_frames(info, **kw)]


# ----------------------------------------------------------------------------- probe/read


@pytest.mark.parametrize("suffix,vcodec,acodec", COMBOS)
def test_formats_map_30fps_to_grid_and_click(tmp_path, suffix, vcodec, acodec):
    need(vcodec, acodec)
    path = synth.make_video(tmp_path / f"clip{suffix}", seconds=2.0, fps=30, vcodec=vcodec,
                            acodec=acodec, clicks=[1.0])
    info = media.probe(path)
    assert (info.width, info.height, info.rotation) == (64, 48, 0)
    assert info.video_codec == vcodec and info.audio_codec.startswith(acodec[:3])
    assert info.video_fps == pytest.approx(30, rel=0.01)
    assert info.start == pytest.approx(0, abs=1e-3)
    assert info.num_frames == 50
    assert shown_indices(info) == grid_indices(synth.frame_times(2.0, 30), info.start, 50)
    audio = media.read_audio(info)
    assert audio.dtype == np.float32 and audio.shape == (50 * SAMPLES_PER_FRAME,)
    assert synth.click_time(audio, SAMPLE_RATE) == pytest.approx(1.0, abs=CLICK_TOL_S)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_variable_frame_rate_mapped_by_timestamp(tmp_path, suffix):
    path = synth.make_video(tmp_path / f"vfr{suffix}", seconds=2.0, fps=20, vfr=True)
    info = media.probe(path)
    times = synth.frame_times(2.0, 20, vfr=True)
    assert 48 <= info.num_frames <= 50  # the last picture's duration is the muxer's guess
    expected = grid_indices(times, info.start, info.num_frames)
    assert len(set(expected)) < len(times)  # some source frames really are dropped...
    assert len(set(expected)) < len(expected)  # ...and some repeated
    assert shown_indices(info) == expected


def test_video_starting_after_audio(tmp_path):
    path = synth.make_video(tmp_path / "late.mp4", seconds=2.0, fps=25, video_start=0.85,
                            clicks=[1.5])
    info = media.probe(path)
    assert info.video_start == pytest.approx(0.85, abs=1e-3)
    assert info.audio_start == pytest.approx(0.0, abs=1e-3)
    assert info.start == info.video_start
    assert info.video_end == pytest.approx(2.85, abs=1e-3)
    assert info.num_frames == math.ceil((2.0 - 0.85) * FPS)
    assert shown_indices(info)[:5] == [0, 1, 2, 3, 4]
    audio = media.read_audio(info)
    assert synth.click_time(audio, SAMPLE_RATE) == pytest.approx(1.5 - 0.85, abs=CLICK_TOL_S)


def test_windows_seek_and_match_full_read(tmp_path):
    path = synth.make_video(tmp_path / "long.mp4", seconds=6.0, fps=30, clicks=[4.2])
    info = media.probe(path)
    full = shown_indices(info)
    assert shown_indices(info, start_frame=80, num_frames=20) == full[80:100]  # seeks
    assert shown_indices(info, start_frame=3, num_frames=4) == full[3:7]
    audio = media.read_audio(info)
    window = media.read_audio(info, start_frame=100, num_frames=10)  # seeks: 4.0-4.4 s
    assert window.shape == (10 * SAMPLES_PER_FRAME,)
    np.testing.assert_allclose(window, audio[100 * 640 : 110 * 640], atol=1e-4)
    assert synth.click_time(window, SAMPLE_RATE) == pytest.approx(0.2, abs=CLICK_TOL_S)


def test_reading_past_the_end_pads(tmp_path):
    info = media.probe(synth.make_video(tmp_path / "c.mp4", seconds=1.0))
    frames = list(media.iter_frames(info, start_frame=20, num_frames=10))
    audio = media.read_audio(info, start_frame=20, num_frames=10)
    assert len(frames) == 10 and synth.read_index(frames[-1]) == 24  # last picture held
    assert audio.shape == (6400,) and not audio[-640:].any()  # silence after the end


def test_resize_and_fresh_arrays(tmp_path):
    info = media.probe(synth.make_video(tmp_path / "c.mp4", seconds=1.0, fps=10, size=(128, 96)))
    frames = list(media.iter_frames(info, size=(64, 48), num_frames=5))
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in frames)
    assert [synth.read_index(f) for f in frames] == [0, 0, 0, 1, 1]
    frames[0][:] = 0
    assert synth.read_index(frames[1]) == 0 and frames[1].any()  # repeats are copies
    with pytest.raises(ValueError):
        next(media.iter_frames(info, start_frame=-1))


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_from_display_matrix(tmp_path, rotation):
    path = synth.make_video(tmp_path / "rot.mp4", seconds=0.5, size=(64, 48), rotation=rotation)
    info = media.probe(path)
    assert info.rotation == rotation
    upright = np.rot90(synth.picture(3, (64, 48)), k=rotation // 90)  # CCW, as FFmpeg shows it
    assert (info.height, info.width) == upright.shape[:2]
    img = list(media.iter_frames(info, num_frames=4))[3]
    assert np.abs(img.astype(int) - upright).mean() < 2
    small = next(media.iter_frames(info, size=(info.width // 2, info.height // 2)))
    assert small.shape == (info.height // 2, info.width // 2, 3)
    copy = media.probe(media.shift_audio_copy(path, tmp_path / "copy.mp4", 1))
    assert (copy.rotation, copy.width, copy.height) == (rotation, info.width, info.height)


def test_is_silent(tmp_path):
    quiet = media.probe(synth.make_video(tmp_path / "q.mp4", seconds=1.0, silent=True))
    loud = media.probe(synth.make_video(tmp_path / "l.mp4", seconds=1.0))
    assert media.is_silent(media.read_audio(quiet))
    assert not media.is_silent(media.read_audio(loud))
    rng = np.random.default_rng(0)
    assert media.is_silent(np.zeros(0, np.float32))
    assert media.is_silent(rng.normal(0, 10 ** (-70 / 20), 16000).astype(np.float32))
    assert not media.is_silent(rng.normal(0, 10 ** (-50 / 20), 16000).astype(np.float32))


# ----------------------------------------------------------------------------- errors


def _truncated(tmp_path: Path, name: str, **kw) -> Path:
    full = synth.make_video(tmp_path / f"full_{name}", seconds=3.0, **kw)
    data = full.read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: len(data) // 2])
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _no_video_packets(tmp_path: Path) -> Path:
    """An mkv whose video stream exists but holds no pictures."""
    path = tmp_path / "nopictures.mkv"
    with av.open(str(path), "w") as out:
        video = synth._add_video(out, "h264", 25, (64, 48), 0)
        sound = synth._add_audio(out, "aac", 16000, 1)
        synth._write_audio(out, sound, synth.sound(1.0, 16000), 0.0)
        out.mux(video.encode(None))
    return path


ERROR_CASES = {
    "missing": (lambda d: d / "nothing.mp4", "does not exist"),
    "folder": (lambda d: d, "is a folder"),
    "text renamed .mp4": (lambda d: _write(d / "notes.mp4", b"hello\n" * 50), "not a readable video"),
    "empty file": (lambda d: _write(d / "empty.mp4", b""), "not a readable video"),
    "truncated mp4": (lambda d: _truncated(d, "cut.mp4"), "not a readable video"),
    "truncated faststart mp4": (lambda d: _truncated(d, "cutfs.mp4", faststart=True), "truncated"),
    "truncated mkv": (lambda d: _truncated(d, "cut.mkv"), "truncated"),
    "video only": (lambda d: synth.make_video(d / "v.mp4", audio=False), "no audio stream"),
    "audio only": (lambda d: synth.make_video(d / "a.mp4", video=False), "no video stream"),
    "no pictures": (_no_video_packets, "no decodable video frames"),
    "no overlap": (lambda d: synth.make_video(d / "apart.mp4", seconds=1.0, video_start=1.5),
                   "do not overlap"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_probe_errors(tmp_path, case):
    make, words = ERROR_CASES[case]
    with pytest.raises(MediaError, match=words) as err:
        media.probe(make(tmp_path))
    message = str(err.value)
    assert "\n" not in message and ":" in message  # one line: problem, then the fix


# ----------------------------------------------------------------------------- writing


def video_packets(path: Path) -> list[tuple]:
    """(bytes, pts s, dts s, keyframe) of every picture packet."""
    with av.open(str(path)) as c:
        return [(bytes(p), p.pts * p.time_base, p.dts * p.time_base, p.is_keyframe)
                for p in c.demux(c.streams.video[0]) if p.size]


def assert_shifted(src: Path, out: Path, shift_frames: int) -> None:
    """Same picture packets; the click moved by shift_frames / 25 s; same span."""
    a, b = media.probe(src), media.probe(out)
    assert video_packets(out) == video_packets(src)
    assert (b.width, b.height, b.num_frames) == (a.width, a.height, a.num_frames)
    assert b.video_start == pytest.approx(a.video_start, abs=1e-3)
    assert b.audio_start == pytest.approx(a.audio_start, abs=1e-3)
    slack = 1024 / b.audio_rate if out.suffix in (".mkv", ".webm") else 0  # no end trim there
    assert a.audio_end - 1e-3 <= b.audio_end <= a.audio_end + slack + 1e-3
    moved = (synth.click_time(media.read_audio(b), SAMPLE_RATE)
             - synth.click_time(media.read_audio(a), SAMPLE_RATE))
    assert moved == pytest.approx(shift_frames / FPS, abs=0.001)  # within 16 samples


@pytest.mark.parametrize("shift", [-7, 3, 20])
def test_shift_audio_copy_moves_click_exactly(tmp_path, shift):
    src = synth.make_video(tmp_path / "src.mp4", seconds=3.0, fps=30, clicks=[1.3],
                           audio_rate=44100, channels=2)
    out = media.shift_audio_copy(src, tmp_path / "out.mp4", shift)
    assert_shifted(src, out, shift)


@pytest.mark.parametrize("suffix,vcodec,acodec,out_suffix", [
    (".mkv", "h264", "pcm", ".mp4"), (".avi", "mpeg4", "pcm", ".mkv"),
    (".webm", "vp9", "opus", ".webm"), (".mp4", "h264", "aac", ".mov"),
])
def test_shift_audio_copy_containers(tmp_path, suffix, vcodec, acodec, out_suffix):
    need(vcodec, acodec)
    src = synth.make_video(tmp_path / f"src{suffix}", seconds=2.0, vcodec=vcodec, acodec=acodec,
                           clicks=[0.9])
    out = media.shift_audio_copy(src, tmp_path / f"out{out_suffix}", -5)
    assert_shifted(src, out, -5)


def test_codec_that_mp4_cannot_hold(tmp_path):
    need("vp8", "opus")
    src = synth.make_video(tmp_path / "src.webm", seconds=1.0, vcodec="vp8", acodec="opus",
                           clicks=[0.5])
    info = media.probe(src)
    assert media.output_suffix(info) == ".mkv"
    with pytest.raises(MediaError, match="cannot hold vp8 video"):
        media.write_synced(info, tmp_path / "out.mp4", 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.webm"]
    out = media.write_synced(info, tmp_path / "out.mkv", 2)
    assert_shifted(src, out, -2)


def test_write_synced_undoes_offset(tmp_path):
    src = synth.make_video(tmp_path / "src.mp4", seconds=3.0, clicks=[1.0], video_start=0.4)
    shifted = media.shift_audio_copy(src, tmp_path / "late.mp4", 6)  # sound 6 frames late
    fixed = media.write_synced(media.probe(shifted), tmp_path / "fixed.mp4", 6)
    assert_shifted(src, fixed, 0)


def test_write_errors_leave_nothing(tmp_path, monkeypatch):
    src = synth.make_video(tmp_path / "src.mp4", seconds=1.0)
    info = media.probe(src)
    with pytest.raises(MediaError, match="does not exist"):
        media.write_synced(info, tmp_path / "no" / "out.mp4", 0)
    with pytest.raises(MediaError, match="output name ending in"):
        media.write_synced(info, tmp_path / "out.gif", 0)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")

    def broken(*args, **kwargs):
        yield from ()
        raise MediaError("disk full")

    monkeypatch.setattr(media, "_shifted_packets", broken)
    with pytest.raises(MediaError, match="disk full"):
        media.write_synced(info, out, 2)
    assert out.read_bytes() == b"previous result"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "src.mp4"]


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs Linux /sys (unwritable even for root)")
def test_unwritable_folder(tmp_path):
    info = media.probe(synth.make_video(tmp_path / "src.mp4", seconds=1.0))
    with pytest.raises(MediaError, match="cannot write to folder"):
        media.write_synced(info, "/sys/out.mp4", 0)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to any folder")
def test_read_only_folder(tmp_path):
    info = media.probe(synth.make_video(tmp_path / "src.mp4", seconds=1.0))
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    with pytest.raises(MediaError, match="cannot write to folder"):
        media.write_synced(info, folder / "out.mp4", 0)
    assert not list(folder.iterdir())


# ----------------------------------------------------------------------------- real clips


def sample(name: str) -> Path:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"sample clip {path} not present")
    return path


@pytest.mark.slow
def test_real_clip_video_starts_late():
    info = media.probe(sample("ageitgey__face_recognition__short_hamilton_clip.mp4"))
    assert info.video_start == pytest.approx(0.852, abs=0.002)
    assert info.start == info.video_start and info.audio_start < 0.05
    assert (info.width, info.height, info.video_fps) == (640, 360, pytest.approx(29.97, abs=0.01))
    assert info.num_frames == 230  # up to the end of the sound, 10.016 s
    first = next(media.iter_frames(info, size=(320, 180)))
    assert first.shape == (180, 320, 3)


@pytest.mark.slow
def test_real_clip_edit_list_frames_counted():
    info = media.probe(sample("sync_sample_1.mp4"))  # 53 leading packets hidden by an edit list
    assert info.num_frames == 223 and info.video_start == 0.0
    assert len(media.read_audio(info)) == 223 * SAMPLES_PER_FRAME


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sync_sample_2.mp4",
                                  "ageitgey__face_recognition__short_hamilton_clip.mp4"])
def test_real_clip_shift_copy(tmp_path, name):
    src = sample(name)
    out = media.shift_audio_copy(src, tmp_path / "shifted.mp4", 4)
    a, b = media.probe(src), media.probe(out)
    assert video_packets(out) == video_packets(src)
    assert (b.num_frames, b.start) == (a.num_frames, pytest.approx(a.start, abs=1e-3))
    x, y = media.read_audio(a), media.read_audio(b)
    lag = 4 * SAMPLES_PER_FRAME
    lags = np.arange(lag - 40, lag + 41)
    score = [np.dot(x[: 4 * SAMPLE_RATE], y[k : k + 4 * SAMPLE_RATE]) for k in lags]
    assert lags[int(np.argmax(score))] == lag


@pytest.mark.parametrize("offset_frames,uncertain,always,written", [
    (5, False, False, True), (5, True, False, False), (5, True, True, True),
    (0, False, False, False), (0, False, True, True)])
def test_corrected_copy_only_for_a_sure_nonzero_offset(tmp_path, offset_frames, uncertain,
                                                       always, written):
    """An uncertain answer is not applied (the copy would correct by a guess), nor is 0;
    always_write writes it anyway. offset.json and scores.png are always written."""
    from gestsync import sync

    info = media.probe(synth.make_video(tmp_path / "in.mp4", seconds=2.0))
    lags = list(range(-10, 11))
    result = sync.OffsetResult(
        video=str(info.path), offset_frames=offset_frames, offset_seconds=offset_frames / 25,
        confidence=0.2 if uncertain else 0.8, uncertain=uncertain, bootstrap_agreement=0.5,
        method="builtin", num_frames=info.num_frames, duration_seconds=2.0,
        scored_frames=(0, info.num_frames), candidates=lags, scores=[0.0] * len(lags))
    out = tmp_path / "out"
    sync._write_outputs(result, info, out, write_video=True, always_write=always,
                        progress=lambda *a: None)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["offset.json", "scores.png"] + ["in_synced.mp4"] * written)
    assert ("synced_video" in result.outputs) == written
