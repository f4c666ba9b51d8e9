"""``torrents/add`` with http(s) URLs: the daemon fetches the .torrent (size-capped,
http/https only, redirects included) from a loopback HTTP server the test runs;
magnet links in the same ``urls`` keep working; a bad URL adds nothing."""

from __future__ import annotations

import random
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import shoal
from shoal.create import create_torrent
from shoal.daemon import fetch
from shoal.daemon.fetch import MAX_TORRENT_FETCH
from shoal.metainfo import parse_metainfo

from .helpers import web_daemon

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import pytest

MAGNET = "magnet:?xt=urn:btih:" + "cd" * 20


@contextmanager
def serve_http(
    routes: dict[str, tuple[int, dict[str, str], bytes]], requested: list[str] | None = None
) -> Iterator[str]:
    """A threaded HTTP server on 127.0.0.1 answering `routes` (path → status, headers,
    body), noting each path in `requested`; yields its base URL and is shut down on the
    way out."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if requested is not None:
                requested.append(self.path)
            if self.path == "/slow":
                time.sleep(3)  # bounded: longer than the test's fetch deadline
            status, headers, body = routes.get(self.path, (404, {}, b"not here"))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True  # a handler still sleeping never holds up the exit
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_http_urls_are_fetched_and_added(tmp_path: Path) -> None:
    data = tmp_path / "content"
    data.mkdir()
    (data / "x.bin").write_bytes(random.Random(8).randbytes(40_000))
    raw = create_torrent(data, piece_length=16384)
    h = parse_metainfo(raw).info_hash.hex()
    secret = tmp_path / "secret.torrent"
    secret.write_bytes(raw)  # a file: URL must never be read, even by a redirect
    routes = {
        "/good.torrent": (200, {"Content-Type": "application/x-bittorrent"}, raw),
        "/moved": (302, {"Location": "/good.torrent"}, b""),
        "/to-file": (302, {"Location": secret.as_uri()}, b""),
        "/big.torrent": (200, {}, b"d" + b"0" * MAX_TORRENT_FETCH),
        "/garbage.torrent": (200, {}, b"<html>not a torrent</html>"),
    }
    async with web_daemon(tmp_path) as web:
        with serve_http(routes) as base:
            for path in ("/to-file", "/big.torrent", "/garbage.torrent", "/missing"):
                answer = await web.post("torrents/add", data={"urls": base + path})
                assert (answer.status_code, answer.text) == (200, "Fails."), path
            file_url = await web.post("torrents/add", data={"urls": secret.as_uri()})
            assert file_url.text == "Fails."
            assert (await web.get("torrents/info")).json() == []

            urls = f"{base}/moved\n{MAGNET}\n"
            answer = await web.post("torrents/add", data={"urls": urls, "category": "tv"})
            assert answer.text == "Ok."
            rows = {r["hash"]: r for r in (await web.get("torrents/info")).json()}
            assert set(rows) == {h, "cd" * 20}
            assert rows[h]["category"] == "tv"
            assert rows[h]["total_size"] == 40_000  # the metadata came with the fetch
            (stored,) = [r for r in await web.running.daemon.store.torrents() if r.hash == h]
            assert (stored.is_magnet, stored.source) == (False, raw)

            too_many = "\n".join(f"{base}/good.torrent?{i}" for i in range(17))
            assert (await web.post("torrents/add", data={"urls": too_many})).status_code == 400


async def test_a_slow_url_is_given_up_within_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server would send a valid .torrent, but only after the deadline."""
    monkeypatch.setattr(fetch, "FETCH_SECONDS", 0.5)
    data = tmp_path / "content"
    data.mkdir()
    (data / "x.bin").write_bytes(b"x" * 1000)
    raw = create_torrent(data, piece_length=16384)
    async with web_daemon(tmp_path) as web:
        with serve_http({"/slow": (200, {}, raw)}) as base:
            answer = await web.post("torrents/add", data={"urls": base + "/slow"})
            assert (answer.status_code, answer.text) == (200, "Fails.")


async def test_no_direct_fetch_in_anonymous_mode(tmp_path: Path) -> None:
    """With --proxy or anonymous mode a direct HTTP request would show our address:
    the URL is not fetched at all (the server sees no request)."""
    data = tmp_path / "content"
    data.mkdir()
    (data / "x.bin").write_bytes(b"y" * 1000)
    raw = create_torrent(data, piece_length=16384)
    config = shoal.ClientConfig(
        bind_host="127.0.0.1", port=0, dht=False, anonymous=True, state_dir=tmp_path / "state"
    )
    requested: list[str] = []
    async with web_daemon(tmp_path, client_config=config) as web:
        with serve_http({"/good.torrent": (200, {}, raw)}, requested) as base:
            answer = await web.post("torrents/add", data={"urls": base + "/good.torrent"})
            assert (answer.status_code, answer.text) == (200, "Fails.")
    assert requested == []
