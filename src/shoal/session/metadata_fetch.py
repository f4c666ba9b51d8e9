"""The BEP 9 metadata-fetch driver: feeds peer connections to a `MetadataAssembler`.

Theory of operation
-------------------
While a magnet's info dict is unknown, every open connection whose BEP 10 handshake
advertises ut_metadata and a ``metadata_size`` *offers* the metadata. `request_more`
gives each offering peer its size vote (once) and keeps it busy with up to the
assembler's per-peer request count, writing the requests into the peer's
`PeerConnection` engine. `piece_received` feeds a data message and returns what the
caller must do: nothing (`None`), ban the contributors of a dict that did not hash to
the info-hash (`MetadataBadHash`), fail the torrent because the verified bytes are not
a valid info dict (`MetadataInvalid`), or start the data phase (`MetadataDone`).
Unanswered requests are freed by `handle_timer(now)` (deadline from `get_timer()`).

Pure: time arrives as ``now``; the peer type is anything with ``conn`` (a
`PeerConnection`) and ``addr``. Every call that may queue requests returns the peers
whose engines got bytes, so the driver can flush them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Generic, Protocol, TypeVar, final

from ..errors import DecodeError
from ..metainfo import Metainfo, parse_info
from ..peer.connection import ConnectionState, PeerConnection
from ..peer.extension import UT_METADATA
from ..swarm.metadata import MetadataAssembler, MetadataHashMismatch, MetadataVerified

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "METADATA_REQUEST_TIMEOUT",
    "MetadataBadHash",
    "MetadataDone",
    "MetadataFetch",
    "MetadataInvalid",
    "MetadataPeer",
]

Addr = tuple[str, int]

#: BEP 9 has no deadline; 10 s lets a slow peer answer yet frees the piece for others.
METADATA_REQUEST_TIMEOUT: Final = 10.0


class MetadataPeer(Protocol):
    """What the fetch needs of a peer: its engine (and address, for bans)."""

    @property
    def conn(self) -> PeerConnection: ...

    @property
    def addr(self) -> Addr: ...

    def __hash__(self) -> int: ...


P = TypeVar("P", bound=MetadataPeer)


@final
@dataclass(frozen=True, slots=True)
class MetadataDone:
    """The info dict verified and parsed."""

    metainfo: Metainfo


@final
@dataclass(frozen=True, slots=True)
class MetadataBadHash(Generic[P]):
    """The assembled dict did not hash to the info-hash: ban every contributor."""

    blamed: frozenset[P]


@final
@dataclass(frozen=True, slots=True)
class MetadataInvalid:
    """The bytes hash to the info-hash but are no valid info dict: the torrent is bad."""

    message: str


def offers_metadata(conn: PeerConnection) -> bool:
    """Can this connection serve the info dict (open, ut_metadata, a size)?"""
    return (
        conn.state is ConnectionState.OPEN
        and conn.peer_supports(UT_METADATA)
        and bool(conn.peer_metadata_size)
    )


@final
class MetadataFetch(Generic[P]):
    """Drives `MetadataAssembler` from the torrent's peers (module docstring)."""

    def __init__(self, info_hash: bytes, *, request_timeout: float = METADATA_REQUEST_TIMEOUT):
        self.asm: MetadataAssembler[P] = MetadataAssembler(
            bytes(info_hash), request_timeout=request_timeout
        )
        self._sized: set[P] = set()

    @property
    def done(self) -> bool:
        return self.asm.result is not None

    def peer_count(self, peers: Iterable[P]) -> int:
        """How many of `peers` offer the metadata."""
        return sum(1 for p in peers if offers_metadata(p.conn))

    def request_more(self, peers: Iterable[P], now: float) -> list[P]:
        """Keep every offering peer busy; returns the peers that got requests."""
        touched: list[P] = []
        if self.done:
            return touched
        for peer in peers:
            conn = peer.conn
            if not offers_metadata(conn):
                continue
            if peer not in self._sized:
                self._sized.add(peer)
                size = conn.peer_metadata_size
                assert size is not None
                self.asm.set_size(peer, size)
            sent = False
            while (piece := self.asm.next_request(peer, now)) is not None:
                conn.send_metadata_request(piece)
                sent = True
            if sent:
                touched.append(peer)
        return touched

    def piece_received(
        self, peer: P, piece: int, data: bytes
    ) -> MetadataDone | MetadataBadHash[P] | MetadataInvalid | None:
        """Feed one BEP 9 data message (see the module docstring for the outcomes).

        Raises:
            RemoteProtocolError: a piece of the wrong length (ends that peer).
        """
        if self.done:
            return None
        outcome = self.asm.piece_received(peer, piece, data)
        if isinstance(outcome, MetadataHashMismatch):
            return MetadataBadHash(outcome.blamed)
        if isinstance(outcome, MetadataVerified):
            try:
                info = parse_info(outcome.raw)
            except DecodeError as exc:
                return MetadataInvalid(f"the torrent's info dict is invalid: {exc}")
            return MetadataDone(Metainfo(info, None, (), (), None, None, None))
        return None

    def rejected(self, peer: P, piece: int) -> None:
        """BEP 9 reject: do not ask `peer` for `piece` again."""
        self.asm.piece_rejected(peer, piece)

    def take_banned(self) -> list[P]:
        """Peers the assembler banned since the last call (too many strikes): close them."""
        return self.asm.take_banned()

    def get_timer(self) -> float | None:
        return None if self.done else self.asm.get_timer()

    def handle_timer(self, now: float) -> None:
        """Free requests past their deadline (call `request_more` afterwards)."""
        timer = self.asm.get_timer()
        if timer is not None and now >= timer:
            self.asm.handle_timer(now)

    def peer_left(self, peer: P) -> None:
        self.asm.remove_peer(peer)
        self._sized.discard(peer)
