"""People tracks from per-frame body landmarks, and the 16:9 crops around them.

Input: for each frame of one scene, the (P, 33, 4) landmarks of `pose.PoseDetector`
(x, y in pixels, z, visibility). Output: `Track`s with contiguous frames, smoothed boxes
and keypoints, which `crop_box` / `crop_frame` turn into the model's 480 x 270 crops.

Tracking follows the authors' recipe (IoU linking, gaps bridged, short or small tracks
dropped, median-smoothed boxes) with three changes: IoU of head-and-shoulders boxes (stable,
and apart for people side by side) rather than of whole-body boxes (arms and legs flicker),
optimal (Hungarian) assignment, and constant-velocity prediction so that people crossing
keep their ids.
Call it once per scene: tracks never cross a scene cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import PeopleError
from .timebase import FPS


# Tracking, after the authors' preprocessing (see docs/model.md).
IOU_THRESHOLD = 0.5  # a detection continues a track when its link box's IoU with the
# track's predicted link box is above this
MAX_GAP = 25  # frames (1 s) a track may miss and still be bridged by interpolation
MIN_FRAMES = 50  # frames (2 s): shorter tracks are dropped (two 25-frame model windows)
MIN_SIZE = 64  # pixels: tracks whose mean box width and height are both smaller are dropped
SMOOTH_FRAMES = 13  # median filter length over box coordinates (about 0.5 s)

# Linking uses a head-and-shoulders box: the detector is face-anchored, so these landmarks
# are always predicted and stable, while arms and legs flicker in and out of view.
LINK_POINTS = tuple(range(13))  # nose, eyes, ears, mouth, shoulders
LINK_MARGIN = 0.25  # each side of the link box grows by this fraction of its longer side
DUPLICATE_IOU = 0.6  # the pose landmarker sometimes returns one person twice: link boxes
# overlapping more than this are one person (side-by-side people overlap far less)
VELOCITY_SPAN = 5  # detections over which a track's velocity is averaged (noise)
JOIN_IOU = 0.3  # `join_fragments`: a track resumes an earlier one of the same scene when
# their boxes across the gap overlap this much (a person lost for longer than MAX_GAP
# while the camera holds still is back where they were)
MIN_DETECTED_FRAMES = 13  # `keep_tracks`: a track must be detected on this many frames
# (0.5 s) in all, or stray one-frame detections at one place add up to a "person". Not a
# share of its frames: with several people MediaPipe may find each on only 1 frame in 4

# Boxes from keypoints.
KEYPOINT_MIN_VISIBILITY = 0.3  # landmarks less visible than this do not shape the box
HEAD = tuple(range(11))  # nose, eyes, ears, mouth: always used (the detector is face-anchored)
EARS = (7, 8)
HEAD_TOP_EARS = 1.0  # the skull top is about one ear-to-ear distance above the ears
BOX_MARGIN = 0.1  # each side grows by this fraction of the box's longer side (fingers, hair)

# Hands: pose landmarks wrist, pinky, index and thumb knuckles of each hand.
LEFT_HAND = (15, 17, 19, 21)
RIGHT_HAND = (16, 18, 20, 22)
HAND_MIN_VISIBILITY = 0.5  # MediaPipe's likelihood that the landmark is in view

# Crops: the model's input is 480 x 270.
CROP_ASPECT = 16 / 9

# main_person limits.
MULTI_PERSON_FRACTION = 0.25  # several people together on >= 1/4 of the clip's frames
SECONDARY_MIN_SCALE = 0.5  # a person counts if at least half the size of the largest one
# present (smaller people are background: audience, passers-by)
MIN_HANDS_RATIO = 0.05  # hands in view in < 1 frame in 20 is detector noise, not gesture


@dataclass(eq=False)
class Track:
    """One person over consecutive frames of one scene.

    Attributes:
        frames: int64 (T,) frame indices, contiguous (gaps are interpolated).
        boxes: float32 (T, 4) x0, y0, x1, y1 in pixels of the original frame, smoothed.
        keypoints: float32 (T, 33, 4) x, y, z in pixels of the original frame and
            visibility; interpolated frames have visibility 0.
        detected: bool (T,) True where the person was detected (not interpolated).
        frame_size: (width, height) of the original frame in pixels.
    """

    frames: np.ndarray
    boxes: np.ndarray
    keypoints: np.ndarray
    detected: np.ndarray
    frame_size: tuple[int, int]

    @property
    def length(self) -> int:
        """Number of frames T."""
        return len(self.frames)

    @property
    def start(self) -> int:
        return int(self.frames[0])

    @property
    def end(self) -> int:
        """One past the last frame."""
        return int(self.frames[-1]) + 1

    @property
    def size(self) -> float:
        """Larger of the mean box width and mean box height, in pixels."""
        wh = self.boxes[:, 2:] - self.boxes[:, :2]
        return float(wh.mean(axis=0).max())

    @property
    def hands_visible(self) -> np.ndarray:
        """bool (T,): either hand in view (and detected) on each frame."""
        w, h = self.frame_size
        xy, vis = self.keypoints[..., :2], self.keypoints[..., 3]
        inside = (xy[..., 0] >= 0) & (xy[..., 0] < w) & (xy[..., 1] >= 0) & (xy[..., 1] < h)
        seen = (vis >= HAND_MIN_VISIBILITY) & inside
        return (seen[:, LEFT_HAND].any(1) | seen[:, RIGHT_HAND].any(1)) & self.detected

    @property
    def visible_hands_ratio(self) -> float:
        """Fraction of the frames where the person was detected that show a hand."""
        return float(self.hands_visible.sum() / max(int(self.detected.sum()), 1))

    def crop_boxes(self) -> np.ndarray:
        """int64 (T, 4) 16:9 crop boxes (see `crop_box`), one per frame."""
        return crop_box(self.boxes, self.frame_size)


# ------------------------------------------------------------------------------ boxes

def keypoint_box(keypoints: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """Box around one person's body, head and hands, clipped to the frame.

    Args:
        keypoints: (33, 4) x, y, z in pixels, visibility.
        frame_size: (width, height) in pixels.
    Returns:
        float32 (4,) x0, y0, x1, y1 in pixels.
    """
    use = keypoints[:, 3] >= KEYPOINT_MIN_VISIBILITY
    use[list(HEAD)] = True
    xy = keypoints[use, :2]
    ears = keypoints[list(EARS), :2]
    head_top = ears[:, 1].mean() - HEAD_TOP_EARS * np.linalg.norm(ears[0] - ears[1])
    x0, y0 = xy.min(0)
    x1, y1 = xy.max(0)
    y0 = min(y0, head_top)
    pad = BOX_MARGIN * max(x1 - x0, y1 - y0)
    w, h = frame_size
    box = np.array([x0 - pad, y0 - pad, x1 + pad, y1 + pad], np.float32)
    return np.clip(box, 0, [w, h, w, h]).astype(np.float32)


def link_box(keypoints: np.ndarray) -> np.ndarray:
    """Head-and-shoulders box of one person's (33, 4) keypoints -> float32 (4,), pixels."""
    xy = keypoints[list(LINK_POINTS), :2]
    lo, hi = xy.min(0), xy.max(0)
    pad = LINK_MARGIN * (hi - lo).max()
    return np.concatenate([lo - pad, hi + pad]).astype(np.float32)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes a (N, 4) and b (M, 4), x0 y0 x1 y1 -> float (N, M)."""
    a, b = np.asarray(a, np.float64)[:, None], np.asarray(b, np.float64)[None]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


# --------------------------------------------------------------------------- tracking

@dataclass
class _Open:
    """A track being built: its detections so far."""

    frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    links: list[np.ndarray] = field(default_factory=list)
    keypoints: list[np.ndarray] = field(default_factory=list)

    def predict(self, frame: int) -> np.ndarray:
        """Link box expected at `frame`, moving at the track's recent mean velocity."""
        first = max(0, len(self.frames) - 1 - VELOCITY_SPAN)
        span = self.frames[-1] - self.frames[first]
        if span == 0:
            return self.links[-1]
        velocity = (self.links[-1] - self.links[first]) / span
        return self.links[-1] + velocity * (frame - self.frames[-1])

    def add(self, frame: int, keypoints: np.ndarray, frame_size: tuple[int, int]) -> None:
        self.frames.append(frame)
        self.boxes.append(keypoint_box(keypoints, frame_size))
        self.links.append(link_box(keypoints))
        self.keypoints.append(keypoints)


