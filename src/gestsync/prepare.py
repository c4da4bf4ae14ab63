"""`gestsync prepare`: raw videos -> per person-track training clips (scene cut, tracked,
cropped 480 x 270, face hidden) with 16 kHz sound and body keypoints, and a manifest.

Layout of the output folder (nothing is pickled):
- `clips/<video_id>/<clip_id>.mp4`: the masked crop, H.264, 480 x 270, 25 fps, no sound;
- `clips/<video_id>/<clip_id>.wav`: the sound under it, 16 kHz mono 16-bit PCM;
- `clips/<video_id>/<clip_id>.npz`: `keypoints` T x 33 x 4 (x, y, z in source pixels,
  visibility 0 where none were found), `posed` T bool (landmarks found), `detected` T bool
  (the person detector found the box), `boxes` T x 4 (the detector's person box,
  interpolated between its looks, source pixels), `crop_boxes` T x 4 (the square actually
  cut, source pixels, may extend past the frame: `crops.square_boxes`), `frames` T (25 fps
  grid index in the source), `frame_size` (w, h);
- `videos/<video_id>.json`: one record per finished source video (status "ok" or "error"
  with the error, timings, and its clip rows). Written last and atomically: it is the
  "done" marker that makes re-runs skip the video;
- `manifest.jsonl`: every video record (`kind: "video"`) and clip row (`kind: "clip"`),
  rebuilt from `videos/` at the end of each run; with `parquet`, `manifest.parquet` too.

The split (train/val) is a hash of the video id, so every clip of a source video lands in
the same split, whatever the other videos are. The batch engine (`batch.py`) runs
`process_video` on each video (`PrepareTask`), inline, in a process pool or on Ray actors,
and writes each record as its video finishes (`ledger.RecordFolder`).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
import wave
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from . import batch, crops, ledger, media, outputs, people, scan
from .errors import EXTRA_PACKAGES, GestsyncError, UsageError, needs_extra
from .scenes import CUT_THRESHOLD
from .timebase import FPS

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
RECORDS = "videos"  # per-video records (done markers)
CLIPS = "clips"
PARTIAL = ".partial-"  # staging folders of videos in flight; removed when found stale
SPLIT_BUCKETS = 10_000  # resolution of the hash split


@dataclass(frozen=True)
class PrepareOptions:
    """What `prepare` makes of each video. Plain values only (sent to worker processes)."""

    out_dir: str
    val_fraction: float = 0.1  # share of source videos (not clips) in the val split
    min_seconds: float = 2.0  # shorter person tracks are dropped
    max_people: int = 2  # people tracked per frame
    pose_stride: int = 1  # pose on every k-th frame; keypoints between are interpolated
    scene_threshold: float = CUT_THRESHOLD  # shot cuts as `gestsync speaker` finds them
    crf: int = 18  # H.264 quality of the clips (lower: better, bigger)
    retry_failed: bool = False  # redo videos whose record says "error"
    parquet: bool = False  # also write manifest.parquet (needs pyarrow)

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction <= 1.0:
            raise UsageError(f"--val-fraction must be in [0, 1], got {self.val_fraction}")
        if self.min_seconds < 1.0:
            raise UsageError(f"--min-seconds must be at least 1 (one model window), got {self.min_seconds}")
        if self.max_people < 1 or not 1 <= self.pose_stride <= people.MAX_GAP + 1:
            raise UsageError(f"need --max-people >= 1 and --pose-stride in 1 .. {people.MAX_GAP + 1}")
        if not 0 <= self.crf <= 51:
            raise UsageError(f"--crf must be in 0 .. 51, got {self.crf}")


@dataclass
class PrepareSummary:
    """What a `prepare` run did."""

    videos: int  # inputs
    skipped: int  # already done before this run
    processed: int  # done by this run
    failed: int  # records with an error (this run or before)
    clips: int  # clip rows in the manifest
    video_seconds: float  # seconds of video processed by this run
    worker_seconds: float  # summed per-video processing time of this run
    wall_seconds: float
    manifest: str
    lost: int = 0  # videos whose Ray worker died: no record, a rerun does them

    @property
    def seconds_per_second_per_worker(self) -> float:
        """Throughput: seconds of video per second of one worker's time."""
        return self.video_seconds / self.worker_seconds if self.worker_seconds else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "seconds_per_second_per_worker": round(self.seconds_per_second_per_worker, 4)}


