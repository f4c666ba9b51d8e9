"""Hostile peers against real clients on loopback (shoal.testing.hostile).

Each test plays one class of attacker from issue 10 against `open_client` and checks
that the victim stays bounded (connections, fds) and that an honest peer keeps working
at the same time. Attackers that could get a whole host banned use a loopback IP of
their own (127.0.0.66), so the honest peers on 127.0.0.1 are not caught by the ban.
"""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING

import pytest
import trio

import shoal
from shoal import torrent_events as tev
from shoal.create import create_torrent
from shoal.magnet import Magnet
from shoal.metainfo import Metainfo, parse_metainfo
from shoal.testing.hostile import (
    AttackStats,
    MetadataLie,
    bad_frames,
    corrupt_seed,
    handshake_then_close,
    send_then_wait_close,
    serve_lying_metadata_peer,
    slowloris,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

ATTACKER = "127.0.0.66"


def payload(root: Path, size: int = 200_000, piece_length: int = 16384) -> Metainfo:
    data = root / "payload"
    data.mkdir(parents=True)
    (data / "x.bin").write_bytes(random.Random(5).randbytes(size))
    return parse_metainfo(create_torrent(data, piece_length=piece_length))


def config(**kw: object) -> shoal.ClientConfig:
    base: dict[str, object] = {"bind_host": "127.0.0.1", "port": 0, "dht": False}
    base.update(kw)
    return shoal.ClientConfig(**base)  # type: ignore[arg-type]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def honest_download(metainfo: Metainfo, seeder: shoal.Client, where: Path) -> None:
    """A fresh leecher gets the whole torrent from `seeder` (the honest peer keeps working)."""
    async with shoal.open_client(config()) as leecher:
        t = await leecher.add(metainfo, save_to=where, peers=[seeder.listen_address])
        with trio.fail_after(30):
            await t.wait_complete()


@pytest.mark.parametrize("name", sorted(bad_frames(13)))
async def test_a_malformed_stream_costs_only_that_peer(tmp_path: Path, name: str) -> None:
    metainfo = payload(tmp_path / "seed")
    async with shoal.open_client(config()) as seeder:
        await (await seeder.add(metainfo, save_to=tmp_path / "seed")).wait_complete()
        stats = AttackStats()
        payload_bytes = bad_frames(metainfo.info.num_pieces)[name]
        with trio.fail_after(15):
            await send_then_wait_close(
                seeder.listen_address, metainfo.info_hash, payload_bytes, stats
            )
        assert stats.closed_by_victim == 1, f"{name}: the victim hung up"
        await honest_download(metainfo, seeder, tmp_path / "leech")


@pytest.mark.slow
async def test_slowloris_handshake_is_cut_by_the_deadline(tmp_path: Path) -> None:
    metainfo = payload(tmp_path / "seed")
    async with shoal.open_client(config()) as seeder:
        await (await seeder.add(metainfo, save_to=tmp_path / "seed")).wait_complete()
        stats = AttackStats()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(slowloris, seeder.listen_address, metainfo.info_hash, stats)
            await honest_download(metainfo, seeder, tmp_path / "leech")
            with trio.fail_after(20):  # HANDSHAKE_TIMEOUT is 10 s
                while stats.closed_by_victim == 0:  # noqa: ASYNC110 (polling the attacker)
                    await trio.sleep(0.1)
        assert stats.sent < 68, "cut before the handshake was complete"


@pytest.mark.parametrize("lie", list(MetadataLie))
async def test_a_metadata_size_liar_does_not_stop_a_magnet(
    tmp_path: Path, lie: MetadataLie
) -> None:
    metainfo = payload(tmp_path / "seed")
    size = len(metainfo.info.raw)
    stats = AttackStats()
    async with trio.open_nursery() as nursery:
        liar = await nursery.start(
            serve_lying_metadata_peer, metainfo.info_hash, size * 3 + 7, lie, stats
        )
        async with (
            shoal.open_client(config()) as seeder,
            shoal.open_client(config()) as leecher,
        ):
            await (await seeder.add(metainfo, save_to=tmp_path / "seed")).wait_complete()
            # The liar connects first and announces its size; then the seeder arrives.
            t = await leecher.add(Magnet(metainfo.info_hash, peers=(liar,)), save_to=tmp_path / "l")
            with trio.fail_after(10):
                while stats.received == 0:  # noqa: ASYNC110 (polling the attacker)
                    await trio.sleep(0.05)
            await trio.sleep(0.3)  # its extended handshake is in
            t.add_peers([seeder.listen_address])
            with trio.fail_after(8):  # was: never (only the liar's size was asked)
                got = await t.wait_metadata()
            assert got.info.raw == metainfo.info.raw
            with trio.fail_after(30):
                await t.wait_complete()
        nursery.cancel_scope.cancel()
    assert stats.connected >= 1, "the liar was dialled"


async def test_a_handshake_then_close_storm_does_not_hide_the_seeder(tmp_path: Path) -> None:
    metainfo = payload(tmp_path / "seed")
    async with (
        shoal.open_client(config()) as seeder,
        shoal.open_client(config()) as leecher,
    ):
        await (await seeder.add(metainfo, save_to=tmp_path / "seed")).wait_complete()
        t = await leecher.add(metainfo, save_to=tmp_path / "leech")
        stats = AttackStats(source_host=ATTACKER)
        fds = open_fds()
        with trio.fail_after(60):
            await handshake_then_close(leecher.listen_address, metainfo.info_hash, 200, stats)
        assert stats.connected == 200
        # Was 200: every ephemeral source port entered the dial pool.
        assert t.statistics().known_peers == 0, "ephemeral source ports are not dial targets"
        with trio.fail_after(60):  # claimed BEP 10 ports are dialable, but unverified
            await handshake_then_close(
                leecher.listen_address, metainfo.info_hash, 200, stats, claim_listen_ports=True
            )
        assert t.statistics().known_peers <= 200
        t.add_peers([seeder.listen_address])  # a trusted source: dialled first
        with trio.fail_after(30):
            await t.wait_complete()
        assert open_fds() <= fds + 20


async def test_a_corrupt_peer_from_many_ports_is_banned_by_host(tmp_path: Path) -> None:
    metainfo = payload(tmp_path / "seed")
    async with (
        shoal.open_client(config()) as seeder,
        shoal.open_client(config()) as leecher,
    ):
        await (await seeder.add(metainfo, save_to=tmp_path / "seed")).wait_complete()
        t = await leecher.add(metainfo, save_to=tmp_path / "leech")
        events = t.events()
        stats = AttackStats(source_host=ATTACKER)
        with trio.fail_after(60):
            await corrupt_seed(
                leecher.listen_address,
                metainfo.info_hash,
                stats,
                connections=12,
                num_pieces=metainfo.info.num_pieces,
            )
        banned = None
        with trio.move_on_after(0.5):
            async for event in events:
                if isinstance(event, tev.PeerBanned):
                    banned = event.addr
                    break
        assert banned is not None, "the corrupt peer was banned"
        assert banned[0] == ATTACKER
        served = [n for n in stats.per_connection if n > 0]
        # Banned by port at first (NAT fairness); after 3 bad ports the whole host is
        # refused at the handshake and no longer gets a single request.
        assert len(served) <= 3, stats.per_connection
        assert stats.per_connection[-5:] == [0] * 5
        t.add_peers([seeder.listen_address])
        with trio.fail_after(30):
            await t.wait_complete()


async def test_attackers_refuse_non_loopback_targets() -> None:
    from shoal.testing.hostile import LoopbackOnly

    for host in ("10.0.0.1", "192.0.2.1", "example.invalid"):
        with pytest.raises(LoopbackOnly):
            await handshake_then_close((host, 6881), b"\0" * 20, 1, AttackStats())
    with pytest.raises(LoopbackOnly):
        await handshake_then_close(("127.0.0.1", 9), b"\0" * 20, 1, AttackStats("10.0.0.1"))
