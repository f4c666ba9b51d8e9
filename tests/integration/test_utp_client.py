"""The client over uTP with a real, uTP-only libtorrent 2.1 on 127.0.0.1 (TCP off both ways).

``ClientConfig(transports=("utp",))``: the client dials only uTP and accepts uTP on
its port (the DHT is off here, so the UDP side of the port is free). The last test is
the command line: ``shoal get --transport utp`` finds the seed through a loopback DHT.
A passing test means every peer byte went over our uTP engine: libtorrent has no TCP
to fall back to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import trio

import shoal
from shoal.config import EncryptionMode
from shoal.metainfo import parse_metainfo
from tests.integration.peers import (
    DEADLINE,
    LT_LEECH_IP,
    LT_SEED_IP,
    SHOAL_IP,
    SHOAL_SEED_IP,
    dht_router,
    hostport,
    lt_leech,
    lt_seed,
    lt_session,
    make_content,
    shoal_process,
    wait_announced,
    wait_lt_seeding,
)
from tests.lt_helpers import lt_torrent_session
from tests.net.lt_utp import lt, utp_only_seed, utp_only_settings, wait_seeding

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

SIZE = 1 << 20


def config(**kw: Any) -> shoal.ClientConfig:
    base: dict[str, Any] = {"bind_host": "127.0.0.1", "port": 0, "dht": False}
    return shoal.ClientConfig(**(base | {"transports": ("utp",)} | kw))


@pytest.mark.parametrize("rc4", [False, True], ids=["plain", "rc4-required"])
async def test_shoal_downloads_from_a_utp_only_libtorrent_seed(tmp_path: Path, rc4: bool) -> None:
    seed_dir = tmp_path / "seed"
    seed_dir.mkdir()
    with utp_only_seed(seed_dir, SIZE, rc4=rc4) as (session, handle, info, data):
        metainfo = parse_metainfo(b"d4:info" + info + b"e")
        mode = EncryptionMode.REQUIRE if rc4 else EncryptionMode.DISABLE
        async with shoal.open_client(config(encryption=mode)) as client:
            with trio.fail_after(60):
                await wait_seeding(handle)
                torrent = await client.add(
                    metainfo,
                    save_to=tmp_path / "leech",
                    peers=[("127.0.0.1", session.listen_port())],
                    seed=False,
                )
                await torrent.wait_complete()
            assert client.utp is not None
            assert client.utp.statistics().datagrams_in > SIZE // 1500  # it came over uTP
        assert (tmp_path / "leech" / "f.bin").read_bytes() == data


async def test_utp_only_libtorrent_downloads_from_a_shoal_seed(tmp_path: Path) -> None:
    seed_dir = tmp_path / "seed"
    seed_dir.mkdir()
    with utp_only_seed(seed_dir, SIZE, rc4=False) as (_s, _h, info, data):
        metainfo = parse_metainfo(b"d4:info" + info + b"e")
    # The shoal client seeds from the files libtorrent's helper wrote; its session is gone.
    async with shoal.open_client(config(encryption=EncryptionMode.PREFER)) as client:
        seeding = await client.add(metainfo, save_to=seed_dir)
        with trio.fail_after(30):
            await seeding.wait_complete()
        assert client.utp is not None
        assert client.utp.local_address == client.listen_address  # uTP on the TCP port number
        leech_dir = tmp_path / "leech"
        leech_dir.mkdir()
        settings = utp_only_settings(rc4=False)
        with lt_torrent_session(lt, info, leech_dir, settings) as (_session, handle):
            handle.connect_peer(client.listen_address)
            with trio.fail_after(60):
                await wait_seeding(handle)
        assert (leech_dir / "f.bin").read_bytes() == data


@pytest.mark.parametrize("forced", [False, True], ids=["prefer", "rc4-forced"])
async def test_shoal_get_finds_a_utp_only_libtorrent_seed_through_the_dht(
    tmp_path: Path, forced: bool
) -> None:
    """The issue's journey: ``shoal get --transport utp`` of a magnet, peers from the DHT."""
    content = make_content(tmp_path / "seed", "payload", [300_000], v1_only=True)
    out = tmp_path / "out"
    async with dht_router() as router:
        with lt_session(LT_SEED_IP, router, forced_encryption=forced, utp_only=True) as ses:
            await wait_lt_seeding(lt_seed(ses, content))
            await wait_announced(router)
            args = [
                "get", content.magnet, "-o", str(out), "--bind", SHOAL_IP, "--port", "0",
                "--bootstrap", hostport(router), "--no-seed", "--timeout", str(DEADLINE - 10),
                "--transport", "utp", *(["--encryption", "require"] if forced else []),
            ]  # fmt: skip
            async with shoal_process(args, tmp_path / "get") as shoal:
                assert await shoal.wait() == 0, shoal.stderr
    content.assert_identical(out)
    peers = [p for p in shoal.events("peer") if p["host"] == LT_SEED_IP]
    assert peers, shoal.records
    if forced:
        assert all(p["encrypted"] for p in peers), peers


@pytest.mark.slow  # ~40 s: it waits for shoal's next DHT lookup to find the leecher
async def test_utp_only_libtorrent_leecher_gets_a_magnet_from_shoal_seed(tmp_path: Path) -> None:
    """``shoal seed --transport utp``; both meet through the DHT.

    With the DHT on, the UDP side of shoal's port is the DHT's (the shared socket is not
    there yet), so libtorrent's uTP dial to it goes nowhere: shoal dials the leecher it
    finds in its own lookups. This still proves the seeding direction over uTP.
    """
    content = make_content(tmp_path / "seed", "payload", [300_000], v1_only=True)
    torrent = content.write_torrent(tmp_path / "t.torrent")
    out = tmp_path / "out"
    async with dht_router() as router:
        args = [
            "seed", str(torrent), "--data", str(content.root), "--bind", SHOAL_SEED_IP,
            "--port", "0", "--bootstrap", hostport(router), "--transport", "utp",
        ]  # fmt: skip
        async with shoal_process(args, tmp_path / "seeder") as shoal:
            await shoal.wait_record("progress", lambda r: r["state"] == "seeding")
            await wait_announced(router)
            with lt_session(LT_LEECH_IP, router, utp_only=True) as ses:
                handle = lt_leech(ses, content.magnet, out)
                await wait_lt_seeding(handle)
                await shoal.wait_record("peer", lambda r: r["host"] == LT_LEECH_IP)
    content.assert_identical(out)
