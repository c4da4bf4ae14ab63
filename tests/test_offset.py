"""Offset search and the built-in estimator on signals with a known lag."""

import numpy as np
import pytest

from gestsync import estimator, offset


def test_candidate_lags_every_frame_and_grid():
    assert list(offset.candidate_lags(3)) == [-3, -2, -1, 0, 1, 2, 3]
    assert list(offset.candidate_lags(50, grid=5))[:3] == [-50, -45, -40]
    assert len(offset.candidate_lags(50, grid=5)) == 21  # the authors' 21 candidates
    with pytest.raises(ValueError, match="--grid"):
        offset.candidate_lags(10, grid=0)


def test_scored_span_starts_where_every_candidate_has_sound():
    assert offset.scored_span(100, None) == (0, 100)
    assert offset.scored_span(200, 50, max_offset=50) == (50, 100)  # the authors' block
    assert offset.scored_span(100, 80, max_offset=50) == (20, 100)
    assert offset.scored_span(100, 500) == (0, 100)


def test_shifted_products_align_picture_t_with_sound_t_plus_lag():
    picture = np.arange(5.0)
    sound = np.arange(5.0) * 10
    ev = offset.shifted_products(picture, sound, np.array([-1, 0, 2]))
    assert np.isnan(ev[0, 0]) and ev[0, 1] == 1 * 0
    assert np.allclose(ev[1], picture * sound)
    assert ev[2, 0] == 0 * 20 and ev[2, 2] == 2 * 40 and np.isnan(ev[2, 3:]).all()


def test_shifted_products_of_embeddings_are_the_same_in_blocks(monkeypatch):
    g = np.random.default_rng(0)
    picture, sound = g.standard_normal((23, 4)), g.standard_normal((21, 4))
    lags = np.array([-5, 0, 3])
    whole = offset.shifted_products(picture, sound, lags, 2.0)
    monkeypatch.setattr(offset, "PRODUCT_ROWS", 4)  # 23 rows: blocks of 4 and a short one
    blocks = offset.shifted_products(picture, sound, lags, 2.0)
    assert np.array_equal(np.isnan(whole), np.isnan(blocks))
    assert np.allclose(whole[~np.isnan(whole)], blocks[~np.isnan(blocks)], rtol=0, atol=1e-12)
    assert np.allclose(whole[1, :21], 2.0 * (picture[:21] * sound).sum(1))


def test_best_lag_prefers_zero_on_ties_and_rejects_empty():
    lags = np.array([-2, -1, 0, 1, 2])
    assert offset.best_lag(lags, np.array([1, 3, 3, 3, 0.0])) == 0
    with pytest.raises(ValueError):
        offset.best_lag(lags, np.full(5, np.nan))


def _speech_like(frames, rng):
    """Bursty 25 fps signal: random syllable-rate pulses."""
    pulses = (rng.random(frames) < 0.15).astype(float)
    kernel = np.hanning(7)
    return np.convolve(pulses, kernel, mode="same")


@pytest.mark.parametrize("subwindow", [None, estimator.SUBWINDOW_FRAMES])
@pytest.mark.parametrize("true_lag", [-17, 0, 3, 20])
def test_estimator_finds_a_planted_lag(true_lag, subwindow):
    rng = np.random.default_rng(5)
    frames = 750  # 30 s
    drive = _speech_like(frames + 100, rng)
    # sound lags picture by true_lag: sound[t + L] follows picture[t]
    picture = drive[50:50 + frames] + 0.3 * rng.standard_normal(frames)
    lead = estimator.GESTURE_LEAD_FRAMES  # natural gesture lead, corrected by the estimator
    sound = drive[50 - true_lag - lead:50 - true_lag - lead + frames] + 0.3 * rng.standard_normal(frames)
    lags = offset.candidate_lags(50)
    ev = estimator.evidence(picture[None], sound[None], lags)
    span = offset.scored_span(frames, None)
    best = offset.best_lag(lags, offset.lag_scores(ev, span, subwindow))
    assert best == true_lag
    assert offset.bootstrap_agreement(ev, span, lags, best, subwindow) > 0.9


