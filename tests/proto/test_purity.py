"""The sans-IO rule, enforced: pure protocol modules import no I/O, clock or entropy.

Three checks, all on the source (AST), so they also cover code paths no test runs:

* a pure module imports nothing from the I/O, clock or entropy stdlib modules and calls
  no module-level ``random`` function (hidden global state);
* it imports no *impure shoal module* either, relative imports included: ``from
  ..net import x`` would drag trio in through the back door;
* every module under ``src/shoal`` is classified here as pure or impure, so a new module
  cannot slip past the check by not being listed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "shoal"
# The style guide's must-be-pure list (4.2), plus the value modules they lean on.
PURE_MODULES = [
    "bencoding.py",
    "ids.py",
    "metainfo.py",
    "magnet.py",
    "layout.py",
    "ipfilter.py",
    "ratelimit.py",
    "socks5.py",
    "errors.py",
    "_version.py",
    "testing/__init__.py",
    "testing/simnet.py",
    "testing/dhtsim.py",
    "daemon/sync.py",
    "testing/utpsim.py",
    "testing/renosim.py",
    "testing/swarmsim.py",
    # Plain data the pure torrent engine (session/) publishes.
    "torrent_events.py",
    "torrent_stats.py",
]
PURE_PACKAGES = ["dht", "peer", "swarm", "session", "utp"]
# Trio, disk and terminal code. Packages are impure as a whole; single modules are listed
# so that a new top-level module has to be classified on purpose.
IMPURE_PACKAGES = ["net", "storage", "cli"]
IMPURE_MODULES = [
    "__init__.py",  # the facade imports client lazily, but it is not an engine
    "__main__.py",
    "_atomic.py",
    "_torrent_data.py",
    "client.py",
    "config.py",
    "create.py",
    "dht_client.py",
    "ipfilter_load.py",  # socket.inet_pton for shoal.ipfilter's `pack`
    "torrent.py",
    "torrent_commands.py",  # mixins of Torrent (trio)
    "torrent_report.py",
    # shoal daemon: HTTP, SQLite and the client (only daemon/sync.py is pure).
    "daemon/__init__.py",
    "daemon/api_app.py",
    "daemon/api_common.py",
    "daemon/api_torrents.py",
    "daemon/auth.py",
    "daemon/db.py",
    "daemon/fetch.py",
    "daemon/metrics.py",
    "daemon/qbt.py",
    "daemon/server.py",
    "daemon/state.py",
    "torrent_parts.py",
    "testing/hostile.py",  # trio sockets on loopback: the attackers of the robustness tests
]
FORBIDDEN = {
    "trio",
    "socket",
    "time",
    "asyncio",
    "threading",
    "os",
    "secrets",
    "select",
    "selectors",
    "subprocess",
    "multiprocessing",
    "signal",
    "shutil",
    "pathlib",
    "datetime",
}
# Module-level random functions read hidden global state; an injected Random is fine.
FORBIDDEN_RANDOM_CALLS = {
    "random",
    "randint",
    "randrange",
    "getrandbits",
    "choice",
    "choices",
    "shuffle",
    "sample",
    "uniform",
    "randbytes",
    "seed",
    "SystemRandom",  # OS entropy: the Trio layer creates it and passes it in
}


def rel(path: Path) -> str:
    return path.relative_to(SRC).as_posix()


def all_files() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def is_pure(path: Path) -> bool:
    name = rel(path)
    return name in PURE_MODULES or name.split("/")[0] in PURE_PACKAGES


def is_impure(path: Path) -> bool:
    name = rel(path)
    return name in IMPURE_MODULES or ("/" in name and name.split("/")[0] in IMPURE_PACKAGES)


def pure_files() -> list[Path]:
    return [p for p in all_files() if is_pure(p)]


def module_name(path: Path) -> str:
    parts = ["shoal", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(tree: ast.AST) -> set[str]:
    """Absolute (level 0) imports anywhere in the file, TYPE_CHECKING blocks included."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """All nodes except those under ``if TYPE_CHECKING:`` (they never execute)."""
    out: list[ast.AST] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return out


def shoal_imports(tree: ast.AST, this: str, is_package: bool) -> set[str]:
    """Runtime imports of shoal modules, relative ones resolved to absolute names."""
    found: set[str] = set()
    base = this.split(".") if is_package else this.split(".")[:-1]
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "shoal")
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                mod = node.module or ""
                if mod.split(".")[0] != "shoal":
                    continue
            else:
                anchor = base[: len(base) - (node.level - 1)]
                mod = ".".join([*anchor, *([node.module] if node.module else [])])
            found.add(mod)
            # `from . import x` may name a submodule: count it too when it is one.
            found.update(f"{mod}.{a.name}" for a in node.names if _exists(f"{mod}.{a.name}"))
    return found


def _exists(module: str) -> bool:
    rel_parts = module.split(".")[1:]
    return (SRC.joinpath(*rel_parts).with_suffix(".py")).exists() or (
        SRC.joinpath(*rel_parts, "__init__.py").exists()
    )


def _file_of(module: str) -> Path:
    rel_parts = module.split(".")[1:]
    as_file = SRC.joinpath(*rel_parts).with_suffix(".py") if rel_parts else SRC / "__init__.py"
    return as_file if as_file.exists() else SRC.joinpath(*rel_parts, "__init__.py")


def random_module_calls(tree: ast.AST) -> set[str]:
    calls = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "random"
        and node.func.attr in FORBIDDEN_RANDOM_CALLS
    }
    # `from random import choice` would hide the call from the check above.
    calls.update(
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "random"
        for alias in node.names
        if alias.name in FORBIDDEN_RANDOM_CALLS
    )
    # random.Random() with no seed reads OS entropy.
    calls.update(
        "Random()"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "random"
        and node.func.attr == "Random"
        and not node.args
        and not node.keywords
    )
    return calls


def test_there_are_pure_modules_to_check() -> None:
    assert len(pure_files()) >= 30
    assert all((SRC / m).exists() for m in PURE_MODULES), "stale entry in PURE_MODULES"
    assert all((SRC / m).exists() for m in IMPURE_MODULES), "stale entry in IMPURE_MODULES"


@pytest.mark.parametrize("path", all_files(), ids=rel)
def test_every_module_is_classified(path: Path) -> None:
    assert is_pure(path) != is_impure(path), (
        f"classify {rel(path)} as pure or impure in tests/proto/test_purity.py "
        "(pure = sans-IO, checked by the tests below)"
    )


@pytest.mark.parametrize("path", pure_files(), ids=rel)
def test_pure_module_does_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = {m for m in imported_modules(tree) if m.split(".")[0] in FORBIDDEN}
    assert not bad, f"{rel(path)} imports {sorted(bad)}: pure modules must stay sans-IO"
    calls = random_module_calls(tree)
    assert not calls, f"{rel(path)} uses random.{sorted(calls)}: inject a random.Random instead"


@pytest.mark.parametrize("path", pure_files(), ids=rel)
def test_pure_module_imports_only_pure_shoal_modules(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    this = module_name(path)
    deps = shoal_imports(tree, this, is_package=path.name == "__init__.py")
    impure = sorted(d for d in deps if d != "shoal" and not is_pure(_file_of(d)))
    assert not impure, f"{rel(path)} imports impure {impure} at runtime"


def test_checker_catches_violations() -> None:
    tree = ast.parse(
        "import trio\nfrom os import path\nimport random\nx = random.random()\n"
        "from random import shuffle\ny = random.Random()\nz = random.Random(1)\n"
    )
    assert {"trio", "os"} <= imported_modules(tree)
    assert random_module_calls(tree) == {"random", "shuffle", "Random()"}


def test_relative_imports_are_resolved_and_type_checking_ignored() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "from ..net import dht_service\n"
        "from .routing import RoutingTable\n"
        "from .. import errors\n"
        "if TYPE_CHECKING:\n    from ..client import Client\n"
    )
    deps = shoal_imports(tree, "shoal.dht.node", is_package=False)
    assert deps == {
        "shoal.net",
        "shoal.net.dht_service",
        "shoal.dht.routing",
        "shoal",
        "shoal.errors",
    }
    assert not is_pure(_file_of("shoal.net.dht_service"))
    assert is_pure(_file_of("shoal.dht.routing"))
    assert module_name(SRC / "dht" / "__init__.py") == "shoal.dht"
