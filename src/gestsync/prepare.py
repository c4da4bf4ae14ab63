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
the same split, whatever the other videos are. Both engines run `process_video` per video.
"""

from __future__ import annotations

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

from . import crops, media, outputs, people, scan
from .errors import EXTRA_PACKAGES, GestsyncError, needs_extra
from .scenes import CUT_THRESHOLD
from .timebase import FPS, VIDEO_SUFFIXES

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
RECORDS = "videos"  # per-video records (done markers)
CLIPS = "clips"
PARTIAL = ".partial-"  # staging folders of videos in flight; removed when found stale
SPLIT_BUCKETS = 10_000  # resolution of the hash split

Progress = Callable[[dict], None]  # called with each finished video's record


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
            raise ValueError(f"--val-fraction must be in [0, 1], got {self.val_fraction}")
        if self.min_seconds < 1.0:
            raise ValueError(f"--min-seconds must be at least 1 (one model window), got {self.min_seconds}")
        if self.max_people < 1 or not 1 <= self.pose_stride <= people.MAX_GAP + 1:
            raise ValueError(f"need --max-people >= 1 and --pose-stride in 1 .. {people.MAX_GAP + 1}")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"--crf must be in 0 .. 51, got {self.crf}")


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

    @property
    def seconds_per_second_per_worker(self) -> float:
        """Throughput: seconds of video per second of one worker's time."""
        return self.video_seconds / self.worker_seconds if self.worker_seconds else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "seconds_per_second_per_worker": round(self.seconds_per_second_per_worker, 4)}


# ------------------------------------------------------------------------------- inputs

def list_videos(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Videos from folders (searched recursively), list files (`.txt`: one path per line,
    relative to the list's folder, `#` comments) and video files, in a stable order."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        elif item.suffix.lower() == ".txt":
            lines = (ln.strip() for ln in item.read_text().splitlines())
            found += [item.parent / ln for ln in lines if ln and not ln.startswith("#")]
        else:
            found.append(item)
    if not found:
        raise GestsyncError(f"no videos found in {', '.join(map(str, inputs))}: give video files, "
                            f"folders holding {', '.join(sorted(VIDEO_SUFFIXES))} files, or a .txt list")
    return list(dict.fromkeys(found))  # drop repeats, keep order


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
    """Prepare one source video unless its record exists; return its record.

    Never raises for a bad video: the error goes into the record (status "error").
    Clips are staged in a private folder and moved into place before the record is
    written, so a kill at any point loses at most this video's work.
    """
    out, vid = Path(options.out_dir), video_id(path)
    done = _read_record(out, vid)
    if done is not None and not (options.retry_failed and done["status"] == "error"):
        return {**done, "skipped": True}
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
    (out / RECORDS).mkdir(parents=True, exist_ok=True)
    outputs.write_json_atomic(out / RECORDS / f"{vid}.json", record)
    return {**record, "skipped": False}


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

def _read_record(out: Path, vid: str) -> dict[str, Any] | None:
    path = out / RECORDS / f"{vid}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


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
        _write_parquet(out.with_suffix(".parquet"), rows)
    return out


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise GestsyncError(needs_extra("--parquet", "train")) from e
    columns = list(dict.fromkeys(k for row in rows for k in row))  # video and clip fields
    with outputs.atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pylist([{k: row.get(k) for k in columns} for row in rows]), tmp)


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


# ------------------------------------------------------------------------ engines

def run_local(paths: Sequence[str], options: PrepareOptions, workers: int,
              progress: Progress) -> list[dict]:
    """`process_video` over `paths` in a pool of `workers` processes (inline for 1)."""
    if workers <= 1:
        return [_report(process_video(p, options), progress) for p in paths]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    # spawn: fresh interpreters, no threads inherited from this one (MediaPipe, PyAV)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(process_video, p, options) for p in paths]
        try:
            return [_report(f.result(), progress) for f in as_completed(futures)]
        except BrokenProcessPool as e:  # a worker was killed (out of memory?) or crashed
            raise GestsyncError(f"a prepare worker died ({e}); finished videos are kept: run the "
                                "same command again to resume, with fewer --workers if memory ran out") from e


def run_ray(paths: Sequence[str], options: PrepareOptions, workers: int,
            progress: Progress, address: str | None = None) -> list[dict]:
    """`process_video` over `paths` as a Ray Data map, one CPU per video.

    address None starts Ray locally (no cluster, `workers` CPUs); otherwise it joins
    that cluster, whose nodes must have gestsync installed and see `out_dir`.
    """
    try:
        import ray
    except ImportError as e:
        raise GestsyncError(needs_extra("--engine ray", "train")) from e
    started_here = not ray.is_initialized()
    if started_here:
        # "local": a new private Ray even when `ray start` left a cluster running on this host
        kwargs = {"address": address} if address else {"address": "local", "num_cpus": workers,
                                                       "include_dashboard": False}
        ray.init(log_to_driver=False, configure_logging=False, **kwargs)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        data = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=max(len(paths), 1))
        records = data.map(_ray_row, fn_kwargs={"options": options}, num_cpus=1,
                           compute=ray.data.TaskPoolStrategy(size=workers))
        return [_report(json.loads(row["record"]), progress) for row in records.iter_rows()]
    finally:
        if started_here:
            ray.shutdown()


