"""The crop pipeline (a producer thread feeding a bounded queue) and --precision."""

import queue
import threading
import time

import numpy as np
import pytest
import torch

from conftest import SAMPLES, assert_clean_failure, needs_samples, run_cli
from gestsync import pipeline, weights
from gestsync.errors import MediaError, UsageError


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "gestsync-prefetch" and t.is_alive()]


def _wait_until(condition, timeout: float = 5.0) -> bool:
    """Poll `condition` (no assertion on time: only a bound on waiting)."""
    end = time.monotonic() + timeout
    while not condition() and time.monotonic() < end:
        time.sleep(0.01)
    return condition()


def test_prefetched_yields_every_item_in_order():
    assert list(pipeline.prefetched(iter(range(100)), depth=3)) == list(range(100))
    assert list(pipeline.prefetched([], depth=1)) == []
    assert _wait_until(lambda: not _prefetch_threads())


class _CountingQueue(queue.Queue):
    """A queue that counts the puts it refused because it was full."""

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self.refused = 0

    def put(self, item, block=True, timeout=None):
        try:
            super().put(item, block, timeout)
        except queue.Full:
            self.refused += 1
            raise


def test_the_queue_is_bounded(monkeypatch):
    """A slow consumer: the producer gets at most `depth` items ahead (+1 in its hands).

    No sleep: once the queue has refused the producer a slot, the producer is holding its
    6th item, and it cannot make a 7th before the consumer frees a slot."""
    made, made_queues = [], []
    monkeypatch.setattr(pipeline, "_POLL_S", 0.01)
    monkeypatch.setattr(pipeline.queue, "Queue",
                        lambda maxsize: made_queues.append(_CountingQueue(maxsize)) or made_queues[-1])

    def producer():
        for i in range(1000):
            made.append(i)
            yield i

    stream = pipeline.prefetched(producer(), depth=4)
    assert next(stream) == 0
    [slots] = made_queues
    assert _wait_until(lambda: slots.refused >= 1)  # the producer found the queue full
    assert len(made) == 6 and slots.qsize() == 4  # 1 taken, 4 queued, 1 waiting to be put
    assert next(stream) == 1  # a slot frees: the held item goes in, one more is made
    assert _wait_until(lambda: len(made) == 7)
    stream.close()
    assert _wait_until(lambda: not _prefetch_threads())
    assert len(made) <= 8


def test_a_producer_error_is_raised_as_is_and_nothing_hangs():
    error = MediaError("cannot decode frame 3 of clip.mp4: give a readable video")

    def producer():
        yield from range(3)
        raise error

    got = []
    with pytest.raises(MediaError) as raised:
        for item in pipeline.prefetched(producer(), depth=2):
            got.append(item)
    assert raised.value is error and got == [0, 1, 2]
    assert _wait_until(lambda: not _prefetch_threads())


def test_closing_early_closes_the_source_in_its_thread():
    seen = {}

    def producer():
        try:
            yield from range(10_000)
        finally:
            seen["closed in"] = threading.current_thread().name

    stream = pipeline.prefetched(producer(), depth=2)
    assert [next(stream), next(stream)] == [0, 1]
    stream.close()
    assert seen == {"closed in": "gestsync-prefetch"}
    assert not _prefetch_threads()


def test_a_consumer_error_stops_the_producer():
    with pytest.raises(ZeroDivisionError):
        for item in pipeline.prefetched(iter(range(10_000)), depth=2):
            1 / (item - 5)
    assert _wait_until(lambda: not _prefetch_threads())


def test_bad_depth():
    with pytest.raises(ValueError, match="depth"):
        next(pipeline.prefetched([1], depth=0))


@needs_samples
def test_streamed_crops_equal_the_sequential_crops():
    """Frame for frame, the same uint8 crops (face mesh tracking state included)."""
    from gestsync import media, scan
    from gestsync.crops import masked_crops, streamed_crops

    info = media.probe(SAMPLES / "sync_sample_3.mp4")
    [track] = scan.scan_people(info, max_people=1, stride=2)[:1]
    sequential = list(masked_crops(info, track, track.start, 60))
    streamed = list(streamed_crops(info, track, start_frame=track.start, num_frames=60))
    assert len(streamed) == len(sequential) == 60
    assert all(np.array_equal(a, b) for a, b in zip(sequential, streamed))


