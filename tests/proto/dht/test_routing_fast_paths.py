"""Routing-table fast paths must agree with the plain rules they shortcut."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant

from shoal.dht.routing import (
    REPLACEMENT_FRESH,
    NodeState,
    Pending,
    Rejected,
    RoutingTable,
)
from shoal.dht.subnets import ip_subnet

from .test_routing import RoutingMachine, far, fill_far_bucket, nid, pub

OWN = bytes(20)


def reference_subnet(ip: str) -> str | None:
    """The rule before the fast path: ``ipaddress`` flags, per address."""
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if parsed.is_loopback or parsed.is_private or parsed.is_link_local:
        return None
    prefix = 24 if parsed.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


@given(st.integers(0, 2**32 - 1))
def test_subnet_of_any_ipv4_address_matches_ipaddress(value: int) -> None:
    ip = str(ipaddress.IPv4Address(value))
    assert ip_subnet(ip) == reference_subnet(ip)


def test_subnet_at_every_exempt_network_edge_and_in_mixed_24s() -> None:
    nets = [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    ]
    ips = []
    for net in map(ipaddress.IPv4Network, nets):
        lo, hi = int(net.network_address), int(net.broadcast_address)
        ips += [v for v in (lo - 1, lo, lo + 255, hi - 255, hi, hi + 1) if 0 <= v < 2**32]
    ips += [int(ipaddress.IPv4Address("192.0.0.0")) + i for i in range(256)]
    ips += [int(ipaddress.IPv4Address("255.255.255.0")) + i for i in range(256)]
    for value in ips:
        ip = str(ipaddress.IPv4Address(value))
        assert ip_subnet(ip) == reference_subnet(ip), ip


def test_subnet_of_odd_strings_and_ipv6_matches_ipaddress() -> None:
    odd = ["01.2.3.4", "1.2.3.04", "1.2.3", "1.2.3.256", "1.2.3.4.5", "", ".", "1..2.3"]
    odd += ["::1", "2001:db8::1", "2a00:1450::1", "64:ff9b::1.2.3.4", "::ffff:8.8.8.8"]
    odd += ["fe80::1", "1.2.3.-1", "a.b.c.d", "1.2.3.+4", "1.2.3.٣"]
    for ip in odd:
        assert ip_subnet(ip) == reference_subnet(ip), ip


def test_querier_to_a_full_bucket_of_good_nodes_is_cached_only_where_there_is_room() -> None:
    table = RoutingTable(OWN, k=2, now=0.0)
    table.heard_from(nid(1), ("8.9.9.1", 1), 0.0, responded=True)  # keeps OWN's bucket split
    fill_far_bucket(table, 0.0)
    far_bucket = 0  # the bucket of IDs with the top bit set comes first

    def cached() -> list[bytes]:
        return [e.node_id for e in table.replacement_entries()[far_bucket]]

    queriers = [far(10 + i) for i in range(4)]
    for i, node_id in enumerate(queriers[:3]):
        result = table.heard_from(node_id, pub(10 + i), 1.0 + i, responded=False)
        assert isinstance(result, Rejected)  # BEP 5: a bucket of good nodes discards it
    assert cached() == queriers[:2]  # the cache (k = 2) was full and its candidates fresh
    later = 1.0 + REPLACEMENT_FRESH
    table.heard_from(queriers[3], pub(13), later, responded=False)
    assert cached() == [queriers[1], queriers[3]]  # the stale oldest made room
    assert table.get(queriers[3]) is None


def test_a_failure_ends_the_all_good_shortcut() -> None:
    table = RoutingTable(OWN, k=2, now=0.0)
    table.heard_from(nid(1), ("8.9.9.1", 1), 0.0, responded=True)
    ids = fill_far_bucket(table, 0.0)
    table.heard_from(far(10), pub(10), 1.0, responded=False)  # all GOOD: shortcut armed
    table.failed(ids[0], 2.0)
    table.failed(ids[0], 2.0)  # BAD: the cached querier takes its slot
    assert table.get(ids[0]) is None
    assert table.get(far(10)) is not None
    result = table.heard_from(far(11), pub(11), 3.0, responded=False)
    assert isinstance(result, Pending)  # not "all good" any more: ping the questionable one
    assert result.ping.node_id == far(10)


def test_time_ends_the_all_good_shortcut() -> None:
    table = RoutingTable(OWN, k=2, now=0.0)
    table.heard_from(nid(1), ("8.9.9.1", 1), 0.0, responded=True)
    fill_far_bucket(table, 0.0)
    assert isinstance(table.heard_from(far(10), pub(10), 1.0, responded=False), Rejected)
    result = table.heard_from(far(11), pub(11), 15 * 60.0 + 1.0, responded=False)
    assert isinstance(result, Pending)  # the good nodes turned questionable meanwhile
    assert result.ping.state(15 * 60.0 + 1.0) is NodeState.QUESTIONABLE


def test_closest_in_a_known_good_bucket_is_by_distance() -> None:
    table = RoutingTable(OWN, k=4, now=0.0)
    table.heard_from(nid(1), ("8.9.9.1", 1), 0.0, responded=True)
    ids = fill_far_bucket(table, 0.0)
    table.heard_from(far(10), pub(10), 1.0, responded=False)  # arms the shortcut
    for target in (far(3), far(0), nid((1 << 160) - 1), far(2)):
        t = int.from_bytes(target, "big")
        expected = sorted(ids, key=lambda i: int.from_bytes(i, "big") ^ t)[:3]
        assert [e.node_id for e in table.closest(target, 3, now=2.0)] == expected


class CachedRoutingMachine(RoutingMachine):
    """The stateful routing test, also checking the caches behind the fast paths."""

    @invariant()
    def known_good_buckets_are_good(self) -> None:
        for bucket in self.table._buckets:
            if self.now < bucket.good_until:
                assert all(e.state(self.now) is NodeState.GOOD for e in bucket.entries.values())

    @invariant()
    def subnet_index_matches_entries(self) -> None:
        for bucket in self.table._buckets:
            expected = {
                s: e for e in bucket.entries.values() if (s := ip_subnet(e.addr[0])) is not None
            }
            assert bucket.subnets == expected

    @invariant()
    def closest_matches_brute_force(self) -> None:
        # `closest` skips state checks in a bucket known to be all GOOD: same answer.
        usable = [e for e in self.table.entries() if e.state(self.now) is not NodeState.BAD]
        for lo, _ in self.table.bucket_ranges():
            target = lo.to_bytes(20, "big")
            t = int.from_bytes(target, "big")
            expected = sorted(usable, key=lambda e: int.from_bytes(e.node_id, "big") ^ t)
            got = self.table.closest(target, self.table.k, now=self.now)
            assert got == expected[: self.table.k]


TestCachedRoutingMachine = CachedRoutingMachine.TestCase
TestCachedRoutingMachine.settings = settings(max_examples=40, stateful_step_count=60, deadline=None)
