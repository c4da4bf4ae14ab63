"""Tracking of detector boxes, landmarks attached to them, box motion and main-person
checks, on synthetic people."""

import numpy as np
import pytest

from gestsync import people
from gestsync.errors import PeopleError
from gestsync.people import (Tracker, attach_poses, box_motion, comparable_people, crop_frame,
                             join_fragments, keep_tracks, keypoint_box, main_person,
                             people_per_frame, track_people)

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


def boxes_of(poses: list[np.ndarray]) -> list[np.ndarray]:
    """What a person detector would find: a box (with a score) around each pose."""
    return [np.array([[*keypoint_box(k, FRAME), 0.9] for k in p], np.float32).reshape(-1, 5)
            for p in poses]


def tracked(poses: list[np.ndarray], **options):
    """Tracks of the people of `poses` (boxes around them), their landmarks attached."""
    return attach_poses(track_people(boxes_of(poses), FRAME, **options), poses)


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
    tracks = tracked(poses)
    assert len(tracks) == 2
    for t in tracks:
        assert t.length == 120 and t.detected.mean() > 0.9 and t.posed.mean() > 0.9
        nose_x = t.keypoints[:, 0, 0]
        steps = np.diff(nose_x)
        assert (steps > 0).mean() > 0.9 or (steps < 0).mean() > 0.9  # one direction only


def test_a_track_never_takes_over_another_person():
    # two people side by side; the left one leaves at frame 60 and the right one stays:
    # the left track must end, not jump onto the right person
    left, right = walk(150, 150, 100), walk(450, 450, 100)
    seq = [[r] + ([l] if i < 60 else []) for i, (l, r) in enumerate(zip(left, right))]
    tracks = tracked(frames_of(*seq))
    assert len(tracks) == 2
    ends = sorted((t.end, round(float(np.median(t.boxes[:, 0])))) for t in tracks)
    assert ends[0][0] <= 60 + 1 and ends[1][0] == 100
    for t in tracks:  # each box stays on its own side of the frame
        centre = (t.boxes[:, 0] + t.boxes[:, 2]) / 2
        assert np.ptp(centre) < 5


def test_gap_is_bridged_by_interpolation():
    people = walk(100, 400, 100)
    seq = [[p] for p in people]
    for i in range(40, 50):
        seq[i] = []
    (t,) = tracked(frames_of(*seq))
    assert t.length == 100 and list(t.frames) == list(range(100))
    assert not t.detected[40:50].any() and t.detected[:40].all() and t.detected[50:].all()
    assert not t.posed[40:50].any()
    np.testing.assert_allclose(t.keypoints[45, :, :2], people[45][:, :2], atol=1e-3)
    np.testing.assert_allclose(t.boxes[45], keypoint_box(people[45], FRAME), atol=1e-3)
    assert t.visible_hands_ratio == 1.0  # of the frames where landmarks were seen


def test_long_gap_splits_the_track():
    seq = [[p] for p in walk(100, 400, 160)]
    for i in range(60, 90):  # 30 missed frames > MAX_GAP
        seq[i] = []
    tracks = tracked(frames_of(*seq))
    assert [(t.start, t.end) for t in tracks] == [(0, 60), (90, 160)]


def test_short_and_small_tracks_are_dropped():
    main = walk(150, 200, 100)
    seq = [[p] for p in main]
    for i in range(20):  # a passer-by for 20 frames (< MIN_FRAMES)
        seq[i].append(person(500, 150, 60))
    for i in range(100):  # a tiny person (box < MIN_SIZE) for the whole clip
        seq[i].append(person(600, 300, 10))
    tracks = tracked(frames_of(*seq))
    assert len(tracks) == 1 and tracks[0].length == 100
    assert len(tracked(frames_of(*seq), min_frames=10, min_size=0)) == 3


def test_boxes_are_the_detectors_own():
    seq = [[p] for p in walk(300, 300, 60)]
    boxes = boxes_of(frames_of(*seq))
    boxes[30][0, :4] += 7  # one box off by a few pixels: kept as found (crops smooth)
    (t,) = track_people(boxes, FRAME)
    np.testing.assert_allclose(t.boxes[30], boxes[30][0, :4])
    assert not t.posed.any() and (t.keypoints[..., 3] == 0).all()  # no landmarks yet


