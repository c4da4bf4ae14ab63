"""gestsync: audio-visual sync and active speaker detection from body gestures."""

__version__ = "0.1.0"