def test_a_crop_error_reaches_the_model_caller(monkeypatch):
    """The picture side of the RGB variant streams its crops: an error while making them is
    raised to the caller, the same object, and the crop thread ends."""
    from gestsync import crops, variants

    class Net:
        def embed_video_clip(self, frames, progress):
            return [f for f in frames]

    error = MediaError("broken")

    def broken(*args):
        yield np.zeros((270, 480, 3), np.uint8)
        raise error

    monkeypatch.setattr(crops, "masked_crops", broken)
    info = type("Info", (), {"num_frames": 2})()
    with pytest.raises(MediaError) as raised:
        variants.named("rgb").clip_video(Net(), info, None, lambda *a: None)
    assert raised.value is error
    assert _wait_until(lambda: not _prefetch_threads())


# ---- --precision ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_model():
    import reference_weights
    from gestsync.model import GestSyncModel

    model = GestSyncModel()
    model.load_state_dict(reference_weights.reference_state_dict())
    return model.eval()


NO_BF16 = pytest.mark.skipif(
    not weights.bf16_arithmetic("cpu"),
    reason="this CPU has no bfloat16 instructions (AVX-512 or AMX): bf16 conv stacks run "
           "emulated, about 300 times slower (gestsync refuses --precision bf16 here)")


def test_bf16_sound_embeddings_stay_close_to_fp32(reference_model):
    """Random weights and sound (a weak check: the published weights may differ); the sound
    side runs on any CPU."""
    mel = torch.randn(200, 80, generator=torch.Generator().manual_seed(1))
    sound = reference_model.set_precision("fp32").embed_audio_clip(mel)
    sound16 = reference_model.set_precision("bf16").embed_audio_clip(mel)
    again = reference_model.set_precision("fp32").embed_audio_clip(mel)
    assert sound16.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(sound, sound16, dim=1).min() > 0.99
    assert not torch.equal(sound, sound16)  # it did run in bf16
    assert torch.equal(sound, again)  # and fp32 is as it was
    with pytest.raises(ValueError, match="fp32, bf16"):
        reference_model.set_precision("fp16")


@NO_BF16
def test_bf16_picture_embeddings_stay_close_to_fp32(reference_model):
    """Random weights and frames, as above; then fp32 again gives the same numbers."""
    frames = (torch.rand(30, 270, 480, 3, generator=torch.Generator().manual_seed(1)) * 255
              ).to(torch.uint8)
    video = reference_model.set_precision("fp32").embed_video_clip(frames)
    video16 = reference_model.set_precision("bf16").embed_video_clip(frames)
    again = reference_model.set_precision("fp32").embed_video_clip(frames)
    assert video16.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(video, video16, dim=1).min() > 0.99
    assert not torch.equal(video, video16)
    assert torch.equal(video, again)


def test_a_model_spec_checks_the_precision():
    from gestsync import weights

    with pytest.raises(UsageError, match="unknown precision 'int4'"):
        weights.ModelSpec("builtin", "cpu", "int4")
    assert weights.load(weights.ModelSpec("builtin", "cpu", "bf16")) is None  # no network: no effect


@pytest.mark.parametrize("command", ["sync", "speaker"])
def test_bad_precision_is_a_usage_error(capsys, tmp_path, command):
    out = tmp_path / "res"
    code, _, err = run_cli(capsys, command, str(tmp_path / "any.mp4"), "--precision", "fp16",
                           "--out", str(out))
    assert_clean_failure(code, err, out, "--precision")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_a_missing_cuda_device_is_a_usage_error_not_a_damaged_checkpoint():
    from gestsync.checkpoint import resolve_device

    with pytest.raises(UsageError, match="--device cuda: this machine has 0 CUDA"):
        resolve_device("cuda")
    with pytest.raises(UsageError, match="unknown --device 'gpu'"):
        resolve_device("gpu")
    assert resolve_device("cpu") == torch.device("cpu") == resolve_device(None)


@needs_samples
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_sync_on_a_missing_cuda_device_fails_cleanly(capsys, tmp_path):
    import reference_weights

    checkpoint = tmp_path / "model_rgb.pth"
    torch.save(reference_weights.published_checkpoint(reference_weights.reference_state_dict()), checkpoint)
    out = tmp_path / "res"
    code, _, err = run_cli(capsys, "sync", str(SAMPLES / "sync_sample_2.mp4"), "--checkpoint",
                           str(checkpoint), "--device", "cuda", "--out", str(out))
    assert_clean_failure(code, err, out, "--device cpu")
    assert "damaged" not in err


# ---- the people count rides along the one-person pose pass ----------------------------


