"""The `gestsync` command line: a thin layer over the Python API.

Exit status: 0 success; 2 a problem with the input or options (one line on stderr says
what and how to fix it); 1 an internal error, or, with several videos, any video failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Sequence

from .errors import (GestsyncError, Terminated, missing_package, sigterm_as_interrupt,
                     stop_received)
from .arguments import Parser, add_model_option, add_precision_option, help_texts
from .batch import videos_in
from .cues import add_cues_option
from .progress import TqdmProgress
from .timebase import VIDEO_SUFFIXES

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE = 0, 1, 2
# Sub-commands with their own parser in gestsync.<name> (`main(argv) -> int`).
TOOLS = {"prepare": "turn raw videos into training clips and a manifest (see README)",
         "train": "train a GestSync model (RGB or keypoint variant); torchrun for several processes"}


def _quiet_native_logs() -> None:
    """MediaPipe/TFLite print C++ log lines on stderr; keep only their errors."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # torch's OpenMP threads sleep when idle rather than spin: the crop thread and the pose
    # processes need those cores (must be set before torch loads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def find_videos(paths: Sequence[str]) -> list[Path]:
    """Expand folders into the videos directly in them (sorted); keep files as given.
    (A corpus run, with --results, also searches below and reads lists: `batch`.)"""
    return [video for name in paths
            for video in (videos_in(Path(name), recursive=False) if Path(name).is_dir()
                          else [Path(name)])]


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("videos", nargs="+", metavar="VIDEO",
                   help="video files or folders of videos")
    add_model_option(p)
    add_precision_option(p)
    p.add_argument("--out", metavar="DIR",
                   help="output folder (default results/<video name>/; with several videos, "
                        "DIR/<video name>/)")
    p.add_argument("--json", action="store_true",
                   help="print each result as one JSON object per line on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--device", metavar="DEV", help="torch device for --model "
                   "(default: cuda if available, else cpu)")
    from .corpus import add_corpus_options

    add_corpus_options(p)


SYNC_DESCRIPTION = """\
Find how far the sound of each video is shifted against its picture, from the
speaker's gestures, and write a copy with the sound back in sync. With several
people in view, each is searched at every lag and the answer names the person
whose gestures carried it.

The offset is in frames at 25 fps (and in seconds): + means the sound comes later
than the picture, - earlier. The summary line reads, e.g.
  clip.mp4 [built-in estimator]: offset +7 frames (+0.28 s), confidence 0.83
The corrected copy moves the sound by minus the offset; its picture is copied
untouched. Confidence is in [0, 1]; an uncertain answer gets no corrected copy
unless --always-write. Writes offset.json, scores.png and <name>_synced.mp4 to
results/<video name>/ (or --out)."""
SYNC_EXAMPLES = """\
  gestsync sync clip.mp4
  gestsync sync clips/ --out results/ --json         every video of a folder
  gestsync sync talk.mp4 --segments 30 --no-video    does it drift? (per 30 s)"""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="gestsync", **help_texts(
        "Audio-visual sync and active speaker detection from body gestures (GestSync).\n"
        "Each command has its own help: gestsync COMMAND --help.",
        "  gestsync sync clip.mp4            offset of clip.mp4, and a corrected copy\n"
        "  gestsync speaker talkshow.mp4     who speaks, scene by scene\n"
        "  gestsync serve                    the same in a web page"))
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    s = sub.add_parser("sync", help="find the audio-visual offset of videos "
                       "and write sync-corrected copies", **help_texts(SYNC_DESCRIPTION,
                                                                       SYNC_EXAMPLES))
    _add_common(s)
    s.add_argument("--max-offset", type=int, default=50, metavar="N",
                   help="search offsets in [-N, N] frames at 25 fps (default 50 = 2 s)")
    s.add_argument("--context-frames", type=int, metavar="N",
                   help="score only N frames, from frame --max-offset on (default: the whole clip)")
    s.add_argument("--grid", type=int, default=1, metavar="N",
                   help="candidate step in frames (default 1; 5 = the authors' grid)")
    s.add_argument("--always-write", action="store_true",
                   help="write the corrected video even when the offset is 0 or the answer "
                   "is uncertain")
    s.add_argument("--no-video", action="store_true", help="do not write the corrected video")
    _add_workers_option(s)
    s.add_argument("--pose-stride", type=int, default=2, metavar="N",
                   help="run the pose detector on every N-th frame, interpolating between "
                        "(default 2; 1 = every frame, slower)")
    s.add_argument("--segments", type=float, metavar="SECONDS",
                   help="also report the offset of every SECONDS-long stretch and flag drift "
                        "(e.g. 30)")
    add_cues_option(s)
    _add_speaker_parser(sub)
    _add_eval_parser(sub)
    from .app import add_serve_parser
    from .weights import add_models_parser

    add_serve_parser(sub)
    add_models_parser(sub)
    for name, text in TOOLS.items():  # listed here; parsed by their own modules (see main)
        sub.add_parser(name, help=text, add_help=False)
    return parser


