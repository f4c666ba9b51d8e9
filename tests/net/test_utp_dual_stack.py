"""uTP on every bound address family (issue 13): with ``--bind 127.0.0.1 --bind ::1``
each DHT socket carries uTP too, connections are accepted on both, and a dial leaves
from the socket of the peer's family. Two shoal clients, uTP only, real sockets."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import pytest
import trio

import shoal
from shoal.create import create_torrent
from shoal.metainfo import parse_metainfo

if TYPE_CHECKING:
    from pathlib import Path

SIZE = 300_000
MSS = 1178


def config(*, dht: bool) -> shoal.ClientConfig:
    return shoal.ClientConfig(
        bind_host="127.0.0.1",
        bind_hosts=("127.0.0.1", "::1"),
        port=0,
        dht=dht,
        transports=("utp",),
    )


def families(client: shoal.Client) -> dict[str, Any]:
    """The client's uTP sockets by family ("4", "6")."""
    return {
        ("6" if ":" in sock.local_address[0] else "4"): sock
        for sock in client.utp_sockets
        if sock.local_address is not None
    }


@pytest.mark.parametrize("dht", [True, False], ids=["on-dht-sockets", "own-sockets"])
async def test_utp_on_both_families(tmp_path: Path, dht: bool) -> None:
    data = tmp_path / "seed" / "payload"
    data.mkdir(parents=True)
    (data / "a.bin").write_bytes(random.Random(7).randbytes(SIZE))
    metainfo = parse_metainfo(create_torrent(data, piece_length=16384))
    async with (
        shoal.open_client(config(dht=dht)) as seeder,
        shoal.open_client(config(dht=dht)) as v6_leecher,
        shoal.open_client(config(dht=dht)) as v4_leecher,
    ):
        for client in (seeder, v6_leecher, v4_leecher):
            socks = families(client)
            assert set(socks) == {"4", "6"}
            assert client.utp is socks["4"]  # bind_host's family first
            if dht:  # one UDP port per family for DHT and uTP
                assert client.dht is not None
                services = {s.address for s in client.dht.services}
                assert {s.local_address for s in socks.values()} == services
        port = families(seeder)["6"].local_address[1]
        seeding = await seeder.add(metainfo, save_to=tmp_path / "seed")
        with trio.fail_after(30):
            await seeding.wait_complete()
            for client, ip in ((v6_leecher, "::1"), (v4_leecher, "127.0.0.1")):
                t = await client.add(
                    metainfo,
                    save_to=tmp_path / ip.replace(":", "_"),
                    peers=[(ip, port)],
                    seed=False,
                )
                await t.wait_complete()
        for client, used, unused in ((v6_leecher, "6", "4"), (v4_leecher, "4", "6")):
            socks = families(client)
            assert socks[used].statistics().datagrams_in > SIZE // MSS
            assert socks[unused].statistics().connections == 0
            assert socks[unused].statistics().datagrams_in == 0
        seeder_socks = families(seeder)
        for fam in ("4", "6"):  # accepted on both
            assert seeder_socks[fam].statistics().datagrams_out > SIZE // MSS
    for ip in ("::1", "127.0.0.1"):
        got = (tmp_path / ip.replace(":", "_") / "payload" / "a.bin").read_bytes()
        assert got == (data / "a.bin").read_bytes()