@needs_samples
def test_findings_are_the_same_in_one_process_and_in_two(monkeypatch):
    """Chunks of 64 frames in two processes: the same person boxes (the detector sees each
    frame alone), landmark counts, motion map and shot changes as one process finds."""
    from gestsync import media, scan

    info = media.probe(SAMPLES / "asd_sample_2.mp4")
    one = scan.find_people(info, 2, stride=2)
    monkeypatch.setattr(scan, "CHUNK_FRAMES", 64)
    two = scan.find_people(info, 2, stride=2, workers=2)
    assert len(one.boxes) == len(two.boxes) == len(one.poses) == len(two.poses) == info.num_frames
    looks = [k for k, b in enumerate(one.boxes) if b is not None]
    assert looks == list(range(0, info.num_frames, scan.DETECT_STRIDE))
    assert all(np.allclose(a, b, atol=1e-3) for a, b in zip(one.boxes, two.boxes) if a is not None)
    assert one.counts().tolist() == two.counts().tolist()
    assert len(scan._chunks(info.num_frames, 2)) > 1
    # each stretch also decodes the frame before it: even its first frame's change is known
    assert np.array_equal(one.motion, two.motion)
    np.testing.assert_allclose(one.changes, two.changes, atol=1e-3)
    assert one.motion.shape == (info.num_frames, 360 // scan.MOTION_CELL, 640 // scan.MOTION_CELL)


def test_pose_chunks_are_even_and_a_multiple_of_the_workers():
    from gestsync.scan import CHUNK_FRAMES, _chunks

    assert [c for _, c in _chunks(3 * CHUNK_FRAMES, 2)] == [3 * CHUNK_FRAMES // 4] * 4
    assert [c for _, c in _chunks(CHUNK_FRAMES, 2)] == [CHUNK_FRAMES // 2] * 2
    assert _chunks(CHUNK_FRAMES // 5, 2) == [(0, CHUNK_FRAMES // 5)]  # too short to split
    assert _chunks(0, 2) == []
    for n in (1, 77, 1501, 15_000):
        chunks = _chunks(n, 2)
        assert sum(c for _, c in chunks) == n and chunks[0][0] == 0
        assert all(a + c == b for (a, c), (b, _) in zip(chunks, chunks[1:]))


# ---- the speaker's people stage over several processes ----------------------------------


@needs_samples
def test_parallel_pose_finds_the_same_shot_cuts(monkeypatch):
    """With pose processes, each stretch measures the change at its first frame against the
    frame before it: a cut right where a stretch begins is found, and the scenes are the
    ones one process finds (and `SceneCuts` fed every frame)."""
    from gestsync import media, scan
    from gestsync.scenes import SceneCuts

    monkeypatch.setattr(scan, "CHUNK_FRAMES", 52)  # stretches of 52: one begins at the cut
    pools = []
    real = scan._run_chunks
    monkeypatch.setattr(scan, "_run_chunks", lambda *a: pools.append(len(a[2])) or real(*a))
    info = media.probe(SAMPLES / "asd_sample_2.mp4")
    one = scan.find_people(info, 2, stride=4)
    two = scan.find_people(info, 2, stride=4, workers=2)
    assert pools == [4]  # the second call ran in processes
    assert len(one.poses) == len(two.poses) == len(two.changes) == info.num_frames
    np.testing.assert_allclose(two.changes, one.changes, atol=1e-3)
    np.testing.assert_array_equal(two.motion, one.motion)
    streamed = SceneCuts()
    for k, frame in enumerate(media.iter_frames(info, size=scan.pose_size(info))):
        streamed.feed(k, frame)
    assert two.scene_spans() == one.scene_spans() == streamed.spans(info.num_frames)
    assert one.scene_spans() == [(0, 52), (52, info.num_frames)]  # the clip's two shots


def test_a_pool_that_fails_falls_back_to_one_process(monkeypatch, tmp_path):
    import synth
    from concurrent.futures.process import BrokenProcessPool

    from gestsync import media, scan

    def broken(task, args, chunks, workers, progress, total):
        raise BrokenProcessPool("gone")

    monkeypatch.setattr(scan, "_run_chunks", broken)
    monkeypatch.setattr(scan, "_chunks", lambda frames, workers: [(0, 40), (40, frames - 40)])
    info = media.probe(synth.make_video(tmp_path / "clip.mp4", seconds=3.0, size=(160, 120)))
    found = scan.find_people(info, 1, workers=2)
    assert len(found.poses) == len(found.changes) == info.num_frames
