"""`gestsync serve`: the page driven in headless Chromium, and the app's own checks.

The browser tests start the server in a subprocess on a free port and skip (with the
reason) when gradio, selenium, chromium or chromedriver is missing. Screenshots are saved
in results/screenshots/ (git-ignored).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import synth
from gestsync import app
from gestsync.cli import main
from gestsync.errors import GestsyncError
from conftest import SAMPLES

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "results" / "screenshots"
SYNC_CLIP, SPEAKER_CLIP = SAMPLES / "sync_sample_3.mp4", SAMPLES / "asd_sample_2.mp4"
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-quic", "--window-size=1280,1400"]
START_TIMEOUT = 60  # s for the server to answer (gradio import is slow on a busy machine)
STOP_TIMEOUT = 60  # s for it to stop after Ctrl+C (closing the server waits on its threads)
JOB_TIMEOUT = 300  # s, a bound on waiting for one job, not a speed check (a loaded 2-core
# machine took over 90 s for the speaker clip)
BROKEN_CHECKPOINT = "broken.pth"  # in the server's --checkpoints folder


# ----------------------------------------------------------------------------- no browser

def test_uploads_are_kept_once_inside_the_workdir(tmp_path):
    ws = app.Workspace(tmp_path / "work")
    src = tmp_path / " odd name?.mp4"
    src.write_bytes(b"same bytes")
    first, again = ws.store_upload(src), ws.store_upload(src)
    assert first == again and first.name == "odd_name_.mp4"
    assert first.parent.parent == ws.uploads
    assert app._safe_name("../../.bashrc") == "bashrc"
    [(label, key)] = ws.recent()
    assert label.startswith("odd_name_.mp4") and ws.recent_path(key) == first
    for bad in ("../../etc/passwd", "nope/x.mp4"):
        with pytest.raises(GestsyncError, match="no longer kept"):
            ws.recent_path(bad)
    ws.close()
    assert ws.uploads.is_dir() and not ws.run.exists()  # a given workdir keeps its uploads


def test_temporary_workdir_is_removed():
    ws = app.Workspace(None)
    ws.new_job().mkdir()
    ws.close()
    assert not ws.root.exists()


def test_checkpoint_is_picked_by_name_only(tmp_path):
    (tmp_path / "b.pth").write_bytes(b"x")
    (tmp_path / "a.pt").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    assert app.checkpoint_names(tmp_path) == ["a.pt", "b.pth"]
    assert app.resolve_checkpoint(tmp_path, "b.pth") == tmp_path / "b.pth"
    assert app.resolve_checkpoint(tmp_path, app.BUILTIN) is None
    for bad in ("../b.pth", "/etc/passwd", "notes.txt"):
        with pytest.raises(GestsyncError, match="pick one from the list"):
            app.resolve_checkpoint(tmp_path, bad)


def test_limits_have_clear_messages(tmp_path):
    clip = synth.make_video(tmp_path / "clip.mp4", seconds=3.0)
    with pytest.raises(GestsyncError, match=r"lasts 3\.0 s; this server takes videos up to 2 s"):
        app.check_limits(clip, app.ServeConfig(max_seconds=2))
    with pytest.raises(GestsyncError, match="this server takes videos up to 0.001 MB"):
        app.check_limits(clip, app.ServeConfig(max_upload_mb=0.001))
    app.check_limits(clip, app.ServeConfig(max_seconds=5))


def test_intro_words_match_the_cue_choices(tmp_path):
    """The page's first words agree with its cue menu: lips are offered, so the text must
    not say that faces are never looked at."""
    text = app.intro(app.ServeConfig(model="builtin"), [app.MODE_SPEAKERS])
    assert "not looked at" not in text
    assert any("lips" in label for label in app.CUE_CHOICES) and "lips" in text


def test_progress_updates_are_throttled_per_stage():
    calls = []
    hook = app.GradioProgress(lambda value, desc, unit: calls.append((value, desc)))
    for k in range(1, 1001):
        hook("people", k, 1000)
    hook("writing", 0, 1)
    assert 90 <= len(calls) <= 102 and calls[-2] == ((1000, 1000), "people")
    assert calls[-1] == ((0, 1), "writing")


def test_summaries_and_timeline(tmp_path):
    text = app.sync_summary({"offset_frames": -15, "offset_seconds": -0.6, "confidence": 0.9,
                             "uncertain": False, "method": "builtin"})
    assert "Offset: -15 frames (-0.60 s)" in text and "0.60 s earlier" in text
    guess = app.sync_summary({"offset_frames": 7, "offset_seconds": 0.28, "confidence": 0.2,
                              "uncertain": True, "method": "builtin"})
    assert "uncertain" in guess and "no corrected copy" in guess and "below" not in guess
    scene = {"index": 0, "start_frame": 10, "end_frame": 16, "start_seconds": 0.4,
             "end_seconds": 0.64, "speaker": 1, "reason": "", "confidence": 0.8,
             "frame_speakers": [1, 1, None, 2, 2, 2]}
    assert app.speaking_runs(scene) == [(1, 10, 12), (2, 13, 16)]
    assert app.speaking_runs({**scene, "frame_speakers": None}) == [(1, 10, 16)]
    result = {"scenes": [scene], "method": "builtin", "duration_seconds": 1.0,
              "tracks": [{"id": 1, "start_frame": 0, "end_frame": 20},
                         {"id": 2, "start_frame": 5, "end_frame": 25}]}
    # per-frame decisions: the page gives each person's share of the frames, as the video does
    assert "per frame: #2 50%, #1 33%, nobody 17%" in app.speakers_summary(result)
    whole = {**result, "scenes": [{**scene, "frame_speakers": None}]}
    assert "person 1 speaks, confidence 0.80" in app.speakers_summary(whole)
    two = app.sync_summary({"offset_frames": 3, "offset_seconds": 0.12, "confidence": 0.7,
                            "uncertain": False, "method": "builtin",
                            "person": {"track": 1, "box": [10, 20, 30, 40]},
                            "people": [{"track": 0}, {"track": 1}]})
    assert "2 people are in view" in two and "person #1 (box 10,20-30,40)" in two
    app.speaker_timeline(result, tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 1000


def test_serve_options_are_checked(capsys, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port), "--workdir", str(tmp_path / "w")]) == 2
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
    assert main(["serve", "--checkpoints", str(tmp_path / "none")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_serve_says_where_how_to_stop_and_how_to_share(tmp_path):
    """Our own lines instead of Gradio's `share=True` hint and its Ctrl+C message."""
    pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
    port, log = _free_port(), tmp_path / "server.log"
    cmd = [sys.executable, "-m", "gestsync", "serve", "--port", str(port), "--workdir",
           str(tmp_path / "work")]
    # A suite started as a background job has SIGINT ignored, and a child would inherit
    # that (Python then installs no Ctrl+C handler): start the server with it caught.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while "stop with Ctrl+C" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)  # what Ctrl+C sends
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve still running {STOP_TIMEOUT} s after Ctrl+C:\n{log.read_text()}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert proc.returncode == 0, text
    assert f"gestsync serve: open http://127.0.0.1:{port}/ in a browser" in text
    assert "--share" in text and text.rstrip().endswith("gestsync serve: stopped")
    assert "share=True" not in text and "Keyboard interruption" not in text, text
    assert not list((tmp_path / "work").glob("run-*"))