EVAL_DESCRIPTION = """\
Measure how often the built-in estimator finds the offset. Offset protocol: every
single-speaker clip of MANIFEST.tsv with a known offset is copied with its sound
moved by each shift, and each copy is scored like `gestsync sync`. The report (in
Markdown) gives the share of answers within 0, 1, 2 and 5 frames of the truth
(acc@K) per context and per clip, and how well the confidence is calibrated.
Protocol, method and results: docs/accuracy.md. --protocol speaker: who speaks in
composite scenes of people from different clips side by side (see README)."""
EVAL_EXAMPLES = """\
  gestsync eval --samples ../shared/samples
  gestsync eval --shifts -10:10:5 --json-out results/trials.jsonl
  gestsync eval --trials results/trials.jsonl --fit-calibration    (no re-run)
  gestsync eval --protocol speaker --people 2,3"""


def _add_eval_parser(sub) -> None:
    e = sub.add_parser("eval", help="measure offset accuracy on shifted copies of in-sync clips",
                       **help_texts(EVAL_DESCRIPTION, EVAL_EXAMPLES))
    e.add_argument("--samples", default=str(Path("..") / "shared" / "samples"), metavar="DIR",
                   help="folder with MANIFEST.tsv and the clips (default ../shared/samples)")
    e.add_argument("--shifts", default="-20:20", metavar="A:B[:STEP]",
                   help="shifts in frames, e.g. -20:20 (default) or -10:10:5")
    e.add_argument("--max-offset", type=int, default=50, metavar="N",
                   help="candidate offsets in [-N, N] frames (default 50)")
    add_model_option(e, alias=False)
    e.add_argument("--json-out", metavar="PATH", help="also write every trial as JSON lines")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    e.add_argument("--trials", metavar="PATH", help="report (and fit) from the trials of an "
                   "earlier --json-out instead of running the protocol again")
    e.add_argument("--fit-calibration", action="store_true",
                   help="offset: fit the confidence curve and the confidence that makes an "
                        "answer sure on the fit clips, and print how both hold on the check "
                        "clips; speaker: fit the speaker calibration (docs/accuracy.md)")
    e.add_argument("--protocol", choices=("offset", "speaker"), default="offset",
                   help="offset: shifted copies (default); speaker: composite scenes "
                        "(see README, active speaker detection)")
    e.add_argument("--people", default="1,2,3,4", metavar="N,N",
                   help="with --protocol speaker: people per composite (1 = speaking vs "
                        "off-screen voice; default 1,2,3,4)")
    e.add_argument("--cache", metavar="DIR", help="with --protocol speaker: keep each clip's "
                   "signals here (.npz) and reuse them")
    add_cues_option(e)
    e.set_defaults(run=_run_eval)


def _run_eval(args) -> int:
    from .evaluate import run_eval  # heavy (torch, MediaPipe): only when eval runs

    return run_eval(args)


SPEAKER_DESCRIPTION = """\
Find who is speaking in each scene (and, with --per-frame, on each frame): the
person whose gestures follow the sound. With people in view and speech present
one of them is always named, unless --allow-offscreen. Writes speakers.json and
the annotated <name>_speakers.mp4 (everyone boxed and numbered) to
results/<video name>/.

The summary line gives each scene as START-END s: WHO (CONFIDENCE), e.g.
  talk.mp4 [built-in estimator]: 0.0-6.2 s: #1 (0.89); 6.2-9.0 s: no speech (0.95)
#1 is person 1, as numbered in speakers.json and on the annotated video;
CONFIDENCE is the calibrated chance that the answer is right ("alone in view"
when one person is tracked: then the share of resamples in which their motion
follows the sound). An unsure answer says why: another person came close
(#2 (0.55, unsure: #2 or #1)), or with a face cue the body alone names someone
else. Instead of a person, why nobody was chosen: no speech,
off-screen voice (only with --allow-offscreen) or no person. With --per-frame,
each person's share of the frames instead: #1 67%, #0 20%, nobody 13%."""
SPEAKER_EXAMPLES = """\
  gestsync speaker talk.mp4
  gestsync speaker talk.mp4 --per-frame --json    also who speaks on each frame"""


