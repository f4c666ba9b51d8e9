"""BEP 44 re-put: `DHT.keep_item` keeps an item alive past the 2-hour expiry.

Real DHT nodes on 127.0.0.1 under an autojumping `MockClock`: hours of virtual time
pass in well under a second, and loopback datagrams are queued before `sendto`
returns, so no reply is ever late in virtual time.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from shoal.bencoding import encode
from shoal.dht import bep44
from shoal.dht_client import DHT, REPUT_INTERVAL, open_dht_node

SEED = bytes(range(32))
HOUR = 3600.0


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def stored_on(node: DHT, target: bytes) -> bep44.Item | None:
    return node.service.node.server.items.get(target, trio.current_time())


async def test_kept_item_outlives_the_expiry_and_an_unkept_one_does_not(
    autojump_clock: trio.testing.MockClock,
) -> None:
    kept = bep44.make_mutable(SEED, encode(b"kept"), 1, b"k")
    once = bep44.make_mutable(SEED, encode(b"once"), 1, b"o")
    async with (
        open_dht_node(("127.0.0.1", 0)) as storer,
        open_dht_node(("127.0.0.1", 0), bootstrap=[storer.address]) as putter,
    ):
        await putter.wait_bootstrapped()
        assert (await putter.put_item(once)).stored == 1
        start = trio.current_time()
        put_times = []
        keeper = putter.keep_item(kept, interval=HOUR)
        async for stored in keeper:
            put_times.append(trio.current_time() - start)
            assert stored.stored == 1, stored
            assert not stored.errors
            if keeper.puts == 4:
                break
        # Puts at 0, 1, 2 and 3 h (virtual), each a few lookups long at most.
        assert [round(t / HOUR) for t in put_times] == [0, 1, 2, 3]
        assert all(t - HOUR * i < 60 for i, t in enumerate(put_times))
        assert trio.current_time() - start > 2 * HOUR + 60  # past the first put's expiry
        assert stored_on(storer, kept.target) == kept
        assert stored_on(storer, once.target) is None  # expired: nobody re-put it
        assert keeper.item == kept
        assert putter.keep_item(kept).interval == REPUT_INTERVAL  # BEP 44's hourly


async def test_keep_item_sends_cas_with_the_first_put_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    first = bep44.make_mutable(SEED, encode(b"a"), 1)
    second = bep44.make_mutable(SEED, encode(b"b"), 2)
    async with (
        open_dht_node(("127.0.0.1", 0)) as storer,
        open_dht_node(("127.0.0.1", 0), bootstrap=[storer.address]) as putter,
    ):
        await putter.wait_bootstrapped()
        assert (await putter.put_item(first)).stored == 1
        keeper = putter.keep_item(second, interval=HOUR, cas=1)  # replaces seq 1
        outcomes = []
        async for stored in keeper:
            outcomes.append((stored.stored, stored.errors))
            if keeper.puts == 3:
                break
        # Had the re-puts sent cas 1 again, the node (now at seq 2) would refuse: 301.
        assert outcomes == [(1, ())] * 3
        # Another writer moves on to seq 3: our re-put of seq 2 is refused (302).
        assert (await putter.put_item(bep44.make_mutable(SEED, encode(b"c"), 3))).stored == 1
        stored = await keeper.__anext__()
        assert (stored.stored, stored.errors) == (0, (302,))


async def test_keep_item_refuses_a_non_positive_interval() -> None:
    async with open_dht_node(("127.0.0.1", 0)) as node:
        with pytest.raises(ValueError, match="interval"):
            node.keep_item(bep44.Item(encode(b"x")), interval=0)