class Tracker:
    """Incremental IoU tracker: feed frames in order with `update`, then `finish`.

    Memory is the landmarks of the tracked people (33 x 4 floats per person-frame).
    Arguments as in `track_people`.
    """

    def __init__(self, frame_size: tuple[int, int], min_frames: int = MIN_FRAMES,
                 min_size: float = MIN_SIZE, max_gap: int = MAX_GAP,
                 iou_threshold: float = IOU_THRESHOLD, smooth_frames: int = SMOOTH_FRAMES):
        if max_gap < 0 or min_frames < 1 or not 0 <= iou_threshold < 1:
            raise ValueError("need max_gap >= 0, min_frames >= 1, 0 <= iou_threshold < 1")
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.min_frames, self.min_size = min_frames, min_size
        self.max_gap, self.iou_threshold, self.smooth_frames = max_gap, iou_threshold, smooth_frames
        self._open: list[_Open] = []
        self._done: list[Track] = []
        self._last_frame = -1

    def update(self, frame: int, poses: np.ndarray) -> None:
        """Add the (P, 33, 4) landmarks of frame `frame` (frames must increase)."""
        if frame <= self._last_frame:
            raise ValueError(f"frames must increase: {frame} after {self._last_frame}")
        self._last_frame = frame
        self._close_stale(frame)
        poses, links = _drop_duplicates(poses)
        unmatched = set(range(len(poses)))
        if self._open and len(poses):
            predicted = np.stack([t.predict(frame) for t in self._open])
            overlap = iou(predicted, links)
            from scipy.optimize import linear_sum_assignment  # lazy: keeps `gestsync --help` fast

            for ti, di in zip(*linear_sum_assignment(-overlap)):
                if overlap[ti, di] > self.iou_threshold:
                    self._open[ti].add(frame, poses[di], self.frame_size)
                    unmatched.discard(di)
        for di in sorted(unmatched):
            self._open.append(_Open())
            self._open[-1].add(frame, poses[di], self.frame_size)

    def finish(self, end: int | None = None) -> list[Track]:
        """Close all tracks; return those kept, ordered by first frame.

        end: one past the scene's last frame. Tracks seen on the last analysed frame are
        extended to it, holding their last pose (not detected): for pose run on every
        k-th frame, whose last analysed frame may come before the scene's end.
        """
        self._close_stale(None, end)
        return sorted(self._done, key=lambda t: (t.start, -t.size))

    def _close_stale(self, frame: int | None, end: int | None = None) -> None:
        """Finalise tracks unseen for more than max_gap frames (all when frame is None)."""
        keep = []
        for t in self._open:
            if frame is not None and frame - t.frames[-1] <= self.max_gap:
                keep.append(t)
                continue
            last = t.frames[-1] + 1
            if end is not None and t.frames[-1] == self._last_frame:
                last = max(last, end)
            track = _finalise(t, self.frame_size, self.smooth_frames, last)
            if track.length >= self.min_frames and track.size >= self.min_size:
                self._done.append(track)
        self._open = keep


