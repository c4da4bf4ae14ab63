"""Training on a tiny generated dataset (CPU, seconds): the loss falls, resume is exact,
2 gloo processes equal 1 process with the doubled batch, checkpoints load for inference."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from gestsync.checkpoint import load_model, read_checkpoint
from gestsync.keypoint_model import KeypointModelConfig, KeypointSyncModel
from gestsync.prepare import write_wav
from gestsync.train import LAST, TrainConfig, train
from conftest import SAMPLES, needs_samples

FPS, RATE = 25, 16000
FRAMES = 200  # 8 s clips: room for the 175-frame span of 4 windows 1 s apart
TINY = {"hidden": 16, "layers": 1, "embed_dim": 16, "dropout": 0.0}


def _person() -> np.ndarray:
    """(33, 4) keypoints of a standing person in a 640 x 360 frame, all visible."""
    k = np.ones((33, 4), np.float32)
    k[:, 0] = 320 + np.linspace(-60, 60, 33)
    k[:, 1] = 80 + np.arange(33) * 6.0
    return k


def make_dataset(root: Path, clips: int = 8, val: int = 2, seed: int = 0) -> Path:
    """Clips whose wrists jump when the sound has a burst: a learnable matching task."""
    rng = np.random.default_rng(seed)
    rows = []
    (root / "clips").mkdir(parents=True)
    for c in range(clips + val):
        events = np.sort(rng.choice(np.arange(5, FRAMES - 5), size=12, replace=False))
        kp = np.repeat(_person()[None], FRAMES, axis=0)
        audio = 0.01 * rng.standard_normal(FRAMES * RATE // FPS).astype(np.float32)
        for e in events:
            kp[e:e + 3, 15:23, 1] -= 40  # hands up for 3 frames
            audio[e * 640:(e + 3) * 640] += 0.5 * rng.standard_normal(3 * 640).astype(np.float32)
        name = f"clip{c:02d}"
        np.savez(root / "clips" / f"{name}.npz", keypoints=kp, detected=np.ones(FRAMES, bool),
                 boxes=np.tile([200, 60, 440, 300], (FRAMES, 1)).astype(np.float32),
                 crop_boxes=np.tile([107, 60, 533, 300], (FRAMES, 1)), frames=np.arange(FRAMES),
                 frame_size=np.array([640, 360]))
        write_wav(root / "clips" / f"{name}.wav", audio)
        rows.append({"kind": "clip", "clip_id": name, "split": "val" if c >= clips else "train",
                     "video": f"clips/{name}.mp4", "audio": f"clips/{name}.wav",
                     "keypoints": f"clips/{name}.npz", "num_frames": FRAMES})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one thread is faster, and far faster on a busy machine (no thread fights)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"))


def tiny(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), variant="keypoint", steps=6, batch_size=2, lr=3e-3,
                val_every=0, ckpt_every=3, log_every=1, loader_workers=0, model=TINY)
    return TrainConfig(**{**base, **kw})


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(out / LAST)["state_dict"]


def _losses(out: Path) -> list[float]:
    lines = (out / "train.csv").read_text().splitlines()[1:]
    return [float(ln.split(",")[2]) for ln in lines]


def test_loss_falls_and_checkpoint_loads_for_inference(data, tmp_path):
    config = tiny(data, tmp_path / "run", steps=40, ckpt_every=40, val_every=40)
    metrics = train(config, device="cpu", quiet=True)
    losses = _losses(tmp_path / "run")
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.2, losses
    assert {"val_loss", "val_top1", "val_top2", "val_offset_acc"} <= set(metrics)
    ckpt = read_checkpoint(tmp_path / "run" / LAST)
    assert {"state_dict", "optimizer", "global_step", "global_epoch", "gestsync_config"} <= set(ckpt)
    assert ckpt["global_step"] == 40
    model = load_model(tmp_path / "run" / LAST, device="cpu")
    assert isinstance(model, KeypointSyncModel) and not model.training
    assert model.config == KeypointModelConfig(**TINY)


def test_resume_equals_uninterrupted(data, tmp_path):
    full = tiny(data, tmp_path / "full", model={**TINY, "dropout": 0.2})  # dropout: RNG must resume too
    train(full, device="cpu", quiet=True)
    half = replace(full, out=str(tmp_path / "half"), steps=3)
    train(half, device="cpu", quiet=True)
    train(replace(half, steps=6), resume=True, device="cpu", quiet=True)
    for k, v in _weights(tmp_path / "full").items():
        torch.testing.assert_close(_weights(tmp_path / "half")[k], v, rtol=0, atol=0, msg=k)
    assert _losses(tmp_path / "half") == _losses(tmp_path / "full")
    assert read_checkpoint(tmp_path / "half" / LAST)["optimizer"]["state"]


@pytest.mark.slow
def test_two_gloo_processes_equal_one_with_doubled_batch(data, tmp_path):
    one = tiny(data, tmp_path / "one", steps=3, batch_size=4)
    train(one, device="cpu", quiet=True)
    args = ["--data", str(data), "--out", str(tmp_path / "two"), "--variant", "keypoint", "--steps", "3",
            "--batch-size", "2", "--lr", "3e-3", "--val-every", "0", "--ckpt-every", "3", "--log-every", "1",
            "--device", "cpu", "--quiet", "--loader-workers", "0"] + [f"--model={k}={v}" for k, v in TINY.items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "gestsync", "train", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    # equal up to float rounding (summation order), which Adam's step normalisation amplifies
    for k, v in _weights(tmp_path / "one").items():
        torch.testing.assert_close(_weights(tmp_path / "two")[k], v, rtol=0, atol=5e-5, msg=k)
    assert np.allclose(_losses(tmp_path / "two"), _losses(tmp_path / "one"), rtol=0, atol=1e-4)


def test_sound_windows_equal_whole_clip_features(data, tmp_path):
    from gestsync.audio import log_mel, mel_windows
    from gestsync.prepare import read_manifest, read_wav
    from gestsync.train import ClipWindows

    rows = read_manifest(data, "train")
    windows = ClipWindows(rows, tiny(data, tmp_path))
    for epoch in (0, 1, None):
        _, sound = windows[(3, epoch)]
        mel = log_mel(read_wav(rows[3]["audio"]))
        starts = [s for s in range(FRAMES - 24) if torch.allclose(mel_windows(mel, [s])[0], sound[0], atol=1e-4)]
        assert len(starts) == 1
        expected = mel_windows(mel, [starts[0] + 50 * w for w in range(4)])
        torch.testing.assert_close(sound, expected, rtol=0, atol=1e-4)


def test_too_few_clips_and_bad_options(data, tmp_path):
    from gestsync.errors import GestsyncError

    with pytest.raises(GestsyncError, match="fewer than one global batch"):
        train(tiny(data, tmp_path / "x", batch_size=100), device="cpu", quiet=True)
    with pytest.raises(ValueError, match="variant"):
        tiny(data, tmp_path / "x", variant="depth")


def test_a_checkpoint_that_does_not_fit_gets_our_error(data, tmp_path, capsys):
    """--init and --resume weights go through check_state_dict: the keys that do not fit
    are named in one line (exit 2), not torch's RuntimeError."""
    from gestsync.checkpoint import checkpoint_payload
    from gestsync.cli import main
    from gestsync.errors import CheckpointError
    from gestsync.train import build, load_state

    wider = KeypointSyncModel(KeypointModelConfig(**{**TINY, "hidden": 2 * TINY["hidden"]}))
    torch.save(checkpoint_payload(wider), tmp_path / "wider.pth")
    config = tiny(data, tmp_path / "run", init=str(tmp_path / "wider.pth"))
    with pytest.raises(CheckpointError, match=r"does not fit the GestSync keypoint model .* wrongly shaped keys"):
        build(config, torch.device("cpu"))
    model = build(replace(config, init=None), torch.device("cpu"))
    optimizer = torch.optim.AdamW(model.parameters())
    with pytest.raises(CheckpointError, match=r"wider\.pth does not fit .* wrongly shaped keys"):
        load_state(tmp_path / "wider.pth", model, optimizer, torch.amp.GradScaler("cpu", enabled=False))
    argv = ["train", "--data", str(data), "--out", str(tmp_path / "cli"), "--steps", "2", "--batch-size", "2",
            "--quiet", "--init", str(tmp_path / "wider.pth")] + [f"--model={k}={v}" for k, v in TINY.items()]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gestsync: error: ") and "wrongly shaped keys" in err and "\n" not in err, err


def test_cli_train_and_sync_checkpoint_options(data, tmp_path):
    from gestsync.cli import main

    out = tmp_path / "cli"
    argv = ["train", "--data", str(data), "--out", str(out), "--steps", "2", "--batch-size", "2",
            "--val-every", "0", "--quiet", "--model", "hidden=16", "--model", "embed_dim=8"]
    assert main(argv) == 0
    assert read_checkpoint(out / LAST)["gestsync_config"]["embed_dim"] == 8
    assert main(["train", "--out", str(out), "--resume", "--steps", "3", "--quiet"]) == 0
    assert read_checkpoint(out / LAST)["global_step"] == 3
    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2


def _rgb_dataset(root: Path, frames: int = 60) -> Path:
    """Two 480 x 270 clips (moving noise) with sound, for the RGB variant."""
    import av
    from fractions import Fraction

    make_dataset(root, clips=2, val=0)
    rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    rng = np.random.default_rng(1)
    for row in rows:
        with av.open(str(root / row["video"]), "w") as out:
            stream = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
            stream.width, stream.height, stream.pix_fmt = 480, 270, "yuv420p"
            stream.time_base = stream.codec_context.time_base = Fraction(1, FPS)
            base = rng.integers(0, 256, (270, 480, 3), dtype=np.uint8)
            for i in range(frames):
                picture = av.VideoFrame.from_ndarray(np.roll(base, 3 * i, axis=1), format="rgb24")
                picture.pts = i
                out.mux(stream.encode(picture))
            out.mux(stream.encode(None))
        row["num_frames"] = frames
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.mark.slow
def test_rgb_variant_fine_tunes_from_published_format(tmp_path):
    from gestsync.model import GestSyncModel

    data = _rgb_dataset(tmp_path / "data")
    published = GestSyncModel()
    state = {f"module.{k}": v for k, v in published.state_dict().items()}  # as saved from DataParallel
    torch.save({"state_dict": state, "optimizer": {}, "global_step": 0, "global_epoch": 0}, tmp_path / "init.pth")
    config = tiny(data, tmp_path / "run", variant="rgb", steps=1, batch_size=1, windows=2, gap=0, model={},
                  init=str(tmp_path / "init.pth"))
    metrics = train(config, device="cpu", quiet=True)
    assert np.isfinite(metrics["loss"])
    model = load_model(tmp_path / "run" / LAST, device="cpu")
    assert isinstance(model, GestSyncModel)
    tuned = model.state_dict()
    assert not torch.equal(tuned["net_vid.conv1.weight"], published.state_dict()["net_vid.conv1.weight"])
    assert torch.equal(tuned["lstm.weight_ih_l0"], published.state_dict()["lstm.weight_ih_l0"])  # unused: frozen


@needs_samples
@pytest.mark.slow
def test_sync_and_speaker_accept_a_keypoint_checkpoint(data, tmp_path):
    from gestsync.speaker import find_speakers
    from gestsync.sync import find_offset

    train(tiny(data, tmp_path / "run", steps=2), device="cpu", quiet=True)
    result = find_offset(SAMPLES / "sync_sample_3.mp4", checkpoint=tmp_path / "run" / LAST, max_offset=10)
    assert result.method == "model" and len(result.candidates) == 21 and -10 <= result.offset_frames <= 10
    speakers = find_speakers(SAMPLES / "asd_sample_2.mp4", checkpoint=tmp_path / "run" / LAST)
    assert speakers.method == "model" and speakers.tracks
