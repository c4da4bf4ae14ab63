"""`gestsync sync` with several people in view: every person is searched, the answer names
whose gestures carried it."""

import json

import numpy as np
import pytest

from gestsync import people
from gestsync.cli import main
from gestsync.sync import OffsetResult, _most_confident, person_summary
from conftest import SAMPLES, needs_samples


def _result(offset: int, confidence: float, peak: float) -> OffsetResult:
    return OffsetResult(video="v.mp4", offset_frames=offset, offset_seconds=offset / 25,
                        confidence=confidence, uncertain=confidence < 0.5,
                        bootstrap_agreement=confidence, method="builtin", num_frames=100,
                        duration_seconds=4.0, scored_frames=(0, 100), candidates=[0, offset],
                        scores=[0.0, peak])


def test_the_most_confident_person_answers():
    track = people.Track(frames=np.arange(10, 60), boxes=np.tile([10.0, 20, 110, 220], (50, 1)),
                         keypoints=np.zeros((50, 33, 4), np.float32),
                         detected=np.ones(50, bool), frame_size=(640, 360))
    who = [person_summary(i, track) for i in range(3)]
    answers = [(_result(4, 0.3, 1.0), None, who[0]), (_result(-7, 0.8, 0.5), None, who[1]),
               (_result(9, 0.8, 2.0), None, who[2])]
    best, _ = _most_confident(answers)
    assert best.offset_frames == 9 and best.person["track"] == 2  # tie on confidence: peak
    assert best.person["box"] == [10, 20, 110, 220] and best.person["start_frame"] == 10
    assert [p["offset_frames"] for p in best.people] == [4, -7, 9]
    alone, _ = _most_confident(answers[:1])
    assert alone.people is None and alone.person["track"] == 0


@pytest.mark.slow
@needs_samples
def test_two_people_on_stage_are_both_searched(capsys, tmp_path):
    out = tmp_path / "res"
    code = main(["sync", str(SAMPLES / "asd_sample_1.mp4"), "--out", str(out), "--quiet",
                 "--model", "builtin"])
    stdout, _ = capsys.readouterr()
    assert code == 0
    d = json.loads((out / "offset.json").read_text())
    assert len(d["people"]) == 2
    centres = sorted((p["box"][0] + p["box"][2]) / 2 / 1280 for p in d["people"])
    assert centres[0] < 0.5 < centres[1]  # the host on the left, the guest on the right
    assert d["person"]["track"] in [p["track"] for p in d["people"]]
    chosen = next(p for p in d["people"] if p["track"] == d["person"]["track"])
    assert chosen["offset_frames"] == d["offset_frames"]
    assert chosen["confidence"] == max(p["confidence"] for p in d["people"])
    assert f"from person #{d['person']['track']} of 2" in stdout
