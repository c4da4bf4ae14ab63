"""The face cue: mouth signals, their evidence, fusion, and `--cues` end to end."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gestsync import cues, estimator, face, offset, scoring
from gestsync.errors import UsageError

SAMPLES = Path(__file__).resolve().parents[1] / ".." / "shared" / "samples"
FACE_CLIP = SAMPLES / "OpenTalker__SadTalker__WDA_KatieHill_000.mp4"
BODY_CLIP = SAMPLES / "sync_sample_1.mp4"


def synthetic_face(gaps: np.ndarray, eye_distance: float = 50.0) -> np.ndarray:
    """T x 468 x 3 landmarks: eye corners `eye_distance` apart, inner lips `gaps` apart."""
    pts = np.zeros((len(gaps), 468, 3))
    pts[:, face.EYE_CORNERS[1], 0] = eye_distance
    for upper, lower in face.INNER_LIP_PAIRS:
        pts[:, upper] = (25.0, 80.0, 0.0)
        pts[:, lower, 0] = 25.0
        pts[:, lower, 1] = 80.0 + gaps
    return pts


def test_mouth_opening_is_lip_gap_over_eye_distance():
    gaps = np.array([0.0, 5.0, 10.0, 20.0])
    assert np.allclose(face.mouth_opening(synthetic_face(gaps)), gaps / 50)
    # zoom cancels out: the same face twice as large has the same opening
    assert np.allclose(face.mouth_opening(2 * synthetic_face(gaps)), gaps / 50)


def test_mouth_opening_is_nan_without_a_face():
    pts = synthetic_face(np.array([5.0, 5.0]))
    pts[1] = np.nan
    opening = face.mouth_opening(pts)
    assert np.isfinite(opening[0]) and np.isnan(opening[1])


def test_mouth_signals_bridge_short_gaps_only():
    opening = np.linspace(0, 1, 100)
    opening[10:15] = np.nan  # short: interpolated
    opening[40:40 + face.MAX_FACE_GAP + 5] = np.nan  # long: no face there
    opening[90:] = np.nan  # the face is lost at the end
    signals, seen = face.mouth_signals(opening)
    assert signals.shape == (2, 100)
    assert seen[10:15].all() and np.allclose(signals[0, 10:15], np.linspace(0, 1, 100)[10:15])
    assert not seen[40:40 + face.MAX_FACE_GAP + 5].any() and not seen[90:].any()
    assert (signals[:, ~seen] == 0).all()
    assert np.allclose(signals[1, 20:30], 1 / 99)  # |change| per frame


def test_mouth_signals_without_any_face():
    signals, seen = face.mouth_signals(np.full(30, np.nan))
    assert not seen.any() and (signals == 0).all()


def _syllables(num_frames: int, seed: int = 0) -> np.ndarray:
    """A mouth opening that opens and closes a few times a second, irregularly."""
    rng = np.random.default_rng(seed)
    raw = rng.standard_normal(num_frames)
    smooth = np.convolve(raw, np.hanning(7), mode="same")
    return 0.3 + 0.1 * np.maximum(smooth, 0)


@pytest.mark.parametrize("true_offset", [-13, 0, 7])
def test_mouth_evidence_peaks_at_the_true_lag(true_offset):
    num_frames = 500
    signals, seen = face.mouth_signals(_syllables(num_frames))
    # the sound of each opening comes true_offset frames (plus the mouth's lead) later
    speech = np.roll(signals, true_offset + face.MOUTH_LEAD_FRAMES, axis=1)
    lags = offset.candidate_lags(50)
    evidence = face.mouth_evidence(signals, seen, speech, lags)
    best, agreement, _, _ = offset.span_answer(evidence, (0, num_frames), lags,
                                               estimator.SUBWINDOW_FRAMES)
    assert best == true_offset
    assert agreement > 0.9


def test_mouth_evidence_is_zero_where_no_face():
    num_frames = 300
    opening = _syllables(num_frames)
    opening[100:200] = np.nan
    signals, seen = face.mouth_signals(opening)
    lags = offset.candidate_lags(10)
    evidence = face.mouth_evidence(signals, seen, np.roll(signals, 3, axis=1), lags)
    assert (evidence[:, 100:200][np.isfinite(evidence[:, 100:200])] == 0).all()
    none = face.mouth_evidence(np.zeros((2, num_frames)), np.zeros(num_frames, bool),
                               signals, lags)
    assert np.nanmax(np.abs(none)) == 0


def test_fuse_and_cue_summary():
    body, mouth = np.ones((3, 10)), np.full((3, 10), 2.0)
    every = np.ones(10, bool)
    assert cues.BODY.fuse(body, mouth, every) is body
    assert (cues.FACE.fuse(body, mouth, every) == mouth).all()
    assert np.allclose(cues.FACE_BODY.fuse(body, mouth, every, weight=0.5), 2.0)
    some = np.r_[np.ones(4, bool), np.zeros(6, bool)]
    assert (cues.FACE.fuse(body, mouth, some) == np.where(some, 2.0, 1.0)).all()
    seen = np.r_[np.ones(6, bool), np.zeros(4, bool)]
    both = cues.FACE_BODY.summary(seen, weight=1.0)
    assert both == {"face": {"frames": 6, "weight": 0.375}, "body": {"frames": 10, "weight": 0.625}}
    assert cues.FACE.summary(seen) == {"face": {"frames": 6, "weight": 0.6},
                                       "body": {"frames": 4, "weight": 0.4}}
    assert cues.BODY.summary(seen) == {"body": {"frames": 10, "weight": 1.0}}
    nowhere = np.zeros(10, bool)  # no face seen: the body carried it, whatever was asked
    assert cues.FACE.summary(nowhere) == cues.FACE_BODY.summary(nowhere) == cues.BODY.summary(seen)


def test_cues_carry_what_depends_on_them():
    assert [c.name for c in cues.CHOICES] == ["body", "face+body", "face"]
    assert cues.parse("face+body") is cues.FACE_BODY and cues.parse(cues.FACE) is cues.FACE
    assert cues.BODY.needs_hands and not cues.FACE_BODY.needs_hands and not cues.FACE.needs_hands
    assert not cues.BODY.reads_face and cues.FACE_BODY.reads_face and cues.FACE.reads_face
    used_face = {"face": {"frames": 1, "weight": 1.0}}
    assert cues.FACE.confidence_rule(used_face) is offset.FACE_CONFIDENCE
    assert cues.FACE.confidence_rule({"body": {}}) is offset.BODY_CONFIDENCE  # no face seen
    assert cues.BODY.confidence_rule(None) is offset.BODY_CONFIDENCE


def test_bad_cues_value_is_one_line_and_exit_2(tmp_path):
    with pytest.raises(UsageError, match="not one of body, face\\+body, face"):
        cues.parse("lips")
    run = subprocess.run([sys.executable, "-m", "gestsync", "sync", "--cues", "lips",
                          str(tmp_path / "x.mp4")], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "--cues 'lips'" in run.stderr


def test_face_share_from_pose_keypoints():
    kp = np.zeros((4, 33, 4), np.float32)
    kp[:, :, 3] = 1.0
    kp[:, 7, :2], kp[:, 8, :2] = (100, 100), (160, 100)  # ears 60 px apart: head box 150 px
    kp[:, 2, :2], kp[:, 5, :2] = (120, 95), (140, 95)
    kp[:, 9, :2], kp[:, 10, :2] = (125, 120), (135, 120)
    assert face.face_share(kp) == 1.0
    kp[2:, 9, 3] = 0.1  # mouth not seen on half the frames
    assert face.face_share(kp) == 0.5


def _sync_json(video: Path, out: Path, *extra: str) -> dict:
    run = subprocess.run([sys.executable, "-m", "gestsync", "sync", str(video), "--json",
                          "--quiet", "--model", "builtin", "--no-video", "--out", str(out),
                          "--workers", "1", *extra], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not BODY_CLIP.exists(), reason="samples not available")
def test_default_cues_body_is_unchanged(tmp_path):
    plain = _sync_json(BODY_CLIP, tmp_path / "a")
    body = _sync_json(BODY_CLIP, tmp_path / "b", "--cues", "body")
    plain.pop("outputs"), body.pop("outputs")
    assert plain == body
    assert "cues" not in plain


@pytest.mark.slow
@pytest.mark.skipif(not FACE_CLIP.exists(), reason="samples not available")
def test_face_cue_finds_a_known_shift_of_a_talking_head(tmp_path):
    from gestsync import media

    shifted = media.write_synced(media.probe(FACE_CLIP), tmp_path / "shifted.mp4", -9)
    result = _sync_json(shifted, tmp_path / "out", "--cues", "face+body")
    assert abs(result["offset_frames"] - 9) <= 2, result["offset_frames"]
    assert result["cues"]["face"]["frames"] > 0.8 * result["num_frames"]


def test_speaker_evidence_names_whose_lips_move_with_the_sound():
    from gestsync import speaker_scores
    from gestsync.estimator import heard_signal, motion_evidence

    num_frames = 400
    rng = np.random.default_rng(3)
    talker, listener = face.mouth_signals(_syllables(num_frames, 1)), face.mouth_signals(
        _syllables(num_frames, 2))
    speech = np.roll(talker[0], face.MOUTH_LEAD_FRAMES, axis=1)
    motion = rng.standard_normal((3, num_frames))  # the same gestures for both: no help
    body = motion_evidence(motion, heard_signal(speech))
    fused = scoring.for_run(None, cues.FACE_BODY)
    evidence = [fused.track_evidence(body, signals, seen, speech)
                for signals, seen in (listener, talker)]
    decision, _, z = speaker_scores.decide_scene(evidence, [0, 0], num_frames, 1.0)
    assert decision.speaker == 1 and z[1] > z[0] + 2
    assert scoring.for_run(None, cues.BODY).track_evidence(body, *talker, speech) is body


@pytest.mark.slow
@pytest.mark.skipif(not (SAMPLES / "asd_sample_2.mp4").exists(), reason="samples not available")
def test_speaker_face_cue_names_the_woman_facing_the_camera(tmp_path):
    """asd_sample_2's reverse shot (2.07 s on): the woman on the left faces the camera and
    talks (tests/data/speakers_truth.json); her lips say so."""
    run = subprocess.run([sys.executable, "-m", "gestsync", "speaker",
                          str(SAMPLES / "asd_sample_2.mp4"), "--cues", "face+body", "--json",
                          "--quiet", "--model", "builtin", "--no-video", "--out",
                          str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.splitlines()[-1])
    scene = next(s for s in result["scenes"] if s["start_seconds"] > 2)
    track = next(t for t in result["tracks"] if t["id"] == scene["speaker"])
    centre = np.mean([(b[0] + b[2]) / 2 for b in track["boxes"]]) / 1280
    assert 0.05 <= centre <= 0.55
    assert result["cues"]["face"]["frames"] > 0


def test_bad_cues_for_speaker_and_eval_exit_2(tmp_path):
    for argv in (["speaker", "--cues", "mouth", str(tmp_path / "x.mp4")],
                 ["eval", "--cues", "mouth", "--samples", str(tmp_path)]):
        run = subprocess.run([sys.executable, "-m", "gestsync", *argv], capture_output=True,
                             text=True)
        assert run.returncode == 2, argv
        assert "--cues 'mouth' is not one of body, face+body, face" in run.stderr


def _face_only_samples() -> list[Path]:
    """The first sample of each source that MANIFEST.tsv marks as face only (talking heads,
    no hands): one per source keeps the suite short; all 9 passed when this was written."""
    manifest = SAMPLES / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    rows = [line.split("\t") for line in manifest.read_text().splitlines()[1:] if line]
    first = {}
    for r in rows:
        if len(r) > 1 and "face only" in r[1]:
            first.setdefault(tuple(r[0].split("__")[:2]), SAMPLES / r[0])
    return list(first.values())


@pytest.mark.slow
@pytest.mark.parametrize("clip", _face_only_samples() or [None], ids=lambda p: p and p.stem)
def test_face_only_clip_in_the_default_mode_points_to_the_face_cue(clip, tmp_path, capsys):
    """A talking head read with the default body cue: exit 2, one line, and the way out."""
    from conftest import assert_clean_failure, run_cli

    if clip is None:
        pytest.skip("../shared/samples absent")
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "sync", clip, "--model", "builtin", "--quiet", "--out", out)
    assert_clean_failure(code, err, out, "hands never visible")
    assert "use `--cues face`" in err