def _add_speaker_parser(sub) -> None:
    from .people import MAX_GAP, MIN_FRAMES, MIN_SIZE
    from .scenes import CUT_THRESHOLD

    p = sub.add_parser("speaker", help="find who is speaking in each scene (and on each "
                       "frame) and write an annotated video",
                       **help_texts(SPEAKER_DESCRIPTION, SPEAKER_EXAMPLES))
    _add_common(p)
    p.add_argument("--per-frame", action="store_true",
                   help="also decide who speaks on every frame")
    p.add_argument("--context-frames", type=int, default=50, metavar="N",
                   help="with --per-frame: frames averaged around each frame (default 50 = 2 s)")
    p.add_argument("--max-people", type=int, default=4, metavar="N",
                   help="most people detected per frame (default 4)")
    p.add_argument("--min-track-frames", type=int, default=MIN_FRAMES, metavar="N",
                   help=f"drop people seen for fewer frames (default {MIN_FRAMES} = 2 s)")
    p.add_argument("--min-track-size", type=float, default=MIN_SIZE, metavar="PX",
                   help=f"drop people whose box is smaller than this (default {MIN_SIZE} px)")
    p.add_argument("--max-gap", type=int, default=MAX_GAP, metavar="N",
                   help=f"bridge detection gaps up to N frames (default {MAX_GAP} = 1 s)")
    p.add_argument("--scene-threshold", type=float, default=CUT_THRESHOLD, metavar="T",
                   help=f"shot-cut threshold, higher: fewer cuts (default {CUT_THRESHOLD:g})")
    p.add_argument("--allow-offscreen", action="store_true",
                   help="answer 'off-screen voice' when no visible person's motion clearly "
                        "follows the sound (default: one of the visible people is named "
                        "whenever there is speech)")
    p.add_argument("--no-video", action="store_true", help="do not write the annotated video")
    _add_workers_option(p)
    add_cues_option(p)


def _add_workers_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, metavar="N", help="pose-detection processes per "
                   "video (default: one per CPU core, at most 4; 1 in a corpus run, where "
                   "--jobs sets the videos done at once)")


def _speaker_summary(d: dict, label: str | None = None) -> str:
    """`name [method]: <span>: <who> (<confidence>); ...`, who = #<track id> or why
    nobody, and why an answer is unsure (`scene_doubt`); with --per-frame the share of the
    scene's frames given to each person instead."""
    from .results import scene_doubt

    parts = []
    for s in d["scenes"]:
        span = f"{s['start_seconds']:.1f}-{s['end_seconds']:.1f} s: "
        if s.get("frame_speakers") is not None:
            from .results import describe_shares

            parts.append(span + describe_shares(s["frame_speakers"]))
            continue
        who = s["reason"] if s["speaker"] is None else f"#{s['speaker']}"
        if s["speaker"] is not None and len(s["track_ids"]) == 1:  # see decide_scene
            parts.append(span + f"{who} (alone in view; motion match {s['confidence']:.2f})")
            continue
        doubt = scene_doubt(s)
        parts.append(span + f"{who} ({s['confidence']:.2f}{', ' + doubt if doubt else ''})")
    return f"{Path(d['video']).name} [{label or _method_label(d)}]: " + "; ".join(parts)


def _method_label(d: dict) -> str:
    from .weights import method_label

    return method_label(d.get("method", "?"))


def _version() -> str:
    """The installed distribution's version (its metadata: pyproject.toml's version)."""
    from . import __version__

    return __version__


def _out_dir(args, video: Path, many: bool) -> Path:
    from .outputs import default_out_dir

    if args.out is None:
        return default_out_dir(video)
    return Path(args.out) / video.stem if many else Path(args.out)


