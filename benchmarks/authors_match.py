"""How closely `gestsync prepare` reproduces the authors' people and network inputs.

    .venv/bin/python benchmarks/authors_match.py [--out DIR] [--clips asd_sample_1 asd_sample_2]

Runs `gestsync prepare --min-seconds 1 --max-people 4` on the speaker samples and compares
each of the authors' tracks (`../shared/reference/authors/authors_tracks.json`) with the
prepared track that overlaps it most:
- person boxes: the share of their frames where our box has IoU >= 0.6 with theirs;
- crop squares: the share of our frames whose crop box is square (|w - h| <= 2 px), and
  the share of their frames where our square has IoU >= 0.6 with theirs;
- masked network input: over the rows that neither face mask hides, the mean absolute
  difference (grey levels) of our prepared clip from their `input_masked_*.mp4`, per frame,
  its median per track.
Their frame f is our 25 fps grid frame f - 1 (their reader is one frame late; see the
README of the authors' folder).

`--sensitivity` measures instead how the masked difference grows when their own squares
are moved by a few pixels or scaled by a few percent (their 25 fps copy of asd_sample_2,
every 4th frame): what a given agreement of two detectors' boxes can give at best.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared"
AUTHORS = SHARED / "reference" / "authors"
MATCH_IOU = 0.6


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of (N, 4) boxes a and b."""
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def their_squares(track: dict) -> np.ndarray:
    """(T, 4) the square they cut on each frame, from their smoothed x, y, s."""
    sm = track["smoothed"]
    x, y, s = (np.asarray(sm[k], np.float64) for k in ("x", "y", "s"))
    return np.stack([x - s, y - s, x + s, y + s], axis=1)


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="gray") for f in c.decode(video=0)]


def black_rows(grey: np.ndarray) -> int:
    """Rows from the top that are black (the face mask)."""
    dark = grey.max(axis=1) < 40
    return int(np.argmin(dark)) if not dark.all() else len(dark)


def ours(out: Path, clip: str) -> list[dict]:
    """Prepared tracks of a clip: frames, boxes, crop boxes, the masked clip's path."""
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    found = []
    for row in rows:
        if row.get("kind") == "clip" and Path(row["source"]).stem == clip:
            with np.load(out / row["keypoints"]) as z:
                found.append({"frames": z["frames"], "boxes": z["boxes"],
                              "crop_boxes": z["crop_boxes"], "video": out / row["video"],
                              "id": row["clip_id"]})
    return found


def compare(theirs: dict, mine: list[dict], clip: str) -> dict:
    """The figures of one of their tracks against our best-overlapping track."""
    grid = np.asarray(theirs["frames"]) - 1
    boxes = np.asarray(theirs["bbox"], np.float64)
    best, best_share = None, -1.0
    for track in mine:
        rows = grid - track["frames"][0]
        inside = (rows >= 0) & (rows < len(track["frames"]))
        overlap = np.zeros(len(grid))
        overlap[inside] = iou(track["boxes"][rows[inside]], boxes[inside])
        share = float(np.mean(overlap >= MATCH_IOU))
        if share > best_share:
            best, best_share, best_rows, best_inside = track, share, rows, inside
    if best is None:
        return {"matched": 0.0}
    crop = best["crop_boxes"].astype(np.float64)
    wh = crop[:, 2:] - crop[:, :2]
    square_iou = np.zeros(len(grid))
    square_iou[best_inside] = iou(crop[best_rows[best_inside]], their_squares(theirs)[best_inside])
    return {"ours": best["id"], "matched": best_share,
            "square": float(np.mean(np.abs(wh[:, 0] - wh[:, 1]) <= 2)),
            "square_iou": float(np.mean(square_iou >= MATCH_IOU)),
            "masked_mad": masked_difference(theirs, best, best_rows, best_inside, clip)}


def masked_difference(theirs: dict, track: dict, rows: np.ndarray, inside: np.ndarray,
                      clip: str) -> float | None:
    """Median over frames of the MAD over the rows neither mask hides (None: no file)."""
    path = AUTHORS / clip / f"input_masked_scene_{theirs['scene']}_speaker_{theirs['track']}.mp4"
    if not path.is_file():
        return None
    their_frames, our_frames = decode(path), decode(track["video"])
    diffs = []
    for k, (row, ok) in enumerate(zip(rows, inside)):
        if not ok or k >= len(their_frames) or row >= len(our_frames):
            continue
        a, b = their_frames[k].astype(np.int16), our_frames[row].astype(np.int16)
        top = max(black_rows(a), black_rows(b))
        if top < a.shape[0]:
            diffs.append(float(np.abs(a[top:] - b[top:]).mean()))
    return float(np.median(diffs)) if diffs else None


