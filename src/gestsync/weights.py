"""Known GestSync models: a verified local cache, `gestsync models`, and `--model` resolution.

Models live in `<cache>/models/<name>.pth` with `<name>.json` beside them (source URL, size,
SHA-256, date). `<cache>` is `outputs.cache_root()`: `$GESTSYNC_HOME`, else `$GESTSYNC_CACHE`, else the
platform's user cache folder (the pose bundles and the person detector's weights go there too).

Nothing is downloaded except by `download` (`gestsync models download NAME`). A download goes
to `<name>.pth.part` (resumed with an HTTP Range request when it stopped half-way), is checked
(not a web page, the pinned SHA-256 if given, a checkpoint that loads with weights_only=True
into the published architecture), and only then renamed into place.
"""

from __future__ import annotations

import datetime
import hashlib
import http.client
import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import InitVar, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .errors import CheckpointError, GestsyncError, UsageError
from .arguments import PRECISIONS, help_texts
from .outputs import cache_root, write_json_atomic

AUTO = "auto"  # --model auto: the published model when it is cached, else the built-in estimator
BUILTIN = "builtin"  # the built-in estimator (no weights): --model builtin, a result's method
BUILTIN_LABEL = "built-in estimator"  # how summaries and the web page name it
FILE_METHOD = "model"  # `method` of a result scored with a model file given by path
CHUNK = 1 << 20
TIMEOUT_S = 30  # per socket operation, not for the whole transfer
DRIVE_FOLDER = "https://drive.google.com/drive/folders/1F35PfHGJ_guanl_tCV0CX9jNr9kY6359"



@dataclass(frozen=True)
class KnownModel:
    name: str
    description: str
    url: str  # the direct file `download` fetches by default
    manual: str  # where a person can get the file by hand

    @property
    def file_name(self) -> str:
        return f"{self.name}.pth"


KNOWN = {
    "gestsync-rgb": KnownModel(
        "gestsync-rgb",
        "the authors' RGB GestSync model (Hegde & Zisserman, BMVC 2023), published as model_rgb.pth",
        "https://www.robots.ox.ac.uk/~vgg/research/jegal/checkpoints/gestsync.pth",
        f"model_rgb.pth from the authors' Google Drive folder {DRIVE_FOLDER}"),
}
DEFAULT_MODEL = "gestsync-rgb"  # what `auto` uses when it is cached


class DownloadError(GestsyncError):
    """A model could not be fetched or was refused; nothing was kept (except a resumable .part)."""


# ----------------------------------------------------------------------------- the cache

def models_dir() -> Path:
    return cache_root() / "models"


def model_path(name: str) -> Path:
    """Where the known model `name` is (or would be) cached."""
    return models_dir() / known(name).file_name


def cached(name: str) -> Path | None:
    """The cached file of known model `name`, or None when it is not there."""
    path = model_path(name)
    return path if path.is_file() else None


def known(name: str) -> KnownModel:
    try:
        return KNOWN[name]
    except KeyError:
        raise GestsyncError(f"unknown model {name!r}: known models are "
                            f"{', '.join(KNOWN)} (see `gestsync models`)") from None


def record(name: str) -> dict[str, Any]:
    """What was recorded beside the cached file (empty when it was put there by hand)."""
    try:
        return json.loads((models_dir() / f"{name}.json").read_text())
    except (OSError, ValueError):
        return {}


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- --model

@dataclass(frozen=True)
class ModelChoice:
    """A resolved `--model`: `method` names it in results; `path` is None for the estimator."""

    method: str
    path: Path | None

    @property
    def label(self) -> str:
        """How the summary line and the web page name it."""
        if self.path is None:
            return BUILTIN_LABEL
        return self.method if self.method in KNOWN else f"model file {self.path.name}"


def method_label(method: str) -> str:
    """How summaries name a result's `method` (the built-in estimator by its label)."""
    return BUILTIN_LABEL if method == BUILTIN else method


