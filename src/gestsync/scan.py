"""The people stage: decode a clip once on the 25 fps grid, find bodies, link them into tracks.

Shared by `gestsync sync` (one person) and `gestsync speaker` (several).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures.process import BrokenProcessPool
from typing import Callable

import numpy as np

from . import media, people
from .errors import PeopleError
from .progress import Progress, no_progress, progress_hook  # noqa: F401 - used here and by callers
from .pose import PoseDetector, StillPoseDetector, native_logs_hidden  # noqa: F401 - also imported from here

log = logging.getLogger(__name__)
FrameHook = Callable[[int, np.ndarray], None]  # (frame index, uint8 H x W x 3 RGB)

POSE_WIDTH = 640  # px: frames are decoded at this width for the pose detector (see README)


def pose_size(info: media.MediaInfo, width: int = POSE_WIDTH) -> tuple[int, int]:
    """(w, h) to decode at for pose detection: `width` wide (never upscaled), even sizes."""
    w = min(width, info.width)
    h = max(2, int(round(info.height * w / info.width / 2)) * 2)
    return w, h


def detect_poses(info: media.MediaInfo, max_people: int = 2, progress: Progress | None = None,
                 on_frame: FrameHook | None = None, stride: int = 1,
                 workers: int = 1) -> list[np.ndarray]:
    """Everyone's body landmarks on the 25 fps frames, in pixels of the original frame.

    Decodes the clip at `pose_size`; `on_frame(k, rgb)`, if given, also sees each decoded
    frame in order (e.g. a shot-cut detector). The detector runs on every `stride`-th frame;
    the frames between get no detection (an empty array), which tracking bridges by
    interpolation. With `workers` > 1, stretches of the clip (`_chunks`) are decoded and
    detected in parallel processes (spawned: a script calling this must guard its top level
    with `if __name__ == "__main__":`; if it does not, this falls back to one process),
    while this process decodes the frames once more for `on_frame`.
    Returns one float32 (P, 33, 4) array per frame (see `pose.PoseDetector.detect`).
    """
    if stride < 1:
        raise ValueError(f"pose stride must be at least 1 frame, got {stride}")
    progress = progress_hook(progress)
    chunks = _chunks(info.num_frames, workers)
    if workers > 1 and len(chunks) > 1:
        fed = _FrameFeed(info, on_frame)
        parts = _in_processes(_detect_span, (info, max_people, stride), chunks, workers,
                              progress, info.num_frames, fed)
        if parts is not None:
            return [pose for part in parts for pose in part]
        on_frame = None if fed.done else on_frame  # the pool broke after feeding the hook
    return _detect_span(info, max_people, stride, 0, info.num_frames, progress, on_frame)


class _FrameFeed:
    """`on_frame` over every frame at pose size, in order, in this process (while the pose
    processes work); `done` once it has run."""

    def __init__(self, info: media.MediaInfo, on_frame: FrameHook | None):
        self.info, self.on_frame, self.done = info, on_frame, False

    def __call__(self) -> None:
        if self.on_frame is None:
            return
        for k, frame in enumerate(media.iter_frames(self.info, size=pose_size(self.info))):
            self.on_frame(k, frame)
        self.done = True


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


def _detect_span(info: media.MediaInfo, max_people: int, stride: int, start: int, count: int,
                 progress: Progress = no_progress, on_frame: FrameHook | None = None
                 ) -> list[np.ndarray]:
    """Poses of frames [start, start + count), one detector tracking through them."""
    size = pose_size(info)
    scale = np.array([info.width / size[0], info.height / size[1], info.width / size[0], 1],
                     np.float32)
    skipped = np.zeros((0, 33, 4), np.float32)
    poses = []
    with PoseDetector(max_people=max_people, max_width=None) as detector:
        frames = media.iter_frames(info, size=size, start_frame=start, num_frames=count)
        for i, frame in enumerate(frames):
            k = start + i
            if on_frame is not None:
                on_frame(k, frame)
            poses.append(detector.detect(frame, k) * scale if k % stride == 0 else skipped)
            progress("people", i + 1, count)
    return poses


def _in_processes(task: Callable, args: tuple, chunks: list[tuple[int, int]], workers: int,
                  progress: Progress, total: int, meanwhile: Callable[[], None] | None = None
                  ) -> list | None:
    """`_run_chunks`, or None (with a warning) when the process pool cannot start."""
    try:
        return _run_chunks(task, args, chunks, workers, progress, total, meanwhile)
    except BrokenProcessPool:
        log.warning("parallel pose detection failed to start (is the calling script's top "
                    "level guarded by `if __name__ == '__main__':`?); using one process")
        return None


def _run_chunks(task: Callable, args: tuple, chunks: list[tuple[int, int]], workers: int,
                progress: Progress, total: int, meanwhile: Callable[[], None] | None = None
                ) -> list:
    """task(*args, start, count) for each chunk in a process pool, and `meanwhile()` in
    this process while they run; results in chunk order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")  # no fork of a process holding MediaPipe
    results: dict[int, object] = {}
    done = 0
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=context) as pool:
        futures = {pool.submit(task, *args, start, count): (start, count) for start, count in chunks}
        if meanwhile is not None:
            meanwhile()
        for future in as_completed(futures):
            start, count = futures[future]
            results[start] = future.result()
            done += count
            progress("people", done, total)
    return [results[start] for start, _ in chunks]


