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
    for peer in asm.take_banned(): drop(peer)      # after any of the above

Every ``metadata_size`` comes from an untrusted peer, and one lying peer must not be
able to stall the download while an honest one is connected. So:

* **Groups by claimed size.** Peers are grouped by the size they announced, and each
  group assembles its own copy. Every peer that offers metadata is asked, whatever it
  claims, so a liar's size never shadows an honest one. Up to ``max_groups`` groups are
  active at once (most supporters first, then the earliest announced), which bounds the
  memory held for unverified claims at ``max_groups × max_size``.
* **Spreading within a group.** Each peer has at most ``max_requests_per_peer``
  requests in flight, and a free piece (nobody asked yet) is always preferred to a
  duplicate. When every missing piece is in flight, an idle peer duplicates the one
  with the fewest requests (as in a piece picker's endgame), so one slow peer cannot
  hold the last piece.
* **Strikes.** A request unanswered after ``request_timeout`` seconds, or a BEP 9
  reject, is a strike against the peer (a rejected piece is not asked of it again). A
  peer with ``max_strikes`` strikes and fewer delivered pieces than strikes is banned:
  a size that no data backs up costs its claimer the slot within
  ``max_strikes × request_timeout`` seconds, while the honest groups run alongside.
* **Verification and blame.** One SHA-1 covers the whole dict, so a mismatch cannot
  say which piece was bad. A group fed by a single peer names the culprit exactly: it
  is banned. A shared group that fails names only suspects: its size is switched to
  *solo* mode, where every peer claiming it assembles its own private copy, so the
  next mismatch is again exact and honest peers finish in parallel with the liar.

`take_banned` hands the caller each newly banned peer once, to disconnect it. On
success `MetadataVerified.raw` holds the exact bytes that hashed to the info-hash;
parse them with `shoal.metainfo.parse_info`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from dataclasses import dataclass, field
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
    """A group's assembled bytes did not hash to the info-hash.

    `blamed`: the single source, now banned. `suspects`: the sources of a shared group
    (not banned; their size now assembles one private copy per peer).
    """

    blamed: frozenset[P]
    suspects: frozenset[P] = frozenset()


@dataclass(slots=True)
class _Group(Generic[P]):
    size: int
    order: int  # creation order: ties between equally supported sizes
    pieces: list[bytes | None] = field(default_factory=list)
    sources: list[P | None] = field(default_factory=list)

    def reset(self) -> None:
        n = metadata_piece_count(self.size)
        self.pieces = [None] * n
        self.sources = [None] * n

    @property
    def missing(self) -> list[int]:
        return [i for i, data in enumerate(self.pieces) if data is None]


#: A group is one claimed size, shared by every peer claiming it (owner ``None``) or,
#: after a shared mismatch, private to one peer.
_Key = tuple[int, object]


@final
class MetadataAssembler(Generic[P]):
    """Collect the pieces of one info dict from many peers (see the module docstring).

    Args:
        info_hash: SHA-1 the assembled bytes must have.
        max_size: largest ``metadata_size`` believed.
        request_timeout: seconds before an unanswered request is freed (a strike).
        max_requests_per_peer: requests in flight per peer.
        max_strikes: timeouts and rejects after which a peer that has delivered fewer
            pieces than that is banned.
        max_groups: claimed sizes assembled at once (bounds memory to
            ``max_groups × max_size``).
    """

    def __init__(
        self,
        info_hash: bytes,
        *,
        max_size: int = MAX_METADATA_SIZE,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        max_requests_per_peer: int = 2,
        max_strikes: int = 2,
        max_groups: int = 4,
    ) -> None:
        if len(info_hash) != 20:
            raise ValueError("info_hash must be 20 bytes")
        if min(max_size, max_requests_per_peer, max_strikes, max_groups) < 1:
            raise ValueError("sizes and counts must be positive")
        self.info_hash = bytes(info_hash)
        self.max_size = max_size
        self.request_timeout = request_timeout
        self.max_requests_per_peer = max_requests_per_peer
        self.max_strikes = max_strikes
        self.max_groups = max_groups
        #: Set once the metadata is verified.
        self.result: bytes | None = None
        self.banned: set[P] = set()
        self._new_bans: list[P] = []
        self._announced: dict[P, int] = {}  # insertion order = announcement order
        self._groups: dict[_Key, _Group[P]] = {}
        self._member: dict[P, _Key] = {}
        self._solo_sizes: set[int] = set()  # sizes whose shared copy failed the hash
        self._inflight: dict[tuple[P, int], float] = {}  # (peer, piece) → deadline
        self._rejected: set[tuple[P, int]] = set()
        self._strikes: dict[P, int] = {}
        self._delivered: dict[P, int] = {}
        self._created = 0
        #: Data for pieces we did not ask that peer for (ignored).
        self.unsolicited = 0

    # ---- peers and sizes -------------------------------------------------------------

    def set_size(self, peer: P, total: int) -> bool:
        """Record `peer`'s ``metadata_size``. True if the peer can now be asked."""
        if not 1 <= total <= self.max_size or peer in self.banned or self.result is not None:
            return False
        if self._announced.get(peer) != total:
            self._leave(peer)
            self._announced[peer] = total
            key: _Key = (total, peer if total in self._solo_sizes else None)
            if key not in self._groups:
                self._groups[key] = _Group(total, self._created)
                self._groups[key].reset()
                self._created += 1
            self._member[peer] = key
        return self._member[peer] in self._active()

    def remove_peer(self, peer: P) -> None:
        """Forget a disconnected peer: its requests become free again."""
        self._leave(peer)
        self._rejected = {k for k in self._rejected if k[0] != peer}

    def _leave(self, peer: P) -> None:
        self._announced.pop(peer, None)
        key = self._member.pop(peer, None)
        for k in [k for k in self._inflight if k[0] == peer]:
            del self._inflight[k]
        if key is not None and key not in self._member.values():
            self._groups.pop(key, None)  # nobody claims it any more: free its pieces

    def _active(self) -> list[_Key]:
        """The groups being assembled: most supporters first, then the oldest."""
        if self.result is not None:
            return []
        support: dict[int, int] = {}
        for size in self._announced.values():
            support[size] = support.get(size, 0) + 1
        ranked = sorted(self._groups, key=lambda k: (-support[k[0]], self._groups[k].order))
        for key in ranked[self.max_groups :]:
            self._groups[key].reset()  # parked: hold no unverified bytes
        return ranked[: self.max_groups]

    @property
    def size(self) -> int | None:
        """The size being assembled by the best supported group (or the verified one)."""
        if self.result is not None:
            return len(self.result)
        active = self._active()
        return active[0][0] if active else None

    @property
    def missing(self) -> list[int]:
        """Pieces the best supported group still lacks, ascending."""
        active = self._active()
        return self._groups[active[0]].missing if active else []

    # ---- requests --------------------------------------------------------------------

    def next_request(self, peer: P, now: float) -> int | None:
        """A piece to request from `peer` now (recorded as in flight), or ``None``."""
        key = self._member.get(peer)
        if key is None or peer in self.banned or key not in self._active():
            return None
        mine = [piece for (p, piece) in self._inflight if p == peer]
        if len(mine) >= self.max_requests_per_peer:
            return None
        load: dict[int, int] = {}
        for p, piece in self._inflight:
            if self._member.get(p) == key:
                load[piece] = load.get(piece, 0) + 1
        candidates = [
            i
            for i in self._groups[key].missing
            if i not in mine and (peer, i) not in self._rejected
        ]
        if not candidates:
            return None
        # Free pieces first (load 0), then the least duplicated; lowest index breaks ties.
        piece = min(candidates, key=lambda i: (load.get(i, 0), i))
        self._inflight[(peer, piece)] = now + self.request_timeout
        return piece

    def piece_rejected(self, peer: P, piece: int) -> None:
        """BEP 9 reject: a strike, and `peer` is not asked for `piece` again."""
        if self._inflight.pop((peer, piece), None) is not None:
            self._rejected.add((peer, piece))
            self._strike(peer)

    def get_timer(self) -> float | None:
        """The earliest request deadline, or ``None``."""
        return min(self._inflight.values(), default=None)

    def handle_timer(self, now: float) -> list[tuple[P, int]]:
        """Free every request past its deadline (a strike each); returns the pairs freed."""
        expired = [key for key, deadline in self._inflight.items() if deadline <= now]
        for key in expired:
            if self._inflight.pop(key, None) is not None:
                self._strike(key[0])
        return expired

    def take_banned(self) -> list[P]:
        """Peers banned since the last call (each returned once): disconnect them."""
        out, self._new_bans = self._new_bans, []
        return out

    def _strike(self, peer: P) -> None:
        strikes = self._strikes[peer] = self._strikes.get(peer, 0) + 1
        if strikes >= self.max_strikes and strikes > self._delivered.get(peer, 0):
            self._ban(peer)

    def _ban(self, peer: P) -> None:
        if peer not in self.banned:
            self.banned.add(peer)
            self._new_bans.append(peer)
        self._leave(peer)

    # ---- data ------------------------------------------------------------------------

    def piece_received(
        self, peer: P, piece: int, data: bytes
    ) -> MetadataVerified | MetadataHashMismatch[P] | None:
        """A BEP 9 data message. Returns the outcome once the peer's group is complete.

        Data we did not request from `peer` (late, after a timeout or a failure) is
        ignored and counted in `unsolicited`.

        Raises:
            RemoteProtocolError: the piece has the wrong length for the size the peer
                announced (BEP 9: every piece but the last is exactly 16 KiB).
        """
        key = self._member.get(peer)
        if self._inflight.pop((peer, piece), None) is None or key is None:
            self.unsolicited += 1
            return None
        group = self._groups[key]
        expected = min(METADATA_PIECE_SIZE, group.size - piece * METADATA_PIECE_SIZE)
        if len(data) != expected:
            raise RemoteProtocolError(
                f"metadata piece {piece} has {len(data)} bytes, expected {expected}"
            )
        self._delivered[peer] = self._delivered.get(peer, 0) + 1
        if key not in self._active():
            return None  # parked meanwhile: its bytes are not kept
        group.pieces[piece] = bytes(data)
        group.sources[piece] = peer
        for k in [k for k in self._inflight if k[1] == piece and self._member.get(k[0]) == key]:
            del self._inflight[k]  # duplicates of a filled piece are no longer needed
        if group.missing:
            return None
        return self._verify(key, group)

    def _verify(self, key: _Key, group: _Group[P]) -> MetadataVerified | MetadataHashMismatch[P]:
        raw = b"".join(p for p in group.pieces if p is not None)
        if hashlib.sha1(raw).digest() == self.info_hash:
            self.result = raw
            self._inflight.clear()
            self._groups.clear()
            self._member.clear()
            return MetadataVerified(raw)
        sources = frozenset(s for s in group.sources if s is not None)
        if len(sources) == 1:
            [culprit] = sources
            self._ban(culprit)
            group.reset()
            return MetadataHashMismatch(sources)
        # Several sources: any of them may have lied. Give each claimant its own copy.
        self._solo_sizes.add(group.size)
        members = [p for p, k in self._member.items() if k == key]
        for p in members:
            self._leave(p)
            self.set_size(p, group.size)
        self._groups.pop(key, None)
        return MetadataHashMismatch(frozenset(), suspects=sources)

    def raw(self) -> bytes:
        """The verified info dict.

        Raises:
            LocalProtocolError: not complete yet.
        """
        if self.result is None:
            raise LocalProtocolError("metadata not complete")
        return self.result