def _request(args, workers: int):
    """The job request of `gestsync sync|speaker` (checked here, before any video);
    `workers`: pose processes per video unless --workers says."""
    from .speaker import SpeakerRequest
    from .sync import SyncRequest

    kind = SyncRequest if args.command == "sync" else SpeakerRequest
    return kind.from_args(args, workers)


def _run_corpus(args) -> int:
    """`--results FILE`: the corpus run of gestsync.corpus (one pose process per video
    unless --workers says otherwise: videos run in parallel instead)."""
    from .corpus import run_cli

    return run_cli(args, _request(args, workers=1), VIDEO_SUFFIXES)


def _summary_line(result, video_wanted: bool = True, label: str | None = None) -> str:
    """One human-readable line (more with segments or scenes); `video_wanted`: the corrected
    video was not turned off (--no-video), so its absence needs a word; `label`: how to
    name the model used (default: from the result's method)."""
    d = result.to_dict()
    if "offset_frames" in d:
        note = _doubt(d)
        if (video_wanted and d["uncertain"] and d["offset_frames"]
                and "synced_video" not in d["outputs"]):
            note += f"; no corrected video written ({_copy_bar(d)}; --always-write writes it anyway)"
        line = (f"{Path(d['video']).name} [{label or _method_label(d)}]: offset "
                f"{d['offset_frames']:+d} frames "
                f"({d['offset_seconds']:+.2f} s), confidence {d['confidence']:.2f}{note}")
        if d.get("cues"):
            line += "\n  cues: " + ", ".join(f"{name} {c['frames']} frames (weight {c['weight']:.2f})"
                                             for name, c in d["cues"].items())
        if d.get("suggested_cues"):
            line += (f"\n  the face was in view on most frames: try --cues "
                     f"{d['suggested_cues']} (the lips' motion too)")
        if d.get("people"):
            x0, y0, x1, y1 = d["person"]["box"]
            line += (f"\n  from person #{d['person']['track']} of {len(d['people'])} (box "
                     f"{x0},{y0}-{x1},{y1}); the others: " + ", ".join(
                         f"#{p['track']} {p['offset_frames']:+d} ({p['confidence']:.2f})"
                         for p in d["people"] if p["track"] != d["person"]["track"]))
        for seg in d.get("segments") or []:
            line += (f"\n  {seg['start_seconds']:7.1f}-{seg['end_seconds']:.1f} s: "
                     f"{seg['offset_frames']:+d} frames, confidence {seg['confidence']:.2f}"
                     f"{_doubt(seg)}")
        if d.get("drift"):
            verdict = {None: "unknown (fewer than two sure segments)", True: "yes",
                       False: "no"}[d["drift"]["drifting"]]
            line += f"\n  drift: {verdict}"
            if d["drift"]["drifting"] is None:
                line += f"; {_segments_hint(d)}"
            if d["drift"]["frames_per_minute"] is not None:
                line += f" ({d['drift']['frames_per_minute']:+.2f} frames per minute)"
        return line
    if "scenes" in d:
        return _speaker_summary(d, label)
    return f"{Path(d['video']).name}: done"


def _segments_hint(d: dict) -> str:
    """What makes more segments sure, as measured on the samples (docs/accuracy.md#confidence):
    the lips (the body alone is never sure), else longer segments."""
    from .cues import FACE_PART
    from .weights import BUILTIN

    if d.get("method") == BUILTIN and FACE_PART not in (d.get("cues") or {}):
        return "the gestures alone are never sure: try --cues face+body (the lips' motion too)"
    return "longer segments are sure more often: try --segments 10 or longer"


def _doubt(d: dict) -> str:
    """' (uncertain)' for an answer (or segment) that is not sure, with the offsets that
    competed: ' (uncertain: -46 or -17)'."""
    if not d.get("uncertain", not d.get("sure", True)):
        return ""
    rivals = [d["offset_frames"]] + (d.get("competing_offsets") or [])
    return f" (uncertain: {' or '.join(f'{r:+d}' for r in rivals)})" if len(rivals) > 1 \
        else " (uncertain)"


def _copy_bar(d: dict) -> str:
    """Why an uncertain answer gets no copy: the confidence its cues need."""
    if d.get("sure_at") is None:
        return "no confidence of these cues was right 95% of the time on held-out clips"
    return f"a copy needs confidence {d['sure_at']:.2f} with these cues"


