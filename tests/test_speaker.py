"""`gestsync speaker`: scenes, voice activity, scoring and decisions on generated signals;
bad input on synthetic clips; real samples end to end (slow)."""

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import synth
from gestsync import speaker_scores as ss
from gestsync.scenes import SceneCuts, cut_spans
from conftest import SAMPLES, assert_clean_failure, needs_samples, run_cli


# ------------------------------------------------------------------------------ scenes

def test_cut_spans_cover_the_clip():
    assert cut_spans([], 10) == [(0, 10)]
    assert cut_spans([0, 4, 4, 12], 10) == [(0, 4), (4, 10)]


def test_scene_cuts_find_a_hard_cut():
    cuts = SceneCuts()
    rng = np.random.default_rng(0)
    for k in range(60):
        base = np.array([200, 40, 40] if k < 30 else [30, 60, 220], np.uint8)
        frame = np.clip(base + rng.integers(-3, 4, (36, 64, 3)), 0, 255).astype(np.uint8)
        cuts.feed(k, frame)
    assert cuts.spans() == [(0, 30), (30, 60)]
    with pytest.raises(ValueError):
        SceneCuts().feed(3, frame)


# ------------------------------------------------------------------------ voice activity

def test_voice_activity_silence_and_thread_count():
    from gestsync import vad

    threads = torch.get_num_threads()
    quiet = vad.voice_activity(np.zeros(3 * 16000, np.float32), 75)
    assert torch.get_num_threads() == threads  # importing silero must not change it
    assert quiet.speech.shape == (75,) and not quiet.speech.any()
    assert quiet.fraction(0, 75) == 0.0 and quiet.probability.shape == (75,)


# ----------------------------------------------------------------------------- scoring

def _speech(n: int, rng) -> np.ndarray:
    """A smooth random 'speech' signal, standardised."""
    x = np.convolve(rng.normal(size=n + 6), np.ones(7) / 7, "valid")
    return (x - x.mean()) / x.std()


def test_null_shifts_and_window_means():
    assert len(ss.null_shifts(20)) == 0
    shifts = ss.null_shifts(200)
    assert shifts.min() >= ss.NULL_MIN_SHIFT and shifts.max() <= 200 - ss.NULL_MIN_SHIFT
    assert len(shifts) <= ss.NULL_SHIFTS
    x = np.arange(10, dtype=float)[None]
    m = ss.window_means(x, 4)  # frame t averages t-2 .. t+1, fewer at the ends
    assert m[0, 0] == pytest.approx(np.mean([0, 1]))
    assert m[0, 5] == pytest.approx(np.mean([3, 4, 5, 6]))
    assert m[0, 9] == pytest.approx(np.mean([7, 8, 9]))
    x[0, 5] = np.nan
    assert ss.window_means(x, 4)[0, 5] == pytest.approx(np.mean([3, 4, 6]))


def _scene(rng, n=250, people=3, speaker=1, coupling=0.6):
    sound = _speech(n, rng)
    evidence = []
    for i in range(people):
        motion = rng.normal(size=n)
        if i == speaker:
            motion = coupling * sound + (1 - coupling) * motion
        evidence.append(ss.circular_evidence(motion, sound))
    return evidence


def test_decide_scene_finds_the_speaker():
    rng = np.random.default_rng(1)
    ev = _scene(rng)
    decision, scores, z = ss.decide_scene(ev, [0, 0, 0], 250, speech_fraction=0.9)
    assert decision.speaker == 1 and decision.reason == ss.SPEAKING
    assert decision.raw_confidence > 0.9
    assert decision.confidence == pytest.approx(
        float(ss.calibrated(decision.raw_confidence, 3, "scene", False)), abs=1e-3)
    assert scores.argmax() == 1 and z[1] > 3


def test_two_people_close_make_an_unsure_answer_naming_both():
    rng = np.random.default_rng(4)
    sound = _speech(250, rng)
    common = rng.normal(size=250)  # both follow the sound equally: the top two are close
    ev = [ss.circular_evidence(0.5 * sound + 0.5 * (common + rng.normal(size=250) * 0.3), sound)
          for _ in range(2)]
    decision, _, _ = ss.decide_scene(ev, [0, 0], 250, speech_fraction=0.9)
    assert decision.unsure and decision.competing == [1 - decision.speaker]
    clear, _, _ = ss.decide_scene(_scene(rng), [0, 0, 0], 250, speech_fraction=0.9)
    assert not clear.unsure and clear.competing == []


