"""`InboundRequests`: the peer's block requests to us, validated and queued (BEP 3, 6).

Theory of operation
-------------------
A request is a *violation* (the connection is dropped) only when no honest peer could
send it whatever the timing: zero length, or a range past the end of the piece. The
frame decoder has already refused lengths over the limit and indices past the piece
count. Everything else that makes a request unservable can be an honest race with
our own messages, so the request is *refused* (BEP 6: with a reject; BEP 3: silently)
and counted:

* we are choking the peer and the piece is not in our allowed-fast set (the request
  crossed our choke on the wire);
* we do not have the piece (it may have crossed nothing, but refusing is harmless);
* the same block is already queued, or ``max_queued`` (our advertised ``reqq``)
  requests are queued.

Accepted requests stay queued until answered (`take`), cancelled by the peer
(`cancel`), or discarded by our choke (`choke`). So `take` also tells the caller
whether a block it read from disk is still wanted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

from ..errors import RemoteProtocolError

if TYPE_CHECKING:
    from ..swarm.bitfield import Bitfield
    from .pipeline import Block

__all__ = ["InboundRequests"]


@final
class InboundRequests:
    """The peer's queued requests plus the geometry needed to check them."""

    __slots__ = (
        "_queue",
        "allowed_fast",
        "max_queued",
        "num_pieces",
        "piece_length",
        "refused",
        "total_length",
    )

    def __init__(
        self, max_queued: int, *, piece_length: int | None, total_length: int | None
    ) -> None:
        self._queue: dict[Block, None] = {}
        self.max_queued = max_queued
        self.num_pieces: int | None = None
        self.piece_length = piece_length
        self.total_length = total_length
        #: Pieces the peer may request while we choke it (BEP 6 allowed-fast we sent).
        self.allowed_fast: set[int] = set()
        #: Requests refused without a violation.
        self.refused = 0

    def __len__(self) -> int:
        return len(self._queue)

    def __contains__(self, block: object) -> bool:
        return block in self._queue

    def piece_size(self, index: int) -> int | None:
        """Length of piece `index`, if the geometry is known."""
        if self.piece_length is None:
            return None
        if self.total_length is None or self.num_pieces is None:
            return self.piece_length
        if index == self.num_pieces - 1:
            return self.total_length - index * self.piece_length
        return self.piece_length

    def add(self, block: Block, *, have: Bitfield | None, choking: bool) -> bool:
        """Validate a request; True if it was queued, False if refused.

        Raises:
            RemoteProtocolError: zero length, or past the end of the piece.
        """
        index, begin, length = block
        if length == 0:
            raise RemoteProtocolError("request for zero bytes")
        size = self.piece_size(index)
        if size is not None and begin + length > size:
            raise RemoteProtocolError(f"request {block} past the end of the piece ({size})")
        ok = (
            have is not None
            and index in have
            and (not choking or index in self.allowed_fast)
            and block not in self._queue
            and len(self._queue) < self.max_queued
        )
        if ok:
            self._queue[block] = None
        else:
            self.refused += 1
        return ok

    def take(self, block: Block) -> bool:
        """Remove a request we are answering; False if it is no longer queued."""
        return self._queue.pop(block, 0) is None

    def cancel(self, block: Block) -> bool:
        """The peer withdrew a request; True if it was queued."""
        return self.take(block)

    def choke(self, *, fast: bool) -> list[Block]:
        """We choked the peer: discard its queue and return what was discarded.

        BEP 6 keeps requests for allowed-fast pieces; without BEP 6 there are none.
        """
        dropped = [b for b in self._queue if not (fast and b[0] in self.allowed_fast)]
        for block in dropped:
            del self._queue[block]
        return dropped
