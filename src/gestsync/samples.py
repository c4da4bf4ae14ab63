"""The samples folder: its clips with a known offset (MANIFEST.tsv), and the fixed split
of those clips into a part that parameters are chosen on and a part that checks them."""

from __future__ import annotations

import csv
import zlib
from pathlib import Path

from .errors import GestsyncError

FACE_ONLY = "1 (face only)"  # MANIFEST people value of talking-head crops (no hands)


def single_speaker_clips(samples: Path, face_only: bool = False) -> list[tuple[Path, int]]:
    """(clip, stated offset) for each single-speaker clip of MANIFEST.tsv with a known
    offset; talking-head crops (FACE_ONLY) too when `face_only` (the face cue's clips)."""
    manifest = samples / "MANIFEST.tsv"
    if not manifest.is_file():
        raise GestsyncError(f"no MANIFEST.tsv in {samples}: give the samples folder "
                            "(file, people, offset_frames_25fps columns)")
    clips = []
    with manifest.open() as f:
        for row in csv.DictReader(f, delimiter="\t"):
            kinds = ("1", "1 per shot") + ((FACE_ONLY,) if face_only else ())
            if row["people"].strip() not in kinds:
                continue
            stated = row["offset_frames_25fps"].replace("assumed", "").strip("() \t")
            if stated.lstrip("+-").isdigit() and (samples / row["file"]).is_file():
                clips.append((samples / row["file"], int(stated)))
    return clips


def fit_check_split(clip: str) -> str:
    """'fit' or 'check': a fixed, name-based split of the clips (CRC-32 of the file name
    even = fit), on which the estimator's parameters are chosen and then checked."""
    return "fit" if zlib.crc32(clip.encode()) % 2 == 0 else "check"
