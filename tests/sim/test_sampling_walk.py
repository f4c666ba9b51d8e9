"""A BEP 51 sampling walk over a simulated 300-node DHT (10 % dead), in virtual time.

The probe joins through one node and knows nothing else: every other node is found
through the ``nodes`` of sample replies to random targets. It must find every stored
info-hash, ask no node twice (none stores more than a sample holds) and keep to its
rate.
"""

from __future__ import annotations

import itertools
import random

from shoal.dht.events import LookupFinished, SampleReceived
from shoal.dht.node import DHTConfig, DHTNode
from shoal.dht.sampler import SampleNode, SamplingWalk, WaitUntil, WalkConfig, WalkDone
from shoal.ids import random_id
from shoal.testing.dhtsim import Swarm


def test_walk_finds_every_stored_info_hash_politely() -> None:
    rng = random.Random(7)
    swarm = Swarm(300, rng, dead=0.1)
    hashes = {random_id(rng) for _ in range(40)}
    for h in hashes:
        swarm.store_peers(h, [("10.200.0.1", 6881)])
    probe_addr = ("192.168.9.9", 6881)
    probe = DHTNode(random_id(rng), random.Random(1), swarm.net.now, DHTConfig(read_only=True))
    swarm.net.add(probe_addr, probe)
    rate = 50.0
    walk = SamplingWalk(random.Random(2), swarm.net.now, WalkConfig(max_rate=rate))
    first = swarm.addrs[swarm.live_indices()[0]]
    walk.add_nodes([(None, first)], swarm.net.now)
    pending: dict[int, tuple[str, int]] = {}
    asked: list[tuple[str, int]] = []
    sent_at: list[float] = []
    found: set[bytes] = set()

    def drain() -> bool:
        progressed = False
        while (event := probe.next_event()) is not None:
            if isinstance(event, LookupFinished) and event.lookup_id in pending:
                addr = pending.pop(event.lookup_id)
                result = event.result
                assert isinstance(result, SampleReceived)
                assert result.addr == addr
                found.update(walk.on_result(result, swarm.net.now))
                progressed = True
        return progressed

    for _ in range(5_000):
        action = walk.next(swarm.net.now)
        if isinstance(action, WalkDone):
            break
        if isinstance(action, SampleNode):
            pending[probe.sample(action.addr, action.target, swarm.net.now)] = action.addr
            asked.append(action.addr)
            sent_at.append(swarm.net.now)
            swarm.net.poke(probe_addr)
            continue
        assert isinstance(action, WaitUntil)
        until = swarm.net.now + 10 if action.until is None else action.until
        swarm.net.run(until=until, stop=drain)
    else:
        raise AssertionError("the walk did not finish")

    assert found == hashes
    assert len(asked) == len(set(asked))  # nobody was asked twice
    assert len(asked) >= 0.9 * len(swarm.live_indices())  # it reached (nearly) everyone
    gaps = [b - a for a, b in itertools.pairwise(sent_at)]
    assert min(gaps) >= 1 / rate - 1e-9
