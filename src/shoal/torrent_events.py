"""Events a `Torrent` publishes to its subscribers (``async for ev in torrent.events()``).

Frozen dataclasses; do not subclass them. They report what happened, for progress
displays and tests: nothing in the engine depends on anyone reading them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias, final

if TYPE_CHECKING:
    from .torrent_stats import TorrentStats

__all__ = [
    "Completed",
    "MetadataReceived",
    "PeerBanned",
    "PeerConnected",
    "PeerDisconnected",
    "PieceFailed",
    "PieceVerified",
    "Progress",
    "TorrentError",
    "TorrentEvent",
]

Addr: TypeAlias = tuple[str, int]


@final
@dataclass(frozen=True, slots=True)
class MetadataReceived:
    """The info dict arrived and hashed to the info-hash (magnets only)."""

    name: str
    size: int
    pieces: int


@final
@dataclass(frozen=True, slots=True)
class PeerConnected:
    """A peer finished the BitTorrent handshake. `client` is from its BEP 10 `v`, if any."""

    addr: Addr
    client: str
    encrypted: bool
    incoming: bool


@final
@dataclass(frozen=True, slots=True)
class PeerDisconnected:
    addr: Addr
    reason: str


@final
@dataclass(frozen=True, slots=True)
class PieceVerified:
    index: int


@final
@dataclass(frozen=True, slots=True)
class PieceFailed:
    """Piece `index` did not hash correctly; `peers` contributed blocks to it."""

    index: int
    peers: tuple[Addr, ...]


@final
@dataclass(frozen=True, slots=True)
class PeerBanned:
    addr: Addr
    reason: str


@final
@dataclass(frozen=True, slots=True)
class Progress:
    """Periodic statistics snapshot (about once a second while running)."""

    stats: TorrentStats


@final
@dataclass(frozen=True, slots=True)
class Completed:
    """Every selected piece is verified and flushed to disk."""


@final
@dataclass(frozen=True, slots=True)
class TorrentError:
    """The torrent stopped on an error it cannot recover from (e.g. disk full)."""

    message: str


TorrentEvent: TypeAlias = (
    MetadataReceived
    | PeerConnected
    | PeerDisconnected
    | PieceVerified
    | PieceFailed
    | PeerBanned
    | Progress
    | Completed
    | TorrentError
)