def grey(rgb: np.ndarray) -> np.ndarray:
    """An RGB crop's grey levels as a decoder gives them (through yuv420p, as the files)."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return frame.reformat(format="yuv420p").to_ndarray(format="gray")


def sensitivity(moves=((0, 1.0), (5, 1.0), (10, 1.0), (15, 1.0), (20, 1.0), (0, 1.03),
                       (0, 1.06)), every: int = 4) -> None:
    """Median square IoU and masked MAD per track of asd_sample_2 when their squares are
    shifted right by dx source pixels or their side scaled by a factor."""
    from gestsync import crops
    from gestsync.pose import FaceMasker

    clip = "asd_sample_2"
    with av.open(str(AUTHORS / clip / "asd_sample_2_25fps.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    tracks = json.loads((AUTHORS / "authors_tracks.json").read_text())[clip]["tracks"]
    print("| their track | " + " | ".join(f"dx {dx}, side x{k:g}" for dx, k in moves) + " |")
    print("|---|" + "---|" * len(moves))
    for theirs in tracks:
        masked = decode(AUTHORS / clip / f"input_masked_scene_{theirs['scene']}_speaker_{theirs['track']}.mp4")
        squares = np.stack([theirs["smoothed"][k] for k in "xys"], axis=1)
        cells = []
        with FaceMasker() as masker:
            for dx, scale in moves:
                moved = squares * [1, 1, scale] + [dx, 0, 0]
                overlap = iou(np.stack([moved[:, 0] - moved[:, 2], moved[:, 1] - moved[:, 2],
                                        moved[:, 0] + moved[:, 2], moved[:, 1] + moved[:, 2]], 1),
                              their_squares(theirs))
                mads = []
                for k in range(0, len(moved), every):
                    frame = frames[theirs["frames"][k] - 1]
                    a = masked[k].astype(np.int16)
                    b = grey(crops.mask_square(crops.cut_square(frame, moved[k]), masker)).astype(np.int16)
                    top = max(black_rows(a), black_rows(b))
                    mads.append(float(np.abs(a[top:] - b[top:]).mean()))
                cells.append(f"{np.median(overlap):.2f} / {np.median(mads):.1f}")
        print(f"| s{theirs['scene']} t{theirs['track']} | " + " | ".join(cells) + " |")
    print("cells: median square IoU / median masked MAD (grey levels)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="prepare's output folder (default: a temporary one)")
    parser.add_argument("--clips", nargs="+", default=["asd_sample_1", "asd_sample_2"])
    parser.add_argument("--sensitivity", action="store_true",
                        help="how the masked difference grows as their squares move (see above)")
    args = parser.parse_args(argv)
    if args.sensitivity:
        sensitivity()
        return 0
    reference = json.loads((AUTHORS / "authors_tracks.json").read_text())
    unknown = [c for c in args.clips if c not in reference]
    if unknown:
        parser.error(f"no tracks of the authors for {', '.join(unknown)} in "
                     f"{AUTHORS / 'authors_tracks.json'}: choose among {', '.join(reference)}")
    from gestsync import prepare

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        for clip in args.clips:
            prepare.prepare([SHARED / "samples" / f"{clip}.mp4"],
                            prepare.PrepareOptions(out_dir=str(out), min_seconds=1.0, max_people=4))
        print("| clip | their track | ours | matched (box IoU >= 0.6) | square | square IoU >= 0.6 | masked MAD |")
        print("|---|---|---|---|---|---|---|")
        mads = []
        for clip in args.clips:
            mine = ours(out, clip)
            for theirs in reference[clip]["tracks"]:
                r = compare(theirs, mine, clip)
                mads += [r["masked_mad"]] if r.get("masked_mad") is not None else []
                mad = "-" if r.get("masked_mad") is None else f"{r['masked_mad']:.1f}"
                print(f"| {clip} | s{theirs['scene']} t{theirs['track']} | {r.get('ours', '-')} | "
                      f"{r['matched']:.0%} | {r.get('square', 0):.0%} | {r.get('square_iou', 0):.0%} | {mad} |")
        if mads:
            print(f"median over tracks of the masked MAD: {np.median(mads):.1f} grey levels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
