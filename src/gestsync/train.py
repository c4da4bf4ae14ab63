"""`gestsync train`: train the RGB GestSync model or the keypoint variant on prepared clips.

Objective (the authors'): from one clip take `windows` (4) one-second windows `gap` (25)
frames apart; embed each window's picture and sound; the `windows x windows` matrix of
scaled cosines should pick the matching pair: cross-entropy by rows plus by columns.

Runs as one process, or several under `torchrun --nproc_per_node=N -m gestsync train ...`
(DistributedDataParallel; gloo on CPU, nccl on GPU). `--batch-size` is per process: the
global batch is batch_size x processes, cut from one shuffled order shared by all ranks,
so N processes with batch B follow exactly the run of 1 process with batch N x B
(for the keypoint variant, with dropout 0; the RGB model's batch-norm sees each process's
part of the batch, unless synced on GPU).

Exact resume: the data order and window positions are functions of (seed, epoch, index)
and the random state is re-seeded from (seed, rank, step) at every step, so a run resumed
from a checkpoint continues as if never stopped. Inference code never imports this module.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from .audio import WINDOW_FRAMES, log_mel, mel_windows
from .timebase import SAMPLES_PER_FRAME
from .checkpoint import checkpoint_payload, load_weights, read_checkpoint, resolve_device, split_checkpoint
from . import variants
from .errors import GestsyncError
from .keypoint_model import KeypointModelConfig
from .model import ModelConfig
from .outputs import atomic_path
from .prepare import read_manifest, read_wav

TRAIN_KEY = "gestsync_train"  # our checkpoints: the TrainConfig next to the model config
LAST = "last.pth"  # checkpoint written every --ckpt-every steps and at the end
TRAIN_LOG, VAL_LOG = "train.csv", "val.csv"
TOP_K = 2  # the k of the top-k matching accuracy (of `windows` candidates)
OFFSET_RANGE = 15  # frames: validation offset search in [-15, 15] (+-0.6 s)
OFFSET_TOLERANCE = 1  # frames: a validation offset within this of 0 counts as right
OFFSET_FRAMES = 250  # frames of each clip scored (10 s; bounds memory for the rgb variant)


@dataclass(frozen=True)
class TrainConfig:
    """Options of a training run (saved in the checkpoint; `--resume` reuses them)."""

    data: str
    out: str
    variant: str = "keypoint"  # "keypoint" or "rgb"
    steps: int = 1000  # optimizer steps in all
    batch_size: int = 12  # clips per step per process (the authors: 12)
    lr: float = 1e-4  # Adam (the authors' value)
    weight_decay: float = 0.0
    windows: int = 4  # windows per clip in the matching task
    gap: int = WINDOW_FRAMES  # frames between consecutive windows (1 s)
    seed: int = 0
    amp: bool = True  # mixed precision (float16 autocast + grad scaler) on GPU only
    val_every: int = 100  # steps between validations (0: only at the end)
    ckpt_every: int = 100  # steps between checkpoints (and at the end)
    log_every: int = 10  # steps between train.csv rows
    max_val_clips: int = 200
    loader_workers: int = 2  # DataLoader worker processes per training process (1 thread each)
    init: str | None = None  # weights to start from (e.g. the published model_rgb.pth)
    model: dict = field(default_factory=dict)  # architecture overrides (ModelConfig fields)

    def __post_init__(self) -> None:
        if self.variant not in variants.VARIANTS:
            raise ValueError(f"--variant must be one of {', '.join(variants.VARIANTS)}, got {self.variant!r}")
        if min(self.steps, self.batch_size, self.ckpt_every, self.log_every) < 1 or self.windows < 2:
            raise ValueError("--steps, --batch-size, --ckpt-every, --log-every must be >= 1 and --windows >= 2")
        if self.gap < 0 or self.lr <= 0:
            raise ValueError("--gap must be >= 0 frames and --lr > 0")

    @property
    def span(self) -> int:
        """Frames one sample covers: 175 for 4 windows 25 frames apart."""
        return self.windows * WINDOW_FRAMES + (self.windows - 1) * self.gap

    def model_config(self) -> ModelConfig | KeypointModelConfig:
        return variants.named(self.variant).config.from_dict(dict(self.model))


# ------------------------------------------------------------------------------- data

class ClipWindows(torch.utils.data.Dataset):
    """Samples of the matching task from prepared clips (rows of `prepare.read_manifest`).

    Item (index, epoch): `windows` picture windows and their sound, from a start drawn
    from (seed, epoch, index) (the middle of the clip when epoch is None: validation).
    Picture: uint8 `W x 25 x 270 x 480 x 3` (rgb) or float `W x 25 x 85` (keypoint);
    sound: float `W x 1 x 80 x 100` log-mel.
    """

    def __init__(self, rows: list[dict], config: TrainConfig) -> None:
        self.rows = [r for r in rows if r["num_frames"] >= config.span]
        self.config = config

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: tuple[int, int | None]) -> tuple[torch.Tensor, torch.Tensor]:
        index, epoch = key
        row, c = self.rows[index], self.config
        room = row["num_frames"] - c.span
        start = room // 2 if epoch is None else int(_rng(c.seed, epoch, index).integers(0, room + 1))
        starts = [start + w * (WINDOW_FRAMES + c.gap) for w in range(c.windows)]
        return self._picture(row, starts), self._sound(row, starts)

    def _picture(self, row: dict, starts: list[int]) -> torch.Tensor:
        variant = variants.named(self.config.variant)
        frames = variant.prepared_picture(row, starts[0], starts[-1] + WINDOW_FRAMES)
        return torch.from_numpy(np.stack([frames[s - starts[0]:s - starts[0] + WINDOW_FRAMES] for s in starts]))

    @staticmethod
    def _sound(row: dict, starts: list[int]) -> torch.Tensor:
        """Log-mel windows computed on each window's sound plus one frame each side: the same
        numbers as on the whole clip (the STFT reaches 256 samples < 1 frame out), less work."""
        audio = read_wav(row["audio"])
        out = []
        for s in starts:
            first = max(s - 1, 0)
            mel = log_mel(audio[first * SAMPLES_PER_FRAME:(s + WINDOW_FRAMES + 1) * SAMPLES_PER_FRAME])
            out.append(mel_windows(mel, [s - first]))
        return torch.cat(out)


def _rng(*seed: int) -> np.random.Generator:
    return np.random.default_rng([abs(int(s)) for s in seed])


def collate(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    pictures, sounds = zip(*items)
    return torch.stack(pictures), torch.stack(sounds)


class EpochBatches(torch.utils.data.Sampler):
    """This rank's part of every global batch, from step `start_step` on.

    Epoch e shuffles the clips with seed (seed, e); global batch i of the epoch is
    clips [i*G, (i+1)*G) of that order (G = batch_size x world, the rest dropped); rank r
    takes its r-th share. Items are (clip index, epoch).
    """

    def __init__(self, n: int, batch_size: int, world: int, rank: int, seed: int, start_step: int,
                 steps: int) -> None:
        self.n, self.batch, self.world, self.rank, self.seed = n, batch_size, world, rank, seed
        self.start, self.steps = start_step, steps
        self.per_epoch = n // (batch_size * world)

    def __len__(self) -> int:
        return self.steps - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        g = self.batch * self.world
        for step in range(self.start, self.steps):
            epoch, i = divmod(step, self.per_epoch)
            order = _rng(self.seed, epoch, 1 << 20).permutation(self.n)
            mine = order[i * g:(i + 1) * g][self.rank * self.batch:(self.rank + 1) * self.batch]
            yield [(int(k), epoch) for k in mine]


# ------------------------------------------------------------------------------ model

def matching_loss(model: nn.Module, video: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and logits of B samples: `B x W x D` picture and sound embeddings.

    logits[b, i, j] = scale * cos(video[b, i], audio[b, j]); loss = mean over samples of
    cross-entropy by rows + cross-entropy by columns (target: the diagonal).
    """
    logits = _core(model).similarity(video.float()[:, :, None], audio.float()[:, None, :])  # B x W x W
    b, w = logits.shape[:2]
    target = torch.arange(w, device=logits.device).repeat(b)
    rows = F.cross_entropy(logits.reshape(b * w, w), target)
    cols = F.cross_entropy(logits.transpose(1, 2).reshape(b * w, w), target)
    return rows + cols, logits


