"""DHTService reads datagrams in batches: a burst spanning several batches is all answered."""

from __future__ import annotations

import random
import socket

import trio

from shoal.dht_client import open_dht_node
from shoal.net.dht_service import RECV_BATCH

SOURCES = 20
PER_SOURCE = 10  # within the per-IP burst of 20, so the rate limiter drops nothing


def _ping(t: bytes, node_id: bytes) -> bytes:
    return b"d1:ad2:id20:" + node_id + b"e1:q4:ping1:t2:" + t + b"1:y1:qe"


async def test_a_burst_of_several_batches_is_answered_in_full() -> None:
    total = SOURCES * PER_SOURCE
    assert total > 3 * RECV_BATCH  # the burst spans several wake-ups
    rng = random.Random(7)
    async with open_dht_node(("127.0.0.1", 0), rng=random.Random(1)) as dht:
        socks = []
        try:
            for i in range(SOURCES):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((f"127.0.7.{i + 1}", 0))
                s.setblocking(False)
            # Plain blocking-free sends with no checkpoint in between: the whole burst
            # is queued in the node's socket before its loop runs once.
            for k in range(PER_SOURCE):
                for s in socks:
                    s.sendto(_ping(b"%02d" % k, rng.randbytes(20)), dht.address)
            replies: list[list[bytes]] = [[] for _ in socks]
            with trio.fail_after(10):
                while sum(map(len, replies)) < total:
                    await trio.sleep(0.01)
                    for s, got in zip(socks, replies, strict=True):
                        for _ in range(PER_SOURCE + 1):
                            try:
                                data = s.recv(2048)
                            except BlockingIOError:
                                break
                            if b"1:y1:r" in data:  # not a ping of the node's own
                                got.append(data)
        finally:
            for s in socks:
                s.close()
        stats = dht.statistics()
    # Each source got one reply per ping, in the order it sent them.
    for got in replies:
        assert [r[r.rindex(b"1:t2:") + 5 :][:2] for r in got] == [
            b"%02d" % k for k in range(PER_SOURCE)
        ]
    assert stats.service.datagrams_in == total
    assert stats.service.datagrams_out >= total  # replies, plus any pings of the node's
    assert stats.node.queries_received == total
    assert stats.node.rate_limited == 0
