"""Who has which piece: each peer's piece set and the availability buckets of `Picker`.

Theory of operation
-------------------
A mixin of `swarm.picker.Picker` (which owns the state it touches), kept apart so the
picker module holds the picking and the request bookkeeping, and this one the input
from the swarm that rarest-first sorts by: BEP 3 ``have``/``bitfield`` and BEP 6
``have_all``/``have_none``. Availability is kept per piece (``_avail``) and as bucket
bitsets (``_buckets[a]`` = pieces that exactly ``a`` non-seed peers have, with
``_fresh_in[a]`` counting the fresh pieces in each), so a ``have`` moves one bit
between adjacent buckets and a whole bitfield moves sets bucket by bucket. Seeds are
only counted (``_seeds``): they add the same to every piece. The picker module's
docstring describes the representation in full.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar, final

from ..errors import RemoteProtocolError
from .bitfield import Bitfield

__all__ = ["P", "PeerPieces", "PieceAvailability"]

P = TypeVar("P", bound=Hashable)


@final
class PeerPieces(Generic[P]):
    """What one peer has, and which blocks we have asked it for."""

    __slots__ = ("_int", "bits", "requests", "seed")

    def __init__(self, nbytes: int) -> None:
        self.bits = bytearray(nbytes)
        self.seed = False
        self._int: int | None = 0
        self.requests: set[tuple[int, int]] = set()  # (piece index, block number)

    def has(self, index: int) -> bool:
        return self.seed or bool(self.bits[index >> 3] & (0x80 >> (index & 7)))

    def as_int(self, all_mask: int) -> int:
        if self.seed:
            return all_mask
        if self._int is None:  # rebuilt lazily after a whole new bitfield
            self._int = int.from_bytes(self.bits, "big")
        return self._int


class PieceAvailability(Generic[P]):
    """The availability half of `Picker`; mixed into it, whose attributes these are."""

    num_pieces: int
    _nbytes: int
    _L: int  # bits in the wire layout: 8 * ceil(num_pieces / 8)
    _all: int
    _have: Bitfield
    _prio: bytearray
    _avail: list[int]
    _buckets: list[int]
    _fresh: int
    _fresh_in: list[int]
    _is_fresh: bytearray
    _seeds: int
    _peers: dict[P, PeerPieces[P]]

    def _bit(self, index: int) -> int:
        return 1 << (self._L - 1 - index)

    def _wanted(self, index: int) -> bool:
        return self._prio[index] != 0 and not self._have.test(index)

    def availability(self, index: int) -> int:
        """How many connected peers have piece `index` (seeds included)."""
        return self._avail[index] + self._seeds

    def _count_fresh(self) -> None:
        self._fresh_in = [(bucket & self._fresh).bit_count() for bucket in self._buckets]

    def _move(self, mask: int, up: bool) -> None:
        """Shift every piece in `mask` one availability bucket up or down."""
        buckets = self._buckets
        if up:
            buckets.append(0)
            for a in range(len(buckets) - 2, -1, -1):
                if moving := buckets[a] & mask:
                    buckets[a] ^= moving
                    buckets[a + 1] |= moving
        else:
            for a in range(1, len(buckets)):
                if moving := buckets[a] & mask:
                    buckets[a] ^= moving
                    buckets[a - 1] |= moving
        while len(buckets) > 1 and not buckets[-1]:
            buckets.pop()
        self._count_fresh()

    def _peer(self, peer: P) -> PeerPieces[P]:
        info = self._peers.get(peer)
        if info is None:
            info = self._peers[peer] = PeerPieces(self._nbytes)
        return info

    def peer_has(self, peer: P, index: int) -> bool:
        """A BEP 3 ``have``: `peer` now has piece `index`.

        Returns:
            Whether we want that piece and lack it (a cue to send ``interested``).

        Raises:
            RemoteProtocolError: `index` is not a piece of this torrent.
        """
        if not 0 <= index < self.num_pieces:
            raise RemoteProtocolError(f"have for piece {index} of {self.num_pieces}")
        info = self._peer(peer)
        if info.has(index):
            return self._wanted(index)
        info.bits[index >> 3] |= 0x80 >> (index & 7)
        bit = self._bit(index)
        if info._int is not None:  # ~1 µs here saves a ~20 µs rebuild at the next pick
            info._int |= bit
        a = self._avail[index]
        self._avail[index] = a + 1
        if a + 1 == len(self._buckets):
            self._buckets.append(0)
            self._fresh_in.append(0)
        self._buckets[a] ^= bit
        self._buckets[a + 1] |= bit
        if self._is_fresh[index]:
            self._fresh_in[a] -= 1
            self._fresh_in[a + 1] += 1
        return self._wanted(index)

    def peer_bitfield(self, peer: P, bitfield: Bitfield) -> None:
        """`peer`'s whole piece set (BEP 3 ``bitfield``, BEP 6 ``have_all``/``have_none``).

        Replaces whatever was known about `peer`'s pieces; its requests are kept.
        """
        if bitfield.num_pieces != self.num_pieces:
            raise ValueError(f"bitfield for {bitfield.num_pieces} pieces, not {self.num_pieces}")
        info = self._peer(peer)
        self._forget_pieces(info)
        if bitfield.has_all():
            info.seed = True
            self._seeds += 1
            return
        info.bits[:] = bitfield.to_bytes()
        info._int = None
        if bitfield.has_none():
            return
        avail = self._avail
        for i in bitfield:
            avail[i] += 1
        self._move(info.as_int(self._all), up=True)

    def peer_have_all(self, peer: P) -> None:
        """BEP 6 ``have_all``."""
        self.peer_bitfield(peer, Bitfield.all(self.num_pieces))

    def peer_have_none(self, peer: P) -> None:
        """BEP 6 ``have_none``."""
        self.peer_bitfield(peer, Bitfield.none(self.num_pieces))

    def _forget_pieces(self, info: PeerPieces[P]) -> None:
        if info.seed:
            info.seed = False
            self._seeds -= 1
        elif mask := info.as_int(self._all):
            avail = self._avail
            for i in Bitfield.from_bytes(bytes(info.bits), self.num_pieces):
                avail[i] -= 1
            self._move(mask, up=False)
        info.bits = bytearray(self._nbytes)
        info._int = 0