def scan_people(info: media.MediaInfo, max_people: int = 2, progress: Progress | None = None,
                stride: int = 1, workers: int = 1,
                **track_options) -> list[people.Track]:
    """Every person track of the clip, in pixels of the original frame.

    Decodes the clip once at `pose_size`, runs the pose detector on every `stride`-th 25 fps
    frame and links detections into tracks (`people.track_people` options pass through).
    """
    poses = detect_poses(info, max_people, progress, stride=stride, workers=workers)
    return people.track_people(poses, (info.width, info.height), **track_options)


CROWD_STRIDE = 25  # frames: the people count looks once a second (a look costs about 0.1 s
# of CPU: three still-image detections)
CROWD_PARTS = ((0.0, 0.6), (0.4, 1.0))  # overlapping left and right parts of the frame:
# on a still frame the detector often finds only one of two people side by side, and each
# of them in a part of the frame that holds them alone
MAX_SEARCHED_PEOPLE = 4  # `people_to_search`: most people followed in a clip with several


def count_people(info: media.MediaInfo, progress: Progress | None = None) -> np.ndarray:
    """People of comparable size on every CROWD_STRIDE-th frame (`people.distinct_people`).

    Each look is a still frame searched whole and in CROWD_PARTS, with no tracking, so
    that nobody is missed for being next to somebody already found.
    """
    progress, counts = progress_hook(progress), []
    with StillPoseDetector(max_people=MAX_SEARCHED_PEOPLE) as detector:
        for k, frame in enumerate(media.iter_frames(info, size=pose_size(info))):
            if k % CROWD_STRIDE == 0:
                counts.append(people.distinct_people(_whole_and_parts(detector, frame)))
            progress("people check", k + 1, info.num_frames)
    return np.array(counts, np.int64)


def _whole_and_parts(detector: StillPoseDetector, frame: np.ndarray) -> np.ndarray:
    """Detections in the whole frame and, unless it already shows several people, in each
    of CROWD_PARTS, in frame pixels."""
    width = frame.shape[1]
    found = [detector.detect(frame)]
    if people.distinct_people(found[0]) >= 2:
        return found[0]
    for lo, hi in CROWD_PARTS:
        x0 = int(lo * width)
        poses = detector.detect(np.ascontiguousarray(frame[:, x0:int(hi * width)]))
        poses[..., 0] += x0
        found.append(poses)
    return np.concatenate(found)


def _several(counts: np.ndarray) -> bool:
    """Two or more people of comparable size on MULTI_PERSON_FRACTION of the looks or more."""
    return bool(len(counts)) and float(np.mean(counts >= 2)) >= people.MULTI_PERSON_FRACTION


def one_person_poses(info: media.MediaInfo, progress: Progress | None = None, stride: int = 1,
                     workers: int = 1) -> tuple[list[np.ndarray], np.ndarray]:
    """(one-person poses as `detect_poses(info, 1, ...)`, the looks of `count_people`) from
    one decode: the people count rides along the one-person pass, in its processes, rather
    than decoding the clip once more on one core before it."""
    progress = progress_hook(progress)
    chunks, parts = _chunks(info.num_frames, workers), None
    if workers > 1 and len(chunks) > 1:
        parts = _in_processes(_counted_span, (info, stride), chunks, workers, progress,
                              info.num_frames)
    if parts is None:
        parts = [_counted_span(info, stride, 0, info.num_frames, progress)]
    return ([p for poses, _ in parts for p in poses],
            np.array([c for _, counts in parts for c in counts], np.int64))


def _counted_span(info: media.MediaInfo, stride: int, start: int, count: int,
                  progress: Progress = no_progress) -> tuple[list[np.ndarray], list[int]]:
    """`_detect_span` with one person, and `count_people`'s look at every CROWD_STRIDE-th
    frame of the span (the same frames, at the same size)."""
    counts: list[int] = []
    with StillPoseDetector(max_people=MAX_SEARCHED_PEOPLE) as still:
        def look(k: int, frame: np.ndarray) -> None:
            if k % CROWD_STRIDE == 0:
                counts.append(people.distinct_people(_whole_and_parts(still, frame)))

        poses = _detect_span(info, 1, stride, start, count, progress, look)
    return poses, counts


def single_person(info: media.MediaInfo, progress: Progress | None = None, stride: int = 1,
                  workers: int = 1, need_hands: bool = True
                  ) -> tuple[list[people.Track], people.Track]:
    """(tracks, main track) of a single-speaker clip.

    One decode (`one_person_poses`) gives a sparse people count, which checks that one
    person is there (PeopleError otherwise), and a one-person pass on every `stride`-th
    frame that follows that person closely (cheaper than a multi-person pass, and it never
    loses a lone person).
    `need_hands` False accepts a person whose hands are never in view (the face cue).
    """
    progress = progress_hook(progress)
    poses, counts = one_person_poses(info, progress, stride, workers)
    if _several(counts):
        raise PeopleError(f"several people visible in {info.path.name}: use `gestsync "
                          "speaker` to find who is speaking")
    return _main_track(info, poses, need_hands)


