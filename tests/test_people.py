"""Tracking, crops and main-person checks on synthetic keypoint sequences."""

import numpy as np
import pytest

from gestsync.errors import PeopleError
from gestsync.people import (CROP_ASPECT, Tracker, crop_box, crop_frame, keypoint_box,
                             main_person, people_per_frame, track_people)

FRAME = (640, 360)  # width, height

# A standing person in units of "scale", relative to the neck: (x, y) per BlazePose id.
_TEMPLATE = np.array(
    [(0, -1.0)] + [(-0.05, -1.08), (-0.08, -1.08), (-0.11, -1.08),
                   (0.05, -1.08), (0.08, -1.08), (0.11, -1.08)]
    + [(-0.15, -1.05), (0.15, -1.05), (-0.05, -0.9), (0.05, -0.9)]  # ears, mouth
    + [(-0.4, -0.6), (0.4, -0.6), (-0.5, -0.1), (0.5, -0.1)]  # shoulders, elbows
    + [(-0.45, 0.3), (0.45, 0.3)] + [(-0.45, 0.4), (0.45, 0.4)] * 3  # wrists, hands
    + [(-0.25, 0.5), (0.25, 0.5), (-0.25, 1.2), (0.25, 1.2), (-0.25, 1.9), (0.25, 1.9)]
    + [(-0.25, 2.0), (0.25, 2.0)] * 2,  # hips, knees, ankles, heels, feet
    np.float32)
LEGS = slice(25, 33)
HANDS = slice(15, 23)


def person(x: float, y: float, scale: float, hands: bool = True) -> np.ndarray:
    """(33, 4) keypoints of a person with the neck at (x, y) pixels; legs not visible."""
    k = np.ones((33, 4), np.float32)
    k[:, :2] = _TEMPLATE * scale + (x, y)
    k[:, 2] = 0
    k[LEGS, 3] = 0.1
    if not hands:
        k[HANDS, 3] = 0.05
    return k


def frames_of(*people_per_frame) -> list[np.ndarray]:
    """Per-frame lists of (33, 4) keypoints -> per-frame (P, 33, 4) arrays."""
    return [np.stack(p) if p else np.zeros((0, 33, 4), np.float32) for p in people_per_frame]


def walk(x0: float, x1: float, n: int, y: float = 150, scale: float = 60):
    return [person(x, y, scale) for x in np.linspace(x0, x1, n)]


def test_keypoint_box_covers_head_and_hands():
    k = person(320, 150, 60)
    x0, y0, x1, y1 = keypoint_box(k, FRAME)
    ear_distance = k[8, 0] - k[7, 0]
    assert y0 < k[:11, 1].min() - ear_distance  # room for the skull above the eyes
    assert x0 < k[HANDS, 0].min() and x1 > k[HANDS, 0].max()
    assert y1 > k[HANDS, 1].max()
    assert y1 < k[23:25, 1].max() + 30  # invisible legs do not stretch it


def test_two_people_crossing_keep_identity():
    rng = np.random.default_rng(0)
    a, b = walk(100, 540, 120), walk(540, 100, 120, y=140, scale=55)
    poses = []
    for i, (pa, pb) in enumerate(zip(a, b)):
        pair = [pa, pb] if i % 2 else [pb, pa]  # detector order is arbitrary
        noise = rng.normal(0, 1, (2, 33, 4)).astype(np.float32) * [1, 1, 0, 0]
        poses.append(np.stack(pair) + noise)
    tracks = track_people(poses, FRAME)
    assert len(tracks) == 2
    for t in tracks:
        # where they overlap one hides the other: bridged over the few frames
        assert t.length == 120 and t.detected.mean() > 0.9
        nose_x = t.keypoints[:, 0, 0]
        steps = np.diff(nose_x)
        assert (steps > 0).mean() > 0.9 or (steps < 0).mean() > 0.9  # one direction only


def test_gap_is_bridged_by_interpolation():
    people = walk(100, 400, 100)
    seq = [[p] for p in people]
    for i in range(40, 50):
        seq[i] = []
    (t,) = track_people(frames_of(*seq), FRAME)
    assert t.length == 100 and list(t.frames) == list(range(100))
    assert not t.detected[40:50].any() and t.detected[:40].all() and t.detected[50:].all()
    assert (t.keypoints[40:50, :, 3] == 0).all()
    np.testing.assert_allclose(t.keypoints[45, :, :2], people[45][:, :2], atol=1e-3)
    assert t.visible_hands_ratio == 1.0  # of the frames where the person was seen


def test_long_gap_splits_the_track():
    seq = [[p] for p in walk(100, 400, 160)]
    for i in range(60, 90):  # 30 missed frames > MAX_GAP
        seq[i] = []
    tracks = track_people(frames_of(*seq), FRAME)
    assert [(t.start, t.end) for t in tracks] == [(0, 60), (90, 160)]


def test_short_and_small_tracks_are_dropped():
    main = walk(150, 200, 100)
    seq = [[p] for p in main]
    for i in range(20):  # a passer-by for 20 frames (< MIN_FRAMES)
        seq[i].append(person(500, 150, 60))
    for i in range(100):  # a tiny person (box < MIN_SIZE) for the whole clip
        seq[i].append(person(600, 300, 10))
    tracks = track_people(frames_of(*seq), FRAME)
    assert len(tracks) == 1 and tracks[0].length == 100
    assert len(track_people(frames_of(*seq), FRAME, min_frames=10, min_size=0)) == 3


def test_boxes_are_median_smoothed():
    seq = [[p] for p in walk(300, 300, 60)]
    seq[30][0] = seq[30][0].copy()
    seq[30][0][15, :2] = (600, 350)  # one wild wrist: the raw box jumps for one frame
    (t,) = track_people(frames_of(*seq), FRAME)
    np.testing.assert_allclose(t.boxes[30], t.boxes[29])


def test_tracker_is_incremental_and_checks_order():
    tracker = Tracker(FRAME)
    for i, p in enumerate(walk(100, 300, 60)):
        tracker.update(i, p[None])
    with pytest.raises(ValueError):
        tracker.update(10, np.zeros((0, 33, 4), np.float32))
    (t,) = tracker.finish()
    assert t.length == 60


def test_crop_box_is_16_9_centred_and_inside():
    box = np.array([300, 100, 340, 200])
    x0, y0, x1, y1 = crop_box(box, FRAME)
    assert (y1 - y0, x1 - x0) == (100, 178)
    assert abs((x0 + x1) / 2 - 320) <= 1 and (y0 + y1) / 2 == 150
    # near the border: shifted inside, same size
    x0, y0, x1, y1 = crop_box(np.array([0, 0, 40, 100]), FRAME)
    assert (x0, y0) == (0, 0) and (x1, y1) == (178, 100)
    # a wide box sets the width
    x0, y0, x1, y1 = crop_box(np.array([100, 100, 420, 120]), FRAME)
    assert (x1 - x0) / (y1 - y0) == pytest.approx(CROP_ASPECT, abs=0.01) and x1 - x0 == 320


def test_crop_box_larger_than_frame_covers_it():
    # a square frame with a full-height person: 16:9 is wider than the frame
    x0, y0, x1, y1 = crop_box(np.array([0, 0, 100, 360]), (360, 360))
    assert (y0, y1) == (0, 360) and x1 - x0 == 640
    assert x0 <= 0 and x1 >= 360  # the whole frame width is shown, black beyond
    boxes = crop_box(np.array([[300, 100, 340, 200]] * 3), FRAME)
    assert boxes.shape == (3, 4) and boxes.dtype == np.int64


def test_crop_frame_pads_with_black():
    rgb = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3) + 1
    crop = crop_frame(rgb, (-2, 3, 4, 9))
    assert crop.shape == (6, 6, 3)
    np.testing.assert_array_equal(crop[:3, 2:], rgb[3:6, 0:4])
    assert (crop[:, :2] == 0).all() and (crop[3:] == 0).all()
    np.testing.assert_array_equal(crop_frame(rgb, (0, 0, 8, 6)), rgb)


def test_main_person_errors():
    with pytest.raises(PeopleError, match="no person found in clip.mp4"):
        main_person([], 100, "clip.mp4")
    two = frames_of(*[[a, b] for a, b in zip(walk(150, 160, 100), walk(480, 470, 100))])
    with pytest.raises(PeopleError, match="2 people visible in clip.mp4: use `gestsync speaker`"):
        main_person(track_people(two, FRAME), 100, "clip.mp4")
    no_hands = frames_of(*[[person(300, 150, 60, hands=False)] for _ in range(100)])
    with pytest.raises(PeopleError, match="hands never visible in clip.mp4"):
        main_person(track_people(no_hands, FRAME), 100, "clip.mp4")


def test_main_person_ignores_small_background_people_and_returns_the_longest():
    seq = [[p] for p in walk(150, 200, 100)]
    for i in range(100):
        seq[i].append(person(550, 120, 25))  # small person in the background
    for i in range(60):
        seq[i].append(person(400, 150, 60))  # as big, beside for 60% of the clip
    tracks = track_people(frames_of(*seq), FRAME)
    with pytest.raises(PeopleError, match="2 people"):
        main_person(tracks, 100)
    tracks = track_people(frames_of(*[s[:2] for s in seq]), FRAME, min_size=0)
    assert len(tracks) == 2
    main = main_person(tracks, 100)
    assert main.length == 100 and main.size > 100


def test_duplicate_detections_are_merged():
    seq = [[p, p + np.float32([3, 2, 0, -0.2])] for p in walk(100, 300, 60)]
    (t,) = track_people(frames_of(*seq), FRAME)
    assert t.length == 60 and (t.keypoints[:, 0, 3] == 1).all()  # the more visible copy


def test_stride_interpolates_skipped_frames():
    people = walk(100, 400, 100)
    (t,) = track_people(frames_of(*[[p] for p in people[::3]]), FRAME, stride=3)
    assert list(t.frames) == list(range(0, 100)[:t.length]) and t.end == 100
    assert t.detected.sum() == 34 and t.visible_hands_ratio == 1.0
    np.testing.assert_allclose(t.keypoints[50, :, :2], people[50][:, :2], atol=1e-3)
    with pytest.raises(ValueError, match="stride"):
        track_people([], FRAME, stride=30)
    # 101 frames: the last analysed one is 99, the track is held to the end
    (t,) = track_people(frames_of(*[[p] for p in people[::3]]), FRAME, stride=3,
                        num_frames=101)
    assert t.end == 101 and not t.detected[-1]
    np.testing.assert_array_equal(t.keypoints[-1, :, :2], people[99][:, :2])


def test_people_together_in_several_shots_add_up():
    # 3 shots of 40 frames, two people together for 15 frames in each: 45 of 120 frames
    seq = []
    for shot in range(3):
        x = 150 + 100 * shot  # a cut: everyone moves
        seq += [[p] + ([person(x + 250, 150, 60)] if i >= 25 else [])
                for i, p in enumerate(walk(x, x + 5, 40))]
    tracks = track_people(frames_of(*seq), FRAME, min_frames=10)
    assert (people_per_frame(tracks, 120) == 2).sum() == 45
    with pytest.raises(PeopleError, match="2 people"):
        main_person(tracks, 120)


def test_join_fragments_resumes_a_person_after_a_long_miss():
    from gestsync.people import join_fragments, keep_tracks

    a = walk(200, 210, 40)
    b = walk(212, 220, 40)
    poses = frames_of(*([p] for p in a), *([[]] * 40), *([p] for p in b))  # 40 frames missed
    pieces = track_people(poses, FRAME, min_frames=1)
    assert len(pieces) == 2
    joined = join_fragments(pieces)
    assert len(joined) == 1 and joined[0].length == 120 and joined[0].detected.sum() == 80
    assert (joined[0].keypoints[40:80, :, 3] == 0).all()  # the gap is not an observation
    far = frames_of(*([p] for p in a), *([[]] * 40), *([p] for p in walk(500, 510, 40)))
    assert len(join_fragments(track_people(far, FRAME, min_frames=1))) == 2  # elsewhere: new
    stray = frames_of([a[0]], *([[]] * 20), [a[0]], *([[]] * 20), [a[0]])
    assert keep_tracks(join_fragments(track_people(stray, FRAME, min_frames=1)), min_frames=10) == []
