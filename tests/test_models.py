"""`gestsync models`: download (with resume), verification, the cache, and `--model`.

A loopback HTTP server (127.0.0.1 only, stopped after the module) serves a random-weight
checkpoint in the published format; random weights say nothing about accuracy.
"""

import hashlib
import http.server
import io
import json
import socket
import threading
from pathlib import Path

import pytest
import torch

import reference_weights
import synth
from gestsync import weights
from gestsync.cli import main
from gestsync.errors import GestsyncError
from conftest import SAMPLES, needs_samples

NAME = "gestsync-rgb"
DROP_AFTER = 5 * 1024 * 1024 + 123  # bytes sent before the connection drops, first time only


class _Handler(http.server.BaseHTTPRequestHandler):
    timeout = 10  # a stuck client cannot hold the server

    def do_GET(self):  # noqa: N802 (http.server's name)
        route = self.server.routes.get(self.path)
        self.server.seen.append((self.path, self.headers.get("Range")))
        if route is None:
            self.send_error(404)
            return
        body, ctype = route["body"], route["type"]
        start = _range_start(self.headers.get("Range"))
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        drop, route["drop"] = route.get("drop"), None
        self.wfile.write(body[start:drop])
        self.close_connection = True

    def log_message(self, *args):
        pass


def _range_start(header: str | None) -> int:
    if not header:
        return 0
    return int(header.removeprefix("bytes=").split("-")[0])


