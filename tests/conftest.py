"""Settings shared by every test."""

import os

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
