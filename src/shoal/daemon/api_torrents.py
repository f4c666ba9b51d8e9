"""``torrents/*``: list, inspect, add, remove and configure torrents.

Names, parameters and status codes follow qBittorrent's Web API v2 documentation:
``hashes`` is ``|``-separated or ``all`` and unknown hashes are ignored; a getter
for an unknown ``hash`` is 404; ``torrents/add`` answers ``Ok.`` when it added at
least one torrent and ``Fails.`` otherwise, and 415 for an invalid .torrent file.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING, Final

from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..errors import DecodeError
from ..metainfo import parse_metainfo
from . import qbt
from .api_common import MAX_TORRENT_FILE, Params, daemon_of, json, ok, params
from .fetch import FetchError, fetch_torrent, is_http_url
from .state import AddOptions, ApiError

if TYPE_CHECKING:
    from starlette.requests import Request

    from .state import Daemon

__all__ = ["routes"]

#: More URLs than this in one ``torrents/add`` is abuse, not a batch.
MAX_URLS: Final = 1000
#: http(s) URLs are fetched one after the other (each within fetch.FETCH_SECONDS), so
#: one request may name only a few.
MAX_FETCHES: Final = 16

log = logging.getLogger(__name__)


async def info(request: Request) -> Response:
    p = await params(request)
    hashes = p.get("hashes")
    try:
        rows = qbt.filter_views(
            daemon_of(request).infos(),
            status=p.get("filter") or "all",
            category=p.get("category"),
            tag=p.get("tag"),
            hashes={h.lower() for h in hashes.split("|")} if hashes else None,
            sort=p.get("sort"),
            reverse=p.boolean("reverse"),
            limit=p.integer("limit"),
            offset=p.integer("offset"),
        )
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    return json(rows)


async def _one(request: Request, *, pieces: bool = False) -> tuple[Daemon, qbt.View]:
    p = await params(request)
    daemon = daemon_of(request)
    return daemon, daemon.view(p.require("hash"), pieces=pieces)


async def properties(request: Request) -> Response:
    _, view = await _one(request)
    return json(qbt.properties(view))


async def files(request: Request) -> Response:
    _, view = await _one(request, pieces=True)
    return json(qbt.file_rows(view))


async def trackers(request: Request) -> Response:
    _, view = await _one(request)
    return json(qbt.tracker_rows(view))


async def piece_states(request: Request) -> Response:
    _, view = await _one(request, pieces=True)
    return json(qbt.piece_states(view))


async def piece_hashes(request: Request) -> Response:
    _, view = await _one(request)
    meta = view.metainfo
    if meta is None:
        return json([])
    return json([meta.info.piece_hash(i).hex() for i in range(meta.info.num_pieces)])


def _split_tags(value: str | None) -> list[str]:
    return [t.strip() for t in (value or "").split(",") if t.strip()]


def _add_options(daemon: Daemon, p: Params) -> AddOptions:
    category = p.get("category") or ""
    save = p.get("savepath") or daemon.categories.get(category) or ""
    paused = p.boolean("paused") or p.boolean("stopped")
    return AddOptions(
        save_path=daemon.check_save_path(save),
        category=category,
        tags=tuple(_split_tags(p.get("tags"))),
        paused=paused,
        sequential=p.boolean("sequentialDownload"),
        ratio_limit=p.number("ratioLimit", -2.0),
        seeding_time_limit=p.integer("seedingTimeLimit", -2),
        dl_limit=max(p.integer("dlLimit"), 0),
        up_limit=max(p.integer("upLimit"), 0),
    )


async def add(request: Request) -> Response:
    p = await params(request)
    daemon = daemon_of(request)
    options = _add_options(daemon, p)
    if options.category and options.category not in daemon.categories:
        await daemon.create_category(options.category, "")  # as qBittorrent does
    sources: list[str | bytes] = []
    urls = [u.strip() for u in (p.get("urls") or "").splitlines() if u.strip()]
    if len(urls) > MAX_URLS:
        raise ApiError(400, f"at most {MAX_URLS} urls per request")
    sources.extend(urls)
    for key, data in p.files:
        if key == "torrents":
            if len(data) > MAX_TORRENT_FILE:
                raise ApiError(413, "torrent file is too large")
            sources.append(data)
    if not sources:
        raise ApiError(400, "give magnet links in 'urls' or .torrent files in 'torrents'")
    if sum(1 for u in urls if is_http_url(u)) > MAX_FETCHES:
        raise ApiError(400, f"at most {MAX_FETCHES} http(s) urls per request")
    config = daemon.client.config
    # A direct HTTP request would show our address past --proxy / anonymous mode.
    direct_ok = config.proxy is None and not config.anonymous
    added = 0
    for source in sources:
        item: str | bytes | None = source
        if isinstance(source, str) and is_http_url(source):
            item = await _fetched(source) if direct_ok else None
            if not direct_ok:
                log.warning("torrents/add: %r not fetched: it would bypass the proxy", source[:200])
        elif isinstance(source, str) and not source.startswith("magnet:"):
            item = None  # neither a magnet link nor http(s): qBittorrent ignores it too
        if item is not None and await daemon.add(item, options):
            added += 1
    return PlainTextResponse("Ok." if added else "Fails.")


async def _fetched(url: str) -> bytes | None:
    """The .torrent at `url`, or None (logged) if it cannot be fetched or parsed: as
    in qBittorrent, which downloads it after answering, a bad URL adds nothing."""
    try:
        data = await fetch_torrent(url)
        parse_metainfo(data)
    except (FetchError, DecodeError) as exc:
        log.warning("torrents/add: %s", exc)
        return None
    return data


async def _hashes(request: Request) -> tuple[Daemon, Params, list[str]]:
    p = await params(request)
    daemon = daemon_of(request)
    return daemon, p, daemon.resolve(p.require("hashes"))


async def delete(request: Request) -> Response:
    daemon, p, hashes = await _hashes(request)
    await daemon.delete(hashes, delete_files=p.boolean("deleteFiles"))
    return ok()


async def pause(request: Request) -> Response:
    daemon, _, hashes = await _hashes(request)
    await daemon.pause(hashes)
    return ok()


async def resume(request: Request) -> Response:
    daemon, _, hashes = await _hashes(request)
    await daemon.resume(hashes)
    return ok()


async def recheck(request: Request) -> Response:
    daemon, _, hashes = await _hashes(request)
    for h in hashes:
        await daemon.restart(h, recheck=True)
    return ok()


async def set_category(request: Request) -> Response:
    daemon, p, hashes = await _hashes(request)
    await daemon.set_category(hashes, p.get("category") or "")
    return ok()


async def categories(request: Request) -> Response:
    return json(daemon_of(request).category_dict())


async def create_category(request: Request) -> Response:
    p = await params(request)
    await daemon_of(request).create_category(p.require("category"), p.get("savePath") or "")
    return ok()


async def edit_category(request: Request) -> Response:
    p = await params(request)
    await daemon_of(request).edit_category(p.require("category"), p.get("savePath") or "")
    return ok()


async def remove_categories(request: Request) -> Response:
    p = await params(request)
    names = [n.strip() for n in (p.get("categories") or "").splitlines() if n.strip()]
    await daemon_of(request).remove_categories(names)
    return ok()


async def add_tags(request: Request) -> Response:
    daemon, p, hashes = await _hashes(request)
    await daemon.add_tags(hashes, _split_tags(p.get("tags")))
    return ok()


async def remove_tags(request: Request) -> Response:
    daemon, p, hashes = await _hashes(request)
    await daemon.remove_tags(hashes, _split_tags(p.get("tags")))
    return ok()


async def tags(request: Request) -> Response:
    return json(daemon_of(request).tags)


async def create_tags(request: Request) -> Response:
    p = await params(request)
    await daemon_of(request).create_tags(_split_tags(p.get("tags")))
    return ok()


async def delete_tags(request: Request) -> Response:
    p = await params(request)
    await daemon_of(request).delete_tags(_split_tags(p.get("tags")))
    return ok()


async def set_share_limits(request: Request) -> Response:
    daemon, p, hashes = await _hashes(request)
    ratio = p.number("ratioLimit", -2.0)
    seeding = p.integer("seedingTimeLimit", -2)
    inactive = p.integer("inactiveSeedingTimeLimit", -2)
    if ratio < -2 or seeding < -2 or inactive < -2:
        raise ApiError(400, "share limits must be -2 (global), -1 (none) or at least 0")
    await daemon.update(
        hashes,
        ratio_limit=ratio,
        seeding_time_limit=seeding,
        inactive_seeding_time_limit=inactive,
    )
    await daemon.enforce_share_limits()
    return ok()


async def set_force_start(request: Request) -> Response:
    daemon, p, hashes = await _hashes(request)
    await daemon.force_start(hashes, value=p.boolean("value"))
    return ok()


async def set_sequential(request: Request) -> Response:
    daemon, _, hashes = await _hashes(request)
    for h in hashes:
        await daemon.update([h], sequential=not daemon.view(h).row.sequential)
    return ok()


async def file_prio(request: Request) -> Response:
    p = await params(request)
    try:
        ids = [int(i) for i in p.require("id").split("|")]
    except ValueError:
        raise ApiError(400, "parameter 'id' must be |-separated integers") from None
    priority = p.integer("priority", -1)
    await daemon_of(request).set_file_priority(p.require("hash").lower(), ids, priority)
    return ok()


def _limit_setter(field: str):  # type: ignore[no-untyped-def]
    async def handler(request: Request) -> Response:
        daemon, p, hashes = await _hashes(request)
        limit = p.integer("limit")
        await daemon.update(hashes, **{field: max(limit, 0)})
        return ok()

    return handler


def _limit_getter(field: str):  # type: ignore[no-untyped-def]
    async def handler(request: Request) -> Response:
        daemon, _, hashes = await _hashes(request)
        return json({h: getattr(daemon.view(h).row, field) or -1 for h in hashes})

    return handler


def _peer(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` of ``torrents/addPeers`` (an IP literal)."""
    host, sep, port = text.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    try:
        ip = ipaddress.ip_address(host)
        number = int(port) if sep and port.isdigit() else 0
    except ValueError:
        number = 0
    if not 0 < number < 65536:
        raise ApiError(400, f"peer {text[:60]!r} is not IP:PORT")
    return str(ip), number


