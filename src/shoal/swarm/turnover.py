"""Peer turnover: which useless peers to disconnect when better ones are waiting.

Theory of operation
-------------------
A torrent has a fixed number of connection slots (``max_peers_per_torrent``). Peers
that only send keep-alives (neither side interested, no data either way) can fill
them all and lock out peers that would trade: the issue's "lock everyone out". So,
as libtorrent's ``peer_turnover`` does, the engine periodically asks this policy
which connections to close:

* only when someone is waiting to connect (`waiting` > 0) and the slots are at least
  `cutoff` full: turnover never shrinks a swarm nobody else wants into;
* only peers that have been *useless* for `idle_after` seconds: connected that long,
  no payload byte either way in that time, and neither side interested;
* the longest-useless first, at most `fraction` of the slots (at least one) per call
  and never more than are waiting.

Pure: the caller passes each peer's activity and ``now``; the policy returns keys.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar, final

__all__ = ["PeerActivity", "TurnoverPolicy"]

K = TypeVar("K", bound=Hashable)

#: Seconds without payload or interest before a connected peer counts as useless.
DEFAULT_IDLE_AFTER: Final = 120.0


@final
@dataclass(frozen=True, slots=True)
class PeerActivity(Generic[K]):
    """What the policy needs to know of one connection.

    Args:
        key: the caller's handle for the connection (returned as is).
        connected_at: when the connection was established.
        last_payload: last time a piece or block was sent or received (None: never).
        am_interested: we want something the peer has.
        peer_interested: the peer wants something we have.
    """

    key: K
    connected_at: float
    last_payload: float | None
    am_interested: bool
    peer_interested: bool

    def useless_since(self) -> float | None:
        """Since when the peer has been useless, or None while it is useful."""
        if self.am_interested or self.peer_interested:
            return None
        return max(self.connected_at, self.last_payload or self.connected_at)


@final
@dataclass(frozen=True, slots=True)
class TurnoverPolicy:
    """Pick useless peers to disconnect (see the module docstring)."""

    idle_after: float = DEFAULT_IDLE_AFTER
    cutoff: float = 0.9
    fraction: float = 0.04

    def pick(
        self, peers: Iterable[PeerActivity[K]], *, now: float, max_peers: int, waiting: int
    ) -> list[K]:
        """Keys of the connections to close now (possibly none)."""
        peers = list(peers)
        if waiting <= 0 or len(peers) < self.cutoff * max_peers:
            return []
        useless = [
            (since, i, p.key)
            for i, p in enumerate(peers)
            if (since := p.useless_since()) is not None and now - since >= self.idle_after
        ]
        useless.sort(key=lambda t: (t[0], t[1]))
        budget = min(waiting, max(1, int(self.fraction * max_peers)))
        return [key for _, _, key in useless[:budget]]
