"""Whole swarms of real `TorrentEngine`s in virtual time (`shoal.testing.swarmsim`).

Every run is seeded: a failure names its seed, and the same seed replays it exactly.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from shoal import torrent_events as tev
from shoal.swarm.peer_pool import PeerSource
from shoal.testing.swarmsim import LinkConfig, SimNode, SwarmSim, make_torrent

PIECE = 64 * 1024
DATA = random.Random(7).randbytes(PIECE * 40 + 999)  # ~2.5 MiB, short last piece
META = make_torrent(DATA, PIECE)
LINK = LinkConfig(latency=0.01, bandwidth=10e6)


def introduce(sim: SwarmSim, nodes: list[SimNode]) -> None:
    """Every node learns every other (as from the DHT)."""
    for node in nodes:
        others = [n.addr for n in nodes if n is not node]
        node.engine.peers_found(others, PeerSource.DHT, sim.now)
        sim._after_input(node)


def swarm(seed: int, leechers: int = 8, **kw: object) -> tuple[SwarmSim, SimNode, list[SimNode]]:
    sim = SwarmSim(META, seed=seed)
    origin = sim.add_node("seed", data=DATA, link=LINK)
    peers = [sim.add_node(f"leech{i}", link=LINK, **kw) for i in range(leechers)]  # type: ignore[arg-type]
    introduce(sim, [origin, *peers])
    return sim, origin, peers


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_seed_eight_leechers_all_complete_and_all_upload(seed: int) -> None:
    sim, origin, leechers = swarm(seed)
    end = sim.run_until_complete(leechers, limit=600)
    for node in leechers:
        assert node.completed_at is not None, f"seed {seed}: {node.name} at {end}"
        assert node.storage is not None
        assert bytes(node.storage.disk) == DATA
        assert node.engine.payload_totals()[1] > 0, f"seed {seed}: {node.name} never uploaded"
    # The seed did not have to send every copy itself.
    assert origin.engine.payload_totals()[1] < len(DATA) * len(leechers)


def test_magnet_leechers_fetch_the_metadata_first() -> None:
    sim, _, leechers = swarm(4, leechers=3, magnet=True)
    sim.run_until_complete(leechers, limit=600)
    for node in leechers:
        assert any(isinstance(e, tev.MetadataReceived) for e in node.events)
        assert node.storage is not None
        assert bytes(node.storage.disk) == DATA


def test_runs_replay_exactly() -> None:
    logs = []
    for _ in range(2):
        sim, _, leechers = swarm(5, leechers=4)
        sim.run_until_complete(leechers, limit=600)
        logs.append([(n.completed_at, n.events) for n in leechers])
    assert logs[0] == logs[1]


def test_churn_peers_join_and_leave() -> None:
    sim, origin, leechers = swarm(6, leechers=6)
    sim.run(0.4)
    gone = leechers[:2]
    for node in gone:
        assert node.completed_at is None
        sim.kill(node)
    late = [sim.add_node(f"late{i}", link=LINK) for i in range(2)]
    introduce(sim, [origin, *leechers[2:], *late])
    stay = leechers[2:] + late
    sim.run_until_complete(stay, limit=600)
    for node in stay:
        assert node.completed_at is not None
        assert node.storage is not None
        assert bytes(node.storage.disk) == DATA


def test_a_corrupt_peer_is_banned_and_no_bad_byte_is_written() -> None:
    sim = SwarmSim(META, seed=8)
    honest = sim.add_node("honest", data=DATA, link=LINK)
    liar = sim.add_node("liar", data=DATA, link=LINK, corrupt=True)
    leech = sim.add_node("leech", link=LinkConfig(latency=0.01, bandwidth=10e6))
    assert leech.storage is not None
    written: list[int] = []

    def check(index: int, data: bytes) -> None:
        assert hashlib.sha1(data).digest() == META.info.piece_hash(index)
        written.append(index)

    leech.storage.on_commit = check
    introduce(sim, [honest, liar, leech])
    sim.run_until_complete([leech], limit=600)
    assert leech.completed_at is not None
    assert bytes(leech.storage.disk) == DATA
    assert sorted(written) == list(range(META.info.num_pieces))
    banned = [e for e in leech.events if isinstance(e, tev.PeerBanned)]
    assert [e.addr for e in banned] == [liar.addr]
    assert leech.engine.pool.is_banned(liar.addr)
    assert any(isinstance(e, tev.PieceFailed) for e in leech.events)


def completion_time(with_slow: bool) -> float:
    sim = SwarmSim(META, seed=9)
    fast = sim.add_node("fast", data=DATA, link=LinkConfig(latency=0.01, bandwidth=5e6))
    nodes = [fast]
    if with_slow:
        nodes.append(sim.add_node("slow", data=DATA, link=LinkConfig(latency=0.2, bandwidth=50e3)))
    leech = sim.add_node("leech", link=LINK)
    introduce(sim, [*nodes, leech])
    sim.run_until_complete([leech], limit=600)
    assert leech.completed_at is not None
    return leech.completed_at


def test_a_slow_peer_does_not_hold_back_the_end_game() -> None:
    alone = completion_time(with_slow=False)
    # The slow seed takes pieces too (requests are spread), but the end game re-asks
    # the fast one for whatever the slow one still holds.
    assert completion_time(with_slow=True) < alone * 1.25


def test_seeds_hang_up_on_each_other() -> None:
    sim = SwarmSim(META, seed=10)
    a = sim.add_node("a", data=DATA, link=LINK)
    b = sim.add_node("b", data=DATA, link=LINK)
    introduce(sim, [a, b])
    sim.run(5.0)
    assert not a.engine.peers
    assert not b.engine.peers
    reasons = [e.reason for n in (a, b) for e in n.events if isinstance(e, tev.PeerDisconnected)]
    assert "both peers are seeds" in reasons