def test_plain_scores_are_the_mean_evidence_of_the_span():
    rng = np.random.default_rng(3)
    ev = rng.standard_normal((5, 120))
    ev[1, 100:] = np.nan  # a lag with no sound at the end
    assert np.allclose(offset.lag_scores(ev, (10, 110)), np.nanmean(ev[:, 10:110], axis=1))


def test_subwindow_vote_is_not_outweighed_by_one_loud_stretch():
    """Eight quiet 2 s stretches agree on lag 0; one loud stretch prefers lag 3. The plain
    mean follows the loud stretch, the sub-window vote follows the majority."""
    rng = np.random.default_rng(4)
    lags, sub = np.arange(-5, 6), estimator.SUBWINDOW_FRAMES
    ev = 0.05 * rng.standard_normal((len(lags), 9 * sub))
    ev[lags == 0, : 8 * sub] += 0.2
    ev[lags == 3, 8 * sub :] += 5.0
    span = (0, ev.shape[1])
    assert offset.best_lag(lags, offset.lag_scores(ev, span)) == 3
    assert offset.best_lag(lags, offset.lag_scores(ev, span, sub)) == 0
    assert offset.bootstrap_agreement(ev, span, lags, 0, sub) > 0.9


def test_a_flat_subwindow_abstains():
    """Nobody moving for 2 s (zero evidence) neither votes nor turns the scores into NaN."""
    rng = np.random.default_rng(6)
    lags, sub = np.arange(-3, 4), estimator.SUBWINDOW_FRAMES
    ev = rng.standard_normal((len(lags), 3 * sub))
    ev[:, sub : 2 * sub] = 0.0
    sums, counts = offset.block_totals(ev, (0, ev.shape[1]), sub)
    assert sums.shape == (len(lags), 3) and (counts[:, 1] == 0).all() and (counts[:, [0, 2]] == 1).all()
    assert np.isfinite(offset.lag_scores(ev, (0, ev.shape[1]), sub)).all()


def test_no_motion_at_all_answers_zero_with_no_confidence():
    """Every sub-window abstains (a person who never moves): offset 0, agreement 0, no error."""
    lags = offset.candidate_lags(5)
    ev = offset.shifted_products(np.zeros(200), np.ones(200), lags)
    best, agreement, _, scores = offset.span_answer(ev, (0, 200), lags, estimator.SUBWINDOW_FRAMES)
    assert best == 0 and agreement == 0.0 and np.isfinite(scores).all()


def test_confidence_is_low_for_unrelated_signals():
    rng = np.random.default_rng(1)
    frames = 250
    lags = offset.candidate_lags(50)
    a, b = _speech_like(frames, rng), _speech_like(frames, rng)
    ev = estimator.evidence(a[None], b[None], lags)
    span = (0, frames)
    best = offset.best_lag(lags, offset.lag_scores(ev, span))
    assert offset.bootstrap_agreement(ev, span, lags, best) < 0.9


def test_motion_signals_are_scale_free_and_ignore_unseen_joints():
    rng = np.random.default_rng(0)
    kp = np.zeros((40, 33, 4), np.float32)
    kp[..., :2] = 100 + rng.standard_normal((40, 33, 2)) * 3
    kp[:, 11, 0], kp[:, 12, 0] = 50, 150  # shoulders 100 px apart
    kp[..., 3] = 1.0
    small = kp.copy()
    small[..., :2] /= 2
    assert np.allclose(estimator.motion_signals(kp), estimator.motion_signals(small))
    hidden = kp.copy()
    hidden[:, list(estimator.HAND_JOINTS), 3] = 0.0
    assert np.all(estimator.motion_signals(hidden)[0] == 0)


def test_speech_signals_follow_loudness():
    rate, frames = 16000, 50
    t = np.arange(frames * 640) / rate
    audio = 0.01 * np.sin(2 * np.pi * 200 * t)
    audio[25 * 640:] *= 30  # louder second half
    energy, onset = estimator.speech_signals(audio.astype(np.float32), frames)
    assert energy.shape == (frames,)
    assert energy[30:].mean() > energy[:20].mean() + 1  # (quiet half sits at the floor)
    assert onset[24:27].max() > 5 * np.median(onset)


