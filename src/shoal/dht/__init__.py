"""Mainline DHT (BEP 5) as sans-IO pieces: KRPC codec, compact info, tokens, BEP 42 ids."""

from __future__ import annotations

from .compact import NodeInfo as NodeInfo

__all__ = ["NodeInfo"]
