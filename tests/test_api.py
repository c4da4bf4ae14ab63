"""The Python API as documented: `progress=None` defaults and what `dir(gestsync)` lists."""

import pytest

import gestsync
import synth
from gestsync.errors import GestsyncError


def test_dir_lists_the_public_api():
    names = dir(gestsync)
    assert set(gestsync.__all__) <= set(names)
    for name in gestsync.__all__:
        assert getattr(gestsync, name) is not None


@pytest.mark.parametrize("api", ["find_offset", "find_speakers"])
def test_progress_none_means_no_progress(tmp_path, api):
    """The hook is called from the first stage on; None must not be called. The clip has
    nobody in it, so the run ends with a user error."""
    clip = synth.make_video(tmp_path / "shapes.mp4", seconds=3.0, size=(160, 120))
    with pytest.raises(GestsyncError):  # before: TypeError, None is not callable
        getattr(gestsync, api)(clip, progress=None)
