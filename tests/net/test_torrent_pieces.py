"""`Torrent.verified_pieces()`: per-piece progress for callers such as the daemon's API."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import trio

import shoal
from shoal.create import create_torrent
from shoal.metainfo import parse_metainfo

if TYPE_CHECKING:
    from pathlib import Path


def _config() -> shoal.ClientConfig:
    return shoal.ClientConfig(bind_host="127.0.0.1", port=0, dht=False)


async def test_verified_pieces_follow_the_download(tmp_path: Path) -> None:
    data = tmp_path / "seed" / "payload"
    data.mkdir(parents=True)
    (data / "x.bin").write_bytes(random.Random(3).randbytes(100_000))
    metainfo = parse_metainfo(create_torrent(data, piece_length=16384))
    async with shoal.open_client(_config()) as seeder, shoal.open_client(_config()) as leecher:
        seed = await seeder.add(metainfo, save_to=tmp_path / "seed")
        with trio.fail_after(10):
            await seed.wait_complete()
        assert seed.verified_pieces() == [True] * metainfo.info.num_pieces
        leech = await leecher.add(metainfo, save_to=tmp_path / "leech")
        # Before any peer: the (empty) download directory was checked, nothing is verified.
        with trio.fail_after(10):
            async for _ in leech.events():  # Progress events, once a second
                if leech.statistics().state.name != "CHECKING":
                    break
        assert leech.verified_pieces() == [False] * metainfo.info.num_pieces
        leech.add_peers([seeder.listen_address])
        with trio.fail_after(10):
            await leech.wait_complete()
        assert leech.verified_pieces() == [True] * metainfo.info.num_pieces


async def test_verified_pieces_are_empty_before_metadata(tmp_path: Path) -> None:
    magnet = "magnet:?xt=urn:btih:" + "ab" * 20
    async with shoal.open_client(_config()) as client:
        torrent = await client.add(magnet, save_to=tmp_path)
        assert torrent.verified_pieces() == []
