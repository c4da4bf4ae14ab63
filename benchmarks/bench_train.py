"""Training speed (samples per second, one sample = one clip's 4 windows) of both variants.

Generates a tiny prepared dataset in a temp folder (random 480 x 270 clips, noise sound,
a synthetic person's keypoints), trains, and reports the rate of every step but the first
(warm-up) from train.csv.
Data loading runs in the training process (--loader-workers 0) unless told otherwise, so
the figure includes reading and decoding clips, as in a real run.

    python benchmarks/bench_train.py                         # both variants, CPU
    python benchmarks/bench_train.py --variant rgb --batch-size 2 --steps 3
    python benchmarks/bench_train.py --threads 1               # often faster on a busy CPU
    python benchmarks/bench_train.py --device cuda --batch-size 12

Measured numbers: see README, "Train your own".
"""

from __future__ import annotations

import argparse
import json
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from gestsync.prepare import write_wav
from gestsync.train import TrainConfig, train

FPS, RATE = 25, 16000


def make_clip(root: Path, name: str, frames: int, rgb: bool, rng: np.random.Generator) -> dict:
    """One prepared clip: npz keypoints, wav sound and (for rgb) an H.264 480 x 270 mp4."""
    kp = np.ones((frames, 33, 4), np.float32)
    kp[..., 0] = 320 + rng.normal(0, 30, (frames, 33))
    kp[..., 1] = 180 + rng.normal(0, 30, (frames, 33))
    np.savez(root / f"{name}.npz", keypoints=kp, detected=np.ones(frames, bool),
             crop_boxes=np.tile([107, 60, 533, 300], (frames, 1)), frames=np.arange(frames))
    write_wav(root / f"{name}.wav", (0.1 * rng.standard_normal(frames * RATE // FPS)).astype(np.float32))
    if rgb:
        with av.open(str(root / f"{name}.mp4"), "w") as out:
            s = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
            s.width, s.height, s.pix_fmt = 480, 270, "yuv420p"
            s.time_base = s.codec_context.time_base = Fraction(1, FPS)
            base = rng.integers(0, 256, (270, 480, 3), dtype=np.uint8)
            for i in range(frames):
                frame = av.VideoFrame.from_ndarray(np.roll(base, 4 * i, axis=1), format="rgb24")
                frame.pts = i
                out.mux(s.encode(frame))
            out.mux(s.encode(None))
    return {"kind": "clip", "clip_id": name, "split": "train", "video": f"{name}.mp4", "audio": f"{name}.wav",
            "keypoints": f"{name}.npz", "num_frames": frames}


def make_dataset(root: Path, clips: int, frames: int, rgb: bool) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    rows = [make_clip(root, f"c{i:03d}", frames, rgb, rng) for i in range(clips)]
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def measure(variant: str, steps: int, batch: int, device: str, workers: int, model: dict) -> dict:
    """Train steps + 1 steps; the rate of all but the first (warm-up) step, from train.csv."""
    with tempfile.TemporaryDirectory() as tmp:
        data = make_dataset(Path(tmp) / "data", clips=max(batch * 2, 4), frames=180, rgb=variant == "rgb")
        config = TrainConfig(data=str(data), out=str(Path(tmp) / "run"), variant=variant, steps=steps + 1,
                             batch_size=batch, val_every=0, ckpt_every=10**6, log_every=1,
                             loader_workers=workers, model=model)
        train(config, device=device, quiet=True)
        lines = (Path(tmp) / "run" / "train.csv").read_text().splitlines()[2:]  # header, warm-up step
    rates = np.array([float(line.split(",")[4]) for line in lines])
    rate = len(rates) / np.sum(1.0 / rates)  # equal samples per step: harmonic mean
    return {"variant": variant, "device": device, "batch_size": batch, "timed_steps": len(rates),
            "threads": torch.get_num_threads(), "samples_per_s": round(float(rate), 3),
            "seconds_per_step": round(batch / float(rate), 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", choices=("keypoint", "rgb", "both"), default="both")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 20 keypoint, 2 rgb)")
    p.add_argument("--batch-size", type=int, default=None, help="default 12 keypoint, 1 rgb")
    p.add_argument("--device", default="cpu")
    p.add_argument("--loader-workers", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for variant in ("keypoint", "rgb") if args.variant == "both" else (args.variant,):
        steps = args.steps or (20 if variant == "keypoint" else 2)
        batch = args.batch_size or (12 if variant == "keypoint" else 1)
        print(json.dumps(measure(variant, steps, batch, args.device, args.loader_workers, {})), flush=True)


if __name__ == "__main__":
    main()
