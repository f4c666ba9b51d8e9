"""Connection policy: uTP first, TCP after the budget; both accepted (two shoal clients)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import trio

import shoal
from shoal.create import create_torrent
from shoal.metainfo import parse_metainfo
from shoal.net.utp_transport import FallbackTransport

if TYPE_CHECKING:
    from pathlib import Path


def config(transports: tuple[str, ...]) -> shoal.ClientConfig:
    return shoal.ClientConfig(bind_host="127.0.0.1", port=0, dht=False, transports=transports)


async def _transfer(tmp_path: Path, seeder_transports: tuple[str, ...]) -> tuple[Any, Any]:
    data = tmp_path / "seed" / "payload"
    data.mkdir(parents=True)
    (data / "a.bin").write_bytes(random.Random(5).randbytes(200_000))
    metainfo = parse_metainfo(create_torrent(data, piece_length=16384))
    async with (
        shoal.open_client(config(seeder_transports)) as seeder,
        shoal.open_client(config(("utp", "tcp"))) as leecher,
    ):
        seeding = await seeder.add(metainfo, save_to=tmp_path / "seed")
        with trio.fail_after(30):
            await seeding.wait_complete()
            t = await leecher.add(
                metainfo, save_to=tmp_path / "leech", peers=[seeder.listen_address], seed=False
            )
            await t.wait_complete()
        assert (tmp_path / "leech" / "payload" / "a.bin").read_bytes() == (
            data / "a.bin"
        ).read_bytes()
        return seeder, leecher


def _dial_transport(client: Any) -> Any:
    """The transport under the client-wide wrappers (rate limits, IP filter)."""
    transport = client._dialer.transport
    while hasattr(transport, "inner"):
        transport = transport.inner
    return transport


async def test_both_dials_utp_when_the_peer_speaks_it(tmp_path: Path) -> None:
    _seeder, leecher = await _transfer(tmp_path, ("utp", "tcp"))
    transport = _dial_transport(leecher)
    assert isinstance(transport, FallbackTransport)
    assert transport.fallbacks == 0
    assert leecher.utp.statistics().datagrams_in > 200_000 // 1178  # payload came by uTP
    assert _seeder.utp is not None


async def test_both_falls_back_to_tcp_for_a_tcp_only_peer(tmp_path: Path) -> None:
    _seeder, leecher = await _transfer(tmp_path, ("tcp",))
    transport = _dial_transport(leecher)
    assert isinstance(transport, FallbackTransport)
    assert transport.fallbacks >= 1