# ------------------------------------------------------------------------------- inputs

list_videos = batch.expand_inputs  # files, folders, lists, manifests: the engine's expander


def video_id(path: str | os.PathLike) -> str:
    """Stable id of a source video: its name and a hash of its absolute path and size."""
    path = Path(path)
    size = path.stat().st_size if path.exists() else -1
    digest = hashlib.sha1(f"{path.resolve()}|{size}".encode()).hexdigest()[:10]
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in path.stem)[:60]
    return f"{stem}-{digest}"


def split_of(vid: str, val_fraction: float) -> str:
    """"train" or "val" for a video id, by hash: stable whatever else is in the dataset."""
    bucket = int(hashlib.sha1(vid.encode()).hexdigest(), 16) % SPLIT_BUCKETS
    return "val" if bucket < val_fraction * SPLIT_BUCKETS else "train"


# ------------------------------------------------------------------------ one video

def process_video(path: str, options: PrepareOptions) -> dict[str, Any]:
    """Prepare one source video; return its record (the engine writes it: `PrepareTask`).

    Never raises for a bad video: the error goes into the record (status "error").
    Clips are staged in a private folder and moved into place before the record is
    written, so a kill at any point loses at most this video's work.
    """
    vid = video_id(path)
    started = time.perf_counter()
    record: dict[str, Any] = {"kind": "video", "video_id": vid, "source": str(path),
                              "split": split_of(vid, options.val_fraction)}
    try:
        record.update(status="ok", error=None, **_make_clips(Path(path), vid, record["split"], options))
    except Exception as e:  # noqa: BLE001 - one bad video must not stop a run of thousands
        log.warning("%s failed: %s: %s", path, type(e).__name__, e, exc_info=not isinstance(e, GestsyncError))
        record.update(status="error", error=f"{type(e).__name__}: {e}", clips=[])
    record.update(seconds=round(time.perf_counter() - started, 3), host=os.uname().nodename,
                  pid=os.getpid(), finished_at=time.time())
    return record


@dataclass(frozen=True)
class PrepareTask:
    """The engine's task (`batch.Task`) of `prepare`: one source video in, its record out."""

    options: PrepareOptions
    name: str = "prepare"

    def warm_up(self) -> None:
        """Nothing to load once: each video opens its own detector and pose models."""

    def process(self, video: str) -> dict[str, Any]:
        return process_video(video, self.options)


def record_folder(out_dir: str | os.PathLike) -> ledger.RecordFolder:
    """`out_dir/videos/`: one record per finished video, named by its id."""
    return ledger.RecordFolder(Path(out_dir) / RECORDS, video_id, "video_id")


def _make_clips(path: Path, vid: str, split: str, options: PrepareOptions) -> dict[str, Any]:
    """Scan, track and write every person track of one video; returns record fields."""
    info = media.probe(path)
    found, scenes = scan_video(info, options)
    people_of_scenes = scan.scene_people(found, scenes, (info.width, info.height),
                                         min_frames=int(round(options.min_seconds * FPS)))
    final = Path(options.out_dir) / CLIPS / vid
    _remove_stale(final)
    stage = Path(tempfile.mkdtemp(dir=final.parent, prefix=vid + PARTIAL))
    stage.chmod(outputs.dir_mode())  # mkdtemp makes it private; mkdir's permissions instead
    try:
        rows = []
        for s, tracks in enumerate(people_of_scenes):
            for t, track in enumerate(tracks):
                row = write_clip(info, track, f"{vid}_s{s:03d}_t{t:02d}", stage, final, options)
                rows.append({**row, "video_id": vid, "source": str(path), "split": split,
                             "scene": s, "track": t})
        os.replace(stage, final)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return {"duration": round(info.duration, 3), "num_frames": info.num_frames,
            "source_fps": round(info.video_fps, 3), "width": info.width, "height": info.height,
            "scenes": [list(s) for s in scenes], "clips": rows}


