"""Fetch a .torrent named by an http(s) URL in ``torrents/add`` (as qBittorrent does).

Why urllib in a worker thread: the standard library already speaks HTTP and TLS, the
request is one GET of at most `MAX_TORRENT_FILE` bytes, and no async HTTP client is
in the dependency set. The Trio side bounds it with a cancel scope (`FETCH_SECONDS`)
and abandons the thread on cancel; the socket's own timeout then ends the thread.

Only ``http`` and ``https`` are fetched, redirects included (urllib would also follow
one to ``ftp:``, and ``urlopen`` itself opens ``file:`` URLs): a URL must never read a
local file into a torrent the API then shows.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import trio

from .._version import __version__
from ..errors import ShoalError

if TYPE_CHECKING:
    from http.client import HTTPMessage
    from typing import IO

__all__ = ["FETCH_SECONDS", "MAX_TORRENT_FETCH", "FetchError", "fetch_torrent", "is_http_url"]

#: The whole fetch (connect, redirects, body) must finish within this many seconds.
FETCH_SECONDS: Final = 30.0
#: Largest .torrent fetched: the same cap as a multipart upload (api_common).
MAX_TORRENT_FETCH: Final = 10 * 1024 * 1024
#: urllib's default is 10; a .torrent link needs one or two.
MAX_REDIRECTS: Final = 5
_SCHEMES: Final = frozenset({"http", "https"})


class FetchError(ShoalError):
    """The URL could not be fetched (one line saying why)."""


def is_http_url(text: str) -> bool:
    return urlsplit(text).scheme.lower() in _SCHEMES


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if not is_http_url(newurl):
            raise urllib.error.URLError(f"redirect to a non-http URL: {newurl[:100]!r}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _get(url: str) -> bytes:
    """The blocking GET (in a worker thread); at most `MAX_TORRENT_FETCH` bytes."""
    opener = urllib.request.build_opener(_HttpOnlyRedirects())
    request = urllib.request.Request(url, headers={"User-Agent": f"shoal/{__version__}"})
    try:
        with opener.open(request, timeout=FETCH_SECONDS) as response:
            data: bytes = response.read(MAX_TORRENT_FETCH + 1)
    except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
        raise FetchError(f"cannot fetch {url[:200]!r}: {exc}") from None
    if len(data) > MAX_TORRENT_FETCH:
        raise FetchError(f"{url[:200]!r} is larger than {MAX_TORRENT_FETCH} bytes")
    return data


async def fetch_torrent(url: str) -> bytes:
    """The body of `url` (http or https), within `FETCH_SECONDS`.

    Raises:
        FetchError: another scheme, a network or HTTP error, too large, too slow.
    """
    if not is_http_url(url):
        raise FetchError(f"not an http(s) URL: {url[:200]!r}")
    with trio.move_on_after(FETCH_SECONDS):
        return await trio.to_thread.run_sync(_get, url, abandon_on_cancel=True)
    raise FetchError(f"{url[:200]!r} took longer than {FETCH_SECONDS:g} s")
