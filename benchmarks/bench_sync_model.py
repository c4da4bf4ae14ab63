"""Real-time factor of `gestsync sync --checkpoint` on a 720p clip: end to end and per stage.

    .venv/bin/python benchmarks/bench_sync_model.py [--source CLIP] [--seconds S] [--checkpoint PTH]
    .venv/bin/python benchmarks/bench_sync_model.py --seconds 60 --skip-stages   # peak RSS, longer clip
    .venv/bin/python benchmarks/bench_sync_model.py --seconds 60 --compare       # before / after
    .venv/bin/python benchmarks/bench_sync_model.py --ratios --seconds 30       # speaker / sync

`--compare` runs whole commands one after another, each in a child process (wall, CPU of
it and its pose processes, peak RSS of the largest): `sync --model` as before this
pipeline (masked crops made in line with the network, pose stretches of 500 frames; the
child patches `crops` and `scan` back), as now in fp32 and in bf16, and
`speaker --model` on the 2-people clip of bench_speaker.py (asd_sample_1 looped to the
same length), before, now in fp32 and in bf16 (`--runs` picks some). With `--before-src DIR` the
"before" runs are the code of DIR instead (e.g. `mkdir /tmp/base && git archive f49f7e8 src |
tar -x -C /tmp/base`, then `--before-src /tmp/base/src`), and `sync-bf16-before`,
`speaker-bf16-before` run that code with `--precision bf16`.

`--ratios` times, in one run, `sync` on one person against `speaker` on two and
four people of the same length (default 30 s), whole commands in child processes: `--model`
in fp32 and bf16 (random weights unless --checkpoint), the built-in estimator, and 4 people
in bf16 (`--ratio-runs speaker4-fp32` adds fp32); then it prints each ratio of wall and CPU
times. The clips (`ratio_clips`) are 720p with one sound: the middle 640 x 720 of two
single-speaker samples side by side, the left one alone, and four samples in a 2 x 2 grid.

1. End to end: the command itself (`gestsync sync CLIP --checkpoint ... --json --quiet`,
   writing offset.json, scores.png and the corrected copy) in a child process: wall and
   CPU time (imports and model loading included) and its peak RSS.
2. Per stage, in this process: `Syncer(checkpoint).find_offset(clip)`, each stage timed
   from its first to its last progress report (`stage_times.py`): people (decode at pose
   size, pose, tracks), the model's picture side (masked crops made in a thread beside the
   network), the model's sound side, writing; the rest (reading the sound, the offset
   search, plots) is one row. Each row also gives the largest resident memory sampled
   from its stage's first report until the next stage's.

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
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "samples"
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]

from bench_model import MB  # noqa: E402

from gestsync import media, weights  # noqa: E402


# The child of a "before" run without --before-src: this code with the crops made in line
# with the network and pose stretches of CHUNK_FRAMES, then the CLI.
SEQUENTIAL = """import sys
from gestsync import cli, crops as m, scan
m.streamed_crops = m.masked_crops
scan._chunks = lambda n, w: [(s, min(scan.CHUNK_FRAMES, n - s)) for s in range(0, n, scan.CHUNK_FRAMES)]
sys.exit(cli.main(sys.argv[1:]))
"""


def end_to_end(clip: Path, checkpoint: Path | str, out: Path, command: str = "sync",
               extra: tuple[str, ...] = (), sequential: bool = False,
               source: Path | None = None) -> dict[str, Any]:
    """Run the command in a child process (the package from `source` if given; checkpoint
    "builtin": the built-in estimator); its wall, CPU (user + sys, its pose processes
    included) and peak RSS (of the largest process)."""
    head = ["-c", SEQUENTIAL] if sequential and source is None else ["-m", "gestsync"]
    env = {**os.environ, "PYTHONPATH": str(source)} if sequential and source else None
    cmd = [sys.executable, *head, command, str(clip), "--model", str(checkpoint),
           "--out", str(out), "--json", "--quiet", "--device", "cpu", *extra]  # fmt: skip
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        wall = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, text=True, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - wall
        child.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0), stderr.seek(0)
        if child.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({child.returncode}): {stderr.read().strip()}")
        lines = stdout.read().strip().splitlines()
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss * 1024 / MB,
            "result": json.loads(lines[-1])}  # fmt: skip


RUNS = {  # name: (command, extra options, sequential)
    "sync-before": ("sync", (), True),
    "sync": ("sync", (), False),
    "sync-bf16": ("sync", ("--precision", "bf16"), False),
    "sync-bf16-before": ("sync", ("--precision", "bf16"), True),  # with --before-src only
    "speaker-before": ("speaker", (), True),
    "speaker": ("speaker", (), False),
    "speaker-bf16": ("speaker", ("--precision", "bf16"), False),
    "speaker-bf16-before": ("speaker", ("--precision", "bf16"), True),  # with --before-src only
}


def compare(clip: Path, two_people: Path, checkpoint: Path, work: Path, runs: list[str],
            before_src: Path | None = None) -> None:
    """The whole commands of `runs`, one after another, with the load average around each."""
    duration = media.probe(clip).num_frames / media.FPS
    print(f"  {'run':<14} {'wall s':>7} {'CPU s':>7} {'RTF wall':>9} {'RTF CPU':>8} "
          f"{'peak MB':>8} {'load before/after':>18}  answer")
    for name in runs:
        command, extra, sequential = RUNS[name]
        source = two_people if command == "speaker" else clip
        load = os.getloadavg()[0]
        r = end_to_end(source, checkpoint, work / name, command, extra, sequential, before_src)
        answer = (f"offset {r['result']['offset_frames']}" if command == "sync"
                  else f"{len(r['result']['tracks'])} tracks")
        print(f"  {name:<14} {r['wall']:7.1f} {r['cpu']:7.1f} {r['wall'] / duration:9.3f} "
              f"{r['cpu'] / duration:8.3f} {r['peak_mb']:8.0f} {load:8.1f} / {os.getloadavg()[0]:<7.1f}  {answer}",
              flush=True)  # fmt: skip


# --ratios: (run, clip, command, model, precision); clips: one person (the left half of the
# two-people composite alone), two people side by side, four in a 2 x 2 grid
RATIO_RUNS = {
    "sync-fp32": ("one", "sync", "model", "fp32"),
    "speaker-fp32": ("two", "speaker", "model", "fp32"),
    "sync-bf16": ("one", "sync", "model", "bf16"),
    "speaker-bf16": ("two", "speaker", "model", "bf16"),
    "sync-builtin": ("one", "sync", "builtin", None),
    "speaker-builtin": ("two", "speaker", "builtin", None),
    "speaker4-bf16": ("four", "speaker", "model", "bf16"),
    "speaker4-fp32": ("four", "speaker", "model", "fp32"),
}
RATIOS = (  # (what, run, against it, the target ceiling)
    ("2 people / 1, --model fp32", "speaker-fp32", "sync-fp32", 2.0),
    ("2 people / 1, --model bf16", "speaker-bf16", "sync-bf16", 2.0),
    ("2 people / 1, built-in", "speaker-builtin", "sync-builtin", 1.6),
    ("4 people / 1, --model bf16", "speaker4-bf16", "sync-bf16", 4.0),
    ("4 people / 1, --model fp32", "speaker4-fp32", "sync-fp32", 4.0),
)
DEFAULT_RATIO_RUNS = [name for name in RATIO_RUNS if name != "speaker4-fp32"]


def ratio_clips(work: Path, seconds: float) -> dict[str, Path]:
    """The clips of --ratios (`bench_speaker.make_clip`), 720p, one sound (sync_sample_2's):
    "two" the middle 640 x 720 of sync_sample_2 and of VisualVoice's noisy_restaurant side
    by side, "one" its left half alone, "four" four single-speaker samples in a 2 x 2 grid."""
    from bench_speaker import FOUR, make_clip

    pair = [SAMPLES / "sync_sample_2.mp4", SAMPLES / "facebookresearch__VisualVoice__noisy_restaurant.mp4"]
    return {"one": make_clip(pair, work / "one.mp4", seconds, "half"),
            "two": make_clip(pair, work / "two.mp4", seconds, "halves"),
            "four": make_clip([SAMPLES / f for f in FOUR], work / "four.mp4", seconds, "grid")}


def ratios(clips: dict[str, Path], checkpoint: Path, work: Path, runs: list[str]) -> None:
    """The whole commands of `runs` one after another (child processes), then each ratio of
    wall (and CPU) times whose two runs were made, with the load average around them."""
    duration = media.probe(clips["one"]).num_frames / media.FPS
    print(f"  {'run':<16} {'clip':<5} {'wall s':>7} {'CPU s':>7} {'RTF wall':>9} {'RTF CPU':>8} "
          f"{'peak MB':>8} {'load before/after':>18}  answer")
    done = {}
    for name in runs:
        clip, command, model, precision = RATIO_RUNS[name]
        extra = ("--precision", precision) if precision else ()
        load = os.getloadavg()[0]
        r = end_to_end(clips[clip], checkpoint if model == "model" else "builtin", work / name,
                       command, extra)
        done[name] = r
        answer = (f"offset {r['result']['offset_frames']}" if command == "sync"
                  else f"{len(r['result']['tracks'])} tracks")
        print(f"  {name:<16} {clip:<5} {r['wall']:7.1f} {r['cpu']:7.1f} {r['wall'] / duration:9.3f} "
              f"{r['cpu'] / duration:8.3f} {r['peak_mb']:8.0f} {load:8.1f} / {os.getloadavg()[0]:<7.1f}  {answer}",
              flush=True)  # fmt: skip
    print(f"\n  {'ratio':<28} {'wall':>6} {'CPU':>6}  target (at most)")
    for what, run, base, ceiling in RATIOS:
        if run in done and base in done:
            a, b = done[run], done[base]
            print(f"  {what:<28} {a['wall'] / b['wall']:6.2f} {a['cpu'] / b['cpu']:6.2f}  {ceiling:.1f}")


def per_stage(clip: Path, checkpoint: Path, out: Path) -> tuple[dict, int]:
    """`find_offset(clip, model=checkpoint)` in this process, timed stage by stage through
    its progress hook (`stage_times`), after loading the model once (`Syncer`)."""
    from stage_times import timed_stages

    from gestsync import Syncer

    syncer = Syncer(checkpoint, device="cpu")
    result, timing = timed_stages(syncer.find_offset, clip, out_dir=out, always_write=True)
    return timing, result.offset_frames


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
    ap.add_argument("--compare", action="store_true",
                    help="before/after, fp32/bf16, sync and speaker: whole commands only")
    ap.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS),
                    help="with --compare: which runs (default all)")
    ap.add_argument("--ratios", action="store_true",
                    help="speaker against sync in one run: whole commands on a 720p "
                    "two-people composite, one of its halves and a 2 x 2 grid, then the ratios")
    ap.add_argument("--ratio-runs", nargs="+", choices=list(RATIO_RUNS), default=DEFAULT_RATIO_RUNS,
                    help="with --ratios: which runs (default all but speaker4-fp32)")
    ap.add_argument("--before-src", type=Path, help="with --compare: the package folder (holding "
                    "gestsync/) of the code to compare against (default: this code, pipeline off)")
    args = ap.parse_args(argv)
    if not args.source.is_file():
        print(f"skipped: no source clip {args.source} (give --source)")
        return 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads "
          f"(OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        if args.ratios:
            runs = args.ratio_runs
            if not weights.bf16_arithmetic("cpu"):
                runs = [name for name in runs if RATIO_RUNS[name][3] != "bf16"]
                print("no bf16 runs: this CPU has no bfloat16 instructions (gestsync refuses "
                      "--precision bf16 here)")
            clips = ratio_clips(work, args.seconds or 30.0)
            info = media.probe(clips["two"])
            print(f"clips: {info.num_frames} frames at 25 fps, two people {info.width}x{info.height}")
            ratios(clips, args.checkpoint or random_published_checkpoint(work / "model_rgb.pth"),
                   work, runs)
            print(f"load average at the end: {os.getloadavg()[0]:.1f}")
            return 0
        clip = args.source
        if args.seconds:
            from bench_sync import make_long_clip

            clip = make_long_clip(args.source, work / f"long{args.source.suffix}", args.seconds)
        checkpoint = args.checkpoint or random_published_checkpoint(work / "model_rgb.pth")
        info = media.probe(clip)
        duration = info.num_frames / media.FPS
        print(f"clip: {clip.name}, {info.width}x{info.height}, {info.num_frames} frames at 25 fps ({duration:.1f} s)")
        if args.compare:
            from bench_speaker import make_clip

            two = make_clip([SAMPLES / "asd_sample_1.mp4"], work / "2people.mp4", duration)
            compare(clip, two, checkpoint, work, args.runs, args.before_src)
            return 0
        if not args.skip_end_to_end:
            e2e = end_to_end(clip, checkpoint, work / "e2e")
            print(f"end to end `gestsync sync --checkpoint` (child process): {e2e['wall']:.1f} s wall, "
                  f"{e2e['cpu']:.1f} s CPU -> real-time factor {e2e['wall'] / duration:.2f} wall, "
                  f"{e2e['cpu'] / duration:.2f} CPU; peak RSS {e2e['peak_mb']:.0f} MB; "
                  f"offset {e2e['result']['offset_frames']} frames")  # fmt: skip
        if args.skip_stages:
            return 0
        from stage_times import print_stages

        timing, found = per_stage(clip, checkpoint, work / "stages")
        print_stages(f"per stage (this process, model loaded first; offset found: {found} "
                     "frames):", duration, timing)
    print(f"this process peak RSS (ru_maxrss): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
