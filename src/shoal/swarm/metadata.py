"""`MetadataAssembler`: fetch a torrent's info dict from peers over BEP 9 (ut_metadata).

Theory of operation
-------------------
A magnet link gives only the info-hash. Peers that have the metadata say so with
``metadata_size`` in their BEP 10 handshake, and serve it in 16 KiB pieces. The
assembler is the pure bookkeeping between them; the torrent task drives it::

    asm.set_size(peer, hs.metadata_size)          # on ExtendedHandshakeReceived
    while (piece := asm.next_request(peer, now)) is not None:
        conn.send_metadata_request(piece)
    result = asm.piece_received(peer, piece, data) # on MetadataPieceReceived
    asm.piece_rejected(peer, piece)                # on MetadataRejected
    asm.handle_timer(now) at asm.get_timer()       # requests that went unanswered

Spreading: each peer has at most ``max_requests_per_peer`` requests in flight, and a
free piece (nobody asked yet) is always preferred to a duplicate, so with several peers
the pieces are fetched from several peers in parallel. When every missing piece is
already in flight, an idle peer may duplicate the one with the fewest requests (as in
a piece picker's endgame), so one slow peer cannot stall the last piece. A peer that
rejected a piece is not asked for it again; a request unanswered after
``request_timeout`` seconds is freed (and reported by `handle_timer`).

Size policy. ``metadata_size`` comes from untrusted peers, so a size above
``max_size`` (default 8 MiB, see `shoal.peer.extension.MAX_METADATA_SIZE`) or below 1
is refused outright. Peers may disagree: the first acceptable size is adopted and
only peers that announced that same size are asked; the others are kept as votes.
If the assembled bytes do not hash to the info-hash, the size may have been the lie,
so after a failure the size is re-chosen as the one announced by the most peers that
are not blamed (ties: the earliest announced).

Verification. One SHA-1 covers the whole dict, so a mismatch cannot say which piece
was bad: every peer that contributed a piece is reported in `MetadataHashMismatch`
and banned from this assembler (the caller will usually drop them too), all pieces
are discarded, and fetching restarts from the remaining peers. A single-source
failure therefore names the culprit exactly; a multi-source one names a superset.
On success `MetadataVerified.raw` holds the exact bytes that hashed to the info-hash;
parse them with `shoal.metainfo.parse_info`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar, final

from ..errors import LocalProtocolError, RemoteProtocolError
from ..peer.extension import MAX_METADATA_SIZE, METADATA_PIECE_SIZE, metadata_piece_count

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT",
    "MetadataAssembler",
    "MetadataHashMismatch",
    "MetadataVerified",
]

P = TypeVar("P", bound=Hashable)

#: Seconds a peer has to answer one metadata request (one 16 KiB message).
DEFAULT_REQUEST_TIMEOUT: Final = 20.0


@final
@dataclass(frozen=True, slots=True)
class MetadataVerified:
    """The info dict, byte for byte as it hashed to the info-hash."""

    raw: bytes


@final
@dataclass(frozen=True, slots=True)
class MetadataHashMismatch(Generic[P]):
    """The assembled bytes did not hash to the info-hash; `blamed` contributed to them."""

    blamed: frozenset[P]


@final
class MetadataAssembler(Generic[P]):
    """Collect the pieces of one info dict from many peers (see the module docstring).

    Args:
        info_hash: SHA-1 the assembled bytes must have.
        max_size: largest ``metadata_size`` believed.
        request_timeout: seconds before an unanswered request is freed.
        max_requests_per_peer: requests in flight per peer.
    """

    def __init__(
        self,
        info_hash: bytes,
        *,
        max_size: int = MAX_METADATA_SIZE,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        max_requests_per_peer: int = 2,
    ) -> None:
        if len(info_hash) != 20:
            raise ValueError("info_hash must be 20 bytes")
        if max_size < 1 or max_requests_per_peer < 1:
            raise ValueError("max_size and max_requests_per_peer must be positive")
        self.info_hash = bytes(info_hash)
        self.max_size = max_size
        self.request_timeout = request_timeout
        self.max_requests_per_peer = max_requests_per_peer
        #: The adopted ``metadata_size``, or ``None`` until a peer announces one.
        self.size: int | None = None
        #: Set once the metadata is verified.
        self.result: bytes | None = None
        self.banned: set[P] = set()
        self._announced: dict[P, int] = {}  # insertion order = announcement order
        self._pieces: list[bytes | None] = []
        self._sources: list[P | None] = []
        self._inflight: dict[tuple[P, int], float] = {}  # (peer, piece) → deadline
        self._rejected: set[tuple[P, int]] = set()
        #: Data for pieces we did not ask that peer for (ignored).
        self.unsolicited = 0

    # ---- peers and size --------------------------------------------------------------

    def set_size(self, peer: P, total: int) -> bool:
        """Record `peer`'s ``metadata_size``. True if the peer can now be asked."""
        if not 1 <= total <= self.max_size or peer in self.banned:
            return False
        self._announced[peer] = total
        if self.size is None and self.result is None:
            self._adopt(total)
        return total == self.size

    def remove_peer(self, peer: P) -> None:
        """Forget a disconnected peer: its requests become free again."""
        self._announced.pop(peer, None)
        for key in [k for k in self._inflight if k[0] == peer]:
            del self._inflight[key]
        self._rejected = {k for k in self._rejected if k[0] != peer}

    def _adopt(self, size: int | None) -> None:
        self.size = size
        n = 0 if size is None else metadata_piece_count(size)
        self._pieces = [None] * n
        self._sources = [None] * n
        self._inflight.clear()
        self._rejected.clear()

    def _usable(self, peer: P) -> bool:
        return (
            self.result is None
            and self.size is not None
            and peer not in self.banned
            and self._announced.get(peer) == self.size
        )

    @property
    def missing(self) -> list[int]:
        """Pieces not yet received, ascending."""
        return [i for i, data in enumerate(self._pieces) if data is None]

    # ---- requests --------------------------------------------------------------------

    def next_request(self, peer: P, now: float) -> int | None:
        """A piece to request from `peer` now (recorded as in flight), or ``None``."""
        if not self._usable(peer):
            return None
        mine = [piece for (p, piece) in self._inflight if p == peer]
        if len(mine) >= self.max_requests_per_peer:
            return None
        load: dict[int, int] = {}
        for _, piece in self._inflight:
            load[piece] = load.get(piece, 0) + 1
        candidates = [i for i in self.missing if i not in mine and (peer, i) not in self._rejected]
        if not candidates:
            return None
        # Free pieces first (load 0), then the least duplicated; lowest index breaks ties.
        piece = min(candidates, key=lambda i: (load.get(i, 0), i))
        self._inflight[(peer, piece)] = now + self.request_timeout
        return piece

    def piece_rejected(self, peer: P, piece: int) -> None:
        """BEP 9 reject: free the request and do not ask `peer` for `piece` again."""
        if self._inflight.pop((peer, piece), None) is not None:
            self._rejected.add((peer, piece))

    def get_timer(self) -> float | None:
        """The earliest request deadline, or ``None``."""
        return min(self._inflight.values(), default=None)

    def handle_timer(self, now: float) -> list[tuple[P, int]]:
        """Free every request past its deadline; returns the (peer, piece) pairs freed."""
        expired = [key for key, deadline in self._inflight.items() if deadline <= now]
        for key in expired:
            del self._inflight[key]
        return expired

    # ---- data ------------------------------------------------------------------------

    def piece_received(
        self, peer: P, piece: int, data: bytes
    ) -> MetadataVerified | MetadataHashMismatch[P] | None:
        """A BEP 9 data message. Returns the outcome once the last piece is in.

        Data we did not request from `peer` (late, after a timeout or a failure) is
        ignored and counted in `unsolicited`.

        Raises:
            RemoteProtocolError: the piece has the wrong length for the adopted size
                (BEP 9: every piece but the last is exactly 16 KiB).
        """
        if self._inflight.pop((peer, piece), None) is None:
            self.unsolicited += 1
            return None
        assert self.size is not None  # requests exist only once a size is adopted
        expected = min(METADATA_PIECE_SIZE, self.size - piece * METADATA_PIECE_SIZE)
        if len(data) != expected:
            raise RemoteProtocolError(
                f"metadata piece {piece} has {len(data)} bytes, expected {expected}"
            )
        # In flight implies missing: filling a piece cancels every request for it.
        self._pieces[piece] = bytes(data)
        self._sources[piece] = peer
        for key in [k for k in self._inflight if k[1] == piece]:
            del self._inflight[key]  # duplicates of a filled piece are no longer needed
        if any(p is None for p in self._pieces):
            return None
        return self._verify()

    def _verify(self) -> MetadataVerified | MetadataHashMismatch[P]:
        raw = b"".join(p for p in self._pieces if p is not None)
        if hashlib.sha1(raw).digest() == self.info_hash:
            self.result = raw
            self._inflight.clear()
            return MetadataVerified(raw)
        blamed = frozenset(s for s in self._sources if s is not None)
        self.banned |= blamed
        self._adopt(self._most_supported_size())
        return MetadataHashMismatch(blamed)

    def _most_supported_size(self) -> int | None:
        votes: dict[int, int] = {}
        for peer, size in self._announced.items():
            if peer not in self.banned:
                votes[size] = votes.get(size, 0) + 1
        if not votes:
            return None
        best = max(votes.values())
        return next(size for size, count in votes.items() if count == best)

    def raw(self) -> bytes:
        """The verified info dict.

        Raises:
            LocalProtocolError: not complete yet.
        """
        if self.result is None:
            raise LocalProtocolError("metadata not complete")
        return self.result