def _planted_evidence(lag_of_frame, frames, rng):
    """Estimator evidence for a clip whose true lag changes along it."""
    drive = _speech_like(frames + 200, rng)
    picture = drive[100:100 + frames] + 0.2 * rng.standard_normal(frames)
    lead = estimator.GESTURE_LEAD_FRAMES
    sound = np.array([drive[100 + t - lag_of_frame(t) - lead] for t in range(frames)])
    sound = sound + 0.2 * rng.standard_normal(frames)
    return estimator.evidence(picture[None], sound[None], offset.candidate_lags(50))


@pytest.mark.parametrize("subwindow", [None, estimator.SUBWINDOW_FRAMES])
def test_segments_follow_a_drifting_offset(subwindow):
    rng = np.random.default_rng(3)
    frames = 3000  # 2 minutes, offset 0 then 10 frames
    ev = _planted_evidence(lambda t: 0 if t < 1500 else 10, frames, rng)
    # a cue whose answers can be sure (the body's never are: docs/accuracy.md#confidence)
    segments = offset.segment_offsets(ev, offset.candidate_lags(50), 750, subwindow,
                                      offset.FACE_BODY_CONFIDENCE)
    assert all(s["sure"] for s in segments)
    assert [s["offset_frames"] for s in segments] == [0, 0, 10, 10]
    assert [s["start_seconds"] for s in segments] == [0, 30, 60, 90]
    d = offset.drift(segments)
    assert d["drifting"] is True and d["frames_per_minute"] > 3


def test_steady_offset_is_not_drift_and_short_tail_joins_last_segment():
    rng = np.random.default_rng(4)
    ev = _planted_evidence(lambda t: -6, 1600, rng)  # 64 s: 30 s + 34 s (4 s tail joins)
    segments = offset.segment_offsets(ev, offset.candidate_lags(50), 750, None,
                                      offset.FACE_BODY_CONFIDENCE)
    assert [s["end_seconds"] for s in segments] == [30, 64]
    assert all(s["offset_frames"] == -6 for s in segments)
    assert offset.drift(segments)["drifting"] is False
    body = offset.segment_offsets(ev, offset.candidate_lags(50), 750)  # the body's rule
    assert not any(s["sure"] for s in body) and offset.drift(body)["drifting"] is None
    with pytest.raises(ValueError, match="--segments"):
        offset.segment_offsets(ev, offset.candidate_lags(50), 10)


def _track(start, length, size, x=0.0):
    from gestsync import people

    frames = np.arange(start, start + length)
    keypoints = np.ones((length, 33, 4), np.float32)
    keypoints[..., 0] += x
    boxes = np.tile(np.array([0, 0, size, size], np.float32), (length, 1))
    return people.Track(frames, boxes, keypoints, np.ones(length, bool), (1000, 1000))


def test_a_person_seen_from_behind_moves_with_their_box():
    """No landmarks (a back, a profile): the motion read in the box stands in for them."""
    from gestsync import scan

    track = _track(0, 100, 100)
    track.posed[:] = False
    track.posed[50] = True  # one find: its landmarks held over the track, but not known
    track.motion = np.sin(np.arange(100, dtype=np.float32))
    (start, keypoints, motion, share), = scan.person_pieces([track], 100)
    assert start == 0 and len(keypoints) == 100 and np.array_equal(motion, track.motion)
    assert share == track.landmark_share == pytest.approx(0.01)
    body = estimator.person_motion(scan.person_pieces([track], 100), 100)
    assert np.allclose(body, track.motion[None])
    track.posed[::2] = True  # landmarks every 2nd frame: they are read, not the box
    assert track.landmark_share == 1.0
    assert not np.allclose(estimator.person_motion(scan.person_pieces([track], 100), 100),
                           track.motion[None])


def test_person_pieces_split_where_the_person_changes():
    from gestsync import scan

    small, big = _track(0, 30, 50, x=0.0), _track(20, 30, 200, x=500.0)  # overlap 20..29
    pieces = scan.person_pieces([small, big], 60)
    assert [(s, len(k)) for s, k, *_ in pieces] == [(0, 20), (20, 30)]
    assert np.all(pieces[1][1][..., 0] == 501.0)  # the bigger person wins the overlap
    motion = estimator.person_motion(pieces, 60)
    assert motion.shape == (3, 60)
    assert np.all(motion == 0)  # nobody moves; the jump between people is no motion


