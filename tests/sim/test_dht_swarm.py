"""Real DHTNode engines on the simulated network: warm and cold lookups, lossy links."""

from __future__ import annotations

import random
import statistics

import pytest

from shoal.dht.lookup import LookupConfig
from shoal.ids import random_id
from shoal.testing.dhtsim import Swarm
from shoal.testing.simnet import NetConfig

POLICIES = {"shoal": LookupConfig(), "libtorrent_like": LookupConfig.libtorrent_like()}


@pytest.mark.parametrize("policy", POLICIES)
def test_warm_lookups_on_a_clean_network_find_exactly_the_true_k_closest(policy: str) -> None:
    # Equal RTTs: every live node answers before its soft timeout, so nothing is skipped.
    swarm = Swarm(200, random.Random(11), net_config=NetConfig(rtt_sigma=0.0))
    for _ in range(5):
        target = random_id(swarm.rng)
        result = swarm.run_get_peers(target, POLICIES[policy], kind="find_node")
        assert result.stats is not None
        assert list(result.closest) == swarm.true_closest(target)
        assert result.stats.queries_sent <= 30


def test_slow_nodes_may_be_skipped_but_results_stay_close() -> None:
    # With log-normal RTTs a slow node can miss its soft timeout and the lookup may end
    # without it (rust-libp2p semantics); the answer is then the next-closest live node.
    swarm = Swarm(200, random.Random(11), net_config=NetConfig(rtt_sigma=0.6))
    overlaps = []
    for _ in range(10):
        target = random_id(swarm.rng)
        result = swarm.run_get_peers(target, LookupConfig(), kind="find_node")
        overlaps.append(len(set(result.closest) & set(swarm.true_closest(target))))
        # Whatever is missing was replaced by the next closest, never by a far node.
        assert set(result.closest) <= set(swarm.true_closest(target, 12))
    assert statistics.mean(overlaps) >= 7


def test_lossy_network_with_dead_nodes_still_finds_peers_and_most_closest() -> None:
    swarm = Swarm(200, random.Random(12), dead=0.2, net_config=NetConfig(loss=0.1))
    overlaps = []
    for i in range(8):
        info_hash = random_id(swarm.rng)
        peer = ("172.16.0.1", 1000 + i)
        swarm.store_peers(info_hash, [peer])
        result = swarm.run_get_peers(info_hash, LookupConfig())
        assert peer in result.peers
        assert result.first_peer is not None
        assert result.finished is not None
        assert result.first_peer < 3.0
        overlaps.append(len(set(result.closest) & set(swarm.true_closest(info_hash))))
        assert set(result.closest) <= set(swarm.true_closest(info_hash, 20))
    # Each query fails with p = 1 - 0.9**2 = 19% and nothing retransmits, so a lost reply
    # from one of the 8 closest is replaced by the next closest: about 6 of 8 survive.
    assert statistics.mean(overlaps) >= 5.5


def test_cold_start_through_one_bootstrap_node_finds_a_peer() -> None:
    swarm = Swarm(200, random.Random(13), dead=0.1, net_config=NetConfig(loss=0.1))
    for i in range(3):
        info_hash = random_id(swarm.rng)
        swarm.store_peers(info_hash, [("172.16.0.2", 2000 + i)])
        bootstrap = swarm.addrs[swarm.live_indices()[i]]
        result = swarm.run_get_peers(info_hash, LookupConfig(), bootstrap=bootstrap)
        assert result.peers == {("172.16.0.2", 2000 + i)}
        assert result.first_peer is not None
        # Issue 3's cold-start target; 10% loss each way: retransmission and the early
        # start of the queued get_peers keep a lost datagram from costing seconds.
        assert result.first_peer < 3.0


def test_terrible_network_is_survivable_and_deterministic() -> None:
    def run(seed: int) -> list[float | None]:
        cfg = NetConfig(loss=0.2, duplicate=0.1, reorder=0.2)
        swarm = Swarm(150, random.Random(seed), dead=0.3, net_config=cfg)
        times = []
        for i in range(4):
            info_hash = random_id(swarm.rng)
            swarm.store_peers(info_hash, [("172.16.0.3", 3000 + i)])
            times.append(swarm.run_get_peers(info_hash, LookupConfig()).first_peer)
        stats = swarm.net.statistics()
        assert stats.duplicated > 0
        assert stats.reordered > 0
        assert stats.engine_errors == 0
        return times

    first = run(14)
    assert sum(t is not None for t in first) >= 3
    assert run(14) == first


def test_unknown_kind_is_a_find_node() -> None:
    swarm = Swarm(30, random.Random(15))
    result = swarm.run_get_peers(random_id(swarm.rng), LookupConfig(), kind="find_node")
    assert result.peers == frozenset()
    assert result.first_peer is None
    assert result.finished is not None


@pytest.mark.parametrize("seed", [21, 22, random.SystemRandom().randrange(2**32)])
def test_get_peers_over_a_terrible_network_with_any_seed(seed: int) -> None:
    # Fixed seeds for CI plus one fresh seed per run; the seed is in the test id and in
    # the failure message, so any failure can be replayed exactly.
    cfg = NetConfig(loss=0.15, duplicate=0.1, reorder=0.3)
    swarm = Swarm(120, random.Random(seed), dead=0.3, net_config=cfg)
    found = 0
    for i in range(4):
        info_hash = random_id(swarm.rng)
        swarm.store_peers(info_hash, [("172.16.0.4", 4000 + i)])
        result = swarm.run_get_peers(info_hash, LookupConfig())
        assert result.finished is not None, f"seed {seed}: lookup {i} did not finish"
        found += result.peers == {("172.16.0.4", 4000 + i)}
    assert found >= 3, f"seed {seed}: only {found}/4 lookups found the peer"
