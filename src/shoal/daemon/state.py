"""The daemon's model: one `Client`, the database, and every operation the API offers.

Theory of operation
-------------------
`Daemon` is the only place where the API's verbs meet the engine. Each torrent is a
`TorrentRow` (database) plus the running `Torrent`. Every change is written to the
database *before* it is applied to the engine, so a ``kill -9`` at any point leaves
the database describing what the user asked for; the engine's resume files say which
pieces are durable. On start, `restore` re-adds every row: completed torrents find
their resume file and seed without a recheck, unfinished ones resume, paused ones
are paused again, magnets whose metadata had arrived are re-added from the stored
.torrent bytes (the watcher task stores them once verified).

All-time downloaded/uploaded bytes are the row's saved totals plus the running
torrent's counters; `save_statistics` stores them every few seconds and at shutdown.

Rate limits (per torrent and client-wide) are applied at once and at every start;
force start, without a queue, resumes the torrent and marks it forced. File priorities and
``recheck`` are applied by restarting the torrent in place: file priority 0 leaves
the file out of the selection (6 and 7 only reorder, at once); a recheck deletes
the resume file first, so the restart hashes everything.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, final

import trio

from .. import torrent_events as tev
from ..errors import DecodeError, MetadataError, ShoalError, StorageError
from ..magnet import Magnet, parse_magnet
from ..metainfo import Metainfo, build_metainfo, parse_metainfo
from . import qbt
from .db import Store, TorrentRow
from .sync import MainData

if TYPE_CHECKING:
    from ..client import Client
    from ..torrent import Torrent

__all__ = ["AddOptions", "ApiError", "Daemon", "DaemonConfig"]

log = logging.getLogger(__name__)

#: How long one set of `torrents/info` rows serves every poller. Building a row reads
#: the engine's statistics (rates over 5 s anyway); web UIs poll every 1-2 s and a
#: request flood must not cost 100 snapshots per request. Any change clears it.
INFO_TTL: Final = 0.5
#: qBittorrent's file priorities: 0 skip, 1 normal, 6 high, 7 maximal (`_levels`).
FILE_PRIORITIES: Final = frozenset({0, 1, 6, 7})
_RESTART_BUDGET: Final = 5.0


class ApiError(ShoalError):
    """A request the API refuses: the HTTP status and one line saying why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@final
@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """What ``shoal daemon`` was started with (see docs/daemon.md)."""

    download_dir: Path
    state_dir: Path
    allow_any_savepath: bool = False
    extra_roots: tuple[Path, ...] = ()

    @property
    def roots(self) -> tuple[Path, ...]:
        return (self.download_dir, *self.extra_roots)


@final
@dataclass(slots=True)
class AddOptions:
    """``torrents/add`` parameters that apply to every torrent of one request."""

    save_path: Path
    category: str = ""
    tags: tuple[str, ...] = ()
    paused: bool = False
    sequential: bool = False
    ratio_limit: float = -2.0
    seeding_time_limit: int = -2
    dl_limit: int = 0
    up_limit: int = 0


@dataclass(slots=True)
class _Entry:
    row: TorrentRow
    torrent: Torrent
    started: float
    #: The row's all-time totals when this run of the torrent started.
    base: tuple[int, int] = (0, 0)

    def totals(self) -> tuple[int, int]:
        """All-time payload (down, up): saved totals plus this run's counters."""
        s = self.torrent.statistics()
        return self.base[0] + s.downloaded_payload, self.base[1] + s.uploaded


def _now_wall() -> int:
    return int(time.time())


