"""Corpus runs (`--results FILE`): inputs, the results file (partial rows, lock, parquet),
resuming, and real clips on Ray (killed and resumed) and in a local pool."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import synth
from gestsync import corpus
from gestsync.cli import main
from gestsync.corpus import CorpusError, Results, expand_inputs
from gestsync.errors import MediaError
from conftest import SAMPLES, needs_samples

SUFFIXES = {".mp4", ".mkv"}
SRC = str(Path(__file__).resolve().parents[1] / "src")


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def by_video(rows: list[dict]) -> dict[str, dict]:
    return {Path(r["video"]).name: r for r in rows}


def make_files(folder: Path) -> Path:
    """Four small stand-in "videos" (one in a sub-folder, one broken) and a text file."""
    (folder / "sub").mkdir(parents=True)
    for name in ("a.mp4", "b.mkv", "sub/c.mp4", "broken.mp4"):
        (folder / name).write_bytes(name.encode() * 100)
    (folder / "notes.txt").write_text("not a video\n")
    return folder


# --------------------------------------------------------------------------- inputs

def test_folders_lists_and_manifests(tmp_path):
    videos = make_files(tmp_path / "in")
    assert [p.name for p in expand_inputs([str(videos)], SUFFIXES)] == \
        ["a.mp4", "b.mkv", "broken.mp4", "c.mp4"]  # recursive, sorted, videos only
    listing = tmp_path / "lists" / "some.txt"
    listing.parent.mkdir()
    listing.write_text("# two of them\n../in/a.mp4\n\n  ../in/sub/c.mp4  \n/no/such.mp4\n")
    found = expand_inputs([f"@{listing}", str(videos / "a.mp4")], SUFFIXES)
    assert [str(p) for p in found] == [str(listing.parent / "../in/a.mp4"),
                                       str(listing.parent / "../in/sub/c.mp4"), "/no/such.mp4"]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in [
        {"kind": "video", "source": "in/b.mkv", "status": "ok"},
        {"kind": "clip", "video": "clips/x/y.mp4"},
        {"kind": "video", "source": str(videos / "broken.mp4"), "status": "error"}]) + "\n")
    assert expand_inputs([str(manifest)], SUFFIXES) == [tmp_path / "in/b.mkv", videos / "broken.mp4"]


@pytest.mark.parametrize("item, match", [("missing", "no such file or folder"),
                                         ("@missing.txt", "cannot read the list"),
                                         ("empty", "no videos under folder"),
                                         ("clips.jsonl", "has no video rows")])
def test_bad_inputs_are_usage_errors(tmp_path, capsys, item, match):
    (tmp_path / "empty").mkdir()
    (tmp_path / "clips.jsonl").write_text(json.dumps({"kind": "clip"}) + "\n")
    code = main(["sync", str(tmp_path / item.lstrip("@")) if not item.startswith("@")
                 else f"@{tmp_path / item[1:]}", "--results", str(tmp_path / "r.jsonl")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and match in err[0], err


@pytest.mark.parametrize("argv, match", [
    (["--results", "r.csv"], "unknown suffix '.csv'"),
    (["--results", "r"], "unknown suffix '(none)'"),
    (["--jobs", "2"], "--jobs: only for a corpus run"),
    (["--engine", "ray", "--write-videos"], "--engine, --write-videos: only for a corpus run"),
    (["--results", "r.jsonl", "--jobs", "0"], "--jobs must be 1 or more"),
    (["--results", "r.jsonl", "--address", "auto"], "add --engine ray"),
    (["--results", "r.jsonl", "--write-videos", "--no-video"], "contradict"),
    (["--results", "r.jsonl", "--segments", "1"], "--segments must be at least 2 s"),
    (["--results", "r.jsonl", "--out", "res"], "unless --write-videos"),
    (["--results", "r.jsonl", "--engine", "ray", "--address", "127.0.0.1:1"], "nothing answers"),
    (["--results", "r.jsonl", "--engine", "ray", "--address", "head"], "give HOST:PORT")])
def test_bad_options_are_usage_errors(tmp_path, capsys, monkeypatch, argv, match):
    monkeypatch.chdir(tmp_path)
    make_files(tmp_path / "in")
    code = main(["sync", "in", "--model", "builtin", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and match in err[0], err
    assert not (tmp_path / "r.jsonl").exists()


# ----------------------------------------------------------------- the results file

class FakeResult:
    def __init__(self, video: Path):
        self.video = video

    def to_dict(self) -> dict:
        return {"video": str(self.video), "offset_frames": len(self.video.name),
                "score": float("nan"), "outputs": {}}


def fake_run(job, video: Path):
    if video.name.startswith("broken"):
        raise MediaError(f"{video.name} is not a readable video")
    return FakeResult(video)


@pytest.fixture
def fake(monkeypatch):
    """The corpus machinery with a stand-in for the video work (no decoding)."""
    calls = []

    def run(job, video):
        calls.append(video.name)
        return fake_run(job, video)

    monkeypatch.setattr(corpus, "_run", run)
    monkeypatch.setattr(corpus, "warm_up", lambda job: None)
    return calls


def run_cli(*argv) -> int:
    return main(["sync", *map(str, argv), "--model", "builtin", "--quiet", "--jobs", "1"])


def test_rows_resume_and_retry(tmp_path, fake, capsys):
    videos, results = make_files(tmp_path / "in"), tmp_path / "out" / "r.jsonl"
    assert run_cli(videos, "--results", results) == 1  # one failed
    rows = by_video(rows_of(results))
    assert sorted(rows) == ["a.mp4", "b.mkv", "broken.mp4", "c.mp4"]
    assert rows["broken.mp4"]["status"] == "error"
    assert rows["broken.mp4"]["error"] == "broken.mp4 is not a readable video"
    assert rows["a.mp4"]["status"] == "ok" and rows["a.mp4"]["error"] is None
    assert rows["a.mp4"]["score"] is None  # strict JSON: NaN is null
    assert rows["a.mp4"]["path"] == str(videos / "a.mp4") and rows["a.mp4"]["size"] == 500
    assert "4 videos: 3 done, 1 failed, 0 skipped" in capsys.readouterr().out
    assert run_cli(videos, "--results", results) == 0 and len(fake) == 4  # nothing redone
    (videos / "a.mp4").write_bytes(b"changed")  # a new file at the same path: done again
    assert run_cli(videos, "--results", results, "--retry-failed") == 1
    assert fake[4:] == ["a.mp4", "broken.mp4"]
    again = by_video(rows_of(results))
    assert len(rows_of(results)) == 4 and again["a.mp4"]["size"] == 7
    assert "4 videos: 1 done, 1 failed, 2 skipped" in capsys.readouterr().out


def test_speaker_rows_are_kept_apart_from_sync_rows(tmp_path, fake):
    videos, results = make_files(tmp_path / "in"), tmp_path / "r.jsonl"
    run_cli(videos / "a.mp4", "--results", results)
    main(["speaker", str(videos / "a.mp4"), "--results", str(results), "--quiet", "--jobs", "1"])
    assert [r["command"] for r in rows_of(results)] == ["sync", "speaker"]


def test_a_partial_last_row_is_cut_off_and_redone(tmp_path, fake, capsys):
    videos, results = make_files(tmp_path / "in"), tmp_path / "r.jsonl"
    run_cli(videos / "a.mp4", videos / "b.mkv", "--results", results)
    whole = results.read_bytes()
    results.write_bytes(whole[: len(whole) - 30])  # as if killed during the second write
    assert run_cli(videos / "a.mp4", videos / "b.mkv", "--results", results) == 0
    assert "dropped a partial last row" in capsys.readouterr().err
    assert fake == ["a.mp4", "b.mkv", "b.mkv"]
    assert [Path(r["video"]).name for r in rows_of(results)] == ["a.mp4", "b.mkv"]


def test_one_run_at_a_time_per_results_file(tmp_path):
    first = Results(tmp_path / "r.jsonl").open()
    try:
        with pytest.raises(CorpusError, match="another run is writing"):
            Results(tmp_path / "r.jsonl").open()
    finally:
        first.close()
    Results(tmp_path / "r.jsonl").open().close()


def test_parquet_results_are_rebuilt_from_their_journal(tmp_path, fake):
    pq = pytest.importorskip("pyarrow.parquet")
    videos, results = make_files(tmp_path / "in"), tmp_path / "r.parquet"
    run_cli(videos, "--results", results)
    table = pq.read_table(results).to_pylist()
    assert {Path(r["video"]).name: r["status"] for r in table} == \
        {"a.mp4": "ok", "b.mkv": "ok", "c.mp4": "ok", "broken.mp4": "error"}
    assert table[0]["outputs"] == "{}"  # an always-empty struct is stored as JSON text
    journal = tmp_path / "r.parquet.jsonl"
    assert len(rows_of(journal)) == 4
    results.unlink()  # as if killed before the parquet file was written
    assert run_cli(videos, "--results", results) == 0 and len(fake) == 4
    assert len(pq.read_table(results)) == 4
    journal.unlink()  # a parquet file without its journal: its rows count as done
    assert run_cli(videos, "--results", results) == 0 and len(fake) == 4


# --------------------------------------------------------------- real clips, Ray

def make_corpus(folder: Path) -> Path:
    """Three 5 s sample clips (copies: three videos) and a broken file."""
    (folder / "sub").mkdir(parents=True)
    for name in ("a.mp4", "b.mp4", "sub/c.mp4"):
        shutil.copyfile(SAMPLES / "sync_sample_3.mp4", folder / name)
    (folder / "broken.mp4").write_text("not a video\n")
    return folder


def corpus_command(videos: Path | str, results: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gestsync", "sync", str(videos), "--model", "builtin",
            "--results", str(results), "--quiet", "--jobs", "2", *extra]


def child_env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [SRC, *filter(None, [os.environ.get("PYTHONPATH")])])}


def run_killed_at_the_gate(cmd: list[str], results: Path, rows: int, gate: Path) -> list[dict]:
    """Run `cmd`, whose inputs end with `gate`, a named pipe that nobody writes: the worker
    that takes it waits there, so the run writes exactly `rows` rows (the videos before
    the gate), whatever the machine's speed. Kill it once they are written."""
    proc = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 600  # a bound on waiting (a loaded machine is slow)
        while not (results.exists() and results.read_bytes().count(b"\n") >= rows):
            assert proc.poll() is None and time.monotonic() < deadline, \
                f"the run ended or stalled before its row {rows}"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the session of the process this test started
        proc.wait()
        _open_gate(gate)
    return rows_of(results)


