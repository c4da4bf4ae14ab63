"""The GestSync network and checkpoint loading, against the authors' numbers (vectors.npz).

The full 270 x 480 model is heavy on CPU (about 80 ms per conv-stack frame), so the
reference model is built once per module and the forward passes are few.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference_weights import (
    VECTORS,
    published_checkpoint,
    published_keys,
    reference_state_dict,
    reference_video,
    reference_wav,
    rel_err,
)

from gestsync.audio import log_mel, mel_windows
from gestsync.checkpoint import CONFIG_KEY, checkpoint_payload, load_model
from gestsync.errors import CheckpointError
from gestsync.model import GestSyncModel, ModelConfig, _frame_chunks, _max_pool, _space_to_depth_conv

TOL = 1e-4  # relative agreement with the authors' numbers on CPU float32


@pytest.fixture(scope="module")
def vectors():
    return np.load(VECTORS)


@pytest.fixture(scope="module")
def ref_state():
    return reference_state_dict()


@pytest.fixture(scope="module")
def untrained():
    return GestSyncModel().eval()


@pytest.fixture(scope="module")
def ref_model(ref_state, tmp_path_factory):
    """The reference weights saved in the published layout and loaded the public way."""
    path = tmp_path_factory.mktemp("ckpt") / "model_rgb.pth"
    torch.save(published_checkpoint(ref_state), path)
    return load_model(path, device="cpu")


def test_state_dict_matches_published_names_and_shapes():
    model = GestSyncModel()
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == published_keys()
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(29.2e6, rel=1e-3)


def test_loaded_model_is_eval_and_uses_loaded_positional_table(ref_model, ref_state):
    assert not ref_model.training
    assert torch.equal(ref_model.pos_encoder.pe, ref_state["pos_encoder.pe"])


def test_video_matches_reference(ref_model, vectors):
    with torch.no_grad():
        features = ref_model.video_features(reference_video())
        tokens = ref_model.tokens_from_features(features)
    assert rel_err(features, vectors["vid_feat"]) < TOL
    assert rel_err(tokens, vectors["vid_emb"]) < TOL
    assert rel_err(tokens.mean(dim=2), vectors["vid_emb_mean"]) < TOL
    with torch.inference_mode():  # BN folded into the convs, last ff_vid layer after the mean
        assert rel_err(ref_model.embed_video(reference_video()), vectors["vid_emb_mean"]) < TOL


def test_audio_matches_reference(ref_model, vectors):
    with torch.no_grad():
        ours = ref_model.embed_audio(mel_windows(log_mel(reference_wav()[0]), [0]))
        from_reference_mel = ref_model.embed_audio(mel_windows(torch.tensor(vectors["log_mel"]), [0]))
    assert ours.shape == (1, 1024)
    assert rel_err(ours, vectors["aud_emb"]) < TOL
    assert rel_err(from_reference_mel, vectors["aud_emb"]) < TOL


def test_clip_embedding_equals_every_window(ref_model):
    """Conv stack once over the clip (streamed, chunk boundaries inside windows) == per window."""
    n_frames = 28  # 4 windows; every window costs 21 conv-stack frames the slow way
    frames = np.random.default_rng(0).integers(0, 256, (n_frames, 270, 480, 3), dtype=np.uint8)
    calls = []
    clip = ref_model.embed_video_clip(iter(frames), chunk=5, progress=lambda *a: calls.append(a))
    video = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255
    windows = torch.stack([video[:, s : s + 25] for s in range(n_frames - 24)])
    with torch.no_grad():
        per_window = ref_model.embed_video(windows)
    assert clip.shape == (n_frames - 24, 1024) and clip.dtype == torch.float32
    assert rel_err(clip, per_window) < TOL
    assert calls[-1] == ("video features", n_frames, None)


def test_audio_clip_equals_every_window(ref_model):
    mel = log_mel(reference_wav()[0])[:141]  # 141 mel frames: 11 windows, one frame spare
    with torch.no_grad():
        expected = ref_model.embed_audio(mel_windows(mel, range(11)))
    clip = ref_model.embed_audio_clip(mel, batch=4)
    assert clip.shape == (11, 1024) and rel_err(clip, expected) < 1e-5


@pytest.mark.parametrize("shape, kernel, stride", [
    ((2, 64, 3, 43, 79), (1, 3, 3), (1, 2, 2)),  # the video stack's pools
    ((4, 64, 40, 50), (3, 3), (2, 2)),  # the audio stack's
    ((4, 256, 9, 5), (2, 3), (2, 2)),
    ((1, 8, 9, 11), 3, 1),
    ((1, 8, 9, 11), 1, 2),
])
def test_eval_max_pool_gives_torchs_values_and_keeps_the_layout(shape, kernel, stride):
    x = torch.randn(shape)
    pool = (torch.nn.MaxPool3d if len(shape) == 5 else torch.nn.MaxPool2d)(kernel, stride)
    layout = torch.channels_last_3d if len(shape) == 5 else torch.channels_last
    for given in (x, x.contiguous(memory_format=layout)):
        got = _max_pool(given, pool.kernel_size, pool.stride)
        assert torch.equal(got, pool(x))
        if given.is_contiguous(memory_format=layout) and not given.is_contiguous():
            assert got.is_contiguous(memory_format=layout)


@pytest.mark.parametrize("size, runs_on_blocks", [((27, 48), True), ((28, 50), False)])
def test_space_to_depth_conv_is_the_strided_conv(monkeypatch, size, runs_on_blocks):
    """The video stack's first conv (7 x 7 taps, stride 3) on 3 x 3 pixel blocks; a size
    that is no multiple of the stride takes the plain conv."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 7, *size, generator=g).contiguous(memory_format=torch.channels_last_3d)
    weight, bias = torch.randn(8, 3, 5, 7, 7, generator=g), torch.randn(8, generator=g)
    expected = torch.nn.functional.conv3d(x, weight, bias, stride=(1, 3, 3))
    channels_seen, conv3d = [], torch.nn.functional.conv3d
    monkeypatch.setattr(torch.nn.functional, "conv3d",
                        lambda x, *a, **k: channels_seen.append(x.shape[1]) or conv3d(x, *a, **k))
    got = _space_to_depth_conv(x, weight, bias, (1, 3, 3))
    assert got.shape == expected.shape and rel_err(got, expected) < 1e-5
    assert channels_seen == [27 if runs_on_blocks else 3]


