"""The connection manager's limits (issue 4), end to end on loopback.

Where each rule is tested:

* max peer count: here (inbound and outbound).
* connect-rate limit: `tests/proto/swarm/test_peer_pool.py::test_connect_rate_is_limited`
  (token bucket) and here (a torrent handed 60 addresses at once).
* back-off for failing addresses: ``test_peer_pool.py::``
  ``test_failure_backs_off_exponentially_then_forgets`` and here (a torrent does
  not redial a dead address within the back-off).
* no self-connections: `tests/net/test_dialer_listener.py::test_self_connection_refused`
  (dialer: own listen address and own peer id) and here (a torrent told its own
  addresses, including one only the peer id gives away).
* one connection per peer: ``tests/net/test_torrent.py::``
  ``test_simultaneous_dials_keep_exactly_one_connection`` and here (the same
  peer reachable at two addresses).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import pytest
import trio

import shoal
from shoal.create import create_torrent
from shoal.metainfo import Metainfo, parse_metainfo
from shoal.net.dialer import Dialer

if TYPE_CHECKING:
    from pathlib import Path

    from shoal.ids import InfoHash
    from shoal.net.dialer import PeerLink

Addr = tuple[str, int]


def config(**kw: object) -> shoal.ClientConfig:
    base: dict[str, object] = {"bind_host": "127.0.0.1", "port": 0, "dht": False}
    base.update(kw)
    return shoal.ClientConfig(**base)  # type: ignore[arg-type]


def two_files(root: Path) -> Metainfo:
    """Leechers take file 0 only: never seeds, so their connections stay open."""
    data = root / "payload"
    data.mkdir(parents=True)
    rnd = random.Random(11)
    (data / "a.bin").write_bytes(rnd.randbytes(60_000))
    (data / "b.bin").write_bytes(rnd.randbytes(60_000))
    return parse_metainfo(create_torrent(data, piece_length=16384))


@pytest.fixture
def dials(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, Addr]]:
    """Every `Dialer.dial` call as (trio time, address)."""
    seen: list[tuple[float, Addr]] = []
    real = Dialer.dial

    async def dial(self: Dialer, addr: Addr, info_hash: InfoHash) -> PeerLink:
        seen.append((trio.current_time(), addr))
        return await real(self, addr, info_hash)

    monkeypatch.setattr(Dialer, "dial", dial)
    return seen


async def _dead_port() -> int:
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()  # nothing listens there: connects are refused at once
    return port


async def test_max_peers_inbound(tmp_path: Path) -> None:
    metainfo = two_files(tmp_path / "seed")
    async with (
        shoal.open_client(config(max_peers_per_torrent=2)) as seeder,
        shoal.open_client(config()) as l1,
        shoal.open_client(config()) as l2,
        shoal.open_client(config()) as l3,
        shoal.open_client(config()) as l4,
    ):
        seeding = await seeder.add(metainfo, save_to=tmp_path / "seed")
        with trio.fail_after(5):
            await seeding.wait_complete()
        for i, leecher in enumerate((l1, l2, l3, l4)):
            await leecher.add(
                metainfo, save_to=tmp_path / f"l{i}", peers=[seeder.listen_address], select=[0]
            )
        most = 0
        with trio.move_on_after(1.0):
            while True:
                most = max(most, seeding.statistics().peers)
                await trio.sleep(0.01)
        assert most == 2
        assert seeding.statistics().peers == 2
        assert seeder.statistics().inbound_refused >= 2


async def test_max_peers_outbound(tmp_path: Path, dials: list[tuple[float, Addr]]) -> None:
    metainfo = two_files(tmp_path / "seed")
    async with (
        shoal.open_client(config()) as s1,
        shoal.open_client(config()) as s2,
        shoal.open_client(config()) as s3,
        shoal.open_client(config(max_peers_per_torrent=2)) as leecher,
    ):
        for seeder in (s1, s2, s3):
            with trio.fail_after(5):
                await (await seeder.add(metainfo, save_to=tmp_path / "seed")).wait_complete()
        seeds = [s.listen_address for s in (s1, s2, s3)]
        t = await leecher.add(metainfo, save_to=tmp_path / "leech", peers=seeds, select=[0])
        with trio.fail_after(5):
            await t.wait_complete()
        await trio.sleep(0.3)
        assert t.statistics().peers == 2
        assert len(dials) == 2  # the third is not even dialled while the torrent is full
        assert t.statistics().known_peers == 3


async def test_connect_rate_is_limited(tmp_path: Path, dials: list[tuple[float, Addr]]) -> None:
    metainfo = two_files(tmp_path / "seed")
    port = await _dead_port()
    # 60 distinct dead addresses: every dial fails at once and frees its slot, so
    # only the pool's token bucket (burst 20, then 10/s) paces the attempts.
    dead = [(f"127.0.1.{i}", port) for i in range(1, 61)]
    async with shoal.open_client(config(max_peers_per_torrent=100)) as client:
        t = await client.add(metainfo, save_to=tmp_path / "leech", peers=dead)
        start = trio.current_time()
        await trio.sleep(1.5)
        assert t.statistics().peers == 0
    elapsed = [at - start for at, _ in dials]
    assert 20 <= len(dials) <= 20 + 10 * 1.5 + 2, len(dials)
    assert sum(1 for e in elapsed if e < 0.5) <= 20 + 10 * 0.5 + 1
    assert len({a for _, a in dials}) == len(dials)  # each address once (back-off)


async def test_failing_address_backs_off(tmp_path: Path, dials: list[tuple[float, Addr]]) -> None:
    metainfo = two_files(tmp_path / "seed")
    dead = ("127.0.0.1", await _dead_port())
    async with shoal.open_client(config()) as client:
        t = await client.add(metainfo, save_to=tmp_path / "leech", peers=[dead])
        await trio.sleep(0.5)
        t.add_peers([dead])  # named again (e.g. by PEX): still backing off
        await trio.sleep(1.0)
    assert [a for _, a in dials] == [dead]


async def test_no_self_connections(tmp_path: Path, dials: list[tuple[float, Addr]]) -> None:
    metainfo = two_files(tmp_path / "seed")
    # Bound to every address: 127.0.0.1:port is known to be us, 127.0.0.2:port is
    # only given away by the peer id in the handshake.
    async with shoal.open_client(config(bind_host="0.0.0.0")) as client:
        port = client.listen_address[1]
        t = await client.add(metainfo, save_to=tmp_path / "seed")
        with trio.fail_after(5):
            await t.wait_complete()
        t.add_peers([("127.0.0.1", port), ("127.0.0.2", port)])
        await trio.sleep(1.0)
        assert t.statistics().peers == 0
        assert client.statistics().inbound_accepted == 0
    assert sorted(a for _, a in dials) == [("127.0.0.1", port), ("127.0.0.2", port)]


async def test_one_connection_per_peer_across_addresses(tmp_path: Path) -> None:
    metainfo = two_files(tmp_path / "seed")
    async with (
        shoal.open_client(config(bind_host="0.0.0.0")) as seeder,
        shoal.open_client(config()) as leecher,
    ):
        seeding = await seeder.add(metainfo, save_to=tmp_path / "seed")
        with trio.fail_after(5):
            await seeding.wait_complete()
        port = seeder.listen_address[1]
        # One peer, two addresses: the second connection is a duplicate (same peer id).
        peers = [("127.0.0.1", port), ("127.0.0.2", port)]
        t = await leecher.add(metainfo, save_to=tmp_path / "leech", peers=peers, select=[0])
        with trio.fail_after(5):
            await t.wait_complete()
        await trio.sleep(0.3)
        assert t.statistics().peers == 1
        assert seeding.statistics().peers == 1
