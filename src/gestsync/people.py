"""People tracks from a person detector's boxes, with body landmarks attached where seen.

Input, per frame of one scene: the person boxes of `person_detector.PersonDetector` (on
every k-th frame: it needs no face, so backs and profiles are found), and the (P, 33, 4)
landmarks of `pose.PoseDetector` (x, y in pixels, z, visibility), which need a face.
Output: `Track`s with contiguous frames, the detector's boxes (interpolated between
detections, not smoothed: `crops` smooths them as the authors do), the landmarks attached
to each box by overlap (visibility 0 where none were), and the motion inside the box.

Tracking follows the authors' rules (docs/model.md): a box continues a track when its IoU
with the track's box is above 0.5, up to 25 missed frames are bridged by interpolation,
tracks shorter than 50 frames or smaller than 64 px are dropped. Two additions: optimal
(Hungarian) assignment, so that two people never swap or share a track, and
constant-velocity prediction, so that people crossing keep their ids.
Call it once per scene: tracks never cross a scene cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import PeopleError
from .timebase import FPS


# Tracking, after the authors' preprocessing (see docs/model.md).
IOU_THRESHOLD = 0.5  # a box continues a track when its IoU with the track's predicted box
# is above this (the authors' rule)
MAX_GAP = 25  # frames (1 s) a track may miss and still be bridged by interpolation
MIN_FRAMES = 50  # frames (2 s): shorter tracks are dropped (two 25-frame model windows)
MIN_SIZE = 64  # pixels: tracks whose mean box width and height are both smaller are dropped
VELOCITY_SPAN = 5  # detections over which a track's velocity is averaged (noise)
JOIN_IOU = 0.5  # `join_fragments`: a track resumes an earlier one of the same scene when
# their boxes across the gap overlap this much (a person lost for longer than MAX_GAP
# while the camera holds still is back where they were)...
JOIN_GAP = 2 * FPS  # ... after at most this many frames (longer: somebody else may have
# come to that place, e.g. after a cut that the caller did not split at)
MIN_DETECTED_SHARE = 0.3  # `keep_tracks`: a track must be found on this share of the
# detector's looks at its frames, or stray detections at one place add up to a "person"
PART_OF = 0.9  # `distinct_boxes`: a box lying this much (share of its area) inside a
# better-scored one is a part of that person (the detector sometimes boxes the upper body
# again), not another person
POSE_IOU = 0.3  # `attach_poses`: landmarks belong to a box when the box around them
# overlaps it this much (the landmark box is smaller than the detector's: legs and the
# top of the head are often unseen)
# Among the landmark sets on one box, `attach_poses` prefers the one that continues the
# track's last landmarks: the landmarker sometimes returns a second, misplaced copy of a
# person (its arms elsewhere), which may fit the box better on some frames; taking it
# then would read as the arms jumping back and forth.
POSE_TIE_BREAK = 0.01  # weight of the overlap, which only decides between equal jumps

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

# main_person limits.
MULTI_PERSON_FRACTION = 0.25  # several people together on >= 1/4 of the clip's frames
SECONDARY_MIN_SCALE = 0.5  # a person counts if at least half the size of the largest one
# present (smaller people are background: audience, passers-by)
MIN_HANDS_RATIO = 0.05  # hands in view in < 1 frame in 20 is detector noise, not gesture
MIN_LANDMARK_SHARE = 0.5  # a person with landmarks on fewer of their frames (a back, a
# profile: the landmarker needs a face) is read from the motion in their box instead


@dataclass(eq=False)
class Track:
    """One person over consecutive frames of one scene.

    Attributes:
        frames: int64 (T,) frame indices, contiguous (gaps are interpolated).
        boxes: float32 (T, 4) x0, y0, x1, y1: the detector's person box in pixels of the
            original frame, interpolated between detections.
        keypoints: float32 (T, 33, 4) x, y, z in pixels of the original frame and
            visibility, interpolated between the frames where landmarks were attached
            (`posed`); all zero when none were.
        detected: bool (T,) True where the detector found the person.
        frame_size: (width, height) of the original frame in pixels.
        posed: bool (T,) True where body landmarks were attached.
        motion: float32 (T,) motion inside the box (`box_motion`), or None.
        cuts: int64 frames inside the track where a new shot begins (the camera cut but
            the box stayed on someone at the same place); motion is not measured across
            them (`scan.person_pieces`).
    """

    frames: np.ndarray
    boxes: np.ndarray
    keypoints: np.ndarray
    detected: np.ndarray
    frame_size: tuple[int, int]
    posed: np.ndarray | None = None
    motion: np.ndarray | None = None
    cuts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        if self.posed is None:
            self.posed = self.keypoints[..., 3].max(axis=-1) > 0

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
        """bool (T,): either hand in view (landmarks attached) on each frame."""
        w, h = self.frame_size
        xy, vis = self.keypoints[..., :2], self.keypoints[..., 3]
        inside = (xy[..., 0] >= 0) & (xy[..., 0] < w) & (xy[..., 1] >= 0) & (xy[..., 1] < h)
        seen = (vis >= HAND_MIN_VISIBILITY) & inside
        return (seen[:, LEFT_HAND].any(1) | seen[:, RIGHT_HAND].any(1)) & self.posed

    @property
    def landmark_share(self) -> float:
        """Share of the frames whose landmarks are known: found, or in a run of at most
        MAX_GAP frames between finds (the landmarker's stride, a short miss)."""
        if not self.posed.any():
            return 0.0
        return float(1.0 - _long_gaps(self.posed, MAX_GAP).mean())

    @property
    def visible_hands_ratio(self) -> float:
        """Fraction of the frames with landmarks that show a hand."""
        return float(self.hands_visible.sum() / max(int(self.posed.sum()), 1))

    def sliced(self, rows: slice) -> Track:
        """The same person over rows `rows` of its frames."""
        frames = self.frames[rows]
        inside = (self.cuts > frames[0]) & (self.cuts <= frames[-1]) if len(frames) else []
        return Track(frames, self.boxes[rows], self.keypoints[rows],
                     self.detected[rows], self.frame_size, self.posed[rows],
                     None if self.motion is None else self.motion[rows], self.cuts[inside])


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


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes a (N, 4) and b (M, 4), x0 y0 x1 y1 -> float (N, M)."""
    a, b = np.asarray(a, np.float64)[:, None], np.asarray(b, np.float64)[None]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def _matches(overlap: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(row, column) pairs of the optimal one-to-one assignment with overlap > threshold."""
    if not overlap.size:
        return []
    from scipy.optimize import linear_sum_assignment  # lazy: keeps `gestsync --help` fast

    return [(int(r), int(c)) for r, c in zip(*linear_sum_assignment(-overlap))
            if overlap[r, c] > threshold]


def comparable_people(boxes: np.ndarray) -> int:
    """People among one frame's detector boxes (N, 4+) not smaller than
    SECONDARY_MIN_SCALE of the largest (longer side): smaller ones are background."""
    if not len(boxes):
        return 0
    sides = np.max(boxes[:, 2:4] - boxes[:, 0:2], axis=1)
    return int((sides >= SECONDARY_MIN_SCALE * sides.max()).sum())


# --------------------------------------------------------------------------- tracking

@dataclass
class _Open:
    """A track being built: its detections so far."""

    frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)

    def predict(self, frame: int) -> np.ndarray:
        """Box expected at `frame`, moving at the track's recent mean velocity."""
        first = max(0, len(self.frames) - 1 - VELOCITY_SPAN)
        span = self.frames[-1] - self.frames[first]
        if span == 0:
            return self.boxes[-1]
        velocity = (self.boxes[-1] - self.boxes[first]) / span
        return self.boxes[-1] + velocity * (frame - self.frames[-1])

    def add(self, frame: int, box: np.ndarray) -> None:
        self.frames.append(frame)
        self.boxes.append(np.asarray(box[:4], np.float32))


