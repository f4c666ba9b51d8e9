"""Rate limits set through the API hold on real loopback transfers from libtorrent
seeders: a per-torrent limit (``torrents/setDownloadLimit``) and the client-wide one
(``transfer/setDownloadLimit``), and the global limit survives a restart. The slow
torrent also shows ``pieceStates`` 1 (downloading).

Bytes are compared between two torrents at one moment, not speeds against the clock,
so the machine's load does not decide the outcome (as in
tests/integration/test_client_privacy.py).
"""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING

import pytest
import trio

import shoal
from shoal.magnet import Magnet, format_magnet
from shoal.metainfo import parse_metainfo
from shoal.net.bandwidth import torrent_channels
from tests.integration.peers import require_libtorrent
from tests.lt_helpers import loopback_settings, lt_torrent_session, single_file_info
from tests.net.lt_utp import wait_seeding

from .helpers import web_daemon

if TYPE_CHECKING:
    from pathlib import Path

    from .helpers import Web

pytestmark = pytest.mark.integration
lt = require_libtorrent()
SIZE = 1 << 20
SEED_IP = "127.0.0.5"
KIB = 1024
MAGNET = "magnet:?xt=urn:btih:" + "ef" * 20


def _config(state: Path) -> shoal.ClientConfig:
    return shoal.ClientConfig(bind_host="127.0.0.1", port=0, dht=False, state_dir=state)


async def _payload(web: Web) -> dict[str, int]:
    rows = (await web.get("torrents/info")).json()
    return {row["hash"]: row["downloaded_session"] for row in rows}


async def _piece_states(web: Web, info_hash: str) -> list[int]:
    states: list[int] = (await web.get("torrents/pieceStates", params={"hash": info_hash})).json()
    return states


async def test_per_torrent_and_global_download_limits_hold(tmp_path: Path) -> None:
    """Global 256 KiB/s, torrent A limited to 64 KiB/s, B only by the global limit:
    when B is half-way, A has about a third of B's bytes. Without the global limit B
    would finish at loopback speed with A barely started; without A's own limit the
    two would share the global limit equally."""
    infos = []
    for name in ("a", "b"):
        data = random.Random(name).randbytes(SIZE)
        (tmp_path / name).mkdir()
        (tmp_path / name / "f.bin").write_bytes(data)
        infos.append(single_file_info(data, 64 * KIB))
    hashes = [parse_metainfo(b"d4:info" + info + b"e").info_hash for info in infos]
    a, b = (h.hex() for h in hashes)
    settings = loopback_settings(SEED_IP, utp=False)
    with (
        lt_torrent_session(lt, infos[0], tmp_path / "a", settings) as (sa, ha),
        lt_torrent_session(lt, infos[1], tmp_path / "b", settings) as (sb, hb),
    ):
        async with web_daemon(tmp_path, client_config=_config(tmp_path / "state")) as web:
            assert (await web.post("transfer/setDownloadLimit", data={"limit": 256 * KIB})).ok
            assert (await web.get("transfer/downloadLimit")).text == str(256 * KIB)
            with trio.fail_after(90):
                await wait_seeding(ha)
                await wait_seeding(hb)
                for info_hash, session in zip(hashes, (sa, sb), strict=True):
                    peer = (SEED_IP, session.listen_port())
                    uri = format_magnet(Magnet(info_hash, peers=(peer,)))
                    assert (await web.post("torrents/add", data={"urls": uri})).text == "Ok."
                    if info_hash == hashes[0]:  # before its metadata is even fetched
                        limit = {"hashes": a, "limit": 64 * KIB}
                        assert (await web.post("torrents/setDownloadLimit", data=limit)).ok
                got = {a: 0, b: 0}
                while got[b] < SIZE // 2:
                    await trio.sleep(0.05)
                    got = await _payload(web)
                # A, held at 64 KiB/s, has pieces in flight: pieceStates says 1 for them.
                while 1 not in (states := await _piece_states(web, a)):  # noqa: ASYNC110 - polls HTTP
                    await trio.sleep(0.05)
            assert set(states) <= {0, 1, 2}
            state = (await web.get("transfer/info")).json()
            assert state["dl_rate_limit"] == 256 * KIB
    print("bytes when B is half-way", got)
    assert got[b] < SIZE  # the global limit holds B back
    assert got[a] == pytest.approx(got[b] / 3, rel=0.35)


async def test_global_and_torrent_limits_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with web_daemon(tmp_path, client_config=_config(state)) as web:
        assert (await web.get("transfer/uploadLimit")).text == "0"
        prefs = json.dumps({"dl_limit": 300_000, "up_limit": 100_000})
        assert (await web.post("app/setPreferences", data={"json": prefs})).ok
        assert web.running.daemon.client.limits() == (300_000, 100_000)
        bad = await web.post("app/setPreferences", data={"json": '{"dl_limit": "x"}'})
        assert bad.status_code == 400
        assert (await web.post("transfer/setUploadLimit", data={"limit": 0})).ok
        assert web.running.daemon.client.limits() == (300_000, None)
        # A torrent added with its own limits keeps them across the restart too.
        limits = {"urls": MAGNET, "dlLimit": "50000", "upLimit": "20000"}
        assert (await web.post("torrents/add", data=limits)).text == "Ok."
    async with web_daemon(tmp_path, client_config=_config(state)) as web:
        assert web.running.daemon.client.limits() == (300_000, None)
        (torrent,) = web.running.daemon.client.torrents()
        bandwidth = web.running.daemon.client.bandwidth
        assert bandwidth is not None
        down, up = torrent_channels(torrent.info_hash)
        assert (bandwidth.limiter.rate(down), bandwidth.limiter.rate(up)) == (50_000, 20_000)
        got = (await web.get("app/preferences")).json()
        assert (got["dl_limit"], got["up_limit"]) == (300_000, 0)
        assert (await web.get("transfer/downloadLimit")).text == "300000"


async def test_a_magnet_added_paused_downloads_once_resumed(tmp_path: Path) -> None:
    """Pausing closed the magnet's peer (or refused its dial); resuming must dial it
    again at once, not after the pool's 30 s back-off. The deadline sits well below
    that back-off: the download itself takes a fraction of a second."""
    data = random.Random("p").randbytes(SIZE)
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "f.bin").write_bytes(data)
    info = single_file_info(data, 64 * KIB)
    info_hash = parse_metainfo(b"d4:info" + info + b"e").info_hash
    settings = loopback_settings(SEED_IP, utp=False)
    with lt_torrent_session(lt, info, tmp_path / "p", settings) as (session, handle):
        async with web_daemon(tmp_path, client_config=_config(tmp_path / "state")) as web:
            with trio.fail_after(60):
                await wait_seeding(handle)
            uri = format_magnet(Magnet(info_hash, peers=((SEED_IP, session.listen_port()),)))
            added = await web.post("torrents/add", data={"urls": uri, "paused": "true"})
            assert added.text == "Ok."
            await trio.sleep(0.5)  # the dial started before the pause has ended by now
            assert (await web.post("torrents/resume", data={"hashes": "all"})).ok
            with trio.fail_after(20):
                while (await _payload(web))[info_hash.hex()] < SIZE:  # noqa: ASYNC110 - HTTP
                    await trio.sleep(0.05)
