"""uTP on the DHT's UDP socket (issue 13: one port for both), with a real uTP-only
libtorrent 2.1 on 127.0.0.1: the same transfers as ``test_utp_client.py`` but with the
client's DHT on, so every uTP datagram goes through `DHTService`'s demultiplexer."""

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
    # The DHT runs with no bootstrap nodes: only the shared socket matters here.
    base: dict[str, Any] = {"bind_host": "127.0.0.1", "port": 0, "dht": True}
    return shoal.ClientConfig(**(base | {"transports": ("utp",)} | kw))


def assert_shared(client: shoal.Client) -> None:
    assert client.utp is not None
    assert client.dht is not None
    # One UDP port: uTP's address is the DHT's, on the TCP port number.
    assert client.utp.local_address == client.dht.address == client.listen_address


async def test_download_over_utp_on_the_dht_socket(tmp_path: Path) -> None:
    seed_dir = tmp_path / "seed"
    seed_dir.mkdir()
    with utp_only_seed(seed_dir, SIZE, rc4=False) as (session, handle, info, data):
        metainfo = parse_metainfo(b"d4:info" + info + b"e")
        async with shoal.open_client(config(encryption=EncryptionMode.DISABLE)) as client:
            assert_shared(client)
            with trio.fail_after(60):
                await wait_seeding(handle)
                torrent = await client.add(
                    metainfo,
                    save_to=tmp_path / "leech",
                    peers=[("127.0.0.1", session.listen_port())],
                    seed=False,
                )
                await torrent.wait_complete()
            assert client.dht is not None
            stats = client.dht.service.statistics()
            assert stats.handler_in > SIZE // 1500  # the data came through the demux
            assert stats.handler_out > 0  # and our ACKs left from the DHT's socket
        assert (tmp_path / "leech" / "f.bin").read_bytes() == data


async def test_utp_only_libtorrent_leeches_through_the_dht_socket(tmp_path: Path) -> None:
    seed_dir = tmp_path / "seed"
    seed_dir.mkdir()
    with utp_only_seed(seed_dir, SIZE, rc4=False) as (_s, _h, info, data):
        metainfo = parse_metainfo(b"d4:info" + info + b"e")
    async with shoal.open_client(config(encryption=EncryptionMode.PREFER)) as client:
        assert_shared(client)
        seeding = await client.add(metainfo, save_to=seed_dir)
        with trio.fail_after(30):
            await seeding.wait_complete()
        leech_dir = tmp_path / "leech"
        leech_dir.mkdir()
        with lt_torrent_session(lt, info, leech_dir, utp_only_settings(rc4=False)) as (_, handle):
            handle.connect_peer(client.listen_address)
            with trio.fail_after(60):
                await wait_seeding(handle)
        assert client.dht is not None
        assert client.dht.service.statistics().handler_out > SIZE // 1500
        assert (leech_dir / "f.bin").read_bytes() == data
