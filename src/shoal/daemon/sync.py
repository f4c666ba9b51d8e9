"""``sync/maindata``: rid-numbered snapshots and the incremental answer between two of them.

Web UIs poll ``sync/maindata?rid=N`` every second or two. qBittorrent answers with a
new ``rid`` and, when it still knows the snapshot ``N`` refers to, only what changed
since then (new or changed torrent fields, removed hashes, categories, tags, server
state); otherwise a ``full_update``. We keep the last `KEEP` snapshots in a bounded
LRU, so a flood of polls (or of clients) costs a fixed amount of memory: an unknown
or evicted rid simply gets a full update, which every client handles.

Pure: no I/O, no clock; the state layer passes the current data in.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final, final

__all__ = ["KEEP", "MainData", "SyncTracker"]

#: Snapshots remembered (qBittorrent keeps one per session; this bound is global).
KEEP: Final = 32


@final
@dataclass(frozen=True, slots=True)
class MainData:
    """Everything ``sync/maindata`` reports, at one moment."""

    torrents: dict[str, dict[str, Any]]
    categories: dict[str, dict[str, Any]]
    tags: tuple[str, ...]
    server_state: dict[str, Any]


def _changed(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in new.items() if old.get(k, _MISSING) != v}


_MISSING: Final = object()


@final
class SyncTracker:
    """Hands out rids and computes incremental answers against remembered snapshots."""

    def __init__(self, keep: int = KEEP) -> None:
        self._keep = keep
        self._snapshots: OrderedDict[int, MainData] = OrderedDict()
        self._next_rid = 1

    def statistics(self) -> int:
        """How many snapshots are held (bounded by ``keep``)."""
        return len(self._snapshots)

    def answer(self, rid: int, data: MainData) -> dict[str, Any]:
        """The response to ``sync/maindata?rid=rid`` given the current `data`."""
        old = self._snapshots.get(rid) if rid > 0 else None
        new_rid = self._remember(data)
        if old is None:
            return {
                "rid": new_rid,
                "full_update": True,
                "torrents": data.torrents,
                "categories": data.categories,
                "tags": list(data.tags),
                "server_state": data.server_state,
            }
        out: dict[str, Any] = {"rid": new_rid}
        torrents = {}
        for h, info in data.torrents.items():
            before = old.torrents.get(h)
            diff = info if before is None else _changed(before, info)
            if diff:
                torrents[h] = diff
        if torrents:
            out["torrents"] = torrents
        removed = [h for h in old.torrents if h not in data.torrents]
        if removed:
            out["torrents_removed"] = removed
        categories = {n: c for n, c in data.categories.items() if old.categories.get(n) != c}
        if categories:
            out["categories"] = categories
        gone = [n for n in old.categories if n not in data.categories]
        if gone:
            out["categories_removed"] = gone
        added_tags = [t for t in data.tags if t not in old.tags]
        if added_tags:
            out["tags"] = added_tags
        removed_tags = [t for t in old.tags if t not in data.tags]
        if removed_tags:
            out["tags_removed"] = removed_tags
        state = _changed(old.server_state, data.server_state)
        if state:
            out["server_state"] = state
        return out

    def _remember(self, data: MainData) -> int:
        rid = self._next_rid
        self._next_rid += 1
        self._snapshots[rid] = data
        while len(self._snapshots) > self._keep:
            self._snapshots.popitem(last=False)
        return rid