def test_tracker_is_incremental_and_checks_order():
    tracker = Tracker(FRAME)
    for i, b in enumerate(boxes_of(frames_of(*[[p] for p in walk(100, 300, 60)]))):
        tracker.update(i, b)
    with pytest.raises(ValueError):
        tracker.update(10, np.zeros((0, 5), np.float32))
    (t,) = tracker.finish()
    assert t.length == 60


def test_landmarks_go_to_the_box_they_lie_in():
    left, right = walk(150, 160, 80), walk(450, 440, 80)
    poses = frames_of(*[[l, r] for l, r in zip(left, right)])
    boxes = boxes_of(poses)
    only_right = frames_of(*[[r] for r in right])  # the landmarker found only one person
    tracks = attach_poses(track_people(boxes, FRAME), only_right)
    by_x = sorted(tracks, key=lambda t: t.boxes[0, 0])
    assert not by_x[0].posed.any() and by_x[1].posed.all()
    np.testing.assert_allclose(by_x[1].keypoints[:, 0, :2], np.stack(right)[:, 0, :2])


def test_landmarks_stay_with_the_copy_that_continues_the_track():
    """The landmarker sometimes adds a misplaced second copy of a person (arms elsewhere)
    that fits the person's box better: the track keeps the landmarks that continue its own."""
    real = [person(300, 150 + i, 60) for i in range(60)]
    ghosts = []
    for k in real:
        ghost = k.copy()
        ghost[13:23, :2] += (90, -120)  # elbows, wrists and hands somewhere else
        ghosts.append(ghost)
    boxes = [np.array([[*keypoint_box(g, FRAME), 0.9]], np.float32) for g in ghosts]
    assert people.iou(boxes[5][:, :4], keypoint_box(real[5], FRAME)[None])[0, 0] > people.POSE_IOU
    poses = frames_of(*[[r] if i == 0 else ([g, r] if i % 2 else [r, g])
                        for i, (r, g) in enumerate(zip(real, ghosts))])
    (t,) = attach_poses(track_people(boxes, FRAME), poses)
    np.testing.assert_allclose(t.keypoints, np.stack(real))


def test_landmarks_are_bridged_between_finds():
    people = walk(100, 400, 200)
    poses = frames_of(*[[p] for p in people])
    sparse = [p if i % 2 == 0 and not 50 <= i < 150 else p[:0] for i, p in enumerate(poses)]
    (t,) = attach_poses(track_people(boxes_of(poses), FRAME), sparse)
    assert t.keypoints[1, 0, 3] == 1 and not t.posed[1]  # a skipped frame: interpolated
    assert (t.keypoints[49:150, 0, 3] == 1).all() and not t.posed[49:150].any()
    np.testing.assert_allclose(t.keypoints[100, :, :2], people[100][:, :2], atol=1e-3)
    assert t.landmark_share == pytest.approx(99 / 200)  # not known in the 101-frame gap


def test_comparable_people_ignores_small_background_people():
    big, other, small = [0, 0, 100, 200, .9], [300, 0, 380, 190, .8], [500, 0, 520, 40, .9]
    assert comparable_people(np.array([big, other, small], np.float32)) == 2
    assert comparable_people(np.zeros((0, 5), np.float32)) == 0


def test_box_motion_reads_the_cells_under_the_box():
    motion = np.zeros((10, 20, 40), np.uint8)
    motion[:, 5:10, 10:20] = 30  # something moves there
    motion[3] += 5  # the whole frame changes a little (light): not the person's motion
    (t,) = track_people([np.array([[160, 80, 320, 160, .9]], np.float32)] * 10, FRAME, min_frames=1)
    moving = box_motion(t, motion, (16.0, 16.0))
    np.testing.assert_allclose(moving, 30)
    (t,) = track_people([np.array([[400, 200, 600, 300, .9]], np.float32)] * 10, FRAME, min_frames=1)
    np.testing.assert_allclose(box_motion(t, motion, (16.0, 16.0)), 0)


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
        main_person(tracked(two), 100, "clip.mp4")
    no_hands = frames_of(*[[person(300, 150, 60, hands=False)] for _ in range(100)])
    with pytest.raises(PeopleError, match="hands never visible in clip.mp4.*use `--cues face`"):
        main_person(tracked(no_hands), 100, "clip.mp4")
    # seen from behind: a box and no landmarks; read from the motion in the box, not refused
    (back,) = track_people(boxes_of(no_hands), FRAME)
    assert back.landmark_share == 0 and main_person([back], 100, "clip.mp4") is back


