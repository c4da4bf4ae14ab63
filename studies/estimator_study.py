"""The estimator method study: families of gesture evidence and of alignment, side by side.

    OMP_NUM_THREADS=1 .venv/bin/python studies/estimator_study.py --markdown

(options: --samples ../shared/samples, --cache results/estimator_study, --methods a,b,...,
--shifts=-20:20). The first run caches, per single-speaker clip of MANIFEST.tsv with a
known offset, what the product's pose stage gives (`scan.single_person` with the pose
stride of `gestsync sync`: the main person's keypoints and track runs), grey frames 128 px
wide, the 16 kHz sound and the stated offset (about 70 s on 2 cores for the 9 samples);
every method is then scored from that cache (about 2.5 minutes for all 18 methods and the
default 41 shifts; half that with --shifts=-20:20:2).

Protocol (docs/evaluation.md, simulated): the in-sync sound (the clip's stated
offset undone) is moved by s frames (s > 0: later) with silence padding, for each s of
--shifts; each non-overlapping 5 s and 10 s window and the whole clip is one trial;
candidates are every lag in [-50, 50]; the true answer is s. `gestsync eval` measures the
product the same way on real re-encoded copies.

Every method has visual features (once per clip), speech features (once per shifted sound)
and a score per candidate lag for a span. `shipped` is the product end to end; every
other method changes one part of `plain-mean` (the product before its sub-window vote)
and keeps the rest, so that each family is compared with it on equal terms. The losing
methods live here only, never in src/.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d, uniform_filter1d

from gestsync import estimator, evaluate, media, offset, scan, sync
from gestsync.audio import MEL_PER_FRAME, SAMPLES_PER_FRAME, SAMPLE_RATE, log_mel
from gestsync.errors import GestsyncError

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
LAGS = offset.candidate_lags(50)
LEAD = estimator.GESTURE_LEAD_FRAMES
GRAY_WIDTH = 128  # px: enough for arm and hand motion, cheap for optical flow
MIN_VISIBILITY = estimator.EstimatorConfig().min_visibility
Span = tuple[int, int]


# ---------------------------------------------------------------- the cache
@dataclass
class Clip:
    """One cached clip, 25 fps. keypoints: T x 33 x 4 (pixels of the original frame, NaN
    where nobody); run_id: T (-1: nobody; a new id wherever the chosen track changes);
    gray: T x h x 128 uint8; audio: float32 at 16 kHz, frame 0 on, as the file has it."""

    name: str
    keypoints: np.ndarray
    run_id: np.ndarray
    gray: np.ndarray
    audio: np.ndarray
    stated: int
    frame_width: int
    hands_ratio: float

    @property
    def num_frames(self) -> int:
        return len(self.run_id)

    def runs(self) -> list[Span]:
        """[start, stop) of each stretch of one track run."""
        changes = np.flatnonzero(np.diff(self.run_id) != 0) + 1
        bounds = zip(np.r_[0, changes], np.r_[changes, self.num_frames])
        return [(int(a), int(b)) for a, b in bounds if self.run_id[a] >= 0]

    def pieces(self) -> list[tuple[int, np.ndarray]]:
        """The runs as `scan.person_pieces` gives them."""
        return [(a, self.keypoints[a:b]) for a, b in self.runs()]

    def shifted_audio(self, shift: int) -> np.ndarray:
        """The in-sync sound moved `shift` frames later (earlier if < 0), silence-padded."""
        move = (shift - self.stated) * SAMPLES_PER_FRAME
        out = np.zeros_like(self.audio)
        if move >= 0:
            out[move:] = self.audio[:len(self.audio) - move]
        else:
            out[:move] = self.audio[-move:]
        return out


def build_cache(path: Path, stated: int, dst: Path) -> None:
    """Run the product's pose stage on one clip and save what the methods need."""
    info = media.probe(path)
    tracks, person = scan.single_person(info, stride=sync.POSE_STRIDE,
                                        workers=scan.default_workers())
    keypoints = np.full((info.num_frames, 33, 4), np.nan, np.float32)
    run_id = np.full(info.num_frames, -1)
    for i, (start, points) in enumerate(scan.person_pieces(tracks, info.num_frames)):
        keypoints[start:start + len(points)] = points
        run_id[start:start + len(points)] = i
    size = scan.pose_size(info, width=GRAY_WIDTH)
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in media.iter_frames(info, size)])
    dst.parent.mkdir(parents=True, exist_ok=True)
    np.savez(dst, keypoints=keypoints, run_id=run_id, gray=gray, audio=media.read_audio(info),
             stated=stated, frame_width=info.width, hands_ratio=person.visible_hands_ratio)


