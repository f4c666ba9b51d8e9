"""DHT interop with libtorrent 2.1.1: each side finds what the other announced.

Everything is on loopback: shoal nodes on 127.0.0.1, each libtorrent session on its
own 127.0.0.x address (libtorrent's DHT keeps one node per IP). LSD, UPnP, NAT-PMP and
the IP notifier are off and the bootstrap list is empty, so a session talks only to
the nodes a test adds with ``add_dht_node``. Every session is aborted on the way out.
"""

from __future__ import annotations

import os
import random
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import pytest
import trio

from shoal.dht_client import DHT, open_dht_node
from tests.lt_helpers import loopback_settings

try:
    import libtorrent as lt
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("libtorrent is not installed", allow_module_level=True)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

pytestmark = pytest.mark.integration

IH = bytes.fromhex("c0ffee" + "11" * 17)
DEADLINE = 30.0  # seconds; libtorrent's DHT paces its own queries


@asynccontextmanager
async def lt_session(ip: str, bootstrap: list[tuple[str, int]]) -> AsyncIterator[Any]:
    ses = lt.session(
        loopback_settings(ip, dht=True)
        | {
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "alert_mask": lt.alert_category.dht_operation | lt.alert_category.dht,
        }
    )
    try:
        for addr in bootstrap:
            ses.add_dht_node(addr)
        yield ses
    finally:
        # The Python binding has no abort(): stop the DHT and all network activity now;
        # the session object itself is destroyed with its last reference.
        ses.apply_settings({"enable_dht": False})
        ses.pause()


def dht_port(ses: Any) -> int:
    # libtorrent's DHT shares the UDP (uTP) socket of its listen port.
    return int(ses.listen_port())


def lt_announce(ses: Any, info_hash: bytes, port: int) -> Callable[[], None]:
    """A callable that (re-)announces: a ``dht_announce`` made before libtorrent's DHT has
    started is dropped, and libtorrent does not repeat one-shot announces on its own."""
    return lambda: ses.dht_announce(lt.sha1_hash(info_hash), port, 0)


async def lt_find_peers(
    ses: Any, info_hash: bytes, want: tuple[str, int], nudge: Callable[[], None] = lambda: None
) -> list[tuple[str, int]]:
    """Run libtorrent's get_peers until `want` shows up, re-asking every 3 seconds."""
    seen: list[tuple[str, int]] = []
    with trio.fail_after(DEADLINE):
        while want not in seen:
            nudge()
            ses.dht_get_peers(lt.sha1_hash(info_hash))
            with trio.move_on_after(3):
                while want not in seen:
                    await trio.to_thread.run_sync(ses.wait_for_alert, 200)
                    for alert in ses.pop_alerts():
                        if isinstance(alert, lt.dht_get_peers_reply_alert):
                            seen.extend((str(ip), int(port)) for ip, port in alert.peers())
    return seen


async def shoal_find_peers(
    dht: DHT, info_hash: bytes, want: tuple[str, int], nudge: Callable[[], None]
) -> set[tuple[str, int]]:
    """Repeat shoal lookups (and the announce) until `want` is found."""
    found: set[tuple[str, int]] = set()
    with trio.fail_after(DEADLINE):
        while want not in found:
            nudge()
            await trio.sleep(0.5)  # let libtorrent run its announce
            found |= {p async for p in dht.get_peers(info_hash)}
    return found


@asynccontextmanager
async def shoal_nodes(count: int) -> AsyncIterator[list[DHT]]:
    async with open_dht_node(("127.0.0.1", 0), rng=random.Random(1)) as first:
        nodes = [first]
        async with open_dht_node(
            ("127.0.0.1", 0), bootstrap=[first.address], rng=random.Random(2)
        ) as second:
            nodes.append(second)
            await second.wait_bootstrapped()
            yield nodes[:count]


async def test_shoal_finds_what_libtorrent_announced() -> None:
    async with shoal_nodes(2) as (router, seeker), lt_session("127.0.0.2", [router.address]) as ses:
        found = await shoal_find_peers(seeker, IH, ("127.0.0.2", 6001), lt_announce(ses, IH, 6001))
        assert ("127.0.0.2", 6001) in found


async def test_libtorrent_finds_what_shoal_announced() -> None:
    async with (
        shoal_nodes(2) as (router, announcer),
        lt_session("127.0.0.2", [router.address]) as ses,
    ):
        stats = await announcer.announce(IH, 7001)
        assert stats is not None
        found = await lt_find_peers(ses, IH, ("127.0.0.1", 7001))
        assert ("127.0.0.1", 7001) in found


async def test_libtorrent_nodes_find_each_other_through_a_shoal_node() -> None:
    """Two libtorrent sessions whose only contact is one shoal node."""
    async with (
        shoal_nodes(1) as (router,),
        lt_session("127.0.0.2", [router.address]) as announcer,
        lt_session("127.0.0.3", [router.address]) as seeker,
    ):
        nudge = lt_announce(announcer, IH, 6002)
        found = await lt_find_peers(seeker, IH, ("127.0.0.2", 6002), nudge)
        assert ("127.0.0.2", 6002) in found
        # The seeker's only contact was the shoal node: it learned of the announcer (and
        # possibly the peer itself) from shoal's replies.
        assert router.statistics().node.queries_received >= 2