def test_person_pieces_split_at_a_shot_cut_inside_a_track():
    """The camera cuts to someone else at the same place: the box's track runs on, but
    the landmarks jump; that jump must not read as motion."""
    from gestsync import scan

    track = _track(0, 60, 200)
    track.keypoints[30:, :, 0] += 300.0  # after the cut: another body, elsewhere in the box
    assert estimator.person_motion(scan.person_pieces([track], 60), 60).max() > 0
    track.cuts = np.array([30])
    pieces = scan.person_pieces([track], 60)
    assert [(s, len(k)) for s, k, *_ in pieces] == [(0, 30), (30, 30)]
    assert np.all(estimator.person_motion(pieces, 60) == 0)
    assert list(track.sliced(slice(20, 60)).cuts) == [30]
    assert not len(track.sliced(slice(0, 30)).cuts) and not len(track.sliced(slice(30, 60)).cuts)


def _trials_of(clips, rng):
    """Trials whose agreement predicts being right, for each of `clips`."""
    from gestsync.evaluate import Trial

    trials = []
    for clip in clips:
        for i in range(60):
            right = i % 2 == 0
            agreement = float(np.clip(rng.normal(0.8 if right else 0.2, 0.1), 0.01, 0.99))
            trials.append(Trial(clip, "visible", "5s", 0, 0 if right else 30, 0.0, agreement, 125,
                                margin=2.0 if right else 0.3))
    return trials


def test_calibration_report_fits_on_fit_clips_and_checks_on_the_others():
    """The curve and the sure threshold come from the fit clips alone; the check clips'
    reliability and how often their sure answers are right are reported."""
    from gestsync.evaluate import calibration_report, fit_check_split

    names = ["clone95__Speech-to_lips__obama.mp4", "himanshu8426__testvideos__immigration_video2.mp4",
             "sync_sample_1.mp4", "sync_sample_2.mp4", "sync_sample_3.mp4"]
    assert [fit_check_split(n) for n in names] == ["fit", "fit", "check", "check", "check"]
    report = calibration_report(_trials_of(names, np.random.default_rng(7)))
    assert "fitted on" in report and "CONFIDENCE coefficients = (" in report
    rows = [line for line in report.splitlines() if line.startswith("| [")]
    low, high = float(rows[0].split("|")[3]), float(rows[-1].split("|")[3])
    assert low < 0.2 and high > 0.8  # acc@2 of the least and most confident check bins
    check_all = next(line for line in report.splitlines() if line.startswith("| check, all"))
    assert float(check_all.split("|")[2]) >= 0.95  # sure answers right on the check clips


def test_sure_threshold_is_the_lowest_confidence_that_keeps_95_percent_right():
    from gestsync.evaluate import Trial, sure_threshold

    def trial(confidence, right, clip="a.mp4"):
        return Trial(clip, "visible", "whole", 0, 0 if right else 9, confidence, 0.5, 250)

    trials = ([trial(0.9, True)] * 40 + [trial(0.8, True, "b.mp4")] * 19
              + [trial(0.8, False)] + [trial(0.5, False)] * 30)
    assert sure_threshold(trials) == 0.8  # 59 of 60 right at 0.8 or more; 59 of 90 at 0.5
    assert sure_threshold([trial(0.9, False)] * 40) is None
    assert sure_threshold([trial(0.9, True)] * 40) is None  # one clip alone promises nothing


def test_eval_report_gives_long_whole_clips_their_own_row():
    """The whole-clip accuracy target is for clips of 20 s or more: that row counts only them."""
    from gestsync.evaluate import Trial, report

    short = [Trial("short.mp4", "visible", "whole", s, s + 30, 0.1, 0.1, 200) for s in range(4)]
    long = [Trial("long.mp4", "partly", "whole", s, s, 0.9, 0.9, 600) for s in range(4)]
    text = report(short + long, {"short.mp4": 8.0, "long.mp4": 24.0})
    rows = {line.split("|")[1].strip(): line.split("|")[4].strip()
            for line in text.splitlines() if line.startswith("| whole")}
    assert rows == {"whole": "0.50", "whole, clips of 20 s or more": "1.00"}


