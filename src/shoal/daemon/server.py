"""The HTTP side of ``shoal daemon``: the Starlette app, its guard, and Hypercorn on Trio.

Theory of operation
-------------------
`open_daemon` runs everything in one Trio run: the `Client`, the `Daemon` model (its
database restored first), a share-limit loop, and Hypercorn's Trio worker serving the
Starlette app. API handlers are ordinary tasks of that run, so they call the client
directly; no thread, queue or lock stands between HTTP and the engine.

Every request passes `Guard` (a plain ASGI middleware) before any routing:

1. ``Host`` must be an IP literal, ``localhost`` or a configured name (DNS rebinding);
2. a declared body larger than `MAX_BODY` is refused with 413 before a byte of it is
   read, and a chunked body is cut off (413) as soon as it passes the limit;
3. a banned address gets 403 on every API path;
4. a state-changing request whose ``Origin``/``Referer`` names another host gets 401
   (CSRF), as qBittorrent answers;
5. ``/api/v2/*`` (but ``auth/login``) needs a live ``SID`` cookie, or the localhost
   bypass; otherwise 403 ``Forbidden``, which is what clients expect before they log
   in. ``/metrics`` also takes HTTP Basic credentials, which Prometheus can send.

The web page and its static files need no session: the page logs in through the API.
"""

from __future__ import annotations

import base64
import importlib.resources
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, final

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from . import api_app, api_torrents, metrics
from .api_common import MAX_BODY, BodyTooLarge, daemon_of, json, params
from .auth import Authenticator, host_allowed, same_origin, verify_password
from .state import ApiError, Daemon, DaemonConfig
from .sync import SyncTracker

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping

    from starlette.requests import Request

    from ..client import Client
    from .db import Store

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["MAX_BODY", "Guard", "RunningDaemon", "build_app", "serve_web"]

log = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL: Final = 5.0
#: Part of the 2 s shutdown for the last statistics save (the client's resume saves follow).
STATISTICS_BUDGET: Final = 0.3
_STATIC: Final = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


async def _plain(send: Send, status: int, body: str) -> None:
    data = body.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(data)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


@final
class Guard:
    """Host, size, ban, CSRF and session checks in front of every route (see module doc)."""

    def __init__(
        self, app: ASGIApp, auth: Authenticator, names: frozenset[str], max_body: int = MAX_BODY
    ) -> None:
        self.app = app
        self.starlette: Any = None  # set by `build_app`, for tests and statistics
        self.auth = auth
        self.names = names
        self.max_body = max_body
        self._basic_ok: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await _plain(send, *refusal)
            return
        await self._bounded(scope, receive, send)

    def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        headers = Headers(scope=scope)
        host = headers.get("host")
        if not host_allowed(host, self.names):
            return 401, "Unauthorized: the Host header is not an address of this daemon"
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return 400, "Bad Request: invalid Content-Length"
            if int(declared) > self.max_body:
                return 413, f"Payload Too Large: the limit is {self.max_body} bytes"
        path: str = scope["path"]
        client = scope.get("client")
        ip = client[0] if client else ""
        now = trio.current_time()
        if path.startswith("/api/") and self.auth.banned(ip, now):
            return 403, api_app.BANNED
        if scope["method"] not in _SAFE_METHODS and not same_origin(
            host, headers.get("origin"), headers.get("referer")
        ):
            return 401, "Unauthorized: cross-site request refused (Origin/Referer)"
        needs_session = path.startswith("/api/") and path != "/api/v2/auth/login"
        if path == "/metrics":
            needs_session = not self._basic(headers.get("authorization"))
        if needs_session:
            sid = _cookie(headers.get("cookie"), "SID")
            if not self.auth.authorized(sid, ip, now):
                return 403, "Forbidden"
        return None

    def _basic(self, header: str | None) -> bool:
        """HTTP Basic with the web UI credentials (the last good header is remembered,
        so a scrape every few seconds does not cost a PBKDF2 run each)."""
        if not header or not header.startswith("Basic "):
            return False
        if header == self._basic_ok:
            return True
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except ValueError:
            return False
        ok = user == self.auth.username and verify_password(password, self.auth.password_hash)
        if ok:
            self._basic_ok = header
        return ok

    async def _bounded(self, scope: Scope, receive: Receive, send: Send) -> None:
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _plain(send, 413, f"Payload Too Large: the limit is {self.max_body} bytes")


