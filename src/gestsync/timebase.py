"""The one clock of gestsync, and what counts as a video file.

Every clip is mapped onto pictures at 25 fps and mono sound at 16 kHz, the published
model's rates: 640 sound samples per picture frame. Every module takes these from here.
"""

FPS = 25  # picture frames per second
SAMPLE_RATE = 16000  # sound samples per second (Hz)
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mkv", ".avi", ".mov", ".webm", ".mpg", ".mpeg",
                            ".ts", ".flv"})  # files taken from folders
