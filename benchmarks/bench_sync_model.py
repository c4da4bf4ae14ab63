"""Real-time factor of `gestsync sync --checkpoint` on a 720p clip: end to end and per stage.

    .venv/bin/python benchmarks/bench_sync_model.py [--source CLIP] [--seconds S] [--checkpoint PTH]
    .venv/bin/python benchmarks/bench_sync_model.py --seconds 60 --skip-stages   # peak RSS, longer clip

1. End to end: the command itself (`gestsync sync CLIP --checkpoint ... --json --quiet`,
   writing offset.json, scores.png and the corrected copy) in a child process: wall and
   CPU time (imports and model loading included) and its peak RSS.
2. Per stage, in this process, in the order `find_offset` runs them: read the sound,
   people (decode at pose size + pose + tracks), masked crops (decode at full size + face
   mesh + crop; timed inside the stream that feeds the model), video embeddings
   (`embed_video_clip`), audio embeddings (log-mel + `embed_audio_clip`), offset search
   (every-frame candidates, scores, bootstrap confidence) and writing the outputs; a
   decode-only pass at full size is shown for reference (it is part of two stages above).

The checkpoint defaults to deterministic random weights saved in the published format
(`module.` prefixes, optimizer state; tests/reference_weights.py): speed does not depend
on the weights, only the offset found does. The clip defaults to ../shared/samples/
sync_sample_2.mp4 (1280x720, 6.5 s); --seconds loops it to that length (as bench_sync.py).
The real-time factor is seconds of processing per second of video (< 1: faster than real
time). OMP_WAIT_POLICY defaults to PASSIVE, as in bench_model.py.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (see bench_model.py)

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "samples"
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]

from bench_model import MB, PeakRss, rss_mb  # noqa: E402

from gestsync import media, offset, people, scan, sync  # noqa: E402
from gestsync.audio import log_mel  # noqa: E402
from gestsync.checkpoint import load_model  # noqa: E402
from gestsync.crops import masked_crops  # noqa: E402


class Stage:
    """Accumulated wall and CPU seconds and peak RSS of one stage."""

    def __init__(self, name: str) -> None:
        self.name, self.wall, self.cpu, self.peak = name, 0.0, 0.0, 0.0

    def run(self, fn: Callable[[], Any]) -> Any:
        with PeakRss() as mem:
            wall, cpu = time.perf_counter(), time.process_time()
            value = fn()
            self.wall += time.perf_counter() - wall
            self.cpu += time.process_time() - cpu
        self.peak = max(self.peak, mem.peak)
        return value


def timed_stream(items: Iterable[Any], stage: Stage) -> Iterator[Any]:
    """Yield `items`, billing the time spent producing each one to `stage`."""
    it = iter(items)
    while True:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            item = next(it)
        except StopIteration:
            return
        finally:
            stage.wall += time.perf_counter() - wall
            stage.cpu += time.process_time() - cpu
            stage.peak = max(stage.peak, rss_mb())
        yield item


def end_to_end(clip: Path, checkpoint: Path, out: Path) -> dict[str, Any]:
    """Run the command in a child process; its wall, CPU (user + sys) and peak RSS."""
    cmd = [sys.executable, "-m", "gestsync", "sync", str(clip), "--checkpoint", str(checkpoint),
           "--out", str(out), "--json", "--quiet", "--device", "cpu"]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "peak_mb": after.ru_maxrss * 1024 / MB,
            "result": json.loads(done.stdout.strip().splitlines()[-1])}  # fmt: skip


def per_stage(clip: Path, checkpoint: Path, out: Path) -> tuple[list[Stage], media.MediaInfo, int]:
    """The stages of `find_offset(clip, checkpoint=...)`, run and timed one by one."""
    stages = {name: Stage(name) for name in (
        "load model", "read sound", "people: decode + pose + tracks", "masked crops (decode + face mesh)",
        "video embeddings (embed_video_clip)", "audio embeddings (log-mel + model)",
        "offset search + confidence", "writing (json, plot, corrected copy)", "decode only (full size)")}  # fmt: skip
    s = stages.__getitem__
    info = media.probe(clip)
    model = s("load model").run(lambda: load_model(checkpoint, "cpu"))
    audio = s("read sound").run(lambda: media.read_audio(info))
    stride = getattr(sync, "POSE_STRIDE", 1)
    tracks = s("people: decode + pose + tracks").run(
        lambda: scan.scan_people(info, max_people=2, stride=stride))
    person = people.main_person(tracks, info.num_frames, name=clip.name)
    crops = timed_stream(masked_crops(info, person), s("masked crops (decode + face mesh)"))
    video_stage = s("video embeddings (embed_video_clip)")
    video = video_stage.run(lambda: model.embed_video_clip(crops))
    crop_stage = s("masked crops (decode + face mesh)")  # its time was billed inside the stream
    video_stage.wall -= crop_stage.wall
    video_stage.cpu -= crop_stage.cpu
    with torch.inference_mode():
        sound = s("audio embeddings (log-mel + model)").run(
            lambda: model.embed_audio_clip(log_mel(audio).to(model.device)))
    lags = offset.candidate_lags(sync.DEFAULT_MAX_OFFSET)

    def search() -> sync.OffsetResult:  # as model_scoring.model_evidence, then find_offset's decision
        v, a = torch.nn.functional.normalize(video, dim=1), torch.nn.functional.normalize(sound, dim=1)
        scale = float(model.logits_scale.weight.detach().reshape(()))
        evidence = np.full((len(lags), info.num_frames), np.nan)
        for i, lag in enumerate(lags.astype(int)):
            first, last = max(0, -lag), min(len(v), len(a) - lag)
            if last > first:
                evidence[i, first:last] = scale * (v[first:last] * a[first + lag:last + lag]).sum(dim=1).numpy()
        return sync._decide(info, evidence, lags, None, "model")

    result = s("offset search + confidence").run(search)
    s("writing (json, plot, corrected copy)").run(
        lambda: sync._write_outputs(result, info, out, True, True, scan.no_progress))
    s("decode only (full size)").run(lambda: sum(1 for _ in media.iter_frames(info)))
    return list(stages.values()), info, result.offset_frames


def random_published_checkpoint(path: Path) -> Path:
    from reference_weights import published_checkpoint, reference_state_dict

    torch.save(published_checkpoint(reference_state_dict()), path)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=SAMPLES / "sync_sample_2.mp4")
    ap.add_argument("--seconds", type=float, default=0.0, help="loop the source to this length (0: as it is)")
    ap.add_argument("--checkpoint", type=Path, help="weights (default: random, published format)")
    ap.add_argument("--skip-end-to-end", action="store_true", help="only the per-stage pass")
    ap.add_argument("--skip-stages", action="store_true", help="only the end-to-end run")
    args = ap.parse_args(argv)
    if not args.source.is_file():
        print(f"skipped: no source clip {args.source} (give --source)")
        return 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads "
          f"(OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        clip = args.source
        if args.seconds:
            from bench_sync import make_long_clip

            clip = make_long_clip(args.source, work / f"long{args.source.suffix}", args.seconds)
        checkpoint = args.checkpoint or random_published_checkpoint(work / "model_rgb.pth")
        info = media.probe(clip)
        duration = info.num_frames / media.FPS
        print(f"clip: {clip.name}, {info.width}x{info.height}, {info.num_frames} frames at 25 fps ({duration:.1f} s)")
        if not args.skip_end_to_end:
            e2e = end_to_end(clip, checkpoint, work / "e2e")
            print(f"end to end `gestsync sync --checkpoint` (child process): {e2e['wall']:.1f} s wall, "
                  f"{e2e['cpu']:.1f} s CPU -> real-time factor {e2e['wall'] / duration:.2f} wall, "
                  f"{e2e['cpu'] / duration:.2f} CPU; peak RSS {e2e['peak_mb']:.0f} MB; "
                  f"offset {e2e['result']['offset_frames']} frames")  # fmt: skip
        if args.skip_stages:
            return 0
        stages, info, found = per_stage(clip, checkpoint, work / "stages")
        print(f"per stage (this process; offset found: {found} frames):")
        print(f"  {'stage':<40} {'wall s':>7} {'CPU s':>7} {'RTF wall':>9} {'RTF CPU':>8} {'peak RSS MB':>12}")
        for st in stages:
            print(f"  {st.name:<40} {st.wall:7.2f} {st.cpu:7.2f} {st.wall / duration:9.3f} "
                  f"{st.cpu / duration:8.3f} {st.peak:12.0f}")  # fmt: skip
        counted = [st for st in stages if not st.name.startswith("decode only")]
        wall, cpu = sum(st.wall for st in counted), sum(st.cpu for st in counted)
        print(f"  {'sum of stages (not decode only)':<40} {wall:7.2f} {cpu:7.2f} {wall / duration:9.3f} "
              f"{cpu / duration:8.3f}")  # fmt: skip
    print(f"this process peak RSS (ru_maxrss): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