def test_ready_message_with_a_public_link(tmp_path):
    text = app.ready_message("http://127.0.0.1:7860/", "https://abc.gradio.live", tmp_path)
    assert "https://abc.gradio.live" in text and "--share" not in text
    assert "Ctrl+C" in text and str(tmp_path) in text


# ----------------------------------------------------------------------------- in the browser

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"gestsync serve exited with {proc.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"gestsync serve did not answer within {START_TIMEOUT} s: {log.read_text()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app in a subprocess; its system temp folder must stay empty (uploads stay inside)."""
    pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
    base = tmp_path_factory.mktemp("serve")
    systemp, work, log = base / "systemp", base / "work", base / "server.log"
    systemp.mkdir()
    (base / "models").mkdir()
    (base / "models" / BROKEN_CHECKPOINT).write_bytes(b"not a checkpoint")
    port = _free_port()
    cmd = [sys.executable, "-m", "gestsync", "serve", "--port", str(port), "--workdir",
           str(work), "--max-seconds", "30", "--checkpoints", str(base / "models")]
    env = {**os.environ, "TMPDIR": str(systemp)}
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_up(url, proc, log)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0, log.read_text()
    assert not list(work.glob("run-*")), "the server left its jobs or cache behind"
    assert not list(systemp.iterdir()), "files were written outside the working folder"


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    missing = [name for name, found in (("chromium", chromium), ("chromedriver (Debian's "
               "chromium-driver)", driver)) if not found]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (.ci/run installs them with apt)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = Path(__import__("tempfile").mkdtemp(prefix="gestsync-chromium-"))
    for flag in CHROME_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    b = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield b
    finally:
        b.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _css(b, selector: str):
    from selenium.webdriver.common.by import By

    return b.find_elements(By.CSS_SELECTOR, selector)


def _wait_for(b, check, what: str, timeout: float = JOB_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    _screenshot(b, "timeout")
    pytest.fail(f"timed out waiting for {what}; page says: {_css(b, 'body')[0].text[:2000]}")


def _screenshot(b, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"serve_{name}.png"
    b.save_screenshot(str(path))
    return path


def _open_and_upload(b, url: str, video: Path) -> None:
    """Open the page and upload `video`; return once the page holds it (its player shows)."""
    b.get(url)
    upload = _wait_for(b, lambda: _css(b, "#video-in input[type=file]"), "the upload field", 30)
    upload[0].send_keys(str(video))
    _wait_for(b, lambda: [v for v in _css(b, "#video-in video")
                          if video.stem in (v.get_attribute("src") or "")],
              "the uploaded video preview", 30)


def _run_and_read(b, pattern: str) -> tuple[str, set[str]]:
    """Press Run; return the result text once it matches `pattern`, and the stages shown."""
    _css(b, "#run")[0].click()
    stages: set[str] = set()

    def done():
        stages.update(re.findall(r"([a-z][\w ()]*?) - \d+(?:\.\d+)?%", _css(b, "body")[0].text))
        return re.search(pattern, _css(b, "#result")[0].text)

    _wait_for(b, done, f"a result matching {pattern!r}")
    return _css(b, "#result")[0].text, stages


def _choose(b, dropdown: str, name: str) -> None:
    """Open a dropdown (#id) and click the item whose text holds `name`."""
    _wait_for(b, lambda: _css(b, f"{dropdown} input"), dropdown, 30)[0].click()
    items = _wait_for(b, lambda: [li for li in _css(b, f"{dropdown} li") if name in li.text],
                      f"{name} in {dropdown}", 10)
    items[0].click()


def _pick_recent(b, url: str, name: str) -> None:
    """Choose a kept upload from the "recent" list; the page shows it as the input video."""
    b.get(url)
    _choose(b, "#recent", name)
    _wait_for(b, lambda: _css(b, "#video-in video"), "the picked video", 20)


def _cli_message(capsys, *argv) -> str:
    """The one line `gestsync` prints for a user error, without its prefix."""
    assert main(list(argv)) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("gestsync: error: ") and "\n" not in line, line
    return line.removeprefix("gestsync: error: ")


def _download(b, suffix: str) -> bytes:
    links = [a.get_attribute("href") for a in _css(b, "#downloads a")]
    [link] = [h for h in links if h and h.endswith(suffix)]
    with urllib.request.urlopen(link, timeout=10) as r:
        return r.read()


@pytest.mark.slow
@pytest.mark.skipif(not SYNC_CLIP.is_file(), reason=f"{SYNC_CLIP} absent")
def test_sync_offset_in_the_browser(browser, server):
    _open_and_upload(browser, server, SYNC_CLIP)
    text, stages = _run_and_read(browser, r"Offset: [+-]?\d+ frames|Error")
    assert any("people" in s for s in stages), stages  # the progress bar names each stage
    m = re.search(r"Offset: ([+-]?\d+) frames \(([+-]\d+\.\d+) s\), confidence (\d\.\d\d)", text)
    assert m, text
    _wait_for(browser, lambda: _css(browser, "#downloads a"), "the download links", 20)
    shot = _screenshot(browser, "sync")
    result = json.loads(_download(browser, "offset.json"))
    assert result["offset_frames"] == int(m[1]) and f"{result['confidence']:.2f}" == m[3]
    links = [a.get_attribute("href") or "" for a in _css(browser, "#downloads a")]
    corrected = result["offset_frames"] != 0 and not result["uncertain"]
    assert any(h.endswith("_synced.mp4") for h in links) == corrected
    if corrected:  # the corrected copy plays in the page and downloads
        assert _css(browser, "#video-out video")
        assert len(_download(browser, "_synced.mp4")) > 10_000
    assert _css(browser, "#plot img") and shot.stat().st_size > 10_000
    _pick_recent(browser, server, SYNC_CLIP.name)


@pytest.mark.slow
def test_bad_file_shows_the_cli_message(browser, server, tmp_path, capsys):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 50)
    message = _cli_message(capsys, "sync", str(fake), "--quiet", "--out", str(tmp_path / "o"))
    assert "notes.mp4" in message
    _open_and_upload(browser, server, fake)  # the player is shown, though it cannot play it
    text, _ = _run_and_read(browser, "Error")
    _screenshot(browser, "bad_file")
    assert text == f"Error: {message}"


@pytest.mark.slow
def test_checkpoint_is_chosen_from_the_folder(browser, server, tmp_path, capsys):
    clip = synth.make_video(tmp_path / "tone.mp4", seconds=3.0, size=(128, 96))
    broken = tmp_path / BROKEN_CHECKPOINT
    broken.write_bytes(b"not a checkpoint")
    message = _cli_message(capsys, "sync", str(clip), "--quiet", "--checkpoint", str(broken))
    _open_and_upload(browser, server, clip)
    _choose(browser, "#model", BROKEN_CHECKPOINT)
    text, _ = _run_and_read(browser, "Error")
    _screenshot(browser, "checkpoint")
    # the same message, with the server's folders left out
    assert text == f"Error: {message.replace(f'{tmp_path}{os.sep}', '')}"
@pytest.mark.slow
@pytest.mark.skipif(not SPEAKER_CLIP.is_file(), reason=f"{SPEAKER_CLIP} absent")
def test_who_is_speaking_in_the_browser(browser, server):
    _open_and_upload(browser, server, SPEAKER_CLIP)
    [choice] = [el for el in _css(browser, "#mode label") if app.MODE_SPEAKERS in el.text]
    choice.click()
    text, _ = _run_and_read(browser, r"scene\(s\)|Error")
    assert re.search(r"\d+ scene\(s\), \d+ person\(s\) tracked", text), text
    _wait_for(browser, lambda: _css(browser, "#downloads a"), "the download links", 20)
    _screenshot(browser, "speakers")
    assert json.loads(_download(browser, "speakers.json"))["scenes"]
    assert _css(browser, "#video-out video") and _css(browser, "#plot img")