def _core(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def embed_batch(model: nn.Module, pictures: torch.Tensor, sounds: torch.Tensor,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """`B x W x ...` inputs -> `B x W x D` picture and sound embeddings (one forward pass)."""
    b, w = pictures.shape[:2]
    pictures = pictures.to(device, non_blocking=True).flatten(0, 1)
    if pictures.dtype == torch.uint8:  # rgb: N x 25 x H x W x 3 -> N x 3 x 25 x H x W in [0, 1]
        pictures = pictures.permute(0, 4, 1, 2, 3).float().div_(255.0)
    video, audio = model(pictures, sounds.to(device, non_blocking=True).flatten(0, 1))
    return video.reshape(b, w, -1), audio.reshape(b, w, -1)


def build(config: TrainConfig, device: torch.device) -> nn.Module:
    """A fresh model of the configured variant (same weights on every rank), or `--init`'s."""
    torch.manual_seed(config.seed)
    model_config = config.model_config()
    variant = variants.named(config.variant)
    model = variant.network(model_config)
    if variant.published:
        for unused in (model.lstm, model.fc):  # in the published file, not in the forward pass
            unused.requires_grad_(False)
    if config.init:
        state, init_config = split_checkpoint(read_checkpoint(config.init), config.init)
        if init_config.variant != model_config.variant:
            raise GestsyncError(f"--init {config.init} holds a {init_config.variant} model: use --variant {init_config.variant}")
        load_weights(model, state, config.init)
    return model.to(device)



# ---------------------------------------------------------------------------- runtime

@dataclass
class Runtime:
    """Where this process runs: rank, world size, device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def start_runtime(device: str | None) -> Runtime:
    """Join the torchrun process group when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local)
    if world > 1:
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Runtime(rank, world, local, dev)


def stop_runtime(rt: Runtime) -> None:
    if rt.world > 1 and dist.is_initialized():
        dist.barrier()  # without it a multi-node run can abort at exit
        dist.destroy_process_group()


def seed_step(seed: int, rank: int, step: int) -> None:
    """Random state for one step (dropout), a function of (seed, rank, step): exact resume."""
    torch.manual_seed(int(_rng(seed, rank, step).integers(2**62)))


# ------------------------------------------------------------------------ checkpoints

def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scaler: torch.amp.GradScaler, step: int, epoch: int, config: TrainConfig) -> None:
    """Our checkpoint, written atomically (temp file, then os.replace).

    Keys: the authors' `state_dict`, `optimizer`, `global_step`, `global_epoch`; ours:
    `gestsync_config` (architecture, read by `load_model`), `gestsync_train`, `scaler`.
    """
    payload = checkpoint_payload(_core(model), optimizer=optimizer.state_dict(), global_step=step,
                                 global_epoch=epoch, scaler=scaler.state_dict(), **{TRAIN_KEY: asdict(config)})
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())


