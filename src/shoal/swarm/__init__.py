"""Swarm-level pure logic: piece availability (`Bitfield`) and, later, picking and choking."""

from __future__ import annotations

from .bitfield import Bitfield as Bitfield
from .blocks import BLOCK_SIZE as BLOCK_SIZE
from .blocks import Block as Block
from .blocks import PieceBlocks as PieceBlocks
from .choker import ChokeDecision as ChokeDecision
from .choker import Choker as Choker
from .choker import PeerStats as PeerStats
from .metadata import MetadataAssembler as MetadataAssembler
from .metadata import MetadataHashMismatch as MetadataHashMismatch
from .metadata import MetadataVerified as MetadataVerified
from .picker import Picker as Picker
from .priorities import file_piece_priorities as file_piece_priorities

__all__ = [
    "BLOCK_SIZE",
    "Bitfield",
    "Block",
    "ChokeDecision",
    "Choker",
    "MetadataAssembler",
    "MetadataHashMismatch",
    "MetadataVerified",
    "PeerStats",
    "Picker",
    "PieceBlocks",
    "file_piece_priorities",
]
