"""The quick unchoke: a newly interested peer need not wait for the next rechoke.

BEP 3 rechokes every 10 s; a peer that turns interested in between would idle until
then. If an upload slot is free, unchoke it at once (libtorrent does the same). The
regular rechoke (`swarm.choker.Choker`) may take the slot back later.
"""

from __future__ import annotations

__all__ = ["quick_unchoke"]


def quick_unchoke(*, am_choking: bool, unchoked: int, max_unchoked: int) -> bool:
    """Unchoke a peer that just became interested now? (Never over `max_unchoked`.)"""
    return am_choking and unchoked < max_unchoked
