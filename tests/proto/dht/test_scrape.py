"""BEP 33 bloom filters: the BEP's test vector, the estimate, unions, legacy values."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from shoal.dht.scrape import BLOOM_BYTES, Bloom, ScrapeTally, estimate

from .strategies import ipv4s, ipv6s

VECTOR = bytes.fromhex(
    """
 F6C3F5EA A07FFD91 BDE89F77 7F26FB2B FF37BDB8 FB2BBAA2 FD3DDDE7 BACFFF75 EE7CCBAE
 FE5EEDB1 FBFAFF67 F6ABFF5E 43DDBCA3 FD9B9FFD F4FFD3E9 DFF12D1B DF59DB53 DBE9FA5B
 7FF3B8FD FCDE1AFB 8BEDD7BE 2F3EE71E BBBFE93B CDEEFE14 8246C2BC 5DBFF7E7 EFDCF24F
 D8DC7ADF FD8FFFDF DDFFF7A4 BBEEDF5C B95CE81F C7FCFF1F F4FFFFDF E5F7FDCB B7FD79B3
 FA1FC77B FE07FFF9 05B7B7FF C7FEFEFF E0B8370B B0CD3F5B 7F2BD93F EB4386CF DD6F7FD5
 BFAF2E9E BFFFFEEC D67ADBF7 C67F17EF D5D75EBA 6FFEBA7F FF47A91E B1BFBB53 E8ABFB57
 62ABE8FF 237279BF EFBFEEF5 FFC5FEBF DFE5ADFF ADFEE1FB 737FFFFB FD9F6AEF FEEE76B6
 FD8F72EF
""".replace(" ", "").replace("\n", "")
)


def _vector_ips() -> list[str]:
    v6 = int(ipaddress.IPv6Address("2001:db8::"))
    return [f"192.0.2.{i}" for i in range(256)] + [
        str(ipaddress.IPv6Address(v6 + i)) for i in range(0x3E8)
    ]


def test_bep33_test_vector() -> None:
    bloom = Bloom.of(_vector_ips())
    assert bytes(bloom) == VECTOR
    assert abs(bloom.estimate() - 1224.9308) < 1e-4  # the BEP truncates to 4 places


def test_empty_and_full_filters() -> None:
    # c is clamped to m - 1 zero bits: an empty filter reads as half an entry.
    assert estimate(bytes(BLOOM_BYTES)) < 1
    # Full: c is clamped to m - 1, so the estimate is finite.
    assert 7_000 < estimate(b"\xff" * BLOOM_BYTES) < 8_000  # the BEP: breaks down near 8,000


@given(st.lists(ipv4s | ipv6s, max_size=40), st.lists(ipv4s | ipv6s, max_size=40))
def test_union_is_the_filter_of_the_union(a: list[str], b: list[str]) -> None:
    merged = Bloom.of(a)
    merged.union(Bloom.of(b))
    assert bytes(merged) == bytes(Bloom.of(a + b))
    assert all(ip in merged for ip in a + b)  # no false negatives


@given(st.sets(ipv4s, max_size=300))
def test_estimate_tracks_small_sets(ips: set[str]) -> None:
    # Below ~1,000 entries the estimate is within a few percent (+2 for tiny sets).
    assert abs(Bloom.of(ips).estimate() - len(ips)) <= 0.06 * len(ips) + 2


def test_tally_counts_an_ip_once_across_nodes_and_keeps_seeds_apart() -> None:
    tally = ScrapeTally()
    seeds = [f"10.0.0.{i}" for i in range(10)]
    peers = [f"10.0.1.{i}" for i in range(20)]
    tally.add_filters(bytes(Bloom.of(seeds)), bytes(Bloom.of(peers)))
    tally.add_filters(bytes(Bloom.of(seeds[:5])), bytes(Bloom.of(peers[10:])))
    # A legacy node lists a known seed and two new peers: only the new ones count.
    tally.add_legacy_values([seeds[0], "10.0.2.1", "10.0.2.2"])
    s, p = tally.result()
    assert abs(s - 10) < 1
    # 22 distinct non-seed IPs; bloom estimates of sets this small are within ~1.5.
    assert abs(p - 22) < 1.5
    without_legacy_seed = ScrapeTally()
    without_legacy_seed.add_filters(bytes(Bloom.of(seeds)), bytes(Bloom.of(peers)))
    without_legacy_seed.add_legacy_values(["10.0.2.1", "10.0.2.2"])
    assert without_legacy_seed.result()[1] == p  # the known seed was not counted again
    assert tally.responders == 2
