"""The daemon's database: SQLite (stdlib `sqlite3`), every call in a worker thread.

Theory of operation
-------------------
The database holds what a restart must bring back and what the qBittorrent API lets
a user set: torrents (their source, save path, category, tags, share and rate limits,
paused and force-start flags, file priorities, added and completed times),
categories, and preferences (including the PBKDF2 password hash). Verified piece
data is *not* here: each torrent's resume file (``<state-dir>/resume``, written by
the engine) says which pieces are durable, so a restart seeds completed torrents
without a recheck.

One connection in WAL mode with ``synchronous=NORMAL``: a committed row survives a
``kill -9`` of the daemon (only an OS crash could lose the last commits). Calls run
through `trio.to_thread.run_sync` under a one-thread `CapacityLimiter`, so SQLite
never blocks the event loop and never sees two threads at once.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeVar, final

import trio

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

__all__ = ["Store", "TorrentRow"]

T = TypeVar("T")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS torrents (
    hash TEXT PRIMARY KEY,
    source BLOB NOT NULL,          -- .torrent bytes, or a magnet URI until metadata arrives
    is_magnet INTEGER NOT NULL,
    name TEXT NOT NULL,
    save_path TEXT NOT NULL,
    category TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '[]',
    paused INTEGER NOT NULL DEFAULT 0,
    force_start INTEGER NOT NULL DEFAULT 0,
    sequential INTEGER NOT NULL DEFAULT 0,
    ratio_limit REAL NOT NULL DEFAULT -2,
    seeding_time_limit INTEGER NOT NULL DEFAULT -2,
    inactive_seeding_time_limit INTEGER NOT NULL DEFAULT -2,
    dl_limit INTEGER NOT NULL DEFAULT 0,
    up_limit INTEGER NOT NULL DEFAULT 0,
    file_prio TEXT NOT NULL DEFAULT '[]',
    added_on INTEGER NOT NULL,
    completion_on INTEGER NOT NULL DEFAULT -1,
    downloaded_total INTEGER NOT NULL DEFAULT 0,  -- all-time payload bytes, saved every few s
    uploaded_total INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS categories (name TEXT PRIMARY KEY, save_path TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tags (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS prefs (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_COLUMNS: Final = (
    "hash",
    "source",
    "is_magnet",
    "name",
    "save_path",
    "category",
    "tags",
    "paused",
    "force_start",
    "sequential",
    "ratio_limit",
    "seeding_time_limit",
    "inactive_seeding_time_limit",
    "dl_limit",
    "up_limit",
    "file_prio",
    "added_on",
    "completion_on",
    "downloaded_total",
    "uploaded_total",
)


@final
@dataclass(slots=True)
class TorrentRow:
    """One torrent as the daemon remembers it (the API's settable fields included)."""

    hash: str
    source: bytes
    is_magnet: bool
    name: str
    save_path: str
    added_on: int
    category: str = ""
    tags: list[str] = field(default_factory=list)
    paused: bool = False
    force_start: bool = False
    sequential: bool = False
    ratio_limit: float = -2.0  # qBittorrent: -2 global limit, -1 no limit
    seeding_time_limit: int = -2  # minutes
    inactive_seeding_time_limit: int = -2
    dl_limit: int = 0  # B/s, 0 = unlimited
    up_limit: int = 0
    file_prio: list[int] = field(default_factory=list)  # empty: every file priority 1
    completion_on: int = -1
    downloaded_total: int = 0  # all-time payload bytes, as of the last statistics save
    uploaded_total: int = 0

    def to_db(self) -> tuple[Any, ...]:
        values = [getattr(self, c) for c in _COLUMNS]
        values[_COLUMNS.index("tags")] = json.dumps(self.tags)
        values[_COLUMNS.index("file_prio")] = json.dumps(self.file_prio)
        return tuple(int(v) if isinstance(v, bool) else v for v in values)

    @classmethod
    def from_db(cls, row: sqlite3.Row) -> TorrentRow:
        d = dict(zip(_COLUMNS, row, strict=True))
        for flag in ("is_magnet", "paused", "force_start", "sequential"):
            d[flag] = bool(d[flag])
        d["tags"] = json.loads(d["tags"])
        d["file_prio"] = json.loads(d["file_prio"])
        d["source"] = bytes(d["source"])
        return cls(**d)


@final
class Store:
    """The daemon's SQLite database (open with `Store.open`, close with `aclose`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._limiter = trio.CapacityLimiter(1)

    @classmethod
    async def open(cls, path: Path) -> Store:
        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            return conn

        return cls(await trio.to_thread.run_sync(connect))

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await trio.to_thread.run_sync(fn, self._conn, limiter=self._limiter)

    async def aclose(self) -> None:
        await self._run(lambda c: c.close())

    # ---- torrents ------------------------------------------------------------------

    async def torrents(self) -> list[TorrentRow]:
        sql = f"SELECT {', '.join(_COLUMNS)} FROM torrents ORDER BY added_on, hash"
        rows = await self._run(lambda c: c.execute(sql).fetchall())
        return [TorrentRow.from_db(r) for r in rows]

    async def put_torrent(self, row: TorrentRow) -> None:
        marks = ", ".join("?" * len(_COLUMNS))
        sql = f"INSERT OR REPLACE INTO torrents ({', '.join(_COLUMNS)}) VALUES ({marks})"
        values = row.to_db()
        await self._run(lambda c: c.execute(sql, values))

    async def delete_torrent(self, info_hash: str) -> None:
        await self._run(lambda c: c.execute("DELETE FROM torrents WHERE hash = ?", (info_hash,)))

    # ---- categories and tags ----------------------------------------------------------

    async def categories(self) -> dict[str, str]:
        rows = await self._run(lambda c: c.execute("SELECT name, save_path FROM categories"))
        return dict(rows)

    async def put_category(self, name: str, save_path: str) -> None:
        sql = "INSERT OR REPLACE INTO categories (name, save_path) VALUES (?, ?)"
        await self._run(lambda c: c.execute(sql, (name, save_path)))

    async def delete_category(self, name: str) -> None:
        await self._run(lambda c: c.execute("DELETE FROM categories WHERE name = ?", (name,)))

    async def tags(self) -> list[str]:
        rows = await self._run(lambda c: c.execute("SELECT name FROM tags ORDER BY name"))
        return [name for (name,) in rows]

    async def put_tag(self, name: str) -> None:
        await self._run(
            lambda c: c.execute("INSERT OR IGNORE INTO tags (name) VALUES (?)", (name,))
        )

    async def delete_tag(self, name: str) -> None:
        await self._run(lambda c: c.execute("DELETE FROM tags WHERE name = ?", (name,)))

    # ---- preferences ---------------------------------------------------------------

    async def prefs(self) -> dict[str, Any]:
        rows = await self._run(lambda c: c.execute("SELECT key, value FROM prefs").fetchall())
        return {key: json.loads(value) for key, value in rows}

    async def put_prefs(self, values: dict[str, Any]) -> None:
        items = [(k, json.dumps(v)) for k, v in values.items()]
        sql = "INSERT OR REPLACE INTO prefs (key, value) VALUES (?, ?)"
        await self._run(lambda c: c.executemany(sql, items))