def resolve(model: str | os.PathLike | None = AUTO,
            checkpoint: str | os.PathLike | None = None) -> ModelChoice:
    """The model a run uses (UsageError for a `model` that names none).

    Args:
        model: "auto" (or None): the published model if cached, else the built-in
            estimator; "builtin"; a known name ("gestsync-rgb", must be cached); or a path.
        checkpoint: the older spelling of a path (kept for the Python API and --checkpoint).
    """
    if checkpoint is not None:
        if model not in (None, AUTO) and str(model) != str(checkpoint):
            raise UsageError(f"both a model ({model}) and a checkpoint ({checkpoint}) were "
                                "given: give one of them")
        model = checkpoint
    model = AUTO if model is None else model
    if model == AUTO:
        path = cached(DEFAULT_MODEL)
        return ModelChoice(BUILTIN, None) if path is None else ModelChoice(DEFAULT_MODEL, path)
    if model == BUILTIN:
        return ModelChoice(BUILTIN, None)
    if isinstance(model, str) and model in KNOWN:
        path = cached(model)
        if path is None:
            raise UsageError(f"model {model} is not in the cache ({model_path(model)}): run "
                                f"`gestsync models download {model}`, or give --model PATH")
        return ModelChoice(model, path)
    if not Path(model).exists():
        raise UsageError(f"--model {model}: no such file, and not one of {AUTO}, {BUILTIN}, "
                            f"{', '.join(KNOWN)}: give one of these or the path of a model file")
    return ModelChoice(FILE_METHOD, Path(model))


@dataclass(frozen=True)
class ModelSpec:
    """Which model a run scores with, on which device and in what arithmetic (`--model`,
    `--device`, `--precision`). Checked and resolved (`resolve`) once, when made (bf16 for a
    network on a device that would only emulate it is refused then): `model` is then a
    `ModelChoice` (a Path or a name: picklable, sent to worker processes as it
    is). `checkpoint` is the older spelling of model=PATH."""

    model: str | os.PathLike | ModelChoice | None = AUTO
    device: str | None = None
    precision: str = "fp32"
    checkpoint: InitVar[str | os.PathLike | None] = None

    def __post_init__(self, checkpoint) -> None:
        check_precision(self.precision)
        if not isinstance(self.model, ModelChoice):
            object.__setattr__(self, "model", resolve(self.model, checkpoint))
        if self.precision == "bf16" and self.model.path is not None:  # a network will run
            from .checkpoint import resolve_device

            check_bf16_arithmetic(resolve_device(self.device))

    @property
    def label(self) -> str:
        return self.model.label

    @classmethod
    def taken_from(cls, options: dict) -> tuple[ModelSpec, dict]:
        """(the spec of the `model`, `checkpoint`, `device` and `precision` of keyword
        arguments `options`, the other options)."""
        rest = dict(options)
        spec = cls(*(rest.pop(k, default) for k, default in (
            ("model", AUTO), ("device", None), ("precision", "fp32"), ("checkpoint", None))))
        return spec, rest

    @classmethod
    def from_args(cls, args) -> ModelSpec:
        """From parsed `--model`, `--device` and `--precision` (the last two optional)."""
        return cls(args.model, getattr(args, "device", None), getattr(args, "precision", "fp32"))


def load(spec: ModelSpec):
    """The network of `spec`, read from its file (None for the built-in estimator), on its
    device and in its precision (`GestSyncModel.set_precision`: fp32 or bf16). To load once
    and score many videos, keep a `Loaded` (`open_model`, `Syncer`)."""
    path, precision = spec.model.path, spec.precision
    if path is None:
        return None
    from .checkpoint import load_model

    model = load_model(path, device=spec.device)
    if precision != "fp32":
        if not hasattr(model, "set_precision"):
            raise UsageError(f"--precision {precision} applies to the published (RGB) model "
                             f"only; {path.name} is a {model.config.variant} model: "
                             "leave --precision at fp32")
        model.set_precision(precision)
    return model


