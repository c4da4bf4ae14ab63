"""What a run reads (`--cues`): the cue names are defined and parsed here, and nowhere else.

- body (the default, the paper's setting): gestures, the face masked;
- face+body: the lips' motion too, wherever a face is seen;
- face: the lips; the body only on frames where no face is found.

A `Cues` value carries what depends on the choice: whether the face is read (the face
mesh runs, `face`), whether the person's hands must be seen (`people.main_person`), how
body and mouth evidence are fused, which cues carried an answer, and which offset
confidence rule applies where a face carried it (`offset.ConfidenceRule`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from . import offset
from .errors import UsageError

# The parts an answer can come from: the keys of `Cues.summary` (a result's "cues").
BODY_PART, FACE_PART = "body", "face"
# Fusion: evidence = body + FACE_WEIGHT * face on frames with a face. Chosen on the fit
# clips of the offset protocol (docs/accuracy.md).
FACE_WEIGHT = 8.0


@dataclass(frozen=True)
class Cues:
    """One choice of `--cues`; `str()` gives its name."""

    name: str
    reads_face: bool  # the face mesh runs and the lips' motion is scored
    reads_body_where_face: bool  # on frames with a face, the body's evidence counts too
    calibration: offset.ConfidenceRule  # the offset confidence of its answers (`confidence_rule`)

    def __str__(self) -> str:
        return self.name

    @property
    def needs_hands(self) -> bool:
        """The body alone: a person whose hands are never seen gives no answer."""
        return not self.reads_face

    def fuse(self, body: np.ndarray, face: np.ndarray, seen: np.ndarray,
             weight: float = FACE_WEIGHT) -> np.ndarray:
        """The evidence of these cues from the body's and the mouth's (L x T each; the
        mouth's is 0 on frames without a face, `seen` False): the body alone; the face
        alone, the body only where no face was seen; or body + weight * face."""
        if not self.reads_face:
            return body
        if not self.reads_body_where_face:
            return np.where(seen[None], face, body)
        return body + weight * face

    def summary(self, seen: np.ndarray, weight: float = FACE_WEIGHT) -> dict:
        """JSON-ready: which parts carried an answer over the frames of `seen` (True: a
        face was seen) and how much. frames: frames the part covers; weight: its share of
        the fused evidence (with face+body, face frames count `weight` times). With no
        face seen anywhere, the body carried it alone."""
        reads_face = self.reads_face and bool(np.any(seen))
        num_frames = len(seen)
        face = int(np.sum(seen)) if reads_face else 0
        body = num_frames - face if reads_face and not self.reads_body_where_face else num_frames
        face_mass = (weight if self.reads_body_where_face else 1.0) * face
        total = face_mass + body
        out = {}
        if reads_face:
            out[FACE_PART] = {"frames": face, "weight": round(face_mass / total, 3) if total else 0.0}
        if body:
            out[BODY_PART] = {"frames": body, "weight": round(body / total, 3) if total else 0.0}
        return out

    def confidence_rule(self, used: dict | None) -> offset.ConfidenceRule:
        """The offset confidence rule of an answer of the built-in estimator that the parts
        `used` (`summary`) carried: this choice's calibration where the face took part,
        else the body's."""
        return self.calibration if used and FACE_PART in used else offset.BODY_CONFIDENCE


BODY = Cues("body", reads_face=False, reads_body_where_face=True,
            calibration=offset.BODY_CONFIDENCE)
FACE_BODY = Cues("face+body", reads_face=True, reads_body_where_face=True,
                 calibration=offset.FACE_BODY_CONFIDENCE)
FACE = Cues("face", reads_face=True, reads_body_where_face=False,
            calibration=offset.FACE_CONFIDENCE)
CHOICES = (BODY, FACE_BODY, FACE)
DEFAULT = BODY


def parse(cues: str | Cues) -> Cues:
    """The `Cues` named `cues` (a `Cues` is taken as it is); UsageError naming the choices."""
    if isinstance(cues, Cues):
        return cues
    for choice in CHOICES:
        if cues == choice.name:
            return choice
    raise UsageError(f"--cues {cues!r} is not one of {', '.join(c.name for c in CHOICES)}")


def add_cues_option(p: argparse.ArgumentParser) -> None:
    """--cues body | face+body | face, parsed into a `Cues` (a bad name: one line, exit 2)."""
    p.add_argument("--cues", type=parse, default=DEFAULT.name, metavar="CUES",
                   help="what to read: body (default: gestures with the face masked, as "
                        "in the paper), face+body (the lips too, where the face is "
                        "visible) or face (lips only; the body where no face is found)")