def test_cues_that_disagree_make_an_unsure_answer_with_a_lower_confidence():
    rng = np.random.default_rng(5)
    ev = _scene(rng, speaker=1)
    body_agrees = ss.scene_means(_scene(rng, speaker=1))
    body_differs = ss.scene_means(_scene(rng, speaker=2))
    agree, _, _ = ss.decide_scene(ev, [0, 0, 0], 250, 0.9, body_means=body_agrees)
    differ, _, _ = ss.decide_scene(ev, [0, 0, 0], 250, 0.9, body_means=body_differs)
    assert agree.speaker == differ.speaker == 1
    assert not agree.unsure and agree.body_names is None
    assert differ.unsure and differ.body_names == 2
    assert differ.confidence < agree.confidence  # the same evidence, calibrated lower


def test_decide_scene_nobody_and_off_screen():
    rng = np.random.default_rng(2)
    scenes = [_scene(rng, people=1, speaker=None) for _ in range(20)]
    decisions = [ss.decide_scene(ev, [0], 250, 0.9, allow_offscreen=True)[0] for ev in scenes]
    assert np.mean([d.reason == ss.OFF_SCREEN for d in decisions]) >= 0.7  # about 0.84 expected
    assert all(d.speaker is None for d in decisions if d.reason == ss.OFF_SCREEN)
    # by default the lone visible person is named, with a confidence that says it is a guess
    forced = [ss.decide_scene(ev, [0], 250, 0.9)[0] for ev in scenes]
    assert all(d.speaker == 0 and d.reason == ss.SPEAKING for d in forced)
    assert np.mean([d.confidence for d in forced]) < 0.5
    decision, _, _ = ss.decide_scene(_scene(rng), [0, 0, 0], 250, speech_fraction=0.05)
    assert decision.reason == ss.NO_SPEECH and decision.confidence == pytest.approx(0.95)
    decision, _, _ = ss.decide_scene([], [], 250, speech_fraction=0.9)
    assert decision.reason == ss.NO_PERSON


def test_per_frame_decisions_follow_turns():
    rng = np.random.default_rng(3)
    n = 300
    sound = _speech(n, rng)
    a, b = rng.normal(size=n), rng.normal(size=n)
    a[:150] += 2 * sound[:150]  # a speaks first, b second
    b[150:] += 2 * sound[150:]
    ev = [ss.circular_evidence(a, sound), ss.circular_evidence(b, sound)]
    z = ss.frame_z(ev, [0, 0], n, context=50)
    speech = np.ones(n, bool)
    speech[-20:] = False
    picks, confidence, _ = ss.decide_frames(z, speech, np.where(speech, 0.9, 0.1))
    assert np.mean([p == 0 for p in picks[20:130]]) > 0.9
    assert np.mean([p == 1 for p in picks[170:270]]) > 0.9
    assert picks[-10:] == [None] * 10 and confidence[-1] == pytest.approx(0.9)


