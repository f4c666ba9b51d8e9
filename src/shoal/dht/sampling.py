"""BEP 51 ``sample_infohashes`` on the serving side: which samples to hand out.

Theory of operation
-------------------
A reply carries up to `MAX_SAMPLES` (20) random info-hashes from the peer store, the
number we store (``num``) and how long the requester should wait before asking us
again (``interval``). BEP 51 suggests precomputing the subset once the store is
bigger than a packet, so that an indexer gains nothing by asking repeatedly: we
draw one sample and hand it out until `interval` has passed. A sample drawn while
the store was smaller than a full sample is redrawn as soon as the store grows,
so a new node's first announces are visible right away.

20 samples are 400 bytes plus 8 nodes (208 bytes): the reply stays under 700
bytes, well inside one datagram.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import random

    from .peer_store import PeerStore

__all__ = ["DEFAULT_INTERVAL", "MAX_INTERVAL", "MAX_SAMPLES", "SampleCache"]

MAX_SAMPLES: Final = 20
#: What we ask requesters to wait between queries (libtorrent's default is 6 h; a
#: shorter wait suits a small node whose store changes faster than it is sampled).
DEFAULT_INTERVAL: Final = 300
#: BEP 51: "interval ... the number of seconds ... (between 0 and 21600)".
MAX_INTERVAL: Final = 21600


class SampleCache:
    """The current sample of a peer store (see the module docstring)."""

    def __init__(self, interval: int = DEFAULT_INTERVAL) -> None:
        if not 0 <= interval <= MAX_INTERVAL:
            raise ValueError("interval must be within 0..21600 s")
        self.interval = interval
        self._samples: tuple[bytes, ...] = ()
        self._until = float("-inf")

    def samples(
        self, store: PeerStore, now: float, rng: random.Random
    ) -> tuple[tuple[bytes, ...], int, int]:
        """(samples, num, interval) for a reply."""
        num = len(store)
        short = len(self._samples) < min(num, MAX_SAMPLES)
        if now >= self._until or short:
            self._samples = tuple(store.sample(rng, MAX_SAMPLES))
            self._until = now + self.interval
        return self._samples, num, self.interval