class Tracker:
    """Incremental IoU tracker over detector boxes: feed the frames the detector looked at,
    in order, with `update`, then `finish`. Memory: 4 floats per person-look.
    Arguments as in `track_people`.
    """

    def __init__(self, frame_size: tuple[int, int], min_frames: int = MIN_FRAMES,
                 min_size: float = MIN_SIZE, max_gap: int = MAX_GAP,
                 iou_threshold: float = IOU_THRESHOLD, begin: int | None = None):
        if max_gap < 0 or min_frames < 1 or not 0 <= iou_threshold < 1:
            raise ValueError("need max_gap >= 0, min_frames >= 1, 0 <= iou_threshold < 1")
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.min_frames, self.min_size = min_frames, min_size
        self.max_gap, self.iou_threshold = max_gap, iou_threshold
        self._open: list[_Open] = []
        self._done: list[Track] = []
        self._last_frame = -1
        self._begin, self._first_look = begin, None

    def update(self, frame: int, boxes: np.ndarray) -> None:
        """Add the (N, 4+) person boxes (x0, y0, x1, y1 pixels, ...) found on frame `frame`
        (frames must increase; `distinct_boxes` first). A box continues the track it
        overlaps most (IoU with the track's predicted or its last box, the larger)."""
        if frame <= self._last_frame:
            raise ValueError(f"frames must increase: {frame} after {self._last_frame}")
        self._last_frame = frame
        self._first_look = frame if self._first_look is None else self._first_look
        self._close_stale(frame)
        boxes = distinct_boxes(_as_boxes(boxes))
        unmatched = set(range(len(boxes)))
        if self._open and len(boxes):
            predicted = np.stack([t.predict(frame) for t in self._open])
            last = np.stack([t.boxes[-1] for t in self._open])
            overlap = np.maximum(iou(predicted, boxes[:, :4]), iou(last, boxes[:, :4]))
            for ti, di in _matches(overlap, self.iou_threshold):
                self._open[ti].add(frame, boxes[di])
                unmatched.discard(di)
        for di in sorted(unmatched):
            self._open.append(_Open())
            self._open[-1].add(frame, boxes[di])

    def finish(self, end: int | None = None) -> list[Track]:
        """Close all tracks; return those kept, ordered by first frame.

        end: one past the scene's last frame. Tracks seen on the last look are extended to
        it, holding their last box (not detected): the detector runs on every k-th frame,
        whose last look may come before the scene's end. Likewise tracks seen on the first
        look start at the scene's first frame (`begin`), if given.
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
            first = t.frames[0]
            if self._begin is not None and first == self._first_look:
                first = min(first, self._begin)
            track = _finalise(t, self.frame_size, first, last)
            if track.length >= self.min_frames and track.size >= self.min_size:
                self._done.append(track)
        self._open = keep


def distinct_boxes(boxes: np.ndarray) -> np.ndarray:
    """One look's (N, 4+) boxes without those lying PART_OF inside an earlier (better
    scored: the detector sorts them) box."""
    keep: list[int] = []
    for i, box in enumerate(boxes):
        if not keep or _inside_share(box[:4], boxes[keep, :4]).max() < PART_OF:
            keep.append(i)
    return boxes[keep]


def _inside_share(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(M,) share of `box`'s area inside each of `others` (M, 4)."""
    iw = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    return iw * ih / max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-9)