def bf16_arithmetic(device) -> bool:
    """Whether `device` does bfloat16 arithmetic natively: any GPU torch runs on; a CPU
    only when oneDNN has bf16 kernels for it (AVX-512 or AMX). Elsewhere torch emulates it,
    and the conv stacks run about 300 times slower than in fp32 (docs/performance.md)."""
    import torch

    return torch.device(device).type != "cpu" or bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def check_bf16_arithmetic(device) -> None:
    """UsageError when `device` would only emulate bf16 (`bf16_arithmetic`)."""
    if not bf16_arithmetic(device):
        raise UsageError("--precision bf16 needs a CPU with bfloat16 instructions (AVX-512 or "
                         "AMX) or a GPU; this CPU has none, so bf16 would be emulated, hundreds of "
                         "times slower than fp32: leave --precision at fp32 (the default)")


def check_precision(precision: str) -> None:
    """UsageError unless `precision` is one that `--precision` takes."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")


@dataclass(frozen=True)
class Loaded:
    """A model spec with its network in memory (net None: the built-in estimator)."""

    spec: ModelSpec
    net: Any

    @property
    def choice(self) -> ModelChoice:
        return self.spec.model


def open_model(spec: ModelSpec) -> Loaded:
    """The model of `spec`, loaded."""
    return Loaded(spec, load(spec))


def check_as_loaded(loaded: Loaded, device: str | None = None, precision: str = "fp32") -> None:
    """UsageError when `device` or `precision` differs from what `loaded` was loaded with:
    a loaded model is never run otherwise than asked, and never silently as loaded.

    fp32 is also the default of `find_offset` and `find_speakers`, so asking for it is
    taken as not asking: a model loaded in bf16 stays in bf16."""
    check_precision(precision)
    net = loaded.net
    if net is None:  # the built-in estimator: no network to place or lower
        return
    fix = "choose it when loading the model: Syncer(model, device=..., precision=...)"
    has = getattr(net, "precision", "fp32")
    if precision not in ("fp32", has):
        raise UsageError(f"precision {precision!r} was asked of a model loaded in {has}: {fix}")
    if device is not None:
        from .checkpoint import resolve_device

        asked, on = resolve_device(device), net.device
        if asked.type != on.type or asked.index not in (None, on.index):
            raise UsageError(f"device {device!r} was asked of a model loaded on {on}: {fix}")


def hint_for_uncertain() -> str | None:
    """A one-line suggestion when the built-in answer was uncertain and no model is cached."""
    if cached(DEFAULT_MODEL) is not None:
        return None
    return (f"the built-in estimator is unsure here; the published GestSync model may do "
            f"better: gestsync models download {DEFAULT_MODEL}")


# ----------------------------------------------------------------------------- listing

def listing() -> list[dict[str, Any]]:
    """One row per known model: name, description, url, manual, cached, path, size, sha256."""
    rows = []
    for m in KNOWN.values():
        path = cached(m.name)
        rows.append({"name": m.name, "description": m.description, "url": m.url,
                     "manual": m.manual, "cached": path is not None,
                     "path": str(model_path(m.name)),
                     "size": path.stat().st_size if path else None,
                     "sha256": sha256_of(path) if path else None,
                     "source": record(m.name).get("url") if path else None})
    return rows


def format_listing(rows: list[dict[str, Any]]) -> str:
    out = []
    for r in rows:
        state = (f"cached, {r['size'] / 1e6:.1f} MB, sha256 {r['sha256']}" if r["cached"]
                 else "not cached")
        out += [f"{r['name']}: {r['description']}",
                f"  source:  {r['url']}",
                f"  by hand: {r['manual']}",
                f"  file:    {r['path']} ({state})"]
        if r["cached"] and r["source"] and r["source"] != r["url"]:
            out.append(f"  fetched from {r['source']}")
    out.append(f"(`gestsync models download NAME` fetches one; the cache folder is "
               f"{models_dir()}, set GESTSYNC_HOME to move it)")
    return "\n".join(out)


# ----------------------------------------------------------------------------- download

def download(name: str, url: str | None = None, sha256: str | None = None,
             quiet: bool = False) -> Path:
    """Fetch, verify and cache the known model `name`; returns the cached file.

    Raises:
        DownloadError: no connection, an HTTP error, a web page instead of the file, a
            SHA-256 other than `sha256`, or a file that is not the published model.
    """
    m = known(name)
    url = url or m.url
    expected = _checked_hex(sha256)
    final = model_path(name)
    if final.is_file() and (expected is None or sha256_of(final) == expected):
        return final
    _make_folder(final.parent)
    part = final.with_name(final.name + ".part")
    _fetch(url, part, m, final, quiet)
    try:
        digest = _verify(part, url, expected)
    except DownloadError:
        _remove(part, _part_source(part))
        raise
    _install(part, final, {"name": name, "url": url, "size": part.stat().st_size,
                           "sha256": digest, "downloaded": _now()})
    return final


def _checked_hex(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    text = sha256.strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise GestsyncError(f"--sha256 {sha256!r} is not 64 hexadecimal digits: give the "
                            "SHA-256 of the file, e.g. from `sha256sum`")
    return text


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot create the model folder {folder} ({e.strerror or e}): set "
                            "GESTSYNC_HOME to a writable folder") from e


def _part_source(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _fetch(url: str, part: Path, m: KnownModel, final: Path, quiet: bool) -> None:
    """Download `url` into `part`, resuming what an earlier try left there."""
    source = _part_source(part)
    done = part.stat().st_size if part.is_file() and _read_json(source).get("url") == url else 0
    if done == 0:
        _remove(part, source)
    try:
        response = _open(url, done)
    except urllib.error.HTTPError as e:
        _remove(part, source)
        if e.code == 416 and done:  # the part is stale or already whole: start over
            return _fetch(url, part, m, final, quiet)
        raise DownloadError(f"{url} answered HTTP {e.code} {e.reason}: {_manual(m, final)}") from e
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        raise DownloadError(f"cannot reach {url} ({_reason(e)}): {_manual(m, final)}") from e
    with response:
        if response.status != 206:
            done = 0  # the server ignored the Range request: the body is the whole file
        elif not response.headers.get("Content-Range", "").startswith(f"bytes {done}-"):
            _remove(part, source)  # a resume from elsewhere in the file: start over
            return _fetch(url, part, m, final, quiet)
        _refuse_html(response.headers.get("Content-Type", ""), url, part, source)
        source.write_text(json.dumps({"url": url}) + "\n")  # lets a later try resume
        with open(part, "ab" if done else "wb") as f:
            _copy(response, f, done, _length(response, done), url, quiet)


def _open(url: str, start: int):
    if not url.lower().startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    request = urllib.request.Request(url, headers={"User-Agent": "gestsync"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(request, timeout=TIMEOUT_S)  # noqa: S310 (scheme checked)


def _length(response, done: int) -> int | None:
    length = response.headers.get("Content-Length")
    return done + int(length) if length and length.isdigit() else None


def _copy(response, f: BinaryIO, done: int, total: int | None, url: str, quiet: bool) -> None:
    from tqdm import tqdm

    with tqdm(total=total, initial=done, unit="B", unit_scale=True, unit_divisor=1024,
              desc="downloading", file=sys.stderr, disable=quiet, leave=False) as bar:
        try:
            while block := response.read(CHUNK):
                f.write(block)
                bar.update(len(block))
        except (OSError, ValueError, http.client.HTTPException) as e:  # reset, timeout, cut
            f.write(getattr(e, "partial", b""))  # IncompleteRead: what came before the cut
            f.flush()
            raise DownloadError(f"the download from {url} stopped after "
                                f"{f.tell() / 1e6:.1f} MB ({_reason(e)}): run the same "
                                "command again to resume it") from e
    if total is not None and f.tell() < total:
        raise DownloadError(f"the download from {url} stopped after {f.tell() / 1e6:.1f} MB of "
                            f"{total / 1e6:.1f}: run the same command again to resume it")


def _refuse_html(content_type: str, url: str, part: Path, source: Path) -> None:
    if "html" in content_type.lower():
        _remove(part, source)
        raise DownloadError(_html_message(url))


def _html_message(url: str) -> str:
    return (f"{url} sent a web page, not the model file (a sign-in or confirmation page, or a "
            f"proxy's error page); nothing kept: download model_rgb.pth by hand from "
            f"{DRIVE_FOLDER} and put it at {model_path(DEFAULT_MODEL)}, or pass --url")


def _verify(part: Path, url: str, expected: str | None) -> str:
    """SHA-256 of a whole download after checking it is the published model."""
    with open(part, "rb") as f:
        head = f.read(512).lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")):
        raise DownloadError(_html_message(url))
    digest = sha256_of(part)
    if expected is not None and digest != expected:
        raise DownloadError(f"the file from {url} has SHA-256 {digest}, not the expected "
                            f"{expected}; nothing kept: check the URL and --sha256")
    _check_structure(part, url)
    return digest


def _check_structure(part: Path, url: str) -> None:
    from .checkpoint import load_model

    try:
        model = load_model(part, device="cpu")
    except CheckpointError as e:
        why = str(e).split(". Fix: ")[0].replace(f"checkpoint {part}", "it").replace(str(part), "it")
        raise DownloadError(f"refused the file from {url}, nothing kept: {why}; check the URL "
                            "(it must give the published model_rgb.pth)") from e
    from .variants import of

    if not of(model).published:
        raise DownloadError(f"refused the file from {url}, nothing kept: it is a "
                            f"{model.config.variant} model, not the published RGB model")


def _install(part: Path, final: Path, meta: dict[str, Any]) -> None:
    """The model renamed into place, then its record written beside it (`record`
    treats a model without one as put there by hand)."""
    os.replace(part, final)
    write_json_atomic(final.with_suffix(".json"), meta, indent=2)
    _remove(_part_source(part))


def _manual(m: KnownModel, final: Path) -> str:
    return (f"get {m.manual} and put it at {final}, or pass --model PATH "
            f"(or --url for another source)")


def _reason(e: BaseException) -> str:
    reason = getattr(e, "reason", None) or e
    text = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
    return str(text).strip().splitlines()[0] if str(text).strip() else type(reason).__name__


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _remove(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- command line

MODELS_DESCRIPTION = """\
List the models gestsync knows (what each is, its published source, the manual
route, where it is cached, its size and SHA-256), or download one. Nothing is ever
downloaded except by `gestsync models download`; once gestsync-rgb is cached,
sync, speaker, eval and serve use it by default (--model auto). The cache folder
is $GESTSYNC_HOME/models, else the user cache folder. See docs/models.md."""
DOWNLOAD_DESCRIPTION = """\
Fetch a known model from its published source (see `gestsync models`), resuming a
partial download, check it (a real checkpoint of the published structure, loaded
with weights_only; --sha256 pins the file) and keep it in the cache folder, where
--model auto finds it. A refused file leaves nothing behind. See docs/models.md."""
MODELS_EXAMPLES = """\
  gestsync models
  gestsync models download gestsync-rgb
  gestsync models download gestsync-rgb --url https://mirror.example/gestsync.pth"""


