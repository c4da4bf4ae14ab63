"""`gestsync sync` end to end: bad input gets one clear line and status 2, real clips work."""

import contextlib
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

import synth
from gestsync.cli import main
from conftest import SAMPLES, assert_clean_failure, needs_samples, run_cli


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def out(tmp_path):
    return tmp_path / "results"


def test_missing_file(capsys, tmp_path, out):
    code, _, err = run_cli(capsys, "sync", str(tmp_path / "nope.mp4"), "--out", str(out), "--quiet")
    assert_clean_failure(code, err, out, "does not exist")


def test_text_renamed_mp4(capsys, tmp_path, out):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 50)
    before = _digest(fake)
    code, _, err = run_cli(capsys, "sync", str(fake), "--out", str(out), "--quiet")
    assert_clean_failure(code, err, out, "notes.mp4")
    assert _digest(fake) == before


def test_truncated_file(capsys, tmp_path, out):
    clip = synth.make_video(tmp_path / "full.mp4", seconds=4.0, size=(128, 96))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    code, _, err = run_cli(capsys, "sync", str(cut), "--out", str(out), "--quiet")
    assert_clean_failure(code, err, out, "cut.mp4")


def test_no_audio_stream(capsys, tmp_path, out):
    clip = synth.make_video(tmp_path / "mute.mp4", seconds=3.0, audio=False)
    code, _, err = run_cli(capsys, "sync", str(clip), "--out", str(out), "--quiet")
    assert_clean_failure(code, err, out, "audio")


def test_no_video_stream(capsys, tmp_path, out):
    clip = synth.make_video(tmp_path / "sound.mp4", seconds=3.0, video=False)
    code, _, err = run_cli(capsys, "sync", str(clip), "--out", str(out), "--quiet")
    assert_clean_failure(code, err, out, "video")


def test_silent_audio(capsys, tmp_path, out):
    clip = synth.make_video(tmp_path / "quiet.mp4", seconds=3.0, silent=True)
    code, _, err = run_cli(capsys, "sync", str(clip), "--out", str(out), "--quiet")
    assert_clean_failure(code, err, out, "silent")


def test_clip_shorter_than_the_context(capsys, tmp_path, out):
    clip = synth.make_video(tmp_path / "short.mp4", seconds=3.0)
    code, _, err = run_cli(capsys, "sync", str(clip), "--context-frames", "200", "--out", str(out),
                        "--quiet")
    assert_clean_failure(code, err, out, "--context-frames")
    clip = synth.make_video(tmp_path / "tiny.mp4", seconds=1.0)
    code, _, err = run_cli(capsys, "sync", str(clip), "--out", str(out), "--quiet")
    assert_clean_failure(code, err, out, "longer clip")


def test_no_person(capsys, tmp_path, out):
    clip = synth.make_video(tmp_path / "shapes.mp4", seconds=3.0, size=(320, 240))
    code, _, err = run_cli(capsys, "sync", str(clip), "--out", str(out), "--quiet")
    assert_clean_failure(code, err, out, "no person")


def test_folder_without_videos(capsys, tmp_path, out):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("hi")
    code, _, err = run_cli(capsys, "sync", str(empty), "--out", str(out), "--quiet")
    assert_clean_failure(code, err, out, "no videos in folder")


def test_unwritable_output_folder(capsys, tmp_path):
    clip = synth.make_video(tmp_path / "c.mp4", seconds=3.0)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli(capsys, "sync", str(clip), "--out", str(blocker / "sub"), "--quiet")
    assert_clean_failure(code, err, blocker / "sub", "choose another --out")
    if Path("/sys").is_dir():  # unwritable even for root
        code, _, err = run_cli(capsys, "sync", str(clip), "--out", "/sys/gestsync-out", "--quiet")
        assert_clean_failure(code, err, Path("/sys/gestsync-out"), "cannot write")


def test_bad_option_values(capsys, tmp_path, out):
    clip = synth.make_video(tmp_path / "c.mp4", seconds=3.0)
    code, _, err = run_cli(capsys, "sync", str(clip), "--grid", "0", "--out", str(out), "--quiet")
    assert_clean_failure(code, err, out, "--grid")
    code, _, err = run_cli(capsys, "sync", str(clip), "--max-offset", "abc")
    assert code == 2 and "Traceback" not in err and "--max-offset" in err


def test_help_and_version(capsys):
    assert main(["--help"]) == 0
    assert "sync" in capsys.readouterr().out
    assert main(["--version"]) == 0


def _video_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(video=0) if p.size]


