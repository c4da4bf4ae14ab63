"""Settings shared by every test."""

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def empty_model_cache(tmp_path_factory):
    """An empty model cache for the whole run: `--model auto` never finds a model the
    developer downloaded, so it means the built-in estimator unless a test caches one.
    Set in os.environ (not monkeypatch) so servers started as subprocesses inherit it."""
    before = os.environ.get("GESTSYNC_HOME")
    os.environ["GESTSYNC_HOME"] = str(tmp_path_factory.mktemp("gestsync-home"))
    yield
    if before is None:
        os.environ.pop("GESTSYNC_HOME", None)
    else:
        os.environ["GESTSYNC_HOME"] = before


# ------------------------------------------------------------------ shared test helpers
# Test modules import these (`from conftest import ...`): one copy of each.

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"  # ../shared/samples
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/samples absent")


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """`gestsync ARGV...` in this process: (exit status, stdout, stderr)."""
    from gestsync.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_failure(code: int, err: str, out_dir: Path, match: str) -> None:
    """A user error as promised: status 2, one `gestsync: error:` line naming the problem,
    no traceback, nothing left in the output folder."""
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("gestsync: error: "), err
    assert "Traceback" not in err
    assert match in lines[0], lines[0]
    assert not out_dir.exists()  # nothing partial left behind