def _drop_duplicates(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep one of each group of overlapping detections (the most visible one).

    Returns the kept (P', 33, 4) poses and their (P', 4) link boxes.
    """
    links = np.stack([link_box(k) for k in poses]) if len(poses) else np.zeros((0, 4))
    order = np.argsort(-poses[:, list(LINK_POINTS), 3].mean(1)) if len(poses) else []
    keep: list[int] = []
    for i in order:
        if not keep or iou(links[[i]], links[keep]).max() <= DUPLICATE_IOU:
            keep.append(int(i))
    keep.sort()
    return poses[keep], links[keep]


def _finalise(t: _Open, frame_size: tuple[int, int], smooth_frames: int, end: int) -> Track:
    """Interpolate the gaps of an open track up to frame `end` (excluded), smooth its boxes."""
    seen = np.asarray(t.frames)
    frames = np.arange(seen[0], end)  # np.interp holds the last value after seen[-1]
    detected = np.isin(frames, seen)
    boxes = _interpolate(frames, seen, np.stack(t.boxes))
    keypoints = _interpolate(frames, seen, np.stack(t.keypoints))
    keypoints[~detected, :, 3] = 0  # interpolated landmarks are not observations
    if smooth_frames > 1:
        from scipy.ndimage import median_filter  # lazy: keeps `gestsync --help` fast

        boxes = median_filter(boxes, size=(smooth_frames, 1), mode="nearest")
    return Track(frames=frames.astype(np.int64), boxes=boxes.astype(np.float32),
                 keypoints=keypoints.astype(np.float32), detected=detected,
                 frame_size=frame_size)


def _interpolate(frames: np.ndarray, seen: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Linear interpolation over time of values (len(seen), ...) -> (len(frames), ...)."""
    flat = values.reshape(len(seen), -1)
    out = np.empty((len(frames), flat.shape[1]), np.float32)
    for j in range(flat.shape[1]):
        out[:, j] = np.interp(frames, seen, flat[:, j])
    return out.reshape((len(frames),) + values.shape[1:])


def track_people(poses_per_frame: list[np.ndarray], frame_size: tuple[int, int],
                 min_frames: int = MIN_FRAMES, min_size: float = MIN_SIZE,
                 max_gap: int = MAX_GAP, iou_threshold: float = IOU_THRESHOLD,
                 first_frame: int = 0, stride: int = 1,
                 num_frames: int | None = None) -> list[Track]:
    """Link per-frame body landmarks of one scene into people tracks.

    Args:
        poses_per_frame: one float (P, 33, 4) array per frame (x, y, z in pixels,
            visibility), as `pose.PoseDetector.detect` returns; P may be 0.
        frame_size: (width, height) of the frames in pixels.
        min_frames: tracks shorter than this (after bridging gaps) are dropped.
        min_size: tracks whose mean box is smaller than this (pixels, both sides) are dropped.
        max_gap: most consecutive missed frames bridged by interpolation.
        iou_threshold: a detection continues a track when the IoU of its head-and-shoulders
            box with the track's predicted one (constant velocity) is above this.
        first_frame: frame index of poses_per_frame[0].
        stride: poses_per_frame[i] is frame first_frame + i * stride (pose run on every
            stride-th frame only; the frames between are interpolated like gaps, so
            stride must not exceed max_gap + 1).
        num_frames: frames in the scene, if known: tracks present on the last analysed
            frame then run to the scene's end (see `Tracker.finish`).
    Returns:
        Tracks ordered by first frame.
    """
    if not 1 <= stride <= max_gap + 1:
        raise ValueError(f"stride must be in 1 .. max_gap + 1 = {max_gap + 1}, got {stride}")
    tracker = Tracker(frame_size, min_frames, min_size, max_gap, iou_threshold)
    for i, poses in enumerate(poses_per_frame):
        frame = first_frame + i * stride
        tracker.update(frame, np.asarray(poses, np.float32).reshape(-1, 33, 4))
    return tracker.finish(None if num_frames is None else first_frame + num_frames)


def join_fragments(tracks: list[Track], min_iou: float = JOIN_IOU) -> list[Track]:
    """Join tracks of ONE scene that follow each other in time at the same place.

    A track whose first box overlaps (IoU >= min_iou) the last box of a track that ended
    before it started continues that track, however long the gap; the gap is interpolated
    like a short miss (not detected, landmark visibility 0). Call it before dropping short
    tracks, so fragments shorter than the minimum can add up. Returns tracks by first frame.
    """
    joined: list[Track] = []
    for track in sorted(tracks, key=lambda t: t.start):
        earlier = [t for t in joined if t.end <= track.start]
        if earlier:
            overlap = iou(np.stack([t.boxes[-1] for t in earlier]), track.boxes[:1])[:, 0]
            best = int(np.argmax(overlap))
            if overlap[best] >= min_iou:
                joined[joined.index(earlier[best])] = _concatenate(earlier[best], track)
                continue
        joined.append(track)
    return sorted(joined, key=lambda t: (t.start, -t.size))


def _concatenate(a: Track, b: Track) -> Track:
    """One track from `a` and a later `b`, the frames between interpolated."""
    seen = np.concatenate([a.frames, b.frames])
    frames = np.arange(a.start, b.end)
    inside = np.isin(frames, seen)
    keypoints = _interpolate(frames, seen, np.concatenate([a.keypoints, b.keypoints]))
    keypoints[~inside, :, 3] = 0
    detected = np.zeros(len(frames), bool)
    detected[inside] = np.concatenate([a.detected, b.detected])
    return Track(frames=frames.astype(np.int64),
                 boxes=_interpolate(frames, seen, np.concatenate([a.boxes, b.boxes])),
                 keypoints=keypoints, detected=detected, frame_size=a.frame_size)


def keep_tracks(tracks: list[Track], min_frames: int = MIN_FRAMES,
                min_size: float = MIN_SIZE) -> list[Track]:
    """The tracks at least min_frames long, min_size pixels big (see `Track.size`) and
    detected on at least MIN_DETECTED_FRAMES frames."""
    return [t for t in tracks if t.length >= min_frames and t.size >= min_size
            and t.detected.sum() >= MIN_DETECTED_FRAMES]


# ------------------------------------------------------------------------------ crops

def crop_box(box: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """Smallest 16:9 box around `box`, moved inside the frame when it fits.

    The crop is centred on the box, then shifted as little as needed to show as much of
    the frame as possible: inside the frame where it fits, otherwise covering the whole
    frame along that axis (`crop_frame` pads the rest with black).

    Args:
        box: (4,) or (T, 4) x0, y0, x1, y1 in pixels.
        frame_size: (width, height) in pixels.
    Returns:
        int64 array of the same shape: x0, y0, x1, y1 with (x1 - x0) / (y1 - y0) ~ 16/9.
    """
    box = np.asarray(box, np.float64)
    centre = (box[..., :2] + box[..., 2:]) / 2
    height = np.maximum(box[..., 3] - box[..., 1], (box[..., 2] - box[..., 0]) / CROP_ASPECT)
    height = np.maximum(np.round(height), 1)
    size = np.stack([np.round(height * CROP_ASPECT), height], -1)
    start = np.round(centre - size / 2)
    frame = np.asarray(frame_size, np.float64)
    start = np.clip(start, np.minimum(frame - size, 0), np.maximum(frame - size, 0))
    return np.concatenate([start, start + size], -1).astype(np.int64)


def crop_frame(rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Cut `box` (x0, y0, x1, y1 integer pixels) out of an H x W x C frame.

    Parts of the box outside the frame are black. Returns (y1 - y0, x1 - x0, C), same
    dtype, at the frame's own resolution (resize after masking, see `pose.mask_face`).
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty crop box {box}")
    h, w = rgb.shape[:2]
    out = np.zeros((y1 - y0, x1 - x0) + rgb.shape[2:], rgb.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    return out


# ------------------------------------------------------------------------ main person

def people_per_frame(tracks: list[Track], num_frames: int) -> np.ndarray:
    """int (num_frames,): people present on each frame, not counting background people.

    A track counts on a frame when it is at least SECONDARY_MIN_SCALE times the size of
    the largest track present there (smaller ones are audience, passers-by).
    """
    largest = np.zeros(num_frames)
    for t in tracks:
        span = slice(t.start, min(t.end, num_frames))
        largest[span] = np.maximum(largest[span], t.size)
    count = np.zeros(num_frames, np.int64)
    for t in tracks:
        span = slice(t.start, min(t.end, num_frames))
        count[span] += t.size >= SECONDARY_MIN_SCALE * largest[span]
    return count


def distinct_people(poses: np.ndarray, same_iou: float = JOIN_IOU) -> int:
    """People of comparable size among one frame's detections, which may hold the same
    person more than once (e.g. found in overlapping parts of the frame): link boxes that
    overlap by `same_iou` or more count once; people smaller than SECONDARY_MIN_SCALE of
    the largest do not count."""
    boxes = np.array([link_box(p) for p in poses]).reshape(-1, 4)
    kept: list[np.ndarray] = []
    for box in boxes:
        if not kept or iou(np.stack(kept), box[None])[:, 0].max() < same_iou:
            kept.append(box)
    sizes = np.array([max(b[2] - b[0], b[3] - b[1]) for b in kept])
    return int((sizes >= SECONDARY_MIN_SCALE * sizes.max()).sum()) if len(kept) else 0


def main_person(tracks: list[Track], num_frames: int, name: str = "the video",
                need_hands: bool = True) -> Track:
    """The one person of a single-speaker clip: the track spanning the most frames.

    Args:
        tracks: from `track_people` (all scenes of the clip).
        num_frames: frames in the clip (for the fractions below).
        name: how to call the clip in error messages (its file name).
    Raises:
        PeopleError: nobody found; two or more people of comparable size visible
            together on MULTI_PERSON_FRACTION of the clip's frames or more; or the main
            person's hands in view on fewer than MIN_HANDS_RATIO of its frames (unless
            `need_hands` is False: the face cue reads a talking head without hands).
    """
    if not tracks:
        raise PeopleError(
            f"no person found in {name}: gestsync needs a visible person, face towards "
            "the camera with head, shoulders and hands in view, for at least "
            f"{MIN_FRAMES / FPS:g} s")
    count = people_per_frame(tracks, num_frames)
    if (count >= 2).sum() >= MULTI_PERSON_FRACTION * num_frames:
        raise PeopleError(
            f"{count.max()} people visible in {name}: use `gestsync speaker` to find "
            "who is speaking")
    main = max(tracks, key=lambda t: (t.length, t.size))
    if need_hands and main.visible_hands_ratio < MIN_HANDS_RATIO:
        raise PeopleError(
            f"hands never visible in {name} (in view on {main.visible_hands_ratio:.0%} of "
            "the person's frames): gestsync reads gestures, so the hands must be in the "
            "picture")
    return main
