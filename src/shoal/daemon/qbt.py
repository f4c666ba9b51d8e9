"""qBittorrent Web API v2 JSON shapes: torrent rows, properties, files, states, filters.

Why a module of its own: the field names, units and sentinels are the contract with
unmodified clients (Sonarr, VueTorrent, ``qbittorrent-api``), so they live in one
place, next to nothing else. Units as qBittorrent sends them: bytes, bytes/s, Unix
seconds, ratios as floats, ``-1`` for "never"/"unknown", ETA 8640000 for infinity.
Everything here is a plain function of a `View` (a snapshot the state layer builds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, final

from ..layout import file_pieces
from ..magnet import Magnet, format_magnet

if TYPE_CHECKING:
    from ..metainfo import Metainfo
    from ..torrent import TorrentStats
    from .db import TorrentRow

__all__ = [
    "INFINITE_ETA",
    "View",
    "file_rows",
    "filter_views",
    "piece_states",
    "properties",
    "qbt_state",
    "torrent_info",
    "tracker_rows",
]

#: qBittorrent's "infinite" ETA (100 days), used when nothing is being downloaded.
INFINITE_ETA: Final = 8640000

_PAUSED: Final = frozenset({"pausedDL", "pausedUP", "stoppedDL", "stoppedUP"})
_DOWNLOADING: Final = frozenset(
    {"downloading", "metaDL", "pausedDL", "queuedDL", "stalledDL", "checkingDL", "forcedDL"}
)
_SEEDING: Final = frozenset({"uploading", "stalledUP", "queuedUP", "forcedUP", "checkingUP"})
_ERRORED: Final = frozenset({"error", "missingFiles", "unknown"})


@final
@dataclass(frozen=True, slots=True)
class View:
    """One torrent as the API sees it at one moment (row + engine snapshot)."""

    row: TorrentRow
    stats: TorrentStats
    metainfo: Metainfo | None
    verified: list[bool]  # per piece; empty unless asked for (files, pieceStates)
    time_active: int  # seconds since the torrent was (re)started in this daemon
    dht: bool
    all_time: tuple[int, int] = (0, 0)  # payload (down, up) over every run
    downloading: frozenset[int] = frozenset()  # pieces in flight (pieceStates 1)

    @property
    def complete(self) -> bool:
        s = self.stats
        return s.pieces_total > 0 and s.downloaded >= s.selected_size


def all_time_ratio(view: View) -> float:
    """Uploaded over downloaded, all time; a seed that downloaded nothing divides by
    what it has verified (qBittorrent does the same), so seeding still counts."""
    down, up = view.all_time
    base = max(down, view.stats.downloaded)
    return up / base if base else 0.0


def qbt_state(view: View) -> str:
    """qBittorrent 4.x state string (``pausedDL`` etc.; 5.x clients accept these too)."""
    name = view.stats.state.name
    done = view.complete
    if name == "ERROR":
        return "error"
    if name in ("PAUSED", "STOPPED"):
        return "pausedUP" if done else "pausedDL"
    if name == "CHECKING":
        return "checkingUP" if done else "checkingDL"
    if name in ("FINDING_PEERS", "FETCHING_METADATA"):
        return "metaDL" if view.metainfo is None else "stalledDL"
    forced = view.row.force_start
    if name == "SEEDING" or done:
        if forced:
            return "forcedUP"
        return "uploading" if view.stats.upload_rate > 0 else "stalledUP"
    if forced:
        return "forcedDL"
    return "downloading" if view.stats.download_rate > 0 else "stalledDL"


def _magnet_uri(view: View) -> str:
    return format_magnet(Magnet(_info_hash(view), display_name=_name(view)))


def _info_hash(view: View) -> Any:
    from ..ids import InfoHash

    return InfoHash(bytes.fromhex(view.row.hash))


def _name(view: View) -> str:
    return view.stats.name or view.row.name or view.row.hash


def _content_path(view: View) -> str:
    import posixpath

    meta = view.metainfo
    if meta is None:
        return view.row.save_path
    if meta.info.multi_file:
        return posixpath.join(view.row.save_path, meta.info.files[0].path[0])
    return posixpath.join(view.row.save_path, *meta.info.files[0].path)


def torrent_info(view: View) -> dict[str, Any]:
    """One element of ``torrents/info`` (and of ``sync/maindata``'s ``torrents``)."""
    s, row = view.stats, view.row
    size = s.selected_size
    left = max(size - s.downloaded, 0)
    progress = s.downloaded / size if size else 0.0
    if view.complete:
        progress = 1.0
    eta = INFINITE_ETA if s.eta is None else round(s.eta)
    return {
        "added_on": row.added_on,
        "amount_left": left,
        "auto_tmm": False,
        "availability": -1 if s.pieces_total == 0 else float(s.seeds > 0 or progress),
        "category": row.category,
        "completed": s.downloaded,
        "completion_on": row.completion_on,
        "content_path": _content_path(view),
        "dl_limit": row.dl_limit or -1,
        "dlspeed": round(s.download_rate),
        "download_path": "",
        "downloaded": view.all_time[0],
        "downloaded_session": s.downloaded_payload,
        "eta": eta if not view.complete else INFINITE_ETA,
        "f_l_piece_prio": False,
        "force_start": row.force_start,
        "hash": row.hash,
        "infohash_v1": row.hash,
        "infohash_v2": "",
        "isPrivate": view.metainfo is not None and view.metainfo.info.private,
        "last_activity": 0,
        "magnet_uri": _magnet_uri(view),
        "max_ratio": row.ratio_limit,
        "max_seeding_time": row.seeding_time_limit,
        "max_inactive_seeding_time": row.inactive_seeding_time_limit,
        "name": _name(view),
        "num_complete": s.seeds,
        "num_incomplete": max(s.known_peers - s.seeds, 0),
        "num_leechs": s.peers - s.seeds,
        "num_seeds": s.seeds,
        "popularity": 0,
        "priority": 0,  # queueing is disabled: qBittorrent reports 0 then
        "progress": progress,
        "ratio": all_time_ratio(view),
        "ratio_limit": row.ratio_limit,
        "reannounce": 0,
        "save_path": row.save_path,
        "seeding_time": view.time_active if view.complete else 0,
        "seeding_time_limit": row.seeding_time_limit,
        "inactive_seeding_time_limit": row.inactive_seeding_time_limit,
        "seen_complete": row.completion_on if row.completion_on > 0 else -1,
        "seq_dl": row.sequential,
        "size": size,
        "state": qbt_state(view),
        "super_seeding": False,
        "tags": ", ".join(row.tags),
        "time_active": view.time_active,
        "total_size": s.total_size,
        "tracker": "",
        "trackers_count": 0,
        "up_limit": row.up_limit or -1,
        "uploaded": view.all_time[1],
        "uploaded_session": s.uploaded,
        "upspeed": round(s.upload_rate),
    }


def properties(view: View) -> dict[str, Any]:
    """``torrents/properties`` (the "General" tab)."""
    s, row, meta = view.stats, view.row, view.metainfo
    info = torrent_info(view)
    piece_size = meta.info.piece_length if meta is not None else -1
    return {
        "addition_date": row.added_on,
        "comment": (meta.comment or "") if meta else "",
        "completion_date": row.completion_on,
        "created_by": (meta.created_by or "") if meta else "",
        "creation_date": (meta.creation_date or -1) if meta else -1,
        "dl_limit": info["dl_limit"],
        "dl_speed": info["dlspeed"],
        "dl_speed_avg": info["dlspeed"],
        "download_path": "",
        "eta": info["eta"],
        "hash": row.hash,
        "infohash_v1": row.hash,
        "infohash_v2": "",
        "isPrivate": info["isPrivate"],
        "is_private": info["isPrivate"],
        "last_seen": -1,
        "name": info["name"],
        "nb_connections": s.peers,
        "nb_connections_limit": -1,
        "peers": s.peers - s.seeds,
        "peers_total": s.known_peers,
        "piece_size": piece_size,
        "pieces_have": s.pieces_done,
        "pieces_num": s.pieces_total,
        "reannounce": 0,
        "save_path": row.save_path,
        "seeding_time": info["seeding_time"],
        "seeds": s.seeds,
        "seeds_total": s.seeds,
        "share_ratio": info["ratio"],
        "time_elapsed": view.time_active,
        "total_downloaded": view.all_time[0],
        "total_downloaded_session": s.downloaded_payload,
        "total_size": s.total_size,
        "total_uploaded": view.all_time[1],
        "total_uploaded_session": s.uploaded,
        "total_wasted": 0,
        "up_limit": info["up_limit"],
        "up_speed": info["upspeed"],
        "up_speed_avg": info["upspeed"],
    }


def file_rows(view: View) -> list[dict[str, Any]]:
    """``torrents/files``: one row per (non-pad) file, in torrent order."""
    meta = view.metainfo
    if meta is None:
        return []
    info = meta.info
    rows = []
    prio = view.row.file_prio
    for index, f in enumerate(info.files):
        if f.pad:
            continue
        pieces = file_pieces(info, index)
        done = sum(1 for p in pieces if view.verified and view.verified[p])
        progress = 1.0 if not pieces else done / len(pieces)
        name = "/".join(f.path)  # relative to the save path, top directory included
        rows.append(
            {
                "index": index,
                "name": name,
                "size": f.length,
                "progress": progress,
                "priority": prio[index] if index < len(prio) else 1,
                "is_seed": progress == 1.0,
                "piece_range": [pieces.start, max(pieces.stop - 1, pieces.start)],
                "availability": -1,
            }
        )
    return rows


def piece_states(view: View) -> list[int]:
    """``torrents/pieceStates``: 0 not downloaded, 1 downloading (blocks requested or
    received, not yet verified), 2 downloaded (verified)."""
    busy = view.downloading
    return [2 if v else 1 if i in busy else 0 for i, v in enumerate(view.verified)]


def tracker_rows(view: View) -> list[dict[str, Any]]:
    """``torrents/trackers``: shoal is trackerless, so only the DHT/PeX/LSD rows."""
    private = view.metainfo is not None and view.metainfo.info.private
    rows = []
    for url, on in (("** [DHT] **", view.dht), ("** [PeX] **", True), ("** [LSD] **", False)):
        working = on and not private
        rows.append(
            {
                "url": url,
                "status": 2 if working else 0,  # 2 working, 0 disabled
                "tier": -1,
                "num_peers": view.stats.peers if working else 0,
                "num_seeds": view.stats.seeds if working else 0,
                "num_leeches": view.stats.peers - view.stats.seeds if working else 0,
                "num_downloaded": 0,
                "msg": "" if working else "This torrent is private" if private else "",
            }
        )
    return rows


def _matches(state: str, status: str, info: dict[str, Any]) -> bool:
    if status in ("all", ""):
        return True
    if status == "downloading":
        return state in _DOWNLOADING
    if status in ("seeding",):
        return state in _SEEDING
    if status == "completed":
        return bool(info["progress"] >= 1.0)
    if status in ("paused", "stopped"):
        return state in _PAUSED
    if status in ("resumed", "running"):
        return state not in _PAUSED
    if status == "active":
        return bool(info["dlspeed"] > 0 or info["upspeed"] > 0)
    if status == "inactive":
        return bool(info["dlspeed"] == 0 and info["upspeed"] == 0)
    if status == "stalled":
        return state in ("stalledUP", "stalledDL")
    if status == "stalled_uploading":
        return state == "stalledUP"
    if status == "stalled_downloading":
        return state == "stalledDL"
    if status == "checking":
        return state.startswith("checking")
    if status in ("errored",):
        return state in _ERRORED
    raise ValueError(f"unknown filter {status!r}")


def filter_views(
    infos: list[dict[str, Any]],
    *,
    status: str = "all",
    category: str | None = None,
    tag: str | None = None,
    hashes: set[str] | None = None,
    sort: str | None = None,
    reverse: bool = False,
    limit: int = 0,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """``torrents/info`` selection: filter, then sort, then offset/limit (as qBittorrent).

    Raises:
        ValueError: an unknown `status` filter.
    """
    out = []
    for info in infos:
        if not _matches(info["state"], status, info):
            continue
        if category is not None and info["category"] != category:
            continue
        if tag is not None:
            tags = [t for t in info["tags"].split(", ") if t]
            if (tag == "" and tags) or (tag != "" and tag not in tags):
                continue
        if hashes is not None and info["hash"] not in hashes:
            continue
        out.append(info)
    if sort:
        out.sort(key=lambda i: (i.get(sort) is None, _sort_key(i.get(sort))), reverse=reverse)
    if offset < 0:
        offset = max(len(out) + offset, 0)
    out = out[offset:]
    if limit > 0:
        out = out[:limit]
    return out


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, (int, float)):
        return (0, value)
    return (1, str(value).lower())
