"""What `--precision bf16` changes, against fp32, on the sync samples.

    .venv/bin/python benchmarks/precision_check.py [--checkpoint model_rgb.pth] [--clips ...]

For each clip (default ../shared/samples/sync_sample_1..3.mp4), with the published model
(or deterministic random weights in its format when no --checkpoint is given: a weak check,
since the offsets of random weights mean little):
1. `find_offset(clip, grid=1)` in fp32 and in bf16: the offsets and confidences; the fp32
   margin (best score minus the second best) beside the largest change bf16 made to any
   candidate's score: where the change is the larger, the two answers were a near-tie.
2. The person's masked crops and the clip's sound embedded in both precisions
   (`embed_video_clip`, `embed_audio_clip`): the cosine of each window's bf16 embedding to
   its fp32 one, minimum and mean.
3. Wall time of each embedding, in this process, fp32 then bf16, one after the other.
Prints one table; skips with one line when a clip is missing.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench_model.py

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "samples"
sys.path[:0] = [str(ROOT / "benchmarks")]

from bench_sync_model import random_published_checkpoint  # noqa: E402

from gestsync import Syncer, audio, crops, media, scan  # noqa: E402

PRECISIONS = ("fp32", "bf16")


def margin_and_change(fp32, bf16) -> tuple[float, float]:
    """(fp32's best score minus its second best, the largest |bf16 - fp32| score change
    over the candidates)."""
    best, second = sorted((s for s in fp32.scores if s is not None), reverse=True)[:2]
    change = max(abs(a - b) for a, b in zip(fp32.scores, bf16.scores) if a is not None and b is not None)
    return best - second, change


def embeddings(syncer: Syncer, clip: Path) -> tuple[dict, dict]:
    """({precision: (video, sound) embeddings}, {precision: seconds}) of the clip's main person."""
    net = syncer.model.net
    info = media.probe(clip)
    _, person = scan.people_to_search(info, stride=2, workers=1)[0]
    frames = list(crops.masked_crops(info, person))
    mel = audio.log_mel(media.read_audio(info))
    out, seconds = {}, {}
    for precision in PRECISIONS:
        net.set_precision(precision)
        start = time.perf_counter()
        out[precision] = (net.embed_video_clip(frames), net.embed_audio_clip(mel))
        seconds[precision] = time.perf_counter() - start
    net.set_precision("fp32")
    return out, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, help="weights (default: random, published format)")
    ap.add_argument("--clips", type=Path, nargs="+",
                    default=[SAMPLES / f"sync_sample_{i}.mp4" for i in (1, 2, 3)])
    args = ap.parse_args(argv)
    missing = [str(c) for c in args.clips if not c.is_file()]
    if missing:
        print(f"skipped: no clip {', '.join(missing)}")
        return 0
    with tempfile.TemporaryDirectory() as work:
        checkpoint = args.checkpoint or random_published_checkpoint(Path(work) / "model_rgb.pth")
        weights = "published weights" if args.checkpoint else "random weights in the published format"
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {weights}")
        syncers = {p: Syncer(checkpoint, device="cpu", precision=p) for p in PRECISIONS}
        print(f"  {'clip':<18} {'offset fp32/bf16':>17} {'confidence fp32/bf16':>21} "
              f"{'margin':>7} {'change':>7} {'video cos min/mean':>19} {'sound cos min/mean':>19} "
              f"{'embed s fp32/bf16':>18}")
        for clip in args.clips:
            found = {p: s.find_offset(clip, grid=1) for p, s in syncers.items()}
            emb, seconds = embeddings(syncers["fp32"], clip)
            margin, change = margin_and_change(found["fp32"], found["bf16"])
            cos = [torch.nn.functional.cosine_similarity(emb["fp32"][k], emb["bf16"][k], dim=1) for k in (0, 1)]
            print(f"  {clip.name:<18} {found['fp32'].offset_frames:>+8d} / {found['bf16'].offset_frames:<+6d} "
                  f"{found['fp32'].confidence:>11.3f} / {found['bf16'].confidence:<7.3f} "
                  f"{margin:7.1e} {change:7.1e} "
                  f"{cos[0].min():>10.5f} / {cos[0].mean():.5f} {cos[1].min():>10.5f} / {cos[1].mean():.5f} "
                  f"{seconds['fp32']:>9.1f} / {seconds['bf16']:.1f}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
