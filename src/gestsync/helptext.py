"""Help pages of the commands: a refilled description paragraph and an examples epilog."""

from __future__ import annotations

import argparse
import textwrap


def help_texts(description: str, examples: str) -> dict:
    """add_parser / ArgumentParser keywords: `description` (prose refilled, indented lines
    kept) and an `examples:` epilog, printed as written."""
    return {"description": _filled(description), "epilog": "examples:\n" + examples,
            "formatter_class": argparse.RawDescriptionHelpFormatter}


def _filled(text: str, width: int = 79) -> str:
    """Runs of prose lines refilled to `width`; blank and indented lines kept."""
    out: list[str] = []
    prose: list[str] = []
    for line in text.splitlines() + [""]:
        if line.strip() and not line.startswith(" "):
            prose.append(line.strip())
            continue
        if prose:
            out.append(textwrap.fill(" ".join(prose), width, break_on_hyphens=False))
            prose.clear()
        out.append(line)
    return "\n".join(out[:-1])
