"""The public surface: every name in each package's ``__all__`` exists and is documented."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import shoal


def public_modules() -> list[str]:
    names = ["shoal"]
    names.extend(
        info.name
        for info in pkgutil.walk_packages(shoal.__path__, "shoal.")
        if not any(part.startswith("_") for part in info.name.split("."))
    )
    return names


@pytest.mark.parametrize("name", public_modules())
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        pytest.skip(f"{name} has no __all__")
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ lists missing names {missing}"
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"


@pytest.mark.parametrize("name", public_modules())
def test_module_has_docstring(name: str) -> None:
    module = importlib.import_module(name)
    doc = module.__doc__ or ""
    assert doc.strip(), f"{name} needs a module docstring"


def test_facade_exports_errors_and_version() -> None:
    assert isinstance(shoal.__version__, str)
    assert issubclass(shoal.DecodeError, shoal.ShoalError)
    assert issubclass(shoal.DecodeError, ValueError)
    assert issubclass(shoal.HandshakeError, shoal.RemoteProtocolError)


def test_protocol_error_is_abstract() -> None:
    with pytest.raises(TypeError):
        shoal.ProtocolError("x")
    err = shoal.RemoteProtocolError("bad", hint=203)
    assert err.hint == 203


def test_importing_shoal_does_not_import_the_trio_layer() -> None:
    code = "import sys, shoal; print(sorted(m for m in sys.modules if m.startswith('shoal.net')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