def test_clip_chunks_cover_the_clip_the_same_for_every_input_kind():
    frames = np.random.default_rng(1).integers(0, 256, (17, 270, 480, 3), dtype=np.uint8)
    as_float = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255
    kinds = [frames, torch.from_numpy(frames), iter(frames), (torch.from_numpy(f) for f in frames), as_float]
    for chunk in (1, 4, 13, 100):
        expected = [as_float[:, s : s + chunk + 4] for s in range(0, 13, chunk)]
        for kind in kinds if chunk == 4 else kinds[:1]:
            blocks = list(_frame_chunks(kind, chunk))
            assert [b.shape[2] for b in blocks] == [e.shape[1] for e in expected]
            assert all(torch.equal(b[0], e) for b, e in zip(blocks, expected))


@pytest.mark.parametrize(
    "clip, message",
    [
        (np.zeros((24, 270, 480, 3), np.uint8), "at least 25"),
        (np.zeros((30, 480, 270, 3), np.uint8), "uint8 T x 270 x 480 x 3"),
        (np.zeros((30, 270, 480, 3), np.float32), "float 3 x T"),
        (iter([np.zeros((270, 480), np.uint8)]), "frame 0"),
        (iter(np.zeros((3, 270, 480, 3), np.uint8)), "fewer than 25"),
    ],
)
def test_clip_rejects_bad_input(untrained, clip, message):
    with pytest.raises(ValueError, match=message):
        untrained.embed_video_clip(clip)


def test_clip_needs_eval_mode():
    with pytest.raises(RuntimeError, match="eval"):
        GestSyncModel().train().embed_video_clip(np.zeros((25, 270, 480, 3), np.uint8))


def test_video_rejects_wrong_window_shape(untrained):
    with pytest.raises(ValueError, match="B x 3 x 25 x 270 x 480"):
        untrained.embed_video(torch.zeros(1, 3, 25, 480, 270))


