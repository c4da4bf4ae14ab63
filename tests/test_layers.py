"""The package's stages, checked from its imports: no cycles, nothing importing upward.

Each module belongs to one stage; a module may import from its own stage and the stages
before it, never after. The stages are read from the README's table ("How it works"), so
that table is their only copy. Imports inside functions count too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "gestsync"
ENTRY_POINTS = {"__main__", "__init__"}  # apps too, left out of the README's table


def _readme_stages() -> dict[str, set[str]]:
    """The README's table of stages (`| stage: what | `module`, ... |`): the one source."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| stage | modules |"):].split("\n\n")[0]
    stages = {}
    for row in table.splitlines()[2:]:
        what, modules = row.strip("|").split(" | ")
        stages[what.split(":")[0].strip()] = set(re.findall(r"`(\w+)`", modules))
    return stages


STAGES = _readme_stages()
STAGES["apps"] |= ENTRY_POINTS
ORDER = list(STAGES)


def _stage(module: str) -> int:
    return next(i for i, name in enumerate(ORDER) if module in STAGES[name])


def _imports(path: Path) -> set[str]:
    """The package's own modules that `path` imports (relative or absolute)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found.update(a.name for a in node.names)
            elif node.module and node.module.split(".")[0] == "gestsync":
                parts = node.module.split(".")
                found.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("gestsync."))
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    return found & modules


def _graph() -> dict[str, set[str]]:
    return {p.stem: _imports(p) - {p.stem} for p in PACKAGE.glob("*.py")}


def test_every_module_has_a_stage():
    staged = set().union(*STAGES.values())
    assert set(_graph()) - staged == set(), "add the new module to a stage in the README's table"
    assert staged - set(_graph()) == set(), "a module in the README's table no longer exists"


def test_the_readme_table_is_read_whole():
    """Every stage in order, each module in one stage only."""
    assert ORDER == ["basics", "media", "decisions", "people", "cues", "jobs", "apps"]
    listed = [m for modules in STAGES.values() for m in modules]
    assert len(listed) == len(set(listed)), "a module is in two stages"


def test_nothing_imports_a_later_stage():
    upward = sorted(f"{m} ({ORDER[_stage(m)]}) imports {d} ({ORDER[_stage(d)]})"
                    for m, deps in _graph().items() for d in deps
                    if m != "__init__" and _stage(d) > _stage(m))
    assert upward == []


def test_no_import_cycles():
    graph = {m: d - {"__init__"} for m, d in _graph().items() if m != "__init__"}
    done, active, cycles = set(), [], []

    def visit(module):
        if module in active:
            cycles.append(active[active.index(module):] + [module])
            return
        if module in done:
            return
        active.append(module)
        for dep in sorted(graph.get(module, ())):
            visit(dep)
        active.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert cycles == []


def test_the_checker_sees_an_upward_import(tmp_path):
    """The import reader finds function-level, relative and absolute imports alike."""
    probe = tmp_path / "probe.py"
    probe.write_text("from . import media\nimport gestsync.sync\n"
                     "def f():\n    from .cli import main\n    from gestsync.speaker import x\n")
    assert _imports(probe) == {"media", "sync", "cli", "speaker"}