def _two_lag_evidence(lags_in_turn, seconds=24, seed=11):
    """Evidence over the +-50 candidates of a clip whose 2 s sub-windows support one lag
    each, taken in turn from `lags_in_turn`, equally strongly (a bump 3 frames wide), in
    noise: with two lags, two near-equal peaks."""
    lags, sub = offset.candidate_lags(50), estimator.SUBWINDOW_FRAMES
    evidence = 0.1 * np.random.default_rng(seed).standard_normal((len(lags), seconds * 25))
    for i, start in enumerate(range(0, seconds * 25, sub)):
        lag = lags_in_turn[i % len(lags_in_turn)]
        evidence[:, start:start + sub] += np.exp(-0.5 * ((lags - lag) / 1.5) ** 2)[:, None]
    return evidence


def test_peak_margin_and_competing_lags_of_a_planted_curve():
    lags = np.arange(-10, 11)
    one_peak = np.exp(-0.5 * ((lags - 4) / 1.5) ** 2)
    two_peaks = one_peak + 0.97 * np.exp(-0.5 * ((lags + 6) / 1.5) ** 2)
    assert offset.peak_margin(lags, one_peak, 4) == offset.MAX_MARGIN  # no other peak
    assert offset.peak_margin(lags, two_peaks, 4) < 0.1
    picks = np.array([4] * 55 + [5] * 5 + [-6] * 30 + [-7] * 4 + [9] * 6)
    assert offset.competing_lags(lags, picks, 4) == [4, -6]  # 9: under COMPETING_SHARE
    assert offset.competing_lags(lags, np.full(200, 3), 4) == [4]


def test_near_equal_peaks_lower_the_confidence_of_every_cue():
    """The same clip length and the same lag, once alone and once with a second lag as
    strong: the bootstrap splits between them, the margin falls, and every cue's rule
    gives less confidence and names both lags."""
    lags = offset.candidate_lags(50)
    span, sub = (0, 600), estimator.SUBWINDOW_FRAMES
    alone = offset.span_details(_two_lag_evidence([-20]), span, lags, sub)
    split = offset.span_details(_two_lag_evidence([-20, 15]), span, lags, sub)
    assert alone.offset == -20 and alone.competing == [-20] and alone.agreement > 0.9
    assert set(split.competing) == {-20, 15} and split.offset in (-20, 15)
    assert split.agreement < 0.8 and split.margin < alone.margin
    for cue, rule in (("body", offset.BODY_CONFIDENCE), ("face+body", offset.FACE_BODY_CONFIDENCE),
                      ("face", offset.FACE_CONFIDENCE), ("model", offset.MODEL_CONFIDENCE)):
        a = offset.calibrated_confidence(alone.agreement, 600, rule.coefficients, alone.margin)
        b = offset.calibrated_confidence(split.agreement, 600, rule.coefficients, split.margin)
        assert b < a, cue
        assert not rule.sure(b), cue


def test_two_near_equal_peaks_get_no_corrected_copy(tmp_path):
    """End to end from the evidence: uncertain, the competing lags in the JSON and the
    summary line, and no corrected copy by default (--always-write still writes one)."""
    import json

    import synth
    from gestsync import media, sync
    from gestsync.cli import _summary_line
    from gestsync.progress import no_progress

    clip = synth.make_video(tmp_path / "clip.mp4", seconds=24.0)
    info = media.probe(clip)
    evidence = _two_lag_evidence([-20, 15])[:, :info.num_frames]
    lags = offset.candidate_lags(50)
    result = sync._decide(info, evidence, lags, None, "builtin", estimator.SUBWINDOW_FRAMES)
    assert result.uncertain and set([result.offset_frames] + result.competing_offsets) == {-20, 15}
    sync._write_outputs(result, info, tmp_path / "out", True, False, no_progress)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["offset.json", "scores.png"]
    saved = json.loads((tmp_path / "out" / "offset.json").read_text())
    assert set([saved["offset_frames"]] + saved["competing_offsets"]) == {-20, 15}
    line = _summary_line(result)
    assert "(uncertain: " in line and ("-20 or +15" in line or "+15 or -20" in line)
    assert "no corrected video written" in line
    sync._write_outputs(result, info, tmp_path / "forced", True, True, no_progress)
    assert (tmp_path / "forced" / "clip_synced.mp4").is_file()
