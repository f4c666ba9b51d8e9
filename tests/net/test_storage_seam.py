"""The storage seam: a `Torrent` holds its data in any injected `Storage`.

Two clients on loopback: a seed whose data lives in a `MemoryStorage`, and a leecher
that fetches the magnet's metadata and then downloads into a `MemoryStorage` too
(neither is given a directory).
"""

from __future__ import annotations

import hashlib
import random
from typing import TYPE_CHECKING

import pytest
import trio

import shoal
from shoal.bencoding import encode
from shoal.magnet import Magnet
from shoal.metainfo import Metainfo, parse_info
from shoal.storage import MemoryStorage

if TYPE_CHECKING:
    from pathlib import Path

    from shoal.metainfo import InfoDict

PIECE = 16384
DATA = random.Random(9).randbytes(PIECE * 7 + 1234)


def metainfo() -> Metainfo:
    pieces = b"".join(
        hashlib.sha1(DATA[i : i + PIECE]).digest() for i in range(0, len(DATA), PIECE)
    )
    raw = encode(
        {b"length": len(DATA), b"name": b"mem.bin", b"piece length": PIECE, b"pieces": pieces}
    )
    return Metainfo(parse_info(raw), None, (), (), None, None, None)


def config() -> shoal.ClientConfig:
    return shoal.ClientConfig(bind_host="127.0.0.1", port=0, dht=False)


async def test_download_into_memory() -> None:
    meta = metainfo()
    stores: list[MemoryStorage] = []

    def seed_storage(info: InfoDict) -> MemoryStorage:
        return MemoryStorage(info, data=DATA)

    def leech_storage(info: InfoDict) -> MemoryStorage:
        stores.append(MemoryStorage(info))
        return stores[-1]

    async with (
        shoal.open_client(config()) as seeder,
        shoal.open_client(config()) as leecher,
    ):
        seed = await seeder.add(meta, storage=seed_storage)
        with trio.fail_after(20):
            await seed.wait_complete()  # every piece verified from memory at once
            magnet = Magnet(meta.info_hash, peers=(seeder.listen_address,))
            torrent = await leecher.add(magnet, storage=leech_storage)
            await torrent.wait_complete()
        assert torrent.statistics().pieces_done == meta.info.num_pieces
    assert len(stores) == 1
    assert stores[0].contents == DATA


async def test_add_wants_exactly_one_of_save_to_and_storage(tmp_path: Path) -> None:
    async with shoal.open_client(config()) as client:
        with pytest.raises(ValueError, match="exactly one"):
            await client.add(metainfo())
        with pytest.raises(ValueError, match="exactly one"):
            await client.add(metainfo(), save_to=tmp_path, storage=MemoryStorage)
