"""The BEP 51 sampling walk's schedule: never early, never too fast, bounded."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shoal.dht.sampler import SampleNode, SamplingWalk, WaitUntil, WalkConfig, WalkDone


def addr(i: int) -> tuple[str, int]:
    return (f"10.0.{i // 250}.{i % 250}", 6881)


class WalkMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.cfg = WalkConfig(max_rate=4.0, max_in_flight=3, max_nodes=30, default_interval=50)
        self.now = 0.0
        self.walk = SamplingWalk(random.Random(0), self.now, self.cfg)
        self.not_before: dict[tuple[str, int], float] = {}  # from intervals
        self.dead: set[tuple[str, int]] = set()
        self.outstanding: set[tuple[str, int]] = set()
        self.last_send: float | None = None
        self.seen: set[bytes] = set()

    @rule(ids=st.lists(st.integers(0, 60), max_size=5))
    def discover(self, ids: list[int]) -> None:
        self.walk.add_nodes([(None, addr(i)) for i in ids], self.now)

    @rule(dt=st.floats(0, 30))
    def tick(self, dt: float) -> None:
        self.now += dt

    @rule()
    def step(self) -> None:
        action = self.walk.next(self.now)
        if isinstance(action, SampleNode):
            a = action.addr
            assert a not in self.outstanding
            assert a not in self.dead
            assert self.now >= self.not_before.get(a, 0.0)
            if self.last_send is not None:
                assert self.now - self.last_send >= 1 / self.cfg.max_rate - 1e-9
            self.last_send = self.now
            self.outstanding.add(a)
        elif isinstance(action, WaitUntil):
            assert action.until is None or action.until > self.now
        else:
            assert isinstance(action, WalkDone)
            assert not self.outstanding

    @precondition(lambda self: bool(self.outstanding))
    @rule(
        data=st.data(),
        interval=st.none() | st.integers(0, 100),
        num=st.none() | st.integers(0, 40),
        samples=st.lists(st.binary(min_size=20, max_size=20), max_size=3),
        found=st.lists(st.integers(0, 60), max_size=4),
        ok=st.booleans(),
    )
    def answer(
        self,
        data: st.DataObject,
        interval: int | None,
        num: int | None,
        samples: list[bytes],
        found: list[int],
        ok: bool,
    ) -> None:
        a = data.draw(st.sampled_from(sorted(self.outstanding)))
        self.outstanding.discard(a)
        if not ok:
            self.walk.on_failure(a, self.now)
            self.dead.add(a)
            return
        nodes = [(bytes(20), addr(i)) for i in found]
        fresh = self.walk.on_reply(a, None, samples, interval, num, nodes, self.now)
        assert not set(fresh) & self.seen  # each info-hash once
        assert set(fresh) == set(samples) - self.seen
        self.seen |= set(fresh)
        wait = self.cfg.default_interval if interval is None else interval
        self.not_before[a] = self.now + wait

    @invariant()
    def bounded(self) -> None:
        assert self.walk.in_flight <= self.cfg.max_in_flight
        assert self.walk.known <= self.cfg.max_nodes


WalkMachine.TestCase.settings = settings(stateful_step_count=25)  # CI time: 25 steps suffice
TestWalk = WalkMachine.TestCase


@given(st.integers(1, 40))
def test_walk_asks_every_node_once_then_finishes(n: int) -> None:
    walk = SamplingWalk(random.Random(1), 0.0, WalkConfig(max_rate=10.0))
    walk.add_nodes([(None, addr(i)) for i in range(n)], 0.0)
    now, asked = 0.0, []
    for _ in range(10 * n):
        action = walk.next(now)
        if isinstance(action, WalkDone):
            break
        if isinstance(action, WaitUntil):
            assert action.until is not None  # nothing is outstanding here
            now = action.until
            continue
        asked.append(action.addr)
        walk.on_reply(action.addr, None, [], 100, 0, [], now)
    assert sorted(asked) == sorted(addr(i) for i in range(n))
    assert now >= (n - 1) / 10.0 - 1e-9  # the rate held: n queries take (n - 1) / rate s


def test_node_with_more_samples_is_asked_again_after_its_interval() -> None:
    walk = SamplingWalk(random.Random(1), 0.0, WalkConfig(max_rate=100.0))
    walk.add_nodes([(None, addr(1))], 0.0)
    first = walk.next(0.0)
    assert isinstance(first, SampleNode)
    walk.on_reply(addr(1), None, [b"a" * 20], 60, 500, [], 1.0)
    assert walk.next(1.0) == WaitUntil(61.0)
    assert isinstance(walk.next(61.0), SampleNode)
    walk.on_reply(addr(1), None, [b"b" * 20], 60, 1, [], 62.0)
    assert walk.next(62.0) == WalkDone()  # everything it stores has been seen


def test_result_without_samples_still_yields_its_nodes() -> None:
    """A node without BEP 51 may answer like find_node: no samples, but nodes to walk."""
    from shoal.dht.compact import NodeInfo
    from shoal.dht.events import SampleReceived

    walk = SamplingWalk(random.Random(1), 0.0)
    walk.add_nodes([(None, addr(1))], 0.0)
    assert isinstance(walk.next(0.0), SampleNode)
    legacy = SampleReceived(addr(1), bytes(20), None, nodes=(NodeInfo(b"n" * 20, addr(2)),))
    assert walk.on_result(legacy, 0.1) == []
    assert walk.known == 2
    assert walk.ready_at(addr(1)) == 0.1 + walk.config.default_interval
    dead = SampleReceived(addr(2), None, None)
    walk.next(1.0)
    walk.on_result(dead, 1.5)
    assert walk.ready_at(addr(2)) is None  # no answer: never asked again
