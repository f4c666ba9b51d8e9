"""BEP 11 PEX deltas: what to tell one peer about the peers we are connected to.

Theory of operation
-------------------
BEP 11 messages carry changes, not the whole set: ``added`` contacts since the last
message and ``dropped`` ones, at most 50 of each per message ("... no more than 50
added and 50 dropped"). `PexTracker` remembers, per connection, which contacts that
peer has been told about; `delta` returns the next message and updates that memory as
if it were sent. Contacts over the cap wait for the next round (every 60 s), so a
large swarm is announced over several messages. A peer is never told about itself.

Pure: the caller passes the live set and sends the result.
"""

from __future__ import annotations

from typing import Final, Generic, TypeVar, final

__all__ = ["PEX_MAX_ADDED", "PEX_MAX_DROPPED", "PexTracker"]

Addr = tuple[str, int]
K = TypeVar("K")

#: BEP 11 caps per message.
PEX_MAX_ADDED: Final = 50
PEX_MAX_DROPPED: Final = 50


@final
class PexTracker(Generic[K]):
    """What each connection (key `K`) has been told (module docstring)."""

    def __init__(self) -> None:
        self._told: dict[K, set[Addr]] = {}

    def delta(self, key: K, live: set[Addr], own: Addr | None) -> tuple[list[Addr], list[Addr]]:
        """The next (added, dropped) for connection `key`; assumes it will be sent.

        `live` is every contact we could share; `own` (the peer's own address) is left
        out. Both lists are sorted and capped; they never overlap.
        """
        before = self._told.get(key, set())
        now_live = live - {own} if own is not None else live
        added = sorted(now_live - before)[:PEX_MAX_ADDED]
        dropped = sorted(before - now_live)[:PEX_MAX_DROPPED]
        self._told[key] = (before | set(added)) - set(dropped)
        return added, dropped

    def told(self, key: K) -> frozenset[Addr]:
        return frozenset(self._told.get(key, ()))

    def forget(self, key: K) -> None:
        """The connection ended."""
        self._told.pop(key, None)

    def retain(self, keys: set[K]) -> None:
        """Forget every connection not in `keys`."""
        for gone in set(self._told) - keys:
            del self._told[gone]