def _main_track(info: media.MediaInfo, poses: list[np.ndarray], need_hands: bool
                ) -> tuple[list[people.Track], people.Track]:
    """(tracks, main track) from one-person poses (`people.main_person`)."""
    tracks = people.track_people(poses, (info.width, info.height))
    return tracks, people.main_person(tracks, info.num_frames, name=info.path.name,
                                      need_hands=need_hands)


def people_to_search(info: media.MediaInfo, progress: Progress | None = None, stride: int = 1,
                     workers: int = 1, need_hands: bool = True
                     ) -> list[tuple[list[people.Track], people.Track]]:
    """Who to search for the offset: one (tracks, person) pair per visible person.

    One person: as `single_person`, the people count taken during the one-person pass
    (`one_person_poses`). Several (two or more on most looks): a multi-person pass on
    every frame (up to MAX_SEARCHED_PEOPLE at once), tracks of at least 2 s whose hands
    are in view (any, with `need_hands` False); PeopleError if none is.
    """
    progress = progress_hook(progress)
    poses, counts = one_person_poses(info, progress, stride, workers)
    if not _several(counts):
        return [_main_track(info, poses, need_hands)]
    poses = detect_poses(info, MAX_SEARCHED_PEOPLE, progress, workers=workers)
    [everyone] = scene_people(poses, [(0, info.num_frames)], (info.width, info.height))
    tracks = [t for t in everyone if t.visible_hands_ratio >= people.MIN_HANDS_RATIO or not need_hands]
    if not tracks:
        raise PeopleError(
            f"no person with hands in view for {people.MIN_FRAMES / media.FPS:g} s in "
            f"{info.path.name}: gestsync reads gestures, so the hands must be in the picture")
    return [([t], t) for t in tracks]


def track_scenes(poses: list[np.ndarray], spans: list[tuple[int, int]],
                 frame_size: tuple[int, int], **track_options) -> list[list[people.Track]]:
    """People tracks of each scene [start, end) of `spans`: tracks never cross a cut.

    poses: one (P, 33, 4) array per frame of the clip (`detect_poses`); options as for
    `people.track_people`. Returns one list of tracks per span (frame indices of the clip).
    """
    return [people.track_people(poses[start:end], frame_size, first_frame=start, **track_options)
            for start, end in spans]


def scene_people(poses: list[np.ndarray], spans: list[tuple[int, int]],
                 frame_size: tuple[int, int], min_frames: int = people.MIN_FRAMES,
                 min_size: float = people.MIN_SIZE, max_gap: int = people.MAX_GAP
                 ) -> list[list[people.Track]]:
    """Each scene's people (`gestsync speaker` and `gestsync prepare`): detections linked
    into tracks within the scene, fragments of one person joined, then tracks shorter than
    min_frames, smaller than min_size or rarely detected dropped (`people.keep_tracks`)."""
    fragments = track_scenes(poses, spans, frame_size, min_frames=1, min_size=0, max_gap=max_gap)
    return [people.keep_tracks(people.join_fragments(scene), min_frames, min_size)
            for scene in fragments]


def person_pieces(tracks: list[people.Track], num_frames: int) -> list[tuple[int, np.ndarray]]:
    """One person per frame, as (first frame, keypoints K x 33 x 4) runs of a single track.

    Bigger tracks win where tracks overlap, so a clip cut between shots of one person each
    gets each shot's person; a new run starts wherever the chosen track changes, so that
    nothing downstream differentiates across a cut or a change of person. Undetected
    frames inside a track are bridged (see `_bridged`).
    """
    owner = np.full(num_frames, -1)
    for i, track in sorted(enumerate(tracks), key=lambda it: -it[1].size):
        frames = track.frames[track.frames < num_frames]
        free = frames[owner[frames] < 0]
        owner[free] = i
    pieces = []
    changes = np.flatnonzero(np.diff(owner) != 0) + 1
    for start, stop in zip(np.r_[0, changes], np.r_[changes, num_frames]):
        if owner[start] >= 0:
            track = tracks[owner[start]]
            rows = np.arange(start, stop) - track.start
            pieces.append((int(start), _bridged(track)[rows]))
    return pieces


def _bridged(track: people.Track) -> np.ndarray:
    """The track's keypoints with visibility also interpolated over undetected frames
    (tracking interpolates positions there but marks them unseen; skipped pose frames
    would otherwise blank every other frame)."""
    keypoints = track.keypoints.copy()
    seen = np.flatnonzero(track.detected)
    if 0 < len(seen) < track.length:
        gaps = np.flatnonzero(~track.detected)
        for joint in range(keypoints.shape[1]):
            keypoints[gaps, joint, 3] = np.interp(gaps, seen, track.keypoints[seen, joint, 3])
    return keypoints
