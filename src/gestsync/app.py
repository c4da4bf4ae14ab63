"""`gestsync serve`: the web demo, a Gradio page over the public API.

The page calls `find_offset` (and `find_speakers` once that API exists) exactly as the
command line does. One job runs at a time per worker; the others wait in a queue. Every
file the app writes (uploads, results, Gradio's own cache) stays inside its working
folder. A bad file shows the same message as the command line (the GestsyncError text).

Gradio is imported only when the server starts (`serve`), after its environment is set.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import logging
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import cues as cue_names
from .arguments import add_model_option, help_texts
from .errors import GestsyncError, UsageError, needs_extra, sigterm_as_interrupt
from .weights import BUILTIN_LABEL

log = logging.getLogger(__name__)

MODE_SYNC = "sync offset"
MODE_SPEAKERS = "who is speaking"
BUILTIN = BUILTIN_LABEL  # the model list's entry for the built-in estimator
CHECKPOINT_SUFFIXES = (".pth", ".pt")
MIB = 1024 * 1024  # Gradio counts upload sizes in binary megabytes
RECENT_KEPT = 10  # uploads offered as "recent"; older ones are deleted
JOBS_KEPT = 10  # result folders kept while pages may still show them; older are deleted
CACHE_CLEAN = (600, 3600)  # Gradio's cache: every 10 min, delete files older than 1 h
PROGRESS_STEP = 0.01  # send a progress update at most every 1% of a stage
LOCAL_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]  # no web fonts: works offline


@dataclass(frozen=True)
class ServeConfig:
    """Options of `gestsync serve` (see README)."""

    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    workdir: Path | None = None  # None: a fresh temporary folder, removed on exit
    checkpoints: Path | None = None  # folder whose .pth/.pt files the visitor may pick
    model: str = "auto"  # the default model: auto, builtin, gestsync-rgb or a file (--model)
    max_upload_mb: float = 100.0
    max_seconds: float = 300.0
    queue_size: int = 16

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise UsageError(f"--port must be in 1..65535, got {self.port}")
        if self.max_upload_mb <= 0 or self.max_seconds <= 0:
            raise UsageError("--max-upload-mb and --max-seconds must be positive")
        if self.queue_size < 1:
            raise UsageError(f"--queue-size must be at least 1, got {self.queue_size}")
        if self.checkpoints is not None and not self.checkpoints.is_dir():
            raise UsageError(f"--checkpoints {self.checkpoints} is not a folder: give the "
                             "folder that holds your .pth files")


# ----------------------------------------------------------------------------- working folder

class Workspace:
    """The app's working folder: uploads/ (recent videos, shared by servers on the folder) and
    run-<id>/ of this server: jobs/ (results) and cache/ (Gradio's uploads and copies)."""

    def __init__(self, root: Path | None):
        self.temporary = root is None
        base = Path(tempfile.mkdtemp(prefix="gestsync-serve-")) if root is None else root
        self.root = base.resolve()
        self.uploads = self.root / "uploads"
        self.run = self.root / f"run-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.jobs, self.cache = self.run / "jobs", self.run / "cache"
        for folder in (self.uploads, self.jobs, self.cache):
            folder.mkdir(parents=True, exist_ok=True)

    def store_upload(self, src: Path) -> Path:
        """Keep an upload as uploads/<content digest>/<name>: the same video is kept once."""
        key = self.uploads / _digest(src)
        key.mkdir(exist_ok=True)
        kept = next((p for p in key.iterdir() if not p.name.startswith(".")), None)
        if kept is None:
            kept, partial = key / _safe_name(src.name), key / ".partial"
            shutil.copyfile(src, partial)
            os.replace(partial, kept)  # never a half-copied video under its name
        os.utime(key)  # most recently used first
        self._prune(self.uploads, RECENT_KEPT)
        return kept

    def recent(self) -> list[tuple[str, str]]:
        """(label, key) of the kept uploads, most recent first; key is `<digest>/<name>`."""
        items = []
        for mtime, folder in _newest_first(self.uploads):
            when = time.strftime("%H:%M", time.localtime(mtime))
            for video in folder.glob("[!.]*"):
                items.append((f"{video.name} ({when})", f"{folder.name}/{video.name}"))
        return items

    def recent_path(self, key: str) -> Path:
        """The file of a recent upload; only keys the page offered are accepted."""
        if key not in {k for _, k in self.recent()}:
            raise GestsyncError("that recent video is no longer kept: upload it again")
        return self.uploads / key

    def new_job(self) -> Path:
        """A fresh result folder (not created: find_offset makes it when it writes)."""
        self._prune(self.jobs, JOBS_KEPT - 1)
        return self.jobs / uuid.uuid4().hex

    def close(self) -> None:
        """Remove everything, or, for a folder given with --workdir, all but the uploads."""
        shutil.rmtree(self.root if self.temporary else self.run, ignore_errors=True)

    @staticmethod
    def _prune(folder: Path, keep: int) -> None:
        for _, old in _newest_first(folder)[keep:]:
            shutil.rmtree(old, ignore_errors=True)


def _newest_first(folder: Path) -> list[tuple[float, Path]]:
    """(modification time, sub-folder), newest first; one removed meanwhile is skipped."""
    found = []
    for p in folder.iterdir():
        try:
            if p.is_dir():
                found.append((p.stat().st_mtime, p))
        except FileNotFoundError:
            continue
    return sorted(found, reverse=True)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _safe_name(name: str) -> str:
    """A plain file name: no folders, no characters a shell or URL would trip on."""
    stem = re.sub(r"[^\w.-]+", "_", Path(name).name).strip("._") or "video"
    return stem[:120]


# ----------------------------------------------------------------------------- checks

def checkpoint_names(folder: Path | None) -> list[str]:
    """Model files the visitor may pick (names only, never paths)."""
    if folder is None:
        return []
    return sorted(p.name for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in CHECKPOINT_SUFFIXES)


def resolve_checkpoint(folder: Path | None, name: str | None) -> Path | None:
    """The checkpoint file for a name from the list; None for the built-in estimator."""
    if not name or name == BUILTIN:
        return None
    if name not in checkpoint_names(folder):
        raise GestsyncError(f"unknown model {name!r}: pick one from the list")
    return folder / name


def default_model(cfg: ServeConfig):
    """The server's default model (`--model`), a `weights.ModelChoice`."""
    from .weights import resolve

    return resolve(cfg.model)


def model_choices(cfg: ServeConfig) -> list[str]:
    """Dropdown entries: the default model first, then the built-in estimator, then files."""
    first = default_model(cfg)
    names = [BUILTIN] if first.path is None else [first.label, BUILTIN]
    return names + [n for n in checkpoint_names(cfg.checkpoints) if n not in names]


def job_model(cfg: ServeConfig, name: str | None) -> str | Path:
    """What `find_offset(model=...)` gets for a dropdown entry ("builtin" when none)."""
    first = default_model(cfg)
    if first.path is not None and name == first.label:
        from .weights import FILE_METHOD

        return first.path if first.method == FILE_METHOD else first.method
    from .weights import BUILTIN as BUILTIN_NAME

    path = resolve_checkpoint(cfg.checkpoints, name)
    return BUILTIN_NAME if path is None else path


def check_limits(video: Path, cfg: ServeConfig) -> None:
    """Size and duration limits of this server; a bad file fails here with the CLI's message."""
    from .media import probe

    size_mb = video.stat().st_size / MIB
    if size_mb > cfg.max_upload_mb:
        raise GestsyncError(f"{video.name} is {size_mb:.1f} MB; this server takes videos up to "
                            f"{cfg.max_upload_mb:g} MB: give a shorter or smaller video")
    seconds = probe(video).duration
    if seconds > cfg.max_seconds:
        raise GestsyncError(f"{video.name} lasts {seconds:.1f} s; this server takes videos up "
                            f"to {cfg.max_seconds:g} s: give a shorter clip, or run "
                            "`gestsync` on your own machine")


# ----------------------------------------------------------------------------- jobs

class GradioProgress:
    """A progress hook (stage, completed, total) that drives a gr.Progress bar per stage."""

    def __init__(self, bar: Callable[..., Any]):
        self.bar, self.stage, self.shown = bar, None, -1.0

    def __call__(self, stage: str, completed: int, total: int) -> None:
        fraction = completed / total if total else 0.0
        if stage == self.stage and fraction - self.shown < PROGRESS_STEP and completed < total:
            return
        self.stage, self.shown = stage, fraction
        self.bar((completed, total), desc=stage, unit="frames" if total > 1 else "steps")


@dataclass
class PageResult:
    """What the page shows after a job."""

    summary: str  # markdown
    plot: str | None = None
    video: str | None = None
    files: list[str] | None = None


def syncer_for(model: str | Path):
    """The `Syncer` of a job's model (`syncer.syncer_for`: the process's, loaded once)."""
    from .syncer import syncer_for
    from .weights import ModelSpec

    return syncer_for(ModelSpec(model))


def run_sync(video: Path, out_dir: Path, model: str | Path,
             progress: GradioProgress, cues: str = cue_names.DEFAULT.name) -> PageResult:
    """find_offset with its outputs: offset, confidence, score plot, corrected video, JSON."""
    from .sync import SyncRequest

    syncer = syncer_for(model)
    request = SyncRequest(syncer.model.spec, cues=cues)
    d = syncer.run(video, request, out_dir=out_dir, progress=progress).to_dict()
    outs = d["outputs"]
    files = [outs[k] for k in ("json", "synced_video") if k in outs]
    return PageResult(sync_summary(d), outs.get("plot"), outs.get("synced_video"), files)


def sync_summary(d: dict) -> str:
    """The offset in words (markdown), from `OffsetResult.to_dict()`."""
    frames, seconds = d["offset_frames"], d["offset_seconds"]
    when = "later" if frames > 0 else "earlier"
    if frames == 0:
        meaning = "sound and picture are in sync; no corrected copy is needed"
    elif d["uncertain"]:
        meaning = (f"the sound may come {abs(seconds):.2f} s {when} than the picture; no "
                   "corrected copy is made from a guess")
    else:
        meaning = (f"the sound comes {abs(seconds):.2f} s {when} than the picture; the "
                   "corrected copy below moves the sound back in place")
    doubt = " (uncertain: treat the answer as a guess)" if d["uncertain"] else ""
    who = ""
    if d.get("people"):
        x0, y0, x1, y1 = d["person"]["box"]
        who = (f" {len(d['people'])} people are in view: the answer comes from person "
               f"#{d['person']['track']} (box {x0},{y0}-{x1},{y1}), whose gestures match the "
               "sound best.")
    return (f"**Offset: {frames:+d} frames ({seconds:+.2f} s)**, confidence "
            f"**{d['confidence']:.2f}**{doubt}\n\n{meaning}.{who} Method: {d['method']}.")


def run_speakers(video: Path, out_dir: Path, model: str | Path,
                 progress: GradioProgress, per_frame: bool = True,
                 cues: str = cue_names.DEFAULT.name) -> PageResult:
    """find_speakers with its outputs: boxed video, who-speaks-when timeline, JSON."""
    from .speaker import SpeakerRequest

    syncer = syncer_for(model)
    request = SpeakerRequest(syncer.model.spec, per_frame=per_frame, cues=cues)
    d = syncer.run(video, request, out_dir=out_dir, progress=progress).to_dict()
    outs = d["outputs"]
    plot = out_dir / "timeline.png"
    speaker_timeline(d, plot)
    files = [outs[k] for k in ("json", "video") if k in outs]
    return PageResult(speakers_summary(d), str(plot), outs.get("video"), files)


def speakers_summary(d: dict, most: int = 12) -> str:
    """One line per scene (markdown), from `SpeakerResult.to_dict()`."""
    from .results import scene_doubt

    lines = [f"**{len(d['scenes'])} scene(s), {len({t['id'] for t in d['tracks']})} "
             f"person(s) tracked.** Method: {d['method']}."]
    for s in d["scenes"][:most]:
        who = (f"person {s['speaker']} speaks" if s["speaker"] is not None
               else f"nobody ({s['reason']})")
        span = f"{s['start_seconds']:.1f}-{s['end_seconds']:.1f} s"
        if s.get("frame_speakers") is not None:
            from .results import describe_shares

            who = "per frame: " + describe_shares(s["frame_speakers"])
            lines.append(f"- scene {s['index'] + 1}, {span}: {who}")
            continue
        doubt = scene_doubt(s)
        lines.append(f"- scene {s['index'] + 1}, {span}: {who}, confidence {s['confidence']:.2f}"
                     + (f" ({doubt})" if doubt else ""))
    if len(d["scenes"]) > most:
        lines.append(f"- ... {len(d['scenes']) - most} more in the JSON")
    return "\n".join(lines)


def speaking_runs(scene: dict) -> list[tuple[int, int, int]]:
    """(track id, first frame, end frame) of each stretch where one person speaks."""
    start = scene["start_frame"]
    who = scene["frame_speakers"] or [scene["speaker"]] * (scene["end_frame"] - start)
    runs, first = [], 0
    for k in range(1, len(who) + 1):
        if k == len(who) or who[k] != who[first]:
            if who[first] is not None:
                runs.append((who[first], start + first, start + k))
            first = k
    return runs


def speaker_timeline(d: dict, path: Path) -> None:
    """Who speaks when, saved as PNG: a row per person (grey: visible, orange: speaking)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .media import FPS

    rows = {tid: k for k, tid in enumerate(sorted({t["id"] for t in d["tracks"]}))}
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.45 * len(rows)), dpi=100)
    for t in d["tracks"]:
        ax.broken_barh([(t["start_frame"] / FPS, (t["end_frame"] - t["start_frame"]) / FPS)],
                       (rows[t["id"]] - 0.35, 0.7), color="0.85")
    for s in d["scenes"]:
        for tid, first, end in speaking_runs(s):
            ax.broken_barh([(first / FPS, (end - first) / FPS)], (rows[tid] - 0.35, 0.7),
                           color="tab:orange")
        if s["index"] > 0:
            ax.axvline(s["start_seconds"], color="k", ls=":", lw=1)
    ax.set_yticks(list(rows.values()), [f"person {tid}" for tid in rows])
    ax.set_xlim(0, d["duration_seconds"])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel("time (s); grey: visible, orange: speaking, dotted: scene cut")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# The page's cue choice: label -> `cues.CHOICES` name (body first: the default).
CUE_CHOICES = {"body gestures (face masked)": cue_names.BODY.name,
               "lips and body": cue_names.FACE_BODY.name, "lips only": cue_names.FACE.name}


@dataclass(frozen=True)
class JobRequest:
    """What the visitor chose: an uploaded file or a recent key, the mode, a model name."""

    video: str | None
    recent: str | None
    mode: str
    model: str | None
    per_frame: bool = True
    cues: str = cue_names.DEFAULT.name  # a `cues.CHOICES` name


def run_job(cfg: ServeConfig, ws: Workspace, req: JobRequest,
            progress: GradioProgress) -> PageResult:
    """One visitor's request, end to end; problems the visitor can fix become the summary."""
    try:
        path = (ws.store_upload(Path(req.video)) if req.video
                else ws.recent_path(req.recent) if req.recent else None)
        if path is None:
            return PageResult("Upload a video or pick a recent one, then press Run.")
        progress("checking the video", 0, 1)
        check_limits(path, cfg)
        model = job_model(cfg, req.model)
        if req.mode == MODE_SPEAKERS:
            return run_speakers(path, ws.new_job(), model, progress, req.per_frame, req.cues)
        return run_sync(path, ws.new_job(), model, progress, req.cues)
    except GestsyncError as e:  # ours: the visitor can fix it
        return PageResult(f"**Error:** {_md_escape(_hide_folders(str(e), cfg, ws))}")
    except Exception as e:  # an internal error: one line here, the traceback in the server log
        log.exception("job failed")
        text = _hide_folders(f"{type(e).__name__}: {e}", cfg, ws)
        return PageResult(f"**Internal error:** {_md_escape(text)} (the server log has the "
                          "traceback)")


def _hide_folders(text: str, cfg: ServeConfig, ws: Workspace) -> str:
    """The message without the server's own folders (visitors see file names only)."""
    for folder in (cfg.checkpoints, ws.run, ws.uploads):
        if folder is not None:
            text = re.sub(re.escape(str(folder.resolve())) + r"[^\s:]*/", "", text)
            text = text.replace(f"{folder}{os.sep}", "")
    return text


def _md_escape(text: str) -> str:
    """Show text as is in markdown (file names often hold underscores)."""
    return re.sub(r"([\\`*_{}\[\]<>()#+!|~])", r"\\\1", text)


# ----------------------------------------------------------------------------- the page

def intro(cfg: ServeConfig, modes: list[str]) -> str:
    what = "whether the sound and picture of a video are in sync"
    if MODE_SPEAKERS in modes:
        what += " and who is speaking"
    return (f"# gestsync\nTells from body gestures {what}. By default the face is masked "
            f"and only the body is read; the cue choice adds the lips, or reads the lips alone "
            f"for face-only clips. "
            f"Videos up to {cfg.max_upload_mb:g} MB and {cfg.max_seconds:g} s. The sync "
            f"offset needs one visible person.\n\n{model_note(cfg)}")


def model_note(cfg: ServeConfig) -> str:
    """Which model answers by default, and how to get the published one when it is not."""
    from .weights import DEFAULT_MODEL

    choice = default_model(cfg)
    if choice.path is None:
        return (f"Model: **built-in estimator** (no weights). For the authors' published "
                f"GestSync model, run `gestsync models download {DEFAULT_MODEL}` where the "
                "server runs, then restart it.")
    what = "the authors' published GestSync model" if choice.method == DEFAULT_MODEL else "a model file"
    return f"Model: **{_md_escape(choice.label)}** ({what})."


def build_app(cfg: ServeConfig, ws: Workspace, modes: list[str]):
    """The Gradio Blocks page (call after `_gradio_env`)."""
    import gradio as gr

    def pick_recent(key: str | None) -> str | None:
        try:
            return str(ws.recent_path(key)) if key else None
        except GestsyncError as e:
            raise gr.Error(str(e)) from e

    def job(video, recent, mode, model, per_frame, cues, progress=gr.Progress()):
        req = JobRequest(video, recent, mode, model, per_frame,
                         CUE_CHOICES.get(cues, cue_names.DEFAULT.name))
        r = run_job(cfg, ws, req, GradioProgress(progress))
        return r.summary, r.plot, r.video, r.files, gr.update(choices=ws.recent())

    with gr.Blocks(title="gestsync", delete_cache=CACHE_CLEAN) as demo:
        gr.Markdown(intro(cfg, modes))
        with gr.Row():
            with gr.Column():
                video = gr.Video(label="Video", sources=["upload"], elem_id="video-in")
                recent = gr.Dropdown(ws.recent(), value=None, label="…or a recent video",
                                     elem_id="recent")
                mode = gr.Radio(modes, value=modes[0], label="Mode", visible=len(modes) > 1,
                                elem_id="mode")
                per_frame = gr.Checkbox(True, label="decide on every frame (else per scene)",
                                        visible=False, elem_id="per-frame")
                choices = model_choices(cfg)
                model = gr.Dropdown(choices, value=choices[0], label="Model", elem_id="model",
                                    visible=len(choices) > 1 or cfg.checkpoints is not None)
                cues = gr.Radio(list(CUE_CHOICES), value=next(iter(CUE_CHOICES)),
                                label="Read", elem_id="cues")
                run = gr.Button("Run", variant="primary", elem_id="run")
            with gr.Column():
                summary = gr.Markdown(elem_id="result")
                plot = gr.Image(label="Plot", type="filepath", interactive=False, elem_id="plot")
                result_video = gr.Video(label="Result video", interactive=False,
                                        elem_id="video-out")
                files = gr.File(label="Downloads", file_count="multiple", interactive=False,
                                elem_id="downloads")
        run.click(job, [video, recent, mode, model, per_frame, cues],
                  [summary, plot, result_video, files, recent], concurrency_limit=1)
        mode.change(lambda m: gr.update(visible=m == MODE_SPEAKERS), mode, per_frame)
        video.upload(lambda: None, None, recent)  # a new upload replaces a picked recent one
        recent.input(pick_recent, recent, video)
        demo.load(lambda: (gr.update(choices=ws.recent()), gr.update(choices=model_choices(cfg))),
                  None, [recent, model])
    return demo.queue(max_size=cfg.queue_size, default_concurrency_limit=1)


def _gradio_env(ws: Workspace) -> None:
    """Before Gradio is imported: no analytics (unless the user chose), cache in the workdir."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ["GRADIO_TEMP_DIR"] = str(ws.cache)  # uploads land here first


def _check_port(host: str, port: int) -> None:
    """Fail with a clear line, before any work, when the address cannot be listened on."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as e:
        raise UsageError(f"cannot listen on {host}:{port} ({e.strerror or e}): choose another "
                         "--port, or stop the program that uses it") from e


def _load_default_model(cfg: ServeConfig) -> None:
    """Check and load the default model once, before the page opens (jobs then reuse it)."""
    choice = default_model(cfg)
    if choice.path is not None:
        log.warning("loading %s", choice.label)
        syncer_for(job_model(cfg, choice.label))


def serve(cfg: ServeConfig) -> int:
    """Run the web demo until interrupted; returns the exit status."""
    if importlib.util.find_spec("gradio") is None:
        raise UsageError(needs_extra("gestsync serve", "demo"))
    _check_port(cfg.host, cfg.port)
    _load_default_model(cfg)
    ws = Workspace(cfg.workdir)
    _gradio_env(ws)
    demo = None
    try:
        with sigterm_as_interrupt():
            import gradio as gr

            modes = [MODE_SYNC, MODE_SPEAKERS]
            demo = build_app(cfg, ws, modes)
            demo.launch(server_name=cfg.host, server_port=cfg.port, share=cfg.share,
                        max_file_size=int(cfg.max_upload_mb * MIB), ssr_mode=False,
                        allowed_paths=[str(ws.uploads), str(ws.jobs)], mcp_server=False,
                        run_history=False, footer_links=["api", "gradio", "settings"],
                        theme=gr.themes.Default(font=LOCAL_FONTS, font_mono=["monospace"]),
                        quiet=True, prevent_thread_lock=True)
            print(ready_message(demo.local_url, demo.share_url, ws.root), flush=True)
            while demo.is_running:  # until Ctrl+C or `kill`
                time.sleep(0.5)
    except KeyboardInterrupt:
        print("gestsync serve: stopped", flush=True)
    finally:
        _close(demo)
        ws.close()
    return 0


def ready_message(local_url: str, share_url: str | None, workdir: Path) -> str:
    """What `serve` prints once it answers: where, how to stop, how to share."""
    lines = [f"gestsync serve: open {local_url} in a browser"]
    if share_url:
        lines.append(f"  public link (for anyone, about a week): {share_url}")
    lines.append(f"  working folder: {workdir}")
    lines.append("  stop with Ctrl+C" + ("" if share_url else
                                         "; `gestsync serve --share` also makes a public link"))
    return "\n".join(lines)


def _close(demo) -> None:
    """Stop the server and any public-link tunnel (what Gradio does on Ctrl+C, silently)."""
    if demo is None:
        return
    from gradio.tunneling import CURRENT_TUNNELS

    demo.close(verbose=False)
    for tunnel in CURRENT_TUNNELS:
        tunnel.kill()


# ----------------------------------------------------------------------------- command line

SERVE_DESCRIPTION = """\
Start the web demo: upload a video (or pick a recent one), then get its offset
and corrected copy, or who speaks in it, as the sync and speaker commands give
them. It prints the address to open; Ctrl+C stops it and removes its
temporary files. Only the computer it runs on can connect, unless --host 0.0.0.0 (your
network) or --share (a public gradio.live link)."""
SERVE_EXAMPLES = """\
  gestsync serve                                   then open http://127.0.0.1:7860/
  gestsync serve --port 8080 --checkpoints models/
  gestsync serve --workdir demo/    keeps uploads as recent videos between runs"""


def add_serve_parser(sub) -> None:
    """The `serve` sub-command (registered by cli.build_parser)."""
    s = sub.add_parser("serve", help="start the web demo (Gradio) in your browser",
                       **help_texts(SERVE_DESCRIPTION, SERVE_EXAMPLES))
    s.add_argument("--host", default="127.0.0.1", metavar="ADDR",
                   help="address to listen on (default 127.0.0.1: this computer only)")
    s.add_argument("--port", type=int, default=7860, metavar="N", help="port (default 7860)")
    s.add_argument("--share", action="store_true",
                   help="also open a public gradio.live link (needs internet; off by default)")
    s.add_argument("--workdir", metavar="DIR", help="working folder for uploads, results and "
                   "cache (default: a temporary folder removed on exit; a given folder keeps "
                   "its uploads as recent videos)")
    s.add_argument("--checkpoints", metavar="DIR",
                   help="folder of model files (.pth, .pt) the visitor may choose from")
    add_model_option(s, alias=False)  # the default model on the page
    s.add_argument("--max-upload-mb", type=float, default=100.0, metavar="MB",
                   help="largest upload in MB (default 100)")
    s.add_argument("--max-seconds", type=float, default=300.0, metavar="SECONDS",
                   help="longest video in seconds (default 300)")
    s.add_argument("--queue-size", type=int, default=16, metavar="N",
                   help="jobs that may wait for the worker (default 16)")
    s.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    return serve(ServeConfig(
        host=args.host, port=args.port, share=args.share,
        workdir=Path(args.workdir) if args.workdir else None,
        checkpoints=Path(args.checkpoints) if args.checkpoints else None, model=args.model,
        max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds,
        queue_size=args.queue_size))