def _process(args, videos: list[Path]) -> int:
    """Run the command on every video; report each; return the exit status. Only our own
    errors (GestsyncError) are the video's; anything else stops the run (internal error)."""
    from .scan import default_workers
    from .syncer import syncer_for

    request = _request(args, default_workers())  # checks every option, before any video
    syncer = syncer_for(request.model)  # loads the model once
    many = len(videos) > 1
    failures, hinted = 0, args.quiet  # --quiet: no hint either
    for video in videos:
        progress = TqdmProgress(video.name, enabled=not args.quiet)
        try:
            result = syncer.run(video, request, out_dir=_out_dir(args, video, many),
                                write_video=not args.no_video, progress=progress)
        except GestsyncError as e:
            failures += 1
            _report_failure(args, video, str(e))
            if not many:
                return EXIT_USAGE
            continue
        finally:
            progress.close()
        if args.json:
            print(json.dumps(result.to_dict()), flush=True)
        else:
            print(_summary_line(result, not args.no_video, syncer.label), flush=True)
            for path in result.to_dict().get("outputs", {}).values():
                print(f"  wrote {path}")
        hinted = hinted or _suggest_model(result, hinted)
    if many and not args.json:
        print(f"{len(videos) - failures} of {len(videos)} videos done, {failures} failed")
    return EXIT_INTERNAL if failures else EXIT_OK


def _suggest_model(result, hinted: bool) -> bool:
    """Once per run (not at all under --quiet: `hinted` then starts True): an uncertain
    built-in answer and no model cached -> how to get one."""
    from .weights import BUILTIN, hint_for_uncertain

    d = result.to_dict()
    unsure = d.get("uncertain") or any(s.get("unsure") for s in d.get("scenes") or [])
    hint = None if hinted or d.get("method") != BUILTIN or not unsure else hint_for_uncertain()
    if hint:
        print(f"gestsync: {hint}", file=sys.stderr, flush=True)
    return bool(hint)


def _report_failure(args, video: Path, message: str) -> None:
    print(f"gestsync: error: {message}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"video": str(video), "error": message}), flush=True)


def _stop_behind(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl+C or SIGTERM that caused `error`, if one did: in its cause or context chain,
    or a SIGTERM that a library swallowed before failing in another way."""
    seen = error.__cause__ or error.__context__
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return seen
        seen = seen.__cause__ or seen.__context__
    return stop_received()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `gestsync` and `python -m gestsync`; returns the exit status."""
    _quiet_native_logs()
    logging.basicConfig(level=logging.WARNING, format="gestsync: %(message)s")
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        if argv and argv[0] in TOOLS:  # training tools: imported only when used
            import importlib

            return importlib.import_module(f".{argv[0]}", __package__).main(argv[1:])
        args = build_parser().parse_args(argv)
        with sigterm_as_interrupt():
            if args.command in ("eval", "serve", "models"):
                return args.run(args)
            from .corpus import check_corpus_options

            check_corpus_options(args)
            if args.results is not None:
                return _run_corpus(args)
            return _process(args, find_videos(args.videos))
    except GestsyncError as e:
        print(f"gestsync: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as e:  # --help and --version
        return e.code if isinstance(e.code, int) else EXIT_OK
    except BrokenPipeError:  # stdout closed early (e.g. piped into head)
        sys.stderr.close()
        return EXIT_OK
    except Terminated:
        print("gestsync: stopped (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("gestsync: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # an internal error: one line, the traceback only on request
        stop = _stop_behind(e)
        if stop is not None:  # e.g. a stop in the middle of an import became ImportError
            print(f"gestsync: {'stopped (SIGTERM)' if isinstance(stop, Terminated) else 'interrupted'}",
                  file=sys.stderr)
            return 128 + signal.SIGTERM if isinstance(stop, Terminated) else 130
        if os.environ.get("GESTSYNC_DEBUG"):
            raise
        missing = missing_package(e) if isinstance(e, ImportError) else None
        if missing is not None:  # a dependency or an optional part is not installed
            print(f"gestsync: error: {missing}", file=sys.stderr)
            return EXIT_USAGE
        print(f"gestsync: internal error: {type(e).__name__}: {e} (set GESTSYNC_DEBUG=1 for "
              "the traceback and please report it)", file=sys.stderr)
        return EXIT_INTERNAL
