"""Swarm-level pure logic: piece availability (`Bitfield`) and, later, picking and choking."""

from __future__ import annotations

from .bitfield import Bitfield as Bitfield

__all__ = ["Bitfield"]