SAMPLE = SAMPLES / "sync_sample_3.mp4"
SAMPLE_ARGS = ["--context-frames", "100", "--workers", "1"]  # the API's default: one process


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """`gestsync sync --json --always-write` on a real clip, once: (result, output folder)."""
    if not SAMPLES.is_dir():
        pytest.skip("../shared/samples absent")
    before = _digest(SAMPLE)
    out = tmp_path_factory.mktemp("sample") / "res"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["sync", str(SAMPLE), "--out", str(out), "--json", "--quiet",
                     "--always-write", *SAMPLE_ARGS])
    assert code == 0
    assert _digest(SAMPLE) == before  # the input is never touched
    return json.loads(stdout.getvalue()), out


def _best_scored(result: dict) -> set[int]:
    scored = [(s, c) for s, c in zip(result["scores"], result["candidates"]) if s is not None]
    top = max(s for s, _ in scored)
    return {c for s, c in scored if s == top}


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.slow
def test_sync_real_clip_writes_every_output(sample_run):
    result, out = sample_run
    assert isinstance(result["offset_frames"], int)
    assert result["candidates"] == list(range(-50, 51))
    assert result["offset_frames"] in _best_scored(result)  # the answer has the top score
    assert result["offset_seconds"] == pytest.approx(result["offset_frames"] / 25)
    assert 0 <= result["confidence"] <= 1
    assert len(result["scores"]) == 101
    assert result["scored_frames"][1] - result["scored_frames"][0] == 100
    assert sorted(p.name for p in out.iterdir()) == ["offset.json", "scores.png",
                                                     "sync_sample_3_synced.mp4"]
    assert json.loads((out / "offset.json").read_text())["offset_frames"] == result["offset_frames"]
    assert _video_packets(out / "sync_sample_3_synced.mp4") == _video_packets(SAMPLE)  # bit-exact
    assert {p.stat().st_mode & 0o777 for p in out.iterdir()} == {0o666 & ~_umask()}


def _sound_lag(later: np.ndarray, earlier: np.ndarray) -> int:
    """Samples by which `later` is delayed against `earlier` (peak of their correlation)."""
    from scipy.signal import correlate, correlation_lags

    corr = correlate(later, earlier, mode="full", method="fft")
    return int(correlation_lags(len(later), len(earlier))[np.argmax(corr)])


@pytest.mark.slow
def test_corrected_copy_moves_the_sound_by_the_answer(sample_run):
    from gestsync import media

    result, out = sample_run
    before = media.read_audio(media.probe(SAMPLE))
    after = media.read_audio(media.probe(out / "sync_sample_3_synced.mp4"))
    expected = -result["offset_frames"] * media.SAMPLES_PER_FRAME  # 640 samples per frame
    assert media.SAMPLE_RATE == 16000 and media.SAMPLES_PER_FRAME == 640
    assert abs(_sound_lag(after, before) - expected) <= 3


