"""Packaging: what `pip install .` gives a user is complete and needs no test-only package.

The editable install the other tests run against hides packaging mistakes: a data file
missing from the wheel, a runtime import of a test dependency, a dependency declared but
unused. These tests look at the declared metadata, at every module imported with the
test-only packages made unimportable, and at a real wheel installed outside the checkout.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from shoal._version import __version__

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "shoal"
# Import name -> distribution name for everything shoal may import at runtime.
RUNTIME_DISTRIBUTIONS = {
    "trio": "trio",
    "cryptography": "cryptography",
    "rich": "rich",
    "python_socks": "python-socks",  # SOCKS5 CONNECT (net/socks.py)
    # shoal daemon
    "hypercorn": "hypercorn",
    "starlette": "starlette",
    "prometheus_client": "prometheus-client",
    "python_multipart": "python-multipart",
}
TEST_ONLY = [
    "hypothesis",
    "bencodepy",
    "bencode",
    "pytest",
    "_pytest",
    "pytest_trio",
    "libtorrent",
    "qbittorrentapi",
    "selenium",
]

# Runs in a child: make the test-only packages unimportable, then import every module.
_IMPORT_ALL = """
import importlib, importlib.abc, json, pkgutil, sys
BLOCKED = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"test-only package {name} imported at runtime")
        return None
sys.meta_path.insert(0, Block())
import shoal
failed = {}
for info in pkgutil.walk_packages(shoal.__path__, "shoal."):
    if info.name.endswith("__main__"):
        continue  # running it is the CLI, tested below
    try:
        importlib.import_module(info.name)
    except Exception as exc:
        failed[info.name] = repr(exc)
print(json.dumps({"failed": failed, "file": shoal.__file__,
                  "leaked": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}))
"""


def _third_party_runtime_imports() -> set[str]:
    """Top-level names of non-stdlib, non-shoal modules imported outside TYPE_CHECKING."""
    names: set[str] = set()
    for path in SRC.rglob("*.py"):
        stack: list[ast.AST] = [ast.parse(path.read_text(), filename=str(path))]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                stack.extend(node.orelse)
                continue
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
            stack.extend(ast.iter_child_nodes(node))
    return {n for n in names if n not in sys.stdlib_module_names and n != "shoal"}


def _requirement_name(req: str) -> str:
    for sep in "<>=!~;[ ":
        req = req.split(sep)[0]
    return req.lower()


def test_runtime_dependencies_are_exactly_what_src_imports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_requirement_name(r) for r in project["dependencies"]}
    used = {RUNTIME_DISTRIBUTIONS.get(n, n) for n in _third_party_runtime_imports()}
    assert used <= declared, f"imported but not declared: {sorted(used - declared)}"
    assert declared <= used, f"declared but never imported: {sorted(declared - used)}"
    test_extra = {_requirement_name(r) for r in project["optional-dependencies"]["test"]}
    assert {"hypothesis", "pytest", "bencode.py", "libtorrent"} <= test_extra
    assert project["scripts"] == {"shoal": "shoal.cli:main"}
    assert project["requires-python"] == ">=3.11"


def _import_everything(pythonpath: str, cwd: Path) -> dict[str, object]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1", "PYTHONPATH": pythonpath}
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL, ",".join(TEST_ONLY)],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_every_module_imports_without_test_only_packages(tmp_path: Path) -> None:
    result = _import_everything(str(ROOT / "src"), tmp_path)
    assert result["failed"] == {}
    assert result["leaked"] == []


def test_blocker_really_blocks(tmp_path: Path) -> None:
    script = _IMPORT_ALL.replace("import shoal\n", "import shoal\nimport hypothesis\n")
    out = subprocess.run(
        [sys.executable, "-c", script, ",".join(TEST_ONLY)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT / "src")},
        timeout=60,
    )
    assert out.returncode != 0
    assert "test-only package hypothesis imported at runtime" in out.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built (with build isolation, like `pip install .`) from a copy of the tree."""
    work = tmp_path_factory.mktemp("wheel")
    proj = work / "proj"
    proj.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, proj / name)
    shutil.copytree(
        ROOT / "src",
        proj / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"),
    )
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"), "."],
        capture_output=True,
        text=True,
        cwd=proj,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (built,) = (work / "dist").glob("shoal-*.whl")
    return built


@pytest.mark.slow
def test_wheel_holds_every_module_the_marker_and_the_entry_point(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = zf.read(meta).decode()
        (eps,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_points = zf.read(eps).decode()
    sources = {f"shoal/{p.relative_to(SRC).as_posix()}" for p in SRC.rglob("*.py")}
    assert sources <= names, sorted(sources - names)
    assert "shoal/py.typed" in names  # PEP 561: without it mypy ignores our annotations
    assert "shoal = shoal.cli:main" in entry_points
    runtime = [
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert {_requirement_name(r) for r in runtime} == set(RUNTIME_DISTRIBUTIONS.values())


@pytest.mark.slow
def test_installed_wheel_creates_and_reads_a_torrent(wheel: Path, tmp_path: Path) -> None:
    """The non-editable install works on its own: `shoal create` then `shoal info`."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), wheel],
        check=True,
        capture_output=True,
        timeout=300,
    )
    result = _import_everything(str(target), tmp_path)
    assert Path(str(result["file"])).is_relative_to(target), "imported the checkout instead"
    assert result["failed"] == {}
    assert result["leaked"] == []

    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.bin").write_bytes(bytes(range(256)) * 300)
    (data / "sub" / "b.txt").write_bytes(b"hello\n")
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}

    def shoal(*args: str) -> str:
        # The console script pip wrote, so the entry point itself is exercised.
        out = subprocess.run(
            [str(target / "bin" / "shoal"), *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    magnet = shoal("create", str(data), "-o", "d.torrent").strip()
    assert magnet.startswith("magnet:?xt=urn:btih:")
    info = json.loads(shoal("info", "--json", "d.torrent"))
    assert info["magnet"] == magnet
    assert info["total_size"] == 256 * 300 + 6
    assert sorted(f["path"] for f in info["files"]) == ["data/a.bin", "data/sub/b.txt"]
    # `python -m shoal` is the same program.
    version = subprocess.run(
        [sys.executable, "-m", "shoal", "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert version.stdout.split() == ["shoal", __version__]
