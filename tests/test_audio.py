"""Audio features: mel filterbank vs librosa, log-mel vs the authors' numbers, windows."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from reference_weights import VECTORS, reference_wav, rel_err

from gestsync import audio


def test_constants_are_consistent():
    assert (audio.SAMPLE_RATE, audio.FPS, audio.N_FFT, audio.N_MELS) == (16000, 25, 512, 80)
    assert (audio.WIN_LENGTH, audio.HOP_LENGTH, audio.F_MAX) == (320, 160, 8000)
    assert audio.MEL_PER_FRAME == 4
    assert audio.MEL_WINDOW == 100
    assert audio.SAMPLES_PER_FRAME == 640


def test_filterbank_matches_librosa():
    librosa = pytest.importorskip("librosa")
    ours = audio.mel_filterbank().numpy()
    theirs = librosa.filters.mel(sr=16000, n_fft=512, n_mels=80, fmin=0.0, fmax=8000.0)
    assert ours.shape == (80, 257) and ours.dtype == np.float32
    assert rel_err(ours, theirs) < 1e-4


def test_mel_scale_round_trip():
    hz = np.array([0.0, 100.0, 999.0, 1000.0, 1001.0, 4000.0, 8000.0])
    np.testing.assert_allclose(audio.mel_to_hz(audio.hz_to_mel(hz)), hz, rtol=1e-12, atol=1e-9)
    assert audio.hz_to_mel(1000.0) == pytest.approx(15.0)


def test_log_mel_matches_reference():
    mel = audio.log_mel(reference_wav()[0])
    assert mel.shape == (300, 80) and mel.dtype == torch.float32
    assert rel_err(mel, np.load(VECTORS)["log_mel"]) < 1e-4


@pytest.mark.parametrize("chunk", [1, 7, 2000])
def test_log_mel_in_chunks_is_the_centred_stft_of_the_whole_clip(monkeypatch, chunk):
    """The STFT a stretch at a time (bounded memory) gives the numbers of one centred STFT
    over the whole waveform, the last frame dropped."""
    wav = torch.from_numpy(np.random.default_rng(4).standard_normal(16000 + 37).astype(np.float32) * 0.1)
    window = torch.hann_window(audio.WIN_LENGTH, periodic=True)
    spec = torch.stft(wav, audio.N_FFT, hop_length=audio.HOP_LENGTH, win_length=audio.WIN_LENGTH,
                      window=window, center=True, pad_mode="reflect", return_complex=True)
    expected = torch.log(audio.mel_filterbank() @ spec.abs()[:, :-1] + audio.LOG_EPS).T
    monkeypatch.setattr(audio, "MEL_CHUNK_FRAMES", chunk)
    got = audio.log_mel(wav)
    assert got.shape == expected.shape == (100, 80)
    assert torch.allclose(got, expected, rtol=0, atol=1e-5)


def test_log_mel_accepts_numpy_float64():
    wav = reference_wav()[0]
    from_numpy = audio.log_mel(wav.double().numpy())
    assert torch.allclose(from_numpy, audio.log_mel(wav), atol=1e-4)


@pytest.mark.parametrize("n_samples, n_frames", [(16000, 100), (16100, 100), (16160, 101), (1000, 6)])
def test_log_mel_gives_100_frames_per_second(n_samples, n_frames):
    assert audio.log_mel(torch.zeros(n_samples)).shape == (n_frames, 80)


@pytest.mark.parametrize("bad", [torch.zeros(1, 16000), torch.zeros(16000, dtype=torch.int16), torch.zeros(100)])
def test_log_mel_rejects_bad_input(bad):
    with pytest.raises(ValueError, match="waveform"):
        audio.log_mel(bad)


def test_mel_windows_cut_four_mel_frames_per_video_frame():
    mel = torch.arange(300 * 80, dtype=torch.float32).reshape(300, 80)
    assert audio.num_windows(300) == 51
    windows = audio.mel_windows(mel, [0, 7, 50])
    assert windows.shape == (3, 1, 80, 100) and windows.is_contiguous()
    for i, s in enumerate([0, 7, 50]):
        assert torch.equal(windows[i, 0], mel[4 * s : 4 * s + 100].T)


@pytest.mark.parametrize("starts", [[51], [-1]])
def test_mel_windows_reject_out_of_range(starts):
    with pytest.raises(ValueError, match="0 .. 50"):
        audio.mel_windows(torch.zeros(300, 80), starts)


def test_no_librosa_or_torchaudio_at_run_time():
    code = (
        "import sys, torch; from gestsync import audio; audio.log_mel(torch.zeros(1600));"
        "bad = {'librosa', 'torchaudio'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
