"""`speaker --model` at the speed of `sync`: the people of a scene share one decode and go
through the network together, with the numbers of one track at a time (fp32), and nothing
per track grows with the clip but its evidence.

Random weights in the published format (tests/reference_weights.py): the numbers, not the
answers, are under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SAMPLES, needs_samples
from reference_weights import reference_state_dict

from gestsync.model import GestSyncModel


@pytest.fixture(autouse=True)
def two_threads():
    """oneDNN picks its kernels by batch shape and thread count; the same bits for batches
    of several tracks and of one were measured at 2 threads (on 1 thread, a batch of sound
    windows gave other float32 roundings, about 3e-8, than a track's own), so these tests
    run at 2 whatever the machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def net():
    model = GestSyncModel()
    model.load_state_dict(reference_state_dict())
    return model.eval()


def _frames(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 270, 480, 3, generator=g) * 255).to(torch.uint8)


def _side_by_side(clips: dict, starts: dict):
    """One dict per time step, {key: frame} of the clips on it."""
    end = max(starts[k] + len(c) for k, c in clips.items())
    for t in range(end):
        yield {k: c[t - starts[k]] for k, c in clips.items() if 0 <= t - starts[k] < len(c)}


def _gathered(pieces, lengths: dict, dim: int = 1024) -> dict:
    """{key: W x dim} from the yielded (key, first window, rows), checking each window
    comes once and in order."""
    out = {k: torch.full((n - 24, dim), float("nan")) for k, n in lengths.items()}
    nxt = dict.fromkeys(lengths, 0)
    for key, first, rows in pieces:
        assert first == nxt[key], "windows out of order"
        out[key][first:first + len(rows)] = rows
        nxt[key] = first + len(rows)
    assert nxt == {k: n - 24 for k, n in lengths.items()}
    return out


def test_clips_together_equal_each_clip_alone(net):
    """Clips that start and end at different frames, through the conv stack (blocks of 36
    frames, as `speaker` runs it) and the head in shared batches: every embedding equals
    `embed_video_clip` of the clip alone, bit for bit (fp32). Head batches of 8 windows, so
    that several are full at once."""
    chunk, batch = 32, 8
    clips = {"a": _frames(80, 1), "b": _frames(62, 2), "c": _frames(45, 3)}
    starts = {"a": 0, "b": 9, "c": 30}
    lengths = {k: len(c) for k, c in clips.items()}
    steps = []
    together = _gathered(net.embed_video_clips(_side_by_side(clips, starts), lengths, chunk, batch,
                                               progress=lambda *a: steps.append(a)), lengths)
    for key, clip in clips.items():
        alone = net.embed_video_clip(iter(clip), chunk=chunk, batch=batch)
        assert torch.equal(together[key], alone), key
    assert steps[-1] == ("video features", 80, None)


def test_a_clip_that_ends_early_or_is_too_short_is_an_error(net):
    with pytest.raises(ValueError, match="fewer than 25"):
        list(net.embed_video_clips(iter([]), {"a": 24}))
    with pytest.raises(ValueError, match="ended early"):
        list(net.embed_video_clips(({"a": f} for f in _frames(26, 1)), {"a": 30}))
    with pytest.raises(ValueError, match="no length"):
        list(net.embed_video_clips(iter([{"b": _frames(1, 1)[0]}]), {"a": 30}))


class _FakeNet(GestSyncModel):
    """The model's bookkeeping with a free network: a frame's conv output is its mean
    pixel, a window's embedding the mean of its 21 outputs."""

    def video_features(self, frames: torch.Tensor) -> torch.Tensor:
        means = frames.mean(dim=(1, 3, 4))  # B x T
        return means.unfold(1, 5, 1).mean(-1)[:, None].expand(-1, 512, -1)

    def embeddings_from_features(self, features: torch.Tensor) -> torch.Tensor:
        return features.mean(dim=2).repeat(1, 2)


def test_memory_does_not_grow_with_the_clips():
    """Three people over 600 frames: every window's embedding comes out within two blocks, a
    head batch and a window of the frame that completes it, so what waits inside is bounded
    by those counts (here 104 frames), not by the clip's length."""
    net, chunk, batch = _FakeNet().eval(), 32, 16
    frame = np.zeros((270, 480, 3), np.uint8)
    lengths, read = {"a": 600, "b": 450, "c": 300}, [0]
    starts = {"a": 0, "b": 60, "c": 250}

    def frames():
        for t in range(600):
            read[0] = t + 1
            yield {k: frame for k, n in lengths.items() if starts[k] <= t < starts[k] + n}

    lag = 0
    for key, first, rows in net.embed_video_clips(frames(), lengths, chunk, batch):
        last_frame = starts[key] + first + len(rows) - 1 + 24
        lag = max(lag, read[0] - 1 - last_frame)
    assert 0 < lag <= 2 * chunk + batch + 24


def _tracks(info):
    """Four people boxes on asd_sample_1 (1280 x 720, 273 frames): three tracks that overlap
    and start apart, a fourth after a gap no track covers."""
    from gestsync.people import Track

    def track(start, end, box):
        n = end - start
        return Track(frames=np.arange(start, end), boxes=np.tile(np.float32(box), (n, 1)),
                     keypoints=np.zeros((n, 33, 4), np.float32), detected=np.ones(n, bool),
                     frame_size=(info.width, info.height))

    return [track(0, 160, (80, 90, 560, 720)), track(40, 110, (700, 60, 1180, 720)),
            track(100, 170, (400, 100, 900, 700)), track(215, 260, (650, 80, 1200, 720))]


