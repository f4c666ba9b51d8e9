"""DHTService and open_dht_node over real UDP on 127.0.0.1: small shoal-only networks."""

from __future__ import annotations

import json
import random
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

import pytest
import trio

from shoal.dht_client import DHT, open_dht_node

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

IH = bytes.fromhex("5a" * 20)
LOCAL = ("127.0.0.1", 0)


@asynccontextmanager
async def network(size: int, seed: int = 0) -> AsyncIterator[list[DHT]]:
    """`size` shoal nodes; node i bootstraps through nodes 0..i-1 (node 0 starts alone)."""
    async with AsyncExitStack() as stack:
        nodes: list[DHT] = []
        for i in range(size):
            dht = await stack.enter_async_context(
                open_dht_node(
                    LOCAL, bootstrap=[n.address for n in nodes[-3:]], rng=random.Random(seed + i)
                )
            )
            nodes.append(dht)
        yield nodes


async def wait_bootstrapped(nodes: list[DHT]) -> None:
    for n in nodes[1:]:  # node 0 had nobody to bootstrap from
        await n.wait_bootstrapped()
        assert n.service.node.statistics().bootstrapped


async def test_network_announce_then_get_peers_finds_it() -> None:
    with trio.fail_after(15):
        async with network(8) as nodes:
            await wait_bootstrapped(nodes)
            stats = await nodes[2].announce(IH, 6881)
            assert stats is not None
            assert stats.responses >= 3
            search = nodes[7].get_peers(IH)
            found = [peer async for peer in search]
            assert found == [("127.0.0.1", 6881)]
            assert search.statistics is not None
            assert search.statistics.first_peer_at is not None
            # Every node served and sent queries through its socket.
            for n in nodes:
                s = n.statistics()
                assert s.service.datagrams_in > 0
                assert s.service.queries_out + s.node.queries_received > 0
            assert nodes[0].statistics().node.routing.nodes >= 5


async def test_implied_port_announces_the_udp_source_port() -> None:
    with trio.fail_after(15):
        async with network(5, seed=10) as nodes:
            await wait_bootstrapped(nodes)
            await nodes[1].announce(IH, 0, implied_port=True)
            found = [peer async for peer in nodes[4].get_peers(IH)]
            assert found == [nodes[1].address]


async def test_get_peers_for_unknown_hash_ends_empty_and_early_break_is_harmless() -> None:
    with trio.fail_after(15):
        async with network(4, seed=20) as nodes:
            await wait_bootstrapped(nodes)
            assert [p async for p in nodes[3].get_peers(bytes(20))] == []
            await nodes[0].announce(IH, 7000)
            await nodes[1].announce(IH, 7001)
            async for _ in nodes[2].get_peers(IH):
                break  # the lookup continues inside the engine and its waiter is dropped
            found = {p async for p in nodes[3].get_peers(IH)}
            assert found == {("127.0.0.1", 7000), ("127.0.0.1", 7001)}


async def test_cancellation_closes_the_socket() -> None:
    # A silent peer: bound, never answers, so the lookup below would run for seconds.
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as silent:
        await silent.bind(LOCAL)
        async with open_dht_node(LOCAL, bootstrap=[silent.getsockname()]) as dht:
            address = dht.address
            with trio.move_on_after(0.3) as scope:
                async for _ in dht.get_peers(IH):
                    pass
            assert scope.cancelled_caught
        assert dht.service.address == address
        search = dht.get_peers(IH)  # creating it is fine; starting it is not
        with pytest.raises(trio.ClosedResourceError):
            await search.__anext__()
        # The port is free again.
        with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as again:
            await again.bind(address)


async def test_state_file_round_trip_gives_a_warm_start(tmp_path: Path) -> None:
    state = tmp_path / "dht.json"
    with trio.fail_after(20):
        async with network(6, seed=30) as nodes:
            await wait_bootstrapped(nodes)
            await nodes[3].announce(IH, 6969)
            async with open_dht_node(
                LOCAL, bootstrap=[nodes[0].address], state_file=state, rng=random.Random(99)
            ) as first:
                await first.announce(bytes(20), 1)  # runs after bootstrap: the table is warm
                node_id = first.node_id
            doc = json.loads(state.read_text())
            assert doc["node_id"] == node_id.hex()
            assert len(doc["nodes"]) >= 3
            # No bootstrap list at all: the saved nodes are enough to find the peer.
            async with open_dht_node(LOCAL, state_file=state) as second:
                assert second.node_id == node_id
                found = [p async for p in second.get_peers(IH)]
                assert found == [("127.0.0.1", 6969)]


async def test_corrupt_state_file_is_an_error_not_a_silent_cold_start(tmp_path: Path) -> None:
    from shoal.errors import DecodeError

    state = tmp_path / "dht.json"
    state.write_text("{not json")
    with pytest.raises(DecodeError):
        async with open_dht_node(LOCAL, state_file=state):
            pass  # pragma: no cover


async def test_state_is_saved_periodically_while_running(tmp_path: Path) -> None:
    from shoal.dht.node import DHTNode
    from shoal.net.dht_service import DHTService, load_state

    state = tmp_path / "dht.json"
    with trio.fail_after(10):
        async with network(2, seed=40) as nodes, trio.open_nursery() as nursery:
            engine = DHTNode(bytes([7]) * 20, random.Random(1), trio.current_time())
            service = DHTService(engine, bind=LOCAL, state_file=state, save_interval=0.05)
            await nursery.start(service.serve)
            service.add_nodes([nodes[0].address])
            await service.wait_bootstrapped()
            # The file is the observable here; the first saves may predate the bootstrap.
            while not state.exists() or not (saved := load_state(state)) or not saved[1]:  # noqa: ASYNC110
                await trio.sleep(0.01)
            assert saved[0] == bytes([7]) * 20
            assert set(saved[1]) <= {(n.node_id, n.address) for n in nodes}
            nursery.cancel_scope.cancel()


async def test_garbage_datagrams_are_dropped_and_the_node_keeps_serving() -> None:
    rng = random.Random(5)
    with trio.fail_after(10):
        async with network(3, seed=50) as nodes:
            await wait_bootstrapped(nodes)
            target = nodes[0]
            with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
                await sock.bind(LOCAL)
                for size in (0, 1, 5, 100, 1400):
                    await sock.sendto(rng.randbytes(size), target.address)
                await sock.sendto(
                    b"d1:ad2:id20:" + bytes(20) + b"e1:q4:ping1:t2:xx1:y1:qe", target.address
                )
                data, _ = await sock.recvfrom(2048)  # the well-formed ping is answered
                assert b"1:y1:r" in data
            await nodes[1].announce(IH, 4242)
            assert [p async for p in nodes[2].get_peers(IH)] == [("127.0.0.1", 4242)]
            assert target.statistics().node.malformed >= 4
