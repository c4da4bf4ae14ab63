"""The Makefile's one-command targets: a video name reaches gestsync as typed."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _fake_bin(folder: Path) -> Path:
    """A stand-in `gestsync` (newer than what setup depends on) that writes its arguments."""
    folder.mkdir()
    fake = folder / "gestsync"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "<%s>\\n" "$a"; done\n')
    fake.chmod(0o755)
    return folder


@pytest.mark.parametrize("name", ["my clip $x.mp4", "it's \"quoted\" $(echo no).mp4"])
def test_make_sync_passes_the_video_name_as_typed(tmp_path, name):
    bin_dir = _fake_bin(tmp_path / "bin")
    run = subprocess.run(["make", "-s", "-C", str(ROOT), "sync", f"VIDEO={name}",
                          f"BIN={bin_dir}", "ARGS=--json"], capture_output=True, text=True,
                         env={**os.environ, "MAKEFLAGS": ""})
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["<sync>", f"<{name}>", "<--json>"]


def test_make_sync_without_a_video_says_how(tmp_path):
    run = subprocess.run(["make", "-s", "-C", str(ROOT), "sync", f"BIN={_fake_bin(tmp_path / 'bin')}"],
                         capture_output=True, text=True, env={**os.environ, "MAKEFLAGS": ""})
    assert run.returncode != 0 and "usage: make sync VIDEO=" in run.stderr


def test_make_test_shows_skip_reasons():
    run = subprocess.run(["make", "-n", "-C", str(ROOT), "test"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert any("pytest" in line and " -rs" in line for line in run.stdout.splitlines()), run.stdout