def _cookie(header: str | None, name: str) -> str | None:
    if not header:
        return None
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


async def maindata(request: Request) -> Response:
    p = await params(request)
    tracker: SyncTracker = request.app.state.sync
    return json(tracker.answer(p.integer("rid"), daemon_of(request).maindata()))


def _static(name: str, media_type: str) -> Callable[[Request], Awaitable[Response]]:
    body = importlib.resources.files(__package__).joinpath("static", name).read_bytes()

    async def handler(request: Request) -> Response:
        headers = {"Cache-Control": "no-cache", "X-Frame-Options": "DENY"}
        return Response(body, media_type=media_type, headers=headers)

    return handler


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return PlainTextResponse(exc.message, status_code=exc.status)


def build_app(
    daemon: Daemon,
    auth: Authenticator,
    *,
    web_address: tuple[str, int],
    names: frozenset[str] = frozenset(),
) -> Guard:
    """The whole ASGI application (the guard around the Starlette router)."""
    routes = [
        *api_app.routes,
        *api_torrents.routes,
        Route("/api/v2/sync/maindata", maindata, methods=["GET", "POST"]),
        *metrics.routes,
        *(Route(path, _static(*spec), methods=["GET"]) for path, spec in _STATIC.items()),
    ]
    app = Starlette(routes=routes, exception_handlers={ApiError: _api_error})
    app.state.daemon = daemon
    app.state.auth = auth
    app.state.sync = SyncTracker()
    app.state.registry = metrics.make_registry(daemon, auth)
    app.state.web_address = web_address
    guard = Guard(app, auth, names)
    guard.starlette = app
    return guard


async def serve_web(
    app: Guard,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` with Hypercorn's Trio worker; reports the bound (host, port)."""
    config = HypercornConfig()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.graceful_timeout = 0.5
    config.errorlog = logging.getLogger("shoal.daemon.http")
    config.accesslog = None

    async def started(
        *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        await serve(app, config, task_status=task_status)  # type: ignore[arg-type]

    def bound_port(binds: list[str]) -> int:
        return int(binds[0].rsplit(":", 1)[1])

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(started)
        task_status.started((host, bound_port(binds)))


@final
@dataclass
class RunningDaemon:
    """What `open_daemon` yields: the model and where the web page is."""

    daemon: Daemon
    auth: Authenticator
    web_address: tuple[str, int]
    app: Guard

    def sync_snapshots(self) -> int:
        """How many ``sync/maindata`` snapshots are held (bounded by `sync.KEEP`)."""
        tracker: SyncTracker = self.app.starlette.state.sync
        return tracker.statistics()

    @property
    def url(self) -> str:
        host, port = self.web_address
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"


async def _housekeeping_loop(daemon: Daemon) -> None:
    """Every few seconds: save all-time statistics, pause seeds past their limits."""
    while True:
        await trio.sleep(HOUSEKEEPING_INTERVAL)
        await daemon.save_statistics()
        await daemon.enforce_share_limits()


@asynccontextmanager
async def open_daemon(
    client: Client,
    store: Store,
    config: DaemonConfig,
    auth: Authenticator,
    *,
    web: tuple[str, int],
    names: frozenset[str] = frozenset(),
) -> AsyncIterator[RunningDaemon]:
    """Restore the torrents in `store`, then serve the web API until the block ends."""
    async with trio.open_nursery() as nursery:
        daemon = Daemon(client, store, config, nursery)
        await daemon.restore()
        nursery.start_soon(_housekeeping_loop, daemon)
        holder: dict[str, Guard] = {}

        async def run_web(*, task_status: trio.TaskStatus[tuple[str, int]]) -> None:
            await serve_web(holder["app"], web[0], web[1], task_status=task_status)

        # The app needs the bound port (app/preferences reports it): build, then bind.
        holder["app"] = build_app(daemon, auth, web_address=web, names=names)
        address: tuple[str, int] = await nursery.start(run_web)
        holder["app"].starlette.state.web_address = address
        try:
            yield RunningDaemon(daemon, auth, address, holder["app"])
        finally:
            nursery.cancel_scope.cancel()
            with trio.CancelScope(shield=True), trio.move_on_after(STATISTICS_BUDGET):
                await daemon.save_statistics()
