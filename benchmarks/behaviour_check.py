"""Behaviour check for refactors: the same commands must give byte-identical outputs.

Runs three jobs with the installed `gestsync` into a folder and records the SHA-256 of every
file they write and of their summary lines:
  speaker asd_sample_1 --cues face+body --per-frame
  sync sync_sample_2 --cues face+body
  sync sync_sample_2 --model <random weights in the published format> --always-write

    python benchmarks/behaviour_check.py --out /tmp/before          # on the old commit
    python benchmarks/behaviour_check.py --out /tmp/after           # on the new one
    python benchmarks/behaviour_check.py --compare /tmp/before /tmp/after

--compare prints every file that differs and exits 1 if any does.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "samples"
HASHES = "hashes.tsv"


def jobs(weights: Path) -> dict[str, list[str]]:
    s = str(SAMPLES)
    return {
        "speaker": ["speaker", f"{s}/asd_sample_1.mp4", "--cues", "face+body", "--per-frame"],
        "sync": ["sync", f"{s}/sync_sample_2.mp4", "--cues", "face+body"],
        "sync_model": ["sync", f"{s}/sync_sample_2.mp4", "--model", str(weights), "--always-write"],
    }


def random_weights(path: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    import torch
    from reference_weights import published_checkpoint, reference_state_dict

    torch.save(published_checkpoint(reference_state_dict()), path)
    return path


def run_all(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    weights = random_weights(out / "model_rgb.pth")
    for name, args in jobs(weights).items():
        cmd = ["gestsync", *args, "--out", name, "--quiet", "--json"]
        done = subprocess.run(cmd, cwd=out, capture_output=True, text=True, check=False)
        (out / f"{name}.stdout").write_text(done.stdout)
        print(f"{name}: exit {done.returncode}", file=sys.stderr)
        if done.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    write_hashes(out)


def write_hashes(out: Path) -> None:
    rows = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}\t{p.relative_to(out)}"
            for p in sorted(out.rglob("*")) if p.is_file() and p.name not in (HASHES, "model_rgb.pth")]
    (out / HASHES).write_text("\n".join(rows) + "\n")
    print("\n".join(rows))


def read_hashes(folder: Path) -> dict[str, str]:
    pairs = (line.split("\t") for line in (folder / HASHES).read_text().splitlines() if line)
    return {name: digest for digest, name in pairs}


def compare(before: Path, after: Path) -> int:
    a, b = read_hashes(before), read_hashes(after)
    differ = sorted(n for n in a.keys() | b.keys() if a.get(n) != b.get(n))
    for name in differ:
        print(f"differs: {name}")
    print(f"{len(a.keys() | b.keys()) - len(differ)} files identical, {len(differ)} differ")
    return 1 if differ else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="run the jobs and write their outputs and hashes here")
    ap.add_argument("--compare", type=Path, nargs=2, metavar=("BEFORE", "AFTER"))
    args = ap.parse_args()
    if args.compare:
        sys.exit(compare(*args.compare))
    if not args.out:
        ap.error("give --out DIR or --compare BEFORE AFTER")
    if not SAMPLES.is_dir():
        sys.exit(f"no samples at {SAMPLES}")
    run_all(args.out.resolve())


if __name__ == "__main__":
    main()