def _as_boxes(boxes) -> np.ndarray:
    """(N, 4+) float32 boxes; an empty input of any shape gives (0, 4)."""
    boxes = np.asarray(boxes, np.float32)
    return boxes.reshape(len(boxes), -1) if boxes.size else np.zeros((0, 4), np.float32)


def _finalise(t: _Open, frame_size: tuple[int, int], start: int, end: int) -> Track:
    """Interpolate the gaps of an open track over frames [start, end); no landmarks yet."""
    seen = np.asarray(t.frames)
    frames = np.arange(start, end)  # np.interp holds the end values outside seen
    boxes = _interpolate(frames, seen, np.stack(t.boxes))
    keypoints = np.zeros((len(frames), 33, 4), np.float32)
    return Track(frames=frames.astype(np.int64), boxes=boxes, keypoints=keypoints,
                 detected=np.isin(frames, seen), frame_size=frame_size,
                 posed=np.zeros(len(frames), bool))


def _interpolate(frames: np.ndarray, seen: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Linear interpolation over time of values (len(seen), ...) -> (len(frames), ...)."""
    flat = values.reshape(len(seen), -1)
    out = np.empty((len(frames), flat.shape[1]), np.float32)
    for j in range(flat.shape[1]):
        out[:, j] = np.interp(frames, seen, flat[:, j])
    return out.reshape((len(frames),) + values.shape[1:])


def track_people(boxes_per_frame: list[np.ndarray | None], frame_size: tuple[int, int],
                 min_frames: int = MIN_FRAMES, min_size: float = MIN_SIZE,
                 max_gap: int = MAX_GAP, iou_threshold: float = IOU_THRESHOLD,
                 first_frame: int = 0, num_frames: int | None = None) -> list[Track]:
    """Link per-frame person boxes of one scene into tracks.

    Args:
        boxes_per_frame: per frame, the detector's (N, 4+) boxes (x0, y0, x1, y1 pixels,
            then e.g. the score), or None on frames the detector did not look at (they are
            interpolated like misses; looks must be at most max_gap + 1 frames apart).
        frame_size: (width, height) of the frames in pixels.
        min_frames: tracks shorter than this (after bridging gaps) are dropped.
        min_size: tracks whose mean box is smaller than this (pixels, both sides) are dropped.
        max_gap: most consecutive missed frames bridged by interpolation.
        iou_threshold: a box continues a track when its IoU with the track's predicted one
            (constant velocity) is above this.
        first_frame: frame index of boxes_per_frame[0]; tracks present on the first look
            start there.
        num_frames: frames in the scene, if known: tracks present on the last look then
            run to the scene's end (see `Tracker.finish`).
    Returns:
        Tracks ordered by first frame, without landmarks (`attach_poses`).
    """
    tracker = Tracker(frame_size, min_frames, min_size, max_gap, iou_threshold, first_frame)
    for i, boxes in enumerate(boxes_per_frame):
        if boxes is not None:
            tracker.update(first_frame + i, _as_boxes(boxes))
    return tracker.finish(None if num_frames is None else first_frame + num_frames)


def attach_poses(tracks: list[Track], poses_per_frame: list[np.ndarray], first_frame: int = 0
                 ) -> list[Track]:
    """Give each track the body landmarks found on its box (one person's each, by the
    optimal assignment of landmark boxes to person boxes with IoU above POSE_IOU; among
    those, the landmarks closest to the track's previous ones, `_jump`).

    poses_per_frame[i]: (P, 33, 4) landmarks of frame first_frame + i (pixels), P may be 0.
    Landmarks (visibility included) are interpolated across the frames without them
    (skipped by the landmarker's stride, or missed; held before the first and after the
    last), as the pose-only tracker did: a short loss of a person then reads as smooth
    motion, not as a stop. `Track.posed` marks the frames that had them. Returns the
    tracks, changed in place.
    """
    found = [dict() for _ in tracks]  # per track: row -> (33, 4) landmarks
    last: list[tuple[int, np.ndarray] | None] = [None] * len(tracks)  # (frame, landmarks)
    for i, poses in enumerate(poses_per_frame):
        frame = first_frame + i
        live = [k for k, t in enumerate(tracks) if t.start <= frame < t.end]
        if not len(poses) or not live:
            continue
        pose_boxes = np.stack([keypoint_box(p, tracks[live[0]].frame_size) for p in poses])
        boxes = np.stack([tracks[k].boxes[frame - tracks[k].start] for k in live])
        overlap = iou(boxes, pose_boxes)
        jumps = np.array([[_jump(last[k], frame, pose, box) for pose in poses]
                          for k, box in zip(live, boxes)])
        # the box decides who may take a landmark set (IoU above POSE_IOU), continuity
        # decides among those (smallest jump), the overlap only breaks ties
        score = 1 - jumps + POSE_TIE_BREAK * overlap
        for r, c in _matches(np.where(overlap > POSE_IOU, score, 0.0), 0.0):
            found[live[r]][frame - tracks[live[r]].start] = poses[c]
            last[live[r]] = (frame, poses[c])
    for track, rows in zip(tracks, found):
        _set_keypoints(track, rows)
    return tracks


def _jump(last: tuple[int, np.ndarray] | None, frame: int, pose: np.ndarray,
          box: np.ndarray) -> float:
    """How far landmarks `pose` lie from a track's last ones (`attach_poses`): the mean
    distance of the joints seen in both, over the box's longer side, at most 1; 0 when
    the last ones are more than MAX_GAP frames old or share no seen joint."""
    if last is None or frame - last[0] > MAX_GAP + 1:
        return 0.0
    seen = (pose[:, 3] >= KEYPOINT_MIN_VISIBILITY) & (last[1][:, 3] >= KEYPOINT_MIN_VISIBILITY)
    if not seen.any():
        return 0.0
    side = max(float(box[2] - box[0]), float(box[3] - box[1]), 1.0)
    distance = np.linalg.norm(pose[seen, :2] - last[1][seen, :2], axis=1)
    return min(float(distance.mean()) / side, 1.0)


def _set_keypoints(track: Track, rows: dict[int, np.ndarray]) -> None:
    """Fill the track's landmarks from {row: (33, 4)}, interpolated between rows."""
    track.posed = np.zeros(track.length, bool)
    if not rows:
        track.keypoints = np.zeros((track.length, 33, 4), np.float32)
        return
    seen = np.array(sorted(rows))
    track.posed[seen] = True
    track.keypoints = _interpolate(np.arange(track.length), seen, np.stack([rows[r] for r in seen]))


def _long_gaps(found: np.ndarray, gap: int) -> np.ndarray:
    """bool: the places in runs of more than `gap` False values of bool array `found`."""
    out = np.zeros(len(found), bool)
    edges = np.flatnonzero(np.diff(np.r_[0, (~found).astype(np.int8), 0]))
    for start, stop in zip(edges[::2], edges[1::2]):
        out[start:stop] = stop - start > gap
    return out


def join_fragments(tracks: list[Track], min_iou: float = JOIN_IOU, max_gap: int = JOIN_GAP,
                   handover: int = MAX_GAP) -> list[Track]:
    """Join tracks of ONE scene that follow each other in time at the same place.

    Tracks found on a single look are dropped first (a stray box). A track continues an
    earlier one when its first box overlaps (IoU >= min_iou) the earlier one's box where
    they meet: after a gap of up to `max_gap` frames (a person lost while the camera holds
    still is back where they were), or when the earlier one ends at most `handover` frames
    after the later one begins (the detector found one person twice for a moment, e.g.
    with an arm stretched out, and the track moved to the other box). Gaps are
    interpolated like a short miss (not detected). Call it before dropping short tracks and
    before `attach_poses`. Returns tracks by first frame.
    """
    joined: list[Track] = []
    for track in sorted((t for t in tracks if t.detected.sum() > 1), key=lambda t: t.start):
        earlier = [t for t in joined if t.start < track.start < t.end + max_gap
                   and t.end <= track.start + handover and t.end < track.end]
        if earlier:
            meet = [t.boxes[min(track.start, t.end - 1) - t.start] for t in earlier]
            overlap = iou(np.stack(meet), track.boxes[:1])[:, 0]
            best = int(np.argmax(overlap))
            if overlap[best] >= min_iou:
                joined[joined.index(earlier[best])] = _concatenate(earlier[best], track)
                continue
        joined.append(track)
    return sorted(joined, key=lambda t: (t.start, -t.size))


def _concatenate(a: Track, b: Track) -> Track:
    """One track from `a` and a later `b` (`a` cut where `b` begins), the frames between
    interpolated (no landmarks)."""
    a = a.sliced(slice(0, max(1, b.start - a.start)))
    seen = np.concatenate([a.frames, b.frames])
    frames = np.arange(a.start, b.end)
    inside = np.isin(frames, seen)
    detected = np.zeros(len(frames), bool)
    detected[inside] = np.concatenate([a.detected, b.detected])
    return Track(frames=frames.astype(np.int64),
                 boxes=_interpolate(frames, seen, np.concatenate([a.boxes, b.boxes])),
                 keypoints=np.zeros((len(frames), 33, 4), np.float32), detected=detected,
                 frame_size=a.frame_size, posed=np.zeros(len(frames), bool))


def keep_tracks(tracks: list[Track], min_frames: int = MIN_FRAMES,
                min_size: float = MIN_SIZE, looked: np.ndarray | None = None,
                first_frame: int = 0) -> list[Track]:
    """The tracks at least min_frames long, min_size pixels big (see `Track.size`) and
    found on at least MIN_DETECTED_SHARE of the detector's looks over their frames
    (`looked[k]`: the detector looked at frame first_frame + k; None: at every frame)."""
    def looks(t: Track) -> int:
        return t.length if looked is None else int(looked[t.frames - first_frame].sum())

    return [t for t in tracks if t.length >= min_frames and t.size >= min_size
            and t.detected.sum() >= MIN_DETECTED_SHARE * looks(t)]


# ------------------------------------------------------------------------ box motion

def box_motion(track: Track, motion: np.ndarray, scale: tuple[float, float],
               background: np.ndarray | None = None) -> np.ndarray:
    """(T,) motion inside the track's box on each of its frames.

    motion: (frames, rows, cols) `scan` motion map of the clip (mean absolute change of
    grey level per cell since the previous frame); scale: source pixels per cell (x, y).
    Each frame's value is the mean change over the cells the box covers, less the median
    change of the whole frame (a camera move or a light change moves everything);
    `background`, the (frames,) medians if already computed for other tracks.
    """
    if background is None:
        background = np.median(motion.reshape(len(motion), -1), axis=1)
    rows, cols = motion.shape[1:]
    out = np.zeros(track.length, np.float32)
    for i, (frame, box) in enumerate(zip(track.frames, track.boxes)):
        if frame >= len(motion):
            break
        x0, x1 = np.clip(np.round(box[[0, 2]] / scale[0]).astype(int), 0, cols)
        y0, y1 = np.clip(np.round(box[[1, 3]] / scale[1]).astype(int), 0, rows)
        cells = motion[frame, y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
        out[i] = float(cells.mean()) - float(background[frame]) if cells.size else 0.0
    return out


# ------------------------------------------------------------------------------ crops

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
            person's landmarks known but hands in view on fewer than MIN_HANDS_RATIO of its
            frames (unless `need_hands` is False: the face cue reads a talking head
            without hands). A person whose landmarks are rarely known (seen from behind)
            is read from the motion in their box, hands or not.
    """
    if not tracks:
        raise PeopleError(
            f"no person found in {name}: gestsync needs a visible person, with the "
            "upper body and hands in view, for at least "
            f"{MIN_FRAMES / FPS:g} s")
    count = people_per_frame(tracks, num_frames)
    if (count >= 2).sum() >= MULTI_PERSON_FRACTION * num_frames:
        raise PeopleError(
            f"{count.max()} people visible in {name}: use `gestsync speaker` to find "
            "who is speaking")
    main = max(tracks, key=lambda t: (t.length, t.size))
    if (need_hands and main.landmark_share >= MIN_LANDMARK_SHARE
            and main.visible_hands_ratio < MIN_HANDS_RATIO):
        raise PeopleError(
            f"hands never visible in {name} (in view on {main.visible_hands_ratio:.0%} of "
            "the person's frames): the body cue reads gestures, so the hands must be in "
            "the picture; for a face-only clip (a talking head) use `--cues face`, which "
            "reads the lips")
    return main


def covered_spans(tracks: list[Track]) -> list[tuple[int, int]]:
    """The frames that some track covers as disjoint (start, end) spans, in order."""
    spans: list[list[int]] = []
    for start, end in sorted((t.start, t.end) for t in tracks):
        if spans and start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    return [(a, b) for a, b in spans]
