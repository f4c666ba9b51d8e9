"""docs/architecture.md stays a true map of the package (issue 6: "kept true").

Every module under src/shoal is named in the Modules section by its path relative to
src/shoal (e.g. `dht/krpc.py`), and every such path named there exists: a module that
is added, moved or deleted fails this test until the map is updated.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "shoal"
DOC = ROOT / "docs" / "architecture.md"
_NAMED = re.compile(r"`((?:[a-z0-9_]+/)?[a-z0-9_]+\.py)`")


def _modules() -> set[str]:
    return {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}


def _named() -> set[str]:
    """Module paths named in the Modules section (test files it cites excluded)."""
    return {n for n in _NAMED.findall(_modules_section()) if not n.startswith("tests/")}


def _modules_section() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text.split("\n## Modules\n", 1)[1].split("\n## ", 1)[0]


def test_the_package_has_modules_in_every_subpackage() -> None:
    modules = _modules()
    for sub in ("cli", "dht", "net", "peer", "storage", "swarm", "testing"):
        assert f"{sub}/__init__.py" in modules


def test_every_module_is_named_in_the_modules_section() -> None:
    missing = sorted(_modules() - _named())
    assert not missing, f"docs/architecture.md does not describe: {missing}"


def test_every_module_named_in_the_modules_section_exists() -> None:
    stale = sorted(_named() - _modules())
    assert not stale, f"docs/architecture.md names modules that do not exist: {stale}"