@pytest.mark.slow
@needs_samples
def test_several_videos_go_on_after_a_failure(capsys, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a_good.mp4").symlink_to(SAMPLES / "sync_sample_3.mp4")
    (folder / "b_bad.mp4").write_text("not a video")
    code, stdout, err = run_cli(capsys, "sync", str(folder), "--out", str(tmp_path / "res"),
                             "--json", "--quiet", "--no-video")
    assert code == 1
    lines = [json.loads(l) for l in stdout.splitlines()]
    assert [Path(l["video"]).name for l in lines] == ["a_good.mp4", "b_bad.mp4"]
    assert "offset_frames" in lines[0] and "error" in lines[1]
    assert (tmp_path / "res" / "a_good" / "offset.json").is_file()
    assert not (tmp_path / "res" / "b_bad").exists()


@pytest.mark.slow
def test_python_api_matches_the_cli(sample_run):
    import gestsync

    cli, _ = sample_run
    api = json.loads(json.dumps(gestsync.find_offset(SAMPLE, context_frames=100).to_dict()))
    assert api.pop("outputs") == {}  # no out_dir: nothing written
    assert cli.pop("outputs")
    assert api == cli  # offset, confidence, every score, spans...: the same run
    assert np.isfinite([s for s in api["scores"] if s is not None]).all()


@pytest.mark.slow
@needs_samples
def test_checkpoint_reproduces_the_authors_grid(capsys, tmp_path):
    """--checkpoint with a generated published-format file, the authors' 21 candidates."""
    import torch

    import reference_weights

    ckpt = tmp_path / "model_rgb.pth"
    torch.save(reference_weights.published_checkpoint(reference_weights.reference_state_dict()), ckpt)
    code, stdout, err = run_cli(capsys, "sync", str(SAMPLES / "sync_sample_3.mp4"), "--checkpoint",
                             str(ckpt), "--grid", "5", "--context-frames", "50", "--json",
                             "--quiet", "--no-video", "--out", str(tmp_path / "res"))
    assert code == 0, err
    result = json.loads(stdout)
    assert result["method"] == "model"
    assert result["candidates"] == list(range(-50, 51, 5))
    assert result["scored_frames"] == [50, 100]
    assert result["offset_frames"] in _best_scored(result)  # one of them: the top-scored
    assert all(s is not None for s in result["scores"])


def test_corrupt_checkpoint_is_a_clear_error(capsys, tmp_path):
    clip = synth.make_video(tmp_path / "c.mp4", seconds=3.0)
    bad = tmp_path / "model.pth"
    bad.write_text("not a checkpoint")
    out = tmp_path / "res"
    code, _, err = run_cli(capsys, "sync", str(clip), "--checkpoint", str(bad), "--out", str(out),
                        "--quiet")
    assert_clean_failure(code, err, out, "model.pth")


@pytest.mark.slow
@needs_samples
def test_parallel_pose_detection_matches_one_process(monkeypatch):
    from gestsync import media, scan

    info = media.probe(SAMPLES / "sync_sample_3.mp4")
    serial = scan.find_people(info, 2, workers=1).poses
    monkeypatch.setattr(scan, "CHUNK_FRAMES", 64)  # two chunks, one per process
    parallel = scan.find_people(info, 2, workers=2).poses
    assert len(parallel) == len(serial) == info.num_frames
    same_count = [len(a) == len(b) for a, b in zip(serial, parallel)]
    assert np.mean(same_count) > 0.95
    diffs = [np.abs(a[0, :, :2] - b[0, :, :2]).mean() for a, b in zip(serial, parallel)
             if len(a) and len(b)]
    assert np.median(diffs) < 2.0  # pixels: the same person, tracked the same way


@pytest.mark.slow
@needs_samples
def test_segments_in_the_json(capsys, tmp_path):
    code, stdout, err = run_cli(capsys, "sync", str(SAMPLES / "sync_sample_3.mp4"), "--segments",
                             "2", "--json", "--quiet", "--no-video", "--out", str(tmp_path / "r"))
    assert code == 0, err
    result = json.loads(stdout)
    segments = result["segments"]
    assert [s["start_seconds"] for s in segments] == [0, 2, 4]  # 5.04 s: the 1 s tail stands
    assert segments[-1]["end_seconds"] == pytest.approx(result["num_frames"] / 25)
    assert all(0 <= s["confidence"] <= 1 for s in segments)
    assert set(result["drift"]) == {"drifting", "frames_per_minute"}
    code, _, err = run_cli(capsys, "sync", str(SAMPLES / "sync_sample_3.mp4"), "--segments", "1",
                        "--quiet", "--no-video", "--out", str(tmp_path / "r2"))
    assert code == 2 and "--segments" in err


def test_summary_says_why_no_corrected_video_was_written():
    from gestsync import sync
    from gestsync.cli import _summary_line

    result = sync.OffsetResult(
        video="a.mp4", offset_frames=7, offset_seconds=0.28, confidence=0.2, uncertain=True,
        bootstrap_agreement=0.3, method="builtin", num_frames=250, duration_seconds=10.0,
        scored_frames=(0, 250), candidates=[7], scores=[1.0], sure_at=0.9,
        outputs={"json": "r/offset.json", "plot": "r/scores.png"})
    assert _summary_line(result) == ("a.mp4 [built-in estimator]: offset +7 frames (+0.28 s), confidence 0.20 "
                                     "(uncertain); no corrected video written (a copy needs "
                                     "confidence 0.90 with these cues; --always-write writes it anyway)")
    assert _summary_line(result, video_wanted=False).endswith("(uncertain)")  # --no-video
    result.competing_offsets = [-17, 30]  # the lags that competed are named
    assert _summary_line(result, video_wanted=False).endswith("(uncertain: +7 or -17 or +30)")
    result.sure_at = None  # a cue whose answers are never sure enough
    assert "no confidence of these cues was right 95% of the time" in _summary_line(result)
    result.outputs["synced_video"] = "r/a_synced.mp4"
    assert _summary_line(result).endswith("confidence 0.20 (uncertain: +7 or -17 or +30)")


def test_segments_with_no_sure_one_say_what_would_help():
    """Measured on the samples (docs/accuracy.md#confidence): the body alone never makes a
    sure segment, the lips do, and longer segments are sure more often."""
    from gestsync import sync
    from gestsync.cli import _summary_line

    segment = {"start_seconds": 0.0, "end_seconds": 5.0, "offset_frames": 3, "confidence": 0.4,
               "sure": False, "competing_offsets": [-9]}
    result = sync.OffsetResult(
        video="a.mp4", offset_frames=3, offset_seconds=0.12, confidence=0.4, uncertain=True,
        bootstrap_agreement=0.5, method="builtin", num_frames=250, duration_seconds=10.0,
        scored_frames=(0, 250), candidates=[3], scores=[1.0], segments=[segment, segment],
        drift={"drifting": None, "frames_per_minute": None})
    line = _summary_line(result, video_wanted=False)
    assert "0.0-5.0 s: +3 frames, confidence 0.40 (uncertain: +3 or -9)" in line
    assert line.endswith("drift: unknown (fewer than two sure segments); the gestures alone are "
                         "never sure: try --cues face+body (the lips' motion too)")
    result.cues = {"face": {"frames": 200, "weight": 0.9}, "body": {"frames": 250, "weight": 0.1}}
    assert _summary_line(result).endswith("longer segments are sure more often: try --segments "
                                          "10 or longer")


def test_eval_shifts_may_start_with_a_minus_sign(capsys, tmp_path):
    from gestsync.cli import build_parser

    assert build_parser().parse_args(["eval", "--shifts", "-10:10"]).shifts == "-10:10"
    assert build_parser().parse_args(["eval", "--shifts", "-20:-5:5", "--quiet"]).shifts == "-20:-5:5"
    code, _, err = run_cli(capsys, "eval", "--shifts", "-10:10", "--samples", str(tmp_path))
    assert code == 2 and "no MANIFEST.tsv" in err  # parsed; the empty folder is the problem
    code, _, err = run_cli(capsys, "eval", "--shifts", "--quiet")
    assert code == 2 and "--shifts" in err and "expected one argument" in err


def test_eval_stopped_with_sigterm_removes_its_temporary_folder(tmp_path):
    """A samples folder of clips with nobody in them: each is skipped after its people pass,
    seconds of work in all, so the signal comes while eval works in its temporary folder."""
    samples = tmp_path / "samples"
    samples.mkdir()
    synth.make_video(samples / "c00.mp4", seconds=20.0, size=(64, 48))
    names = [f"c{i:02d}.mp4" for i in range(30)]
    for name in names[1:]:
        (samples / name).symlink_to(samples / names[0])
    (samples / "MANIFEST.tsv").write_text("file\tpeople\toffset_frames_25fps\tsource\tnotes\n"
                                          + "".join(f"{n}\t1\t0\tsynthetic\t\n" for n in names))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "gestsync", "eval", "--samples", str(samples),
                             "--quiet"], env={**os.environ, "TMPDIR": str(tmp)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp.glob("gestsync-eval-*")) and proc.poll() is None:
            assert time.monotonic() < deadline, "eval never made its temporary folder"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err  # stopped, not finished
    assert err.splitlines()[-1] == "gestsync: stopped (SIGTERM)"
    assert "Traceback" not in err
    assert list(tmp.glob("gestsync-eval-*")) == []


