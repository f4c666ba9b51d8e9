"""Abuse of the Web API: password guessing, cross-site requests, hostile save paths,
huge uploads, polling floods and malformed parameters. Each is refused with the right
status and one line, and changes nothing."""

from __future__ import annotations

import gc
import select
import socket
import tracemalloc
from typing import TYPE_CHECKING

import pytest
import trio

from shoal.daemon.sync import KEEP

from .helpers import PASSWORD, web_daemon

if TYPE_CHECKING:
    from pathlib import Path

HASH = "89abcdef0123456789abcdef0123456789abcdef"
MAGNET = f"magnet:?xt=urn:btih:{HASH}"


async def test_six_wrong_passwords_ban_the_address(tmp_path: Path) -> None:
    async with web_daemon(tmp_path, login=False) as web:
        wrong = {"username": "admin", "password": "guess"}
        for _ in range(5):
            answer = await web.post("auth/login", data=wrong)
            assert (answer.status_code, answer.text) == (200, "Fails.")
        # The sixth attempt is refused even with the right password, and so is the API.
        right = {"username": "admin", "password": PASSWORD}
        banned = await web.post("auth/login", data=right)
        assert banned.status_code == 403
        assert "banned" in banned.text
        assert (await web.get("app/version")).status_code == 403
        assert web.running.auth.bans == 1


async def test_cross_site_post_is_refused(tmp_path: Path) -> None:
    async with web_daemon(tmp_path) as web:
        for header in ("Origin", "Referer"):
            evil = {header: "http://evil.example/attack"}
            answer = await web.post("torrents/add", data={"urls": MAGNET}, headers=evil)
            assert answer.status_code == 401
            assert "cross-site" in answer.text
        # A DNS-rebinding page reaches us under its own host name: refused too.
        rebound = await web.get("torrents/info", headers={"Host": "evil.example:8080"})
        assert rebound.status_code == 401
        # Same-origin requests (what the web page sends) work.
        same = await web.post("torrents/add", data={"urls": MAGNET}, headers={"Origin": web.url})
        assert (same.status_code, same.text) == (200, "Ok.")
        assert [t["hash"] for t in (await web.get("torrents/info")).json()] == [HASH]


@pytest.mark.parametrize("where", ["../escape", "sub/../../escape", "/etc", "/tmp/elsewhere"])
async def test_savepath_outside_the_roots_is_refused(tmp_path: Path, where: str) -> None:
    async with web_daemon(tmp_path) as web:
        answer = await web.post("torrents/add", data={"urls": MAGNET, "savepath": where})
        assert answer.status_code == 400
        assert "\n" not in answer.text.strip()
        category = await web.post(
            "torrents/createCategory", data={"category": "c", "savePath": where}
        )
        assert category.status_code == 400
        assert (await web.get("torrents/info")).json() == []
        assert (await web.get("torrents/categories")).json() == {}
        # Inside the download directory is fine.
        inside = str(web.download_dir / "tv")
        ok = await web.post("torrents/add", data={"urls": MAGNET, "savepath": inside})
        assert ok.text == "Ok."


_PART = (
    b'--b\r\nContent-Disposition: form-data; name="torrents"; filename="big.torrent"\r\n'
    b"Content-Type: application/x-bittorrent\r\n\r\n"
)


def _raw_upload(port: int, headers: str, body_mib: int) -> tuple[bytes, int]:
    """Send `headers` and a multipart part head, then up to `body_mib` MiB of the part
    until the server answers; returns the response head and the MiB sent before it."""
    chunked = "chunked" in headers
    chunk = b"x" * (1024 * 1024)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        first = b"%x\r\n%s\r\n" % (len(_PART), _PART) if chunked else _PART
        sock.sendall(headers.encode() + first)
        sent = 0
        while sent < body_mib:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break  # the answer (or the close) came before the body was done
            sock.settimeout(2)  # a server that stopped reading has answered (or will)
            try:
                sock.sendall(b"100000\r\n" + chunk + b"\r\n" if chunked else chunk)
            except OSError:  # reset, broken pipe or no progress: refused
                break
            sent += 1
        sock.settimeout(30)
        response = b""
        while b"\r\n\r\n" not in response:
            data = sock.recv(65536)
            if not data:
                break
            response += data
        return response.split(b"\r\n\r\n")[0], sent