def _remove_stale(final: Path) -> None:
    """Remove what a killed earlier attempt left of this video (it had no record)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(final.name + PARTIAL + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(final, ignore_errors=True)


def scan_video(info: media.MediaInfo, options: PrepareOptions
               ) -> tuple[scan.Findings, list[tuple[int, int]]]:
    """The people stage of `gestsync speaker`, with its options: one decode feeds the
    people finders (landmarks on every `pose_stride`-th frame) and the shot-cut measure.
    Returns (what was found, scene spans)."""
    found = scan.find_people(info, options.max_people, stride=options.pose_stride)
    return found, found.scene_spans(options.scene_threshold)


def write_clip(info: media.MediaInfo, track: people.Track, clip_id: str, stage: Path,
               final: Path, options: PrepareOptions) -> dict[str, Any]:
    """Write one track's masked crop (mp4), sound (wav) and keypoints (npz) into `stage`;
    returns its manifest row (paths as they will be once `stage` becomes `final`)."""
    boxes = crops.crop_boxes(track)
    faces = _write_crop_video(info, track, stage / f"{clip_id}.mp4", options.crf)
    audio = media.read_audio(info, start_frame=track.start, num_frames=track.length)
    write_wav(stage / f"{clip_id}.wav", audio)
    np.savez(stage / f"{clip_id}.npz", keypoints=track.keypoints, detected=track.detected,
             posed=track.posed,
             boxes=track.boxes, crop_boxes=boxes, frames=track.frames,
             frame_size=np.asarray(track.frame_size, np.int64))
    rel = Path(CLIPS) / final.name
    return {"kind": "clip", "clip_id": clip_id, "video": str(rel / f"{clip_id}.mp4"), "audio": str(rel / f"{clip_id}.wav"),
            "keypoints": str(rel / f"{clip_id}.npz"), "start_frame": track.start,
            "num_frames": track.length, "start_seconds": round(track.start / FPS, 3),
            "duration": round(track.length / FPS, 3), "fps": FPS,
            "visible_hands_ratio": round(track.visible_hands_ratio, 4),
            "detected_ratio": round(_detected_ratio(track), 4),
            "posed_ratio": round(float(track.posed.mean()), 4),
            "face_found_ratio": round(faces, 4), **box_stats(track)}


def _detected_ratio(track: people.Track) -> float:
    """Share of the person detector's looks at the track's frames that found the person."""
    looks = track.frames % scan.DETECT_STRIDE == 0
    return float(track.detected[looks].mean()) if looks.any() else 0.0


def box_stats(track: people.Track) -> dict[str, float]:
    """Track box statistics (pixels of the source): mean size and centre motion."""
    wh = track.boxes[:, 2:] - track.boxes[:, :2]
    centre = (track.boxes[:, 2:] + track.boxes[:, :2]) / 2
    step = np.linalg.norm(np.diff(centre, axis=0), axis=1) if track.length > 1 else np.zeros(1)
    return {"box_width_mean": round(float(wh[:, 0].mean()), 2),
            "box_height_mean": round(float(wh[:, 1].mean()), 2),
            "box_centre_std": round(float(np.linalg.norm(centre.std(axis=0))), 2),
            "box_step_max": round(float(step.max()), 2)}


def _write_crop_video(info: media.MediaInfo, track: people.Track, path: Path, crf: int) -> float:
    """Encode the masked 480 x 270 crops of a track, exactly as the model is fed them at
    inference (`crops.masked_crops`); returns the share of frames with a face."""
    import av

    from .pose import CROP_HEIGHT, CROP_WIDTH, FaceMasker

    with FaceMasker() as masker, av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=FPS, options={"crf": str(crf), "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = CROP_WIDTH, CROP_HEIGHT, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, FPS)
        for i, crop in enumerate(crops.masked_crops(info, track, track.start, track.length, masker)):
            picture = av.VideoFrame.from_ndarray(crop, format="rgb24")
            picture.pts = i
            out.mux(stream.encode(picture))
        out.mux(stream.encode(None))
        return masker.faces_found / max(track.length, 1)


def write_wav(path: Path, audio: np.ndarray) -> None:
    """float mono 16 kHz in [-1, 1] -> 16-bit PCM wav."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(media.SAMPLE_RATE)
        w.writeframes(pcm.tobytes())