def test_frames_of_a_scene_without_people_raise_no_warning():
    """A scene where nobody is tracked: every speech frame is "nobody", silently (a
    RuntimeWarning from casting -inf once reached every --per-frame run)."""
    import warnings

    speech = np.r_[np.ones(30, bool), np.zeros(20, bool)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for allow in (False, True):
            picks, confidence, _ = ss.decide_frames(np.zeros((0, 50)), speech,
                                                    np.where(speech, 0.8, 0.3), allow)
            assert picks == [None] * 50
            assert confidence[-1] == pytest.approx(0.7)


def test_frame_z_places_tracks_in_the_scene():
    rng = np.random.default_rng(4)
    ev = ss.circular_evidence(rng.normal(size=80), rng.normal(size=80))
    z = ss.frame_z([ev], [30], 120, context=25)
    assert np.isnan(z[0, :30]).all() and np.isnan(z[0, 110:]).all() and np.isfinite(z[0, 30:110]).all()


# ---------------------------------------------------------------------------- bad input

@pytest.fixture
def out(tmp_path):
    return tmp_path / "results"


def test_no_person(capsys, tmp_path, out):
    clip = synth.make_video(tmp_path / "shapes.mp4", seconds=3.0, size=(320, 240))
    code, _, err = run_cli(capsys, "speaker", str(clip), "--out", str(out), "--quiet",
                        "--scene-threshold", "1000")  # the test pattern flickers: no cuts
    assert_clean_failure(code, err, out, "no person")


def test_no_scene_long_enough(capsys, tmp_path, out):
    clip = synth.make_video(tmp_path / "shapes.mp4", seconds=3.0, size=(320, 240))
    code, _, err = run_cli(capsys, "speaker", str(clip), "--out", str(out), "--quiet",
                        "--min-track-frames", "100", "--scene-threshold", "1000")
    assert_clean_failure(code, err, out, "no scene")


def test_bad_input_as_in_sync(capsys, tmp_path, out):
    code, _, err = run_cli(capsys, "speaker", str(tmp_path / "nope.mp4"), "--out", str(out), "--quiet")
    assert_clean_failure(code, err, out, "does not exist")
    clip = synth.make_video(tmp_path / "quiet.mp4", seconds=3.0, silent=True)
    code, _, err = run_cli(capsys, "speaker", str(clip), "--out", str(out), "--quiet")
    assert_clean_failure(code, err, out, "silent")
    clip = synth.make_video(tmp_path / "tiny.mp4", seconds=1.0)
    code, _, err = run_cli(capsys, "speaker", str(clip), "--out", str(out), "--quiet")
    assert_clean_failure(code, err, out, "longer clip")
    clip = synth.make_video(tmp_path / "c.mp4", seconds=3.0)
    code, _, err = run_cli(capsys, "speaker", str(clip), "--context-frames", "0", "--out", str(out),
                        "--quiet")
    assert_clean_failure(code, err, out, "--context-frames")


# -------------------------------------------------------------------------------- video

def test_speaker_video_keeps_timing_and_sound(tmp_path):
    from gestsync import media
    from gestsync.render import write_speaker_video
    from gestsync.speaker import SceneSpeakers, SpeakerResult, TrackSpeaker

    clip = synth.make_video(tmp_path / "c.mp4", seconds=2.0, fps=30, size=(160, 120), vfr=True)
    info = media.probe(clip)
    box = [[20, 20, 80, 100]] * info.num_frames
    result = SpeakerResult(
        video=str(clip), method="builtin", num_frames=info.num_frames, duration_seconds=2.0,
        per_frame=False, context_frames=None,
        scenes=[SceneSpeakers(0, 0, info.num_frames, 0.0, 2.0, 1.0, [0], 0, 1.0, ss.SPEAKING)],
        tracks=[TrackSpeaker(0, 0, 0, info.num_frames, 0.3, 2.5, box)])
    path = write_speaker_video(info, result, tmp_path / "out.mp4")
    with av.open(str(clip)) as src, av.open(str(path)) as dst:
        src_times = [f.time for f in src.decode(video=0)]
        dst_frames = list(dst.decode(video=0))
        assert [round(f.time, 3) for f in dst_frames] == [round(t, 3) for t in src_times]
        assert dst.streams.audio[0].codec_context.name == "aac"
        rgb = dst_frames[10].to_ndarray(format="rgb24")
        assert rgb[20:100, 20:24, 1].mean() > 150  # the green speaker box is drawn


def test_a_low_score_on_the_named_speaker_says_why():
    from gestsync.render import speaker_label

    assert speaker_label("#1 +0.12 (z +1.4)", 0.12, True) == "SPEAKING #1 +0.12 (z +1.4)"
    assert speaker_label("#8 -0.06 (z -0.5)", -0.06, True) == (
        "SPEAKING now #8 -0.06 (z -0.5) over the whole track")
    assert speaker_label("#0 -0.20 (z -1.2)", -0.2, False) == (
        "SPEAKING #0 -0.20 (z -1.2), best of low scores")
    assert speaker_label("#2 n/a", None, False) == "SPEAKING #2 n/a"
    assert speaker_label("#2 +0.30", 0.3, False, unsure=True) == "SPEAKING? #2 +0.30"
    assert speaker_label("#2 +0.30", 0.3, True, unsure=True) == "SPEAKING #2 +0.30"


# ------------------------------------------------------------------------ real samples

TRUTH = json.loads((Path(__file__).parent / "data" / "speakers_truth.json").read_text())


def _labelled_scenes(d: dict, width: int) -> list[tuple[dict, dict, list[int]]]:
    """(truth, scene, ids of the tracks whose centre lies in the truth's range) for every
    labelled scene of `gestsync speaker --json` output `d` (frame `width` in pixels)."""
    out = []
    for truth in TRUTH[Path(d["video"]).name]:
        if truth.get("per_frame"):
            continue
        middle = (truth["start"] + truth["end"]) / 2
        scene = next(s for s in d["scenes"] if s["start_seconds"] <= middle < s["end_seconds"])
        lo, hi = truth["speaker_x"]
        inside = [t["id"] for t in d["tracks"] if t["scene"] == scene["index"]
                  and lo <= np.median(np.array(t["boxes"])[:, [0, 2]]) / width <= hi]
        out.append((truth, scene, inside))
    return out


@pytest.fixture(scope="module")
def sitcom(tmp_path_factory):
    """asd_sample_2 through the command line (built-in, per frame): its exit code, JSON and
    folder, and the warnings raised from gestsync's own code."""
    import contextlib
    import io
    import warnings

    from gestsync.cli import main

    out = tmp_path_factory.mktemp("sitcom") / "res"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["speaker", str(SAMPLES / "asd_sample_2.mp4"), "--out", str(out), "--quiet",
                     "--json", "--per-frame", "--context-frames", "25", "--model", "builtin"])
    ours = [w for w in caught if "gestsync" in Path(w.filename).parts]
    return code, json.loads(stdout.getvalue()), out, ours


