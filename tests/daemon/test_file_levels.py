"""File priorities 6 and 7 reach the engine's piece picker: from a libtorrent seed,
under a download limit, the top-priority file completes while the normal one has
barely started. Also ``torrents/addPeers``, which the test uses to name the seed."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import pytest
import trio

from shoal.create import create_torrent
from shoal.metainfo import parse_metainfo
from tests.integration.peers import require_libtorrent
from tests.lt_helpers import loopback_settings, lt_torrent_session
from tests.net.lt_utp import wait_seeding

from .helpers import web_daemon

if TYPE_CHECKING:
    from pathlib import Path

    from .helpers import Web

pytestmark = pytest.mark.integration
lt = require_libtorrent()
SEED_IP = "127.0.0.6"
FILE = 512 * 1024


async def _files(web: Web, h: str) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = (await web.get("torrents/files", params={"hash": h})).json()
    return files


async def test_top_priority_file_is_fetched_first(tmp_path: Path) -> None:
    content = tmp_path / "seed" / "two"
    content.mkdir(parents=True)
    rng = random.Random(11)
    for name in ("a.bin", "b.bin"):
        (content / name).write_bytes(rng.randbytes(FILE))
    raw = create_torrent(content, piece_length=16 * 1024)
    h = parse_metainfo(raw).info_hash.hex()
    info = raw[raw.index(b"4:info") + 6 : -1]
    settings = loopback_settings(SEED_IP, utp=False)
    with lt_torrent_session(lt, info, tmp_path / "seed", settings) as (session, handle):
        async with web_daemon(tmp_path) as web:
            upload = {"torrents": ("two.torrent", raw, "application/x-bittorrent")}
            assert (await web.post("torrents/add", files=upload)).text == "Ok."
            limit = {"hashes": h, "limit": 256 * 1024}
            assert (await web.post("torrents/setDownloadLimit", data=limit)).ok
            prio = {"hash": h, "id": "1", "priority": "7"}
            assert (await web.post("torrents/filePrio", data=prio)).ok
            bad = await web.post("torrents/addPeers", data={"hashes": h, "peers": "x:1"})
            assert bad.status_code == 400
            with trio.fail_after(60):
                await wait_seeding(handle)
                peers = {"hashes": h, "peers": f"{SEED_IP}:{session.listen_port()}"}
                assert (await web.post("torrents/addPeers", data=peers)).ok
                files = await _files(web, h)
                while files[1]["progress"] < 1.0:
                    await trio.sleep(0.05)
                    files = await _files(web, h)
    print("progress when the top-priority file is done", [f["progress"] for f in files])
    assert [f["priority"] for f in files] == [1, 7]  # reported as set
    assert files[0]["progress"] < 0.5  # random order would have it about as far along


async def test_file_levels_are_applied_again_after_a_restart(tmp_path: Path) -> None:
    """The stored qBittorrent priorities (1, 6, 7) reach the picker of the restored
    torrent as levels 4, 6, 7 (read from the picker: no transfer is needed)."""
    content = tmp_path / "downloads" / "three"
    content.mkdir(parents=True)
    for i, name in enumerate(("a.bin", "b.bin", "c.bin")):
        (content / name).write_bytes(bytes([i]) * 32 * 1024)
    raw = create_torrent(content, piece_length=16 * 1024)
    h = parse_metainfo(raw).info_hash.hex()
    async with web_daemon(tmp_path) as web:
        upload = {"torrents": ("three.torrent", raw, "application/x-bittorrent")}
        assert (await web.post("torrents/add", files=upload)).text == "Ok."
        for file_id, priority in (("1", "6"), ("2", "7")):
            prio = {"hash": h, "id": file_id, "priority": priority}
            assert (await web.post("torrents/filePrio", data=prio)).ok
    async with web_daemon(tmp_path) as web:
        (torrent,) = web.running.daemon.client.torrents()
        with trio.fail_after(30):
            while torrent.engine.data is None:  # noqa: ASYNC110 - the data phase opens
                await trio.sleep(0.05)
        picker = torrent.engine.data.picker
        assert [picker.priority(i) for i in range(6)] == [4, 4, 6, 6, 7, 7]
        assert [f["priority"] for f in await _files(web, h)] == [1, 6, 7]
