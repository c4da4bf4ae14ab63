"""Every file gestsync writes gets the permissions a plain open() gives it (the umask)."""

import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

import synth
from gestsync import media, outputs, prepare


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_path_follows_the_umask(tmp_path, umask):
    target = tmp_path / "a.json"
    with outputs.atomic_path(target) as tmp:
        tmp.write_text("{}")
    assert _mode(target) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_corrected_copy_follows_the_umask(tmp_path, umask):
    src = synth.make_video(tmp_path / "src.mp4", seconds=1.0, size=(64, 48))
    out = media.shift_audio_copy(src, tmp_path / "src_synced.mp4", 3)
    assert _mode(out) == 0o666 & ~umask


def test_prepare_outputs_follow_the_umask(tmp_path, umask):
    folder = tmp_path / "in"
    folder.mkdir()
    synth.make_video(folder / "clip.mp4", seconds=2.0, size=(64, 48))
    out = tmp_path / "out"
    prepare.prepare([folder], prepare.PrepareOptions(out_dir=str(out)))
    files = [out / "manifest.jsonl", *(out / "videos").glob("*.json")]
    assert len(files) == 2
    assert {_mode(p) for p in files} == {0o666 & ~umask}
    assert {_mode(p) for p in (out / "clips").iterdir()} == {0o777 & ~umask}


def test_checkpoint_follows_the_umask(tmp_path, umask):
    import torch

    from gestsync import train

    model = torch.nn.Linear(2, 2)
    model.config = SimpleNamespace(to_dict=dict)  # what checkpoint_payload reads
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "last.pth"
    train.save_checkpoint(path, model, optimizer, torch.amp.GradScaler(enabled=False), 1, 0,
                          train.TrainConfig(data=str(tmp_path), out=str(tmp_path)))
    assert _mode(path) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]
