"""Request helpers shared by the API routers: parameters, typed values, plain answers.

qBittorrent reads parameters from the query string (GET) and from the form body
(POST, urlencoded or multipart) alike, so `params` merges both. Every parse failure
becomes an `ApiError` 400 with one line naming the parameter, never a traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

# Starlette's form parser needs python-multipart; importing it here makes a missing
# install fail when the daemon starts, not at the first upload.
import python_multipart  # noqa: F401
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..errors import ShoalError
from .state import ApiError

if TYPE_CHECKING:
    from starlette.requests import Request

    from .state import Daemon

__all__ = [
    "MAX_BODY",
    "MAX_FORM_FIELDS",
    "MAX_TORRENT_FILE",
    "BodyTooLarge",
    "Params",
    "daemon_of",
    "json",
    "ok",
    "params",
    "text",
]

#: Largest .torrent accepted in a multipart upload (qBittorrent: 100 MiB; ours is smaller,
#: matching the metainfo parser's own limits).
MAX_TORRENT_FILE: Final = 10 * 1024 * 1024
#: Largest request body accepted (a multipart .torrent upload plus its fields); the
#: server's guard enforces it before parsing, so a form part never needs its own cap.
MAX_BODY: Final = 16 * 1024 * 1024
MAX_FORM_FIELDS: Final = 200


class BodyTooLarge(ShoalError):
    """Raised by the guard's ``receive`` once a body passes `MAX_BODY` (becomes 413)."""


class Params:
    """Merged query + form parameters with typed getters that raise `ApiError` 400."""

    def __init__(self, values: dict[str, str], files: list[tuple[str, bytes]]) -> None:
        self.values = values
        self.files = files  # (field name, content) of each uploaded file part

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.values.get(name, default)

    def require(self, name: str) -> str:
        value = self.values.get(name)
        if value is None:
            raise ApiError(400, f"missing parameter '{name}'")
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if value.lower() in ("true", "1"):
            return True
        if value.lower() in ("false", "0"):
            return False
        raise ApiError(400, f"parameter '{name}' must be true or false")

    def integer(self, name: str, default: int = 0) -> int:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise ApiError(400, f"parameter '{name}' must be an integer") from None

    def number(self, name: str, default: float = 0.0) -> float:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        try:
            result = float(value)
        except ValueError:
            raise ApiError(400, f"parameter '{name}' must be a number") from None
        if result != result or result in (float("inf"), float("-inf")):
            raise ApiError(400, f"parameter '{name}' must be a finite number")
        return result


async def params(request: Request) -> Params:
    """Query string and form fields (form wins), plus the parsed form for file parts."""
    values = dict(request.query_params)
    files: list[tuple[str, bytes]] = []
    if request.method == "POST":
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            try:
                form = await request.form(
                    max_files=MAX_FORM_FIELDS,
                    max_fields=MAX_FORM_FIELDS,
                    max_part_size=MAX_BODY,
                )
            except ApiError:
                raise
            except BodyTooLarge:
                raise ApiError(413, f"Payload Too Large: the limit is {MAX_BODY} bytes") from None
            except Exception as exc:  # multipart's and starlette's own parse errors
                raise ApiError(400, f"malformed form body: {exc}") from None
            try:
                for key, value in form.multi_items():
                    if isinstance(value, str):
                        values[key] = value
                    else:  # bounded by MAX_BODY already; read now so the temp file closes
                        files.append((key, await value.read()))
            finally:
                await form.close()
    return Params(values, files)


def daemon_of(request: Request) -> Daemon:
    daemon: Daemon = request.app.state.daemon
    return daemon


def ok() -> Response:
    return PlainTextResponse("Ok.")


def text(value: str) -> Response:
    return PlainTextResponse(value)


def json(value: object) -> Response:
    return JSONResponse(value)
