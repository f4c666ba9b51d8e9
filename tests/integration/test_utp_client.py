"""The client over uTP with a real, uTP-only libtorrent 2.1 on 127.0.0.1 (TCP off both ways).

``ClientConfig(transports=("utp",))``: the client dials only uTP and accepts uTP on
its port (the DHT is off here, so the UDP side of the port is free). A passing test
means every peer byte went over our uTP engine: libtorrent has no TCP to fall back to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import trio

import shoal
from shoal.config import EncryptionMode
from shoal.metainfo import parse_metainfo
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