async def test_a_100_mb_upload_is_refused_early(tmp_path: Path) -> None:
    async with web_daemon(tmp_path) as web:
        port = web.running.web_address[1]
        sid = web.session.cookies["SID"]
        base = (
            "POST /api/v2/torrents/add HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Cookie: SID={sid}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        )
        declared = base + f"Content-Length: {100 * 1024 * 1024}\r\n\r\n"
        head, sent = await trio.to_thread.run_sync(_raw_upload, port, declared, 100)
        assert head.startswith(b"HTTP/1.1 413"), head
        assert sent < 20, f"{sent} MiB were read before the refusal"
        chunked = base + "Transfer-Encoding: chunked\r\n\r\n"
        head, sent = await trio.to_thread.run_sync(_raw_upload, port, chunked, 100)
        assert head.startswith(b"HTTP/1.1 413"), head
        assert sent < 40, f"{sent} MiB were read before the refusal"
        assert (await web.get("torrents/info")).json() == []


async def test_sync_maindata_flood_keeps_memory_flat(tmp_path: Path) -> None:
    async with web_daemon(tmp_path) as web:
        for i in range(20):
            magnet = f"magnet:?xt=urn:btih:{i:040x}"
            assert (await web.post("torrents/add", data={"urls": magnet})).text == "Ok."

        def flood(n: int) -> None:
            rid = 0
            for i in range(n):
                answer = web.session.get(
                    web.url + "/api/v2/sync/maindata", params={"rid": rid if i % 3 else 0}
                )
                assert answer.status_code == 200
                rid = answer.json()["rid"]

        tracemalloc.start()
        try:
            await trio.to_thread.run_sync(flood, 2 * KEEP)  # fill the snapshot LRU
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            await trio.to_thread.run_sync(flood, 3 * KEEP)
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        # 96 more polls (each answer ~20 torrents x 60 fields) left no trace: the
        # snapshots are bounded, nothing per request is kept.
        assert after - before < 512 * 1024, f"grew {after - before} bytes"
        assert web.running.sync_snapshots() <= KEEP


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("GET", "torrents/info", {"limit": "ten"}),
        ("GET", "torrents/info", {"filter": "sideways"}),
        ("POST", "torrents/setShareLimits", {"hashes": "all", "ratioLimit": "nan"}),
        ("POST", "torrents/setShareLimits", {"hashes": "all", "ratioLimit": "-7"}),
        ("POST", "torrents/filePrio", {"hash": HASH, "id": "x", "priority": "1"}),
        ("POST", "torrents/add", {}),
        ("POST", "torrents/add", {"urls": "magnet:?xt=urn:btih:nothex"}),
        ("POST", "torrents/delete", {}),
        ("POST", "app/setPreferences", {"json": "{not json"}),
        ("POST", "torrents/createCategory", {"category": "a//b"}),
        ("GET", "sync/maindata", {"rid": "abc"}),
    ],
)
async def test_bad_input_is_one_line_4xx_and_changes_nothing(
    tmp_path: Path, method: str, path: str, data: dict[str, str]
) -> None:
    async with web_daemon(tmp_path) as web:
        assert (await web.post("torrents/add", data={"urls": MAGNET})).text == "Ok."
        before = (await web.get("torrents/info")).json()
        kw = {"params": data} if method == "GET" else {"data": data}
        answer = await web.call(method, path, **kw)
        assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
        assert answer.text.strip()
        assert "\n" not in answer.text.strip()
        assert "Traceback" not in answer.text
        after = (await web.get("torrents/info")).json()
        for row in (*before, *after):
            row.pop("time_active")
        assert after == before
