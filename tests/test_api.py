"""The Python API as documented: its names, a light import, `progress=None` defaults."""

import subprocess
import sys

import pytest

import gestsync
import synth
from gestsync.errors import GestsyncError


def test_each_public_name_is_its_home_modules_object():
    """The lazy names resolve to what their modules define; dir() lists them; a typo fails."""
    from gestsync import audio, checkpoint, errors, results, speaker, sync, syncer

    homes = {"GestsyncError": errors, "OffsetResult": results, "SpeakerResult": results,
             "Syncer": syncer, "find_offset": sync, "find_speakers": speaker,
             "load_model": checkpoint, "log_mel": audio}
    assert sorted(gestsync.__all__) == sorted(homes)
    for name, module in homes.items():
        assert getattr(gestsync, name) is getattr(module, name), name
    assert set(gestsync.__all__) <= set(dir(gestsync))
    with pytest.raises(AttributeError, match="no attribute 'find_offsets'"):
        gestsync.find_offsets


def test_import_is_light():
    """`import gestsync` loads neither torch nor mediapipe (the names above load on use)."""
    code = "import sys, gestsync; print(sorted({'torch', 'mediapipe', 'cv2'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


@pytest.mark.parametrize("api", ["find_offset", "find_speakers"])
def test_progress_none_means_no_progress(tmp_path, api):
    """The hook is called from the first stage on; None must not be called. The clip has
    nobody in it, so the run ends with a user error."""
    clip = synth.make_video(tmp_path / "shapes.mp4", seconds=3.0, size=(160, 120))
    with pytest.raises(GestsyncError):  # before: TypeError, None is not callable
        getattr(gestsync, api)(clip, progress=None)