def resume_config(out: str) -> TrainConfig:
    """The TrainConfig saved in `out/last.pth`."""
    saved = read_checkpoint(Path(out) / LAST).get(TRAIN_KEY)
    if not isinstance(saved, dict):
        raise GestsyncError(f"{Path(out) / LAST} was not written by gestsync train: cannot --resume from it")
    known = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in saved.items() if k in known})


def load_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler) -> int:
    """Restore weights, optimizer and scaler from our checkpoint; returns its step."""
    obj = read_checkpoint(path, "cpu")
    state, _ = split_checkpoint(obj, path)
    load_weights(_core(model), state, path)
    optimizer.load_state_dict(obj["optimizer"])
    scaler.load_state_dict(obj.get("scaler", {}))
    return int(obj["global_step"])


# ------------------------------------------------------------------------- validation

@torch.no_grad()
def validate(model: nn.Module, data: ClipWindows, config: TrainConfig, device: torch.device) -> dict[str, float]:
    """Matching task on held-out clips (middle span of each): loss, top-1 and top-k accuracy
    of picking the right sound for each picture window (rows) and picture for each sound
    (columns), averaged; chance is 1/windows and k/windows."""
    core = _core(model)
    core.eval()
    n = min(len(data), config.max_val_clips)
    losses, top1, topk = [], [], []
    for s in range(0, n, config.batch_size):
        pictures, sounds = collate([data[(i, None)] for i in range(s, min(s + config.batch_size, n))])
        loss, logits = matching_loss(core, *embed_batch(core, pictures, sounds, device))
        losses.append(float(loss) * len(pictures))
        for view in (logits, logits.transpose(1, 2)):
            ranks = (view > view.diagonal(dim1=1, dim2=2)[..., None]).sum(-1)  # B x W: 0 = best
            top1.append(ranks.eq(0).float().flatten())
            topk.append(ranks.lt(TOP_K).float().flatten())
    metrics = {"val_loss": sum(losses) / n, "val_top1": float(torch.cat(top1).mean()),
               f"val_top{TOP_K}": float(torch.cat(topk).mean()), "val_clips": n} if n else {}
    if n:
        metrics["val_offset_acc"] = offset_accuracy(core, data.rows[:n], config.variant)
    core.train()
    return metrics