@pytest.mark.slow
@needs_samples
def test_sitcom_two_scenes_end_to_end(sitcom):
    code, d, out, warned = sitcom
    assert code == 0
    assert not warned, [f"{w.filename}:{w.lineno}: {w.message}" for w in warned]
    assert json.loads((out / "speakers.json").read_text()) == d
    assert [(s["start_frame"], s["end_frame"]) for s in d["scenes"]][0] == (0, 52)  # cut at 2.07 s
    assert d["scenes"][-1]["end_frame"] == d["num_frames"]
    for s in d["scenes"]:  # speech in both scenes and people in view: someone is named
        assert s["reason"] == "speaking" and s["speaker"] in s["track_ids"]
        assert len(s["frame_speakers"]) == s["end_frame"] - s["start_frame"]
        assert set(s["frame_speakers"]) <= set(s["track_ids"]) | {None}
        assert 0 <= s["confidence"] <= 1
    for t in d["tracks"]:
        assert len(t["boxes"]) == t["end_frame"] - t["start_frame"]
        x0, y0, x1, y1 = np.array(t["boxes"]).T
        assert (x1 > x0).all() and (y1 > y0).all() and x1.max() <= 1280 and y1.max() <= 720
    video = out / "asd_sample_2_speakers.mp4"
    with av.open(str(video)) as c:
        assert c.streams.video[0].width == 1280 and c.streams.audio


@pytest.mark.slow
@needs_samples
def test_sitcom_both_people_tracked_in_both_scenes(sitcom):
    """The woman in profile from behind (first shot) and the man with his back to the
    camera (second shot) are found too: the person detector needs no face."""
    _, d, _, _ = sitcom
    for s in d["scenes"]:
        tracks = [t for t in d["tracks"] if t["scene"] == s["index"]]
        assert len(tracks) == 2
        centres = sorted(np.median(np.array(t["boxes"])[:, [0, 2]]) / 1280 for t in tracks)
        assert centres[0] < 0.5 < centres[1]  # one person each side
        assert all(t["end_frame"] - t["start_frame"] == s["end_frame"] - s["start_frame"]
                   for t in tracks)  # in view for the whole shot


@pytest.mark.slow
@needs_samples
def test_sitcom_second_shot_the_woman_speaks(sitcom):
    _, d, _, _ = sitcom
    _, scene, inside = _labelled_scenes(d, 1280)[1]
    assert len(inside) == 1 and scene["speaker"] in inside
    shares = [f for f in scene["frame_speakers"] if f is not None]
    assert np.mean([f in inside for f in shares]) > 0.5