def test_similarity_is_scaled_cosine():
    model = GestSyncModel()
    with torch.no_grad():
        model.logits_scale.weight.fill_(2.5)
    v, a = torch.randn(3, 1024), torch.randn(3, 1024)
    expected = 2.5 * (v * a).sum(-1) / (v.norm(dim=-1) * a.norm(dim=-1))
    assert torch.allclose(model.similarity(v, a), expected, atol=1e-5)
    assert model.similarity(v[:, None], a[None]).shape == (3, 3)  # broadcasting: all pairs


# ---- loading ------------------------------------------------------------------------------


def test_loads_bare_state_dict_and_our_format_with_config(ref_state, tmp_path):
    torch.save(ref_state, tmp_path / "bare.pth")
    assert torch.equal(load_model(tmp_path / "bare.pth", "cpu").fc.bias, ref_state["fc.bias"])

    small = GestSyncModel(ModelConfig(n_layers=1))
    torch.save(checkpoint_payload(small, global_step=3), tmp_path / "ours.pth")
    loaded = load_model(tmp_path / "ours.pth", "cpu")
    assert loaded.config == ModelConfig(n_layers=1) and len(loaded.transformer_encoder.layers) == 1


def _raises(path, *needles):
    with pytest.raises(CheckpointError) as info:
        load_model(path, "cpu")
    for needle in needles:
        assert needle in str(info.value)
    return str(info.value)


def test_missing_file(tmp_path):
    _raises(tmp_path / "nope.pth", "not found", "model_rgb.pth")


def test_text_and_truncated_files(tmp_path, ref_state):
    (tmp_path / "text.pth").write_text("hello, not a checkpoint\n")
    _raises(tmp_path / "text.pth", "cannot read", "not a file written by torch.save")
    small = tmp_path / "small.pth"
    torch.save({k: v for k, v in list(ref_state.items())[:3]}, small)
    (tmp_path / "cut.pth").write_bytes(small.read_bytes()[:300])
    _raises(tmp_path / "cut.pth", "cannot read", "truncated", "Fix:")


class _NotATensor:
    pass


def test_arbitrary_objects_are_refused(tmp_path):
    torch.save({"state_dict": {}, "thing": _NotATensor()}, tmp_path / "evil.pth")
    _raises(tmp_path / "evil.pth", "cannot read", "other than tensors", "could run code")


def test_missing_and_unexpected_keys_are_named(ref_state, tmp_path):
    state = dict(ref_state)
    del state["net_aud.conv3.weight"], state["ff_vid.2.bias"]
    state["extra.weight"] = torch.zeros(2)
    torch.save(published_checkpoint(state), tmp_path / "bad.pth")
    message = _raises(tmp_path / "bad.pth", "2 missing keys", "net_aud.conv3.weight", "ff_vid.2.bias",
                      "1 unexpected keys: extra.weight", "Fix:")  # fmt: skip
    assert "module." not in message  # reported after the prefix is stripped


def test_many_missing_keys_are_summarised(tmp_path):
    torch.save({"state_dict": {"a": torch.zeros(1)}}, tmp_path / "other.pth")
    _raises(tmp_path / "other.pth", "181 missing keys", "(176 more)", "1 unexpected keys: a")


def test_wrong_shapes_are_named(ref_state, tmp_path):
    state = dict(ref_state, **{"fc.bias": torch.zeros(2)})
    torch.save(state, tmp_path / "shape.pth")
    _raises(tmp_path / "shape.pth", "1 wrongly shaped keys: fc.bias (2,) (model: (1,))")


def test_unknown_variant_or_not_weights(tmp_path):
    torch.save({"state_dict": {}, CONFIG_KEY: {"variant": "keypoints"}}, tmp_path / "kp.pth")
    _raises(tmp_path / "kp.pth", "keypoints", "rgb")
    torch.save({"weights": 1}, tmp_path / "odd.pth")
    _raises(tmp_path / "odd.pth", "no 'state_dict'", "weights")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    _raises(tmp_path / "list.pth", "list")
