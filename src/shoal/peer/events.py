"""Events out of the peer-wire engine (`shoal.peer.connection.PeerConnection.next_event`).

Every event is a frozen, slotted dataclass; do not subclass them. Names say what the
*peer* did (``Choked`` = the peer choked us), so they never clash with the wire
message classes in `shoal.peer.messages`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias, final

if TYPE_CHECKING:
    from ..ids import PeerId
    from ..swarm.bitfield import Bitfield
    from .extension import Addr, ExtendedHandshake, PexPeer
    from .handshake import ReservedBits
    from .holepunch import HolepunchMessage

__all__ = [
    "AllowedFastReceived",
    "BitfieldReceived",
    "BlockReceived",
    "BlockRequested",
    "Choked",
    "ConnectionClosed",
    "ExtendedHandshakeReceived",
    "HandshakeReceived",
    "HaveAllReceived",
    "HaveNoneReceived",
    "HaveReceived",
    "HolepunchReceived",
    "MetadataPieceReceived",
    "MetadataRejected",
    "MetadataRequested",
    "PeerEvent",
    "PeerIdle",
    "PeerInterested",
    "PeerNotInterested",
    "PeerSnubbed",
    "PexReceived",
    "PortReceived",
    "RequestCancelled",
    "RequestRejected",
    "RequestTimedOut",
    "Suggested",
    "Unchoked",
]


@final
@dataclass(frozen=True, slots=True)
class HandshakeReceived:
    """The peer's BitTorrent handshake arrived (its info-hash matched ours)."""

    peer_id: PeerId
    reserved: ReservedBits


@final
@dataclass(frozen=True, slots=True)
class ExtendedHandshakeReceived:
    """A BEP 10 extended handshake (the first one, or a later update of `m`)."""

    handshake: ExtendedHandshake


@final
@dataclass(frozen=True, slots=True)
class BitfieldReceived:
    """The peer's pieces (a private copy; the engine keeps its own in `peer_pieces`)."""

    bitfield: Bitfield


@final
@dataclass(frozen=True, slots=True)
class HaveAllReceived:
    """BEP 6: the peer is a seed."""


@final
@dataclass(frozen=True, slots=True)
class HaveNoneReceived:
    """BEP 6: the peer has no pieces."""


@final
@dataclass(frozen=True, slots=True)
class HaveReceived:
    """The peer completed piece `index`."""

    index: int


@final
@dataclass(frozen=True, slots=True)
class Choked:
    """The peer choked us. Without BEP 6 our requests were dropped (see RequestRejected)."""


@final
@dataclass(frozen=True, slots=True)
class Unchoked:
    """The peer will now serve our requests."""


@final
@dataclass(frozen=True, slots=True)
class PeerInterested:
    """The peer wants pieces we have."""


@final
@dataclass(frozen=True, slots=True)
class PeerNotInterested:
    """The peer no longer wants anything from us."""


@final
@dataclass(frozen=True, slots=True)
class BlockReceived:
    """A block we requested. `data` may be a read-only view into the received bytes."""

    index: int
    begin: int
    data: bytes | memoryview


@final
@dataclass(frozen=True, slots=True)
class BlockRequested:
    """A valid request from the peer: answer with `send_piece` or `send_reject`."""

    index: int
    begin: int
    length: int


@final
@dataclass(frozen=True, slots=True)
class RequestCancelled:
    """The peer withdrew a request it made earlier; do not send that block."""

    index: int
    begin: int
    length: int


@final
@dataclass(frozen=True, slots=True)
class RequestRejected:
    """Our request will not be served: a BEP 6 reject, or a choke without BEP 6."""

    index: int
    begin: int
    length: int


@final
@dataclass(frozen=True, slots=True)
class RequestTimedOut:
    """Our request passed its deadline; the engine sent a cancel and forgot it."""

    index: int
    begin: int
    length: int


@final
@dataclass(frozen=True, slots=True)
class AllowedFastReceived:
    """BEP 6: we may request piece `index` even while choked."""

    index: int


@final
@dataclass(frozen=True, slots=True)
class Suggested:
    """BEP 6: the peer suggests we download piece `index`."""

    index: int


@final
@dataclass(frozen=True, slots=True)
class MetadataRequested:
    """BEP 9: the peer asks for metadata piece `piece`."""

    piece: int


@final
@dataclass(frozen=True, slots=True)
class MetadataPieceReceived:
    """BEP 9: metadata piece `piece` of an info dict of `total_size` bytes."""

    piece: int
    total_size: int
    data: bytes


@final
@dataclass(frozen=True, slots=True)
class MetadataRejected:
    """BEP 9: the peer will not send metadata piece `piece`."""

    piece: int


@final
@dataclass(frozen=True, slots=True)
class PexReceived:
    """BEP 11: contacts added (IPv4 and IPv6 together) and dropped by the peer."""

    added: tuple[PexPeer, ...]
    dropped: tuple[Addr, ...]


@final
@dataclass(frozen=True, slots=True)
class HolepunchReceived:
    """BEP 55: a ``ut_holepunch`` message (rendezvous, connect or error)."""

    message: HolepunchMessage


@final
@dataclass(frozen=True, slots=True)
class PortReceived:
    """BEP 5: the peer's DHT node listens on UDP `port`."""

    port: int


@final
@dataclass(frozen=True, slots=True)
class PeerSnubbed:
    """Requests were outstanding and no block arrived for ``snub_timeout`` seconds."""


@final
@dataclass(frozen=True, slots=True)
class PeerIdle:
    """Nothing at all arrived for ``idle_timeout`` seconds: close the connection."""


@final
@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed its side of the stream cleanly (between frames)."""


PeerEvent: TypeAlias = (
    HandshakeReceived
    | ExtendedHandshakeReceived
    | BitfieldReceived
    | HaveAllReceived
    | HaveNoneReceived
    | HaveReceived
    | Choked
    | Unchoked
    | PeerInterested
    | PeerNotInterested
    | BlockReceived
    | BlockRequested
    | RequestCancelled
    | RequestRejected
    | RequestTimedOut
    | AllowedFastReceived
    | Suggested
    | MetadataRequested
    | MetadataPieceReceived
    | MetadataRejected
    | PexReceived
    | HolepunchReceived
    | PortReceived
    | PeerSnubbed
    | PeerIdle
    | ConnectionClosed
)
