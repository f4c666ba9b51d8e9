"""BEP 32 interop with libtorrent 2.1.1 on ``::1``: each side finds the other's announce.

libtorrent's IPv6 DHT node shares the UDP socket of its ``[::1]`` listen port; shoal
runs IPv6 DHT nodes on ``::1`` too (the only IPv6 loopback address, so routing-IP
restrictions are off on the libtorrent side as in the IPv4 tests). Then a dual-stack
shoal node (127.0.0.1 and ::1) finds libtorrent announces made on both families.
"""

from __future__ import annotations

import os
import random
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest
import trio

from shoal.bencoding import encode
from shoal.dht import bep44
from shoal.dht_client import DHT, open_dht_node

from .test_dht_items_libtorrent import lt_get_mutable
from .test_dht_libtorrent import lt_announce, lt_find_peers, lt_session, shoal_find_peers

try:
    import libtorrent as lt  # noqa: F401 - only to skip (or fail in CI) without it
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("libtorrent is not installed", allow_module_level=True)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.integration

IH = bytes.fromhex("beef06" + "22" * 17)


@asynccontextmanager
async def shoal_v6_nodes(bind: list[tuple[str, int]]) -> AsyncIterator[tuple[DHT, DHT]]:
    """A router and a second node that joined through it, both bound to `bind`."""
    async with (
        open_dht_node(bind, rng=random.Random(61)) as router,
        open_dht_node(bind, bootstrap=router.addresses, rng=random.Random(62)) as node,
    ):
        for service in node.services:
            await service.wait_bootstrapped()
        yield router, node


async def test_shoal_on_ipv6_finds_what_libtorrent_announced() -> None:
    async with (
        shoal_v6_nodes([("::1", 0)]) as (router, seeker),
        lt_session("::1", [router.address]) as ses,
    ):
        want = ("::1", 6061)
        found = await shoal_find_peers(seeker, IH, want, lt_announce(ses, IH, want[1]))
        assert want in found
        assert all(":" in ip for ip, _ in found)  # an IPv6 lookup yields IPv6 peers


async def test_libtorrent_on_ipv6_finds_what_shoal_announced() -> None:
    async with (
        shoal_v6_nodes([("::1", 0)]) as (router, announcer),
        lt_session("::1", [router.address]) as ses,
    ):
        stats = await announcer.announce(IH, 7061)
        assert stats is not None
        assert stats.responses >= 1
        found = await lt_find_peers(ses, IH, ("::1", 7061))
        assert ("::1", 7061) in found


async def test_dual_stack_shoal_finds_libtorrent_on_both_families() -> None:
    """One libtorrent session per family; a dual-stack shoal lookup finds both."""
    async with (
        shoal_v6_nodes([("127.0.0.1", 0), ("::1", 0)]) as (router, seeker),
        lt_session("127.0.0.2", [router.addresses[0]]) as ses4,
        lt_session("::1", [router.addresses[1]]) as ses6,
    ):
        want4, want6 = ("127.0.0.2", 6062), ("::1", 6063)

        def nudge() -> None:
            lt_announce(ses4, IH, want4[1])()
            lt_announce(ses6, IH, want6[1])()

        found = await shoal_find_peers(seeker, IH, want4, nudge)
        found |= await shoal_find_peers(seeker, IH, want6, nudge)
        assert {want4, want6} <= found


async def test_dual_stack_put_is_read_by_libtorrent_on_each_family() -> None:
    """A BEP 44 put from a dual-stack shoal node reaches both DHTs: a libtorrent session
    on ::1 and one on 127.0.0.2, each knowing only the router's address of its family,
    read the item."""
    seed = bytes(range(32))
    item = bep44.make_mutable(seed, encode(b"both families"), 5, b"ds")
    async with (
        shoal_v6_nodes([("127.0.0.1", 0), ("::1", 0)]) as (router, putter),
        lt_session("127.0.0.2", [router.addresses[0]]) as ses4,
        lt_session("::1", [router.addresses[1]]) as ses6,
    ):
        with trio.fail_after(45):
            stored = await putter.put_item(item)
            while stored.stored < 4:  # router + libtorrent, on each family
                await trio.sleep(0.5)  # libtorrent may not have joined yet: put again
                stored = await putter.put_item(item)
        for ses in (ses4, ses6):
            alert = await lt_get_mutable(ses, bep44.public_key_of(seed), b"ds", 5)
            assert alert.item == b"both families"