@pytest.mark.slow
@needs_samples
def test_scene_crops_are_each_tracks_crops():
    """One decode for the scene: every track's crops, uint8 for uint8, as `masked_crops` makes
    them for the track alone (the face mesh's tracking state included)."""
    from gestsync import crops, media, people

    info = media.probe(SAMPLES / "asd_sample_1.mp4")
    tracks = _tracks(info)
    assert people.covered_spans(tracks) == [(0, 170), (215, 260)]
    got = {i: [] for i in range(len(tracks))}
    steps = 0
    for present in crops.streamed_scene_crops(info, tracks):
        steps += 1
        for i, crop in present.items():
            got[i].append(crop)
    assert steps == 170 + 45
    for i, track in enumerate(tracks):
        alone = list(crops.masked_crops(info, track, track.start, track.length))
        assert len(got[i]) == len(alone) == track.length
        assert all(np.array_equal(a, b) for a, b in zip(got[i], alone)), i


@pytest.mark.slow
@needs_samples
def test_scene_evidence_equals_one_track_at_a_time(net):
    """`speaker --model`'s evidence with the scene's people in shared decodes, sound and
    batches equals, to the last bit (fp32), the evidence of each track scored alone: its own
    crops, its own stretch of sound, `circular_evidence` of the whole embeddings at once."""
    from gestsync import media, scoring, speaker_scores
    from gestsync.audio import log_mel
    from gestsync.crops import masked_crops
    from gestsync.progress import no_progress

    info = media.probe(SAMPLES / "asd_sample_1.mp4")
    audio = media.read_audio(info)
    tracks = _tracks(info)
    cue = scoring.Network(net)
    together = cue.scene_evidence(info, audio, tracks, no_progress)
    normalize = torch.nn.functional.normalize
    for track, got in zip(tracks, together):
        video = net.embed_video_clip(masked_crops(info, track, track.start, track.length))
        span = audio[track.start * 640:track.end * 640]
        sound = net.embed_audio_clip(log_mel(span))
        scored = speaker_scores.circular_evidence(normalize(video, dim=1).numpy(),
                                                  normalize(sound, dim=1).numpy(), cue.scale)
        alone = np.full((scored.shape[0], track.length), np.nan)
        alone[:, 12:12 + scored.shape[1]] = scored
        assert np.array_equal(got, alone, equal_nan=True)


def test_a_scenes_sound_is_embedded_once_for_all_its_people(net):
    """The tracks of a stretch share one array of sound embeddings (nothing per track but
    its first window), and each track reads its own sound's numbers from it."""
    from gestsync import scoring
    from gestsync.audio import log_mel
    from gestsync.people import Track

    g = np.random.default_rng(0)
    audio = (0.1 * g.standard_normal(200 * 640)).astype(np.float32)
    info = type("Info", (), {"width": 1280, "height": 720})()
    tracks = [Track(frames=np.arange(a, b), boxes=np.zeros((b - a, 4), np.float32),
                    keypoints=np.zeros((b - a, 33, 4), np.float32), detected=np.ones(b - a, bool),
                    frame_size=(info.width, info.height))
              for a, b in [(0, 120), (30, 90), (100, 160), (170, 200)]]
    sounds = scoring.Network(net).track_sounds(audio, tracks, lambda *a: None)
    assert sounds[0].stretch is sounds[1].stretch is sounds[2].stretch
    assert sounds[3].stretch is not sounds[0].stretch  # another stretch: frames 170-199
    for track, sound in zip(tracks, sounds):
        own = net.embed_audio_clip(log_mel(audio[track.start * 640:track.end * 640]))
        own = torch.nn.functional.normalize(own, dim=1).numpy().astype(np.float64)
        assert np.array_equal(sound.rows(np.arange(len(own))), own)


def test_keypoint_model_evidence_equals_one_track_at_a_time():
    """Our keypoint variant reads no pictures, but shares the scene's sound and the streamed
    evidence: the same numbers as each track scored alone (fp32)."""
    from gestsync import scoring, speaker_scores
    from gestsync.audio import log_mel
    from gestsync.crops import crop_boxes
    from gestsync.keypoint_model import KeypointModelConfig, KeypointSyncModel, keypoint_features
    from gestsync.people import Track

    torch.manual_seed(0)
    model = KeypointSyncModel(KeypointModelConfig()).eval()
    g = np.random.default_rng(1)
    audio = (0.1 * g.standard_normal(300 * 640)).astype(np.float32)

    def track(a, b):
        points = g.uniform(0, 600, (b - a, 33, 4)).astype(np.float32)
        points[..., 3] = 1.0
        boxes = np.tile(np.float32([100, 50, 500, 650]), (b - a, 1))
        return Track(frames=np.arange(a, b), boxes=boxes, keypoints=points,
                     detected=np.ones(b - a, bool), frame_size=(1280, 720))

    tracks = [track(0, 280), track(20, 200), track(150, 300)]
    cue = scoring.Network(model)
    together = cue.scene_evidence(None, audio, tracks, lambda *a: None)
    normalize = torch.nn.functional.normalize
    for t, got in zip(tracks, together):
        video = model.embed_video_clip(keypoint_features(t.keypoints, crop_boxes(t)))
        sound = model.embed_audio_clip(log_mel(audio[t.start * 640:t.end * 640]))
        scored = speaker_scores.circular_evidence(normalize(video, dim=1).numpy(),
                                                  normalize(sound, dim=1).numpy(), cue.scale)
        alone = np.full((scored.shape[0], t.length), np.nan)
        alone[:, 12:12 + scored.shape[1]] = scored
        assert np.array_equal(got, alone, equal_nan=True)