def test_a_sigterm_a_library_swallowed_still_stops_the_run(monkeypatch, capsys):
    """A SIGTERM caught on the way (as a library's import fallback may do) and followed by
    another error is reported as the stop it was: status 143, no "internal error"."""
    from gestsync import cli

    def run(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises here
        except BaseException:  # noqa: BLE001 - what the library does
            pass
        raise TypeError("a half-initialised module fails later")

    real = cli.build_parser

    def parser():
        p = real()
        for action in p._subparsers._group_actions:
            action.choices["models"].set_defaults(run=run)
        return p

    monkeypatch.setattr(cli, "build_parser", parser)
    code, err = main(["models"]), capsys.readouterr().err
    assert code == 128 + signal.SIGTERM and "stopped (SIGTERM)" in err and "internal" not in err
    monkeypatch.setattr(cli, "build_parser", real)
    assert main(["models", "--json"]) == 0  # the next run starts with no stop recorded


@pytest.mark.slow
@needs_samples
def test_sure_answers_of_shifted_copies_imply_one_original_offset(tmp_path):
    """Copies of one clip with the sound moved by different amounts: every copy that gets a
    corrected video (a sure answer) implies the same offset of the original, within 2
    frames. The clip is one whose face+body answers are sure at most shifts
    (docs/accuracy.md), so that the test compares answers rather than passing empty."""
    from gestsync import media
    from gestsync.sync import find_offset

    clip = SAMPLES / "clone95__Speech-to_lips__obama.mp4"  # 7.4 s; sure at all 41 shifts
    implied = {}
    for shift in (-13, 4, 17):
        copy = media.shift_audio_copy(clip, tmp_path / f"copy{shift:+d}.mp4", shift)
        result = find_offset(copy, model="builtin", cues="face+body", out_dir=tmp_path / f"out{shift:+d}")
        if "synced_video" in result.outputs:
            implied[shift] = result.offset_frames - shift
    assert len(implied) >= 2, implied
    assert max(implied.values()) - min(implied.values()) <= 2, implied
