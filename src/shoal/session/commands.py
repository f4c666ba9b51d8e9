"""What a `TorrentEngine` asks its driver to do (its outputs besides peer bytes).

Frozen dataclasses, drained in order with `TorrentEngine.commands()`. The driver (the
Trio layer in ``torrent.py``, or `shoal.testing.swarmsim`) carries each out and
reports back through the engine's input methods where a result is needed (a dial's
outcome, a write refused for lack of buffer room, a verified piece, bytes read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias, final

if TYPE_CHECKING:
    from ..metainfo import Metainfo
    from ..torrent_events import TorrentEvent

__all__ = [
    "AddDhtNodes",
    "ClosePeer",
    "Command",
    "Dial",
    "Fail",
    "MetadataReady",
    "PiecesComplete",
    "Publish",
    "ReadPiece",
    "VerifyPiece",
    "WriteBlock",
]

Addr: TypeAlias = tuple[str, int]


@final
@dataclass(frozen=True, slots=True)
class Dial:
    """Open a connection to `addr`; report `peer_connected` or `dial_failed`.

    `plaintext`: skip MSE (a retry after the peer dropped our encrypted connection).
    `utp`: over uTP only, now (a BEP 55 hole punch: the peer dials us at the same time).
    """

    addr: Addr
    plaintext: bool = False
    utp: bool = False


@final
@dataclass(frozen=True, slots=True)
class ClosePeer:
    """Close connection `peer` (its key); `reason` goes on `PeerDisconnected`.

    The engine has already forgotten the peer; the driver only closes the stream.
    """

    peer: int
    reason: str


@final
@dataclass(frozen=True, slots=True)
class WriteBlock:
    """Copy a received block into storage now (synchronously: no await per block).

    If storage has no room, call `write_refused(index)` before the next input.
    """

    index: int
    begin: int
    data: bytes | memoryview


@final
@dataclass(frozen=True, slots=True)
class VerifyPiece:
    """Every block of piece `index` is written: hash it, then `piece_checked`."""

    index: int


@final
@dataclass(frozen=True, slots=True)
class ReadPiece:
    """Read verified piece `index` (to serve uploads), then `piece_read`."""

    index: int


@final
@dataclass(frozen=True, slots=True)
class Publish:
    """Give `event` to the torrent's subscribers."""

    event: TorrentEvent


@final
@dataclass(frozen=True, slots=True)
class MetadataReady:
    """The info dict verified: open storage, then call `start_data`."""

    metainfo: Metainfo


@final
@dataclass(frozen=True, slots=True)
class PiecesComplete:
    """Every wanted piece is verified: flush storage, then `completion_flushed`."""


@final
@dataclass(frozen=True, slots=True)
class AddDhtNodes:
    """DHT contacts learnt from peers (BEP 5 ``port`` messages)."""

    nodes: tuple[Addr, ...]


@final
@dataclass(frozen=True, slots=True)
class Fail:
    """The torrent cannot go on (e.g. its info dict is invalid)."""

    message: str


Command: TypeAlias = (
    Dial
    | ClosePeer
    | WriteBlock
    | VerifyPiece
    | ReadPiece
    | Publish
    | MetadataReady
    | PiecesComplete
    | AddDhtNodes
    | Fail
)