def load_clip(path: Path, dst: Path) -> Clip:
    with np.load(dst, allow_pickle=False) as d:
        return Clip(path.name, d["keypoints"], d["run_id"], d["gray"], d["audio"],
                    int(d["stated"]), int(d["frame_width"]), float(d["hands_ratio"]))


# ---------------------------------------------------------------- body features
def run_geometry(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """One run (t x 33 x 4) -> (x, y in pixels with unseen joints interpolated over time,
    t x 33 seen mask, median shoulder width in pixels, NaN if never seen)."""
    seen = keypoints[..., 3] >= MIN_VISIBILITY
    xy = np.array(keypoints[..., :2], np.float64)
    t = np.arange(len(xy))
    for joint in range(xy.shape[1]):
        ok = seen[:, joint]
        for c in range(2):
            xy[:, joint, c] = np.interp(t, t[ok], xy[ok, joint, c]) if ok.any() else np.nan
    left, right = estimator.SHOULDERS
    shoulders = np.linalg.norm(xy[:, left] - xy[:, right], axis=1)
    width = float(np.median(shoulders)) if np.isfinite(shoulders).all() else np.nan
    return xy, seen, width if width > 0 else np.nan


def part_kinematics(clip: Clip, joints: tuple[int, ...], order: int,
                    vertical_only: bool = False) -> np.ndarray:
    """(T,): mean magnitude of the `order`-th time derivative (1 speed, 2 acceleration) of
    the seen `joints` (of their height alone if `vertical_only`), in shoulder widths per
    frame^order, run by run (0 where none seen)."""
    out = np.zeros(clip.num_frames)
    for start, stop in clip.runs():
        xy, seen, width = run_geometry(clip.keypoints[start:stop])
        if stop - start < 3 or not np.isfinite(width):
            continue
        d = xy[..., 1:] / width if vertical_only else xy / width
        for _ in range(order):
            d = np.gradient(d, axis=0)
        magnitude, part = np.linalg.norm(d, axis=2)[:, joints], seen[:, joints]
        count = part.sum(axis=1)
        out[start:stop] = np.where(part, magnitude, 0).sum(axis=1) / np.maximum(count, 1)
    return out


def apex_impulses(clip: Clip) -> np.ndarray:
    """(T,): gesture apexes as events: each local maximum of hand speed above its run's
    median becomes an impulse of height peak / median, smoothed over 1.5 frames."""
    speed = part_kinematics(clip, estimator.HAND_JOINTS, 1)
    out = np.zeros_like(speed)
    for start, stop in clip.runs():
        s = speed[start:stop]
        level = np.median(s) + 1e-9
        peaks = np.flatnonzero((s[1:-1] > s[:-2]) & (s[1:-1] >= s[2:]) & (s[1:-1] > level)) + 1
        impulses = np.zeros_like(s)
        impulses[peaks] = s[peaks] / level
        out[start:stop] = gaussian_filter1d(impulses, 1.5)
    return out


NOSE, EARS = 0, [7, 8]


def head_nods(clip: Clip) -> np.ndarray:
    """(1, T): how fast the head pitches (nods): the change per frame of the nose's height
    above the ears, in shoulder widths, run by run (0 where nose or both ears are unseen)."""
    out = np.zeros((1, clip.num_frames))
    for start, stop in clip.runs():
        xy, seen, width = run_geometry(clip.keypoints[start:stop])
        if stop - start < 3 or not np.isfinite(width):
            continue
        pitch = (xy[:, NOSE, 1] - xy[:, EARS, 1].mean(axis=1)) / width
        visible = seen[:, NOSE] & seen[:, EARS].any(axis=1)
        out[0, start:stop] = np.where(visible, np.abs(np.gradient(pitch)), 0)
    return out


BOX_JOINTS = (11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24)  # shoulders to hands, hips
BOX_MARGIN = 0.35  # shoulder widths around the joints
CAPTION_BAND = 0.2  # bottom share of the frame left out: burned-in captions change with speech
MIN_BOX = 8  # px
FARNEBACK = dict(pyr_scale=0.5, levels=2, winsize=9, iterations=2, poly_n=5, poly_sigma=1.1,
                 flags=0)


def body_boxes(xy: np.ndarray, width: float, shape: tuple[int, int]) -> np.ndarray:
    """t x 4 (y0, y1, x0, x1) body boxes in an image of `shape` (xy in its pixels): from the
    shoulder line down, so the face never counts, and above the caption band."""
    h, w = shape
    margin, floor = BOX_MARGIN * width, (1 - CAPTION_BAND) * h
    pts = xy[:, BOX_JOINTS]
    top = xy[:, estimator.SHOULDERS, 1].min(axis=1)
    boxes = np.stack([top, np.nanmax(pts[..., 1], axis=1) + margin,
                      np.nanmin(pts[..., 0], axis=1) - margin,
                      np.nanmax(pts[..., 0], axis=1) + margin], axis=1)
    return np.clip(boxes, 0, [floor, floor, w, w]).astype(int)


def masked_motion(clip: Clip, flow: bool) -> np.ndarray:
    """Dense motion in the body box, run by run, robustly standardised per run.
    flow=False: (1, T) mean |frame difference|; flow=True: (2, T) mean |vertical| and
    |horizontal| Farneback flow in shoulder widths per frame."""
    out = np.zeros((2 if flow else 1, clip.num_frames))
    scale = clip.gray.shape[2] / clip.frame_width
    for start, stop in clip.runs():
        xy, _, width = run_geometry(clip.keypoints[start:stop])
        if not np.isfinite(width):
            continue
        width *= scale
        boxes = body_boxes(xy * scale, width, clip.gray.shape[1:])
        for i in range(start + 1, stop):
            y0, y1, x0, x1 = boxes[i - start]
            if y1 - y0 < MIN_BOX or x1 - x0 < MIN_BOX:
                continue
            before, after = clip.gray[i - 1, y0:y1, x0:x1], clip.gray[i, y0:y1, x0:x1]
            if flow:
                v = cv2.calcOpticalFlowFarneback(before, after, None, **FARNEBACK)
                out[:, i] = np.abs(v[..., ::-1]).mean(axis=(0, 1)) / width
            else:
                out[0, i] = cv2.absdiff(after, before).mean()
    return robust_per_run(out, clip)


def robust_per_run(x: np.ndarray, clip: Clip, limit: float = 5.0) -> np.ndarray:
    """Each row, per run: (x - median) / (1.4826 MAD), clipped to +-limit (tames flashes and
    cuts the run split missed); 0 outside runs and on each run's first frame."""
    out = np.zeros_like(x)
    for start, stop in clip.runs():
        part = x[:, start + 1:stop]
        if part.shape[1] >= 3:
            median = np.median(part, axis=1, keepdims=True)
            mad = 1.4826 * np.median(np.abs(part - median), axis=1, keepdims=True) + 1e-9
            out[:, start + 1:stop] = np.clip((part - median) / mad, -limit, limit)
    return out


def product_motion(clip: Clip) -> np.ndarray:
    return estimator.person_motion(clip.pieces(), clip.num_frames)


def product_speech(clip: Clip, wav: np.ndarray) -> np.ndarray:
    return estimator.speech_signals(wav, clip.num_frames)


# ---------------------------------------------------------------- speech features
def per_frame(values: np.ndarray, num_frames: int) -> np.ndarray:
    """Mean of each video frame's 4 hops of 10 ms; the last value repeats to num_frames."""
    usable = min(len(values) // MEL_PER_FRAME, num_frames)
    out = np.full(num_frames, values[usable * MEL_PER_FRAME - 1] if usable else 0.0)
    out[:usable] = values[:usable * MEL_PER_FRAME].reshape(usable, MEL_PER_FRAME).mean(axis=1)
    return out


YIN_FRAME, YIN_F0_HZ, YIN_CHUNK = 1024, (70.0, 400.0), 2000  # samples, pitch range, hops
HOP = SAMPLE_RATE // 100


def voicing(clip: Clip, wav: np.ndarray) -> np.ndarray:
    """(1, T) voicing strength: per 10 ms hop, 1 - YIN aperiodicity (the lowest cumulative-
    mean-normalised difference over 70-400 Hz periods), 0 where the hop is quieter than
    the clip's median; averaged per video frame."""
    lo, hi = int(SAMPLE_RATE / YIN_F0_HZ[1]), int(SAMPLE_RATE / YIN_F0_HZ[0])
    window = YIN_FRAME - hi
    x = np.pad(np.asarray(wav, np.float64), YIN_FRAME // 2)
    frames = np.lib.stride_tricks.sliding_window_view(x, YIN_FRAME)[::HOP][:len(wav) // HOP]
    strength, loudness = [], []
    for c in range(0, len(frames), YIN_CHUNK):
        f = frames[c:c + YIN_CHUNK]
        cross = np.fft.irfft(np.conj(np.fft.rfft(f[:, :window], 2 * YIN_FRAME))
                             * np.fft.rfft(f, 2 * YIN_FRAME))[:, :hi + 1]
        energy = np.cumsum(np.pad(f ** 2, ((0, 0), (1, 0))), axis=1)
        diff = np.maximum(energy[:, window:window + 1] + energy[:, window:window + hi + 1]
                          - energy[:, :hi + 1] - 2 * cross, 0)[:, 1:]  # periods 1..hi
        normalised = diff * np.arange(1, hi + 1) / (np.cumsum(diff, axis=1) + 1e-12)
        strength.append(1 - np.clip(normalised[:, lo - 1:].min(axis=1), 0, 1))
        loudness.append(f[:, YIN_FRAME // 2 - 320:YIN_FRAME // 2 + 320].std(axis=1))
    strength, loudness = np.concatenate(strength), np.concatenate(loudness)
    voiced = np.where(loudness > max(np.median(loudness), 1e-4), strength, 0.0)
    return per_frame(voiced, clip.num_frames)[None]


def mel_bands(wav: np.ndarray, num_frames: int, groups: int = 8) -> np.ndarray:
    """(groups, T): log energy of `groups` ranges of mel bands over ~110-3300 Hz (mel bands
    2..57), each band floored at its median like the product's speech signals."""
    mel = log_mel(np.asarray(wav, np.float32)).numpy().astype(np.float64)
    mel = np.maximum(mel, np.median(mel, axis=0, keepdims=True))
    return np.stack([per_frame(np.log(np.exp(mel[:, g]).sum(axis=1)), num_frames)
                     for g in np.array_split(np.arange(2, 58), groups)])


# ---------------------------------------------------------------- methods
def shipped_scores(evidence: np.ndarray, span: Span) -> np.ndarray:
    """The product's scoring of a span: the sub-window vote."""
    return offset.lag_scores(evidence, span, estimator.SUBWINDOW_FRAMES)


class Method:
    """Motion rows (clip -> F x T) and speech rows ((clip, wav) -> G x T) made into evidence by
    the product's `estimator.evidence` (each row band-passed and standardised, rows
    averaged, motion[t] * speech[t + lag + LEAD]); `span_scores(evidence, span)` scores
    the lags of a span (default: the plain mean, as the product before its sub-window vote).
    A method changes one of the three."""

    def __init__(self, name: str, family: str, motion: Callable = product_motion,
                 speech: Callable = product_speech,
                 span_scores: Callable = offset.lag_scores):
        self.name, self.family, self.motion, self.speech = name, family, motion, speech
        self.span_scores = span_scores

    def prepare(self, clips: list[Clip]) -> None:
        """Called once with every clip before scoring (only trained methods use it)."""

    def scorer(self, motion: np.ndarray, speech: np.ndarray) -> Callable[[Span], np.ndarray]:
        """span -> score of each of LAGS (higher is better)."""
        evidence = estimator.evidence(motion, speech, LAGS)
        return lambda span: self.span_scores(evidence, span)


class GccPhat(Method):
    """Generalised cross-correlation over the span, its spectrum whitened to the power
    beta (1: PHAT, only phase counts; 0: plain correlation), kept to 0.5-6 Hz."""

    def __init__(self, beta: float):
        super().__init__(f"gcc-phat-{beta:g}", "alignment")
        self.beta = beta

    def scorer(self, motion, speech):
        picture, sound = estimator.combined_signal(motion), estimator.combined_signal(speech)
        return lambda span: gcc_phat(picture, sound, span, self.beta)


def gcc_phat(picture: np.ndarray, sound: np.ndarray, span: Span, beta: float) -> np.ndarray:
    shifts = LAGS + LEAD
    lo, hi = shifts.min(), shifts.max()
    seen = picture[span[0]:span[1]]
    idx = np.arange(span[0] + lo, span[1] + hi)
    heard = np.where((idx >= 0) & (idx < len(sound)), sound[np.clip(idx, 0, len(sound) - 1)], 0)
    n = 1 << int(np.ceil(np.log2(len(seen) + len(heard))))
    cross = np.conj(np.fft.rfft(seen, n)) * np.fft.rfft(heard, n)
    freqs = np.fft.rfftfreq(n, 1 / estimator.FPS)
    band = (freqs >= 0.5) & (freqs <= 6.0)
    cross = band * cross / (np.abs(cross) + 1e-9 * np.abs(cross).max()) ** beta
    return np.fft.irfft(cross, n)[shifts - lo]  # entry k: sum_t seen[t] * heard[t + k]


VITERBI_PENALTY, VITERBI_SMOOTH = 2.0, 25  # per one-frame change of lag; frames


def viterbi_scores(evidence: np.ndarray, span: Span) -> np.ndarray:
    """DTW-like: the best path through (frame, lag) of the span's evidence smoothed over
    VITERBI_SMOOTH frames, VITERBI_PENALTY per one-frame change of lag; a lag's score is
    how many frames the path spends on it (ties broken by the mean evidence)."""
    ev = np.nan_to_num(evidence[:, span[0]:span[1]], nan=-1.0)
    ev = uniform_filter1d(ev, VITERBI_SMOOTH, axis=1)
    num_lags, num_frames = ev.shape
    total, back = ev[:, 0].copy(), np.zeros(ev.shape, np.int8)
    for t in range(1, num_frames):
        options = np.stack([total, np.r_[-np.inf, total[:-1]] - VITERBI_PENALTY,
                            np.r_[total[1:], -np.inf] - VITERBI_PENALTY])
        back[:, t] = choice = options.argmax(axis=0)
        total = options[choice, np.arange(num_lags)] + ev[:, t]
    path = np.empty(num_frames, int)
    path[-1] = total.argmax()
    for t in range(num_frames - 1, 0, -1):
        path[t - 1] = path[t] + (0, -1, 1)[back[path[t], t]]
    return np.bincount(path, minlength=num_lags) + 1e-3 * ev.mean(axis=1)


CCA_JOINTS = (0, 7, 8, 11, 12, 13, 14, 15, 16, 19, 20)  # nose, ears, shoulders to wrists, index


class CcaLoco(Method):
    """Regularised CCA: per-joint motion (x, y velocity and speed of CCA_JOINTS, and the
    product's part speeds) x speech (8 mel-band energies, energy, onsets), fitted on the
    in-sync sound of every other clip (leave one clip out); each side projected on its
    first canonical direction, then scored like plain-mean."""

    RIDGE = 0.5  # times the mean variance, added to each covariance's diagonal

    def __init__(self):
        super().__init__("cca-loco", "alignment", self.projected_motion, self.projected_speech)
        self.moments: dict[str, tuple[np.ndarray, ...]] = {}
        self.weights: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def prepare(self, clips):
        for clip in clips:
            x = self.motion_rows(clip)[:, :-LEAD]  # motion[t] with speech[t + LEAD]
            y = self.speech_rows(clip.shifted_audio(0), clip.num_frames)[:, LEAD:]
            n = x.shape[1]
            self.moments[clip.name] = (x @ x.T / n, y @ y.T / n, x @ y.T / n)

    def fit(self, held_out: str) -> tuple[np.ndarray, np.ndarray]:
        if held_out not in self.weights:
            sxx, syy, sxy = (np.mean(m, axis=0) for m in
                             zip(*[v for k, v in self.moments.items() if k != held_out]))
            kx, ky = (np.linalg.inv(np.linalg.cholesky(
                s + self.RIDGE * np.trace(s) / len(s) * np.eye(len(s)))) for s in (sxx, syy))
            u, _, vt = np.linalg.svd(kx @ sxy @ ky.T)
            self.weights[held_out] = kx.T @ u[:, 0], ky.T @ vt[0]
        return self.weights[held_out]

    @staticmethod
    def motion_rows(clip: Clip) -> np.ndarray:
        rows = np.zeros((3 * len(CCA_JOINTS), clip.num_frames))
        for start, stop in clip.runs():
            xy, seen, width = run_geometry(clip.keypoints[start:stop])
            if stop - start < 3 or not np.isfinite(width):
                continue
            v = np.gradient(xy[:, CCA_JOINTS] / width, axis=0)
            v[~seen[:, CCA_JOINTS]] = 0
            rows[:, start:stop] = np.concatenate([v[..., 0].T, v[..., 1].T,
                                                  np.linalg.norm(v, axis=2).T])
        return standardised_rows(np.vstack([rows, product_motion(clip)]))

    @staticmethod
    def speech_rows(wav: np.ndarray, num_frames: int) -> np.ndarray:
        return standardised_rows(np.vstack([mel_bands(wav, num_frames),
                                            estimator.speech_signals(wav, num_frames)]))

    def projected_motion(self, clip: Clip) -> np.ndarray:
        return (self.fit(clip.name)[0] @ self.motion_rows(clip))[None]

    def projected_speech(self, clip: Clip, wav: np.ndarray) -> np.ndarray:
        return (self.fit(clip.name)[1] @ self.speech_rows(wav, clip.num_frames))[None]


def standardised_rows(x: np.ndarray) -> np.ndarray:
    """Each row band-passed to the estimator's band and standardised."""
    return np.stack([estimator.combined_signal(row[None]) for row in x])


def all_methods() -> list[Method]:
    def speed(joints):
        return lambda clip: part_kinematics(clip, joints, 1)[None]

    def acceleration(clip):
        return np.stack([part_kinematics(clip, p, 2) for p in estimator.BODY_PARTS.values()])

    def vertical(clip):
        return np.stack([part_kinematics(clip, p, 1, vertical_only=True)
                         for p in estimator.BODY_PARTS.values()])

    return [
        Method("shipped", "reference", span_scores=shipped_scores),
        Method("plain-mean", "reference"),
        Method("elbow-speed", "keypoints", speed(estimator.ARM_JOINTS)),
        Method("head-speed", "keypoints", speed(estimator.HEAD_JOINTS)),
        Method("acceleration", "keypoints", acceleration),
        Method("vertical", "keypoints", vertical),
        Method("head-nods", "keypoints", head_nods),
        Method("apex-impulses", "keypoints", lambda c: apex_impulses(c)[None]),
        Method("frame-diff", "dense", lambda c: masked_motion(c, flow=False)),
        Method("flow-vy", "dense", lambda c: masked_motion(c, flow=True)[:1]),
        Method("flow-vx", "dense", lambda c: masked_motion(c, flow=True)[1:]),
        Method("energy-only", "speech", speech=lambda c, w: product_speech(c, w)[:1]),
        Method("onset-only", "speech", speech=lambda c, w: product_speech(c, w)[1:]),
        Method("voicing", "speech", speech=voicing),
        GccPhat(1.0),
        GccPhat(0.5),
        CcaLoco(),
        Method("viterbi", "alignment", span_scores=viterbi_scores),
    ]


# ---------------------------------------------------------------- the protocol
def errors(trials: np.recarray, **where) -> np.ndarray:
    """|predicted - shift| of the trials whose columns (method, clip, context) are in `where`."""
    keep = np.ones(len(trials), bool)
    for column, value in where.items():
        keep &= np.isin(trials[column], value)
    return np.abs(trials.error[keep])


def windows(num_frames: int, context: int | None) -> list[Span]:
    """Every non-overlapping window of `context` frames from frame 0 (None: the whole clip;
    none when the clip is shorter), as `gestsync eval` cuts them."""
    length = context or num_frames
    return [(s, s + length) for s in range(0, num_frames - length + 1, length)]


def truth_z(scores: np.ndarray, truth: int, exclude: int = 10) -> float:
    """How far the true lag's score stands above the scores of the lags more than `exclude`
    frames away from it, in their standard deviations (about 3 is needed to win among 101
    candidates; a steadier measure of the evidence than right-or-wrong). NaN where those
    scores are not a curve (nearly all equal, as the path counts of `viterbi`)."""
    far = (np.abs(LAGS - truth) > exclude) & np.isfinite(scores)
    spread = scores[far].std()
    if spread <= 1e-3 * (np.nanmax(scores) - np.nanmin(scores)):
        return float("nan")
    return float((scores[LAGS == truth][0] - scores[far].mean()) / spread)


def run_study(methods: list[Method], clips: list[Clip], shifts: list[int]
              ) -> tuple[np.recarray, dict[str, np.ndarray], dict[tuple[str, str], float]]:
    """All trials of every method; per method the CPU seconds and frames of its visual
    features, speech features and span scoring (a 3 x 2 array); and per (method, clip) the
    `truth_z` of the whole in-sync clip."""
    rows, cost, z = [], {m.name: np.zeros((3, 2)) for m in methods}, {}
    for method in methods:
        method.prepare(clips)
    for clip in clips:
        print(f"estimator_study: {clip.name}", file=sys.stderr, flush=True)
        pictures = {}
        for method in methods:
            start = time.process_time()
            pictures[method.name] = method.motion(clip)
            cost[method.name][0] += time.process_time() - start, clip.num_frames
        for shift in shifts:
            wav = clip.shifted_audio(shift)
            for method in methods:
                start = time.process_time()
                sound = method.speech(clip, wav)
                heard = time.process_time()
                scores = method.scorer(pictures[method.name], sound)
                if shift == 0:
                    z[method.name, clip.name] = truth_z(scores((0, clip.num_frames)), 0)
                for context, length in evaluate.CONTEXTS.items():
                    for span in windows(clip.num_frames, length):
                        predicted = offset.best_lag(LAGS, scores(span))
                        rows.append((method.name, clip.name, context, predicted - shift))
                        cost[method.name][2, 1] += span[1] - span[0]
                cost[method.name][1] += heard - start, clip.num_frames
                cost[method.name][2, 0] += time.process_time() - heard
    return np.rec.fromrecords(rows, names="method,clip,context,error"), cost, z


def summary(errors: np.ndarray) -> list[str]:
    """acc@0/1/2/5, median absolute error and count, formatted."""
    if not len(errors):
        return ["-"] * (len(evaluate.TOLERANCES) + 2)
    return ([f"{np.mean(errors <= k):.2f}" for k in evaluate.TOLERANCES]
            + [f"{np.median(errors):.1f}", str(len(errors))])


# ---------------------------------------------------------------- the report
def table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = [header, ["---"] * len(header)] + rows
        return "\n".join("| " + " | ".join(r) + " |" for r in lines)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [header] + rows)


def report(trials: np.recarray, cost: dict[str, np.ndarray], z: dict[tuple[str, str], float],
           methods: list[Method], clips: list[Clip], markdown: bool) -> str:
    contexts = list(evaluate.CONTEXTS)
    split = {c.name: evaluate.fit_check_split(c.name) for c in clips}
    out = ["### Clips (# in the per-clip table; split: `evaluate.fit_check_split`)",
           table(["#", "clip", "seconds", "hands visible", "split"],
                 [[str(i + 1), c.name, f"{c.num_frames / estimator.FPS:.1f}",
                   f"{c.hands_ratio:.2f}", split[c.name]] for i, c in enumerate(clips)], markdown)]
    rows = [[m.name, m.family, c] + summary(errors(trials, method=m.name, context=c))
            for m in methods for c in contexts]
    out += ["", "### All clips, per method and context",
            table(["method", "family", "context", "acc@0", "acc@1", "acc@2", "acc@5",
                   "median abs err", "trials"], rows, markdown)]
    rows = []
    for m in methods:
        cells = []
        for part in ("fit", "check"):
            names = [n for n, s in split.items() if s == part]
            for c in contexts:
                acc, median = (summary(errors(trials, method=m.name, context=c, clip=names))[i]
                               for i in (2, 4))
                cells.append(f"{acc} ({median})")
        rows.append([m.name] + cells)
    out += ["", "### Fit vs check clips: acc@2 (median abs err)",
            table(["method"] + [f"{p} {c}" for p in ("fit", "check") for c in contexts],
                  rows, markdown)]
    rows = [[m.name] + [summary(errors(trials, method=m.name, context="whole", clip=c.name))[2]
                        for c in clips] for m in methods]
    out += ["", "### Per clip, whole-clip context: acc@2",
            table(["method"] + [str(i + 1) for i in range(len(clips))], rows, markdown)]
    out += ["", "### Per-clip oracle: the best method for each clip, chosen after the fact",
            "An upper bound on any choice among these methods, clip-specific tuning included.",
            "", oracle_table(trials, methods, clips, markdown)]
    if z:
        groups = {"all": clips, "fit": [c for c in clips if split[c.name] == "fit"],
                  "check": [c for c in clips if split[c.name] == "check"]}
        rows = [[m.name] + [f"{z[m.name, c.name]:+.1f}" for c in clips]
                + [f"{np.mean([z[m.name, c.name] for c in g]):+.2f}" if g else "-" for g in groups.values()]
                for m in methods]
        rows = [[cell.replace("+nan", "n/a") for cell in row] for row in rows]
        out += ["", "### In-sync whole clip: z of the true lag against lags more than 10 frames away",
                table(["method"] + [str(i + 1) for i in range(len(clips))] + [f"mean {g}" for g in groups],
                      rows, markdown)]
    rows = [[m.name, m.family] + [f"{1000 * s / max(n, 1):.3f}" for s, n in cost[m.name]]
            for m in methods]
    out += ["", "### CPU ms per frame (pose excluded: shared by all methods)",
            table(["method", "family", "visual features", "speech features", "span scoring"],
                  rows, markdown)]
    return "\n".join(out)


def oracle_table(trials: np.recarray, methods: list[Method], clips: list[Clip],
                 markdown: bool) -> str:
    """Per context and clip, the method with the best acc@2 there; and the acc@2 over all
    the context's trials when every clip gets its own best method."""
    rows = []
    for context in evaluate.CONTEXTS:
        right = total = 0
        for clip in clips:
            scored = [(np.mean(e <= 2), len(e), m.name) for m in methods
                      if len(e := errors(trials, method=m.name, context=context, clip=clip.name))]
            if scored:
                acc, count, name = max(scored)
                right, total = right + acc * count, total + count
                rows.append([context, clip.name, name, f"{acc:.2f}", str(count)])
        if total:
            rows.append([context, "**all clips**", "(each its best)", f"{right / total:.2f}",
                         str(total)])
    return table(["context", "clip", "best method", "acc@2", "trials"], rows, markdown)


# ---------------------------------------------------------------- command line
def cached_clips(samples: Path, cache: Path) -> list[Clip]:
    """Every single-speaker clip with a known offset, from the cache (built when missing)."""
    clips = []
    for path, stated in evaluate.single_speaker_clips(samples):
        dst = cache / f"{path.stem}.npz"
        try:
            if not dst.is_file():
                print(f"estimator_study: caching {path.name}", file=sys.stderr, flush=True)
                build_cache(path, stated, dst)
            clips.append(load_clip(path, dst))
        except GestsyncError as e:
            print(f"estimator_study: skipped {path.name}: {e}", file=sys.stderr)
    return clips


def main(argv: list[str] | None = None) -> int:
    names = [m.name for m in all_methods()]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", default=str(SAMPLES), help="folder with MANIFEST.tsv")
    parser.add_argument("--cache", default="results/estimator_study", help="per-clip cache")
    parser.add_argument("--methods", default=",".join(names), help=f"some of {','.join(names)}")
    parser.add_argument("--shifts", default="-20:20",
                        help="simulated shifts A:B[:STEP] in frames (write --shifts=-20:20)")
    parser.add_argument("--markdown", action="store_true", help="Markdown tables")
    args = parser.parse_args(argv)
    unknown = set(args.methods.split(",")) - set(names)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {','.join(names)}")
    samples = Path(args.samples)
    if not (samples / "MANIFEST.tsv").is_file():
        print(f"estimator_study: no MANIFEST.tsv in {samples}: nothing to study", file=sys.stderr)
        return 0
    try:
        shifts = evaluate.parse_shifts(args.shifts)
    except GestsyncError as e:
        parser.error(str(e))
    cv2.setNumThreads(1)
    started = time.time()
    clips = cached_clips(samples, Path(args.cache))
    methods = [m for m in all_methods() if m.name in args.methods.split(",")]
    trials, cost, z = run_study(methods, clips, shifts)
    print(f"Simulated shifts {args.shifts} ({len(shifts)} shifts), {len(clips)} clips, candidates"
          f" -50..50, pose stride {sync.POSE_STRIDE}, shipped = sub-window vote"
          f" ({estimator.SUBWINDOW_FRAMES} frames); chance at acc@2 = 5/101."
          f" {time.time() - started:.0f} s (with the cache build if it ran).\n")
    print(report(trials, cost, z, methods, clips, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
