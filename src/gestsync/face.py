"""The face cue: lip motion against the sound, beside the body's gestures.

The published GestSync model sees the body with the face masked; the built-in estimator
reads body keypoints and never the mouth. Where a speaker's face is visible, the mouth
opens and closes with the syllables, which is a much tighter cue than gestures. This module
finds the face of each tracked person with the MediaPipe face mesh inside the wheel
(nothing downloaded), in the head box that the pose keypoints give (as `pose.FaceMasker`
does), and turns its inner-lip landmarks into per-frame *mouth signals*:

- opening: the inner-lip gap (three landmark pairs, 3-D distance) divided by the distance
  between the outer eye corners, so zoom and head size cancel out;
- change: the absolute frame-to-frame change of that opening.

The mouth signals are scored against the estimator's speech signals exactly as the body
motion is (`estimator.evidence`: band-pass, standardise, per-frame products at each lag,
2 s sub-window votes), with the mouth's own lead (`MOUTH_LEAD_FRAMES`). Frames with no face
give no face evidence (0): there the body carries the span alone.

Which cues a run reads, and how the mouth's evidence is fused with the body's: `cues`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import estimator, media

# Face-mesh landmark ids (the 468-point canonical face).
INNER_LIP_PAIRS = ((13, 14), (82, 87), (312, 317))  # upper / lower inner lip
EYE_CORNERS = (33, 263)  # outer corners: the face's scale
USED_LANDMARKS = tuple(sorted({i for pair in INNER_LIP_PAIRS + (EYE_CORNERS,) for i in pair}))
NUM_FACE_LANDMARKS = 468

# The mouth opens a little before the sound of its syllable: the lag at which the
# mouth/speech correlation peaks in in-sync clips. Chosen on the fit clips with the band
# and stride below (docs/accuracy.md, benchmarks/face_study.py).
MOUTH_LEAD_FRAMES = 1
# Lips move at the rate of syllables and of the sounds within them, faster than gestures:
# the mouth and speech signals are band-passed to 1.5-10 Hz (against 0.5-6 Hz for the
# body), which needs the face mesh on every frame (25 fps; every 2nd frame caps the signal
# at 6.25 Hz). On the fit clips, 0.5-6 Hz at every 2nd frame found 29% of the shifts of
# whole talking-head crops within 2 frames, 1.5-10 Hz on every frame 100%.
MOUTH_BAND_HZ = (1.5, 10.0)
FACE_STRIDE = 1
MAX_FACE_GAP = 12  # frames: shorter gaps in the face track are interpolated
MIN_FACE_SCALE = 0.02  # eye-corner distance / crop side below this: not a real face
MOUTH_CONFIG = estimator.EstimatorConfig(band_hz=MOUTH_BAND_HZ)
FACE_VISIBLE_SHARE = 0.5  # the hint of an uncertain body answer (`face_share`): a face
# towards the camera on at least this share of the person's frames
HINT_MIN_HEAD = 48  # pixels: a head box smaller than this is too small for the face mesh


# ----------------------------------------------------------------------- mouth signals

def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip opening per frame, in eye-corner distances.

    landmarks: T x 468 x 3 face-mesh points (any unit, the same for x, y, z), NaN rows
    where no face was found. Returns (T,) float64, NaN where there is no face.
    """
    pts = np.asarray(landmarks, np.float64)
    gaps = [np.linalg.norm(pts[:, a] - pts[:, b], axis=1) for a, b in INNER_LIP_PAIRS]
    scale = np.linalg.norm(pts[:, EYE_CORNERS[0]] - pts[:, EYE_CORNERS[1]], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(scale > 0, np.mean(gaps, axis=0) / scale, np.nan)


def bridge(values: np.ndarray, max_gap: int = MAX_FACE_GAP) -> tuple[np.ndarray, np.ndarray]:
    """Fill NaN runs of (T,) `values`: runs up to `max_gap` frames between seen frames are
    interpolated; the rest hold the nearest value. Returns (filled, seen) where `seen`
    marks seen or interpolated frames (False: no face there, or none at all)."""
    found = np.isfinite(values)
    t = np.arange(len(values))
    if not found.any():
        return np.zeros(len(values)), np.zeros(len(values), bool)
    filled = np.interp(t, t[found], values[found])
    seen = found.copy()
    runs = np.flatnonzero(np.diff(np.r_[0, (~found).astype(int), 0]))
    for start, stop in zip(runs[::2], runs[1::2]):
        inside = start > 0 and stop < len(values)
        seen[start:stop] = inside and stop - start <= max_gap
    return filled, seen


def mouth_signals(opening: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T,) opening (NaN: no face) -> (2 x T mouth signals, (T,) bool seen): the bridged
    opening and the absolute change of it; both 0 where the face is not seen."""
    filled, seen = bridge(opening)
    change = np.abs(np.gradient(filled)) if len(filled) > 1 else np.zeros_like(filled)
    signals = np.stack([filled, change])
    return np.where(seen, signals, 0.0), seen


# ---------------------------------------------------------------------------- evidence

def mouth_evidence(signals: np.ndarray, seen: np.ndarray, speech: np.ndarray,
                   lags: np.ndarray) -> np.ndarray:
    """L x T evidence of the mouth against the speech signals (G x T) at every lag, as
    `estimator.evidence` with the mouth's lead; 0 on frames without a face (NaN stays
    where the lag has no sound)."""
    if seen.sum() < 2:
        return np.where(np.isfinite(_plain_evidence(speech, lags)), 0.0, np.nan)
    lead = MOUTH_LEAD_FRAMES - estimator.GESTURE_LEAD_FRAMES
    picture = _seen_only(signals, seen)
    evidence = estimator.evidence(picture, speech, np.asarray(lags) + lead, MOUTH_CONFIG)
    return np.where(seen[None], evidence, np.where(np.isfinite(evidence), 0.0, np.nan))


def _seen_only(signals: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Signals with unseen frames set to the seen frames' mean (so that band-passing and
    standardising see no jump at the edges of the face track)."""
    means = signals[:, seen].mean(axis=1, keepdims=True)
    return np.where(seen[None], signals, means)