@pytest.mark.slow
@needs_samples
@pytest.mark.xfail(strict=True, reason="2 s shot, the woman seen from behind: the built-in "
                   "estimator names the listening man (docs/accuracy.md); a fix makes this "
                   "pass, and then this mark must go")
def test_sitcom_first_shot_the_woman_speaks(sitcom):
    _, d, _, _ = sitcom
    _, scene, inside = _labelled_scenes(d, 1280)[0]
    assert len(inside) == 1 and scene["speaker"] in inside


def _frame_agreement(d: dict, width: int) -> list[float]:
    """Per labelled per-frame stretch: the share of its speech frames given to a track whose
    centre lies in the truth's range (`gestsync speaker --per-frame` output `d`)."""
    shares = []
    for truth in TRUTH[Path(d["video"]).name]:
        if not truth.get("per_frame"):
            continue
        lo, hi = truth["speaker_x"]
        inside = {t["id"] for t in d["tracks"]
                  if lo <= np.median(np.array(t["boxes"])[:, [0, 2]]) / width <= hi}
        picks = []
        for s in d["scenes"]:
            for k, who in enumerate(s["frame_speakers"]):
                if who is not None and truth["start"] <= (s["start_frame"] + k) / 25 < truth["end"]:
                    picks.append(who in inside)
        shares.append(float(np.mean(picks)))
    return shares


@pytest.fixture(scope="module")
def interview():
    """The split-screen interview, per frame (built-in): agreement per labelled stretch."""
    from gestsync.speaker import find_speakers

    video = SAMPLES / "facebookresearch__VisualVoice__interview.mp4"
    d = find_speakers(video, model="builtin", per_frame=True, write_video=False).to_dict()
    return _frame_agreement(d, 1280)


@pytest.mark.slow
@needs_samples
def test_interview_the_answering_guest_speaks(interview):
    assert interview[1] > 0.5  # most frames of the guest's answer go to the guest


@pytest.mark.slow
@needs_samples
@pytest.mark.xfail(strict=True, reason="the host's question goes to the guest, who moves more "
                   "(docs/accuracy.md); a fix makes this pass, and then this mark must go")
def test_interview_the_asking_host_speaks(interview):
    assert interview[0] > 0.5


@pytest.fixture(scope="module")
def talk_show():
    """asd_sample_1 through `find_speakers` (built-in): its JSON and the labelled scene."""
    from gestsync.speaker import find_speakers

    d = find_speakers(SAMPLES / "asd_sample_1.mp4", model="builtin", write_video=False).to_dict()
    [(_, scene, inside)] = _labelled_scenes(d, 1280)
    return d, scene, inside


@pytest.mark.slow
@needs_samples
def test_talk_show_both_people_tracked(talk_show):
    _, scene, inside = talk_show
    assert len(scene["track_ids"]) == 2 and len(inside) == 1
    assert scene["reason"] == "speaking" and scene["speaker"] in scene["track_ids"]


@pytest.mark.slow
@needs_samples
def test_talk_show_the_gesturing_guest_speaks(talk_show):
    _, scene, inside = talk_show
    assert scene["speaker"] in inside


@pytest.mark.slow
@needs_samples
def test_checkpoint_scores_every_track(tmp_path, monkeypatch):
    """--checkpoint path on a real clip with a small random model: runs, and each track's
    score is a scaled cosine (|score| <= the logit scale, 1 here). The published model reads
    pixels, so no landmarker is made."""
    from gestsync import scan
    from gestsync.checkpoint import checkpoint_payload
    from gestsync.model import GestSyncModel, ModelConfig
    from gestsync.speaker import find_speakers

    def no_landmarker(*args, **kwargs):
        raise AssertionError("the published model's people stage asked for landmarks")

    monkeypatch.setattr(scan, "PoseDetector", no_landmarker)
    torch.manual_seed(0)
    path = tmp_path / "small.pth"
    torch.save(checkpoint_payload(GestSyncModel(ModelConfig(n_layers=1))), path)
    result = find_speakers(SAMPLES / "asd_sample_2.mp4", checkpoint=path, device="cpu",
                           per_frame=True)
    assert result.method == "model" and result.tracks
    for t in result.tracks:
        assert t.score is not None and abs(t.score) <= 1.0
    assert all(s.frame_speakers is not None for s in result.scenes)


