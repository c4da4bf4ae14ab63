"""Job requests: checked once when made, the same from every door (API, command line, corpus,
web page), picklable; one Syncer cache per process; only our own errors are the user's."""

from __future__ import annotations

import argparse
import pickle

import pytest

from conftest import run_cli
from gestsync import cues, weights
from gestsync.cli import build_parser
from gestsync.errors import UsageError
from gestsync.results import OffsetResult
from gestsync.speaker import SpeakerRequest
from gestsync.sync import SyncRequest


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args([str(a) for a in argv])


def test_the_command_line_and_the_api_build_the_same_request():
    sync = SyncRequest.from_args(_args("sync", "a.mp4", "--model", "builtin", "--cues", "face",
                                       "--segments", "10", "--grid", "5"), workers=3)
    assert sync == SyncRequest.of(model="builtin", cues="face", segment_seconds=10.0, grid=5,
                                  workers=3)
    assert sync.cues is cues.FACE and sync.model.model == weights.resolve("builtin")
    speaker = SpeakerRequest.from_args(_args("speaker", "a.mp4", "--model", "builtin",
                                             "--per-frame", "--workers", "2"), workers=4)
    assert speaker == SpeakerRequest.of(model="builtin", per_frame=True, workers=2)
    for request in (sync, speaker):
        assert pickle.loads(pickle.dumps(request)) == request  # sent to worker processes


@pytest.mark.parametrize("kind, options, match", [
    (SyncRequest, {"segment_seconds": 1}, "--segments must be at least 2 s"),
    (SyncRequest, {"context_frames": 0}, "--context-frames must be at least 1"),
    (SyncRequest, {"max_offset": -1}, "--max-offset must be 0 or more"),
    (SyncRequest, {"grid": 0}, "--grid must be 1 or more"),
    (SyncRequest, {"pose_stride": 0}, "--pose-stride must be 1 or more"),
    (SyncRequest, {"workers": 0}, "--workers must be 1 or more"),
    (SyncRequest, {"cues": "lips"}, "--cues 'lips' is not one of body, face+body, face"),
    (SyncRequest, {"precision": "fp8"}, "unknown precision 'fp8'"),
    (SyncRequest, {"model": "no-such.pth"}, "--model no-such.pth: no such file"),
    (SpeakerRequest, {"max_people": 0}, "--max-people must be at least 1"),
    (SpeakerRequest, {"min_track_frames": 3}, "--min-track-frames must be at least 25"),
    (SpeakerRequest, {"scene_threshold": 0}, "--scene-threshold > 0"),
    (SpeakerRequest, {"workers": 0}, "--workers must be 1 or more")])
def test_a_bad_option_is_refused_when_the_request_is_made(kind, options, match):
    with pytest.raises(UsageError, match=match.replace("+", r"\+")):
        kind.of(**options)


def test_one_syncer_per_model_per_process(tmp_path, monkeypatch):
    from gestsync import syncer

    monkeypatch.setattr(syncer, "_KEPT", {})
    builtin = weights.ModelSpec("builtin")
    assert syncer.syncer_for(builtin) is syncer.syncer_for(weights.ModelSpec("builtin"))
    loads = []
    monkeypatch.setattr(syncer, "open_model", lambda spec: loads.append(spec) or
                        weights.Loaded(spec, None))
    path = tmp_path / "own.pth"
    path.write_bytes(b"1")
    own = weights.ModelSpec(path)
    first = syncer.syncer_for(own)
    assert syncer.syncer_for(own) is first and len(loads) == 1
    path.write_bytes(b"22")  # the file changed: loaded again, the old one let go
    assert syncer.syncer_for(own) is not first and len(loads) == 2
    assert len(syncer._KEPT) <= syncer.KEPT


def _uncertain(video, request, loaded, **outputs) -> OffsetResult:
    return OffsetResult(video=str(video), offset_frames=3, offset_seconds=0.12, confidence=0.2,
                        uncertain=True, bootstrap_agreement=0.3, method=weights.BUILTIN,
                        num_frames=100, duration_seconds=4.0, scored_frames=(0, 100),
                        candidates=[], scores=[])


def test_quiet_means_no_advice_either(tmp_path, capsys, monkeypatch):
    from gestsync import syncer

    monkeypatch.setenv("GESTSYNC_HOME", str(tmp_path / "home"))  # no model cached
    monkeypatch.setattr(syncer, "run_sync", _uncertain)
    video = tmp_path / "a.mp4"
    code, _, err = run_cli(capsys, "sync", video, "--model", "builtin", "--no-video", "--quiet")
    assert code == 0 and err == ""
    code, _, err = run_cli(capsys, "sync", video, "--model", "builtin", "--no-video")
    assert code == 0 and "gestsync models download" in err


def test_an_internal_value_error_is_not_the_users(tmp_path, capsys, monkeypatch):
    """Only our own errors exit 2; a ValueError from deep inside is an internal error."""
    from gestsync import syncer

    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(syncer, "run_sync", broken)
    video = tmp_path / "a.mp4"
    code, _, err = run_cli(capsys, "sync", video, "--model", "builtin", "--no-video")
    assert code == 1 and "internal error: ValueError: operands could not" in err
    assert "GESTSYNC_DEBUG=1" in err and "Traceback" not in err
    monkeypatch.setenv("GESTSYNC_DEBUG", "1")
    with pytest.raises(ValueError, match="broadcast"):  # the traceback, on request
        run_cli(capsys, "sync", video, "--model", "builtin", "--no-video")


def test_an_internal_value_error_in_a_corpus_or_on_the_page(tmp_path, monkeypatch):
    from gestsync import app, corpus, syncer

    assert corpus.error_line(ValueError("bad shape")) == "ValueError: bad shape"
    assert corpus.error_line(UsageError("--cues: fix it")) == "--cues: fix it"

    def broken(*args, **kwargs):
        raise ValueError("bad shape")

    monkeypatch.setattr(syncer, "run_sync", broken)
    monkeypatch.setattr(app, "check_limits", lambda video, cfg: None)
    video = tmp_path / "a.mp4"
    video.write_bytes(b"")
    cfg, ws = app.ServeConfig(model="builtin"), app.Workspace(tmp_path / "ws")
    try:
        page = app.run_job(cfg, ws, app.JobRequest(str(video), None, app.MODE_SYNC, None),
                           lambda *a: None)
    finally:
        ws.close()
    assert page.summary.startswith("**Internal error:** ValueError: bad shape")
