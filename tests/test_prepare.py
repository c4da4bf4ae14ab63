"""gestsync prepare on generated clips: 2 videos at once, Ray, bad videos, resume after a kill,
the clip files and manifest; real samples when ../shared/samples exists."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import av
import numpy as np
import pytest

import synth
from gestsync import prepare
from gestsync.prepare import PrepareOptions, list_videos, read_manifest, split_of, video_id
from conftest import SAMPLES, needs_samples


def make_inputs(folder: Path, n: int = 3, seconds: float = 2.0) -> Path:
    """n tiny synthetic clips (nobody in them) and one file that is not a video."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        synth.make_video(folder / f"clip{i}.mp4", seconds=seconds, size=(64, 48))
    (folder / "broken.mp4").write_text("not a video\n")
    return folder


def records(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (out / "videos").glob("*.json")}


def test_two_local_jobs_log_bad_videos_and_rerun_skips(tmp_path):
    inputs = make_inputs(tmp_path / "in")
    options = PrepareOptions(out_dir=str(tmp_path / "out"))
    summary = prepare.prepare([inputs], options, jobs=2)
    assert (summary.videos, summary.processed, summary.failed) == (4, 4, 1)
    rows = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    bad = [r for r in rows if r["kind"] == "video" and r["status"] == "error"]
    assert len(bad) == 1 and "broken.mp4" in bad[0]["error"] and "not a readable video" in bad[0]["error"]
    ok = [r for r in rows if r["kind"] == "video" and r["status"] == "ok"]
    assert len(ok) == 3 and all(r["num_clips"] == 0 and r["duration"] == 2.0 for r in ok)  # nobody there
    again = prepare.prepare([inputs], options, jobs=2)
    assert (again.skipped, again.processed) == (4, 0)
    retried = prepare.prepare([inputs], PrepareOptions(out_dir=str(tmp_path / "out"), retry_failed=True))
    assert (retried.skipped, retried.processed, retried.failed) == (3, 1, 1)


def test_ray_engine_runs_the_same_code_path(tmp_path):
    pytest.importorskip("ray")
    inputs = make_inputs(tmp_path / "in", n=2)
    local = prepare.prepare([inputs], PrepareOptions(out_dir=str(tmp_path / "local")))
    ray_run = prepare.prepare([inputs], PrepareOptions(out_dir=str(tmp_path / "ray")), engine="ray", jobs=2)
    assert (ray_run.processed, ray_run.failed) == (local.processed, local.failed) == (3, 1)
    strip = ("seconds", "host", "pid", "finished_at")
    for vid, record in records(tmp_path / "local").items():
        other = records(tmp_path / "ray")[vid]
        assert {k: v for k, v in record.items() if k not in strip} == {k: v for k, v in other.items() if k not in strip}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (os.mkfifo)")
