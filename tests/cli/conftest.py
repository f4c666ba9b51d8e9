"""Fixtures for the command-line tests."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(autouse=True)
def _restore_shoal_logger() -> Iterator[None]:
    """`main` configures the ``shoal`` logger; undo it so tests stay independent."""
    logger = logging.getLogger("shoal")
    level, handlers = logger.level, list(logger.handlers)
    yield
    logger.setLevel(level)
    logger.handlers[:] = handlers