def offset_accuracy(core: nn.Module, rows: list[dict], variant: str) -> float:
    """Share of held-out clips (in sync, as prepared) whose best offset in +-OFFSET_RANGE
    frames, scored over the whole clip as `gestsync sync --checkpoint` does, is within
    OFFSET_TOLERANCE frames of 0. Chance is about 3 / 31."""
    from .scoring import shifted_cosines
    from .offset import best_lag, lag_scores

    lags = np.arange(-OFFSET_RANGE, OFFSET_RANGE + 1)
    scale = float(core.logits_scale.weight.detach().reshape(()))
    hits = 0
    for row in rows:
        n = min(row["num_frames"], OFFSET_FRAMES)
        video = core.embed_video_clip(variants.named(variant).prepared_picture(row, 0, n))
        sound = core.embed_audio_clip(log_mel(read_wav(row["audio"])[:n * SAMPLES_PER_FRAME]).to(core.device))
        evidence = shifted_cosines(video, sound, lags, scale, n)
        hits += abs(best_lag(lags, lag_scores(evidence, (0, n)))) <= OFFSET_TOLERANCE
    return hits / max(len(rows), 1)


# ------------------------------------------------------------------------------- logs

class CsvLog:
    """Append rows to a CSV file (rank 0); on resume, rows past the resumed step are dropped."""

    def __init__(self, path: Path, columns: list[str], resume_step: int | None) -> None:
        self.path, self.columns = path, columns
        if resume_step is None or not path.exists():
            path.write_text(",".join(columns) + "\n")
            return
        lines = path.read_text().splitlines()
        kept = [ln for ln in lines[1:] if ln and int(ln.split(",", 1)[0]) <= resume_step]
        path.write_text("\n".join([lines[0]] + kept) + "\n")

    def write(self, row: dict[str, Any]) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(c)) for c in self.columns])


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else ("" if v is None else v)


# ------------------------------------------------------------------------------- loop

def train(config: TrainConfig, resume: bool = False, device: str | None = None,
          quiet: bool = False) -> dict[str, Any]:
    """Run (or continue, with `resume`) a training; returns the final metrics (rank 0)."""
    rt = start_runtime(device)
    try:
        return _train(config, rt, resume, quiet)
    finally:
        stop_runtime(rt)


def _datasets(config: TrainConfig, rt: Runtime) -> tuple[ClipWindows, ClipWindows]:
    train_set = ClipWindows(read_manifest(config.data, "train"), config)
    val_set = ClipWindows(read_manifest(config.data, "val"), config)
    need = config.batch_size * rt.world
    if len(train_set) < need:
        raise GestsyncError(
            f"{len(train_set)} training clips of at least {config.span} frames in {config.data}, fewer "
            f"than one global batch ({need}): prepare more videos, or lower --batch-size, --windows or --gap")
    return train_set, val_set


