"""Per-piece block bookkeeping: which 16 KiB blocks are free, requested (by whom), received.

Theory of operation
-------------------
BEP 3 transfers a piece as ``request``/``piece`` messages for sub-ranges of it; every
client requests 16 KiB blocks ("All current implementations use 2^14 (16 kiB)"), the
last block of the last piece being shorter. A `PieceBlocks` exists only while a piece
is *partial* (some block requested or received and the piece not yet verified), so
there are at most a few hundred of them however large the torrent is.

State per block is two bits held in two ints used as bitmaps (bit ``n`` = block ``n``):

* ``received``  — data arrived (from the peer recorded in ``senders[n]``);
* ``requested`` — at least one request is outstanding (the peers are in ``owners[n]``).

A block is *free* when neither bit is set. ``owners`` is a small dict holding only the
in-flight blocks (bounded by the request pipelines), and ``senders`` remembers who
delivered each block so that a piece failing its hash check can name its
contributors. Outside endgame a block has at most one owner; in endgame the picker
adds more, and the first arrival cancels the rest (`receive` returns them).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Final, Generic, NamedTuple, TypeVar, final

__all__ = ["BLOCK_SIZE", "Block", "PieceBlocks", "block_count"]

# BEP 3, "peer messages": "All current implementations use 2^14 (16 kiB), and close
# connections which request an amount greater than that."
BLOCK_SIZE: Final = 16 * 1024

P = TypeVar("P", bound=Hashable)


class Block(NamedTuple):
    """A request unit: `length` bytes at offset `begin` of piece `index` (BEP 3 fields).

    A named tuple, not a frozen dataclass: the picker makes one per request and the
    torrent one per received block, and a tuple is built several times faster (a
    frozen dataclass sets each field through ``object.__setattr__``). It equals, and
    hashes as, the plain ``(index, begin, length)`` tuple the peer engine uses.
    The field ``index`` hides ``tuple.index``, which nothing here needs.
    """

    index: int  # type: ignore[assignment]
    begin: int
    length: int


def block_count(piece_size: int) -> int:
    """Number of blocks a piece of `piece_size` bytes is cut into."""
    return -(-piece_size // BLOCK_SIZE)


@final
class PieceBlocks(Generic[P]):
    """Block states of one partial piece of `size` bytes (see the module docstring)."""

    __slots__ = (
        "_full",
        "index",
        "num_blocks",
        "owners",
        "received",
        "requested",
        "senders",
        "size",
    )

    def __init__(self, index: int, size: int) -> None:
        if size <= 0:
            raise ValueError("a piece has at least one byte")
        self.index = index
        self.size = size
        self.num_blocks = block_count(size)
        self._full = (1 << self.num_blocks) - 1
        self.received = 0
        self.requested = 0
        self.owners: dict[int, list[P]] = {}
        self.senders: list[P | None] = [None] * self.num_blocks

    # ---- geometry ----------------------------------------------------------------

    def block(self, n: int) -> Block:
        """The `Block` for block number `n`."""
        begin = n * BLOCK_SIZE
        return Block(self.index, begin, min(BLOCK_SIZE, self.size - begin))

    def block_number(self, block: Block) -> int | None:
        """The number of `block` in this piece, or None if it is not on the 16 KiB grid."""
        n, rem = divmod(block.begin, BLOCK_SIZE)
        if block.index != self.index or rem or not 0 <= n < self.num_blocks:
            return None
        return n if block == self.block(n) else None

    # ---- queries -----------------------------------------------------------------

    def free_mask(self) -> int:
        """Bitmap of blocks neither requested nor received."""
        return self._full & ~(self.received | self.requested)

    def has_free(self) -> bool:
        """Is any block neither requested nor received?"""
        return self.free_mask() != 0

    def is_complete(self) -> bool:
        """Has every block been received (the piece is ready for its hash check)?"""
        return self.received == self._full

    def is_idle(self) -> bool:
        """Nothing requested and nothing received: the piece is no longer partial."""
        return not (self.received or self.requested)

    def is_received(self, n: int) -> bool:
        """Has block `n` arrived?"""
        return bool(self.received >> n & 1)

    def free_blocks(self, limit: int) -> list[int]:
        """Up to `limit` free block numbers, ascending (in-order keeps disk writes sequential)."""
        free = self.free_mask()
        out: list[int] = []
        while free and len(out) < limit:
            low = free & -free
            out.append(low.bit_length() - 1)
            free ^= low
        return out

    def endgame_blocks(self, peer: P, max_owners: int, limit: int) -> list[int]:
        """In-flight blocks `peer` could duplicate, fewest owners first, then ascending."""
        cands = [
            (len(owners), n)
            for n, owners in self.owners.items()
            if len(owners) < max_owners and peer not in owners
        ]
        cands.sort()
        return [n for _, n in cands[:limit]]

    # ---- transitions -------------------------------------------------------------

    def request(self, n: int, peer: P) -> None:
        """Record an outstanding request for block `n` by `peer`."""
        self.owners.setdefault(n, []).append(peer)
        self.requested |= 1 << n

    def release(self, n: int, peer: P) -> bool:
        """Forget `peer`'s request for block `n`; False if it had none."""
        owners = self.owners.get(n)
        if owners is None or peer not in owners:
            return False
        owners.remove(peer)
        if not owners:
            del self.owners[n]
            self.requested &= ~(1 << n)
        return True

    def receive(self, n: int, peer: P) -> list[P] | None:
        """Block `n` arrived from `peer`: the other owners to cancel, or None if a duplicate."""
        if self.received >> n & 1:
            return None
        bit = 1 << n
        self.received |= bit
        self.senders[n] = peer
        owners = self.owners.pop(n, None)
        if owners is None:
            return []
        self.requested &= ~bit
        if len(owners) == 1 and owners[0] == peer:
            return []  # the common case: the one peer we asked delivered
        return [p for p in owners if p != peer]

    def reset(self) -> set[P]:
        """Hash check failed: every block back to missing; returns the peers that sent data.

        Outstanding requests are kept (the piece may be reset while a duplicate is in
        flight); only received data is thrown away.
        """
        contributors = {p for p in self.senders if p is not None}
        self.received = 0
        self.senders = [None] * self.num_blocks
        return contributors

    def __repr__(self) -> str:
        return (
            f"PieceBlocks(index={self.index}, blocks={self.num_blocks}, "
            f"received={self.received:#x}, requested={self.requested:#x})"
        )
