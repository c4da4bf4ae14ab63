"""Voice activity: where in the sound someone speaks (silero-vad, model inside its wheel).

The silero model is fed 16 kHz float tensors directly (its `read_audio` helper needs
torchaudio, which we do not use) and its speech probabilities are put on the 25 fps grid.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

import numpy as np
import torch
from .timebase import SAMPLE_RATE, SAMPLES_PER_FRAME

WINDOW = 512  # samples per silero step at 16 kHz (32 ms)
SPEECH_THRESHOLD = 0.5  # silero's default probability threshold
MIN_SPEECH_MS = 250  # shorter bursts are not speech (silero's default)
MIN_SILENCE_MS = 300  # pauses shorter than this stay inside one speech segment (between
# words and short breaths), so per-frame decisions do not flicker between words
SPEECH_PAD_MS = 100  # segments grow by this much at each end


@dataclass(frozen=True)
class VoiceActivity:
    """Speech on the 25 fps grid.

    probability: float32 (T,) silero's speech probability of the 32 ms step at each frame's centre.
    speech: bool (T,) frames inside a speech segment (threshold with hysteresis,
        short bursts dropped, short pauses bridged, segments padded).
    """

    probability: np.ndarray
    speech: np.ndarray

    def fraction(self, start: int, end: int) -> float:
        """Share of frames [start, end) inside speech."""
        part = self.speech[start:end]
        return float(part.mean()) if len(part) else 0.0


def _silero():
    """The silero_vad package; importing it calls torch.set_num_threads(1), which we undo
    so that the caller's thread count stays as it was."""
    threads = torch.get_num_threads()
    import silero_vad

    torch.set_num_threads(threads)
    return silero_vad


@lru_cache(maxsize=1)
def _model():
    return _silero().load_silero_vad(onnx=False)  # TorchScript model shipped in the wheel


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread, then restore the caller's count. silero steps are tiny
    (512 samples): with 2 threads on 2 busy cores they took 45x longer (measured: 20 s of
    sound in 45 s instead of 1 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def speech_probabilities(audio: np.ndarray) -> np.ndarray:
    """silero's speech probability for each 512-sample step of 16 kHz float audio -> (N,)."""
    model = _model()
    model.reset_states()
    wav = torch.as_tensor(np.asarray(audio, np.float32))
    steps = -(-len(wav) // WINDOW)
    wav = torch.nn.functional.pad(wav, (0, steps * WINDOW - len(wav)))
    with torch.inference_mode(), _one_thread():
        probs = [float(model(wav[i * WINDOW:(i + 1) * WINDOW], SAMPLE_RATE)) for i in range(steps)]
    return np.asarray(probs, np.float32)


def voice_activity(audio: np.ndarray, num_frames: int) -> VoiceActivity:
    """Where speech is, for 16 kHz float mono `audio` aligned with frame 0 of num_frames."""
    probs = speech_probabilities(audio)
    segments = _silero().get_speech_timestamps_from_probs(
        probs.tolist(), sampling_rate=SAMPLE_RATE, threshold=SPEECH_THRESHOLD,
        min_speech_duration_ms=MIN_SPEECH_MS, min_silence_duration_ms=MIN_SILENCE_MS,
        speech_pad_ms=SPEECH_PAD_MS, audio_length_samples=len(audio))
    speech = np.zeros(num_frames, bool)
    for seg in segments:
        first = seg["start"] // SAMPLES_PER_FRAME
        last = -(-seg["end"] // SAMPLES_PER_FRAME)
        speech[first:last] = True
    return VoiceActivity(probability=_per_frame(probs, num_frames), speech=speech)


def _per_frame(probs: np.ndarray, num_frames: int) -> np.ndarray:
    """Step probabilities (32 ms each) -> the step under each 40 ms frame's centre."""
    centres = (np.arange(num_frames) + 0.5) * SAMPLES_PER_FRAME
    steps = np.clip((centres // WINDOW).astype(int), 0, max(len(probs) - 1, 0))
    return probs[steps] if len(probs) else np.zeros(num_frames, np.float32)
