"""The people stage: decode a clip once on the 25 fps grid, find people, link them into tracks.

Each decoded frame goes to three finders (`Findings`): the face-free person detector
(`person_detector`, every few frames) whose boxes make the tracks, MediaPipe's
pose landmarker (every `stride`-th frame) whose landmarks are attached to the boxes, and a
coarse motion map from which a person's motion is read where no landmarks are (a back or a
profile). Shared by `gestsync sync` (one person), `speaker` and `prepare` (several).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from . import media, people, scenes
from .errors import PeopleError
from .progress import Progress, no_progress, progress_hook  # noqa: F401 - used here and by callers
from .pose import PoseDetector, native_logs_hidden  # noqa: F401 - also imported from here

log = logging.getLogger(__name__)

POSE_WIDTH = 640  # px: frames are decoded at this width for the finders (see README)
DETECT_STRIDE = 5  # the person detector looks at every 5th frame (5 a second) when several
# people are followed: they move little in 0.2 s (IoU linking holds), the crops smooth boxes
# over 13 frames anyway, and every frame gave the same crops as every 5th on the authors'
# tracks (benchmarks/authors_match.py); tracks are interpolated between looks. Every 10th
# lost a person in a 2 s shot (asd_sample_2; docs/performance.md)
SPEAKER_POSE_STRIDE = 1  # `speaker` (and the composite protocol) ask the multi-person
# landmarker on every frame where landmarks are read: every 2nd saved 40% of the people stage
# but gave fewer of the labelled interview's frames to its speaker, and named its host for
# the whole scene instead of the guest who speaks most (docs/performance.md, "The people
# stage's strides for `speaker`")
ONE_PERSON_DETECT_STRIDE = 10  # `sync`'s one-person pass: its boxes count people and hold
# one person, so 2.5 looks a second do; a look costs about 2x a pose frame (docs/performance.md)
MOTION_CELL = 16  # px of the decoded frame per cell of the motion map (40 x 23 cells at
# 640 x 360: under 1 kB a frame, 83 MB for an hour)


def pose_size(info: media.MediaInfo, width: int = POSE_WIDTH) -> tuple[int, int]:
    """(w, h) to decode at for pose detection: `width` wide (never upscaled), even sizes."""
    w = min(width, info.width)
    h = max(2, int(round(info.height * w / info.width / 2)) * 2)
    return w, h


@dataclass
class Findings:
    """What the finders saw on consecutive 25 fps frames of a clip, in original pixels.

    Attributes:
        boxes: per frame, the detector's (N, 5) person boxes x0, y0, x1, y1, score, or
            None where it did not look.
        poses: per frame, (P, 33, 4) pose landmarks (P = 0 where the landmarker did not
            look or found nobody).
        motion: uint8 (T, rows, cols) mean absolute change of grey level of each
            MOTION_CELL square since the previous frame.
        cell: (x, y) original pixels per motion cell.
        changes: float32 (T,) each frame's mean hue, saturation and value change since
            the previous one (`scenes.hsv_change`; 0 on the clip's first frame), or None:
            no shot cuts are known.
    """

    boxes: list[np.ndarray | None]
    poses: list[np.ndarray]
    motion: np.ndarray
    cell: tuple[float, float]
    changes: np.ndarray | None = None

    @staticmethod
    def joined(parts: list[Findings]) -> Findings:
        """One Findings from those of consecutive stretches."""
        changes = (None if any(p.changes is None for p in parts)
                   else np.concatenate([p.changes for p in parts]))
        return Findings([b for p in parts for b in p.boxes], [q for p in parts for q in p.poses],
                        np.concatenate([p.motion for p in parts]), parts[0].cell, changes)

    def counts(self) -> np.ndarray:
        """People of comparable size on each look of the detector (`people.comparable_people`
        of its `people.distinct_boxes`)."""
        return np.array([people.comparable_people(people.distinct_boxes(b))
                         for b in self.boxes if b is not None], np.int64)

    def tracks(self, start: int, end: int, frame_size: tuple[int, int],
               min_frames: int = people.MIN_FRAMES, min_size: float = people.MIN_SIZE,
               max_gap: int = people.MAX_GAP) -> list[people.Track]:
        """The people of frames [start, end) (one scene): boxes linked into tracks,
        fragments of one person joined, short, small or rarely found tracks dropped, then
        landmarks, box motion and the shot cuts inside each track (`shot_cuts`) attached."""
        fragments = people.track_people(self.boxes[start:end], frame_size, min_frames=1,
                                        min_size=0, max_gap=max_gap, first_frame=start,
                                        num_frames=end - start)
        looked = np.array([b is not None for b in self.boxes[start:end]])
        tracks = people.keep_tracks(people.join_fragments(fragments), min_frames, min_size,
                                    looked, start)
        people.attach_poses(tracks, self.poses[start:end], first_frame=start)
        cuts = self.shot_cuts
        for track in tracks:
            track.motion = people.box_motion(track, self.motion, self.cell, self.background)
            track.cuts = cuts[(cuts > track.start) & (cuts < track.end)]
        return tracks

    def cuts(self, threshold: float = scenes.CUT_THRESHOLD) -> np.ndarray:
        """int64 frames where a new shot begins: the cuts `scenes.SceneCuts` finds with this
        threshold (none without `changes`)."""
        return np.array([] if self.changes is None else scenes.cuts_of(self.changes, threshold),
                        np.int64)

    def scene_spans(self, threshold: float = scenes.CUT_THRESHOLD) -> list[tuple[int, int]]:
        """The shots as [start, end) frame spans covering the frames searched (`cuts`)."""
        return scenes.cut_spans(self.cuts(threshold).tolist(), len(self.poses))

    @functools.cached_property
    def shot_cuts(self) -> np.ndarray:
        """`cuts` at the default threshold, which `tracks` attaches to each track."""
        return self.cuts()

    @functools.cached_property
    def background(self) -> np.ndarray:
        """(T,) the median change of each frame's motion map (`people.box_motion`)."""
        return np.median(self.motion.reshape(len(self.motion), -1), axis=1)


def find_people(info: media.MediaInfo, max_people: int = 2, progress: Progress | None = None,
                stride: int | None = 1, workers: int = 1, detect_stride: int = DETECT_STRIDE
                ) -> Findings:
    """Everyone on the 25 fps frames: person boxes, pose landmarks, motion and shot
    changes (`Findings`).

    Decodes the clip at `pose_size`. The landmarker runs on every `stride`-th frame (up to
    `max_people` each; stride None: never, where nothing reads landmarks), the detector on
    every `detect_stride`-th. With `workers` > 1,
    stretches of the clip (`_chunks`) are decoded and searched in parallel processes
    (spawned: a script calling this must guard its top level with `if __name__ ==
    "__main__":`; if it does not, this falls back to one process); each also decodes the
    frame before its stretch, so that changes at the stretch's first frame are measured.
    """
    if (stride is not None and stride < 1) or not 1 <= detect_stride <= people.MAX_GAP + 1:
        raise ValueError(f"need a pose stride >= 1 and a detection stride in 1 .. "
                         f"{people.MAX_GAP + 1}, got {stride} and {detect_stride}")
    progress = progress_hook(progress)
    chunks = _chunks(info.num_frames, workers)
    if workers > 1 and len(chunks) > 1:
        parts = _in_processes(_find_span, (info, max_people, stride, detect_stride, 1), chunks,
                              workers, progress, info.num_frames)
        if parts is not None:
            return Findings.joined(parts)
    return _find_span(info, max_people, stride, detect_stride, None, 0, info.num_frames,
                      progress)


CHUNK_FRAMES = 500  # 20 s per parallel task: detector start-up (~0.2 s) stays under 2%
MAX_POSE_WORKERS = 4


def _chunks(num_frames: int, workers: int) -> list[tuple[int, int]]:
    """(start, count) stretches of at most CHUNK_FRAMES, as many as a multiple of `workers`
    and of equal length, so that no worker is left alone on the last one (1,500 frames on
    2 workers: 4 x 375, not 3 x 500); none under CHUNK_FRAMES / 4 (start-up cost)."""
    if num_frames <= 0:
        return []
    n = -(-num_frames // CHUNK_FRAMES)  # ceil
    n = -(-n // max(workers, 1)) * max(workers, 1)
    n = max(1, min(n, num_frames // max(CHUNK_FRAMES // 4, 1)))
    size = -(-num_frames // n)
    return [(start, min(size, num_frames - start)) for start in range(0, num_frames, size)]


def default_workers() -> int:
    """One pose process per CPU core this process may use, at most MAX_POSE_WORKERS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_POSE_WORKERS))


def _find_span(info: media.MediaInfo, max_people: int, stride: int | None, detect_stride: int,
               threads: int | None, start: int, count: int, progress: Progress = no_progress
               ) -> Findings:
    """`Findings` of frames [start, start + count), one landmarker tracking through them;
    `threads`: torch threads of the person detector (None: torch's default)."""
    from .person_detector import PersonDetector  # lazy: torch loads only when people are sought

    size = pose_size(info)
    sx, sy = info.width / size[0], info.height / size[1]
    scale = np.array([sx, sy, sx, 1], np.float32)
    skipped = np.zeros((0, 33, 4), np.float32)
    motion = _MotionMap(size)
    changes, last_hsv = np.zeros(count, np.float32), None
    boxes: list[np.ndarray | None] = []
    poses = []
    detector = PersonDetector(threads=threads)
    landmarks = (PoseDetector(max_people=max_people, max_width=None) if stride
                 else contextlib.nullcontext())
    with landmarks as landmarker:
        before = min(start, 1)  # the frame before the stretch: what changed at its first
        frames = media.iter_frames(info, size=size, start_frame=start - before,
                                   num_frames=count + before)
        for i, frame in enumerate(frames, start=-before):
            k = start + i
            if i < 0:
                motion.prime(frame)
                last_hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
                continue
            poses.append(landmarker.detect(frame, k) * scale if stride and k % stride == 0
                         else skipped)
            boxes.append(detector.detect(frame) * np.array([sx, sy, sx, sy, 1], np.float32)
                         if k % detect_stride == 0 else None)
            motion.add(frame)
            hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
            changes[i] = 0.0 if last_hsv is None else scenes.hsv_change(last_hsv, hsv)
            last_hsv = hsv
            progress("people", i + 1, count)
    return Findings(boxes, poses, motion.array(), (sx * MOTION_CELL, sy * MOTION_CELL),
                    changes[:len(poses)])


class _MotionMap:
    """Per frame, the mean absolute change of grey level in each MOTION_CELL square."""

    def __init__(self, size: tuple[int, int]):
        self.cells = (max(1, size[0] // MOTION_CELL), max(1, size[1] // MOTION_CELL))
        self.rows: list[np.ndarray] = []
        self._last: np.ndarray | None = None
        self._primed = False  # `prime` saw the frame before the first

    def _small(self, rgb: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return cv2.resize(grey, self.cells, interpolation=cv2.INTER_AREA).astype(np.int16)

    def prime(self, rgb: np.ndarray) -> None:
        """The frame before the stretch: the first frame's change is measured against it."""
        self._last, self._primed = self._small(rgb), True

    def add(self, rgb: np.ndarray) -> None:
        small = self._small(rgb)
        if self._last is not None:
            self.rows.append(np.abs(small - self._last).astype(np.uint8))
        self._last = small

    def array(self) -> np.ndarray:
        """(frames, rows, cols) uint8; unprimed, the first frame repeats the second's change."""
        if not self.rows:
            return np.zeros((int(self._last is not None),) + self.cells[::-1], np.uint8)
        return np.stack(self.rows if self._primed else self.rows[:1] + self.rows)


def _in_processes(task: Callable, args: tuple, chunks: list[tuple[int, int]], workers: int,
                  progress: Progress, total: int) -> list | None:
    """`_run_chunks`, or None (with a warning) when the process pool cannot start."""
    try:
        return _run_chunks(task, args, chunks, workers, progress, total)
    except BrokenProcessPool:
        log.warning("parallel pose detection failed to start (is the calling script's top "
                    "level guarded by `if __name__ == '__main__':`?); using one process")
        return None


def _run_chunks(task: Callable, args: tuple, chunks: list[tuple[int, int]], workers: int,
                progress: Progress, total: int) -> list:
    """task(*args, start, count) for each chunk in a process pool; results in chunk order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")  # no fork of a process holding MediaPipe
    results: dict[int, object] = {}
    done = 0
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=context) as pool:
        futures = {pool.submit(task, *args, start, count): (start, count) for start, count in chunks}
        for future in as_completed(futures):
            start, count = futures[future]
            results[start] = future.result()
            done += count
            progress("people", done, total)
    return [results[start] for start, _ in chunks]


def scan_people(info: media.MediaInfo, max_people: int = 2, progress: Progress | None = None,
                stride: int = 1, workers: int = 1, detect_stride: int = DETECT_STRIDE,
                **track_options) -> list[people.Track]:
    """Every person track of the clip as one scene (`find_people` with these strides;
    `Findings.tracks` options pass through)."""
    found = find_people(info, max_people, progress, stride=stride, workers=workers,
                        detect_stride=detect_stride)
    return found.tracks(0, info.num_frames, (info.width, info.height), **track_options)


MAX_SEARCHED_PEOPLE = 4  # `people_to_search`: most people followed in a clip with several


def _several(counts: np.ndarray) -> bool:
    """Two or more people of comparable size on MULTI_PERSON_FRACTION of the looks or more."""
    return bool(len(counts)) and float(np.mean(counts >= 2)) >= people.MULTI_PERSON_FRACTION


def single_person(info: media.MediaInfo, progress: Progress | None = None, stride: int = 1,
                  workers: int = 1, need_hands: bool = True
                  ) -> tuple[list[people.Track], people.Track]:
    """(tracks, main track) of a single-speaker clip.

    One decode: the detector's boxes check that one person is there (PeopleError
    otherwise), and a one-person landmark pass on every `stride`-th frame follows that
    person closely (cheaper than a multi-person pass, and it never loses a lone person).
    `need_hands` False accepts a person whose hands are never in view (the face cue).
    """
    found = find_people(info, 1, progress_hook(progress), stride=stride, workers=workers,
                        detect_stride=ONE_PERSON_DETECT_STRIDE)
    if _several(found.counts()):
        raise PeopleError(f"several people visible in {info.path.name}: use `gestsync "
                          "speaker` to find who is speaking")
    return _main_track(info, found, need_hands)


def _main_track(info: media.MediaInfo, found: Findings, need_hands: bool
                ) -> tuple[list[people.Track], people.Track]:
    """(tracks, main track) of one person's findings (`people.main_person`)."""
    tracks = found.tracks(0, info.num_frames, (info.width, info.height))
    return tracks, people.main_person(tracks, info.num_frames, name=info.path.name,
                                      need_hands=need_hands)


def people_to_search(info: media.MediaInfo, progress: Progress | None = None, stride: int = 1,
                     workers: int = 1, need_hands: bool = True
                     ) -> list[tuple[list[people.Track], people.Track]]:
    """Who to search for the offset: one (tracks, person) pair per visible person.

    One person: as `single_person`. Several (two or more on most of the detector's looks):
    a multi-person landmark pass on every frame (up to MAX_SEARCHED_PEOPLE at once), tracks
    of at least 2 s whose hands are in view (any, with `need_hands` False); PeopleError if
    none is.
    """
    progress = progress_hook(progress)
    found = find_people(info, 1, progress, stride=stride, workers=workers,
                        detect_stride=ONE_PERSON_DETECT_STRIDE)
    if not _several(found.counts()):
        return [_main_track(info, found, need_hands)]
    found = find_people(info, MAX_SEARCHED_PEOPLE, progress, workers=workers)
    everyone = found.tracks(0, info.num_frames, (info.width, info.height))
    tracks = [t for t in everyone if t.visible_hands_ratio >= people.MIN_HANDS_RATIO or not need_hands]
    if not tracks:
        raise PeopleError(
            f"no person with hands in view for {people.MIN_FRAMES / media.FPS:g} s in "
            f"{info.path.name}: the body cue reads gestures, so the hands must be in the "
            "picture; for face-only clips use `--cues face`, which reads the lips")
    return [([t], t) for t in tracks]


def scene_people(found: Findings, spans: list[tuple[int, int]], frame_size: tuple[int, int],
                 **track_options) -> list[list[people.Track]]:
    """Each scene's people (`gestsync speaker` and `gestsync prepare`): `Findings.tracks`
    of each span [start, end): tracks never cross a cut."""
    return [found.tracks(start, end, frame_size, **track_options) for start, end in spans]


def person_pieces(tracks: list[people.Track], num_frames: int
                  ) -> list[tuple[int, np.ndarray, np.ndarray | None, float]]:
    """One person per frame, as (first frame, keypoints K x 33 x 4, box motion (K,) or None,
    the track's `landmark_share`) runs of a single track.

    Bigger tracks win where tracks overlap, so a clip cut between shots of one person each
    gets each shot's person; a new run starts wherever the chosen track changes or its shot
    does (`Track.cuts`: a box held across a cut may be someone else, or the same person
    seen anew), so that nothing downstream differentiates across a cut or a change of person.
    """
    owner = np.full(num_frames, -1)
    for i, track in sorted(enumerate(tracks), key=lambda it: -it[1].size):
        frames = track.frames[track.frames < num_frames]
        free = frames[owner[frames] < 0]
        owner[free] = i
    pieces = []
    changes = np.flatnonzero(np.diff(owner) != 0) + 1
    cuts = [c for i, t in enumerate(tracks) for c in t.cuts if c < num_frames and owner[c] == i]
    changes = np.union1d(changes, np.asarray(cuts, np.int64)).astype(np.int64)
    for start, stop in zip(np.r_[0, changes], np.r_[changes, num_frames]):
        if owner[start] >= 0:
            track = tracks[owner[start]]
            rows = np.arange(start, stop) - track.start
            motion = None if track.motion is None else track.motion[rows]
            pieces.append((int(start), track.keypoints[rows], motion, track.landmark_share))
    return pieces
