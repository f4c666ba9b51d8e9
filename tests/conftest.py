"""Shared test configuration: hypothesis profiles (dev / ci / fuzz via HYPOTHESIS_PROFILE)
and per-test isolation from the user's shoal config and state."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from pathlib import Path

#: Where a test without ``--bootstrap`` bootstraps (the discard port; see below).
SAFE_BOOTSTRAP = "127.0.0.1:9"

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "fuzz", max_examples=1_000_000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(autouse=True)
def _isolated_shoal_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep every test (and every `shoal` subprocess it starts) away from the real
    ~/.config/shoal and ~/.local/state/shoal: concurrent runs must not share a DHT node
    ID or resume files, and a developer's config must not change test outcomes."""
    base: Path = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(base / "state"))
    for name in list(os.environ):
        if name.startswith("SHOAL_"):
            monkeypatch.delenv(name)
    # Network-safety net: a `shoal` subprocess or a config that a test forgets to give
    # ``--bootstrap`` falls back to this discard port on loopback, never to the public
    # routers of the product defaults (tests that check those defaults unset it).
    monkeypatch.setenv("SHOAL_BOOTSTRAP", SAFE_BOOTSTRAP)