@final
class Daemon:
    """Owns the torrents of a `Client` and the database that remembers them."""

    def __init__(
        self, client: Client, store: Store, config: DaemonConfig, nursery: trio.Nursery
    ) -> None:
        self.client = client
        self.store = store
        self.config = config
        self._nursery = nursery
        self._entries: dict[str, _Entry] = {}
        self.categories: dict[str, str] = {}
        self.tags: list[str] = []
        self.prefs: dict[str, Any] = {}
        self._lock = trio.Lock()  # one structural change (add/remove/restart) at a time
        self._infos: tuple[float, list[dict[str, Any]]] | None = None
        #: Session counters for /metrics (kept across torrent removal).
        self.hash_failures = 0
        self.peer_bans = 0

    # ---- lifecycle ---------------------------------------------------------------

    async def restore(self) -> int:
        """Load the database and restart every torrent in it; returns how many."""
        self.categories = await self.store.categories()
        self.tags = await self.store.tags()
        self.prefs = await self.store.prefs()
        self.apply_global_limits()
        rows = await self.store.torrents()
        for row in rows:
            try:
                await self._start(row)
            except (ShoalError, ValueError, OSError) as exc:
                log.error("cannot restore torrent %s: %s", row.hash, exc)
        return len(rows)

    def apply_global_limits(self) -> None:
        """Stored ``dl_limit``/``up_limit`` preferences (B/s, 0 = unlimited) become the
        client-wide limits; unset ones keep ``--max-download-rate``/``--max-upload-rate``."""
        down, up = self.client.limits()
        if "dl_limit" in self.prefs:
            down = int(self.prefs["dl_limit"]) or None
        if "up_limit" in self.prefs:
            up = int(self.prefs["up_limit"]) or None
        self.client.set_limits(download=down, upload=up)

    async def set_global_limits(self, **limits: int) -> None:
        """``dl_limit``/``up_limit`` in B/s (0 or less: unlimited): stored, then applied."""
        stored = {key: max(value, 0) for key, value in limits.items()}
        self.prefs.update(stored)
        await self.store.put_prefs(stored)
        self.apply_global_limits()

    def global_limits(self) -> tuple[int, int]:
        """The client-wide (download, upload) limits in B/s, 0 for none (qBittorrent)."""
        down, up = self.client.limits()
        return int(down or 0), int(up or 0)

    async def _start(self, row: TorrentRow) -> None:
        source: Magnet | Metainfo = (
            parse_magnet(row.source.decode()) if row.is_magnet else parse_metainfo(row.source)
        )
        prio = row.file_prio
        select = [i for i, p in enumerate(prio) if p > 0] if any(p == 0 for p in prio) else None
        torrent = await self.client.add(
            source, save_to=Path(row.save_path), select=select, sequential=row.sequential
        )
        _apply_limits(torrent, row)
        if any(p > 1 for p in prio):
            torrent.set_file_priorities(_levels(prio))
        if row.paused:
            await torrent.pause()
        base = (row.downloaded_total, row.uploaded_total)
        self._entries[row.hash] = _Entry(row, torrent, trio.current_time(), base)
        self._infos = None
        self._nursery.start_soon(self._watch, row, torrent)
        self._nursery.start_soon(self._count_events, torrent)

    async def _count_events(self, torrent: Torrent) -> None:
        """Hash failures and peer bans, for /metrics (the subscription ends with the torrent)."""
        async with torrent.events() as events:
            async for event in events:
                if isinstance(event, tev.PieceFailed):
                    self.hash_failures += 1
                elif isinstance(event, tev.PeerBanned):
                    self.peer_bans += 1

    async def _watch(self, row: TorrentRow, torrent: Torrent) -> None:
        """Store a magnet's verified metadata, then the completion time, as they happen."""
        try:
            meta = await torrent.wait_metadata()
            if row.is_magnet and self._entries.get(row.hash, None) is not None:
                row.source = build_metainfo(meta.info.raw)
                row.is_magnet = False
                row.name = meta.info.name
                if not row.file_prio:
                    row.file_prio = [1] * len(meta.info.files)
                await self._save(row)
            await torrent.wait_complete()
        except (MetadataError, StorageError):
            return  # removed or failed: nothing to record
        if row.completion_on < 0 and self._entries.get(row.hash) is not None:
            row.completion_on = _now_wall()
            await self._save(row)

    # ---- queries -------------------------------------------------------------------

    def hashes(self) -> list[str]:
        return list(self._entries)

    def resolve(self, hashes: str) -> list[str]:
        """``hashes`` parameter: ``all`` or ``|``-separated (unknown hashes are ignored)."""
        if hashes.strip().lower() == "all":
            return list(self._entries)
        wanted = [h.strip().lower() for h in hashes.split("|") if h.strip()]
        return [h for h in wanted if h in self._entries]

    def view(self, info_hash: str, *, pieces: bool = False) -> qbt.View:
        """A snapshot of one torrent; `pieces` adds per-piece state (files, pieceStates).

        Raises:
            ApiError: 404 for an unknown hash.
        """
        entry = self._entries.get(info_hash.lower())
        if entry is None:
            raise ApiError(404, "Torrent hash was not found")
        t = entry.torrent
        return qbt.View(
            row=entry.row,
            stats=t.statistics(),
            metainfo=t.metainfo,
            verified=t.verified_pieces() if pieces else [],
            downloading=t.downloading_pieces() if pieces else frozenset(),
            all_time=entry.totals(),
            time_active=int(trio.current_time() - entry.started),
            dht=self.client.dht is not None,
        )

    def views(self) -> list[qbt.View]:
        return [self.view(h) for h in self._entries]

    def infos(self) -> list[dict[str, Any]]:
        """Every ``torrents/info`` row (shared for `INFO_TTL` s; treat as read-only)."""
        now = trio.current_time()
        if self._infos is None or now - self._infos[0] > INFO_TTL:
            self._infos = (now, [qbt.torrent_info(v) for v in self.views()])
        return self._infos[1]

    async def _save(self, row: TorrentRow) -> None:
        self._infos = None
        await self.store.put_torrent(row)

    def category_dict(self) -> dict[str, dict[str, Any]]:
        return {n: {"name": n, "savePath": p} for n, p in sorted(self.categories.items())}

    def server_state(self) -> dict[str, Any]:
        stats = self.client.statistics()
        views = [e.torrent.statistics() for e in self._entries.values()]
        nodes = 0
        if self.client.dht is not None:
            nodes = self.client.dht.statistics().nodes  # every address family
        return {
            "connection_status": "connected" if stats.peers else "disconnected",
            "dht_nodes": nodes,
            "dl_info_data": sum(v.downloaded_payload for v in views),
            "dl_info_speed": round(stats.download_rate),
            "dl_rate_limit": self.global_limits()[0],
            "up_info_data": sum(v.uploaded for v in views),
            "up_info_speed": round(stats.upload_rate),
            "up_rate_limit": self.global_limits()[1],
            "queueing": False,
            "use_alt_speed_limits": False,
            "refresh_interval": 1500,
            "free_space_on_disk": _free_space(self.config.download_dir),
        }

    def maindata(self) -> MainData:
        return MainData(
            torrents={i["hash"]: i for i in self.infos()},
            categories=self.category_dict(),
            tags=tuple(self.tags),
            server_state=self.server_state(),
        )

    # ---- save paths ----------------------------------------------------------------

    def check_save_path(self, text: str) -> Path:
        """An absolute save path inside the download roots (or anywhere, if allowed).

        Raises:
            ApiError: 400 for ``..`` components or a path outside every root.
        """
        if not text:
            return self.config.download_dir
        if "\x00" in text or ".." in Path(text).parts:
            raise ApiError(400, "savepath must not contain '..'")
        path = Path(text)
        if not path.is_absolute():
            path = self.config.download_dir / path
        resolved = Path(os.path.realpath(path))
        if self.config.allow_any_savepath:
            return resolved
        for root in self.config.roots:
            real_root = Path(os.path.realpath(root))
            if resolved == real_root or resolved.is_relative_to(real_root):
                return resolved
        raise ApiError(400, "savepath is outside the download directory")

    # ---- torrents --------------------------------------------------------------------

    async def add(self, source: str | bytes, options: AddOptions) -> bool:
        """Add one magnet URI or .torrent; False if it is already there.

        Raises:
            ApiError: 415 for an unparseable .torrent, 400 for a bad magnet.
        """
        meta: Metainfo | None = None
        if isinstance(source, bytes):
            try:
                meta = parse_metainfo(source)
            except DecodeError as exc:
                raise ApiError(415, f"Torrent file is not valid: {exc}") from None
            info_hash, name, stored, is_magnet = meta.info_hash.hex(), meta.info.name, source, False
        else:
            try:
                magnet = parse_magnet(source)
            except DecodeError as exc:
                raise ApiError(400, f"not a magnet link: {exc}") from None
            info_hash = magnet.info_hash.hex()
            name = magnet.display_name or info_hash
            stored, is_magnet = source.encode(), True
        async with self._lock:
            if info_hash in self._entries:
                return False
            row = TorrentRow(
                hash=info_hash,
                source=stored,
                is_magnet=is_magnet,
                name=name,
                save_path=str(options.save_path),
                added_on=_now_wall(),
                category=options.category,
                tags=list(options.tags),
                paused=options.paused,
                sequential=options.sequential,
                ratio_limit=options.ratio_limit,
                seeding_time_limit=options.seeding_time_limit,
                dl_limit=options.dl_limit,
                up_limit=options.up_limit,
                file_prio=[1] * len(meta.info.files) if meta is not None else [],
            )
            for tag in options.tags:
                await self._ensure_tag(tag)
            await self._save(row)
            await self._start(row)
        return True

    async def delete(self, hashes: list[str], *, delete_files: bool) -> None:
        async with self._lock:
            for h in hashes:
                entry = self._entries.pop(h, None)
                if entry is None:
                    continue
                self._infos = None
                await self.store.delete_torrent(h)
                await entry.torrent.remove(delete_files=delete_files)

    async def pause(self, hashes: list[str]) -> None:
        await self._set_paused(hashes, paused=True)

    async def resume(self, hashes: list[str]) -> None:
        await self._set_paused(hashes, paused=False)

    async def force_start(self, hashes: list[str], *, value: bool) -> None:
        """``setForceStart``: qBittorrent's force start ignores the queue limits and
        runs the torrent. shoal has no queue, so ``true`` resumes a paused torrent and
        marks it forced (reported ``forcedDL``/``forcedUP``); ``false`` only clears the
        mark. A plain resume clears it too, as qBittorrent's does."""
        if value:
            await self._set_paused(hashes, paused=False, forced=True)
        else:
            await self.update(hashes, force_start=False)

    async def _set_paused(self, hashes: list[str], *, paused: bool, forced: bool = False) -> None:
        """Record the choice first (it survives a restart), then apply it."""
        for h in hashes:
            entry = self._entries.get(h)
            if entry is None:  # removed by another request meanwhile
                continue
            entry.row.paused = paused
            if not paused:
                entry.row.force_start = forced
            await self._save(entry.row)
            await (entry.torrent.pause() if paused else entry.torrent.resume())

    def add_peers(self, hashes: list[str], peers: list[tuple[str, int]]) -> None:
        """``torrents/addPeers``: dial these addresses for each torrent (not stored)."""
        for h in hashes:
            entry = self._entries.get(h)
            if entry is not None:
                entry.torrent.add_peers(peers)

    async def restart(self, info_hash: str, *, recheck: bool = False) -> None:
        """Stop the torrent (saving resume data) and start it again from its row."""
        async with self._lock:
            entry = self._entries.pop(info_hash, None)
            if entry is None:
                return
            self._infos = None
            await entry.torrent.remove(delete_files=False)
            entry.row.downloaded_total, entry.row.uploaded_total = entry.totals()
            if recheck:
                resume = self.config.state_dir / "resume" / f"{info_hash}.resume"
                await trio.to_thread.run_sync(lambda: resume.unlink(missing_ok=True))
            await self._start(entry.row)

    async def update(self, hashes: list[str], **fields: Any) -> None:
        """Set row fields (limits, flags) and store them."""
        for h in hashes:
            if h not in self._entries:  # removed by another request meanwhile
                continue
            row = self._entries[h].row
            for key, value in fields.items():
                setattr(row, key, value)
            if {"dl_limit", "up_limit"} & fields.keys():
                _apply_limits(self._entries[h].torrent, row)
            await self._save(row)

    async def set_file_priority(self, info_hash: str, ids: list[int], priority: int) -> None:
        """``torrents/filePrio``; priority 0 deselects the file (applied by a restart).

        Raises:
            ApiError: 404 unknown hash, 400 bad priority, 409 bad file id or no metadata.
        """
        entry = self._entries.get(info_hash)
        if entry is None:
            raise ApiError(404, "Torrent hash was not found")
        if priority not in FILE_PRIORITIES:
            raise ApiError(400, "Priority is invalid")
        meta = entry.torrent.metainfo
        if meta is None:
            raise ApiError(409, "Torrent's metadata has not yet downloaded")
        count = len(meta.info.files)
        if any(not 0 <= i < count for i in ids):
            raise ApiError(409, "File IDs are invalid")
        prio = entry.row.file_prio or [1] * count
        before = [p > 0 for p in prio]
        for i in ids:
            prio[i] = priority
        entry.row.file_prio = prio
        await self._save(entry.row)
        if before != [p > 0 for p in prio]:
            await self.restart(info_hash)
        else:
            entry.torrent.set_file_priorities(_levels(prio))

    # ---- categories and tags -----------------------------------------------------------

    async def set_category(self, hashes: list[str], category: str) -> None:
        if category and category not in self.categories:
            raise ApiError(409, "Category does not exist")
        await self.update(hashes, category=category)

    async def create_category(self, name: str, save_path: str) -> None:
        if not _valid_category(name):
            raise ApiError(400, "Invalid category name")
        if name in self.categories:
            raise ApiError(409, "Category already exists")
        await self._put_category(name, save_path)

    async def edit_category(self, name: str, save_path: str) -> None:
        if name not in self.categories:
            raise ApiError(409, "Category does not exist")
        await self._put_category(name, save_path)

    async def _put_category(self, name: str, save_path: str) -> None:
        path = str(self.check_save_path(save_path)) if save_path else ""
        self.categories[name] = path
        await self.store.put_category(name, path)

    async def remove_categories(self, names: list[str]) -> None:
        for name in names:
            if name not in self.categories:
                continue
            del self.categories[name]
            await self.store.delete_category(name)
            users = [h for h, e in self._entries.items() if e.row.category == name]
            await self.update(users, category="")

    async def _ensure_tag(self, tag: str) -> None:
        if tag not in self.tags:
            self.tags.append(tag)
            self.tags.sort()
            await self.store.put_tag(tag)

    async def add_tags(self, hashes: list[str], tags: list[str]) -> None:
        for tag in tags:
            await self._ensure_tag(tag)
        for h in hashes:
            if h not in self._entries:  # removed by another request meanwhile
                continue
            row = self._entries[h].row
            row.tags = sorted(set(row.tags) | set(tags))
            await self._save(row)

    async def remove_tags(self, hashes: list[str], tags: list[str]) -> None:
        for h in hashes:
            if h not in self._entries:  # removed by another request meanwhile
                continue
            row = self._entries[h].row
            row.tags = [t for t in row.tags if t not in tags] if tags else []
            await self._save(row)

    async def create_tags(self, tags: list[str]) -> None:
        for tag in tags:
            await self._ensure_tag(tag)

    async def delete_tags(self, tags: list[str]) -> None:
        for tag in tags:
            if tag in self.tags:
                self.tags.remove(tag)
                await self.store.delete_tag(tag)
        users = [h for h, e in self._entries.items() if set(e.row.tags) & set(tags)]
        await self.remove_tags(users, tags)

    # ---- statistics and share limits -------------------------------------------------

    async def save_statistics(self) -> None:
        """Store every torrent's all-time totals that changed (every few seconds and at
        shutdown, so a ``kill -9`` loses only the last few seconds of them)."""
        for entry in list(self._entries.values()):
            down, up = entry.totals()
            row = entry.row
            if (down, up) != (row.downloaded_total, row.uploaded_total):
                row.downloaded_total, row.uploaded_total = down, up
                await self.store.put_torrent(row)

    async def enforce_share_limits(self) -> None:
        """Pause seeding torrents past their ratio or seeding-time limit (qBittorrent's
        default action). -2 means the global limit, which is unset here; -1 no limit."""
        due = []
        for h, entry in self._entries.items():
            row = entry.row
            if row.paused or entry.torrent.state.name != "SEEDING":
                continue
            ratio = qbt.all_time_ratio(self.view(h))
            seeded = (_now_wall() - row.completion_on) / 60 if row.completion_on > 0 else 0
            if (row.ratio_limit >= 0 and ratio >= row.ratio_limit) or (
                row.seeding_time_limit >= 0 and seeded >= row.seeding_time_limit
            ):
                due.append(h)
        if due:
            await self.pause(due)


def _apply_limits(torrent: Torrent, row: TorrentRow) -> None:
    """``dlLimit``/``upLimit`` (B/s, 0 = unlimited) become the torrent's rate limits."""
    torrent.set_limits(download=row.dl_limit or None, upload=row.up_limit or None)


def _levels(prio: list[int]) -> list[int]:
    """qBittorrent file priorities to the engine's levels: 1 normal is the engine's 4,
    6 high and 7 maximal are its 6 and 7 (0, skip, is the selection: any level)."""
    return [4 if p <= 1 else p for p in prio]


def _valid_category(name: str) -> bool:
    """qBittorrent: non-empty, no leading/trailing ``/``, no ``//``, no backslash."""
    return (
        bool(name)
        and not (name.startswith("/") or name.endswith("/") or "//" in name or "\\" in name)
        and ".." not in name.split("/")
    )


def _free_space(path: Path) -> int:
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize
