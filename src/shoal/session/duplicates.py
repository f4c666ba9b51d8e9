"""Which of two connections to the same peer survives (one connection per peer id).

Theory of operation
-------------------
Both ends must pick the same connection, or each closes the one the other kept and
none survives. Two cases:

* **Opposite directions** (both peers dialled each other at the same moment): each end
  sees the other's connection as a duplicate of its own. Both keep the one *opened by*
  the peer with the smaller peer id, a fact both ends know alike.
* **Same direction** (one peer dialled the other twice, e.g. we are reachable at two
  addresses): the two ends may see the handshakes finish in different orders, so "keep
  the first" is not enough. Both keep the connection whose dialling end (ip, port) is
  smaller, as both ends see the same TCP 4-tuple. Without a dialling end we keep the
  existing one.

Pure: a function of what each end knows about the two connections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

__all__ = ["ConnectionFacts", "keeps_new_connection"]

Addr = tuple[str, int]


@final
@dataclass(frozen=True, slots=True)
class ConnectionFacts:
    """What one end knows about a connection: who dialled and from where."""

    incoming: bool
    dialer_end: Addr | None


def keeps_new_connection(
    our_id: bytes, peer_id: bytes, existing: ConnectionFacts | None, new: ConnectionFacts
) -> bool:
    """Should the new connection to `peer_id` replace `existing` (or be refused)?

    True when there is no existing connection, or when the rules of the module
    docstring prefer the new one; the caller then closes the existing one.
    """
    if existing is None:
        return True
    if existing.incoming == new.incoming:
        old, fresh = existing.dialer_end, new.dialer_end
        return fresh is not None and old is not None and fresh < old
    # Opposite directions: keep the one opened by the smaller peer id.
    initiator = our_id if not new.incoming else peer_id
    other = peer_id if not new.incoming else our_id
    return initiator < other
