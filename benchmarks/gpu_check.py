"""The GPU checks in one go, as one table: the published model on a CUDA device.

    .venv/bin/python benchmarks/gpu_check.py [--frames 250]

1. The authors' reference vectors (tests/data/vectors.npz: video and audio embeddings of
   the reference weights and inputs) on the GPU, to 1e-4 of the CPU numbers.
2. Throughput of the clip embedding (`embed_video_clip`, conv stack once per frame) on
   random 270 x 480 frames, frames per second, after a warm-up, in fp32 and in bf16, and
   the smallest cosine of a bf16 window embedding to its fp32 one.
3. `gestsync sync` and `gestsync speaker` end to end on a sample clip (random weights in
   the published format) with `--device cuda` and with `--device cpu`: exit status, the
   answers side by side, wall time, and for sync the largest score difference.
4. A two-process nccl training step (`torchrun --nproc_per_node=2 -m gestsync train`, the
   keypoint variant on generated clips), where two GPUs exist.
Where no CUDA device exists it prints one line and exits 0.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

TESTS = Path(__file__).resolve().parents[1] / "tests"
TOL = 1e-4


def reference_checks(device: str) -> list[tuple[str, str]]:
    """Relative error of the GPU's embeddings against the authors' reference vectors."""
    sys.path.insert(0, str(TESTS))
    from reference_weights import (VECTORS, published_checkpoint, reference_state_dict,
                                   reference_video, reference_wav, rel_err)

    from gestsync.audio import log_mel, mel_windows
    from gestsync.checkpoint import load_model

    vectors = np.load(VECTORS)
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "model_rgb.pth"
        torch.save(published_checkpoint(reference_state_dict()), path)
        model = load_model(path, device=device)
    with torch.inference_mode():
        video = model.embed_video(reference_video().to(device)).float().cpu()
        audio = model.embed_audio(mel_windows(log_mel(reference_wav()[0]), [0]).to(device))
    rows = []
    for name, ours, ref in (("video embedding", video, vectors["vid_emb_mean"]),
                            ("audio embedding", audio.float().cpu(), vectors["aud_emb"])):
        err = rel_err(ours, ref)
        rows.append((f"{name}: max relative error vs reference",
                     f"{err:.1e} ({'ok' if err < TOL else 'FAILS'} < {TOL:g})"))
    return rows


def throughput(device: str, frames: int) -> list[tuple[str, str]]:
    """Frames per second of `embed_video_clip` on random frames (after one warm-up run), in
    each precision, and the smallest cosine of bf16 window embeddings to fp32."""
    from gestsync.model import GestSyncModel

    model = GestSyncModel().eval().to(device)
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (frames, 270, 480, 3), dtype=np.uint8)
    rows, embeddings = [], {}
    for precision in ("fp32", "bf16"):
        model.set_precision(precision)
        model.embed_video_clip(clip[:60])  # warm-up: kernels, allocator
        torch.cuda.synchronize()
        start = time.perf_counter()
        embeddings[precision] = model.embed_video_clip(clip)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        rows.append((f"embed_video_clip {precision}, {frames} frames 270 x 480",
                     f"{frames / seconds:.0f} frames/s ({seconds / frames * 25:.3f} s per s of video)"))
    cos = torch.nn.functional.cosine_similarity(embeddings["fp32"], embeddings["bf16"], dim=1)
    rows.append(("bf16 window embeddings: smallest cosine to fp32", f"{cos.min():.5f}"))
    return rows


def end_to_end(device: str) -> list[tuple[str, str]]:
    """`gestsync sync` and `speaker` on a sample clip with `device` and on the CPU, each a
    child process (`bench_sync_model.end_to_end`)."""
    samples = TESTS.parents[1] / "shared" / "samples"
    clips = {"sync": samples / "sync_sample_2.mp4", "speaker": samples / "asd_sample_1.mp4"}
    if not all(c.is_file() for c in clips.values()):
        return [("end to end", f"skipped: no sample clips in {samples}")]
    sys.path[:0] = [str(TESTS), str(Path(__file__).parent)]
    from bench_sync_model import end_to_end as run_command
    from bench_sync_model import random_published_checkpoint

    rows = []
    with tempfile.TemporaryDirectory() as work:
        checkpoint = random_published_checkpoint(Path(work) / "model_rgb.pth")
        for command, clip in clips.items():
            found = {}
            for d in (device, "cpu"):
                try:  # the CPU's --device is overridden by the later one
                    found[d] = run_command(clip, checkpoint, Path(work) / f"{command}-{d}", command,
                                           ("--device", d))
                except SystemExit as failed:
                    found[d] = {"failed": str(failed)[-200:]}
            rows.append((f"gestsync {command} {clip.name}, {device} / cpu",
                         " / ".join(_account(command, found[d]) for d in (device, "cpu"))))
            if command == "sync" and not any("failed" in found[d] for d in (device, "cpu")):
                scores = [np.array(found[d]["result"]["scores"], dtype=float) for d in (device, "cpu")]
                rows.append((f"gestsync sync: largest score difference {device} - cpu",
                             f"{np.nanmax(np.abs(scores[0] - scores[1])):.1e}"))
    return rows


def _account(command: str, run: dict) -> str:
    """One CLI run in a few words: its answer and wall time, or how it failed."""
    if "failed" in run:
        return f"FAILS: {run['failed']}"
    result = run["result"]
    if command == "sync":
        return f"offset {result['offset_frames']:+d}, {run['wall']:.1f} s"
    return "speakers " + ",".join(str(s["speaker"]) for s in result["scenes"]) + f", {run['wall']:.1f} s"


def nccl_step() -> list[tuple[str, str]]:
    """Two torchrun processes, nccl, a few keypoint-variant steps on generated clips."""
    if torch.cuda.device_count() < 2:
        return [("2-process nccl training step", "skipped: needs 2 GPUs (nccl cannot share one)")]
    sys.path.insert(0, str(TESTS))
    from test_train import make_dataset  # generated clips in the prepare layout

    with tempfile.TemporaryDirectory() as work:
        data = make_dataset(Path(work) / "data")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m",
               "gestsync", "train", "--data", str(data), "--out", str(Path(work) / "run"),
               "--steps", "3", "--batch-size", "4", "--val-every", "0", "--quiet"]
        start = time.perf_counter()
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    verdict = "ok" if run.returncode == 0 else f"FAILS (exit {run.returncode}): {run.stderr[-300:]}"
    return [("2-process nccl training step (3 steps)", f"{verdict}, {time.perf_counter() - start:.1f} s")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=250, help="frames for the throughput check")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here, nothing to check (run it on a machine with a GPU)")
        return
    device = "cuda"
    rows = [("device", f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
                       f"{torch.cuda.device_count()} GPU(s)")]
    rows += reference_checks(device) + throughput(device, args.frames) + end_to_end(device) + nccl_step()
    width = max(len(name) for name, _ in rows)
    print(f"| {'check':{width}s} | result |\n|{'-' * (width + 2)}|---|")
    for name, value in rows:
        print(f"| {name:{width}s} | {value} |")


if __name__ == "__main__":
    main()
