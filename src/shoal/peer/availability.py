"""`PeerAvailability`: which pieces the remote peer has, even before we know how many
pieces the torrent has.

Theory of operation
-------------------
BEP 3 and BEP 6 give three ways to state a peer's initial pieces (bitfield, have_all,
have_none), valid only as the first message after the handshake, followed by any
number of haves. With a magnet link the piece count is unknown until the metadata
arrives, so the bitfield's length and the haves' indices cannot be checked yet. They
are kept as received (the raw bitfield, the kind of first message and a set of have
indices) and checked and replayed as events by `set_num_pieces`.

BEP 3 and BEP 6 allow the first-message form only once, before any have. aria2 1.36
breaks that rule: it re-sends its whole bitfield after every piece it completes. Dropping
it would make aria2 reconnect every ~10 s, so a late bitfield or have_all is read as the
haves it adds (a peer never loses pieces, so cleared bits are ignored) and a late
have_none is ignored. BEP 10 extended messages may precede the first message, because
several clients send their extended handshake first. The pending have set is capped
(`MAX_PENDING_HAVES`): a real swarm sends a handful while we fetch the metadata, so
more than that is a flood.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Final, final

from ..errors import RemoteProtocolError
from ..swarm.bitfield import Bitfield
from . import events as ev

if TYPE_CHECKING:
    from .events import PeerEvent

__all__ = ["MAX_PENDING_HAVES", "FirstMessage", "PeerAvailability"]

MAX_PENDING_HAVES: Final = 65536


class FirstMessage(enum.Enum):
    """Which of the three "first message" forms the peer used."""

    BITFIELD = "bitfield"
    HAVE_ALL = "have_all"
    HAVE_NONE = "have_none"


@final
class PeerAvailability:
    """The remote peer's pieces. Methods return the events to report, in order.

    Every method that takes remote input raises only `RemoteProtocolError` or
    `DecodeError` (a bitfield of the wrong length or with spare bits set).
    """

    __slots__ = ("_bits", "_haves", "_kind", "_seen", "num_pieces", "pieces")

    def __init__(self, num_pieces: int | None) -> None:
        self.num_pieces = num_pieces
        #: The peer's pieces once the count is known and it said anything (else None).
        self.pieces: Bitfield | None = None
        self._seen = False
        self._kind: FirstMessage | None = None
        self._bits: bytes | None = None
        self._haves: set[int] = set()

    def first_message(self, kind: FirstMessage, bits: bytes | None) -> list[PeerEvent]:
        """A bitfield (with `bits`), have_all or have_none arrived."""
        if self._seen:
            return self._late(kind, bits)
        self._seen = True
        if self.num_pieces is None:
            self._kind, self._bits = kind, bits
            return []
        return [self._apply(kind, bits, self.num_pieces)]

    def _apply(self, kind: FirstMessage, bits: bytes | None, n: int) -> PeerEvent:
        if kind is FirstMessage.BITFIELD:
            assert bits is not None
            self.pieces = Bitfield.from_bytes(bits, n)
            return ev.BitfieldReceived(self.pieces.copy())
        if kind is FirstMessage.HAVE_ALL:
            self.pieces = Bitfield.all(n)
            return ev.HaveAllReceived()
        self.pieces = Bitfield.none(n)
        return ev.HaveNoneReceived()

    def _late(self, kind: FirstMessage, bits: bytes | None) -> list[PeerEvent]:
        """A repeated bitfield/have_all (see the module docstring): the haves it adds."""
        if kind is FirstMessage.HAVE_NONE:
            return []
        n = self.num_pieces
        if n is None:
            if kind is FirstMessage.HAVE_ALL:
                self._kind, self._bits = kind, None
                return []
            assert bits is not None
            out: list[PeerEvent] = []
            for byte_index, byte in enumerate(bits):
                for bit in range(8) if byte else ():
                    if byte & (0x80 >> bit):
                        out += self.have(8 * byte_index + bit)
            return out
        new = (
            Bitfield.all(n)
            if kind is FirstMessage.HAVE_ALL
            else Bitfield.from_bytes(bits or b"", n)
        )
        old = self.pieces if self.pieces is not None else Bitfield.none(n)
        out = []
        for index in new - old:
            out += self.have(index)
        return out

    def have(self, index: int) -> list[PeerEvent]:
        """A have message (the decoder has checked ``index < num_pieces`` if known)."""
        self._seen = True
        if self.num_pieces is None:
            if index not in self._haves and len(self._haves) >= MAX_PENDING_HAVES:
                raise RemoteProtocolError("too many have messages before the metadata")
            self._haves.add(index)
            return []
        if self.pieces is None:
            self.pieces = Bitfield.none(self.num_pieces)
        self.pieces.set(index)
        return [ev.HaveReceived(index)]

    def set_num_pieces(self, n: int) -> list[PeerEvent]:
        """Check and replay what arrived before the piece count was known."""
        self.num_pieces = n
        out = [] if self._kind is None else [self._apply(self._kind, self._bits, n)]
        for index in sorted(self._haves):
            if index >= n:
                raise RemoteProtocolError(f"have for piece {index} of {n}")
            out += self.have(index)
        self._kind = self._bits = None
        self._haves.clear()
        return out
