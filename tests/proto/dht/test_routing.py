"""RoutingTable: BEP 5 bucket rules, node states, IP limits, refresh and `closest`."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)

from shoal.dht.routing import (
    BAD_AFTER_FAILURES,
    QUESTIONABLE_AFTER,
    REFRESH_INTERVAL,
    Added,
    NodeState,
    Pending,
    Rejected,
    RoutingTable,
    Updated,
)

OWN = bytes(20)  # 000...0: IDs with a leading 1 bit are in the far half of the space


def nid(value: int) -> bytes:
    return value.to_bytes(20, "big")


def far(i: int) -> bytes:
    """IDs in the half of the space that does not contain OWN (top bit set)."""
    return nid((1 << 159) | (i << 100))


def pub(i: int) -> tuple[str, int]:
    """A public address, a different /24 for each i."""
    return (f"8.{i // 256 % 256}.{i % 256}.1", 6881)


def fill_far_bucket(table: RoutingTable, now: float, *, responded: bool = True) -> list[bytes]:
    ids = [far(i) for i in range(table.k)]
    for i, node_id in enumerate(ids):
        assert isinstance(table.heard_from(node_id, pub(i), now, responded=responded), Added)
    return ids


# ---------------------------------------------------------------- node states


def test_states_follow_time_and_failures() -> None:
    table = RoutingTable(OWN, now=0.0)
    table.heard_from(far(1), pub(1), 0.0, responded=True)
    entry = table.get(far(1))
    assert entry is not None
    assert entry.state(QUESTIONABLE_AFTER - 1) is NodeState.GOOD
    assert entry.state(QUESTIONABLE_AFTER) is NodeState.QUESTIONABLE
    table.failed(far(1), 1.0)
    assert entry.state(2.0) is NodeState.GOOD  # one lost reply is forgiven while good
    table.failed(far(1), 2.0)
    assert entry.state(3.0) is NodeState.BAD
    table.heard_from(far(1), pub(1), 4.0, responded=True)
    assert entry.state(5.0) is NodeState.GOOD
    assert entry.failures == 0


def test_questionable_node_is_bad_after_one_failure() -> None:
    table = RoutingTable(OWN, now=0.0)
    table.heard_from(far(1), pub(1), 0.0, responded=True)
    table.failed(pub(1), QUESTIONABLE_AFTER + 1)
    entry = table.get(far(1))
    assert entry is not None
    assert entry.state(QUESTIONABLE_AFTER + 1) is NodeState.BAD


def test_query_keeps_a_responder_good_but_does_not_make_a_stranger_good() -> None:
    table = RoutingTable(OWN, now=0.0)
    table.heard_from(far(1), pub(1), 0.0, responded=True)
    table.heard_from(far(1), pub(1), QUESTIONABLE_AFTER - 1, responded=False)
    table.heard_from(far(2), pub(2), QUESTIONABLE_AFTER - 1, responded=False)
    one, two = table.get(far(1)), table.get(far(2))
    assert one is not None
    assert two is not None
    assert one.state(QUESTIONABLE_AFTER + 10) is NodeState.GOOD
    assert two.state(QUESTIONABLE_AFTER) is NodeState.QUESTIONABLE


def test_rtt_is_smoothed() -> None:
    table = RoutingTable(OWN, now=0.0)
    assert table.rtt(pub(1)) is None
    table.heard_from(far(1), pub(1), 0.0, responded=True, rtt=0.8)
    assert table.rtt(pub(1)) == pytest.approx(0.8)
    table.heard_from(far(1), pub(1), 1.0, responded=True, rtt=0.0)
    assert table.rtt(pub(1)) == pytest.approx(0.7)
    table.heard_from(far(1), pub(1), 2.0, responded=False, rtt=5.0)  # queries carry no RTT
    assert table.rtt(pub(1)) == pytest.approx(0.7)


# ---------------------------------------------------------------- insertion


def test_own_id_is_never_stored() -> None:
    table = RoutingTable(OWN, now=0.0)
    assert table.heard_from(OWN, pub(1), 0.0, responded=True) == Rejected("own id")
    assert len(table) == 0


def test_add_then_update() -> None:
    table = RoutingTable(OWN, now=0.0)
    assert isinstance(table.heard_from(far(1), pub(1), 0.0, responded=False), Added)
    result = table.heard_from(far(1), pub(1), 1.0, responded=True)
    assert isinstance(result, Updated)
    assert result.entry.last_response == 1.0
    assert len(table) == 1


def test_live_node_cannot_move_to_another_address() -> None:
    table = RoutingTable(OWN, now=0.0)
    table.heard_from(far(1), pub(1), 0.0, responded=True)
    assert isinstance(table.heard_from(far(1), pub(2), 1.0, responded=True), Rejected)
    for t in range(BAD_AFTER_FAILURES):
        table.failed(far(1), 2.0 + t)
    assert isinstance(table.heard_from(far(1), pub(2), 9.0, responded=True), Added)
    entry = table.get(far(1))
    assert entry is not None
    assert entry.addr == pub(2)


def test_own_bucket_splits_others_do_not() -> None:
    table = RoutingTable(OWN, now=0.0)
    fill_far_bucket(table, 0.0)
    assert len(table.bucket_ranges()) == 1
    # Ninth node near us: the single bucket splits; far half keeps 8, near half gets 1.
    assert isinstance(table.heard_from(nid(5), pub(100), 0.0, responded=True), Added)
    assert table.bucket_ranges() == [(1 << 159, 1 << 160), (0, 1 << 159)]
    # Another far node: its bucket does not contain OWN, so it cannot split.
    result = table.heard_from(far(50), pub(50), 0.0, responded=True)
    assert result == Rejected("bucket full of good nodes")
    assert len(table.bucket_ranges()) == 2


def test_full_bucket_asks_to_ping_the_stalest_questionable_node() -> None:
    table = RoutingTable(OWN, now=0.0)
    table.heard_from(nid(1), pub(200), 0.0, responded=True)  # force a split first
    ids = [far(i) for i in range(8)]
    for i, node_id in enumerate(ids):
        table.heard_from(node_id, pub(i), float(i), responded=True)
    now = QUESTIONABLE_AFTER + 3.5  # ids[0..3] questionable, ids[4..7] still good
    result = table.heard_from(far(99), pub(99), now, responded=True)
    assert isinstance(result, Pending)
    assert result.ping.node_id == ids[0]
    # It answers: it stays, the next ping target is the next stalest.
    table.heard_from(ids[0], pub(0), now, responded=True)
    result = table.heard_from(far(99), pub(99), now, responded=True)
    assert isinstance(result, Pending)
    assert result.ping.node_id == ids[1]
    # The next one fails to answer: the newcomer from the replacement cache takes its slot.
    table.failed(ids[1], now + 1)
    assert table.get(ids[1]) is None
    assert table.get(far(99)) is not None


def test_bad_node_is_replaced_immediately_preferring_unverified_victims() -> None:
    table = RoutingTable(OWN, now=0.0)
    table.heard_from(nid(1), pub(200), 0.0, responded=True)
    for i in range(8):
        table.heard_from(far(i), pub(i), 0.0, responded=True, verified=i == 0)
    for i in (0, 1):
        for _ in range(BAD_AFTER_FAILURES):
            table.failed(far(i), 1.0)  # no replacements yet: BAD nodes stay
    assert table.get(far(0)) is not None
    assert table.get(far(1)) is not None
    assert isinstance(table.heard_from(far(50), pub(50), 2.0, responded=True), Added)
    assert table.get(far(1)) is None  # the unverified bad node went first
    assert table.get(far(0)) is not None


def test_failed_node_is_replaced_from_cache_when_it_turns_bad() -> None:
    table = RoutingTable(OWN, now=0.0)
    table.heard_from(nid(1), pub(200), 0.0, responded=True)
    ids = fill_far_bucket(table, 0.0)
    assert isinstance(table.heard_from(far(60), pub(60), 1.0, responded=True), Rejected)
    table.failed(ids[3], 2.0)
    assert table.get(ids[3]) is not None  # one failure of a good node is forgiven
    table.failed(ids[3], 3.0)
    assert table.get(ids[3]) is None
    assert table.get(far(60)) is not None


def test_replacement_cache_is_bounded() -> None:
    table = RoutingTable(OWN, now=0.0)
    table.heard_from(nid(1), pub(200), 0.0, responded=True)
    fill_far_bucket(table, 0.0)
    for i in range(100, 130):
        table.heard_from(far(i), pub(i), float(i), responded=True)
    assert table.statistics(now=200.0).replacements == table.k


# ---------------------------------------------------------------- IP limits


def test_one_entry_per_ip_and_per_subnet_in_a_bucket() -> None:
    table = RoutingTable(OWN, now=0.0)
    table.heard_from(far(1), ("8.8.8.8", 1), 0.0, responded=True)
    assert isinstance(table.heard_from(far(2), ("8.8.8.8", 2), 0.0, responded=True), Rejected)
    assert isinstance(table.heard_from(far(3), ("8.8.8.9", 1), 0.0, responded=True), Rejected)
    assert isinstance(table.heard_from(far(4), ("8.8.9.9", 1), 0.0, responded=True), Added)
    table.heard_from(far(5), ("2001:db9::1", 1), 0.0, responded=True)
    v6 = table.heard_from(far(6), ("2001:db9::2", 1), 0.0, responded=True)
    assert isinstance(v6, Rejected)


def test_same_ip_allowed_in_other_bucket_only_if_not_restricted() -> None:
    table = RoutingTable(OWN, now=0.0, restrict_ips=False)
    table.heard_from(far(1), ("8.8.8.8", 1), 0.0, responded=True)
    assert isinstance(table.heard_from(far(2), ("8.8.8.8", 2), 0.0, responded=True), Added)
    # ... but one entry per address, always.
    assert isinstance(table.heard_from(far(3), ("8.8.8.8", 2), 0.0, responded=True), Rejected)


@pytest.mark.parametrize("ip", ["127.0.0.1", "10.0.0.1", "192.168.1.1", "fe80::1", "::1"])
def test_local_addresses_are_exempt(ip: str) -> None:
    table = RoutingTable(OWN, now=0.0)
    for port in range(1, 6):
        result = table.heard_from(far(port), (ip, port), 0.0, responded=True)
        assert isinstance(result, Added)


# ---------------------------------------------------------------- refresh


def test_refresh_targets_stale_buckets_in_range() -> None:
    table = RoutingTable(OWN, now=0.0, rng=random.Random(1))
    fill_far_bucket(table, 0.0)
    table.heard_from(nid(3), pub(300), 0.0, responded=True)  # split
    assert table.buckets_to_refresh(REFRESH_INTERVAL - 1) == []
    table.heard_from(far(0), pub(0), 100.0, responded=True)  # touches the far bucket only
    targets = table.buckets_to_refresh(REFRESH_INTERVAL + 1)
    assert len(targets) == 1
    assert int.from_bytes(targets[0], "big") < 1 << 159
    assert table.buckets_to_refresh(REFRESH_INTERVAL + 2) == []  # asked once per interval
    targets = table.buckets_to_refresh(REFRESH_INTERVAL + 101)
    assert len(targets) == 1
    assert int.from_bytes(targets[0], "big") >= 1 << 159


# ---------------------------------------------------------------- closest


@settings(max_examples=60)
@given(
    own=st.binary(min_size=20, max_size=20),
    ids=st.lists(st.binary(min_size=20, max_size=20), max_size=120, unique=True),
    target=st.binary(min_size=20, max_size=20),
    count=st.integers(0, 20),
    bad=st.sets(st.integers(0, 119)),
)
def test_closest_matches_brute_force(
    own: bytes, ids: list[bytes], target: bytes, count: int, bad: set[int]
) -> None:
    table = RoutingTable(own, now=0.0, restrict_ips=False)
    for i, node_id in enumerate(ids):
        table.heard_from(node_id, ("127.0.0.1", 1000 + i), 0.0, responded=True)
        if i in bad:
            for _ in range(BAD_AFTER_FAILURES):
                table.failed(node_id, 0.0)
    good = [e for e in table.entries() if e.state(1.0) is not NodeState.BAD]
    expected = sorted(
        good, key=lambda e: int.from_bytes(e.node_id, "big") ^ int.from_bytes(target, "big")
    )
    assert table.closest(target, count, now=1.0) == expected[:count]


def test_closest_on_a_realistic_table() -> None:
    rng = random.Random(7)
    table = RoutingTable(nid(rng.getrandbits(160)), now=0.0)
    for i in range(5000):
        table.heard_from(nid(rng.getrandbits(160)), pub(i), 0.0, responded=True)
    assert 50 < len(table) < 200  # about k * log2(5000) nodes kept
    everyone = list(table.entries())
    for _ in range(50):
        target = rng.getrandbits(160)
        expected = sorted(everyone, key=lambda e: int.from_bytes(e.node_id, "big") ^ target)
        assert table.closest(nid(target), 8, now=1.0) == expected[:8]


# ---------------------------------------------------------------- stateful


IPS = st.builds(
    lambda pattern, n, port: (pattern % n, port),
    st.sampled_from(["8.8.8.%d", "8.8.%d.1", "9.%d.0.1", "127.0.0.%d", "10.0.%d.1"]),
    st.integers(1, 60),
    st.integers(1, 3),
)


class RoutingMachine(RuleBasedStateMachine):
    """Random heard_from / failed / time / refresh sequences keep the table's invariants."""

    ids = Bundle("ids")

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.own = bytes(20)
        self.table = RoutingTable(self.own, k=4, now=0.0, rng=random.Random(0))
        self.addr_of: dict[bytes, tuple[str, int]] = {}

    def _hear(self, node_id: bytes, responded: bool, verified: bool, rtt: float | None) -> None:
        addr = self.addr_of[node_id]
        result = self.table.heard_from(
            node_id, addr, self.now, responded=responded, rtt=rtt, verified=verified
        )
        event(type(result).__name__)
        if isinstance(result, Added | Updated):
            assert self.table.get(node_id) is result.entry
        if isinstance(result, Pending):
            assert result.ping.state(self.now) is NodeState.QUESTIONABLE

    @rule(
        target=ids,
        node_id=st.binary(min_size=20, max_size=20)
        | st.builds(
            lambda bits, rest: nid((1 << (159 - bits)) | (rest >> bits)),
            st.integers(0, 12),
            st.integers(0, (1 << 148) - 1),
        ),
        ip=IPS,
        responded=st.booleans(),
        verified=st.booleans(),
        rtt=st.none() | st.floats(0, 5),
    )
    def new_node(
        self,
        node_id: bytes,
        ip: tuple[str, int],
        responded: bool,
        verified: bool,
        rtt: float | None,
    ) -> bytes:
        # The second form makes IDs close to ours, exercising repeated own-bucket splits.
        self.addr_of.setdefault(node_id, ip)
        self._hear(node_id, responded, verified, rtt)
        return node_id

    @rule(node_id=ids, responded=st.booleans(), rtt=st.none() | st.floats(0, 5))
    def heard_again(self, node_id: bytes, responded: bool, rtt: float | None) -> None:
        self._hear(node_id, responded, False, rtt)

    @rule(node_id=ids, ip=IPS)
    def heard_from_new_address(self, node_id: bytes, ip: tuple[str, int]) -> None:
        self.addr_of[node_id] = ip
        self._hear(node_id, True, False, None)

    @rule(node_id=ids)
    def failed(self, node_id: bytes) -> None:
        self.table.failed(node_id, self.now)

    @precondition(lambda self: len(self.table) > 0)
    @rule(data=st.data())
    def failed_by_addr(self, data: st.DataObject) -> None:
        entry = data.draw(st.sampled_from(list(self.table.entries())))
        self.table.failed(entry.addr, self.now)

    @rule(node_id=consumes(ids))
    def remove(self, node_id: bytes) -> None:
        self.table.remove(node_id)
        assert self.table.get(node_id) is None

    @rule(dt=st.sampled_from([0.5, 60.0, QUESTIONABLE_AFTER, 2 * REFRESH_INTERVAL]))
    def advance_time(self, dt: float) -> None:
        self.now += dt

    @rule()
    def refresh(self) -> None:
        ranges = self.table.bucket_ranges()
        for target in self.table.buckets_to_refresh(self.now):
            value = int.from_bytes(target, "big")
            assert any(lo <= value < hi for lo, hi in ranges)

    @rule(target_id=ids)
    def closest(self, target_id: bytes) -> None:
        got = self.table.closest(target_id, 5, now=self.now)
        assert all(e.state(self.now) is not NodeState.BAD for e in got)
        dist = [int.from_bytes(e.node_id, "big") ^ int.from_bytes(target_id, "big") for e in got]
        assert dist == sorted(dist)

    @invariant()
    def buckets_partition_the_space_and_hold_their_ids(self) -> None:
        ranges = self.table.bucket_ranges()
        spans = sorted(ranges)
        assert spans[0][0] == 0
        assert spans[-1][1] == 1 << 160
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
        for (lo, hi), entries in zip(ranges, self.table.bucket_entries(), strict=True):
            assert len(entries) <= self.table.k
            assert all(lo <= int.from_bytes(e.node_id, "big") < hi for e in entries)
            assert all(e.node_id != self.own for e in entries)

    @invariant()
    def one_entry_per_ip(self) -> None:
        entries = list(self.table.entries())
        assert len({e.addr for e in entries}) == len(entries) == len(self.table)
        public = [e.addr[0] for e in entries if not e.addr[0].startswith(("127.", "10."))]
        assert len(set(public)) == len(public)
        for bucket in self.table.bucket_entries():
            subnets = [
                e.addr[0].rsplit(".", 1)[0]
                for e in bucket
                if not e.addr[0].startswith(("127.", "10."))
            ]
            assert len(set(subnets)) == len(subnets)


TestRoutingMachine = RoutingMachine.TestCase
TestRoutingMachine.settings = settings(max_examples=60, stateful_step_count=60, deadline=None)