def _open_gate(gate: Path) -> None:
    """Let a worker still waiting on the named pipe read its end (and fail), so it can end."""
    try:
        os.close(os.open(gate, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # nobody is reading it: nothing to release
        pass


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (os.mkfifo)")
def test_killed_local_pool_run_resumes_without_redoing(tmp_path):
    """The local pool (2 processes) killed at its 2nd row, as the Ray run below: the rows
    written stay as they are and a rerun skips their videos."""
    (tmp_path / "in").mkdir()
    for name in ("a.mp4", "b.mp4"):  # nobody in them: each gets its row quickly
        synth.make_video(tmp_path / "in" / name, seconds=2.0, size=(64, 48))
    results, gate = tmp_path / "r.jsonl", tmp_path / "gate.mp4"
    os.mkfifo(gate)
    (tmp_path / "first.txt").write_text("in/a.mp4\nin/b.mp4\ngate.mp4\n")
    first = corpus_command(f"@{tmp_path / 'first.txt'}", results, "--engine", "local")
    before = run_killed_at_the_gate(first, results, 2, gate)
    assert sorted(by_video(before)) == ["a.mp4", "b.mp4"]
    rerun = subprocess.run(corpus_command(tmp_path / "in", results), env=child_env(),
                           capture_output=True, text=True, timeout=600)
    assert "2 videos: 0 done, 0 failed, 2 skipped" in rerun.stdout, rerun.stderr
    assert rows_of(results) == before


@pytest.fixture(scope="module")
def ray_run(tmp_path_factory):
    """A local Ray cluster (started here, stopped after); a corpus run on it killed after
    two rows (a.mp4, broken.mp4: see `run_killed_at_the_gate`), then the whole folder run
    to the end."""
    ray = pytest.importorskip("ray")
    if not SAMPLES.is_dir():
        pytest.skip("../shared/samples absent")
    if not hasattr(os, "mkfifo"):
        pytest.skip("needs named pipes (os.mkfifo)")
    tmp = tmp_path_factory.mktemp("corpus-ray")
    videos, results, gate = make_corpus(tmp / "in"), tmp / "ray.jsonl", tmp / "gate.mp4"
    os.mkfifo(gate)
    (tmp / "first.txt").write_text("in/a.mp4\nin/broken.mp4\ngate.mp4\n")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        ray_options = ("--engine", "ray", "--address", ray.get_runtime_context().gcs_address)
        first = corpus_command(f"@{tmp / 'first.txt'}", results, *ray_options)
        before = run_killed_at_the_gate(first, results, 2, gate)
        cmd = corpus_command(videos, results, *ray_options)
        rerun = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=300)
    finally:
        ray.shutdown()
    return {"videos": videos, "before": before, "rerun": rerun, "rows": rows_of(results)}


@pytest.mark.slow
def test_ray_run_gives_one_row_per_video(ray_run):
    rows = by_video(ray_run["rows"])
    assert sorted(rows) == ["a.mp4", "b.mp4", "broken.mp4", "c.mp4"]
    assert len(ray_run["rows"]) == 4
    assert [n for n, r in rows.items() if r["status"] == "error"] == ["broken.mp4"]
    assert "not a readable video" in rows["broken.mp4"]["error"]
    assert all(rows[n]["offset_frames"] == rows["a.mp4"]["offset_frames"] for n in ("b.mp4", "c.mp4"))
    assert ray_run["rerun"].returncode == 0, ray_run["rerun"].stderr  # broken.mp4 failed before


@pytest.mark.slow
def test_killed_ray_run_resumes_without_redoing(ray_run):
    before = ray_run["before"]
    assert sorted(by_video(before)) == ["a.mp4", "broken.mp4"]
    now = by_video(ray_run["rows"])
    for row in before:  # kept as they were: not done twice
        assert now[Path(row["video"]).name] == row
    assert "4 videos: 2 done, 0 failed, 2 skipped" in ray_run["rerun"].stdout


def comparable(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in corpus.TIMING_FIELDS}


@pytest.mark.slow
def test_local_pool_gives_the_same_rows_as_ray(ray_run, tmp_path):
    results = tmp_path / "local.jsonl"
    done = subprocess.run(corpus_command(ray_run["videos"], results, "--engine", "local"),
                          env=child_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    local, ray_rows = by_video(rows_of(results)), by_video(ray_run["rows"])
    assert sorted(local) == sorted(ray_rows)
    for name, row in ray_rows.items():
        assert comparable(local[name]) == comparable(row), name


@pytest.mark.slow
@needs_samples
def test_speaker_corpus_to_parquet_with_videos(tmp_path, monkeypatch):
    pq = pytest.importorskip("pyarrow.parquet")
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(SAMPLES / "sync_sample_3.mp4", tmp_path / "clip.mp4")
    (tmp_path / "list.txt").write_text("clip.mp4\n")
    code = main(["speaker", "@list.txt", "--model", "builtin", "--results", "r.parquet",
                 "--write-videos", "--out", "boxed", "--quiet", "--jobs", "1"])
    assert code == 0
    (row,) = pq.read_table("r.parquet").to_pylist()
    assert row["status"] == "ok" and row["scenes"] and row["command"] == "speaker"
    folder = tmp_path / "boxed" / corpus.out_name(Path("clip.mp4"))
    assert (folder / "speakers.json").is_file() and list(folder.glob("*_speakers.mp4"))


def test_a_model_that_does_not_load_stops_the_run_before_any_row(tmp_path, capsys):
    videos, results = make_files(tmp_path / "in"), tmp_path / "r.jsonl"
    (tmp_path / "bad.pth").write_text("not a checkpoint\n")
    code = main(["sync", str(videos), "--model", str(tmp_path / "bad.pth"), "--results",
                 str(results), "--quiet", "--jobs", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "as a PyTorch checkpoint" in err[-1]
    assert results.read_text() == ""
