"""``auth/*``, ``app/*`` and ``transfer/info``: login, versions, preferences, totals.

We answer as qBittorrent 4.6 with Web API 2.9.3: clients pick endpoint names from
these versions (``qbittorrent-api`` calls ``torrents/pause`` below 2.11 and
``torrents/stop`` from it; we serve both names anyway).
"""

from __future__ import annotations

import json as jsonlib
import platform
from typing import TYPE_CHECKING, Any, Final

import trio
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from .._version import __version__
from .api_common import daemon_of, json, ok, params, text
from .auth import hash_password
from .state import ApiError

if TYPE_CHECKING:
    from starlette.requests import Request

    from .auth import Authenticator

__all__ = ["APP_VERSION", "WEBAPI_VERSION", "routes"]

APP_VERSION: Final = "v4.6.7"
WEBAPI_VERSION: Final = "2.9.3"
BANNED: Final = "Your IP address has been banned after too many failed authentication attempts."

#: Preferences we store and apply, with their defaults (the rest are read-only values).
_SETTABLE: Final[dict[str, Any]] = {
    "max_ratio_enabled": False,
    "max_ratio": -1,
    "max_seeding_time_enabled": False,
    "max_seeding_time": -1,
    "max_ratio_act": 0,
}


def auth_of(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.auth
    return auth


def client_ip(request: Request) -> str:
    return request.client.host if request.client is not None else ""


async def login(request: Request) -> Response:
    auth = auth_of(request)
    ip = client_ip(request)
    now = trio.current_time()
    if auth.banned(ip, now):
        return PlainTextResponse(BANNED, status_code=403)
    p = await params(request)
    sid = auth.login(ip, p.get("username") or "", p.get("password") or "", now)
    if sid is None:
        return PlainTextResponse("Fails.")
    response = PlainTextResponse("Ok.")
    response.set_cookie("SID", sid, httponly=True, samesite="strict", path="/")
    return response


async def logout(request: Request) -> Response:
    auth_of(request).logout(request.cookies.get("SID"))
    response = ok()
    response.delete_cookie("SID", path="/")
    return response


async def version(request: Request) -> Response:
    return text(APP_VERSION)


async def webapi_version(request: Request) -> Response:
    return text(WEBAPI_VERSION)


async def build_info(request: Request) -> Response:
    return json(
        {
            "qt": "",
            "libtorrent": f"shoal {__version__}",
            "boost": "",
            "openssl": "",
            "zlib": "",
            "bitness": 64 if platform.architecture()[0] == "64bit" else 32,
            "platform": platform.system().lower(),
        }
    )


def _preferences(request: Request) -> dict[str, Any]:
    daemon = daemon_of(request)
    client = daemon.client
    stored = {k: daemon.prefs.get(k, v) for k, v in _SETTABLE.items()}
    host, port = request.app.state.web_address
    return {
        **stored,
        "save_path": str(daemon.config.download_dir),
        "temp_path_enabled": False,
        "temp_path": "",
        "auto_tmm_enabled": False,
        "listen_port": client.listen_address[1],
        "current_network_interface": "",
        "current_interface_address": client.config.bind_host,
        "dht": client.dht is not None,
        "pex": True,
        "lsd": False,
        "upnp": False,
        "encryption": {"prefer": 0, "require": 1, "disable": 2}[client.config.encryption.value],
        "queueing_enabled": False,
        "max_active_downloads": -1,
        "max_active_torrents": -1,
        "max_active_uploads": -1,
        "max_connec_per_torrent": client.config.max_peers_per_torrent,
        "dl_limit": daemon.global_limits()[0],
        "up_limit": daemon.global_limits()[1],
        "web_ui_address": host,
        "web_ui_port": port,
        "web_ui_username": auth_of(request).username,
        "web_ui_max_auth_fail_count": 5,
        "web_ui_ban_duration": 3600,
        "web_ui_session_timeout": 3600,
        "web_ui_csrf_protection_enabled": True,
        "web_ui_host_header_validation_enabled": True,
        "bypass_local_auth": auth_of(request).bypass_localhost,
        "create_subfolder_enabled": True,
        "start_paused_enabled": False,
        "torrent_content_layout": "Original",
    }


async def preferences(request: Request) -> Response:
    return json(_preferences(request))


async def set_preferences(request: Request) -> Response:
    p = await params(request)
    try:
        values = jsonlib.loads(p.require("json"))
    except ValueError:
        raise ApiError(400, "parameter 'json' is not valid JSON") from None
    if not isinstance(values, dict):
        raise ApiError(400, "parameter 'json' must be a JSON object")
    daemon = daemon_of(request)
    auth = auth_of(request)
    stored: dict[str, Any] = {}
    limits: dict[str, int] = {}
    for key, value in values.items():
        if key in ("dl_limit", "up_limit"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ApiError(400, f"preference '{key}' must be an integer (bytes/s)")
            limits[key] = value
        elif key in _SETTABLE:
            if not isinstance(value, (bool, int, float)):
                raise ApiError(400, f"preference '{key}' must be a number or boolean")
            stored[key] = value
        elif key == "web_ui_username" and isinstance(value, str) and value:
            auth.username = stored["web_ui_username"] = value
        elif key == "web_ui_password" and isinstance(value, str) and value:
            digest = await trio.to_thread.run_sync(hash_password, value)
            auth.password_hash = stored["web_ui_password_hash"] = digest
        # qBittorrent ignores keys it does not know; so do we (and read-only ones).
    daemon.prefs.update(stored)
    await daemon.store.put_prefs(stored)
    if limits:
        await daemon.set_global_limits(**limits)
    return ok()


async def default_save_path(request: Request) -> Response:
    return text(str(daemon_of(request).config.download_dir))


async def transfer_info(request: Request) -> Response:
    state = daemon_of(request).server_state()
    keys = (
        "dl_info_speed",
        "dl_info_data",
        "up_info_speed",
        "up_info_data",
        "dl_rate_limit",
        "up_rate_limit",
        "dht_nodes",
        "connection_status",
    )
    return json({k: state[k] for k in keys})


def _global_limit_setter(key: str):  # type: ignore[no-untyped-def]
    """``transfer/setDownloadLimit``/``setUploadLimit``: ``limit`` in B/s, 0 = none."""

    async def handler(request: Request) -> Response:
        p = await params(request)
        await daemon_of(request).set_global_limits(**{key: p.integer("limit")})
        return ok()

    return handler


def _global_limit_getter(which: int):  # type: ignore[no-untyped-def]
    """``transfer/downloadLimit``/``uploadLimit``: B/s, 0 when there is none."""

    async def handler(request: Request) -> Response:
        return text(str(daemon_of(request).global_limits()[which]))

    return handler


_GET_POST: Final = ["GET", "POST"]

routes: Final = [
    Route("/api/v2/auth/login", login, methods=["POST"]),
    Route("/api/v2/auth/logout", logout, methods=["POST"]),
    Route("/api/v2/app/version", version, methods=_GET_POST),
    Route("/api/v2/app/webapiVersion", webapi_version, methods=_GET_POST),
    Route("/api/v2/app/buildInfo", build_info, methods=_GET_POST),
    Route("/api/v2/app/preferences", preferences, methods=_GET_POST),
    Route("/api/v2/app/setPreferences", set_preferences, methods=["POST"]),
    Route("/api/v2/app/defaultSavePath", default_save_path, methods=_GET_POST),
    Route("/api/v2/transfer/info", transfer_info, methods=_GET_POST),
    Route("/api/v2/transfer/setDownloadLimit", _global_limit_setter("dl_limit"), methods=["POST"]),
    Route("/api/v2/transfer/setUploadLimit", _global_limit_setter("up_limit"), methods=["POST"]),
    Route("/api/v2/transfer/downloadLimit", _global_limit_getter(0), methods=_GET_POST),
    Route("/api/v2/transfer/uploadLimit", _global_limit_getter(1), methods=_GET_POST),
]
