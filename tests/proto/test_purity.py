"""The sans-IO rule, enforced: pure protocol modules import no I/O, clock or entropy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "shoal"
PURE_MODULES = ["bencoding.py", "ids.py", "metainfo.py", "magnet.py", "layout.py"]
PURE_PACKAGES = ["dht", "peer", "swarm"]
FORBIDDEN = {"trio", "socket", "time", "asyncio", "threading", "os", "secrets", "select"}
# Module-level random functions read hidden global state; an injected Random is fine.
FORBIDDEN_RANDOM_CALLS = {
    "random",
    "randint",
    "randrange",
    "getrandbits",
    "choice",
    "shuffle",
    "sample",
    "uniform",
    "randbytes",
}


def pure_files() -> list[Path]:
    files = [SRC / m for m in PURE_MODULES if (SRC / m).exists()]
    for pkg in PURE_PACKAGES:
        files.extend(sorted((SRC / pkg).rglob("*.py")) if (SRC / pkg).exists() else [])
    files.extend(p for p in [SRC / "testing" / "simnet.py"] if p.exists())
    return files


def imported_modules(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def random_module_calls(tree: ast.AST) -> set[str]:
    return {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "random"
        and node.func.attr in FORBIDDEN_RANDOM_CALLS
    }


def test_there_are_pure_modules_to_check() -> None:
    assert len(pure_files()) >= 3


@pytest.mark.parametrize("path", pure_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_pure_module_does_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = {m for m in imported_modules(tree) if m.split(".")[0] in FORBIDDEN or m in FORBIDDEN}
    assert not bad, f"{path.name} imports {sorted(bad)}: pure modules must stay sans-IO"
    calls = random_module_calls(tree)
    assert not calls, f"{path.name} calls random.{sorted(calls)}: inject a random.Random instead"


def test_checker_catches_violations() -> None:
    tree = ast.parse("import trio\nfrom os import path\nimport random\nx = random.random()\n")
    assert {"trio", "os"} <= imported_modules(tree)
    assert random_module_calls(tree) == {"random"}
