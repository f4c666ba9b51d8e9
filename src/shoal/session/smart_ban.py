"""Smart ban: find the peer that sent a corrupt block, from per-block digests.

Theory of operation
-------------------
A piece that fails its SHA-1 says only that *some* block was wrong. We remember who
sent each block of a piece in flight (`block_received`). When the piece fails,
`piece_failed` takes the rejected bytes and keeps one SHA-1 per block with its sender
(the piece becomes a *suspect*). The piece is fetched again; once a copy verifies,
`piece_verified` compares every remembered block with the same range of the good
copy: a sender whose block differs is banned. (libtorrent's ``smart_ban`` plugin works
the same way.) Digests are taken only on failure, so the per-block path stays cheap.

A peer that alone supplied every block of `sole_failures_before_ban` failed pieces is
banned too, even before any copy verifies: it cannot blame anyone else.

Pure: the caller reads the rejected and the verified bytes from storage and acts on the
returned `Ban`s. The peer type is generic (an address in ``shoal.torrent``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar, final

__all__ = ["SOLE_FAILURES_BEFORE_BAN", "Ban", "SmartBan"]

P = TypeVar("P")

#: Failed pieces a peer may have supplied alone before it is banned.
SOLE_FAILURES_BEFORE_BAN: Final = 2


@final
@dataclass(frozen=True, slots=True)
class Ban(Generic[P]):
    """Ban `peer`; `reason` is for the `PeerBanned` event."""

    peer: P
    reason: str


@dataclass(slots=True)
class _Block(Generic[P]):
    peer: P
    length: int
    digest: bytes | None = None


@final
@dataclass(slots=True)
class _Suspect(Generic[P]):
    blocks: dict[int, _Block[P]] = field(default_factory=dict)


def _sha1(data: bytes | bytearray | memoryview) -> bytes:
    return hashlib.sha1(data).digest()


@final
class SmartBan(Generic[P]):
    """Per-piece block sources and the suspects of failed pieces (module docstring)."""

    def __init__(self, sole_failures_before_ban: int = SOLE_FAILURES_BEFORE_BAN) -> None:
        self._limit = sole_failures_before_ban
        self._sources: dict[int, dict[int, _Block[P]]] = {}
        self._suspects: dict[int, _Suspect[P]] = {}
        self._sole_failures: dict[P, int] = {}

    def block_received(self, index: int, begin: int, length: int, peer: P) -> None:
        """`peer` sent bytes [begin, begin+length) of piece `index` (latest sender wins)."""
        src = self._sources.get(index)
        if src is None:
            src = self._sources[index] = {}
        src[begin] = _Block(peer, length)

    def contributors(self, index: int) -> set[P]:
        """Who sent blocks of piece `index` since it was last verified or failed."""
        return {b.peer for b in self._sources.get(index, {}).values()}

    def forget(self, index: int) -> None:
        """The piece's bytes were discarded without a verdict (e.g. no buffer room)."""
        self._sources.pop(index, None)

    def suspected(self, index: int) -> bool:
        """Does `piece_verified` need the good bytes of `index` to judge earlier senders?"""
        return index in self._suspects

    def piece_failed(
        self, index: int, rejected: bytes | bytearray | memoryview | None
    ) -> tuple[tuple[P, ...], list[Ban[P]]]:
        """Piece `index` failed its hash; `rejected` is its bytes (None if not kept).

        Returns the contributors (sorted by insertion, unique) and the peers to ban now
        (a sole supplier of too many failed pieces).
        """
        sources = self._sources.pop(index, {})
        view = memoryview(rejected) if rejected is not None else None
        suspect = self._suspects.get(index)
        if suspect is None:
            suspect = self._suspects[index] = _Suspect()
        for begin, block in sources.items():
            digest = None
            if view is not None and begin + block.length <= len(view):
                digest = _sha1(view[begin : begin + block.length])
            suspect.blocks[begin] = _Block(block.peer, block.length, digest)
        peers = tuple(dict.fromkeys(b.peer for b in sources.values()))
        bans: list[Ban[P]] = []
        if len(peers) == 1:
            (peer,) = peers
            count = self._sole_failures.get(peer, 0) + 1
            self._sole_failures[peer] = count
            if count >= self._limit:
                bans.append(Ban(peer, "sent pieces that failed the hash check"))
        return peers, bans

    def piece_verified(
        self, index: int, good: bytes | bytearray | memoryview | None
    ) -> list[Ban[P]]:
        """Piece `index` verified; `good` is its bytes when `suspected(index)`.

        Returns a ban for each earlier sender whose block differs from the good copy.
        """
        self._sources.pop(index, None)
        suspect = self._suspects.pop(index, None)
        if suspect is None or good is None:
            return []
        view = memoryview(good)
        bans: dict[P, Ban[P]] = {}
        for begin, block in suspect.blocks.items():
            if block.digest is None or block.peer in bans:
                continue
            if _sha1(view[begin : begin + block.length]) != block.digest:
                bans[block.peer] = Ban(block.peer, f"sent a corrupt block of piece {index}")
        return list(bans.values())