def test_killed_prepare_resumes_without_redoing_finished_videos(tmp_path):
    """Killed after its 2nd record, whatever the machine's speed: the 3rd video of its list
    is a named pipe that nobody writes, so the run waits there until the test kills it."""
    inputs = make_inputs(tmp_path / "in", n=6, seconds=3.0)
    os.mkfifo(tmp_path / "gate.mp4")
    listed = tmp_path / "list.txt"
    listed.write_text("in/clip0.mp4\nin/broken.mp4\ngate.mp4\nin/clip1.mp4\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "gestsync", "prepare", str(listed), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert _wait_for_records(out, 2, proc), "the run ended or stalled before its 2nd record"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the session of the process this test started
        proc.wait()
    before = records(out)
    assert sorted(Path(r["source"]).name for r in before.values()) == ["broken.mp4", "clip0.mp4"]
    summary = prepare.prepare([inputs], PrepareOptions(out_dir=str(out)))
    assert (summary.skipped, summary.processed) == (2, 5)
    after = records(out)
    assert all(after[vid]["finished_at"] == r["finished_at"] for vid, r in before.items())
    assert not list((out / "clips").glob("*.partial-*"))


def _wait_for_records(out: Path, count: int, proc: subprocess.Popen, timeout: float = 120) -> bool:
    """Poll until `out` holds `count` video records (False if the run ends or time runs out)."""
    deadline = time.monotonic() + timeout
    while len(records(out)) < count:
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_old_workers_spelling_names_jobs(tmp_path, capsys):
    """prepare's `--workers N` (videos at once) became `--jobs N`: one meaning everywhere."""
    from gestsync.cli import main

    inputs = make_inputs(tmp_path / "in", n=1)
    code = main(["prepare", str(inputs), "--out", str(tmp_path / "out"), "--workers", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--jobs 2" in err[0], err
    assert not (tmp_path / "out").exists()


def test_a_bad_prepare_option_is_the_users_error(tmp_path, capsys):
    """Exit 2 and one line, as every option of ours (it was an internal error, exit 1)."""
    from gestsync.cli import main

    code = main(["prepare", str(tmp_path), "--out", str(tmp_path / "out"), "--val-fraction", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--val-fraction must be in [0, 1]" in err[0], err
    assert not (tmp_path / "out").exists()


def test_a_second_prepare_on_the_same_folder_is_refused(tmp_path, capsys):
    """One run at a time writes an output folder (as the corpus journal); the first run's
    lock goes with it."""
    from gestsync.cli import main

    inputs = make_inputs(tmp_path / "in", n=1)
    out = tmp_path / "out"
    held = prepare.record_folder(out).open()  # a run under way
    try:
        code = main(["prepare", str(inputs), "--out", str(out), "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "another run is writing" in err[0], err
        assert "wait for it to finish, or give another output folder" in err[0]
        assert sorted(p.name for p in out.rglob("*")) == [".lock", "videos"]  # nothing written
    finally:
        held.close()
    again = prepare.record_folder(out).open()  # released: the next run may start
    again.close()


def _poses(info, options):
    """Stand-in for the people stage: one person swinging an arm, on every frame."""
    from gestsync import scan

    k = np.ones((33, 4), np.float32)
    k[:, 0] = 160 + np.linspace(-40, 40, 33)
    k[:, 1] = 20 + np.arange(33) * 4.5
    frames = []
    for f in range(info.num_frames):
        p = k.copy()
        p[15:23, 1] -= 20 * np.sin(f / 3)
        frames.append(p[None])
    box = np.array([[110, 0, 210, 180, 0.9]], np.float32)  # the detector's person box
    boxes = [box if f % scan.DETECT_STRIDE == 0 else None for f in range(info.num_frames)]
    found = scan.Findings(boxes, frames, np.zeros((info.num_frames, 11, 20), np.uint8), (16, 16))
    half = info.num_frames // 2  # one scene cut in the middle
    return found, [(0, half), (half, info.num_frames)]


def test_clips_masks_wav_keypoints_and_manifest(tmp_path, monkeypatch):
    monkeypatch.setattr(prepare, "scan_video", _poses)
    inputs = tmp_path / "in"
    inputs.mkdir()
    synth.make_video(inputs / "talk.mp4", seconds=6.0, size=(320, 180), audio_rate=44100)
    (tmp_path / "list.txt").write_text("# one video\nin/talk.mp4\n")
    summary = prepare.prepare([tmp_path / "list.txt"], PrepareOptions(out_dir=str(tmp_path / "out"), parquet=True))
    assert summary.clips == 2  # one track per scene
    clips = read_manifest(tmp_path / "out")
    assert read_manifest(tmp_path / "out" / "manifest.parquet") == clips
    first = clips[0]
    assert first["split"] == split_of(first["video_id"], 0.1) and first["num_frames"] == 75
    assert first["visible_hands_ratio"] == 1.0 and first["scene"] == 0 and clips[1]["start_frame"] == 75
    with av.open(first["video"]) as c:
        pictures = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(pictures) == 75 and pictures[0].shape == (270, 480, 3)
    assert pictures[0][:100].max() < 30  # no face found: the top band is black
    with wave.open(first["audio"]) as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (16000, 1, 75 * 640)
    with np.load(first["keypoints"], allow_pickle=False) as z:
        assert z["keypoints"].shape == (75, 33, 4) and z["crop_boxes"].shape == (75, 4)
        assert z["posed"].all() and (z["boxes"] == [110, 0, 210, 180]).all()
        side = z["crop_boxes"][:, 2:] - z["crop_boxes"][:, :2]
        assert (side == 180).all()  # the authors' square around the person box


def test_inputs_ids_and_split(tmp_path):
    make_inputs(tmp_path / "in" / "sub", n=1)
    found = list_videos([tmp_path / "in"])
    assert [p.name for p in found] == ["broken.mp4", "clip0.mp4"]
    assert video_id(found[0]) == video_id(found[0]) != video_id(found[1])
    splits = [split_of(f"v{i}", 0.2) for i in range(2000)]
    assert 0.17 < splits.count("val") / 2000 < 0.23
    from gestsync.errors import UsageError

    with pytest.raises(UsageError, match="val-fraction"):  # exit 2, one line: the user's
        PrepareOptions(out_dir="x", val_fraction=2)


@needs_samples
@pytest.mark.slow
def test_real_sample_gives_a_masked_clip(tmp_path):
    summary = prepare.prepare([SAMPLES / "sync_sample_3.mp4"], PrepareOptions(out_dir=str(tmp_path)))
    clips = read_manifest(tmp_path)
    assert summary.failed == 0 and len(clips) == 1
    assert clips[0]["face_found_ratio"] > 0.9 and clips[0]["visible_hands_ratio"] > 0.5
    assert clips[0]["num_frames"] >= 120


@needs_samples
@pytest.mark.slow
def test_prepared_crops_are_what_the_model_is_fed(tmp_path):
    """Training sees what inference sees: a prepared clip's frames are the masked crops that
    `sync --model` / `speaker --model` feed the network for that person (H.264 aside)."""
    from gestsync import media, people
    from gestsync.crops import masked_crops

    prepare.prepare([SAMPLES / "sync_sample_3.mp4"], PrepareOptions(out_dir=str(tmp_path)))
    [clip] = read_manifest(tmp_path)
    with np.load(clip["keypoints"]) as z:
        track = people.Track(frames=z["frames"], boxes=z["boxes"], keypoints=z["keypoints"],
                             detected=z["detected"], frame_size=tuple(z["frame_size"]),
                             posed=z["posed"])
    fed = list(masked_crops(media.probe(SAMPLES / "sync_sample_3.mp4"), track, track.start,
                            track.length))
    with av.open(clip["video"]) as c:
        written = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(written) == len(fed) == clip["num_frames"]
    for a, b in zip(fed, written):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 3  # crf 18 compression only
        mask_a, mask_b = (_black_rows(x) for x in (a, b))
        assert abs(mask_a - mask_b) <= 2 and mask_a > 50  # the same face mask


def _black_rows(rgb: np.ndarray) -> int:
    """Rows from the top that are black (the face mask)."""
    dark = (rgb.max(axis=(1, 2)) < 40)
    return int(np.argmin(dark)) if not dark.all() else len(dark)


@needs_samples
@pytest.mark.slow
def test_quiet_prepare_prints_only_its_summary(tmp_path):
    run = subprocess.run([sys.executable, "-m", "gestsync", "prepare", str(SAMPLES / "sync_sample_3.mp4"),
                          "--out", str(tmp_path / "out"), "--quiet"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""  # no MediaPipe log lines
    assert len(run.stdout.splitlines()) == 1 and "1 clips" in run.stdout