def add_models_parser(sub) -> None:
    """`gestsync models` and `gestsync models download` (registered by cli.build_parser)."""
    p = sub.add_parser("models", help="list the known models, or download one into the cache",
                       **help_texts(MODELS_DESCRIPTION, MODELS_EXAMPLES))
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    inner = p.add_subparsers(dest="models_command", parser_class=type(p))
    d = inner.add_parser("download", help="download, verify and cache a known model",
                         **help_texts(DOWNLOAD_DESCRIPTION, MODELS_EXAMPLES))
    d.add_argument("name", metavar="NAME", choices=sorted(KNOWN),
                   help=f"the model ({', '.join(KNOWN)})")
    d.add_argument("--url", help="fetch from this URL instead of the published source (a mirror)")
    d.add_argument("--sha256", metavar="HEX", help="refuse the file unless its SHA-256 is HEX")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_models)


def run_models(args) -> int:
    if getattr(args, "models_command", None) == "download":
        before = cached(args.name)
        stamp = before and before.stat().st_mtime_ns
        path = download(args.name, args.url, args.sha256, args.quiet)
        again = stamp is not None and path.stat().st_mtime_ns == stamp
        print(f"{args.name}: {'already cached, nothing fetched: ' if again else ''}{path} "
              f"({path.stat().st_size / 1e6:.1f} MB, sha256 {sha256_of(path)})")
        return 0
    rows = listing()
    print(json.dumps(rows, indent=2) if args.json else format_listing(rows))
    return 0
