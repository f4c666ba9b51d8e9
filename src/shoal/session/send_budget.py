"""The client-wide send budget: bytes queued for send over every peer of every torrent.

Issue 10: one peer that requests and never reads holds at most `MAX_SEND_BACKLOG` of
our memory, but a hundred such peers (over any number of torrents) would hold a hundred
times that. One `SendBudget` per client bounds the sum. The Trio drivers only count
(each connection adds what it has queued and takes off what the socket took); the
policy is here and it is the per-peer cap itself, made smaller under pressure: while the
client is within its budget a peer may have `MAX_SEND_BACKLOG` queued, past it only
`SQUEEZED_BACKLOG`. A peer over its cap is treated as before (nothing more served,
requests rejected under Fast, nothing more read from it), so peers that read keep
flowing one small window at a time and peers that don't get nothing more. The total
then stays under the budget plus `SQUEEZED_BACKLOG` (and a block) per connection.
"""

from __future__ import annotations

from typing import Final, final

__all__ = [
    "DEFAULT_MAX_SEND_QUEUED",
    "MAX_SEND_BACKLOG",
    "SQUEEZED_BACKLOG",
    "SendBudget",
]

#: Bytes queued for one peer past which we serve it nothing more until it reads.
MAX_SEND_BACKLOG: Final = 1024 * 1024
#: A peer's cap while the client as a whole is over its budget: four blocks, enough
#: to keep a reading peer on a fast link busy between two of its reads.
SQUEEZED_BACKLOG: Final = 64 * 1024
#: `ClientConfig.max_send_queued` by default.
DEFAULT_MAX_SEND_QUEUED: Final = 64 * 1024 * 1024


@final
class SendBudget:
    """Bytes queued for send client-wide, and the per-peer cap that follows from it."""

    def __init__(self, limit: int | None = DEFAULT_MAX_SEND_QUEUED) -> None:
        if limit is not None and limit < 0:
            raise ValueError("the send budget cannot be negative (None: unlimited)")
        #: None: no client-wide cap (each peer still has `MAX_SEND_BACKLOG`).
        self.limit = limit
        #: Bytes the drivers report queued (engine queues plus writes in progress).
        self.queued = 0
        #: The most ever queued at once (for `statistics()` and the tests).
        self.peak = 0

    def adjust(self, delta: int) -> None:
        """A connection's queued bytes changed by `delta` (negative: sent or dropped)."""
        self.queued += delta
        if self.queued > self.peak:
            self.peak = self.queued

    @property
    def over(self) -> bool:
        """Is the client past its budget?"""
        return self.limit is not None and self.queued > self.limit

    def peer_cap(self) -> int:
        """How much one peer may have queued before it is served nothing more."""
        return SQUEEZED_BACKLOG if self.over else MAX_SEND_BACKLOG

    def backlogged(self, peer_backlog: int) -> bool:
        """Is a peer with `peer_backlog` bytes queued over its cap?"""
        return peer_backlog > self.peer_cap()