def _side_by_side(left: Path, right: Path, out: Path, sound_of: Path, tile=(480, 270)) -> Path:
    """A composite clip: two clips' pictures side by side (25 fps), one clip's sound."""
    from gestsync import media

    infos = [media.probe(p) for p in (left, right)]
    frames = min(i.num_frames for i in infos)
    audio = media.read_audio(media.probe(sound_of), num_frames=frames)
    with av.open(str(out), "w") as c:
        vs = c.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        vs.width, vs.height, vs.pix_fmt = 2 * tile[0], tile[1], "yuv420p"
        streams = [media.iter_frames(i, size=tile, num_frames=frames) for i in infos]
        for pair in zip(*streams):
            c.mux(vs.encode(av.VideoFrame.from_ndarray(np.hstack(pair), format="rgb24")))
        c.mux(vs.encode(None))
    return _add_sound(out, audio)


def _add_sound(video: Path, audio: np.ndarray) -> Path:
    """Rewrite `video` with 16 kHz mono `audio` as its AAC sound."""
    out = video.with_name(video.stem + "_av.mp4")
    with av.open(str(video)) as src, av.open(str(out), "w") as dst:
        vin = src.streams.video[0]
        vout = dst.add_stream_from_template(vin)
        aout = dst.add_stream("aac", rate=16000, layout="mono")
        for packet in src.demux(vin):
            if packet.size:
                packet.stream = vout
                dst.mux(packet)
        for start in range(0, len(audio), 1024):
            frame = av.AudioFrame.from_ndarray(audio[None, start:start + 1024], format="flt",
                                               layout="mono")
            frame.sample_rate, frame.pts = 16000, start
            dst.mux(aout.encode(frame))
        dst.mux(aout.encode(None))
    return out


@pytest.mark.slow
@needs_samples
def test_composite_two_people_the_kept_sound_speaks(tmp_path):
    """sync_sample_3 (left) and an Obama speech (right) side by side, Obama's sound kept:
    both people are tracked and Obama (right) is chosen. On the signal-level protocol this
    pair has a wide margin (z 2.1 against -1.2), so the test checks the whole pipeline
    (composite picture, detection, tracking, scoring) rather than a coin flip."""
    from gestsync.speaker import find_speakers

    obama = SAMPLES / "clone95__Speech-to_lips__obama.mp4"
    clip = _side_by_side(SAMPLES / "sync_sample_3.mp4", obama, tmp_path / "pair.mp4", obama)
    result = find_speakers(clip, max_people=2)
    assert len(result.scenes) == 1
    scene = result.scenes[0]
    assert len(scene.track_ids) == 2
    right = max(result.tracks, key=lambda t: np.mean(t.boxes, axis=0)[0])
    assert scene.speaker == right.id and scene.reason == "speaking"


# ------------------------------------------------------------------ composite protocol

def _clip(name: str, rng, n: int = 200):
    """A generated clip whose motion follows its own speech."""
    from gestsync.evaluate_speaker import ClipSignals

    speech = np.stack([_speech(n, rng), _speech(n, rng)])
    motion = np.stack([np.roll(speech[0], -2) + 0.5 * rng.normal(size=n)] * 3)
    voiced = np.ones(n, bool)
    return ClipSignals(name, motion, speech, voiced, np.full(n, 0.9))


def test_composite_protocol_on_generated_clips():
    from gestsync.evaluate_speaker import report, run_protocol

    rng = np.random.default_rng(5)
    clips = [_clip(f"c{i}", rng) for i in range(3)]
    trials = run_protocol(clips, sizes=(1, 2, 3))
    pairs = [t for t in trials if t.people == 2 and t.window == "whole"]
    assert len(pairs) == 6  # 3 pairs x which one speaks
    assert np.mean([t.forced == t.speaker for t in pairs]) == 1.0
    assert np.mean([t.correct for t in trials if t.people == 3]) > 0.8
    off = [t for t in trials if t.people == 1 and t.speaker is None and t.window == "whole"]
    assert len(off) == 6 and np.mean([t.correct for t in off]) > 0.5
    text = report(trials)
    assert "| 2 (whole, chance 0.50) |" in text and "off-screen" in text


