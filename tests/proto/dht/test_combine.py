"""Combining the results of one lookup per address family (BEP 32 dual stack)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shoal.bencoding import encode
from shoal.dht import bep44
from shoal.dht.events import ItemFound, ItemStored, ScrapeEstimate
from shoal.dht.jobs import combine_found, combine_stored
from shoal.dht.scrape import Bloom, ScrapeTally, combine_estimates

SEED = bytes(range(32))
ip4s = st.ip_addresses(v=4).map(str)
ip6s = st.ip_addresses(v=6).map(str)


def _scrape(seeds: set[str], peers: set[str], legacy: set[str]) -> ScrapeEstimate:
    tally = ScrapeTally()
    tally.add_filters(bytes(Bloom.of(seeds)), bytes(Bloom.of(peers)))
    tally.add_legacy_values(legacy)
    s, p = tally.result()
    return ScrapeEstimate(s, p, tally.responders, *tally.filters())


@given(
    st.sets(ip4s, max_size=30),
    st.sets(ip4s, max_size=30),
    st.sets(ip6s, max_size=30),
    st.sets(ip6s, max_size=30),
    st.sets(ip6s, max_size=5),
)
def test_scrapes_of_two_families_combine_as_one_filter_of_the_union(
    seeds4: set[str], peers4: set[str], seeds6: set[str], peers6: set[str], legacy6: set[str]
) -> None:
    four, six = _scrape(seeds4, peers4, set()), _scrape(seeds6, peers6, legacy6)
    both = combine_estimates([four, six])
    seed_bloom = Bloom.of(seeds4 | seeds6)
    peer_bloom = Bloom.of(peers4 | peers6 | {ip for ip in legacy6 if ip not in Bloom.of(seeds6)})
    assert both.bf_seeds == bytes(seed_bloom)
    assert both.bf_peers == bytes(peer_bloom)
    assert both.seeds == seed_bloom.estimate()
    assert both.peers == peer_bloom.estimate()
    assert both.responders == 2
    assert combine_estimates([four]) == four  # one family: unchanged


def _item(seq: int, text: bytes) -> bep44.Item:
    return bep44.Item(encode(text), b"k" * 32, b"", seq, b"s" * 64)  # not verified here


founds = st.builds(
    ItemFound,
    st.none() | st.builds(_item, st.integers(0, 3), st.sampled_from([b"a", b"b"])),
    st.integers(0, 8),
)


@given(st.lists(founds, min_size=1, max_size=3))
def test_found_items_combine_to_the_highest_seq(results: list[ItemFound]) -> None:
    both = combine_found(results)
    items = [r.item for r in results if r.item is not None]
    if not items:
        assert both == ItemFound(None, 0)
        return
    assert both.item is not None
    assert both.item.seq == max(i.seq for i in items)
    assert both.item in items
    assert both.nodes == sum(r.nodes for r in results if r.item is not None and r.item == both.item)


@given(
    st.lists(
        st.builds(
            ItemStored,
            st.integers(0, 8),
            st.lists(st.sampled_from([203, 301, 302])).map(tuple),
            st.integers(0, 8),
        ),
        max_size=3,
    )
)
def test_stored_counts_add_up(results: list[ItemStored]) -> None:
    both = combine_stored(results)
    assert both.stored == sum(r.stored for r in results)
    assert sorted(both.errors) == sorted(e for r in results for e in r.errors)
    assert both.timeouts == sum(r.timeouts for r in results)
