"""Lookup: the iterative closest-nodes state machine (style.md 4.6 "Lookup properties")."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.dht.lookup import (
    TRANSITIONS,
    Addr,
    CandidateState,
    Lookup,
    LookupConfig,
    LookupDone,
    LookupKind,
    QueryNode,
    Wait,
)
from shoal.ids import distance

S = CandidateState
TARGET = bytes(20)
OWN = b"\xff" * 20


def addr_of(i: int) -> Addr:
    return (f"10.0.{i // 250}.{i % 250 + 1}", 6881)


def nid(value: int) -> bytes:
    return value.to_bytes(20, "big")


@dataclass
class Universe:
    """Simulated remote nodes: who they know and how they behave when asked."""

    ids: list[bytes]
    target: bytes
    rng: random.Random
    k: int = 8
    knows: dict[int, list[int]] = field(default_factory=dict)  # None entry = everyone
    silent: set[int] = field(default_factory=set)
    erroring: set[int] = field(default_factory=set)
    max_delay: float = 0.3
    peers_at: dict[int, list[Addr]] = field(default_factory=dict)

    def index(self, addr: Addr) -> int:
        return next(i for i in range(len(self.ids)) if addr_of(i) == addr)

    def reply_nodes(self, i: int) -> list[tuple[bytes, Addr]]:
        known = self.knows.get(i, range(len(self.ids)))
        best = sorted(
            (j for j in known if j != i), key=lambda j: distance(self.ids[j], self.target)
        )
        return [(self.ids[j], addr_of(j)) for j in best[: self.k]]

    def true_closest(self, own: bytes) -> list[bytes]:
        ids = sorted((x for x in self.ids if x != own), key=lambda x: distance(x, self.target))
        return ids[: self.k]


@dataclass
class Trace:
    queried: list[QueryNode] = field(default_factory=list)
    steps: int = 0
    max_in_flight: int = 0
    late_accepted: int = 0


def drive(lookup: Lookup, uni: Universe, *, duplicate: float = 0.0) -> Trace:
    """Run a lookup to completion against `uni`, checking the per-step invariants."""
    trace = Trace()
    heap: list[tuple[float, int, str, int]] = []
    seq = 0
    now = 0.0
    seen_addrs: set[Addr] = set()
    seen_ids: set[bytes] = set()
    bound = 5 * lookup.config.max_queries + 20
    while True:
        trace.steps += 1
        assert trace.steps <= bound, "lookup did not terminate"
        action = lookup.next(now)
        in_flight = lookup.in_flight(now)
        assert in_flight <= lookup.config.alpha
        trace.max_in_flight = max(trace.max_in_flight, in_flight)
        if isinstance(action, LookupDone):
            assert lookup.done
            return trace
        if isinstance(action, QueryNode):
            assert action.addr not in seen_addrs, "queried an address twice"
            assert action.node_id is None or action.node_id not in seen_ids, "queried an id twice"
            seen_addrs.add(action.addr)
            if action.node_id is not None:
                seen_ids.add(action.node_id)
            trace.queried.append(action)
            i = uni.index(action.addr)
            if i in uni.silent:
                continue
            kind = "error" if i in uni.erroring else "reply"
            copies = 2 if uni.rng.random() < duplicate else 1
            for _ in range(copies):
                seq += 1
                heapq.heappush(heap, (now + uni.rng.uniform(0.001, uni.max_delay), seq, kind, i))
            continue
        assert isinstance(action, Wait)
        times = [t for t in (action.until, heap[0][0] if heap else None) if t is not None]
        assert times, "Wait(None) with nothing scheduled: the lookup is stuck"
        now = max(now, min(times))
        while heap and heap[0][0] <= now:
            _, _, kind, i = heapq.heappop(heap)
            addr = addr_of(i)
            if kind == "error":
                lookup.on_failure(addr, now)
                continue
            before = {a: s for _, a, s in lookup.candidate_states()}
            lookup.on_response(
                addr, uni.ids[i], uni.reply_nodes(i), uni.peers_at.get(i, []), b"tok", now
            )
            if before.get(addr) is S.UNRESPONSIVE:
                # A soft-timed-out node's late reply still counts in full.
                after = {a: s for _, a, s in lookup.candidate_states()}
                assert after[addr] is S.SUCCEEDED
                trace.late_accepted += 1


def check_results(lookup: Lookup) -> None:
    res = lookup.closest_responded()
    ids = [r[0] for r in res]
    assert len(ids) == len(set(ids)), "duplicate node in results"
    assert len({r[1] for r in res}) == len(res), "duplicate address in results"
    dists = [distance(x, lookup.target) for x in ids]
    assert dists == sorted(dists), "results not sorted by distance"
    assert len(res) <= lookup.config.k


node_ids = st.lists(st.binary(min_size=20, max_size=20), min_size=1, max_size=40, unique=True)
configs = st.builds(
    LookupConfig,
    alpha=st.integers(1, 6),
    k=st.integers(1, 8),
    max_queries=st.integers(1, 60),
)


@given(
    ids=node_ids,
    target=st.binary(min_size=20, max_size=20),
    config=configs | st.just(LookupConfig.libtorrent_like()),
    data=st.data(),
)
def test_lookup_invariants_under_random_behaviour(
    ids: list[bytes], target: bytes, config: LookupConfig, data: st.DataObject
) -> None:
    rng = data.draw(st.randoms(use_true_random=False))
    n = len(ids)
    uni = Universe(ids, target, rng, k=config.k, max_delay=data.draw(st.floats(0.01, 20.0)))
    for i in range(n):
        uni.knows[i] = rng.sample(range(n), rng.randint(0, n))
        roll = rng.random()
        if roll < 0.3:
            uni.silent.add(i)
        elif roll < 0.4:
            uni.erroring.add(i)
    seeds = [(ids[i], addr_of(i)) for i in rng.sample(range(n), rng.randint(1, n))]
    lookup = Lookup(target, LookupKind.FIND_NODE, seeds, now=0.0, config=config, own_id=OWN)
    trace = drive(lookup, uni, duplicate=0.2)
    stats = lookup.statistics()
    assert stats.queries_sent == len(trace.queried) <= config.max_queries
    assert stats.responses <= stats.queries_sent
    assert stats.late_responses == trace.late_accepted
    assert stats.finished_at is not None
    assert trace.steps <= 5 * stats.queries_sent + 20
    check_results(lookup)
    assert all(uni.index(a) not in uni.silent for _, a, _ in lookup.closest_responded())


@given(
    ids=node_ids,
    target=st.binary(min_size=20, max_size=20),
    config=configs,
    data=st.data(),
)
def test_honest_timely_universe_yields_the_true_k_closest(
    ids: list[bytes], target: bytes, config: LookupConfig, data: st.DataObject
) -> None:
    rng = data.draw(st.randoms(use_true_random=False))
    config = LookupConfig(alpha=config.alpha, k=config.k, max_queries=1000)
    # Every node answers with the k closest nodes it knows, before any soft timeout.
    uni = Universe(ids, target, rng, k=config.k, max_delay=config.min_soft_timeout * 0.99)
    seeds = [(ids[i], addr_of(i)) for i in rng.sample(range(len(ids)), rng.randint(1, len(ids)))]
    lookup = Lookup(target, LookupKind.GET_PEERS, seeds, now=0.0, config=config, own_id=OWN)
    drive(lookup, uni)
    check_results(lookup)
    assert [r[0] for r in lookup.closest_responded()] == uni.true_closest(OWN)
    assert all(token == b"tok" for _, _, token in lookup.closest_responded())


def run_until_wait(lookup: Lookup, now: float) -> tuple[list[QueryNode], Wait | LookupDone]:
    sent: list[QueryNode] = []
    while True:
        action = lookup.next(now)
        if not isinstance(action, QueryNode):
            return sent, action
        sent.append(action)


def test_soft_timeout_frees_slot_and_late_reply_still_counts() -> None:
    config = LookupConfig(
        alpha=1, k=2, adaptive=False, soft_timeout=1.0, hard_timeout=10.0, empty_patience=2.0
    )
    a, b, c = nid(1), nid(2), nid(3)
    lookup = Lookup(TARGET, LookupKind.FIND_NODE, [(a, addr_of(1))], now=0.0, config=config)
    sent, wait = run_until_wait(lookup, 0.0)
    assert sent == [QueryNode(a, addr_of(1))]
    assert wait == Wait(1.0)
    # Nothing new before the soft deadline, and nothing left to ask: keep waiting.
    assert run_until_wait(lookup, 0.5) == ([], Wait(1.0))
    # Soft timeout: a is UNRESPONSIVE and holds no slot; but with no answer at all yet,
    # the lookup waits for it until empty_patience (2 s) rather than end empty-handed.
    assert run_until_wait(lookup, 1.0) == ([], Wait(2.0))
    assert lookup.in_flight(1.0) == 0
    lookup.on_response(addr_of(1), a, [], [], None, 4.0)
    assert isinstance(lookup.next(4.0), LookupDone)
    assert lookup.closest_responded() == [(a, addr_of(1), None)]
    # If it never answers, the lookup ends then, empty-handed.
    lookup = Lookup(TARGET, LookupKind.FIND_NODE, [(a, addr_of(1))], now=0.0, config=config)
    run_until_wait(lookup, 0.0)
    assert run_until_wait(lookup, 1.0) == ([], Wait(2.0))
    assert isinstance(lookup.next(2.0), LookupDone)
    assert lookup.closest_responded() == []
    assert lookup.statistics().timeouts == 1
    # A fresh lookup where a's late reply comes while another node is still waiting.
    lookup = Lookup(
        TARGET, LookupKind.FIND_NODE, [(a, addr_of(1)), (c, addr_of(3))], now=0.0, config=config
    )
    assert run_until_wait(lookup, 0.0) == ([QueryNode(a, addr_of(1))], Wait(1.0))
    sent, _ = run_until_wait(lookup, 1.0)
    assert sent == [QueryNode(c, addr_of(3))], "the soft timeout must free a's slot"
    assert lookup.in_flight(1.0) == 1
    lookup.on_response(addr_of(1), a, [(b, addr_of(2))], [], b"ta", 1.5)
    states = {s[1]: s[2] for s in lookup.candidate_states()}
    assert states[addr_of(1)] is S.SUCCEEDED
    assert states[addr_of(2)] is S.NOT_CONTACTED
    stats = lookup.statistics()
    assert (stats.timeouts, stats.late_responses, stats.responses) == (1, 1, 1)
    # b (closer than c) is queried next, once c's slot frees (alpha = 1).
    assert run_until_wait(lookup, 1.5) == ([], Wait(2.0))
    lookup.on_response(addr_of(3), c, [], [], None, 1.6)
    sent, _ = run_until_wait(lookup, 1.6)
    assert sent == [QueryNode(b, addr_of(2))]
    lookup.on_response(addr_of(2), b, [], [], b"tb", 1.7)
    assert isinstance(lookup.next(1.7), LookupDone)
    assert lookup.closest_responded() == [(a, addr_of(1), b"ta"), (b, addr_of(2), b"tb")]


def test_reply_after_hard_timeout_is_ignored() -> None:
    config = LookupConfig(alpha=1, k=1, adaptive=False, soft_timeout=1.0, hard_timeout=2.0)
    seeds = [(nid(1), addr_of(1)), (nid(2), addr_of(2))]
    lookup = Lookup(TARGET, LookupKind.FIND_NODE, seeds, now=0.0, config=config)
    run_until_wait(lookup, 0.0)
    run_until_wait(lookup, 1.0)  # 1 soft-timed-out, 2 queried
    run_until_wait(lookup, 2.5)  # 1 hard-timed-out
    assert lookup.on_response(addr_of(1), nid(1), [], [("1.2.3.4", 5)], None, 2.6) == []
    assert lookup.statistics().failures >= 1
    assert lookup.peers == set()


def test_every_state_input_pair_is_a_transition_or_ignored() -> None:
    terminal = {S.SUCCEEDED, S.FAILED}
    for (state, _inp), new in TRANSITIONS.items():
        assert state not in terminal
        assert new is not state
    # Each live state reacts to a reply and to an error; only NOT_CONTACTED can be queried.
    inputs = {inp for _, inp in TRANSITIONS}
    for inp in inputs:
        if inp.value == "query":
            assert {s for s, i in TRANSITIONS if i is inp} == {S.NOT_CONTACTED}
    for state in (S.WAITING, S.UNRESPONSIVE):
        assert {i.value for s, i in TRANSITIONS if s is state} >= {"response", "failure"}


def test_junk_contacts_are_ignored() -> None:
    seeds = [(nid(5), addr_of(5))]
    lookup = Lookup(TARGET, LookupKind.FIND_NODE, seeds, now=0.0, own_id=OWN)
    run_until_wait(lookup, 0.0)
    junk: list[tuple[bytes, Addr]] = [
        (OWN, addr_of(10)),  # our own id
        (nid(6), ("10.9.9.9", 0)),  # port 0
        (nid(7), ("10.9.9.9", 70000)),  # not a port
        (b"short", addr_of(11)),  # bad id length
        (nid(8), ("", 6881)),  # no IP
        (nid(5), addr_of(12)),  # the responder's id at another address
        (nid(9), addr_of(5)),  # another id at the responder's address
        (nid(3), addr_of(13)),
        (nid(3), addr_of(14)),  # same id twice: first wins
        (nid(4), addr_of(13)),  # same address twice: first wins
    ]
    lookup.on_response(addr_of(5), nid(5), junk, [("1.1.1.1", 0)], None, 0.1)
    assert lookup.candidate_states() == [
        (nid(3), addr_of(13), S.NOT_CONTACTED),
        (nid(5), addr_of(5), S.SUCCEEDED),
    ]
    assert lookup.peers == set()


def test_candidate_list_is_capped_against_floods() -> None:
    config = LookupConfig(alpha=2, k=4)
    lookup = Lookup(
        TARGET, LookupKind.FIND_NODE, [(nid(1 << 100), addr_of(0))], now=0.0, config=config
    )
    run_until_wait(lookup, 0.0)
    flood = [(nid(i + 1), addr_of(i + 1)) for i in range(5000)]
    random.Random(1).shuffle(flood)
    lookup.on_response(addr_of(0), nid(1 << 100), flood, [], None, 0.1)
    states = lookup.candidate_states()
    assert len(states) <= config.candidate_cap
    # The closest ones were kept.
    assert [s[0] for s in states[:4]] == [nid(1), nid(2), nid(3), nid(4)]


def test_max_queries_bounds_a_lookup_fed_ever_closer_fake_nodes() -> None:
    config = LookupConfig(alpha=3, k=8, max_queries=25)
    start = (1 << 150, addr_of(0))
    lookup = Lookup(
        TARGET, LookupKind.FIND_NODE, [(nid(start[0]), start[1])], now=0.0, config=config
    )
    now, fresh = 0.0, 1
    for _ in range(1000):
        sent, action = run_until_wait(lookup, now)
        if isinstance(action, LookupDone):
            break
        now += 0.05
        for q in sent:
            assert q.node_id is not None
            # Every reply invents eight nodes closer than the replier.
            base = int.from_bytes(q.node_id, "big") // 2
            fakes = [(nid(base - j), addr_of(fresh + j)) for j in range(8)]
            fresh += 8
            lookup.on_response(q.addr, q.node_id, fakes, [], None, now)
    assert lookup.done
    assert lookup.statistics().queries_sent == 25


@pytest.mark.parametrize(
    ("rtt", "expected"),
    [(0.01, 0.1), (0.2, 0.5), (10.0, 1.0), (None, 0.5)],
)
def test_soft_timeout_adapts_to_known_rtt(rtt: float | None, expected: float) -> None:
    lookup = Lookup(
        TARGET, LookupKind.FIND_NODE, [(nid(1), addr_of(1))], now=0.0, rtt_of=lambda a: rtt
    )
    action = run_until_wait(lookup, 0.0)[1]
    assert isinstance(action, Wait)
    assert action.until == pytest.approx(expected)


def test_libtorrent_like_ignores_rtt() -> None:
    config = LookupConfig.libtorrent_like()
    assert (config.alpha, config.soft_timeout, config.hard_timeout) == (5, 1.0, 15.0)
    lookup = Lookup(
        TARGET,
        LookupKind.FIND_NODE,
        [(nid(1), addr_of(1))],
        now=0.0,
        config=config,
        rtt_of=lambda a: 0.01,
    )
    assert run_until_wait(lookup, 0.0)[1] == Wait(1.0)


def test_unknown_nodes_get_the_median_measured_rtt() -> None:
    seeds = [(nid(100 + i), addr_of(i)) for i in range(4)]
    config = LookupConfig(alpha=3, k=8)
    lookup = Lookup(TARGET, LookupKind.FIND_NODE, seeds, now=0.0, config=config)
    assert len(run_until_wait(lookup, 0.0)[0]) == 3
    for i, t in enumerate([0.1, 0.2, 0.3]):
        lookup.on_response(addr_of(i), nid(100 + i), [], [], None, t)
    sent, wait = run_until_wait(lookup, 0.3)
    assert sent == [QueryNode(nid(103), addr_of(3))]
    assert isinstance(wait, Wait)
    assert wait.until == pytest.approx(0.3 + 2.5 * 0.2)


def test_peers_are_collected_once_and_first_peer_is_timed() -> None:
    seeds = [(nid(1), addr_of(1)), (nid(2), addr_of(2))]
    lookup = Lookup(TARGET, LookupKind.GET_PEERS, seeds, now=10.0)
    run_until_wait(lookup, 10.0)
    p1, p2 = ("1.2.3.4", 1000), ("5.6.7.8", 2000)
    assert lookup.on_response(addr_of(2), nid(2), [], [p1, p1, ("9.9.9.9", 0)], b"t", 10.3) == [p1]
    assert lookup.on_response(addr_of(1), nid(1), [], [p1, p2], b"t", 10.4) == [p2]
    assert lookup.on_response(addr_of(1), nid(1), [], [("7.7.7.7", 1)], b"t", 10.5) == []  # dup
    assert lookup.peers == {p1, p2}
    stats = lookup.statistics()
    assert (stats.first_peer_at, stats.first_peer_hops, stats.started) == (10.3, 1, 10.0)
    assert isinstance(lookup.next(10.5), LookupDone)
    assert lookup.statistics().finished_at == 10.5


def test_bootstrap_seed_without_id_is_identified_by_its_reply() -> None:
    lookup = Lookup(TARGET, LookupKind.FIND_NODE, [(None, addr_of(1))], now=0.0, own_id=OWN)
    assert run_until_wait(lookup, 0.0)[0] == [QueryNode(None, addr_of(1))]
    lookup.on_response(addr_of(1), nid(50), [(nid(40), addr_of(2))], [], None, 0.1)
    assert [s[:2] for s in lookup.candidate_states()] == [
        (nid(40), addr_of(2)),
        (nid(50), addr_of(1)),
    ]
    sent, _ = run_until_wait(lookup, 0.1)
    assert sent == [QueryNode(nid(40), addr_of(2))]
    # A node that answers with a different id than expected is re-sorted by its real one.
    lookup.on_response(addr_of(2), nid(60), [], [], None, 0.2)
    assert isinstance(lookup.next(0.2), LookupDone)
    assert [r[0] for r in lookup.closest_responded()] == [nid(50), nid(60)]


def test_node_claiming_our_id_or_a_taken_id_is_no_result() -> None:
    seeds = [(None, addr_of(1)), (None, addr_of(2))]
    lookup = Lookup(TARGET, LookupKind.FIND_NODE, seeds, now=0.0, own_id=OWN)
    run_until_wait(lookup, 0.0)
    lookup.on_response(addr_of(1), OWN, [(nid(7), addr_of(3))], [], None, 0.1)
    lookup.on_response(addr_of(2), nid(7), [], [], None, 0.1)
    assert lookup.closest_responded() == []
    assert lookup.statistics().failures == 2
    # The replies' nodes were still used.
    assert run_until_wait(lookup, 0.1)[0] == [QueryNode(nid(7), addr_of(3))]


def test_all_failures_end_the_lookup_with_no_results() -> None:
    seeds = [(nid(i), addr_of(i)) for i in range(1, 4)]
    lookup = Lookup(TARGET, LookupKind.FIND_NODE, seeds, now=0.0)
    sent, _ = run_until_wait(lookup, 0.0)
    for q in sent:
        lookup.on_failure(q.addr, 0.1)
    assert isinstance(lookup.next(0.1), LookupDone)
    assert lookup.closest_responded() == []
    assert lookup.statistics().failures == 3


def test_unsolicited_and_after_done_replies_are_ignored() -> None:
    lookup = Lookup(TARGET, LookupKind.GET_PEERS, [(nid(1), addr_of(1))], now=0.0)
    run_until_wait(lookup, 0.0)
    assert lookup.on_response(addr_of(9), nid(9), [], [("1.1.1.1", 1)], None, 0.1) == []
    lookup.on_failure(addr_of(9), 0.1)
    lookup.on_response(addr_of(1), nid(1), [], [], None, 0.1)
    assert isinstance(lookup.next(0.1), LookupDone)
    assert lookup.on_response(addr_of(1), nid(1), [], [("1.1.1.1", 1)], None, 0.2) == []
    assert lookup.next(0.3) == LookupDone()


def test_no_seeds_means_done_at_once() -> None:
    lookup = Lookup(TARGET, LookupKind.FIND_NODE, [], now=0.0)
    assert isinstance(lookup.next(0.0), LookupDone)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alpha": 0},
        {"k": 0},
        {"max_queries": 0},
        {"soft_timeout": 0.0},
        {"soft_timeout": 6.0, "hard_timeout": 5.0},
        {"min_soft_timeout": 2.0, "max_soft_timeout": 1.0},
        {"max_candidates": 3},
        {"patience": -1.0},
        {"empty_patience": -1.0},
    ],
)
def test_config_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LookupConfig(**kwargs)  # type: ignore[arg-type]


def test_target_must_be_20_bytes() -> None:
    with pytest.raises(ValueError):
        Lookup(b"x", LookupKind.FIND_NODE, [], now=0.0)


contacts = st.tuples(
    st.binary(max_size=24),
    st.tuples(st.sampled_from(["", "10.0.0.1", "10.0.0.2", "::1"]), st.integers(-5, 70000)),
)


@given(
    calls=st.lists(
        st.tuples(
            st.sampled_from(["next", "response", "failure"]),
            st.integers(0, 3),
            st.binary(max_size=24),
            st.lists(contacts, max_size=6),
            st.lists(
                st.tuples(st.sampled_from(["", "1.2.3.4"]), st.integers(-5, 70000)), max_size=4
            ),
            st.floats(0, 5),
        ),
        max_size=25,
    )
)
def test_arbitrary_call_sequences_never_raise(
    calls: list[tuple[str, int, bytes, list[tuple[bytes, Addr]], list[Addr], float]],
) -> None:
    seeds = [(nid(i + 1), addr_of(i)) for i in range(3)]
    lookup = Lookup(TARGET, LookupKind.GET_PEERS, seeds, now=0.0, own_id=OWN)
    now = 0.0
    for what, who, node_id, nodes, peers, dt in calls:
        now += dt
        if what == "next":
            lookup.next(now)
            assert lookup.in_flight(now) <= lookup.config.alpha
        elif what == "response":
            new = lookup.on_response(addr_of(who), node_id, nodes, peers, None, now)
            assert all(0 < p[1] < 65536 for p in new)
        else:
            lookup.on_failure(addr_of(who), now)
        check_results(lookup)
        assert len(lookup.candidate_states()) <= lookup.config.candidate_cap + 3


def test_stops_after_the_k_closest_answered_without_asking_farther_nodes() -> None:
    seeds = [(nid(i), addr_of(i)) for i in range(1, 11)]
    lookup = Lookup(TARGET, LookupKind.FIND_NODE, seeds, now=0.0, config=LookupConfig(alpha=1, k=2))
    asked = []
    for step in range(10):
        sent, action = run_until_wait(lookup, float(step))
        if isinstance(action, LookupDone):
            break
        asked += sent
        for q in sent:
            assert q.node_id is not None
            lookup.on_response(q.addr, q.node_id, [], [], None, step + 0.5)
    assert [q.node_id for q in asked] == [nid(1), nid(2)]


def test_evicted_failed_node_is_never_asked_again() -> None:
    config = LookupConfig(alpha=3, k=2, max_candidates=3)
    a, b, z = nid(1 << 120), nid(1 << 121), nid(1 << 125)
    seeds = [(a, addr_of(1)), (b, addr_of(2)), (z, addr_of(9))]
    lookup = Lookup(TARGET, LookupKind.FIND_NODE, seeds, now=0.0, config=config)
    assert len(run_until_wait(lookup, 0.0)[0]) == 3
    lookup.on_failure(addr_of(1), 0.1)
    # A closer node pushes the failed one out of the capped list...
    lookup.on_response(addr_of(2), b, [(nid(5), addr_of(5))], [], None, 0.2)
    assert addr_of(1) not in {s[1] for s in lookup.candidate_states()}
    lookup.on_failure(addr_of(9), 0.2)  # z is now the farthest evictable candidate
    assert run_until_wait(lookup, 0.2)[0] == [QueryNode(nid(5), addr_of(5))]
    # ...and when it is advertised again it is not re-added, let alone re-asked.
    again = [(a, addr_of(1)), (nid(3), addr_of(1))]  # by id, and by address
    lookup.on_response(addr_of(5), nid(5), again, [], None, 0.3)
    assert addr_of(1) not in {s[1] for s in lookup.candidate_states()}
    assert isinstance(lookup.next(0.3), LookupDone)


@pytest.mark.parametrize("late_reply", [True, False])
def test_patience_holds_termination_but_not_the_slot(late_reply: bool) -> None:
    config = LookupConfig(
        alpha=1, k=2, adaptive=False, soft_timeout=0.5, patience=2.0, hard_timeout=10.0
    )
    seeds = [(nid(1), addr_of(1)), (nid(2), addr_of(2))]
    lookup = Lookup(TARGET, LookupKind.FIND_NODE, seeds, now=0.0, config=config)
    assert run_until_wait(lookup, 0.0) == ([QueryNode(nid(1), addr_of(1))], Wait(0.5))
    # The soft timeout frees the only slot at once...
    assert run_until_wait(lookup, 0.5) == ([QueryNode(nid(2), addr_of(2))], Wait(1.0))
    lookup.on_response(addr_of(2), nid(2), [], [], None, 0.6)
    # ...but node 1, the closest, is waited for until 2.0 after its query.
    assert run_until_wait(lookup, 0.6) == ([], Wait(2.0))
    if late_reply:
        lookup.on_response(addr_of(1), nid(1), [], [], None, 1.5)
        assert isinstance(lookup.next(1.5), LookupDone)
        assert [r[0] for r in lookup.closest_responded()] == [nid(1), nid(2)]
    else:
        assert isinstance(lookup.next(2.0), LookupDone)
        assert [r[0] for r in lookup.closest_responded()] == [nid(2)]


def test_lone_silent_seed_is_given_empty_patience_by_default() -> None:
    lookup = Lookup(TARGET, LookupKind.FIND_NODE, [(None, addr_of(1))], now=0.0)
    assert run_until_wait(lookup, 0.0) == ([QueryNode(None, addr_of(1))], Wait(0.5))
    assert run_until_wait(lookup, 0.5) == ([], Wait(1.0))
    assert isinstance(lookup.next(1.0), LookupDone)