def test_eval_speaker_protocol_bad_people(capsys):
    code, _, err = run_cli(capsys, "eval", "--protocol", "speaker", "--people", "x")
    assert code == 2 and "--people" in err


def test_landmarks_are_sought_only_where_the_cue_reads_them():
    """Every frame for the built-in estimator and where the face is sought in the head box
    that landmarks give; never where the network reads pixels only (the published model)."""
    from gestsync import cues, scan, scoring
    from gestsync.model import GestSyncModel, ModelConfig
    from gestsync.speaker import _landmark_stride

    net = GestSyncModel(ModelConfig(n_layers=1)).eval()

    def stride(net, cue):
        return _landmark_stride(scoring.for_run(net, cues.parse(cue)))

    assert stride(None, "body") == stride(None, "face") == scan.SPEAKER_POSE_STRIDE == 1
    assert stride(net, "body") is None
    assert stride(net, "face+body") == 1


def test_no_landmarks_asked_no_landmarker_made(monkeypatch, tmp_path):
    from gestsync import media, scan

    def no_landmarker(*args, **kwargs):
        raise AssertionError("a landmarker was made")

    monkeypatch.setattr(scan, "PoseDetector", no_landmarker)
    info = media.probe(synth.make_video(tmp_path / "v.mp4", seconds=1.0, size=(160, 120)))
    found = scan.find_people(info, 2, stride=None)
    assert len(found.poses) == info.num_frames and all(len(p) == 0 for p in found.poses)
    assert sum(b is not None for b in found.boxes) == -(-info.num_frames // scan.DETECT_STRIDE)
    with pytest.raises(ValueError, match="pose stride >= 1"):
        scan.find_people(info, 2, stride=0)


def test_cached_clip_signals_are_reused_only_for_their_strides(tmp_path, monkeypatch):
    """`--cache`: a clip's people stage made with other strides is made again, with the
    strides asked for (`speaker`'s by default); one made with the same strides is reused."""
    from gestsync import evaluate_speaker as es, scan

    made = []

    def people_stage(clip, progress, cues, strides):
        made.append(strides)
        return {"motion": np.zeros((3, 100)), "audio": np.zeros(16000 * 4, np.float32),
                "strides": np.array(strides)}

    monkeypatch.setattr(es, "_people_stage", people_stage)
    clip = tmp_path / "c.mp4"
    es.clip_signals(clip, 0, scan.no_progress, tmp_path, strides=(2, 10))
    es.clip_signals(clip, 0, scan.no_progress, tmp_path, strides=(2, 10))
    es.clip_signals(clip, 0, scan.no_progress, tmp_path)
    es.clip_signals(clip, 0, scan.no_progress, tmp_path)
    assert made == [(2, 10), (scan.SPEAKER_POSE_STRIDE, scan.DETECT_STRIDE)]


def test_labels_of_boxes_that_share_a_corner_do_not_cover_each_other():
    from gestsync.render import _free_place

    placed = [(10, 10, 50, 20)]
    placed.append(_free_place(30, 15, 50, 20, placed))
    assert placed[-1] == (30, 35, 50, 20)  # moved below the first
    placed.append(_free_place(20, 10, 50, 20, placed))
    assert placed[-1] == (20, 70, 50, 20)  # below both, a label height at a time
    assert _free_place(100, 10, 50, 20, placed) == (100, 10, 50, 20)  # free: stays


def test_an_unsure_scene_says_why_in_the_summary_line():
    from gestsync.cli import _speaker_summary

    scene = dict(index=0, start_seconds=0.0, end_seconds=6.2, track_ids=[1, 2, 3], speaker=2,
                 confidence=0.55, reason="speaking", unsure=True, competing=[1], body_names=None)
    result = {"video": "talk.mp4", "method": "builtin", "scenes": [scene]}
    assert _speaker_summary(result).endswith("0.0-6.2 s: #2 (0.55, unsure: #2 or #1)")
    scene.update(competing=[], body_names=3)
    assert _speaker_summary(result).endswith("#2 (0.55, unsure: the body alone names #3)")
    scene.update(unsure=False, body_names=None)
    assert _speaker_summary(result).endswith("0.0-6.2 s: #2 (0.55)")
