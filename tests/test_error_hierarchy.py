"""One exception hierarchy: every public shoal exception is a `ShoalError` from errors.py.

Callers (and the CLI's one-line error reporting) rely on ``except ShoalError`` catching
everything shoal raises on purpose, so no other module may start a hierarchy of its own.
Private control-flow exceptions (a leading underscore, never seen by callers) are fine.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import shoal
from shoal.errors import ShoalError

# Known exceptions outside the hierarchy; each is a bug to fix in its module, after which
# the strict xfail turns into an XPASS and the entry is deleted.
KNOWN: set[str] = set()


def public_exceptions() -> list[str]:
    found = []
    for info in pkgutil.walk_packages(shoal.__path__, "shoal."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == info.name
                and not name.startswith("_")
            ):
                found.append(f"{info.name}.{name}")
    return sorted(found)


def _param(qualname: str) -> object:
    marks = (
        [pytest.mark.xfail(strict=True, reason="outside ShoalError")] if qualname in KNOWN else []
    )
    return pytest.param(qualname, marks=marks, id=qualname)


@pytest.mark.parametrize("qualname", [_param(q) for q in public_exceptions()])
def test_public_exceptions_are_shoal_errors(qualname: str) -> None:
    module_name, _, name = qualname.rpartition(".")
    cls = getattr(importlib.import_module(module_name), name)
    assert issubclass(cls, ShoalError), f"{qualname} must derive from shoal.errors.ShoalError"


def test_the_scan_finds_the_hierarchy() -> None:
    assert "shoal.errors.DecodeError" in public_exceptions()
    assert set(public_exceptions()) >= KNOWN, "stale KNOWN entry"
