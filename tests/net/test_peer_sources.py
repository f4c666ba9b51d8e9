"""One entry point for every peer source (`Torrent.peers_found`), and a .torrent's BEP 5
``nodes`` used as DHT bootstrap contacts (IP literals only: no DNS lookups)."""

from __future__ import annotations

import hashlib
import random

import trio

import shoal
from shoal.bencoding import encode
from shoal.dht_client import open_dht_node
from shoal.magnet import Magnet
from shoal.metainfo import build_metainfo, parse_metainfo
from shoal.storage import MemoryStorage
from shoal.swarm.peer_pool import PeerSource

PIECE = 16384
DATA = random.Random(3).randbytes(PIECE * 2)
INFO = encode(
    {
        b"length": len(DATA),
        b"name": b"n.bin",
        b"piece length": PIECE,
        b"pieces": b"".join(hashlib.sha1(DATA[i : i + PIECE]).digest() for i in (0, PIECE)),
    }
)


def config(**kw: object) -> shoal.ClientConfig:
    base: dict[str, object] = {"bind_host": "127.0.0.1", "port": 0, "dht": False}
    base.update(kw)
    return shoal.ClientConfig(**base)  # type: ignore[arg-type]


async def test_torrent_nodes_bootstrap_the_dht() -> None:
    async with open_dht_node(("127.0.0.1", 0)) as contact:
        meta = parse_metainfo(
            build_metainfo(INFO, nodes=[contact.address, ("dht.example.invalid", 6881)])
        )
        async with shoal.open_client(config(dht=True)) as client:
            assert client.dht is not None
            assert client.dht.statistics().node.routing.nodes == 0
            await client.add(meta, storage=lambda info: MemoryStorage(info, data=DATA))
            with trio.fail_after(10):
                # Our node contacts the .torrent's node, which then knows us (and we it).
                while client.dht.statistics().node.routing.nodes == 0:  # noqa: ASYNC110
                    await trio.sleep(0.05)
            assert contact.statistics().node.routing.nodes >= 1


async def test_every_source_goes_through_peers_found() -> None:
    meta = parse_metainfo(build_metainfo(INFO))
    addr_a, addr_b = ("127.0.0.1", 1), ("127.0.0.1", 2)
    magnet = Magnet(meta.info_hash, peers=(addr_a,))
    async with shoal.open_client(config()) as client:
        torrent = await client.add(magnet, peers=[addr_b], storage=lambda info: MemoryStorage(info))
        assert set(torrent.pool.known()) >= {addr_a, addr_b}
        assert torrent.peers_found([addr_a], PeerSource.DHT) == 0  # known already
        assert torrent.peers_found([("127.0.0.1", 3)], PeerSource.PEX) == 1
        await torrent.remove()
