"""The command line's building blocks: a parser whose errors are one line, and help pages
with a description paragraph and examples. Shared by every command's parser."""

from __future__ import annotations

import argparse
import re
import sys
import textwrap

from .errors import UsageError


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


# Options whose value may start with a minus sign (`--shifts -10:10`): argparse takes such a
# value for an option and refuses it, unless written `--shifts=-10:10`, which it is made.
DASH_VALUE_OPTIONS = ("--shifts",)


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line and status 2 (UsageError), and option
    values that start with a minus sign (DASH_VALUE_OPTIONS) taken as values."""

    def error(self, message: str) -> None:  # one line and status 2, as for every user error
        raise UsageError(f"{message} (see `{self.prog} --help`)")

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(_joined_dash_values(args), namespace)


def _joined_dash_values(args: list[str]) -> list[str]:
    """`--shifts -10:10` -> `--shifts=-10:10` for DASH_VALUE_OPTIONS (not after `--`)."""
    out, i = [], 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return out + args[i:]
        if arg in DASH_VALUE_OPTIONS and i + 1 < len(args) and re.match(r"-\d", args[i + 1]):
            out.append(f"{arg}={args[i + 1]}")
            i += 2
        else:
            out.append(arg)
            i += 1
    return out


def add_model_option(p: argparse.ArgumentParser, alias: bool = True) -> None:
    """--model (and its older name --checkpoint): auto, builtin, gestsync-rgb, or a file."""
    names = ("--model", "--checkpoint") if alias else ("--model",)
    p.add_argument(*names, dest="model", default="auto", metavar="MODEL",
                   help="auto (default: the published model gestsync-rgb if it is in the "
                        "cache, else the built-in estimator), builtin, gestsync-rgb, or the "
                        "PATH of a model file (model_rgb.pth or our own); see `gestsync models`")


PRECISIONS = ("fp32", "bf16")  # the network's arithmetic: fp32 (default, exact) or bfloat16


def add_precision_option(p: argparse.ArgumentParser) -> None:
    """--precision fp32 | bf16: the model's arithmetic (argparse refuses other values)."""
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="the model's arithmetic: fp32 (default, exact) or bf16 (faster on "
                        "CPUs with bfloat16 instructions, e.g. AMX, and refused on a CPU "
                        "without them; embeddings differ slightly; no effect without --model)")