@pytest.fixture(scope="module")
def published_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save(reference_weights.published_checkpoint(reference_weights.reference_state_dict()), buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.routes, httpd.seen = {}, []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


def _serve(server, path: str, body: bytes, ctype="application/octet-stream", drop=None) -> str:
    server.routes[path] = {"body": body, "type": ctype, "drop": drop}
    server.seen.clear()
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh, empty cache for each test."""
    monkeypatch.setenv("GESTSYNC_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _download(capsys, url, *extra):
    code = main(["models", "download", NAME, "--url", url, "--quiet", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(code, err, match):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("gestsync: error: "), err
    assert match in lines[0], lines[0]
    return lines[0]


def _cache_files(home: Path) -> list[str]:
    folder = home / "models"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_download_verifies_records_and_auto_picks_it(capsys, server, home, published_bytes):
    url = _serve(server, "/gestsync.pth", published_bytes)
    digest = hashlib.sha256(published_bytes).hexdigest()
    assert weights.resolve("auto") == weights.ModelChoice("builtin", None)
    code, out, err = _download(capsys, url, "--sha256", digest.upper())
    assert code == 0, err
    path = home / "models" / f"{NAME}.pth"
    assert path.read_bytes() == published_bytes and digest in out
    meta = json.loads((home / "models" / f"{NAME}.json").read_text())
    assert (meta["url"], meta["size"], meta["sha256"]) == (url, len(published_bytes), digest)
    assert meta["downloaded"].startswith("20")
    assert _cache_files(home) == [f"{NAME}.json", f"{NAME}.pth"]
    assert weights.resolve("auto") == weights.ModelChoice(NAME, path)
    assert weights.resolve(NAME) == weights.ModelChoice(NAME, path)
    assert weights.resolve("builtin").path is None
    code, out, _ = _download(capsys, url)
    assert code == 0 and "already cached, nothing fetched" in out and len(server.seen) == 1

    assert main(["models", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert (row["name"], row["cached"], row["sha256"], row["size"]) == (NAME, True, digest,
                                                                        len(published_bytes))
    assert main(["models"]) == 0
    assert f"sha256 {digest}" in capsys.readouterr().out


def test_a_syncer_loads_its_model_once(server, home, published_bytes, capsys, monkeypatch,
                                       tmp_path):
    from gestsync import Syncer
    from gestsync.errors import MediaError, PeopleError
    from gestsync.model import GestSyncModel

    _download(capsys, _serve(server, "/once.pth", published_bytes))
    syncer = Syncer("auto", device="cpu")
    assert isinstance(syncer.model.net, GestSyncModel) and syncer.label == NAME
    assert syncer.model.spec == weights.ModelSpec(weights.resolve("auto"), "cpu")
    assert Syncer("builtin").model.net is None

    def no_second_load(choice, device=None):
        raise AssertionError(f"{choice} loaded again")

    monkeypatch.setattr(weights, "load", no_second_load)
    clip = synth.make_video(tmp_path / "shapes.mp4", seconds=3.0, size=(320, 240))
    with pytest.raises(PeopleError, match="no person"):  # past the model, to the people stage
        syncer.find_offset(clip, progress=None)
    with pytest.raises(MediaError, match="no scene of shapes.mp4 lasts 2 s"):  # the same
        syncer.find_speakers(clip, progress=None)


def test_a_loaded_model_refuses_another_precision_or_device(home, published_bytes, tmp_path,
                                                           monkeypatch):
    """`Syncer(m).find_offset(v, precision="bf16")` once ran in fp32 without a word."""
    from gestsync import Syncer, weights
    from gestsync.errors import PeopleError, UsageError

    monkeypatch.setattr(weights, "bf16_arithmetic", lambda device: True)  # no bf16 runs here
    path = tmp_path / "rgb.pth"
    path.write_bytes(published_bytes)
    clip = synth.make_video(tmp_path / "shapes.mp4", seconds=3.0, size=(320, 240))
    fp32, bf16 = Syncer(path, device="cpu"), Syncer(path, device="cpu", precision="bf16")
    with pytest.raises(UsageError, match=r"precision 'bf16' was asked of a model loaded in fp32: "
                                         r"choose it when loading the model: Syncer\(model, "):
        fp32.find_offset(clip, precision="bf16", progress=None)
    with pytest.raises(UsageError, match=r"device 'meta' was asked of a model loaded on cpu"):
        bf16.find_speakers(clip, device="meta", progress=None)
    with pytest.raises(UsageError, match="unknown precision 'fp8'"):
        fp32.find_offset(clip, precision="fp8", progress=None)
    for syncer, options in ((bf16, {"precision": "bf16"}), (bf16, {}), (fp32, {"device": "cpu"}),
                            (Syncer("builtin"), {"precision": "bf16", "device": "meta"})):
        with pytest.raises(PeopleError, match="no person"):  # accepted: on to the people stage
            syncer.find_offset(clip, progress=None, **options)
    assert bf16.model.net.precision == "bf16"


def test_bf16_is_refused_where_it_would_be_emulated(home, published_bytes, tmp_path, monkeypatch):
    """A CPU without bf16 instructions embedded one 25-frame window in 395 s in bf16, 1.3 s in fp32."""
    from gestsync import Syncer, weights
    from gestsync.errors import UsageError

    path = tmp_path / "rgb.pth"
    path.write_bytes(published_bytes)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert not weights.bf16_arithmetic("cpu") and weights.bf16_arithmetic("cuda")
    with pytest.raises(UsageError, match=r"needs a CPU with bfloat16 instructions .* leave "
                                         r"--precision at fp32"):
        Syncer(path, device="cpu", precision="bf16")
    assert Syncer(path, device="cpu").model.net.precision == "fp32"
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert Syncer(path, device="cpu", precision="bf16").model.net.precision == "bf16"


def test_an_interrupted_download_resumes(capsys, server, home, published_bytes):
    url = _serve(server, "/cut.pth", published_bytes, drop=DROP_AFTER)
    code, _, err = _download(capsys, url)
    _one_error_line(code, err, "run the same command again to resume")
    part = home / "models" / f"{NAME}.pth.part"
    assert part.stat().st_size == DROP_AFTER
    assert not (home / "models" / f"{NAME}.pth").exists()

    server.seen.clear()
    code, _, err = _download(capsys, url)
    assert code == 0, err
    assert server.seen == [("/cut.pth", f"bytes={DROP_AFTER}-")]
    final = home / "models" / f"{NAME}.pth"
    assert hashlib.sha256(final.read_bytes()).hexdigest() == hashlib.sha256(published_bytes).hexdigest()
    assert _cache_files(home) == [f"{NAME}.json", f"{NAME}.pth"]  # no .part left


@pytest.mark.parametrize("ctype", ["text/html; charset=utf-8", "application/octet-stream"])
def test_a_web_page_is_refused(capsys, server, home, ctype):
    page = b"<!DOCTYPE html><html><body>Google Drive can't scan this file for viruses</body></html>"
    code, _, err = _download(capsys, _serve(server, "/page", page, ctype))
    _one_error_line(code, err, "sent a web page, not the model file")
    assert _cache_files(home) == []


def test_a_truncated_file_is_refused(capsys, server, home, published_bytes):
    cut = published_bytes[: len(published_bytes) // 2]
    code, _, err = _download(capsys, _serve(server, "/half.pth", cut))
    _one_error_line(code, err, "truncated")
    assert _cache_files(home) == []


def test_a_wrong_structure_is_refused(capsys, server, home):
    buf = io.BytesIO()
    torch.save({"state_dict": {"module.head.weight": torch.zeros(3, 4)}}, buf)
    code, _, err = _download(capsys, _serve(server, "/other.pth", buf.getvalue()))
    _one_error_line(code, err, "does not fit")
    assert _cache_files(home) == []


def test_a_sha256_mismatch_is_refused(capsys, server, home, published_bytes):
    code, _, err = _download(capsys, _serve(server, "/g.pth", published_bytes), "--sha256", "0" * 64)
    _one_error_line(code, err, "not the expected " + "0" * 64)
    assert _cache_files(home) == []
    code, _, err = _download(capsys, "http://127.0.0.1:1/x", "--sha256", "xyz")
    _one_error_line(code, err, "64 hexadecimal digits")


def test_no_server_names_the_url_the_manual_route_and_the_folder(capsys, home):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/gestsync.pth"
    code, _, err = _download(capsys, url)
    line = _one_error_line(code, err, url)
    assert weights.DRIVE_FOLDER in line and str(home / "models" / f"{NAME}.pth") in line
    assert _cache_files(home) == []


def test_model_choices_and_the_old_checkpoint_spelling(home, tmp_path):
    with pytest.raises(GestsyncError, match=f"gestsync models download {NAME}"):
        weights.resolve(NAME)  # not cached
    own = tmp_path / "mine.pth"
    with pytest.raises(GestsyncError, match="no such file, and not one of auto, builtin"):
        weights.resolve("gestsync-rbg")
    own.write_bytes(b"x")
    assert weights.resolve(own) == weights.ModelChoice("model", own)
    assert weights.resolve(checkpoint=own) == weights.ModelChoice("model", own)
    assert weights.resolve(None, None).method == "builtin"
    assert weights.resolve(checkpoint=own).label == "model file mine.pth"
    with pytest.raises(GestsyncError, match="give one of them"):
        weights.resolve("builtin", checkpoint=own)


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GESTSYNC_HOME", str(tmp_path / "a"))
    monkeypatch.setenv("GESTSYNC_CACHE", str(tmp_path / "b"))
    assert weights.models_dir() == tmp_path / "a" / "models"
    monkeypatch.delenv("GESTSYNC_HOME")
    assert weights.models_dir() == tmp_path / "b" / "models"  # beside the pose bundles


def test_an_uncertain_builtin_answer_suggests_the_download(capsys, home):
    from gestsync.cli import _suggest_model
    from gestsync.sync import OffsetResult

    result = OffsetResult(video="a.mp4", offset_frames=3, offset_seconds=0.12, confidence=0.2,
                          uncertain=True, bootstrap_agreement=0.3, method="builtin",
                          num_frames=250, duration_seconds=10.0, scored_frames=(0, 250),
                          candidates=[3], scores=[1.0])
    assert _suggest_model(result, hinted=False)
    assert f"gestsync models download {NAME}" in capsys.readouterr().err
    assert not _suggest_model(result, hinted=True)
    result.uncertain = False
    assert not _suggest_model(result, hinted=False)
    assert capsys.readouterr().err == ""


@pytest.mark.slow
@needs_samples
def test_sync_uses_the_cached_model_by_default(capsys, server, home, published_bytes, tmp_path):
    _download(capsys, _serve(server, "/e2e.pth", published_bytes))
    code = main(["sync", str(SAMPLES / "sync_sample_3.mp4"), "--grid", "5", "--context-frames",
                 "50", "--quiet", "--no-video", "--out", str(tmp_path / "res")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"[{NAME}]" in out.splitlines()[0]
    assert json.loads((tmp_path / "res" / "offset.json").read_text())["method"] == NAME


def test_a_file_put_in_the_cache_by_hand_is_used(home, published_bytes, capsys):
    folder = home / "models"
    folder.mkdir(parents=True)
    (folder / f"{NAME}.pth").write_bytes(published_bytes)  # the manual route: no record
    assert weights.resolve("auto").method == NAME
    assert main(["models", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["cached"] and row["sha256"] == hashlib.sha256(published_bytes).hexdigest()


def test_the_web_page_names_the_active_model(home, published_bytes, tmp_path):
    from gestsync import app

    cfg = app.ServeConfig()
    assert app.model_choices(cfg) == [app.BUILTIN]
    assert f"gestsync models download {NAME}" in app.intro(cfg, [app.MODE_SYNC])
    assert app.job_model(cfg, app.BUILTIN) == "builtin"
    (home / "models").mkdir(parents=True)
    (home / "models" / f"{NAME}.pth").write_bytes(published_bytes)
    assert app.model_choices(cfg) == [NAME, app.BUILTIN]
    assert f"Model: **{NAME}**" in app.intro(cfg, [app.MODE_SYNC])
    assert app.job_model(cfg, NAME) == NAME
    assert app.job_model(cfg, app.BUILTIN) == "builtin"
    own = tmp_path / "own.pth"
    own.write_bytes(b"x")
    by_path = app.ServeConfig(model=str(own))
    assert app.model_choices(by_path) == ["model file own.pth", app.BUILTIN]
    assert app.job_model(by_path, "model file own.pth") == own


def test_shifted_cosines_equal_the_cosines_of_normalised_embeddings():
    """Dots over norm products, no normalised copies: the same as `F.normalize` then dot,
    a zero embedding included (0, as normalize's 1e-12 floor gives)."""
    import numpy as np

    from gestsync.scoring import shifted_cosines

    g = torch.Generator().manual_seed(3)
    video, sound = torch.randn(30, 16, generator=g) * 5, torch.randn(28, 16, generator=g)
    video[7] = 0
    lags = np.array([-4, 0, 2])
    got = shifted_cosines(video, sound, lags, 2.5, 30)
    v, s = torch.nn.functional.normalize(video, dim=1), torch.nn.functional.normalize(sound, dim=1)
    for i, lag in enumerate(lags):
        for t in range(30):
            if 0 <= t + lag < 28:
                assert got[i, t] == pytest.approx(2.5 * float(v[t] @ s[t + lag]), abs=1e-6)
            else:
                assert np.isnan(got[i, t])
    assert (got[:, 7][~np.isnan(got[:, 7])] == 0).all()


def test_network_scorer_is_the_scaled_cosine_at_each_lag(monkeypatch):
    """`sync` and `eval` score a model through `scoring.Network`: evidence[i, s] is the
    logit scale times the cosine of picture window s and sound window s + lags[i]."""
    import numpy as np

    from gestsync import crops, media, scoring

    video = torch.randn(76, 8, generator=torch.Generator().manual_seed(1))
    sound = torch.randn(76, 8, generator=torch.Generator().manual_seed(2))

    class Net:  # fixed embeddings: what matters is the plumbing
        config, device = None, "cpu"
        logits_scale = torch.nn.Linear(1, 1, bias=False)

        def embed_video_clip(self, frames, progress=None):
            assert len(list(frames)) == 100
            return video

        def embed_audio_clip(self, mel):
            return sound

    torch.nn.init.constant_(Net.logits_scale.weight, 3.0)
    monkeypatch.setattr(crops, "masked_crops", lambda info, track, *rest: range(info.num_frames))
    monkeypatch.setattr(scoring, "log_mel", lambda audio: torch.zeros(len(audio) // 160, 80))
    info = type("Info", (), {"num_frames": 100})()
    audio = np.zeros(100 * media.SAMPLES_PER_FRAME, np.float32)
    lags = np.array([-30, -1, 0, 2, 75])
    reports = []
    evidence = scoring.Network(Net()).offset_scorer(info, None, None, lambda *a: reports.append(a))(audio, 100, lags)
    assert evidence.shape == (5, 100)
    assert reports[-2:] == [("model (sound)", 0, 1), ("model (sound)", 1, 1)]  # a stage of its own
    v, a = video.numpy(), sound.numpy()
    for i, lag in enumerate(lags):
        for s in range(100):
            if 0 <= s < 76 and 0 <= s + lag < 76:
                cos = v[s] @ a[s + lag] / np.linalg.norm(v[s]) / np.linalg.norm(a[s + lag])
                assert evidence[i, s] == pytest.approx(3.0 * cos, abs=1e-5)
            else:
                assert np.isnan(evidence[i, s])