async def add_peers(request: Request) -> Response:
    daemon, p, hashes = await _hashes(request)
    items = [t for t in p.require("peers").split("|") if t.strip()]
    if len(items) > MAX_URLS:
        raise ApiError(400, f"at most {MAX_URLS} peers per request")
    daemon.add_peers(hashes, [_peer(t) for t in items])
    return ok()


async def queue_unsupported(request: Request) -> Response:
    """qBittorrent's answer to queue moves while queueing is disabled."""
    return PlainTextResponse("Torrent queueing must be enabled", status_code=409)


_GET_POST: Final = ["GET", "POST"]
_P: Final = "/api/v2/torrents/"

routes: Final = [
    Route(_P + "info", info, methods=_GET_POST),
    Route(_P + "properties", properties, methods=_GET_POST),
    Route(_P + "files", files, methods=_GET_POST),
    Route(_P + "trackers", trackers, methods=_GET_POST),
    Route(_P + "pieceStates", piece_states, methods=_GET_POST),
    Route(_P + "pieceHashes", piece_hashes, methods=_GET_POST),
    Route(_P + "add", add, methods=["POST"]),
    Route(_P + "delete", delete, methods=["POST"]),
    Route(_P + "pause", pause, methods=["POST"]),
    Route(_P + "stop", pause, methods=["POST"]),
    Route(_P + "resume", resume, methods=["POST"]),
    Route(_P + "start", resume, methods=["POST"]),
    Route(_P + "recheck", recheck, methods=["POST"]),
    Route(_P + "setCategory", set_category, methods=["POST"]),
    Route(_P + "categories", categories, methods=_GET_POST),
    Route(_P + "createCategory", create_category, methods=["POST"]),
    Route(_P + "editCategory", edit_category, methods=["POST"]),
    Route(_P + "removeCategories", remove_categories, methods=["POST"]),
    Route(_P + "addTags", add_tags, methods=["POST"]),
    Route(_P + "removeTags", remove_tags, methods=["POST"]),
    Route(_P + "tags", tags, methods=_GET_POST),
    Route(_P + "createTags", create_tags, methods=["POST"]),
    Route(_P + "deleteTags", delete_tags, methods=["POST"]),
    Route(_P + "setShareLimits", set_share_limits, methods=["POST"]),
    Route(_P + "setForceStart", set_force_start, methods=["POST"]),
    Route(_P + "toggleSequentialDownload", set_sequential, methods=["POST"]),
    Route(_P + "filePrio", file_prio, methods=["POST"]),
    Route(_P + "addPeers", add_peers, methods=["POST"]),
    Route(_P + "setDownloadLimit", _limit_setter("dl_limit"), methods=["POST"]),
    Route(_P + "setUploadLimit", _limit_setter("up_limit"), methods=["POST"]),
    Route(_P + "downloadLimit", _limit_getter("dl_limit"), methods=_GET_POST),
    Route(_P + "uploadLimit", _limit_getter("up_limit"), methods=_GET_POST),
    *(
        Route(_P + name, queue_unsupported, methods=["POST"])
        for name in ("topPrio", "bottomPrio", "increasePrio", "decreasePrio")
    ),
]