def test_main_person_ignores_small_background_people_and_returns_the_longest():
    seq = [[p] for p in walk(150, 200, 100)]
    for i in range(100):
        seq[i].append(person(550, 120, 25))  # small person in the background
    for i in range(60):
        seq[i].append(person(400, 150, 60))  # as big, beside for 60% of the clip
    tracks = tracked(frames_of(*seq))
    with pytest.raises(PeopleError, match="2 people"):
        main_person(tracks, 100)
    tracks = tracked(frames_of(*[s[:2] for s in seq]), min_size=0)
    assert len(tracks) == 2
    main = main_person(tracks, 100)
    assert main.length == 100 and main.size > 100


def test_looks_every_few_frames_are_interpolated():
    people = walk(100, 400, 100)
    boxes = [b if i % 3 == 0 else None for i, b in enumerate(boxes_of(frames_of(*[[p] for p in people])))]
    (t,) = track_people(boxes, FRAME)
    assert list(t.frames) == list(range(0, 100)[:t.length]) and t.end == 100
    assert t.detected.sum() == 34
    np.testing.assert_allclose(t.boxes[50], keypoint_box(people[50], FRAME), atol=0.5)
    # 101 frames: the last look is at 99, the track is held to the end
    (t,) = track_people(boxes + [None], FRAME, num_frames=101)
    assert t.end == 101 and not t.detected[-1]
    np.testing.assert_array_equal(t.boxes[-1], t.boxes[-2])
    # a scene starting between looks: a person on its first look is there from its start
    (t,) = track_people([None] + boxes[1:], FRAME, first_frame=50)
    assert t.start == 50 and not t.detected[0]
    np.testing.assert_array_equal(t.boxes[0], boxes[3][0, :4])


def test_people_together_in_several_shots_add_up():
    # 3 shots of 40 frames, two people together for 15 frames in each: 45 of 120 frames
    seq = []
    for shot in range(3):
        x = 150 + 100 * shot  # a cut: everyone moves
        seq += [[p] + ([person(x + 250, 150, 60)] if i >= 25 else [])
                for i, p in enumerate(walk(x, x + 5, 40))]
    tracks = tracked(frames_of(*seq), min_frames=10)
    assert (people_per_frame(tracks, 120) == 2).sum() == 45
    with pytest.raises(PeopleError, match="2 people"):
        main_person(tracks, 120)


def test_join_fragments_resumes_a_person_after_a_long_miss():
    a = walk(200, 210, 40)
    b = walk(212, 220, 40)
    poses = frames_of(*([p] for p in a), *([[]] * 40), *([p] for p in b))  # 40 frames missed
    pieces = track_people(boxes_of(poses), FRAME, min_frames=1)
    assert len(pieces) == 2
    joined = join_fragments(pieces)
    assert len(joined) == 1 and joined[0].length == 120 and joined[0].detected.sum() == 80
    attach_poses(joined, poses)
    assert not joined[0].posed[40:80].any()  # the gap is not an observation
    far = frames_of(*([p] for p in a), *([[]] * 40), *([p] for p in walk(500, 510, 40)))
    assert len(join_fragments(track_people(boxes_of(far), FRAME, min_frames=1))) == 2
    # the detector found one person twice for a moment and the track moved to the copy:
    # the two are one person again
    box = boxes_of(frames_of([person(300, 150, 60)]))[0]
    wider = box + [-0.4 * (box[0, 2] - box[0, 0]), 0, 0, 0, 0]  # an arm stretched out
    wide = [box] * 45 + [np.concatenate([box, wider])] * 5 + [wider] * 50
    split = track_people(wide, FRAME, min_frames=1)
    assert len(split) == 2 and len(join_fragments(split)) == 1
    stray = frames_of([a[0]], *([[]] * 20), [a[0]], *([[]] * 20), [a[0]])
    assert keep_tracks(join_fragments(track_people(boxes_of(stray), FRAME, min_frames=1)),
                       min_frames=10) == []