def _plain_evidence(speech: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """L x T: 1 where the lag has sound for a frame, NaN where it has none."""
    from .offset import shifted_products

    ones = np.ones(speech.shape[1])
    return shifted_products(ones, ones, np.asarray(lags) + MOUTH_LEAD_FRAMES)


# ---------------------------------------------------------------------------- face mesh

@dataclass
class MouthTrack:
    """The mouth of one run of frames [start, start + len(opening)): opening per frame
    (NaN where no face was found or the frame was skipped)."""

    start: int
    opening: np.ndarray


class _Mesh:
    """One face mesh following one person (video mode: it tracks between calls)."""

    def __init__(self):
        from .pose import _mediapipe
        from .scan import native_logs_hidden

        with native_logs_hidden():  # set-up logs on fd 2, some from its threads: a first
            # inference on a blank image waits for them
            self._mesh = _mediapipe().solutions.face_mesh.FaceMesh(
                static_image_mode=False, max_num_faces=1, refine_landmarks=False,
                min_detection_confidence=0.5, min_tracking_confidence=0.5)
            self._mesh.process(np.zeros((64, 64, 3), np.uint8))
        self._fresh = True  # the first real inference logs too

    def landmarks(self, frame: np.ndarray, head: np.ndarray | None) -> np.ndarray | None:
        """468 x 3 points in pixels of `frame` (z at the scale of x; only USED_LANDMARKS
        are read, the others are NaN), or None. `head`: a square x0, y0, x1, y1 in pixels
        of `frame` (`pose.head_box`); None: the whole frame."""
        from .pose import CROP_WIDTH, _downscale, _head_image

        if head is None:
            image = _downscale(frame, CROP_WIDTH)
            h, w = frame.shape[:2]
            origin, scale = np.zeros(3), np.array([w, h, w], np.float64)
        else:
            image, y0, side = _head_image(frame, head)
            origin, scale = np.array([float(np.round(head[0])), y0, 0.0]), side
        faces = self._faces(np.ascontiguousarray(image))
        if not faces:
            return None
        pts = np.full((NUM_FACE_LANDMARKS, 3), np.nan)
        marks = faces[0].landmark
        for i in USED_LANDMARKS:  # only these: reading all 468 costs more than the mesh's
            pts[i] = marks[i].x, marks[i].y, marks[i].z  # tracking step
        return pts * scale + origin

    def _faces(self, image: np.ndarray):
        from .pose import native_logs_hidden, projection_warned

        if not self._fresh and projection_warned():
            return self._mesh.process(image).multi_face_landmarks
        self._fresh = False
        with native_logs_hidden():  # set-up lines, then until MediaPipe's warning on
            return self._mesh.process(image).multi_face_landmarks  # projecting landmarks

    def close(self) -> None:
        from .scan import native_logs_hidden

        with native_logs_hidden():  # the graph logs as it closes too
            self._mesh.close()


def read_mouths(info: media.MediaInfo, runs: list[tuple[int, np.ndarray | None]],
                stride: int = FACE_STRIDE, progress=None) -> list[MouthTrack]:
    """The mouth opening of each run, from one decode of the clip.

    runs: (first frame, keypoints K x 33 x 4 in original pixels) per person run (one face
    mesh each), or (first frame, None) with K = the rest of the clip: a face-only clip
    searched without a head box. The face mesh runs on every `stride`-th frame.
    """
    from .scan import pose_size

    size = pose_size(info)
    to_small = np.array([size[0] / info.width, size[1] / info.height], np.float32)
    out = []
    meshes = [_Mesh() for _ in runs]
    lengths = [info.num_frames - s if k is None else len(k) for s, k in runs]
    openings = [np.full(n, np.nan) for n in lengths]
    try:
        for k, frame in enumerate(media.iter_frames(info, size=size)):
            if k % stride == 0:
                _one_frame(k, frame, runs, lengths, meshes, openings, to_small)
            if progress is not None:
                progress("face", k + 1, info.num_frames)
    finally:
        for mesh in meshes:
            mesh.close()
    for (start, _), opening in zip(runs, openings):
        out.append(MouthTrack(start, opening))
    return out


def _one_frame(k, frame, runs, lengths, meshes, openings, to_small) -> None:
    from .pose import head_box

    for i, ((start, keypoints), n) in enumerate(zip(runs, lengths)):
        row = k - start
        if not 0 <= row < n:
            continue
        head = None
        if keypoints is not None:
            kp = keypoints[row].copy()
            kp[:, :2] *= to_small
            head = head_box(kp)
        pts = meshes[i].landmarks(frame, head)
        if pts is not None:
            side = frame.shape[1] if head is None else head[2] - head[0]
            eyes = np.linalg.norm(pts[EYE_CORNERS[0]] - pts[EYE_CORNERS[1]])
            if eyes >= MIN_FACE_SCALE * side:
                openings[i][row] = mouth_opening(pts[None])[0]


def clip_mouth(mouths: list[MouthTrack], num_frames: int) -> np.ndarray:
    """One (num_frames,) opening from runs that do not overlap (NaN where none)."""
    out = np.full(num_frames, np.nan)
    for m in mouths:
        stop = min(num_frames, m.start + len(m.opening))
        out[m.start:stop] = m.opening[:stop - m.start]
    return out


def person_mouth(info: media.MediaInfo, pieces: list[tuple],
                 stride: int = FACE_STRIDE, progress=None) -> np.ndarray:
    """(T,) mouth opening of the person of `scan.person_pieces` (NaN: no face); with no
    piece at all (nobody tracked), the face mesh searches the whole frame."""
    runs = [(start, keypoints) for start, keypoints, *_ in pieces] if pieces else [(0, None)]
    return clip_mouth(read_mouths(info, runs, stride, progress), info.num_frames)


# ----------------------------------------------------------------------------- speaker

MOUTH_TOLERANCE = 3  # frames either side of the mouth's lead over which the sound is
# averaged for `gestsync speaker` (as `estimator.LEAD_TOLERANCE` for gestures): a person's
# sound may be a few frames off. On the composite protocol (every 2 and 4 of the 9 body
# samples, forced whole scenes) 1 frame gave 0.76 / 0.68, 3 frames 0.90 / 0.72, 5 frames
# 0.64 / 0.38 (docs/accuracy.md)


def heard_by_mouth(speech: np.ndarray) -> np.ndarray:
    """G x T speech signals -> (T,) standardised speech signal, at each frame averaged over
    the sound of frames t + MOUTH_LEAD_FRAMES -+ MOUTH_TOLERANCE (`estimator.heard_signal`)."""
    return estimator.heard_signal(speech, MOUTH_LEAD_FRAMES, MOUTH_TOLERANCE, MOUTH_CONFIG)


def mouth_picture(signals: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """(T,) standardised mouth signal, 0 on frames without a face."""
    if seen.sum() < 2:
        return np.zeros(len(seen))
    return np.where(seen, estimator.combined_signal(_seen_only(signals, seen), MOUTH_CONFIG),
                    0.0)


def mouth_speaker_evidence(signals: np.ndarray, seen: np.ndarray,
                           speech: np.ndarray) -> np.ndarray:
    """One track's (1 + S) x T mouth evidence at zero lag and against circularly shifted
    sound (`speaker_scores.circular_evidence`): its mouth signals against its G x T speech
    signals, 0 on frames without a face (fused with the body's by `cues.Cues.fuse`)."""
    from .speaker_scores import circular_evidence

    return circular_evidence(mouth_picture(signals, seen), heard_by_mouth(speech))


def track_mouths(info: media.MediaInfo, tracks: list[list], stride: int = FACE_STRIDE,
                 progress=None) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Per scene, per track (`people.Track`): its (mouth signals, seen), one decode."""
    runs = [(t.start, t.keypoints) for scene in tracks for t in scene]
    mouths = iter(read_mouths(info, runs, stride, progress) if runs else [])
    return [[mouth_signals(next(mouths).opening) for _ in scene] for scene in tracks]


# -------------------------------------------------------------------------------- hint

def face_share(keypoints: np.ndarray, min_visibility: float = 0.5) -> float:
    """Share of a person's frames (T x 33 x 4 pose keypoints) where the face is towards
    the camera and big enough for the face mesh: both eyes and the mouth corners seen,
    head box at least HINT_MIN_HEAD pixels. Reuses the pose; runs no face mesh."""
    from .pose import EYES, MOUTH, head_box

    if not len(keypoints):
        return 0.0
    seen = (keypoints[:, list(EYES + MOUTH), 3] >= min_visibility).all(axis=1)
    sides = np.array([head_box(k)[2] - head_box(k)[0] for k in keypoints])
    return float(np.mean(seen & (sides >= HINT_MIN_HEAD)))