def read_wav(path: str | os.PathLike) -> np.ndarray:
    """16-bit PCM mono wav (as `write_wav` writes) -> float32 in [-1, 1]."""
    with wave.open(str(path), "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit mono PCM")
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32767.0


# ------------------------------------------------------------------------ records

def manifest_rows(out_dir: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Every video record and clip row found under `out_dir/videos/`, sorted by video id."""
    for path in sorted((Path(out_dir) / RECORDS).glob("*.json")):
        record = json.loads(path.read_text())
        clips = record.pop("clips", [])
        yield {**record, "num_clips": len(clips)}
        yield from clips


def write_manifest(out_dir: str | os.PathLike, parquet: bool = False) -> Path:
    """Rebuild `manifest.jsonl` (and `manifest.parquet`, same rows) atomically from the
    per-video records."""
    out = Path(out_dir) / MANIFEST
    rows = list(manifest_rows(out_dir))
    with outputs.atomic_path(out) as tmp, tmp.open("w") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    if parquet:
        ledger.write_parquet(out.with_suffix(".parquet"), rows)  # the corpus results' writer
    return out


def read_manifest(path: str | os.PathLike, split: str | None = None) -> list[dict[str, Any]]:
    """Clip rows of a manifest (`manifest.jsonl`, `manifest.parquet` or the folder holding
    them), optionally of one split; paths in the rows are made absolute."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    if not path.exists():
        raise GestsyncError(f"no manifest at {path}: run `gestsync prepare VIDEOS --out DIR` first")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = [{k: v for k, v in r.items() if v is not None} for r in pq.read_table(path).to_pylist()]
    else:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    clips = [r for r in rows if r.get("kind") == "clip" and (split is None or r["split"] == split)]
    for r in clips:
        for key in ("video", "audio", "keypoints"):
            r[key] = str(path.parent / r[key])
    return clips


# ------------------------------------------------------------------------ the run

def prepare(inputs: Sequence[str | os.PathLike], options: PrepareOptions, engine: str = "local",
            jobs: int | None = 1, address: str | None = None,
            on_record: Callable[[dict], None] | None = None, quiet: bool = True) -> PrepareSummary:
    """Prepare every video of `inputs` (files, folders, lists, manifests) into
    `options.out_dir`, `jobs` videos at once (None: one per CPU core).

    Videos with a record are skipped (failed ones too, unless `retry_failed`); the
    manifest is rebuilt at the end. `on_record` sees each new record. Returns what was done.
    """
    batch.check_engine(engine, jobs, address)
    if options.parquet and importlib.util.find_spec("pyarrow") is None:
        raise GestsyncError(needs_extra(*EXTRA_PACKAGES["pyarrow"]))  # before any video
    started = time.perf_counter()
    videos = list_videos(inputs)
    fresh: list[dict] = []

    def keep(record: dict) -> None:
        fresh.append(record)
        if on_record is not None:
            on_record(record)

    records = record_folder(options.out_dir).open()  # locked until the manifest is written
    try:
        tally = batch.run_batch(PrepareTask(options), videos, records, engine, jobs, address,
                                options.retry_failed, on_row=keep, quiet=quiet)
        manifest = write_manifest(options.out_dir, options.parquet)
    finally:
        records.close()
    return _summary(tally, fresh, manifest, time.perf_counter() - started)


def _summary(tally: batch.Summary, fresh: list[dict], manifest: Path, wall: float
             ) -> PrepareSummary:
    rows = [r for r in manifest_rows(manifest.parent)]
    return PrepareSummary(
        videos=tally.videos, skipped=tally.skipped, processed=len(fresh), lost=tally.lost,
        failed=sum(r["kind"] == "video" and r["status"] == "error" for r in rows),
        clips=sum(r["kind"] == "clip" for r in rows),
        video_seconds=round(sum(r.get("duration", 0.0) for r in fresh if r["status"] == "ok"), 3),
        worker_seconds=round(sum(r["seconds"] for r in fresh), 3), wall_seconds=round(wall, 3),
        manifest=str(manifest))


# ---------------------------------------------------------------------------- command

PREPARE_DESCRIPTION = """\
Turn raw videos into training clips for `gestsync train`: every person seen for
at least --min-seconds in a scene becomes a clip (masked 480x270 crop, 16 kHz wav,
body keypoints), listed in DIR/manifest.jsonl. A video is done once its record is
in DIR/videos/: run the same command again to resume after a stop, or to add
videos."""
PREPARE_EXAMPLES = """\
  gestsync prepare raw_videos/ --out data/
  gestsync prepare list.txt --out data/ --jobs 4 --parquet
  gestsync prepare raw_videos/ --out data/ --engine ray --address auto"""


def build_parser():
    from .arguments import Parser, help_texts

    p = Parser(prog="gestsync prepare", **help_texts(PREPARE_DESCRIPTION, PREPARE_EXAMPLES))
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="video files, folders (searched recursively), lists of paths "
                   "(@LIST or LIST.txt) or a prepare manifest.jsonl")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created; re-runs resume)")
    batch.add_engine_options(p, jobs_default="1")
    p.add_argument("--workers", nargs="?", action=_RenamedWorkers, help=argparse.SUPPRESS)
    p.add_argument("--val-fraction", type=float, default=0.1, metavar="F",
                   help="share of source videos in the val split (default 0.1)")
    p.add_argument("--min-seconds", type=float, default=2.0, metavar="SECONDS",
                   help="drop person tracks shorter than this (default 2)")
    p.add_argument("--max-people", type=int, default=2, metavar="N",
                   help="people tracked per frame (default 2)")
    p.add_argument("--pose-stride", type=int, default=1, metavar="N",
                   help="pose on every N-th frame, keypoints interpolated between (default 1)")
    p.add_argument("--scene-threshold", type=float, default=CUT_THRESHOLD, metavar="T",
                   help="shot-cut threshold, as speaker's (default 27)")
    p.add_argument("--crf", type=int, default=18, metavar="Q", help="H.264 quality of the clips (default 18)")
    p.add_argument("--parquet", action="store_true", help="also write manifest.parquet (needs pyarrow)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


class _RenamedWorkers(argparse.Action):
    """prepare's old `--workers N` (videos at once) is `--jobs N` now; `--workers` means
    pose processes within one video in every command, which prepare does not take."""

    def __call__(self, parser, namespace, values, option_string=None):
        raise UsageError(f"--workers {values or 'N'}: videos at once are now --jobs "
                         f"{values or 'N'} (--workers means pose processes for one video, in "
                         "sync and speaker): write --jobs instead")


def main(argv: Sequence[str] | None = None) -> int:
    """`gestsync prepare ...`; returns the exit status (1 when any video failed or was lost)."""
    args = build_parser().parse_args(argv)
    options = PrepareOptions(
        out_dir=args.out, val_fraction=args.val_fraction, min_seconds=args.min_seconds,
        max_people=args.max_people, pose_stride=args.pose_stride,
        scene_threshold=args.scene_threshold, crf=args.crf, retry_failed=args.retry_failed,
        parquet=args.parquet)
    summary = prepare(args.inputs, options, engine=args.engine or "local",
                      jobs=1 if args.jobs is None else args.jobs, address=args.address,
                      quiet=args.quiet)
    if args.json:
        print(json.dumps(summary.to_dict()))
    else:
        print(f"{summary.videos} videos: {summary.processed} processed, {summary.skipped} already "
              f"done, {summary.failed} failed; {summary.clips} clips in {summary.manifest}; "
              f"{summary.seconds_per_second_per_worker:.3f} s of video per s per worker"
              + (f"; {summary.lost} lost to dying workers (run again to retry them)"
                 if summary.lost else ""))
    return 1 if summary.failed or summary.lost else 0