@dataclass
class _Run:
    """Everything a training loop needs, set up by `_setup`."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    use_amp: bool
    step: int
    sampler: EpochBatches
    loader: torch.utils.data.DataLoader
    val_set: ClipWindows


def _setup(config: TrainConfig, rt: Runtime, resume: bool) -> _Run:
    train_set, val_set = _datasets(config, rt)
    model = build(config, rt.device)
    use_amp = config.amp and rt.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                 weight_decay=config.weight_decay)
    step = load_state(Path(config.out) / LAST, model, optimizer, scaler) if resume else 0
    if rt.world > 1:
        if rt.device.type == "cuda" and variants.named(config.variant).batch_norm:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    sampler = EpochBatches(len(train_set), config.batch_size, rt.world, rt.rank, config.seed, step, config.steps)
    loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler, collate_fn=collate,
                                         num_workers=config.loader_workers, pin_memory=rt.device.type == "cuda")
    return _Run(model, optimizer, scaler, use_amp, step, sampler, loader, val_set)


def _train(config: TrainConfig, rt: Runtime, resume: bool, quiet: bool) -> dict[str, Any]:
    run = _setup(config, rt, resume)
    logs = _open_logs(Path(config.out), rt, run.step if resume else None)
    bar = _progress(config.steps, run.step, quiet or not rt.main)
    last: dict[str, Any] = {}
    losses, timer = [], time.perf_counter()
    run.model.train()
    for pictures, sounds in run.loader:
        seed_step(config.seed, rt.rank, run.step)
        losses.append(_step(run.model, run.optimizer, run.scaler, pictures, sounds, rt.device, run.use_amp))
        run.step += 1
        bar.update(1)
        if run.step % config.log_every == 0 or run.step == config.steps:
            last = _log_row(run, rt, losses, config.batch_size * rt.world / (time.perf_counter() - timer) * len(losses))
            bar.set_postfix(loss=f"{last['loss']:.3f}", rate=f"{last['samples_per_s']:.1f}/s", refresh=False)
            if rt.main:
                logs[0].write(last)
            losses, timer = [], time.perf_counter()
        last.update(_maybe_validate(run.model, run.val_set, config, rt, run.step, logs))
        if run.step % config.ckpt_every == 0 or run.step == config.steps:
            _checkpoint(run, rt, config)
    bar.close()
    return last


def _log_row(run: _Run, rt: Runtime, losses: list[float], rate: float) -> dict[str, Any]:
    """train.csv row: mean loss of the steps since the last row (all ranks), scale, speed."""
    return {"step": run.step, "epoch": (run.step - 1) // run.sampler.per_epoch,
            "loss": _mean_over_ranks(sum(losses) / len(losses), rt),
            "scale": float(_core(run.model).logits_scale.weight.detach()), "samples_per_s": rate}


def _checkpoint(run: _Run, rt: Runtime, config: TrainConfig) -> None:
    if rt.main:
        save_checkpoint(Path(config.out) / LAST, run.model, run.optimizer, run.scaler, run.step,
                        run.step // run.sampler.per_epoch, config)
    if rt.world > 1:
        dist.barrier()


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
          pictures: torch.Tensor, sounds: torch.Tensor, device: torch.device, use_amp: bool) -> float:
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
        loss, _ = matching_loss(model, *embed_batch(model, pictures, sounds, device))
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach())


def _mean_over_ranks(value: float, rt: Runtime) -> float:
    if rt.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=rt.device)
    dist.all_reduce(t)
    return float(t) / rt.world


def _maybe_validate(model: nn.Module, val_set: ClipWindows, config: TrainConfig, rt: Runtime,
                    step: int, logs: list[CsvLog]) -> dict[str, Any]:
    due = (config.val_every and step % config.val_every == 0) or step == config.steps
    if not due or not len(val_set):
        return {}
    metrics = {}
    if rt.main:
        metrics = {"step": step, **validate(model, val_set, config, rt.device)}
        logs[1].write(metrics)
    if rt.world > 1:
        dist.barrier()
    return metrics


def _open_logs(out: Path, rt: Runtime, resume_step: int | None) -> list[CsvLog]:
    if not rt.main:
        return []
    out.mkdir(parents=True, exist_ok=True)
    return [CsvLog(out / TRAIN_LOG, ["step", "epoch", "loss", "scale", "samples_per_s"], resume_step),
            CsvLog(out / VAL_LOG, ["step", "val_loss", "val_top1", f"val_top{TOP_K}", "val_offset_acc", "val_clips"],
                   resume_step)]


def _progress(total: int, done: int, disabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit="step", desc="train", disable=disabled,
                file=sys.stderr, dynamic_ncols=True)


# ---------------------------------------------------------------------------- command

TRAIN_DESCRIPTION = """\
Train GestSync (--variant rgb, the published architecture) or its lighter keypoint
variant on the clips of `gestsync prepare`. Writes the checkpoint last.pth (for
`gestsync sync --checkpoint`) and the train.csv and val.csv logs to the --out
folder; --resume goes on from last.pth exactly. On several processes or GPUs,
start it with torchrun (last example)."""
TRAIN_EXAMPLES = """\
  gestsync train --data data/ --out runs/kp --steps 2000
  gestsync train --out runs/kp --resume --steps 4000          (extend the run)
  gestsync train --data data/ --out runs/rgb --variant rgb --init model_rgb.pth
  torchrun --nproc_per_node=2 -m gestsync train --data data/ --out runs/kp"""


def build_parser() -> argparse.ArgumentParser:
    from .arguments import Parser, help_texts

    p = Parser(prog="gestsync train", **help_texts(TRAIN_DESCRIPTION, TRAIN_EXAMPLES))
    p.add_argument("--data", metavar="DIR", help="prepare's output folder (or its manifest.jsonl); "
                   "required unless --resume")
    p.add_argument("--out", required=True, metavar="DIR", help="checkpoints (last.pth) and CSV logs go here")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly (its saved options win)")
    p.add_argument("--variant", choices=tuple(variants.VARIANTS), default="keypoint",
                   help="keypoint: light, trains on a CPU (default); rgb: the published architecture")
    p.add_argument("--init", metavar="PATH", help="start from these weights (e.g. model_rgb.pth) to fine-tune")
    p.add_argument("--steps", type=int, metavar="N", help="optimizer steps in all (default 1000; with --resume: to extend the run)")
    p.add_argument("--batch-size", type=int, metavar="N", default=12, help="clips per step per process (default 12)")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default 1e-4)")
    p.add_argument("--weight-decay", type=float, default=0.0, metavar="WD", help="Adam weight decay (default 0)")
    p.add_argument("--windows", type=int, metavar="N", default=4, help="windows per clip in the matching task (default 4)")
    p.add_argument("--gap", type=int, metavar="N", default=WINDOW_FRAMES, help="frames between windows (default 25 = 1 s)")
    p.add_argument("--seed", type=int, metavar="N", default=0, help="random seed (default 0)")
    p.add_argument("--no-amp", action="store_true", help="no mixed precision on GPU (it is never used on CPU)")
    p.add_argument("--val-every", type=int, metavar="N", default=100, help="steps between validations (default 100; 0: at the end only)")
    p.add_argument("--ckpt-every", type=int, metavar="N", default=100, help="steps between checkpoints (default 100)")
    p.add_argument("--log-every", type=int, metavar="N", default=10, help="steps between train.csv rows (default 10)")
    p.add_argument("--max-val-clips", type=int, metavar="N", default=200, help="validation clips used (default 200)")
    p.add_argument("--loader-workers", type=int, metavar="N", default=2,
                   help="data loading processes per process, one thread each (default 2; 0: in the training process)")
    p.add_argument("--model", action="append", default=[], metavar="FIELD=VALUE",
                   help="architecture field, e.g. hidden=64 or dropout=0 (repeatable)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads of this process (default: torch's; 1 is often faster on a busy CPU)")
    p.add_argument("--device", metavar="DEV", help="cpu, cuda (default: cuda if available); torchrun ranks use cuda:LOCAL_RANK")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _model_overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise GestsyncError(f"--model {item!r} is not FIELD=VALUE, e.g. --model hidden=64")
        for cast in (int, float):
            try:
                out[name] = cast(text)
                break
            except ValueError:
                out[name] = text
    return out


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    if args.resume:
        saved = resume_config(args.out)
        return replace(saved, steps=args.steps) if args.steps else saved
    if not args.data:
        raise GestsyncError("--data DIR is needed (the output folder of gestsync prepare)")
    return TrainConfig(
        data=args.data, out=args.out, variant=args.variant, steps=args.steps or 1000, batch_size=args.batch_size,
        lr=args.lr, weight_decay=args.weight_decay, windows=args.windows, gap=args.gap, seed=args.seed,
        amp=not args.no_amp, val_every=args.val_every, ckpt_every=args.ckpt_every, log_every=args.log_every,
        max_val_clips=args.max_val_clips, loader_workers=args.loader_workers, init=args.init,
        model=_model_overrides(args.model))


def main(argv: Sequence[str] | None = None) -> int:
    """`gestsync train ...`; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)  # an entry point may set this process's threads
    config = config_from_args(args)
    config.model_config()  # architecture errors before any work
    metrics = train(config, resume=args.resume, device=args.device, quiet=args.quiet)
    if metrics and int(os.environ.get("RANK", "0")) == 0:
        print(" ".join(f"{k}={_fmt(v)}" for k, v in metrics.items()))
    return 0