def _ray_row(row: dict[str, Any], options: PrepareOptions) -> dict[str, Any]:
    """Ray Data row function: one video path -> its record as JSON text (one column)."""
    return {"record": json.dumps(process_video(row["path"], options))}


def _report(record: dict, progress: Progress) -> dict:
    progress(record)
    return record


def prepare(inputs: Sequence[str | os.PathLike], options: PrepareOptions, engine: str = "local",
            workers: int = 1, ray_address: str | None = None,
            progress: Progress | None = None) -> PrepareSummary:
    """Prepare every video of `inputs` (files, folders, .txt lists) into `options.out_dir`.

    Videos with a record are skipped (failed ones too, unless `retry_failed`); the
    manifest is rebuilt at the end. Returns what was done.
    """
    if engine not in ("local", "ray"):
        raise ValueError(f"--engine must be local or ray, got {engine!r}")
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    # a missing optional part is named before any video, not at the end
    for wanted, module in ((options.parquet, "pyarrow"), (engine == "ray", "ray")):
        if wanted and importlib.util.find_spec(module) is None:
            raise GestsyncError(needs_extra(*EXTRA_PACKAGES[module]))
    started = time.perf_counter()
    paths = [str(p) for p in list_videos(inputs)]
    Path(options.out_dir, RECORDS).mkdir(parents=True, exist_ok=True)
    hook = progress or (lambda record: None)
    if engine == "ray":
        records = run_ray(paths, options, workers, hook, ray_address)
    else:
        records = run_local(paths, options, workers, hook)
    manifest = write_manifest(options.out_dir, options.parquet)
    return _summary(records, manifest, time.perf_counter() - started)


def _summary(records: list[dict], manifest: Path, wall: float) -> PrepareSummary:
    fresh = [r for r in records if not r["skipped"]]
    rows = [r for r in manifest_rows(manifest.parent)]
    return PrepareSummary(
        videos=len(records), skipped=len(records) - len(fresh), processed=len(fresh),
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
  gestsync prepare list.txt --out data/ --workers 4 --parquet
  gestsync prepare raw_videos/ --out data/ --engine ray --ray-address auto"""


def build_parser():
    from .arguments import Parser, help_texts

    p = Parser(prog="gestsync prepare", **help_texts(PREPARE_DESCRIPTION, PREPARE_EXAMPLES))
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="video files, folders (searched recursively) or .txt lists of paths")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created; re-runs resume)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: a process pool (default); ray: Ray Data, locally or on --ray-address")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="parallel videos (processes, or Ray tasks at most) (default 1)")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="join this Ray cluster (e.g. ray://head:10001 or auto); default: local Ray")
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
    p.add_argument("--retry-failed", action="store_true", help="redo videos that failed before")
    p.add_argument("--parquet", action="store_true", help="also write manifest.parquet (needs pyarrow)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """`gestsync prepare ...`; returns the exit status (1 when any video failed)."""
    args = build_parser().parse_args(argv)
    options = PrepareOptions(
        out_dir=args.out, val_fraction=args.val_fraction, min_seconds=args.min_seconds,
        max_people=args.max_people, pose_stride=args.pose_stride,
        scene_threshold=args.scene_threshold, crf=args.crf, retry_failed=args.retry_failed,
        parquet=args.parquet)
    bar = _bar(len(list_videos(args.inputs)), enabled=not args.quiet)
    try:
        summary = prepare(args.inputs, options, engine=args.engine, workers=args.workers,
                          ray_address=args.ray_address, progress=bar)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(summary.to_dict()))
    else:
        print(f"{summary.videos} videos: {summary.processed} processed, {summary.skipped} already "
              f"done, {summary.failed} failed; {summary.clips} clips in {summary.manifest}; "
              f"{summary.seconds_per_second_per_worker:.3f} s of video per s per worker")
    return 1 if summary.failed else 0


class _bar:
    """Progress hook: a tqdm bar over videos (on stderr)."""

    def __init__(self, total: int, enabled: bool) -> None:
        import sys

        from tqdm import tqdm

        self.tqdm = tqdm(total=total, unit="video", desc="prepare", disable=not enabled,
                         file=sys.stderr, dynamic_ncols=True)
        self.clips = self.failed = 0

    def __call__(self, record: dict) -> None:
        self.clips += len(record.get("clips", []))
        self.failed += record["status"] == "error"
        self.tqdm.set_postfix(clips=self.clips, failed=self.failed, refresh=False)
        self.tqdm.update(1)

    def close(self) -> None:
        self.tqdm.close()
